"""The bad-input catalogue: each class of invalid input, for each public function, and the error it
gets.  tests/test_bad_input.py checks every row; docs/errors.md is rendered from it:

    python tests/bad_input_catalogue.py > docs/errors.md

Loader rows write their (small) input file lazily, inside the call, into a temporary directory; in
their message pattern "{path}" stands for that file.
"""
import atexit
import importlib
import json
import os
import shutil
import struct
import tempfile

import numpy as np

import monge
import monge.maps
from monge._io import DataFormatError

R = np.random.default_rng(0)
X, Y, X3 = R.random((5, 2)), R.random((4, 2)), R.random((4, 3))
C = R.random((5, 4))
A, B = np.full(5, 0.2), np.full(4, 0.25)
NAN_X = X.copy()
NAN_X[0, 0] = np.nan
INF_C = C.copy()
INF_C[1, 1] = np.inf
P3, Q3 = np.array([0.5, 0.5, 0.0]), np.array([0.2, 0.3, 0.5])
LP = np.log(np.full((6, 2, 4), 0.25))
TG = np.array([[1, 2], [3, 1]])

# (function, input class, call, exception type, message pattern)
CATALOGUE = [
    ("sinkhorn", "non-finite points", lambda: monge.sinkhorn(NAN_X, Y, eps=0.1), ValueError, "x: contains NaN"),
    ("sinkhorn", "dimensions differ", lambda: monge.sinkhorn(X, X3, eps=0.1), ValueError, "x, y: dimensions differ"),
    ("sinkhorn", "non-numeric dtype", lambda: monge.sinkhorn(np.array([["a", "b"]]), Y, eps=0.1), TypeError, "x: expected a real numeric array"),
    ("sinkhorn", "eps <= 0", lambda: monge.sinkhorn(X, Y, eps=0.0), ValueError, "eps: must be a positive number"),
    ("sinkhorn", "negative weights", lambda: monge.sinkhorn(X, Y, -A, eps=0.1), ValueError, "a: weights must be non-negative"),
    ("sinkhorn", "mass mismatch (balanced)", lambda: monge.sinkhorn(X, Y, A, 2 * B, eps=0.1), ValueError, "a, b: total masses differ"),
    ("sinkhorn", "weights of the wrong length", lambda: monge.sinkhorn(X, Y, A[:3], eps=0.1), ValueError, "a: expected shape"),
    ("sinkhorn", "empty cloud", lambda: monge.sinkhorn(np.zeros((0, 2)), Y, eps=0.1), ValueError, "x: empty array"),
    ("sinkhorn", "unknown cost", lambda: monge.sinkhorn(X, Y, eps=0.1, cost="l1"), ValueError, "cost: unknown value"),
    ("sinkhorn", "torch tensor to the NumPy API", lambda: monge.sinkhorn(_tensor(X), Y, eps=0.1), TypeError, "x: got a torch tensor"),
    ("sinkhorn (multiscale)", "cost it cannot bound", lambda: monge.sinkhorn(X, Y, eps=0.1, method="multiscale", cost="cosine"), ValueError, "cost: method='multiscale' supports"),
    ("sinkhorn (multiscale)", "a cost matrix", lambda: monge.sinkhorn(C=C, eps=0.1, method="multiscale"), ValueError, "C: method='multiscale' works on point clouds"),
    ("sinkhorn (multiscale)", "dimension above 8", lambda: monge.sinkhorn(np.ones((3, 9)), np.ones((2, 9)), eps=0.1, method="multiscale"), ValueError, "x: method='multiscale' is for dimension <= 8"),
    ("sinkhorn (multiscale)", "truncation out of range", lambda: monge.sinkhorn(X, Y, eps=0.1, method="multiscale", truncation=100.0), ValueError, "truncation: at most 60"),
    ("sinkhorn (multiscale)", "multiscale knob without the method", lambda: monge.sinkhorn(X, Y, eps=0.1, truncation=10.0), ValueError, "cluster_scale, truncation: options of method='multiscale'"),
    ("sinkhorn (multiscale)", "unknown method", lambda: monge.sinkhorn(X, Y, eps=0.1, method="fast"), ValueError, "method: unknown value"),
    ("cost_matrix", "cosine cost with a zero vector", lambda: monge.cost_matrix(np.zeros((2, 2)), Y, cost="cosine"), ValueError, "x: the cosine cost is undefined"),
    ("sinkhorn_divergence", "non-finite points", lambda: monge.sinkhorn_divergence(X, NAN_X, eps=0.1), ValueError, "y: contains NaN"),
    ("sinkhorn_divergence", "pnorm with p < 1", lambda: monge.sinkhorn_divergence(X, Y, eps=0.1, cost="pnorm", p=0.5), ValueError, "p: the pnorm exponent"),
    ("monge_gap", "one image per sample", lambda: monge.monge_gap(X, Y), ValueError, "x, tx: need one image per sample"),
    ("emd", "non-finite cost", lambda: monge.emd(None, None, INF_C), ValueError, "C: contains NaN or infinity"),
    ("emd", "both C and points", lambda: monge.emd(None, None, C, x=X, y=Y), ValueError, "C: give either C"),
    ("emd", "mass mismatch beyond mass_rtol", lambda: monge.emd(A, 1.01 * B, C), ValueError, "a, b: total masses differ"),
    ("emd", "negative weights", lambda: monge.emd(A, -B, C), ValueError, "b: weights must be non-negative"),
    ("emd", "max_iter < 1", lambda: monge.emd(None, None, C, max_iter=0), ValueError, "max_iter: must be >= 1"),
    ("emd", "projection start without points", lambda: monge.emd(None, None, C, init="projection"), ValueError, "init: 'projection' needs point clouds"),
    ("emd_1d", "p < 1", lambda: monge.emd_1d([0.0], [1.0], p=0.5), ValueError, "p: must be a finite number >= 1"),
    ("wasserstein_1d", "2-D samples with d > 1", lambda: monge.wasserstein_1d(X, Y), ValueError, "x: 1-D samples"),
    ("sliced_wasserstein", "directions of the wrong dimension", lambda: monge.sliced_wasserstein(X, Y, projections=np.ones((3, 3))), ValueError, "projections: expected shape"),
    ("sliced_wasserstein", "n_projections < 1", lambda: monge.sliced_wasserstein(X, Y, n_projections=0), ValueError, "n_projections: must be >= 1"),
    ("ctc_loss", "input length > T", lambda: monge.ctc_loss(LP, TG, [7, 6], [2, 2]), ValueError, "input_lengths: each must be in"),
    ("ctc_loss", "target length > S_max", lambda: monge.ctc_loss(LP, TG, [6, 6], [3, 2]), ValueError, "target_lengths: sample 0 has 3 > S_max"),
    ("ctc_loss", "blank inside a target", lambda: monge.ctc_loss(LP, np.array([[0, 1], [1, 2]]), [6, 6], [2, 2]), ValueError, "targets: the blank label"),
    ("ctc_loss", "label out of range", lambda: monge.ctc_loss(LP, np.array([[4, 1], [1, 2]]), [6, 6], [2, 2]), ValueError, "targets: labels must be in"),
    ("ctc_loss", "NaN log-probabilities", lambda: monge.ctc_loss(LP * np.nan, TG, [6, 6], [2, 2]), ValueError, "log_probs: contains NaN"),
    ("align", "empty padding mask", lambda: monge.align(X[None], Y[None], np.zeros((1, 5), bool)), ValueError, "mask_x: pair 0 has no valid entry"),
    ("align", "zero embedding (cosine)", lambda: monge.align(np.zeros((1, 2, 2)), Y[None]), ValueError, "X: vector 0 of pair 0 is zero"),
    ("barycenter", "negative histogram", lambda: monge.barycenter(-np.ones((2, 4)), y=Y, eps=0.1), ValueError, "B: histograms must be non-negative"),
    ("barycenter", "histograms on another support", lambda: monge.barycenter(np.ones((2, 3)), y=Y, eps=0.1), ValueError, "y: expected 3 points"),
    ("barycenter", "debiased on a non-square C", lambda: monge.barycenter(np.ones((2, 4)), C, eps=0.1, debiased=True), ValueError, "C: the debiased barycenter needs a square"),
    ("barycenter", "a batch with one weight row per problem of the wrong length", lambda: monge.barycenter(np.ones((3, 2, 4)), y=Y, eps=0.1, weights=np.ones((3, 3))), ValueError, "weights: expected shape (2,) or (3, 2)"),
    ("barycenter", "grad not a bool", lambda: monge.barycenter(np.ones((2, 4)), y=Y, eps=0.1, grad="yes"), TypeError, "grad: expected a bool"),
    ("barycenter", "an Anderson memory above 32", lambda: monge.barycenter(np.ones((2, 4)), y=Y, eps=0.1, anderson=64), ValueError, "anderson: at most 32"),
    ("free_support_barycenter", "grad not a bool", lambda: monge.free_support_barycenter([np.ones((3, 2))], grad="yes"), TypeError, "grad: expected a bool"),
    ("free_support_barycenter", "one array instead of a list of clouds", lambda: monge.free_support_barycenter(np.ones((3, 2))), TypeError, "Y: expected a sequence"),
    ("free_support_barycenter", "clouds of different dimensions", lambda: monge.free_support_barycenter([np.ones((3, 2)), np.ones((3, 3))]), ValueError, "Y[1]: dimension 3 differs"),
    ("gromov_wasserstein", "semi-relaxed with the entropic solver", lambda: monge.gromov_wasserstein(np.eye(3), np.eye(3), method="entropic", semirelaxed=True), ValueError, "semirelaxed: only with method='cg'"),
    ("gromov_wasserstein", "non-square C1", lambda: monge.gromov_wasserstein(np.ones((3, 4)), np.eye(3)), ValueError, "C1: expected a square matrix"),
    ("gromov_wasserstein", "weights of unequal mass", lambda: monge.gromov_wasserstein(np.eye(3), np.eye(3), p=np.ones(3)), ValueError, "p, q: masses differ"),
    ("gromov_wasserstein", "kl loss with a zero in C2", lambda: monge.gromov_wasserstein(np.eye(3), np.eye(3), loss="kl"), ValueError, "C2: the kl loss needs C2 > 0"),
    ("gromov_wasserstein", "start that is not a coupling", lambda: monge.gromov_wasserstein(np.eye(3), np.eye(3), init=np.ones((3, 3))), ValueError, "init: marginals differ"),
    ("fused_gromov_wasserstein", "alpha > 1", lambda: monge.fused_gromov_wasserstein(np.ones((3, 3)), np.eye(3), np.eye(3), alpha=2.0), ValueError, "alpha: must be in [0, 1]"),
    ("quadratic_ot", "unknown formulation", lambda: monge.quadratic_ot(A, B, C, 1.0, formulation="primal"), ValueError, "formulation: unknown value"),
    ("sparse_ot", "k < 1", lambda: monge.sparse_ot(A, B, C, 0, 1.0), ValueError, "k: must be >= 1"),
    ("sparse_ot", "non-integer k", lambda: monge.sparse_ot(A, B, C, 1.5, 1.0), TypeError, "k: expected a positive integer"),
    ("sparse_ot", "gamma <= 0", lambda: monge.sparse_ot(A, B, C, 2, -1.0), ValueError, "gamma: must be a positive number"),
    ("spectr.kseq_rho", "unnormalised distribution", lambda: monge.spectr.kseq_rho(2 * P3, Q3, 2), ValueError, "p: does not sum to 1"),
    ("spectr.kseq_rho", "negative probability", lambda: monge.spectr.kseq_rho(np.array([1.5, -0.5, 0.0]), Q3, 2), ValueError, "p: probabilities must be non-negative"),
    ("spectr.kseq_rho", "vocabulary sizes differ", lambda: monge.spectr.kseq_rho(P3[:2], Q3, 2), ValueError, "p, q: vocabulary sizes differ"),
    ("spectr.kseq_rho", "k < 1", lambda: monge.spectr.kseq_rho(P3, Q3, 0), ValueError, "k: must be >= 1"),
    ("spectr.kseq_select", "draft token out of range", lambda: monge.spectr.kseq_select(P3, Q3, np.array([5]), seed=0), ValueError, "drafts: token ids must be in"),
    ("maps.MongeGapMap.fit", "dimensions differ", lambda: monge.maps.MongeGapMap(n_iter=1, verbose=False).fit(X, X3), ValueError, "X, Y: dimensions differ"),
    ("maps.MongeGapMap", "unknown dtype", lambda: monge.maps.MongeGapMap(n_iter=1, verbose=False, dtype="float16").fit(X, Y), ValueError, "dtype: unknown value"),
    ("set_num_threads", "non-integer", lambda: monge.set_num_threads(1.5), TypeError, "n: expected an integer"),
    ("routing.capacity_from_factor", "no experts", lambda: _m("routing").capacity_from_factor(8, 0, 1.0), ValueError, "n_experts: must be >= 1"),
    ("pot.unif", "n < 1", lambda: _m("pot").unif(0), ValueError, "n: must be >= 1"),
    ("pot.sliced_wasserstein_distance", "n_projections < 1", lambda: _m("pot").sliced_wasserstein_distance(X, Y, n_projections=0), ValueError, "n_projections: must be >= 1"),
    ("pot.sinkhorn", "numItermax < 1", lambda: _m("pot").sinkhorn(A, B, C, 0.1, numItermax=0), ValueError, "numItermax: must be >= 1"),
    ("pot.smooth.smooth_ot_dual", "numItermax < 1", lambda: _m("pot").smooth.smooth_ot_dual(A, B, C, 0.1, numItermax=0), ValueError, "numItermax: must be >= 1"),
    # data loaders: the message starts with the file (and line, for text formats)
    ("experiments.orma.data.load_chebi20", "bytes that are not UTF-8", lambda: _m("experiments.orma.data").load_chebi20(_file("a.txt", CHEBI + b"1\tC\tm\xe9thane\n")), DataFormatError, "{path}:2: not UTF-8 text: byte 0xe9 at column 6"),
    ("experiments.orma.data.load_chebi20", "wrong number of fields", lambda: _m("experiments.orma.data").load_chebi20(_file("b.txt", CHEBI + b"1\tC\n")), DataFormatError, "{path}:2: expected 3 tab-separated fields"),
    ("experiments.orma.data.load_chebi20", "CID not ASCII digits", lambda: _m("experiments.orma.data").load_chebi20(_file("c.txt", CHEBI + "\u00b2\tC\tmethane\n".encode())), DataFormatError, "{path}:2: CID must be a positive integer, got '\u00b2'"),
    ("experiments.orma.data.load_chebi20", "SMILES over MAX_SMILES_LENGTH", lambda: _m("experiments.orma.data").load_chebi20(_file("d.txt", CHEBI + b"1\t" + b"C" * 6000 + b"\tlong\n")), DataFormatError, "{path}:2: SMILES of 6000 characters"),
    ("experiments.orma.chem.mol_graph", "SMILES over MAX_SMILES_LENGTH", lambda: _m("experiments.orma.chem").mol_graph("C" * 20000), ValueError, "mol: SMILES of 20000 characters"),
    ("experiments.speech_ctc_ot.data.load_manifest", "audio path leaving the root", lambda: _m("experiments.speech_ctc_ot.data").load_manifest(_manifest("../../etc/passwd")), DataFormatError, "{path}:2: audio path '../../etc/passwd' leaves"),
    ("experiments.speech_ctc_ot.data.load_manifest", "absolute audio path", lambda: _m("experiments.speech_ctc_ot.data").load_manifest(_manifest("/etc/passwd")), DataFormatError, "{path}:2: absolute audio path '/etc/passwd'"),
    ("experiments.speech_ctc_ot.data.load_manifest", "symlink leading out of the root", lambda: _m("experiments.speech_ctc_ot.data").load_manifest(_manifest("out.wav")), DataFormatError, "{path}:2: audio path 'out.wav' leaves"),
    ("experiments.speech_ctc_ot.data.load_manifest", "n_frames too large", lambda: _m("experiments.speech_ctc_ot.data").load_manifest(_manifest("u0.wav", "9" * 20)), DataFormatError, "{path}:2: n_frames '99999999999999999999' is too large"),
    ("experiments.speech_ctc_ot.data.read_wav", "sample rate 0", lambda: _m("experiments.speech_ctc_ot.data").read_wav(_file("r.wav", _wav(rate=0))), DataFormatError, "{path}: sample rate 0 Hz"),
    ("experiments.speech_ctc_ot.data.read_wav", "data chunk larger than the file", lambda: _m("experiments.speech_ctc_ot.data").read_wav(_file("d.wav", _wav(data=10**6))), DataFormatError, "{path}: the data chunk declares 1000000 bytes"),
    ("experiments.speech_ctc_ot.data.read_wav", "truncated header", lambda: _m("experiments.speech_ctc_ot.data").read_wav(_file("t.wav", _wav()[:30])), DataFormatError, "{path}: not a readable PCM wav file"),
    ("experiments.speech_ctc_ot.data.Corpus.load", "pickled object array", lambda: _m("experiments.speech_ctc_ot.data").Corpus.load(_npz("o.npz", src=np.array([None], dtype=object))), DataFormatError, "{path}: member 'src' holds Python objects"),
    ("maps.MongeGapMap.load", "not an npz archive", lambda: monge.maps.MongeGapMap.load(_file("n.npz", b"PK\x03\x04 truncated")), DataFormatError, "{path}: not a readable npz archive"),
    ("maps.MongeGapMap.load", "params not JSON", lambda: monge.maps.MongeGapMap.load(_npz("p.npz", params=np.array("{"))), DataFormatError, "{path}: 'params' is not valid JSON"),
]

CHEBI = b"CID\tSMILES\tdescription\n"
_TMP = []


def _m(name):
    return importlib.import_module(f"monge.{name}")


def _file(name, data):
    """data written to name in this process's temporary directory (made on first use)."""
    if not _TMP:
        _TMP.append(tempfile.mkdtemp(prefix="monge-catalogue-"))
        atexit.register(shutil.rmtree, _TMP[0], True)
    path = os.path.join(_TMP[0], name)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def _manifest(audio, n_frames="10"):
    """A one-row manifest next to u0.wav, with out.wav a symlink to a file outside its folder."""
    root = os.path.dirname(_file("outside.wav", _wav()))
    root = os.path.join(root, "corpus")
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "u0.wav"), "wb") as fh:
        fh.write(_wav())
    if not os.path.islink(os.path.join(root, "out.wav")):
        os.symlink(os.path.join(os.path.dirname(root), "outside.wav"), os.path.join(root, "out.wav"))
    path = os.path.join(root, "m.tsv")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"id\taudio\tn_frames\ttgt_text\tspeaker\nu1\t{audio}\t{n_frames}\tzwei\ts\n")
    return path


def _wav(rate=8000, data=None):
    """A 16-bit mono wav of 4 zero samples (rate and data-chunk size as given)."""
    n = 8 if data is None else data
    return (b"RIFF" + struct.pack("<I", 36 + 8) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
            + b"data" + struct.pack("<I", n) + b"\0" * 8)


def _npz(name, **override):
    """A saved Corpus / MongeGapMap-like npz with some entries replaced."""
    arrays = {"feats": np.zeros((1, 2), np.float32), "lengths": np.array([1]), "src": np.array(["a"]),
              "tgt": np.array(["b"]), "speakers": np.array(["s"]), "ids": np.array(["i"]),
              "info": np.array(json.dumps({})), **override}
    path = _file(name, b"")
    np.savez(path, **arrays)
    return path


def _tensor(v):
    import torch

    return torch.as_tensor(v)


def render():
    lines = ["# Bad input: what each public function says", "",
             "Generated from `tests/bad_input_catalogue.py` (`python tests/bad_input_catalogue.py > "
             "docs/errors.md`); `tests/test_bad_input.py` checks every row and that this file is "
             "up to date. Every message starts with the argument's name; a data loader's message "
             "starts with the file (`{path}`) and, for text formats, the 1-based line, and its "
             "error is `monge._io.DataFormatError`, a `ValueError`.", "",
             "| function | invalid input | error | message starts with |", "|---|---|---|---|"]
    for fn, cls, _, exc, pat in CATALOGUE:
        lines.append(f"| `{fn}` | {cls} | `{exc.__name__}` | `{pat}` |")
    lines += ["", "Non-convergence is not an error: results carry `converged=False` and a "
              "`monge.ConvergenceWarning` is raised (Sinkhorn, divergence, Monge gap, emd with "
              "`max_iter`, sparse/quadratic OT, align)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
