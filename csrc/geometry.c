/* monge geometry layer: dense and online costs, and the softmin / apply / plan kernels. */
#include "geometry.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
static inline int monge_thread_id(void) { return omp_get_thread_num(); }
#else
static inline int monge_thread_id(void) { return 0; }
#endif

#define MONGE_TILE 512 /* columns per tile on the row path (fits L1 with its partner buffer) */
#define MONGE_CB 256   /* columns per block on the dense column path of apply */
#define MONGE_RB 256   /* rows accumulated in T before adding into double on the column path */
#define MONGE_ROWBLOCKS 32 /* fixed row blocks of the dense column softmin (their partials are
                              reduced in order: results do not depend on the thread count) */

struct monge_geom_work {
    monge_geometry g;
    int nthreads;
    const void *xa, *ya;         /* points as rows (normalised copies for the cosine cost) */
    void *owned_xa, *owned_ya;   /* the normalised copies, when made */
    double *xnorm, *ynorm;       /* cosine: norms of the original points */
    void *xt, *yt;               /* points transposed: d x n, d x m */
    void *hbuf;                  /* max(n, m) elements of T: h converted for the kernels */
    void *tiles;                 /* per thread: two tiles of MONGE_TILE elements of T */
    void *colpart;               /* dense: column partials of MONGE_ROWBLOCKS row blocks (double
                                    and T) and four column vectors (two double, two T), for the
                                    column softmin and the marginals */
};

const monge_geometry *monge_geom_of(const monge_geom_work *w) { return &w->g; }

/* ---- the two instantiations of the kernels ---- */
#define T double
#define SFX f64
#define EXP monge_exp
#define SQRT sqrt
#define FABS fabs
#define POW pow
#define SAFE_LO 1e-200
#define SAFE_HI 1e200
#include "geometry_kernels.inc"
#undef T
#undef SFX
#undef EXP
#undef SQRT
#undef FABS
#undef POW
#undef SAFE_LO
#undef SAFE_HI

#define T float
#define SFX f32
#define EXP monge_expf
#define SQRT sqrtf
#define FABS fabsf
#define POW powf
#define SAFE_LO 1e-20
#define SAFE_HI 1e20
#include "geometry_kernels.inc"
#undef T
#undef SFX
#undef EXP
#undef SQRT
#undef FABS
#undef POW
#undef SAFE_LO
#undef SAFE_HI

static size_t elt_size(monge_dtype t) { return t == MONGE_F32 ? sizeof(float) : sizeof(double); }

void monge_geom_release(monge_geom_work *w)
{
    if (!w) return;
    free(w->owned_xa);
    free(w->owned_ya);
    free(w->xnorm);
    free(w->ynorm);
    free(w->xt);
    free(w->yt);
    free(w->hbuf);
    free(w->tiles);
    free(w->colpart);
    free(w);
}

int monge_geom_prepare(const monge_geometry *g, int nthreads, monge_geom_work **out)
{
    if (!out) return MONGE_EINVAL;
    *out = NULL;
    if (!g || g->n < 1 || g->m < 1) return MONGE_EINVAL;
    if (g->dtype != MONGE_F64 && g->dtype != MONGE_F32) return MONGE_EINVAL;
    if (!g->C) {
        if (!g->x || !g->y || g->d < 1) return MONGE_EINVAL;
        if (g->cost < MONGE_COST_SQEUCLIDEAN || g->cost > MONGE_COST_ELASTIC) return MONGE_EINVAL;
        if (g->cost == MONGE_COST_PNORM && !(g->p >= 1.0 && isfinite(g->p))) return MONGE_EINVAL;
        if (g->cost == MONGE_COST_ELASTIC && !(g->lam >= 0.0 && isfinite(g->lam))) return MONGE_EINVAL;
    }
    /* sizes whose products would overflow size_t are refused up front */
    if ((double)g->n * (double)g->m > 9e18 || (double)(g->n + g->m) * (double)(g->d + 1) > 9e18)
        return MONGE_EINVAL;
    monge_geom_work *w = (monge_geom_work *)calloc(1, sizeof *w);
    if (!w) return MONGE_ENOMEM;
    w->g = *g;
    w->nthreads = monge_resolve_threads(nthreads);
    const size_t es = elt_size(g->dtype);
    const int64_t nm = g->n > g->m ? g->n : g->m;
    w->hbuf = malloc(es * (size_t)nm);
    w->tiles = malloc(es * 2 * MONGE_TILE * (size_t)w->nthreads);
    if (g->C)
        w->colpart = malloc(((size_t)MONGE_ROWBLOCKS * (sizeof(double) + es) + 2 * sizeof(double) +
                             2 * es) * (size_t)g->m);
    int st = (w->hbuf && w->tiles && (w->colpart || !g->C)) ? MONGE_OK : MONGE_ENOMEM;
    if (st == MONGE_OK && !g->C)
        st = g->dtype == MONGE_F32 ? prepare_points_f32(w) : prepare_points_f64(w);
    if (st != MONGE_OK) {
        monge_geom_release(w);
        return st;
    }
    *out = w;
    return MONGE_OK;
}

/* Threads for one pass: below ~256k entries x dims a pass costs less than waking a team and
 * meeting at its barrier (docs/design/sinkhorn.md, Threads).  Results do not depend on this: every
 * row is computed the same way on any thread. */
#define MONGE_PARALLEL_MIN_WORK 262144.0
static int clamp_threads(const monge_geom_work *w, int nthreads)
{
    int t = monge_resolve_threads(nthreads);
    if ((double)w->g.n * (double)w->g.m * (double)(w->g.C ? 1 : w->g.d) < MONGE_PARALLEL_MIN_WORK)
        return 1;
    return t > w->nthreads ? w->nthreads : t;
}

/* h (double) into the work's T buffer */
static void load_h(const monge_geom_work *w, const double *h, int64_t len)
{
    if (w->g.dtype == MONGE_F32) {
        float *dst = (float *)w->hbuf;
        for (int64_t j = 0; j < len; j++) dst[j] = (float)h[j];
    } else {
        memcpy(w->hbuf, h, sizeof(double) * (size_t)len);
    }
}

int monge_softmin(const monge_geom_work *w, int transpose, double eps, const double *h,
                  const double *hint, double *out, int nthreads)
{
    if (!w || !h || !out || !(eps > 0)) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    const int64_t nc = transpose ? w->g.n : w->g.m;
    load_h(w, h, nc);
    const int cols = transpose && w->g.C;
    if (w->g.dtype == MONGE_F32) {
        if (cols) softmin_cols_dense_f32(w, eps, (const float *)w->hbuf, hint, out, nth);
        else softmin_rows_f32(w, transpose, eps, (const float *)w->hbuf, hint, out, nth);
    } else {
        if (cols) softmin_cols_dense_f64(w, eps, (const double *)w->hbuf, hint, out, nth);
        else softmin_rows_f64(w, transpose, eps, (const double *)w->hbuf, hint, out, nth);
    }
    return MONGE_OK;
}

int monge_geom_apply(const monge_geom_work *w, int transpose, double eps, const double *u,
                     const double *h, const double *V, int64_t k, double *out, double *rowsum,
                     double *rowcost, int nthreads)
{
    if (!w || !u || !h || !(eps > 0) || k < 0 || (k > 0 && (!V || !out))) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    const int64_t nc = transpose ? w->g.n : w->g.m;
    load_h(w, h, nc);
    if (transpose && w->g.C) {
        return w->g.dtype == MONGE_F32
                   ? apply_cols_dense_f32(w, eps, u, (const float *)w->hbuf, V, k, out, rowsum,
                                          rowcost, nth)
                   : apply_cols_dense_f64(w, eps, u, (const double *)w->hbuf, V, k, out, rowsum,
                                          rowcost, nth);
    }
    if (w->g.dtype == MONGE_F32)
        apply_rows_f32(w, transpose, eps, u, (const float *)w->hbuf, V, k, out, rowsum, rowcost,
                       nth);
    else
        apply_rows_f64(w, transpose, eps, u, (const double *)w->hbuf, V, k, out, rowsum, rowcost,
                       nth);
    return MONGE_OK;
}

int monge_geom_marginals(const monge_geom_work *w, double eps, const double *u, const double *h,
                         double *rowsum, double *colsum, double *rowcost, int nthreads)
{
    if (!w || !u || !h || !rowsum || !colsum || !(eps > 0)) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    return w->g.dtype == MONGE_F32 ? marginals_f32(w, eps, u, h, rowsum, colsum, rowcost, nth)
                                   : marginals_f64(w, eps, u, h, rowsum, colsum, rowcost, nth);
}

int monge_geom_dense_plan(const monge_geom_work *w, double eps, const double *u, const double *h,
                          void *P, int nthreads)
{
    if (!w || !u || !h || !P || !(eps > 0)) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    load_h(w, h, w->g.m);
    if (w->g.dtype == MONGE_F32) dense_plan_f32(w, eps, u, (const float *)w->hbuf, (float *)P, nth);
    else dense_plan_f64(w, eps, u, (const double *)w->hbuf, (double *)P, nth);
    return MONGE_OK;
}

int monge_geom_kernel_f32(const monge_geom_work *w, double eps, const double *u, const double *h,
                          float *K, double *maxv, int nthreads)
{
    if (!w || !u || !h || !K || !maxv || !(eps > 0)) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    load_h(w, h, w->g.m);
    if (w->g.dtype == MONGE_F32) kernel_f32_f32(w, eps, u, (const float *)w->hbuf, K, maxv, nth);
    else kernel_f32_f64(w, eps, u, (const double *)w->hbuf, K, maxv, nth);
    return MONGE_OK;
}

int monge_geom_cost_matrix(const monge_geom_work *w, void *C, int nthreads)
{
    if (!w || !C) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    if (w->g.dtype == MONGE_F32) cost_matrix_f32(w, (float *)C, nth);
    else cost_matrix_f64(w, (double *)C, nth);
    return MONGE_OK;
}

int monge_geom_max_cost(const monge_geom_work *w, double *out, int nthreads)
{
    if (!w || !out) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    double v = w->g.dtype == MONGE_F32 ? max_cost_f32(w, nth) : max_cost_f64(w, nth);
    if (isnan(v)) return MONGE_ENOMEM;
    *out = v;
    return MONGE_OK;
}

int monge_geom_grad(const monge_geom_work *w, int transpose, double eps, const double *u,
                    const double *h, double *out, int nthreads)
{
    if (!w || !u || !h || !out || !(eps > 0) || w->g.C) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    load_h(w, h, transpose ? w->g.n : w->g.m);
    if (w->g.dtype == MONGE_F32) grad_rows_f32(w, transpose, eps, u, (const float *)w->hbuf, out, nth);
    else grad_rows_f64(w, transpose, eps, u, (const double *)w->hbuf, out, nth);
    return MONGE_OK;
}

int monge_geom_paired(const monge_geom_work *w, double *cost, double *grad, int nthreads)
{
    if (!w || !cost || w->g.C || w->g.n != w->g.m) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    if (w->g.dtype == MONGE_F32) paired_f32(w, cost, grad, nth);
    else paired_f64(w, cost, grad, nth);
    return MONGE_OK;
}

int monge_geom_cost_stats(const monge_geom_work *w, double *mean, double *std, int nthreads)
{
    if (!w || !mean || !std) return MONGE_EINVAL;
    const int nth = clamp_threads(w, nthreads);
    if (w->g.dtype == MONGE_F32) cost_stats_f32(w, mean, std, nth);
    else cost_stats_f64(w, mean, std, nth);
    return isnan(*mean) ? MONGE_ENOMEM : MONGE_OK;
}

int monge_softmax_rows(monge_dtype dtype, int64_t k, int64_t m, void *Z, const void *shift,
                       double scale, double *rowsum, int nthreads)
{
    if (k < 0 || m < 1 || (k > 0 && (!Z || !shift || !rowsum)) || !isfinite(scale))
        return MONGE_EINVAL;
    if (dtype != MONGE_F32 && dtype != MONGE_F64) return MONGE_EINVAL;
    const int nth = monge_resolve_threads(nthreads);
    if (dtype == MONGE_F32) softmax_rows_f32(k, m, (float *)Z, (const float *)shift, (float)scale, rowsum, nth);
    else softmax_rows_f64(k, m, (double *)Z, (const double *)shift, scale, rowsum, nth);
    for (int64_t i = 0; i < k; i++)
        if (!(rowsum[i] >= 1.0) || !isfinite(rowsum[i])) return MONGE_ENONFINITE; /* NaN / inf input */
    return MONGE_OK;
}

/* Raw costs for the network simplex (declared in internal.h), compiled per CPU like the kernels. */
MONGE_HOT const double *monge_geom_cost_row(const monge_geom_work *w, int transpose, int64_t i,
                                            int64_t j0, int64_t len, double *buf)
{
    const monge_geometry *g = &w->g;
    if (g->C && transpose) { /* a column of the dense matrix: strided, so gathered */
        const double *c = (const double *)g->C + i;
        for (int64_t t = 0; t < len; t++) buf[t] = c[(j0 + t) * g->m];
        return buf;
    }
    return cost_tile_f64(w, transpose, i, j0, len, buf);
}

const double *monge_geom_points(const monge_geom_work *w, int side)
{
    if (w->g.C) return NULL;
    return (const double *)(side ? w->ya : w->xa);
}
