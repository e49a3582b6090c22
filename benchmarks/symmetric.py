#!/usr/bin/env python
"""Iterations of the symmetric step (the divergence's self-terms OT_eps(a, a)) on a fixed set of
problems: online divergences (squared euclidean, euclidean, p-norms, unbalanced, d = 1 to 3) and
multiscale self-terms.  Iteration counts are deterministic, so two checkouts compare exactly:
run this in each and compare the results files (docs/design/sinkhorn.md, "The symmetric step").

    python benchmarks/symmetric.py [--out FILE] [--quick]

The divergence's count includes its transport term (monge_sinkhorn_divergence's n_iter: the
transport's plus both self-terms'); the times are medians of three calls, for orientation only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import numpy as np  # noqa: E402

import monge  # noqa: E402
from monge import multiscale as ms  # noqa: E402
from _common import markdown_table, recorded  # noqa: E402

# (n, d, eps, cost, p, tau): x ~ U[0,1]^d, y ~ U[0.1,0.9]^d, seed 1
ONLINE = [(2000, 2, 1e-3, "sqeuclidean", 2.0, None), (4000, 3, 1e-3, "sqeuclidean", 2.0, None),
          (3000, 3, 1e-2, "euclidean", 2.0, None), (2000, 2, 1e-2, "sqeuclidean", 2.0, 0.1),
          (3000, 1, 1e-4, "sqeuclidean", 2.0, None), (1500, 2, 1e-2, "pnorm", 3.0, None),
          (1500, 2, 1e-2, "pnorm", 1.0, None)]
# (n, d): x ~ U[0,1]^d in float32, seed 0, eps = 1e-3
MULTISCALE = [(30000, 3), (100000, 3), (30000, 2)]


def median_time(fn, reps):
    ts, r = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        r = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="results file (default benchmarks/results/symmetric-DATE.json)")
    ap.add_argument("--quick", action="store_true", help="the first case of each kind, one call")
    args = ap.parse_args(argv)
    reps = 1 if args.quick else 3
    online = ONLINE[:1] if args.quick else ONLINE
    multi = MULTISCALE[:1] if args.quick else MULTISCALE

    def body(record):
        rows, cases = [], []
        for n, d, eps, cost, p, tau in online:
            rng = np.random.default_rng(1)
            x = rng.random((n, d))
            y = rng.random((n, d)) * 0.8 + 0.1
            t, r = median_time(lambda: monge.sinkhorn_divergence(x, y, eps=eps, cost=cost, p=p,
                                                                 tau=tau, grad=True), reps)
            name = f"online divergence, {cost}" + (f" p={p:g}" if cost == "pnorm" else "") + \
                (f", tau={tau:g}" if tau else "") + f", n={n}, d={d}, eps={eps:g}"
            cases.append(dict(case=name, n_iter=int(r.n_iter), value=float(r.value),
                              converged=bool(r.converged), seconds=t))
        for n, d in multi:
            x = np.random.default_rng(0).random((n, d), dtype=np.float32)
            t, r = median_time(lambda: ms.solve(x, x, eps=1e-3, warn=False, symmetric=True,
                                                grads=("x",)), reps)
            cases.append(dict(case=f"multiscale self-term, n={n}, d={d}, eps=0.001",
                              n_iter=int(r.n_iter), value=float(r.value),
                              converged=bool(r.converged), seconds=t))
        for c in cases:
            rows.append([c["case"], c["n_iter"], f"{c['value']:.12g}", c["converged"],
                         f"{c['seconds']:.3f}"])
        print(markdown_table(["case", "iterations", "value", "converged", "seconds"], rows))
        record["cases"] = cases
        return 0 if all(c["converged"] for c in cases) else 1

    return recorded("symmetric", "symmetric.py", sys.argv[1:] if argv is None else argv,
                    ["numpy"], "generated: uniform clouds (seeds in the script)", body,
                    out=args.out, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
