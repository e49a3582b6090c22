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
    python -m monge.experiments.spectr --quick --toy                                # seconds, own text
    python -m monge.experiments.spectr --data ... --cache-dir ~/.cache/monge --out results.json

The training text is always named: --data FILE, or --toy for the corpus the project generates
(data.toy_corpus); with neither the command stops.  The table and the results file say which.

Weights are cached as npz + JSON (never pickles) under --cache-dir (default ~/.cache/monge/spectr).
Tiny Shakespeare: github.com/karpathy/char-rnn, data/tinyshakespeare/input.txt.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - the experiment needs the torch extra
    raise ImportError("monge.experiments.spectr needs PyTorch: pip install 'monge[torch]'") from exc

from .data import toy_corpus
from .decode import (SpecStats, _ks_uniform, _welch, _z_loglik, sample_draft_only, sample_target,
                     spectr_generate)
from .train import Settings, get_models, quick_settings


# ------------------------------------------------------------------ the experiment


def run(text, settings=None, cache_dir=None, seed=0, verbose=False, threads=1, *, source):
    """Trains (or loads) the two models and measures every (K, L).  `source` describes where
    `text` came from (a file, or the generated toy corpus); it is required so that no result is
    reported without it.  Returns a dict with the source, the models' info, the target baseline
    and one row per (K, L)."""
    if not isinstance(source, str):
        raise TypeError(f"source: expected a string describing the training text, got "
                        f"{type(source).__name__}")
    if not source.strip():
        raise ValueError("source: expected a non-empty description of the training text")
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
    return dict(source=source, info=info, settings=asdict(settings), baseline=baseline,
                control=control, rows=rows, vocab=tok.vocab_size, threads=threads)


def format_table(res):
    lines = [f"data: {res['source']}\n",
             "| K | L | acceptance | block efficiency | ms/token | speed-up | PIT KS p | log-lik z p "
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


def render(path):
    """The table of a results file written by ``--out``, and the line naming its run."""
    from .._results import source_line

    res = json.loads(Path(path).read_text())
    return format_table(res) + "\n\n" + source_line(path, res["meta"]) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m monge.experiments.spectr",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="training text (Tiny Shakespeare)")
    ap.add_argument("--toy", action="store_true",
                    help="train on the toy corpus the project generates instead of --data")
    ap.add_argument("--quick", action="store_true", help="tiny models and few sequences")
    ap.add_argument("--cache-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "monge", "spectr"),
                    help="where trained weights are cached (npz + JSON)")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", help="results JSON (meta: command, commit, machine, versions, data "
                    "and its sha256; the rows and the baselines)")
    ap.add_argument("--render", metavar="JSON", help="print the table of a results file and exit")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render))
        return
    from .. import _results

    meta = _results.start("python -m monge.experiments.spectr", argv)
    # generated text only on request: a run without data must not pass for a run on data
    if args.data and args.toy:
        ap.error("--data and --toy exclude each other: give one training text")
    if args.data:
        text = Path(args.data).read_text(encoding="utf-8")
        source = f"file {args.data} ({len(text)} characters)"
    elif args.toy:
        text = toy_corpus()
        source = f"generated toy corpus (data.toy_corpus, seed 0; {len(text)} characters)"
    else:
        ap.error("no training text: give --data FILE (e.g. Tiny Shakespeare) or --toy to train "
                 "on the generated toy corpus")
    settings = quick_settings() if args.quick else Settings()
    res = run(text, settings, None if args.no_cache else args.cache_dir, args.seed, verbose=True,
              threads=args.threads, source=source)
    print(json.dumps(res["info"], indent=1))
    print(format_table(res))
    if args.out:
        data = (dict(path=os.path.abspath(args.data), sha256=_results.sha256(args.data))
                if args.data else source)
        Path(args.out).write_text(json.dumps(dict(meta=_results.finish(meta, data=data), **res),
                                             indent=1))


if __name__ == "__main__":
    main()
