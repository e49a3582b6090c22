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
from ._validate import integer, float_array, positive

__all__ = ["dist", "unif", "emd", "emd2", "emd_1d", "emd2_1d", "wasserstein_1d", "sinkhorn",
           "sinkhorn2", "sinkhorn_unbalanced", "sinkhorn_unbalanced2", "sliced_wasserstein_distance",
           "bregman", "smooth", "gromov", "lp"]

# names POT has that this module does not cover, with monge's nearest function
_EQUIVALENT = {
    "sliced": "monge.sliced_wasserstein",
    "gromov_wasserstein": "monge.pot.gromov.gromov_wasserstein",
    "fused_gromov_wasserstein": "monge.pot.gromov.fused_gromov_wasserstein",
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
    """Uniform histogram of n bins, each of weight 1/n, as POT's ``ot.unif``.

    Parameters
    ----------
    n : int
        Number of bins (converted with ``int(n)``).
    type_as : optional
        Accepted for POT's signature and ignored: the result is always a NumPy float64 array
        (POT's other backends are not covered; use monge.torch for tensors).

    Returns
    -------
    ndarray (n,)
        ``np.full(n, 1 / n)``.

    Raises
    ------
    ValueError
        If n < 1.
    TypeError
        If n is not an integer.

    See Also
    --------
    monge.emd, monge.sinkhorn : uniform weights when a or b is None.

    Examples
    --------
    >>> import monge.pot as ot
    >>> ot.unif(4).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    n = integer("n", n, 1)
    return np.full(n, 1.0 / n)


def dist(x1, x2=None, metric="sqeuclidean", p=2, w=None, backend="auto", nx=None,
         use_tensor=False):
    """Cost matrix between the rows of two point clouds, as POT's ``ot.dist``.

    Entry (i, j) is the distance between x1[i] and x2[j], computed by monge's C kernels
    (:func:`monge.cost_matrix`).

    Parameters
    ----------
    x1 : array (n, d)
        First point cloud, one point per row.
    x2 : array (m, d), optional
        Second point cloud; None for x1 itself.
    metric : {'sqeuclidean', 'euclidean', 'cityblock', 'minkowski', 'cosine'}, default 'sqeuclidean'
        'sqeuclidean' is ``|x - y|^2`` (no 1/2), 'euclidean' ``|x - y|``, 'cityblock' the L1
        distance, 'minkowski' the p-norm of x - y and 'cosine' 1 - cos(x, y).  Other metrics of
        POT are not covered (scipy.spatial.distance.cdist has them).
    p : float, default 2
        Exponent of the 'minkowski' metric (>= 1); unused by the other metrics.
    w : None
        Weights of a weighted metric: not covered, must be None.
    backend, nx, use_tensor
        Accepted for POT's signature and ignored: NumPy arrays only.

    Returns
    -------
    ndarray (n, m)
        The float64 cost matrix (n, n when x2 is None).

    Raises
    ------
    ValueError
        If `w` is given; if `metric` is not one of the five covered; if x1 or x2 is not 2-D, is
        empty or has NaN or infinite entries; if their dimensions d differ (the message names
        them x, y); if p < 1 with 'minkowski'.
    TypeError
        If x1 or x2 is not a real numeric array (strings, objects, torch tensors, sparse matrices).

    See Also
    --------
    monge.cost_matrix : the kernel run here, with more costs.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> ot.dist(np.array([[0.0], [1.0]]), np.array([[0.0], [2.0]])).tolist()
    [[0.0, 4.0], [1.0, 1.0]]
    >>> ot.dist(np.array([[0.0, 0.0], [3.0, 4.0]]), metric="euclidean").tolist()
    [[0.0, 5.0], [5.0, 0.0]]
    """
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
        r = _emd(a, b, M, max_iter=integer("numItermax", numItermax, 1))
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
    """Exact optimal transport plan by the network simplex, as POT's ``ot.emd``.

    Solves ``min_G <G, M>`` over the couplings G of a and b (G >= 0, G 1 = a, G^T 1 = b) with
    monge's C network simplex (:func:`monge.emd`) and returns the plan as a dense array.

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or list, optional
        Target weights, non-negative, with the total mass of `a`; None or ``[]`` for uniform.
    M : array (n, m)
        Cost matrix, finite (integers are accepted; read as float64).
    numItermax : int, default 100000
        Most network-simplex pivots (monge's ``max_iter``).  Reaching it returns a feasible plan
        that is not optimal (see Warns).
    log : bool, default False
        Also return the log dictionary.
    center_dual : bool, default True
        Shift the duals by a constant, u + c and v - c, so that <a, u> = <b, v> (POT's
        ``center_ot_dual``).
    numThreads, check_marginals, potentials_init
        Accepted for POT's signature and ignored: one problem runs on one thread, the marginals
        are always checked (see Raises) and the simplex starts from its own basis.

    Returns
    -------
    G : ndarray (n, m)
        The optimal plan (float64).
    log : dict
        Only with ``log=True``: 'cost' (<G, M>), 'u' (n,) and 'v' (m,) (the dual potentials,
        centred when `center_dual`), 'warning' (None, or the message of Warns) and 'result_code'
        (1: optimal, 3: numItermax reached), as POT.

    Raises
    ------
    ValueError
        If M is not 2-D, is empty or has NaN or infinite entries; if a or b has the wrong length,
        NaN, infinite or negative entries or no mass; if the total masses of a and b differ by more
        than 1e-8 (relative), where POT returns a plan anyway; if numItermax < 1.
    TypeError
        If an input is not a real numeric array (strings, objects, torch tensors, sparse matrices).

    Warns
    -----
    UserWarning
        "numItermax reached before optimality. Try to increase numItermax.", as POT, when the
        pivot limit is reached; the plan reached is still returned.

    See Also
    --------
    monge.emd : the solver run here (point clouds, batches, sparse plan).
    emd2 : the optimal cost instead of the plan.

    References
    ----------
    N. Bonneel, M. van de Panne, S. Paris and W. Heidrich, "Displacement interpolation using
    Lagrangian mass transport", ACM Trans. Graph. (SIGGRAPH Asia) 2011.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> ot.emd([0.5, 0.5], [0.25, 0.75], M).tolist()
    [[0.25, 0.25], [0.0, 0.5]]
    """
    M = float_array("M", M, (2,), dtype=np.float64)
    a, b = _hist("a", a, M.shape[0]), _hist("b", b, M.shape[1])
    G, lg = _emd_one(a, b, M, numItermax, center_dual)
    return (G, lg) if log else G


def emd2(a, b, M, processes=1, numItermax=100000, log=False, return_matrix=False,
         center_dual=True, numThreads=1, check_marginals=True, potentials_init=None):
    """Exact optimal transport cost <G, M>, as POT's ``ot.emd2``.

    The cost of the plan of :func:`emd`.  A 2-D b, of shape (m, k), gives the k costs of the
    problems (a, b[:, j], M), solved one after the other, as a list (as POT).

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or (m, k), or list, optional
        Target weights with the total mass of `a` (each column, when 2-D); None or ``[]`` for
        uniform.
    M : array (n, m)
        Cost matrix, finite.
    processes : int, default 1
        Accepted for POT's signature and ignored.
    numItermax : int, default 100000
        Most network-simplex pivots per problem (monge's ``max_iter``).
    log : bool, default False
        Also return the log dictionary of :func:`emd`.
    return_matrix : bool, default False
        With ``log=True``, add the plan to the log as 'G'.
    center_dual : bool, default True
        Centre the duals of the log as :func:`emd` does.
    numThreads, check_marginals, potentials_init
        Accepted for POT's signature and ignored, as in :func:`emd`.

    Returns
    -------
    cost : float
        <G, M> for the optimal plan G.  For a 2-D b: a list of the k costs, or with ``log=True``
        a list of k (cost, log) pairs.
    log : dict
        Only with ``log=True`` and a 1-D b: the dictionary of :func:`emd` ('cost', 'u', 'v',
        'warning', 'result_code'), with 'G' when `return_matrix`.

    Raises
    ------
    ValueError
        As :func:`emd`: M not 2-D, empty or non-finite; a or b of the wrong length, with NaN,
        infinite or negative entries or no mass; total masses that differ by more than 1e-8
        (relative); numItermax < 1.
    TypeError
        If an input is not a real numeric array.

    Warns
    -----
    UserWarning
        "numItermax reached before optimality. Try to increase numItermax.", as :func:`emd`.

    See Also
    --------
    monge.emd : the solver run here; its result has the cost, the duals and the sparse plan.
    emd : the plan.

    References
    ----------
    N. Bonneel, M. van de Panne, S. Paris and W. Heidrich, "Displacement interpolation using
    Lagrangian mass transport", ACM Trans. Graph. (SIGGRAPH Asia) 2011.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> ot.emd2([0.5, 0.5], [0.25, 0.75], [[0.0, 1.0], [1.0, 0.0]])
    0.25
    >>> ot.emd2([0.5, 0.5], np.array([[0.5, 0.25], [0.5, 0.75]]), [[0.0, 1.0], [1.0, 0.0]])  # 2 b's
    [0.0, 0.25]
    """
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
    """Exact optimal transport plan between two sets of points on the line, as POT's ``ot.emd_1d``.

    On the line the optimal plan is the monotone (quantile) coupling, found by sorting
    (:func:`monge.emd_1d`) in O((n + m) log(n + m)), without a cost matrix.

    Parameters
    ----------
    x_a : array (n,) or (n, 1)
        Source positions (a 2-D array is flattened).
    x_b : array (m,) or (m, 1)
        Target positions.
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform.
    b : array (m,) or list, optional
        Target weights with the total mass of `a`; None or ``[]`` for uniform.
    metric : {'sqeuclidean', 'euclidean', 'cityblock', 'minkowski'}, default 'sqeuclidean'
        Ground cost: ``|x - y|^2`` for 'sqeuclidean', ``|x - y|`` for 'euclidean' and
        'cityblock', ``|x - y|^p`` for 'minkowski'.
    p : float, default 1.0
        Exponent of the 'minkowski' cost (>= 1); unused by the other metrics.
    dense : bool, default True
        Return a dense (n, m) array; False returns a ``scipy.sparse`` COO matrix (needs SciPy).
    log : bool, default False
        Also return the log dictionary.
    check_marginals : bool
        Accepted for POT's signature and ignored: the masses are always checked (see Raises).

    Returns
    -------
    G : ndarray (n, m) or scipy.sparse.coo_matrix
        The optimal plan.
    log : dict
        Only with ``log=True``: {'cost': <G, M>} (POT's log also has the sort permutations
        'perms_x_a' and 'perms_x_b'; this one does not).

    Raises
    ------
    ValueError
        If `metric` is not one of the four covered; if p < 1 with 'minkowski'; if x_a or x_b is
        not 1-D or 2-D, is empty or has NaN or infinite entries; if a or b has the wrong length,
        NaN, infinite or negative entries or no mass; if the total masses differ by more than 1e-8
        (relative).
    TypeError
        If an input is not a real numeric array.

    See Also
    --------
    monge.emd_1d : the solver run here.
    emd2_1d : the cost instead of the plan.

    References
    ----------
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.

    Examples
    --------
    >>> import monge.pot as ot
    >>> ot.emd_1d([0.0, 1.0], [0.5, 2.0]).tolist()
    [[0.5, 0.0], [0.0, 0.5]]
    >>> ot.emd_1d([0.0, 1.0], [0.5, 2.0], log=True)[1]
    {'cost': 0.625}
    """
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
    """Exact optimal transport cost between two sets of points on the line, as POT's ``ot.emd2_1d``.

    The cost <G, M> of the monotone coupling of :func:`emd_1d`, computed by sorting; the plan is
    built only for ``log=True``.

    Parameters
    ----------
    x_a : array (n,) or (n, 1)
        Source positions.
    x_b : array (m,) or (m, 1)
        Target positions.
    a, b : array or list, optional
        Source and target weights, non-negative with equal total masses; None or ``[]`` for
        uniform.
    metric : {'sqeuclidean', 'euclidean', 'cityblock', 'minkowski'}, default 'sqeuclidean'
        Ground cost, as in :func:`emd_1d`.
    p : float, default 1.0
        Exponent of the 'minkowski' cost ``|x - y|^p`` (>= 1).
    dense : bool, default True
        Form of the plan in the log: dense array, or ``scipy.sparse`` COO matrix when False.
    log : bool, default False
        Also return the log dictionary.

    Returns
    -------
    cost : float
        The optimal transport cost.
    log : dict
        Only with ``log=True``: {'G': the optimal plan}.

    Raises
    ------
    ValueError
        As :func:`emd_1d`: uncovered `metric`, p < 1 with 'minkowski', positions not 1-D or 2-D,
        empty or non-finite, invalid weights, or total masses that differ by more than 1e-8
        (relative).
    TypeError
        If an input is not a real numeric array.

    See Also
    --------
    monge.emd_1d : the solver run here.
    wasserstein_1d : the same cost for ``|x - y|^p``, with 2-D values.

    References
    ----------
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.

    Examples
    --------
    >>> import monge.pot as ot
    >>> ot.emd2_1d([0.0, 1.0], [0.5, 2.0])
    0.625
    >>> ot.emd2_1d([0.0, 1.0], [0.5, 2.0], metric="euclidean")
    0.75
    """
    r = _solve_1d(x_a, x_b, a, b, metric, p)
    if not log:
        return float(r.cost)
    return float(r.cost), {"G": r.toarray() if dense else r.to_scipy().tocoo()}


def wasserstein_1d(u_values, v_values, u_weights=None, v_weights=None, p=1, require_sort=True,
                   return_plans=False):
    """Wasserstein distance on the line to the power p, as POT's ``ot.wasserstein_1d``.

    Returns W_p^p, the optimal cost for ``|x - y|^p`` (POT's convention: the p-th power, not
    W_p), computed by sorting.  2-D values (n, k) give the k values of the columns, problem j
    being u_values[:, j] against v_values[:, j].

    Parameters
    ----------
    u_values : array (n,) or (n, k)
        Source positions.
    v_values : array (m,) or (m, k)
        Target positions, with the number of columns of `u_values`.
    u_weights : array (n,) or (n, k), optional
        Source weights, non-negative; None for uniform.  A 1-D array is shared by every column.
    v_weights : array (m,) or (m, k), optional
        Target weights with the total mass of `u_weights`; None for uniform.
    p : float, default 1
        Exponent of the ground cost (>= 1).
    require_sort : bool
        Accepted for POT's signature and ignored: the values are always sorted.
    return_plans : bool, default False
        Not covered (must be False); :func:`monge.emd_1d` returns the plan.

    Returns
    -------
    float or ndarray (k,)
        W_p^p, or for 2-D values the k values.

    Raises
    ------
    ValueError
        If `return_plans` is True; if p is not positive or p < 1; if a values array is not 1-D or
        2-D, is empty or has NaN or infinite entries; if u_values is 2-D and v_values is not, or
        their numbers of columns differ; if u_values is 1-D and v_values has several columns (the
        message names it y); if the weights are invalid (wrong length, NaN, negative, no mass) or
        their total masses differ by more than 1e-8 (relative).
    TypeError
        If p is not a real number or an input is not a real numeric array.

    See Also
    --------
    monge.wasserstein_1d, monge.emd_1d : the solvers on the line.
    emd2_1d : the same cost with POT's metric names.

    References
    ----------
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.

    Examples
    --------
    >>> import monge.pot as ot
    >>> ot.wasserstein_1d([0.0, 1.0], [0.5, 2.0])
    0.75
    >>> ot.wasserstein_1d([0.0, 1.0], [0.5, 2.0], p=2)
    0.625
    """
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
    """Sliced Wasserstein distance between two point clouds, as POT's ``ot.sliced_wasserstein_distance``.

    The clouds are projected on P unit directions and the result is
    ``(mean_k W_p^p(projection k)) ** (1 / p)``, each 1-D problem solved exactly by sorting
    (:func:`monge.emd_1d`).  For the same seed the random directions are POT's: normal draws of
    ``np.random.RandomState(seed)``, shape (d, n_projections), normalised per column.

    Parameters
    ----------
    X_s : array (n, d)
        Source samples.
    X_t : array (m, d)
        Target samples, in the same dimension d.
    a, b : array (n,), (m,) or list, optional
        Sample weights, non-negative with equal total masses; None or ``[]`` for uniform.
    n_projections : int, default 50
        Number of random directions P (unused when `projections` is given).
    p : float, default 2
        Exponent of the ground cost ``|x - y|^p`` on each direction (>= 1).
    projections : array (d, P), optional
        The directions, one per column, instead of random ones.
    seed : int, numpy.random.RandomState or None
        Seed or generator of the random directions.
    log : bool, default False
        Also return the log dictionary.
    scaler : None
        Not covered by monge.pot, must be None.

    Returns
    -------
    float
        The sliced Wasserstein distance (not its p-th power).
    log : dict
        Only with ``log=True``: 'projections' (d, P) and 'projected_emds' (P,), the W_p^p of each
        direction.

    Raises
    ------
    ValueError
        If `scaler` is given; if X_s or X_t is not 2-D, is empty or has NaN or infinite entries; if
        their dimensions differ; if `projections` is not of shape (d, P); if p is not positive or
        p < 1; if the weights are invalid or their total masses differ by more than 1e-8
        (relative).
    TypeError
        If p is not a real number or an input is not a real numeric array.

    See Also
    --------
    monge.sliced_wasserstein : monge's sliced Wasserstein distance.
    monge.emd_1d : the 1-D solver run on each direction.

    References
    ----------
    J. Rabin, G. Peyré, J. Delon and M. Bernot, "Wasserstein barycenter and its application to
    texture mixing", SSVM 2011.
    N. Bonneel, J. Rabin, G. Peyré and H. Pfister, "Sliced and Radon Wasserstein barycenters of
    measures", J. Math. Imaging Vis. 2015.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> round(ot.sliced_wasserstein_distance(X, X + 1.0, n_projections=10, seed=0), 6)  # POT's too
    1.098861
    """
    from .emd import emd_1d as _emd_1d

    if scaler is not None:
        raise ValueError("scaler: not covered by monge.pot")
    X_s = float_array("X_s", X_s, (2,), dtype=np.float64)
    X_t = float_array("X_t", X_t, (2,), dtype=np.float64)
    if X_s.shape[1] != X_t.shape[1]:
        raise ValueError(f"X_s, X_t: dimensions differ ({X_s.shape[1]} vs {X_t.shape[1]})")
    d = X_s.shape[1]
    if projections is None:
        n_projections = integer("n_projections", n_projections, 1)
        rs = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
        projections = rs.normal(0.0, 1.0, [d, n_projections])
        projections = projections / np.sqrt(np.sum(projections ** 2, 0, keepdims=True))
    else:
        projections = float_array("projections", projections, (2,), dtype=np.float64)
        if projections.shape[0] != d or projections.shape[1] == 0:
            raise ValueError(f"projections: expected shape ({d}, P) with P >= 1, got "
                             f"{projections.shape}")
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

    with np.errstate(divide="ignore", invalid="ignore"):   # bad weights are reported below
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
        r = _sinkhorn(a=a, b=b, C=M, eps=positive("reg", reg), tol=positive("stopThr", stopThr),
                      max_iter=integer("numItermax", numItermax, 1), init=init,
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
    """Entropic optimal transport plan, as POT's ``ot.sinkhorn``.

    Every `method` is solved by monge's one log-domain engine (:func:`monge.sinkhorn`), stable at
    small reg; the method only selects the keys of the log and the meaning of `warmstart`.  A 2-D
    b, of shape (m, k), gives the k entropic costs <P_k, M> instead of a plan, as POT.

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or (m, k), or list, optional
        Target weights with the total mass of `a` (each column, when 2-D); None or ``[]`` for
        uniform.
    M : array (n, m)
        Cost matrix, finite.
    reg : float
        Entropic regularisation (> 0), POT's: the plan minimises ``<P, M> + reg sum P log P``
        (see Notes).
    method : {'sinkhorn', 'sinkhorn_log', 'sinkhorn_stabilized', 'sinkhorn_epsilon_scaling'}
        POT's method name, default 'sinkhorn'.  'sinkhorn_epsilon_scaling' always anneals reg
        (eps-scaling); the others let monge decide ('auto').
    numItermax : int, default 1000
        Most iterations, over all eps-scaling stages (monge's ``max_iter``).
    stopThr : float, default 1e-9
        Stop when the L1 marginal violation (rows and columns) is <= stopThr (monge's ``tol``).
    verbose : bool, default False
        Print one line after the solve: iterations and L1 marginal error (not POT's table).
    log : bool, default False
        Also return the log dictionary.
    warn : bool, default True
        Warn when numItermax is reached before convergence.
    warmstart : tuple of two arrays (n,), (m,), optional
        Starting point: POT's log-scalings (log u, log v) for 'sinkhorn' and 'sinkhorn_log', the
        duals (alpha, beta) for the two stabilised methods.  It turns eps-scaling off; ignored for
        a 2-D b.
    **kwargs
        Accepted for POT's signature and ignored.

    Returns
    -------
    P : ndarray (n, m)
        The entropic plan.  For a 2-D b: an array (k,) of the costs <P_k, M>, as :func:`sinkhorn2`
        (with its log when ``log=True``).
    log : dict
        Only with ``log=True``; POT's keys for each method.  'err' is a one-element list, POT's
        final error (the L2 norm of the column-marginal violation).  'sinkhorn': 'err', 'niter',
        'u', 'v' (the scalings); 'sinkhorn_log': those and 'log_u', 'log_v';
        'sinkhorn_stabilized': 'err', 'alpha', 'beta' (the duals, the scalings being absorbed
        into them), 'warmstart' (alpha, beta), 'logu', 'logv', 'n_iter';
        'sinkhorn_epsilon_scaling': 'err', 'alpha', 'beta', 'warmstart', 'niter'.

    Raises
    ------
    ValueError
        If reg is not a positive finite number; if `method` is not one of the four covered; if M
        is not 2-D, is empty or has NaN or infinite entries; if a or b has the wrong length,
        NaN, infinite or negative entries or no mass; if the total masses of a and b differ
        (relative tolerance 1e-6), where POT returns garbage; if numItermax < 0 or stopThr < 0
        (the messages name monge's max_iter and tol); if a warmstart vector has the wrong length
        (NumPy's broadcasting message).
    TypeError
        If reg or stopThr is not a real number, or an input is not a real numeric array.

    Warns
    -----
    UserWarning
        "Sinkhorn did not converge. ..." (POT's message) when numItermax is reached and `warn` is
        True; "numItermax ran out during eps-scaling ..." when it is reached before the last
        stage: the plan and the log are then those of the stage reached.

    See Also
    --------
    monge.sinkhorn : the solver run here (point clouds, batches, unbalanced OT, float32).
    sinkhorn2 : the loss <P, M> instead of the plan.

    Notes
    -----
    ``reg`` is POT's: the plan minimises ``<P, M> + reg sum P log P``, the same plan as monge's
    ``eps = reg`` with ``eps KL(P | a x b)``.  ``stopThr`` is honoured as an upper bound: monge
    stops when the L1 marginal violation of rows and columns is <= stopThr, which bounds POT's L2
    column error.  Bad input raises a ValueError or TypeError naming the argument where POT
    returns garbage or NaN.  NumPy arrays only (for tensors, use monge.torch).

    References
    ----------
    M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS 2013.
    B. Schmitzer, "Stabilized sparse scaling algorithms for entropy regularized transport
    problems", SIAM J. Sci. Comput. 2019.
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> ot.sinkhorn([0.5, 0.5], [0.25, 0.75], M, 1.0).round(4).tolist()
    [[0.2065, 0.2935], [0.0435, 0.4565]]
    """
    M, reg, a = _sinkhorn_args(a, b, M, reg, method)
    if b is not None and np.ndim(b) == 2:
        return sinkhorn2(a, b, M, reg, method=method, numItermax=numItermax, stopThr=stopThr,
                         verbose=verbose, log=log, warn=warn)
    b = _hist("b", b, M.shape[1])
    P, lg = _sinkhorn_one(a, b, M, reg, method, numItermax, stopThr, warn, warmstart, verbose)
    return (P, lg) if log else P


def sinkhorn2(a, b, M, reg, method="sinkhorn", numItermax=1000, stopThr=1e-9, verbose=False,
              log=False, warn=False, warmstart=None, **kwargs):
    """Entropic optimal transport loss <P, M>, as POT's ``ot.sinkhorn2``.

    The value is POT's sinkhorn2 value: the linear term <P, M> of the entropic plan P of
    :func:`sinkhorn`, without the entropy.  A 2-D b, of shape (m, k), gives the k losses as an
    array.

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or (m, k), or list, optional
        Target weights with the total mass of `a` (each column, when 2-D); None or ``[]`` for
        uniform.
    M : array (n, m)
        Cost matrix, finite.
    reg : float
        Entropic regularisation (> 0), POT's, as in :func:`sinkhorn`.
    method : {'sinkhorn', 'sinkhorn_log', 'sinkhorn_stabilized', 'sinkhorn_epsilon_scaling'}
        As in :func:`sinkhorn` (default 'sinkhorn'): all run monge's log-domain engine.
    numItermax : int, default 1000
        Most iterations per problem, over all eps-scaling stages.
    stopThr : float, default 1e-9
        Stop when the L1 marginal violation is <= stopThr.
    verbose : bool, default False
        Print one line per solve: iterations and L1 marginal error.
    log : bool, default False
        Also return the log dictionary.
    warn : bool, default False
        Warn when numItermax is reached before convergence (POT's default: no warning).
    warmstart : tuple of two arrays, optional
        As in :func:`sinkhorn`; ignored for a 2-D b.
    **kwargs
        Accepted for POT's signature and ignored.

    Returns
    -------
    loss : numpy.float64 or ndarray (k,)
        <P, M>, or for a 2-D b the k losses.
    log : dict
        Only with ``log=True``: the log of :func:`sinkhorn` for `method`.  For a 2-D b, POT solves
        the k problems together and returns one log: here the arrays of the k logs are stacked as
        columns, 'err' and the iteration counts are their maxima.

    Raises
    ------
    ValueError
        As :func:`sinkhorn`: reg not positive and finite, uncovered `method`, invalid M, a or b,
        total masses that differ (relative tolerance 1e-6), numItermax < 0 or stopThr < 0 (the
        messages name monge's max_iter and tol).
    TypeError
        If reg or stopThr is not a real number, or an input is not a real numeric array.

    Warns
    -----
    UserWarning
        As :func:`sinkhorn`: non-convergence (only when `warn`), and numItermax running out
        during eps-scaling.

    See Also
    --------
    monge.sinkhorn : the solver run here; its result has the entropic objective too.
    sinkhorn : the plan.

    References
    ----------
    M. Cuturi, "Sinkhorn distances: lightspeed computation of optimal transport", NeurIPS 2013.
    B. Schmitzer, "Stabilized sparse scaling algorithms for entropy regularized transport
    problems", SIAM J. Sci. Comput. 2019.
    G. Peyré and M. Cuturi, "Computational optimal transport", Found. Trends Mach. Learn. 2019.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> round(float(ot.sinkhorn2([0.5, 0.5], [0.25, 0.75], [[0.0, 1.0], [1.0, 0.0]], 1.0)), 6)
    0.336955
    >>> ot.sinkhorn2([.5, .5], np.array([[.5, .25], [.5, .75]]), [[0, 1], [1, 0]], 1).round(4).tolist()
    [0.2689, 0.337]
    """
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
    """Unbalanced entropic optimal transport plan, as POT's ``ot.sinkhorn_unbalanced``.

    The plan minimises ``<P, M> + reg KL(P | a x b) + reg_m (KL(P 1 | a) + KL(P^T 1 | b))``
    (generalised KL divergences): the marginal constraints are replaced by KL penalties of weight
    reg_m.  Solved by :func:`monge.sinkhorn` with ``eps = reg``, ``tau = reg_m``.

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or list, optional
        Target weights, non-negative; the total masses of a and b may differ.  None or ``[]``
        for uniform.
    M : array (n, m)
        Cost matrix, finite.
    reg : float
        Entropic regularisation (> 0): the term ``reg KL(P | a x b)`` (monge's ``eps``).
    reg_m : float
        Weight of the KL marginal penalties (> 0; inf gives balanced OT), monge's ``tau``.
    method : str
        Accepted for POT's signature and ignored: monge's log-domain engine solves every method.
    reg_type : {'kl'}
        The marginal penalty: 'kl' only (POT's default).
    c : None
        Reference measure of the entropic term: only a x b (None) is covered.
    warmstart : optional
        Accepted for POT's signature and ignored.
    numItermax : int, default 1000
        Most iterations (monge's ``max_iter``).
    stopThr : float, default 1e-6
        Tolerance of monge's stopping test (its ``tol``).
    verbose : bool, default False
        Print one line after the solve: iterations and final error.
    log : bool, default False
        Also return the log dictionary.
    **kwargs
        Accepted for POT's signature and ignored.

    Returns
    -------
    P : ndarray (n, m)
        The unbalanced plan.
    log : dict
        Only with ``log=True``: 'cost' (<P, M>), 'err' (one-element list: monge's final error),
        'logu', 'logv' (f / reg and g / reg: POT's unbalanced kernel carries a b^T, so its
        scalings are exp(f / reg), exp(g / reg)) and 'total_cost' (the objective above).

    Raises
    ------
    ValueError
        If `reg_type` is not 'kl'; if `c` is given; if reg is not a positive finite number or
        reg_m not a positive number (inf allowed); if M is not 2-D, is empty or has NaN or
        infinite entries; if a or b has the wrong length, NaN, infinite or negative entries or no
        mass; if numItermax < 0 or stopThr < 0 (the messages name monge's max_iter and tol).
    TypeError
        If reg, reg_m or stopThr is not a real number, or an input is not a real numeric array.

    Warns
    -----
    UserWarning
        "Sinkhorn did not converge. ..." (POT's message) when numItermax is reached.

    See Also
    --------
    monge.sinkhorn : the solver run here, with ``tau`` (or ``tau_a``, ``tau_b``).
    sinkhorn_unbalanced2 : the cost instead of the plan.

    References
    ----------
    L. Chizat, G. Peyré, B. Schmitzer and F.-X. Vialard, "Scaling algorithms for unbalanced
    optimal transport problems", Math. Comp. 2018.
    C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo and T. Poggio, "Learning with a Wasserstein
    loss", NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> ot.sinkhorn_unbalanced([0.5, 0.5], [0.25, 0.75], M, 1.0, 1.0).round(4).tolist()
    [[0.1775, 0.2073], [0.0511, 0.4409]]
    """
    P, lg = _unbalanced(a, b, M, reg, reg_m, reg_type, c, numItermax, stopThr, verbose)
    return (P, lg) if log else P


def sinkhorn_unbalanced2(a, b, M, reg, reg_m, method="sinkhorn", reg_type="kl", c=None,
                         warmstart=None, returnCost="linear", numItermax=1000, stopThr=1e-6,
                         verbose=False, log=False, **kwargs):
    """Unbalanced entropic optimal transport cost, as POT's ``ot.sinkhorn_unbalanced2``.

    <P, M> for the plan P of :func:`sinkhorn_unbalanced` (``returnCost='linear'``, POT's
    default) or the whole objective (``'total'``).

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or list, optional
        Target weights, non-negative; the total masses of a and b may differ.  None or ``[]``
        for uniform.
    M : array (n, m)
        Cost matrix, finite.
    reg : float
        Entropic regularisation (> 0): the term ``reg KL(P | a x b)`` (monge's ``eps``).
    reg_m : float
        Weight of the KL marginal penalties (> 0; inf gives balanced OT), monge's ``tau``.
    method : str
        Accepted for POT's signature and ignored: monge's log-domain engine solves every method.
    reg_type : {'kl'}
        The marginal penalty: 'kl' only (POT's default).
    c : None
        Reference measure of the entropic term: only a x b (None) is covered.
    warmstart : optional
        Accepted for POT's signature and ignored.
    returnCost : {'linear', 'total'}, default 'linear'
        'linear': <P, M>.  'total': the objective with generalised KL terms,
        ``<P, M> + reg KL(P | a x b) + reg_m (KL(P 1 | a) + KL(P^T 1 | b))`` (the value monge's
        solver reports); POT 0.9.7's total cost is a different quantity.
    numItermax : int, default 1000
        Most iterations (monge's ``max_iter``).
    stopThr : float, default 1e-6
        Tolerance of monge's stopping test (its ``tol``).
    verbose : bool, default False
        Print one line after the solve: iterations and final error.
    log : bool, default False
        Also return the log dictionary.
    **kwargs
        Accepted for POT's signature and ignored.

    Returns
    -------
    cost : numpy.float64
        The linear or total cost.
    log : dict
        Only with ``log=True``: the log of :func:`sinkhorn_unbalanced`.

    Raises
    ------
    ValueError
        If `reg_type` is not 'kl'; if `c` is given; if reg is not a positive finite number or
        reg_m not a positive number (inf allowed); if M is not 2-D, is empty or has NaN or
        infinite entries; if a or b has the wrong length, NaN, infinite or negative entries or no
        mass; if numItermax < 0 or stopThr < 0 (the messages name monge's max_iter and tol).
        If `returnCost` is neither 'linear' nor 'total' (checked after the solve).
    TypeError
        If reg, reg_m or stopThr is not a real number, or an input is not a real numeric array.

    Warns
    -----
    UserWarning
        "Sinkhorn did not converge. ..." (POT's message) when numItermax is reached.

    See Also
    --------
    monge.sinkhorn : the solver run here, with ``tau``; its value is the 'total' cost.
    sinkhorn_unbalanced : the plan.

    References
    ----------
    L. Chizat, G. Peyré, B. Schmitzer and F.-X. Vialard, "Scaling algorithms for unbalanced
    optimal transport problems", Math. Comp. 2018.
    C. Frogner, C. Zhang, H. Mobahi, M. Araya-Polo and T. Poggio, "Learning with a Wasserstein
    loss", NeurIPS 2015.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> round(float(ot.sinkhorn_unbalanced2([0.5, 0.5], [0.25, 0.75], M, 1.0, 1.0)), 6)
    0.258438
    """
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
    """Sinkhorn divergence of two point clouds, as POT's ``ot.bregman.empirical_sinkhorn_divergence``.

    POT's empirical Sinkhorn divergence ``W(a, b) - (W(a, a) + W(b, b)) / 2``, clamped at 0 as
    POT does, with W the :func:`sinkhorn2` loss <P, M> on the costs ``dist(X, Y, metric)``.  W is
    the linear term: this is POT's definition, not monge's S_eps, which uses the entropic
    objective (see :func:`monge.sinkhorn_divergence`).

    Parameters
    ----------
    X_s : array (n, d)
        Source samples.
    X_t : array (m, d)
        Target samples, in the same dimension d.
    reg : float
        Entropic regularisation (> 0), POT's, as in :func:`sinkhorn`.
    a, b : array (n,), (m,) or list, optional
        Sample weights, non-negative with equal total masses; None or ``[]`` for uniform.
    metric : str, default 'sqeuclidean'
        Ground cost, one of the metrics of :func:`dist`.
    numIterMax : int, default 10000
        Most iterations of each of the three solves (POT's spelling, capital I).
    stopThr : float, default 1e-9
        Stop each solve when its L1 marginal violation is <= stopThr.
    verbose : bool, default False
        Print one line per solve.
    log : bool, default False
        Also return the log dictionary.
    warn : bool, default True
        Warn when a solve reaches numIterMax before convergence.
    warmstart : optional
        Accepted for POT's signature and ignored.
    **kwargs
        Accepted for POT's signature and ignored.

    Returns
    -------
    divergence : numpy.float64
        The divergence, >= 0.
    log : dict
        Only with ``log=True``: 'sinkhorn_loss_ab', 'sinkhorn_loss_a', 'sinkhorn_loss_b' (the
        three losses W) and 'log_sinkhorn_ab', 'log_sinkhorn_a', 'log_sinkhorn_b' (the logs of
        :func:`sinkhorn2`).

    Raises
    ------
    ValueError
        If X_s or X_t is not 2-D, is empty or has NaN or infinite entries; if their dimensions
        differ (the message names them x, y); if `metric` is not covered by :func:`dist`; if reg
        is not a positive finite number; if the weights are invalid or their total masses differ
        (relative tolerance 1e-6); if numIterMax < 0 or stopThr < 0.
    TypeError
        If reg or stopThr is not a real number, or an input is not a real numeric array.

    Warns
    -----
    UserWarning
        "Sinkhorn did not converge. ..." when a solve reaches numIterMax and `warn` is True.

    See Also
    --------
    monge.sinkhorn_divergence : monge's Sinkhorn divergence S_eps (entropic objective).
    monge.sinkhorn : the solver of the three problems.

    References
    ----------
    A. Genevay, G. Peyré and M. Cuturi, "Learning generative models with Sinkhorn divergences",
    AISTATS 2018.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    >>> round(float(ot.bregman.empirical_sinkhorn_divergence(X, X + 1.0, 1.0)), 6)
    2.0
    """
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
        opts = dict(formulation=formulation, tol=max(positive("stopThr", stopThr), 1e-12),
                    max_iter=integer("numItermax", numItermax, 1))
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
    name, form = f"smooth_ot_{formulation}", formulation.replace("_", "-")
    if formulation == "dual":
        what = "the dual, over both potentials (alpha, beta)"
        keys = "'alpha', 'beta' (the potentials)"
    else:
        what = "the semi-dual, over alpha alone (the columns of the plan sum to b exactly)"
        keys = "'alpha' (the potential)"
    solve.__doc__ = f"""Smooth optimal transport by the {form} formulation, as POT's ``ot.smooth.{name}``.

    Quadratically regularised OT, ``min_G <G, M> + reg/2 sum G^2`` over couplings of a and b
    (reg_type 'l2', :func:`monge.quadratic_ot`), optionally with at most max_nz nonzeros per
    column of the plan (reg_type 'sparsity_constrained', :func:`monge.sparse_ot`).  Both maximise
    {what},
    with monge's L-BFGS in C; the plan has exact zeros.

    Parameters
    ----------
    a : array (n,) or list, optional
        Source weights, non-negative; None or ``[]`` for uniform weights 1/n.
    b : array (m,) or list, optional
        Target weights with the total mass of `a`; None or ``[]`` for uniform.
    M : array (n, m)
        Cost matrix, finite.
    reg : float
        Regularisation strength (> 0), monge's ``gamma``: smaller is sparser.
    reg_type : {{'l2', 'sparsity_constrained'}}, default 'l2'
        'l2': quadratic regularisation.  'sparsity_constrained': the same with at most `max_nz`
        nonzeros in each column of the plan.
    max_nz : int, optional
        Most nonzeros per column (>= 1; monge's ``k``), required with 'sparsity_constrained'.
    method : str
        Accepted for POT's signature and ignored: monge's L-BFGS always runs.
    stopThr : float, default 1e-9
        Tolerance of the solver (monge's ``tol``, at least 1e-12).
    numItermax : int, default 500
        Most L-BFGS iterations (monge's ``max_iter``).
    verbose : bool
        Accepted for POT's signature and ignored.
    log : bool, default False
        Also return the log dictionary.

    Returns
    -------
    G : ndarray (n, m)
        The plan, dense.
    log : dict
        Only with ``log=True``: {keys} and 'res', monge's result (:class:`monge.SmoothOTResult`:
        value, marginal errors, ``converged``, the sparse plan).

    Raises
    ------
    ValueError
        If `reg_type` is not covered; if max_nz is None with 'sparsity_constrained' or < 1 (the
        message names monge's k); if reg is not a positive finite number (the message names
        monge's gamma); if M is not 2-D, is empty or has NaN or infinite entries; if a or b has the
        wrong length, NaN, infinite or negative entries or no mass; if the total masses differ
        (relative tolerance 1e-6); if numItermax < 0.
    TypeError
        If reg is not a real number, or an input is not a real numeric array.

    See Also
    --------
    monge.quadratic_ot : the 'l2' solver run here.
    monge.sparse_ot : the 'sparsity_constrained' solver run here.

    Notes
    -----
    Non-convergence is not warned about: check ``log['res'].converged``.

    References
    ----------
    M. Blondel, V. Seguy and A. Rolet, "Smooth and sparse optimal transport", AISTATS 2018.
    T. Liu, J. Puigcerver and M. Blondel, "Sparsity-constrained optimal transport", ICLR 2023.

    Examples
    --------
    >>> import numpy as np, monge.pot as ot
    >>> M = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> ot.smooth.{name}([0.5, 0.5], [0.25, 0.75], M, 10.0).round(4).tolist()
    [[0.175, 0.325], [0.075, 0.425]]
    """
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


bregman = _submodule("bregman", "POT's ``ot.bregman``, the part monge covers.\n\n"
                     "Covered: ``empirical_sinkhorn_divergence``, ``sinkhorn`` and ``sinkhorn2`` "
                     "(those of monge.pot); any other name raises an AttributeError.",
                     empirical_sinkhorn_divergence=_empirical_sinkhorn_divergence,
                     sinkhorn=sinkhorn, sinkhorn2=sinkhorn2)
smooth = _submodule("smooth", "POT's ``ot.smooth`` on monge's L-BFGS.\n\n"
                    "Covered: ``smooth_ot_dual`` and ``smooth_ot_semi_dual`` (reg_type 'l2' and "
                    "'sparsity_constrained'); any other name raises an AttributeError.",
                    smooth_ot_dual=_smooth("dual"), smooth_ot_semi_dual=_smooth("semi_dual"))


# ---- ot.gromov and ot.lp.free_support_barycenter ------------------------------------------------

_GW_LOSS = {"square_loss": "square", "kl_loss": "kl"}


def _gw_kwargs(kwargs, entropic):
    """POT's solver pass-through keywords, mapped to monge's inner-solver options."""
    out = {}
    for k, v in kwargs.items():
        if entropic and k == "numItermax":
            out["inner_max_iter"] = integer("numItermax", int(v), 1)
        elif entropic and k == "stopThr":
            out["inner_tol"] = positive("stopThr", v)
        elif not entropic and k == "numItermaxEmd":
            out["inner_max_iter"] = integer("numItermaxEmd", int(v), 1)
        else:
            raise TypeError(f"{k}: not an option monge.pot's GW solvers cover")
    return out


def _gw_call(M, C1, C2, p, q, loss_fun, alpha, G0, max_iter, tol, tol_abs, entropic, epsilon,
             kwargs, semirelaxed=False):
    from .gromov import fused_gromov_wasserstein, gromov_wasserstein

    if loss_fun not in _GW_LOSS:
        raise ValueError(f"loss_fun: {loss_fun!r} is not covered (square_loss, kl_loss)")
    opts = dict(loss=_GW_LOSS[loss_fun], init="product" if G0 is None else np.asarray(G0),
                max_iter=integer("max_iter", int(max_iter), 1), tol=tol, tol_abs=tol_abs,
                semirelaxed=semirelaxed, **_gw_kwargs(kwargs, entropic))
    if entropic:    # POT's PGD iteration: no damping; eps = POT's epsilon
        opts.update(method="entropic", eps=epsilon, damping=0)
    p = None if p is None else _hist("p", p, np.shape(C1)[0])
    q = None if q is None else _hist("q", q, np.shape(C2)[0])
    if M is None:
        return gromov_wasserstein(C1, C2, p, q, **opts)
    return fused_gromov_wasserstein(M, C1, C2, p, q, alpha=alpha, **opts)


def _gw_log(r, key, entropic):
    if entropic:
        return {"err": [r.delta], key: np.float64(r.value)}
    return {"loss": [r.value], "cost": float(r.value), "u": r.f, "v": r.g, "warning": None,
            "result_code": 1 if r.converged else 3, key: np.float64(r.value)}


def _gw_functions():
    def gromov_wasserstein(C1, C2, p=None, q=None, loss_fun="square_loss", symmetric=None,
                           log=False, armijo=False, G0=None, max_iter=1e4, tol_rel=1e-9,
                           tol_abs=1e-9, **kwargs):
        """POT's ``ot.gromov.gromov_wasserstein`` on :func:`monge.gromov_wasserstein` ('cg')."""
        if armijo:
            raise ValueError("armijo: not covered (monge's line search is exact)")
        r = _gw_call(None, C1, C2, p, q, loss_fun, 1.0, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs)
        return (r.plan, _gw_log(r, "gw_dist", False)) if log else r.plan

    def gromov_wasserstein2(C1, C2, p=None, q=None, loss_fun="square_loss", symmetric=None,
                            log=False, armijo=False, G0=None, max_iter=1e4, tol_rel=1e-9,
                            tol_abs=1e-9, **kwargs):
        """POT's ``ot.gromov.gromov_wasserstein2``: the GW value (NumPy; for autograd use
        :func:`monge.torch.gromov_wasserstein2`)."""
        if armijo:
            raise ValueError("armijo: not covered (monge's line search is exact)")
        r = _gw_call(None, C1, C2, p, q, loss_fun, 1.0, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs)
        value = np.float64(r.value)
        return (value, dict(_gw_log(r, "gw_dist", False), T=r.plan)) if log else value

    def fused_gromov_wasserstein(M, C1, C2, p=None, q=None, loss_fun="square_loss",
                                 symmetric=None, alpha=0.5, armijo=False, G0=None, log=False,
                                 max_iter=1e4, tol_rel=1e-9, tol_abs=1e-9, **kwargs):
        """POT's ``ot.gromov.fused_gromov_wasserstein`` on :func:`monge.fused_gromov_wasserstein`."""
        if armijo:
            raise ValueError("armijo: not covered (monge's line search is exact)")
        r = _gw_call(M, C1, C2, p, q, loss_fun, alpha, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs)
        return (r.plan, _gw_log(r, "fgw_dist", False)) if log else r.plan

    def fused_gromov_wasserstein2(M, C1, C2, p=None, q=None, loss_fun="square_loss",
                                  symmetric=None, alpha=0.5, armijo=False, G0=None, log=False,
                                  max_iter=1e4, tol_rel=1e-9, tol_abs=1e-9, **kwargs):
        """POT's ``ot.gromov.fused_gromov_wasserstein2``: the FGW value."""
        if armijo:
            raise ValueError("armijo: not covered (monge's line search is exact)")
        r = _gw_call(M, C1, C2, p, q, loss_fun, alpha, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs)
        value = np.float64(r.value)
        if not log:
            return value
        return value, dict(_gw_log(r, "fgw_dist", False), T=r.plan,
                           quad_loss=np.float64(alpha * r.gw),
                           lin_loss=np.float64((1 - alpha) * r.linear))

    def entropic_gromov_wasserstein(C1, C2, p=None, q=None, loss_fun="square_loss", epsilon=0.1,
                                    symmetric=None, G0=None, max_iter=1000, tol=1e-9,
                                    solver="PGD", warmstart=False, verbose=False, log=False,
                                    **kwargs):
        """POT's ``ot.gromov.entropic_gromov_wasserstein`` (solver 'PGD') on monge's 'entropic'
        method without damping; ``tol`` applies to the objective's relative change (POT: the
        plan's change), Sinkhorn steps run to ``stopThr`` (default 1e-9)."""
        if solver != "PGD":
            raise ValueError(f"solver: {solver!r} is not covered (PGD)")
        r = _gw_call(None, C1, C2, p, q, loss_fun, 1.0, G0, max_iter, tol, 0.0, True, epsilon,
                     kwargs)
        return (r.plan, _gw_log(r, "gw_dist", True)) if log else r.plan

    def entropic_gromov_wasserstein2(C1, C2, p=None, q=None, loss_fun="square_loss",
                                     epsilon=0.1, symmetric=None, G0=None, max_iter=1000,
                                     tol=1e-9, solver="PGD", warmstart=False, verbose=False,
                                     log=False, **kwargs):
        """POT's ``ot.gromov.entropic_gromov_wasserstein2``: the GW value of the entropic plan."""
        if solver != "PGD":
            raise ValueError(f"solver: {solver!r} is not covered (PGD)")
        r = _gw_call(None, C1, C2, p, q, loss_fun, 1.0, G0, max_iter, tol, 0.0, True, epsilon,
                     kwargs)
        value = np.float64(r.value)
        return (value, dict(_gw_log(r, "gw_dist", True), T=r.plan)) if log else value

    def semirelaxed_gromov_wasserstein(C1, C2, p=None, loss_fun="square_loss", symmetric=None,
                                       log=False, G0=None, max_iter=1e4, tol_rel=1e-9,
                                       tol_abs=1e-9, random_state=0, **kwargs):
        """POT's ``ot.gromov.semirelaxed_gromov_wasserstein`` on :func:`monge.gromov_wasserstein`
        (``semirelaxed=True``, 'cg')."""
        r = _gw_call(None, C1, C2, p, None, loss_fun, 1.0, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs, semirelaxed=True)
        return (r.plan, _gw_log(r, "srgw_dist", False)) if log else r.plan

    def semirelaxed_gromov_wasserstein2(C1, C2, p=None, loss_fun="square_loss", symmetric=None,
                                        log=False, G0=None, max_iter=1e4, tol_rel=1e-9,
                                        tol_abs=1e-9, random_state=0, **kwargs):
        """POT's ``ot.gromov.semirelaxed_gromov_wasserstein2``: the value."""
        r = _gw_call(None, C1, C2, p, None, loss_fun, 1.0, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs, semirelaxed=True)
        value = np.float64(r.value)
        return (value, dict(_gw_log(r, "srgw_dist", False), T=r.plan)) if log else value

    def semirelaxed_fused_gromov_wasserstein(M, C1, C2, p=None, loss_fun="square_loss",
                                             symmetric=None, alpha=0.5, G0=None, log=False,
                                             max_iter=1e4, tol_rel=1e-9, tol_abs=1e-9,
                                             random_state=0, **kwargs):
        """POT's ``ot.gromov.semirelaxed_fused_gromov_wasserstein`` on
        :func:`monge.fused_gromov_wasserstein` (``semirelaxed=True``)."""
        r = _gw_call(M, C1, C2, p, None, loss_fun, alpha, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs, semirelaxed=True)
        return (r.plan, _gw_log(r, "srfgw_dist", False)) if log else r.plan

    def semirelaxed_fused_gromov_wasserstein2(M, C1, C2, p=None, loss_fun="square_loss",
                                              symmetric=None, alpha=0.5, G0=None, log=False,
                                              max_iter=1e4, tol_rel=1e-9, tol_abs=1e-9,
                                              random_state=0, **kwargs):
        """POT's ``ot.gromov.semirelaxed_fused_gromov_wasserstein2``: the value."""
        r = _gw_call(M, C1, C2, p, None, loss_fun, alpha, G0, max_iter, tol_rel, tol_abs, False,
                     None, kwargs, semirelaxed=True)
        value = np.float64(r.value)
        if not log:
            return value
        return value, dict(_gw_log(r, "srfgw_dist", False), T=r.plan,
                           quad_loss=np.float64(alpha * r.gw),
                           lin_loss=np.float64((1 - alpha) * r.linear))

    return dict(semirelaxed_gromov_wasserstein=semirelaxed_gromov_wasserstein,
                semirelaxed_gromov_wasserstein2=semirelaxed_gromov_wasserstein2,
                semirelaxed_fused_gromov_wasserstein=semirelaxed_fused_gromov_wasserstein,
                semirelaxed_fused_gromov_wasserstein2=semirelaxed_fused_gromov_wasserstein2,
                gromov_wasserstein=gromov_wasserstein, gromov_wasserstein2=gromov_wasserstein2,
                fused_gromov_wasserstein=fused_gromov_wasserstein,
                fused_gromov_wasserstein2=fused_gromov_wasserstein2,
                entropic_gromov_wasserstein=entropic_gromov_wasserstein,
                entropic_gromov_wasserstein2=entropic_gromov_wasserstein2)


def _free_support_barycenter(measures_locations, measures_weights, X_init, b=None, weights=None,
                             numItermax=100, stopThr=1e-7, verbose=False, log=None, numThreads=1):
    """POT's ``ot.lp.free_support_barycenter`` on :func:`monge.free_support_barycenter` (exact
    plans, the same iteration; monge stops on the objective's relative change, 1e-9, and at
    numItermax)."""
    from .barycenter import free_support_barycenter

    r = free_support_barycenter(list(measures_locations), list(measures_weights), weights,
                                X_init=X_init, a=b, max_iter=integer("numItermax", numItermax, 1))
    return (r.X, {"displacement_square_norms": [], "n_iter": r.n_iter}) if log else r.X


gromov = _submodule("gromov", "POT's ``ot.gromov`` on monge's C solvers.\n\n"
                    "Covered: ``gromov_wasserstein(2)``, ``fused_gromov_wasserstein(2)``, "
                    "``entropic_gromov_wasserstein(2)`` (square_loss, kl_loss; the PGD solver), "
                    "``semirelaxed_gromov_wasserstein(2)``, "
                    "``semirelaxed_fused_gromov_wasserstein(2)``; "
                    "any other name raises an AttributeError.", **_gw_functions())
lp = _submodule("lp", "POT's ``ot.lp``: ``free_support_barycenter`` (the network simplex is "
                "monge.pot.emd).", free_support_barycenter=_free_support_barycenter,
                emd=emd, emd2=emd2)
