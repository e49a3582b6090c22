/* monge Gromov–Wasserstein and fused Gromov–Wasserstein.
 *
 * Between two spaces given by their (dis)similarity matrices C1 (n x n) and C2 (m x m) with
 * weights p (n) and q (m), and optionally a feature cost M (n x m), the (fused) GW problem is
 *     min_T  F(T) = (1 - alpha) <M, T> + alpha GW(T),   T 1 = p,  T^T 1 = q,  T >= 0,
 *     GW(T) = sum_ijkl L(C1_ik, C2_jl) T_ij T_kl
 * (the convention of POT: no 1/2; Vayer et al. 2019 for the fused form).  Both losses split as
 * L(a, b) = f1(a) + f2(b) - h1(a) h2(b) (Peyré et al. 2016), so that with r = T 1, c = T^T 1,
 *     tens(T)_ij = (f1(C1) r)_i + (f2(C2) c)_j - (h1(C1) T h2(C2)^T)_ij,   GW(T) = <tens(T), T>
 * costs two matrix products, O(n^2 m + n m^2), and nothing of size n^2 m^2 is formed:
 *   square  L = (a - b)^2:              f1 = a^2,         f2 = b^2, h1 = a, h2 = 2b
 *   kl      L = a log(a / b) - a + b:   f1 = a log a - a, f2 = b,   h1 = a, h2 = log b
 * The gradient is grad GW(T) = tens(T) + tens^T(T) (the same with C1^T, C2^T; 2 tens(T) when both
 * matrices are symmetric, which is detected), and GW(T) = <grad GW(T), T> / 2.
 *
 * Solvers (GW is not convex: both find a stationary point near their start):
 * - entropic: projected mirror descent of Peyré et al. (2016) with step 1/eps,
 *       T_{k+1} = argmin_{T in U(p, q)} <grad F(T_k), T> + eps KL(T | p q^T),
 *   each step a log-domain Sinkhorn solve (sinkhorn.h) warm-started from the previous potentials.
 *   At small eps these iterates can cycle; a damped step, + lam KL(T | T_k), keeps the fixed
 *   points and breaks the cycles (lam is raised automatically when the objective oscillates).
 *   Optional eps-scaling anneals eps over the outer iterations.
 * - cg: conditional gradient (Frank–Wolfe) with the exact network simplex (emd.h) as the linear
 *   minimisation oracle, each solve started from the previous one's optimal basis, and an exact
 *   line search: F is quadratic in T and the direction D = S - T keeps the marginals, so
 *   F(T + t D) = F(T) + t <grad F(T), D> + t^2 alpha GW(D) is minimised in closed form over t in
 *   [0, 1].  By linearity grad GW(T + t D) = (1 - t) grad GW(T) + t grad GW(S), and the vertex S
 *   has at most n + m - 1 entries, so an iteration costs one dense product, not two.
 * - cg, semi-relaxed: the same iteration over {T >= 0 : T 1 = p}, whose vertices put each row's
 *   mass on the column of least gradient.
 * All stop when the objective's change between iterates is <= tol |F| + tol_abs; the entropic
 * solver also needs its last Sinkhorn solve to have met inner_tol (the plan's L1 marginal error).
 */
#ifndef MONGE_GROMOV_H
#define MONGE_GROMOV_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MONGE_GW_SQUARE = 0, MONGE_GW_KL = 1 } monge_gw_loss;
typedef enum { MONGE_GW_ENTROPIC = 0, MONGE_GW_CG = 1 } monge_gw_solver;

typedef struct {
    int loss;            /* monge_gw_loss.  Default MONGE_GW_SQUARE. */
    int solver;          /* monge_gw_solver.  Default MONGE_GW_CG. */
    double alpha;        /* weight of GW against <M, T> in [0, 1]; ignored (1) without M.
                            Default 0.5. */
    double eps;          /* entropic: regularisation (absolute, > 0).
                            Default 0.1. */
    double tol;          /* stop when |F_k - F_{k-1}| <= tol |F_k| + tol_abs.  Default 1e-9. */
    double tol_abs;      /* Default 1e-9 (tol and tol_abs as POT's CG solver). */
    int64_t max_iter;    /* outer iterations.  Default 1000. */
    double inner_tol;    /* entropic: Sinkhorn's L1 marginal tolerance.  Default 1e-9. */
    int64_t inner_max_iter; /* Sinkhorn iterations per step (0: 10000), or the network simplex's
                               pivots (0: no limit).  Default 0. */
    int eps_scaling;     /* entropic: 1 anneals eps from eps_start down to eps, by scaling_factor
                            each time the objective's relative change falls below 1e-4; the
                            last stage (at eps) stops on tol.  Default 0. */
    double eps_start;    /* first eps of the annealing; 0: the largest entry of the first linear
                            cost.  Default 0. */
    double scaling_factor; /* in (0, 1).  Default 0.5. */
    double damping;      /* entropic: lam >= 0 adds lam KL(T | T_k) to each step (the same fixed
                            points, shorter steps); < 0: automatic, 0 until the objective's
                            change alternates in sign 4 times in a row (the iterates cycle),
                            then eps, doubled at each further such run.  Default -1. */
    int semirelaxed;     /* cg only: 1 keeps only T 1 = p, the column marginal free (the
                            semi-relaxed GW of Vincent-Cuaz et al. 2022); the linear oracle is
                            then a row-wise argmin, and q only shapes the start p q^T.
                            Default 0. */
    int warm_start;      /* 1: T holds the initial plan (its marginals should be p and q);
                            0: start from p q^T.  Default 0. */
    int nthreads;        /* threads; <= 0: the library default.  Default 0. */
    monge_progress_fn progress; /* once per outer iteration with (k, |F_k - F_{k-1}| / |F_k|), and
                                   with k = -1 from inside the inner solves (for cancellation
                                   only).  A non-zero return stops: MONGE_EINTR.  May be NULL. */
    void *progress_ctx;
} monge_gw_params;

void monge_gw_params_init(monge_gw_params *par);

typedef struct {
    double value;     /* F(T) at the returned plan */
    double gw;        /* GW(T) */
    double linear;    /* <M, T> (0 without M) */
    double delta;     /* last |F_k - F_{k-1}| / max(|F_k|, tiny) */
    double error;     /* L1 marginal error of T: |T 1 - p|_1 + |T^T 1 - q|_1 */
    double fw_gap;    /* cg: <grad F(T), T - S> at the last linearisation (>= 0; 0 at a
                         stationary point); entropic: NaN */
    double eps;       /* entropic: the eps of the returned plan (> the target when max_iter ran out
                         during eps-scaling); cg: NaN */
    int64_t n_iter;   /* outer iterations */
    int64_t inner_iter; /* Sinkhorn iterations or network simplex pivots, summed */
    int converged;
} monge_gw_info;

/* C1 (n x n) and C2 (m x m) finite (kl: C1 >= 0, C2 > 0), p (n) and q (m) non-negative with equal
 * positive masses (NULL: uniform), M (n x m) finite or NULL.  Writes T (n x m, the plan; holds the
 * start when par->warm_start), and when non-NULL: f (n), g (m) the dual potentials of the last
 * linear problem (cg: the network simplex's; entropic: Sinkhorn's, in the KL(T | p q^T) form), the
 * gradients of F at T with respect to C1 (n x n) and C2 (m x m) with T held fixed (the envelope
 * theorem: the gradient of the value where T is optimal), and info.  Returns MONGE_OK,
 * MONGE_ENOCONV (max_iter reached, or the last inner solve did not converge; outputs valid),
 * MONGE_EINVAL, MONGE_ENONFINITE, MONGE_ENOMEM or MONGE_EINTR. */
int monge_gromov(int64_t n, int64_t m, const double *C1, const double *C2, const double *p,
                 const double *q, const double *M, const monge_gw_params *par, double *T,
                 double *f, double *g, double *grad_C1, double *grad_C2, monge_gw_info *info);

/* GW between point clouds x (n x dx) and y (m x dy), dx, dy <= 16, with C1 and C2 their squared
 * Euclidean distances |x_i - x_k|^2, |y_j - y_l|^2 and the square loss: those matrices have rank
 * d + 2 (after centring, which leaves them unchanged), so every product costs O(n m (dx + dy))
 * and no n x n or m x m matrix is formed (the plan and its gradient remain n x m).  Otherwise as
 * monge_gromov (par->loss must be MONGE_GW_SQUARE); grad_x (n x dx) and grad_y (m x dy), when
 * non-NULL, receive dF/dx and dF/dy at the plan held fixed (envelope theorem). */
int monge_gromov_points(int64_t n, int64_t m, int64_t dx, int64_t dy, const double *x,
                        const double *y, const double *p, const double *q, const double *M,
                        const monge_gw_params *par, double *T, double *f, double *g,
                        double *grad_x, double *grad_y, monge_gw_info *info);

/* C = A B (row-major, A M x K, B K x N), overwriting C: register-tiled, blocked over K, parallel
 * over rows of C; every entry is summed in the same order whatever the thread count.  Returns
 * MONGE_OK or MONGE_EINVAL. */
int monge_gemm(int64_t M, int64_t N, int64_t K, const double *A, const double *B, double *C,
               int nthreads);

#ifdef __cplusplus
}
#endif
#endif
