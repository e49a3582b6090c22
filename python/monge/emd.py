"""Exact optimal transport: network simplex, 1-D and sliced Wasserstein (mirrors csrc/emd.c).

    OT(a, b) = min_P <P, C>  s.t.  P 1 = a,  P^T 1 = b,  P >= 0
             = max_{f, g} <a, f> + <b, g>  s.t.  f_i + g_j <= C_ij

The network simplex works on implicit arcs: with point clouds the costs are computed on demand,
so memory is O(n + m) whatever n and m; a dense C is read in place.  The plan comes back sparse
(the basic solution has at most n + m - 1 nonzeros), with the dual potentials.
"""
from __future__ import annotations

import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _core
from ._validate import choice, float_array, integer, nonneg, weights
from .geometry import check_cost, check_lam, check_magnitude, points_pair
from ._policy import ConvergenceWarning

_INITS = {"auto": 0, "index": 1, "projection": 2}


@dataclass
class EMDResult:
    """Result of :func:`emd` (one problem) or :func:`emd_1d`.

    Attributes
    ----------
    cost
        <P, C>, the optimal transport cost (W_p^p for emd_1d)
    rows, cols, values
        the plan's nonzeros: P[rows[k], cols[k]] = values[k], sorted by row then
        column, at most n + m - 1 of them
    f, g
        dual potentials, f_i + g_j <= C_ij with equality on the support, in the gauge
        <a, f> = <b, g> (None for emd_1d)
    dual
        <a, f> + <b, g>: equals cost at optimality (a certificate)
    n_iter
        network-simplex pivots
    converged
        False when max_iter stopped the solver: the plan is feasible, not optimal
    shape
        (n, m)

    Examples
    --------
    >>> import numpy as np, monge
    >>> r = monge.emd(None, None, np.array([[0.0, 1.0], [1.0, 0.0]]))
    >>> r.cost, r.rows.tolist(), r.cols.tolist(), r.values.tolist(), r.dual
    (0.0, [0, 1], [0, 1], [0.5, 0.5], 0.0)
    """

    cost: float
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    f: np.ndarray | None
    g: np.ndarray | None
    dual: float
    n_iter: int
    converged: bool
    shape: tuple

    @property
    def nnz(self):
        return int(self.values.shape[0])

    def toarray(self):
        """The dense plan (n, m): O(n m) memory, on request only."""
        P = np.zeros(self.shape)
        P[self.rows, self.cols] = self.values
        return P

    def to_scipy(self):
        """The plan as a scipy.sparse COO array (needs SciPy)."""
        from scipy import sparse

        return sparse.coo_array((self.values, (self.rows, self.cols)), shape=self.shape)


@dataclass
class EMDBatchResult:
    """Result of :func:`emd` on a batch: arrays with a leading batch axis B.

    ``result[k]`` is problem k as an :class:`EMDResult`.

    Attributes
    ----------
    cost, dual, n_iter, converged, nnz : arrays (B,)
        Per problem, as in :class:`EMDResult`; nnz is the number of nonzeros of each plan.
    f, g : arrays (B, n), (B, m)
        Dual potentials.
    rows, cols, values : arrays (B, n + m - 1)
        Each plan's nonzeros, padded after nnz[k] entries.

    Examples
    --------
    >>> import numpy as np, monge
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> r = monge.emd(None, None, np.stack([C, 1.0 - C]))     # a batch of two problems
    >>> r.cost.tolist(), r[1].cols.tolist()
    ([0.0, 0.0], [1, 0])
    """

    cost: np.ndarray
    dual: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    nnz: np.ndarray
    f: np.ndarray
    g: np.ndarray
    rows: np.ndarray = field(repr=False)
    cols: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)
    shape: tuple = ()

    def __len__(self):
        return int(self.cost.shape[0])

    def __getitem__(self, k):
        k = integer("index", k)
        if k >= len(self):
            raise IndexError(f"index: {k} out of range for a batch of {len(self)}")
        z = int(self.nnz[k])
        return EMDResult(float(self.cost[k]), self.rows[k, :z], self.cols[k, :z],
                         self.values[k, :z], self.f[k], self.g[k], float(self.dual[k]),
                         int(self.n_iter[k]), bool(self.converged[k]), self.shape)


def _mass_check(A, Bw, B, n, m, mass_rtol):
    ma = A.sum(axis=1) if A is not None else np.ones(B)
    mb = Bw.sum(axis=1) if Bw is not None else np.ones(B)
    bad = np.abs(ma - mb) > mass_rtol * np.maximum(ma, mb)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"a, b: total masses differ ({ma[k]:.12g} vs {mb[k]:.12g}) by more than mass_rtol="
            f"{mass_rtol:g} (relative); exact OT needs equal masses: normalise the weights")


def emd(a=None, b=None, C=None, *, x=None, y=None, cost="sqeuclidean", p=2.0, lam=1.0,
        max_iter=None, block_size=None, init="auto", mass_rtol=1e-8, callback=None,
        verbose=False, nthreads=None):
    """Exact optimal transport by the network simplex.

    Solves  min_P <P, C>  s.t.  P 1 = a, P^T 1 = b, P >= 0  and its dual
    max <a, f> + <b, g>  s.t.  f_i + g_j <= C_ij.

    Parameters
    ----------
    a, b : weights (n,), (m,) (or (B, n), (B, m) for a batch), non-negative with equal total
        masses; None for uniform.  Masses that differ by at most `mass_rtol` (relative, default
        1e-8: rounding) are reconciled by scaling b; more raises ValueError.  Zero weights are
        allowed (their rows/columns get no mass; their potentials are c-transforms).
    C : dense cost (n, m) (or (B, n, m)); any real values, integers included.  Read as float64.
    x, y : point clouds (n, d), (m, d) (or (B, n, d), (B, m, d)) instead of C: the costs
        c(x_i, y_j) (`cost`, `p`, `lam` as in :func:`monge.cost_matrix`) are computed on demand,
        so memory stays O(n + m).
    max_iter : pivot limit (None: none).  When reached, a ConvergenceWarning is raised and the
        result has converged=False with a feasible, non-optimal plan.
    block_size : arcs priced per block of the block-search rule (None: sqrt(n m) / 4, at least 64).
    init : starting basis: 'auto' ('projection' for point clouds, 'index' for C), 'index'
        (north-west corner in index order) or 'projection' (north-west corner along the
        principal axis of both clouds: the 1-D optimal plan on that axis).
    callback : callable(pivots, reduced_cost) called every 4096 pivots; a truthy return stops
        (the result then has converged=False, without a warning).
    verbose : bool
        Print progress during the solve (pivots, reduced cost of the last entering arc, seconds;
        every second at first, every 10 s at most in long solves) and a last line with the result.
    nthreads : threads for a batch (problems are solved in parallel, one per thread).

    Returns EMDResult (or EMDBatchResult for a batch).


    Examples
    --------
    >>> import numpy as np, monge
    >>> x = np.array([[0.0], [1.0], [2.0]])
    >>> e = monge.emd(x=x, y=x + 0.5)            # uniform weights, costs |x - y|^2 on demand
    >>> e.cost, e.converged
    (0.25, True)
    >>> (3 * e.toarray()).round(6)
    array([[1., 0., 0.],
           [0., 1., 0.],
           [0., 0., 1.]])
    """
    mass_rtol = nonneg("mass_rtol", mass_rtol)
    max_iter = 0 if max_iter is None else integer("max_iter", max_iter, 1)
    block_size = 0 if block_size is None else integer("block_size", block_size, 1)
    init_code = _INITS[choice("init", init, tuple(_INITS))]
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    if callback is not None:
        if not callable(callback):
            raise TypeError("callback: must be callable")
        user = callback

        def callback(it, rc):  # the C core reports every 64 pivots (for Ctrl-C); thin it out
            return user(it, rc) if it and it % 4096 == 0 else False
    t0 = time.perf_counter()
    if verbose:
        inner, last = callback, [t0]

        def callback(it, rc):  # the C core reports every 64 pivots: print at most once a second
            now = time.perf_counter()
            if now - last[0] >= min(10.0, max(1.0, 0.2 * (now - t0))):   # 1 s, then sparser
                last[0] = now
                print(f"emd: {it:,} pivots, reduced cost {rc:.3e}, {now - t0:.1f} s", flush=True)
            return bool(inner(it, rc)) if inner is not None else False
    if C is not None:
        if x is not None or y is not None:
            raise ValueError("C: give either C or the point clouds x and y, not both")
        C = float_array("C", C, (2, 3), dtype=np.float64)
        batched = C.ndim == 3
        Cb = C if batched else C[None]
        B, n, m = Cb.shape
        if init_code == 2:
            raise ValueError("init: 'projection' needs point clouds x and y, not a cost matrix")
        geom = dict(C=Cb, x=None, y=None)
    else:
        if x is None or y is None:
            if np.ndim(a) == 2 and np.ndim(b) == 2:
                raise ValueError("a, b: these look like point clouds (2-D); emd's positional "
                                 "arguments are the weights a, b and the cost C: write "
                                 "monge.emd(x=x, y=y)")
            raise ValueError("x, y: give a cost matrix C or both point clouds x and y")
        x, y, batched = points_pair(x, y)
        p = check_cost(cost, p, x, y)
        xb, yb = (x, y) if batched else (x[None], y[None])
        B, n, m = xb.shape[0], xb.shape[1], yb.shape[1]
        geom = dict(C=None, x=xb, y=yb)
    A = weights("a", a, n, B)
    Bw = weights("b", b, m, B)
    _mass_check(A, Bw, B, n, m, mass_rtol)
    r = _core.emd(geom["C"], geom["x"], geom["y"], A, Bw, cost=cost, p=float(p),
                  lam=check_lam(cost, lam), max_iter=max_iter, block_size=block_size,
                  init=init_code, mass_rtol=mass_rtol, nthreads=nthreads, callback=callback)
    conv = r["converged"]
    if not conv.all() and not r["stopped"]:
        k = int(np.argmin(conv))
        which = f" (problem {k} of the batch)" if batched else ""
        warnings.warn(f"emd reached max_iter={max_iter} pivots{which} before optimality: the "
                      "plan is feasible but not optimal; raise max_iter or leave it None",
                      ConvergenceWarning, stacklevel=2)
    res = EMDBatchResult(r["cost"], r["dual"], r["n_iter"], conv, r["nnz"], r["f"], r["g"],
                         r["rows"], r["cols"], r["vals"], (n, m))
    if verbose:
        print(f"emd: done, {int(np.sum(r['n_iter'])):,} pivots, cost "
              f"{', '.join(f'{c:.6g}' for c in np.atleast_1d(r['cost'])[:4])}"
              f"{' ...' if B > 4 else ''}, {time.perf_counter() - t0:.1f} s", flush=True)
    return res if batched else res[0]


def _samples_1d(name, v):
    arr = float_array(name, v, (1, 2), dtype=np.float64)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"{name}: 1-D samples must have shape (n,) or (n, 1), got {arr.shape}")
        arr = arr[:, 0]
    return np.ascontiguousarray(arr)


def _exponent(p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p: expected a real number, got {type(p).__name__}")
    if not (float(p) >= 1.0) or not np.isfinite(p):
        raise ValueError(f"p: must be a finite number >= 1, got {p!r}")
    return float(p)


def emd_1d(x, y, a=None, b=None, p=2.0, mass_rtol=1e-8):
    """Exact OT on the line with cost ``|x - y|^p`` (p >= 1), by sorting: O((n + m) log(n + m)).

    The optimal plan is the monotone (quantile) coupling, the same for every p >= 1 up to ties
    (strictly optimal for p > 1).

    Parameters
    ----------
    x, y : arrays (n,), (m,)
        Samples on the line (a cloud of shape (n, 1) is accepted; (n, d) with d > 1 is not).
    a, b : arrays (n,), (m,), optional
        Non-negative weights of equal mass (uniform when omitted).
    p : float
        Exponent of the cost (>= 1).
    mass_rtol : float
        Relative tolerance on the equality of the two masses.

    Returns
    -------
    EMDResult
        cost = W_p^p = ``sum P_ij |x_i - y_j|^p`` and the plan's nonzeros (f, g = None).

    Raises
    ------
    ValueError
        Non-finite samples, negative weights, unequal masses or p < 1 (naming the argument).

    See Also
    --------
    wasserstein_1d : W_p itself, without the plan.
    emd : exact OT in any dimension (network simplex).

    Examples
    --------
    >>> import numpy as np, monge
    >>> monge.emd_1d(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 2.5])).cost
    0.25
    """
    x, y = _samples_1d("x", x), _samples_1d("y", y)
    p = _exponent(p)
    mass_rtol = nonneg("mass_rtol", mass_rtol)
    A, Bw = weights("a", a, x.shape[0], 1), weights("b", b, y.shape[0], 1)
    _mass_check(A, Bw, 1, x.shape[0], y.shape[0], mass_rtol)
    r = _core.emd_1d(x, y, None if A is None else A[0], None if Bw is None else Bw[0], p=p,
                     mass_rtol=mass_rtol, plan=True)
    z = r["nnz"]
    return EMDResult(r["cost"], r["rows"][:z], r["cols"][:z], r["vals"][:z], None, None,
                     r["cost"], 0, True, (x.shape[0], y.shape[0]))


def wasserstein_1d(x, y, a=None, b=None, p=1.0, mass_rtol=1e-8):
    """The p-Wasserstein distance on the line, W_p = ``(min_P sum P_ij |x_i - y_j|^p)^(1/p)``.

    POT's ``ot.wasserstein_1d`` returns the p-th power W_p^p; here that is ``emd_1d(...).cost``.

    Parameters
    ----------
    x, y : arrays (n,), (m,)
        Samples on the line (a cloud of shape (n, 1) is accepted; (n, d) with d > 1 is not).
    a, b : arrays (n,), (m,), optional
        Non-negative weights of equal mass (uniform when omitted).
    p : float
        Order of the distance (>= 1; default 1).
    mass_rtol : float
        Relative tolerance on the equality of the two masses.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Non-finite samples, negative weights, unequal masses or p < 1 (naming the argument).

    See Also
    --------
    emd_1d : the optimal plan and W_p^p.

    Examples
    --------
    >>> import numpy as np, monge
    >>> monge.wasserstein_1d(np.array([0.0, 1.0, 2.0]), np.array([0.5, 1.5, 2.5]), p=2)
    0.5
    """
    x, y = _samples_1d("x", x), _samples_1d("y", y)
    p = _exponent(p)
    mass_rtol = nonneg("mass_rtol", mass_rtol)
    A, Bw = weights("a", a, x.shape[0], 1), weights("b", b, y.shape[0], 1)
    _mass_check(A, Bw, 1, x.shape[0], y.shape[0], mass_rtol)
    r = _core.emd_1d(x, y, None if A is None else A[0], None if Bw is None else Bw[0], p=p,
                     mass_rtol=mass_rtol, plan=False)
    return max(r["cost"], 0.0) ** (1.0 / p)


@dataclass
class SlicedResult:
    """Result of :func:`sliced_wasserstein` with return_grad=True.

    Attributes
    ----------
    value : float
        SW_p = (mean_l W_p^p(<theta_l, x>, <theta_l, y>))^(1/p)
    grad : array (n, d)
        d value / d x
    projected : array (P,)
        W_p^p along each direction
    projections : array (P, d)
        The directions theta.

    Examples
    --------
    >>> import numpy as np, monge
    >>> x, y = np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])
    >>> s = monge.sliced_wasserstein(x, y, projections=np.eye(1), return_grad=True)
    >>> round(s.value, 6), s.grad.round(4).tolist(), s.projected.tolist()
    (0.707107, [[0.0], [-0.7071]], [0.5])
    """

    value: float
    grad: np.ndarray
    projected: np.ndarray
    projections: np.ndarray


def random_projections(d, n_projections, seed=None):
    """n_projections directions drawn uniformly on the unit sphere of R^d, shape (P, d).

    Parameters
    ----------
    d : int
        Dimension (>= 1).
    n_projections : int
        Number of directions P (>= 1).
    seed : int, numpy Generator or None
        Seeds the draw (normalised Gaussian vectors).

    Returns
    -------
    array (P, d)
        Unit rows.

    Examples
    --------
    >>> import numpy as np, monge
    >>> th = monge.random_projections(3, 4, seed=0)
    >>> th.shape, np.allclose(np.linalg.norm(th, axis=1), 1.0)
    ((4, 3), True)
    """
    d = integer("d", d, 1)
    n_projections = integer("n_projections", n_projections, 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    th = rng.standard_normal((n_projections, d))
    nrm = np.linalg.norm(th, axis=1, keepdims=True)
    nrm[nrm == 0] = 1.0
    return th / nrm


def sliced_wasserstein(x, y, a=None, b=None, n_projections=50, p=2.0, seed=None, *,
                       projections=None, return_grad=False, mass_rtol=1e-8, nthreads=None):
    """Sliced Wasserstein distance SW_p = (mean_l W_p^p(<theta_l, x>, <theta_l, y>))^(1/p).

    Directions: `projections` (P, d) if given (rows need not be unit: they are used as given), else
    `n_projections` uniform random unit directions from `seed` (an int or a numpy Generator).
    Each direction is an exact 1-D problem (sorting); they run in parallel.  With
    return_grad=True returns SlicedResult with the gradient with respect to x (hand-written:
    each direction's monotone plan held fixed; d|t|^p/dt at t = 0 taken as 0; at SW = 0 the
    gradient is 0).  Results do not depend on the thread count.

    Parameters
    ----------
    x, y : arrays (n, d), (m, d)
        Point clouds.
    a, b : arrays (n,), (m,), optional
        Non-negative weights of equal mass (uniform when omitted).
    n_projections : int
        Number of random directions (ignored when `projections` is given).
    p : float
        Order (>= 1).
    seed : int, numpy Generator or None
        Seeds the random directions.
    projections : array (P, d), optional
        Directions to use as given.
    return_grad : bool
        Return a :class:`SlicedResult` with the gradient with respect to x instead of a float.
    mass_rtol : float
        Relative tolerance on the equality of the two masses.
    nthreads : int, optional
        Threads for this call.

    Returns
    -------
    float or SlicedResult

    Raises
    ------
    ValueError
        Non-finite points, mismatched dimensions, negative weights, unequal masses or p < 1.

    See Also
    --------
    emd_1d : the exact 1-D problem solved along each direction.
    random_projections : the directions drawn from `seed`.

    References
    ----------
    J. Rabin, G. Peyré, J. Delon and M. Bernot, "Wasserstein barycenter and its application to
    texture mixing", SSVM 2011.

    Examples
    --------
    On the two coordinate axes, a translate by (1, 0) moves one of two directions by 1:

    >>> import numpy as np, monge
    >>> x = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0]])
    >>> round(monge.sliced_wasserstein(x, x + [1.0, 0.0], projections=np.eye(2)), 6)
    0.707107
    """
    x, y, batched = points_pair(x, y)
    if batched:
        raise ValueError("x: sliced_wasserstein takes single point clouds (n, d)")
    x = x.astype(np.float64, copy=False)
    y = y.astype(np.float64, copy=False)
    p = _exponent(p)
    check_magnitude(x, y, "projected", p)      # |<theta, x - y>|^p must not overflow
    mass_rtol = nonneg("mass_rtol", mass_rtol)
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    d = x.shape[1]
    if projections is None:
        theta = random_projections(d, n_projections, seed)
    else:
        theta = float_array("projections", projections, (2,), dtype=np.float64)
        if theta.shape[1] != d:
            raise ValueError(f"projections: expected shape (P, {d}), got {theta.shape}")
    A, Bw = weights("a", a, x.shape[0], 1), weights("b", b, y.shape[0], 1)
    _mass_check(A, Bw, 1, x.shape[0], y.shape[0], mass_rtol)
    r = _core.sliced(x, y, None if A is None else A[0], None if Bw is None else Bw[0],
                     np.ascontiguousarray(theta), p=p, mass_rtol=mass_rtol,
                     grad=bool(return_grad), nthreads=nthreads)
    mean = max(float(r["w"].mean()), 0.0)
    value = mean ** (1.0 / p)
    if not return_grad:
        return value
    # d/dx mean^(1/p) = (1/p) mean^(1/p - 1) d mean / dx
    grad = r["grad"] * (value / (p * mean)) if mean > 0 else np.zeros_like(x)
    return SlicedResult(value, grad, r["w"], theta)
