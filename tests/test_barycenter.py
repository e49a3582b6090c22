"""Fixed-support entropic barycenters: against POT's iterative Bregman projections (plain and
debiased), the closed form of Gaussian barycenters (which the debiased one meets and the plain one
misses by its blur), plans rebuilt from the potentials, dense against online costs, float32, and
bad input."""
import warnings

import numpy as np
import ot
import pytest

import monge

GRID = np.linspace(-3, 3, 120)[:, None]


def gauss(mu, s, x=GRID):
    v = np.exp(-(x[:, 0] - mu) ** 2 / (2 * s * s))
    return v / v.sum()


@pytest.fixture(scope="module")
def hists():
    return np.stack([gauss(-1.0, 0.3), gauss(1.2, 0.6), gauss(0.2, 0.4)])


@pytest.mark.parametrize("debiased", [False, True])
def test_matches_pot(hists, debiased):
    M = (GRID - GRID.T) ** 2
    w = np.array([0.2, 0.5, 0.3])
    eps = 0.05
    # the debiasing equation c (K c) = a is a deconvolution: both libraries approach its solution
    # sublinearly and by different paths, agreeing to ~1e-5 at any affordable iteration count
    # (the closed-form test below checks the debiased fixed point itself)
    tol, atol = (1e-6, 5e-5) if debiased else (1e-11, 1e-9)
    r = monge.barycenter(hists, M, weights=w, eps=eps, debiased=debiased, tol=tol, max_iter=50000)
    assert r.converged and r.error <= tol
    pot = ot.bregman.barycenter_debiased if debiased else ot.bregman.barycenter
    ref = pot(hists.T, M, eps, w, method="sinkhorn_log", numItermax=2000, stopThr=1e-15)
    np.testing.assert_allclose(r.a, ref, atol=atol)
    assert r.a.sum() == pytest.approx(1.0, abs=1e-10)
    # the same on the fly from the points, and in float32 (tolerance 1e-4 there)
    r2 = monge.barycenter(hists, y=GRID, weights=w, eps=eps, debiased=debiased, tol=tol,
                          max_iter=50000)
    np.testing.assert_allclose(r2.a, r.a, atol=1e-12)
    r3 = monge.barycenter(hists, y=GRID.astype(np.float32), weights=w, eps=eps,
                          debiased=debiased, tol=1e-5)
    assert r3.converged
    np.testing.assert_allclose(r3.a, r.a, atol=1e-4 if debiased else 2e-5)


def test_plans_from_the_potentials(hists):
    x = np.linspace(-2, 2, 40)[:, None]              # a coarser support for the barycenter
    r = monge.barycenter(hists, x=x, y=GRID, eps=0.03, tol=1e-10)
    C = (x - GRID.T) ** 2
    for k in range(3):
        P = np.exp((r.f[k][:, None] + r.g[k][None, :] - C) / 0.03)
        np.testing.assert_allclose(P.sum(1), r.a, atol=1e-13)            # first marginal: a
        assert np.abs(P.sum(0) - hists[k]).sum() <= 1e-10                # second: b_k
    assert np.all(r.logc == 0)


def test_gaussian_closed_form_debiased_meets_plain_misses(hists):
    # 1-D Gaussians: the W2 barycenter is the Gaussian with the weighted mean and std
    w = np.array([0.4, 0.6, 0.0])
    mus = hists @ GRID[:, 0]
    sds = np.sqrt(((GRID[:, 0][None] - mus[:, None]) ** 2 * hists).sum(1))
    mu, sd = w @ mus, w @ sds
    out = {}
    for deb in (False, True):
        r = monge.barycenter(hists, y=GRID, weights=w, eps=1e-2, debiased=deb, tol=1e-9,
                             max_iter=50000)
        m = r.a @ GRID[:, 0]
        out[deb] = (m, np.sqrt(r.a @ (GRID[:, 0] - m) ** 2))
    assert abs(out[True][0] - mu) < 1e-4 and abs(out[True][1] - sd) < 2e-4
    assert out[False][1] - sd > 2e-3                 # entropic blur: too wide


def test_debiased_barycenter_of_identical_inputs_is_the_input():
    b = gauss(0.3, 0.5)
    r = monge.barycenter(np.stack([b, b]), y=GRID, eps=0.05, debiased=True, tol=1e-10,
                         max_iter=50000)
    assert np.abs(r.a - b).sum() < 1e-8
    plain = monge.barycenter(np.stack([b, b]), y=GRID, eps=0.05)
    assert np.abs(plain.a - b).sum() > 1e-2


def test_histograms_and_weights_are_normalised(hists):
    r1 = monge.barycenter(hists, y=GRID, weights=[1, 1, 2], eps=0.05)
    r2 = monge.barycenter(3.0 * hists, y=GRID, weights=[0.25, 0.25, 0.5], eps=0.05)
    np.testing.assert_allclose(r1.a, r2.a, atol=1e-12)


def test_convergence_warning_and_callback(hists):
    with pytest.warns(monge.ConvergenceWarning, match="barycenter did not converge"):
        r = monge.barycenter(hists, y=GRID, eps=1e-3, max_iter=3)
    assert not r.converged and r.n_iter == 3 and np.isfinite(r.a).all()
    seen = []
    r = monge.barycenter(hists, y=GRID, eps=1e-3, callback=lambda it, err: seen.append(it) or it >= 5)
    assert not r.converged and seen[-1] == 5


@pytest.mark.parametrize("support", ["dense", "grid"])
def test_anderson_mixing_same_barycenter_fewer_iterations(hists, support):
    """The default mixing (memory 8) of the plain barycenter against the unmixed iterations and
    POT: the same barycenter within the tolerance, in fewer iterations (dense and grid kernels)."""
    w = np.array([0.2, 0.5, 0.3])
    eps = 0.02
    kw = dict(C=(GRID - GRID.T) ** 2) if support == "dense" else dict(grid=[GRID[:, 0]])
    mixed = monge.barycenter(hists, weights=w, eps=eps, tol=1e-10, **kw)
    plain = monge.barycenter(hists, weights=w, eps=eps, tol=1e-10, anderson=0, **kw)
    assert mixed.converged and plain.converged
    assert mixed.n_iter < plain.n_iter / 2, (mixed.n_iter, plain.n_iter)
    ref = ot.bregman.barycenter(hists.T, (GRID - GRID.T) ** 2, eps, w, method="sinkhorn_log",
                                numItermax=2000, stopThr=1e-15)
    np.testing.assert_allclose(mixed.a, ref, atol=1e-9)
    np.testing.assert_allclose(plain.a, ref, atol=1e-9)
    # the debiased barycenter is not mixed by default; asked for, the mixing still ends at a
    # state whose measured error meets tol
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = monge.barycenter(hists, weights=w, eps=0.05, tol=1e-6, debiased=True, anderson=4,
                             max_iter=2000, **kw)
    assert (not d.converged) or d.error <= 1e-6
    assert np.isfinite(d.a).all()


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(B=-np.ones((2, 120))), ValueError, "B: histograms must be non-negative"),
    (dict(B=np.zeros((2, 120))), ValueError, "B: histogram 0 has zero mass"),
    (dict(B=np.ones(120)), ValueError, "B: expected 2 or 3 dimensions"),
    (dict(weights=[1.0]), ValueError, "weights: expected shape"),
    (dict(weights=[1.0, -1.0]), ValueError, "weights: must be non-negative"),
    (dict(eps=0.0), ValueError, "eps: must be a positive"),
    (dict(y=None), ValueError, "y: the inputs' support is required"),
    (dict(y=GRID[:50]), ValueError, "y: expected 120 points"),
    (dict(C=np.ones((120, 120))), ValueError, "C, x, y: give either C"),
    (dict(y=None, C=np.ones((30, 120)), debiased=True), ValueError, "C: the debiased"),
    (dict(y=None, C=np.ones((30, 7))), ValueError, "C: expected 120 columns"),
    (dict(x=np.ones((4, 3))), ValueError, "x, y: dimensions differ"),
    (dict(cost="hamming"), ValueError, "cost"),
    (dict(max_iter=0), ValueError, "max_iter"),
    (dict(debiased="yes"), TypeError, "debiased"),
    (dict(callback=3), TypeError, "callback"),
    (dict(anderson=-1), ValueError, "anderson: must be >= 0"),
    (dict(anderson=33), ValueError, "anderson: at most 32"),
    (dict(anderson=2.5), TypeError, "anderson: expected an integer"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(B=np.ones((2, 120)), y=GRID, eps=0.1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        monge.barycenter(args.pop("B"), **args)


# ---- free support ------------------------------------------------------------------------------

def test_free_support_1d_is_quantile_averaging():
    rng = np.random.default_rng(30)
    Y = [rng.normal(mu, s, (40, 1)) for mu, s in ((0, 1), (5, 0.5), (-3, 2))]
    w = np.array([0.2, 0.5, 0.3])
    r = monge.free_support_barycenter(Y, weights=w, n=40, seed=1)
    want = sum(wk * np.sort(y[:, 0]) for wk, y in zip(w, Y))
    assert r.converged
    np.testing.assert_allclose(np.sort(r.X[:, 0]), want, atol=1e-12)
    assert r.cost == pytest.approx(sum(wk * ((np.sort(y[:, 0]) - want) ** 2).mean()
                                       for wk, y in zip(w, Y)), rel=1e-10)


def test_free_support_translates_and_different_sizes():
    rng = np.random.default_rng(31)
    base = rng.random((30, 2))
    shifts = np.array([[0.0, 0.0], [3.0, 1.0], [-1.0, 2.0]])
    r = monge.free_support_barycenter([base + t for t in shifts], X_init=base)
    np.testing.assert_allclose(r.X, base + shifts.mean(0), atol=1e-12)
    # inputs of different sizes, non-uniform weights: against POT's iteration from the same start
    Y = [rng.random((m, 2)) + k for k, m in enumerate((25, 40, 33))]
    b = [rng.random(len(y)) + 0.1 for y in Y]
    X0 = rng.random((20, 2))
    r = monge.free_support_barycenter(Y, b, X_init=X0, tol=0)
    Xp = ot.lp.free_support_barycenter(Y, [w / w.sum() for w in b], X0, stopThr=0,
                                       numItermax=r.n_iter)
    np.testing.assert_allclose(r.X, Xp, atol=1e-9)


def test_free_support_entropic_and_threads():
    rng = np.random.default_rng(32)
    Y = [rng.random((50, 2)), rng.random((60, 2)) + 1]
    X0 = rng.random((30, 2))
    ex = monge.free_support_barycenter(Y, X_init=X0)
    en = monge.free_support_barycenter(Y, X_init=X0, method="entropic", eps=1e-4, max_iter=300)
    assert ex.converged and en.converged
    assert abs(en.cost - ex.cost) < 0.02 * ex.cost      # near the exact one at small eps
    one = monge.free_support_barycenter(Y, X_init=X0, nthreads=1)
    np.testing.assert_array_equal(one.X, ex.X)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(Y=np.ones((3, 2))), TypeError, "Y: expected a sequence"),
    (dict(Y=[np.ones((3, 2)), np.ones((3, 3))]), ValueError, r"Y\[1\]: dimension 3 differs"),
    (dict(b=[np.ones(3)]), ValueError, "b: expected 2 weight vectors"),
    (dict(b=[np.ones(3), -np.ones(4)]), ValueError, r"b\[1\]: must be non-negative"),
    (dict(weights=[1.0]), ValueError, r"weights: expected shape \(2,\)"),
    (dict(X_init=np.ones((2, 3))), ValueError, "X_init: dimension 3 differs"),
    (dict(method="entropic"), ValueError, "eps: required"),
    (dict(method="sinkhorn"), ValueError, "method: unknown value"),
    (dict(n=0), ValueError, "n: must be >= 1"),
])
def test_free_support_bad_input(kwargs, exc, match):
    args = dict(Y=[np.zeros((3, 2)), np.ones((4, 2))])
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        monge.free_support_barycenter(**args)


# ---- regular grids (separable kernel) ----------------------------------------------------------

def test_grid_matches_dense_and_pots_convolutional_log_barycenter():
    t = np.linspace(0, 1, 20)
    X = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    rng = np.random.default_rng(50)
    B = np.stack([np.exp(-((X - rng.uniform(0.2, 0.8, 2)) ** 2).sum(1) / 0.01) + 1e-12
                  for _ in range(4)])
    B /= B.sum(1, keepdims=True)
    w = np.array([0.1, 0.2, 0.3, 0.4])
    C = ((X[:, None] - X[None]) ** 2).sum(-1)
    for deb in (False, True):
        d = monge.barycenter(B, C, weights=w, eps=0.004, debiased=deb, tol=1e-9, max_iter=50000)
        g = monge.barycenter(B, grid=[t, t], weights=w, eps=0.004, debiased=deb, tol=1e-9,
                             max_iter=50000)
        np.testing.assert_allclose(g.a, d.a, atol=1e-12)
    g = monge.barycenter(B.reshape(4, 20, 20), grid=[t, t], weights=w, eps=0.004, tol=1e-10)
    assert g.a.shape == (20, 20)
    A = ot.bregman.convolutional_barycenter2d(B.reshape(4, 20, 20), 0.004, w,
                                              method="sinkhorn_log", stopThr=1e-12,
                                              numItermax=100000)
    np.testing.assert_allclose(g.a, A, atol=1e-8)


def test_grid_3d_and_uneven_axes():
    axes = [np.linspace(0, 1, 6), np.sort(np.random.default_rng(51).random(5)), np.arange(4) / 3]
    X = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    C = ((X[:, None] - X[None]) ** 2).sum(-1)
    rng = np.random.default_rng(52)
    B = rng.random((2, len(X)))
    g = monge.barycenter(B, grid=axes, eps=0.05, tol=1e-10)
    d = monge.barycenter(B, C, eps=0.05, tol=1e-10)
    np.testing.assert_allclose(g.a, d.a, atol=1e-12)
    one = monge.barycenter(B, grid=axes, eps=0.05, tol=1e-10, nthreads=1)
    np.testing.assert_array_equal(one.a, g.a)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(grid=[np.arange(3.0)], y=np.ones((3, 1))), ValueError, "give one support"),
    (dict(grid=[np.arange(4.0), np.arange(2.0)]), ValueError, r"B: expected shape \(K, 8\)"),
    (dict(grid=[np.ones((2, 2))]), ValueError, r"grid\[0\]: expected 1 dimensions"),
    (dict(grid=[np.arange(2.0)] * 9), ValueError, "grid: expected 1 to 8 axes"),
    (dict(grid=3), TypeError, "grid: expected a sequence"),
])
def test_grid_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        monge.barycenter(np.ones((2, 6)), eps=0.1, **kwargs)


# ---- the barycenter loss and its gradients (grad=True) ------------------------------------------

T30 = np.linspace(0, 1, 30)[:, None]
B30 = np.stack([np.exp(-(T30[:, 0] - m) ** 2 / 0.02) for m in (0.3, 0.5, 0.7)])
B30 /= B30.sum(1, keepdims=True)
W3 = np.array([0.2, 0.3, 0.5])


def _solve(**kw):
    """The barycenter of B30 with weights W3 at eps 0.05 and grad=True, keywords overriding."""
    args = dict(B=B30, weights=W3, eps=0.05, tol=1e-12, max_iter=200000, grad=True)
    args.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)  # the debiased solves' floor
        return monge.barycenter(**args)


def _fd(f, h=1e-5):
    return (f(h) - f(-h)) / (2 * h)


def _cost_and_grad(x, y, cost):
    """C (n, m) and d C_ij / d x_i (n, m, d), written out."""
    z = x[:, None, :] - y[None, :, :]
    if cost == "sqeuclidean":
        return (z ** 2).sum(-1), 2 * z
    r = np.sqrt((z ** 2).sum(-1))
    return r, z / np.where(r > 0, r, 1)[..., None]


def test_loss_values_against_pot_plans_and_the_sinkhorn_divergence():
    """values[k]: the entropic objective of plan k (POT's plan between a and b_k gives the same),
    and with debiased=True monge.sinkhorn_divergence(a, b_k), an independent solver path."""
    C = (T30 - T30.T) ** 2
    r = _solve(C=C)
    assert r.converged and r.value == pytest.approx(W3 @ r.values, abs=1e-15)
    for k in range(3):
        P = ot.sinkhorn(r.a, B30[k], C, 0.05, method="sinkhorn_log", stopThr=1e-14,
                        numItermax=100000)
        ref = (P * C).sum() + 0.05 * (P * (np.log(P) - 1)).sum()
        assert r.values[k] == pytest.approx(ref, abs=1e-10)
    # the debiased iteration converges sublinearly: 1e-8 is within reach, 1e-12 is not
    rd = _solve(y=T30, debiased=True, tol=1e-8)
    assert rd.converged
    for k in range(3):
        s = monge.sinkhorn_divergence(T30, T30, rd.a / rd.a.sum(), B30[k], eps=0.05, tol=1e-12)
        assert rd.values[k] == pytest.approx(s.value, abs=1e-9)


@pytest.mark.parametrize("debiased", [False, True])
def test_loss_gradients_match_finite_differences(debiased):
    """d value / d b_k, d weights, d C and d y (x = y), against central differences of the loss;
    the debiased solve stops at 1e-8 (sublinear), hence its looser relative agreement."""
    rng = np.random.default_rng(0)
    kw = dict(debiased=debiased, tol=1e-8 if debiased else 1e-12)
    rel = 1e-5 if debiased else 1e-7
    C = (T30 - T30.T) ** 2
    r = _solve(C=C, **kw)
    assert r.converged
    np.testing.assert_allclose(r.grad_B.mean(1), 0, atol=1e-15)
    z = rng.standard_normal(B30.shape)
    d = B30 * (z - (B30 * z).sum(1, keepdims=True))          # tangent to the simplices
    assert (r.grad_B * d).sum() == pytest.approx(
        _fd(lambda h: _solve(B=B30 + h * d, C=C, **kw).value), rel=rel)
    dl = np.array([1.0, -2.0, 1.0])
    assert r.values @ dl == pytest.approx(
        _fd(lambda h: _solve(weights=W3 + h * dl, C=C, **kw).value), rel=rel)
    # C moved as a move of the support points moves it (in an arbitrary direction the debiased
    # loss is so curved, exp(-C/eps) being nearly singular, that differences need h ~ 1e-7)
    u = rng.standard_normal(30)
    dC = 2 * (T30 - T30.T) * (u[:, None] - u[None, :])
    assert (r.grad_C * dC).sum() == pytest.approx(
        _fd(lambda h: _solve(C=C + h * dC, **kw).value), rel=rel)
    rp = _solve(y=T30, **kw)                   # the points themselves: grad_y holds both parts
    assert rp.grad_x is None and rp.grad_C is None
    assert rp.value == pytest.approx(r.value, abs=1e-12)
    assert (rp.grad_y * u[:, None]).sum() == pytest.approx((r.grad_C * dC).sum(), rel=1e-9)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_point_gradients_on_two_supports(cost):
    rng = np.random.default_rng(1)
    x = np.linspace(0.1, 0.9, 20)[:, None]
    r = _solve(x=x, y=T30, cost=cost)
    dx, dy = rng.standard_normal(x.shape), rng.standard_normal(T30.shape)
    assert (r.grad_x * dx).sum() == pytest.approx(
        _fd(lambda h: _solve(x=x + h * dx, y=T30, cost=cost).value), rel=1e-7)
    assert (r.grad_y * dy).sum() == pytest.approx(
        _fd(lambda h: _solve(x=x, y=T30 + h * dy, cost=cost).value), rel=1e-7)
    C, dCx = _cost_and_grad(x, T30, cost)               # the plans written out
    P = [np.exp((r.f[k][:, None] + r.g[k][None, :] - C) / 0.05) for k in range(3)]
    np.testing.assert_allclose(r.grad_x, sum(W3[k] * (P[k][..., None] * dCx).sum(1)
                                             for k in range(3)), atol=1e-12)
    np.testing.assert_allclose(r.grad_y, sum(W3[k] * (P[k][..., None] * -dCx).sum(0)
                                             for k in range(3)), atol=1e-12)


def test_grid_loss_and_zero_weights():
    """A grid gives the dense support's loss and grad_B; where b_kj = 0 the plain gradient is
    -inf (the entropy's slope) and the debiased one finite, matching a one-sided difference."""
    t = np.linspace(0, 1, 12)
    Bz = np.stack([np.exp(-(t - 0.3) ** 2 / 0.02), np.exp(-(t - 0.7) ** 2 / 0.02)])
    Bz[0, -2:] = 0.0
    Bz /= Bz.sum(1, keepdims=True)
    C = (t[:, None] - t[None, :]) ** 2
    for deb in (False, True):
        kw = dict(B=Bz, weights=[0.4, 0.6], debiased=deb, tol=1e-8 if deb else 1e-12)
        rg, rc = _solve(grid=[t], **kw), _solve(C=C, **kw)
        assert rg.value == pytest.approx(rc.value, abs=1e-10)
        fin = np.isfinite(rc.grad_B)
        np.testing.assert_array_equal(np.isfinite(rg.grad_B), fin)
        np.testing.assert_allclose(rg.grad_B[fin], rc.grad_B[fin], atol=1e-8)
        assert fin.all() if deb else (~fin[0, -2:]).all() and np.isneginf(rc.grad_B[0, -2:]).all()
    e = np.zeros(12)
    e[-1] = 1.0
    d = np.stack([e - Bz[0], np.zeros(12)])                 # mass into the empty last point
    f = lambda h: _solve(B=Bz + h * d, C=C, weights=[0.4, 0.6], debiased=True, tol=1e-12,
                         max_iter=400000).value
    # from the boundary the difference converges like h log h (1.6 % off at h = 1e-6, 0.03 % at
    # h = 1e-8), so a small step and a tight solve
    h = 1e-8
    assert (rc.grad_B * d).sum() == pytest.approx((f(h) - f(0)) / h, rel=1e-3)


def test_grad_bad_input():
    with pytest.raises(TypeError, match="grad"):
        monge.barycenter(B30, y=T30, eps=0.05, grad=1)
    r = monge.barycenter(B30, y=T30, eps=0.05)
    assert r.value is None and r.grad_B is None


@pytest.mark.optional     # torch (the test extra installs it; --core drops it)
def test_torch_barycenter_loss_gradcheck_and_numpy_agreement():
    import torch

    import monge.torch as mt

    t = torch.linspace(0, 1, 12, dtype=torch.float64)[:, None]
    B = torch.stack([torch.exp(-(t[:, 0] - m) ** 2 / 0.02) for m in (0.3, 0.5, 0.7)]) + 0.01
    w = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    kw = dict(eps=0.1, tol=1e-12, max_iter=100000)
    # unnormalised B and weights: the gradients go through the division by their sums
    assert torch.autograd.gradcheck(lambda B, w, y: mt.barycenter_loss(B, w, y=y, **kw),
                                    (B.clone().requires_grad_(), w.clone().requires_grad_(),
                                     t.clone().requires_grad_()), eps=1e-6, atol=1e-7, rtol=1e-6)
    C = ((t - t.T) ** 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda C: mt.barycenter_loss(B, None, C, **kw), (C,),
                                    eps=1e-6, atol=1e-7, rtol=1e-6)
    # debiased: the bridge returns the NumPy result's value and gradients (checked above against
    # differences), through the normalisation (inputs without the floor: the debiased barycenter
    # of floored inputs converges sublinearly)
    B = B - 0.01
    Bt = B.clone().requires_grad_()
    wt = w.clone().requires_grad_()
    loss = mt.barycenter_loss(Bt, wt, y=t, eps=0.1, debiased=True, tol=1e-7, max_iter=100000)
    loss.backward()
    Bn = (B / B.sum(1, keepdim=True)).numpy()
    r = monge.barycenter(Bn, y=t.numpy(), weights=(w / w.sum()).numpy(), eps=0.1, debiased=True,
                         tol=1e-7, max_iter=100000, grad=True)
    assert r.converged and loss.item() == pytest.approx(r.value, abs=1e-14)
    G = r.grad_B - (r.grad_B * Bn).sum(1, keepdims=True)
    np.testing.assert_allclose(Bt.grad.numpy(), G / B.sum(1, keepdim=True).numpy(), atol=1e-14)
    lam = (w / w.sum()).numpy()
    np.testing.assert_allclose(wt.grad.numpy(), (r.values - lam @ r.values) / w.sum().item(),
                               atol=1e-14)
    with pytest.raises(TypeError, match="grad"):
        mt.barycenter_loss(B, y=t, eps=0.1, grad=True)
    # on a grid, B shaped as the grid: the gradient keeps that shape
    g = np.linspace(0, 1, 6)
    Bg = (torch.rand(2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
          + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda Bg: mt.barycenter_loss(Bg, eps=0.05, grid=[g, g],
                                                                  tol=1e-12), (Bg,),
                                    eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_batch_equals_single_problems_and_threads_bitwise(debiased):
    """N problems at once (Wasserstein barycentric coordinates: one set of atoms, many weight
    vectors; and different histograms per problem): each equals its single solve bitwise, with 1
    or 2 threads, from a cost matrix or from points."""
    rng = np.random.default_rng(0)
    N = 7
    W = rng.dirichlet(np.ones(3), size=N)
    B = np.stack([B30 if p % 2 else B30[::-1] for p in range(N)])
    kw = dict(eps=0.05, debiased=debiased, tol=1e-6 if debiased else 1e-11, max_iter=100000)
    C = (T30 - T30.T) ** 2
    r2 = monge.barycenter(B, C, weights=W, nthreads=2, **kw)
    r1 = monge.barycenter(B, C, weights=W, nthreads=1, **kw)
    assert r2.a.shape == (N, 30) and r2.f.shape == (N, 3, 30) and r2.g.shape == (N, 3, 30)
    assert r2.converged.all() and r2.error.shape == (N,) and (r2.n_iter > 0).all()
    for name in ("a", "f", "g", "logc", "error", "n_iter"):
        np.testing.assert_array_equal(getattr(r1, name), getattr(r2, name))
    for p in range(N):
        s = monge.barycenter(B[p], C, weights=W[p], **kw)
        np.testing.assert_array_equal(r2.a[p], s.a)
        np.testing.assert_array_equal(r2.g[p], s.g)
        assert r2.n_iter[p] == s.n_iter
    # one weight row for all, and the points' online path
    rp = monge.barycenter(B, y=T30, weights=W3, **kw)
    for p in (0, 1):
        np.testing.assert_allclose(rp.a[p], monge.barycenter(B[p], C, weights=W3, **kw).a,
                                   atol=1e-12)


def test_batch_warns_per_problem_and_bad_input():
    B = np.stack([B30, B30])
    with pytest.warns(monge.ConvergenceWarning, match="problem 0 of the batch"):
        r = monge.barycenter(B, y=T30, eps=0.01, max_iter=3)
    assert not r.converged.any()
    with pytest.raises(ValueError, match=r"weights: expected shape \(3,\) or \(2, 3\)"):
        monge.barycenter(B, y=T30, eps=0.1, weights=np.ones((3, 3)))
    with pytest.raises(ValueError, match="callback: not available for a batch"):
        monge.barycenter(B, y=T30, eps=0.1, callback=lambda k, e: False)
    with pytest.raises(ValueError, match="grad: one problem at a time"):
        monge.barycenter(B, y=T30, eps=0.1, grad=True)
    Bz = B.copy()
    Bz[1, 2] = 0
    with pytest.raises(ValueError, match=r"B: histogram \(1, 2\) has zero mass"):
        monge.barycenter(Bz, y=T30, eps=0.1)
    with pytest.raises(ValueError, match="weights: must be non-negative"):
        monge.barycenter(B, y=T30, eps=0.1, weights=[[1, 1, 1], [0, 0, 0]])


def test_free_support_entropic_default_tol_is_reachable():
    """With entropic plans the default tol is 1e-6: the Sinkhorn solves leave ~1e-7 of noise in the
    objective's relative change, where the exact default 1e-9 ran out of iterations with a
    warning (three clouds of 100 points)."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [1.5, 2.5]])
    Y = [(centres[rng.integers(0, 3, 100)] + 0.5 * rng.standard_normal((100, 2)))
         @ (np.eye(2) + 0.3 * rng.standard_normal((2, 2))).T + rng.standard_normal(2)
         for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = monge.free_support_barycenter(Y, n=100, seed=0, method="entropic", eps=0.03)
    assert r.converged and r.n_iter < 100
    with pytest.warns(monge.ConvergenceWarning):
        monge.free_support_barycenter(Y, n=100, seed=0, method="entropic", eps=0.03, tol=1e-9,
                                      max_iter=2 * r.n_iter)


@pytest.mark.parametrize("method", ["exact", "entropic"])
def test_free_support_loss_gradients(method):
    """grad=True: the loss at X and its gradients in the inputs' points and weights and in the
    weights of the inputs, against central differences of the loss at the same X, and (exact)
    against POT's plans written out; grad_X vanishes at the fixed point."""
    rng = np.random.default_rng(0)
    Y = [rng.standard_normal((8, 2)), rng.standard_normal((6, 2)) * 0.5 + 2,
         rng.standard_normal((7, 2)) + [0, 3]]
    b = [rng.dirichlet(np.ones(len(y))) for y in Y]
    lam = np.array([0.2, 0.3, 0.5])
    # tol 1e-9 for both: the fixed point, where grad_X vanishes, to the last digits
    kw = dict(method=method, eps=0.5 if method == "entropic" else None, tol=1e-9)
    r = monge.free_support_barycenter(Y, b, lam, n=5, seed=1, grad=True, **kw)
    assert r.converged and r.value == pytest.approx(lam @ r.values, rel=1e-15)
    assert np.abs(r.grad_X).max() < (1e-12 if method == "exact" else 1e-4)

    def loss(Y_=Y, b_=b, lam_=lam):            # at the same X: plans only, X is not moved
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", monge.ConvergenceWarning)
            return monge.free_support_barycenter(Y_, b_, lam_, X_init=r.X, max_iter=1,
                                                 grad=True, **kw).value

    rel = 1e-8 if method == "exact" else 1e-5   # the entropic plans stop at Sinkhorn's tol
    for k in range(3):
        dy = rng.standard_normal(Y[k].shape)
        z = rng.standard_normal(len(b[k]))
        db = b[k] * (z - (b[k] * z).sum())       # tangent to the simplex
        moved = lambda arrs, d, h: [a + h * d if i == k else a for i, a in enumerate(arrs)]
        assert (r.grad_Y[k] * dy).sum() == pytest.approx(
            _fd(lambda h: loss(Y_=moved(Y, dy, h)), 1e-6), rel=rel)
        assert (r.grad_b[k] * db).sum() == pytest.approx(
            _fd(lambda h: loss(b_=moved(b, db, h)), 1e-6), rel=rel, abs=1e-9)
        if method == "exact":
            C = ((r.X[:, None, :] - Y[k][None]) ** 2).sum(-1)
            P = ot.emd(r.a, b[k], C)
            assert r.values[k] == pytest.approx((P * C).sum(), rel=1e-12)
            np.testing.assert_allclose(r.grad_Y[k], lam[k] * 2 * (b[k][:, None] * Y[k] - P.T @ r.X),
                                       atol=1e-12)
    dl = np.array([1.0, -2.0, 1.0])
    assert r.values @ dl == pytest.approx(_fd(lambda h: loss(lam_=lam + h * dl), 1e-6), rel=rel)
    plain = monge.free_support_barycenter(Y, b, lam, n=5, seed=1, **kw)
    assert plain.value is None and plain.grad_Y is None
    np.testing.assert_array_equal(plain.X, r.X)
