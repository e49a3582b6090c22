/* Unit tests of the geometry kernels, against sums computed directly in long double, in float64 and
 * float32, with zero weights (-inf), and identical results on 1 and 2 threads:
 *  - the dense column softmin (row-streamed, with a hint, its exact fallback, no hint);
 *  - the one-pass marginals (row sums, column sums, row costs), dense and online, with potentials
 *    large enough that their rounding to float would show without the compensation;
 *  - the in-place softmax of the entropic map's weights (monge_softmax_rows), and its errors;
 *  - the float exps (internal.h) against exp, and their clamps to [MONGE_EXPF_LO, 88] at the ends
 *    (the upper one on the bits in monge_expf5_sum), infinities included. */
#include "../geometry.h"
#include "../internal.h"
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

static double rel_err(const double *a, const long double *ref, int64_t len)
{
    double e = 0;
    for (int64_t k = 0; k < len; k++) {
        const double d = ref[k] == 0 ? fabs(a[k]) : (double)fabsl((a[k] - ref[k]) / ref[k]);
        e = d > e || isnan(d) ? d : e;
    }
    return e;
}

static void test_marginals(monge_dtype dt, int64_t n, int64_t m)
{
    const double eps = 0.1;
    const int64_t d = 3;
    const int f32 = dt == MONGE_F32;
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    double *x = malloc(sizeof(double) * (size_t)(n * d)), *y = malloc(sizeof(double) * (size_t)(m * d));
    void *xs = malloc(es * (size_t)(n * d)), *ys = malloc(es * (size_t)(m * d));
    void *C = malloc(es * (size_t)(n * m));
    double *u = malloc(sizeof(double) * (size_t)n), *h = malloc(sizeof(double) * (size_t)m);
    double *rs = malloc(sizeof(double) * (size_t)n), *rc = malloc(sizeof(double) * (size_t)n);
    double *cs = malloc(sizeof(double) * (size_t)m);
    double *rs1 = malloc(sizeof(double) * (size_t)n), *cs1 = malloc(sizeof(double) * (size_t)m);
    long double *Rs = calloc((size_t)n, sizeof(long double)), *Rc = calloc((size_t)n, sizeof(long double));
    long double *Cs = calloc((size_t)m, sizeof(long double));
    for (int64_t k = 0; k < n * d; k++) {
        x[k] = urand();
        if (f32) x[k] = (double)(((float *)xs)[k] = (float)x[k]);
        else ((double *)xs)[k] = x[k];
    }
    for (int64_t k = 0; k < m * d; k++) {
        y[k] = urand();
        if (f32) y[k] = (double)(((float *)ys)[k] = (float)y[k]);
        else ((double *)ys)[k] = y[k];
    }
    /* potentials near +-20 whose sum is O(1): rounded to float they would be off by ~1e-6,
       1e-5 of eps, on every entry of a row or column */
    for (int64_t i = 0; i < n; i++) u[i] = 20.0 + 0.2 * urand();
    for (int64_t j = 0; j < m; j++) h[j] = -20.3 + 0.2 * urand();
    u[2] = -INFINITY;
    h[m - 1] = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            double c = 0;
            for (int64_t k = 0; k < d; k++) c += (x[i * d + k] - y[j * d + k]) * (x[i * d + k] - y[j * d + k]);
            if (f32) {
                ((float *)C)[i * m + j] = (float)c;
                c = (double)(float)c;
            } else {
                ((double *)C)[i * m + j] = c;
            }
            const long double p = expl(((long double)u[i] + h[j] - c) / eps);
            Rs[i] += p;
            Rc[i] += p * c;
            Cs[j] += p;
        }
    /* float: what is left is the rounding of each exponent (half an ulp of a number ~1, over
       eps = 0.1: 6e-7 per entry; measured up to 8.2e-7).  Without the compensation the rows are
       off by 1e-5 (measured 9.9e-6). */
    const double tol = f32 ? 2e-6 : 1e-13;
    const char *name = f32 ? "f32" : "f64";
    for (int online = 0; online < 2; online++) {
        monge_geometry g = {.n = n, .m = m, .dtype = dt};
        if (online) {
            g.x = xs;
            g.y = ys;
            g.d = d;
            g.cost = MONGE_COST_SQEUCLIDEAN;
        } else {
            g.C = C;
        }
        monge_geom_work *w = NULL;
        CHECK(monge_geom_prepare(&g, 2, &w) == MONGE_OK, "prepare");
        if (!w) continue;
        CHECK(monge_geom_marginals(w, eps, u, h, rs, cs, rc, 2) == MONGE_OK, "marginals");
        CHECK(rel_err(rs, Rs, n) < tol && rel_err(cs, Cs, m) < tol && rel_err(rc, Rc, n) < tol,
              "%s %s %lld x %lld marginals: rows %g, columns %g, costs %g", name,
              online ? "online" : "dense", (long long)n, (long long)m, rel_err(rs, Rs, n),
              rel_err(cs, Cs, m), rel_err(rc, Rc, n));
        CHECK(rs[2] == 0 && cs[m - 1] == 0, "%s: zero row %g, zero column %g", name, rs[2], cs[m - 1]);
        CHECK(monge_geom_marginals(w, eps, u, h, rs1, cs1, NULL, 1) == MONGE_OK &&
                  memcmp(rs, rs1, sizeof(double) * (size_t)n) == 0 &&
                  memcmp(cs, cs1, sizeof(double) * (size_t)m) == 0,
              "%s marginals: 1 and 2 threads differ", name);
        CHECK(monge_geom_marginals(w, 0.0, u, h, rs, cs, rc, 2) == MONGE_EINVAL, "eps 0 accepted");
        monge_geom_release(w);
    }
    free(x);
    free(y);
    free(xs);
    free(ys);
    free(C);
    free(u);
    free(h);
    free(rs);
    free(rc);
    free(cs);
    free(rs1);
    free(cs1);
    free(Rs);
    free(Rc);
    free(Cs);
}

/* The online sqeuclidean row softmin (cost fused into the exp-sum for d <= 4, a cost tile above),
 * both directions, against long double sums. */
static void test_online_softmin(monge_dtype dt, int64_t n, int64_t m, int64_t d)
{
    const double eps = 0.05;
    const int f32 = dt == MONGE_F32;
    const size_t es = f32 ? sizeof(float) : sizeof(double);
    double *x = malloc(sizeof(double) * (size_t)(n * d)), *y = malloc(sizeof(double) * (size_t)(m * d));
    void *xs = malloc(es * (size_t)(n * d)), *ys = malloc(es * (size_t)(m * d));
    const int64_t nm = n > m ? n : m;
    double *h = malloc(sizeof(double) * (size_t)nm), *hint = malloc(sizeof(double) * (size_t)nm);
    double *out = malloc(sizeof(double) * (size_t)nm), *ref = malloc(sizeof(double) * (size_t)nm);
    for (int64_t k = 0; k < n * d; k++) {
        x[k] = urand();
        if (f32) x[k] = (double)(((float *)xs)[k] = (float)x[k]);
        else ((double *)xs)[k] = x[k];
    }
    for (int64_t k = 0; k < m * d; k++) {
        y[k] = urand() + 0.2;
        if (f32) y[k] = (double)(((float *)ys)[k] = (float)y[k]);
        else ((double *)ys)[k] = y[k];
    }
    monge_geometry g = {.n = n, .m = m, .dtype = dt, .x = xs, .y = ys, .d = d,
                        .cost = MONGE_COST_SQEUCLIDEAN};
    monge_geom_work *w = NULL;
    CHECK(monge_geom_prepare(&g, 2, &w) == MONGE_OK, "prepare");
    for (int tr = 0; tr < 2 && w; tr++) {
        const int64_t nr = tr ? m : n, nc = tr ? n : m;
        const double *P = tr ? y : x, *Q = tr ? x : y;
        for (int64_t j = 0; j < nc; j++) h[j] = 0.1 * urand();
        for (int64_t i = 0; i < nr; i++) {
            long double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < nc; j++) {
                long double c = 0;
                for (int64_t k = 0; k < d; k++) c += ((long double)P[i * d + k] - Q[j * d + k]) * ((long double)P[i * d + k] - Q[j * d + k]);
                if (h[j] - c > mx) mx = h[j] - c;
            }
            for (int64_t j = 0; j < nc; j++) {
                long double c = 0;
                for (int64_t k = 0; k < d; k++) c += ((long double)P[i * d + k] - Q[j * d + k]) * ((long double)P[i * d + k] - Q[j * d + k]);
                sum += expl((h[j] - c - mx) / eps);
            }
            ref[i] = (double)(mx + eps * logl(sum));
            hint[i] = ref[i] + 0.01 * (urand() - 0.5); /* in range: the hinted (fused) sum */
        }
        CHECK(monge_softmin(w, tr, eps, h, hint, out, 2) == MONGE_OK, "softmin");
        /* measured: at most 5e-8 in float (the cost and exponent rounded in float), 1.1e-16 in
           double */
        const double tol = f32 ? 2e-7 : 1e-14;
        CHECK(max_abs_diff(out, ref, nr) < tol, "%s online d = %lld, %s: off by %g",
              f32 ? "f32" : "f64", (long long)d, tr ? "columns" : "rows", max_abs_diff(out, ref, nr));
    }
    monge_geom_release(w);
    free(x);
    free(y);
    free(xs);
    free(ys);
    free(h);
    free(hint);
    free(out);
    free(ref);
}

/* monge_softmax_rows against exp(scale z + shift - max) and its row sum in long double */
static void test_softmax_rows(monge_dtype dt, int64_t k, int64_t m)
{
    const size_t es = dt == MONGE_F32 ? sizeof(float) : sizeof(double);
    double *z0 = malloc(sizeof(double) * (size_t)(k * m)), *sh = malloc(sizeof(double) * (size_t)m);
    void *Z = malloc(es * (size_t)(k * m)), *S = malloc(es * (size_t)m);
    double *rs = malloc(sizeof(double) * (size_t)k);
    const double scale = 7.5;
    for (int64_t t = 0; t < k * m; t++) z0[t] = 4.0 * urand() - 2.0;
    for (int64_t j = 0; j < m; j++) sh[j] = 30.0 * urand() - 15.0; /* spans exp's float range */
    for (int64_t t = 0; t < k * m; t++) {
        if (dt == MONGE_F32) ((float *)Z)[t] = (float)z0[t];
        else ((double *)Z)[t] = z0[t];
    }
    for (int64_t j = 0; j < m; j++) {
        if (dt == MONGE_F32) ((float *)S)[j] = (float)sh[j];
        else ((double *)S)[j] = sh[j];
    }
    CHECK(monge_softmax_rows(dt, k, m, Z, S, scale, rs, 2) == MONGE_OK, "softmax_rows status");
    double werr = 0, serr = 0;
    for (int64_t i = 0; i < k; i++) {
        long double mx = -INFINITY, s = 0;
        for (int64_t j = 0; j < m; j++) {
            const double zz = dt == MONGE_F32 ? (double)(float)z0[i * m + j] : z0[i * m + j];
            const long double v = scale * (long double)zz +
                                  (dt == MONGE_F32 ? (long double)(float)sh[j] : sh[j]);
            if (v > mx) mx = v;
        }
        for (int64_t j = 0; j < m; j++) {
            const double zz = dt == MONGE_F32 ? (double)(float)z0[i * m + j] : z0[i * m + j];
            const long double v = scale * (long double)zz +
                                  (dt == MONGE_F32 ? (long double)(float)sh[j] : sh[j]);
            const long double e = expl(v - mx);
            s += e;
            const double got = dt == MONGE_F32 ? (double)((float *)Z)[i * m + j]
                                               : ((double *)Z)[i * m + j];
            const double err = fabs(got - (double)e);
            werr = err > werr ? err : werr;
        }
        const double rel = fabs(rs[i] - (double)s) / (double)s;
        serr = rel > serr ? rel : serr;
    }
    const double tol = dt == MONGE_F32 ? 2e-5 : 1e-12; /* float: scale x |z| ~ 15 times its ulp */
    CHECK(werr < tol, "softmax_rows weights (%s, %lld x %lld): max error %.3g", dt == MONGE_F32 ? "f32" : "f64",
          (long long)k, (long long)m, werr);
    CHECK(serr < tol, "softmax_rows row sums: relative error %.3g", serr);
    /* NaN in a row is reported, bad arguments refused */
    if (dt == MONGE_F32) ((float *)Z)[m + 1] = NAN;
    else ((double *)Z)[m + 1] = NAN;
    CHECK(k < 2 || monge_softmax_rows(dt, k, m, Z, S, scale, rs, 1) == MONGE_ENONFINITE,
          "softmax_rows: NaN -> MONGE_ENONFINITE");
    CHECK(monge_softmax_rows(dt, k, 0, Z, S, scale, rs, 1) == MONGE_EINVAL, "softmax_rows: m = 0");
    CHECK(monge_softmax_rows(dt, k, m, Z, S, INFINITY, rs, 1) == MONGE_EINVAL, "softmax_rows: scale inf");
    CHECK(monge_softmax_rows((monge_dtype)7, k, m, Z, S, scale, rs, 1) == MONGE_EINVAL,
          "softmax_rows: bad dtype");
    free(z0);
    free(sh);
    free(Z);
    free(S);
    free(rs);
}

/* Inside the range: within a few float ulps of exp (double).  Below it: exp(lo) from the _sum
 * variants and 0 from monge_expf; above it: exp(88), through +inf.  NaN stays NaN (in
 * monge_expf5_sum, the NaN of an invalid operation). */
static void test_expf(void)
{
    double worst = 0, worst5 = 0;
    for (int k = 0; k <= 200000; k++) {
        const float x = (float)(MONGE_EXPF_LO + (88.0 - MONGE_EXPF_LO) * k / 200000.0);
        const double ref = exp((double)x);
        const double e1 = fabs(monge_expf_sum(x) - ref) / ref, e5 = fabs(monge_expf5_sum(x) - ref) / ref;
        worst = e1 > worst ? e1 : worst;
        worst5 = e5 > worst5 ? e5 : worst5;
    }
    CHECK(worst < 2.5e-7, "expf_sum: relative error %g in range", worst);
    CHECK(worst5 < 5e-7, "expf5_sum: relative error %g in range", worst5);
    const float lo = monge_expf_sum(MONGE_EXPF_LO), lo5 = monge_expf5_sum(MONGE_EXPF_LO);
    const float hi = monge_expf_sum(88.0f), hi5 = monge_expf5_sum(88.0f);
    const float below[] = {-INFINITY, -3.4e38f, -1e30f, -1e6f, -1000.0f, -88.0f, -87.00001f};
    const float above[] = {88.00001f, 88.5f, 89.0f, 1000.0f, 1e6f, 1e30f, 3.4e38f, INFINITY};
    for (size_t k = 0; k < sizeof below / sizeof below[0]; k++) {
        CHECK(monge_expf_sum(below[k]) == lo && monge_expf5_sum(below[k]) == lo5,
              "exp_sum(%g) is not exp(lo)", (double)below[k]);
        CHECK(monge_expf(below[k]) == 0.0f, "expf(%g) = %g, not 0", (double)below[k],
              (double)monge_expf(below[k]));
    }
    for (size_t k = 0; k < sizeof above / sizeof above[0]; k++)
        CHECK(monge_expf_sum(above[k]) == hi && monge_expf5_sum(above[k]) == hi5,
              "exp_sum(%g) is not exp(88)", (double)above[k]);
    CHECK(isfinite(hi) && fabs(hi - exp(88.0)) < 1e-6 * exp(88.0), "exp(88) = %g", (double)hi);
    CHECK(monge_expf_sum(0.0f) == 1.0f && monge_expf_sum(-0.0f) == 1.0f, "exp(+-0) is not 1");
    CHECK(monge_expf_sum(1e-40f) == 1.0f && monge_expf5_sum(-1e-40f) == 1.0f, "exp(denormal) is not 1");
    CHECK(isnan(monge_expf_sum(NAN)) && isnan(monge_expf(NAN)), "exp(NaN) is not NaN");
    volatile float inf = INFINITY;
    const float made = inf - inf; /* an invalid operation's NaN (sign bit set on x86) */
    CHECK(!signbit(made) || isnan(monge_expf5_sum(made)), "expf5_sum(inf - inf) is not NaN");
}

int main(void)
{
    rng_seed(7);
    test_expf();
    /* sizes below and above the 32 row blocks, with a ragged last block, and one large enough
       for the kernels to run on 2 threads (>= 262144 entries) */
    const int64_t sizes[][2] = {{5, 7}, {33, 300}, {257, 129}, {700, 90}, {1001, 300}};
    for (int k = 0; k < 5; k++) {
        test_column_softmin(MONGE_F64, sizes[k][0], sizes[k][1]);
        test_column_softmin(MONGE_F32, sizes[k][0], sizes[k][1]);
        test_marginals(MONGE_F64, sizes[k][0], sizes[k][1]);
        test_marginals(MONGE_F32, sizes[k][0], sizes[k][1]);
    }
    for (int64_t d = 1; d <= 5; d++) { /* fused up to d = 4, a cost tile at 5 */
        test_online_softmin(MONGE_F64, 300, 1100, d);
        test_online_softmin(MONGE_F32, 300, 1100, d);
    }
    test_softmax_rows(MONGE_F64, 37, 1300); /* ragged last tile of 512 columns */
    test_softmax_rows(MONGE_F32, 37, 1300);
    test_softmax_rows(MONGE_F64, 3, 1);
    return REPORT();
}
