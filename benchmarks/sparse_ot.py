#!/usr/bin/env python
"""k-sparse OT benchmark: monge.sparse_ot (semi-dual, L-BFGS in C) against POT's
ot.smooth.smooth_ot_semi_dual(reg_type='sparsity_constrained') (NumPy + SciPy L-BFGS-B), side by
side in one run, each with its own default stopping rule.

    python benchmarks/sparse_ot.py            n = m = 1000, k = 1, 2, 4, 8, inf (minutes: POT is
                                              slow for k = 1, 2)
    python benchmarks/sparse_ot.py --quick    n = m = 200 (a smoke test; the ratios mean little)
    python benchmarks/sparse_ot.py --n 100 --ks 1 inf --repeats 1 --out /tmp/sparse.json

A full run writes benchmarks/results/sparse_ot-DATE.json (command, commit, date, machine, versions,
the rows and the printed log); --out PATH writes elsewhere (also for --quick), --why TEXT records
why.

Problem: n = m points uniform in the unit square (seed 0), C = |x - y|^2 / max, uniform weights,
gamma = 1, k = max_nz = 1, 2, 4, 8 and inf (max_nz = n for POT; quadratic OT for monge).

Headline: each library as it comes.  monge.sparse_ot (monge.quadratic_ot for k = inf) with its
defaults (stop when the L1 marginal error <= tol = 1e-6, when the objective stops improving
(ftol), or at max_iter = 1000) against POT's smooth_ot_semi_dual with its defaults (SciPy
L-BFGS-B with tol = stopThr = 1e-9, numItermax = 500; --pot-max-iter changes the cap).  Each is
timed on its whole call (monge returns potentials and a sparse plan, POT potentials and a dense
plan).  For each, from what it returned: the semi-dual objective reached (both evaluated with POT's
semi_dual_obj_grad at the returned potential alpha, one formula for both; it is maximised), the L1
marginal error of its plan, sum_i |(T 1)_i - a_i| + sum_j |(T^T 1)_j - b_j|, its iterations and
why it stopped.  The ratio is POT time / monge time; the table says for each k whether monge's
objective (within 1e-6 relative) and marginal error (within 1e-12, rounding) are both at least as
good as POT's, which is what makes the ratio a like-for-like comparison.

Supplementary, an oracle: "time to POT's objective".  monge's iterates are deterministic, so the
smallest number N of monge iterations whose objective reaches POT's (>= v_POT - 1e-6 |v_POT|) is
found afterwards by bisection, and monge is timed with max_iter = N, tol = 0 (it stops on the
iteration limit; that ConvergenceWarning is expected).  It says how long monge takes to match POT's
objective when N is known in advance, which no user knows: it is not the headline.

Times are medians of interleaved repeats after a warm-up (POT: one timed run when a run takes more
than 30 s).  Both use every available core (monge: OpenMP over columns; POT: NumPy/BLAS); the load
average is printed and recorded.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, Tee, cpu_model, fmt_time, interleaved, load_average,  # noqa: E402
                     markdown_table, results_path, results_record, section, usable_cpus,
                     versions, write_results)

import monge  # noqa: E402

GAMMA = 1.0
KS = (1, 2, 4, 8, None)
REL = 1e-6          # objectives within this relative difference count as equal
ERR_ABS = 1e-12     # marginal errors closer than this are both rounding: they count as equal
SLOW_POT = 30.0     # seconds: above this one POT run is all the timing it gets


def make_problem(n, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((n, 2))
    C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    C /= C.max()
    a = np.full(n, 1.0 / n)
    return a, a.copy(), np.ascontiguousarray(C)


def pot_solve(a, b, C, k, max_iter):
    """POT with its defaults (stopThr, method), numItermax = max_iter unless None."""
    import ot.smooth

    kw = {} if max_iter is None else {"numItermax": max_iter}
    with contextlib.redirect_stdout(io.StringIO()):  # POT's sparse projection prints at each call
        return ot.smooth.smooth_ot_semi_dual(a, b, C, GAMMA, reg_type="sparsity_constrained",
                                             max_nz=int(k or C.shape[0]), log=True, **kw)


def pot_value(a, b, C, k, alpha):
    """The semi-dual objective at alpha, by POT's formula (the judge for both contenders)."""
    import ot.smooth

    reg = ot.smooth.SparsityConstrained(max_nz=int(k or C.shape[0]), gamma=GAMMA)
    with contextlib.redirect_stdout(io.StringIO()):
        v, _ = ot.smooth.semi_dual_obj_grad(np.asarray(alpha, np.float64), a, b, C, reg)
    return float(v)


def pot_default_max_iter():
    import ot.smooth

    return inspect.signature(ot.smooth.smooth_ot_semi_dual).parameters["numItermax"].default


def monge_default_max_iter():
    return inspect.signature(monge.sparse_ot).parameters["max_iter"].default


def marginal_error(T, a, b):
    """L1 violation of both marginals of a dense plan, in float64."""
    return float(np.abs(T.sum(axis=1) - a).sum() + np.abs(T.sum(axis=0) - b).sum())


def monge_default(a, b, C, k):
    """monge with its default stopping rule (tol, ftol, max_iter left alone)."""
    if k is None:
        return monge.quadratic_ot(a, b, C, GAMMA)
    return monge.sparse_ot(a, b, C, k, GAMMA)


def monge_capped(a, b, C, k, max_iter):
    """monge run for exactly max_iter iterations unless the objective stalls (tol = 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        if k is None:
            return monge.quadratic_ot(a, b, C, GAMMA, tol=0.0, max_iter=max_iter)
        return monge.sparse_ot(a, b, C, k, GAMMA, tol=0.0, max_iter=max_iter)


def iterations_to_reach(a, b, C, k, target, cap=20000):
    """Smallest N with value(N iterations) >= target, or None (values are monotone in N up to
    the line search's noise allowance of 1e-12 relative)."""
    hi = 64
    while True:
        r = monge_capped(a, b, C, k, hi)
        if r.value >= target:
            break
        if r.n_iter < hi or hi >= cap:  # stopped early (stall / gradient) below the target
            return None, r
        hi = min(2 * hi, cap)
    lo = hi // 2 if hi > 64 else 0
    best = r
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = monge_capped(a, b, C, k, mid)
        if r.value >= target:
            hi, best = mid, r
        else:
            lo = mid
    return hi, best


def time_pair(fns, first_pot, repeats):
    """Interleaved timing of {"pot", "monge", ...}, counting POT's first (already timed) run;
    a slow POT gets that one run only."""
    t_first = first_pot.times[0]
    if t_first > SLOW_POT:
        tm = interleaved({k: f for k, f in fns.items() if k != "pot"}, repeats=repeats, warmup=1)
        tm["pot"] = first_pot
        return tm
    warm = {k: 0 if k == "pot" else 1 for k in fns}
    return interleaved(fns, repeats=repeats, warmup=warm, prior={"pot": first_pot})


def run_k(a, b, C, k, args):
    """One k: the headline pair, then the oracle; returns (headline row, oracle row, record)."""
    kname = "inf" if k is None else str(k)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        G, log = pot_solve(a, b, C, k, args.pot_max_iter)
    first = Timing([time.perf_counter() - t0], (G, log),
                   [f"{w.category.__name__}: {w.message}" for w in caught])
    fns = {"pot": lambda: pot_solve(a, b, C, k, args.pot_max_iter),
           "monge": lambda: monge_default(a, b, C, k)}
    tm = time_pair(fns, first, args.repeats)
    G, log = tm["pot"].result
    r = tm["monge"].result
    tm["pot"].result = None  # drop the dense plans kept by the timing

    # what each returned, judged by one formula, outside the timed region
    res = log["res"]
    pot_cap = args.pot_max_iter or pot_default_max_iter()
    v_pot = pot_value(a, b, C, k, log["alpha"])
    e_pot = marginal_error(G, a, b)
    del G
    v_mon = pot_value(a, b, C, k, r.alpha)
    e_mon = marginal_error(r.plan.toarray(), a, b)
    rel_v = (v_mon - v_pot) / abs(v_pot)
    obj_ok = v_mon >= v_pot - REL * abs(v_pot)
    err_ok = e_mon <= e_pot + ERR_ABS
    ratio = tm["pot"].median / tm["monge"].median
    pot_stop = f"cap {pot_cap}" if res.nit >= pot_cap else "own tolerance"
    mon_stop = "tol" if r.converged else ("max_iter" if r.n_iter >= monge_default_max_iter()
                                          else "objective stalled")
    print(f"k = {kname}: POT {res.nit} it ({pot_stop}: {res.message}), objective {v_pot:.12g}, "
          f"marginal error {e_pot:.2e}, {tm['pot']}")
    print(f"        monge {r.n_iter} it ({mon_stop}), objective {v_mon:.12g} ({rel_v:+.1e} vs "
          f"POT; its own value {r.value:.12g}), marginal error {e_mon:.2e} (it reports "
          f"{r.error:.2e}), {tm['monge']}", flush=True)
    for who in ("pot", "monge"):
        for w in tm[who].warnings:
            print(f"        {'POT' if who == 'pot' else 'monge'} warned: {w}")
    verdict = ("yes" if obj_ok and err_ok else
               "no: " + ", ".join(s for s, bad in (("lower objective", not obj_ok),
                                                   ("larger marginal error", not err_ok)) if bad))
    head = [kname, f"{res.nit} ({pot_stop})",
            f"{fmt_time(tm['pot'].median)} (x{len(tm['pot'].times)})",
            f"{v_pot:.9g}", f"{e_pot:.1e}", f"{r.n_iter} ({mon_stop})",
            fmt_time(tm["monge"].median), f"{rel_v:+.1e}", f"{e_mon:.1e}", f"{ratio:.1f}x", verdict]
    rec = dict(k=kname,
               pot=dict(iterations=int(res.nit), stop=pot_stop, message=str(res.message),
                        objective=v_pot, marginal_error=e_pot, median_s=tm["pot"].median,
                        times_s=tm["pot"].times, warnings=tm["pot"].warnings),
               monge=dict(iterations=int(r.n_iter), stop=mon_stop, status=r.status,
                          converged=bool(r.converged), objective=v_mon, own_value=float(r.value),
                          rel_objective_vs_pot=rel_v, marginal_error=e_mon,
                          reported_error=float(r.error), median_s=tm["monge"].median,
                          times_s=tm["monge"].times, warnings=tm["monge"].warnings,
                          plan_max_col_nnz=int(r.plan.col_nnz().max()), plan_nnz=int(r.plan.nnz)),
               ratio_pot_over_monge=ratio, monge_objective_ok=bool(obj_ok),
               monge_error_ok=bool(err_ok))

    oracle = None
    if not args.no_oracle:
        target = v_pot - REL * abs(v_pot)
        N, r_eq = iterations_to_reach(a, b, C, k, target)
        if N is None:
            oracle = [kname, "not reached", "-", "-", "-"]
            rec["oracle"] = dict(iterations=None)
        else:
            to = interleaved({"monge": lambda: monge_capped(a, b, C, k, N)},
                             repeats=args.repeats, warmup=1)["monge"]
            e_eq = marginal_error(r_eq.plan.toarray(), a, b)
            oracle = [kname, N, fmt_time(to.median), f"{tm['pot'].median / to.median:.1f}x",
                      f"{e_eq:.1e}"]
            rec["oracle"] = dict(iterations=N, median_s=to.median, times_s=to.times,
                                 ratio_pot_over_monge=tm["pot"].median / to.median,
                                 objective=pot_value(a, b, C, k, r_eq.alpha), marginal_error=e_eq)
    return head, oracle, rec


def parse_k(s):
    """A k of --ks: a positive integer, or inf (no sparsity constraint: quadratic OT)."""
    if s.lower() in ("inf", "none"):
        return None
    try:
        k = int(s)
    except ValueError:
        raise ValueError(f"--ks: {s!r} is neither a positive integer nor 'inf'") from None
    if k < 1:
        raise ValueError(f"--ks: k must be >= 1 (or 'inf'), got {k}")
    return k


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="n = m = 200: a smoke test")
    ap.add_argument("--n", type=int, default=None, help="n = m (default 1000; 200 with --quick)")
    ap.add_argument("--ks", nargs="+", default=None, help="values of k, 'inf' for none "
                    "(default 1 2 4 8 inf)")
    ap.add_argument("--repeats", type=int, default=3, help="minimum timed runs (default 3)")
    ap.add_argument("--pot-max-iter", type=int, default=None,
                    help="POT's numItermax (default: POT's own default, 500 in POT 0.9)")
    ap.add_argument("--no-oracle", action="store_true",
                    help="skip the supplementary 'time to POT's objective' (bisection) column")
    ap.add_argument("--out", help="results file (default: benchmarks/results/sparse_ot-DATE.json; "
                    "--quick writes none unless --out is given)")
    ap.add_argument("--why", default="", help="why the run was made, recorded in the results file")
    args = ap.parse_args(argv)
    n = args.n if args.n is not None else (200 if args.quick else 1000)
    if n < 2:
        raise ValueError(f"--n: must be >= 2, got {n}")
    if args.repeats < 1:
        raise ValueError(f"--repeats: must be >= 1, got {args.repeats}")
    if args.pot_max_iter is not None and args.pot_max_iter < 1:
        raise ValueError(f"--pot-max-iter: must be >= 1, got {args.pot_max_iter}")
    ks = KS if args.ks is None else tuple(parse_k(s) for s in args.ks)

    out = results_path("sparse_ot", args.out, args.quick)
    record = results_record("sparse_ot.py", argv, ["numpy", "scipy", "ot", "monge"],
                            f"generated: x, y ~ U[0,1]^2, seed 0, n = m = {n}, C = |x-y|^2 / max, "
                            f"gamma = {GAMMA} (benchmarks/sparse_ot.py)", args.why)
    record["settings"] = dict(n=n, ks=["inf" if k is None else k for k in ks], gamma=GAMMA,
                              rel=REL, pot_max_iter=args.pot_max_iter or pot_default_max_iter(),
                              repeats=args.repeats)
    with Tee() as tee:
        heads, oracles, record["rows"] = [], [], []
        section("Machine")
        print(f"cpu: {cpu_model()}, usable cores {usable_cpus()}, load average {load_average()}")
        print(f"monge {monge.__version__} {monge.build_info()}, threads {monge.get_num_threads()}")
        print("versions:", versions(["numpy", "scipy", "ot"]))

        a, b, C = make_problem(n)
        section(f"k-sparse OT, semi-dual, n = m = {n}, gamma = {GAMMA}, each with its own "
                f"default stopping rule")
        for k in ks:
            head, oracle, rec = run_k(a, b, C, k, args)
            heads.append(head)
            record["rows"].append(rec)
            if oracle is not None:
                oracles.append(oracle)
        section("Summary: each with its own default stopping rule")
        print(markdown_table(["k", "POT its (stop)", "POT time", "POT objective",
                              "POT marg. err", "monge its (stop)", "monge time",
                              "monge objective vs POT (rel.)", "monge marg. err",
                              "ratio POT/monge", "monge at least as accurate?"], heads))
        if oracles:
            print("\nSupplementary (oracle): monge timed with the iteration count found afterwards "
                  f"to reach POT's objective (within {REL:g} relative), tol = 0")
            print(markdown_table(["k", "monge iterations to POT's objective",
                                  "time to POT's objective", "ratio POT/monge (oracle)",
                                  "monge marg. err there"], oracles))
        print(f"\nload average at the end: {load_average()}")
    if out:
        record["log"] = tee.lines
        print(f"results written to {write_results(out, record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
