"""MongeGapMap: fitting, the effect of the Monge gap, persistence, the estimator protocol, errors."""
import json

import numpy as np
import pytest

from monge.maps import datasets, metrics
from monge.maps import MongeGapMap


@pytest.fixture(scope="module")
def gaussian_fit():
    P = datasets.gaussian_pair(2, seed=0)
    X, Y = P.sample_source(1024, seed=0), P.sample_target(1024, seed=1)
    # from the identity: with init='bures' a Gaussian pair starts at its exact map
    est = MongeGapMap(hidden=(32, 32), reg=1.0, n_iter=400, batch_size=128, lr=3e-3, seed=0,
                      init="identity", verbose=False).fit(X, Y, X_val=P.sample_source(256, seed=5), true_map=P.map,
                                         )
    return P, est


def test_fit_recovers_the_brenier_map_of_gaussians(gaussian_fit):
    P, est = gaussian_fit
    xt = P.sample_source(2000, seed=7)
    uvp = metrics.l2_uvp(est.transform(xt), P.map(xt))
    assert uvp < 1.0, uvp


def test_history_and_validation(gaussian_fit):
    _, est = gaussian_fit
    h = est.history_
    # validations before the first step and every 100: X_val is the held-out set
    assert len(h["loss"]) == 400 and h["val_step"] == [-1, 99, 199, 299, 399]
    assert h["val_l2_uvp"][-1] < h["val_l2_uvp"][0]
    assert all(np.isfinite(h["gap"]))


def test_monge_gap_lowers_l2_uvp_against_plain_fitting():
    """The paper's claim on a map that fitting alone does not pin down (a sheared Gaussian)."""
    P = datasets.gaussian_pair(2, seed=3)
    X, Y = P.sample_source(1024, seed=0), P.sample_target(1024, seed=1)
    xt = P.sample_source(2000, seed=9)
    uvp = {}
    for reg in (0.0, 1.0):
        est = MongeGapMap(hidden=(32, 32), reg=reg, n_iter=300, batch_size=128, lr=3e-3, seed=1,
                          init="identity", verbose=False).fit(X, Y)
        uvp[reg] = metrics.l2_uvp(est.transform(xt), P.map(xt))
    assert uvp[1.0] < uvp[0.0], uvp


def test_save_load_round_trip(gaussian_fit, tmp_path):
    P, est = gaussian_fit
    est.save(tmp_path / "map.npz")
    back = MongeGapMap.load(tmp_path / "map.npz")
    x = P.sample_source(50, seed=3)
    np.testing.assert_array_equal(back.transform(x), est.transform(x))
    assert back.get_params() == est.get_params()
    assert back.history_["loss"] == est.history_["loss"]
    with np.load(tmp_path / "map.npz", allow_pickle=False) as z:  # no pickles inside
        json.loads(str(z["params"]))


def test_float32_fit_matches_float64_quality(gaussian_fit, tmp_path):
    P, est64 = gaussian_fit
    X, Y = P.sample_source(1024, seed=0), P.sample_target(1024, seed=1)
    est = MongeGapMap(**{**est64.get_params(), "dtype": "float32"}).fit(X, Y)
    x = P.sample_source(2000, seed=7)
    tx = est.transform(x)
    assert tx.dtype == np.float32 and est.model_.params[0].dtype == np.float32
    u32 = metrics.l2_uvp(tx.astype(np.float64), P.map(x))
    u64 = metrics.l2_uvp(est64.transform(x), P.map(x))
    assert u32 < 1.5 * u64 + 0.5  # same training, float32 arithmetic: same quality
    est.save(tmp_path / "m32.npz")
    back = MongeGapMap.load(tmp_path / "m32.npz")
    assert back.dtype == "float32"
    np.testing.assert_array_equal(back.transform(x), tx)


def test_estimator_protocol():
    est = MongeGapMap(reg=0.5)
    assert est.get_params()["reg"] == 0.5
    est.set_params(reg=2.0, n_iter=10)
    assert est.reg == 2.0 and est.n_iter == 10
    with pytest.raises(ValueError, match="colour: not a parameter"):
        est.set_params(colour="red")
    with pytest.raises(RuntimeError, match="call fit before"):
        est.transform(np.zeros((3, 2)))


def test_reg_auto_grows_with_the_dimension():
    from monge.maps.estimator import auto_reg

    assert [auto_reg(d) for d in (2, 4, 8, 16, 24, 64)] == [0.0625, 0.25, 1.0, 2.0, 3.0, 3.0]
    rng = np.random.default_rng(0)
    for d in (2, 32):
        X = rng.standard_normal((64, d))
        est = MongeGapMap(n_iter=2, verbose=False, validation_fraction=0.0).fit(X, X + 1.0)
        assert est.reg_ == min(3.0, d / 8, (d / 8) ** 2) and est.history_["lambda"][0] == est.reg_
    assert MongeGapMap(n_iter=1, reg=0.7, verbose=False).fit(X, X).reg_ == 0.7


def test_reg_schedules_and_elastic_cost():
    P = datasets.gaussian_pair(2, seed=0)
    X, Y = P.sample_source(256, seed=0), P.sample_target(256, seed=1)
    est = MongeGapMap(hidden=(16,), reg=("linear", 0.0, 1.0), n_iter=20, batch_size=64,
                      cost="elastic", lam=0.5, verbose=False).fit(X, Y)
    assert est.history_["lambda"][0] == 0.0 and est.history_["lambda"][-1] == 1.0
    est = MongeGapMap(hidden=(16,), reg=lambda step: 0.1 * step, n_iter=5, batch_size=64,
                      verbose=False).fit(X, Y)
    assert est.history_["lambda"] == [0.0, 0.1, 0.2, 0.30000000000000004, 0.4]


@pytest.mark.parametrize("kw,exc,text", [
    (dict(cost="manhattan"), ValueError, "cost: unknown value"),
    (dict(optimizer="lbfgs"), ValueError, "optimizer: unknown value"),
    (dict(n_iter=0), ValueError, "n_iter: must be >= 1"),
    (dict(lr=-1.0), ValueError, "lr: must be a positive number"),
    (dict(reg=-1.0), ValueError, "reg: must be a finite number >= 0"),
    (dict(reg=("cosine", 0, 1)), ValueError, "reg: a schedule tuple"),
    (dict(reg="large"), ValueError, "reg: expected 'auto'"),
    (dict(seed=1.5), TypeError, "seed: expected an integer"),
    (dict(dtype="float16"), ValueError, "dtype: unknown value"),
    (dict(blas_threads=0), ValueError, "blas_threads: must be >= 1"),
    (dict(affine_lr=-0.1), ValueError, "affine_lr: must be a finite number >= 0"),
    (dict(affine_lr="fast"), ValueError, "affine_lr: expected 'auto' or a number"),
    (dict(gap_debiased=1), TypeError, "gap_debiased: expected a bool"),
    (dict(standardize="no"), TypeError, "standardize: expected a bool"),
    (dict(fitting_loss="mse"), ValueError, "fitting_loss: unknown value"),
    (dict(fitting_loss="barycentric", plan_size=1), ValueError, "plan_size: must be >= 2"),
    (dict(fitting_loss="barycentric", plan_size="all"), ValueError, "plan_size: expected 'auto'"),
    (dict(fitting_loss="barycentric", plan_every=0), ValueError, "plan_every: must be >= 1"),
    (dict(fitting_loss="barycentric", plan_every="often"), ValueError, "plan_every: expected 'auto'"),
    (dict(label_noise=-0.1), ValueError, "label_noise"),
])
def test_bad_parameters(kw, exc, text):
    X = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(exc, match=text):
        MongeGapMap(**{**dict(n_iter=2, verbose=False), **kw}).fit(X, X)


def test_bad_data():
    X = np.random.default_rng(0).standard_normal((20, 2))
    est = MongeGapMap(n_iter=2, verbose=False)
    with pytest.raises(ValueError, match="X, Y: dimensions differ"):
        est.fit(X, np.zeros((20, 3)))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Y: contains NaN"):
        est.fit(X, bad)
    est.fit(X, X)
    with pytest.raises(ValueError, match="X: dimension 3, the map was fitted in 2"):
        est.transform(np.zeros((4, 3)))


@pytest.mark.optional
def test_torch_route_reaches_the_same_quality():
    from monge.maps import fit_torch_map

    P = datasets.gaussian_pair(2, seed=0)
    X, Y = P.sample_source(1024, seed=0), P.sample_target(1024, seed=1)
    model, hist = fit_torch_map(X, Y, hidden=(32, 32), reg=1.0, n_iter=400, batch_size=128,
                                lr=3e-3, seed=0)
    import torch

    xt = P.sample_source(2000, seed=7)
    with torch.no_grad():
        pred = model(torch.from_numpy(xt)).numpy()
    assert metrics.l2_uvp(pred, P.map(xt)) < 2.0 and hist["fit"][-1] < hist["fit"][0]


@pytest.mark.optional
def test_long_fits_show_progress(capsys):
    # fit_torch_map used to be silent for its whole run; both fitters now report on stderr and
    # MongeGapMap's bar stays when done
    from monge.maps import MongeGapMap, fit_torch_map

    X = np.random.default_rng(0).normal(size=(64, 2))
    fit_torch_map(X, X + 1.0, hidden=(8,), n_iter=20, batch_size=32)
    MongeGapMap(n_iter=20, batch_size=32, validation_fraction=0.0).fit(X, X + 1.0)
    err = capsys.readouterr().err
    assert "fit_torch_map" in err and "MongeGapMap.fit" in err and "20/20" in err
    fit_torch_map(X, X + 1.0, hidden=(8,), n_iter=5, batch_size=32, verbose=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ baselines and the new defaults


def test_linear_map_is_the_closed_form_gaussian_map():
    """Bures map from sample moments against scipy's matrix square roots, and the known map."""
    from scipy.linalg import sqrtm

    from monge.maps import LinearMap, bures_map

    P = datasets.gaussian_pair(3, seed=2)
    X, Y = P.sample_source(200_000, seed=0), P.sample_target(200_000, seed=1)
    L = LinearMap().fit(X, Y)
    S1, S2 = np.cov(X.T), np.cov(Y.T)
    r = np.real(sqrtm(S1))
    A = np.linalg.inv(r) @ np.real(sqrtm(r @ S2 @ r)) @ np.linalg.inv(r)
    np.testing.assert_allclose(L.A_, A, rtol=1e-8, atol=1e-10)
    xt = P.sample_source(2000, seed=3)
    assert metrics.l2_uvp(L(xt), P.map(xt)) < 0.05
    A2, b2 = bures_map(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))
    np.testing.assert_allclose(A2, 2 * np.eye(2), atol=1e-12)
    np.testing.assert_allclose(b2, np.ones(2), atol=1e-12)


def test_entropic_map_is_the_barycentric_projection_of_pots_plan():
    import ot

    from monge.maps import EntropicMap

    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((60, 2)), rng.standard_normal((50, 2)) * 0.5 + 1.0
    E = EntropicMap(eps=0.3, tol=1e-12).fit(X, Y)
    C = ot.dist(X, Y)  # squared Euclidean, as monge's sqeuclidean
    G = ot.sinkhorn(np.full(60, 1 / 60), np.full(50, 1 / 50), C, reg=0.3, method="sinkhorn_log",
                    stopThr=1e-13, numItermax=100_000)
    bary = (G @ Y) / G.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(E.transform(X), bary, atol=1e-8)
    # out of sample: the same formula, so a point duplicated into X maps identically
    np.testing.assert_allclose(E.transform(X[:3] + 0.0), E.transform(X)[:3], atol=1e-12)
    # chunks of 7 rows (the last one short) give the same images
    E.set_params(chunk=7)
    np.testing.assert_allclose(E.transform(X), bary, atol=1e-8)
    with pytest.raises(ValueError, match="chunk"):
        E.set_params(chunk=0).transform(X)
    with pytest.raises(ValueError, match="X: dimension 3, the map was fitted in 2"):
        E.transform(np.zeros((2, 3)))


def test_entropic_map_float32_matches_float64():
    from monge.maps import EntropicMap

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((300, 5)), rng.standard_normal((280, 5)) * 0.7 + 0.5
    x = rng.standard_normal((40, 5))
    e64 = EntropicMap(tol=1e-6).fit(X, Y)
    e32 = EntropicMap(tol=1e-6, dtype="float32").fit(X.astype(np.float32), Y)
    t64, t32 = e64.transform(x), e32.transform(x)
    assert t64.dtype == np.float64 and t32.dtype == np.float32 and e32.g_.dtype == np.float32
    # float32 rounding of costs ~ 1e-7 x |x|^2, over eps ~ 0.1: weights and images agree to ~1e-4
    np.testing.assert_allclose(t32, t64, rtol=0, atol=1e-4 * np.abs(t64).max())
    assert EntropicMap(dtype=np.float32).fit(X, Y).transform(x).dtype == np.float32
    with pytest.raises(ValueError, match="dtype: unknown value 'float16'"):
        EntropicMap(dtype="float16").fit(X, Y)
    with pytest.raises(TypeError, match="dtype: expected 'float32' or 'float64'"):
        EntropicMap(dtype=object()).fit(X, Y)


def test_split_fitting_loss_gradient_matches_finite_differences():
    from monge.maps.estimator import _split_fit

    rng = np.random.default_rng(1)
    t, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 3)) + 0.5
    v, g = _split_fit(t, y, 0.5, 1e-12)
    e = 1e-6
    fd = np.zeros_like(t)
    for i in range(16):
        for j in range(3):
            tp, tm = t.copy(), t.copy()
            tp[i, j] += e
            tm[i, j] -= e
            fd[i, j] = (_split_fit(tp, y, 0.5, 1e-12)[0] - _split_fit(tm, y, 0.5, 1e-12)[0]) / (2 * e)
    np.testing.assert_allclose(g, fd, atol=1e-7)


def test_barycentric_labels_are_pots_barycentric_projection():
    # the labels at the plan's own source points: its entropic map there is (P y)_i / (P 1)_i
    import ot

    from monge.maps.estimator import _entropic_map

    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((40, 2)), rng.standard_normal((30, 2)) * 0.7 + 0.5
    labels = _entropic_map(X, Y, 0.3, 1e-12).transform(X)
    G = ot.sinkhorn(np.full(40, 1 / 40), np.full(30, 1 / 30), ot.dist(X, Y), reg=0.3,
                    method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    np.testing.assert_allclose(labels, (G @ Y) / G.sum(axis=1, keepdims=True), atol=1e-8)


def test_barycentric_fitting_loss_beats_the_divergence_on_a_known_map():
    # the minibatch divergence favours maps that contract; the plan labels do not
    # (docs/experiments/w2bench.md): on a nonlinear known map the new loss ends below both the
    # divergence-fitted map and the entropic map of the same samples
    from monge.maps import EntropicMap

    P = datasets.ConvexPotentialMap(4, seed=0)
    X, Y = P.sample_source(2000, seed=0), P.sample_target(2000, seed=1)
    x = P.sample_source(1000, seed=2)
    err = {}
    for loss in ("sinkhorn_divergence", "barycentric"):
        T = MongeGapMap(n_iter=600, verbose=False, fitting_loss=loss).fit(X, Y)
        err[loss] = metrics.l2_uvp(T.transform(x).astype(np.float64), P.map(x))
    err["entropic"] = metrics.l2_uvp(EntropicMap().fit(X, Y).transform(x), P.map(x))
    assert err["barycentric"] < err["sinkhorn_divergence"]
    assert err["barycentric"] < 1.1 * err["entropic"], err
    # from samplers: a new plan of plan_size per side every plan_every steps
    est = MongeGapMap(n_iter=60, verbose=False, fitting_loss="barycentric", plan_size=256,
                      plan_every=10, n_validation=128)
    est.fit(lambda n, rng: P.sample_source(n, seed=int(rng.integers(1 << 30))),
            lambda n, rng: P.sample_target(n, seed=int(rng.integers(1 << 30))))
    assert np.isfinite(est.history_["val_loss"]).all() and len(est.history_["step"]) == 60


def test_label_noise_smooths_the_labels_of_a_small_training_set():
    # with few samples in d = 8 the network overfits the plan's labels at the samples; labels of
    # the same plan's entropic map at jittered samples generalise better (and the jitter is the
    # only difference between the two fits: same seed, plan, network and steps)
    P = datasets.ConvexPotentialMap(8, seed=1)
    X, Y = P.sample_source(400, seed=0), P.sample_target(400, seed=1)
    x = P.sample_source(2000, seed=2)
    err = {}
    for h in (0.0, 0.25):
        T = MongeGapMap(n_iter=400, verbose=False, label_noise=h, seed=0).fit(X, Y)
        err[h] = metrics.l2_uvp(T.transform(x).astype(np.float64), P.map(x))
    assert err[0.25] < 0.9 * err[0.0], err


def test_bures_start_and_the_guard():
    """init='bures' starts at the Bures map; a fit that only gets worse (huge learning rate, no
    gap) is rolled back to it by early_stopping='guard' (held-out data where it is exact)."""
    from monge.maps import LinearMap

    P = datasets.gaussian_pair(2, seed=0)
    X, Y = P.sample_source(2000, seed=0), P.sample_target(2000, seed=1)
    Xv = P.sample_source(400, seed=2)
    start = MongeGapMap(n_iter=1, lr=1e-12, verbose=False, validation_fraction=0.0,
                        dtype="float64").fit(X, Y)
    L = LinearMap().fit(X, Y)
    # the MLP's last layer starts at 1e-3 x He: T within ~1e-3 x std(Y) of the Bures map
    assert np.abs(start.transform(Xv) - L(Xv)).max() < 1e-2 * Y.std(0).max()
    bad = MongeGapMap(n_iter=30, lr=0.5, reg=0.0, verbose=False, dtype="float64",
                      validate_every=10).fit(X, Y, X_val=Xv, true_map=P.map)
    h = bad.history_
    assert h["val_loss"][-1] > h["val_loss"][0]          # training made it worse ...
    assert bad.best_step_ == -1                          # ... so the start is kept
    np.testing.assert_allclose(bad.transform(Xv), start.transform(Xv), atol=1e-9)
    off = MongeGapMap(n_iter=30, lr=0.5, reg=0.0, verbose=False, dtype="float64",
                      validate_every=10, early_stopping=False).fit(X, Y, X_val=Xv)
    assert off.best_step_ == 29
    assert not np.allclose(off.transform(Xv), start.transform(Xv), atol=1e-3)


def test_affine_lr_scales_the_affine_step():
    """Adam's first step moves every entry with a nonzero gradient by exactly its lr: lr / d for A
    and b with affine_lr='auto', lr x affine_lr otherwise, and 0 keeps the Bures start."""
    P = datasets.gaussian_pair(4, seed=0)
    X, Y = P.sample_source(500, seed=0), P.sample_target(500, seed=1)
    kw = dict(n_iter=1, lr=1e-2, verbose=False, validation_fraction=0.0, dtype="float64",
              schedule="constant")
    start = MongeGapMap(**{**kw, "lr": 1e-300}).fit(X, Y).model_
    for affine_lr, k in (("auto", 1e-2 / 4), (0.5, 5e-3), (0.0, 0.0)):
        m = MongeGapMap(**kw, affine_lr=affine_lr).fit(X, Y).model_
        for new, old in ((m.At, start.At), (m.b, start.b)):
            np.testing.assert_allclose(np.abs(new - old).max(), k, rtol=1e-6, atol=1e-15)
        assert np.abs(m.mlp.params[-2] - start.mlp.params[-2]).max() == pytest.approx(1e-2, rel=1e-6)


def test_standardize_false_is_x_plus_a_raw_mlp():
    """standardize=False with init='identity': T(x) = x + MLP(x) on raw coordinates (OTT-JAX's
    residual map), checked against the MLP's own forward pass."""
    P = datasets.gaussian_pair(3, seed=0)
    X, Y = 5.0 + 3.0 * P.sample_source(300, seed=0), P.sample_target(300, seed=1)
    est = MongeGapMap(init="identity", standardize=False, n_iter=3, verbose=False,
                      validation_fraction=0.0, dtype="float64").fit(X, Y)
    m = est.model_
    np.testing.assert_array_equal(m.s_in, 1.0)
    np.testing.assert_array_equal(m.s_out, 1.0)
    np.testing.assert_array_equal(m.m_in, 0.0)
    Xt = X[:20]
    np.testing.assert_allclose(est.transform(Xt), Xt @ m.At + m.b + m.mlp(Xt), rtol=1e-12, atol=1e-12)
    on = MongeGapMap(init="identity", n_iter=3, verbose=False, validation_fraction=0.0,
                     dtype="float64").fit(X, Y).model_
    assert np.allclose(on.s_in, 1.0 / X.std(0)) and np.allclose(on.m_in, X.mean(0))


def test_auto_plan_every_keeps_the_plan_cost_per_step_level():
    from monge.maps.estimator import auto_plan_every

    assert [auto_plan_every(n) for n in (256, 1024, 2048, 4096, 8192)] == [1, 4, 16, 64, 256]


def test_auto_plan_eps_and_averaging_follow_the_number_of_plans():
    """One plan over the whole training sets: eps 0.5 % of the mean squared distance, the last
    iterate.  Many plans (sets larger than plan_size, or samplers): eps 0.25 %, the mean of the
    second half of the iterates."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((300, 2)), np.tanh(rng.standard_normal((300, 2))) + 1.0
    mean_sq = np.sum((X.mean(0) - Y.mean(0)) ** 2) + X.var(0).sum() + Y.var(0).sum()
    kw = dict(n_iter=20, batch_size=32, verbose=False, early_stopping=False, validation_fraction=0.0,
              dtype="float64")
    one = MongeGapMap(**kw).fit(X, Y)
    assert one.fitting_eps_ == pytest.approx(0.005 * mean_sq) and one.n_averaged_ == 1
    many = MongeGapMap(plan_size=100, plan_every=5, **kw).fit(X, Y)
    assert many.fitting_eps_ == pytest.approx(0.0025 * mean_sq) and many.n_averaged_ == 10
    # explicit values win over 'auto'
    set_ = MongeGapMap(plan_size=100, fitting_relative_eps=0.02, average=0.0, **kw).fit(X, Y)
    assert set_.fitting_eps_ == pytest.approx(0.02 * mean_sq) and set_.n_averaged_ == 1
    with pytest.raises(ValueError, match="average: expected 'auto' or a number"):
        MongeGapMap(average="mean", **kw).fit(X, Y)


def test_the_labelling_plan_sees_the_held_out_samples_but_minibatches_do_not(monkeypatch):
    """With validation split off the training arrays, the one plan is solved on every sample
    (train + held out) while minibatches draw only the training part; a validation set passed to
    fit stays out of the plan."""
    from monge.maps import estimator

    plans, batches = [], []
    solve = estimator._entropic_map

    def recording_plan(x, y, *a, **k):
        plans.append((np.asarray(x, np.float64).copy(), np.asarray(y, np.float64).copy()))
        return solve(x, y, *a, **k)

    monkeypatch.setattr(estimator, "_entropic_map", recording_plan)
    forward = estimator.nn.AffineMLP.forward

    def recording_forward(self, x, *a, **k):
        batches.append(np.asarray(x, np.float64).copy())
        return forward(self, x, *a, **k)

    monkeypatch.setattr(estimator.nn.AffineMLP, "forward", recording_forward)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((200, 2)), rng.standard_normal((180, 2)) + 1.0
    kw = dict(n_iter=15, batch_size=32, verbose=False, dtype="float64", label_noise=0.0, seed=1)
    est = MongeGapMap(validation_fraction=0.1, **kw).fit(X, Y)
    train_plans = [p for p in plans if len(p[0]) > 20]       # the held-out labels' own plan: 20
    assert len(train_plans) == 1
    px, py = train_plans[0]
    np.testing.assert_array_equal(np.sort(px, axis=0), np.sort(X, axis=0))
    np.testing.assert_array_equal(np.sort(py, axis=0), np.sort(Y, axis=0))
    seen = {tuple(r) for b in batches if len(b) == 32 for r in b}
    held_out = {tuple(r) for r in X} - seen
    assert len(held_out) >= 20 and len(est.history_["val_loss"]) > 0
    assert {tuple(r) for r in X} >= seen                  # label_noise=0: minibatches are rows of X
    # a validation set given to fit is not part of the plan
    plans.clear()
    MongeGapMap(**kw).fit(X[:150], Y[:150], X_val=X[150:], Y_val=Y[150:])
    assert max(len(p[0]) for p in plans) == 150


def test_tail_average_is_the_mean_of_the_last_iterates(monkeypatch):
    """average=a: the fitted parameters are the mean of the last round(a n_iter) iterates, and
    averaging does not change the iterates themselves."""
    from monge.maps import nn

    iterates = []
    step = nn.Optimizer.step

    def recording(self, grads):
        step(self, grads)
        iterates.append([q.astype(np.float64) for q in self.params])

    monkeypatch.setattr(nn.Optimizer, "step", recording)
    P = datasets.gaussian_pair(2, seed=0)
    X, Y = P.sample_source(600, seed=1), np.tanh(P.sample_target(600, seed=2))
    kw = dict(n_iter=30, batch_size=64, verbose=False, early_stopping=False, seed=3)
    last = MongeGapMap(average=0.0, **kw).fit(X, Y)
    assert last.n_averaged_ == 1
    for q, it in zip(last.model_.params, iterates[-1]):
        np.testing.assert_array_equal(q, it.astype(q.dtype))
    plain = iterates[:]
    iterates.clear()
    avg = MongeGapMap(average=0.4, **kw).fit(X, Y)
    assert avg.n_averaged_ == 12 and len(iterates) == 30
    for a, b in zip(plain[:-1], iterates[:-1]):         # the same trajectory
        for qa, qb in zip(a, b):
            np.testing.assert_array_equal(qa, qb)
    for k, q in enumerate(avg.model_.params):
        mean = np.mean([it[k] for it in plain[-12:]], axis=0)
        np.testing.assert_allclose(q, mean, rtol=1e-6, atol=1e-7)
        assert not np.allclose(q, plain[-1][k], rtol=0, atol=1e-6)
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="average"):
            MongeGapMap(average=bad, **kw).fit(X, Y)


def test_fit_from_samplers():
    P = datasets.gaussian_pair(2, seed=0)
    est = MongeGapMap(n_iter=40, batch_size=64, verbose=False, n_validation=128, plan_size=1024,
                      plan_every=20)
    est.fit(lambda n, rng: P.sample_source(n, seed=int(rng.integers(1 << 30))),
            lambda n, rng: P.sample_target(n, seed=int(rng.integers(1 << 30))))
    xt = P.sample_source(1000, seed=9)
    assert metrics.l2_uvp(est.transform(xt).astype(np.float64), P.map(xt)) < 5.0
    with pytest.raises(ValueError, match="X: the sampler returned 3 rows, asked 64"):
        MongeGapMap(n_iter=2, batch_size=64, verbose=False, validation_fraction=0.0,
                    fitting_loss="sinkhorn_divergence").fit(
            lambda n, rng: np.zeros((min(n, 3), 2)) if n == 64 else np.ones((n, 2)),
            lambda n, rng: np.ones((n, 2)))
    with pytest.raises(ValueError, match="X: the sampler returned 3 rows, asked 100"):
        MongeGapMap(n_iter=2, plan_size=100, verbose=False, validation_fraction=0.0).fit(
            lambda n, rng: np.zeros((min(n, 3), 2)) if n == 100 else np.ones((n, 2)),
            lambda n, rng: np.ones((n, 2)))
    with pytest.raises(TypeError, match="X, Y: pass two arrays or two samplers"):
        MongeGapMap(n_iter=2, verbose=False).fit(lambda n, rng: np.zeros((n, 2)), np.zeros((5, 2)))


@pytest.mark.optional
def test_map_estimators_in_a_scikit_learn_pipeline():
    """make_pipeline(StandardScaler(), <map>) fits and transforms (Y passed as the pipeline's y),
    clone keeps the parameters, fit_transform equals fit then transform, and an unfitted map is
    reported unfitted by scikit-learn's own check."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils.validation import check_is_fitted

    from monge.maps import EntropicMap, LinearMap, MongeGapMap

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2)) * 3.0 + 5.0
    Y = rng.normal(size=(300, 2)) @ np.array([[2.0, 0.5], [0.0, 1.0]]) + 1.0
    for est in (LinearMap(), EntropicMap(relative_eps=0.05), MongeGapMap(n_iter=30, verbose=False)):
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
        pipe = make_pipeline(StandardScaler(), clone(est)).fit(X, Y)
        Z = StandardScaler().fit_transform(X)
        ref = clone(est).fit(Z, Y).transform(Z)
        np.testing.assert_allclose(pipe.transform(X), ref, rtol=1e-5, atol=1e-5)
        c = clone(est)
        assert c.get_params() == est.get_params() and c is not est
        np.testing.assert_allclose(clone(est).fit_transform(X, Y), clone(est).fit(X, Y).transform(X),
                                   rtol=1e-5, atol=1e-5)
        check_is_fitted(pipe[-1])
    assert repr(EntropicMap(relative_eps=0.05)) == "EntropicMap(relative_eps=0.05)"
    with pytest.raises(ValueError, match="ridge2: not a parameter of LinearMap"):
        LinearMap().set_params(ridge2=1.0)


# scikit-learn's estimator checks that cannot apply to a map fitted between two samples of the same
# dimension (y is a point cloud (m, d), not labels), or whose wording we do not copy; every other
# check must pass
NOT_APPLICABLE = {
    # the checks pass labels y of shape (n,) or (n, 1): a map needs target samples (m, d)
    "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input",
    "check_n_features_in_after_fitting", "check_positive_only_tag_during_fit",
    "check_estimators_dtypes", "check_pipeline_consistency", "check_estimators_nan_inf",
    "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d",
    "check_fit2d_1sample",
    # wrong-type input is a TypeError in monge (sklearn expects ValueError); empty input is
    # reported as "X: empty array" (sklearn matches its own wording)
    "check_complex_data", "check_dtype_object", "check_estimators_empty_data_messages",
    # needs SCIPY_ARRAY_API set in the environment
    "check_array_api_input",
}


@pytest.mark.optional
def test_scikit_learn_estimator_checks_that_apply_pass():
    """sklearn.utils.estimator_checks on LinearMap: every check outside NOT_APPLICABLE passes
    (unfitted transform, sparse input, y=None, get/set_params, clone, tags, ...)."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    from monge.maps import LinearMap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = check_estimator(LinearMap(), on_fail=None)
    failed = {r["check_name"] for r in res if r["status"] == "failed"}
    passed = {r["check_name"] for r in res if r["status"] == "passed"}
    assert failed <= NOT_APPLICABLE, sorted(failed - NOT_APPLICABLE)
    assert {"check_transformers_unfitted", "check_estimator_sparse_array", "check_requires_y_none",
            "check_get_params_invariance", "check_set_params"} <= passed
