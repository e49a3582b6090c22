"""Multiscale Sinkhorn for large point clouds in low dimension (mirrors csrc/sinkhorn/multiscale.c).

Each cloud is clustered on a grid hierarchy (Morton order); the solve runs coarse to fine (cell
centroids while eps is large against the cells, then the points) and every half-step sums only
the block pairs whose plan mass can matter, with an upper bound E of the mass it skipped.  The
reported error is the truncated plan's L1 marginal violation plus 2E, an upper bound of the full
plan's, so ``converged=True`` means within `tol` with the truncation included.  Memory is
O(n + m + kept blocks), never n x m.  Reached through ``monge.sinkhorn(..., method='multiscale')``
and ``monge.sinkhorn_divergence(..., method='multiscale')``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._policy import (ANDERSON_MAX_MEMORY, check_masses, marginal_penalties,
                      solver_options, warn_unconverged)
from ._validate import choice, integer, positive, potentials_init, weights
from .geometry import check_cost, points_pair

COSTS = ("sqeuclidean", "euclidean", "pnorm")
MAX_DIM = 8


@dataclass
class MultiscaleOptions:
    """The knobs of the multiscale solver (None: the measured defaults of the C library).

    Attributes
    ----------
    cluster_scale
        side of the finest grid cells; None: the first grid level with 2 points per cell on
        average
    truncation
        tau: a block pair is kept when the bound of its plan mass (box against box, then item
        against box) is at least e^-tau of its row block's or column block's mass (default 12;
        grown by 4 while the skipped-mass bound exceeds bound_frac x the tolerance)
    switch_ratio
        the solve runs on the centroids of cells of side h while eps >= switch_ratio h^2
        (default 0.5)
    bound_frac
        in (0, 0.5), default 0.1 (the stopping test adds twice the skipped-mass bound to the
        marginal error, so the bound must stay under half the tolerance)
    warm_tol
        in (0, 1): the tolerance of a coarse level that starts at the target eps, whose solution
        only warm-starts the next level at the same eps (default: the stage tolerance, as on the
        levels that anneal; benchmarks/multiscale.py --tune-warm measured looser values slower
        on clustered clouds)
    refine_anderson
        Anderson memory (0: plain updates) on a level that starts at the target eps after a
        coarser level that ended there, so that it only carries the potentials to finer cells
        from a warm start near the solution (default: the solver's `anderson`, as on the other
        levels; benchmarks/multiscale.py --tune-refine measured plain updates faster on uniform
        clouds of 10^5 points and slower on surfaces and clustered clouds)
    refine_stall
        on such a level, the iterations without a 10% better error after which Anderson hands
        the level to the adaptive over-relaxation, once the error is within 10 x the tolerance:
        its fast start is kept and its stall near the solution cut short (0: the solver's limit
        at any error, as on the other levels; default 5, which benchmarks/multiscale.py
        --tune-stall chose on its tuning problems, where it never took more iterations)
    coarse_correction
        on the points level when it only refines (balanced transport at tol >= 1e-4, such as
        float32's default; not the divergence's self-terms), after two iterations shift the potentials by the best correction constant on
        the finest cells (the scaling problem of the kept plan summed over cell pairs, which
        removes the smooth part of the error the points' iterations remove slowly), then run
        plain updates to the tolerance (default True; skipped when that summed plan would exceed
        2^26 entries, as at 10^6 points in the unit cube)

    Examples
    --------
    >>> from monge.multiscale import MultiscaleOptions
    >>> MultiscaleOptions(truncation=16.0).kwargs()
    {'truncation': 16.0}
    """

    cluster_scale: float | None = None
    truncation: float | None = None
    switch_ratio: float | None = None
    bound_frac: float | None = None
    warm_tol: float | None = None
    refine_anderson: int | None = None
    refine_stall: int | None = None
    coarse_correction: bool | None = None

    def kwargs(self):
        out = {}
        if self.cluster_scale is not None:
            out["cluster_scale"] = positive("cluster_scale", self.cluster_scale)
        if self.truncation is not None:
            t = positive("truncation", self.truncation)
            if t > 60:
                raise ValueError(f"truncation: at most 60, got {t}")
            out["truncation"] = t
        if self.switch_ratio is not None:
            out["switch_ratio"] = positive("switch_ratio", self.switch_ratio)
        if self.bound_frac is not None:
            bf = positive("bound_frac", self.bound_frac)
            if not bf < 0.5:
                raise ValueError(f"bound_frac: must be in (0, 0.5) (the stopping test adds twice "
                                 f"the skipped-mass bound), got {bf}")
            out["bound_frac"] = bf
        if self.warm_tol is not None:
            wt = positive("warm_tol", self.warm_tol)
            if not wt < 1:
                raise ValueError(f"warm_tol: must be in (0, 1), got {wt}")
            out["warm_tol"] = wt
        if self.refine_anderson is not None:
            aa = integer("refine_anderson", self.refine_anderson, 0)
            if aa > ANDERSON_MAX_MEMORY:
                raise ValueError(f"refine_anderson: memory at most {ANDERSON_MAX_MEMORY}, got {aa}")
            out["refine_anderson"] = aa
        if self.refine_stall is not None:
            rs = integer("refine_stall", self.refine_stall, 0)
            if rs > 1_000_000_000:
                raise ValueError(f"refine_stall: at most 1e9 iterations, got {rs}")
            out["refine_stall"] = rs
        if self.coarse_correction is not None:
            if not isinstance(self.coarse_correction, (bool, np.bool_)):
                raise TypeError(f"coarse_correction: expected True or False, got "
                                f"{self.coarse_correction!r}")
            out["coarse_correction"] = int(bool(self.coarse_correction))
        return out


# method='auto' takes the multiscale solver for one pair of clouds with the sqeuclidean cost when
# d <= AUTO_MAX_DIM, n m >= AUTO_MIN_ENTRIES[d] and eps <= AUTO_MAX_EPS_REL x the squared diameter
# of the clouds' bounding box: where benchmarks/method_auto.py --tuning measured it faster than the
# exact online solve (judged on --held-out: docs/multiscale.md).
AUTO_COSTS = ("sqeuclidean",)
AUTO_MAX_DIM = 8
AUTO_MIN_ENTRIES = (1_000_000,) * 2 + (4_000_000,) * 6     # d = 1 .. 8
AUTO_MAX_EPS_REL = 5e-3


def auto_method(x, y, eps, cost="sqeuclidean"):
    """The solver method='auto' runs for point clouds x, y: 'multiscale' or 'exact'.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.multiscale import auto_method
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((20000, 2)), rng.random((20000, 2))
    >>> auto_method(x, y, eps=1e-3), auto_method(x[:100], y[:100], eps=1e-3)
    ('multiscale', 'exact')
    """
    if cost not in AUTO_COSTS or x is None or y is None:
        return "exact"
    x, y = np.asarray(x), np.asarray(y)
    if (x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]
            or not 1 <= x.shape[1] <= AUTO_MAX_DIM):
        return "exact"
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if n == 0 or m == 0 or n * m < AUTO_MIN_ENTRIES[d - 1]:
        return "exact"
    # NaN or infinite coordinates fall through to the exact solver, whose checks name them
    return ("multiscale" if eps <= AUTO_MAX_EPS_REL * squared_diameter(x, y) < math.inf
            else "exact")


def resolve_method(method, x, y, eps, cost, exact_only, knobs):
    """The solver a call runs, 'exact' or 'multiscale': `method` itself, or for 'auto' the choice
    of :func:`auto_method` unless `exact_only` (an option only the exact solver has was given).
    `knobs`: whether cluster_scale or truncation was given (they need method='multiscale')."""
    choice("method", method, ("exact", "multiscale", "auto"))
    if knobs and method != "multiscale":
        raise ValueError("cluster_scale, truncation: options of method='multiscale' (not of "
                         f"{method!r})")
    if method == "auto":
        return "exact" if exact_only else auto_method(x, y, eps, cost)
    return method


def squared_diameter(x, y):
    """Squared diagonal of the bounding box of two clouds (n, d), (m, d), in float64: the max
    cost of the sqeuclidean cost up to a factor <= 1 (the scale method='auto' measures eps in)."""
    with np.errstate(invalid="ignore"):
        lo = np.minimum(x.min(0), y.min(0)).astype(np.float64)
        hi = np.maximum(x.max(0), y.max(0)).astype(np.float64)
    return float(np.sum((hi - lo) ** 2))


def check_problem(x, y, cost, what="method='multiscale'"):
    """Validates what the multiscale solver takes: one pair of point clouds, d <= 8, a cost it
    can bound."""
    if cost not in COSTS:
        raise ValueError(f"cost: {what} supports {', '.join(COSTS)}, not {cost!r}")
    if x.ndim != 2:
        raise ValueError(f"x: {what} takes one problem (n, d), not a batch")
    if x.shape[1] > MAX_DIM:
        raise ValueError(f"x: {what} is for dimension <= {MAX_DIM}, got {x.shape[1]}")


@dataclass
class MultiscaleResult:
    """Result of a multiscale solve (``monge.sinkhorn(..., method='multiscale')``).

    Attributes
    ----------
    f, g, value, cost, mass, error, n_iter, converged, eps, anderson_iter
        as in :class:`monge.SinkhornResult` (error includes twice the truncation bound)
    bound
        upper bound of the plan mass the truncation skipped, at the final potentials (included
        in `error`, twice)
    truncation, cluster_scale
        tau and the side of the finest cells at the end
    kept_entries, kept_blocks
        entries and block pairs of the truncated plan (the work of one half-step)
    levels
        levels of the grid hierarchy, the points included
    coarse_iterations
        iterations of the coarse correction's scaling problem (see
        :class:`MultiscaleOptions`); 0: not run, -1: run but not applied (its plan too large,
        or no better than the start)

    The plan is available as products (:meth:`apply`, :meth:`apply_transpose`), gradients
    (:meth:`gradient`) and its kept entries (:meth:`plan_coo`), all on the truncated kernel
    selected from the final potentials.

    Examples
    --------
    >>> import numpy as np, monge
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((2000, 2)), rng.random((2000, 2))
    >>> r = monge.sinkhorn(x, y, eps=1e-3, method="multiscale")
    >>> e = monge.sinkhorn(x, y, eps=1e-3)
    >>> r.converged, bool(abs(r.value - e.value) < 1e-6), r.kept_entries < 2000 * 2000
    (True, True, True)
    """

    f: np.ndarray
    g: np.ndarray
    value: float
    cost: float
    mass: float
    error: float
    n_iter: int
    converged: bool
    eps: float
    bound: float
    truncation: float
    cluster_scale: float
    kept_entries: int
    kept_blocks: int
    levels: int
    anderson_iter: int = 0
    _problem: tuple | None = field(repr=False, default=None)
    _grads: dict | None = field(repr=False, default=None)  # the solve's own, see solve(grads=)
    coarse_iterations: int = 0

    def _kw(self):
        x, y, a, b, cost, p = self._problem
        return (x, y, a, b), dict(cost=cost, p=p, cluster_scale=self.cluster_scale,
                                  truncation=self.truncation)

    def _pass(self, v=None, transpose=False, rowsum=False, grad=False):
        arrs, kw = self._kw()
        f, g = self.f, self.g
        return _core.ms_apply(*arrs, f, g, self.eps, V=v, transpose=transpose, rowsum=rowsum,
                              grad=grad, **kw)

    def _apply(self, v, transpose):
        rows = self.f.shape[0] if transpose else self.g.shape[0]
        v = np.asarray(v, dtype=np.float64)
        if v.ndim not in (1, 2) or v.shape[0] != rows:
            raise ValueError(f"v: expected shape ({rows},) or ({rows}, k), got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("v: contains NaN or infinity")
        out = self._pass(np.ascontiguousarray(v.reshape(rows, -1)), transpose)["out"]
        return out[:, 0] if v.ndim == 1 else out

    def apply(self, v):
        """P @ v for v of shape (m,) or (m, k), on the truncated plan."""
        return self._apply(v, False)

    def apply_transpose(self, u):
        """P.T @ u for u of shape (n,) or (n, k), on the truncated plan."""
        return self._apply(u, True)

    def marginals(self):
        """(P 1, P^T 1) of the truncated plan."""
        return self._pass(rowsum=True)["rowsum"], self._pass(transpose=True, rowsum=True)["rowsum"]

    def gradient(self, wrt):
        """Gradient of OT_eps by the envelope theorem: wrt='x' (n, d) or 'y' (m, d) as
        sum_j P_ij d1 c(x_i, y_j) on the truncated plan; 'a', 'b' as for
        :meth:`monge.SinkhornResult.gradient` (balanced problems)."""
        if wrt in ("x", "y"):
            return self._pass(transpose=wrt == "y", grad=True)["grad"]
        if wrt in ("a", "b"):
            _, _, a, b, _, _ = self._problem
            other = b if wrt == "a" else a
            m_other = 1.0 if other is None else float(np.sum(other))
            return (self.f if wrt == "a" else self.g) - self.eps * (1.0 - m_other)
        raise ValueError(f"wrt: expected one of 'x', 'y', 'a', 'b', got {wrt!r}")

    def plan_coo(self):
        """The kept entries of the plan as (rows, cols, values), int64, int64, float64 (e.g.
        ``scipy.sparse.coo_array((values, (rows, cols)), shape=(n, m))``)."""
        arrs, kw = self._kw()
        kw.pop("nthreads", None)
        return _core.ms_plan(*arrs, self.f, self.g, self.eps, **kw)

    def plan(self):
        """The plan as a dense (n, m) array, zero outside the kept blocks (O(n m) memory: for
        large clouds use :meth:`plan_coo`)."""
        rows, cols, vals = self.plan_coo()
        P = np.zeros((self.f.shape[0], self.g.shape[0]))
        P[rows, cols] = vals
        return P


def solve(x, y, a=None, b=None, *, eps, cost="sqeuclidean", p=2.0, tau=None, tau_a=None,
          tau_b=None, tol=None, max_iter=None, scaling_factor=None, stage_tol=None,
          overrelax="auto", anderson=None, init=None, callback=None, nthreads=None,
          options=None, warn=True, symmetric=False, grads=()):
    """The multiscale solve behind ``monge.sinkhorn(..., method='multiscale')`` (symmetric: the
    problem OT_eps(a, a) on x, y and b being x and a, solved by the symmetric update).  grads: any of
    'x', 'y' ('x' only when symmetric): the point gradients on the solve's final kept plan, into
    the result's ``_grads``, one pass each without the new selection of :meth:`gradient`."""
    eps = positive("eps", eps)
    x, y, batched = points_pair(x, y)
    if batched:
        raise ValueError("x: method='multiscale' takes one problem (n, d), not a batch")
    p = check_cost(cost, p, x, y)
    check_problem(x, y, cost)
    n, m = x.shape[0], y.shape[0]
    A = weights("a", a, n, 1)
    Bw = weights("b", b, m, 1)
    ta, tb = marginal_penalties(tau, tau_a, tau_b)
    if math.isinf(ta) and math.isinf(tb):
        check_masses(A, Bw, 1)
    if scaling_factor is None:
        scaling_factor = 0.5
    # stage_tol None: the engine's 1e-4, which benchmarks/multiscale.py --tune-anneal chose with
    # switch_ratio 0.5 on uniform and clustered tuning clouds
    opts = solver_options(x.dtype, tol, max_iter, True, scaling_factor, stage_tol, overrelax,
                          nthreads, anderson)
    opts.pop("eps_scaling", None)
    opts.pop("kernel", None)
    if opts.get("nthreads") is None:
        opts.pop("nthreads", None)
    ms = (options or MultiscaleOptions()).kwargs()
    f0, g0 = (None, None) if init is None else potentials_init(init, n, m)
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    a1 = None if A is None else A[0]
    b1 = None if Bw is None else Bw[0]
    out = _core.sinkhorn_multiscale(x, y, a1, b1, cost=cost, p=p, eps=eps, tau_a=ta, tau_b=tb,
                                    f0=f0, g0=g0, callback=callback, symmetric=bool(symmetric),
                                    grad_x="x" in grads, grad_y="y" in grads, **opts, **ms)
    if warn and not out["stopped"]:
        warn_unconverged("sinkhorn (multiscale)", np.array([out["converged"]]),
                         np.array([out["error"]]), np.array([out["n_iter"]]), opts["tol"], False,
                         eps=eps, eps_reached=np.array([out["eps_reached"]]))
    return MultiscaleResult(out["f"], out["g"], out["value"], out["cost"], out["mass"],
                            out["error"], out["n_iter"], bool(out["converged"]),
                            float(out["eps_reached"]), out["bound"], out["truncation"],
                            out["cluster_scale"], out["kept_entries"], out["kept_blocks"],
                            out["levels"], out["anderson_iter"], (x, y, a1, b1, cost, p),
                            {k: out["grad_" + k] for k in ("x", "y") if out["grad_" + k] is not None},
                            int(out["coarse_iterations"]))


def divergence(x, y, a=None, b=None, *, eps, cost="sqeuclidean", p=2.0, grad=(), static_b=False,
               tol=None, max_iter=None, scaling_factor=None, stage_tol=None, overrelax="auto",
               anderson=None, nthreads=None, options=None):
    """The three multiscale solves of S_eps and its gradients (balanced problems): returns
    (value, grads dict, (ot_ab, ot_aa, ot_bb), n_iter, converged, error)."""
    kw = dict(eps=eps, cost=cost, p=p, tol=tol, max_iter=max_iter, scaling_factor=scaling_factor,
              stage_tol=stage_tol, overrelax=overrelax, anderson=anderson, nthreads=nthreads,
              options=options, warn=False)
    # the point gradients come from each solve's final pass (no second tree and selection)
    ab = solve(x, y, a, b, grads=tuple(k for k in ("x", "y") if k in grad), **kw)
    aa = solve(x, x, a, a, symmetric=True, grads=("x",) if "x" in grad else (), **kw)
    bb = None if static_b else solve(y, y, b, b, symmetric=True,
                                     grads=("x",) if "y" in grad else (), **kw)
    value = ab.value - 0.5 * aa.value - (0.0 if bb is None else 0.5 * bb.value)
    grads = {}
    if "x" in grad:
        grads["x"] = ab._grads["x"] - aa._grads["x"]
    if "y" in grad:
        grads["y"] = ab._grads["y"] - bb._grads["x"]
    if "a" in grad:   # the symmetric potential p = f = g
        grads["a"] = ab.f - 0.5 * (aa.f + aa.g)
    if "b" in grad:
        grads["b"] = ab.g - 0.5 * (bb.f + bb.g)
    runs = [r for r in (ab, aa, bb) if r is not None]
    conv = all(r.converged for r in runs)
    err = max(r.error for r in runs)
    nit = sum(r.n_iter for r in runs)
    tol_used = solver_options(np.asarray(x).dtype, tol, None, True, 0.5, None, "auto", None)["tol"]
    warn_unconverged("sinkhorn_divergence (multiscale)", np.array([conv]), np.array([err]),
                     np.array([nit]), tol_used, False)
    ot = (ab.value, aa.value, float("nan") if bb is None else bb.value)
    return value, grads, ot, nit, conv, err


__all__ = ["MultiscaleOptions", "MultiscaleResult"]
