"""Gromov–Wasserstein and fused Gromov–Wasserstein (mirrors csrc/gromov.c).

Two spaces that share no coordinates (graphs, shapes up to isometry, embeddings of different
models) are compared through their (dis)similarity matrices C1 (n x n) and C2 (m x m) with weights
p and q.  The fused problem adds a feature cost M (n x m) with trade-off alpha (Vayer et al. 2019):

    min_T  F(T) = (1 - alpha) <M, T> + alpha GW(T),   T 1 = p,  T^T 1 = q,  T >= 0,
    GW(T) = sum_ijkl L(C1_ik, C2_jl) T_ij T_kl,

with L(a, b) = (a - b)^2 ('square') or a log(a / b) - a + b ('kl'), the conventions of POT (no 1/2).
The gradient costs two matrix products (the decomposition of Peyré et al. 2016), O(n^2 m + n m^2),
in the C core's own blocked product; nothing of size n^2 m^2 is formed.

Methods:

- ``'cg'`` (default): conditional gradient (Frank–Wolfe) with the exact network simplex as the
  linear oracle and an exact line search (F is quadratic in T), as POT's default solver.
- ``'entropic'``: projected mirror descent, T_{k+1} = argmin <grad F(T_k), T> + eps KL(T | p q^T)
  (Peyré et al. 2016), each step a log-domain Sinkhorn solve warm-started from the last one.  At
  small eps that iteration can cycle between two plans; ``damping`` (automatic by default) adds
  lam KL(T | T_k) to the steps, which keeps the fixed points and breaks the cycles.

GW is not convex: both methods find a stationary point near their start.  ``n_init`` restarts from
random feasible plans and keeps the lowest objective.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._policy import ConvergenceWarning
from ._validate import choice, float_array, integer, nonneg, positive, weights

METHODS = ("cg", "entropic")
LOSSES = ("square", "kl")


@dataclass
class GromovResult:
    """Result of :func:`gromov_wasserstein` and :func:`fused_gromov_wasserstein`.

    Attributes
    ----------
    plan
        the coupling T, (n, m), with marginals p and q
    value
        F(T) = (1 - alpha) <M, T> + alpha GW(T) (GW(T) alone without M), at the returned plan;
        for ``'entropic'`` without the entropy term, as POT's ``entropic_gromov_wasserstein2``
    gw, linear
        GW(T) and <M, T> (0 without M)
    f, g
        dual potentials of the last linear problem min_T <grad F(T), T> ('cg': the network
        simplex's; 'entropic': Sinkhorn's, in the eps KL(T | p q^T) form).  Centred, f is the
        gradient of the value with respect to p (and g to q) where T is optimal.
    grad_C1, grad_C2
        with ``grad=True``: dF/dC1 (n, n) and dF/dC2 (m, m) at T held fixed (envelope theorem)
    grad_x, grad_y
        with ``grad=True`` and point clouds: dF/dx (n, dx) and dF/dy (m, dy) at T held fixed
    error
        L1 marginal error of the plan, ``|T 1 - p|_1 + |T^T 1 - q|_1``
    fw_gap
        'cg': <grad F(T), T - S> at the last linearisation (>= 0; 0 at a stationary point);
        'entropic': nan
    delta
        the last relative change of the objective, ``|F_k - F_{k-1}| / |F_k|``
    eps
        'entropic': the eps of the returned plan (above the target when max_iter ran out during
        eps-scaling); 'cg': nan
    n_iter, inner_iter
        outer iterations; Sinkhorn iterations or network-simplex pivots (summed), of the kept run
    converged
        the objective's change fell below ``tol |F| + tol_abs`` (and, 'entropic', the last Sinkhorn
        solve met inner_tol)
    values
        the objective reached from each start (the first is ``init``), when ``n_init`` > 1

    Examples
    --------
    >>> import numpy as np, monge
    >>> C = np.array([[0.0, 1, 3], [1, 0, 2], [3, 2, 0]])       # a path 0 -1- 1 -2- 2
    >>> r = monge.gromov_wasserstein(C, C[::-1, ::-1])      # the same path numbered backwards
    >>> r.plan.round(3).tolist(), abs(r.value) < 1e-12, r.converged
    ([[0.0, 0.0, 0.333], [0.0, 0.333, 0.0], [0.333, 0.0, 0.0]], True, True)
    """

    plan: np.ndarray
    value: float
    gw: float
    linear: float
    f: np.ndarray
    g: np.ndarray
    error: float
    fw_gap: float
    delta: float
    eps: float
    n_iter: int
    inner_iter: int
    converged: bool
    grad_C1: np.ndarray | None = None
    grad_C2: np.ndarray | None = None
    grad_x: np.ndarray | None = None
    grad_y: np.ndarray | None = None
    values: list = field(default_factory=list)


def _square(name, C):
    C = float_array(name, C, (2,), dtype=np.float64)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {C.shape}")
    return C


def _weights(name, w, length):
    """p or q as float64 (uniform when None); their masses are kept (p and q must agree)."""
    w = weights(name, w, length, 1)
    return np.full(length, 1.0 / length) if w is None else w[0]


def random_plan(p, q, rng, rank=3):
    """A random coupling of p and q: p q^T times 1 + a random rank-`rank` term whose rows and
    columns average to 0 under p and q, scaled to keep every entry >= 1 % of p_i q_j."""
    U = rng.standard_normal((p.size, rank))
    V = rng.standard_normal((q.size, rank))
    U -= (p @ U) / p.sum()
    V -= (q @ V) / q.sum()
    Z = U @ V.T
    low = Z.min()
    if low < 0:
        Z *= 0.99 / -low
    return np.outer(p, q) / p.sum() * (1.0 + Z)


def _solve(C1, C2, p, q, M, alpha, loss, method, eps, init, n_init, seed, tol, tol_abs, max_iter,
           inner_tol, inner_max_iter, grad, callback, nthreads, damping="auto", eps_scaling=False,
           eps_start=None, scaling_factor=0.5, x=None, y=None, semirelaxed=False):
    loss = choice("loss", loss, LOSSES)
    points = x is not None or y is not None
    if points:
        if C1 is not None or C2 is not None:
            raise ValueError("C1, C2, x, y: give either the matrices C1, C2 or the point clouds x, "
                             "y, not both")
        if x is None or y is None:
            raise ValueError("x, y: both point clouds are required")
        x = float_array("x", x, (2,), dtype=np.float64)
        y = float_array("y", y, (2,), dtype=np.float64)
        for name, z in (("x", x), ("y", y)):
            if z.shape[1] > 16:
                raise ValueError(f"{name}: dimension {z.shape[1]} > 16; pass the distance matrices "
                                 "C1, C2 instead")
        if loss != "square":
            raise ValueError("loss: point clouds x, y use the square loss (their squared "
                             "distances' low-rank form); pass C1, C2 for the kl loss")
        n, m = x.shape[0], y.shape[0]
    else:
        if C1 is None or C2 is None:
            raise ValueError("C1, C2: required (or the point clouds x, y)")
        C1 = _square("C1", C1)
        C2 = _square("C2", C2)
        n, m = C1.shape[0], C2.shape[0]
    p = _weights("p", p, n)
    q = _weights("q", q, m)
    if abs(p.sum() - q.sum()) > 1e-8 * max(p.sum(), q.sum()):
        raise ValueError(f"p, q: masses differ ({p.sum():.17g} and {q.sum():.17g}); GW couples "
                         "equal masses")
    loss = choice("loss", loss, LOSSES)
    method = choice("method", method, METHODS)
    if not isinstance(semirelaxed, (bool, np.bool_)):
        raise TypeError(f"semirelaxed: expected a bool, got {type(semirelaxed).__name__}")
    if semirelaxed and method != "cg":
        raise ValueError("semirelaxed: only with method='cg'")
    if loss == "kl" and not points:
        if (C1 < 0).any():
            raise ValueError("C1: the kl loss needs C1 >= 0")
        if (C2 <= 0).any():
            raise ValueError("C2: the kl loss needs C2 > 0 (it takes log C2)")
    if M is not None:
        M = float_array("M", M, (2,), dtype=np.float64)
        if M.shape != (n, m):
            raise ValueError(f"M: expected shape ({n}, {m}) (rows of C1, rows of C2), got {M.shape}")
        alpha = nonneg("alpha", alpha)
        if alpha > 1:
            raise ValueError(f"alpha: must be in [0, 1], got {alpha!r}")
    eps = positive("eps", eps)
    tol = nonneg("tol", tol)
    tol_abs = nonneg("tol_abs", tol_abs)
    max_iter = integer("max_iter", max_iter, minimum=1)
    inner_tol = positive("inner_tol", inner_tol)
    inner_max_iter = 0 if inner_max_iter is None else integer("inner_max_iter", inner_max_iter, 1)
    n_init = integer("n_init", n_init, minimum=1)
    if isinstance(damping, str):
        choice("damping", damping, ("auto",))
        damping = -1.0
    else:
        damping = nonneg("damping", damping)
    if not isinstance(eps_scaling, (bool, np.bool_)):
        raise TypeError(f"eps_scaling: expected a bool, got {type(eps_scaling).__name__}")
    eps_start = 0.0 if eps_start is None else positive("eps_start", eps_start)
    scaling_factor = positive("scaling_factor", scaling_factor)
    if scaling_factor >= 1:
        raise ValueError(f"scaling_factor: must be in (0, 1), got {scaling_factor!r}")
    if not isinstance(grad, (bool, np.bool_)):
        raise TypeError(f"grad: expected a bool, got {type(grad).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    nth = 0 if nthreads is None else integer("nthreads", nthreads, minimum=1)
    if isinstance(init, str):
        choice("init", init, ("product",))
        init = None
    elif init is not None:
        init = float_array("init", init, (2,), dtype=np.float64)
        if init.shape != (n, m):
            raise ValueError(f"init: expected shape ({n}, {m}), got {init.shape}")
        if (init < 0).any():
            raise ValueError("init: a plan must be non-negative")
        err = np.abs(init.sum(1) - p).sum() + (0 if semirelaxed else np.abs(init.sum(0) - q).sum())
        if err > 1e-6 * p.sum():
            raise ValueError(f"init: marginals differ from {'p' if semirelaxed else 'p and q'} by "
                             f"{err:.3g} (L1); give a plan with {'rows summing to p' if semirelaxed else 'marginals p and q'}")
    rng = np.random.default_rng(seed)
    best, values = None, []
    for k in range(n_init):
        T0 = init if k == 0 else random_plan(p, q, rng)
        r = _core.gromov(C1, C2, p, q, M, alpha=float(alpha if M is not None else 1.0), loss=loss,
                         solver=method, eps=eps, tol=tol, tol_abs=tol_abs, max_iter=max_iter,
                         inner_tol=inner_tol, inner_max_iter=inner_max_iter, T0=T0, grad=bool(grad),
                         nthreads=nth, callback=callback, damping=damping,
                         eps_scaling=bool(eps_scaling), eps_start=eps_start,
                         scaling_factor=scaling_factor, x=x, y=y, semirelaxed=bool(semirelaxed))
        values.append(float(r["value"]))
        if best is None or r["value"] < best[1]["value"]:
            best = (T0, r)
        if r["stopped"]:
            break
    T0, r = best
    converged = bool(r["converged"]) and not r["stopped"]
    if not converged and not r["stopped"]:
        warnings.warn(
            f"gromov_wasserstein ({method}) did not converge: relative change of the objective "
            f"{r['delta']:.3g} after {r['n_iter']} iterations (tol {tol:.3g}, tol_abs "
            f"{tol_abs:.3g}); raise max_iter" + (", or use a larger eps or a larger damping"
                                                  if method == "entropic" else ""),
            ConvergenceWarning, stacklevel=3)
    f, g = r["f"], r["g"]
    return GromovResult(plan=r["T"], value=float(r["value"]), gw=float(r["gw"]),
                        linear=float(r["linear"]), f=f - f @ p / p.sum(), g=g - g @ q / q.sum(),
                        error=float(r["error"]), fw_gap=float(r["fw_gap"]),
                        delta=float(r["delta"]), eps=float(r["eps"]), n_iter=int(r["n_iter"]),
                        inner_iter=int(r["inner_iter"]), converged=converged,
                        grad_C1=None if points else r["grad_C1"],
                        grad_C2=None if points else r["grad_C2"],
                        grad_x=r["grad_C1"] if points else None,
                        grad_y=r["grad_C2"] if points else None,
                        values=values if n_init > 1 else [])


def gromov_wasserstein(C1=None, C2=None, p=None, q=None, *, x=None, y=None, loss="square",
                       method="cg", eps=0.1,
                       init="product", n_init=1, seed=None, tol=1e-9, tol_abs=1e-9, max_iter=1000,
                       inner_tol=1e-9, inner_max_iter=None, damping="auto", eps_scaling=False,
                       eps_start=None, scaling_factor=0.5, grad=False, callback=None,
                       nthreads=None, semirelaxed=False):
    """Gromov–Wasserstein coupling between (C1, p) and (C2, q).

    Solves min_T sum_ijkl L(C1_ik, C2_jl) T_ij T_kl over couplings T of p and q (see the module
    docstring for L and the methods).

    Parameters
    ----------
    C1, C2 : arrays (n, n), (m, m)
        The spaces' (dis)similarity matrices, finite; asymmetric ones are supported.  With
        ``loss='kl'`` C1 >= 0 and C2 > 0.
    p, q : arrays (n,), (m,), optional
        Non-negative weights with equal masses; uniform by default.
    x, y : arrays (n, dx), (m, dy), optional
        Instead of C1, C2: point clouds (dx, dy <= 16), with C1, C2 their squared Euclidean
        distances ``|x_i - x_k|^2``.  Those matrices have rank d + 2, so every product costs
        O(n m (dx + dy)) instead of O(n^2 m + n m^2) and no n x n matrix is formed: the way to
        compare clouds of 10^4 points.  Square loss only; ``grad`` gives dF/dx and dF/dy.
    loss : 'square' or 'kl'
    method : 'cg' (Frank–Wolfe with the exact solver, default) or 'entropic'
    eps : float
        'entropic': the regularisation (absolute, > 0), as POT's ``epsilon``; default 0.1.
    init : 'product' or array (n, m)
        The first start: the product plan p q^T / sum p (default) or a given coupling of p, q.
    n_init : int
        Starts: ``init`` and n_init - 1 random couplings (from ``seed``); the lowest objective wins.
    tol, tol_abs : float
        Stop when ``|F_k - F_{k-1}| <= tol |F_k| + tol_abs`` (POT's tol_rel and tol_abs);
        defaults 1e-9.
    max_iter : int
        Outer iterations (default 1000); running out sets converged=False and warns.
    inner_tol, inner_max_iter
        'entropic': Sinkhorn's L1 marginal tolerance (1e-9) and iterations per step (10000);
        'cg': inner_max_iter limits the network simplex's pivots (default: none).
    damping : 'auto' or float
        'entropic': lam >= 0 adds lam KL(T | T_k) to each step, which keeps the fixed points and
        shortens the steps.  At small eps the plain iteration can cycle between two plans;
        'auto' (default) starts at 0 and sets lam = eps when the objective's change alternates in
        sign four times in a row, doubling it at each further such run.
    eps_scaling, eps_start, scaling_factor
        'entropic': anneal eps from eps_start (default: the largest entry of the first linear
        cost) down to eps, by scaling_factor (0.5) each time the objective's relative change
        falls below 1e-4; the last stage stops on tol.
    grad : bool
        Also return dF/dC1 and dF/dC2 at the plan (result.grad_C1, result.grad_C2), or with point
        clouds dF/dx and dF/dy (result.grad_x, result.grad_y), in O(n m d).
    callback : callable(iteration, relative change) -> bool, optional
        Called every outer iteration; returning True stops (converged=False, no warning).
    nthreads : int, optional
        Threads (default: monge.get_num_threads()).
    semirelaxed : bool
        The semi-relaxed problem (Vincent-Cuaz et al., ICLR 2022): only T 1 = p is kept, the
        second marginal is free (the plan chooses how much each node of C2 receives: a
        matching of C1 into part of C2, or a clustering of C1's nodes onto C2's).  'cg' only:
        the linear step puts each row's mass on its column of least gradient; q then only
        shapes the start p q^T, ``g`` is 0 and ``error`` is the rows' L1 error.  POT's
        ``semirelaxed_gromov_wasserstein``.

    Returns
    -------
    GromovResult

    Examples
    --------
    >>> import numpy as np, monge
    >>> x = np.random.default_rng(0).random((6, 2))
    >>> C1 = np.linalg.norm(x[:, None] - x[None], axis=-1)
    >>> perm = np.array([3, 0, 5, 1, 4, 2])
    >>> C2 = C1[np.ix_(perm, perm)]                        # the same points in another order
    >>> r = monge.gromov_wasserstein(C1, C2)
    >>> r.converged, abs(r.value) < 1e-12, bool((r.plan.argmax(0) == perm).all())
    (True, True, True)
    """
    return _solve(C1, C2, p, q, None, 1.0, loss, method, eps, init, n_init, seed, tol, tol_abs,
                  max_iter, inner_tol, inner_max_iter, grad, callback, nthreads, damping,
                  eps_scaling, eps_start, scaling_factor, x, y, semirelaxed)


def fused_gromov_wasserstein(M, C1=None, C2=None, p=None, q=None, *, x=None, y=None, alpha=0.5,
                             loss="square", method="cg",
                             eps=0.1, init="product", n_init=1, seed=None, tol=1e-9, tol_abs=1e-9,
                             max_iter=1000, inner_tol=1e-9, inner_max_iter=None, damping="auto",
                             eps_scaling=False, eps_start=None, scaling_factor=0.5, grad=False,
                             callback=None, nthreads=None, semirelaxed=False):
    """Fused Gromov–Wasserstein coupling (Vayer et al. 2019): features and structure.

    Solves min_T (1 - alpha) <M, T> + alpha sum_ijkl L(C1_ik, C2_jl) T_ij T_kl over couplings of p
    and q, the convention of POT's ``fused_gromov_wasserstein``.  M (n, m) is the feature cost
    (e.g. squared distances between node features); alpha in [0, 1] weighs the structure (alpha = 0
    is exact OT on M, alpha = 1 is GW).  The other parameters are those of
    :func:`gromov_wasserstein`; the result's ``linear`` is <M, T> and ``gw`` the GW term.  The
    gradient with respect to M is (1 - alpha) T, and with respect to alpha gw - linear.

    Parameters
    ----------
    M : array (n, m)
        Feature cost between the nodes of the two spaces, finite.
    C1, C2, p, q, x, y, loss, method, eps, init, n_init, seed, tol, tol_abs, max_iter, inner_tol, \
inner_max_iter, damping, eps_scaling, eps_start, scaling_factor, grad, callback, nthreads, \
semirelaxed
        As in :func:`gromov_wasserstein`.
    alpha : float
        Weight of the structure term in [0, 1]; default 0.5.

    Returns
    -------
    GromovResult

    Examples
    --------
    >>> import numpy as np, monge
    >>> C = np.array([[0.0, 1, 2], [1, 0, 1], [2, 1, 0]])            # a path graph 0 - 1 - 2
    >>> M = np.array([[0.0, 1, 1], [1, 0, 1], [1, 1, 0]])            # features: node labels
    >>> r = monge.fused_gromov_wasserstein(M, C, C, alpha=0.5)
    >>> r.plan.round(3).tolist()
    [[0.333, 0.0, 0.0], [0.0, 0.333, 0.0], [0.0, 0.0, 0.333]]
    """
    if M is None:
        raise ValueError("M: required (use gromov_wasserstein without features)")
    return _solve(C1, C2, p, q, M, alpha, loss, method, eps, init, n_init, seed, tol, tol_abs,
                  max_iter, inner_tol, inner_max_iter, grad, callback, nthreads, damping,
                  eps_scaling, eps_start, scaling_factor, x, y, semirelaxed)
