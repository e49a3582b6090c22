"""Package surface: version, threads, build info, CLI, and NumPy as the only hard dependency."""
import os
import subprocess
import sys

import numpy as np

import monge


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_and_build_info():
    assert monge.__version__ == "0.1.0"
    info = monge.build_info()
    assert info["version"] == monge.__version__
    assert info["openmp"] is True  # the test machines have gcc with OpenMP
    assert info["simd"] in ("avx512", "avx2", "generic")


def test_set_get_threads():
    old = monge.get_num_threads()
    try:
        monge.set_num_threads(1)
        assert monge.get_num_threads() == 1
        monge.set_num_threads(3)
        assert monge.get_num_threads() == 3
    finally:
        monge.set_num_threads(old)


def test_import_needs_numpy_only():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['scipy'] = None; "
            "import monge, numpy as np; r = monge.sinkhorn(np.eye(3), np.eye(3), eps=0.1); "
            "print(r.converged, 'torch' in sys.modules and sys.modules['torch'] is not None)")
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False"]


HEAVY = ("rdkit", "torch", "transformers", "tokenizers", "dask", "distributed", "matplotlib", "sklearn")


def test_import_pulls_no_optional_dependency():
    """The library and the experiments' packages import none of the optional extras: those are
    imported by the modules that need them (monge.torch, monge.distributed, the experiments' code)."""
    code = ("import sys, monge, monge.maps, monge.experiments, monge.experiments.maps, "
            "monge.experiments.orma, monge.experiments.speech_ctc_ot, monge.experiments.spectr, "
            "monge.experiments.routing; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_help_and_info():
    out = run("-m", "monge", "--help")
    assert out.returncode == 0 and "demo" in out.stdout and "sinkhorn" in out.stdout
    out = run("-m", "monge", "info")
    assert out.returncode == 0 and "monge 0.1.0" in out.stdout


def test_cli_sinkhorn_on_npy_files(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.random((30, 2)), rng.random((25, 2))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    out = run("-m", "monge", "sinkhorn", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
              "--eps", "0.05", "--out", str(tmp_path / "pot.npz"))
    assert out.returncode == 0, out.stderr
    value = float(out.stdout.split()[1])
    assert abs(value - monge.sinkhorn(x, y, eps=0.05).value) < 1e-12
    with np.load(tmp_path / "pot.npz", allow_pickle=False) as z:
        assert z["f"].shape == (30,)


def test_cli_rejects_pickled_input(tmp_path):
    np.save(tmp_path / "x.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros((3, 2)))
    out = run("-m", "monge", "sinkhorn", str(tmp_path / "x.npy"), str(tmp_path / "y.npy"),
              "--eps", "0.1")
    assert out.returncode != 0 and "allow_pickle" in out.stderr


def test_ot_demo_runs_small():
    out = run("-m", "monge", "ot-demo", "--n", "300", "--eps", "0.1", "0.01")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("converged=True") == 2


def test_map_demo_runs_small_and_writes_a_plot(tmp_path):
    png = tmp_path / "demo.png"
    out = run("-m", "monge", "demo", "--n", "500", "--n-iter", "40", "--out", str(png))
    assert out.returncode == 0, out.stderr
    assert "L2-UVP" in out.stdout and out.stdout.count("s\n") >= 2
    assert png.stat().st_size > 10000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_omp_num_threads_is_honoured():
    out = run("-c", "import monge; print(monge.get_num_threads())",
              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip() == "1"


def test_core_test_selection_collects_without_optional_packages():
    """`pytest --core` (the tests a NumPy + SciPy + POT install can run) collects its modules with
    every optional package blocked, and leaves out only tests marked optional."""
    here = os.path.dirname(os.path.abspath(__file__))
    p = subprocess.run([sys.executable, "-m", "pytest", "--core", "--collect-only", "-q",
                        "-p", "no:cacheprovider", here], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    n = sum(1 for line in p.stdout.splitlines() if "::" in line)
    assert n >= 400, p.stdout[-2000:]
    summary = p.stdout.strip().splitlines()[-1]
    assert "deselected" in summary and "error" not in summary, summary


def test_core_stub_is_current_and_shipped():
    """python/monge/_core.pyi is what tools/gen_core_stub.py derives from the bindings, names every
    function of the extension, and py.typed marks the package as typed (PEP 561)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, os.path.join(root, "tools", "gen_core_stub.py"), "--check"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    from monge import _core

    with open(os.path.join(root, "python", "monge", "_core.pyi")) as fh:
        stub = fh.read()
    public = [n for n in dir(_core) if not n.startswith("_")]
    assert public and all(f"def {n}(" in stub for n in public)
    assert os.path.exists(os.path.join(root, "python", "monge", "py.typed"))
