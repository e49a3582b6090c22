"""Sinkhorn divergence and Monge gap: values against GeomLoss and closed forms, gradients against
finite differences, invariants."""
import numpy as np
import pytest
import torch
from geomloss import SamplesLoss

import monge
from test_sinkhorn import gaussian_entropic_ot

COSTS = [("sqeuclidean", {}), ("euclidean", {}), ("pnorm", {"p": 1.5}), ("cosine", {}),
         ("elastic", {"lam": 0.7})]


def clouds(rng, n=30, m=24, d=3, weighted=True):
    x = rng.random((n, d)) + 0.1
    y = rng.random((m, d)) + 0.4
    if not weighted:
        return x, y, None, None
    a = rng.random(n) + 0.2
    b = rng.random(m) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def fd(fun, z, direction, h=1e-6):
    return (fun(z + h * direction) - fun(z - h * direction)) / (2 * h)


# ---------------------------------------------------------------- Sinkhorn divergence

@pytest.mark.parametrize("blur", [0.3, 0.15])
def test_divergence_matches_geomloss(rng, blur):
    """GeomLoss (p=2) uses |x-y|^2/2 and eps = blur^2: the same problem as ours with eps = 2 blur^2,
    at half the value.  GeomLoss stops after its annealing schedule; its distance to our converged
    value must shrink as the schedule gets finer."""
    x, y, a, b = clouds(rng, 200, 150, 2)
    r = monge.sinkhorn_divergence(x, y, a, b, eps=2 * blur**2, grad=True, tol=1e-13)
    gaps = []
    for scaling in (0.99, 0.999):
        loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, backend="tensorized")
        X = torch.tensor(x, requires_grad=True)
        A = torch.tensor(a, requires_grad=True)
        Y = torch.tensor(y, requires_grad=True)
        v = loss(A, X, torch.tensor(b), Y)
        gX, gY, gA = torch.autograd.grad(v, [X, Y, A])
        ga = r.grad_a - r.grad_a.mean()
        gaps.append((abs(v.item() - r.value / 2), np.abs(gX.numpy() - r.grad_x / 2).max(),
                     np.abs(gY.numpy() - r.grad_y / 2).max(),
                     np.abs(gA.numpy() - gA.numpy().mean() - ga / 2).max()))
    fine, coarse = gaps[1], gaps[0]
    assert fine[0] <= 1e-7 * r.value and fine[1] <= 1e-5 and fine[2] <= 1e-5
    for f, c in zip(fine, coarse):
        assert f < c / 4, (fine, coarse)  # the remaining difference is GeomLoss's truncation


@pytest.mark.parametrize("cost,kw", COSTS)
@pytest.mark.parametrize("tau", [None, 0.5])
def test_divergence_gradients_match_finite_differences(rng, cost, kw, tau):
    x, y, a, b = clouds(rng)
    if tau is not None:
        b = 1.4 * b
    opts = dict(eps=0.1, cost=cost, tau=tau, tol=1e-13, **kw)
    r = monge.sinkhorn_divergence(x, y, a, b, grad=True, **opts)
    assert r.converged and r.value > 0
    S = lambda **ch: monge.sinkhorn_divergence(**{**dict(x=x, y=y, a=a, b=b), **ch}, **opts).value  # noqa: E731
    dx, dy = rng.standard_normal(x.shape), rng.standard_normal(y.shape)
    assert abs(fd(lambda z: S(x=z), x, dx) - np.sum(r.grad_x * dx)) <= 1e-6
    assert abs(fd(lambda z: S(y=z), y, dy) - np.sum(r.grad_y * dy)) <= 1e-6
    da, db = rng.standard_normal(a.shape) * a, rng.standard_normal(b.shape) * b
    if tau is None:  # stay on the balanced set: mass-preserving directions
        da -= da.mean()
        db -= db.mean()
    assert abs(fd(lambda z: S(a=z), a, da) - r.grad_a @ da) <= 1e-6
    assert abs(fd(lambda z: S(b=z), b, db) - r.grad_b @ db) <= 1e-6


def test_divergence_properties(rng):
    x, y, a, b = clouds(rng, 80, 70, 2)
    r = monge.sinkhorn_divergence(x, y, a, b, eps=0.05, tol=1e-12)
    r2 = monge.sinkhorn_divergence(y, x, b, a, eps=0.05, tol=1e-12)
    assert r.value > 0 and abs(r.value - r2.value) <= 1e-12  # symmetric
    assert abs(monge.sinkhorn_divergence(x, x, a, a, eps=0.05).value) <= 1e-12
    perm = rng.permutation(80)
    r3 = monge.sinkhorn_divergence(x[perm], y, a[perm], b, eps=0.05, tol=1e-12)
    assert abs(r3.value - r.value) <= 1e-11
    # unbalanced: S >= 0, S(a, a) = 0, and the mass term
    ru = monge.sinkhorn_divergence(x, y, a, 2 * b, eps=0.05, tau=1.0)
    assert ru.value > 0
    assert abs(monge.sinkhorn_divergence(x, x, 2 * a, 2 * a, eps=0.05, tau=1.0).value) <= 1e-12
    # the three terms add up
    assert abs(r.value - (r.ot_ab - 0.5 * r.ot_aa - 0.5 * r.ot_bb)) <= 1e-14


def test_divergence_static_b_and_batch(rng):
    x, y, a, b = clouds(rng, 40, 35, 2)
    full = monge.sinkhorn_divergence(x, y, a, b, eps=0.05, grad=True, tol=1e-12)
    st = monge.sinkhorn_divergence(x, y, a, b, eps=0.05, grad=True, static_b=True, tol=1e-12)
    assert abs(st.value - (full.value + 0.5 * full.ot_bb)) <= 1e-12
    np.testing.assert_allclose(st.grad_x, full.grad_x, atol=1e-13)
    assert st.grad_y is None and st.grad_b is None and np.isnan(st.ot_bb)
    xs, ys = rng.random((4, 40, 2)), rng.random((4, 35, 2)) + 0.2
    rb = monge.sinkhorn_divergence(xs, ys, eps=0.05, grad=("x", "b"), tol=1e-11)
    assert rb.grad_x.shape == (4, 40, 2) and rb.grad_b.shape == (4, 35) and rb.grad_y is None
    for k in range(4):
        r = monge.sinkhorn_divergence(xs[k], ys[k], eps=0.05, grad=("x", "b"), tol=1e-11)
        assert r.value == rb.value[k]
        np.testing.assert_array_equal(r.grad_x, rb.grad_x[k])


def test_divergence_dense_equals_online(rng):
    x, y, a, b = clouds(rng, 50, 45, 20)
    r1 = monge.sinkhorn_divergence(x, y, a, b, eps=0.5, grad=True, online=True, tol=1e-12)
    r2 = monge.sinkhorn_divergence(x, y, a, b, eps=0.5, grad=True, online=False, tol=1e-12)
    assert abs(r1.value - r2.value) <= 1e-12
    np.testing.assert_allclose(r1.grad_x, r2.grad_x, atol=1e-12)


@pytest.mark.parametrize("eps", [0.5, 0.1])
def test_divergence_gaussian_closed_form(eps):
    def grid(mu, s, n=1200):
        t = np.linspace(mu - 9 * s, mu + 9 * s, n)
        w = np.exp(-0.5 * ((t - mu) / s) ** 2)
        return t[:, None], w / w.sum()

    x, a = grid(0.0, 1.0)
    y, b = grid(0.8, 0.5)
    A, B = np.array([[1.0]]), np.array([[0.25]])
    ref = (gaussian_entropic_ot(np.zeros(1), A, np.array([0.8]), B, eps)
           - 0.5 * gaussian_entropic_ot(np.zeros(1), A, np.zeros(1), A, eps)
           - 0.5 * gaussian_entropic_ot(np.zeros(1), B, np.zeros(1), B, eps))
    r = monge.sinkhorn_divergence(x, y, a, b, eps=eps, tol=1e-12)
    assert abs(r.value - ref) <= 1e-9 * abs(ref)


def test_divergence_float32(rng):
    x, y, a, b = clouds(rng, 300, 250, 3)
    r64 = monge.sinkhorn_divergence(x, y, a, b, eps=0.05, grad=True)
    r32 = monge.sinkhorn_divergence(x.astype(np.float32), y.astype(np.float32), a, b, eps=0.05,
                                    grad=True, tol=1e-5)
    assert abs(r32.value - r64.value) <= 1e-4 * r64.value
    assert np.abs(r32.grad_x - r64.grad_x).max() <= 1e-4 * np.abs(r64.grad_x).max()


def test_divergence_bad_inputs(rng):
    x, y, a, b = clouds(rng)
    with pytest.raises(ValueError, match="grad: unknown value 'z'"):
        monge.sinkhorn_divergence(x, y, eps=0.1, grad=("z",))
    with pytest.raises(ValueError, match="grad: with static_b=True"):
        monge.sinkhorn_divergence(x, y, eps=0.1, grad=("y",), static_b=True)
    with pytest.raises(ValueError, match="a, b: total masses differ"):
        monge.sinkhorn_divergence(x, y, a, 2 * b, eps=0.1)
    with pytest.raises(ValueError, match="lam: the elastic weight"):
        monge.sinkhorn_divergence(x, y, eps=0.1, cost="elastic", lam=-1)
    with pytest.raises(ValueError, match="eps: must be a positive number"):
        monge.sinkhorn_divergence(x, y, eps=0)


# ---------------------------------------------------------------- Monge gap

@pytest.mark.parametrize("cost,kw", COSTS)
def test_monge_gap_gradients_match_finite_differences(rng, cost, kw):
    x = rng.standard_normal((25, 3))
    tx = x @ rng.standard_normal((3, 3)) + 0.3
    opts = dict(cost=cost, eps=0.2, tol=1e-13, **kw)
    r = monge.monge_gap(x, tx, grad=True, **opts)
    assert r.converged
    dx, dt = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    M = lambda a, b: monge.monge_gap(a, b, **opts).value  # noqa: E731
    assert abs(fd(lambda z: M(x, z), tx, dt) - np.sum(r.grad_tx * dt)) <= 1e-6
    assert abs(fd(lambda z: M(z, tx), x, dx) - np.sum(r.grad_x * dx)) <= 1e-6


def test_monge_gap_estimator_definition(rng):
    """M = mean c(x_i, Tx_i) - (<P,C> - eps H(P)) computed from the plan by hand."""
    x = rng.standard_normal((40, 2))
    tx = x @ np.array([[0.5, 1.0], [-1.0, 0.3]])
    r = monge.monge_gap(x, tx, eps=0.3, tol=1e-13)
    P = monge.sinkhorn(x, tx, eps=0.3, tol=1e-13).plan()
    C = monge.cost_matrix(x, tx)
    ent = -np.sum(P * np.log(P))
    assert abs(r.ent_reg_cost - (np.sum(P * C) - 0.3 * ent)) <= 1e-10
    assert abs(r.displacement - np.mean(np.sum((x - tx) ** 2, 1))) <= 1e-12
    assert abs(r.value - (r.displacement - r.ent_reg_cost)) <= 1e-14


def test_monge_gap_of_linear_maps():
    """On a Gaussian sample, T(x) = Mx is an optimal map for |x-y|^2 iff M is symmetric PSD.  Its
    entropic Monge gap is then only the entropic bias (about eps log n) and vanishes linearly with
    eps, while a rotation or an indefinite symmetric map keeps a gap of order one."""
    rng = np.random.default_rng(3)
    n = 150
    x = rng.standard_normal((n, 2))
    sym = np.array([[1.5, 0.4], [0.4, 0.7]])       # symmetric positive definite
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])       # a rotation: not the gradient of a convex map
    nonpsd = np.array([[1.0, 0.0], [0.0, -0.5]])    # symmetric but indefinite
    gap = {name: [monge.monge_gap(x, x @ M.T, eps=e, relative_epsilon="std") for e in (0.03, 0.01)]
           for name, M in (("sym", sym), ("rot", rot), ("nonpsd", nonpsd))}
    s_coarse, s_fine = gap["sym"]
    assert s_fine.value < 0.4 * s_coarse.value               # ~ linear in eps
    assert s_fine.value < 1.5 * s_fine.eps * np.log(n)       # no more than the entropic bias
    assert gap["rot"][1].value > 10 * s_fine.value and gap["rot"][1].value > 1.0
    assert gap["nonpsd"][1].value > 5 * s_fine.value and gap["nonpsd"][1].value > 1.0


@pytest.mark.parametrize("cost,kw", COSTS)
def test_debiased_monge_gap_is_displacement_minus_divergence(rng, cost, kw):
    """debiased=True: mean c(x, Tx) - S_eps(x, Tx), against monge.sinkhorn_divergence solved on
    its own at the same eps, with gradients checked by finite differences."""
    x = rng.standard_normal((25, 3))
    tx = x @ rng.standard_normal((3, 3)) + 0.3
    r = monge.monge_gap(x, tx, debiased=True, grad=True, cost=cost, tol=1e-13, **kw)
    s = monge.sinkhorn_divergence(x, tx, eps=r.eps, cost=cost, tol=1e-13, **kw)
    assert abs(r.ent_reg_cost - s.value) <= 1e-11
    assert abs(r.value - (r.displacement - s.value)) <= 1e-11
    opts = dict(cost=cost, eps=r.eps, tol=1e-13, debiased=True, **kw)
    M = lambda a, b: monge.monge_gap(a, b, **opts).value  # noqa: E731
    dx, dt = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    assert abs(fd(lambda z: M(x, z), tx, dt) - np.sum(r.grad_tx * dt)) <= 1e-6
    assert abs(fd(lambda z: M(z, tx), x, dx) - np.sum(r.grad_x * dx)) <= 1e-6


def test_debiased_monge_gap_does_not_reward_contraction():
    """Scaled optimal maps T_s(x) = s x (all gradients of convex functions, true gap 0): the plain
    estimator's value moves with s by much more than the debiased one's, which stays near 0,
    while a rotation keeps a gap of order one under both."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 2))
    plain = [monge.monge_gap(x, s * x).value for s in (0.8, 1.25)]
    deb = [monge.monge_gap(x, s * x, debiased=True).value for s in (0.8, 1.25)]
    assert plain[1] - plain[0] > 0.3
    # measured: |M~| ~ 7e-4 against a plain change of 0.66; 5 % of that change still fails a
    # debiasing that cancelled only part of the entropic term
    assert max(abs(v) for v in deb) < 0.05 * (plain[1] - plain[0])
    rot = x @ np.array([[0.0, -1.0], [1.0, 0.0]])
    assert monge.monge_gap(x, rot, debiased=True).value > 1.0
    with pytest.raises(TypeError, match="debiased: expected a bool"):
        monge.monge_gap(x, x, debiased="yes")


def test_monge_gap_eps_modes(rng):
    x = rng.standard_normal((30, 2))
    tx = 1.5 * x + 0.5
    C = monge.cost_matrix(x, tx)
    assert abs(monge.monge_gap(x, tx, eps=0.05, relative_epsilon="std").eps - 0.05 * C.std()) <= 1e-12
    assert abs(monge.monge_gap(x, tx, eps=0.05, relative_epsilon="mean").eps - 0.05 * C.mean()) <= 1e-12
    assert monge.monge_gap(x, tx).eps == monge.monge_gap(x, tx, eps=0.05, relative_epsilon="std").eps
    assert monge.monge_gap(x, tx, eps=0.2).eps == 0.2
    with pytest.raises(ValueError, match="relative_epsilon: expected None"):
        monge.monge_gap(x, tx, eps=0.1, relative_epsilon="median")
    with pytest.raises(ValueError, match="x, tx: need one image per sample"):
        monge.monge_gap(x, tx[:-1])
    with pytest.raises(ValueError, match="grad: unknown value"):
        monge.monge_gap(x, tx, grad="y")


def test_automatic_annealing_rescues_a_stalling_solve():
    """d = 64, the true map of a convex-potential benchmark: at the default eps the
    over-relaxed solve decays sublinearly and would not converge in 10 000 iterations; 'auto'
    sees it from the measured rate and restarts with eps-scaling, which converges.  (Anderson
    acceleration, the default, converges on this problem without annealing: it is turned off
    here to test the annealing probe, and checked on its own below.)"""
    from monge.maps.datasets import ConvexPotentialMap

    P = ConvexPotentialMap(64, seed=0)
    x = P.sample_source(256, seed=0)
    r = monge.monge_gap(x, P.map(x), max_iter=4000, anderson=0)
    assert r.converged and r.n_iter < 4000
    with pytest.warns(monge.ConvergenceWarning):
        stalled = monge.monge_gap(x, P.map(x), max_iter=4000, eps_scaling=False, anderson=0)
    assert not stalled.converged
    accelerated = monge.monge_gap(x, P.map(x), max_iter=4000, eps_scaling=False)
    assert accelerated.converged and accelerated.n_iter < r.n_iter


def test_monge_gap_dense_equals_online(rng):
    x = rng.standard_normal((60, 6))
    tx = x @ rng.standard_normal((6, 6))
    r1 = monge.monge_gap(x, tx, grad=True, online=True, tol=1e-12)
    r2 = monge.monge_gap(x, tx, grad=True, online=False, tol=1e-12)
    assert abs(r1.value - r2.value) <= 1e-11
    np.testing.assert_allclose(r1.grad_tx, r2.grad_tx, atol=1e-12)


def test_losses_stopped_during_eps_scaling_say_so():
    """max_iter that runs out during eps-scaling used to surface as FloatingPointError ('costs or
    eps out of range'); the losses now say what happened (their terms would belong to different
    eps), and the same calls with their iterations succeed."""
    import numpy as np

    import monge

    rng = np.random.default_rng(0)
    x, y = rng.random((200, 2)), rng.random((150, 2))
    for f in (lambda **k: monge.sinkhorn_divergence(x, y, eps=1e-6, grad=True, **k),
              lambda **k: monge.monge_gap(x, 2 * x, eps=1e-6, grad=True, **k),
              lambda **k: monge.monge_gap(x, 2 * x, eps=1e-6, debiased=True, **k)):
        with pytest.raises(RuntimeError, match="max_iter ran out during eps-scaling.*raise max_iter"):
            f(max_iter=50)
        assert np.isfinite(f().value)
