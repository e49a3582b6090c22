"""The build's compiler flags do what the C core relies on."""
import ast
import os
import platform
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LOOPS = r"""
#include <stdint.h>
#include "internal.h"
void expf_loop(int64_t m, float *restrict z, const float *restrict s, float c)
{
    float part = 0;
    MONGE_SIMD_SUM(part)
    for (int64_t j = 0; j < m; j++) { /* LOOP_F32 */
        const float e = monge_expf(s[j] * c - 1.0f);
        z[j] = e;
        part += e;
    }
    z[0] += part;
}
void exp_loop(int64_t m, double *restrict z, const double *restrict s, double c)
{
    MONGE_SIMD
    for (int64_t j = 0; j < m; j++) z[j] = monge_exp(s[j] * c); /* LOOP_F64 */
}
"""


def _gcc_flags():
    tree = ast.parse(open(os.path.join(ROOT, "setup.py")).read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "GCC_FLAGS"
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py: no GCC_FLAGS list")


def test_exp_loops_vectorise_with_the_build_flags(tmp_path):
    """monge_exp / monge_expf under `omp simd` must vectorise with setup.py's flags: on AVX2 GCC
    keeps their range checks as branches without -fno-trapping-math, and the exp loops (every
    Sinkhorn kernel) ran scalar, 12 times slower online.  Checked in the assembly: 2^k is put
    together in 8 float (or 4 double) lanes of a ymm register."""
    gcc = shutil.which("gcc")
    assert gcc, "the build needs gcc (setup.py compiles the extension with it)"
    assert platform.machine() in ("x86_64", "AMD64"), "this check reads x86-64 assembly"
    src = tmp_path / "loops.c"
    src.write_text(LOOPS)
    flags = _gcc_flags()
    assert "-fno-trapping-math" in flags
    cmd = [gcc, *flags, "-march=x86-64-v3", "-fopenmp", "-I" + os.path.join(ROOT, "csrc"), "-S",
           str(src), "-o", "-"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    asm = p.stdout
    f32 = asm[asm.index("expf_loop:"):asm.index("exp_loop:")]
    f64 = asm[asm.index("exp_loop:"):]
    assert "vpslld\t$23, %ymm" in f32, "monge_expf's loop did not vectorise"
    assert "vpsllq\t$52, %ymm" in f64, "monge_exp's loop did not vectorise"
