/* monge fixed-support entropic barycenters by log-domain iterative Bregman projections (see
 * barycenter.h). */
#include "barycenter.h"
#include "internal.h"
#include "anderson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

void monge_barycenter_params_init(monge_barycenter_params *par)
{
    memset(par, 0, sizeof *par);
    par->eps = 0.1;
    par->tol = 1e-6;
    par->max_iter = 10000;
    par->debiased = 0;
    par->anderson = -1;
    par->nthreads = 0;
}

/* Non-negative finite weights summing to 1 within 1e-6. */
static int check_simplex(const double *w, int64_t len)
{
    if (!w) return MONGE_EINVAL;
    double s = 0.0;
    for (int64_t i = 0; i < len; i++) {
        if (!isfinite(w[i]) || w[i] < 0.0) return MONGE_EINVAL;
        s += w[i];
    }
    return fabs(s - 1.0) <= 1e-6 ? MONGE_OK : MONGE_EINVAL;
}

static int check_args(int64_t K, const monge_geometry *geoms, const double *const *b,
                      const double *lambda, const monge_geometry *self,
                      const monge_barycenter_params *par, const double *a, int64_t *M)
{
    if (K < 1 || !geoms || !b || !lambda || !par || !a) return MONGE_EINVAL;
    if (!(par->eps > 0.0) || !isfinite(par->eps) || !(par->tol > 0.0) || !isfinite(par->tol) ||
        par->max_iter < 1 || par->anderson < -1 || par->anderson > MONGE_AA_MAX_MEM)
        return MONGE_EINVAL;
    const int64_t n = geoms[0].n;
    if (n < 1 || K > INT64_MAX / 4 / n) return MONGE_EINVAL;
    int64_t tot = 0;
    for (int64_t k = 0; k < K; k++) {
        if (geoms[k].n != n || geoms[k].m < 1 || geoms[k].m > INT64_MAX / 4 - tot)
            return MONGE_EINVAL;
        if (check_simplex(b[k], geoms[k].m) != MONGE_OK) return MONGE_EINVAL;
        tot += geoms[k].m;
    }
    if (check_simplex(lambda, K) != MONGE_OK) return MONGE_EINVAL;
    if (par->debiased && (!self || self->n != n || self->m != n)) return MONGE_EINVAL;
    *M = tot;
    return MONGE_OK;
}

/* ---- kernels: a prepared geometry, or a regular grid's separable log-sum-exp ------------------ */

typedef struct {
    int64_t d, n, len[MONGE_GRID_MAX_DIM];
    double *D[MONGE_GRID_MAX_DIM]; /* per axis, (t_i - t_j)^2 (len x len) */
    double *A, *B, *T;             /* n each: the passes' input and output, a transpose */
    double *scr;                   /* per thread: 2 x GRID_CHUNK */
    int nth;
} grid_kern;

enum { GRID_CHUNK = 256 };

typedef struct {
    monge_geom_work *w; /* or NULL: */
    grid_kern *grid;
} bkern;

static void grid_free(grid_kern *gk)
{
    if (!gk) return;
    for (int64_t a = 0; a < gk->d; a++) free(gk->D[a]);
    free(gk->A);
    free(gk->B);
    free(gk->T);
    free(gk->scr);
    free(gk);
}

static int grid_new(const monge_grid *g, int nth, grid_kern **out)
{
    *out = NULL;
    if (!g || g->d < 1 || g->d > MONGE_GRID_MAX_DIM || !g->len || !g->t) return MONGE_EINVAL;
    int64_t n = 1;
    for (int64_t a = 0; a < g->d; a++) {
        if (g->len[a] < 1 || !g->t[a] || n > INT64_MAX / 8 / g->len[a]) return MONGE_EINVAL;
        for (int64_t i = 0; i < g->len[a]; i++)
            if (!isfinite(g->t[a][i])) return MONGE_EINVAL;
        n *= g->len[a];
    }
    grid_kern *gk = calloc(1, sizeof *gk);
    if (!gk) return MONGE_ENOMEM;
    gk->d = g->d;
    gk->n = n;
    gk->nth = nth;
    int st = MONGE_OK;
    for (int64_t a = 0; a < g->d && st == MONGE_OK; a++) {
        const int64_t L = g->len[a];
        gk->len[a] = L;
        gk->D[a] = malloc((size_t)(L * L) * sizeof *gk->D[a]);
        if (!gk->D[a]) st = MONGE_ENOMEM;
        else
            for (int64_t i = 0; i < L; i++)
                for (int64_t j = 0; j < L; j++) {
                    const double z = g->t[a][i] - g->t[a][j];
                    gk->D[a][i * L + j] = z * z;
                }
    }
    gk->A = malloc((size_t)n * sizeof *gk->A);
    gk->B = malloc((size_t)n * sizeof *gk->B);
    gk->T = malloc((size_t)n * sizeof *gk->T);
    gk->scr = malloc((size_t)(2 * GRID_CHUNK * nth) * sizeof *gk->scr);
    if (st == MONGE_OK && (!gk->A || !gk->B || !gk->T || !gk->scr)) st = MONGE_ENOMEM;
    if (st != MONGE_OK) {
        grid_free(gk);
        return st;
    }
    *out = gk;
    return MONGE_OK;
}

/* One output row i of one axis of the separable log-sum-exp: for the lines q0 .. q0 + qn of block
 * o (lines contiguous in memory, stride s between the L points of a line),
 * B[o, i, q] = log sum_j exp(A[o, j, q] - D_ij / eps); two passes (the max, then the sum). */
MONGE_HOT static void grid_axis(const double *restrict A, double *restrict B, const double *D,
                                int64_t L, int64_t s, double ieps, double *restrict scr,
                                int64_t o, int64_t i, int64_t q0, int64_t qn)
{
    double *mx = scr, *sm = scr + GRID_CHUNK;
    const double *Ao = A + o * L * s + q0;
    double *Bo = B + o * L * s + q0;
    for (int64_t q = 0; q < qn; q++) mx[q] = -INFINITY;
    for (int64_t j = 0; j < L; j++) {
        const double c = D[i * L + j] * ieps;
        const double *aj = Ao + j * s;
        MONGE_SIMD
        for (int64_t q = 0; q < qn; q++) {
            const double v = aj[q] - c;
            mx[q] = v > mx[q] ? v : mx[q];
        }
    }
    for (int64_t q = 0; q < qn; q++) sm[q] = 0.0;
    for (int64_t j = 0; j < L; j++) {
        const double c = D[i * L + j] * ieps;
        const double *aj = Ao + j * s;
        MONGE_SIMD
        for (int64_t q = 0; q < qn; q++) {
            const double m = mx[q] == -INFINITY ? 0.0 : mx[q];
            sm[q] += monge_exp(aj[q] - c - m);
        }
    }
    double *bi = Bo + i * s;
    for (int64_t q = 0; q < qn; q++) bi[q] = mx[q] == -INFINITY ? -INFINITY : mx[q] + log(sm[q]);
}

/* Y (cols x rows) = X^T for X (rows x cols), row-major. */
static void transpose(const double *restrict X, double *restrict Y, int64_t rows, int64_t cols,
                      int nth)
{
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) Y[c * rows + r] = X[r * cols + c];
}

/* out_i = eps log sum_j exp((h_j - |x_i - x_j|^2) / eps) over the grid, axis by axis (exact: the
 * squared distance is a sum over axes).  O(n sum_a len_a) exponentials instead of O(n^2).  Each
 * output is one thread's, so the result does not depend on the thread count.  The last axis is
 * contiguous: its lines are transposed first, so that the vector lanes run across lines as on
 * the other axes. */
static int grid_softmin(grid_kern *gk, double eps, const double *h, double *out)
{
    const int64_t n = gk->n;
    const double ieps = 1.0 / eps;
    for (int64_t i = 0; i < n; i++) gk->A[i] = h[i] * ieps;
    int64_t s = n;
    for (int64_t a = 0; a < gk->d; a++) {
        const int64_t L = gk->len[a];
        s /= L; /* stride of axis a (row-major: the last axis is contiguous) */
        int64_t outer = n / (L * s), stride = s;
        const double *src = gk->A;
        double *dst = gk->B;
        const int flip = s == 1 && outer > 1;
        if (flip) { /* (outer, L) -> (L, outer): one block whose lines are the old blocks */
            transpose(gk->A, gk->T, outer, L, gk->nth);
            src = gk->T;
            dst = gk->A;
            stride = outer;
            outer = 1;
        }
        const int64_t nq = (stride + GRID_CHUNK - 1) / GRID_CHUNK, tasks = outer * nq * L;
        const double *D = gk->D[a];
#pragma omp parallel for schedule(static) num_threads(gk->nth)
        for (int64_t t = 0; t < tasks; t++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            const int64_t i = t % L, oq = t / L, o = oq / nq, q0 = (oq % nq) * GRID_CHUNK;
            const int64_t qn = stride - q0 < GRID_CHUNK ? stride - q0 : GRID_CHUNK;
            grid_axis(src, dst, D, L, stride, ieps, gk->scr + 2 * GRID_CHUNK * tid, o, i, q0, qn);
        }
        if (flip) transpose(gk->A, gk->B, L, n / L, gk->nth); /* back to (outer, L) */
        double *tmp = gk->A;
        gk->A = gk->B;
        gk->B = tmp;
    }
    for (int64_t i = 0; i < n; i++) {
        out[i] = eps * gk->A[i];
        if (isnan(out[i])) return MONGE_ENONFINITE;
    }
    return MONGE_OK;
}

static int kern_softmin(const bkern *k, int tr, double eps, const double *h, const double *hint,
                        double *out, int nth)
{
    if (k->w) return monge_softmin(k->w, tr, eps, h, hint, out, nth);
    return grid_softmin(k->grid, eps, h, out); /* symmetric: tr changes nothing */
}

/* Anderson mixing of the iterations: a mixed iterate whose error exceeds BARY_AA_REJECT x the
 * best so far (or is not finite) is replaced by the plain image it came from.  The automatic
 * choice (anderson = -1) mixes BARY_AA_MEM iterates of the plain barycenter and none of the
 * debiased one, whose iterates drift towards a boundary (entries of a going to 0) where the
 * mixing stalls (measured: docs/performance.md). */
#define BARY_AA_REJECT 10.0
#define BARY_AA_MEM 8

/* The iterative Bregman projections on K kernels between the barycenter's support (n) and the
 * inputs' supports (m[k]), with self the barycenter's own kernel when debiased.  The state is
 * (g, log c): from it the first marginals (a), the plans' second marginals (the error) and the
 * next state; with par->anderson the next state may be extrapolated (Anderson mixing). */
static int ibp(int64_t K, int64_t n, const int64_t *msz, const bkern *kern, const bkern *self,
               const double *const *b, const double *lambda, const monge_barycenter_params *par,
               int64_t M, double *a, double *f_out, double *g_out, double *logc_out,
               double *error, int64_t *n_iter)
{
    int st = MONGE_OK;
    const double eps = par->eps;
    const int nth = monge_resolve_threads(par->nthreads);
    const int deb = par->debiased != 0;
    const int aam = par->anderson >= 0 ? par->anderson : (deb ? 0 : BARY_AA_MEM);
    const int64_t L = M + n; /* the state: g, then log c */
    int64_t *off = malloc((size_t)(K + 1) * sizeof *off);
    double *f = calloc((size_t)(K * n), sizeof *f);    /* potentials on the barycenter side */
    double *R = malloc((size_t)(K * n) * sizeof *R);   /* softmin_rows(g_k) */
    double *x = malloc((size_t)L * sizeof *x);         /* g (M), then lc (n): log c (natural) */
    double *oc = malloc((size_t)M * sizeof *oc);      /* softmin_cols(f_k) */
    double *lb = malloc((size_t)M * sizeof *lb);      /* eps log b */
    double *hint = malloc((size_t)(M > n ? M : n) * sizeof *hint);
    double *loga = malloc((size_t)n * sizeof *loga);
    double *h = malloc((size_t)n * sizeof *h);
    double *S = malloc((size_t)n * sizeof *S);
    double *xold = aam ? malloc((size_t)L * sizeof *xold) : NULL;   /* x before its step */
    double *plain = aam ? malloc((size_t)L * sizeof *plain) : NULL; /* its plain image */
    monge_aa aa;
    memset(&aa, 0, sizeof aa);
    if (!off || !f || !R || !x || !oc || !lb || !hint || !loga || !h || !S ||
        (aam && (!xold || !plain || monge_aa_init(&aa, aam, L, NULL, 0) != MONGE_OK))) {
        st = MONGE_ENOMEM;
        goto done;
    }
    double *g = x, *lc = x + M;
    memset(lc, 0, (size_t)n * sizeof *lc);
    off[0] = 0;
    for (int64_t k = 0; k < K; k++) {
        off[k + 1] = off[k] + msz[k];
        for (int64_t j = 0; j < msz[k]; j++)
            lb[off[k] + j] = b[k][j] > 0.0 ? eps * log(b[k][j]) : -INFINITY;
    }
    /* the first projection, from f = 0 */
    for (int64_t k = 0; k < K; k++) {
        st = kern_softmin(&kern[k], 1, eps, f + k * n, NULL, oc + off[k], nth);
        if (st != MONGE_OK) goto done;
    }
    for (int64_t j = 0; j < M; j++) g[j] = lb[j] - oc[j];
    double err = INFINITY, best = INFINITY, dres = 0.0;
    int64_t it = 0;
    int mixed = 0;            /* x is an extrapolation (plain holds the image it replaced) */
    int rwarm = 0, cwarm = 1; /* R, oc hold the previous pass's values (hints) */
    for (;;) {
        int bad = 0; /* a state that cannot be measured */
        if (aam) memcpy(xold, x, (size_t)L * sizeof *x);
        /* first marginals: their weighted geometric mean (times c) is the barycenter */
        for (int64_t i = 0; i < n; i++) loga[i] = lc[i];
        for (int64_t k = 0; k < K && !bad; k++) {
            double *Rk = R + k * n;
            if (rwarm) memcpy(hint, Rk, (size_t)n * sizeof *hint);
            st = kern_softmin(&kern[k], 0, eps, g + off[k], rwarm ? hint : NULL, Rk, nth);
            if (st == MONGE_ENONFINITE && mixed) bad = 1;
            else if (st != MONGE_OK) goto done;
            const double lk = lambda[k] / eps;
            if (lk > 0.0)
                for (int64_t i = 0; i < n; i++) loga[i] += lk * Rk[i];
        }
        for (int64_t i = 0; i < n && !bad; i++)
            if (!isfinite(loga[i])) bad = 1;
        if (bad && !mixed) {
            st = MONGE_ENONFINITE;
            goto done;
        }
        if (!bad) {
            for (int64_t k = 0; k < K; k++)
                for (int64_t i = 0; i < n; i++) f[k * n + i] = eps * loga[i] - R[k * n + i];
            if (deb) {
                /* c solves c (K_xx c) = a: one damped (geometric-mean) fixed-point step */
                for (int64_t i = 0; i < n; i++) {
                    h[i] = eps * lc[i];
                    hint[i] = eps * (loga[i] - lc[i]);
                }
                st = kern_softmin(self, 0, eps, h, hint, S, nth);
                if (st == MONGE_ENONFINITE && mixed) bad = 1;
                else if (st != MONGE_OK) goto done;
                dres = 0.0;
                for (int64_t i = 0; i < n && !bad; i++) {
                    dres += fabs(exp(lc[i] + S[i] / eps) - exp(loga[i]));
                    lc[i] = 0.5 * (lc[i] + loga[i] - S[i] / eps);
                }
            }
        }
        /* second marginals of the plans (f_k, g_k): the error of this state */
        double emax = 0.0;
        for (int64_t k = 0; k < K && !bad; k++) {
            const int64_t m = msz[k];
            double *ock = oc + off[k], *gk = g + off[k];
            if (cwarm) memcpy(hint, ock, (size_t)m * sizeof *hint); /* last pass's values */
            st = kern_softmin(&kern[k], 1, eps, f + k * n, cwarm ? hint : NULL, ock, nth);
            if (st == MONGE_ENONFINITE && mixed) bad = 1;
            else if (st != MONGE_OK) goto done;
            double e = 0.0;
            for (int64_t j = 0; j < m; j++) {
                const double col = gk[j] == -INFINITY ? 0.0 : exp((gk[j] + ock[j]) / eps);
                e += fabs(col - b[k][j]);
            }
            emax = e > emax ? e : emax;
        }
        err = bad ? NAN : emax + dres;
        if (mixed && !(err <= BARY_AA_REJECT * best)) {
            /* a failed extrapolation (not counted): back to its plain image, history forgotten */
            memcpy(x, plain, (size_t)L * sizeof *x);
            monge_aa_reset(&aa);
            mixed = rwarm = cwarm = 0;
            st = MONGE_OK;
            continue;
        }
        it++;
        rwarm = cwarm = 1;
        if (!isfinite(err)) {
            st = MONGE_ENONFINITE;
            goto done;
        }
        best = err < best ? err : best;
        if (err <= par->tol) {
            st = MONGE_OK;
            break;
        }
        if (par->progress && par->progress(par->progress_ctx, it, err)) {
            st = MONGE_EINTR;
            break;
        }
        if (it >= par->max_iter) {
            st = MONGE_ENOCONV;
            break;
        }
        /* the next state: g projected onto the second marginals, lc already stepped */
        for (int64_t j = 0; j < M; j++) g[j] = lb[j] - oc[j];
        if (aam) {
            /* the entries of zero weight (g = -inf, fixed) are left out of the mixing */
            for (int64_t j = 0; j < M; j++)
                if (lb[j] == -INFINITY) xold[j] = g[j] = 0.0;
            memcpy(plain, x, (size_t)L * sizeof *x);
            mixed = monge_aa_step(&aa, xold, plain, x);
            for (int64_t j = 0; j < M; j++)
                if (lb[j] == -INFINITY) plain[j] = g[j] = -INFINITY;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        a[i] = exp(loga[i]);
        /* an eps far below the costs' rounding (1e-300) leaves log a meaningless and huge */
        if (!isfinite(a[i]) && (st == MONGE_OK || st == MONGE_ENOCONV)) st = MONGE_ENONFINITE;
    }
    if (f_out) memcpy(f_out, f, (size_t)(K * n) * sizeof *f);
    if (g_out) memcpy(g_out, g, (size_t)M * sizeof *g);
    if (logc_out)
        for (int64_t i = 0; i < n; i++) logc_out[i] = eps * lc[i];
    if (error) *error = err;
    if (n_iter) *n_iter = it;
done:
    if (aam) monge_aa_free(&aa);
    free(off);
    free(f);
    free(R);
    free(x);
    free(oc);
    free(lb);
    free(hint);
    free(loga);
    free(h);
    free(S);
    free(xold);
    free(plain);
    return st;
}

/* The prepared kernels of K input geometries (inputs on one geometry share its work: the calls
 * on them are sequential) and, when debiased, of the barycenter's support with itself. */
static void kerns_close(int64_t K, bkern *kern, bkern *kself)
{
    if (kern)
        for (int64_t k = 0; k < K; k++) {
            int shared = 0;
            for (int64_t l = 0; l < k && !shared; l++) shared = kern[l].w == kern[k].w;
            if (!shared) monge_geom_release(kern[k].w);
        }
    if (kself) monge_geom_release(kself->w);
    free(kern);
}

static int kerns_open(int64_t K, const monge_geometry *geoms, const monge_geometry *self,
                      int debiased, int nth, bkern **out, bkern *kself)
{
    bkern *kern = calloc((size_t)K, sizeof *kern);
    *kself = (bkern){NULL, NULL};
    *out = NULL;
    if (!kern) return MONGE_ENOMEM;
    int st = MONGE_OK;
    for (int64_t k = 0; k < K && st == MONGE_OK; k++) {
        for (int64_t l = 0; l < k && !kern[k].w; l++)
            if (!memcmp(&geoms[l], &geoms[k], sizeof geoms[k])) kern[k].w = kern[l].w;
        if (!kern[k].w) st = monge_geom_prepare(&geoms[k], nth, &kern[k].w);
    }
    if (st == MONGE_OK && debiased) st = monge_geom_prepare(self, nth, &kself->w);
    if (st != MONGE_OK) {
        kerns_close(K, kern, kself);
        return st;
    }
    *out = kern;
    return MONGE_OK;
}

int monge_barycenter(int64_t K, const monge_geometry *geoms, const double *const *b,
                     const double *lambda, const monge_geometry *self,
                     const monge_barycenter_params *par, double *a, double *f_out,
                     double *g_out, double *logc_out, double *error, int64_t *n_iter)
{
    int64_t M = 0;
    int st = check_args(K, geoms, b, lambda, self, par, a, &M);
    if (st != MONGE_OK) return st;
    int64_t *msz = malloc((size_t)K * sizeof *msz);
    bkern *kern = NULL, kself;
    if (!msz) return MONGE_ENOMEM;
    for (int64_t k = 0; k < K; k++) msz[k] = geoms[k].m;
    st = kerns_open(K, geoms, self, par->debiased, monge_resolve_threads(par->nthreads), &kern,
                    &kself);
    if (st == MONGE_OK) {
        st = ibp(K, geoms[0].n, msz, kern, &kself, b, lambda, par, M, a, f_out, g_out, logc_out,
                 error, n_iter);
        kerns_close(K, kern, &kself);
    }
    free(msz);
    return st;
}

int monge_barycenter_batch(int64_t N, int64_t K, const monge_geometry *geoms,
                           const double *const *b, const double *lambda,
                           const monge_geometry *self, const monge_barycenter_params *par,
                           double *a, double *f_out, double *g_out, double *logc_out,
                           double *error, int64_t *n_iter, int *status)
{
    if (N < 1 || !b || !lambda || !a || !error || !n_iter) return MONGE_EINVAL;
    int64_t M = 0;
    for (int64_t p = 0; p < N; p++) {
        int st = check_args(K, geoms, b + p * K, lambda + p * K, self, par, a, &M);
        if (st != MONGE_OK) return st;
    }
    const int64_t n = geoms[0].n;
    if (N > INT64_MAX / 4 / K / (n > M ? n : M)) return MONGE_EINVAL;
    const int nth = monge_resolve_threads(par->nthreads);
    /* one problem per thread, each with its own prepared kernels (their scratch is per thread);
       a single problem, or a single thread, keeps the threads inside the kernels */
    const int T = N < nth ? (int)N : nth;
    monge_barycenter_params pp = *par;
    pp.progress = NULL;
    pp.nthreads = T > 1 ? 1 : nth;
    int64_t *msz = malloc((size_t)K * sizeof *msz);
    bkern **kern = calloc((size_t)T, sizeof *kern), *kself = calloc((size_t)T, sizeof *kself);
    int st = msz && kern && kself ? MONGE_OK : MONGE_ENOMEM;
    for (int64_t k = 0; st == MONGE_OK && k < K; k++) msz[k] = geoms[k].m;
    for (int t = 0; st == MONGE_OK && t < T; t++)
        st = kerns_open(K, geoms, self, par->debiased, pp.nthreads, &kern[t], &kself[t]);
    if (st == MONGE_OK) {
        int worst = MONGE_OK, hard = MONGE_OK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(T) if (T > 1)
        for (int64_t p = 0; p < N; p++) {
            int tid = 0;
#ifdef _OPENMP
            if (T > 1) tid = omp_get_thread_num();
#endif
            const int s = ibp(K, n, msz, kern[tid], &kself[tid], b + p * K, lambda + p * K, &pp,
                              M, a + p * n, f_out ? f_out + p * K * n : NULL,
                              g_out ? g_out + p * M : NULL, logc_out ? logc_out + p * n : NULL,
                              &error[p], &n_iter[p]);
            if (status) status[p] = s;
#pragma omp critical(monge_bary_batch)
            {
                if (s == MONGE_ENOCONV) worst = s;
                else if (s != MONGE_OK && hard == MONGE_OK) hard = s;
            }
        }
        st = hard != MONGE_OK ? hard : worst;
    }
    if (kern)
        for (int t = 0; t < T; t++) kerns_close(K, kern[t], &kself[t]);
    free(kern);
    free(kself);
    free(msz);
    return st;
}

/* A grid call's set-up: the checks, the grid kernel, and K kernels all on it (one grid serves every
 * input and the barycenter; the calls on it are sequential) with sizes msz = n.  On success the
 * caller frees gk, *kern and *msz. */
static int grid_open(int64_t K, const monge_grid *grid, const double *const *b,
                     const double *lambda, const monge_barycenter_params *par, grid_kern **gk,
                     bkern **kern, int64_t **msz)
{
    *gk = NULL;
    *kern = NULL;
    *msz = NULL;
    if (K < 1 || !grid || !b || !lambda || !par) return MONGE_EINVAL;
    if (!(par->eps > 0.0) || !isfinite(par->eps) || !(par->tol > 0.0) || !isfinite(par->tol) ||
        par->max_iter < 1 || par->anderson < -1 || par->anderson > MONGE_AA_MAX_MEM ||
        check_simplex(lambda, K))
        return MONGE_EINVAL;
    int st = grid_new(grid, monge_resolve_threads(par->nthreads), gk);
    if (st != MONGE_OK) return st;
    const int64_t n = (*gk)->n;
    if (K > INT64_MAX / 4 / n) st = MONGE_EINVAL;
    for (int64_t k = 0; k < K && st == MONGE_OK; k++)
        if (check_simplex(b[k], n)) st = MONGE_EINVAL;
    if (st == MONGE_OK) {
        *kern = calloc((size_t)K, sizeof **kern);
        *msz = malloc((size_t)K * sizeof **msz);
        if (!*kern || !*msz) st = MONGE_ENOMEM;
    }
    for (int64_t k = 0; k < K && st == MONGE_OK; k++) {
        (*kern)[k].grid = *gk;
        (*msz)[k] = n;
    }
    if (st != MONGE_OK) {
        grid_free(*gk);
        free(*kern);
        free(*msz);
        *gk = NULL;
        *kern = NULL;
        *msz = NULL;
    }
    return st;
}

int monge_barycenter_grid(int64_t K, const monge_grid *grid, const double *const *b,
                          const double *lambda, const monge_barycenter_params *par, double *a,
                          double *f_out, double *g_out, double *logc_out, double *error,
                          int64_t *n_iter)
{
    if (!a) return MONGE_EINVAL;
    grid_kern *gk;
    bkern *kern;
    int64_t *msz;
    int st = grid_open(K, grid, b, lambda, par, &gk, &kern, &msz);
    if (st != MONGE_OK) return st;
    bkern kself = {NULL, gk};
    st = ibp(K, gk->n, msz, kern, &kself, b, lambda, par, K * gk->n, a, f_out, g_out, logc_out,
             error, n_iter);
    grid_free(gk);
    free(kern);
    free(msz);
    return st;
}

/* ---- the loss and its gradients at a solution ------------------------------------------------ */

/* The symmetric potential of b on kernel k: h with exp((h_i + softmin_rows(h)_i) / eps) = b_i,
 * by the averaged update h <- (h + eps log b - softmin_rows(h)) / 2. */
static int sym_potential(const bkern *k, int64_t m, const double *b, double eps, double tol,
                         int64_t max_iter, int nth, double *h, double *S)
{
    for (int64_t j = 0; j < m; j++) h[j] = b[j] > 0.0 ? 0.0 : -INFINITY;
    for (int64_t it = 0;; it++) {
        int st = kern_softmin(k, 0, eps, h, it > 0 ? S : NULL, S, nth);
        if (st != MONGE_OK) return st;
        double err = 0.0;
        for (int64_t j = 0; j < m; j++)
            if (b[j] > 0.0) err += fabs(exp((h[j] + S[j]) / eps) - b[j]);
        if (!isfinite(err)) return MONGE_ENONFINITE;
        if (err <= tol) return MONGE_OK;
        if (it >= max_iter) return MONGE_ENOCONV;
        for (int64_t j = 0; j < m; j++)
            if (b[j] > 0.0) h[j] = 0.5 * (h[j] + eps * log(b[j]) - S[j]);
    }
}

/* values and grad_b (see monge_barycenter_loss); hk (M, may be NULL): the symmetric potentials of
 * the inputs (debiased). */
static int bary_loss(int64_t K, int64_t n, const int64_t *msz, const bkern *kern,
                     const bkern *selfy,
                     const double *const *b, const double *lambda,
                     const monge_barycenter_params *par, const double *a, const double *f,
                     const double *g, const double *logc, double *values, double *grad_b,
                     double *hk)
{
    const double eps = par->eps;
    const int deb = par->debiased != 0;
    const int nth = monge_resolve_threads(par->nthreads);
    int st = MONGE_OK, conv = MONGE_OK;
    double mass = 0.0, ha = 0.0;
    for (int64_t i = 0; i < n; i++) {
        mass += a[i];
        if (deb && a[i] > 0.0) ha += logc[i] * a[i];
    }
    int64_t mmax = 0;
    for (int64_t k = 0; k < K; k++) mmax = msz[k] > mmax ? msz[k] : mmax;
    double *S = malloc((size_t)mmax * sizeof *S), *oc = malloc((size_t)mmax * sizeof *oc);
    if (!S || !oc) {
        st = MONGE_ENOMEM;
        goto done;
    }
    int64_t off = 0;
    for (int64_t k = 0; k < K; k++) {
        const int64_t m = msz[k];
        const double *fk = f + k * n, *gk = g + off, *bk = b[k];
        double *h = hk + off;
        if (deb) {
            st = sym_potential(&selfy[k], m, bk, eps, par->tol, par->max_iter, nth, h, S);
            if (st == MONGE_ENOCONV) conv = st;
            else if (st != MONGE_OK) goto done;
        }
        double v = 0.0;
        for (int64_t i = 0; i < n; i++)
            if (a[i] > 0.0) v += fk[i] * a[i];
        for (int64_t j = 0; j < m; j++)
            if (bk[j] > 0.0) v += (gk[j] - (deb ? h[j] : 0.0)) * bk[j];
        v -= deb ? ha : eps * mass;
        if (!isfinite(v)) {
            st = MONGE_ENONFINITE;
            goto done;
        }
        if (values) values[k] = v;
        if (grad_b) {
            double *gb = grad_b + off, mean = 0.0;
            int64_t cnt = 0, zeros = 0;
            for (int64_t j = 0; j < m; j++) zeros += bk[j] <= 0.0;
            /* debiased, where b_kj = 0: g - h is the self plan's softmin minus plan k's column
               softmin (both potentials carry eps log b_kj, which cancels) */
            if (deb && zeros && (st = kern_softmin(&kern[k], 1, eps, fk, NULL, oc, nth)) != MONGE_OK)
                goto done;
            for (int64_t j = 0; j < m; j++) {
                gb[j] = bk[j] > 0.0 ? lambda[k] * (gk[j] - (deb ? h[j] : 0.0))
                                 : deb ? lambda[k] * (S[j] - oc[j]) : -INFINITY;
                if (bk[j] > 0.0 || deb) {
                    mean += gb[j];
                    cnt++;
                }
            }
            mean /= (double)cnt;
            for (int64_t j = 0; j < m; j++)
                gb[j] = bk[j] > 0.0 || deb ? gb[j] - mean : -INFINITY;
        }
        off += m;
    }
    st = conv;
done:
    free(S);
    free(oc);
    return st;
}

/* out (rows x cols, double) += w * P, P = exp((u_i + h_j - C_ij) / eps) on a dense geometry */
static int add_dense_plan(const monge_geom_work *gw, const monge_geometry *geo, double eps,
                          const double *u, const double *h, double w, double *out, void *tmp,
                          int nth)
{
    int st = monge_geom_dense_plan(gw, eps, u, h, tmp, nth);
    if (st != MONGE_OK) return st;
    const int64_t len = geo->n * geo->m;
    if (geo->dtype == MONGE_F32)
        for (int64_t t = 0; t < len; t++) out[t] += w * (double)((const float *)tmp)[t];
    else
        for (int64_t t = 0; t < len; t++) out[t] += w * ((const double *)tmp)[t];
    return MONGE_OK;
}

/* out (rows x d) += w * sum_j P_ij grad_1 c(p_i, q_j) */
static int add_point_grad(const monge_geom_work *gw, int tr, double eps, const double *u,
                          const double *h, double w, int64_t rows, int64_t d, double *out,
                          double *tmp, int nth)
{
    int st = monge_geom_grad(gw, tr, eps, u, h, tmp, nth);
    if (st != MONGE_OK) return st;
    for (int64_t t = 0; t < rows * d; t++) out[t] += w * tmp[t];
    return MONGE_OK;
}

int monge_barycenter_loss(int64_t K, const monge_geometry *geoms, const double *const *b,
                          const double *lambda, const monge_geometry *self,
                          const monge_geometry *selfy, const monge_barycenter_params *par,
                          const double *a, const double *f, const double *g, const double *logc,
                          double *values, double *grad_b, double *grad_C, double *grad_x,
                          double *grad_y)
{
    int64_t M = 0;
    int st = check_args(K, geoms, b, lambda, self, par, a, &M);
    if (st != MONGE_OK) return st;
    const int deb = par->debiased != 0;
    const int64_t n = geoms[0].n, d = geoms[0].d;
    const int dense = geoms[0].C != NULL;
    if (!f || !g || (deb && (!logc || !selfy))) return MONGE_EINVAL;
    for (int64_t k = 0; k < K; k++) {
        if ((geoms[k].C != NULL) != dense || (!dense && geoms[k].d != d)) return MONGE_EINVAL;
        if (grad_C && (!dense || geoms[k].m != geoms[0].m)) return MONGE_EINVAL;
        if (deb && (selfy[k].n != geoms[k].m || selfy[k].m != geoms[k].m ||
                    (selfy[k].C != NULL) != dense))
            return MONGE_EINVAL;
    }
    if ((grad_x || grad_y) && dense) return MONGE_EINVAL;
    if (grad_C && deb && geoms[0].m != n) return MONGE_EINVAL;
    const int nth = monge_resolve_threads(par->nthreads);
    bkern *kern = calloc((size_t)K, sizeof *kern), *ky = calloc((size_t)K, sizeof *ky);
    bkern kself = {NULL, NULL};
    int64_t *msz = malloc((size_t)K * sizeof *msz), mmax = n;
    double *hk = malloc((size_t)M * sizeof *hk), *tmp = NULL;
    if (!kern || !ky || !msz || !hk) {
        st = MONGE_ENOMEM;
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        msz[k] = geoms[k].m;
        mmax = msz[k] > mmax ? msz[k] : mmax;
        if ((st = monge_geom_prepare(&geoms[k], nth, &kern[k].w)) != MONGE_OK) goto done;
        if (deb && (st = monge_geom_prepare(&selfy[k], nth, &ky[k].w)) != MONGE_OK) goto done;
    }
    if (deb && (grad_C || grad_x) && (st = monge_geom_prepare(self, nth, &kself.w)) != MONGE_OK)
        goto done;
    int conv = bary_loss(K, n, msz, kern, ky, b, lambda, par, a, f, g, logc, values, grad_b, hk);
    if (conv != MONGE_OK && conv != MONGE_ENOCONV) {
        st = conv;
        goto done;
    }
    if (grad_C) {
        const int64_t m = geoms[0].m;
        tmp = malloc((size_t)(n * m) * sizeof(double));
        if (!tmp) {
            st = MONGE_ENOMEM;
            goto done;
        }
        memset(grad_C, 0, (size_t)(n * m) * sizeof *grad_C);
        for (int64_t k = 0, off = 0; k < K; off += msz[k], k++) {
            st = add_dense_plan(kern[k].w, &geoms[k], par->eps, f + k * n, g + off, lambda[k],
                                grad_C, tmp, nth);
            if (st == MONGE_OK && deb)
                st = add_dense_plan(ky[k].w, &selfy[k], par->eps, hk + off, hk + off,
                                    -0.5 * lambda[k], grad_C, tmp, nth);
            if (st != MONGE_OK) goto done;
        }
        if (deb && (st = add_dense_plan(kself.w, self, par->eps, logc, logc, -0.5, grad_C, tmp,
                                        nth)) != MONGE_OK)
            goto done;
    }
    if (grad_x || grad_y) {
        tmp = malloc((size_t)(mmax * d) * sizeof(double));
        if (!tmp) {
            st = MONGE_ENOMEM;
            goto done;
        }
        if (grad_x) memset(grad_x, 0, (size_t)(n * d) * sizeof *grad_x);
        if (grad_y) memset(grad_y, 0, (size_t)(M * d) * sizeof *grad_y);
        for (int64_t k = 0, off = 0; k < K; off += msz[k], k++) {
            if (grad_x && (st = add_point_grad(kern[k].w, 0, par->eps, f + k * n, g + off,
                                               lambda[k], n, d, grad_x, tmp, nth)) != MONGE_OK)
                goto done;
            if (!grad_y) continue;
            double *gy = grad_y + off * d;
            if ((st = add_point_grad(kern[k].w, 1, par->eps, g + off, f + k * n, lambda[k],
                                     msz[k], d, gy, tmp, nth)) != MONGE_OK)
                goto done;
            /* -OT(b_k, b_k)/2: its plan is symmetric, so both arguments give the row gradient */
            if (deb && (st = add_point_grad(ky[k].w, 0, par->eps, hk + off, hk + off, -lambda[k],
                                            msz[k], d, gy, tmp, nth)) != MONGE_OK)
                goto done;
        }
        if (grad_x && deb && (st = add_point_grad(kself.w, 0, par->eps, logc, logc, -1.0, n, d,
                                                  grad_x, tmp, nth)) != MONGE_OK)
            goto done;
    }
    st = conv;
done:
    if (kern)
        for (int64_t k = 0; k < K; k++) monge_geom_release(kern[k].w);
    if (ky)
        for (int64_t k = 0; k < K; k++) monge_geom_release(ky[k].w);
    monge_geom_release(kself.w);
    free(kern);
    free(ky);
    free(msz);
    free(hk);
    free(tmp);
    return st;
}

int monge_barycenter_grid_loss(int64_t K, const monge_grid *grid, const double *const *b,
                               const double *lambda, const monge_barycenter_params *par,
                               const double *a, const double *f, const double *g,
                               const double *logc, double *values, double *grad_b)
{
    if (!a || !f || !g || (par && par->debiased && !logc)) return MONGE_EINVAL;
    grid_kern *gk;
    bkern *kern;
    int64_t *msz;
    int st = grid_open(K, grid, b, lambda, par, &gk, &kern, &msz);
    if (st != MONGE_OK) return st;
    double *hk = malloc((size_t)(K * gk->n) * sizeof *hk);
    st = hk ? bary_loss(K, gk->n, msz, kern, kern, b, lambda, par, a, f, g, logc, values, grad_b,
                        hk)
            : MONGE_ENOMEM;
    grid_free(gk);
    free(kern);
    free(msz);
    free(hk);
    return st;
}

/* ---- free support ------------------------------------------------------------------------- */

void monge_free_barycenter_params_init(monge_free_barycenter_params *par)
{
    memset(par, 0, sizeof *par);
    par->exact = 1;
    par->eps = 0.01;
    par->tol = 1e-9;
    par->max_iter = 100;
}

/* weights w (NULL: uniform) as a simplex check, copied to out */
static int simplex_or_uniform(const double *w, int64_t len, double *out)
{
    for (int64_t i = 0; i < len; i++) out[i] = w ? w[i] : 1.0 / (double)len;
    return check_simplex(out, len);
}

/* The checks of a free-support call (inputs, weights, X, eps when entropic); writes the total and
 * the largest input size. */
static int free_check(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                      const double *lambda, int64_t n, const double *X, int exact, double eps,
                      int64_t *tot_out, int64_t *mmax_out)
{
    if ((!exact && (!(eps > 0.0) || !isfinite(eps))) || check_simplex(lambda, K))
        return MONGE_EINVAL;
    if (n > INT64_MAX / 8 / d || n > INT32_MAX / 2) return MONGE_EINVAL;
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(X[i])) return MONGE_EINVAL;
    int64_t tot = 0, mmax = 0;
    for (int64_t k = 0; k < K; k++) {
        if (!Y[k] || m[k] < 1 || m[k] > INT32_MAX / 2 || m[k] > INT64_MAX / 8 / d - tot)
            return MONGE_EINVAL;
        for (int64_t j = 0; j < m[k] * d; j++)
            if (!isfinite(Y[k][j])) return MONGE_EINVAL;
        tot += m[k];
        mmax = m[k] > mmax ? m[k] : mmax;
    }
    *tot_out = tot;
    *mmax_out = mmax;
    return MONGE_OK;
}

/* aw (n) and bw (sum m_k, input after input, offsets off) the normalised weights (NULL: uniform). */
static int free_weights(int64_t K, const int64_t *m, const double *const *b, int64_t n,
                        const double *a, double *aw, double *bw, int64_t *off)
{
    if (simplex_or_uniform(a, n, aw)) return MONGE_EINVAL;
    off[0] = 0;
    for (int64_t k = 0; k < K; k++) {
        off[k + 1] = off[k] + m[k];
        if (simplex_or_uniform(b ? b[k] : NULL, m[k], bw + off[k])) return MONGE_EINVAL;
    }
    return MONGE_OK;
}

int monge_free_barycenter(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                          const double *const *b, const double *lambda, int64_t n,
                          const double *a, const monge_free_barycenter_params *par, double *X,
                          double *cost_out, int64_t *n_iter)
{
    if (K < 1 || !m || d < 1 || !Y || !lambda || n < 1 || !par || !X || !cost_out || !n_iter)
        return MONGE_EINVAL;
    if (par->max_iter < 1 || !(par->tol >= 0.0) || !isfinite(par->tol)) return MONGE_EINVAL;
    int64_t tot = 0, mmax = 0;
    if (free_check(K, m, d, Y, lambda, n, X, par->exact, par->eps, &tot, &mmax) != MONGE_OK)
        return MONGE_EINVAL;
    const int nth = monge_resolve_threads(par->nthreads);
    int st = MONGE_OK;
    double *aw = malloc((size_t)n * sizeof *aw), *bw = malloc((size_t)tot * sizeof *bw);
    double *PY = malloc((size_t)(K * n * d) * sizeof *PY); /* P_k Y_k, input after input */
    double *ck = malloc((size_t)K * sizeof *ck);
    int *stk = malloc((size_t)K * sizeof *stk);
    const int64_t cap = n + mmax - 1;
    int64_t *rows = par->exact ? malloc((size_t)(K * cap) * sizeof *rows) : NULL;
    int64_t *cols = par->exact ? malloc((size_t)(K * cap) * sizeof *cols) : NULL;
    double *vals = par->exact ? malloc((size_t)(K * cap) * sizeof *vals) : NULL;
    double *fp = par->exact ? NULL : calloc((size_t)(K * n), sizeof *fp);
    double *gp = par->exact ? NULL : calloc((size_t)tot, sizeof *gp);
    monge_emd_basis **bases = calloc((size_t)K, sizeof *bases);
    int64_t *off = malloc((size_t)(K + 1) * sizeof *off);
    if (!aw || !bw || !PY || !ck || !stk || !bases || !off ||
        (par->exact && (!rows || !cols || !vals)) || (!par->exact && (!fp || !gp))) {
        st = MONGE_ENOMEM;
        goto out;
    }
    if ((st = free_weights(K, m, b, n, a, aw, bw, off)) != MONGE_OK) goto out;
    for (int64_t k = 0; k < K; k++)
        if (par->exact && (st = monge_emd_basis_new(&bases[k])) != MONGE_OK) goto out;
    double prev = INFINITY, cost = INFINITY, delta = INFINITY;
    int64_t it = 0;
    int converged = 0;
    for (it = 1; it <= par->max_iter; it++) {
        /* one plan per input, in parallel (each solve on one thread: thread-count independent) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (K > 1)
        for (int64_t k = 0; k < K; k++) {
            monge_geometry geo = {n, m[k], MONGE_F64, NULL, X, Y[k], d, MONGE_COST_SQEUCLIDEAN,
                                  2.0, 0.0};
            double *py = PY + k * n * d;
            if (par->exact) {
                monge_emd_params ep;
                monge_emd_params_init(&ep);
                ep.basis = bases[k];
                ep.nthreads = 1;
                monge_emd_info info;
                int64_t *r = rows + k * cap, *c = cols + k * cap;
                double *v = vals + k * cap;
                stk[k] = monge_emd(&geo, aw, bw + off[k], &ep, r, c, v, NULL, NULL, &info);
                if (stk[k] == MONGE_OK) {
                    ck[k] = info.cost;
                    memset(py, 0, (size_t)(n * d) * sizeof *py);
                    for (int64_t e = 0; e < info.nnz; e++)
                        for (int64_t l = 0; l < d; l++) py[r[e] * d + l] += v[e] * Y[k][c[e] * d + l];
                }
            } else {
                monge_problem pb = {&geo, aw, bw + off[k], INFINITY, INFINITY};
                monge_sinkhorn_params sp;
                monge_sinkhorn_params_init(&sp);
                sp.eps = par->eps;
                sp.nthreads = 1;
                sp.warm_start = it > 1;
                monge_sinkhorn_info si;
                double *f = fp + k * n, *g = gp + off[k];
                stk[k] = monge_sinkhorn(&pb, &sp, f, g, &si);
                if (stk[k] == MONGE_ENOCONV) stk[k] = MONGE_OK; /* a plan all the same */
                if (stk[k] == MONGE_OK) {
                    ck[k] = si.cost;
                    stk[k] = monge_sinkhorn_apply(&pb, par->eps, f, g, 0, Y[k], d, py, 1);
                }
            }
        }
        for (int64_t k = 0; k < K; k++)
            if (stk[k] != MONGE_OK) {
                st = stk[k];
                goto out;
            }
        cost = 0.0;
        for (int64_t k = 0; k < K; k++) cost += lambda[k] * ck[k];
        if (!isfinite(cost)) {
            st = MONGE_ENONFINITE;
            goto out;
        }
        delta = fabs(prev - cost) / fmax(fabs(cost), 1e-300);
        if (par->progress && par->progress(par->progress_ctx, it, isfinite(prev) ? delta : NAN)) {
            st = MONGE_EINTR;
            break;
        }
        if (isfinite(prev) && fabs(prev - cost) <= par->tol * fabs(cost)) {
            converged = 1;
            break;
        }
        if (it == par->max_iter) break; /* X keeps the plans' points: cost stays X's */
        prev = cost;
        for (int64_t i = 0; i < n; i++) {
            if (!(aw[i] > 0.0)) continue;
            for (int64_t l = 0; l < d; l++) {
                double s = 0.0;
                for (int64_t k = 0; k < K; k++) s += lambda[k] * PY[(k * n + i) * d + l];
                X[i * d + l] = s / aw[i];
            }
        }
    }
    *cost_out = cost;
    *n_iter = it > par->max_iter ? par->max_iter : it;
    if (st == MONGE_OK && !converged) st = MONGE_ENOCONV;
out:
    if (bases)
        for (int64_t k = 0; k < K; k++) monge_emd_basis_free(bases[k]);
    free(bases);
    free(aw);
    free(bw);
    free(PY);
    free(ck);
    free(stk);
    free(rows);
    free(cols);
    free(vals);
    free(fp);
    free(gp);
    free(off);
    return st;
}

int monge_free_barycenter_loss(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                               const double *const *b, const double *lambda, int64_t n,
                               const double *a, const monge_free_barycenter_params *par,
                               const double *X, double *values, double *grad_X, double *grad_Y,
                               double *grad_b)
{
    if (K < 1 || !m || d < 1 || !Y || !lambda || n < 1 || !par || !X || !values)
        return MONGE_EINVAL;
    int64_t tot = 0, mmax = 0;
    if (free_check(K, m, d, Y, lambda, n, X, par->exact, par->eps, &tot, &mmax) != MONGE_OK)
        return MONGE_EINVAL;
    const int nth = monge_resolve_threads(par->nthreads);
    int st = MONGE_OK;
    const int64_t cap = n + mmax - 1;
    double *aw = malloc((size_t)n * sizeof *aw), *bw = malloc((size_t)tot * sizeof *bw);
    double *f = malloc((size_t)(K * n) * sizeof *f), *g = malloc((size_t)tot * sizeof *g);
    double *gx = malloc((size_t)(K * n * d) * sizeof *gx); /* per input, summed after */
    int *stk = malloc((size_t)K * sizeof *stk), *short_k = calloc((size_t)K, sizeof *short_k);
    int64_t *off = malloc((size_t)(K + 1) * sizeof *off);
    int64_t *rows = par->exact ? malloc((size_t)(K * cap) * sizeof *rows) : NULL;
    int64_t *cols = par->exact ? malloc((size_t)(K * cap) * sizeof *cols) : NULL;
    double *vals = par->exact ? malloc((size_t)(K * cap) * sizeof *vals) : NULL;
    if (!aw || !bw || !f || !g || !gx || !stk || !short_k || !off ||
        (par->exact && (!rows || !cols || !vals))) {
        st = MONGE_ENOMEM;
        goto out;
    }
    if ((st = free_weights(K, m, b, n, a, aw, bw, off)) != MONGE_OK) goto out;
    /* the plans at X, one input per thread; then each input's gradients from its plan:
       d c / d x = 2 (x - y), so sum_j P_ij d c / d x_i = 2 (a_i x_i - (P Y)_i) */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) if (K > 1)
    for (int64_t k = 0; k < K; k++) {
        monge_geometry geo = {n, m[k], MONGE_F64, NULL, X, Y[k], d, MONGE_COST_SQEUCLIDEAN, 2.0,
                              0.0};
        const double *bk = bw + off[k];
        double *fk = f + k * n, *gk = g + off[k], *gxk = gx + k * n * d;
        double *gyk = grad_Y ? grad_Y + off[k] * d : NULL;
        if (par->exact) {
            monge_emd_params ep;
            monge_emd_params_init(&ep);
            ep.nthreads = 1;
            monge_emd_info info;
            int64_t *r = rows + k * cap, *c = cols + k * cap;
            double *v = vals + k * cap;
            stk[k] = monge_emd(&geo, aw, bk, &ep, r, c, v, fk, gk, &info);
            if (stk[k] == MONGE_ENOCONV) short_k[k] = 1, stk[k] = MONGE_OK; /* feasible plan */
            if (stk[k] != MONGE_OK) continue;
            values[k] = info.cost;
            for (int64_t t = 0; t < n * d; t++) gxk[t] = 0.0;
            if (gyk)
                for (int64_t t = 0; t < m[k] * d; t++) gyk[t] = 0.0;
            for (int64_t e = 0; e < info.nnz; e++)
                for (int64_t l = 0; l < d; l++) {
                    const double z = 2.0 * v[e] * (X[r[e] * d + l] - Y[k][c[e] * d + l]);
                    gxk[r[e] * d + l] += z;
                    if (gyk) gyk[c[e] * d + l] -= z;
                }
        } else {
            monge_problem pb = {&geo, aw, bk, INFINITY, INFINITY};
            monge_sinkhorn_params sp;
            monge_sinkhorn_params_init(&sp);
            sp.eps = par->eps;
            sp.nthreads = 1;
            monge_sinkhorn_info si;
            stk[k] = monge_sinkhorn(&pb, &sp, fk, gk, &si);
            if (stk[k] == MONGE_ENOCONV) short_k[k] = 1, stk[k] = MONGE_OK; /* as the iteration */
            if (stk[k] != MONGE_OK) continue;
            values[k] = si.value;
            stk[k] = monge_sinkhorn_grad_points(&pb, par->eps, fk, gk, 0, gxk, 1);
            if (stk[k] == MONGE_OK && gyk)
                stk[k] = monge_sinkhorn_grad_points(&pb, par->eps, fk, gk, 1, gyk, 1);
        }
        if (stk[k] != MONGE_OK) continue;
        if (gyk)
            for (int64_t t = 0; t < m[k] * d; t++) gyk[t] *= lambda[k];
        if (grad_b) {
            /* d OT / d b = g, on the simplex: mean 0 over the support */
            double mean = 0.0;
            for (int64_t j = 0; j < m[k]; j++) mean += gk[j];
            mean /= (double)m[k];
            for (int64_t j = 0; j < m[k]; j++) grad_b[off[k] + j] = lambda[k] * (gk[j] - mean);
        }
    }
    for (int64_t k = 0; k < K; k++)
        if (stk[k] != MONGE_OK) {
            st = stk[k];
            goto out;
        }
    for (int64_t k = 0; k < K; k++)
        if (short_k[k]) st = MONGE_ENOCONV; /* outputs valid, from a plan stopped short */
    if (grad_X)
        for (int64_t t = 0; t < n * d; t++) {
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += lambda[k] * gx[k * n * d + t];
            grad_X[t] = s;
        }
out:
    free(aw);
    free(bw);
    free(f);
    free(g);
    free(gx);
    free(stk);
    free(short_k);
    free(off);
    free(rows);
    free(cols);
    free(vals);
    return st;
}
