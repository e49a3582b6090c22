/* monge Gromov–Wasserstein: the tensor-product gradient, the entropic (mirror descent) and
 * conditional-gradient solvers, and the matrix product they run on (see gromov.h). */
#include "gromov.h"
#include "emd.h"
#include "internal.h"
#include "sinkhorn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

void monge_gw_params_init(monge_gw_params *par)
{
    memset(par, 0, sizeof *par);
    par->loss = MONGE_GW_SQUARE;
    par->solver = MONGE_GW_CG;
    par->alpha = 0.5;
    par->eps = 0.1;
    par->tol = 1e-9;
    par->tol_abs = 1e-9;
    par->max_iter = 1000;
    par->inner_tol = 1e-9;
    par->inner_max_iter = 0;
    par->eps_scaling = 0;
    par->eps_start = 0.0;
    par->scaling_factor = 0.5;
    par->damping = -1.0;
    par->warm_start = 0;
    par->nthreads = 0;
}

/* ---- matrix product ------------------------------------------------------------------------ */

enum { GEMM_MR = 4, GEMM_NR = 16, GEMM_KC = 128 };

/* C[0..4, 0..16) (+)= A[0..4, 0..kc) B[0..kc, 0..16): the accumulators stay in registers. */
MONGE_HOT static void gemm_tile(int64_t kc, const double *restrict A, int64_t lda,
                                const double *restrict B, int64_t ldb, double *restrict C,
                                int64_t ldc, int first)
{
    double acc[GEMM_MR][GEMM_NR];
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < GEMM_NR; j++) acc[r][j] = first ? 0.0 : C[r * ldc + j];
    for (int64_t k = 0; k < kc; k++) {
        const double *b = B + k * ldb;
        for (int r = 0; r < GEMM_MR; r++) {
            const double a = A[r * lda + k];
            MONGE_SIMD
            for (int j = 0; j < GEMM_NR; j++) acc[r][j] += a * b[j];
        }
    }
    for (int r = 0; r < GEMM_MR; r++)
        for (int j = 0; j < GEMM_NR; j++) C[r * ldc + j] = acc[r][j];
}

/* The same for a partial tile at the edges (mr <= 4 rows, nr <= 16 columns), in the same order. */
static void gemm_edge(int64_t mr, int64_t nr, int64_t kc, const double *A, int64_t lda,
                      const double *B, int64_t ldb, double *C, int64_t ldc, int first)
{
    for (int64_t r = 0; r < mr; r++)
        for (int64_t j = 0; j < nr; j++) {
            double s = first ? 0.0 : C[r * ldc + j];
            for (int64_t k = 0; k < kc; k++) s += A[r * lda + k] * B[k * ldb + j];
            C[r * ldc + j] = s;
        }
}

int monge_gemm(int64_t M, int64_t N, int64_t K, const double *A, const double *B, double *C,
               int nthreads)
{
    if (M < 0 || N < 0 || K < 0 || (M * N > 0 && (!C || (K > 0 && (!A || !B)))))
        return MONGE_EINVAL;
    if (M == 0 || N == 0) return MONGE_OK;
    if (K == 0) {
        memset(C, 0, (size_t)(M * N) * sizeof *C);
        return MONGE_OK;
    }
    const int64_t nq = (M + GEMM_MR - 1) / GEMM_MR;
    int nt = monge_resolve_threads(nthreads);
    if ((int64_t)nt > nq) nt = (int)nq;
    if ((double)M * (double)N * (double)K < 1e6) nt = 1;
#pragma omp parallel num_threads(nt)
    {
        int t = 0, tn = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        tn = omp_get_num_threads();
#endif
        /* rows of C by quads, a static block per thread: each entry's sum order is fixed */
        const int64_t q0 = nq * t / tn, q1 = nq * (t + 1) / tn;
        for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
            const int64_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
            for (int64_t j0 = 0; j0 < N; j0 += GEMM_NR) {
                const int64_t nr = N - j0 < GEMM_NR ? N - j0 : GEMM_NR;
                for (int64_t q = q0; q < q1; q++) {
                    const int64_t i0 = q * GEMM_MR, mr = M - i0 < GEMM_MR ? M - i0 : GEMM_MR;
                    const double *a = A + i0 * K + k0, *b = B + k0 * N + j0;
                    double *c = C + i0 * N + j0;
                    if (mr == GEMM_MR && nr == GEMM_NR)
                        gemm_tile(kc, a, K, b, N, c, N, k0 == 0);
                    else
                        gemm_edge(mr, nr, kc, a, K, b, N, c, N, k0 == 0);
                }
            }
        }
    }
    return MONGE_OK;
}

/* ---- the loss split L(a, b) = f1(a) + f2(b) - h1(a) h2(b), h1(a) = a --------------------- */

static inline double loss_f1(int loss, double a)
{
    return loss == MONGE_GW_SQUARE ? a * a : (a > 0.0 ? a * log(a) - a : 0.0);
}
static inline double loss_f2(int loss, double b) { return loss == MONGE_GW_SQUARE ? b * b : b; }
static inline double loss_h2(int loss, double b) { return loss == MONGE_GW_SQUARE ? 2.0 * b : log(b); }
/* derivatives, for the gradients with respect to C1 and C2 (d f1 / da is -inf at a = 0 for kl) */
static inline double loss_df1(int loss, double a) { return loss == MONGE_GW_SQUARE ? 2.0 * a : log(a); }
static inline double loss_df2(int loss, double b) { return loss == MONGE_GW_SQUARE ? 2.0 * b : 1.0; }
static inline double loss_dh2(int loss, double b) { return loss == MONGE_GW_SQUARE ? 2.0 : 1.0 / b; }

typedef struct {
    int64_t n, m;
    int loss, sym, nt;
    const double *C1, *C2;
    double *C1T; /* C1^T (n x n), only when not symmetric */
    double *H2T; /* h2(C2)^T (m x m) */
    double *H2;  /* h2(C2) (m x m), only when not symmetric */
    double *Y, *Z; /* n x m scratch (Z only when not symmetric) */
    double *r, *c, *v1, *v2, *rowbuf, *aux; /* n, m, n, m, max(n, m), n + m */
    /* point clouds (square loss): C1 = A1 B1^T, C2 = A2 B2^T of rank r1 = dx + 2, r2 = dy + 2,
     * A_i = [|x_i|^2, 1, -2 x_i], B_k = [1, |x_k|^2, x_k] on centred points */
    int lr;
    int64_t r1, r2;
    double *A1, *B1T, *A2T, *B2; /* n x r1, r1 x n, r2 x m, m x r2 */
    double *L1, *L2, *L3;        /* r1 x m, r1 x r2, n x r2 */
} gw_work;

/* sum_i rows[i] in index order (the fixed reduction of every parallel dot product here) */
static double sum_ordered(const double *v, int64_t len)
{
    double s = 0.0;
    for (int64_t i = 0; i < len; i++) s += v[i];
    return s;
}

/* <A, B> over n x m, each row summed by one thread, rows summed in order */
static double dot_nm(const gw_work *w, const double *A, const double *B)
{
    const int64_t n = w->n, m = w->m;
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        const double *a = A + i * m, *b = B + i * m;
        for (int64_t j = 0; j < m; j++) s += a[j] * b[j];
        w->rowbuf[i] = s;
    }
    return sum_ordered(w->rowbuf, n);
}

/* r = X 1 (n), c = X^T 1 (m) */
static void marginals(const gw_work *w, const double *X, double *r, double *c)
{
    const int64_t n = w->n, m = w->m;
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < n; i++) r[i] = sum_ordered(X + i * m, m);
    const int64_t nb = (m + 63) / 64;
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t j0 = b * 64, j1 = j0 + 64 < m ? j0 + 64 : m;
        for (int64_t j = j0; j < j1; j++) c[j] = 0.0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = j0; j < j1; j++) c[j] += X[i * m + j];
    }
}

/* point clouds: out_i = sum_k C_ik^2 x_k = F_i Q F_i^T with Q = sum_k x_k G_k G_k^T, for C = F G^T
 * given as F (len x r) and G^T (r x len) */
static void sq_matvec_lr(const gw_work *w, const double *F, int64_t Fstride_row, int64_t Fstride_col,
                         const double *G, int64_t Gstride_row, int64_t Gstride_col, int64_t r,
                         int64_t len, const double *x, double *out)
{
    double Q[18 * 18];
    for (int64_t a = 0; a < r; a++)
        for (int64_t b = 0; b < r; b++) {
            double t = 0.0;
            for (int64_t k = 0; k < len; k++)
                t += x[k] * G[k * Gstride_row + a * Gstride_col] * G[k * Gstride_row + b * Gstride_col];
            Q[a * r + b] = t;
        }
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < len; i++) {
        double t = 0.0;
        for (int64_t a = 0; a < r; a++) {
            double u = 0.0;
            for (int64_t b = 0; b < r; b++) u += Q[a * r + b] * F[i * Fstride_row + b * Fstride_col];
            t += F[i * Fstride_row + a * Fstride_col] * u;
        }
        out[i] = t;
    }
}

/* out_i = sum_k f(A_ik) x_k (or f(A_ki) with tr), A len x len, f = f1 (which 1) or f2 (2) */
static void fmatvec(const gw_work *w, int which, const double *A, int64_t len, int tr,
                    const double *x, double *out)
{
    const int loss = w->loss;
    if (w->lr) { /* square loss, symmetric: f1 = f2 = square */
        if (which == 1)
            sq_matvec_lr(w, w->A1, w->r1, 1, w->B1T, 1, w->n, w->r1, len, x, out);
        else
            sq_matvec_lr(w, w->A2T, 1, w->m, w->B2, w->r2, 1, w->r2, len, x, out);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < len; i++) {
        double s = 0.0;
        for (int64_t k = 0; k < len; k++) {
            const double v = tr ? A[k * len + i] : A[i * len + k];
            s += (which == 1 ? loss_f1(loss, v) : loss_f2(loss, v)) * x[k];
        }
        out[i] = s;
    }
}

/* G = grad GW(X) = tens(X) + tens^T(X), with X's own marginals (zero for a direction). */
static int gw_grad(gw_work *w, const double *X, double *G)
{
    const int64_t n = w->n, m = w->m;
    int st;
    marginals(w, X, w->r, w->c);
    fmatvec(w, 1, w->C1, n, 0, w->r, w->v1);
    fmatvec(w, 2, w->C2, m, 0, w->c, w->v2);
    if (w->lr) { /* C1 X (2 C2)^T = 2 A1 ((B1^T X) B2) A2^T: O(n m (r1 + r2)) */
        if ((st = monge_gemm(w->r1, m, n, w->B1T, X, w->L1, w->nt)) != MONGE_OK ||
            (st = monge_gemm(w->r1, w->r2, m, w->L1, w->B2, w->L2, w->nt)) != MONGE_OK ||
            (st = monge_gemm(n, w->r2, w->r1, w->A1, w->L2, w->L3, w->nt)) != MONGE_OK ||
            (st = monge_gemm(n, m, w->r2, w->L3, w->A2T, G, w->nt)) != MONGE_OK)
            return st;
#pragma omp parallel for schedule(static) num_threads(w->nt)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++)
                G[i * m + j] = 2.0 * (w->v1[i] + w->v2[j] - 2.0 * G[i * m + j]);
        return MONGE_OK;
    }
    if ((st = monge_gemm(n, m, n, w->C1, X, w->Y, w->nt)) != MONGE_OK) return st;
    if ((st = monge_gemm(n, m, m, w->Y, w->H2T, G, w->nt)) != MONGE_OK) return st;
    const double s = w->sym ? 2.0 : 1.0;
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            G[i * m + j] = s * (w->v1[i] + w->v2[j] - G[i * m + j]);
    if (w->sym) return MONGE_OK;
    fmatvec(w, 1, w->C1, n, 1, w->r, w->v1);
    fmatvec(w, 2, w->C2, m, 1, w->c, w->v2);
    if ((st = monge_gemm(n, m, n, w->C1T, X, w->Y, w->nt)) != MONGE_OK) return st;
    if ((st = monge_gemm(n, m, m, w->Y, w->H2, w->Z, w->nt)) != MONGE_OK) return st;
#pragma omp parallel for schedule(static) num_threads(w->nt)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            G[i * m + j] += w->v1[i] + w->v2[j] - w->Z[i * m + j];
    return MONGE_OK;
}

/* G = grad GW(u v^T) without a dense product: C1 (u v^T) h2(C2)^T = (C1 u)(h2(C2) v)^T. */
static void gw_grad_rank1(gw_work *w, const double *u, const double *v, double *G)
{
    const int64_t n = w->n, m = w->m;
    double su = 0.0, sv = 0.0;
    for (int64_t i = 0; i < n; i++) su += u[i];
    for (int64_t j = 0; j < m; j++) sv += v[j];
    for (int pass = 0; pass < (w->sym ? 1 : 2); pass++) {
        for (int64_t i = 0; i < n; i++) w->r[i] = u[i] * sv;
        for (int64_t j = 0; j < m; j++) w->c[j] = v[j] * su;
        fmatvec(w, 1, w->C1, n, pass, w->r, w->v1);
        fmatvec(w, 2, w->C2, m, pass, w->c, w->v2);
        /* cu = C1 u (C1^T u), hv = h2(C2) v (h2(C2)^T v) */
        double *cu = w->aux, *hv = w->aux + n;
        const double *H = pass ? w->H2T : (w->H2 ? w->H2 : w->H2T); /* h2(C2)^T or h2(C2) */
#pragma omp parallel for schedule(static) num_threads(w->nt)
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t k = 0; k < n; k++) s += (pass ? w->C1T : w->C1)[i * n + k] * u[k];
            cu[i] = s;
        }
#pragma omp parallel for schedule(static) num_threads(w->nt)
        for (int64_t j = 0; j < m; j++) {
            double s = 0.0;
            for (int64_t l = 0; l < m; l++) s += H[j * m + l] * v[l];
            hv[j] = s;
        }
        const double sc = w->sym ? 2.0 : 1.0;
#pragma omp parallel for schedule(static) num_threads(w->nt)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) {
                const double g = sc * (w->v1[i] + w->v2[j] - cu[i] * hv[j]);
                G[i * m + j] = pass ? G[i * m + j] + g : g;
            }
    }
}

/* G = grad GW(S) for a plan S given by its nnz entries (the network simplex's vertex): the
 * products C1 (S h2(C2)^T) start from a sparse S h2(C2)^T (nnz x m work), so one dense product
 * remains where gw_grad needs two.  W: n x m scratch. */
static int gw_grad_sparse(gw_work *w, int64_t nnz, const int64_t *rows, const int64_t *cols,
                          const double *vals, double *G, double *W)
{
    const int64_t n = w->n, m = w->m;
    int st;
    if (w->lr) { /* the products are cheap: S as a dense matrix */
        memset(W, 0, (size_t)(n * m) * sizeof *W);
        for (int64_t e = 0; e < nnz; e++) W[rows[e] * m + cols[e]] += vals[e];
        return gw_grad(w, W, G);
    }
    for (int pass = 0; pass < (w->sym ? 1 : 2); pass++) {
        const double *H = pass ? w->H2 : w->H2T; /* rows l of h2(C2)^T, or of h2(C2) */
        memset(w->r, 0, (size_t)n * sizeof *w->r);
        memset(w->c, 0, (size_t)m * sizeof *w->c);
        memset(W, 0, (size_t)(n * m) * sizeof *W);
        for (int64_t e = 0; e < nnz; e++) {
            const double v = vals[e];
            double *wr = W + rows[e] * m;
            const double *h = H + cols[e] * m;
            for (int64_t j = 0; j < m; j++) wr[j] += v * h[j];
            w->r[rows[e]] += v;
            w->c[cols[e]] += v;
        }
        fmatvec(w, 1, w->C1, n, pass, w->r, w->v1);
        fmatvec(w, 2, w->C2, m, pass, w->c, w->v2);
        if ((st = monge_gemm(n, m, n, pass ? w->C1T : w->C1, W, w->Y, w->nt)) != MONGE_OK)
            return st;
        const double s = w->sym ? 2.0 : 1.0;
#pragma omp parallel for schedule(static) num_threads(w->nt)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) {
                const double v = s * (w->v1[i] + w->v2[j] - w->Y[i * m + j]);
                G[i * m + j] = pass ? G[i * m + j] + v : v;
            }
    }
    return MONGE_OK;
}

/* ---- argument checks --------------------------------------------------------------------- */

static int all_finite(const double *v, int64_t len)
{
    for (int64_t i = 0; i < len; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

static int is_symmetric(const double *A, int64_t len)
{
    for (int64_t i = 0; i < len; i++)
        for (int64_t k = 0; k < i; k++)
            if (A[i * len + k] != A[k * len + i]) return 0;
    return 1;
}

/* Non-negative finite weights (uniform when NULL) into out; returns the mass or -1. */
static double weights(const double *w, int64_t len, double *out)
{
    double s = 0.0;
    for (int64_t i = 0; i < len; i++) {
        const double v = w ? w[i] : 1.0 / (double)len;
        if (!isfinite(v) || v < 0.0) return -1.0;
        out[i] = v;
        s += v;
    }
    return s;
}

static int check_params(const monge_gw_params *par)
{
    if (par->loss != MONGE_GW_SQUARE && par->loss != MONGE_GW_KL) return MONGE_EINVAL;
    if (par->solver != MONGE_GW_ENTROPIC && par->solver != MONGE_GW_CG) return MONGE_EINVAL;
    if (par->semirelaxed && par->solver != MONGE_GW_CG) return MONGE_EINVAL;
    if (!(par->alpha >= 0.0 && par->alpha <= 1.0)) return MONGE_EINVAL;
    if (!(par->tol >= 0.0) || !isfinite(par->tol) || !(par->tol_abs >= 0.0) ||
        !isfinite(par->tol_abs) || par->max_iter < 1 || par->inner_max_iter < 0)
        return MONGE_EINVAL;
    if (par->solver != MONGE_GW_CG &&
        (!(par->eps > 0.0) || !isfinite(par->eps) || !(par->inner_tol > 0.0) ||
         !isfinite(par->inner_tol) || !(par->eps_start >= 0.0) || !isfinite(par->eps_start) ||
         !(par->scaling_factor > 0.0 && par->scaling_factor < 1.0)))
        return MONGE_EINVAL;
    return MONGE_OK;
}

/* ---- the solvers ------------------------------------------------------------------------- */

typedef struct {
    monge_progress_fn fn;
    void *ctx;
} inner_progress;

static int inner_progress_cb(void *vctx, int64_t iter, double err)
{
    (void)iter;
    const inner_progress *ip = vctx;
    return ip->fn(ip->ctx, -1, err);
}

static double rel_change(double dF, double F) { return fabs(dF) / fmax(fabs(F), 1e-300); }

/* Factors of the squared distances of centred points z (len x d): C = A B^T with rows
 * A_i = [|z_i|^2, 1, -2 z_i], B_k = [1, |z_k|^2, z_k] (rank d + 2).  With transposed_a, A is
 * stored transposed (r x len) and B as is (len x r); else A as is and B transposed. */
static void lowrank_factors(const double *z, int64_t len, int64_t d, double *A, double *B,
                            int transposed_a)
{
    const int64_t r = d + 2;
    double mean[16] = {0};
    for (int64_t i = 0; i < len; i++)
        for (int64_t a = 0; a < d; a++) mean[a] += z[i * d + a];
    for (int64_t a = 0; a < d; a++) mean[a] /= (double)len;
    for (int64_t i = 0; i < len; i++) {
        double sq = 0.0;
        for (int64_t a = 0; a < d; a++) {
            const double v = z[i * d + a] - mean[a];
            sq += v * v;
        }
        double av[18], bv[18];
        av[0] = sq;
        av[1] = 1.0;
        bv[0] = 1.0;
        bv[1] = sq;
        for (int64_t a = 0; a < d; a++) {
            const double v = z[i * d + a] - mean[a];
            av[2 + a] = -2.0 * v;
            bv[2 + a] = v;
        }
        for (int64_t a = 0; a < r; a++) {
            if (transposed_a) {
                A[a * len + i] = av[a];
                B[i * r + a] = bv[a];
            } else {
                A[i * r + a] = av[a];
                B[a * len + i] = bv[a];
            }
        }
    }
}

/* One solver for both inputs: matrices C1, C2, or (x, dx, y, dy non-NULL) point clouds whose
 * squared distances are used through their low-rank factors. */
static int points_grad(gw_work *w, const double *T, const double *x, int64_t dx, const double *y,
                       int64_t dy, double alpha, double *grad_x, double *grad_y);

static int gromov_impl(int64_t n, int64_t m, const double *C1, const double *C2, const double *x,
                       int64_t dx, const double *y, int64_t dy, const double *p, const double *q,
                       const double *M, const monge_gw_params *par, double *T, double *f_out,
                       double *g_out, double *grad_C1, double *grad_C2, double *grad_x,
                       double *grad_y, monge_gw_info *info)
{
    const int lr = x != NULL;
    if (!par || (!lr && (!C1 || !C2)) || (lr && (!y || dx < 1 || dy < 1 || dx > 16 || dy > 16 ||
                                                 grad_C1 || grad_C2)) ||
        !T || n < 1 || m < 1)
        return MONGE_EINVAL;
    if (check_params(par) != MONGE_OK) return MONGE_EINVAL;
    if (n > (INT64_MAX / 16) / m || (!lr && (n > (INT64_MAX / 16) / n || m > (INT64_MAX / 16) / m)))
        return MONGE_EINVAL;
    const int loss = par->loss;
    if (lr && loss != MONGE_GW_SQUARE) return MONGE_EINVAL;
    if (lr ? !all_finite(x, n * dx) || !all_finite(y, m * dy)
           : !all_finite(C1, n * n) || !all_finite(C2, m * m))
        return MONGE_EINVAL;
    if (M && !all_finite(M, n * m)) return MONGE_EINVAL;
    if (loss == MONGE_GW_KL) {
        for (int64_t i = 0; i < n * n; i++)
            if (C1[i] < 0.0) return MONGE_EINVAL;
        for (int64_t i = 0; i < m * m; i++)
            if (!(C2[i] > 0.0)) return MONGE_EINVAL;
    }
    if (par->warm_start) {
        for (int64_t i = 0; i < n * m; i++)
            if (!isfinite(T[i]) || T[i] < 0.0) return MONGE_EINVAL;
    }
    const double alpha = M ? par->alpha : 1.0;
    const int sym = lr || (is_symmetric(C1, n) && is_symmetric(C2, m));
    const int nt = monge_resolve_threads(par->nthreads);
    const int cg = par->solver == MONGE_GW_CG;
    const size_t nm = (size_t)(n * m);
    const int64_t mx = n > m ? n : m;

    gw_work w;
    memset(&w, 0, sizeof w);
    w.n = n;
    w.m = m;
    w.loss = loss;
    w.sym = sym;
    w.nt = nt;
    w.C1 = C1;
    w.C2 = C2;
    w.lr = lr;
    double *pw = malloc((size_t)n * sizeof *pw), *qw = malloc((size_t)m * sizeof *qw);
    double *G = malloc(nm * sizeof *G);    /* grad GW at T */
    double *Cst = malloc(nm * sizeof *Cst); /* grad F at T: the linear problem's cost */
    double *D = malloc(nm * sizeof *D); /* cg: scratch of the sparse gradient; entropic: the last
                                           Sinkhorn cost */
    double *GD = cg ? malloc(nm * sizeof *GD) : NULL; /* cg: grad GW at the direction */
    const int64_t cap = n + m - 1;
    int64_t *rows = cg ? malloc((size_t)cap * sizeof *rows) : NULL;
    int64_t *cols = cg ? malloc((size_t)cap * sizeof *cols) : NULL;
    double *vals = cg ? malloc((size_t)cap * sizeof *vals) : NULL;
    double *f = calloc((size_t)n, sizeof *f), *g = calloc((size_t)m, sizeof *g);
    if (lr) {
        w.r1 = dx + 2;
        w.r2 = dy + 2;
        w.A1 = malloc((size_t)(n * w.r1) * sizeof *w.A1);
        w.B1T = malloc((size_t)(n * w.r1) * sizeof *w.B1T);
        w.A2T = malloc((size_t)(m * w.r2) * sizeof *w.A2T);
        w.B2 = malloc((size_t)(m * w.r2) * sizeof *w.B2);
        w.L1 = malloc((size_t)(m * w.r1) * sizeof *w.L1);
        w.L2 = malloc((size_t)(w.r1 * w.r2) * sizeof *w.L2);
        w.L3 = malloc((size_t)(n * w.r2) * sizeof *w.L3);
    } else {
        w.H2T = malloc((size_t)(m * m) * sizeof *w.H2T);
    }
    w.Y = malloc(nm * sizeof *w.Y);
    w.r = malloc((size_t)n * sizeof *w.r);
    w.c = malloc((size_t)m * sizeof *w.c);
    w.v1 = malloc((size_t)n * sizeof *w.v1);
    w.v2 = malloc((size_t)m * sizeof *w.v2);
    w.rowbuf = malloc((size_t)mx * sizeof *w.rowbuf);
    w.aux = malloc((size_t)(n + m) * sizeof *w.aux);
    if (!sym) {
        w.C1T = malloc((size_t)(n * n) * sizeof *w.C1T);
        w.H2 = malloc((size_t)(m * m) * sizeof *w.H2);
        w.Z = malloc(nm * sizeof *w.Z);
    }
    int st = MONGE_OK;
    monge_emd_basis *basis = NULL;
    if (!pw || !qw || !G || !Cst || !D || (cg && (!GD || !rows || !cols || !vals)) || !f || !g ||
        (lr ? !w.A1 || !w.B1T || !w.A2T || !w.B2 || !w.L1 || !w.L2 || !w.L3 : !w.H2T) || !w.Y ||
        !w.r || !w.c || !w.v1 || !w.v2 || !w.rowbuf || !w.aux ||
        (!sym && (!w.C1T || !w.H2 || !w.Z))) {
        st = MONGE_ENOMEM;
        goto out;
    }
    const double mp = weights(p, n, pw), mq = weights(q, m, qw);
    if (!(mp > 0.0) || !(mq > 0.0) || fabs(mp - mq) > 1e-8 * fmax(mp, mq)) {
        st = MONGE_EINVAL;
        goto out;
    }
    if (lr) {
        lowrank_factors(x, n, dx, w.A1, w.B1T, 0);
        lowrank_factors(y, m, dy, w.A2T, w.B2, 1);
    } else {
        for (int64_t j = 0; j < m; j++)
            for (int64_t l = 0; l < m; l++) {
                const double h = loss_h2(loss, C2[j * m + l]);
                w.H2T[l * m + j] = h;
                if (!sym) w.H2[j * m + l] = h;
            }
    }
    if (!sym)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < n; k++) w.C1T[k * n + i] = C1[i * n + k];
    if (!par->warm_start)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) T[i * m + j] = pw[i] * qw[j] / mp;

    inner_progress ip = {par->progress, par->progress_ctx};
    int64_t k = 0, inner_iter = 0;
    int converged = 0, inner_ok = 1;
    double delta = NAN, fw_gap = NAN;
    if (par->warm_start || lr) {
        if ((st = gw_grad(&w, T, G)) != MONGE_OK) goto out;
    } else {
        for (int64_t i = 0; i < n; i++) w.rowbuf[i] = pw[i] / mp;
        gw_grad_rank1(&w, w.rowbuf, qw, G);
    }
    double F = (M ? (1.0 - alpha) * dot_nm(&w, M, T) : 0.0) + 0.5 * alpha * dot_nm(&w, G, T);
    if (!isfinite(F)) {
        st = MONGE_ENONFINITE;
        goto out;
    }

    monge_geometry geom = {n, m, MONGE_F64, Cst, NULL, NULL, 0, MONGE_COST_SQEUCLIDEAN, 2.0, 0.0};
    monge_problem pb = {&geom, pw, qw, INFINITY, INFINITY};
    monge_sinkhorn_params sp;
    monge_sinkhorn_params_init(&sp);
    /* entropic eps-scaling: stages from eps_start (default: the largest entry of the first
     * linear cost) down by scaling_factor, each ended at a relative change of 1e-4 */
    double eps_k = par->eps;
    if (!cg && par->eps_scaling) {
        double cmax = 0.0;
        for (size_t e = 0; e < nm; e++) {
            const double v = fabs((M ? (1.0 - alpha) * M[e] : 0.0) + alpha * G[e]);
            cmax = v > cmax ? v : cmax;
        }
        eps_k = par->eps_start > 0.0 ? par->eps_start : cmax;
        if (!(eps_k > par->eps)) eps_k = par->eps;
    }
    sp.eps = eps_k;
    sp.tol = par->inner_tol;
    double lam = cg || par->damping < 0.0 ? 0.0 : par->damping;
    const int auto_damp = !cg && par->damping < 0.0;
    int alternations = 0;
    double last_dF = 0.0;
    sp.max_iter = par->inner_max_iter > 0 ? par->inner_max_iter : 10000;
    sp.compute_cost = 0;
    sp.nthreads = nt;
    sp.progress = par->progress ? inner_progress_cb : NULL;
    sp.progress_ctx = &ip;
    monge_emd_params ep;
    monge_emd_params_init(&ep);
    ep.max_iter = par->inner_max_iter;
    ep.progress = sp.progress;
    ep.progress_ctx = &ip;
    if (cg && (st = monge_emd_basis_new(&basis)) != MONGE_OK) goto out;
    ep.basis = basis; /* each linear problem starts from the last one's optimal basis */

    for (k = 1; k <= par->max_iter; k++) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++)
                Cst[i * m + j] = (M ? (1.0 - alpha) * M[i * m + j] : 0.0) + alpha * G[i * m + j];
        double Fnew;
        if (!cg && lam > 0.0) {
            /* damped step: + lam KL(T | T_k), with lam log(T_k / p q^T) = lam (f + g - C_k) / eps'
             * from the last solve, at eps' = eps + lam */
            if (k > 1) {
                const double r = lam / sp.eps;
#pragma omp parallel for schedule(static) num_threads(nt)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < m; j++)
                        Cst[i * m + j] -= r * (f[i] + g[j] - D[i * m + j]);
            }
            sp.eps = eps_k + lam;
        }
        if (!cg) {
            monge_sinkhorn_info si;
            const int s2 = monge_sinkhorn(&pb, &sp, f, g, &si);
            if (s2 != MONGE_OK && s2 != MONGE_ENOCONV) {
                st = s2;
                goto out;
            }
            sp.warm_start = 1;
            memcpy(D, Cst, nm * sizeof *D); /* the next damped step needs this cost */
            inner_iter += si.n_iter;
            inner_ok = si.converged;
            if ((st = monge_sinkhorn_plan(&pb, sp.eps, f, g, T, nt)) != MONGE_OK) goto out;
            if ((st = gw_grad(&w, T, G)) != MONGE_OK) goto out;
            Fnew = (M ? (1.0 - alpha) * dot_nm(&w, M, T) : 0.0) + 0.5 * alpha * dot_nm(&w, G, T);
        } else {
            monge_emd_info ei;
            if (par->semirelaxed) {
                /* the vertex: each row's mass on its column of least cost (the first of ties);
                   f_i that least cost, the potential of the one constraint */
                for (int64_t i = 0; i < n; i++) {
                    const double *ci = Cst + i * m;
                    int64_t jb = 0;
                    for (int64_t j = 1; j < m; j++)
                        if (ci[j] < ci[jb]) jb = j;
                    rows[i] = i;
                    cols[i] = jb;
                    vals[i] = pw[i];
                    f[i] = ci[jb];
                }
                ei.nnz = n;
            } else {
                const int s2 = monge_emd(&geom, pw, qw, &ep, rows, cols, vals, f, g, &ei);
                if (s2 != MONGE_OK && s2 != MONGE_ENOCONV) {
                    st = s2;
                    goto out;
                }
                inner_iter += ei.n_iter;
                inner_ok = s2 == MONGE_OK;
            }
            /* direction D = S - T; grad GW(D) = grad GW(S) - G by linearity */
            double cs = 0.0;
            for (int64_t e = 0; e < ei.nnz; e++) cs += Cst[rows[e] * m + cols[e]] * vals[e];
            const double b = cs - dot_nm(&w, Cst, T);
            fw_gap = -b;
            if ((st = gw_grad_sparse(&w, ei.nnz, rows, cols, vals, GD, D)) != MONGE_OK) goto out;
#pragma omp parallel for schedule(static) num_threads(nt)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < m; j++) GD[i * m + j] -= G[i * m + j];
            double gs = 0.0;
            for (int64_t e = 0; e < ei.nnz; e++) gs += GD[rows[e] * m + cols[e]] * vals[e];
            const double a = 0.5 * alpha * (gs - dot_nm(&w, GD, T));
            double t;
            if (a > 0.0)
                t = fmin(1.0, fmax(0.0, -b / (2.0 * a)));
            else
                t = a + b < 0.0 ? 1.0 : 0.0;
            const double dF = t * b + t * t * a;
            if (t > 0.0) {
#pragma omp parallel for schedule(static) num_threads(nt)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t j = 0; j < m; j++) {
                        T[i * m + j] -= t * T[i * m + j];
                        G[i * m + j] += t * GD[i * m + j];
                    }
                for (int64_t e = 0; e < ei.nnz; e++) T[rows[e] * m + cols[e]] += t * vals[e];
            }
            Fnew = F + dF;
        }
        if (!isfinite(Fnew)) {
            st = MONGE_ENONFINITE;
            goto out;
        }
        const double dF = Fnew - F;
        F = Fnew;
        delta = rel_change(dF, F);
        if (auto_damp) {
            /* a cycle shows as changes of alternating sign: damp it (more at each new run) */
            alternations = dF * last_dF < 0.0 ? alternations + 1 : 0;
            last_dF = dF;
            if (alternations >= 4) {
                lam = lam > 0.0 ? 2.0 * lam : eps_k;
                alternations = 0;
            }
        }
        if (par->progress && par->progress(par->progress_ctx, k, delta)) {
            st = MONGE_EINTR;
            break;
        }
        if (eps_k > par->eps) {
            if (fabs(dF) <= 1e-4 * fabs(F)) {
                eps_k = fmax(par->eps, eps_k * par->scaling_factor);
                sp.eps = eps_k;
            }
        } else if (fabs(dF) <= par->tol * fabs(F) + par->tol_abs && inner_ok) {
            converged = 1;
            break;
        }
    }
    if (k > par->max_iter) k = par->max_iter;

    /* the reported values (cg: from the gradient kept as a convex combination, whose rounding
     * does not build up) */
    const double gw = 0.5 * dot_nm(&w, G, T), lin = M ? dot_nm(&w, M, T) : 0.0;
    marginals(&w, T, w.r, w.c);
    double err = 0.0;
    for (int64_t i = 0; i < n; i++) err += fabs(w.r[i] - pw[i]);
    if (!par->semirelaxed)
        for (int64_t j = 0; j < m; j++) err += fabs(w.c[j] - qw[j]);

    if (lr && (grad_x || grad_y)) {
        const int s2 = points_grad(&w, T, x, dx, y, dy, alpha, grad_x, grad_y);
        if (s2 != MONGE_OK) {
            st = s2;
            goto out;
        }
    }
    if (grad_C1 || grad_C2) {
        /* d F / d C1_ik = alpha (f1'(C1_ik) r_i r_k - (T h2(C2) T^T)_ik), and likewise for C2 */
        double *Tt = malloc(nm * sizeof *Tt), *V = malloc(nm * sizeof *V);
        if (!Tt || !V) {
            free(Tt);
            free(V);
            st = MONGE_ENOMEM;
            goto out;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) Tt[j * n + i] = T[i * m + j];
        int s2 = MONGE_OK;
        if (grad_C1) {
            s2 = monge_gemm(n, m, m, T, sym ? w.H2T : w.H2, w.Y, nt);
            if (s2 == MONGE_OK) s2 = monge_gemm(n, n, m, w.Y, Tt, grad_C1, nt);
            if (s2 == MONGE_OK)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t l = 0; l < n; l++)
                        grad_C1[i * n + l] =
                            alpha * (loss_df1(loss, C1[i * n + l]) * w.r[i] * w.r[l] -
                                     grad_C1[i * n + l]);
        }
        if (grad_C2 && s2 == MONGE_OK) {
            s2 = monge_gemm(m, n, n, Tt, C1, V, nt);
            if (s2 == MONGE_OK) s2 = monge_gemm(m, m, n, V, T, grad_C2, nt);
            if (s2 == MONGE_OK)
                for (int64_t j = 0; j < m; j++)
                    for (int64_t l = 0; l < m; l++)
                        grad_C2[j * m + l] =
                            alpha * (loss_df2(loss, C2[j * m + l]) * w.c[j] * w.c[l] -
                                     loss_dh2(loss, C2[j * m + l]) * grad_C2[j * m + l]);
        }
        free(Tt);
        free(V);
        if (s2 != MONGE_OK) {
            st = s2;
            goto out;
        }
    }
    if (f_out) memcpy(f_out, f, (size_t)n * sizeof *f);
    if (g_out) memcpy(g_out, g, (size_t)m * sizeof *g);
    if (info) {
        info->value = (1.0 - alpha) * lin + alpha * gw;
        info->gw = gw;
        info->linear = lin;
        info->delta = delta;
        info->error = err;
        info->fw_gap = cg ? fw_gap : NAN;
        info->eps = cg ? NAN : eps_k;
        info->n_iter = k;
        info->inner_iter = inner_iter;
        info->converged = converged;
    }
    if (st == MONGE_OK && !converged) st = MONGE_ENOCONV;
out:
    monge_emd_basis_free(basis);
    free(w.A1);
    free(w.B1T);
    free(w.A2T);
    free(w.B2);
    free(w.L1);
    free(w.L2);
    free(w.L3);
    free(pw);
    free(qw);
    free(G);
    free(Cst);
    free(D);
    free(GD);
    free(rows);
    free(cols);
    free(vals);
    free(f);
    free(g);
    free(w.C1T);
    free(w.H2T);
    free(w.H2);
    free(w.Y);
    free(w.Z);
    free(w.r);
    free(w.c);
    free(w.v1);
    free(w.v2);
    free(w.rowbuf);
    free(w.aux);
    return st;
}

int monge_gromov(int64_t n, int64_t m, const double *C1, const double *C2, const double *p,
                 const double *q, const double *M, const monge_gw_params *par, double *T,
                 double *f, double *g, double *grad_C1, double *grad_C2, monge_gw_info *info)
{
    if (!C1 || !C2) return MONGE_EINVAL;
    return gromov_impl(n, m, C1, C2, NULL, 0, NULL, 0, p, q, M, par, T, f, g, grad_C1, grad_C2,
                       NULL, NULL, info);
}

int monge_gromov_points(int64_t n, int64_t m, int64_t dx, int64_t dy, const double *x,
                        const double *y, const double *p, const double *q, const double *M,
                        const monge_gw_params *par, double *T, double *f, double *g,
                        double *grad_x, double *grad_y, monge_gw_info *info)
{
    if (!x || !y) return MONGE_EINVAL;
    return gromov_impl(n, m, NULL, NULL, x, dx, y, dy, p, q, M, par, T, f, g, NULL, NULL, grad_x,
                       grad_y, info);
}

/* C V for a cloud's squared distances from their factors (C symmetric: C = F G^T = G F^T), V
 * len x k; tmp r x k. */
static int lr_apply(const gw_work *w, int side, const double *V, int64_t k, double *tmp,
                    double *out)
{
    int st;
    if (side == 0) { /* C1 V = A1 (B1^T V) */
        if ((st = monge_gemm(w->r1, k, w->n, w->B1T, V, tmp, w->nt)) != MONGE_OK) return st;
        return monge_gemm(w->n, k, w->r1, w->A1, tmp, out, w->nt);
    } /* C2 V = B2 (A2^T V) */
    if ((st = monge_gemm(w->r2, k, w->m, w->A2T, V, tmp, w->nt)) != MONGE_OK) return st;
    return monge_gemm(w->m, k, w->r2, w->B2, tmp, out, w->nt);
}

/* Gradients of F at the plan with respect to the points (square loss, symmetric distances):
 * with G1 = dF/dC1 = 2 alpha (C1 o r r^T - T C2 T^T) and C1_ik = |x_i - x_k|^2,
 *     dF/dx_i = 4 (x_i (G1 1)_i - (G1 x)_i),
 * and likewise for y with G2 = 2 alpha (C2 o c c^T - T^T C1 T); every product is thin. */
static int points_grad(gw_work *w, const double *T, const double *x, int64_t dx, const double *y,
                       int64_t dy, double alpha, double *grad_x, double *grad_y)
{
    const int64_t n = w->n, m = w->m, dm = (dx > dy ? dx : dy) + 1;
    const int64_t big = n > m ? n : m;
    double *Tt = malloc((size_t)(n * m) * sizeof *Tt);
    double *V = malloc((size_t)(big * dm) * sizeof *V), *W = malloc((size_t)(big * dm) * sizeof *W);
    double *Z = malloc((size_t)(big * dm) * sizeof *Z), *tmp = malloc((size_t)(18 * dm) * sizeof *tmp);
    int st = MONGE_OK;
    if (!Tt || !V || !W || !Z || !tmp) {
        st = MONGE_ENOMEM;
        goto out;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) Tt[j * n + i] = T[i * m + j];
    for (int side = 0; side < 2; side++) {
        double *grad = side ? grad_y : grad_x;
        if (!grad) continue;
        /* this side: points z (len x d), weights u (its marginal); the plan P from it to the
         * other side (len x len2: T or T^T) */
        const int64_t len = side ? m : n, len2 = side ? n : m, d = side ? dy : dx, k = d + 1;
        const double *z = side ? y : x, *u = side ? w->c : w->r;
        const double *P = side ? Tt : T, *Pt = side ? T : Tt;
        /* first term: u o (C (u o [1, z])) */
        for (int64_t i = 0; i < len; i++) {
            V[i * k] = u[i];
            for (int64_t a = 0; a < d; a++) V[i * k + 1 + a] = u[i] * z[i * d + a];
        }
        if ((st = lr_apply(w, side, V, k, tmp, W)) != MONGE_OK) goto out;
        for (int64_t i = 0; i < len; i++)
            for (int64_t a = 0; a < k; a++) W[i * k + a] *= u[i];
        /* second term: P (C_other (P^T [1, z])) */
        for (int64_t i = 0; i < len; i++) {
            V[i * k] = 1.0;
            for (int64_t a = 0; a < d; a++) V[i * k + 1 + a] = z[i * d + a];
        }
        if ((st = monge_gemm(len2, k, len, Pt, V, Z, w->nt)) != MONGE_OK) goto out;
        if ((st = lr_apply(w, 1 - side, Z, k, tmp, V)) != MONGE_OK) goto out;
        if ((st = monge_gemm(len, k, len2, P, V, Z, w->nt)) != MONGE_OK) goto out;
        /* G 1 = 2 alpha (W[:, 0] - Z[:, 0]), G z = 2 alpha (W[:, 1:] - Z[:, 1:]) */
        for (int64_t i = 0; i < len; i++) {
            const double g1 = 2.0 * alpha * (W[i * k] - Z[i * k]);
            for (int64_t a = 0; a < d; a++) {
                const double gz = 2.0 * alpha * (W[i * k + 1 + a] - Z[i * k + 1 + a]);
                grad[i * d + a] = 4.0 * (z[i * d + a] * g1 - gz);
            }
        }
    }
out:
    free(Tt);
    free(V);
    free(W);
    free(Z);
    free(tmp);
    return st;
}

