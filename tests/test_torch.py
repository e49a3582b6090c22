"""The PyTorch bridge: gradcheck in float64, agreement with the NumPy API, float32, batches."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import monge
import monge.torch as mt

TIGHT = dict(tol=1e-13, max_iter=100000)


def t(a, grad=True):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


@pytest.fixture
def data(rng):
    x = rng.random((12, 2))
    y = rng.random((9, 2)) + 0.3
    a = rng.random(12) + 0.2
    b = rng.random(9) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def test_sinkhorn_gradcheck(data):
    x, y, a, b = data
    f = lambda X, Y: mt.sinkhorn(X, Y, eps=0.1, **TIGHT)  # noqa: E731
    assert torch.autograd.gradcheck(f, (t(x), t(y)))
    # weights, unbalanced (no mass constraint to respect)
    g = lambda A, B: mt.sinkhorn(t(x, False), t(y, False), A, B, eps=0.1, tau=0.7, **TIGHT)  # noqa: E731
    assert torch.autograd.gradcheck(g, (t(a), t(1.3 * b)))


@pytest.mark.parametrize("cost,kw", [("sqeuclidean", {}), ("euclidean", {}), ("cosine", {}),
                                     ("elastic", {"lam": 0.5}), ("pnorm", {"p": 1.5})])
def test_divergence_gradcheck(data, cost, kw):
    x, y, a, b = data
    f = lambda X, Y: mt.sinkhorn_divergence(X, Y, eps=0.1, cost=cost, **kw, **TIGHT)  # noqa: E731
    assert torch.autograd.gradcheck(f, (t(x), t(y)))
    g = lambda A, B: mt.sinkhorn_divergence(t(x, False), t(y, False), A, B, eps=0.1, tau=0.5,  # noqa: E731
                                            cost=cost, **kw, **TIGHT)
    assert torch.autograd.gradcheck(g, (t(a), t(1.2 * b)))


@pytest.mark.parametrize("cost,kw", [("sqeuclidean", {}), ("elastic", {"lam": 1.0}), ("cosine", {})])
def test_monge_gap_gradcheck(rng, cost, kw):
    x = rng.standard_normal((10, 2))
    tx = x @ rng.standard_normal((2, 2))
    f = lambda X, TX: mt.monge_gap(X, TX, eps=0.3, cost=cost, **kw, **TIGHT)  # noqa: E731
    assert torch.autograd.gradcheck(f, (t(x), t(tx)))


def test_values_equal_numpy_api(data):
    x, y, a, b = data
    assert mt.sinkhorn(t(x), t(y), eps=0.05).item() == monge.sinkhorn(x, y, eps=0.05).value
    assert (mt.sinkhorn_divergence(t(x), t(y), t(a), t(b), eps=0.05).item()
            == monge.sinkhorn_divergence(x, y, a, b, eps=0.05).value)
    assert mt.monge_gap(t(x), t(x + 0.1), eps=0.1).item() == monge.monge_gap(x, x + 0.1, eps=0.1).value


def test_float32_and_batches(rng):
    xs = torch.tensor(rng.random((3, 20, 2)), dtype=torch.float32, requires_grad=True)
    ys = torch.tensor(rng.random((3, 15, 2)), dtype=torch.float32)
    v = mt.sinkhorn_divergence(xs, ys, eps=0.05)
    assert v.shape == (3,) and v.dtype == torch.float32
    (v * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert xs.grad.dtype == torch.float32
    for k in range(3):
        r = monge.sinkhorn_divergence(xs[k].detach().numpy(), ys[k].numpy(), eps=0.05, grad=("x",))
        np.testing.assert_allclose(xs.grad[k].numpy(), (k + 1) * r.grad_x, rtol=1e-5, atol=1e-7)


def test_training_step_reduces_divergence(rng):
    """A few gradient steps on the source points lower S_eps: the bridge works in a real loop."""
    x = torch.tensor(rng.standard_normal((200, 2)), requires_grad=True)
    y = torch.tensor(rng.standard_normal((200, 2)) * 0.5 + 2.0)
    opt = torch.optim.SGD([x], lr=50.0)
    start = mt.sinkhorn_divergence(x, y, eps=0.5).item()
    for _ in range(10):
        opt.zero_grad()
        loss = mt.sinkhorn_divergence(x, y, eps=0.5, static_b=True)
        loss.backward()
        opt.step()
    assert mt.sinkhorn_divergence(x, y, eps=0.5).item() < 0.05 * start


def test_zero_copy_forward(data):
    """Contiguous CPU tensors reach the C core without a copy: NumPy views of the same memory."""
    x, y, _, _ = data
    X = t(x)
    assert np.shares_memory(X.detach().numpy(), X.detach().cpu().numpy())


def test_bad_inputs():
    with pytest.raises(TypeError, match="x: expected a float32 or float64 tensor"):
        mt.sinkhorn(torch.zeros(3, 2, dtype=torch.int64), torch.zeros(2, 2), eps=0.1)
    with pytest.raises(TypeError, match="y: expected a torch.Tensor"):
        mt.sinkhorn_divergence(torch.zeros(3, 2), np.zeros((2, 2)), eps=0.1)


def test_import_without_torch_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import monge\n"
            "try:\n    import monge.torch\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'monge[torch]'" in out.stdout, out.stderr


def test_sinkhorn_loss_module_matches_functions_and_geomloss():
    """SinkhornLoss(x, y) / (a, x, b, y) equals mt.sinkhorn_divergence / mt.sinkhorn, and half of
    it equals GeomLoss's SamplesLoss('sinkhorn', p=2, blur=s) at eps = 2 s^2 (its cost is
    |x - y|^2 / 2), value and gradient."""
    from geomloss import SamplesLoss

    g = torch.Generator().manual_seed(0)
    x = torch.rand(120, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(90, 2, generator=g, dtype=torch.float64) + 0.3
    a = torch.rand(120, generator=g, dtype=torch.float64) + 0.5
    b = torch.rand(90, generator=g, dtype=torch.float64) + 0.5
    a, b = a / a.sum(), b / b.sum()
    blur = 0.1
    loss = mt.SinkhornLoss(eps=2 * blur ** 2, tol=1e-10)
    v = loss(a, x, b, y)
    (gx,) = torch.autograd.grad(v, x)
    ref = mt.sinkhorn_divergence(x, y, a, b, eps=2 * blur ** 2, tol=1e-10)
    assert torch.allclose(v, ref, rtol=1e-12, atol=1e-14)
    xg = x.detach().clone().requires_grad_(True)
    vg = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=0.999, debias=True)(a, xg, b, y)
    (ggx,) = torch.autograd.grad(vg, xg)
    assert float(v) / 2 == pytest.approx(float(vg), rel=2e-3)
    assert torch.allclose(gx / 2, ggx, atol=2e-3 * float(ggx.abs().max()))
    plain = mt.SinkhornLoss(eps=0.05, debias=False)(x, y)
    assert torch.allclose(plain, mt.sinkhorn(x, y, eps=0.05))
    xb, yb = torch.rand(3, 40, 2, generator=g, dtype=torch.float64), torch.rand(3, 30, 2, generator=g,
                                                                              dtype=torch.float64)
    per = mt.SinkhornLoss(eps=0.05, reduction="none")(xb, yb)
    assert per.shape == (3,)
    assert torch.allclose(mt.SinkhornLoss(eps=0.05)(xb, yb), per.mean())
    assert torch.allclose(mt.SinkhornLoss(eps=0.05, reduction="sum")(xb, yb), per.sum())
    with pytest.raises(TypeError, match="call with \\(x, y\\) or \\(a, x, b, y\\)"):
        loss(x)
    with pytest.raises(ValueError, match="reduction"):
        mt.SinkhornLoss(eps=0.1, reduction="max")
    with pytest.raises(ValueError, match="eps"):
        mt.SinkhornLoss(eps=-1.0)


@pytest.mark.parametrize("which", ["sinkhorn", "divergence", "monge_gap"])
def test_second_derivatives_raise_instead_of_being_dropped(which):
    """With create_graph the first-order gradient is right, and differentiating it again raises
    (it used to come back as a constant: a silently missing second-order term)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(30, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(25, 2, generator=g, dtype=torch.float64)
    f = {"sinkhorn": lambda x: mt.sinkhorn(x, y, eps=0.1),
         "divergence": lambda x: mt.sinkhorn_divergence(x, y, eps=0.1),
         "monge_gap": lambda x: mt.monge_gap(x, 2.0 * x + 1.0)}[which]
    (g1,) = torch.autograd.grad(f(x), x)
    (g2,) = torch.autograd.grad(f(x), x, create_graph=True)
    assert torch.allclose(g1, g2)
    with pytest.raises(RuntimeError, match="second derivatives are not implemented"):
        (g2 ** 2).sum().backward()


@pytest.mark.parametrize("which", ["sinkhorn", "divergence", "divergence_batched", "monge_gap"])
def test_torch_func_grad_and_vjp_match_backward(which):
    """The autograd Functions use setup_context, so torch.func.grad and torch.func.vjp work and
    give .backward()'s gradients."""
    g = torch.Generator().manual_seed(2)
    shape = (2, 30, 2) if which.endswith("batched") else (30, 2)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = torch.rand(*shape[:-2], 25, 2, generator=g, dtype=torch.float64)
    f = {"sinkhorn": lambda x, y: mt.sinkhorn(x, y, eps=0.1),
         "divergence": lambda x, y: mt.sinkhorn_divergence(x, y, eps=0.1),
         "divergence_batched": lambda x, y: mt.sinkhorn_divergence(x, y, eps=0.1).sum(),
         "monge_gap": lambda x, y: mt.monge_gap(x, 2.0 * x + y[:1])}[which]
    gx, gy = torch.func.grad(f, argnums=(0, 1))(x, y)
    xr, yr = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    f(xr, yr).backward()
    assert torch.allclose(gx, xr.grad, rtol=1e-10, atol=1e-12)
    assert torch.allclose(gy, yr.grad, rtol=1e-10, atol=1e-12)
    _, vjp = torch.func.vjp(lambda x: f(x, y), x)
    (vx,) = vjp(torch.tensor(3.0, dtype=torch.float64))
    assert torch.allclose(vx, 3.0 * gx, rtol=1e-10, atol=1e-12)


def test_torch_func_jacrev_matches_grad():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(20, 2, generator=g, dtype=torch.float64)
    y = torch.rand(15, 2, generator=g, dtype=torch.float64)
    f = lambda x: mt.sinkhorn_divergence(x, y, eps=0.1)  # noqa: E731
    assert torch.allclose(torch.func.jacrev(f)(x), torch.func.grad(f)(x), rtol=1e-12, atol=1e-14)
