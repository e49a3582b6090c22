"""Many OT problems on a Dask cluster: pairwise distance matrices and lists of problems.

Needs the optional extra ``pip install monge[dask]`` (dask + distributed); ``import monge`` alone
never imports Dask.

    D = pairwise(clouds, method="emd")                 # (N, N) symmetric, zero diagonal
    results = map_problems(problems, "emd")            # one result per problem, in order

What a pairwise matrix holds, for clouds X_i with weights a_i (uniform when not given):

    'emd'                  D_ij = OT(a_i, a_j) = min_P <P, C(X_i, X_j)>, the exact transport cost
                           (monge.emd(...).cost).  With the default cost 'sqeuclidean'
                           (c = |x - y|^2) that is W_2^2: use np.sqrt(D) for W_2.  Diagonal 0.
    'sinkhorn'             D_ij = OT_eps(a_i, a_j) = min_P <P, C> + eps KL(P | a_i x a_j), the
                           entropic value (monge.sinkhorn(...).value).  Not a distance: its
                           diagonal OT_eps(a_i, a_i) > 0 is computed, not set.
    'sinkhorn_divergence'  D_ij = S_eps(a_i, a_j) = OT_eps(a_i, a_j) - 1/2 OT_eps(a_i, a_i)
                           - 1/2 OT_eps(a_j, a_j) (monge.sinkhorn_divergence(...).value).  It
                           behaves like W_2^2 for small eps.  Diagonal 0 (S_eps(a, a) = 0).
    'sliced'               D_ij = SW_p(a_i, a_j) = (mean_l W_p^p(<theta_l, X_i>, <theta_l, X_j>))^(1/p)
                           (monge.sliced_wasserstein), the same `n_projections` directions theta
                           (drawn from `seed`) for every pair.  A distance (not a power).  Diagonal 0.

Only pairs i < j are solved, with x = X_i, y = X_j, and mirrored: D is exactly symmetric.

How the work is cut up.  The clouds are sorted by size and the upper triangle of the matrix is cut
into tiles of rows x columns; one Dask task solves one tile (at most `block` pairs).  Inside a
task, pairs whose clouds have equal shapes go to the solver as one batch (the batched C solvers
release the GIL and give results identical to one call per pair); other pairs are solved one by
one.  The clouds are sent to the cluster once (``client.scatter``); a task receives only the
clouds of its tile, and Dask keeps a copy on each worker that needed it.

Failures.  Bad clouds (NaN or infinite values, a dimension other than the others', no points,
bad weights) are found before any work is sent and their rows are left out; a pair whose solve
raises is recorded and the rest of its task goes on; a worker that dies mid-run has its tasks
rerun elsewhere by Dask (scattered clouds lost with it are sent again), so the matrix is the same.
When anything failed, :class:`PartialResultError` (a ValueError) is raised after every other
pair has been computed; it carries the matrix (NaN where a value is missing) and the list of
:class:`ProblemError` saying which cloud or pair failed and why.

The same call runs on a multi-machine cluster: pass ``client=distributed.Client("tcp://
scheduler-address:8786")``.  See docs/experiments/dask.md for the task granularity.
"""
from __future__ import annotations

try:
    import dask  # noqa: F401
    import distributed
    from distributed import as_completed
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("monge.distributed needs Dask (dask and distributed): "
                      "pip install monge[dask]") from exc

import contextlib
import math
import numbers
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ._validate import choice, float_array, integer, positive
from ._policy import ConvergenceWarning

METHODS = ("emd", "sinkhorn", "sinkhorn_divergence", "sliced")
SOLVERS = ("emd", "sinkhorn", "sinkhorn_divergence", "sliced")
# Keyword arguments that pairwise sets itself and `options` may not override.
_RESERVED = {"x", "y", "a", "b", "C", "eps", "cost", "p", "nthreads", "projections",
             "n_projections", "seed", "return_grad", "grad"}
# A block whose inputs were lost (a worker died holding the only copy) is resubmitted this often.
_MAX_RESUBMITS = 3


@dataclass(frozen=True)
class ProblemError:
    """One failure of a distributed run: which cloud, pair or problem, and why.

    Collected in :attr:`PartialResultError.errors`; ``str(error)`` is its message.

    Attributes
    ----------
    where : tuple of int
        (i,) for cloud or problem i, (i, j) for the pair of clouds i, j.
    message : str
        The reason, naming the input (e.g. ``"pair (0, 3) (x=clouds[0], y=clouds[3]): ..."``).

    See Also
    --------
    PartialResultError : The exception that carries these.

    Examples
    --------
    >>> from monge.distributed import ProblemError
    >>> e = ProblemError((0, 3), "pair (0, 3): the task failed")
    >>> e.where, str(e)
    ((0, 3), 'pair (0, 3): the task failed')
    """

    where: tuple
    message: str

    def __str__(self):
        return self.message


class PartialResultError(ValueError):
    """Raised after a run in which some clouds, pairs or problems failed, once all others are done.

    A ValueError: :func:`pairwise` and :func:`map_problems` compute everything that can be
    computed, then raise this with the partial result and the reasons.  The message is the
    summary followed by the first 20 errors, one per line.

    Parameters
    ----------
    summary : str
        First line of the message.
    result : ndarray or list
        Stored as :attr:`result`.
    errors : iterable of ProblemError
        Stored as the list :attr:`errors`.

    Attributes
    ----------
    result : ndarray or list
        What was computed: the (N, N) matrix with NaN at the failed entries (pairwise), or
        the list of results with None at the failed problems (map_problems).
    errors : list of ProblemError
        One per bad cloud / failed pair / failed problem.

    See Also
    --------
    ProblemError : One entry of `errors`.

    Examples
    --------
    Keeping the partial matrix of a run, ``D = err.result`` in ``except PartialResultError as
    err:``; the exception itself needs no cluster:

    >>> from monge.distributed import PartialResultError, ProblemError
    >>> err = PartialResultError("map_problems: 1 of 2 problems failed:", [0.5, None],
    ...                          [ProblemError((1,), "problems[1]: ValueError: eps: required")])
    >>> isinstance(err, ValueError), err.result, err.errors[0].where
    (True, [0.5, None], (1,))
    >>> print(err)
    map_problems: 1 of 2 problems failed:
      problems[1]: ValueError: eps: required
    """

    def __init__(self, summary, result, errors):
        self.result = result
        self.errors = list(errors)
        lines = [summary] + [f"  {e.message}" for e in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more (see .errors)")
        super().__init__("\n".join(lines))


# ------------------------------------------------------------------------------ cluster set-up

@contextlib.contextmanager
def _client_for(client, n_workers):
    """The given client, unchanged, or a LocalCluster of worker processes closed afterwards."""
    if client is not None:
        if n_workers is not None:
            raise ValueError("n_workers: only for the local cluster started when client is None")
        if not isinstance(client, distributed.Client):
            raise TypeError(f"client: expected a distributed.Client, got {type(client).__name__}")
        yield client
        return
    if n_workers is None:
        try:
            n_workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - macOS
            n_workers = os.cpu_count() or 1
    n_workers = integer("n_workers", n_workers, 1)
    if _in_spawned_import():
        raise RuntimeError(_GUARD_ADVICE.format(what="a Dask worker process is importing your "
                                                     "script, which calls monge.distributed at "
                                                     "its top level"))
    # one thread per worker process: the parallelism is across processes (tasks also pass
    # nthreads=1 to the C solvers by default, so nothing oversubscribes the cores)
    try:
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                           processes=True, host="127.0.0.1", dashboard_address=":0")
    except RuntimeError as exc:
        if "failed to start" in str(exc) and _main_is_script():
            raise RuntimeError(_GUARD_ADVICE.format(what=f"Dask's local cluster did not start "
                                                         f"({exc})")) from exc
        raise
    with cluster, distributed.Client(cluster) as local:
        yield local


_GUARD_ADVICE = ("monge.distributed: {what}. Worker processes start by importing the main script; "
                 "put the code that calls pairwise / map_problems under\n"
                 "    if __name__ == \"__main__\":\n"
                 "or pass client= an existing distributed.Client.")


def _main_is_script():
    main = sys.modules.get("__main__")
    return bool(getattr(main, "__file__", None))


def _in_spawned_import():
    """True while multiprocessing's spawn re-imports the main script in a child (as __mp_main__)."""
    import multiprocessing

    main = sys.modules.get("__main__")
    return (multiprocessing.parent_process() is not None
            and getattr(main, "__name__", "") == "__mp_main__")


def _total_threads(client):
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a client whose scheduler has no workers yet
        return 1


class _Progress:
    def __init__(self, total, desc, verbose):
        self.bar = None
        if verbose and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="pair" if desc == "pairwise" else "problem",
                            file=sys.stderr, dynamic_ncols=True)

    def update(self, k):
        if self.bar is not None:
            self.bar.update(k)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _run(client, payloads, tasks, fn, progress):
    """Scatter `payloads` once and run fn(spec, {index: payload}) for every (spec, needed, weight)
    of `tasks` on the cluster.

    Returns a list, per task, of ("ok", value) or ("error", message).  Tasks whose inputs were lost
    with a dead worker (scattered data has no recipe to recompute it) are resubmitted after the
    lost payloads are scattered again; tasks that raise are reported, not retried (Dask itself
    reruns a task whose worker died, up to its allowed-failures limit)."""
    futs = {}
    needed_all = sorted({i for _, needed, _ in tasks for i in needed})
    if needed_all:
        scattered = client.scatter([payloads[i] for i in needed_all], hash=False)
        futs = dict(zip(needed_all, scattered))

    def submit(t):
        spec, needed, _ = tasks[t]
        for i in needed:  # inputs lost with a dead worker: send them again
            if futs[i].status in ("lost", "cancelled", "error"):
                futs[i] = client.scatter([payloads[i]], hash=False)[0]
        return client.submit(fn, spec, {i: futs[i] for i in needed}, pure=False)

    out = [None] * len(tasks)
    attempts = [0] * len(tasks)
    running = {}
    for t in range(len(tasks)):
        running[submit(t)] = t
    ac = as_completed(list(running))
    try:
        for fut in ac:
            t = running.pop(fut)
            status, value = fut.status, None
            if status == "finished":
                try:
                    value = fut.result()
                except Exception:  # noqa: BLE001 - the result lived on a worker that died
                    status = "lost"  # before it was fetched: run the task again
            if status == "finished":
                out[t] = ("ok", value)
                progress.update(tasks[t][2])
            elif status == "error":
                exc = fut.exception()
                out[t] = ("error", f"{type(exc).__name__}: {exc}")
                progress.update(tasks[t][2])
            else:  # cancelled or lost: an input or the output was lost with a worker
                attempts[t] += 1
                if attempts[t] > _MAX_RESUBMITS:
                    out[t] = ("error", f"the task's inputs were lost {attempts[t]} times "
                                       "(workers died); giving up")
                    progress.update(tasks[t][2])
                else:
                    new = submit(t)
                    running[new] = t
                    ac.add(new)
            fut.release()
    finally:
        for f in running:
            f.cancel()
        for f in futs.values():
            f.release()
    return out


# ---------------------------------------------------------------------------------- validation

def _clouds(clouds, weights):
    """Client-side checks.  Returns (points, weights, d, bad) where bad maps a cloud index to the
    reason it is left out; points[i] is a float64 (n_i, d) array (None when bad)."""
    if isinstance(clouds, np.ndarray):
        if clouds.dtype == object:
            clouds = list(clouds)
        elif clouds.ndim == 3:
            clouds = list(clouds)
        else:
            raise ValueError(f"clouds: expected a sequence of (n_i, d) arrays or one (N, n, d) "
                             f"array, got an array of shape {clouds.shape}")
    if isinstance(clouds, (str, bytes)) or not hasattr(clouds, "__len__"):
        raise TypeError(f"clouds: expected a sequence of (n_i, d) arrays, got "
                        f"{type(clouds).__name__}")
    clouds = list(clouds)
    N = len(clouds)
    if N < 2:
        raise ValueError(f"clouds: need at least 2 point clouds, got {N}")
    if weights is not None:
        if isinstance(weights, np.ndarray) and weights.dtype != object and weights.ndim == 2:
            weights = list(weights)
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise TypeError(f"weights: expected a sequence of (n_i,) arrays, got "
                            f"{type(weights).__name__}")
        weights = list(weights)
        if len(weights) != N:
            raise ValueError(f"weights: expected one entry per cloud ({N}), got {len(weights)}")
    pts, bad = [None] * N, {}
    for i, c in enumerate(clouds):
        try:
            a = float_array(f"clouds[{i}]", c, (2,), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            bad[i] = str(exc)
            continue
        pts[i] = np.ascontiguousarray(a)
    dims = Counter(p.shape[1] for p in pts if p is not None)
    if not dims:
        raise ValueError("clouds: no valid cloud: " + "; ".join(bad.values()))
    d = dims.most_common(1)[0][0]
    if len(dims) > 1:
        for i, p in enumerate(pts):
            if p is not None and p.shape[1] != d:
                bad[i] = (f"clouds[{i}]: dimension {p.shape[1]} differs from the other clouds' "
                          f"{d} (shape {p.shape})")
                pts[i] = None
    wts = [None] * N
    if weights is not None:
        for i, w in enumerate(weights):
            if pts[i] is None:
                continue
            n = pts[i].shape[0]
            if w is None:
                wts[i] = np.full(n, 1.0 / n)
                continue
            try:
                arr = float_array(f"weights[{i}]", w, (1,), dtype=np.float64)
                if arr.shape[0] != n:
                    raise ValueError(f"weights[{i}]: expected shape ({n},) like clouds[{i}], "
                                     f"got {arr.shape}")
                if (arr < 0).any():
                    raise ValueError(f"weights[{i}]: weights must be non-negative")
                if arr.sum() <= 0:
                    raise ValueError(f"weights[{i}]: total mass must be positive")
            except (TypeError, ValueError) as exc:
                bad[i] = str(exc)
                pts[i] = None
                continue
            wts[i] = np.ascontiguousarray(arr)
    return pts, wts, d, bad


def _options(options):
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise TypeError(f"options: expected a dict of solver keyword arguments, got "
                        f"{type(options).__name__}")
    clash = sorted(set(options) & _RESERVED)
    if clash:
        raise ValueError(f"options: {', '.join(clash)} are set by pairwise itself (use its own "
                         "arguments)")
    return dict(options)


# ------------------------------------------------------------------------- pairwise: the tasks

def _solve_group(method, xs, ys, As, Bs, params):
    """Solves a group of pairs with equal shapes; returns (values, converged) arrays."""
    import monge

    opts = params["options"]
    nt = params["nthreads"]
    with warnings.catch_warnings():
        # convergence is reported once on the client from the flags, not once per worker
        warnings.simplefilter("ignore", ConvergenceWarning)
        if method == "sliced":
            vals = [monge.sliced_wasserstein(x, y, a, b, p=params["p"],
                                             projections=params["projections"], nthreads=nt,
                                             **opts)
                    for x, y, a, b in zip(xs, ys, As, Bs)]
            return np.asarray(vals, dtype=np.float64), np.ones(len(vals), dtype=bool)
        X, Y = np.stack(xs), np.stack(ys)
        A = None if As[0] is None else np.stack(As)
        B = None if Bs[0] is None else np.stack(Bs)
        kw = dict(cost=params["cost"], p=params["p"], nthreads=nt, **opts)
        if method == "emd":
            r = monge.emd(A, B, x=X, y=Y, **kw)
            return np.asarray(r.cost, dtype=np.float64), np.asarray(r.converged, dtype=bool)
        if method == "sinkhorn":
            r = monge.sinkhorn(X, Y, A, B, eps=params["eps"], **kw)
            return np.asarray(r.value, dtype=np.float64), np.asarray(r.converged, dtype=bool)
        r = monge.sinkhorn_divergence(X, Y, A, B, eps=params["eps"], **kw)
        return np.asarray(r.value, dtype=np.float64), np.asarray(r.converged, dtype=bool)


def _pair_block(spec, data):
    """One task: the pairs of a tile.  Returns (values, converged, errors) aligned with pairs;
    errors is a list of (pair index, message)."""
    method, pairs, params = spec
    values = np.full(len(pairs), np.nan)
    conv = np.ones(len(pairs), dtype=bool)
    errors = []
    groups = {}
    for k, (i, j) in enumerate(pairs):
        xi, xj = data[i][0], data[j][0]
        key = (xi.shape, xj.shape) if method != "sliced" else ()
        groups.setdefault(key, []).append(k)
    for ks in groups.values():
        xs = [data[pairs[k][0]][0] for k in ks]
        ys = [data[pairs[k][1]][0] for k in ks]
        As = [data[pairs[k][0]][1] for k in ks]
        Bs = [data[pairs[k][1]][1] for k in ks]
        try:
            v, c = _solve_group(method, xs, ys, As, Bs, params)
            values[ks], conv[ks] = v, c
            continue
        except Exception:  # noqa: BLE001 - find out which pair of the group fails, and why
            pass
        for k, x, y, a, b in zip(ks, xs, ys, As, Bs):
            try:
                v, c = _solve_group(method, [x], [y], [a], [b], params)
                values[k], conv[k] = v[0], c[0]
            except Exception as exc:  # noqa: BLE001 - reported to the caller with the pair
                errors.append((k, f"{type(exc).__name__}: {exc}"))
    return values, conv, errors


def _tiles(order, side, diagonal):
    """Tiles of the upper triangle of the matrix permuted by `order` (clouds sorted by size).

    Yields lists of pairs (i, j), i < j in the original indices (i == j too when `diagonal`)."""
    N = len(order)
    starts = range(0, N, side)
    for r0 in starts:
        rows = order[r0:r0 + side]
        for c0 in starts:
            if c0 < r0:
                continue
            cols = order[c0:c0 + side]
            pairs = []
            for pi, i in enumerate(rows):
                for pj, j in enumerate(cols):
                    if c0 == r0 and pj < pi:
                        continue
                    if i == j:
                        if diagonal:
                            pairs.append((i, i))
                        continue
                    pairs.append((min(i, j), max(i, j)))
            if pairs:
                yield pairs


def pairwise(clouds, method="emd", weights=None, *, eps=None, cost=None, p=2.0, n_projections=50,
             seed=0, options=None, client=None, n_workers=None, block=None, nthreads=1,
             verbose=True):
    """The symmetric matrix of OT distances between every pair of point clouds, on Dask.

    Only pairs i < j are solved, with x = clouds[i], y = clouds[j], and mirrored: D is exactly
    symmetric.  The clouds are sorted by size and the upper triangle of the matrix is cut into
    tiles of rows x columns; one Dask task solves one tile (at most `block` pairs).  Inside a task,
    pairs whose clouds have equal shapes go to the solver as one batch (the batched C solvers
    release the GIL and give results identical to one call per pair); other pairs are solved one
    by one.  The clouds are sent to the cluster once (``client.scatter``); a task receives only
    the clouds of its tile, and Dask keeps a copy on each worker that needed it.  A worker that
    dies mid-run has its tasks rerun elsewhere (scattered clouds lost with it are sent again), so
    the matrix is the same.

    The same call runs on a multi-machine cluster: pass
    ``client=distributed.Client("tcp://scheduler-address:8786")``.  When no client is given,
    worker processes start by importing the main script: keep the call under
    ``if __name__ == "__main__":``.  This function needs a cluster, so it has no doctest: a
    runnable example, and the task granularity, are in docs/experiments/dask.md.

    Parameters
    ----------
    clouds : sequence of N arrays (n_i, d), or an array (N, n, d)
        The point clouds; sizes n_i may differ, the dimension d is common.  At least 2.
    method : {'emd', 'sinkhorn', 'sinkhorn_divergence', 'sliced'}
        What D_ij is, for clouds X_i with weights a_i:

        - 'emd': ``D_ij = OT(a_i, a_j) = min_P <P, C(X_i, X_j)>``, the exact transport cost
          (``monge.emd(...).cost``).  With the default cost 'sqeuclidean' (``c = |x - y|^2``)
          that is W_2^2: use ``np.sqrt(D)`` for W_2.  Diagonal 0.
        - 'sinkhorn': ``D_ij = OT_eps(a_i, a_j) = min_P <P, C> + eps KL(P | a_i x a_j)``, the
          entropic value (``monge.sinkhorn(...).value``).  Not a distance: its diagonal
          ``OT_eps(a_i, a_i) > 0`` is computed, not set.
        - 'sinkhorn_divergence': ``D_ij = S_eps(a_i, a_j) = OT_eps(a_i, a_j) - 1/2 OT_eps(a_i,
          a_i) - 1/2 OT_eps(a_j, a_j)`` (``monge.sinkhorn_divergence(...).value``).  It behaves
          like W_2^2 for small eps.  Diagonal 0 (``S_eps(a, a) = 0``).
        - 'sliced': ``D_ij = SW_p(a_i, a_j) = (mean_l W_p^p(<theta_l, X_i>, <theta_l,
          X_j>))^(1/p)`` (:func:`monge.sliced_wasserstein`), with the same `n_projections`
          directions theta (drawn from `seed`) for every pair.  A distance (not a power).
          Diagonal 0.
    weights : sequence of N arrays (n_i,) or None entries, optional
        Weights of each cloud (None entries, or None for all: uniform).  Balanced methods need
        equal total masses (normalise them).
    eps : float, optional
        Entropic regularisation (absolute); required for 'sinkhorn' and 'sinkhorn_divergence',
        refused for the others.
    cost : str, optional
        Ground cost as in :func:`monge.emd` / :func:`monge.sinkhorn` (default 'sqeuclidean');
        must be left None for 'sliced'.
    p : float, default 2.0
        Exponent of the cost as in :func:`monge.emd` / :func:`monge.sinkhorn`; for 'sliced', the
        exponent of SW_p (finite, >= 1).
    n_projections : int, default 50
        Number of directions of 'sliced' (drawn once, shared by every pair).
    seed : int, default 0
        Seed of the directions of 'sliced'.
    options : dict, optional
        Further solver keyword arguments (tol, max_iter, block_size, ...); not the arguments
        pairwise sets itself (x, y, a, b, C, eps, cost, p, nthreads, n_projections, seed, ...).
    client : distributed.Client, optional
        A client (local or connected to a remote scheduler), used as is.  None starts a
        LocalCluster of `n_workers` processes with one thread each on 127.0.0.1, and closes it
        afterwards.
    n_workers : int, optional
        Worker processes of the local cluster (default: one per core); only when client is
        None.
    block : int, optional
        Pairs per task, at most (a tile of about sqrt(block) x sqrt(block) clouds).  Default:
        about 4 tasks per worker thread, at most 1024 pairs a task.
    nthreads : int, default 1
        Threads of each solver call inside a task (1: Dask's workers are the parallelism).
    verbose : bool, default True
        Show a progress bar (tqdm, on stderr) over the pairs.

    Returns
    -------
    D : ndarray of float64, shape (N, N)
        Symmetric.

    Raises
    ------
    PartialResultError
        A ValueError, raised after the run when clouds or pairs failed: ``.result`` is D with
        NaN in the failed rows/entries, ``.errors`` a list of ProblemError naming each cloud or
        pair and the reason.  Bad clouds (NaN or infinite values, a dimension other than the
        others', no points, bad weights) are found before any work is sent and their rows are
        left out; a pair whose solve raises is recorded and the rest of its task goes on.
    ValueError
        Before any work, if method is unknown; if eps is missing for an entropic method, given
        for another, or not positive; if cost is given or p is not a finite number >= 1 for
        'sliced'; if options sets a reserved argument; if nthreads, block or n_workers is below
        1; if clouds is an array that is not 3-D; if there are fewer than 2 clouds or no valid
        one; if weights has not N entries; if n_workers is given with a client.
    TypeError
        Before any work, if method, eps, nthreads, block or n_workers has the wrong type; if
        clouds or weights is not a sequence; if options is not a dict; if client is not a
        distributed.Client.
    RuntimeError
        If the local cluster cannot start, in particular when a script calls this at its top
        level: Dask's worker processes import the script (put the call under
        ``if __name__ == "__main__":``, or pass an existing client).

    Warns
    -----
    ConvergenceWarning
        One warning listing the pairs whose solves stopped at max_iter before convergence.

    See Also
    --------
    map_problems : A list of independent problems instead of a matrix.
    monge.emd, monge.sinkhorn, monge.sinkhorn_divergence, monge.sliced_wasserstein
    """
    method = choice("method", method, METHODS)
    if method in ("sinkhorn", "sinkhorn_divergence"):
        if eps is None:
            raise ValueError(f"eps: required for method={method!r}")
        eps = positive("eps", eps)
    elif eps is not None:
        raise ValueError(f"eps: only for the entropic methods, not method={method!r}")
    if method == "sliced":
        if cost is not None:
            raise ValueError("cost: 'sliced' compares 1-D projections with |s - t|^p; leave cost "
                             "None and set p")
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not p >= 1 \
                or not math.isfinite(p):
            raise ValueError(f"p: must be a finite number >= 1, got {p!r}")
    else:
        cost = "sqeuclidean" if cost is None else cost
    opts = _options(options)
    nthreads = integer("nthreads", nthreads, 1)
    if block is not None:
        block = integer("block", block, 1)
    pts, wts, d, bad = _clouds(clouds, weights)
    N = len(pts)
    projections = None
    if method == "sliced":
        from .emd import random_projections

        projections = random_projections(d, n_projections, seed)
    params = dict(cost=cost, p=float(p), eps=eps, options=opts, nthreads=nthreads,
                  projections=projections)

    good = [i for i in range(N) if pts[i] is not None]
    # sorted by size, so that a tile's clouds mostly share a shape and batch together
    order = sorted(good, key=lambda i: (pts[i].shape[0], i))
    diagonal = method == "sinkhorn"
    n_pairs = len(good) * (len(good) - 1) // 2 + (len(good) if diagonal else 0)

    D = np.full((N, N), np.nan)
    if method != "sinkhorn":
        np.fill_diagonal(D, 0.0)  # the methods' value at (a, a); bad clouds' rows stay NaN
        for i in bad:
            D[i, i] = np.nan
    errors = [ProblemError((i,), f"{msg} (its row and column are left NaN)")
              for i, msg in sorted(bad.items())]
    unconverged = []

    with _client_for(client, n_workers) as cl:
        if block is None:
            block = min(1024, max(1, math.ceil(n_pairs / (4 * _total_threads(cl)))))
        side = max(1, math.isqrt(block))
        tasks = []
        for pairs in _tiles(order, side, diagonal):
            needed = sorted({i for pr in pairs for i in pr})
            tasks.append(((method, pairs, params), needed, len(pairs)))
        progress = _Progress(n_pairs, "pairwise", verbose)
        try:
            outs = _run(cl, [(pts[i], wts[i]) for i in range(N)], tasks, _pair_block, progress)
        finally:
            progress.close()

    for (spec, _, _), (status, out) in zip(tasks, outs):
        pairs = spec[1]
        if status == "error":
            for i, j in pairs:
                errors.append(ProblemError((i, j), f"pair ({i}, {j}): the task failed: {out}"))
            continue
        values, conv, errs = out
        for (i, j), v, c in zip(pairs, values, conv):
            D[i, j] = D[j, i] = v
            if not c:
                unconverged.append((i, j))
        for k, msg in errs:
            i, j = pairs[k]
            errors.append(ProblemError((i, j), f"pair ({i}, {j}) (x=clouds[{i}], y=clouds[{j}]): "
                                               f"{msg}"))
    if unconverged:
        shown = ", ".join(str(pr) for pr in sorted(unconverged)[:10])
        more = f" and {len(unconverged) - 10} more" if len(unconverged) > 10 else ""
        warnings.warn(f"pairwise: {len(unconverged)} solve(s) stopped at max_iter before "
                      f"convergence: pairs {shown}{more}", ConvergenceWarning, stacklevel=2)
    if errors:
        n_bad_pairs = int(np.isnan(D[np.triu_indices(N, 1)]).sum())
        raise PartialResultError(
            f"pairwise: {len(bad)} bad cloud(s) and {len(errors) - len(bad)} failed pair(s); "
            f"{n_bad_pairs} of {N * (N - 1) // 2} entries above the diagonal are NaN "
            "(.result holds the matrix, .errors the reasons):", D, errors)
    return D


# ---------------------------------------------------------------------------- map_problems

def _solver_fn(solver):
    import monge

    return {"emd": monge.emd, "sinkhorn": monge.sinkhorn,
            "sinkhorn_divergence": monge.sinkhorn_divergence,
            "sliced": monge.sliced_wasserstein}[solver]


def _call(fn, problem, options):
    if isinstance(problem, dict):
        return fn(**problem, **options)
    return fn(*problem, **options)


def _batch_key(problem):
    """Problems with equal keys, equal 2-D array shapes and equal other values stack into a batch
    of monge.emd / monge.sinkhorn_divergence; None when this problem does not batch."""
    if not isinstance(problem, dict):
        return None
    key = []
    for name in sorted(problem):
        v = problem[name]
        if isinstance(v, np.ndarray):
            if name not in ("x", "y", "a", "b", "C") or v.dtype.kind not in "fiu":
                return None
            if v.ndim != (1 if name in ("a", "b") else 2):
                return None
            key.append((name, "array", v.shape, v.dtype.str))
        elif isinstance(v, (str, int, float, bool)) or v is None:
            key.append((name, "value", type(v).__name__, v))
        else:
            return None
    return tuple(key)


def _split_divergence(r, k):
    from .losses import DivergenceResult

    g = lambda v: None if v is None else v[k]  # noqa: E731
    return DivergenceResult(float(r.value[k]), g(r.grad_x), g(r.grad_y), g(r.grad_a),
                            g(r.grad_b), float(r.ot_ab[k]), float(r.ot_aa[k]), float(r.ot_bb[k]),
                            int(r.n_iter[k]), bool(r.converged[k]), float(r.error[k]))


def _run_batch(name, fn, problems, options):
    """One batched call for problems of equal shapes (names 'emd', 'sinkhorn_divergence')."""
    stacked = {}
    for key in problems[0]:
        v = problems[0][key]
        stacked[key] = np.stack([q[key] for q in problems]) if isinstance(v, np.ndarray) else v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # re-issued per problem below
        r = fn(**stacked, **options)
    if name == "emd":
        return [r[k] for k in range(len(problems))]
    return [_split_divergence(r, k) for k in range(len(problems))]


def _problem_block(spec, data):
    """One task: its problems in order.  Returns (results, errors, warnings); errors and warnings
    are lists of (position in the block, message)."""
    solver, idx, options = spec
    fn = _solver_fn(solver) if isinstance(solver, str) else solver
    results = [None] * len(idx)
    errors, warns = [], []
    todo = list(range(len(idx)))
    if solver in ("emd", "sinkhorn_divergence"):
        groups = {}
        for k in todo:
            key = _batch_key(data[idx[k]])
            groups.setdefault(key if key is not None else ("single", k), []).append(k)
        todo = []
        for key, ks in groups.items():
            if key[0] == "single" or len(ks) == 1:
                todo += ks
                continue
            try:
                res = _run_batch(solver, fn, [data[idx[k]] for k in ks], options)
            except Exception:  # noqa: BLE001 - solve them one by one to find the culprit
                todo += ks
                continue
            for k, r in zip(ks, res):
                results[k] = r
                if not r.converged:
                    warns.append((k, "stopped at max_iter before convergence"))
    for k in sorted(todo):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                results[k] = _call(fn, data[idx[k]], options)
            except Exception as exc:  # noqa: BLE001 - reported with the problem's index
                errors.append((k, f"{type(exc).__name__}: {exc}"))
        seen = []
        for w in caught:
            msg = f"{w.category.__name__}: {w.message}"
            if msg not in seen:
                seen.append(msg)
                warns.append((k, msg))
    return results, errors, warns


def map_problems(problems, solver, *, options=None, client=None, n_workers=None, block=None,
                 verbose=True):
    """Solve a list of independent problems on Dask; results in the order of `problems`.

    The problems are split into tasks of `block` problems (sorted so that problems of equal
    shapes share tasks); each problem is sent to the cluster once.  A problem that raises is
    recorded and the others go on.  This function needs a cluster, so it has no doctest: a
    runnable example is in docs/experiments/dask.md.

    Parameters
    ----------
    problems : sequence of dict or tuple
        Keyword arguments for `solver` (or tuples of positional arguments), e.g.
        ``dict(x=x_k, y=y_k)``.  Each is sent to the cluster once.
    solver : {'emd', 'sinkhorn', 'sinkhorn_divergence', 'sliced'} or callable
        :func:`monge.emd`, :func:`monge.sinkhorn`, :func:`monge.sinkhorn_divergence`,
        :func:`monge.sliced_wasserstein`, or any callable the workers can unpickle (a
        module-level function; cloudpickle also takes lambdas).  For 'emd' and
        'sinkhorn_divergence', problems of a task with the same keys, equal 2-D array shapes and
        equal other arguments are solved in one batched call (same results as one call each).
    options : dict, optional
        Keyword arguments passed to every call (e.g. eps, nthreads).
    client : distributed.Client, optional
        As in :func:`pairwise`: used as is, or None for a LocalCluster closed afterwards.
    n_workers : int, optional
        As in :func:`pairwise`: worker processes of the local cluster.
    block : int, optional
        Problems per task (default: about 4 tasks per worker thread, at most 256).
    verbose : bool, default True
        As in :func:`pairwise`: a progress bar (tqdm, on stderr) over the problems.

    Returns
    -------
    list
        The solver's results (EMDResult, SinkhornResult, DivergenceResult, float, ...), one per
        problem, in order.

    Raises
    ------
    PartialResultError
        A ValueError, raised after the run when problems raised: ``.result`` is the list with
        None at the failed problems, ``.errors`` names each problem and the reason.
    ValueError
        Before any work, if solver is an unknown name, problems is empty, block or n_workers is
        below 1, or n_workers is given with a client.
    TypeError
        Before any work, if solver is neither a name nor a callable; if problems is not a
        sequence, or an entry is not a dict, tuple or list; if options is not a dict; if block
        or n_workers is not an integer; if client is not a distributed.Client.
    RuntimeError
        If the local cluster cannot start, as in :func:`pairwise`.

    Warns
    -----
    ConvergenceWarning
        Re-issued here, naming the problem, for each solve that stopped at max_iter.
    UserWarning
        Other warnings raised by a solve, re-issued here naming the problem.

    See Also
    --------
    pairwise : The matrix of distances between every pair of clouds.
    """
    if isinstance(solver, str):
        solver = choice("solver", solver, SOLVERS)
    elif not callable(solver):
        raise TypeError(f"solver: expected one of {', '.join(SOLVERS)} or a callable, got "
                        f"{type(solver).__name__}")
    if isinstance(problems, (str, bytes, dict)) or not hasattr(problems, "__len__"):
        raise TypeError(f"problems: expected a sequence of dicts (keyword arguments) or tuples, "
                        f"got {type(problems).__name__}")
    problems = list(problems)
    if not problems:
        raise ValueError("problems: empty")
    for k, q in enumerate(problems):
        if not isinstance(q, (dict, tuple, list)):
            raise TypeError(f"problems[{k}]: expected a dict of keyword arguments or a tuple, got "
                            f"{type(q).__name__}")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        raise TypeError(f"options: expected a dict, got {type(options).__name__}")
    if block is not None:
        block = integer("block", block, 1)
    P = len(problems)
    with _client_for(client, n_workers) as cl:
        if block is None:
            block = min(256, max(1, math.ceil(P / (4 * _total_threads(cl)))))
        # sorted by a shape key so that batchable problems share tasks
        order = sorted(range(P), key=lambda k: (repr(_batch_key(problems[k])), k))
        tasks = []
        for s in range(0, P, block):
            idx = order[s:s + block]
            tasks.append(((solver, idx, options), idx, len(idx)))
        progress = _Progress(P, "map_problems", verbose)
        try:
            outs = _run(cl, problems, tasks, _problem_block, progress)
        finally:
            progress.close()
    results = [None] * P
    errors = []
    for (spec, idx, _), (status, out) in zip(tasks, outs):
        if status == "error":
            for k in idx:
                errors.append(ProblemError((k,), f"problems[{k}]: the task failed: {out}"))
            continue
        res, errs, warns = out
        for k, r in zip(idx, res):
            results[k] = r
        for pos, msg in errs:
            errors.append(ProblemError((idx[pos],), f"problems[{idx[pos]}]: {msg}"))
        for pos, msg in warns:
            cat = ConvergenceWarning if "converge" in msg else UserWarning
            warnings.warn(f"problems[{idx[pos]}]: {msg}", cat, stacklevel=2)
    if errors:
        errors.sort(key=lambda e: e.where)
        raise PartialResultError(f"map_problems: {len(errors)} of {P} problems failed (.result "
                                 "holds the results, None where failed; .errors the reasons):",
                                 results, errors)
    return results


__all__ = ["pairwise", "map_problems", "PartialResultError", "ProblemError", "METHODS"]
