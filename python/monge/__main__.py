"""Command line: `python -m monge --help`."""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args):
    import numpy as np

    import monge
    from monge import datasets

    x = datasets.eight_gaussians(args.n, seed=args.seed)
    y = datasets.moons(args.n, seed=args.seed + 1) * 2.0
    print(f"monge {monge.__version__} ({monge.build_info()['simd']}, "
          f"{monge.get_num_threads()} threads): entropic OT, 8 gaussians -> moons, n = m = {args.n}")
    for eps in args.eps:
        t0 = time.perf_counter()
        r = monge.sinkhorn(x, y, eps=eps, tol=args.tol)
        dt = time.perf_counter() - t0
        print(f"  eps={eps:<8g} OT_eps={r.value:.6f}  <P,C>={r.cost:.6f}  iterations={r.n_iter:<5d} "
              f"marginal error={r.error:.2e}  converged={r.converged}  time={dt * 1e3:.1f} ms")
    return 0


def _solve(args):
    import numpy as np

    import monge

    x = np.load(args.x, allow_pickle=False)
    y = np.load(args.y, allow_pickle=False)
    r = monge.sinkhorn(x, y, eps=args.eps, cost=args.cost, tol=args.tol, max_iter=args.max_iter)
    print(f"value {r.value:.12g}\ncost {r.cost:.12g}\niterations {r.n_iter}\nerror {r.error:.3e}\n"
          f"converged {r.converged}")
    if args.out:
        np.savez(args.out, f=r.f, g=r.g)
    return 0 if r.converged else 1


def _info(args):
    import monge

    info = monge.build_info()
    print(f"monge {info['version']}\nopenmp {info['openmp']}\nsimd {info['simd']}\n"
          f"threads {monge.get_num_threads()}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="monge", description="Optimal transport with a C core.")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="solve entropic OT between two built-in point clouds")
    d.add_argument("--n", type=int, default=4000, help="points per cloud (default 4000)")
    d.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.01, 0.001],
                   help="regularisations to solve for (default 0.1 0.01 0.001)")
    d.add_argument("--tol", type=float, default=1e-6, help="L1 marginal tolerance (default 1e-6)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=_demo)
    s = sub.add_parser("sinkhorn", help="solve entropic OT between two .npy point clouds")
    s.add_argument("x", help="source points, .npy of shape (n, d)")
    s.add_argument("y", help="target points, .npy of shape (m, d)")
    s.add_argument("--eps", type=float, required=True)
    s.add_argument("--cost", default="sqeuclidean",
                   choices=["sqeuclidean", "euclidean", "pnorm", "cosine"])
    s.add_argument("--tol", type=float, default=1e-6)
    s.add_argument("--max-iter", type=int, default=10000)
    s.add_argument("--out", help="write the potentials to this .npz")
    s.set_defaults(fn=_solve)
    i = sub.add_parser("info", help="version, OpenMP and SIMD level of the build")
    i.set_defaults(fn=_info)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
