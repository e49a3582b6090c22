"""OT routing of tokens to experts (Liu, Puigcerver & Blondel, ICLR 2023): a small mixture-of-experts
classifier on scikit-learn's digits, trained with each router of :mod:`monge.routing`.

    python -m monge.experiments.routing [--quick] [--capacity-factor 1.25] [--out results.json]

- :mod:`.data`   the digits as sequences of pixel-row tokens
- :mod:`.model`  the MoE classifier and the routers it is trained with
- :mod:`.run`    training, the summary table, toy plans for the notebook, the command line

The routers themselves are library code: :mod:`monge.routing`.
"""
