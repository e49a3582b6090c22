"""Thread count of NumPy's BLAS around code that multiplies small matrices.

A multi-threaded BLAS wakes its threads for every product; for the (batch x hidden) products of a
small network that costs more than the product, and on a busy machine the spinning threads slow
everything else too.  threadpoolctl (an optional dependency, in the `maps` extra) sets the limit
for whichever BLAS NumPy loaded; without it the context manager does nothing.
"""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def blas_threads(n):
    """Limit NumPy's BLAS to n threads inside the block (None: leave it alone)."""
    if n is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
