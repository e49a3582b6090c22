"""The two character-level language models: the draft (a one-layer GRU) and the target (a causal
transformer with a KV cache), behind one incremental interface (:class:`LM`)."""
from __future__ import annotations

from dataclasses import dataclass

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - the experiment needs the torch extra
    raise ImportError("monge.experiments.spectr needs PyTorch: pip install 'monge[torch]'") from exc

# ------------------------------------------------------------------ models
#
# The decoding loops see both models through LM: prefill(ids) gives a State covering ids (batch 1);
# extend(state, tokens (K, T)) gives logits (K, T, V) and an Ext whose .state covers T more tokens
# (batch K) and whose .at(row, n) is the batch-1 State of one row after its first n new tokens.


class TargetTransformer(nn.Module):
    """Causal transformer (pre-LN, learned positions up to block_size) with a KV cache."""

    kind = "transformer"

    def __init__(self, vocab, d_model=128, n_layer=4, n_head=4, block_size=256):
        super().__init__()
        self.config = dict(vocab=vocab, d_model=d_model, n_layer=n_layer, n_head=n_head,
                           block_size=block_size)
        self.block_size, self.n_head = block_size, n_head
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(block_size, d_model)
        self.ln1 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layer))
        self.qkv = nn.ModuleList(nn.Linear(d_model, 3 * d_model) for _ in range(n_layer))
        self.proj = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(n_layer))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layer))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                               nn.Linear(4 * d_model, d_model))
                                 for _ in range(n_layer))
        self.lnf = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx, cache=None):
        """idx (B, T); cache: list of (k, v) per layer, each (B or 1, H, S, dh), or None.
        Returns logits (B, T, V) and the cache extended to S + T positions."""
        B, T = idx.shape
        S = 0 if cache is None else cache[0][0].shape[2]
        if S + T > self.block_size:
            raise ValueError(f"sequence of {S + T} tokens exceeds block_size {self.block_size}")
        x = self.tok(idx) + self.pos(torch.arange(S, S + T))
        H = self.n_head
        new_cache = []
        mask = torch.ones(T, S + T, dtype=torch.bool).tril(S) if cache is not None and T > 1 else None
        for li in range(len(self.qkv)):
            h = self.ln1[li](x)
            q, k, v = self.qkv[li](h).view(B, T, 3, H, -1).permute(2, 0, 3, 1, 4)
            if cache is not None:
                ck, cv = cache[li]
                if ck.shape[0] != B:
                    ck, cv = ck.expand(B, -1, -1, -1), cv.expand(B, -1, -1, -1)
                k, v = torch.cat([ck, k], 2), torch.cat([cv, v], 2)
            new_cache.append((k, v))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=cache is None)
            x = x + self.proj[li](a.transpose(1, 2).reshape(B, T, -1))
            x = x + self.mlp[li](self.ln2[li](x))
        return self.head(self.lnf(x)), new_cache


class DraftGRU(nn.Module):
    """One-layer GRU language model: a cheap draft (one small recurrent step per token)."""

    kind = "gru"

    def __init__(self, vocab, d_embed=32, hidden=128):
        super().__init__()
        self.config = dict(vocab=vocab, d_embed=d_embed, hidden=hidden)
        self.emb = nn.Embedding(vocab, d_embed)
        self.gru = nn.GRU(d_embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, idx, h0=None):
        """idx (B, T), h0 (1, B, H) or None: logits (B, T, V) and the hidden states (B, T, H)."""
        out, _ = self.gru(self.emb(idx), h0)
        return self.head(out), out


@dataclass
class State:
    raw: object   # transformer: KV cache; GRU: hidden state (1, B, H); None before any token
    covered: int  # prefix tokens the state has consumed


class Ext:
    """The result of feeding T tokens to K rows: .state for the next feed, .at(row, n) to cut."""

    def __init__(self, kind, before, raw_after, outs, T):
        self.kind, self.before, self.raw_after, self.outs, self.T = kind, before, raw_after, outs, T
        self.state = State(raw_after, before.covered + T)

    def at(self, row, n):
        c = self.before.covered + n
        if self.kind == "transformer":
            return State([(k[row:row + 1, :, :c], v[row:row + 1, :, :c]) for k, v in self.raw_after], c)
        if n == 0:
            h0 = self.before.raw
            if h0 is not None and h0.shape[1] > 1:
                h0 = h0[:, row:row + 1]
            return State(h0, c)
        return State(self.outs[row:row + 1, n - 1].unsqueeze(0).contiguous(), c)


class LM:
    """Uniform incremental interface over TargetTransformer and DraftGRU."""

    def __init__(self, model):
        self.model = model.eval()
        self.kind = model.kind

    def prefill(self, ids):
        if len(ids) == 0:
            return State(None, 0)
        return self.extend(State(None, 0), torch.tensor([ids]))[1].state

    def extend(self, state, tokens):
        K, T = tokens.shape
        if self.kind == "transformer":
            logits, cache = self.model(tokens, state.raw)
            return logits, Ext(self.kind, state, cache, None, T)
        h0 = state.raw
        if h0 is not None and h0.shape[1] != K:
            h0 = h0.expand(-1, K, -1).contiguous()
        logits, outs = self.model(tokens, h0)
        before = State(h0, state.covered)
        return logits, Ext(self.kind, before, outs[:, -1].unsqueeze(0).contiguous(), outs, T)


def chain_at(exts, row, n):
    """Cut a sequence of extensions (each continuing the previous) after n tokens in all."""
    for e in exts:
        if n <= e.T:
            return e.at(row, n)
        n -= e.T
    raise ValueError("n: beyond the tokens fed")
