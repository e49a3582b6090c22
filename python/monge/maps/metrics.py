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
    """L2 unexplained variance percentage of a map.

    As defined by Korotin et al. ("Do Neural Optimal Transport Solvers Work? A Continuous
    Wasserstein-2 Benchmark", NeurIPS 2021)::

        L2-UVP = 100 * mean_i |pred_i - true_i|^2 / Var(target)

    Parameters
    ----------
    pred, true : arrays (n, d)
        T_pred(x_i) and T_true(x_i) for the same test points x_i.
    target_var : float, optional
        Total variance of the target (trace of its covariance).  Default: that of `true`
        (biased estimator, so the constant map at the mean of `true` scores exactly 100).

    Returns
    -------
    float
        0 for the true map, ~100 for the best constant map.
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
    """Sinkhorn divergence S_eps between the point clouds `pred` (n, d) and `target` (m, d),
    uniform weights, as a float (:func:`monge.sinkhorn_divergence`'s value).

    Parameters
    ----------
    pred, target : arrays (n, d), (m, d)
    eps : float, optional
        Absolute entropic regularisation; default 0.05 x the total variance (trace of the
        covariance) of `target`.
    cost : str
        Ground cost.
    **kwargs
        p, lam and solver options of :func:`monge.sinkhorn_divergence`.
    """
    pred = _points("pred", pred)
    target = _points("target", target)
    if pred.shape[1] != target.shape[1]:
        raise ValueError(f"pred, target: dimensions differ ({pred.shape[1]} vs "
                         f"{target.shape[1]})")
    eps = _default_eps(target) if eps is None else positive("eps", eps)
    return float(losses.sinkhorn_divergence(pred, target, eps=eps, cost=cost, **kwargs).value)


def monge_gap(x, tx, cost="sqeuclidean", eps=None, relative_epsilon=None, **kwargs):
    """Monge gap of the map x_i -> tx_i as a float (:func:`monge.monge_gap`'s value; eps=None is
    its default, 0.05 x the standard deviation of the cost matrix).  ~0 for an optimal map."""
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
    """Evaluates a fitted map on test samples of the source.

    Parameters
    ----------
    transform : callable (n, d) -> (n, d), or array
        The map, or the precomputed images T(x_test).
    x_test : array (n, d)
        Source test samples.
    y_test : array (m, d), optional
        Target test samples.
    true_map : callable or array, optional
        The true map or its images true_T(x_test), e.g. a problem of monge.maps.datasets:
        ``evaluate_map(T, x, true_map=problem, cost=problem.cost, lam=problem.lam)``.
    eps : float, optional
        Regularisation of the Sinkhorn divergence (default: as :func:`sinkhorn_divergence`).
    cost, lam, p
        The cost the map should be optimal for, used by the Monge gap.
    gap_eps, relative_epsilon
        eps of the Monge gap (default: :func:`monge.monge_gap`'s).
    target_var : float, optional
        Passed to :func:`l2_uvp`.
    divergence_cost : str
        Ground cost of the Sinkhorn divergence (default 'sqeuclidean').
    **solver_options
        tol, max_iter, eps_scaling, nthreads, ... passed to both solvers.

    Returns
    -------
    dict
        'l2_uvp' when true_map is given: l2_uvp(T(x_test), true_map(x_test));
        'sinkhorn_divergence': S_eps(T(x_test), y_test), or against true_map(x_test) without
        y_test (absent when neither is given); 'monge_gap': monge_gap(x_test, T(x_test)) for
        `cost`.
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
