"""The tuning table of the Sinkhorn engine and benchmarks/sinkhorn_suite.py's generator and rule."""
import os
import sys

import numpy as np
import pytest

import monge
from monge import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import sinkhorn_suite as suite  # noqa: E402


def test_tuning_table_reads_sets_and_rejects():
    table = _core.sinkhorn_tuning()
    assert set(table) == set(suite.GRIDS) | set(suite.ELSEWHERE)
    assert not set(suite.GRIDS) & set(suite.ELSEWHERE)
    for name, grid in suite.GRIDS.items():
        assert table[name] == grid[2], name        # each grid is centred on the C default
    old = _core.sinkhorn_tuning("aa_stall", 7)
    try:
        assert old == table["aa_stall"] and _core.sinkhorn_tuning("aa_stall") == 7
    finally:
        _core.sinkhorn_tuning("aa_stall", old)
    assert _core.sinkhorn_tuning() == table
    for name, value in (("nope", 1.0), ("aa_stall", 2.5), ("aa_stall", 0), ("aa_damp", -1.0),
                        ("aa_damp", float("nan")), ("relax_window", float("inf"))):
        with pytest.raises(ValueError, match="sinkhorn_tuning"):
            _core.sinkhorn_tuning(name, value)
    assert _core.sinkhorn_tuning() == table


def test_a_constant_changes_the_iterations_and_not_the_solution():
    """aa_stall = 1 hands every stage to the over-relaxation at once: other iterations, the same
    transport to the tolerance."""
    rng = np.random.default_rng(0)
    x, y = rng.random((300, 2)), rng.random((280, 2)) + 0.2
    r0 = monge.sinkhorn(x, y, eps=1e-3, tol=1e-8)
    old = _core.sinkhorn_tuning("aa_stall", 1)
    try:
        r1 = monge.sinkhorn(x, y, eps=1e-3, tol=1e-8)
    finally:
        _core.sinkhorn_tuning("aa_stall", old)
    assert r0.converged and r1.converged and r0.n_iter != r1.n_iter
    assert abs(float(r0.value) - float(r1.value)) < 1e-6 * abs(float(r0.value))


def test_the_annealing_threshold_decides_whether_a_small_eps_anneals():
    """eps = 5e-5 x the max cost: below the threshold 1e-4 the solve anneals from the start, below
    a threshold of 1e-5 it does not; the same transport either way."""
    rng = np.random.default_rng(1)
    x, y = rng.random((200, 2)), rng.random((190, 2))
    cmax = float(monge.cost_matrix(x, y).max())
    kw = dict(eps=5e-5 * cmax, tol=1e-6, max_iter=20000)
    r0 = monge.sinkhorn(x, y, **kw)
    old = _core.sinkhorn_tuning("auto_anneal", 1e-5)
    try:
        r1 = monge.sinkhorn(x, y, **kw)
    finally:
        _core.sinkhorn_tuning("auto_anneal", old)
    assert r0.converged and r1.converged and r0.n_iter != r1.n_iter
    assert abs(float(r0.value) - float(r1.value)) < 1e-5 * abs(float(r0.value))


def test_generator_is_seeded_and_the_halves_are_disjoint():
    h = suite.halves(40)
    assert not set(h["tuning"]) & set(h["held_out"]) and len(h["tuning"]) == 20
    kw1, d1 = suite.problem(5)
    kw2, d2 = suite.problem(5)
    assert d1 == d2 and np.array_equal(kw1["x"], kw2["x"]) and kw1["eps"] == kw2["eps"]
    descs = [suite.problem(s)[1] for s in range(40)]
    assert {d["cost"] for d in descs} >= {"sqeuclidean", "euclidean", "pnorm", "cosine"}
    assert any(d["unbalanced"] for d in descs) and any(d["dtype"] == "float32" for d in descs)
    assert all(50 <= d["n"] <= 4000 and 1e-4 <= d["rel_eps"] <= 1e-1 for d in descs)
    wide = [suite.problem(s, (1e-5, 1e-1))[1] for s in range(40)]
    assert [d["n"] for d in wide] == [d["n"] for d in descs]      # only eps is drawn differently
    assert any(d["rel_eps"] < 1e-4 for d in wide) and all(d["rel_eps"] >= 1e-5 for d in wide)


def _res(ratios, fails=None, default=100, chaotic=None):
    """A fake sweep of aa_stall over 152 problems: each value scales the 20 iterations of the first
    150 by its ratio; 'chaotic' gives the 151st problem's iterations per value; 'fails' the values
    under which the 152nd fails."""
    fails = fails or {}
    chaotic = chaotic or {}
    configs = []
    for v, q in ratios.items():
        rows = [dict(seed=k, n_iter=round(q * 20), converged=True) for k in range(150)]
        rows.append(dict(seed=150, n_iter=chaotic.get(v, 20), converged=True))
        rows.append(dict(seed=151, n_iter=10, converged=v not in fails))
        configs.append(dict(name="" if v == default else f"aa_stall = {v}",
                            set={} if v == default else {"aa_stall": v},
                            summary=dict(failures=int(v in fails), problems=152)))
        configs[-1]["rows"] = rows
    return dict(defaults={"aa_stall": default}, configs=configs)


def test_the_rule_wants_a_flat_region_and_no_more_failures():
    flat = suite.analyse(_res({25: 0.96, 50: 0.95, 100: 1.0, 200: 0.9, 400: 0.92}))["aa_stall"]
    assert flat["chosen"] == 200 and flat["common"] == 152
    assert abs(flat["geo"][200] - 0.9 ** (150 / 152)) < 1e-3  # 150 of the 152 problems scaled
    # one lucky value whose neighbour is worse: keep the default
    lucky = suite.analyse(_res({25: 1.0, 50: 1.0, 100: 1.0, 200: 0.8, 400: 1.05}))["aa_stall"]
    assert lucky["chosen"] == 100
    # fewer iterations but a failure more: not taken, and the failing problem is left out
    failing = suite.analyse(_res({25: 1.0, 50: 1.0, 100: 1.0, 200: 0.8, 400: 0.8},
                                 fails={200, 400}))["aa_stall"]
    assert failing["chosen"] == 100 and failing["common"] == 151
    # one chaotic problem (10x fewer iterations) that halves the total does not decide
    chaos = suite.analyse(_res({25: 1.0, 50: 1.0, 100: 1.0, 200: 1.0, 400: 1.0},
                               chaotic={25: 5000, 50: 5000, 100: 5000, 200: 500, 400: 600}))["aa_stall"]
    assert chaos["total"][200] < 0.5 * chaos["total"][100] and chaos["chosen"] == 100
