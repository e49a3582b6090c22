/* C unit tests of the SpecTr kernels (run under AddressSanitizer + UBSan by `make test`). */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void random_dist(double *w, int64_t V, double sharp, int zeros)
{
    double s = 0;
    for (int64_t x = 0; x < V; x++) s += (w[x] = pow(urand(), sharp));
    for (int z = 0; z < zeros; z++) {
        int64_t x = (int64_t)(urand() * (double)V);
        s -= w[x];
        w[x] = 0;
    }
    if (s <= 0) {
        w[0] = 1;
        s = 1;
    }
    double t = 0;
    for (int64_t x = 0; x < V; x++) t += (w[x] /= s);
    (void)t;
}

static double h_of(const double *p, const double *q, int64_t V, int64_t k, double rho)
{
    const double b = monge_spectr_beta(p, q, V, rho);
    return 1 - pow(1 - b, (double)k) - rho * b;
}

static double brute_optimum(const double *p, const double *q, int64_t V, int64_t k)
{
    double best = 1;
    for (uint32_t mask = 0; mask < (1u << V); mask++) {
        double pa = 0, qa = 0;
        for (int64_t x = 0; x < V; x++)
            if (mask & (1u << x)) {
                pa += p[x];
                qa += q[x];
            }
        const double v = (1 - qa) + 1 - pow(1 - pa, (double)k);
        if (v < best) best = v;
    }
    return best;
}

static void test_rho_residual_optimum(void)
{
    enum { V = 9 };
    double p[V], q[V], res[V];
    for (int trial = 0; trial < 400; trial++) {
        random_dist(p, V, 1 + 6 * urand(), trial % 3);
        random_dist(q, V, 1 + 6 * urand(), trial % 2);
        const int64_t k = 1 + trial % 8;
        double rho, acc, opt;
        CHECK(monge_spectr_rho(1, V, p, q, V, &k, &rho, &acc, 1) == MONGE_OK, "rho status");
        CHECK(rho >= 1 && rho <= (double)k, "rho %g outside [1, %lld]", rho, (long long)k);
        CHECK(h_of(p, q, V, k, rho) <= 1e-13, "h(rho) = %g > 0", h_of(p, q, V, k, rho));
        if (rho > 1) CHECK(h_of(p, q, V, k, rho * (1 - 1e-9)) > 0, "rho not the smallest root");
        if (k == 1) {
            double tv = 0;
            for (int x = 0; x < V; x++) tv += fmin(p[x], q[x]);
            CHECK(rho == 1 && fabs(acc - tv) < 1e-14, "k = 1: rho %g acc %g vs %g", rho, acc, tv);
        }
        CHECK(monge_spectr_residual(1, V, p, q, V, &k, res, 1) == MONGE_OK, "residual status");
        double s = 0, mn = 1;
        for (int x = 0; x < V; x++) {
            s += res[x];
            mn = fmin(mn, res[x]);
        }
        CHECK(mn >= 0 && fabs(s - 1) < 1e-12, "residual min %g sum %g", mn, s);
        /* the law of the output is q: c min(p, q/rho) + (1 - beta)^k res */
        const double b = monge_spectr_beta(p, q, V, rho);
        double c = 0, err = 0;
        for (int64_t i = 0; i < k; i++) c += pow(1 - b, (double)i);
        for (int x = 0; x < V; x++)
            err = fmax(err, fabs(c * fmin(p[x], q[x] / rho) + pow(1 - b, (double)k) * res[x] - q[x]));
        CHECK(err < 1e-12, "output law differs from q by %g", err);
        CHECK(monge_spectr_optimal_acceptance(1, V, p, q, V, &k, &opt, 1) == MONGE_OK, "optimum status");
        const double bf = brute_optimum(p, q, V, k);
        CHECK(fabs(opt - bf) < 1e-12, "optimum %g vs brute force %g", opt, bf);
        CHECK(acc <= opt + 1e-12 && acc >= (1 - pow(1 - 1.0 / (double)k, (double)k)) * opt - 1e-12,
              "K-SEQ acceptance %g vs optimum %g (k = %lld)", acc, opt, (long long)k);
    }
}

static void test_select_distribution(void)
{
    /* drafts drawn inside the kernel, one shared row: token frequencies within 5 sigma of q */
    const int64_t V = 5, B = 400000, k = 3;
    const double p[5] = {0.4, 0.3, 0.2, 0.1, 0.0}, q[5] = {0.05, 0.1, 0.15, 0.3, 0.4};
    int64_t *drafts = malloc(sizeof(int64_t) * (size_t)(B * k)), *tok = malloc(sizeof(int64_t) * (size_t)B),
            *idx = malloc(sizeof(int64_t) * (size_t)B), *tok2 = malloc(sizeof(int64_t) * (size_t)B);
    double *rho = malloc(sizeof(double) * (size_t)B);
    monge_spectr_params par;
    monge_spectr_params_init(&par);
    par.seed = 42;
    par.draw_drafts = 1;
    par.nthreads = 2;
    CHECK(monge_spectr_select(&par, B, V, p, q, 0, k, NULL, drafts, tok, idx, rho) == MONGE_OK,
          "select status");
    int64_t cnt[5] = {0};
    int64_t acc = 0, mismatch = 0;
    for (int64_t b = 0; b < B; b++) {
        cnt[tok[b]]++;
        if (idx[b] >= 0) {
            acc++;
            mismatch += drafts[b * k + idx[b]] != tok[b];
        }
    }
    CHECK(mismatch == 0, "%lld accepted tokens differ from their draft", (long long)mismatch);
    for (int x = 0; x < 5; x++) {
        const double f = (double)cnt[x] / (double)B, sd = sqrt(q[x] * (1 - q[x]) / (double)B);
        CHECK(fabs(f - q[x]) <= 5 * sd + 1e-12, "token %d: frequency %g vs q %g", x, f, q[x]);
    }
    double a_exact, r1;
    CHECK(monge_spectr_rho(1, V, p, q, V, &k, &r1, &a_exact, 1) == MONGE_OK, "rho status");
    const double fa = (double)acc / (double)B;
    CHECK(fabs(fa - a_exact) <= 5 * sqrt(a_exact * (1 - a_exact) / (double)B), "acceptance %g vs %g",
          fa, a_exact);
    /* same result on one thread, given the drafts */
    par.nthreads = 1;
    par.draw_drafts = 0;
    CHECK(monge_spectr_select(&par, B, V, p, q, 0, k, NULL, drafts, tok2, idx, rho) == MONGE_OK,
          "select status");
    CHECK(memcmp(tok, tok2, sizeof(int64_t) * (size_t)B) == 0, "results depend on the thread count");
    free(drafts);
    free(tok);
    free(idx);
    free(tok2);
    free(rho);
}

static void test_invalid(void)
{
    const double p[3] = {0.5, 0.3, 0.2}, q[3] = {0.2, 0.3, 0.5}, bad[3] = {0.5, 0.5, 0.5},
                 neg[3] = {0.6, -0.1, 0.5};
    double nanv[3] = {NAN, 0.5, 0.5};
    const int64_t k = 2, k0 = 0;
    double rho, acc, out[3];
    int64_t dr[2] = {0, 3}, tok, idx;
    CHECK(monge_spectr_rho(1, 3, bad, q, 3, &k, &rho, &acc, 1) == MONGE_EINVAL, "unnormalised p");
    CHECK(monge_spectr_rho(1, 3, p, neg, 3, &k, &rho, &acc, 1) == MONGE_EINVAL, "negative q");
    CHECK(monge_spectr_rho(1, 3, nanv, q, 3, &k, &rho, &acc, 1) == MONGE_EINVAL, "NaN p");
    CHECK(monge_spectr_rho(1, 3, p, q, 3, &k0, &rho, &acc, 1) == MONGE_EINVAL, "k = 0");
    CHECK(monge_spectr_rho(1, 3, p, q, 2, &k, &rho, &acc, 1) == MONGE_EINVAL, "bad stride");
    CHECK(monge_spectr_rho(1, 0, p, q, 0, &k, &rho, &acc, 1) == MONGE_EINVAL, "V = 0");
    CHECK(monge_spectr_residual(1, 3, p, NULL, 3, &k, out, 1) == MONGE_EINVAL, "NULL q");
    CHECK(monge_spectr_optimal_acceptance(1, 3, p, q, 3, &k, NULL, 1) == MONGE_EINVAL, "NULL out");
    monge_spectr_params par;
    monge_spectr_params_init(&par);
    CHECK(monge_spectr_select(&par, 1, 3, p, q, 3, 2, NULL, dr, &tok, &idx, NULL) == MONGE_EINVAL,
          "draft out of range");
    dr[1] = 1;
    const int64_t nk = 3;
    CHECK(monge_spectr_select(&par, 1, 3, p, q, 3, 2, &nk, dr, &tok, &idx, NULL) == MONGE_EINVAL,
          "nk > kmax");
    CHECK(monge_spectr_select(&par, 1, 3, p, q, 3, 2, NULL, dr, &tok, &idx, NULL) == MONGE_OK,
          "valid select");
    CHECK(monge_spectr_select(&par, 0, 3, p, q, 3, 2, NULL, dr, &tok, &idx, NULL) == MONGE_OK,
          "empty batch");
}

int main(void)
{
    rng_seed(2023);
    test_rho_residual_optimum();
    test_select_distribution();
    test_invalid();
    return REPORT();
}
