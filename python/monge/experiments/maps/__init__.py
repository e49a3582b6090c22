"""Map-fitting experiments: known-map problems (:mod:`.known_maps`, ``python -m
monge.experiments.maps``) and the Wasserstein-2 benchmark of Korotin et al. (:mod:`.w2bench`)."""
