"""The SpecTr decoding experiment on the project's own toy text (tiny models, seconds): cache
plumbing, exactness of the decoded text under the target, the (K, L) table, npz round trip."""
import json
import re

import numpy as np
import pytest
import torch

from monge.experiments.spectr import run as ex
from monge.experiments.spectr.data import toy_corpus
from monge.experiments.spectr.decode import SpecStats, _ks_uniform, _z_loglik, sample_draft_only, spectr_generate
from monge.experiments.spectr.train import get_models, quick_settings


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    text = toy_corpus()
    st = quick_settings()
    tok, draft, target, info, val = get_models(text, st, None, seed=0)
    return tok, draft, target, info, val, st


def test_toy_models_learned(models):
    tok, draft, target, info, val, st = models
    # a uniform guess costs log(V) nats; both models must have learned the toy grammar
    assert info["target_val_loss"] < 0.6 * np.log(tok.vocab_size)
    assert info["draft_val_loss"] < 0.6 * np.log(tok.vocab_size)
    assert info["target_params"] > 5 * info["draft_params"]


@pytest.mark.parametrize("K,L", [(1, 3), (3, 4)])
def test_self_draft_accepts_everything(models, K, L):
    """With the target as its own draft (p = q), every draft is accepted and each target call
    yields L + 1 tokens: the KV caches are cut and resumed at the right positions."""
    tok, draft, target, info, val, st = models
    s = SpecStats()
    out, pits, _ = spectr_generate(target, target, val[:8], 40, K, L, seed=1, stats=s)
    assert len(out) == 40
    assert s.accepted == s.selections
    assert s.tokens == s.target_calls * (L + 1)


def test_decoded_text_follows_target(models):
    """Every emitted token checked under the target's q(. | prefix): PIT uniform and the log-lik
    martingale z-score centred for SpecTr (exact); the z-score rejects text from the draft model
    alone (the check has power)."""
    tok, draft, target, info, val, st = models
    rng = np.random.default_rng(0)
    starts = rng.integers(0, len(val) - 10, size=16)
    pits, ctrl = [], []
    s = SpecStats()
    for i, a in enumerate(starts):
        _, pt, _ = spectr_generate(draft, target, val[a:a + 8], 60, 4, 3, seed=100 + i, stats=s)
        pits += pt
        _, pc, _ = sample_draft_only(draft, target, val[a:a + 8], 60, seed=200 + i)
        ctrl += pc
    assert len(pits) == 16 * 60
    assert _ks_uniform(pits) > 1e-3 and _z_loglik(pits) > 1e-3
    assert _z_loglik(ctrl) < 1e-6
    assert 0 < s.accepted / s.selections < 1 and s.tokens / s.target_calls > 1


def test_run_table_cache_and_cli(tmp_path, models, monkeypatch, capsys):
    tok, draft, target, info, val, st = models
    st.n_seq, st.n_new, st.Ks, st.Ls = 2, 20, (1, 2), (2,)
    text = toy_corpus()
    res = ex.run(text, st, cache_dir=tmp_path, seed=0, source="toy text of the test")
    assert [(r["K"], r["L"]) for r in res["rows"]] == [(1, 2), (2, 2)]
    for r in res["rows"]:
        assert 0 <= r["acceptance"] <= 1 and 1 <= r["block_efficiency"] <= 3
        assert r["speedup"] > 0 and np.isfinite(r["ms_per_token"])
    table = ex.format_table(res)
    assert "| K | L |" in table and table.startswith("data: toy text of the test\n")
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".json", ".npz", ".npz"]
    # the command line, on the cached npz weights: identical models, no training
    monkeypatch.setattr(ex, "quick_settings", lambda: st)
    ex.main(["--quick", "--toy", "--cache-dir", str(tmp_path), "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "block efficiency" in out and "data: generated toy corpus" in out
    res2 = json.loads((tmp_path / "r.json").read_text())
    assert res2["source"].startswith("generated toy corpus")
    assert res2["info"]["target_train_time"] is None
    assert res2["info"]["target_val_loss"] == res["info"]["target_val_loss"]
    # the same text from a file (same cache key): the file is named as the source
    f = tmp_path / "corpus.txt"
    f.write_text(text, encoding="utf-8")
    ex.main(["--quick", "--data", str(f), "--cache-dir", str(tmp_path), "--out", str(tmp_path / "r.json")])
    assert f"data: file {f} ({len(text)} characters)" in capsys.readouterr().out
    res3 = json.loads((tmp_path / "r.json").read_text())
    assert res3["source"] == f"file {f} ({len(text)} characters)"
    # the results file names the data by path and hash, and renders the table the docs show
    import hashlib

    assert res3["meta"]["data"]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert res3["meta"]["command"].startswith("python -m monge.experiments.spectr --quick --data")
    assert ex.render(str(tmp_path / "r.json")).startswith(f"data: file {f}")


@pytest.mark.parametrize("argv, message", [
    ([], "give --data FILE .* or --toy"),
    (["--data", "x.txt", "--toy"], "--data and --toy exclude each other"),
])
def test_cli_never_falls_back_to_generated_text(argv, message, capsys):
    """Without --data the command stops instead of training on generated text, naming both ways on."""
    with pytest.raises(SystemExit) as exc:
        ex.main(["--quick", "--no-cache"] + argv)
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_run_requires_a_source():
    with pytest.raises(TypeError, match="source"):
        ex.run(toy_corpus(), quick_settings())
    with pytest.raises(TypeError, match="source: expected a string"):
        ex.run(toy_corpus(), quick_settings(), source=None)
    with pytest.raises(ValueError, match="source: expected a non-empty"):
        ex.run(toy_corpus(), quick_settings(), source="  ")
