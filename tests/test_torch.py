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
