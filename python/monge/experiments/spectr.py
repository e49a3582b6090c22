"""SpecTr speculative decoding with two character-level language models (issue 9).

A small draft model (a one-layer GRU, cheap per step) and a larger target model (a causal
transformer with a KV cache) are trained with PyTorch on the CPU on the same text, with the same
character tokenizer.  Then, for K drafts of length L:

    1. the draft model samples K continuations of length L from the committed prefix (L batched
       calls of batch K);
    2. the target scores all K x (L + 1) positions in ONE batched call;
    3. position by position, K-SEQ (monge.spectr.kseq_select) selects the next token among the
       drafts still alive (those that agree with every token emitted so far in this block); a
       draft survives when its token equals the emitted one.  When no draft survives the block
       ends; when every position is consumed, one more token is drawn from the target's last
       distribution (the bonus token).

Every emitted token is distributed exactly as the target's next-token distribution given the
prefix.  Reported per (K, L): the token acceptance rate (selections that took a draft), block
efficiency (tokens per target call), wall-clock speed-up over plain autoregressive sampling from the
target, and a statistical check that the text follows the target: the randomised probability
integral transform u = F(y - 1) + U q(y) of every emitted token under the target's own q(. | prefix)
is i.i.d. uniform exactly when the sampler is exact (a martingale argument), tested by
Kolmogorov-Smirnov; plus a Welch t-test of the per-sequence mean target log-likelihood against
direct target samples.  A draft-only sampler is the negative control.

    python -m monge.experiments.spectr --data /path/to/tinyshakespeare.txt          # full run
    python -m monge.experiments.spectr --quick                                      # seconds, own text
    python -m monge.experiments.spectr --data ... --cache-dir ~/.cache/monge --out results.json

Weights are cached as npz + JSON (never pickles) under --cache-dir (default ~/.cache/monge/spectr).
Tiny Shakespeare: github.com/karpathy/char-rnn, data/tinyshakespeare/input.txt.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - the experiment needs the torch extra
    raise ImportError("monge.experiments.spectr needs PyTorch: pip install 'monge[torch]'") from exc

from .. import spectr

# ------------------------------------------------------------------ data


def toy_corpus(n_lines=600, seed=0):
    """A small text the project generates itself (for tests and the quick notebook): lines from a
    tiny grammar of speakers and verses, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    names = ["ROMEO", "JULIET", "NURSE", "FRIAR", "KING", "QUEEN"]
    subj = ["the moon", "my heart", "thy love", "the night", "a rose", "this sword", "the king"]
    verb = ["doth shine", "is sweet", "shall fall", "will rise", "hath gone", "must wait"]
    tail = ["upon the hill", "in the garden", "for ever", "before the dawn", "with thee", "tonight"]
    lines = []
    for _ in range(n_lines):
        if rng.random() < 0.2:
            lines.append(f"{names[rng.integers(len(names))]}:")
        else:
            s = f"{subj[rng.integers(len(subj))]} {verb[rng.integers(len(verb))]}"
            if rng.random() < 0.6:
                s += f" {tail[rng.integers(len(tail))]}"
            lines.append(s[0].upper() + s[1:] + (",", ".", "!", ";")[rng.integers(4)])
    return "\n".join(lines) + "\n"


class CharTokenizer:
    """Characters of the training text, sorted; ids are positions in that list."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        return [self.index[c] for c in s]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


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


# ------------------------------------------------------------------ training and cache


def train_lm(model, ids, steps, batch, seq, lr, seed, log_every=0, name="model"):
    """AdamW on random crops of `ids` (next-character cross-entropy), cosine learning rate."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids, dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    model.train()
    losses = []
    for it in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / steps))
        start = torch.randint(0, len(data) - seq - 1, (batch,), generator=g)
        x = torch.stack([data[s:s + seq] for s in start])
        y = torch.stack([data[s + 1:s + seq + 1] for s in start])
        out = model(x)
        logits = out[0]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log_every and (it % log_every == 0 or it == steps - 1):
            print(f"  {name} step {it}/{steps} loss {loss:.3f}", file=sys.stderr, flush=True)
    model.eval()
    return losses


@torch.inference_mode()
def eval_loss(model, ids, seq, n_batches=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    data = torch.tensor(ids, dtype=torch.long)
    tot = 0.0
    for _ in range(n_batches):
        start = torch.randint(0, len(data) - seq - 1, (16,), generator=g)
        x = torch.stack([data[s:s + seq] for s in start])
        y = torch.stack([data[s + 1:s + seq + 1] for s in start])
        logits = model(x)[0]
        tot += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)))
    return tot / n_batches


def save_model(model, path):
    """Weights as npz and the configuration as JSON next to it (no pickles)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".npz"), **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    path.with_suffix(".json").write_text(json.dumps(dict(kind=model.kind, config=model.config)))


def load_model(path):
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    cls = {"transformer": TargetTransformer, "gru": DraftGRU}[meta["kind"]]
    model = cls(**meta["config"])
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        model.load_state_dict({k: torch.from_numpy(z[k]) for k in z.files})
    return model.eval()


@dataclass
class Settings:
    target: dict = field(default_factory=lambda: dict(d_model=128, n_layer=4, n_head=4, block_size=256))
    draft: dict = field(default_factory=lambda: dict(d_embed=32, hidden=128))
    target_steps: int = 1000
    draft_steps: int = 800
    batch: int = 16
    seq: int = 128
    lr_target: float = 3e-3
    lr_draft: float = 5e-3
    n_seq: int = 48
    n_new: int = 200
    prompt_len: int = 16
    Ks: tuple = (1, 2, 4, 8)
    Ls: tuple = (2, 4, 8)


def quick_settings():
    return Settings(target=dict(d_model=48, n_layer=2, n_head=2, block_size=96),
                    draft=dict(d_embed=16, hidden=32), target_steps=150, draft_steps=120, batch=16,
                    seq=48, lr_target=5e-3, lr_draft=1e-2, n_seq=6, n_new=50, prompt_len=8,
                    Ks=(1, 2, 4), Ls=(2, 4))


def get_models(text, settings, cache_dir=None, seed=0, verbose=False):
    """(tokenizer, draft, target, info): trained models, loaded from cache_dir when present."""
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    n_train = int(0.9 * len(ids))
    train, val = ids[:n_train], ids[n_train:]
    key = hashlib.sha256((text + json.dumps(asdict(settings), sort_keys=True, default=str)
                          + str(seed)).encode()).hexdigest()[:16]
    cdir = Path(cache_dir) if cache_dir else None
    info = {}
    models = {}
    for name, make, steps, lr in (
            ("target", lambda: TargetTransformer(tok.vocab_size, **settings.target),
             settings.target_steps, settings.lr_target),
            ("draft", lambda: DraftGRU(tok.vocab_size, **settings.draft), settings.draft_steps,
             settings.lr_draft)):
        path = cdir / f"{name}-{key}" if cdir else None
        if path is not None and path.with_suffix(".npz").exists():
            models[name] = load_model(path)
            info[f"{name}_train_time"] = None
        else:
            m = make()
            t0 = time.perf_counter()
            train_lm(m, train, steps, settings.batch, settings.seq, lr, seed + (name == "draft"),
                     log_every=100 if verbose else 0, name=name)
            info[f"{name}_train_time"] = time.perf_counter() - t0
            if path is not None:
                save_model(m, path)
            models[name] = m
        info[f"{name}_params"] = sum(p.numel() for p in models[name].parameters())
        info[f"{name}_val_loss"] = eval_loss(models[name], val, min(settings.seq, len(val) - 2))
    return tok, models["draft"], models["target"], info, val


# ------------------------------------------------------------------ decoding loops


def _probs(logits):
    """float64 softmax rows (exactly normalised) as NumPy."""
    return torch.softmax(logits.double(), -1).numpy()


def _sample_rows(P, rng):
    """One token per row of P (float64) by inverse CDF."""
    c = np.cumsum(P, axis=-1)
    u = rng.random(P.shape[:-1])[..., None] * c[..., -1:]
    return np.minimum((c <= u).sum(-1), P.shape[-1] - 1)


def _checks(seen, rng):
    """Per-token checks (see _pit) and the total log-likelihood of (q, y) pairs, computed after
    the timed decoding."""
    pits = [_pit(q, y, rng) for q, y in seen]
    return pits, float(sum(math.log(q[y]) for q, y in seen))


def _pit(q, y, rng):
    """Per-token checks of y against q = the target's q(. | prefix), as (u, d, v):
    u = F(y - 1) + U q(y), the randomised probability integral transform, uniform when y ~ q;
    d = log q(y) + H(q), mean 0 when y ~ q, with conditional variance v = Var_q(log q).
    Over a text both are martingale-difference sequences when every token is drawn from its q, so
    the u are i.i.d. uniform and sum(d) / sqrt(sum(v)) is asymptotically N(0, 1)."""
    lq = np.log(np.where(q > 0, q, 1.0))
    m = float((q * lq).sum())
    return (float(q[:y].sum() + rng.random() * q[y]), float(lq[y] - m),
            float((q * (lq - m) ** 2).sum()))


@torch.inference_mode()
def sample_target(target, prompt, n_new, seed):
    """Plain autoregressive sampling from the target (one call per token, KV cache).
    Returns (tokens, seconds, pit values, sum of target log-probabilities)."""
    rng = np.random.default_rng(seed)
    prng = np.random.default_rng(seed + 10**6)
    lm = LM(target)
    t0 = time.perf_counter()
    state = lm.prefill(prompt[:-1])
    last = prompt[-1]
    out, seen = [], []
    for _ in range(n_new):
        logits, ext = lm.extend(state, torch.tensor([[last]]))
        q = _probs(logits[0, -1])
        y = int(_sample_rows(q, rng))
        seen.append((q, y))
        state = ext.at(0, 1)
        out.append(y)
        last = y
    secs = time.perf_counter() - t0
    pits, ll = _checks(seen, prng)
    return out, secs, pits, ll


@torch.inference_mode()
def sample_draft_only(draft, target, prompt, n_new, seed):
    """Negative control: text from the draft model, checked against the target's q."""
    rng = np.random.default_rng(seed)
    prng = np.random.default_rng(seed + 10**6)
    lm = LM(draft)
    state = lm.prefill(prompt[:-1])
    last, out = prompt[-1], []
    for _ in range(n_new):
        logits, ext = lm.extend(state, torch.tensor([[last]]))
        y = int(_sample_rows(_probs(logits[0, -1]), rng))
        state = ext.at(0, 1)
        out.append(y)
        last = y
    logits, _ = target(torch.tensor([prompt + out[:-1]]))
    Q = _probs(logits[0, len(prompt) - 1:])
    pits = [_pit(Q[i], y, prng) for i, y in enumerate(out)]
    ll = float(sum(math.log(Q[i, y]) for i, y in enumerate(out)))
    return out, pits, ll


@dataclass
class SpecStats:
    tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    selections: int = 0
    accepted: int = 0
    seconds: float = 0.0


@torch.inference_mode()
def spectr_generate(draft, target, prompt, n_new, K, L, seed, stats=None):
    """SpecTr decoding: K drafts of length L per block, one batched target call per block, K-SEQ
    selection among the live drafts.  Returns (tokens, pit values, log-likelihood under target)."""
    stats = stats if stats is not None else SpecStats()
    rng = np.random.default_rng(seed)
    prng = np.random.default_rng(seed + 10**6)
    sel_seed = int(rng.integers(0, 2**62))
    stream = 0
    D, T = LM(draft), LM(target)
    t0 = time.perf_counter()
    prefix = list(prompt)
    d_state = D.prefill(prefix[:-1])
    t_state = T.prefill(prefix[:-1])
    out, seen = [], []
    while len(out) < n_new:
        # 1. K drafts of length L (L batched draft calls)
        exts, st = [], d_state
        feed = torch.tensor([prefix[d_state.covered:]] * K)
        drafts = np.zeros((K, L), dtype=np.int64)
        P = np.zeros((K, L, draft.config["vocab"]))
        for j in range(L):
            logits, e = D.extend(st, feed)
            exts.append(e)
            st = e.state
            P[:, j] = _probs(logits[:, -1])
            drafts[:, j] = _sample_rows(P[:, j], rng)
            feed = torch.from_numpy(drafts[:, j:j + 1])
        stats.draft_calls += L
        # 2. the target scores every position of every draft in one call
        pend = prefix[t_state.covered:]
        tokens = torch.cat([torch.tensor([pend] * K), torch.from_numpy(drafts)], 1)
        logits, t_ext = T.extend(t_state, tokens)
        Q = _probs(logits[:, len(pend) - 1:])  # (K, L + 1, V): q at each draft position + bonus
        stats.target_calls += 1
        # 3. K-SEQ position by position among the live drafts
        alive = np.arange(K)
        emitted = []
        for j in range(L):
            r = alive[0]
            # p, q are exact float64 softmax rows: the per-token call skips the Python checks
            sel = spectr.kseq_select(P[r, j], Q[r, j], drafts[alive, j], seed=sel_seed, stream=stream,
                                     check=False)
            stream += 1
            stats.selections += 1
            stats.accepted += sel.accepted
            y = sel.token
            seen.append((Q[r, j], y))
            emitted.append(y)
            keep = alive[drafts[alive, j] == y]
            if keep.size == 0:
                break
            alive = keep
        else:
            r = alive[0]
            y = int(_sample_rows(Q[r, L], rng))  # bonus token from the target
            seen.append((Q[r, L], y))
            emitted.append(y)
        # 4. commit; cut both models' states at the row that produced the block
        m = len(emitted)
        prefix += emitted
        out += emitted
        row = int(alive[0])
        t_state = t_ext.at(row, len(pend) + m - 1)
        # the draft fed its pending tokens and d_1..d_{L-1}; row `row` agrees with the block's
        # first m - 1 tokens
        d_pend = len(prefix) - m - d_state.covered
        d_state = chain_at(exts, row, d_pend + min(m - 1, L - 1))
    stats.seconds += time.perf_counter() - t0
    stats.tokens += len(out)
    pits, ll = _checks(seen[:n_new], prng)
    return out[:n_new], pits, ll


# ------------------------------------------------------------------ the experiment


def _ks_uniform(checks):
    """Kolmogorov-Smirnov p-value of the PIT values of `checks` (tuples from _pit) against U(0, 1)."""
    from scipy import stats as st
    return float(st.kstest(np.asarray(checks)[:, 0], "uniform").pvalue)


def _z_loglik(checks):
    """Two-sided p-value of the martingale z-score sum(log q(y) + H(q)) / sqrt(sum Var_q(log q))."""
    from scipy import stats as st
    c = np.asarray(checks)
    z = c[:, 1].sum() / np.sqrt(c[:, 2].sum())
    return float(2 * st.norm.sf(abs(z)))


def _welch(a, b):
    from scipy import stats as st
    return float(st.ttest_ind(a, b, equal_var=False).pvalue)


def run(text, settings=None, cache_dir=None, seed=0, verbose=False, threads=1):
    """Trains (or loads) the two models and measures every (K, L).  Returns a dict with the
    models' info, the target baseline and one row per (K, L)."""
    settings = settings or Settings()
    torch.set_num_threads(threads)
    tok, draft, target, info, val = get_models(text, settings, cache_dir, seed, verbose)
    prng = np.random.default_rng(seed + 7)
    starts = prng.integers(0, len(val) - settings.prompt_len - 1, size=settings.n_seq)
    prompts = [val[s:s + settings.prompt_len] for s in starts]
    # warm-up (allocator, kernels), then the target-only baseline
    sample_target(target, prompts[0], 8, seed)
    spectr_generate(draft, target, prompts[0], 8, 2, 2, seed)
    base_time, base_tokens, base_pits, base_ll, samples = 0.0, 0, [], [], []
    for i, pr in enumerate(prompts):
        toks, secs, pits, ll = sample_target(target, pr, settings.n_new, seed + 1000 + i)
        base_time += secs
        base_tokens += len(toks)
        base_pits += pits
        base_ll.append(ll / len(toks))
        samples.append(tok.decode(toks))
    ctrl_pits, ctrl_ll = [], []
    for i, pr in enumerate(prompts):
        _, pits, ll = sample_draft_only(draft, target, pr, settings.n_new, seed + 3000 + i)
        ctrl_pits += pits
        ctrl_ll.append(ll / settings.n_new)
    baseline = dict(ms_per_token=1e3 * base_time / base_tokens, ks_pvalue=_ks_uniform(base_pits),
                    z_pvalue=_z_loglik(base_pits),
                    mean_loglik=float(np.mean(base_ll)), sample=samples[0])
    control = dict(ks_pvalue=_ks_uniform(ctrl_pits), z_pvalue=_z_loglik(ctrl_pits), mean_loglik=float(np.mean(ctrl_ll)),
                   loglik_pvalue=_welch(ctrl_ll, base_ll))
    rows = []
    for K in settings.Ks:
        for L in settings.Ls:
            stt = SpecStats()
            pits, lls, sample = [], [], None
            for i, pr in enumerate(prompts):
                toks, pt, ll = spectr_generate(draft, target, pr, settings.n_new, K, L,
                                               seed + 5000 + 97 * i + 13 * K + L, stt)
                pits += pt
                lls.append(ll / len(pt))
                sample = sample or tok.decode(toks)
            ms = 1e3 * stt.seconds / stt.tokens
            row = dict(K=K, L=L, acceptance=stt.accepted / stt.selections,
                       block_efficiency=stt.tokens / stt.target_calls, ms_per_token=ms,
                       speedup=baseline["ms_per_token"] / ms, ks_pvalue=_ks_uniform(pits),
                       z_pvalue=_z_loglik(pits),
                       loglik_pvalue=_welch(lls, base_ll), mean_loglik=float(np.mean(lls)),
                       sample=sample)
            rows.append(row)
            if verbose:
                print(f"  K={K} L={L} acc={row['acceptance']:.3f} "
                      f"block eff={row['block_efficiency']:.2f} speed-up={row['speedup']:.2f}x "
                      f"KS p={row['ks_pvalue']:.3f}", file=sys.stderr, flush=True)
    return dict(info=info, settings=asdict(settings), baseline=baseline, control=control, rows=rows,
                vocab=tok.vocab_size, threads=threads)


def format_table(res):
    lines = ["| K | L | acceptance | block efficiency | ms/token | speed-up | PIT KS p | log-lik z p "
             "| vs direct p |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['K']} | {r['L']} | {r['acceptance']:.3f} | {r['block_efficiency']:.2f} | "
                     f"{r['ms_per_token']:.2f} | {r['speedup']:.2f}x | {r['ks_pvalue']:.2f} | "
                     f"{r['z_pvalue']:.2f} | {r['loglik_pvalue']:.2f} |")
    b, c = res["baseline"], res["control"]
    lines.append(f"\ntarget alone: {b['ms_per_token']:.2f} ms/token, PIT KS p {b['ks_pvalue']:.2f}, "
                 f"log-lik z p {b['z_pvalue']:.2f}; draft alone (control): PIT KS p "
                 f"{c['ks_pvalue']:.2g}, log-lik z p {c['z_pvalue']:.2g}, vs direct p "
                 f"{c['loglik_pvalue']:.2g}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="training text (Tiny Shakespeare); default: a built-in toy text")
    ap.add_argument("--quick", action="store_true", help="tiny models and few sequences")
    ap.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "monge", "spectr"),
                    help="where trained weights are cached (npz + JSON)")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", help="write the results as JSON")
    args = ap.parse_args(argv)
    if args.data:
        text = Path(args.data).read_text(encoding="utf-8")
    else:
        text = toy_corpus()
    settings = quick_settings() if args.quick else Settings()
    res = run(text, settings, None if args.no_cache else args.cache_dir, args.seed, verbose=True,
              threads=args.threads)
    print(json.dumps(res["info"], indent=1))
    print(format_table(res))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
