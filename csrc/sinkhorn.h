/* monge entropic OT: log-domain Sinkhorn on any geometry.
 *
 * Solves  OT_eps(a, b) = min_P <P, C> + eps KL(P | a x b)  (+ KL marginal penalties when
 * unbalanced, see problem.h) through its dual potentials f (n), g (m):
 *     P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps).
 * Balanced updates:  f_i = -eps log sum_j b_j exp((g_j - C_ij)/eps)  (and symmetrically for g);
 * unbalanced ones are scaled by tau / (tau + eps).  Every half-step is a softmin pass of the
 * geometry (one exp per entry, stabilised), and the L1 marginal violation of the current
 * potentials falls out of the same pass, so convergence is tested at every iteration:
 *     error = sum_i |(P 1)_i - a_i t_i| + sum_j |(P^T 1)_j - b_j s_j|,
 * with t_i = exp(-f_i / tau_a) and s_j = exp(-g_j / tau_b) (both 1 when balanced): the KKT
 * condition of the (un)balanced problem.
 *
 * Options: epsilon-scaling (anneal eps geometrically from a large value, warm-starting each stage,
 * each stage run to its own tolerance), warm start from given potentials, and acceleration:
 * by default Anderson acceleration of the map g -> g' (one Sinkhorn iteration), falling back to
 * over-relaxation f <- f + omega (f_sinkhorn - f) with omega chosen from the measured convergence
 * rate (omega* = 2 / (1 + sqrt(1 - theta)), Thibault et al. 2021) when it blows up; a fixed omega
 * turns Anderson off. */
#ifndef MONGE_SINKHORN_H
#define MONGE_SINKHORN_H

#include "problem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* params.eps_scaling */
typedef enum {
    MONGE_EPS_SCALING_OFF = 0,
    MONGE_EPS_SCALING_ON = 1,   /* anneal from eps_start down to eps */
    MONGE_EPS_SCALING_AUTO = 2  /* decided per solve (see the field) */
} monge_eps_scaling;

/* params.kernel */
typedef enum {
    MONGE_KERNEL_OFF = 0,
    MONGE_KERNEL_AUTO = 1,  /* see the field */
    MONGE_KERNEL_ALWAYS = 2
} monge_kernel_mode;

/* Thresholds of the automatic choices, quoted by the bindings' documentation. */
#define MONGE_SINKHORN_AUTO_ANNEAL 1e-4 /* default: AUTO eps scaling anneals when eps < this x max cost */
#define MONGE_SINKHORN_KERNEL_MIN 4096  /* AUTO kernel: from n*m entries */
#define MONGE_SINKHORN_KERNEL_ONLINE_MAX ((int64_t)1 << 21) /* AUTO kernel, online: up to n*m */
#define MONGE_SINKHORN_ANDERSON_MAX 32  /* largest Anderson memory */
#define MONGE_SINKHORN_ANDERSON_STALL 200 /* iterations without a 10% better error before
                                             Anderson hands the stage to the over-relaxation */
#define MONGE_SINKHORN_TOL_F32 1e-4     /* the bindings' default tol for float32 inputs */

typedef struct {
    double eps;            /* regularisation (absolute, > 0).  Default 1e-2. */
    double tol;            /* stop when the L1 marginal violation <= tol.  Default 1e-6. */
    int64_t max_iter;      /* iterations over all stages (one iteration = two half-steps).
                              Default 10000. */
    int eps_scaling;       /* monge_eps_scaling.  ON: anneal eps from eps_start down to eps; AUTO:
                              anneal when eps < MONGE_SINKHORN_AUTO_ANNEAL x the max cost and there
                              is no warm start, else restart annealed when the measured rate
                              projects too many iterations; OFF.  Default OFF. */
    double eps_start;      /* first eps of the annealing; <= 0: the geometry's max cost.
                              Default 0. */
    double scaling_factor; /* eps multiplier between stages, in (0, 1).  Default 0.1. */
    double stage_tol;      /* tolerance of the intermediate stages (the last uses tol).
                              Default 1e-4. */
    double overrelax;      /* omega: 1 = plain Sinkhorn, a value in (0, 2) fixes it, 0 = chosen
                              automatically per stage.  Default 0. */
    int warm_start;        /* 1: f and g hold initial potentials on entry.  Default 0. */
    int compute_cost;      /* 1: one more pass for <P, C>, the plan's mass and the value.
                              Default 1. */
    int nthreads;          /* threads; <= 0: the library default.  Default 0. */
    int kernel;            /* monge_kernel_mode: the float kernel cache (n*m floats,
                              sinkhorn/kernel.c).  AUTO: n*m >= MONGE_SINKHORN_KERNEL_MIN, and dense
                              costs or online ones with n*m <= MONGE_SINKHORN_KERNEL_ONLINE_MAX
                              (larger online problems keep their O(n + m) memory).  Default AUTO. */
    int anderson;          /* Anderson acceleration with this memory (0: off), used when overrelax
                              is 0: the column potentials are extrapolated from the last `anderson`
                              iterations (sinkhorn/accel.c); a stage where it fails or stalls falls
                              back to the automatic over-relaxation.  At most
                              MONGE_SINKHORN_ANDERSON_MAX.  Default 8. */
    monge_progress_fn progress; /* called every iteration (may be NULL).  Default NULL. */
    void *progress_ctx;    /* passed to progress.  Default NULL. */
} monge_sinkhorn_params;

void monge_sinkhorn_params_init(monge_sinkhorn_params *par);

typedef struct {
    double value;     /* OT_eps at the final potentials: the dual objective
                         <a, phi_a(f)> + <b, phi_b(g)> - eps (mass(P) - mass(a) mass(b)),
                         phi(f) = f (balanced) or tau (1 - exp(-f / tau)); equal to <a,f> + <b,g>
                         for balanced probability weights at convergence. */
    double cost;      /* <P, C> (NaN unless compute_cost) */
    double mass;      /* sum_ij P_ij (NaN unless compute_cost) */
    double error;     /* last measured L1 marginal violation */
    int64_t n_iter;   /* iterations done, all stages */
    int converged;    /* 1 when error <= tol at the final eps */
    int n_stages;     /* epsilon stages run */
    double overrelax; /* omega in use at the end */
    int64_t kernel_iter; /* of n_iter, those run on the kernel cache (params.kernel) */
    int64_t anderson_iter; /* of n_iter, those ended by an Anderson extrapolation */
    double eps_reached; /* the eps the potentials (and value, cost, mass) belong to: params.eps,
                           unless max_iter stopped the run in an earlier eps-scaling stage */
} monge_sinkhorn_info;

/* Solves one problem.  f (n) and g (m) receive the potentials (and hold the warm start when
 * par->warm_start).  Balanced potentials, defined up to (f + c, g - c), are returned in the gauge
 * <a, f> = <b, g>.  Returns MONGE_OK, MONGE_ENOCONV (potentials and info still valid),
 * MONGE_EINTR, MONGE_ENONFINITE, MONGE_EINVAL or MONGE_ENOMEM. */
/* The engine's heuristic constants (Anderson damping and hand-over, over-relaxation windows, the
 * annealing probe, the float kernel's hand-back), by name: *previous gets the current value; with
 * value non-NULL it is replaced.  For benchmarks/sinkhorn_suite.py, which re-judges them: not a
 * user option, and not to be called while a solve runs.  Returns MONGE_OK, or MONGE_EINVAL for an
 * unknown name or a bad value (counts must be whole numbers >= 1, the rest > 0 and finite).
 * monge_sinkhorn_tuning_name(i) lists the names (NULL past the last). */
int monge_sinkhorn_tuning(const char *name, const double *value, double *previous);
const char *monge_sinkhorn_tuning_name(int i);

int monge_sinkhorn(const monge_problem *pb, const monge_sinkhorn_params *par, double *f,
                   double *g, monge_sinkhorn_info *info);

/* B problems of the same shapes (n, m): f is B x n, g is B x m, info and status are B long.
 * Parallel over the problems when B > 1 (each solved on one thread), so results equal a loop of
 * single solves.  Returns the first non-OK status in problem order (MONGE_ENOCONV included). */
int monge_sinkhorn_batch(int64_t B, const monge_problem *pbs, const monge_sinkhorn_params *par,
                         double *f, double *g, monge_sinkhorn_info *info, int *status);

/* Symmetric problem OT_eps(a, a) on a geometry whose two sides are the same points (n = m, C
 * symmetric): its potentials coincide, f = g = p, and the update
 *     p <- (1 - w) p + w T(p) + beta (p - p_prev),
 *     T(p)_i = -lam eps log sum_j a_j exp((p_j - C_ij) / eps)
 * (a relaxed fixed-point step with a small momentum, w and beta set by the spectrum of T's
 * Jacobian) converges in a few iterations (the self-terms of the Sinkhorn divergence).  Uses pb->a
 * and pb->tau_a only; honours eps-scaling, warm start (p on entry), tol, max_iter and the callback.
 * info->value is OT_eps(a, a). */
int monge_sinkhorn_symmetric(const monge_problem *pb, const monge_sinkhorn_params *par, double *p,
                             monge_sinkhorn_info *info);

/* The plan P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps), dense n x m in the geometry's dtype. */
int monge_sinkhorn_plan(const monge_problem *pb, double eps, const double *f, const double *g,
                        void *P, int nthreads);

/* Gradient of OT_eps with respect to the points (online geometries), from converged potentials
 * (envelope theorem): out[i*d + k] = sum_j P_ij d c(x_i, y_j) / d x_ik  (n x d), or with
 * transpose the gradient with respect to y (m x d). */
int monge_sinkhorn_grad_points(const monge_problem *pb, double eps, const double *f,
                               const double *g, int transpose, double *out, int nthreads);

/* out = P V (V: m x k) or, with transpose, out = P^T V (V: n x k), without storing P. */
int monge_sinkhorn_apply(const monge_problem *pb, double eps, const double *f, const double *g,
                         int transpose, const double *V, int64_t k, double *out, int nthreads);

/* ------------------------------------------------------------------ multiscale (point clouds)
 * monge_sinkhorn_multiscale solves the same problem as monge_sinkhorn on an online geometry
 * (sqeuclidean, euclidean or pnorm, d <= 8) with memory O(n + m + kept blocks): each cloud is
 * clustered on a grid hierarchy, the solve runs coarse-to-fine (cell centroids while eps is large
 * against the cells), and every half-step sums only the block pairs whose plan mass can matter,
 * plus an upper bound E of the mass it skipped (sinkhorn/multiscale.c explains the bound).  The
 * error the stopping test sees, info->error, is the truncated plan's L1 marginal violation + 2E:
 * an upper bound of the full plan's.  eps is annealed from the largest cost (par->scaling_factor
 * per stage; eps_scaling is ignored), stage_tol holds for the coarse levels and the stages above
 * eps; Anderson acceleration, max_iter, warm start and the callback as in monge_sinkhorn. */
#define MONGE_MS_POINTS 2   /* default cluster_scale: the first grid level with this many points per cell */
#define MONGE_MS_TAU 12.0   /* default truncation */
#define MONGE_MS_SWITCH 0.5 /* default switch_ratio */
#define MONGE_MS_REFINE_AA (-1) /* default refine_anderson: the solver's (benchmarks/multiscale.py
                                   --tune-refine chose memory 8 over plain updates) */
#define MONGE_MS_REFINE_STALL 5 /* default refine_stall (benchmarks/multiscale.py --tune-stall) */
#define MONGE_MS_COARSE 1 /* default coarse_correction */

typedef struct {
    double cluster_scale; /* side of the finest cells (the blocks), rounded down to the grid's powers
                             of two; 0: the first level with MONGE_MS_POINTS points per cell on
                             average.  Default 0. */
    double truncation;    /* tau > 0: a block pair is kept when the bound of its plan mass (box
                             against box, then each item against the other block's box) is at
                             least e^-tau of its row block's or its column block's mass.  Default
                             MONGE_MS_TAU; grown by 4 (up to 60) while the skipped-mass bound
                             exceeds bound_frac x the stage's tolerance. */
    double switch_ratio;  /* alpha > 0: the solve runs on the centroids of cells of side h while
                             eps >= alpha h^2.  Default MONGE_MS_SWITCH. */
    double bound_frac;    /* in (0, 0.5); see truncation (the stopping test adds 2E, so E must
                             stay under half the tolerance).  Default 0.1. */
    double warm_tol;      /* in [0, 1): the tolerance of a coarse level that starts at the target
                             eps (it only warm-starts the next level, at the same eps); 0: the
                             stage tolerance, as on the levels that anneal.  Default 0
                             (benchmarks/multiscale.py --tune-warm: looser costs more on
                             clustered clouds than it saves on uniform ones). */
    int refine_anderson;  /* Anderson memory (0: plain updates) on a level that starts at the
                             target eps after a coarser level that ended there: it only refines
                             the potentials to finer cells, from a warm start near the solution;
                             -1: par->anderson.  Default MONGE_MS_REFINE_AA. */
    int refine_stall;     /* on such a level, the iterations without a 10% better error after
                             which Anderson hands the stage to the adaptive over-relaxation, once
                             the error is within 10x the stage's tolerance (its fast start kept,
                             its stall near the solution cut short); 0: the engine's limit
                             (MONGE_SINKHORN_ANDERSON_STALL) at any error, as on the other
                             levels.  Default MONGE_MS_REFINE_STALL. */
    int coarse_correction; /* 1: on the points level when it only refines (balanced transport,
                             not the symmetric problem, tol >= 1e-4), after two iterations the potentials are
                             shifted by the best correction constant on the finest cells (the
                             scaling problem of the kept plan summed over cell pairs), then plain
                             updates run to the tolerance; skipped when that plan would exceed 2^26
                             entries.  0: off.  Default MONGE_MS_COARSE. */
} monge_ms_params;

void monge_ms_params_init(monge_ms_params *mp);

typedef struct {
    double bound;         /* E at the final potentials: the skipped mass is at most this */
    double truncation;    /* tau at the end */
    double cluster_scale; /* side of the finest cells used */
    int64_t kept_blocks;  /* block pairs kept at the end */
    int64_t kept_entries; /* entries they hold (the work of one half-step) */
    int64_t blocks_x, blocks_y; /* finest cells of each cloud */
    int64_t reselections; /* times tau grew */
    int levels;           /* levels of the hierarchy, the points included */
    int64_t coarse_iterations; /* iterations of the coarse correction's scaling problem; -1: not
                                  applied (too large, or no better than the start); 0: not run */
} monge_ms_info;

int monge_sinkhorn_multiscale(const monge_problem *pb, const monge_sinkhorn_params *par,
                              const monge_ms_params *mp, double *f, double *g,
                              monge_sinkhorn_info *info, monge_ms_info *minfo);

/* monge_sinkhorn_multiscale and the point gradients of OT_eps on the final kept plan (the
 * solve's last selection, at the final potentials): grad_x[i d + k] = sum_j P_ij d c(x_i, y_j) /
 * d x_ik (n x d) and grad_y likewise (m x d), either NULL.  One pass each, without the trees and
 * the selection a later monge_ms_apply rebuilds.  Left unset when the solve is interrupted;
 * MONGE_ENONFINITE when they overflow (an unconverged plan beyond double's range). */
int monge_sinkhorn_multiscale_grad(const monge_problem *pb, const monge_sinkhorn_params *par,
                                   const monge_ms_params *mp, double *f, double *g,
                                   double *grad_x, double *grad_y, monge_sinkhorn_info *info,
                                   monge_ms_info *minfo);

/* The symmetric problem OT_eps(a, a) on the cloud x of pb (y, b and tau_b are ignored): one
 * potential p = f = g and the update of monge_sinkhorn_symmetric
 * (a few iterations: the self-terms of the Sinkhorn divergence); info->value is OT_eps(a, a). */
int monge_sinkhorn_multiscale_symmetric(const monge_problem *pb, const monge_sinkhorn_params *par,
                                        const monge_ms_params *mp, double *p,
                                        monge_sinkhorn_info *info, monge_ms_info *minfo);

/* monge_sinkhorn_multiscale_symmetric and grad[i d + k] = sum_j P_ij d c(x_i, x_j) / d x_ik (the
 * first argument only, n x d; NULL: none) on the final kept plan, as
 * monge_sinkhorn_multiscale_grad. */
int monge_sinkhorn_multiscale_symmetric_grad(const monge_problem *pb,
                                             const monge_sinkhorn_params *par,
                                             const monge_ms_params *mp, double *p, double *grad,
                                             monge_sinkhorn_info *info, monge_ms_info *minfo);

/* Passes over the truncated plan of given potentials (the blocks selected from them with
 * mp->truncation and mp->cluster_scale, e.g. a solve's final values): with
 * P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) on the kept entries (on P^T when transpose),
 * out = P V (V: m x k, k may be 0), rowsum = P 1, rowcost_i = sum_j P_ij C_ij, grad = the gradient
 * of <P, C> in the row points (n x d), *bound = the skipped-mass bound.  Outputs may be NULL. */
int monge_ms_apply(const monge_problem *pb, const monge_ms_params *mp, double eps, const double *f,
                   const double *g, int transpose, const double *V, int64_t k, double *out,
                   double *rowsum, double *rowcost, double *grad, double *bound, int nthreads);

/* The kept entries as coordinates: with rows NULL, *nnz receives their number; else rows, cols
 * and vals (capacity *nnz) receive them and *nnz the count written. */
int monge_ms_plan(const monge_problem *pb, const monge_ms_params *mp, double eps, const double *f,
                  const double *g, int64_t *nnz, int64_t *rows, int64_t *cols, double *vals,
                  int nthreads);

#ifdef __cplusplus
}
#endif
#endif
