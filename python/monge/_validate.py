"""Argument validation shared by the public functions.

Every check raises ValueError or TypeError whose message starts with the argument's name, so a
user sees at once which input is wrong.  The C core re-checks cheaply; these checks are where the
messages come from.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

FLOAT_TYPES = (np.float32, np.float64)


def float_array(name, value, ndims, dtype=None):
    """`value` as a float32/float64 ndarray with ndim in `ndims` (a tuple).

    Integers and booleans become float64; float32 stays float32 unless `dtype` forces one.
    Non-contiguous and Fortran-ordered arrays are accepted (the binding copies when needed)."""
    if value is None:
        raise ValueError(f"{name}: required")
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        raise TypeError(f"{name}: got a torch tensor; use monge.torch for tensors or pass .numpy()")
    if hasattr(value, "tocsr") and hasattr(value, "nnz"):
        raise TypeError(f"{name}: sparse input is not supported; pass a dense array "
                        f"({name}.toarray())")
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.ndim not in ndims:
        want = " or ".join(str(d) for d in ndims)
        raise ValueError(f"{name}: expected {want} dimensions, got shape {arr.shape}")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype not in FLOAT_TYPES:
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{name}: empty array (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return arr


def pot_argument_order(func, x, y, a, b, C):
    """POT's ``func(a, b, M, reg)`` lands here as x=a, y=b, a=M, b=reg: say what to write."""
    if C is None and np.ndim(x) == 1 and np.ndim(y) == 1 and np.ndim(a) == 2 and np.ndim(b) == 0:
        raise TypeError(f"{func}(a, b, M, reg) is POT's argument order; monge's first arguments are "
                        f"point clouds: write monge.{func}(a=a, b=b, C=M, eps=reg) (eps KL(P | a x b) "
                        "gives the same plan as POT's reg entropy term)")


def common_dtype(*arrays):
    """float32 when every array is float32, else float64."""
    return np.float32 if all(a.dtype == np.float32 for a in arrays if a is not None) else np.float64


def positive(name, value, allow_inf=False):
    """A positive real scalar (inf allowed only with allow_inf)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        kind = "a positive number" + (" or inf" if allow_inf else " (finite)")
        raise ValueError(f"{name}: must be {kind}, got {value!r}")
    return v


def nonneg(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    v = float(value)
    if not (v >= 0) or math.isinf(v):
        raise ValueError(f"{name}: must be a finite number >= 0, got {value!r}")
    return v


def integer(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {v}")
    return v


def weights(name, w, length, batch):
    """Weights as a float64 (batch, length) array, or None for uniform.

    Accepts shape (length,) (shared by every problem of a batch) or (batch, length)."""
    if w is None:
        return None
    arr = np.asarray(w)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 1 and arr.shape[0] == length:
        arr = np.broadcast_to(arr, (batch, length))
    elif not (arr.ndim == 2 and arr.shape == (batch, length)):
        want = f"({length},)" if batch == 1 else f"({length},) or ({batch}, {length})"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    if (arr < 0).any():
        raise ValueError(f"{name}: weights must be non-negative")
    if (arr.sum(axis=1) <= 0).any():
        raise ValueError(f"{name}: total mass must be positive")
    return np.ascontiguousarray(arr)


def float_dtype(name, value):
    """'float32' or 'float64' (a string, a NumPy dtype or a NumPy scalar type) as a np.dtype."""
    if not isinstance(value, str):
        try:
            value = str(np.dtype(value))
        except TypeError:
            raise TypeError(f"{name}: expected 'float32' or 'float64', got {value!r}") from None
    return np.dtype(choice(name, value, ("float32", "float64")))


def choice(name, value, options):
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {type(value).__name__}")
    if value not in options:
        raise ValueError(f"{name}: unknown value {value!r}; expected one of {', '.join(options)}")
    return value


def potentials_init(init, n, m, batch=None):
    """A warm start ``init = (f, g)`` as float64 arrays of shapes (n,), (m,), or (batch, n),
    (batch, m) when `batch` is given (a single pair is then accepted for a batch of one)."""
    try:
        f0, g0 = init
    except (TypeError, ValueError):
        raise TypeError("init: expected a pair of potentials (f, g)") from None
    dims = (1,) if batch is None else (1, 2)
    f0 = float_array("init f", f0, dims, dtype=np.float64)
    g0 = float_array("init g", g0, dims, dtype=np.float64)
    if batch is not None:
        f0, g0 = f0.reshape(batch, -1), g0.reshape(batch, -1)
    want = ((n,), (m,)) if batch is None else ((batch, n), (batch, m))
    if (f0.shape, g0.shape) != want:
        raise ValueError(f"init: potentials must have shapes ({n},) and ({m},)"
                         + (f" per problem of the batch of {batch}" if batch and batch > 1 else ""))
    return f0, g0
