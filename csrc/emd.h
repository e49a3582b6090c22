/* monge exact optimal transport: network simplex, 1-D and sliced Wasserstein.
 *
 * Network simplex (monge_emd) solves the transportation problem
 *     min_P <P, C>  s.t.  P 1 = a,  P^T 1 = b,  P >= 0
 * and its dual  max <a, f> + <b, g>  s.t.  f_i + g_j <= C_ij.
 * The arcs are implicit (arc (i, j) costs C_ij, read from a dense matrix or computed from the
 * point clouds on demand by the geometry layer, in float64 whatever the input dtype), so beyond a
 * dense C the memory is O(n + m): the spanning tree in threaded form (parent, preorder thread and
 * its reverse, depth), the flow on each tree arc stored at its child node, and one potential per
 * node.  Every arc is uncapacitated, so a non-tree arc always carries zero flow and needs no
 * state at all.
 *
 * - Start: a north-west-corner basis, in index order for a dense cost, in the order of the
 *   projection on the principal axis of both clouds for point clouds (the 1-D optimal plan along
 *   that axis, already close to optimal in low dimension).  Ties advance the row, which makes the
 *   basis strongly feasible (every zero-flow arc points towards the root).
 * - Pricing: block search (Grigoriadis): scan the arcs cyclically in blocks, enter the most
 *   negative reduced cost C_ij - f_i - g_j of the first block that has one.
 * - Leaving arc: Cunningham's rule (the last blocking arc of the cycle oriented from its apex),
 *   which keeps the tree strongly feasible and so rules out cycling on degenerate pivots.
 * - Exactness: costs are scaled by a power of two (exact) to max |C| in [0.5, 1), reduced costs
 *   below -1e-12 (scaled) enter; at the end the potentials are recomputed from the tree and the
 *   whole arc set is priced again before optimality is declared.
 * - Zero weights are removed before the solve; their potentials are the c-transforms of the
 *   others (tight and dual feasible).  Masses that differ by at most mass_rtol (relative) are
 *   reconciled by scaling b; beyond that MONGE_EINVAL. */
#ifndef MONGE_EMD_H
#define MONGE_EMD_H

#include "geometry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A spanning-tree basis kept between solves of problems with the same weights (the costs may
 * differ): a solve given one starts from the basis it holds, which stays feasible since the
 * weights are the same, and leaves its final basis there.  Solves of a sequence of nearby costs
 * (the linear problems of a Frank-Wolfe method) then need few pivots.  Opaque; one per thread. */
typedef struct monge_emd_basis monge_emd_basis;
/* *out = an empty basis; MONGE_ENOMEM or MONGE_EINVAL (out NULL). */
int monge_emd_basis_new(monge_emd_basis **out);
void monge_emd_basis_free(monge_emd_basis *basis);

typedef struct {
    int64_t max_iter;     /* pivot limit; 0 = none.  Reaching it returns MONGE_ENOCONV with the
                             current feasible (not optimal) plan.  Default 0. */
    int64_t block_size;   /* arcs priced per block; 0 = automatic (sqrt(n m) / 4, at least
                             64).  Default 0. */
    int init;             /* starting basis: 0 = automatic (projection order for point clouds,
                             index order for a dense cost), 1 = north-west corner in index order,
                             2 = projection order (point clouds only).  Default 0. */
    double mass_rtol;     /* |sum a - sum b| <= mass_rtol * max(sum a, sum b) is reconciled by
                             scaling b to the mass of a; more is MONGE_EINVAL.  Default 1e-8. */
    int nthreads;         /* threads of a batch; <= 0: the library default.  Default 0. */
    monge_progress_fn progress; /* called every 64 pivots with (pivots, reduced cost of the
                                   entering arc, in cost units), and every 2^20 arcs of a long
                                   pricing scan (with 0); a non-zero return stops: MONGE_EINTR.
                                   May be NULL. */
    void *progress_ctx;   /* passed to progress.  Default NULL. */
    monge_emd_basis *basis; /* a basis to start from (when it was left by a solve with the same
                               weights; `init` is then unused) and to leave the final one in; not
                               used by monge_emd_batch.  May be NULL.  Default NULL. */
} monge_emd_params;

void monge_emd_params_init(monge_emd_params *par);

typedef struct {
    double cost;      /* <P, C> */
    double dual;      /* <a, f> + <b, g> (equals cost at optimality, up to rounding) */
    int64_t n_iter;   /* pivots */
    int64_t nnz;      /* nonzeros of the plan written to rows/cols/vals (<= n + m - 1) */
    double mass;      /* the transported mass, sum a */
} monge_emd_info;

/* One problem on a float64 geometry (dense or point clouds; n + m < 2^31).  a (n) and b (m):
 * non-negative finite weights with positive mass (NULL: uniform 1/n, 1/m).  Writes the plan's
 * nonzeros as triplets rows[k], cols[k], vals[k] (capacity n + m - 1, sorted by row then column),
 * the potentials f (n) and g (m) (gauge <a, f> = <b, g>; may be NULL), and info.  Returns MONGE_OK,
 * MONGE_ENOCONV (max_iter reached: feasible plan, not optimal), MONGE_EINTR, MONGE_EINVAL,
 * MONGE_ENONFINITE (non-finite costs) or MONGE_ENOMEM. */
int monge_emd(const monge_geometry *geom, const double *a, const double *b,
              const monge_emd_params *par, int64_t *rows, int64_t *cols, double *vals, double *f,
              double *g, monge_emd_info *info);

/* B independent problems of the same shapes, in parallel (one problem per thread at a time, so
 * the results equal a loop of monge_emd).  a is B x n, b is B x m (or NULL: uniform); rows, cols
 * and vals are B x (n + m - 1), f is B x n, g is B x m, info and status are B long.  The progress
 * callback is called from the worker threads.  Returns the first non-OK status in order. */
int monge_emd_batch(int64_t B, const monge_geometry *geoms, const double *a, const double *b,
                    const monge_emd_params *par, int64_t *rows, int64_t *cols, double *vals,
                    double *f, double *g, monge_emd_info *info, int *status);

/* Exact OT on the line with cost |x - y|^p (p >= 1): sorts both samples, then walks the two
 * quantile functions.  x (n), y (m), weights a, b (NULL: uniform; masses reconciled as above).
 * Writes the monotone plan as triplets (capacity n + m - 1, may be NULL to skip) and cost =
 * sum P_ij |x_i - y_j|^p = W_p^p.  O((n + m) log(n + m)). */
int monge_emd_1d(int64_t n, int64_t m, const double *x, const double *y, const double *a,
                 const double *b, double p, double mass_rtol, int64_t *rows, int64_t *cols,
                 double *vals, int64_t *nnz, double *cost);

/* Sliced Wasserstein: for each of the P unit directions theta_l (rows of theta, P x d), the 1-D
 * cost w_l = W_p^p(<theta_l, x>, <theta_l, y>) with weights a, b (NULL: uniform).  Writes w (P)
 * and, when grad is non-NULL, grad (n x d) = d/dx of (1/P) sum_l w_l (the monotone plan of each
 * direction held fixed; the derivative of |t|^p at t = 0 is taken as 0).  Parallel over the
 * directions; the gradient is reduced in direction order, so results do not depend on the
 * thread count. */
int monge_sliced(int64_t n, int64_t m, int64_t d, const double *x, const double *y,
                 const double *a, const double *b, int64_t P, const double *theta, double p,
                 double mass_rtol, double *w, double *grad, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
