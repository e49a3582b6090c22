#!/usr/bin/env python
"""EntropicMap.fit with the solver's float kernel cache against the online path sinkhorn's 'auto'
picks above n*m = 2^21 (every exp recomputed at each iteration).  (monge's Sinkhorn against POT's
is benchmarks/sinkhorn.py.)

    python benchmarks/entropic_map.py              n = 2048 and 4096 a side, d = 2, 8, 32
    python benchmarks/entropic_map.py --quick      n = 1024: a smoke test

Problem: two Gaussian mixtures (3 and 10 components, seeded), eps = 0.01 x the mean squared
distance between the samples (EntropicMap's default), tol 1e-6 on the L1 marginal error.  Equal
accuracy: the cache's map and the online map are applied to 512 new points and their largest
difference is reported (both stop at the same tol in the same double-precision log-domain test).
Times: medians of interleaved repeats.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (cpu_model, fmt_time, interleaved, load_average, markdown_table,  # noqa: E402
                     recorded, section, usable_cpus, versions)


def mixture(n, d, k, rng):
    centres = rng.normal(size=(k, d)) * 2.0
    return centres[rng.integers(k, size=n)] + 0.5 * rng.normal(size=(n, d))


def case(n, d):
    from monge.maps import EntropicMap
    from monge.maps import baselines

    rng = np.random.default_rng(n + d)
    X, Y, x = mixture(n, d, 3, rng), mixture(n, d, 10, rng), mixture(512, d, 3, rng)
    fitted = {}

    def cache():
        fitted["cache"] = EntropicMap().fit(X, Y)

    def online():
        saved, baselines._KERNEL_CACHE_MAX = baselines._KERNEL_CACHE_MAX, 0
        try:
            fitted["online"] = EntropicMap().fit(X, Y)
        finally:
            baselines._KERNEL_CACHE_MAX = saved

    t = interleaved({"cache": cache, "online": online}, repeats=3, warmup=1,
                    min_total=0.5, max_repeats=5)
    diff = np.abs(fitted["cache"].transform(x) - fitted["online"].transform(x)).max()
    it = int(fitted["cache"].result_.n_iter)
    return [f"n={n} d={d}", fmt_time(t["cache"].median), fmt_time(t["online"].median),
            f"{t['online'].median / t['cache'].median:.1f}", str(it), f"{diff:.1e}"]


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'monge'])}")
    sizes = [1024] if args.quick else [2048, 4096]
    rows = [case(n, d) for n in sizes for d in (2, 8, 32)]
    section("EntropicMap.fit: kernel cache against the online path")
    print(markdown_table(["problem", "cache", "online", "online / cache", "iterations",
                          "max |T diff|"], rows), flush=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/entropic-map-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("entropic-map", "entropic_map.py", argv, ["numpy", "monge"],
                    "generated (Gaussian mixtures, seeded)", lambda record: run(args),
                    out=args.out, quick=args.quick)


if __name__ == "__main__":
    raise SystemExit(main())
