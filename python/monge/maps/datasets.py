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
    """``S_lam(w) = sign(w) max(|w| - lam, 0)``, elementwise: the gradient of h^* for
    ``h(z) = 1/2 |z|^2 + lam |z|_1`` (equivalently the proximal operator of ``lam |.|_1``)."""
    lam = nonneg("lam", lam)
    w = np.asarray(w, dtype=np.float64)
    return np.sign(w) * np.maximum(np.abs(w) - lam, 0.0)


# ---------------------------------------------------------------- 2-D toy shapes

def gaussian(n, mean, cov, seed=0):
    """n samples of N(mean, cov)."""
    n = integer("n", n, 1)
    mean = float_array("mean", mean, (1,)).astype(np.float64)
    cov = float_array("cov", cov, (2,)).astype(np.float64)
    if cov.shape != (mean.size, mean.size):
        raise ValueError(f"cov: expected shape ({mean.size}, {mean.size}) to match mean, "
                         f"got {cov.shape}")
    return _rng(seed).multivariate_normal(mean, cov, size=n)


def eight_gaussians(n, radius=2.0, std=0.2, seed=0):
    """n points from 8 Gaussians on a circle of the given radius."""
    n = integer("n", n, 1)
    radius = positive("radius", radius)
    std = nonneg("std", std)
    rng = _rng(seed)
    ang = 2 * np.pi * rng.integers(0, 8, size=n) / 8
    centers = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return centers + std * rng.standard_normal((n, 2))


def moons(n, noise=0.1, seed=0):
    """n points on two interleaved half circles (scikit-learn's shape), centred."""
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
    """n points on two concentric circles (scikit-learn's make_circles): n - n//2 on the outer
    circle of the given radius, n//2 on the inner one of radius factor * radius, plus Gaussian
    noise of std noise * radius.  Angles are uniform; outer points come first."""
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
    """n points uniform on the black squares of an n_tiles x n_tiles checkerboard covering
    [-size/2, size/2]^2 (the square at the lower-left corner is black).  n_tiles=4, size=4 is
    the FFJORD 'checkerboard' shape."""
    n = integer("n", n, 1)
    k = integer("n_tiles", n_tiles, 2)
    size = positive("size", size)
    rng = _rng(seed)
    cells = np.array([(i, j) for i in range(k) for j in range(k) if (i + j) % 2 == 0], dtype=float)
    c = cells[rng.integers(0, len(cells), size=n)]
    side = size / k
    return (c + rng.random((n, 2))) * side - size / 2


def spiral(n, n_arms=1, turns=1.5, radius=2.0, noise=0.05, seed=0):
    """n points on an Archimedean spiral (r proportional to the angle) of `turns` turns and outer
    radius `radius`, uniform along the arc; with n_arms > 1, that many copies rotated evenly
    (n_arms=2 is the FFJORD '2spirals' shape).  Gaussian noise of std noise is added."""
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
    """n points uniform on [0, 1]^d."""
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
    """Gaussian source N(m0, S0) and target N(m1, S1), random means N(0, I) and random SPD
    covariances (eigenvalues log-uniform in [cov_min, cov_max]), fixed by `seed`.

    The Brenier (optimal for ``|x - y|^2``) map is affine::

        T(x) = m1 + A (x - m0),   A = S0^{-1/2} (S0^{1/2} S1 S0^{1/2})^{1/2} S0^{-1/2},

    A symmetric positive definite with A S0 A = S1; T = grad of the convex potential
    1/2 x^T A x + (m1 - A m0) . x.  ``w2_squared`` is the closed-form squared 2-Wasserstein
    distance ``|m0 - m1|^2`` + tr(S0 + S1 - 2 (S0^{1/2} S1 S0^{1/2})^{1/2}).

    Attributes: d, mean_source, cov_source, mean_target, cov_target, A, w2_squared.
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
    """The Gaussian problem with closed-form Brenier map, as a function: ``GaussianMap(d, seed)``.

    Use its attributes (mean_source, cov_source, mean_target, cov_target, A, w2_squared) and
    methods (sample_source, sample_target, map, potential)."""
    return GaussianMap(d, seed, **kwargs)


class ConvexPotentialMap(_KnownMap):
    """Nonlinear transport problem with a known optimal map for the cost ``|x - y|^2``, any dimension.

    Source: an equal-weight mixture of `n_components` Gaussians in R^d (means at distance
    `radius` from the origin, per-component random covariances with standard deviations in
    [0.4, 1]).  Map: T = grad phi with

        phi(x) = 1/2 x^T A x + b . x + sum_k w_k softplus(u_k . x + c_k),
        T(x)   = A x + b + sum_k w_k sigmoid(u_k . x + c_k) u_k,

    A SPD (eigenvalues in [1/4, 1]), K = n_ridges (default max(8, 2d)) ridges in random
    directions, steep (u_k . x has standard deviation ~`sharpness` within a mixture component,
    so each sigmoid is a smoothed step) and each hyperplane u_k . x + c_k = 0 passing through a
    source sample, so every ridge bends the map where the data is; w_k > 0 with jumps
    w_k ``|u_k|`` ~ 3 sqrt(source total variance / K).  The Hessian
    A + sum_k w_k sigmoid'(.) u_k u_k^T >= A > 0: phi is strictly convex, so by Brenier's
    theorem T is the (unique) optimal map from the source to T#source.  With the defaults the
    best affine map leaves ~7-14% of the target variance unexplained (L2-UVP); `nonlinearity`
    (scales the w_k; 0 gives the affine map x -> A x + b) and `sharpness` raise it.
    Target samples are T(fresh source samples).  ``jacobian(x)`` gives DT = Hess phi.
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
    """Transport problem with a known optimal map for the elastic cost
    ``c(x, y) = h(x - y),  h(z) = 1/2 |z|^2 + lam |z|_1``  (monge's cost='elastic', lam=lam).

    Construction (Cuturi, Klein & Ablin, ICML 2023; Uscidda & Cuturi, ICML 2023): for c = h(x - y)
    with h strictly convex and f c-concave, T(x) = x - grad h^*(grad f(x)) is an optimal map.
    Here grad h^* = S_lam, soft thresholding, so::

        T(x) = x - S_lam(grad f(x)),   S_lam(w) = sign(w) max(|w| - lam, 0),

    and the displacement x - T(x) is sparse: zero in every coordinate k where ``|d_k f(x)|`` <= lam.
    f is a random smooth function of the first `n_active` coordinates (all by default)::

        f(x) = 1/2 x^T Q x + b . x + sum_k w_k softplus(u_k . x + c_k),

    Q symmetric indefinite (random rotation, eigenvalues U(-1, 1) before scaling), half of the
    ridges convex (w_k > 0, gentle) and half concave (w_k < 0, steep: smoothed steps in grad f,
    which make T clearly nonlinear).

    Validity condition (ensured and checked here): Hess f(x) <= kappa I for every x, kappa < 1.
    Since 0 < sigmoid' <= 1/4,  Hess f(x) <= H := Q + 1/4 sum_{w_k > 0} w_k u_k u_k^T  in the
    Loewner order (concave ridges only lower the Hessian); when lambda_max(H) > kappa, Q and the
    positive w_k are scaled down so that lambda_max(H) = kappa.  The
    constructor recomputes lambda_max(H), asserts it is <= kappa and stores it as
    ``hessian_bound``; ``hessian_potential(x)`` gives Hess f for spot checks.
    Why it suffices: x -> c(x, y) - f(x) = [1/2 ``|x|^2`` - f(x) - x.y + 1/2 ``|y|^2``] + lam ``|x - y|_1``
    is then (1 - kappa)-strongly convex for every y, and its optimality condition at x is
    grad f(x) in dh(x - y), i.e. y = T(x).  So with g = f^c, g(y) = inf_x c(x, y) - f(x):
    f(x) + g(y) <= c(x, y) for all x, y with equality on y = T(x).  This dual certificate makes
    the graph of T c-cyclically monotone: T is optimal from the source to T#source (the unique
    optimal map, the source having a density and h being strictly convex), T is injective, and on
    any finite sample x_1..x_n the pairing x_i -> T(x_i) solves the assignment problem for c.
    No lower bound on Hess f is needed, and the L1 term never breaks the condition (it only
    sparsifies the displacement); with lam = 0, T is the Brenier map grad(1/2 ``|x|^2`` - f).

    Source: equal-weight mixture of `n_components` Gaussians (as in ConvexPotentialMap).
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
