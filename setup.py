"""Build of monge's C extension.

The extension is every csrc/**/*.c (the C library plus the binding files in csrc/bindings/).  The build
- compiles with -O3 and, when the compiler accepts it, OpenMP (probed; without it the library is
  built serial and the build says so);
- stays portable: no -march=native by default.  The hot kernels carry GCC target_clones (AVX-512,
  AVX2+FMA, baseline), chosen at load time for the running CPU;
- MONGE_NATIVE=1 in the environment opts into -march=native (no dispatch);
- MONGE_SANITIZE=1 builds with AddressSanitizer + UBSan (for debugging; needs LD_PRELOAD of libasan).
"""
import glob
import os
import shutil
import sys
import tempfile

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _c_sources():
    files = sorted(glob.glob(os.path.join("csrc", "**", "*.c"), recursive=True))
    return [f for f in files if os.sep + "tests" + os.sep not in f]


# GCC / Clang flags of the extension (tests/test_build.py reads them).  -fno-trapping-math: without
# it GCC keeps monge_exp's range checks as branches and the exp loops stay scalar on AVX2 (it
# changes no IEEE result: NaN and infinity still propagate).
GCC_FLAGS = ["-O3", "-std=c11", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math",
             "-Wall", "-Wno-unknown-pragmas"]


class BuildExt(build_ext):
    """build_ext that probes the compiler for OpenMP before compiling."""

    def _probe(self, flags):
        tmp = tempfile.mkdtemp(prefix="monge-omp-")
        try:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as fh:
                fh.write("#include <omp.h>\nint main(void){int s=0;\n#pragma omp parallel for "
                         "reduction(+:s)\nfor(int i=0;i<4;i++)s+=i;\nreturn s==6?0:1;}\n")
            objs = self.compiler.compile([src], output_dir=tmp, extra_postargs=flags)
            self.compiler.link_executable(objs, os.path.join(tmp, "probe"), extra_postargs=flags)
            return True
        except Exception:  # any compiler or linker failure means: no OpenMP with these flags
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def build_extensions(self):
        cc = self.compiler.compiler_type
        compile_args, link_args = [], []
        if cc == "msvc":
            compile_args += ["/O2", "/openmp"]
            print("monge: building with MSVC /openmp")
        else:
            compile_args += GCC_FLAGS
            if os.environ.get("MONGE_NATIVE") == "1":
                compile_args += ["-march=native", "-DMONGE_NATIVE"]
                print("monge: MONGE_NATIVE=1: -march=native, no runtime dispatch")
            if os.environ.get("MONGE_SANITIZE") == "1":
                compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
                link_args += ["-fsanitize=address,undefined"]
            if self._probe(["-fopenmp"]):
                compile_args.append("-fopenmp")
                link_args.append("-fopenmp")
                print("monge: OpenMP enabled (-fopenmp)")
            else:
                print("monge: WARNING: the compiler has no OpenMP; building a serial library",
                      file=sys.stderr)
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


ext = Extension(
    "monge._core",
    sources=_c_sources(),
    include_dirs=[numpy.get_include(), "csrc"],
    define_macros=[("_POSIX_C_SOURCE", "200809L")],
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
