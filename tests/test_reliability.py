"""Reliability: no memory growth over many calls of each public function (including calls that
raise), and concurrent calls from Python threads give the results of sequential calls."""
import os
import threading

import numpy as np
import pytest

import monge

RNG = np.random.default_rng(0)
X, Y = RNG.random((12, 2)), RNG.random((9, 2))
C = monge.cost_matrix(X, Y)
LP = np.log(RNG.dirichlet(np.ones(5), size=(8, 3)))
TG, IL, TL = RNG.integers(1, 5, size=(3, 3)), np.array([8, 7, 8]), np.array([3, 2, 3])
P1, Q1 = RNG.dirichlet(np.ones(20)), RNG.dirichlet(np.ones(20))

CALLS = {
    "sinkhorn": lambda: monge.sinkhorn(X, Y, eps=0.1),
    "sinkhorn plan": lambda: monge.sinkhorn(X, Y, eps=0.1).plan(),
    "sinkhorn_divergence": lambda: monge.sinkhorn_divergence(X, Y, eps=0.1, grad=True),
    "monge_gap": lambda: monge.monge_gap(X, X + 0.1, grad=True),
    "emd dense": lambda: monge.emd(None, None, C),
    "emd points": lambda: monge.emd(None, None, x=X, y=Y),
    "emd_1d": lambda: monge.emd_1d(X[:, 0], Y[:, 0]),
    "sliced": lambda: monge.sliced_wasserstein(X, Y, n_projections=8, seed=0, return_grad=True),
    "ctc_loss": lambda: monge.ctc_loss(LP, TG, IL, TL, grad="logits"),
    "align": lambda: monge.align(X[None], Y[None], grad=True),
    "quadratic_ot": lambda: monge.quadratic_ot(np.full(12, 1 / 12), np.full(9, 1 / 9), C, 1.0),
    "spectr": lambda: monge.spectr.kseq_select(P1, Q1, np.array([1, 2, 3]), seed=0),
    "cost_matrix": lambda: monge.cost_matrix(X, Y),
}
RAISING = {
    "sinkhorn": lambda: monge.sinkhorn(X, Y * np.nan, eps=0.1),
    "emd": lambda: monge.emd(np.ones(3), None, C),
    "ctc_loss": lambda: monge.ctc_loss(LP, TG, IL + 5, TL),
    "align": lambda: monge.align(np.zeros((1, 2, 2)), Y[None]),
    "_core.emd (C-side check)": lambda: monge._core.emd(C[None], None, None, -np.ones((1, 12)),
                                                         None),
}


def rss_mib():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _repeat(fn, count, raises):
    for _ in range(count):
        if raises:
            try:
                fn()
            except (ValueError, TypeError, FloatingPointError):
                pass
            else:
                raise AssertionError("the call was expected to raise")
        else:
            fn()


@pytest.mark.parametrize("name,raises", [(k, False) for k in CALLS] + [(k, True) for k in RAISING])
def test_memory_stays_flat(name, raises):
    import warnings

    fn = (RAISING if raises else CALLS)[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _repeat(fn, 300, raises)  # warm-up: caches, allocator pools
        before = rss_mib()
        _repeat(fn, 3000, raises)
        after = rss_mib()
    # a leak of even 100 bytes per call would show as > 0.3 MiB over 3000 calls
    assert after - before < 0.3, f"{name}: RSS grew by {after - before:.2f} MiB over 3000 calls"


def test_four_python_threads_match_sequential_results():
    rng = np.random.default_rng(1)
    jobs = []
    for k in range(8):
        x, y = rng.random((300, 2)), rng.random((250, 2))
        if k % 2 == 0:
            jobs.append(lambda x=x, y=y: monge.sinkhorn(x, y, eps=0.05).f)
        else:
            jobs.append(lambda x=x, y=y: monge.emd(None, None, x=x, y=y).g)
    sequential = [job() for job in jobs]
    results = [None] * len(jobs)

    def worker(idx):
        for i in idx:
            results[i] = jobs[i]()

    threads = [threading.Thread(target=worker, args=(range(t, len(jobs), 4),)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, r in zip(sequential, results):
        np.testing.assert_array_equal(s, r)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scale", [1.0, 1e6])  # costs up to ~2e12 at 1e6
def test_small_eps_and_huge_costs_stay_finite_or_say_so(dtype, scale):
    import warnings

    rng = np.random.default_rng(2)
    x, y = (rng.random((100, 2)) * scale).astype(dtype), (rng.random((100, 2)) * scale).astype(dtype)
    cmax = float(monge.cost_matrix(x.astype(np.float64), y.astype(np.float64)).max())
    for rel in (1e-2, 1e-5):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            r = monge.sinkhorn(x, y, eps=rel * cmax, max_iter=2000)
            d = monge.sinkhorn_divergence(x, y, eps=rel * cmax, max_iter=2000, grad=True)
        warned = any(issubclass(w.category, monge.ConvergenceWarning) for w in caught)
        assert np.isfinite(r.value) and np.isfinite(r.f).all() and np.isfinite(r.g).all()
        assert np.isfinite(d.value) and np.isfinite(d.grad_x).all()
        assert warned == (not (r.converged and d.converged))
    e = monge.emd(None, None, x=x, y=y)
    assert np.isfinite(e.cost) and e.converged and np.isfinite(e.f).all()
