"""Token alignment (Sinkhorn / IPOT on a cosine cost, batched with padding): plans against NumPy
references, padding against the unpadded problem, gradients (plan held fixed) against finite
differences, the torch wrapper, and bad input."""
import numpy as np
import pytest
import torch

import monge
import monge.torch as mt


def cosine_cost(x, y):
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    yh = y / np.linalg.norm(y, axis=1, keepdims=True)
    return 1 - xh @ yh.T


def ref_sinkhorn(C, eps, iters=5000):
    n, m = C.shape
    la, lb = -np.log(n), -np.log(m)
    f, g = np.zeros(n), np.zeros(m)
    lse = lambda v, ax: np.log(np.exp(v - v.max(ax, keepdims=True)).sum(ax)) + v.max(ax)  # noqa
    for _ in range(iters):
        f = -eps * lse(lb + (g[None, :] - C) / eps, 1)
        g = -eps * lse(la + (f[:, None] - C) / eps, 0)
    return np.exp(la + lb + (f[:, None] + g[None, :] - C) / eps)


def ref_ipot(C, beta=0.5, outer=50, inner=1):
    n, m = C.shape
    G = np.exp(-C / beta)
    P = np.ones((n, m))
    v = np.full(m, 1 / m)
    for _ in range(outer):
        Q = G * P
        for _ in range(inner):
            u = (1 / n) / (Q @ v)
            v = (1 / m) / (Q.T @ u)
        P = u[:, None] * Q * v[None, :]
    return P


def batch(seed, B=4, n=9, m=6, d=5):
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(B, n, d)), rng.normal(size=(B, m, d))
    mx = np.ones((B, n), bool)
    my = np.ones((B, m), bool)
    mx[1, n - 3:] = False
    mx[B - 1, 2] = False  # a hole in the middle
    my[B - 1, m - 2:] = False
    X[1, n - 3:] = 0.0  # padding may hold anything, zero vectors included
    return X, Y, mx, my


@pytest.mark.parametrize("method", ["sinkhorn", "ipot"])
def test_plans_match_numpy_reference_with_padding(method):
    X, Y, mx, my = batch(0)
    kw = dict(eps=0.2, tol=1e-13, max_iter=20000) if method == "sinkhorn" else dict(outer=30, inner=2)
    r = monge.align(X, Y, mx, my, method=method, **kw)
    for k in range(4):
        C = cosine_cost(X[k][mx[k]], Y[k][my[k]])
        P = ref_sinkhorn(C, 0.2) if method == "sinkhorn" else ref_ipot(C, outer=30, inner=2)
        np.testing.assert_allclose(r.plan[k][np.ix_(mx[k], my[k])], P, rtol=1e-8, atol=1e-13)
        assert (r.plan[k][~mx[k]] == 0).all() and (r.plan[k][:, ~my[k]] == 0).all()
        assert r.distance[k] == pytest.approx((P * C).sum(), rel=1e-9)
        # a padded pair equals its unpadded sub-problem
        sub = monge.align(X[k][mx[k]], Y[k][my[k]], method=method, **kw)
        assert sub.distance == pytest.approx(r.distance[k], rel=1e-12)
    if method == "sinkhorn":
        assert r.converged and (r.error <= 1e-13).all()


@pytest.mark.parametrize("method", ["sinkhorn", "ipot"])
def test_gradients_with_the_plan_fixed_match_finite_differences(method):
    X, Y, mx, my = batch(1, B=2, n=5, m=4, d=3)
    r = monge.align(X, Y, mx, my, method=method, grad=True, tol=1e-12, max_iter=10000)
    h = 1e-6
    for k in range(2):
        P = r.plan[k]

        def D(x, y):
            C = np.zeros(P.shape)
            C[np.ix_(mx[k], my[k])] = cosine_cost(x[mx[k]], y[my[k]])
            return (P * C).sum()

        for Z, G in ((X, r.grad_x), (Y, r.grad_y)):
            fd = np.zeros_like(Z[k])
            for idx in np.ndindex(*Z[k].shape):
                up, dn = Z[k].copy(), Z[k].copy()
                up[idx] += h
                dn[idx] -= h
                args_up = (up, Y[k]) if Z is X else (X[k], up)
                args_dn = (dn, Y[k]) if Z is X else (X[k], dn)
                fd[idx] = (D(*args_up) - D(*args_dn)) / (2 * h)
            np.testing.assert_allclose(G[k], fd, atol=1e-8)


def test_torch_wrapper_matches_numpy_and_backpropagates():
    X, Y, mx, my = batch(2)
    Xt = torch.tensor(X, requires_grad=True)
    Yt = torch.tensor(Y, requires_grad=True)
    dist, plan = mt.align(Xt, Yt, torch.tensor(mx), torch.tensor(my), method="ipot")
    assert not plan.requires_grad
    w = torch.arange(1.0, 5.0, dtype=torch.float64)
    (dist * w).sum().backward()
    r = monge.align(X, Y, mx, my, method="ipot", grad=True)
    np.testing.assert_allclose(dist.detach().numpy(), r.distance, rtol=1e-14)
    np.testing.assert_allclose(Xt.grad.numpy(), r.grad_x * w.numpy()[:, None, None], atol=1e-14)
    np.testing.assert_allclose(Yt.grad.numpy(), r.grad_y * w.numpy()[:, None, None], atol=1e-14)


def test_threads_and_nonconvergence():
    X, Y, mx, my = batch(3, B=16)
    monge.set_num_threads(1)
    a = monge.align(X, Y, mx, my, grad=True)
    monge.set_num_threads(2)
    b = monge.align(X, Y, mx, my, grad=True)
    assert np.array_equal(a.plan, b.plan) and np.array_equal(a.grad_x, b.grad_x)
    with pytest.warns(monge.ConvergenceWarning, match="align: Sinkhorn did not converge"):
        r = monge.align(X, Y, mx, my, eps=1e-3, tol=1e-12, max_iter=3)
    assert not r.converged
    with pytest.warns(monge.ConvergenceWarning, match="after 3 iterations"):  # the torch route too
        mt.align(torch.tensor(X), torch.tensor(Y), torch.tensor(mx), torch.tensor(my), eps=1e-3,
                 tol=1e-12, max_iter=3)


def test_bad_input():
    X, Y, mx, my = batch(4)
    with pytest.raises(ValueError, match="X: vector 6 of pair 1 is zero"):
        monge.align(X, Y)  # the padding holds zero vectors: without the mask they are real
    with pytest.raises(ValueError, match="X: vector 0 of pair 0 is zero"):
        Z = X.copy()
        Z[0, 0] = 0
        monge.align(Z, Y, mx, my)
    with pytest.raises(ValueError, match="mask_y: pair 0 has no valid entry"):
        bad = my.copy()
        bad[0] = False
        monge.align(X, Y, mx, bad)
    with pytest.raises(ValueError, match="mask_x: expected shape"):
        monge.align(X, Y, mx[:, :3], my)
    with pytest.raises(ValueError, match="X, Y: embedding dimensions differ"):
        monge.align(X, Y[..., :2])
    with pytest.raises(ValueError, match="method: unknown"):
        monge.align(X, Y, mx, my, method="emd")
    with pytest.raises(ValueError, match="eps: must be"):
        monge.align(X, Y, mx, my, eps=0)
    with pytest.raises(ValueError, match="X: contains NaN"):
        Z = X.copy()
        Z[0, 0, 0] = np.nan
        monge.align(Z, Y)
    with pytest.raises(TypeError, match="mask_x: expected a boolean"):
        monge.align(X, Y, mask_x=mx.astype(float))
