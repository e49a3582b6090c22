/* The cached float kernel: a Sinkhorn step that reads exp(-C/eps) from memory instead of
 * recomputing one exp per entry, for the eps where the kernel does not underflow where it matters.
 *
 * The cache is stabilised (Schmitzer 2019): K_ij = a_i b_j exp((F_i + G_j - C_ij)/eps), the plan at
 * absorbed potentials (F, G), so that no entry overflows; the step moves log-scalings lu, lv with
 * P = diag(e^lu) K diag(e^lv) and absorbs them into (F, G), rebuilding K, when they exceed
 * KER_ABSORB.  K is float (the iteration is bound by memory bandwidth) and one fused pass reads it
 * once per iteration: a row's sum gives its new scaling, and the same row, still in cache, is added
 * into the column sums.  Sums are in double, column sums reduced over KER_BLOCKS fixed row blocks
 * in a fixed order (results independent of the thread count).  The float kernel perturbs the
 * problem by ~1e-7 relative: the step's error floor is KER_FLOOR x mass, and it hands back to the
 * exact step (which verifies and finishes in double) at that floor, when absorptions come too
 * often, on a stall near the floor, or when the pass fails.  Measurements: docs/design/sinkhorn.md. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* madvise(MADV_HUGEPAGE) for the cache */
#endif
#include "engine.h"

#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define KER_BLOCKS 32
#define KER_ABSORB 30.0 /* |scaling| that triggers an absorption and rebuild */
#define KER_FLOOR 1e-6  /* error floor of the float cache, x the mass */
#define KER_STALL ((int)sk_tune.ker_stall) /* iterations without a 10% better error, near the floor, before handing back (tuning.c) */
#define KER_LANES 16    /* float partial sums per row (one AVX-512 register) */
#define KER_CHUNK 256   /* row entries per float partial sum: 16 products a lane */
#define KER_FLUSH 16    /* rows per float column partial */
#define KER_SERIAL ((int64_t)1 << 20) /* below this many entries one thread beats waking a team */

struct sk_kernel {
    sk_ctx *c;
    int64_t n, m;
    int nth, balanced;
    float *K;
    double *lu, *lv, *ev, *eu, *colpart, *lub, *lvb, *lup, *lvp, *T, *x, *gx;
    float *evf, *colf;
    double blk_eb[KER_BLOCKS], blk_ea[KER_BLOCKS];
    double floor;         /* KER_FLOOR x mass */
    double ca;            /* column error after the last pass */
    int64_t k_iter, rebuilds, since_best;
    double best;
};

int sk_kernel_wanted(const monge_problem *pb, const monge_sinkhorn_params *par)
{
    /* automatic: dense costs (O(nm) memory already), or a cache small enough to stay in the CPU
       caches, so that the online path keeps its O(n + m) memory where memory matters */
    const int64_t nm = pb->geom->n * pb->geom->m;
    return par->kernel == MONGE_KERNEL_ALWAYS ||
           (par->kernel == MONGE_KERNEL_AUTO && nm >= MONGE_SINKHORN_KERNEL_MIN &&
            (pb->geom->C != NULL || nm <= MONGE_SINKHORN_KERNEL_ONLINE_MAX));
}

double sk_kernel_floor(const sk_ctx *ctx)
{
    return KER_FLOOR * (ctx->s->ma > ctx->s->mb ? ctx->s->ma : ctx->s->mb);
}

/* 2 MiB-aligned and, on Linux, backed by transparent huge pages where the system allows them:
 * a fresh large cache otherwise spends much of its build in page faults.  Freed with free(). */
static float *ker_alloc(size_t count)
{
    const size_t bytes = sizeof(float) * count, align = (size_t)1 << 21;
    if (bytes < ((size_t)4 << 20)) return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, align, (bytes + align - 1) / align * align)) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}

static void ker_free(sk_kernel *k)
{
    free(k->K);
    free(k->lu);
    free(k->lv);
    free(k->ev);
    free(k->eu);
    free(k->colpart);
    free(k->lub);
    free(k->lvb);
    free(k->lup);
    free(k->lvp);
    free(k->T);
    free(k->x);
    free(k->gx);
    free(k->evf);
    free(k->colf);
    free(k);
}

/* Rebuild K at potentials (f, g): K_ij = a_i b_j exp((f_i + g_j - C_ij)/eps). */
static int ker_build(sk_kernel *k, double eps)
{
    sk_work *s = k->c->s;
    for (int64_t i = 0; i < k->n; i++) s->hint[i] = k->c->f[i] + eps * s->la[i];
    for (int64_t j = 0; j < k->m; j++) s->h[j] = k->c->g[j] + eps * s->lb[j];
    double mx;
    int st = monge_geom_kernel_f32(k->c->gw, eps, s->hint, s->h, k->K, &mx, k->nth);
    if (st) return st;
    return mx < 1e30 ? MONGE_OK : MONGE_ENONFINITE; /* not balanced enough for float */
}

/* One half-step on the scalings of one side from its sums S (row sums of diag(e^lu) K diag(e^lv)
 * without the e^lu factor).  pot: the absorbed potentials of the side; w: its weights.  Updates
 * lu in place and writes e^lu into eu (0 for zero weights); errors before and after the update. */
static int ker_update(const double *S, const double *w, const double *pot, double *lu, double *eu,
                      int64_t len, double eps, double tau, double omega, double *err_before,
                      double *err_after)
{
    const double lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    double eb = 0, ea = 0;
    for (int64_t i = 0; i < len; i++) {
        if (!(w[i] > 0)) {
            eu[i] = 0.0;
            continue;
        }
        const double old = pot[i] + eps * lu[i];      /* the potential f_i */
        const double ratio = exp(lu[i]) * S[i] / w[i]; /* (P 1)_i / w_i */
        if (!(ratio > 0) || !isfinite(ratio)) return MONGE_ENONFINITE;
        const double logratio = log(ratio);
        const double sink = lam * (old - eps * logratio);
        const double upd = old + omega * (sink - old);
        if (isinf(tau)) { /* sk_kkt_errors with its targets 1 and exp(logratio) = ratio */
            eb += w[i] * fabs(ratio - 1.0);
            ea += omega == 1.0 ? 0.0 : w[i] * fabs(exp((1.0 - omega) * logratio) - 1.0);
        } else
            sk_kkt_errors(old, upd, logratio, w[i], eps, tau, &eb, &ea);
        lu[i] = (upd - pot[i]) / eps;
        eu[i] = exp(lu[i]);
    }
    *err_before = eb;
    *err_after = ea;
    return MONGE_OK;
}

/* The fused pass: S_i = sum_j K_ij ev_j for every row, the row update from it, and the column sums
 * T_j = sum_i K_ij eu_i with the new eu, accumulated per fixed row block. */
MONGE_HOT static int ker_pass(sk_kernel *k, double eps, double tau, double omega, double *S)
{
    const sk_work *s = k->c->s;
    const double *f = k->c->f;
    const int64_t n = k->n, m = k->m;
    const int64_t bs = (n + KER_BLOCKS - 1) / KER_BLOCKS;
    double *T = k->T;
    float *evf = k->evf;
    for (int64_t j = 0; j < m; j++) evf[j] = (float)k->ev[j];
    int bad = 0;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(k->nth) reduction(| : bad))
    for (int b = 0; b < KER_BLOCKS; b++) {
        const int64_t r0 = b * bs, r1 = r0 + bs < n ? r0 + bs : n;
        double *cp = k->colpart + (int64_t)b * m;
        float *cf = k->colf + (int64_t)b * m;
        for (int64_t j = 0; j < m; j++) cp[j] = 0.0;
        for (int64_t j = 0; j < m; j++) cf[j] = 0.0f;
        double eb = 0, ea = 0;
        int pending = 0;
        for (int64_t i = r0; i < r1; i++) {
            const float *Ki = k->K + i * m;
            /* float products in vector lanes (twice the throughput of double), flushed into a
               double sum every KER_CHUNK entries */
            double accd[KER_LANES] = {0};
            const int64_t mv = m - m % KER_LANES;
            for (int64_t j0 = 0; j0 < mv; j0 += KER_CHUNK) {
                const int64_t j1 = j0 + KER_CHUNK < mv ? j0 + KER_CHUNK : mv;
                float part[KER_LANES] = {0};
                for (int64_t j = j0; j < j1; j += KER_LANES) {
                    MONGE_SIMD
                    for (int l = 0; l < KER_LANES; l++) part[l] += Ki[j + l] * evf[j + l];
                }
                MONGE_SIMD
                for (int l = 0; l < KER_LANES; l++) accd[l] += (double)part[l];
            }
            double acc = 0.0;
            for (int64_t j = mv; j < m; j++) acc += (double)Ki[j] * (double)evf[j];
            for (int l = 0; l < KER_LANES; l++) acc += accd[l];
            S[i] = acc;
            double e1, e2;
            if (ker_update(S + i, s->a + i, f + i, k->lu + i, k->eu + i, 1, eps, tau, omega, &e1, &e2)) {
                bad = 1;
                continue;
            }
            eb += e1;
            ea += e2;
            const float ui = (float)k->eu[i];
            if (ui == 0.0f) continue;
            MONGE_SIMD
            for (int64_t j = 0; j < m; j++) cf[j] += Ki[j] * ui;
            if (++pending == KER_FLUSH) { /* float column partials over at most KER_FLUSH rows */
                pending = 0;
                MONGE_SIMD
                for (int64_t j = 0; j < m; j++) {
                    cp[j] += (double)cf[j];
                    cf[j] = 0.0f;
                }
            }
        }
        if (pending) {
            MONGE_SIMD
            for (int64_t j = 0; j < m; j++) cp[j] += (double)cf[j];
        }
        k->blk_eb[b] = eb;
        k->blk_ea[b] = ea;
    }
    if (bad) return MONGE_ENONFINITE;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(k->nth))
    for (int64_t j = 0; j < m; j++) {
        double t = 0.0;
        for (int b = 0; b < KER_BLOCKS; b++) t += k->colpart[(int64_t)b * m + j];
        T[j] = t;
    }
    return MONGE_OK;
}

static void copy(double *dst, const double *src, int64_t len)
{
    memcpy(dst, src, sizeof(double) * (size_t)len);
}

/* e^lv, 0 on zero weights */
static void col_scalings(sk_kernel *k)
{
    const double *b = k->c->s->b;
    for (int64_t j = 0; j < k->m; j++) k->ev[j] = b[j] > 0 ? exp(k->lv[j]) : 0.0;
}

/* rows: the fused pass, which also updates the columns (cols() only reports them); the state it
 * measured is kept in lup, lvp */
static int ker_rows(sk_step *st, double eps, double omega, double *err)
{
    sk_kernel *k = st->self;
    const sk_ctx *c = k->c;
    copy(k->lup, k->lu, k->n);
    copy(k->lvp, k->lv, k->m);
    double cb;
    if (ker_pass(k, eps, c->pb->tau_a, omega, c->s->out) ||
        ker_update(k->T, c->s->b, c->g, k->lv, k->ev, k->m, eps, c->pb->tau_b, omega, &cb, &k->ca)) {
        copy(k->lu, k->lup, k->n); /* a row or column lost all its mass in float: give way */
        copy(k->lv, k->lvp, k->m);
        return SK_YIELD;
    }
    double row_err = 0;
    for (int b = 0; b < KER_BLOCKS; b++) row_err += k->blk_eb[b];
    for (int64_t j = 0; j < k->m; j++)
        if (!(c->s->b[j] > 0)) k->ev[j] = 0.0;
    *err = row_err;
    return MONGE_OK;
}

static int ker_cols(sk_step *st, double eps, double omega, int keep, double *err)
{
    (void)omega;
    sk_kernel *k = st->self;
    const double *g = k->c->g;
    if (keep)
        for (int64_t j = 0; j < k->m; j++) {
            k->x[j] = g[j] + eps * k->lvp[j];
            k->gx[j] = g[j] + eps * k->lv[j];
        }
    *err = k->ca;
    return MONGE_OK;
}

static double ker_adopt(sk_step *st, double eps)
{
    sk_kernel *k = st->self;
    const sk_ctx *c = k->c;
    const double *b = c->s->b, *g = c->g;
    double eb = 0, ea = 0;
    for (int64_t j = 0; j < k->m; j++) {
        if (!(b[j] > 0)) continue;
        const double lv = (k->gx[j] - g[j]) / eps;
        /* log of the column ratio at the iterate (lvp), given the sums T there */
        const double logratio = k->lvp[j] + log(k->T[j] / b[j]);
        sk_kkt_errors(k->x[j], k->gx[j], logratio, b[j], eps, c->pb->tau_b, &eb, &ea);
        k->lv[j] = lv;
        k->ev[j] = exp(lv);
    }
    return ea;
}

static int ker_restore(sk_step *st, int what, const double *plain, double eps)
{
    sk_kernel *k = st->self;
    if (what == SK_BEST) { /* the pass that blew up updated both sides: it counts */
        copy(k->lu, k->lub, k->n);
        copy(k->lv, k->lvb, k->m);
        col_scalings(k);
        k->k_iter++;
        return 1;
    }
    copy(k->lu, k->lup, k->n);
    if (what == SK_MEASURED) {
        copy(k->lv, k->lvp, k->m);
        return 0;
    }
    for (int64_t j = 0; j < k->m; j++) k->lv[j] = (plain[j] - k->c->g[j]) / eps;
    col_scalings(k);
    return 0;
}

static int ker_note(sk_step *st, double err, int improved)
{
    (void)improved;
    sk_kernel *k = st->self;
    if (err < 0.9 * k->best) {
        k->best = err;
        k->since_best = 0;
        copy(k->lub, k->lup, k->n);
        copy(k->lvb, k->lvp, k->m);
    } else if (++k->since_best > KER_STALL && err < 1e3 * k->floor) {
        /* stalled near the float floor: the exact step finishes (above it a plateau is the
           algorithm's, not the cache's, and the cache goes on) */
        return 1;
    }
    return 0;
}

/* after an iteration: recentre the gauge (balanced), absorb large scalings */
static int ker_after(sk_step *st, double eps, double *shift)
{
    sk_kernel *k = st->self;
    sk_ctx *c = k->c;
    const double *a = c->s->a, *b = c->s->b;
    const int64_t n = k->n, m = k->m;
    *shift = 0.0;
    k->k_iter++;
    if (k->balanced) {
        /* (lu + c, lv - c) is the same plan: centre the two ranges, so that a drift of the gauge
           (over-relaxation moves it) does not force absorptions */
        double ulo = INFINITY, uhi = -INFINITY, vlo = INFINITY, vhi = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            if (a[i] > 0) {
                ulo = fmin(ulo, k->lu[i]);
                uhi = fmax(uhi, k->lu[i]);
            }
        for (int64_t j = 0; j < m; j++)
            if (b[j] > 0) {
                vlo = fmin(vlo, k->lv[j]);
                vhi = fmax(vhi, k->lv[j]);
            }
        const double cc = 0.25 * ((ulo + uhi) - (vlo + vhi));
        if (isfinite(cc) && fabs(cc) > 1.0) {
            const double ec = exp(cc);
            for (int64_t i = 0; i < n; i++) k->lu[i] -= cc;
            for (int64_t j = 0; j < m; j++) {
                k->lv[j] += cc;
                k->ev[j] *= ec;
            }
            *shift = eps * cc;
        }
    }
    double big = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(k->lu[i]));
    for (int64_t j = 0; j < m; j++) big = fmax(big, fabs(k->lv[j]));
    if (big <= KER_ABSORB) return 0;
    /* a rebuild costs about one log-domain half-step, a cached iteration a fraction of one: the
       cache pays while rebuilds come less often than every other iteration */
    if (++k->rebuilds * 2 > k->k_iter + 8) return 1;
    for (int64_t i = 0; i < n; i++) c->f[i] += eps * k->lu[i];
    for (int64_t j = 0; j < m; j++) c->g[j] += eps * k->lv[j];
    memset(k->lu, 0, sizeof(double) * (size_t)n);
    memset(k->lv, 0, sizeof(double) * (size_t)m);
    /* the best state kept for a blow-up is now this one (same plan: `best` and the stall count
       stay) */
    memset(k->lub, 0, sizeof(double) * (size_t)n);
    memset(k->lvb, 0, sizeof(double) * (size_t)m);
    for (int64_t j = 0; j < m; j++) k->ev[j] = b[j] > 0 ? 1.0 : 0.0;
    if (ker_build(k, eps)) {
        memset(k->lu, 0, sizeof(double) * (size_t)n);
        memset(k->lv, 0, sizeof(double) * (size_t)m);
        return 1;
    }
    return 0;
}

sk_kernel *sk_kernel_open(sk_ctx *ctx, double eps, sk_step *st)
{
    sk_kernel *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    const int64_t n = ctx->s->n, m = ctx->s->m;
    k->c = ctx;
    k->n = n;
    k->m = m;
    k->K = ker_alloc((size_t)n * (size_t)m);
    k->lu = calloc((size_t)n, sizeof(double));
    k->lv = calloc((size_t)m, sizeof(double));
    k->ev = malloc(sizeof(double) * (size_t)m);
    k->eu = malloc(sizeof(double) * (size_t)(n > m ? n : m));
    k->colpart = malloc(sizeof(double) * (size_t)KER_BLOCKS * (size_t)m);
    k->lub = calloc((size_t)n, sizeof(double));
    k->lvb = calloc((size_t)m, sizeof(double));
    k->lup = malloc(sizeof(double) * (size_t)n);
    k->lvp = malloc(sizeof(double) * (size_t)m);
    k->T = malloc(sizeof(double) * (size_t)m);
    k->x = malloc(sizeof(double) * (size_t)m);
    k->gx = malloc(sizeof(double) * (size_t)m);
    k->evf = malloc(sizeof(float) * (size_t)m);
    k->colf = malloc(sizeof(float) * (size_t)KER_BLOCKS * (size_t)m);
    /* results do not depend on the thread count (fixed blocks) */
    k->nth = n * m < KER_SERIAL ? 1 : ctx->nth;
    if (!k->K || !k->lu || !k->lv || !k->ev || !k->eu || !k->colpart || !k->lub || !k->lvb ||
        !k->lup || !k->lvp || !k->T || !k->x || !k->gx || !k->evf || !k->colf || ker_build(k, eps)) {
        ker_free(k);
        return NULL;
    }
    k->floor = sk_kernel_floor(ctx);
    k->balanced = isinf(ctx->pb->tau_a) && isinf(ctx->pb->tau_b);
    k->best = INFINITY;
    for (int64_t j = 0; j < m; j++) k->ev[j] = ctx->s->b[j] > 0 ? 1.0 : 0.0;
    memset(st, 0, sizeof *st);
    st->floor = k->floor;
    st->yields = 1;
    st->xprev = k->x;
    st->xnew = k->gx;
    st->rows = ker_rows;
    st->cols = ker_cols;
    st->adopt = ker_adopt;
    st->restore = ker_restore;
    st->note = ker_note;
    st->after = ker_after;
    st->self = k;
    return k;
}

void sk_kernel_close(sk_kernel *k, double eps)
{
    for (int64_t i = 0; i < k->n; i++) k->c->f[i] += eps * k->lu[i];
    for (int64_t j = 0; j < k->m; j++) k->c->g[j] += eps * k->lv[j];
    ker_free(k);
}
