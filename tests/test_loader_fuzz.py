"""The data loaders under a seeded mutation fuzzer (tests/fuzz_loaders.py; `make fuzz-loaders` runs
it for longer): every malformed or truncated file gives a valid result or a DataFormatError naming
the file (and line, for text), never another exception, a hang or a read outside the given paths.
Plus the path-escape cases of the manifest loader and the no-pickle rule of the npz readers."""
import io
import os
import pickle
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import fuzz_loaders as F  # noqa: E402

from monge.experiments.orma import chem  # noqa: E402
from monge.experiments.orma import data as orma_data  # noqa: E402
from monge.experiments.speech_ctc_ot import data as ds  # noqa: E402
from monge._io import DataFormatError  # noqa: E402
from monge.maps import MongeGapMap  # noqa: E402

N_RANDOM = 1000  # random stacked mutations per loader, after the deterministic pass


@pytest.mark.parametrize("name", sorted(F.TARGETS))
def test_loader_survives_the_mutation_fuzzer(name, tmp_path):
    fz = F.Fuzzer(tmp_path, [name], seed=20260)
    fz.deterministic()
    fz.random(n_per_target=N_RANDOM)
    report = io.StringIO()
    fz.report(report)
    assert not fz.failures, report.getvalue()
    t = fz.targets[0]
    # the fuzzer cannot silently shrink: at least this many inputs, and both outcomes seen
    assert fz.counts[name] >= t.min_inputs + N_RANDOM, report.getvalue()
    assert fz.outcomes[name]["ok"] > 0 and fz.outcomes[name]["error"] > 0, report.getvalue()


class _Broken(F.Target):
    """A loader breaking the contract in the ways the fuzzer must notice."""
    name, ext = "broken", ".txt"

    def seeds(self):
        return [b"a\nb\n"]

    def call(self, data):
        if data.startswith(b"index"):
            return [][1]
        if data.startswith(b"noline"):
            raise DataFormatError(self.input, None, "no line")
        if data.startswith(b"badline"):
            raise DataFormatError(self.input, 99, "past the end")
        if data.startswith(b"outside"):
            with open(os.path.join(os.path.dirname(self.work), "elsewhere.txt"), "w"):
                pass
        return data


def test_the_fuzzer_reports_contract_violations(tmp_path, monkeypatch):
    monkeypatch.setitem(F.TARGETS, "broken", _Broken)
    fz = F.Fuzzer(tmp_path, ["broken"])
    t = fz.targets[0]
    assert fz.one(t, b"fine\n") is None
    assert "IndexError leaked" in fz.one(t, b"index")
    assert "without a line number" in fz.one(t, b"noline")
    assert "outside the file's 1 lines" in fz.one(t, b"badline")
    assert "read outside the given paths" in fz.one(t, b"outside")
    assert fz.counts["broken"] == 5 and len(fz.failures) == 4


# ------------------------------------------------------------------ paths leaving the audio root

def _manifest(root, audio):
    p = root / "train.tsv"
    p.write_text("id\taudio\tn_frames\ttgt_text\tspeaker\n"
                 "u0\twav/u0.wav\t10\teins\ts\n"
                 f"u1\t{audio}\t10\tzwei\ts\n", encoding="utf-8")
    return p


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    (root / "wav").mkdir(parents=True)
    ds.write_wav(root / "wav" / "u0.wav", np.zeros(400), 8000)
    secret = tmp_path / "secret.wav"
    ds.write_wav(secret, np.zeros(400), 8000)
    (root / "wav" / "out.wav").symlink_to(secret)
    (root / "wav" / "dir").symlink_to(tmp_path)
    return root


@pytest.mark.parametrize("audio,message", [
    ("../../etc/passwd", "leaves"),
    ("../secret.wav", "leaves"),
    ("wav/../../secret.wav", "leaves"),
    ("/etc/passwd", "absolute audio path"),
    ("~/secret.wav", "absolute audio path"),
    ("wav/out.wav", "leaves"),              # a symlink to a file outside the root
    ("wav/dir/secret.wav", "leaves"),       # through a symlinked directory
    ("wav/u0.wav\0.x", "contains a NUL byte"),
    ("a/" * 3000 + "u0.wav", "not found"),  # too long for the OS: an error, not an OSError
])
def test_manifest_paths_stay_inside_the_root(corpus, audio, message):
    p = _manifest(corpus, audio)
    with pytest.raises(DataFormatError, match=message) as e:
        ds.load_manifest(p)
    assert str(e.value).startswith(f"{p}:3: ") and (e.value.path, e.value.line) == (str(p), 3)


def test_manifest_corpus_names_the_manifest_line_of_a_bad_wav(corpus):
    (corpus / "wav" / "u1.wav").write_bytes(b"RIFF\x04\x00\x00\x00WAVE")
    p = _manifest(corpus, "wav/u1.wav")
    (corpus / "train.tsv").write_text(p.read_text().replace("\ts\n", "\ts\tsrc\n")
                                      .replace("speaker\n", "speaker\tsrc_text\n"))
    with pytest.raises(DataFormatError, match=r"train.tsv:3: audio .*u1.wav: not a readable PCM"):
        ds.manifest_corpus(p)


# ------------------------------------------------------------------ specific loader bugs


def test_chebi20_errors_name_the_line(tmp_path):
    f = tmp_path / "c.txt"
    f.write_bytes(b"CID\tSMILES\tdescription\n1\tC\tmethane \xe2\x82\n")       # cut mid-UTF-8
    with pytest.raises(DataFormatError, match=r"c.txt:2: not UTF-8 text: byte 0xe2 at column 13"):
        orma_data.load_chebi20(f)
    for cid in ("\u00b2", "\u0663", "9" * 5000, "-3", "1e3"):
        f.write_text(f"CID\tSMILES\tdescription\n{cid}\tC\tmethane\n", encoding="utf-8")
        with pytest.raises(DataFormatError, match=r"c.txt:2: CID "):
            orma_data.load_chebi20(f)
    f.write_text("CID\tSMILES\tdescription\n1\t" + "C" * 6000 + "\tlong\n")
    with pytest.raises(DataFormatError, match=r"c.txt:2: SMILES of 6000 characters"):
        orma_data.load_chebi20(f)
    f.write_bytes(b"\xef\xbb\xbfCID\tSMILES\tdescription\r\n1\tC\tmethane\r\n")  # BOM + CRLF: fine
    assert orma_data.load_chebi20(f).cids == [1]


def test_smiles_that_would_crash_or_stall_rdkit_are_refused():
    with pytest.raises(ValueError, match="^mol: SMILES of 20000 characters"):
        chem.mol_graph("C" * 20000)   # Chem.MolToSmiles of this chain overflows the stack
    with pytest.raises(ValueError, match="^mol: invalid SMILES"):
        chem.mol_graph("CC\udcff")


def _wav(**fields):
    b = bytearray(F._wav_bytes(np.zeros(8)))
    offsets = {"channels": (22, "<H"), "rate": (24, "<I"), "bits": (34, "<H"), "data": (40, "<I"),
               "fmt_size": (16, "<I")}
    for k, v in fields.items():
        off, fmt = offsets[k]
        b[off:off + 2 if fmt == "<H" else off + 4] = np.array(v, fmt).tobytes()
    return bytes(b)


@pytest.mark.parametrize("fields,message", [
    ({"rate": 0}, "sample rate 0 Hz"),
    ({"channels": 0}, "bad # of channels"),
    ({"bits": 24}, "unsupported sample width 3"),
    ({"bits": 40}, "unsupported sample width 5"),
    ({"data": 10**6}, "declares 1000000 bytes"),
    ({"fmt_size": 0xFF}, "chunk size runs past the end"),
])
def test_wav_absurd_headers(tmp_path, fields, message):
    p = tmp_path / "x.wav"
    p.write_bytes(_wav(**fields))
    with pytest.raises(DataFormatError, match=message) as e:
        ds.read_wav(p)
    assert str(e.value).startswith(f"{p}: ")


def test_wav_cut_inside_the_data_chunk(tmp_path):
    p = tmp_path / "x.wav"
    p.write_bytes(F._wav_bytes(np.zeros(8))[:54])   # header says 16 data bytes, 10 remain
    with pytest.raises(DataFormatError, match="truncated data chunk: 10 of the 16 bytes"):
        ds.read_wav(p)
    p.write_bytes(_wav(data=15))                     # half a sample at the end: dropped
    assert ds.read_wav(p)[0].shape == (7,)


def test_npz_readers_never_unpickle(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo unpickled > " + str(tmp_path / "pwned"),))

    c = ds.Corpus([np.zeros((1, 2), np.float32)], ["a"], ["b"], ["s"], ["i"], {})
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "evil.npz", **{**arrays, "src": np.array([Boom()], dtype=object)})
    for load in (ds.Corpus.load, MongeGapMap.load):
        with pytest.raises(DataFormatError, match="holds Python objects"):
            load(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned").exists()
    assert pickle.loads(pickle.dumps(DataFormatError("p", 3, "x"))).line == 3


def test_npz_huge_declared_shape_is_refused_before_allocating(tmp_path):
    c = ds.Corpus([np.zeros((1, 2), np.float32)], ["a"], ["b"], ["s"], ["i"], {})
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        arrays = {k: z[k] for k in z.files}
    (tmp_path / "big.npz").write_bytes(F._npz_with_raw(
        arrays, "feats", "{'descr': '<f4', 'fortran_order': False, 'shape': (10**12, 4), }"
        .replace("10**12", str(10**12)), b"\0" * 32))
    with pytest.raises(DataFormatError, match=r"declares shape \(1000000000000, 4\)"):
        ds.Corpus.load(tmp_path / "big.npz")


def test_corpus_lengths_cannot_wrap_around(tmp_path):
    c = ds.Corpus([], [], [], [], [], {})
    c.save(tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as z:
        arrays = {k: z[k] for k in z.files}
    texts = np.array(["a", "b"])
    np.savez(tmp_path / "w.npz", **{**arrays, "lengths": np.array([2**64 - 1, 1], np.uint64),
                                    "src": texts, "tgt": texts, "speakers": texts, "ids": texts})
    with pytest.raises(DataFormatError, match="inconsistent feature lengths"):  # uint64 sum is 0
        ds.Corpus.load(tmp_path / "w.npz")


def test_corrupt_cache_says_how_to_rebuild(tmp_path):
    key = {"kind": "t"}
    built = ds._cached(tmp_path, key, lambda: ds.Corpus([], [], [], [], [], {}))
    assert len(built) == 0
    (f,) = tmp_path.glob("t-*.npz")
    f.write_bytes(f.read_bytes()[:50])
    with pytest.raises(DataFormatError, match="delete this cache file to rebuild it"):
        ds._cached(tmp_path, key, lambda: None)
