"""Small neural networks and optimizers in NumPy, for fitting transport maps without a framework.

A map T is fitted by minimising ``fitting_loss(T(x), y) + lambda * MongeGap(T)``.  monge's losses
return gradients with respect to the mapped points T(x); hand that (batch, d) array to
:meth:`MLP.backward` to get the parameter gradients, then to an optimizer::

    import numpy as np, monge
    from monge.maps import nn

    T = nn.MLP(2, hidden=(64, 64), residual=True)        # T(x) = x + MLP(x), starts near identity
    opt = nn.Adam(T.params, lr=1e-3)
    sched = nn.make_schedule("cosine", 1e-3, total_steps=2000, warmup_steps=100)
    for step in range(2000):
        tx = T.forward(x)                                # caches what backward needs
        g = monge.monge_gap(x, tx, grad=True)
        grads, _ = T.backward(lam * g.grad_tx + dfit_dtx)
        grads, _ = nn.clip_grad_norm(grads, 10.0)
        opt.lr = sched(step)
        opt.step(grads)                                  # updates T.params in place

Conventions
    * Layers compute ``h @ W + b`` with W of shape (fan_in, fan_out) (the transpose of
      ``torch.nn.Linear.weight``); ``MLP.params`` is ``[W1, b1, ..., WL, bL]``.
    * Optimizers keep references to the parameter arrays and update them in place; the MLP never
      rebinds its arrays (``set_flat`` / ``from_arrays`` copy into them).
    * float64 by default; float32 models compute in float32 (inputs are cast to the model dtype).
    * Adam / AdamW / SGD follow ``torch.optim`` step for step (same formulas, same order).
"""
from __future__ import annotations

import json
import math
import numbers

import numpy as np

__all__ = ["erf", "erfc", "Activation", "activation", "ACTIVATIONS", "MLP", "AffineMLP",
           "Optimizer", "Adam", "AdamW", "SGD", "clip_grad_norm",
           "constant", "cosine", "warmup", "make_schedule"]

_FLOATS = (np.float32, np.float64)

# ----------------------------------------------------------------------------- validation helpers


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return v


def _nonneg(name, value):
    v = _real(name, value)
    if v < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return v


def _integer(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return v


def _dtype(value):
    try:
        dt = np.dtype(value)
    except TypeError as exc:
        raise TypeError(f"dtype: expected float32 or float64, got {value!r}") from exc
    if dt not in _FLOATS:
        raise ValueError(f"dtype: expected float32 or float64, got {dt}")
    return dt.type


def _array(name, value, dtype=None):
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        raise TypeError(f"{name}: got a torch tensor; pass .detach().numpy()")
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype not in _FLOATS:
        arr = arr.astype(np.float64)
    return arr


def _finite(name, arr):
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")


# ----------------------------------------------------------------------------- erf / erfc
#
# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23 (1969)
# 631-637: three rational approximations, of erf on |x| <= 0.5 and of erfc on [0.5, 4] and
# [4, inf), each with relative error below 1e-17 in exact arithmetic.  exp(-x^2) is evaluated as
# exp(-s^2) exp(-(x - s)(x + s)) with s = x rounded down to a multiple of 1/16, so the rounding
# error of x^2 is not amplified for large x.

_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 0.56418958354775628695
_ERF_SMALL = 0.46875     # switch between the erf and erfc approximations
_ERFC_HUGE = 27.5        # erfc(x) underflows to 0 in float64 beyond about 26.6


def _erf_small(x):
    """erf(x) for ``|x|`` <= 0.46875."""
    z = x * x
    num = _ERF_A[4] * z
    den = z
    for i in range(3):
        num = (num + _ERF_A[i]) * z
        den = (den + _ERF_B[i]) * z
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _exp_neg_sq(y):
    s = np.floor(y * 16.0) / 16.0
    return np.exp(-s * s) * np.exp(-(y - s) * (y + s))


def _erfc_mid(y):
    """erfc(y) for 0.46875 < y <= 4."""
    num = _ERF_C[8] * y
    den = y
    for i in range(7):
        num = (num + _ERF_C[i]) * y
        den = (den + _ERF_D[i]) * y
    return _exp_neg_sq(y) * ((num + _ERF_C[7]) / (den + _ERF_D[7]))


def _erfc_large(y):
    """erfc(y) for y > 4 (y already clipped to a finite range)."""
    z = 1.0 / (y * y)
    num = _ERF_P[5] * z
    den = z
    for i in range(4):
        num = (num + _ERF_P[i]) * z
        den = (den + _ERF_Q[i]) * z
    r = z * (num + _ERF_P[4]) / (den + _ERF_Q[4])
    return _exp_neg_sq(y) * ((_INV_SQRT_PI - r) / y)


def _erf_parts(x):
    """(small, e) with small the mask ``|x|`` <= 0.46875, e = erf(x) there and erfc(``|x|``) elsewhere."""
    ax = np.abs(x)
    small = ax <= _ERF_SMALL
    e = np.empty_like(x)
    e[small] = _erf_small(x[small])
    mid = ~small & (ax <= 4.0)
    e[mid] = _erfc_mid(ax[mid])
    big = ax > 4.0
    if big.any():
        e[big] = _erfc_large(np.minimum(ax[big], _ERFC_HUGE))
    return small, e


def _float_input(x):
    arr = np.asarray(x)
    if arr.dtype not in _FLOATS:
        arr = _array("x", arr)
    return arr


def erf(x):
    """Error function, elementwise, in NumPy alone (no SciPy).

    Uses W. J. Cody's rational Chebyshev approximations [1]_ and keeps the floating dtype of the
    input: float32 stays float32; in float64 the relative error is about 1e-16.

    Parameters
    ----------
    x : array_like
        Real input of any shape.  float32 and float64 arrays keep their dtype; integers and
        booleans are converted to float64.

    Returns
    -------
    ndarray
        erf(x), of the shape of `x` (0-d for a scalar); NaN where `x` is NaN.

    Raises
    ------
    TypeError
        If `x` is not a real numeric array (object, complex or string dtype).

    See Also
    --------
    erfc : The complement 1 - erf(x), accurate in the tails.

    References
    ----------
    .. [1] W. J. Cody, "Rational Chebyshev approximations for the error function",
       Mathematics of Computation 23 (1969), 631-637.

    Examples
    --------
    >>> from monge.maps import nn
    >>> nn.erf([0.0, 0.5, -1.0]).round(6).tolist()
    [0.0, 0.5205, -0.842701]
    """
    x = _float_input(x)
    shape = x.shape
    x = np.atleast_1d(x)
    small, e = _erf_parts(x)
    out = np.where(small, e, np.copysign(1.0 - e, x)).astype(x.dtype, copy=False)
    out[np.isnan(x)] = np.nan
    return out.reshape(shape)


def erfc(x):
    """Complementary error function 1 - erf(x), elementwise, accurate in the tails.

    Computed directly from W. J. Cody's approximations [1]_ rather than as 1 - erf(x), so that
    large positive `x` keeps full relative accuracy until the result underflows (about x = 26.6
    in float64).  The floating dtype of the input is kept.

    Parameters
    ----------
    x : array_like
        Real input of any shape.  float32 and float64 arrays keep their dtype; integers and
        booleans are converted to float64.

    Returns
    -------
    ndarray
        erfc(x), of the shape of `x` (0-d for a scalar); NaN where `x` is NaN.

    Raises
    ------
    TypeError
        If `x` is not a real numeric array (object, complex or string dtype).

    See Also
    --------
    erf : The error function itself.

    References
    ----------
    .. [1] W. J. Cody, "Rational Chebyshev approximations for the error function",
       Mathematics of Computation 23 (1969), 631-637.

    Examples
    --------
    >>> from monge.maps import nn
    >>> nn.erfc([-1.0, 0.0, 1.0]).round(6).tolist()
    [1.842701, 1.0, 0.157299]
    >>> print(f"{float(nn.erfc(10.0)):.6e}")     # 1 - erf(10.0) would give 0.0
    2.088488e-45
    """
    x = _float_input(x)
    shape = x.shape
    x = np.atleast_1d(x)
    small, e = _erf_parts(x)
    out = np.where(small, 1.0 - e, np.where(x < 0, 2.0 - e, e)).astype(x.dtype, copy=False)
    out[np.isnan(x)] = np.nan
    return out.reshape(shape)


def _norm_cdf(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2."""
    return 0.5 * erfc(x * -np.sqrt(0.5).astype(x.dtype))


# Abramowitz & Stegun 7.1.26: erfc(u) = t P(t) exp(-u^2), t = 1 / (1 + p u), u >= 0, absolute
# error <= 1.5e-7, the resolution of float32.
_AS_P = 0.3275911
_AS_A = (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)


def _norm_cdf_f32(x):
    """Phi(x) for float32 x: one exp and no masks, ~4x faster than the float64-exact path."""
    f = np.float32
    u = np.abs(x) * f(math.sqrt(0.5))
    t = f(1.0) / (f(1.0) + f(_AS_P) * u)
    poly = f(_AS_A[0])
    for a in _AS_A[1:]:
        poly = poly * t + f(a)
    half_erfc = f(0.5) * t * poly * np.exp(-u * u)
    return np.where(x >= 0, f(1.0) - half_erfc, half_erfc)


# ----------------------------------------------------------------------------- activations


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    return np.where(x >= 0, r, e * r)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Activation:
    """An elementwise nonlinearity with its exact derivative.

    ``act(x)`` is the value and ``act.derivative(x)`` the derivative, both elementwise and in the
    floating dtype of `x` (other real dtypes are converted to float64).  At the kink x = 0 of
    relu and leaky_relu the derivative is the left one, as in PyTorch.  The usual way to build
    one is :func:`activation`; :class:`MLP` applies it after every hidden layer.

    gelu is the exact form x Phi(x), Phi the standard normal CDF [1]_.  In float64 Phi comes from
    :func:`erfc`; in float32 from the Abramowitz & Stegun formula 7.1.26 [2]_ (absolute error
    at most 1.5e-7, the resolution of float32, with a single exponential).  silu is
    x sigmoid(x).

    Parameters
    ----------
    name : {'relu', 'leaky_relu', 'gelu', 'silu', 'tanh', 'identity'}
        The nonlinearity: one of :data:`ACTIVATIONS`.
    negative_slope : float, default 0.01
        Slope of 'leaky_relu' for x < 0 (kept, and unused, for the other names).

    Attributes
    ----------
    name : str
        The name given.
    negative_slope : float
        The slope given, as a float.

    Raises
    ------
    TypeError
        If `name` is not a string or `negative_slope` is not a real number (bool included);
        calling the activation or its derivative on a non-real array (object, complex, string).
    ValueError
        If `name` is not one of :data:`ACTIVATIONS` or `negative_slope` is NaN or infinite.

    See Also
    --------
    activation : Builds an Activation from its name.
    MLP : The network that uses it.

    References
    ----------
    .. [1] D. Hendrycks and K. Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415
       (2016).
    .. [2] M. Abramowitz and I. A. Stegun, "Handbook of Mathematical Functions", National Bureau
       of Standards (1964), formula 7.1.26.

    Examples
    --------
    >>> from monge.maps import nn
    >>> act = nn.Activation("leaky_relu", negative_slope=0.1)
    >>> act([-2.0, 0.0, 3.0]).tolist(), act.derivative([-2.0, 0.0, 3.0]).tolist()
    ([-0.2, 0.0, 3.0], [0.1, 0.1, 1.0])
    """

    def __init__(self, name, negative_slope=0.01):
        if not isinstance(name, str):
            raise TypeError(f"activation: expected a string, got {type(name).__name__}")
        if name not in ACTIVATIONS:
            raise ValueError(f"activation: unknown value {name!r}; expected one of "
                             f"{', '.join(ACTIVATIONS)}")
        self.name = name
        self.negative_slope = _real("negative_slope", negative_slope)

    def __repr__(self):
        extra = f", negative_slope={self.negative_slope}" if self.name == "leaky_relu" else ""
        return f"Activation({self.name!r}{extra})"

    # forward returning an auxiliary array that makes the derivative cheap
    def _forward(self, z):
        n = self.name
        if n == "relu":
            return np.maximum(z, 0), None
        if n == "leaky_relu":
            return np.where(z > 0, z, z * z.dtype.type(self.negative_slope)), None
        if n == "gelu":
            cdf = _norm_cdf_f32(z) if z.dtype == np.float32 else _norm_cdf(z)
            return z * cdf, cdf
        if n == "silu":
            s = _sigmoid(z)
            return z * s, s
        if n == "tanh":
            t = np.tanh(z)
            return t, t
        return z, None  # identity

    def _derivative(self, z, aux):
        n = self.name
        one = z.dtype.type(1)
        if n == "relu":
            return (z > 0).astype(z.dtype)
        if n == "leaky_relu":
            return np.where(z > 0, one, z.dtype.type(self.negative_slope))
        if n == "gelu":
            return aux + z * (np.exp(-0.5 * z * z) * z.dtype.type(_INV_SQRT_2PI))
        if n == "silu":
            return aux * (one + z * (one - aux))
        if n == "tanh":
            return one - aux * aux
        return np.ones_like(z)

    def __call__(self, x):
        x = _float_input(x)
        return self._forward(x)[0]

    def derivative(self, x):
        x = _float_input(x)
        return self._derivative(x, self._forward(x)[1])


#: Names of the nonlinearities that :func:`activation`, :class:`Activation` and :class:`MLP`
#: accept: ``('relu', 'leaky_relu', 'gelu', 'silu', 'tanh', 'identity')``.
ACTIVATIONS = ("relu", "leaky_relu", "gelu", "silu", "tanh", "identity")


def activation(name, negative_slope=0.01):
    """The activation called `name`, with its exact derivative.

    Shorthand for ``Activation(name, negative_slope)``.  gelu is the exact form x Phi(x)
    (Phi the standard normal CDF), not the tanh approximation.

    Parameters
    ----------
    name : {'relu', 'leaky_relu', 'gelu', 'silu', 'tanh', 'identity'}
        One of :data:`ACTIVATIONS`.
    negative_slope : float, default 0.01
        Slope of 'leaky_relu' for x < 0 (unused by the other names).

    Returns
    -------
    Activation
        Callable elementwise: ``act(x)`` is the value, ``act.derivative(x)`` the derivative.

    Raises
    ------
    TypeError
        If `name` is not a string or `negative_slope` is not a real number.
    ValueError
        If `name` is not one of :data:`ACTIVATIONS` or `negative_slope` is NaN or infinite.

    See Also
    --------
    Activation : The class returned, with the details of each nonlinearity.

    Examples
    --------
    >>> from monge.maps import nn
    >>> gelu = nn.activation("gelu")
    >>> gelu([-1.0, 0.0, 1.0]).round(6).tolist(), gelu.derivative([0.0]).tolist()
    ([-0.158655, 0.0, 0.841345], [0.5])
    """
    return Activation(name, negative_slope)


# ----------------------------------------------------------------------------- MLP

_INITS = ("he", "xavier", "zeros_last")


class MLP:
    """Multi-layer perceptron in NumPy, with a hand-written backward pass.

    The map is::

        x -> A_L(s(A_{L-1}(... s(A_1 x)))),   A_l(h) = h @ W_l + b_l,

    s the activation, W_l of shape (fan_in, fan_out) (the transpose of ``torch.nn.Linear.weight``);
    with ``residual=True`` it is T(x) = x + MLP(x).  ``forward(x)`` caches the activations for
    ``backward(grad_y)``; ``mlp(x)`` is the same map without caching (inference).  x is
    (batch, in_dim) or a single (in_dim,) point; it is cast to the model's dtype.

    Parameters
    ----------
    in_dim : int
        Input width (>= 1).
    hidden : int or sequence of int, default (64, 64)
        Widths of the hidden layers (an int means one hidden layer; ``()`` gives an affine map).
    out_dim : int, optional
        Output width; defaults to `in_dim`.
    activation : str or Activation, default 'gelu'
        A name in :data:`ACTIVATIONS`, or an :class:`Activation`, applied after every hidden
        layer.
    residual : bool, default False
        T(x) = x + MLP(x); needs ``out_dim == in_dim``.
    seed : int or None, default 0
        Seed of ``np.random.default_rng`` for the initial weights (None: fresh entropy).
    dtype : {np.float64, np.float32}, default np.float64
        Dtype of the parameters and of the computation.
    init : {'he', 'xavier', 'zeros_last'}, default 'he'
        'he': W ~ N(0, 2/fan_in) [1]_; 'xavier': W ~ N(0, 2/(fan_in + fan_out)) [2]_;
        'zeros_last': He for the hidden layers and the last layer exactly zero, so a residual
        map starts as the identity and a plain one as the zero map.  Biases start at zero.
    last_scale : float, optional
        Factor applied to the initial last-layer weights.  Default: 1e-3 for residual maps (T
        starts within ~1e-3 of the identity, yet every layer receives gradient at the first
        step), 1 otherwise.  ``init='zeros_last'`` overrides it with 0.
    negative_slope : float, default 0.01
        Slope of 'leaky_relu' for x < 0 (ignored when `activation` is an Activation).

    Attributes
    ----------
    params : list of ndarray
        ``[W1, b1, ..., WL, bL]``, updated in place by the optimizers and never rebound
        (``set_flat`` and ``from_arrays`` copy into these arrays).
    param_names : list of str
        ``['W1', 'b1', ..., 'WL', 'bL']``, the keys of :meth:`to_arrays`.
    n_layers : int
        Number of affine layers, ``len(hidden) + 1``.
    n_params : int
        Total number of scalar parameters.
    config : dict
        JSON-serialisable constructor arguments, defaults resolved.
    in_dim, out_dim, hidden, activation, residual, seed, dtype, init, last_scale
        The constructor arguments after validation (`hidden` a tuple, `activation` an
        :class:`Activation`, `last_scale` with its default resolved).

    Raises
    ------
    TypeError
        If `in_dim`, `out_dim`, `seed` or a hidden width is not an integer (bool included),
        `hidden` is not a sequence, `activation` or `init` is neither a string nor (for
        `activation`) an Activation, `residual` is not a bool, `dtype` is not a dtype, or
        `last_scale` or `negative_slope` is not a real number.
    ValueError
        If a width is < 1, `seed` is < 0, `activation` or `init` is an unknown name, `dtype` is
        not float32 or float64, ``residual=True`` with ``out_dim != in_dim``, `last_scale` is
        negative or not finite, or `negative_slope` is not finite.

    See Also
    --------
    AffineMLP : An affine map plus a standardised MLP correction.
    Adam, SGD : Optimizers that update ``params`` in place.
    monge.maps.MongeGapMap : The estimator that trains these networks.

    Notes
    -----
    :meth:`backward` returns ``(grads, grad_x)``, ``grads`` matching ``params``; it raises
    RuntimeError when called before :meth:`forward`.  :meth:`forward`, :meth:`backward` and
    the call raise ValueError for inputs of the wrong shape, empty batches, or NaN and infinite
    values, and TypeError for non-real inputs and torch tensors.  ``np.savez(path,
    **mlp.to_arrays())`` and :meth:`from_arrays` round-trip a model without pickle (:meth:`save`,
    :meth:`load`).

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving Deep into Rectifiers: Surpassing
       Human-Level Performance on ImageNet Classification", ICCV 2015.
    .. [2] X. Glorot and Y. Bengio, "Understanding the difficulty of training deep feedforward
       neural networks", AISTATS 2010.

    Examples
    --------
    >>> from monge.maps import nn
    >>> T = nn.MLP(2, hidden=(8,), residual=True)
    >>> T.param_names, T.n_params
    (['W1', 'b1', 'W2', 'b2'], 42)
    >>> T([[1.0, -1.0]]).round(2).tolist()       # starts within ~1e-3 of the identity
    [[1.0, -1.0]]
    """

    def __init__(self, in_dim, hidden=(64, 64), out_dim=None, activation="gelu", residual=False,
                 seed=0, dtype=np.float64, init="he", last_scale=None, negative_slope=0.01):
        self.in_dim = _integer("in_dim", in_dim, 1)
        self.out_dim = self.in_dim if out_dim is None else _integer("out_dim", out_dim, 1)
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = (hidden,)
        try:
            hidden = tuple(hidden)
        except TypeError:
            raise TypeError(f"hidden: expected a sequence of integers, got "
                            f"{type(hidden).__name__}") from None
        self.hidden = tuple(_integer(f"hidden[{i}]", h, 1) for i, h in enumerate(hidden))
        if isinstance(activation, Activation):
            self.activation = activation
        else:
            self.activation = Activation(activation, negative_slope)
        if not isinstance(residual, (bool, np.bool_)):
            raise TypeError(f"residual: expected a bool, got {type(residual).__name__}")
        self.residual = bool(residual)
        if self.residual and self.out_dim != self.in_dim:
            raise ValueError(f"out_dim: a residual map needs out_dim == in_dim, got "
                             f"out_dim={self.out_dim}, in_dim={self.in_dim}")
        self.seed = None if seed is None else _integer("seed", seed, 0)
        self.dtype = _dtype(dtype)
        if not isinstance(init, str):
            raise TypeError(f"init: expected a string, got {type(init).__name__}")
        if init not in _INITS:
            raise ValueError(f"init: unknown value {init!r}; expected one of {', '.join(_INITS)}")
        self.init = init
        if last_scale is None:
            last_scale = 1e-3 if self.residual else 1.0
        self.last_scale = _nonneg("last_scale", last_scale)

        sizes = (self.in_dim,) + self.hidden + (self.out_dim,)
        rng = np.random.default_rng(self.seed)
        self.params = []
        n_layers = len(sizes) - 1
        for layer in range(n_layers):
            fan_in, fan_out = sizes[layer], sizes[layer + 1]
            if init == "xavier":
                std = math.sqrt(2.0 / (fan_in + fan_out))
            else:
                std = math.sqrt(2.0 / fan_in)
            w = rng.standard_normal((fan_in, fan_out)) * std
            if layer == n_layers - 1:
                w *= 0.0 if init == "zeros_last" else self.last_scale
            self.params.append(np.ascontiguousarray(w, dtype=self.dtype))
            self.params.append(np.zeros(fan_out, dtype=self.dtype))
        self._cache = None

    # ------------------------------------------------------------------ bookkeeping
    @property
    def n_layers(self):
        return len(self.params) // 2

    @property
    def param_names(self):
        return [f"{k}{i}" for i in range(1, self.n_layers + 1) for k in ("W", "b")]

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params))

    @property
    def config(self):
        """JSON-serialisable constructor arguments (with the resolved defaults)."""
        return {"in_dim": self.in_dim, "hidden": list(self.hidden), "out_dim": self.out_dim,
                "activation": self.activation.name,
                "negative_slope": self.activation.negative_slope, "residual": self.residual,
                "seed": self.seed, "dtype": np.dtype(self.dtype).name, "init": self.init,
                "last_scale": self.last_scale}

    def __repr__(self):
        c = self.config
        return (f"MLP({c['in_dim']}, hidden={tuple(c['hidden'])}, out_dim={c['out_dim']}, "
                f"activation={c['activation']!r}, residual={c['residual']}, dtype={c['dtype']})")

    def get_flat(self):
        """All parameters concatenated into one new 1-D array (order of ``params``)."""
        return np.concatenate([p.ravel() for p in self.params])

    def set_flat(self, flat):
        """Copy a 1-D array of length n_params into the parameters (in place)."""
        flat = _array("flat", flat)
        if flat.ndim != 1 or flat.size != self.n_params:
            raise ValueError(f"flat: expected shape ({self.n_params},), got {flat.shape}")
        _finite("flat", flat)
        i = 0
        for p in self.params:
            p[...] = flat[i:i + p.size].reshape(p.shape)
            i += p.size

    def to_arrays(self):
        """Parameters as {'W1': ..., 'b1': ..., ...} plus '__config__' (a JSON string as a 0-d str
        array), so ``np.savez(path, **mlp.to_arrays())`` and ``np.load(path, allow_pickle=False)``
        round-trip.  Arrays are copies."""
        out = {name: p.copy() for name, p in zip(self.param_names, self.params)}
        out["__config__"] = np.array(json.dumps(self.config))
        return out

    @classmethod
    def from_arrays(cls, arrays, config=None):
        """Rebuild an MLP from :meth:`to_arrays` output (a dict or an ``np.load`` NpzFile).

        ``config`` (a dict) overrides the '__config__' entry."""
        if config is None:
            if "__config__" not in arrays:
                raise ValueError("arrays: missing '__config__' (pass config=)")
            raw = np.asarray(arrays["__config__"])
            if raw.dtype.kind not in "US" or raw.ndim != 0:
                raise TypeError("arrays: '__config__' must be a 0-d string array")
            config = json.loads(str(raw[()]))
        if not isinstance(config, dict):
            raise TypeError(f"config: expected a dict, got {type(config).__name__}")
        config = dict(config)
        config["hidden"] = tuple(config.get("hidden", ()))
        try:
            model = cls(**config)
        except TypeError as exc:
            if "unexpected keyword" in str(exc):
                raise TypeError(f"config: {exc}") from None
            raise
        for name, p in zip(model.param_names, model.params):
            if name not in arrays:
                raise ValueError(f"arrays: missing {name!r}")
            a = _array(name, arrays[name])
            if a.shape != p.shape:
                raise ValueError(f"{name}: expected shape {p.shape}, got {a.shape}")
            _finite(name, a)
            p[...] = a
        return model

    def save(self, path):
        """``np.savez(path, **self.to_arrays())``."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path):
        """Load a map written by :meth:`save` (no pickle)."""
        with np.load(path, allow_pickle=False) as data:
            return cls.from_arrays(data)

    # ------------------------------------------------------------------ computation
    def _input(self, x):
        x = _array("x", x, self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(f"x: expected shape (batch, {self.in_dim}) or ({self.in_dim},), "
                             f"got {x.shape}")
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"x: last dimension must be in_dim={self.in_dim}, got shape "
                             f"{x.shape}")
        if x.ndim == 2 and x.shape[0] == 0:
            raise ValueError(f"x: empty batch (shape {x.shape})")
        _finite("x", x)
        return x

    def _run(self, x2, cache):
        act = self.activation
        h = x2
        inputs, pre, aux = [], [], []
        last = self.n_layers - 1
        for layer in range(self.n_layers):
            w, b = self.params[2 * layer], self.params[2 * layer + 1]
            z = h @ w
            z += b
            if cache:
                inputs.append(h)
            if layer == last:
                h = z
                break
            h, a = act._forward(z)
            if cache:
                pre.append(z)
                aux.append(a)
        if self.residual:
            h = h + x2
        return h, (inputs, pre, aux)

    def forward(self, x):
        """T(x), caching the intermediate activations for :meth:`backward`.

        x itself is cached by reference (no copy when its dtype is the model's): do not modify
        it in place between forward and backward."""
        x = self._input(x)
        single = x.ndim == 1
        y, (inputs, pre, aux) = self._run(x.reshape(1, -1) if single else x, cache=True)
        self._cache = (single, inputs, pre, aux, y.shape)
        return y[0] if single else y

    def __call__(self, x):
        """T(x) without caching (inference)."""
        x = self._input(x)
        single = x.ndim == 1
        y, _ = self._run(x.reshape(1, -1) if single else x, cache=False)
        return y[0] if single else y

    def backward(self, grad_y):
        """Back-propagate dL/dT(x) (same shape as the last ``forward`` output).

        Returns ``(grads, grad_x)``: ``grads`` matches ``params`` (dL/dW1, dL/db1, ...),
        ``grad_x`` is dL/dx through T only.  The cache is kept, so backward may be called again
        (e.g. with another loss gradient) until the next ``forward``."""
        if self._cache is None:
            raise RuntimeError("backward: call forward(x) first")
        single, inputs, pre, aux, shape = self._cache
        g = _array("grad_y", grad_y, self.dtype)
        want = shape[1:] if single else shape
        if g.shape != want:
            raise ValueError(f"grad_y: expected shape {want} (the forward output), got {g.shape}")
        _finite("grad_y", g)
        if single:
            g = g.reshape(1, -1)
        grads = [None] * len(self.params)
        delta = g
        act = self.activation
        for layer in range(self.n_layers - 1, -1, -1):
            w = self.params[2 * layer]
            grads[2 * layer] = inputs[layer].T @ delta
            grads[2 * layer + 1] = delta.sum(axis=0)
            delta = delta @ w.T
            if layer > 0:
                delta *= act._derivative(pre[layer - 1], aux[layer - 1])
        if self.residual:
            delta = delta + g
        return grads, (delta[0] if single else delta)


class AffineMLP:
    """An affine map plus an MLP correction on standardised inputs.

    The map is::

        T(x) = A x + b + s_out * MLP((x - m_in) * s_in).

    The affine part (``At`` = A^T of shape (d, d), and ``b``) is trainable and usually starts at a
    closed-form map (the Bures map between Gaussian approximations, or the identity); the MLP's
    input is standardised by the fixed ``m_in``, ``s_in`` and its output scaled by the fixed
    ``s_out`` (per coordinate), so that its He initialisation and learning rate see unit-scale
    data whatever the units of x.  Its last layer starts at ``last_scale`` x He (1e-3), so T starts
    within ~1e-3 x s_out of the affine map.  ``affine=False`` drops A and b: T = s_out * MLP(.).
    A new AffineMLP is the identity plus the small MLP term (A = I, b = 0, m_in = 0, s_in = s_out
    = 1); :meth:`set_affine` sets these values.

    Parameters
    ----------
    in_dim : int
        Dimension d of the inputs and outputs.
    hidden : int or sequence of int, default (64, 64)
        Widths of the MLP's hidden layers.
    activation : str or Activation, default 'gelu'
        Nonlinearity of the MLP (a name in :data:`ACTIVATIONS`).
    affine : bool, default True
        Keep the trainable affine part A x + b.
    seed : int or None, default 0
        Seed of the MLP's initial weights.
    dtype : {np.float64, np.float32}, default np.float64
        Dtype of every array and of the computation.
    last_scale : float, default 1e-3
        Factor applied to the initial last-layer weights of the MLP.

    Attributes
    ----------
    params : list of ndarray
        ``[At, b, W1, b1, ...]`` (the MLP's alone when ``affine=False``), updated in place by
        optimizers.
    n_params : int
        Total number of trainable scalars.
    mlp : MLP
        The correction network (not residual).
    At : ndarray, shape (d, d)
        A^T, trainable.
    b : ndarray, shape (d,)
        Offset, trainable.
    m_in, s_in, s_out : ndarray, shape (d,)
        Fixed input shift, input scale and output scale.
    in_dim, dtype, affine
        The constructor arguments after validation.

    Raises
    ------
    TypeError
        If `affine` is not a bool, or an argument passed on to :class:`MLP` has the wrong type.
    ValueError
        If an argument passed on to :class:`MLP` has a bad value (see there).

    See Also
    --------
    MLP : The correction network, and the errors its arguments raise.
    monge.maps.bures_map : The closed-form affine map the affine part usually starts from.
    monge.maps.MongeGapMap : The estimator that trains this model.

    Notes
    -----
    :meth:`backward` returns ``(grads, grad_x)`` for dL/dT(x) of the last :meth:`forward`,
    ``grads`` matching ``params``; it raises RuntimeError when called before :meth:`forward`.
    :meth:`to_arrays` and :meth:`from_arrays` round-trip the model (MLP keys under ``'mlp/'``).

    Examples
    --------
    >>> from monge.maps import nn
    >>> T = nn.AffineMLP(2, hidden=(8,))
    >>> T.set_affine(A=[[2.0, 0.0], [0.0, 1.0]], b=[1.0, 0.0])
    >>> T([[1.0, 1.0]]).round(2).tolist(), T.n_params
    ([[3.0, 1.0]], 48)
    """

    def __init__(self, in_dim, hidden=(64, 64), activation="gelu", affine=True, seed=0,
                 dtype=np.float64, last_scale=1e-3):
        self.mlp = MLP(in_dim, hidden=hidden, activation=activation, residual=False, seed=seed,
                       dtype=dtype, last_scale=last_scale)
        self.in_dim = self.mlp.in_dim
        self.dtype = self.mlp.dtype
        if not isinstance(affine, (bool, np.bool_)):
            raise TypeError(f"affine: expected a bool, got {type(affine).__name__}")
        self.affine = bool(affine)
        d = self.in_dim
        self.At = np.eye(d, dtype=self.dtype)
        self.b = np.zeros(d, dtype=self.dtype)
        self.m_in = np.zeros(d, dtype=self.dtype)
        self.s_in = np.ones(d, dtype=self.dtype)
        self.s_out = np.ones(d, dtype=self.dtype)
        self._x = None

    @property
    def params(self):
        return ([self.At, self.b] if self.affine else []) + self.mlp.params

    @property
    def n_params(self):
        return int(sum(p.size for p in self.params))

    _FIXED = ("At", "b", "m_in", "s_in", "s_out")

    def set_affine(self, A=None, b=None, m_in=None, s_in=None, s_out=None):
        """Copy values into the affine part and the fixed scalings (in place)."""
        d = self.in_dim
        for name, value, shape in (("A", A, (d, d)), ("b", b, (d,)), ("m_in", m_in, (d,)),
                                   ("s_in", s_in, (d,)), ("s_out", s_out, (d,))):
            if value is None:
                continue
            v = _array(name, value)
            if v.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {v.shape}")
            _finite(name, v)
            target = {"A": self.At, "b": self.b, "m_in": self.m_in, "s_in": self.s_in,
                      "s_out": self.s_out}[name]
            target[...] = v.T if name == "A" else v

    def to_arrays(self):
        out = {f"mlp/{k}": v for k, v in self.mlp.to_arrays().items()}
        for k in self._FIXED:
            out[k] = getattr(self, k).copy()
        out["affine"] = np.array(self.affine)
        return out

    @classmethod
    def from_arrays(cls, arrays):
        mlp = MLP.from_arrays({k[4:]: v for k, v in arrays.items() if k.startswith("mlp/")})
        if "affine" not in arrays:
            raise ValueError("arrays: missing 'affine'")
        affine = np.asarray(arrays["affine"])
        if affine.dtype != np.bool_ or affine.ndim != 0:
            raise TypeError("affine: expected a 0-d bool array")
        model = cls(mlp.in_dim, hidden=mlp.hidden, activation=mlp.activation, affine=bool(affine),
                    seed=None, dtype=mlp.dtype, last_scale=mlp.last_scale)
        for p, q in zip(model.mlp.params, mlp.params):
            p[...] = q
        d = model.in_dim
        for k in cls._FIXED:
            if k not in arrays:
                raise ValueError(f"arrays: missing {k!r}")
            v = _array(k, arrays[k])
            want = (d, d) if k == "At" else (d,)
            if v.shape != want:
                raise ValueError(f"{k}: expected shape {want}, got {v.shape}")
            _finite(k, v)
            getattr(model, k)[...] = v
        return model

    def _run(self, x, cache):
        z = (x - self.m_in) * self.s_in
        h = self.mlp.forward(z) if cache else self.mlp(z)
        y = h * self.s_out
        if self.affine:
            y += x @ self.At
            y += self.b
        return y

    def forward(self, x):
        """T(x), caching what :meth:`backward` needs."""
        x = self.mlp._input(x)
        self._x = x.reshape(1, -1) if x.ndim == 1 else x
        y = self._run(self._x, cache=True)
        return y[0] if x.ndim == 1 else y

    def __call__(self, x):
        x = self.mlp._input(x)
        y = self._run(x.reshape(1, -1) if x.ndim == 1 else x, cache=False)
        return y[0] if x.ndim == 1 else y

    def backward(self, grad_y):
        """``(grads, grad_x)`` for dL/dT(x) of the last forward; grads match ``params``."""
        if self._x is None:
            raise RuntimeError("backward: call forward(x) first")
        g = _array("grad_y", grad_y, self.dtype)
        single = g.ndim == 1
        g2 = g.reshape(1, -1) if single else g
        mlp_grads, gz = self.mlp.backward((g2 * self.s_out)[0] if single else g2 * self.s_out)
        gx = (gz.reshape(g2.shape) if single else gz) * self.s_in
        grads = list(mlp_grads)
        if self.affine:
            grads = [self._x.T @ g2, g2.sum(axis=0)] + grads
            gx = gx + g2 @ self.At.T
        return grads, (gx[0] if single else gx)


# ----------------------------------------------------------------------------- optimizers


def _param_list(params):
    if isinstance(params, np.ndarray):
        raise TypeError("params: expected a list of arrays (e.g. mlp.params), got one array")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"params: expected a list of arrays, got {type(params).__name__}") from None
    if not params:
        raise ValueError("params: empty list")
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or p.dtype not in _FLOATS:
            raise TypeError(f"params[{i}]: expected a float32/float64 ndarray, got "
                            f"{type(p).__name__}")
        if not p.flags.writeable:
            raise ValueError(f"params[{i}]: array is read-only")
    return params


def _check_grads(params, grads):
    if isinstance(grads, np.ndarray):
        raise TypeError("grads: expected a list of arrays, got one array")
    grads = list(grads)
    if len(grads) != len(params):
        raise ValueError(f"grads: expected {len(params)} arrays (one per parameter), got "
                         f"{len(grads)}")
    out = []
    for i, (p, g) in enumerate(zip(params, grads)):
        g = _array(f"grads[{i}]", g, p.dtype)
        if g.shape != p.shape:
            raise ValueError(f"grads[{i}]: expected shape {p.shape}, got {g.shape}")
        _finite(f"grads[{i}]", g)
        out.append(g)
    return out


class Optimizer:
    """Base class of the optimizers: parameters updated in place, one step at a time.

    ``step(grads)`` checks the gradients (one array per parameter, same shapes, finite), adds 1
    to ``t`` and applies the subclass's update to the arrays of ``params`` in place.  ``lr`` may
    be changed between steps (by a schedule, for instance).

    Parameters
    ----------
    params : list of ndarray
        The arrays to update (e.g. ``mlp.params``): writeable float32 or float64 arrays, kept by
        reference.
    lr : float
        Learning rate, >= 0.
    lr_scale : sequence of float, optional
        One non-negative multiplier of lr per parameter (None: all 1; 0 freezes a parameter).

    Attributes
    ----------
    params : list of ndarray
        The parameter arrays (the caller's, not copies).
    lr : float
        Learning rate; settable between steps, checked on assignment.
    t : int
        Number of steps taken.
    lr_scale : list of float
        Per-parameter multipliers of lr.

    Raises
    ------
    TypeError
        If `params` is one array or not a list of float32/float64 arrays, `lr` or an entry of
        `lr_scale` is not a real number, or `lr_scale` is not a sequence.  ``step`` raises it
        for gradients passed as one array or of a non-real dtype.
    ValueError
        If `params` is empty or holds a read-only array, `lr` or an entry of `lr_scale` is
        negative or not finite, or `lr_scale` does not have one value per parameter.  ``step``
        raises it for a wrong number of gradients, a wrong shape, or NaN and infinite values.

    See Also
    --------
    Adam, AdamW, SGD : The concrete optimizers.
    clip_grad_norm : Rescales gradients before a step.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import nn
    >>> opt = nn.Optimizer([np.zeros(3), np.zeros(2)], lr=0.1, lr_scale=[1.0, 0.0])
    >>> opt.lr, opt.t, opt.lr_scale
    (0.1, 0, [1.0, 0.0])
    """

    def __init__(self, params, lr, lr_scale=None):
        self.params = _param_list(params)
        self.lr = lr
        self.t = 0
        if lr_scale is None:
            lr_scale = [1.0] * len(self.params)
        if isinstance(lr_scale, (str, bytes)) or not hasattr(lr_scale, "__len__"):
            raise TypeError(f"lr_scale: expected a sequence of numbers, got {type(lr_scale).__name__}")
        lr_scale = list(lr_scale)
        if len(lr_scale) != len(self.params):
            raise ValueError(f"lr_scale: expected {len(self.params)} values (one per parameter), "
                             f"got {len(lr_scale)}")
        self.lr_scale = [_nonneg(f"lr_scale[{i}]", v) for i, v in enumerate(lr_scale)]

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _nonneg("lr", value)

    def step(self, grads):
        """One update of ``params`` in place from ``grads`` (one array per parameter)."""
        grads = _check_grads(self.params, grads)
        self.t += 1
        self._update(grads)

    def _update(self, grads):  # pragma: no cover - abstract
        raise NotImplementedError


def _betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas: expected a pair of numbers, got {betas!r}") from None
    b1, b2 = _real("betas[0]", b1), _real("betas[1]", b2)
    for i, b in enumerate((b1, b2)):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"betas[{i}]: must be in [0, 1), got {b}")
    return b1, b2


class Adam(Optimizer):
    """Adam optimizer (Kingma & Ba, 2015), step for step as ``torch.optim.Adam``.

    With g the gradient of a parameter p at step t (t = 1, 2, ...), each step does [1]_::

        m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2,
        p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).

    ``weight_decay`` > 0 adds the coupled L2 term weight_decay * p to g (use :class:`AdamW` for
    the decoupled form).  The per-parameter ``lr_scale`` multiplies lr.

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place (e.g. ``mlp.params``).
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates b1, b2 of the moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0.0
        Coupled L2 penalty, >= 0.
    lr_scale : sequence of float, optional
        One multiplier of lr per parameter (None: all 1; 0 freezes a parameter).

    Attributes
    ----------
    m, v : list of ndarray
        First and second moment estimates, one per parameter.
    betas : tuple of float
        (b1, b2).
    eps, weight_decay : float
        As given.
    params, lr, t, lr_scale
        As in :class:`Optimizer`.

    Raises
    ------
    TypeError
        If `betas` is not a pair of real numbers, `eps` or `weight_decay` is not a real number,
        or `params`, `lr`, `lr_scale` have the wrong type (see :class:`Optimizer`).
    ValueError
        If a beta is outside [0, 1), `eps` or `weight_decay` is negative or not finite, or
        `params`, `lr`, `lr_scale` have a bad value (see :class:`Optimizer`).

    See Also
    --------
    AdamW : Adam with decoupled weight decay.
    SGD : Stochastic gradient descent with momentum.
    make_schedule : Learning-rate schedules to set ``lr`` between steps.

    References
    ----------
    .. [1] Diederik P. Kingma and Jimmy Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.

    Examples
    --------
    The first step moves every coordinate by about lr against the sign of its gradient:

    >>> import numpy as np
    >>> from monge.maps import nn
    >>> p = np.array([1.0, -2.0])
    >>> nn.Adam([p], lr=0.1).step([np.array([0.5, -3.0])])
    >>> p.round(6).tolist()
    [0.9, -1.9]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 lr_scale=None):
        super().__init__(params, lr, lr_scale)
        self.betas = _betas(betas)
        self.eps = _nonneg("eps", eps)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]

    _decoupled = False

    def _update(self, grads):
        b1, b2 = self.betas
        bc1 = 1.0 - b1 ** self.t
        bc2_sqrt = math.sqrt(1.0 - b2 ** self.t)
        step = self.lr / bc1
        for p, g, m, v, k in zip(self.params, grads, self.m, self.v, self.lr_scale):
            if self.weight_decay:
                if self._decoupled:
                    p *= 1.0 - k * self.lr * self.weight_decay
                else:
                    g = g + self.weight_decay * p
            m += (1.0 - b1) * (g - m)
            v *= b2
            v += (1.0 - b2) * (g * g)
            denom = np.sqrt(v)
            denom /= bc2_sqrt
            denom += self.eps
            p -= (k * step) * (m / denom)


class AdamW(Adam):
    """AdamW optimizer (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

    As ``torch.optim.AdamW`` [1]_: each step first shrinks the parameter, ::

        p <- p (1 - lr * weight_decay),

    then applies the :class:`Adam` update without any L2 term in the gradient.  The decay
    follows the learning-rate schedule (and the per-parameter ``lr_scale``).

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place (e.g. ``mlp.params``).
    lr : float, default 1e-3
        Learning rate, >= 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the moment estimates, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 1e-2
        Decoupled decay rate, >= 0.
    lr_scale : sequence of float, optional
        One multiplier of lr per parameter (None: all 1; 0 freezes a parameter).

    Attributes
    ----------
    m, v, betas, eps, weight_decay, params, lr, t, lr_scale
        As in :class:`Adam`.

    Raises
    ------
    TypeError
        As :class:`Adam`: `betas` not a pair of real numbers, `eps`, `weight_decay` or `lr` not
        real numbers, `params` or `lr_scale` of the wrong type.
    ValueError
        As :class:`Adam`: a beta outside [0, 1), a negative or non-finite `eps`,
        `weight_decay` or `lr`, empty or read-only `params`, `lr_scale` of the wrong length.

    See Also
    --------
    Adam : The coupled (L2) form of weight decay.

    References
    ----------
    .. [1] Ilya Loshchilov and Frank Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.

    Examples
    --------
    With a zero gradient only the decay acts, 1 - 0.1 * 0.5 = 0.95:

    >>> import numpy as np
    >>> from monge.maps import nn
    >>> p = np.array([1.0, -2.0])
    >>> nn.AdamW([p], lr=0.1, weight_decay=0.5).step([np.zeros(2)])
    >>> p.round(6).tolist()
    [0.95, -1.9]
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 lr_scale=None):
        super().__init__(params, lr, betas, eps, weight_decay, lr_scale)

    _decoupled = True


class SGD(Optimizer):
    """Stochastic gradient descent with optional heavy-ball or Nesterov momentum.

    As ``torch.optim.SGD`` without dampening.  With g the gradient (plus weight_decay * p when
    ``weight_decay`` > 0) and momentum mu > 0, each step does (Nesterov momentum as in [1]_)::

        buf <- mu buf + g    (buf = g at the first step),
        p   <- p - lr buf            (heavy ball),
        p   <- p - lr (g + mu buf)   (Nesterov);

    with mu = 0 it is p <- p - lr g.  The per-parameter ``lr_scale`` multiplies lr.

    Parameters
    ----------
    params : list of ndarray
        The arrays to update in place (e.g. ``mlp.params``).
    lr : float
        Learning rate, >= 0 (no default).
    momentum : float, default 0.0
        mu, >= 0.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default 0.0
        Coupled L2 penalty, >= 0.
    lr_scale : sequence of float, optional
        One multiplier of lr per parameter (None: all 1; 0 freezes a parameter).

    Attributes
    ----------
    buf : list of ndarray or None
        Momentum buffers, one per parameter (None until the first step with momentum).
    momentum, nesterov, weight_decay
        As given.
    params, lr, t, lr_scale
        As in :class:`Optimizer`.

    Raises
    ------
    TypeError
        If `nesterov` is not a bool, `momentum` or `weight_decay` is not a real number, or
        `params`, `lr`, `lr_scale` have the wrong type (see :class:`Optimizer`).
    ValueError
        If ``nesterov=True`` with ``momentum == 0``, `momentum` or `weight_decay` is negative
        or not finite, or `params`, `lr`, `lr_scale` have a bad value (see :class:`Optimizer`).

    See Also
    --------
    Adam : Adaptive steps, the usual choice for fitting maps.

    References
    ----------
    .. [1] I. Sutskever, J. Martens, G. Dahl and G. Hinton, "On the importance of
       initialization and momentum in deep learning", ICML 2013.

    Examples
    --------
    Two steps with gradient 1 and momentum 0.9: p moves by 0.1, then by 0.1 x 1.9:

    >>> import numpy as np
    >>> from monge.maps import nn
    >>> p = np.array([1.0])
    >>> opt = nn.SGD([p], lr=0.1, momentum=0.9)
    >>> opt.step([np.ones(1)]); opt.step([np.ones(1)]); p.round(6).tolist()
    [0.71]
    """

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 lr_scale=None):
        super().__init__(params, lr, lr_scale)
        self.momentum = _nonneg("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _nonneg("weight_decay", weight_decay)
        self.buf = [None] * len(self.params)

    def _update(self, grads):
        mu = self.momentum
        for i, (p, g, k) in enumerate(zip(self.params, grads, self.lr_scale)):
            if self.weight_decay:
                g = g + self.weight_decay * p
            if mu:
                if self.buf[i] is None:
                    self.buf[i] = g.copy()
                else:
                    self.buf[i] *= mu
                    self.buf[i] += g
                g = g + mu * self.buf[i] if self.nesterov else self.buf[i]
            p -= (k * self.lr) * g


def clip_grad_norm(grads, max_norm):
    """Scale gradients so that their global L2 norm is at most `max_norm`.

    The global norm is that of all the arrays concatenated, as ``torch.nn.utils.clip_grad_norm_``
    computes it; when it exceeds `max_norm` every array is multiplied by max_norm / norm [1]_.
    The inputs are not modified.

    Parameters
    ----------
    grads : list of array_like
        Gradients, e.g. the first output of :meth:`MLP.backward`.
    max_norm : float
        Largest allowed global norm, > 0.

    Returns
    -------
    clipped : list of ndarray
        New arrays (copies even when no scaling is needed).
    total_norm : float
        The global norm before clipping.  A non-finite norm is returned as is, with the
        gradients unchanged.

    Raises
    ------
    TypeError
        If `max_norm` is not a real number, `grads` is one array rather than a list, or an
        entry of `grads` is a torch tensor or not a real numeric array.
    ValueError
        If `max_norm` is <= 0 or not finite.

    See Also
    --------
    Optimizer.step : Takes the clipped gradients.

    References
    ----------
    .. [1] R. Pascanu, T. Mikolov and Y. Bengio, "On the difficulty of training recurrent neural
       networks", ICML 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from monge.maps import nn
    >>> clipped, norm = nn.clip_grad_norm([np.array([3.0]), np.array([4.0])], 1.0)
    >>> [g.round(6).tolist() for g in clipped], norm
    ([[0.6], [0.8]], 5.0)
    """
    max_norm = _real("max_norm", max_norm)
    if max_norm <= 0:
        raise ValueError(f"max_norm: must be > 0, got {max_norm}")
    if isinstance(grads, np.ndarray):
        raise TypeError("grads: expected a list of arrays, got one array")
    grads = [_array(f"grads[{i}]", g) for i, g in enumerate(grads)]
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / total
        return [g * g.dtype.type(scale) for g in grads], total
    return [g.copy() for g in grads], total


# ----------------------------------------------------------------------------- schedules


def _step(step):
    return _integer("step", step, 0)


class constant:
    """Constant learning-rate schedule: step -> lr.

    Parameters
    ----------
    lr : float
        The learning rate returned at every step, >= 0.

    Attributes
    ----------
    lr : float
        As given.

    Raises
    ------
    TypeError
        If `lr` is not a real number; calling with a step that is not an integer.
    ValueError
        If `lr` is negative or not finite; calling with a negative step.

    See Also
    --------
    cosine : Cosine decay.
    warmup : Linear warm-up in front of a schedule.
    make_schedule : Builds a schedule by name.

    Examples
    --------
    >>> from monge.maps import nn
    >>> nn.constant(1e-3)(0), nn.constant(1e-3)(500)
    (0.001, 0.001)
    """

    def __init__(self, lr):
        self.lr = _nonneg("lr", lr)

    def __call__(self, step):
        _step(step)
        return self.lr

    def __repr__(self):
        return f"constant({self.lr})"


class cosine:
    """Cosine learning-rate decay from `lr` at step 0 to `final_lr` at `total_steps`.

    The schedule (without restarts) of Loshchilov & Hutter [1]_, constant after `total_steps`::

        lr(step) = final_lr + (lr - final_lr) (1 + cos(pi min(step, total) / total)) / 2,

    total = `total_steps`.

    Parameters
    ----------
    lr : float
        Learning rate at step 0, >= 0.
    total_steps : int
        Step at which `final_lr` is reached, >= 1.
    final_lr : float, default 0.0
        Learning rate from `total_steps` on, >= 0.

    Attributes
    ----------
    lr, total_steps, final_lr
        As given.

    Raises
    ------
    TypeError
        If `lr` or `final_lr` is not a real number or `total_steps` not an integer; calling
        with a step that is not an integer.
    ValueError
        If `lr` or `final_lr` is negative or not finite, or `total_steps` < 1; calling with a
        negative step.

    See Also
    --------
    constant : Constant learning rate.
    warmup : Linear warm-up in front of a schedule.
    make_schedule : Builds a schedule by name.

    References
    ----------
    .. [1] Ilya Loshchilov and Frank Hutter, "SGDR: Stochastic Gradient Descent with Warm
       Restarts", ICLR 2017.

    Examples
    --------
    >>> from monge.maps import nn
    >>> sched = nn.cosine(1.0, total_steps=10)
    >>> [round(sched(k), 6) for k in (0, 5, 10, 20)]
    [1.0, 0.5, 0.0, 0.0]
    """

    def __init__(self, lr, total_steps, final_lr=0.0):
        self.lr = _nonneg("lr", lr)
        self.total_steps = _integer("total_steps", total_steps, 1)
        self.final_lr = _nonneg("final_lr", final_lr)

    def __call__(self, step):
        s = min(_step(step), self.total_steps)
        c = 0.5 * (1.0 + math.cos(math.pi * s / self.total_steps))
        return self.final_lr + (self.lr - self.final_lr) * c

    def __repr__(self):
        return f"cosine({self.lr}, {self.total_steps}, final_lr={self.final_lr})"


class warmup:
    """Linear warm-up, then `schedule` shifted by `warmup_steps`.

    The learning rate is::

        lr(step) = schedule(0) (step + 1) / warmup_steps    for step < warmup_steps,
        lr(step) = schedule(step - warmup_steps)             afterwards.

    Parameters
    ----------
    schedule : callable
        A schedule, step -> lr (e.g. :class:`constant` or :class:`cosine`).
    warmup_steps : int
        Length of the warm-up, >= 0 (0: `schedule` unchanged).

    Attributes
    ----------
    schedule, warmup_steps
        As given.

    Raises
    ------
    TypeError
        If `schedule` is not callable or `warmup_steps` not an integer; calling with a step
        that is not an integer.
    ValueError
        If `warmup_steps` < 0; calling with a negative step.

    See Also
    --------
    make_schedule : Builds a warmed-up constant or cosine schedule in one call.

    Examples
    --------
    >>> from monge.maps import nn
    >>> sched = nn.warmup(nn.constant(1.0), warmup_steps=4)
    >>> [sched(k) for k in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    """

    def __init__(self, schedule, warmup_steps):
        if not callable(schedule):
            raise TypeError(f"schedule: expected a callable step -> lr, got "
                            f"{type(schedule).__name__}")
        self.schedule = schedule
        self.warmup_steps = _integer("warmup_steps", warmup_steps, 0)

    def __call__(self, step):
        step = _step(step)
        if step < self.warmup_steps:
            return self.schedule(0) * (step + 1) / self.warmup_steps
        return self.schedule(step - self.warmup_steps)

    def __repr__(self):
        return f"warmup({self.schedule!r}, {self.warmup_steps})"


_SCHEDULES = ("constant", "cosine")


def make_schedule(name, lr, total_steps, warmup_steps=0):
    """A 'constant' or 'cosine' learning-rate schedule, with optional linear warm-up.

    'cosine' decays to 0 at `total_steps`; the `warmup_steps` of linear warm-up are counted
    inside `total_steps` (the cosine part lasts ``total_steps - warmup_steps``).

    Parameters
    ----------
    name : {'constant', 'cosine'}
        Shape of the schedule after the warm-up.
    lr : float
        Peak learning rate, >= 0.
    total_steps : int
        Total number of steps, >= 1.
    warmup_steps : int, default 0
        Steps of linear warm-up, 0 <= warmup_steps < total_steps.

    Returns
    -------
    constant or cosine or warmup
        A callable step -> lr: the bare schedule when ``warmup_steps == 0``, else a
        :class:`warmup` around it.

    Raises
    ------
    TypeError
        If `name` is not a string, `lr` is not a real number, or `total_steps` or
        `warmup_steps` is not an integer.
    ValueError
        If `name` is not 'constant' or 'cosine', `lr` is negative or not finite,
        `total_steps` < 1, or `warmup_steps` is negative or >= `total_steps`.

    See Also
    --------
    constant, cosine, warmup : The schedules it builds.

    Examples
    --------
    >>> from monge.maps import nn
    >>> sched = nn.make_schedule("cosine", 1e-3, total_steps=100, warmup_steps=10)
    >>> sched
    warmup(cosine(0.001, 90, final_lr=0.0), 10)
    >>> [round(sched(k), 6) for k in (0, 9, 55, 100)]
    [0.0001, 0.001, 0.0005, 0.0]
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a string, got {type(name).__name__}")
    if name not in _SCHEDULES:
        raise ValueError(f"name: unknown schedule {name!r}; expected one of "
                         f"{', '.join(_SCHEDULES)}")
    total_steps = _integer("total_steps", total_steps, 1)
    warmup_steps = _integer("warmup_steps", warmup_steps, 0)
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps: must be < total_steps={total_steps}, got {warmup_steps}")
    if name == "constant":
        base = constant(lr)
    else:
        base = cosine(lr, total_steps - warmup_steps)
    return warmup(base, warmup_steps) if warmup_steps else base
