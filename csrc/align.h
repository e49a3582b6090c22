/* monge token alignment: entropic OT and IPOT between two padded sets of embeddings, batched.
 *
 * For pair k, the valid rows x_i (mask_x = 1) and columns y_j (mask_y = 1) carry uniform weights
 * a_i = 1/n_k, b_j = 1/m_k (padding gets no mass) and the cosine cost
 *     C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|).
 * Methods (the plan P has zero rows and columns on padding):
 *   Sinkhorn   P = argmin <P, C> + eps KL(P | a b^T), log-domain iterations until the L1 marginal
 *              error <= tol (or max_iter);
 *   IPOT       the proximal point method of Xie et al. (2019) used by ORMA: with G = exp(-C/beta),
 *              P <- 1 1^T, then `outer` times: Q = G * P (elementwise), `inner` scaling steps
 *              u = a / (Q v), v = b / (Q^T u), P = diag(u) Q diag(v).
 * The alignment distance is D = <P, C>.  Gradients hold the plan fixed (as ORMA does; for the
 * Sinkhorn plan this is also the envelope-theorem gradient of the entropic value):
 *     dD/dx_i = sum_j P_ij dC_ij/dx_i,  dC_ij/dx_i = -(y^_j - <x^_i, y^_j> x^_i) / |x_i|
 * (x^ = x/|x|), and symmetrically for y; each scaled by the pair's weight w_k.
 */
#ifndef MONGE_ALIGN_H
#define MONGE_ALIGN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MONGE_ALIGN_SINKHORN = 0, MONGE_ALIGN_IPOT = 1 } monge_align_method;

typedef struct {
    monge_align_method method; /* Sinkhorn or IPOT.  Default MONGE_ALIGN_SINKHORN. */
    double eps;                /* Sinkhorn regularisation (absolute; costs lie in [0, 2]).
                                  Default 0.1. */
    double tol;                /* Sinkhorn: stop when the L1 marginal error <= tol.  Default 1e-6. */
    int64_t max_iter;          /* Sinkhorn iteration limit.  Default 1000. */
    double beta;               /* IPOT proximal parameter.  Default 0.5 (ORMA). */
    int64_t outer;             /* IPOT outer iterations.  Default 50. */
    int64_t inner;             /* IPOT scaling steps per outer iteration.  Default 1. */
    int nthreads;              /* threads over the pairs; <= 0: the library default.  Default 0. */
} monge_align_params;

void monge_align_params_init(monge_align_params *par);

/* X: B x n x d, Y: B x m x d (float64), mask_x: B x n, mask_y: B x m (non-zero = valid; NULL =
 * all valid; every pair needs at least one valid row and column, and valid vectors must be
 * non-zero).  Writes P (B x n x m, may be NULL), dist (B), the final L1 marginal error (B, may
 * be NULL) and n_iter (B, may be NULL); with weight (B) non-NULL, GX (B x n x d) and GY
 * (B x m x d) receive weight_k dD_k/dX and dD_k/dY (either may be NULL).  Parallel over the
 * pairs.  Returns MONGE_OK, MONGE_ENOCONV (a Sinkhorn pair stopped at max_iter; outputs valid),
 * MONGE_EINVAL, MONGE_ENONFINITE or MONGE_ENOMEM. */
int monge_align(int64_t B, int64_t n, int64_t m, int64_t d, const double *X, const double *Y,
                const uint8_t *mask_x, const uint8_t *mask_y, const monge_align_params *par,
                double *P, double *dist, double *error, int64_t *n_iter, const double *weight,
                double *GX, double *GY);

#ifdef __cplusplus
}
#endif
#endif
