#!/usr/bin/env python
"""Multiscale Sinkhorn benchmark: the Sinkhorn divergence with its gradient between two large point
clouds, monge's multiscale solver against monge's exact online solve (accuracy and time), with
the peak memory of each run.

    python benchmarks/multiscale.py                    n = 1e4, 3e4, 1e5 (cube) and 3e4 (spheres)
    python benchmarks/multiscale.py --sizes 1000000    one size (the exact solve only to 3e4)
    python benchmarks/multiscale.py --quick            n = 2000: a smoke test

Inputs (generated, seeded): two clouds of n points uniform in the unit cube, d = 3, float32, or
two noisy unit spheres (radius 0.5, centres 0.1 apart, noise 0.01); uniform weights; eps = 1e-3
on the cost |x - y|^2 (GeomLoss's blur = sqrt(eps / 2) = 0.022 on |x - y|^2 / 2).  Each run is
S_eps with the gradient in x, in a fresh process (peak RSS of that process), with monge's
defaults for float32 (tol 1e-4 on the L1 marginal error, the truncation bound included).  The
reference, up to n = 3e4, is the exact online solve in float64 at tol 1e-6: relative value error
and gradient error relative to the gradient's largest entry.  Speed: median of `--repeats` runs
(1 by default: the sizes are large and the ratio large).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (cpu_model, fmt_time, load_average, markdown_table, recorded,  # noqa: E402
                     run_with_peak_rss, section, usable_cpus, versions)

EPS = 1e-3

_WORKER = r"""
import json, sys, time
import numpy as np, monge
n, kind, method, dtype, tol, out = {n}, {kind!r}, {method!r}, {dtype!r}, {tol!r}, {out!r}
rng = np.random.default_rng(0)
if kind == "cube":
    x, y = rng.random((n, 3)), rng.random((n, 3))
else:
    def sphere(c):
        v = rng.normal(size=(n, 3)); v /= np.linalg.norm(v, axis=1, keepdims=True)
        return 0.5 + c + 0.5 * v + 0.01 * rng.normal(size=(n, 3))
    x, y = sphere(np.array([-0.05, 0, 0])), sphere(np.array([0.05, 0, 0]))
x, y = x.astype(dtype), y.astype(dtype)
t = time.perf_counter()
d = monge.sinkhorn_divergence(x, y, eps={eps}, grad=("x",), method=method, tol=tol)
t = time.perf_counter() - t
if out:
    np.save(out, d.grad_x)
print(json.dumps(dict(time=t, value=d.value, converged=d.converged, error=d.error,
                      n_iter=d.n_iter)))
"""


def run_one(n, kind, method, dtype, tol, grad_out=""):
    code = _WORKER.format(n=n, kind=kind, method=method, dtype=dtype, tol=tol, out=grad_out,
                          eps=EPS)
    stdout, rss = run_with_peak_rss(code, timeout=7200)
    rep = json.loads(stdout.strip().splitlines()[-1])
    rep["rss"] = rss
    return rep


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--kinds", nargs="*", default=None, choices=["cube", "spheres"])
    ap.add_argument("--exact-max", type=int, default=30000,
                    help="largest n with the exact reference (default 3e4)")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/multiscale-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("multiscale", "multiscale.py", argv, ["numpy", "monge"],
                    "generated (uniform unit cube / noisy spheres, d = 3, seed 0)",
                    lambda record: run(args, record), out=args.out, quick=args.quick)


def run(args, record):
    import tempfile
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'monge'])}")
    if args.quick:
        cases = [(2000, "cube")]
    elif args.sizes:
        cases = [(n, k) for k in (args.kinds or ["cube"]) for n in args.sizes]
    else:
        cases = [(10000, "cube"), (30000, "cube"), (100000, "cube"), (30000, "spheres")]
    head = ["clouds", "n", "multiscale time", "peak RSS", "iterations", "value",
            "exact time", "exact / multiscale", "value rel. error", "grad error / max |grad|"]
    rows, per = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n, kind in cases:
            gm, ge = os.path.join(tmp, "gm.npy"), os.path.join(tmp, "ge.npy")
            ms = run_one(n, kind, "multiscale", "float32", 1e-4, gm)
            ex = None
            if n <= args.exact_max:
                ex = run_one(n, kind, "exact", "float64", 1e-6, ge)
            row = [kind, f"{n:,}", fmt_time(ms["time"]), f"{ms['rss']:.0f} MiB",
                   str(ms["n_iter"]), f"{ms['value']:.7g}"]
            entry = dict(n=n, kind=kind, multiscale=ms, exact=ex)
            if ex is not None:
                a, b = np.load(gm), np.load(ge)
                verr = abs(ms["value"] - ex["value"]) / abs(ex["value"])
                gerr = float(np.abs(a - b).max() / np.abs(b).max())
                row += [fmt_time(ex["time"]), f"{ex['time'] / ms['time']:.1f}", f"{verr:.1e}",
                        f"{gerr:.1e}"]
                entry.update(value_rel_error=verr, grad_rel_error=gerr)
            else:
                row += ["–", "–", "–", "–"]
            rows.append(row)
            per.append(entry)
            print(markdown_table(head, [row]), flush=True)
    record["runs"] = per
    section("summary")
    print(markdown_table(head, rows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
