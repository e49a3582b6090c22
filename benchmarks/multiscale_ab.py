#!/usr/bin/env python
"""Two or more built checkouts of monge on the same multiscale divergence, interleaved: the
change between commits measured on a host whose speed drifts (on the shared 2-core machines it
moved by 15-40 % within an afternoon, so runs an hour apart do not compare).

    python benchmarks/multiscale_ab.py --trees /path/a /path/b [--sizes 100000] [--reps 5]

Each tree is a checkout with the extension built in place (python setup.py build_ext --inplace);
its python/ directory goes first on the worker's PYTHONPATH.  Each repetition runs every tree once,
in turn, each call in a fresh process: the divergence with its gradient in x of
benchmarks/multiscale.py's monge row (two clouds uniform in the unit cube, or its spheres, d = 3,
float32, eps = 1e-3, seed 0, tol 1e-4: the float32 default), so the times are that table's.
Reported: the median per tree, every time, and the median's ratio to the first tree's; the
value and iterations, which tell whether the trees compute the same thing.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from _common import fmt_time, markdown_table, recorded, run_with_peak_rss  # noqa: E402
from multiscale import _CLOUDS, _WORKER, EPS  # noqa: E402


def tree_commit(tree):
    p = subprocess.run(["git", "-C", tree, "rev-parse", "--short=10", "HEAD"], capture_output=True,
                       text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


def run_tree(tree, n, kind):
    code = _CLOUDS + _WORKER.format(n=n, kind=kind, method="multiscale", dtype="float32",
                                    tol=1e-4, out="", eps=EPS, seed=0)
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.abspath(tree), "python"))
    stdout, rss = run_with_peak_rss(code, timeout=7200, env=env)
    rep = json.loads(stdout.strip().splitlines()[-1])
    rep["rss"] = rss
    return rep


def body(record, args):
    trees = [os.path.abspath(t) for t in args.trees]
    for t in trees:
        if not os.path.isdir(os.path.join(t, "python", "monge")):
            raise SystemExit(f"--trees: {t} has no python/monge (a monge checkout, built in place)")
    commits = [tree_commit(t) for t in trees]
    record["trees"] = [dict(path=t, commit=c) for t, c in zip(trees, commits)]
    head = ["clouds", "n", "commit", "median", "times", "ratio to the first", "value", "iterations"]
    rows, per = [], []
    for n in args.sizes:
        times = [[] for _ in trees]  # by position: a tree may be given twice
        last = [None] * len(trees)
        for _ in range(args.reps):
            for k, t in enumerate(trees):
                last[k] = run_tree(t, n, args.kind)
                times[k].append(last[k]["time"])
        base = float(np.median(times[0]))
        for k, c in enumerate(commits):
            med = float(np.median(times[k]))
            per.append(dict(n=n, kind=args.kind, commit=c, median=med, times=times[k],
                            value=last[k]["value"], n_iter=last[k]["n_iter"]))
            rows.append([args.kind, f"{n:,}", c, fmt_time(med),
                         " ".join(fmt_time(v) for v in times[k]), f"{med / base:.3f}",
                         f"{last[k]['value']:.10g}", str(last[k]["n_iter"])])
    record["ab"] = per
    print(markdown_table(head, rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", nargs="+", required=True, help="built monge checkouts")
    ap.add_argument("--sizes", type=int, nargs="+", default=[100000])
    ap.add_argument("--kind", choices=("cube", "spheres"), default="cube")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if len(args.trees) < 2:
        ap.error("--trees: give at least two checkouts")
    if args.reps < 1:
        ap.error("--reps: at least 1")
    argv = argv if argv is not None else sys.argv[1:]
    data = "generated clouds (benchmarks/multiscale.py's cube or spheres, seed 0)"
    return recorded("multiscale-ab", "multiscale_ab.py", argv, ["numpy"], data,
                    lambda rec: body(rec, args), out=args.out)


if __name__ == "__main__":
    sys.exit(main())
