"""monge.pot against POT itself: same results to the tolerance each solver reaches, same log
dictionaries (keys and types), on POT's documentation examples and random problems."""
import warnings

import numpy as np
import ot
import pytest

import monge.pot as mp


def _problem(seed, n=30, m=20):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) + 0.5, rng.random(m) + 0.5
    return a / a.sum(), b / b.sum(), rng.random((n, 2)), rng.random((m, 2)) + 0.2


def _same_log(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        assert type(ours[k]) is type(theirs[k]) or (isinstance(theirs[k], (float, np.floating))
                                                     and isinstance(ours[k], (float, np.floating))), k


def test_pot_documentation_examples():
    a, b, M = [0.5, 0.5], [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]]
    np.testing.assert_allclose(mp.emd(a, b, M), [[0.5, 0.0], [0.0, 0.5]])
    assert mp.emd2(a, b, M) == 0.0
    np.testing.assert_allclose(mp.sinkhorn(a, b, M, 1), ot.sinkhorn(a, b, M, 1), atol=1e-8)
    np.testing.assert_allclose(mp.sinkhorn(a, b, M, 1), [[0.36552929, 0.13447071],
                                                         [0.13447071, 0.36552929]], atol=1e-8)
    np.testing.assert_allclose(mp.unif(4), ot.unif(4))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine"])
def test_dist(metric):
    _, _, x, y = _problem(0)
    np.testing.assert_allclose(mp.dist(x, y, metric, p=3), ot.dist(x, y, metric, p=3), atol=1e-12)
    np.testing.assert_allclose(mp.dist(x, metric=metric), ot.dist(x, metric=metric), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_emd_and_emd2(seed):
    a, b, x, y = _problem(seed)
    M = ot.dist(x, y)
    G, lg = mp.emd(a, b, M, log=True)
    G2, lg2 = ot.emd(a, b, M, log=True)
    np.testing.assert_allclose(G, G2, atol=1e-12)
    _same_log(lg, lg2)
    assert lg["cost"] == pytest.approx(lg2["cost"], rel=1e-12)
    np.testing.assert_allclose(lg["u"], lg2["u"], atol=1e-10)       # centred duals
    np.testing.assert_allclose(lg["v"], lg2["v"], atol=1e-10)
    c, lg = mp.emd2(a, b, M, log=True, return_matrix=True)
    c2, lg2 = ot.emd2(a, b, M, log=True, return_matrix=True)
    assert c == pytest.approx(c2, rel=1e-12) and isinstance(c, float)
    _same_log(lg, lg2)
    B = np.stack([b, b[::-1]], 1)
    np.testing.assert_allclose(mp.emd2(a, B, M), ot.emd2(a, B, M), rtol=1e-12)
    np.testing.assert_allclose(mp.emd([], [], M[:20, :20]), ot.emd([], [], M[:20, :20]), atol=1e-12)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _, lg = mp.emd(a, b, M, numItermax=3, log=True)
    assert lg["result_code"] == 3 and lg["warning"].startswith("numItermax reached")
    assert any("numItermax reached" in str(x.message) for x in w)


@pytest.mark.parametrize("method", ["sinkhorn", "sinkhorn_log", "sinkhorn_stabilized",
                                    "sinkhorn_epsilon_scaling"])
def test_sinkhorn_methods(method):
    a, b, x, y = _problem(2)
    M = ot.dist(x, y)
    P, lg = mp.sinkhorn(a, b, M, 0.05, method=method, log=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P2, lg2 = ot.sinkhorn(a, b, M, 0.05, method=method, log=True, numItermax=10000)
    np.testing.assert_allclose(P, P2, atol=1e-8)
    _same_log(lg, lg2)
    # the reported error meets stopThr as POT measures it (L2 of the column violation)
    assert lg["err"][-1] <= 1e-9
    if method != "sinkhorn_epsilon_scaling":   # POT's sinkhorn2 does not take this method
        v = mp.sinkhorn2(a, b, M, 0.05, method=method)
        assert v == pytest.approx(float(ot.sinkhorn2(a, b, M, 0.05, method=method,
                                                     numItermax=10000)), rel=1e-7)
        assert v == pytest.approx(float(np.sum(P * M)), rel=1e-12)


def test_sinkhorn_warm_start_several_b_and_small_reg():
    a, b, x, y = _problem(3)
    M = ot.dist(x, y)
    P, lg = mp.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", log=True)
    P2, lg2 = mp.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", log=True,
                          warmstart=(lg["log_u"], lg["log_v"]))
    np.testing.assert_allclose(P2, P, atol=1e-9)
    assert lg2["niter"] <= 2
    B = np.stack([b, b[::-1]], 1)
    np.testing.assert_allclose(mp.sinkhorn2(a, B, M, 0.05), ot.sinkhorn2(a, B, M, 0.05), rtol=1e-6)
    # small reg: monge's log-domain engine converges where POT's default needs more iterations
    Ps = mp.sinkhorn(a, b, M, 1e-3)
    np.testing.assert_allclose(Ps.sum(1), a, atol=1e-9)
    np.testing.assert_allclose(Ps.sum(0), b, atol=1e-9)


def test_one_dimensional_and_sliced():
    a, b, x, y = _problem(4)
    for metric, p in (("sqeuclidean", 1), ("euclidean", 1), ("minkowski", 3)):
        np.testing.assert_allclose(mp.emd_1d(x[:, 0], y[:, 0], a, b, metric=metric, p=p),
                                   ot.emd_1d(x[:, 0], y[:, 0], a, b, metric=metric, p=p), atol=1e-12)
        assert mp.emd2_1d(x[:, 0], y[:, 0], a, b, metric=metric, p=p) == pytest.approx(
            ot.emd2_1d(x[:, 0], y[:, 0], a, b, metric=metric, p=p), rel=1e-12)
    assert mp.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=2) == pytest.approx(
        ot.wasserstein_1d(x[:, 0], y[:, 0], a, b, p=2), rel=1e-12)
    np.testing.assert_allclose(mp.wasserstein_1d(x[:, :2], y[:, :2], p=1),
                               ot.wasserstein_1d(x[:, :2], y[:, :2], p=1), rtol=1e-12)
    s, lg = mp.sliced_wasserstein_distance(x, y, a, b, n_projections=20, seed=5, log=True)
    s2, lg2 = ot.sliced_wasserstein_distance(x, y, a, b, n_projections=20, seed=5, log=True)
    assert s == pytest.approx(float(s2), rel=1e-12)
    np.testing.assert_allclose(lg["projections"], lg2["projections"])
    np.testing.assert_allclose(lg["projected_emds"], lg2["projected_emds"], rtol=1e-12)


def test_what_differs_bad_input_and_uncovered_names():
    a, b, x, y = _problem(5)
    M = ot.dist(x, y)
    M[0, 0] = np.nan
    with pytest.raises(ValueError, match="M: contains NaN"):
        mp.emd(a, b, M)
    with pytest.raises(ValueError, match="M: contains NaN"):
        mp.sinkhorn(a, b, M, 0.1)
    with pytest.raises(ValueError, match="total masses differ"):
        mp.emd(a, 2 * b, ot.dist(x, y))
    with pytest.raises(ValueError, match="method: 'greenkhorn' is not covered"):
        mp.sinkhorn(a, b, ot.dist(x, y), 0.1, method="greenkhorn")
    with pytest.raises(AttributeError, match="emd_sinkhorn: not covered .* use POT itself"):
        mp.emd_sinkhorn  # noqa: B018
    with pytest.raises(AttributeError, match="da: not covered .* monge.maps.EntropicMap"):
        mp.da  # noqa: B018


def test_unbalanced_divergence_and_smooth():
    a, b, x, y = _problem(6)
    M = ot.dist(x, y)
    kw = dict(stopThr=1e-12, numItermax=10000)
    P, lg = mp.sinkhorn_unbalanced(a, b, M, 0.05, 1.0, log=True, **kw)
    P2, lg2 = ot.sinkhorn_unbalanced(a, b, M, 0.05, 1.0, log=True, **kw)
    np.testing.assert_allclose(P, P2, atol=1e-12)
    _same_log(lg, lg2)
    assert mp.sinkhorn_unbalanced2(a, b, M, 0.05, 1.0, **kw) == pytest.approx(
        float(ot.sinkhorn_unbalanced2(a, b, M, 0.05, 1.0, **kw)), rel=1e-10)
    # 'total': the primal objective with generalised KL terms, which at the optimum equals the
    # dual objective monge's solver reports (POT 0.9.7's log['total_cost'] is not this quantity)
    import monge

    tot = mp.sinkhorn_unbalanced2(a, b, M, 0.05, 1.0, returnCost="total", **kw)
    assert tot == pytest.approx(monge.sinkhorn(a=a, b=b, C=M, eps=0.05, tau=1.0, tol=1e-12).value,
                                rel=1e-8)
    d = mp.bregman.empirical_sinkhorn_divergence(x, y, 0.05)
    assert d == pytest.approx(float(ot.bregman.empirical_sinkhorn_divergence(x, y, 0.05)), rel=1e-7)
    for form in ("dual", "semi_dual"):
        ours = getattr(mp.smooth, f"smooth_ot_{form}")(a, b, M, 0.5, log=True)
        theirs = getattr(ot.smooth, f"smooth_ot_{form}")(a, b, M, 0.5, log=True)
        np.testing.assert_allclose(ours[0], theirs[0], atol=1e-4)      # POT's L-BFGS-B stop
        assert sorted(ours[1]) == sorted(theirs[1])
    G = mp.smooth.smooth_ot_semi_dual(a, b, M, 0.5, reg_type="sparsity_constrained", max_nz=2)
    assert ((G > 0).sum(0) <= 2).all()
    with pytest.raises(AttributeError, match="smooth.smooth_ot_dual_plan: not covered"):
        mp.smooth.smooth_ot_dual_plan  # noqa: B018


def test_log_values_warm_starts_and_several_histograms():
    """Values (not only keys) of the logs POT users read back, warm starts in each method's own
    convention, and the structures POT returns for several b with log=True."""
    a, b, x, y = _problem(7)
    M = ot.dist(x, y)
    kw = dict(stopThr=1e-12, numItermax=10000)
    _, lg = mp.sinkhorn_unbalanced(a, b, M, 0.05, 1.0, log=True, **kw)
    _, lg2 = ot.sinkhorn_unbalanced(a, b, M, 0.05, 1.0, log=True, **kw)
    for k in ("logu", "logv"):       # up to the gauge (c, -c) of the potentials
        d = lg[k] - lg2[k]
        np.testing.assert_allclose(d - d.mean(), 0.0, atol=1e-8)
    _, ls = mp.sinkhorn(a, b, M, 0.01, method="sinkhorn_log", log=True)
    _, ls2 = ot.sinkhorn(a, b, M, 0.01, method="sinkhorn_log", log=True, numItermax=10000)
    for k in ("log_u", "log_v"):
        d = ls[k] - ls2[k]
        np.testing.assert_allclose(d - d.mean(), 0.0, atol=1e-6)
    for method in ("sinkhorn_stabilized", "sinkhorn_epsilon_scaling"):
        P, lw = mp.sinkhorn(a, b, M, 0.01, method=method, log=True)
        P1, l1 = mp.sinkhorn(a, b, M, 0.01, method=method, log=True, numItermax=2,
                             warmstart=lw["warmstart"], warn=False)
        np.testing.assert_allclose(P1, P, atol=1e-9)
        P2 = ot.sinkhorn(a, b, M, 0.01, method=method, numItermax=2, warmstart=lw["warmstart"])
        np.testing.assert_allclose(P2, P, atol=1e-6)     # POT reads our warm start the same way
    B = np.stack([b, b[::-1]], 1)
    ours, theirs = mp.emd2(a, B, M, log=True), ot.emd2(a, B, M, log=True)
    assert len(ours) == len(theirs) == 2 and all(len(o) == 2 for o in ours)
    assert ours[1][0] == pytest.approx(theirs[1][0], rel=1e-12)
    v, lg = mp.sinkhorn2(a, B, M, 0.05, log=True)
    v2, lg2 = ot.sinkhorn2(a, B, M, 0.05, log=True)
    assert isinstance(lg, dict) and sorted(lg) == sorted(lg2) and lg["u"].shape == lg2["u"].shape
    np.testing.assert_allclose(v, v2, rtol=1e-6)
    d, ld = mp.bregman.empirical_sinkhorn_divergence(x, y, 0.05, log=True)
    d2, ld2 = ot.bregman.empirical_sinkhorn_divergence(x, y, 0.05, log=True)
    assert set(ld2) <= set(ld)
    assert ld["sinkhorn_loss_ab"] == pytest.approx(float(ld2["sinkhorn_loss_ab"]), rel=1e-7)


def test_gromov_and_free_support_barycenter_match_pot():
    rng = np.random.default_rng(60)
    x, y = rng.random((15, 2)), rng.random((12, 3))
    C1, C2, M = ot.dist(x, x), ot.dist(y, y), ot.dist(x, y[:, :2])
    p, q = ot.unif(15), rng.dirichlet(np.ones(12))
    np.testing.assert_allclose(mp.gromov.gromov_wasserstein(C1, C2, p, q),
                               ot.gromov.gromov_wasserstein(C1, C2, p, q), atol=1e-10)
    for name in ("gromov_wasserstein2", "fused_gromov_wasserstein2"):
        args = (C1, C2, p, q) if name.startswith("gromov") else (M, C1, C2, p, q)
        va, la = getattr(mp.gromov, name)(*args, log=True)
        vb, lb = getattr(ot.gromov, name)(*args, log=True)
        assert va == pytest.approx(vb, rel=1e-10)
        assert sorted(la) == sorted(lb)
        assert {k: type(v) for k, v in la.items()} == {k: type(v) for k, v in lb.items()}
        np.testing.assert_allclose(la["T"], lb["T"], atol=1e-10)
    _, la = mp.gromov.fused_gromov_wasserstein2(M, C1, C2, p, q, log=True)
    _, lb = ot.gromov.fused_gromov_wasserstein2(M, C1, C2, p, q, log=True)
    assert la["quad_loss"] == pytest.approx(lb["quad_loss"]) and \
        la["lin_loss"] == pytest.approx(lb["lin_loss"])
    A, B = C1 / C1.max(), C2 / C2.max()
    Ta = mp.gromov.entropic_gromov_wasserstein(A, B, p, q, epsilon=0.05, tol=1e-12, stopThr=1e-12)
    Tb = ot.gromov.entropic_gromov_wasserstein(A, B, p, q, epsilon=0.05, tol=1e-13, max_iter=5000,
                                               numItermax=100000, stopThr=1e-13)
    np.testing.assert_allclose(Ta, Tb, atol=1e-10)
    Y = [rng.random((20, 2)), rng.random((25, 2)) + 1]
    b = [ot.unif(20), rng.dirichlet(np.ones(25))]
    X0 = rng.random((10, 2))
    np.testing.assert_allclose(mp.lp.free_support_barycenter(Y, b, X0),
                               ot.lp.free_support_barycenter(Y, b, X0), atol=1e-10)
    with pytest.raises(ValueError, match="armijo: not covered"):
        mp.gromov.gromov_wasserstein(C1, C2, armijo=True)
    with pytest.raises(ValueError, match="solver: 'PPA' is not covered"):
        mp.gromov.entropic_gromov_wasserstein(C1, C2, solver="PPA")
    with pytest.raises(AttributeError,
                       match="gromov.entropic_semirelaxed_gromov_wasserstein: not covered"):
        mp.gromov.entropic_semirelaxed_gromov_wasserstein  # noqa: B018


@pytest.mark.parametrize("name", ["semirelaxed_gromov_wasserstein",
                                  "semirelaxed_gromov_wasserstein2",
                                  "semirelaxed_fused_gromov_wasserstein",
                                  "semirelaxed_fused_gromov_wasserstein2"])
def test_semirelaxed_gromov_matches_pot(name):
    rng = np.random.default_rng(3)
    x, y = rng.random((25, 2)), rng.random((15, 3))
    C1, C2 = ot.dist(x, x), ot.dist(y, y)
    M = ot.dist(x[:, :1], y[:, :1])
    p = rng.dirichlet(np.ones(25))
    args = (C1, C2, p) if "fused" not in name else (M, C1, C2, p)
    va, la = getattr(mp.gromov, name)(*args, log=True)
    vb, lb = getattr(ot.gromov, name)(*args, log=True)
    np.testing.assert_allclose(va, vb, atol=1e-12)
    key = "srfgw_dist" if "fused" in name else "srgw_dist"
    assert la[key] == pytest.approx(lb[key], rel=1e-10)
