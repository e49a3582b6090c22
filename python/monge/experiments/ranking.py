"""Retrieval ranks shared by the experiments, with ties counted against the model.

For a query i with scores S_i1..S_iM over M candidates, of which the `relevant` ones are correct
answers, the rank is

    rank_i = 1 + #{ j not relevant to i : S_ij >= max_{k relevant to i} S_ik }

so a wrong candidate scoring the same as the best right one is ranked ahead of it.  Constant
scores give the worst rank (M minus the number of relevant candidates, plus 1), never rank 1:
Hits@1 cannot be earned by a model that does not separate the candidates.  NumPy only.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ranks"]


def ranks(scores, relevant=None):
    """Rank of the best relevant candidate of every query, ties counted against it.

    Parameters
    ----------
    scores : array (N, M), finite
        scores[i, j]: how well candidate j answers query i (higher is better).
    relevant : bool array (N, M), optional
        True where candidate j is a correct answer to query i; every query needs at least one.
        Default: the matched pairs of a square `scores`, candidate i for query i.

    Returns
    -------
    int64 array (N,): 1 + the number of non-relevant candidates scoring >= the best relevant one.
    """
    S = np.asarray(scores)
    if S.ndim != 2 or S.dtype.kind not in "fiu":
        raise ValueError(f"scores: expected a 2-D array of real numbers, got shape {S.shape}, "
                         f"dtype {S.dtype}")
    S = S.astype(np.float64, copy=False)
    if not np.isfinite(S).all():
        raise ValueError("scores: must be finite")
    if relevant is None:
        if S.shape[0] != S.shape[1]:
            raise ValueError(f"scores: without `relevant`, expected a square matrix (matches on "
                             f"the diagonal), got shape {S.shape}")
        rel = np.eye(S.shape[0], dtype=bool)
    else:
        rel = np.asarray(relevant)
        if rel.dtype != np.bool_:
            raise TypeError(f"relevant: expected a boolean array, got dtype {rel.dtype}")
        if rel.shape != S.shape:
            raise ValueError(f"relevant: expected shape {S.shape} (that of scores), got {rel.shape}")
        if not rel.any(axis=1).all():
            i = int(np.argmin(rel.any(axis=1)))
            raise ValueError(f"relevant: query {i} has no relevant candidate")
    best = np.where(rel, S, -np.inf).max(axis=1)
    return 1 + ((S >= best[:, None]) & ~rel).sum(axis=1).astype(np.int64)
