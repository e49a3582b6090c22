"""The W2-benchmark loader (monge.experiments.maps.w2bench) on checkpoints the tests write
themselves: the ICNN's hand-written gradient against finite differences and torch autograd, the
source mixture against NumPy's legacy global generator, the standardised map, bad files."""
import json
import os

import numpy as np
import pytest
import torch

from monge._io import DataFormatError
from monge.experiments.maps import w2bench as wb


def _state(dim, hidden=(12, 12, 6), rank=1, seed=0):
    """A random dense-ICNN state dict with the benchmark's key layout (non-negative W, w)."""
    g = torch.Generator().manual_seed(seed)
    st = {}
    for i, h in enumerate(hidden):
        st[f"quadratic_layers.{i}.quadratic_decomposed"] = 0.3 * torch.randn(dim, rank, h, generator=g)
        st[f"quadratic_layers.{i}.weight"] = 0.3 * torch.randn(h, dim, generator=g)
        st[f"quadratic_layers.{i}.bias"] = 0.3 * torch.randn(h, generator=g)
    for i in range(len(hidden) - 1):
        st[f"convex_layers.{i}.weight"] = 0.3 * torch.rand(hidden[i + 1], hidden[i], generator=g)
    st["final_layer.weight"] = torch.rand(1, hidden[-1], generator=g)
    return st


def _torch_psi(st, x, sc):
    """The same network written with torch operations (the independent reference)."""
    def quad(i):
        Q = st[f"quadratic_layers.{i}.quadratic_decomposed"]
        return (torch.einsum("nd,drk->nrk", x, Q) ** 2).sum(1) + x @ st[f"quadratic_layers.{i}.weight"].T \
            + st[f"quadratic_layers.{i}.bias"]
    h = quad(0)
    i = 0
    while f"convex_layers.{i}.weight" in st:
        h = torch.celu(h @ st[f"convex_layers.{i}.weight"].T + quad(i + 1))
        i += 1
    return (h @ st["final_layer.weight"].T)[:, 0] + 0.5 * sc * (x ** 2).sum(1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("w2")
    for v, seed in (("v1", 1), ("v2", 2)):
        torch.save(_state(4, seed=seed), d / f"Mix3toMix10_4_{v}.pt")
    return d


def test_icnn_value_and_gradient_match_torch_autograd():
    st = _state(3, rank=2)
    net = wb.DenseICNN({k: v.double().numpy() for k, v in st.items()})
    net.strong_convexity = 0.01
    x = np.random.default_rng(0).standard_normal((7, 3))
    val, grad = net.value_and_grad(x)
    X = torch.tensor(x, requires_grad=True)
    ref = _torch_psi({k: v.double() for k, v in st.items()}, X, 0.01)
    (gref,) = torch.autograd.grad(ref.sum(), X)
    np.testing.assert_allclose(val, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad, gref.numpy(), rtol=1e-10, atol=1e-12)
    # and against central differences of the value
    e = 1e-6
    fd = np.stack([(net.value_and_grad(x + e * np.eye(3)[k])[0]
                    - net.value_and_grad(x - e * np.eye(3)[k])[0]) / (2 * e) for k in range(3)], 1)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)


def test_source_mixture_reproduces_the_legacy_global_generator():
    """The benchmark draws its mixture from np.random after np.random.seed(0)."""
    dim, num = 5, 3
    state = np.random.get_state()
    try:
        np.random.seed(0)
        centers = np.zeros((num, dim), dtype=np.float32)
        for d in range(dim):
            centers[:, d] += np.random.choice(list(range(num)), num, replace=False)
        maps = np.random.normal(size=(num, dim, dim)).astype(np.float32)
    finally:
        np.random.set_state(state)
    c, m = wb.gaussian_mixture_source(dim)
    centers -= 1.0
    maps /= np.sqrt((maps ** 2).sum(axis=2, keepdims=True))
    mult = np.sqrt((centers ** 2).sum(axis=1).mean() + dim * 0.4 ** 2) / np.sqrt(dim)
    np.testing.assert_allclose(c, centers / mult, rtol=1e-6)
    np.testing.assert_allclose(m, maps / mult, rtol=1e-6)


def test_pair_is_standardised_and_monotone(data_dir):
    P = wb.load_pair(str(data_dir), 4, standardize_size=20000)
    rng = np.random.default_rng(3)
    y = P.sample_target(20000, rng)
    assert np.abs(y.mean(0)).max() < 0.05
    assert abs(y.var(0).mean() - 1.0) < 0.05
    assert abs(P.target_var - 4.0) < 1e-9  # by construction on its own sample
    x1, x2 = P.sample_source(500, rng), P.sample_source(500, rng)
    # the gradient of a convex function is a monotone map
    assert (np.sum((P.map(x1) - P.map(x2)) * (x1 - x2), axis=1) >= -1e-12).all()
    assert P.l2_uvp(P.map(x1), x1) == 0.0
    assert set(P.sources) == {"Mix3toMix10_4_v1.pt", "Mix3toMix10_4_v2.pt"}
    one = wb.load_pair(str(data_dir), 4, versions=("v1",), standardize_size=4096)
    assert len(one.icnns) == 1 and not np.allclose(one.map(x1), P.map(x1))


def test_bad_files_and_arguments(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="data_dir: no Mix3toMix10_8_v1.pt"):
        wb.load_pair(str(data_dir), 8)
    with pytest.raises(ValueError, match="dim: expected one of"):
        wb.load_pair(str(data_dir), 3)
    with pytest.raises(ValueError, match="versions: expected"):
        wb.load_pair(str(data_dir), 4, versions=("v3",))
    (tmp_path / "Mix3toMix10_2_v1.pt").write_bytes(b"not a zip file")
    with pytest.raises(DataFormatError, match="not a readable PyTorch state dict"):
        wb.load_pair(str(tmp_path), 2, versions=("v1",))
    st = _state(2)
    del st["final_layer.weight"]
    torch.save(st, tmp_path / "Mix3toMix10_2_v2.pt")
    with pytest.raises(DataFormatError, match="missing \\['final_layer.weight'\\]"):
        wb.load_pair(str(tmp_path), 2, versions=("v2",))
    st = _state(2)
    st["convex_layers.0.weight"] = torch.rand(5, 5)
    torch.save(st, tmp_path / "Mix3toMix10_2_v2.pt")
    with pytest.raises(DataFormatError, match="convex layer 0: shape"):
        wb.load_pair(str(tmp_path), 2, versions=("v2",))


def test_benchmark_runner_smoke(data_dir, tmp_path):
    """Every cheap method through the runner on the fixture pair, results file and tables."""
    import json

    out = tmp_path / "r.json"
    wb.main(["--data", str(data_dir), "--dims", "4", "--seeds", "2", "--regimes", "fixed",
             "fresh", "--methods", "linear", "entropic", "monge_gap", "--n-iter", "20",
             "--batch-size", "64", "--n", "256", "--standardize-size", "4096",
             "--n-entropic-fresh", "512", "--mg-params", '{"plan_size": 512, "plan_every": 10}',
             "--out", str(out)])
    res = json.loads(out.read_text())
    assert len(res["rows"]) == 12
    assert res["meta"]["data"]["sha256"]["4"].keys() == {"Mix3toMix10_4_v1.pt",
                                                         "Mix3toMix10_4_v2.pt"}
    assert all(np.isfinite(r["l2_uvp"]) and r["l2_uvp"] >= 0 for r in res["rows"])
    text = wb.table(res["rows"])
    assert "| monge_gap |" in text and "published: W2GN (W2)" in text
    abl = wb.render_ablation([str(out)])
    assert "| method | fixed, d = 4 | fresh, d = 4 |" in abl
    assert "| monge_gap (plan_size = 512, plan_every = 10, 20 steps, batch 64) |" in abl
    assert "r.json" in abl
    # a label (what a run changed in the code) is said once per row, on mlp and monge_gap alike
    res["meta"]["label"] = "a code change"
    res["rows"] += [dict(r, method="mlp") for r in res["rows"] if r["method"] == "monge_gap"]
    out.write_text(json.dumps(res))
    abl = wb.render_ablation([str(out)])
    for meth in ("mlp", "monge_gap"):
        assert f"| {meth} (plan_size = 512, plan_every = 10, 20 steps, batch 64, a code change) |" in abl
    assert "| entropic |" in abl


def test_entropic_eps_tuning_runner_and_choice(data_dir, tmp_path):
    """--entropic-eps runs the entropic map once per eps; the choice is the lowest mean L2-UVP,
    ties to the larger eps, unconverged cells not eligible; the committed table is the committed
    tuning file's choice."""
    import json

    out = tmp_path / "eps.json"
    wb.main(["--data", str(data_dir), "--dims", "4", "--seeds", "2", "--regimes", "fixed",
             "--methods", "entropic", "entropic_tuned", "--n", "256",
             "--standardize-size", "4096", "--entropic-eps", "0.05", "0.01", "--out", str(out)])
    res = json.loads(out.read_text())
    ent = [r for r in res["rows"] if r["method"] == "entropic"]
    assert sorted(r["relative_eps"] for r in ent) == [0.01, 0.01, 0.05, 0.05]
    assert all(r["converged"] for r in ent)
    tuned = [r for r in res["rows"] if r["method"] == "entropic_tuned"]
    assert [r["relative_eps"] for r in tuned] == [wb.TUNED_ENTROPIC_EPS["fixed"][4]] * 2
    # the eps is a relative one: eps_ / relative_eps is the same mean squared distance per seed
    by_seed = {}
    for r in ent:
        by_seed.setdefault(r["seed"], []).append(r["eps"] / r["relative_eps"])
    assert all(np.isclose(*v) for v in by_seed.values())
    means = {e: np.mean([r["l2_uvp"] for r in ent if r["relative_eps"] == e]) for e in (0.05, 0.01)}
    assert wb.tune_entropic_eps(str(out)) == {"fixed": {4: min(means, key=means.get)}}
    assert "| 0.05 |" in wb.render_entropic_tuning(str(out))

    rows = [dict(regime="fresh", dim=2, method="entropic", seed=s, l2_uvp=u, relative_eps=e,
                 converged=c)
            for s in range(2) for e, u, c in ((0.02, 1.0, True), (0.01, 1.0, True),
                                              (0.005, 0.5, s == 0))]
    fake = dict(meta=res["meta"], rows=rows)
    (tmp_path / "fake.json").write_text(json.dumps(fake))
    assert wb.tune_entropic_eps(str(tmp_path / "fake.json")) == {"fresh": {2: 0.02}}
    assert "0.50 ± 0.00 †" in wb.render_entropic_tuning(str(tmp_path / "fake.json"))
    with pytest.raises(ValueError, match="entropic_tuned: no eps tuned for regime 'fixed', d = 3"):
        wb.tuned_entropic_eps("fixed", 3)
    with pytest.raises(SystemExit):
        wb.main(["--data", str(data_dir), "--entropic-eps", "0", "--dims", "4"])


def test_tuned_entropic_eps_is_the_committed_tuning_files_choice():
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                        "results", "w2bench-tuning-entropic-eps-2026-12-04.json")
    chosen = wb.tune_entropic_eps(path)
    assert chosen == wb.TUNED_ENTROPIC_EPS
    assert all(e in wb.ENTROPIC_EPS_GRID for c in chosen.values() for e in c.values())


def test_estimator_bias_runner(data_dir, tmp_path):
    """The estimator-bias script on the fixture pair (its docs block: tests/test_render.py)."""
    import json

    from monge.experiments.maps import estimator_bias as eb

    out = tmp_path / "bias.json"
    eb.main(["--data", str(data_dir), "--dims", "4", "--batch-size", "32", "--repeats", "3",
             "--n-iter", "5", "--n-fit", "256",
             "--out", str(out)])
    res = json.loads(out.read_text())
    rows = res["dims"]["4"]["rows"]
    assert [r["scale"] for r in rows] == list(eb.SCALES)
    for r in rows:
        for k in ("sinkhorn_divergence", "split", "monge_gap", "monge_gap_debiased"):
            assert np.isfinite(r[k][0]) and r[k][1] >= 0
        assert r["sinkhorn_divergence"][0] >= -1e-6          # a divergence
    named = {r["map"]: r for r in res["dims"]["4"]["maps"]["rows"]}
    assert named["true map"]["l2_uvp"] == 0.0
    assert named["Bures map"]["l2_uvp"] > 1.0 and len(named) == 5
    # an optimal map: its debiased gap is small next to the plain estimator's entropic bias (a
    # ratio bound, loose because the fixture pair is tiny: 3 batches of 32 points)
    assert abs(named["true map"]["monge_gap_debiased"]) < 0.2 * named["true map"]["monge_gap"]


def test_entropic_bagging_table(data_dir, tmp_path):
    """--bagging: by convexity of the squared error, the average of k maps is never worse than
    the mean of their errors."""
    import json

    from monge.experiments.maps import estimator_bias as eb

    out = tmp_path / "bag.json"
    eb.main(["--data", str(data_dir), "--dims", "4", "--bagging", "64", "3", "128", "2",
             "--relative-eps", "0.01", "0.003", "--out", str(out)])
    res = json.loads(out.read_text())
    rows = res["dims"]["4"]["bagging"]["rows"]
    assert [(r["n"], r["relative_eps"], r["maps"]) for r in rows] == [
        (64, 0.01, 3), (64, 0.003, 3), (128, 0.01, 2), (128, 0.003, 2)]
    # the same samples for each eps, so the maps differ only by eps
    assert rows[0]["single_mean"] != rows[1]["single_mean"]
    for r in rows:
        assert set(r["averaged"]) == {"1", "2"} | ({"3"} if r["maps"] == 3 else set())
        assert r["averaged"][str(r["maps"])] <= r["single_mean"] + 1e-9
        assert r["single_std"] > 0
    assert "| 64 | 0.003 | 3 |" in eb.render(str(out))
    with pytest.raises(SystemExit):
        eb.main(["--data", str(data_dir), "--bagging", "64"])


def test_supervised_ceiling_fits_the_true_map(data_dir):
    """The 'supervised' row (the network fitted to T*(x) by least squares) must beat the linear
    map by a wide margin on the fixture pair, in both regimes: it sees the labels."""
    pair = wb.load_pair(str(data_dir), 4, standardize_size=4096)
    for regime in ("fixed", "fresh"):
        lin, _, _ = wb.fit_method(pair, "linear", regime, 0, n=512)
        sup, secs, _ = wb.fit_method(pair, "supervised", regime, 0, n=512, n_iter=300,
                                     batch_size=128)
        e_lin, e_sup = wb.evaluate(pair, lin, 0, n_test=2048), wb.evaluate(pair, sup, 0, n_test=2048)
        assert secs > 0
        assert e_sup < 0.5 * e_lin, (regime, e_sup, e_lin)


def test_known_maps_results_file_round_trip(tmp_path):
    # the known-map experiment writes a results file (meta + rows) that renders its table
    from monge.experiments.maps import known_maps

    out = tmp_path / "km.json"
    assert known_maps.main(["--quick", "--seeds", "1", "--n-iter", "3", "--datasets",
                            "convex-potential d=8", "--n-test", "200", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert {"date", "command", "machine", "versions", "settings"} <= set(res["meta"])
    methods = {(r["dataset"], r["method"]) for r in res["rows"]}
    assert ("convex-potential d=8", "entropic") in methods and \
        ("convex-potential d=8", "monge_gap") in methods
    auto = [r for r in res["rows"] if r["reg"] == "auto" and r["dataset"] == "convex-potential d=8"]
    assert auto and auto[0]["reg_value"] == 1.0
    text = known_maps.render(str(out))
    assert "| convex-potential d=8 | Monge gap, λ = auto (1) |" in text and "Source: `km.json`" in text


def test_paired_differences_and_their_interval_match_scipy():
    from scipy import stats

    from monge.experiments.maps.w2bench import paired

    rng = np.random.default_rng(0)
    rows, diffs = [], []
    for seed in range(5):
        e, g = rng.uniform(10, 12), rng.normal(-1.0, 0.5)
        rows += [dict(regime="fixed", dim=8, seed=seed, method="entropic", l2_uvp=e),
                 dict(regime="fixed", dim=8, seed=seed, method="monge_gap", l2_uvp=e + g)]
        diffs.append(g)
    rows.append(dict(regime="fixed", dim=8, seed=9, method="entropic", l2_uvp=3.0))   # unpaired
    mean, half, n = paired(rows, "monge_gap", "entropic")[("fixed", 8)]
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(diffs), scale=stats.sem(diffs))
    assert n == 5 and mean == pytest.approx(np.mean(diffs), abs=1e-12)
    assert half == pytest.approx((hi - lo) / 2, rel=1e-3)


def test_render_paired_merges_a_rerun_with_the_baselines_of_the_same_seeds(tmp_path):
    import json

    from monge.experiments.maps.w2bench import render_paired

    def meta(n_iter):
        return dict(date="2026-12-04", machine=dict(cpu="cpu", cores=2, load_average=[0.0], commit="abc"),
                    load_average_after=[0.0], data=dict(pairs="benchmark (v1 + v2)"),
                    settings=dict(n_iter=n_iter, batch_size=256, seeds=3))

    def rows(method, vals):
        return [dict(regime="fixed", dim=8, seed=s, method=method, l2_uvp=v) for s, v in enumerate(vals)]

    old = tmp_path / "old.json"
    old.write_text(json.dumps(dict(meta=meta(1000), rows=rows("entropic", [5.0, 5.2, 5.1])
                                   + rows("monge_gap", [6.0, 6.3, 6.1]))))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(dict(meta=meta(5000), rows=rows("monge_gap", [4.0, 4.1, 4.1]))))
    alone = render_paired(str(old))
    assert "| entropic | +1.03 ± " in alone and "(above)" in alone and "| mlp |" not in alone
    both = render_paired([str(old), str(new)])
    # the rerun's rows replace the first file's monge_gap rows: -1.0, -1.1, -1.0 from entropic
    assert "| entropic | -1.03 ± 0.14 (**below**) |" in both
    assert "`old.json`" in both and "Methods shown from it: entropic." in both
    assert "`new.json`" in both and "5000 steps" in both and "Methods shown from it: monge_gap." in both


def test_render_merge_replaces_rows_per_dimension(tmp_path):
    """Two reruns of one method at different d both show; a rerun of a d replaces that d only."""
    import json

    def res(method, dims, val):
        return dict(meta=dict(date="2026-12-04", load_average_after=[0.0],
                              machine=dict(cpu="cpu", cores=2, load_average=[0.0], commit="abc"),
                              data=dict(pairs="benchmark (v1 + v2)"),
                              settings=dict(n_iter=5000, batch_size=256, seeds=2)),
                    rows=[dict(regime="fresh", dim=d, seed=s, method=method, l2_uvp=val,
                               fit_time=1.0) for d in dims for s in range(2)])

    paths = []
    for name, dims, val in (("all", (2, 16), 9.0), ("low", (2,), 1.0), ("high", (16,), 3.0)):
        paths.append(str(tmp_path / f"{name}.json"))
        (tmp_path / f"{name}.json").write_text(json.dumps(res("monge_gap", dims, val)))
    text = wb.render(paths, merge=True)
    assert "| monge_gap | 1.00 ± 0.00 (1 s, 2) | 3.00 ± 0.00 (1 s, 2) |" in text
    # a file none of whose rows is shown is not named as a source
    assert "9.00" not in text and "`all.json`" not in text
    import re

    assert re.search(r"`low\.json`[^\n]*Methods shown from it: monge_gap\.$", text, re.M)


def test_sinkhorn_tuning_reaches_the_solves_and_is_put_back(data_dir, tmp_path):
    """--sinkhorn-tuning sets an engine constant for the run's solves (the entropic map anneals
    from the start under a high auto_anneal: other iteration counts, the same map within tol),
    restores it afterwards, and the paired render reads the two files."""
    from monge import _core

    before = _core.sinkhorn_tuning()
    args = ["--data", str(data_dir), "--dims", "4", "--seeds", "1", "--regimes", "fixed",
            "--methods", "entropic", "--n", "256", "--standardize-size", "4096"]
    wb.main(args + ["--out", str(tmp_path / "base.json")])
    wb.main(args + ["--sinkhorn-tuning", '{"auto_anneal": 0.5}', "--out",
                    str(tmp_path / "var.json")])
    assert _core.sinkhorn_tuning() == before
    base, var = (json.loads((tmp_path / f).read_text())["rows"][0] for f in ("base.json", "var.json"))
    assert base["converged"] and var["converged"]
    assert base["sinkhorn_iter"] != var["sinkhorn_iter"]
    assert abs(base["l2_uvp"] - var["l2_uvp"]) < 1e-3 * base["l2_uvp"]
    text = wb.render_tuning_pair(str(tmp_path / "base.json"), str(tmp_path / "var.json"))
    assert 'the defaults → {"auto_anneal": 0.5}' in text
    assert f"| {base['sinkhorn_iter']} → {var['sinkhorn_iter']} |" in text
    with pytest.raises(SystemExit):
        wb.main(args + ["--sinkhorn-tuning", '{"no_such_constant": 1}'])
    with pytest.raises(SystemExit):
        wb.main(args + ["--sinkhorn-tuning", '{"auto_anneal": 0}'])
