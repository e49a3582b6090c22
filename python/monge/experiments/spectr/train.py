"""Training the two models, their settings, and the npz + JSON weight cache (never pickles)."""
from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - the experiment needs the torch extra
    raise ImportError("monge.experiments.spectr needs PyTorch: pip install 'monge[torch]'") from exc

from .data import CharTokenizer
from .model import DraftGRU, TargetTransformer

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
