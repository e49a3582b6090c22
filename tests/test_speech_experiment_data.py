"""monge.experiments.speech_ctc_ot.data on audio the tests generate: wav I/O, log-mel features, FSDD-style digit
sequences, the eSpeak NG corpus, the grammar's translations, and the manifest loader."""
import numpy as np
import pytest

from monge.experiments.speech_ctc_ot import data as ds

RATE = 8000


def _tone(freq, seconds=0.3, rate=RATE, amp=0.3):
    t = np.arange(int(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


@pytest.fixture
def fake_fsdd(tmp_path):
    """FSDD layout: recordings/{digit}_{speaker}_{index}.wav, a tone per digit with silence around."""
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for spk, shift in (("alice", 0), ("bob", 40), ("carol", 80)):
        for digit in range(10):
            for i in range(2):
                x = np.concatenate([np.zeros(400), _tone(300 + 250 * digit + shift + 10 * i), np.zeros(400)])
                ds.write_wav(rec / f"{digit}_{spk}_{i}.wav", x, RATE)
    (rec / "README.txt").write_text("not a recording")
    return tmp_path / "fsdd"


def test_wav_roundtrip_and_errors(tmp_path):
    x = _tone(440)
    ds.write_wav(tmp_path / "a.wav", x, RATE)
    y, rate = ds.read_wav(tmp_path / "a.wav")
    assert rate == RATE and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() < 1e-4
    (tmp_path / "bad.wav").write_bytes(b"RIFFxxxxWAVEjunk")
    with pytest.raises(ValueError, match="bad.wav"):
        ds.read_wav(tmp_path / "bad.wav")


def test_log_mel_shape_and_tone_location():
    x = _tone(1000, seconds=0.5) + 1e-4 * np.random.default_rng(0).standard_normal(4000)
    f = ds.log_mel(x, RATE)
    win, hop = 200, 80
    assert f.shape == (1 + (4000 - win) // hop, 80) and f.dtype == np.float32
    # the loudest band is the one whose triangle peaks nearest 1 kHz
    edges = np.linspace(ds._hz_to_mel(20), ds._hz_to_mel(4000), 82)[1:-1]
    expect = np.argmin(np.abs(edges - ds._hz_to_mel(1000)))
    assert abs(int(np.median(f.argmax(1))) - expect) <= 1
    # a 6 dB louder signal adds log(4) to every band (power spectrum, no floor reached)
    g = ds.log_mel(2 * x, RATE)
    # float32 features (|f| <= ~10): measured max deviation 5e-7; 1e-5 allows float32 rounding
    assert np.allclose(g - f, np.log(4.0), rtol=0, atol=1e-5)
    assert ds.log_mel(x[:100], RATE).shape == (0, 80)
    with pytest.raises(ValueError, match="samples"):
        ds.log_mel(np.ones((2, 100)), RATE)
    with pytest.raises(ValueError, match="samples"):
        ds.log_mel(np.array([np.nan] * 400), RATE)


def test_mel_filterbank_triangles():
    fb = ds.mel_filterbank(10, 512, 16000)
    assert fb.shape == (10, 257)
    assert (fb >= 0).all() and (fb <= 1).all()
    peaks = fb.argmax(1)
    assert (np.diff(peaks) > 0).all()  # centres increase


def test_trim_silence():
    x = np.concatenate([np.zeros(800), _tone(500), np.zeros(1600)])
    y = ds.trim_silence(x, RATE, margin_ms=0)
    assert abs(len(y) - 2400) <= 80


def test_digit_sequence_corpus(fake_fsdd, tmp_path):
    recs = ds.fsdd_recordings(fake_fsdd)
    assert len(recs) == 60 and recs[0][:3] == (0, "alice", 0)
    cache = tmp_path / "cache"
    c = ds.digit_sequence_corpus(fake_fsdd, 30, min_digits=2, max_digits=3, seed=1, cache_dir=cache)
    assert len(c) == 30 and len(list(cache.glob("*.npz"))) == 1
    for f, src, tgt, spk in zip(c.feats, c.src, c.tgt, c.speakers):
        words = src.split()
        assert 2 <= len(words) <= 3 and all(w in ds.DIGITS_EN for w in words)
        assert tgt == " ".join(ds.DIGITS_DE[ds.DIGITS_EN.index(w)] for w in words)
        assert spk in ("alice", "bob", "carol") and f.shape[1] == 80
        # each digit lasts 0.3 s (+ margins and pauses): the length follows the digit count
        assert 0.3 * len(words) * 100 <= f.shape[0] <= (0.4 + 0.3) * len(words) * 100 + 20
    # cached: loading gives identical arrays (npz without pickles)
    c2 = ds.digit_sequence_corpus(fake_fsdd, 30, min_digits=2, max_digits=3, seed=1, cache_dir=cache)
    assert c2.src == c.src and c2.speakers == c.speakers
    # the folder is recorded (for the results' data line) whether built or read from the cache
    assert c.info["root"] == c2.info["root"] == str(fake_fsdd)
    assert all(np.array_equal(a, b) for a, b in zip(c.feats, c2.feats))
    c3 = ds.digit_sequence_corpus(fake_fsdd, 30, min_digits=2, max_digits=3, seed=2, cache_dir=None)
    assert c3.src != c.src
    train, test = ds.split_speakers(c.speakers, 1, seed=0)
    assert len(train) == 2 and len(test) == 1 and not set(train) & set(test)
    assert ds.split_speakers(c.speakers, 1, seed=0) == (train, test)
    assert set(c.by_speakers(test).speakers) == set(test)
    with pytest.raises(ValueError, match="n_test"):
        ds.split_speakers(c.speakers, 3)
    with pytest.raises(ValueError, match="root"):
        ds.fsdd_recordings(tmp_path / "cache")


def test_translations():
    assert ds.translate_digits("three one four") == "drei eins vier"
    with pytest.raises(ValueError, match="text"):
        ds.translate_digits("three eleven")
    assert ds.translate_en_fr("the red dog sees an old house") == "le chien rouge voit une maison ancienne"
    assert ds.translate_en_fr("my apple likes the bird near the garden") == \
        "ma pomme aime l'oiseau près du jardin"
    assert ds.translate_en_fr("a cat finds my tree near an apple") == "un chat trouve mon arbre près d'une pomme"
    with pytest.raises(ValueError, match="sentence"):
        ds.translate_en_fr("the dog sees")
    sents = ds.grammar_sentences(200, seed=0)
    assert sents == ds.grammar_sentences(200, seed=0) and len(set(sents)) > 150
    for s in sents:
        ds.translate_en_fr(s)  # every generated sentence is in the grammar
        assert " a a" not in s and " a o" not in s  # "an" before vowels


def test_espeak_corpus(tmp_path):
    assert ds.tts_available()
    x, rate = ds.synthesize("the red dog", "en-us", 160, 50)
    assert rate > 8000 and len(x) > rate * 0.3 and np.abs(x).max() > 0.05
    slow, _ = ds.synthesize("the red dog", "en-us", 100, 50)
    assert len(slow) > 1.2 * len(x)  # speed is a speaker trait
    with pytest.raises(ValueError, match="voice"):
        ds.synthesize("hello", "xx-nonexistent")
    c = ds.synthetic_corpus(6, seed=0, cache_dir=tmp_path)
    assert len(c) == 6 and all(f.shape[1] == 80 and f.shape[0] > 50 for f in c.feats)
    assert all(ds.translate_en_fr(s) == t for s, t in zip(c.src, c.tgt))


# ------------------------------------------------------------------ manifests

HEADER = "id\taudio\tn_frames\ttgt_text\tspeaker\tsrc_text\n"


@pytest.fixture
def manifest_dir(tmp_path):
    d = tmp_path / "corpus"
    (d / "wav").mkdir(parents=True)
    for i in range(3):
        ds.write_wav(d / "wav" / f"u{i}.wav", _tone(400 + 100 * i), RATE)
    return d


def _write(d, rows, header=HEADER):
    p = d / "train.tsv"
    p.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return p


GOOD = [f"u{i}\twav/u{i}.wav\t2400\tdrei eins\tspk{i % 2}\tthree one" for i in range(3)]


def test_manifest_loads_and_reads_features(manifest_dir):
    p = _write(manifest_dir, GOOD)
    rows = ds.load_manifest(p)
    assert [r.id for r in rows] == ["u0", "u1", "u2"]
    assert rows[1].audio == (manifest_dir / "wav" / "u1.wav").resolve()
    assert rows[0].n_frames == 2400 and rows[0].tgt_text == "drei eins" and rows[2].speaker == "spk0"
    c = ds.manifest_corpus(p)
    assert len(c) == 3 and c.src[0] == "three one" and c.feats[0].shape == (1 + (2400 - 200) // 80, 80)


@pytest.mark.parametrize("row,message", [
    ("u9\twav/u0.wav\t2400\tdrei", "expected 6 tab-separated fields"),
    ("u9\twav/u0.wav\tmany\tdrei\ts\tthree", "n_frames 'many' is not an integer"),
    ("u9\twav/u0.wav\t0\tdrei\ts\tthree", "n_frames must be positive"),
    ("u0\twav/u0.wav\t2400\tdrei\ts\tthree", "duplicate id 'u0'"),
    ("\twav/u0.wav\t2400\tdrei\ts\tthree", "empty id"),
    ("u9\t../outside.wav\t2400\tdrei\ts\tthree", "leaves"),
    ("u9\t/etc/passwd\t2400\tdrei\ts\tthree", "absolute audio path"),
    ("u9\twav/missing.wav\t2400\tdrei\ts\tthree", "not found"),
    ("u9\tfbank.zip:123:456\t2400\tdrei\ts\tthree", "zipped audio"),
    ("u9\twav/u0.wav\t2400\t \ts\tthree", "empty tgt_text"),
])
def test_manifest_rejects_malformed_rows_naming_file_and_line(manifest_dir, row, message):
    (manifest_dir.parent / "outside.wav").write_bytes(b"")  # exists, but outside the root
    p = _write(manifest_dir, GOOD + [row])
    with pytest.raises(ValueError, match=message) as e:
        ds.load_manifest(p)
    assert f"{p}:5:" in str(e.value)


def test_manifest_header_and_symlink_escape(manifest_dir, tmp_path):
    p = _write(manifest_dir, GOOD, header="id\taudio\tn_frames\ttgt_text\n")
    with pytest.raises(ValueError, match=r"train.tsv:1: .*missing: speaker"):
        ds.load_manifest(p)
    secret = tmp_path / "secret.wav"
    ds.write_wav(secret, _tone(300), RATE)
    (manifest_dir / "wav" / "link.wav").symlink_to(secret)
    p = _write(manifest_dir, ["x\twav/link.wav\t10\tdrei\ts\tthree"])
    with pytest.raises(ValueError, match=r"train.tsv:2: .*leaves"):
        ds.load_manifest(p)
    p = _write(manifest_dir, [], header="")
    with pytest.raises(ValueError, match="empty manifest"):
        ds.load_manifest(p)


def test_cache_save_is_whole_under_concurrent_writers(tmp_path, monkeypatch):
    """Two runs building the same cache: each writes its own temporary file and replaces the
    cache with a whole copy (a shared temporary name let one run move the other's file away)."""
    import os

    c = ds.Corpus([np.ones((3, 80), np.float32)], ["one"], ["eins"], ["a"], ["u0"], {"kind": "t"})
    path = tmp_path / "c.npz"
    real_replace, seen = os.replace, []

    def other_writer_first(src, dst):
        seen.append(str(src))
        if len(seen) == 1:                     # another process saves the same cache meanwhile
            monkeypatch.setattr(os, "getpid", lambda: 12345)
            c.save(path)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", other_writer_first)
    c.save(path)
    assert len(set(seen)) == 2 and os.listdir(tmp_path) == ["c.npz"]
    assert ds.Corpus.load(path).src == ["one"]
