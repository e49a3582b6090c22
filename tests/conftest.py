import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def canonical(f, g, a, b):
    """Potentials are defined up to (f + c, g - c): fix c so that <a, f> = <b, g>."""
    c = (np.dot(a, f) - np.dot(b, g)) / (a.sum() + b.sum())
    return f - c, g + c
