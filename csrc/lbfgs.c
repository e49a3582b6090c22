/* monge L-BFGS with a strong-Wolfe line search (see lbfgs.h). */
#include "lbfgs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void monge_lbfgs_params_init(monge_lbfgs_params *par)
{
    memset(par, 0, sizeof *par);
    par->memory = 10;
    par->max_iter = 1000;
    par->gtol = 1e-9;
    par->gnorm = MONGE_NORM_INF;
    par->gtol_rel = 0;
    par->ftol = 1e-12;
    par->past = 5;
    par->max_linesearch = 40;
    par->c1 = 1e-4;
    par->c2 = 0.9;
    par->max_step = 1e20;
    par->progress = NULL;
    par->progress_ctx = NULL;
}

const char *monge_lbfgs_reason_str(int reason)
{
    switch (reason) {
    case MONGE_LBFGS_GTOL: return "gradient norm below tolerance";
    case MONGE_LBFGS_FTOL: return "relative decrease of the objective below ftol";
    case MONGE_LBFGS_MAXITER: return "iteration limit reached";
    case MONGE_LBFGS_LINESEARCH:
        return "line search found no decrease along the L-BFGS or steepest-descent direction";
    case MONGE_LBFGS_NONFINITE: return "non-finite objective or gradient at the starting point";
    case MONGE_LBFGS_INTERRUPTED: return "interrupted by the progress callback";
    case MONGE_LBFGS_EVAL_ERROR: return "the objective returned an error";
    default: return "unknown reason";
    }
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double gnorm_of(const double *g, int64_t n, int type)
{
    double s = 0;
    if (type == MONGE_NORM_L1) {
        for (int64_t i = 0; i < n; i++) s += fabs(g[i]);
    } else {
        for (int64_t i = 0; i < n; i++) {
            const double v = fabs(g[i]);
            s = v > s ? v : s;
        }
    }
    return s;
}

/* ---------------------------------------------------------------------------------- line search */

typedef struct {
    int64_t n;
    const double *x0, *d; /* start and direction */
    double f0, dg0;       /* f and g'd at the start (dg0 < 0) */
    double *xt, *gt;      /* trial point */
    double *xb, *gb;      /* best point with sufficient decrease */
    double fb, tb;
    monge_lbfgs_eval_fn eval;
    void *ctx;
    const monge_lbfgs_params *par;
    int64_t evals;        /* evaluations in this search */
} ls_state;

/* f and g'd at x0 + t d (f = +inf when non-finite). Returns the eval status. */
static int ls_eval(ls_state *L, double t, double *f, double *dg)
{
    const int64_t n = L->n;
    for (int64_t i = 0; i < n; i++) L->xt[i] = L->x0[i] + t * L->d[i];
    int st = L->eval(L->ctx, n, L->xt, f, L->gt);
    L->evals++;
    if (st != MONGE_OK) return st;
    *dg = dot(L->gt, L->d, n);
    if (!isfinite(*f) || !isfinite(*dg)) {
        *f = INFINITY;
        *dg = NAN;
    } else if (*f <= L->f0 + L->par->c1 * t * L->dg0 && *f < L->fb) {
        memcpy(L->xb, L->xt, sizeof(double) * (size_t)n);
        memcpy(L->gb, L->gt, sizeof(double) * (size_t)n);
        L->fb = *f;
        L->tb = t;
    }
    return MONGE_OK;
}

/* Minimiser of the cubic interpolating (a, fa, da), (b, fb, db), safeguarded to the middle 80 %
 * of [a, b]; bisection when the cubic is useless. */
static double cubic_step(double a, double fa, double da, double b, double fb, double db)
{
    const double lo = a < b ? a : b, hi = a < b ? b : a, w = hi - lo;
    double t = 0.5 * (a + b);
    if (isfinite(fa) && isfinite(fb) && isfinite(da) && isfinite(db)) {
        const double d1 = da + db - 3.0 * (fa - fb) / (a - b);
        const double disc = d1 * d1 - da * db;
        if (disc >= 0) {
            const double d2 = (b > a ? 1.0 : -1.0) * sqrt(disc);
            const double den = db - da + 2.0 * d2;
            if (den != 0) {
                const double c = b - (b - a) * (db + d2 - d1) / den;
                if (isfinite(c)) t = c;
            }
        }
    }
    if (!(t >= lo + 0.1 * w && t <= hi - 0.1 * w)) t = 0.5 * (a + b);
    return t;
}

enum { LS_STRONG = 0, LS_WEAK = 1, LS_FAIL = 2 };

/* Strong-Wolfe search from step t0.  Near a minimiser f changes by less than its rounding error,
 * so, as in Hager & Zhang (2005), a step whose value is within noise of f0 (f <= f0 + epsf, epsf a
 * few ulps of f0) counts as decreasing when its slope satisfies the curvature condition, and values
 * within noise of each other are told apart by the sign of the slope.  On LS_STRONG / LS_WEAK the
 * accepted point is in (xb, gb, fb).  *est receives an eval error status (else MONGE_OK). */
static int line_search(ls_state *L, double t0, int *est)
{
    const monge_lbfgs_params *p = L->par;
    const double f0 = L->f0, dg0 = L->dg0, epsf = 1e-12 * fabs(f0), curv = -p->c2 * dg0;
    double t_prev = 0, f_prev = f0, dg_prev = dg0, t = t0, ft, dgt;
    double tlo, flo, dlo, thi, fhi, dhi;
    L->fb = f0;
    L->tb = 0;
    L->evals = 0;
    *est = MONGE_OK;
    for (int first = 1;; first = 0) {
        if (L->evals >= p->max_linesearch) goto out;
        if ((*est = ls_eval(L, t, &ft, &dgt)) != MONGE_OK) return LS_FAIL;
        const int armijo = ft <= f0 + p->c1 * t * dg0, flat = ft <= f0 + epsf;
        if ((!armijo && !flat) || (!first && ft > f_prev + epsf)) {
            tlo = t_prev, flo = f_prev, dlo = dg_prev;
            thi = t, fhi = ft, dhi = dgt;
            break;
        }
        if (fabs(dgt) <= curv) goto accept;
        if (dgt >= 0) {
            tlo = t, flo = ft, dlo = dgt;
            thi = t_prev, fhi = f_prev, dhi = dg_prev;
            break;
        }
        if (t >= p->max_step) goto out;
        t_prev = t, f_prev = ft, dg_prev = dgt;
        t = 4.0 * t < p->max_step ? 4.0 * t : p->max_step;
    }
    /* zoom: lo has the lowest value so far (within noise), the slope at lo points towards hi */
    while (L->evals < p->max_linesearch) {
        const double w = fabs(thi - tlo);
        if (!(w > 1e-16 * fmax(fabs(tlo), fabs(thi)))) break;
        t = cubic_step(tlo, flo, dlo, thi, fhi, dhi);
        if ((*est = ls_eval(L, t, &ft, &dgt)) != MONGE_OK) return LS_FAIL;
        const int armijo = ft <= f0 + p->c1 * t * dg0, flat = ft <= f0 + epsf;
        if ((!armijo && !flat) || ft > flo + epsf || (ft > flo && !flat)) {
            thi = t, fhi = ft, dhi = dgt;
        } else {
            if (fabs(dgt) <= curv) goto accept;
            if (dgt * (thi - tlo) >= 0) thi = tlo, fhi = flo, dhi = dlo;
            tlo = t, flo = ft, dlo = dgt;
        }
    }
out:
    return L->fb < f0 ? LS_WEAK : LS_FAIL;
accept:
    if (L->tb != t) { /* the accepted point is the last trial */
        memcpy(L->xb, L->xt, sizeof(double) * (size_t)L->n);
        memcpy(L->gb, L->gt, sizeof(double) * (size_t)L->n);
        L->fb = ft;
        L->tb = t;
    }
    return LS_STRONG;
}

/* Weak Wolfe by bracketing and bisection (Lewis & Overton 2013), for non-smooth objectives:
 * accept when f(t) <= f0 + c1 t g'd and g(t)'d >= c2 g'd; Armijo failing shrinks the bracket from
 * above, the curvature failing from below; steps double until an upper end is found. */
static int line_search_weak(ls_state *L, double t0, int *est)
{
    const monge_lbfgs_params *p = L->par;
    const double f0 = L->f0, dg0 = L->dg0, epsf = 1e-12 * fabs(f0);
    double lo = 0, hi = INFINITY, t = t0, ft, dgt;
    L->fb = f0;
    L->tb = 0;
    L->evals = 0;
    *est = MONGE_OK;
    while (L->evals < p->max_linesearch) {
        if ((*est = ls_eval(L, t, &ft, &dgt)) != MONGE_OK) return LS_FAIL;
        const int armijo = ft <= f0 + p->c1 * t * dg0 || (ft <= f0 + epsf && dgt >= p->c2 * dg0 &&
                                                          dgt <= -p->c2 * dg0);
        if (!armijo) {
            hi = t;
        } else if (dgt < p->c2 * dg0) {
            lo = t;
        } else {
            if (L->tb != t) {
                memcpy(L->xb, L->xt, sizeof(double) * (size_t)L->n);
                memcpy(L->gb, L->gt, sizeof(double) * (size_t)L->n);
                L->fb = ft;
                L->tb = t;
            }
            return LS_STRONG;
        }
        if (isinf(hi)) {
            if (t >= p->max_step) break;
            t = 2.0 * t < p->max_step ? 2.0 * t : p->max_step;
        } else {
            if (!(hi - lo > 1e-16 * hi)) break;
            t = 0.5 * (lo + hi);
        }
    }
    return L->fb < f0 ? LS_WEAK : LS_FAIL;
}

/* ----------------------------------------------------------------------------------- main loop */

static int check_params(const monge_lbfgs_params *p)
{
    if (p->memory < 1 || p->max_iter < 0 || p->past < 1 || p->max_linesearch < 2) return MONGE_EINVAL;
    if (!(p->gtol >= 0) || !(p->gtol_rel >= 0) || !(p->ftol >= 0)) return MONGE_EINVAL;
    if (p->gnorm != MONGE_NORM_INF && p->gnorm != MONGE_NORM_L1) return MONGE_EINVAL;
    if (!(p->c1 > 0 && p->c1 < p->c2 && p->c2 < 1)) return MONGE_EINVAL;
    if (!(p->max_step > 0)) return MONGE_EINVAL;
    if (p->linesearch != MONGE_LS_STRONG_WOLFE && p->linesearch != MONGE_LS_WEAK_WOLFE) return MONGE_EINVAL;
    return MONGE_OK;
}

int monge_lbfgs(int64_t n, double *x, monge_lbfgs_eval_fn eval, void *ctx,
                const monge_lbfgs_params *par, monge_lbfgs_info *info)
{
    monge_lbfgs_params def;
    monge_lbfgs_info tmp;
    if (!par) {
        monge_lbfgs_params_init(&def);
        par = &def;
    }
    if (!info) info = &tmp;
    if (n < 1 || !x || !eval || check_params(par)) return MONGE_EINVAL;
    memset(info, 0, sizeof *info);
    const int64_t M = par->memory;
    const size_t nb = sizeof(double) * (size_t)n;
    double *g = malloc(nb), *d = malloc(nb), *xt = malloc(nb), *gt = malloc(nb);
    double *xb = malloc(nb), *gb = malloc(nb);
    double *S = malloc(nb * (size_t)M), *Y = malloc(nb * (size_t)M);
    double *rho = malloc(sizeof(double) * (size_t)M), *al = malloc(sizeof(double) * (size_t)M);
    double *fh = malloc(sizeof(double) * (size_t)(par->past + 1));
    double *gh = malloc(sizeof(double) * (size_t)(par->past + 1));
    int st = MONGE_OK;
    if (!g || !d || !xt || !gt || !xb || !gb || !S || !Y || !rho || !al || !fh || !gh) {
        st = MONGE_ENOMEM;
        goto done;
    }
    double f;
    st = eval(ctx, n, x, &f, g);
    info->n_eval = 1;
    if (st != MONGE_OK) {
        info->reason = MONGE_LBFGS_EVAL_ERROR;
        goto done;
    }
    info->f = f;
    info->gnorm = gnorm_of(g, n, par->gnorm);
    if (!isfinite(f) || !isfinite(info->gnorm)) {
        info->reason = MONGE_LBFGS_NONFINITE;
        st = MONGE_ENONFINITE;
        goto done;
    }
    ls_state L = {.n = n, .x0 = x, .d = d, .xt = xt, .gt = gt, .xb = xb, .gb = gb, .eval = eval,
                  .ctx = ctx, .par = par};
    int64_t k = 0, cnt = 0, head = 0;
    double gbest = INFINITY;
    fh[0] = f;
    for (;;) {
        const double gn = gnorm_of(g, n, par->gnorm);
        info->f = f;
        info->gnorm = gn;
        info->n_iter = k;
        if (gn <= par->gtol ||
            (par->gtol_rel > 0 && sqrt(dot(g, g, n)) <= par->gtol_rel * fmax(1.0, sqrt(dot(x, x, n))))) {
            info->reason = MONGE_LBFGS_GTOL;
            st = MONGE_OK;
            break;
        }
        gbest = gn < gbest ? gn : gbest;
        gh[k % (par->past + 1)] = gbest;
        if (par->ftol > 0 && k >= par->past) {
            const int64_t o = (k - par->past) % (par->past + 1);
            const double fo = fh[o];
            if (fo - f <= par->ftol * fmax(fmax(fabs(f), fabs(fo)), 1.0) && gbest > 0.9 * gh[o]) {
                info->reason = MONGE_LBFGS_FTOL;
                st = MONGE_OK;
                break;
            }
        }
        if (k >= par->max_iter) {
            info->reason = MONGE_LBFGS_MAXITER;
            st = MONGE_ENOCONV;
            break;
        }
        if (par->progress && par->progress(par->progress_ctx, k, gn)) {
            info->reason = MONGE_LBFGS_INTERRUPTED;
            st = MONGE_EINTR;
            break;
        }
        /* direction: two-loop recursion over the stored pairs, newest first */
        for (int64_t i = 0; i < n; i++) d[i] = -g[i];
        if (cnt > 0) {
            for (int64_t c = 0, j = (head - 1 + M) % M; c < cnt; c++, j = (j - 1 + M) % M) {
                al[j] = rho[j] * dot(S + j * n, d, n);
                const double *yj = Y + j * n;
                for (int64_t i = 0; i < n; i++) d[i] -= al[j] * yj[i];
            }
            const int64_t jn = (head - 1 + M) % M;
            const double *yn = Y + jn * n;
            const double h0 = 1.0 / (rho[jn] * dot(yn, yn, n));
            for (int64_t i = 0; i < n; i++) d[i] *= h0;
            for (int64_t c = 0, j = (head - cnt + M) % M; c < cnt; c++, j = (j + 1) % M) {
                const double be = rho[j] * dot(Y + j * n, d, n);
                const double *sj = S + j * n;
                for (int64_t i = 0; i < n; i++) d[i] += sj[i] * (al[j] - be);
            }
        }
        double dg0 = dot(g, d, n);
        if (!(dg0 < 0)) { /* not a descent direction (numerical breakdown): steepest descent */
            cnt = 0;
            for (int64_t i = 0; i < n; i++) d[i] = -g[i];
            dg0 = dot(g, d, n);
        }
        const double t0 = cnt > 0 ? 1.0 : 1.0 / sqrt(-dg0);
        L.f0 = f;
        L.dg0 = dg0;
        int est;
        const int r = par->linesearch == MONGE_LS_WEAK_WOLFE ? line_search_weak(&L, t0, &est)
                                                            : line_search(&L, t0, &est);
        info->n_eval += L.evals;
        if (est != MONGE_OK) {
            info->reason = MONGE_LBFGS_EVAL_ERROR;
            st = est;
            break;
        }
        if (r == LS_FAIL) {
            if (cnt > 0) { /* drop the memory and try the steepest-descent direction */
                cnt = 0;
                info->n_reset++;
                continue;
            }
            info->reason = MONGE_LBFGS_LINESEARCH;
            st = MONGE_ELINESEARCH;
            break;
        }
        if (r == LS_WEAK) info->n_weak++;
        /* new pair s = xb - x, y = gb - g, then move */
        double *sj = S + head * n, *yj = Y + head * n;
        for (int64_t i = 0; i < n; i++) {
            sj[i] = xb[i] - x[i];
            yj[i] = gb[i] - g[i];
        }
        const double sy = dot(sj, yj, n), yy = dot(yj, yj, n);
        if (sy > 1e-12 * yy && yy > 0) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % M;
            cnt = cnt < M ? cnt + 1 : M;
        }
        memcpy(x, xb, nb);
        memcpy(g, gb, nb);
        f = L.fb;
        k++;
        fh[k % (par->past + 1)] = f;
    }
done:
    free(g);
    free(d);
    free(xt);
    free(gt);
    free(xb);
    free(gb);
    free(S);
    free(Y);
    free(rho);
    free(al);
    free(fh);
    free(gh);
    return st;
}
