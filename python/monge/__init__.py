"""monge: optimal transport with a C core.

NumPy arrays in, NumPy arrays out; `import monge` needs NumPy alone.  See README.md.
"""
import os as _os

# libgomp threads spin ~300k times at every barrier before sleeping; on a machine whose cores are
# busy with other work a spinning thread steals the core its partner needs (measured: 4-10x slower
# solves with 2 threads than with 1).  A short spin costs nothing on an idle machine.  This must be
# set before the extension (and with it libgomp) loads; a value the user set is kept.
_os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from . import _core  # noqa: E402
from .align import AlignResult, align
from .barycenter import (BarycenterResult, FreeBarycenterResult, barycenter,
                         free_support_barycenter)
from .gromov import GromovResult, fused_gromov_wasserstein, gromov_wasserstein
from .ctc import CTCResult, ctc_loss
from .emd import (EMDBatchResult, EMDResult, SlicedResult, emd, emd_1d, random_projections,
                  sliced_wasserstein, wasserstein_1d)
from .geometry import COSTS, cost_matrix
from .losses import DivergenceResult, MongeGapResult, monge_gap, sinkhorn_divergence
from ._policy import ConvergenceWarning
from .sinkhorn import SinkhornResult, sinkhorn
from . import spectr  # noqa: E402  (SpecTr draft selection: monge.spectr.*)
from . import multiscale  # noqa: E402  (method='multiscale' results and options)
from .smooth import SmoothOTResult, SparsePlan, quadratic_ot, sparse_ot

__version__ = _core.build_info()["version"]


def set_num_threads(n):
    """Default number of threads for every parallel kernel (results do not depend on it).

    Parameters
    ----------
    n : int
        Threads (>= 1).  Each call's ``nthreads=`` argument overrides it.

    Raises
    ------
    TypeError
        When n is not an integer.
    ValueError
        When n < 1.

    See Also
    --------
    get_num_threads

    Examples
    --------
    >>> import monge
    >>> before = monge.get_num_threads()
    >>> monge.set_num_threads(1); monge.get_num_threads()
    1
    >>> monge.set_num_threads(before)
    """
    import numbers

    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an integer, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def get_num_threads():
    """Default number of threads (OMP_NUM_THREADS or the number of cores at import).

    Returns
    -------
    int

    See Also
    --------
    set_num_threads

    Examples
    --------
    >>> import monge
    >>> monge.get_num_threads() >= 1
    True
    """
    return _core.get_num_threads()


def build_info():
    """Version, whether OpenMP is compiled in, and the SIMD level the kernels dispatch to.

    Returns
    -------
    dict
        'version' (str), 'openmp' (bool), 'simd' (str, e.g. 'avx2' or 'avx512').

    Examples
    --------
    >>> import monge
    >>> sorted(monge.build_info())
    ['openmp', 'simd', 'version']
    """
    return _core.build_info()


__all__ = ["sinkhorn", "SinkhornResult", "sinkhorn_divergence", "DivergenceResult", "monge_gap",
           "MongeGapResult", "ConvergenceWarning", "cost_matrix", "COSTS",
           "align", "AlignResult", "barycenter", "BarycenterResult", "free_support_barycenter",
           "FreeBarycenterResult", "gromov_wasserstein",
           "fused_gromov_wasserstein", "GromovResult", "ctc_loss", "CTCResult", "emd", "EMDResult", "EMDBatchResult", "emd_1d", "wasserstein_1d",
           "sliced_wasserstein", "SlicedResult", "random_projections", "quadratic_ot", "sparse_ot",
           "SmoothOTResult", "SparsePlan", "set_num_threads", "get_num_threads", "build_info",
           "__version__", "spectr", "multiscale"]
