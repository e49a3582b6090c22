/* monge quadratic and k-sparse OT: the column kernel, the objectives and the L-BFGS driver (see
 * smooth_ot.h for the mathematics). */
#include "smooth_ot.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Columns are processed in this many fixed blocks, each with its own partial row sums reduced in
 * block order afterwards: the result does not depend on the number of threads. */
#define SOT_BLOCKS 32

void monge_smooth_params_init(monge_smooth_params *par)
{
    memset(par, 0, sizeof *par);
    par->gamma = 1.0;
    par->k = 0;
    par->formulation = MONGE_SMOOTH_SEMI_DUAL;
    par->tol = 1e-6;
    par->ftol = 1e-14;
    par->max_iter = 1000;
    par->memory = 10;
    par->warm_start = 0;
    par->nthreads = 0;
}

typedef struct {
    double v;  /* x_i = alpha_i - C_ij */
    int64_t i; /* row */
} cand;

/* p comes before q: larger value first, ties to the lower row (a strict total order). */
MONGE_INLINE int before(const cand *p, const cand *q)
{
    return p->v > q->v || (p->v == q->v && p->i < q->i);
}

/* Reorders c[0..len) so that c[0..k) are its k first elements in the order `before` (unordered
 * among themselves): Hoare partitioning with a median-of-three pivot, expected O(len). */
static void select_top(cand *c, int64_t len, int64_t k)
{
    int64_t lo = 0, hi = len - 1;
    const int64_t t = k - 1;
    while (hi > lo) {
        const int64_t mid = lo + (hi - lo) / 2;
        cand tmp;
        if (before(&c[mid], &c[lo])) tmp = c[mid], c[mid] = c[lo], c[lo] = tmp;
        if (before(&c[hi], &c[lo])) tmp = c[hi], c[hi] = c[lo], c[lo] = tmp;
        if (before(&c[hi], &c[mid])) tmp = c[hi], c[hi] = c[mid], c[mid] = tmp;
        const cand piv = c[mid];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (before(&c[i], &piv)) i++;
            while (before(&piv, &c[j])) j--;
            if (i <= j) {
                tmp = c[i], c[i] = c[j], c[j] = tmp;
                i++;
                j--;
            }
        }
        if (t <= j) hi = j;
        else if (t >= i) lo = i;
        else break;
    }
}

/* Work state of one problem. */
typedef struct {
    int64_t n, m, k; /* k: effective, in [1, n] */
    int form;
    double gamma;
    double *Ct;      /* m x n: the cost transposed (columns contiguous) */
    double *a, *b;   /* weights, uniform filled in */
    int nth;
    int64_t nblk;
    cand *scratch;   /* nth x n */
    double *part;    /* nblk x n partial row sums of T */
    double *colv;    /* per column: its term of the objective */
    double *colsum;  /* per column: sum_i T_ij */
    double *colcost; /* per column: sum_i T_ij C_ij */
    double *colsq;   /* per column: sum_i T_ij^2 */
    double *tau;     /* per column: T_ij = (x_i - tau_j) / gamma on the support */
    int64_t *colnnz;
    double *rowsum;  /* n */
} sot;

static void sot_free(sot *S)
{
    free(S->Ct);
    free(S->a);
    free(S->b);
    free(S->scratch);
    free(S->part);
    free(S->colv);
    free(S->colsum);
    free(S->colcost);
    free(S->colsq);
    free(S->tau);
    free(S->colnnz);
    free(S->rowsum);
}

static int check_params(const monge_smooth_params *p)
{
    if (!(p->gamma > 0) || !isfinite(p->gamma)) return MONGE_EINVAL;
    if (p->formulation != MONGE_SMOOTH_SEMI_DUAL && p->formulation != MONGE_SMOOTH_DUAL)
        return MONGE_EINVAL;
    if (!(p->tol >= 0) || !(p->ftol >= 0) || p->max_iter < 0 || p->memory < 1) return MONGE_EINVAL;
    return MONGE_OK;
}

static int sot_init(sot *S, const monge_problem *pb, const monge_smooth_params *par)
{
    memset(S, 0, sizeof *S);
    if (!pb || !par || check_params(par)) return MONGE_EINVAL;
    const monge_geometry *G = pb->geom;
    if (!G || !G->C || G->dtype != MONGE_F64) return MONGE_EINVAL;
    if (!isinf(pb->tau_a) || !isinf(pb->tau_b)) return MONGE_EINVAL;
    if (monge_problem_check(pb, 1e-6) != MONGE_OK) return MONGE_EINVAL;
    const int64_t n = G->n, m = G->m;
    S->n = n;
    S->m = m;
    S->k = (par->k <= 0 || par->k >= n) ? n : par->k;
    S->form = par->formulation;
    S->gamma = par->gamma;
    /* as in geometry.c: below ~256k entries a pass is cheaper than a team's barrier, and much
     * cheaper than the stall a barrier costs on a loaded machine; results do not depend on it */
    S->nth = (double)n * (double)m < 262144.0 ? 1 : monge_resolve_threads(par->nthreads);
    S->nblk = m < SOT_BLOCKS ? m : SOT_BLOCKS;
    const size_t nd = sizeof(double);
    S->Ct = malloc(nd * (size_t)n * (size_t)m);
    S->a = malloc(nd * (size_t)n);
    S->b = malloc(nd * (size_t)m);
    S->scratch = malloc(sizeof(cand) * (size_t)n * (size_t)S->nth);
    S->part = malloc(nd * (size_t)n * (size_t)S->nblk);
    S->colv = malloc(nd * (size_t)m);
    S->colsum = malloc(nd * (size_t)m);
    S->colcost = malloc(nd * (size_t)m);
    S->colsq = malloc(nd * (size_t)m);
    S->tau = malloc(nd * (size_t)m);
    S->colnnz = malloc(sizeof(int64_t) * (size_t)m);
    S->rowsum = malloc(nd * (size_t)n);
    if (!S->Ct || !S->a || !S->b || !S->scratch || !S->part || !S->colv || !S->colsum ||
        !S->colcost || !S->colsq || !S->tau || !S->colnnz || !S->rowsum) {
        sot_free(S);
        return MONGE_ENOMEM;
    }
    const double *C = (const double *)G->C;
    for (int64_t i = 0; i < n * m; i++)
        if (!isfinite(C[i])) {
            sot_free(S);
            return MONGE_EINVAL;
        }
    /* transpose in 64 x 64 tiles */
    const int nth = S->nth;
    (void)nth;
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t j0 = 0; j0 < m; j0 += 64)
        for (int64_t i0 = 0; i0 < n; i0 += 64) {
            const int64_t j1 = j0 + 64 < m ? j0 + 64 : m, i1 = i0 + 64 < n ? i0 + 64 : n;
            for (int64_t j = j0; j < j1; j++)
                for (int64_t i = i0; i < i1; i++) S->Ct[j * n + i] = C[i * m + j];
        }
    monge_problem_weights(pb, 0, S->a);
    monge_problem_weights(pb, 1, S->b);
    return MONGE_OK;
}

/* The support of column j at potentials (alpha, beta): on return buf[0..cnt) holds (x_i, i) with
 * x_i = alpha_i - C_ij for the rows where T_ij = (x_i - tau_j) / gamma > 0, at most k of them. */
static int64_t col_support(const sot *S, int64_t j, const double *alpha, const double *beta,
                           cand *buf, double *tau)
{
    const int64_t n = S->n, k = S->k;
    const double *c = S->Ct + j * n;
    int64_t cnt = 0;
    if (S->form == MONGE_SMOOTH_SEMI_DUAL) {
        double mx = -INFINITY;
        MONGE_SIMD_MAX(mx)
        for (int64_t i = 0; i < n; i++) {
            const double x = alpha[i] - c[i];
            mx = x > mx ? x : mx;
        }
        const double gb = S->gamma * S->b[j];
        if (!(gb > 0)) { /* zero weight: empty column, the c-transform as its potential */
            *tau = mx;
            return 0;
        }
        /* the threshold theta >= max x - gamma b_j: only entries above can be in the support */
        const double low = mx - gb;
        for (int64_t i = 0; i < n; i++) {
            const double x = alpha[i] - c[i];
            if (x > low) buf[cnt].v = x, buf[cnt].i = i, cnt++;
        }
        if (cnt > k) {
            select_top(buf, cnt, k);
            cnt = k;
        }
        /* Michelot: theta = (sum x - gamma b_j) / |S| over the current set, drop x <= theta */
        double theta;
        for (;;) {
            double s = 0;
            for (int64_t r = 0; r < cnt; r++) s += buf[r].v;
            theta = (s - gb) / (double)cnt;
            int64_t w = 0;
            for (int64_t r = 0; r < cnt; r++)
                if (buf[r].v > theta) buf[w++] = buf[r];
            if (w == cnt) break;
            cnt = w;
        }
        *tau = theta;
    } else {
        const double t = -beta[j];
        for (int64_t i = 0; i < n; i++) {
            const double x = alpha[i] - c[i];
            if (x > t) buf[cnt].v = x, buf[cnt].i = i, cnt++;
        }
        if (cnt > k) {
            select_top(buf, cnt, k);
            cnt = k;
        }
        *tau = t;
    }
    return cnt;
}

/* One pass over the columns: per-column terms, and the plan's row sums (rowsum). */
static void sot_pass(sot *S, const double *alpha, const double *beta)
{
    const int64_t n = S->n, m = S->m, nblk = S->nblk;
    const double ig = 1.0 / S->gamma, gamma = S->gamma;
    const int semi = S->form == MONGE_SMOOTH_SEMI_DUAL;
    const int nth = S->nth;
    (void)nth;
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t blk = 0; blk < nblk; blk++) {
#ifdef _OPENMP
        cand *buf = S->scratch + (size_t)omp_get_thread_num() * (size_t)n;
#else
        cand *buf = S->scratch;
#endif
        double *pr = S->part + blk * n;
        memset(pr, 0, sizeof(double) * (size_t)n);
        const int64_t j0 = blk * m / nblk, j1 = (blk + 1) * m / nblk;
        for (int64_t j = j0; j < j1; j++) {
            double tau;
            const int64_t cnt = col_support(S, j, alpha, beta, buf, &tau);
            const double *c = S->Ct + j * n;
            double sum = 0, sq = 0, xt = 0, cost = 0;
            for (int64_t r = 0; r < cnt; r++) {
                const int64_t i = buf[r].i;
                const double t = (buf[r].v - tau) * ig;
                pr[i] += t;
                sum += t;
                sq += t * t;
                xt += buf[r].v * t;
                cost += t * c[i];
            }
            S->colsum[j] = sum;
            S->colsq[j] = sq;
            S->colcost[j] = cost;
            S->colnnz[j] = cnt;
            S->tau[j] = tau;
            /* semi-dual: b_j max_j = sum x T - gamma/2 |T|^2; dual: delta_k = gamma/2 |T|^2 */
            S->colv[j] = semi ? xt - 0.5 * gamma * sq : 0.5 * gamma * sq;
        }
    }
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t blk = 0; blk < nblk; blk++) s += S->part[blk * n + i];
        S->rowsum[i] = s;
    }
}

/* Objective (maximised) and gradient after a pass. */
static double sot_value(const sot *S, const double *alpha, const double *beta, double *ga,
                        double *gb)
{
    const int64_t n = S->n, m = S->m;
    double v = 0;
    for (int64_t i = 0; i < n; i++) v += S->a[i] * alpha[i];
    if (S->form == MONGE_SMOOTH_DUAL)
        for (int64_t j = 0; j < m; j++) v += S->b[j] * beta[j];
    for (int64_t j = 0; j < m; j++) v -= S->colv[j];
    if (ga)
        for (int64_t i = 0; i < n; i++) ga[i] = S->a[i] - S->rowsum[i];
    if (gb)
        for (int64_t j = 0; j < m; j++) gb[j] = S->b[j] - S->colsum[j];
    return v;
}

/* --------------------------------------------------------------------------------- L-BFGS glue */

typedef struct {
    sot *S;
    monge_progress_fn progress;
    void *progress_ctx;
} sot_ctx;

/* f = -objective on the variables alpha (semi-dual) or [alpha; beta] (dual). */
static int sot_eval(void *vctx, int64_t nvar, const double *x, double *f, double *g)
{
    sot *S = ((sot_ctx *)vctx)->S;
    (void)nvar;
    const double *beta = S->form == MONGE_SMOOTH_DUAL ? x + S->n : NULL;
    sot_pass(S, x, beta);
    double *gbeta = S->form == MONGE_SMOOTH_DUAL ? g + S->n : NULL;
    *f = -sot_value(S, x, beta, g, gbeta);
    for (int64_t i = 0; i < nvar; i++) g[i] = -g[i];
    return MONGE_OK;
}

static int sot_progress(void *vctx, int64_t iter, double err)
{
    sot_ctx *c = (sot_ctx *)vctx;
    return c->progress ? c->progress(c->progress_ctx, iter, err) : 0;
}

int monge_smooth_ot(const monge_problem *pb, const monge_smooth_params *par, double *alpha,
                    double *beta, monge_smooth_info *info)
{
    monge_smooth_params def;
    monge_smooth_info tmp;
    if (!par) {
        monge_smooth_params_init(&def);
        par = &def;
    }
    if (!info) info = &tmp;
    if (!alpha || !beta) return MONGE_EINVAL;
    sot S;
    int st = sot_init(&S, pb, par);
    if (st != MONGE_OK) return st;
    memset(info, 0, sizeof *info);
    const int64_t n = S.n, m = S.m;
    const int dual = S.form == MONGE_SMOOTH_DUAL;
    const int64_t nvar = dual ? n + m : n;
    double *x = malloc(sizeof(double) * (size_t)nvar);
    if (!x) {
        sot_free(&S);
        return MONGE_ENOMEM;
    }
    if (par->warm_start) {
        memcpy(x, alpha, sizeof(double) * (size_t)n);
        if (dual) memcpy(x + n, beta, sizeof(double) * (size_t)m);
        for (int64_t i = 0; i < nvar; i++)
            if (!isfinite(x[i])) {
                free(x);
                sot_free(&S);
                return MONGE_EINVAL;
            }
    } else {
        memset(x, 0, sizeof(double) * (size_t)nvar);
    }
    monge_lbfgs_params lp;
    monge_lbfgs_params_init(&lp);
    lp.memory = par->memory;
    lp.max_iter = par->max_iter;
    lp.gtol = par->tol;
    lp.gnorm = MONGE_NORM_L1;
    lp.ftol = par->ftol;
    /* with an active constraint the objective has kinks: weak Wolfe (see lbfgs.h) */
    lp.linesearch = S.k < n ? MONGE_LS_WEAK_WOLFE : MONGE_LS_STRONG_WOLFE;
    sot_ctx ctx = {&S, par->progress, par->progress_ctx};
    lp.progress = sot_progress;
    lp.progress_ctx = &ctx;
    monge_lbfgs_info li;
    st = monge_lbfgs(nvar, x, sot_eval, &ctx, &lp, &li);
    info->n_iter = li.n_iter;
    info->n_eval = li.n_eval;
    info->n_weak = li.n_weak;
    info->reason = li.reason;
    /* converged means the marginals meet tol; a stop on the stalled objective (an optimum at a
     * kink, where the plan read off the potentials need not be feasible) is reported as not
     * converged, with its reason */
    info->converged = st == MONGE_OK && li.reason == MONGE_LBFGS_GTOL;
    if (st == MONGE_OK && !info->converged) st = MONGE_ENOCONV;
    if (st == MONGE_OK || st == MONGE_ENOCONV || st == MONGE_ELINESEARCH || st == MONGE_EINTR) {
        /* final pass at the returned point: potentials, value and the plan's statistics */
        const double *bx = dual ? x + n : NULL;
        sot_pass(&S, x, bx);
        info->value = sot_value(&S, x, bx, NULL, NULL);
        memcpy(alpha, x, sizeof(double) * (size_t)n);
        if (dual) memcpy(beta, x + n, sizeof(double) * (size_t)m);
        else
            for (int64_t j = 0; j < m; j++) beta[j] = -S.tau[j];
        double cost = 0, sq = 0, ea = 0, eb = 0;
        int64_t nnz = 0, mx = 0;
        for (int64_t j = 0; j < m; j++) {
            cost += S.colcost[j];
            sq += S.colsq[j];
            eb += fabs(S.colsum[j] - S.b[j]);
            nnz += S.colnnz[j];
            mx = S.colnnz[j] > mx ? S.colnnz[j] : mx;
        }
        for (int64_t i = 0; i < n; i++) ea += fabs(S.rowsum[i] - S.a[i]);
        info->cost = cost;
        info->reg = 0.5 * S.gamma * sq;
        info->err_a = ea;
        info->err_b = eb;
        info->nnz = nnz;
        info->max_col_nnz = mx;
    }
    free(x);
    sot_free(&S);
    return st;
}

int monge_smooth_ot_objective(const monge_problem *pb, const monge_smooth_params *par,
                              const double *alpha, const double *beta, double *value,
                              double *grad_alpha, double *grad_beta)
{
    if (!alpha || !value) return MONGE_EINVAL;
    if (par && par->formulation == MONGE_SMOOTH_DUAL && !beta) return MONGE_EINVAL;
    sot S;
    int st = sot_init(&S, pb, par);
    if (st != MONGE_OK) return st;
    const int dual = S.form == MONGE_SMOOTH_DUAL;
    sot_pass(&S, alpha, dual ? beta : NULL);
    *value = sot_value(&S, alpha, dual ? beta : NULL, grad_alpha, dual ? grad_beta : NULL);
    sot_free(&S);
    return isfinite(*value) ? MONGE_OK : MONGE_ENONFINITE;
}

static int cmp_row(const void *p, const void *q)
{
    const int64_t a = ((const cand *)p)->i, b = ((const cand *)q)->i;
    return (a > b) - (a < b);
}

int monge_smooth_ot_plan(const monge_problem *pb, const monge_smooth_params *par,
                         const double *alpha, const double *beta, int64_t *indptr,
                         int64_t *indices, double *data)
{
    if (!alpha || !indptr || (!indices) != (!data)) return MONGE_EINVAL;
    if (par && par->formulation == MONGE_SMOOTH_DUAL && !beta) return MONGE_EINVAL;
    sot S;
    int st = sot_init(&S, pb, par);
    if (st != MONGE_OK) return st;
    const int64_t n = S.n, m = S.m;
    const double ig = 1.0 / S.gamma;
    const int dual = S.form == MONGE_SMOOTH_DUAL;
    const int nth = S.nth;
    (void)nth;
    const int fill = indices != NULL;
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t j = 0; j < m; j++) {
#ifdef _OPENMP
        cand *buf = S.scratch + (size_t)omp_get_thread_num() * (size_t)n;
#else
        cand *buf = S.scratch;
#endif
        double tau;
        const int64_t cnt = col_support(&S, j, alpha, dual ? beta : NULL, buf, &tau);
        if (!fill) {
            indptr[j + 1] = cnt;
            continue;
        }
        qsort(buf, (size_t)cnt, sizeof(cand), cmp_row);
        const int64_t o = indptr[j];
        for (int64_t r = 0; r < cnt; r++) {
            indices[o + r] = buf[r].i;
            data[o + r] = (buf[r].v - tau) * ig;
        }
    }
    if (!fill) {
        indptr[0] = 0;
        for (int64_t j = 0; j < m; j++) indptr[j + 1] += indptr[j];
    }
    sot_free(&S);
    return MONGE_OK;
}
