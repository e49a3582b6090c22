"""ICNN baselines for the Wasserstein-2 benchmark: W2GN and the min-max ICNN dual (PyTorch, float32).

Both solvers fit a forward transport map T(x) = grad psi(x) from a source P to a target Q for the
cost 1/2 |x - y|^2, with psi a dense input-convex network (:class:`DenseICNN`) and a second network
psi_bar whose gradient approximates the inverse map (grad psi)^-1 = grad psi^*.  They start from the
semi-dual of quadratic OT (Brenier, Villani),

    1/2 W2^2(P, Q) = 1/2 E_P|x|^2 + 1/2 E_Q|y|^2 - min_{psi convex} [ E_P psi(x) + E_Q psi^*(y) ],

    psi^*(y) = max_x <x, y> - psi(x),  attained at x = grad psi_bar(y)  when grad psi_bar = (grad psi)^-1,

so that E_Q psi^*(y) is estimated by E_Q [ <grad psi_bar(y), y> - psi(grad psi_bar(y)) ].

* :func:`fit_w2gn` -- Korotin et al. (2019), "Wasserstein-2 Generative Networks" (arXiv 1909.13082),
  as run on the benchmark of Korotin et al. (NeurIPS 2021, "Do neural optimal transport solvers
  work?", method "W2"): no min-max; one joint Adam step on (psi, psi_bar) per iteration on

      L = E_x psi(x) - E_y psi(sg[grad psi_bar(y)])
          + cycle_weight * ( E_y |grad psi(grad psi_bar(y)) - y|^2 + E_x |grad psi_bar(grad psi(x)) - x|^2 )

  (sg = stop-gradient).  psi_bar learns only through the cycle terms, which pull grad psi_bar towards
  the inverse of grad psi, the maximiser in psi^*.
* :func:`fit_mm` -- the min-max dual of Makkuva et al. (ICML 2020, "Optimal transport mapping via
  input convex neural networks", arXiv 1908.10962), as run on the same benchmark (method "MM"):

      min_psi max_psi_bar  E_x psi(x) + E_y [ <grad psi_bar(y), y> - psi(grad psi_bar(y)) ],

  alternating ``inner_iter`` Adam steps on psi_bar (the max, each on a fresh y batch) with one Adam
  step on psi (the min).

Both return an :class:`ICNNMap`; ``transform(X)`` is grad psi.  The samplers are callables
``sample_x(n, rng) -> (n, dim) float32 array``; whether they draw fresh points from a distribution or
minibatches from a fixed array does not matter here.

Speed: on a shared 2-core machine pass ``threads=1``: with torch's default two intra-op threads
competing with other processes a step was 10x slower (measured at d = 16: 1-2 vs 12-32 steps/s).

This file needs only NumPy and PyTorch (no import from the rest of the package), so it can be loaded
on its own.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["DenseICNN", "ICNNMap", "fit_w2gn", "fit_mm", "default_hidden", "pretrain_identity"]


def default_hidden(dim):
    """Hidden sizes of the benchmark's DenseICNN: [max(2d, 64), max(2d, 64), max(d, 32)]."""
    return [max(2 * dim, 64), max(2 * dim, 64), max(dim, 32)]


def _celu_prime(u):
    # d/du celu(u) (alpha = 1) = 1 for u > 0, exp(u) for u <= 0; written as exp(min(u, 0)) so that
    # autograd differentiates it correctly (second derivative exp(u) on u < 0, 0 on u > 0).  Below
    # u = -30 (exp < 1e-13) it is set to 0: exp of very negative u gives float32 denormals, which
    # made whole training steps 4x slower on x86 CPUs.
    e = torch.exp(torch.clamp(u, min=-30.0, max=0.0))
    return torch.where(u > -30.0, e, torch.zeros((), dtype=u.dtype))


class DenseICNN(nn.Module):
    r"""Dense input-convex network with quadratic input layers (the benchmark's architecture).

    .. math::

        q_k(x) &= \textstyle\sum_{r=1}^{R} (A_{k,r}^\top x)^2 + B_k^\top x + b_k
                 \quad\text{(per unit: a rank-R convex quadratic plus an affine term)} \\
        z_1 &= q_1(x), \qquad z_k = \mathrm{celu}(W_k z_{k-1} + q_k(x)),\ k = 2..L \\
        \psi(x) &= w^\top z_L + \tfrac12\,\mathrm{sc}\,|x|^2

    with :math:`W_k \ge 0`, :math:`w \ge 0` elementwise (so psi is convex: a non-negative combination
    of convex functions passed through the convex non-decreasing CELU; the first layer carries no
    activation, as in the benchmark's network).  Non-negativity is enforced by **clamping after each
    optimiser step** (:meth:`convexify`; the fitters call it), not by a reparametrisation.

    The quadratic and affine parts of all layers share one (dim, (R+1)·H) matrix, H = sum(hidden),
    so the input path is a single matrix product.  :meth:`push` computes grad psi in closed form with
    torch operations (one extra product with the transposed matrix); it is differentiable by autograd
    with respect to the parameters and the input, so training through ``push`` (cycle terms, the
    conjugate loss) needs no double backward pass.  :meth:`push_autograd` is the autograd reference.

    Parameters
    ----------
    dim : int
        Input dimension d.
    hidden : list of int, optional
        Hidden sizes; default ``default_hidden(dim)`` = [max(2d, 64), max(2d, 64), max(d, 32)].
    rank : int
        Rank R of each unit's quadratic form (benchmark: 1).
    strong_convexity : float
        sc >= 0 in the term 1/2 sc |x|^2 (the fitters use the benchmark's 1e-4).
    init_std : float
        Parameters are drawn N(0, init_std^2) (benchmark: 0.1), non-negative ones then clamped.
    generator : torch.Generator, optional
        Source of the initial parameters (for seeded fits).
    """

    def __init__(self, dim, hidden=None, rank=1, strong_convexity=1e-2, init_std=0.1, generator=None):
        super().__init__()
        dim = _check_int(dim, "dim", 1)
        rank = _check_int(rank, "rank", 1)
        hidden = default_hidden(dim) if hidden is None else list(hidden)
        if not hidden or any(not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1
                             for h in hidden):
            raise ValueError(f"hidden must be a non-empty list of positive ints, got {hidden!r}")
        strong_convexity = float(strong_convexity)
        if not (strong_convexity >= 0.0 and math.isfinite(strong_convexity)):
            raise ValueError(f"strong_convexity must be finite and >= 0, got {strong_convexity}")
        self.dim, self.rank, self.hidden = dim, rank, [int(h) for h in hidden]
        self.strong_convexity = strong_convexity
        H = sum(self.hidden)

        def randn(*shape):
            return torch.randn(*shape, generator=generator, dtype=torch.float32) * init_std

        # input path: columns [0, R*H) hold A (laid out as (R, H)), columns [R*H, (R+1)*H) hold B
        self.input_weight = nn.Parameter(randn(dim, (rank + 1) * H))
        self.input_bias = nn.Parameter(randn(H))
        # hidden-to-hidden (non-negative) and final (non-negative) weights
        self.hidden_weights = nn.ParameterList(
            [nn.Parameter(randn(h_out, h_in)) for h_in, h_out in zip(self.hidden[:-1], self.hidden[1:])])
        self.final_weight = nn.Parameter(randn(self.hidden[-1]))
        self.convexify()

    @classmethod
    def from_benchmark_state_dict(cls, state_dict, strong_convexity=1e-2):
        """Build a DenseICNN equal to a benchmark checkpoint (a state dict of Korotin et al.'s layout).

        Keys ``quadratic_layers.k.{quadratic_decomposed (d, R, h_k), weight (h_k, d), bias (h_k)}``,
        ``convex_layers.k.weight (h_{k+2}, h_{k+1})`` and ``final_layer.weight (1, h_L)``; the sizes
        are read from the shapes.  The benchmark's potentials use strong_convexity 1e-2 (its
        Mix3ToMix10Benchmark).  Load the file with ``torch.load(path, weights_only=True)``.  The
        weights are copied as they are (not clamped), so the value and gradient are the checkpoint's.
        """
        sd = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in state_dict.items()}
        n_layers = 0
        while f"quadratic_layers.{n_layers}.quadratic_decomposed" in sd:
            n_layers += 1
        if n_layers == 0 or "final_layer.weight" not in sd:
            raise ValueError("state_dict is not a benchmark DenseICNN (no quadratic_layers / final_layer)")
        quads = [sd[f"quadratic_layers.{k}.quadratic_decomposed"] for k in range(n_layers)]
        dim, rank = quads[0].shape[0], quads[0].shape[1]
        hidden = [q.shape[2] for q in quads]
        net = cls(dim, hidden, rank, strong_convexity)
        H, offs = sum(hidden), np.cumsum([0] + hidden)
        with torch.no_grad():
            for k in range(n_layers):
                cols = slice(int(offs[k]), int(offs[k + 1]))
                for r in range(rank):
                    net.input_weight[:, r * H:(r + 1) * H][:, cols] = quads[k][:, r, :]
                net.input_weight[:, rank * H:][:, cols] = sd[f"quadratic_layers.{k}.weight"].t()
                net.input_bias[cols] = sd[f"quadratic_layers.{k}.bias"]
            for k in range(n_layers - 1):
                net.hidden_weights[k].copy_(sd[f"convex_layers.{k}.weight"])
            net.final_weight.copy_(sd["final_layer.weight"].reshape(-1))
        return net.eval()

    @torch.no_grad()
    def convexify(self):
        """Clamp the hidden-to-hidden and final weights to >= 0 (call after every optimiser step)."""
        for W in self.hidden_weights:
            W.clamp_(min=0.0)
        self.final_weight.clamp_(min=0.0)

    def _input_path(self, x):
        H, R = sum(self.hidden), self.rank
        P = x @ self.input_weight                                   # (n, (R+1) H)
        Pq = P[:, :R * H].reshape(-1, R, H)
        q = (Pq * Pq).sum(1) + P[:, R * H:] + self.input_bias       # (n, H)
        return Pq, torch.split(q, self.hidden, dim=1)

    def _hidden_path(self, qs):
        us = [qs[0]]
        z = qs[0]
        for W, qk in zip(self.hidden_weights, qs[1:]):
            u = z @ W.t() + qk
            us.append(u)
            z = torch.nn.functional.celu(u)
        return us, z

    def forward(self, x):
        """psi(x), shape (n,)."""
        _, qs = self._input_path(x)
        _, z = self._hidden_path(qs)
        return z @ self.final_weight + 0.5 * self.strong_convexity * (x * x).sum(1)

    def value_and_push(self, x):
        """(psi(x), grad psi(x)) in closed form, shapes (n,) and (n, dim)."""
        Pq, qs = self._input_path(x)
        us, z = self._hidden_path(qs)
        value = z @ self.final_weight + 0.5 * self.strong_convexity * (x * x).sum(1)
        L = len(self.hidden)
        g = self.final_weight * (_celu_prime(us[-1]) if L > 1 else 1.0)   # d psi / d u_L
        gs = [g]
        for k in range(L - 1, 0, -1):                                     # layers L..2 -> L-1..1
            g = g @ self.hidden_weights[k - 1]
            if k - 1 > 0:                                                 # layer 1 has no activation
                g = g * _celu_prime(us[k - 1])
            gs.append(g)
        G = torch.cat(gs[::-1], dim=1)                                    # d psi / d q, (n, H)
        back = torch.cat([(2.0 * Pq * G.unsqueeze(1)).flatten(1), G], dim=1)
        grad = back @ self.input_weight.t() + self.strong_convexity * x
        return value, grad

    def push(self, x):
        """grad psi(x), shape (n, dim).  Differentiable (autograd graph kept) unless under no_grad."""
        return self.value_and_push(x)[1]

    def push_autograd(self, x, create_graph=False):
        """grad psi(x) by autograd on :meth:`forward` (reference for :meth:`push`)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self.forward(x).sum(), x, create_graph=create_graph)
        return g

    @torch.no_grad()
    def push_numpy(self, X, batch=8192):
        """grad psi on a NumPy array, in batches, no graph kept; returns float32 (n, dim)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        out = np.empty_like(X)
        for i in range(0, len(X), batch):
            out[i:i + batch] = self.push(torch.from_numpy(X[i:i + batch])).numpy()
        return out


@dataclass
class ICNNMap:
    """A fitted ICNN transport map.

    Attributes
    ----------
    psi, psi_conj : DenseICNN
        The potential (forward map grad psi: source -> target) and the conjugate network
        (grad psi_conj approximates the inverse map target -> source).
    method : str
        "w2gn" or "mm".
    fit_time_ : float
        Wall-clock seconds of the whole fit, pre-training included.
    pretrain_time_ : float
        Seconds of the identity pre-training alone (0 if none).
    history_ : ndarray
        The minimised loss at every step of psi (W2GN: L above; MM: the outer loss).
    w2_history_ : ndarray
        The minibatch dual estimate of 1/2 W2^2 at every step of psi (noisy; for monitoring).
    n_iter_ : int
        Optimiser steps taken on psi (fewer than asked if ``time_limit`` ran out).
    n_conj_steps_ : int
        Optimiser steps taken on psi_conj (W2GN: = n_iter_; MM: inner_iter * n_iter_).
    n_pretrain_steps_ : int
        Steps of the identity pre-training (on psi; psi_conj starts as a copy).
    n_push_ : int
        Batched evaluations of a network gradient (grad psi or grad psi_conj on one batch)
        during training, pre-training excluded: W2GN 4 per step, MM 1 + inner_iter per outer step.
    """

    psi: DenseICNN
    psi_conj: DenseICNN
    method: str
    fit_time_: float = 0.0
    pretrain_time_: float = 0.0
    history_: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    w2_history_: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    n_iter_: int = 0
    n_conj_steps_: int = 0
    n_pretrain_steps_: int = 0
    n_push_: int = 0

    def transform(self, X):
        """The fitted forward map x -> grad psi(x) on an (n, dim) array; float32, no graph kept."""
        return self.psi.push_numpy(_check_points(X, "X", self.psi.dim))

    def inverse_transform(self, Y):
        """The fitted inverse map y -> grad psi_conj(y) on an (n, dim) array; float32."""
        return self.psi_conj.push_numpy(_check_points(Y, "Y", self.psi.dim))


# --------------------------------------------------------------------------------------------------
# validation helpers


def _check_int(v, name, lo):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _check_pos(v, name, allow_zero=False, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>= 0' if allow_zero else '> 0'}, got {v}")
    return v


def _check_points(X, name, dim, n=None):
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(X).__name__}")
    if X.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[1] != dim or (n is not None and X.shape[0] != n):
        want = f"({n if n is not None else 'n'}, {dim})"
        raise ValueError(f"{name} must have shape {want}, got {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def _make_draw(sampler, name, dim, rng):
    if not callable(sampler):
        raise TypeError(f"{name} must be a callable sample(n, rng) -> (n, dim) array, "
                        f"got {type(sampler).__name__}")

    def draw(n):
        return torch.from_numpy(_check_points(sampler(n, rng), f"{name}(n, rng)", dim, n))
    return draw


# --------------------------------------------------------------------------------------------------
# pre-training and fitting


def pretrain_identity(psi, rng, *, scale=3.0, batch_size=1024, lr=1e-3, tol=1e-3, max_iter=5000,
                      convex=True):
    """Fit psi so that grad psi(x) ~= x (the benchmark's start; its ``train_identity_map``).

    Adam (lr 1e-3) on mean_{i,j} (grad psi(x_i) - x_i)_j^2 with x ~ N(0, scale^2 I) (benchmark: scale
    3, batch 1024, stop below tol 1e-3 or after 5000 steps), clamping after each step if ``convex``.
    Returns the number of steps.  Needs only the dimension: done once per fit, before any data is drawn.
    """
    opt = torch.optim.Adam(psi.parameters(), lr=lr)
    for it in range(1, max_iter + 1):
        x = torch.from_numpy((scale * rng.standard_normal((batch_size, psi.dim))).astype(np.float32))
        loss = ((psi.push(x) - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if convex:
            psi.convexify()
        if loss.item() < tol:
            break
    return it


class _Threads:
    def __init__(self, threads):
        self.threads = None if threads is None else _check_int(threads, "threads", 1)

    def __enter__(self):
        if self.threads is not None:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        if self.threads is not None:
            torch.set_num_threads(self.saved)


def _setup(sample_x, sample_y, dim, n_iter, batch_size, lr, seed, time_limit, hidden, rank,
           strong_convexity, pretrain):
    dim = _check_int(dim, "dim", 1)
    draw_x_fn = sample_x
    draw_y_fn = sample_y
    n_iter = _check_int(n_iter, "n_iter", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    lr = _check_pos(lr, "lr")
    seed = _check_int(seed, "seed", 0)
    time_limit = _check_pos(time_limit, "time_limit", allow_none=True)
    if pretrain not in (True, False, "identity", None):
        raise ValueError(f"pretrain must be 'identity' or None, got {pretrain!r}")
    ss = np.random.SeedSequence(seed)
    s_init, s_pre, s_data = ss.spawn(3)
    rng = np.random.default_rng(s_data)          # the one Generator handed to both samplers
    draw_x = _make_draw(draw_x_fn, "sample_x", dim, rng)
    draw_y = _make_draw(draw_y_fn, "sample_y", dim, rng)
    gen = torch.Generator().manual_seed(int(s_init.generate_state(1)[0]))
    psi = DenseICNN(dim, hidden, rank, strong_convexity, generator=gen)
    psi_conj = DenseICNN(dim, hidden, rank, strong_convexity, generator=gen)
    return dim, n_iter, batch_size, lr, time_limit, rng, draw_x, draw_y, psi, psi_conj, s_pre


def _pretrain(psi, psi_conj, pretrain, s_pre, result, convex=True):
    if pretrain in (True, "identity"):
        t = time.perf_counter()
        result.n_pretrain_steps_ = pretrain_identity(psi, np.random.default_rng(s_pre), convex=convex)
        psi_conj.load_state_dict(psi.state_dict())      # benchmark: both start from the same potential
        result.pretrain_time_ = time.perf_counter() - t


def _progress(n_iter, verbose, desc):
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:     # tqdm is in the maps/test extras; without it, no bar
        return None
    return tqdm(total=n_iter, desc=desc)


def fit_w2gn(sample_x, sample_y, dim, *, n_iter=5000, batch_size=256, lr=1e-3, cycle_weight=1.0,
             seed=0, verbose=False, time_limit=None, threads=None, hidden=None, rank=1,
             strong_convexity=1e-4, pretrain="identity"):
    r"""Fit grad psi with W2GN (Korotin et al. 2019), as run on the W2 benchmark (method "W2").

    Each step draws x ~ sample_x(batch_size, rng), y ~ sample_y(batch_size, rng) and takes one Adam
    step on both networks on

    .. math::

        L = \overline{\psi(x)} - \overline{\psi(\mathrm{sg}[\nabla\bar\psi(y)])}
            + \lambda\,\big(\overline{|\nabla\psi(\nabla\bar\psi(y)) - y|^2}
                            + \overline{|\nabla\bar\psi(\nabla\psi(x)) - x|^2}\big)

    (bars: batch means; |.|^2 summed over coordinates; sg: stop-gradient), then clamps both
    networks' non-negative weights.

    Budget: ``n_iter`` = optimiser steps, each one step on psi and one on psi_bar, with 4 batched
    network-gradient evaluations (grad psi_bar(y), grad psi(.) of it, grad psi(x), grad psi_bar(.) of
    it) and their backward pass.  The identity pre-training (``pretrain='identity'``) comes on top
    (``n_pretrain_steps_``: 74-80 steps at batch 1024 for d = 2, 8, 16, 0.5-3.5 s on a loaded
    2-core machine) and is included in ``fit_time_``.

    Defaults and sources (Korotin et al. 2021, notebooks/W2_test_hd_benchmark.ipynb):
    lr 1e-3, Adam default betas; cycle_weight 1.0 = their LAMBDA = DIM on a mean over batch *and*
    coordinates; strong_convexity 1e-4, rank 1, hidden [max(2d,64), max(2d,64), max(d,32)]; identity
    pre-training on N(0, 9 I).  They used batch 1024 and 250,000 steps; our defaults are batch 256 and
    5,000 steps (the budget of the Monge-gap map in issue 22).

    Parameters
    ----------
    sample_x, sample_y : callable
        ``sample(n, rng)`` -> (n, dim) float array (cast to float32); rng is a numpy Generator made
        from ``seed`` and shared by both samplers.
    dim : int
    n_iter, batch_size : int
    lr : float
        Adam learning rate for both networks.
    cycle_weight : float
        lambda >= 0 above.
    seed : int
        Seeds the initial weights, the pre-training draws and the samplers' Generator.
    verbose : bool
        tqdm progress bar.
    time_limit : float, optional
        Stop after this many seconds of training (pre-training counted); ``n_iter_`` says how far.
    threads : int, optional
        ``torch.set_num_threads`` for the fit (restored afterwards); left alone by default.
    hidden, rank, strong_convexity : network shape (see :class:`DenseICNN`).
    pretrain : 'identity' or None

    Returns
    -------
    ICNNMap
    """
    cycle_weight = _check_pos(cycle_weight, "cycle_weight", allow_zero=True)
    (dim, n_iter, batch_size, lr, time_limit, rng, draw_x, draw_y, psi, psi_conj, s_pre) = _setup(
        sample_x, sample_y, dim, n_iter, batch_size, lr, seed, time_limit, hidden, rank,
        strong_convexity, pretrain)
    result = ICNNMap(psi, psi_conj, "w2gn")
    with _Threads(threads):
        t0 = time.perf_counter()
        _pretrain(psi, psi_conj, pretrain, s_pre, result)
        opt = torch.optim.Adam(list(psi.parameters()) + list(psi_conj.parameters()), lr=lr)
        hist, w2 = np.empty(n_iter, np.float32), np.empty(n_iter, np.float32)
        bar = _progress(n_iter, verbose, "W2GN")
        it = 0
        while it < n_iter:
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                break
            x, y = draw_x(batch_size), draw_y(batch_size)
            y_inv = psi_conj.push(y)                                  # ~ (grad psi)^-1 (y)
            y_inv_sg = y_inv.detach()
            psi_x, x_fwd = psi.value_and_push(x)
            psi_yinv = psi(y_inv_sg)
            cyc_y = ((psi.push(y_inv) - y) ** 2).sum(1).mean()
            cyc_x = ((psi_conj.push(x_fwd) - x) ** 2).sum(1).mean()
            dual = psi_x.mean() - psi_yinv.mean()
            loss = dual + cycle_weight * (cyc_x + cyc_y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            psi.convexify()
            psi_conj.convexify()
            with torch.no_grad():   # 1/2 W2^2 ~ 1/2 E|x|^2 + 1/2 E|y|^2 - E psi(x) - E psi^*(y)
                conj = (y_inv_sg * y).sum(1).mean() - psi_yinv.mean()
                w2[it] = 0.5 * ((x * x).sum(1).mean() + (y * y).sum(1).mean()) - psi_x.mean() - conj
            hist[it] = loss.item()
            it += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        result.fit_time_ = time.perf_counter() - t0
    result.history_, result.w2_history_ = hist[:it], w2[:it]
    result.n_iter_ = result.n_conj_steps_ = it
    result.n_push_ = 4 * it
    psi.eval(), psi_conj.eval()
    return result


def fit_mm(sample_x, sample_y, dim, *, n_iter=5000, batch_size=256, inner_iter=15, lr=1e-3, seed=0,
           verbose=False, time_limit=None, threads=None, hidden=None, rank=1, strong_convexity=1e-4,
           pretrain="identity", convexify=False):
    r"""Fit grad psi with the min-max ICNN dual (Makkuva et al. 2020), as run on the W2 benchmark ("MM").

    .. math::

        \min_\psi \max_{\bar\psi}\ \overline{\psi(x)}
            + \overline{\langle\nabla\bar\psi(y), y\rangle - \psi(\nabla\bar\psi(y))}

    Each outer iteration: ``inner_iter`` Adam steps on psi_bar, each on a fresh batch
    y ~ sample_y, minimising mean[psi(grad psi_bar(y)) - <grad psi_bar(y), y>] (psi frozen); then one
    Adam step on psi with fresh x, y, minimising mean psi(x) - mean psi(sg[grad psi_bar(y)]).  (The
    benchmark's notebook takes the psi step first and the inner steps after; we approximate the max
    before stepping the min, as Makkuva et al.'s algorithm does.  The difference is one step.)

    Budget: ``n_iter`` counts outer steps = optimiser steps of the map network psi; each also costs
    ``inner_iter`` steps of psi_bar (``n_conj_steps_``), i.e. 1 + inner_iter batched gradient
    evaluations (``n_push_``) and optimiser steps per outer step -- at the default 15, 5,000 outer steps
    are 80,000 network steps, 16x W2GN's.  Identity pre-training as in :func:`fit_w2gn`.

    Defaults and sources (Korotin et al. 2021, notebooks/MM_test_hd_benchmark.ipynb): lr 1e-3 for
    both (Adam default betas), inner_iter 15, strong_convexity 1e-4, rank 1, hidden as in fit_w2gn,
    identity pre-training *without* clamping, and ``convexify=False``: their "MM" column leaves the
    weights unconstrained (the DenseICNN architecture, but psi is then not guaranteed convex);
    ``convexify=True`` clamps both networks after every step, which is their "MMv2" column.  They used
    batch 1024 and 50,000 outer steps.

    Parameters: as :func:`fit_w2gn`, plus ``inner_iter`` (int >= 1) and ``convexify`` (bool).
    """
    inner_iter = _check_int(inner_iter, "inner_iter", 1)
    if not isinstance(convexify, bool):
        raise TypeError(f"convexify must be a bool, got {type(convexify).__name__}")
    (dim, n_iter, batch_size, lr, time_limit, rng, draw_x, draw_y, psi, psi_conj, s_pre) = _setup(
        sample_x, sample_y, dim, n_iter, batch_size, lr, seed, time_limit, hidden, rank,
        strong_convexity, pretrain)
    result = ICNNMap(psi, psi_conj, "mm")
    p_psi, p_conj = list(psi.parameters()), list(psi_conj.parameters())
    with _Threads(threads):
        t0 = time.perf_counter()
        _pretrain(psi, psi_conj, pretrain, s_pre, result, convex=convexify)
        opt_psi = torch.optim.Adam(p_psi, lr=lr)
        opt_conj = torch.optim.Adam(p_conj, lr=lr)
        hist, w2 = np.empty(n_iter, np.float32), np.empty(n_iter, np.float32)
        bar = _progress(n_iter, verbose, "MM")
        it = 0
        while it < n_iter:
            if time_limit is not None and time.perf_counter() - t0 > time_limit:
                break
            for p in p_psi:
                p.requires_grad_(False)
            for _ in range(inner_iter):
                y = draw_y(batch_size)
                y_inv = psi_conj.push(y)
                conj_loss = (psi(y_inv) - (y_inv * y).sum(1)).mean()
                opt_conj.zero_grad(set_to_none=True)
                conj_loss.backward()
                opt_conj.step()
                if convexify:
                    psi_conj.convexify()
            for p in p_psi:
                p.requires_grad_(True)
            x, y = draw_x(batch_size), draw_y(batch_size)
            with torch.no_grad():
                y_inv = psi_conj.push(y)
            psi_x, psi_yinv = psi(x), psi(y_inv)
            loss = psi_x.mean() - psi_yinv.mean()
            opt_psi.zero_grad(set_to_none=True)
            loss.backward()
            opt_psi.step()
            if convexify:
                psi.convexify()
            with torch.no_grad():
                conj = (y_inv * y).sum(1).mean() - psi_yinv.mean()
                w2[it] = 0.5 * ((x * x).sum(1).mean() + (y * y).sum(1).mean()) - psi_x.mean() - conj
            hist[it] = loss.item()
            it += 1
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        result.fit_time_ = time.perf_counter() - t0
    result.history_, result.w2_history_ = hist[:it], w2[:it]
    result.n_iter_ = it
    result.n_conj_steps_ = inner_iter * it
    result.n_push_ = (1 + inner_iter) * it
    psi.eval(), psi_conj.eval()
    return result
