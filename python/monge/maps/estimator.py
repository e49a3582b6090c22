"""Transport maps fitted with the Monge gap (Uscidda & Cuturi, ICML 2023), in NumPy.

A map T (an MLP, optionally residual T(x) = x + MLP(x)) is fitted between samples of mu and nu by
minimising, over minibatches,

    L(T) = S_eps_fit(T#mu, nu) + lambda * M_c(T),

S the Sinkhorn divergence (the fitting loss) and M_c the Monge gap of T for the cost c, which pushes
T towards being an optimal map for c.  Both gradients come from monge's C core with respect to the
mapped points and are back-propagated through the MLP by hand (monge.maps.nn): no deep-learning
framework is needed.  The PyTorch route (:func:`fit_torch_map`) reaches the same result through
monge.torch.
"""
from __future__ import annotations

import json
import math
import numbers
import sys
import time

import numpy as np

from . import nn
from .._blas import blas_threads
from .._io import DataFormatError, read_npz
from .._validate import choice, float_array, integer, nonneg, positive
from ..geometry import COSTS
from ..losses import monge_gap, sinkhorn_divergence

__all__ = ["MongeGapMap", "fit_torch_map"]

_PARAMS = ("hidden", "activation", "residual", "cost", "p", "lam", "fitting_eps", "reg", "gap_eps",
           "gap_relative_epsilon", "n_iter", "batch_size", "optimizer", "lr", "schedule", "warmup",
           "weight_decay", "grad_clip", "tol", "validate_every", "seed", "verbose", "blas_threads",
           "dtype")


class _Progress:
    """tqdm when it is installed (the 'maps' extra), else a line every 10% on stderr."""

    def __init__(self, total, enabled, desc):
        self.bar = None
        self.total, self.enabled, self.desc, self.n = total, enabled, desc, 0
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, info):
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(info, refresh=False)
            self.bar.update(1)
        elif self.n % max(1, self.total // 10) == 0 or self.n == self.total:
            items = " ".join(f"{k}={v}" for k, v in info.items())
            print(f"{self.desc}: {self.n}/{self.total} {items}", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _reg_value(reg, step, total):
    """lambda at this step: a number, a callable step -> lambda, or ('linear', start, end)."""
    if callable(reg):
        return float(reg(step))
    if isinstance(reg, tuple):
        _, a, b = reg
        return a + (b - a) * step / max(1, total - 1)
    return float(reg)


class MongeGapMap:
    """A transport map fitted with the Monge gap regulariser; scikit-learn conventions.

    Parameters
    ----------
    hidden : tuple of int
        Hidden layer sizes of the MLP.
    activation : {'gelu', 'relu', 'leaky_relu', 'silu', 'tanh'}
    residual : bool
        T(x) = x + MLP(x), started near the identity (recommended: maps are often near it).
    cost, p, lam : ground cost of the Monge gap ('sqeuclidean', 'elastic' 1/2|z|^2 + lam|z|_1,
        'pnorm', 'euclidean', 'cosine'); the map is pushed towards an optimal map for this cost.
    fitting_eps : float, optional
        eps of the Sinkhorn divergence fitting loss (sqeuclidean cost), absolute.  Default: 5% of
        the mean squared distance between target points (scale-free).
    reg : float, callable or ('linear', start, end)
        lambda, the weight of the Monge gap (0: plain fitting, no regulariser); a callable gets the
        iteration and returns lambda.
    gap_eps, gap_relative_epsilon : eps of the Monge gap, as in :func:`monge.monge_gap`
        (default: 0.05 x std of the cost matrix, OTT-JAX's default).
    n_iter, batch_size : iterations and minibatch size.
    optimizer : {'adam', 'adamw', 'sgd'};  lr, schedule ('cosine' or 'constant'), warmup (steps),
        weight_decay, grad_clip (max gradient norm, None for none).
    tol : float
        Marginal tolerance of the inner Sinkhorn solves (minibatch gradients need no more).
    validate_every : int
        Evaluate on the validation data every so many iterations (when fit gets X_val).
    seed : int
        Seeds the initialisation and the minibatches.
    verbose : bool
        Progress bar (tqdm when installed).
    blas_threads : int or None
        Threads of NumPy's BLAS during fit (default 1).  The network's matrix products are small
        (batch x hidden); a multi-threaded BLAS spends more time waking its threads than
        multiplying, and on a busy machine its spinning threads also slow the OT kernels (measured:
        a 150-step fit took 23.4 s with OpenBLAS's default threads, 7.6 s with one, on a shared
        2-core machine).  None leaves BLAS alone.  Uses threadpoolctl (in the `maps` extra);
        without it the setting is ignored.
    dtype : 'float64' (default) or 'float32'
        Precision of the network and of the OT solves during fit (float32: the float32 Sinkhorn
        kernels, about twice as fast per pass; OTT-JAX trains in float32).  transform returns
        this dtype.

    Attributes after fit
    --------------------
    model_ : monge.maps.nn.MLP
    history_ : dict of lists: 'step', 'loss', 'fit', 'gap', 'lambda', and 'val_step' with the
        validation metrics 'val_sinkhorn', 'val_monge_gap' (and 'val_l2_uvp' given a true map).
    fit_time_ : seconds spent in fit.
    """

    def __init__(self, hidden=(64, 64), activation="gelu", residual=True, cost="sqeuclidean", p=2.0,
                 lam=1.0, fitting_eps=None, reg=1.0, gap_eps=None, gap_relative_epsilon=None,
                 n_iter=2000, batch_size=256, optimizer="adam", lr=1e-3, schedule="cosine",
                 warmup=0, weight_decay=0.0, grad_clip=None, tol=1e-3, validate_every=100, seed=0,
                 verbose=True, blas_threads=1, dtype="float64"):
        self.hidden = hidden
        self.activation = activation
        self.residual = residual
        self.cost = cost
        self.p = p
        self.lam = lam
        self.fitting_eps = fitting_eps
        self.reg = reg
        self.gap_eps = gap_eps
        self.gap_relative_epsilon = gap_relative_epsilon
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.schedule = schedule
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.tol = tol
        self.validate_every = validate_every
        self.seed = seed
        self.verbose = verbose
        self.blas_threads = blas_threads
        self.dtype = dtype

    # -- scikit-learn protocol
    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in _PARAMS}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in _PARAMS:
                raise ValueError(f"{k}: not a parameter of MongeGapMap (expected one of {', '.join(_PARAMS)})")
            setattr(self, k, v)
        return self

    def __repr__(self):
        changed = {k: v for k, v in self.get_params().items()
                   if v != MongeGapMap().get_params()[k] and not callable(v)}
        return "MongeGapMap(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def _check(self):
        choice("cost", self.cost, COSTS)
        choice("optimizer", self.optimizer, ("adam", "adamw", "sgd"))
        choice("schedule", self.schedule, ("cosine", "constant"))
        integer("n_iter", self.n_iter, 1)
        integer("batch_size", self.batch_size, 2)
        integer("warmup", self.warmup, 0)
        integer("validate_every", self.validate_every, 1)
        positive("lr", self.lr)
        nonneg("weight_decay", self.weight_decay)
        positive("tol", self.tol)
        if self.grad_clip is not None:
            positive("grad_clip", self.grad_clip)
        if self.fitting_eps is not None:
            positive("fitting_eps", self.fitting_eps)
        reg = self.reg
        if isinstance(reg, tuple):
            if len(reg) != 3 or reg[0] != "linear":
                raise ValueError("reg: a schedule tuple is ('linear', start, end)")
            nonneg("reg start", reg[1])
            nonneg("reg end", reg[2])
        elif not callable(reg):
            nonneg("reg", reg)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed: expected an integer, got {type(self.seed).__name__}")
        if self.blas_threads is not None:
            integer("blas_threads", self.blas_threads, 1)
        choice("dtype", str(np.dtype(self.dtype)) if not isinstance(self.dtype, str) else self.dtype,
               ("float32", "float64"))

    # -- training
    def fit(self, X, Y, X_val=None, Y_val=None, true_map=None):
        """Fit T so that T#mu ~ nu, with X ~ mu and Y ~ nu (arrays (n, d), (m, d)).

        X_val, Y_val: held-out samples for the validation metrics (every `validate_every`
        iterations); true_map: the ground-truth map, for the L2-UVP metric."""
        self._check()
        dt = np.dtype(self.dtype)
        X = float_array("X", X, (2,), dtype=dt)
        Y = float_array("Y", Y, (2,), dtype=dt)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"X, Y: dimensions differ ({X.shape[1]} vs {Y.shape[1]})")
        if X_val is not None:
            X_val = float_array("X_val", X_val, (2,), dtype=dt)
            if X_val.shape[1] != X.shape[1]:
                raise ValueError(f"X_val: dimension {X_val.shape[1]}, expected {X.shape[1]}")
        if Y_val is not None:
            Y_val = float_array("Y_val", Y_val, (2,), dtype=dt)
        if true_map is not None and not callable(true_map):
            raise TypeError("true_map: must be callable")
        d = X.shape[1]
        rng = np.random.default_rng(self.seed)
        self.model_ = nn.MLP(d, hidden=tuple(self.hidden), activation=self.activation,
                             residual=bool(self.residual), seed=self.seed, dtype=dt)
        params = self.model_.params
        opt = {"adam": nn.Adam(params, lr=self.lr),
               "adamw": nn.AdamW(params, lr=self.lr, weight_decay=self.weight_decay),
               "sgd": nn.SGD(params, lr=self.lr, momentum=0.9,
                             weight_decay=self.weight_decay)}[self.optimizer]
        sched = nn.make_schedule(self.schedule, self.lr, self.n_iter, self.warmup)
        if self.fitting_eps is None:
            sub = Y[rng.choice(len(Y), size=min(len(Y), 512), replace=False)]
            eps_fit = 0.05 * 2.0 * float(np.sum(np.var(sub, axis=0)))  # mean |y - y'|^2 = 2 tr Cov
        else:
            eps_fit = float(self.fitting_eps)
        self.fitting_eps_ = eps_fit
        bs_x, bs_y = min(self.batch_size, len(X)), min(self.batch_size, len(Y))
        gap_kw = dict(cost=self.cost, p=self.p, lam=self.lam, eps=self.gap_eps,
                      relative_epsilon=self.gap_relative_epsilon, tol=self.tol)
        hist = {k: [] for k in ("step", "loss", "fit", "gap", "lambda", "val_step", "val_sinkhorn",
                                "val_monge_gap", "val_l2_uvp")}
        bar = _Progress(self.n_iter, bool(self.verbose), "MongeGapMap.fit")
        t0 = time.perf_counter()
        import warnings

        from .._policy import ConvergenceWarning
        try:
            with warnings.catch_warnings(), blas_threads(self.blas_threads):
                # minibatch solves stop at self.tol or max_iter; an approximate gradient is fine
                warnings.simplefilter("ignore", ConvergenceWarning)
                for step in range(self.n_iter):
                    xb = X[rng.choice(len(X), size=bs_x, replace=False)]
                    yb = Y[rng.choice(len(Y), size=bs_y, replace=False)]
                    tx = self.model_.forward(xb)
                    fit = sinkhorn_divergence(tx, yb, eps=eps_fit, grad=("x",), static_b=True,
                                              tol=self.tol)
                    lam = _reg_value(self.reg, step, self.n_iter)
                    g = fit.grad_x
                    gap_v = 0.0
                    if lam > 0:
                        gap = monge_gap(xb, tx, grad=("tx",), **gap_kw)
                        g = g + lam * gap.grad_tx
                        gap_v = gap.value
                    if not np.isfinite(g).all():
                        raise FloatingPointError(
                            f"fit: non-finite gradient at iteration {step}; lower lr or use grad_clip")
                    grads, _ = self.model_.backward(g)
                    if self.grad_clip is not None:
                        grads, _ = nn.clip_grad_norm(grads, self.grad_clip)
                    opt.lr = sched(step)
                    opt.step(grads)
            
                    hist["step"].append(step)
                    hist["fit"].append(fit.value)
                    hist["gap"].append(gap_v)
                    hist["lambda"].append(lam)
                    hist["loss"].append(fit.value + lam * gap_v)
                    if X_val is not None and ((step + 1) % self.validate_every == 0
                                              or step + 1 == self.n_iter):
                        self._validate(hist, step, X_val, Y_val, true_map, eps_fit, gap_kw)
                    bar.update({"loss": f"{hist['loss'][-1]:.3g}", "gap": f"{gap_v:.3g}"})
        finally:
            bar.close()
        self.fit_time_ = time.perf_counter() - t0
        self.history_ = hist
        return self

    def _validate(self, hist, step, X_val, Y_val, true_map, eps_fit, gap_kw):
        tx = self.model_(X_val)
        hist["val_step"].append(step)
        target = Y_val if Y_val is not None else (true_map(X_val) if true_map is not None else None)
        hist["val_sinkhorn"].append(
            sinkhorn_divergence(tx, target, eps=eps_fit).value if target is not None else math.nan)
        hist["val_monge_gap"].append(monge_gap(X_val, tx, **gap_kw).value)
        if true_map is not None:
            from .metrics import l2_uvp

            hist["val_l2_uvp"].append(l2_uvp(tx, true_map(X_val)))
        else:
            hist["val_l2_uvp"].append(math.nan)

    def _fitted(self):
        if not hasattr(self, "model_"):
            raise RuntimeError("MongeGapMap: call fit before transform / save")

    def transform(self, X):
        """T(X) for X of shape (n, d)."""
        self._fitted()
        X = float_array("X", X, (2,), dtype=self.model_.dtype)
        if X.shape[1] != self.model_.in_dim:
            raise ValueError(f"X: dimension {X.shape[1]}, the map was fitted in {self.model_.in_dim}")
        return self.model_(X)

    def __call__(self, X):
        return self.transform(X)

    # -- persistence (npz + JSON, never pickles)
    def save(self, path):
        """Writes the fitted map to an .npz: weights, the estimator's parameters (JSON) and the
        training history.  Read back with MongeGapMap.load (allow_pickle=False)."""
        self._fitted()
        params = self.get_params()
        params["dtype"] = str(np.dtype(params["dtype"]))
        if callable(params["reg"]):
            params["reg"] = None  # a callable cannot be serialised: record that it was one
            params["reg_was_callable"] = True
        arrays = {f"model/{k}": v for k, v in self.model_.to_arrays().items()}
        arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64)
                       for k, v in self.history_.items()})
        arrays["params"] = np.array(json.dumps(params))
        arrays["fitting_eps"] = np.array(self.fitting_eps_)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path):
        """A map written by :meth:`save`.  Read with allow_pickle=False; a file that is not a
        well-formed saved map raises :class:`monge._io.DataFormatError` (a ValueError) naming it."""
        z = read_npz(path)

        def bad(what):
            return DataFormatError(path, None, what)

        if "params" not in z:
            raise bad("not a saved MongeGapMap (no 'params' entry)")
        raw = z["params"]
        if raw.ndim != 0 or raw.dtype.kind != "U":
            raise bad(f"'params' must be a JSON string, got {raw.dtype} of shape {raw.shape}")
        try:
            params = json.loads(str(raw))
        except ValueError as exc:
            raise bad(f"'params' is not valid JSON ({exc})") from None
        if not isinstance(params, dict):
            raise bad(f"'params' must be a JSON object, got {type(params).__name__}")
        params.pop("reg_was_callable", None)
        unknown = sorted(set(params) - set(_PARAMS))
        if unknown:
            raise bad(f"'params' has unknown entries {', '.join(map(repr, unknown))}")
        if params.get("reg") is None:
            params["reg"] = 0.0
        if isinstance(params.get("reg"), list):
            params["reg"] = tuple(params["reg"])
        if not isinstance(params.get("hidden", []), list):
            raise bad(f"'params' hidden must be a list, got {params['hidden']!r}")
        params["hidden"] = tuple(params.get("hidden", ()))
        est = cls(**params)
        try:
            est._check()
        except (TypeError, ValueError) as exc:
            raise bad(f"'params' {exc}") from None
        fe = z.get("fitting_eps")
        if fe is None or fe.shape != () or fe.dtype.kind != "f" or not np.isfinite(fe) or fe <= 0:
            raise bad("'fitting_eps' must be a positive finite scalar")
        model = {k[len("model/"):]: v for k, v in z.items() if k.startswith("model/")}
        _check_model_size(path, model)
        try:
            est.model_ = nn.MLP.from_arrays(model)
        except (TypeError, ValueError, KeyError) as exc:
            raise bad(f"model: {exc}") from None
        est.history_ = {}
        for k, v in z.items():
            if k.startswith("history/"):
                if v.ndim != 1 or v.dtype.kind != "f":
                    raise bad(f"{k!r} must be a 1-D float array, got {v.dtype} of shape {v.shape}")
                est.history_[k[len("history/"):]] = v.tolist()
        est.fitting_eps_ = float(fe)
        return est


def _check_model_size(path, model):
    """The MLP's '__config__' must not declare more parameters than the file's arrays hold (a
    doctored width would otherwise allocate the declared layers before their shapes are checked)."""
    try:
        cfg = json.loads(str(model["__config__"][()]))
        in_dim = cfg["in_dim"]
        sizes = [in_dim, *cfg.get("hidden", ()), cfg.get("out_dim") or in_dim]
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in sizes):
            return  # MLP.from_arrays reports the bad type
    except (KeyError, TypeError, ValueError, IndexError):
        return      # likewise: a missing or malformed config
    declared = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    held = sum(v.size for k, v in model.items() if k != "__config__")
    if declared > held:
        raise DataFormatError(path, None, f"model: '__config__' declares {declared} parameters, the "
                                          f"file holds {held}")


def fit_torch_map(X, Y, *, hidden=(64, 64), reg=1.0, cost="sqeuclidean", lam=1.0, fitting_eps=None,
                  gap_eps=None, n_iter=2000, batch_size=256, lr=1e-3, seed=0, tol=1e-3):
    """The same fit with a PyTorch MLP and monge.torch losses (shows the torch route).

    Returns (model, history): model is a torch.nn.Module with residual form x + MLP(x) and GELU
    activations, trained with Adam and a cosine schedule on float64 tensors."""
    import torch

    from .. import torch as mt

    X = float_array("X", X, (2,), dtype=np.float64)
    Y = float_array("Y", Y, (2,), dtype=np.float64)
    d = X.shape[1]
    torch.manual_seed(seed)
    layers, width = [], d
    for h in hidden:
        layers += [torch.nn.Linear(width, h, dtype=torch.float64), torch.nn.GELU()]
        width = h
    last = torch.nn.Linear(width, d, dtype=torch.float64)
    with torch.no_grad():
        last.weight.mul_(1e-3)
        last.bias.zero_()
    body = torch.nn.Sequential(*layers, last)

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = body

        def forward(self, x):
            return x + self.body(x)

    model = Residual()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_iter)
    rng = np.random.default_rng(seed)
    if fitting_eps is None:
        sub = Y[rng.choice(len(Y), size=min(len(Y), 512), replace=False)]
        fitting_eps = 0.1 * float(np.sum(np.var(sub, axis=0)))  # as MongeGapMap's default
    hist = {"loss": [], "fit": [], "gap": []}
    import warnings

    from .._policy import ConvergenceWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(n_iter):
            xb = torch.from_numpy(X[rng.choice(len(X), size=min(batch_size, len(X)), replace=False)])
            yb = torch.from_numpy(Y[rng.choice(len(Y), size=min(batch_size, len(Y)), replace=False)])
            tx = model(xb)
            fit = mt.sinkhorn_divergence(tx, yb, eps=fitting_eps, static_b=True, tol=tol)
            gap = mt.monge_gap(xb, tx, cost=cost, lam=lam, eps=gap_eps, tol=tol) if reg > 0 else \
                torch.zeros((), dtype=torch.float64)
            loss = fit + reg * gap
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            hist["loss"].append(loss.item())
            hist["fit"].append(fit.item())
            hist["gap"].append(gap.item())
    return model, hist
