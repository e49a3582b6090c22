"""Sphinx configuration of monge's documentation site (`make docs`; builds offline).

The Markdown pages of docs/ are the site's pages (MyST), the README its front page, the API
reference is generated from the docstrings (autosummary + numpydoc), and the notebooks of
notebooks/ are executed at build time in quick mode (myst-nb) so the site shows their outputs.
"""
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "python"))

import monge  # noqa: E402  (the built extension must be importable: make docs installs it)

project = "monge"
author = "the monge developers"
copyright = "2026, the monge developers"
release = version = monge.__version__

extensions = [
    "myst_nb",                  # Markdown pages (MyST) and executed notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 served from _static: no network at build or read time
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "jupyter_execute", "benchmarks"]
templates_path = []

# MyST: $...$ and $$...$$ math, GitHub-style heading anchors for the pages' #links
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 4
myst_fence_as_directive = []

# notebooks: copied from notebooks/ and executed at build time with the quick settings the tests use
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_execution_show_tb = True
os.environ["MONGE_NOTEBOOK_QUICK"] = "1"
_nb_dir = HERE / "notebooks"
_nb_dir.mkdir(exist_ok=True)


def _newest_source():
    return max(p.stat().st_mtime for p in (ROOT / "python" / "monge").rglob("*.py"))


def _copy_notebooks():
    """notebooks/*.ipynb into docs/notebooks/; a copy executed by tests/test_notebooks.py is used
    (not run again) when it belongs to the same source notebook and is newer than the package."""
    import hashlib
    import json

    newest = _newest_source()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        done = ROOT / "build" / "executed-notebooks" / nb.name
        if done.exists() and done.stat().st_mtime > max(newest, nb.stat().st_mtime):
            data = json.loads(done.read_text(encoding="utf-8"))
            meta = data.setdefault("metadata", {})
            if meta.get("monge_source_sha256") == hashlib.sha256(nb.read_bytes()).hexdigest():
                meta["mystnb"] = {"execution_mode": "off"}
                (_nb_dir / nb.name).write_text(json.dumps(data), encoding="utf-8")
                continue
        shutil.copyfile(nb, _nb_dir / nb.name)


_copy_notebooks()

# the README and some pages link to results files under benchmarks/: serve them as downloads
_bench = HERE / "benchmarks"
if not _bench.exists():
    _bench.symlink_to(ROOT / "benchmarks", target_is_directory=True)

# API reference: one page per public object, numpydoc sections
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": True}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"monge {release}"
html_static_path = []
html_show_sourcelink = False
