"""Runs tests/valgrind_smoke.py under valgrind memcheck and fails on any error or definite leak
whose stack passes through monge's extension (python/monge/_core*.so: the C core and the
bindings).  CPython and NumPy report their own known false positives and import-time leaks under
memcheck; those are not ours and are listed only as a count.

    python tests/valgrind_check.py          (make valgrind; part of make test when valgrind exists)
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    if shutil.which("valgrind") is None:
        print("valgrind_check: valgrind not found (apt-get install valgrind)", file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONMALLOC="malloc", OMP_NUM_THREADS="2")
    cmd = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
           "--show-leak-kinds=definite", "--num-callers=40", sys.executable,
           os.path.join(HERE, "valgrind_smoke.py")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if "ok" not in p.stdout.split():
        print(p.stdout, p.stderr[-4000:], sep="\n")
        print("valgrind_check: the smoke script did not finish", file=sys.stderr)
        return 1
    blocks = re.split(r"\n==\d+== \n", p.stderr)
    kinds = ("Invalid", "uninitialised", "definitely lost", "Mismatched", "overlap")
    ours, theirs = [], 0
    for b in blocks:
        if not any(k in b for k in kinds):
            continue
        if re.search(r"monge/_core[^ ]*\.so|\bmonge_\w+|\bpy_\w+ \(|csrc/", b):
            ours.append(b)
        else:
            theirs += 1
    print(f"valgrind_check: {len(ours)} report(s) in monge, {theirs} in CPython/NumPy (ignored)")
    for b in ours:
        print(b)
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
