"""OTT-JAX Monge gap timer, for side-by-side benchmarks against monge.

    from ott_timing import ott_monge_gap_timer
    run = ott_monge_gap_timer(n=1024, d=8, cost="sqeuclidean", eps=0.5, seed=0)
    value, grad_tx = run()          # jit-compiled and already warmed up
    run.info                        # eps used, Sinkhorn iterations, converged

Needs jax, jaxlib, ott-jax (0.6.0), flax and diffrax (``monge_gap_from_samples``
lives in ``ott.neural``).  Importing this module enables float64 in JAX.

``cost``: "sqeuclidean", "euclidean", "cosine", "pnormp[:p]" (default p=1.5),
"elasticl1[:lam]" (default lam=1.0; OTT 0.6.0 spells it
``RegTICost(regularizers.L1(), lam)``), or an ``ott.geometry.costs.CostFn``.
``eps``: a float (absolute epsilon), None (OTT's default 0.05 * std of the cost
matrix), or a pair ("mean" | "std", multiplier) for ``relative_epsilon``.

The data are x ~ N(0, I_d), tx = x @ M + b + 0.1 * noise (as in
``ott_fixtures.py``), drawn from ``numpy.random.default_rng(seed)``.

Run as a script for a quick measurement at n = 256 and 1024.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from ott.geometry import costs, regularizers  # noqa: E402
from ott.neural.methods.monge_gap import monge_gap_from_samples  # noqa: E402

__all__ = ["ott_monge_gap_timer", "make_cost", "make_data"]

EpsSpec = Union[None, float, Tuple[str, float]]


def make_cost(cost: Union[str, costs.CostFn]) -> costs.CostFn:
    """Map a cost name (optionally "name:param") to an OTT cost object."""
    if isinstance(cost, costs.CostFn):
        return cost
    name, _, param = str(cost).lower().partition(":")
    if name == "sqeuclidean":
        return costs.SqEuclidean()
    if name == "euclidean":
        return costs.Euclidean()
    if name == "cosine":
        return costs.Cosine()
    if name == "pnormp":
        return costs.PNormP(float(param) if param else 1.5)
    if name == "elasticl1":
        return costs.RegTICost(regularizers.L1(), lam=float(param) if param else 1.0)
    raise ValueError(f"unknown cost {cost!r}")


def eps_kwargs(eps: EpsSpec) -> dict:
    """Keyword arguments of ``monge_gap_from_samples`` for an epsilon spec."""
    if eps is None:
        return {"epsilon": None}
    if isinstance(eps, (tuple, list)):
        mode, mult = eps
        if mode not in ("mean", "std"):
            raise ValueError(f"relative epsilon must be 'mean' or 'std', got {mode!r}")
        return {"epsilon": float(mult), "relative_epsilon": mode}
    return {"epsilon": float(eps)}


def make_data(n: int, d: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    M = rng.standard_normal((d, d)) / math.sqrt(d) + 0.5 * np.eye(d)
    b = 0.5 * rng.standard_normal(d)
    tx = x @ M + b + 0.1 * rng.standard_normal((n, d))
    return x, tx


class _Timer:
    """Callable returning (value, grad_tx) of OTT's Monge gap, blocking."""

    def __init__(self, fn: Callable, x: jnp.ndarray, tx: jnp.ndarray, spec: dict):
        self._fn = fn
        self.x = x
        self.tx = tx
        self.spec = spec
        # warm-up: compile and run once
        value, grad_tx, aux = jax.block_until_ready(fn(x, tx))
        aux = jax.device_get(aux)
        self.info = dict(
            spec,
            eps_used=float(aux["eps"]),
            n_iters=int(aux["n_iters"]),
            converged=bool(aux["converged"]),
            value=float(value),
        )

    def __call__(self, x: Optional[Any] = None, tx: Optional[Any] = None):
        x = self.x if x is None else x
        tx = self.tx if tx is None else tx
        value, grad_tx, _ = jax.block_until_ready(self._fn(x, tx))
        return value, grad_tx


def ott_monge_gap_timer(
    n: int,
    d: int,
    cost: Union[str, costs.CostFn] = "sqeuclidean",
    eps: EpsSpec = 0.5,
    seed: int = 0,
    *,
    threshold: float = 1e-6,
    max_iterations: int = 10_000,
    inner_iterations: int = 10,
    dtype: str = "float64",
    **sinkhorn_kwargs: Any,
) -> _Timer:
    """Return a warmed-up, jit-compiled callable: () -> (value, grad wrt tx).

    Sinkhorn runs in log-sum-exp mode with OTT's default differentiation
    (implicit differentiation object present, hence ``use_danskin=True``: the
    gradient is the envelope-theorem one, potentials frozen).  ``threshold`` is
    OTT's L1 marginal error checked every ``inner_iterations`` iterations.
    Extra keyword arguments go to ``ott.solvers.linear.sinkhorn.Sinkhorn``.
    The callable also accepts explicit ``(x, tx)`` arrays of the same shape.
    """
    cost_fn = make_cost(cost)
    ekw = eps_kwargs(eps)
    skw = dict(threshold=threshold, max_iterations=max_iterations,
               inner_iterations=inner_iterations, lse_mode=True, **sinkhorn_kwargs)

    def gap(x, tx):
        value, out = monge_gap_from_samples(
            x, tx, cost_fn=cost_fn, return_output=True, **ekw, **skw)
        aux = dict(eps=out.geom.epsilon, n_iters=out.n_iters, converged=out.converged)
        return value, aux

    @jax.jit
    def value_and_grad_tx(x, tx):
        (value, aux), grad_tx = jax.value_and_grad(gap, argnums=1, has_aux=True)(x, tx)
        return value, grad_tx, aux

    x_np, tx_np = make_data(n, d, seed)
    x = jnp.asarray(x_np, dtype=dtype)
    tx = jnp.asarray(tx_np, dtype=dtype)
    spec = dict(n=n, d=d, cost=str(cost), eps=eps, seed=seed, threshold=threshold,
                max_iterations=max_iterations, dtype=dtype)
    return _Timer(value_and_grad_tx, x, tx, spec)


def median_time(fn: Callable[[], Any], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    print(f"jax {jax.__version__}, devices {jax.devices()}")
    for n in (256, 1024):
        for d in (2, 8):
            for cost in ("sqeuclidean", "euclidean"):
                t0 = time.perf_counter()
                run = ott_monge_gap_timer(n, d, cost=cost, eps=0.5, seed=0)
                warm = time.perf_counter() - t0
                med = median_time(run, repeats=5 if n <= 1024 else 3)
                info = run.info
                print(f"n={n:5d} d={d} cost={cost:12s} eps={info['eps_used']:.3g} "
                      f"iters={info['n_iters']:5d} conv={info['converged']} "
                      f"compile+first={warm:6.2f}s median={1e3 * med:8.2f} ms "
                      f"({1e6 * med / max(info['n_iters'], 1):.1f} us/iter)", flush=True)


if __name__ == "__main__":
    main()
