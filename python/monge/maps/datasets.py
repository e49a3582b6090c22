"""Built-in point clouds and transport problems with a known optimal map, generated from a seed
(nothing is downloaded).

Every generator returns float64 arrays; `seed` is an int (>= 0) or a ``numpy.random.Generator``.
Bad arguments raise ValueError or TypeError whose message starts with the argument's name.

2-D toy shapes
    gaussian, eight_gaussians, moons, circles, checkerboard, spiral, uniform_square (any d)

Problems with a known optimal map (for evaluating fitted maps, see :mod:`monge.maps.metrics`)
    GaussianMap(d, seed)            Gaussian -> Gaussian, closed-form Brenier map for ``|x - y|^2``
    gaussian_pair(d, seed)          the same, as a function
    ConvexPotentialMap(d, ...)      Gaussian mixture -> grad(phi)#source, phi strictly convex
                                    (nonlinear, any dimension), optimal for ``|x - y|^2``
    ElasticMap(d, lam, ...)         Gaussian mixture -> T#source with T(x) = x - S_lam(grad f(x)),
                                    optimal for the elastic cost 1/2 ``|x - y|^2`` + lam ``|x - y|_1``

Each problem object has ``sample_source(n, seed)``, ``sample_target(n, seed)`` (the map applied to
``sample_source(n, seed)``: call both with the same seed for paired samples, with different seeds
-- the defaults -- for independent ones), ``map(x)`` (the ground-truth optimal map; the object
is also callable), ``potential(x)``, and ``cost`` / ``lam`` naming the cost the map is optimal for
(the conventions of :func:`monge.cost_matrix`).
"""
from __future__ import annotations

import numbers

import numpy as np

from .._validate import float_array, integer, nonneg, positive

__all__ = ["gaussian", "eight_gaussians", "moons", "circles", "checkerboard", "spiral",
           "uniform_square", "GaussianMap", "gaussian_pair", "ConvexPotentialMap", "ElasticMap",
           "soft_threshold"]


# ---------------------------------------------------------------- helpers

def _rng(seed, name="seed"):
    """A Generator from an int >= 0 or a Generator (used as is, so draws advance it)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name}: expected an int or a numpy.random.Generator, "
                        f"got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name}: must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _fraction(name, value, lo, hi):
    """A real number in the open interval (lo, hi)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not (lo < v < hi):
        raise ValueError(f"{name}: must be in ({lo:g}, {hi:g}), got {value!r}")
    return v


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any z


def _softplus(z):
    return np.logaddexp(0.0, z)


def _sym_fn(S, fn):
    """fn applied to the eigenvalues of a symmetric matrix."""
    w, V = np.linalg.eigh((S + S.T) / 2)
    return (V * fn(w)) @ V.T


def _random_rotation(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _random_spd(d, rng, lo, hi):
    """Q diag(ev) Q^T with Q a random rotation and ev log-uniform in [lo, hi]."""
    ev = np.exp(rng.uniform(np.log(lo), np.log(hi), size=d))
    Q = _random_rotation(d, rng)
    return (Q * ev) @ Q.T


def soft_threshold(w, lam):
    """Soft thresholding S_lam, elementwise: every value moves towards 0 by lam, stopping at 0.

    ``S_lam(w) = sign(w) max(|w| - lam, 0)``.  S_lam is the gradient of h^* for
    ``h(z) = 1/2 |z|^2 + lam |z|_1`` (equivalently the proximal operator of ``lam |.|_1``): it
    gives the optimal map of the elastic cost in :class:`ElasticMap`.

    Parameters
    ----------
    w : array_like
        Values of any shape, converted to float64.
    lam : float
        Threshold, >= 0.

    Returns
    -------
    ndarray
        float64 array of the shape of `w`: entries with ``|w| <= lam`` become 0, the others
        move towards 0 by `lam`.

    Raises
    ------
    TypeError
        If `lam` is not a real number (bool included).
    ValueError
        If `lam` is negative or not finite.

    See Also
    --------
    ElasticMap : The known-map problem built on it.

    Examples
    --------
    >>> from monge.maps import datasets
    >>> datasets.soft_threshold([-2.0, 0.3, 1.5], 0.5).tolist()
    [-1.5, 0.0, 1.0]
    """
    lam = nonneg("lam", lam)
    w = np.asarray(w, dtype=np.float64)
    return np.sign(w) * np.maximum(np.abs(w) - lam, 0.0)


# ---------------------------------------------------------------- 2-D toy shapes

def gaussian(n, mean, cov, seed=0):
    """Samples of the Gaussian N(mean, cov), in any dimension.

    Parameters
    ----------
    n : int
        Number of samples, >= 1.
    mean : array_like, shape (d,)
        Mean.
    cov : array_like, shape (d, d)
        Covariance (symmetric positive semi-definite).
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is (its state advances).

    Returns
    -------
    ndarray, shape (n, d)
        float64 samples.

    Raises
    ------
    TypeError
        If `n` is not an integer, `mean` or `cov` is not a real numeric array (or is a torch tensor
        or a sparse matrix), or `seed` is neither an int nor a ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `mean` is not 1-D or `cov` not 2-D, either is empty or holds NaN or
        infinity, `cov` is not of shape (d, d) for d = ``len(mean)``, or `seed` < 0.

    See Also
    --------
    GaussianMap : Two Gaussians with their closed-form optimal map.

    Examples
    --------
    >>> from monge.maps import datasets
    >>> x = datasets.gaussian(2000, mean=[0.0, 1.0], cov=[[1.0, 0.0], [0.0, 4.0]])
    >>> x.shape, bool(abs(x[:, 1].std() - 2.0) < 0.1)
    ((2000, 2), True)
    """
    n = integer("n", n, 1)
    mean = float_array("mean", mean, (1,)).astype(np.float64)
    cov = float_array("cov", cov, (2,)).astype(np.float64)
    if cov.shape != (mean.size, mean.size):
        raise ValueError(f"cov: expected shape ({mean.size}, {mean.size}) to match mean, "
                         f"got {cov.shape}")
    return _rng(seed).multivariate_normal(mean, cov, size=n)


def eight_gaussians(n, radius=2.0, std=0.2, seed=0):
    """Points from 8 Gaussians centred evenly on a circle (2-D).

    Each point picks one of the 8 centres radius (cos(k pi/4), sin(k pi/4)) uniformly at
    random, then gets isotropic Gaussian noise of standard deviation `std`.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    radius : float, default 2.0
        Radius of the circle of centres, > 0.
    std : float, default 0.2
        Standard deviation of each Gaussian, >= 0.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, 2)
        float64 points.

    Raises
    ------
    TypeError
        If `n` is not an integer, `radius` or `std` not a real number, or `seed` is neither an int
        nor a ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `radius` not positive and finite, `std` negative or not finite, or `seed` < 0.

    See Also
    --------
    gaussian, moons, circles, checkerboard, spiral : The other 2-D shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> x = datasets.eight_gaussians(16, std=0.0)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x, axis=1), 2.0))
    ((16, 2), True)
    """
    n = integer("n", n, 1)
    radius = positive("radius", radius)
    std = nonneg("std", std)
    rng = _rng(seed)
    ang = 2 * np.pi * rng.integers(0, 8, size=n) / 8
    centers = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return centers + std * rng.standard_normal((n, 2))


def moons(n, noise=0.1, seed=0):
    """Points on two interleaved half circles (scikit-learn's make_moons shape), centred (2-D).

    The first n // 2 points lie on the upper half circle, the others on the lower one, with
    angles uniform; the whole is shifted by (-0.5, -0.25) and Gaussian noise of standard
    deviation `noise` is added.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    noise : float, default 0.1
        Standard deviation of the Gaussian noise, >= 0.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, 2)
        float64 points.

    Raises
    ------
    TypeError
        If `n` is not an integer, `noise` not a real number, or `seed` is neither an int nor a
        ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `noise` negative or not finite, or `seed` < 0.

    See Also
    --------
    circles, eight_gaussians, checkerboard, spiral : The other 2-D shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> x = datasets.moons(100, noise=0.0)
    >>> x.shape, bool(np.allclose(np.linalg.norm(x[:50] + [0.5, 0.25], axis=1), 1.0))
    ((100, 2), True)
    """
    n = integer("n", n, 1)
    noise = nonneg("noise", noise)
    rng = _rng(seed)
    n1 = n // 2
    t1 = np.pi * rng.random(n1)
    t2 = np.pi * rng.random(n - n1)
    upper = np.stack([np.cos(t1), np.sin(t1)], axis=1)
    lower = np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], axis=1)
    pts = np.concatenate([upper, lower]) - np.array([0.5, 0.25])
    return pts + noise * rng.standard_normal((n, 2))


def circles(n, factor=0.5, noise=0.05, radius=1.0, seed=0):
    """Points on two concentric circles (scikit-learn's make_circles shape, 2-D).

    n - n//2 points lie on the outer circle of the given radius, n//2 on the inner one of radius
    factor * radius, plus Gaussian noise of standard deviation noise * radius.  Angles are
    uniform; outer points come first.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    factor : float, default 0.5
        Ratio of the inner radius to the outer one, in (0, 1).
    noise : float, default 0.05
        Noise standard deviation, relative to `radius`, >= 0.
    radius : float, default 1.0
        Outer radius, > 0.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, 2)
        float64 points.

    Raises
    ------
    TypeError
        If `n` is not an integer, `factor`, `noise` or `radius` not a real number, or `seed` is
        neither an int nor a ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `factor` is not in (0, 1), `noise` is negative or not finite, `radius`
        not positive and finite, or `seed` < 0.

    See Also
    --------
    moons, eight_gaussians, checkerboard, spiral : The other 2-D shapes.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> x = datasets.circles(10, noise=0.0)
    >>> np.unique(np.linalg.norm(x, axis=1).round(6)).tolist()
    [0.5, 1.0]
    """
    n = integer("n", n, 1)
    factor = _fraction("factor", factor, 0.0, 1.0)
    noise = nonneg("noise", noise)
    radius = positive("radius", radius)
    rng = _rng(seed)
    n_in = n // 2
    r = np.concatenate([np.ones(n - n_in), np.full(n_in, factor)])
    t = 2 * np.pi * rng.random(n)
    pts = r[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    return radius * (pts + noise * rng.standard_normal((n, 2)))


def checkerboard(n, n_tiles=4, size=4.0, seed=0):
    """Points uniform on the black squares of a checkerboard (2-D).

    The board has n_tiles x n_tiles squares and covers [-size/2, size/2]^2; the square at the
    lower-left corner is black.  ``n_tiles=4, size=4`` is the 'checkerboard' shape of FFJORD
    [1]_.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    n_tiles : int, default 4
        Squares per side, >= 2.
    size : float, default 4.0
        Side of the board, > 0.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, 2)
        float64 points.

    Raises
    ------
    TypeError
        If `n` or `n_tiles` is not an integer, `size` not a real number, or `seed` is neither an int
        nor a ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `n_tiles` < 2, `size` not positive and finite, or `seed` < 0.

    See Also
    --------
    moons, circles, eight_gaussians, spiral : The other 2-D shapes.

    References
    ----------
    .. [1] W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever and D. Duvenaud, "FFJORD:
       Free-form Continuous Dynamics for Scalable Reversible Generative Models", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> x = datasets.checkerboard(1000)        # unit squares: black when i + j is even
    >>> bool((np.abs(x) <= 2).all() and (np.floor(x + 2).sum(axis=1) % 2 == 0).all())
    True
    """
    n = integer("n", n, 1)
    k = integer("n_tiles", n_tiles, 2)
    size = positive("size", size)
    rng = _rng(seed)
    cells = np.array([(i, j) for i in range(k) for j in range(k) if (i + j) % 2 == 0], dtype=float)
    c = cells[rng.integers(0, len(cells), size=n)]
    side = size / k
    return (c + rng.random((n, 2))) * side - size / 2


def spiral(n, n_arms=1, turns=1.5, radius=2.0, noise=0.05, seed=0):
    """Points on an Archimedean spiral, uniform along the arc (2-D).

    The spiral (r proportional to the angle) has `turns` turns and outer radius `radius`; with
    n_arms > 1, that many copies rotated evenly (``n_arms=2`` is the '2spirals' shape of FFJORD
    [1]_).  Gaussian noise of standard deviation `noise` is added.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    n_arms : int, default 1
        Number of arms, >= 1.
    turns : float, default 1.5
        Turns of each arm, > 0.
    radius : float, default 2.0
        Outer radius, > 0.
    noise : float, default 0.05
        Standard deviation of the Gaussian noise, >= 0.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, 2)
        float64 points.

    Raises
    ------
    TypeError
        If `n` or `n_arms` is not an integer, `turns`, `radius` or `noise` not a real number, or
        `seed` is neither an int nor a ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `n_arms` < 1, `turns` or `radius` not positive and finite, `noise` negative
        or not finite, or `seed` < 0.

    See Also
    --------
    moons, circles, eight_gaussians, checkerboard : The other 2-D shapes.

    References
    ----------
    .. [1] W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever and D. Duvenaud, "FFJORD:
       Free-form Continuous Dynamics for Scalable Reversible Generative Models", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> x = datasets.spiral(500, n_arms=2, noise=0.0)
    >>> x.shape, bool(np.linalg.norm(x, axis=1).max() <= 2.0)
    ((500, 2), True)
    """
    n = integer("n", n, 1)
    n_arms = integer("n_arms", n_arms, 1)
    turns = positive("turns", turns)
    radius = positive("radius", radius)
    noise = nonneg("noise", noise)
    rng = _rng(seed)
    s = np.sqrt(rng.random(n))  # arc length grows like s^2 when r ~ angle: uniform on the arc
    arm = rng.integers(0, n_arms, size=n)
    ang = 2 * np.pi * turns * s + 2 * np.pi * arm / n_arms
    pts = radius * s[:, None] * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return pts + noise * rng.standard_normal((n, 2))


def uniform_square(n, d=2, seed=0):
    """Points uniform on the unit cube [0, 1)^d, in any dimension.

    Parameters
    ----------
    n : int
        Number of points, >= 1.
    d : int, default 2
        Dimension, >= 1.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.

    Returns
    -------
    ndarray, shape (n, d)
        float64 points.

    Raises
    ------
    TypeError
        If `n` or `d` is not an integer, or `seed` is neither an int nor a
        ``numpy.random.Generator``.
    ValueError
        If `n` < 1, `d` < 1, or `seed` < 0.

    See Also
    --------
    gaussian : Gaussian samples in any dimension.

    Examples
    --------
    >>> from monge.maps import datasets
    >>> x = datasets.uniform_square(5, d=3)
    >>> x.shape, bool(((0 <= x) & (x < 1)).all())
    ((5, 3), True)
    """
    return _rng(seed).random((integer("n", n, 1), integer("d", d, 1)))


# ---------------------------------------------------------------- known optimal maps

class _GaussianMixture:
    """Equal-weight mixture of K Gaussians in R^d: means at distance `radius` from the origin in
    random directions, covariances with eigenvalues log-uniform in [std_lo^2, std_hi^2]."""

    def __init__(self, d, n_components, rng, radius=2.5, std_lo=0.4, std_hi=1.0):
        self.d, self.k = d, n_components
        if n_components == 1:
            self.means = np.zeros((1, d))
        else:
            u = rng.standard_normal((n_components, d))
            self.means = radius * u / np.linalg.norm(u, axis=1, keepdims=True)
        self.chols = []
        for _ in range(n_components):
            Q = _random_rotation(d, rng)
            sd = np.exp(rng.uniform(np.log(std_lo), np.log(std_hi), size=d))
            self.chols.append(Q * sd)  # L with L L^T = Q diag(sd^2) Q^T
        self.covs = np.stack([L @ L.T for L in self.chols])
        self.weights = np.full(n_components, 1.0 / n_components)
        mc = self.means - self.means.mean(axis=0)
        self.covariance = self.covs.mean(axis=0) + mc.T @ mc / n_components  # of the mixture
        self.total_variance = float(np.trace(self.covariance))

    def sample(self, n, rng):
        comp = rng.integers(0, self.k, size=n)
        z = rng.standard_normal((n, self.d))
        x = np.empty((n, self.d))
        for j in range(self.k):
            idx = comp == j
            x[idx] = self.means[j] + z[idx] @ self.chols[j].T
        return x


class _KnownMap:
    """Shared interface of the problems with a known optimal map (see the module docstring)."""

    cost = "sqeuclidean"
    lam = 0.0

    def _points(self, x, name="x"):
        arr = float_array(name, x, (1, 2)).astype(np.float64, copy=False)
        if arr.shape[-1] != self.d:
            raise ValueError(f"{name}: expected points of dimension d={self.d}, "
                             f"got shape {arr.shape}")
        return arr

    def sample_source(self, n, seed=0):
        """n source samples, shape (n, d)."""
        return self._sample(integer("n", n, 1), _rng(seed))

    def sample_target(self, n, seed=1):
        """n target samples: map(sample_source(n, seed)).  The default seed differs from
        sample_source's so that default source and target samples are independent."""
        return self.map(self.sample_source(n, seed))

    def __call__(self, x):
        return self.map(x)

    def __repr__(self):
        extra = f", lam={self.lam:g}" if self.cost == "elastic" else ""
        return f"{type(self).__name__}(d={self.d}{extra}, cost={self.cost!r})"


class GaussianMap(_KnownMap):
    """Gaussian-to-Gaussian transport problem with a closed-form optimal map.

    Source N(m0, S0) and target N(m1, S1), with random means N(0, I) and random SPD covariances
    (eigenvalues log-uniform in [cov_min, cov_max], eigenvectors a random rotation), all fixed
    by `seed`.  The Brenier (optimal for ``|x - y|^2``) map is affine [1]_ [2]_::

        T(x) = m1 + A (x - m0),   A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2},

    A symmetric positive definite with A S0 A = S1; T = grad of the convex potential
    1/2 x^T A x + (m1 - A m0) . x.  ``w2_squared`` is the closed-form squared 2-Wasserstein
    distance ``|m0 - m1|^2`` + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2}).

    Parameters
    ----------
    d : int
        Dimension, >= 1.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.
    cov_min, cov_max : float, default 0.25 and 4.0
        Range of the covariances' eigenvalues, 0 < cov_min <= cov_max (keyword-only).

    Attributes
    ----------
    d : int
        Dimension.
    mean_source, mean_target : ndarray, shape (d,)
        m0 and m1.
    cov_source, cov_target : ndarray, shape (d, d)
        S0 and S1.
    A : ndarray, shape (d, d)
        The symmetric positive definite matrix of the optimal map.
    w2_squared : float
        Squared 2-Wasserstein distance between source and target.
    cost : str
        'sqeuclidean', the cost the map is optimal for (as :func:`monge.cost_matrix` names it).
    lam : float
        0.0 (unused by the squared Euclidean cost).

    Raises
    ------
    TypeError
        If `d` is not an integer, `cov_min` or `cov_max` not a real number, or `seed` is neither an
        int nor a ``numpy.random.Generator``.
    ValueError
        If `d` < 1, `cov_min` or `cov_max` is not positive and finite, `cov_max` < `cov_min`,
        or `seed` < 0.

    See Also
    --------
    gaussian_pair : The same problem, built by a function.
    ConvexPotentialMap : A nonlinear optimal map for the same cost.
    monge.maps.bures_map : The same formula, for any two means and covariances.
    monge.maps.metrics.evaluate_map : Scores a fitted map against ``map``.

    Notes
    -----
    Every problem object has ``sample_source(n, seed=0)`` (shape (n, d)),
    ``sample_target(n, seed=1)`` (the map applied to ``sample_source(n, seed)``: call both with
    the same seed for paired samples, with different seeds -- the defaults -- for independent
    ones), ``map(x)`` (the ground-truth optimal map, for x of shape (n, d) or (d,); the object is
    also callable) and ``potential(x)``.  ``map`` and ``potential`` raise ValueError for points
    whose last dimension is not d, and the samplers ValueError or TypeError for a bad `n` or
    `seed`.

    References
    ----------
    .. [1] I. Olkin and F. Pukelsheim, "The distance between two random vectors with given
       dispersion matrices", Linear Algebra and its Applications 48 (1982), 257-263.
    .. [2] M. Knott and C. S. Smith, "On the optimal mapping of distributions", Journal of
       Optimization Theory and Applications 43 (1984), 39-49.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> P = datasets.GaussianMap(3, seed=0)
    >>> P, P.map(P.sample_source(5)).shape
    (GaussianMap(d=3, cost='sqeuclidean'), (5, 3))
    >>> bool(np.allclose(P.A @ P.cov_source @ P.A, P.cov_target))
    True
    """

    def __init__(self, d, seed=0, *, cov_min=0.25, cov_max=4.0):
        self.d = integer("d", d, 1)
        cov_min = positive("cov_min", cov_min)
        cov_max = positive("cov_max", cov_max)
        if cov_max < cov_min:
            raise ValueError(f"cov_max: must be >= cov_min ({cov_min:g}), got {cov_max:g}")
        rng = _rng(seed)
        self.mean_source = rng.standard_normal(self.d)
        self.mean_target = rng.standard_normal(self.d)
        self.cov_source = _random_spd(self.d, rng, cov_min, cov_max)
        self.cov_target = _random_spd(self.d, rng, cov_min, cov_max)
        r0 = _sym_fn(self.cov_source, np.sqrt)
        r0_inv = _sym_fn(self.cov_source, lambda w: 1.0 / np.sqrt(w))
        mid = _sym_fn(r0 @ self.cov_target @ r0, lambda w: np.sqrt(np.maximum(w, 0.0)))
        A = r0_inv @ mid @ r0_inv
        self.A = (A + A.T) / 2
        self.w2_squared = float(np.sum((self.mean_source - self.mean_target) ** 2)
                                + np.trace(self.cov_source + self.cov_target - 2 * mid))
        self._chol = np.linalg.cholesky(self.cov_source)

    def _sample(self, n, rng):
        return self.mean_source + rng.standard_normal((n, self.d)) @ self._chol.T

    def map(self, x):
        """T(x) = m1 + A (x - m0), for x of shape (n, d) or (d,)."""
        x = self._points(x)
        return self.mean_target + (x - self.mean_source) @ self.A

    def potential(self, x):
        """phi(x) = 1/2 x^T A x + (m1 - A m0) . x, with grad phi = T."""
        x = self._points(x)
        b = self.mean_target - self.A @ self.mean_source
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.A, x) + x @ b


def gaussian_pair(d, seed=0, **kwargs):
    """The Gaussian problem with closed-form Brenier map, built by a function.

    Same as ``GaussianMap(d, seed, **kwargs)``.  Use its attributes (mean_source, cov_source,
    mean_target, cov_target, A, w2_squared) and methods (sample_source, sample_target, map,
    potential).

    Parameters
    ----------
    d : int
        Dimension, >= 1.
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.
    **kwargs
        ``cov_min``, ``cov_max``: range of the covariances' eigenvalues (see
        :class:`GaussianMap`).

    Returns
    -------
    GaussianMap
        The problem.

    Raises
    ------
    TypeError
        If `d` is not an integer, `cov_min` or `cov_max` not a real number, `seed` is neither an int
        nor a ``numpy.random.Generator``, or `kwargs` holds another name.
    ValueError
        If `d` < 1, `cov_min` or `cov_max` is not positive and finite, `cov_max` < `cov_min`,
        or `seed` < 0.

    See Also
    --------
    GaussianMap : The class, with the formulas.

    Examples
    --------
    >>> from monge.maps import datasets
    >>> P = datasets.gaussian_pair(2, seed=1)
    >>> P, P.w2_squared > 0
    (GaussianMap(d=2, cost='sqeuclidean'), True)
    """
    return GaussianMap(d, seed, **kwargs)


class ConvexPotentialMap(_KnownMap):
    """Nonlinear transport problem with a known optimal map for the squared Euclidean cost.

    The map is optimal for the cost ``|x - y|^2``, in any dimension d.

    Source: an equal-weight mixture of `n_components` Gaussians in R^d (means at distance
    `radius` from the origin, per-component random covariances with standard deviations in
    [0.4, 1]).  Map: T = grad phi with::

        phi(x) = 1/2 x^T A x + b . x + sum_k w_k softplus(u_k . x + c_k),
        T(x)   = A x + b + sum_k w_k sigmoid(u_k . x + c_k) u_k,

    A SPD (eigenvalues in [1/4, 1]), K = n_ridges (default max(8, 2d)) ridges in random
    directions, steep (u_k . x has standard deviation ~`sharpness` within a mixture component,
    so each sigmoid is a smoothed step) and each hyperplane u_k . x + c_k = 0 passing through a
    source sample, so every ridge bends the map where the data is; w_k > 0 with jumps
    w_k ``|u_k|`` ~ 3 sqrt(source total variance / K).  The Hessian
    A + sum_k w_k sigmoid'(.) u_k u_k^T >= A > 0: phi is strictly convex, so by Brenier's
    theorem [1]_ T is the (unique) optimal map from the source to T#source.  With the defaults
    the best affine map leaves ~7-14% of the target variance unexplained (L2-UVP [2]_);
    `nonlinearity` (scales the w_k; 0 gives the affine map x -> A x + b) and `sharpness` raise
    it.  Target samples are T(fresh source samples).  ``jacobian(x)`` gives DT = Hess phi.

    Parameters
    ----------
    d : int
        Dimension, >= 1.
    n_components : int, default 4
        Number of Gaussians in the source mixture, >= 1 (one: a Gaussian centred at 0).
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.
    n_ridges : int, optional
        K, the number of softplus ridges, >= 0 (default max(8, 2d); 0 gives an affine map).
    nonlinearity : float, default 1.0
        Scale of the ridge weights w_k, >= 0.
    sharpness : float, default 5.0
        Steepness of the ridges (standard deviation of u_k . x within a component), > 0.
    radius : float, default 2.5
        Distance of the mixture means from the origin, >= 0.

    Attributes
    ----------
    d, n_components : int
        As given.
    source : object
        The source mixture: ``means`` (K, d), ``covs`` (K, d, d), ``weights``, ``covariance``
        and ``total_variance`` of the mixture, ``sample(n, rng)``.
    A : ndarray, shape (d, d)
        SPD matrix of the quadratic part.
    b : ndarray, shape (d,)
        Linear part.
    u : ndarray, shape (K, d)
        Ridge directions (their norms set the steepness).
    c : ndarray, shape (K,)
        Ridge offsets.
    w : ndarray, shape (K,)
        Ridge weights, > 0 (0 when ``nonlinearity=0``).
    cost : str
        'sqeuclidean', the cost the map is optimal for.
    lam : float
        0.0 (unused by the squared Euclidean cost).

    Raises
    ------
    TypeError
        If `d`, `n_components` or `n_ridges` is not an integer, `nonlinearity`, `sharpness` or
        `radius` not a real number, or `seed` is neither an int nor a ``numpy.random.Generator``.
    ValueError
        If `d` or `n_components` is < 1, `n_ridges` < 0, `nonlinearity` or `radius` negative
        or not finite, `sharpness` not positive and finite, or `seed` < 0.

    See Also
    --------
    GaussianMap : The affine (Gaussian) case, in closed form.
    ElasticMap : A known optimal map for the elastic cost.
    monge.maps.metrics.l2_uvp : The score used to compare a fitted map with ``map``.

    Notes
    -----
    Every problem object has ``sample_source(n, seed=0)`` (shape (n, d)),
    ``sample_target(n, seed=1)`` (the map applied to ``sample_source(n, seed)``: call both with
    the same seed for paired samples, with different seeds -- the defaults -- for independent
    ones), ``map(x)`` (the ground-truth optimal map, for x of shape (n, d) or (d,); the object is
    also callable) and ``potential(x)``.  ``map`` and ``potential`` raise ValueError for points
    whose last dimension is not d, and the samplers ValueError or TypeError for a bad `n` or
    `seed`.

    References
    ----------
    .. [1] Y. Brenier, "Polar factorization and monotone rearrangement of vector-valued
       functions", Communications on Pure and Applied Mathematics 44 (1991), 375-417.
    .. [2] A. Korotin, L. Li, A. Genevay, J. Solomon, A. Filippov and E. Burnaev, "Do Neural
       Optimal Transport Solvers Work? A Continuous Wasserstein-2 Benchmark", NeurIPS 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> P = datasets.ConvexPotentialMap(2, seed=0)
    >>> x = P.sample_source(5)
    >>> P(x).shape, bool((np.linalg.eigvalsh(P.jacobian(x)) > 0).all())    # DT is SPD
    ((5, 2), True)
    """

    def __init__(self, d, n_components=4, seed=0, *, n_ridges=None, nonlinearity=1.0,
                 sharpness=5.0, radius=2.5):
        self.d = integer("d", d, 1)
        self.n_components = integer("n_components", n_components, 1)
        n_ridges = max(8, 2 * self.d) if n_ridges is None else integer("n_ridges", n_ridges, 0)
        nonlinearity = nonneg("nonlinearity", nonlinearity)
        sharpness = positive("sharpness", sharpness)
        radius = nonneg("radius", radius)
        rng = _rng(seed)
        self.source = _GaussianMixture(self.d, self.n_components, rng, radius=radius)
        self.A = _random_spd(self.d, rng, 0.25, 1.0)
        self.b = 0.5 * rng.standard_normal(self.d)
        u = rng.standard_normal((n_ridges, self.d))
        # steep ridges: u_k . x has standard deviation `sharpness` (times a U(0.5, 1.5) factor)
        # over the source, so each sigmoid is a smoothed step, saturated on most of the data
        spread = np.sqrt(np.einsum("ki,ij,kj->k", u, self.source.covs.mean(axis=0), u))
        self.u = u * (sharpness * rng.uniform(0.5, 1.5, size=n_ridges) / spread)[:, None]
        anchors = self.source.sample(n_ridges, rng)
        self.c = -np.einsum("kd,kd->k", self.u, anchors)
        # w_k |u_k| is the jump of T across ridge k: of the order of 3 sqrt(total source
        # variance / K), so that the ridges together carry a good part of the target's variance
        jump = 3.0 * np.sqrt(self.source.total_variance / max(n_ridges, 1))
        self.w = nonlinearity * jump * rng.uniform(0.5, 1.5, size=n_ridges) \
            / np.linalg.norm(self.u, axis=1)

    def _sample(self, n, rng):
        return self.source.sample(n, rng)

    def map(self, x):
        """T(x) = grad phi(x), for x of shape (n, d) or (d,)."""
        x = self._points(x)
        s = _sigmoid(x @ self.u.T + self.c)
        return x @ self.A + self.b + (s * self.w) @ self.u

    def potential(self, x):
        """phi(x) (strictly convex; grad phi = map)."""
        x = self._points(x)
        sp = _softplus(x @ self.u.T + self.c)
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.A, x) + x @ self.b + sp @ self.w

    def jacobian(self, x):
        """DT(x) = Hessian of phi, shape (..., d, d): symmetric positive definite."""
        x = self._points(x)
        s = _sigmoid(x @ self.u.T + self.c)
        ds = s * (1 - s) * self.w
        return self.A + np.einsum("...k,ki,kj->...ij", ds, self.u, self.u)


class ElasticMap(_KnownMap):
    """Transport problem with a known optimal map for the elastic cost.

    The cost is ``c(x, y) = h(x - y),  h(z) = 1/2 |z|^2 + lam |z|_1`` (monge's cost='elastic',
    lam=lam).

    Construction (Cuturi, Klein & Ablin, ICML 2023 [1]_; Uscidda & Cuturi, ICML 2023 [2]_): for
    c = h(x - y) with h strictly convex and f c-concave, T(x) = x - grad h^*(grad f(x)) is an
    optimal map.  Here grad h^* = S_lam, soft thresholding (:func:`soft_threshold`), so::

        T(x) = x - S_lam(grad f(x)),   S_lam(w) = sign(w) max(|w| - lam, 0),

    and the displacement x - T(x) is sparse: zero in every coordinate k where ``|d_k f(x)|`` <=
    lam.  f is a random smooth function of the first `n_active` coordinates (all by default)::

        f(x) = 1/2 x^T Q x + b . x + sum_k w_k softplus(u_k . x + c_k),

    Q symmetric indefinite (random rotation, eigenvalues U(-1, 1) before scaling), half of the
    ridges convex (w_k > 0, gentle) and half concave (w_k < 0, steep: smoothed steps in grad f,
    which make T clearly nonlinear).

    Source: equal-weight mixture of `n_components` Gaussians (as in ConvexPotentialMap).

    Parameters
    ----------
    d : int
        Dimension, >= 1.
    lam : float, default 0.5
        Weight of the L1 term of the cost, >= 0 (0: half the squared Euclidean cost).
    seed : int or numpy.random.Generator, default 0
        Seed (>= 0) of a fresh generator, or a generator used as is.
    n_components : int, default 3
        Number of Gaussians in the source mixture, >= 1 (keyword-only, as all that follow).
    n_ridges : int, optional
        Number of softplus ridges of f, >= 0 (default max(8, 2 n_active)).
    n_active : int, optional
        f depends on the first `n_active` coordinates only, 1 <= n_active <= d (default d).
    kappa : float, default 0.9
        Bound on the Hessian of f, in (0, 1) (see Notes).
    nonlinearity : float, default 1.0
        Scale of the concave ridges' weights, >= 0.
    sharpness : float, default 5.0
        Steepness of the concave ridges, > 0.
    radius : float, default 2.5
        Distance of the mixture means from the origin, >= 0.

    Attributes
    ----------
    d, lam, n_components, n_active, kappa
        As given (after validation).
    source : object
        The source mixture (see :class:`ConvexPotentialMap`).
    Q : ndarray, shape (d, d)
        Symmetric quadratic part of f (after scaling).
    b : ndarray, shape (d,)
        Linear part of f.
    u, c, w : ndarray
        Ridge directions (K, d), offsets (K,) and weights (K,).
    hessian_bound : float
        lambda_max(H), recomputed after scaling; <= kappa.
    cost : str
        'elastic', the cost the map is optimal for.

    Raises
    ------
    TypeError
        If `d`, `n_components`, `n_ridges` or `n_active` is not an integer, `lam`, `kappa`,
        `nonlinearity`, `sharpness` or `radius` not a real number, or `seed` is neither an int nor a
        ``numpy.random.Generator``.
    ValueError
        If `d`, `n_components` or `n_active` is < 1, `n_active` > `d`, `n_ridges` < 0, `kappa`
        is not in (0, 1), `lam`, `nonlinearity` or `radius` negative or not finite,
        `sharpness` not positive and finite, or `seed` < 0.
    AssertionError
        If the recomputed Hessian bound exceeds `kappa` (a safeguard of the validity condition).

    See Also
    --------
    soft_threshold : S_lam.
    ConvexPotentialMap : A known nonlinear optimal map for the squared Euclidean cost.
    monge.maps.metrics.evaluate_map : Pass ``cost=problem.cost, lam=problem.lam``.

    Notes
    -----
    Validity condition (ensured and checked here): Hess f(x) <= kappa I for every x, kappa < 1.
    Since 0 < sigmoid' <= 1/4,  Hess f(x) <= H := Q + 1/4 sum_{w_k > 0} w_k u_k u_k^T  in the
    Loewner order (concave ridges only lower the Hessian); when lambda_max(H) > kappa, Q and the
    positive w_k are scaled down so that lambda_max(H) = kappa.  The
    constructor recomputes lambda_max(H), asserts it is <= kappa and stores it as
    ``hessian_bound``; ``hessian_potential(x)`` gives Hess f for spot checks (and
    ``grad_potential(x)`` gives grad f).

    Why it suffices: x -> c(x, y) - f(x) = [1/2 ``|x|^2`` - f(x) - x.y + 1/2 ``|y|^2``] + lam
    ``|x - y|_1`` is then (1 - kappa)-strongly convex for every y, and its optimality condition
    at x is grad f(x) in dh(x - y), i.e. y = T(x).  So with g = f^c, g(y) = inf_x c(x, y) - f(x):
    f(x) + g(y) <= c(x, y) for all x, y with equality on y = T(x).  This dual certificate makes
    the graph of T c-cyclically monotone: T is optimal from the source to T#source (the unique
    optimal map, the source having a density and h being strictly convex), T is injective, and on
    any finite sample x_1..x_n the pairing x_i -> T(x_i) solves the assignment problem for c.
    No lower bound on Hess f is needed, and the L1 term never breaks the condition (it only
    sparsifies the displacement); with lam = 0, T is the Brenier map grad(1/2 ``|x|^2`` - f).

    Every problem object has ``sample_source(n, seed=0)`` (shape (n, d)),
    ``sample_target(n, seed=1)`` (the map applied to ``sample_source(n, seed)``: call both with
    the same seed for paired samples, with different seeds -- the defaults -- for independent
    ones), ``map(x)`` (the ground-truth optimal map, for x of shape (n, d) or (d,); the object is
    also callable) and ``potential(x)``.  ``map`` and ``potential`` raise ValueError for points
    whose last dimension is not d, and the samplers ValueError or TypeError for a bad `n` or
    `seed`.

    References
    ----------
    .. [1] M. Cuturi, M. Klein and P. Ablin, "Monge, Bregman and Occam: Interpretable Optimal
       Transport in High-Dimensions with Feature-Sparse Maps", ICML 2023.
    .. [2] T. Uscidda and M. Cuturi, "The Monge Gap: A Regularizer to Learn All Transport
       Maps", ICML 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import datasets
    >>> P = datasets.ElasticMap(4, lam=0.5, seed=0)
    >>> x = P.sample_source(100)
    >>> P, P.hessian_bound <= P.kappa, bool((x - P(x) == 0).any())     # sparse displacements
    (ElasticMap(d=4, lam=0.5, cost='elastic'), True, True)
    """

    cost = "elastic"

    def __init__(self, d, lam=0.5, seed=0, *, n_components=3, n_ridges=None, n_active=None,
                 kappa=0.9, nonlinearity=1.0, sharpness=5.0, radius=2.5):
        self.d = integer("d", d, 1)
        self.lam = nonneg("lam", lam)
        self.n_components = integer("n_components", n_components, 1)
        s = self.d if n_active is None else integer("n_active", n_active, 1)
        if s > self.d:
            raise ValueError(f"n_active: must be <= d ({self.d}), got {s}")
        self.n_active = s
        n_ridges = max(8, 2 * s) if n_ridges is None else integer("n_ridges", n_ridges, 0)
        self.kappa = _fraction("kappa", kappa, 0.0, 1.0)
        nonlinearity = nonneg("nonlinearity", nonlinearity)
        sharpness = positive("sharpness", sharpness)
        radius = nonneg("radius", radius)
        rng = _rng(seed)
        self.source = _GaussianMixture(self.d, self.n_components, rng, radius=radius)
        d = self.d
        R = _random_rotation(s, rng)
        Q = np.zeros((d, d))
        Q[:s, :s] = (R * rng.uniform(-1.0, 1.0, size=s)) @ R.T
        Q = (Q + Q.T) / 2
        b = np.zeros(d)
        b[:s] = 0.5 * rng.standard_normal(s)
        u = np.zeros((n_ridges, d))
        u[:, :s] = rng.standard_normal((n_ridges, s))
        concave = np.arange(n_ridges) % 2 == 1
        within = self.source.covs.mean(axis=0)
        spread = np.sqrt(np.einsum("ki,ij,kj->k", u, within, u))
        steep = np.where(concave, sharpness, 1.0) * rng.uniform(0.5, 1.5, size=n_ridges)
        u *= (steep / spread)[:, None]
        anchors = self.source.sample(n_ridges, rng)
        c = -np.einsum("kd,kd->k", u, anchors)
        # convex ridges: weights of order one (scaled below); concave ridges: jumps of grad f of
        # order 2 sqrt(source variance on the active coordinates / number of concave ridges)
        w = rng.uniform(0.5, 1.5, size=n_ridges)
        var_active = float(np.trace(self.source.covariance[:s, :s]))
        jump = 2.0 * np.sqrt(var_active / max(concave.sum(), 1))
        w[concave] *= -nonlinearity * jump / np.linalg.norm(u[concave], axis=1)
        bound = self._hessian_bound(Q, w, u)
        # only ever scale down; aim a hair below kappa so rounding cannot push the bound over
        scale = min(1.0, self.kappa * (1 - 1e-9) / bound) if bound > 0 else 1.0
        w[~concave] *= scale
        # b does not enter the condition: cancel the ridges' mean gradient over the source, so
        # that grad f (hence the displacement) stays of the order of the data's spread
        pilot = self.source.sample(1024, rng)
        b -= ((_sigmoid(pilot @ u.T + c) * w) @ u).mean(axis=0)
        self.Q, self.b, self.w, self.u, self.c = Q * scale, b, w, u, c
        self.hessian_bound = self._hessian_bound(self.Q, self.w, self.u)
        if not self.hessian_bound <= self.kappa:  # the validity condition
            raise AssertionError(f"ElasticMap: Hessian bound {self.hessian_bound} > kappa")

    @staticmethod
    def _hessian_bound(Q, w, u):
        """lambda_max(Q + 1/4 sum_{w_k > 0} w_k u_k u_k^T) >= lambda_max(Hess f(x)) for all x."""
        H = Q + 0.25 * (u.T * np.maximum(w, 0.0)) @ u
        return float(np.linalg.eigvalsh((H + H.T) / 2)[-1])

    def _sample(self, n, rng):
        return self.source.sample(n, rng)

    def potential(self, x):
        """f(x), the c-concave potential (Hess f <= kappa I)."""
        x = self._points(x)
        sp = _softplus(x @ self.u.T + self.c)
        return 0.5 * np.einsum("...i,ij,...j->...", x, self.Q, x) + x @ self.b + sp @ self.w

    def grad_potential(self, x):
        """grad f(x)."""
        x = self._points(x)
        s = _sigmoid(x @ self.u.T + self.c)
        return x @ self.Q + self.b + (s * self.w) @ self.u

    def hessian_potential(self, x):
        """Hess f(x), shape (..., d, d); its eigenvalues are <= hessian_bound <= kappa < 1."""
        x = self._points(x)
        s = _sigmoid(x @ self.u.T + self.c)
        return self.Q + np.einsum("...k,ki,kj->...ij", s * (1 - s) * self.w, self.u, self.u)

    def map(self, x):
        """T(x) = x - S_lam(grad f(x)), for x of shape (n, d) or (d,)."""
        x = self._points(x)
        return x - soft_threshold(self.grad_potential(x), self.lam)
