#!/usr/bin/env python
"""Exact OT benchmark: monge.emd (network simplex) against POT's ot.emd2, and against scipy's
linear_sum_assignment on assignment problems, side by side in one run.

    python benchmarks/emd.py              n = m = 1000, 4000, 10000 (about 10 minutes, most of it POT)
    python benchmarks/emd.py --quick      n = m = 500, 1000: a smoke test
    python benchmarks/emd.py --sizes 1000 2000 --no-memory
    python benchmarks/emd.py --block      block-size scan of the pricing rule (monge only)

A full run writes benchmarks/results/emd-DATE.json (command, commit, date, machine, versions, the
rows and the printed log); --out PATH writes elsewhere (also for --quick), --why TEXT records why.

Cases
  transport   x, y ~ U[0, 1]^2 (seed 0), uniform weights, C = |x - y|^2 (float64).  Contenders,
              each timed on its solve alone, each returning the optimal cost from its own call:
              POT ot.emd2(a, b, C, numItermax=10**9) (the cost computed in POT's C code; iteration
              cap lifted so that it is optimal); monge.emd(a, b, C) (same dense C; its result's
              cost is computed in monge's C code); monge.emd(x=x, y=y) (costs computed on demand,
              no n x m matrix).  Equal accuracy: both are exact; the relative difference of the
              costs is computed after the timing (it must be ~1e-15; larger is flagged).
              Ratio = monge / POT (target <= 1.0).
  memory      each contender's call once in a fresh process; peak RSS minus the peak of a process
              that only builds the same inputs (so the dense C counts for nobody).
  assignment  n x n uniform random costs in [0, 1), uniform weights 1/n: monge.emd against
              scipy.optimize.linear_sum_assignment (LAPJV); costs compared.
Times are medians of interleaved repeats after a warm-up (benchmarks/_common.py); the machine is
shared, so the ratios are what to read.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Tee, cpu_model, fmt_time, interleaved, load_average,  # noqa: E402
                     markdown_table, results_path, results_record, run_with_peak_rss, section,
                     usable_cpus, versions, write_results)

import monge  # noqa: E402


# costs of two exact solvers must agree to rounding; a larger relative difference is flagged
COST_RTOL = 1e-12
POT = "POT ot.emd2"


def clouds(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 2)), rng.random((n, 2))


def transport_case(n, repeats):
    """Times the three contenders side by side; returns (table rows, records for the file)."""
    import ot

    x, y = clouds(n)
    C = ot.dist(x, y)
    a = np.full(n, 1.0 / n)
    # Each timed call is one solve that returns the optimal cost computed in the solver's own C
    # code: ot.emd2 returns it as a float, monge.emd in its result (read after the timing, with the
    # pivot count).  Nothing else (no dense plan times C) is inside the timed region.
    fns = {
        POT: lambda: ot.emd2(a, a, C, numItermax=10**9),
        "monge dense C": lambda: monge.emd(a, a, C),
        "monge online": lambda: monge.emd(a, a, x=x, y=y),
    }
    reps = {POT: repeats[0], "monge dense C": repeats[1], "monge online": repeats[1]}
    warm = {POT: 0 if n >= 10000 else 1, "monge dense C": 1, "monge online": 1}
    t = interleaved(fns, repeats=reps, warmup=warm, min_total=0.5, max_repeats=7)
    # the cost agreement check, outside the timed region
    ref = float(t[POT].result)
    rows, recs = [], []
    for k in fns:
        res = t[k].result
        cost = float(res) if k == POT else float(res.cost)
        pivots = None if k == POT else int(res.n_iter)
        optimal = True if k == POT else bool(res.converged)
        ratio = t[k].median / t[POT].median
        diff = abs(cost - ref) / abs(ref)
        flag = "" if diff <= COST_RTOL and optimal else " (!)"
        rows.append([n, k, fmt_time(t[k].median), len(t[k].times), f"{ratio:.3f}",
                     "-" if pivots is None else f"{pivots:,}", f"{diff:.1e}{flag}"])
        recs.append(dict(n=n, solver=k, median_s=t[k].median, times_s=t[k].times,
                         ratio_vs_pot=ratio, pivots=pivots, cost=cost, rel_cost_diff=diff,
                         optimal=optimal, warnings=t[k].warnings))
        for w in t[k].warnings:  # e.g. POT's "numItermax reached": the cost is then not optimal
            print(f"  {k} warned: {w}")
        if diff > COST_RTOL:
            print(f"  (!) n = {n}: {k}'s cost differs from POT's by {diff:.1e} relative "
                  f"(> {COST_RTOL:g}): the two are not both optimal")
    return rows, recs


_WORKER = r"""
import numpy as np, sys
n, which = int(sys.argv[1]) if len(sys.argv) > 1 else {n}, "{which}"
rng = np.random.default_rng(0)
x, y = rng.random(({n}, 2)), rng.random(({n}, 2))
a = np.full({n}, 1.0 / {n})
import ot, monge
C = ot.dist(x, y)
if which == "POT":
    ot.emd2(a, a, C, numItermax=10**9)
elif which == "dense":
    monge.emd(a, a, C)
elif which == "online":
    monge.emd(a, a, x=x, y=y)
print("ok")
"""


def memory_case(n):
    out = {}
    for which in ("none", "POT", "dense", "online"):
        _, rss = run_with_peak_rss(_WORKER.format(n=n, which=which), timeout=3600)
        out[which] = rss
    base = out["none"]
    return [[n, "inputs only (x, y, C)", f"{base:.0f}", "-"],
            [n, POT, f"{out['POT']:.0f}", f"{out['POT'] - base:.0f}"],
            [n, "monge dense C", f"{out['dense']:.0f}", f"{out['dense'] - base:.0f}"],
            [n, "monge online", f"{out['online']:.0f}", f"{out['online'] - base:.0f}"]]


def assignment_case(n):
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(1)
    C = rng.random((n, n))
    fns = {"scipy linear_sum_assignment": lambda: C[linear_sum_assignment(C)].sum() / n,
           "monge.emd": lambda: monge.emd(None, None, C).cost}
    t = interleaved(fns, repeats=3, warmup=1, min_total=0.5, max_repeats=7)
    ref = t["scipy linear_sum_assignment"].result
    base = t["scipy linear_sum_assignment"].median
    return [[n, k, fmt_time(t[k].median), f"{t[k].median / base:.3f}",
             f"{abs(t[k].result - ref) / ref:.1e}"] for k in fns]


def block_scan(sizes):
    rows = []
    for n in sizes:
        x, y = clouds(n)
        C = monge.cost_matrix(x, y)
        for f in (0.125, 0.25, 0.5, 1.0):
            B = max(64, int(f * n))
            fns = {"dense": lambda B=B: monge.emd(None, None, C, block_size=B),
                   "online": lambda B=B: monge.emd(x=x, y=y, block_size=B)}
            t = interleaved(fns, repeats=3, warmup=1, min_total=0.3, max_repeats=5)
            rows.append([n, f"{f:g} sqrt(nm) = {B}", fmt_time(t["dense"].median),
                         f"{t['dense'].result.n_iter:,}", fmt_time(t["online"].median),
                         f"{t['online'].result.n_iter:,}"])
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+")
    ap.add_argument("--repeats", type=int, default=None,
                    help="minimum timed runs per contender (default 3; 1 for POT at n >= 10000)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-assignment", action="store_true")
    ap.add_argument("--block", action="store_true")
    ap.add_argument("--out", help="results file (default: benchmarks/results/emd-DATE.json; "
                    "--quick writes none unless --out is given)")
    ap.add_argument("--why", default="", help="why the run was made, recorded in the results file")
    args = ap.parse_args(argv)
    if args.sizes and min(args.sizes) < 2:
        raise ValueError(f"--sizes: every n must be >= 2, got {args.sizes}")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats: must be >= 1, got {args.repeats}")
    sizes = args.sizes or ([500, 1000] if args.quick else [1000, 4000, 10000])
    out = None if args.block else results_path("emd", args.out, args.quick)
    record = results_record("emd.py", argv, ["numpy", "ot", "scipy", "monge"],
                            "generated: x, y ~ U[0,1]^2, seed 0 (benchmarks/emd.py)", args.why)
    with Tee() as tee:
        run(args, sizes, record)
    if out:
        record["log"] = tee.lines
        print(f"results written to {write_results(out, record)}")


def run(args, sizes, record):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'ot', 'scipy', 'monge'])}")
    print(f"monge build: {monge.build_info()}; threads: {monge.get_num_threads()} (the network "
          "simplex is sequential; POT's too)")
    if args.block:
        section("block size of the pricing rule (monge)")
        print(markdown_table(["n = m", "block", "dense C", "pivots", "online", "pivots"],
                             block_scan(sizes)))
        return
    section("transport: n = m, d = 2, uniform weights, time to the optimal cost")
    rows = []
    record["transport"] = []
    for n in sizes:
        reps = (1, 3) if n >= 10000 else (3, 3)
        if args.repeats is not None:
            reps = (args.repeats, args.repeats)
        r, recs = transport_case(n, reps)
        rows += r
        record["transport"] += recs
        print(markdown_table(["n = m", "solver", "median", "runs", "ratio vs POT", "pivots",
                              "rel. cost diff"], rows[-3:]), flush=True)
    section("transport: summary")
    print(markdown_table(["n = m", "solver", "median", "runs", "ratio vs POT", "pivots",
                          "rel. cost diff"], rows))
    if not args.no_memory:
        section("peak memory (MiB, fresh process each)")
        mrows = []
        for n in sizes:
            mrows += memory_case(n)
        print(markdown_table(["n = m", "process", "peak RSS", "minus inputs"], mrows))
        record["memory_mib"] = [dict(n=r[0], process=r[1], peak_rss=float(r[2]),
                                     minus_inputs=None if r[3] == "-" else float(r[3]))
                                for r in mrows]
    if not args.no_assignment:
        section("assignment: n x n uniform costs, vs scipy linear_sum_assignment")
        arows = []
        for n in ([300, 1000] if args.quick else [1000, 2000, 4000]):
            arows += assignment_case(n)
        print(markdown_table(["n", "solver", "median", "ratio vs scipy", "rel. cost diff"], arows))
        record["assignment"] = [dict(n=r[0], solver=r[1], median=r[2], ratio_vs_scipy=float(r[3]),
                                     rel_cost_diff=float(r[4])) for r in arows]
    print(f"\nload at the end: {load_average()}; finished {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    main()
