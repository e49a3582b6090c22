"""ICNN baselines (W2GN, min-max dual): convexity, closed-form gradient, known-map recovery, bad input.

Fits run with threads=1: on a shared 2-core machine torch's two intra-op threads made a training
step 10x slower than one thread.
"""
import copy
import functools
import importlib
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")   # torch is in the test extra; nothing is skipped there


def _load_icnn():
    # python/monge/experiments/maps.py (the Monge-gap experiment) is still a module, so the
    # maps/ folder is not a package yet; load icnn.py from its path until the two are merged.
    try:
        return importlib.import_module("monge.experiments.maps.icnn")
    except ImportError:
        path = (pathlib.Path(__file__).resolve().parents[1]
                / "python" / "monge" / "experiments" / "maps" / "icnn.py")
        spec = importlib.util.spec_from_file_location("_monge_icnn_baselines", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod


icnn = _load_icnn()

D = 2
A = np.array([[1.5, 0.5], [0.5, 1.0]], np.float32)       # SPD: x -> A x + b is the OT map
B = np.array([1.0, -0.5], np.float32)


def sample_source(n, rng):
    return rng.standard_normal((n, D), dtype=np.float32)


def sample_target(n, rng):
    return rng.standard_normal((n, D), dtype=np.float32) @ A + B


def l2_uvp(fitted, n=4000):
    X = np.random.default_rng(123).standard_normal((n, D)).astype(np.float32)
    T = X @ A + B
    return 100.0 * ((fitted.transform(X) - T) ** 2).sum(1).mean() / np.trace(A @ A)


@functools.lru_cache(maxsize=None)
def _trained_psi_cached(dim):
    rng = np.random.default_rng(0)
    M = rng.standard_normal((dim, dim)).astype(np.float32)

    def sy(n, r):
        return np.tanh(r.standard_normal((n, dim), dtype=np.float32) @ M) * 3

    def sx(n, r):
        return r.standard_normal((n, dim), dtype=np.float32)

    fit = icnn.fit_w2gn(sx, sy, dim, n_iter=30, batch_size=64, lr=1e-2, pretrain=None,
                        threads=1, hidden=[16, 16, 8], rank=2, strong_convexity=0.0)
    return fit.psi


def _trained_psi(dim=3):
    return copy.deepcopy(_trained_psi_cached(dim))


def test_network_is_convex_after_training():
    psi = _trained_psi().double()
    for W in psi.hidden_weights:
        assert (W >= 0).all()
    assert (psi.final_weight >= 0).all()
    g = torch.Generator().manual_seed(1)
    a = 3 * torch.randn(2000, 3, generator=g, dtype=torch.float64)
    b = 3 * torch.randn(2000, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for t in (0.25, 0.5, 0.75):
            lhs = psi((1 - t) * a + t * b)
            rhs = (1 - t) * psi(a) + t * psi(b)
            assert (lhs <= rhs + 1e-9 * (1 + rhs.abs())).all()
    for x in a[:5]:
        Hs = torch.autograd.functional.hessian(lambda v: psi(v[None])[0], x)
        assert torch.linalg.eigvalsh(Hs).min() >= -1e-9


def test_push_equals_finite_difference_gradient():
    psi = _trained_psi().double()
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        g = psi.push(x)
        h = 1e-6
        fd = torch.stack([(psi(x + h * e) - psi(x - h * e)) / (2 * h)
                          for e in torch.eye(3, dtype=torch.float64)], dim=1)
    np.testing.assert_allclose(g.numpy(), fd.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g.numpy(), psi.push_autograd(x).numpy(), rtol=1e-12, atol=1e-12)
    # second order: the closed-form push is differentiated correctly by autograd (parameters)
    params = list(psi.parameters())
    g1 = torch.autograd.grad((psi.push(x) ** 2).sum(), params)
    g2 = torch.autograd.grad((psi.push_autograd(x, create_graph=True) ** 2).sum(), params)
    for u, v in zip(g1, g2):
        np.testing.assert_allclose(u.numpy(), v.numpy(), rtol=1e-9, atol=1e-9)


def test_w2gn_recovers_affine_map():
    fit = icnn.fit_w2gn(sample_source, sample_target, D, n_iter=300, seed=0, threads=1)
    assert fit.n_iter_ == fit.n_conj_steps_ == 300 and len(fit.history_) == 300
    assert fit.n_push_ == 1200 and fit.fit_time_ > 0
    # measured 0.042% (0.69% at 200 steps); the identity map scores 53%
    assert l2_uvp(fit) < 1.0


def test_mm_recovers_affine_map_from_fixed_samples():
    # the fixed-sample regime: minibatches drawn from 2048 points of each side
    r = np.random.default_rng(7)
    Xf, Yf = sample_source(2048, r), sample_target(2048, r)

    def sx(n, rng):
        return Xf[rng.integers(0, len(Xf), n)]

    def sy(n, rng):
        return Yf[rng.integers(0, len(Yf), n)]

    fit = icnn.fit_mm(sx, sy, D, n_iter=150, inner_iter=5, seed=0, threads=1)
    assert fit.n_iter_ == 150 and fit.n_conj_steps_ == 750 and fit.n_push_ == 900
    assert l2_uvp(fit) < 2.0          # measured 0.60%


def test_seeded_fits_are_deterministic():
    kw = dict(n_iter=15, batch_size=64, seed=3, threads=1, pretrain=None)
    a = icnn.fit_w2gn(sample_source, sample_target, D, **kw)
    b = icnn.fit_w2gn(sample_source, sample_target, D, **kw)
    np.testing.assert_array_equal(a.history_, b.history_)
    c = icnn.fit_mm(sample_source, sample_target, D, inner_iter=2, **kw)
    d = icnn.fit_mm(sample_source, sample_target, D, inner_iter=2, **kw)
    np.testing.assert_array_equal(c.history_, d.history_)
    X = sample_source(10, np.random.default_rng(0))
    np.testing.assert_array_equal(a.transform(X), b.transform(X))


def test_time_limit_stops_early():
    fit = icnn.fit_w2gn(sample_source, sample_target, D, n_iter=10 ** 6, time_limit=0.3,
                        pretrain=None, threads=1)
    assert 0 < fit.n_iter_ < 10 ** 6 and len(fit.history_) == fit.n_iter_


@pytest.mark.parametrize("fitter", ["fit_w2gn", "fit_mm"])
def test_bad_input_names_the_argument(fitter):
    fit = getattr(icnn, fitter)
    kw = dict(n_iter=1, batch_size=8, pretrain=None, threads=1)
    with pytest.raises(TypeError, match="sample_x"):
        fit(np.zeros((8, D), np.float32), sample_target, D, **kw)
    with pytest.raises(TypeError, match="sample_y"):
        fit(sample_source, "not callable", D, **kw)
    with pytest.raises(ValueError, match="sample_y"):       # wrong dimension returned
        fit(sample_source, lambda n, rng: np.zeros((n, D + 1), np.float32), D, **kw)
    with pytest.raises(ValueError, match="sample_x"):       # wrong number of rows
        fit(lambda n, rng: np.zeros((n + 1, D), np.float32), sample_target, D, **kw)
    with pytest.raises(TypeError, match="sample_x"):        # not an array
        fit(lambda n, rng: [[0.0] * D] * n, sample_target, D, **kw)
    with pytest.raises(ValueError, match="sample_x"):       # NaN
        fit(lambda n, rng: np.full((n, D), np.nan, np.float32), sample_target, D, **kw)
    with pytest.raises(ValueError, match="n_iter"):
        fit(sample_source, sample_target, D, **{**kw, "n_iter": -1})
    with pytest.raises(ValueError, match="batch_size"):
        fit(sample_source, sample_target, D, **{**kw, "batch_size": 0})
    with pytest.raises(TypeError, match="dim"):
        fit(sample_source, sample_target, 2.0, **kw)
    with pytest.raises(ValueError, match="lr"):
        fit(sample_source, sample_target, D, **{**kw, "lr": -1e-3})
    extra = {"cycle_weight": -1.0} if fitter == "fit_w2gn" else {"inner_iter": 0}
    with pytest.raises(ValueError, match=next(iter(extra))):
        fit(sample_source, sample_target, D, **kw, **extra)
    fitted = fit(sample_source, sample_target, D, **kw)
    with pytest.raises(ValueError, match="X"):
        fitted.transform(np.zeros((5, D + 1), np.float32))
    with pytest.raises(TypeError, match="X"):
        fitted.transform("abc")


def _benchmark_formula(sd, x, sc=1e-2):
    # Korotin et al.'s DenseICNN, written from the paper's description on the raw tensors:
    # z_1 = q_1(x); z_k = celu(C_k z_{k-1} + q_k(x)); psi = w . z_L + sc/2 |x|^2
    def q(k):
        Q = sd[f"quadratic_layers.{k}.quadratic_decomposed"]              # (d, R, h)
        quad = torch.einsum("nd,drh->nrh", x, Q).pow(2).sum(1)
        return quad + x @ sd[f"quadratic_layers.{k}.weight"].t() + sd[f"quadratic_layers.{k}.bias"]
    z = q(0)
    k = 1
    while f"convex_layers.{k - 1}.weight" in sd:
        z = torch.celu(z @ sd[f"convex_layers.{k - 1}.weight"].t() + q(k))
        k += 1
    return z @ sd["final_layer.weight"][0] + 0.5 * sc * (x * x).sum(1)


def _random_benchmark_state_dict(dim, rank, hidden, gen):
    sd = {}
    for k, h in enumerate(hidden):
        sd[f"quadratic_layers.{k}.quadratic_decomposed"] = torch.randn(dim, rank, h, generator=gen)
        sd[f"quadratic_layers.{k}.weight"] = torch.randn(h, dim, generator=gen)
        sd[f"quadratic_layers.{k}.bias"] = torch.randn(h, generator=gen)
    for k, (a, b) in enumerate(zip(hidden[:-1], hidden[1:])):
        sd[f"convex_layers.{k}.weight"] = torch.rand(b, a, generator=gen) * 0.1
    sd["final_layer.weight"] = torch.rand(1, hidden[-1], generator=gen)
    return sd


def test_loads_benchmark_layout():
    gen = torch.Generator().manual_seed(5)
    sd = _random_benchmark_state_dict(4, 2, [8, 6, 5], gen)
    net = icnn.DenseICNN.from_benchmark_state_dict(sd)
    assert (net.dim, net.rank, net.hidden) == (4, 2, [8, 6, 5])
    x = torch.randn(30, 4, generator=gen)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), _benchmark_formula(sd, x).numpy(), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="state_dict"):
        icnn.DenseICNN.from_benchmark_state_dict({"foo": torch.zeros(1)})
