"""Quadratically regularised and k-sparsity-constrained optimal transport (mirrors csrc/smooth_ot.c).

Quadratic OT (Blondel, Seguy & Rolet, AISTATS 2018):

    OT_gamma(a, b) = min_{T >= 0, T 1 = a, T^T 1 = b}  <T, C> + gamma/2 |T|_F^2

k-sparse OT (Liu, Puigcerver & Blondel, ICLR 2023) adds  |T[:, j]|_0 <= k  for every column j.
Both are solved through a dual, maximised with an L-BFGS in C:

    dual       max_{alpha, beta} <alpha, a> + <beta, b> - sum_j delta_k(alpha + beta_j - C[:, j])
               delta_k(x) = 1/(2 gamma) sum_{i in top-k(x)} max(x_i, 0)^2
    semi-dual  max_alpha <alpha, a> - sum_j b_j max_{y in simplex, |y|_0 <= k}
                                        [<alpha - C[:, j], y> - gamma b_j / 2 |y|^2]

(POT's ``ot.smooth`` objectives with ``reg = gamma``, ``reg_type='l2'`` or
``'sparsity_constrained'`` with ``max_nz = k``, value for value).  The plan is recovered from the
potentials, T_ij = max(alpha_i + beta_j - C_ij, 0) / gamma on the k largest entries of column j,
so it is sparse by construction and is returned in compressed-column form.  For k = 1 (n = m,
uniform weights) the optimal value is the exact OT cost + gamma/2 |b|^2.
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from . import _core
from ._validate import choice, float_array, integer, nonneg, positive, weights
from ._policy import ConvergenceWarning, check_masses

FORMULATIONS = ("semi_dual", "dual")


@dataclass
class SparsePlan:
    """A transport plan in compressed sparse column (CSC) form.

    Column j has its row indices in ``indices[indptr[j]:indptr[j + 1]]`` (ascending) and its
    values in ``data[...]`` at the same positions; every stored value is > 0.  ``nnz``,
    ``col_nnz()``, ``row_nnz()``, ``sum(axis)`` (the marginals), ``tocoo()``, ``toarray()`` and
    ``tocsc()`` (SciPy) read it.

    Attributes
    ----------
    shape : tuple (n, m)
    indptr : int array (m + 1,)
    indices : int array (nnz,)
    data : float array (nnz,)

    Examples
    --------
    >>> import numpy as np, monge
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> plan = monge.quadratic_ot(None, None, C, gamma=0.1).plan
    >>> plan.nnz, plan.sum(axis=1).round(6).tolist()
    (2, [0.5, 0.5])
    """

    shape: tuple
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    @property
    def nnz(self):
        return int(self.indptr[-1])

    def col_nnz(self):
        """Nonzeros per column, shape (m,)."""
        return np.diff(self.indptr)

    def row_nnz(self):
        """Nonzeros per row, shape (n,)."""
        return np.bincount(self.indices, minlength=self.shape[0])

    def tocoo(self):
        """(rows, cols, values), each of length nnz."""
        cols = np.repeat(np.arange(self.shape[1]), self.col_nnz())
        return self.indices.copy(), cols, self.data.copy()

    def toarray(self):
        """The dense (n, m) plan."""
        out = np.zeros(self.shape)
        rows, cols, vals = self.tocoo()
        out[rows, cols] = vals
        return out

    def tocsc(self):
        """A ``scipy.sparse.csc_array`` (needs SciPy)."""
        try:
            from scipy import sparse
        except ImportError as exc:  # pragma: no cover - scipy is in the test extra
            raise ImportError("SparsePlan.tocsc needs SciPy; use toarray() or tocoo()") from exc
        return sparse.csc_array((self.data, self.indices, self.indptr), shape=self.shape)

    def sum(self, axis=None):
        """Total mass, or the marginals: axis=1 -> T 1 (n,), axis=0 -> T^T 1 (m,)."""
        if axis is None:
            return float(self.data.sum())
        if axis == 1:
            return np.bincount(self.indices, weights=self.data, minlength=self.shape[0])
        if axis == 0:
            cols = np.repeat(np.arange(self.shape[1]), self.col_nnz())
            return np.bincount(cols, weights=self.data, minlength=self.shape[1])
        raise ValueError(f"axis: expected None, 0 or 1, got {axis!r}")


@dataclass
class SmoothOTResult:
    """Result of :func:`quadratic_ot` and :func:`sparse_ot`.

    Attributes
    ----------
    alpha, beta
        potentials, shapes (n,), (m,); for the semi-dual beta_j = -theta_j, the threshold
        of column j's projection
    plan
        the plan T as a :class:`SparsePlan` (``plan.toarray()`` for the dense matrix)
    value
        the dual or semi-dual objective at (alpha, beta) (maximised): at the optimum the
        optimal value of the (relaxed, for k < n) regularised problem
    cost, reg, primal
        ``<T, C>``, ``gamma/2 |T|_F^2`` and primal = cost + reg
    error_a, error_b, error
        ``sum_i |(T 1)_i - a_i|``, ``sum_j |(T^T 1)_j - b_j|`` and their sum
    n_iter, n_eval
        L-BFGS iterations and objective evaluations
    converged
        the L1 marginal error fell below tol.  With k < n the optimum is often at a
        kink of the objective, where the solver stops because the objective stopped
        improving (`status` says so): the value is then converged, but the plan read off
        the potentials misses the row marginals by `error_a`, and converged is False
    status
        why the solver stopped (text)
    gamma, k, formulation
        the problem solved (k is None for quadratic OT)

    Examples
    --------
    >>> import numpy as np, monge
    >>> r = monge.quadratic_ot(None, None, np.array([[0.0, 1.0], [1.0, 0.0]]), gamma=0.1)
    >>> r.converged, round(r.cost, 6), r.plan.nnz
    (True, 0.0, 2)
    """

    alpha: np.ndarray
    beta: np.ndarray
    plan: SparsePlan
    value: float
    cost: float
    reg: float
    error_a: float
    error_b: float
    n_iter: int
    n_eval: int
    converged: bool
    status: str
    gamma: float
    k: int | None
    formulation: str

    @property
    def error(self):
        return self.error_a + self.error_b

    @property
    def primal(self):
        return self.cost + self.reg


def _problem(a, b, C):
    C = float_array("C", C, (2,), dtype=np.float64)
    n, m = C.shape
    A = weights("a", a, n, 1)
    Bw = weights("b", b, m, 1)
    check_masses(A, Bw, 1)
    return C, (None if A is None else A[0]), (None if Bw is None else Bw[0])


def _k(k, n):
    """Validated k as the C layer's int (0 = unconstrained)."""
    if k is None or (isinstance(k, float) and math.isinf(k) and k > 0):
        return 0
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k: expected a positive integer (or None / inf for no constraint), got "
                        f"{type(k).__name__}")
    k = integer("k", k, 1)
    return 0 if k >= n else k


def objective(a, b, C, gamma, alpha, beta=None, *, k=None, formulation="semi_dual"):
    """The (semi-)dual objective (maximised) and its gradient at given potentials.

    Returns (value, grad_alpha, grad_beta); grad_beta is None for the semi-dual.  The gradients
    are the marginal violations a - T 1 and b - T^T 1 of the plan recovered from the potentials.
    """
    C, a, b = _problem(a, b, C)
    gamma = positive("gamma", gamma)
    formulation = choice("formulation", formulation, FORMULATIONS)
    kk = _k(k, C.shape[0])
    alpha = float_array("alpha", alpha, (1,), dtype=np.float64)
    if alpha.shape[0] != C.shape[0]:
        raise ValueError(f"alpha: expected shape ({C.shape[0]},), got {alpha.shape}")
    if formulation == "dual":
        beta = float_array("beta", beta, (1,), dtype=np.float64)
        if beta.shape[0] != C.shape[1]:
            raise ValueError(f"beta: expected shape ({C.shape[1]},), got {beta.shape}")
    else:
        beta = None
    return _core.smooth_objective(C, a, b, alpha, beta, gamma, k=kk, formulation=formulation)


def _solve(a, b, C, gamma, k, formulation, tol, ftol, max_iter, memory, init, callback, verbose,
           nthreads, what):
    C, a, b = _problem(a, b, C)
    n, m = C.shape
    gamma = positive("gamma", gamma)
    formulation = choice("formulation", formulation, FORMULATIONS)
    kk = _k(k, n)
    tol = nonneg("tol", tol)
    ftol = nonneg("ftol", ftol)
    max_iter = integer("max_iter", max_iter, 0)
    memory = integer("memory", memory, 1)
    nthreads = 0 if nthreads is None else integer("nthreads", nthreads, 1)
    alpha0 = beta0 = None
    if init is not None:
        if formulation == "dual":
            try:
                alpha0, beta0 = init
            except (TypeError, ValueError):
                raise TypeError("init: expected a pair of potentials (alpha, beta) for the dual") \
                    from None
        else:
            alpha0 = init[0] if isinstance(init, tuple) else init
        alpha0 = float_array("init alpha", alpha0, (1,), dtype=np.float64)
        if alpha0.shape != (n,):
            raise ValueError(f"init: alpha must have shape ({n},), got {alpha0.shape}")
        if beta0 is not None:
            beta0 = float_array("init beta", beta0, (1,), dtype=np.float64)
            if beta0.shape != (m,):
                raise ValueError(f"init: beta must have shape ({m},), got {beta0.shape}")
    if callback is not None and not callable(callback):
        raise TypeError("callback: must be callable")
    cb = callback
    if verbose:
        def cb(it, err, _user=callback):
            if it % 50 == 0:
                print(f"{what}: iteration {it:5d}  marginal error {err:.3e}")
            return bool(_user(it, err)) if _user is not None else False

    out = _core.smooth_ot(C, a, b, gamma, k=kk, formulation=formulation, tol=tol, ftol=ftol,
                          max_iter=max_iter, memory=memory, alpha0=alpha0, beta0=beta0,
                          nthreads=nthreads, callback=cb)
    indptr, indices, data = out["plan"]
    plan = SparsePlan((n, m), indptr, indices, data)
    res = SmoothOTResult(out["alpha"], out["beta"], plan, out["value"], out["cost"], out["reg"],
                         out["err_a"], out["err_b"], out["n_iter"], out["n_eval"],
                         bool(out["converged"]), out["reason_str"], gamma, kk or None, formulation)
    if not res.converged and not out["stopped"]:
        hint = ("; with k < n the objective is not differentiable where the k-th and (k+1)-th "
                "entries of a column tie, and its optimum often lies at such a kink: the plan read "
                "off the potentials then misses the marginals; a larger gamma or k smooths it"
                if kk else "; raise max_iter or loosen tol")
        warnings.warn(f"{what} did not converge: {res.status} after {res.n_iter} iterations, "
                      f"marginal error {res.error:.3g} (tol {tol:.3g}){hint}", ConvergenceWarning,
                      stacklevel=3)
    return res


def quadratic_ot(a, b, C, gamma, *, formulation="semi_dual", tol=1e-6, ftol=1e-14, max_iter=1000,
                 memory=10, init=None, callback=None, verbose=False, nthreads=None):
    """Quadratically regularised OT:  ``min_T <T, C> + gamma/2 |T|_F^2``  over couplings of a and b.

    Parameters
    ----------
    a, b : arrays (n,), (m,) or None
        Non-negative weights of equal mass (uniform when None).
    C : array (n, m)
        Dense cost matrix.
    gamma : float
        Regularisation strength (> 0); the plan is sparse, and sparser as gamma decreases.
    formulation : {'semi_dual', 'dual'}
        Maximise the semi-dual (potential alpha only; columns of the plan sum to b exactly) or the
        dual (alpha and beta).
    tol : float
        Stop when the L1 marginal violation (the L1 norm of the gradient) is <= tol.
    ftol : float
        Also stop when the objective improved by at most ftol (relative) over 5 iterations while
        the gradient stalled (an optimum at a kink, or the float64 limit).
    max_iter, memory : int
        L-BFGS iterations and memory.
    init : array (n,) or (alpha, beta), optional
        Warm start (alpha for the semi-dual; (alpha, beta) for the dual).
    callback : callable(iteration, error) -> bool, optional
        Called every iteration with the L1 marginal error; returning True stops the solve.
    verbose : bool
        Print the marginal error every 50 iterations.
    nthreads : int, optional
        Threads for this call (results do not depend on it).

    Returns
    -------
    SmoothOTResult

    Examples
    --------
    >>> import numpy as np, monge
    >>> a, b = np.full(3, 1 / 3), np.full(2, 1 / 2)
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    >>> res = monge.quadratic_ot(a, b, C, gamma=0.1)
    >>> res.converged, res.plan.toarray().round(4).tolist()
    (True, [[0.3333, 0.0], [0.0, 0.3333], [0.1667, 0.1667]])
    """
    return _solve(a, b, C, gamma, None, formulation, tol, ftol, max_iter, memory, init, callback,
                  verbose, nthreads, "quadratic_ot")


def sparse_ot(a, b, C, k, gamma, *, formulation="semi_dual", tol=1e-6, ftol=1e-14,
              max_iter=1000, memory=10, init=None, callback=None, verbose=False, nthreads=None):
    """k-sparsity-constrained OT: quadratic OT with at most k nonzeros in every column of the plan.

    Maximises the dual or semi-dual of the relaxed problem (Liu, Puigcerver & Blondel, ICLR 2023):
    the top-k conjugate (dual), or the projection onto the simplex with at most k nonzeros
    (semi-dual).  Every column of the returned plan has at most k nonzeros.  k >= n (the length of
    a column) or k = None / inf is quadratic OT.  For k = 1, n = m and uniform weights the optimal
    value is the exact OT cost + ``gamma/2 |b|^2``.

    The objective is not differentiable where the k-th and (k+1)-th entries of a column tie; the
    optimum of the relaxation often lies at such a point, where the plan read off the potentials
    need not meet the row marginals exactly (``error_a``) even though the objective has converged
    (then ``status`` says the objective stopped improving).  Ties are broken by the lower row.

    Parameters
    ----------
    a, b, C, gamma
        As in :func:`quadratic_ot`.
    k : int
        Maximum number of nonzeros per column (>= 1).
    formulation, tol, ftol, max_iter, memory, init, callback, verbose, nthreads
        As in :func:`quadratic_ot`.

    Returns
    -------
    SmoothOTResult

    References
    ----------
    T. Liu, J. Puigcerver and M. Blondel, "Sparsity-constrained optimal transport", ICLR 2023.

    Examples
    --------
    With k = 1 every column of the plan has one nonzero:

    >>> import numpy as np, monge
    >>> C = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    >>> r = monge.sparse_ot(None, None, C, k=1, gamma=0.1)
    >>> r.plan.col_nnz().tolist(), r.plan.toarray().round(4).tolist()
    ([1, 1, 1], [[0.3333, 0.0, 0.0], [0.0, 0.3333, 0.0], [0.0, 0.0, 0.3333]])
    """
    if k is None:
        raise ValueError("k: required (an integer >= 1; use quadratic_ot for no constraint)")
    return _solve(a, b, C, gamma, k, formulation, tol, ftol, max_iter, memory, init, callback,
                  verbose, nthreads, "sparse_ot")
