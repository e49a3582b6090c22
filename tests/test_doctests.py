"""The Examples sections of the public functions' docstrings run as doctests."""
import doctest
import importlib
import sys

import pytest

MODULES = {"monge": 6, "monge.sinkhorn": 5, "monge.losses": 9, "monge.geometry": 2, "monge.emd": 15,
           "monge.ctc": 3, "monge.smooth": 9, "monge.align": 4}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_docstring_examples(name):
    importlib.import_module(name)
    mod = sys.modules[name]          # monge.sinkhorn the attribute is the function
    r = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                        report=True)
    assert r.failed == 0
    assert r.attempted >= MODULES[name], f"{name}: {r.attempted} examples, expected {MODULES[name]}"
