/* monge quadratically regularised and k-sparsity-constrained OT (dense cost), solved by L-BFGS.
 *
 * Quadratic OT (Blondel, Seguy & Rolet, AISTATS 2018), with Omega(t) = gamma/2 |t|^2:
 *     OT_gamma(a, b) = min_{T >= 0, T 1 = a, T^T 1 = b}  <T, C> + gamma/2 |T|_F^2.
 * k-sparse OT (Liu, Puigcerver & Blondel, ICLR 2023) adds |T_{:,j}|_0 <= k on every column; the
 * solvers maximise the dual of its convex relaxation (the constraint enters through conjugates).
 *
 *   dual        max_{alpha, beta}  <alpha, a> + <beta, b> - sum_j delta_k(alpha + beta_j - c_j)
 *               delta_k(x) = 1/(2 gamma) sum_{i in top_k(x)} [x_i]_+^2     (the top-k conjugate)
 *   semi-dual   max_alpha  <alpha, a> - sum_j b_j max_j(alpha - c_j)
 *               max_j(x) = max_{y in simplex, |y|_0 <= k} <x, y> - gamma b_j / 2 |y|^2,
 *               attained at y = the projection of x / (gamma b_j) onto the simplex with at most
 *               k nonzeros (= the projection of its k largest entries onto the simplex)
 * with c_j the j-th column of C.  These are the objectives of POT's ot.smooth (reg = gamma,
 * reg_type 'l2', or 'sparsity_constrained' with max_nz = k), value for value.  Without the
 * constraint (k <= 0 or k >= n) both are quadratic OT; with k = 1 the semi-dual is the exact OT
 * semi-dual plus gamma/2 |b|^2.
 *
 * Plan.  Both give T_ij = [alpha_i + beta_j - C_ij]_+ / gamma on the k largest entries of
 * alpha - c_j (0 elsewhere): sparse by construction, at most k nonzeros per column.  For the
 * semi-dual beta_j = -theta_j, the threshold of the column's projection, so the columns of T sum
 * to b exactly and the row marginal error is the gradient.  Gradients are the marginal violations:
 * d/d alpha = a - T 1, d/d beta = b - T^T 1; the L1 norm of the gradient is the L1 marginal error,
 * which is the stopping rule (tol).
 *
 * Ties between the k-th and (k+1)-th largest entries of a column are broken by the lower row index,
 * so every quantity is a deterministic function of the potentials; the objectives are concave but
 * not differentiable there (the returned gradient is a supergradient).  See lbfgs.h for how the
 * line search copes and reports.
 *
 * Parallel over columns (fixed blocks of columns, OpenMP schedule(static)), reduced in a fixed
 * order: results do not depend on the number of threads.  Work per evaluation: O(n m) to scan the
 * columns, plus a partial selection (expected linear) among the entries that can be in the support
 * (x_i > max x - gamma b_j for the semi-dual, x_i > 0 for the dual). */
#ifndef MONGE_SMOOTH_OT_H
#define MONGE_SMOOTH_OT_H

#include "lbfgs.h"
#include "problem.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MONGE_SMOOTH_SEMI_DUAL = 0, MONGE_SMOOTH_DUAL = 1 } monge_smooth_form;

typedef struct {
    double gamma;       /* strength of the regulariser gamma/2 |T|_F^2, finite > 0.  Default 1. */
    int64_t k;          /* at most k nonzeros per column; <= 0 or >= n: no constraint (quadratic
                           OT).  Default 0. */
    int formulation;    /* MONGE_SMOOTH_SEMI_DUAL (potential alpha only) or MONGE_SMOOTH_DUAL
                           (alpha and beta).  Default MONGE_SMOOTH_SEMI_DUAL. */
    double tol;         /* stop when the L1 marginal violation |grad|_1 <= tol.  Default 1e-6. */
    double ftol;        /* also stop when the objective improved by at most ftol x max(|value|, 1)
                           over the last 5 iterations (the rule that ends a solve at a
                           non-differentiable optimum, where the gradient need not vanish); 0 = off.
                           Default 1e-14. */
    int64_t max_iter;   /* L-BFGS iterations.  Default 1000. */
    int memory;         /* L-BFGS memory (pairs kept).  Default 10. */
    int warm_start;     /* 1: alpha (and beta for the dual) hold the starting potentials; 0: start
                           from zero.  Default 0. */
    int nthreads;       /* threads; <= 0: the library default; problems of fewer than 262144
                           entries run on one thread.  Default 0. */
    monge_progress_fn progress; /* called every iteration with (iteration, L1 marginal error);
                                   non-zero cancels (may be NULL).  Default NULL. */
    void *progress_ctx; /* passed to progress.  Default NULL. */
} monge_smooth_params;

void monge_smooth_params_init(monge_smooth_params *par);

typedef struct {
    double value;      /* the (semi-)dual objective at the returned potentials (maximised); at the
                          optimum the optimal value of the (relaxed) regularised problem */
    double cost;       /* <T, C> of the recovered plan */
    double reg;        /* gamma/2 |T|_F^2 of the recovered plan */
    double err_a;      /* sum_i |(T 1)_i - a_i| */
    double err_b;      /* sum_j |(T^T 1)_j - b_j| (rounding only, for the semi-dual) */
    int64_t nnz;       /* nonzeros of T */
    int64_t max_col_nnz; /* largest number of nonzeros in a column (<= k) */
    int64_t n_iter;    /* L-BFGS iterations */
    int64_t n_eval;    /* objective evaluations */
    int64_t n_weak;    /* line searches ended without the curvature condition (ties) */
    int converged;     /* 1 when the L1 marginal error met tol (a stop on the stalled objective,
                          reason MONGE_LBFGS_FTOL, is not convergence: status MONGE_ENOCONV) */
    int reason;        /* monge_lbfgs_reason */
} monge_smooth_info;

/* Solves one problem (dense float64 cost, balanced, pb->tau_a = pb->tau_b = INFINITY).
 * MONGE_OK means the L1 marginal error met tol; MONGE_ENOCONV the iteration limit or a stalled
 * objective (info->reason tells which).  alpha (n)
 * and beta (m) receive the potentials (and hold the warm start); for the semi-dual beta is
 * -theta as above and is ignored on entry.  Returns MONGE_OK, MONGE_ENOCONV, MONGE_ELINESEARCH
 * (potentials and info valid in these three cases), MONGE_EINTR (info valid), MONGE_EINVAL,
 * MONGE_ENOMEM, MONGE_ENONFINITE. */
int monge_smooth_ot(const monge_problem *pb, const monge_smooth_params *par, double *alpha,
                    double *beta, monge_smooth_info *info);

/* The objective of par->formulation (maximised) and its gradient at alpha (and beta for the dual;
 * beta and grad_beta may be NULL for the semi-dual).  grad_alpha / grad_beta may be NULL. */
int monge_smooth_ot_objective(const monge_problem *pb, const monge_smooth_params *par,
                              const double *alpha, const double *beta, double *value,
                              double *grad_alpha, double *grad_beta);

/* The plan from the potentials, column-compressed (CSC): indptr (m + 1) always; when indices and
 * data are non-NULL they receive the row indices (ascending within a column) and values of the
 * indptr[m] nonzeros.  The semi-dual recomputes beta from alpha (beta may be NULL). */
int monge_smooth_ot_plan(const monge_problem *pb, const monge_smooth_params *par,
                         const double *alpha, const double *beta, int64_t *indptr,
                         int64_t *indices, double *data);

#ifdef __cplusplus
}
#endif
#endif
