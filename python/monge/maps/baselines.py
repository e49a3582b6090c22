"""Closed-form and plan-based transport-map estimators: the baselines a fitted map must beat.

- :class:`LinearMap` — the optimal map between the Gaussian approximations of the two samples
  (Bures map): T(x) = m_y + A (x - m_x), A = S_x^{-1/2} (S_x^{1/2} S_y S_x^{1/2})^{1/2} S_x^{-1/2}.
- :class:`EntropicMap` — the entropic map of Pooladian & Niles-Weed (2021): the barycentric
  projection of the Sinkhorn plan between the samples, extended out of sample through the
  c-transform of the target potential g,

      T(x) = sum_j w_j(x) y_j,   w_j(x) = b_j exp((g_j - ``|x - y_j|^2``) / eps) / sum_k (same with k).

Both follow the scikit-learn face of :class:`monge.maps.MongeGapMap` (fit / transform / __call__).
"""
from __future__ import annotations

import time

import numpy as np

from .. import _core
from .._validate import float_array, float_dtype, integer, positive

__all__ = ["LinearMap", "EntropicMap", "bures_map"]


def _sym_pow(S, power, floor):
    w, V = np.linalg.eigh(0.5 * (S + S.T))
    w = np.maximum(w, floor)
    return (V * w ** power) @ V.T


def bures_map(mean_x, cov_x, mean_y, cov_y, ridge=1e-8):
    """The optimal (Bures) affine map between two Gaussians, as (A, b).

    The map x -> A x + b is the optimal transport map for the squared Euclidean cost from
    N(mean_x, cov_x) to N(mean_y, cov_y) [1]_ [2]_::

        A = S_x^{-1/2} (S_x^{1/2} S_y S_x^{1/2})^{1/2} S_x^{-1/2},   b = m_y - A m_x,

    A symmetric positive semi-definite.  ``ridge`` x (mean eigenvalue) is the floor of cov_x's
    eigenvalues (a rank-deficient sample covariance gives a finite, if arbitrary, map on the
    missing directions).

    Parameters
    ----------
    mean_x, mean_y : array_like, shape (d,)
        Means of the source and the target.
    cov_x, cov_y : array_like, shape (d, d)
        Covariances of the source and the target (symmetric positive semi-definite; a scalar
        is read as a 1 x 1 matrix).
    ridge : float, default 1e-8
        Relative floor of cov_x's eigenvalues; should be > 0.

    Returns
    -------
    A : ndarray, shape (d, d)
        Symmetric matrix of the map.
    b : ndarray, shape (d,)
        Offset of the map.

    Raises
    ------
    ValueError
        If the shapes of the means and covariances do not agree (raised by NumPy's matrix
        products).  The arguments are not validated otherwise: pass finite, symmetric
        covariances and a positive `ridge`.

    See Also
    --------
    LinearMap : Fits this map to two samples.
    monge.maps.datasets.GaussianMap : A problem whose optimal map is this formula.

    References
    ----------
    .. [1] I. Olkin and F. Pukelsheim, "The distance between two random vectors with given
       dispersion matrices", Linear Algebra and its Applications 48 (1982), 257-263.
    .. [2] M. Knott and C. S. Smith, "On the optimal mapping of distributions", Journal of
       Optimization Theory and Applications 43 (1984), 39-49.

    Examples
    --------
    From N(0, 1) to N(1, 4) the map is x -> 2 x + 1:

    >>> from monge.maps import bures_map
    >>> A, b = bures_map([0.0], [[1.0]], [1.0], [[4.0]])
    >>> A.round(6).tolist(), b.round(6).tolist()
    ([[2.0]], [1.0])
    """
    cov_x = np.atleast_2d(np.asarray(cov_x, dtype=np.float64))
    cov_y = np.atleast_2d(np.asarray(cov_y, dtype=np.float64))
    floor = ridge * max(float(np.trace(cov_x)) / len(cov_x), 1e-300)
    r = _sym_pow(cov_x, 0.5, floor)
    ir = _sym_pow(cov_x, -0.5, floor)
    mid = _sym_pow(r @ cov_y @ r, 0.5, 0.0)
    A = ir @ mid @ ir
    A = 0.5 * (A + A.T)
    b = np.asarray(mean_y, dtype=np.float64) - A @ np.asarray(mean_x, dtype=np.float64)
    return A, b


def _pair(X, Y):
    if Y is None:
        raise ValueError("Y: required; a map estimator requires y to be passed, but the target y "
                         "is None (y is the target samples, an (m, d) array)")
    X = float_array("X", X, (2,), dtype=np.float64)
    Y = float_array("Y", Y, (2,), dtype=np.float64)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X, Y: dimensions differ ({X.shape[1]} vs {Y.shape[1]})")
    if len(X) < 2 or len(Y) < 2:
        raise ValueError("X, Y: need at least 2 samples each")
    return X, Y


class NotFittedError(RuntimeError, ValueError, AttributeError):
    """Raised by transform / save before fit.

    A RuntimeError (as before), and a ValueError and an AttributeError like scikit-learn's
    NotFittedError, so its checks recognise it.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import LinearMap, NotFittedError
    >>> try:
    ...     LinearMap().transform(np.zeros((2, 2)))
    ... except NotFittedError as exc:
    ...     print(type(exc).__name__)
    NotFittedError
    """


class MapEstimator:
    """The scikit-learn face shared by the map estimators: ``fit(X, Y)`` with Y the target samples
    (in a Pipeline, the ``y`` argument), ``transform``, ``fit_transform``, ``get_params`` /
    ``set_params`` from the constructor's arguments, and the tags scikit-learn >= 1.6 asks for
    (built only when scikit-learn asks, so monge never imports it)."""

    @classmethod
    def _param_names(cls):
        import inspect

        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params):
        names = self._param_names()
        for k, v in params.items():
            if k not in names:
                raise ValueError(f"{k}: not a parameter of {type(self).__name__} (expected one of "
                                 f"{', '.join(names)})")
            setattr(self, k, v)
        return self

    def __repr__(self):
        import inspect

        sig = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if sig[k].default is inspect.Parameter.empty or v != sig[k].default]
        return f"{type(self).__name__}({', '.join(changed)})"

    def fit_transform(self, X, Y):
        """fit(X, Y), then T(X)."""
        return self.fit(X, Y).transform(X)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "dim_") or hasattr(self, "model_")

    def __sklearn_tags__(self):
        from sklearn.utils import Tags, TargetTags, TransformerTags

        # Y is required (the target samples) and has the shape of X: two-dimensional labels
        return Tags(estimator_type=None, transformer_tags=TransformerTags(),
                    target_tags=TargetTags(required=True, one_d_labels=False, two_d_labels=True,
                                           multi_output=True, single_output=False))


class _Fitted(MapEstimator):
    def _fitted(self):
        if not hasattr(self, "dim_"):
            raise NotFittedError(f"{type(self).__name__}: call fit before transform")

    def _input(self, X):
        self._fitted()
        X = float_array("X", X, (2,), dtype=np.float64)
        if X.shape[1] != self.dim_:
            raise ValueError(f"X: dimension {X.shape[1]}, the map was fitted in {self.dim_}")
        return X

    def __call__(self, X):
        return self.transform(X)


class LinearMap(_Fitted):
    """The Bures (Gaussian) optimal map between the samples' means and covariances.

    ``fit(X, Y)`` estimates the means and (unbiased) covariances of the source samples X and the
    target samples Y and stores the optimal map between the two Gaussians with those moments
    (:func:`bures_map`): T(x) = A x + b.  It is the optimal map, up to sampling error, when both
    distributions are Gaussian, and the baseline a nonlinear map must beat.  Follows the
    scikit-learn conventions of :class:`monge.maps.MongeGapMap` (fit / transform /
    fit_transform / __call__, get_params / set_params).

    Parameters
    ----------
    ridge : float, default 1e-8
        Relative floor of the source covariance's eigenvalues, > 0 (see :func:`bures_map`).

    Attributes
    ----------
    A_ : ndarray, shape (d, d)
        Symmetric positive semi-definite matrix of the map.
    b_ : ndarray, shape (d,)
        Offset of the map.
    dim_, n_features_in_ : int
        Dimension d of the samples.
    fit_time_ : float
        Seconds taken by fit.

    Raises
    ------
    TypeError
        On fit: if `X` or `Y` is not a real numeric array (or is a torch tensor or a sparse
        matrix), or `ridge` is not a real number.
    ValueError
        On fit: if `Y` is None, `X` or `Y` is not 2-D, is empty or holds NaN or infinity, their
        dimensions differ, either has fewer than 2 samples, or `ridge` is not positive and
        finite.  On transform: if `X` does not have the fitted dimension.
    monge.maps.NotFittedError
        On transform before fit (a RuntimeError, ValueError and AttributeError).

    See Also
    --------
    bures_map : The closed form used.
    EntropicMap : A nonparametric baseline.
    monge.maps.MongeGapMap : A neural map that starts from this one.

    References
    ----------
    .. [1] I. Olkin and F. Pukelsheim, "The distance between two random vectors with given
       dispersion matrices", Linear Algebra and its Applications 48 (1982), 257-263.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import LinearMap
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> T = LinearMap().fit(X, 2.0 * X + 1.0)
    >>> bool(np.allclose(T.A_, 2.0 * np.eye(2)) and np.allclose(T(X), 2.0 * X + 1.0))
    True
    """

    def __init__(self, ridge=1e-8):
        self.ridge = ridge

    def fit(self, X, Y):
        """Fit the map to source samples X (n, d) and target samples Y (m, d); returns self."""
        t0 = time.perf_counter()
        X, Y = _pair(X, Y)
        positive("ridge", self.ridge)
        self.A_, self.b_ = bures_map(X.mean(0), np.cov(X.T), Y.mean(0), np.cov(Y.T), self.ridge)
        self.dim_ = self.n_features_in_ = X.shape[1]
        self.fit_time_ = time.perf_counter() - t0
        return self

    def transform(self, X):
        """T(X) = X A^T + b for X of shape (k, d)."""
        return self._input(X) @ self.A_.T + self.b_


_KERNEL_CACHE_MAX = 1 << 28     # EntropicMap.fit: largest n * m solved with the kernel cache


class EntropicMap(_Fitted):
    """Entropic map: barycentric projection of the Sinkhorn plan, extended by the c-transform.

    The estimator of Pooladian & Niles-Weed [1]_.  ``fit(X, Y)`` solves the entropic transport
    problem between the samples (uniform weights, squared Euclidean cost) and keeps the target
    potential g; any x is then mapped to a weighted mean of the target samples::

        T(x) = sum_j w_j(x) y_j,   w_j(x) = b_j exp((g_j - |x - y_j|^2) / eps) / sum_k (same with k),

    b_j = 1/m.  On the source samples this is the barycentric projection of the plan.  Follows
    the scikit-learn conventions of :class:`monge.maps.MongeGapMap` (fit / transform /
    fit_transform / __call__, get_params / set_params).

    Parameters
    ----------
    eps : float, optional
        Entropic regularisation of the squared-Euclidean cost ``|x - y|^2``, absolute.  Default:
        ``relative_eps`` x the mean squared distance between the samples (over all pairs of a
        source and a target sample).
    relative_eps : float, default 0.01
        Used when ``eps`` is None (0.01 was chosen on the W2 benchmark's validation pairs, see
        docs/experiments/w2bench.md).
    tol, max_iter : float and int, defaults 1e-6 and 10000
        Sinkhorn's stopping rule (see :func:`monge.sinkhorn`).
    chunk : int, default 1024
        transform handles this many points at a time (memory ~ chunk x m).
    dtype : 'float64' (default) or 'float32'
        Precision of the Sinkhorn solve and of transform (which returns this dtype).  float32
        halves memory traffic; :class:`monge.maps.MongeGapMap` uses its own dtype for its plans.

    Notes
    -----
    fit keeps the solver's float kernel cache (4 n m bytes: 268 MB for 8,192 samples a side) up to
    n m = 2^28, where :func:`monge.sinkhorn` alone would keep O(n + m) memory above n m = 2^21 and
    recompute every exp at each iteration (timings: docs/experiments/w2bench.md, "The plans'
    solver").

    Attributes
    ----------
    eps_ : float
        The eps the potentials belong to (that of the Sinkhorn result, see :func:`monge.sinkhorn`).
    g_ : ndarray, shape (m,)
        Target potentials.
    Y_ : ndarray, shape (m, d)
        The target samples.
    log_b_ : ndarray, shape (m,)
        Log-weights of the target samples, -log m.
    result_ : monge.SinkhornResult
        The solver's full result.
    dim_, n_features_in_ : int
        Dimension d of the samples.
    fit_time_ : float
        Seconds taken by fit.

    Raises
    ------
    TypeError
        On fit: if `X` or `Y` is not a real numeric array (or is a torch tensor or a sparse
        matrix), or the `eps` or `relative_eps` in use is not a real number.
    ValueError
        On fit: if `Y` is None, `X` or `Y` is not 2-D, is empty or holds NaN or infinity, their
        dimensions differ, either has fewer than 2 samples, or the `eps` or `relative_eps` in
        use is not positive and finite (:func:`monge.sinkhorn` checks `tol` and `max_iter`).
        On transform: if `X` does not have the fitted dimension, or `chunk` is below 1 (a
        TypeError if it is not an integer).
    monge.maps.NotFittedError
        On transform before fit (a RuntimeError, ValueError and AttributeError).

    See Also
    --------
    LinearMap : The Gaussian (Bures) baseline.
    monge.sinkhorn : The solver used by fit.
    monge.maps.MongeGapMap : A neural map, usable out of sample at any scale.

    References
    ----------
    .. [1] A.-A. Pooladian and J. Niles-Weed, "Entropic estimation of optimal transport maps",
       arXiv:2109.12004 (2021).

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import EntropicMap
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> Y = X + [3.0, 0.0]
    >>> T = EntropicMap().fit(X, Y)
    >>> # at the training points the projections average to Y's mean, up to the plan's marginal
    >>> # error (tol 1e-6 relative, times |y| ~ 3)
    >>> T(X).shape, bool(np.allclose(T(X).mean(axis=0), Y.mean(axis=0), rtol=0, atol=1e-5))
    ((100, 2), True)
    """

    def __init__(self, eps=None, relative_eps=0.01, tol=1e-6, max_iter=10000, chunk=1024,
                 dtype="float64"):
        self.eps = eps
        self.relative_eps = relative_eps
        self.tol = tol
        self.max_iter = max_iter
        self.chunk = chunk
        self.dtype = dtype

    def fit(self, X, Y):
        """Solve the Sinkhorn problem between X (n, d) and Y (m, d); returns self."""
        from ..sinkhorn import sinkhorn

        t0 = time.perf_counter()
        dt = float_dtype("dtype", self.dtype)
        X, Y = _pair(X, Y)
        if self.eps is None:
            positive("relative_eps", self.relative_eps)
            # mean |x - y|^2 over all pairs, in closed form from the moments
            mean_sq = float(np.sum((X.mean(0) - Y.mean(0)) ** 2) + X.var(0).sum() + Y.var(0).sum())
            eps = self.relative_eps * mean_sq
        else:
            eps = positive("eps", self.eps)
        X, Y = X.astype(dt, copy=False), Y.astype(dt, copy=False)
        # the float kernel cache (4 n m bytes) even where sinkhorn's 'auto' would stay online
        kernel = True if len(X) * len(Y) <= _KERNEL_CACHE_MAX else "auto"
        r = sinkhorn(X, Y, eps=eps, tol=self.tol, max_iter=self.max_iter, kernel=kernel)
        self.result_ = r
        self.eps_ = float(r.eps)        # the eps its potentials belong to (see monge.sinkhorn)
        self.Y_ = Y
        self.log_b_ = np.full(len(Y), -np.log(len(Y)), dtype=dt)
        self.g_ = np.asarray(r.g, dtype=dt)
        self._yy = np.einsum("ij,ij->i", Y, Y)
        self.dim_ = self.n_features_in_ = X.shape[1]
        self.fit_time_ = time.perf_counter() - t0
        return self

    def transform(self, X):
        """T(X) for X of shape (k, d): weighted means of the target samples."""
        X = self._input(X).astype(self.Y_.dtype, copy=False)
        Y = self.Y_
        eps = Y.dtype.type(self.eps_)
        # log w_j(x) = log b_j + (g_j - |y_j|^2 + 2 <x, y_j>) / eps + (a term of x alone, which the
        # normalisation removes): per chunk, a BLAS product, one fused C pass, a second product
        shift = self.log_b_ + (self.g_ - self._yy) / eps
        out = np.empty_like(X)
        chunk = integer("chunk", self.chunk, 1)
        buf = np.empty((min(chunk, len(X)), len(Y)), dtype=Y.dtype)
        for i in range(0, len(X), chunk):
            x = X[i:i + chunk]
            z = np.matmul(x, Y.T, out=buf[:len(x)])
            # the weights, in place in one fused pass of the C core; the products stay with BLAS
            rowsum = _core.softmax_rows(z, shift, 2.0 / float(eps))
            np.divide(z @ Y, rowsum[:, None].astype(Y.dtype, copy=False), out=out[i:i + len(x)])
        return out
