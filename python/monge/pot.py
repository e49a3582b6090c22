"""POT's API on monge's solvers: ``import monge.pot as ot`` runs POT code written for NumPy arrays.

Covered (POT 0.9 names, signatures, defaults, return types and ``log=True`` dictionaries):
``dist``, ``unif``, ``emd``, ``emd2`` (several b at once too), ``emd_1d``, ``emd2_1d``,
``wasserstein_1d``, ``sinkhorn`` / ``sinkhorn2`` (methods 'sinkhorn', 'sinkhorn_log',
'sinkhorn_stabilized', 'sinkhorn_epsilon_scaling', all solved by monge's one log-domain engine),
``sinkhorn_unbalanced`` / ``sinkhorn_unbalanced2`` (KL), ``sliced_wasserstein_distance``,
``bregman.empirical_sinkhorn_divergence`` and ``smooth.smooth_ot_dual`` / ``smooth_ot_semi_dual``
('l2', 'sparsity_constrained').  Any other name raises an AttributeError that says so (and names
monge's equivalent when there is one): nothing falls back to POT.

What differs from POT, by design:

- ``reg`` is POT's: the plan minimises <P, M> + reg sum P log P, the same plan as monge's
  ``eps = reg`` with eps KL(P | a x b).  ``stopThr`` is honoured as an upper bound: monge stops when
  the L1 marginal violation (rows and columns) is <= stopThr, which bounds POT's L2 column error.
- Bad input raises a ValueError / TypeError naming the argument where POT returns garbage or NaN
  (NaN or negative weights, masses that differ, non-finite costs); ``emd`` still returns the plan
  reached with ``numItermax`` and the same warning and ``result_code`` as POT.
- NumPy arrays only (POT's other backends: use monge.torch for tensors).
- ``sinkhorn_unbalanced2(returnCost='total')`` is the objective with generalised KL terms (the
  value monge's solver reports); POT 0.9.7's total cost is a different quantity.
"""
from __future__ import annotations

import warnings

import numpy as np

from ._policy import ConvergenceWarning
from ._validate import float_array, positive

__all__ = ["dist", "unif", "emd", "emd2", "emd_1d", "emd2_1d", "wasserstein_1d", "sinkhorn",
           "sinkhorn2", "sinkhorn_unbalanced", "sinkhorn_unbalanced2", "sliced_wasserstein_distance",
           "bregman", "smooth"]

# names POT has that this module does not cover, with monge's nearest function
_EQUIVALENT = {
    "sliced": "monge.sliced_wasserstein",
    "gromov": None,
    "da": "monge.maps.EntropicMap (the entropic map out of sample)",
}

_MAX_ITER_MSG = "numItermax reached before optimality. Try to increase numItermax."
_SINKHORN_MSG = ("Sinkhorn did not converge. You might want to increase the number of iterations "
                 "`numItermax` or the regularization parameter `reg`.")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    hint = _EQUIVALENT.get(name)
    more = f"; monge's equivalent: {hint}" if hint else "; use POT itself (import ot) for it"
    raise AttributeError(f"monge.pot.{name}: not covered by monge's POT drop-in (covered: "
                         f"{', '.join(__all__)}){more}")


def _hist(name, w, n):
    """POT's weights: None or [] for uniform."""
    if w is None or (hasattr(w, "__len__") and len(w) == 0):
        return np.full(n, 1.0 / n)
    return float_array(name, w, (1,), dtype=np.float64)


def unif(n, type_as=None):
    """Uniform histogram of size n (``type_as`` is accepted for POT's signature; NumPy only)."""
    return np.full(int(n), 1.0 / int(n))


def dist(x1, x2=None, metric="sqeuclidean", p=2, w=None, backend="auto", nx=None,
         use_tensor=False):
    """Cost matrix between the rows of x1 and x2 (x1 when x2 is None).  Metrics:
    'sqeuclidean', 'euclidean', 'cityblock', 'minkowski' (with p) and 'cosine' (1 - cos),
    computed by monge's C kernels; others raise ValueError (scipy.spatial.distance.cdist has them)."""
    from .geometry import cost_matrix

    if w is not None:
        raise ValueError("w: weighted metrics are not covered by monge.pot.dist")
    x1 = float_array("x1", x1, (2,), dtype=np.float64)
    x2 = x1 if x2 is None else float_array("x2", x2, (2,), dtype=np.float64)
    if metric == "sqeuclidean":
        return cost_matrix(x1, x2)
    if metric == "euclidean":
        return cost_matrix(x1, x2, cost="euclidean")
    if metric == "cityblock":
        return cost_matrix(x1, x2, cost="pnorm", p=1.0)
    if metric == "minkowski":
        return cost_matrix(x1, x2, cost="pnorm", p=float(p)) ** (1.0 / float(p))
    if metric == "cosine":
        return cost_matrix(x1, x2, cost="cosine")
    raise ValueError(f"metric: {metric!r} is not covered by monge.pot.dist (covered: "
                     "'sqeuclidean', 'euclidean', 'cityblock', 'minkowski', 'cosine'); "
                     "scipy.spatial.distance.cdist computes the others")


# ------------------------------------------------------------------------------ exact OT

def _center(u, v, a, b):
    """POT's center_ot_dual: u + c, v - c with <a, u> = <b, v>."""
    c = (b.dot(v) - a.dot(u)) / (a.sum() + b.sum())
    return u + c, v - c


def _emd_one(a, b, M, numItermax, center_dual):
    from .emd import emd as _emd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = _emd(a, b, M, max_iter=int(numItermax))
    G = r.toarray()
    cost = float(np.sum(G * M))
    if r.f is not None and r.g is not None:
        u, v = np.asarray(r.f, dtype=np.float64), np.asarray(r.g, dtype=np.float64)
        if center_dual:
            u, v = _center(u, v, a, b)
    else:
        u, v = np.zeros(len(a)), np.zeros(len(b))
    code, msg = (1, None) if r.converged else (3, _MAX_ITER_MSG)
    if msg:
        warnings.warn(msg, UserWarning, stacklevel=3)
    return G, dict(cost=cost, u=u, v=v, warning=msg, result_code=code)


def emd(a, b, M, numItermax=100000, log=False, center_dual=True, numThreads=1,
        check_marginals=True, potentials_init=None):
    """Exact OT plan (network simplex, monge's C solver), as ``ot.emd``.  Returns the dense plan
    G (n, m), and with log=True the dict {'cost', 'u', 'v', 'warning', 'result_code'} (duals
    centred as POT's ``center_dual``).  Unequal masses or negative weights raise ValueError."""
    M = float_array("M", M, (2,), dtype=np.float64)
    a, b = _hist("a", a, M.shape[0]), _hist("b", b, M.shape[1])
    G, lg = _emd_one(a, b, M, numItermax, center_dual)
    return (G, lg) if log else G


def emd2(a, b, M, processes=1, numItermax=100000, log=False, return_matrix=False,
         center_dual=True, numThreads=1, check_marginals=True, potentials_init=None):
    """Exact OT cost <G, M>, as ``ot.emd2``; b of shape (m, k) gives the k costs (a list, as
    POT).  log=True adds the dict of :func:`emd` (with 'G' when return_matrix=True)."""
    M = float_array("M", M, (2,), dtype=np.float64)
    a = _hist("a", a, M.shape[0])
    if b is not None and np.ndim(b) == 2:
        B = float_array("b", b, (2,), dtype=np.float64)
        # POT: a list of costs, or with log=True a list of [cost, log] pairs
        return [emd2(a, B[:, k], M, numItermax=numItermax, log=log, return_matrix=return_matrix,
                     center_dual=center_dual) for k in range(B.shape[1])]
    b = _hist("b", b, M.shape[1])
    G, lg = _emd_one(a, b, M, numItermax, center_dual)
    if return_matrix:
        lg["G"] = G
    return (lg["cost"], lg) if log else lg["cost"]


_METRIC_P = {"sqeuclidean": 2.0, "euclidean": 1.0, "cityblock": 1.0}


def _metric_p(metric, p):
    if metric == "minkowski":
        return float(p)
    if metric not in _METRIC_P:
        raise ValueError(f"metric: {metric!r} is not covered on the line (covered: 'sqeuclidean', "
                         "'euclidean', 'cityblock', 'minkowski')")
    return _METRIC_P[metric]


def emd_1d(x_a, x_b, a=None, b=None, metric="sqeuclidean", p=1.0, dense=True, log=False,
           check_marginals=True):
    """Exact OT plan on the line (monotone coupling), as ``ot.emd_1d``: dense (n, m) or, with
    dense=False, a scipy.sparse COO matrix; log=True adds {'cost'}."""
    r = _solve_1d(x_a, x_b, a, b, metric, p)
    G = r.toarray() if dense else r.to_scipy().tocoo()
    return (G, {"cost": float(r.cost)}) if log else G


def _solve_1d(x_a, x_b, a, b, metric, p):
    from .emd import emd_1d as _emd_1d

    x_a = float_array("x_a", x_a, (1, 2), dtype=np.float64).reshape(-1)
    x_b = float_array("x_b", x_b, (1, 2), dtype=np.float64).reshape(-1)
    return _emd_1d(x_a, x_b, None if a is None or len(a) == 0 else a,
                   None if b is None or len(b) == 0 else b, p=_metric_p(metric, p))


def emd2_1d(x_a, x_b, a=None, b=None, metric="sqeuclidean", p=1.0, dense=True, log=False):
    """Exact OT cost on the line, as ``ot.emd2_1d`` (the plan is built only for log=True, which
    adds {'G'})."""
    r = _solve_1d(x_a, x_b, a, b, metric, p)
    if not log:
        return float(r.cost)
    return float(r.cost), {"G": r.toarray() if dense else r.to_scipy().tocoo()}


def wasserstein_1d(u_values, v_values, u_weights=None, v_weights=None, p=1, require_sort=True,
                   return_plans=False):
    """W_p^p on the line (POT's convention: the p-th power), as ``ot.wasserstein_1d``; 2-D
    values (n, k) give the k columns' values."""
    from .emd import emd_1d as _emd_1d

    if return_plans:
        raise ValueError("return_plans: not covered; monge.emd_1d returns the plan")
    p = positive("p", p)
    u = float_array("u_values", u_values, (1, 2), dtype=np.float64)
    v = float_array("v_values", v_values, (1, 2), dtype=np.float64)
    if u.ndim == 2:
        if v.ndim != 2 or v.shape[1] != u.shape[1]:
            raise ValueError("v_values: needs the same number of columns as u_values")
        uw = None if u_weights is None else np.asarray(u_weights, dtype=np.float64)
        vw = None if v_weights is None else np.asarray(v_weights, dtype=np.float64)
        return np.array([wasserstein_1d(u[:, k], v[:, k],
                                        None if uw is None else (uw[:, k] if uw.ndim == 2 else uw),
                                        None if vw is None else (vw[:, k] if vw.ndim == 2 else vw),
                                        p=p) for k in range(u.shape[1])])
    return float(_emd_1d(u, v, u_weights, v_weights, p=p).cost)


def sliced_wasserstein_distance(X_s, X_t, a=None, b=None, n_projections=50, p=2, projections=None,
                                seed=None, log=False, scaler=None):
    """Sliced Wasserstein distance, as ``ot.sliced_wasserstein_distance``: the same random
    directions as POT for the same seed (normal draws of np.random.RandomState(seed), shape
    (d, n_projections), normalised per column), or ``projections`` (d, P).  log=True adds
    {'projections', 'projected_emds'}."""
    from .emd import emd_1d as _emd_1d

    if scaler is not None:
        raise ValueError("scaler: not covered by monge.pot")
    X_s = float_array("X_s", X_s, (2,), dtype=np.float64)
    X_t = float_array("X_t", X_t, (2,), dtype=np.float64)
    if X_s.shape[1] != X_t.shape[1]:
        raise ValueError(f"X_s, X_t: dimensions differ ({X_s.shape[1]} vs {X_t.shape[1]})")
    d = X_s.shape[1]
    if projections is None:
        rs = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
        projections = rs.normal(0.0, 1.0, [d, int(n_projections)])
        projections = projections / np.sqrt(np.sum(projections ** 2, 0, keepdims=True))
    else:
        projections = float_array("projections", projections, (2,), dtype=np.float64)
        if projections.shape[0] != d:
            raise ValueError(f"projections: expected shape ({d}, P), got {projections.shape}")
    p = positive("p", p)
    ps, pt = X_s @ projections, X_t @ projections
    a = None if a is None or len(a) == 0 else a
    b = None if b is None or len(b) == 0 else b
    costs = np.array([_emd_1d(ps[:, k], pt[:, k], a, b, p=p).cost
                      for k in range(projections.shape[1])])
    res = float(np.mean(costs)) ** (1.0 / p)
    return (res, {"projections": projections, "projected_emds": costs}) if log else res


# ------------------------------------------------------------------------------ entropic OT

_METHODS = ("sinkhorn", "sinkhorn_log", "sinkhorn_stabilized", "sinkhorn_epsilon_scaling")


def _sinkhorn_one(a, b, M, reg, method, numItermax, stopThr, warn, warmstart, verbose):
    from .sinkhorn import sinkhorn as _sinkhorn

    with np.errstate(divide="ignore"):
        la, lb = np.log(a), np.log(b)
    init = None
    if warmstart is not None:
        w0, w1 = (np.asarray(w, dtype=np.float64) for w in warmstart)
        if method in ("sinkhorn", "sinkhorn_log"):     # POT: log-scalings log u, log v
            init = (reg * (w0 - la), reg * (w1 - lb))
        else:                                           # POT: the duals alpha, beta
            init = (w0 - reg * la, w1 - reg * lb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = _sinkhorn(a=a, b=b, C=M, eps=reg, tol=stopThr, max_iter=int(numItermax), init=init,
                      eps_scaling=False if init is not None else
                      (True if method == "sinkhorn_epsilon_scaling" else "auto"))
    if not r.converged and warn:
        warnings.warn(_SINKHORN_MSG, UserWarning, stacklevel=3)
    eps = float(r.eps)
    if eps != reg:
        # numItermax ran out during eps-scaling: the plan and the log are those of the stage reached
        warnings.warn(f"numItermax ran out during eps-scaling, at reg = {eps:.3g} (asked {reg:.3g}): "
                      "the plan and the log are that stage's", UserWarning, stacklevel=3)
    if verbose:
        print(f"monge.pot.sinkhorn: {r.n_iter} iterations, L1 marginal error {r.error:.3e}")
    P = r.plan()
    err = float(np.linalg.norm(P.sum(0) - b))          # POT's error: the L2 column violation
    log_u = la + r.f / eps
    log_v = lb + r.g / eps
    if method == "sinkhorn":
        lg = dict(err=[err], niter=int(r.n_iter), u=np.exp(log_u), v=np.exp(log_v))
    elif method == "sinkhorn_log":
        lg = dict(err=[err], niter=int(r.n_iter), log_u=log_u, log_v=log_v, u=np.exp(log_u),
                  v=np.exp(log_v))
    else:
        # stabilised forms: the scalings absorbed into the duals (u = v = 1)
        alpha, beta = eps * log_u, eps * log_v
        lg = dict(err=[err], alpha=alpha, beta=beta, warmstart=(alpha, beta))
        if method == "sinkhorn_stabilized":
            lg.update(logu=log_u, logv=log_v, n_iter=int(r.n_iter))
        else:
            lg["niter"] = int(r.n_iter)
    return P, lg


def _sinkhorn_args(a, b, M, reg, method):
    M = float_array("M", M, (2,), dtype=np.float64)
    reg = positive("reg", reg)
    if method not in _METHODS:
        raise ValueError(f"method: {method!r} is not covered by monge.pot (covered: "
                         f"{', '.join(map(repr, _METHODS))}; all run monge's log-domain engine)")
    return M, reg, _hist("a", a, M.shape[0])


def sinkhorn(a, b, M, reg, method="sinkhorn", numItermax=1000, stopThr=1e-9, verbose=False,
             log=False, warn=True, warmstart=None, **kwargs):
    """Entropic OT plan, as ``ot.sinkhorn`` (every method is solved by monge's log-domain engine,
    stable at small reg; the log dict has each method's keys).  b of shape (m, k): the k
    entropic costs <P_k, M>, as POT."""
    M, reg, a = _sinkhorn_args(a, b, M, reg, method)
    if b is not None and np.ndim(b) == 2:
        return sinkhorn2(a, b, M, reg, method=method, numItermax=numItermax, stopThr=stopThr,
                         verbose=verbose, log=log, warn=warn)
    b = _hist("b", b, M.shape[1])
    P, lg = _sinkhorn_one(a, b, M, reg, method, numItermax, stopThr, warn, warmstart, verbose)
    return (P, lg) if log else P


def sinkhorn2(a, b, M, reg, method="sinkhorn", numItermax=1000, stopThr=1e-9, verbose=False,
              log=False, warn=False, warmstart=None, **kwargs):
    """Entropic OT loss <P, M> (POT's sinkhorn2 value: the linear term, without the entropy),
    as ``ot.sinkhorn2``; b of shape (m, k) gives the k losses (an array)."""
    M, reg, a = _sinkhorn_args(a, b, M, reg, method)
    if b is not None and np.ndim(b) == 2:
        B = float_array("b", b, (2,), dtype=np.float64)
        outs = [_sinkhorn_one(a, B[:, k], M, reg, method, numItermax, stopThr, warn, None, verbose)
                for k in range(B.shape[1])]
        losses = np.array([float(np.sum(P * M)) for P, _ in outs])
        if not log:
            return losses
        # POT solves the k problems together and returns one log: arrays stacked as columns
        merged = {}
        for key, val in outs[0][1].items():
            vals = [lg[key] for _, lg in outs]
            if isinstance(val, list):
                merged[key] = [max(v[-1] for v in vals)]
            elif isinstance(val, np.ndarray):
                merged[key] = np.stack(vals, axis=-1)
            elif isinstance(val, tuple):
                merged[key] = tuple(np.stack([v[i] for v in vals], axis=-1) for i in range(len(val)))
            else:
                merged[key] = max(vals)
        return losses, merged
    b = _hist("b", b, M.shape[1])
    P, lg = _sinkhorn_one(a, b, M, reg, method, numItermax, stopThr, warn, warmstart, verbose)
    loss = np.float64(np.sum(P * M))
    return (loss, lg) if log else loss



def sinkhorn_unbalanced(a, b, M, reg, reg_m, method="sinkhorn", reg_type="kl", c=None,
                        warmstart=None, numItermax=1000, stopThr=1e-6, verbose=False, log=False,
                        **kwargs):
    """Unbalanced entropic OT plan with KL marginal penalties reg_m, as ``ot.sinkhorn_unbalanced``
    (monge.sinkhorn with eps = reg, tau = reg_m); log: {'cost', 'err', 'logu', 'logv',
    'total_cost'}.  reg_type 'kl' only (POT's default)."""
    P, lg = _unbalanced(a, b, M, reg, reg_m, reg_type, c, numItermax, stopThr, verbose)
    return (P, lg) if log else P


def sinkhorn_unbalanced2(a, b, M, reg, reg_m, method="sinkhorn", reg_type="kl", c=None,
                         warmstart=None, returnCost="linear", numItermax=1000, stopThr=1e-6,
                         verbose=False, log=False, **kwargs):
    """<P, M> of the unbalanced plan (returnCost='linear', POT's default) or the whole objective
    ('total'), as ``ot.sinkhorn_unbalanced2``."""
    P, lg = _unbalanced(a, b, M, reg, reg_m, reg_type, c, numItermax, stopThr, verbose)
    if returnCost not in ("linear", "total"):
        raise ValueError(f"returnCost: expected 'linear' or 'total', got {returnCost!r}")
    v = np.float64(lg["cost"] if returnCost == "linear" else lg["total_cost"])
    return (v, lg) if log else v


def _unbalanced(a, b, M, reg, reg_m, reg_type, c, numItermax, stopThr, verbose):
    from .sinkhorn import sinkhorn as _sinkhorn

    if reg_type != "kl":
        raise ValueError(f"reg_type: {reg_type!r} is not covered (covered: 'kl')")
    if c is not None:
        raise ValueError("c: a reference measure other than a x b is not covered")
    M = float_array("M", M, (2,), dtype=np.float64)
    reg = positive("reg", reg)
    tau = positive("reg_m", reg_m, allow_inf=True)
    a, b = _hist("a", a, M.shape[0]), _hist("b", b, M.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = _sinkhorn(a=a, b=b, C=M, eps=reg, tau=tau, tol=stopThr, max_iter=int(numItermax))
    if not r.converged:
        warnings.warn(_SINKHORN_MSG, UserWarning, stacklevel=3)
    if verbose:
        print(f"monge.pot.sinkhorn_unbalanced: {r.n_iter} iterations, error {r.error:.3e}")
    P = r.plan()
    cost = float(np.sum(P * M))

    def kl(p, q):
        p = np.asarray(p, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(p > 0, p * np.log(p / q), 0.0)
        return float(np.sum(t) - p.sum() + np.sum(q))

    total = cost + reg * kl(P, np.outer(a, b)) + tau * (kl(P.sum(1), a) + kl(P.sum(0), b))
    # POT's unbalanced kernel carries a b^T: its scalings are exp(f / reg), exp(g / reg)
    lg = dict(cost=cost, err=[float(r.error)], logu=r.f / reg, logv=r.g / reg, total_cost=total)
    return P, lg


def _empirical_sinkhorn_divergence(X_s, X_t, reg, a=None, b=None, metric="sqeuclidean",
                                   numIterMax=10000, stopThr=1e-9, verbose=False, log=False,
                                   warn=True, warmstart=None, **kwargs):
    """POT's empirical Sinkhorn divergence: W(a, b) - (W(a, a) + W(b, b)) / 2 with W the
    sinkhorn2 loss <P, M> (the linear term: POT's definition, not monge's S_eps, which uses the
    entropic objective; see monge.sinkhorn_divergence)."""
    X_s = float_array("X_s", X_s, (2,), dtype=np.float64)
    X_t = float_array("X_t", X_t, (2,), dtype=np.float64)
    a, b = _hist("a", a, len(X_s)), _hist("b", b, len(X_t))
    kw = dict(numItermax=numIterMax, stopThr=stopThr, verbose=verbose, warn=warn)
    ab = sinkhorn2(a, b, dist(X_s, X_t, metric), reg, log=log, **kw)
    aa = sinkhorn2(a, a, dist(X_s, X_s, metric), reg, log=log, **kw)
    bb = sinkhorn2(b, b, dist(X_t, X_t, metric), reg, log=log, **kw)
    if log:
        (ab, la), (aa, l1), (bb, l2) = ab, aa, bb
        v = np.float64(max(0.0, ab - 0.5 * (aa + bb)))       # POT clamps at 0
        return v, {"sinkhorn_loss_ab": ab, "sinkhorn_loss_a": aa, "sinkhorn_loss_b": bb,
                   "log_sinkhorn_ab": la, "log_sinkhorn_a": l1, "log_sinkhorn_b": l2}
    return np.float64(max(0.0, ab - 0.5 * (aa + bb)))


def _smooth(formulation):
    def solve(a, b, M, reg, reg_type="l2", max_nz=None, method="L-BFGS-B", stopThr=1e-9,
              numItermax=500, verbose=False, log=False):
        from .smooth import quadratic_ot, sparse_ot

        M = float_array("M", M, (2,), dtype=np.float64)
        a, b = _hist("a", a, M.shape[0]), _hist("b", b, M.shape[1])
        opts = dict(formulation=formulation, tol=max(stopThr, 1e-12), max_iter=int(numItermax))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if reg_type == "l2":
                r = quadratic_ot(a, b, M, reg, **opts)
            elif reg_type == "sparsity_constrained":
                if max_nz is None:
                    raise ValueError("max_nz: required with reg_type='sparsity_constrained'")
                r = sparse_ot(a, b, M, int(max_nz), reg, **opts)
            else:
                raise ValueError(f"reg_type: {reg_type!r} is not covered (covered: 'l2', "
                                 "'sparsity_constrained')")
        G = r.plan.toarray()
        if not log:
            return G
        lg = {"alpha": r.alpha, "res": r}
        if formulation == "dual":
            lg["beta"] = r.beta
        return G, lg

    solve.__name__ = f"smooth_ot_{formulation}"
    solve.__doc__ = (f"Smooth OT ({formulation.replace('_', '-')} formulation), as "
                     f"``ot.smooth.smooth_ot_{formulation}``: reg_type 'l2' (monge.quadratic_ot) or "
                     "'sparsity_constrained' with max_nz (monge.sparse_ot), both solved by monge's "
                     "L-BFGS in C; log: {'alpha', ('beta',) 'res'} (res: monge's result).")
    return solve


def _submodule(name, doc, **fns):
    import sys
    import types

    mod = types.ModuleType(f"{__name__}.{name}", doc)
    for k, f in fns.items():
        setattr(mod, k, f)

    def missing(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(f"monge.pot.{name}.{attr}: not covered by monge's POT drop-in "
                             f"(covered: {', '.join(fns)}); use POT itself (import ot) for it")

    mod.__getattr__ = missing
    sys.modules[mod.__name__] = mod
    return mod


bregman = _submodule("bregman", "POT's ot.bregman, the part monge covers.",
                     empirical_sinkhorn_divergence=_empirical_sinkhorn_divergence,
                     sinkhorn=sinkhorn, sinkhorn2=sinkhorn2)
smooth = _submodule("smooth", "POT's ot.smooth on monge's L-BFGS.",
                    smooth_ot_dual=_smooth("dual"), smooth_ot_semi_dual=_smooth("semi_dual"))
