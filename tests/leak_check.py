"""RSS stays flat over 10^5 calls of every public NumPy-API function, and of every raising call in
the bad-input catalogue (tests/bad_input_catalogue.py).  A script, run by `make test` after pytest
(tests/test_reliability.py runs 3000 calls of a subset inside pytest):

    python tests/leak_check.py              # up to 10^5 calls each, about 2 s per call site
    python tests/leak_check.py --calls 2000 --only sinkhorn
    python tests/leak_check.py --seconds 0  # 10^5 calls of every call site (about 20 min)

Each call site gets --calls repetitions, fewer when a call is slow (the loaders' checks take ~1 ms):
as many as fit in --seconds, never fewer than --min-calls.  The self-check runs at --min-calls, so
the smallest count used is shown to see a 16-byte leak.

Method: warm up (allocator pools, caches), then read RSS after 10 %, 55 % and 100 % of the calls;
the growth must stay below --limit-bytes per call (default 8: a leak of one pointer per call
fails) over both halves of that span.  Growth is measured between late points, and required in
both halves, so that one-off allocations (first-call caches, NumPy's small-array pools, a dict
resized once) do not count.  Exit status 1 on any leak.
"""
import argparse
import ctypes
import gc
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import monge  # noqa: E402
import monge.spectr as sp  # noqa: E402
from bad_input_catalogue import CATALOGUE  # noqa: E402

R = np.random.default_rng(0)
X, Y = R.random((12, 2)), R.random((9, 2))
X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
XB, YB = R.random((3, 12, 2)), R.random((3, 9, 2))
C = monge.cost_matrix(X, Y)
A, B = np.full(12, 1 / 12), np.full(9, 1 / 9)
LP = np.log(R.dirichlet(np.ones(5), size=(8, 3)))
TG, IL, TL = R.integers(1, 5, size=(3, 3)), np.array([8, 7, 8]), np.array([3, 2, 3])
P1, Q1 = R.dirichlet(np.ones(20)), R.dirichlet(np.ones(20))
V9 = R.random(9)
SK = monge.sinkhorn(X, Y, eps=0.1)

CALLS = {
    "sinkhorn": lambda: monge.sinkhorn(X, Y, eps=0.1),
    "sinkhorn float32": lambda: monge.sinkhorn(X32, Y32, eps=0.1),
    "sinkhorn dense C": lambda: monge.sinkhorn(C=C, eps=0.1),
    "sinkhorn unbalanced": lambda: monge.sinkhorn(X, Y, eps=0.1, tau=1.0),
    "sinkhorn batch": lambda: monge.sinkhorn(XB, YB, eps=0.1),
    "SinkhornResult.plan": lambda: SK.plan(),
    "SinkhornResult.apply": lambda: SK.apply(V9),
    "SinkhornResult.gradient": lambda: SK.gradient("x"),
    "sinkhorn_divergence": lambda: monge.sinkhorn_divergence(X, Y, eps=0.1, grad=True),
    "monge_gap": lambda: monge.monge_gap(X, Y[[0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2]] + 0.1, grad=True),
    "cost_matrix": lambda: monge.cost_matrix(X, Y, cost="euclidean"),
    "emd dense": lambda: monge.emd(None, None, C),
    "emd points": lambda: monge.emd(None, None, x=X, y=Y),
    "emd batch": lambda: monge.emd(None, None, x=XB, y=YB),
    "emd_1d": lambda: monge.emd_1d(X[:, 0], Y[:, 0]),
    "wasserstein_1d": lambda: monge.wasserstein_1d(X[:, 0], Y[:, 0], p=1.5),
    "sliced_wasserstein": lambda: monge.sliced_wasserstein(X, Y, n_projections=8, seed=0,
                                                           return_grad=True),
    "random_projections": lambda: monge.random_projections(8, 3, seed=0),
    "ctc_loss": lambda: monge.ctc_loss(LP, TG, IL, TL, grad="logits"),
    "align": lambda: monge.align(X[None], Y[None], grad=True),
    "quadratic_ot": lambda: monge.quadratic_ot(A, B, C, 1.0),
    "sparse_ot": lambda: monge.sparse_ot(A[:6] * 2, B[:6] * 1.5, C[:6, :6], 2, 1.0),
    "spectr.kseq_select": lambda: sp.kseq_select(P1, Q1, np.array([1, 2, 3]), seed=0),
    "spectr.kseq_sample": lambda: sp.kseq_sample(P1, Q1, 3, seed=0),
    "spectr.speculative_sample": lambda: sp.speculative_sample(P1, Q1, 2, seed=0),
    "spectr.kseq_rho/acceptance": lambda: (sp.kseq_rho(P1, Q1, 3), sp.kseq_acceptance(P1, Q1, 3)),
    "spectr.optimal_acceptance": lambda: sp.optimal_acceptance(P1, Q1, 3),
    "spectr.residual_distribution": lambda: sp.residual_distribution(P1, Q1, 3),
}


def rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def repeat(fn, count, exc):
    if exc is None:
        for _ in range(count):
            fn()
    else:
        for _ in range(count):
            try:
                fn()
            except exc:
                pass
            else:
                raise AssertionError("the call was expected to raise")


def measure(fn, calls, exc):
    """RSS growth (bytes) from 10 % to 100 % of `calls` after a warm-up, and the growth per call,
    taken as the smaller of the rates over the two halves of that span: a leak grows in both,
    while a one-off growth (a dict or allocator arena resized once, e.g. the interned-string
    table when pathlib interns a new path part) lands in one half only."""
    repeat(fn, max(calls // 20, 50), exc)  # warm-up
    gc.collect()
    first = max(calls // 10, 1)
    half = max((calls - first) // 2, 1)
    repeat(fn, first, exc)
    gc.collect()
    r0 = rss_bytes()
    repeat(fn, half, exc)
    gc.collect()
    r1 = rss_bytes()
    repeat(fn, half, exc)
    gc.collect()
    r2 = rss_bytes()
    return r2 - r0, min(r1 - r0, r2 - r1) / half


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=2.0,
                    help="time budget per call site (0: always --calls)")
    ap.add_argument("--min-calls", type=int, default=5000,
                    help="fewest calls of a call site, however slow")
    ap.add_argument("--limit-bytes", type=float, default=8.0, help="allowed growth per call")
    ap.add_argument("--only", default=None, help="substring of the function names to run")
    args = ap.parse_args()
    jobs = [(name, fn, None) for name, fn in CALLS.items()]
    try:
        import torch  # noqa: F401  (the catalogue's torch-tensor rows need it)
        have_torch = True
    except ImportError:
        have_torch = False
    for func, klass, fn, exc, _msg in CATALOGUE:
        if "torch" in klass and not have_torch:
            continue
        if func.startswith("maps."):
            continue  # pure-Python estimator checks: no C state to leak, and slow to construct
        jobs.append((f"{func} raising: {klass}", fn, exc))
    if args.only:
        jobs = [j for j in jobs if args.only in j[0]]
    failed, total = [], 0
    warnings.simplefilter("ignore")
    # the measurement must be able to see a leak at the smallest count used: one that keeps a
    # 16-byte bytes object per call (49 bytes in CPython), and a C-level malloc(16) never freed
    least = min(args.min_calls, args.calls) if args.seconds > 0 else args.calls
    kept = []
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    for what, leak in (("a 16-byte bytes object kept", lambda: kept.append(bytes(16))),
                       ("a C malloc(16) never freed", lambda: libc.malloc(16))):
        grown, per_call = measure(leak, least, None)
        if per_call <= args.limit_bytes:
            print(f"self-check failed: {what} per call showed as {per_call:.1f} B/call")
            return 1
        print(f"self-check: {what} per call, over {least} calls, shows as {per_call:.1f} B/call "
              f"({per_call / args.limit_bytes:.1f} x the limit: detected)")
    del kept
    print(f"{len(jobs)} call sites x up to {args.calls} repetitions ({args.seconds:g} s each, at "
          f"least {least}), limit {args.limit_bytes} bytes/call")
    for name, fn, exc in jobs:
        t0 = time.perf_counter()
        calls = args.calls
        if args.seconds > 0:
            # the measurement costs ~1.15 x calls (warm-up included): size it from 100 timed calls
            repeat(fn, 100, exc)
            per = (time.perf_counter() - t0) / 100
            calls = int(min(args.calls, max(least, args.seconds / (1.15 * max(per, 1e-9)))))
        grown, per_call = measure(fn, calls, exc)
        total += calls
        bad = per_call > args.limit_bytes
        print(f"{'LEAK' if bad else 'ok  '} {name:60s} {calls:7d} {grown / 2**10:8.1f} KiB  "
              f"{per_call:6.2f} B/call  {time.perf_counter() - t0:6.1f} s", flush=True)
        if bad:
            failed.append(name)
    print(f"{total} calls in all; {len(failed)} with RSS growth over the limit")
    if failed:
        print("leaking:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
