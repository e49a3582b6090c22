/* Fuzz target for every C entry point of monge (libFuzzer interface).
 *
 * The input bytes choose an entry point and then feed its arguments: small shapes, values that
 * mix ordinary numbers with NaN, +-inf, denormals, zeros, huge and tiny magnitudes, weights with
 * zeros and negative entries, eps from 1e-300 to 1e300, degenerate costs.  Every call must return
 * one of the documented status codes without a crash or a sanitizer report, and a call that
 * returns MONGE_OK must not "lie": its reported values are finite.
 *
 * Build with clang:  clang -fsanitize=fuzzer,address,undefined ... (make fuzz)
 * Without clang:     gcc -fsanitize=address,undefined with driver.c, a random/mutation driver
 *                    (make fuzz-gcc, run for a bounded time by make test). */
#include "../../monge.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t n, i;
} src;

static uint8_t u8(src *s) { return s->i < s->n ? s->p[s->i++] : 0; }

static int64_t small(src *s, int64_t lo, int64_t hi) { return lo + (int64_t)(u8(s) % (uint8_t)(hi - lo + 1)); }

/* a double: mostly ordinary values, sometimes special ones */
static double num(src *s)
{
    static const double special[] = {0.0, -0.0, 1.0, -1.0, NAN, INFINITY, -INFINITY, 5e-324,
                                     1e-310, 1e-300, 1e300, 1.7e308, 1e12, -1e12, 0.5, 2.0};
    uint8_t k = u8(s);
    if (k < 32) return special[k % 16];
    uint8_t a = u8(s), b = u8(s);
    return ((double)a - 128.0) / 16.0 + (double)b / 4096.0;
}

/* a double that is finite and ordinary (for the arguments a valid call needs) */
static double ordinary(src *s) { return ((double)u8(s) - 128.0) / 32.0; }

static double *arr(src *s, int64_t len, int special)
{
    double *v = malloc(sizeof(double) * (size_t)(len > 0 ? len : 1));
    for (int64_t k = 0; k < len; k++) v[k] = special ? num(s) : ordinary(s);
    return v;
}

static double *weights(src *s, int64_t len, int mode)
{
    double *w = malloc(sizeof(double) * (size_t)len);
    for (int64_t k = 0; k < len; k++) {
        double v = (double)(u8(s) % 8);
        if (mode == 1 && u8(s) < 8) v = -v; /* negative entries */
        if (mode == 2 && u8(s) < 8) v = num(s);
        w[k] = v;
    }
    return w;
}

static int known(int st)
{
    return st == MONGE_OK || st == MONGE_EINVAL || st == MONGE_ENOMEM || st == MONGE_ENOCONV ||
           st == MONGE_EINTR || st == MONGE_ENONFINITE || st == MONGE_ELINESEARCH ||
           st == MONGE_ESTAGE;
}

static void expect(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz: contract broken: %s\n", what);
        abort();
    }
}

static int all_finite(const double *v, int64_t len)
{
    for (int64_t k = 0; k < len; k++)
        if (!isfinite(v[k])) return 0;
    return 1;
}

static void fz_sinkhorn(src *s, int divergence)
{
    const int64_t n = small(s, 1, 9), m = small(s, 1, 9), d = small(s, 1, 3);
    double *x = arr(s, n * d, u8(s) < 40), *y = arr(s, m * d, u8(s) < 40);
    double *a = u8(s) < 128 ? weights(s, n, u8(s) % 3) : NULL;
    double *b = u8(s) < 128 ? weights(s, m, u8(s) % 3) : NULL;
    monge_geometry g = {n, m, MONGE_F64, NULL, x, y, d, (monge_cost)(u8(s) % 5), 1.0 + u8(s) % 3,
                        (double)(u8(s) % 3), };
    double taus[] = {INFINITY, 1.0, 1e-3, 0.0, -1.0, NAN};
    monge_problem pb = {&g, a, b, taus[u8(s) % 6], taus[u8(s) % 6]};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    double epss[] = {1e-300, 1e-6, 1e-2, 1.0, 1e300, 0.0, -1.0, NAN};
    par.eps = u8(s) < 200 ? epss[u8(s) % 8] : fabs(ordinary(s)) + 1e-3;
    par.max_iter = 1 + u8(s) % 200;
    par.eps_scaling = u8(s) % 3;
    par.nthreads = 1 + u8(s) % 2;
    par.kernel = u8(s) % 3; /* the float kernel cache: off, automatic, forced */
    if (!divergence) {
        double *f = calloc((size_t)n, sizeof(double)), *gg = calloc((size_t)m, sizeof(double));
        monge_sinkhorn_info info;
        int st = monge_sinkhorn(&pb, &par, f, gg, &info);
        expect(known(st), "sinkhorn status");
        /* results come back to the user with OK and (with a warning) with ENOCONV: both finite */
        if (st == MONGE_OK || st == MONGE_ENOCONV)
            expect(all_finite(f, n) && all_finite(gg, m) && isfinite(info.value) && isfinite(info.cost),
                   "sinkhorn result non-finite");
        /* the multiscale solver on the same problem (its knobs fuzzed too), and its symmetric
           form: known statuses, finite results, a bound that is a number */
        monge_ms_params mp;
        monge_ms_params_init(&mp);
        double scales[] = {0.0, 1e-3, 0.1, 1.0, -1.0, NAN}; /* cluster_scale inputs, not tolerances */
        double taus2[] = {MONGE_MS_TAU, 1.0, 0.0, 61.0, NAN};
        mp.cluster_scale = scales[u8(s) % 6];
        mp.truncation = taus2[u8(s) % 5];
        par.scaling_factor = 0.5;
        monge_ms_info mi;
        double *gx = calloc((size_t)(n * d), sizeof(double)), *gy = calloc((size_t)(m * d), sizeof(double));
        st = monge_sinkhorn_multiscale_grad(&pb, &par, &mp, f, gg, gx, gy, &info, &mi);
        expect(known(st), "multiscale status");
        if (st == MONGE_OK || st == MONGE_ENOCONV)
            expect(all_finite(f, n) && all_finite(gg, m) && isfinite(info.value) &&
                       isfinite(info.cost) && mi.bound >= 0 && all_finite(gx, n * d) &&
                       all_finite(gy, m * d),
                   "multiscale result non-finite");
        st = monge_sinkhorn_multiscale_symmetric_grad(&pb, &par, &mp, f, gx, &info, &mi);
        expect(known(st), "multiscale symmetric status");
        if (st == MONGE_OK || st == MONGE_ENOCONV)
            expect(all_finite(f, n) && isfinite(info.value) && all_finite(gx, n * d),
                   "multiscale symmetric non-finite");
        free(f);
        free(gg);
        free(gx);
        free(gy);
    } else {
        monge_divergence_params dp;
        monge_divergence_params_init(&dp);
        dp.sk = par;
        dp.static_b = u8(s) & 1;
        dp.dense = u8(s) & 1;
        double *gx = malloc(sizeof(double) * (size_t)(n * d)), *gy = malloc(sizeof(double) * (size_t)(m * d));
        monge_divergence_info info;
        int st = monge_sinkhorn_divergence(&pb, &dp, gx, dp.static_b ? NULL : gy, NULL, NULL, &info);
        expect(known(st), "divergence status");
        if (st == MONGE_OK) expect(isfinite(info.value) && all_finite(gx, n * d), "divergence OK but non-finite");
        if (n == m) {
            monge_gap_params gp;
            monge_gap_params_init(&gp);
            gp.sk = par;
            gp.eps_mode = (monge_eps_mode)(u8(s) % 3);
            monge_gap_info gi;
            st = monge_monge_gap(&g, &gp, gx, NULL, &gi);
            expect(known(st), "monge gap status");
            if (st == MONGE_OK) expect(isfinite(gi.value), "monge gap OK but non-finite");
        }
        free(gx);
        free(gy);
    }
    free(x);
    free(y);
    free(a);
    free(b);
}

static void fz_emd(src *s)
{
    const int64_t n = small(s, 1, 12), m = small(s, 1, 12), d = small(s, 1, 3);
    const int online = u8(s) & 1;
    double *C = arr(s, n * m, u8(s) < 40), *x = arr(s, n * d, u8(s) < 30), *y = arr(s, m * d, u8(s) < 30);
    if (u8(s) < 60) /* degenerate costs: few distinct values */
        for (int64_t k = 0; k < n * m; k++) C[k] = isfinite(C[k]) ? floor(fmod(fabs(C[k]), 3.0)) : C[k];
    double *a = u8(s) < 128 ? weights(s, n, u8(s) % 3) : NULL;
    double *b = u8(s) < 128 ? weights(s, m, u8(s) % 3) : NULL;
    if (a && b && u8(s) < 200) { /* usually equal masses */
        double sa = 0, sb = 0;
        for (int64_t i = 0; i < n; i++) sa += a[i];
        for (int64_t j = 0; j < m; j++) sb += b[j];
        if (sa > 0 && sb > 0 && isfinite(sa) && isfinite(sb))
            for (int64_t j = 0; j < m; j++) b[j] *= sa / sb;
    }
    monge_geometry g = {n, m, MONGE_F64, online ? NULL : C, x, y, d, (monge_cost)(u8(s) % 5), 1.0 + u8(s) % 3, 0.5};
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.max_iter = u8(s) < 30 ? 1 + u8(s) % 5 : 0;
    par.block_size = u8(s) < 30 ? 1 + u8(s) % 7 : 0;
    par.init = online ? u8(s) % 3 : u8(s) % 2;
    const int64_t cap = n + m - 1;
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)cap), *cols = malloc(sizeof(int64_t) * (size_t)cap);
    double *vals = malloc(sizeof(double) * (size_t)cap), *f = malloc(sizeof(double) * (size_t)n),
           *gg = malloc(sizeof(double) * (size_t)m);
    monge_emd_info info;
    int st = monge_emd(&g, a, b, &par, rows, cols, vals, f, gg, &info);
    expect(known(st), "emd status");
    if (st == MONGE_OK) {
        expect(isfinite(info.cost) && all_finite(f, n) && all_finite(gg, m), "emd OK but non-finite");
        expect(info.nnz <= cap, "emd nnz");
        for (int64_t k = 0; k < info.nnz; k++)
            expect(rows[k] >= 0 && rows[k] < n && cols[k] >= 0 && cols[k] < m && vals[k] > 0, "emd triplet");
    }
    /* 1-D and sliced on the same data */
    double cost1 = 0;
    int64_t nnz = 0;
    st = monge_emd_1d(n, m, x, y, a, b, 1.0 + (u8(s) % 4) * 0.5, 1e-8, rows, cols, vals, &nnz, &cost1);
    expect(known(st), "emd_1d status");
    if (st == MONGE_OK) expect(isfinite(cost1) && nnz <= cap, "emd_1d OK but bad output");
    double th[6], w[2], *grad = malloc(sizeof(double) * (size_t)(n * d));
    for (int k = 0; k < 6; k++) th[k] = num(s);
    st = monge_sliced(n, m, d, x, y, a, b, 2, th, 1.0 + u8(s) % 3, 1e-8, w, grad, 1 + u8(s) % 2);
    expect(known(st), "sliced status");
    free(grad);
    free(rows);
    free(cols);
    free(vals);
    free(f);
    free(gg);
    free(C);
    free(x);
    free(y);
    free(a);
    free(b);
}

static void fz_ctc(src *s)
{
    const int64_t T = small(s, 1, 12), N = small(s, 1, 4), C = small(s, 1, 6);
    double *lp = arr(s, T * N * C, u8(s) < 40);
    if (u8(s) < 200) /* usually log-softmax rows */
        for (int64_t r = 0; r < T * N; r++) {
            double mx = -INFINITY, z = 0;
            for (int64_t c = 0; c < C; c++) mx = fmax(mx, lp[r * C + c]);
            for (int64_t c = 0; c < C; c++) z += exp(lp[r * C + c] - mx);
            for (int64_t c = 0; c < C; c++) lp[r * C + c] -= mx + log(z);
        }
    int64_t il[4], tl[4], off[4], tg[64], K = 0;
    for (int64_t n = 0; n < N; n++) {
        il[n] = small(s, -1, T + 1);
        tl[n] = small(s, -1, 7);
        off[n] = K;
        for (int64_t k = 0; k < (tl[n] > 0 ? tl[n] : 0) && K < 64; k++) tg[K++] = small(s, -1, C);
        if (off[n] + (tl[n] > 0 ? tl[n] : 0) > K) tl[n] = K - off[n];
    }
    double loss[4], w[4] = {1, 0.5, 2, 1};
    double *g = malloc(sizeof(double) * (size_t)(T * N * C));
    int st = monge_ctc(T, N, C, MONGE_F64, lp, tg, off, il, tl, small(s, -1, C), u8(s) & 1,
                       (monge_ctc_grad)(u8(s) % 3), w, loss, g, 1 + u8(s) % 2);
    expect(known(st), "ctc status");
    if (st == MONGE_OK)
        for (int64_t n = 0; n < N; n++) expect(!isnan(loss[n]), "ctc OK but NaN loss");
    free(g);
    free(lp);
}

static void fz_align(src *s)
{
    const int64_t B = small(s, 1, 3), n = small(s, 1, 6), m = small(s, 1, 6), d = small(s, 1, 3);
    double *X = arr(s, B * n * d, u8(s) < 40), *Y = arr(s, B * m * d, u8(s) < 40);
    uint8_t mx[18], my[18];
    for (int64_t k = 0; k < B * n; k++) mx[k] = u8(s) < 200;
    for (int64_t k = 0; k < B * m; k++) my[k] = u8(s) < 200;
    monge_align_params par;
    monge_align_params_init(&par);
    par.method = (monge_align_method)(u8(s) % 2);
    double epss[] = {1e-300, 1e-3, 0.1, 10.0, 0.0, -1.0, NAN, 1e300};
    par.eps = epss[u8(s) % 8];
    par.beta = epss[u8(s) % 8];
    par.max_iter = u8(s) % 50;
    par.outer = u8(s) % 20;
    par.inner = u8(s) % 3;
    double *P = malloc(sizeof(double) * (size_t)(B * n * m)), dist[3], err[3], wt[3] = {1, 1, 1};
    double *GX = malloc(sizeof(double) * (size_t)(B * n * d)), *GY = malloc(sizeof(double) * (size_t)(B * m * d));
    int64_t it[3];
    int st = monge_align(B, n, m, d, X, Y, mx, my, &par, P, dist, err, it, wt, GX, GY);
    expect(known(st), "align status");
    if (st == MONGE_OK) expect(all_finite(dist, B), "align OK but non-finite");
    free(P);
    free(GX);
    free(GY);
    free(X);
    free(Y);
}

static void fz_smooth(src *s)
{
    const int64_t n = small(s, 1, 8), m = small(s, 1, 8);
    double *C = arr(s, n * m, u8(s) < 40);
    double *a = weights(s, n, u8(s) % 3), *b = weights(s, m, u8(s) % 3);
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) sa += a[i];
    for (int64_t j = 0; j < m; j++) sb += b[j];
    if (u8(s) < 200 && sa > 0 && sb > 0 && isfinite(sa) && isfinite(sb)) {
        for (int64_t i = 0; i < n; i++) a[i] /= sa;
        for (int64_t j = 0; j < m; j++) b[j] /= sb;
    }
    monge_geometry g = {n, m, MONGE_F64, C, NULL, NULL, 0, 0, 0, 0};
    monge_problem pb = {&g, a, b, INFINITY, INFINITY};
    monge_smooth_params par;
    monge_smooth_params_init(&par);
    double gammas[] = {1.0, 1e-6, 1e6, 0.0, -1.0, NAN, 1e-300, 0.3};
    par.gamma = gammas[u8(s) % 8];
    par.k = small(s, -1, 9);
    par.formulation = u8(s) % 3;
    par.max_iter = 1 + u8(s) % 60;
    double *al = calloc((size_t)n, sizeof(double)), *be = calloc((size_t)m, sizeof(double));
    monge_smooth_info info;
    int st = monge_smooth_ot(&pb, &par, al, be, &info);
    expect(known(st), "smooth status");
    if (st == MONGE_OK) expect(isfinite(info.value) && all_finite(al, n), "smooth OK but non-finite");
    free(al);
    free(be);
    free(C);
    free(a);
    free(b);
}

static void fz_spectr(src *s)
{
    const int64_t B = small(s, 1, 3), V = small(s, 1, 10);
    double *p = weights(s, B * V, u8(s) % 3), *q = weights(s, B * V, u8(s) % 3);
    if (u8(s) < 200)
        for (int64_t b = 0; b < B; b++) {
            double sp = 0, sq = 0;
            for (int64_t v = 0; v < V; v++) {
                sp += p[b * V + v];
                sq += q[b * V + v];
            }
            for (int64_t v = 0; v < V; v++) {
                if (sp > 0 && isfinite(sp)) p[b * V + v] /= sp;
                if (sq > 0 && isfinite(sq)) q[b * V + v] /= sq;
            }
        }
    int64_t k[3], drafts[3 * 4], token[3], index[3];
    for (int b = 0; b < 3; b++) k[b] = small(s, -1, 4);
    for (int t = 0; t < 12; t++) drafts[t] = small(s, -1, V);
    double rho[3], acc[3], *res = malloc(sizeof(double) * (size_t)(B * V));
    int st = monge_spectr_rho(B, V, p, q, V, k, rho, acc, 1);
    expect(known(st), "spectr rho status");
    st = monge_spectr_residual(B, V, p, q, V, k, res, 1);
    expect(known(st), "spectr residual status");
    if (st == MONGE_OK)
        for (int64_t t = 0; t < B * V; t++) expect(res[t] >= 0 && isfinite(res[t]), "residual >= 0");
    monge_spectr_params par;
    monge_spectr_params_init(&par);
    par.seed = u8(s);
    par.draw_drafts = u8(s) & 1;
    st = monge_spectr_select(&par, B, V, p, q, V, 4, NULL, drafts, token, index, rho);
    expect(known(st), "spectr select status");
    if (st == MONGE_OK)
        for (int64_t b = 0; b < B; b++) expect(token[b] >= 0 && token[b] < V, "token in range");
    st = monge_spectr_optimal_acceptance(B, V, p, q, V, k, acc, 1);
    expect(known(st), "spectr optimal status");
    free(res);
    free(p);
    free(q);
}

static void fz_barycenter(src *s)
{
    const int64_t K = small(s, 1, 3), n = small(s, 1, 6), d = small(s, 1, 2);
    int64_t m[3];
    double *C[3], *y[3], *b[3];
    double *x = arr(s, n * d, u8(s) < 40), *Cxx = arr(s, n * n, u8(s) < 40);
    const int online = u8(s) < 128;
    monge_geometry g[3], self;
    for (int64_t k = 0; k < K; k++) {
        m[k] = small(s, 1, 6);
        C[k] = arr(s, n * m[k], u8(s) < 40);
        y[k] = arr(s, m[k] * d, u8(s) < 40);
        b[k] = weights(s, m[k], u8(s) % 3);
        double sb = 0;
        for (int64_t j = 0; j < m[k]; j++) sb += b[k][j];
        if (u8(s) < 220 && sb > 0 && isfinite(sb))
            for (int64_t j = 0; j < m[k]; j++) b[k][j] /= sb;
        memset(&g[k], 0, sizeof g[k]);
        g[k].n = n;
        g[k].m = m[k];
        g[k].dtype = MONGE_F64;
        if (online) {
            g[k].x = x;
            g[k].y = y[k];
            g[k].d = d;
            g[k].cost = (monge_cost)(u8(s) % 3);
            g[k].p = 1.5;
        } else {
            g[k].C = C[k];
        }
    }
    memset(&self, 0, sizeof self);
    self.n = self.m = n;
    self.dtype = MONGE_F64;
    self.C = Cxx;
    double lam[3] = {1.0 / (double)K, 1.0 / (double)K, 1.0 / (double)K};
    if (u8(s) < 30) lam[0] = num(s);
    monge_barycenter_params par;
    monge_barycenter_params_init(&par);
    const double epss[] = {1e-300, 1e-3, 0.1, 10.0, 0.0, -1.0, NAN, 1e300};
    par.eps = epss[u8(s) % 8];
    par.tol = u8(s) < 30 ? num(s) : 1e-6;
    par.max_iter = u8(s) % 60;
    par.debiased = u8(s) % 2;
    double *a = malloc(sizeof(double) * (size_t)n), *f = malloc(sizeof(double) * (size_t)(3 * n));
    double gg[18], lc[6], err;
    int64_t it;
    const double *bs[3] = {b[0], K > 1 ? b[1] : NULL, K > 2 ? b[2] : NULL};
    int st = monge_barycenter(K, g, bs, lam, u8(s) < 240 ? &self : NULL, &par, a, f, gg, lc, &err,
                              &it);
    expect(known(st), "barycenter status");
    if (st == MONGE_OK) expect(all_finite(a, n) && isfinite(err), "barycenter OK but non-finite");
    if (st == MONGE_OK || st == MONGE_ENOCONV) {
        /* the loss and its gradients at that state; each input's support with itself (online) or
           the n x n matrix (dense: a shape mismatch must come back as MONGE_EINVAL) */
        monge_geometry sy[3];
        for (int64_t k = 0; k < K; k++) {
            sy[k] = online ? g[k] : self;
            if (online) {
                sy[k].n = m[k];
                sy[k].x = y[k];
            }
        }
        double vals[3], gb[18], gC[36], gx[12], gy[36];
        const int same_m = !online && (K < 2 || m[1] == m[0]) && (K < 3 || m[2] == m[0]);
        int ls = monge_barycenter_loss(K, g, bs, lam, &self, sy, &par, a, f, gg, lc, vals, gb,
                                       same_m && u8(s) < 200 ? gC : NULL, online ? gx : NULL,
                                       online ? gy : NULL);
        expect(known(ls), "barycenter loss status");
        if (ls == MONGE_OK) expect(all_finite(vals, K), "barycenter loss OK but non-finite");
    }
    /* the same problem twice as a batch, the second with its weights reversed */
    {
        const double lam2[6] = {lam[0], lam[1], lam[2], lam[2], lam[1], lam[0]};
        const double *bs2[6] = {bs[0], bs[1], bs[2], bs[0], bs[1], bs[2]};
        const double *bsK[6];
        double lamK[6];
        for (int64_t t = 0; t < 2 * K; t++) {
            bsK[t] = bs2[(t / K) * 3 + t % K];
            lamK[t] = lam2[(t / K) * 3 + t % K];
        }
        double *a2 = malloc(sizeof(double) * (size_t)(2 * n)), e2[2];
        int64_t it2[2];
        int stat[2];
        int bst = monge_barycenter_batch(2, K, g, bsK, lamK, u8(s) < 240 ? &self : NULL, &par, a2,
                                         NULL, NULL, NULL, e2, it2, stat);
        expect(known(bst), "barycenter batch status");
        if (bst == MONGE_OK) expect(all_finite(a2, 2 * n), "barycenter batch OK but non-finite");
        free(a2);
    }
    /* the same histograms on a grid of n points: 1 to 3 axes whose lengths multiply to n */
    {
        int64_t len[3] = {n, 1, 1}, dgrid = 1 + u8(s) % 3;
        if (dgrid > 1 && n % 2 == 0) {
            len[0] = n / 2;
            len[1] = 2;
        } else {
            dgrid = 1;
        }
        double *tax = arr(s, n, u8(s) < 40);
        const double *axes[3] = {tax, tax, tax};
        monge_grid grid = {dgrid, len, axes};
        const double *gb[3] = {NULL, NULL, NULL};
        double *hb = malloc(sizeof(double) * (size_t)(3 * n));
        for (int64_t k = 0; k < K; k++) {
            double sb = 0;
            for (int64_t j = 0; j < n; j++) sb += hb[k * n + j] = (double)(u8(s) % 5);
            for (int64_t j = 0; j < n; j++) hb[k * n + j] = sb > 0 ? hb[k * n + j] / sb : 1.0 / n;
            gb[k] = hb + k * n;
        }
        double err2;
        int64_t it2;
        int gst = monge_barycenter_grid(K, &grid, gb, lam, &par, a, NULL, NULL, NULL, &err2, &it2);
        expect(known(gst), "grid barycenter status");
        if (gst == MONGE_OK) expect(all_finite(a, n), "grid barycenter OK but non-finite");
        free(hb);
        free(tax);
    }
    /* free support on the same clouds: X starts at x, inputs y_k */
    {
        monge_free_barycenter_params fp;
        monge_free_barycenter_params_init(&fp);
        fp.exact = u8(s) % 2;
        const double feps[] = {0.1, 10.0, 0.0, -1.0, NAN, 1e300}; /* not tiny: 10^4 its a solve */
        fp.eps = feps[u8(s) % 6];
        fp.max_iter = u8(s) % 8;
        fp.tol = u8(s) < 30 ? num(s) : 1e-9;
        const double *ys[3] = {y[0], K > 1 ? y[1] : NULL, K > 2 ? y[2] : NULL};
        double *X = malloc(sizeof(double) * (size_t)(n * d)), fcost;
        memcpy(X, x, sizeof(double) * (size_t)(n * d));
        int64_t fit;
        int fst = monge_free_barycenter(K, m, d, ys, u8(s) < 128 ? bs : NULL, lam, n,
                                        u8(s) < 128 ? NULL : a, &fp, X, &fcost, &fit);
        expect(known(fst), "free barycenter status");
        if (fst == MONGE_OK)
            expect(all_finite(X, n * d) && isfinite(fcost), "free barycenter OK but non-finite");
        if (fst == MONGE_OK || fst == MONGE_ENOCONV) {
            double vals[3], *gX = malloc(sizeof(double) * (size_t)(n * d));
            double gY[36], gb[18];
            int lst = monge_free_barycenter_loss(K, m, d, ys, bs, lam, n, NULL, &fp, X, vals, gX,
                                                 gY, gb);
            expect(known(lst), "free barycenter loss status");
            if (lst == MONGE_OK) expect(all_finite(vals, K), "free barycenter loss non-finite");
            free(gX);
        }
        free(X);
    }
    for (int64_t k = 0; k < K; k++) {
        free(C[k]);
        free(y[k]);
        free(b[k]);
    }
    free(x);
    free(Cxx);
    free(a);
    free(f);
}

static void fz_gromov(src *s)
{
    const int64_t n = small(s, 1, 6), m = small(s, 1, 6);
    double *C1 = arr(s, n * n, u8(s) < 40), *C2 = arr(s, m * m, u8(s) < 40);
    double *M = arr(s, n * m, u8(s) < 40), *T = arr(s, n * m, u8(s) < 40);
    if (u8(s) < 200) /* non-negative costs, as distance matrices are (the kl loss needs them) */
        for (int64_t k = 0; k < n * n; k++) C1[k] = fabs(C1[k]);
    if (u8(s) < 200)
        for (int64_t k = 0; k < m * m; k++) C2[k] = fabs(C2[k]) + 0.01;
    double *p = weights(s, n, u8(s) % 3), *q = weights(s, m, u8(s) % 3);
    double sp = 0, sq = 0;
    for (int64_t k = 0; k < n; k++) sp += p[k];
    for (int64_t k = 0; k < m; k++) sq += q[k];
    if (u8(s) < 220 && sp > 0 && sq > 0 && isfinite(sp) && isfinite(sq)) {
        for (int64_t k = 0; k < n; k++) p[k] /= sp;
        for (int64_t k = 0; k < m; k++) q[k] /= sq;
    }
    monge_gw_params par;
    monge_gw_params_init(&par);
    par.loss = u8(s) % 3;           /* 2 is invalid */
    par.solver = u8(s) % 3;
    par.semirelaxed = u8(s) < 64;
    par.alpha = u8(s) < 30 ? num(s) : 0.5;
    const double epss[] = {1e-300, 1e-3, 0.1, 10.0, 0.0, -1.0, NAN, 1e300};
    par.eps = epss[u8(s) % 8];
    par.tol = u8(s) < 30 ? num(s) : 1e-9;
    par.max_iter = u8(s) % 20;
    par.inner_max_iter = u8(s) % 200;
    par.warm_start = u8(s) < 60;
    par.damping = u8(s) < 40 ? num(s) : -1.0;
    par.eps_scaling = u8(s) % 2;
    par.eps_start = u8(s) < 40 ? num(s) : 0.0;
    par.scaling_factor = u8(s) < 20 ? num(s) : 0.5;
    double f[6], g[6], g1[36], g2[36];
    monge_gw_info info;
    const int with_m = u8(s) < 128;
    int st = monge_gromov(n, m, C1, C2, u8(s) < 30 ? NULL : p, q, with_m ? M : NULL, &par, T, f,
                          g, u8(s) < 128 ? g1 : NULL, g2, &info);
    expect(known(st), "gromov status");
    if (st == MONGE_OK)
        expect(all_finite(T, n * m) && isfinite(info.value), "gromov OK but non-finite");
    free(C1);
    free(C2);
    free(M);
    free(T);
    free(p);
    free(q);
}

/* inputs tried per entry group, printed at exit (both drivers exit through exit()) */
static const char *const group_names[9] = {
    "sinkhorn", "sinkhorn_divergence + monge_gap", "emd (+ 1-D, sliced)",
    "ctc_loss", "align (Sinkhorn / IPOT)", "quadratic / sparse OT", "spectr",
    "barycenter", "gromov_wasserstein"};
static long long group_calls[9];

static void report_groups(void)
{
    fprintf(stderr, "fuzz inputs per entry group:");
    for (int k = 0; k < 9; k++) fprintf(stderr, "%s %s %lld", k ? "," : "", group_names[k], group_calls[k]);
    fprintf(stderr, "\n");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int registered = 0;
    if (!registered) {
        registered = 1;
        atexit(report_groups);
    }
    src s = {data, size, 0};
    const int group = u8(&s) % 9;
    group_calls[group]++;
    switch (group) {
    case 0: fz_sinkhorn(&s, 0); break;
    case 1: fz_sinkhorn(&s, 1); break;
    case 2: fz_emd(&s); break;
    case 3: fz_ctc(&s); break;
    case 4: fz_align(&s); break;
    case 5: fz_smooth(&s); break;
    case 6: fz_spectr(&s); break;
    case 7: fz_barycenter(&s); break;
    default: fz_gromov(&s); break;
    }
    return 0;
}
