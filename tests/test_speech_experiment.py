"""The CTC + OT pre-training experiment end to end at a seconds scale, on a corpus synthesised here."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from monge.experiments.speech_ctc_ot import data as ds
from monge.experiments.speech_ctc_ot import run as E
from monge.experiments.speech_ctc_ot.model import Data, SpeechEncoder, TextEncoder, Vocab
from monge.experiments.speech_ctc_ot.train import modality_gap


@pytest.fixture(scope="module")
def corpus():
    return ds.synthetic_corpus(100, seed=0, cache_dir=None)


@pytest.fixture(scope="module")
def random_data():
    """A hand-made corpus of random features (no synthesis): 4 speakers, 2 held out, a few
    repeated transcripts."""
    rng = np.random.default_rng(0)
    sents = ds.grammar_sentences(24, seed=1)
    sents[5] = sents[11] = sents[17] = sents[0]
    feats = [rng.normal(size=(int(rng.integers(20, 40)), 80)).astype(np.float32) for _ in sents]
    corpus = ds.Corpus(feats, sents, [ds.translate_en_fr(x) for x in sents],
                       [f"s{i % 4}" for i in range(24)], [f"u{i}" for i in range(24)],
                       {"kind": "hand-made test corpus"})
    s = E.quick_settings()
    return Data(corpus, s), s


class _Constant(torch.nn.Module):
    """An encoder that outputs the same vector for every position of every input."""

    def __init__(self, d):
        super().__init__()
        self.d = d

    def forward(self, x, L):
        return torch.ones(x.shape[0], x.shape[1], self.d), L


def test_retrieval_counts_ties_as_misses(random_data):
    """Encoders that map everything to one vector score every sentence the same: no hits (an
    argmax would have picked sentence 0 and counted the sentences sharing its transcript)."""
    data, s = random_data
    div, acc = modality_gap(data, _Constant(s.d_model), _Constant(s.d_model), s)
    assert acc == 0.0


def test_vocab_and_encoder_lengths():
    v = Vocab(["drei eins", "null"], words=True)
    assert v.decode(v.encode("eins null drei") + [2, 5]) == "eins null drei"
    c = Vocab(["abc"], words=False)
    assert c.decode(c.encode("cab")) == "cab" and c.encode("z") == [3]
    enc = SpeechEncoder(E.quick_settings()).eval()
    x = torch.randn(3, 37, 80)
    L = torch.tensor([37, 20, 9])
    h, Lo = enc(x, L)
    assert h.shape[1] == int(Lo.max()) == math.ceil(37 / 4) and Lo.tolist() == [10, 5, 3]


def test_run_quick(corpus):
    s = replace(E.quick_settings(), variants=("ctc", "ctc+ot"), n_test_speakers=2, pre_steps=50,
                ot_weight=1.0)
    res = E.run(corpus, s)
    assert set(res["summary"]) == {"ctc", "ctc+ot"} and len(res["rows"]) == 2
    for r in res["rows"]:
        assert math.isfinite(r["divergence"]) and r["divergence"] > 0
        assert 0 <= r["retrieval"] <= 1 and 0 <= r["bleu"] <= 100
    div = {r["variant"]: r["divergence"] for r in res["rows"]}
    # the OT term pulls the speech encodings toward the text encodings of the same sentences
    assert div["ctc+ot"] < 0.7 * div["ctc"]
    assert not set(res["info"]["train_speakers"]) & set(res["info"]["test_speakers"])
    assert "ctc+ot" in E.format_table(res)
    with pytest.raises(ValueError, match="variants"):
        E.run(corpus, replace(s, variants=("ctc", "mystery")))
