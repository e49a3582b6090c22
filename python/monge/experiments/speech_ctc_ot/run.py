"""Speech–text pre-training with CTC and optimal transport, then speech translation (issue 7; Le et al.,
ICML 2023, "Pre-training for Speech Translation: CTC Meets Optimal Transport"), at a CPU scale.

Per seed:
    1. A text translation model (MT) is trained on the (English transcript -> translation) pairs of the
       training speakers: a character-level text encoder and a word-level attention decoder.
    2. A speech encoder (log-mel -> conv subsampling x4 -> small Transformer) is pre-trained on the
       training speakers' audio with one of
         ce       a small attention decoder predicting the transcript's characters (cross-entropy);
         ctc      a linear CTC head over the transcript's characters (monge.torch.ctc_loss);
         ctc+ot   CTC (weight 1.0) + OT (weight 0.1): the Sinkhorn divergence between the speech
                  encoder's output and the text encoder's output for the same sentence, each frame /
                  token extended with its relative position x 1.0 (monge.speech.ot_alignment_loss);
                  the siamese text branch is the MT model's text encoder, frozen;
         none     no pre-training (random speech encoder; a reference point).
    3. Measured on the HELD-OUT speakers: the modality gap between the speech encoder's and the text
       encoder's encodings of the same sentences (mean Sinkhorn divergence, with positions, and
       speech -> text retrieval accuracy of mean-pooled encodings by cosine; a hit when the retrieved
       transcript equals the spoken one), BLEU of the speech encoder + MT decoder with no fine-tuning
       (zero-shot), and BLEU after fine-tuning speech translation (speech encoder + MT decoder,
       cross-entropy on translations of the training speakers), greedy decoding, sacrebleu.

    python -m monge.experiments.speech_ctc_ot --data /path/to/fsdd               # FSDD, 3 seeds
    python -m monge.experiments.speech_ctc_ot --corpus tts                        # eSpeak NG corpus
    python -m monge.experiments.speech_ctc_ot --manifest train.tsv                # own manifest
    python -m monge.experiments.speech_ctc_ot --quick --corpus tts                # seconds, eSpeak

The corpus is always named: --data DIR (or $MONGE_FSDD) for FSDD, --manifest, or --corpus tts for
the synthesised one; with none of them the command stops.  The table and the results file say which.

Features are cached as npz under --cache-dir (default ~/.cache/monge/speech).
FSDD: github.com/Jakobovski/free-spoken-digit-dataset (3,000 recordings, 6 speakers).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.speech_ctc_ot needs PyTorch: pip install 'monge[speech]'") from exc

from .._results import mean_and_half_width
from . import data as ds
from .model import Data
from .train import bleu, finetune, modality_gap, mt_bleu, pretrain, train_mt

VARIANTS = ("none", "ce", "ctc", "ctc+ot")
LOSS_NORMS = ("mean", "paper")
# the release's GeomLoss loss (p = 2, blur 0.05) has cost |x - y|^2 / 2 and eps = blur^2; on
# our cost |x - y|^2 that is eps = 2 * 0.05^2
PAPER_OT_EPS = 0.005
PAPER_OT_MAX_ITER = 50000


@dataclass
class Settings:
    d_model: int = 64
    n_heads: int = 4
    d_ff: int = 128
    speech_layers: int = 2
    text_layers: int = 2
    dec_layers: int = 1
    subsample: int = 4            # conv subsampling of the speech encoder (2 or 4)
    batch: int = 32
    lr: float = 2e-3
    mt_steps: int = 300
    pre_steps: int = 500
    ft_steps: int = 200
    ctc_weight: float = 1.0
    ot_weight: float = 0.1
    pos_weight: float = 1.0
    ot_eps: float = 1.0
    # 'mean': CTC per character averaged over the batch (torch's 'mean'), OT averaged over the
    # batch; 'paper': the release's normalisation, CTC summed per utterance and both summed over
    # the batch (main() then takes ot_eps = PAPER_OT_EPS unless --ot-eps is given)
    loss_norm: str = "mean"
    # a cap on the training OT term's Sinkhorn iterations, room for its eps-scaling (a batch that
    # stops mid-scaling raises); PAPER_OT_MAX_ITER with loss_norm 'paper', whose eps is smaller
    ot_max_iter: int = 5000
    gap_eps: float = 1.0          # eps of the measured modality gap, the same for every loss_norm
    gap_max_iter: int = 2000      # Sinkhorn iterations per divergence of the measured modality gap
    dropout: float = 0.1
    n_utterances: int = 1500
    n_test_speakers: int = 2
    n_dev_speakers: int = 1
    evaluate: str = "test"        # 'dev': train without the dev speakers, measure on them
    data_seed: int = 0
    seeds: tuple = (0, 1, 2)
    variants: tuple = ("ce", "ctc", "ctc+ot")


def quick_settings(**kw):
    s = Settings(d_model=32, d_ff=64, speech_layers=1, text_layers=1, mt_steps=50, pre_steps=30,
                 ft_steps=15, n_utterances=100, seeds=(0,), batch=16)
    return replace(s, **kw)


# ------------------------------------------------------------------ driver


def run(corpus, settings=None, verbose=False, threads=1):
    """Every variant x seed on `corpus` (a :class:`.data.Corpus`).  Returns a dict
    with per-run rows, a summary (mean, sample std over seeds per variant) and info."""
    s = settings or Settings()
    source = describe_corpus(corpus)
    for v in s.variants:
        if v not in VARIANTS:
            raise ValueError(f"variants: unknown variant {v!r}; expected some of {', '.join(VARIANTS)}")
    if s.loss_norm not in LOSS_NORMS:
        raise ValueError(f"loss_norm: expected one of {', '.join(LOSS_NORMS)}, got {s.loss_norm!r}")
    if s.evaluate not in ("test", "dev"):
        raise ValueError(f"evaluate: expected 'test' or 'dev', got {s.evaluate!r}")
    torch.set_num_threads(threads)
    data = Data(corpus, s)
    log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if verbose else (lambda *a: None)
    rows = []
    t0 = time.time()
    for seed in s.seeds:
        t = time.time()
        text_enc, mt_dec = train_mt(data, s, seed)
        for p in text_enc.parameters():
            p.requires_grad_(False)
        mtb = mt_bleu(data, text_enc, mt_dec)
        log(f"seed {seed}: MT (text) BLEU {mtb:.1f} ({time.time() - t:.0f} s)")
        for v in s.variants:
            t = time.time()
            enc, hist = pretrain(data, s, v, text_enc, seed)
            gap = modality_gap(data, enc, text_enc, s)
            div, acc = gap.divergence, gap.retrieval
            zs, _ = bleu(data, enc, mt_dec)
            fenc, fdec = finetune(data, s, enc, mt_dec, seed)
            ft, hyps = bleu(data, fenc, fdec)
            last = {k: float(np.mean([h[k] for h in hist[-20:]])) for k in (hist[-1] if hist else {})}
            # how much the weighted CTC term outweighs the weighted OT term, over pre-training
            ratio = (float(np.mean([s.ctc_weight * h["ctc"] / (s.ot_weight * h["ot"])
                                    for h in hist if h.get("ot", 0) > 0]))
                     if v == "ctc+ot" and s.ot_weight > 0 and hist else None)
            row = dict(seed=seed, variant=v, divergence=div, retrieval=acc, bleu_zero_shot=zs,
                       bleu=ft, mt_bleu=mtb, gap_solves=gap.solves, gap_unconverged=gap.unconverged,
                       gap_max_error=gap.max_error, final_losses=last, ctc_ot_ratio=ratio,
                       seconds=time.time() - t,
                       examples=[[data.test.src[i], data.test.tgt[i], hyps[i]] for i in range(3)])
            rows.append(row)
            log(f"seed {seed} {v:7s}: gap S_eps {div:8.3f} ({gap.unconverged} of {gap.solves} "
                f"not converged)  retrieval {acc:.3f}  zero-shot BLEU {zs:5.1f}  BLEU {ft:5.1f}  "
                f"losses {last}  ({row['seconds']:.0f} s)")
    summary = {}
    for v in s.variants:
        r = [x for x in rows if x["variant"] == v]
        summary[v] = {k: (float(np.mean([x[k] for x in r])),
                         float(np.std([x[k] for x in r], ddof=1)) if len(r) > 1 else 0.0)
                      for k in ("divergence", "retrieval", "bleu_zero_shot", "bleu", "mt_bleu")}
        # totals over the seeds: how many gap divergences stopped short of the tolerance
        summary[v].update(gap_solves=sum(x["gap_solves"] for x in r),
                          gap_unconverged=sum(x["gap_unconverged"] for x in r))
    info = dict(settings=asdict(s), n_train=len(data.train), n_test=len(data.test),
                train_speakers=data.train_speakers, test_speakers=data.test_speakers,
                evaluated_on=s.evaluate,
                corpus=corpus.info.get("kind"), source=source, seconds=time.time() - t0,
                threads=threads)
    return dict(rows=rows, summary=summary, info=info)


def describe_corpus(corpus):
    """Where a corpus came from, in words, from its `info` (built by the loaders of :mod:`.data`):
    real recordings, a manifest, or speech synthesised here.  Printed with every table."""
    info = corpus.info
    kind = info.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ValueError("corpus: its info names no 'kind', so the results could not say what data "
                         "they come from; build it with a loader of .data or set info['kind']")
    n = len(corpus)
    if kind == "fsdd":
        where = f" in {info['root']}" if info.get("root") else ""
        return (f"FSDD digit sequences from real recordings{where} ({n} utterances, data seed "
                f"{info.get('seed')})")
    if kind == "tts":
        return (f"synthetic: grammar sentences spoken by eSpeak NG, generated here ({n} utterances, "
                f"data seed {info.get('seed')})")
    if kind == "manifest":
        return f"manifest {info.get('path')} ({n} utterances)"
    return f"{kind} ({n} utterances)"


# the paper's ordering, compared pairwise in format_table (later minus earlier, paired by seed)
ORDERING = (("ce", "ctc"), ("ctc", "ctc+ot"))


def paired_differences(rows, a, b, key):
    """(mean, half-width of the 95 % t-interval, n) of key(b) - key(a) over the seeds both ran."""
    by = {}
    for r in rows:
        by.setdefault(r["seed"], {})[r["variant"]] = r[key]
    return mean_and_half_width([m[b] - m[a] for m in by.values() if a in m and b in m])


def format_table(res):
    info = res["info"]
    norm = info["settings"]["loss_norm"]
    lines = [f"data: {info['source']}\n",
             f"measured on the {info.get('evaluated_on', 'test')} speakers "
             f"{', '.join(info['test_speakers'])}; loss normalisation {norm!r}, OT eps "
             f"{info['settings']['ot_eps']:g}, gap eps {info['settings']['gap_eps']:g}\n",
             "| variant | S_eps speech-text (lower: smaller gap) | retrieval acc. | BLEU zero-shot | "
             "BLEU fine-tuned |", "|---|---|---|---|---|"]
    for v, m in res["summary"].items():
        f = lambda k, p=3: f"{m[k][0]:.{p}f} ± {m[k][1]:.{p}f}"  # noqa: E731
        lines.append(f"| {v} | {f('divergence', 2)} | {f('retrieval')} | {f('bleu_zero_shot', 1)} | "
                     f"{f('bleu', 1)} |")
    mtb = next(iter(res["summary"].values()))["mt_bleu"]
    lines.append(f"\ntext MT BLEU (upper reference): {mtb[0]:.1f} ± {mtb[1]:.1f}; "
                 f"{res['info']['n_train']} train / {res['info']['n_test']} test utterances, "
                 f"test speakers {', '.join(res['info']['test_speakers'])}; "
                 f"{len(res['info']['settings']['seeds'])} seeds; {res['info']['seconds']:.0f} s")
    lines.append("S_eps solves that did not converge (all seeds): " + ", ".join(
        f"{v} {m['gap_unconverged']} of {m['gap_solves']}" for v, m in res["summary"].items()))
    ratios = [r["ctc_ot_ratio"] for r in res["rows"] if r.get("ctc_ot_ratio") is not None]
    if ratios:
        lines.append(f"weighted CTC / weighted OT loss during pre-training (ctc+ot, mean over steps "
                     f"and seeds): {np.mean(ratios):.3g}")
    pairs = [(a, b) for a, b in ORDERING if a in res["summary"] and b in res["summary"]]
    if pairs and len(info["settings"]["seeds"]) > 1:
        lines += ["", "Paired by seed, later minus earlier variant: mean ± half-width of the 95 % "
                  "t-interval (better / worse: the interval excludes 0)", "",
                  "| comparison | S_eps (lower is better) | retrieval | BLEU zero-shot | "
                  "BLEU fine-tuned |", "|---|---|---|---|---|"]
        for a, b in pairs:
            cells = []
            for key, p, lower in (("divergence", 2, True), ("retrieval", 3, False),
                                  ("bleu_zero_shot", 1, False), ("bleu", 1, False)):
                m, h, _ = paired_differences(res["rows"], a, b, key)
                gain = -m if lower else m
                verdict = "better" if gain - h > 0 else "worse" if gain + h < 0 else "not separated"
                cells.append(f"{m:+.{p}f} ± {h:.{p}f} ({verdict})")
            lines.append(f"| {b} − {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(path):
    """The tables of a results file written by ``--out``, and the line naming its run."""
    from .._results import source_line

    with open(path) as fh:
        res = json.load(fh)
    return format_table(res) + "\n\n" + source_line(path, res["meta"]) + "\n"


def load_corpus(kind, data=None, manifest=None, n_utterances=1500, data_seed=0, cache_dir="default"):
    """The corpus `kind` names: 'fsdd' (from the folder `data`), 'tts' (synthesised) or 'manifest'."""
    if kind == "manifest":
        if manifest is None:
            raise ValueError("manifest: the manifest corpus needs --manifest TSV")
        return ds.manifest_corpus(manifest)
    if kind == "fsdd":
        if data is None:
            raise ValueError("data: the FSDD corpus needs --data DIR (the dataset's folder)")
        return ds.digit_sequence_corpus(data, n_utterances, seed=data_seed, cache_dir=cache_dir)
    if kind == "tts":
        return ds.synthetic_corpus(n_utterances, seed=data_seed, cache_dir=cache_dir)
    raise ValueError(f"kind: expected 'fsdd', 'tts' or 'manifest', got {kind!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m monge.experiments.speech_ctc_ot",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="FSDD folder (with recordings/; default: $MONGE_FSDD); implies "
                                   "--corpus fsdd")
    ap.add_argument("--corpus", choices=("fsdd", "tts"),
                    help="fsdd (needs --data) or tts (speech synthesised with eSpeak NG); no default")
    ap.add_argument("--manifest", help="a speech-translation manifest TSV with a src_text column")
    ap.add_argument("--quick", action="store_true", help="tiny models, one seed, seconds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--variants", default=None, help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--utterances", type=int, default=None)
    ap.add_argument("--ot-weight", type=float, default=None)
    ap.add_argument("--pos-weight", type=float, default=None)
    ap.add_argument("--ot-eps", type=float, default=None)
    ap.add_argument("--mt-steps", type=int, default=None)
    ap.add_argument("--pre-steps", type=int, default=None)
    ap.add_argument("--ft-steps", type=int, default=None)
    ap.add_argument("--cache-dir", default=str(ds.default_cache_dir()))
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--loss-norm", choices=LOSS_NORMS, default="mean",
                    help="mean (default): CTC per character and OT averaged over the batch; paper: "
                         "the release's, CTC summed per utterance and both summed over the batch, "
                         f"with OT eps {PAPER_OT_EPS} unless --ot-eps is given")
    ap.add_argument("--ot-max-iter", type=int, default=None,
                    help=f"Sinkhorn iterations of the training OT term (default 5000; "
                         f"{PAPER_OT_MAX_ITER} with --loss-norm paper)")
    ap.add_argument("--gap-eps", type=float, default=None,
                    help="eps of the measured modality gap (default 1.0, whatever the training eps)")
    ap.add_argument("--evaluate", choices=("test", "dev"), default="test",
                    help="measure on the held-out test speakers (default) or on dev speakers carved "
                         "from the training speakers, for choosing settings")
    ap.add_argument("--dev-speakers", type=int, default=None, help="dev speakers (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", help="results JSON (meta: command, date, commit, machine, versions, "
                                  "data; the rows, the summary, the run's info)")
    ap.add_argument("--render", metavar="JSON", help="print the tables of a results file and exit")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render))
        return
    from .. import _results

    meta = _results.start("python -m monge.experiments.speech_ctc_ot", argv, extra=("torch", "sacrebleu"))
    s = quick_settings() if args.quick else Settings()
    s = replace(s, loss_norm=args.loss_norm, evaluate=args.evaluate)
    if args.loss_norm == "paper":
        s = replace(s, ot_eps=PAPER_OT_EPS, ot_max_iter=PAPER_OT_MAX_ITER)
    s = replace(s, seeds=tuple(range(1 if args.quick else args.seeds)))
    for name, attr in (("utterances", "n_utterances"), ("ot_weight", "ot_weight"),
                       ("pos_weight", "pos_weight"), ("ot_eps", "ot_eps"),
                       ("mt_steps", "mt_steps"), ("pre_steps", "pre_steps"),
                       ("ft_steps", "ft_steps"), ("gap_eps", "gap_eps"),
                       ("ot_max_iter", "ot_max_iter"),
                       ("dev_speakers", "n_dev_speakers")):
        if getattr(args, name) is not None:
            s = replace(s, **{attr: getattr(args, name)})
    if args.variants:
        s = replace(s, variants=tuple(v.strip() for v in args.variants.split(",")))
    # the corpus is chosen explicitly: synthesised speech only on --corpus tts, never as a fallback
    if args.manifest and (args.corpus or args.data):
        ap.error("--manifest excludes --corpus and --data: give one corpus")
    if args.corpus == "tts" and args.data:
        ap.error("--corpus tts excludes --data (an FSDD folder): give one corpus")
    data = args.data or os.environ.get("MONGE_FSDD")
    kind = "manifest" if args.manifest else args.corpus or ("fsdd" if data else None)
    if kind is None:
        ap.error("no corpus: give --data DIR (FSDD recordings; or set MONGE_FSDD), --manifest TSV, "
                 "or --corpus tts for speech synthesised with eSpeak NG")
    if kind == "fsdd" and not data:
        ap.error("--corpus fsdd needs --data DIR (the FSDD folder) or MONGE_FSDD")
    corpus = load_corpus(kind, data, args.manifest, s.n_utterances, s.data_seed,
                         None if args.no_cache else args.cache_dir)
    res = run(corpus, s, verbose=True, threads=args.threads)
    print(format_table(res))
    if args.out:
        record = dict(source=res["info"]["source"])
        if kind == "fsdd":
            record["path"] = os.path.abspath(data)
        elif kind == "manifest":
            record.update(path=os.path.abspath(args.manifest), sha256=_results.sha256(args.manifest))
        with open(args.out, "w") as f:
            json.dump(dict(meta=_results.finish(meta, data=record), **res), f, indent=1)


if __name__ == "__main__":
    main()
