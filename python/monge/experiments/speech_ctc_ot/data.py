"""Speech–text data for the CTC + OT pre-training experiment (issue 7): real recordings (the Free Spoken
Digit Dataset), synthesised speech (eSpeak NG), log-mel filterbanks in NumPy, a feature cache, and a
loader for the speech-translation manifests of fairseq's speech_to_text recipes.

Corpora (each utterance: features, English transcript, translation, speaker)
    fsdd_recordings(root)              the FSDD files {digit}_{speaker}_{index}.wav, parsed
    digit_sequence_corpus(root, ...)   spoken digit SEQUENCES from FSDD: recordings of one speaker
                                       concatenated, exact transcript ("three one four") and its
                                       rule-based German translation ("drei eins vier")
    synthetic_corpus(n, ...)           English sentences from a small grammar with a real vocabulary,
                                       spoken by eSpeak NG (voices x speeds x pitches as speakers),
                                       each with a rule-based French translation
    load_manifest(path)                TSV manifest (id, audio, n_frames, tgt_text, speaker[, src_text])
    manifest_corpus(path)              the same read into a corpus (wav files -> features)

Features: :func:`log_mel` (80-dim Kaldi-style log-mel filterbanks, 25 ms / 10 ms).  Corpora are cached
as npz (read with allow_pickle=False) under a cache directory outside the repository
(default ~/.cache/monge/speech).  Nothing is downloaded: FSDD is at
github.com/Jakobovski/free-spoken-digit-dataset; the project's tests generate their own audio.
"""
from __future__ import annotations

import hashlib
import io
import json
import numbers
import os
import re
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import _io
from ..._io import DataFormatError

__all__ = ["read_wav", "write_wav", "log_mel", "mel_filterbank", "trim_silence", "Corpus",
           "fsdd_recordings", "digit_sequence_corpus", "DIGITS_EN", "DIGITS_DE", "translate_digits",
           "grammar_sentences", "translate_en_fr", "synthetic_corpus", "tts_available", "synthesize",
           "SPEAKERS_TTS", "ManifestEntry", "load_manifest", "manifest_corpus", "default_cache_dir",
           "split_speakers"]


def default_cache_dir():
    """$MONGE_CACHE/speech or ~/.cache/monge/speech (outside any repository)."""
    base = os.environ.get("MONGE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "monge")
    return Path(base) / "speech"


def _rng(seed, name="seed"):
    """A Generator from an int >= 0 or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name}: expected an int or a numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name}: must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _posint(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return int(v)


# ------------------------------------------------------------------ audio I/O

def read_wav(path):
    """A PCM wav file as (float32 samples in [-1, 1], sample rate); stereo is averaged to mono.
    Anything that is not a complete 8/16/32-bit PCM file (a bad or truncated header, no channels, a
    zero sample rate, a data chunk larger than the file or cut short) raises
    :class:`monge._io.DataFormatError` (a ValueError) naming the file; an unreadable path raises
    ValueError."""
    path = Path(path)
    data = _io.read_bytes(path)  # wav files are small; one read, no second open of the path
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width not in (1, 2, 4):
                raise DataFormatError(path, None, f"unsupported sample width {width} bytes (8, 16 or "
                                                  "32-bit PCM only)")
            if rate <= 0:
                raise DataFormatError(path, None, f"sample rate {rate} Hz (must be positive)")
            need = n * ch * width
            if need > len(data):
                raise DataFormatError(path, None, f"the data chunk declares {need} bytes but the file "
                                                  f"has only {len(data)}")
            raw = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise DataFormatError(path, None, f"not a readable PCM wav file ({exc or 'truncated'})") \
            from None
    except RuntimeError:  # the chunk reader seeking outside a chunk: a chunk size past the end
        raise DataFormatError(path, None, "not a readable PCM wav file (a chunk size runs past the "
                                          "end of the file)") from None
    if len(raw) != need:
        raise DataFormatError(path, None, f"truncated data chunk: {len(raw)} of the {need} bytes its "
                                          "header declares")
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    else:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


def write_wav(path, samples, rate):
    """Write float samples in [-1, 1] as 16-bit mono PCM."""
    x = np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes((x * 32767.0).round().astype("<i2").tobytes())


# ------------------------------------------------------------------ features

def _hz_to_mel(f):
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)


def mel_filterbank(n_mels, n_fft, rate, low=20.0, high=None):
    """Triangular filters on the HTK mel scale, mel(f) = 1127 ln(1 + f / 700), as Kaldi builds
    them (triangles linear in mel): (n_mels, n_fft // 2 + 1)."""
    high = rate / 2.0 if high is None else high
    mel_lo, mel_hi = _hz_to_mel(low), _hz_to_mel(high)
    edges = np.linspace(mel_lo, mel_hi, n_mels + 2)
    bins = _hz_to_mel(np.arange(n_fft // 2 + 1) * rate / n_fft)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None] - left) / (centre - left)
    down = (right - bins[None]) / (right - centre)
    return np.clip(np.minimum(up, down), 0.0, None)


def log_mel(samples, rate, n_mels=80, frame_ms=25.0, hop_ms=10.0, preemph=0.97):
    """80-dim log-mel filterbank features, Kaldi-style: frames of 25 ms every 10 ms (edges snipped),
    DC removed, pre-emphasis 0.97, Hamming window, power spectrum (FFT size: next power of two
    >= 2 x the window), triangular mel filters from 20 Hz to rate / 2, log(max(E, 1.19e-7)).
    Returns float32 (n_frames, n_mels); n_frames = 1 + (N - win) // hop (0 when N < win)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples: expected a 1-D signal, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples: contains NaN or infinity")
    rate = _posint("rate", rate)
    n_mels = _posint("n_mels", n_mels)
    win = int(round(rate * frame_ms / 1000.0))
    hop = int(round(rate * hop_ms / 1000.0))
    if win < 2 or hop < 1:
        raise ValueError(f"rate: {rate} Hz is too low for {frame_ms} ms frames")
    if len(x) < win:
        return np.zeros((0, n_mels), np.float32)
    n = 1 + (len(x) - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx]
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - preemph), frames[:, 1:] - preemph * frames[:, :-1]],
                            axis=1)
    frames *= np.hamming(win)[None]
    n_fft = 1 << int(np.ceil(np.log2(2 * win)))
    power = np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2
    fb = mel_filterbank(n_mels, n_fft, rate)
    return np.log(np.maximum(power @ fb.T, 1.1920929e-07)).astype(np.float32)


def trim_silence(x, rate, threshold=0.05, margin_ms=20.0):
    """x without its leading and trailing silence: 10 ms frames whose RMS is below threshold x the
    loudest frame's are cut, keeping margin_ms on each side."""
    hop = max(1, rate // 100)
    n = len(x) // hop
    if n == 0:
        return x
    rms = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1))
    on = np.flatnonzero(rms >= threshold * rms.max())
    m = int(rate * margin_ms / 1000)
    return x[max(0, on[0] * hop - m): min(len(x), (on[-1] + 1) * hop + m)]


# ------------------------------------------------------------------ corpora


@dataclass
class Corpus:
    """Utterances with features (list of float32 (T_i, n_mels)), English transcripts (`src`),
    translations (`tgt`), speakers and ids; `info` describes how it was built (JSON-able)."""

    feats: list
    src: list
    tgt: list
    speakers: list
    ids: list
    info: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.feats)

    def subset(self, index):
        index = list(index)
        pick = lambda v: [v[i] for i in index]  # noqa: E731
        return Corpus(pick(self.feats), pick(self.src), pick(self.tgt), pick(self.speakers),
                      pick(self.ids), dict(self.info))

    def by_speakers(self, speakers):
        keep = set(speakers)
        return self.subset(i for i, s in enumerate(self.speakers) if s in keep)

    def save(self, path):
        """npz: features concatenated with their lengths, texts as unicode arrays, info as JSON."""
        lengths = np.array([f.shape[0] for f in self.feats], np.int64)
        n_mels = self.feats[0].shape[1] if self.feats else 0
        feats = np.concatenate(self.feats) if self.feats else np.zeros((0, n_mels), np.float32)
        # a temporary name of this process's own, so that runs building the same cache at once
        # each replace the file with a whole copy
        tmp = Path(f"{path}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, feats=feats.astype(np.float32), lengths=lengths,
                     src=np.array(self.src, dtype=str), tgt=np.array(self.tgt, dtype=str),
                     speakers=np.array(self.speakers, dtype=str), ids=np.array(self.ids, dtype=str),
                     info=np.array(json.dumps(self.info)))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path):
        """A corpus written by :meth:`save`; a malformed file raises
        :class:`monge._io.DataFormatError` naming it (read with allow_pickle=False)."""
        keys = ("feats", "lengths", "src", "tgt", "speakers", "ids", "info")
        z = _io.read_npz(path, keys)
        missing = [k for k in keys if k not in z]
        if missing:
            raise DataFormatError(path, None, f"not a saved Corpus (missing {', '.join(missing)})")
        feats, lengths = z["feats"], z["lengths"]
        if feats.ndim != 2 or feats.dtype.kind != "f":
            raise DataFormatError(path, None, f"feats: expected a 2-D float array, got {feats.ndim}-D "
                                              f"{feats.dtype}")
        if (lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any()
                or sum(lengths.tolist()) != feats.shape[0]):   # exact: no integer wrap-around
            raise DataFormatError(path, None, "inconsistent feature lengths")
        texts = {}
        for k in ("src", "tgt", "speakers", "ids"):
            if z[k].ndim != 1 or z[k].dtype.kind != "U" or len(z[k]) != len(lengths):
                raise DataFormatError(path, None, f"{k}: expected {len(lengths)} strings, got "
                                                  f"{z[k].dtype} of shape {z[k].shape}")
            texts[k] = z[k].tolist()
        try:
            if z["info"].ndim != 0 or z["info"].dtype.kind != "U":
                raise ValueError("not a string")
            info = json.loads(str(z["info"]))
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise DataFormatError(path, None, f"info: expected a JSON object ({exc})") from None
        parts = np.split(feats, np.cumsum(lengths)[:-1]) if len(lengths) else []
        return cls(list(parts), texts["src"], texts["tgt"], texts["speakers"], texts["ids"], info)


def _cached(cache_dir, key, build):
    """build() cached as cache_dir/<hash of key>.npz (None: no cache)."""
    if cache_dir is None:
        return build()
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{key['kind']}-{h}.npz"
    if path.exists():
        try:
            return Corpus.load(path)
        except DataFormatError as exc:
            raise DataFormatError(path, None, f"{exc.what}; delete this cache file to rebuild it") \
                from None
    c = build()
    c.save(path)
    return c


DIGITS_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGITS_DE = ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"]
_FSDD_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")


def translate_digits(text):
    """Rule-based English -> German translation of a spoken digit sequence ("three one" -> "drei eins")."""
    out = []
    for w in text.split():
        if w not in DIGITS_EN:
            raise ValueError(f"text: {w!r} is not an English digit word")
        out.append(DIGITS_DE[DIGITS_EN.index(w)])
    return " ".join(out)


def fsdd_recordings(root):
    """The FSDD recordings under root (or root/recordings): list of (digit, speaker, index, path),
    sorted.  Files not named {digit}_{speaker}_{index}.wav are ignored."""
    root = Path(root)
    d = root / "recordings" if (root / "recordings").is_dir() else root
    if not d.is_dir():
        raise ValueError(f"root: {root} is not a directory")
    out = []
    for p in sorted(d.iterdir()):
        m = _FSDD_NAME.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), m.group(2), int(m.group(3)), p))
    if not out:
        raise ValueError(f"root: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) in {d}")
    return out


def split_speakers(speakers, n_test, seed=0):
    """(train speakers, test speakers): n_test speakers held out, chosen by seed."""
    sp = sorted(set(speakers))
    n_test = _posint("n_test", n_test)
    if n_test >= len(sp):
        raise ValueError(f"n_test: {n_test} held-out speakers leave none of {len(sp)} for training")
    perm = _rng(seed).permutation(len(sp))
    test = sorted(sp[i] for i in perm[:n_test])
    return [s for s in sp if s not in test], test


def _normalise(x, rms=0.05):
    r = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    return (x * (rms / r)).astype(np.float32) if r > 0 else x


def digit_sequence_corpus(root, n_utterances=1500, min_digits=2, max_digits=4, seed=0,
                          cache_dir="default", n_mels=80):
    """Spoken digit sequences from real FSDD recordings.

    Each utterance: a speaker (uniformly), a digit string of min_digits..max_digits digits, one
    recording of that speaker per digit (silence trimmed, loudness normalised), joined with 40-150 ms
    pauses of faint noise.  Transcript "three one four", translation "drei eins vier" (German),
    8 kHz log-mel features.  Cached (cache_dir=None: no cache)."""
    recs = fsdd_recordings(root)
    n_utterances = _posint("n_utterances", n_utterances)
    min_digits = _posint("min_digits", min_digits)
    max_digits = _posint("max_digits", max_digits, min_digits)
    files = [r[3].name for r in recs]
    key = dict(kind="fsdd", n=n_utterances, lo=min_digits, hi=max_digits, seed=int(seed),
               n_mels=n_mels, files=hashlib.sha256("\n".join(files).encode()).hexdigest(), v=1)
    cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir

    def build():
        rng = _rng(seed)
        table = {}
        for digit, spk, _, p in recs:
            table.setdefault((spk, digit), []).append(p)
        speakers = sorted({r[1] for r in recs})
        loaded = {}
        feats, src, tgt, spks, ids = [], [], [], [], []
        rate0 = None
        for u in range(n_utterances):
            spk = speakers[rng.integers(len(speakers))]
            k = int(rng.integers(min_digits, max_digits + 1))
            digits = [int(d) for d in rng.integers(0, 10, size=k)]
            pieces = []
            for j, dgt in enumerate(digits):
                cands = table.get((spk, dgt))
                if not cands:
                    raise ValueError(f"root: speaker {spk} has no recording of digit {dgt}")
                p = cands[rng.integers(len(cands))]
                if p not in loaded:
                    x, rate = read_wav(p)
                    if rate0 is None:
                        rate0 = rate
                    elif rate != rate0:
                        raise ValueError(f"{p}: sample rate {rate} differs from {rate0}")
                    loaded[p] = _normalise(trim_silence(x, rate))
                gap = int(rate0 * rng.uniform(0.04, 0.15))
                if j == 0:
                    pieces.append(1e-3 * rng.standard_normal(gap).astype(np.float32))
                pieces.append(loaded[p])
                pieces.append(1e-3 * rng.standard_normal(gap).astype(np.float32))
            wav = np.concatenate(pieces)
            text = " ".join(DIGITS_EN[d] for d in digits)
            feats.append(log_mel(wav, rate0, n_mels=n_mels))
            src.append(text)
            tgt.append(translate_digits(text))
            spks.append(spk)
            ids.append(f"fsdd-{u:05d}")
        return Corpus(feats, src, tgt, spks, ids, dict(key, rate=rate0, speakers=speakers))

    corpus = _cached(cache_dir, key, build)
    corpus.info["root"] = str(root)  # where the recordings are; not part of the cache key
    return corpus


# ------------------------------------------------------------------ grammar + rule-based translation
#
# English: Det Adj Noun Verb Det Adj Noun [Prep Det Noun]   ("the red dog sees a small bird")
# French: nouns carry gender, adjectives follow the noun and agree ("le chien rouge voit un petit
# oiseau" would need pre-nominal adjectives; every adjective here is post-nominal in French, so the
# translation reorders adjective and noun), articles elide before a vowel ("l'oiseau").

_NOUNS = {  # english: (french, gender)
    "dog": ("chien", "m"), "cat": ("chat", "m"), "bird": ("oiseau", "m"), "horse": ("cheval", "m"),
    "child": ("enfant", "m"), "teacher": ("professeur", "m"), "house": ("maison", "f"),
    "car": ("voiture", "f"), "apple": ("pomme", "f"), "table": ("table", "f"),
    "book": ("livre", "m"), "tree": ("arbre", "m"), "door": ("porte", "f"), "flower": ("fleur", "f"),
    "river": ("rivière", "f"), "garden": ("jardin", "m"),
}
_ADJS = {  # english: (french masculine, feminine)
    "red": ("rouge", "rouge"), "black": ("noir", "noire"), "green": ("vert", "verte"),
    "white": ("blanc", "blanche"), "blue": ("bleu", "bleue"), "happy": ("heureux", "heureuse"),
    "tired": ("fatigué", "fatiguée"), "round": ("rond", "ronde"), "old": ("ancien", "ancienne"),
}
_VERBS = {"sees": "voit", "likes": "aime", "follows": "suit", "finds": "trouve", "watches": "regarde",
          "paints": "peint", "wants": "veut"}
_PREPS = {"near": "près de", "behind": "derrière", "in": "dans", "under": "sous"}
_DETS = {"the": ("le", "la", "l'"), "a": ("un", "une", "un"), "an": ("un", "une", "un"),
         "my": ("mon", "ma", "mon")}
_VOWEL = re.compile(r"^[aeiouhé]")


def _fr_np(det, adj, noun):
    fr, g = _NOUNS[noun]
    m, f, v = _DETS[det]
    if det == "the":
        d = v if _VOWEL.match(fr) else (m if g == "m" else f)
        sep = "" if d.endswith("'") else " "
    else:
        d, sep = (m if g == "m" or (det == "my" and _VOWEL.match(fr)) else f), " "
    words = d + sep + fr
    if adj is not None:
        words += " " + _ADJS[adj][0 if g == "m" else 1]
    return words


def translate_en_fr(sentence):
    """Rule-based English -> French translation of a sentence of :func:`grammar_sentences`
    (adjectives after the noun and agreeing with it, elision, "de le" -> "du", "de un" -> "d'un")."""
    w = sentence.split()

    def noun_phrase(i):
        if i >= len(w) or w[i] not in _DETS:
            raise KeyError(i)
        if i + 1 < len(w) and w[i + 1] in _ADJS:
            return _fr_np(w[i], w[i + 1], w[i + 2]), i + 3
        return _fr_np(w[i], None, w[i + 1]), i + 2

    try:
        subj, i = noun_phrase(0)
        out = f"{subj} {_VERBS[w[i]]}"
        obj, i = noun_phrase(i + 1)
        out += f" {obj}"
        if i < len(w):
            prep = _PREPS[w[i]]
            pp, i = noun_phrase(i + 1)
            if prep.endswith(" de"):
                if pp.startswith("le "):
                    prep, pp = prep[:-2] + "du", pp[3:]
                elif pp.startswith("un"):
                    prep, pp = prep[:-2] + "d'", pp
                    out += f" {prep}{pp}"
                    pp = None
            if pp is not None:
                out += f" {prep} {pp}"
        if i != len(w):
            raise KeyError(i)
        return out
    except (KeyError, IndexError):
        raise ValueError(f"sentence: {sentence!r} is not in the grammar") from None


def grammar_sentences(n, seed=0, p_adj=0.5, p_pp=0.35):
    """n English sentences from the grammar (real vocabulary: 16 nouns, 9 adjectives, 7 verbs,
    4 prepositions, 3 determiners), deterministic for a seed."""
    rng = _rng(seed)
    n = _posint("n", n)
    nouns, adjs, verbs, preps = list(_NOUNS), list(_ADJS), list(_VERBS), list(_PREPS)
    dets = ["the", "a", "my"]
    pick = lambda xs: xs[rng.integers(len(xs))]  # noqa: E731

    def np_():
        det = pick(dets)
        words = [pick(adjs), pick(nouns)] if rng.random() < p_adj else [pick(nouns)]
        if det == "a" and words[0][0] in "aeiou":
            det = "an"
        return " ".join([det] + words)

    out = []
    for _ in range(n):
        s = f"{np_()} {pick(verbs)} {np_()}"
        if rng.random() < p_pp:
            s += f" {pick(preps)} {np_()}"
        out.append(s)
    return out


# ------------------------------------------------------------------ eSpeak NG (ctypes)

# speakers of the synthesised corpus: (name, eSpeak voice+variant, words per minute, pitch 0-99)
SPEAKERS_TTS = [
    ("us-m1", "en-us+m1", 150, 40), ("us-f2", "en-us+f2", 170, 60), ("gb-m3", "en+m3", 140, 35),
    ("gb-f1", "en+f1", 160, 70), ("us-m7", "en-us+m7", 185, 50), ("gb-f4", "en+f4", 130, 55),
    ("sc-m2", "en-gb-scotland+m2", 155, 45), ("us-f3", "en-us+f3", 175, 65),
]

_ESPEAK: dict = {}


def tts_available():
    """True when eSpeak NG can be loaded (pip install espeakng-loader, part of the speech extra)."""
    try:
        _espeak()
        return True
    except (ImportError, OSError, RuntimeError):
        return False


def _espeak():
    if "lib" in _ESPEAK:
        return _ESPEAK
    import ctypes

    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # synchronous
    if rate <= 0:
        raise RuntimeError("eSpeak NG failed to initialise")
    chunks = []
    CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def callback(wav, n, events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        return 0

    cb = CB(callback)
    lib.espeak_SetSynthCallback(cb)
    _ESPEAK.update(lib=lib, rate=rate, chunks=chunks, cb=cb)
    return _ESPEAK


def synthesize(text, voice="en-us", rate_wpm=160, pitch=50):
    """Speech for `text` from eSpeak NG: (float32 samples, sample rate)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text: expected a non-empty string")
    e = _espeak()
    lib = e["lib"]
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"voice: eSpeak NG has no voice {voice!r}")
    lib.espeak_SetParameter(1, int(rate_wpm), 0)  # espeakRATE
    lib.espeak_SetParameter(3, int(pitch), 0)     # espeakPITCH
    e["chunks"].clear()
    data = text.encode("utf-8") + b"\0"
    if lib.espeak_Synth(data, len(data), 0, 1, 0, 0, None, None) != 0:
        raise RuntimeError(f"eSpeak NG failed on {text!r}")
    lib.espeak_Synchronize()
    wav = np.concatenate(e["chunks"]) if e["chunks"] else np.zeros(0, np.int16)
    return wav.astype(np.float32) / 32768.0, e["rate"]


def synthetic_corpus(n_utterances=1500, speakers=None, seed=0, cache_dir="default", n_mels=80):
    """English grammar sentences spoken by eSpeak NG, with their French translations.

    Each utterance: a sentence of :func:`grammar_sentences` and a speaker of `speakers` (default
    :data:`SPEAKERS_TTS`: voice variant, speed and pitch), chosen by seed; 22.05 kHz log-mel
    features (plus faint noise).  Cached like :func:`digit_sequence_corpus`."""
    n_utterances = _posint("n_utterances", n_utterances)
    speakers = SPEAKERS_TTS if speakers is None else [tuple(s) for s in speakers]
    key = dict(kind="tts", n=n_utterances, seed=int(seed), n_mels=n_mels, speakers=speakers, v=1)
    cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir

    def build():
        rng = _rng(seed)
        sents = grammar_sentences(n_utterances, seed=rng)
        feats, tgt, spks, ids = [], [], [], []
        rate = None
        for u, s in enumerate(sents):
            name, voice, wpm, pitch = speakers[rng.integers(len(speakers))]
            wav, rate = synthesize(s, voice, wpm, pitch)
            wav = trim_silence(wav, rate)
            wav = wav + 1e-3 * rng.standard_normal(len(wav)).astype(np.float32)
            feats.append(log_mel(wav, rate, n_mels=n_mels))
            tgt.append(translate_en_fr(s))
            spks.append(name)
            ids.append(f"tts-{u:05d}")
        return Corpus(feats, sents, tgt, spks, ids, dict(key, rate=rate))

    return _cached(cache_dir, key, build)


# ------------------------------------------------------------------ speech-translation manifests

_REQUIRED = ("id", "audio", "n_frames", "tgt_text", "speaker")


@dataclass
class ManifestEntry:
    id: str
    audio: Path
    n_frames: int
    tgt_text: str
    speaker: str
    src_text: str | None = None
    line: int | None = None  # the manifest line it came from (for error messages)


def load_manifest(path, audio_root=None):
    """Rows of a speech-translation manifest as fairseq's speech_to_text recipes write it: a TSV with
    a header naming at least id, audio, n_frames, tgt_text, speaker (src_text, tgt_lang and others
    may follow), one row per line, fields split at tabs (no quoting, as fairseq writes it), LF or
    CRLF line ends.  `audio` is a wav path relative to audio_root (default: the manifest's folder);
    absolute paths, paths leaving audio_root (also through symlinks), and fairseq's zipped
    "file.zip:offset:length" entries are rejected.  Any malformed content raises
    :class:`monge._io.DataFormatError` (a ValueError) whose message starts with
    ``"{path}:{line}: "``; the wav files are checked to exist but not read."""
    path = Path(path)
    root = Path(audio_root if audio_root is not None else path.parent).resolve()
    lines = _io.text_lines(_io.decode_utf8(path, _io.read_bytes(path)))
    if not lines:
        raise DataFormatError(path, 1, "empty manifest (expected a header line)")
    header = lines[0].split("\t")
    missing = [c for c in _REQUIRED if c not in header]
    if missing or len(set(header)) != len(header):
        raise DataFormatError(path, 1, f"header must name the columns {', '.join(_REQUIRED)} once "
                                       f"each (missing: {', '.join(missing) or 'none'})")
    col = {c: header.index(c) for c in header}
    out, seen = [], {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line:
            raise DataFormatError(path, lineno, "empty line")
        row = line.split("\t")
        if len(row) != len(header):
            raise DataFormatError(path, lineno, f"expected {len(header)} tab-separated fields, got "
                                                f"{len(row)}")
        uid = row[col["id"]].strip()
        if not uid:
            raise DataFormatError(path, lineno, "empty id")
        if uid in seen:
            raise DataFormatError(path, lineno, f"duplicate id {_io.show(uid)} (first on line "
                                                f"{seen[uid]})")
        seen[uid] = lineno
        nf = row[col["n_frames"]]
        if not re.fullmatch(r"[+-]?[0-9]+", nf.strip()):
            raise DataFormatError(path, lineno, f"n_frames {_io.show(nf)} is not an integer")
        nf = _io.parse_int(path, lineno, "n_frames", nf)
        audio = row[col["audio"]]
        if not audio:
            raise DataFormatError(path, lineno, "empty audio path")
        if re.search(r":\d+:\d+$", audio):
            raise DataFormatError(path, lineno, f"zipped audio {_io.show(audio)} (file:offset:length) "
                                                "is not supported; give wav paths")
        full = _io.resolve_inside(path, lineno, "audio path", audio, root)
        if not _io.is_file(full):
            raise DataFormatError(path, lineno, f"audio file {_io.show(audio)} not found under {root}")
        tgt = row[col["tgt_text"]]
        if not tgt.strip():
            raise DataFormatError(path, lineno, "empty tgt_text")
        src = row[col["src_text"]] if "src_text" in col else None
        out.append(ManifestEntry(uid, full, nf, tgt, row[col["speaker"]], src, line=lineno))
    if not out:
        raise DataFormatError(path, 1, "no rows after the header")
    return out


def manifest_corpus(path, audio_root=None, n_mels=80):
    """A manifest (see :func:`load_manifest`) read into a :class:`Corpus` (wav -> log-mel).  Needs a
    src_text column (the transcript, for CTC pre-training)."""
    rows = load_manifest(path, audio_root)
    if rows[0].src_text is None:
        raise DataFormatError(path, 1, "the experiment needs a src_text column (the transcripts)")
    feats = []
    for r in rows:
        try:
            x, rate = read_wav(r.audio)
            feats.append(log_mel(x, rate, n_mels=n_mels))
        except DataFormatError as exc:
            raise DataFormatError(path, r.line, f"audio {r.audio}: {exc.what}") from None
        except ValueError as exc:  # what log_mel refuses, e.g. a sample rate too low for its frames
            raise DataFormatError(path, r.line, f"audio {r.audio}: {exc}") from None
    return Corpus(feats, [r.src_text for r in rows], [r.tgt_text for r in rows],
                  [r.speaker for r in rows], [r.id for r in rows],
                  dict(kind="manifest", path=str(path)))
