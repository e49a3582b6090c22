/* Anderson acceleration (type II, "Anderson mixing") of a fixed-point iteration x <- G(x) in R^len.
 * Internal to the library (used by the Sinkhorn loop), not part of the public API.
 *
 * With the last p differences of the images, dG_i = G(x_{i+1}) - G(x_i), and of the residuals
 * r(x) = G(x) - x, dR_i = r_{i+1} - r_i, the next iterate is
 *     x_{k+1} = G(x_k) - sum_i gamma_i dG_i,   gamma = argmin || r_k - sum_i gamma_i dR_i ||_W,
 * a secant (multisecant quasi-Newton) step on r(x) = 0 (Anderson 1965; Walker and Ni 2011).  The
 * norm is weighted by w (the marginal weights for Sinkhorn: the dual's natural metric) and, with
 * `center`, blind to constants: balanced Sinkhorn potentials are defined up to g + c, so a constant
 * residual is no error.  The small least-squares problem is solved through its normal equations
 * with a Tikhonov term 1e-10 x trace (the Gram matrix is kept up to date one row per step: the
 * cost of a step is about 3 p len flops).  Everything is sequential and in a fixed order: results
 * do not depend on the thread count. */
#ifndef MONGE_ANDERSON_H
#define MONGE_ANDERSON_H

#include <stdint.h>

#define MONGE_AA_MAX_MEM 32

typedef struct {
    int mem;            /* history kept (columns) */
    int64_t len;
    int center;         /* residuals are compared modulo constants */
    const double *w;    /* weights of the norm (len), not owned; NULL: uniform */
    double wsum;
    int count, next;    /* columns stored; ring slot written next */
    int have_prev;
    double *dG, *dR;    /* mem x len */
    double *Gprev, *Rprev;
    double gram[MONGE_AA_MAX_MEM * MONGE_AA_MAX_MEM];
    int64_t n_mixed;    /* extrapolated steps so far */
    double reg;         /* Tikhonov factor of the least squares (x the trace of the Gram matrix);
                           <= 0: 1e-10, enough to keep them solvable.  Larger values damp the
                           extrapolation towards the plain step.  Set by the caller; kept by
                           monge_aa_reset. */
} monge_aa;

/* Returns MONGE_OK or MONGE_ENOMEM (mem is clamped to [1, MONGE_AA_MAX_MEM]). */
int monge_aa_init(monge_aa *aa, int mem, int64_t len, const double *w, int center);
void monge_aa_free(monge_aa *aa);
/* Forgets the history (the next step is a plain one). */
void monge_aa_reset(monge_aa *aa);
/* One step from the iterate x and its image gx = G(x): writes the next iterate to out (out may be
 * gx).  Returns 1 when it extrapolated, 0 when it took the plain step out = gx (first step after a
 * reset, or a least-squares problem too ill-conditioned to trust, which also resets). */
int monge_aa_step(monge_aa *aa, const double *x, const double *gx, double *out);

#endif
