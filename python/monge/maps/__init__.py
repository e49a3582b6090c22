"""Transport maps: estimators fitted from samples, and what is needed to judge them.

- :class:`MongeGapMap` — an MLP fitted with the Monge gap regulariser (NumPy, hand-written backward);
  :func:`fit_torch_map`, the same fit through PyTorch.
- :class:`LinearMap` (Bures) and :class:`EntropicMap` (Pooladian & Niles-Weed): the baselines.
- :mod:`monge.maps.nn` — the small NumPy network library behind it.
- :mod:`monge.maps.datasets` — problems with a known optimal map, and 2-D shapes.
- :mod:`monge.maps.metrics` — L2-UVP and friends.

Importing this package needs NumPy alone.
"""
from . import datasets, metrics, nn
from .baselines import EntropicMap, LinearMap, NotFittedError, bures_map
from .estimator import MongeGapMap, fit_torch_map

__all__ = ["MongeGapMap", "fit_torch_map", "LinearMap", "EntropicMap", "bures_map", "NotFittedError", "datasets", "metrics", "nn"]
