"""monge.maps.nn: activations, MLP backward, optimizers and schedules against finite differences and
PyTorch; a small fit; save / load; argument errors."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monge.maps import nn



@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids waiting on busy cores (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


ACTS = ["relu", "leaky_relu", "gelu", "silu", "tanh", "identity"]


def torch_act(name):
    return {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
            "gelu": lambda t: F.gelu(t, approximate="none"), "silu": F.silu, "tanh": torch.tanh,
            "identity": lambda t: t}[name]


# ---------------------------------------------------------------- erf and activations

def test_erf_erfc_match_math():
    x = np.concatenate([np.linspace(-27, 27, 20001), np.geomspace(1e-300, 1e3, 300),
                        -np.geomspace(1e-300, 1e3, 300), [0.0, 0.46875, -0.46875, 4.0, -4.0]])
    ref_erf = np.array([math.erf(v) for v in x])
    ref_erfc = np.array([math.erfc(v) for v in x])
    np.testing.assert_allclose(nn.erf(x), ref_erf, rtol=2e-15, atol=0)
    normal = ref_erfc > 1e-300
    np.testing.assert_allclose(nn.erfc(x)[normal], ref_erfc[normal], rtol=5e-15, atol=0)
    np.testing.assert_array_equal(nn.erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
    np.testing.assert_array_equal(nn.erfc(np.array([np.inf, -np.inf, 1e300])), [0.0, 2.0, 0.0])
    assert np.isnan(nn.erf(np.array([np.nan]))[0])
    assert nn.erf(np.float32(0.3)).dtype == np.float32


@pytest.mark.parametrize("name", ACTS)
def test_activation_derivative_finite_differences(name):
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, 400)
    x = x[np.abs(x) > 1e-3]                       # away from the kinks of relu / leaky_relu
    act = nn.activation(name)
    h = 1e-6
    fd = (act(x + h) - act(x - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(x), fd, rtol=0, atol=1e-7)


@pytest.mark.parametrize("name", ACTS)
def test_activation_value_and_derivative_match_torch(name):
    x = np.concatenate([np.linspace(-12, 12, 4001), [-1e4, -800.0, -40.0, -39.0, 0.0, 37.5, 1e4]])
    t = torch.tensor(x, requires_grad=True)
    y = torch_act(name)(t)
    y.sum().backward()
    act = nn.activation(name)
    np.testing.assert_allclose(act(x), y.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(act.derivative(x), t.grad.numpy(), rtol=0, atol=1e-12)


def test_gelu_exact_form_wide_range():
    x = np.concatenate([np.linspace(-60, 60, 120001), np.geomspace(1e-12, 1e6, 200),
                        -np.geomspace(1e-12, 1e6, 200)])
    ref = F.gelu(torch.tensor(x), approximate="none").numpy()
    np.testing.assert_allclose(nn.activation("gelu")(x), ref, rtol=0, atol=1e-12)
    # and against x Phi(x) with math.erfc, relative in the left tail
    xs = np.linspace(-37, 5, 2001)
    ref2 = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xs])
    np.testing.assert_allclose(nn.activation("gelu")(xs), ref2, rtol=1e-12, atol=1e-300)


def test_float32_gelu_cdf_within_float32_resolution():
    # float32 GELU uses the one-exp approximation of Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7
    # on erf): Phi must stay within a few float32 ulps of 1 over the whole line
    x = np.concatenate([np.linspace(-40, 40, 80001), [-1e4, 1e4, 0.0]])
    ref = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    got = nn._norm_cdf_f32(x.astype(np.float32))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=0, atol=3e-7)
    act = nn.activation("gelu")
    z = x[np.abs(x) < 12].astype(np.float32)
    np.testing.assert_allclose(act.derivative(z), act.derivative(z.astype(np.float64)), rtol=0, atol=1e-6)


def test_activations_float32_and_stability():
    x = np.linspace(-100, 100, 1001).astype(np.float32)
    for name in ACTS:
        act = nn.activation(name)
        y, d = act(x), act.derivative(x)
        assert y.dtype == np.float32 and d.dtype == np.float32
        assert np.isfinite(y).all() and np.isfinite(d).all()
        ref = nn.activation(name)(x.astype(np.float64))
        np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    big = np.array([-800.0, 800.0])
    np.testing.assert_allclose(nn.activation("silu")(big), [0.0, 800.0], atol=0)
    slope = nn.activation("leaky_relu", negative_slope=0.2)
    np.testing.assert_allclose(slope(np.array([-1.0, 2.0])), [-0.2, 2.0])


# ---------------------------------------------------------------- MLP gradients

def loss_and_grads(model, x, g):
    y = model.forward(x)
    grads, gx = model.backward(g)
    return float(np.sum(g * y)), grads, gx


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("name", ACTS)
def test_mlp_backward_finite_differences(name, residual):
    rng = np.random.default_rng(7)
    d = 3
    model = nn.MLP(d, hidden=(5, 4), activation=name, residual=residual, seed=3,
                   init="xavier", last_scale=1.0)
    x = rng.standard_normal((6, d))
    g = rng.standard_normal((6, d))
    _, grads, gx = loss_and_grads(model, x, g)

    def f_flat(v):
        model.set_flat(v)
        return float(np.sum(g * model(x)))

    theta = model.get_flat()
    h = 1e-6
    fd = np.empty_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        fd[i] = (f_flat(theta + e) - f_flat(theta - e)) / (2 * h)
    model.set_flat(theta)
    analytic = np.concatenate([gr.ravel() for gr in grads])
    np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-7)

    fdx = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        fdx[idx] = (np.sum(g * model(x + e)) - np.sum(g * model(x - e))) / (2 * h)
    np.testing.assert_allclose(gx, fdx, rtol=1e-6, atol=1e-7)


def torch_forward(model, x, name):
    """The same map in PyTorch, from the MLP's weights (W is (fan_in, fan_out) in monge)."""
    ps = [torch.tensor(p, requires_grad=True) for p in model.params]
    xt = torch.tensor(x, requires_grad=True)
    h = xt
    act = torch_act(name)
    n = len(ps) // 2
    for layer in range(n):
        h = h @ ps[2 * layer] + ps[2 * layer + 1]
        if layer < n - 1:
            h = act(h)
    if model.residual:
        h = h + xt
    return h, ps, xt


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("name", ACTS)
def test_mlp_matches_torch_autograd(name, residual):
    rng = np.random.default_rng(11)
    d = 4
    model = nn.MLP(d, hidden=(16, 8, 12), activation=name, residual=residual, seed=5,
                   last_scale=0.5)
    x = 2 * rng.standard_normal((32, d))
    g = rng.standard_normal((32, d))
    y = model.forward(x)
    grads, gx = model.backward(g)
    yt, ps, xt = torch_forward(model, x, name)
    (yt * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(model(x), y)
    for ours, p in zip(grads, ps):
        assert ours.shape == p.shape
        np.testing.assert_allclose(ours, p.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_mlp_structure_init_and_single_point():
    m = nn.MLP(3, hidden=(8, 8), out_dim=2, seed=0)
    assert [p.shape for p in m.params] == [(3, 8), (8,), (8, 8), (8,), (8, 2), (2,)]
    assert m.param_names == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert m.n_params == 3 * 8 + 8 + 64 + 8 + 16 + 2
    assert all(p.dtype == np.float64 for p in m.params)
    np.testing.assert_array_equal(nn.MLP(3, (8, 8), 2, seed=0).get_flat(), m.get_flat())
    assert not np.array_equal(nn.MLP(3, (8, 8), 2, seed=1).get_flat(), m.get_flat())
    # residual maps start near the identity; zeros_last exactly at it
    x = np.random.default_rng(0).standard_normal((10, 3))
    r = nn.MLP(3, residual=True)
    assert 0 < np.abs(r(x) - x).max() < 1e-2
    np.testing.assert_array_equal(nn.MLP(3, residual=True, init="zeros_last")(x), x)
    # a single point (in_dim,) gives (out_dim,) and its gradients
    y1 = m.forward(x[0])
    assert y1.shape == (2,)
    np.testing.assert_allclose(y1, m(x[:1])[0], rtol=1e-15)
    grads, gx = m.backward(np.ones(2))
    assert gx.shape == (3,) and grads[0].shape == (3, 8)
    # an affine map when hidden=()
    a = nn.MLP(3, hidden=(), out_dim=2)
    np.testing.assert_allclose(a(x), x @ a.params[0] + a.params[1])


def test_mlp_float32():
    rng = np.random.default_rng(2)
    m64 = nn.MLP(3, hidden=(16, 16), residual=True, last_scale=1.0, seed=4)
    m32 = nn.MLP(3, hidden=(16, 16), residual=True, last_scale=1.0, seed=4, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in m32.params)
    x = rng.standard_normal((20, 3))
    g = rng.standard_normal((20, 3))
    y32 = m32.forward(x)
    assert y32.dtype == np.float32
    grads32, gx32 = m32.backward(g)
    assert gx32.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads32)
    y64 = m64.forward(x)
    grads64, gx64 = m64.backward(g)
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx32, gx64, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads32, grads64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    opt = nn.Adam(m32.params, lr=1e-2)
    opt.step(grads32)
    assert all(p.dtype == np.float32 for p in m32.params)


# ---------------------------------------------------------------- optimizers

def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (4,), (4, 2)]
    params = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(6)]
    return params, grads


def _step_both(opt, topt, ours, tp, grads):
    """One step of our optimizer and torch's on the same gradients; the parameters must agree."""
    for t, g in zip(tp, grads):
        t.grad = torch.tensor(g)
    topt.step()
    opt.step(grads)
    for a, t in zip(ours, tp):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw", "sgd", "sgd_momentum",
                                  "sgd_nesterov"])
def test_optimizers_match_torch(kind):
    params, grad_seq = make_problem()
    ours = [p.copy() for p in params]
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    if kind == "adam":
        opt, topt = nn.Adam(ours, lr=1e-2), torch.optim.Adam(tp, lr=1e-2)
    elif kind == "adam_l2":
        opt = nn.Adam(ours, lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
        topt = torch.optim.Adam(tp, lr=3e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    elif kind == "adamw":
        opt = nn.AdamW(ours, lr=2e-2, weight_decay=0.3)
        topt = torch.optim.AdamW(tp, lr=2e-2, weight_decay=0.3)
    elif kind == "sgd":
        opt, topt = nn.SGD(ours, lr=0.1), torch.optim.SGD(tp, lr=0.1)
    elif kind == "sgd_momentum":
        opt = nn.SGD(ours, lr=0.1, momentum=0.9, weight_decay=0.01)
        topt = torch.optim.SGD(tp, lr=0.1, momentum=0.9, weight_decay=0.01)
    else:
        opt = nn.SGD(ours, lr=0.1, momentum=0.5, nesterov=True)
        topt = torch.optim.SGD(tp, lr=0.1, momentum=0.5, nesterov=True)
    for step, grads in enumerate(grad_seq):
        if step == 3:                             # lr may change between steps
            opt.lr = opt.lr * 0.5
            for group in topt.param_groups:
                group["lr"] = group["lr"] * 0.5
        _step_both(opt, topt, ours, tp, grads)
    assert opt.t == len(grad_seq)
    # updates are in place: the optimizer holds the caller's arrays
    assert all(a is b for a, b in zip(opt.params, ours))


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd_momentum"])
def test_lr_scale_matches_torch_param_groups(kind):
    """lr_scale k_i is torch's per-group lr = k_i * lr (0 freezes a parameter)."""
    params, grad_seq = make_problem()
    ours = [p.copy() for p in params]
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    scale = [0.25, 0.0, 3.0]
    groups = [{"params": [t], "lr": 1e-2 * k} for t, k in zip(tp, scale)]
    if kind == "adam":
        opt, topt = nn.Adam(ours, lr=1e-2, lr_scale=scale), torch.optim.Adam(groups, lr=1e-2)
    elif kind == "adamw":
        opt = nn.AdamW(ours, lr=1e-2, weight_decay=0.3, lr_scale=scale)
        topt = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.3)
    else:
        opt = nn.SGD(ours, lr=1e-2, momentum=0.9, lr_scale=scale)
        topt = torch.optim.SGD(groups, lr=1e-2, momentum=0.9)
    for grads in grad_seq:
        _step_both(opt, topt, ours, tp, grads)
    np.testing.assert_array_equal(ours[1], params[1])           # scale 0: frozen


def test_lr_scale_bad_input():
    p = [np.zeros(2), np.zeros(3)]
    with pytest.raises(ValueError, match="lr_scale: expected 2 values"):
        nn.Adam(p, lr_scale=[1.0])
    with pytest.raises(ValueError, match=r"lr_scale\[1\]: must be >= 0"):
        nn.SGD(p, lr=0.1, lr_scale=[1.0, -1.0])
    with pytest.raises(TypeError, match="lr_scale: expected a sequence"):
        nn.Adam(p, lr_scale=0.5)


def test_adamw_decay_is_decoupled():
    p = [np.array([2.0, -3.0])]
    opt = nn.AdamW(p, lr=0.1, weight_decay=0.5)
    opt.step([np.zeros(2)])                        # zero gradient: pure decay
    np.testing.assert_allclose(p[0], [2.0 * 0.95, -3.0 * 0.95], rtol=1e-15)


def test_clip_grad_norm():
    grads = [np.array([3.0, 0.0]), np.array([[4.0]])]
    clipped, norm = nn.clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(5.0, rel=1e-15)
    np.testing.assert_allclose(clipped[0], [0.6, 0.0], rtol=1e-15)
    np.testing.assert_allclose(clipped[1], [[0.8]], rtol=1e-15)
    assert math.sqrt(sum(np.sum(g ** 2) for g in clipped)) == pytest.approx(1.0, rel=1e-15)
    np.testing.assert_array_equal(grads[0], [3.0, 0.0])         # inputs untouched
    same, norm2 = nn.clip_grad_norm(grads, 10.0)
    assert norm2 == pytest.approx(5.0)
    np.testing.assert_array_equal(same[1], grads[1])
    tg = [torch.tensor(g) for g in grads]
    ps = [torch.zeros_like(t, requires_grad=True) for t in tg]
    for p, t in zip(ps, tg):
        p.grad = t.clone()
    tnorm = torch.nn.utils.clip_grad_norm_(ps, 2.0)
    assert float(tnorm) == pytest.approx(nn.clip_grad_norm(grads, 2.0)[1], rel=1e-14)


# ---------------------------------------------------------------- schedules

def test_schedules():
    c = nn.constant(0.1)
    assert c(0) == c(10 ** 6) == 0.1
    s = nn.cosine(1.0, 100, final_lr=0.1)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.55, rel=1e-15)
    assert s(100) == pytest.approx(0.1, rel=1e-15) and s(500) == pytest.approx(0.1, rel=1e-15)
    assert s(25) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-15)
    assert all(s(i) >= s(i + 1) for i in range(120))
    w = nn.warmup(nn.constant(0.2), 4)
    assert [w(i) for i in range(6)] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.2, 0.2])
    m = nn.make_schedule("cosine", 1e-3, total_steps=110, warmup_steps=10)
    assert m(0) == pytest.approx(1e-4) and m(9) == pytest.approx(1e-3)
    assert m(10) == pytest.approx(1e-3) and m(60) == pytest.approx(5e-4)
    assert m(110) == pytest.approx(0.0, abs=1e-18)
    assert nn.make_schedule("constant", 0.5, 10)(7) == 0.5
    assert nn.make_schedule("cosine", 1.0, 10)(5) == pytest.approx(0.5)


# ---------------------------------------------------------------- a small fit

def test_residual_mlp_learns_affine_map():
    rng = np.random.default_rng(0)
    A = np.array([[1.5, 0.4], [-0.3, 0.7]])
    b = np.array([0.5, -1.0])
    x = rng.standard_normal((128, 2))
    y = x @ A.T + b
    model = nn.MLP(2, hidden=(32, 32), activation="gelu", residual=True, seed=0)
    opt = nn.Adam(model.params, lr=1e-2)
    sched = nn.make_schedule("cosine", 1e-2, total_steps=300, warmup_steps=10)
    losses = []
    for step in range(300):
        r = model.forward(x) - y
        losses.append(np.mean(np.sum(r * r, axis=1)))
        grads, _ = model.backward(2 * r / len(x))
        grads, _ = nn.clip_grad_norm(grads, 10.0)
        opt.lr = sched(step)
        opt.step(grads)
    final = np.mean(np.sum((model(x) - y) ** 2, axis=1))
    assert losses[0] > 0.5
    assert final < 1e-3 * losses[0] and final < 2e-3
    x_new = rng.standard_normal((64, 2))
    assert np.mean(np.sum((model(x_new) - (x_new @ A.T + b)) ** 2, axis=1)) < 1e-2


# ---------------------------------------------------------------- save / load

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_save_load_round_trip(tmp_path, dtype):
    rng = np.random.default_rng(3)
    model = nn.MLP(3, hidden=(7, 5), activation="leaky_relu", negative_slope=0.1,
                   residual=True, seed=9, dtype=dtype, last_scale=0.3)
    model.set_flat(model.get_flat() + 0.01 * rng.standard_normal(model.n_params))
    arrays = model.to_arrays()
    json.loads(str(arrays["__config__"]))           # JSON-serialisable config
    path = tmp_path / "map.npz"
    np.savez(path, **arrays)
    with np.load(path, allow_pickle=False) as data:
        loaded = nn.MLP.from_arrays(data)
    x = rng.standard_normal((11, 3))
    np.testing.assert_array_equal(loaded(x), model(x))
    assert loaded.config == model.config
    assert loaded.params[0].dtype == dtype
    model.save(tmp_path / "m2.npz")
    np.testing.assert_array_equal(nn.MLP.load(tmp_path / "m2.npz")(x), model(x))
    # get_flat / set_flat round trip writes into the existing arrays
    other = nn.MLP(3, hidden=(7, 5), residual=True, seed=1, dtype=dtype,
                   activation="leaky_relu", negative_slope=0.1)
    ids = [id(p) for p in other.params]
    other.set_flat(model.get_flat())
    assert [id(p) for p in other.params] == ids
    np.testing.assert_array_equal(other(x), model(x))


# ---------------------------------------------------------------- errors

def test_bad_inputs():
    with pytest.raises(ValueError, match="activation"):
        nn.MLP(2, activation="swish")
    with pytest.raises(TypeError, match="activation"):
        nn.activation(3)
    with pytest.raises(ValueError, match="out_dim"):
        nn.MLP(2, out_dim=3, residual=True)
    with pytest.raises(ValueError, match="in_dim"):
        nn.MLP(0)
    with pytest.raises(TypeError, match="in_dim"):
        nn.MLP(2.0)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        nn.MLP(2, hidden=(4, 0))
    with pytest.raises(ValueError, match="init"):
        nn.MLP(2, init="orthogonal")
    with pytest.raises(ValueError, match="dtype"):
        nn.MLP(2, dtype=np.int64)
    with pytest.raises(ValueError, match="last_scale"):
        nn.MLP(2, last_scale=-1)
    m = nn.MLP(2, hidden=(4,))
    with pytest.raises(RuntimeError, match="forward"):
        m.backward(np.ones((3, 2)))
    with pytest.raises(ValueError, match="x"):
        m(np.ones((3, 3)))
    with pytest.raises(ValueError, match="x"):
        m.forward(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="x"):
        m(np.ones((2, 2, 2)))
    with pytest.raises(TypeError, match="x"):
        m(torch.ones(3, 2))
    with pytest.raises(TypeError, match="x"):
        m(np.array([["a", "b"]]))
    m.forward(np.ones((3, 2)))
    with pytest.raises(ValueError, match="grad_y"):
        m.backward(np.ones((4, 2)))
    with pytest.raises(ValueError, match="grad_y"):
        m.backward(np.full((3, 2), np.inf))
    with pytest.raises(ValueError, match="flat"):
        m.set_flat(np.zeros(m.n_params + 1))
    with pytest.raises(ValueError, match="__config__"):
        nn.MLP.from_arrays({"W1": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="lr"):
        nn.Adam(m.params, lr=-1e-3)
    opt = nn.Adam(m.params)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.1
    with pytest.raises(TypeError, match="lr"):
        opt.lr = "big"
    with pytest.raises(ValueError, match="betas"):
        nn.Adam(m.params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="weight_decay"):
        nn.AdamW(m.params, weight_decay=-1)
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros_like(p) for p in m.params[:-1]])
    with pytest.raises(ValueError, match=r"grads\[0\]"):
        opt.step([np.zeros((3, 3))] + [np.zeros_like(p) for p in m.params[1:]])
    with pytest.raises(ValueError, match=r"grads\[1\]"):
        opt.step([np.zeros_like(p) for p in m.params[:1]] + [np.full(4, np.nan)]
                 + [np.zeros_like(p) for p in m.params[2:]])
    assert opt.t == 0                              # failed steps do not count
    with pytest.raises(TypeError, match="params"):
        nn.SGD(np.zeros(3), lr=0.1)
    with pytest.raises(ValueError, match="max_norm"):
        nn.clip_grad_norm([np.ones(2)], 0.0)
    with pytest.raises(ValueError, match="total_steps"):
        nn.cosine(1.0, 0)
    with pytest.raises(ValueError, match="step"):
        nn.cosine(1.0, 10)(-1)
    with pytest.raises(ValueError, match="name"):
        nn.make_schedule("linear", 1.0, 10)
    with pytest.raises(ValueError, match="warmup_steps"):
        nn.make_schedule("cosine", 1.0, 10, warmup_steps=10)
    with pytest.raises(TypeError, match="schedule"):
        nn.warmup(0.1, 5)


def test_affine_mlp_backward_matches_finite_differences_and_round_trips():
    from monge.maps.nn import AffineMLP

    rng = np.random.default_rng(0)
    T = AffineMLP(3, hidden=(5,), activation="tanh", seed=1, dtype=np.float64, last_scale=1.0)
    T.set_affine(A=rng.standard_normal((3, 3)), b=rng.standard_normal(3), m_in=rng.standard_normal(3),
                 s_in=rng.random(3) + 0.5, s_out=rng.random(3) + 0.5)
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    T.forward(x)
    grads, gx = T.backward(w)
    e = 1e-6
    for p, g in zip(T.params, grads):
        fd = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + e
            up = np.sum(w * T(x))
            p[idx] = old - e
            dn = np.sum(w * T(x))
            p[idx] = old
            fd[idx] = (up - dn) / (2 * e)
        np.testing.assert_allclose(g, fd, atol=1e-7)
    fdx = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += e
        xm[idx] -= e
        fdx[idx] = (np.sum(w * T(xp)) - np.sum(w * T(xm))) / (2 * e)
    np.testing.assert_allclose(gx, fdx, atol=1e-7)
    back = AffineMLP.from_arrays(T.to_arrays())
    np.testing.assert_array_equal(back(x), T(x))
    with pytest.raises(ValueError, match="A: expected shape \\(3, 3\\)"):
        T.set_affine(A=np.eye(2))
