"""The routing experiment's model: a one-layer mixture-of-experts classifier (PyTorch, imported
when a model is built) and the routers of :mod:`monge.routing` it is trained with."""
from __future__ import annotations

import numpy as np

from ... import routing


def make_router(name, capacity_factor, gamma, eps):
    if name == "topk":
        def fn(logits):
            n, E = logits.shape
            return routing.topk_route(logits, routing.capacity_from_factor(n, E, capacity_factor))
    elif name == "sinkhorn":
        def fn(logits):
            n, E = logits.shape
            return routing.sinkhorn_route(logits, routing.capacity_from_factor(n, E, capacity_factor),
                                          eps=eps)
    elif name == "sparse_ot":
        def fn(logits):
            n, E = logits.shape
            return routing.sparse_ot_route(logits,
                                           routing.capacity_from_factor(n, E, capacity_factor),
                                           gamma=gamma, max_iter=200)
    else:
        raise ValueError(f"router: unknown {name!r}")
    return fn


def build_model(n_experts, d=32, hidden=64, seed=0):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class MoEClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, d)
            self.pos = nn.Parameter(0.1 * torch.randn(8, d))
            self.router = nn.Linear(d, n_experts)
            self.experts = nn.ModuleList(
                [nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
                 for _ in range(n_experts)])
            self.head = nn.Linear(d, 10)

        def forward(self, x, router_fn):
            B = x.shape[0]
            tok = (self.embed(x) + self.pos).reshape(B * 8, d)
            logits = self.router(tok)
            probs = torch.softmax(logits, dim=1)
            res = router_fn(logits.detach().cpu().numpy().astype(np.float64))
            mask = torch.from_numpy(res.dispatch_mask())
            out = torch.zeros_like(tok)
            for j, expert in enumerate(self.experts):
                idx = torch.nonzero(mask[:, j]).squeeze(1)
                if idx.numel():
                    out = out.index_add(0, idx, probs[idx, j:j + 1] * expert(tok[idx]))
            h = (tok + out).reshape(B, 8, d).mean(dim=1)
            # Switch load-balancing loss: E * sum_j (fraction routed to j) * (mean gate prob of j)
            frac = mask.float().mean(dim=0)
            aux = n_experts * torch.sum(frac * probs.mean(dim=0))
            return self.head(h), res, aux

    return MoEClassifier()
