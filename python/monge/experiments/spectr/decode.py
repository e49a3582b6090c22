"""Decoding loops: plain target sampling, draft-only sampling (the negative control) and SpecTr with
K-SEQ draft selection; and the statistical checks that emitted text follows the target."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - the experiment needs the torch extra
    raise ImportError("monge.experiments.spectr needs PyTorch: pip install 'monge[torch]'") from exc

from ... import spectr
from .model import LM, chain_at

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
