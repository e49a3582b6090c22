"""Exact OT: the network simplex against POT's ot.emd2 and scipy's linear_sum_assignment, with an
optimality certificate (feasible plan, feasible duals, complementary slackness); 1-D against the
sorted closed form and POT; sliced Wasserstein against POT and finite differences."""
import warnings

import numpy as np
import ot
import pytest
from scipy.optimize import linear_sum_assignment

import monge
from monge import ConvergenceWarning


def certify(res, C, a, b):
    """Max violations of the optimality conditions, relative to max |C|."""
    n, m = C.shape
    a = np.full(n, 1 / n) if a is None else a
    b = np.full(m, 1 / m) if b is None else b
    P = res.toarray()
    scale = max(np.abs(C).max(), 1e-300)
    slack = C[res.rows, res.cols] - res.f[res.rows] - res.g[res.cols]
    return dict(
        row=np.abs(P.sum(1) - a).max(), col=np.abs(P.sum(0) - b).max(), neg=-min(P.min(), 0),
        dual=max((res.f[:, None] + res.g[None, :] - C).max(), 0) / scale,
        slack=np.abs(slack).max(initial=0) / scale,
        gap=abs(res.cost - res.dual) / scale, cost=abs(res.cost - (P * C).sum()) / scale)


def assert_optimal(res, C, a=None, b=None, tol=1e-10):
    c = certify(res, C, a, b)
    assert c["row"] <= 1e-12 and c["col"] <= 1e-12 and c["neg"] == 0, c
    assert c["dual"] <= tol and c["slack"] <= tol and c["gap"] <= tol and c["cost"] <= 1e-12, c
    assert res.nnz <= C.shape[0] + C.shape[1] - 1
    assert res.converged


def pot_cost(C, a=None, b=None):
    n, m = C.shape
    a = np.full(n, 1 / n) if a is None else a
    b = np.full(m, 1 / m) if b is None else b
    return ot.emd2(a, b, C, numItermax=10**9)


def rand_weights(rng, n):
    w = rng.random(n) + 0.05
    return w / w.sum()


@pytest.mark.parametrize("n,m,seed", [(1, 1, 0), (1, 9, 1), (7, 1, 2), (20, 20, 3), (50, 31, 4),
                                      (120, 200, 5), (300, 300, 6)])
def test_matches_pot_random_dense(n, m, seed):
    rng = np.random.default_rng(seed)
    C = rng.random((n, m)) * 5 - 1
    a, b = rand_weights(rng, n), rand_weights(rng, m)
    res = monge.emd(a, b, C)
    ref = pot_cost(C, a, b)
    assert abs(res.cost - ref) <= 1e-9 * abs(ref)
    assert_optimal(res, C, a, b)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean", "pnorm", "cosine", "elastic"])
def test_point_clouds_match_dense(cost):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(90, 3)), rng.normal(size=(70, 3)) + 0.3
    a, b = rand_weights(rng, 90), rand_weights(rng, 70)
    C = monge.cost_matrix(x, y, cost=cost, p=1.5, lam=0.7)
    online = monge.emd(a, b, x=x, y=y, cost=cost, p=1.5, lam=0.7)
    dense = monge.emd(a, b, C)
    assert abs(online.cost - dense.cost) <= 1e-9 * abs(dense.cost)
    assert abs(online.cost - pot_cost(C, a, b)) <= 1e-9 * abs(dense.cost)
    assert_optimal(online, C, a, b, tol=1e-9)


def test_float32_points_and_integer_costs():
    rng = np.random.default_rng(8)
    x, y = rng.random((60, 2)).astype(np.float32), rng.random((50, 2)).astype(np.float32)
    r32 = monge.emd(x=x, y=y)
    r64 = monge.emd(x=x.astype(np.float64), y=y.astype(np.float64))
    assert r32.cost == pytest.approx(r64.cost, rel=1e-12)
    Ci = rng.integers(0, 1000, size=(40, 40))
    res = monge.emd(None, None, Ci)
    assert res.cost == pytest.approx(pot_cost(Ci.astype(float)), rel=1e-12)
    assert_optimal(res, Ci.astype(float))


@pytest.mark.parametrize("n,seed", [(10, 0), (64, 1), (150, 2)])
def test_assignment_against_scipy(n, seed):
    rng = np.random.default_rng(seed)
    C = rng.random((n, n))
    r, c = linear_sum_assignment(C)
    res = monge.emd(None, None, C)
    assert res.cost == pytest.approx(C[r, c].sum() / n, rel=1e-12)
    assert_optimal(res, C)
    # an optimal assignment is a vertex: a permutation matrix / n
    P = res.toarray() * n
    assert np.allclose(np.sort(P, axis=1)[:, -1], 1.0) and res.nnz >= n


def test_degenerate_inputs():
    rng = np.random.default_rng(9)
    # ties: integer costs with few values, uniform weights (highly degenerate)
    C = rng.integers(0, 3, size=(80, 80)).astype(float)
    res = monge.emd(None, None, C)
    assert res.cost == pytest.approx(pot_cost(C), rel=1e-12, abs=1e-15)
    assert_optimal(res, C)
    # constant costs
    res = monge.emd(None, None, np.full((30, 20), 2.5))
    assert res.cost == pytest.approx(2.5, rel=1e-15)
    # duplicate points: y is a permutation of x -> cost exactly 0
    x = rng.integers(0, 4, size=(50, 2)).astype(float)
    y = x[rng.permutation(50)]
    assert monge.emd(x=x, y=y).cost == 0.0
    # all points identical
    z = np.ones((10, 3))
    assert monge.emd(x=z, y=z[:7]).cost == 0.0


def test_zero_weights_get_no_mass_and_feasible_duals():
    rng = np.random.default_rng(10)
    C = rng.random((40, 30))
    a, b = rand_weights(rng, 40), rand_weights(rng, 30)
    a[[0, 5, 39]] = 0
    b[[2, 29]] = 0
    a, b = a / a.sum(), b / b.sum()
    res = monge.emd(a, b, C)
    assert res.cost == pytest.approx(pot_cost(C, a, b), rel=1e-9)
    assert not np.isin(res.rows, [0, 5, 39]).any() and not np.isin(res.cols, [2, 29]).any()
    assert_optimal(res, C, a, b)


def test_mass_rounding_renormalised_and_mismatch_rejected():
    rng = np.random.default_rng(11)
    C = rng.random((20, 25))
    a, b = rand_weights(rng, 20), rand_weights(rng, 25)
    res = monge.emd(a, b * (1 + 1e-11), C)
    assert res.cost == pytest.approx(pot_cost(C, a, b), rel=1e-9)
    with pytest.raises(ValueError, match="a, b: total masses differ"):
        monge.emd(a, b * 1.01, C)
    # unnormalised but equal masses are fine: the cost scales with the mass
    assert monge.emd(3 * a, 3 * b, C).cost == pytest.approx(3 * res.cost, rel=1e-12)


def test_very_large_and_tiny_costs():
    rng = np.random.default_rng(12)
    C = rng.random((30, 40))
    base = monge.emd(None, None, C).cost
    for s in (1e280, 1e-280):
        r = monge.emd(None, None, C * s)
        assert r.cost / s == pytest.approx(base, rel=1e-12)
        assert np.isfinite(r.f).all() and np.isfinite(r.g).all()


def test_max_iter_warns_and_flags():
    rng = np.random.default_rng(13)
    C = rng.random((60, 60))
    with pytest.warns(ConvergenceWarning, match="max_iter=5"):
        r = monge.emd(None, None, C, max_iter=5)
    assert not r.converged and r.n_iter == 5
    P = r.toarray()
    assert np.abs(P.sum(1) - 1 / 60).max() < 1e-12  # still a feasible plan
    assert r.cost > monge.emd(None, None, C).cost


def test_batch_equals_loop_and_threads():
    rng = np.random.default_rng(14)
    x, y = rng.random((6, 80, 2)), rng.random((6, 70, 2))
    a = rng.random((6, 80)) + 0.1
    a /= a.sum(1, keepdims=True)
    monge.set_num_threads(2)
    batch = monge.emd(a, None, x=x, y=y)
    assert len(batch) == 6 and batch.f.shape == (6, 80)
    for k in range(6):
        single = monge.emd(a[k], None, x=x[k], y=y[k])
        assert batch[k].cost == single.cost
        assert np.array_equal(batch[k].rows, single.rows)
        assert np.array_equal(batch[k].values, single.values)
    monge.set_num_threads(1)
    again = monge.emd(a, None, x=x, y=y)
    monge.set_num_threads(2)
    assert np.array_equal(again.cost, batch.cost)
    C = np.stack([monge.cost_matrix(x[k], y[k]) for k in range(6)])
    dense = monge.emd(a, None, C)
    assert np.allclose(dense.cost, batch.cost, rtol=1e-12)


def test_plan_accessors():
    rng = np.random.default_rng(15)
    C = rng.random((12, 9))
    r = monge.emd(None, None, C)
    S = r.to_scipy().toarray()
    assert np.array_equal(S, r.toarray())
    assert r.shape == (12, 9) and r.dual == pytest.approx(r.cost, rel=1e-12)
    order = r.rows * 9 + r.cols
    assert (np.diff(order) > 0).all()


def test_bad_input_errors():
    C = np.ones((3, 4))
    with pytest.raises(ValueError, match="C: contains NaN"):
        monge.emd(None, None, np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="a: expected shape"):
        monge.emd(np.ones(2) / 2, None, C)
    with pytest.raises(ValueError, match="b: weights must be non-negative"):
        monge.emd(None, np.array([0.5, 0.7, -0.2, 0.0]), C)
    with pytest.raises(ValueError, match="C: give either C"):
        monge.emd(None, None, C, x=np.ones((3, 2)), y=np.ones((4, 2)))
    with pytest.raises(ValueError, match="x, y: give"):
        monge.emd(None, None)
    with pytest.raises(ValueError, match="max_iter"):
        monge.emd(None, None, C, max_iter=0)
    with pytest.raises(ValueError, match="init"):
        monge.emd(None, None, C, init="projection")
    with pytest.raises(ValueError, match="init: unknown"):
        monge.emd(None, None, C, init="greedy")
    with pytest.raises(ValueError, match="C: empty"):
        monge.emd(None, None, np.ones((0, 3)))
    with pytest.raises(TypeError, match="callback"):
        monge.emd(None, None, C, callback=3)
    with pytest.raises(ValueError, match="cost"):
        monge.emd(x=np.ones((3, 2)), y=np.ones((4, 2)), cost="manhattan")
    with pytest.raises(ValueError, match="x: the cosine cost"):
        monge.emd(x=np.zeros((3, 2)), y=np.ones((4, 2)), cost="cosine")


def test_callback_can_stop():
    rng = np.random.default_rng(16)
    x, y = rng.random((600, 2)), rng.random((600, 2))
    calls = []
    r = monge.emd(x=x, y=y, init="index", callback=lambda it, rc: calls.append(it) or True)
    assert calls == [4096] and not r.converged  # stopped by the user: flagged, no warning


# ---------------------------------------------------------------- 1-D


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_1d_equal_sizes_sorted_closed_form(p):
    rng = np.random.default_rng(20)
    x, y = rng.normal(size=300), rng.normal(size=300) * 2 + 1
    ref = np.mean(np.abs(np.sort(x) - np.sort(y)) ** p)
    r = monge.emd_1d(x, y, p=p)
    assert r.cost == pytest.approx(ref, rel=1e-13)
    assert monge.wasserstein_1d(x, y, p=p) == pytest.approx(ref ** (1 / p), rel=1e-13)


@pytest.mark.parametrize("p", [1.0, 2.0, 2.5])
def test_1d_weighted_against_pot_and_simplex(p):
    rng = np.random.default_rng(21)
    x, y = rng.random(70) * 3, rng.random(45)
    a, b = rand_weights(rng, 70), rand_weights(rng, 45)
    r = monge.emd_1d(x, y, a, b, p=p)
    assert r.cost == pytest.approx(ot.wasserstein_1d(x, y, a, b, p=p), rel=1e-10)
    C = np.abs(x[:, None] - y[None, :]) ** p
    assert r.cost == pytest.approx(monge.emd(a, b, C).cost, rel=1e-10)
    P = r.toarray()
    assert np.abs(P.sum(1) - a).max() < 1e-14 and np.abs(P.sum(0) - b).max() < 1e-14
    assert r.nnz <= 70 + 45 - 1
    # POT's plan agrees (monotone coupling, unique for p > 1)
    if p > 1:
        Pp = ot.emd_1d(x, y, a, b, metric="minkowski", p=p)
        assert np.abs(P - Pp).max() < 1e-12


def test_1d_inputs():
    assert monge.wasserstein_1d([0.0, 1.0], [[2.0], [3.0]], p=2) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="x: 1-D samples"):
        monge.emd_1d(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="p: must be"):
        monge.emd_1d([0.0], [1.0], p=0.5)
    with pytest.raises(ValueError, match="y: contains NaN"):
        monge.wasserstein_1d([0.0], [np.nan])


# ---------------------------------------------------------------- sliced


def test_sliced_matches_pot_with_same_directions():
    rng = np.random.default_rng(30)
    x, y = rng.normal(size=(200, 5)), rng.normal(size=(150, 5)) + 0.5
    a, b = rand_weights(rng, 200), rand_weights(rng, 150)
    theta = monge.random_projections(5, 40, seed=3)
    for p in (1.0, 2.0):
        mine = monge.sliced_wasserstein(x, y, a, b, p=p, projections=theta)
        ref = ot.sliced_wasserstein_distance(x, y, a, b, p=p, projections=theta.T)
        assert mine == pytest.approx(ref, rel=1e-10)
    assert monge.sliced_wasserstein(x, x, seed=0) == 0.0
    # seeded: reproducible, and different seeds differ
    assert monge.sliced_wasserstein(x, y, seed=1) == monge.sliced_wasserstein(x, y, seed=1)
    assert monge.sliced_wasserstein(x, y, seed=1) != monge.sliced_wasserstein(x, y, seed=2)


@pytest.mark.parametrize("p", [1.5, 2.0])
def test_sliced_gradient_finite_differences(p):
    rng = np.random.default_rng(31)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(30, 3))
    theta = monge.random_projections(3, 12, seed=4)
    res = monge.sliced_wasserstein(x, y, p=p, projections=theta, return_grad=True)
    h = 1e-6
    fd = np.zeros_like(x)
    for i in range(x.shape[0]):
        for k in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, k] += h
            xm[i, k] -= h
            fd[i, k] = (monge.sliced_wasserstein(xp, y, p=p, projections=theta)
                        - monge.sliced_wasserstein(xm, y, p=p, projections=theta)) / (2 * h)
    assert np.abs(fd - res.grad).max() < 1e-6
    assert res.projected.shape == (12,)


def test_sliced_thread_independent_and_errors():
    rng = np.random.default_rng(32)
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(200, 4))
    r2 = monge.sliced_wasserstein(x, y, n_projections=200, seed=0, return_grad=True, nthreads=2)
    r1 = monge.sliced_wasserstein(x, y, n_projections=200, seed=0, return_grad=True, nthreads=1)
    assert r1.value == r2.value and np.array_equal(r1.grad, r2.grad)
    with pytest.raises(ValueError, match="projections: expected shape"):
        monge.sliced_wasserstein(x, y, projections=np.ones((3, 2)))
    with pytest.raises(ValueError, match="n_projections"):
        monge.sliced_wasserstein(x, y, n_projections=0)
    with pytest.raises(ValueError, match="x, y: dimensions differ"):
        monge.sliced_wasserstein(x, y[:, :3])


def test_verbose_reports_progress_and_result(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 2)), rng.random((300, 2))
    r = monge.emd(x=x, y=y, verbose=True)
    out = capsys.readouterr().out
    assert out.startswith("emd: ") and f"{int(r.n_iter):,} pivots" in out and "done" in out
    monge.emd(x=x, y=y)
    assert capsys.readouterr().out == ""
