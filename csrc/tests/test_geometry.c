/* Unit tests of the geometry kernels: the dense column softmin (row-streamed, with a hint, its
 * exact fallback and no hint) against a log-sum-exp computed directly in long double, in float64
 * and float32, with zero weights (h = -inf), and identical results on 1 and 2 threads. */
#include "../geometry.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* out_j = eps log sum_i exp((h_i - C_ij) / eps), directly with a max shift */
static void reference(const double *C, const double *h, int64_t n, int64_t m, double eps,
                      double *out)
{
    for (int64_t j = 0; j < m; j++) {
        long double mx = -INFINITY;
        for (int64_t i = 0; i < n; i++)
            if ((long double)h[i] - C[i * m + j] > mx) mx = (long double)h[i] - C[i * m + j];
        if (!(mx > -INFINITY)) {
            out[j] = -INFINITY;
            continue;
        }
        long double s = 0;
        for (int64_t i = 0; i < n; i++) s += expl(((long double)h[i] - C[i * m + j] - mx) / eps);
        out[j] = (double)(mx + eps * logl(s));
    }
}

static double max_abs_diff(const double *a, const double *b, int64_t len)
{
    double d = 0;
    for (int64_t j = 0; j < len; j++) {
        if (isinf(a[j]) && isinf(b[j]) && (a[j] > 0) == (b[j] > 0)) continue;
        const double e = fabs(a[j] - b[j]);
        d = e > d || isnan(e) ? e : d;
    }
    return d;
}

static void test_column_softmin(monge_dtype dt, int64_t n, int64_t m)
{
    const double eps = 0.01;
    double *C = malloc(sizeof(double) * (size_t)(n * m));
    float *Cf = malloc(sizeof(float) * (size_t)(n * m));
    double *h = malloc(sizeof(double) * (size_t)n), *ref = malloc(sizeof(double) * (size_t)m);
    double *out = malloc(sizeof(double) * (size_t)m), *out1 = malloc(sizeof(double) * (size_t)m);
    double *hint = malloc(sizeof(double) * (size_t)m);
    for (int64_t k = 0; k < n * m; k++) {
        C[k] = 2.0 * urand();
        Cf[k] = (float)C[k];
        if (dt == MONGE_F32) C[k] = (double)Cf[k]; /* the reference sees the same costs */
    }
    for (int64_t i = 0; i < n; i++) h[i] = 0.3 * urand();
    h[1] = -INFINITY; /* zero weights */
    h[n - 1] = -INFINITY;
    reference(C, h, n, m, eps, ref);
    /* float32 sums its exps in float: ~1e-7 relative per entry, times eps in the log */
    const double tol = dt == MONGE_F32 ? 2e-6 : 1e-12;
    const char *name = dt == MONGE_F32 ? "f32" : "f64";
    monge_geometry g = {.n = n, .m = m, .dtype = dt, .C = dt == MONGE_F32 ? (const void *)Cf : C};
    monge_geom_work *w = NULL;
    CHECK(monge_geom_prepare(&g, 2, &w) == MONGE_OK, "prepare");
    if (!w) goto done;
    /* 1: a good hint (the answer itself, perturbed): the row-streamed hinted sums */
    for (int64_t j = 0; j < m; j++) hint[j] = ref[j] + 0.05 * (urand() - 0.5);
    CHECK(monge_softmin(w, 1, eps, h, hint, out, 2) == MONGE_OK, "softmin");
    CHECK(max_abs_diff(out, ref, m) < tol, "%s %lld x %lld, hinted: off by %g", name,
          (long long)n, (long long)m, max_abs_diff(out, ref, m));
    CHECK(monge_softmin(w, 1, eps, h, hint, out1, 1) == MONGE_OK &&
              memcmp(out, out1, sizeof(double) * (size_t)m) == 0,
          "%s hinted: 1 and 2 threads differ", name);
    /* 2: hints far off on some columns (their sums under/overflow: the exact fallback) */
    for (int64_t j = 0; j < m; j += 3) hint[j] = ref[j] + (j % 2 ? 100.0 : -100.0);
    CHECK(monge_softmin(w, 1, eps, h, hint, out, 2) == MONGE_OK, "softmin");
    CHECK(max_abs_diff(out, ref, m) < tol, "%s bad hints: off by %g", name,
          max_abs_diff(out, ref, m));
    CHECK(monge_softmin(w, 1, eps, h, hint, out1, 1) == MONGE_OK &&
              memcmp(out, out1, sizeof(double) * (size_t)m) == 0,
          "%s bad hints: 1 and 2 threads differ", name);
    /* 3: no hint (maxima first) */
    CHECK(monge_softmin(w, 1, eps, h, NULL, out, 2) == MONGE_OK, "softmin");
    CHECK(max_abs_diff(out, ref, m) < tol, "%s no hint: off by %g", name,
          max_abs_diff(out, ref, m));
    /* 4: every weight zero: -inf everywhere, no NaN */
    for (int64_t i = 0; i < n; i++) h[i] = -INFINITY;
    CHECK(monge_softmin(w, 1, eps, h, NULL, out, 2) == MONGE_OK, "softmin");
    int all_minf = 1;
    for (int64_t j = 0; j < m; j++) all_minf &= isinf(out[j]) && out[j] < 0;
    CHECK(all_minf, "%s all weights zero: not -inf everywhere", name);
    monge_geom_release(w);
done:
    free(C);
    free(Cf);
    free(h);
    free(ref);
    free(out);
    free(out1);
    free(hint);
}

int main(void)
{
    rng_seed(7);
    /* sizes below and above the 32 row blocks, with a ragged last block, and one large enough
       for the kernels to run on 2 threads (>= 262144 entries) */
    const int64_t sizes[][2] = {{5, 7}, {33, 300}, {257, 129}, {700, 90}, {1001, 300}};
    for (int k = 0; k < 5; k++) {
        test_column_softmin(MONGE_F64, sizes[k][0], sizes[k][1]);
        test_column_softmin(MONGE_F32, sizes[k][0], sizes[k][1]);
    }
    return REPORT();
}
