"""Every invalid input gets a ValueError/TypeError whose message names the argument."""
import math

import numpy as np
import pytest

import monge

rng = np.random.default_rng(0)
X = rng.random((20, 2))
Y = rng.random((15, 2))
C = rng.random((20, 15))


def call(**over):
    kw = dict(x=X, y=Y, eps=0.1)
    kw.update(over)
    return monge.sinkhorn(**kw)


CASES = [
    # (overrides, exception, text the message must contain)
    (dict(x=X[:, 0]), ValueError, "x: a point cloud is 2-D (n, d), got a 1-D array of 20 values; "
                                  "for points on a line pass x.reshape(-1, 1)"),
    (dict(x=X[None, None]), ValueError, "x: expected 2 or 3 dimensions"),
    (dict(eps=None), TypeError, "eps: required"),
    (dict(y=rng.random((15, 3))), ValueError, "x, y: dimensions differ"),
    (dict(y=rng.random((2, 15, 2))), ValueError, "x, y: both 2-D"),
    (dict(x=np.zeros((0, 2))), ValueError, "x: empty"),
    (dict(y=np.zeros((15, 0))), ValueError, "y: empty"),
    (dict(x=np.where(np.arange(40).reshape(20, 2) == 7, np.nan, X)), ValueError, "x: contains NaN"),
    (dict(y=np.full((15, 2), np.inf)), ValueError, "y: contains NaN or infinity"),
    (dict(x=X.astype(complex)), TypeError, "x: expected a real numeric array"),
    (dict(x=np.array([["a", "b"]] * 20)), TypeError, "x: expected a real numeric array"),
    (dict(x=np.empty((20, 2), dtype=object)), TypeError, "x: expected a real numeric array"),
    (dict(a=np.ones(19) / 19), ValueError, "a: expected shape (20,)"),
    (dict(b=np.ones((2, 15))), ValueError, "b: expected shape (15,)"),
    (dict(a=-np.ones(20) / 20), ValueError, "a: weights must be non-negative"),
    (dict(a=np.zeros(20)), ValueError, "a: total mass must be positive"),
    (dict(b=np.full(15, np.nan)), ValueError, "b: contains NaN"),
    (dict(a=np.ones(20) / 10), ValueError, "a, b: total masses differ"),
    (dict(eps=0.0), ValueError, "eps: must be a positive number"),
    (dict(eps=-1.0), ValueError, "eps: must be a positive number"),
    (dict(eps=math.nan), ValueError, "eps: must be a positive number"),
    (dict(eps=math.inf), ValueError, "eps: must be a positive number"),
    (dict(eps="0.1"), TypeError, "eps: expected a real number"),
    (dict(eps=True), TypeError, "eps: expected a real number"),
    (dict(cost="manhattan"), ValueError, "cost: unknown value 'manhattan'"),
    (dict(cost="pnorm", p=0.5), ValueError, "p: the pnorm exponent must be"),
    (dict(cost="cosine", x=np.vstack([np.zeros((1, 2)), X[1:]])), ValueError, "x: the cosine cost is undefined"),
    (dict(tau=0.0), ValueError, "tau: must be a positive number or inf"),
    (dict(tau_a=-2.0), ValueError, "tau_a: must be a positive number"),
    (dict(tau=1.0, tau_a=1.0), ValueError, "tau: give tau, or tau_a and tau_b"),
    (dict(tol=-1e-3), ValueError, "tol: must be a finite number >= 0"),
    (dict(max_iter=-1), ValueError, "max_iter: must be >= 0"),
    (dict(max_iter=10.5), TypeError, "max_iter: expected an integer"),
    (dict(eps_scaling="yes"), TypeError, "eps_scaling: expected True, False or 'auto'"),
    (dict(eps_scaling=True, scaling_factor=1.5), ValueError, "scaling_factor: must be in (0, 1)"),
    (dict(overrelax=2.5), ValueError, "overrelax: must be in (0, 2)"),
    (dict(overrelax="fast"), ValueError, "overrelax: expected 'auto'"),
    (dict(init=(np.zeros(20),)), TypeError, "init: expected a pair"),
    (dict(init=(np.zeros(21), np.zeros(15))), ValueError, "init: potentials must have shapes"),
    (dict(init=(np.full(20, np.nan), np.zeros(15))), ValueError, "init f: contains NaN"),
    (dict(callback=3), TypeError, "callback: must be callable"),
    (dict(nthreads=0), ValueError, "nthreads: must be >= 1"),
    (dict(C=C), ValueError, "C: give either a cost matrix C or point clouds"),
    (dict(x=None), ValueError, "x, y: give both point clouds"),
]


@pytest.mark.parametrize("over,exc,text", CASES, ids=[c[2][:40] for c in CASES])
def test_bad_input(over, exc, text):
    with pytest.raises(exc) as info:
        call(**over)
    assert text in str(info.value)


@pytest.mark.parametrize("Cbad,text", [
    (np.ones(5), "C: expected 2 or 3 dimensions"),
    (np.full((3, 3), np.nan), "C: contains NaN"),
    (np.ones((0, 3)), "C: empty"),
])
def test_bad_cost_matrix(Cbad, text):
    with pytest.raises(ValueError, match=text.replace("(", r"\(")):
        monge.sinkhorn(C=Cbad, eps=0.1)


def test_eps_is_required():
    with pytest.raises(TypeError, match="eps"):
        monge.sinkhorn(X, Y)


@pytest.mark.optional
def test_torch_tensor_is_redirected():
    import torch  # part of the test extra: a missing install must fail, not skip
    with pytest.raises(TypeError, match="x: got a torch tensor"):
        monge.sinkhorn(torch.zeros(3, 2), Y, eps=0.1)


def test_result_methods_validate():
    r = monge.sinkhorn(X, Y, eps=0.1)
    with pytest.raises(ValueError, match=r"v: expected shape \(15,\)"):
        r.apply(np.ones(20))
    with pytest.raises(ValueError, match="v: contains NaN"):
        r.apply(np.full(15, np.nan))
    rb = monge.sinkhorn(X[None].repeat(2, 0), Y[None].repeat(2, 0), eps=0.1)
    with pytest.raises(ValueError, match="index: required"):
        rb.plan()
    with pytest.raises(ValueError, match="index: 2 out of range"):
        rb.plan(2)


def test_thread_setting_validates():
    with pytest.raises(ValueError, match="n: number of threads"):
        monge.set_num_threads(0)
    with pytest.raises(TypeError, match="n: expected an integer"):
        monge.set_num_threads(1.5)


def test_cost_matrix_validates():
    with pytest.raises(ValueError, match="x, y: dimensions differ"):
        monge.cost_matrix(X, rng.random((4, 3)))
    with pytest.raises(ValueError, match="cost: unknown value"):
        monge.cost_matrix(X, Y, cost="hamming")


def test_private_core_survives_garbage():
    """The binding re-checks what the Python layer validates: no crash on direct misuse."""
    from monge import _core

    with pytest.raises(ValueError):
        _core.sinkhorn(None, None, None, None, None, eps=0.1)
    with pytest.raises(ValueError):
        _core.sinkhorn(None, X[None], Y[None, :, :1], None, None, eps=0.1)
    with pytest.raises(ValueError):
        _core.sinkhorn(None, X[None], Y[None], np.ones((1, 3)), None, eps=0.1)
    with pytest.raises(ValueError, match="invalid argument"):
        _core.sinkhorn(None, X[None], Y[None], None, None, eps=-1.0)
    with pytest.raises(ValueError, match="invalid argument"):
        _core.sinkhorn(None, X[None], Y[None], -np.ones((1, 20)), None, eps=0.1)


def test_errors_that_teach_the_argument_order():
    """POT's sinkhorn(a, b, M, reg) and emd(x, y) with two clouds get the call to write instead."""
    a, b = np.full(20, 1 / 20), np.full(15, 1 / 15)
    with pytest.raises(TypeError, match=r"POT's argument order.*monge.sinkhorn\(a=a, b=b, C=M, eps=reg\)"):
        monge.sinkhorn(a, b, C, 0.1)
    r = monge.sinkhorn(a=a, b=b, C=C, eps=0.1)        # the call the message suggests
    assert r.converged
    with pytest.raises(ValueError, match=r"a, b: these look like point clouds.*monge.emd\(x=x, y=y\)"):
        monge.emd(X, Y)
    assert monge.emd(x=X, y=Y).converged
    with pytest.raises(ValueError, match=r"y: a point cloud is 2-D.*y.reshape\(-1, 1\)"):
        monge.sinkhorn_divergence(X, Y[:, 0], eps=0.1)


def test_finite_points_whose_costs_overflow_name_the_argument_and_the_fix():
    """Points of magnitude 1e300 are finite but their costs are not: a ValueError naming the
    argument and saying to rescale, from every entry point that builds costs (was a
    FloatingPointError from inside the solvers, and cost_matrix returned inf)."""
    big = X * 1e300
    calls = [
        (lambda: monge.sinkhorn(big, Y, eps=0.1), "x"),
        (lambda: monge.sinkhorn(X, Y * 1e300, eps=0.1), "y"),
        (lambda: monge.sinkhorn_divergence(big, Y, eps=0.1), "x"),
        (lambda: monge.emd(x=big, y=Y), "x"),
        (lambda: monge.monge_gap(X, big), "tx"),
        (lambda: monge.sliced_wasserstein(big, Y), "x"),
        (lambda: monge.cost_matrix(big, Y), "x"),
        (lambda: monge.sinkhorn((X * 1e20).astype(np.float32), Y.astype(np.float32), eps=0.1), "x"),
    ]
    for f, name in calls:
        with pytest.raises(ValueError, match=rf"^{name}: coordinates up to .* overflow .* rescale"):
            f()
    # the same clouds rescaled are fine, and large-but-safe magnitudes still pass
    assert monge.emd(x=big / 1e300, y=Y).converged
    assert np.isfinite(monge.cost_matrix(X * 1e150, Y)).all()


def test_overflow_check_has_no_false_positive_on_image_scale_data():
    """8-bit image values in float32, d = 784, pnorm p = 10: costs up to ~1e30 fit in float32."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 784)).astype(np.float32)
    y = rng.integers(0, 256, (4, 784)).astype(np.float32)
    C = monge.cost_matrix(x, y, cost="pnorm", p=10)
    assert np.isfinite(C).all()
    assert np.isfinite(monge.sliced_wasserstein(x, y, p=2, seed=0))
