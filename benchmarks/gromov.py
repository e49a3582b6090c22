#!/usr/bin/env python
"""Gromov–Wasserstein benchmark: monge.gromov_wasserstein / fused_gromov_wasserstein against POT's
ot.gromov solvers, side by side.

    python benchmarks/gromov.py                n = m = 200, 1000, 3000 (entropic up to 1000: POT's
                                               NumPy Sinkhorn would take hours at 3000)
    python benchmarks/gromov.py --quick        n = m = 100: a smoke test
    python benchmarks/gromov.py --sizes 200 1000

Problems (generated, seeded): x, n points of a noisy 2-D spiral; y, m points of the same spiral
drawn again, rotated into 3-D and with 3-D noise, so the two spaces match up to noise and share no
coordinates.  C1, C2 are their Euclidean distance matrices divided by their largest entry.  Fused
GW adds a feature cost M_ij = (s_i - s_j')^2 / max, s the spiral's arc parameter plus noise, with
alpha = 0.5.  Cases:
  GW, cg            monge 'cg' against ot.gromov.gromov_wasserstein (both: Frank-Wolfe with the
                    exact solver and the exact line search from the product plan; both stop on the
                    change of the objective, tol_rel 1e-9, tol_abs 1e-9, POT's defaults)
  FGW, cg           the same with fused_gromov_wasserstein
  GW, entropic      monge 'entropic' against ot.gromov.entropic_gromov_wasserstein (PGD), eps =
                    0.01: POT stops on |T_k - T_{k-1}|_F <= 1e-9 checked every 10 iterations, with
                    its inner Sinkhorn's defaults (1000 iterations, stopThr 1e-9); monge on the
                    objective's change (1e-9) with Sinkhorn to an L1 marginal error of 1e-9
  POT (tight)       the same with tol 1e-12, 20000 outer iterations, and Sinkhorn's numItermax
                    100000, stopThr 1e-12: POT at the accuracy monge's defaults reach
  OTT-JAX           ott.solvers.quadratic.GromovWasserstein (when installed), jit-compiled, float64,
                    epsilon = eps / 2 (OTT linearises with half our gradient: the same fixed point),
                    threshold 1e-9 on its own criterion, inner Sinkhorn threshold 1e-9; timed after
                    a first (compiling) call, whose time the row's name gives, in a spawned process
                    after the others (XLA changes process-wide state that biased them)
With --points: the clouds x, y themselves with C1, C2 their squared Euclidean distances (the clouds
scaled to unit diameter), monge given the clouds (low-rank products, O(n m d)) against monge and POT
given the dense matrices.
Accuracy: the objective reached (GW or FGW at the returned plan, from the plan here; lower is
better: both solvers are deterministic from the same start, so they should reach the same
stationary point), the plan's L1 marginal error, and the L1 distance of the plan to a reference
(monge at tol 1e-12).  A cg row counts as at equal accuracy when its objective is within 1e-6
(relative) of monge's or lower with a marginal error <= 1e-6; an entropic row when its distance to
the reference (the one fixed point both iterations approach) is at most 1.5 x monge's (or 1e-6).
The ratio is the contender's time over monge's; in parentheses when it is less accurate.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, cpu_model, fmt_time, interleaved, load_average,  # noqa: E402
                     markdown_table, recorded, section, usable_cpus, versions)

import ot  # noqa: E402

import monge  # noqa: E402

try:                                            # optional: pip install '.[bench]'
    import ott  # noqa: F401  (run in a child process: see ott_entropic)
    HAVE_OTT = True
except ImportError:
    HAVE_OTT = False


def _ott_child(C1, C2, eps, repeats):
    """In a fresh process: OTT-JAX's entropic GW, jit-compiled; (first call's time, the timed
    calls' times, the last plan).  OTT linearises with tens(T), half our gradient, so its epsilon
    eps / 2 has our fixed point at eps (checked: plans within 1e-8 at n = 200)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from ott.geometry import geometry as ott_geometry
    from ott.problems.quadratic import quadratic_problem as ott_qp
    from ott.solvers.linear import sinkhorn as ott_sinkhorn
    from ott.solvers.quadratic import gromov_wasserstein as ott_gw

    prob = ott_qp.QuadraticProblem(ott_geometry.Geometry(cost_matrix=jnp.asarray(C1)),
                                   ott_geometry.Geometry(cost_matrix=jnp.asarray(C2)))
    solver = ott_gw.GromovWasserstein(
        linear_solver=ott_sinkhorn.Sinkhorn(threshold=1e-9, max_iterations=10000),
        epsilon=eps / 2, max_iterations=2000, threshold=1e-9, store_inner_errors=False)
    fn = jax.jit(solver)
    t0 = time.perf_counter()
    out = np.asarray(fn(prob).matrix)            # compiles
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = np.asarray(fn(prob).matrix)
        times.append(time.perf_counter() - t0)
    return first, times, out


def ott_entropic(t, C1, C2, eps, repeats):
    """Adds OTT-JAX's row to the timings t, run in a spawned process after the others: XLA
    changes process-wide state (threads, floating-point mode) that changed the other contenders'
    times when it shared their process."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        first, times, out = pool.apply(_ott_child, (C1, C2, eps, repeats))
    t[f"OTT-JAX (jit, own process; first call {fmt_time(first)})"] = Timing(times, out, [])


EPS = 0.01
ALPHA = 0.5


def problem(n, m, seed=0):
    rng = np.random.default_rng(seed)
    s, t = rng.uniform(0.5, 3 * np.pi, n), rng.uniform(0.5, 3 * np.pi, m)
    x = np.c_[s * np.cos(s), s * np.sin(s)] + 0.3 * rng.standard_normal((n, 2))
    y2 = np.c_[t * np.cos(t), t * np.sin(t), np.zeros(m)]
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    y = y2 @ Q.T + 0.3 * rng.standard_normal((m, 3))
    C1 = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    C2 = np.sqrt(((y[:, None] - y[None]) ** 2).sum(-1))
    fs, ft = s + 0.3 * rng.standard_normal(n), t + 0.3 * rng.standard_normal(m)
    M = (fs[:, None] - ft[None]) ** 2
    return C1 / C1.max(), C2 / C2.max(), M / M.max()


def cloud_pair(n, seed=0):
    """The spiral pair of problem(), as the clouds themselves, scaled to unit diameter."""
    rng = np.random.default_rng(seed)
    s, t = rng.uniform(0.5, 3 * np.pi, n), rng.uniform(0.5, 3 * np.pi, n)
    x = np.c_[s * np.cos(s), s * np.sin(s)] + 0.3 * rng.standard_normal((n, 2))
    Q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    y = np.c_[t * np.cos(t), t * np.sin(t), np.zeros(n)] @ Q.T + 0.3 * rng.standard_normal((n, 3))
    return x / np.ptp(x, 0).max(), y / np.ptp(y, 0).max()


def gw_value(C1, C2, T, M=None, alpha=1.0):
    """(1 - alpha) <M, T> + alpha GW(T), square loss, computed here from T (independent of both)."""
    r, c = T.sum(1), T.sum(0)
    gw = r @ (C1 ** 2) @ r + c @ (C2 ** 2) @ c - 2 * np.sum((C1 @ T @ C2.T) * T)
    return alpha * gw + ((1 - alpha) * float((M * T).sum()) if M is not None else 0.0)


def case(kind, n, seed=0):
    C1, C2, M = problem(n, n, seed)
    p = q = np.full(n, 1.0 / n)
    if kind == "GW, cg":
        ref = monge.gromov_wasserstein(C1, C2, tol=1e-12, tol_abs=0, max_iter=100000).plan
        fns = {"monge": lambda: monge.gromov_wasserstein(C1, C2).plan,
               "POT": lambda: ot.gromov.gromov_wasserstein(C1, C2, p, q)}
        val = lambda T: gw_value(C1, C2, T)  # noqa: E731
    elif kind == "FGW, cg":
        ref = monge.fused_gromov_wasserstein(M, C1, C2, alpha=ALPHA, tol=1e-12, tol_abs=0,
                                             max_iter=100000).plan
        fns = {"monge": lambda: monge.fused_gromov_wasserstein(M, C1, C2, alpha=ALPHA).plan,
               "POT": lambda: ot.gromov.fused_gromov_wasserstein(M, C1, C2, p, q, alpha=ALPHA)}
        val = lambda T: gw_value(C1, C2, T, M, ALPHA)  # noqa: E731
    elif kind == "GW, cg, point clouds":
        # squared Euclidean distances of the clouds themselves (not normalised: C = |x - x'|^2)
        x, y = cloud_pair(n, seed)
        S1 = ((x[:, None] - x[None]) ** 2).sum(-1)
        S2 = ((y[:, None] - y[None]) ** 2).sum(-1)
        ref = monge.gromov_wasserstein(S1, S2, tol=1e-12, tol_abs=0, max_iter=100000).plan
        fns = {"monge (x, y)": lambda: monge.gromov_wasserstein(x=x, y=y).plan,
               "monge (C1, C2)": lambda: monge.gromov_wasserstein(S1, S2).plan,
               "POT": lambda: ot.gromov.gromov_wasserstein(S1, S2, p, q)}
        val = lambda T: gw_value(S1, S2, T)  # noqa: E731
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = monge.gromov_wasserstein(C1, C2, method="entropic", eps=EPS, tol=1e-12,
                                           tol_abs=0, inner_tol=1e-12, max_iter=20000).plan
        fns = {"monge": lambda: monge.gromov_wasserstein(C1, C2, method="entropic", eps=EPS).plan,
               "POT": lambda: ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q, epsilon=EPS),
               "POT (tight)": lambda: ot.gromov.entropic_gromov_wasserstein(
                   C1, C2, p, q, epsilon=EPS, tol=1e-12, max_iter=20000, numItermax=100000,
                   stopThr=1e-12)}
        val = lambda T: gw_value(C1, C2, T)  # noqa: E731
    big = n >= 2000
    t = interleaved(fns, repeats=1 if big else 3, warmup=0 if big else 1,
                    min_total=0 if big else 1.0, max_repeats=1 if big else 7)
    if kind.endswith("entropic") and HAVE_OTT:
        ott_entropic(t, C1, C2, EPS, 1 if big else 3)
    lead = next(iter(t))                         # monge (the first contender)
    v0 = val(t[lead].result)
    d0 = np.abs(t[lead].result - ref).sum()
    rows = []
    for k, v in t.items():
        T = np.asarray(v.result)
        obj = val(T)
        err = np.abs(T.sum(1) - p).sum() + np.abs(T.sum(0) - q).sum()
        dist = np.abs(T - ref).sum()
        if kind.endswith("entropic"):   # one fixed point: the distance to it is the accuracy
            equal = k == lead or dist <= max(1.5 * d0, 1e-6)
        else:                           # a stationary point: the objective, on a feasible plan
            equal = k == lead or (obj <= v0 + 1e-6 * abs(v0) and err <= 1e-6)
        ratio = v.median / t[lead].median
        verdict = "–" if k == lead else (f"{ratio:.2f}" if equal else
                                          f"({ratio:.2f}: less accurate)")
        rows.append([f"{kind}, n = m = {n}", k, fmt_time(v.median), f"{obj:.10f}",
                     f"{dist:.1e}", f"{err:.0e}", verdict,
                     "; ".join(w.split(":")[0] for w in v.warnings) or ""])
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--points", action="store_true",
                    help="only the point-cloud case: monge on the clouds (low-rank squared "
                         "distances) against monge and POT on the dense matrices")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/gromov-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("gromov", "gromov.py", argv, ["numpy", "ot", "monge", "jax", "ott"],
                    "generated (a noisy 2-D spiral against a rotated noisy 3-D copy, seed 0)",
                    lambda record: run(args), out=args.out, quick=args.quick)


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'ot', 'monge', 'jax', 'ott'])}; monge threads "
          f"{monge.get_num_threads()}")
    sizes = [100] if args.quick else (args.sizes or [200, 1000, 3000])
    head = ["case", "solver", "median", "objective", "|T - T*|_1", "marginal error",
            "its time / monge's", "warnings"]
    rows = []
    for n in sizes:
        kinds = ("GW, cg, point clouds",) if args.points else ("GW, cg", "FGW, cg", "GW, entropic")
        for kind in kinds:
            if kind.endswith("entropic") and n > 1000:
                continue        # POT's NumPy Sinkhorn would take hours at this size
            before = len(rows)
            rows += case(kind, n)
            print(markdown_table(head, rows[-(len(rows) - before):]), flush=True)
    section("summary")
    print(markdown_table(head, rows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
