"""Where the minibatch objective of MongeGapMap is minimised, on a validation pair of the W2 benchmark.

For the scaled true maps T_s(x) = m + s (T*(x) - m) (m the target mean; s = 1 is T*), the expected
value over R minibatches of each estimator of the fitting loss and of the Monge gap.  An unbiased
fitting loss is smallest at s = 1; the plain minibatch Sinkhorn divergence is smallest below 1
(it favours maps that contract T#mu).  Every T_s is the gradient of a convex function, so its true
Monge gap is 0; the entropic estimator's value still moves with s, the debiased one's hardly.

    python -m monge.experiments.maps.estimator_bias --data ../shared/data/w2bench --dims 8 32 \
        --out benchmarks/results/w2bench-estimator-bias-2026-12-03.json

With --bagging: how much of one entropic map's error is variance, which averaging the maps of
independent plans (as the barycentric fitting loss does) removes, and how much is the bias of the
plan size, which it keeps.
"""
import json
import os
import warnings

import numpy as np

SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)


def measure(pair, batch_size=256, relative_eps=0.05, repeats=40, seed=0, scales=SCALES):
    """Rows (scale, mean and standard error of each estimator over `repeats` minibatches)."""
    from ... import monge_gap, sinkhorn_divergence
    from ...maps.estimator import _split_fit, relative_fitting_eps

    rng = np.random.default_rng(seed)
    ref = pair.sample_target(8192, rng)
    eps = relative_fitting_eps(ref, relative_eps)                      # MongeGapMap's rule
    m = ref.mean(axis=0)
    xs = [pair.sample_source(batch_size, rng) for _ in range(repeats)]
    txs = [pair.map(x) for x in xs]
    ys = [pair.sample_target(batch_size, rng) for _ in range(repeats)]
    rows = []
    for s in scales:
        vals = {"sinkhorn_divergence": [], "split": [], "monge_gap": [], "monge_gap_debiased": []}
        for x, t, y in zip(xs, txs, ys):
            ts = m + s * (t - m)
            vals["sinkhorn_divergence"].append(float(sinkhorn_divergence(ts, y, eps=eps).value))
            vals["split"].append(_split_fit(ts, y, eps, 1e-4)[0])
            vals["monge_gap"].append(float(monge_gap(x, ts, debiased=False).value))
            vals["monge_gap_debiased"].append(float(monge_gap(x, ts, debiased=True).value))
        rows.append(dict(scale=s, **{k: [float(np.mean(v)), float(np.std(v, ddof=1) / np.sqrt(len(v)))]
                                     for k, v in vals.items()}))
    return dict(eps_fit=eps, batch_size=batch_size, repeats=repeats, rows=rows)


def measure_maps(pair, batch_size=256, repeats=20, seed=0, n_fit=2048, n_iter=1000,
                 n_eval=4096):
    """The terms of the objective at named maps: the true map, the entropic map (n_fit samples a
    side), the Bures map, and MongeGapMap fits with the plain gap at lambda 1 (the previous
    defaults) and with the current defaults (debiased gap).  For each: L2-UVP, the Sinkhorn
    divergence between n_eval mapped and n_eval target points (the population fitting loss, up
    to a small sampling term), and both gap estimators averaged over `repeats` batches."""
    from ... import monge_gap, sinkhorn_divergence
    from ...maps import EntropicMap, LinearMap, MongeGapMap
    from ...maps.estimator import relative_fitting_eps

    rng = np.random.default_rng(seed)
    X, Y = pair.sample_source(n_fit, rng), pair.sample_target(n_fit, rng)
    eps = relative_fitting_eps(pair.sample_target(8192, rng), 0.05)
    maps = {"true map": pair.map, "entropic map": EntropicMap().fit(X, Y).transform,
            "Bures map": LinearMap().fit(X, Y).transform}
    for name, kw in (("MongeGapMap, plain gap, lambda 1", dict(reg=1.0, gap_debiased=False)),
                     ("MongeGapMap, defaults", {})):
        est = MongeGapMap(n_iter=n_iter, seed=seed, verbose=False, **kw).fit(X, Y)
        maps[name] = est.transform
    xe, ye = pair.sample_source(n_eval, rng), pair.sample_target(n_eval, rng)
    xb = [pair.sample_source(batch_size, rng) for _ in range(repeats)]
    rows = []
    for name, T in maps.items():
        te = np.asarray(T(xe), dtype=np.float64)
        plain, deb = [], []
        for x in xb:
            t = np.asarray(T(x), dtype=np.float64)
            plain.append(monge_gap(x, t, debiased=False).value)
            deb.append(monge_gap(x, t, debiased=True).value)
        rows.append(dict(map=name, l2_uvp=float(pair.l2_uvp(te, xe)),
                         sinkhorn_divergence=float(sinkhorn_divergence(te, ye, eps=eps).value),
                         monge_gap=float(np.mean(plain)), monge_gap_debiased=float(np.mean(deb))))
    return dict(eps_fit=eps, batch_size=batch_size, repeats=repeats, n_fit=n_fit, n_iter=n_iter,
                n_eval=n_eval, rows=rows)


def measure_bagging(pair, sizes=((2048, 16), (8192, 6)), n_test=4096, seed=0, relative_eps=(0.01,)):
    """For each (n, K) and each relative eps: K entropic maps (EntropicMap defaults otherwise)
    fitted on independent samples of n points a side (the same samples for every eps); the L2-UVP
    of each map alone and of the average of the first k maps' outputs on the same n_test points,
    k = 1, 2, 4, K."""
    from ...maps import EntropicMap

    x = pair.sample_source(n_test, np.random.default_rng(10_000 + seed))
    rows = []
    for n, K in sizes:
        for rel in relative_eps:
            rng = np.random.default_rng(seed)
            preds = []
            for _ in range(K):
                X, Y = pair.sample_source(n, rng), pair.sample_target(n, rng)
                preds.append(EntropicMap(relative_eps=rel).fit(X, Y).transform(x))
            rows.append(_bagging_row(pair, x, preds, n, K, rel))
    return dict(n_test=n_test, rows=rows)


def _bagging_row(pair, x, preds, n, K, rel):
    single = [float(pair.l2_uvp(p, x)) for p in preds]
    ks = sorted({k for k in (1, 2, 4, K) if k <= K})
    return dict(n=n, maps=K, relative_eps=rel, single_mean=float(np.mean(single)),
                single_std=float(np.std(single, ddof=1)) if K > 1 else 0.0,
                averaged={str(k): float(pair.l2_uvp(np.mean(preds[:k], axis=0), x)) for k in ks})


def render_bagging(d, r):
    ks = sorted({int(k) for row in r["rows"] for k in row["averaged"]})
    lines = [f"d = {d}: L2-UVP % of entropic maps on {r['n_test']} test points, one map (mean ± std "
             "over the maps) and the average of k maps fitted on independent samples",
             "| points a side | ε / mean squared distance | maps | one map | "
             + " | ".join(f"average of {k}" for k in ks) + " |",
             "|---|---|---|---|" + "---|" * len(ks)]
    for row in r["rows"]:
        cells = [f"{row['averaged'][str(k)]:.2f}" if str(k) in row["averaged"] else "–" for k in ks]
        # files written before the eps column existed used EntropicMap's default, 0.01
        lines.append(f"| {row['n']} | {row.get('relative_eps', 0.01):g} | {row['maps']} | "
                     f"{row['single_mean']:.2f} ± "
                     f"{row['single_std']:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_maps(d, r):
    lines = [f"d = {d}: the objective's terms at named maps (fits on {r['n_fit']} samples a side, "
             f"{r['n_iter']} steps; S_eps on {r['n_eval']} points; gaps: mean over {r['repeats']} "
             f"batches of {r['batch_size']})",
             "| map | L2-UVP % | S_eps(T#mu, nu) | Monge gap (plain) | Monge gap (debiased) |",
             "|---|---|---|---|---|"]
    for row in r["rows"]:
        lines.append(f"| {row['map']} | {row['l2_uvp']:.1f} | {row['sinkhorn_divergence']:.3f} | "
                     f"{row['monge_gap']:.3f} | {row['monge_gap_debiased']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse
    import datetime
    import sys

    from .w2bench import _pair_cached, machine_info, versions_info

    ap = argparse.ArgumentParser(prog="python -m monge.experiments.maps.estimator_bias",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--dims", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--no-maps", action="store_true", help="skip the table at named maps")
    ap.add_argument("--n-iter", type=int, default=1000, help="steps of the MongeGapMap fits")
    ap.add_argument("--n-fit", type=int, default=2048, help="samples a side for the fitted maps")
    ap.add_argument("--bagging", nargs="*", type=int, metavar="N K",
                    help="only the bagging table: pairs of (points a side, maps), default 2048 16 8192 6")
    ap.add_argument("--relative-eps", type=float, nargs="+", default=[0.01],
                    help="with --bagging: the entropic maps' eps / mean squared distance, each")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.bagging is not None and len(args.bagging) % 2:
        ap.error("--bagging: expected pairs N K")
    res = dict(meta=dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                         command="python -m monge.experiments.maps.estimator_bias " + " ".join(
                             argv if argv is not None else sys.argv[1:]),
                         machine=machine_info(), versions=versions_info(),
                         data=dict(path=os.path.abspath(args.data), pairs="validation (v1)")),
               dims={})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in args.dims:
            pair = _pair_cached(args.data, d, ("v1",))
            if args.bagging is not None:
                sizes = list(zip(args.bagging[::2], args.bagging[1::2])) or [(2048, 16), (8192, 6)]
                r = res["dims"][str(d)] = dict(bagging=measure_bagging(
                    pair, sizes, relative_eps=args.relative_eps))
                print(render_bagging(d, r["bagging"]), flush=True)
                continue
            r = measure(pair, args.batch_size, repeats=args.repeats)
            if not args.no_maps:
                r["maps"] = measure_maps(pair, args.batch_size, n_iter=args.n_iter,
                                         n_fit=args.n_fit, n_eval=max(args.n_fit, 512))
            res["dims"][str(d)] = r
            print(render_one(d, r), flush=True)
            if "maps" in r:
                print(render_maps(d, r["maps"]), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


def render_one(d, r):
    keys = [k for k in ("sinkhorn_divergence", "split", "monge_gap", "monge_gap_debiased")
            if k in r["rows"][0]]
    lines = [f"d = {d}, batch {r['batch_size']}, {r['repeats']} batches: mean (± s.e.)",
             "| s | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for row in r["rows"]:
        best = {k: min(rr[k][0] for rr in r["rows"]) == row[k][0] for k in keys}
        lines.append(f"| {row['scale']:g} | " + " | ".join(
            ("**" if best[k] else "") + f"{row[k][0]:.4f} ± {row[k][1]:.4f}" + ("**" if best[k] else "")
            for k in keys) + " |")
    return "\n".join(lines) + "\n"


def render(path):
    with open(path) as fh:
        res = json.load(fh)
    out = []
    for d, r in res["dims"].items():
        if "bagging" in r:
            out.append(render_bagging(int(d), r["bagging"]))
        else:
            out.append(render_one(int(d), r) + ("\n" + render_maps(int(d), r["maps"])
                                                if "maps" in r else ""))
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
