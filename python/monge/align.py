"""Token alignment between padded embedding sets (mirrors csrc/align.c): entropic OT (Sinkhorn, log
domain) and IPOT on a cosine cost, batched over pairs, with padding masks (padding gets no mass).

For pair k with valid rows x_i and columns y_j (uniform weights 1/n_k, 1/m_k) and the cosine cost
C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|):
    method='sinkhorn'  P = argmin <P, C> + eps KL(P | a b^T)   (iterated to tol)
    method='ipot'      the proximal point OT of Xie et al. (2019) that ORMA uses: G = exp(-C/beta),
                       P = 1 1^T, then `outer` times Q = G * P and `inner` scaling steps to the
                       marginals (beta = 0.5, a fixed number of iterations)
The distance is D = <P, C>; its gradients with respect to X and Y hold the plan fixed (as ORMA
does; for Sinkhorn this is also the envelope-theorem gradient of the entropic value).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import choice, float_array, integer, nonneg, positive
from ._policy import ConvergenceWarning

_METHODS = {"sinkhorn": 0, "ipot": 1}


@dataclass
class AlignResult:
    """Result of :func:`align`.

    Attributes
    ----------
    distance
        D = <P, C> per pair, (B,) (a float for unbatched input)
    plan
        P, (B, n, m) (or (n, m)), zero on padding
    grad_x
        dD/dX, shape of X (None unless asked); zero on padding
    grad_y
        dD/dY, shape of Y (None unless asked)
    error
        L1 marginal error of each plan (B,)
    n_iter
        Sinkhorn iterations, or IPOT outer iterations (B,)
    converged
        Sinkhorn: error <= tol for every pair (IPOT: always True; it runs a fixed count)

    Examples
    --------
    >>> import numpy as np, monge
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> r = monge.align(X, X, eps=0.01)
    >>> round(r.distance, 6), r.converged
    (0.0, True)
    """

    distance: np.ndarray | float
    plan: np.ndarray | None
    grad_x: np.ndarray | None
    grad_y: np.ndarray | None
    error: np.ndarray
    n_iter: np.ndarray
    converged: bool


def _mask(name, mask, shape):
    if mask is None:
        return None
    arr = np.asarray(mask)
    if arr.dtype == object or arr.dtype.kind not in "biu":
        raise TypeError(f"{name}: expected a boolean (or 0/1 integer) mask, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if arr.dtype.kind != "b" and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name}: integer masks must hold only 0 and 1")
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    empty = arr.sum(axis=1) == 0
    if empty.any():
        raise ValueError(f"{name}: pair {int(np.argmax(empty))} has no valid entry")
    return arr


def prepare(X, Y, mask_x, mask_y):
    X = float_array("X", X, (2, 3), dtype=np.float64)
    Y = float_array("Y", Y, (2, 3), dtype=np.float64)
    if X.ndim != Y.ndim:
        raise ValueError(f"X, Y: both (n, d) or both (B, n, d); got {X.shape} and {Y.shape}")
    single = X.ndim == 2
    if single:
        X, Y = X[None], Y[None]
        mask_x = None if mask_x is None else np.asarray(mask_x)[None]
        mask_y = None if mask_y is None else np.asarray(mask_y)[None]
    if X.shape[2] != Y.shape[2]:
        raise ValueError(f"X, Y: embedding dimensions differ ({X.shape[2]} vs {Y.shape[2]})")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X, Y: batch sizes differ ({X.shape[0]} vs {Y.shape[0]})")
    mx = _mask("mask_x", mask_x, X.shape[:2])
    my = _mask("mask_y", mask_y, Y.shape[:2])
    for name, Z, mk in (("X", X, mx), ("Y", Y, my)):
        nrm = np.linalg.norm(Z, axis=2)
        bad = (nrm == 0) if mk is None else (nrm == 0) & (mk > 0)
        if bad.any():
            k, i = np.argwhere(bad)[0]
            raise ValueError(f"{name}: vector {i} of pair {k} is zero: the cosine cost is undefined")
    return X, Y, mx, my, single


def options(method, eps, tol, max_iter, beta, outer, inner):
    return dict(method=_METHODS[choice("method", method, tuple(_METHODS))],
                eps=positive("eps", eps), tol=nonneg("tol", tol),
                max_iter=integer("max_iter", max_iter, 1), beta=positive("beta", beta),
                outer=integer("outer", outer, 1), inner=integer("inner", inner, 1))


def warn_unconverged(r, opts, stacklevel):
    """A ConvergenceWarning naming the first Sinkhorn pair that stopped at max_iter."""
    if r["unconverged"]:
        k = int(np.argmax(r["error"] > opts["tol"]))
        warnings.warn(f"align: Sinkhorn did not converge for pair {k} (marginal error "
                      f"{r['error'][k]:.3g} > tol {opts['tol']:.3g} after {opts['max_iter']} "
                      "iterations); raise max_iter or eps", ConvergenceWarning,
                      stacklevel=stacklevel)


def align(X, Y, mask_x=None, mask_y=None, *, method="sinkhorn", eps=0.1, tol=1e-6, max_iter=1000,
          beta=0.5, outer=50, inner=1, grad=False, nthreads=None):
    """Align token embeddings X (B, n, d) with Y (B, m, d) (or single pairs (n, d), (m, d)).

    Optimal transport on the cosine cost ``C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|)`` between the
    valid rows of each pair (uniform weights; padding gets no mass), solved by log-domain
    Sinkhorn or by IPOT; D = <P, C> per pair.

    Parameters
    ----------
    X, Y : arrays (B, n, d), (B, m, d), or (n, d), (m, d)
        Token embeddings (no all-zero valid rows: the cosine is undefined there).
    mask_x, mask_y : bool arrays (B, n), (B, m), optional
        True for real entries, False for padding (None: all real).
    method : {'sinkhorn', 'ipot'}
        'sinkhorn': argmin <P, C> + eps KL(P | a b^T), iterated to `tol`.  'ipot': the proximal
        point OT of Xie et al. (2019) that ORMA uses, a fixed number of iterations.
    eps, tol, max_iter
        Sinkhorn's regularisation, L1 marginal tolerance and iteration cap.
    beta, outer, inner
        IPOT's proximal step, outer iterations and scaling steps per outer iteration.
    grad : {False, True, 'x', 'y'}
        Gradients of D with the plan held fixed (as ORMA does; for Sinkhorn also the
        envelope-theorem gradient of the entropic value).
    nthreads : int, optional
        Threads for this call (pairs run in parallel).

    Returns
    -------
    AlignResult

    Raises
    ------
    ValueError
        Shapes that do not match, masks of the wrong shape, a pair with no valid entry, non-finite
        or zero embeddings, or out-of-range options (naming the argument).

    Warns
    -----
    ConvergenceWarning
        When a Sinkhorn pair stops at max_iter.

    See Also
    --------
    monge.torch.align : the same on tensors, differentiable.

    References
    ----------
    Y. Xie, X. Wang, R. Wang and H. Zha, "A fast proximal point method for computing exact
    Wasserstein distance", UAI 2019 (IPOT).

    Examples
    --------
    >>> import numpy as np, monge
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> r = monge.align(X, X[::-1], eps=0.01)     # the same tokens in reverse order
    >>> round(r.distance, 6), r.plan.round(3).tolist()
    (0.0, [[0.0, 0.5], [0.5, 0.0]])
    """
    X, Y, mx, my, single = prepare(X, Y, mask_x, mask_y)
    opts = options(method, eps, tol, max_iter, beta, outer, inner)
    if grad not in (False, True, "x", "y"):
        raise ValueError(f"grad: expected False, True, 'x' or 'y', got {grad!r}")
    gx, gy = grad in (True, "x"), grad in (True, "y")
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    w = np.ones(X.shape[0]) if (gx or gy) else None
    r = _core.align(X, Y, mx, my, weight=w, plan=True, grad_x=gx, grad_y=gy, nthreads=nthreads,
                    **opts)
    warn_unconverged(r, opts, stacklevel=3)
    sq = (lambda v: None if v is None else v[0]) if single else (lambda v: v)  # noqa: E731
    dist = float(r["dist"][0]) if single else r["dist"]
    return AlignResult(dist, sq(r["plan"]), sq(r["grad_x"]), sq(r["grad_y"]), r["error"],
                       r["n_iter"], not r["unconverged"])
