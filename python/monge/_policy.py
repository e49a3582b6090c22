"""Policy shared by the solvers: the convergence warning, the mass check of balanced problems, the
marginal penalties of unbalanced ones, and the validated Sinkhorn options every entropic entry point
(sinkhorn, the divergence, the Monge gap) passes to the binding."""
from __future__ import annotations

import math
import warnings

import numpy as np

from . import _core
from ._validate import integer, nonneg, positive


class ConvergenceWarning(UserWarning):
    """A solver stopped at its iteration limit before reaching its tolerance.

    The result is still returned, with ``converged=False`` and the error reached; the warning's
    message says which limit ran out and what to change.  Turn it into an exception with the
    warnings filter when a run must not go on with an unconverged result.

    Examples
    --------
    >>> import warnings, numpy as np, monge
    >>> x = np.random.default_rng(0).random((50, 2))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     r = monge.sinkhorn(x, x[::-1], eps=1e-3, max_iter=2, eps_scaling=False)
    >>> r.converged, caught[0].category.__name__
    (False, 'ConvergenceWarning')
    """


# The C defaults (monge_sinkhorn_params_init and the thresholds of csrc/sinkhorn.h): the one source
# of every default the Sinkhorn entry points use; a test checks the docstrings quote them.
DEFAULTS = _core.sinkhorn_defaults()
ANDERSON_MEMORY = DEFAULTS["anderson"]
ANDERSON_MAX_MEMORY = DEFAULTS["anderson_max"]
_EPS_SCALING = {True: "on", False: "off", "auto": "auto"}


def _tau(name, value):
    if value is None:
        return math.inf
    return positive(name, value, allow_inf=True)


def marginal_penalties(tau, tau_a, tau_b):
    """(tau_a, tau_b) from the user's tau / tau_a / tau_b; inf means a hard constraint."""
    if tau is not None and (tau_a is not None or tau_b is not None):
        raise ValueError("tau: give tau, or tau_a and tau_b, not both")
    if tau is not None:
        t = _tau("tau", tau)
        return t, t
    return _tau("tau_a", tau_a), _tau("tau_b", tau_b)


def check_masses(A, Bw, B):
    """Balanced problems need equal total masses (relative tolerance 1e-6)."""
    ma = A.sum(axis=1) if A is not None else np.ones(B)
    mb = Bw.sum(axis=1) if Bw is not None else np.ones(B)
    bad = np.abs(ma - mb) > 1e-6 * np.maximum(ma, mb)
    if bad.any():
        k = int(np.argmax(bad))
        raise ValueError(
            f"a, b: total masses differ ({ma[k]:.10g} vs {mb[k]:.10g}); balanced OT needs equal "
            "masses: normalise the weights, or pass tau for unbalanced OT")


def solver_options(dtype, tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax,
                   nthreads, anderson=None):
    """Validated Sinkhorn options shared by every entropic entry point, as keyword arguments of
    the binding: enumerated options as names, None for the C default (:data:`DEFAULTS`).  `tol`
    is always given (the float32 default differs).  eps_scaling='auto' is decided in C (anneal
    when eps < DEFAULTS['auto_anneal'] x the max cost and there is no warm start)."""
    if tol is None:
        tol = DEFAULTS["tol_float32"] if dtype == np.float32 else DEFAULTS["tol"]
    tol = nonneg("tol", tol)
    if max_iter is not None:
        max_iter = integer("max_iter", max_iter, 0)
    if isinstance(eps_scaling, (bool, np.bool_)):
        scale = _EPS_SCALING[bool(eps_scaling)]
    elif isinstance(eps_scaling, str) and eps_scaling == "auto":
        scale = "auto"
    else:
        raise TypeError(f"eps_scaling: expected True, False or 'auto', got {eps_scaling!r}")
    if scaling_factor is not None:
        scaling_factor = positive("scaling_factor", scaling_factor)
        if scale != "off" and not scaling_factor < 1:
            raise ValueError(f"scaling_factor: must be in (0, 1), got {scaling_factor}")
    if stage_tol is not None:
        stage_tol = nonneg("stage_tol", stage_tol)
    if isinstance(overrelax, str):
        if overrelax != "auto":
            raise ValueError(f"overrelax: expected 'auto' or a number in (0, 2), got {overrelax!r}")
        omega = "auto"
    else:
        omega = positive("overrelax", overrelax)
        if not omega < 2:
            raise ValueError(f"overrelax: must be in (0, 2), got {overrelax}")
    memory = None  # the C default, used only with overrelax='auto'
    if anderson is not None:
        if isinstance(anderson, (bool, np.bool_)):
            raise TypeError(f"anderson: expected an int memory (0 turns it off), got {anderson!r}")
        memory = integer("anderson", anderson, 0)
        if memory > ANDERSON_MAX_MEMORY:
            raise ValueError(f"anderson: memory at most {ANDERSON_MAX_MEMORY}, got {memory}")
        if memory and omega != "auto":
            raise ValueError("anderson: accelerates the plain iteration; it cannot be combined "
                             f"with a fixed overrelax={overrelax} (use overrelax='auto')")
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    return dict(tol=tol, max_iter=max_iter, eps_scaling=scale, scaling_factor=scaling_factor,
                stage_tol=stage_tol, overrelax=omega, nthreads=nthreads, anderson=memory)


def warn_unconverged(what, converged, error, n_iter, tol, batched, stacklevel=3, eps=None,
                     eps_reached=None):
    conv = np.atleast_1d(converged)
    if conv.all():
        return
    k = int(np.argmin(conv))
    which = f" (problem {k} of the batch)" if batched else ""
    reached = None if eps_reached is None else float(np.atleast_1d(eps_reached)[k])
    if reached is not None and eps is not None and reached > eps:
        warnings.warn(
            f"{what} did not converge{which}: max_iter = {np.atleast_1d(n_iter)[k]} iterations "
            f"ran out during eps-scaling, at eps = {reached:.3g} (target {eps:.3g}); the result "
            f"(value, plan, potentials, result.eps) is that stage's, marginal error "
            f"{np.atleast_1d(error)[k]:.3g}; raise max_iter", ConvergenceWarning,
            stacklevel=stacklevel)
        return
    warnings.warn(
        f"{what} did not converge{which}: marginal error {np.atleast_1d(error)[k]:.3g} > tol "
        f"{tol:.3g} after {np.atleast_1d(n_iter)[k]} iterations; raise max_iter, use "
        "eps_scaling=True or a larger eps", ConvergenceWarning, stacklevel=stacklevel)
