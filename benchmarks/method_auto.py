#!/usr/bin/env python
"""Where method='auto' switches to the multiscale solver: the exact online solve against the
multiscale one over a grid of problems, the rule judged on a tuning grid and reported on a held-out
grid of other sizes, dimensions, eps and seeds.

    python benchmarks/method_auto.py --tuning      the grid the rule's thresholds are read from
    python benchmarks/method_auto.py --held-out    other problems: how often the rule picks the faster
    python benchmarks/method_auto.py --quick       a smoke run (two small problems, no results file)

Each problem: two float32 clouds (uniform in the unit cube, or "blobs": a mixture of ten Gaussians
of standard deviation 0.05 with centres uniform in the cube, the same centres for both clouds),
uniform weights, the Sinkhorn divergence with its gradient in x, eps = eps_rel x the squared
diameter of the two clouds' bounding box (the max cost, up to rounding), each method at its own
default tol (1e-4 on the L1 marginal error for float32; the multiscale bound included), all threads.
One timed run per method after an untimed one at the same size (the ratios that decide are large
near the switch only by chance; the table shows them all).  Tuning: seed 0, d in 1 2 3 4 6 8,
n = m in 500 ... 8000, eps_rel in 1e-2 1e-3 1e-4.  Held-out: seed 1, d in 2 3 5 7,
n in 1500 3000 6000 (m = n for the cube, n / 2 for the blobs), eps_rel in 3e-3 3e-4.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (cpu_model, fmt_time, load_average, markdown_table, recorded,  # noqa: E402
                     section, usable_cpus, versions)

GRIDS = {
    "tuning": dict(seed=0, dims=(1, 2, 3, 4, 6, 8), sizes=(500, 1000, 2000, 4000, 8000),
                   eps_rel=(1e-2, 1e-3, 1e-4), half_m_blobs=False),
    "held_out": dict(seed=1, dims=(2, 3, 5, 7), sizes=(1500, 3000, 6000),
                     eps_rel=(3e-3, 3e-4), half_m_blobs=True),
    "quick": dict(seed=0, dims=(2,), sizes=(1000,), eps_rel=(1e-3,), half_m_blobs=True),
}


def clouds(kind, n, m, d, seed):
    rng = np.random.default_rng([seed, n, m, d, kind == "blobs"])
    if kind == "cube":
        return rng.random((n, d)), rng.random((m, d))
    centres = rng.random((10, d))

    def draw(k):
        return centres[rng.integers(0, 10, k)] + 0.05 * rng.normal(size=(k, d))
    return draw(n), draw(m)


def timed(x, y, eps, method):
    import monge
    t = time.perf_counter()
    r = monge.sinkhorn_divergence(x, y, eps=eps, grad=("x",), method=method)
    return time.perf_counter() - t, r


def problems(grid):
    g = GRIDS[grid]
    for kind in ("cube", "blobs"):
        for d in g["dims"]:
            for n in g["sizes"]:
                m = n // 2 if g["half_m_blobs"] and kind == "blobs" else n
                for er in g["eps_rel"]:
                    yield kind, d, n, m, er, g["seed"]


def run(grid, record):
    import warnings

    import monge
    judge = grid != "tuning"      # the rule is read from the tuning grid, judged on the others
    if judge:
        from monge.multiscale import auto_method
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'monge'])}")
    head = ["clouds", "d", "n", "m", "eps_rel", "exact", "multiscale", "exact / multiscale",
            "value rel. diff."] + (["auto picks", "auto's choice"] if judge else [])
    rows, per, warmed = [], [], set()
    for kind, d, n, m, er, seed in problems(grid):
        x, y = (c.astype(np.float32) for c in clouds(kind, n, m, d, seed))
        lo, hi = np.minimum(x.min(0), y.min(0)), np.maximum(x.max(0), y.max(0))
        eps = float(er * np.sum((hi - lo).astype(np.float64) ** 2))
        if (d, n) not in warmed:   # first call at a size: page faults and thread start-up
            timed(x, y, eps, "exact")
            timed(x, y, eps, "multiscale")
            warmed.add((d, n))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            te, re_ = timed(x, y, eps, "exact")
            tm, rm = timed(x, y, eps, "multiscale")
        diff = abs(rm.value - re_.value) / max(abs(re_.value), 1e-300)
        ratio = te / tm
        pick = auto_method(x, y, eps) if judge else None
        right = pick is None or (pick == "multiscale") == (ratio > 1)
        regret = 1.0 if right else (max(te, tm) / min(te, tm))
        per.append(dict(kind=kind, d=d, n=n, m=m, eps_rel=er, eps=eps, seed=seed, exact=te,
                        multiscale=tm, converged=[re_.converged, rm.converged],
                        n_iter=[re_.n_iter, rm.n_iter], value_rel_diff=diff, auto=pick,
                        regret=regret, warnings=[str(w.message)[:200] for w in caught]))
        row = [kind, str(d), f"{n:,}", f"{m:,}", f"{er:g}", fmt_time(te), fmt_time(tm),
               f"{ratio:.2f}", f"{diff:.1e}"]
        if judge:
            row += [pick, "faster" if right else f"×{regret:.2f} slower"]
        rows.append(row)
        print(markdown_table(head, [row]), flush=True)
    record["problems"] = per
    record["grid"] = grid
    section("summary")
    print(markdown_table(head, rows))
    if not judge:
        print(f"monge {monge.__version__}; load at the end: {load_average()}")
        return
    wrong = [p for p in per if p["regret"] > 1]
    tot_auto = sum(min(p["exact"], p["multiscale"]) * p["regret"] for p in per)
    tot_exact = sum(p["exact"] for p in per)
    tot_best = sum(min(p["exact"], p["multiscale"]) for p in per)
    print(f"\n{len(per)} problems; auto picks the faster method on {len(per) - len(wrong)}; "
          f"where it does not, the worst slow-down is "
          f"×{max([p['regret'] for p in wrong], default=1.0):.2f}.")
    print(f"Total time: always exact {fmt_time(tot_exact)}, auto {fmt_time(tot_auto)}, "
          f"the faster of the two each time {fmt_time(tot_best)}.")
    print(f"monge {monge.__version__}; load at the end: {load_average()}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--tuning", action="store_true", help="the grid the thresholds are read from")
    g.add_argument("--held-out", action="store_true", help="other problems, to judge the rule")
    g.add_argument("--quick", action="store_true", help="a smoke run (no results file)")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/...)")
    args = ap.parse_args(argv)
    grid = "tuning" if args.tuning else "held_out" if args.held_out else "quick"
    spec = GRIDS[grid]
    data = (f"generated (cube / ten-Gaussian blobs, seed {spec['seed']}, d in {spec['dims']}, "
            f"n in {spec['sizes']}, eps_rel in {spec['eps_rel']})")
    return recorded(f"method-auto-{grid.replace('_', '-')}", "method_auto.py", argv,
                    ["numpy", "monge"], data, lambda record: run(grid, record), out=args.out,
                    quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
