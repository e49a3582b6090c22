"""The documentation site's API page lists every public object (the site itself is built with
warnings as errors and checked in a browser by `make docs`, a stage of `make test`)."""
import importlib
import re
from pathlib import Path

import pytest

API = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
MODULES = ["monge", "monge.torch", "monge.maps", "monge.maps.datasets", "monge.maps.metrics",
           "monge.maps.nn", "monge.pot", "monge.spectr", "monge.routing", "monge.speech",
           "monge.distributed", "monge.multiscale"]


def _listed(module):
    """Names listed under `.. currentmodule:: module` blocks, and names the page mentions as
    `module.NAME` in its text (constants and submodules)."""
    names = set()
    for block in re.split(r"\.\. currentmodule:: ", API)[1:]:
        mod, _, body = block.partition("\n")
        if mod.strip() == module:
            names |= set(re.findall(r"^   ([\w.]+)$", body.split("```")[0], flags=re.M))
    names |= set(re.findall(rf"`{re.escape(module)}\.(\w+)`", API))
    return names


@pytest.mark.parametrize("module", MODULES)
def test_api_page_lists_every_public_name(module):
    mod = importlib.import_module(module)
    public = {n for n in mod.__all__ if not n.startswith("__")}
    submodules = {n for n in public if type(getattr(mod, n)).__name__ == "module"}
    listed = _listed(module)
    # a listed 'bregman.empirical_sinkhorn_divergence' documents the submodule 'bregman'
    listed |= {n.split(".")[0] for n in listed}
    missing = sorted(public - listed - {s for s in submodules if f"{module}.{s}" in API})
    assert not missing, f"docs/api.md does not list {module}.{{{', '.join(missing)}}}"


# need a Dask cluster to run: their docstrings point to docs/experiments/dask.md instead
NO_EXAMPLES = {"monge.distributed.pairwise", "monge.distributed.map_problems"}


def _sections(doc):
    return set(re.findall(r"^(\w[\w ]*)\n-{3,}$", doc, flags=re.M))


@pytest.mark.parametrize("module", MODULES)
def test_every_public_object_has_numpydoc_sections(module):
    import inspect

    mod = importlib.import_module(module)
    missing = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue                                  # constants and submodules
        sections = _sections(inspect.getdoc(obj) or "")
        want = {"Examples"} if f"{module}.{name}" not in NO_EXAMPLES else set()
        # an exception class without a constructor of its own has nothing to list
        plain_exception = (inspect.isclass(obj) and issubclass(obj, BaseException)
                           and "__init__" not in vars(obj))
        if not plain_exception and not sections & {"Parameters", "Attributes", "Returns"}:
            want.add("Parameters, Attributes or Returns")
        lacking = sorted(w for w in want if w not in sections)
        if lacking:
            missing.append(f"{name} ({', '.join(lacking)})")
    assert not missing, f"{module}: docstrings without {'; '.join(missing)}"
