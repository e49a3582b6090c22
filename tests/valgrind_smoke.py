"""The calls that tests/valgrind_check.py runs under valgrind memcheck: every public C entry point
once on tiny inputs, plus calls that raise."""
import numpy as np, monge, warnings
warnings.simplefilter("ignore")
rng = np.random.default_rng(0)
X, Y = rng.random((12, 2)), rng.random((9, 2))
C = monge.cost_matrix(X, Y)
monge.sinkhorn(X, Y, eps=0.1).plan()
monge.sinkhorn(X.astype(np.float32), Y.astype(np.float32), eps=0.1)
monge.sinkhorn_divergence(X, Y, eps=0.1, grad=True)
monge.monge_gap(X, X + 0.1, grad=True)
monge.emd(None, None, C); monge.emd(None, None, x=X, y=Y); monge.emd(None, None, np.stack([C, C]))
monge.emd_1d(X[:, 0], Y[:, 0]); monge.sliced_wasserstein(X, Y, n_projections=4, seed=0, return_grad=True)
LP = np.log(rng.dirichlet(np.ones(5), size=(8, 3)))
monge.ctc_loss(LP, rng.integers(1, 5, size=(3, 3)), [8, 7, 8], [3, 2, 3], grad="logits")
monge.align(X[None], Y[None], grad=True, method="ipot")
monge.quadratic_ot(np.full(12, 1 / 12), np.full(9, 1 / 9), C, 1.0)
monge.sparse_ot(np.full(12, 1 / 12), np.full(9, 1 / 9), C, 2, 1.0)
p, q = rng.dirichlet(np.ones(20)), rng.dirichlet(np.ones(20))
monge.spectr.kseq_select(p, q, np.array([1, 2, 3]), seed=0)
CX, CY = monge.cost_matrix(X, X), monge.cost_matrix(Y, Y)
monge.gromov_wasserstein(CX, CY, grad=True); monge.fused_gromov_wasserstein(C, CX, CY)
A, B2 = rng.random((12, 12)) + 0.1, rng.random((9, 9)) + 0.1        # asymmetric, kl
monge.gromov_wasserstein(A, B2, loss="kl", method="entropic", eps=0.05, max_iter=30)
monge.gromov_wasserstein(A, B2, method="entropic", eps=0.005, max_iter=60)   # damped steps
monge.gromov_wasserstein(x=X, y=Y, grad=True)
monge.barycenter(np.stack([p, q]), grid=[np.arange(4.0), np.arange(5.0)], eps=0.5, debiased=True,
                 grad=True)
monge.barycenter(np.stack([p[:12] / p[:12].sum(), q[:12] / q[:12].sum()]), x=X[:5], y=X,
                 eps=0.5, grad=True)
monge.barycenter(np.stack([p[:12] / p[:12].sum(), q[:12] / q[:12].sum()]), y=X, eps=0.5,
                 debiased=True, grad=True, max_iter=50)
monge.barycenter(np.stack([p[:9] / p[:9].sum(), q[:9] / q[:9].sum()]), C, eps=0.5, grad=True)
monge.free_support_barycenter([X, Y], n=5, seed=0, grad=True)
monge.barycenter(np.stack([np.stack([p[:12] / p[:12].sum(), q[:12] / q[:12].sum()])] * 3), y=X,
                 eps=0.5, weights=[[0.5, 0.5], [0.2, 0.8], [1.0, 0.0]])
monge.free_support_barycenter([X, Y], n=5, seed=0, method="entropic", eps=0.1, max_iter=5,
                              grad=True)
monge.sinkhorn(X, Y, eps=0.1).transform(X[:3])
_ms = monge.sinkhorn(X, Y, eps=0.01, method="multiscale")
_ms.apply(np.ones((len(Y), 2))), _ms.gradient("x"), _ms.plan_coo()
monge.sinkhorn_divergence(X.astype(np.float32), Y.astype(np.float32), eps=0.01, grad=True,
                          method="multiscale")
for bad in (lambda: monge.emd(np.ones(3), None, C), lambda: monge.sinkhorn(X, Y * np.nan, eps=0.1)):
    try:
        bad()
    except ValueError:
        pass

monge.get_num_threads()
print("ok")
