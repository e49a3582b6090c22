"""SpecTr: draft selection for speculative decoding as optimal transport (mirrors csrc/spectr.c).

Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.  Notation of the
paper: ``p`` is the DRAFT distribution (the small model's next-token distribution), ``q`` the
TARGET distribution (the large model's).  k drafts X_1..X_k ~ p i.i.d.; a selection rule outputs
Y ~ q exactly and *accepts* when Y is one of the drafts (membership cost 1{Y not in {X_i}}).

Standard speculative sampling (k = 1, the maximal coupling): accept X with probability
min(1, q(X)/p(X)), otherwise draw from (q - p)_+ / sum (q - p)_+; acceptance sum_x min(p(x), q(x)).

K-SEQ (k drafts), with  beta(rho) = sum_x min(p(x), q(x)/rho):
    draft i (in order) is accepted with probability min(1, q(X_i) / (rho p(X_i)));
    if all are rejected, Y ~ p_res with
        p_res(x) = [q(x) - c(rho) min(p(x), q(x)/rho)] / (1 - beta(rho))^k,
        c(rho)   = (1 - (1 - beta(rho))^k) / beta(rho),
    which gives Y ~ q exactly.  p_res >= 0 iff 1 - (1 - beta)^k <= rho beta, so the best rho is
    rho*, the root in [1, k] of  1 - (1 - beta(rho))^k = rho beta(rho);  there the acceptance is
    1 - (1 - beta(rho*))^k and p_res = (q - rho* p)_+ / (1 - beta(rho*))^k.
    K-SEQ's acceptance is at least (1 - (1 - 1/k)^k) >= 1 - 1/e times the optimum (the paper's
    theorem; measured in tests/test_spectr.py).

Optimal acceptance with k i.i.d. drafts (the OT problem's value):
    alpha*(p, q, k) = min_{A subset of the vocabulary} q(A^c) + 1 - (1 - p(A))^k,
    computed exactly in O(V log V): the minimum is attained at an upper level set of q/p
    (csrc/spectr.h gives the argument).

Every function takes p and q of shape (V,) or (B, V) (a batch of positions; a single row is shared
by the batch), and k as an integer or one per position.  Rows must be non-negative and sum to 1
within SUM_TOL (they are then normalised exactly).  Randomness is counter-based: position b of a
call uses the stream (seed, stream + b), so results do not depend on the number of threads.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import float_array, integer

__all__ = ["SUM_TOL", "Selection", "beta", "kseq_rho", "kseq_acceptance", "residual_distribution",
           "kseq_select", "kseq_sample", "speculative_sample", "speculative_acceptance",
           "optimal_acceptance"]

#: tolerance on |sum(row) - 1| for p and q
SUM_TOL = 1e-6


@dataclass
class Selection:
    """Result of :func:`kseq_select` / :func:`kseq_sample` / :func:`speculative_sample`.

    token     the selected token(s), distributed as q
    index     which draft was accepted (0-based), -1 when the token came from the residual
    accepted  index >= 0
    rho       the K-SEQ rho* used at each position
    drafts    the drafts (as given, or as drawn by :func:`kseq_sample`)
    """

    token: int | np.ndarray
    index: int | np.ndarray
    accepted: bool | np.ndarray
    rho: float | np.ndarray
    drafts: np.ndarray


# ------------------------------------------------------------------ validation

def _distribution(name, value):
    arr = float_array(name, value, (1, 2), dtype=np.float64)
    if (arr < 0).any():
        raise ValueError(f"{name}: probabilities must be non-negative")
    s = arr.sum(axis=-1)
    bad = np.abs(s - 1) > SUM_TOL
    if bad.any():
        worst = float(np.ravel(s)[np.argmax(np.ravel(np.abs(s - 1)))])
        raise ValueError(f"{name}: does not sum to 1 (sum {worst:.8g}; tolerance {SUM_TOL:g})")
    return np.ascontiguousarray(arr / s[..., None])


def _pair(p, q):
    """p, q as 2-D float64 rows normalised exactly, plus whether the input was a single row."""
    P, Q = _distribution("p", p), _distribution("q", q)
    if P.shape[-1] != Q.shape[-1]:
        raise ValueError(f"p, q: vocabulary sizes differ ({P.shape[-1]} vs {Q.shape[-1]})")
    single = P.ndim == 1 and Q.ndim == 1
    P, Q = np.atleast_2d(P), np.atleast_2d(Q)
    if P.shape[0] != Q.shape[0]:
        if P.shape[0] == 1:
            P = np.ascontiguousarray(np.broadcast_to(P, Q.shape))
        elif Q.shape[0] == 1:
            Q = np.ascontiguousarray(np.broadcast_to(Q, P.shape))
        else:
            raise ValueError(f"p, q: batch sizes differ ({P.shape[0]} vs {Q.shape[0]})")
    return P, Q, single


def _counts(name, k, batch):
    """k as an int64 array of `batch` counts >= 1 (scalar k is broadcast); also: was it scalar."""
    if isinstance(k, (numbers.Integral, np.integer)) and not isinstance(k, bool):
        return np.full(batch, integer(name, k, minimum=1), dtype=np.int64), True
    arr = np.asarray(k)
    if arr.dtype == bool or arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected an integer or an integer array, got {arr.dtype}")
    if arr.ndim != 1 or (arr.shape[0] != batch and batch != 1):
        raise ValueError(f"{name}: expected an integer or shape ({batch},), got shape {arr.shape}")
    if (arr < 1).any():
        raise ValueError(f"{name}: must be >= 1")
    return np.ascontiguousarray(arr, dtype=np.int64), False


def _batch(P, Q, K):
    """Rows of p, q broadcast against the counts: (P, Q, B)."""
    B = max(P.shape[0], K.shape[0])
    if P.shape[0] not in (1, B):
        raise ValueError(f"k: {K.shape[0]} counts for {P.shape[0]} positions")
    return P, Q, B


def _seed(seed):
    if seed is None:
        return int(np.random.default_rng().integers(0, 2**63))
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    return integer("seed", seed, minimum=0) & (2**64 - 1)


def _nthreads(nthreads):
    return 0 if nthreads is None else integer("nthreads", nthreads, minimum=1)


def _out(arr, single):
    return arr[0].item() if single else arr


# ------------------------------------------------------------------ closed forms and kernels

def beta(p, q, rho):
    """beta(rho) = sum_x min(p(x), q(x) / rho): the probability that one draft X ~ p is accepted
    by K-SEQ's test min(1, q(X) / (rho p(X))).  NumPy; p, q of shape (V,) or (B, V)."""
    P, Q, single = _pair(p, q)
    r = np.asarray(rho, dtype=np.float64)
    if not np.isfinite(r).all() or (r < 1).any():
        raise ValueError("rho: must be finite and >= 1")
    out = np.minimum(P, Q / np.reshape(r, (-1, 1))).sum(axis=1)
    return out[0].item() if single and r.ndim == 0 else out


def speculative_acceptance(p, q):
    """Acceptance of standard speculative sampling (one draft, maximal coupling):
    sum_x min(p(x), q(x)) = 1 - TV(p, q)."""
    P, Q, single = _pair(p, q)
    return _out(np.minimum(P, Q).sum(axis=1), single)


def _rho_call(p, q, k, nthreads):
    P, Q, single = _pair(p, q)
    K, k_scalar = _counts("k", k, P.shape[0])
    P, Q, _ = _batch(P, Q, K)
    if K.shape[0] == 1 and P.shape[0] > 1:
        K = np.full(P.shape[0], K[0], dtype=np.int64)
    rho, acc = _core.spectr_rho(P, Q, K, nthreads=_nthreads(nthreads))
    return rho, acc, single and k_scalar


def kseq_rho(p, q, k, nthreads=None):
    """rho*, the root in [1, k] of  1 - (1 - beta(rho))^k = rho beta(rho)  (the smallest rho whose
    K-SEQ residual is a distribution).  Exact: beta is A + B/rho between consecutive ratios q/p, the
    piece holding the root is found by a scan of the sorted ratios and the root solved in it by
    safeguarded Newton; the returned rho satisfies h(rho) <= 0 as computed.  k = 1 gives 1."""
    rho, _, single = _rho_call(p, q, k, nthreads)
    return _out(rho, single)


def kseq_acceptance(p, q, k, nthreads=None):
    """Probability that K-SEQ with k i.i.d. drafts from p accepts one: 1 - (1 - beta(rho*))^k."""
    _, acc, single = _rho_call(p, q, k, nthreads)
    return _out(acc, single)


def residual_distribution(p, q, k=1, nthreads=None):
    """The distribution K-SEQ samples from when all k drafts are rejected.

    ::

        p_res(x) = [q(x) - c min(p(x), q(x)/rho*)] / (1 - beta(rho*))^k,
        c = (1 - (1 - beta)^k) / beta   (= (q - rho* p)_+ normalised at the root).

    k = 1 is speculative sampling's ``(q - p)_+ / sum (q - p)_+``.

    Parameters
    ----------
    p, q : arrays (V,) or (B, V)
        Draft and target distributions.
    k : int or array (B,)
        Number of i.i.d. drafts.
    nthreads : int, optional
        Threads for a batch.

    Returns
    -------
    array (V,) or (B, V)
        Entries >= 0, rows summing to 1; where the residual is never used ((1 - beta)^k = 0,
        e.g. p = q), q itself.
    """
    P, Q, single = _pair(p, q)
    K, k_scalar = _counts("k", k, P.shape[0])
    P, Q, B = _batch(P, Q, K)
    if K.shape[0] == 1 and B > 1:
        K = np.full(B, K[0], dtype=np.int64)
    out = _core.spectr_residual(P, Q, K, nthreads=_nthreads(nthreads))
    return out[0] if single and k_scalar else out


def optimal_acceptance(p, q, k, nthreads=None):
    """Exact optimal acceptance of OT with membership cost for k i.i.d. drafts from p and Y ~ q.

    ::

        alpha*(p, q, k) = min_A  q(A^c) + 1 - (1 - p(A))^k,

    the largest P(Y in {X_1..X_k}) over all couplings.  Computed in O(V log V) by scanning the level
    sets of q/p (the minimiser is one of them because 1 - (1 - s)^k is concave).

    Parameters
    ----------
    p, q : arrays (V,) or (B, V)
        Draft and target distributions.
    k : int or array (B,)
        Number of i.i.d. drafts.
    nthreads : int, optional
        Threads for a batch.

    Returns
    -------
    float or array (B,)
    """
    P, Q, single = _pair(p, q)
    K, k_scalar = _counts("k", k, P.shape[0])
    P, Q, B = _batch(P, Q, K)
    if K.shape[0] == 1 and B > 1:
        K = np.full(B, K[0], dtype=np.int64)
    out = _core.spectr_optimal(P, Q, K, nthreads=_nthreads(nthreads))
    return _out(out, single and k_scalar)


# ------------------------------------------------------------------ selection

def _selection(res, single):
    idx = res["index"]
    if single:
        return Selection(token=int(res["token"][0]), index=int(idx[0]), accepted=bool(idx[0] >= 0),
                         rho=float(res["rho"][0]), drafts=res["drafts"][0])
    return Selection(token=res["token"], index=idx, accepted=idx >= 0, rho=res["rho"],
                     drafts=res["drafts"])


def kseq_select(p, q, drafts, n_drafts=None, seed=None, stream=0, nthreads=None, check=True):
    """K-SEQ draft selection: the token to emit given drafts drawn i.i.d. from p.

    Parameters
    ----------
    p, q : arrays (V,) or (B, V)
        Draft and target distributions (one row shared, or one per position).
    drafts : int array (k,) or (B, k)
        Token ids of the drafts, for one position or per position.
    n_drafts : int array (B,), optional
        Position b uses its first n_drafts[b] drafts (default: all k).
    seed : int >= 0, numpy Generator or None
        Seeds the selection (None: fresh entropy).
    stream : int
        Offset of the positions' random streams, so successive calls with one seed stay
        independent.
    nthreads : int, optional
        Threads for a batch.
    check : bool
        False skips the Python-side checks and normalisation (for decoding loops that call this
        per token): p and q must then be 1-D float64 rows that already sum to 1 to rounding,
        drafts a 1-D int64 array and seed an int; the C core still rejects invalid values
        (ValueError), only the messages naming the argument are lost.

    Returns
    -------
    Selection
        Its token is distributed exactly as q when the drafts are drawn from p.
    """
    if not check:
        res = _core.spectr_select(p.reshape(1, -1), q.reshape(1, -1), drafts.reshape(1, -1),
                                  seed=seed, stream=stream, nthreads=nthreads or 0)
        return _selection(res, True)
    P, Q, single_pq = _pair(p, q)
    V = P.shape[1]
    d = np.asarray(drafts)
    if d.ndim not in (1, 2) or d.size == 0:
        raise ValueError(f"drafts: expected shape (k,) or (B, k) with k >= 1, got {d.shape}")
    if d.dtype == bool or d.dtype.kind not in "iu":
        raise TypeError(f"drafts: expected integer token ids, got dtype {d.dtype}")
    single = d.ndim == 1
    d = np.atleast_2d(d).astype(np.int64)
    if (d < 0).any() or (d >= V).any():
        raise ValueError(f"drafts: token ids must be in [0, {V})")
    if single and not single_pq:
        raise ValueError("drafts: expected shape (B, k) for a batch of distributions")
    if P.shape[0] not in (1, d.shape[0]):
        raise ValueError(f"drafts: {d.shape[0]} positions for {P.shape[0]} distributions")
    nk = None
    if n_drafts is not None:
        nk, _ = _counts("n_drafts", n_drafts, d.shape[0])
        if nk.shape[0] != d.shape[0]:
            nk = np.full(d.shape[0], nk[0], dtype=np.int64)
        if (nk > d.shape[1]).any():
            raise ValueError(f"n_drafts: must be <= the number of drafts ({d.shape[1]})")
    res = _core.spectr_select(P, Q, d, nk=nk, seed=_seed(seed), stream=integer("stream", stream),
                              nthreads=_nthreads(nthreads))
    return _selection(res, single)


def kseq_sample(p, q, k, size=None, seed=None, stream=0, nthreads=None):
    """Draws k drafts i.i.d. from p and selects with K-SEQ, at `size` positions (or one position per
    row of a batched p, q).  Returns a :class:`Selection` whose `drafts` are the drawn drafts.
    For Monte Carlo checks: the tokens are distributed as q and `accepted.mean()` estimates
    :func:`kseq_acceptance`."""
    P, Q, single = _pair(p, q)
    kk = integer("k", k, minimum=1)
    if size is None:
        B = P.shape[0]
    else:
        B = integer("size", size, minimum=1)
        if P.shape[0] not in (1, B):
            raise ValueError(f"size: {B} positions for {P.shape[0]} distributions")
        single = False
    res = _core.spectr_select(P, Q, None, B=B, kmax=kk, seed=_seed(seed),
                              stream=integer("stream", stream), nthreads=_nthreads(nthreads))
    return _selection(res, single)


def speculative_sample(p, q, draft, seed=None, stream=0, nthreads=None):
    """Standard speculative sampling of one draft (K-SEQ with k = 1, rho = 1): accept `draft` with
    probability min(1, q/p), else draw from (q - p)_+ normalised.  `draft`: a token id (p, q of
    shape (V,)) or (B,) ids."""
    d = np.asarray(draft)
    if d.dtype == bool or d.dtype.kind not in "iu":
        raise TypeError(f"draft: expected integer token ids, got dtype {d.dtype}")
    if d.ndim > 1:
        raise ValueError(f"draft: expected a token id or shape (B,), got {d.shape}")
    return kseq_select(p, q, d.reshape(-1, 1) if d.ndim == 1 else d.reshape(1), seed=seed,
                       stream=stream, nthreads=nthreads)
