#!/usr/bin/env python
"""Pairwise OT matrices on Dask (monge.distributed.pairwise) against a serial loop and one batched
C call, side by side in one run; scaling efficiency and the cost of a Dask task.

    python benchmarks/dask_pairwise.py               200 and 500 clouds of 50 points (~30 min on 2 cores)
    python benchmarks/dask_pairwise.py --quick       40 and 80 clouds: a smoke test (~1 min)
    python benchmarks/dask_pairwise.py --clouds 200 --points 100 --methods emd

Cases: N clouds of n points in 2-D (uniform on [0, 1]^2 shifted by a random offset, seed 0, all of the
same size so that the whole matrix can also be one batched call), uniform weights, for
  emd                   exact W_2^2 (network simplex), monge.emd
  sinkhorn_divergence   S_eps with eps = 0.05 (cost |x - y|^2), monge.sinkhorn_divergence
Contenders for the N (N - 1) / 2 pairs i < j:
  serial loop     one monge call per pair in this process, nthreads=1 (one core)
  batched, 2 thr  ONE batched C call over all pairs (B = N (N - 1) / 2 stacked problems), nthreads=2:
                  the no-Dask way to use both cores of one machine (it needs all pairs in memory)
  dask 1 worker   pairwise(..., client=...) on a LocalCluster of 1 worker process x 1 thread
  dask 2 workers  the same on 2 worker processes x 1 thread
CPU: CPU seconds of the call in this process plus those of the cluster's worker processes (median);
"CPU / serial CPU" is the work Dask adds (load-independent), "cores used" = CPU / wall says how much of
the machine the contender got (on a shared machine, less than its workers could use).
Every contender's matrix is checked equal (bit for bit) to the serial loop's.  Times are medians of
interleaved repeats (benchmarks/_common.py); the clusters are started before timing (their start-up is
reported separately).  Ratios: speed-up = serial / contender; scaling efficiency of k workers =
serial / (k x time with k workers).

Task overhead: (a) round trip of no-op tasks (client.map over 2000 no-ops, gathered) per task on the
2-worker cluster; (b) pairwise on clouds of 2 points with block=1 (one task per pair, almost no work)
per task.  The machine is shared with other jobs: read the ratios, not the absolute times.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
from _common import (cpu_model, fmt_time, interleaved, load_average, markdown_table,  # noqa: E402
                     recorded, section, usable_cpus, versions)

import monge  # noqa: E402
from monge.distributed import pairwise  # noqa: E402

EPS = 0.05
HEADERS = ["method", "N", "pairs", "contender", "median wall", "per pair", "speed-up vs serial",
           "CPU", "CPU / serial CPU", "cores used", "max/min"]


def make_clouds(N, n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.random((n, 2)) + rng.normal(scale=0.5, size=2) for _ in range(N)]


def serial_loop(clouds, method):
    N = len(clouds)
    D = np.zeros((N, N))
    for i in range(N):
        for j in range(i + 1, N):
            if method == "emd":
                v = monge.emd(x=clouds[i], y=clouds[j], nthreads=1).cost
            else:
                v = monge.sinkhorn_divergence(clouds[i], clouds[j], eps=EPS, nthreads=1).value
            D[i, j] = D[j, i] = v
    return D


def batched_call(clouds, method, nthreads=2):
    N = len(clouds)
    X = np.stack(clouds)
    I, J = np.triu_indices(N, 1)
    if method == "emd":
        v = monge.emd(x=X[I], y=X[J], nthreads=nthreads).cost
    else:
        v = monge.sinkhorn_divergence(X[I], X[J], eps=EPS, nthreads=nthreads).value
    D = np.zeros((N, N))
    D[I, J] = D[J, I] = v
    return D


def _cpu_seconds(clients):
    """CPU seconds used so far by this process and by the worker processes of `clients`."""
    t = time.process_time()
    for c in clients:
        t += sum(c.run(time.process_time).values())
    return t


def _with_cpu(fn, clients, store):
    """fn, recording into `store` the CPU seconds each call used (here and on the workers)."""
    def run():
        c0 = _cpu_seconds(clients)
        out = fn()
        store.append(_cpu_seconds(clients) - c0)
        return out
    return run


def _noop(k):
    return k


def task_overhead(client, n_tasks=2000):
    fut = client.map(_noop, range(50), pure=False)  # warm-up
    client.gather(fut)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(n_tasks), pure=False))
        times.append((time.perf_counter() - t0) / n_tasks)
    return float(np.median(times))


def pairwise_overhead(client, N=64):
    """Per-task time of pairwise with one pair per task on clouds of 2 points."""
    rng = np.random.default_rng(1)
    clouds = [rng.random((2, 2)) for _ in range(N)]
    n_pairs = N * (N - 1) // 2
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        pairwise(clouds, "emd", client=client, block=1, verbose=False)
        times.append((time.perf_counter() - t0) / n_pairs)
    return float(np.median(times))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 and 80 clouds: a smoke test")
    ap.add_argument("--clouds", type=int, nargs="+", default=None, help="numbers of clouds N")
    ap.add_argument("--points", type=int, default=50, help="points per cloud n (default 50)")
    ap.add_argument("--methods", nargs="+", default=["emd", "sinkhorn_divergence"],
                    choices=["emd", "sinkhorn_divergence"])
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed runs per contender (default 3, 1 for N >= 500)")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/dask_pairwise-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("dask_pairwise", "dask_pairwise.py", argv, ["numpy", "dask", "distributed", "monge"],
                    "generated point clouds (seeded)", lambda record: run(args), out=args.out,
                    quick=args.quick)


def run(args):
    Ns = args.clouds or ([40, 80] if args.quick else [200, 500])

    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # not the clusters' INFO chatter

    section("machine")
    print(f"CPU: {cpu_model()}; usable cores: {usable_cpus()}; load average at start: {load_average()}")
    print("versions:", versions(["numpy", "dask", "distributed"]), "monge", monge.__version__)
    print(f"clouds of {args.points} points in 2-D; eps = {EPS} for the divergence")

    t0 = time.perf_counter()
    kw = dict(processes=True, host="127.0.0.1", threads_per_worker=1, dashboard_address=":0")
    cl1, cl2 = LocalCluster(n_workers=1, **kw), LocalCluster(n_workers=2, **kw)
    c1, c2 = Client(cl1), Client(cl2)
    c1.wait_for_workers(1)
    c2.wait_for_workers(2)
    startup = time.perf_counter() - t0
    print(f"start-up of the two LocalClusters (1 and 2 worker processes): {startup:.1f} s")
    warm = make_clouds(4, 5)
    for c in (c1, c2):  # the workers import monge on their first task: not timed
        pairwise(warm, "emd", client=c, verbose=False)

    rows = []
    eff_rows = []
    try:
        for method in args.methods:
            for N in Ns:
                clouds = make_clouds(N, args.points)
                n_pairs = N * (N - 1) // 2
                reps = args.repeats or (1 if N >= 500 else 3)
                section(f"{method}: {N} clouds, {n_pairs} pairs, {reps} timed run(s) each")
                ekw = {"eps": EPS} if method != "emd" else {}
                cpu = {k: [] for k in ("serial loop", "batched, 2 thr", "dask 1 worker",
                                       "dask 2 workers")}
                fns = {
                    "serial loop": _with_cpu(lambda: serial_loop(clouds, method), [],
                                             cpu["serial loop"]),
                    "batched, 2 thr": _with_cpu(lambda: batched_call(clouds, method), [],
                                                cpu["batched, 2 thr"]),
                    "dask 1 worker": _with_cpu(
                        lambda: pairwise(clouds, method, client=c1, verbose=False, **ekw), [c1],
                        cpu["dask 1 worker"]),
                    "dask 2 workers": _with_cpu(
                        lambda: pairwise(clouds, method, client=c2, verbose=False, **ekw), [c2],
                        cpu["dask 2 workers"]),
                }
                t = interleaved(fns, repeats=reps, warmup=0, min_total=0.0, max_repeats=reps)
                ref = t["serial loop"].result
                for k, tk in t.items():
                    if not np.array_equal(tk.result, ref):
                        raise AssertionError(f"{k}: matrix differs from the serial loop's "
                                             f"(max |diff| {np.nanmax(np.abs(tk.result - ref)):.3g})")
                    if tk.warnings:
                        print(f"  {k}: warnings: {tk.warnings}")
                ts = t["serial loop"].median
                cpu_serial = float(np.median(cpu["serial loop"]))
                for k, tk in t.items():
                    ck = float(np.median(cpu[k]))
                    rows.append([method, N, n_pairs, k, fmt_time(tk.median),
                                 f"{1e6 * tk.median / n_pairs:.0f} us",
                                 f"{ts / tk.median:.2f}x", f"{ck:.2f} s",
                                 f"{ck / cpu_serial:.2f}", f"{ck / tk.median:.2f}",
                                 f"{tk.spread:.2f}"])
                t1, t2 = t["dask 1 worker"].median, t["dask 2 workers"].median
                eff_rows.append([method, N, f"{ts / t1:.2f}", f"{ts / (2 * t2):.2f}",
                                 f"{t1 / t2:.2f}x", f"{t['batched, 2 thr'].median / t2:.2f}"])
                print(markdown_table(HEADERS, rows[-4:]), flush=True)

        section("task overhead (2 workers)")
        noop = task_overhead(c2)
        pw = pairwise_overhead(c2)
        print(f"no-op task round trip: {1e3 * noop:.2f} ms per task (client.map of 2000, gathered)")
        print(f"pairwise with block=1 on 2-point clouds: {1e3 * pw:.2f} ms per task (one pair each)")
    finally:
        c1.close()
        c2.close()
        cl1.close()
        cl2.close()

    section("results")
    print(markdown_table(HEADERS, rows))
    print()
    print(markdown_table(["method", "N", "efficiency 1 worker", "efficiency 2 workers",
                          "2 vs 1 worker", "batched 2 thr / dask 2"], eff_rows))
    print(f"\ntask overhead: no-op {1e3 * noop:.2f} ms/task; pairwise block=1 {1e3 * pw:.2f} ms/task; "
          f"cluster start-up {startup:.1f} s (both clusters)")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
