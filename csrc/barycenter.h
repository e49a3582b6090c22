/* monge fixed-support entropic Wasserstein barycenters.
 *
 * Given K weighted inputs (support y_k with weights b_k, sum 1) and weights lambda_k >= 0 summing
 * to 1, the barycenter on a fixed support x_1..x_n is the a minimising
 *     sum_k lambda_k OT_eps(a, b_k),  OT_eps(a, b) = min_{P 1 = a, P^T 1 = b} <P, C> + eps KL(P | K)
 * with the Gibbs kernel K = exp(-C/eps) as reference (Benamou et al. 2015).  It is found by
 * iterative Bregman projections in the log domain, f_k and g_k the potentials of plan k,
 * P_k = exp((f_k,i + g_k,j - C_k,ij) / eps):
 *     g_k   = eps log b_k - softmin_cols(f_k)          (plan k's second marginal is b_k)
 *     r_k   = softmin_rows(g_k)                         (eps log of K_k exp(g_k/eps))
 *     log a = log c + sum_k lambda_k r_k / eps          (weighted geometric mean of the first
 *     f_k   = eps log a - r_k                            marginals; every plan's first is a)
 * with c = 1.  The debiased barycenter (Janati et al., ICML 2020) removes the entropic blur: c is
 * the solution of c * (K_xx c) = a, K_xx = exp(-C_xx/eps) on the barycenter's support, updated by
 *     log c <- (log c + log a - softmin_rows_xx(eps log c) / eps) / 2.
 * The error tested against tol is the largest L1 error of a plan's second marginal,
 * max_k |P_k^T 1 - b_k|_1 (the first marginals are a by construction), plus for the debiased
 * variant the residual |c * (K_xx c) - a|_1.  Every kernel is monge_softmin on the inputs'
 * geometries: dense costs or point clouds with an online cost, float64 or float32.
 */
#ifndef MONGE_BARYCENTER_H
#define MONGE_BARYCENTER_H

#include "common.h"
#include "geometry.h"
#include "emd.h"
#include "sinkhorn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    double eps;        /* regularisation (absolute, > 0).  Default 0.1. */
    double tol;        /* stop when the error (see above) <= tol.  Default 1e-6. */
    int64_t max_iter;  /* iteration limit.  Default 10000. */
    int debiased;      /* 1: the debiased barycenter (needs the support's own geometry). */
    int anderson;      /* Anderson mixing of the iterates: its memory (0: off, at most 32), or
                          -1 (default): 8 for the plain barycenter, off for the debiased one. */
    int nthreads;      /* threads of the kernels; <= 0: the library default. */
    monge_progress_fn progress; /* may be NULL; called once per iteration */
    void *progress_ctx;
} monge_barycenter_params;

void monge_barycenter_params_init(monge_barycenter_params *par);

/* K >= 1 inputs.  geoms[k]: the n x m_k geometry between the barycenter's support (rows, the same
 * n for every k) and input k's support; b[k]: its m_k weights (>= 0, sum 1 within 1e-6);
 * lambda: K weights (>= 0, sum 1 within 1e-6).  self: the n x n geometry of the barycenter's
 * support with itself, needed when par->debiased (ignored otherwise; may be NULL).
 * Writes a (n; sums to 1 at convergence), and when non-NULL: f (K x n), g (sum_k m_k, input k's
 * block after input k-1's), logc (n, eps log c of the debiasing; 0 when not debiased), *error
 * and *n_iter.  Returns MONGE_OK, MONGE_ENOCONV (max_iter reached; outputs valid), MONGE_EINVAL,
 * MONGE_ENONFINITE, MONGE_ENOMEM or MONGE_EINTR. */
int monge_barycenter(int64_t K, const monge_geometry *geoms, const double *const *b,
                     const double *lambda, const monge_geometry *self,
                     const monge_barycenter_params *par, double *a, double *f, double *g,
                     double *logc, double *error, int64_t *n_iter);

/* N barycenter problems on the same geometries, problem p with the K histograms b[p*K + k] and
 * the weights lambda[p*K .. p*K + K): its outputs at a + p*n, f + p*K*n, g + p*M (M = sum_k m_k),
 * logc + p*n, error[p], n_iter[p] and (when non-NULL) status[p].  The problems run in parallel,
 * one per thread (par->progress is not called).  Returns MONGE_OK when every problem converged,
 * MONGE_ENOCONV when some reached max_iter (every output valid), or the first other error. */
int monge_barycenter_batch(int64_t N, int64_t K, const monge_geometry *geoms,
                           const double *const *b, const double *lambda,
                           const monge_geometry *self, const monge_barycenter_params *par,
                           double *a, double *f, double *g, double *logc, double *error,
                           int64_t *n_iter, int *status);

/* A regular grid: the product of d <= MONGE_GRID_MAX_DIM axes, axis a holding len[a] coordinates
 * t[a][0..len[a]); its points in row-major order (the last axis varies fastest), with the cost
 * |x - y|^2.  Since that cost is a sum over axes, a log-sum-exp over the grid factors into one
 * pass per axis: O(n sum_a len[a]) instead of O(n^2), and no n x n matrix (Solomon et al. 2015's
 * convolutional barycenters, here in the log domain, so stable at any eps). */
#define MONGE_GRID_MAX_DIM 8
typedef struct {
    int64_t d;
    const int64_t *len;
    const double *const *t;
} monge_grid;

/* The fixed-support barycenter of K histograms b[k] on the grid (n = prod len[a] weights each,
 * sum 1), on the same grid, by the iterations of monge_barycenter (par->debiased included); the
 * outputs as there, with every input's block of g n long. */
int monge_barycenter_grid(int64_t K, const monge_grid *grid, const double *const *b,
                          const double *lambda, const monge_barycenter_params *par, double *a,
                          double *f, double *g, double *logc, double *error, int64_t *n_iter);

/* The barycenter loss at a solution (a, f, g, logc) of monge_barycenter, and its gradients by the
 * envelope theorem (the plans are optimal and a minimises the loss, so only the explicit
 * dependence counts).  Per input k, values[k] is
 *     plain:     OT_eps(a, b_k) = <f_k, a> + <g_k, b_k> - eps sum(a),  the minimum of
 *                <P, C> + eps sum P (log P - 1) (the objective the iterations minimise)
 *     debiased:  S_eps(a, b_k) = OT(a, b_k) - OT(a, a)/2 - OT(b_k, b_k)/2 with
 *                OT(a, b) = min <P, C> + eps KL(P | a x b) (Janati et al. 2020; their barycenter
 *                minimises sum_k lambda_k S_eps(a, b_k)),  = <f_k, a> + <g_k, b_k> - <h_a, a>
 *                - <h_k, b_k>, h_a = logc and h_k the symmetric potential of b_k (solved here)
 * and the loss is sum_k lambda_k values[k], so d loss / d lambda_k = values[k].  Outputs (each
 * may be NULL):
 *   grad_b (sum_k m_k): d loss / d b_k = lambda_k (g_k - h_k) (h_k = 0 when plain), shifted to
 *       mean 0 over b_k's support (the loss is defined on the simplex); -inf where b_kj = 0 in
 *       the plain loss (its entropy has an infinite slope there);
 *   grad_C (n x m, dense geometries, all inputs on one C): d loss / d C = sum_k lambda_k P_k,
 *       minus (debiased) P_aa / 2 + sum_k lambda_k P_bb,k / 2 (C square);
 *   grad_x (n x d), grad_y (sum_k m_k x d) (online geometries): the gradient in the barycenter's
 *       and the inputs' points; debiased, with self the x x x geometry and selfy[k] input k's
 *       support with itself (both needed).
 * eps and the symmetric solves' tol and max_iter come from par.  Returns MONGE_OK, MONGE_EINVAL,
 * MONGE_ENOCONV (a symmetric solve did not reach tol; outputs valid), MONGE_ENONFINITE or
 * MONGE_ENOMEM. */
int monge_barycenter_loss(int64_t K, const monge_geometry *geoms, const double *const *b,
                          const double *lambda, const monge_geometry *self,
                          const monge_geometry *selfy, const monge_barycenter_params *par,
                          const double *a, const double *f, const double *g, const double *logc,
                          double *values, double *grad_b, double *grad_C, double *grad_x,
                          double *grad_y);

/* The same on a grid (values and grad_b; every block of g and grad_b n long). */
int monge_barycenter_grid_loss(int64_t K, const monge_grid *grid, const double *const *b,
                               const double *lambda, const monge_barycenter_params *par,
                               const double *a, const double *f, const double *g,
                               const double *logc, double *values, double *grad_b);

/* Free-support barycenter (Cuturi & Doucet 2014; the fixed-point iteration of Alvarez-Esteban et
 * al. 2016): the n points X (weights a, fixed) minimising sum_k lambda_k W(a, X; b_k, Y_k) for the
 * cost |x - y|^2, by alternating the optimal plans P_k between X and each input with the update
 *     X_i <- sum_k lambda_k (P_k Y_k)_i / a_i,
 * which does not increase the objective (with exact plans).  The plans are exact (network
 * simplex, each input keeping its basis between iterations: its weights do not change) or
 * entropic (Sinkhorn at eps, warm-started).  Inputs may have different sizes m_k. */
typedef struct {
    int exact;         /* 1: exact plans; 0: entropic plans at eps.  Default 1. */
    double eps;        /* entropic: regularisation (absolute, > 0).  Default 0.01. */
    double tol;        /* stop when the objective's relative change <= tol.  Default 1e-9; with
                          entropic plans use >= 1e-6 (their Sinkhorn tol 1e-6 leaves ~1e-7 of
                          noise in the relative change). */
    int64_t max_iter;  /* iterations (each one plan per input and one update).  Default 100. */
    int nthreads;      /* inputs solved in parallel, one thread each; <= 0: the library default. */
    monge_progress_fn progress; /* once per iteration (k, relative change); may be NULL */
    void *progress_ctx;
} monge_free_barycenter_params;

void monge_free_barycenter_params_init(monge_free_barycenter_params *par);

/* K >= 1 inputs: Y[k] (m[k] x d), weights b[k] (m[k]; NULL: uniform; >= 0, sum 1 within 1e-6);
 * lambda (K; >= 0, sum 1 within 1e-6); a (n; NULL: uniform).  X (n x d) holds the start on entry
 * and the barycenter on return.  Writes *cost = sum_k lambda_k <P_k, C_k> at the returned X (the
 * plans' transport cost, without the entropy term), *n_iter.  Returns MONGE_OK, MONGE_ENOCONV
 * (max_iter reached; outputs valid), MONGE_EINVAL, MONGE_ENONFINITE, MONGE_ENOMEM or
 * MONGE_EINTR. */
int monge_free_barycenter(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                          const double *const *b, const double *lambda, int64_t n,
                          const double *a, const monge_free_barycenter_params *par, double *X,
                          double *cost, int64_t *n_iter);

/* The free-support loss at X, sum_k lambda_k values[k], and its gradients: the plans between X
 * and each input are solved again (exact, or entropic at par->eps, one input per thread), values[k]
 * is <P_k, C_k> (exact) or OT_eps(a, b_k) = <a, f_k> + <b_k, g_k> (entropic, monge_sinkhorn's
 * convention), and by the envelope theorem
 *   grad_X (n x d)        = sum_k lambda_k sum_j P_k,ij 2 (x_i - y_kj)   (0 at a fixed point),
 *   grad_Y (sum m_k x d)  = lambda_k sum_i P_k,ij 2 (y_kj - x_i),  input k's block after k-1's,
 *   grad_b (sum m_k)      = lambda_k g_k, mean 0 over each input (the weights live on a simplex),
 * each may be NULL; d loss / d lambda_k = values[k].  Exact plans that are not unique make the
 * loss non-differentiable there: the gradient is then that of the plan found.  Returns MONGE_OK,
 * MONGE_ENOCONV (a solve stopped at its iteration limit), MONGE_EINVAL, MONGE_ENONFINITE or
 * MONGE_ENOMEM. */
int monge_free_barycenter_loss(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                               const double *const *b, const double *lambda, int64_t n,
                               const double *a, const monge_free_barycenter_params *par,
                               const double *X, double *values, double *grad_X, double *grad_Y,
                               double *grad_b);

#ifdef __cplusplus
}
#endif
#endif
