"""The sdist and the wheel, tried as a new user would (`make wheel`; `make test` runs it too).

1. `python -m build --sdist` (no isolation: this venv's setuptools and NumPy) on a copy of the
   files a fresh clone has, and a check that
   every C source setup.py compiles and every header they include is inside it;
2. a fresh venv builds a wheel from that sdist (pip's isolated build: setuptools and NumPy from
   the index), installs it and passes the smoke test below;
3. `auditwheel repair` makes the wheel manylinux (the OpenMP runtime vendored) and `auditwheel
   show` must name a manylinux tag and no unvendored library but libc/libm;
4. a second fresh venv, with no compiler on PATH and `--only-binary :all:`, installs the repaired
   wheel and passes the smoke test.

Prints the wheel's size and the time of each step.  --out keeps the artefacts (sdist, wheel);
otherwise they go to a temporary directory.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# runs in the fresh venvs, from a directory outside the checkout (so `import monge` is the install)
SMOKE = r"""
import os, sys
import numpy as np
import monge
assert os.path.realpath(monge.__file__).startswith(os.path.realpath(sys.prefix)), monge.__file__
rng = np.random.default_rng(0)
x, y = rng.normal(size=(40, 3)), rng.normal(size=(50, 3)) + 1.0
r = monge.sinkhorn(x, y, eps=0.5)
assert r.converged and abs(r.plan().sum() - 1.0) < 1e-6, r
e = monge.emd(x=x, y=y)
C = ((x[:, None] - y[None]) ** 2).sum(-1)
assert e.converged and abs((e.toarray() * C).sum() - e.cost) < 1e-8 * max(1.0, e.cost)
monge.set_num_threads(2)
r2 = monge.sinkhorn(x, y, eps=0.5)
assert np.array_equal(r.f, r2.f), "results depend on the thread count"
print("smoke ok:", monge.__file__)
"""


def run(cmd, env=None, cwd=None):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit(f"dist check: failed: {' '.join(map(str, cmd))}")
    return p.stdout, time.perf_counter() - t0


def check_sdist_contents(path, src_root=ROOT):
    """Every csrc/**/*.c that setup.py compiles and every quoted #include they reach is inside."""
    with tarfile.open(path) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
        missing = []
        for n in sorted(names):
            if not (n.startswith("csrc/") and n.endswith((".c", ".h", ".inc"))):
                continue
            text = tf.extractfile(tf.getmember(path_in(tf, n))).read().decode()
            for inc in re.findall(r'^\s*#\s*include\s+"([^"]+)"', text, flags=re.M):
                cands = [os.path.normpath(os.path.join(os.path.dirname(n), inc)),
                         os.path.normpath(os.path.join("csrc", inc))]
                if not any(c in names for c in cands):
                    missing.append(f"{n} includes {inc}")
    want = {os.path.relpath(os.path.join(dp, f), src_root)
            for dp, _, fs in os.walk(os.path.join(src_root, "csrc"))
            for f in fs if f.endswith(".c") and os.sep + "tests" not in dp}
    missing += [f"{w} (compiled by setup.py)" for w in sorted(want - names)]
    for must in ("LICENSE", "README.md", "setup.py", "pyproject.toml"):
        if must not in names:
            missing.append(must)
    if missing:
        raise SystemExit("dist check: the sdist lacks:\n  " + "\n  ".join(missing))
    return len(names)


def path_in(tf, rel):
    return next(m for m in tf.getnames() if m.split("/", 1)[-1] == rel and "/" in m)


def export_tree(dest):
    """The checkout's files as a fresh clone has them (tracked and untracked-not-ignored), so no
    stale egg-info manifest of an earlier build can supply files the MANIFEST.in misses."""
    out, _ = run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    for rel in filter(None, out.split("\0")):
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))
    return dest


def fresh_venv(where):
    run([sys.executable, "-m", "venv", where])
    return os.path.join(where, "bin", "python")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="keep the sdist and the repaired wheel here")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="monge-dist-")
    out = os.path.abspath(args.out) if args.out else os.path.join(tmp, "dist")
    os.makedirs(out, exist_ok=True)
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    try:
        for f in os.listdir(out):
            if f.startswith("monge-") and f.endswith((".tar.gz", ".whl")):
                os.remove(os.path.join(out, f))
        src = export_tree(os.path.join(tmp, "src"))
        _, t = run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", out, src],
                   env=env)
        sdist = os.path.join(out, next(f for f in os.listdir(out) if f.endswith(".tar.gz")))
        n = check_sdist_contents(sdist, src)
        print(f"sdist: {os.path.basename(sdist)}, {n} files, every C source and header inside "
              f"({t:.0f} s)")

        py_a = fresh_venv(os.path.join(tmp, "venv-build"))
        wheels = os.path.join(tmp, "wheels")
        _, t = run([py_a, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, sdist])
        raw = os.path.join(wheels, os.listdir(wheels)[0])
        run([py_a, "-m", "pip", "install", "-q", raw])
        smoke, _ = run([py_a, "-c", SMOKE], cwd=tmp)
        print(f"fresh venv: wheel built from the sdist and installed ({t:.0f} s); {smoke.strip()}")

        _, t = run([sys.executable, "-m", "auditwheel", "repair", "-w", out, raw], env=env)
        wheel = os.path.join(out, next(f for f in os.listdir(out) if f.endswith(".whl")))
        show, _ = run([sys.executable, "-m", "auditwheel", "show", wheel], env=env)
        flat = " ".join(show.split())
        tag = re.search(r'platform tag: "(manylinux_\d+_\d+_\w+)"', flat)
        listing = run([sys.executable, "-m", "zipfile", "-l", wheel])[0]
        for typed in ("monge/py.typed", "monge/_core.pyi"):
            if typed not in listing:
                raise SystemExit(f"dist check: the wheel lacks {typed} (PEP 561 typing)")
        if not tag or "monge.libs" not in listing:
            raise SystemExit("dist check: the repaired wheel is not manylinux with its OpenMP "
                             "runtime vendored:\n" + show)
        print(f"auditwheel: {os.path.basename(wheel)} ({tag.group(1)}, libgomp vendored), "
              f"{os.path.getsize(wheel) / 2 ** 20:.2f} MiB ({t:.0f} s)")

        py_b = fresh_venv(os.path.join(tmp, "venv-user"))
        bare = dict(os.environ, PATH=os.path.dirname(py_b), CC="/nonexistent/cc")
        _, t = run([py_b, "-m", "pip", "install", "-q", "--only-binary", ":all:", wheel], env=bare)
        smoke, _ = run([py_b, "-c", SMOKE], env=bare, cwd=tmp)
        print(f"fresh venv, no compiler on PATH: repaired wheel installed ({t:.0f} s); "
              f"{smoke.strip()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
