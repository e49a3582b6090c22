"""Results files of the experiments: what ran, where, on what code and data (docs/benchmarks).

A results file is ``{"meta": ..., "rows": [...]}``; ``meta`` holds the command, the date, the
machine (CPU, cores, load average before and after, the git commit, marked ``+uncommitted`` when
the tree had changes), the library versions and, where data was read, its path and sha256.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys

import numpy as np


def machine_info():
    """CPU model, cores, load average, git commit of the package's tree, Python, SIMD level."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=here).stdout.strip()
        if commit and dirty:
            commit += "+uncommitted"
    except OSError:
        commit = ""
    from .. import _core

    # the vector level the kernels run at (AVX-512 and AVX2 hosts of the same CPU name differ)
    simd = _core.build_info().get("simd", "?")
    return dict(cpu=cpu, cores=os.cpu_count(), load_average=list(os.getloadavg()), commit=commit,
                python=platform.python_version(), simd=simd)


def versions_info(extra=("torch",)):
    """numpy, monge and the optional packages in ``extra`` that are installed."""
    from .. import __version__

    out = {"numpy": np.__version__, "monge": __version__}
    for name in extra:
        try:
            mod = __import__(name)
        except ImportError:
            continue
        out[name] = getattr(mod, "__version__", "?")
    return out


# two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_and_half_width(diffs):
    """(mean, half-width of the 95 % t-interval of the mean, n) of paired differences (one per
    seed); the half-width is infinite below two pairs and the mean NaN without any."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n < 2:
        return (float(d.mean()) if n else float("nan")), float("inf"), n
    t = _T975[n - 2] if n - 2 < len(_T975) else 1.96
    return float(d.mean()), float(t * d.std(ddof=1) / np.sqrt(n)), n


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def start(prog, argv=None, extra=("torch",)):
    """The meta of a run that starts now: date, command (``prog`` + the arguments), machine,
    versions."""
    args = sys.argv[1:] if argv is None else list(argv)
    return dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                command=" ".join([prog] + args), machine=machine_info(),
                versions=versions_info(extra))


def finish(meta, **fields):
    """The meta of a finished run: the load average after, and ``fields`` (data, settings...)."""
    return dict(meta, load_average_after=list(os.getloadavg()), **fields)


def write(path, meta, rows):
    with open(path, "w") as fh:
        json.dump(dict(meta=meta, rows=rows), fh, indent=1)


def commit_label(meta):
    """The commit a run used, shortened; a run of a modified tree says so (and its note says what)."""
    c = meta["machine"]["commit"]
    short = c.split("+")[0][:10]
    if "+uncommitted" in c:
        short += " + uncommitted changes" + (f" ({meta['note']})" if meta.get("note") else "")
    return short


def source_line(path, meta):
    """One line naming a run for the docs: file, date, commit, machine and load."""
    return (f"Source: `{os.path.basename(path)}` — {meta['date']}, commit {commit_label(meta)}, "
            f"{meta['machine']['cpu']} ({meta['machine']['cores']} cores, load "
            f"{meta['machine']['load_average'][0]:.1f} → {meta['load_average_after'][0]:.1f}); "
            f"`{meta['command']}`.")
