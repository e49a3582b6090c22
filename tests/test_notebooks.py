"""Every notebook in notebooks/ runs to the end (minutes-scale settings: MONGE_NOTEBOOK_QUICK=1).

The executed notebooks are kept in build/executed-notebooks/ with the sha256 of their source: the
documentation build (docs/conf.py) shows those outputs instead of running the notebooks again when
they are newer than the notebook and the package."""
import hashlib
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXECUTED = ROOT / "build" / "executed-notebooks"


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MONGE_NOTEBOOK_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [f"{o['ename']}: {o['evalue']}\n" + "\n".join(o.get("traceback", []))[-2000:]
              for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert any(o.get("output_type") == "display_data" for o in outputs)  # the plots were drawn
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nb.metadata["monge_source_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    nbformat.write(nb, EXECUTED / path.name)
