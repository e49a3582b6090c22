"""Fixed-support entropic Wasserstein barycenters (mirrors csrc/barycenter.c).

For histograms b_1..b_K on a common support (the columns of C, or the points y) and weights
lambda_k, the barycenter on a fixed support (the rows of C, or the points x) is

    a* = argmin_a  sum_k lambda_k OT_eps(a, b_k),
    OT_eps(a, b) = min_{P 1 = a, P^T 1 = b} <P, C> + eps KL(P | exp(-C / eps)),

found by iterative Bregman projections in the log domain (Benamou et al., SIAM J. Sci. Comput.
2015), stable at small eps.  ``debiased=True`` gives the debiased barycenter of Janati et al.
(ICML 2020), the minimiser of the weighted Sinkhorn divergences, which removes the entropic blur:
the debiased barycenter of identical inputs is that input.  Costs come from a dense matrix, are
computed on the fly from point clouds (any cost of :data:`monge.COSTS`), or, on a regular grid with
the squared Euclidean cost, factor over the grid's axes (``grid=``), so a 3-D grid needs no n x n
matrix and costs O(n sum len) per pass.  :func:`free_support_barycenter` moves the points instead.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _core
from ._policy import ConvergenceWarning, warn_unconverged
from ._validate import choice, common_dtype, float_array, integer, positive
from .geometry import COSTS


def _normalised(name, w, length, what=""):
    """Non-negative weights of shape (length,) divided by their sum; uniform when w is None."""
    if w is None:
        return np.full(length, 1.0 / length)
    w = float_array(name, w, (1,), dtype=np.float64)
    if w.shape != (length,):
        raise ValueError(f"{name}: expected shape ({length},){what}, got {w.shape}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name}: must be non-negative with a positive sum")
    return w / w.sum()


def _batch_weights(w, N, K):
    """Weights of a batch: (N, K), or one (K,) row for every problem; rows divided by their sums."""
    if w is None:
        return np.full((N, K), 1.0 / K)
    w = float_array("weights", w, (1, 2), dtype=np.float64)
    if w.shape == (K,):
        w = np.broadcast_to(w, (N, K))
    if w.shape != (N, K):
        raise ValueError(f"weights: expected shape ({K},) or ({N}, {K}) for B of shape "
                         f"({N}, {K}, m), got {w.shape}")
    if (w < 0).any() or (w.sum(1) <= 0).any():
        raise ValueError("weights: must be non-negative with a positive sum per problem")
    return np.ascontiguousarray(w / w.sum(1, keepdims=True))


@dataclass
class BarycenterResult:
    """Result of :func:`barycenter`.

    Attributes
    ----------
    a
        the barycenter's weights on its support, (n,), summing to 1 at convergence
    f, g
        potentials of the K plans, (K, n) and (K, m): P_k = exp((f_k,i + g_k,j - C_ij) / eps),
        with first marginal a and second marginal b_k
    logc
        eps log c of the debiasing (zeros unless ``debiased``), (n,)
    error
        the largest L1 error of a plan's second marginal, plus (debiased) the residual of the
        debiasing equation c (K c) = a
    n_iter
        iterations (each one projection onto every constraint)
    converged
        error <= tol
    value, values, grad_B, grad_C, grad_x, grad_y
        with ``grad=True`` (None otherwise): the barycenter loss ``sum_k weights_k values[k]`` at
        the solution and its gradients (envelope theorem: a and the plans are optimal, so only
        the explicit dependence counts).  ``values[k]`` is OT_eps(a, b_k) = min <P, C> + eps
        sum P (log P - 1), the objective the iterations minimise, or with ``debiased`` the
        Sinkhorn divergence S_eps(a, b_k) of Janati et al. (2020), whose weighted sum the
        debiased barycenter minimises; it is also d value / d weights_k.  ``grad_B`` (K, m):
        d value / d b_k for the normalised histograms, on the simplex (mean 0 over each
        support; ``-inf`` where b_kj = 0 without ``debiased``, the entropy's slope there).
        ``grad_C`` (n, m) for a cost matrix; ``grad_x`` (n, d), ``grad_y`` (m, d) for point
        clouds (when x is not given the barycenter lives on y, and ``grad_y`` holds both parts,
        ``grad_x`` None); none for a grid

    Examples
    --------
    >>> import numpy as np, monge
    >>> x = np.linspace(0, 1, 50)[:, None]
    >>> B = np.stack([np.exp(-(x[:, 0] - 0.25) ** 2 / 0.002), np.exp(-(x[:, 0] - 0.75) ** 2 / 0.002)])
    >>> r = monge.barycenter(B / B.sum(1, keepdims=True), y=x, eps=1e-3, debiased=True)
    >>> r.converged, round(float(r.a @ x[:, 0]), 3)                # centred between the two bumps
    (True, 0.5)
    """

    a: np.ndarray
    f: np.ndarray
    g: np.ndarray
    logc: np.ndarray
    error: float | np.ndarray
    n_iter: int | np.ndarray
    converged: bool | np.ndarray
    value: float | None = None
    values: np.ndarray | None = None
    grad_B: np.ndarray | None = None
    grad_C: np.ndarray | None = None
    grad_x: np.ndarray | None = None
    grad_y: np.ndarray | None = None


def _grads(r, out_shape=None, merge_x=False):
    """The gradient fields of a BarycenterResult from the binding's dict (grad=True)."""
    gd = r["grads"]
    if gd is None:
        return {}
    if gd["sym_unconverged"]:
        warnings.warn("barycenter: a symmetric solve of the debiased loss did not reach tol; "
                      "value and gradients are approximate", ConvergenceWarning, stacklevel=3)
    gB = gd["grad_B"] if out_shape is None else gd["grad_B"].reshape((-1,) + tuple(out_shape))
    gx, gy = gd["grad_x"], gd["grad_y"]
    if merge_x and gx is not None:
        gy, gx = gy + gx, None
    return dict(values=gd["values"], grad_B=gB, grad_C=gd["grad_C"], grad_x=gx, grad_y=gy)


def barycenter(B, C=None, *, x=None, y=None, grid=None, weights=None, eps, cost="sqeuclidean",
               p=2.0, lam=1.0, debiased=False, tol=1e-6, max_iter=10000, callback=None,
               nthreads=None, grad=False, anderson=None):
    """Entropic Wasserstein barycenter of histograms on a common support, on a fixed support.

    Parameters
    ----------
    B : array (K, m), or (N, K, m) for a batch
        K histograms on the inputs' support; non-negative, each row is divided by its sum.  A
        batch is N problems on the same supports, solved in parallel (one per thread); every
        field of the result then gains a leading axis of N (``error``, ``n_iter`` and
        ``converged`` become arrays), and ``callback`` and ``grad`` are not available.
    C : array (n, m), optional
        Cost between the barycenter's support (rows) and the inputs' support (columns).  With
        ``debiased=True`` it must be square: the two supports are then one.
    x, y : arrays (n, d), (m, d), optional
        Instead of C: the barycenter's support (default: y) and the inputs' support, with the
        cost computed on the fly.
    grid : sequence of 1-D arrays, optional
        Instead of C or x, y: a regular grid, the product of these axes (coordinates per axis,
        up to 8 axes), supporting both the inputs and the barycenter, with the cost ``|x - y|^2``.
        B is then (K, n) with n the grid's size (points in row-major order, the last axis
        fastest) or (K, len_1, ..., len_d), and the result's ``a`` has the same layout.  The
        kernel factors over the axes (the convolutional barycenters of Solomon et al. 2015, here
        in the log domain): each pass costs O(n sum len) instead of O(n^2) and nothing of size
        n x n exists, so 3-D grids of 64^3 points are within reach.
    weights : array (K,), or (N, K) for a batch, optional
        Non-negative weights of the inputs (divided by their sum); uniform by default.  A batch
        takes one row per problem, or one (K,) row for all.
    eps : float
        Entropic regularisation (absolute, > 0), as POT's ``reg``.
    cost, p, lam : the ground cost for point clouds (see :func:`monge.cost_matrix`).
    debiased : bool
        The debiased barycenter (Janati et al. 2020).  Its extra equation c (K c) = a is a
        deconvolution, solved by a multiplicative fixed point that converges sublinearly: on fine
        grids at small eps it can need orders of magnitude more iterations than the plain
        barycenter (check ``converged``; a larger eps or a coarser support helps).
    tol : float
        Stop when the error (see :class:`BarycenterResult`) <= tol.  Default 1e-6.
    max_iter : int
        Iteration limit (default 10000); reaching it sets converged=False and warns.
    callback : callable(iteration, error) -> bool, optional
        Called every iteration; returning True stops (converged=False, no warning).
    nthreads : int, optional
        Threads of the kernels (default: monge.get_num_threads()).
    grad : bool
        Also the barycenter loss and its gradients in the histograms, the weights and the
        cost (a matrix C, or the points x and y); see :class:`BarycenterResult`.  The debiased
        loss solves one more symmetric problem per input.
    anderson : int, optional
        Anderson mixing of the iterates with this memory (0: off, at most 32).  Default: 8 for
        the plain barycenter (5–8 times fewer iterations in the measurements of
        docs/performance.md) and off for the debiased one, whose iterates drift towards entries
        of ``a`` at 0, where the mixing was measured to stall.

    Returns
    -------
    BarycenterResult

    Examples
    --------
    >>> import numpy as np, monge
    >>> x = np.linspace(0, 1, 5)[:, None]
    >>> B = np.array([[1.0, 0, 0, 0, 0], [0, 0, 0, 0, 1.0]])      # Diracs at 0 and 1
    >>> r = monge.barycenter(B, y=x, eps=0.01)
    >>> r.converged, r.a.round(2).tolist()        # at the midpoint, blurred a little by eps
    (True, [0.0, 0.0, 1.0, 0.0, 0.0])

    The loss and its gradients: each input is 0.5 away, so each Sinkhorn divergence is 0.5^2, and
    moving an input's point towards the middle lowers the loss at rate 0.5

    >>> r = monge.barycenter(B, y=x, eps=0.01, debiased=True, grad=True)
    >>> round(r.value, 6), r.values.round(6).tolist(), r.grad_y.ravel().round(3).tolist()
    (0.25, [0.25, 0.25], [-0.5, -0.0, 0.0, 0.0, 0.5])
    """
    if grid is not None:
        if C is not None or x is not None or y is not None:
            raise ValueError("grid, C, x, y: give one support (a grid, a cost matrix or points)")
        if isinstance(grid, np.ndarray) and grid.ndim != 1 or not hasattr(grid, "__len__"):
            raise TypeError("grid: expected a sequence of 1-D coordinate arrays, one per axis")
        axes = [float_array(f"grid[{k}]", t, (1,), dtype=np.float64) for k, t in enumerate(
            [grid] if isinstance(grid, np.ndarray) else grid)]
        if not 1 <= len(axes) <= 8:
            raise ValueError(f"grid: expected 1 to 8 axes, got {len(axes)}")
        shape = tuple(len(t) for t in axes)
        Barr = np.asarray(B)
        if Barr.ndim == 1 + len(axes) and Barr.shape[1:] == shape:
            out_shape = shape
        elif Barr.ndim == 2 and Barr.shape[1] == int(np.prod(shape)):
            out_shape = None
        else:
            raise ValueError(f"B: expected shape (K, {int(np.prod(shape))}) or (K, *{shape}) for "
                             f"the grid, got {Barr.shape}")
        B = Barr.reshape(Barr.shape[0], -1) if Barr.ndim > 1 else Barr
    B = float_array("B", B, (2,) if grid is not None else (2, 3), dtype=np.float64)
    if (B < 0).any():
        raise ValueError("B: histograms must be non-negative")
    mass = B.sum(axis=-1)
    if (mass <= 0).any():
        bad = np.argwhere(mass <= 0)[0]
        raise ValueError(f"B: histogram {tuple(int(i) for i in bad) if B.ndim == 3 else int(bad[0])}"
                         " has zero mass")
    B = np.ascontiguousarray(B / mass[..., None])
    K, m = B.shape[-2:]
    batch = B.ndim == 3
    if batch:
        w = _batch_weights(weights, B.shape[0], K)
        if callback is not None:
            raise ValueError("callback: not available for a batch (B of shape (N, K, m))")
        if grad:
            raise ValueError("grad: one problem at a time (B of shape (K, m)), not a batch")
    else:
        w = _normalised("weights", weights, K, " (one per histogram of B)")
    eps = positive("eps", eps)
    tol = positive("tol", tol)
    max_iter = integer("max_iter", max_iter, minimum=1)
    if not isinstance(debiased, (bool, np.bool_)):
        raise TypeError(f"debiased: expected a bool, got {type(debiased).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    if not isinstance(grad, (bool, np.bool_)):
        raise TypeError(f"grad: expected a bool, got {type(grad).__name__}")
    nth = 0 if nthreads is None else integer("nthreads", nthreads, minimum=1)
    aam = -1 if anderson is None else integer("anderson", anderson, minimum=0)
    if aam > 32:
        raise ValueError(f"anderson: at most 32 (the memory of the mixing), got {aam}")
    if grid is not None:
        r = _core.barycenter_grid(B, w, np.concatenate(axes), np.array(shape, np.int64), eps=eps,
                                  tol=tol, max_iter=max_iter, debiased=bool(debiased),
                                  nthreads=nth, callback=callback, grad=bool(grad),
                                  anderson=aam)
        converged = not r["unconverged"] and not r["stopped"]
        if r["unconverged"]:
            warn_unconverged("barycenter", converged, r["error"], r["n_iter"], tol, False)
        a = r["a"] if out_shape is None else r["a"].reshape(out_shape)
        return _result(r, a, w, converged, out_shape=out_shape)
    kw = {}
    x_given = x
    if C is not None:
        if x is not None or y is not None:
            raise ValueError("C, x, y: give either C or point clouds (y, and optionally x), not both")
        C = float_array("C", C, (2,))
        if C.shape[1] != m:
            raise ValueError(f"C: expected {m} columns (the histograms' length), got shape {C.shape}")
        if debiased and C.shape[0] != C.shape[1]:
            raise ValueError(f"C: the debiased barycenter needs a square cost matrix (one support "
                             f"for the inputs and the barycenter), got shape {C.shape}; pass "
                             "point clouds x, y instead")
        kw["C"] = C
    else:
        if y is None:
            raise ValueError("y: the inputs' support is required (or a cost matrix C)")
        y = float_array("y", y, (2,))
        x = y if x is None else float_array("x", x, (2,))
        if y.shape[0] != m:
            raise ValueError(f"y: expected {m} points (the histograms' length), got shape {y.shape}")
        if x.shape[1] != y.shape[1]:
            raise ValueError(f"x, y: dimensions differ ({x.shape[1]} and {y.shape[1]})")
        dt = common_dtype(x, y)
        kw.update(x=x.astype(dt, copy=False), y=y.astype(dt, copy=False),
                  cost=choice("cost", cost, COSTS), p=float(p), lam=float(lam))
    if batch:
        r = _core.barycenter_batch(B, w, eps=eps, tol=tol, max_iter=max_iter,
                                   debiased=bool(debiased), nthreads=nth, anderson=aam, **kw)
        converged = ~r["unconverged"]
        warn_unconverged("barycenter", converged, r["error"], r["n_iter"], tol, True)
        return BarycenterResult(a=r["a"], f=r["f"], g=r["g"], logc=r["logc"], error=r["error"],
                                n_iter=r["n_iter"], converged=converged)
    r = _core.barycenter(B, w, eps=eps, tol=tol, max_iter=max_iter, debiased=bool(debiased),
                         nthreads=nth, callback=callback, grad=bool(grad), anderson=aam, **kw)
    converged = not r["unconverged"] and not r["stopped"]
    if r["unconverged"]:
        warn_unconverged("barycenter", converged, r["error"], r["n_iter"], tol, False)
    return _result(r, r["a"], w, converged, merge_x=C is None and x_given is None)


def _result(r, a, w, converged, out_shape=None, merge_x=False):
    g = _grads(r, out_shape, merge_x)
    value = float(w @ g["values"]) if g else None
    return BarycenterResult(a=a, f=r["f"], g=r["g"], logc=r["logc"], error=float(r["error"]),
                            n_iter=int(r["n_iter"]), converged=converged, value=value, **g)


@dataclass
class FreeBarycenterResult:
    """Result of :func:`free_support_barycenter`.

    Attributes
    ----------
    X
        the barycenter's points, (n, d)
    a
        their weights, (n,) (fixed during the iteration)
    cost
        sum_k lambda_k <P_k, C_k>: the weighted transport costs ``|x - y|^2`` of the plans at X (for
        ``method='entropic'``, of the entropic plans, without the entropy term)
    n_iter
        iterations (one plan per input and one update of X each)
    converged
        the objective's relative change fell below tol
    value, values, grad_X, grad_Y, grad_b
        with ``grad=True`` (None otherwise): the loss ``sum_k weights_k values[k]`` at X, with
        ``values[k]`` the optimal cost W(a, X; b_k, Y_k) (exact) or OT_eps (entropic, as
        :func:`monge.sinkhorn`'s value) from plans solved again at the returned X, and by the
        envelope theorem its gradients: ``grad_Y`` and ``grad_b`` lists of (m_k, d) and (m_k,)
        arrays for the inputs' points and weights (``grad_b`` on the simplex: mean 0),
        ``values`` for the weights, ``grad_X`` for the barycenter's points (0 at a fixed point
        of the iteration: a check of convergence)

    Examples
    --------
    >>> import numpy as np, monge
    >>> r = monge.free_support_barycenter([np.zeros((3, 1)), np.full((3, 1), 2.0)], n=2, seed=0)
    >>> r.X.ravel().round(12).tolist(), round(r.cost, 12)
    ([1.0, 1.0], 1.0)
    """

    X: np.ndarray
    a: np.ndarray
    cost: float
    n_iter: int
    converged: bool
    value: float | None = None
    values: np.ndarray | None = None
    grad_X: np.ndarray | None = None
    grad_Y: list | None = None
    grad_b: list | None = None


def free_support_barycenter(Y, b=None, weights=None, *, X_init=None, n=None, a=None,
                            method="exact", eps=None, tol=None, max_iter=100, seed=None,
                            callback=None, nthreads=None, grad=False):
    """Wasserstein barycenter of point clouds with free support (cost ``|x - y|^2``).

    Finds n points X (weights a, fixed) minimising sum_k lambda_k W(a, X; b_k, Y_k) by the
    fixed-point iteration of Cuturi & Doucet (2014) and Alvarez-Esteban et al. (2016): compute the
    optimal plan P_k from X to every input, then move each point to the weighted average of where
    its mass goes, X_i <- sum_k lambda_k (P_k Y_k)_i / a_i.  With exact plans the objective never
    increases and the iteration stops after finitely many steps, at a fixed point (not always the
    global minimum: the problem is not convex in X).  Each input's network simplex keeps its basis
    between iterations, and the inputs are solved in parallel.  POT's
    ``ot.lp.free_support_barycenter`` runs the same iteration.

    Parameters
    ----------
    Y : sequence of arrays (m_k, d)
        The K input clouds; sizes may differ.
    b : sequence of arrays (m_k,), optional
        Their weights (each non-negative, divided by its sum); uniform by default.
    weights : array (K,), optional
        lambda, the inputs' weights (non-negative, divided by their sum); uniform by default.
    X_init : array (n, d), optional
        The starting points.  Default: n points drawn without replacement from the inputs' union
        (with ``seed``); n defaults to the largest m_k.
    a : array (n,), optional
        The barycenter's weights (non-negative, divided by their sum); uniform by default.
    method : 'exact' or 'entropic'
        Exact plans (network simplex) or entropic ones at ``eps`` (absolute; required), which give
        a smoother, shrunk barycenter.
    tol : float, optional
        Stop when the objective's relative change <= tol.  Default 1e-9 with exact plans and 1e-6
        with entropic ones, whose Sinkhorn solves (to their tol 1e-6) leave a noise of about 1e-7
        in the relative change, so that 1e-9 would never be met.
    max_iter : int
        Iteration limit (default 100); reaching it sets converged=False and warns.
    callback : callable(iteration, relative change) -> bool, optional
        Called every iteration; returning True stops.
    nthreads : int, optional
        Inputs solved in parallel (default: monge.get_num_threads()).
    grad : bool
        Also the loss at the returned X and its gradients in the inputs' points and weights and
        in the weights of the inputs (see :class:`FreeBarycenterResult`); costs one more plan
        per input.

    Returns
    -------
    FreeBarycenterResult

    Examples
    --------
    The barycenter of 1-D distributions averages their quantile functions:

    >>> import numpy as np, monge
    >>> Y = [np.array([[0.0], [1.0], [2.0]]), np.array([[10.0], [12.0], [14.0]])]
    >>> np.sort(monge.free_support_barycenter(Y, n=3, seed=0).X.ravel()).tolist()
    [5.0, 6.5, 8.0]

    The loss and its gradients: between Diracs at 0 and 2 the barycenter is at 1, each input
    costs 1, and moving an input away from it raises the loss at rate 2 x 1/2

    >>> r = monge.free_support_barycenter([np.zeros((1, 1)), np.full((1, 1), 2.0)], n=1,
    ...                                   seed=0, grad=True)
    >>> r.value, [g.ravel().tolist() for g in r.grad_Y], r.grad_X.ravel().tolist()
    (1.0, [[-1.0], [1.0]], [0.0])
    """
    if isinstance(Y, np.ndarray) and Y.ndim == 2:
        raise TypeError("Y: expected a sequence of (m_k, d) arrays, one per input; for a single "
                        "cloud pass [Y]")
    try:
        Y = [float_array(f"Y[{k}]", y, (2,), dtype=np.float64) for k, y in enumerate(Y)]
    except TypeError as exc:
        if "Y[" in str(exc):
            raise
        raise TypeError("Y: expected a sequence of (m_k, d) arrays") from None
    if not Y:
        raise ValueError("Y: at least one input cloud is required")
    d = Y[0].shape[1]
    for k, y in enumerate(Y):
        if y.shape[1] != d:
            raise ValueError(f"Y[{k}]: dimension {y.shape[1]} differs from Y[0]'s {d}")
    K = len(Y)
    if b is None:
        bs = None
    else:
        if len(b) != K:
            raise ValueError(f"b: expected {K} weight vectors (one per cloud of Y), got {len(b)}")
        bs = [_normalised(f"b[{k}]", w, y.shape[0]) for k, (w, y) in enumerate(zip(b, Y))]
    lam = _normalised("weights", weights, K, " (one per cloud of Y)")
    if X_init is not None:
        X0 = float_array("X_init", X_init, (2,), dtype=np.float64)
        if X0.shape[1] != d:
            raise ValueError(f"X_init: dimension {X0.shape[1]} differs from the inputs' {d}")
        if n is not None and n != X0.shape[0]:
            raise ValueError(f"n: {n} differs from X_init's {X0.shape[0]} points")
    else:
        allpts = np.concatenate(Y)
        n = max(y.shape[0] for y in Y) if n is None else integer("n", n, minimum=1)
        rng = np.random.default_rng(seed)
        X0 = allpts[rng.choice(len(allpts), size=n, replace=n > len(allpts))]
    n = X0.shape[0]
    if a is not None:
        a = _normalised("a", a, n)
    method = choice("method", method, ("exact", "entropic"))
    if method == "entropic":
        if eps is None:
            raise ValueError("eps: required for method='entropic'")
        eps = positive("eps", eps)
    tol = (1e-9 if method == "exact" else 1e-6) if tol is None else float(tol)
    if not tol >= 0:
        raise ValueError(f"tol: must be >= 0, got {tol!r}")
    max_iter = integer("max_iter", max_iter, minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    if not isinstance(grad, (bool, np.bool_)):
        raise TypeError(f"grad: expected a bool, got {type(grad).__name__}")
    nth = 0 if nthreads is None else integer("nthreads", nthreads, minimum=1)
    r = _core.free_barycenter(np.concatenate(Y), np.array([y.shape[0] for y in Y], np.int64),
                              None if bs is None else np.concatenate(bs), lam, X0, a,
                              exact=method == "exact", eps=eps or 0.01, tol=tol,
                              max_iter=max_iter, nthreads=nth, callback=callback, grad=bool(grad))
    converged = not r["unconverged"] and not r["stopped"]
    if r["unconverged"]:
        warnings.warn(f"free_support_barycenter did not converge in {r['n_iter']} iterations "
                      f"(tol {tol:.3g}); raise max_iter", ConvergenceWarning, stacklevel=2)
    g = {}
    if r["values"] is not None:
        if r["grad_unconverged"]:
            warnings.warn("free_support_barycenter: a plan of the gradients stopped at its "
                          "iteration limit; they are approximate", ConvergenceWarning,
                          stacklevel=2)
        cuts = np.cumsum([y.shape[0] for y in Y])[:-1]
        g = dict(value=float(lam @ r["values"]), values=r["values"], grad_X=r["grad_X"],
                 grad_Y=np.split(r["grad_Y"], cuts), grad_b=np.split(r["grad_b"], cuts))
    return FreeBarycenterResult(X=r["X"], a=np.full(n, 1.0 / n) if a is None else a,
                                cost=float(r["cost"]), n_iter=int(r["n_iter"]), converged=converged,
                                **g)
