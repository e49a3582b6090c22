/* monge losses: Sinkhorn divergence and Monge gap (see losses.h for the mathematics). */
#include "losses.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void monge_divergence_params_init(monge_divergence_params *par)
{
    memset(par, 0, sizeof *par);
    monge_sinkhorn_params_init(&par->sk);
}

void monge_gap_params_init(monge_gap_params *par)
{
    memset(par, 0, sizeof *par);
    monge_sinkhorn_params_init(&par->sk);
    par->eps_mode = MONGE_EPS_ABSOLUTE;
}

static int solve_ok(int st) { return st == MONGE_OK || st == MONGE_ENOCONV; }

/* grad_out = G(geom_ab side) - G(self geometry), both row kernels */
static int grad_pair(const monge_geom_work *w_ab, int tr, const double *u_ab, const double *h_ab,
                     const monge_geom_work *w_self, const double *u_self, double *tmp, double *out,
                     int64_t len, int64_t d, double eps, int nth)
{
    int st = monge_geom_grad(w_ab, tr, eps, u_ab, h_ab, out, nth);
    if (st || !w_self) return st;
    st = monge_geom_grad(w_self, 0, eps, u_self, u_self, tmp, nth);
    if (st) return st;
    for (int64_t i = 0; i < len * d; i++) out[i] -= tmp[i];
    return MONGE_OK;
}

static double mass_of(const double *w, int64_t len)
{
    if (!w) return 1.0;
    double s = 0;
    for (int64_t i = 0; i < len; i++) s += w[i];
    return s;
}

/* 1 when every entry is finite (NULL: nothing to check). */
static int finite_all(const double *v, int64_t len)
{
    if (!v) return 1;
    for (int64_t i = 0; i < len; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

int monge_sinkhorn_divergence(const monge_problem *pb, const monge_divergence_params *par,
                              double *grad_x, double *grad_y, double *grad_a, double *grad_b,
                              monge_divergence_info *info)
{
    monge_divergence_params def;
    monge_divergence_info tmpinfo;
    if (!par) {
        monge_divergence_params_init(&def);
        par = &def;
    }
    if (!info) info = &tmpinfo;
    memset(info, 0, sizeof *info);
    info->value = info->ot_ab = info->ot_aa = info->ot_bb = info->error = NAN;
    if (!pb || !pb->geom || pb->geom->C) return MONGE_EINVAL;
    const monge_geometry *g = pb->geom;
    const int64_t n = g->n, m = g->m, d = g->d;
    const int nth = monge_resolve_threads(par->sk.nthreads);
    const double eps = par->sk.eps;
    const int do_b = !par->static_b;
    monge_sinkhorn_params sp = par->sk;
    sp.warm_start = 0;
    sp.nthreads = nth;

    /* geometries: (x, y), (x, x), (y, y), each online; dense copies for the solves on request */
    monge_geometry gxx = *g, gyy = *g;
    gxx.m = n;
    gxx.y = g->x;
    gyy.n = m;
    gyy.x = g->y;
    monge_geom_work *wab = NULL, *waa = NULL, *wbb = NULL;
    double *f = NULL, *gg = NULL, *p = NULL, *q = NULL, *u = NULL, *h = NULL, *us = NULL,
           *tmp = NULL;
    void *Cab = NULL, *Caa = NULL, *Cbb = NULL;
    int st = monge_geom_prepare(g, nth, &wab);
    if (!st) st = monge_geom_prepare(&gxx, nth, &waa);
    if (!st && do_b) st = monge_geom_prepare(&gyy, nth, &wbb);
    if (st) goto done;
    const int64_t nm = n > m ? n : m;
    f = malloc(sizeof(double) * (size_t)n);
    gg = malloc(sizeof(double) * (size_t)m);
    p = malloc(sizeof(double) * (size_t)n);
    q = malloc(sizeof(double) * (size_t)m);
    u = malloc(sizeof(double) * (size_t)nm);
    h = malloc(sizeof(double) * (size_t)nm);
    us = malloc(sizeof(double) * (size_t)nm);
    tmp = malloc(sizeof(double) * (size_t)(nm * d));
    if (!f || !gg || !p || !q || !u || !h || !us || !tmp) {
        st = MONGE_ENOMEM;
        goto done;
    }
    monge_geometry sab = *g, saa = gxx, sbb = gyy;
    if (par->dense) {
        const size_t es = g->dtype == MONGE_F32 ? sizeof(float) : sizeof(double);
        Cab = malloc(es * (size_t)(n * m));
        Caa = malloc(es * (size_t)(n * n));
        Cbb = do_b ? malloc(es * (size_t)(m * m)) : NULL;
        if (!Cab || !Caa || (do_b && !Cbb)) {
            st = MONGE_ENOMEM;
            goto done;
        }
        st = monge_geom_cost_matrix(wab, Cab, nth);
        if (!st) st = monge_geom_cost_matrix(waa, Caa, nth);
        if (!st && do_b) st = monge_geom_cost_matrix(wbb, Cbb, nth);
        if (st) goto done;
        sab.C = Cab;
        saa.C = Caa;
        sbb.C = Cbb;
    }
    monge_problem pab = *pb, paa = {&saa, pb->a, pb->a, pb->tau_a, pb->tau_a},
                  pbb = {&sbb, pb->b, pb->b, pb->tau_b, pb->tau_b};
    pab.geom = &sab;
    monge_sinkhorn_info iab, iaa, ibb;
    memset(&ibb, 0, sizeof ibb);
    ibb.value = NAN;
    ibb.converged = 1;
    ibb.error = 0;
    /* x = y with a = b: OT(a, b) is the symmetric problem itself.  Its potentials f = g = p
     * come from the fast averaged iteration, while the alternating one can crawl there (points
     * that coincide make Sinkhorn's rate 1 - exp(-spread / eps)), and S = 0 with zero gradients
     * exactly. */
    const size_t esz = g->dtype == MONGE_F32 ? sizeof(float) : sizeof(double);
    const int same = n == m && pb->tau_a == pb->tau_b &&
                     memcmp(g->x, g->y, esz * (size_t)(n * d)) == 0 &&
                     ((!pb->a && !pb->b) ||
                      (pb->a && pb->b && memcmp(pb->a, pb->b, sizeof(double) * (size_t)n) == 0));
    int s2 = monge_sinkhorn_symmetric(&paa, &sp, p, &iaa);
    if (!solve_ok(s2)) {
        st = s2;
        goto done;
    }
    if (same) {
        memcpy(f, p, sizeof(double) * (size_t)n);
        memcpy(gg, p, sizeof(double) * (size_t)n);
        iab = iaa;
    } else {
        int s1 = monge_sinkhorn(&pab, &sp, f, gg, &iab);
        if (!solve_ok(s1)) {
            st = s1;
            goto done;
        }
    }
    int s3 = MONGE_OK;
    if (do_b && same) {
        memcpy(q, p, sizeof(double) * (size_t)n);
        ibb = iaa;
    } else if (do_b) {
        s3 = monge_sinkhorn_symmetric(&pbb, &sp, q, &ibb);
        if (!solve_ok(s3)) {
            st = s3;
            goto done;
        }
    }
    /* a solve that max_iter stopped in an earlier eps stage: its terms belong to another eps */
    if (iab.eps_reached != eps || iaa.eps_reached != eps || (do_b && !same && ibb.eps_reached != eps)) {
        st = MONGE_ESTAGE;
        goto done;
    }
    const double ma = mass_of(pb->a, n), mb = mass_of(pb->b, m);
    info->ot_ab = iab.value;
    info->ot_aa = iaa.value;
    info->ot_bb = do_b ? ibb.value : NAN;
    info->value = iab.value - 0.5 * iaa.value - (do_b ? 0.5 * ibb.value : 0.0) +
                  0.5 * eps * (ma - mb) * (ma - mb);
    info->n_iter = iab.n_iter + iaa.n_iter + (do_b ? ibb.n_iter : 0);
    info->error = fmax(iab.error, fmax(iaa.error, do_b ? ibb.error : 0.0));
    info->converged = iab.converged && iaa.converged && (!do_b || ibb.converged);

    /* gradients */
    if (grad_x || grad_y) {
        monge_problem_shift(pb, 0, eps, f, u);
        monge_problem_shift(pb, 1, eps, gg, h);
    }
    if (grad_x) {
        monge_problem_shift(&paa, 0, eps, p, us);
        st = grad_pair(wab, 0, u, h, waa, us, tmp, grad_x, n, d, eps, nth);
        if (st) goto done;
    }
    if (grad_y && do_b) {
        monge_problem_shift(&pbb, 0, eps, q, us);
        st = grad_pair(wab, 1, h, u, wbb, us, tmp, grad_y, m, d, eps, nth);
        if (st) goto done;
    }
    if (grad_a)
        for (int64_t i = 0; i < n; i++)
            grad_a[i] = isinf(pb->tau_a)
                            ? f[i] - p[i]
                            : (pb->tau_a + eps) * (exp(-p[i] / pb->tau_a) - exp(-f[i] / pb->tau_a));
    if (grad_b && do_b)
        for (int64_t j = 0; j < m; j++)
            grad_b[j] = isinf(pb->tau_b)
                            ? gg[j] - q[j]
                            : (pb->tau_b + eps) * (exp(-q[j] / pb->tau_b) - exp(-gg[j] / pb->tau_b));
    if (!isfinite(info->value) || !finite_all(grad_x, n * d) ||
        !finite_all(do_b ? grad_y : NULL, m * d) || !finite_all(grad_a, n) ||
        !finite_all(do_b ? grad_b : NULL, m)) {
        st = MONGE_ENONFINITE; /* finite inputs whose costs overflow the double range */
        goto done;
    }
    st = info->converged ? MONGE_OK : MONGE_ENOCONV;
done:
    monge_geom_release(wab);
    monge_geom_release(waa);
    monge_geom_release(wbb);
    free(f);
    free(gg);
    free(p);
    free(q);
    free(u);
    free(h);
    free(us);
    free(tmp);
    free(Cab);
    free(Caa);
    free(Cbb);
    return st;
}

int monge_sinkhorn_divergence_batch(int64_t B, const monge_problem *pbs,
                                    const monge_divergence_params *par, double *grad_x,
                                    double *grad_y, double *grad_a, double *grad_b,
                                    monge_divergence_info *info, int *status)
{
    if (B < 0 || (B > 0 && (!pbs || !info || !status))) return MONGE_EINVAL;
    monge_divergence_params p;
    if (par) p = *par;
    else monge_divergence_params_init(&p);
    for (int64_t k = 0; k < B; k++)
        if (!pbs[k].geom || pbs[k].geom->n != pbs[0].geom->n || pbs[k].geom->m != pbs[0].geom->m ||
            pbs[k].geom->d != pbs[0].geom->d)
            return MONGE_EINVAL;
    const int nth = monge_resolve_threads(p.sk.nthreads);
    const int64_t n = B ? pbs[0].geom->n : 0, m = B ? pbs[0].geom->m : 0,
                  d = B ? pbs[0].geom->d : 0;
    int cancelled = 0;
    const int outer = B > 1 && nth > 1;
    monge_divergence_params inner = p;
    if (outer) inner.sk.nthreads = 1;
    MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nth) if (outer))
    for (int64_t k = 0; k < B; k++) {
        int c;
        MONGE_PRAGMA(omp atomic read)
        c = cancelled;
        if (c) {
            status[k] = MONGE_EINTR;
            memset(&info[k], 0, sizeof info[k]);
            continue;
        }
        status[k] = monge_sinkhorn_divergence(
            &pbs[k], &inner, grad_x ? grad_x + k * n * d : NULL, grad_y ? grad_y + k * m * d : NULL,
            grad_a ? grad_a + k * n : NULL, grad_b ? grad_b + k * m : NULL, &info[k]);
        if (status[k] == MONGE_EINTR) {
            MONGE_PRAGMA(omp atomic write)
            cancelled = 1;
        }
    }
    return monge_batch_status(B, status);
}

int monge_monge_gap(const monge_geometry *geom, const monge_gap_params *par, double *grad_t,
                    double *grad_x, monge_gap_info *info)
{
    monge_gap_params def;
    monge_gap_info tmpinfo;
    if (!par) {
        monge_gap_params_init(&def);
        par = &def;
    }
    if (!info) info = &tmpinfo;
    memset(info, 0, sizeof *info);
    info->value = info->eps = info->error = NAN;
    if (!geom || geom->C || geom->n != geom->m || geom->n < 1) return MONGE_EINVAL;
    if (par->eps_mode < MONGE_EPS_ABSOLUTE || par->eps_mode > MONGE_EPS_STD) return MONGE_EINVAL;
    const int64_t n = geom->n, d = geom->d;
    const int nth = monge_resolve_threads(par->sk.nthreads);
    monge_geometry gswap = *geom, gxx = *geom, gtt = *geom;
    gswap.x = geom->y;
    gswap.y = geom->x;
    gxx.y = geom->x;
    gtt.x = geom->y;
    monge_geom_work *w = NULL, *ws = NULL, *wxx = NULL, *wtt = NULL;
    double *f = NULL, *g = NULL, *u = NULL, *h = NULL, *pc = NULL, *pg = NULL, *px = NULL,
           *pt = NULL, *us = NULL, *tmp = NULL;
    void *Cd = NULL, *Cxx = NULL, *Ctt = NULL;
    const int deb = par->debiased != 0;
    int st = monge_geom_prepare(geom, nth, &w);
    if (!st) st = monge_geom_prepare(&gswap, nth, &ws);
    if (!st && deb) st = monge_geom_prepare(&gxx, nth, &wxx);
    if (!st && deb) st = monge_geom_prepare(&gtt, nth, &wtt);
    if (st) goto done;
    f = malloc(sizeof(double) * (size_t)n);
    g = malloc(sizeof(double) * (size_t)n);
    u = malloc(sizeof(double) * (size_t)n);
    h = malloc(sizeof(double) * (size_t)n);
    pc = malloc(sizeof(double) * (size_t)n);
    pg = malloc(sizeof(double) * (size_t)(n * d));
    if (deb) {
        px = malloc(sizeof(double) * (size_t)n);
        pt = malloc(sizeof(double) * (size_t)n);
        us = malloc(sizeof(double) * (size_t)n);
        tmp = malloc(sizeof(double) * (size_t)(n * d));
    }
    if (!f || !g || !u || !h || !pc || !pg || (deb && (!px || !pt || !us || !tmp))) {
        st = MONGE_ENOMEM;
        goto done;
    }
    monge_sinkhorn_params sp = par->sk;
    sp.warm_start = 0;
    sp.nthreads = nth;
    monge_geometry gsolve = *geom, sxx = gxx, stt = gtt;
    if (par->dense) {
        const size_t es = geom->dtype == MONGE_F32 ? sizeof(float) : sizeof(double);
        Cd = malloc(es * (size_t)(n * n));
        if (deb) {
            Cxx = malloc(es * (size_t)(n * n));
            Ctt = malloc(es * (size_t)(n * n));
        }
        if (!Cd || (deb && (!Cxx || !Ctt))) {
            st = MONGE_ENOMEM;
            goto done;
        }
        st = monge_geom_cost_matrix(w, Cd, nth);
        if (!st && deb) st = monge_geom_cost_matrix(wxx, Cxx, nth);
        if (!st && deb) st = monge_geom_cost_matrix(wtt, Ctt, nth);
        if (st) goto done;
        gsolve.C = Cd;
        sxx.C = Cxx;
        stt.C = Ctt;
    }
    if (par->eps_mode != MONGE_EPS_ABSOLUTE) {
        /* the statistics of the costs: read from the dense matrix when there is one (the same
           values; the online geometry would compute every cost twice more) */
        double mean, sd;
        monge_geom_work *wd = NULL;
        if (par->dense) st = monge_geom_prepare(&gsolve, nth, &wd);
        if (!st) st = monge_geom_cost_stats(wd ? wd : w, &mean, &sd, nth);
        monge_geom_release(wd);
        if (st) goto done;
        sp.eps *= par->eps_mode == MONGE_EPS_MEAN ? mean : sd;
        if (!(sp.eps > 0)) { /* all costs equal: no scale to be relative to */
            st = MONGE_EINVAL;
            goto done;
        }
    }
    const double eps = sp.eps;
    monge_problem pb = {&gsolve, NULL, NULL, INFINITY, INFINITY};
    monge_problem pxx = {&sxx, NULL, NULL, INFINITY, INFINITY};
    monge_problem ptt = {&stt, NULL, NULL, INFINITY, INFINITY};
    monge_sinkhorn_info si, sxi, sti;
    st = monge_sinkhorn(&pb, &sp, f, g, &si);
    if (!solve_ok(st)) goto done;
    if (deb) {
        st = monge_sinkhorn_symmetric(&pxx, &sp, px, &sxi);
        if (!solve_ok(st)) goto done;
        st = monge_sinkhorn_symmetric(&ptt, &sp, pt, &sti);
        if (!solve_ok(st)) goto done;
    }
    if (si.eps_reached != eps || (deb && (sxi.eps_reached != eps || sti.eps_reached != eps))) {
        st = MONGE_ESTAGE;   /* max_iter stopped a solve in an earlier eps stage */
        goto done;
    }
    st = monge_geom_paired(w, pc, grad_x ? pg : NULL, nth);
    if (st) goto done;
    double disp = 0;
    for (int64_t i = 0; i < n; i++) disp += pc[i];
    disp /= (double)n;
    const double ent_reg = deb ? si.value - 0.5 * (sxi.value + sti.value)
                               : si.value - 2.0 * eps * log((double)n);
    info->displacement = disp;
    info->ent_reg_cost = ent_reg;
    info->value = disp - ent_reg;
    info->eps = eps;
    info->error = deb ? fmax(si.error, fmax(sxi.error, sti.error)) : si.error;
    info->n_iter = si.n_iter + (deb ? sxi.n_iter + sti.n_iter : 0);
    info->converged = si.converged && (!deb || (sxi.converged && sti.converged));
    monge_problem_shift(&pb, 0, eps, f, u);
    monge_problem_shift(&pb, 1, eps, g, h);
    if (grad_x) {
        /* (1/n) d1 c(x_i, t_i) - sum_j P_ij d1 c(x_i, t_j) */
        for (int64_t i = 0; i < n * d; i++) pg[i] /= (double)n;
        /* debiased: the subtracted divergence's x-gradient also has the self-term's part */
        if (deb) monge_problem_shift(&pxx, 0, eps, px, us);
        st = grad_pair(w, 0, u, h, deb ? wxx : NULL, us, tmp, grad_x, n, d, eps, nth);
        if (st) goto done;
        for (int64_t i = 0; i < n * d; i++) grad_x[i] = pg[i] - grad_x[i];
    }
    if (grad_t) {
        /* (1/n) d2 c(x_j, t_j) - sum_i P_ij d2 c(x_i, t_j), with d2 c(x, t) = d1 c(t, x) */
        st = monge_geom_paired(ws, pc, pg, nth);
        if (st) goto done;
        if (deb) monge_problem_shift(&ptt, 0, eps, pt, us);
        st = grad_pair(w, 1, h, u, deb ? wtt : NULL, us, tmp, grad_t, n, d, eps, nth);
        if (st) goto done;
        for (int64_t i = 0; i < n * d; i++) grad_t[i] = pg[i] / (double)n - grad_t[i];
    }
    /* finite inputs can still overflow (costs beyond the double range): say so, never return an
     * infinite or NaN value as a result */
    if (!isfinite(info->value) || !finite_all(grad_t, n * d) || !finite_all(grad_x, n * d)) {
        st = MONGE_ENONFINITE;
        goto done;
    }
    st = info->converged ? MONGE_OK : MONGE_ENOCONV;
done:
    monge_geom_release(w);
    monge_geom_release(ws);
    monge_geom_release(wxx);
    monge_geom_release(wtt);
    free(f);
    free(g);
    free(u);
    free(h);
    free(pc);
    free(pg);
    free(px);
    free(pt);
    free(us);
    free(tmp);
    free(Cd);
    free(Cxx);
    free(Ctt);
    return st;
}
