#!/usr/bin/env python
"""monge.pot against POT, function by function: the speed-up a user gets from changing
``import ot`` to ``import monge.pot as ot``, with both results compared.

    python benchmarks/pot_dropin.py            the table of docs/coming-from-pot.md (about a minute)
    python benchmarks/pot_dropin.py --quick    small sizes: a smoke test

Each call is the same call, same arguments and POT's defaults, on both modules; times are medians
of interleaved repeats (benchmarks/_common.py); ratio = monge.pot time / POT time.  "difference"
is the largest absolute difference of the outputs (plan entries or values); "marginal error" (for
the entropic plans) is each plan's L1 violation of both marginals, computed here from the plan.
Each side keeps its own stopping rule (POT: stopThr on its L2 column error, every 10 iterations;
monge: stopThr on the L1 violation of both marginals, so at least as tight); numItermax is raised
to 10^4 on both so that POT's default cap does not end its run early.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import interleaved, markdown_table, recorded  # noqa: E402


def cases(quick):
    rng = np.random.default_rng(0)
    n2 = 300 if quick else 2000
    n1 = 10 ** 4 if quick else 10 ** 6
    x, y = rng.random((n2, 2)), rng.random((n2, 2)) + 0.2
    a = rng.random(n2) + 0.5
    b = rng.random(n2) + 0.5
    a, b = a / a.sum(), b / b.sum()
    u, v = rng.normal(size=n1), rng.normal(size=n1) + 0.5
    xs, ys = rng.random((10 ** 4 // (10 if quick else 1), 10)), rng.random((10 ** 4 // (10 if quick else 1), 10))
    it = dict(numItermax=10 ** 4)
    return [
        ("dist", f"{n2} x {n2}, d = 2", lambda ot: ot.dist(x, y), None),
        ("emd", f"n = m = {n2}", lambda ot: ot.emd(a, b, ot.dist(x, y)), None),
        ("emd2", f"n = m = {n2}", lambda ot: ot.emd2(a, b, ot.dist(x, y)), None),
        ("emd2_1d", f"n = m = {n1}", lambda ot: ot.emd2_1d(u, v), None),
        ("wasserstein_1d", f"n = m = {n1}, p = 2", lambda ot: ot.wasserstein_1d(u, v, p=2), None),
        ("sinkhorn", f"n = m = {n2}, reg = 0.01", lambda ot: ot.sinkhorn(a, b, ot.dist(x, y), 0.01, **it),
         (a, b)),
        ("sinkhorn (sinkhorn_log)", f"n = m = {n2}, reg = 0.01",
         lambda ot: ot.sinkhorn(a, b, ot.dist(x, y), 0.01, method="sinkhorn_log", **it), (a, b)),
        ("sinkhorn2", f"n = m = {n2}, reg = 0.01", lambda ot: ot.sinkhorn2(a, b, ot.dist(x, y), 0.01, **it),
         None),
        ("sinkhorn_unbalanced", f"n = m = {n2}, reg = 0.01, reg_m = 1",
         lambda ot: ot.sinkhorn_unbalanced(a, b, ot.dist(x, y), 0.01, 1.0, **it), None),
        ("bregman.empirical_sinkhorn_divergence", f"n = m = {n2 // 2}, reg = 0.05",
         lambda ot: ot.bregman.empirical_sinkhorn_divergence(x[:n2 // 2], y[:n2 // 2], 0.05), None),
        ("smooth.smooth_ot_dual", f"n = m = {n2 // 4}, reg = 0.5, l2",
         lambda ot: ot.smooth.smooth_ot_dual(a[:n2 // 4] / a[:n2 // 4].sum(), b[:n2 // 4] / b[:n2 // 4].sum(),
                                             ot.dist(x[:n2 // 4], y[:n2 // 4]), 0.5), None),
        ("sliced_wasserstein_distance", f"n = m = {len(xs)}, d = 10, 50 directions",
         lambda ot: ot.sliced_wasserstein_distance(xs, ys, seed=0), None),
    ]


def run(args, record):
    import warnings

    import ot

    import monge.pot as mp

    print(f"versions: POT {ot.__version__}")
    rows, record["cases"] = [], []
    for name, size, call, marg in cases(args.quick):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = interleaved({"monge": lambda: call(mp), "pot": lambda: call(ot)}, repeats=3)
        rm, rp = np.asarray(t["monge"].result, dtype=float), np.asarray(t["pot"].result, dtype=float)
        diff = float(np.max(np.abs(rm - rp)))
        err = ""
        if marg is not None:
            aa, bb = marg
            e = [float(np.abs(r.sum(1) - aa).sum() + np.abs(r.sum(0) - bb).sum()) for r in (rm, rp)]
            err = f"{e[0]:.1e} / {e[1]:.1e}"
        ratio = t["monge"].median / t["pot"].median
        rows.append([f"`{name}`", size, f"{t['monge'].median * 1e3:.1f}", f"{t['pot'].median * 1e3:.1f}",
                     f"{ratio:.3f}", f"{diff:.1e}", err])
        record["cases"].append(dict(function=name, size=size, monge_s=t["monge"].median,
                                    pot_s=t["pot"].median, ratio=ratio, difference=diff,
                                    marginal_error=err, monge_times=t["monge"].times,
                                    pot_times=t["pot"].times))
    print(markdown_table(["function", "problem", "monge.pot ms", "POT ms", "ratio", "difference",
                          "marginal error (monge / POT)"], rows))
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--why", default="")
    args = ap.parse_args(argv)
    return recorded("pot-dropin", "pot_dropin.py", argv, ["numpy", "ot", "monge"],
                    "generated: uniform and normal samples, seed 0 (benchmarks/pot_dropin.py)",
                    lambda record: run(args, record), out=args.out, quick=args.quick, why=args.why)


if __name__ == "__main__":
    raise SystemExit(main())
