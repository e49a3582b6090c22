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
    """Dispatch of n tokens to E experts.

    experts     (n, slots) int: the experts of each token, -1 in unused slots
    weights     (n, slots) float: combine weights (0 in unused slots)
    dropped     number of tokens dispatched to no expert
    load        (E,) int: tokens dispatched to each expert (<= capacity)
    capacity    the capacity the router enforced
    converged   whether the OT solve behind the router converged (True for top-k)
    """

    experts: np.ndarray
    weights: np.ndarray
    dropped: int
    load: np.ndarray
    capacity: int
    converged: bool = True

    @property
    def n_experts(self):
        return self.load.shape[0]

    def dispatch_mask(self):
        """(n, E) bool: token i is dispatched to expert j."""
        n = self.experts.shape[0]
        mask = np.zeros((n, self.n_experts), dtype=bool)
        rows, slots = np.nonzero(self.experts >= 0)
        mask[rows, self.experts[rows, slots]] = True
        return mask

    def combine_matrix(self):
        """(n, E) float: the combine weight of expert j for token i (0 when not dispatched)."""
        n = self.experts.shape[0]
        out = np.zeros((n, self.n_experts))
        rows, slots = np.nonzero(self.experts >= 0)
        out[rows, self.experts[rows, slots]] = self.weights[rows, slots]
        return out

    def balance(self):
        """max load / mean load over the experts (1 = perfectly balanced; inf if nothing routed)."""
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
    """ceil(factor * n_tokens / n_experts): the usual capacity-factor convention."""
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
    """Top-k gating with a capacity: each token asks for its k best experts, first choices of all
    tokens before second choices, tokens in order of `priority` ('score': highest gate probability
    first; 'order': token order); an expert past its capacity drops the token."""
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
    """Balanced entropic routing: Sinkhorn between uniform tokens and uniform experts on the
    standardised cost -S, then every token to the expert of its largest plan entry, each expert
    keeping at most `capacity` tokens (those of largest plan entry)."""
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
    """k-sparse OT routing: the plan of monge.sparse_ot between uniform tokens (rows) and uniform
    experts (columns) on the standardised cost -S with k = capacity nonzeros per expert column, so
    that no expert exceeds its capacity.  A token is dispatched to the experts of its nonzero plan
    entries (at most `max_experts` of them, the largest, when given) with weights its normalised
    plan row; tokens whose row is empty are dropped."""
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


def route(scores, method="sparse_ot", capacity=None, **kw):
    """Dispatch with the router `method` ('topk', 'sinkhorn' or 'sparse_ot'); see each router."""
    choice("method", method, tuple(ROUTERS))
    return ROUTERS[method](scores, capacity=capacity, **kw)
