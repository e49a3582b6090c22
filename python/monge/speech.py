"""Optimal transport between speech and text representations (Le et al., ICML 2023,
"Pre-training for Speech Translation: CTC Meets Optimal Transport").

The speech encoder emits a sequence h^s_1..h^s_{T_s} (after subsampling), the text encoder a sequence
h^t_1..h^t_{T_t}, both in R^d.  Each element is extended with its relative position in its own sequence,

    x_i = [h^s_i, lambda * i / (T_s - 1)],     y_j = [h^t_j, lambda * j / (T_t - 1)]

(position 0 for a sequence of length 1), and the two are compared as uniform empirical measures with
the Sinkhorn divergence (see :func:`monge.sinkhorn_divergence`, cost ``|x - y|^2``, KL-form entropy eps)

    L_OT = S_eps( (1/T_s) sum_i delta_{x_i},  (1/T_t) sum_j delta_{y_j} ).

The position feature lets the plan prefer monotone alignments; lambda = 0 gives a bag-of-frames loss.
A batch is padded to (B, T_max, d): padded positions get zero weight, so they carry no mass, get no
gradient and do not change the value.  All B problems are solved in one batched C call.

Needs PyTorch (``pip install 'monge[torch]'``).
"""
from __future__ import annotations

import numbers

import torch

from . import torch as _mt

__all__ = ["position_features", "length_weights", "ot_alignment_loss"]


def _lengths(name, lengths, B, T):
    if lengths is None:
        return torch.full((B,), T, dtype=torch.long)
    if isinstance(lengths, torch.Tensor):
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise TypeError(f"{name}: expected integer lengths, got {lengths.dtype}")
        L = lengths.detach().cpu().long().reshape(-1)
    else:
        try:
            L = torch.as_tensor(list(lengths))
        except (TypeError, ValueError):
            raise TypeError(f"{name}: expected a sequence of integers") from None
        if L.dtype.is_floating_point or L.dtype == torch.bool:
            raise TypeError(f"{name}: expected integer lengths, got {L.dtype}")
        L = L.long().reshape(-1)
    if L.shape[0] != B:
        raise ValueError(f"{name}: expected {B} lengths (one per sequence), got {L.shape[0]}")
    if (L < 1).any() or (L > T).any():
        raise ValueError(f"{name}: lengths must be in [1, {T}], got min {int(L.min())}, max {int(L.max())}")
    return L


def length_weights(lengths, T, dtype=torch.float64):
    """Uniform weights over the valid positions of padded sequences, zero on padding.

    Row b holds 1/len_b at its first len_b positions and 0 on the padding after them: the weights
    of the uniform empirical measure of each sequence, as :func:`ot_alignment_loss` uses them.

    Parameters
    ----------
    lengths : sequence of int or integer torch.Tensor, shape (B,)
        Valid lengths, in [1, T].  Not checked here (:func:`ot_alignment_loss` checks them); a
        length of 0 gives a row of NaN.
    T : int
        Padded length of the sequences.
    dtype : torch.dtype, default torch.float64
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor, shape (B, T)
        The weights; each row sums to 1.

    See Also
    --------
    position_features : The other input :func:`ot_alignment_loss` builds.

    Examples
    --------
    >>> from monge.speech import length_weights
    >>> length_weights([2, 4], 4)
    tensor([[0.5000, 0.5000, 0.0000, 0.0000],
            [0.2500, 0.2500, 0.2500, 0.2500]], dtype=torch.float64)
    """
    L = torch.as_tensor(lengths).long()
    pos = torch.arange(T)
    mask = pos[None, :] < L[:, None]
    return mask.to(dtype) / L[:, None].to(dtype)


def position_features(h, lengths=None, weight=1.0):
    """Append each position's relative index in its sequence as a last feature.

    Position i of a sequence of valid length len gets the feature ``weight * i / (len - 1)``, from
    0 at the first position to `weight` at the last; the feature is 0 on padding and when
    len = 1.  This is the position term of Le et al.'s OT loss (see :func:`ot_alignment_loss`).

    Parameters
    ----------
    h : torch.Tensor, shape (B, T, d)
        Padded sequences of encodings.
    lengths : sequence of int or integer torch.Tensor, shape (B,), optional
        Valid lengths, each in [1, T] (default: all T).
    weight : float, default 1.0
        The weight lambda of the feature, >= 0.

    Returns
    -------
    torch.Tensor, shape (B, T, d + 1)
        The encodings h with the feature appended, in the dtype and on the device of h.

    Raises
    ------
    TypeError
        If h is not a torch.Tensor, or lengths are not integers (floating or boolean tensors,
        or not a sequence).
    ValueError
        If h is not 3-D; if weight is not a real number >= 0; if lengths has not B entries or
        one is outside [1, T].

    See Also
    --------
    ot_alignment_loss : The loss that uses these features.
    length_weights : The weights of the padded positions.

    References
    ----------
    Le et al., "Pre-training for Speech Translation: CTC Meets Optimal Transport", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> from monge.speech import position_features
    >>> position_features(torch.zeros(2, 3, 1), [3, 2])[..., -1]
    tensor([[0.0000, 0.5000, 1.0000],
            [0.0000, 1.0000, 0.0000]])
    """
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"h: expected a torch.Tensor, got {type(h).__name__}")
    if h.dim() != 3:
        raise ValueError(f"h: expected shape (B, T, d), got {tuple(h.shape)}")
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not weight >= 0:
        raise ValueError(f"weight: expected a real number >= 0, got {weight!r}")
    B, T, _ = h.shape
    L = _lengths("lengths", lengths, B, T).to(h.device)
    pos = torch.arange(T, device=h.device, dtype=h.dtype)[None, :]
    rel = pos / (L[:, None] - 1).clamp(min=1).to(h.dtype)
    rel = torch.where(pos < L[:, None], rel, torch.zeros_like(rel))
    return torch.cat([h, (float(weight) * rel)[..., None]], dim=-1)


def ot_alignment_loss(speech, text, speech_lengths=None, text_lengths=None, *, eps=1.0,
                      position_weight=1.0, reduction="mean", tol=None, max_iter=2000, **kwargs):
    """The OT loss of Le et al. between padded speech and text encodings, batched.

    Each element is extended with its relative position in its own sequence
    (:func:`position_features`) and the two sequences are compared as uniform empirical measures
    (:func:`length_weights`) with the Sinkhorn divergence of
    :func:`monge.torch.sinkhorn_divergence` ::

        x_i = [h^s_i, lambda * i / (T_s - 1)],     y_j = [h^t_j, lambda * j / (T_t - 1)]
        L_OT = S_eps( (1/T_s) sum_i delta_{x_i},  (1/T_t) sum_j delta_{y_j} )

    with T_s, T_t the valid lengths.  Padded positions carry no mass, get no gradient and do not
    change the value.  The loss is differentiable with respect to both encodings (gradients from
    the dual potentials); all B problems are solved in one batched C call.

    Parameters
    ----------
    speech : torch.Tensor, shape (B, T_s, d)
        Speech-encoder outputs (padded), float32 or float64.
    text : torch.Tensor, shape (B, T_t, d)
        Text-encoder outputs (padded), same dtype and d as speech.
    speech_lengths : sequence of int or integer torch.Tensor, shape (B,), optional
        Valid lengths of the speech sequences, in [1, T_s] (default: full).
    text_lengths : sequence of int or integer torch.Tensor, shape (B,), optional
        Valid lengths of the text sequences, in [1, T_t] (default: full).
    eps : float, default 1.0
        Entropic regularisation of the Sinkhorn divergence (absolute, cost ``|x - y|^2``).
    position_weight : float, default 1.0
        The weight lambda of the relative-position feature (paper: 1.0); 0 gives a
        bag-of-frames loss.
    reduction : {'mean', 'sum', 'none'}
        How the B per-pair divergences are reduced: their mean, their sum, or none.
    tol : float, optional
        Passed to :func:`monge.torch.sinkhorn_divergence` (None: its default).
    max_iter : int, default 2000
        Passed to :func:`monge.torch.sinkhorn_divergence`.
    **kwargs
        Further options of :func:`monge.torch.sinkhorn_divergence`.

    Returns
    -------
    torch.Tensor
        The reduced loss (scalar), or the (B,) per-pair divergences for 'none'.

    Raises
    ------
    TypeError
        If speech or text is not a torch.Tensor, their dtypes differ, or lengths are not
        integers.
    ValueError
        If speech or text is not 3-D, their batch or feature sizes differ, reduction is not
        'mean', 'sum' or 'none', a lengths argument has not B entries or one out of range,
        position_weight is not a real number >= 0; and from
        :func:`monge.torch.sinkhorn_divergence`'s checks (e.g. eps not positive).

    See Also
    --------
    monge.torch.sinkhorn_divergence : The divergence computed here.
    monge.torch.ctc_loss : The CTC loss the paper combines with this one.

    References
    ----------
    Le et al., "Pre-training for Speech Translation: CTC Meets Optimal Transport", ICML 2023.

    Examples
    --------
    Without the position feature, shifting every text encoding by t costs ``|t|^2`` (here 3):

    >>> import numpy as np, torch
    >>> from monge.speech import ot_alignment_loss
    >>> speech = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 5, 3)))
    >>> loss = ot_alignment_loss(speech, speech + 1.0, position_weight=0.0, reduction="none")
    >>> [round(v, 6) for v in loss.tolist()]
    [3.0, 3.0]
    """
    for name, t in (("speech", speech), ("text", text)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name}: expected shape (B, T, d), got {tuple(t.shape)}")
    if speech.shape[0] != text.shape[0]:
        raise ValueError(f"text: batch size {text.shape[0]} differs from speech's {speech.shape[0]}")
    if speech.shape[2] != text.shape[2]:
        raise ValueError(f"text: feature size {text.shape[2]} differs from speech's {speech.shape[2]}")
    if text.dtype != speech.dtype:
        raise TypeError(f"text: dtype {text.dtype} differs from speech's {speech.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    B, Ts, _ = speech.shape
    Tt = text.shape[1]
    Ls = _lengths("speech_lengths", speech_lengths, B, Ts)
    Lt = _lengths("text_lengths", text_lengths, B, Tt)
    x = position_features(speech, Ls, position_weight)
    y = position_features(text, Lt, position_weight)
    a = length_weights(Ls, Ts, speech.dtype)
    b = length_weights(Lt, Tt, speech.dtype)
    per = _mt.sinkhorn_divergence(x, y, a, b, eps=eps, tol=tol, max_iter=max_iter, **kwargs)
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.mean()
