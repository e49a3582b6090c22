"""CTC loss (mirrors csrc/ctc.c): connectionist temporal classification with a hand-written gradient.

For a sample with frames t < T_n, log-probabilities lp[t, n, c] and target l_1..l_S, the loss is
-log p(l | x), p summing prod_t exp(lp[t, pi_t]) over the alignments pi of the blank-extended
target (Graves et al. 2006).  Conventions follow ``torch.nn.functional.ctc_loss``: time-major
log_probs (T, N, C), padded (N, S_max) or concatenated 1-D targets, reductions 'mean' (each loss
divided by its target length, then averaged), 'sum' and 'none', zero_infinity.

Gradients (hand-written, gamma_t(c) = posterior occupation of label c at frame t):
    grad='log_probs'   d loss / d lp[t, n, c] = -gamma_t(c)                  (lp free variables)
    grad='logits'      d loss / d z[t, n, c]  = softmax(lp)_c - gamma_t(c)    (lp = log_softmax(z));
                       this is what torch's ctc_loss reports as the gradient of its log_probs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import choice, integer

_MODES = {None: 0, False: 0, "log_probs": 1, "logits": 2}


@dataclass
class CTCResult:
    """Result of :func:`ctc_loss`.

    Attributes
    ----------
    loss
        the reduced loss (float), or per sample (N,) with reduction='none'
    per_sample
        -log p(l | x) per sample (N,), +inf where no alignment fits (0 with zero_infinity)
    grad
        gradient of `loss` (reduced as asked) with respect to log_probs or to the logits,
        shape (T, N, C) in log_probs' dtype; None unless requested.  With
        reduction='none' it is the gradient of loss.sum().  Zero for frames past
        input_lengths and for impossible samples.

    Examples
    --------
    >>> import numpy as np, monge
    >>> lp = np.log(np.array([[[0.4, 0.6]]]))             # (T, N, C) = (1, 1, 2)
    >>> r = monge.ctc_loss(lp, np.array([[1]]), np.array([1]), np.array([1]), grad="log_probs",
    ...                    reduction="none")
    >>> r.loss.round(6).tolist(), r.grad.round(4).tolist()
    ([0.510826], [[[0.0, -1.0]]])
    """

    loss: float | np.ndarray
    per_sample: np.ndarray
    grad: np.ndarray | None


def _int_vector(name, v, n):
    arr = np.asarray(v)
    if arr.dtype == object or arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.shape[0] != n:
        raise ValueError(f"{name}: expected {n} entries (one per sample), got {arr.shape[0]}")
    return arr


def prepare(log_probs, targets, input_lengths, target_lengths, blank):
    """Validated arrays for the C core: (lp, flat targets, offsets, input_lengths, target_lengths)."""
    lp = _log_probs(log_probs)
    if lp.ndim == 2:  # (T, C): one unbatched sample, as torch accepts
        lp = lp[:, None, :]
    T, N, C = lp.shape
    blank = integer("blank", blank)
    if blank >= C:
        raise ValueError(f"blank: must be < the number of classes C = {C}, got {blank}")
    il = _int_vector("input_lengths", input_lengths, N)
    tl = _int_vector("target_lengths", target_lengths, N)
    if (il < 1).any() or (il > T).any():
        k = int(np.argmax((il < 1) | (il > T)))
        raise ValueError(f"input_lengths: each must be in [1, T = {T}]; sample {k} has {il[k]}")
    if (tl < 0).any():
        raise ValueError(f"target_lengths: must be >= 0; sample {int(np.argmax(tl < 0))} is negative")
    tg = np.asarray(targets)
    if tg.dtype == object or tg.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integer labels, got dtype {tg.dtype}")
    tg = tg.astype(np.int64)
    if tg.ndim == 2:
        if tg.shape[0] != N:
            raise ValueError(f"targets: padded targets need shape (N = {N}, S_max), got {tg.shape}")
        if (tl > tg.shape[1]).any():
            k = int(np.argmax(tl > tg.shape[1]))
            raise ValueError(f"target_lengths: sample {k} has {tl[k]} > S_max = {tg.shape[1]}")
        flat = np.concatenate([tg[n, :tl[n]] for n in range(N)]) if N else tg.reshape(-1)
    elif tg.ndim == 1:
        if tl.sum() != tg.shape[0]:
            raise ValueError(f"targets: concatenated targets must have sum(target_lengths) = "
                             f"{int(tl.sum())} labels, got {tg.shape[0]}")
        flat = tg
    else:
        raise ValueError(f"targets: expected (N, S_max) or concatenated (sum of lengths,), got {tg.shape}")
    flat = np.ascontiguousarray(flat, dtype=np.int64)
    if flat.size and ((flat < 0).any() or (flat >= C).any()):
        raise ValueError(f"targets: labels must be in [0, C = {C})")
    if flat.size and (flat == blank).any():
        raise ValueError(f"targets: the blank label {blank} cannot appear in a target")
    offsets = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
    return lp, flat, offsets, il, tl


def _log_probs(v):
    """log_probs as float32/float64 with 2 or 3 dimensions; -inf (probability 0) is allowed, NaN
    and +inf are not."""
    if hasattr(v, "detach") and hasattr(v, "numpy"):
        raise TypeError("log_probs: got a torch tensor; use monge.torch.ctc_loss or pass .numpy()")
    arr = np.asarray(v)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"log_probs: expected a real numeric array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.ndim not in (2, 3):
        raise ValueError(f"log_probs: expected (T, N, C) or (T, C), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"log_probs: empty array (shape {arr.shape})")
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise ValueError("log_probs: contains NaN or +inf")
    return arr


def reduction_weights(reduction, tl, N):
    """d loss / d loss_n for a reduction."""
    if reduction == "mean":
        return 1.0 / (np.maximum(tl, 1).astype(np.float64) * N)
    return np.ones(N)


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False, grad=None, nthreads=None):
    """CTC loss, values and gradients equal to ``torch.nn.functional.ctc_loss`` (float64).

    Parameters
    ----------
    log_probs : array (T, N, C) or (T, C)
        Log-probabilities over C classes (log_softmax outputs), float32 or float64; -inf entries
        are allowed (probability 0).
    targets : int array (N, S_max) padded, or (sum(target_lengths),) concatenated
        Labels in [0, C), never `blank`.
    input_lengths, target_lengths : int arrays (N,)
        1 <= input_lengths <= T.
    blank : int
        The blank label.
    reduction : {'mean', 'sum', 'none'}
        'mean': loss_n / max(target_length_n, 1), averaged over the batch.
    zero_infinity : bool
        Impossible alignments (too few frames) give loss 0 instead of +inf.
    grad : {None, 'log_probs', 'logits'}
        Which gradient to return (see the module docstring).
    nthreads : int, optional
        Threads for this call.

    Returns
    -------
    CTCResult
        Samples are processed in parallel; results do not depend on the thread count.

    Examples
    --------
    One frame, one label: the loss is -log p(label).

    >>> import numpy as np, monge
    >>> log_probs = np.log(np.array([[[0.4, 0.6]]]))       # (T, N, C) = (1, 1, 2), blank = 0
    >>> round(monge.ctc_loss(log_probs, np.array([[1]]), np.array([1]), np.array([1])).loss, 6)
    0.510826
    """
    choice("reduction", reduction, ("mean", "sum", "none"))
    if grad not in _MODES:
        raise ValueError(f"grad: expected None, 'log_probs' or 'logits', got {grad!r}")
    if not isinstance(zero_infinity, (bool, np.bool_)):
        raise TypeError(f"zero_infinity: expected a bool, got {type(zero_infinity).__name__}")
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    squeeze = np.asarray(log_probs).ndim == 2
    lp, flat, offsets, il, tl = prepare(log_probs, targets, input_lengths, target_lengths, blank)
    N = lp.shape[1]
    mode = _MODES[grad]
    w = reduction_weights(reduction, tl, N) if mode else None
    r = _core.ctc(lp, flat, offsets, il, tl, blank=int(blank), zero_infinity=bool(zero_infinity),
                  mode=mode, weight=w, nthreads=nthreads)
    per = r["loss"]
    if reduction == "mean":
        loss = float(np.mean(per / np.maximum(tl, 1)))
    elif reduction == "sum":
        loss = float(per.sum())
    else:
        loss = per
    g = r["grad"]
    if g is not None and squeeze:
        g = g[:, 0, :]
    return CTCResult(loss, per, g)

