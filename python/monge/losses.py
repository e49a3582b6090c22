"""Losses with hand-written gradients (mirrors csrc/losses.c).

Sinkhorn divergence
    S_eps(a, b) = OT_eps(a, b) - 1/2 OT_eps(a, a) - 1/2 OT_eps(b, b) + eps/2 (m(a) - m(b))^2
with OT_eps the KL-form entropic OT of :func:`monge.sinkhorn`; S_eps >= 0 and S_eps(a, a) = 0.
Gradients come from the dual potentials (envelope theorem), never from unrolled iterations.

Monge gap of a map T on samples x_1..x_n (Uscidda & Cuturi, ICML 2023), with the estimator of
OTT-JAX's ``monge_gap_from_samples``:
    M(T) = (1/n) sum_i c(x_i, T x_i) - [ <P, C> - eps H(P) ],   H(P) = -sum_ij P_ij log P_ij,
P the entropic plan between the empirical measures of {x_i} and {T x_i}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import choice, positive, weights
from .geometry import check_cost, check_lam, points_pair
from .multiscale import resolve_method
from ._policy import check_masses, marginal_penalties, solver_options, warn_unconverged

_GRADS = ("x", "y", "a", "b")


@dataclass
class DivergenceResult:
    """Result of :func:`sinkhorn_divergence` (arrays gain a leading batch axis for a batch).

    Attributes
    ----------
    value
        S_eps (with static_b: S_eps minus the constant 1/2 OT_eps(b, b))
    grad_x, grad_y
        dS/dx (n, d), dS/dy (m, d), or None when not requested
    grad_a, grad_b
        dS/da (n,), dS/db (m,), or None
    ot_ab, ot_aa, ot_bb
        the three OT_eps terms (ot_bb is NaN with static_b)
    n_iter, converged, error
        of the three solves together

    Examples
    --------
    >>> import numpy as np, monge
    >>> x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    >>> d = monge.sinkhorn_divergence(x, y, eps=0.01, grad=("x",))
    >>> round(d.value, 4), d.grad_x.round(4).tolist(), d.converged
    (0.5, [[0.0], [-1.0]], True)
    """

    value: float | np.ndarray
    grad_x: np.ndarray | None
    grad_y: np.ndarray | None
    grad_a: np.ndarray | None
    grad_b: np.ndarray | None
    ot_ab: float | np.ndarray
    ot_aa: float | np.ndarray
    ot_bb: float | np.ndarray
    n_iter: int | np.ndarray
    converged: bool | np.ndarray
    error: float | np.ndarray


def _which_grads(grad, static_b):
    if grad is False or grad is None:
        return set()
    if grad is True:
        return {"x", "a"} if static_b else set(_GRADS)
    if isinstance(grad, str):
        grad = (grad,)
    try:
        wanted = set(grad)
    except TypeError:
        raise TypeError("grad: expected True, False or a tuple of 'x', 'y', 'a', 'b'") from None
    for w in wanted:
        choice("grad", w, _GRADS)
    if static_b and wanted & {"y", "b"}:
        raise ValueError("grad: with static_b=True the target is fixed: no gradient for y or b")
    return wanted


def sinkhorn_divergence(x, y, a=None, b=None, *, eps, cost="sqeuclidean", p=2.0, lam=1.0,
                        tau=None, tau_a=None, tau_b=None, grad=False, static_b=False, online=None,
                        tol=None, max_iter=None, eps_scaling="auto", scaling_factor=None,
                        stage_tol=None, overrelax="auto", anderson=None, nthreads=None,
                        method="exact", cluster_scale=None, truncation=None):
    """Sinkhorn divergence between weighted point clouds, with gradients on request.

        S_eps(a, b) = OT_eps(a, b) - 1/2 OT_eps(a, a) - 1/2 OT_eps(b, b) + eps/2 (m(a) - m(b))^2

    Parameters
    ----------
    x, y : arrays (n, d), (m, d), or (B, n, d), (B, m, d) for a batch
    a, b : weights (uniform when omitted); balanced problems need equal masses
    eps : float
        Entropic regularisation, absolute.  For GeomLoss's SamplesLoss('sinkhorn', p=2, blur=s),
        whose cost is ``|x - y|^2`` / 2, use cost='sqeuclidean', eps = 2 s^2 and halve the value.
    cost, p, lam : ground cost as in :func:`monge.sinkhorn`
    tau, tau_a, tau_b : KL marginal penalties (unbalanced divergence)
    grad : bool or tuple of {'x', 'y', 'a', 'b'}
        Which gradients to return (True: all that apply).  dS/da is defined up to a constant for
        balanced problems (the weights live on a simplex).
    static_b : bool
        The target (y, b) is fixed: skip OT_eps(b, b), a constant.  For training loops.
    online : bool, optional
        Compute costs on the fly (default) or build the three cost matrices once (online=False;
        pays for d above ~16).
    tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax, anderson, nthreads :
        Solver options, as in :func:`monge.sinkhorn`, shared by the three solves.
    method, cluster_scale, truncation :
        method='multiscale' runs the three solves with the multiscale solver (balanced, one
        problem, d <= 8; see :func:`monge.sinkhorn`), the gradients on its truncated plans;
        'auto' chooses it as :func:`monge.sinkhorn` does (balanced, `online` not given).

    Returns
    -------
    DivergenceResult

    Examples
    --------
    S_eps between a cloud and its translate by t is ``|t|^2`` (sqeuclidean cost), at any eps:

    >>> import numpy as np, monge
    >>> x = np.random.default_rng(0).random((50, 2))
    >>> s = monge.sinkhorn_divergence(x, x + [1.0, 1.0], eps=0.1, grad=True)
    >>> round(s.value, 6), s.grad_x.shape
    (2.0, (50, 2))
    """
    eps = positive("eps", eps)
    exact_only = (online is not None or not isinstance(eps_scaling, str)
                  or tau is not None or tau_a is not None or tau_b is not None)
    method = resolve_method(method, x, y, eps, cost, exact_only,
                            cluster_scale is not None or truncation is not None)
    if method == "multiscale":
        return _multiscale_divergence(x, y, a, b, eps, cost, p, tau, tau_a, tau_b, grad,
                                      static_b, tol, max_iter, scaling_factor, stage_tol,
                                      overrelax, anderson, nthreads, cluster_scale, truncation)
    x, y, batched = points_pair(x, y)
    p = check_cost(cost, p, x, y)
    lam = check_lam(cost, lam)
    B = x.shape[0] if batched else 1
    n, m, d = x.shape[-2], y.shape[-2], x.shape[-1]
    A = weights("a", a, n, B)
    Bw = weights("b", b, m, B)
    ta, tb = marginal_penalties(tau, tau_a, tau_b)
    if math.isinf(ta) and math.isinf(tb):
        check_masses(A, Bw, B)
    wanted = _which_grads(grad, bool(static_b))
    if online is None:
        online = d <= 16
    opts = solver_options(x.dtype, tol, max_iter, eps_scaling, scaling_factor, stage_tol,
                          overrelax, nthreads, anderson)
    xb, yb = (x, y) if batched else (x[None], y[None])
    out = _core.sinkhorn_divergence(xb, yb, A, Bw, cost=cost, p=p, lam=lam, eps=eps, tau_a=ta,
                                    tau_b=tb, static_b=bool(static_b), dense=not online,
                                    grad_x="x" in wanted, grad_y="y" in wanted,
                                    grad_a="a" in wanted, grad_b="b" in wanted, **opts)
    warn_unconverged("sinkhorn_divergence", out["converged"], out["error"], out["n_iter"],
                     opts["tol"], batched)

    def shaped(key, length, dim):
        v = out[key]
        if v is None:
            return None
        v = v.reshape(B, length, dim) if dim else v.reshape(B, length)
        return v if batched else v[0]

    gx = shaped("grad_x", n, d)
    gy = shaped("grad_y", m, d)
    ga = shaped("grad_a", n, 0)
    gb = shaped("grad_b", m, 0)
    ot = out["ot"]
    if batched:
        return DivergenceResult(out["value"], gx, gy, ga, gb, ot[:, 0], ot[:, 1], ot[:, 2],
                                out["n_iter"], out["converged"], out["error"])
    return DivergenceResult(float(out["value"][0]), gx, gy, ga, gb, float(ot[0, 0]), float(ot[0, 1]),
                            float(ot[0, 2]), int(out["n_iter"][0]), bool(out["converged"][0]),
                            float(out["error"][0]))


def _multiscale_divergence(x, y, a, b, eps, cost, p, tau, tau_a, tau_b, grad, static_b, tol,
                           max_iter, scaling_factor, stage_tol, overrelax, anderson, nthreads,
                           cluster_scale, truncation):
    from .multiscale import MultiscaleOptions, divergence
    ta, tb = marginal_penalties(tau, tau_a, tau_b)
    if not (math.isinf(ta) and math.isinf(tb)):
        raise ValueError("tau: method='multiscale' divergences are balanced (no tau)")
    wanted = _which_grads(grad, bool(static_b))
    value, g, ot, nit, conv, err = divergence(
        x, y, a, b, eps=eps, cost=cost, p=p, grad=wanted, static_b=bool(static_b), tol=tol,
        max_iter=max_iter, scaling_factor=scaling_factor, stage_tol=stage_tol,
        overrelax=overrelax, anderson=anderson, nthreads=nthreads,
        options=MultiscaleOptions(cluster_scale, truncation))
    return DivergenceResult(float(value), g.get("x"), g.get("y"), g.get("a"), g.get("b"),
                            float(ot[0]), float(ot[1]), float(ot[2]), int(nit), bool(conv),
                            float(err))


@dataclass
class MongeGapResult:
    """Result of :func:`monge_gap`.

    Attributes
    ----------
    value
        M(T) = displacement - ent_reg_cost
    displacement
        (1/n) sum_i c(x_i, T x_i)
    ent_reg_cost
        <P, C> - eps H(P) for the entropic plan between {x_i} and {T x_i}; with debiased=True,
        the Sinkhorn divergence S_eps(x, T x)
    eps
        the absolute eps used (after relative scaling)
    grad_tx, grad_x
        dM/d(T x) and dM/dx, shape (n, d), or None
    n_iter, converged, error
        of the solves together (iterations, error <= tol, L1 marginal error)

    Examples
    --------
    x -> 2x is the gradient of a convex function, an optimal map: its debiased gap is ~0.

    >>> import numpy as np, monge
    >>> x = np.array([[0.0], [1.0]])
    >>> g = monge.monge_gap(x, 2 * x, debiased=True)
    >>> abs(round(g.value, 4)), round(g.displacement, 4), g.converged
    (0.0, 0.5, True)
    """

    value: float
    displacement: float
    ent_reg_cost: float
    eps: float
    grad_tx: np.ndarray | None
    grad_x: np.ndarray | None
    n_iter: int
    converged: bool
    error: float


_EPS_MODES = {None: "absolute", "mean": "mean", "std": "std"}  # monge_eps_mode names


def monge_gap(x, tx, *, cost="sqeuclidean", eps=None, relative_epsilon=None, p=2.0, lam=1.0,
              debiased=False, grad=False, online=None, tol=None, max_iter=None, eps_scaling="auto",
              scaling_factor=None, stage_tol=None, overrelax="auto", anderson=None, nthreads=None):
    """Monge gap of a map on samples: how far x -> T(x) is from being an optimal transport map.

        M(T) = (1/n) sum_i c(x_i, T x_i) - [ <P, C> - eps H(P) ]

    with the estimator of OTT-JAX's ``monge_gap_from_samples`` (values agree with it to 1e-6 on the
    same inputs and conventions).  M(T) >= 0 up to the entropic bias, and ~0 when T is the optimal
    map for the cost c (for sqeuclidean: the gradient of a convex function).

    Parameters
    ----------
    x, tx : arrays (n, d): samples and their images T(x_i)
    cost, p, lam : ground cost (sqeuclidean, euclidean, pnorm, cosine, or elastic
        1/2 ``|z|^2`` + lam ``|z|_1``)
    eps : float, optional
        Entropic regularisation.  With relative_epsilon=None it is absolute; with 'mean' or 'std'
        it multiplies the mean or the standard deviation of the cost matrix between x and tx.
        Default (eps=None): 0.05 x std of the cost matrix, OTT-JAX's default.
    debiased : bool
        False (default): OTT-JAX's estimator above.  True: the entropic term replaced by the
        Sinkhorn divergence, M~(T) = (1/n) sum_i c(x_i, T x_i) - S_eps(x, T x) (two more,
        symmetric, solves).  The plain estimator's entropic term grows with the spread of T x, so
        it rewards maps that contract; M~ is 0 at T = id and close to 0 for every optimal map at
        any eps.  ``ent_reg_cost`` is then S_eps(x, T x).
    grad : bool or tuple of {'tx', 'x'}
        Gradients to return (True: both).  With a relative eps they hold eps fixed at the value
        the data gave (``result.eps``), as OTT-JAX's do: no term for eps moving with the costs.
    online : bool, optional
        Costs on the fly (O(n) memory) or the n x n matrix built once (online=False).  Default:
        the matrix while it takes <= 64 MB (or <= 1 GiB when d > 8), else online (measured).
    tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax, anderson, nthreads :
        Solver options, as in :func:`monge.sinkhorn`.

    Note: the estimator's value is at least about eps log n even for an optimal map (the entropy
    term of the plan), so compare Monge gaps at equal eps and n.

    Examples
    --------
    A gradient of a convex function (here x -> 2x) is an optimal map: its debiased gap is ~0; a
    rotation is not:

    >>> import numpy as np, monge
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> abs(monge.monge_gap(x, 2.0 * x, debiased=True).value) < 0.05
    True
    >>> R = np.array([[0.0, -1.0], [1.0, 0.0]])
    >>> monge.monge_gap(x, x @ R.T, debiased=True).value > 0.5
    True
    """
    x, tx, batched = points_pair(x, tx)
    if batched:
        raise ValueError("x: monge_gap takes single point clouds (n, d)")
    if x.shape[0] != tx.shape[0]:
        raise ValueError(f"x, tx: need one image per sample ({x.shape[0]} vs {tx.shape[0]})")
    p = check_cost(cost, p, x, tx, names=("x", "tx"))
    lam = check_lam(cost, lam)
    if eps is None:
        if relative_epsilon is not None:
            raise ValueError("eps: required when relative_epsilon is given")
        eps, relative_epsilon = 0.05, "std"
    eps = positive("eps", eps)
    if relative_epsilon not in _EPS_MODES:
        raise ValueError(f"relative_epsilon: expected None, 'mean' or 'std', got {relative_epsilon!r}")
    if grad is True:
        wanted = {"tx", "x"}
    elif grad is False or grad is None:
        wanted = set()
    else:
        wanted = {grad} if isinstance(grad, str) else set(grad)
        for w in wanted:
            choice("grad", w, ("tx", "x"))
    opts = solver_options(x.dtype, tol, max_iter, eps_scaling, scaling_factor, stage_tol,
                          overrelax, nthreads, anderson)
    n, d = x.shape
    if online is None:
        # measured (n = 1024): the dense matrix wins while it sits in cache, or for d > 8
        nbytes = n * n * x.itemsize
        online = nbytes > (1 << 30) or (nbytes > (64 << 20) and d <= 8)
    if not isinstance(debiased, (bool, np.bool_)):
        raise TypeError(f"debiased: expected a bool, got {type(debiased).__name__}")
    out = _core.monge_gap(x, tx, cost=cost, p=p, lam=lam, eps=eps,
                          eps_mode=_EPS_MODES[relative_epsilon], grad_t="tx" in wanted,
                          grad_x="x" in wanted, dense=not online, debiased=bool(debiased), **opts)
    warn_unconverged("monge_gap", out["converged"], out["error"], out["n_iter"], opts["tol"], False)
    return MongeGapResult(out["value"], out["displacement"], out["ent_reg_cost"], out["eps"],
                          out["grad_t"], out["grad_x"], out["n_iter"], out["converged"], out["error"])
