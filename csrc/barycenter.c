/* monge fixed-support entropic barycenters by log-domain iterative Bregman projections (see
 * barycenter.h). */
#include "barycenter.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void monge_barycenter_params_init(monge_barycenter_params *par)
{
    memset(par, 0, sizeof *par);
    par->eps = 0.1;
    par->tol = 1e-6;
    par->max_iter = 10000;
    par->debiased = 0;
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
        par->max_iter < 1)
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

int monge_barycenter(int64_t K, const monge_geometry *geoms, const double *const *b,
                     const double *lambda, const monge_geometry *self,
                     const monge_barycenter_params *par, double *a, double *f_out,
                     double *g_out, double *logc_out, double *error, int64_t *n_iter)
{
    int64_t M = 0;
    int st = check_args(K, geoms, b, lambda, self, par, a, &M);
    if (st != MONGE_OK) return st;
    const int64_t n = geoms[0].n;
    const double eps = par->eps;
    const int nth = monge_resolve_threads(par->nthreads);
    const int deb = par->debiased != 0;

    monge_geom_work **w = calloc((size_t)K, sizeof *w);
    monge_geom_work *wself = NULL;
    int64_t *off = malloc((size_t)(K + 1) * sizeof *off);
    double *f = calloc((size_t)(K * n), sizeof *f);    /* potentials on the barycenter side */
    double *R = malloc((size_t)(K * n) * sizeof *R);   /* softmin_rows(g_k) */
    double *g = malloc((size_t)M * sizeof *g);
    double *oc = malloc((size_t)M * sizeof *oc);      /* softmin_cols(f_k) */
    double *lb = malloc((size_t)M * sizeof *lb);      /* eps log b */
    double *hint = malloc((size_t)(M > n ? M : n) * sizeof *hint);
    double *loga = malloc((size_t)n * sizeof *loga);
    double *lc = calloc((size_t)n, sizeof *lc);       /* log c (natural log) */
    double *h = malloc((size_t)n * sizeof *h);
    double *S = malloc((size_t)n * sizeof *S);
    if (!w || !off || !f || !R || !g || !oc || !lb || !hint || !loga || !lc || !h || !S) {
        st = MONGE_ENOMEM;
        goto done;
    }
    off[0] = 0;
    for (int64_t k = 0; k < K; k++) {
        off[k + 1] = off[k] + geoms[k].m;
        /* inputs on one geometry (a common support) share its prepared work: calls are sequential */
        for (int64_t l = 0; l < k && !w[k]; l++)
            if (!memcmp(&geoms[l], &geoms[k], sizeof geoms[k])) w[k] = w[l];
        if (!w[k] && (st = monge_geom_prepare(&geoms[k], nth, &w[k])) != MONGE_OK) goto done;
        for (int64_t j = 0; j < geoms[k].m; j++)
            lb[off[k] + j] = b[k][j] > 0.0 ? eps * log(b[k][j]) : -INFINITY;
    }
    if (deb && (st = monge_geom_prepare(self, nth, &wself)) != MONGE_OK) goto done;

    double err = INFINITY, dres = 0.0;
    int64_t it;
    for (it = 0;; it++) {
        /* second marginals of the current plans (f_k, g_k), then the projection onto them */
        double emax = 0.0;
        for (int64_t k = 0; k < K; k++) {
            const int64_t m = geoms[k].m;
            double *ock = oc + off[k], *gk = g + off[k];
            if (it > 0) memcpy(hint, ock, (size_t)m * sizeof *hint);  /* last pass's values */
            st = monge_softmin(w[k], 1, eps, f + k * n, it > 0 ? hint : NULL, ock, nth);
            if (st != MONGE_OK) goto done;
            if (it > 0) {
                double e = 0.0;
                for (int64_t j = 0; j < m; j++) {
                    const double col = gk[j] == -INFINITY ? 0.0 : exp((gk[j] + ock[j]) / eps);
                    e += fabs(col - b[k][j]);
                }
                emax = e > emax ? e : emax;
            }
        }
        if (it > 0) {
            err = emax + dres;
            if (!isfinite(err)) {
                st = MONGE_ENONFINITE;
                goto done;
            }
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
        }
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < geoms[k].m; j++)
                g[off[k] + j] = lb[off[k] + j] - oc[off[k] + j];
        /* first marginals: their weighted geometric mean (times c) is the new barycenter */
        for (int64_t i = 0; i < n; i++) loga[i] = lc[i];
        for (int64_t k = 0; k < K; k++) {
            double *Rk = R + k * n;
            if (it > 0) memcpy(hint, Rk, (size_t)n * sizeof *hint);
            st = monge_softmin(w[k], 0, eps, g + off[k], it > 0 ? hint : NULL, Rk, nth);
            if (st != MONGE_OK) goto done;
            const double lk = lambda[k] / eps;
            if (lk > 0.0)
                for (int64_t i = 0; i < n; i++) loga[i] += lk * Rk[i];
        }
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(loga[i])) {
                st = MONGE_ENONFINITE;
                goto done;
            }
        for (int64_t k = 0; k < K; k++)
            for (int64_t i = 0; i < n; i++) f[k * n + i] = eps * loga[i] - R[k * n + i];
        if (deb) {
            /* c solves c (K_xx c) = a: one damped (geometric-mean) fixed-point step */
            for (int64_t i = 0; i < n; i++) {
                h[i] = eps * lc[i];
                hint[i] = eps * (loga[i] - lc[i]);
            }
            st = monge_softmin(wself, 0, eps, h, hint, S, nth);
            if (st != MONGE_OK) goto done;
            dres = 0.0;
            for (int64_t i = 0; i < n; i++) {
                dres += fabs(exp(lc[i] + S[i] / eps) - exp(loga[i]));
                lc[i] = 0.5 * (lc[i] + loga[i] - S[i] / eps);
            }
        }
    }
    for (int64_t i = 0; i < n; i++) a[i] = exp(loga[i]);
    if (f_out) memcpy(f_out, f, (size_t)(K * n) * sizeof *f);
    if (g_out) memcpy(g_out, g, (size_t)M * sizeof *g);
    if (logc_out)
        for (int64_t i = 0; i < n; i++) logc_out[i] = eps * lc[i];
    if (error) *error = err;
    if (n_iter) *n_iter = it;
done:
    if (w)
        for (int64_t k = 0; k < K; k++) {
            int shared = 0;
            for (int64_t l = 0; l < k && !shared; l++) shared = w[l] == w[k];
            if (!shared) monge_geom_release(w[k]);
        }
    monge_geom_release(wself);
    free(w);
    free(off);
    free(f);
    free(R);
    free(g);
    free(oc);
    free(lb);
    free(hint);
    free(loga);
    free(lc);
    free(h);
    free(S);
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

int monge_free_barycenter(int64_t K, const int64_t *m, int64_t d, const double *const *Y,
                          const double *const *b, const double *lambda, int64_t n,
                          const double *a, const monge_free_barycenter_params *par, double *X,
                          double *cost_out, int64_t *n_iter)
{
    if (K < 1 || !m || d < 1 || !Y || !lambda || n < 1 || !par || !X || !cost_out || !n_iter)
        return MONGE_EINVAL;
    if (par->max_iter < 1 || !(par->tol >= 0.0) || !isfinite(par->tol) ||
        (!par->exact && (!(par->eps > 0.0) || !isfinite(par->eps))) || check_simplex(lambda, K))
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
    if (simplex_or_uniform(a, n, aw)) {
        st = MONGE_EINVAL;
        goto out;
    }
    off[0] = 0;
    for (int64_t k = 0; k < K; k++) {
        off[k + 1] = off[k] + m[k];
        if (simplex_or_uniform(b ? b[k] : NULL, m[k], bw + off[k])) {
            st = MONGE_EINVAL;
            goto out;
        }
        if (par->exact && (st = monge_emd_basis_new(&bases[k])) != MONGE_OK) goto out;
    }
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
