/* monge token alignment: batched masked Sinkhorn and IPOT on a cosine cost (see align.h). */
#include "align.h"
#include "internal.h"
#include "sinkhorn/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

void monge_align_params_init(monge_align_params *par)
{
    memset(par, 0, sizeof *par);
    par->method = MONGE_ALIGN_SINKHORN;
    par->eps = 0.1;
    par->tol = 1e-6;
    par->max_iter = 1000;
    par->beta = 0.5;
    par->outer = 50;
    par->inner = 1;
    par->nthreads = 0;
}

typedef struct {
    double *xh, *yh, *nx, *ny, *C, *P, *f, *g, *la, *lb, *u, *v;
    int64_t *ri, *cj; /* valid row and column indices */
} align_work;

/* Normalised copies of the valid vectors; returns MONGE_EINVAL for a zero or non-finite one. */
static int normalise(const double *Z, int64_t cnt, int64_t d, const int64_t *idx, double *zh,
                     double *nz)
{
    for (int64_t t = 0; t < cnt; t++) {
        const double *z = Z + idx[t] * d;
        double s = 0.0;
        for (int64_t k = 0; k < d; k++) s += z[k] * z[k];
        if (!isfinite(s)) return MONGE_ENONFINITE;
        if (!(s > 0.0)) return MONGE_EINVAL;
        const double nrm = sqrt(s);
        nz[t] = nrm;
        for (int64_t k = 0; k < d; k++) zh[t * d + k] = z[k] / nrm;
    }
    return MONGE_OK;
}

static double lse_row(const double *v, int64_t len)
{
    double mx = -INFINITY;
    for (int64_t t = 0; t < len; t++) mx = v[t] > mx ? v[t] : mx;
    if (mx == -INFINITY) return -INFINITY;
    double s = 0.0;
    for (int64_t t = 0; t < len; t++) s += exp(v[t] - mx);
    return mx + log(s);
}

/* The masked Sinkhorn of one pair, a step of the Sinkhorn engine (sinkhorn/engine.h) on the
 * nv x mv valid block with uniform weights, in exact log-sum-exp: rows() stages the f update and
 * measures the row marginal of the current (f, g) (the columns are exact after cols()). */
typedef struct {
    const double *C;
    int64_t nv, mv;
    double la, lb;          /* log of the uniform weights */
    double *f, *g, *tmp, *fn; /* tmp: max(nv, mv); fn: the staged f */
} align_sk;

static int align_rows(sk_step *st, double eps, double omega, double *err)
{
    (void)omega;
    align_sk *s = st->self;
    double e = 0.0;
    for (int64_t i = 0; i < s->nv; i++) {
        for (int64_t j = 0; j < s->mv; j++) s->tmp[j] = s->lb + (s->g[j] - s->C[i * s->mv + j]) / eps;
        const double fn = -eps * lse_row(s->tmp, s->mv);
        e += fabs(exp((s->f[i] - fn) / eps) - 1.0) / (double)s->nv;
        s->fn[i] = fn; /* staged: applied by cols() unless converged */
    }
    *err = e;
    return MONGE_OK;
}

static int align_cols(sk_step *st, double eps, double omega, int keep, double *err)
{
    (void)omega, (void)keep;
    align_sk *s = st->self;
    for (int64_t i = 0; i < s->nv; i++) s->f[i] = s->fn[i];
    for (int64_t j = 0; j < s->mv; j++) {
        for (int64_t i = 0; i < s->nv; i++) s->tmp[i] = s->la + (s->f[i] - s->C[i * s->mv + j]) / eps;
        s->g[j] = -eps * lse_row(s->tmp, s->nv);
    }
    *err = 0.0;
    return MONGE_OK;
}

static int align_restore(sk_step *st, int what, const double *plain, double eps)
{
    (void)st, (void)what, (void)plain, (void)eps; /* rows() only stages its update */
    return 0;
}

static int align_note(sk_step *st, double err, int improved)
{
    (void)st, (void)err, (void)improved;
    return 0;
}

static int align_after(sk_step *st, double eps, double *shift)
{
    (void)st, (void)eps;
    *shift = 0.0;
    return 0;
}

static void align_step(sk_step *st, align_sk *s)
{
    memset(st, 0, sizeof *st);
    st->rows = align_rows;
    st->cols = align_cols;
    st->restore = align_restore;
    st->note = align_note;
    st->after = align_after;
    st->self = s;
}

/* One pair on its nv x mv valid block; P (nv x mv) receives the plan.  Returns 1 when Sinkhorn
 * stopped at max_iter. */
static int solve_pair(const monge_align_params *par, int64_t nv, int64_t mv, align_work *w,
                      double *err_out, int64_t *it_out)
{
    double *C = w->C, *P = w->P;
    const double la = -log((double)nv), lb = -log((double)mv);
    int unconverged = 0;
    if (par->method == MONGE_ALIGN_SINKHORN) {
        align_sk as = {.C = C, .nv = nv, .mv = mv, .la = la, .lb = lb, .f = w->f, .g = w->g,
                       .tmp = w->u, .fn = w->la};
        for (int64_t i = 0; i < nv; i++) as.f[i] = 0.0;
        for (int64_t j = 0; j < mv; j++) as.g[j] = 0.0;
        sk_step step;
        align_step(&step, &as);
        monge_sinkhorn_params sp;
        monge_sinkhorn_params_init(&sp);
        sp.eps = par->eps;
        sp.tol = par->tol;
        sp.max_iter = par->max_iter;
        int64_t it = 0;
        double err = INFINITY;
        int converged = 0;
        sk_engine_run_step(&step, &sp, &it, &err, &converged);
        unconverged = !converged;
        const double eps = par->eps;
        const double *f = as.f, *g = as.g;
        for (int64_t i = 0; i < nv; i++)
            for (int64_t j = 0; j < mv; j++)
                P[i * mv + j] = exp(la + lb + (f[i] + g[j] - C[i * mv + j]) / eps);
        *err_out = err;
        *it_out = it;
    } else {
        const double a = 1.0 / (double)nv, b = 1.0 / (double)mv, beta = par->beta;
        double *u = w->u, *v = w->v, *G = w->f; /* G: nv x mv lives in f (sized for it) */
        for (int64_t t = 0; t < nv * mv; t++) {
            G[t] = exp(-C[t] / beta);
            P[t] = 1.0;
        }
        for (int64_t j = 0; j < mv; j++) v[j] = b;
        for (int64_t o = 0; o < par->outer; o++) {
            for (int64_t t = 0; t < nv * mv; t++) P[t] *= G[t]; /* Q = G * P, in place */
            for (int64_t l = 0; l < par->inner; l++) {
                for (int64_t i = 0; i < nv; i++) {
                    double s = 0.0;
                    for (int64_t j = 0; j < mv; j++) s += P[i * mv + j] * v[j];
                    u[i] = a / s;
                }
                for (int64_t j = 0; j < mv; j++) {
                    double s = 0.0;
                    for (int64_t i = 0; i < nv; i++) s += P[i * mv + j] * u[i];
                    v[j] = b / s;
                }
            }
            for (int64_t i = 0; i < nv; i++)
                for (int64_t j = 0; j < mv; j++) P[i * mv + j] *= u[i] * v[j];
        }
        double e = 0.0;
        for (int64_t i = 0; i < nv; i++) {
            double s = 0.0;
            for (int64_t j = 0; j < mv; j++) s += P[i * mv + j];
            e += fabs(s - a);
        }
        *err_out = e;
        *it_out = par->outer;
    }
    return unconverged;
}

int monge_align(int64_t B, int64_t n, int64_t m, int64_t d, const double *X, const double *Y,
                const uint8_t *mask_x, const uint8_t *mask_y, const monge_align_params *par,
                double *P, double *dist, double *error, int64_t *n_iter, const double *weight,
                double *GX, double *GY)
{
    monge_align_params defaults;
    if (!par) {
        monge_align_params_init(&defaults);
        par = &defaults;
    }
    if (B < 1 || n < 1 || m < 1 || d < 1 || !X || !Y || !dist) return MONGE_EINVAL;
    if ((GX || GY) && !weight) return MONGE_EINVAL;
    if (par->method == MONGE_ALIGN_SINKHORN &&
        (!(par->eps > 0.0) || !isfinite(par->eps) || !(par->tol >= 0.0) || par->max_iter < 0))
        return MONGE_EINVAL;
    if (par->method == MONGE_ALIGN_IPOT &&
        (!(par->beta > 0.0) || !isfinite(par->beta) || par->outer < 1 || par->inner < 1))
        return MONGE_EINVAL;
    if (par->method != MONGE_ALIGN_SINKHORN && par->method != MONGE_ALIGN_IPOT) return MONGE_EINVAL;
    const int nt = monge_resolve_threads(par->nthreads);
    const int64_t L = n > m ? n : m;
    /* per thread: xh, yh, nx, ny, C, P, f (n m: also IPOT's kernel), g, la, lb, u, v, indices */
    const size_t per = (size_t)((n + m) * d + (n + m) + 3 * n * m + 6 * L);
    double *pool = malloc(sizeof(double) * per * (size_t)nt);
    int64_t *ipool = malloc(sizeof(int64_t) * (size_t)(n + m) * (size_t)nt);
    int *status = calloc((size_t)B, sizeof(int));
    if (!pool || !ipool || !status) {
        free(pool);
        free(ipool);
        free(status);
        return MONGE_ENOMEM;
    }
    MONGE_PRAGMA(omp parallel num_threads(nt) if (B > 1 && B * n * m > 4096))
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        double *q = pool + per * (size_t)tid;
        align_work w;
        w.xh = q;
        w.yh = w.xh + n * d;
        w.nx = w.yh + m * d;
        w.ny = w.nx + n;
        w.C = w.ny + m;
        w.P = w.C + n * m;
        w.f = w.P + n * m;
        w.g = w.f + n * m;
        w.la = w.g + L;
        w.lb = w.la + L;
        w.u = w.lb + L;
        w.v = w.u + L;
        w.ri = ipool + (size_t)(n + m) * (size_t)tid;
        w.cj = w.ri + n;
        MONGE_PRAGMA(omp for schedule(dynamic, 1))
        for (int64_t k = 0; k < B; k++) {
            const double *Xk = X + k * n * d, *Yk = Y + k * m * d;
            int64_t nv = 0, mv = 0;
            for (int64_t i = 0; i < n; i++)
                if (!mask_x || mask_x[k * n + i]) w.ri[nv++] = i;
            for (int64_t j = 0; j < m; j++)
                if (!mask_y || mask_y[k * m + j]) w.cj[mv++] = j;
            if (nv == 0 || mv == 0) {
                status[k] = MONGE_EINVAL;
                continue;
            }
            int st = normalise(Xk, nv, d, w.ri, w.xh, w.nx);
            if (!st) st = normalise(Yk, mv, d, w.cj, w.yh, w.ny);
            if (st) {
                status[k] = st;
                continue;
            }
            for (int64_t i = 0; i < nv; i++)
                for (int64_t j = 0; j < mv; j++) {
                    double s = 0.0;
                    for (int64_t t = 0; t < d; t++) s += w.xh[i * d + t] * w.yh[j * d + t];
                    w.C[i * mv + j] = 1.0 - s;
                }
            double err = 0.0;
            int64_t its = 0;
            if (solve_pair(par, nv, mv, &w, &err, &its)) status[k] = MONGE_ENOCONV;
            double D = 0.0;
            for (int64_t t = 0; t < nv * mv; t++) D += w.P[t] * w.C[t];
            if (!isfinite(D)) status[k] = MONGE_ENONFINITE;
            dist[k] = D;
            if (error) error[k] = err;
            if (n_iter) n_iter[k] = its;
            if (P) {
                double *Pk = P + k * n * m;
                memset(Pk, 0, sizeof(double) * (size_t)(n * m));
                for (int64_t i = 0; i < nv; i++)
                    for (int64_t j = 0; j < mv; j++) Pk[w.ri[i] * m + w.cj[j]] = w.P[i * mv + j];
            }
            const double wk = weight ? weight[k] : 0.0;
            if (GX) {
                double *G = GX + k * n * d;
                memset(G, 0, sizeof(double) * (size_t)(n * d));
                for (int64_t i = 0; i < nv; i++) {
                    double *gi = G + w.ri[i] * d;
                    double sc = 0.0; /* sum_j P_ij <x^_i, y^_j> */
                    for (int64_t j = 0; j < mv; j++) {
                        const double pij = w.P[i * mv + j];
                        sc += pij * (1.0 - w.C[i * mv + j]);
                        for (int64_t t = 0; t < d; t++) gi[t] += pij * w.yh[j * d + t];
                    }
                    const double s = -wk / w.nx[i];
                    for (int64_t t = 0; t < d; t++) gi[t] = s * (gi[t] - sc * w.xh[i * d + t]);
                }
            }
            if (GY) {
                double *G = GY + k * m * d;
                memset(G, 0, sizeof(double) * (size_t)(m * d));
                for (int64_t j = 0; j < mv; j++) {
                    double *gj = G + w.cj[j] * d;
                    double sc = 0.0;
                    for (int64_t i = 0; i < nv; i++) {
                        const double pij = w.P[i * mv + j];
                        sc += pij * (1.0 - w.C[i * mv + j]);
                        for (int64_t t = 0; t < d; t++) gj[t] += pij * w.xh[i * d + t];
                    }
                    const double s = -wk / w.ny[j];
                    for (int64_t t = 0; t < d; t++) gj[t] = s * (gj[t] - sc * w.yh[j * d + t]);
                }
            }
        }
    }
    int st = monge_batch_status(B, status);
    free(pool);
    free(ipool);
    free(status);
    return st;
}
