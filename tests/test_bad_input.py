"""Every row of the bad-input catalogue raises the documented error, and docs/errors.md is the
catalogue's current rendering."""
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from bad_input_catalogue import CATALOGUE, render  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _row(r):
    # rows of the experiments (RDKit, torch) and of torch tensors need optional packages
    optional = r[0].startswith("experiments.") or "torch" in r[1]
    return pytest.param(*r, marks=pytest.mark.optional if optional else (), id=f"{r[0]}: {r[1]}")


@pytest.mark.parametrize("fn,cls,call,exc,pattern", [_row(r) for r in CATALOGUE])
def test_bad_input_gets_a_clear_error(fn, cls, call, exc, pattern):
    # "{path}": the file a loader row wrote for the call (a temporary path)
    with pytest.raises(exc, match="^" + re.escape(pattern).replace(re.escape("{path}"), r"/\S+")):
        call()


def test_docs_errors_md_is_up_to_date():
    with open(os.path.join(ROOT, "docs", "errors.md")) as fh:
        assert fh.read() == render(), "run: python tests/bad_input_catalogue.py > docs/errors.md"
