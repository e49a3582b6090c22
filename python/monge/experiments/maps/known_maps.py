"""Map fitting on our own known-map sets: MongeGapMap with its defaults at lambda = 0 (fitting
loss only) and lambda = 'auto' (plus the Monge gap), beside the linear (Bures) and entropic maps of
the same samples, on datasets with a known optimal map and on 2-D toy shapes, over several seeds;
mean +- std of L2-UVP (known maps), S_eps(T#mu, nu) and the Monge gap.

    python -m monge.experiments.maps                 # full run (several minutes per dataset)
    python -m monge.experiments.maps --quick         # minutes-scale version
    python -m monge.experiments.maps --out results.json
    python -m monge.experiments.maps --render results.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from ...maps import datasets, metrics
from ...maps import MongeGapMap
from ..._policy import ConvergenceWarning


def problems(quick, n_test=2000):
    """name -> (sampler of (X, Y, X_test, Y_test), true map or None, Monge gap cost, lam)."""
    dims = (2, 8) if quick else (2, 8, 32, 64)

    def known(P, n):
        def sample(seed):
            return (P.sample_source(n, seed=seed), P.sample_target(n, seed=seed + 100),
                    P.sample_source(n_test, seed=seed + 200), P.sample_target(n_test, seed=seed + 300))
        return sample

    def toy(src, tgt, n):
        def sample(seed):
            return (src(n, seed=seed), tgt(n, seed=seed + 100), src(n_test, seed=seed + 200),
                    tgt(n_test, seed=seed + 300))
        return sample

    n = 2000 if quick else 8000
    out = {}
    P = datasets.gaussian_pair(2, seed=3)
    out["gaussian d=2"] = (known(P, n), P.map, "sqeuclidean", 0.0)
    for d in dims:
        P = datasets.ConvexPotentialMap(d, seed=0)
        out[f"convex-potential d={d}"] = (known(P, n), P.map, "sqeuclidean", 0.0)
    d_el = 4 if quick else 8
    P = datasets.ElasticMap(d_el, lam=0.5, seed=0)
    out[f"elastic d={d_el} (elastic cost)"] = (known(P, n), P.map, "elastic", 0.5)
    out["8 gaussians -> moons"] = (toy(datasets.eight_gaussians,
                                       lambda k, seed: 2 * datasets.moons(k, seed=seed), n),
                                   None, "sqeuclidean", 0.0)
    if not quick:
        out["circles -> checkerboard"] = (toy(datasets.circles, datasets.checkerboard, n), None,
                                          "sqeuclidean", 0.0)
        out["spiral -> moons"] = (toy(datasets.spiral, datasets.moons, n), None, "sqeuclidean", 0.0)
    return out


METHODS = ("linear", "entropic", "monge_gap")


def run(quick=False, seeds=(0, 1, 2), regs=None, n_iter=None, verbose=False, names=None,
        n_test=2000, baselines=True):
    """Fits and evaluates every (dataset, method, lambda, seed); `names` restricts the datasets.

    Methods: the linear (Bures) and entropic maps of the training samples (``baselines``), and
    MongeGapMap with its defaults at each lambda of ``regs`` (default 0 and 'auto')."""
    from ...maps import EntropicMap, LinearMap

    n_iter = n_iter or (400 if quick else 2000)
    if regs is None:
        regs = (0.0, "auto")     # without the gap, and with the default lambda
    results = []
    for name, (sample, true_map, cost, lam) in problems(quick, n_test).items():
        if names is not None and name not in names:
            continue
        fits = [("linear", None), ("entropic", None)] if baselines else []
        fits += [("monge_gap", reg) for reg in regs]
        for method, reg in fits:
            for seed in seeds:
                X, Y, Xt, Yt = sample(seed)
                t0 = time.perf_counter()
                if method == "linear":
                    est = LinearMap().fit(X, Y)
                elif method == "entropic":
                    est = EntropicMap().fit(X, Y)
                else:       # MongeGapMap's defaults, but the gap's cost and the budget
                    est = MongeGapMap(reg=reg, cost=cost, lam=lam if lam else 1.0, n_iter=n_iter,
                                      seed=seed, verbose=verbose).fit(X, Y)
                fit_time = time.perf_counter() - t0
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    ev = metrics.evaluate_map(est.transform, Xt, y_test=Yt, true_map=true_map,
                                              cost=cost, lam=lam if lam else 1.0)
                row = dict(dataset=name, method=method, reg=reg, seed=seed, fit_time=fit_time,
                           **{k: float(v) for k, v in ev.items()})
                if method == "monge_gap":
                    row["reg_value"] = float(est.reg_)
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
    return results


def _label(row):
    if row["method"] != "monge_gap":
        return row["method"]
    reg = row["reg"]
    return "Monge gap, λ = " + (f"{reg:g}" if not isinstance(reg, str) else
                                f"{reg} ({row['reg_value']:g})")


def table(results):
    """Markdown: a row per (dataset, method, lambda), mean ± std over seeds."""
    keys = ("l2_uvp", "sinkhorn_divergence", "monge_gap", "fit_time")
    lines = ["| dataset | map | L2-UVP % | S_ε(T♯μ, ν) | Monge gap | fit time (s) |",
             "|---|---|---|---|---|---|"]
    seen = []
    for r in results:
        key = (r["dataset"], r.get("method", "monge_gap"), r["reg"])
        if key not in seen:
            seen.append(key)
    for name, method, reg in seen:
        rows = [r for r in results if r["dataset"] == name and r.get("method", "monge_gap") ==
                method and r["reg"] == reg]
        cells = []
        for k in keys:
            vals = np.array([r[k] for r in rows if k in r], dtype=float)
            cells.append("-" if len(vals) == 0 or not np.isfinite(vals).all() else
                         f"{vals.mean():.3g} ± {vals.std(ddof=1) if len(vals) > 1 else 0:.2g}")
        label = _label(dict(rows[0], method=method))
        lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(path):
    """The table of a results file written by ``--out``, and the line naming its run."""
    from .._results import source_line

    with open(path) as fh:
        res = json.load(fh)
    st = res["meta"]["settings"]
    return (table(res["rows"]) + "\n\n" + f"{st['n_iter']} steps, {st['seeds']} seeds, mean ± std "
            f"(ddof = 1).  " + source_line(path, res["meta"]) + "\n")


def main(argv=None):
    from .. import _results

    ap = argparse.ArgumentParser(prog="python -m monge.experiments.maps", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, fewer datasets")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--reg", type=float, default=None,
                    help="lambda of the regularised fits (default: MongeGapMap's, 'auto')")
    ap.add_argument("--n-iter", type=int, default=None)
    ap.add_argument("--datasets", nargs="+", metavar="NAME", help="only these datasets (names as "
                    "in the table, e.g. 'convex-potential d=8')")
    ap.add_argument("--n-test", type=int, default=2000, help="held-out points per side")
    ap.add_argument("--out", help="results JSON (meta + per-run rows)")
    ap.add_argument("--render", metavar="JSON", help="print the table of a results file and exit")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render))
        return 0
    meta = _results.start("python -m monge.experiments.maps", argv)
    regs = None if args.reg is None else (0.0, args.reg)
    if args.datasets:
        unknown = set(args.datasets) - set(problems(args.quick, 2))
        if unknown:
            ap.error(f"--datasets: unknown {sorted(unknown)}; expected names from "
                     f"{sorted(problems(args.quick, 2))}")
    res = run(args.quick, seeds=tuple(range(args.seeds)), regs=regs, n_iter=args.n_iter,
              names=args.datasets, n_test=args.n_test)
    print(table(res))
    if args.out:
        n_iter = args.n_iter or (400 if args.quick else 2000)
        meta = _results.finish(meta, data="generated (monge.maps.datasets, seeded)",
                               settings=dict(quick=args.quick, n_iter=n_iter, seeds=args.seeds,
                                             regs=list(regs or (0.0, "auto")),
                                             n_test=args.n_test))
        _results.write(args.out, meta, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
