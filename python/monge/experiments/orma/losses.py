"""The ORMA losses (:func:`orma_losses`), each a symmetric InfoNCE over a batch of B pairs,
    L(S) = ½ [CE(s·S, I) + CE(s·Sᵀ, I)],  S_ij = similarity of text i and molecule j,
s a learned inverse temperature, at three scales:
  * sentence–molecule  S_ij = cos(sentence_i, molecule_j)
  * token–atom         S_ij = ½ [mean_t max_a cos(tok_it, atom_ja) + mean_a max_t cos(tok_it, atom_ja)]
                       (masked means/maxima over real tokens and atoms)
  * multi-token–motif  for every pair (i, j) the OT plan P between the tokens of text i and the
                       motifs of molecule j (monge.torch.align, cosine cost, uniform marginals on the
                       real entries, IPOT or Sinkhorn); each token goes to the motif with its largest
                       plan entry, argmax_k P_tk, and motif k's multi-token representation is the mean
                       of the tokens it gathered (a motif that gathers none takes the token with the
                       largest entry in its column, argmax_t P_tk).  S_ij = mean_k cos(multitok_ijk,
                       motif_jk).  The plan is held fixed (no gradient through it), as in ORMA.
Total loss = L_global + w_ta L_token-atom + w_mm L_multitoken-motif.  Retrieval ranks by the
sentence–molecule cosine (:func:`retrieval_metrics`).
"""
from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - needs the torch extra
    raise ImportError("monge.experiments.orma needs PyTorch: pip install 'monge[orma]'") from exc

from ... import torch as mt
from ..ranking import ranks as _ranks

__all__ = ["info_nce", "token_atom_similarity", "multitoken_motif_similarity", "orma_losses",
           "retrieval_metrics"]


def info_nce(S, scale):
    """Symmetric InfoNCE of a (B, B) similarity matrix whose diagonal holds the matched pairs."""
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S: expected a square (B, B) matrix, got {tuple(S.shape)}")
    labels = torch.arange(S.shape[0])
    return 0.5 * (F.cross_entropy(scale * S, labels) + F.cross_entropy(scale * S.T, labels))


def _check_padded(name, x, mask):
    if x.dim() != 3 or mask.shape != x.shape[:2] or mask.dtype != torch.bool:
        raise ValueError(f"{name}: expected (B, L, d) states and a (B, L) bool mask, got "
                         f"{tuple(x.shape)} and {tuple(mask.shape)} {mask.dtype}")
    if not bool(mask.any(1).all()):
        raise ValueError(f"{name}: every item needs at least one real entry")


def token_atom_similarity(tok, tmask, atoms, amask):
    """S_ij = ½ [mean_t max_a cos + mean_a max_t cos] between the tokens of text i and the atoms
    of molecule j (padding excluded).  tok (B, T, d), atoms (B, A, d) -> (B, B)."""
    _check_padded("tok", tok, tmask)
    _check_padded("atoms", atoms, amask)
    t, a = F.normalize(tok, dim=-1), F.normalize(atoms, dim=-1)
    sim = torch.einsum("itd,jad->ijta", t, a)                      # (B, B, T, A)
    neg = torch.finfo(sim.dtype).min
    valid = tmask[:, None, :, None] & amask[None, :, None, :]
    sim = sim.masked_fill(~valid, neg)
    tw = tmask.to(sim.dtype)[:, None, :]                           # (B, 1, T)
    aw = amask.to(sim.dtype)[None, :, :]                           # (1, B, A)
    t2a = (sim.amax(3) * tw).sum(2) / tw.sum(2)
    a2t = (sim.amax(2) * aw).sum(2) / aw.sum(2)
    return 0.5 * (t2a + a2t)


def multitoken_motif_similarity(tok, tmask, motifs, mmask, *, method="ipot", pairs="all",
                                **align_kwargs):
    """Multi-token–motif similarities from the OT plan between tokens and motifs (module docstring).

    pairs='all': every (text i, molecule j) of the batch, returns (S (B, B), plans (B, B, T, M));
    pairs='diag': matched pairs only, returns (s (B,), plans (B, T, M)).
    align_kwargs go to :func:`monge.torch.align` (defaults: IPOT beta=0.5, 50 outer iterations;
    Sinkhorn eps=0.05, tol=1e-4)."""
    _check_padded("tok", tok, tmask)
    _check_padded("motifs", motifs, mmask)
    if pairs not in ("all", "diag"):
        raise ValueError(f"pairs: expected 'all' or 'diag', got {pairs!r}")
    B, T, d = tok.shape
    M = motifs.shape[1]
    if pairs == "all":
        X = tok[:, None].expand(B, B, T, d).reshape(B * B, T, d)
        xm = tmask[:, None].expand(B, B, T).reshape(B * B, T)
        Y = motifs[None].expand(B, B, M, d).reshape(B * B, M, d)
        ym = mmask[None].expand(B, B, M).reshape(B * B, M)
    else:
        X, xm, Y, ym = tok, tmask, motifs, mmask
    kw = dict(outer=50, beta=0.5) if method == "ipot" else dict(eps=0.05, tol=1e-4, max_iter=2000)
    kw.update(align_kwargs)
    with torch.no_grad():
        _, plan = mt.align(X.detach().contiguous(), Y.detach().contiguous(), xm.numpy(),
                           ym.numpy(), method=method, **kw)
        plan = plan.to(tok.dtype)
        # each real token goes to its largest plan entry; empty motifs take their column's argmax
        assign = F.one_hot(plan.argmax(2), M).to(tok.dtype) * xm[..., None].to(tok.dtype)
        empty = (assign.sum(1) == 0) & ym                                     # (P, M)
        col = F.one_hot(plan.argmax(1), T).to(tok.dtype).transpose(1, 2)     # (P, T, M)
        assign = assign + col * empty[:, None, :].to(tok.dtype)
        assign = assign / assign.sum(1, keepdim=True).clamp(min=1.0)
    multitok = torch.einsum("ptm,ptd->pmd", assign, X)                         # (P, M, d)
    cos = F.cosine_similarity(multitok, Y, dim=-1)                             # (P, M)
    w = ym.to(cos.dtype)
    s = (cos * w).sum(1) / w.sum(1)
    if pairs == "all":
        return s.reshape(B, B), plan.reshape(B, B, T, M)
    return s, plan


def orma_losses(out, scale, *, w_token_atom=0.0, w_motif=0.0, method="ipot", align_kwargs=None):
    """The loss terms for one batch (``out`` from :meth:`OrmaModel.forward`): a dict with 'global',
    'token_atom', 'motif' (only those with a non-zero weight) and 'total'."""
    losses = {"global": info_nce(F.normalize(out["sent"], dim=-1) @
                                 F.normalize(out["mol"], dim=-1).T, scale)}
    total = losses["global"]
    if w_token_atom:
        S = token_atom_similarity(out["tok"], out["tmask"], out["atoms"], out["amask"])
        losses["token_atom"] = info_nce(S, scale)
        total = total + w_token_atom * losses["token_atom"]
    if w_motif:
        S, _ = multitoken_motif_similarity(out["tok"], out["tmask"], out["motifs"], out["mmask"],
                                           method=method, **(align_kwargs or {}))
        losses["motif"] = info_nce(S, scale)
        total = total + w_motif * losses["motif"]
    losses["total"] = total
    return losses


# ------------------------------------------------------------------ metrics


def retrieval_metrics(S, ks=(1, 10)):
    """Retrieval metrics of an (N, N) score matrix, rows = texts, columns = molecules, matched pairs
    on the diagonal.  Rank = 1 + number of other candidates scoring >= the match: ties count
    against it (:func:`monge.experiments.ranking.ranks`), so constant scores rank every match last.
    Returns {'text_to_mol': {...}, 'mol_to_text': {...}} with hits@k (fractions), mrr, mean_rank,
    and 'ranks' (N,)."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S: expected a square score matrix, got shape {S.shape}")
    if not np.isfinite(S).all():
        raise ValueError("S: scores must be finite")
    out = {}
    for name, ranks in (("text_to_mol", _ranks(S)), ("mol_to_text", _ranks(S.T))):
        r = {f"hits@{k}": float(np.mean(ranks <= k)) for k in ks}
        r.update(mrr=float(np.mean(1.0 / ranks)), mean_rank=float(np.mean(ranks)), ranks=ranks)
        out[name] = r
    return out
