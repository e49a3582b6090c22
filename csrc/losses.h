/* monge losses: values with hand-written gradients, on top of the Sinkhorn solver.
 *
 * Sinkhorn divergence (Genevay et al. 2018; Feydy et al. 2019; unbalanced: Sejourne et al. 2019)
 *   S_eps(a, b) = OT_eps(a, b) - 1/2 OT_eps(a, a) - 1/2 OT_eps(b, b) + eps/2 (m(a) - m(b))^2
 * with the self-terms solved by the symmetric update of monge_sinkhorn_symmetric.  Gradients by the envelope theorem
 * (no differentiation through the iterations), from the potentials f, g of (a, b) and p, q of the
 * self-terms:
 *   dS/dx_i = sum_j P_ij d1 c(x_i, y_j) - sum_k Q^aa_ik d1 c(x_i, x_k)      (and likewise for y)
 *   dS/da_i = f_i - p_i  (balanced),  (tau_a + eps)(exp(-p_i/tau_a) - exp(-f_i/tau_a)) (unbalanced)
 *
 * Monge gap of a map T on samples x_1..x_n with images t_i = T(x_i) (Uscidda & Cuturi 2023), with
 * the estimator of OTT-JAX's monge_gap_from_samples:
 *   M(T) = (1/n) sum_i c(x_i, t_i) - [ <P, C> - eps H(P) ],   H(P) = -sum P log P,
 * where P is the entropic plan between the uniform measures on {x_i} and {t_i}; for uniform weights
 * <P, C> - eps H(P) = OT_eps - 2 eps log n.  Gradients with respect to t (and x) by the envelope
 * theorem:  dM/dt_j = (1/n) d2 c(x_j, t_j) - sum_i P_ij d2 c(x_i, t_j).  With a relative eps
 * (eps_mode mean / std) the gradients hold eps fixed at the value the data gave (info.eps), as
 * OTT-JAX's do: they leave out the term dM/deps * deps/dx of eps moving with the costs.
 *
 * Debiased Monge gap (par.debiased): the entropic term replaced by the Sinkhorn divergence,
 *   M~(T) = (1/n) sum_i c(x_i, t_i) - S_eps(x, t),  S_eps = OT_eps(x,t) - 1/2 OT_eps(x,x) - 1/2 OT_eps(t,t).
 * The plain estimator's entropic term grows with the spread of t, so it favours maps that contract;
 * the self-terms cancel that to first order (M~ = 0 at t = x and ~0 for any optimal map).  Its
 * gradient adds the self-terms' envelope gradients: dM~/dt_j = dM/dt_j + sum_k Q^tt_jk d1 c(t_j, t_k). */
#ifndef MONGE_LOSSES_H
#define MONGE_LOSSES_H

#include "sinkhorn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    monge_sinkhorn_params sk; /* eps, tolerance, scaling... shared by the three solves (warm_start
                                 is ignored).  Defaults of monge_sinkhorn_params_init. */
    int static_b;             /* 1: the target is fixed: OT_eps(b, b) is skipped (the value is S
                                 minus the constant 1/2 OT_eps(b, b)) and no gradient for y, b.
                                 Default 0. */
    int dense;                /* 1: build the three cost matrices once and solve on them (pays
                                 for large d); 0: online.  Default 0. */
} monge_divergence_params;

void monge_divergence_params_init(monge_divergence_params *par);

typedef struct {
    double value;           /* S_eps (see static_b) */
    double ot_ab, ot_aa, ot_bb; /* the three OT_eps values (ot_bb NaN with static_b) */
    double error;           /* largest final marginal error of the solves */
    int64_t n_iter;         /* iterations of the three solves together */
    int converged;          /* every solve converged */
} monge_divergence_info;

/* pb->geom must be an online geometry (points x, y).  Gradient outputs may be NULL:
 * grad_x (n x d), grad_y (m x d), grad_a (n), grad_b (m).  Returns MONGE_OK, or MONGE_ENOCONV
 * (values and gradients still written), MONGE_ESTAGE (max_iter stopped a solve before the target
 * eps: nothing written), or an error. */
int monge_sinkhorn_divergence(const monge_problem *pb, const monge_divergence_params *par,
                              double *grad_x, double *grad_y, double *grad_a, double *grad_b,
                              monge_divergence_info *info);

/* B problems of equal shapes, parallel over the batch; gradient arrays are B times as long. */
int monge_sinkhorn_divergence_batch(int64_t B, const monge_problem *pbs,
                                    const monge_divergence_params *par, double *grad_x,
                                    double *grad_y, double *grad_a, double *grad_b,
                                    monge_divergence_info *info, int *status);

typedef enum {
    MONGE_EPS_ABSOLUTE = 0, /* eps as given */
    MONGE_EPS_MEAN = 1,     /* eps x mean of the cost matrix */
    MONGE_EPS_STD = 2       /* eps x standard deviation of the cost matrix */
} monge_eps_mode;

typedef struct {
    monge_sinkhorn_params sk; /* sk.eps is read in units of eps_mode */
    monge_eps_mode eps_mode;  /* default MONGE_EPS_ABSOLUTE */
    int dense;                /* 1: build the n x n cost matrix once and solve on it (pays when
                                 d is large enough that recomputing costs dominates).  Default 0. */
    int debiased;             /* 1: the debiased estimator M~ (two more, symmetric, solves).
                                 Default 0. */
} monge_gap_params;

void monge_gap_params_init(monge_gap_params *par);

typedef struct {
    double value;         /* M(T) */
    double displacement;  /* (1/n) sum_i c(x_i, t_i) */
    double ent_reg_cost;  /* <P, C> - eps H(P); debiased: S_eps(x, t) */
    double eps;           /* the absolute eps used */
    double error;
    int64_t n_iter;
    int converged;
} monge_gap_info;

/* geom: online points x (n x d) and t = T(x) (n x d) as its y.  grad_t, grad_x (n x d) may be NULL.
 * Returns as monge_sinkhorn_divergence (MONGE_ESTAGE included). */
int monge_monge_gap(const monge_geometry *geom, const monge_gap_params *par, double *grad_t,
                    double *grad_x, monge_gap_info *info);

#ifdef __cplusplus
}
#endif
#endif
