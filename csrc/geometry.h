/* monge geometry layer: where a cost C_ij comes from.
 *
 * A geometry is either a dense n x m cost matrix (row-major) or two point clouds x (n x d) and
 * y (m x d) with a ground cost evaluated on the fly in tiles, so that the online path needs
 * O((n + m) d) memory whatever n and m:
 *   sqeuclidean  c(x, y) = |x - y|_2^2            (no 1/2 factor, as POT and OTT-JAX)
 *   euclidean    c(x, y) = |x - y|_2
 *   pnorm        c(x, y) = |x - y|_p^p = sum_k |x_k - y_k|^p   (p >= 1)
 *   cosine       c(x, y) = 1 - <x, y> / (|x| |y|)  (zero vectors are invalid)
 *   elastic      c(x, y) = 1/2 |x - y|_2^2 + lam |x - y|_1   (lam >= 0; the elastic-net cost of
 *                the Monge gap paper, with gradient z + lam sign(z), z = x - y)
 *
 * On top of a prepared geometry (monge_geom_work) sit the kernels every entropic solver needs,
 * all parallel over rows with results independent of the thread count:
 *   softmin:  out_i = eps * log sum_j exp((h_j - C_ij) / eps)          (the soft c-transform)
 *   apply:    out_i = sum_j exp((u_i + h_j - C_ij) / eps) V_j:          (plan-vector products)
 *   dense:    P_ij  = exp((u_i + h_j - C_ij) / eps)                      (materialised plan)
 * `transpose` = 1 runs the same kernel on C^T (columns become rows).
 */
#ifndef MONGE_GEOMETRY_H
#define MONGE_GEOMETRY_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    MONGE_COST_SQEUCLIDEAN = 0,
    MONGE_COST_EUCLIDEAN = 1,
    MONGE_COST_PNORM = 2,
    MONGE_COST_COSINE = 3,
    MONGE_COST_ELASTIC = 4
} monge_cost;

typedef struct {
    int64_t n, m;      /* number of rows (x side) and columns (y side), both >= 1 */
    monge_dtype dtype; /* element type of C, or of x and y */
    const void *C;     /* dense cost, n*m row-major; NULL selects the online (point cloud) path */
    const void *x;     /* online: n*d row-major */
    const void *y;     /* online: m*d row-major */
    int64_t d;         /* online: dimension, >= 1 */
    monge_cost cost;   /* online: ground cost */
    double p;          /* online, pnorm: exponent p >= 1 */
    double lam;        /* online, elastic: weight of the L1 term, >= 0 */
} monge_geometry;

/* A geometry prepared for repeated kernel calls: transposed copies of the points, normalised
 * copies for the cosine cost, and per-thread tile buffers.  Opaque; create with
 * monge_geom_prepare, free with monge_geom_release. */
typedef struct monge_geom_work monge_geom_work;

/* Checks the geometry and allocates the work state for up to `nthreads` threads (<= 0: library
 * default).  Returns MONGE_EINVAL for bad sizes/pointers/parameters, MONGE_ENOMEM. */
int monge_geom_prepare(const monge_geometry *geom, int nthreads, monge_geom_work **work);
void monge_geom_release(monge_geom_work *work);
const monge_geometry *monge_geom_of(const monge_geom_work *work);

/* out_i = eps * log sum_j exp((h_j - C_ij) / eps), i over rows (over columns when transpose).
 * h may contain -inf (zero weight).  `hint` (may be NULL) is a guess of out (e.g. its previous
 * value): each row is then one pass with the guess as shift, and rows whose shifted sum leaves a
 * safe range are recomputed exactly with a max pass. */
int monge_softmin(const monge_geom_work *w, int transpose, double eps, const double *h,
                  const double *hint, double *out, int nthreads);

/* With P_ij = exp((u_i + h_j - C_ij) / eps) (on C^T when transpose):
 *   out[i*k + l] = sum_j P_ij V[j*k + l]   (when k > 0 and out, V non-NULL)
 *   rowsum[i]    = sum_j P_ij               (when rowsum non-NULL)
 *   rowcost[i]   = sum_j P_ij C_ij          (when rowcost non-NULL) */
int monge_geom_apply(const monge_geom_work *w, int transpose, double eps, const double *u,
                     const double *h, const double *V, int64_t k, double *out, double *rowsum,
                     double *rowcost, int nthreads);

/* The marginals and row costs of P_ij = exp((u_i + h_j - C_ij) / eps) in one pass:
 *   rowsum[i] = sum_j P_ij,  colsum[j] = sum_i P_ij,  rowcost[i] = sum_j P_ij C_ij (may be NULL).
 * Computed in the geometry's dtype with the rounding of u and h to it compensated, summed in
 * double; u_i = -inf (h_j = -inf) gives a zero row (column).  Returns MONGE_ENOMEM when its
 * scratch (O(32 m)) cannot be allocated. */
int monge_geom_marginals(const monge_geom_work *w, double eps, const double *u, const double *h,
                         double *rowsum, double *colsum, double *rowcost, int nthreads);

/* Gradient of the cost through the plan (online geometries only):
 *   out[i*d + k] = sum_j P_ij d c(p_i, q_j) / d p_ik,   P_ij = exp((u_i + h_j - C_ij) / eps),
 * where p = x, q = y (or p = y, q = x with transpose: every cost here is symmetric,
 * c(x, y) = c(y, x), so this is also the gradient in the second argument).  At a point where c is
 * not differentiable (euclidean at z = 0, the L1 parts at z_k = 0) the zero subgradient is used. */
int monge_geom_grad(const monge_geom_work *w, int transpose, double eps, const double *u,
                    const double *h, double *out, int nthreads);

/* Paired points (online, n = m): cost[i] = c(x_i, y_i) and, when grad is non-NULL,
 * grad[i*d + k] = d c(x_i, y_i) / d x_ik. */
int monge_geom_paired(const monge_geom_work *w, double *cost, double *grad, int nthreads);

/* Mean and (population) standard deviation of the n x m cost matrix, without storing it. */
int monge_geom_cost_stats(const monge_geom_work *w, double *mean, double *std, int nthreads);

/* P[i*m + j] = exp((u_i + h_j - C_ij) / eps), written in the geometry's dtype. */
int monge_geom_dense_plan(const monge_geom_work *w, double eps, const double *u, const double *h,
                          void *P, int nthreads);

/* K[i*m + j] = exp((u_i + h_j - C_ij) / eps) stored as float whatever the geometry's dtype
 * (computed in it); *maxv = the largest entry (inf when one overflowed float).  The cache of the
 * kernel-domain Sinkhorn. */
int monge_geom_kernel_f32(const monge_geom_work *w, double eps, const double *u, const double *h,
                          float *K, double *maxv, int nthreads);

/* The cost matrix C[i*m + j], written in the geometry's dtype. */
int monge_geom_cost_matrix(const monge_geom_work *w, void *C, int nthreads);

/* An upper bound on max_ij C_ij (exact for a dense geometry; from the bounding box of both clouds
 * online), used to start epsilon-scaling. */
int monge_geom_max_cost(const monge_geom_work *w, double *out, int nthreads);

/* The weights of an entropic map (a softmax per row), in place on a k x m array of dtype:
 * Z_ij <- exp(scale Z_ij + shift_j - M_i) with M_i the row's largest scale Z_ij + shift_j, and
 * rowsum[i] = sum_j of the new Z_ij (>= 1).  With Z = X Y^T (by a BLAS), scale 2/eps and shift_j =
 * (g_j - |y_j|^2)/eps + log b_j, (Z Y) / rowsum is the entropic map at the rows of X.  Returns
 * MONGE_ENONFINITE when a row held NaN or infinity. */
int monge_softmax_rows(monge_dtype dtype, int64_t k, int64_t m, void *Z, const void *shift,
                       double scale, double *rowsum, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
