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
    """Uniform weights 1/len over the first len positions, 0 on padding: (B, T)."""
    L = torch.as_tensor(lengths).long()
    pos = torch.arange(T)
    mask = pos[None, :] < L[:, None]
    return mask.to(dtype) / L[:, None].to(dtype)


def position_features(h, lengths=None, weight=1.0):
    """h (B, T, d) extended with weight * i / (len - 1) as a last feature (0 on padding and when
    len = 1): (B, T, d + 1)."""
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
    """The paper's OT loss between padded speech and text encodings, batched.

    Parameters
    ----------
    speech : tensor (B, T_s, d)
        Speech-encoder outputs (padded).
    text : tensor (B, T_t, d)
        Text-encoder outputs (padded).
    speech_lengths, text_lengths : int sequences or tensors (B,), optional
        Valid lengths (default: full).
    eps : float
        Entropic regularisation of the Sinkhorn divergence (absolute, cost ``|x - y|^2``).
    position_weight : float
        lambda, the weight of the relative-position feature (paper: 1.0).
    reduction : {'mean', 'sum', 'none'}
    tol, max_iter, **kwargs
        Passed to :func:`monge.torch.sinkhorn_divergence`.

    Returns
    -------
    tensor
        The reduced loss (scalar), or the (B,) per-pair divergences for 'none'.
    Differentiable with respect to both encodings (gradients from the dual potentials).
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
