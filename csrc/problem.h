/* monge problem layer: a geometry plus marginals.
 *
 * Weights a (n) and b (m) are non-negative and finite with positive mass; NULL means uniform
 * (1/n, 1/m).  tau_a, tau_b are the strengths of the KL penalties that replace the marginal
 * constraints in unbalanced OT (INFINITY: the constraint is hard, i.e. balanced on that side).
 *   min_P <P, C> + eps KL(P | a x b) + tau_a KL(P 1 | a) + tau_b KL(P^T 1 | b)
 * with KL the generalised divergence sum p log(p/q) - p + q. */
#ifndef MONGE_PROBLEM_H
#define MONGE_PROBLEM_H

#include "geometry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const monge_geometry *geom; /* the costs */
    const double *a;            /* n weights, or NULL for uniform */
    const double *b;            /* m weights, or NULL for uniform */
    double tau_a;               /* KL penalty on the first marginal, > 0; INFINITY = hard */
    double tau_b;               /* KL penalty on the second marginal, > 0; INFINITY = hard */
} monge_problem;

/* Validates the weights and penalties; a problem balanced on both sides needs
 * |sum a - sum b| <= mass_rtol * max(sum a, sum b).  Returns MONGE_OK or MONGE_EINVAL. */
int monge_problem_check(const monge_problem *pb, double mass_rtol);

/* out_i = pot_i + eps log w_i for the weights w of side 0 (a) or 1 (b), uniform when NULL and
 * -inf where a weight is zero: the shifted potential in P_ij = exp((u_i + h_j - C_ij) / eps). */
void monge_problem_shift(const monge_problem *pb, int side, double eps, const double *pot,
                         double *out);

/* Fills a[0..n) with the problem's weights (uniform when NULL); returns the mass. */
double monge_problem_weights(const monge_problem *pb, int side, double *out);

#ifdef __cplusplus
}
#endif
#endif
