"""The CTC + OT pre-training experiment end to end at a seconds scale, on a corpus synthesised here."""
import json
import math
import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from monge import ConvergenceWarning
from monge._policy import DEFAULTS
from monge.experiments.speech_ctc_ot import data as ds
from monge.experiments.speech_ctc_ot import run as E
from monge.experiments.speech_ctc_ot.model import Data, SpeechEncoder, TextEncoder, Vocab
from monge.experiments.speech_ctc_ot.train import encode_test, modality_gap
from monge.speech import ot_alignment_loss


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
    assert modality_gap(data, _Constant(s.d_model), _Constant(s.d_model), s).retrieval == 0.0


def _encoders(data, s):
    torch.manual_seed(0)
    return SpeechEncoder(s).eval(), TextEncoder(s, len(data.src_vocab)).eval()


def test_modality_gap_counts_converged_solves(random_data):
    """The gap is the paper's loss on every test pair; at the default iteration budget every
    divergence converges, the result says so and nothing is warned."""
    data, s = random_data
    speech, text = _encoders(data, s)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        gap = modality_gap(data, speech, text, s)
    n = len(data.test)
    assert gap.solves == n and gap.unconverged == 0 and 0 <= gap.max_error <= DEFAULTS["tol"]
    sp, tx = encode_test(data, speech, text, s)
    with torch.no_grad():
        ref = [ot_alignment_loss(a[None].double(), b[None].double(), eps=s.ot_eps,
                                 position_weight=s.pos_weight).item() for a, b in zip(sp, tx)]
    assert gap.divergence == pytest.approx(np.mean(ref), rel=1e-9)


def test_modality_gap_records_non_convergence(random_data):
    """Solves cut short are counted in the result and reported by one warning, not silenced."""
    data, s = random_data
    speech, text = _encoders(data, s)
    n = len(data.test)
    with pytest.warns(ConvergenceWarning, match=f"modality_gap: {n} of {n} .* did not converge in 1 "
                                                "iterations") as record:
        gap = modality_gap(data, speech, text, replace(s, gap_max_iter=1))
    assert len(record) == 1
    assert gap.solves == gap.unconverged == n and gap.max_error > DEFAULTS["tol"]


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
        assert r["gap_solves"] == res["info"]["n_test"] and r["gap_unconverged"] == 0
        assert 0 <= r["retrieval"] <= 1 and 0 <= r["bleu"] <= 100
    div = {r["variant"]: r["divergence"] for r in res["rows"]}
    # the OT term pulls the speech encodings toward the text encodings of the same sentences
    assert div["ctc+ot"] < 0.7 * div["ctc"]
    assert not set(res["info"]["train_speakers"]) & set(res["info"]["test_speakers"])
    table = E.format_table(res)
    assert "ctc+ot" in table and table.startswith("data: synthetic: grammar sentences spoken by eSpeak NG")
    n = res["info"]["n_test"]
    assert f"S_eps solves that did not converge (all seeds): ctc 0 of {n}, ctc+ot 0 of {n}" in table
    assert res["info"]["source"] == E.describe_corpus(corpus)
    with pytest.raises(ValueError, match="variants"):
        E.run(corpus, replace(s, variants=("ctc", "mystery")))


@pytest.mark.parametrize("argv, message", [
    ([], r"no corpus: give --data DIR .*--manifest TSV, or --corpus tts"),
    (["--corpus", "fsdd"], "--corpus fsdd needs --data DIR"),
    (["--corpus", "tts", "--data", "fsdd/"], "--corpus tts excludes --data"),
    (["--manifest", "m.tsv", "--corpus", "tts"], "--manifest excludes --corpus and --data"),
])
def test_cli_never_falls_back_to_synthesised_speech(argv, message, monkeypatch, capsys):
    """Without a corpus the command stops (it used to synthesise one), naming the ways to give one."""
    monkeypatch.delenv("MONGE_FSDD", raising=False)
    with pytest.raises(SystemExit) as exc:
        E.main(["--quick", "--no-cache"] + argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_cli_tts_table_and_results_name_the_data(tmp_path, monkeypatch, capsys):
    # an explicit --corpus tts wins over an FSDD folder in the environment
    monkeypatch.setenv("MONGE_FSDD", str(tmp_path / "no-such-folder"))
    n = torch.get_num_threads()
    E.main(["--quick", "--corpus", "tts", "--utterances", "40", "--variants", "ctc", "--no-cache",
            "--out", str(tmp_path / "r.json")])
    torch.set_num_threads(n)
    source = "synthetic: grammar sentences spoken by eSpeak NG, generated here (40 utterances, data seed 0)"
    assert f"data: {source}\n" in capsys.readouterr().out
    res = json.loads((tmp_path / "r.json").read_text())
    info, meta = res["info"], res["meta"]
    assert info["source"] == source and info["corpus"] == "tts"
    assert meta["command"].startswith("python -m monge.experiments.speech_ctc_ot --quick --corpus tts")
    assert meta["data"]["source"] == source and "load_average_after" in meta
    assert "sacrebleu" in meta["versions"] and meta["machine"]["cores"] >= 1
    E.main(["--render", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert out.startswith(f"data: {source}\n") and "Source: `r.json`" in out


def test_describe_corpus():
    c = ds.Corpus([np.zeros((3, 80), np.float32)] * 2, ["one", "two"], ["eins", "zwei"], ["a", "b"],
                  ["u0", "u1"], {"kind": "fsdd", "seed": 3, "root": "/data/fsdd"})
    assert E.describe_corpus(c) == ("FSDD digit sequences from real recordings in /data/fsdd "
                                    "(2 utterances, data seed 3)")
    c.info = {"kind": "manifest", "path": "st/train.tsv"}
    assert E.describe_corpus(c) == "manifest st/train.tsv (2 utterances)"
    c.info = {}
    with pytest.raises(ValueError, match="corpus: its info names no 'kind'"):
        E.describe_corpus(c)
    with pytest.raises(ValueError, match="corpus: its info names no 'kind'"):
        E.run(c, E.quick_settings())


@pytest.mark.parametrize("norm", ["mean", "paper"])
def test_loss_normalisations_against_torch_per_utterance_losses(norm, corpus, monkeypatch):
    """'mean': CTC per character averaged over the batch, OT averaged; 'paper' (the release):
    CTC summed per utterance and both summed over the batch.  Checked against torch's own
    per-utterance CTC losses and the per-pair OT losses of the same call."""
    from monge.experiments.speech_ctc_ot import train as T

    seen = {"ctc": [], "ot": []}
    ctc, ota = T.mt.ctc_loss, T.ot_alignment_loss

    def ctc_spy(lp, ids, Lo, Lt, **kw):
        out = ctc(lp, ids, Lo, Lt, **kw)
        per = torch.nn.functional.ctc_loss(lp.detach(), ids, Lo, Lt, blank=0, reduction="none",
                                           zero_infinity=True)
        seen["ctc"].append((kw["reduction"], float(out.detach()), per.double(),
                           torch.as_tensor(Lt).double()))
        return out

    def ot_spy(h_s, h_t, L_s, L_t, **kw):
        out = ota(h_s, h_t, L_s, L_t, **kw)
        per = ota(h_s.detach(), h_t, L_s, L_t, **dict(kw, reduction="none"))
        seen["ot"].append((kw["reduction"], float(out.detach()), per.double()))
        return out

    monkeypatch.setattr(T.mt, "ctc_loss", ctc_spy)
    monkeypatch.setattr(T, "ot_alignment_loss", ot_spy)
    s = replace(E.quick_settings(), variants=("ctc+ot",), pre_steps=3, mt_steps=5, ft_steps=2,
                loss_norm=norm)
    res = E.run(corpus, s)
    want = "sum" if norm == "paper" else "mean"
    assert len(seen["ctc"]) == 3 and len(seen["ot"]) == 3
    for red, value, per, Lt in seen["ctc"]:
        ref = per.sum() if norm == "paper" else (per / Lt).mean()
        assert red == want and value == pytest.approx(float(ref), rel=1e-5)
    for red, value, per in seen["ot"]:
        ref = per.sum() if norm == "paper" else per.mean()
        assert red == want and value == pytest.approx(float(ref), rel=1e-5)
    (row,) = res["rows"]
    ctc_v = np.array([v for _, v, _, _ in seen["ctc"]])
    ot_v = np.array([v for _, v, _ in seen["ot"]])
    assert row["ctc_ot_ratio"] == pytest.approx(np.mean(s.ctc_weight * ctc_v / (s.ot_weight * ot_v)))
    assert f"loss normalisation {norm!r}" in E.format_table(res)
    with pytest.raises(ValueError, match="loss_norm"):
        E.run(corpus, replace(s, loss_norm="median"))


def test_dev_speakers_come_from_the_training_speakers(random_data):
    """evaluate='dev': the measured speakers are carved from the training speakers; the test
    speakers stay out of training and of the measurement."""
    _, s = random_data
    sents = ds.grammar_sentences(12, seed=1)
    corpus = ds.Corpus([np.zeros((20, 80), np.float32)] * 12, sents,
                       [ds.translate_en_fr(x) for x in sents], [f"s{i % 6}" for i in range(12)],
                       [f"u{i}" for i in range(12)], {"kind": "hand-made test corpus"})
    dev = Data(corpus, replace(s, evaluate="dev", n_test_speakers=2, n_dev_speakers=1))
    test = Data(corpus, replace(s, n_test_speakers=2))
    assert len(dev.test_speakers) == 1 and dev.test_speakers[0] in test.train_speakers
    assert sorted(dev.train_speakers + dev.test_speakers) == sorted(test.train_speakers)
    assert not set(test.test_speakers) & set(dev.train_speakers + dev.test_speakers)
    with pytest.raises(ValueError, match="evaluate"):
        E.run(corpus, replace(s, evaluate="validation"))


def test_paired_differences_follow_the_papers_ordering():
    """The ordering block: later minus earlier variant per seed, 95 % t-interval (scipy's t)."""
    from scipy import stats

    rng = np.random.default_rng(0)
    rows, info = [], dict(source="hand-made", test_speakers=["a"], n_train=1, n_test=1, seconds=0,
                          settings=dict(seeds=[0, 1, 2, 3], ot_eps=1.0, gap_eps=1.0,
                                                       loss_norm="mean"))
    for seed in range(4):
        for v, shift in (("ce", 0.0), ("ctc", 2.0), ("ctc+ot", 2.5)):
            rows.append(dict(seed=seed, variant=v, divergence=50 - 10 * shift + rng.normal(),
                             retrieval=0.1 * shift, bleu_zero_shot=shift + rng.normal(),
                             bleu=20 + rng.normal(), mt_bleu=90.0))
    m, h, n = E.paired_differences(rows, "ce", "ctc", "bleu_zero_shot")
    d = np.array([r["bleu_zero_shot"] for r in rows if r["variant"] == "ctc"]) - \
        np.array([r["bleu_zero_shot"] for r in rows if r["variant"] == "ce"])
    assert n == 4 and m == pytest.approx(d.mean())
    assert h == pytest.approx(stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2, rel=1e-3)
    summary = {v: {k: (0.0, 0.0) for k in ("divergence", "retrieval", "bleu_zero_shot", "bleu",
                                            "mt_bleu")} | {"gap_solves": 4, "gap_unconverged": 0}
               for v in ("ce", "ctc", "ctc+ot")}
    table = E.format_table(dict(rows=rows, summary=summary, info=info))
    line = next(x for x in table.splitlines() if x.startswith("| ctc − ce |"))
    assert "(better)" in line.split("|")[2]            # S_eps fell by ~20 with a spread of ~1.4
    assert line.split("|")[3].strip().startswith("+0.200 ± 0.000")
    assert "| ctc+ot − ctc |" in table


def test_cli_paper_normalisation_takes_the_releases_eps(tmp_path, capsys):
    """--loss-norm paper: eps 0.005 (GeomLoss blur 0.05 on our cost), more Sinkhorn iterations
    for its scaling, the gap still measured at eps 1; an explicit --ot-eps wins."""
    n = torch.get_num_threads()
    E.main(["--quick", "--corpus", "tts", "--utterances", "40", "--variants", "ctc+ot", "--no-cache",
            "--loss-norm", "paper", "--out", str(tmp_path / "p.json")])
    E.main(["--quick", "--corpus", "tts", "--utterances", "40", "--variants", "ctc", "--no-cache",
            "--loss-norm", "paper", "--ot-eps", "0.05", "--out", str(tmp_path / "q.json")])
    torch.set_num_threads(n)
    st = json.loads((tmp_path / "p.json").read_text())["info"]["settings"]
    assert (st["loss_norm"], st["ot_eps"], st["ot_max_iter"], st["gap_eps"]) == \
        ("paper", E.PAPER_OT_EPS, E.PAPER_OT_MAX_ITER, 1.0)
    assert E.PAPER_OT_EPS == pytest.approx(2 * 0.05 ** 2)
    row = json.loads((tmp_path / "p.json").read_text())["rows"][0]
    assert row["ctc_ot_ratio"] > 0 and "weighted CTC / weighted OT" in capsys.readouterr().out
    assert json.loads((tmp_path / "q.json").read_text())["info"]["settings"]["ot_eps"] == 0.05
