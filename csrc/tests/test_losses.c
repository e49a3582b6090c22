/* C unit tests of the losses: Sinkhorn divergence and Monge gap, values and gradients against
 * central finite differences, for every cost (run under ASan + UBSan by `make test`). */
#include "../monge.h"

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

static double gap_value(double *x, double *t, monge_cost cost, monge_gap_params *par)
{
    monge_geometry g = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = t, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_gap_info info;
    monge_monge_gap(&g, par, NULL, NULL, &info);
    return info.value;
}

static void test_monge_gap(monge_cost cost, monge_eps_mode mode)
{
    double x[N * D], t[N * D], gt[N * D], gx[N * D];
    for (int i = 0; i < N * D; i++) x[i] = urand() - 0.5;
    for (int i = 0; i < N * D; i++) t[i] = 1.3 * x[(i + 1) % (N * D)] + 0.1 * urand() + 0.2;
    monge_gap_params par;
    monge_gap_params_init(&par);
    par.sk.eps = mode == MONGE_EPS_ABSOLUTE ? 0.1 : 0.2;
    par.sk.tol = 1e-13;
    par.eps_mode = mode;
    monge_geometry g = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = t, .d = D, .cost = cost,
                        .p = 1.5, .lam = 0.7};
    monge_gap_info info;
    int st = monge_monge_gap(&g, &par, gt, gx, &info);
    CHECK(st == MONGE_OK && info.value > -1e-12, "gap cost %d: status %d value %g", cost, st, info.value);
    const double hstep = 1e-5;
    for (int k = 0; k < 3; k++) {
        int i = (11 * k + 4) % (N * D);
        double keep = t[i];
        t[i] = keep + hstep;
        double vp = gap_value(x, t, cost, &par);
        t[i] = keep - hstep;
        double vm = gap_value(x, t, cost, &par);
        t[i] = keep;
        double fd = (vp - vm) / (2 * hstep);
        /* with a relative eps, eps itself moves with t: the envelope gradient treats eps as fixed */
        if (mode == MONGE_EPS_ABSOLUTE)
            CHECK(fabs(fd - gt[i]) < 1e-7 + 1e-6 * fabs(fd), "gap cost %d grad_t[%d] %.10g vs fd %.10g",
                  cost, i, gt[i], fd);
        keep = x[i];
        x[i] = keep + hstep;
        vp = gap_value(x, t, cost, &par);
        x[i] = keep - hstep;
        vm = gap_value(x, t, cost, &par);
        x[i] = keep;
        fd = (vp - vm) / (2 * hstep);
        if (mode == MONGE_EPS_ABSOLUTE)
            CHECK(fabs(fd - gx[i]) < 1e-7 + 1e-6 * fabs(fd), "gap cost %d grad_x[%d] %.10g vs fd %.10g",
                  cost, i, gx[i], fd);
    }
}

int main(void)
{
    rng_seed(0x9E3779B97F4A7C15ull);
    const monge_cost costs[] = {MONGE_COST_SQEUCLIDEAN, MONGE_COST_EUCLIDEAN, MONGE_COST_PNORM,
                                MONGE_COST_COSINE, MONGE_COST_ELASTIC};
    for (int c = 0; c < 5; c++) {
        test_divergence(costs[c], INFINITY);
        test_divergence(costs[c], 0.5);
        test_monge_gap(costs[c], MONGE_EPS_ABSOLUTE);
        test_monge_gap(costs[c], MONGE_EPS_STD);
    }
    return REPORT();
}
