"""OT routing of tokens to experts (Liu, Puigcerver & Blondel, ICLR 2023, the mixture-of-experts
application): a small mixture-of-experts classifier on scikit-learn's bundled 8x8 digits, whose
tokens are the 8 pixel rows of an image, trained with each router of monge.routing over 3 seeds.

    python -m monge.experiments.routing                # full run: 60 epochs, 3 seeds x 3 routers (~2 min)
    python -m monge.experiments.routing --quick        # seconds: one short epoch on a subset
    python -m monge.experiments.routing --out results.json
    python -m monge.experiments.routing --render results.json   # its table, as in the docs

Model: row embedding (8 -> d) + position embedding; one MoE layer (a linear router to E experts,
each a 2-layer MLP, residual: a dropped token passes through unchanged); mean pooling; a linear
classifier.  The router decides which experts see a token (capacity = ceil(factor x tokens / E) per
expert); the experts' outputs are weighted by the gate probabilities softmax(router logits), through
which the router learns.  top-k gating is trained with the Switch-Transformer load-balancing loss
(the OT routers balance by construction).

Reported on the test set (routing at test time with the same capacity rule): accuracy, dropped
tokens (%), load balance (max expert load / mean load), experts per routed token, and for
sparse-OT the fraction of nonzero plan entries.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from .data import load_digits_tokens
from .model import build_model, make_router


def route_stats(res, n_tokens):
    routed = res.experts >= 0
    per_token = routed.sum(axis=1)
    return dict(dropped=res.dropped, tokens=n_tokens, balance=res.balance(),
                experts_per_token=float(per_token[per_token > 0].mean()) if res.dropped < n_tokens else 0.0,
                density=float(routed.sum()) / (n_tokens * res.n_experts),
                converged=bool(res.converged))


def train_one(router, seed, quick=False, n_experts=4, capacity_factor=1.0, epochs=None,
              batch=64, lr=3e-3, gamma=0.5, eps=0.05, aux_weight=0.01, verbose=False):
    import torch
    from sklearn.model_selection import train_test_split

    X, y = load_digits_tokens()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    if quick:
        Xtr, ytr, Xte, yte = Xtr[:256], ytr[:256], Xte[:128], yte[:128]
    epochs = epochs if epochs is not None else (3 if quick else 60)
    fn = make_router(router, capacity_factor, gamma, eps)
    model = build_model(n_experts, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    Xtr_t, ytr_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    t0 = time.perf_counter()
    train_dropped = train_tokens = 0
    for ep in range(epochs):
        perm = rng.permutation(len(Xtr))
        for s in range(0, len(perm), batch):
            idx = torch.from_numpy(perm[s:s + batch])
            logits, res, aux = model(Xtr_t[idx], fn)
            loss = torch.nn.functional.cross_entropy(logits, ytr_t[idx])
            if router == "topk":
                loss = loss + aux_weight * aux
            opt.zero_grad()
            loss.backward()
            opt.step()
            train_dropped += res.dropped
            train_tokens += 8 * len(idx)
        if verbose:
            print(f"  {router} seed {seed} epoch {ep + 1}/{epochs} loss {loss.item():.3f}", flush=True)
    train_time = time.perf_counter() - t0
    with torch.no_grad():
        logits, res, _ = model(torch.from_numpy(Xte), fn)
    acc = float((logits.argmax(dim=1).numpy() == yte).mean())
    st = route_stats(res, 8 * len(Xte))
    return dict(router=router, seed=seed, accuracy=acc, dropped_pct=100.0 * st["dropped"] / st["tokens"],
                train_dropped_pct=100.0 * train_dropped / max(train_tokens, 1), balance=st["balance"],
                experts_per_token=st["experts_per_token"], density=st["density"],
                converged=st["converged"], train_time=train_time, epochs=epochs)


def run(quick=False, seeds=(0, 1, 2), routers=("topk", "sinkhorn", "sparse_ot"), verbose=False,
        **kw):
    import torch

    torch.set_num_threads(1)  # small model; keeps a shared machine usable
    out = []
    for r in routers:
        for s in seeds:
            res = train_one(r, s, quick=quick, verbose=verbose, **kw)
            out.append(res)
            if verbose:
                print(f"{r} seed {s}: accuracy {res['accuracy']:.3f} dropped {res['dropped_pct']:.1f}% "
                      f"balance {res['balance']:.2f} ({res['train_time']:.0f} s)", flush=True)
    return out


def table(results):
    """Markdown table, mean +- std over seeds per router."""
    rows = ["| router | accuracy (%) | dropped tokens (%) | load balance (max/mean) | experts per routed token | plan density (%) | train time (s) |",
            "|---|---|---|---|---|---|---|"]
    for r in dict.fromkeys(x["router"] for x in results):
        sel = [x for x in results if x["router"] == r]

        def ms(key, scale=1.0, fmt=".2f"):
            v = np.array([x[key] for x in sel], dtype=float) * scale
            return f"{v.mean():{fmt}} ± {v.std():{fmt}}"

        rows.append(f"| {r} | {ms('accuracy', 100, '.1f')} | {ms('dropped_pct', 1, '.1f')} | "
                    f"{ms('balance')} | {ms('experts_per_token')} | {ms('density', 100, '.1f')} | "
                    f"{ms('train_time', 1, '.0f')} |")
    return "\n".join(rows)


def render(path):
    """The table of a results file written by ``--out``, and the line naming its run."""
    from .._results import source_line

    with open(path) as fh:
        res = json.load(fh)
    st = res["meta"]["settings"]
    head = (f"capacity factor {st['capacity_factor']:g}, {st['experts']} experts, "
            f"{len(st['seeds'])} seeds (mean ± std)")
    return head + "\n\n" + table(res["rows"]) + "\n\n" + source_line(path, res["meta"]) + "\n"


def toy_plans(n=16, gamma=None, ks=(1, 2, 4, None), seed=0):
    """Dense plans of k-sparse OT between two 1-D point sets for each k (None: quadratic OT):
    {k: (n, n) plan}, the points sorted so that the exact OT plan is the identity."""
    import warnings

    from ..._policy import ConvergenceWarning
    from ...smooth import quadratic_ot, sparse_ot

    rng = np.random.default_rng(seed)
    x = np.sort(rng.random(n))
    y = np.sort(rng.random(n))
    C = (x[:, None] - y[None, :]) ** 2
    gamma = gamma if gamma is not None else 2.0 * n * C.mean()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for k in ks:
            res = quadratic_ot(None, None, C, gamma) if k is None else sparse_ot(None, None, C, k, gamma)
            out[k] = res.plan.toarray()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m monge.experiments.routing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="seconds-scale run (one epoch, a subset)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--routers", nargs="+", default=["topk", "sinkhorn", "sparse_ot"])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--capacity-factor", type=float, default=1.0)
    ap.add_argument("--out", help="results JSON (meta: command, commit, machine, versions; per-run rows)")
    ap.add_argument("--render", metavar="JSON", help="print the table of a results file and exit")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.render:
        print(render(args.render))
        return 0
    from .. import _results

    meta = _results.start("python -m monge.experiments.routing", argv)
    quick = args.quick or os.environ.get("MONGE_NOTEBOOK_QUICK") == "1"
    t0 = time.perf_counter()
    res = run(quick=quick, seeds=tuple(args.seeds), routers=tuple(args.routers),
              verbose=args.verbose, epochs=args.epochs, n_experts=args.experts,
              capacity_factor=args.capacity_factor)
    print(table(res))
    print(f"\n{len(res)} runs in {time.perf_counter() - t0:.0f} s "
          f"({'quick' if quick else 'full'}; {args.experts} experts, capacity factor "
          f"{args.capacity_factor:g})")
    if args.out:
        meta = _results.finish(meta, data="scikit-learn's bundled 8x8 digits (load_digits)",
                               settings=dict(quick=quick, seeds=list(args.seeds),
                                             routers=list(args.routers), epochs=args.epochs,
                                             experts=args.experts,
                                             capacity_factor=args.capacity_factor))
        _results.write(args.out, meta, res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
