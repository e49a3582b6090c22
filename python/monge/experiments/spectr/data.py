"""The text of the SpecTr experiment: a small generated corpus and the character tokenizer."""
from __future__ import annotations

import numpy as np


# ------------------------------------------------------------------ data


def toy_corpus(n_lines=600, seed=0):
    """A small text the project generates itself (for tests and the quick notebook): lines from a
    tiny grammar of speakers and verses, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    names = ["ROMEO", "JULIET", "NURSE", "FRIAR", "KING", "QUEEN"]
    subj = ["the moon", "my heart", "thy love", "the night", "a rose", "this sword", "the king"]
    verb = ["doth shine", "is sweet", "shall fall", "will rise", "hath gone", "must wait"]
    tail = ["upon the hill", "in the garden", "for ever", "before the dawn", "with thee", "tonight"]
    lines = []
    for _ in range(n_lines):
        if rng.random() < 0.2:
            lines.append(f"{names[rng.integers(len(names))]}:")
        else:
            s = f"{subj[rng.integers(len(subj))]} {verb[rng.integers(len(verb))]}"
            if rng.random() < 0.6:
                s += f" {tail[rng.integers(len(tail))]}"
            lines.append(s[0].upper() + s[1:] + (",", ".", "!", ";")[rng.integers(4)])
    return "\n".join(lines) + "\n"


class CharTokenizer:
    """Characters of the training text, sorted; ids are positions in that list."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        return [self.index[c] for c in s]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)
