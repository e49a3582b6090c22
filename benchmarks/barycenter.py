#!/usr/bin/env python
"""Fixed-support barycenter benchmark: monge.barycenter against POT's ot.bregman.barycenter (and
barycenter_debiased), side by side.

    python benchmarks/barycenter.py            1-D grid (n = 400) and 2-D grid (20 x 20), K = 3
    python benchmarks/barycenter.py --quick    small sizes: a smoke test
    python benchmarks/barycenter.py --debiased adds the debiased barycenter (slow: see below)
    python benchmarks/barycenter.py --grid     K = 10 histograms on 64 x 64 and 128 x 128 grids:
                                               the separable (convolutional) kernel against POT's
                                               convolutional_barycenter2d and OTT-JAX's Grid

Inputs: K = 3 histograms on a regular grid in [0, 1]^d (Gaussian mixtures, seeded), weights
(0.2, 0.3, 0.5), squared Euclidean cost (max 1 in 1-D, 2 in 2-D), eps = 1e-2 and 3e-3.  Each
contender runs with its own stopping rule:
  monge            tol 1e-6 on the L1 error of the plans' second marginals (plus, debiased, the
                   residual of c (K c) = a); dense cost C, or online costs from the grid points
  POT sinkhorn_log stopThr 1e-6 and 1e-7 on POT's own rule (a change of the barycenter between
                   checks), numItermax 20000 (debiased: 1e-4, 5000)
  POT sinkhorn     the kernel-domain default (not stable at small eps), same rule
  OTT-JAX          ott.solvers.linear.discrete_barycenter.FixedBarycenter (when installed), log
                   domain, float64, jit-compiled (the first call, which compiles, is shown apart
                   in the solver's name and not timed), threshold 1e-6 and 1e-7 on its own rule
                   (the mean over inputs of the L1 marginal error, checked every 10 iterations),
                   max_iterations 20000; a dense Geometry, or on grids ott.geometry.grid.Grid
                   (its separable kernel); timed in a child process after the others (XLA
                   changes process-wide state that could bias the contenders beside it); not
                   on the debiased cases, where OTT-JAX 0.6's FixedBarycenter(debiased=True)
                   fails under jit (a boolean conversion of a tracer)
The debiased barycenter's equation c (K c) = a is a deconvolution that both libraries solve by a
multiplicative fixed point converging sublinearly: on these grids it needs far more iterations than
the plain barycenter, so its cases only run with --debiased, both libraries stop at 1e-4 on their
own rules, and POT's runs are capped at 5000 iterations.
Accuracy: |a - a*|_1 against a reference a* computed by monge at tol 1e-11; a contender counts as at
equal accuracy when its error is at most 1.5 x monge's, and its time / monge's time (the speed-up
of monge, dense C) is a verdict only then.  Debiased: a* is monge's state after at most 30,000
iterations (tol 1e-7), and the verdict reads the objective each output reaches,
sum_k w_k S_eps(a, b_k) (monge.sinkhorn_divergence at tol 1e-9): at equal accuracy when its excess
over a*'s is at most 1.5 x monge's.
--tune-anderson: the memory of monge's Anderson mixing on tuning problems (histogram seeds 1 and
2; the cases above use seed 0).
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, cpu_model, first_and_timed, fmt_time, interleaved,  # noqa: E402
                     load_average, markdown_table, recorded, section, usable_cpus, versions)

import ot  # noqa: E402

import monge  # noqa: E402

try:
    import ott  # noqa: F401  (OTT-JAX runs in a child process: see ott_contender)
    HAVE_OTT = True
except ImportError:
    HAVE_OTT = False

WEIGHTS = np.array([0.2, 0.3, 0.5])


def _ott_child(geom_kind, geom_arg, B, w, eps, debiased, repeats, threshold):
    """In a fresh process: OTT-JAX's FixedBarycenter, jit-compiled; (first call's time, the timed
    calls' times, the last histogram)."""
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from ott.geometry import geometry as ott_geometry
    from ott.geometry import grid as ott_grid
    from ott.problems.linear import barycenter_problem as ott_bp
    from ott.solvers.linear import discrete_barycenter as ott_db

    geom = (ott_geometry.Geometry(cost_matrix=jnp.asarray(geom_arg), epsilon=eps)
            if geom_kind == "dense" else
            ott_grid.Grid(x=[jnp.asarray(a) for a in geom_arg], epsilon=eps))
    solver = ott_db.FixedBarycenter(threshold=threshold, max_iterations=20000, lse_mode=True,
                                    debiased=debiased)
    fn = jax.jit(lambda Bj: solver(ott_bp.FixedBarycenterProblem(geom, Bj, jnp.asarray(w))
                                   ).histogram)
    Bj = jnp.asarray(B)
    return first_and_timed(fn, Bj, repeats)


def ott_contender(t, geom_kind, geom_arg, B, w, eps, debiased=False, repeats=3,
                  thresholds=(1e-6, 1e-7)):
    """Adds OTT-JAX's row to the timings t: run in a child process, after the others, because
    XLA changes process-wide state (its threads, the floating-point mode) that could speed up or
    slow down the contenders sharing its process."""
    if not HAVE_OTT:
        return
    import multiprocessing as mp

    for thr in thresholds:
        with mp.get_context("spawn").Pool(1) as pool:
            first, times, out = pool.apply(_ott_child, (geom_kind, geom_arg, B, w, eps, debiased,
                                                        repeats, thr))
        t[f"OTT-JAX {thr:g} (jit, own process; first call {fmt_time(first)})"] = Timing(
            times, out, [])


def grid(side, d):
    t = (np.arange(side) + 0.5) / side
    return np.stack(np.meshgrid(*([t] * d), indexing="ij"), -1).reshape(-1, d)


def histograms(x, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(3):
        h = np.zeros(len(x))
        for _ in range(2):
            mu, s = rng.uniform(0.2, 0.8, x.shape[1]), rng.uniform(0.03, 0.1)
            h += rng.uniform(0.5, 1) * np.exp(-((x - mu) ** 2).sum(1) / (2 * s * s))
        out.append(h / h.sum())
    return np.stack(out)


def loss(a, x, B, eps):
    """sum_k w_k S_eps(a, b_k), the objective the debiased barycenter minimises, evaluated by
    monge's Sinkhorn divergence at tol 1e-9 (independent of either barycenter solver)."""
    a = np.clip(np.asarray(a, np.float64), 0, None)
    a = a / a.sum()
    return float(sum(w * monge.sinkhorn_divergence(x, x, a, b, eps=eps, tol=1e-9,
                                                   max_iter=100000).value
                     for w, b in zip(WEIGHTS, B)))


def case(side, d, eps, debiased):
    x = grid(side, d)
    B = histograms(x)
    C = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    # the debiased iterations converge sublinearly (the deconvolution c (K c) = a): both libraries
    # run to 1e-4 on their own rules, the reference as far as 30,000 iterations take it, and the
    # verdict also reads the objective each output reaches
    tol = 1e-4 if debiased else 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = monge.barycenter(B, C, weights=WEIGHTS, eps=eps, debiased=debiased,
                               tol=1e-7 if debiased else 1e-11,
                               max_iter=30000 if debiased else 100000)
    if debiased:
        print(f"reference: error {ref.error:.1e} after {ref.n_iter} iterations "
              f"(converged {ref.converged})")
    pot = ot.bregman.barycenter_debiased if debiased else ot.bregman.barycenter
    fns = {
        "monge (dense C)": lambda: monge.barycenter(B, C, weights=WEIGHTS, eps=eps, tol=tol,
                                                    debiased=debiased, max_iter=100000).a,
        "monge (online)": lambda: monge.barycenter(B, y=x, weights=WEIGHTS, eps=eps, tol=tol,
                                                   debiased=debiased, max_iter=100000).a,
    }
    cap = 5000 if debiased else 20000
    for thr in ((1e-4,) if debiased else (1e-6, 1e-7)):
        fns[f"POT sinkhorn_log {thr:g}"] = lambda thr=thr: pot(
            B.T, C, eps, WEIGHTS, method="sinkhorn_log", numItermax=cap, stopThr=thr)
        if not debiased and thr == 1e-6:
            fns[f"POT sinkhorn {thr:g}"] = lambda thr=thr: pot(
                B.T, C, eps, WEIGHTS, method="sinkhorn", numItermax=20000, stopThr=thr)
    t = interleaved(fns, repeats=3, warmup=0, min_total=1.0, max_repeats=7)
    if not debiased:  # OTT-JAX 0.6's debiased FixedBarycenter fails under jit (tracer to bool)
        ott_contender(t, "dense", C, B, WEIGHTS, eps)
    base = np.abs(t["monge (dense C)"].result - ref.a).sum()
    if debiased:
        base_loss, ref_loss = loss(t["monge (dense C)"].result, x, B, eps), loss(ref.a, x, B, eps)
    rows = []
    for k, v in t.items():
        a = np.asarray(v.result)
        err = np.abs(a - ref.a).sum() if np.isfinite(a).all() else float("nan")
        equal = k.startswith("monge") or (np.isfinite(err) and err <= 1.5 * base)
        extra = []
        if debiased:
            # at equal accuracy: its objective is within 1.5x monge's distance to the reference's
            lv = loss(a, x, B, eps) if np.isfinite(a).all() else float("nan")
            equal = k.startswith("monge") or (
                np.isfinite(lv) and lv - ref_loss <= 1.5 * max(base_loss - ref_loss, 1e-12))
            extra = [f"{lv:.9g} ({lv - ref_loss:+.1e})"]
        ratio = v.median / t["monge (dense C)"].median
        verdict = f"{ratio:.2f}" if not k.startswith("monge") and equal else (
            "–" if k.startswith("monge") else f"({ratio:.2f}: less accurate)")
        rows.append([f"{'debiased ' if debiased else ''}d={d} n={len(x)} eps={eps:g}", k,
                     fmt_time(v.median), f"{err:.1e}"] + extra + [
                     verdict, "; ".join(w.split(":")[0] for w in v.warnings) or ""])
    return rows


def tune_anderson():
    """The memory of the barycenter's Anderson mixing, on tuning problems (histogram seeds 1
    and 2; the reported cases use seed 0): iterations and time to tol 1e-6 per memory."""
    mems = [0, 3, 5, 8, 12, 20]
    head = ["problem", "seed"] + [f"m={m}: its (time)" for m in mems]
    rows = []
    for side, d, eps in [(400, 1, 1e-2), (400, 1, 3e-3), (20, 2, 1e-2), (20, 2, 3e-3),
                         (64, 1, 1e-3)]:
        x = grid(side, d)
        C = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        for seed in (1, 2):
            B = histograms(x, seed)
            cells = []
            for m in mems:
                t = interleaved({"r": lambda m=m: monge.barycenter(
                    B, C, weights=WEIGHTS, eps=eps, tol=1e-6, max_iter=20000, anderson=m)},
                    repeats=3, warmup=0, min_total=0.3, max_repeats=7)["r"]
                r = t.result
                cells.append(f"{r.n_iter}{'' if r.converged else ' (not converged)'} "
                             f"({fmt_time(t.median)})")
            rows.append([f"d={d} n={len(x)} eps={eps:g}", str(seed)] + cells)
            print(markdown_table(head, rows[-1:]), flush=True)
    dhead = ["problem (debiased)", "seed"] + [f"m={m}: error after 5000 its" for m in (0, 4, 8)]
    drows = []
    for side, d, eps in [(100, 1, 1e-2), (64, 1, 1e-3)]:
        x = grid(side, d)
        C = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        for seed in (1, 2):
            B = histograms(x, seed)
            cells = []
            for m in (0, 4, 8):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = monge.barycenter(B, C, weights=WEIGHTS, eps=eps, tol=1e-12, max_iter=5000,
                                         debiased=True, anderson=m)
                cells.append(f"{r.error:.1e}")
            drows.append([f"d={d} n={len(x)} eps={eps:g}", str(seed)] + cells)
            print(markdown_table(dhead, drows[-1:]), flush=True)
    section("summary")
    print(markdown_table(head, rows))
    print()
    print(markdown_table(dhead, drows))


def grid_case(side, eps, K=10):
    """K Gaussian blobs on a side x side grid of [0, 1]^2 with POT's coordinates (linspace)."""
    t = np.linspace(0, 1, side)
    X = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    rng = np.random.default_rng(0)
    B = np.stack([np.exp(-((X - rng.uniform(0.2, 0.8, 2)) ** 2).sum(1)
                         / (2 * rng.uniform(0.03, 0.08) ** 2)) + 1e-12 for _ in range(K)])
    B /= B.sum(1, keepdims=True)
    w = np.full(K, 1.0 / K)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = monge.barycenter(B, grid=[t, t], weights=w, eps=eps, tol=1e-11, max_iter=100000).a
    Bs = B.reshape(K, side, side)
    fns = {"monge (grid)": lambda: monge.barycenter(B, grid=[t, t], weights=w, eps=eps,
                                                    max_iter=100000).a,
           "POT sinkhorn_log 1e-06": lambda: ot.bregman.convolutional_barycenter2d(
               Bs, eps, w, method="sinkhorn_log", stopThr=1e-6, numItermax=20000).ravel(),
           "POT sinkhorn_log 1e-07": lambda: ot.bregman.convolutional_barycenter2d(
               Bs, eps, w, method="sinkhorn_log", stopThr=1e-7, numItermax=20000).ravel(),
           "POT sinkhorn 1e-06": lambda: ot.bregman.convolutional_barycenter2d(
               Bs, eps, w, stopThr=1e-6, numItermax=20000).ravel()}
    big = side >= 128
    t_ = interleaved(fns, repeats=1 if big else 2, warmup=0, min_total=0 if big else 1.0,
                     max_repeats=1 if big else 5)
    ott_contender(t_, "grid", [t, t], B, w, eps, repeats=1 if big else 2)
    base = np.abs(t_["monge (grid)"].result - ref).sum()
    rows = []
    for k, v in t_.items():
        a = np.asarray(v.result)
        err = np.abs(a / a.sum() - ref).sum() if np.isfinite(a).all() and a.sum() > 0 else float("nan")
        equal = k.startswith("monge") or (np.isfinite(err) and err <= 1.5 * max(base, 1e-9))
        ratio = v.median / t_["monge (grid)"].median
        verdict = "–" if k.startswith("monge") else (f"{ratio:.2f}" if equal else
                                                     f"({ratio:.2f}: less accurate)")
        rows.append([f"grid {side}x{side} K={K} eps={eps:g}", k, fmt_time(v.median), f"{err:.1e}",
                     verdict, "; ".join(w_.split(":")[0] for w_ in v.warnings) or ""])
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--debiased", action="store_true", help="add the debiased cases (minutes each)")
    ap.add_argument("--grid", action="store_true",
                    help="only the regular-grid cases (64 x 64, 128 x 128; minutes)")
    ap.add_argument("--tune-anderson", action="store_true",
                    help="the memory of the Anderson mixing on tuning problems (seeds 1, 2)")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/barycenter-DATE.json)")
    args = ap.parse_args(argv)
    name = ("barycenter-anderson-tuning" if args.tune_anderson else
            "barycenter-grid" if args.grid else "barycenter")
    return recorded(name, "barycenter.py", argv,
                    ["numpy", "ot", "monge", "jax", "ott"],
                    "generated (Gaussian-mixture histograms on regular grids, seed 0)",
                    lambda record: run(args), out=args.out, quick=args.quick)


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'ot', 'monge', 'jax', 'ott'])}; monge threads "
          f"{monge.get_num_threads()}")
    cases = [(50, 1, 1e-2, False)] if args.quick else [
        (400, 1, 1e-2, False), (400, 1, 3e-3, False), (20, 2, 1e-2, False),
        (20, 2, 3e-3, False)] + ([(400, 1, 1e-2, True), (20, 2, 1e-2, True)] if args.debiased
                                 else [])
    if args.tune_anderson:
        return tune_anderson()
    head = ["case", "solver", "median", "|a - a*|_1", "its time / monge's (dense)", "warnings"]
    dhead = head[:4] + ["objective reached (- the reference's)"] + head[4:]
    rows, drows = [], []
    if args.grid:
        head[4] = "its time / monge's (grid)"
        gcases = [(32, 0.004)] if args.quick else [(64, 0.004), (64, 0.001), (128, 0.004)]
        for side, eps in gcases:
            new = grid_case(side, eps)
            rows += new
            print(markdown_table(head, new), flush=True)
        cases = []
    for side, d, eps, deb in cases:
        new = case(side, d, eps, deb)
        (drows if deb else rows).extend(new)
        print(markdown_table(dhead if deb else head, new), flush=True)
    section("summary")
    print(markdown_table(head, rows))
    if drows:
        print()
        print(markdown_table(dhead, drows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
