"""Generate OTT-JAX reference values for the Monge gap.

Writes ``tests/fixtures/ott_monge_gap.npz`` (plain float64 arrays, no pickles)
and ``tests/fixtures/ott_monge_gap.json`` (one record per case) so that the
test suite can compare against OTT without importing JAX.

Requirements (not needed by the test suite): ``jax``, ``jaxlib``, ``ott-jax``
(0.6.0 was used) and, because ``monge_gap_from_samples`` lives in
``ott.neural``, also ``flax`` and ``diffrax`` (ott-jax's "neural" extra).

Run from the repository root::

    .venv/bin/python benchmarks/ott_fixtures.py

What OTT computes (ott-jax 0.6.0, ``ott/neural/methods/monge_gap.py``)::

    value = mean_i c(x_i, tx_i) - out.ent_reg_cost
    out.ent_reg_cost = <P, C> - eps * H(P),   H(P) = -sum_ij P_ij log P_ij
    out.reg_ot_cost  = <P, C> + eps * KL(P | a b^T) = ent_reg_cost + 2 eps log n

with uniform weights a = b = 1/n, C_ij = c(x_i, tx_j), and the plan
``P_ij = exp((f_i + g_j - C_ij) / eps)`` (OTT's potentials absorb eps*log a
and eps*log b).  The stored gradients are ``jax.grad`` of that function with
OTT's default differentiation (implicit differentiation enabled, which turns
on ``use_danskin``: the potentials are frozen, i.e. the envelope theorem).
An epsilon derived from the data (``epsilon=None`` or ``relative_epsilon``)
passes through ``jax.lax.stop_gradient`` in OTT, so the stored gradients hold
that epsilon fixed.  Each case is checked against (a) OTT's implicit
differentiation through the potentials (``use_danskin=False``) and
(b) central finite differences on one coordinate of ``tx`` and of ``x`` with
epsilon frozen at its value; both discrepancies are recorded in the JSON.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import ott  # noqa: E402
from ott.geometry import costs, regularizers  # noqa: E402
from ott.solvers.linear import acceleration  # noqa: E402
from ott.neural.methods.monge_gap import monge_gap_from_samples  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")
NPZ_PATH = os.path.join(OUT_DIR, "ott_monge_gap.npz")
JSON_PATH = os.path.join(OUT_DIR, "ott_monge_gap.json")

# Sinkhorn settings used for every case (passed through monge_gap_from_samples
# to ott.solvers.linear.sinkhorn.Sinkhorn).  threshold is on the L1 error of
# the column marginal (norm_error=1), checked every inner_iterations steps.
# Lehmann's adaptive over-relaxation (Momentum(start=500)) changes only the
# path, not the fixed point; without it some cases (e.g. Euclidean cost with the
# default epsilon) stall around a 1e-10 marginal error after 400k iterations.
SINKHORN_KW = dict(
    lse_mode=True,
    threshold=1e-12,
    norm_error=1,
    inner_iterations=10,
    max_iterations=400_000,
    momentum=acceleration.Momentum(start=500),
)

# (d, n, seed): the same x, tx are used for every cost and epsilon mode.
SHAPES = [(2, 64, 20264), (5, 64, 50264), (2, 128, 20128), (5, 128, 50128)]

# name -> (OTT class name, parameter dict, constructor)
COSTS = {
    "sqeuclidean": ("SqEuclidean", {}, lambda: costs.SqEuclidean()),
    "euclidean": ("Euclidean", {}, lambda: costs.Euclidean()),
    "pnormp1p5": ("PNormP", {"p": 1.5}, lambda: costs.PNormP(1.5)),
    "cosine": ("Cosine", {"ridge": 1e-8}, lambda: costs.Cosine(ridge=1e-8)),
    # ott-jax 0.6.0 has no costs.ElasticL1; the elastic cost
    # h(z) = 0.5*rho*|z|^2 + lam*|z|_1 is costs.RegTICost(regularizers.L1(), lam, rho)
    "elasticl1_lam0p5": ("RegTICost(L1)", {"lam": 0.5, "rho": 1.0},
                         lambda: costs.RegTICost(regularizers.L1(), lam=0.5, rho=1.0)),
    "elasticl1_lam2p0": ("RegTICost(L1)", {"lam": 2.0, "rho": 1.0},
                         lambda: costs.RegTICost(regularizers.L1(), lam=2.0, rho=1.0)),
}

# name -> (mode, parameter, kwargs for monge_gap_from_samples)
# The absolute value is 0.5 rather than 0.1: with eps = 0.1 several n = 64
# cases (SqEuclidean d=5, ElasticL1) do not reach a 1e-12 marginal error in
# 400k Sinkhorn iterations; the data-driven modes cover eps ~ 0.02 .. 0.45.
#   absolute: eps = epsilon
#   default : epsilon=None, relative_epsilon=None -> eps = 0.05 * std(C)
#   mean    : eps = epsilon * mean(C)
#   std     : eps = epsilon * std(C)   (population std over all n*m entries)
EPS_MODES = {
    "abs0p5": ("absolute", 0.5, dict(epsilon=0.5)),
    "default": ("default", None, dict(epsilon=None)),
    "mean0p05": ("mean", 0.05, dict(epsilon=0.05, relative_epsilon="mean")),
    "std0p1": ("std", 0.1, dict(epsilon=0.1, relative_epsilon="std")),
}

FD_STEP = 1e-5  # PNormP(1.5) has |z|^-0.5 curvature: 1e-4 steps over kinks give ~1e-6 errors


def make_data(d: int, n: int, seed: int):
    """x ~ N(0, I_d); tx = x @ M + b + 0.1 * noise for a random M and shift b."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    M = rng.standard_normal((d, d)) / math.sqrt(d) + 0.5 * np.eye(d)
    b = 0.5 * rng.standard_normal(d)
    tx = x @ M + b + 0.1 * rng.standard_normal((n, d))
    return x, tx


def build(cost_fn, eps_kw, danskin=True):
    """Jitted (value, aux), (grad_x, grad_tx) of OTT's Monge gap."""
    extra = {} if danskin else {"use_danskin": False}

    def fn(x, tx):
        value, out = monge_gap_from_samples(
            x, tx, cost_fn=cost_fn, return_output=True, **eps_kw,
            **SINKHORN_KW, **extra,
        )
        errs = out.errors
        last_err = jnp.min(jnp.where(errs >= 0, errs, jnp.inf))
        aux = dict(
            eps=out.geom.epsilon,
            ent_reg_cost=out.ent_reg_cost,
            reg_ot_cost=out.reg_ot_cost,
            f=out.f,
            g=out.g,
            converged=out.converged,
            n_iters=out.n_iters,
            err=last_err,
            disp=jnp.mean(jax.vmap(cost_fn)(x, tx)),
        )
        return value, aux

    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1), has_aux=True))


def build_fixed_eps(cost_fn, danskin=True, grad=True):
    """Jitted Monge gap (and gradient) with an absolute, traced epsilon."""
    extra = {} if danskin else {"use_danskin": False}

    def fn(x, tx, eps):
        return monge_gap_from_samples(x, tx, cost_fn=cost_fn, epsilon=eps,
                                      **SINKHORN_KW, **extra)

    return jax.jit(jax.value_and_grad(fn, argnums=(0, 1)) if grad else fn)


def build_value(cost_fn, eps_kw):
    def fn(x, tx):
        return monge_gap_from_samples(x, tx, cost_fn=cost_fn, **eps_kw,
                                      **SINKHORN_KW)

    return jax.jit(fn)


def central_fd(fun, arr, idx, h):
    plus = arr.at[idx].add(h)
    minus = arr.at[idx].add(-h)
    return (float(fun(plus)) - float(fun(minus))) / (2.0 * h)


def main() -> int:
    os.makedirs(OUT_DIR, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    records = []
    t_start = time.time()
    worst = dict(implicit_rel=0.0, fd_rel=0.0, abs_rel=0.0)

    for d, n, seed in SHAPES:
        x_np, tx_np = make_data(d, n, seed)
        x, tx = jnp.asarray(x_np), jnp.asarray(tx_np)
        # coordinates probed by finite differences (fixed per shape)
        i_fd, k_fd = 3, d - 1
        for cname, (ott_name, cparams, make_cost) in COSTS.items():
            cost_fn = make_cost()
            val_fixed = build_fixed_eps(cost_fn, grad=False)
            vg_fixed = build_fixed_eps(cost_fn)
            vg_implicit = build_fixed_eps(cost_fn, danskin=False)
            for ename, (emode, eparam, eps_kw) in EPS_MODES.items():
                case = f"{cname}_{ename}_d{d}_n{n}"
                t0 = time.time()
                (value, aux), (gx, gtx) = build(cost_fn, eps_kw)(x, tx)
                aux = jax.device_get(aux)
                if not bool(aux["converged"]):
                    raise RuntimeError(f"{case}: Sinkhorn did not converge "
                                       f"(err={aux['err']:.3e})")
                eps = float(aux["eps"])
                scale = max(float(jnp.max(jnp.abs(gtx))), float(jnp.max(jnp.abs(gx))))
                # cross-check 0: same call with the absolute epsilon OTT used
                v_abs, (gx_a, gtx_a) = vg_fixed(x, tx, eps)
                abs_rel = max(abs(float(v_abs) - float(value)) / max(1.0, abs(float(value))),
                              float(jnp.max(jnp.abs(gtx_a - gtx))) / scale,
                              float(jnp.max(jnp.abs(gx_a - gx))) / scale)
                # cross-check 1: implicit differentiation through f, g
                _, (gx_i, gtx_i) = vg_implicit(x, tx, eps)
                implicit_rel = max(float(jnp.max(jnp.abs(gtx_i - gtx))),
                                   float(jnp.max(jnp.abs(gx_i - gx)))) / scale
                # cross-check 2: finite differences with eps frozen at its value
                fd_tx = central_fd(lambda a: val_fixed(x, a, eps), tx, (i_fd, k_fd), FD_STEP)
                fd_x = central_fd(lambda a: val_fixed(a, tx, eps), x, (i_fd, k_fd), FD_STEP)
                fd_rel = max(abs(fd_tx - float(gtx[i_fd, k_fd])),
                             abs(fd_x - float(gx[i_fd, k_fd]))) / scale
                rec = dict(
                    case=case, cost=cname, ott_cost=ott_name, cost_params=cparams,
                    eps_mode=emode, eps_param=eparam, eps=eps, n=n, d=d, seed=seed,
                    value=float(value), sinkhorn_n_iters=int(aux["n_iters"]),
                    sinkhorn_err=float(aux["err"]),
                    grad_check=dict(
                        coord=[i_fd, k_fd],
                        fd_step=FD_STEP,
                        fd_grad_tx=fd_tx, grad_tx=float(gtx[i_fd, k_fd]),
                        fd_grad_x=fd_x, grad_x=float(gx[i_fd, k_fd]),
                        fd_max_rel_err=fd_rel,
                        implicit_vs_danskin_max_rel_diff=implicit_rel,
                        same_as_absolute_eps_max_rel_diff=abs_rel,
                    ),
                )
                # data-dependent epsilon: how much does OTT's stop_gradient matter?
                if emode != "absolute" and (d, n) == SHAPES[0][:2]:
                    val_rel = build_value(cost_fn, eps_kw)
                    tot_tx = central_fd(lambda a: val_rel(x, a), tx, (i_fd, k_fd), FD_STEP)
                    tot_x = central_fd(lambda a: val_rel(a, tx), x, (i_fd, k_fd), FD_STEP)
                    rec["grad_check"]["fd_total_grad_tx_eps_recomputed"] = tot_tx
                    rec["grad_check"]["fd_total_grad_x_eps_recomputed"] = tot_x
                records.append(rec)
                worst["implicit_rel"] = max(worst["implicit_rel"], implicit_rel)
                worst["fd_rel"] = max(worst["fd_rel"], fd_rel)
                worst["abs_rel"] = max(worst["abs_rel"], abs_rel)

                arrays[f"{case}_x"] = x_np
                arrays[f"{case}_tx"] = tx_np
                arrays[f"{case}_value"] = np.asarray(value, dtype=np.float64)
                arrays[f"{case}_eps"] = np.asarray(aux["eps"], dtype=np.float64)
                arrays[f"{case}_ent_reg_cost"] = np.asarray(aux["ent_reg_cost"], dtype=np.float64)
                arrays[f"{case}_reg_ot_cost"] = np.asarray(aux["reg_ot_cost"], dtype=np.float64)
                arrays[f"{case}_disp_cost"] = np.asarray(aux["disp"], dtype=np.float64)
                arrays[f"{case}_f"] = np.asarray(aux["f"], dtype=np.float64)
                arrays[f"{case}_g"] = np.asarray(aux["g"], dtype=np.float64)
                arrays[f"{case}_grad_tx"] = np.asarray(gtx, dtype=np.float64)
                arrays[f"{case}_grad_x"] = np.asarray(gx, dtype=np.float64)
                print(f"{case:36s} eps={eps:.5g} value={float(value):+.10f} "
                      f"iters={int(aux['n_iters'])} err={float(aux['err']):.1e} "
                      f"abs={abs_rel:.0e} implicit={implicit_rel:.0e} fd={fd_rel:.0e} "
                      f"({time.time() - t0:.1f}s)", flush=True)

    meta = dict(
        description="OTT-JAX reference values for the Monge gap; arrays in "
                    "ott_monge_gap.npz under keys '<case>_<field>'.",
        generator="benchmarks/ott_fixtures.py",
        ott_jax_version=ott.__version__,
        jax_version=jax.__version__,
        dtype="float64",
        fields=["x", "tx", "value", "eps", "ent_reg_cost", "reg_ot_cost",
                "disp_cost", "f", "g", "grad_tx", "grad_x"],
        definitions=dict(
            value="mean_i c(x_i, tx_i) - ent_reg_cost",
            disp_cost="mean_i c(x_i, tx_i)",
            ent_reg_cost="<P,C> - eps*H(P), H(P) = -sum P log P",
            reg_ot_cost="<P,C> + eps*KL(P | a b^T) = ent_reg_cost + 2*eps*log(n)",
            plan="P_ij = exp((f_i + g_j - C_ij)/eps), C_ij = c(x_i, tx_j), a=b=1/n",
            potentials="f, g as returned by OTT (start from 0, Sinkhorn g-update then "
                       "f-update; no recentering): defined up to (f+c, g-c)",
            grads="jax.grad of monge_gap_from_samples w.r.t. x and tx; OTT default "
                  "(implicit diff + use_danskin, i.e. envelope theorem); data-dependent "
                  "eps is stop_gradient-ed (held fixed)",
            eps_modes={
                "absolute": "eps = eps_param",
                "default": "epsilon=None: eps = 0.05 * std(C)",
                "mean": "relative_epsilon='mean': eps = eps_param * mean(C)",
                "std": "relative_epsilon='std': eps = eps_param * std(C) "
                       "(population std over all entries)",
            },
            costs={
                "sqeuclidean": "|x-y|_2^2 (no 1/2)",
                "euclidean": "|x-y|_2",
                "pnormp1p5": "sum_k |x_k-y_k|^p / p with p = 1.5",
                "cosine": "1 - <x,y> / (|x| |y| + ridge), ridge = 1e-8",
                "elasticl1_lam*": "h(x-y), h(z) = 0.5*rho*|z|_2^2 + lam*|z|_1, rho = 1",
            },
        ),
        sinkhorn=dict(SINKHORN_KW, momentum="acceleration.Momentum(start=500) (Lehmann adaptive)",
                      solver="ott.solvers.linear.sinkhorn.Sinkhorn"),
        worst_implicit_vs_danskin_rel=worst["implicit_rel"],
        worst_fd_rel=worst["fd_rel"],
        worst_same_as_absolute_eps_rel=worst["abs_rel"],
        cases=records,
    )
    np.savez(NPZ_PATH, **arrays)
    with open(JSON_PATH, "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(records)} cases to {NPZ_PATH} and {JSON_PATH} "
          f"in {time.time() - t_start:.0f}s; worst implicit-vs-danskin "
          f"{worst['implicit_rel']:.1e}, worst FD {worst['fd_rel']:.1e}, "
          f"worst same-as-absolute-eps {worst['abs_rel']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
