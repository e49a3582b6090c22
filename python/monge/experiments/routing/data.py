"""The routing experiment's data: scikit-learn's bundled 8x8 digits, each image a sequence of 8
tokens (its pixel rows)."""
from __future__ import annotations

import numpy as np


def load_digits_tokens():
    """(X (N, 8, 8) in [0, 1], y (N,)) from scikit-learn's bundled digits (no download)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data.reshape(-1, 8, 8) / 16.0).astype(np.float32), d.target.astype(np.int64)
