"""The continuous Wasserstein-2 benchmark of Korotin et al. (NeurIPS 2021, "Do neural optimal
transport solvers work?"), high-dimensional pairs "Mix3toMix10", read from its published ICNN
checkpoints.

A pair in dimension d is built from the benchmark's facts:

- source P: a mixture of 3 Gaussians, x = std * M_k z + c_k with k uniform, z ~ N(0, I_d), std 0.4.
  The centres c_k put the values 0, 1, 2 (a random permutation per coordinate) around zero and the
  rows of each M_k are random unit vectors; both are then divided by
  sqrt((mean_k |c_k|^2 + d std^2) / d).  The benchmark draws them from NumPy's legacy global
  generator seeded with 0; :func:`gaussian_mixture_source` does the same draws in the same order, so
  the source is the benchmark's own.
- the optimal map T*(x) = (grad psi(x) - m) / s, psi = psi_1 + psi_2 the two dense ICNNs of the
  checkpoints ``Mix3toMix10_{d}_v1.pt`` and ``_v2.pt`` (the target Q = T*#P); m and s^2 standardise
  Q to mean 0 and average per-coordinate variance 1.  The benchmark estimates m and s from 2^14
  random samples; we estimate them from ``standardize_size`` seeded samples (default 2^16): a
  sampling difference of a fraction of a percent in the scale, not a different problem.

The ICNN (``DenseICNN``):  h_0 = q_0(x);  h_l = celu(h_{l-1} W_l^T + q_l(x)), l = 1..L-1;
psi(x) = h_{L-1} w^T + sc/2 |x|^2, with convex quadratic input layers
q(x)_k = sum_r (x . Q[:, r, k])^2 + (x A^T + a)_k and non-negative W_l, w.  Its gradient is computed
here by a hand-written backward pass in float64 (checked against finite differences in the
tests), so sampling Q and evaluating T* need NumPy only once the checkpoint is read; reading a
checkpoint needs PyTorch (``torch.load(weights_only=True)``, no code is unpickled).

Validation pairs: ``versions=('v1',)`` builds the pair from the first checkpoint alone (psi =
psi_1, standardised the same way).  Hyperparameters and defaults are chosen on those; the
benchmark's pairs (v1 + v2) are only reported.
"""
from __future__ import annotations

import os
import time

import numpy as np

from ..._io import DataFormatError
from .._results import commit_label, machine_info, mean_and_half_width, sha256, versions_info

DIMS = (2, 4, 8, 16, 32, 64)
_KEYS_PER_QUAD = ("quadratic_decomposed", "weight", "bias")


def gaussian_mixture_source(dim, num=3, dist=1.0, std=0.4, seed=0):
    """Centres (num, dim) and linear parts (num, dim, dim) of the benchmark's source mixture, drawn
    from ``np.random.RandomState(seed)`` in the order the benchmark draws them from NumPy's
    legacy global generator after ``np.random.seed(0)``."""
    rs = np.random.RandomState(seed)
    centers = np.zeros((num, dim), dtype=np.float32)
    for d in range(dim):
        idx = rs.choice(list(range(num)), num, replace=False)
        centers[:, d] += dist * idx
    centers -= dist * (num - 1) / 2
    maps = rs.normal(size=(num, dim, dim)).astype(np.float32)
    maps /= np.sqrt((maps ** 2).sum(axis=2, keepdims=True))
    mult = np.sqrt((centers ** 2).sum(axis=1).mean() + dim * std ** 2) / np.sqrt(dim)
    return (centers / mult).astype(np.float64), (maps / mult).astype(np.float64)


def _celu(a):
    neg = np.minimum(a, 0.0)
    e = np.exp(neg)
    return np.where(a > 0, a, e - 1.0), np.where(a > 0, 1.0, e)


class DenseICNN:
    """psi and grad psi of one benchmark ICNN, from a state dict of NumPy arrays (float64)."""

    def __init__(self, state, name="state"):
        n_quad = 0
        while f"quadratic_layers.{n_quad}.weight" in state:
            n_quad += 1
        if n_quad < 1:
            raise DataFormatError(name, None, "no 'quadratic_layers.0.weight' entry: not a "
                                              "dense ICNN state dict")
        expected = {f"quadratic_layers.{i}.{k}" for i in range(n_quad) for k in _KEYS_PER_QUAD}
        expected |= {f"convex_layers.{i}.weight" for i in range(n_quad - 1)}
        expected.add("final_layer.weight")
        missing = sorted(expected - set(state))
        extra = sorted(set(state) - expected)
        if missing or extra:
            raise DataFormatError(name, None, f"state dict keys: missing {missing}, unexpected "
                                              f"{extra}")
        arr = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        Q0 = arr["quadratic_layers.0.quadratic_decomposed"]
        if Q0.ndim != 3:
            raise DataFormatError(name, None, f"quadratic_decomposed: expected 3 axes, got "
                                              f"shape {Q0.shape}")
        self.dim, self.rank = Q0.shape[0], Q0.shape[1]
        self.quad = []
        sizes = []
        for i in range(n_quad):
            Q = arr[f"quadratic_layers.{i}.quadratic_decomposed"]
            A = arr[f"quadratic_layers.{i}.weight"]
            a = arr[f"quadratic_layers.{i}.bias"]
            out = A.shape[0] if A.ndim == 2 else -1
            if Q.shape != (self.dim, self.rank, out) or A.shape != (out, self.dim) or \
                    a.shape != (out,):
                raise DataFormatError(name, None, f"quadratic layer {i}: inconsistent shapes "
                                                  f"{Q.shape}, {A.shape}, {a.shape}")
            # Q flattened to (dim, rank*out): column r*out + k holds Q[:, r, k]
            self.quad.append((np.ascontiguousarray(Q.reshape(self.dim, self.rank * out)), A, a, out))
            sizes.append(out)
        self.convex = []
        for i in range(n_quad - 1):
            W = arr[f"convex_layers.{i}.weight"]
            if W.shape != (sizes[i + 1], sizes[i]):
                raise DataFormatError(name, None, f"convex layer {i}: shape {W.shape}, expected "
                                                  f"{(sizes[i + 1], sizes[i])}")
            self.convex.append(W)
        self.final = arr["final_layer.weight"]
        if self.final.shape != (1, sizes[-1]):
            raise DataFormatError(name, None, f"final layer: shape {self.final.shape}, expected "
                                              f"{(1, sizes[-1])}")
        for k, v in arr.items():
            if not np.isfinite(v).all():
                raise DataFormatError(name, None, f"{k}: non-finite weights")
        self.hidden = tuple(sizes)
        self.strong_convexity = None  # set by the loader (not stored in the state dict)

    def _quad(self, i, x):
        Qf, A, a, out = self.quad[i]
        P = x @ Qf                                    # (n, rank*out)
        val = (P.reshape(len(x), self.rank, out) ** 2).sum(axis=1) + x @ A.T + a
        return val, P

    def _quad_vjp(self, i, P, delta):
        Qf, A, _, out = self.quad[i]
        n = len(delta)
        scaled = 2.0 * P.reshape(n, self.rank, out) * delta[:, None, :]
        return scaled.reshape(n, self.rank * out) @ Qf.T + delta @ A

    def value_and_grad(self, x):
        """psi(x) (n,) and grad psi(x) (n, dim) for x of shape (n, dim)."""
        h, P0 = self._quad(0, x)
        Ps, pres = [P0], []
        for i, W in enumerate(self.convex, start=1):
            q, P = self._quad(i, x)
            a = h @ W.T + q
            h, _ = _celu(a)
            Ps.append(P)
            pres.append(a)
        value = h @ self.final[0] + 0.5 * self.strong_convexity * np.einsum("ij,ij->i", x, x)
        dh = np.broadcast_to(self.final, (len(x), self.final.shape[1]))
        grad = self.strong_convexity * x
        for i in range(len(self.convex), 0, -1):
            _, d = _celu(pres[i - 1])
            delta = dh * d
            grad = grad + self._quad_vjp(i, Ps[i], delta)
            dh = delta @ self.convex[i - 1]
        grad = grad + self._quad_vjp(0, Ps[0], dh)
        return value, grad


def read_checkpoint(path):
    """The state dict of a benchmark checkpoint as {name: float64 array}.  Needs PyTorch; the file
    is read with ``weights_only=True`` (tensors and containers only, nothing executed)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is in the test extra
        raise ImportError("reading the W2 benchmark's checkpoints needs PyTorch: "
                          "pip install 'monge[torch]'") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise DataFormatError(path, None, f"not a readable PyTorch state dict ({exc})") from None
    if not isinstance(state, dict) or not all(hasattr(v, "numpy") for v in state.values()):
        raise DataFormatError(path, None, "not a state dict of tensors")
    return {k: v.detach().cpu().double().numpy() for k, v in state.items()}


class W2Pair:
    """One benchmark pair (P, Q = T*#P) in dimension ``dim``.

    ``sample_source(n, rng)``, ``sample_target(n, rng)`` (unpaired: the target draws its own
    source points), ``map(x)`` = T*(x), ``target_var`` (trace of Cov Q, the L2-UVP denominator,
    estimated on ``standardize_size`` samples), ``l2_uvp(pred, x)``.
    """

    def __init__(self, dim, icnns, *, standardize_size=2 ** 16, seed=12345, sources=None):
        self.dim = dim
        self.icnns = list(icnns)
        self.centers, self.maps = gaussian_mixture_source(dim)
        self.std = 0.4
        self.sources = sources or {}
        self.shift = np.zeros(dim)
        self.scale = 1.0
        rng = np.random.default_rng(seed)
        y = self._raw_map(self.sample_source(standardize_size, rng))
        self.shift = y.mean(axis=0)
        self.scale = 1.0 / np.sqrt((y - self.shift).var(axis=0).mean())
        y = (y - self.shift) * self.scale
        self.target_var = float(y.var(axis=0).sum())
        self.target_mean = y.mean(axis=0)
        self.target_cov = np.cov(y.T)
        x = self.sample_source(standardize_size, rng)
        self.source_mean = x.mean(axis=0)
        self.source_cov = np.cov(x.T)

    def _raw_map(self, x):
        out = np.zeros_like(x)
        for net in self.icnns:
            for i in range(0, len(x), 4096):
                out[i:i + 4096] += net.value_and_grad(x[i:i + 4096])[1]
        return out

    def sample_source(self, n, rng):
        k = rng.integers(0, len(self.centers), size=n)
        z = rng.standard_normal((n, self.dim))
        return np.einsum("nij,nj->ni", self.maps[k], z) * self.std + self.centers[k]

    def map(self, x):
        x = np.asarray(x, dtype=np.float64)
        return (self._raw_map(x) - self.shift) * self.scale

    def sample_target(self, n, rng):
        return self.map(self.sample_source(n, rng))

    def l2_uvp(self, pred, x):
        """100 * mean |pred - T*(x)|^2 / Var(Q): the benchmark's forward L2-UVP."""
        pred = np.asarray(pred, dtype=np.float64)
        return float(100.0 * np.mean(np.sum((pred - self.map(x)) ** 2, axis=1)) / self.target_var)


def load_pair(data_dir, dim, versions=("v1", "v2"), **kwargs):
    """The Mix3toMix10 pair of dimension ``dim`` from the checkpoints in ``data_dir``
    (``Mix3toMix10_{dim}_{version}.pt``; the benchmark repository ships them as
    ``benchmarks/Mix3toMix10/{dim}_{version}.pt``, which is also accepted)."""
    if dim not in DIMS:
        raise ValueError(f"dim: expected one of {DIMS}, got {dim!r}")
    if not versions or any(v not in ("v1", "v2") for v in versions):
        raise ValueError(f"versions: expected a non-empty subset of ('v1', 'v2'), got {versions!r}")
    icnns, sources = [], {}
    for v in versions:
        path = os.path.join(data_dir, f"Mix3toMix10_{dim}_{v}.pt")
        if not os.path.exists(path):
            alt = os.path.join(data_dir, f"{dim}_{v}.pt")
            if not os.path.exists(alt):
                raise FileNotFoundError(f"data_dir: no {os.path.basename(path)} (or {dim}_{v}.pt) "
                                        f"in {data_dir}; the checkpoints come from the W2 "
                                        f"benchmark repository, see docs/experiments/maps.md")
            path = alt
        net = DenseICNN(read_checkpoint(path), name=path)
        if net.dim != dim:
            raise DataFormatError(path, None, f"ICNN of dimension {net.dim}, expected {dim}")
        net.strong_convexity = 1e-2  # the benchmark's constructor argument for these pairs
        icnns.append(net)
        sources[os.path.basename(path)] = sha256(path)
    return W2Pair(dim, icnns, sources=sources, **kwargs)


# ------------------------------------------------------------------------------ the benchmark run

# Korotin et al. (NeurIPS 2021), forward L2-UVP (%) on the Mix3toMix10 pairs, d = 2..64, as
# printed in the paper's high-dimensional table (also on the authors' poster in their repository):
# trained with 5,000-250,000 iterations of batch 1024, far beyond our equal-budget runs.
PUBLISHED = {
    "linear (L)": (14.1, 14.9, 27.3, 41.6, 55.3, 63.9),
    "W2GN (W2)": (0.1, 0.7, 2.6, 3.3, 6.0, 7.2),
    "ICNN min-max (MMv2)": (0.1, 0.68, 2.2, 3.1, 5.3, 10.1),
    "MM:R": (0.1, 0.3, 0.7, 1.9, 2.8, 4.5),
}
PUBLISHED_SOURCE = ("Korotin, Li, Genevay, Solomon, Filippov, Burnaev, 'Do neural optimal transport "
                    "solvers work? A continuous Wasserstein-2 benchmark', NeurIPS 2021 "
                    "(arXiv:2106.01954), table of L2-UVP on the high-dimensional pairs")
METHODS = ("linear", "entropic", "entropic_tuned", "mlp", "monge_gap", "w2gn", "mm", "supervised")
REGIMES = ("fixed", "fresh")

# 'entropic_tuned': the entropic map with its relative eps chosen per regime and d on the validation
# pairs, from this grid (tune_entropic_eps on results/w2bench-tuning-entropic-eps-2026-12-04.json;
# tests/test_w2bench.py checks that the table below is what that file gives)
ENTROPIC_EPS_GRID = (0.04, 0.02, 0.01, 0.005, 0.0025, 0.00125)
TUNED_ENTROPIC_EPS = {
    "fixed": {2: 0.01, 4: 0.005, 8: 0.01, 16: 0.01, 32: 0.01, 64: 0.005},
    "fresh": {2: 0.005, 4: 0.0025, 8: 0.01, 16: 0.005, 32: 0.005, 64: 0.005},
}


def _sampler(fn):
    return lambda n, rng: fn(n, rng)


def fit_supervised(pair, X, seed, *, n_iter, batch_size, mg_params=None):
    """The architecture's ceiling: MongeGapMap's network, start, optimiser, schedule and budget,
    fitted by least squares to the true map's outputs on the same source points (X, or fresh
    draws when X is None).  No user has T*(x); this tells how far an unpaired loss could go."""
    from ...maps import MongeGapMap, nn

    est = MongeGapMap(seed=seed, **(mg_params or {}))
    est._check()
    dt = np.dtype(est.dtype)
    rng = np.random.default_rng(seed)
    d = pair.dim
    Xi = X if X is not None else pair.sample_source(4096, rng)
    model = est._init_model(d, Xi, pair.map(Xi), dt)   # Bures start from the paired moments
    k = 1.0 / d if est.affine_lr == "auto" else float(est.affine_lr)
    opt = nn.Adam(model.params, lr=est.lr, lr_scale=[k, k] + [1.0] * (len(model.params) - 2))
    sched = nn.make_schedule(est.schedule, est.lr, n_iter, est.warmup)
    TX = pair.map(X).astype(dt) if X is not None else None
    Xd = X.astype(dt) if X is not None else None
    for step in range(n_iter):
        if X is not None:
            idx = rng.choice(len(X), size=min(batch_size, len(X)), replace=False)
            xb, yb = Xd[idx], TX[idx]
        else:
            xb = pair.sample_source(batch_size, rng)
            xb, yb = xb.astype(dt), pair.map(xb).astype(dt)
        tx = model.forward(xb)
        grads, _ = model.backward((2.0 / len(xb)) * (tx - yb))
        opt.lr = sched(step)
        opt.step(grads)
    return lambda x: model(np.asarray(x, dtype=dt))


def fit_method(pair, method, regime, seed, *, n=2048, n_iter=5000, batch_size=256,
               n_entropic_fresh=8192, threads=1, mg_params=None, entropic_eps=None):
    """Fits one method on one pair; returns (map callable, fit seconds, extras dict).

    regime 'fixed': n samples of each side drawn once (seeded), every method sees only those.
    regime 'fresh': the samplers themselves (neural methods draw new minibatches at every step;
    the linear map uses 2^16 samples, the entropic map ``n_entropic_fresh``).  mg_params: keyword
    overrides of MongeGapMap's defaults (for 'mlp' and 'monge_gap'), for tuning runs.
    entropic_eps: relative eps of 'entropic' (EntropicMap's default when None); 'entropic_tuned'
    takes it from TUNED_ENTROPIC_EPS."""
    from ...maps import EntropicMap, LinearMap, MongeGapMap

    rng = np.random.default_rng(seed)
    if regime == "fixed":
        X, Y = pair.sample_source(n, rng), pair.sample_target(n, rng)
        sx = sy = None
    else:
        X = Y = None
        sx, sy = _sampler(pair.sample_source), _sampler(pair.sample_target)
    extras = {}
    t0 = time.perf_counter()
    if method == "linear":
        if X is None:
            X, Y = pair.sample_source(2 ** 16, rng), pair.sample_target(2 ** 16, rng)
        est = LinearMap().fit(X, Y)
    elif method in ("entropic", "entropic_tuned"):
        if X is None:
            X = pair.sample_source(n_entropic_fresh, rng)
            Y = pair.sample_target(n_entropic_fresh, rng)
        rel = entropic_eps if method == "entropic" else tuned_entropic_eps(regime, pair.dim)
        est = (EntropicMap() if rel is None else EntropicMap(relative_eps=rel)).fit(X, Y)
        extras.update(relative_eps=est.relative_eps, eps=est.eps_,
                      sinkhorn_iter=int(est.result_.n_iter),
                      converged=bool(est.result_.converged))
    elif method in ("mlp", "monge_gap"):
        kw = dict(n_iter=n_iter, batch_size=batch_size, seed=seed, verbose=False, **(mg_params or {}))
        if method == "mlp":
            kw["reg"] = 0.0                     # the ablation; monge_gap keeps MongeGapMap's lambda
        est = MongeGapMap(**kw)
        est.fit(sx or X, sy or Y)
        extras.update(best_step=int(est.best_step_), steps=len(est.history_["step"]))
    elif method == "supervised":
        model = fit_supervised(pair, X, seed, n_iter=n_iter, batch_size=batch_size,
                               mg_params=mg_params)
        return model, time.perf_counter() - t0, extras
    elif method in ("w2gn", "mm"):
        from . import icnn

        fit = icnn.fit_w2gn if method == "w2gn" else icnn.fit_mm
        # equal budget in optimiser steps: an MM outer step is 1 + 15 network steps
        steps = n_iter if method == "w2gn" else max(1, n_iter // 16)
        extras.update(steps=steps)
        if X is not None:
            Xf, Yf = X.astype(np.float32), Y.astype(np.float32)

            def sx(k, r):
                return Xf[r.choice(len(Xf), size=min(k, len(Xf)), replace=False)]

            def sy(k, r):
                return Yf[r.choice(len(Yf), size=min(k, len(Yf)), replace=False)]
        else:
            fx, fy = sx, sy

            def sx(k, r):
                return fx(k, r).astype(np.float32)

            def sy(k, r):
                return fy(k, r).astype(np.float32)
        est = fit(sx, sy, pair.dim, n_iter=steps, batch_size=batch_size, seed=seed,
                  threads=threads)
    else:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    return est.transform, time.perf_counter() - t0, extras


def tuned_entropic_eps(regime, dim):
    """The relative eps of 'entropic_tuned' for a regime and dimension (TUNED_ENTROPIC_EPS)."""
    eps = TUNED_ENTROPIC_EPS.get(regime, {}).get(dim)
    if eps is None:
        raise ValueError(f"entropic_tuned: no eps tuned for regime {regime!r}, d = {dim} "
                         "(tuned: the benchmark's d = 2..64 in both regimes)")
    return eps


def tune_entropic_eps(path):
    """{regime: {d: relative eps}} minimising the mean L2-UVP over seeds among the 'entropic'
    rows of a tuning file (w2bench --validation --entropic-eps ...).  Ties go to the larger eps
    (cheaper, smoother); a cell where some fit did not converge is not eligible."""
    import json

    with open(path) as fh:
        return _choose_entropic_eps(json.load(fh)["rows"])


def _choose_entropic_eps(rows):
    cells: dict = {}
    for r in rows:
        if r["method"] == "entropic":
            cell = cells.setdefault((r["regime"], r["dim"]), {})
            cell.setdefault(r["relative_eps"], []).append(r)
    out: dict = {}
    for (regime, d), by_eps in sorted(cells.items()):
        ok = {e: float(np.mean([r["l2_uvp"] for r in rs])) for e, rs in by_eps.items()
              if all(r.get("converged", True) for r in rs)}
        if ok:
            out.setdefault(regime, {})[d] = min(ok, key=lambda e: (ok[e], -e))
    return out


def render_entropic_tuning(path):
    """Markdown: L2-UVP of the entropic map per relative eps (rows) and (regime, d) (columns) on
    the validation pairs, the chosen eps in bold; cells where a fit did not converge marked."""
    import json

    with open(path) as fh:
        res = json.load(fh)
    rows = [r for r in res["rows"] if r["method"] == "entropic"]
    chosen = _choose_entropic_eps(rows)
    cols = sorted({(r["regime"], r["dim"]) for r in rows},
                  key=lambda c: (REGIMES.index(c[0]), c[1]))
    out = ["L2-UVP % of the entropic map on the validation pairs, mean ± std over seeds; rows: "
           "ε / mean squared distance; **bold**: the lowest mean (the ε `entropic_tuned` uses); "
           "† some fit stopped at max_iter\n",
           "| relative ε | " + " | ".join(f"{reg}, d = {d}" for reg, d in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for e in sorted({r["relative_eps"] for r in rows}, reverse=True):
        cells = []
        for reg, d in cols:
            sel = [r for r in rows if (r["regime"], r["dim"], r["relative_eps"]) == (reg, d, e)]
            if not sel:
                cells.append("–")
                continue
            u = np.array([r["l2_uvp"] for r in sel])
            txt = f"{u.mean():.2f} ± {u.std(ddof=1) if len(u) > 1 else 0:.2f}"
            if chosen.get(reg, {}).get(d) == e:
                txt = f"**{txt}**"
            if not all(r.get("converged", True) for r in sel):
                txt += " †"
            cells.append(txt)
        out.append(f"| {e:g} | " + " | ".join(cells) + " |")
    out.append("")
    out.append(_source_line(path, res))
    return "\n".join(out) + "\n"


def evaluate(pair, transform, seed, n_test=4096):
    """Forward L2-UVP on n_test fresh source samples (the benchmark's 4096)."""
    x = pair.sample_source(n_test, np.random.default_rng(10_000 + seed))
    return pair.l2_uvp(np.asarray(transform(x), dtype=np.float64), x)


def _job(args):
    data, dim, versions, regime, method, seed, kw, std_size = args
    import os as _os

    _os.environ.setdefault("OMP_NUM_THREADS", str(kw.get("threads", 1)))
    tuning = kw.get("sinkhorn_tuning") or {}
    kw = {k: v for k, v in kw.items() if k != "sinkhorn_tuning"}
    from ... import _core
    saved = {name: _core.sinkhorn_tuning(name, float(v)) for name, v in tuning.items()}
    try:
        return _fit_and_evaluate(data, dim, versions, regime, method, seed, kw, std_size)
    finally:    # engine constants are process-wide: put them back (--jobs 1 runs here)
        for name, v in saved.items():
            _core.sinkhorn_tuning(name, v)


def _fit_and_evaluate(data, dim, versions, regime, method, seed, kw, std_size):
    import warnings

    threads = kw.get("threads", 1)
    from ... import set_num_threads
    from ..._blas import blas_threads
    from ..._policy import ConvergenceWarning

    set_num_threads(threads)
    pair = _pair_cached(data, dim, versions, std_size)
    # NumPy's BLAS at the fit's thread count: with its default (every core) in each of --jobs
    # processes, the samplers' small products oversubscribe the cores and spin
    with warnings.catch_warnings(), blas_threads(threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        transform, secs, extras = fit_method(pair, method, regime, seed, **kw)
        l2_uvp = evaluate(pair, transform, seed)
    return dict(dim=dim, regime=regime, method=method, seed=seed, fit_time=secs, l2_uvp=l2_uvp,
                **extras)


_PAIRS: dict = {}


def _pair_cached(data, dim, versions, standardize_size=2 ** 16):
    key = (data, dim, tuple(versions), standardize_size)
    if key not in _PAIRS:
        _PAIRS[key] = load_pair(data, dim, versions=tuple(versions),
                                standardize_size=standardize_size)
    return _PAIRS[key]


def table(rows, published=True):
    """Markdown: one table per regime, methods x dimensions, mean ± std of L2-UVP over seeds (and
    the median fit time), with Korotin et al.'s published values below."""
    out = []
    dims = sorted({r["dim"] for r in rows})
    for regime in REGIMES:
        rr = [r for r in rows if r["regime"] == regime]
        if not rr:
            continue
        out.append(f"**{regime} samples** — L2-UVP % (mean ± std over seeds; fit time, median s)\n")
        out.append("| method | " + " | ".join(f"d = {d}" for d in dims) + " |")
        out.append("|---|" + "---|" * len(dims))
        for m in METHODS:
            cells = []
            for d in dims:
                sel = [r for r in rr if r["method"] == m and r["dim"] == d]
                if not sel:
                    cells.append("–")
                    continue
                u = np.array([r["l2_uvp"] for r in sel])
                t = float(np.median([r["fit_time"] for r in sel]))
                cells.append(f"{u.mean():.2f} ± {u.std(ddof=1) if len(u) > 1 else 0:.2f} "
                             f"({t:.0f} s, {len(u)})")
            if any(c != "–" for c in cells):
                out.append(f"| {m} | " + " | ".join(cells) + " |")
        if published:
            for name, vals in PUBLISHED.items():
                cells = [f"{vals[DIMS.index(d)]:g}" if d in DIMS else "–" for d in dims]
                out.append(f"| published: {name} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _merged(paths):
    """Rows of several results files, a later file's rows replacing an earlier file's for each
    (regime, method, d) it holds; and, per file, (path, results, methods kept from it)."""
    import json

    merged, loaded = {}, []
    for path in paths:
        with open(path) as fh:
            res = json.load(fh)
        groups = {}
        for r in res["rows"]:
            groups.setdefault((r["regime"], r["method"], r["dim"]), []).append(r)
        merged.update(groups)
        loaded.append((path, res, groups))
    rows = [r for g in merged.values() for r in g]
    sources = [(path, res, sorted({key[1] for key, g in groups.items() if merged[key] is g},
                                  key=METHODS.index))
               for path, res, groups in loaded]
    return rows, sources


def _sources_lines(sources, always=False):
    """A source line per file; with several (or always=True), each names the methods taken."""
    if len(sources) == 1 and not always:
        return [_source_line(*sources[0][:2])]
    return [_source_line(path, res) + f" Methods shown from it: {', '.join(kept)}."
            for path, res, kept in sources if kept]     # a file wholly replaced is not a source


def render(paths, merge=False):
    """The tables of results files (one per regime), as docs/experiments/w2bench.md shows them.

    merge=True: one table of all files' rows, a later file's rows replacing an earlier file's for
    each (regime, method, d) it holds (a rerun of some methods after a change of their defaults),
    then one source line per file naming the methods taken from it."""
    import json

    if merge:
        rows, sources = _merged(paths)
        validation = any(res["meta"]["data"]["pairs"].startswith("validation")
                         for _, res, _ in sources)
        parts = [table(rows, published=not validation)]
        parts += [line + "\n" for line in _sources_lines(sources, always=True)]
        return "\n".join(parts).rstrip() + "\n"
    parts = []
    for path in paths:
        with open(path) as fh:
            res = json.load(fh)
        validation = res["meta"]["data"]["pairs"].startswith("validation")
        parts.append(table(res["rows"], published=not validation))
        parts.append(_source_line(path, res) + "\n")
    return "\n".join(parts).rstrip() + "\n"


def paired(rows, a, b):
    """{(regime, d): (mean, half-width, n)} of the per-seed differences L2-UVP(a) - L2-UVP(b),
    the seeds paired (a seed fixes the data of both in the fixed regime and their test points in
    both); half-width of the 95 % t-interval of the mean difference."""
    by = {}
    for r in rows:
        by.setdefault((r["regime"], r["dim"], r["seed"]), {})[r["method"]] = r["l2_uvp"]
    diffs = {}
    for (reg, d, _), m in by.items():
        if a in m and b in m:
            diffs.setdefault((reg, d), []).append(m[a] - m[b])
    return {key: mean_and_half_width(v) for key, v in diffs.items()}


def render_paired(paths, a="monge_gap",
                  against=("entropic", "entropic_tuned", "mlp", "w2gn", "mm")):
    """Markdown: for each method of ``against``, the paired difference a - it per (regime, d) with
    its 95 % interval, and the verdict (below / above / not separated).  paths: one results file,
    or several merged as :func:`render` merges them (e.g. a rerun of ``a`` beside the baselines'
    rows of the same seeds); baselines absent from every file are left out."""
    if isinstance(paths, str):
        paths = [paths]
    rows, sources = _merged(paths)
    methods = {r["method"] for r in rows}
    cols = sorted({(r["regime"], r["dim"]) for r in rows if r["method"] == a},
                  key=lambda c: (REGIMES.index(c[0]), c[1]))
    out = [f"L2-UVP of {a} minus that of each baseline, percentage points: mean over paired seeds "
           "± half-width of the 95 % t-interval; **below** / above: the interval excludes 0 "
           "(not separated otherwise)\n",
           "| against | " + " | ".join(f"{reg}, d = {d}" for reg, d in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for b in against:
        if b not in methods:
            continue
        pr = paired(rows, a, b)
        cells = []
        for c in cols:
            if c not in pr:
                cells.append("–")
                continue
            mean, half, n = pr[c]
            verdict = ("**below**" if mean + half < 0 else "above" if mean - half > 0 else
                       "not separated")
            cells.append(f"{mean:+.2f} ± {half:.2f} ({verdict})")
        out.append(f"| {b} | " + " | ".join(cells) + " |")
    out.append("")
    out += _sources_lines(sources)
    return "\n".join(out) + "\n"


def render_tuning_pair(base, variant):
    """Markdown: two runs of the same problems and seeds that differ only in --sinkhorn-tuning,
    per method, regime and d: the mean L2-UVP, the entropic map's Sinkhorn iterations (summed
    over seeds) and the fit time (summed), base -> variant; then the totals per method."""
    import json

    res = []
    for path in (base, variant):
        with open(path) as fh:
            res.append(json.load(fh))
    label = ["the defaults" if t is None else json.dumps(t)
             for t in (r["meta"]["settings"].get("sinkhorn_tuning") for r in res)]
    rows = [{(r["method"], r["regime"], r["dim"], r["seed"]): r for r in x["rows"]} for x in res]
    if set(rows[0]) != set(rows[1]):
        raise ValueError(f"{base}, {variant}: not the same problems and seeds")
    out = [f"{label[0]} → {label[1]}, the same problems and seeds:\n",
           "| method | regime | d | L2-UVP (%) | Sinkhorn iterations | fit time (s) |",
           "|---|---|---|---|---|---|"]
    groups = sorted({k[:3] for k in rows[0]},
                    key=lambda k: (k[0], REGIMES.index(k[1]), k[2]))
    tot = {}
    for g in groups:
        pair = [[x[k] for k in sorted(x) if k[:3] == g] for x in rows]
        uvp = [np.mean([r["l2_uvp"] for r in p]) for p in pair]
        secs = [sum(r["fit_time"] for r in p) for p in pair]
        its = [sum(r.get("sinkhorn_iter", 0) for r in p) for p in pair]
        t = tot.setdefault(g[0], [0.0, 0.0, 0, 0])
        t[0] += secs[0]
        t[1] += secs[1]
        t[2] += its[0]
        t[3] += its[1]
        it_cell = f"{its[0]} → {its[1]}" if its[0] or its[1] else "–"
        out.append(f"| {g[0]} | {g[1]} | {g[2]} | {uvp[0]:.3f} → {uvp[1]:.3f} | {it_cell} | "
                   f"{secs[0]:.1f} → {secs[1]:.1f} |")
    out.append("")
    for meth, (s0, s1, i0, i1) in tot.items():
        its = f"Sinkhorn iterations {i0} → {i1} (×{i1 / i0:.3f}), " if i0 else ""
        out.append(f"- {meth}: {its}fit time {s0:.1f} → {s1:.1f} s.")
    out.append("")
    out += [_source_line(p, r) + f" Command: `{r['meta']['command']}`."
            for p, r in zip((base, variant), res)]
    return "\n".join(out) + "\n"


def render_sample_size(paths, a="monge_gap", b="entropic"):
    """Markdown: one row per results file of the fixed regime at one d, labelled by its sample
    size n (``--n``): each method's L2-UVP (mean ± std over seeds) and the paired difference
    a - b with its 95 % t-interval; then a source line per file."""
    import json

    loaded = []
    for path in paths:
        with open(path) as fh:
            res = json.load(fh)
        loaded.append((res["meta"]["settings"]["n"], path, res))
    loaded.sort(key=lambda t: t[0])
    methods = sorted({r["method"] for _, _, res in loaded for r in res["rows"]}, key=METHODS.index)
    dims = sorted({r["dim"] for _, _, res in loaded for r in res["rows"]})
    out = [f"L2-UVP % with n fixed samples a side (d = {', '.join(map(str, dims))}), mean ± std "
           f"over seeds; last column: {a} minus {b}, mean over paired seeds ± half-width of the "
           "95 % t-interval\n",
           "| n | " + " | ".join(methods) + f" | {a} − {b} |",
           "|---|" + "---|" * (len(methods) + 1)]
    for n, _, res in loaded:
        cells = []
        for meth in methods:
            u = np.asarray([r["l2_uvp"] for r in res["rows"] if r["method"] == meth], float)
            cells.append(f"{u.mean():.2f} ± {u.std(ddof=1):.2f}" if len(u) > 1 else
                         f"{u.mean():.2f}" if len(u) else "–")
        pr = paired(res["rows"], a, b)
        if len(pr) == 1:
            mean, half, _ = next(iter(pr.values()))
            verdict = ("**below**" if mean + half < 0 else "above" if mean - half > 0 else
                       "not separated")
            cells.append(f"{mean:+.3f} ± {half:.3f} ({verdict})")
        else:
            cells.append("–")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out.append("")
    out += [_source_line(path, res) for _, path, res in loaded]
    return "\n".join(out) + "\n"


def render_ablation(paths):
    """One table for several results files (tuning runs that each change a setting): a row per
    (file, method), labelled by what the file changes against the defaults (MongeGapMap
    overrides, steps, batch size), a column per (regime, d); then a line per file naming the run."""
    import json

    rows, cols, notes = [], None, []
    for path in paths:
        with open(path) as fh:
            res = json.load(fh)
        st = res["meta"]["settings"]
        change = [f"{k} = {v}" for k, v in (st.get("mg_params") or {}).items()]
        if st["n_iter"] != 1000:
            change.append(f"{st['n_iter']} steps")
        if st["batch_size"] != 256:
            change.append(f"batch {st['batch_size']}")
        cells = {}
        for r in res["rows"]:
            cells.setdefault(r["method"], {}).setdefault((r["regime"], r["dim"]), []).append(
                r["l2_uvp"])
        have = {(r["regime"], r["dim"]) for r in res["rows"]}
        cols = have if cols is None else cols & have          # the cells every file has
        for meth in sorted(cells, key=METHODS.index):
            said = change
            if meth in ("mlp", "monge_gap") and res["meta"].get("label"):
                said = change + [res["meta"]["label"]]       # what the run changed in the code
            tuned = meth in ("mlp", "monge_gap") and said
            label = meth + (" (" + ", ".join(said) + ")" if tuned else
                            f" ({st['n_iter']} steps)" if meth in ("supervised", "w2gn") else "")
            rows.append((label, cells[meth]))
        m = res["meta"]
        notes.append(f"`{os.path.basename(path)}`: {m['date']}, commit {commit_label(m)}, "
                     f"load {m['machine']['load_average'][0]:.1f} → {m['load_average_after'][0]:.1f}, "
                     f"{st['seeds']} seeds, {m['data']['pairs']} pairs")
    cols = sorted(cols, key=lambda c: (REGIMES.index(c[0]), c[1]))
    out = ["L2-UVP % on the validation pairs, mean ± std over seeds\n",
           "| method | " + " | ".join(f"{reg}, d = {d}" for reg, d in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for label, cells in rows:
        txt = []
        for c in cols:
            u = np.asarray(cells.get(c, []), dtype=float)
            txt.append("–" if not len(u) else
                       f"{u.mean():.2f} ± {u.std(ddof=1) if len(u) > 1 else 0:.2f}")
        out.append(f"| {label} | " + " | ".join(txt) + " |")
    out.append("")
    out.append("Sources: " + "; ".join(notes) + ".")
    return "\n".join(out) + "\n"


def _source_line(path, res):
    m = res["meta"]
    over = m["settings"].get("mg_params")
    over = ("; MongeGapMap overrides " + ", ".join(f"{k} = {v}" for k, v in over.items())
            if over else "")
    return (f"Source: `{os.path.basename(path)}` — {m['date']}, commit "
            f"{commit_label(m)}, {m['machine']['cpu']} "
            f"({m['machine']['cores']} cores"
            + (f", {m['machine']['simd']}" if "simd" in m["machine"] else "")
            + f", load {m['machine']['load_average'][0]:.1f} "
            f"→ {m['load_average_after'][0]:.1f}); {m['data']['pairs']} pairs; "
            f"{m['settings']['n_iter']} steps of batch {m['settings']['batch_size']}, "
            f"{m['settings']['seeds']} seeds{over}.")


def main(argv=None):
    import argparse
    import datetime
    import json
    import shlex
    import sys

    ap = argparse.ArgumentParser(prog="python -m monge.experiments.maps.w2bench",
                                 description="Transport maps on the W2 benchmark (Mix3toMix10).")
    ap.add_argument("--data", help="folder with Mix3toMix10_{d}_v{1,2}.pt (required to run)")
    ap.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--n-iter", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--n", type=int, default=2048, help="samples per side, fixed regime")
    ap.add_argument("--n-entropic-fresh", type=int, default=8192,
                    help="samples per side of the entropic map, fresh regime")
    ap.add_argument("--validation", action="store_true",
                    help="the validation pairs (the v1 checkpoint alone), for tuning")
    ap.add_argument("--entropic-eps", type=float, nargs="+", metavar="E",
                    help="relative eps of the 'entropic' method (one run per value; default "
                         "EntropicMap's), for tuning on the validation pairs")
    ap.add_argument("--render-entropic-tuning", metavar="JSON",
                    help="print the eps table of a tuning file (--entropic-eps) and exit")
    ap.add_argument("--jobs", type=int, default=1, help="processes (fits run in parallel)")
    ap.add_argument("--threads", type=int, default=1,
                    help="OpenMP threads per fit (the plans' Sinkhorn solves, the ICNN solvers)")
    ap.add_argument("--standardize-size", type=int, default=2 ** 16,
                    help="samples that estimate the target's standardisation and variance")
    ap.add_argument("--mg-params", type=json.loads, default=None, metavar="JSON",
                    help='overrides of MongeGapMap defaults, e.g. \'{"lr": 0.003}\' (tuning runs)')
    ap.add_argument("--sinkhorn-tuning", type=json.loads, default=None, metavar="JSON",
                    help="engine constants for every solve, e.g. '{\"auto_anneal\": 0.003}' "
                         "(monge._core.sinkhorn_tuning names): re-judging one on these solves")
    ap.add_argument("--render-tuning-pair", nargs=2, metavar=("BASE", "VARIANT"),
                    help="print the per-problem comparison of two runs that differ only in "
                         "--sinkhorn-tuning and exit")
    ap.add_argument("--out", help="results JSON (rows are also printed as they finish)")
    ap.add_argument("--render", nargs="+", metavar="JSON",
                    help="print the tables of existing results files and exit")
    ap.add_argument("--merge", action="store_true",
                    help="with --render: one table, later files replacing earlier files' methods")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render, merge=args.merge))
        return 0
    if args.render_entropic_tuning:
        print(render_entropic_tuning(args.render_entropic_tuning))
        return 0
    if args.render_tuning_pair:
        print(render_tuning_pair(*args.render_tuning_pair))
        return 0
    if not args.data:
        ap.error("--data: required (the folder of the benchmark's checkpoints)")
    versions = ("v1",) if args.validation else ("v1", "v2")
    if args.threads < 1 or args.jobs < 1:
        ap.error("--threads, --jobs: expected integers >= 1")
    kw = dict(n=args.n, n_iter=args.n_iter, batch_size=args.batch_size,
              n_entropic_fresh=args.n_entropic_fresh)
    if args.threads != 1:
        kw["threads"] = args.threads
    if args.mg_params:
        if not isinstance(args.mg_params, dict):
            ap.error("--mg-params: expected a JSON object")
        if isinstance(args.mg_params.get("reg"), list):      # JSON has no tuples
            args.mg_params["reg"] = tuple(args.mg_params["reg"])
        kw["mg_params"] = args.mg_params
    if args.sinkhorn_tuning is not None:
        from ... import _core
        known = _core.sinkhorn_tuning()
        if not isinstance(args.sinkhorn_tuning, dict) or not args.sinkhorn_tuning:
            ap.error("--sinkhorn-tuning: expected a non-empty JSON object")
        for name, value in args.sinkhorn_tuning.items():
            if name not in known:
                ap.error(f"--sinkhorn-tuning: unknown constant {name!r} (known: "
                         f"{', '.join(sorted(known))})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                ap.error(f"--sinkhorn-tuning: {name} must be a positive number, got {value!r}")
        kw["sinkhorn_tuning"] = args.sinkhorn_tuning
    if args.entropic_eps:
        for e in args.entropic_eps:
            if not e > 0:
                ap.error(f"--entropic-eps: expected positive values, got {e}")
    eps_list = args.entropic_eps or [None]
    jobs = [(args.data, d, versions, regime, m, s,
             dict(kw, entropic_eps=e) if e is not None else kw, args.standardize_size)
            for regime in args.regimes
            for d in args.dims for s in range(args.seeds) for m in args.methods
            for e in (eps_list if m == "entropic" else [None])]
    start = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 command="python -m monge.experiments.maps.w2bench " + shlex.join(
                     argv if argv is not None else sys.argv[1:]),
                 machine=machine_info(), versions=versions_info())
    rows = []
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            for row in pool.imap_unordered(_job, jobs):
                rows.append(row)
                print(json.dumps(row), flush=True)
    else:
        for job in jobs:
            rows.append(_job(job))
            print(json.dumps(rows[-1]), flush=True)
    pairs = {d: _pair_cached(args.data, d, versions, args.standardize_size).sources
             for d in args.dims}
    meta = dict(start, load_average_after=list(os.getloadavg()),
                data=dict(path=os.path.abspath(args.data), pairs="validation (v1)" if
                          args.validation else "benchmark (v1 + v2)",
                          sha256={str(d): s for d, s in pairs.items()}),
                settings=dict(kw, seeds=args.seeds, **({"entropic_eps": args.entropic_eps}
                                                         if args.entropic_eps else {})),
                published_source=PUBLISHED_SOURCE)
    print(table([r for r in rows if len(eps_list) == 1 or r["method"] != "entropic"]))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(meta=meta, rows=rows), fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
