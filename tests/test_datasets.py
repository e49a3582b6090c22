"""Datasets with known optimal maps (monge.maps.datasets) and map metrics (monge.maps.metrics): seeds,
shapes, closed forms, gradient/Jacobian checks by finite differences, optimality of the known
maps on samples (against an exact assignment solver), metrics, bad inputs."""
import copy
import inspect

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import monge
from monge.maps import datasets as ds
from monge.maps import metrics

TOYS = [
    (ds.eight_gaussians, {}),
    (ds.moons, {}),
    (ds.circles, {}),
    (ds.checkerboard, {}),
    (ds.spiral, {}),
    (ds.spiral, {"n_arms": 2}),
]

DIMS = [2, 8, 32, 64]


def problems(d):
    return [ds.GaussianMap(d, seed=1), ds.ConvexPotentialMap(d, seed=2),
            ds.ElasticMap(d, 0.5, seed=3)]


def fd_grad(fun, x, h=1e-5):
    """Central differences of a scalar function of each row of x: (n, d)."""
    g = np.empty_like(x)
    for k in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[k] = h
        g[:, k] = (fun(x + e) - fun(x - e)) / (2 * h)
    return g


def fd_jacobian(fun, x, h=1e-5):
    """J[i, j] = d fun_i / d x_j at a single point x (d,)."""
    d = x.size
    J = np.empty((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        J[:, j] = (fun(x + e) - fun(x - e)) / (2 * h)
    return J


def assignment_gap(x, y, **cost):
    """Cost of pairing x_i -> y_i minus the optimal assignment cost (exact), and whether the
    optimal assignment is the identity."""
    C = monge.cost_matrix(x, y, **cost)
    rows, cols = linear_sum_assignment(C)
    return np.trace(C) - C[rows, cols].sum(), bool((cols == np.arange(len(x))).all()), C


# ---------------------------------------------------------------- seeds, shapes, dtypes

@pytest.mark.parametrize("fn,kw", TOYS)
def test_toy_shapes_seeded(fn, kw):
    a = fn(101, seed=7, **kw)
    assert a.shape == (101, 2) and a.dtype == np.float64 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, fn(101, seed=7, **kw))
    assert not np.array_equal(a, fn(101, seed=8, **kw))
    np.testing.assert_array_equal(a, fn(101, seed=np.random.default_rng(7), **kw))
    assert fn(1, seed=0, **kw).shape == (1, 2)


def test_existing_generators_unchanged():
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(ds.gaussian(5, [0.0, 1.0], np.eye(2), seed=3),
                                  rng.multivariate_normal([0.0, 1.0], np.eye(2), size=5))
    for fn, args in [(ds.gaussian, (10, np.zeros(3), np.eye(3))), (ds.eight_gaussians, (10,)),
                     (ds.moons, (10,)), (ds.uniform_square, (10, 3))]:
        a = fn(*args, seed=4)
        assert a.dtype == np.float64 and a.shape[0] == 10
        np.testing.assert_array_equal(a, fn(*args, seed=4))
    assert list(inspect.signature(ds.eight_gaussians).parameters) == ["n", "radius", "std", "seed"]
    assert list(inspect.signature(ds.moons).parameters) == ["n", "noise", "seed"]
    assert list(inspect.signature(ds.uniform_square).parameters) == ["n", "d", "seed"]
    assert list(inspect.signature(ds.gaussian).parameters) == ["n", "mean", "cov", "seed"]


def test_toy_geometry():
    c = ds.circles(400, factor=0.3, noise=0.0, radius=2.0)
    r = np.linalg.norm(c, axis=1)
    assert np.allclose(np.sort(np.unique(np.round(r, 9))), [0.6, 2.0])
    b = ds.checkerboard(2000, n_tiles=4, size=4.0)
    assert np.abs(b).max() <= 2.0
    i, j = np.floor(b[:, 0] + 2).astype(int), np.floor(b[:, 1] + 2).astype(int)
    assert ((i + j) % 2 == 0).all()
    s = ds.spiral(500, noise=0.0, radius=3.0)
    assert np.linalg.norm(s, axis=1).max() <= 3.0 + 1e-12


@pytest.mark.parametrize("d", DIMS)
def test_problem_samplers(d):
    for P in problems(d):
        x = P.sample_source(50, seed=5)
        assert x.shape == (50, d) and x.dtype == np.float64
        np.testing.assert_array_equal(x, P.sample_source(50, seed=5))
        assert not np.array_equal(x, P.sample_source(50, seed=6))
        y = P.sample_target(50, seed=5)
        assert y.shape == (50, d) and y.dtype == np.float64
        np.testing.assert_allclose(y, P.map(x))  # target = map of the same seed's source
        np.testing.assert_array_equal(P(x), P.map(x))
        assert P.map(x[0]).shape == (d,)
        np.testing.assert_allclose(P.map(x[0]), P.map(x)[0])
        assert P.potential(x).shape == (50,)
        # the same seed gives the same problem
        Q = type(P)(d, seed={"GaussianMap": 1, "ConvexPotentialMap": 2, "ElasticMap": 3}[
            type(P).__name__])
        np.testing.assert_array_equal(Q.map(x), P.map(x))
    assert not np.allclose(ds.ConvexPotentialMap(d, seed=0).map(x),
                           ds.ConvexPotentialMap(d, seed=1).map(x))


# ---------------------------------------------------------------- Gaussian closed form

def test_gaussian_map_closed_form():
    P = ds.gaussian_pair(3, seed=11)
    assert isinstance(P, ds.GaussianMap)
    np.testing.assert_array_equal(P.A, ds.GaussianMap(3, seed=11).A)
    A, S0, S1 = P.A, P.cov_source, P.cov_target
    np.testing.assert_array_equal(A, A.T)
    assert np.linalg.eigvalsh(A).min() > 0
    np.testing.assert_allclose(A @ S0 @ A, S1, atol=1e-10)  # T#N(m0, S0) = N(m1, S1) exactly
    # pushforward moments from samples, within sampling error
    n = 20000
    x = P.sample_source(n, seed=0)
    tx = P.map(x)
    sd = np.sqrt(np.diag(S1))
    assert np.all(np.abs(tx.mean(0) - P.mean_target) < 5 * sd / np.sqrt(n))
    cov = np.cov(tx.T)
    tol = 5 * np.sqrt((np.outer(np.diag(S1), np.diag(S1)) + S1**2) / n)
    assert np.all(np.abs(cov - S1) < tol)
    # Brenier potential, and E|x - T(x)|^2 = W2^2 (closed form)
    np.testing.assert_allclose(fd_grad(P.potential, x[:20]), tx[:20], rtol=1e-6, atol=1e-6)
    disp = np.mean(np.sum((x - tx) ** 2, axis=1))
    assert abs(disp - P.w2_squared) < 0.05 * P.w2_squared


# ---------------------------------------------------------------- convex-potential benchmark

@pytest.mark.parametrize("d", DIMS)
def test_convex_potential_gradient_and_jacobian(d):
    P = ds.ConvexPotentialMap(d, seed=d)
    x = P.sample_source(6, seed=1)
    np.testing.assert_allclose(fd_grad(P.potential, x), P.map(x), rtol=1e-6, atol=1e-5)
    for xi in x[:3]:
        J = fd_jacobian(P.map, xi)
        np.testing.assert_allclose(J, J.T, atol=1e-6 * np.abs(J).max())
        np.testing.assert_allclose(J, P.jacobian(xi), atol=1e-6 * np.abs(J).max())
        assert np.linalg.eigvalsh((J + J.T) / 2).min() > 0.2  # >= lambda_min(A) >= 1/4


@pytest.mark.parametrize("d", DIMS)
def test_convex_potential_map_is_optimal_on_samples(d):
    P = ds.ConvexPotentialMap(d, seed=d + 1)
    x = P.sample_source(64, seed=2)
    y = P.map(x)
    excess, identity, C = assignment_gap(x, y)
    assert excess <= 1e-9 * np.abs(C).max() and identity
    # Brenier: phi(x_i) - phi(x_j) - <T x_j, x_i - x_j> >= 0 for all i, j (supporting hyperplanes)
    phi = P.potential(x)
    gap = phi[:, None] - phi[None, :] - (x @ y.T - np.sum(x * y, 1)[None, :])
    assert gap.min() >= -1e-9 * np.abs(phi).max()
    # the test has teeth: a rotated map is not optimal
    R = np.linalg.qr(np.random.default_rng(d).standard_normal((d, d)))[0]
    excess, identity, _ = assignment_gap(x, y @ R)
    assert excess > 0 and not identity


@pytest.mark.parametrize("d", [8, 32])
def test_convex_potential_map_is_nonlinear(d):
    P = ds.ConvexPotentialMap(d, seed=0)
    x = P.sample_source(3000, seed=0)
    y = P.map(x)
    X = np.c_[x, np.ones(len(x))]
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    assert metrics.l2_uvp(X @ coef, y) > 4.0  # the best affine map misses > 4% of the variance


# ---------------------------------------------------------------- elastic map

@pytest.mark.parametrize("d,n_active", [(2, None), (8, None), (8, 3), (32, None), (64, 16)])
def test_elastic_potential_validity(d, n_active):
    P = ds.ElasticMap(d, 0.5, seed=d, n_active=n_active)
    assert P.hessian_bound <= P.kappa < 1
    x = P.sample_source(6, seed=1)
    np.testing.assert_allclose(fd_grad(P.potential, x), P.grad_potential(x), rtol=1e-6, atol=1e-5)
    H = P.hessian_potential(x)
    np.testing.assert_allclose(fd_jacobian(P.grad_potential, x[0]), H[0],
                               atol=1e-6 * np.abs(H[0]).max())
    # Hess f <= kappa I everywhere: at source points and far from the data
    far = 4 * np.random.default_rng(d).standard_normal((200, d))
    for pts in (P.sample_source(200, seed=3), far):
        assert np.linalg.eigvalsh(P.hessian_potential(pts)).max() <= P.kappa + 1e-9
    # T(x) = x - soft_threshold(grad f(x), lam): sparse displacement, none off the active block
    xs = P.sample_source(500, seed=4)
    disp = xs - P.map(xs)
    np.testing.assert_allclose(disp, ds.soft_threshold(P.grad_potential(xs), P.lam))
    assert (disp == 0).mean() > 0.1
    if n_active is not None:
        assert (disp[:, n_active:] == 0).all()


@pytest.mark.parametrize("d,lam", [(2, 0.5), (8, 0.0), (8, 0.5), (32, 1.0), (64, 0.5)])
def test_elastic_map_is_optimal_on_samples(d, lam):
    P = ds.ElasticMap(d, lam, seed=10 + d)
    x = P.sample_source(64, seed=5)
    y = P.map(x)
    excess, identity, C = assignment_gap(x, y, cost="elastic", lam=lam)
    assert excess <= 1e-9 * np.abs(C).max() and identity
    # dual certificate: x_j minimises x -> c(x, y_j) - f(x) over the sample, for every j
    f = P.potential(x)
    margin = (C - f[:, None]) - (np.diag(C) - f)[None, :]
    assert margin.min() >= -1e-9 * np.abs(C).max()


def test_elastic_optimality_check_has_teeth():
    P = ds.ElasticMap(8, 0.5, seed=0)
    bad = copy.deepcopy(P)
    bad.Q = 4 * P.Q + 2 * np.eye(8)  # Hess f up to ~5: the validity condition fails
    x = P.sample_source(64, seed=5)
    excess, identity, _ = assignment_gap(x, bad.map(x), cost="elastic", lam=0.5)
    assert excess > 0 and not identity


# ---------------------------------------------------------------- metrics

def test_l2_uvp():
    P = ds.ConvexPotentialMap(8, seed=0)
    x = P.sample_source(500, seed=1)
    y = P.map(x)
    assert metrics.l2_uvp(y, y) == 0.0
    const = np.broadcast_to(y.mean(0), y.shape)
    assert metrics.l2_uvp(const, y) == pytest.approx(100.0, rel=1e-12)
    # with the population-level variance (fresh samples) the constant map is still ~100
    var = P.sample_target(20000, seed=2).var(0).sum()
    assert metrics.l2_uvp(const, y, target_var=var) == pytest.approx(100.0, rel=0.1)
    assert metrics.l2_uvp(y + 1.0, y, target_var=8.0) == pytest.approx(100.0)


# one thread: these problems are tiny, and threads that spin at every iteration's barrier are
# slow on an oversubscribed machine (values do not depend on the number of threads)
ONE = {"nthreads": 1}


def test_wrappers_and_evaluate_map():
    P = ds.ConvexPotentialMap(2, seed=0)
    x = P.sample_source(64, seed=1)
    y = P.sample_target(64, seed=2)
    tx = P.map(x)
    s = metrics.sinkhorn_divergence(tx, y, eps=1.0, **ONE)
    assert isinstance(s, float) and s == monge.sinkhorn_divergence(tx, y, eps=1.0, **ONE).value
    assert abs(metrics.sinkhorn_divergence(y, y, eps=1.0, **ONE)) < 1e-6 * s
    assert metrics.sinkhorn_divergence(tx, y, **ONE) == pytest.approx(  # default eps
        monge.sinkhorn_divergence(tx, y, eps=0.05 * y.var(0).sum(), **ONE).value)
    g = metrics.monge_gap(x, tx, eps=1.0, **ONE)
    assert isinstance(g, float) and g == monge.monge_gap(x, tx, eps=1.0, **ONE).value
    R = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert metrics.monge_gap(x, tx @ R, eps=1.0, **ONE) > g  # a rotated map is further from optimal

    res = metrics.evaluate_map(P, x, y, true_map=P, gap_eps=1.0, **ONE)
    assert set(res) == {"l2_uvp", "sinkhorn_divergence", "monge_gap"}
    assert res["l2_uvp"] == 0.0 and res["monge_gap"] == pytest.approx(g)
    assert all(isinstance(v, float) and np.isfinite(v) for v in res.values())
    bad = metrics.evaluate_map(lambda z: z @ R, x, y, true_map=P, gap_eps=1.0, **ONE)
    assert bad["l2_uvp"] > 10 and bad["sinkhorn_divergence"] > res["sinkhorn_divergence"]
    # precomputed images, no y_test (divergence against the true images), nothing to compare to
    res2 = metrics.evaluate_map(tx, x, true_map=tx, eps=0.5, **ONE)
    assert res2["l2_uvp"] == 0.0 and abs(res2["sinkhorn_divergence"]) < 1e-6 * s
    assert set(metrics.evaluate_map(tx, x, **ONE)) == {"monge_gap"}
    # the elastic problem with its own cost
    E = ds.ElasticMap(2, 0.5, seed=0)
    xe = E.sample_source(48, seed=1)
    res3 = metrics.evaluate_map(E, xe, true_map=E, cost=E.cost, lam=E.lam, gap_eps=0.5, **ONE)
    assert res3["l2_uvp"] == 0.0
    assert res3["monge_gap"] == pytest.approx(
        monge.monge_gap(xe, E(xe), cost="elastic", lam=0.5, eps=0.5, **ONE).value)


# ---------------------------------------------------------------- bad inputs

BAD = [
    (lambda: ds.circles(0), ValueError, "n"),
    (lambda: ds.circles(10.5), TypeError, "n"),
    (lambda: ds.circles(10, factor=1.5), ValueError, "factor"),
    (lambda: ds.circles(10, noise=-1), ValueError, "noise"),
    (lambda: ds.checkerboard(10, n_tiles=1), ValueError, "n_tiles"),
    (lambda: ds.checkerboard(10, size=0), ValueError, "size"),
    (lambda: ds.spiral(10, turns=-1), ValueError, "turns"),
    (lambda: ds.spiral(10, n_arms=0), ValueError, "n_arms"),
    (lambda: ds.moons(10, seed="a"), TypeError, "seed"),
    (lambda: ds.moons(10, seed=1.5), TypeError, "seed"),
    (lambda: ds.moons(10, seed=-1), ValueError, "seed"),
    (lambda: ds.eight_gaussians(10, std=-0.1), ValueError, "std"),
    (lambda: ds.gaussian(10, [0, 0], np.eye(3)), ValueError, "cov"),
    (lambda: ds.GaussianMap(0), ValueError, "d"),
    (lambda: ds.GaussianMap(2.0), TypeError, "d"),
    (lambda: ds.GaussianMap(2, seed=None), TypeError, "seed"),
    (lambda: ds.ConvexPotentialMap(3, n_components=0), ValueError, "n_components"),
    (lambda: ds.ConvexPotentialMap(3, nonlinearity=-1), ValueError, "nonlinearity"),
    (lambda: ds.ConvexPotentialMap(3).map(np.zeros((4, 2))), ValueError, "x"),
    (lambda: ds.ConvexPotentialMap(3).map(np.full((4, 3), np.nan)), ValueError, "x"),
    (lambda: ds.ConvexPotentialMap(3).sample_source(0), ValueError, "n"),
    (lambda: ds.ConvexPotentialMap(3).sample_target(5, seed="x"), TypeError, "seed"),
    (lambda: ds.ElasticMap(3, lam=-0.1), ValueError, "lam"),
    (lambda: ds.ElasticMap(3, lam="a"), TypeError, "lam"),
    (lambda: ds.ElasticMap(3, kappa=1.0), ValueError, "kappa"),
    (lambda: ds.ElasticMap(3, n_active=4), ValueError, "n_active"),
    (lambda: ds.ElasticMap(3).potential(np.zeros(2)), ValueError, "x"),
    (lambda: metrics.l2_uvp(np.zeros((3, 2)), np.zeros((4, 2)), target_var=1.0), ValueError,
     "pred, true"),
    (lambda: metrics.l2_uvp(np.zeros((3, 2)), np.zeros((3, 2))), ValueError, "true"),
    (lambda: metrics.l2_uvp(np.zeros((3, 2)), np.ones((3, 2)), target_var=0), ValueError,
     "target_var"),
    (lambda: metrics.l2_uvp(np.zeros(3), np.zeros(3)), ValueError, "pred"),
    (lambda: metrics.l2_uvp(np.array([["a"]]), np.zeros((1, 1))), TypeError, "pred"),
    (lambda: metrics.sinkhorn_divergence(np.zeros((3, 2)), np.zeros((3, 3)), eps=1.0),
     ValueError, "pred, target"),
    (lambda: metrics.sinkhorn_divergence(np.zeros((3, 2)), np.ones((3, 2)), eps=-1.0),
     ValueError, "eps"),
    (lambda: metrics.monge_gap(np.zeros((3, 2)), np.zeros((4, 2))), ValueError, "x, tx"),
    (lambda: metrics.evaluate_map(lambda z: z[:, :1], np.ones((5, 2))), ValueError, "transform"),
    (lambda: metrics.evaluate_map(None, np.ones((5, 2))), ValueError, "transform"),
    (lambda: metrics.evaluate_map(np.ones((5, 2)), np.ones((5, 2)), true_map=np.ones((4, 2))),
     ValueError, "true_map"),
    (lambda: metrics.evaluate_map(np.ones((5, 2)), np.ones((5, 2)), y_test=np.ones((5, 3))),
     ValueError, "y_test"),
    (lambda: metrics.evaluate_map(np.ones((5, 2)), np.ones(5)), ValueError, "x_test"),
]


@pytest.mark.parametrize("call,exc,name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_inputs_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
