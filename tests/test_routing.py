"""monge.routing: capacity, dropped tokens, loads and weights of the three routers; the toy plans
of the routing experiment."""
import numpy as np
import pytest

from monge import routing
from monge.experiments.routing import run as experiment


def scores(seed, n=96, E=4, skew=0.0):
    rng = np.random.default_rng(seed)
    S = rng.normal(size=(n, E))
    S[:, 0] += skew
    return S


def check_consistent(res, n, E, capacity):
    assert res.experts.shape[0] == n and res.load.shape == (E,)
    assert (res.load <= capacity).all()
    routed = (res.experts >= 0).any(axis=1)
    assert res.dropped == int((~routed).sum())
    mask = res.dispatch_mask()
    np.testing.assert_array_equal(mask.sum(axis=0), res.load)
    W = res.combine_matrix()
    assert ((W > 0) == mask).all()
    np.testing.assert_allclose(W[routed].sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("method", ["topk", "sinkhorn", "sparse_ot"])
@pytest.mark.parametrize("skew", [0.0, 2.0])
def test_capacity_and_bookkeeping(method, skew):
    n, E = 96, 4
    for cap in (12, 24, 30):
        res = routing.route(scores(1, n, E, skew), method, capacity=cap)
        check_consistent(res, n, E, cap)
        assert res.capacity == cap
        # at most capacity x E tokens can be routed (a token may use several experts)
        assert res.dropped >= n - E * cap


def test_topk_drops_over_capacity_by_priority():
    n, E, cap = 10, 3, 4
    S = np.zeros((n, E))
    S[:, 0] = np.linspace(1, 2, n)  # every token prefers expert 0, the last ones most
    res = routing.topk_route(S, capacity=cap, priority="score")
    assert res.dropped == n - cap and res.load.tolist() == [cap, 0, 0]
    np.testing.assert_array_equal(np.nonzero(res.experts[:, 0] >= 0)[0], np.arange(n - cap, n))
    res = routing.topk_route(S, capacity=cap, priority="order")
    np.testing.assert_array_equal(np.nonzero(res.experts[:, 0] >= 0)[0], np.arange(cap))
    # second choices take the spare capacity of the other experts
    res = routing.topk_route(S, capacity=cap, k=2)
    assert res.load.tolist() == [cap, cap, 0] and res.dropped == 2
    assert res.balance() == pytest.approx(cap / (2 * cap / 3))


def test_ot_routers_balance_a_skewed_router():
    """All tokens prefer expert 0: top-1 gating drops most of them, the OT routers balance."""
    n, E = 96, 4
    S = scores(2, n, E, skew=3.0)
    cap = n // E
    top = routing.topk_route(S, capacity=cap)
    assert top.dropped >= n // 2
    sk = routing.sinkhorn_route(S, capacity=cap)
    so = routing.sparse_ot_route(S, capacity=cap)
    for res in (sk, so):
        check_consistent(res, n, E, cap)
        assert res.dropped < top.dropped / 4
        assert res.balance() < 1.25
    # sparse OT: each expert column of the plan has <= capacity entries, so the loads are the
    # plan's column counts, never above the capacity, and here all experts are (nearly) full
    assert so.load.min() >= cap - 2


def test_sparse_ot_route_max_experts_and_errors():
    S = scores(3, 64, 4)
    res = routing.sparse_ot_route(S, capacity=20, max_experts=1)
    assert res.experts.shape[1] == 1
    check_consistent(res, 64, 4, 20)
    with pytest.raises(ValueError, match="scores: expected 2 dimensions"):
        routing.topk_route(np.ones(5))
    with pytest.raises(ValueError, match="capacity: must be >= 1"):
        routing.sparse_ot_route(S, capacity=0)
    with pytest.raises(TypeError, match="capacity: expected an integer"):
        routing.sinkhorn_route(S, capacity=2.5)
    with pytest.raises(ValueError, match="k: must be <= the number of experts"):
        routing.topk_route(S, k=5)
    with pytest.raises(ValueError, match="method: unknown value"):
        routing.route(S, "hash")
    with pytest.raises(ValueError, match="gamma: must be a positive number"):
        routing.sparse_ot_route(S, gamma=0)
    with pytest.raises(ValueError, match="scores: contains NaN"):
        routing.sinkhorn_route(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="priority: unknown value"):
        routing.topk_route(S, priority="random")
    assert routing.capacity_from_factor(100, 8, 1.25) == 16


def test_toy_plans_have_k_per_column():
    plans = experiment.toy_plans(n=12)
    for k, P in plans.items():
        assert P.shape == (12, 12)
        np.testing.assert_allclose(P.sum(axis=0), 1 / 12, atol=1e-12)  # semi-dual: exact columns
        if k is not None:
            assert ((P > 0).sum(axis=0) <= k).all()
    # k = 1 on sorted 1-D points: the exact (monotone) OT plan, the identity / n
    np.testing.assert_allclose(plans[1], np.eye(12) / 12, atol=1e-9)
    assert ((plans[None] > 0).sum(axis=0) > 1).any()  # quadratic OT spreads some columns


def test_routing_experiment_results_file_round_trip(tmp_path):
    # --out writes meta + rows; --render turns them into the docs' table
    import json

    out = tmp_path / "routing.json"
    assert experiment.main(["--quick", "--seeds", "0", "--routers", "sinkhorn", "--out",
                            str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["meta"]["settings"]["capacity_factor"] == 1.0 and res["meta"]["command"].startswith(
        "python -m monge.experiments.routing --quick")
    assert [r["router"] for r in res["rows"]] == ["sinkhorn"]
    text = experiment.render(str(out))
    assert text.startswith("capacity factor 1, 4 experts, 1 seeds") and "| sinkhorn |" in text
