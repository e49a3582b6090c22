"""Retrieval ranks of the experiments (monge.experiments.ranking): ties count against the model."""
import numpy as np
import pytest

from monge.experiments.ranking import ranks


def brute_force_ranks(S, rel):
    """Sort each query's candidates by score, best first, putting wrong candidates ahead of right
    ones among equal scores; the rank is the 1-based position of the first right candidate."""
    out = []
    for i in range(S.shape[0]):
        order = sorted(range(S.shape[1]), key=lambda j: (-S[i, j], bool(rel[i, j])))
        out.append(1 + next(p for p, j in enumerate(order) if rel[i, j]))
    return np.array(out)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_constant_scores_give_the_worst_rank(n):
    assert ranks(np.zeros((n, n))).tolist() == [n] * n
    assert ranks(np.full((n, n), 3.5)).tolist() == [n] * n


def test_constant_scores_with_several_right_answers():
    # query 0 has two right candidates of four: the worst rank is 3 (both wrong ones ahead)
    rel = np.array([[True, False, True, False], [False, True, False, False]])
    assert ranks(np.ones((2, 4)), rel).tolist() == [3, 4]


def test_by_hand():
    S = np.array([[0.9, 0.1, 0.9],     # a wrong candidate ties the match: rank 2, not 1
                  [0.8, 0.5, 0.9],     # two wrong candidates score higher: rank 3
                  [0.1, 0.2, 0.3]])    # strictly best: rank 1
    assert ranks(S).tolist() == [2, 3, 1]
    assert ranks(S.T).tolist() == [1, 1, 3]   # column 2: 0.9 and 0.9 above its 0.3


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    N, M = 30, 40
    S = rng.integers(0, 4, size=(N, M)).astype(float)       # few values: many ties
    rel = rng.random((N, M)) < 0.1
    rel[np.arange(N), rng.integers(0, M, size=N)] = True     # every query has a right answer
    np.testing.assert_array_equal(ranks(S, rel), brute_force_ranks(S, rel))
    sq = S[:, :N]
    np.testing.assert_array_equal(ranks(sq), brute_force_ranks(sq, np.eye(N, dtype=bool)))
    np.testing.assert_array_equal(ranks(sq.T), brute_force_ranks(sq.T, np.eye(N, dtype=bool)))


def test_bad_input():
    with pytest.raises(ValueError, match="scores: without `relevant`, expected a square"):
        ranks(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="scores: expected a 2-D"):
        ranks(np.zeros(3))
    with pytest.raises(ValueError, match="scores: must be finite"):
        ranks(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(TypeError, match="relevant: expected a boolean"):
        ranks(np.zeros((2, 2)), np.eye(2))
    with pytest.raises(ValueError, match="relevant: expected shape"):
        ranks(np.zeros((2, 2)), np.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match="relevant: query 1 has no relevant"):
        ranks(np.zeros((2, 2)), np.array([[True, False], [False, False]]))
