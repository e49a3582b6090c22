"""SpecTr draft selection (monge.spectr): exactness of K-SEQ, its rho* and residual, the k = 1 case,
the exact optimal acceptance, K-SEQ's approximation ratio, bad inputs, thread independence."""
import itertools

import numpy as np
import pytest
from scipy import stats

import monge
from monge import spectr

rng0 = np.random.default_rng(2023)


def dirichlet(rng, V, alpha, zeros=0):
    """A random distribution over V tokens with `zeros` tokens of probability exactly 0."""
    w = rng.dirichlet(np.full(V, alpha))
    if zeros:
        w[rng.choice(V, zeros, replace=False)] = 0
        w /= w.sum()
    return w


def h(p, q, k, rho):
    b = spectr.beta(p, q, rho)
    return 1 - (1 - b) ** k - rho * b


# (name, p, q, k): sharp and flat pairs, zeros on either side, disjoint supports, p = q
CASES = [
    ("sharp-k1", np.array([.5, .3, .2]), np.array([.2, .3, .5]), 1),
    ("sharp-k3", np.array([.5, .3, .2]), np.array([.2, .3, .5]), 3),
    ("zeros-k2", np.array([.6, .4, 0, 0, 0]), np.array([.1, .2, .3, .2, .2]), 2),
    ("qzeros-k4", np.array([.1, .2, .3, .2, .2]), np.array([0, 0, .5, .5, 0]), 4),
    ("disjoint-k3", np.array([.5, .5, 0, 0]), np.array([0, 0, .3, .7]), 3),
    ("equal-k2", np.full(6, 1 / 6), np.full(6, 1 / 6), 2),
    ("random8-k8", dirichlet(rng0, 8, 0.5), dirichlet(rng0, 8, 0.5), 8),
    ("random12-k5", dirichlet(rng0, 12, 1.0, zeros=3), dirichlet(rng0, 12, 0.3), 5),
]


@pytest.mark.parametrize("name,p,q,k", CASES, ids=[c[0] for c in CASES])
def test_output_distribution_is_exactly_q_analytically(name, p, q, k):
    """The law of K-SEQ's output, written from its two branches, is q to rounding:
    P(Y = x) = c(rho) min(p, q/rho)(x) + (1 - beta)^k p_res(x)."""
    rho = spectr.kseq_rho(p, q, k)
    b = spectr.beta(p, q, rho)
    c = sum((1 - b) ** i for i in range(k))
    res = spectr.residual_distribution(p, q, k)
    law = c * np.minimum(p, q / rho) + (1 - b) ** k * res
    np.testing.assert_allclose(law, q, atol=1e-12)


@pytest.mark.parametrize("name,p,q,k", CASES, ids=[c[0] for c in CASES])
def test_output_distribution_chi_square(name, p, q, k):
    """Monte Carlo with the C sampler (drafts drawn from p inside the kernel): the selected tokens
    pass a chi-square goodness-of-fit test against q and never land where q = 0; the acceptance
    rate matches 1 - (1 - beta(rho*))^k.  Fixed seeds: the p-values are deterministic."""
    n = 200_000
    sel = spectr.kseq_sample(p, q, k, size=n, seed=17)
    counts = np.bincount(sel.token, minlength=len(q))
    assert counts[q == 0].sum() == 0
    pos = q > 0
    if pos.sum() > 1:
        pval = stats.chisquare(counts[pos], n * q[pos]).pvalue
        assert pval > 1e-3, (name, pval, counts / n, q)
    acc = spectr.kseq_acceptance(p, q, k)
    z = (sel.accepted.mean() - acc) / np.sqrt(max(acc * (1 - acc), 1e-12) / n)
    assert abs(z) < 5, (name, sel.accepted.mean(), acc)
    # accepted tokens are the drafts they claim to be
    idx = np.flatnonzero(sel.accepted)
    assert (sel.drafts[idx, sel.index[idx]] == sel.token[idx]).all()


def test_chi_square_has_power():
    """The chi-square check above detects a wrong residual: selecting with k drafts but rho = 1
    (the k = 1 rule applied k times, whose residual (q - p)_+ is wrong for k > 1) skews the law."""
    p, q, k, n = np.array([.5, .3, .2]), np.array([.2, .3, .5]), 3, 200_000
    rng = np.random.default_rng(5)
    drafts = rng.choice(3, size=(n, k), p=p)
    u = rng.random((n, k))
    ok = u < np.minimum(1, q[drafts] / p[drafts])
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
    res = np.maximum(q - p, 0) / np.maximum(q - p, 0).sum()
    tok = np.where(first >= 0, drafts[np.arange(n), np.maximum(first, 0)], rng.choice(3, n, p=res))
    pval = stats.chisquare(np.bincount(tok, minlength=3), n * q).pvalue
    assert pval < 1e-10


def test_batched_rows_follow_their_own_q():
    """A batch of different (p, q) rows: each row's tokens follow that row's q."""
    rng = np.random.default_rng(3)
    V, R, reps = 6, 4, 40_000
    P = np.stack([dirichlet(rng, V, 0.7) for _ in range(R)])
    Q = np.stack([dirichlet(rng, V, 0.7) for _ in range(R)])
    Pb, Qb = np.repeat(P, reps, axis=0), np.repeat(Q, reps, axis=0)
    drafts = np.stack([rng.choice(V, size=(reps, 4), p=P[r]) for r in range(R)]).reshape(-1, 4)
    sel = spectr.kseq_select(Pb, Qb, drafts, seed=11)
    for r in range(R):
        counts = np.bincount(sel.token[r * reps:(r + 1) * reps], minlength=V)
        pos = Q[r] > 0
        assert stats.chisquare(counts[pos], reps * Q[r][pos]).pvalue > 1e-3


def test_rho_is_the_root_and_residual_nonnegative():
    """Over random pairs (sparse and flat) and k = 1..16: rho* in [1, k] is the root of
    1 - (1 - beta)^k = rho beta (h(rho*) ~ 0, h > 0 just below it unless rho* = 1), the raw residual
    q - c min(p, q/rho*) is non-negative, and the residual equals (q - rho* p)_+ normalised."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        V = int(rng.integers(2, 40))
        alpha = [0.05, 0.3, 1.0, 5.0][trial % 4]
        p = dirichlet(rng, V, alpha, zeros=int(rng.integers(0, V // 2)))
        q = dirichlet(rng, V, alpha, zeros=int(rng.integers(0, V // 2)))
        k = int(rng.integers(1, 17))
        rho = spectr.kseq_rho(p, q, k)
        assert 1 <= rho <= k
        assert h(p, q, k, rho) <= 1e-13
        if rho > 1:
            assert abs(h(p, q, k, rho)) < 1e-12
            assert h(p, q, k, rho * (1 - 1e-9)) > 0
        b = spectr.beta(p, q, rho)
        c = sum((1 - b) ** i for i in range(k))
        assert (q - c * np.minimum(p, q / rho)).min() >= -1e-14
        res = spectr.residual_distribution(p, q, k)
        assert res.min() >= 0 and abs(res.sum() - 1) < 1e-12
        if (1 - b) ** k > 1e-9:
            target = np.maximum(q - rho * p, 0)
            np.testing.assert_allclose(res, target / target.sum(), atol=1e-7)
        np.testing.assert_allclose(spectr.kseq_acceptance(p, q, k), rho * b, atol=1e-12)


def test_k1_is_standard_speculative_sampling():
    rng = np.random.default_rng(8)
    for _ in range(50):
        V = int(rng.integers(2, 30))
        p, q = dirichlet(rng, V, 0.5), dirichlet(rng, V, 0.5)
        assert spectr.kseq_rho(p, q, 1) == 1.0
        np.testing.assert_allclose(spectr.kseq_acceptance(p, q, 1), np.minimum(p, q).sum(), atol=1e-14)
        np.testing.assert_allclose(spectr.speculative_acceptance(p, q), np.minimum(p, q).sum(), atol=1e-15)
        np.testing.assert_allclose(spectr.optimal_acceptance(p, q, 1), np.minimum(p, q).sum(), atol=1e-12)
        r = np.maximum(q - p, 0)
        np.testing.assert_allclose(spectr.residual_distribution(p, q, 1), r / r.sum(), atol=1e-12)
    p, q = np.array([.5, .3, .2]), np.array([.2, .3, .5])
    drafts = np.random.default_rng(1).choice(3, 1000, p=p)
    a = spectr.speculative_sample(p, q, drafts, seed=4)
    b = spectr.kseq_select(p, q, drafts[:, None], seed=4)
    np.testing.assert_array_equal(a.token, b.token)
    # the acceptance rule min(1, q/p): token 0 (q/p = 0.4) accepted about 40% of the time
    n = 100_000
    s = spectr.speculative_sample(p, q, np.zeros(n, dtype=np.int64), seed=9)
    assert abs(s.accepted.mean() - 0.4) < 5 * np.sqrt(0.24 / n)
    assert set(np.unique(s.token[~s.accepted])) == {2}  # (q - p)_+ lives on token 2 only


def brute_force_optimum(p, q, k):
    V = len(p)
    best = 1.0
    for r in range(V + 1):
        for A in itertools.combinations(range(V), r):
            A = list(A)
            best = min(best, 1 - q[A].sum() + 1 - (1 - p[A].sum()) ** k)
    return best


def test_optimal_acceptance_matches_brute_force():
    rng = np.random.default_rng(9)
    for trial in range(120):
        V = int(rng.integers(1, 10))
        alpha = [0.1, 0.5, 2.0][trial % 3]
        p = dirichlet(rng, V, alpha, zeros=int(rng.integers(0, max(V // 2, 1))) if V > 1 else 0)
        q = dirichlet(rng, V, alpha, zeros=int(rng.integers(0, max(V // 2, 1))) if V > 1 else 0)
        k = int(rng.integers(1, 9))
        assert abs(spectr.optimal_acceptance(p, q, k) - brute_force_optimum(p, q, k)) < 1e-12


def test_kseq_approximation_ratio():
    """K-SEQ's acceptance is at most the optimum and at least (1 - (1 - 1/k)^k) times it
    (hence at least (1 - 1/e) times it), over random pairs of several sharpnesses."""
    rng = np.random.default_rng(10)
    worst = {}
    for trial in range(2000):
        V = int(rng.integers(2, 50))
        alpha = [0.05, 0.2, 1.0, 3.0][trial % 4]
        p, q = dirichlet(rng, V, alpha), dirichlet(rng, V, alpha)
        k = int(rng.integers(1, 9))
        acc, opt = spectr.kseq_acceptance(p, q, k), spectr.optimal_acceptance(p, q, k)
        assert acc <= opt + 1e-12
        bound = 1 - (1 - 1 / k) ** k
        assert acc >= bound * opt - 1e-12, (k, acc, opt)
        assert acc >= (1 - 1 / np.e) * opt - 1e-12
        worst[k] = min(worst.get(k, 1.0), acc / opt)
    # K-SEQ loses something for k >= 2 on some pair (the bound is not vacuous equality)
    assert min(worst[k] for k in range(2, 9)) < 1.0
    assert worst[1] > 1 - 1e-12


def test_more_drafts_accept_more():
    rng = np.random.default_rng(12)
    p, q = dirichlet(rng, 30, 0.3), dirichlet(rng, 30, 0.3)
    acc = spectr.kseq_acceptance(p, q, np.arange(1, 11))
    assert (np.diff(acc) >= -1e-12).all() and acc[-1] > acc[0]


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(13)
    B, V = 3000, 40
    P = rng.dirichlet(np.full(V, 0.4), size=B)
    Q = rng.dirichlet(np.full(V, 0.4), size=B)
    K = rng.integers(1, 9, size=B)
    drafts = np.stack([rng.choice(V, 8, p=P[b]) for b in range(B)])
    old = monge.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            monge.set_num_threads(n)
            s = spectr.kseq_select(P, Q, drafts, n_drafts=K, seed=99)
            d = spectr.kseq_sample(P, Q, 4, seed=5)
            out.append((s.token, s.index, s.rho, d.token, d.drafts,
                        spectr.kseq_rho(P, Q, K), spectr.residual_distribution(P, Q, K),
                        spectr.optimal_acceptance(P, Q, K)))
    finally:
        monge.set_num_threads(old)
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    s = spectr.kseq_select(P, Q, drafts, n_drafts=K, seed=99, nthreads=2)
    np.testing.assert_array_equal(s.token, out[0][0])
    assert (s.index < K).all()


def test_seed_and_stream():
    p, q = np.array([.5, .3, .2]), np.array([.2, .3, .5])
    a = spectr.kseq_sample(p, q, 2, size=2000, seed=1)
    b = spectr.kseq_sample(p, q, 2, size=2000, seed=1)
    c = spectr.kseq_sample(p, q, 2, size=2000, seed=1, stream=2000)
    np.testing.assert_array_equal(a.token, b.token)
    assert (a.token != c.token).any()
    g1, g2 = np.random.default_rng(0), np.random.default_rng(0)
    np.testing.assert_array_equal(spectr.kseq_sample(p, q, 2, size=50, seed=g1).token,
                                  spectr.kseq_sample(p, q, 2, size=50, seed=g2).token)


P3, Q3 = np.array([.5, .3, .2]), np.array([.2, .3, .5])
BAD = [
    # (function, kwargs, exception, message fragment)
    (spectr.kseq_rho, dict(p=[.5, .3, .3], q=Q3, k=2), ValueError, "p: does not sum to 1"),
    (spectr.kseq_rho, dict(p=P3, q=[.2, .3, .4], k=2), ValueError, "q: does not sum to 1"),
    (spectr.kseq_rho, dict(p=[.6, -.1, .5], q=Q3, k=2), ValueError, "p: probabilities must be non-negative"),
    (spectr.kseq_rho, dict(p=[np.nan, .5, .5], q=Q3, k=2), ValueError, "p: contains NaN"),
    (spectr.kseq_rho, dict(p=P3, q=[np.inf, 0, 0], k=2), ValueError, "q: contains NaN or infinity"),
    (spectr.kseq_rho, dict(p=P3, q=[.5, .5], k=2), ValueError, "p, q: vocabulary sizes differ"),
    (spectr.kseq_rho, dict(p=np.tile(P3, (2, 1)), q=np.tile(Q3, (3, 1)), k=2), ValueError,
     "p, q: batch sizes differ"),
    (spectr.kseq_rho, dict(p=P3, q=Q3, k=0), ValueError, "k: must be >= 1"),
    (spectr.kseq_rho, dict(p=P3, q=Q3, k=1.5), TypeError, "k: expected an integer"),
    (spectr.kseq_rho, dict(p=P3, q=Q3, k=True), TypeError, "k: expected an integer"),
    (spectr.kseq_rho, dict(p=np.tile(P3, (2, 1)), q=Q3, k=[1, 2, 3]), ValueError, "k: expected an integer or shape (2,)"),
    (spectr.kseq_rho, dict(p=np.ones((2, 2, 2)) / 2, q=Q3, k=2), ValueError, "p: expected 1 or 2 dimensions"),
    (spectr.kseq_rho, dict(p=[], q=[], k=2), ValueError, "p: empty"),
    (spectr.kseq_rho, dict(p=["a", "b"], q=Q3, k=2), TypeError, "p: expected a real numeric array"),
    (spectr.residual_distribution, dict(p=P3, q=Q3, k=-1), ValueError, "k: must be >= 1"),
    (spectr.optimal_acceptance, dict(p=P3, q=[1, 1, 1], k=2), ValueError, "q: does not sum to 1"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[0, 3]), ValueError, "drafts: token ids must be in [0, 3)"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[-1]), ValueError, "drafts: token ids must be in"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[0.5]), TypeError, "drafts: expected integer token ids"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[]), ValueError, "drafts: expected shape"),
    (spectr.kseq_select, dict(p=np.tile(P3, (2, 1)), q=np.tile(Q3, (2, 1)), drafts=[[0], [1], [2]]),
     ValueError, "drafts: 3 positions for 2 distributions"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[[0, 1]], n_drafts=[3]), ValueError,
     "n_drafts: must be <= the number of drafts"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[0], seed=-3), ValueError, "seed: must be >= 0"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[0], seed="x"), TypeError, "seed: expected an integer"),
    (spectr.kseq_select, dict(p=P3, q=Q3, drafts=[0], nthreads=0), ValueError, "nthreads: must be >= 1"),
    (spectr.kseq_sample, dict(p=P3, q=Q3, k=0, size=5), ValueError, "k: must be >= 1"),
    (spectr.kseq_sample, dict(p=P3, q=Q3, k=2, size=0), ValueError, "size: must be >= 1"),
    (spectr.speculative_sample, dict(p=P3, q=Q3, draft=[[0]]), ValueError, "draft: expected a token id"),
    (spectr.speculative_sample, dict(p=P3, q=Q3, draft=7), ValueError, "drafts: token ids must be in"),
    (spectr.beta, dict(p=P3, q=Q3, rho=0.5), ValueError, "rho: must be finite and >= 1"),
]


@pytest.mark.parametrize("fn,kw,exc,text", BAD, ids=[f"{b[0].__name__}-{b[3][:30]}" for b in BAD])
def test_bad_inputs(fn, kw, exc, text):
    with pytest.raises(exc) as info:
        fn(**kw)
    assert text in str(info.value)


def test_within_tolerance_is_normalised():
    p = np.array([.5, .3, .2]) * (1 + 5e-7)
    assert spectr.kseq_rho(p, Q3, 2) == spectr.kseq_rho(P3, Q3, 2)


def test_core_rechecks():
    """The private C entry points reject what the Python layer would (no crash, no NaN)."""
    with pytest.raises(ValueError):
        monge._core.spectr_rho(np.array([[.5, .6]]), np.array([[.5, .5]]), np.array([2]))
    with pytest.raises(ValueError):
        monge._core.spectr_rho(np.array([[.5, .5]]), np.array([[.5, .5]]), np.array([0]))
    with pytest.raises(ValueError):
        monge._core.spectr_select(np.array([[.5, .5]]), np.array([[.5, .5]]), np.array([[2]]))


def test_unchecked_fast_path_matches_and_core_still_rejects():
    rng = np.random.default_rng(14)
    p, q = dirichlet(rng, 20, 0.5), dirichlet(rng, 20, 0.5)
    for s in range(50):
        d = rng.choice(20, 3, p=p)
        a = spectr.kseq_select(p, q, d, seed=7, stream=s)
        b = spectr.kseq_select(p, q, d.astype(np.int64), seed=7, stream=s, check=False)
        assert (a.token, a.index) == (b.token, b.index)
        assert abs(a.rho - b.rho) < 1e-12  # the checked path renormalises p and q
    with pytest.raises(ValueError):
        spectr.kseq_select(p * 2, q, np.array([0]), seed=1, check=False)
    with pytest.raises(ValueError):
        spectr.kseq_select(p, q, np.array([20]), seed=1, check=False)
