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
    python -m monge.experiments.speech_ctc_ot --quick                             # seconds, eSpeak

Features are cached as npz under --cache-dir (default ~/.cache/monge/speech).
FSDD: github.com/Jakobovski/free-spoken-digit-dataset (3,000 recordings, 6 speakers).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.speech_ctc_ot needs PyTorch: pip install 'monge[speech]'") from exc

from .. import datasets_speech as ds
from .. import torch as mt
from ..sinkhorn import ConvergenceWarning
from ..speech import ot_alignment_loss

VARIANTS = ("none", "ce", "ctc", "ctc+ot")


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
    dropout: float = 0.1
    n_utterances: int = 1500
    n_test_speakers: int = 2
    data_seed: int = 0
    seeds: tuple = (0, 1, 2)
    variants: tuple = ("ce", "ctc", "ctc+ot")


def quick_settings(**kw):
    s = Settings(d_model=32, d_ff=64, speech_layers=1, text_layers=1, mt_steps=50, pre_steps=30,
                 ft_steps=15, n_utterances=100, seeds=(0,), batch=16)
    return replace(s, **kw)


# ------------------------------------------------------------------ vocabularies and batches


class Vocab:
    """Tokens (characters or words) -> ids; 0 = pad (also the CTC blank), 1 = <s>, 2 = </s>."""

    def __init__(self, texts, words):
        self.words = words
        toks = sorted({t for s in texts for t in self.split(s)})
        self.itos = ["<pad>", "<s>", "</s>", "<unk>"] + toks
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def split(self, s):
        return s.split() if self.words else list(s)

    def __len__(self):
        return len(self.itos)

    def encode(self, s):
        return [self.stoi.get(t, 3) for t in self.split(s)]

    def decode(self, ids):
        out = []
        for i in ids:
            if i == 2:
                break
            if i > 3:
                out.append(self.itos[i])
        return (" " if self.words else "").join(out)


def pad(seqs, value=0):
    L = max(len(s) for s in seqs)
    out = torch.full((len(seqs), L), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, torch.as_tensor([len(s) for s in seqs], dtype=torch.long)


class Data:
    """A corpus split by speakers, features normalised with the training statistics, tokenised."""

    def __init__(self, corpus, settings):
        train_spk, test_spk = ds.split_speakers(corpus.speakers, settings.n_test_speakers,
                                                seed=settings.data_seed)
        self.train_speakers, self.test_speakers = train_spk, test_spk
        self.train, self.test = corpus.by_speakers(train_spk), corpus.by_speakers(test_spk)
        if len(self.train) == 0 or len(self.test) == 0:
            raise ValueError("corpus: a split by speakers left no training or no test utterances")
        allf = np.concatenate(self.train.feats)
        self.mean, self.std = allf.mean(0), allf.std(0) + 1e-5
        self.src_vocab = Vocab(self.train.src, words=False)
        self.tgt_vocab = Vocab(self.train.tgt, words=True)

    def feats(self, split, idx):
        c = getattr(self, split)
        fs = [torch.from_numpy((c.feats[i] - self.mean) / self.std) for i in idx]
        L = torch.as_tensor([f.shape[0] for f in fs])
        x = torch.zeros(len(fs), int(L.max()), fs[0].shape[1])
        for i, f in enumerate(fs):
            x[i, : f.shape[0]] = f
        return x, L

    def src(self, split, idx):
        c = getattr(self, split)
        return pad([self.src_vocab.encode(c.src[i]) for i in idx])

    def tgt(self, split, idx):
        """(decoder input with <s>, decoder output with </s>)."""
        c = getattr(self, split)
        ids = [self.tgt_vocab.encode(c.tgt[i]) for i in idx]
        return pad([[1] + s for s in ids])[0], pad([s + [2] for s in ids])[0]

    def src_dec(self, split, idx):
        c = getattr(self, split)
        ids = [self.src_vocab.encode(c.src[i]) for i in idx]
        return pad([[1] + s for s in ids])[0], pad([s + [2] for s in ids])[0]


# ------------------------------------------------------------------ models


def sinusoid(T, d):
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    i = torch.arange(0, d, 2, dtype=torch.float32)[None]
    ang = pos / torch.pow(10000.0, i / d)
    pe = torch.zeros(T, d)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(ang), torch.cos(ang[:, : d // 2])
    return pe


def _encoder(s, layers):
    layer = nn.TransformerEncoderLayer(s.d_model, s.n_heads, s.d_ff, s.dropout, batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class SpeechEncoder(nn.Module):
    """log-mel (B, T, 80) -> conv subsampling (stride 2, twice for x4) -> Transformer -> LayerNorm."""

    def __init__(self, s, n_mels=80):
        super().__init__()
        self.s2 = 2 if s.subsample == 4 else 1
        self.conv1 = nn.Conv1d(n_mels, s.d_model, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(s.d_model, s.d_model, 3, stride=self.s2, padding=1)
        self.enc = _encoder(s, s.speech_layers)
        self.norm = nn.LayerNorm(s.d_model)
        self.d = s.d_model

    def out_lengths(self, L):
        L = (L - 1) // 2 + 1
        return (L - 1) // self.s2 + 1

    def forward(self, x, L):
        h = F.gelu(self.conv1(x.transpose(1, 2)))
        h = F.gelu(self.conv2(h)).transpose(1, 2)
        Lo = self.out_lengths(L)
        h = h + sinusoid(h.shape[1], self.d)
        mask = torch.arange(h.shape[1])[None] >= Lo[:, None]
        return self.norm(self.enc(h, src_key_padding_mask=mask)), Lo


class TextEncoder(nn.Module):
    def __init__(self, s, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, s.d_model, padding_idx=0)
        self.enc = _encoder(s, s.text_layers)
        self.norm = nn.LayerNorm(s.d_model)
        self.d = s.d_model

    def forward(self, ids, L):
        h = self.emb(ids) + sinusoid(ids.shape[1], self.d)
        mask = torch.arange(ids.shape[1])[None] >= L[:, None]
        return self.norm(self.enc(h, src_key_padding_mask=mask)), L


class Decoder(nn.Module):
    """Attention decoder over an encoder memory (B, S, d) with lengths."""

    def __init__(self, s, vocab):
        super().__init__()
        self.emb = nn.Embedding(vocab, s.d_model, padding_idx=0)
        layer = nn.TransformerDecoderLayer(s.d_model, s.n_heads, s.d_ff, s.dropout, batch_first=True,
                                           norm_first=True)
        self.dec = nn.TransformerDecoder(layer, s.dec_layers)
        self.norm = nn.LayerNorm(s.d_model)
        self.out = nn.Linear(s.d_model, vocab)
        self.d = s.d_model

    def forward(self, inp, memory, mem_L):
        T = inp.shape[1]
        h = self.emb(inp) + sinusoid(T, self.d)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        mmask = torch.arange(memory.shape[1])[None] >= mem_L[:, None]
        h = self.dec(h, memory, tgt_mask=causal, memory_key_padding_mask=mmask,
                     tgt_key_padding_mask=inp == 0)
        return self.out(self.norm(h))

    @torch.no_grad()
    def greedy(self, memory, mem_L, max_len):
        B = memory.shape[0]
        ys = torch.ones(B, 1, dtype=torch.long)
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_len):
            nxt = self(ys, memory, mem_L)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)
            ys = torch.cat([ys, nxt[:, None]], 1)
            done |= nxt == 2
            if done.all():
                break
        return ys[:, 1:]


def ce_loss(logits, target):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=0)


# ------------------------------------------------------------------ training


def _batches(n, batch, steps, rng):
    for _ in range(steps):
        yield rng.choice(n, size=min(batch, n), replace=False)


def _opt(params, s, steps):
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.01)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps)))
    return opt, sched


def _step(opt, sched, loss, params):
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()


def train_mt(data, s, seed):
    torch.manual_seed(seed)
    enc, dec = TextEncoder(s, len(data.src_vocab)), Decoder(s, len(data.tgt_vocab))
    params = list(enc.parameters()) + list(dec.parameters())
    opt, sched = _opt(params, s, s.mt_steps)
    rng = np.random.default_rng(seed)
    enc.train(), dec.train()
    for idx in _batches(len(data.train), s.batch, s.mt_steps, rng):
        ids, L = data.src("train", idx)
        inp, out = data.tgt("train", idx)
        mem, _ = enc(ids, L)
        _step(opt, sched, ce_loss(dec(inp, mem, L), out), params)
    enc.eval(), dec.eval()
    return enc, dec


def ot_loss(h_s, L_s, h_t, L_t, s):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ot_alignment_loss(h_s, h_t, L_s, L_t, eps=s.ot_eps, position_weight=s.pos_weight,
                                 max_iter=500)


def pretrain(data, s, variant, text_enc, seed):
    """A speech encoder pre-trained with `variant`; returns (encoder, loss history)."""
    torch.manual_seed(1000 + seed)
    enc = SpeechEncoder(s)
    if variant == "none":
        return enc.eval(), []
    heads = nn.ModuleDict()
    if variant == "ce":
        heads["dec"] = Decoder(s, len(data.src_vocab))
    else:
        heads["ctc"] = nn.Linear(s.d_model, len(data.src_vocab))  # id 0 (pad) is the blank
    params = list(enc.parameters()) + list(heads.parameters())
    opt, sched = _opt(params, s, s.pre_steps)
    rng = np.random.default_rng(seed + 7)
    history = []
    enc.train(), heads.train()
    for idx in _batches(len(data.train), s.batch, s.pre_steps, rng):
        x, L = data.feats("train", idx)
        h, Lo = enc(x, L)
        if variant == "ce":
            inp, out = data.src_dec("train", idx)
            loss = ce_loss(heads["dec"](inp, h, Lo), out)
            parts = {"ce": loss.item()}
        else:
            ids, Lt = data.src("train", idx)
            lp = heads["ctc"](h).log_softmax(-1).transpose(0, 1)
            ctc = mt.ctc_loss(lp, ids, Lo, Lt, blank=0, zero_infinity=True)
            loss = s.ctc_weight * ctc
            parts = {"ctc": ctc.item()}
            if variant == "ctc+ot":
                with torch.no_grad():
                    ht, _ = text_enc(ids, Lt)
                ot = ot_loss(h, Lo, ht, Lt, s)
                loss = loss + s.ot_weight * ot
                parts["ot"] = ot.item()
        _step(opt, sched, loss, params)
        history.append(parts)
    return enc.eval(), history


def finetune(data, s, enc, mt_dec, seed):
    """Speech translation: the pre-trained speech encoder + a copy of the MT decoder, cross-entropy."""
    torch.manual_seed(2000 + seed)
    enc = _copy(enc, SpeechEncoder(s))
    dec = _copy(mt_dec, Decoder(s, len(data.tgt_vocab)))
    params = list(enc.parameters()) + list(dec.parameters())
    opt, sched = _opt(params, s, s.ft_steps)
    rng = np.random.default_rng(seed + 11)
    enc.train(), dec.train()
    for idx in _batches(len(data.train), s.batch, s.ft_steps, rng):
        x, L = data.feats("train", idx)
        inp, out = data.tgt("train", idx)
        h, Lo = enc(x, L)
        _step(opt, sched, ce_loss(dec(inp, h, Lo), out), params)
    return enc.eval(), dec.eval()


def _copy(src, dst):
    dst.load_state_dict(src.state_dict())
    return dst


# ------------------------------------------------------------------ evaluation


def _chunks(n, size=64):
    for i in range(0, n, size):
        yield np.arange(i, min(n, i + size))


@torch.no_grad()
def encode_test(data, speech_enc, text_enc, s):
    """Per test utterance: speech encodings, text encodings (lists of (T, d) arrays)."""
    sp, tx = [], []
    for idx in _chunks(len(data.test)):
        x, L = data.feats("test", idx)
        h, Lo = speech_enc(x, L)
        ids, Lt = data.src("test", idx)
        ht, _ = text_enc(ids, Lt)
        sp += [h[i, : Lo[i]] for i in range(len(idx))]
        tx += [ht[i, : Lt[i]] for i in range(len(idx))]
    return sp, tx


@torch.no_grad()
def modality_gap(data, speech_enc, text_enc, s):
    """Mean Sinkhorn divergence (with position features) between the speech and text encodings of
    the same test sentences, and speech -> text retrieval accuracy (cosine of mean-pooled
    encodings over all test sentences; a hit when the retrieved transcript is the spoken one)."""
    sp, tx = encode_test(data, speech_enc, text_enc, s)
    divs = []
    for idx in _chunks(len(sp)):
        hs = nn.utils.rnn.pad_sequence([sp[i] for i in idx], batch_first=True)
        ht = nn.utils.rnn.pad_sequence([tx[i] for i in idx], batch_first=True)
        Ls = torch.as_tensor([sp[i].shape[0] for i in idx])
        Lt = torch.as_tensor([tx[i].shape[0] for i in idx])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            divs.append(ot_alignment_loss(hs.double(), ht.double(), Ls, Lt, eps=s.ot_eps,
                                          position_weight=s.pos_weight, reduction="none"))
    ps = F.normalize(torch.stack([h.mean(0) for h in sp]), dim=-1)
    pt = F.normalize(torch.stack([h.mean(0) for h in tx]), dim=-1)
    best = (ps @ pt.T).argmax(1).tolist()
    src = data.test.src
    acc = float(np.mean([src[j] == src[i] for i, j in enumerate(best)]))
    return float(torch.cat(divs).mean()), acc


@torch.no_grad()
def bleu(data, enc, dec):
    import sacrebleu

    hyps = []
    max_len = max(len(t.split()) for t in data.train.tgt) + 3
    for idx in _chunks(len(data.test)):
        x, L = data.feats("test", idx)
        h, Lo = enc(x, L)
        hyps += [data.tgt_vocab.decode(r.tolist()) for r in dec.greedy(h, Lo, max_len)]
    return float(sacrebleu.corpus_bleu(hyps, [list(data.test.tgt)]).score), hyps


@torch.no_grad()
def mt_bleu(data, text_enc, dec):
    import sacrebleu

    hyps = []
    max_len = max(len(t.split()) for t in data.train.tgt) + 3
    for idx in _chunks(len(data.test)):
        ids, L = data.src("test", idx)
        h, _ = text_enc(ids, L)
        hyps += [data.tgt_vocab.decode(r.tolist()) for r in dec.greedy(h, L, max_len)]
    return float(sacrebleu.corpus_bleu(hyps, [list(data.test.tgt)]).score)


# ------------------------------------------------------------------ driver


def run(corpus, settings=None, verbose=False, threads=1):
    """Every variant x seed on `corpus` (a :class:`monge.datasets_speech.Corpus`).  Returns a dict
    with per-run rows, a summary (mean, std over seeds per variant) and info."""
    s = settings or Settings()
    for v in s.variants:
        if v not in VARIANTS:
            raise ValueError(f"variants: unknown variant {v!r}; expected some of {', '.join(VARIANTS)}")
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
            div, acc = modality_gap(data, enc, text_enc, s)
            zs, _ = bleu(data, enc, mt_dec)
            fenc, fdec = finetune(data, s, enc, mt_dec, seed)
            ft, hyps = bleu(data, fenc, fdec)
            last = {k: float(np.mean([h[k] for h in hist[-20:]])) for k in (hist[-1] if hist else {})}
            row = dict(seed=seed, variant=v, divergence=div, retrieval=acc, bleu_zero_shot=zs,
                       bleu=ft, mt_bleu=mtb, final_losses=last, seconds=time.time() - t,
                       examples=[[data.test.src[i], data.test.tgt[i], hyps[i]] for i in range(3)])
            rows.append(row)
            log(f"seed {seed} {v:7s}: gap S_eps {div:8.3f}  retrieval {acc:.3f}  zero-shot BLEU "
                f"{zs:5.1f}  BLEU {ft:5.1f}  losses {last}  ({row['seconds']:.0f} s)")
    summary = {}
    for v in s.variants:
        r = [x for x in rows if x["variant"] == v]
        summary[v] = {k: (float(np.mean([x[k] for x in r])), float(np.std([x[k] for x in r])))
                      for k in ("divergence", "retrieval", "bleu_zero_shot", "bleu", "mt_bleu")}
    info = dict(settings=asdict(s), n_train=len(data.train), n_test=len(data.test),
                train_speakers=data.train_speakers, test_speakers=data.test_speakers,
                corpus=corpus.info.get("kind"), seconds=time.time() - t0, threads=threads)
    return dict(rows=rows, summary=summary, info=info)


def format_table(res):
    lines = ["| variant | S_eps speech-text (lower: smaller gap) | retrieval acc. | BLEU zero-shot | "
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
    return "\n".join(lines)


def load_corpus(kind, data=None, manifest=None, n_utterances=1500, data_seed=0, cache_dir="default"):
    if manifest:
        return ds.manifest_corpus(manifest)
    if kind == "fsdd":
        if data is None:
            raise ValueError("data: the FSDD corpus needs --data DIR (the dataset's folder)")
        return ds.digit_sequence_corpus(data, n_utterances, seed=data_seed, cache_dir=cache_dir)
    if kind == "tts":
        return ds.synthetic_corpus(n_utterances, seed=data_seed, cache_dir=cache_dir)
    raise ValueError(f"corpus: expected 'fsdd' or 'tts', got {kind!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("MONGE_FSDD"),
                    help="FSDD folder (with recordings/); implies --corpus fsdd")
    ap.add_argument("--corpus", choices=("fsdd", "tts"), help="default: fsdd with --data, else tts")
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
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", help="write the results as JSON")
    args = ap.parse_args(argv)
    s = quick_settings() if args.quick else Settings()
    s = replace(s, seeds=tuple(range(1 if args.quick else args.seeds)))
    for name, attr in (("utterances", "n_utterances"), ("ot_weight", "ot_weight"),
                       ("pos_weight", "pos_weight"), ("ot_eps", "ot_eps"),
                       ("mt_steps", "mt_steps"), ("pre_steps", "pre_steps"),
                       ("ft_steps", "ft_steps")):
        if getattr(args, name) is not None:
            s = replace(s, **{attr: getattr(args, name)})
    if args.variants:
        s = replace(s, variants=tuple(v.strip() for v in args.variants.split(",")))
    kind = args.corpus or ("fsdd" if args.data else "tts")
    corpus = load_corpus(kind, args.data, args.manifest, s.n_utterances, s.data_seed,
                         None if args.no_cache else args.cache_dir)
    res = run(corpus, s, verbose=True, threads=args.threads)
    print(format_table(res))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
