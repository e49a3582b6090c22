#!/usr/bin/env python
"""CTC loss benchmark: monge against torch's CPU ctc_loss, forward + backward, side by side.

    python benchmarks/ctc.py            B = 32, T = 200, S = 50, C = 40 and C = 1000, float32 and float64
    python benchmarks/ctc.py --quick    smaller sizes: a smoke test

Each contender computes the mean-reduced loss and its gradient with respect to log_probs (a leaf
tensor of log_softmax outputs, so the log_softmax itself is not timed):
  torch             F.ctc_loss(lp, ...).backward()          (torch's native CPU kernel)
  monge.torch       monge.torch.ctc_loss(lp, ...).backward() (alpha pass forward, both passes backward)
  monge NumPy       monge.ctc_loss(..., grad='logits')       (one call, loss and gradient)
Target lengths are uniform in [S/2, S], input lengths in [3T/4, T] (seed 0).  The values and the
gradients are compared (max abs difference printed).  Ratio = monge / torch (target <= 1.0); both
use the machine's threads (torch intra-op threads, monge OpenMP).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (cpu_model, fmt_time, interleaved, load_average, markdown_table,  # noqa: E402
                     recorded, section, usable_cpus, versions)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import monge  # noqa: E402
import monge.torch as mt  # noqa: E402


def case(B, T, S, C, dtype):
    g = torch.Generator().manual_seed(0)
    lp0 = torch.randn(T, B, C, generator=g, dtype=dtype).log_softmax(-1)
    tg = torch.randint(1, C, (B, S), generator=g)
    tl = torch.randint(S // 2, S + 1, (B,), generator=g)
    il = torch.randint(3 * T // 4, T + 1, (B,), generator=g)
    lpn, tgn, iln, tln = lp0.numpy(), tg.numpy(), il.numpy(), tl.numpy()

    def run_torch():
        x = lp0.clone().requires_grad_(True)
        loss = F.ctc_loss(x, tg, il, tl)
        loss.backward()
        return loss.item(), x.grad

    def run_mt():
        x = lp0.clone().requires_grad_(True)
        loss = mt.ctc_loss(x, tg, il, tl)
        loss.backward()
        return loss.item(), x.grad

    def run_np():
        r = monge.ctc_loss(lpn, tgn, iln, tln, grad="logits")
        return r.loss, r.grad

    t = interleaved({"torch": run_torch, "monge.torch": run_mt, "monge NumPy": run_np},
                    repeats=5, warmup=2, min_total=1.0, max_repeats=15)
    ref_loss, ref_grad = t["torch"].result
    rows = []
    name = "f32" if dtype == torch.float32 else "f64"
    for k in ("torch", "monge.torch", "monge NumPy"):
        loss, grad = t[k].result
        gd = np.abs(np.asarray(grad) - ref_grad.numpy())
        if k == "monge.torch":  # true d/dlp: torch's equals ours + exp(lp) on valid frames
            w = 1.0 / (B * np.maximum(tln, 1))
            valid = (np.arange(T)[:, None] < iln[None, :])[..., None] * w[None, :, None]
            gd = np.abs(np.asarray(grad) + np.exp(lpn) * valid - ref_grad.numpy())
        rows.append([f"B={B} T={T} S={S} C={C} {name}", k, fmt_time(t[k].median),
                     f"{t[k].median / t['torch'].median:.3f}", f"{abs(loss - ref_loss):.1e}",
                     f"{gd.max():.1e}"])
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/ctc-DATE.json)")
    args = ap.parse_args(argv)
    return recorded("ctc", "ctc.py", argv, ["numpy", "torch", "monge"], "generated (random "
                    "log-probabilities and targets, seeded)", lambda record: run(args), out=args.out,
                    quick=args.quick)


def run(args):
    section("machine")
    print(f"cpu: {cpu_model()}; usable cpus: {usable_cpus()}; load: {load_average()}")
    print(f"versions: {versions(['numpy', 'torch', 'monge'])}; torch threads "
          f"{torch.get_num_threads()}, monge threads {monge.get_num_threads()}")
    shapes = [(8, 50, 10, 20)] if args.quick else [(32, 200, 50, 40), (32, 200, 50, 1000)]
    rows = []
    for B, T, S, C in shapes:
        for dtype in (torch.float32, torch.float64):
            rows += case(B, T, S, C, dtype)
            print(markdown_table(["case", "solver", "median", "ratio vs torch", "|loss diff|",
                                  "max |grad diff|"], rows[-3:]), flush=True)
    section("summary (forward + backward)")
    print(markdown_table(["case", "solver", "median", "ratio vs torch", "|loss diff|",
                          "max |grad diff|"], rows))
    print(f"\nload at the end: {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
