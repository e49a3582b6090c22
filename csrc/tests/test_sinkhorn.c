/* C unit tests of the geometry and Sinkhorn layers (run under AddressSanitizer + UBSan by
 * `make test`).  Each CHECK prints what failed; the exit code is the number of failures. */
#include "../monge.h"
#include "../anderson.h"
#include "../internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void points(double *p, int64_t cnt, int64_t d, double shift)
{
    for (int64_t i = 0; i < cnt * d; i++) p[i] = urand() + shift;
}

static double sqdist(const double *x, const double *y, int64_t d)
{
    double s = 0;
    for (int64_t k = 0; k < d; k++) s += (x[k] - y[k]) * (x[k] - y[k]);
    return s;
}

/* marginal violation of a dense plan */
static double marg_err(const double *P, const double *a, const double *b, int64_t n, int64_t m)
{
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < m; j++) s += P[i * m + j];
        e += fabs(s - a[i]);
    }
    for (int64_t j = 0; j < m; j++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += P[i * m + j];
        e += fabs(s - b[j]);
    }
    return e;
}

static void test_balanced(void)
{
    const int64_t n = 70, m = 53, d = 3;
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * m * d);
    double *C = malloc(sizeof(double) * n * m), *P = malloc(sizeof(double) * n * m);
    double a[70], b[53], f[70], g[53], f2[70], g2[53];
    points(x, n, d, 0);
    points(y, m, d, 0.3);
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) sa += (a[i] = 0.5 + urand());
    for (int64_t j = 0; j < m; j++) sb += (b[j] = 0.5 + urand());
    for (int64_t i = 0; i < n; i++) a[i] /= sa;
    for (int64_t j = 0; j < m; j++) b[j] /= sb;
    a[3] = 0; /* a zero weight must be harmless */
    sa = 0;
    for (int64_t i = 0; i < n; i++) sa += a[i];
    for (int64_t i = 0; i < n; i++) a[i] /= sa;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) C[i * m + j] = sqdist(x + i * d, y + j * d, d);

    monge_geometry dense = {.n = n, .m = m, .dtype = MONGE_F64, .C = C};
    monge_geometry online = {.n = n, .m = m, .dtype = MONGE_F64, .x = x, .y = y, .d = d,
                             .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pd = {.geom = &dense, .a = a, .b = b, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_problem po = pd;
    po.geom = &online;
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 0.01;
    par.tol = 1e-10;
    par.kernel = 0; /* the geometry layer is compared path for path (the cache: test_kernel_path) */
    monge_sinkhorn_info info, info2;
    int st = monge_sinkhorn(&pd, &par, f, g, &info);
    CHECK(st == MONGE_OK && info.converged, "dense solve: status %d converged %d", st, info.converged);
    CHECK(info.error <= 1e-10, "reported error %g", info.error);
    st = monge_sinkhorn_plan(&pd, par.eps, f, g, P, 0);
    CHECK(st == MONGE_OK, "plan status %d", st);
    double e = marg_err(P, a, b, n, m);
    CHECK(e <= 2e-10, "marginal error of the plan %g", e);
    double cost = 0, kl = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double p = P[i * m + j];
            cost += p * C[i * m + j];
            if (p > 0) kl += p * log(p / (a[i] * b[j])) - p + a[i] * b[j];
        }
    CHECK(fabs(info.cost - cost) <= 1e-10, "cost %g vs %g", info.cost, cost);
    CHECK(fabs(info.value - (cost + par.eps * kl)) <= 1e-9, "value %.12g vs primal %.12g",
          info.value, cost + par.eps * kl);

    /* online = dense */
    st = monge_sinkhorn(&po, &par, f2, g2, &info2);
    double df = 0;
    for (int64_t i = 0; i < n; i++) df = fmax(df, fabs(f[i] - f2[i]));
    CHECK(st == MONGE_OK && df < 1e-9 && info2.n_iter == info.n_iter,
          "online vs dense: status %d, max|df| %g, iters %lld vs %lld", st, df,
          (long long)info2.n_iter, (long long)info.n_iter);

    /* P^T v without storing P equals the dense product, on both geometries */
    double v[70], out[53], ref[53];
    for (int64_t i = 0; i < n; i++) v[i] = urand();
    for (int64_t j = 0; j < m; j++) {
        ref[j] = 0;
        for (int64_t i = 0; i < n; i++) ref[j] += P[i * m + j] * v[i];
    }
    for (int geo = 0; geo < 2; geo++) {
        st = monge_sinkhorn_apply(geo ? &po : &pd, par.eps, f, g, 1, v, 1, out, 0);
        double dd = 0;
        for (int64_t j = 0; j < m; j++) dd = fmax(dd, fabs(out[j] - ref[j]));
        CHECK(st == MONGE_OK && dd < 1e-14, "P^T v (geometry %d): %g", geo, dd);
    }

    /* thread count does not change a single bit */
    par.nthreads = 1;
    monge_sinkhorn(&po, &par, f2, g2, &info2);
    double f1t[70];
    memcpy(f1t, f2, sizeof f1t);
    par.nthreads = 2;
    monge_sinkhorn(&po, &par, f2, g2, &info2);
    CHECK(memcmp(f1t, f2, sizeof f1t) == 0, "1 vs 2 threads differ");
    par.nthreads = 0;

    /* epsilon-scaling converges to the same potentials (up to the constant shift) */
    par.eps_scaling = 1;
    par.eps = 1e-3;
    st = monge_sinkhorn(&pd, &par, f2, g2, &info2);
    par.eps_scaling = 0;
    double fs[70], gs[53];
    int st2 = monge_sinkhorn(&pd, &par, fs, gs, &info);
    double sh = f2[0] - fs[0], dmax = 0;
    for (int64_t i = 0; i < n; i++)
        if (a[i] > 0) dmax = fmax(dmax, fabs(f2[i] - fs[i] - sh));
    CHECK(st == MONGE_OK && st2 == MONGE_OK && dmax < 1e-7,
          "eps-scaling vs plain at eps=1e-3: %d %d, %g (iters %lld vs %lld)", st, st2, dmax,
          (long long)info2.n_iter, (long long)info.n_iter);
    free(x);
    free(y);
    free(C);
    free(P);
}

static void test_float32_and_batch(void)
{
    enum { B = 5, n = 40, m = 31, d = 2 };
    double x[B * n * d], y[B * m * d], f[B * n], g[B * m], f1[n], g1[m];
    float xf[n * d], yf[m * d];
    points(x, B * n, d, 0);
    points(y, B * m, d, 0.2);
    monge_geometry geo[B];
    monge_problem pb[B];
    for (int k = 0; k < B; k++) {
        geo[k] = (monge_geometry){.n = n, .m = m, .dtype = MONGE_F64, .x = x + k * n * d,
                                  .y = y + k * m * d, .d = d, .cost = MONGE_COST_EUCLIDEAN};
        pb[k] = (monge_problem){.geom = &geo[k], .tau_a = INFINITY, .tau_b = INFINITY};
    }
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 0.05;
    par.tol = 1e-9;
    monge_sinkhorn_info info[B], one;
    int status[B];
    int st = monge_sinkhorn_batch(B, pb, &par, f, g, info, status);
    CHECK(st == MONGE_OK, "batch status %d", st);
    for (int k = 0; k < B; k++) {
        monge_sinkhorn(&pb[k], &par, f1, g1, &one);
        CHECK(memcmp(f1, f + k * n, sizeof f1) == 0 && one.value == info[k].value,
              "batch item %d differs from a single solve", k);
    }
    for (int i = 0; i < n * d; i++) xf[i] = (float)x[i];
    for (int i = 0; i < m * d; i++) yf[i] = (float)y[i];
    monge_geometry g32 = geo[0];
    g32.dtype = MONGE_F32;
    g32.x = xf;
    g32.y = yf;
    monge_problem p32 = pb[0];
    p32.geom = &g32;
    par.tol = 1e-5;
    st = monge_sinkhorn(&p32, &par, f1, g1, &one);
    CHECK(st == MONGE_OK, "float32 status %d", st);
    CHECK(fabs(one.value - info[0].value) < 1e-5, "float32 value %.9g vs float64 %.9g", one.value,
          info[0].value);
}

static void test_unbalanced(void)
{
    enum { n = 30, m = 45, d = 2 };
    double x[n * d], y[m * d], f[n], g[m], a[n], b[m], P[n * m];
    points(x, n, d, 0);
    points(y, m, d, 0.5);
    for (int i = 0; i < n; i++) a[i] = 2.0 / n; /* masses 2 and 1 */
    for (int j = 0; j < m; j++) b[j] = 1.0 / m;
    monge_geometry geo = {.n = n, .m = m, .dtype = MONGE_F64, .x = x, .y = y, .d = d,
                          .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pb = {.geom = &geo, .a = a, .b = b, .tau_a = 0.5, .tau_b = 2.0};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 0.05;
    par.tol = 1e-11;
    monge_sinkhorn_info info;
    int st = monge_sinkhorn(&pb, &par, f, g, &info);
    CHECK(st == MONGE_OK, "unbalanced status %d", st);
    monge_sinkhorn_plan(&pb, par.eps, f, g, P, 0);
    /* KKT: (P1)_i = a_i exp(-f_i / tau_a) */
    double e = 0;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < m; j++) s += P[i * m + j];
        e += fabs(s - a[i] * exp(-f[i] / pb.tau_a));
    }
    for (int j = 0; j < m; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += P[i * m + j];
        e += fabs(s - b[j] * exp(-g[j] / pb.tau_b));
    }
    CHECK(e < 1e-10, "unbalanced KKT violation %g", e);
    /* primal = dual at the optimum */
    double primal = 0, ra[n] = {0}, cb[m] = {0}, mp = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            double p = P[i * m + j], c = sqdist(x + i * d, y + j * d, d);
            primal += p * c + par.eps * (p * log(p / (a[i] * b[j])) - p + a[i] * b[j]);
            ra[i] += p;
            cb[j] += p;
            mp += p;
        }
    for (int i = 0; i < n; i++) primal += pb.tau_a * (ra[i] * log(ra[i] / a[i]) - ra[i] + a[i]);
    for (int j = 0; j < m; j++) primal += pb.tau_b * (cb[j] * log(cb[j] / b[j]) - cb[j] + b[j]);
    CHECK(fabs(primal - info.value) < 1e-9, "unbalanced primal %.12g vs dual %.12g", primal,
          info.value);
    CHECK(fabs(mp - info.mass) < 1e-12, "mass %g vs %g", mp, info.mass);
}

static int stop_after_3(void *ctx, int64_t it, double err)
{
    (void)err;
    *(int64_t *)ctx = it;
    return it >= 3;
}

static void test_errors(void)
{
    double C[6] = {0, 1, 2, 1, 0, 1}, a[2] = {0.5, 0.5}, b[3] = {0.2, 0.3, 0.4}, f[2], g[3];
    monge_geometry geo = {.n = 2, .m = 3, .dtype = MONGE_F64, .C = C};
    monge_problem pb = {.geom = &geo, .a = a, .b = b, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    monge_sinkhorn_info info;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_EINVAL, "unequal masses accepted");
    b[2] = 0.5;
    par.eps = -1;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_EINVAL, "eps < 0 accepted");
    par.eps = 1e-3;
    a[0] = NAN;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_EINVAL, "NaN weight accepted");
    a[0] = 0.5;
    geo.n = 0;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_EINVAL, "empty problem accepted");
    geo.n = 2;
    par.max_iter = 2;
    par.tol = 0;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_ENOCONV && !info.converged &&
              info.n_iter == 2,
          "iteration cap not reported: n_iter %lld", (long long)info.n_iter);
    par.max_iter = 1000;
    int64_t seen = -1;
    par.progress = stop_after_3;
    par.progress_ctx = &seen;
    CHECK(monge_sinkhorn(&pb, &par, f, g, &info) == MONGE_EINTR && seen == 3,
          "callback cancel: seen %lld", (long long)seen);
    CHECK(strcmp(monge_status_str(MONGE_ENOCONV), "did not converge within the iteration limit") == 0,
          "status text");
    /* a zero vector is invalid for the cosine cost */
    double x[4] = {0, 0, 1, 1}, y[2] = {1, 0};
    monge_geometry cg = {.n = 2, .m = 1, .dtype = MONGE_F64, .x = x, .y = y, .d = 2,
                         .cost = MONGE_COST_COSINE};
    monge_geom_work *w = NULL;
    CHECK(monge_geom_prepare(&cg, 1, &w) == MONGE_EINVAL && w == NULL, "zero cosine vector accepted");
}

/* The kernel-domain fast path (float cache, fused pass): same fixed point as the log domain to
 * within the tolerance, marginals met in double, independent of the thread count, unbalanced too,
 * and it gives way by itself at an eps too small for it. */
static double plan_l1_error(const double *C, const double *a, const double *b, const double *f,
                            const double *g, int64_t n, int64_t m, double eps, double tau)
{
    double e = 0, *cs = calloc((size_t)m, sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double rs = 0;
        for (int64_t j = 0; j < m; j++) {
            const double p = a[i] * b[j] * exp((f[i] + g[j] - C[i * m + j]) / eps);
            rs += p;
            cs[j] += p;
        }
        e += fabs(rs - a[i] * (isinf(tau) ? 1.0 : exp(-f[i] / tau)));
    }
    for (int64_t j = 0; j < m; j++) e += fabs(cs[j] - b[j] * (isinf(tau) ? 1.0 : exp(-g[j] / tau)));
    free(cs);
    return e;
}

/* Uniform weights and squared-distance costs between x uniform on the unit square and y either the
 * same moved by 0.2 (blob = 0) or a blob in the middle of the square (blob = 1: the data of
 * benchmarks/sinkhorn.py's case 2). */
static void dense_problem(int64_t n, int64_t m, int blob, double *C, double *a, double *b)
{
    double *x = malloc(sizeof(double) * (size_t)n * 2), *y = malloc(sizeof(double) * (size_t)m * 2);
    points(x, n, 2, 0);
    if (blob)
        for (int64_t j = 0; j < m * 2; j++) y[j] = 0.5 + 0.15 * (urand() + urand() + urand() - 1.5);
    else
        points(y, m, 2, 0.2);
    for (int64_t i = 0; i < n; i++) a[i] = 1.0 / (double)n;
    for (int64_t j = 0; j < m; j++) b[j] = 1.0 / (double)m;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) C[i * m + j] = sqdist(x + 2 * i, y + 2 * j, 2);
    free(x);
    free(y);
}

/* max |f1 - f0| and |g1 - g0| */
static double max_pot_diff(const double *f1, const double *f0, const double *g1, const double *g0,
                           int64_t n, int64_t m)
{
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs(f1[i] - f0[i]));
    for (int64_t j = 0; j < m; j++) d = fmax(d, fabs(g1[j] - g0[j]));
    return d;
}

static void test_kernel_path(void)
{
    enum { N = 300, M = 240 };
    double *C = malloc(sizeof(double) * N * M);
    double a[N], b[M], f0[N], g0[M], f1[N], g1[M], f2[N], g2[M];
    dense_problem(N, M, 0, C, a, b);
    monge_geometry dense = {.n = N, .m = M, .dtype = MONGE_F64, .C = C};
    const double taus[2] = {INFINITY, 0.5};
    for (int t = 0; t < 2; t++) {
        monge_problem pb = {.geom = &dense, .a = a, .b = b, .tau_a = taus[t], .tau_b = taus[t]};
        monge_sinkhorn_params par;
        monge_sinkhorn_params_init(&par);
        par.eps = 0.01;
        par.tol = 1e-9;
        monge_sinkhorn_info i0, i1, i2;
        par.kernel = 0;
        int s0 = monge_sinkhorn(&pb, &par, f0, g0, &i0);
        par.kernel = 1;
        par.nthreads = 1;
        int s1 = monge_sinkhorn(&pb, &par, f1, g1, &i1);
        par.nthreads = 2;
        int s2 = monge_sinkhorn(&pb, &par, f2, g2, &i2);
        CHECK(s0 == MONGE_OK && s1 == MONGE_OK && s2 == MONGE_OK, "kernel path (tau %g): status %d %d %d",
              taus[t], s0, s1, s2);
        const double df = max_pot_diff(f1, f0, g1, g0, N, M);
        const double e1 = plan_l1_error(C, a, b, f1, g1, N, M, par.eps, taus[t]);
        CHECK(e1 <= par.tol, "kernel path (tau %g): marginal error in double %g > tol", taus[t], e1);
        CHECK(df < 1e-8, "kernel vs log domain (tau %g): max |df| %g", taus[t], df);
        CHECK(fabs(i1.value - i0.value) < 1e-10, "kernel vs log value %.15g vs %.15g", i1.value, i0.value);
        CHECK(i0.kernel_iter == 0 && i1.kernel_iter > 0 && i1.kernel_iter == i2.kernel_iter,
              "kernel iterations: %lld (off), %lld, %lld", (long long)i0.kernel_iter,
              (long long)i1.kernel_iter, (long long)i2.kernel_iter);
        printf("kernel path (tau %g): %lld of %lld iterations on the cache (log domain alone: %lld)\n",
               taus[t], (long long)i1.kernel_iter, (long long)i1.n_iter, (long long)i0.n_iter);
        CHECK(memcmp(f1, f2, sizeof f1) == 0 && memcmp(g1, g2, sizeof g1) == 0,
              "kernel path (tau %g): 1 vs 2 threads differ", taus[t]);
    }
    /* eps = 1e-4 of the max cost: the cache gives way, the log domain converges */
    {
        monge_problem pb = {.geom = &dense, .a = a, .b = b, .tau_a = INFINITY, .tau_b = INFINITY};
        monge_sinkhorn_params par;
        monge_sinkhorn_params_init(&par);
        par.eps = 2e-4;
        par.tol = 1e-6;
        par.eps_scaling = 2;
        monge_sinkhorn_info i1;
        int s1 = monge_sinkhorn(&pb, &par, f1, g1, &i1);
        const double e1 = plan_l1_error(C, a, b, f1, g1, N, M, par.eps, INFINITY);
        CHECK(s1 == MONGE_OK && e1 <= par.tol, "small eps with the cache: status %d error %g", s1, e1);
        printf("small eps: %lld of %lld iterations on the cache\n", (long long)i1.kernel_iter,
               (long long)i1.n_iter);
    }
    free(C);
}

/* Anderson acceleration (the default with overrelax 0) against the adaptive over-relaxation: the
 * same potentials, fewer iterations; a fixed omega turns it off; translations, whose first
 * extrapolations overshoot (csrc/sinkhorn/accel.c), still converge to tol. */
static void test_anderson(void)
{
    enum { N = 300, M = 240 };
    double *C = malloc(sizeof(double) * N * M);
    double a[N], b[M], f0[N], g0[M], f1[N], g1[M];
    dense_problem(N, M, 1, C, a, b);
    monge_geometry dense = {.n = N, .m = M, .dtype = MONGE_F64, .C = C};
    const double taus[2] = {INFINITY, 0.5};
    for (int t = 0; t < 2; t++) {
        monge_problem pb = {.geom = &dense, .a = a, .b = b, .tau_a = taus[t], .tau_b = taus[t]};
        monge_sinkhorn_params par;
        monge_sinkhorn_params_init(&par);
        par.eps = 0.005;
        par.tol = 1e-9;
        par.kernel = 0;
        monge_sinkhorn_info i0, i1;
        par.anderson = 0;
        int s0 = monge_sinkhorn(&pb, &par, f0, g0, &i0);
        par.anderson = 8;
        int s1 = monge_sinkhorn(&pb, &par, f1, g1, &i1);
        const double df = max_pot_diff(f1, f0, g1, g0, N, M);
        const double e1 = plan_l1_error(C, a, b, f1, g1, N, M, par.eps, taus[t]);
        CHECK(s0 == MONGE_OK && s1 == MONGE_OK && e1 <= par.tol && df < 1e-8,
              "anderson (tau %g): status %d %d, error %g, max |df| %g vs over-relaxation", taus[t],
              s0, s1, e1, df);
        CHECK(i0.anderson_iter == 0 && i1.anderson_iter > 0 && i1.n_iter < i0.n_iter,
              "anderson (tau %g): %lld iterations (%lld extrapolated) vs %lld over-relaxed", taus[t],
              (long long)i1.n_iter, (long long)i1.anderson_iter, (long long)i0.n_iter);
        printf("anderson (tau %g): %lld iterations (%lld extrapolated); over-relaxation: %lld\n",
               taus[t], (long long)i1.n_iter, (long long)i1.anderson_iter, (long long)i0.n_iter);
        par.overrelax = 1.5; /* a fixed omega: no Anderson */
        s1 = monge_sinkhorn(&pb, &par, f1, g1, &i1);
        CHECK(s1 == MONGE_OK && i1.anderson_iter == 0, "fixed omega: status %d, %lld extrapolated",
              s1, (long long)i1.anderson_iter);
        par.overrelax = 0;
        par.anderson = MONGE_AA_MAX_MEM + 1;
        CHECK(monge_sinkhorn(&pb, &par, f1, g1, &i1) == MONGE_EINVAL, "anderson > %d accepted",
              MONGE_AA_MAX_MEM);
    }
    /* translations (y = x + shift) at small eps, 24 instances: the first extrapolations
       overshoot (errors up 10x to 3000x), are kept, and the solve recovers.  Each converges to a
       plan within tol; over the family Anderson takes fewer iterations than the over-relaxation
       alone (measured: 2861 vs 10735). */
    {
        enum { KMAX = 60 };
        static const struct { int k; double shift, eps; } cfg[3] = {{40, 1.0, 0.01}, {60, 1.0, 0.01}, {40, 2.0, 0.02}};
        double xs[KMAX * 2], ys[KMAX * 2], Ct[KMAX * KMAX], at[KMAX], ft[KMAX], gt[KMAX];
        long long tot_aa = 0, tot_om = 0;
        int ok = 1;
        for (int rep = 0; rep < 8; rep++)
            for (int c = 0; c < 3; c++) {
                const int K = cfg[c].k;
                points(xs, K, 2, 0);
                for (int i = 0; i < K * 2; i++) ys[i] = xs[i] + cfg[c].shift;
                for (int i = 0; i < K; i++) at[i] = 1.0 / K;
                for (int i = 0; i < K; i++)
                    for (int j = 0; j < K; j++) Ct[i * K + j] = sqdist(xs + 2 * i, ys + 2 * j, 2);
                monge_geometry gt_dense = {.n = K, .m = K, .dtype = MONGE_F64, .C = Ct};
                monge_problem pb = {.geom = &gt_dense, .a = at, .b = at, .tau_a = INFINITY, .tau_b = INFINITY};
                monge_sinkhorn_params par;
                monge_sinkhorn_params_init(&par);
                par.eps = cfg[c].eps;
                par.tol = 1e-8;
                monge_sinkhorn_info it, io;
                const int st = monge_sinkhorn(&pb, &par, ft, gt, &it);
                const double e = plan_l1_error(Ct, at, at, ft, gt, K, K, par.eps, INFINITY);
                par.anderson = 0;
                const int so = monge_sinkhorn(&pb, &par, ft, gt, &io);
                if (!(st == MONGE_OK && so == MONGE_OK && e <= par.tol)) ok = 0;
                tot_aa += it.n_iter;
                tot_om += io.n_iter;
            }
        CHECK(ok, "a translation did not converge");
        CHECK(tot_aa < tot_om, "translations: %lld iterations with Anderson, %lld with the "
              "over-relaxation alone", tot_aa, tot_om);
        printf("translations: %lld iterations (over-relaxation alone: %lld)\n", tot_aa, tot_om);
    }
    free(C);
}

/* found by libFuzzer: costs near the double range with a huge eps gave finite iterates, then the
 * gauge sum and the value overflowed while the status said OK.  Now: finite potentials and either
 * a finite value or MONGE_ENONFINITE, never OK with inf. */
static void test_overflow_on_exit(void)
{
    double x[4] = {1e12, 1e12, 1.7e308, 0}, y[4] = {0, 1e12, 1e12, 1e12};
    double a[4] = {4, 4, 4, 4}, b[4] = {4, 4, 4, 4}, f[4], g[4];
    monge_geometry geo = {4, 4, MONGE_F64, NULL, x, y, 1, MONGE_COST_PNORM, 1.0, 0.0};
    monge_problem pb = {&geo, a, b, INFINITY, INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 1e300;
    par.eps_scaling = 0;
    par.max_iter = 13;
    monge_sinkhorn_info info;
    int st = monge_sinkhorn(&pb, &par, f, g, &info);
    CHECK(st == MONGE_ENONFINITE, "overflowing value: status %d (value %g)", st, info.value);
    int fin = 1;
    for (int k = 0; k < 4; k++) fin &= isfinite(f[k]) && isfinite(g[k]);
    CHECK(fin, "the gauge shift overflowed the potentials");
    /* the same cloud without the 1.7e308 point solves normally */
    x[2] = 1e12;
    st = monge_sinkhorn(&pb, &par, f, g, &info);
    CHECK(st == MONGE_OK && isfinite(info.value), "rescaled problem: status %d value %g", st, info.value);
}

/* The multiscale solver against the exact online solve, its bound against the skipped mass, the
 * post-solve passes, thread independence and bad input. */
static void test_multiscale(void)
{
    enum { N = 400, M = 300, D = 2 };
    static double x[N * D], y[M * D], f[N], g[M], f2[N], g2[M], f1[N], rs[N], P[N * M];
    for (int i = 0; i < N * D; i++) x[i] = urand();
    for (int j = 0; j < M * D; j++) y[j] = urand() + 0.2;
    monge_geometry geo = {.n = N, .m = M, .dtype = MONGE_F64, .x = x, .y = y, .d = D,
                          .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pb = {.geom = &geo, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 5e-3;
    par.tol = 1e-9;
    par.scaling_factor = 0.5;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    monge_sinkhorn_info info, einfo;
    monge_ms_info mi;
    int st2;
    int st = monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
    CHECK(st == MONGE_OK && info.converged && info.error <= 1e-9, "multiscale: status %d err %g", st,
          info.error);
    CHECK(mi.kept_entries < (int64_t)N * M && mi.levels >= 2, "kept %lld levels %d",
          (long long)mi.kept_entries, mi.levels);
    par.eps_scaling = MONGE_EPS_SCALING_AUTO;
    par.tol = 1e-11;
    st = monge_sinkhorn(&pb, &par, f2, g2, &einfo);
    double df = 0;
    for (int i = 0; i < N; i++) df = fmax(df, fabs(f[i] - f2[i]));
    CHECK(st == MONGE_OK && df < 1e-8 && fabs(info.value - einfo.value) < 1e-10,
          "multiscale vs exact: |df| %g values %.12g %.12g", df, info.value, einfo.value);
    /* the solve's own point gradients against the dense plan's sum_j P_ij 2 (x_i - y_j) */
    static double gx[N * D], gy[M * D];
    st = monge_sinkhorn_multiscale_grad(&pb, &par, &mp, f, g, gx, gy, &info, &mi);
    CHECK(st == MONGE_OK, "multiscale grad: status %d", st);
    st = monge_sinkhorn_plan(&pb, par.eps, f, g, P, 0);
    double gerr = 0, gmax = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k < D; k++) {
            double r = 0;
            for (int j = 0; j < M; j++) r += P[i * M + j] * 2 * (x[i * D + k] - y[j * D + k]);
            gerr = fmax(gerr, fabs(gx[i * D + k] - r));
            gmax = fmax(gmax, fabs(r));
        }
    for (int j = 0; j < M; j++)
        for (int k = 0; k < D; k++) {
            double r = 0;
            for (int i = 0; i < N; i++) r += P[i * M + j] * 2 * (y[j * D + k] - x[i * D + k]);
            gerr = fmax(gerr, fabs(gy[j * D + k] - r));
        }
    CHECK(st == MONGE_OK && gmax > 0 && gerr <= 1e-9 * gmax, "multiscale grad vs dense: %g of %g",
          gerr, gmax);
    /* out of iterations on a coarse level: the state reached, carried down to the points */
    const int64_t max_iter0 = par.max_iter;
    par.max_iter = 4;
    st = monge_sinkhorn_multiscale(&pb, &par, &mp, f1, g, &info, &mi);
    int fin = isfinite(info.value) && isfinite(mi.bound) && mi.kept_entries > 0;
    for (int i = 0; i < N; i++) fin &= isfinite(f1[i]);
    for (int j = 0; j < M; j++) fin &= isfinite(g[j]);
    CHECK(st == MONGE_ENOCONV && !info.converged && info.n_iter == 4 && info.eps_reached > par.eps &&
              fin,
          "multiscale out of iterations above the points: status %d iter %lld eps %g value %g",
          st, (long long)info.n_iter, info.eps_reached, info.value);
    par.max_iter = max_iter0;
    /* aggressive truncation: the bound holds the mass skipped */
    mp.truncation = 1.0;
    par.tol = 1e-2; /* loose on purpose: stops early, so tau stays small and blocks are skipped */
    par.eps_scaling = MONGE_EPS_SCALING_OFF;
    st = monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
    CHECK(st == MONGE_OK, "aggressive: status %d", st);
    double bound = NAN;
    st = monge_ms_apply(&pb, &mp, par.eps, f, g, 0, NULL, 0, NULL, rs, NULL, NULL, &bound, 0);
    CHECK(st == MONGE_OK, "apply status %d", st);
    st = monge_sinkhorn_plan(&pb, par.eps, f, g, P, 0);
    double full = 0, kept = 0;
    for (int i = 0; i < N; i++) kept += rs[i];
    for (int k = 0; k < N * M; k++) full += P[k];
    CHECK(st == MONGE_OK && full - kept > 0 && full - kept <= bound * (1 + 1e-9),
          "skipped %g vs bound %g", full - kept, bound);
    /* threads */
    mp.truncation = MONGE_MS_TAU;
    par.tol = 1e-6;
    par.nthreads = 1;
    monge_sinkhorn_multiscale(&pb, &par, &mp, f1, g, &info, &mi);
    par.nthreads = 2;
    monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
    CHECK(memcmp(f1, f, sizeof f) == 0, "multiscale: 1 vs 2 threads differ");
    /* the symmetric problem against monge_sinkhorn_symmetric */
    par.tol = 1e-10;
    st = monge_sinkhorn_multiscale_symmetric(&pb, &par, &mp, f, &info, &mi);
    monge_geometry gsym = geo;
    gsym.y = x;
    gsym.m = N;
    monge_problem psym = {.geom = &gsym, .tau_a = INFINITY, .tau_b = INFINITY};
    st2 = monge_sinkhorn_symmetric(&psym, &par, f2, &einfo);
    df = 0;
    for (int i = 0; i < N; i++) df = fmax(df, fabs(f[i] - f2[i]));
    CHECK(st == MONGE_OK && st2 == MONGE_OK && df < 1e-8 &&
              fabs(info.value - einfo.value) < 1e-11,
          "symmetric multiscale: status %d %d |dp| %g values %.12g %.12g", st, st2, df,
          info.value, einfo.value);
    /* bad input */
    mp.truncation = 0;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL, "tau 0");
    monge_ms_params_init(&mp);
    mp.warm_tol = 1.0;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL, "warm_tol 1");
    mp.warm_tol = NAN;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL, "warm_tol NaN");
    monge_ms_params_init(&mp);
    mp.bound_frac = 0.5; /* the stopping test adds 2E: E must stay under tol / 2 */
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL,
          "bound_frac 0.5");
    monge_ms_params_init(&mp);
    mp.refine_anderson = -2;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL,
          "refine_anderson -2");
    mp.refine_anderson = MONGE_SINKHORN_ANDERSON_MAX + 1;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL,
          "refine_anderson above the largest memory");
    monge_ms_params_init(&mp);
    mp.refine_stall = -1;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL,
          "refine_stall -1");
    monge_ms_params_init(&mp);
    mp.coarse_correction = 2;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL,
          "coarse_correction 2");
    monge_ms_params_init(&mp);
    geo.cost = MONGE_COST_COSINE;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL, "cosine");
    geo.cost = MONGE_COST_SQEUCLIDEAN;
    x[5] = NAN;
    CHECK(monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi) == MONGE_EINVAL, "NaN point");
}

/* The coarse correction: 3000 points in the unit square at eps = 1e-3 and tol 1e-4, where the
 * points level only refines; the correction runs, and the value and potentials stay the exact
 * solve's within what tol allows; without it none runs. */
/* E's drift bounds between exact evaluations (each skipped pair's bound grown by its blocks'
 * largest rise, or E0 by the overall one) against the exact per-item bounds at the same
 * potentials: a loose tol and a small tau keep E large and the last selection far behind.
 * Halving the blocks' rise fails it (640 entries below), and so does leaving out the overall
 * one; its square root does not (the overall rise is far above any pair's). */
static void test_multiscale_drift_bound(void)
{
    enum { N = 3000, D = 2 };
    static double x[N * D], y[N * D], f[N], g[N];
    for (int i = 0; i < N * D; i++) x[i] = urand();
    for (int j = 0; j < N * D; j++) y[j] = 0.8 * urand() + 0.15;
    monge_geometry geo = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = y, .d = D,
                          .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pb = {.geom = &geo, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 2e-3;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    monge_sinkhorn_info info;
    monge_ms_info mi;
    const double tols[2] = {1e-3, 1e-2}, taus[2] = {4.0, 8.0};
    monge_ms_check_drift = 1;
    monge_ms_drift_checked = monge_ms_drift_below = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            par.tol = tols[a];
            mp.truncation = taus[b];
            const int st = monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
            CHECK(st == MONGE_OK, "drift bound run: status %d", st);
            const int st2 = monge_sinkhorn_multiscale_symmetric(&pb, &par, &mp, f, &info, &mi);
            CHECK(st2 == MONGE_OK, "drift bound symmetric run: status %d", st2);
        }
    monge_ms_check_drift = 0;
    CHECK(monge_ms_drift_checked > 1000 && monge_ms_drift_below == 0,
          "drift bounds: %lld checked, %lld below the exact bound",
          (long long)monge_ms_drift_checked, (long long)monge_ms_drift_below);
}

static void test_multiscale_coarse_correction(void)
{
    enum { N = 3000, D = 2 };
    static double x[N * D], y[N * D], f[N], g[N], f2[N], g2[N];
    for (int i = 0; i < N * D; i++) x[i] = urand();
    for (int i = 0; i < N * D; i++) y[i] = urand();
    monge_geometry geo = {.n = N, .m = N, .dtype = MONGE_F64, .x = x, .y = y, .d = D,
                          .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pb = {.geom = &geo, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 1e-3;
    par.tol = 1e-4;
    par.scaling_factor = 0.5;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    monge_sinkhorn_info info, einfo;
    monge_ms_info mi;
    int st = monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
    CHECK(st == MONGE_OK && info.converged && info.error <= 1e-4 && mi.coarse_iterations > 0,
          "coarse correction: status %d err %g coarse iterations %lld", st, info.error,
          (long long)mi.coarse_iterations);
    par.eps_scaling = MONGE_EPS_SCALING_AUTO;
    par.tol = 1e-10;
    st = monge_sinkhorn(&pb, &par, f2, g2, &einfo);
    CHECK(st == MONGE_OK && fabs(info.value - einfo.value) < 1e-6 * fabs(einfo.value),
          "coarse correction vs exact: values %.12g %.12g", info.value, einfo.value);
    mp.coarse_correction = 0;
    par.tol = 1e-4;
    st = monge_sinkhorn_multiscale(&pb, &par, &mp, f, g, &info, &mi);
    CHECK(st == MONGE_OK && info.converged && mi.coarse_iterations == 0,
          "no coarse correction: status %d coarse iterations %lld", st,
          (long long)mi.coarse_iterations);
}

/* Regression (a libFuzzer timeout): costs that overflow gave an infinite first eps, and the
   symmetric solvers, whose stages can end without an iteration, looped on it for ever. Also a
   schedule of very many stages is bounded by max_iter. */
static void test_schedule_terminates(void)
{
    double x[4] = {0.0, 1.0, 1.3e154, -1.3e154}, p[4], q[4];
    monge_geometry geo = {.n = 4, .m = 4, .dtype = MONGE_F64, .x = x, .y = x, .d = 1,
                          .cost = MONGE_COST_SQEUCLIDEAN};
    monge_problem pb = {.geom = &geo, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.eps = 1e-2;
    par.max_iter = 50;
    par.eps_scaling = 1;
    par.scaling_factor = 0.5;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    monge_sinkhorn_info info;
    monge_ms_info mi;
    int st = monge_sinkhorn_multiscale_symmetric(&pb, &par, &mp, p, &info, &mi);
    CHECK((st != MONGE_OK || isfinite(info.value)) && info.n_iter <= 50 && info.n_stages <= 50,
          "overflowing costs, multiscale symmetric: status %d iter %lld stages %lld", st,
          (long long)info.n_iter, (long long)info.n_stages);
    st = monge_sinkhorn_symmetric(&pb, &par, p, &info);
    CHECK((st != MONGE_OK || isfinite(info.value)) && info.n_iter <= 50,
          "overflowing costs, symmetric: status %d iter %lld",
          st, (long long)info.n_iter);
    st = monge_sinkhorn(&pb, &par, p, q, &info);
    CHECK((st != MONGE_OK || isfinite(info.value)) && info.n_iter <= 50,
          "overflowing costs, sinkhorn: status %d iter %lld", st,
          (long long)info.n_iter);
    /* 1e6 stages down a 0.99999 schedule: the budget of 50 passes ends it, not converged */
    x[2] = 0.5;
    x[3] = 0.25;
    par.eps = 1e-3;
    par.eps_start = 1e40;
    par.scaling_factor = 0.99999;
    par.tol = 1.0; /* every stage met on its first measurement: no iteration counted */
    st = monge_sinkhorn_symmetric(&pb, &par, p, &info);
    CHECK(st == MONGE_ENOCONV && !info.converged && info.n_stages <= 50,
          "long schedule, symmetric: status %d stages %lld", st, (long long)info.n_stages);
    st = monge_sinkhorn_multiscale_symmetric(&pb, &par, &mp, p, &info, &mi);
    CHECK(st == MONGE_ENOCONV && !info.converged && info.n_stages <= 50,
          "long schedule, multiscale symmetric: status %d stages %lld", st,
          (long long)info.n_stages);
}

int main(void)
{
    rng_seed(88172645463325252ull);
    test_balanced();
    test_float32_and_batch();
    test_unbalanced();
    test_errors();
    test_overflow_on_exit();
    test_kernel_path();
    test_anderson();
    test_multiscale();
    test_multiscale_drift_bound();
    test_multiscale_coarse_correction();
    test_schedule_terminates();
    return REPORT();
}
