"""Quadratic and k-sparse OT (monge.quadratic_ot, monge.sparse_ot): objectives and gradients against
POT's ot.smooth, the plan's sparsity, k = 1 against exact OT, k large against quadratic OT, the
ordering in k, finite differences, ties, errors and warnings."""
import contextlib
import io
import warnings

import numpy as np
import ot
import ot.smooth
import pytest

import monge
from monge import smooth


def problem(seed, n=30, m=25, uniform=False):
    rng = np.random.default_rng(seed)
    x, y = rng.random((n, 2)), rng.random((m, 2))
    C = ot.dist(x, y)
    if uniform:
        return np.full(n, 1 / n), np.full(m, 1 / m), C
    a = rng.random(n) + 0.5
    b = rng.random(m) + 0.5
    return a / a.sum(), b / b.sum(), C


def pot_regul(k, gamma):
    if k is None:
        return ot.smooth.SquaredL2(gamma=gamma)
    return ot.smooth.SparsityConstrained(max_nz=k, gamma=gamma)


def quiet(fn, *args, **kw):
    """POT's sparse projection prints a shape at every call."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kw)


@pytest.mark.parametrize("k", [None, 1, 2, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_objective_and_gradient_match_pot(k, seed):
    a, b, C = problem(seed)
    gamma = 0.02
    rng = np.random.default_rng(100 + seed)
    alpha = 0.3 * rng.random(a.size)
    beta = 0.3 * rng.random(b.size) - 0.25
    reg = pot_regul(k, gamma)
    v_pot, ga_pot, gb_pot = quiet(ot.smooth.dual_obj_grad, alpha, beta, a, b, C, reg)
    v, ga, gb = smooth.objective(a, b, C, gamma, alpha, beta, k=k, formulation="dual")
    assert abs(v - v_pot) <= 1e-9 * max(1, abs(v_pot))
    np.testing.assert_allclose(ga, ga_pot, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gb, gb_pot, rtol=0, atol=1e-9)
    v_pot, ga_pot = quiet(ot.smooth.semi_dual_obj_grad, alpha, a, b, C, reg)
    v, ga, gb = smooth.objective(a, b, C, gamma, alpha, k=k, formulation="semi_dual")
    assert gb is None
    assert abs(v - v_pot) <= 1e-9 * max(1, abs(v_pot))
    np.testing.assert_allclose(ga, ga_pot, rtol=0, atol=1e-9)
    # the plans read off the potentials agree too
    for form, P_pot in (("dual", ot.smooth.get_plan_from_dual(alpha, beta, C, reg)),
                        ("semi_dual", quiet(ot.smooth.get_plan_from_semi_dual, alpha, b, C, reg))):
        bb = beta if form == "dual" else None
        ip, ix, dt = monge._core.smooth_plan(C, a, b, alpha, bb, gamma, k=k or 0, formulation=form)
        P = smooth.SparsePlan(C.shape, ip, ix, dt).toarray()
        np.testing.assert_allclose(P, P_pot, rtol=0, atol=1e-12)


@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_quadratic_optimum_matches_pot(formulation):
    a, b, C = problem(3)
    gamma = 0.05
    res = monge.quadratic_ot(a, b, C, gamma, formulation=formulation, tol=1e-7)
    assert res.converged and res.error <= 1e-7
    solver = ot.smooth.smooth_ot_dual if formulation == "dual" else ot.smooth.smooth_ot_semi_dual
    P_pot, log = solver(a, b, C, gamma, reg_type="l2", log=True, numItermax=10000)
    args = (log["alpha"], log["beta"]) if formulation == "dual" else (log["alpha"],)
    v_pot = smooth.objective(a, b, C, gamma, *args, formulation=formulation)[0]
    assert abs(res.value - v_pot) <= 1e-6 * abs(v_pot)
    assert res.value >= v_pot - 1e-12  # maximised at least as far as POT
    # strong duality: the primal value of the recovered plan equals the dual value
    assert abs(res.primal - res.value) <= 1e-6 * res.value
    # POT stops on its relative decrease (1e-9): its plan is further from feasible than ours
    err_pot = np.abs(P_pot.sum(1) - a).sum() + np.abs(P_pot.sum(0) - b).sum()
    assert res.error <= err_pot


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_sparse_optimum_at_least_pot(k, formulation):
    """With the constraint active the optimum sits at a kink; monge gets at least POT's value."""
    a, b, C = problem(4)
    gamma = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        res = monge.sparse_ot(a, b, C, k, gamma, formulation=formulation, max_iter=3000)
    solver = ot.smooth.smooth_ot_dual if formulation == "dual" else ot.smooth.smooth_ot_semi_dual
    _, log = quiet(solver, a, b, C, gamma, reg_type="sparsity_constrained", max_nz=k, log=True,
                   numItermax=10000)
    args = (log["alpha"], log["beta"]) if formulation == "dual" else (log["alpha"],)
    v_pot = smooth.objective(a, b, C, gamma, *args, k=k, formulation=formulation)[0]
    assert res.value >= v_pot - 1e-6 * abs(v_pot)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_columns_have_at_most_k_nonzeros(seed, formulation):
    a, b, C = problem(seed, n=40, m=35)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        for k in (1, 2, 3, 7):
            gamma = float(10 ** rng.uniform(-3, 0))
            res = monge.sparse_ot(a, b, C, k, gamma, formulation=formulation, max_iter=200)
            assert res.plan.col_nnz().max() <= k
            assert (res.plan.data > 0).all()
            # and at arbitrary potentials, not only at the solution
            alpha = rng.normal(size=a.size)
            beta = rng.normal(size=b.size)
            ip, _, _ = monge._core.smooth_plan(C, a, b, alpha, beta, gamma, k=k,
                                              formulation=formulation)
            assert np.diff(ip).max() <= k


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_k1_is_exact_ot_plus_gamma_b2(seed, formulation):
    n = 25
    a, b, C = problem(seed, n=n, m=n, uniform=True)
    gamma = 0.1
    res = monge.sparse_ot(a, b, C, 1, gamma, formulation=formulation)
    emd = monge.emd(a, b, C).cost
    assert emd == pytest.approx(ot.emd2(a, b, C), rel=1e-12)
    exact = emd + 0.5 * gamma * np.dot(b, b)
    assert res.converged
    assert abs(res.value - exact) <= 1e-9
    # the plan is the optimal permutation, scaled by 1/n
    P = res.plan.toarray()
    assert res.plan.col_nnz().max() == 1 and res.error <= 1e-6
    np.testing.assert_allclose(np.sort(P.max(axis=0)), np.full(n, 1 / n), atol=1e-6)
    assert abs(np.sum(P * C) - emd) <= 1e-9


@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_k_large_is_quadratic_ot(formulation):
    a, b, C = problem(5)
    q = monge.quadratic_ot(a, b, C, 0.05, formulation=formulation)
    for k in (a.size, a.size + 1, 10**9, float("inf")):
        s = monge.sparse_ot(a, b, C, k, 0.05, formulation=formulation)
        assert s.k is None
        np.testing.assert_array_equal(s.alpha, q.alpha)
        np.testing.assert_array_equal(s.beta, q.beta)
        assert s.value == q.value and s.n_iter == q.n_iter
    # k = n - 1 is a real constraint: a different code path, the same answer when the quadratic
    # plan already has < n nonzeros per column
    assert q.plan.col_nnz().max() < a.size - 1
    s = monge.sparse_ot(a, b, C, a.size - 1, 0.05, formulation=formulation)
    assert abs(s.value - q.value) <= 1e-9 * q.value


def test_value_decreases_as_k_grows():
    a, b, C = problem(6, n=20, m=20, uniform=True)
    gamma = 0.2
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        for k in (1, 2, 3, 5, None):
            res = monge.sparse_ot(a, b, C, k or 20, gamma, max_iter=3000)
            values.append(res.value)
    assert all(v1 >= v2 - 1e-9 * v2 for v1, v2 in zip(values, values[1:])), values
    assert values[0] > values[-1] * (1 + 1e-3)  # the constraint matters on this problem
    # pointwise: fewer allowed nonzeros, larger semi-dual and dual objectives at any potentials
    rng = np.random.default_rng(0)
    for _ in range(5):
        alpha, beta = rng.normal(size=20), rng.normal(size=20)
        for form in ("semi_dual", "dual"):
            vals = [smooth.objective(a, b, C, gamma, alpha, beta, k=k, formulation=form)[0]
                    for k in (1, 2, 4, 8, None)]
            assert all(v1 >= v2 for v1, v2 in zip(vals, vals[1:])), (form, vals)


@pytest.mark.parametrize("k", [2, None])
@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_gradient_against_finite_differences(k, formulation):
    a, b, C = problem(7)
    gamma = 0.05
    rng = np.random.default_rng(7)
    alpha = 0.2 * rng.random(a.size)
    beta = 0.2 * rng.random(b.size) - 0.1
    bb = beta if formulation == "dual" else None
    v, ga, gb = smooth.objective(a, b, C, gamma, alpha, bb, k=k, formulation=formulation)
    h = 1e-7
    for i in range(a.size):
        e = np.zeros(a.size)
        e[i] = h
        vp = smooth.objective(a, b, C, gamma, alpha + e, bb, k=k, formulation=formulation)[0]
        vm = smooth.objective(a, b, C, gamma, alpha - e, bb, k=k, formulation=formulation)[0]
        assert abs((vp - vm) / (2 * h) - ga[i]) <= 1e-6
    if formulation == "dual":
        for j in range(b.size):
            e = np.zeros(b.size)
            e[j] = h
            vp = smooth.objective(a, b, C, gamma, alpha, beta + e, k=k, formulation="dual")[0]
            vm = smooth.objective(a, b, C, gamma, alpha, beta - e, k=k, formulation="dual")[0]
            assert abs((vp - vm) / (2 * h) - gb[j]) <= 1e-6


@pytest.mark.parametrize("formulation", ["semi_dual", "dual"])
def test_ties_are_reported_not_silent(formulation):
    """Integer costs: many k-th / (k+1)-th ties.  The solve ends, keeps <= k entries per column,
    and either converged or warns."""
    rng = np.random.default_rng(8)
    C = rng.integers(0, 3, size=(12, 10)).astype(float)
    for k in (1, 2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = monge.sparse_ot(None, None, C, k, 0.5, formulation=formulation, max_iter=300)
        assert res.plan.col_nnz().max() <= k
        assert np.isfinite(res.value) and np.isfinite(res.alpha).all()
        warned = any(issubclass(w.category, monge.ConvergenceWarning) for w in caught)
        assert res.converged != warned
    # all costs equal, k = 1, n = m: the optimum is gamma/2 |b|^2 (exact OT cost 0), attained by
    # the semi-dual at its start; every column picks row 0 (ties to the lower row), so the plan
    # misses the row marginals, and the solve says so
    n = 6
    with pytest.warns(monge.ConvergenceWarning, match="did not converge"):
        res_tie = monge.sparse_ot(None, None, np.zeros((n, n)), 1, 0.1, formulation=formulation)
    assert not res_tie.converged and res_tie.error_a > 1
    assert res_tie.plan.col_nnz().max() == 1
    if formulation == "semi_dual":
        assert abs(res_tie.value - 0.5 * 0.1 / n) <= 1e-12
    else:  # weak duality
        assert res_tie.value <= 0.5 * 0.1 / n + 1e-12


def test_ties_broken_by_lower_row():
    C = np.zeros((4, 3))
    ip, ix, dt = monge._core.smooth_plan(C, None, None, np.zeros(4), None, 1.0, k=2)
    np.testing.assert_array_equal(ix, [0, 1, 0, 1, 0, 1])


def test_threads_warm_start_and_marginals():
    # 520 x 510: above the size that runs on one thread whatever nthreads says
    A, B, CB = problem(9, n=520, m=510)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", monge.ConvergenceWarning)
        r1 = monge.sparse_ot(A, B, CB, 8, 0.1, nthreads=1, max_iter=20)
        r2 = monge.sparse_ot(A, B, CB, 8, 0.1, nthreads=2, max_iter=20)
    np.testing.assert_array_equal(r1.alpha, r2.alpha)
    np.testing.assert_array_equal(r1.plan.data, r2.plan.data)
    assert r1.value == r2.value and r1.n_iter == 20
    a, b, C = problem(9, n=60, m=50)
    q = monge.quadratic_ot(a, b, C, 0.1, formulation="dual")
    assert q.converged and q.error <= 1e-6
    w = monge.quadratic_ot(a, b, C, 0.1, formulation="dual", init=(q.alpha, q.beta))
    assert w.n_iter <= 1 and abs(w.value - q.value) <= 1e-12
    P = q.plan.toarray()
    assert abs(np.abs(P.sum(1) - a).sum() - q.error_a) <= 1e-12
    assert abs(np.abs(P.sum(0) - b).sum() - q.error_b) <= 1e-12
    np.testing.assert_allclose(q.plan.sum(1), P.sum(1), atol=1e-15)
    np.testing.assert_allclose(q.plan.sum(0), P.sum(0), atol=1e-15)
    np.testing.assert_array_equal(q.plan.tocsc().toarray(), P)
    assert abs(q.cost - np.sum(P * C)) <= 1e-12 and abs(q.reg - 0.05 * np.sum(P * P)) <= 1e-12
    # semi-dual: the columns sum to b exactly, and beta = -theta reproduces the plan
    s = monge.quadratic_ot(a, b, C, 0.1)
    assert s.error_b <= 1e-13
    np.testing.assert_allclose(np.maximum(s.alpha[:, None] + s.beta[None] - C, 0) / 0.1,
                               s.plan.toarray(), atol=1e-12)


def test_nonconvergence_warns_and_callback_stops():
    a, b, C = problem(10)
    with pytest.warns(monge.ConvergenceWarning, match="did not converge"):
        res = monge.quadratic_ot(a, b, C, 0.05, max_iter=2)
    assert not res.converged and res.n_iter == 2 and "iteration limit" in res.status
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = monge.sparse_ot(a, b, C, 3, 0.05, callback=lambda it, err: seen.append(err) or it >= 3)
    assert not res.converged and len(seen) == 4 and "interrupted" in res.status


ERRORS = [
    (dict(k=0), ValueError, "k: must be >= 1"),
    (dict(k=-2), ValueError, "k: must be >= 1"),
    (dict(k=2.5), TypeError, "k: expected a positive integer"),
    (dict(k=True), TypeError, "k: expected a positive integer"),
    (dict(k="3"), TypeError, "k: expected a positive integer"),
    (dict(gamma=0.0), ValueError, "gamma: must be a positive number"),
    (dict(gamma=float("nan")), ValueError, "gamma: must be a positive number"),
    (dict(gamma=float("inf")), ValueError, "gamma: must be a positive number"),
    (dict(formulation="primal"), ValueError, "formulation: unknown value"),
    (dict(C=np.full((5, 4), np.nan)), ValueError, "C: contains NaN"),
    (dict(C=np.ones(5)), ValueError, "C: expected 2 dimensions"),
    (dict(C=np.zeros((0, 4))), ValueError, "C: empty"),
    (dict(a=np.ones(4) / 4), ValueError, "a: expected shape (5,)"),
    (dict(b=-np.ones(4) / 4), ValueError, "b: weights must be non-negative"),
    (dict(a=np.ones(5)), ValueError, "a, b: total masses differ"),
    (dict(tol=-1.0), ValueError, "tol: must be a finite number >= 0"),
    (dict(max_iter=-1), ValueError, "max_iter: must be >= 0"),
    (dict(memory=0), ValueError, "memory: must be >= 1"),
    (dict(init=np.zeros(3)), ValueError, "init: alpha must have shape (5,)"),
    (dict(init=np.zeros(5), formulation="dual"), TypeError, "init: expected a pair"),
    (dict(callback=3), TypeError, "callback: must be callable"),
    (dict(nthreads=0), ValueError, "nthreads: must be >= 1"),
]


@pytest.mark.parametrize("over, exc, text", ERRORS, ids=[e[2] for e in ERRORS])
def test_bad_input_names_the_argument(over, exc, text):
    kw = dict(a=None, b=None, C=np.random.default_rng(0).random((5, 4)), k=2, gamma=0.1)
    kw.update(over)
    with pytest.raises(exc, match=text.replace("(", r"\(").replace(")", r"\)")):
        monge.sparse_ot(kw.pop("a"), kw.pop("b"), kw.pop("C"), kw.pop("k"), kw.pop("gamma"), **kw)


def test_sparse_ot_requires_k():
    with pytest.raises(ValueError, match="k: required"):
        monge.sparse_ot(None, None, np.ones((3, 3)), None, 0.1)
