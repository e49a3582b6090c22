"""Entropic optimal transport: log-domain Sinkhorn (mirrors csrc/sinkhorn/, csrc/sinkhorn.h).

    OT_eps(a, b) = min_P  <P, C> + eps KL(P | a x b)
                   [+ tau_a KL(P 1 | a) + tau_b KL(P^T 1 | b)   when unbalanced]

solved through dual potentials f, g with  P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
At convergence (balanced, probability weights) OT_eps = <a, f> + <b, g>.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._policy import (ANDERSON_MAX_MEMORY, ANDERSON_MEMORY, DEFAULTS,  # noqa: F401
                      ConvergenceWarning, check_masses, marginal_penalties, solver_options,
                      warn_unconverged)
from ._validate import (choice, float_array, integer, positive, pot_argument_order,
                        potentials_init, weights)
from .geometry import check_cost, check_lam, points_pair
from .multiscale import resolve_method


# On the online path a cost costs O(d) per entry per pass, the dense path reads 8 bytes per entry.
# d = 16 is an estimate of the crossover, not yet measured on an idle machine: run
# `python benchmarks/sinkhorn.py --crossover` and adjust.
_ONLINE_MAX_D = 16
_DENSE_MAX_BYTES = 1 << 30
_KERNEL = {True: "always", False: "off", "auto": "auto"}


@dataclass(frozen=True)
class _Problem:
    """What a result keeps to rebuild its plan: the arrays as the binding takes them (with the
    batch axis first for a batch) and the cost.  Built once by :func:`sinkhorn`."""

    C: np.ndarray | None
    x: np.ndarray | None
    y: np.ndarray | None
    a: np.ndarray | None
    b: np.ndarray | None
    cost: str
    p: float
    lam: float
    tau_a: float
    tau_b: float

    def select(self, k):
        """Problem k of a batch."""
        sel = lambda v: None if v is None else v[k]  # noqa: E731
        return _Problem(sel(self.C), sel(self.x), sel(self.y), sel(self.a), sel(self.b),
                        self.cost, self.p, self.lam, self.tau_a, self.tau_b)

    @property
    def arrays(self):
        """(C, x, y, a, b): the leading arguments of _core.plan / apply / grad_points."""
        return self.C, self.x, self.y, self.a, self.b

    @property
    def cost_kw(self):
        return dict(cost=self.cost, p=self.p, lam=self.lam)


@dataclass
class SinkhornResult:
    """Result of :func:`sinkhorn`.

    Attributes
    ----------
    f, g
        dual potentials, shapes (n,), (m,) (or (B, n), (B, m) for a batch)
    value
        OT_eps at (f, g): the dual objective; <a, f> + <b, g> for balanced
        probability weights at convergence
    cost
        the transport cost <P, C>
    mass
        total mass of the plan
    error
        L1 violation of the marginal (KKT) conditions at (f, g)
    n_iter
        iterations (each one f and one g update), all epsilon stages
    converged
        error <= tol at the target eps
    eps
        the regularisation the potentials belong to: the eps asked for, unless max_iter
        stopped an eps-scaling run in an earlier stage (then that stage's eps, with a
        ConvergenceWarning; per problem for a batch)
    kernel_iter
        of n_iter, the iterations run on the kernel cache (see `kernel`)
    anderson_iter
        of n_iter, the iterations ended by an Anderson extrapolation (see `anderson`)

    Examples
    --------
    >>> import numpy as np, monge
    >>> x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    >>> r = monge.sinkhorn(x, y, eps=0.01)
    >>> r.converged, round(r.cost, 6), r.apply(np.ones(2)).round(6).tolist()   # P 1 = a
    (True, 0.5, [0.5, 0.5])
    """

    f: np.ndarray
    g: np.ndarray
    value: float | np.ndarray
    cost: float | np.ndarray
    mass: float | np.ndarray
    error: float | np.ndarray
    n_iter: int | np.ndarray
    converged: bool | np.ndarray
    eps: float
    _problem: _Problem | None = field(repr=False, default=None)
    kernel_iter: int | np.ndarray = 0
    anderson_iter: int | np.ndarray = 0

    @property
    def batched(self):
        return self.f.ndim == 2

    def _single(self, index):
        pb = self._problem
        if pb is None:
            raise ValueError("this result does not carry its problem")
        if self.batched:
            if index is None:
                raise ValueError("index: required for a batched result")
            k = integer("index", index)
            if k >= self.f.shape[0]:
                raise ValueError(f"index: {k} out of range for a batch of {self.f.shape[0]}")
            eps = self.eps if np.ndim(self.eps) == 0 else float(self.eps[k])
            return pb.select(k), self.f[k], self.g[k], eps
        return pb, self.f, self.g, self.eps

    def plan(self, index=None):
        """The dense plan P (n, m), P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps).

        For a batch, `index` selects the problem.  Costs O(n m) memory: for big point clouds use
        :meth:`apply` / :meth:`apply_transpose` instead."""
        pb, f, g, eps = self._single(index)
        return _core.plan(*pb.arrays, f, g, eps, **pb.cost_kw)

    def _apply(self, v, transpose, index):
        pb, f, g, eps = self._single(index)
        n, m = f.shape[0], g.shape[0]
        rows = n if transpose else m
        v = np.asarray(v, dtype=np.float64)
        if v.ndim not in (1, 2) or v.shape[0] != rows:
            raise ValueError(f"v: expected shape ({rows},) or ({rows}, k), got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("v: contains NaN or infinity")
        out = _core.apply(*pb.arrays, f, g, eps, v.reshape(rows, -1), transpose=transpose,
                          **pb.cost_kw)
        return out[:, 0] if v.ndim == 1 else out

    def apply(self, v, index=None):
        """P @ v for v of shape (m,) or (m, k), without storing P."""
        return self._apply(v, False, index)

    def apply_transpose(self, u, index=None):
        """P.T @ u for u of shape (n,) or (n, k), without storing P."""
        return self._apply(u, True, index)

    def gradient(self, wrt, index=None):
        """Gradient of OT_eps (the `value`) by the envelope theorem, from the potentials.

        wrt='x': sum_j P_ij d1 c(x_i, y_j), shape (n, d); wrt='y': shape (m, d) (point clouds only);
        wrt='a': phi_a(f_i) - eps (r_i - m(b)) with r_i = (P 1)_i / a_i, shape (n,) (f_i up to a
        constant for balanced probability weights); wrt='b' likewise.  Exact at convergence."""
        choice("wrt", wrt, ("x", "y", "a", "b"))
        pb, f, g, eps = self._single(index)
        if wrt in ("x", "y"):
            if pb.x is None:
                raise ValueError("wrt: gradients with respect to points need point clouds, not C")
            return _core.grad_points(pb.x, pb.y, pb.a, pb.b, f, g, eps,
                                     transpose=wrt == "y", **pb.cost_kw)
        pot, tau = (f, pb.tau_a) if wrt == "a" else (g, pb.tau_b)
        other = pb.b if wrt == "a" else pb.a
        m_other = 1.0 if other is None else float(np.sum(other))
        if math.isinf(tau):
            return pot - eps * (1.0 - m_other)
        r = np.exp(-pot / tau)
        return tau * (1.0 - r) - eps * (r - m_other)

    def transform(self, X, index=None, jacobian=False):
        """The entropic map out of sample: T(x) = sum_j w_j(x) y_j for new points X (k, d).

        w_j(x) = b_j exp((g_j + f(x) - c(x, y_j)) / eps), with f(x) = -eps log sum_j b_j
        exp((g_j - c(x, y_j)) / eps) the c-transform of the target potential g, so the weights
        sum to 1: at the source points of a converged solve this is the barycentric projection of
        the plan, (P y)_i / a_i, and elsewhere its extension (Pooladian & Niles-Weed 2021), for
        any cost of the problem.  Point clouds only (a cost matrix has no costs to new points);
        balanced problems.  With ``jacobian=True`` also returns dT/dx, (k, d, d), for the
        ``sqeuclidean`` cost: (2 / eps) times the covariance of y under w(x).  For the
        sqeuclidean cost with uniform weights :class:`monge.maps.EntropicMap` is the estimator
        form of the same map.

        Examples
        --------
        >>> import numpy as np, monge
        >>> x = np.random.default_rng(0).normal(size=(200, 2))
        >>> r = monge.sinkhorn(x, x + [3.0, 0.0], eps=0.05)
        >>> t = r.transform(np.array([[0.0, 0.0], [1.0, -1.0]]))    # about x + (3, 0)
        >>> bool(np.allclose(t, [[3.0, 0.0], [4.0, -1.0]], atol=0.15))
        True
        """
        pb, f, g, eps = self._single(index)
        if pb.x is None:
            raise ValueError("transform: needs point clouds (a cost matrix has no costs to new "
                             "points)")
        if not (math.isinf(pb.tau_a) and math.isinf(pb.tau_b)):
            raise ValueError("transform: the barycentric projection is for balanced problems")
        X = float_array("X", X, (2,), dtype=pb.y.dtype)
        if X.shape[1] != pb.y.shape[1]:
            raise ValueError(f"X: expected points of dimension {pb.y.shape[1]}, got {X.shape[1]}")
        if not isinstance(jacobian, (bool, np.bool_)):
            raise TypeError(f"jacobian: expected a bool, got {type(jacobian).__name__}")
        if jacobian and pb.cost != "sqeuclidean":
            raise ValueError(f"jacobian: available for the sqeuclidean cost, not {pb.cost!r}")
        fx = _core.c_transform(X, pb.y, pb.b, g, eps, **pb.cost_kw)
        ones = np.ones(len(X))
        y64 = np.asarray(pb.y, dtype=np.float64)
        # a = 1 per new point: P_ij = b_j exp((f(x_i) + g_j - c_ij) / eps) = w_ij
        cols = [y64] if not jacobian else [y64] + [y64 * y64[:, [k]] for k in range(y64.shape[1])]
        out = _core.apply(None, X, pb.y, ones, pb.b, fx, g, eps, np.hstack(cols), **pb.cost_kw)
        d = y64.shape[1]
        T = out[:, :d]
        if not jacobian:
            return T
        second = out[:, d:].reshape(len(X), d, d)          # sum_j w_ij y_j y_j^T
        cov = second - T[:, :, None] * T[:, None, :]
        return T, (2.0 / eps) * cov

    def marginals(self, index=None):
        """(P 1, P^T 1), computed without storing P."""
        pb, f, g, eps = self._single(index)
        return (self.apply(np.ones(g.shape[0]), index), self.apply_transpose(np.ones(f.shape[0]), index))


def sinkhorn(x=None, y=None, a=None, b=None, *, C=None, eps=None, cost="sqeuclidean", p=2.0, lam=1.0,
             tau=None, tau_a=None, tau_b=None, tol=None, max_iter=None, eps_scaling="auto",
             scaling_factor=None, eps_start=None, stage_tol=None, overrelax="auto", init=None,
             online=None, kernel="auto", anderson=None, callback=None, verbose=False,
             nthreads=None, method="exact", cluster_scale=None, truncation=None):
    """Entropic optimal transport between two weighted point clouds or for a cost matrix.

    Solves  OT_eps(a, b) = min_P <P, C> + eps KL(P | a x b)  over couplings P of a and b (or, when
    `tau` is given, with the marginal constraints replaced by tau KL penalties: unbalanced OT), in
    the log domain, stable down to eps = 1e-4 x max cost.

    Parameters
    ----------
    x, y : arrays (n, d), (m, d), or (B, n, d), (B, m, d) for a batch of B problems
        Point clouds; costs are computed on the fly (O(n + m) memory) unless `online=False`.
    a, b : arrays (n,), (m,) (or (B, n), (B, m)), optional
        Non-negative weights, uniform when omitted.  Balanced problems need equal masses.
    C : array (n, m) or (B, n, m), optional
        A dense cost matrix instead of x, y.
    eps : float
        Entropic regularisation (absolute, > 0).
    cost : {'sqeuclidean', 'euclidean', 'pnorm', 'cosine', 'elastic'}
        Ground cost for point clouds; sqeuclidean is ``|x - y|^2`` (no 1/2).  `p` is the pnorm
        exponent, `lam` the L1 weight of the elastic cost 1/2 ``|x - y|^2`` + lam ``|x - y|_1``.
    tau, tau_a, tau_b : float, optional
        KL marginal penalties for unbalanced OT (`tau` sets both; inf or None = hard constraint).
    tol : float
        Stop when the L1 marginal violation <= tol, tested every iteration.  Default 1e-6
        (float64) or 1e-4 (float32).
    max_iter : int, optional
        Iterations over all epsilon stages.  Default 10000.  Reaching it sets converged=False and
        warns.
    eps_scaling : bool or 'auto'
        Anneal eps geometrically from `eps_start` (default: the max cost) by `scaling_factor`
        (default 0.1), warm-starting each stage and running it to `stage_tol` (default 1e-4).
        'auto' (the default here; the C library's default is off) turns it on when
        eps < 1e-4 x max cost and no `init` is given, and otherwise restarts annealed when the
        measured convergence rate projects more than 2000 iterations: with the adaptive
        over-relaxation, annealing only pays below that (docs/design/sinkhorn.md).
    overrelax : 'auto' or float in (0, 2)
        Over-relaxation omega of the updates (1.0 = plain Sinkhorn).  With 'auto', Anderson
        acceleration runs (see `anderson`), and a stage where it stalls (200 iterations without a
        10% better error) or overflows goes on with an omega estimated from the observed
        convergence rate.  A number fixes omega and turns Anderson off.
    anderson : int, optional
        Memory of the Anderson acceleration of the potentials (0 turns it off, at most 32).
        Default: 8 with overrelax='auto', else 0.  It extrapolates g from the last `anderson` iterations (a
        multisecant step on the fixed-point residual), which halves the iterations on typical
        problems (measured in benchmarks/sinkhorn.py).
    init : (f, g), optional
        Warm start from potentials.
    online : bool, optional
        For point clouds: compute costs on the fly (True) or build the dense matrix once (False).
        Default: online when d <= 16 or the matrix would exceed 1 GiB.
    kernel : 'auto', True or False
        Kernel-domain fast path at the target eps: a float cache of the stabilised kernel
        (n * m * 4 bytes) read once per iteration instead of one exp per entry (several times
        faster where exp(-C/eps) is representable); it gives way to the log domain by itself when
        eps is too small for it, and the stopping test is always made in the log domain in
        double, so results meet `tol` either way.  'auto' uses it for dense costs (`C`, or
        `online=False`) and for online problems with n * m <= 2**21 (an 8 MiB cache); larger
        online problems keep their O(n + m) memory; not below n * m = 4096, where it saves
        nothing.  True: always; False: never.
    callback : callable(iteration, error) -> bool, optional
        Called every iteration; returning True stops the solve (the result is returned with
        converged=False).
    verbose : bool
        Print the error every 100 iterations.
    nthreads : int, optional
        Threads for this call (default: monge.get_num_threads()).
    method : {'exact', 'multiscale', 'auto'}
        'auto' runs the multiscale solver where it was measured faster than the exact one
        (benchmarks/method_auto.py): one balanced pair of clouds with the sqeuclidean cost,
        d <= 8, eps <= 5e-3 x the squared diameter of the clouds' bounding box and n m >= 10^6
        (d <= 2) or 4 x 10^6 (d = 3 .. 8), with none of `online`, `kernel`, `eps_start`, a
        boolean `eps_scaling` given; the exact solver otherwise.
        'multiscale' (one pair of point clouds, d <= 8, sqeuclidean / euclidean / pnorm costs):
        grid clusters coarse to fine and truncated kernels with a bound of the skipped mass that
        the stopping test includes, memory O(n + m + kept blocks); for 10^4 points and more in
        low dimension at small eps (docs/multiscale.md).  Returns a
        :class:`monge.multiscale.MultiscaleResult`; eps is annealed by `scaling_factor`
        (default 0.5 here) whatever `eps_scaling` says, and `online`,
        `kernel`, `eps_start` do not apply.
    cluster_scale, truncation : float, optional
        The multiscale knobs (:class:`monge.multiscale.MultiscaleOptions`).

    Returns
    -------
    SinkhornResult
        Potentials, value, transport cost, mass, error, iterations, convergence flag, and the plan
        on demand (`.plan()`, `.apply(v)`, `.apply_transpose(u)`).


    Notes
    -----
    With the cost :math:`C_{ij} = c(x_i, y_j)` and :math:`\\varepsilon` = `eps`, the balanced problem is

    .. math::

        \\mathrm{OT}_\\varepsilon(a, b) = \\min_{P \\geq 0,\\; P 1 = a,\\; P^\\top 1 = b}
            \\langle P, C \\rangle + \\varepsilon\\, \\mathrm{KL}(P \\,\\|\\, a \\otimes b),

    whose optimal plan is :math:`P_{ij} = a_i b_j \\exp((f_i + g_j - C_{ij}) / \\varepsilon)`, with
    the potentials `f`, `g` updated in the log domain (docs/conventions.md).


    References
    ----------
    M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS 2013.
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.


    Examples
    --------
    >>> import numpy as np, monge
    >>> x = np.array([[0.0], [1.0]])
    >>> r = monge.sinkhorn(x, x, eps=0.01)       # each point stays where it is
    >>> r.converged, round(r.cost, 6)
    (True, 0.0)
    >>> r.plan().round(3)
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    pot_argument_order("sinkhorn", x, y, a, b, C)
    if eps is None:
        raise TypeError("eps: required (the entropic regularisation, absolute; POT's reg)")
    eps = positive("eps", eps)
    exact_only = (C is not None or online is not None or kernel != "auto" or eps_start is not None
                  or not isinstance(eps_scaling, str)
                  or tau is not None or tau_a is not None or tau_b is not None)
    method = resolve_method(method, x, y, eps, cost, exact_only,
                            cluster_scale is not None or truncation is not None)
    if method == "multiscale":
        if C is not None:
            raise ValueError("C: method='multiscale' works on point clouds x, y, not a cost matrix")
        from .multiscale import MultiscaleOptions, solve
        return solve(x, y, a, b, eps=eps, cost=cost, p=p, tau=tau, tau_a=tau_a, tau_b=tau_b,
                     tol=tol, max_iter=max_iter, scaling_factor=scaling_factor,
                     stage_tol=stage_tol, overrelax=overrelax, anderson=anderson, init=init,
                     callback=callback, nthreads=nthreads,
                     options=MultiscaleOptions(cluster_scale, truncation))
    if C is not None:
        if x is not None or y is not None:
            raise ValueError("C: give either a cost matrix C or point clouds x, y, not both")
        C = float_array("C", C, (2, 3))
        batched = C.ndim == 3
        B = C.shape[0] if batched else 1
        n, m = C.shape[-2], C.shape[-1]
        geom = dict(C=C if batched else C[None], x=None, y=None)
        p = 2.0
        lam = 0.0
        dtype = C.dtype
    else:
        if x is None or y is None:
            raise ValueError("x, y: give both point clouds (or a cost matrix C)")
        x, y, batched = points_pair(x, y)
        p = check_cost(cost, p, x, y)
        lam = check_lam(cost, lam)
        B = x.shape[0] if batched else 1
        n, m, d = x.shape[-2], y.shape[-2], x.shape[-1]
        dtype = x.dtype
        if online is None:
            online = d <= _ONLINE_MAX_D or n * m * x.itemsize > _DENSE_MAX_BYTES
        xb, yb = (x, y) if batched else (x[None], y[None])
        if online:
            geom = dict(C=None, x=xb, y=yb)
        else:
            Cs = [_core.cost_matrix(xb[k], yb[k], cost=cost, p=p, lam=lam) for k in range(B)]
            Cs = Cs[0][None] if B == 1 else np.stack(Cs)    # no copy of a single matrix
            geom = dict(C=Cs, x=None, y=None)
    A = weights("a", a, n, B)
    Bw = weights("b", b, m, B)
    ta, tb = marginal_penalties(tau, tau_a, tau_b)
    if math.isinf(ta) and math.isinf(tb):
        check_masses(A, Bw, B)
    opts = solver_options(dtype, tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax,
                          nthreads, anderson)
    eps_start = None if eps_start is None else positive("eps_start", eps_start)
    tol = opts["tol"]
    f0, g0 = (None, None) if init is None else potentials_init(init, n, m, B)
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    cb = callback
    if verbose:
        def cb(it, err, _user=callback):
            if it % 100 == 0:
                print(f"sinkhorn: iteration {it:6d}  marginal error {err:.3e}")
            return bool(_user(it, err)) if _user is not None else False

    if isinstance(kernel, str) and kernel == "auto":
        kmode = "auto"
    elif isinstance(kernel, (bool, np.bool_)):
        kmode = _KERNEL[bool(kernel)]
    else:
        raise TypeError(f"kernel: expected 'auto', True or False, got {kernel!r}")
    out = _core.sinkhorn(geom["C"], geom["x"], geom["y"], A, Bw, cost=cost, p=p, eps=eps,
                         tau_a=ta, tau_b=tb, eps_start=eps_start, f0=f0, g0=g0, compute_cost=True,
                         callback=cb, lam=lam, kernel=kmode, **opts)
    conv = out["converged"]
    reached = np.asarray(out["eps_reached"], dtype=np.float64)
    reached = np.where(np.isfinite(reached) & (reached > 0), reached, eps)   # not run: the target
    if not out["stopped"]:
        warn_unconverged("sinkhorn", conv, out["error"], out["n_iter"], tol, batched,
                         eps=eps, eps_reached=reached)
    # the potentials belong to the eps of the stage reached (the target unless max_iter stopped
    # an annealed run early): the plan, apply and gradients are rebuilt at that eps
    eps_out = eps if np.all(reached == eps) else (reached if batched else float(reached[0]))
    problem = _Problem(geom["C"], geom["x"], geom["y"], A, Bw, cost, p, lam, ta, tb)
    if not batched:
        problem = problem.select(0)
        return SinkhornResult(out["f"][0], out["g"][0], float(out["value"][0]), float(out["cost"][0]),
                              float(out["mass"][0]), float(out["error"][0]), int(out["n_iter"][0]),
                              bool(conv[0]), eps_out, problem, int(out["kernel_iter"][0]),
                              int(out["anderson_iter"][0]))
    return SinkhornResult(out["f"], out["g"], out["value"], out["cost"], out["mass"], out["error"],
                          out["n_iter"], conv, eps_out, problem, out["kernel_iter"],
                          out["anderson_iter"])
