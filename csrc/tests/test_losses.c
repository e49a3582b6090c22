/* C unit tests of the losses: Sinkhorn divergence and Monge gap, values and gradients against
 * central finite differences, for every cost (run under ASan + UBSan by `make test`). */
#include "../monge.h"
#include "../internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { N = 23, M = 17, D = 3 };

static double div_value(double *x, double *y, double *a, double *b, monge_cost cost, double tau,
                        monge_divergence_params *par)
{
    monge_geometry g = {.n = N, .m = M, .dtype = MONGE_F64, .x = x, .y = y, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_problem pb = {.geom = &g, .a = a, .b = b, .tau_a = tau, .tau_b = tau};
    monge_divergence_info info;
    monge_sinkhorn_divergence(&pb, par, NULL, NULL, NULL, NULL, &info);
    return info.value;
}

static void test_divergence(monge_cost cost, double tau)
{
    double x[N * D], y[M * D], a[N], b[M], gx[N * D], gy[M * D], ga[N], gb[M];
    for (int i = 0; i < N * D; i++) x[i] = urand() + 0.1;
    for (int i = 0; i < M * D; i++) y[i] = urand() + 0.4;
    double sa = 0, sb = 0;
    for (int i = 0; i < N; i++) sa += (a[i] = urand() + 0.2);
    for (int j = 0; j < M; j++) sb += (b[j] = urand() + 0.2);
    for (int i = 0; i < N; i++) a[i] /= sa;
    for (int j = 0; j < M; j++) b[j] /= sb * (isinf(tau) ? 1.0 : 1.3);
    monge_divergence_params par;
    monge_divergence_params_init(&par);
    par.sk.eps = 0.1;
    par.sk.tol = 1e-13;
    monge_geometry g = {.n = N, .m = M, .dtype = MONGE_F64, .x = x, .y = y, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_problem pb = {.geom = &g, .a = a, .b = b, .tau_a = tau, .tau_b = tau};
    monge_divergence_info info;
    int st = monge_sinkhorn_divergence(&pb, &par, gx, gy, ga, gb, &info);
    CHECK(st == MONGE_OK && info.value > 0, "cost %d tau %g: status %d value %g", cost, tau, st,
          info.value);
    /* finite differences on a few coordinates */
    const double hstep = 1e-5;
    for (int t = 0; t < 3; t++) {
        int i = (7 * t + 2) % (N * D);
        double keep = x[i];
        x[i] = keep + hstep;
        double vp = div_value(x, y, a, b, cost, tau, &par);
        x[i] = keep - hstep;
        double vm = div_value(x, y, a, b, cost, tau, &par);
        x[i] = keep;
        double fd = (vp - vm) / (2 * hstep);
        CHECK(fabs(fd - gx[i]) < 1e-7 + 1e-6 * fabs(fd), "cost %d tau %g grad_x[%d] %.10g vs fd %.10g",
              cost, tau, i, gx[i], fd);
        int j = (5 * t + 1) % (M * D);
        keep = y[j];
        y[j] = keep + hstep;
        vp = div_value(x, y, a, b, cost, tau, &par);
        y[j] = keep - hstep;
        vm = div_value(x, y, a, b, cost, tau, &par);
        y[j] = keep;
        fd = (vp - vm) / (2 * hstep);
        CHECK(fabs(fd - gy[j]) < 1e-7 + 1e-6 * fabs(fd), "cost %d tau %g grad_y[%d] %.10g vs fd %.10g",
              cost, tau, j, gy[j], fd);
    }
    /* weights: balanced problems need a mass-preserving direction; unbalanced ones any */
    {
        double da[N];
        for (int i = 0; i < N; i++) da[i] = (i % 3) - 1.0;
        if (isinf(tau)) {
            double s = 0;
            for (int i = 0; i < N; i++) s += da[i];
            for (int i = 0; i < N; i++) da[i] -= s / N;
        }
        double ap[N], am[N], dot = 0;
        for (int i = 0; i < N; i++) {
            ap[i] = a[i] + hstep * da[i] * 0.01;
            am[i] = a[i] - hstep * da[i] * 0.01;
            dot += ga[i] * da[i] * 0.01;
        }
        double fd = (div_value(x, y, ap, b, cost, tau, &par) - div_value(x, y, am, b, cost, tau, &par)) /
                    (2 * hstep);
        CHECK(fabs(fd - dot) < 1e-7 + 1e-6 * fabs(fd), "cost %d tau %g grad_a.da %.10g vs fd %.10g",
              cost, tau, dot, fd);
    }
    /* S(x, x) = 0 */
    monge_geometry gs = g;
    gs.m = N;
    gs.y = x;
    monge_problem ps = {.geom = &gs, .a = a, .b = a, .tau_a = tau, .tau_b = tau};
    monge_sinkhorn_divergence(&ps, &par, NULL, NULL, NULL, NULL, &info);
    CHECK(fabs(info.value) < 1e-10, "cost %d: S(x, x) = %g", cost, info.value);
    /* dense = online */
    par.dense = 1;
    double vd = div_value(x, y, a, b, cost, tau, &par);
    par.dense = 0;
    double vo = div_value(x, y, a, b, cost, tau, &par);
    CHECK(fabs(vd - vo) < 1e-12, "cost %d: dense %g vs online %g", cost, vd, vo);
}

static monge_gap_info gap_eval(double *x, double *t, monge_cost cost, const monge_gap_params *par)
{
    monge_geometry g = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = t, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_gap_info info;
    monge_monge_gap(&g, par, NULL, NULL, &info);
    return info;
}

/* central difference of the gap (or, with want_eps, of the eps it used) along coordinate z[i] */
static double gap_fd(double *x, double *t, double *z, int i, monge_cost cost,
                     const monge_gap_params *par, int want_eps, double hstep)
{
    double keep = z[i];
    z[i] = keep + hstep;
    monge_gap_info up = gap_eval(x, t, cost, par);
    z[i] = keep - hstep;
    monge_gap_info dn = gap_eval(x, t, cost, par);
    z[i] = keep;
    return want_eps ? (up.eps - dn.eps) / (2 * hstep) : (up.value - dn.value) / (2 * hstep);
}

/* The documented contract (tests/test_ott_reference.py: "OTT's gradients hold the data-derived eps
 * fixed, as ours do"): with a relative eps the gradient is that of the gap at the absolute eps the
 * data gave, without the d eps/dz term.  Checked against finite differences at that fixed eps, and
 * the full derivative (eps moving with the data) against gradient + dM/deps * deps/dz. */
static void test_monge_gap(monge_cost cost, monge_eps_mode mode, int debiased)
{
    double x[N * D], t[N * D], gt[N * D], gx[N * D];
    for (int i = 0; i < N * D; i++) x[i] = urand() - 0.5;
    for (int i = 0; i < N * D; i++) t[i] = 1.3 * x[(i + 1) % (N * D)] + 0.1 * urand() + 0.2;
    monge_gap_params par;
    monge_gap_params_init(&par);
    par.sk.eps = mode == MONGE_EPS_ABSOLUTE ? 0.1 : 0.2;
    par.sk.tol = 1e-13;
    par.eps_mode = mode;
    par.debiased = debiased;
    monge_geometry g = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = t, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_gap_info info;
    int st = monge_monge_gap(&g, &par, gt, gx, &info);
    CHECK(st == MONGE_OK && (debiased || info.value > -1e-12), "gap cost %d mode %d: status %d value %g",
          cost, mode, st, info.value);
    if (debiased) {
        /* M~ = displacement - S_eps(x, t), the divergence solved on its own at the same eps */
        monge_problem pb = {&g, NULL, NULL, INFINITY, INFINITY};
        monge_divergence_params dp;
        monge_divergence_params_init(&dp);
        dp.sk.eps = info.eps;
        dp.sk.tol = 1e-13;
        monge_divergence_info di;
        monge_sinkhorn_divergence(&pb, &dp, NULL, NULL, NULL, NULL, &di);
        CHECK(fabs(info.ent_reg_cost - di.value) < 1e-11 &&
                  fabs(info.value - (info.displacement - di.value)) < 1e-11,
              "debiased gap cost %d mode %d: %.14g vs displacement - S = %.14g", cost, mode,
              info.value, info.displacement - di.value);
        /* dense = online */
        monge_gap_params dn = par;
        dn.dense = 1;
        double vd = gap_eval(x, t, cost, &dn).value;
        CHECK(fabs(vd - info.value) < 1e-12, "debiased gap cost %d: dense %g vs online %g", cost, vd,
              info.value);
        /* zero at the identity map */
        monge_gap_params ab = par;
        ab.eps_mode = MONGE_EPS_ABSOLUTE;
        ab.sk.eps = info.eps;
        double v0 = gap_eval(x, x, cost, &ab).value;
        CHECK(fabs(v0) < 1e-10, "debiased gap cost %d: M~(id) = %g", cost, v0);
    }
    monge_gap_params fixed = par; /* the same problem at the absolute eps the data gave */
    fixed.eps_mode = MONGE_EPS_ABSOLUTE;
    fixed.sk.eps = info.eps;
    double dmde = 0.0; /* dM/deps at fixed data, for the chain rule of a relative eps */
    if (mode != MONGE_EPS_ABSOLUTE) {
        const double he = 1e-6 * info.eps;
        monge_gap_params shifted = fixed;
        shifted.sk.eps = info.eps + he;
        double up = gap_eval(x, t, cost, &shifted).value;
        shifted.sk.eps = info.eps - he;
        dmde = (up - gap_eval(x, t, cost, &shifted).value) / (2 * he);
    }
    const double hstep = 1e-5;
    double eps_term = 0.0; /* the largest |dM/deps * deps/dz| met: must be visible */
    for (int k = 0; k < 3; k++) {
        int i = (11 * k + 4) % (N * D);
        for (int w = 0; w < 2; w++) {
            double *z = w ? x : t, *gz = w ? gx : gt;
            const char *name = w ? "grad_x" : "grad_t";
            double fd = gap_fd(x, t, z, i, cost, &fixed, 0, hstep);
            CHECK(fabs(fd - gz[i]) < 1e-7 + 1e-6 * fabs(fd),
                  "gap cost %d mode %d %s[%d] %.10g vs fd at fixed eps %.10g", cost, mode, name, i,
                  gz[i], fd);
            if (mode == MONGE_EPS_ABSOLUTE) continue;
            double full = gap_fd(x, t, z, i, cost, &par, 0, hstep);
            double term = dmde * gap_fd(x, t, z, i, cost, &par, 1, hstep);
            CHECK(fabs(full - (gz[i] + term)) < 1e-7 + 1e-6 * fabs(full),
                  "gap cost %d mode %d %s[%d]: fd with eps moving %.10g vs grad + dM/deps deps/dz "
                  "%.10g", cost, mode, name, i, full, gz[i] + term);
            eps_term = fabs(term) > eps_term ? fabs(term) : eps_term;
        }
    }
    if (mode != MONGE_EPS_ABSOLUTE)
        CHECK(eps_term > 1e-4, "gap cost %d mode %d: the d eps/dz term (%g) is too small to tell the "
              "two derivatives apart", cost, mode, eps_term);
}

/* A batch reports its first hard error before any ENOCONV: a problem that wrote nothing must not
 * hide behind another that merely stopped at max_iter (the batched losses, Sinkhorn and emd). */
static void test_batch_status(void)
{
    const int ok[] = {MONGE_OK, MONGE_OK}, noconv[] = {MONGE_OK, MONGE_ENOCONV, MONGE_OK};
    const int stage[] = {MONGE_ENOCONV, MONGE_OK, MONGE_ESTAGE, MONGE_ENONFINITE};
    const int nonfinite[] = {MONGE_ENOCONV, MONGE_ENONFINITE};
    CHECK(monge_batch_status(2, ok) == MONGE_OK, "all OK");
    CHECK(monge_batch_status(0, ok) == MONGE_OK, "empty batch");
    CHECK(monge_batch_status(3, noconv) == MONGE_ENOCONV, "one ENOCONV");
    CHECK(monge_batch_status(4, stage) == MONGE_ESTAGE, "ESTAGE after ENOCONV: %d",
          monge_batch_status(4, stage));
    CHECK(monge_batch_status(2, nonfinite) == MONGE_ENONFINITE, "ENONFINITE after ENOCONV");
}

int main(void)
{
    rng_seed(0x9E3779B97F4A7C15ull);
    test_batch_status();
    const monge_cost costs[] = {MONGE_COST_SQEUCLIDEAN, MONGE_COST_EUCLIDEAN, MONGE_COST_PNORM,
                                MONGE_COST_COSINE, MONGE_COST_ELASTIC};
    for (int c = 0; c < 5; c++) {
        test_divergence(costs[c], INFINITY);
        test_divergence(costs[c], 0.5);
        for (int deb = 0; deb < 2; deb++) {
            test_monge_gap(costs[c], MONGE_EPS_ABSOLUTE, deb);
            test_monge_gap(costs[c], MONGE_EPS_STD, deb);
            test_monge_gap(costs[c], MONGE_EPS_MEAN, deb);
        }
    }
    return REPORT();
}
