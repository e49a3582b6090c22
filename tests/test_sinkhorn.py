"""Entropic OT: monge.sinkhorn against POT, closed forms and its own invariants."""
import warnings

import numpy as np
import ot
import pytest
from scipy.linalg import sqrtm
from scipy.spatial.distance import cdist

import monge
from conftest import canonical


def problem(rng, n=60, m=45, d=2, weights=True):
    x = rng.random((n, d))
    y = rng.random((m, d)) + 0.25
    if weights:
        a = rng.random(n) + 0.1
        b = rng.random(m) + 0.1
        return x, y, a / a.sum(), b / b.sum()
    return x, y, np.full(n, 1 / n), np.full(m, 1 / m)


def pot_log(a, b, C, eps):
    """POT's log-domain Sinkhorn, run to machine precision; potentials in monge's convention."""
    P, log = ot.sinkhorn(a, b, C, eps, method="sinkhorn_log", stopThr=1e-15, numItermax=200000,
                         log=True)
    f = eps * (log["log_u"] - np.log(a))
    g = eps * (log["log_v"] - np.log(b))
    return P, f, g


@pytest.mark.parametrize("eps", [0.5, 0.05, 0.01])
@pytest.mark.parametrize("online", [True, False])
def test_matches_pot_sinkhorn_log(rng, eps, online):
    x, y, a, b = problem(rng)
    C = ot.dist(x, y)  # squared Euclidean, as monge's sqeuclidean
    Pp, fp, gp = pot_log(a, b, C, eps)
    r = monge.sinkhorn(x, y, a, b, eps=eps, tol=1e-13, online=online)
    assert r.converged and r.error <= 1e-13
    f, g = canonical(r.f, r.g, a, b)
    fp, gp = canonical(fp, gp, a, b)
    np.testing.assert_allclose(f, fp, atol=1e-8, rtol=0)
    np.testing.assert_allclose(g, gp, atol=1e-8, rtol=0)
    np.testing.assert_allclose(r.plan(), Pp, atol=1e-10, rtol=1e-8)
    assert abs(r.cost - np.sum(Pp * C)) <= 1e-8 * abs(r.cost)
    # OT_eps = <a,f> + <b,g> = <P,C> + eps KL(P | a x b)
    kl = np.sum(Pp * np.log(Pp / np.outer(a, b))) - Pp.sum() + 1.0
    assert abs(r.value - (np.sum(Pp * C) + eps * kl)) <= 1e-8
    assert abs(r.value - (a @ r.f + b @ r.g)) <= 1e-10


def test_dense_cost_matrix_input_matches_points(rng):
    x, y, a, b = problem(rng)
    C = cdist(x, y, "sqeuclidean")
    r1 = monge.sinkhorn(a=a, b=b, C=C, eps=0.02, tol=1e-12)
    r2 = monge.sinkhorn(x, y, a, b, eps=0.02, tol=1e-12)
    np.testing.assert_allclose(r1.f, r2.f, atol=1e-10)
    np.testing.assert_allclose(r1.plan(), r2.plan(), atol=1e-12)


@pytest.mark.parametrize("tau_a,tau_b", [(0.3, 0.3), (0.1, 2.0), (np.inf, 0.5)])
def test_unbalanced_matches_pot(rng, tau_a, tau_b):
    x, y, a, b = problem(rng)
    a = 1.5 * a  # different masses
    C = ot.dist(x, y)
    eps = 0.05
    Pp = ot.sinkhorn_unbalanced(a, b, C, eps, (tau_a, tau_b), method="sinkhorn", reg_type="kl",
                                stopThr=1e-15, numItermax=100000)
    r = monge.sinkhorn(x, y, a, b, eps=eps, tau_a=tau_a, tau_b=tau_b, tol=1e-12)
    assert r.converged
    np.testing.assert_allclose(r.plan(), Pp, atol=1e-11, rtol=1e-7)
    # the dual value equals the primal objective at the optimum
    P = Pp
    kl = lambda p, q: np.sum(p * np.log(p / q)) - p.sum() + q.sum()  # noqa: E731
    primal = np.sum(P * C) + eps * kl(P, np.outer(a, b))
    if np.isfinite(tau_a):
        primal += tau_a * kl(P.sum(1), a)
    if np.isfinite(tau_b):
        primal += tau_b * kl(P.sum(0), b)
    assert abs(r.value - primal) <= 1e-8 * max(1, abs(primal))
    assert abs(r.mass - P.sum()) <= 1e-10


@pytest.mark.parametrize("cost,metric,p", [
    ("sqeuclidean", "sqeuclidean", 2.0), ("euclidean", "euclidean", 2.0),
    ("pnorm", "cityblock", 1.0), ("pnorm", "minkowski", 3.0), ("cosine", "cosine", 2.0)])
def test_costs(rng, cost, metric, p):
    x = rng.standard_normal((33, 4))
    y = rng.standard_normal((21, 4))
    ref = cdist(x, y, metric, p=p) if metric == "minkowski" else cdist(x, y, metric)
    if metric == "minkowski":
        ref = ref ** p
    np.testing.assert_allclose(monge.cost_matrix(x, y, cost=cost, p=p), ref, atol=1e-12)
    # the online solver on these costs equals the dense solver on the matrix
    r1 = monge.sinkhorn(x, y, eps=0.1, cost=cost, p=p, tol=1e-12, online=True)
    r2 = monge.sinkhorn(C=ref, eps=0.1, tol=1e-12)
    np.testing.assert_allclose(r1.f, r2.f, atol=1e-9)
    np.testing.assert_allclose(r1.value, r2.value, atol=1e-11)


def gaussian_entropic_ot(ma, A, mb, B, eps):
    """Closed-form OT_eps between N(ma, A) and N(mb, B) for |x-y|^2 and eps KL(P | mu x nu)
    (Janati, Muzellec, Peyre, Cuturi 2020, with sigma^2 = eps / 2)."""
    d = len(ma)
    s2 = eps / 2
    As = np.real(sqrtm(A))
    D = np.real(sqrtm(4 * As @ B @ As + s2**2 * np.eye(d)))
    return (np.sum((ma - mb) ** 2) + np.trace(A) + np.trace(B) - np.trace(D)
            + d * s2 * (1 - np.log(2 * s2)) + s2 * np.log(np.linalg.det(D + s2 * np.eye(d))))


@pytest.mark.parametrize("eps", [1.0, 0.1, 0.02])
def test_gaussian_closed_form_1d(eps):
    def grid(mu, s, n=1500):
        t = np.linspace(mu - 9 * s, mu + 9 * s, n)
        w = np.exp(-0.5 * ((t - mu) / s) ** 2)
        return t[:, None], w / w.sum()

    x, a = grid(0.0, 1.0)
    y, b = grid(1.5, 0.6)
    r = monge.sinkhorn(x, y, a, b, eps=eps, tol=1e-12)
    ref = gaussian_entropic_ot(np.zeros(1), np.eye(1), np.array([1.5]), np.array([[0.36]]), eps)
    assert abs(r.value - ref) <= 1e-9 * abs(ref)


@pytest.mark.parametrize("eps", [0.5, 0.1])
def test_gaussian_closed_form_2d(eps):
    def grid(mean, cov, k=40, w=7.0):
        s = np.sqrt(np.diag(cov))
        g0 = np.linspace(mean[0] - w * s[0], mean[0] + w * s[0], k)
        g1 = np.linspace(mean[1] - w * s[1], mean[1] + w * s[1], k)
        pts = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
        z = pts - mean
        dens = np.exp(-0.5 * np.einsum("ni,ij,nj->n", z, np.linalg.inv(cov), z))
        return pts, dens / dens.sum()

    A = np.array([[1.0, 0.4], [0.4, 0.6]])
    B = np.array([[0.5, -0.2], [-0.2, 0.9]])
    ma, mb = np.array([0.0, 0.0]), np.array([1.0, -0.5])
    x, a = grid(ma, A)
    y, b = grid(mb, B)
    # the discretisation's own covariances are what the formula must be fed
    mxa, mxb = a @ x, b @ y
    Ad = (x - mxa).T @ ((x - mxa) * a[:, None])
    Bd = (y - mxb).T @ ((y - mxb) * b[:, None])
    r = monge.sinkhorn(x, y, a, b, eps=eps, tol=1e-11)
    ref = gaussian_entropic_ot(mxa, Ad, mxb, Bd, eps)
    assert abs(r.value - ref) <= 1e-5 * abs(ref)


def test_float32_near_float64(rng):
    x, y, a, b = problem(rng, 300, 250, 3)
    r64 = monge.sinkhorn(x, y, a, b, eps=0.05, tol=1e-9)
    r32 = monge.sinkhorn(x.astype(np.float32), y.astype(np.float32), a, b, eps=0.05, tol=1e-5)
    assert r32.converged and r32.error <= 1e-5
    assert r32.plan().dtype == np.float32
    assert abs(r32.value - r64.value) <= 1e-5 * abs(r64.value)
    f32, _ = canonical(r32.f, r32.g, a, b)
    f64, _ = canonical(r64.f, r64.g, a, b)
    np.testing.assert_allclose(f32, f64, atol=5e-5)


@pytest.mark.parametrize("online", [True, False])
def test_batch_equals_loop(rng, online):
    B = 5
    xs = rng.random((B, 40, 3))
    ys = rng.random((B, 30, 3)) + 0.2
    a = rng.random((B, 40)) + 0.1
    a /= a.sum(1, keepdims=True)
    rb = monge.sinkhorn(xs, ys, a, None, eps=0.03, online=online, tol=1e-10)
    assert rb.f.shape == (B, 40) and rb.converged.all()
    for k in range(B):
        r = monge.sinkhorn(xs[k], ys[k], a[k], None, eps=0.03, online=online, tol=1e-10)
        np.testing.assert_array_equal(rb.f[k], r.f)
        np.testing.assert_array_equal(rb.g[k], r.g)
        assert rb.value[k] == r.value and rb.n_iter[k] == r.n_iter
        np.testing.assert_array_equal(rb.plan(k), r.plan())
    Cs = np.stack([cdist(xs[k], ys[k], "sqeuclidean") for k in range(B)])
    rc = monge.sinkhorn(C=Cs, a=a, eps=0.03, tol=1e-10)
    np.testing.assert_allclose(rc.value, rb.value, atol=1e-12)


def test_threads_do_not_change_results(rng):
    x, y, a, b = problem(rng, 700, 650, 2)
    old = monge.get_num_threads()
    try:
        out = []
        for t in (1, 2):
            monge.set_num_threads(t)
            r = monge.sinkhorn(x, y, a, b, eps=0.01, tol=1e-9)
            rd = monge.sinkhorn(C=cdist(x, y, "sqeuclidean"), a=a, b=b, eps=0.01, tol=1e-9)
            out.append((r.f, r.g, r.value, rd.f, rd.g, r.apply_transpose(np.arange(700.0))))
        for u, v in zip(*out):
            np.testing.assert_array_equal(u, v)
    finally:
        monge.set_num_threads(old)


def test_small_eps_is_stable(rng):
    """eps = 1e-4 x max cost: no overflow or NaN, converged, exact marginals."""
    x, y, a, b = problem(rng, 200, 180, 2)
    C = cdist(x, y, "sqeuclidean")
    eps = 1e-4 * C.max()
    r = monge.sinkhorn(x, y, a, b, eps=eps, tol=1e-6, max_iter=100000)
    assert r.converged and np.isfinite(r.f).all() and np.isfinite(r.g).all()
    P = r.plan()
    assert np.isfinite(P).all()
    err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
    assert err <= 1.01e-6
    # close to exact OT at this eps
    exact = ot.emd2(a, b, C, numItermax=10**7)
    assert r.cost >= exact - 1e-9 and r.cost - exact <= 1e-3 * exact
    # float32 at eps = 1e-4 x max cost: each exponent (h_j - C_ij)/eps carries ~|C| 6e-8 / eps ~ 6e-4
    # of rounding, so ~1e-3 is the marginal accuracy float32 can reach here; what is tested is that
    # it stays finite and converges to that, not its precision (float64 above is checked to 1e-6)
    r32 = monge.sinkhorn(x.astype(np.float32), y.astype(np.float32), a, b, eps=eps, tol=1e-3,
                         max_iter=100000)
    assert np.isfinite(r32.f).all() and r32.converged


@pytest.mark.parametrize("eps_scaling", [True, False])
@pytest.mark.parametrize("overrelax", ["auto", 1.0, 1.5])
def test_acceleration_options_reach_the_same_solution(rng, eps_scaling, overrelax):
    x, y, a, b = problem(rng, 150, 120, 2)
    ref = monge.sinkhorn(x, y, a, b, eps=0.005, tol=1e-12, eps_scaling=False, overrelax=1.0,
                         max_iter=100000)
    r = monge.sinkhorn(x, y, a, b, eps=0.005, tol=1e-12, eps_scaling=eps_scaling,
                       overrelax=overrelax, max_iter=100000)
    assert r.converged
    f, g = canonical(r.f, r.g, a, b)
    fr, gr = canonical(ref.f, ref.g, a, b)
    np.testing.assert_allclose(f, fr, atol=1e-8)
    np.testing.assert_allclose(r.value, ref.value, rtol=1e-10)


def test_overrelaxation_reduces_iterations(rng):
    x, y, a, b = problem(rng, 400, 400, 2)
    plain = monge.sinkhorn(x, y, a, b, eps=0.005, overrelax=1.0, eps_scaling=False, max_iter=50000)
    auto = monge.sinkhorn(x, y, a, b, eps=0.005, eps_scaling=False)
    assert auto.converged and plain.converged
    assert auto.n_iter * 3 < plain.n_iter


def test_warm_start(rng):
    x, y, a, b = problem(rng)
    r = monge.sinkhorn(x, y, a, b, eps=0.01, tol=1e-10)
    r2 = monge.sinkhorn(x, y, a, b, eps=0.01, tol=1e-10, init=(r.f, r.g))
    assert r2.n_iter <= 1 and r2.converged
    np.testing.assert_allclose(r2.f, r.f, atol=1e-12)


def test_apply_and_marginals_without_the_plan(rng):
    x, y, a, b = problem(rng)
    r = monge.sinkhorn(x, y, a, b, eps=0.05, tol=1e-12)
    P = r.plan()
    v = rng.standard_normal(45)
    V = rng.standard_normal((45, 3))
    u = rng.standard_normal(60)
    np.testing.assert_allclose(r.apply(v), P @ v, atol=1e-14)
    np.testing.assert_allclose(r.apply(V), P @ V, atol=1e-14)
    np.testing.assert_allclose(r.apply_transpose(u), P.T @ u, atol=1e-14)
    ra, rb = r.marginals()
    assert np.abs(ra - a).sum() + np.abs(rb - b).sum() <= 1e-12
    rd = monge.sinkhorn(C=cdist(x, y, "sqeuclidean"), a=a, b=b, eps=0.05, tol=1e-12)
    np.testing.assert_allclose(rd.apply_transpose(u), P.T @ u, atol=1e-13)
    np.testing.assert_allclose(rd.apply_transpose(np.stack([u, 2 * u], 1)),
                               P.T @ np.stack([u, 2 * u], 1), atol=1e-13)


def test_zero_weights_and_duplicates(rng):
    x, y, a, b = problem(rng)
    a[[0, 5]] = 0
    a /= a.sum()
    y[3] = y[4]  # duplicate points
    r = monge.sinkhorn(x, y, a, b, eps=0.02, tol=1e-11)
    P = r.plan()
    assert r.converged and np.all(P[[0, 5]] == 0)
    assert np.abs(P.sum(0) - b).sum() <= 1e-10


def test_nonconvergence_is_reported(rng):
    x, y, a, b = problem(rng)
    with pytest.warns(monge.ConvergenceWarning, match="did not converge"):
        r = monge.sinkhorn(x, y, a, b, eps=0.001, max_iter=3, eps_scaling=False)
    assert not r.converged and r.n_iter == 3 and r.error > 1e-6


def test_callback_sees_every_iteration_and_can_stop(rng):
    x, y, a, b = problem(rng)
    seen = []
    r = monge.sinkhorn(x, y, a, b, eps=0.001, callback=lambda it, err: seen.append(it) or it >= 7)
    assert seen == list(range(1, 8)) and not r.converged
    with pytest.raises(ZeroDivisionError):
        monge.sinkhorn(x, y, a, b, eps=0.001, callback=lambda it, err: 1 / 0)


def test_noncontiguous_and_fortran_inputs(rng):
    x, y, a, b = problem(rng, 50, 40, 3)
    ref = monge.sinkhorn(x, y, a, b, eps=0.05, kernel=False)  # path for path: no cache
    xf = np.asfortranarray(x)
    big = np.zeros((80, 6))
    big[::2, ::2] = y
    ys = big[::2, ::2]
    assert not ys.flags.c_contiguous and not xf.flags.c_contiguous
    r = monge.sinkhorn(xf, ys, a[::1], b, eps=0.05, kernel=False)
    np.testing.assert_array_equal(r.f, ref.f)
    C = np.asfortranarray(cdist(x, y, "sqeuclidean"))
    r2 = monge.sinkhorn(C=C, a=a, b=b, eps=0.05, kernel=False)  # same path: same iterates
    np.testing.assert_allclose(r2.f, ref.f, atol=1e-12)


def test_integer_inputs_are_promoted():
    x = np.array([[0, 0], [1, 0], [0, 1]])
    y = np.array([[1, 1], [2, 0]])
    r = monge.sinkhorn(x, y, eps=0.5)
    assert r.f.dtype == np.float64 and r.converged


def test_no_warning_when_converged(rng):
    x, y, a, b = problem(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monge.sinkhorn(x, y, a, b, eps=0.05)


@pytest.mark.parametrize("tau", [None, 0.5])
def test_kernel_cache_matches_log_domain_and_pot(rng, tau):
    """The float kernel cache reaches the log domain's fixed point: tol holds in double."""
    x, y, a, b = problem(rng, 400, 300)
    C = ot.dist(x, y)
    eps = 0.01
    off = monge.sinkhorn(C=C, a=a, b=b, eps=eps, tau=tau, tol=1e-10, kernel=False)
    on = monge.sinkhorn(C=C, a=a, b=b, eps=eps, tau=tau, tol=1e-10)
    pts = monge.sinkhorn(x, y, a, b, eps=eps, tau=tau, tol=1e-10, kernel=True)
    assert off.kernel_iter == 0 and on.kernel_iter > 0 and pts.kernel_iter > 0
    for r in (on, pts):
        assert r.converged
        P = r.plan()  # recomputed in double from the potentials
        if tau is None:
            err = np.abs(P.sum(1) - a).sum() + np.abs(P.sum(0) - b).sum()
            assert err <= 1e-10
        f, g = canonical(r.f, r.g, a, b) if tau is None else (r.f, r.g)
        f0, g0 = canonical(off.f, off.g, a, b) if tau is None else (off.f, off.g)
        np.testing.assert_allclose(f, f0, atol=1e-8, rtol=0)
        np.testing.assert_allclose(g, g0, atol=1e-8, rtol=0)
        assert abs(r.value - off.value) <= 1e-9
    if tau is None:  # and POT's (kernel) Sinkhorn, run to machine precision
        Pp = ot.sinkhorn(a, b, C, eps, stopThr=1e-14, numItermax=100000)
        np.testing.assert_allclose(on.plan(), Pp, atol=1e-10, rtol=1e-7)


def test_kernel_cache_memory_rule_and_argument(rng):
    x = rng.random((1500, 2))
    y = rng.random((1500, 2))
    r = monge.sinkhorn(x, y, eps=0.5)  # online, n*m > 2**21: O(n + m) memory, no cache
    assert r.converged and r.kernel_iter == 0
    r = monge.sinkhorn(x[:500], y[:500], eps=0.5)  # small online problem: cached
    assert r.converged and r.kernel_iter > 0
    with pytest.raises(TypeError, match="kernel: expected 'auto', True or False"):
        monge.sinkhorn(x, y, eps=0.5, kernel="yes")


def test_overrelaxation_does_not_cycle_at_small_eps():
    """eps = 3e-4 x the max cost, no annealing: the automatic over-relaxation used to raise omega
    back after each blow-up and cycle for ever (errors ~1 repeating with a period of 9000
    iterations on some of these instances); an omega that blew up is now capped until the error
    has fallen 100x."""
    for seed in range(6):
        g = np.random.default_rng(seed)
        x, y = g.random((70, 3)), g.random((53, 3)) + 0.3
        a, b = g.random(70) + 0.5, g.random(53) + 0.5
        C = cdist(x, y, "sqeuclidean")
        r = monge.sinkhorn(C=C, a=a / a.sum(), b=b / b.sum(), eps=1e-3, tol=1e-10,
                           eps_scaling=False, max_iter=10000, kernel=False)
        assert r.converged, (seed, r.n_iter, r.error)


def test_reported_errors_are_finite_when_the_first_ratio_underflows():
    """At the first half-step exp(-C/eps) can underflow to 0 while the update is large: the error
    after the update was 0 * inf = NaN and the callback saw it."""
    x = np.random.default_rng(6).random((10, 2))
    errs = []
    monge.sinkhorn(x, x + 1.0, eps=1e-3, max_iter=50, callback=lambda it, e: errs.append(e) and False)
    assert errs and np.isfinite(errs).all()


def _blob(n, seed=0):
    """benchmarks/sinkhorn.py's case 2 at a small size: uniform square -> Gaussian blob."""
    g = np.random.default_rng(seed)
    return g.random((n, 2)), 0.5 + 0.15 * g.standard_normal((n, 2))


@pytest.mark.parametrize("tau", [None, 0.5])
def test_anderson_same_potentials_fewer_iterations(tau):
    """Anderson acceleration (the default) against the adaptive over-relaxation alone: the same
    potentials, in about half the iterations (measured: 31 vs 63 balanced, 38 vs 92 with tau)."""
    x, y = _blob(500)
    kw = dict(eps=0.01, tol=1e-9, kernel=False, tau=tau)
    r0 = monge.sinkhorn(x, y, anderson=0, **kw)
    r1 = monge.sinkhorn(x, y, **kw)
    assert r0.converged and r1.converged and r1.error <= 1e-9
    assert r0.anderson_iter == 0 and r1.anderson_iter > 0
    assert r1.n_iter <= 0.75 * r0.n_iter, (r1.n_iter, r0.n_iter)
    np.testing.assert_allclose(r1.f, r0.f, atol=1e-8)
    np.testing.assert_allclose(r1.g, r0.g, atol=1e-8)
    # a fixed omega turns it off
    assert monge.sinkhorn(x, y, overrelax=1.3, **kw).anderson_iter == 0


def test_anderson_matches_pot_on_the_kernel_cache():
    x, y = _blob(400, 1)
    C = cdist(x, y, "sqeuclidean")
    a = np.full(400, 1 / 400)
    r = monge.sinkhorn(C=C, eps=0.01, tol=1e-10, kernel=True)
    assert r.anderson_iter > 0 and r.kernel_iter > 0
    P = ot.sinkhorn(a, a, C, 0.01, method="sinkhorn_log", stopThr=1e-13, numItermax=100000)
    np.testing.assert_allclose(r.plan(), P, atol=1e-8)


def test_anderson_argument_checks():
    x, y = _blob(20)
    with pytest.raises(TypeError, match="anderson"):
        monge.sinkhorn(x, y, eps=0.1, anderson=True)
    with pytest.raises((TypeError, ValueError), match="anderson"):
        monge.sinkhorn(x, y, eps=0.1, anderson=2.5)
    with pytest.raises(ValueError, match="anderson"):
        monge.sinkhorn(x, y, eps=0.1, anderson=-1)
    with pytest.raises(ValueError, match="anderson: memory at most 32"):
        monge.sinkhorn(x, y, eps=0.1, anderson=33)
    with pytest.raises(ValueError, match="anderson: .*fixed overrelax"):
        monge.sinkhorn(x, y, eps=0.1, anderson=4, overrelax=1.5)
    # the losses take it too, and agree with it off
    v1 = monge.sinkhorn_divergence(x, y, eps=0.1, tol=1e-10).value
    v0 = monge.sinkhorn_divergence(x, y, eps=0.1, tol=1e-10, anderson=0).value
    assert abs(v1 - v0) < 1e-9
    g1 = monge.monge_gap(x, y, tol=1e-10).value
    g0 = monge.monge_gap(x, y, tol=1e-10, anderson=0).value
    assert abs(g1 - g0) < 1e-9


def test_max_iter_during_eps_scaling_returns_the_stage_reached():
    """max_iter that runs out before the target eps (annealing on, eps tiny) used to overflow the
    plan at the target eps (FloatingPointError); it now returns the state of the stage reached,
    with that stage's eps, a ConvergenceWarning that says so, and a plan whose marginal error is
    the one reported."""
    rng = np.random.default_rng(3)
    x, y = rng.random((200, 2)), rng.random((150, 2))
    with pytest.warns(monge.ConvergenceWarning, match="ran out during eps-scaling, at eps = "):
        r = monge.sinkhorn(x, y, eps=1e-6, max_iter=50)
    assert not r.converged and r.n_iter == 50 and r.eps > 1e-6
    assert np.isfinite(r.value) and np.isfinite(r.cost)
    P = r.plan()
    err = np.abs(P.sum(1) - 1 / 200).sum() + np.abs(P.sum(0) - 1 / 150).sum()
    assert err == pytest.approx(r.error, rel=1e-3, abs=1e-9)
    C = ((x[:, None] - y[None]) ** 2).sum(-1)
    assert (P * C).sum() == pytest.approx(r.cost, rel=1e-9)
    # the same solve given its iterations ends at the target eps
    full = monge.sinkhorn(x, y, eps=1e-6)
    assert full.converged and full.eps == 1e-6
    # a batch reports the eps reached per problem
    with pytest.warns(monge.ConvergenceWarning, match="eps-scaling"):
        rb = monge.sinkhorn(np.stack([x, x]), np.stack([y, 0.5 * y]), eps=1e-6, max_iter=60)
    assert np.shape(rb.eps) == (2,) and np.all(rb.eps > 1e-6)
    assert rb.plan(index=1).sum() == pytest.approx(1.0, abs=1e-3)


def test_callback_stop_during_eps_scaling_reports_the_stage_reached():
    """A callback that stops an annealed run returns that stage's eps (its plan sums to 1, no
    overflow), the iterations done; in a batch, problems never started keep the target eps."""
    rng = np.random.default_rng(4)
    x, y = rng.random((30, 2)), rng.random((30, 2))
    r = monge.sinkhorn(x, y, eps=1e-3, eps_scaling=True, callback=lambda it, err: it >= 3)
    assert r.eps > 1e-3 and r.n_iter >= 3 and not r.converged
    assert r.plan().sum() == pytest.approx(1.0, abs=1e-3)
    X, Y = rng.random((3, 20, 2)), rng.random((3, 20, 2))
    rb = monge.sinkhorn(X, Y, eps=1e-3, eps_scaling=True, callback=lambda it, err: it >= 3,
                        nthreads=1)
    assert rb.eps[0] > 1e-3 and np.all(rb.eps[1:] == 1e-3)
    for k in range(3):
        assert np.isfinite(rb.plan(k)).all()


def test_transform_is_the_entropic_map_out_of_sample():
    from monge.maps import EntropicMap
    rng = np.random.default_rng(40)
    x = rng.normal(size=(300, 2))
    y = x @ np.array([[1.5, 0.3], [0.0, 0.7]]) + [3.0, 1.0]
    r = monge.sinkhorn(x, y, eps=0.3, tol=1e-9)
    assert r.converged
    new = rng.normal(size=(40, 2))
    em = EntropicMap(eps=0.3, tol=1e-9).fit(x, y)
    np.testing.assert_allclose(r.transform(new), em.transform(new), atol=1e-10)
    # at the source points: the barycentric projection of the plan
    P = r.plan()
    np.testing.assert_allclose(r.transform(x), (P @ y) / P.sum(1, keepdims=True), atol=1e-10)
    # the Jacobian against central differences
    T, J = r.transform(new[:4], jacobian=True)
    h = 1e-6
    fd = np.stack([(r.transform(new[:4] + h * e) - r.transform(new[:4] - h * e)) / (2 * h)
                   for e in np.eye(2)], -1)
    np.testing.assert_allclose(J, fd, atol=1e-6)


def test_transform_any_cost_and_weights_against_brute_force():
    rng = np.random.default_rng(41)
    x, y = rng.random((60, 3)), rng.random((50, 3)) + 0.5
    b = rng.random(50) + 0.2
    b /= b.sum()
    r = monge.sinkhorn(x, y, b=b, eps=0.05, cost="euclidean", tol=1e-9)
    new = rng.random((7, 3))
    C = np.linalg.norm(new[:, None] - y[None], axis=-1)
    L = np.log(b)[None] + (r.g[None] - C) / 0.05
    W = np.exp(L - L.max(1, keepdims=True))
    W /= W.sum(1, keepdims=True)
    np.testing.assert_allclose(r.transform(new), W @ y, atol=1e-12)
    with pytest.raises(ValueError, match="jacobian: available for the sqeuclidean cost"):
        r.transform(new, jacobian=True)
    with pytest.raises(ValueError, match="X: expected points of dimension 3"):
        r.transform(new[:, :2])
    rc = monge.sinkhorn(C=monge.cost_matrix(x, y), eps=0.05)
    with pytest.raises(ValueError, match="transform: needs point clouds"):
        rc.transform(new)
    ru = monge.sinkhorn(x, y, eps=0.05, tau=1.0)
    with pytest.raises(ValueError, match="transform: the barycentric projection is for balanced"):
        ru.transform(new)


def test_automatic_annealing_probes_on_the_kernel_cache():
    """A stall at the target eps while the float kernel cache runs the iterations: ten Gaussian
    clusters with different fractions of x and y, eps = 1e-4 x the squared diameter.  The probe of
    eps_scaling='auto' used to look only at the log-domain iterations, so this ran to max_iter on
    the cache (marginal error ~1e-3); now it restarts annealed and converges, to the same plan as
    an explicitly annealed solve."""
    rng = np.random.default_rng([0, 1000, 1000, 2, True])
    centres = rng.random((10, 2))
    x, y = (centres[rng.integers(0, 10, 1000)] + 0.05 * rng.normal(size=(1000, 2))
            for _ in range(2))
    eps = 1e-4 * float(np.sum((np.maximum(x.max(0), y.max(0)) - np.minimum(x.min(0), y.min(0)))
                              ** 2))
    x, y = x.astype(np.float32), y.astype(np.float32)
    r = monge.sinkhorn(x, y, eps=eps, max_iter=3000)
    assert r.converged and r.kernel_iter > 0
    a = monge.sinkhorn(x, y, eps=eps, eps_scaling=True, max_iter=3000)
    assert a.converged
    assert abs(r.value - a.value) <= 1e-3 * abs(a.value)
