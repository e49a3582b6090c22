"""Built-in point clouds, generated from a seed (nothing is downloaded).

Each generator returns float64 arrays; `seed` is an int or a numpy Generator.
"""
from __future__ import annotations

import numpy as np

from ._validate import integer


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def gaussian(n, mean, cov, seed=0):
    """n samples of N(mean, cov)."""
    n = integer("n", n, 1)
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    return _rng(seed).multivariate_normal(mean, cov, size=n)


def eight_gaussians(n, radius=2.0, std=0.2, seed=0):
    """n points from 8 Gaussians on a circle of the given radius."""
    n = integer("n", n, 1)
    rng = _rng(seed)
    ang = 2 * np.pi * rng.integers(0, 8, size=n) / 8
    centers = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return centers + std * rng.standard_normal((n, 2))


def moons(n, noise=0.1, seed=0):
    """n points on two interleaved half circles (scikit-learn's shape), centred."""
    n = integer("n", n, 1)
    rng = _rng(seed)
    n1 = n // 2
    t1 = np.pi * rng.random(n1)
    t2 = np.pi * rng.random(n - n1)
    upper = np.stack([np.cos(t1), np.sin(t1)], axis=1)
    lower = np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], axis=1)
    pts = np.concatenate([upper, lower]) - np.array([0.5, 0.25])
    return pts + noise * rng.standard_normal((n, 2))


def uniform_square(n, d=2, seed=0):
    """n points uniform on [0, 1]^d."""
    return _rng(seed).random((integer("n", n, 1), integer("d", d, 1)))
