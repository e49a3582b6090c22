"""The Examples sections of the public functions' and classes' docstrings run as doctests.

Each module must keep at least the number of examples it has (so a docstring that loses its
Examples fails here); modules whose examples need PyTorch or Dask are marked optional."""
import doctest
import importlib
import sys

import pytest

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MODULES = {"monge": 8, "monge._policy": 4, "monge.sinkhorn": 11, "monge.losses": 17,
           "monge.geometry": 2, "monge.emd": 26, "monge.ctc": 7, "monge.smooth": 16,
           "monge.align": 8, "monge.barycenter": 20, "monge.gromov": 9, "monge.pot": 38, "monge.routing": 23, "monge.spectr": 32,
           "monge.maps.nn": 54, "monge.maps.datasets": 46, "monge.maps.baselines": 17,
           "monge.maps.metrics": 18}
OPTIONAL = {"monge.torch": 37, "monge.speech": 10, "monge.distributed": 7,
            "monge.maps.estimator": 11}     # fit_torch_map's example needs PyTorch
CASES = [pytest.param(n, k, id=n) for n, k in sorted(MODULES.items())] + \
        [pytest.param(n, k, id=n, marks=pytest.mark.optional) for n, k in sorted(OPTIONAL.items())]


@pytest.mark.parametrize("name, expected", CASES)
def test_docstring_examples(name, expected):
    importlib.import_module(name)
    mod = sys.modules[name]          # monge.sinkhorn the attribute is the function
    r = doctest.testmod(mod, optionflags=FLAGS, report=True)
    assert r.failed == 0
    assert r.attempted >= expected, f"{name}: {r.attempted} examples, expected {expected}"


def test_pot_smooth_examples():
    # built by a factory inside monge.pot, so doctest.testmod does not find them
    import monge.pot as ot

    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=FLAGS)
    for fn in (ot.smooth.smooth_ot_dual, ot.smooth.smooth_ot_semi_dual):
        for test in finder.find(fn, globs={}):
            runner.run(test)
    r = runner.summarize(verbose=False)
    assert r.failed == 0 and r.attempted >= 6
