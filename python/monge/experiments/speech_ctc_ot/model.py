"""The models of the speech–text experiment: character / word vocabularies, padded batches of a
corpus split by speakers (:class:`Data`), the speech encoder (log-mel -> conv subsampling -> small
Transformer), the text encoder and the attention decoder."""
from __future__ import annotations

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover
    raise ImportError("monge.experiments.speech_ctc_ot needs PyTorch: pip install 'monge[speech]'") from exc

from . import data as ds

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
    """A corpus split by speakers, features normalised with the training statistics, tokenised.

    ``test`` is the split measured: the held-out test speakers, or with settings.evaluate = 'dev'
    the dev speakers (chosen among the others, which then train without them; the test
    speakers stay out of both)."""

    def __init__(self, corpus, settings):
        train_spk, test_spk = ds.split_speakers(corpus.speakers, settings.n_test_speakers,
                                                seed=settings.data_seed)
        if settings.evaluate == "dev":
            train_spk, test_spk = ds.split_speakers(train_spk, settings.n_dev_speakers,
                                                    seed=settings.data_seed + 1)
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
