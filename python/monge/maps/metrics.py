"""Metrics for fitted transport maps, mostly against a known optimal map (see monge.maps.datasets).

    l2_uvp(pred, true)              L2 unexplained variance percentage (Korotin et al., 2021)
    sinkhorn_divergence(x, y)       float Sinkhorn divergence between two point clouds
    monge_gap(x, tx)                float Monge gap of x -> tx (Uscidda & Cuturi, ICML 2023)
    evaluate_map(transform, x_test, ...)   the three above in a dict
"""
from __future__ import annotations

import numpy as np

from .. import losses
from .._validate import float_array, positive

__all__ = ["l2_uvp", "sinkhorn_divergence", "monge_gap", "evaluate_map"]


def _points(name, value):
    return float_array(name, value, (2,)).astype(np.float64, copy=False)


def _same_shape(name_a, a, name_b, b):
    if a.shape != b.shape:
        raise ValueError(f"{name_a}, {name_b}: shapes differ ({a.shape} vs {b.shape}); "
                         f"need one row per sample, same dimension")


def l2_uvp(pred, true, target_var=None):
    """L2 unexplained variance percentage (L2-UVP) of a map.

    As defined by Korotin et al. ("Do Neural Optimal Transport Solvers Work? A Continuous
    Wasserstein-2 Benchmark", NeurIPS 2021) [1]_::

        L2-UVP = 100 * mean_i |pred_i - true_i|^2 / Var(target)

    Parameters
    ----------
    pred, true : array_like, shape (n, d)
        T_pred(x_i) and T_true(x_i) for the same test points x_i.
    target_var : float, optional
        Total variance of the target (trace of its covariance).  Default: that of `true`
        (biased estimator, so the constant map at the mean of `true` scores exactly 100).

    Returns
    -------
    float
        0 for the true map, ~100 for the best constant map.

    Raises
    ------
    TypeError
        If `pred` or `true` is not a real numeric array (or is a torch tensor or a sparse
        matrix), or `target_var` is not a real number.
    ValueError
        If `pred` or `true` is not 2-D, is empty or holds NaN or infinity, their shapes
        differ, `true` has zero variance (all rows equal) and `target_var` is not given, or
        `target_var` is not positive and finite.

    See Also
    --------
    evaluate_map : L2-UVP, Sinkhorn divergence and Monge gap in one call.
    monge.maps.datasets : Problems whose true map is known.

    References
    ----------
    .. [1] A. Korotin, L. Li, A. Genevay, J. Solomon, A. Filippov and E. Burnaev, "Do Neural
       Optimal Transport Solvers Work? A Continuous Wasserstein-2 Benchmark", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import metrics
    >>> true = np.array([[0.0, 0.0], [2.0, 0.0]])
    >>> metrics.l2_uvp(true, true), metrics.l2_uvp([[1.0, 0.0], [1.0, 0.0]], true)
    (0.0, 100.0)
    """
    pred = _points("pred", pred)
    true = _points("true", true)
    _same_shape("pred", pred, "true", true)
    if target_var is None:
        target_var = float(true.var(axis=0).sum())
        if not target_var > 0:
            raise ValueError("true: zero variance (all rows equal); pass target_var")
    else:
        target_var = positive("target_var", target_var)
    return float(100.0 * np.mean(np.sum((pred - true) ** 2, axis=1)) / target_var)


def _default_eps(y):
    """5% of the total variance of y (floored): ``|x - y|^2`` between samples is ~2 x that."""
    return max(0.05 * float(y.var(axis=0).sum()), 1e-3)


def sinkhorn_divergence(pred, target, eps=None, cost="sqeuclidean", **kwargs):
    """Sinkhorn divergence S_eps between two point clouds, as a float.

    The clouds are `pred` (n, d) and `target` (m, d), with uniform weights; the value is
    :func:`monge.sinkhorn_divergence`'s [1]_.  It is >= 0 and vanishes when the two clouds are
    equal; for the squared Euclidean cost it tends to the squared 2-Wasserstein distance as eps
    goes to 0.

    Parameters
    ----------
    pred, target : array_like, shapes (n, d) and (m, d)
        The two point clouds (e.g. the mapped source T(x) and target samples).
    eps : float, optional
        Absolute entropic regularisation; default 0.05 x the total variance (trace of the
        covariance) of `target` (at least 1e-3).
    cost : str, default 'sqeuclidean'
        Ground cost, as in :func:`monge.sinkhorn`.
    **kwargs
        p, lam and solver options of :func:`monge.sinkhorn_divergence`.

    Returns
    -------
    float
        S_eps(pred, target).

    Raises
    ------
    TypeError
        If `pred` or `target` is not a real numeric array (or is a torch tensor or a sparse
        matrix), or `eps` is not a real number.
    ValueError
        If `pred` or `target` is not 2-D, is empty or holds NaN or infinity, their dimensions
        differ, or `eps` is not positive and finite.  :func:`monge.sinkhorn_divergence` raises
        its own errors for a bad `cost` or keyword argument.

    See Also
    --------
    monge.sinkhorn_divergence : The full version (weights, gradients, batches).
    evaluate_map : Uses it against target samples or the true map's images.

    References
    ----------
    .. [1] J. Feydy, T. Sejourne, F.-X. Vialard, S. Amari, A. Trouve and G. Peyre,
       "Interpolating between Optimal Transport and MMD using Sinkhorn Divergences",
       AISTATS 2019.

    Examples
    --------
    Between a cloud and its translate by t the divergence is ``|t|^2``, at any eps:

    >>> import numpy as np
    >>> from monge.maps import metrics
    >>> x = np.random.default_rng(0).random((50, 2))
    >>> round(metrics.sinkhorn_divergence(x + [1.0, 1.0], x), 6)
    2.0
    """
    pred = _points("pred", pred)
    target = _points("target", target)
    if pred.shape[1] != target.shape[1]:
        raise ValueError(f"pred, target: dimensions differ ({pred.shape[1]} vs "
                         f"{target.shape[1]})")
    eps = _default_eps(target) if eps is None else positive("eps", eps)
    return float(losses.sinkhorn_divergence(pred, target, eps=eps, cost=cost, **kwargs).value)


def monge_gap(x, tx, cost="sqeuclidean", eps=None, relative_epsilon=None, **kwargs):
    """Monge gap of the map x_i -> tx_i, as a float.

    The value of :func:`monge.monge_gap` [1]_: the mean transport cost of the pairing x_i -> tx_i
    minus the entropic optimal transport cost between the two clouds.  It is ~0 for an optimal
    map for `cost` (for 'sqeuclidean': the gradient of a convex function), up to the entropic
    bias of the plain estimator (``debiased=True`` removes it), and grows as the map moves away
    from optimality.  Compare values at equal eps and n.

    Parameters
    ----------
    x : array_like, shape (n, d)
        Source samples.
    tx : array_like, shape (n, d)
        Their images T(x_i), one row per row of `x`.
    cost : str, default 'sqeuclidean'
        Ground cost the map should be optimal for (with `p`, `lam` in `kwargs`).
    eps : float, optional
        Entropic regularisation.  eps=None is :func:`monge.monge_gap`'s default, 0.05 x the
        standard deviation of the cost matrix.
    relative_epsilon : {None, 'mean', 'std'}, optional
        None: `eps` is absolute; 'mean' or 'std': `eps` multiplies the mean or the standard
        deviation of the cost matrix.
    **kwargs
        p, lam, debiased and solver options of :func:`monge.monge_gap`.

    Returns
    -------
    float
        The Monge gap, ~0 for an optimal map.

    Raises
    ------
    TypeError
        If `x` or `tx` is not a real numeric array (or is a torch tensor or a sparse matrix).
    ValueError
        If `x` or `tx` is not 2-D, is empty or holds NaN or infinity, or their shapes differ.
        :func:`monge.monge_gap` raises its own errors for a bad `cost`, `eps` or keyword
        argument.

    See Also
    --------
    monge.monge_gap : The full version, with gradients.
    evaluate_map : Uses it for the fitted map on test samples.

    References
    ----------
    .. [1] T. Uscidda and M. Cuturi, "The Monge Gap: A Regularizer to Learn All Transport
       Maps", ICML 2023.

    Examples
    --------
    x -> 2x, the gradient of a convex function, is optimal; a rotation by 90 degrees is not:

    >>> import numpy as np
    >>> from monge.maps import metrics
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> abs(metrics.monge_gap(x, 2 * x, debiased=True)) < 0.05
    True
    >>> metrics.monge_gap(x, x @ np.array([[0.0, 1.0], [-1.0, 0.0]]), debiased=True) > 0.5
    True
    """
    x = _points("x", x)
    tx = _points("tx", tx)
    _same_shape("x", x, "tx", tx)
    return float(losses.monge_gap(x, tx, cost=cost, eps=eps, relative_epsilon=relative_epsilon,
                                  **kwargs).value)


def _apply(name, fn, x):
    """fn(x) when fn is callable, else fn taken as precomputed images; checked to match x."""
    if fn is None:
        return None
    out = fn(x) if callable(fn) else fn
    if hasattr(out, "detach") and hasattr(out, "numpy"):  # a torch module's output
        out = out.detach().cpu().numpy()
    out = float_array(name, out, (2,)).astype(np.float64, copy=False)
    if out.shape != x.shape:
        raise ValueError(f"{name}: expected images of shape {x.shape} (one per row of x_test), "
                         f"got {out.shape}")
    return out


def evaluate_map(transform, x_test, y_test=None, true_map=None, eps=None, cost="sqeuclidean",
                 lam=1.0, p=2.0, gap_eps=None, relative_epsilon=None, target_var=None,
                 divergence_cost="sqeuclidean", **solver_options):
    """Evaluate a fitted map on test samples of the source.

    Computes the L2-UVP against the true map when it is known [1]_, the Sinkhorn divergence
    between the mapped samples and the target [2]_ (how well T pushes the source onto the
    target), and the Monge gap of the map [3]_ (how far it is from optimal for `cost`).

    Parameters
    ----------
    transform : callable or array_like
        The map, called on `x_test` (any callable (n, d) -> (n, d); a torch module's output is
        detached and converted), or the precomputed images T(x_test).
    x_test : array_like, shape (n, d)
        Source test samples.
    y_test : array_like, shape (m, d), optional
        Target test samples.
    true_map : callable or array_like, optional
        The true map or its images true_T(x_test), e.g. a problem of monge.maps.datasets:
        ``evaluate_map(T, x, true_map=problem, cost=problem.cost, lam=problem.lam)``.
    eps : float, optional
        Regularisation of the Sinkhorn divergence (default: as :func:`sinkhorn_divergence`).
    cost : str, default 'sqeuclidean'
        The cost the map should be optimal for, used by the Monge gap (with `lam` and `p`).
    lam : float, default 1.0
        Weight of the L1 term of the 'elastic' cost (Monge gap and divergence).
    p : float, default 2.0
        Exponent of the 'pnorm' cost (Monge gap and divergence).
    gap_eps, relative_epsilon : optional
        eps of the Monge gap and its relative mode (default: :func:`monge.monge_gap`'s).
    target_var : float, optional
        Passed to :func:`l2_uvp`.
    divergence_cost : str, default 'sqeuclidean'
        Ground cost of the Sinkhorn divergence.
    **solver_options
        tol, max_iter, eps_scaling, nthreads, ... passed to both solvers.

    Returns
    -------
    dict
        'l2_uvp' when true_map is given: l2_uvp(T(x_test), true_map(x_test));
        'sinkhorn_divergence': S_eps(T(x_test), y_test), or against true_map(x_test) without
        y_test (absent when neither is given); 'monge_gap': monge_gap(x_test, T(x_test)) for
        `cost`.  Every value is a float.

    Raises
    ------
    TypeError
        If `x_test` or `y_test` is not a real numeric array (or is a torch tensor or a sparse
        matrix), the images of `transform` or `true_map` are not real numeric arrays, or
        `target_var` or `eps` is not a real number.
    ValueError
        If `transform` is None, `x_test` or `y_test` is not 2-D, is empty or holds NaN or
        infinity, the images of `transform` or `true_map` do not have the shape of `x_test`,
        `y_test` has another dimension than `x_test`, or `eps` or `target_var` is not positive
        and finite (and as :func:`l2_uvp`, :func:`sinkhorn_divergence`, :func:`monge_gap`).

    See Also
    --------
    l2_uvp, sinkhorn_divergence, monge_gap : The three metrics.
    monge.maps.datasets : Problems with a known optimal map to pass as `true_map`.

    References
    ----------
    .. [1] A. Korotin, L. Li, A. Genevay, J. Solomon, A. Filippov and E. Burnaev, "Do Neural
       Optimal Transport Solvers Work? A Continuous Wasserstein-2 Benchmark", NeurIPS 2021.
    .. [2] J. Feydy, T. Sejourne, F.-X. Vialard, S. Amari, A. Trouve and G. Peyre,
       "Interpolating between Optimal Transport and MMD using Sinkhorn Divergences",
       AISTATS 2019.
    .. [3] T. Uscidda and M. Cuturi, "The Monge Gap: A Regularizer to Learn All Transport
       Maps", ICML 2023.

    Examples
    --------
    The true map of a problem scores an L2-UVP of 0:

    >>> from monge.maps import datasets, metrics
    >>> problem = datasets.GaussianMap(2, seed=0)
    >>> x = problem.sample_source(200)
    >>> out = metrics.evaluate_map(problem.map, x, true_map=problem)
    >>> sorted(out), round(out["l2_uvp"], 6)
    (['l2_uvp', 'monge_gap', 'sinkhorn_divergence'], 0.0)
    """
    x_test = _points("x_test", x_test)
    if transform is None:
        raise ValueError("transform: required (a callable or the images of x_test)")
    tx = _apply("transform", transform, x_test)
    ty = _apply("true_map", true_map, x_test)
    if y_test is not None:
        y_test = _points("y_test", y_test)
        if y_test.shape[1] != x_test.shape[1]:
            raise ValueError(f"y_test: expected dimension {x_test.shape[1]} like x_test, "
                             f"got shape {y_test.shape}")
    out = {}
    if ty is not None:
        out["l2_uvp"] = l2_uvp(tx, ty, target_var=target_var)
    reference = y_test if y_test is not None else ty
    if reference is not None:
        out["sinkhorn_divergence"] = sinkhorn_divergence(tx, reference, eps=eps,
                                                         cost=divergence_cost, p=p, lam=lam,
                                                         **solver_options)
    out["monge_gap"] = monge_gap(x_test, tx, cost=cost, eps=gap_eps,
                                 relative_epsilon=relative_epsilon, p=p, lam=lam,
                                 **solver_options)
    return out
