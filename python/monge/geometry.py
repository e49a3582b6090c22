"""Ground costs and cost matrices (mirrors csrc/geometry.c).

Costs between points x (n, d) and y (m, d):
    sqeuclidean  c(x, y) = |x - y|^2          (no 1/2: as POT and OTT-JAX; GeomLoss p=2 uses |x-y|^2/2)
    euclidean    c(x, y) = |x - y|
    pnorm        c(x, y) = sum_k |x_k - y_k|^p   (p >= 1)
    cosine       c(x, y) = 1 - <x, y> / (|x| |y|)
    elastic      c(x, y) = 1/2 |x - y|^2 + lam |x - y|_1   (lam >= 0: the elastic-net cost)
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _core
from ._validate import choice, common_dtype, float_array

COSTS = ("sqeuclidean", "euclidean", "pnorm", "cosine", "elastic")


def check_lam(cost, lam):
    """The elastic cost's L1 weight (ignored by the other costs)."""
    if cost != "elastic":
        return 0.0
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)):
        raise TypeError(f"lam: expected a real number, got {type(lam).__name__}")
    if not (float(lam) >= 0) or not np.isfinite(lam):
        raise ValueError(f"lam: the elastic weight must be a finite number >= 0, got {lam!r}")
    return float(lam)


def check_magnitude(x, y, cost="sqeuclidean", p=2.0, lam=1.0, names=("x", "y")):
    """Finite points whose costs would overflow (|x| ~ 1e300 squared) get a ValueError naming the
    argument and the fix, instead of non-finite iterates deep in a solver."""
    if x is None or y is None or cost == "cosine":
        return
    mx, my = float(np.abs(x).max()), float(np.abs(y).max())
    m, d = max(mx, my), x.shape[-1]
    with np.errstate(over="ignore"):
        z = np.float64(2.0 * m)          # bound of any coordinate difference (overflows to inf)
        bound = {"sqeuclidean": z * z * d, "euclidean": z * np.sqrt(d),
                 "pnorm": z ** max(float(p), 1.0) * d,           # sum_k |z_k|^p
                 "projected": (z * np.sqrt(d)) ** max(float(p), 1.0),  # |<theta, z>|^p
                 "elastic": 0.5 * z * z * d + abs(float(lam)) * z * d}.get(cost, z * z * d)
    limit = float(np.finfo(np.result_type(x.dtype, y.dtype)).max) / 16.0
    if not bound <= limit:
        name = names[0] if mx >= my else names[1]
        raise ValueError(f"{name}: coordinates up to {m:.3g} make the {cost} costs overflow "
                         f"{np.result_type(x.dtype, y.dtype)} (they reach {bound:.3g}); rescale "
                         f"the points: divide both clouds by a common s such as {m:.3g} (for "
                         "sqeuclidean the OT cost scales by s**2, eps with it)")


def check_cost(cost, p, x=None, y=None, lam=1.0, names=("x", "y")):
    """Validates a cost name and its exponent; for cosine, rejects zero vectors; rejects points
    whose costs would overflow."""
    choice("cost", cost, COSTS)
    if cost == "pnorm":
        if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)):
            raise TypeError(f"p: expected a real number, got {type(p).__name__}")
        if not (float(p) >= 1.0) or not np.isfinite(p):
            raise ValueError(f"p: the pnorm exponent must be a finite number >= 1, got {p!r}")
    if cost == "cosine":
        for name, pts in (("x", x), ("y", y)):
            if pts is not None and (np.linalg.norm(pts, axis=-1) == 0).any():
                raise ValueError(f"{name}: the cosine cost is undefined for zero vectors")
    check_magnitude(x, y, cost, p, lam if isinstance(lam, numbers.Real) else 1.0, names)
    return float(p)


def points_pair(x, y, batched=None):
    """x, y as validated arrays of a common dtype; returns (x, y, batched)."""
    for name, v in (("x", x), ("y", y)):
        if getattr(v, "ndim", None) == 1 or (isinstance(v, (list, tuple)) and v and
                                              all(isinstance(t, numbers.Real) for t in v)):
            raise ValueError(f"{name}: a point cloud is 2-D (n, d), got a 1-D array of "
                             f"{len(v)} values; for points on a line pass {name}.reshape(-1, 1) "
                             "(or use monge.wasserstein_1d)")
    x = float_array("x", x, (2, 3))
    y = float_array("y", y, (2, 3))
    if x.ndim != y.ndim:
        raise ValueError(f"x, y: both 2-D (n, d) or both 3-D (batch, n, d); got {x.shape} and {y.shape}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x, y: dimensions differ ({x.shape[-1]} vs {y.shape[-1]})")
    if x.ndim == 3 and x.shape[0] != y.shape[0]:
        raise ValueError(f"x, y: batch sizes differ ({x.shape[0]} vs {y.shape[0]})")
    dt = common_dtype(x, y)
    return x.astype(dt, copy=False), y.astype(dt, copy=False), x.ndim == 3


def cost_matrix(x, y, cost="sqeuclidean", p=2.0, lam=1.0):
    """The dense cost matrix C[i, j] = c(x_i, y_j), shape (n, m), in the inputs' dtype.

    Parameters
    ----------
    x, y : arrays (n, d), (m, d)
        Point clouds (float32 or float64; one cloud each, not a batch).
    cost : {'sqeuclidean', 'euclidean', 'pnorm', 'cosine', 'elastic'}
        ``|x - y|^2`` (no 1/2), ``|x - y|``, ``sum_k |x_k - y_k|^p``, 1 - cosine similarity, or
        ``1/2 |x - y|^2 + lam |x - y|_1``.
    p : float
        Exponent of 'pnorm' (>= 1).
    lam : float
        L1 weight of 'elastic' (>= 0).

    Returns
    -------
    array (n, m)

    Raises
    ------
    ValueError
        For a batch (B, n, d), mismatched dimensions, an unknown cost, non-finite points or costs
        that overflow (the message names the argument).

    See Also
    --------
    sinkhorn : computes the same costs on the fly (``online=True``) without this matrix.

    Examples
    --------
    >>> import numpy as np, monge
    >>> monge.cost_matrix(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([[1.0, 0.0]]))
    array([[1.],
           [1.]])
    """
    x, y, batched = points_pair(x, y)
    if batched:
        raise ValueError("x: cost_matrix takes single point clouds (n, d); loop over a batch")
    p = check_cost(cost, p, x, y)
    return _core.cost_matrix(x, y, cost=cost, p=p, lam=check_lam(cost, lam))
