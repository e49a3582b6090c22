#!/usr/bin/env python
"""A probe, not a solver: would a Galerkin coarse correction cut the multiscale solver's
points-level iterations?  (docs/multiscale.md, "A Galerkin coarse correction".)

    python benchmarks/multiscale_galerkin.py                 cube and spheres, n = 1e5, seed 1
    python benchmarks/multiscale_galerkin.py --n 30000 --kinds cube

For one transport term OT_eps(x, y) (float32, eps = 1e-3, the tuning clouds of
benchmarks/multiscale.py, seed 1):

1. the default solve, and a float64 reference at tol 1e-6 (value and gradient in x);
2. the state after the first two iterations of the points level (the solve stopped by its
   callback), and from there warm-started solves with Anderson (the default) and with plain
   updates;
3. the same state corrected by the best potentials that are constant on the cells of the finest
   grid level: with P the kept plan at that state and Q_IJ the sum of P over the points of cell I
   of x and cell J of y, a correction constant on cells scales Q exactly,
   P_ij e^((dF_I + dG_J) / eps), so solving the small scaling problem diag(e^(dF/eps)) Q
   diag(e^(dG/eps)) with the cells' masses as marginals (log-domain fixed point on dG, Anderson
   memory 8) gives dF, dG; then the warm-started solves again.

Each solve's iterations, time and errors against the reference are recorded.  Q is built here in
NumPy from plan_coo() (about 6 GB at n = 1e5), so the probe's own times are not the method's:
only the iteration counts and the accuracy carry over.  Needs scipy.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import markdown_table, recorded, section  # noqa: E402

EPS = 1e-3


def clouds(n, kind, seed):
    """benchmarks/multiscale.py's clouds (same generator and seeds)."""
    rng = np.random.default_rng(seed)
    if kind == "cube":
        return rng.random((n, 3)), rng.random((n, 3))

    def sphere(c):
        v = rng.normal(size=(n, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        return 0.5 + c + 0.5 * v + 0.01 * rng.normal(size=(n, 3))
    return sphere(np.array([-0.05, 0, 0])), sphere(np.array([0.05, 0, 0]))


def coarse_correction(x, y, r, side, memory=8, ctol=1e-5, max_iter=2000):
    """(dF per point of x, dG per point of y, coarse iterations, nnz of Q, start and end error)."""
    import scipy.sparse as sp
    lo = np.minimum(x.min(0), y.min(0)).astype(np.float64)
    k1 = int(np.ceil((np.maximum(x.max(0), y.max(0)) - lo).max() / side)) + 1

    def cell(p):
        k = np.minimum(((p - lo) / side).astype(np.int64), k1 - 1)
        return (k[:, 0] * k1 + k[:, 1]) * k1 + k[:, 2]
    cx, cy = cell(x), cell(y)
    ux, cx = np.unique(cx, return_inverse=True)
    uy, cy = np.unique(cy, return_inverse=True)
    kx, ky = len(ux), len(uy)
    rows, cols, vals = r.plan_coo()
    keys = cx[rows] * ky + cy[cols]
    del rows, cols
    uk, inv = np.unique(keys, return_inverse=True)
    del keys
    w = np.bincount(inv, weights=vals)
    del inv, vals
    Q = sp.csr_matrix((w, (uk // ky, uk % ky)), shape=(kx, ky))
    QT = Q.T.tocsr()
    n, m = len(x), len(y)
    A = np.bincount(cx, minlength=kx) / n
    B = np.bincount(cy, minlength=ky) / m

    def step(lv):
        u = A / np.maximum(Q @ np.exp(lv), 1e-300)
        return np.log(B / np.maximum(QT @ u, 1e-300)), u

    def error(lv, u):
        return float(np.abs(np.exp(lv) * (QT @ u) - B).sum())
    lv = np.zeros(ky)
    X, F = [], []
    e0 = None
    for it in range(max_iter):
        gv, u = step(lv)
        e = error(lv, u)
        e0 = e if e0 is None else e0
        if e < ctol:
            break
        res = gv - lv
        X, F = (X + [lv.copy()])[-memory:], (F + [res])[-memory:]
        if len(F) > 1:
            dF = np.diff(np.array(F), axis=0).T
            dX = np.diff(np.array(X), axis=0).T
            gam = np.linalg.lstsq(dF, res, rcond=None)[0]
            lv = lv + res - (dX + dF) @ gam
        else:
            lv = gv
    u = A / np.maximum(Q @ np.exp(lv), 1e-300)
    dF, dG = EPS * np.log(u), EPS * lv
    c = float(dF.mean())
    return dF[cx] - c, dG[cy] + c, it, int(Q.nnz), e0, e


def probe(record, n, kinds, seed):
    import monge
    from monge import multiscale as ms
    head = ["clouds", "start", "updates", "iterations", "time", "value rel. error",
            "grad error / max |grad|"]
    rows, out = [], []
    for kind in kinds:
        x64, y64 = clouds(n, kind, seed)
        x, y = x64.astype(np.float32), y64.astype(np.float32)
        t = time.perf_counter()
        ref = ms.solve(x64, y64, eps=EPS, tol=1e-6, warn=False)
        tref = time.perf_counter() - t
        gref = ref.gradient("x")
        scale = float(np.abs(gref).max())
        print(f"{kind}: float64 reference {tref:.1f} s, {ref.n_iter} iterations", flush=True)

        def judge(res, secs, start, updates, extra=None):
            verr = abs(res.value - ref.value) / abs(ref.value)
            gerr = float(np.abs(res.gradient("x") - gref).max()) / scale
            rep = dict(kind=kind, n=n, seed=seed, start=start, updates=updates,
                       n_iter=int(res.n_iter), time=secs, converged=bool(res.converged),
                       value_rel_error=verr, grad_rel_error=gerr, **(extra or {}))
            out.append(rep)
            row = [kind, start, updates, str(res.n_iter), f"{secs:.2f} s", f"{verr:.1e}",
                   f"{gerr:.1e}"]
            rows.append(row)
            print(markdown_table(head, [row]), flush=True)

        ts = []
        t = time.perf_counter()
        full = ms.solve(x, y, eps=EPS, warn=False,
                        callback=lambda i, e: ts.append(time.perf_counter()) and None)
        judge(full, time.perf_counter() - t, "coarse levels (default solve)", "default")
        # the points level's first iteration is the slowest (it builds the finest selection)
        dt = np.diff([t] + ts)
        stop = int(np.argmax(dt)) + 2
        count = [0]

        def cb(i, e):
            count[0] += 1
            return count[0] >= stop
        state = ms.solve(x, y, eps=EPS, warn=False, callback=cb)
        f, g = state.f.copy(), state.g.copy()
        for aa, name in ((None, "Anderson (default)"), (0, "plain")):
            t = time.perf_counter()
            res = ms.solve(x, y, eps=EPS, init=(f, g), anderson=aa, warn=False)
            judge(res, time.perf_counter() - t, "2 points iterations", name)
        side = float(full.cluster_scale)
        dF, dG, cit, nnz, e0, e1 = coarse_correction(x, y, state, side)
        extra = dict(cell_side=side, coarse_iterations=cit, q_nnz=nnz,
                     coarse_error_start=e0, coarse_error_end=e1,
                     kept_entries=int(full.kept_entries))
        print(f"  cells of side {side:.4g}: Q has {nnz:,} entries ({nnz / full.kept_entries:.3f}"
              f" of the kept plan's); coarse error {e0:.1e} -> {e1:.1e} in {cit} iterations",
              flush=True)
        for aa, name in ((None, "Anderson (default)"), (0, "plain")):
            t = time.perf_counter()
            res = ms.solve(x, y, eps=EPS, init=(f + dF, g + dG), anderson=aa, warn=False)
            judge(res, time.perf_counter() - t, "2 points iterations + cell correction", name,
                  extra)
    record.update(results=out, n=n, seed=seed, eps=EPS)
    section("summary (transport term, float32, tol 1e-4)")
    print(markdown_table(head, rows))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--kinds", nargs="+", default=["cube", "spheres"],
                    choices=["cube", "spheres"])
    ap.add_argument("--seed", type=int, default=1, help="the tuning clouds' seed (default 1)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    return recorded("multiscale-galerkin", "multiscale_galerkin.py", argv,
                    ["numpy", "scipy", "monge"],
                    f"generated tuning clouds (unit cube / noisy spheres, d = 3, seed {args.seed})",
                    lambda record: probe(record, args.n, args.kinds, args.seed), out=args.out)


if __name__ == "__main__":
    sys.exit(main())
