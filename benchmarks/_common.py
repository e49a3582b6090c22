"""Helpers shared by the benchmark scripts: timing, peak memory of a fresh process, the C machine
floor (benchmarks/floor.c), machine information and markdown tables.

Nothing here imports monge, torch or POT at module level: the scripts decide what to load.

Results files (benchmarks/results/NAME-DATE.json) hold: command, commit, date, machine (cpu, nproc,
platform, load_at_start), versions, data, why, the structured results of the script and the printed
log; `results_record`, `Tee` and `write_results` below make them.
"""
from __future__ import annotations

import datetime
import gc
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# --------------------------------------------------------------------------------------- timing

@dataclass
class Timing:
    """Wall-clock times of repeated calls; `result` is what the last call returned."""

    times: list
    result: object = None
    warnings: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.times)

    @property
    def spread(self):
        """max / min over the repeats: a rough noise indicator."""
        return max(self.times) / min(self.times) if min(self.times) > 0 else float("inf")

    def __str__(self):
        return f"median {fmt_time(self.median)} over {len(self.times)} runs (max/min {self.spread:.2f})"


def timeit(fn, repeats=3, warmup=1, min_total=1.0, max_repeats=15, pause=0.05):
    """Median wall time of `fn()`.

    `warmup` untimed calls first, then at least `repeats` timed calls, more (up to `max_repeats`)
    while the timed calls add up to less than `min_total` seconds, so short runs get more repeats.
    Before each timed call: garbage collection and a short pause, so that spinning worker threads of
    a previous contender (OpenMP, OpenBLAS, torch) have gone to sleep.  Warnings raised by `fn` are
    recorded (once per distinct message) instead of printed.
    """
    return interleaved({"fn": fn}, repeats, warmup, min_total, max_repeats, pause)["fn"]


def interleaved(fns, repeats=3, warmup=1, min_total=1.0, max_repeats=15, pause=0.05, prior=None):
    """Like `timeit` for several contenders at once, measured side by side: after the warm-ups,
    every pass runs each contender that still needs runs once, so that a change of load on a
    shared machine hits all of them alike.

    fns      {name: callable}
    repeats  minimum timed runs, an int or {name: int}; cheap contenders get more runs (up to
             `max_repeats`) until their runs add up to `min_total` seconds
    warmup   untimed runs first, an int or {name: int}
    prior    {name: Timing} of runs already made, counted in
    Returns {name: Timing}.
    """
    per = lambda v, k: v[k] if isinstance(v, dict) else v  # noqa: E731
    out = {k: Timing(list(prior[k].times) if prior and k in prior else [],
                     prior[k].result if prior and k in prior else None,
                     list(prior[k].warnings) if prior and k in prior else [])
           for k in fns}
    seen = {k: {} for k in fns}

    def call(k):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = fns[k]()
        for w in caught:
            key = f"{w.category.__name__}: {w.message}"
            seen[k][key] = seen[k].get(key, 0) + 1
        return res

    for k in fns:
        for _ in range(per(warmup, k)):
            out[k].result = call(k)

    def pending():
        return [k for k in fns
                if len(out[k].times) < per(repeats, k)
                or (sum(out[k].times) < min_total and len(out[k].times) < max_repeats)]

    todo = pending()
    while todo:
        for k in todo:
            gc.collect()
            time.sleep(pause)
            t0 = time.perf_counter()
            out[k].result = call(k)
            out[k].times.append(time.perf_counter() - t0)
        todo = pending()
    for k in fns:
        out[k].warnings += [f"{m} (x{c})" if c > 1 else m for m, c in seen[k].items()
                            if m not in out[k].warnings]
    return out


def first_and_timed(fn, arg, repeats):
    """A jit-compiled function's first call (it compiles; timed apart), then `repeats` timed
    calls: (first call's time, the timed calls' times, the last output as a NumPy array)."""
    import numpy as np

    t0 = time.perf_counter()
    out = np.asarray(fn(arg))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = np.asarray(fn(arg))
        times.append(time.perf_counter() - t0)
    return first, times, out


def catch_warnings_call(fn):
    """(fn(), list of distinct warning messages raised by it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn()
    msgs = []
    for w in caught:
        key = f"{w.category.__name__}: {w.message}"
        if key not in msgs:
            msgs.append(key)
    return out, msgs


def fmt_time(t):
    if t is None:
        return "-"
    if t >= 1:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.0f} us"


# ---------------------------------------------------------------------------------- peak memory

# A fresh interpreter runs the worker as its only child and reports the child's peak resident set
# size from getrusage(RUSAGE_CHILDREN): nothing the benchmark process has allocated (or any earlier
# child, e.g. the compiler) is counted.
_LAUNCHER = r"""
import json, resource, subprocess, sys
p = subprocess.run([sys.executable, "-c", sys.argv[1]], capture_output=True, text=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps(dict(returncode=p.returncode, stdout=p.stdout, stderr=p.stderr[-4000:],
                      maxrss=ru.ru_maxrss)))
"""


def run_with_peak_rss(code, timeout=900, env=None):
    """Runs `python -c code` in a fresh process; returns (its stdout, its peak RSS in MiB)."""
    p = subprocess.run([sys.executable, "-c", _LAUNCHER, code], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"launcher failed:\n{p.stderr}")
    rep = json.loads(p.stdout.strip().splitlines()[-1])
    if rep["returncode"] != 0:
        raise RuntimeError(f"worker failed (exit {rep['returncode']}):\n{rep['stderr']}")
    # ru_maxrss is in kilobytes on Linux, in bytes on macOS
    scale = 1 / 2**20 if sys.platform == "darwin" else 1 / 2**10
    return rep["stdout"], rep["maxrss"] * scale


# ----------------------------------------------------------------------------- the machine floor

def compile_floor(outdir):
    """Compiles benchmarks/floor.c into outdir; returns the executable's path or raises."""
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        raise RuntimeError(f"compiler {cc!r} not found")
    exe = os.path.join(outdir, "floor")
    # the flags the library is built with (setup.py): the same exp, contracted into FMAs
    cmd = [cc, "-std=c11", "-O3", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math",
           "-fopenmp",
           os.path.join(HERE, "floor.c"), "-lm", "-o", exe]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr}")
    return exe


def floor_pass(exe, n, m, dtype="f64", threads=1, runs=3):
    """Seconds of one log-sum-exp pass over n*m entries: the median over `runs` invocations of the
    floor program (each already the median of its own repeats).  One Sinkhorn iteration = 2 passes."""
    vals = []
    for _ in range(runs):
        time.sleep(0.05)
        p = subprocess.run([exe, str(n), str(m), dtype, str(threads)], capture_output=True,
                           text=True, check=True)
        vals.append(float(p.stdout.split()[0]))
    return statistics.median(vals)


# ---------------------------------------------------------------------------------- information

def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def versions(modules):
    """Installed versions, from the package metadata first: importing a package to ask it can
    fail for reasons of its own (a stale KeOps cache) while the contender's runs work."""
    from importlib import metadata

    out = {}
    for name in modules:
        try:
            out[name] = metadata.version(name)
            continue
        except metadata.PackageNotFoundError:
            pass
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # noqa: BLE001  (report, do not fail)
            out[name] = f"unavailable ({type(exc).__name__})"
    return out


def git_commit():
    """HEAD of the checkout the benchmarks run from, with "+uncommitted" when tracked files differ
    from it (the numbers then belong to no commit), or "" outside a git checkout.  Results files
    do not count: a run that rewrites a committed one leaves the code at HEAD."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=ROOT).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!benchmarks/results"],
                               capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""
    return head + "+uncommitted" if head and dirty else head


# -------------------------------------------------------------------------------- results files

def results_record(script, argv, modules, data, why=""):
    """The header of a results file: how the run was invoked, on what, with which versions.
    `script` is the file name under benchmarks/, `argv` its arguments (sys.argv[1:])."""
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    vers = versions(modules)
    try:
        import monge

        vers["simd"] = monge.build_info().get("simd", "?")
    except Exception:  # noqa: BLE001  (report, do not fail)
        pass
    return {
        "command": " ".join(["python", f"benchmarks/{script}"] + [shlex.quote(a) for a in argv]),
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "nproc": usable_cpus(), "platform": platform.platform(),
                    "load_at_start": load},
        "versions": vers,
        "data": data,
        "why": why,
    }


def results_path(name, out, quick=False):
    """Where a run writes its results file: `out` if given; nothing for a --quick smoke run
    without --out; else benchmarks/results/NAME-YYYY-MM-DD.json, with -2, -3, ... appended
    rather than overwriting an earlier run of the same day."""
    if out:
        return out
    if quick:
        return None
    stem = os.path.join(HERE, "results", f"{name}-{datetime.date.today().isoformat()}")
    path, k = stem + ".json", 2
    while os.path.exists(path):
        path, k = f"{stem}-{k}.json", k + 1
    return path


def write_results(path, record):
    """Writes `record` as indented JSON (creating the folder); returns the path."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as fh:
        json.dump(record, fh, indent=1, allow_nan=True)
        fh.write("\n")
    return path


class Tee(io.TextIOBase):
    """Context manager: everything printed to stdout inside it is also kept, for the results
    file's "log" (a list of lines)."""

    def __enter__(self):
        self._out, self._buf = sys.stdout, io.StringIO()
        sys.stdout = self
        return self

    def __exit__(self, *exc):
        sys.stdout = self._out
        return False

    def write(self, s):
        self._buf.write(s)
        return self._out.write(s)

    def flush(self):
        self._out.flush()

    @property
    def lines(self):
        return self._buf.getvalue().splitlines()


# ------------------------------------------------------------------------------------- printing

def markdown_table(headers, rows):
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def section(title):
    print()
    print("=" * len(title))
    print(title)
    print("=" * len(title), flush=True)


def recorded(name, script, argv, modules, data, body, out=None, quick=False, why=""):
    """Runs body(record) with its printed output kept (body may add entries to the record), then
    writes the results file NAME-DATE.json (results_record's header, the "log" of the run and the
    load at the end; nothing for a --quick run without --out).  Returns body's return value."""
    record = results_record(script, argv, modules, data, why)
    with Tee() as tee:
        rc = body(record)
    record["log"] = tee.lines
    try:
        record["machine"]["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    path = results_path(name, out, quick)
    if path:
        print(f"results written to {write_results(path, record)}")
    return rc
