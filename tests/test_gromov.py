"""Gromov–Wasserstein and fused GW: against POT's solvers (same start, same method), closed forms
(an isometric copy at zero cost, alpha = 0 as exact OT, the objective written out as a four-index
sum), gradients against POT's autograd and finite differences, thread independence, restarts
and bad input."""
import warnings

import numpy as np
import ot
import pytest

import monge
from monge import ConvergenceWarning



def clouds(n, m, d=2, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, d)), rng.random((m, d + 1))
    C1 = np.linalg.norm(x[:, None] - x[None], axis=-1)
    C2 = np.linalg.norm(y[:, None] - y[None], axis=-1)
    return C1, C2


def weights(n, seed):
    w = np.random.default_rng(seed).random(n) + 0.5
    return w / w.sum()


def gw_written_out(C1, C2, T, loss="square"):
    a, b = C1[:, None, :, None], C2[None, :, None, :]
    L = (a - b) ** 2 if loss == "square" else a * np.log(np.where(a > 0, a, 1) / b) - a + b
    return float(np.einsum("ijkl,ij,kl->", L, T, T))


def test_cg_matches_pot():
    C1, C2 = clouds(25, 20)
    p, q = weights(25, 1), weights(20, 2)
    r = monge.gromov_wasserstein(C1, C2, p, q)
    T, log = ot.gromov.gromov_wasserstein(C1, C2, p, q, log=True)
    assert r.converged
    assert abs(r.value - log["gw_dist"]) <= 1e-8 * log["gw_dist"]
    np.testing.assert_allclose(r.plan, T, atol=1e-8)
    assert r.value == pytest.approx(gw_written_out(C1, C2, r.plan), rel=1e-12)
    assert r.error < 1e-12 and r.fw_gap < 1e-6


def test_fused_cg_matches_pot():
    C1, C2 = clouds(18, 22, seed=3)
    rng = np.random.default_rng(4)
    M = ot.dist(rng.random((18, 3)), rng.random((22, 3)))
    for alpha in (0.2, 0.7):
        r = monge.fused_gromov_wasserstein(M, C1, C2, alpha=alpha)
        T, log = ot.gromov.fused_gromov_wasserstein(M, C1, C2, alpha=alpha, log=True)
        assert r.converged
        assert r.value == pytest.approx(log["fgw_dist"], rel=1e-8)
        np.testing.assert_allclose(r.plan, T, atol=1e-8)
        assert r.linear == pytest.approx(float((M * r.plan).sum()), rel=1e-12)
        assert r.value == pytest.approx((1 - alpha) * r.linear + alpha * r.gw, rel=1e-12)


def test_entropic_matches_pot():
    C1, C2 = clouds(30, 24, seed=5)
    C1, C2 = C1 / C1.max(), C2 / C2.max()
    for loss, pot_loss in (("square", "square_loss"), ("kl", "kl_loss")):
        A, B = (C1, C2) if loss == "square" else (C1 + 0.1, C2 + 0.1)
        r = monge.gromov_wasserstein(A, B, loss=loss, method="entropic", eps=0.05, tol=1e-12,
                                     tol_abs=0, inner_tol=1e-12)
        T = ot.gromov.entropic_gromov_wasserstein(A, B, loss_fun=pot_loss, epsilon=0.05,
                                                  max_iter=5000, tol=1e-13, numItermax=100000,
                                                  stopThr=1e-13)
        assert r.converged, loss
        np.testing.assert_allclose(r.plan, T, atol=1e-9, err_msg=loss)
        assert r.gw == pytest.approx(gw_written_out(A, B, r.plan, loss), rel=1e-10)
        assert r.error < 1e-11


def test_asymmetric_and_kl_cg_against_pot():
    rng = np.random.default_rng(6)
    C1, C2 = rng.random((12, 12)) + 0.1, rng.random((15, 15)) + 0.1   # directed graphs
    for loss, pot_loss in (("square", "square_loss"), ("kl", "kl_loss")):
        r = monge.gromov_wasserstein(C1, C2, loss=loss, max_iter=20000)
        T, log = ot.gromov.gromov_wasserstein(C1, C2, loss_fun=pot_loss, log=True,
                                              max_iter=20000)
        assert r.value == pytest.approx(gw_written_out(C1, C2, r.plan, loss), rel=1e-10)
        # same start, same line search: the same stationary point
        assert r.value == pytest.approx(log["gw_dist"], rel=1e-6), loss
        np.testing.assert_allclose(r.plan, T, atol=1e-6, err_msg=loss)


def test_isometric_copy_is_zero_with_a_permutation():
    rng = np.random.default_rng(7)
    x = rng.random((15, 3))
    C1 = ((x[:, None] - x[None]) ** 2).sum(-1)
    perm = rng.permutation(15)
    r = monge.gromov_wasserstein(C1, C1[np.ix_(perm, perm)])
    assert r.converged and abs(r.value) < 1e-12
    np.testing.assert_array_equal(r.plan.argmax(0), perm)
    np.testing.assert_allclose(r.plan.max(0), 1 / 15, rtol=1e-12)


def test_alpha_zero_is_exact_ot():
    C1, C2 = clouds(10, 12, seed=8)
    M = np.random.default_rng(9).random((10, 12))
    r = monge.fused_gromov_wasserstein(M, C1, C2, alpha=0.0)
    e = monge.emd(C=M)
    assert r.value == pytest.approx(e.cost, rel=1e-12)


@pytest.mark.optional     # torch (the test extra installs it; --core drops it)
def test_gradients_match_pot_autograd_and_finite_differences():
    import torch

    C1, C2 = clouds(9, 11, seed=10)
    p, q = weights(9, 11), weights(11, 12)
    r = monge.gromov_wasserstein(C1, C2, p, q, grad=True)
    tC1, tC2 = (torch.tensor(C, requires_grad=True) for C in (C1, C2))
    tp, tq = (torch.tensor(w, requires_grad=True) for w in (p, q))
    val = ot.gromov.gromov_wasserstein2(tC1, tC2, tp, tq)
    val.backward()
    assert r.value == pytest.approx(val.item(), rel=1e-8)
    np.testing.assert_allclose(r.grad_C1, tC1.grad.numpy(), atol=1e-8)
    np.testing.assert_allclose(r.grad_C2, tC2.grad.numpy(), atol=1e-8)
    np.testing.assert_allclose(r.f, tp.grad.numpy() - tp.grad.numpy() @ p, atol=1e-7)
    # the envelope: central differences of the value written out at the plan held fixed
    h = 1e-6
    for (i, k) in ((0, 3), (4, 4), (8, 1)):
        E = np.zeros_like(C1)
        E[i, k] = h
        fd = (gw_written_out(C1 + E, C2, r.plan) - gw_written_out(C1 - E, C2, r.plan)) / (2 * h)
        assert r.grad_C1[i, k] == pytest.approx(fd, abs=1e-7)


def test_fused_gradients_finite_differences_of_the_solved_value():
    C1, C2 = clouds(8, 8, seed=13)
    M = np.random.default_rng(14).random((8, 8))
    r = monge.fused_gromov_wasserstein(M, C1, C2, alpha=0.4, grad=True)
    # at a vertex plan a small change of C2 keeps the plan: the solved value's derivative is
    # the gradient at the plan held fixed
    h = 1e-6
    for (j, l) in ((0, 5), (2, 2), (7, 3)):
        E = np.zeros_like(C2)
        E[j, l] = h
        up = monge.fused_gromov_wasserstein(M, C1, C2 + E, alpha=0.4).value
        dn = monge.fused_gromov_wasserstein(M, C1, C2 - E, alpha=0.4).value
        assert r.grad_C2[j, l] == pytest.approx((up - dn) / (2 * h), abs=1e-6)


def test_threads_bitwise_and_restarts():
    C1, C2 = clouds(40, 35, seed=15)
    for method in ("cg", "entropic"):
        a = monge.gromov_wasserstein(C1, C2, method=method, eps=0.05, nthreads=1)
        b = monge.gromov_wasserstein(C1, C2, method=method, eps=0.05, nthreads=2)
        np.testing.assert_array_equal(a.plan, b.plan)
        assert a.value == b.value
    r = monge.gromov_wasserstein(C1, C2, n_init=4, seed=0)
    assert len(r.values) == 4 and r.value == pytest.approx(min(r.values))
    assert r.values[0] == pytest.approx(monge.gromov_wasserstein(C1, C2).value)
    plan = monge.gromov.random_plan(np.full(40, 1 / 40), np.full(35, 1 / 35),
                                    np.random.default_rng(1))
    assert plan.min() >= 0
    np.testing.assert_allclose(plan.sum(1), 1 / 40, atol=1e-15)
    np.testing.assert_allclose(plan.sum(0), 1 / 35, atol=1e-15)
    # a given start is used: starting at the solution stops at once
    s = monge.gromov_wasserstein(C1, C2, init=r.plan)
    assert s.value == pytest.approx(r.value, rel=1e-12) and s.n_iter <= 2


def test_unconverged_warns_and_callback_stops():
    C1, C2 = clouds(20, 20, seed=16)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        r = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.05, max_iter=2)
    assert not r.converged and r.n_iter == 2
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = monge.gromov_wasserstein(C1, C2, callback=lambda k, d: seen.append(k) or k >= 1)
    assert seen == [1] and not r.converged


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(C1=np.ones((3, 4))), ValueError, "C1: expected a square"),
    (dict(C2=np.full((4, 4), np.nan)), ValueError, "C2: contains NaN"),
    (dict(p=np.array([0.5, 0.5, 0.5])), ValueError, "p, q: masses differ"),
    (dict(q=-np.ones(4) / 4), ValueError, "q: weights must be non-negative"),
    (dict(loss="kl"), ValueError, "C2: the kl loss needs C2 > 0"),
    (dict(loss="l1"), ValueError, "loss: unknown value"),
    (dict(method="ppa"), ValueError, "method: unknown value"),
    (dict(method="entropic", eps=0), ValueError, "eps: must be a positive"),
    (dict(init=np.ones((3, 4))), ValueError, "init: marginals differ"),
    (dict(init="random"), ValueError, "init: unknown value"),
    (dict(n_init=0), ValueError, "n_init: must be >= 1"),
    (dict(max_iter=1.5), TypeError, "max_iter: expected an integer"),
    (dict(grad=1), TypeError, "grad: expected a bool"),
])
def test_bad_input(kwargs, exc, match):
    args = dict(C1=np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0.0]]), C2=np.eye(4))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        monge.gromov_wasserstein(**args)


def test_fused_bad_input():
    C = np.array([[0, 1.0], [1, 0]])
    with pytest.raises(ValueError, match=r"M: expected shape \(2, 2\)"):
        monge.fused_gromov_wasserstein(np.ones((2, 3)), C, C)
    with pytest.raises(ValueError, match=r"alpha: must be in \[0, 1\]"):
        monge.fused_gromov_wasserstein(np.ones((2, 2)), C, C, alpha=1.5)
    with pytest.raises(ValueError, match="M: required"):
        monge.fused_gromov_wasserstein(None, C, C)


@pytest.mark.optional     # torch (the test extra installs it; --core drops it)
def test_torch_bridge_matches_pot_and_gradcheck():
    import torch

    import monge.torch as mt
    C1, C2 = clouds(10, 12, seed=17)
    p, q = weights(10, 18), weights(12, 19)
    M = np.random.default_rng(20).random((10, 12))
    ours = [torch.tensor(v, requires_grad=True) for v in (C1, C2, p, q, M)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (C1, C2, p, q, M)]
    v = mt.gromov_wasserstein2(*ours[:4], M=ours[4], alpha=0.3)
    w = ot.gromov.fused_gromov_wasserstein2(theirs[4], theirs[0], theirs[1], theirs[2], theirs[3],
                                            alpha=0.3)
    v.backward()
    w.backward()
    assert v.item() == pytest.approx(w.item(), rel=1e-8)
    for name, a, b in zip(("C1", "C2", "p", "q", "M"), ours, theirs):
        ga, gb = a.grad.numpy(), b.grad.numpy()
        if name in ("p", "q"):            # defined up to a constant on the simplex
            ga, gb = ga - ga.mean(), gb - gb.mean()
        np.testing.assert_allclose(ga, gb, atol=1e-7, err_msg=name)
    # the plan is a vertex, so the value is differentiable in C1, C2 and M around it
    inputs = tuple(torch.tensor(v, requires_grad=True) for v in (C1, C2, M))
    assert torch.autograd.gradcheck(
        lambda a, b, m: mt.gromov_wasserstein2(a, b, M=m, alpha=0.3), inputs, eps=1e-6,
        atol=1e-6)
    with pytest.raises(TypeError, match="'grad' is set by the bridge"):
        mt.gromov_wasserstein2(*ours[:2], grad=True)


def test_entropic_damping_breaks_cycles_and_keeps_fixed_points():
    rng = np.random.default_rng(21)
    C1, C2 = rng.random((20, 20)), rng.random((15, 15))
    C1, C2 = (C1 + C1.T) / 2, (C2 + C2.T) / 2
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        plain = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.01, damping=0,
                                         max_iter=300)
    assert plain.delta > 1e-3                        # a cycle, not slow progress
    r = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.01)
    assert r.converged and r.gw < plain.gw
    # fixed points of the undamped map: T is the Sinkhorn plan of its own gradient (GW is not
    # convex: another damping may end at another fixed point)
    d = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.01, damping=0.02)
    assert d.converged
    for T in (r.plan, d.plan):
        G = 2 * ((C1 ** 2) @ T.sum(1)[:, None] + ((C2 ** 2) @ T.sum(0))[None, :]
                 - 2 * C1 @ T @ C2.T)
        s = monge.sinkhorn(C=G, eps=0.01, tol=1e-12)
        np.testing.assert_allclose(T, s.plan(), atol=1e-7)


def test_entropic_eps_scaling():
    C1, C2 = clouds(30, 25, seed=22)
    C1, C2 = C1 / C1.max(), C2 / C2.max()
    a = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.05)
    b = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.05, eps_scaling=True)
    assert a.converged and b.converged and b.eps == 0.05
    assert b.value == pytest.approx(a.value, rel=1e-6)
    with pytest.warns(ConvergenceWarning):
        c = monge.gromov_wasserstein(C1, C2, method="entropic", eps=0.05, eps_scaling=True,
                                     eps_start=10.0, max_iter=3)
    assert c.eps > 0.05                               # stopped in an early stage, and says so
    with pytest.raises(ValueError, match=r"scaling_factor: must be in \(0, 1\)"):
        monge.gromov_wasserstein(C1, C2, method="entropic", eps_scaling=True, scaling_factor=2)
    with pytest.raises(ValueError, match="damping: unknown value"):
        monge.gromov_wasserstein(C1, C2, method="entropic", damping="on")


def test_point_clouds_match_the_dense_squared_distances():
    rng = np.random.default_rng(23)
    x, y = rng.random((40, 2)) + 10.0, rng.random((35, 3))
    C1 = ((x[:, None] - x[None]) ** 2).sum(-1)
    C2 = ((y[:, None] - y[None]) ** 2).sum(-1)
    M = rng.random((40, 35))
    for method in ("cg", "entropic"):
        a = monge.gromov_wasserstein(C1, C2, method=method, eps=0.05)
        b = monge.gromov_wasserstein(x=x, y=y, method=method, eps=0.05)
        np.testing.assert_allclose(b.plan, a.plan, atol=1e-9)
        assert b.value == pytest.approx(a.value, rel=1e-9)
    a = monge.fused_gromov_wasserstein(M, C1, C2, alpha=0.3)
    b = monge.fused_gromov_wasserstein(M, x=x, y=y, alpha=0.3)
    np.testing.assert_allclose(b.plan, a.plan, atol=1e-9)
    # and POT on the same problem
    T = ot.gromov.gromov_wasserstein(C1, C2)
    np.testing.assert_allclose(monge.gromov_wasserstein(x=x, y=y).plan, T, atol=1e-8)


@pytest.mark.parametrize("kwargs, match", [
    (dict(C1=np.eye(3), x=np.ones((3, 2)), y=np.ones((3, 2))), "give either the matrices"),
    (dict(x=np.ones((3, 2))), "x, y: both point clouds are required"),
    (dict(x=np.ones((3, 17)), y=np.ones((3, 2))), "x: dimension 17 > 16"),
    (dict(x=np.ones((3, 2)), y=np.ones((3, 2)), loss="kl"), "loss: point clouds x, y use the square"),
    (dict(), "C1, C2: required"),
])
def test_point_cloud_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        monge.gromov_wasserstein(**kwargs)


@pytest.mark.optional     # torch (the test extra installs it; --core drops it)
def test_point_cloud_gradients_finite_differences_and_torch():
    import torch

    import monge.torch as mt
    rng = np.random.default_rng(24)
    x, y = rng.random((12, 2)), rng.random((10, 3))
    r = monge.gromov_wasserstein(x=x, y=y, grad=True)
    # at a vertex plan the solved value is differentiable with the plan fixed
    h = 1e-6
    for (i, c) in ((0, 0), (5, 1), (11, 0)):
        e = np.zeros_like(x)
        e[i, c] = h
        fd = (monge.gromov_wasserstein(x=x + e, y=y).value
              - monge.gromov_wasserstein(x=x - e, y=y).value) / (2 * h)
        assert r.grad_x[i, c] == pytest.approx(fd, abs=1e-6)
    tx, ty = (torch.tensor(v, requires_grad=True) for v in (x, y))
    v = mt.gromov_wasserstein2(x=tx, y=ty)
    v.backward()
    assert v.item() == pytest.approx(r.value, rel=1e-12)
    np.testing.assert_allclose(tx.grad.numpy(), r.grad_x, atol=1e-12)
    np.testing.assert_allclose(ty.grad.numpy(), r.grad_y, atol=1e-12)


@pytest.mark.parametrize("loss", ["square", "kl"])
def test_semirelaxed_matches_pot(loss):
    """semirelaxed=True: only T 1 = p; from the same start POT's semirelaxed solvers reach the
    same plan (GW and fused GW), and point clouds give the dense matrices' plan."""
    rng = np.random.default_rng(0)
    x, y = rng.random((30, 2)), rng.random((20, 3))
    if loss == "square":
        C1, C2 = ot.dist(x, x), ot.dist(y, y)
    else:
        C1, C2 = rng.random((30, 30)) + 0.1, rng.random((20, 20)) + 0.1
    p = rng.dirichlet(np.ones(30))
    T, log = ot.gromov.semirelaxed_gromov_wasserstein(C1, C2, p, loss_fun=loss + "_loss", log=True)
    r = monge.gromov_wasserstein(C1, C2, p, loss=loss, semirelaxed=True)
    assert r.converged and r.value == pytest.approx(log["srgw_dist"], rel=1e-10)
    np.testing.assert_allclose(r.plan, T, atol=1e-10)
    np.testing.assert_allclose(r.plan.sum(1), p, atol=1e-15)
    assert r.error < 1e-15 and not np.allclose(r.plan.sum(0), 1 / 20)   # columns are free
    M = ot.dist(rng.random((30, 1)), rng.random((20, 1)))
    T2, log2 = ot.gromov.semirelaxed_fused_gromov_wasserstein(M, C1, C2, p, alpha=0.3,
                                                              loss_fun=loss + "_loss", log=True)
    r2 = monge.fused_gromov_wasserstein(M, C1, C2, p, alpha=0.3, loss=loss, semirelaxed=True)
    assert r2.value == pytest.approx(log2["srfgw_dist"], rel=1e-10)
    np.testing.assert_allclose(r2.plan, T2, atol=1e-10)
    if loss == "square":
        r3 = monge.gromov_wasserstein(x=x, y=y, p=p, semirelaxed=True)
        np.testing.assert_allclose(r3.plan, r.plan, atol=1e-10)


def test_semirelaxed_bad_input():
    C = np.ones((3, 3)) - np.eye(3)
    with pytest.raises(ValueError, match="semirelaxed: only with method='cg'"):
        monge.gromov_wasserstein(C, C, method="entropic", semirelaxed=True)
    with pytest.raises(TypeError, match="semirelaxed: expected a bool"):
        monge.gromov_wasserstein(C, C, semirelaxed="yes")
    T0 = np.eye(3) / 3
    T0[0] *= 2
    with pytest.raises(ValueError, match="init: marginals differ from p by"):
        monge.gromov_wasserstein(C, C, init=T0, semirelaxed=True)
    rows_only = np.array([[1.0, 0, 0], [1, 0, 0], [1, 0, 0]]) / 3    # rows p, columns not q
    r = monge.gromov_wasserstein(C, C, init=rows_only, semirelaxed=True)
    np.testing.assert_allclose(r.plan.sum(1), 1 / 3)
