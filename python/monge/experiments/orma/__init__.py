"""Text–molecule retrieval with OT multi-grained alignment (ORMA, issue 8), at CPU scale.

    python -m monge.experiments.orma --data /path/to/ChEBI-20_data --out orma.json --plots figs/
    python -m monge.experiments.orma --quick

- :mod:`.chem`    motif decomposition and the hierarchical heterogeneous graph (RDKit)
- :mod:`.data`    the ChEBI-20 loader and writer, the generated corpus (RDKit)
- :mod:`.text`    WordPiece tokens, frozen all-MiniLM-L6-v2 token states, :class:`.text.TextStore`
- :mod:`.model`   text encoders, HierGNN, the ORMA model (PyTorch)
- :mod:`.losses`  the three contrastive scales and the retrieval metrics
- :mod:`.run`     data preparation, training, the ablation, tables, plots and the command line

Needs the orma extra (``pip install 'monge[orma]'``).  Importing this package imports none of them.
"""
