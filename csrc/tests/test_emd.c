/* C unit tests of the exact OT layer (network simplex, 1-D, sliced), run under AddressSanitizer
 * + UBSan by `make test`.  The network simplex is checked with an optimality certificate: a
 * feasible plan, feasible duals, complementary slackness and equal primal and dual values. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

typedef struct {
    double cost, dual, marg, dual_viol, slack, nnz;
    int64_t n_iter;
} cert;

/* Certificate of a solution on a dense cost C (n x m). */
static cert certify(int64_t n, int64_t m, const double *C, const double *a, const double *b,
                    const int64_t *rows, const int64_t *cols, const double *vals, int64_t nnz,
                    const double *f, const double *g)
{
    cert c = {0};
    double *ra = calloc((size_t)n, sizeof(double)), *cb = calloc((size_t)m, sizeof(double));
    for (int64_t k = 0; k < nnz; k++) {
        ra[rows[k]] += vals[k];
        cb[cols[k]] += vals[k];
        c.cost += vals[k] * C[rows[k] * m + cols[k]];
        double s = fabs(C[rows[k] * m + cols[k]] - f[rows[k]] - g[cols[k]]);
        if (s > c.slack) c.slack = s;
        if (vals[k] < 0) c.marg = INFINITY;
    }
    for (int64_t i = 0; i < n; i++) c.marg += fabs(ra[i] - (a ? a[i] : 1.0 / n));
    for (int64_t j = 0; j < m; j++) c.marg += fabs(cb[j] - (b ? b[j] : 1.0 / m));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double v = f[i] + g[j] - C[i * m + j];
            if (v > c.dual_viol) c.dual_viol = v;
        }
    for (int64_t i = 0; i < n; i++) c.dual += (a ? a[i] : 1.0 / n) * f[i];
    for (int64_t j = 0; j < m; j++) c.dual += (b ? b[j] : 1.0 / m) * g[j];
    c.nnz = (double)nnz;
    free(ra);
    free(cb);
    return c;
}

static double max_abs(const double *v, int64_t len)
{
    double mx = 0;
    for (int64_t k = 0; k < len; k++) mx = fabs(v[k]) > mx ? fabs(v[k]) : mx;
    return mx;
}

/* Solves and certifies; returns the status. */
static int solve_check(const char *name, int64_t n, int64_t m, const double *C,
                       const monge_geometry *geom, const double *a, const double *b,
                       const monge_emd_params *par, double *cost_out)
{
    int64_t cap = n + m - 1;
    int64_t *rows = malloc(sizeof(int64_t) * cap), *cols = malloc(sizeof(int64_t) * cap);
    double *vals = malloc(sizeof(double) * cap), *f = malloc(sizeof(double) * n),
           *g = malloc(sizeof(double) * m);
    monge_geometry dense = {n, m, MONGE_F64, C, NULL, NULL, 0, 0, 0, 0};
    monge_emd_info info;
    int st = monge_emd(geom ? geom : &dense, a, b, par, rows, cols, vals, f, g, &info);
    if (st == MONGE_OK) {
        cert c = certify(n, m, C, a, b, rows, cols, vals, info.nnz, f, g);
        double scale = max_abs(C, n * m);
        if (scale == 0) scale = 1;
        CHECK(c.marg <= 1e-12, "%s: marginal error %g", name, c.marg);
        CHECK(c.dual_viol <= 1e-10 * scale, "%s: dual violation %g", name, c.dual_viol);
        CHECK(c.slack <= 1e-10 * scale, "%s: complementary slackness %g", name, c.slack);
        CHECK(fabs(c.cost - c.dual) <= 1e-10 * scale, "%s: primal %.17g dual %.17g", name,
              c.cost, c.dual);
        CHECK(fabs(c.cost - info.cost) <= 1e-12 * scale, "%s: info.cost %.17g vs %.17g", name,
              info.cost, c.cost);
        CHECK(info.nnz <= n + m - 1, "%s: nnz %lld", name, (long long)info.nnz);
        for (int64_t k = 1; k < info.nnz; k++)
            CHECK(rows[k - 1] < rows[k] || (rows[k - 1] == rows[k] && cols[k - 1] < cols[k]),
                  "%s: triplets not sorted at %lld", name, (long long)k);
        if (cost_out) *cost_out = info.cost;
    }
    free(rows);
    free(cols);
    free(vals);
    free(f);
    free(g);
    return st;
}

static void random_weights(double *w, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (w[i] = 0.1 + urand());
    for (int64_t i = 0; i < n; i++) w[i] /= s;
}

static double *sq_cost(const double *x, const double *y, int64_t n, int64_t m, int64_t d)
{
    double *C = malloc(sizeof(double) * n * m);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double s = 0;
            for (int64_t k = 0; k < d; k++) {
                double z = x[i * d + k] - y[j * d + k];
                s += z * z;
            }
            C[i * m + j] = s;
        }
    return C;
}

static void test_random_dense(void)
{
    const int64_t shapes[][2] = {{1, 1}, {1, 7}, {9, 1}, {5, 5}, {30, 17}, {64, 90}, {200, 150}};
    for (int s = 0; s < 7; s++) {
        int64_t n = shapes[s][0], m = shapes[s][1];
        double *C = malloc(sizeof(double) * n * m), *a = malloc(sizeof(double) * n),
               *b = malloc(sizeof(double) * m);
        for (int64_t k = 0; k < n * m; k++) C[k] = urand() * 10 - 3; /* negative costs too */
        random_weights(a, n);
        random_weights(b, m);
        char name[64];
        snprintf(name, sizeof name, "dense %lldx%lld", (long long)n, (long long)m);
        CHECK(solve_check(name, n, m, C, NULL, a, b, NULL, NULL) == MONGE_OK, "%s status", name);
        free(C);
        free(a);
        free(b);
    }
}

static void test_online_matches_dense(void)
{
    const int64_t n = 120, m = 80, d = 3;
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * m * d);
    for (int64_t k = 0; k < n * d; k++) x[k] = urand();
    for (int64_t k = 0; k < m * d; k++) y[k] = urand() + 0.2;
    double *C = sq_cost(x, y, n, m, d);
    monge_geometry on = {n, m, MONGE_F64, NULL, x, y, d, MONGE_COST_SQEUCLIDEAN, 2, 0};
    double c_dense = 0, c_online = 0, c_nw = 0;
    CHECK(solve_check("dense sq", n, m, C, NULL, NULL, NULL, NULL, &c_dense) == MONGE_OK, "dense");
    CHECK(solve_check("online sq", n, m, C, &on, NULL, NULL, NULL, &c_online) == MONGE_OK,
          "online");
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.init = 1;
    CHECK(solve_check("online nw", n, m, C, &on, NULL, NULL, &par, &c_nw) == MONGE_OK, "nw");
    CHECK(fabs(c_dense - c_online) <= 1e-12 * c_dense, "online %.17g dense %.17g", c_online,
          c_dense);
    CHECK(fabs(c_dense - c_nw) <= 1e-12 * c_dense, "nw %.17g dense %.17g", c_nw, c_dense);
    free(x);
    free(y);
    free(C);
}

/* Assignment (n = m, uniform): the most degenerate case; integer costs with many ties. */
static void test_degenerate(void)
{
    const int64_t n = 60;
    double *C = malloc(sizeof(double) * n * n);
    for (int64_t k = 0; k < n * n; k++) C[k] = (double)(int)(urand() * 4); /* costs in {0..3} */
    CHECK(solve_check("ties assignment", n, n, C, NULL, NULL, NULL, NULL, NULL) == MONGE_OK,
          "ties");
    for (int64_t k = 0; k < n * n; k++) C[k] = 1.0; /* all equal */
    double c = 0;
    CHECK(solve_check("constant", n, n, C, NULL, NULL, NULL, NULL, &c) == MONGE_OK, "const");
    CHECK(fabs(c - 1.0) < 1e-14, "constant cost %g", c);
    /* duplicate points: x = y shuffled, optimal cost 0 */
    const int64_t d = 2;
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * n * d);
    for (int64_t k = 0; k < n * d; k++) x[k] = (double)(int)(urand() * 5);
    for (int64_t i = 0; i < n; i++) {
        int64_t j = (i * 7 + 3) % n;
        y[j * d] = x[i * d];
        y[j * d + 1] = x[i * d + 1];
    }
    double *S = sq_cost(x, y, n, n, d);
    c = 1;
    CHECK(solve_check("duplicates", n, n, S, NULL, NULL, NULL, NULL, &c) == MONGE_OK, "dup");
    CHECK(c == 0.0, "duplicates cost %g", c);
    monge_geometry on = {n, n, MONGE_F64, NULL, x, y, d, MONGE_COST_SQEUCLIDEAN, 2, 0};
    c = 1;
    CHECK(solve_check("duplicates online", n, n, S, &on, NULL, NULL, NULL, &c) == MONGE_OK, "dup");
    CHECK(c == 0.0, "duplicates online cost %g", c);
    free(x);
    free(y);
    free(S);
    free(C);
}

static void test_zero_weights_and_mass(void)
{
    const int64_t n = 40, m = 30;
    double *C = malloc(sizeof(double) * n * m), *a = malloc(sizeof(double) * n),
           *b = malloc(sizeof(double) * m);
    for (int64_t k = 0; k < n * m; k++) C[k] = urand();
    random_weights(a, n);
    random_weights(b, m);
    a[0] = a[7] = a[39] = 0;
    b[3] = b[29] = 0;
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) sa += a[i];
    for (int64_t j = 0; j < m; j++) sb += b[j];
    for (int64_t i = 0; i < n; i++) a[i] /= sa;
    for (int64_t j = 0; j < m; j++) b[j] /= sb;
    CHECK(solve_check("zero weights", n, m, C, NULL, a, b, NULL, NULL) == MONGE_OK, "zeros");
    /* masses off by 1e-10 relative: reconciled; off by 1e-3: rejected */
    for (int64_t j = 0; j < m; j++) b[j] *= 1 + 1e-10;
    int64_t cap = n + m - 1, rows[69], cols[69];
    double vals[69], f[40], g[30];
    monge_geometry geom = {n, m, MONGE_F64, C, NULL, NULL, 0, 0, 0, 0};
    monge_emd_info info;
    CHECK(cap == 69, "cap");
    CHECK(monge_emd(&geom, a, b, NULL, rows, cols, vals, f, g, &info) == MONGE_OK, "reconciled");
    for (int64_t j = 0; j < m; j++) b[j] *= 1 + 1e-3;
    CHECK(monge_emd(&geom, a, b, NULL, rows, cols, vals, f, g, &info) == MONGE_EINVAL,
          "mass mismatch rejected");
    b[1] = -0.1;
    CHECK(monge_emd(&geom, a, b, NULL, rows, cols, vals, f, g, &info) == MONGE_EINVAL,
          "negative weight rejected");
    C[5] = NAN;
    CHECK(monge_emd(&geom, a, NULL, NULL, rows, cols, vals, f, g, &info) == MONGE_ENONFINITE ||
              monge_emd(&geom, NULL, NULL, NULL, rows, cols, vals, f, g, &info) == MONGE_ENONFINITE,
          "nan cost");
    free(C);
    free(a);
    free(b);
}

static void test_scales_and_limits(void)
{
    const int64_t n = 25, m = 35;
    double *C = malloc(sizeof(double) * n * m), *C2 = malloc(sizeof(double) * n * m);
    for (int64_t k = 0; k < n * m; k++) C[k] = urand();
    double c1 = 0, c2 = 0, c3 = 0;
    CHECK(solve_check("unit", n, m, C, NULL, NULL, NULL, NULL, &c1) == MONGE_OK, "unit");
    for (int64_t k = 0; k < n * m; k++) C2[k] = C[k] * 1e250;
    CHECK(solve_check("huge", n, m, C2, NULL, NULL, NULL, NULL, &c2) == MONGE_OK, "huge");
    CHECK(fabs(c2 / 1e250 - c1) <= 1e-12 * c1, "huge costs scale: %g vs %g", c2 / 1e250, c1);
    for (int64_t k = 0; k < n * m; k++) C2[k] = C[k] * 1e-250;
    CHECK(solve_check("tiny", n, m, C2, NULL, NULL, NULL, NULL, &c3) == MONGE_OK, "tiny");
    CHECK(fabs(c3 / 1e-250 - c1) <= 1e-12 * c1, "tiny costs scale: %g vs %g", c3 / 1e-250, c1);
    /* an iteration limit that is reached: ENOCONV with a feasible plan */
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.max_iter = 3;
    int64_t rows[59], cols[59];
    double vals[59], f[25], g[35];
    monge_geometry geom = {n, m, MONGE_F64, C, NULL, NULL, 0, 0, 0, 0};
    monge_emd_info info;
    CHECK(monge_emd(&geom, NULL, NULL, &par, rows, cols, vals, f, g, &info) == MONGE_ENOCONV,
          "max_iter reached");
    CHECK(info.n_iter == 3, "pivots %lld", (long long)info.n_iter);
    cert c = certify(n, m, C, NULL, NULL, rows, cols, vals, info.nnz, f, g);
    CHECK(c.marg <= 1e-12, "capped plan feasible: %g", c.marg);
    CHECK(info.cost > c1, "capped plan not optimal");
    par.max_iter = -1;
    CHECK(monge_emd(&geom, NULL, NULL, &par, rows, cols, vals, f, g, &info) == MONGE_EINVAL,
          "negative max_iter");
    free(C);
    free(C2);
}

static int stop_now(void *ctx, int64_t it, double e)
{
    (void)ctx;
    (void)it;
    (void)e;
    return 1;
}

static void test_batch_and_interrupt(void)
{
    const int64_t B = 5, n = 150, m = 150, d = 2, cap = n + m - 1;
    double *x = malloc(sizeof(double) * B * n * d), *y = malloc(sizeof(double) * B * m * d);
    for (int64_t k = 0; k < B * n * d; k++) x[k] = urand();
    for (int64_t k = 0; k < B * m * d; k++) y[k] = urand();
    monge_geometry geoms[5];
    for (int64_t k = 0; k < B; k++) {
        monge_geometry g = {n, m, MONGE_F64, NULL, x + k * n * d, y + k * m * d, d,
                            MONGE_COST_SQEUCLIDEAN, 2, 0};
        geoms[k] = g;
    }
    int64_t *rows = malloc(sizeof(int64_t) * B * cap), *cols = malloc(sizeof(int64_t) * B * cap);
    double *vals = malloc(sizeof(double) * B * cap), *f = malloc(sizeof(double) * B * n),
           *g = malloc(sizeof(double) * B * m);
    monge_emd_info info[5], one;
    int status[5];
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.nthreads = 2;
    CHECK(monge_emd_batch(B, geoms, NULL, NULL, &par, rows, cols, vals, f, g, info, status) ==
              MONGE_OK,
          "batch");
    for (int64_t k = 0; k < B; k++) {
        monge_emd(&geoms[k], NULL, NULL, NULL, rows, cols, vals, f, g, &one);
        CHECK(one.cost == info[k].cost, "batch %lld equals single: %.17g vs %.17g", (long long)k,
              info[k].cost, one.cost);
    }
    par.progress = stop_now;
    monge_geometry big = {1000, 1000, MONGE_F64, NULL, NULL, NULL, d, MONGE_COST_SQEUCLIDEAN, 2, 0};
    double *bx = malloc(sizeof(double) * 2000 * d), *by = malloc(sizeof(double) * 2000 * d);
    for (int64_t k = 0; k < 2000 * d; k++) bx[k] = urand();
    for (int64_t k = 0; k < 2000 * d; k++) by[k] = urand();
    big.x = bx;
    big.y = by;
    int64_t *br = malloc(sizeof(int64_t) * 1999), *bc = malloc(sizeof(int64_t) * 1999);
    double *bv = malloc(sizeof(double) * 1999);
    par.init = 1; /* from the index-order corner: many pivots */
    CHECK(monge_emd(&big, NULL, NULL, &par, br, bc, bv, NULL, NULL, &one) == MONGE_EINTR,
          "interrupted");
    free(bx);
    free(by);
    free(br);
    free(bc);
    free(bv);
    free(x);
    free(y);
    free(rows);
    free(cols);
    free(vals);
    free(f);
    free(g);
}

static void test_1d_and_sliced(void)
{
    /* 1-D against the quantile formula for equal sizes: sorted pairs */
    const int64_t n = 50;
    double x[50], y[50], xs[50], ys[50];
    for (int64_t i = 0; i < n; i++) xs[i] = x[i] = urand() * 4 - 2;
    for (int64_t i = 0; i < n; i++) ys[i] = y[i] = urand() * 3;
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && xs[j - 1] > xs[j]; j--) {
            double t = xs[j];
            xs[j] = xs[j - 1];
            xs[j - 1] = t;
        }
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && ys[j - 1] > ys[j]; j--) {
            double t = ys[j];
            ys[j] = ys[j - 1];
            ys[j - 1] = t;
        }
    const double ps[3] = {1.0, 2.0, 1.5};
    for (int q = 0; q < 3; q++) {
        double ref = 0, cost = 0;
        for (int64_t i = 0; i < n; i++) ref += pow(fabs(xs[i] - ys[i]), ps[q]) / n;
        int64_t rows[99], cols[99], nnz = 0;
        double vals[99];
        CHECK(monge_emd_1d(n, n, x, y, NULL, NULL, ps[q], 1e-8, rows, cols, vals, &nnz, &cost) ==
                  MONGE_OK,
              "1d status");
        CHECK(fabs(cost - ref) <= 1e-13 * ref, "1d p=%g: %.17g vs %.17g", ps[q], cost, ref);
        CHECK(nnz == n, "1d nnz %lld", (long long)nnz);
    }
    /* 1-D equals the network simplex on |x - y|^p with weights */
    const int64_t m = 37;
    double a[50], b[37], yy[37], C[50 * 37];
    random_weights(a, n);
    random_weights(b, m);
    for (int64_t j = 0; j < m; j++) yy[j] = urand() * 3;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) C[i * m + j] = pow(fabs(x[i] - yy[j]), 1.5);
    double c1 = 0, cn = 0;
    CHECK(monge_emd_1d(n, m, x, yy, a, b, 1.5, 1e-8, NULL, NULL, NULL, NULL, &c1) == MONGE_OK,
          "1d weighted");
    CHECK(solve_check("1d vs simplex", n, m, C, NULL, a, b, NULL, &cn) == MONGE_OK, "simplex");
    CHECK(fabs(c1 - cn) <= 1e-12 * cn, "1d %.17g simplex %.17g", c1, cn);
    /* sliced: values and a finite-difference gradient */
    const int64_t d = 3, P = 7, ns = 20, ms = 15;
    double X[60], Y[45], th[21], w[7], G[60], w2[7];
    for (int64_t k = 0; k < ns * d; k++) X[k] = urand();
    for (int64_t k = 0; k < ms * d; k++) Y[k] = urand();
    for (int64_t l = 0; l < P; l++) {
        double s = 0;
        for (int64_t k = 0; k < d; k++) {
            th[l * d + k] = urand() - 0.5;
            s += th[l * d + k] * th[l * d + k];
        }
        for (int64_t k = 0; k < d; k++) th[l * d + k] /= sqrt(s);
    }
    CHECK(monge_sliced(ns, ms, d, X, Y, NULL, NULL, P, th, 2.0, 1e-8, w, G, 2) == MONGE_OK,
          "sliced");
    double maxerr = 0;
    for (int64_t k = 0; k < ns * d; k++) {
        const double h = 1e-6, keep = X[k];
        double sp = 0, sm = 0;
        X[k] = keep + h;
        monge_sliced(ns, ms, d, X, Y, NULL, NULL, P, th, 2.0, 1e-8, w2, NULL, 1);
        for (int64_t l = 0; l < P; l++) sp += w2[l] / P;
        X[k] = keep - h;
        monge_sliced(ns, ms, d, X, Y, NULL, NULL, P, th, 2.0, 1e-8, w2, NULL, 1);
        for (int64_t l = 0; l < P; l++) sm += w2[l] / P;
        X[k] = keep;
        double e = fabs((sp - sm) / (2 * h) - G[k]);
        maxerr = e > maxerr ? e : maxerr;
    }
    CHECK(maxerr < 1e-6, "sliced gradient vs finite differences: %g", maxerr);
    double w1[7];
    monge_sliced(ns, ms, d, X, Y, NULL, NULL, P, th, 2.0, 1e-8, w1, NULL, 1);
    for (int64_t l = 0; l < P; l++) CHECK(w1[l] == w[l], "sliced 1 vs 2 threads");
}

/* Found by the fuzzer: masses near the double range and weights 300 orders of magnitude apart
 * (rounding left the last column short of the remaining rows, which the starting basis then
 * failed to attach; later the flows overflowed). */
static void test_extreme_weights(void)
{
    const int64_t n = 5, m = 5, d = 2;
    double a[5] = {6, 1.7e308, 7, 0, 3};
    double b[5] = {4.6363636363636361e+307, 2.3181818181818181e+307, 5.4090909090909086e+307,
                   1.5454545454545453e+307, 3.0909090909090906e+307};
    double x[10] = {0.96875, 1.8125, 1.59375, -3.3125, -2.5, -1.375, 1.125, -0.09375, 3.90625, -3.9375};
    double y[10] = {-2.90625, 2.15625, -0.25, 3.125, 3.65625, -3.3125, -2.0625, 0.4375, -2.59375, 1.71875};
    monge_geometry g = {n, m, MONGE_F64, NULL, x, y, d, MONGE_COST_ELASTIC, 2, 0.5};
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.init = 2;
    int64_t rows[9], cols[9];
    double vals[9], f[5], gg[5];
    monge_emd_info info;
    /* the true cost (~10 x 1.7e308) is beyond the double range: a clear status, no crash */
    int st = monge_emd(&g, a, b, &par, rows, cols, vals, f, gg, &info);
    CHECK(st == MONGE_ENONFINITE, "extreme weights: status %d", st);
    /* the same weights scaled into range solve normally */
    for (int k = 0; k < 5; k++) {
        a[k] *= 1e-8;
        b[k] *= 1e-8;
    }
    st = monge_emd(&g, a, b, &par, rows, cols, vals, f, gg, &info);
    CHECK(st == MONGE_OK, "large weights: status %d", st);
    double sa = 0;
    for (int64_t k = 0; k < info.nnz && k < 9; k++) sa += vals[k];
    CHECK(fabs(sa / 1.7e300 - 1.0) < 1e-12, "large weights: plan mass %g", sa);
    double wa[5] = {1e-300, 1, 3e-300, 0, 2e-300}, wb[5] = {0.25, 0.25, 0.25, 0.125, 0.125};
    st = monge_emd(&g, wa, wb, &par, rows, cols, vals, f, gg, &info);
    CHECK(st == MONGE_OK, "weights 1e-300 apart: status %d", st);
}

/* a kept basis: solves of nearby costs from the previous optimal basis reach the same optimum as
 * cold solves, with fewer pivots; other weights are not started from it */
static void test_kept_basis(void)
{
    const int64_t n = 60, m = 50;
    double *C = malloc(sizeof(double) * n * m), *a = malloc(sizeof(double) * n),
           *b = malloc(sizeof(double) * m), *a2 = malloc(sizeof(double) * n);
    int64_t cap = n + m - 1, *r = malloc(sizeof(int64_t) * cap), *c = malloc(sizeof(int64_t) * cap);
    double *v = malloc(sizeof(double) * cap);
    for (int64_t k = 0; k < n * m; k++) C[k] = urand();
    random_weights(a, n);
    random_weights(b, m);
    random_weights(a2, n);
    monge_emd_basis *kb = NULL;
    CHECK(monge_emd_basis_new(&kb) == MONGE_OK && kb, "basis_new");
    CHECK(monge_emd_basis_new(NULL) == MONGE_EINVAL, "basis_new(NULL)");
    monge_emd_params warm, cold;
    monge_emd_params_init(&warm);
    monge_emd_params_init(&cold);
    warm.basis = kb;
    monge_emd_info iw, ic;
    int64_t pw = 0, pc = 0;
    for (int step = 0; step < 6; step++) {
        for (int64_t k = 0; k < n * m; k++) C[k] += 0.02 * (urand() - 0.5);
        const double *aa = step == 4 ? a2 : a; /* other weights: a cold start, kept after */
        CHECK(monge_emd(&(monge_geometry){n, m, MONGE_F64, C, NULL, NULL, 0, 0, 2.0, 0.0}, aa, b,
                        &warm, r, c, v, NULL, NULL, &iw) == MONGE_OK, "warm solve");
        CHECK(monge_emd(&(monge_geometry){n, m, MONGE_F64, C, NULL, NULL, 0, 0, 2.0, 0.0}, aa, b,
                        &cold, r, c, v, NULL, NULL, &ic) == MONGE_OK, "cold solve");
        CHECK(fabs(iw.cost - ic.cost) <= 1e-12 * fabs(ic.cost), "step %d: warm %.17g cold %.17g",
              step, iw.cost, ic.cost);
        if (step > 0 && step != 4 && step != 5) {
            pw += iw.n_iter;
            pc += ic.n_iter;
        }
    }
    CHECK(pw * 3 < pc, "kept basis: %lld pivots against %lld cold", (long long)pw, (long long)pc);
    monge_emd_basis_free(kb);
    monge_emd_basis_free(NULL);
    free(C);
    free(a);
    free(b);
    free(a2);
    free(r);
    free(c);
    free(v);
}

int main(void)
{
    rng_seed(12345);
    test_random_dense();
    test_online_matches_dense();
    test_degenerate();
    test_zero_weights_and_mass();
    test_scales_and_limits();
    test_batch_and_interrupt();
    test_1d_and_sliced();
    test_extreme_weights();
    test_kept_basis();
    return REPORT();
}
