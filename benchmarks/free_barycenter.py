#!/usr/bin/env python
"""Free-support barycenter benchmark: monge.free_support_barycenter against POT's
ot.lp.free_support_barycenter, side by side.

    python benchmarks/free_barycenter.py           K = 10 clouds of 1000 points (and 200)
    python benchmarks/free_barycenter.py --quick   K = 3 clouds of 100 points: a smoke test

Inputs (generated, seeded): K clouds in 2-D, each a random affine image of a three-component
Gaussian mixture, sizes m_k drawn in [0.8 m, m], uniform weights; the barycenter has n = m points,
started at the same n points drawn from the inputs for both libraries.  Both run the same
fixed-point iteration with exact plans (network simplex) from the same start: monge stops when the
objective's relative change <= 1e-9 (its default), POT when the points' displacement
sum |X_k+1 - X_k|^2 <= 1e-7 (its default stopThr), both capped at 100 iterations.  Accuracy: the
objective sum_k W_2^2(X, Y_k) / K of the returned points, computed here by monge.emd for both; a
POT row counts as at equal accuracy when its objective is within 1e-6 (relative) of monge's or
lower.  The ratio is POT's time over monge's.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (cpu_model, fmt_time, interleaved, load_average, markdown_table,  # noqa: E402
                     recorded, section, usable_cpus, versions)

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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/free_barycenter-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("free_barycenter", "free_barycenter.py", argv, ["numpy", "ot", "monge"],
                    "generated (random affine images of a 2-D Gaussian mixture, seed 0)",
                    lambda record: run(args), out=args.out, quick=args.quick)


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'ot', 'monge'])}; monge threads "
          f"{monge.get_num_threads()}")
    cases = [(3, 100)] if args.quick else [(10, 200), (10, 1000)]
    head = ["case", "solver", "median", "objective", "POT's time / monge's", "warnings"]
    rows = []
    for K, m in cases:
        rows += case(K, m)
        print(markdown_table(head, rows[-2:]), flush=True)
    section("summary")
    print(markdown_table(head, rows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
