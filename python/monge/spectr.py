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
    """Outcome of a K-SEQ draft selection, for one position or a batch of positions.

    Returned by :func:`kseq_select`, :func:`kseq_sample` and :func:`speculative_sample`.  For a
    single position the fields are Python scalars and `drafts` has shape (k,); for a batch of B
    positions each field is an array with one entry per position and `drafts` has shape (B, k).

    Attributes
    ----------
    token : int or ndarray of int64, shape (B,)
        The selected token(s).  When the drafts are drawn i.i.d. from p, the token is distributed
        exactly as q.
    index : int or ndarray of int64, shape (B,)
        Which draft was accepted (0-based), or -1 when the token came from the residual
        distribution (see :func:`residual_distribution`).
    accepted : bool or ndarray of bool, shape (B,)
        ``index >= 0``.
    rho : float or ndarray of float64, shape (B,)
        The K-SEQ rho* used at each position (see :func:`kseq_rho`); 1 for speculative sampling.
    drafts : ndarray of int64, shape (k,) or (B, k)
        The drafts, as given, or as drawn by :func:`kseq_sample`.

    See Also
    --------
    kseq_select, kseq_sample, speculative_sample

    Examples
    --------
    When q = p, rho* = 1 and the first draft is always accepted:

    >>> from monge.spectr import kseq_select
    >>> sel = kseq_select([0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [2, 0], seed=0)
    >>> sel.token, sel.index, sel.accepted, sel.rho
    (2, 0, True, 1.0)
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
    """Probability that one draft from p passes K-SEQ's acceptance test at a given rho.

    The test accepts a draft X ~ p with probability ``min(1, q(X) / (rho p(X)))``, so one draft is
    accepted with probability ::

        beta(rho) = sum_x min(p(x), q(x) / rho).

    Computed in NumPy (no call into the C core).  ``beta(1)`` is :func:`speculative_acceptance`.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution (the small model's next-token probabilities), one row or one per
        position.  Non-negative, each row summing to 1 within `SUM_TOL` (it is then normalised
        exactly).
    q : array_like, shape (V,) or (B, V)
        Target distribution (the large model's), with the same conventions.  A single row of p or
        q is shared by every position of a batch.
    rho : float or array_like of float, shape (B,)
        K-SEQ's rho, finite and >= 1; one value for all positions, or one per position.

    Returns
    -------
    float or ndarray of float64, shape (B,)
        A float when p and q are single rows and rho is a scalar; otherwise one value per
        position.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array (a torch tensor or a sparse matrix included).
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row whose sum differs from 1 by more than `SUM_TOL`; if p and q have different
        vocabulary sizes or different numbers of rows (neither being 1); if rho is not finite or
        is below 1.

    See Also
    --------
    kseq_rho : The rho at which K-SEQ runs.
    kseq_acceptance : ``1 - (1 - beta(rho*))^k``, K-SEQ's acceptance with k drafts.
    speculative_acceptance : ``beta(1)``.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    >>> from monge.spectr import beta
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> round(beta(p, q, 1.0), 6), round(beta(p, q, 1.5), 6)
    (0.7, 0.533333)
    """
    P, Q, single = _pair(p, q)
    r = np.asarray(rho, dtype=np.float64)
    if not np.isfinite(r).all() or (r < 1).any():
        raise ValueError("rho: must be finite and >= 1")
    out = np.minimum(P, Q / np.reshape(r, (-1, 1))).sum(axis=1)
    return out[0].item() if single and r.ndim == 0 else out


def speculative_acceptance(p, q):
    """Acceptance probability of standard speculative sampling with one draft.

    Speculative sampling couples the draft X ~ p and the emitted token Y ~ q maximally, so the
    draft is accepted with probability ::

        sum_x min(p(x), q(x)) = 1 - TV(p, q),

    TV being the total-variation distance.  This equals :func:`kseq_acceptance` and
    :func:`optimal_acceptance` at k = 1.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution, one row or one per position: non-negative, each row summing to 1
        within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.

    Returns
    -------
    float or ndarray of float64, shape (B,)
        A float when p and q are single rows, else one value per position.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`; if the vocabulary sizes or the numbers of rows
        (neither being 1) differ.

    See Also
    --------
    speculative_sample : Draws the token this probability refers to.
    kseq_acceptance : The acceptance with k drafts.
    optimal_acceptance : The best acceptance any selection rule reaches with k drafts.

    References
    ----------
    Leviathan, Kalman and Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023.

    Chen et al., "Accelerating Large Language Model Decoding with Speculative Sampling",
    arXiv:2302.01318, 2023.

    Examples
    --------
    >>> from monge.spectr import speculative_acceptance
    >>> round(speculative_acceptance([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]), 6)
    0.7
    """
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
    """K-SEQ's rho*, the smallest rho whose residual is a distribution.

    rho* is the root in [1, k] of ::

        h(rho) = 1 - (1 - beta(rho))^k - rho beta(rho) = 0,

    with ``beta`` as in :func:`beta`; K-SEQ's residual distribution is non-negative exactly when
    ``h(rho) <= 0``.  The solve is exact: beta is ``A + B / rho`` between consecutive ratios q/p,
    the piece holding the root is found by a scan of the sorted ratios, and the root is solved in
    it by safeguarded Newton; the returned rho satisfies ``h(rho) <= 0`` as computed.  k = 1
    gives 1.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution, one row or one per position: non-negative, each row summing to 1
        within `SUM_TOL` (then normalised exactly).
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    k : int or array_like of int, shape (B,)
        Number of i.i.d. drafts, >= 1: one for all positions, or one per position.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    float or ndarray of float64, shape (B,)
        A float when p and q are single rows and k is an integer, else one value per position.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array, if k is neither an integer nor an integer array
        (booleans are refused), or if nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`; if the vocabulary sizes or numbers of rows of p
        and q differ; if k is below 1, is an array that is not 1-D, or has a length that does not
        match the positions of p and q; if nthreads is below 1.

    See Also
    --------
    kseq_acceptance : The acceptance K-SEQ reaches at rho*.
    residual_distribution : The distribution K-SEQ samples from after rejecting every draft.
    beta : The one-draft acceptance at a given rho.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    >>> from monge.spectr import kseq_rho
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> kseq_rho(p, q, 1), round(kseq_rho(p, q, 2), 6)
    (1.0, 1.456776)
    """
    rho, _, single = _rho_call(p, q, k, nthreads)
    return _out(rho, single)


def kseq_acceptance(p, q, k, nthreads=None):
    """Probability that K-SEQ accepts one of k i.i.d. drafts from p.

    With rho* from :func:`kseq_rho`, the acceptance is ::

        1 - (1 - beta(rho*))^k.

    By the SpecTr paper's theorem it is at least ``1 - (1 - 1/k)^k >= 1 - 1/e`` times the optimum
    :func:`optimal_acceptance` (measured in tests/test_spectr.py).

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution, one row or one per position: non-negative, each row summing to 1
        within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    k : int or array_like of int, shape (B,)
        Number of i.i.d. drafts, >= 1: one for all positions, or one per position.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    float or ndarray of float64, shape (B,)
        A float when p and q are single rows and k is an integer, else one value per position.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array, if k is neither an integer nor an integer array,
        or if nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`; if the vocabulary sizes or numbers of rows of p
        and q differ; if k is below 1 or its length does not match the positions; if nthreads
        is below 1.

    See Also
    --------
    kseq_rho : The rho* the acceptance is computed at.
    optimal_acceptance : The best acceptance over all couplings.
    kseq_sample : A Monte Carlo estimate (``accepted.mean()``).
    speculative_acceptance : The case k = 1.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.spectr import kseq_acceptance
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> kseq_acceptance(p, q, np.array([1, 2, 3])).round(6)
    array([0.7     , 0.791355, 0.858519])
    """
    _, acc, single = _rho_call(p, q, k, nthreads)
    return _out(acc, single)


def residual_distribution(p, q, k=1, nthreads=None):
    """The distribution K-SEQ samples from when all k drafts are rejected.

    With rho* from :func:`kseq_rho` and ``beta = beta(rho*)`` (see :func:`beta`) ::

        p_res(x) = [q(x) - c min(p(x), q(x)/rho*)] / (1 - beta(rho*))^k,
        c = (1 - (1 - beta)^k) / beta   (= (q - rho* p)_+ normalised at the root).

    Drawing from p_res after k rejections makes the emitted token exactly q-distributed.  k = 1
    is speculative sampling's ``(q - p)_+ / sum (q - p)_+``.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution, one row or one per position: non-negative, each row summing to 1
        within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    k : int or array_like of int, shape (B,), default 1
        Number of i.i.d. drafts, >= 1: one for all positions, or one per position.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    ndarray of float64, shape (V,) or (B, V)
        Entries >= 0, rows summing to 1; where the residual is never used ((1 - beta)^k = 0,
        e.g. p = q), q itself.  Shape (V,) when p and q are single rows and k is an integer.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array, if k is neither an integer nor an integer array,
        or if nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`; if the vocabulary sizes or numbers of rows of p
        and q differ; if k is below 1 or its length does not match the positions; if nthreads
        is below 1.

    See Also
    --------
    kseq_rho : The rho* the residual is taken at.
    kseq_select : Selection that falls back on this distribution.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Leviathan, Kalman and Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023 (the case k = 1).

    Examples
    --------
    >>> from monge.spectr import residual_distribution
    >>> p, q = [0.6, 0.2, 0.2], [0.2, 0.3, 0.5]
    >>> residual_distribution(p, q)                # (q - p)_+ normalised
    array([0.  , 0.25, 0.75])
    >>> residual_distribution(p, q, k=2).round(6)
    array([0.      , 0.034169, 0.965831])
    """
    P, Q, single = _pair(p, q)
    K, k_scalar = _counts("k", k, P.shape[0])
    P, Q, B = _batch(P, Q, K)
    if K.shape[0] == 1 and B > 1:
        K = np.full(B, K[0], dtype=np.int64)
    out = _core.spectr_residual(P, Q, K, nthreads=_nthreads(nthreads))
    return out[0] if single and k_scalar else out


def optimal_acceptance(p, q, k, nthreads=None):
    """Exact optimal acceptance of OT with membership cost, for k i.i.d. drafts from p and Y ~ q.

    The transport problem couples the drafts X_1..X_k ~ p (i.i.d.) with the emitted token Y ~ q
    under the membership cost ``1{Y not in {X_1..X_k}}``; its value is ::

        alpha*(p, q, k) = min_A  q(A^c) + 1 - (1 - p(A))^k,

    the largest P(Y in {X_1..X_k}) over all couplings (A ranges over the subsets of the
    vocabulary).  Computed in O(V log V) by scanning the level sets of q/p (the minimiser is one
    of them because 1 - (1 - s)^k is concave; csrc/spectr.h gives the argument).  No selection
    rule accepts more often; K-SEQ (:func:`kseq_acceptance`) reaches at least 1 - 1/e of it.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution, one row or one per position: non-negative, each row summing to 1
        within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    k : int or array_like of int, shape (B,)
        Number of i.i.d. drafts, >= 1: one for all positions, or one per position.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    float or ndarray of float64, shape (B,)
        A float when p and q are single rows and k is an integer, else one value per position.

    Raises
    ------
    TypeError
        If p or q is not a real numeric array, if k is neither an integer nor an integer array,
        or if nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`; if the vocabulary sizes or numbers of rows of p
        and q differ; if k is below 1 or its length does not match the positions; if nthreads
        is below 1.

    See Also
    --------
    kseq_acceptance : What K-SEQ reaches.
    speculative_acceptance : The optimum for k = 1.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    >>> from monge.spectr import kseq_acceptance, optimal_acceptance
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> round(optimal_acceptance(p, q, 2), 6), kseq_acceptance(p, q, 2) <= optimal_acceptance(p, q, 2)
    (0.86, True)
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

    Draft i (in order) is accepted with probability ``min(1, q(X_i) / (rho* p(X_i)))``, rho* from
    :func:`kseq_rho`; if every draft is rejected, the token is drawn from
    :func:`residual_distribution`.  The emitted token is then distributed exactly as q.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution (one row shared by every position, or one per position):
        non-negative, each row summing to 1 within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.
    drafts : array_like of int, shape (k,) or (B, k)
        Token ids of the drafts, in [0, V), for one position or per position.  Shape (k,) needs
        single rows p and q.
    n_drafts : array_like of int, shape (B,), optional
        Position b uses its first n_drafts[b] drafts (default: all k); each in [1, k].
    seed : int >= 0, numpy Generator or None
        Seeds the selection (None: fresh entropy).  Randomness is counter-based: position b
        uses the stream (seed, stream + b), so results do not depend on the number of threads.
    stream : int >= 0, default 0
        Offset of the positions' random streams, so successive calls with one seed stay
        independent.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).
    check : bool, default True
        False skips the Python-side checks and normalisation (for decoding loops that call this
        per token): p and q must then be 1-D float64 rows that already sum to 1 to rounding,
        drafts a 1-D int64 array and seed an int; the C core still rejects invalid values
        (ValueError), only the messages naming the argument are lost.

    Returns
    -------
    Selection
        Its token is distributed exactly as q when the drafts are drawn from p.  Scalar fields
        for drafts of shape (k,), arrays of shape (B,) for drafts of shape (B, k).

    Raises
    ------
    TypeError
        If p or q is not a real numeric array; if drafts or n_drafts does not hold integers;
        if seed (other than None or a Generator), stream or nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`, or if their shapes disagree; if drafts is not
        1-D or 2-D, is empty, holds an id outside [0, V), is 1-D while p or q is a batch, or has a
        number of rows that does not match p and q; if n_drafts is below 1, above the number of
        drafts or of the wrong length; if seed, stream or nthreads is out of range.  With
        ``check=False`` the C core raises ValueError on invalid values.

    See Also
    --------
    kseq_sample : Draws the drafts too.
    speculative_sample : The one-draft case.
    kseq_acceptance : The probability that a draft is accepted.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    A draft that q never emits is always rejected; the token then comes from the residual:

    >>> from monge.spectr import kseq_select
    >>> sel = kseq_select([0.5, 0.5], [0.0, 1.0], [0, 0], seed=0)
    >>> sel.token, sel.index, sel.accepted
    (1, -1, False)
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
    """Draw k drafts i.i.d. from p and select among them with K-SEQ.

    Runs at `size` positions (or one position per row of a batched p, q).  For Monte Carlo
    checks: the tokens are distributed as q and ``accepted.mean()`` estimates
    :func:`kseq_acceptance`.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution: non-negative, each row summing to 1 within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    k : int
        Number of drafts drawn at each position, >= 1.
    size : int, optional
        Number of positions.  p and q must then be single rows or have `size` rows.  None: one
        position per row of p, q (a single position, with scalar fields, for rows of shape (V,)).
    seed : int >= 0, numpy Generator or None
        Seeds the drafts and the selection (None: fresh entropy); position b uses the stream
        (seed, stream + b).
    stream : int >= 0, default 0
        Offset of the positions' random streams, so successive calls with one seed stay
        independent.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    Selection
        Its `drafts` are the drawn drafts, shape (k,) for a single position, else (B, k).

    Raises
    ------
    TypeError
        If p or q is not a real numeric array; if k, size, seed (other than None or a Generator),
        stream or nthreads is not an integer.
    ValueError
        If p or q is not 1-D or 2-D, is empty, holds NaN, infinite or negative entries, or has a
        row not summing to 1 within `SUM_TOL`, or if their shapes disagree; if k or size is below
        1; if size differs from the number of rows of a batched p, q; if seed, stream or nthreads
        is out of range.

    See Also
    --------
    kseq_select : Selection among given drafts.
    kseq_acceptance : The exact acceptance the sample estimates.

    References
    ----------
    Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023.

    Examples
    --------
    >>> from monge.spectr import kseq_acceptance, kseq_sample
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> sel = kseq_sample(p, q, 2, size=100_000, seed=0)
    >>> sel.drafts.shape, bool(abs(sel.accepted.mean() - kseq_acceptance(p, q, 2)) < 0.01)
    ((100000, 2), True)
    """
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
    """Standard speculative sampling of one draft (K-SEQ with k = 1, rho = 1).

    Accepts `draft` with probability ``min(1, q(draft) / p(draft))``, else draws the token from
    ``(q - p)_+`` normalised; the token is then distributed exactly as q when the draft is drawn
    from p.

    Parameters
    ----------
    p : array_like, shape (V,) or (B, V)
        Draft distribution: non-negative, each row summing to 1 within `SUM_TOL`.
    q : array_like, shape (V,) or (B, V)
        Target distribution, with the same conventions.  A single row is shared by a batch.
    draft : int or array_like of int, shape (B,)
        A token id in [0, V) (p and q of shape (V,)), or one id per position.
    seed : int >= 0, numpy Generator or None
        Seeds the test (None: fresh entropy); position b uses the stream (seed, stream + b).
    stream : int >= 0, default 0
        Offset of the positions' random streams.
    nthreads : int, optional
        Threads for a batch (default: monge.get_num_threads()).

    Returns
    -------
    Selection
        Scalar fields for a single id, arrays of shape (B,) for (B,) ids; `rho` is 1.

    Raises
    ------
    TypeError
        If draft does not hold integers; if p or q is not a real numeric array; if seed (other
        than None or a Generator), stream or nthreads is not an integer.
    ValueError
        If draft has more than one dimension or holds an id outside [0, V); if a single id is
        given for a batch of distributions, or the number of ids does not match their rows; if p
        or q is invalid as in :func:`kseq_select`; if seed, stream or nthreads is out of range.

    See Also
    --------
    speculative_acceptance : The probability that the draft is accepted.
    kseq_select : The k-draft generalisation.

    References
    ----------
    Leviathan, Kalman and Matias, "Fast Inference from Transformers via Speculative Decoding",
    ICML 2023.

    Chen et al., "Accelerating Large Language Model Decoding with Speculative Sampling",
    arXiv:2302.01318, 2023.

    Examples
    --------
    Token 1 has q/p = 1 and is always accepted; token 0 is kept or replaced by token 2:

    >>> from monge.spectr import speculative_sample
    >>> p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    >>> speculative_sample(p, q, [1, 1], seed=0).token, speculative_sample(p, q, 0, seed=3).token in (0, 2)
    (array([1, 1]), True)
    """
    d = np.asarray(draft)
    if d.dtype == bool or d.dtype.kind not in "iu":
        raise TypeError(f"draft: expected integer token ids, got dtype {d.dtype}")
    if d.ndim > 1:
        raise ValueError(f"draft: expected a token id or shape (B,), got {d.shape}")
    return kseq_select(p, q, d.reshape(-1, 1) if d.ndim == 1 else d.reshape(1), seed=seed,
                       stream=stream, nthreads=nthreads)
