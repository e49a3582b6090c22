/* C unit tests of Gromov–Wasserstein (run under AddressSanitizer + UBSan): the matrix product
 * against the triple loop and across thread counts, GW values and C1/C2 gradients against the
 * four-index sum written out (symmetric and asymmetric matrices, both losses), an isometric copy
 * matched at zero cost by a permutation, the entropic solver's fixed point, thread-count
 * independence, and argument checks. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static void test_gemm(void)
{
    const int64_t shapes[][3] = {{1, 1, 1}, {5, 37, 9}, {33, 17, 130}, {64, 48, 300}, {7, 16, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        double *A = malloc((size_t)(M * K) * sizeof *A), *B = malloc((size_t)(K * N) * sizeof *B);
        double *C1 = malloc((size_t)(M * N) * sizeof *C1), *C2 = malloc((size_t)(M * N) * sizeof *C2);
        for (int64_t i = 0; i < M * K; i++) A[i] = urand() - 0.5;
        for (int64_t i = 0; i < K * N; i++) B[i] = urand() - 0.5;
        CHECK(monge_gemm(M, N, K, A, B, C1, 1) == MONGE_OK, "gemm status");
        CHECK(monge_gemm(M, N, K, A, B, C2, 2) == MONGE_OK, "gemm status");
        double worst = 0.0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double r = 0.0;
                for (int64_t k = 0; k < K; k++) r += A[i * K + k] * B[k * N + j];
                worst = fmax(worst, fabs(r - C1[i * N + j]));
            }
        CHECK(worst < 1e-12, "gemm %lldx%lldx%lld off by %g", (long long)M, (long long)N,
              (long long)K, worst);
        CHECK(memcmp(C1, C2, (size_t)(M * N) * sizeof *C1) == 0, "gemm: 1 vs 2 threads differ");
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
    CHECK(monge_gemm(-1, 2, 2, NULL, NULL, NULL, 1) == MONGE_EINVAL, "gemm: negative size");
}

static double L(int loss, double a, double b)
{
    return loss == MONGE_GW_SQUARE ? (a - b) * (a - b) : a * log(a / b) - a + b;
}

/* GW(T) = sum_ijkl L(C1_ik, C2_jl) T_ij T_kl, written out */
static double gw_brute(int loss, int64_t n, int64_t m, const double *C1, const double *C2,
                       const double *T)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++)
            for (int64_t k = 0; k < n; k++)
                for (int64_t l = 0; l < m; l++)
                    s += L(loss, C1[i * n + k], C2[j * m + l]) * T[i * m + j] * T[k * m + l];
    return s;
}

static void random_matrix(int64_t n, double *C, int symmetric, double lo)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < n; k++) C[i * n + k] = lo + urand();
    if (symmetric)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < i; k++) C[i * n + k] = C[k * n + i];
}

/* the value and gradients at the returned plan against the written-out sum */
static void test_value_and_gradient(int loss, int symmetric, int solver)
{
    enum { n = 5, m = 6 };
    double C1[n * n], C2[m * m], M[n * m], T[n * m], gC1[n * n], gC2[m * m], p[n], q[m];
    random_matrix(n, C1, symmetric, 0.1);
    random_matrix(m, C2, symmetric, 0.1);
    for (int i = 0; i < n * m; i++) M[i] = urand();
    double sp = 0, sq = 0;
    for (int i = 0; i < n; i++) sp += p[i] = 0.5 + urand();
    for (int j = 0; j < m; j++) sq += q[j] = 0.5 + urand();
    for (int i = 0; i < n; i++) p[i] /= sp;
    for (int j = 0; j < m; j++) q[j] /= sq;
    monge_gw_params par;
    monge_gw_params_init(&par);
    par.loss = loss;
    par.solver = solver;
    par.alpha = 0.7;
    par.eps = 0.05;
    monge_gw_info info;
    int st = monge_gromov(n, m, C1, C2, p, q, M, &par, T, NULL, NULL, gC1, gC2, &info);
    /* Frank-Wolfe may need more than max_iter to meet tol here; the plan is still feasible */
    CHECK(st == MONGE_OK || (solver == MONGE_GW_CG && st == MONGE_ENOCONV), "gromov loss %d sym %d solver %d: status %d (iter %lld delta %g gap %g)", loss, symmetric, solver, st, (long long)info.n_iter, info.delta, info.fw_gap);
    const double gw = gw_brute(loss, n, m, C1, C2, T);
    double lin = 0.0;
    for (int i = 0; i < n * m; i++) lin += M[i] * T[i];
    CHECK(fabs(info.gw - gw) <= 1e-12 * fmax(1.0, fabs(gw)), "gw %.17g vs brute force %.17g",
          info.gw, gw);
    CHECK(fabs(info.value - (0.3 * lin + 0.7 * gw)) <= 1e-12, "value");
    CHECK(info.error < 1e-8, "marginal error %g", info.error);
    /* gradients with T fixed, by central differences of the written-out sum */
    const double h = 1e-6;
    double worst = 0.0;
    for (int e = 0; e < n * n; e++) {
        const double c0 = C1[e];
        C1[e] = c0 + h;
        const double up = gw_brute(loss, n, m, C1, C2, T);
        C1[e] = c0 - h;
        const double dn = gw_brute(loss, n, m, C1, C2, T);
        C1[e] = c0;
        worst = fmax(worst, fabs(0.7 * (up - dn) / (2 * h) - gC1[e]));
    }
    for (int e = 0; e < m * m; e++) {
        const double c0 = C2[e];
        C2[e] = c0 + h;
        const double up = gw_brute(loss, n, m, C1, C2, T);
        C2[e] = c0 - h;
        const double dn = gw_brute(loss, n, m, C1, C2, T);
        C2[e] = c0;
        worst = fmax(worst, fabs(0.7 * (up - dn) / (2 * h) - gC2[e]));
    }
    CHECK(worst < 1e-8, "gradient off by %g (loss %d sym %d)", worst, loss, symmetric);
}

/* a cloud against a permuted copy: cg reaches GW = 0 with the permutation as plan */
static void test_isometry(void)
{
    enum { n = 9, d = 2 };
    double x[n * d], C1[n * n], C2[n * n], T[n * n];
    int perm[n];
    for (int i = 0; i < n * d; i++) x[i] = urand();
    for (int i = 0; i < n; i++) perm[i] = (2 * i + 1) % n;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double s = 0.0;
            for (int a = 0; a < d; a++) s += (x[i * d + a] - x[k * d + a]) * (x[i * d + a] - x[k * d + a]);
            C1[i * n + k] = sqrt(s);
        }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) C2[perm[i] * n + perm[k]] = C1[i * n + k];
    monge_gw_params par;
    monge_gw_params_init(&par);
    monge_gw_info info;
    int st = monge_gromov(n, n, C1, C2, NULL, NULL, NULL, &par, T, NULL, NULL, NULL, NULL, &info);
    CHECK(st == MONGE_OK, "isometry: status %d", st);
    CHECK(info.gw < 1e-12, "isometry: GW %g", info.gw);
    double worst = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) worst = fmax(worst, fabs(T[i * n + j] - (j == perm[i] ? 1.0 / n : 0.0)));
    CHECK(worst < 1e-9, "isometry: plan off the permutation by %g", worst);
    /* semi-relaxed: the permutation is also a global optimum (GW 0), found from a start near it
       (from the product plan the iteration stops at another stationary point, as POT's does);
       rows sum to p exactly, and entropic is refused */
    par.semirelaxed = 1;
    par.warm_start = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) T[i * n + j] = 0.1 / (n * n) + (j == perm[i] ? 0.9 / n : 0.0);
    st = monge_gromov(n, n, C1, C2, NULL, NULL, NULL, &par, T, NULL, NULL, NULL, NULL, &info);
    worst = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) worst = fmax(worst, fabs(T[i * n + j] - (j == perm[i] ? 1.0 / n : 0.0)));
    CHECK(st == MONGE_OK && info.gw < 1e-12 && worst < 1e-9 && info.error < 1e-15,
          "semi-relaxed isometry: status %d GW %g plan off by %g, row error %g", st, info.gw, worst,
          info.error);
    par.solver = MONGE_GW_ENTROPIC;
    CHECK(monge_gromov(n, n, C1, C2, NULL, NULL, NULL, &par, T, NULL, NULL, NULL, NULL, &info) ==
              MONGE_EINVAL, "semi-relaxed entropic refused");
}

/* entropic: at convergence T is the Sinkhorn plan of its own gradient; 1 and 2 threads agree */
static void test_entropic_and_threads(void)
{
    enum { n = 20, m = 15 };
    double C1[n * n], C2[m * m], T1[n * m], T2[n * m], f[n], g[m];
    random_matrix(n, C1, 1, 0.0);
    random_matrix(m, C2, 1, 0.0);
    for (int solver = 0; solver < 2; solver++) {
        monge_gw_params par;
        monge_gw_params_init(&par);
        par.solver = solver;
        par.eps = 0.1;
        monge_gw_info i1, i2;
        par.nthreads = 1;
        int s1 = monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T1, f, g, NULL, NULL, &i1);
        par.nthreads = 2;
        int s2 = monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T2, NULL, NULL, NULL, NULL, &i2);
        CHECK(s1 == MONGE_OK && s2 == MONGE_OK, "solver %d: status %d %d", solver, s1, s2);
        CHECK(memcmp(T1, T2, sizeof T1) == 0 && i1.value == i2.value,
              "solver %d: 1 vs 2 threads differ", solver);
        CHECK(i1.converged && i1.delta * fabs(i1.value) <= 1e-9 * fabs(i1.value) + 1e-9,
              "solver %d: delta %g", solver, i1.delta);
        if (solver == MONGE_GW_CG) CHECK(i1.fw_gap < 1e-4, "cg: Frank-Wolfe gap %g", i1.fw_gap);
    }
}

/* entropic at small eps: the plain iteration cycles, the automatic damping converges */
static void test_damping(void)
{
    enum { n = 20, m = 15 };
    double C1[n * n], C2[m * m], T[n * m];
    random_matrix(n, C1, 1, 0.0);
    random_matrix(m, C2, 1, 0.0);
    monge_gw_params par;
    monge_gw_params_init(&par);
    par.solver = MONGE_GW_ENTROPIC;
    par.eps = 0.01;
    par.max_iter = 300;
    monge_gw_info plain, damped;
    par.damping = 0.0;
    int s1 = monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T, NULL, NULL, NULL, NULL, &plain);
    par.damping = -1.0;
    int s2 = monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T, NULL, NULL, NULL, NULL, &damped);
    CHECK(s1 == MONGE_ENOCONV && plain.delta > 1e-3, "plain: status %d delta %g", s1, plain.delta);
    CHECK(s2 == MONGE_OK && damped.gw < plain.gw, "damped: status %d gw %g (plain %g)", s2,
          damped.gw, plain.gw);
    /* the damped path is as deterministic as the plain one: again, and on 1 and 2 threads */
    double T1[n * m], T2[n * m];
    monge_gw_info i1, i2;
    par.nthreads = 1;
    monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T1, NULL, NULL, NULL, NULL, &i1);
    par.nthreads = 2;
    monge_gromov(n, m, C1, C2, NULL, NULL, NULL, &par, T2, NULL, NULL, NULL, NULL, &i2);
    CHECK(!memcmp(T, T1, sizeof T1) && !memcmp(T1, T2, sizeof T1) && i1.n_iter == damped.n_iter,
          "damped: runs differ (%lld, %lld, %lld iterations)", (long long)damped.n_iter,
          (long long)i1.n_iter, (long long)i2.n_iter);
}

static void test_arguments(void)
{
    enum { n = 3, m = 4 };
    double C1[n * n] = {0, 1, 2, 1, 0, 1, 2, 1, 0}, C2[m * m], T[n * m], p[n] = {0.5, 0.25, 0.25},
           q[m] = {0.25, 0.25, 0.25, 0.25};
    for (int i = 0; i < m * m; i++) C2[i] = 1.0 + i;
    monge_gw_params par;
    monge_gw_params_init(&par);
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_OK, "valid call");
    double qbad[m] = {0.5, 0.25, 0.25, 0.25};
    CHECK(monge_gromov(n, m, C1, C2, p, qbad, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "unequal masses");
    double pneg[n] = {1.25, -0.25, 0.0};
    CHECK(monge_gromov(n, m, C1, C2, pneg, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "negative weight");
    par.loss = MONGE_GW_KL;
    C2[3] = 0.0;
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "kl with C2 = 0");
    C2[3] = NAN;
    par.loss = MONGE_GW_SQUARE;
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "NaN in C2");
    C2[3] = 4.0;
    par.alpha = 1.5;
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "alpha > 1");
    par.alpha = 0.5;
    par.solver = MONGE_GW_ENTROPIC;
    par.eps = 0.0;
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "eps = 0");
    par.eps = 0.1;
    par.eps_scaling = 1;
    par.scaling_factor = 1.0;
    CHECK(monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "scaling_factor = 1");
    par.eps_scaling = 0;
    par.scaling_factor = 0.5;
    par.max_iter = 1;
    par.tol = 0.0;
    par.tol_abs = 0.0;
    monge_gw_info info;
    int st = monge_gromov(n, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, &info);
    CHECK((st == MONGE_ENOCONV && !info.converged) || (st == MONGE_OK && info.converged),
          "max_iter 1: status %d", st);
    CHECK(monge_gromov(0, m, C1, C2, p, q, NULL, &par, T, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL, "n = 0");
}

/* point clouds through low-rank factors: the same plans and values as the dense squared
 * distances, for both solvers and a fused problem */
static void test_points(void)
{
    enum { n = 30, m = 25, dx = 2, dy = 3 };
    double x[n * dx], y[m * dy], C1[n * n], C2[m * m], M[n * m], T1[n * m], T2[n * m];
    for (int i = 0; i < n * dx; i++) x[i] = 5.0 + urand(); /* off the origin: centring matters */
    for (int i = 0; i < m * dy; i++) y[i] = urand() - 3.0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double s = 0;
            for (int a = 0; a < dx; a++) s += (x[i * dx + a] - x[k * dx + a]) * (x[i * dx + a] - x[k * dx + a]);
            C1[i * n + k] = s;
        }
    for (int j = 0; j < m; j++)
        for (int l = 0; l < m; l++) {
            double s = 0;
            for (int a = 0; a < dy; a++) s += (y[j * dy + a] - y[l * dy + a]) * (y[j * dy + a] - y[l * dy + a]);
            C2[j * m + l] = s;
        }
    for (int e = 0; e < n * m; e++) M[e] = urand();
    for (int solver = 0; solver < 2; solver++)
        for (int fused = 0; fused < 2; fused++) {
            monge_gw_params par;
            monge_gw_params_init(&par);
            par.solver = solver;
            par.eps = 0.05;
            monge_gw_info a, b;
            int s1 = monge_gromov(n, m, C1, C2, NULL, NULL, fused ? M : NULL, &par, T1, NULL, NULL,
                                  NULL, NULL, &a);
            int s2 = monge_gromov_points(n, m, dx, dy, x, y, NULL, NULL, fused ? M : NULL, &par, T2,
                                         NULL, NULL, NULL, NULL, &b);
            double worst = 0.0;
            for (int e = 0; e < n * m; e++) worst = fmax(worst, fabs(T1[e] - T2[e]));
            CHECK(s1 == MONGE_OK && s2 == MONGE_OK, "points: status %d %d", s1, s2);
            CHECK(worst < 1e-9 && fabs(a.value - b.value) <= 1e-9 * fabs(a.value),
                  "points (solver %d fused %d): plan off by %g, value %.15g vs %.15g", solver,
                  fused, worst, b.value, a.value);
        }
    /* dF/dx from the points against the chain rule through dF/dC1 of the dense path */
    {
        monge_gw_params par;
        monge_gw_params_init(&par);
        double gx[n * dx], gy[m * dy], G1[n * n], G2[m * m];
        monge_gw_info a, b;
        int s1 = monge_gromov(n, m, C1, C2, NULL, NULL, M, &par, T1, NULL, NULL, G1, G2, &a);
        int s2 = monge_gromov_points(n, m, dx, dy, x, y, NULL, NULL, M, &par, T2, NULL, NULL, gx,
                                     gy, &b);
        double worst = 0.0, scale = 0.0;
        for (int i = 0; i < n; i++)
            for (int c = 0; c < dx; c++) {
                double want = 0.0;
                for (int k = 0; k < n; k++)
                    want += (G1[i * n + k] + G1[k * n + i]) * 2.0 * (x[i * dx + c] - x[k * dx + c]);
                worst = fmax(worst, fabs(want - gx[i * dx + c]));
                scale = fmax(scale, fabs(want));
            }
        for (int j = 0; j < m; j++)
            for (int c = 0; c < dy; c++) {
                double want = 0.0;
                for (int l = 0; l < m; l++)
                    want += (G2[j * m + l] + G2[l * m + j]) * 2.0 * (y[j * dy + c] - y[l * dy + c]);
                worst = fmax(worst, fabs(want - gy[j * dy + c]));
                scale = fmax(scale, fabs(want));
            }
        CHECK(s1 == MONGE_OK && s2 == MONGE_OK && worst <= 1e-9 * scale,
              "points: gradient off by %g (scale %g)", worst, scale);
    }
    monge_gw_params par;
    monge_gw_params_init(&par);
    par.loss = MONGE_GW_KL;
    CHECK(monge_gromov_points(n, m, dx, dy, x, y, NULL, NULL, NULL, &par, T2, NULL, NULL, NULL,
                              NULL, NULL) ==
              MONGE_EINVAL, "points: kl loss");
    par.loss = MONGE_GW_SQUARE;
    CHECK(monge_gromov_points(n, m, 17, dy, x, y, NULL, NULL, NULL, &par, T2, NULL, NULL, NULL,
                              NULL, NULL) ==
              MONGE_EINVAL, "points: dx > 16");
}

int main(void)
{
    rng_seed(7);
    test_gemm();
    for (int loss = 0; loss < 2; loss++)
        for (int sym = 0; sym < 2; sym++)
            for (int solver = 0; solver < 2; solver++) test_value_and_gradient(loss, sym, solver);
    test_isometry();
    test_entropic_and_threads();
    test_damping();
    test_points();
    test_arguments();
    return REPORT();
}
