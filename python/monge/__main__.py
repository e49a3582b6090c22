"""Command line: `python -m monge --help`."""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args):
    """Map fitting with and without the Monge gap on a benchmark whose optimal map is known."""
    import warnings

    import numpy as np

    import monge
    from monge.maps import datasets, metrics
    from monge.maps import EntropicMap, LinearMap, MongeGapMap
    from monge.maps.estimator import auto_reg

    P = datasets.ConvexPotentialMap(2, seed=args.seed)
    X, Y = P.sample_source(args.n, seed=args.seed), P.sample_target(args.n, seed=args.seed + 1)
    Xt = P.sample_source(2000, seed=args.seed + 2)
    Yt = P.sample_target(2000, seed=args.seed + 3)
    print(f"monge {monge.__version__} ({monge.build_info()['simd']}, {monge.get_num_threads()} "
          f"threads): fitting a map x -> grad phi(x), phi convex (known optimal map), d = 2, "
          f"n = {args.n}, {args.n_iter} iterations")
    print(f"  {'map':>24} {'L2-UVP %':>9} {'S_eps(T#mu, nu)':>16} {'Monge gap':>10} {'time':>7}")
    fitted = {}
    reg = auto_reg(X.shape[1]) if args.reg is None else args.reg
    contenders = [("linear (Bures)", lambda: LinearMap()), ("entropic map", lambda: EntropicMap()),
                  ("MLP, lambda = 0", lambda: MongeGapMap(reg=0.0, n_iter=args.n_iter,
                                                          seed=args.seed, verbose=False)),
                  (f"Monge gap, lambda = {reg:g}",
                   lambda: MongeGapMap(reg=reg, n_iter=args.n_iter, seed=args.seed,
                                       verbose=False))]
    for name, make in contenders:
        t0 = time.perf_counter()
        est = make().fit(X, Y)
        dt = time.perf_counter() - t0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", monge.ConvergenceWarning)
            ev = metrics.evaluate_map(est.transform, Xt, y_test=Yt, true_map=P.map)
        fitted[name] = est
        print(f"  {name:>24} {ev['l2_uvp']:>9.2f} {ev['sinkhorn_divergence']:>16.4f} "
              f"{ev['monge_gap']:>10.4f} {dt:>6.1f}s")
    print("  L2-UVP: error of the fitted map against the true one, % of the target variance "
          "(lower is better).")
    if args.out:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("  (no plot: matplotlib is not installed; pip install 'monge[demo]')")
            return 0
        xs = Xt[:300]
        fig, axes = plt.subplots(1, 3, figsize=(15, 5))
        axes[0].scatter(*X[:1000].T, s=3, c="tab:blue", label="source x ~ mu")
        axes[0].scatter(*Y[:1000].T, s=3, c="tab:orange", label="target y ~ nu")
        axes[0].set_title("data")
        axes[0].legend(loc="upper left")
        shown = [c[0] for c in contenders[2:]]
        for ax, name in zip(axes[1:], shown):
            lam_shown = 0.0 if name == shown[0] else reg
            tx, true = fitted[name].transform(xs), P.map(xs)
            ax.scatter(*Yt[:1000].T, s=3, c="tab:orange", alpha=0.3)
            ax.quiver(xs[:, 0], xs[:, 1], *(true - xs).T, angles="xy", scale_units="xy", scale=1,
                      color="0.6", width=0.003, label="true map")
            ax.quiver(xs[:, 0], xs[:, 1], *(tx - xs).T, angles="xy", scale_units="xy", scale=1,
                      color="tab:green" if lam_shown else "tab:red", width=0.003, label="fitted map")
            uvp = metrics.l2_uvp(fitted[name].transform(Xt), P.map(Xt))
            ax.set_title(f"lambda = {lam_shown:g}: L2-UVP {uvp:.1f}%")
            ax.legend(loc="upper left")
        for ax in axes:
            ax.set_aspect("equal")
        fig.tight_layout()
        fig.savefig(args.out, dpi=110)
        print(f"  wrote {args.out}")
    return 0


def _ot_demo(args):
    import numpy as np

    import monge
    from monge.maps import datasets

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
    m = sub.add_parser("demo", help="fit a transport map with and without the Monge gap on built-in "
                                    "data with a known optimal map; print metrics, write a plot")
    m.add_argument("--n", type=int, default=4000, help="training samples per side (default 4000)")
    m.add_argument("--n-iter", type=int, default=600, help="training iterations (default 600)")
    m.add_argument("--reg", type=float, default=None,
                   help="lambda of the Monge gap (default: MongeGapMap's)")
    m.add_argument("--out", default="demo.png", help="plot file ('' for none; default demo.png)")
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(fn=_demo)
    d = sub.add_parser("ot-demo", help="solve entropic OT between two built-in point clouds")
    d.add_argument("--n", type=int, default=4000, help="points per cloud (default 4000)")
    d.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.01, 0.001],
                   help="regularisations to solve for (default 0.1 0.01 0.001)")
    d.add_argument("--tol", type=float, default=1e-6, help="L1 marginal tolerance (default 1e-6)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(fn=_ot_demo)
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
