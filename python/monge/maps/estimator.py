"""Transport maps fitted with the Monge gap (Uscidda & Cuturi, ICML 2023), in NumPy.

A map T (an affine map started at the Bures map, plus an MLP) is fitted between samples of mu and
nu by minimising, over minibatches,

    L(T) = F(T) + lambda * M_c(T),

F the fitting loss (by default a least-squares fit to the barycentric projection of entropic plans
between source and target samples; or the Sinkhorn divergence S_eps(T#mu, nu)) and M_c the Monge
gap of T for the cost c, which pushes T towards being an optimal map for c.  Both gradients come from monge's C core with respect to the
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
from .baselines import MapEstimator, NotFittedError
from .._blas import blas_threads
from .._io import DataFormatError, read_npz
from .._validate import choice, float_array, float_dtype, integer, nonneg, positive
from ..geometry import COSTS
from ..losses import monge_gap, sinkhorn_divergence

__all__ = ["MongeGapMap", "fit_torch_map"]

_PARAMS = ("hidden", "activation", "init", "standardize", "cost", "p", "lam", "fitting_loss", "fitting_eps", "fitting_relative_eps",
           "plan_size", "plan_every", "label_noise",
           "reg", "gap_eps", "gap_relative_epsilon", "gap_debiased", "n_iter", "batch_size", "optimizer", "lr", "affine_lr",
           "schedule", "warmup", "weight_decay", "grad_clip", "average", "tol", "validation_fraction",
           "n_validation", "validate_every", "early_stopping", "patience", "seed", "verbose",
           "blas_threads", "dtype")


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
                self.bar = tqdm(total=total, desc=desc, leave=True)

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


def relative_fitting_eps(y, relative):
    """The fitting loss's default eps: `relative` x the mean squared distance between two
    independent target points, 2 tr Var(y)."""
    return relative * 2.0 * float(np.sum(np.var(y, axis=0)))


def _split_fit(tx, y, eps, tol):
    """The split estimator of the Sinkhorn divergence and its gradient wrt tx.

    With tx and y cut in halves (t1, t2), (y1, y2), independent samples of T#mu and nu:
        F = 1/2 [OT(t1, y1) + OT(t2, y2)] - 1/2 OT(t1, t2)   (- 1/2 OT(y1, y2), constant in T).
    Its expectation vanishes at T#mu = nu for any batch size (the self-terms are computed between
    independent halves), where the usual minibatch S_eps(T#mu_B, nu_B) is biased towards maps that
    contract T#mu.  The three solves run as one batch."""
    from ..sinkhorn import sinkhorn

    h = min(len(tx), len(y)) // 2
    t1, t2, y1, y2 = tx[:h], tx[h:2 * h], y[:h], y[h:2 * h]
    X, Y = np.stack([t1, t2, t1]), np.stack([y1, y2, t2])
    r = sinkhorn(X, Y, eps=eps, tol=tol)
    v = np.asarray(r.value, dtype=np.float64)
    value = 0.5 * (v[0] + v[1]) - 0.5 * v[2]
    ones = np.ones(h, dtype=tx.dtype)

    def grad(k, wrt):
        # d OT / d x_i = 2 sum_j P_ij (x_i - y_j) for |x - y|^2 (and symmetrically for y)
        if wrt == "x":
            return 2.0 * (r.apply(ones, index=k)[:, None] * X[k] - r.apply(Y[k], index=k))
        return 2.0 * (r.apply_transpose(ones, index=k)[:, None] * Y[k]
                      - r.apply_transpose(X[k], index=k))

    g = np.zeros_like(tx)
    g[:h] = 0.5 * (grad(0, "x") - grad(2, "x"))
    g[h:2 * h] = 0.5 * (grad(1, "x") - grad(2, "y"))
    return float(value), g


def _whole_sets(sx, sy, plan_size):
    """True when each plan would hold the whole of two fixed training sets (then one plan serves)."""
    return (sx.fn is None and sy.fn is None and len(sx.data) <= plan_size
            and len(sy.data) <= plan_size)


def _entropic_map(x, y, eps, tol, dtype="float64"):
    """The entropic map of the plan between x and y (its barycentric projection, extended off the
    samples by the c-transform): the labels of fitting_loss='barycentric'."""
    from .baselines import EntropicMap

    return EntropicMap(eps=eps, tol=tol, dtype=dtype).fit(x, y)


def _auto_or_integer(name, value, lo):
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{name}: expected 'auto' or an integer >= {lo}, got {value!r}")
        return
    integer(name, value, lo)


# with labels from many plans (samplers, or training sets larger than a plan): the plans' eps
# relative to the mean squared distance, and the averaged fraction of the iterates
# (docs/experiments/w2bench.md, "Averaging the plans")
_PLANS_RELATIVE_EPS = 0.0025
_PLANS_AVERAGE = 0.5
# one plan over fixed training sets: the value inside the flat region of the validation pairs
# at every d (docs/experiments/w2bench.md, "Every sample in the plan")
_ONE_PLAN_RELATIVE_EPS = 0.005


def auto_plan_every(plan_size):
    """Steps between plans: a plan costs ~plan_size^2, so this keeps the cost per step level."""
    return max(1, round(16 * (plan_size / 2048) ** 2))


def auto_reg(d):
    """reg='auto': lambda = min(3, d / 8, (d / 8)^2): d / 8 from d = 8, its square below, where
    the gap cost accuracy at 5,000 steps (docs/experiments/w2bench.md, "lambda by dimension")."""
    return min(3.0, d / 8.0, (d / 8.0) ** 2)


def _auto_hidden(d):
    """Default widths: two hidden layers of max(128, 4 d) units."""
    w = max(128, 4 * d)
    return (w, w)


class _Sampler:
    """Minibatches from a fixed array (without replacement) or from a callable sampler(n, rng)."""

    def __init__(self, name, data, dtype):
        self.name = name
        self.fn = data if callable(data) else None
        self.data = None if self.fn else data
        self.dtype = dtype

    def draw(self, n, rng):
        if self.fn is None:
            return self.data[rng.choice(len(self.data), size=min(n, len(self.data)), replace=False)]
        out = float_array(f"{self.name} (sampler output)", self.fn(n, rng), (2,), dtype=self.dtype)
        if out.shape[0] != n:
            raise ValueError(f"{self.name}: the sampler returned {out.shape[0]} rows, asked {n}")
        return out


class MongeGapMap(MapEstimator):
    """A transport map fitted with the Monge gap regulariser; scikit-learn conventions.

    The map is T(x) = A x + b + s_y * MLP((x - m_x) / s_x) (per-coordinate scalings fixed from
    the training samples), trained on minibatches to minimise

        F(T) + lambda * M_c(T),

    a fitting loss F plus the Monge gap of T for the cost c (which pushes T towards an optimal
    map for c).  By default F fits T(x_i) by least squares to the barycentric projection of an
    entropic plan between source and target samples (``fitting_loss='barycentric'``); the
    Sinkhorn divergence S_eps(T#mu, nu) of the Monge gap paper is ``'sinkhorn_divergence'``,
    which on minibatches favours maps that contract and fits 2-4 times worse on the W2
    benchmark's validation pairs.  With the
    defaults, A, b start at the Bures map (the optimal map between the samples' Gaussian
    approximations) and the MLP at ~0, and the parameters kept are those of the best held-out
    loss, the Bures map itself included: the fitted map is never judged worse than the linear
    baseline on held-out samples.  The defaults were chosen on the W2 benchmark's validation pairs
    and the known-map problems of monge.maps.datasets (docs/experiments/w2bench.md).

    Parameters
    ----------
    hidden : tuple of int or 'auto'
        Hidden layer sizes of the MLP; 'auto' (default): two layers of max(128, 4 d).
    activation : {'gelu', 'relu', 'leaky_relu', 'silu', 'tanh'}
    init : {'bures', 'identity', 'none'}
        Starting affine part: the Bures map of the samples (default), the identity (T = x +
        MLP, the residual map of the Monge gap paper), or none (a plain MLP, no affine part).
    standardize : bool
        True (default): the MLP sees (x - m_x) / s_x and its output is scaled by s_y (per
        coordinate, from the training samples), so that its initialisation and learning rate see
        unit-scale data.  False: the MLP sees x and adds its raw output (T = x + MLP(x) with
        init='identity', as OTT-JAX's residual maps).
    cost, p, lam : ground cost of the Monge gap ('sqeuclidean', 'elastic' 1/2|z|^2 + lam|z|_1,
        'pnorm', 'euclidean', 'cosine'); the map is pushed towards an optimal map for this cost.
    fitting_loss : {'sinkhorn_divergence', 'split', 'barycentric'}
        Estimator of the fitting loss on minibatches.  'sinkhorn_divergence': S_eps
        between the whole batches, whose expectation slightly favours maps that contract T#mu;
        'split': the batches are halved and the self-terms taken between independent halves, so
        the expected loss vanishes at T#mu = nu, at the price of noisier gradients (it was not
        better on the validation pairs, docs/experiments/w2bench.md).
        'barycentric' (default; 2-4 times lower L2-UVP than 'sinkhorn_divergence' on every
        validation pair of the W2 benchmark): a regression on pseudo-labels.  Every
        ``plan_every`` steps an entropic plan P is solved between ``plan_size`` source and
        ``plan_size`` target samples (the whole training sets when they are smaller), and T is
        fitted by least squares to P's entropic map (its barycentric projection
        (P y)_i / (P 1)_i, extended off the samples by the c-transform) at minibatch points
        drawn apart from the plan: fresh samples, or training points plus ``label_noise``.
        Its gradient is unbiased for the average minibatch entropic map, which approaches the
        optimal map as plan_size grows, where the divergences' minibatch estimates favour maps
        that contract.
    fitting_eps : float, optional
        eps of the fitting loss (sqeuclidean cost), absolute.  Default: ``fitting_relative_eps``
        x the mean squared distance between target points (divergences) or between the plan's
        source and target samples ('barycentric').
    fitting_relative_eps : float, optional
        Default 0.05 for the divergences; for 'barycentric', 0.005 when one plan serves the
        whole fit (half the entropic map's default: the network smooths the labels, so a
        smaller eps, less biased and noisier, pays), and 0.0025 when the labels come from many
        plans, whose average also has the variance of one plan's map removed
        (docs/experiments/w2bench.md).
    plan_size : int or 'auto'
        'barycentric' only: samples per side of each plan.  'auto' (default): the whole training
        sets when both hold at most 8192 samples (then one plan serves the whole fit), else
        plans of 8192 samples (always 8192 with samplers).
    plan_every : int or 'auto'
        'barycentric' only: steps between new plans.  'auto' (default): 16 x (plan_size /
        2048)^2, at least 1, so that solving plans costs about the same per step at any size
        (256 steps for plans of 8192).  Larger plans less often beat smaller plans more often
        on the validation pairs (docs/experiments/w2bench.md, "Plan size").
    label_noise : float
        'barycentric' with fixed training sets only: the minibatch points are training points
        plus Gaussian noise of this many standard deviations of the source (per coordinate), and
        their labels are the plan's entropic map there.  The network then learns that map on a
        smoothed empirical source rather than at the samples alone, which it otherwise overfits
        (about half the L2-UVP at d = 32 and 64 on the W2 benchmark's validation pairs).  0: the
        training points themselves.  Unused with samplers, which draw fresh points.
    reg : 'auto', float, callable or ('linear', start, end)
        lambda, the weight of the Monge gap (0: plain fitting); a callable gets the iteration.
        'auto' (default): min(3, d / 8, (d / 8)^2) (0.0625 at d = 2, 0.25 at d = 4, 1 at d = 8,
        3 from d = 24), chosen on the W2 benchmark's validation pairs, where the gap lowered the
        error by about 15 % at d = 32 and 64 with lambda = 3, and at d = 2 and 4 any lambda above
        these raised it (docs/experiments/w2bench.md).
    gap_eps, gap_relative_epsilon : eps of the Monge gap, as in :func:`monge.monge_gap`
        (default: 0.05 x std of the cost matrix, OTT-JAX's default).
    gap_debiased : bool
        True (default): the debiased Monge gap estimator (:func:`monge.monge_gap` with
        ``debiased=True``), which is ~0 for every optimal map; False: OTT-JAX's estimator, whose
        entropic term rewards maps that contract (docs/experiments/w2bench.md).  The debiased
        values are smaller, hence the larger default ``reg``.
    n_iter, batch_size : iterations and minibatch size.
    optimizer : {'adam', 'adamw', 'sgd'};  lr, schedule ('cosine' or 'constant'), warmup (steps),
        weight_decay, grad_clip (max gradient norm, None for none).
    average : float in [0, 1) or 'auto'
        The fitted parameters are the mean of the iterates of the last ``average`` x n_iter
        steps (tail averaging; 0: the last iterate).  The labels change with every plan and the
        network follows the latest ones; the mean of the iterates is closer to the average of
        the plans' maps.  'auto' (default): 0.5 when the labels come from many plans
        (barycentric fitting loss with samplers, or training sets larger than ``plan_size``),
        else 0 (one plan: nothing to average; no change on the validation pairs).  The
        early-stopping rule judges the mean.
    affine_lr : float or 'auto'
        Multiplier of lr for the affine part A, b (0 keeps the starting map's).  'auto'
        (default): 1/d.  Adam moves each of A's d^2 entries by about lr per step, a change of
        norm up to lr d, which at lr 1e-2 and d >= 32 undoes the Bures start within a few
        hundred noisy minibatch steps; 1/d keeps that change at about lr.
    tol : float
        Marginal tolerance of the inner Sinkhorn solves (minibatch gradients need no more).
    validation_fraction : float
        Part of the training samples held out for the validation loss (default 0.1; 0 turns
        validation off).  The minibatches never draw them, but the labelling plans of
        'barycentric' do: the labels' error at low d is set by the sample count.  For a
        validation set kept out of the labels too, pass ``X_val``, ``Y_val`` to fit.  With
        sampler inputs, ``n_validation`` fresh samples are drawn instead.
    n_validation : int
        Held-out samples drawn from sampler inputs (default 1024).
    validate_every : int
        Evaluate the held-out loss every so many iterations (and before the first).
    early_stopping : {'guard', 'best', False}
        What the held-out loss decides (needs validation data).  'guard' (default): keep the last
        iterate unless the starting map (the Bures map with init='bures') scores a lower held-out
        loss, then keep that — the fit never ends worse than its start.  'best': keep the
        iterate with the lowest held-out loss.  False: keep the last iterate.  On a few hundred
        held-out samples the loss is too noisy to rank nearby iterates, and 'best' lost to 'guard'
        on the validation pairs (docs/experiments/w2bench.md).
    patience : int or None
        With 'best': stop after so many validations without a better held-out loss (None: run
        n_iter).
    seed : int
        Seeds the initialisation and the minibatches.
    verbose : bool
        Progress bar (tqdm when installed).
    blas_threads : int or None
        Threads of NumPy's BLAS during fit (default 1: the network's matrix products are small,
        and a multi-threaded BLAS mostly spins; see docs/performance.md).  None leaves BLAS alone.
    dtype : 'float32' (default) or 'float64'
        Precision of the network and of the OT solves during fit; transform returns this dtype.

    ``fit(X, Y)`` takes arrays of samples (n, d), (m, d) or callables ``sampler(n, rng) ->
    (n, d)`` that draw fresh samples (an unlimited-sample regime, as in neural-OT benchmarks).

    Attributes
    ----------
    model_ : monge.maps.nn.AffineMLP
    history_ : dict of lists: 'step', 'loss', 'fit', 'gap', 'lambda', and 'val_step' with
        'val_loss', 'val_sinkhorn', 'val_monge_gap' (and 'val_l2_uvp' given a true map).
    best_step_ : the iteration whose parameters were kept (-1: the starting map).
    reg_ : the lambda used (``reg``, or its value for reg='auto').
    n_averaged_ : how many iterates the fitted parameters average (1: the last iterate).
    fitting_eps_, fit_time_ : the fitting loss's eps, seconds spent in fit.

    References
    ----------
    T. Uscidda and M. Cuturi, "The Monge gap: a regularizer to learn all transport maps",
    ICML 2023.

    Examples
    --------
    A Gaussian problem with a known optimal map, 200 steps (a real fit uses the default 2,000):

    >>> from monge.maps import MongeGapMap, datasets, metrics
    >>> P = datasets.gaussian_pair(2, seed=0)
    >>> X, Y = P.sample_source(1000, seed=0), P.sample_target(1000, seed=1)
    >>> T = MongeGapMap(n_iter=200, verbose=False).fit(X, Y)
    >>> x = P.sample_source(500, seed=2)
    >>> metrics.l2_uvp(T.transform(x), P.map(x)) < 5.0
    True
    """

    def __init__(self, hidden="auto", activation="gelu", init="bures", standardize=True, cost="sqeuclidean", p=2.0,
                 lam=1.0, fitting_loss="barycentric", fitting_eps=None, fitting_relative_eps=None,
                 plan_size="auto", plan_every="auto", label_noise=0.25, reg="auto", gap_eps=None,
                 gap_relative_epsilon=None, gap_debiased=True, n_iter=2000, batch_size=256, optimizer="adam", lr=1e-2,
                 affine_lr="auto", schedule="cosine", warmup=0, weight_decay=0.0, grad_clip=None, average="auto",
                 tol=1e-3,
                 validation_fraction=0.1, n_validation=1024, validate_every=100,
                 early_stopping="guard", patience=None, seed=0, verbose=True, blas_threads=1,
                 dtype="float32"):
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.standardize = standardize
        self.cost = cost
        self.p = p
        self.lam = lam
        self.fitting_loss = fitting_loss
        self.fitting_eps = fitting_eps
        self.fitting_relative_eps = fitting_relative_eps
        self.plan_size = plan_size
        self.plan_every = plan_every
        self.label_noise = label_noise
        self.reg = reg
        self.gap_eps = gap_eps
        self.gap_relative_epsilon = gap_relative_epsilon
        self.gap_debiased = gap_debiased
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.affine_lr = affine_lr
        self.schedule = schedule
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.average = average
        self.tol = tol
        self.validation_fraction = validation_fraction
        self.n_validation = n_validation
        self.validate_every = validate_every
        self.early_stopping = early_stopping
        self.patience = patience
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
        choice("init", self.init, ("bures", "identity", "none"))
        choice("fitting_loss", self.fitting_loss, ("split", "sinkhorn_divergence", "barycentric"))
        choice("optimizer", self.optimizer, ("adam", "adamw", "sgd"))
        choice("schedule", self.schedule, ("cosine", "constant"))
        if not (isinstance(self.hidden, str) and self.hidden == "auto"):
            if isinstance(self.hidden, str):
                raise ValueError(f"hidden: expected 'auto' or a tuple of int, got {self.hidden!r}")
        integer("n_iter", self.n_iter, 1)
        integer("batch_size", self.batch_size, 2)
        integer("warmup", self.warmup, 0)
        integer("validate_every", self.validate_every, 1)
        integer("n_validation", self.n_validation, 2)
        if self.patience is not None:
            integer("patience", self.patience, 1)
        positive("lr", self.lr)
        if not (isinstance(self.affine_lr, str) and self.affine_lr == "auto"):
            if isinstance(self.affine_lr, str):
                raise ValueError(f"affine_lr: expected 'auto' or a number >= 0, got {self.affine_lr!r}")
            nonneg("affine_lr", self.affine_lr)
        nonneg("weight_decay", self.weight_decay)
        positive("tol", self.tol)
        if self.fitting_relative_eps is not None:
            positive("fitting_relative_eps", self.fitting_relative_eps)
        _auto_or_integer("plan_size", self.plan_size, 2)
        _auto_or_integer("plan_every", self.plan_every, 1)
        nonneg("label_noise", self.label_noise)
        frac = nonneg("validation_fraction", self.validation_fraction)
        if frac >= 0.5:
            raise ValueError(f"validation_fraction: must be < 0.5, got {frac}")
        if self.grad_clip is not None:
            positive("grad_clip", self.grad_clip)
        if not (isinstance(self.average, str) and self.average == "auto"):
            if isinstance(self.average, str):
                raise ValueError(f"average: expected 'auto' or a number in [0, 1), got {self.average!r}")
            if nonneg("average", self.average) >= 1.0:
                raise ValueError(f"average: must be in [0, 1), got {self.average}")
        if self.fitting_eps is not None:
            positive("fitting_eps", self.fitting_eps)
        reg = self.reg
        if isinstance(reg, str):
            if reg != "auto":
                raise ValueError(f"reg: expected 'auto', a number, a callable or ('linear', start, end), got {reg!r}")
        elif isinstance(reg, tuple):
            if len(reg) != 3 or reg[0] != "linear":
                raise ValueError("reg: a schedule tuple is ('linear', start, end)")
            nonneg("reg start", reg[1])
            nonneg("reg end", reg[2])
        elif not callable(reg):
            nonneg("reg", reg)
        if self.early_stopping is not False:
            choice("early_stopping", self.early_stopping, ("guard", "best"))
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise TypeError(f"standardize: expected a bool, got {type(self.standardize).__name__}")
        if not isinstance(self.gap_debiased, (bool, np.bool_)):
            raise TypeError(f"gap_debiased: expected a bool, got {type(self.gap_debiased).__name__}")
        if not isinstance(self.verbose, (bool, np.bool_)):
            raise TypeError(f"verbose: expected a bool, got {type(self.verbose).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed: expected an integer, got {type(self.seed).__name__}")
        if self.blas_threads is not None:
            integer("blas_threads", self.blas_threads, 1)
        float_dtype("dtype", self.dtype)

    # -- training
    def _data(self, X, Y, rng, dt):
        """Training samplers, validation arrays, the moments' samples (float64) and the samplers
        of the labelling plans (the training samplers, or the whole arrays when validation was
        split off them)."""
        if Y is None:
            raise ValueError("Y: required; a map estimator requires y to be passed, but the target "
                             "y is None (y is the target samples, an (m, d) array or a sampler)")
        if callable(X) != callable(Y):
            raise TypeError("X, Y: pass two arrays or two samplers, not one of each")
        if callable(X):
            d = None
            n_init = 4096
            Xi = float_array("X (sampler output)", X(n_init, rng), (2,), dtype=np.float64)
            Yi = float_array("Y (sampler output)", Y(n_init, rng), (2,), dtype=np.float64)
            if Xi.shape[1] != Yi.shape[1]:
                raise ValueError(f"X, Y: dimensions differ ({Xi.shape[1]} vs {Yi.shape[1]})")
            d = Xi.shape[1]
            Xv = Yv = None
            if self.validation_fraction > 0:
                Xv = float_array("X", X(self.n_validation, rng), (2,), dtype=dt)
                Yv = float_array("Y", Y(self.n_validation, rng), (2,), dtype=dt)
            sx, sy = _Sampler("X", X, dt), _Sampler("Y", Y, dt)
            return sx, sy, Xv, Yv, Xi, Yi, (sx, sy)
        X = float_array("X", X, (2,), dtype=dt)
        Y = float_array("Y", Y, (2,), dtype=dt)
        if X.shape[1] != Y.shape[1]:
            raise ValueError(f"X, Y: dimensions differ ({X.shape[1]} vs {Y.shape[1]})")
        Xv = Yv = None
        # the plans see every sample: at low d the labels' error is set by the sample count
        # (docs/experiments/w2bench.md, "Every sample in the plan")
        plans = (_Sampler("X", X, dt), _Sampler("Y", Y, dt))
        if self.validation_fraction > 0:
            kx = int(round(self.validation_fraction * len(X)))
            ky = int(round(self.validation_fraction * len(Y)))
            if min(kx, ky) >= 2 and min(len(X) - kx, len(Y) - ky) >= 2:
                px, py = rng.permutation(len(X)), rng.permutation(len(Y))
                Xv, X = X[px[:kx]], X[px[kx:]]
                Yv, Y = Y[py[:ky]], Y[py[ky:]]
        return (_Sampler("X", X, dt), _Sampler("Y", Y, dt), Xv, Yv, X.astype(np.float64),
                Y.astype(np.float64), plans)

    def _init_model(self, d, Xi, Yi, dt):
        from .baselines import bures_map

        hidden = _auto_hidden(d) if isinstance(self.hidden, str) else tuple(self.hidden)
        model = nn.AffineMLP(d, hidden=hidden, activation=self.activation,
                             affine=self.init != "none", seed=self.seed, dtype=dt)
        sx = Xi.std(axis=0)
        sy = Yi.std(axis=0)
        sx = np.where(sx > 0, sx, 1.0)
        sy = np.where(sy > 0, sy, 1.0)
        m_in = Xi.mean(0)
        if not self.standardize:
            sx, sy, m_in = np.ones(d), np.ones(d), np.zeros(d)
        if self.init == "bures":
            A, b = bures_map(Xi.mean(0), np.cov(Xi.T).reshape(d, d), Yi.mean(0),
                             np.cov(Yi.T).reshape(d, d))
        else:
            A, b = np.eye(d), np.zeros(d)
        model.set_affine(A=A, b=b, m_in=m_in, s_in=1.0 / sx, s_out=sy)
        return model

    def fit(self, X, Y, X_val=None, Y_val=None, true_map=None):
        """Fit T so that T#mu ~ nu, with X ~ mu and Y ~ nu (arrays (n, d), (m, d), or samplers).

        X_val, Y_val: held-out samples for the held-out loss (every `validate_every` iterations);
        when given they replace the `validation_fraction` split.  true_map: the ground-truth map,
        for the 'val_l2_uvp' history (and the held-out target when Y_val is not given)."""
        self._check()
        dt = np.dtype(self.dtype)
        rng = np.random.default_rng(self.seed)
        if true_map is not None and not callable(true_map):
            raise TypeError("true_map: must be callable")
        if Y_val is not None and X_val is None:
            raise ValueError("Y_val: given without X_val")
        if X_val is not None:
            saved, self.validation_fraction = self.validation_fraction, 0.0
            try:
                sx, sy, _, _, Xi, Yi, plans = self._data(X, Y, rng, dt)
            finally:
                self.validation_fraction = saved
            d = Xi.shape[1]
            Xv = float_array("X_val", X_val, (2,), dtype=dt)
            if Xv.shape[1] != d:
                raise ValueError(f"X_val: dimension {Xv.shape[1]}, expected {d}")
            if Y_val is not None:
                Yv = float_array("Y_val", Y_val, (2,), dtype=dt)
                if Yv.shape[1] != d:
                    raise ValueError(f"Y_val: dimension {Yv.shape[1]}, expected {d}")
            elif true_map is not None:
                Yv = float_array("true_map(X_val)", true_map(Xv), (2,), dtype=dt)
            else:
                Yv = None
        else:
            sx, sy, Xv, Yv, Xi, Yi, plans = self._data(X, Y, rng, dt)
            d = Xi.shape[1]
        self.model_ = model = self._init_model(d, Xi, Yi, dt)
        reg = self.reg_ = auto_reg(d) if isinstance(self.reg, str) else self.reg
        self.n_features_in_ = d
        params = model.params
        k = 1.0 / d if self.affine_lr == "auto" else float(self.affine_lr)
        scale = [k, k] + [1.0] * (len(params) - 2) if model.affine else None
        opt = {"adam": nn.Adam(params, lr=self.lr, lr_scale=scale),
               "adamw": nn.AdamW(params, lr=self.lr, weight_decay=self.weight_decay,
                                 lr_scale=scale),
               "sgd": nn.SGD(params, lr=self.lr, momentum=0.9, weight_decay=self.weight_decay,
                             lr_scale=scale)}[self.optimizer]
        sched = nn.make_schedule(self.schedule, self.lr, self.n_iter, self.warmup)
        bary = self.fitting_loss == "barycentric"
        plan = None                             # the current plan's entropic map
        plan_size = self.plan_size
        px, py = plans
        if plan_size == "auto":
            small = px.fn is None and py.fn is None and max(len(px.data), len(py.data)) <= 8192
            plan_size = max(len(px.data), len(py.data)) if small else 8192
        plan_every = self.plan_every
        if plan_every == "auto":
            plan_every = auto_plan_every(plan_size)
        whole = _whole_sets(px, py, plan_size)      # then one plan serves the whole fit
        # labels from many plans: their average has the variance of one plan removed, so a
        # smaller eps (less bias) pays, and the mean of the iterates averages the plans
        many = bary and not whole
        if self.fitting_eps is not None:
            eps_fit = float(self.fitting_eps)
        elif bary:      # the entropic map's convention: x the mean |x - y|^2 over all pairs
            rel = self.fitting_relative_eps
            if rel is None:
                rel = _PLANS_RELATIVE_EPS if many else _ONE_PLAN_RELATIVE_EPS
            eps_fit = rel * float(np.sum((Xi.mean(0) - Yi.mean(0)) ** 2) + Xi.var(0).sum()
                                  + Yi.var(0).sum())
        else:
            rel = 0.05 if self.fitting_relative_eps is None else self.fitting_relative_eps
            eps_fit = relative_fitting_eps(Yi, rel)
        self.fitting_eps_ = eps_fit
        self._val_target = None
        average = self.average
        if average == "auto":
            average = _PLANS_AVERAGE if many else 0.0
        noise = None                            # per-coordinate std of the label points' jitter
        if bary and sx.fn is None and self.label_noise > 0:
            noise = (float(self.label_noise) * sx.data.std(axis=0)).astype(dt)
        gap_kw = dict(cost=self.cost, p=self.p, lam=self.lam, eps=self.gap_eps,
                      relative_epsilon=self.gap_relative_epsilon, debiased=bool(self.gap_debiased),
                      tol=self.tol)
        hist = {k: [] for k in ("step", "loss", "fit", "gap", "lambda", "val_step", "val_loss",
                                "val_sinkhorn", "val_monge_gap", "val_l2_uvp")}
        mode = self.early_stopping if Xv is not None else False
        best = [math.inf, -1, None]           # loss, step, parameters (of the start for 'guard')
        since_best = 0

        def validate(step):
            nonlocal since_best
            lam = _reg_value(reg, max(step, 0), self.n_iter)
            if Xv is not None:
                loss = self._validate(hist, step, Xv, Yv, true_map, eps_fit, gap_kw, lam)
                if (mode == "best" and loss < best[0]) or (mode == "guard" and step < 0):
                    best[:] = [loss, step, [q.copy() for q in params]]
                    since_best = 0
                else:
                    since_best += 1

        def minibatch(step):
            """The points of one step and their targets (labels, or target samples)."""
            nonlocal plan
            if not bary:
                return sx.draw(self.batch_size, rng), sy.draw(self.batch_size, rng)
            if plan is None or (step % plan_every == 0 and not whole):
                plan = _entropic_map(px.draw(plan_size, rng), py.draw(plan_size, rng),
                                     eps_fit, self.tol, dt)
            # points drawn apart from the plan's rows (fresh, or training points plus noise),
            # labelled by its entropic map
            xb = sx.draw(self.batch_size, rng)
            if noise is not None:
                xb = xb + noise * rng.standard_normal(xb.shape).astype(dt)
            return xb, plan.transform(xb).astype(dt, copy=False)

        # the last round(average * n_iter) iterates are averaged (at least the last one)
        avg_start = self.n_iter - max(1, round(float(average) * self.n_iter))
        avg_sum = [np.zeros(q.shape, np.float64) for q in params] if avg_start < self.n_iter - 1 \
            else None
        if avg_sum is None:
            avg_start = self.n_iter                 # nothing to average: the last iterate
        bar = _Progress(self.n_iter, bool(self.verbose), "MongeGapMap.fit")
        t0 = time.perf_counter()
        import warnings

        from concurrent.futures import ThreadPoolExecutor

        from .._policy import ConvergenceWarning

        pool = ThreadPoolExecutor(1)
        try:
            with warnings.catch_warnings(), blas_threads(self.blas_threads):
                # minibatch solves stop at self.tol or max_iter; an approximate gradient is fine
                warnings.simplefilter("ignore", ConvergenceWarning)
                validate(-1)
                batch = minibatch(0) if self.n_iter > 0 else None
                for step in range(self.n_iter):
                    xb, yb = batch
                    tx = model.forward(xb)
                    lam = _reg_value(reg, step, self.n_iter)
                    # the gap runs on a second thread (its C calls release the GIL) while this
                    # one draws and labels the next minibatch: same draws in the same order
                    pending = pool.submit(monge_gap, xb, tx, grad=("tx",), **gap_kw) \
                        if lam > 0 else None
                    if step + 1 < self.n_iter:
                        batch = minibatch(step + 1)
                    fit_v, g = self._fit_loss(tx, yb, eps_fit)
                    gap_v = 0.0
                    if pending is not None:
                        gap = pending.result()
                        g = g + lam * gap.grad_tx
                        gap_v = gap.value
                    if not np.isfinite(g).all():
                        raise FloatingPointError(
                            f"fit: non-finite gradient at iteration {step}; lower lr or use grad_clip")
                    grads, _ = model.backward(g)
                    if self.grad_clip is not None:
                        grads, _ = nn.clip_grad_norm(grads, self.grad_clip)
                    opt.lr = sched(step)
                    opt.step(grads)
                    if step >= avg_start:          # tail averaging, judged by the last validation
                        for acc, q in zip(avg_sum, params):
                            acc += q
                        if step + 1 == self.n_iter:
                            for acc, q in zip(avg_sum, params):
                                q[...] = acc / (self.n_iter - avg_start)

                    hist["step"].append(step)
                    hist["fit"].append(fit_v)
                    hist["gap"].append(gap_v)
                    hist["lambda"].append(lam)
                    hist["loss"].append(fit_v + lam * gap_v)
                    if (step + 1) % self.validate_every == 0 or step + 1 == self.n_iter:
                        validate(step)
                    bar.update({"loss": f"{hist['loss'][-1]:.3g}", "gap": f"{gap_v:.3g}"})
                    if mode == "best" and self.patience is not None and \
                            since_best >= self.patience:
                        break
        finally:
            pool.shutdown(wait=True)
            bar.close()
        last = len(hist["step"]) - 1
        self.best_step_ = last
        if mode == "guard" and hist["val_loss"][-1] > best[0]:
            last = -2                           # the start held out better: restore it
        if (mode == "best" and best[1] != last) or last == -2:
            for q, v in zip(params, best[2]):
                q[...] = v
            self.best_step_ = best[1]
        averaged = self.best_step_ == self.n_iter - 1 and avg_start < self.n_iter
        self.n_averaged_ = self.n_iter - avg_start if averaged else 1
        self.fit_time_ = time.perf_counter() - t0
        self.history_ = hist
        return self

    def _fit_loss(self, tx, y, eps, grad=True):
        if self.fitting_loss == "barycentric":          # y: the labels of the source rows
            diff = tx - y
            return float(np.mean(np.sum(diff * diff, axis=1))), (2.0 / len(tx)) * diff
        if self.fitting_loss == "split":
            return _split_fit(tx, y, eps, self.tol)  # (the gradient comes with the value)
        r = sinkhorn_divergence(tx, y, eps=eps, grad=("x",) if grad else False, static_b=True,
                                tol=self.tol)
        return r.value, r.grad_x

    def _validate(self, hist, step, X_val, Y_val, true_map, eps_fit, gap_kw, lam):
        """Held-out fitting loss (T#X_val vs Y_val) + lambda * M(T; X_val); records it, returns
        it (NaN without Y_val)."""
        tx = self.model_(X_val)
        target = Y_val
        if self.fitting_loss == "barycentric" and Y_val is not None:
            if self._val_target is None:     # labels of the held-out sources, from their own plan
                self._val_target = _entropic_map(X_val, Y_val, eps_fit, self.tol).transform(
                    X_val).astype(X_val.dtype, copy=False)
            target = self._val_target
        s = self._fit_loss(tx, target, eps_fit, grad=False)[0] if Y_val is not None else math.nan
        gap = monge_gap(X_val, tx, **gap_kw).value
        loss = s + lam * gap
        hist["val_step"].append(step)
        hist["val_loss"].append(loss)
        hist["val_sinkhorn"].append(s)
        hist["val_monge_gap"].append(gap)
        if true_map is not None:
            from .metrics import l2_uvp

            hist["val_l2_uvp"].append(l2_uvp(tx, true_map(X_val)))
        else:
            hist["val_l2_uvp"].append(math.nan)
        return loss

    def _fitted(self):
        if not hasattr(self, "model_"):
            raise NotFittedError("MongeGapMap: call fit before transform / save")

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
        if not isinstance(params["hidden"], str):
            params["hidden"] = list(params["hidden"])
        if callable(params["reg"]):
            params["reg"] = None  # a callable cannot be serialised: record that it was one
            params["reg_was_callable"] = True
        arrays = {f"model/{k}": v for k, v in self.model_.to_arrays().items()}
        arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64)
                       for k, v in self.history_.items()})
        arrays["params"] = np.array(json.dumps(params))
        arrays["fitting_eps"] = np.array(self.fitting_eps_)
        arrays["best_step"] = np.array(self.best_step_, dtype=np.int64)
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
        hidden = params.get("hidden", "auto")
        if isinstance(hidden, list):
            params["hidden"] = tuple(hidden)
        elif hidden != "auto":
            raise bad(f"'params' hidden must be 'auto' or a list, got {hidden!r}")
        est = cls(**params)
        try:
            est._check()
        except (TypeError, ValueError) as exc:
            raise bad(f"'params' {exc}") from None
        fe = z.get("fitting_eps")
        if fe is None or fe.shape != () or fe.dtype.kind != "f" or not np.isfinite(fe) or fe <= 0:
            raise bad("'fitting_eps' must be a positive finite scalar")
        bs = z.get("best_step")
        if bs is None or bs.shape != () or bs.dtype.kind != "i":
            raise bad("'best_step' must be an integer scalar")
        model = {k[len("model/"):]: v for k, v in z.items() if k.startswith("model/")}
        mlp = {k[len("mlp/"):]: v for k, v in model.items() if k.startswith("mlp/")}
        _check_model_size(path, mlp)
        try:
            est.model_ = nn.AffineMLP.from_arrays(model)
        except (TypeError, ValueError, KeyError) as exc:
            raise bad(f"model: {exc}") from None
        est.history_ = {}
        for k, v in z.items():
            if k.startswith("history/"):
                if v.ndim != 1 or v.dtype.kind != "f":
                    raise bad(f"{k!r} must be a 1-D float array, got {v.dtype} of shape {v.shape}")
                est.history_[k[len("history/"):]] = v.tolist()
        est.fitting_eps_ = float(fe)
        est.best_step_ = int(bs)
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
                  gap_eps=None, n_iter=2000, batch_size=256, lr=1e-3, seed=0, tol=1e-3, verbose=True):
    """Fit a Monge gap map with a PyTorch MLP and the monge.torch losses.

    The same kind of fit as :class:`MongeGapMap`, written with PyTorch to show the torch route:
    a residual map T(x) = x + MLP(x) (GELU activations, last layer scaled by 1e-3 so T starts
    near the identity) is trained on float64 tensors with Adam [1]_ and a cosine learning-rate
    schedule, minimising on each minibatch::

        S_eps(T(x), y) + reg * MongeGap_c(x, T(x)),

    the Sinkhorn divergence between the mapped source batch and a target batch plus the Monge
    gap [2]_ of T for the cost c.  Batches are drawn without replacement, independently for X
    and Y; convergence warnings of the inner solves are silenced.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Source samples.
    Y : array_like, shape (m, d)
        Target samples.
    hidden : sequence of int, default (64, 64)
        Widths of the hidden layers.
    reg : float, default 1.0
        Weight of the Monge gap; when it is not > 0 the gap is not computed (recorded as 0).
    cost : str, default 'sqeuclidean'
        Cost of the Monge gap (as in :func:`monge.monge_gap`).
    lam : float, default 1.0
        Weight of the L1 term of the 'elastic' cost.
    fitting_eps : float, optional
        eps of the Sinkhorn divergence, absolute.  Default: 0.1 x the total variance of (up
        to) 512 target samples, as MongeGapMap's default.
    gap_eps : float, optional
        eps of the Monge gap (default: :func:`monge.monge_gap`'s).
    n_iter : int, default 2000
        Number of Adam steps (and the period of the cosine schedule).
    batch_size : int, default 256
        Minibatch size (capped by the number of samples).
    lr : float, default 1e-3
        Initial learning rate.
    seed : int, default 0
        Seeds ``torch.manual_seed`` (initial weights) and the minibatch draws.
    tol : float, default 1e-3
        Marginal tolerance of the inner Sinkhorn solves.
    verbose : bool, default True
        Progress bar (tqdm when installed, else a line every 10% on stderr), as MongeGapMap.fit.

    Returns
    -------
    model : torch.nn.Module
        The fitted residual map, with float64 parameters: call it on a float64 tensor (n, d).
    history : dict
        'loss', 'fit' and 'gap': lists of n_iter floats, the loss, the Sinkhorn divergence and
        the Monge gap at each step.

    Raises
    ------
    ImportError
        If PyTorch is not installed.
    TypeError
        If `X` or `Y` is not a real numeric array (or is a torch tensor or a sparse matrix).
    ValueError
        If `X` or `Y` is not 2-D, is empty or holds NaN or infinity.  The losses raise
        ValueError or TypeError for a bad `cost` or eps (including a default `fitting_eps` of
        0, when the target samples are all equal); the other arguments are passed to PyTorch
        and NumPy unchecked.

    See Also
    --------
    MongeGapMap : The NumPy estimator, with validation, early stopping and a Bures start.
    monge.torch.monge_gap, monge.torch.sinkhorn_divergence : The differentiable losses used.

    References
    ----------
    .. [1] Diederik P. Kingma and Jimmy Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    .. [2] T. Uscidda and M. Cuturi, "The Monge Gap: A Regularizer to Learn All Transport
       Maps", ICML 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import fit_torch_map
    >>> X = np.random.default_rng(0).normal(size=(64, 2))
    >>> model, history = fit_torch_map(X, X + 1.0, hidden=(8,), n_iter=3, batch_size=32, verbose=False)
    >>> sorted(history), len(history["loss"])
    (['fit', 'gap', 'loss'], 3)
    """
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
        bar = _Progress(n_iter, bool(verbose), "fit_torch_map")
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
            bar.update({"loss": f"{hist['loss'][-1]:.3g}", "gap": f"{hist['gap'][-1]:.3g}"})
        bar.close()
    return model, hist
