"""SpecTr speculative decoding with two character-level language models (issue 9).

    python -m monge.experiments.spectr --data /path/to/tinyshakespeare.txt
    python -m monge.experiments.spectr --quick --toy

- :mod:`.data`    the generated toy corpus and the character tokenizer
- :mod:`.model`   the draft GRU and the target transformer (KV cache) behind one interface
- :mod:`.train`   settings, training, and the npz + JSON weight cache
- :mod:`.decode`  target-only, draft-only and SpecTr (K-SEQ) decoding; the exactness checks
- :mod:`.run`     every (K, L), the table and the command line

The draft selection itself is library code: :mod:`monge.spectr`.  Needs PyTorch.
"""
