/* SpecTr draft selection: K-SEQ, its residual, and the exact optimal acceptance (see spectr.h for
 * the equations and the argument behind each algorithm). */
#include "spectr.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void monge_spectr_params_init(monge_spectr_params *par)
{
    par->seed = 0;
    par->stream = 0;
    par->draw_drafts = 0;
    par->nthreads = 0;
}

/* ------------------------------------------------------------------ random numbers */

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t stream_key(uint64_t seed, uint64_t pos) { return mix64(seed ^ mix64(pos)); }

/* j-th uniform of a stream, in [0, 1) */
static double uniform(uint64_t key, uint64_t j)
{
    return (double)(mix64(key + 0xD1B54A32D192ED03ull * (j + 1)) >> 11) * 0x1.0p-53;
}

/* index drawn from weights w (total `total` > 0) with the uniform u; never an index of weight 0 */
static int64_t draw_index(const double *w, int64_t V, double total, double u)
{
    double target = u * total, acc = 0;
    int64_t last = -1;
    for (int64_t x = 0; x < V; x++) {
        if (w[x] <= 0) continue;
        acc += w[x];
        last = x;
        if (target < acc) return x;
    }
    return last; /* rounding left the target past the last positive weight */
}

/* ------------------------------------------------------------------ validation */

static int check_rows(int64_t B, int64_t V, const double *p, const double *q, int64_t ld)
{
    if (V < 1 || B < 0 || !p || !q || (ld != 0 && ld != V)) return MONGE_EINVAL;
    const int64_t rows = ld == 0 ? (B > 0 ? 1 : 0) : B;
    for (int64_t b = 0; b < rows; b++) {
        const double *pr = p + b * ld, *qr = q + b * ld;
        double sp = 0, sq = 0;
        for (int64_t x = 0; x < V; x++) {
            if (!(pr[x] >= 0) || !(qr[x] >= 0) || isinf(pr[x]) || isinf(qr[x])) return MONGE_EINVAL;
            sp += pr[x];
            sq += qr[x];
        }
        if (fabs(sp - 1) > MONGE_SPECTR_SUM_TOL || fabs(sq - 1) > MONGE_SPECTR_SUM_TOL)
            return MONGE_EINVAL;
    }
    return MONGE_OK;
}

static int check_k(int64_t B, const int64_t *k)
{
    if (B > 0 && !k) return MONGE_EINVAL;
    for (int64_t b = 0; b < B; b++)
        if (k[b] < 1) return MONGE_EINVAL;
    return MONGE_OK;
}

/* ------------------------------------------------------------------ per-row work */

typedef struct {
    double t, p, q; /* ratio q/p (+inf when p = 0), and the two probabilities */
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const double x = ((const entry *)a)->t, y = ((const entry *)b)->t;
    return (x > y) - (x < y);
}

/* work of one thread: V entries and four (V + 1) prefix/suffix arrays */
typedef struct {
    entry *e;
    double *qpre, *ppre, *sp, *sq, *d;
} row_work;

static size_t work_doubles(int64_t V) { return (size_t)(3 * V + 5 * (V + 1)); }

static void work_bind(row_work *w, double *buf, int64_t V)
{
    w->e = (entry *)buf;
    w->qpre = buf + 3 * V;
    w->ppre = w->qpre + (V + 1);
    w->sp = w->ppre + (V + 1);
    w->sq = w->sp + (V + 1);
    w->d = w->sq + (V + 1);
}

/* orders the tokens with mass by ratio t = q/p: those with t < lo first, then those with
 * lo <= t <= hi sorted ascending, then those with t > hi (the outer blocks unsorted; lo = 0 and
 * hi = inf sort everything).  Returns their number n and fills the sums: qpre[i], ppre[i] over
 * entries < i; sp[i], sq[i], d[i] = sum (q - p) over entries >= i. */
static int64_t sort_ratios(const double *p, const double *q, int64_t V, row_work *w, double lo,
                           double hi)
{
    int64_t n = 0;
    for (int64_t x = 0; x < V; x++) {
        if (p[x] <= 0 && q[x] <= 0) continue;
        w->e[n].p = p[x];
        w->e[n].q = q[x];
        w->e[n].t = p[x] > 0 ? q[x] / p[x] : INFINITY;
        n++;
    }
    /* three-way partition (low | middle | high), then sort the middle only */
    int64_t a = 0, m = 0, b = n;
    while (m < b) {
        const double t = w->e[m].t;
        if (t < lo) {
            const entry tmp = w->e[a];
            w->e[a++] = w->e[m];
            w->e[m++] = tmp;
        } else if (t > hi) {
            const entry tmp = w->e[--b];
            w->e[b] = w->e[m];
            w->e[m] = tmp;
        } else {
            m++;
        }
    }
    qsort(w->e + a, (size_t)(b - a), sizeof(entry), cmp_entry);
    w->qpre[0] = w->ppre[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        w->qpre[i + 1] = w->qpre[i] + w->e[i].q;
        w->ppre[i + 1] = w->ppre[i] + w->e[i].p;
    }
    w->sp[n] = w->sq[n] = w->d[n] = 0;
    for (int64_t i = n - 1; i >= 0; i--) {
        w->sp[i] = w->sp[i + 1] + w->e[i].p;
        w->sq[i] = w->sq[i + 1] + w->e[i].q;
        w->d[i] = w->d[i + 1] + (w->e[i].q - w->e[i].p);
    }
    return n;
}

double monge_spectr_beta(const double *p, const double *q, int64_t V, double rho)
{
    double s = 0;
    for (int64_t x = 0; x < V; x++) {
        const double a = p[x], b = q[x] / rho;
        s += a < b ? a : b;
    }
    return s;
}

/* h(rho) on the piece where the entries >= i have ratio >= rho and those < i below it:
 *   1 - rho beta = sq - rho sp,   1 - beta = d + B (1 - 1/rho),  B = qpre[i];
 *   h = (1 - rho beta) - (1 - beta)^k.  *dh receives h'(rho). */
static double h_piece(const row_work *w, int64_t i, double k, double rho, double *dh)
{
    const double B = w->qpre[i];
    double omb = w->d[i] + B * (1 - 1 / rho);
    if (omb < 0) omb = 0;
    if (omb > 1) omb = 1;
    const double pw1 = k > 1 ? pow(omb, k - 1) : 1.0;
    if (dh) *dh = -w->sp[i] - k * pw1 * B / (rho * rho);
    return (w->sq[i] - rho * w->sp[i]) - pw1 * omb;
}

/* rho* of one row (sorted work already filled, n entries) */
static double solve_rho(const row_work *w, int64_t n, int64_t k)
{
    if (k == 1) return 1.0; /* h(rho) = beta (1 - rho): the root is 1 */
    const double kd = (double)k;
    int64_t i = 0;
    while (i < n && w->e[i].t < 1) i++;
    double lo = 1;
    if (h_piece(w, i, kd, 1.0, NULL) <= 0) return 1.0;
    for (;;) {
        while (i < n && w->e[i].t <= lo) i++;
        double hi = i < n && w->e[i].t < kd ? w->e[i].t : kd;
        double hhi = h_piece(w, i, kd, hi, NULL);
        if (hhi > 0 && hi < kd) {
            lo = hi;
            continue;
        }
        if (hhi > 0) return kd; /* h(k) <= 0 in exact arithmetic; rounding only */
        /* the root is in [lo, hi] on piece i: safeguarded Newton, bracket [a, b], h(a) > 0 >= h(b) */
        double a = lo, b = hi, x = hi;
        for (int it = 0; it < 200 && b - a > 4 * DBL_EPSILON * b; it++) {
            double dh, hx = h_piece(w, i, kd, x, &dh);
            double xn = dh < 0 ? x - hx / dh : 0.5 * (a + b);
            if (!(xn > a && xn < b)) xn = 0.5 * (a + b);
            const int newton_done = fabs(xn - x) <= 4 * DBL_EPSILON * xn;
            const double hn = h_piece(w, i, kd, xn, NULL);
            if (hn <= 0) b = xn;
            else a = xn;
            x = xn;
            if (newton_done) {
                /* Newton has converged: close the bracket with a point just across the root */
                const double y = hn > 0 ? xn * (1 + 8 * DBL_EPSILON) : xn * (1 - 8 * DBL_EPSILON);
                const double hy = h_piece(w, i, kd, y, NULL);
                if (hn > 0 && hy <= 0 && y < b) b = y;
                if (hn <= 0 && hy > 0 && y > a) a = y;
            }
        }
        return b;
    }
}

/* c(rho) = sum_{i<k} (1 - beta)^i = (1 - (1 - beta)^k) / beta, accurately for small beta */
static double c_of_beta(double beta, int64_t k)
{
    if (beta <= 0) return (double)k;
    if (beta >= 1) return 1.0;
    return -expm1((double)k * log1p(-beta)) / beta;
}

/* acceptance 1 - (1 - beta)^k */
static double accept_of_beta(double beta, int64_t k)
{
    if (beta <= 0) return 0.0;
    if (beta >= 1) return 1.0;
    return -expm1((double)k * log1p(-beta));
}

static double residual_weight(double p, double q, double rho, double c)
{
    const double m = p < q / rho ? p : q / rho;
    const double r = q - c * m;
    return r > 0 ? r : 0;
}

/* ------------------------------------------------------------------ batched drivers */

typedef struct {
    double *buf;
    int nth;
} pool;

static int pool_alloc(pool *pl, int nthreads, int64_t B, int64_t V)
{
    int nth = monge_resolve_threads(nthreads);
    if (nth > B) nth = B > 0 ? (int)B : 1;
    pl->nth = nth;
    pl->buf = (double *)malloc(sizeof(double) * work_doubles(V) * (size_t)nth);
    return pl->buf ? MONGE_OK : MONGE_ENOMEM;
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

int monge_spectr_rho(int64_t B, int64_t V, const double *p, const double *q, int64_t ld,
                     const int64_t *k, double *rho, double *accept, int nthreads)
{
    int st = check_rows(B, V, p, q, ld);
    if (st == MONGE_OK) st = check_k(B, k);
    if (st == MONGE_OK && B > 0 && !rho) st = MONGE_EINVAL;
    if (st != MONGE_OK || B == 0) return st;
    pool pl;
    if (pool_alloc(&pl, nthreads, B, V) != MONGE_OK) return MONGE_ENOMEM;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(pl.nth) if (pl.nth > 1))
    for (int64_t b = 0; b < B; b++) {
        row_work w;
        work_bind(&w, pl.buf + work_doubles(V) * (size_t)thread_id(), V);
        const double *pr = p + b * ld, *qr = q + b * ld;
        const int64_t n = sort_ratios(pr, qr, V, &w, 1.0, (double)k[b]);
        rho[b] = solve_rho(&w, n, k[b]);
        if (accept) accept[b] = accept_of_beta(monge_spectr_beta(pr, qr, V, rho[b]), k[b]);
    }
    free(pl.buf);
    return MONGE_OK;
}

int monge_spectr_residual(int64_t B, int64_t V, const double *p, const double *q, int64_t ld,
                          const int64_t *k, double *res, int nthreads)
{
    int st = check_rows(B, V, p, q, ld);
    if (st == MONGE_OK) st = check_k(B, k);
    if (st == MONGE_OK && B > 0 && !res) st = MONGE_EINVAL;
    if (st != MONGE_OK || B == 0) return st;
    pool pl;
    if (pool_alloc(&pl, nthreads, B, V) != MONGE_OK) return MONGE_ENOMEM;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(pl.nth) if (pl.nth > 1))
    for (int64_t b = 0; b < B; b++) {
        row_work w;
        work_bind(&w, pl.buf + work_doubles(V) * (size_t)thread_id(), V);
        const double *pr = p + b * ld, *qr = q + b * ld;
        double *out = res + b * V;
        const double r = solve_rho(&w, sort_ratios(pr, qr, V, &w, 1.0, (double)k[b]), k[b]);
        const double c = c_of_beta(monge_spectr_beta(pr, qr, V, r), k[b]);
        double tot = 0;
        for (int64_t x = 0; x < V; x++) tot += (out[x] = residual_weight(pr[x], qr[x], r, c));
        if (tot > 0) {
            for (int64_t x = 0; x < V; x++) out[x] /= tot;
        } else {
            for (int64_t x = 0; x < V; x++) out[x] = qr[x]; /* never used: all mass accepted */
        }
    }
    free(pl.buf);
    return MONGE_OK;
}

int monge_spectr_select(const monge_spectr_params *par, int64_t B, int64_t V, const double *p,
                        const double *q, int64_t ld, int64_t kmax, const int64_t *nk,
                        int64_t *drafts, int64_t *token, int64_t *index, double *rho)
{
    if (!par || kmax < 1) return MONGE_EINVAL;
    int st = check_rows(B, V, p, q, ld);
    if (st != MONGE_OK || B == 0) return st;
    if (!drafts || !token || !index) return MONGE_EINVAL;
    for (int64_t b = 0; nk && b < B; b++)
        if (nk[b] < 1 || nk[b] > kmax) return MONGE_EINVAL;
    if (!par->draw_drafts)
        for (int64_t i = 0; i < B * kmax; i++)
            if (drafts[i] < 0 || drafts[i] >= V) return MONGE_EINVAL;
    pool pl;
    if (pool_alloc(&pl, par->nthreads, B, V) != MONGE_OK) return MONGE_ENOMEM;
    MONGE_PRAGMA(omp parallel num_threads(pl.nth) if (pl.nth > 1))
    {
        row_work w;
        work_bind(&w, pl.buf + work_doubles(V) * (size_t)thread_id(), V);
        int64_t cached_k = -1; /* shared rows (ld = 0): rho, beta, c depend on k only */
        double r = 1, beta = 0, c = 1;
        MONGE_PRAGMA(omp for schedule(static))
        for (int64_t b = 0; b < B; b++) {
            const double *pr = p + b * ld, *qr = q + b * ld;
            const int64_t k = nk ? nk[b] : kmax;
            int64_t *dr = drafts + b * kmax;
            const uint64_t key = stream_key(par->seed, par->stream + (uint64_t)b);
            if (ld != 0 || k != cached_k) {
                r = solve_rho(&w, sort_ratios(pr, qr, V, &w, 1.0, (double)k), k);
                beta = monge_spectr_beta(pr, qr, V, r);
                c = c_of_beta(beta, k);
                cached_k = ld == 0 ? k : -1;
            }
            if (rho) rho[b] = r;
            if (par->draw_drafts)
                for (int64_t j = 0; j < k; j++) dr[j] = draw_index(pr, V, 1.0, uniform(key, (uint64_t)j));
            int64_t tok = -1, idx = -1;
            for (int64_t j = 0; j < k && idx < 0; j++) {
                const int64_t x = dr[j];
                /* accept with probability min(1, q / (rho p)); p = 0 < q accepts, p = q = 0 rejects */
                if (uniform(key, (uint64_t)(kmax + j)) * r * pr[x] < qr[x]) {
                    idx = j;
                    tok = x;
                }
            }
            if (idx < 0) {
                double tot = 0;
                for (int64_t x = 0; x < V; x++) tot += residual_weight(pr[x], qr[x], r, c);
                const double u = uniform(key, (uint64_t)(2 * kmax));
                if (tot > 0) {
                    double target = u * tot, acc = 0;
                    for (int64_t x = 0; x < V; x++) {
                        const double wx = residual_weight(pr[x], qr[x], r, c);
                        if (wx <= 0) continue;
                        acc += wx;
                        tok = x;
                        if (target < acc) break;
                    }
                } else {
                    tok = draw_index(qr, V, 1.0, u);
                }
            }
            token[b] = tok;
            index[b] = idx;
        }
    }
    free(pl.buf);
    return MONGE_OK;
}

int monge_spectr_optimal_acceptance(int64_t B, int64_t V, const double *p, const double *q,
                                    int64_t ld, const int64_t *k, double *out, int nthreads)
{
    int st = check_rows(B, V, p, q, ld);
    if (st == MONGE_OK) st = check_k(B, k);
    if (st == MONGE_OK && B > 0 && !out) st = MONGE_EINVAL;
    if (st != MONGE_OK || B == 0) return st;
    pool pl;
    if (pool_alloc(&pl, nthreads, B, V) != MONGE_OK) return MONGE_ENOMEM;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(pl.nth) if (pl.nth > 1))
    for (int64_t b = 0; b < B; b++) {
        row_work w;
        work_bind(&w, pl.buf + work_doubles(V) * (size_t)thread_id(), V);
        const int64_t n = sort_ratios(p + b * ld, q + b * ld, V, &w, 0.0, INFINITY);
        /* A^c = the i tokens of lowest ratio: q(A^c) + 1 - (1 - p(A))^k, with p(A) the suffix
         * sum and 1 - (1 - s)^k = -expm1(k log1p(-s)): sums of non-negative terms, no cancellation */
        double best = 1.0;
        for (int64_t i = 0; i <= n; i++) {
            const double v = w.qpre[i] + accept_of_beta(w.sp[i], k[b]);
            if (v < best) best = v;
        }
        out[b] = best < 0 ? 0 : best;
    }
    free(pl.buf);
    return MONGE_OK;
}
