"""The Sinkhorn engine's heuristic constants, judged on a committed suite of generated problems.

    python benchmarks/sinkhorn_suite.py --sweep            # tuning half: one constant at a time
    python benchmarks/sinkhorn_suite.py --held-out         # held-out half: the defaults (and --set)
    python benchmarks/sinkhorn_suite.py --render FILE...   # the docs tables of results files

The generator draws a few hundred varied problems from their seeds: sizes 50-4000 (pnorm 50-1500), dimensions 1-30,
Gaussian / clustered / duplicated / uniform clouds, sqeuclidean / euclidean / pnorm / cosine costs,
eps from 1e-4 to 1e-1 x the max cost, balanced and unbalanced, uniform or random weights, float64
and float32.  Even seeds are the tuning half, odd seeds the held-out half.  Each solve uses
monge.sinkhorn's defaults (eps_scaling, Anderson, over-relaxation and kernel all 'auto'), one
thread, and records iterations, time and whether it converged; a configuration is judged by its
failures to converge first, then its total iterations (time is reported, but the machine is shared
and noisy; iterations are not).  The constants are set through the engine's private table
(monge._core.sinkhorn_tuning), so no rebuild is needed.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import markdown_table, recorded  # noqa: E402

N_PROBLEMS = 300
# one-at-a-time grids around each default; the middle value of each list is the current default
GRIDS = {
    "aa_damp_after": [10, 20, 40, 80, 160],
    "aa_damp": [3e-5, 1e-4, 3e-4, 1e-3, 3e-3],
    "aa_restart": [1e1, 1e2, 1e3, 1e4, 1e5],
    "aa_stall": [50, 100, 200, 400, 800],
    "relax_first": [2, 3, 5, 8, 12],
    "relax_window": [5, 10, 20, 40, 80],
    "auto_probe": [25, 50, 100, 200, 400],
    "auto_budget": [500, 1000, 2000, 4000, 8000],
    "auto_late": [200, 400, 800, 1600, 3200],
    "ker_stall": [10, 20, 40, 80, 160],
    "auto_anneal": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
}
# constants of the table that act only where a step sets its own stall limit (the multiscale
# solver's refining levels), judged by the benchmark named here instead of this suite
ELSEWHERE = {"aa_stall_near": "benchmarks/multiscale.py --tune-stall",
             "ms_gal_max": "a memory limit of the multiscale correction, not a heuristic"}
# eps / max cost is drawn log-uniformly from this range; --rel-eps widens it (the annealing threshold
# sits at its lower end, so judging it needs problems below it)
REL_EPS = (1e-4, 1e-1)


def _max_cost(x, y, cost, p):
    import monge

    best = 0.0
    for i in range(0, len(x), 512):
        best = max(best, float(monge.cost_matrix(x[i:i + 512], y, cost=cost, p=p).max()))
    return best


def _cloud(rng, n, d, kind):
    if kind == "gaussian":
        return rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, size=d)
    if kind == "uniform":
        return rng.random((n, d))
    if kind == "clustered":
        k = int(rng.integers(2, 9))
        centres = rng.standard_normal((k, d)) * 4.0
        return centres[rng.integers(0, k, size=n)] + 0.05 * rng.standard_normal((n, d))
    # duplicated: a quarter of distinct points, each repeated
    base = rng.standard_normal((max(1, n // 4), d))
    return base[rng.integers(0, len(base), size=n)]


def problem(seed, rel_eps=REL_EPS):
    """The problem of one seed, as the keyword arguments of monge.sinkhorn plus a description."""
    rng = np.random.default_rng([20261203, seed])
    n = int(round(math.exp(rng.uniform(math.log(50), math.log(4000)))))
    m = max(20, int(round(n * math.exp(rng.uniform(math.log(0.5), math.log(2.0))))))
    m = min(m, 4000)
    d = int(rng.choice([1, 2, 3, 5, 10, 30]))
    kind = str(rng.choice(["gaussian", "uniform", "clustered", "duplicated"]))
    cost = str(rng.choice(["sqeuclidean", "sqeuclidean", "euclidean", "pnorm", "cosine"]))
    p = 1.5 if cost == "pnorm" else 2.0
    if cost == "pnorm":
        # its online cost is a pow() per entry and iteration (~0.1 us): up to 1500 points keeps a
        # small-eps solve under a few seconds
        n, m = min(n, 1500), min(m, 1500)
    x = _cloud(rng, n, d, kind)
    y = _cloud(rng, m, d, str(rng.choice(["gaussian", "uniform", "clustered", "duplicated"])))
    y = y + rng.standard_normal(d) * 0.5
    if cost == "cosine":
        x += 1e-3                                    # no zero vector
        y += 1e-3
    weights = bool(rng.random() < 0.3)
    a = b = None
    if weights:
        a = rng.random(n) + 0.1
        b = rng.random(m) + 0.1
        a /= a.sum()
        b /= b.sum()
    dtype = np.float32 if rng.random() < 0.3 else np.float64
    rel = float(math.exp(rng.uniform(math.log(rel_eps[0]), math.log(rel_eps[1]))))
    cmax = _max_cost(x, y, cost, p)
    tau = None
    if rng.random() < 0.25:
        tau = float(cmax * rng.choice([0.1, 1.0, 10.0]))
    kw = dict(x=x.astype(dtype), y=y.astype(dtype), a=a, b=b, eps=rel * cmax, cost=cost, p=p,
              tau=tau)
    desc = dict(seed=seed, n=n, m=m, d=d, kind=kind, cost=cost, rel_eps=rel, weights=weights,
                unbalanced=tau is not None, dtype=np.dtype(dtype).name)
    return kw, desc


def halves(n_problems):
    seeds = range(n_problems)
    return {"tuning": [s for s in seeds if s % 2 == 0], "held_out": [s for s in seeds if s % 2]}


def _solve(args):
    seed, config, rel_eps = args
    import monge
    from monge import _core
    from monge._policy import ConvergenceWarning

    for k, v in config.items():
        _core.sinkhorn_tuning(k, float(v))
    kw, desc = problem(seed, rel_eps)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = monge.sinkhorn(**kw, nthreads=1)
    secs = time.perf_counter() - t0
    return dict(seed=seed, n_iter=int(r.n_iter), converged=bool(r.converged),
                error=float(r.error), seconds=secs)


def run_config(seeds, config, pool, rel_eps=REL_EPS):
    """config: every constant's value (the workers keep the table between tasks)."""
    rows = pool.map(_solve, [(s, config, rel_eps) for s in seeds], chunksize=1)
    return rows


def summary(rows):
    it = np.array([r["n_iter"] for r in rows])
    return dict(problems=len(rows), failures=int(sum(not r["converged"] for r in rows)),
                total_iter=int(it.sum()), worst_iter=int(it.max()), median_iter=float(np.median(it)),
                total_seconds=float(sum(r["seconds"] for r in rows)))


def _fmt_value(v):
    return f"{v:g}"


def analyse(res, margin=0.03):
    """Per constant of a sweep, each value's failures, its total iterations and the geometric mean
    of its per-problem iteration ratio to the defaults, over the problems that converge under every
    value of that constant (their number: 'common').  A few problems are chaotic (their iterations
    swing 5x between neighbouring values, or a failure to converge comes and goes), and they
    dominate the totals, so the choice uses the geometric mean: the default stays unless another
    value has no more failures, a ratio <= 1 - margin, and grid neighbours (other than the default)
    with ratios <= 1 too (a flat region, not one lucky value)."""
    base = next(c for c in res["configs"] if not c["set"])
    out = {}
    for name in GRIDS:
        if name not in res["defaults"]:
            continue
        runs = {res["defaults"][name]: base}
        for c in res["configs"]:
            if list(c["set"]) == [name]:
                runs[c["set"][name]] = c
        if len(runs) < 2:
            continue
        values = sorted(runs)
        iters = {v: {r["seed"]: r["n_iter"] for r in runs[v]["rows"]} for v in values}
        ok = set.intersection(*({r["seed"] for r in runs[v]["rows"] if r["converged"]} for v in values))
        d = res["defaults"][name]
        total = {v: sum(iters[v][s] for s in ok) for v in values}
        geo = {v: math.exp(sum(math.log(max(iters[v][s], 1) / max(iters[d][s], 1)) for s in ok)
                           / max(len(ok), 1)) for v in values}
        fails = {v: runs[v]["summary"]["failures"] for v in values}
        chosen = d
        for i, v in enumerate(values):
            nb = [values[j] for j in (i - 1, i + 1) if 0 <= j < len(values) and values[j] != d]
            if v != d and fails[v] <= fails[d] and geo[v] <= 1 - margin and \
                    all(geo[u] <= 1 for u in nb) and (chosen == d or geo[v] < geo[chosen]):
                chosen = v
        out[name] = dict(values=values, total=total, geo=geo, failures=fails, common=len(ok),
                         default=d, chosen=chosen)
    return out


def _summary_table(res):
    rows = []
    for c in res["configs"]:
        s = c["summary"]
        rows.append([c["name"] or "defaults", s["failures"], s["total_iter"], s["worst_iter"],
                     f"{s['median_iter']:g}", f"{s['total_seconds']:.1f}"])
    return markdown_table(["configuration", "not converged", "total iterations", "worst", "median",
                           "seconds (one thread)"], rows)


def _changed_by_cost(res):
    """The problems whose iterations differ between the two configurations of a held-out run, by
    cost: iterations and one-thread seconds under each, and the geometric mean of the iteration
    ratio over the problems that converge under both."""
    a, b = ({r["seed"]: r for r in c["rows"]} for c in res["configs"])
    both = [s for s in a if a[s]["converged"] and b[s]["converged"]]
    geo = math.exp(sum(math.log(max(b[s]["n_iter"], 1) / max(a[s]["n_iter"], 1)) for s in both)
                   / max(len(both), 1))
    lo, hi = res.get("rel_eps", REL_EPS)
    agg = {}
    for s in a:
        if a[s]["n_iter"] != b[s]["n_iter"]:
            g = agg.setdefault(problem(s, (lo, hi))[1]["cost"], [0, 0, 0, 0.0, 0.0])
            g[0] += 1
            g[1] += a[s]["n_iter"]
            g[2] += b[s]["n_iter"]
            g[3] += a[s]["seconds"]
            g[4] += b[s]["seconds"]
    names = [c["name"] or "defaults" for c in res["configs"]]
    rows = [[cost, str(g[0]), f"{g[1]} → {g[2]}", f"{g[3]:.2f} → {g[4]:.2f}"]
            for cost, g in sorted(agg.items(), key=lambda kv: -kv[1][0])]
    return (f"Geometric mean of the per-problem iterations, {names[1]} / {names[0]}, over the "
            f"{len(both)} problems that converge under both: ×{geo:.3f}. The problems whose "
            f"iterations differ, by cost ({names[0]} → {names[1]}):\n\n"
            + markdown_table(["cost", "problems", "iterations", "seconds (one thread)"], rows))


def _load(path):
    """A results file, its path absolute or relative to the repository root."""
    with open(path if os.path.isabs(path) else os.path.join(os.path.dirname(HERE), path)) as fh:
        return json.load(fh)


def render(paths):
    out = []
    for path in paths:
        res = _load(path)
        n = res["configs"][0]["summary"]["problems"]
        lo, hi = res.get("rel_eps", REL_EPS)
        if (lo, hi) != REL_EPS:
            out.append(f"The suite with eps from {lo:g} to {hi:g} x the max cost (--rel-eps).\n")
        if res["kind"] == "sweep":
            out.append(f"Tuning half ({n} problems), one constant at a time, the others at their "
                       "defaults. Each value: the geometric mean of its iterations / the defaults' "
                       "per problem and its total iterations, both over the problems that converge "
                       "under every value of that constant (their number in brackets), and its "
                       "failures to converge among all the problems; bold: the default.\n")
            rows = []
            for name, a in analyse(res).items():
                cells = []
                for v in a["values"]:
                    cell = (f"{_fmt_value(v)}: ×{a['geo'][v]:.3f}, {a['total'][v]}"
                            + (f", {a['failures'][v]} failed" if a["failures"][v] else ""))
                    cells.append(f"**{cell}**" if v == a["default"] else cell)
                rows.append([f"`{name}` [{a['common']}]", " · ".join(cells),
                             _fmt_value(a["chosen"])])
            out.append(markdown_table(["constant [problems]", "value: ratio, total (failures)",
                                       "chosen"], rows))
            out.append("")
            out.append("Every configuration of the sweep, over all the tuning problems:\n")
            out.append(_summary_table(res))
        else:
            out.append(f"Held-out half ({n} problems):\n")
            out.append(_summary_table(res))
            if len(res["configs"]) == 2:
                out.append("")
                out.append(_changed_by_cost(res))
        out.append("")
        out.append(f"Source: `{os.path.basename(path)}` — `{res['command']}`, {res['date']}, commit "
                   f"{res['commit'][:10]}, {res['machine']['cpu']} ({res['machine']['nproc']} cores, "
                   f"load {res['machine']['load_at_start'][0]:.2f} at the start).")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def compare_engines(old_path, new_path):
    """Markdown: the defaults of two runs of the same half and eps range, made by two versions of
    the engine (iterations are deterministic, so the problems whose count moved are the ones the
    change touched): totals, failures, and each problem that changed."""
    old, new = _load(old_path), _load(new_path)
    if old["kind"] != new["kind"] or old.get("rel_eps") != new.get("rel_eps"):
        raise ValueError("compare_engines: the two runs must cover the same half and eps range")
    a = {r["seed"]: r for r in old["configs"][0]["rows"]}
    b = {r["seed"]: r for r in new["configs"][0]["rows"]}
    if set(a) != set(b):
        raise ValueError("compare_engines: the two runs hold different problems")
    moved = [s for s in sorted(a) if a[s]["n_iter"] != b[s]["n_iter"]
             or a[s]["converged"] != b[s]["converged"]]
    lo, hi = new.get("rel_eps", REL_EPS)
    rows = []
    for s in moved:
        d = problem(s, (lo, hi))[1]
        rows.append([str(s), f"{d['n']} x {d['m']}, d = {d['d']}", d["kind"], d["cost"],
                     f"{d['rel_eps']:.2g}",
                     d["dtype"] + (", unbalanced" if d["unbalanced"] else ""),
                     f"{a[s]['n_iter']} → {b[s]['n_iter']}"
                     + ("" if b[s]["converged"] else " (not converged)")])
    fail = [sum(not r["converged"] for r in x.values()) for x in (a, b)]
    out = [f"{'Tuning' if new['kind'] == 'sweep' else 'Held-out'} half, the defaults: commit "
           f"{old['commit'][:10]} → {new['commit'][:10]}. {len(moved)} of {len(a)} problems "
           f"change; total iterations {sum(r['n_iter'] for r in a.values())} → "
           f"{sum(r['n_iter'] for r in b.values())}; not converged {fail[0]} → {fail[1]}.\n",
           markdown_table(["seed", "size", "clouds", "cost", "eps / max cost", "dtype",
                           "iterations"], rows), "",
           f"Sources: `{os.path.basename(old_path)}` and `{os.path.basename(new_path)}`."]
    return "\n".join(out) + "\n"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweep", action="store_true", help="one-at-a-time grids on the tuning half")
    ap.add_argument("--held-out", action="store_true", help="the defaults on the held-out half")
    ap.add_argument("--only", nargs="+", default=None, help="constants to sweep (default: all)")
    ap.add_argument("--values", type=float, nargs="+", default=None,
                    help="with --sweep and one --only constant: these values instead of its grid")
    ap.add_argument("--set", default=None, metavar="JSON",
                    help='with --held-out: a second configuration, e.g. \'{"aa_stall": 50}\'')
    ap.add_argument("--problems", type=int, default=N_PROBLEMS)
    ap.add_argument("--rel-eps", type=float, nargs=2, default=list(REL_EPS), metavar=("LO", "HI"),
                    help="range of eps / max cost (default %(default)s)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--render", nargs="+", default=None, metavar="JSON")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render), end="")
        return 0
    if not (args.sweep or args.held_out):
        ap.error("pass --sweep, --held-out or --render")
    if not 0 < args.rel_eps[0] < args.rel_eps[1]:
        ap.error(f"--rel-eps: need 0 < LO < HI, got {args.rel_eps}")
    from monge import _core

    defaults = _core.sinkhorn_tuning()
    split = halves(args.problems)
    configs = [("", {})]
    if args.sweep:
        seeds, kind = split["tuning"], "sweep"
        if args.values and len(args.only or []) != 1:
            ap.error("--values: name one constant with --only")
        for name in args.only or GRIDS:
            if name not in GRIDS:
                ap.error(f"--only: unknown constant {name} (one of {', '.join(GRIDS)})")
            for v in args.values or GRIDS[name]:
                if v != defaults[name]:
                    configs.append((f"{name} = {_fmt_value(v)}", {name: v}))
    else:
        seeds, kind = split["held_out"], "held_out"
        if args.set:
            extra = json.loads(args.set)
            configs.append((", ".join(f"{k} = {_fmt_value(v)}" for k, v in extra.items()), extra))
    def body(record):
        record.update(kind=kind, defaults=defaults, rel_eps=list(args.rel_eps), configs=[])
        with mp.get_context("fork").Pool(args.jobs) as pool:
            for name, cfg in configs:
                t0 = time.perf_counter()
                rows = run_config(seeds, {**defaults, **cfg}, pool, tuple(args.rel_eps))
                s = summary(rows)
                record["configs"].append(dict(name=name, set=cfg, summary=s, rows=rows))
                print(f"{name or 'defaults':28s} fail {s['failures']:3d}  total {s['total_iter']:8d}  "
                      f"worst {s['worst_iter']:6d}  median {s['median_iter']:6g}  "
                      f"{s['total_seconds']:7.1f} s  ({time.perf_counter() - t0:.0f} s wall)",
                      flush=True)

    recorded(f"sinkhorn-suite-{kind.replace('_', '-')}", "sinkhorn_suite.py", argv,
             ["numpy", "monge"], {"source": "generated by benchmarks/sinkhorn_suite.py "
                                            "(problem(seed))", "seeds": seeds}, body, out=args.out,
             why="re-judge the Sinkhorn engine's heuristic constants (issue 19)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
