#!/usr/bin/env python
"""Loss benchmarks: monge's Sinkhorn divergence against GeomLoss and its Monge gap against OTT-JAX,
value + gradients, measured side by side in one run at equal accuracy.

    python benchmarks/losses.py                       everything (several minutes)
    python benchmarks/losses.py --quick               small sizes: a smoke test, ratios mean little
    python benchmarks/losses.py --only divergence     one family (or --only gap)

Cases (ratio = monge time / anchor time; the target of both is <= 0.5x):
  divergence  S_eps(x, y) with dS/dx and dS/dy, n = m = 2000 and 10000, d = 3, x ~ U[0,1]^3,
              y ~ N(0.5, 0.1^2 I), blur = 0.05.  Anchor: GeomLoss SamplesLoss('sinkhorn', p=2,
              blur, scaling, backend='tensorized', debias=True) on torch CPU, loss + autograd
              backward, at its default scaling 0.5 and at a finer 0.9.
  gap         Monge gap M(T) and dM/d(Tx), n = 256, 1024, 4096, d = 2 and 8, sqeuclidean, OTT's
              default eps (0.05 x std of the cost matrix).  Anchor: OTT-JAX 0.6.0
              monge_gap_from_samples, jit-compiled, float64, via benchmarks/ott_timing.py.

Method.  Every time is the median of repeated calls after a warm-up, contenders interleaved so that
load changes on a shared machine hit all alike (benchmarks/_common.py).  Equal accuracy:
  divergence  a ground truth is computed with monge at tol = 1e-10 in float64.  GeomLoss's relative
              error on the value and on dS/dx (max-abs error over max |dS/dx|) is measured; monge's
              `tol` (L1 marginal violation) is then the loosest of 1e-1, 3e-2, 1e-2, 3e-3, ...
              whose errors are both <= GeomLoss's, and monge is timed at that tol, same dtype.
              (Also timed: the monge.torch autograd route and single-threaded monge.)
  gap         both solve to a 1e-6 L1 marginal threshold (OTT: one marginal, checked every 10
              iterations; monge: both marginals, checked every iteration, so at least as tight);
              the values and gradients are compared.  OTT's compile time is reported separately.
Conventions: GeomLoss (p = 2) uses the cost |x - y|^2 / 2 and eps = blur^2; monge's sqeuclidean is
|x - y|^2, so monge with eps = 2 blur^2 solves the same problem and its value (and gradients) are
twice GeomLoss's; GeomLoss's outputs are doubled before any comparison.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (Timing, cpu_model, fmt_time, interleaved, load_average,  # noqa: E402
                     markdown_table, recorded, section, usable_cpus, versions)

import monge  # noqa: E402

# ------------------------------------------------------------------------------------ parameters

SIZES = {
    "full": dict(div_n=(2000, 10000), div_f64_max_n=2000, gap_n=(256, 1024, 4096), gap_d=(2, 8)),
    "quick": dict(div_n=(500,), div_f64_max_n=500, gap_n=(128, 256), gap_d=(2,)),
}
D_DIV = 3
BLUR = 0.05                      # GeomLoss blur; eps = blur^2 for |x-y|^2/2, monge eps = 2 blur^2
EPS_DIV = 2 * BLUR ** 2
SCALINGS = (0.5, 0.9)            # GeomLoss's default annealing ratio and a finer one
TOL_GT = 1e-10                   # ground truth: monge float64 at this L1 marginal tolerance
_LADDER = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
TOL_LADDER = {np.float64: _LADDER + (1e-6, 1e-7, 1e-8),
              np.float32: _LADDER}   # float32 solves stall below ~1e-5
GAP_COST = "sqeuclidean"
GAP_EPS = None                   # OTT's default: 0.05 x std of the cost matrix (monge: eps=None)
GAP_TOL = 1e-6                   # OTT threshold and monge tol
TARGET = 0.5                     # monge time / anchor time


@dataclass
class Row:
    case: str
    monge: str
    anchor: str
    ratio: str
    target: str
    met: str
    notes: str


NOTES: list[str] = []


def note(msg):
    NOTES.append(msg)
    print(f"  NOTE: {msg}", flush=True)


def verdict(ok):
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def ratio_row(case, t_monge, t_anchor, notes, valid=True, target=TARGET):
    r = t_monge / t_anchor
    return Row(case, fmt_time(t_monge), fmt_time(t_anchor), f"{r:.3f}x", f"<= {target:g}x",
               verdict(r <= target if valid else None), notes)


def rel_err(v, ref):
    return abs(v - ref) / max(abs(ref), 1e-300)


def grad_err(g, ref):
    """max |g - ref| / max |ref| (float64)."""
    g = np.asarray(g, np.float64)
    ref = np.asarray(ref, np.float64)
    return float(np.abs(g - ref).max() / max(np.abs(ref).max(), 1e-300))


def quiet(fn):
    """fn() with monge's convergence warnings silenced (the caller checks `converged`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        return fn()


# ------------------------------------------------------------------------------ the divergence

def div_clouds(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, D_DIV))
    y = 0.5 + 0.1 * rng.standard_normal((n, D_DIV))
    return x, y


def geomloss_schedule_len(x, y, scaling):
    """Number of symmetric Sinkhorn updates of GeomLoss's eps-scaling schedule (+ the final
    extrapolation), from its (private) helpers; '?' if unavailable."""
    try:
        import torch
        from geomloss._legacy.sinkhorn_divergence import epsilon_schedule, max_diameter
        diam = max_diameter(torch.from_numpy(x), torch.from_numpy(y))
        return len(epsilon_schedule(2, diam, BLUR, scaling)) + 1
    except Exception:  # noqa: BLE001  (only for the printout)
        return "?"


def make_geomloss_call(x, y, scaling, dtype):
    """() -> (value, dS/dx, dS/dy) in monge's convention (GeomLoss's outputs doubled)."""
    import torch
    from geomloss import SamplesLoss

    loss = SamplesLoss("sinkhorn", p=2, blur=BLUR, scaling=scaling, debias=True,
                       backend="tensorized")
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    X = torch.tensor(x, dtype=tdt, requires_grad=True)
    Y = torch.tensor(y, dtype=tdt, requires_grad=True)

    def call():
        v = loss(X, Y)
        gx, gy = torch.autograd.grad(v, [X, Y])
        return 2 * float(v.detach()), 2 * gx.numpy(), 2 * gy.numpy()

    return call


def make_monge_call(x, y, tol, nthreads=None):
    return lambda: quiet(lambda: monge.sinkhorn_divergence(x, y, eps=EPS_DIV, grad=("x", "y"),
                                                           tol=tol, nthreads=nthreads))


def make_monge_torch_call(x, y, tol):
    """The autograd route: monge.torch.sinkhorn_divergence + torch.autograd.grad."""
    import torch
    import monge.torch as mt

    X = torch.from_numpy(x).requires_grad_(True)
    Y = torch.from_numpy(y).requires_grad_(True)

    def call():
        v = quiet(lambda: mt.sinkhorn_divergence(X, Y, eps=EPS_DIV, tol=tol))
        gx, gy = torch.autograd.grad(v, [X, Y])
        return float(v.detach()), gx.numpy(), gy.numpy()

    return call


def torch_warmup():
    import torch  # noqa: F401
    xs, ys = div_clouds(200, seed=1)
    for dt in (np.float32, np.float64):
        make_geomloss_call(xs.astype(dt), ys.astype(dt), 0.5, dt)()
        make_monge_torch_call(xs.astype(dt), ys.astype(dt), 1e-3)()


def divergence_case(n, dtypes, rows):
    section(f"Sinkhorn divergence, value + dS/dx + dS/dy, n = m = {n}, d = {D_DIV}, "
            f"blur = {BLUR} (monge eps = {EPS_DIV:g})")
    x, y = div_clouds(n)
    print(f"  x ~ U[0,1]^{D_DIV}, y ~ N(0.5, 0.1^2 I), uniform weights")

    # -- ground truth
    t0 = time.perf_counter()
    # not a measurement: on a loaded machine one thread is (much) faster, see the notes
    nt = 1 if os.getloadavg()[0] > 1.0 else None
    gt = quiet(lambda: monge.sinkhorn_divergence(x, y, eps=EPS_DIV, grad=("x", "y"), tol=TOL_GT,
                                                 nthreads=nt))
    t_gt = time.perf_counter() - t0
    print(f"  ground truth: monge float64 tol={TOL_GT:g}: S = {gt.value:.12g}, {gt.n_iter} "
          f"iterations, converged {gt.converged}, error {gt.error:.1e} ({fmt_time(t_gt)})")
    if not gt.converged:
        note(f"divergence n={n}: the ground truth did not converge (error {gt.error:.1e})")

    def errors(val, gx, gy):
        return rel_err(val, gt.value), grad_err(gx, gt.grad_x), grad_err(gy, gt.grad_y)

    for dt in dtypes:
        name = np.dtype(dt).name
        xd, yd = x.astype(dt), y.astype(dt)

        # -- GeomLoss: one timed run per scaling, which also gives its accuracy
        gl = {}
        for s in SCALINGS:
            call = make_geomloss_call(xd, yd, s, dt)
            t0 = time.perf_counter()
            res = call()
            t1 = time.perf_counter() - t0
            ev, egx, egy = errors(*res)
            k = geomloss_schedule_len(x, y, s)
            gl[s] = dict(call=call, first=t1, err=(ev, egx, egy), updates=k)
            print(f"  GeomLoss {name} scaling {s}: {fmt_time(t1)} (first run); {k} updates; "
                  f"2 x value {res[0]:.10g}; rel. error value {ev:.2e}, dS/dx {egx:.2e}, "
                  f"dS/dy {egy:.2e}", flush=True)

        # -- monge ladder of tolerances, loose to tight, until GeomLoss's best accuracy is matched
        need_v = min(g["err"][0] for g in gl.values())
        need_g = min(g["err"][1] for g in gl.values())
        ladder = []
        for tol in TOL_LADDER[dt]:
            t0 = time.perf_counter()
            r = make_monge_call(xd, yd, tol)()
            t1 = time.perf_counter() - t0
            ev, egx, egy = errors(r.value, r.grad_x, r.grad_y)
            ladder.append(dict(tol=tol, err=(ev, egx, egy), n_iter=r.n_iter,
                               converged=r.converged, first=t1))
            print(f"  monge {name} tol={tol:g}: {fmt_time(t1)} (single run); {r.n_iter} "
                  f"iterations; converged {r.converged}; rel. error value {ev:.2e}, dS/dx "
                  f"{egx:.2e}, dS/dy {egy:.2e}", flush=True)
            if ev <= need_v and egx <= need_g and r.converged:
                break

        # -- for each scaling: the loosest matching tol, then time side by side
        for s in SCALINGS:
            g = gl[s]
            ev_g, egx_g, egy_g = g["err"]
            match = next((e for e in ladder if e["err"][0] <= ev_g and e["err"][1] <= egx_g
                          and e["converged"]), None)
            matched = match is not None
            if not matched:
                match = ladder[-1]
                note(f"divergence n={n} {name} scaling {s}: no monge tol in the ladder matched "
                     f"GeomLoss's accuracy; timed at tol={match['tol']:g}")
            tol = match["tol"]
            fns = {"geomloss": g["call"], "monge": make_monge_call(xd, yd, tol),
                   "monge.torch": make_monge_torch_call(xd, yd, tol),
                   "monge1": make_monge_call(xd, yd, tol, nthreads=1)}
            gl_reps = 3 if g["first"] < 10 else (2 if g["first"] < 60 else 1)
            prior = {"geomloss": Timing([g["first"]])}
            res = interleaved(fns, repeats={"geomloss": gl_reps, "monge": 3, "monge.torch": 3,
                                            "monge1": 3},
                              warmup={"geomloss": 0, "monge": 1, "monge.torch": 1, "monge1": 1},
                              prior=prior, min_total=1.0, max_repeats=11)
            tg, tm, tt, t1 = res["geomloss"], res["monge"], res["monge.torch"], res["monge1"]
            r = tm.result
            vt, gxt, _ = tt.result
            et = (rel_err(vt, gt.value), grad_err(gxt, gt.grad_x))
            print(f"  scaling {s}: GeomLoss {tg}")
            print(f"             monge tol={tol:g}: {tm}; {r.n_iter} iterations; value "
                  f"{r.value:.10g}")
            print(f"             monge.torch tol={tol:g}: {tt}; rel. error value {et[0]:.2e}, "
                  f"dS/dx {et[1]:.2e}")
            print(f"             monge tol={tol:g}, 1 thread: {t1}", flush=True)
            for who, t in (("GeomLoss", tg), ("monge", tm), ("monge.torch", tt),
                           ("monge 1 thread", t1)):
                for w in t.warnings:
                    print(f"    {who} warned: {w}")
            acc = (f"value rel. err GL {ev_g:.1e} / monge {match['err'][0]:.1e}; dS/dx err GL "
                   f"{egx_g:.1e} / monge {match['err'][1]:.1e}; monge tol {tol:g}, {r.n_iter} it; "
                   f"GL {g['updates']} updates, {len(tg.times)} run(s)")
            case = f"divergence n={n} {name}, GL scaling {s}"
            rows.append(ratio_row(case, tm.median, tg.median, acc, valid=matched))
            rows.append(ratio_row(f"{case} (monge.torch autograd route)", tt.median, tg.median,
                                  f"same tol; value err {et[0]:.1e}, dS/dx err {et[1]:.1e}",
                                  valid=matched))
            if t1.median < tm.median:
                note(f"{case}: monge single-threaded ({fmt_time(t1.median)}) beat its default "
                     f"{monge.get_num_threads()} threads ({fmt_time(tm.median)})")
            rows.append(ratio_row(f"{case} (monge nthreads=1)", t1.median, tg.median,
                                  "supplementary: single-threaded monge, same tol", valid=matched))


def run_divergence(cfg, rows):
    try:
        import torch
        import geomloss  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        note(f"divergence: torch/GeomLoss unavailable ({exc!r}): skipped")
        return
    print(f"\n  torch threads {torch.get_num_threads()}, monge threads {monge.get_num_threads()}")
    torch_warmup()
    for n in cfg["div_n"]:
        dtypes = [np.float32] + ([np.float64] if n <= cfg["div_f64_max_n"] else [])
        t0 = time.perf_counter()
        try:
            divergence_case(n, dtypes, rows)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            note(f"divergence n={n} raised {type(exc).__name__}: {exc}")
            rows.append(Row(f"divergence n={n}", "-", "-", "-", f"<= {TARGET}x", "n/a",
                            f"ERROR {type(exc).__name__}"))
        print(f"  (n={n} took {time.perf_counter() - t0:.0f} s; load average {load_average()})",
              flush=True)
    if cfg["div_f64_max_n"] < max(cfg["div_n"]):
        print(f"  float64 compared at n <= {cfg['div_f64_max_n']} only (GeomLoss float64 "
              "tensorized at larger n costs minutes per call)")


# ----------------------------------------------------------------------------- the Monge gap

def gap_case(n, d, rows):
    from ott_timing import ott_monge_gap_timer

    section(f"Monge gap, value + dM/d(Tx), n = {n}, d = {d}, {GAP_COST}, eps = OTT default "
            f"(0.05 x std of the cost matrix), threshold / tol = {GAP_TOL:g}")
    t0 = time.perf_counter()
    run = ott_monge_gap_timer(n, d, GAP_COST, eps=GAP_EPS, seed=0, threshold=GAP_TOL)
    t_first = time.perf_counter() - t0
    info = run.info
    x = np.asarray(run.x, dtype=np.float64)
    tx = np.asarray(run.tx, dtype=np.float64)

    def monge_call(nthreads=None):
        return lambda: quiet(lambda: monge.monge_gap(x, tx, cost=GAP_COST, eps=GAP_EPS,
                                                     grad=("tx",), tol=GAP_TOL,
                                                     nthreads=nthreads))

    ott_reps = 3 if t_first < 20 else 2
    res = interleaved({"ott": run, "monge": monge_call(), "monge1": monge_call(1)},
                      repeats={"ott": ott_reps, "monge": 3, "monge1": 3},
                      warmup={"ott": 0, "monge": 1, "monge1": 1}, min_total=1.0, max_repeats=15)
    to, tm, t1 = res["ott"], res["monge"], res["monge1"]
    compile_t = max(t_first - to.median, 0.0)
    v_ott, g_ott = res["ott"].result
    v_ott, g_ott = float(v_ott), np.asarray(g_ott)
    r = tm.result
    dv = abs(r.value - v_ott)
    dg = grad_err(r.grad_tx, g_ott)
    deps = rel_err(r.eps, info["eps_used"])
    print(f"  OTT: compile + first call {fmt_time(t_first)} (compile ~{fmt_time(compile_t)}); "
          f"{to}; {info['n_iters']} iterations (checked every 10); converged "
          f"{info['converged']}; eps {info['eps_used']:.6g}; value {v_ott:.12g}")
    print(f"  monge ({monge.get_num_threads()} threads): {tm}; {r.n_iter} iterations; converged "
          f"{r.converged}; error {r.error:.1e}; eps {r.eps:.6g} (rel. diff {deps:.1e}); value "
          f"{r.value:.12g}")
    print(f"  monge (1 thread): {t1}")
    print(f"  |value diff| {dv:.2e}; dM/dTx: max-abs diff / max |grad| {dg:.2e}", flush=True)
    for who, t in (("OTT", to), ("monge", tm), ("monge 1 thread", t1)):
        for w in t.warnings:
            print(f"    {who} warned: {w}")
    ok = info["converged"] and r.converged and deps < 1e-8
    if not ok:
        note(f"gap n={n} d={d}: not comparable (OTT converged {info['converged']}, monge "
             f"converged {r.converged}, eps rel. diff {deps:.1e})")
    acc = (f"value abs. diff {dv:.1e}, grad diff {dg:.1e}; it monge {r.n_iter} / OTT "
           f"{info['n_iters']}; OTT compile {fmt_time(compile_t)}")
    rows.append(ratio_row(f"gap n={n} d={d}", tm.median, to.median, acc, valid=ok))
    if t1.median < tm.median:
        note(f"gap n={n} d={d}: monge single-threaded ({fmt_time(t1.median)}) beat its default "
             f"{monge.get_num_threads()} threads ({fmt_time(tm.median)})")
    rows.append(ratio_row(f"gap n={n} d={d} (monge nthreads=1)", t1.median, to.median,
                          "supplementary: single-threaded monge", valid=ok))


def run_gap(cfg, rows):
    try:
        import ott_timing  # noqa: F401  (imports jax, enables float64)
    except Exception as exc:  # noqa: BLE001
        note(f"gap: OTT-JAX unavailable ({exc!r}): skipped")
        return
    import jax
    print(f"\n  jax {jax.__version__}, devices {jax.devices()}, x64 "
          f"{jax.config.read('jax_enable_x64')}")
    for d in cfg["gap_d"]:
        for n in cfg["gap_n"]:
            t0 = time.perf_counter()
            try:
                gap_case(n, d, rows)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc()
                note(f"gap n={n} d={d} raised {type(exc).__name__}: {exc}")
                rows.append(Row(f"gap n={n} d={d}", "-", "-", "-", f"<= {TARGET}x", "n/a",
                                f"ERROR {type(exc).__name__}"))
            print(f"  (took {time.perf_counter() - t0:.0f} s; load average {load_average()})",
                  flush=True)


# ---------------------------------------------------------------------------------------- main

def machine_lines():
    info = monge.build_info()
    vers = versions(["numpy", "torch", "geomloss", "jax", "ott"])
    return [
        f"monge.build_info(): {info}; {monge.get_num_threads()} threads by default",
        f"CPU: {cpu_model()}; nproc {os.cpu_count()} ({usable_cpus()} usable); "
        f"load average {load_average()}",
        "Python {}; {}".format(sys.version.split()[0], ", ".join(f"{k} {v}" for k, v in vers.items())),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    ap.add_argument("--only", choices=("divergence", "gap"), help="run one family only")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/losses-DATE.json)")
    argv = sys.argv[1:] if argv is None else argv
    args = ap.parse_args(argv)
    return recorded("losses", "losses.py", argv, ["numpy", "torch", "geomloss", "jax", "ott", "monge"],
                    "generated point clouds (seeded)", lambda record: run(args), out=args.out,
                    quick=args.quick)


def run(args):
    cfg = SIZES["quick" if args.quick else "full"]

    section("Machine")
    for line in machine_lines():
        print("  " + line)
    if args.quick:
        print("  --quick: small sizes, the ratios below are NOT the acceptance measurements")
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if busy > 0.5 * usable_cpus():
        note(f"the machine was busy at the start (load average {busy:.2f} on {usable_cpus()} "
             "CPUs): timings suffer from the competition, multi-threaded ones most")
    t_start = time.perf_counter()
    rows: list[Row] = []
    if args.only in (None, "divergence"):
        run_divergence(cfg, rows)
    if args.only in (None, "gap"):
        run_gap(cfg, rows)

    section("Summary")
    print(f"Loss benchmarks{' (--quick sizes)' if args.quick else ''}: medians of repeated runs in "
          "one process, side by side; ratio = monge time / anchor time (lower is better for "
          "monge); divergence at equal accuracy against a tol=1e-10 float64 ground truth, gap "
          f"at a {GAP_TOL:g} marginal threshold for both.\n")
    print(markdown_table(["case", "monge", "anchor", "ratio", "target", "met", "accuracy notes"],
                         [[r.case, r.monge, r.anchor, r.ratio, r.target, r.met, r.notes]
                          for r in rows]))
    print()
    for line in machine_lines():
        print(f"- {line}")
    if NOTES:
        print("\nNotes:")
        for msg in NOTES:
            print(f"- {msg}")
    print(f"\n(total {time.perf_counter() - t_start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
