/* C unit tests of the fixed-support barycenter (run under AddressSanitizer + UBSan): against a
 * kernel-domain iterative Bregman projection written here (Benamou et al. 2015; the debiased
 * variant of Janati et al. 2020), the plans' marginals rebuilt from the potentials, online and
 * dense geometries agreeing, the debiased barycenter of identical inputs being that input, and
 * argument and status checks. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { N = 7, M0 = 5, M1 = 6, D = 2, KIN = 2 };

static void sqdist(const double *x, int64_t n, const double *y, int64_t m, double *C)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += (x[i * D + k] - y[j * D + k]) * (x[i * D + k] - y[j * D + k]);
            C[i * m + j] = s;
        }
}

/* The reference: kernel-domain IBP, u_k = a / (K_k v_k), v_k = b_k / (K_k^T u_k), a the weighted
 * geometric mean of K_k v_k (times c when debiased, c <- sqrt(c a / (K_xx c))), `iters` sweeps. */
static void reference(const double *const *C, const int64_t *m, const double *const *b,
                      const double *lam, const double *Cxx, double eps, int debiased, int iters,
                      double *a)
{
    double u[KIN][N], v[KIN][8], Kv[KIN][N], c[N];
    for (int k = 0; k < KIN; k++)
        for (int i = 0; i < N; i++) u[k][i] = 1.0;
    for (int i = 0; i < N; i++) c[i] = 1.0;
    for (int t = 0; t < iters; t++) {
        for (int k = 0; k < KIN; k++) {
            for (int64_t j = 0; j < m[k]; j++) {
                double s = 0;
                for (int i = 0; i < N; i++) s += exp(-C[k][i * m[k] + j] / eps) * u[k][i];
                v[k][j] = b[k][j] / s;
            }
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int64_t j = 0; j < m[k]; j++) s += exp(-C[k][i * m[k] + j] / eps) * v[k][j];
                Kv[k][i] = s;
            }
        }
        for (int i = 0; i < N; i++) {
            double la = 0;
            for (int k = 0; k < KIN; k++) la += lam[k] * log(Kv[k][i]);
            a[i] = c[i] * exp(la);
        }
        for (int k = 0; k < KIN; k++)
            for (int i = 0; i < N; i++) u[k][i] = a[i] / Kv[k][i];
        if (debiased) {
            double Kc[N];
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int l = 0; l < N; l++) s += exp(-Cxx[i * N + l] / eps) * c[l];
                Kc[i] = s;
            }
            for (int i = 0; i < N; i++) c[i] = sqrt(c[i] * a[i] / Kc[i]);
        }
    }
}

static double xs[N * D], y0s[M0 * D], y1s[M1 * D], b0[M0], b1[M1];
static double C0[N * M0], C1[N * M1], Cxx[N * N];

static void setup(void)
{
    rng_seed(7);
    for (int i = 0; i < N * D; i++) xs[i] = urand();
    for (int i = 0; i < M0 * D; i++) y0s[i] = 0.5 * urand();
    for (int i = 0; i < M1 * D; i++) y1s[i] = 0.5 + 0.5 * urand();
    double s0 = 0, s1 = 0;
    for (int j = 0; j < M0; j++) s0 += (b0[j] = 0.2 + urand());
    for (int j = 0; j < M1; j++) s1 += (b1[j] = 0.2 + urand());
    for (int j = 0; j < M0; j++) b0[j] /= s0;
    for (int j = 0; j < M1; j++) b1[j] /= s1;
    b1[2] = 0.0;   /* a zero weight: g = -inf there */
    s1 = 0;
    for (int j = 0; j < M1; j++) s1 += b1[j];
    for (int j = 0; j < M1; j++) b1[j] /= s1;
    sqdist(xs, N, y0s, M0, C0);
    sqdist(xs, N, y1s, M1, C1);
    sqdist(xs, N, xs, N, Cxx);
}

static void dense_geoms(monge_geometry g[KIN], monge_geometry *self)
{
    memset(g, 0, KIN * sizeof *g);
    g[0] = (monge_geometry){.n = N, .m = M0, .dtype = MONGE_F64, .C = C0};
    g[1] = (monge_geometry){.n = N, .m = M1, .dtype = MONGE_F64, .C = C1};
    *self = (monge_geometry){.n = N, .m = N, .dtype = MONGE_F64, .C = Cxx};
}

static void test_against_reference(int debiased)
{
    monge_geometry g[KIN], self;
    dense_geoms(g, &self);
    const double *bs[KIN] = {b0, b1};
    const double lam[KIN] = {0.3, 0.7};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 0.05;
    par.tol = 1e-12;
    par.debiased = debiased;
    double a[N], f[KIN * N], g_[M0 + M1], lc[N], err;
    int64_t it;
    int st = monge_barycenter(KIN, g, bs, lam, &self, &par, a, f, g_, lc, &err, &it);
    CHECK(st == MONGE_OK, "debiased %d: status %d", debiased, st);
    CHECK(err <= 1e-12 && it > 1, "error %g after %lld", err, (long long)it);
    const double *Cs[KIN] = {C0, C1};
    const int64_t ms[KIN] = {M0, M1};
    double ref[N];
    reference(Cs, ms, bs, lam, Cxx, par.eps, debiased, 5000, ref);
    double dmax = 0, sa = 0;
    for (int i = 0; i < N; i++) {
        dmax = fmax(dmax, fabs(a[i] - ref[i]));
        sa += a[i];
    }
    CHECK(dmax < 1e-10, "debiased %d: |a - reference| = %g", debiased, dmax);
    CHECK(fabs(sa - 1) < 1e-10, "sum a = %.15g", sa);
    /* the plans rebuilt from the potentials have first marginal a and second marginal b_k */
    int64_t off = 0;
    for (int k = 0; k < KIN; k++) {
        double row[N] = {0}, colerr = 0;
        for (int64_t j = 0; j < ms[k]; j++) {
            double col = 0;
            for (int i = 0; i < N; i++) {
                const double P = exp((f[k * N + i] + g_[off + j] - Cs[k][i * ms[k] + j]) / par.eps);
                row[i] += P;
                col += P;
            }
            colerr += fabs(col - bs[k][j]);
        }
        double rowerr = 0;
        for (int i = 0; i < N; i++) rowerr += fabs(row[i] - a[i]);
        CHECK(rowerr < 1e-13 && colerr <= 1e-12, "plan %d: row error %g, column error %g", k,
              rowerr, colerr);
        off += ms[k];
    }
    double lcmax = 0;
    for (int i = 0; i < N; i++) lcmax = fmax(lcmax, fabs(lc[i]));
    CHECK(debiased ? lcmax > 1e-3 : lcmax == 0.0, "log c: max %g", lcmax);
}

static void test_online_matches_dense(void)
{
    monge_geometry gd[KIN], selfd, go[KIN], selfo;
    dense_geoms(gd, &selfd);
    memset(go, 0, sizeof go);
    go[0] = (monge_geometry){.n = N, .m = M0, .dtype = MONGE_F64, .x = xs, .y = y0s, .d = D,
                             .cost = MONGE_COST_SQEUCLIDEAN};
    go[1] = (monge_geometry){.n = N, .m = M1, .dtype = MONGE_F64, .x = xs, .y = y1s, .d = D,
                             .cost = MONGE_COST_SQEUCLIDEAN};
    selfo = (monge_geometry){.n = N, .m = N, .dtype = MONGE_F64, .x = xs, .y = xs, .d = D,
                             .cost = MONGE_COST_SQEUCLIDEAN};
    const double *bs[KIN] = {b0, b1};
    const double lam[KIN] = {0.5, 0.5};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 0.02;
    par.tol = 1e-11;
    par.debiased = 1;
    double ad[N], ao[N];
    int s1 = monge_barycenter(KIN, gd, bs, lam, &selfd, &par, ad, NULL, NULL, NULL, NULL, NULL);
    int s2 = monge_barycenter(KIN, go, bs, lam, &selfo, &par, ao, NULL, NULL, NULL, NULL, NULL);
    double dmax = 0;
    for (int i = 0; i < N; i++) dmax = fmax(dmax, fabs(ad[i] - ao[i]));
    CHECK(s1 == MONGE_OK && s2 == MONGE_OK && dmax < 1e-10, "online vs dense: %d %d %g", s1, s2,
          dmax);
}

/* Identical inputs on the barycenter's own support: the debiased barycenter is the input itself
 * (the Sinkhorn divergence vanishes only there); the plain one is blurred away from it. */
static void test_debiased_identical_inputs(void)
{
    double b[N], s = 0;
    for (int i = 0; i < N; i++) s += (b[i] = 0.1 + urand());
    for (int i = 0; i < N; i++) b[i] /= s;
    monge_geometry g[2], self = {.n = N, .m = N, .dtype = MONGE_F64, .C = Cxx};
    g[0] = self;
    g[1] = self;
    const double *bs[2] = {b, b};
    const double lam[2] = {0.4, 0.6};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 0.1;
    par.tol = 1e-12;
    double a[N], ap[N];
    par.debiased = 1;
    int st = monge_barycenter(2, g, bs, lam, &self, &par, a, NULL, NULL, NULL, NULL, NULL);
    par.debiased = 0;
    int sp = monge_barycenter(2, g, bs, lam, NULL, &par, ap, NULL, NULL, NULL, NULL, NULL);
    double d = 0, dp = 0;
    for (int i = 0; i < N; i++) {
        d += fabs(a[i] - b[i]);
        dp += fabs(ap[i] - b[i]);
    }
    CHECK(st == MONGE_OK && sp == MONGE_OK, "status %d %d", st, sp);
    CHECK(d < 1e-9 && dp > 1e-2, "debiased |a - b|_1 = %g, plain %g", d, dp);
}

static int stop_at_3(void *ctx, int64_t it, double err)
{
    (void)err;
    *(int64_t *)ctx = it;
    return it >= 3;
}

static void test_arguments_and_status(void)
{
    monge_geometry g[KIN], self;
    dense_geoms(g, &self);
    const double *bs[KIN] = {b0, b1};
    double lam[KIN] = {0.5, 0.5};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    double a[N], err;
    int64_t it;
    CHECK(monge_barycenter(0, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "K = 0");
    lam[0] = 0.6;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "lambda summing to 1.1");
    lam[0] = -0.5;
    lam[1] = 1.5;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "negative lambda");
    lam[0] = lam[1] = 0.5;
    double bad[M0];
    memcpy(bad, b0, sizeof bad);
    bad[0] += 0.01;
    const double *bb[KIN] = {bad, b1};
    CHECK(monge_barycenter(KIN, g, bb, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "b not summing to 1");
    bad[0] = NAN;
    CHECK(monge_barycenter(KIN, g, bb, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "NaN weight");
    par.debiased = 1;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "debiased without its geometry");
    monge_geometry wrong = self;
    wrong.m = N - 1;
    CHECK(monge_barycenter(KIN, g, bs, lam, &wrong, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "debiased geometry not n x n");
    par.debiased = 0;
    monge_geometry g2[KIN] = {g[0], g[1]};
    g2[1].n = N + 1;
    CHECK(monge_barycenter(KIN, g2, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "inputs with different n");
    par.eps = 0.0;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "eps = 0");
    par.eps = 0.05;
    par.anderson = 33;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "anderson memory 33");
    par.anderson = -2;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "anderson -2");
    /* the mixed iterations (default) and the unmixed ones: one barycenter, fewer iterations */
    double a0[N];
    int64_t it0, it1;
    par.anderson = 0;
    par.tol = 1e-11;
    int s0 = monge_barycenter(KIN, g, bs, lam, NULL, &par, a0, NULL, NULL, NULL, NULL, &it0);
    par.anderson = -1;
    int s1 = monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, &it1);
    double da = 0;
    for (int i = 0; i < N; i++) da = fmax(da, fabs(a[i] - a0[i]));
    CHECK(s0 == MONGE_OK && s1 == MONGE_OK && da < 1e-9 && it1 < it0,
          "anderson: status %d %d, |da| %g, iterations %lld mixed vs %lld", s0, s1, da,
          (long long)it1, (long long)it0);
    par.max_iter = 2;
    par.tol = 1e-14;
    int st = monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, &err, &it);
    CHECK(st == MONGE_ENOCONV && it == 2 && err > 1e-14 && isfinite(a[0]),
          "max_iter: status %d after %lld, error %g", st, (long long)it, err);
    int64_t seen = 0;
    par.max_iter = 1000;
    par.progress = stop_at_3;
    par.progress_ctx = &seen;
    st = monge_barycenter(KIN, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, NULL, NULL);
    CHECK(st == MONGE_EINTR && seen == 3, "progress: status %d at %lld", st, (long long)seen);
}

/* Regression (libFuzzer): at eps = 1e-300 log a is rounding noise of order 1e284 and a overflowed
   while the status said OK; now an OK barycenter is finite or the status says it is not. */
static void test_tiny_eps_not_ok_with_inf(void)
{
    double x[6] = {-2.5, 2.53125, 2.8125, -0.46875, 1.9375, 1.9375};
    double y[3] = {0.5, 3.03125, -0.407958984375}, one = 1.0;
    monge_geometry g[3];
    for (int k = 0; k < 3; k++)
        g[k] = (monge_geometry){.n = 6, .m = 1, .dtype = MONGE_F64, .x = x, .y = y + k, .d = 1,
                                .cost = k == 2 ? MONGE_COST_EUCLIDEAN : MONGE_COST_SQEUCLIDEAN};
    const double *bs[3] = {&one, &one, &one};
    double lam[3] = {1.0 / 3, 1.0 / 3, 1.0 / 3}, a[6], err;
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 1e-300;
    par.max_iter = 14;
    const int st = monge_barycenter(3, g, bs, lam, NULL, &par, a, NULL, NULL, NULL, &err, NULL);
    int fin = 1;
    for (int i = 0; i < 6; i++) fin &= isfinite(a[i]) != 0;
    CHECK(st != MONGE_OK || fin, "eps 1e-300: status OK with a non-finite barycenter");
}

static int cmp_double(const void *x, const void *y)
{
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* free support: in 1-D with n = m the barycenter averages the sorted inputs (quantile functions);
 * entropic plans at small eps come close; 1 and 2 threads agree; argument checks */
static void test_free_support(void)
{
    enum { n = 12, K = 3 };
    double y[K][n], X[n], X2[n], want[n], lam[K] = {0.5, 0.3, 0.2};
    for (int k = 0; k < K; k++)
        for (int j = 0; j < n; j++) y[k][j] = 3.0 * k + urand() * (k + 1);
    for (int i = 0; i < n; i++) X[i] = X2[i] = urand();
    double sorted[K][n];
    memcpy(sorted, y, sizeof y);
    for (int k = 0; k < K; k++) qsort(sorted[k], n, sizeof(double), cmp_double);
    for (int i = 0; i < n; i++) {
        want[i] = 0.0;
        for (int k = 0; k < K; k++) want[i] += lam[k] * sorted[k][i];
    }
    const int64_t m[K] = {n, n, n};
    const double *Y[K] = {y[0], y[1], y[2]};
    monge_free_barycenter_params par;
    monge_free_barycenter_params_init(&par);
    double cost, cost2;
    int64_t it, it2;
    par.nthreads = 1;
    int st = monge_free_barycenter(K, m, 1, Y, NULL, lam, n, NULL, &par, X, &cost, &it);
    par.nthreads = 2;
    int st2 = monge_free_barycenter(K, m, 1, Y, NULL, lam, n, NULL, &par, X2, &cost2, &it2);
    CHECK(st == MONGE_OK && st2 == MONGE_OK, "free support: status %d %d", st, st2);
    CHECK(!memcmp(X, X2, sizeof X) && cost == cost2, "free support: 1 vs 2 threads differ");
    qsort(X, n, sizeof(double), cmp_double);
    double worst = 0.0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(X[i] - want[i]));
    CHECK(worst < 1e-12, "free support: off the quantile average by %g", worst);
    par.exact = 0;
    par.eps = 1e-4;
    par.max_iter = 500;
    for (int i = 0; i < n; i++) X2[i] = urand();
    st = monge_free_barycenter(K, m, 1, Y, NULL, lam, n, NULL, &par, X2, &cost2, &it2);
    CHECK(st == MONGE_OK && fabs(cost2 - cost) < 0.05 * cost, "entropic: status %d cost %g / %g",
          st, cost2, cost);
    /* the loss at the fixed point: its value is the cost reached, and X does not move it */
    double vals[K], gX[64], gY[3 * 64], gb[3 * 64];
    par.exact = 1;
    int ls = monge_free_barycenter_loss(K, m, 1, Y, NULL, lam, n, NULL, &par, X, vals, gX, gY, gb);
    double lv = 0, gmax = 0;
    for (int k = 0; k < K; k++) lv += lam[k] * vals[k];
    for (int i = 0; i < n; i++) gmax = fmax(gmax, fabs(gX[i]));
    CHECK(ls == MONGE_OK && fabs(lv - cost) <= 1e-12 * cost && gmax < 1e-12,
          "free support loss: status %d value %g vs %g, |grad X| %g", ls, lv, cost, gmax);
    par.exact = 0;
    const double badlam[K] = {0.5, 0.5, 0.5};
    CHECK(monge_free_barycenter_loss(K, m, 1, Y, NULL, badlam, n, NULL, &par, X, vals, NULL, NULL,
                                     NULL) == MONGE_EINVAL, "loss: lambda not summing to 1");
    CHECK(monge_free_barycenter(K, m, 1, Y, NULL, badlam, n, NULL, &par, X2, &cost2, &it2) ==
              MONGE_EINVAL, "lambda not summing to 1");
    X2[0] = NAN;
    CHECK(monge_free_barycenter(K, m, 1, Y, NULL, lam, n, NULL, &par, X2, &cost2, &it2) ==
              MONGE_EINVAL, "NaN start");
}

/* the separable grid kernel: the same barycenter as the dense cost between the grid's points
 * (plain and debiased, a 2-D grid with uneven spacing and a 3-D one), 1 vs 2 threads, checks */
static void test_grid(void)
{
    const int64_t len2[2] = {7, 9}, len3[3] = {3, 4, 5};
    double t0[9], t1[9], t2[9];
    for (int i = 0; i < 9; i++) {
        t0[i] = i * 0.15 + 0.02 * urand();
        t1[i] = i * 0.11 + 0.03 * urand();
        t2[i] = i * 0.2;
    }
    const double *ts[3] = {t0, t1, t2};
    for (int dim = 2; dim <= 3; dim++) {
        const int64_t *len = dim == 2 ? len2 : len3;
        int64_t n = 1;
        for (int a = 0; a < dim; a++) n *= len[a];
        monge_grid grid = {dim, len, ts};
        double *pts = malloc(sizeof(double) * (size_t)(n * dim)), *C = malloc(sizeof(double) * (size_t)(n * n));
        for (int64_t i = 0; i < n; i++) {
            int64_t r = i;
            for (int a = dim - 1; a >= 0; a--) {
                pts[i * dim + a] = ts[a][r % len[a]];
                r /= len[a];
            }
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int a = 0; a < dim; a++) s += (pts[i * dim + a] - pts[j * dim + a]) * (pts[i * dim + a] - pts[j * dim + a]);
                C[i * n + j] = s;
            }
        double *b0 = malloc(sizeof(double) * (size_t)n), *b1 = malloc(sizeof(double) * (size_t)n);
        double s0 = 0, s1 = 0;
        for (int64_t i = 0; i < n; i++) {
            s0 += b0[i] = urand() < 0.3 ? 0.0 : urand();
            s1 += b1[i] = urand();
        }
        for (int64_t i = 0; i < n; i++) {
            b0[i] /= s0;
            b1[i] /= s1;
        }
        const double *bs[2] = {b0, b1}, lam[2] = {0.3, 0.7};
        monge_geometry geo[2], self;
        memset(geo, 0, sizeof geo);
        for (int k = 0; k < 2; k++) {
            geo[k].n = geo[k].m = n;
            geo[k].dtype = MONGE_F64;
            geo[k].C = C;
        }
        self = geo[0];
        for (int deb = 0; deb < 2; deb++) {
            monge_barycenter_params par;
            monge_barycenter_params_init(&par);
            par.eps = 0.02;
            par.tol = 1e-10;
            par.max_iter = 200000;
            par.debiased = deb;
            double *ad = malloc(sizeof(double) * (size_t)n), *ag = malloc(sizeof(double) * (size_t)n),
                   *ag2 = malloc(sizeof(double) * (size_t)n), err, err2;
            int64_t it, it2;
            int sd = monge_barycenter(2, geo, bs, lam, &self, &par, ad, NULL, NULL, NULL, &err, &it);
            par.nthreads = 1;
            int sg = monge_barycenter_grid(2, &grid, bs, lam, &par, ag, NULL, NULL, NULL, &err, &it);
            par.nthreads = 2;
            int sg2 = monge_barycenter_grid(2, &grid, bs, lam, &par, ag2, NULL, NULL, NULL, &err2, &it2);
            double worst = 0;
            for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(ad[i] - ag[i]));
            CHECK(sd == MONGE_OK && sg == MONGE_OK && sg2 == MONGE_OK, "grid %dD deb %d: status %d %d %d",
                  dim, deb, sd, sg, sg2);
            CHECK(worst < 1e-9, "grid %dD deb %d: off the dense barycenter by %g", dim, deb, worst);
            CHECK(!memcmp(ag, ag2, sizeof(double) * (size_t)n) && it == it2,
                  "grid %dD deb %d: 1 vs 2 threads differ", dim, deb);
            free(ad);
            free(ag);
            free(ag2);
        }
        free(pts);
        free(C);
        free(b0);
        free(b1);
    }
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    const int64_t bad[2] = {4, 0};
    const double *ts2[2] = {t0, t1};
    monge_grid g0 = {2, bad, ts2};
    double one[1] = {1.0}, a1[1];
    const double *bs1[1] = {one}, lam1[1] = {1.0};
    CHECK(monge_barycenter_grid(1, &g0, bs1, lam1, &par, a1, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "grid: an empty axis");
    monge_grid g9 = {9, bad, ts2};
    CHECK(monge_barycenter_grid(1, &g9, bs1, lam1, &par, a1, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "grid: too many axes");
}

/* The loss at a solution and its gradients (monge_barycenter_loss) against central differences of
 * the loss re-solved: in b (along the simplex), in x and in y_0 (online, plain), and in b with the
 * debiased loss; then its argument checks. */
static double loss_at(const monge_geometry *g, const double *const *bs, const double *lam,
                      const monge_geometry *self, const monge_geometry *sy,
                      const monge_barycenter_params *par)
{
    double a[N], f[KIN * N], gg[M0 + M1], lc[N], v[KIN];
    int st = monge_barycenter(KIN, g, bs, lam, self, par, a, f, gg, lc, NULL, NULL);
    int ls = monge_barycenter_loss(KIN, g, bs, lam, self, sy, par, a, f, gg, lc, v, NULL, NULL,
                                   NULL, NULL);
    CHECK(st == MONGE_OK && ls == MONGE_OK, "loss_at: %d %d", st, ls);
    return lam[0] * v[0] + lam[1] * v[1];
}

static void test_loss_gradients(void)
{
    double x[N * D], y0[M0 * D], bb0[M0], bb1[M1];
    memcpy(x, xs, sizeof x);
    memcpy(y0, y0s, sizeof y0);
    memcpy(bb0, b0, sizeof bb0);
    for (int j = 0; j < M1; j++) bb1[j] = 1.0 / M1;
    monge_geometry g[KIN], self, sy[KIN];
    g[0] = (monge_geometry){.n = N, .m = M0, .dtype = MONGE_F64, .x = x, .y = y0, .d = D,
                            .cost = MONGE_COST_SQEUCLIDEAN};
    g[1] = g[0];
    g[1].m = M1;
    g[1].y = y1s;
    self = g[0];
    self.m = N;
    self.y = x;
    for (int k = 0; k < KIN; k++) {
        sy[k] = g[k];
        sy[k].n = g[k].m;
        sy[k].x = g[k].y;
    }
    const double *bs[KIN] = {bb0, bb1};
    const double lam[KIN] = {0.3, 0.7};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 0.05;
    par.max_iter = 1000000;
    for (int deb = 0; deb < 2; deb++) {
        par.debiased = deb;
        par.tol = deb ? 1e-9 : 1e-13;
        double a[N], f[KIN * N], gg[M0 + M1], lc[N], v[KIN], gb[M0 + M1], gx[N * D],
            gy[(M0 + M1) * D];
        int st = monge_barycenter(KIN, g, bs, lam, &self, &par, a, f, gg, lc, NULL, NULL);
        int ls = monge_barycenter_loss(KIN, g, bs, lam, &self, sy, &par, a, f, gg, lc, v, gb,
                                       NULL, gx, gy);
        CHECK(st == MONGE_OK && ls == MONGE_OK, "loss (debiased %d): %d %d", deb, st, ls);
        const double h = 1e-5, rel = deb ? 1e-4 : 1e-6;
        /* b_0 along a tangent direction (zero sum) */
        double dir[M0], an = 0;
        for (int j = 0; j < M0; j++) dir[j] = b0[j] * ((j % 2) - 0.5);
        double sd = 0;
        for (int j = 0; j < M0; j++) sd += dir[j];
        for (int j = 0; j < M0; j++) dir[j] -= b0[j] * sd;
        for (int j = 0; j < M0; j++) an += gb[j] * dir[j];
        for (int j = 0; j < M0; j++) bb0[j] = b0[j] + h * dir[j];
        double lp = loss_at(g, bs, lam, &self, sy, &par);
        for (int j = 0; j < M0; j++) bb0[j] = b0[j] - h * dir[j];
        double lm = loss_at(g, bs, lam, &self, sy, &par);
        memcpy(bb0, b0, sizeof bb0);
        CHECK(fabs(an - (lp - lm) / (2 * h)) <= rel * fabs(an) + 1e-10, "d/db (deb %d): %g vs %g",
              deb, an, (lp - lm) / (2 * h));
        if (deb) continue;
        /* one coordinate of x and one of y_0 */
        x[3] += h;
        lp = loss_at(g, bs, lam, &self, sy, &par);
        x[3] -= 2 * h;
        lm = loss_at(g, bs, lam, &self, sy, &par);
        x[3] += h;
        CHECK(fabs(gx[3] - (lp - lm) / (2 * h)) <= rel * fabs(gx[3]) + 1e-10, "d/dx: %g vs %g",
              gx[3], (lp - lm) / (2 * h));
        y0[4] += h;
        lp = loss_at(g, bs, lam, &self, sy, &par);
        y0[4] -= 2 * h;
        lm = loss_at(g, bs, lam, &self, sy, &par);
        y0[4] += h;
        CHECK(fabs(gy[4] - (lp - lm) / (2 * h)) <= rel * fabs(gy[4]) + 1e-10, "d/dy: %g vs %g",
              gy[4], (lp - lm) / (2 * h));
    }
    /* argument checks: no potentials; grad_C on online geometries; debiased without selfy */
    double a[N], f[KIN * N], gg[M0 + M1], lc[N], v[KIN], gC[N * M0];
    par.debiased = 0;
    par.tol = 1e-6;
    CHECK(monge_barycenter(KIN, g, bs, lam, NULL, &par, a, f, gg, lc, NULL, NULL) == MONGE_OK,
          "loss setup");
    CHECK(monge_barycenter_loss(KIN, g, bs, lam, NULL, NULL, &par, a, NULL, gg, lc, v, NULL, NULL,
                                NULL, NULL) == MONGE_EINVAL, "loss: f NULL");
    CHECK(monge_barycenter_loss(KIN, g, bs, lam, NULL, NULL, &par, a, f, gg, lc, v, NULL, gC,
                                NULL, NULL) == MONGE_EINVAL, "loss: grad_C online");
    par.debiased = 1;
    CHECK(monge_barycenter_loss(KIN, g, bs, lam, &self, NULL, &par, a, f, gg, lc, v, NULL, NULL,
                                NULL, NULL) == MONGE_EINVAL, "loss: debiased without selfy");
}

/* A batch of three problems (weights differing) equals the single solves bitwise, with 1 or 2
 * threads. */
static void test_batch(void)
{
    monge_geometry g[KIN], self;
    dense_geoms(g, &self);
    const double *bs[3 * KIN] = {b0, b1, b0, b1, b0, b1};
    const double lam[3 * KIN] = {0.5, 0.5, 0.2, 0.8, 0.9, 0.1};
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    par.eps = 0.05;
    par.tol = 1e-10;
    double a1[3 * N], a2[3 * N], e1[3], e2[3], one[N];
    int64_t i1[3], i2[3];
    int stat[3];
    par.nthreads = 1;
    int s1 = monge_barycenter_batch(3, KIN, g, bs, lam, NULL, &par, a1, NULL, NULL, NULL, e1, i1,
                                    stat);
    par.nthreads = 2;
    int s2 = monge_barycenter_batch(3, KIN, g, bs, lam, NULL, &par, a2, NULL, NULL, NULL, e2, i2,
                                    NULL);
    CHECK(s1 == MONGE_OK && s2 == MONGE_OK && !memcmp(a1, a2, sizeof a1) && stat[2] == MONGE_OK,
          "batch: 1 vs 2 threads (%d %d)", s1, s2);
    for (int p = 0; p < 3; p++) {
        int64_t it;
        int s = monge_barycenter(KIN, g, bs + p * KIN, lam + p * KIN, NULL, &par, one, NULL, NULL,
                                 NULL, NULL, &it);
        CHECK(s == MONGE_OK && !memcmp(one, a1 + p * N, sizeof one) && it == i1[p],
              "batch problem %d equals its single solve", p);
    }
    const double badlam[3 * KIN] = {0.5, 0.5, 0.2, 0.9, 0.9, 0.1};
    CHECK(monge_barycenter_batch(3, KIN, g, bs, badlam, NULL, &par, a1, NULL, NULL, NULL, e1, i1,
                                 NULL) == MONGE_EINVAL, "batch: weights of a problem off the simplex");
    CHECK(monge_barycenter_batch(0, KIN, g, bs, lam, NULL, &par, a1, NULL, NULL, NULL, e1, i1,
                                 NULL) == MONGE_EINVAL, "batch: N = 0");
}

int main(void)
{
    test_tiny_eps_not_ok_with_inf();
    setup();
    test_against_reference(0);
    test_against_reference(1);
    test_online_matches_dense();
    test_debiased_identical_inputs();
    test_arguments_and_status();
    test_free_support();
    test_grid();
    test_loss_gradients();
    test_batch();
    return REPORT();
}
