"""PyTorch bridge: monge's C kernels as ``torch.autograd.Function`` s.

Forward passes hand CPU tensors to the C core without copying (contiguous float32/float64 tensors
are shared with NumPy); backward passes multiply the incoming gradient by the gradients the C core
computed from the dual potentials (envelope theorem).  float32 and float64 follow the inputs.
Tensors on other devices are moved to the CPU for the solve and the gradients moved back.

    import monge.torch as mt
    loss = mt.sinkhorn_divergence(x, y, eps=0.05)      # scalar tensor
    loss.backward()                                    # x.grad, y.grad
    mt.SinkhornLoss(eps=0.05)(x, y)                    # the same as an nn.Module

sinkhorn, sinkhorn_divergence and monge_gap are written in the setup_context style, so
torch.func.grad and torch.func.vjp work on them (vmap does not: the solves run in C).  Their
gradients are first order: differentiating them again raises.

Needs PyTorch: ``pip install 'monge[torch]'``.
"""
from __future__ import annotations

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        "monge.torch needs PyTorch, an optional dependency of monge: install it with "
        "pip install 'monge[torch]' (the CPU build torch==2.13.0)") from exc

import numpy as np

from . import _core
from .align import options as _align_options
from .align import prepare as _align_prepare
from .align import warn_unconverged as _align_warn
from .ctc import prepare as _ctc_prepare
from .losses import monge_gap as _np_monge_gap
from .losses import sinkhorn_divergence as _np_divergence
from .sinkhorn import sinkhorn as _np_sinkhorn

__all__ = ["sinkhorn", "sinkhorn_divergence", "monge_gap", "ctc_loss", "align", "SinkhornLoss"]


def _np(t, name):
    """A tensor as a NumPy array (a view for CPU tensors), or None."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name}: expected a float32 or float64 tensor, got {t.dtype}")
    return t.detach().cpu().numpy()


def _back(arr, like):
    return None if arr is None else torch.as_tensor(np.asarray(arr), dtype=like.dtype, device=like.device)


def _scale(grad_out, g, batched):
    """grad_out (scalar, or (B,) for a batch) times the saved gradient g (per item)."""
    if g is None:
        return None
    if batched:
        return grad_out.reshape((-1,) + (1,) * (g.dim() - 1)) * g
    return grad_out * g


class _FirstOrderOnly(torch.autograd.Function):
    """The identity on a returned gradient, tied to the inputs it depends on, so that a second
    backward through it raises instead of treating the gradient as a constant."""

    generate_vmap_rule = True     # torch.func.jacrev vmaps the backward through it

    @staticmethod
    def forward(g, *deps):
        return g.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, *grads):
        raise RuntimeError("monge.torch: second derivatives are not implemented (the gradients "
                           "come from the dual potentials, first order only): differentiate an "
                           "OT loss once, without create_graph through it")


def _save(ctx, grads, deps):
    """Saves the envelope gradients (None skipped) and the inputs they depend on."""
    ctx.which = [g is not None for g in grads]
    ctx.n_deps = len(deps)
    ctx.save_for_backward(*(g for g in grads if g is not None), *deps)


def _backward(ctx, grad_out, scale=None):
    """Incoming gradient times the saved envelope gradients (None for inputs not requiring one);
    under create_graph the results carry a node that refuses a second backward."""
    saved = ctx.saved_tensors
    deps = saved[len(saved) - ctx.n_deps:]
    it = iter(saved)
    grads = [next(it) if w else None for w in ctx.which]
    scale = scale or (lambda g: _scale(grad_out, g, ctx.batched))
    out = [None if g is None else scale(g) for g in grads]
    if torch.is_grad_enabled():
        out = [None if g is None else _FirstOrderOnly.apply(g, *deps) for g in out]
    return tuple(out) + (None,)


class _PointsLoss(torch.autograd.Function):
    """A loss of (x, y, a, b) in the setup_context style (torch.func.grad / vjp work): a
    subclass's forward(x, y, a, b, kwargs, wanted) returns the value and the envelope gradients
    of the inputs in `wanted` (empty tensors for the others); setup_context saves them."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, y, a, b, _, wanted = inputs
        ctx.mark_non_differentiable(*output[1:])
        gs = [g if k in wanted else None for k, g in zip(("x", "y", "a", "b"), output[1:])]
        ctx.batched = x.dim() == 3
        _save(ctx, gs, [t for t in (x, y, a, b) if t is not None])

    @staticmethod
    def backward(ctx, grad_out, *unused):
        return _backward(ctx, grad_out) + (None,)


class _Sinkhorn(_PointsLoss):
    """OT_eps(a, b) and its envelope gradients."""

    @staticmethod
    def forward(x, y, a, b, kwargs, wanted):
        r = _np_sinkhorn(_np(x, "x"), _np(y, "y"), _np(a, "a"), _np(b, "b"), **kwargs)
        batched = x.dim() == 3
        B = x.shape[0] if batched else None

        def grad(wrt):
            if wrt not in wanted:
                return x.new_zeros(0)
            if batched:
                return _back(np.stack([r.gradient(wrt, k) for k in range(B)]), x)
            return _back(r.gradient(wrt), x)

        value = torch.as_tensor(np.asarray(r.value), dtype=x.dtype, device=x.device)
        return (value,) + tuple(grad(w) for w in ("x", "y", "a", "b"))



def sinkhorn(x, y, a=None, b=None, *, eps, **kwargs):
    """OT_eps(a, b) between point clouds (see :func:`monge.sinkhorn` for every option), as a
    tensor differentiable with respect to x, y, a and b.  x: (n, d) or (B, n, d)."""
    wanted = _wants(("x", x), ("y", y), ("a", a), ("b", b))
    return _Sinkhorn.apply(x, y, a, b, dict(kwargs, eps=eps), wanted)[0]


def _wants(*named):
    """The names of the inputs that need a gradient (decided before the Function runs, so that
    torch.func transforms, whose forward has no ctx, get the same answer)."""
    return tuple(k for k, t in named if isinstance(t, torch.Tensor) and t.requires_grad)


class _Divergence(_PointsLoss):
    """S_eps and its gradients."""

    @staticmethod
    def forward(x, y, a, b, kwargs, wanted):
        r = _np_divergence(_np(x, "x"), _np(y, "y"), _np(a, "a"), _np(b, "b"),
                           grad=wanted or False, **kwargs)
        value = torch.as_tensor(np.asarray(r.value), dtype=x.dtype, device=x.device)
        empty = x.new_zeros(0)
        gs = tuple(empty if g is None else _back(g, x) for g in
                   (r.grad_x, r.grad_y, r.grad_a, r.grad_b))
        return (value,) + gs



def sinkhorn_divergence(x, y, a=None, b=None, *, eps, **kwargs):
    """The Sinkhorn divergence S_eps (see :func:`monge.sinkhorn_divergence`), differentiable with
    respect to x, y, a and b.  x: (n, d) or (B, n, d) (then one value per problem)."""
    wanted = _wants(("x", x), ("y", y), ("a", a), ("b", b))
    if kwargs.get("static_b"):
        wanted = tuple(k for k in wanted if k in ("x", "a"))
    return _Divergence.apply(x, y, a, b, dict(kwargs, eps=eps), wanted)[0]


class SinkhornLoss(torch.nn.Module):
    """An OT loss between point clouds as a module, in the shape of GeomLoss's ``SamplesLoss``:
    ``loss(x, y)`` or ``loss(a, x, b, y)`` with weights a, b.

    Parameters
    ----------
    eps : float
        Entropic regularisation, absolute, for monge's costs (sqeuclidean is ``|x - y|^2``, no 1/2).
        GeomLoss's ``SamplesLoss("sinkhorn", p=2, blur=s)`` uses ``|x - y|^2`` / 2 and eps = s^2: the
        same loss is ``SinkhornLoss(eps=2 * s**2)`` divided by 2.
    debias : bool
        True (default): the Sinkhorn divergence S_eps (0 when x and y coincide); False: OT_eps.
    cost : str
        Ground cost ('sqeuclidean', 'euclidean', 'pnorm', 'cosine', 'elastic').
    reduction : {'mean', 'sum', 'none'}
        For batches (B, n, d): how the B values are reduced.  A single pair gives a scalar.
    **options
        Solver options of :func:`monge.sinkhorn_divergence` / :func:`monge.sinkhorn` (tol,
        max_iter, p, ...).

    Gradients with respect to the points and the weights come from the dual potentials
    (envelope theorem); they are first-order only (a second backward raises).  CPU tensors are
    shared with the C core; tensors on another device are copied to the CPU for the solve and the
    results copied back (an explicit copy each call, documented here rather than hidden).
    """

    def __init__(self, eps, *, debias=True, cost="sqeuclidean", reduction="mean", **options):
        super().__init__()
        from ._validate import choice, positive

        self.eps = positive("eps", eps)
        if not isinstance(debias, (bool, np.bool_)):
            raise TypeError(f"debias: expected a bool, got {type(debias).__name__}")
        self.debias = bool(debias)
        self.cost = cost
        self.reduction = choice("reduction", reduction, ("mean", "sum", "none"))
        self.options = dict(options)

    def forward(self, *args):
        if len(args) == 2:
            a, (x, y), b = None, args, None
        elif len(args) == 4:
            a, x, b, y = args
        else:
            raise TypeError(f"SinkhornLoss: call with (x, y) or (a, x, b, y), got {len(args)} "
                            "arguments")
        fn = sinkhorn_divergence if self.debias else sinkhorn
        out = fn(x, y, a, b, eps=self.eps, cost=self.cost, **self.options)
        if out.dim() == 0 or self.reduction == "none":
            return out
        return out.mean() if self.reduction == "mean" else out.sum()

    def extra_repr(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (f"eps={self.eps}, debias={self.debias}, cost={self.cost!r}, "
                f"reduction={self.reduction!r}{extra}")


class _MongeGap(torch.autograd.Function):
    """setup_context style, as _Sinkhorn."""

    @staticmethod
    def forward(x, tx, kwargs, wanted):
        r = _np_monge_gap(_np(x, "x"), _np(tx, "tx"), grad=wanted or False, **kwargs)
        value = torch.as_tensor(r.value, dtype=tx.dtype, device=tx.device)
        return (value,) + tuple(tx.new_zeros(0) if g is None else _back(g, tx)
                                for g in (r.grad_x, r.grad_tx))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, tx, _, wanted = inputs
        ctx.mark_non_differentiable(*output[1:])
        gs = [g if k in wanted else None for k, g in zip(("x", "tx"), output[1:])]
        _save(ctx, gs, [x, tx])

    @staticmethod
    def backward(ctx, grad_out, *unused):
        return _backward(ctx, grad_out, scale=lambda g: grad_out * g) + (None,)


def monge_gap(x, tx, **kwargs):
    """The Monge gap M(T) of samples x and their images tx = T(x) (see :func:`monge.monge_gap`),
    differentiable with respect to tx (and x): the regulariser of map fitting."""
    return _MongeGap.apply(x, tx, kwargs, _wants(("x", x), ("tx", tx)))[0]


class _CTC(torch.autograd.Function):
    """Per-sample CTC losses.  With few classes (C <= 8 (2 S_max + 1)) the forward computes the
    per-sample gradients too and the backward scales them; with many classes the forward runs the
    alpha pass only and the backward runs both passes once, with the incoming per-sample gradients
    as weights, so the T x N x C gradient is written once and never rescaled."""

    @staticmethod
    def forward(ctx, log_probs, prepared, blank, zero_infinity):
        lp = _np(log_probs, "log_probs")
        _, flat, offsets, il, tl = prepared
        C = lp.shape[2]
        ctx.eager = bool(ctx.needs_input_grad[0]) and C <= 8 * (2 * int(tl.max()) + 1)
        ones = np.ones(lp.shape[1]) if ctx.eager else None
        r = _core.ctc(lp, flat, offsets, il, tl, blank=blank, zero_infinity=zero_infinity,
                      mode=1 if ctx.eager else 0, weight=ones)
        ctx.args = (prepared, blank, zero_infinity)
        ctx.save_for_backward(_back(r["grad"], log_probs) if ctx.eager else log_probs)
        return torch.as_tensor(r["loss"], dtype=log_probs.dtype, device=log_probs.device)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        (saved,) = ctx.saved_tensors
        if ctx.eager:  # saved: the per-sample gradients
            return saved * grad_out.reshape(1, -1, 1).to(saved.dtype), None, None, None
        (_, flat, offsets, il, tl), blank, zero_infinity = ctx.args
        w = grad_out.detach().cpu().to(torch.float64).numpy()
        r = _core.ctc(_np(saved, "log_probs"), flat, offsets, il, tl, blank=blank,
                      zero_infinity=zero_infinity, mode=1, weight=np.ascontiguousarray(w))
        return _back(r["grad"], saved), None, None, None


def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=0, reduction="mean",
             zero_infinity=False):
    """CTC loss as a differentiable tensor, same conventions and values as
    ``torch.nn.functional.ctc_loss`` (see :func:`monge.ctc_loss`).  log_probs: (T, N, C) tensor
    (float32/float64), typically ``logits.log_softmax(-1)``; the backward returns the true
    gradient with respect to log_probs (-gamma), so gradients reaching the logits through
    log_softmax equal torch's."""
    from ._validate import choice

    choice("reduction", reduction, ("mean", "sum", "none"))
    if not isinstance(log_probs, torch.Tensor):
        raise TypeError(f"log_probs: expected a torch.Tensor, got {type(log_probs).__name__}")
    unbatched = log_probs.dim() == 2
    lp = log_probs[:, None, :] if unbatched else log_probs
    as_np = lambda v: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v  # noqa: E731
    prepared = _ctc_prepare(lp.detach().cpu().numpy(), as_np(targets), as_np(input_lengths),
                            as_np(target_lengths), blank)
    per = _CTC.apply(lp, prepared, int(blank), bool(zero_infinity))
    if reduction == "none":
        return per[0] if unbatched else per
    if reduction == "sum":
        return per.sum()
    tl = torch.as_tensor(prepared[4], dtype=per.dtype, device=per.device).clamp(min=1)
    return (per / tl).mean()


class _Align(torch.autograd.Function):
    """Alignment distances D_k = <P_k, C_k(X, Y)> with the plans held fixed in the backward."""

    @staticmethod
    def forward(ctx, X, Y, mx, my, opts):
        need = ctx.needs_input_grad
        r = _core.align(_np(X, "X"), _np(Y, "Y"), mx, my, weight=np.ones(X.shape[0]), plan=True,
                        grad_x=bool(need[0]), grad_y=bool(need[1]), **opts)
        _align_warn(r, opts, stacklevel=4)
        gx, gy = _back(r["grad_x"], X), _back(r["grad_y"], Y)
        ctx.which = [g is not None for g in (gx, gy)]
        ctx.save_for_backward(*(g for g in (gx, gy) if g is not None))
        plan = torch.as_tensor(r["plan"], dtype=X.dtype, device=X.device)
        ctx.mark_non_differentiable(plan)
        return torch.as_tensor(r["dist"], dtype=X.dtype, device=X.device), plan

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_dist, grad_plan):
        saved = iter(ctx.saved_tensors)
        grads = [next(saved) if w else None for w in ctx.which]
        return tuple(None if g is None else grad_dist.reshape(-1, 1, 1) * g for g in grads) + \
            (None, None, None)


def align(X, Y, mask_x=None, mask_y=None, *, method="sinkhorn", eps=0.1, tol=1e-6,
          max_iter=1000, beta=0.5, outer=50, inner=1):
    """Token alignment (see :func:`monge.align`) on tensors X (B, n, d), Y (B, m, d) with
    boolean padding masks.  Returns (distance (B,), plan (B, n, m)): the distance is
    differentiable with respect to X and Y with the plan held fixed, the plan is not."""
    if not isinstance(X, torch.Tensor) or not isinstance(Y, torch.Tensor):
        raise TypeError("X, Y: expected torch tensors")
    as_np = lambda v: None if v is None else (v.detach().cpu().numpy()  # noqa: E731
                                              if isinstance(v, torch.Tensor) else np.asarray(v))
    Xd, Yd = X.detach().cpu().to(torch.float64), Y.detach().cpu().to(torch.float64)
    _, _, mx, my, single = _align_prepare(Xd.numpy(), Yd.numpy(), as_np(mask_x), as_np(mask_y))
    if single:
        raise ValueError("X: expected a batch (B, n, d); add a leading axis for one pair")
    opts = _align_options(method, eps, tol, max_iter, beta, outer, inner)
    return _Align.apply(X, Y, mx, my, opts)
