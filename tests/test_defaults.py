"""One source of defaults: the Sinkhorn options' defaults are C's (monge_sinkhorn_params_init and
the thresholds of csrc/sinkhorn.h, exposed as _core.sinkhorn_defaults()); Python signatures leave
them to C (None) and docstrings quote them."""
import importlib
import inspect
import re

import pytest

import monge
from monge import _core
sk = importlib.import_module("monge.sinkhorn")  # the module (monge.sinkhorn is the function)
losses = importlib.import_module("monge.losses")

D = _core.sinkhorn_defaults()


def _flat(doc):
    return " ".join(doc.split())


def _quoted(doc, pattern):
    m = re.search(pattern, _flat(doc))
    assert m, f"docstring no longer quotes: {pattern}"
    return [float(g) for g in m.groups()]


def test_defaults_dict_has_the_options():
    for key in ("eps", "tol", "tol_float32", "max_iter", "eps_scaling", "eps_start",
                "scaling_factor", "stage_tol", "overrelax", "kernel", "anderson", "anderson_max",
                "auto_anneal", "kernel_min", "kernel_online_max", "anderson_stall"):
        assert key in D, key
    assert D["eps_scaling"] in ("off", "on", "auto")
    assert D["kernel"] in ("off", "auto", "always")
    assert D["overrelax"] == "auto" or 0 < D["overrelax"] < 2


def test_sinkhorn_docstring_quotes_the_c_defaults():
    doc = monge.sinkhorn.__doc__
    assert _quoted(doc, r"Default ([0-9.e+-]+) \(float64\) or ([0-9.e+-]+) \(float32\)") == [
        D["tol"], D["tol_float32"]]
    assert _quoted(doc, r"max_iter : int, optional Iterations over all epsilon stages\. "
                        r"Default ([0-9]+)\.") == [D["max_iter"]]
    assert _quoted(doc, r"`scaling_factor` \(default ([0-9.e+-]+)\)") == [D["scaling_factor"]]
    assert _quoted(doc, r"`stage_tol` \(default ([0-9.e+-]+)\)") == [D["stage_tol"]]
    # the automatic annealing threshold (it once read 0.01 here while C used 1e-4)
    assert _quoted(doc, r"eps < ([0-9.e+-]+) x max cost and no `init`") == [D["auto_anneal"]]
    assert f"the C library's default is {D['eps_scaling']})" in _flat(doc)
    assert _quoted(doc, r"\(([0-9]+) iterations without a 10% better error\)") == [
        D["anderson_stall"]]
    assert _quoted(doc, r"0 turns it off, at most ([0-9]+)\)") == [D["anderson_max"]]
    assert _quoted(doc, r"Default: ([0-9]+) with overrelax='auto', else 0") == [D["anderson"]]
    (log2,) = _quoted(doc, r"online problems with n \* m <= 2\*\*([0-9]+)")
    assert 2 ** int(log2) == D["kernel_online_max"]
    assert _quoted(doc, r"not below n \* m = ([0-9]+)") == [D["kernel_min"]]


def test_multiscale_options_docstring_quotes_the_c_defaults():
    from monge.multiscale import MultiscaleOptions
    doc = MultiscaleOptions.__doc__
    assert "(default: the solver's `anderson`, as on the other levels;" in _flat(doc)
    assert D["ms_refine_anderson"] == -1
    assert _quoted(doc, r"limit at any error, as on the other levels; default ([0-9]+),") == [D["ms_refine_stall"]]


def test_solver_options_docstring_quotes_the_threshold():
    doc = _flat(sk.solver_options.__doc__)
    assert "DEFAULTS['auto_anneal']" in doc and "0.01" not in doc


@pytest.mark.parametrize("fn", [monge.sinkhorn, losses.sinkhorn_divergence, losses.monge_gap])
def test_signatures_leave_numeric_defaults_to_c(fn):
    params = inspect.signature(fn).parameters
    for name in ("tol", "max_iter", "scaling_factor", "stage_tol", "anderson"):
        assert params[name].default is None, (fn.__name__, name)
    # enumerated options are names, never numbers
    for name in ("eps_scaling", "overrelax"):
        assert isinstance(params[name].default, str), (fn.__name__, name)


def test_binding_takes_names_not_integers():
    import numpy as np
    x = np.random.default_rng(0).random((1, 8, 2))
    with pytest.raises(ValueError, match="eps_scaling"):
        _core.sinkhorn(None, x, x, None, None, eps=0.1, eps_scaling=2)
    with pytest.raises(ValueError, match="kernel"):
        _core.sinkhorn(None, x, x, None, None, eps=0.1, kernel="sometimes")
    out = _core.sinkhorn(None, x, x, None, None, eps=0.1)  # every option at its C default
    assert bool(out["converged"][0])
