"""Training and evaluation steps of the speech–text experiment: the text translation model, the
speech encoder's pre-training (CE, CTC, CTC + OT), fine-tuning, the modality gap and BLEU."""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.speech_ctc_ot needs PyTorch: pip install 'monge[speech]'") from exc

from ... import torch as mt
from ..._policy import ConvergenceWarning
from ...losses import sinkhorn_divergence
from ...speech import length_weights, ot_alignment_loss, position_features
from ..ranking import ranks
from .model import Decoder, SpeechEncoder, TextEncoder

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
                                 max_iter=s.ot_max_iter, reduction=_reduction(s))


def _reduction(s):
    """'sum' for the release's normalisation (CTC per utterance, both summed over the batch)."""
    return "sum" if s.loss_norm == "paper" else "mean"


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
            ctc = mt.ctc_loss(lp, ids, Lo, Lt, blank=0, zero_infinity=True,
                              reduction=_reduction(s))
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


@dataclass
class Gap:
    """The modality gap on the test sentences (:func:`modality_gap`).

    divergence     mean Sinkhorn divergence between speech and text encodings of the same sentence
    retrieval      speech -> text retrieval accuracy (ties count as misses)
    solves         divergences computed (one per test sentence)
    unconverged    how many of them stopped at max_iter above the marginal tolerance
    max_error      the largest marginal error among all of them
    """

    divergence: float
    retrieval: float
    solves: int
    unconverged: int
    max_error: float


@torch.no_grad()
def modality_gap(data, speech_enc, text_enc, s):
    """Mean Sinkhorn divergence (with position features, as :func:`monge.speech.ot_alignment_loss`
    computes it, at most s.gap_max_iter iterations) between the speech and text encodings of the
    same test sentences, and speech -> text retrieval accuracy (cosine of mean-pooled encodings over
    all test sentences; a hit when a sentence with the spoken transcript scores strictly above every
    sentence with another transcript: ties count as misses).  Returns a :class:`Gap`; solves that
    did not converge are counted in it and reported by one ConvergenceWarning."""
    sp, tx = encode_test(data, speech_enc, text_enc, s)
    divs, converged, errors = [], [], []
    for idx in _chunks(len(sp)):
        hs = nn.utils.rnn.pad_sequence([sp[i] for i in idx], batch_first=True).double()
        ht = nn.utils.rnn.pad_sequence([tx[i] for i in idx], batch_first=True).double()
        Ls = torch.as_tensor([sp[i].shape[0] for i in idx])
        Lt = torch.as_tensor([tx[i].shape[0] for i in idx])
        x, y = position_features(hs, Ls, s.pos_weight), position_features(ht, Lt, s.pos_weight)
        a, b = length_weights(Ls, hs.shape[1]), length_weights(Lt, ht.shape[1])
        with warnings.catch_warnings():
            # each batch's warning names one pair only: the flags are counted over all pairs below
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = sinkhorn_divergence(x.numpy(), y.numpy(), a.numpy(), b.numpy(), eps=s.gap_eps,
                                    max_iter=s.gap_max_iter)
        divs.append(np.atleast_1d(r.value))
        converged.append(np.atleast_1d(r.converged))
        errors.append(np.atleast_1d(r.error))
    divs, converged, errors = (np.concatenate(v) for v in (divs, converged, errors))
    unconverged = int((~converged).sum())
    if unconverged:
        warnings.warn(f"modality_gap: {unconverged} of {len(divs)} speech-text Sinkhorn divergences "
                      f"did not converge in {s.gap_max_iter} iterations (largest marginal error "
                      f"{errors.max():.3g}); counted in the results as gap_unconverged",
                      ConvergenceWarning, stacklevel=2)
    ps = F.normalize(torch.stack([h.mean(0) for h in sp]), dim=-1)
    pt = F.normalize(torch.stack([h.mean(0) for h in tx]), dim=-1)
    # every test sentence with the spoken transcript is a right answer (a transcript may repeat)
    _, code = np.unique(np.asarray(data.test.src, dtype=str), return_inverse=True)
    acc = float(np.mean(ranks((ps @ pt.T).numpy(), code[:, None] == code[None, :]) == 1))
    return Gap(float(divs.mean()), acc, len(divs), unconverged, float(errors.max()))


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
