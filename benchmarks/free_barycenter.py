#!/usr/bin/env python
"""Free-support barycenter benchmark: monge.free_support_barycenter against POT's
ot.lp.free_support_barycenter, side by side.

    python benchmarks/free_barycenter.py           K = 10 clouds of 1000 points (and 200)
    python benchmarks/free_barycenter.py --quick   K = 3 clouds of 100 points: a smoke test
    python benchmarks/free_barycenter.py --entropic  entropic plans: monge's Sinkhorn inner
                                                     solves against OTT-JAX's
                                                     FreeWassersteinBarycenter

Inputs (generated, seeded): K clouds in 2-D, each a random affine image of a three-component
Gaussian mixture, sizes m_k drawn in [0.8 m, m], uniform weights; the barycenter has n = m points,
started at the same n points drawn from the inputs for both libraries.  Both run the same
fixed-point iteration with exact plans (network simplex) from the same start: monge stops when the
objective's relative change <= 1e-9 (its default), POT when the points' displacement
sum |X_k+1 - X_k|^2 <= 1e-7 (its default stopThr), both capped at 100 iterations.  Accuracy: the
objective sum_k W_2^2(X, Y_k) / K of the returned points, computed here by monge.emd for both; a
POT row counts as at equal accuracy when its objective is within 1e-6 (relative) of monge's or
lower.  The ratio is POT's time over monge's.
--entropic: the same iteration with entropic plans (eps = 0.01 x the inputs' mean squared
distance to their mean, absolute), monge's free_support_barycenter(method='entropic') against
OTT-JAX's FreeWassersteinBarycenter (Sinkhorn inner solves at threshold 1e-6, float64,
jit-compiled in a child process after monge; its first, compiling call shown apart, then one
timed call: a call takes minutes), K = 10 clouds of 200 points only, both from
the same start with at most 100 outer iterations on their own rules (monge: relative change of
the objective <= 1e-6, its default with entropic plans, and a second row at 1e-8 with at most 300;
OTT: its threshold 1e-6 on the change of its entropic objective).  Equal
accuracy as above, on the exact objective of the returned points.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, cpu_model, first_and_timed, fmt_time, interleaved,  # noqa: E402
                     load_average, markdown_table, recorded, section, usable_cpus, versions)

import ot  # noqa: E402

import monge  # noqa: E402


def clouds(K, m, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(K):
        mk = int(rng.integers(int(0.8 * m), m + 1))
        comp = rng.integers(0, 3, mk)
        base = np.array([[0.0, 0.0], [3.0, 0.0], [1.5, 2.5]])[comp] + 0.5 * rng.standard_normal((mk, 2))
        A = np.eye(2) + 0.3 * rng.standard_normal((2, 2))
        out.append(base @ A.T + rng.standard_normal(2))
    return out


def objective(X, Y):
    return float(np.mean([monge.emd(x=X, y=y).cost for y in Y]))


def case(K, m):
    Y = clouds(K, m)
    rng = np.random.default_rng(1)
    allpts = np.concatenate(Y)
    X0 = allpts[rng.choice(len(allpts), m, replace=False)]
    b = [np.full(len(y), 1.0 / len(y)) for y in Y]
    fns = {"monge": lambda: monge.free_support_barycenter(Y, X_init=X0, max_iter=100).X,
           "POT": lambda: ot.lp.free_support_barycenter(Y, b, X0, numItermax=100)}
    t = interleaved(fns, repeats=3, warmup=1, min_total=1.0, max_repeats=7)
    v0 = objective(t["monge"].result, Y)
    rows = []
    for k, v in t.items():
        obj = objective(v.result, Y)
        equal = k == "monge" or obj <= v0 * (1 + 1e-6)
        ratio = v.median / t["monge"].median
        verdict = "–" if k == "monge" else (f"{ratio:.2f}" if equal else
                                            f"({ratio:.2f}: higher objective)")
        rows.append([f"K = {K}, m ≈ {m}, n = {m}", k, fmt_time(v.median), f"{obj:.8f}", verdict,
                     "; ".join(w.split(":")[0] for w in v.warnings) or ""])
    return rows


def _ott_free_child(Y, X0, eps, repeats):
    """In a fresh process: OTT-JAX's FreeWassersteinBarycenter, jit-compiled; (first call's time,
    the timed calls' times, the last points)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from ott.problems.linear import barycenter_problem as ott_bp
    from ott.solvers.linear import continuous_barycenter as ott_cb
    from ott.solvers.linear import sinkhorn as ott_sk

    mmax = max(len(y) for y in Y)
    ys = np.zeros((len(Y), mmax, Y[0].shape[1]))
    bs = np.zeros((len(Y), mmax))
    for k, y in enumerate(Y):
        ys[k, :len(y)] = y
        bs[k, :len(y)] = 1.0 / len(y)
    prob = ott_bp.FreeBarycenterProblem(jnp.asarray(ys), jnp.asarray(bs), epsilon=eps)
    solver = ott_cb.FreeWassersteinBarycenter(
        ott_sk.Sinkhorn(threshold=1e-6, max_iterations=5000), threshold=1e-6,
        max_iterations=100)
    fn = jax.jit(lambda x0: solver(prob, bar_size=len(X0), x_init=x0).x)
    x0 = jnp.asarray(X0)
    return first_and_timed(fn, x0, repeats)


def entropic_case(K, m):
    import multiprocessing as mp

    Y = clouds(K, m)
    rng = np.random.default_rng(1)
    allpts = np.concatenate(Y)
    X0 = allpts[rng.choice(len(allpts), m, replace=False)]
    eps = 0.01 * float(np.mean([((y - y.mean(0)) ** 2).sum(1).mean() for y in Y]))
    fns = {"monge (entropic)": lambda: monge.free_support_barycenter(
        Y, X_init=X0, method="entropic", eps=eps, max_iter=100).X,
           "monge (entropic, tol 1e-8)": lambda: monge.free_support_barycenter(
        Y, X_init=X0, method="entropic", eps=eps, tol=1e-8, max_iter=300).X}
    t = interleaved(fns, repeats=3, warmup=1, min_total=1.0, max_repeats=5)
    try:
        with mp.get_context("spawn").Pool(1) as pool:
            first, times, out = pool.apply(_ott_free_child, (Y, X0, eps, 1))
        t[f"OTT-JAX (jit, own process; first call {fmt_time(first)})"] = Timing(times, out, [])
    except ImportError as e:
        print(f"OTT-JAX not available: {e}")
    v0 = objective(t["monge (entropic)"].result, Y)
    rows = []
    for k, v in t.items():
        obj = objective(v.result, Y)
        equal = k.startswith("monge") or obj <= v0 * (1 + 1e-6)
        ratio = v.median / t["monge (entropic)"].median
        verdict = "–" if k.startswith("monge") else (f"{ratio:.2f}" if equal else
                                                     f"({ratio:.2f}: higher objective)")
        rows.append([f"K = {K}, m ≈ {m}, n = {m}, eps = {eps:.3g}", k, fmt_time(v.median),
                     f"{obj:.8f}", verdict, "; ".join(w.split(":")[0] for w in v.warnings) or ""])
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--entropic", action="store_true",
                    help="entropic plans, against OTT-JAX's FreeWassersteinBarycenter")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/free_barycenter-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("free_barycenter-entropic" if args.entropic else "free_barycenter",
                    "free_barycenter.py", argv, ["numpy", "ot", "monge", "jax", "ott"],
                    "generated (random affine images of a 2-D Gaussian mixture, seed 0)",
                    lambda record: run(args), out=args.out, quick=args.quick)


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'ot', 'monge', 'jax', 'ott'])}; monge threads "
          f"{monge.get_num_threads()}")
    cases = [(3, 100)] if args.quick else [(10, 200)] if args.entropic else [(10, 200), (10, 1000)]
    head = ["case", "solver", "median", "objective", "POT's time / monge's", "warnings"]
    if args.entropic:
        head[4] = "OTT-JAX's time / monge's"
    rows = []
    for K, m in cases:
        new = entropic_case(K, m) if args.entropic else case(K, m)
        rows += new
        print(markdown_table(head, new), flush=True)
    section("summary")
    print(markdown_table(head, rows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
