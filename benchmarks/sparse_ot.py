#!/usr/bin/env python
"""k-sparse OT benchmark: monge.sparse_ot (semi-dual, L-BFGS in C) against POT's
ot.smooth.smooth_ot_semi_dual(reg_type='sparsity_constrained') (NumPy + SciPy L-BFGS-B), side by
side in one run, at equal objective.

    python benchmarks/sparse_ot.py            n = m = 1000, k = 1, 2, 4, 8, inf (~15 minutes: POT
                                              needs minutes for k = 1, 2)
    python benchmarks/sparse_ot.py --quick    n = m = 200 (a smoke test; the ratios mean little)

Problem: n = m points uniform in the unit square, C = |x - y|^2 / max, uniform weights,
gamma = 1, k = max_nz = 1, 2, 4, 8 and inf (max_nz = n for POT; quadratic OT for monge).

Method (equal objective).  POT runs first with its defaults (stopThr = 1e-9, L-BFGS-B) and
numItermax = 10000; its semi-dual objective at the potential it returns, v_POT, is evaluated with
POT's own semi_dual_obj_grad.  The objective is maximised; monge's iterates are deterministic, so
the smallest number of monge iterations N whose semi-dual value is >= v_POT - 1e-6 |v_POT| is found
by bisection, and monge is timed with max_iter = N (it then stops on the iteration limit: its
ConvergenceWarning is expected and recorded, not an error).  Times are medians of repeats after a
warm-up (POT: one timed run when a run takes more than 30 s).  The ratio is POT time / monge time.
Also shown: monge with its default stopping rule (tol = 1e-6 on the L1 marginal error, max_iter =
1000) - its value relative to v_POT and its time.

Both use every available core (monge: OpenMP over columns; POT: NumPy/BLAS); the machine is shared
with other work, so the load average is printed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, cpu_model, fmt_time, interleaved, load_average,  # noqa: E402
                     markdown_table, section, usable_cpus, versions)

import monge  # noqa: E402
from monge import smooth  # noqa: E402

GAMMA = 1.0
KS = (1, 2, 4, 8, None)
REL = 1e-6
POT_MAX_ITER = 10000


def make_problem(n, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((n, 2))
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    C /= C.max()
    a = np.full(n, 1.0 / n)
    return a, a.copy(), np.ascontiguousarray(C)


def pot_solve(a, b, C, k):
    import ot.smooth

    n = C.shape[0]
    with contextlib.redirect_stdout(io.StringIO()):  # POT's sparse projection prints at each call
        _, log = ot.smooth.smooth_ot_semi_dual(a, b, C, GAMMA, reg_type="sparsity_constrained",
                                               max_nz=int(k or n), log=True,
                                               numItermax=POT_MAX_ITER)
    return log


def pot_value(a, b, C, k, alpha):
    import ot.smooth

    reg = ot.smooth.SparsityConstrained(max_nz=int(k or C.shape[0]), gamma=GAMMA)
    with contextlib.redirect_stdout(io.StringIO()):
        v, _ = ot.smooth.semi_dual_obj_grad(alpha, a, b, C, reg)
    return float(v)


def monge_solve(a, b, C, k, max_iter, tol=0.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        if k is None:
            return monge.quadratic_ot(a, b, C, GAMMA, tol=tol, max_iter=max_iter)
        return monge.sparse_ot(a, b, C, k, GAMMA, tol=tol, max_iter=max_iter)


def iterations_to_reach(a, b, C, k, target, cap=20000):
    """Smallest N with value(N iterations) >= target, or None (values are monotone in N up to
    the line search's noise allowance of 1e-12 relative)."""
    hi = 64
    while True:
        r = monge_solve(a, b, C, k, hi)
        if r.value >= target:
            break
        if r.n_iter < hi or hi >= cap:  # stopped early (stall / gradient) below the target
            return None, r
        hi = min(2 * hi, cap)
    lo = hi // 2 if hi > 64 else 0
    best = r
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = monge_solve(a, b, C, k, mid)
        if r.value >= target:
            hi, best = mid, r
        else:
            lo = mid
    return hi, best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args(argv)
    n = args.n or (200 if args.quick else 1000)

    section("Machine")
    print(f"cpu: {cpu_model()}, usable cores {usable_cpus()}, load average {load_average()}")
    print(f"monge {monge.__version__} {monge.build_info()}, threads {monge.get_num_threads()}")
    print("versions:", versions(["numpy", "scipy", "ot"]))

    a, b, C = make_problem(n)
    section(f"k-sparse OT, semi-dual, n = m = {n}, gamma = {GAMMA}, equal objective (rel {REL:g})")
    rows = []
    for k in KS:
        kname = "inf" if k is None else str(k)
        t0 = time.perf_counter()
        log = pot_solve(a, b, C, k)
        t_first = time.perf_counter() - t0
        v_pot = pot_value(a, b, C, k, log["alpha"])
        target = v_pot - REL * abs(v_pot)
        N, r_eq = iterations_to_reach(a, b, C, k, target)
        r_def = monge_solve(a, b, C, k, 1000, tol=1e-6)
        print(f"k = {kname}: POT {log['res'].nit} iterations, value {v_pot:.12g} "
              f"({log['res'].message}); monge reaches it in {N} iterations "
              f"(value {r_eq.value:.12g})", flush=True)
        if N is None:
            rows.append([kname, log["res"].nit, "-", fmt_time(t_first), "not reached", "-", "-", "-"])
            continue
        fns = {"pot": lambda: pot_solve(a, b, C, k),
               "monge": lambda: monge_solve(a, b, C, k, N),
               "monge_default": lambda: monge_solve(a, b, C, k, 1000, tol=1e-6)}
        if t_first > 30:  # one POT run is enough (and all the time budget allows)
            tm = interleaved({k_: fns[k_] for k_ in ("monge", "monge_default")}, repeats=5, warmup=1)
            tm["pot"] = Timing([t_first], log)
        else:
            tm = interleaved(fns, repeats=3, warmup={"pot": 0, "monge": 1, "monge_default": 1},
                             prior={"pot": Timing([t_first], log)})
        rel_def = (r_def.value - v_pot) / abs(v_pot)
        rows.append([kname, log["res"].nit, N, f"{fmt_time(tm['pot'].median)} (x{len(tm['pot'].times)})",
                     fmt_time(tm["monge"].median), f"{tm['pot'].median / tm['monge'].median:.0f}x",
                     f"{r_def.n_iter} it, {fmt_time(tm['monge_default'].median)}, {rel_def:+.1e}",
                     f"{r_eq.plan.col_nnz().max()} / {r_eq.plan.nnz}"])
    section("Summary")
    print(markdown_table(["k", "POT iterations", "monge iterations to POT's value", "POT time",
                          "monge time", "ratio POT/monge", "monge default (tol 1e-6): its, time, "
                          "value vs POT", "monge plan: max per column / nnz"], rows))
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
