#!/usr/bin/env python
"""Mutation fuzzer for monge's data loaders (not collected by pytest; tests/test_loader_fuzz.py runs
the same fuzzer for a fixed, seeded number of inputs).

    .venv/bin/python tests/fuzz_loaders.py --seconds 60 [--seed 1] [--engine auto|builtin|atheris]
    make fuzz-loaders LOADER_FUZZ_TIME=60

Loaders fuzzed (each starts from small valid files written here; nothing is downloaded):
    chebi20          monge.experiments.orma.data.load_chebi20 (TSV: CID, SMILES, description)
    smiles           monge.experiments.orma.chem.mol_graph on a SMILES string (RDKit parsing, motifs)
    manifest         monge.experiments.speech_ctc_ot.data.load_manifest (speech-translation TSV + wav paths)
    manifest_corpus  monge.experiments.speech_ctc_ot.data.manifest_corpus on a valid manifest whose wav is mutated
    wav              monge.experiments.speech_ctc_ot.data.read_wav
    corpus_npz       monge.experiments.speech_ctc_ot.data.Corpus.load (the feature cache)
    map_npz          monge.maps.MongeGapMap.load

The contract checked on every input: the loader returns a valid result, or raises
monge._io.DataFormatError (a ValueError) whose message starts with the file's path and, for text
formats, the 1-based line (``"{path}:{line}: "``; the line must exist in the file); for `smiles`,
a ValueError starting with ``"mol: "``.  Any other exception (IndexError, KeyError,
UnicodeDecodeError, struct.error, ZeroDivisionError, MemoryError, ...), a call slower than
HANG_SECONDS, or an open() of a file outside the paths the loader was given (an audit hook watches
every open) is a failure.  Manifest mutations include '../' escapes, absolute paths and a symlink
leading out of the audio root.

Engines: `builtin` (seeded mutations: every truncation offset of each seed, format-aware special
inputs, then random stacked byte / line / field / header mutations until the time is up),
`atheris` (the same deterministic pass, then coverage-guided byte mutations of the seeds, the first
byte choosing the loader; needs `pip install atheris`, which is not a dependency of monge), `auto`
(atheris if importable, else builtin).  Failing inputs are written to --crash-dir; the exit status
is 1 when anything failed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import struct
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np

HANG_SECONDS = 5.0

# ------------------------------------------------------------------ read audit

_AUDIT = {"active": False, "allowed": (), "seen": []}
_IGNORED = tuple(sorted({os.path.realpath(p) + os.sep for p in
                         (sys.prefix, sys.base_prefix, sys.exec_prefix, "/proc", "/sys", "/dev")}))


def _audit(event, args):
    if event != "open" or not _AUDIT["active"]:
        return
    p = args[0]
    if isinstance(p, int) or p is None:
        return
    p = os.path.realpath(os.path.abspath(os.fsdecode(p)))
    if any(p == a or p.startswith(a + os.sep) for a in _AUDIT["allowed"]):
        return
    if p.startswith(_IGNORED):
        return
    _AUDIT["seen"].append(p)


_HOOKED = []


def _install_audit_hook():
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)


# ------------------------------------------------------------------ generic mutations

INTERESTING_BYTES = [b"\x00", b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
                     b"\xf4\x90\x80\x80", b"\t", b"\r", b"\n", b"\r\n", b'"', b"'", b"\\", b"\t\t",
                     b"\xef\xbb\xbf", b"\x0b", b"\xc2\x85", b"\xe2\x80\xa8"]
INTERESTING_FIELDS = ["", " ", "0", "00", "-1", "+5", " 7 ", "1e3", "0x10", "5_000", "NaN", "inf",
                      "\u0663", "\u00b2", "9" * 19, "9" * 30, "9" * 5000, '"5"', "'x'", "a\x00b",
                      "\u2028", "C1CC(", "[", "c1ccccc1" * 1300, "C" * 12000, "../../etc/passwd",
                      "/etc/passwd", "~/x", "wav/../../secret.wav", "wav/out.wav", "wav/loop.wav",
                      "wav", ".", "fbank.zip:12:34", "a" * 5000, "\u00e9", "\U0001f9ea", "\t"]
INTERESTING_U32 = [0, 1, 2, 3, 7, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                   0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]


def truncation_offsets(n, limit):
    """Every offset of an n-byte input when n <= limit, else the first and last 64 and an even
    spread in between (limit offsets in all)."""
    if n <= limit:
        return list(range(n))
    mid = np.linspace(64, n - 64, max(limit - 128, 2)).astype(int).tolist()
    return sorted(set(range(64)) | set(mid) | set(range(n - 64, n)))


def m_flip(b, r):
    if not b:
        return b
    i = r.randrange(len(b))
    return b[:i] + bytes([b[i] ^ (1 << r.randrange(8))]) + b[i + 1:]


def m_set_byte(b, r):
    if not b:
        return b
    i = r.randrange(len(b))
    v = r.choice([0, 0xFF, 0x7F, 0x80, 0x0A, 0x0D, 0x09, 0x22, 0xC3, r.randrange(256)])
    return b[:i] + bytes([v]) + b[i + 1:]


def m_insert(b, r):
    i = r.randrange(len(b) + 1)
    if r.random() < 0.7:
        ins = r.choice(INTERESTING_BYTES)
    else:
        ins = bytes(r.randrange(256) for _ in range(r.randint(1, 8)))
    return b[:i] + ins + b[i:]


def m_delete(b, r):
    if not b:
        return b
    i = r.randrange(len(b))
    return b[:i] + b[i + r.randint(1, min(16, len(b) - i)):]


def m_duplicate(b, r):
    if not b:
        return b
    i = r.randrange(len(b))
    j = min(len(b), i + r.randint(1, 64))
    return b[:j] + b[i:j] + b[j:]


def m_truncate(b, r):
    return b[:r.randrange(len(b) + 1)]


BYTE_MUTATORS = [m_flip, m_set_byte, m_insert, m_delete, m_duplicate, m_truncate]


# text (TSV) mutations: lines split at b"\n"
def _lines(b):
    return b.split(b"\n")


def t_dup_line(b, r):
    ls = _lines(b)
    i = r.randrange(len(ls))
    ls.insert(r.randrange(len(ls) + 1), ls[i])
    return b"\n".join(ls)


def t_del_line(b, r):
    ls = _lines(b)
    del ls[r.randrange(len(ls))]
    return b"\n".join(ls)


def t_swap_lines(b, r):
    ls = _lines(b)
    i, j = r.randrange(len(ls)), r.randrange(len(ls))
    ls[i], ls[j] = ls[j], ls[i]
    return b"\n".join(ls)


def t_set_field(b, r):
    ls = _lines(b)
    i = r.randrange(len(ls))
    fs = ls[i].split(b"\t")
    fs[r.randrange(len(fs))] = r.choice(INTERESTING_FIELDS).encode("utf-8", "surrogatepass")
    ls[i] = b"\t".join(fs)
    return b"\n".join(ls)


def t_add_tab(b, r):
    ls = _lines(b)
    i = r.randrange(len(ls))
    j = r.randrange(len(ls[i]) + 1)
    ls[i] = ls[i][:j] + b"\t" + ls[i][j:]
    return b"\n".join(ls)


def t_del_tab(b, r):
    tabs = [k for k, c in enumerate(b) if c == 9]
    if not tabs:
        return b
    k = r.choice(tabs)
    return b[:k] + b[k + 1:]


def t_crlf(b, r):
    return b.replace(b"\n", b"\r\n")


def t_lone_cr(b, r):
    nl = [k for k, c in enumerate(b) if c == 10]
    if not nl:
        return b + b"\r"
    k = r.choice(nl)
    return b[:k] + b"\r" + b[k + 1:]


def t_quote(b, r):
    i = r.randrange(len(b) + 1)
    return b[:i] + r.choice([b'"', b"'", b'""', b'"\t"']) + b[i:]


def t_long_line(b, r):
    ls = _lines(b)
    ls.insert(r.randrange(1, len(ls) + 1), b"x" * (1 << 20))
    return b"\n".join(ls)


TEXT_MUTATORS = [t_dup_line, t_del_line, t_swap_lines, t_set_field, t_set_field, t_set_field,
                 t_add_tab, t_del_tab, t_crlf, t_lone_cr, t_quote]


def text_specials(seed, header):
    """Fixed inputs for a TSV format: empty, header only, CRLF, no final newline, 1 MB line, blank
    lines, invalid UTF-8 and NUL at several places, a field of each interesting value per column."""
    out = [b"", header, header.rstrip(b"\n"), seed.replace(b"\n", b"\r\n"), seed.rstrip(b"\n"),
           seed + b"\n\n", b"\n" + seed, seed.replace(b"\n", b"\r"), b"\xef\xbb\xbf" + seed,
           header + b"x" * (1 << 20) + b"\n", header + b"\t".join([b"1", b"C" * (1 << 20), b"d"]) + b"\n",
           seed + seed.split(b"\n")[1] + b"\n"]  # duplicate id
    for bad in (b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00"):
        for pos in (0, len(header) - 1, len(header) + 3, len(seed) - 2):
            out.append(seed[:pos] + bad + seed[pos:])
    lines = seed.split(b"\n")
    ncol = len(lines[1].split(b"\t"))
    for col in range(ncol):
        for v in INTERESTING_FIELDS:
            fs = lines[1].split(b"\t")
            fs[col] = v.encode("utf-8", "surrogatepass")
            out.append(b"\n".join([lines[0], b"\t".join(fs)] + lines[2:]))
    for k in range(ncol + 2):   # wrong column counts
        out.append(b"\n".join([lines[0], b"\t".join([b"7"] * k)] + lines[2:]))
    return out


# ------------------------------------------------------------------ targets


class Target:
    name = "?"
    text = True          # errors must name a line
    ext = ".txt"
    min_inputs = 0       # the deterministic pass must try at least this many inputs (asserted)

    def __init__(self, work):
        self.work = Path(work) / self.name
        self.work.mkdir(parents=True, exist_ok=True)
        self.input = self.work / ("input" + self.ext)
        self.setup()

    def setup(self):
        pass

    def seeds(self):  # abstract: every loader target below defines its valid seed files
        raise NotImplementedError

    def specials(self):
        return []

    def structured(self):
        """Format-aware random mutators (bytes, rng) -> bytes."""
        return []

    def allowed(self):
        return (str(self.input.resolve()),)

    def error_path(self):
        return os.fspath(self.input)

    def call(self, data):  # abstract: every loader target below calls its loader
        raise NotImplementedError

    def check_result(self, res):
        pass

    def expected_error(self):
        from monge._io import DataFormatError

        return DataFormatError

    def line_count(self, data):
        return data.count(b"\n") + 1


class Chebi20(Target):
    name, ext, min_inputs = "chebi20", ".txt", 750
    HEADER = b"CID\tSMILES\tdescription\n"

    def seeds(self):
        rows = ["1\tCCO\tThe molecule is ethanol, a primary alcohol \u2192 solvent.",
                "22\tc1ccccc1O\tPhenol: an aromatic \u00e9l\u00e9ment with \"quotes\" and 'apostrophes'.",
                "333\t[NH4+].[Cl-]\tAmmonium chloride \U0001f9ea, an \u03b1-salt.",
                "4444\tC[C@@H](N)C(=O)O\tL-alanine.",
                "55555\tC1CC2CCC1C2\tNorbornane, a bridged bicycle."]
        s = self.HEADER + "".join(r + "\n" for r in rows).encode()
        return [s, s.replace(b"\n", b"\r\n"), self.HEADER + b"7\tC\tmethane\n"]

    def specials(self):
        return text_specials(self.seeds()[0], self.HEADER)

    def structured(self):
        return TEXT_MUTATORS

    def call(self, data):
        from monge.experiments.orma.data import load_chebi20

        return load_chebi20(self.input, invalid="skip" if len(data) % 2 else "raise")

    def check_result(self, res):
        assert len(res.cids) == len(res.smiles) == len(res.descriptions)
        assert all(isinstance(c, int) and c > 0 for c in res.cids)
        assert len(set(res.cids)) == len(res.cids)
        assert all(s and d for s, d in zip(res.smiles, res.descriptions))


class Smiles(Target):
    name, text, ext, min_inputs = "smiles", False, ".smi", 130

    def seeds(self):
        return [b"c1ccccc1O", b"CC(=O)Oc1ccccc1C(=O)O", b"C1CC2CCC1C2", b"[NH4+].[Cl-]",
                b"C[C@@H](N)C(=O)O", b"c1ccc2ccccc2c1", b"C12C3C4C1C5C2C3C45", b"[Na+]", b"O"]

    def specials(self):
        return [b"", b" ", b"C" * 20000, b"c1ccccc1" * 1300, b"(" * 5000, b"C\x00C", b"\xff",
                b"[", b"C1CC", b"C%99", b"[C@@@@H]", b"*", b"[*]", b"[2H]", b"C.C", b"..", b"[U+92]"]

    def structured(self):
        def sub(b, r):
            i = r.randrange(len(b) + 1)
            return b[:i] + r.choice([b"(", b")", b"1", b"2", b"%10", b"=", b"#", b"[", b"]", b"@",
                                     b"+", b"-", b".", b"c", b"n", b"*", b"/", b"\\", b"H", b"0"]) + b[i:]
        return [sub, sub, sub]

    def call(self, data):
        from monge.experiments.orma import chem

        return chem.mol_graph(data.decode("utf-8", "surrogateescape"))

    def check_result(self, g):
        assert g.atom_x.shape[0] == g.n_atoms and g.bond_index.shape[0] == 2

    def expected_error(self):
        return ValueError

    def error_path(self):
        return "mol"


def _tone(n=64, rate=8000):
    return 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)


def _wav_bytes(samples, rate=8000, channels=1, width=2):
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        x = np.repeat(np.asarray(samples)[:, None], channels, axis=1).ravel()
        if width == 1:
            raw = (x * 127 + 128).astype(np.uint8).tobytes()
        elif width == 2:
            raw = (x * 32767).astype("<i2").tobytes()
        else:
            raw = (x * 2**31 * 0.99).astype("<i4").tobytes()
        w.writeframes(raw)
    return buf.getvalue()


def _wav_field(off, fmt, value):
    def f(b):
        if len(b) < off + struct.calcsize(fmt):
            return b
        return b[:off] + struct.pack(fmt, value) + b[off + struct.calcsize(fmt):]
    return f


# canonical 44-byte header: RIFF size @4, fmt size @16, format @20, channels @22, rate @24,
# byte rate @28, block align @32, bits @34, data size @40
_WAV_FIELDS = [(4, "<I"), (16, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"),
               (34, "<H"), (40, "<I")]


def wav_specials(seeds):
    out = []
    s = seeds[0]
    for off, fmt in _WAV_FIELDS:
        vals = INTERESTING_U32 if fmt == "<I" else [v for v in INTERESTING_U32 if v <= 0xFFFF]
        for v in vals:
            out.append(_wav_field(off, fmt, v)(s))
    for bits in (0, 1, 8, 12, 16, 24, 32, 40, 64):   # sample width 0..8 bytes
        out.append(_wav_field(34, "<H", bits)(s))
    out += [s[:44], s[:12], s[:36], s + b"\x00", s + b"junk" * 3, s.replace(b"data", b"dat\x00"),
            s.replace(b"fmt ", b"fmt\x00"), s.replace(b"WAVE", b"WAVF"), s.replace(b"RIFF", b"RIFX"),
            s[:36] + b"LIST\x03\x00\x00\x00abc\x00" + s[36:],               # odd chunk + pad byte
            s[:36] + b"LIST\xff\xff\xff\xff" + s[36:],                      # chunk past the end
            s[:12] + s[36:] + s[12:36],                                     # data before fmt
            _wav_field(40, "<I", len(s))(s), _wav_field(40, "<I", len(s) - 43)(s)]  # data > file, odd
    return out


class Wav(Target):
    name, text, ext, min_inputs = "wav", False, ".wav", 600

    def seeds(self):
        x = _tone()
        return [_wav_bytes(x), _wav_bytes(x[:31], channels=2, width=1), _wav_bytes(x[:16], width=4),
                _wav_bytes(x[:8], rate=16000, channels=3)]

    def specials(self):
        return wav_specials(self.seeds())

    def structured(self):
        def field(b, r):
            off, fmt = r.choice(_WAV_FIELDS)
            v = r.choice(INTERESTING_U32)
            return _wav_field(off, fmt, v & (0xFFFF if fmt == "<H" else 0xFFFFFFFF))(b)
        return [field, field]

    def call(self, data):
        from monge.experiments.speech_ctc_ot import data as ds

        return ds.read_wav(self.input)

    def check_result(self, res):
        x, rate = res
        assert x.dtype == np.float32 and x.ndim == 1 and isinstance(rate, int) and rate > 0
        assert np.all(np.abs(x) <= 1.0)


class Manifest(Target):
    name, ext, min_inputs = "manifest", ".tsv", 720
    HEADER = b"id\taudio\tn_frames\ttgt_text\tspeaker\tsrc_text\n"

    def setup(self):
        from monge.experiments.speech_ctc_ot import data as ds

        self.root = self.work / "corpus"
        (self.root / "wav").mkdir(parents=True, exist_ok=True)
        for i in range(3):
            ds.write_wav(self.root / "wav" / f"u{i}.wav", _tone(400), 8000)
        secret = self.work / "secret.wav"   # outside the root: never to be read or returned
        ds.write_wav(secret, _tone(400), 8000)
        for name, target in (("out.wav", secret), ("loop.wav", self.root / "wav" / "loop.wav")):
            link = self.root / "wav" / name
            if not link.is_symlink():
                link.symlink_to(target)
        self.input = self.root / "train.tsv"

    def allowed(self):
        return (str(self.root.resolve()),)

    def seeds(self):
        rows = ["u0\twav/u0.wav\t2400\tdrei eins \u00fcber\tspk0\tthree one",
                "u1\twav/u1.wav\t2400\tz\u00e9ro \u2014 \"quoted\"\tspk1\tzero",
                "u2\twav/u2.wav\t2400\tzwei\tspk0\ttwo \U0001f3a4"]
        s = self.HEADER + "".join(r + "\n" for r in rows).encode()
        alt = (b"id\tspeaker\taudio\ttgt_lang\tn_frames\ttgt_text\n"
               b"a\ts\twav/u0.wav\tde\t10\teins\nb\ts\t./wav/../wav/u1.wav\tde\t20\tzwei\n")
        return [s, s.replace(b"\n", b"\r\n"), alt]

    def specials(self):
        out = text_specials(self.seeds()[0], self.HEADER)
        for audio in ("../../etc/passwd", "/etc/passwd", "wav/out.wav", "wav/loop.wav",
                      "../secret.wav", "wav/../../secret.wav", "~/secret.wav", "wav/u0.wav\x00.x",
                      "a/" * 3000 + "u0.wav", "x" * 300, str(self.root / "wav" / "u0.wav"),
                      "wav//u0.wav", "./wav/u0.wav", "wav/u0.wav/", "fbank.zip:1:2"):
            out.append(self.HEADER + f"u9\t{audio}\t10\tt\ts\tx\n".encode("utf-8", "surrogatepass"))
        return out

    def structured(self):
        return TEXT_MUTATORS

    def call(self, data):
        from monge.experiments.speech_ctc_ot import data as ds

        return ds.load_manifest(self.input)

    def check_result(self, rows):
        root = self.root.resolve()
        ids = [r.id for r in rows]
        assert rows and len(set(ids)) == len(ids)
        for r in rows:
            assert r.audio.is_file() and root in r.audio.parents, r.audio
            assert isinstance(r.n_frames, int) and r.n_frames > 0


class ManifestCorpus(Manifest):
    """A valid manifest of one row whose wav file is the mutated input: errors must name the
    manifest and its line 2."""
    name, text, ext, min_inputs = "manifest_corpus", True, ".wav", 500

    def setup(self):
        super().setup()
        self.manifest = self.root / "one.tsv"
        self.manifest.write_bytes(self.HEADER + b"m0\twav/fuzzed.wav\t10\tt\ts\tx\n")
        self.input = self.root / "wav" / "fuzzed.wav"

    def seeds(self):
        return Wav.seeds(self)

    def specials(self):
        return wav_specials(self.seeds())[::3]

    def structured(self):
        return Wav.structured(self)

    def error_path(self):
        return os.fspath(self.manifest)

    def line_count(self, data):
        return 2

    def call(self, data):
        from monge.experiments.speech_ctc_ot import data as ds

        return ds.manifest_corpus(self.manifest, n_mels=8)

    def check_result(self, c):
        assert len(c) == 1 and c.feats[0].ndim == 2 and np.isfinite(c.feats[0]).all()


# ---- npz


def _npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npz_arrays(data):
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _npy_raw(header, payload):
    """A .npy member with an arbitrary header dict text (format 1.0)."""
    h = header.encode("latin1")
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload


def _npz_with_raw(arrays, name, header, payload=b""):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            if k == name:
                zf.writestr(k + ".npy", _npy_raw(header, payload))
            else:
                b = io.BytesIO()
                np.lib.format.write_array(b, np.asanyarray(v), allow_pickle=True)
                zf.writestr(k + ".npy", b.getvalue())
    return buf.getvalue()


_RAW_HEADERS = ["{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 4), }",
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 4), }",
                "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }",
                "{'descr': '<U0', 'fortran_order': False, 'shape': (3,), }",
                "{'descr': '|V0', 'fortran_order': False, 'shape': (99999999999,), }",
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
                "{'descr': 'nonsense', 'fortran_order': False, 'shape': (2,), }",
                "{'descr': '<f4', 'fortran_order': False, 'shape': 'x', }",
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}",
                "__import__('os').system('true')",
                "{'descr': [('a', '|O')], 'fortran_order': False, 'shape': (1,), }"]

_WEIRD_ARRAYS = [np.array(1.5), np.array("text"), np.array(["a", "b"]), np.zeros((2, 2, 2)),
                 np.array([np.nan, np.inf]), np.array([-1, 5]), np.array([2**62, 2**62], np.int64),
                 np.zeros(0), np.array([b"x"]), np.arange(3, dtype=np.uint8),
                 np.array([1 + 2j]), np.array([True]), np.zeros((3, 4), np.float16)]


class _Npz(Target):
    text, ext = False, ".npz"

    def base(self):  # abstract: the two npz targets give their valid file
        raise NotImplementedError

    def seeds(self):
        return [_npz_bytes(a) for a in self.base()]

    def _raws(self, arrays):
        return [_npz_with_raw(arrays, k, h, b"\x00" * 64) for k in arrays for h in _RAW_HEADERS]

    def specials(self):
        out = [b"", b"PK\x05\x06" + b"\x00" * 18, b"\x93NUMPY\x01\x00\x10\x00{}" + b" " * 13 + b"\n",
               b"\x80\x04K\x01.", b"not an npz"]
        a = self.base()[0]
        out += self._raws(a)
        for k in a:
            out.append(_npz_bytes({kk: v for kk, v in a.items() if kk != k}))   # a key missing
            for w in _WEIRD_ARRAYS:
                out.append(_npz_bytes({**a, k: w}))
            out.append(_npz_bytes({**a, k: np.array([object(), 1], dtype=object)}))  # pickled member
        out.append(_npz_bytes({**a, "extra": np.zeros(2)}))
        buf = io.BytesIO()
        np.save(buf, np.zeros(3))                                   # a plain .npy, not an archive
        out.append(buf.getvalue())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("readme.txt", "hello")
        out.append(buf.getvalue())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:   # zip bomb-ish
            zf.writestr("feats.npy", _npy_raw("{'descr': '<f8', 'fortran_order': False, "
                                              "'shape': (4000000,), }", b"\x00" * 32_000_000))
        out.append(buf.getvalue())
        return out

    def structured(self):
        def replace(b, r):
            try:
                a = _npz_arrays(b)
            except Exception:  # noqa: BLE001 - an earlier mutation broke the archive: mutate bytes
                return m_flip(b, r)
            if not a or any(v.dtype.itemsize == 0 or v.size > 10**6 for v in a.values()):
                return m_flip(b, r)   # not worth re-saving (a zero-itemsize array of 1e11 items)
            k = r.choice(sorted(a))
            choice = r.random()
            if choice < 0.3:
                del a[k]
            elif choice < 0.6:
                a[k] = r.choice(_WEIRD_ARRAYS)
            elif choice < 0.8 and a[k].dtype.kind == "U" and a[k].ndim == 0:
                a[k] = np.array(self.mutate_json(str(a[k]), r))
            else:
                return _npz_with_raw(a, k, r.choice(_RAW_HEADERS), b"\x00" * r.randrange(200))
            return _npz_bytes(a)
        return [replace, replace, replace]

    def mutate_json(self, s, r):
        try:
            obj = json.loads(s)
        except ValueError:
            return s[: r.randrange(len(s) + 1)]
        vals = [None, -1, 0, 1e308, "x", [], {}, True, [10**9], "float16", [1, "a"], 2**70, -0.0]
        if isinstance(obj, dict) and obj and r.random() < 0.8:
            k = r.choice(sorted(obj))
            if r.random() < 0.2:
                del obj[k]
            else:
                obj[k] = r.choice(vals)
            if r.random() < 0.1:
                obj["unknown_key"] = 1
            return json.dumps(obj)
        return r.choice(["[]", "1", "nul", "{", '"x"', "", "{\"a\": NaN}", s[:-1]])


class CorpusNpz(_Npz):
    name, min_inputs = "corpus_npz", 950

    def base(self):
        from monge.experiments.speech_ctc_ot.data import Corpus

        out = []
        for n in (3, 0):
            feats = [np.full((t, 4), t, np.float32) for t in (5, 1, 3)][:n]
            c = Corpus(feats, ["a", "\u00fcber", "c"][:n], ["x", "y", "z"][:n], ["s0", "s1", "s0"][:n],
                       ["i0", "i1", "i2"][:n], {"kind": "test", "n": n})
            p = self.work / "seed.npz"
            c.save(p)
            out.append(_npz_arrays(p.read_bytes()))
        return out

    def call(self, data):
        from monge.experiments.speech_ctc_ot.data import Corpus

        return Corpus.load(self.input)

    def check_result(self, c):
        n = len(c.feats)
        assert len(c.src) == len(c.tgt) == len(c.speakers) == len(c.ids) == n
        assert all(f.ndim == 2 for f in c.feats) and isinstance(c.info, dict)


class MapNpz(_Npz):
    name, min_inputs = "map_npz", 800
    _cache = None

    def base(self):
        if MapNpz._cache is None:
            from monge.maps import MongeGapMap

            r = np.random.default_rng(0)
            X, Y = r.normal(size=(32, 2)), r.normal(size=(32, 2)) + 1
            est = MongeGapMap(hidden=(3,), n_iter=2, batch_size=8, verbose=False, validate_every=1)
            est.fit(X, Y)
            p = self.work / "seed.npz"
            est.save(p)
            MapNpz._cache = [_npz_arrays(p.read_bytes())]
        return MapNpz._cache

    def call(self, data):
        from monge.maps import MongeGapMap

        return MongeGapMap.load(self.input)

    def check_result(self, est):
        d = est.model_.in_dim
        assert est.transform(np.zeros((1, d))).shape == (1, d)


TARGETS = {t.name: t for t in (Chebi20, Smiles, Manifest, ManifestCorpus, Wav, CorpusNpz, MapNpz)}


# ------------------------------------------------------------------ the runner


class Fuzzer:
    def __init__(self, work, names=None, seed=0, crash_dir=None):
        import monge._io  # noqa: F401 - imported before the audit starts (imports open files)
        import monge.experiments.orma.chem  # noqa: F401
        import monge.experiments.orma.data  # noqa: F401
        import monge.experiments.speech_ctc_ot.data  # noqa: F401
        import monge.maps  # noqa: F401

        _install_audit_hook()
        self.targets = [TARGETS[n](work) for n in (names or TARGETS)]
        self.seed = seed
        self.crash_dir = Path(crash_dir) if crash_dir else None
        self.counts = {t.name: 0 for t in self.targets}
        self.outcomes = {t.name: {"ok": 0, "error": 0} for t in self.targets}
        self.failures = []

    def one(self, t, data):
        """Run target t on data; returns None or a failure description."""
        self.counts[t.name] += 1
        if t.name != "smiles":
            t.input.write_bytes(data)
        _AUDIT["allowed"], _AUDIT["seen"] = t.allowed(), []
        t0 = time.perf_counter()
        problem = None
        _AUDIT["active"] = True
        try:
            res = t.call(data)
        except t.expected_error() as exc:
            _AUDIT["active"] = False
            problem = self._check_error(t, data, exc)
            if problem is None:
                self.outcomes[t.name]["error"] += 1
        except BaseException as exc:  # noqa: BLE001 - any other exception is what we look for
            _AUDIT["active"] = False
            if isinstance(exc, KeyboardInterrupt):
                raise
            problem = f"{type(exc).__name__} leaked: {exc!s:.300}\n" + "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
        else:
            _AUDIT["active"] = False
            try:
                t.check_result(res)
                self.outcomes[t.name]["ok"] += 1
            except Exception as exc:  # noqa: BLE001
                problem = f"invalid result accepted ({type(exc).__name__}: {exc!s:.300})"
        finally:
            _AUDIT["active"] = False
        dt = time.perf_counter() - t0
        if problem is None and _AUDIT["seen"]:
            problem = f"read outside the given paths: {_AUDIT['seen'][:3]}"
        if problem is None and dt > HANG_SECONDS:
            problem = f"took {dt:.1f} s (> {HANG_SECONDS} s)"
        if problem is not None:
            self._record(t, data, problem)
        return problem

    def _check_error(self, t, data, exc):
        msg = str(exc)
        where = t.error_path()
        if not msg.startswith(where + (":" if t.name != "smiles" else ": ")):
            return f"message does not start with {where!r}: {msg[:300]!r}"
        if len(msg) > 2000:
            return f"message of {len(msg)} characters"
        if t.name == "smiles":
            return None
        if exc.path != where:
            return f"DataFormatError.path {exc.path!r} != {where!r}"
        if t.text:
            m = re.match(re.escape(where) + r":(\d+): ", msg)
            if not m or exc.line != int(m.group(1)):
                return f"text format error without a line number: {msg[:300]!r}"
            if not 1 <= exc.line <= t.line_count(data):
                return f"line {exc.line} outside the file's {t.line_count(data)} lines: {msg[:200]!r}"
        return None

    def _record(self, t, data, problem):
        self.failures.append((t.name, problem, data))
        if self.crash_dir is not None:
            self.crash_dir.mkdir(parents=True, exist_ok=True)
            k = len(self.failures)
            (self.crash_dir / f"{t.name}-{k:04d}{t.ext}").write_bytes(data)
            (self.crash_dir / f"{t.name}-{k:04d}.problem").write_text(problem)

    # -- passes
    def deterministic(self, trunc_limit=400):
        """Every seed, its truncations, and the target's special inputs."""
        for t in self.targets:
            for s in t.seeds():
                self.one(t, s)
                for k in truncation_offsets(len(s), trunc_limit):
                    self.one(t, s[:k])
            for s in t.specials():
                self.one(t, s)

    def mutate(self, t, rng):
        seeds = t.seeds()
        b = rng.choice(seeds)
        muts = BYTE_MUTATORS + t.structured() * 2
        for _ in range(rng.choice([1, 1, 2, 3, 4])):
            b = rng.choice(muts)(b, rng)
            if rng.random() < 0.02 and t.text:
                b = t_long_line(b, rng)
        return b

    def random(self, n_per_target=None, seconds=None):
        """Random stacked mutations: n_per_target inputs each, or round-robin for `seconds`."""
        rngs = {t.name: random.Random(f"{self.seed}-{t.name}") for t in self.targets}
        seeds_cache = {t.name: t.seeds() for t in self.targets}
        for t in self.targets:
            t.seeds = (lambda s: (lambda: s))(seeds_cache[t.name])
        if n_per_target is not None:
            for t in self.targets:
                for _ in range(n_per_target):
                    self.one(t, self.mutate(t, rngs[t.name]))
            return
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for t in self.targets:
                for _ in range(10):
                    self.one(t, self.mutate(t, rngs[t.name]))

    def report(self, out=sys.stdout):
        print(f"{'loader':16s} {'inputs':>8s} {'valid':>7s} {'errors':>7s} {'failures':>8s}", file=out)
        for t in self.targets:
            nf = sum(1 for f in self.failures if f[0] == t.name)
            o = self.outcomes[t.name]
            print(f"{t.name:16s} {self.counts[t.name]:8d} {o['ok']:7d} {o['error']:7d} {nf:8d}",
                  file=out)
        seen = set()
        for name, problem, data in self.failures:
            key = (name, problem.splitlines()[0][:80])
            if key in seen:
                continue
            seen.add(key)
            print(f"\nFAIL {name}: {problem}\n  input ({len(data)} bytes): {data[:120]!r}", file=out)


# ------------------------------------------------------------------ atheris


def run_atheris(work, seconds, seed, crash_dir):
    import atheris

    with atheris.instrument_imports():
        import monge._io  # noqa: F401
        import monge.experiments.orma.chem  # noqa: F401
        import monge.experiments.orma.data  # noqa: F401
        import monge.experiments.speech_ctc_ot.data  # noqa: F401
        import monge.maps  # noqa: F401
    fz = Fuzzer(work, seed=seed, crash_dir=crash_dir)
    corpus = Path(work) / "atheris-corpus"
    corpus.mkdir(exist_ok=True)
    for i, t in enumerate(fz.targets):  # first byte picks the loader
        for j, s in enumerate(t.seeds()):
            (corpus / f"{t.name}-{j}").write_bytes(bytes([i]) + s)

    end = time.monotonic() + seconds
    fz.deterministic()  # truncations and format-aware special inputs first, then coverage-guided

    def finish(code):
        print(f"{sum(fz.counts.values())} inputs (atheris)")
        fz.report()
        sys.stdout.flush()
        os._exit(code)  # libFuzzer's own exit would skip Python's atexit handlers

    def one_input(data):
        if time.monotonic() > end:
            finish(1 if fz.failures else 0)
        if not data:
            return
        t = fz.targets[data[0] % len(fz.targets)]
        problem = fz.one(t, data[1:])
        if problem is not None:
            finish(1)

    atheris.Setup([sys.argv[0], f"-seed={seed + 1}", "-max_len=65536", "-rss_limit_mb=4096",
                   f"-artifact_prefix={crash_dir}/", str(corpus)], one_input)
    atheris.Fuzz()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loader", action="append", choices=sorted(TARGETS),
                    help="fuzz only these loaders (repeatable; default: all)")
    ap.add_argument("--engine", choices=("auto", "builtin", "atheris"), default="auto")
    ap.add_argument("--crash-dir", default="build/fuzz-loaders-crashes")
    args = ap.parse_args(argv)
    engine = args.engine
    if engine != "builtin":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            if args.engine == "atheris":
                print("atheris is not importable (pip install atheris); using the built-in mutator",
                      file=sys.stderr)
            engine = "builtin"
    with tempfile.TemporaryDirectory(prefix="monge-fuzz-loaders-") as work:
        if engine == "atheris":
            Path(args.crash_dir).mkdir(parents=True, exist_ok=True)
            print(f"engine: atheris (coverage-guided), {args.seconds:.0f} s", flush=True)
            run_atheris(work, args.seconds, args.seed, args.crash_dir)
            return 0
        t0 = time.monotonic()
        fz = Fuzzer(work, args.loader, seed=args.seed, crash_dir=args.crash_dir)
        print(f"engine: built-in mutator, seed {args.seed}, {args.seconds:.0f} s", flush=True)
        fz.deterministic()
        left = args.seconds - (time.monotonic() - t0)
        if left > 0:
            fz.random(seconds=left)
        print(f"{sum(fz.counts.values())} inputs in {time.monotonic() - t0:.1f} s")
        fz.report()
        if fz.failures:
            print(f"\n{len(fz.failures)} failures; inputs written to {args.crash_dir}/")
        return 1 if fz.failures else 0


if __name__ == "__main__":
    sys.exit(main())
