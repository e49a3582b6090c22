#!/usr/bin/env python
"""Multiscale Sinkhorn benchmark: the Sinkhorn divergence with its gradient between two large point
clouds, monge's multiscale solver against monge's exact online solve (accuracy and time) and
GeomLoss's three CPU backends (tensorized, online and multiscale, the last two through KeOps), with
the peak memory of each run.

    python benchmarks/multiscale.py                    n = 1e4, 3e4, 1e5 (cube) and 3e4 (spheres)
    python benchmarks/multiscale.py --sizes 1000000    one size (the exact solve only to 3e4)
    python benchmarks/multiscale.py --quick            n = 2000: a smoke test
    python benchmarks/multiscale.py --tune             the defaults' sweep, on tuning clouds
    python benchmarks/multiscale.py --tune-tol         the loosest tol within the accuracy contract
    python benchmarks/multiscale.py --tune-anneal      stage_tol x switch_ratio, with clusters
    python benchmarks/multiscale.py --tune-warm        warm_tol, on the same problems
    python benchmarks/multiscale.py --tune-refine      refine_anderson, on the same problems
    python benchmarks/multiscale.py --tune-stall       refine_stall, on the same problems
    python benchmarks/multiscale.py --tune-equal       refine_stall by time to equal accuracy
    python benchmarks/multiscale.py --tune-equal --grid '[{}, {"coarse_correction": false}]'
    python benchmarks/multiscale.py --scaling          monge alone, n = 1e3 ... 1e6: time vs n

Inputs (generated, seeded): two clouds of n points uniform in the unit cube, d = 3, float32, or
two noisy unit spheres (radius 0.5, centres 0.1 apart, noise 0.01); uniform weights; eps = 1e-3
on the cost |x - y|^2 (GeomLoss's blur = sqrt(eps / 2) = 0.022 on |x - y|^2 / 2).  Each run is
S_eps with the gradient in x, in a fresh process (peak RSS of that process), with monge's
defaults for float32 (tol 1e-4 on the L1 marginal error, the truncation bound included).  The
reference, up to n = 3e4, is the exact online solve in float64 at tol 1e-6, above it the
multiscale solve in float64 at tol 1e-6 (its error bound includes the truncation): relative value
error and gradient error relative to the gradient's largest entry.  More monge rows run at looser
tols (--tols), and the last table pairs GeomLoss's fastest backend with the fastest monge row that
is at least as accurate in both value and gradient on the same clouds (time to GeomLoss's
accuracy, measured, not predicted).  --tune-tol finds, on tuning clouds (seed 1), the loosest tol
that still meets the issue's accuracy contract (value within 1e-4, gradient within 1e-3 of its
largest entry).  One run per contender and size, in
its own process (the sizes are large and the ratios large; the machine is shared: see the load).

GeomLoss: SamplesLoss('sinkhorn', p=2, blur=sqrt(eps/2), scaling=0.9 (--geomloss-scaling),
debias=True) on the same
float32 clouds, value and gradient in x (loss.backward()), 2 torch threads; its cost is
|x - y|^2 / 2, so its value and gradient are doubled before the comparison.  GeomLoss runs one
iteration per eps of its schedule (its own stopping rule); its accuracy is reported beside its time.
KeOps compiles its kernels on the first call: a warm-up call at n = 500 in the same process is
excluded from the time (the cache lives in a temporary folder).  Sizes per backend: tensorized
and online up to 1e4 (tensorized needs n^2 floats, online is O(n^2) time: 61 s at 1e4), multiscale
up to 1e5 (--geomloss-max).

--tune: the sweep the solver's defaults (switch_ratio, truncation, cluster_scale and the block
occupancy) were judged on: the transport term alone at n = 3e4 and 1e5 on tuning clouds (NumPy
seeds 1 and 2, cube and spheres), never the benchmark's (seed 0).

--tune-anneal: the annealing defaults (the stage tolerance stage_tol and switch_ratio) judged
jointly, as they act together: on the uniform tuning clouds above and on mixtures of ten Gaussian
clusters (benchmarks/method_auto.py's generator, seeds 10 and 11, d = 2, 3, 5, eps = 1e-4, 3e-4
and 1e-3 x the squared diameter), where mass must cross between clusters at small eps.  The
transport term alone, float32, tol 1e-4, max_iter 4000; chosen: the pair that converges on every
tuning problem with the least geometric mean of its time over the fastest pair's.

--tune-warm: warm_tol, the tolerance of a coarse level that starts at the target eps (its solution
only warm-starts the next level at that eps), on the --tune-anneal problems at the chosen pair,
judged by the same rule.

--tune-refine: refine_anderson, the Anderson memory of a level that starts at the target eps after
a coarser level that ended there (it only carries the potentials to finer cells), likewise.

--tune-stall: refine_stall, on such levels the iterations without a 10% better error after which
Anderson hands the level to the adaptive over-relaxation (0: the solver's limit), jointly with the
engine's aa_stall_near (the limit counts only at errors within that factor of the tolerance),
likewise.

--tune-equal: configurations judged by their time to a fixed accuracy, not to a tol (an
Anderson state that measures under tol is much more accurate than a plain one that does, so time
to tol rewards stopping on worse states).  On tuning clouds (seed 1: cube and spheres at 3e4, cube
at 1e5), each configuration solves the divergence with its gradient at every tol of EQUAL_TOLS
(float32, twice each, the median time), against the certified float64 multiscale solve at tol
1e-6.  A configuration's time on a problem is its fastest tol within the issue's accuracy contract
(value within 1e-4, gradient within 1e-3 of its largest entry); its score, the geometric mean
over the problems of that time over the best configuration's.
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

# the clouds every worker process draws (pasted in front of each worker's code)
_CLOUDS = r"""
import numpy as np
def clouds(n, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "cube":
        return rng.random((n, 3)), rng.random((n, 3))
    def sphere(c):
        v = rng.normal(size=(n, 3)); v /= np.linalg.norm(v, axis=1, keepdims=True)
        return 0.5 + c + 0.5 * v + 0.01 * rng.normal(size=(n, 3))
    return sphere(np.array([-0.05, 0, 0])), sphere(np.array([0.05, 0, 0]))
"""

_WORKER = r"""
import json, sys, time
import numpy as np, monge
n, kind, method, dtype, tol, out = {n}, {kind!r}, {method!r}, {dtype!r}, {tol!r}, {out!r}
x, y = clouds(n, kind, {seed})
x, y = x.astype(dtype), y.astype(dtype)
t = time.perf_counter()
d = monge.sinkhorn_divergence(x, y, eps={eps}, grad=("x",), method=method, tol=tol)
t = time.perf_counter() - t
if out:
    np.save(out, d.grad_x)
print(json.dumps(dict(time=t, value=d.value, converged=d.converged, error=d.error,
                      n_iter=d.n_iter)))
"""


_GEOMLOSS = r"""
import json, os, time
import numpy as np
import torch
torch.set_num_threads(2)
from geomloss import SamplesLoss
n, kind, backend, out, eps = {n}, {kind!r}, {backend!r}, {out!r}, {eps}
loss = SamplesLoss("sinkhorn", p=2, blur=(eps / 2) ** 0.5, scaling={scaling}, debias=True,
                   backend=backend)
def call(n):
    x, y = clouds(n, kind, 0)
    X = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    Y = torch.tensor(y, dtype=torch.float32)
    t = time.perf_counter()
    L = loss(X, Y)
    L.backward()
    return time.perf_counter() - t, float(L.detach()), X.grad.numpy()
call(500)                      # KeOps compilation, excluded
t, v, g = call(n)
# GeomLoss's cost is |x - y|^2 / 2: its value and gradient are half of monge's convention; its
# loss is a mean-free sum with uniform weights 1/n, as monge's
np.save(out, 2.0 * g)
print(json.dumps(dict(time=t, value=2.0 * v)))
"""


def run_geomloss(n, kind, backend, grad_out, tmp, scaling=0.9):
    env = dict(os.environ, KEOPS_CACHE_FOLDER=os.path.join(tmp, "keops"), KEOPS_VERBOSE="0",
               PYKEOPS_VERBOSE="0")
    code = _CLOUDS + _GEOMLOSS.format(n=n, kind=kind, backend=backend, out=grad_out, eps=EPS,
                                      scaling=scaling)
    stdout, rss = run_with_peak_rss(code, timeout=7200, env=env)
    rep = json.loads(stdout.strip().splitlines()[-1])
    rep["rss"] = rss
    return rep


def run_one(n, kind, method, dtype, tol, grad_out="", seed=0):
    code = _CLOUDS + _WORKER.format(n=n, kind=kind, method=method, dtype=dtype, tol=tol,
                                    out=grad_out, eps=EPS, seed=seed)
    stdout, rss = run_with_peak_rss(code, timeout=7200)
    rep = json.loads(stdout.strip().splitlines()[-1])
    rep["rss"] = rss
    return rep


_TUNE = r"""
import json, time
import numpy as np, monge
n, kind, seed, opts = {n}, {kind!r}, {seed}, {opts!r}
x, y = clouds(n, kind, seed)
x, y = x.astype(np.float32), y.astype(np.float32)
from monge.multiscale import MultiscaleOptions, solve
knobs = ("cluster_scale", "truncation", "switch_ratio", "bound_frac", "warm_tol",
         "refine_anderson", "refine_stall")
ms = MultiscaleOptions(**{{k: v for k, v in opts.items() if k in knobs}})
t = time.perf_counter()
r = solve(x, y, eps={eps}, options=ms, **{{k: v for k, v in opts.items() if k not in knobs}})
t = time.perf_counter() - t
print(json.dumps(dict(time=t, n_iter=r.n_iter, converged=r.converged,
                      kept_per_row=r.kept_entries / n, truncation=r.truncation)))
"""


_ANNEAL = r"""
import json, sys, time, warnings
import numpy as np
sys.path.insert(0, {bench!r})
from method_auto import clouds as mixture
from monge import _core
from monge.multiscale import MultiscaleOptions, solve, squared_diameter
kind, n, m, d, seed, eps_rel, grid = {kind!r}, {n}, {m}, {d}, {seed}, {eps_rel!r}, {grid!r}
if kind == "blobs":
    x, y = mixture("blobs", n, m, d, seed)
    eps = eps_rel * squared_diameter(x, y)
else:
    x, y = clouds(n, kind, seed)
    eps = {eps}
x, y = x.astype(np.float32), y.astype(np.float32)
warnings.simplefilter("ignore")   # a stall is recorded, not printed
solve(x[:500], y[:500], eps=eps)  # warm-up (thread pool, pages)
for point in grid:                # dicts of stage_tol, stall_near and MultiscaleOptions knobs
    opts = {{k: v for k, v in point.items() if k not in ("stage_tol", "stall_near")}}
    if "stall_near" in point:     # the engine's aa_stall_near (a refining level's stall window)
        _core.sinkhorn_tuning("aa_stall_near", float(point["stall_near"]))
    t = time.perf_counter()
    r = solve(x, y, eps=eps, stage_tol=point.get("stage_tol"), max_iter=4000,
              options=MultiscaleOptions(**opts))
    t = time.perf_counter() - t
    print(json.dumps(dict(**point, eps=eps, time=t, n_iter=r.n_iter, converged=r.converged,
                          error=r.error)), flush=True)
"""

ANNEAL_GRID = [(1e-2, 0.25)] + [(st, sw) for st in (3e-3, 1e-3, 1e-4)
                                for sw in (0.25, 0.5, 1.0, 2.0)]


def anneal_problems():
    for kind, n, seed in (("cube", 30000, 1), ("cube", 30000, 2), ("spheres", 30000, 1),
                          ("spheres", 30000, 2), ("cube", 100000, 1)):
        yield kind, n, n, 3, seed, None
    for d, n, m in ((2, 20000, 10000), (3, 20000, 10000), (5, 6000, 3000)):
        for eps_rel in (1e-4, 3e-4, 1e-3):
            for seed in (10, 11):
                yield "blobs", n, m, d, seed, eps_rel


def choose_anneal(per, key=lambda p: (p["stage_tol"], p["switch_ratio"])):
    """The grid point (key of a run) that converges on every problem with the least geometric
    mean, over the problems, of its time over the fastest converged point's (None when no point
    converges on all)."""
    probs = sorted({p["problem"] for p in per})
    best = {q: min((p["time"] for p in per if p["problem"] == q and p["converged"]),
                   default=None) for q in probs}
    scores = {}
    for pair in {key(p) for p in per}:
        rs = [p for p in per if key(p) == pair]
        if len(rs) == len(probs) and all(p["converged"] for p in rs):
            scores[pair] = float(np.exp(np.mean([np.log(p["time"] / best[p["problem"]])
                                                 for p in rs])))
    return (min(scores, key=scores.get) if scores else None), scores


WARM_GRID = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2)
REFINE_GRID = (0, 2, 4, 8)
# (refine_stall, the engine's aa_stall_near): 0 is the engine's limit at any error
STALL_GRID = [(0, 10)] + [(s, k) for s in (3, 5) for k in (10, 30)]

def grid_runs(grid, keys):
    """Every --tune-anneal problem solved at every grid point (dicts of stage_tol and
    MultiscaleOptions knobs) in one fresh process per problem; a row per run, showing keys."""
    head = ["clouds", "d", "n", "m", "seed", "eps", *keys, "time", "iterations", "converged"]
    bench = os.path.dirname(os.path.abspath(__file__))
    per = []
    for kind, n, m, d, seed, eps_rel in anneal_problems():
        code = _CLOUDS + _ANNEAL.format(bench=bench, kind=kind, n=n, m=m, d=d, seed=seed,
                                        eps_rel=eps_rel, grid=grid, eps=EPS)
        stdout, _ = run_with_peak_rss(code, timeout=7200)
        name = f"{kind} d={d} n={n} m={m} seed={seed}"
        name += f" eps_rel={eps_rel:g}" if eps_rel else ""
        for line in stdout.strip().splitlines():
            rep = json.loads(line)
            per.append(dict(problem=name, kind=kind, d=d, n=n, m=m, seed=seed, eps_rel=eps_rel,
                            **rep))
            row = [kind, str(d), f"{n:,}", f"{m:,}", str(seed), f"{rep['eps']:.3g}",
                   *[f"{rep[k]:g}" for k in keys], fmt_time(rep["time"]), str(rep["n_iter"]),
                   "yes" if rep["converged"] else "no"]
            print(markdown_table(head, [row]), flush=True)
    return per


def tune_knob(record, name, grid):
    """One MultiscaleOptions knob over its grid on the --tune-anneal problems, judged as the
    annealing pair is (--tune-warm, --tune-refine)."""
    per = grid_runs([{name: w} for w in grid], [name])
    best, scores = choose_anneal(per, key=lambda p: p[name])
    record.update(tuning=per, grid=list(grid), scores={f"{k:g}": v for k, v in scores.items()},
                  chosen=None if best is None else {name: best})
    section(f"summary: {name} on the tuning problems")
    shead = [name, "geo-mean time / fastest", "same on uniform clouds", "not converged",
             "total time"]
    srows = []
    for w in grid:
        rs = [p for p in per if p[name] == w]
        uni = [p for p in rs if p["kind"] != "blobs"]
        ub = {q: min(p["time"] for p in per if p["problem"] == q)
              for q in {p["problem"] for p in uni}}
        ug = float(np.exp(np.mean([np.log(p["time"] / ub[p["problem"]]) for p in uni])))
        sc = scores.get(w)
        srows.append([f"{w:g}", "–" if sc is None else f"{sc:.2f}", f"{ug:.2f}",
                      str(sum(not p["converged"] for p in rs)),
                      fmt_time(sum(p["time"] for p in rs))])
    print(markdown_table(shead, srows))
    print(f"\nchosen: {record['chosen']}")


def tune_pair(record, names, grid, title):
    """Two knobs jointly (grid: pairs of values; stage_tol, stall_near and MultiscaleOptions
    knobs) on the --tune-anneal problems, judged by choose_anneal."""
    per = grid_runs([dict(zip(names, g)) for g in grid], names)
    best, scores = choose_anneal(per, key=lambda p: (p[names[0]], p[names[1]]))
    record.update(tuning=per, grid=grid, scores={f"{k[0]:g},{k[1]:g}": v
                                                 for k, v in scores.items()},
                  chosen=None if best is None else dict(zip(names, best)))
    section(title)
    shead = [*names, "geo-mean time / fastest", "same on uniform clouds", "iterations",
             "not converged", "total time"]
    srows = []
    for g in grid:
        rs = [p for p in per if (p[names[0]], p[names[1]]) == tuple(g)]
        uni = [p for p in rs if p["kind"] != "blobs"]
        ub = {q: min(p["time"] for p in per if p["problem"] == q)
              for q in {p["problem"] for p in uni}}
        ug = float(np.exp(np.mean([np.log(p["time"] / ub[p["problem"]]) for p in uni])))
        sc = scores.get(tuple(g))
        srows.append([f"{g[0]:g}", f"{g[1]:g}", "–" if sc is None else f"{sc:.2f}", f"{ug:.2f}",
                      str(sum(p["n_iter"] for p in rs)), str(sum(not p["converged"] for p in rs)),
                      fmt_time(sum(p["time"] for p in rs))])
    print(markdown_table(shead, srows))
    print(f"\nchosen: {record['chosen']}")


_EQUAL = r"""
import json, time, warnings
import numpy as np
from monge.multiscale import MultiscaleOptions, divergence
n, kind, seed, grid, tols, out = {n}, {kind!r}, {seed}, {grid!r}, {tols!r}, {out!r}
x, y = clouds(n, kind, seed)
x, y = x.astype(np.float32), y.astype(np.float32)
warnings.simplefilter("ignore")
divergence(x[:2000], y[:2000], eps={eps}, grad=("x",))   # warm-up (thread pool, pages)
for tol in tols:   # the configurations interleaved: the host's drift spreads over all of them
    for c, point in enumerate(grid):
        times = []
        for rep in range(2):
            t = time.perf_counter()
            v, g, _, nit, conv, err = divergence(x, y, eps={eps}, grad=("x",), tol=tol,
                                                 options=MultiscaleOptions(**point))
            times.append(time.perf_counter() - t)
        np.save(out.format(c=c, tol=tol), g["x"])
        print(json.dumps(dict(config=c, tol=tol, time=float(np.median(times)), times=times,
                              value=float(v), n_iter=int(nit), converged=bool(conv))), flush=True)
"""

# configurations of --tune-equal (MultiscaleOptions knobs; {} the defaults)
EQUAL_GRID = [{}, {"refine_stall": 0}, {"refine_stall": 2}]
EQUAL_TOLS = (5e-5, 1e-4, 1.5e-4, 2e-4, 3e-4, 5e-4, 7e-4, 1e-3)


def tune_equal(record, grid=None):
    """Each configuration's time to the accuracy contract on the tuning clouds (see the module
    docstring); the chosen one has the least geometric mean of that time over the best's."""
    import tempfile
    grid = EQUAL_GRID if grid is None else grid
    head = ["clouds", "n", "configuration", "tol", "time", "iterations", "value rel. error",
            "grad error / max |grad|", "within the contract"]
    per, rows = [], []
    best_time = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, n in (("cube", 30000), ("spheres", 30000), ("cube", 100000)):
            ge = os.path.join(tmp, "ge.npy")
            ref = run_one(n, kind, "multiscale", "float64", 1e-6, ge, seed=1)
            gref = np.load(ge)
            out = os.path.join(tmp, "g{c}_{tol}.npy")
            code = _CLOUDS + _EQUAL.format(n=n, kind=kind, seed=1, grid=grid,
                                           tols=list(EQUAL_TOLS), out=out, eps=EPS)
            stdout, _ = run_with_peak_rss(code, timeout=7200)
            for line in stdout.strip().splitlines():
                rep = json.loads(line)
                verr, gerr = errors(rep, out.format(c=rep["config"], tol=rep["tol"]), ref, gref)
                good = verr <= CONTRACT[0] and gerr <= CONTRACT[1]
                name = json.dumps(grid[rep["config"]]) if grid[rep["config"]] else "defaults"
                per.append(dict(kind=kind, n=n, seed=1, configuration=grid[rep["config"]],
                                value_rel_error=verr, grad_rel_error=gerr, within=good,
                                ref_value=ref["value"], **rep))
                row = [kind, f"{n:,}", name, f"{rep['tol']:g}", fmt_time(rep["time"]),
                       str(rep["n_iter"]), f"{verr:.1e}", f"{gerr:.1e}", "yes" if good else "no"]
                rows.append(row)
                print(markdown_table(head, [row]), flush=True)
    problems = sorted({(p["kind"], p["n"]) for p in per})
    to_contract = {}
    for c in range(len(grid)):
        for q in problems:
            ok = [p["time"] for p in per if p["config"] == c and (p["kind"], p["n"]) == q
                  and p["within"]]
            to_contract[c, q] = min(ok) if ok else None
    for q in problems:
        ts = [to_contract[c, q] for c in range(len(grid)) if to_contract[c, q] is not None]
        best_time[q] = min(ts) if ts else None
    scores = {}
    for c in range(len(grid)):
        ts = [to_contract[c, q] / best_time[q] for q in problems]
        if all(t is not None for t in ts):
            scores[c] = float(np.exp(np.mean(np.log(ts))))
    chosen = min(scores, key=scores.get) if scores else None
    record.update(tuning=per, grid=grid, tols=list(EQUAL_TOLS), contract=CONTRACT,
                  time_to_contract=[dict(configuration=grid[c], kind=q[0], n=q[1],
                                         time=to_contract[c, q])
                                    for c in range(len(grid)) for q in problems],
                  scores={json.dumps(grid[c]): v for c, v in scores.items()},
                  chosen=None if chosen is None else grid[chosen])
    section("summary: time to the accuracy contract (fastest tol within it)")
    shead = ["configuration", *[f"{k} {n:,}" for k, n in problems], "geo-mean / best"]
    srows = [[json.dumps(grid[c]) if grid[c] else "defaults",
              *[fmt_time(to_contract[c, q]) if to_contract[c, q] else "–" for q in problems],
              f"{scores[c]:.3f}" if c in scores else "–"] for c in range(len(grid))]
    print(markdown_table(shead, srows))
    print(f"\nchosen: {record['chosen']}")


def tune_stall(record):
    tune_pair(record, ["refine_stall", "stall_near"], STALL_GRID,
              "summary: refine_stall and aa_stall_near on the tuning problems")


def tune_anneal(record):
    tune_pair(record, ["stage_tol", "switch_ratio"], ANNEAL_GRID,
              "summary: pairs that converge on every tuning problem")


def scaling(record, sizes):
    """Time and memory of the divergence with its gradient against n (cube), and the slope of
    log time against log n between successive sizes and over n >= 1e4."""
    head = ["n", "time", "peak RSS", "iterations", "value", "slope from the previous n"]
    rows, per = [], []
    for n in sizes:
        rep = run_one(n, "cube", "multiscale", "float32", 1e-4)
        per.append(dict(n=n, **rep))
        slope = "–"
        if len(per) > 1:
            a, b = per[-2], per[-1]
            slope = f"{np.log(b['time'] / a['time']) / np.log(b['n'] / a['n']):.2f}"
        row = [f"{n:,}", fmt_time(rep["time"]), f"{rep['rss']:.0f} MiB", str(rep["n_iter"]),
               f"{rep['value']:.7g}", slope]
        rows.append(row)
        print(markdown_table(head, [row]), flush=True)
    big = [p for p in per if p["n"] >= 10000]
    if len(big) >= 2:
        k = np.polyfit(np.log([p["n"] for p in big]), np.log([p["time"] for p in big]), 1)[0]
        record["slope_from_1e4"] = float(k)
        print(f"\nslope of log time against log n for n >= 10,000 (least squares): {k:.2f}")
    record["scaling"] = per
    section("summary")
    print(markdown_table(head, rows))


def tune(record):
    grid = [dict()] + [dict(switch_ratio=v) for v in (0.0625, 1.0, 4.0)] + \
        [dict(truncation=v) for v in (8.0, 16.0)] + [dict(stage_tol=v) for v in (1e-2, 1e-3)]
    head = ["clouds", "n", "seed", "options", "time", "iterations", "kept / row", "tau at end"]
    rows, per = [], []
    for n in (30000, 100000):
        for kind in ("cube", "spheres"):
            for seed in (1, 2):
                for opts in grid:
                    code = _CLOUDS + _TUNE.format(n=n, kind=kind, seed=seed, opts=opts, eps=EPS)
                    stdout, rss = run_with_peak_rss(code, timeout=3600)
                    rep = json.loads(stdout.strip().splitlines()[-1])
                    per.append(dict(n=n, kind=kind, seed=seed, options=opts, **rep))
                    row = [kind, f"{n:,}", str(seed), json.dumps(opts) if opts else "defaults",
                           fmt_time(rep["time"]), str(rep["n_iter"]),
                           f"{rep['kept_per_row']:.0f}", f"{rep['truncation']:g}"]
                    rows.append(row)
                    print(markdown_table(head, [row]), flush=True)
    record["tuning"] = per
    section("summary")
    print(markdown_table(head, rows))


# the accuracy contract for the multiscale solve (value, gradient / its largest entry)
CONTRACT = (1e-4, 1e-3)
TOL_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def errors(rep, path, ref, gref):
    verr = abs(rep["value"] - ref["value"]) / abs(ref["value"])
    return verr, float(np.abs(np.load(path) - gref).max() / np.abs(gref).max())


def tune_tol(record):
    """The loosest float32 tol of TOL_GRID at which the divergence and its gradient still meet
    CONTRACT against the exact float64 solve on both tuning clouds (seed 1, n = 3e4)."""
    import tempfile
    head = ["clouds", "n", "seed", "tol", "time", "value rel. error", "grad error / max |grad|",
            "within the contract"]
    rows, per = [], []
    n, seed = 30000, 1
    ok = {t: True for t in TOL_GRID}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("cube", "spheres"):
            ge = os.path.join(tmp, "ge.npy")
            ref = run_one(n, kind, "exact", "float64", 1e-6, ge, seed=seed)
            gref = np.load(ge)
            for tol in TOL_GRID:
                gm = os.path.join(tmp, "gm.npy")
                rep = run_one(n, kind, "multiscale", "float32", tol, gm, seed=seed)
                verr, gerr = errors(rep, gm, ref, gref)
                good = verr <= CONTRACT[0] and gerr <= CONTRACT[1]
                ok[tol] &= good
                per.append(dict(n=n, kind=kind, seed=seed, tol=tol, value_rel_error=verr,
                                grad_rel_error=gerr, **rep))
                row = [kind, f"{n:,}", str(seed), f"{tol:g}", fmt_time(rep["time"]),
                       f"{verr:.1e}", f"{gerr:.1e}", "yes" if good else "no"]
                rows.append(row)
                print(markdown_table(head, [row]), flush=True)
    chosen = max((t for t in TOL_GRID if ok[t]), default=None)
    record.update(tuning=per, contract=CONTRACT, chosen_tol=chosen)
    section("summary")
    print(markdown_table(head, rows))
    print(f"\nloosest tol within the contract on both tuning clouds: {chosen}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tune", action="store_true", help="the defaults' sweep (see above)")
    ap.add_argument("--scaling", action="store_true", help="time against n, monge alone")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--kinds", nargs="*", default=None, choices=["cube", "spheres"])
    ap.add_argument("--exact-max", type=int, default=30000,
                    help="largest n with the exact reference (default 3e4)")
    ap.add_argument("--geomloss-max", type=int, default=100000,
                    help="largest n for GeomLoss's multiscale backend (default 1e5; 0: none)")
    ap.add_argument("--geomloss-dense-max", type=int, default=10000,
                    help="largest n for GeomLoss's tensorized and online backends (default 1e4)")
    ap.add_argument("--geomloss-scaling", type=float, default=0.9,
                    help="GeomLoss's eps-scaling factor (default 0.9; closer to 1: more accurate)")
    ap.add_argument("--tune-tol", action="store_true",
                    help="the loosest tol within the issue's accuracy contract, on tuning clouds")
    ap.add_argument("--tune-anneal", action="store_true",
                    help="stage_tol and switch_ratio jointly, on uniform and clustered clouds")
    ap.add_argument("--tune-warm", action="store_true",
                    help="warm_tol, on the --tune-anneal problems")
    ap.add_argument("--tune-refine", action="store_true",
                    help="refine_anderson, on the --tune-anneal problems")
    ap.add_argument("--tune-stall", action="store_true",
                    help="refine_stall, on the --tune-anneal problems")
    ap.add_argument("--grid", default=None, metavar="JSON",
                    help="--tune-equal's configurations, a JSON list of MultiscaleOptions knobs "
                         "({} the defaults; default %s)" % json.dumps(EQUAL_GRID).replace("%", "%%"))
    ap.add_argument("--tune-equal", action="store_true",
                    help="refine_stall by time to equal accuracy, on tuning clouds")
    ap.add_argument("--tols", type=float, nargs="*", default=list(TOL_GRID[1:]),
                    help="more monge rows at these float32 tols (default %(default)s)")
    ap.add_argument("--out", default=None,
                    help="results file (default benchmarks/results/multiscale-DATE.json)")
    args = ap.parse_args(argv)
    if args.scaling:
        sizes = args.sizes or [1000, 3000, 10000, 30000, 100000, 300000, 1000000]
        return recorded("multiscale-scaling", "multiscale.py", argv, ["numpy", "monge"],
                        "generated (uniform unit cube, d = 3, seed 0)",
                        lambda record: scaling(record, sizes), out=args.out)
    if args.tune_tol:
        return recorded("multiscale-tol-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seed 1)",
                        tune_tol, out=args.out)
    if args.tune_anneal:
        return recorded("multiscale-anneal-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seeds 1, 2; "
                        "mixtures of ten Gaussians, d = 2, 3, 5, seeds 10, 11)",
                        tune_anneal, out=args.out)
    if args.tune_warm:
        return recorded("multiscale-warm-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seeds 1, 2; "
                        "mixtures of ten Gaussians, d = 2, 3, 5, seeds 10, 11)",
                        lambda record: tune_knob(record, "warm_tol", WARM_GRID), out=args.out)
    if args.tune_refine:
        return recorded("multiscale-refine-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seeds 1, 2; "
                        "mixtures of ten Gaussians, d = 2, 3, 5, seeds 10, 11)",
                        lambda record: tune_knob(record, "refine_anderson", REFINE_GRID),
                        out=args.out)
    if args.tune_stall:
        return recorded("multiscale-stall-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seeds 1, 2; "
                        "mixtures of ten Gaussians, d = 2, 3, 5, seeds 10, 11)",
                        tune_stall, out=args.out)
    if args.tune_equal:
        return recorded("multiscale-equal-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seed 1)",
                        lambda record: tune_equal(record, None if args.grid is None
                                                  else json.loads(args.grid)),
                        out=args.out)
    if args.tune:
        return recorded("multiscale-tuning", "multiscale.py", argv, ["numpy", "monge"],
                        "generated tuning clouds (unit cube / noisy spheres, d = 3, seeds 1, 2)",
                        tune, out=args.out)
    return recorded("multiscale", "multiscale.py", argv, ["numpy", "monge", "torch", "geomloss",
                                                          "pykeops"],
                    "generated (uniform unit cube / noisy spheres, d = 3, seed 0)",
                    lambda record: run(args, record), out=args.out, quick=args.quick)


def run(args, record):
    import tempfile
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'monge', 'torch', 'geomloss', 'pykeops'])}")
    if args.quick:
        cases = [(2000, "cube")]
    elif args.sizes:
        cases = [(n, k) for k in (args.kinds or ["cube"]) for n in args.sizes]
    else:
        cases = [(10000, "cube"), (30000, "cube"), (100000, "cube"), (30000, "spheres")]
    head = ["clouds", "n", "solver", "time", "peak RSS", "value", "value rel. error",
            "grad error / max |grad|", "time / monge multiscale"]
    rows, per = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n, kind in cases:
            gm, ge = os.path.join(tmp, "gm.npy"), os.path.join(tmp, "ge.npy")
            runs = {"monge multiscale": (run_one(n, kind, "multiscale", "float32", 1e-4, gm), gm)}
            for tol in args.tols:
                gl = os.path.join(tmp, f"gl{tol:g}.npy")
                runs[f"monge multiscale (tol {tol:g})"] = (run_one(n, kind, "multiscale",
                                                                   "float32", tol, gl), gl)
            if n <= args.exact_max:
                refname = "monge exact (f64, tol 1e-6)"
                runs[refname] = (run_one(n, kind, "exact", "float64", 1e-6, ge), ge)
            else:   # certified: its error bound includes the truncation
                refname = "monge multiscale (f64, tol 1e-6)"
                runs[refname] = (run_one(n, kind, "multiscale", "float64", 1e-6, ge), ge)
            backends = []
            if n <= args.geomloss_dense_max:
                backends += ["tensorized", "online"]
            if n <= args.geomloss_max:
                backends += ["multiscale"]
            for bk in backends:
                path = os.path.join(tmp, f"g_{bk}.npy")
                try:
                    name = f"GeomLoss {bk}" + ("" if args.geomloss_scaling == 0.9 else
                                               f" (scaling {args.geomloss_scaling:g})")
                    runs[name] = (run_geomloss(n, kind, bk, path, tmp, args.geomloss_scaling),
                                  path)
                except RuntimeError as err:   # reported, not hidden: e.g. out of memory
                    print(f"GeomLoss {bk} at n = {n} failed: {str(err)[-300:]}")
            ref = runs[refname]
            gref = np.load(ref[1])
            t0 = runs["monge multiscale"][0]["time"]
            entry = dict(n=n, kind=kind, reference=refname, runs={})
            for name, (rep, path) in runs.items():
                verr = gerr = None
                if name != refname:
                    verr, gerr = errors(rep, path, ref[0], gref)
                rep.update(value_rel_error=verr, grad_rel_error=gerr)
                entry["runs"][name] = rep
                row = [kind, f"{n:,}", name, fmt_time(rep["time"]), f"{rep['rss']:.0f} MiB",
                       f"{rep['value']:.7g}", "–" if verr is None else f"{verr:.1e}",
                       "–" if gerr is None else f"{gerr:.1e}",
                       "–" if name == "monge multiscale" else f"{rep['time'] / t0:.1f}"]
                rows.append(row)
                print(markdown_table(head, [row]), flush=True)
            per.append(entry)
    record["runs"] = per
    section("summary")
    print(markdown_table(head, rows))
    section("against GeomLoss at equal or better accuracy")
    vhead = ["clouds", "n", "GeomLoss (fastest backend)", "its time", "its errors (value, grad)",
             "monge", "monge time", "monge errors (value, grad)", "time ratio", "reference"]
    vrows = []
    for e in per:
        gl = [(k, r) for k, r in e["runs"].items() if k.startswith("GeomLoss")]
        if not gl:
            continue
        gname, g = min(gl, key=lambda kr: kr[1]["time"])
        # the fastest monge row at least as accurate as GeomLoss in value and gradient
        mine = [(k, r) for k, r in e["runs"].items() if k.startswith("monge multiscale")
                and r["value_rel_error"] is not None
                and r["value_rel_error"] <= g["value_rel_error"]
                and r["grad_rel_error"] <= g["grad_rel_error"]]
        if not mine:
            vrows.append([e["kind"], f"{e['n']:,}", gname, fmt_time(g["time"]),
                          f"{g['value_rel_error']:.1e}, {g['grad_rel_error']:.1e}",
                          "none as accurate", "–", "–", "–", e["reference"]])
            continue
        mname, m = min(mine, key=lambda kr: kr[1]["time"])
        e["verdict"] = dict(geomloss=gname, monge=mname, ratio=g["time"] / m["time"])
        vrows.append([e["kind"], f"{e['n']:,}", gname, fmt_time(g["time"]),
                      f"{g['value_rel_error']:.1e}, {g['grad_rel_error']:.1e}", mname,
                      fmt_time(m["time"]),
                      f"{m['value_rel_error']:.1e}, {m['grad_rel_error']:.1e}",
                      f"{g['time'] / m['time']:.1f}", e["reference"]])
    print(markdown_table(vhead, vrows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
