"""Routing tokens to experts with a capacity: top-k gating, Sinkhorn routing and sparse-OT routing.

A router takes scores S (n tokens x E experts, e.g. the logits of a gating network) and a capacity
(the most tokens an expert may process) and returns, per token, the experts it is dispatched to and
the weights with which the experts' outputs are combined.

* ``topk_route``: every token picks its k highest-scoring experts; an expert accepts tokens until
  it is full (tokens in order of priority: their gate probability, "batch prioritised routing",
  or their position), the rest are dropped.  Weights: the gate probabilities softmax(S) of the
  kept experts, renormalised over them.
* ``sinkhorn_route``: balanced entropic OT between tokens (mass 1/n each) and experts (1/E each)
  with cost -S (standardised), P = monge.sinkhorn(...).plan(); each token goes to the expert with
  its largest plan entry, over-capacity experts keep their tokens of largest plan entry.  Weight 1.
* ``sparse_ot_route`` (Liu, Puigcerver & Blondel, ICLR 2023): k-sparse OT with the capacity as the
  per-expert k, so no expert ever receives more than `capacity` tokens; a token goes to every expert
  with a nonzero plan entry (its weights: its plan row, normalised), and a token whose plan row is
  empty is dropped.

Costs are standardised, C = -(S - mean S) / std S, so that `eps` and `gamma` are in units of the
score spread: for sparse OT the regularisation is gamma * n, i.e. a margin of `gamma` standard
deviations between a token's score and its expert's threshold is worth a full token.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ._validate import choice, float_array, integer, positive
from ._policy import ConvergenceWarning
from .sinkhorn import sinkhorn
from .smooth import sparse_ot


__all__ = ["route", "topk_route", "sinkhorn_route", "sparse_ot_route", "capacity_from_factor",
           "RoutingResult", "ROUTERS"]


@dataclass
class RoutingResult:
    """Dispatch of n tokens to E experts, as returned by the routers.

    Each token has `slots` slots (k for top-k, 1 for Sinkhorn routing, the most experts of a token
    for sparse-OT routing), filled with its experts and their combine weights.

    Attributes
    ----------
    experts : ndarray (n, slots) of int64
        The experts of each token, -1 in unused slots.
    weights : ndarray (n, slots) of float64
        Combine weights (0 in unused slots).
    dropped : int
        Number of tokens dispatched to no expert.
    load : ndarray (E,) of int64
        Tokens dispatched to each expert (<= capacity).
    capacity : int
        The capacity the router enforced.
    converged : bool
        Whether the OT solve behind the router converged (True for top-k).
    n_experts : int
        The number of experts E (a read-only property: the length of `load`).

    See Also
    --------
    route : runs one of the routers below by name.
    topk_route, sinkhorn_route, sparse_ot_route : the routers.

    Examples
    --------
    >>> from monge.routing import topk_route
    >>> r = topk_route([[2.0, 0.0], [1.5, 0.0], [0.0, 1.0], [1.0, 0.5]], capacity=2)
    >>> r.experts.ravel().tolist(), r.dropped, r.load.tolist(), r.n_experts
    ([0, 0, 1, -1], 1, [2, 1], 2)
    """

    experts: np.ndarray
    weights: np.ndarray
    dropped: int
    load: np.ndarray
    capacity: int
    converged: bool = True

    @property
    def n_experts(self):
        """Number of experts E: the length of `load`."""
        return self.load.shape[0]

    def dispatch_mask(self):
        """Boolean dispatch matrix: entry (i, j) is True when token i is dispatched to expert j.

        Returns
        -------
        ndarray (n, E) of bool
            The dispatch mask, False in the rows of dropped tokens.

        See Also
        --------
        combine_matrix : the combine weights in the same layout.

        Examples
        --------
        >>> from monge.routing import topk_route
        >>> topk_route([[2.0, 0.0], [0.0, 1.0]]).dispatch_mask().tolist()
        [[True, False], [False, True]]
        """
        n = self.experts.shape[0]
        mask = np.zeros((n, self.n_experts), dtype=bool)
        rows, slots = np.nonzero(self.experts >= 0)
        mask[rows, self.experts[rows, slots]] = True
        return mask

    def combine_matrix(self):
        """Dense combine matrix: entry (i, j) is the weight of expert j for token i.

        Returns
        -------
        ndarray (n, E) of float64
            The combine weights, 0 where token i is not dispatched to expert j.

        See Also
        --------
        dispatch_mask : where the weights are nonzero.

        Examples
        --------
        >>> from monge.routing import topk_route
        >>> topk_route([[2.0, 0.0], [1.0, 0.5]], capacity=2, k=2).combine_matrix().round(4).tolist()
        [[0.8808, 0.1192], [0.6225, 0.3775]]
        """
        n = self.experts.shape[0]
        out = np.zeros((n, self.n_experts))
        rows, slots = np.nonzero(self.experts >= 0)
        out[rows, self.experts[rows, slots]] = self.weights[rows, slots]
        return out

    def balance(self):
        """Load balance of the dispatch: max load / mean load over the experts.

        Returns
        -------
        float
            1 when perfectly balanced, larger otherwise; inf if no token was routed.

        Examples
        --------
        >>> from monge.routing import topk_route
        >>> r = topk_route([[2.0, 0.0], [1.5, 0.0], [0.0, 1.0], [1.0, 0.5]], capacity=2)
        >>> r.load.tolist(), round(r.balance(), 4)
        ([2, 1], 1.3333)
        """
        mean = self.load.mean()
        return float(self.load.max() / mean) if mean > 0 else math.inf


def _scores(scores):
    S = float_array("scores", scores, (2,), dtype=np.float64)
    if S.shape[1] < 1:
        raise ValueError("scores: need at least one expert")
    return S


def _capacity(capacity, n, E):
    """An int capacity, or None -> ceil(n / E) (exactly balanced)."""
    if capacity is None:
        return -(-n // E)
    return integer("capacity", capacity, 1)


def capacity_from_factor(n_tokens, n_experts, factor):
    """Expert capacity for a capacity factor: ceil(factor * n_tokens / n_experts), at least 1.

    The usual capacity-factor convention of mixture-of-experts layers: factor 1 gives each
    expert its balanced share of the tokens, a larger factor leaves room for imbalance.

    Parameters
    ----------
    n_tokens : int
        Number of tokens n.
    n_experts : int
        Number of experts E.
    factor : float
        Capacity factor (> 0).

    Returns
    -------
    int
        ``max(1, ceil(factor * n_tokens / n_experts))``.

    Raises
    ------
    ValueError
        If factor is not a positive finite number, n_tokens < 0 or n_experts < 1.
    TypeError
        If factor is not a real number or n_tokens, n_experts are not integers.

    See Also
    --------
    route : the routers take the capacity this returns.

    References
    ----------
    D. Lepikhin et al., "GShard: scaling giant models with conditional computation and automatic
    sharding", ICLR 2021.
    W. Fedus, B. Zoph and N. Shazeer, "Switch Transformers: scaling to trillion parameter models
    with simple and efficient sparsity", JMLR 2022.

    Examples
    --------
    >>> from monge.routing import capacity_from_factor
    >>> capacity_from_factor(8, 4, 1.25)
    3
    """
    n_tokens = integer("n_tokens", n_tokens, 0)
    n_experts = integer("n_experts", n_experts, 1)
    factor = positive("factor", factor)
    return max(1, int(math.ceil(factor * n_tokens / n_experts)))


def _standardised_cost(S):
    sd = S.std()
    return -(S - S.mean()) / (sd if sd > 0 else 1.0)


def _softmax(S):
    Z = S - S.max(axis=1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True)


def _result(choice_lists, n, E, capacity, slots, converged):
    experts = np.full((n, slots), -1, dtype=np.int64)
    weights = np.zeros((n, slots))
    for i, lst in enumerate(choice_lists):
        for s, (j, w) in enumerate(lst):
            experts[i, s] = j
            weights[i, s] = w
    load = np.bincount(experts[experts >= 0], minlength=E).astype(np.int64)
    dropped = int(np.sum(~(experts >= 0).any(axis=1)))
    return RoutingResult(experts, weights, dropped, load, capacity, converged)


def topk_route(scores, capacity=None, k=1, priority="score"):
    """Top-k gating with a capacity: each token asks for its k best experts.

    First choices of all tokens are served before second choices, and so on; within a round the
    tokens come in order of `priority`.  An expert that has reached its capacity drops the
    token (for that choice).  The weights are the gate probabilities softmax(S) of the experts a
    token kept, renormalised over them.

    Parameters
    ----------
    scores : array (n, E)
        Scores of the n tokens for the E experts (e.g. the gating logits), higher is better;
        finite.
    capacity : int, optional
        Most tokens an expert may process (>= 1).  Default: ceil(n / E), exactly balanced.
    k : int, default 1
        Experts per token (1 <= k <= E).
    priority : {'score', 'order'}, default 'score'
        Order of the tokens in each round: 'score', highest gate probability first ("batch
        prioritised routing"); 'order', token order.

    Returns
    -------
    RoutingResult
        k slots per token; converged is True.

    Raises
    ------
    ValueError
        If scores is not 2-D, is empty or has NaN or infinite entries; if capacity < 1; if k < 1
        or k > E; if `priority` is not 'score' or 'order'.
    TypeError
        If capacity or k is not an integer, priority is not a string or scores is not a real
        numeric array.

    See Also
    --------
    sinkhorn_route, sparse_ot_route : OT routers that balance the load.
    route : any router by name.

    References
    ----------
    N. Shazeer et al., "Outrageously large neural networks: the sparsely-gated mixture-of-experts
    layer", ICLR 2017.
    D. Lepikhin et al., "GShard: scaling giant models with conditional computation and automatic
    sharding", ICLR 2021.
    C. Riquelme et al., "Scaling vision with sparse mixture of experts", NeurIPS 2021 (batch
    prioritised routing).

    Examples
    --------
    >>> from monge.routing import topk_route
    >>> r = topk_route([[2.0, 0.0], [1.5, 0.0], [0.0, 1.0], [1.0, 0.5]], capacity=2)
    >>> r.experts.ravel().tolist(), r.dropped         # token 3 finds expert 0 full
    ([0, 0, 1, -1], 1)
    """
    S = _scores(scores)
    n, E = S.shape
    capacity = _capacity(capacity, n, E)
    k = integer("k", k, 1)
    if k > E:
        raise ValueError(f"k: must be <= the number of experts ({E}), got {k}")
    choice("priority", priority, ("score", "order"))
    G = _softmax(S)
    top = np.argsort(-S, axis=1, kind="stable")[:, :k]
    load = np.zeros(E, dtype=np.int64)
    kept = [[] for _ in range(n)]
    for r in range(k):
        gr = G[np.arange(n), top[:, r]]
        order = np.argsort(-gr, kind="stable") if priority == "score" else np.arange(n)
        for i in order:
            j = top[i, r]
            if load[j] < capacity:
                load[j] += 1
                kept[i].append(j)
    lists = []
    for i in range(n):
        g = G[i, kept[i]]
        s = g.sum()
        lists.append([(j, gj / s) for j, gj in zip(kept[i], g)])
    return _result(lists, n, E, capacity, k, True)


def sinkhorn_route(scores, capacity=None, eps=0.05, max_iter=2000, tol=1e-4):
    """Balanced entropic routing: Sinkhorn between the tokens and the experts, then argmax.

    Balanced entropic OT between uniform tokens (mass 1/n each) and uniform experts (1/E each)
    on the standardised cost C = -(S - mean S) / std S, P = monge.sinkhorn(C=C, eps=eps).plan();
    every token goes to the expert of its largest plan entry, and an expert over capacity keeps
    its tokens of largest plan entry (the others are dropped).  Combine weight 1.

    Parameters
    ----------
    scores : array (n, E)
        Scores of the n tokens for the E experts (e.g. the gating logits), higher is better;
        finite.
    capacity : int, optional
        Most tokens an expert may process (>= 1).  Default: ceil(n / E), exactly balanced.
    eps : float, default 0.05
        Entropic regularisation (> 0), in units of the score spread (the cost is standardised).
    max_iter : int, default 2000
        Most Sinkhorn iterations (>= 1).
    tol : float, default 1e-4
        Sinkhorn stops when the L1 marginal violation is <= tol.

    Returns
    -------
    RoutingResult
        One slot per token, weight 1; converged says whether Sinkhorn converged (no warning is
        raised when it did not).

    Raises
    ------
    ValueError
        If scores is not 2-D, is empty or has NaN or infinite entries; if capacity < 1; if eps
        is not a positive finite number; if max_iter < 1; if tol < 0.
    TypeError
        If capacity or max_iter is not an integer, eps or tol is not a real number, or scores is
        not a real numeric array.

    See Also
    --------
    monge.sinkhorn : the solver run here.
    sparse_ot_route : routing that respects the capacity in the OT problem itself.

    References
    ----------
    M. Lewis, S. Bhosale, T. Dettmers, N. Goyal and L. Zettlemoyer, "BASE layers: simplifying
    training of large, sparse models", ICML 2021.
    A. Clark et al., "Unified scaling laws for routed language models", ICML 2022 (Sinkhorn
    routing, S-BASE).

    Examples
    --------
    >>> from monge.routing import sinkhorn_route
    >>> r = sinkhorn_route([[2.0, 0.0], [1.5, 0.0], [0.0, 1.0], [1.0, 0.5]], capacity=2)
    >>> r.experts.ravel().tolist(), r.load.tolist()
    ([0, 0, 1, 1], [2, 2])
    """
    S = _scores(scores)
    n, E = S.shape
    capacity = _capacity(capacity, n, E)
    eps = positive("eps", eps)
    C = _standardised_cost(S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sinkhorn(C=C, eps=eps, max_iter=integer("max_iter", max_iter, 1), tol=tol)
    P = res.plan()
    best = np.argmax(P, axis=1)
    pbest = P[np.arange(n), best]
    load = np.zeros(E, dtype=np.int64)
    kept = [[] for _ in range(n)]
    for i in np.argsort(-pbest, kind="stable"):
        j = best[i]
        if load[j] < capacity:
            load[j] += 1
            kept[i].append((j, 1.0))
    return _result(kept, n, E, capacity, 1, bool(res.converged))


def sparse_ot_route(scores, capacity=None, gamma=0.5, max_iter=500, max_experts=None):
    """k-sparse OT routing: sparsity-constrained OT with the capacity as the per-expert k.

    The plan of :func:`monge.sparse_ot` between uniform tokens (rows) and uniform experts
    (columns) on the standardised cost C = -(S - mean S) / std S, with k = capacity nonzeros per
    expert column, so that no expert exceeds its capacity.  A token is dispatched to the experts
    of its nonzero plan entries (at most `max_experts` of them, the largest, when given) with
    weights its normalised plan row; tokens whose row is empty are dropped.

    Parameters
    ----------
    scores : array (n, E)
        Scores of the n tokens for the E experts (e.g. the gating logits), higher is better;
        finite.
    capacity : int, optional
        Most tokens an expert may process (>= 1).  Default: ceil(n / E), exactly balanced.
    gamma : float, default 0.5
        Regularisation (> 0), in units of the score spread: the solver's regularisation is
        gamma * n, i.e. a margin of gamma standard deviations between a token's score and its
        expert's threshold is worth a full token.
    max_iter : int, default 500
        Most L-BFGS iterations (>= 1).
    max_experts : int, optional
        Most experts per token (>= 1); None for every expert of its plan row.

    Returns
    -------
    RoutingResult
        As many slots as the most experts of a token (at least 1); converged says whether the
        sparse-OT solve converged (no warning is raised when it did not).

    Raises
    ------
    ValueError
        If scores is not 2-D, is empty or has NaN or infinite entries; if capacity < 1; if gamma
        is not a positive finite number; if max_iter < 1 or max_experts < 1.
    TypeError
        If capacity, max_iter or max_experts is not an integer, gamma is not a real number, or
        scores is not a real numeric array.

    See Also
    --------
    monge.sparse_ot : the solver run here.
    sinkhorn_route, topk_route : the other routers.

    References
    ----------
    T. Liu, J. Puigcerver and M. Blondel, "Sparsity-constrained optimal transport", ICLR 2023.

    Examples
    --------
    >>> from monge.routing import sparse_ot_route
    >>> r = sparse_ot_route([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0], [1.0, 1.0]], capacity=3)
    >>> r.combine_matrix().round(4).tolist(), r.load.tolist()     # tokens 2 and 3 split
    ([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.5, 0.5]], [3, 3])
    """
    S = _scores(scores)
    n, E = S.shape
    capacity = _capacity(capacity, n, E)
    gamma = positive("gamma", gamma)
    if max_experts is not None:
        max_experts = integer("max_experts", max_experts, 1)
    C = _standardised_cost(S)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = sparse_ot(None, None, C, capacity, gamma * n, max_iter=integer("max_iter", max_iter, 1))
    rows, cols, vals = res.plan.tocoo()
    per = [[] for _ in range(n)]
    for i, j, v in zip(rows, cols, vals):
        per[i].append((j, v))
    lists = []
    for lst in per:
        lst.sort(key=lambda t: -t[1])
        if max_experts is not None:
            lst = lst[:max_experts]
        s = sum(v for _, v in lst)
        lists.append([(j, v / s) for j, v in lst])
    slots = max(1, max((len(x) for x in lists), default=1))
    return _result(lists, n, E, capacity, slots, bool(res.converged))


ROUTERS = {"topk": topk_route, "sinkhorn": sinkhorn_route, "sparse_ot": sparse_ot_route}
"""The routers by method name, as :func:`route` looks them up.

'topk' is :func:`topk_route`, 'sinkhorn' :func:`sinkhorn_route` and 'sparse_ot'
:func:`sparse_ot_route`.
"""


def route(scores, method="sparse_ot", capacity=None, **kw):
    """Dispatch tokens to experts with the router named `method`.

    Parameters
    ----------
    scores : array (n, E)
        Scores of the n tokens for the E experts, higher is better.
    method : {'topk', 'sinkhorn', 'sparse_ot'}, default 'sparse_ot'
        The router: :func:`topk_route`, :func:`sinkhorn_route` or :func:`sparse_ot_route`
        (:data:`ROUTERS`).
    capacity : int, optional
        Most tokens an expert may process (>= 1).  Default: ceil(n / E), exactly balanced.
    **kw
        The router's other options: k, priority (topk); eps, max_iter, tol (sinkhorn); gamma,
        max_iter, max_experts (sparse_ot).

    Returns
    -------
    RoutingResult
        The router's dispatch.

    Raises
    ------
    ValueError
        If `method` is not one of the three routers, or as the router does on its arguments.
    TypeError
        If `method` is not a string, a keyword of `kw` is not an option of the router, or as the
        router does on its arguments.

    See Also
    --------
    topk_route, sinkhorn_route, sparse_ot_route : the routers.
    capacity_from_factor : a capacity from a capacity factor.

    Examples
    --------
    >>> from monge.routing import route
    >>> route([[2.0, 0.0], [1.5, 0.0], [0.0, 1.0], [1.0, 0.5]], method="topk", capacity=2).dropped
    1
    """
    choice("method", method, tuple(ROUTERS))
    return ROUTERS[method](scores, capacity=capacity, **kw)
