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
from .barycenter import barycenter as _np_barycenter
from .align import prepare as _align_prepare
from .align import warn_unconverged as _align_warn
from .ctc import prepare as _ctc_prepare
from .gromov import fused_gromov_wasserstein as _np_fgw
from .gromov import gromov_wasserstein as _np_gw
from .losses import monge_gap as _np_monge_gap
from .losses import sinkhorn_divergence as _np_divergence
from .sinkhorn import sinkhorn as _np_sinkhorn

__all__ = ["sinkhorn", "sinkhorn_divergence", "monge_gap", "ctc_loss", "align", "SinkhornLoss",
           "gromov_wasserstein2", "barycenter_loss"]


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
    """Entropic OT value OT_eps(a, b) between point clouds, as a differentiable tensor.

    The value of :func:`monge.sinkhorn` (see it for every option), differentiable with respect to
    x, y, a and b.  Gradients come from the dual potentials (envelope theorem) and are first
    order only; ``torch.func.grad`` and ``torch.func.vjp`` work, ``vmap`` does not (the solve runs
    in C).  CPU tensors are shared with the C core without a copy; tensors on another device are
    copied to the CPU for the solve and the results copied back.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d) or (B, n, d)
        Source points, float32 or float64 (the result follows its dtype and device); a leading
        batch axis solves B problems at once.
    y : torch.Tensor, shape (m, d) or (B, m, d)
        Target points.
    a : torch.Tensor, shape (n,) or (B, n), optional
        Source weights (uniform when omitted).
    b : torch.Tensor, shape (m,) or (B, m), optional
        Target weights (uniform when omitted).
    eps : float
        Entropic regularisation, absolute (keyword-only, required).
    **kwargs
        Further options of :func:`monge.sinkhorn` (cost, p, tol, max_iter, ...).

    Returns
    -------
    torch.Tensor
        OT_eps: a scalar for one pair, shape (B,) for a batch.

    Raises
    ------
    TypeError
        If x, y, a or b (when given) is not a float32 or float64 torch.Tensor, or a keyword is
        not an option of :func:`monge.sinkhorn`.
    ValueError
        From :func:`monge.sinkhorn`'s checks, e.g. eps not positive or x and y of different
        dimensions.
    RuntimeError
        When the returned gradients are differentiated again (second derivatives are not
        implemented).

    See Also
    --------
    monge.sinkhorn : The NumPy solver, with every option.
    sinkhorn_divergence : The debiased loss, 0 when x and y coincide.
    SinkhornLoss : The same as an ``nn.Module``.

    Examples
    --------
    >>> import torch, monge.torch as mt
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> v = mt.sinkhorn(x, x.detach() + 1.0, eps=0.1)
    >>> v.backward(); round(v.item(), 3), x.grad.shape
    (2.11, torch.Size([3, 2]))
    """
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
    """The Sinkhorn divergence S_eps between point clouds, as a differentiable tensor.

    The value of :func:`monge.sinkhorn_divergence` (see it for every option), differentiable with
    respect to x, y, a and b.  With ``static_b=True`` the target is fixed: the value omits the
    constant 1/2 OT_eps(b, b) and only x and a receive gradients.  Gradients come from the dual
    potentials (envelope theorem) and are first order only; ``torch.func.grad`` and
    ``torch.func.vjp`` work, ``vmap`` does not.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d) or (B, n, d)
        Source points, float32 or float64 (the result follows its dtype and device); with a
        leading batch axis, one value per problem.
    y : torch.Tensor, shape (m, d) or (B, m, d)
        Target points.
    a : torch.Tensor, shape (n,) or (B, n), optional
        Source weights (uniform when omitted).
    b : torch.Tensor, shape (m,) or (B, m), optional
        Target weights (uniform when omitted).
    eps : float
        Entropic regularisation, absolute (keyword-only, required).
    **kwargs
        Further options of :func:`monge.sinkhorn_divergence` (cost, p, static_b, tol, max_iter,
        ...); `grad` is set here and may not be given.

    Returns
    -------
    torch.Tensor
        S_eps: a scalar for one pair, shape (B,) for a batch.

    Raises
    ------
    TypeError
        If x, y, a or b (when given) is not a float32 or float64 torch.Tensor, or a keyword is
        not an option of :func:`monge.sinkhorn_divergence`.
    ValueError
        From :func:`monge.sinkhorn_divergence`'s checks, e.g. eps not positive or x and y of
        different dimensions.
    RuntimeError
        When the returned gradients are differentiated again.

    See Also
    --------
    monge.sinkhorn_divergence : The NumPy version, with every option.
    sinkhorn : The biased value OT_eps.
    SinkhornLoss : The same as an ``nn.Module``.

    Examples
    --------
    Between a cloud and its translate by t the divergence is ``|t|^2`` (sqeuclidean cost):

    >>> import torch, monge.torch as mt
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64, requires_grad=True)
    >>> s = mt.sinkhorn_divergence(x, x.detach() + 1.0, eps=0.1)
    >>> s.backward(); round(s.item(), 6), torch.allclose(x.grad, torch.full_like(x, -2 / 3), atol=1e-4)
    (2.0, True)
    """
    wanted = _wants(("x", x), ("y", y), ("a", a), ("b", b))
    if kwargs.get("static_b"):
        wanted = tuple(k for k in wanted if k in ("x", "a"))
    return _Divergence.apply(x, y, a, b, dict(kwargs, eps=eps), wanted)[0]


class _Gromov(torch.autograd.Function):
    """(Fused) GW value and its envelope gradients wrt C1, C2 (or x, y), p, q and M."""

    @staticmethod
    def forward(C1, C2, p, q, M, kwargs, wanted):
        points = kwargs.get("_points", False)
        kw = {k: v for k, v in kwargs.items() if k != "_points"}
        a, b = (_np(C1, "x"), _np(C2, "y")) if points else (_np(C1, "C1"), _np(C2, "C2"))
        args = (None, None, _np(p, "p"), _np(q, "q"))
        if points:
            kw.update(x=a, y=b)
        else:
            args = (a, b) + args[2:]
        grad = "C1" in wanted or "C2" in wanted
        if M is None:
            r = _np_gw(*args, grad=grad, **kw)
        else:
            r = _np_fgw(_np(M, "M"), *args, grad=grad, **kw)
        alpha = kw.get("alpha", 0.5) if M is not None else 1.0
        empty = C1.new_zeros(0)
        gs = {"C1": r.grad_x if points else r.grad_C1, "C2": r.grad_y if points else r.grad_C2,
              "p": r.f, "q": r.g, "M": None if M is None else (1.0 - alpha) * r.plan}
        value = torch.as_tensor(r.value, dtype=C1.dtype, device=C1.device)
        return (value,) + tuple(_back(gs[k], C1) if k in wanted else empty
                                for k in ("C1", "C2", "p", "q", "M"))

    @staticmethod
    def setup_context(ctx, inputs, output):
        C1, C2, p, q, M, _, wanted = inputs
        ctx.mark_non_differentiable(*output[1:])
        gs = [g if k in wanted else None for k, g in zip(("C1", "C2", "p", "q", "M"), output[1:])]
        ctx.batched = False
        _save(ctx, gs, [t for t in (C1, C2, p, q, M) if t is not None])

    @staticmethod
    def backward(ctx, grad_out, *unused):
        return _backward(ctx, grad_out) + (None,)


def gromov_wasserstein2(C1=None, C2=None, p=None, q=None, *, x=None, y=None, M=None, alpha=0.5,
                        **kwargs):
    """The (fused) Gromov–Wasserstein value as a differentiable tensor.

    The value of :func:`monge.gromov_wasserstein` (or, with ``M``, of
    :func:`monge.fused_gromov_wasserstein`; see them for every option), differentiable with respect
    to C1, C2, p, q and M, as POT's ``gromov_wasserstein2`` and ``fused_gromov_wasserstein2``: the
    gradients are those at the returned plan held fixed (envelope theorem), dF/dC1 and dF/dC2 from
    the C core, the dual potentials of the last linear problem for p and q (centred), and
    (1 - alpha) T for M.  With ``method='entropic'`` the potentials are those of the regularised
    step.  First order only.

    Parameters
    ----------
    C1, C2 : torch.Tensor, shapes (n, n), (m, m)
        The spaces' (dis)similarity matrices, float32 or float64 (solved in float64; the result
        follows C1's dtype and device).
    x, y : torch.Tensor, shapes (n, dx), (m, dy), optional
        Instead of C1, C2: point clouds with their squared Euclidean distances (see
        :func:`monge.gromov_wasserstein`), differentiable with respect to the points.
    p, q : torch.Tensor, shapes (n,), (m,), optional
        Weights (uniform when omitted).
    M : torch.Tensor, shape (n, m), optional
        Feature cost of the fused problem.
    alpha : float
        The fused problem's weight of the structure term (with M only).
    **kwargs
        Further options of :func:`monge.gromov_wasserstein` (loss, method, eps, init, n_init,
        tol, max_iter, ...); `grad` is set here.

    Returns
    -------
    torch.Tensor
        The objective F(T) at the returned plan, a scalar.

    Raises
    ------
    TypeError, ValueError
        From the NumPy functions' checks.

    Examples
    --------
    >>> import torch, monge.torch as mt
    >>> C1 = torch.tensor([[0.0, 1, 3], [1, 0, 2], [3, 2, 0]], dtype=torch.float64, requires_grad=True)
    >>> C2 = torch.tensor([[0.0, 2, 3], [2, 0, 1], [3, 1, 0]], dtype=torch.float64)
    >>> v = mt.gromov_wasserstein2(C1, C2)            # C2 is C1 numbered backwards: 0
    >>> v.backward(); abs(v.item()) < 1e-12, C1.grad.abs().max().item() < 1e-12
    (True, True)
    """
    if "grad" in kwargs:
        raise TypeError("gromov_wasserstein2: 'grad' is set by the bridge")
    if x is not None or y is not None:
        if C1 is not None or C2 is not None:
            raise ValueError("C1, C2, x, y: give either the matrices C1, C2 or the point clouds "
                             "x, y, not both")
        if x is None or y is None:
            raise ValueError("x, y: both point clouds are required")
        C1, C2 = x, y                      # carried in C1's and C2's slots
        kwargs = dict(kwargs, _points=True)
    elif C1 is None or C2 is None:
        raise ValueError("C1, C2: required (or the point clouds x, y)")
    wanted = _wants(("C1", C1), ("C2", C2), ("p", p), ("q", q), ("M", M))
    if M is not None:
        kwargs = dict(kwargs, alpha=alpha)
    return _Gromov.apply(C1, C2, p, q, M, kwargs, wanted)[0]


class _Barycenter(torch.autograd.Function):
    """The barycenter loss and its envelope gradients wrt B, weights, C (or x, y)."""

    @staticmethod
    def forward(B, weights, C, x, y, kwargs, wanted):
        Bn = _np(B, "B")
        if np.any(Bn < 0):
            raise ValueError("B: histograms must be non-negative")
        r = _np_barycenter(Bn, _np(C, "C"), x=_np(x, "x"), y=_np(y, "y"),
                           weights=_np(weights, "weights"), grad=True, **kwargs)
        gs = {}
        if "B" in wanted:
            # rows divided by their sums inside: d/dB = (G - <G, b>) / s, the inner product over
            # the support (the plain loss's -inf where b = 0 stays -inf)
            flat = Bn.reshape(len(Bn), -1)
            s = flat.sum(axis=1, keepdims=True)
            b, G = flat / s, r.grad_B.reshape(flat.shape)
            inner = np.where(b > 0, G * b, 0.0).sum(axis=1, keepdims=True)
            gs["B"] = ((G - inner) / s).reshape(Bn.shape)
        if "weights" in wanted:
            w = _np(weights, "weights")
            lam = w / w.sum()
            gs["weights"] = (r.values - lam @ r.values) / w.sum()
        gs["C"], gs["x"], gs["y"] = r.grad_C, r.grad_x, r.grad_y
        value = torch.as_tensor(r.value, dtype=B.dtype, device=B.device)
        empty = B.new_zeros(0)
        return (value,) + tuple(_back(gs[k], B) if k in wanted else empty
                                for k in ("B", "weights", "C", "x", "y"))

    @staticmethod
    def setup_context(ctx, inputs, output):
        B, weights, C, x, y, _, wanted = inputs
        ctx.mark_non_differentiable(*output[1:])
        gs = [g if k in wanted else None
              for k, g in zip(("B", "weights", "C", "x", "y"), output[1:])]
        ctx.batched = False
        _save(ctx, gs, [t for t in (B, weights, C, x, y) if t is not None])

    @staticmethod
    def backward(ctx, grad_out, *unused):
        return _backward(ctx, grad_out) + (None,)


def barycenter_loss(B, weights=None, C=None, *, x=None, y=None, **kwargs):
    """The fixed-support barycenter loss as a differentiable tensor.

    The ``value`` of :func:`monge.barycenter` with ``grad=True`` (see it and
    :class:`monge.BarycenterResult`: sum_k weights_k OT_eps(a, b_k) at the barycenter a, or with
    ``debiased=True`` the weighted Sinkhorn divergences), differentiable with respect to the
    histograms B, the weights, the cost matrix C and the points x, y: the gradients are those at
    the returned barycenter and plans held fixed (envelope theorem), computed by the C core.  B's
    rows and the weights are divided by their sums inside, and the gradients go through that
    division.  Without ``debiased`` the slope is -inf at a zero entry of B (the entropy's).
    First order only.

    Parameters
    ----------
    B : torch.Tensor, shape (K, m)
        The input histograms, non-negative, float32 or float64 (solved in float64; the result
        follows B's dtype and device).
    weights : torch.Tensor, shape (K,), optional
        Non-negative weights of the inputs (uniform when omitted).
    C : torch.Tensor, shape (n, m), optional
        Cost between the barycenter's support and the inputs'.
    x, y : torch.Tensor, shapes (n, d), (m, d), optional
        Instead of C: the supports as points (x defaults to y; the gradient in y then holds
        both roles).
    **kwargs
        Further options of :func:`monge.barycenter` (eps, grid, cost, debiased, tol, ...);
        `grad` is set here.

    Returns
    -------
    torch.Tensor
        The loss, a scalar.

    Raises
    ------
    TypeError, ValueError
        From :func:`monge.barycenter`'s checks.

    Examples
    --------
    >>> import torch, monge.torch as mt
    >>> y = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
    >>> B = torch.tensor([[1.0, 1, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=torch.float64)
    >>> w = torch.tensor([0.5, 0.5], dtype=torch.float64, requires_grad=True)
    >>> loss = mt.barycenter_loss(B, w, y=y, eps=0.05, debiased=True)
    >>> loss.backward(); round(float(w.grad[0] + w.grad[1]), 12)     # the weights' simplex
    0.0
    """
    if "grad" in kwargs:
        raise TypeError("barycenter_loss: 'grad' is set by the bridge")
    if x is not None and y is None:
        raise ValueError("y: the inputs' support is required with x")
    wanted = _wants(("B", B), ("weights", weights), ("C", C), ("x", x), ("y", y))
    if not isinstance(B, torch.Tensor):
        raise TypeError(f"B: expected a torch.Tensor, got {type(B).__name__}")
    return _Barycenter.apply(B, weights, C, x, y, kwargs, wanted)[0]


class SinkhornLoss(torch.nn.Module):
    """An OT loss between point clouds as a ``torch.nn.Module``, shaped like GeomLoss's SamplesLoss.

    Call it as ``loss(x, y)`` or ``loss(a, x, b, y)`` with weights a, b (see :meth:`forward`).
    Gradients with respect to the points and the weights come from the dual potentials
    (envelope theorem); they are first-order only (a second backward raises).  CPU tensors are
    shared with the C core; tensors on another device are copied to the CPU for the solve and the
    results copied back (an explicit copy each call, documented here rather than hidden).

    Parameters
    ----------
    eps : float
        Entropic regularisation, absolute, for monge's costs (sqeuclidean is ``|x - y|^2``, no
        1/2).  GeomLoss's ``SamplesLoss("sinkhorn", p=2, blur=s)`` uses ``|x - y|^2 / 2`` and
        eps = s^2: the same loss is ``SinkhornLoss(eps=2 * s**2)`` divided by 2.
    debias : bool, default True
        True: the Sinkhorn divergence S_eps (0 when x and y coincide, see
        :func:`sinkhorn_divergence`); False: OT_eps (see :func:`sinkhorn`).
    cost : str, default 'sqeuclidean'
        Ground cost ('sqeuclidean', 'euclidean', 'pnorm', 'cosine', 'elastic'); checked when
        the loss is called.
    reduction : {'mean', 'sum', 'none'}
        For batches (B, n, d): how the B values are reduced.  A single pair gives a scalar.
    **options
        Solver options of :func:`monge.sinkhorn_divergence` / :func:`monge.sinkhorn` (tol,
        max_iter, p, ...).

    Attributes
    ----------
    eps : float
        The entropic regularisation, as a float.
    debias : bool
        Whether the loss is the divergence S_eps (True) or OT_eps (False).
    cost : str
        The ground cost.
    reduction : str
        The batch reduction.
    options : dict
        The further solver options, passed on each call.

    Raises
    ------
    TypeError
        If eps is not a real number, debias is not a bool, or reduction is not a string.
    ValueError
        If eps is not positive and finite, or reduction is not 'mean', 'sum' or 'none'.

    See Also
    --------
    sinkhorn_divergence, sinkhorn : The functions the module calls.
    monge.sinkhorn_divergence : The NumPy version.

    Examples
    --------
    >>> import torch, monge.torch as mt
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    >>> round(float(mt.SinkhornLoss(eps=0.1)(x, x + 1.0)), 6)
    2.0
    >>> xb = x.repeat(4, 1, 1)                               # a batch of 4 pairs (4, 3, 2)
    >>> mt.SinkhornLoss(eps=0.1, reduction="none")(xb, xb + 1.0).shape
    torch.Size([4])
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
        """The loss between two point clouds, optionally weighted.

        Parameters
        ----------
        *args : torch.Tensor
            ``(x, y)`` or ``(a, x, b, y)``: points x (n, d) or (B, n, d), y (m, d) or (B, m, d),
            float32 or float64, and weights a (n,) or (B, n), b (m,) or (B, m) (GeomLoss's
            argument order).

        Returns
        -------
        torch.Tensor
            A scalar for one pair; for a batch the B values reduced by `reduction` (shape (B,)
            with 'none').

        Raises
        ------
        TypeError
            If called with a number of arguments other than 2 or 4, or with inputs that are not
            float32 or float64 tensors.
        ValueError
            From the solver's checks (shapes, weights, cost).
        """
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
    """The Monge gap M(T) of samples and their images under a map, as a differentiable tensor.

    The value of :func:`monge.monge_gap` for samples x and their images tx = T(x) (see it for the
    estimator and every option), differentiable with respect to tx (and x): the regulariser of
    map fitting.  Gradients are first order only; ``torch.func.grad`` and ``torch.func.vjp``
    work.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        Samples, float32 or float64.
    tx : torch.Tensor, shape (n, d)
        Their images T(x_i); the result follows its dtype and device.
    **kwargs
        Options of :func:`monge.monge_gap` (cost, eps, relative_epsilon, debiased, tol, ...);
        `grad` is set here and may not be given.

    Returns
    -------
    torch.Tensor
        The Monge gap, a scalar.

    Raises
    ------
    TypeError
        If x or tx is not a float32 or float64 torch.Tensor, or a keyword is not an option of
        :func:`monge.monge_gap`.
    ValueError
        If x and tx are batched (3-D) or hold different numbers of points, and from
        :func:`monge.monge_gap`'s other checks.
    RuntimeError
        When the returned gradients are differentiated again.

    See Also
    --------
    monge.monge_gap : The NumPy version.

    Examples
    --------
    x -> 2x is the gradient of a convex function, an optimal map: its debiased gap is about 0.

    >>> import numpy as np, torch, monge.torch as mt
    >>> x = torch.from_numpy(np.random.default_rng(0).normal(size=(200, 2)))
    >>> tx = (2.0 * x).requires_grad_()
    >>> g = mt.monge_gap(x, tx, debiased=True); g.backward(); abs(g.item()) < 0.05, tx.grad.shape
    (True, torch.Size([200, 2]))
    """
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
    """CTC loss as a differentiable tensor, with the conventions of torch's ctc_loss.

    Same conventions and values as ``torch.nn.functional.ctc_loss`` (see :func:`monge.ctc_loss`).
    The backward returns the true gradient with respect to log_probs (-gamma), so gradients
    reaching the logits through log_softmax equal torch's.  The gradient is first order only.

    Parameters
    ----------
    log_probs : torch.Tensor, shape (T, N, C) or (T, C)
        Log-probabilities over C classes, float32 or float64, typically
        ``logits.log_softmax(-1)``; (T, C) is one unbatched sample.
    targets : torch.Tensor or array_like of int, shape (N, S_max) or (sum(target_lengths),)
        Labels in [0, C), never `blank`: padded per sample, or concatenated.
    input_lengths : torch.Tensor or array_like of int, shape (N,)
        Frames of each sample, 1 <= input_lengths <= T.
    target_lengths : torch.Tensor or array_like of int, shape (N,)
        Labels of each sample, >= 0.
    blank : int, default 0
        The blank label, < C.
    reduction : {'mean', 'sum', 'none'}
        'mean': loss_n / max(target_length_n, 1), averaged over the batch; 'sum': the sum of the
        losses; 'none': the per-sample losses.
    zero_infinity : bool, default False
        Impossible alignments (too few frames) give loss 0 instead of +inf.

    Returns
    -------
    torch.Tensor
        A scalar for 'mean' and 'sum'; shape (N,) for 'none' (a scalar for an unbatched sample).

    Raises
    ------
    TypeError
        If log_probs is not a float32 or float64 torch.Tensor, targets are not integers, or
        reduction is not a string.
    ValueError
        If reduction is unknown; if log_probs is not 2-D or 3-D, is empty, or holds NaN or +inf;
        if blank >= C; if a length is out of range or the targets' shape does not match the
        lengths; if a label is outside [0, C) or equals blank.

    See Also
    --------
    monge.ctc_loss : The NumPy version, with gradients on request.
    torch.nn.functional.ctc_loss : The reference the values match.

    Examples
    --------
    One frame, one label: the loss is -log p(label).

    >>> import torch, monge.torch as mt
    >>> log_probs = torch.tensor([[[0.4, 0.6]]], dtype=torch.float64).log()    # (T, N, C) = (1, 1, 2)
    >>> loss = mt.ctc_loss(log_probs, torch.tensor([[1]]), torch.tensor([1]), torch.tensor([1]))
    >>> round(float(loss), 6)
    0.510826
    """
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
    """Token alignment of padded embedding batches, with a distance differentiable in X and Y.

    The alignment of :func:`monge.align` (cosine cost, entropic OT or IPOT) on tensors X
    (B, n, d), Y (B, m, d) with boolean padding masks.  The distance ``D = <P, C>`` is
    differentiable with respect to X and Y with the plan P held fixed; the plan is not
    differentiable.  The gradient is first order only.

    Parameters
    ----------
    X : torch.Tensor, shape (B, n, d)
        Embeddings of the first sequences, float32 or float64 (the results follow its dtype
        and device); add a leading axis for one pair.
    Y : torch.Tensor, shape (B, m, d)
        Embeddings of the second sequences.
    mask_x : torch.Tensor or array_like of bool, shape (B, n), optional
        True for real entries, False for padding (None: all real); 0/1 integers are accepted.
    mask_y : torch.Tensor or array_like of bool, shape (B, m), optional
        The same for Y.
    method : {'sinkhorn', 'ipot'}
        Entropic OT iterated to `tol`, or IPOT's proximal point iterations (a fixed count).
    eps : float, default 0.1
        Entropic regularisation of 'sinkhorn'.
    tol : float, default 1e-6
        Marginal error at which 'sinkhorn' stops.
    max_iter : int, default 1000
        Iteration limit of 'sinkhorn'.
    beta : float, default 0.5
        IPOT's proximal parameter (its kernel is ``exp(-C / beta)``).
    outer : int, default 50
        IPOT's outer iterations.
    inner : int, default 1
        IPOT's scaling steps per outer iteration.

    Returns
    -------
    distance : torch.Tensor, shape (B,)
        ``<P, C>`` per pair, differentiable with respect to X and Y.
    plan : torch.Tensor, shape (B, n, m)
        The plans P, zero on padding, not differentiable.

    Raises
    ------
    TypeError
        If X or Y is not a torch.Tensor (or not float32/float64), a mask is not boolean or 0/1
        integers, or an option has the wrong type.
    ValueError
        If X and Y are single pairs (n, d) instead of a batch; if their embedding dimensions or
        batch sizes differ; if a mask has the wrong shape, values other than 0 and 1, or a pair
        without a valid entry; if a real vector is zero (the cosine cost is undefined); if method
        is unknown or an option is out of range.

    Warns
    -----
    ConvergenceWarning
        When Sinkhorn stops at max_iter before reaching tol for some pair.

    See Also
    --------
    monge.align : The NumPy version, with the cost and the methods described.

    Examples
    --------
    >>> import torch, monge.torch as mt
    >>> X = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    >>> Y = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]], dtype=torch.float64)
    >>> D, P = mt.align(X, Y, mask_y=torch.tensor([[True, True, False]]))
    >>> D.sum().backward(); D.shape, P.shape, round(float(P.sum()), 6), X.grad.shape
    (torch.Size([1]), torch.Size([1, 2, 3]), 1.0, torch.Size([1, 2, 2]))
    """
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
