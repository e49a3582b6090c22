/* C unit tests of the L-BFGS and the quadratic / k-sparse OT solvers (run under AddressSanitizer +
 * UBSan by `make test`).  Each CHECK prints what failed; the exit code is the number of failures. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* ------------------------------------------------------------------------------------- L-BFGS */

/* extended Rosenbrock: sum over pairs 100 (x_{2i+1} - x_{2i}^2)^2 + (1 - x_{2i})^2, minimum 0 at 1 */
static int rosenbrock(void *ctx, int64_t n, const double *x, double *f, double *g)
{
    int64_t *calls = (int64_t *)ctx;
    (*calls)++;
    double s = 0;
    for (int64_t i = 0; i + 1 < n; i += 2) {
        const double t1 = 1.0 - x[i], t2 = 10.0 * (x[i + 1] - x[i] * x[i]);
        g[i + 1] = 20.0 * t2;
        g[i] = -2.0 * (x[i] * g[i + 1] + t1);
        s += t1 * t1 + t2 * t2;
    }
    *f = s;
    return MONGE_OK;
}

static int stop_at_2(void *ctx, int64_t iter, double err)
{
    (void)err;
    *(int64_t *)ctx = iter;
    return iter >= 2;
}

static int nan_eval(void *ctx, int64_t n, const double *x, double *f, double *g)
{
    (void)ctx;
    (void)x;
    *f = NAN;
    for (int64_t i = 0; i < n; i++) g[i] = 0;
    return MONGE_OK;
}

/* |x| (non-differentiable at 0 in every coordinate) with the subgradient sign(x), +1 at 0 */
static int abs_eval(void *ctx, int64_t n, const double *x, double *f, double *g)
{
    (void)ctx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += fabs(x[i]);
        g[i] = x[i] >= 0 ? 1.0 : -1.0;
    }
    *f = s;
    return MONGE_OK;
}

static void test_lbfgs(void)
{
    const int64_t n = 100;
    double x[100];
    for (int64_t i = 0; i < n; i += 2) x[i] = -1.2, x[i + 1] = 1.0;
    monge_lbfgs_params par;
    monge_lbfgs_params_init(&par);
    par.gtol = 1e-8;
    par.ftol = 0;
    monge_lbfgs_info info;
    int64_t calls = 0;
    int st = monge_lbfgs(n, x, rosenbrock, &calls, &par, &info);
    double err = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(x[i] - 1.0));
    CHECK(st == MONGE_OK && info.reason == MONGE_LBFGS_GTOL, "rosenbrock status %d reason %d", st,
          info.reason);
    CHECK(err < 1e-6 && info.f < 1e-12 && info.gnorm <= 1e-8, "rosenbrock |x - 1| %g f %g", err,
          info.f);
    CHECK(info.n_eval == calls && info.n_iter < 200 && info.n_eval < 2 * info.n_iter + 20,
          "rosenbrock iterations %lld evaluations %lld", (long long)info.n_iter,
          (long long)info.n_eval);
    CHECK(info.n_weak == 0, "smooth function needed %lld weak steps", (long long)info.n_weak);

    /* the weak-Wolfe bisection search also solves it */
    for (int64_t i = 0; i < n; i += 2) x[i] = -1.2, x[i + 1] = 1.0;
    par.linesearch = MONGE_LS_WEAK_WOLFE;
    st = monge_lbfgs(n, x, rosenbrock, &calls, &par, &info);
    err = 0;
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs(x[i] - 1.0));
    CHECK(st == MONGE_OK && err < 1e-6 && info.n_iter < 300, "weak Wolfe: status %d |x - 1| %g its %lld",
          st, err, (long long)info.n_iter);
    par.linesearch = MONGE_LS_STRONG_WOLFE;

    /* warm start at the solution: no iteration */
    int64_t c2 = 0;
    st = monge_lbfgs(n, x, rosenbrock, &c2, &par, &info);
    CHECK(st == MONGE_OK && info.n_iter == 0 && c2 == 1, "warm start at the optimum: %lld its",
          (long long)info.n_iter);

    /* iteration cap, callback, non-finite start, bad parameters */
    for (int64_t i = 0; i < n; i += 2) x[i] = -1.2, x[i + 1] = 1.0;
    par.max_iter = 3;
    st = monge_lbfgs(n, x, rosenbrock, &calls, &par, &info);
    CHECK(st == MONGE_ENOCONV && info.reason == MONGE_LBFGS_MAXITER && info.n_iter == 3,
          "cap: status %d iterations %lld", st, (long long)info.n_iter);
    par.max_iter = 1000;
    int64_t seen = -1;
    par.progress = stop_at_2;
    par.progress_ctx = &seen;
    st = monge_lbfgs(n, x, rosenbrock, &calls, &par, &info);
    CHECK(st == MONGE_EINTR && seen == 2 && info.reason == MONGE_LBFGS_INTERRUPTED,
          "interrupt: status %d seen %lld", st, (long long)seen);
    par.progress = NULL;
    st = monge_lbfgs(n, x, nan_eval, NULL, &par, &info);
    CHECK(st == MONGE_ENONFINITE && info.reason == MONGE_LBFGS_NONFINITE, "NaN start: %d", st);
    par.c2 = par.c1 / 2;
    CHECK(monge_lbfgs(n, x, rosenbrock, &calls, &par, &info) == MONGE_EINVAL, "c2 < c1 accepted");
    monge_lbfgs_params_init(&par);
    CHECK(monge_lbfgs(0, x, rosenbrock, &calls, &par, &info) == MONGE_EINVAL, "n = 0 accepted");

    /* a kink at the optimum: the solve must end with a reported reason, never hang or claim a
     * zero gradient */
    double y[3] = {0.3, -0.7, 1e-3};
    par.ftol = 0;
    st = monge_lbfgs(3, y, abs_eval, NULL, &par, &info);
    CHECK((st == MONGE_ELINESEARCH && info.reason == MONGE_LBFGS_LINESEARCH) ||
              (st == MONGE_ENOCONV && info.reason == MONGE_LBFGS_MAXITER),
          "|x|: status %d reason %d", st, info.reason);
    CHECK(info.f < 1e-4, "|x| not minimised: f = %g", info.f);
}

/* -------------------------------------------------------------------------------- smooth OT */

static double *random_cost(int64_t n, int64_t m)
{
    double *C = malloc(sizeof(double) * (size_t)(n * m));
    for (int64_t i = 0; i < n * m; i++) C[i] = urand();
    return C;
}

/* exact OT for n = m <= 8 and uniform weights: the best permutation, by recursion */
static double assign_rec(const double *C, int64_t n, int64_t row, int *used)
{
    if (row == n) return 0;
    double best = INFINITY;
    for (int64_t j = 0; j < n; j++)
        if (!used[j]) {
            used[j] = 1;
            best = fmin(best, C[row * n + j] + assign_rec(C, n, row + 1, used));
            used[j] = 0;
        }
    return best;
}

static double best_assignment(const double *C, int64_t n)
{
    int used[8] = {0};
    return assign_rec(C, n, 0, used) / (double)n;
}

static void test_smooth(void)
{
    const int64_t n = 40, m = 30;
    double *C = random_cost(n, m);
    double a[40], b[30], al[40], be[30];
    double sa = 0, sb = 0;
    for (int64_t i = 0; i < n; i++) sa += (a[i] = 0.5 + urand());
    for (int64_t j = 0; j < m; j++) sb += (b[j] = 0.5 + urand());
    for (int64_t i = 0; i < n; i++) a[i] /= sa;
    for (int64_t j = 0; j < m; j++) b[j] /= sb;
    monge_geometry G = {.n = n, .m = m, .dtype = MONGE_F64, .C = C};
    monge_problem pb = {.geom = &G, .a = a, .b = b, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_smooth_params par;
    monge_smooth_info info, info2;
    for (int form = 0; form < 2; form++)
        for (int64_t k = 1; k <= 4; k++) {
            monge_smooth_params_init(&par);
            par.gamma = 0.05;
            par.k = k == 4 ? 0 : k;
            par.formulation = form;
            par.nthreads = 1;
            int st = monge_smooth_ot(&pb, &par, al, be, &info);
            /* k < 4 is non-smooth at its optimum (the constraint is active): the solve may end on a
             * line search without decrease, and says so; k = 4 is quadratic OT, smooth */
            if (k == 4)
                CHECK(st == MONGE_OK && info.converged && info.reason == MONGE_LBFGS_GTOL,
                      "form %d quadratic: status %d reason %d", form, st, info.reason);
            else
                CHECK((st == MONGE_OK && info.converged) ||
                          ((st == MONGE_ELINESEARCH || st == MONGE_ENOCONV) && !info.converged),
                      "form %d k %lld: status %d converged %d", form, (long long)k, st,
                      info.converged);
            const int64_t kk = k == 4 ? n : k;
            CHECK(info.max_col_nnz <= kk, "form %d k %lld: a column has %lld nonzeros", form,
                  (long long)k, (long long)info.max_col_nnz);
            if (k == 4)
                CHECK(info.err_a + info.err_b <= par.tol, "form %d k %lld: marginal error %g", form,
                      (long long)k, info.err_a + info.err_b);
            /* the primal value of the recovered plan and the dual value agree at the optimum */
            if (k == 4)
                CHECK(fabs(info.cost + info.reg - info.value) < 1e-6,
                      "form %d: primal %.12g dual %.12g", form, info.cost + info.reg, info.value);
            /* the plan in CSC */
            int64_t indptr[31];
            CHECK(monge_smooth_ot_plan(&pb, &par, al, be, indptr, NULL, NULL) == MONGE_OK &&
                      indptr[m] == info.nnz,
                  "plan count %lld vs nnz %lld", (long long)indptr[m], (long long)info.nnz);
            int64_t *idx = malloc(sizeof(int64_t) * (size_t)(indptr[m] + 1));
            double *val = malloc(sizeof(double) * (size_t)(indptr[m] + 1));
            monge_smooth_ot_plan(&pb, &par, al, be, indptr, idx, val);
            double ok = 1, colerr = 0;
            for (int64_t j = 0; j < m; j++) {
                double s = 0;
                for (int64_t r = indptr[j]; r < indptr[j + 1]; r++) {
                    s += val[r];
                    if (!(val[r] > 0) || (r > indptr[j] && idx[r] <= idx[r - 1])) ok = 0;
                }
                colerr += fabs(s - (be[j] == be[j] ? b[j] : 0));
            }
            CHECK(ok, "plan entries not positive or rows not ascending");
            CHECK(fabs(colerr - info.err_b) < 1e-12, "column error %g vs info %g", colerr, info.err_b);
            free(idx);
            free(val);
        }

    /* 1 and 2 threads give identical bits (a problem above the one-thread size: 520 x 510) */
    {
        const int64_t N = 520, Mm = 510;
        double *CB = random_cost(N, Mm), *x1 = malloc(sizeof(double) * (size_t)(N + Mm)),
               *x2 = malloc(sizeof(double) * (size_t)(N + Mm));
        monge_geometry GB = {.n = N, .m = Mm, .dtype = MONGE_F64, .C = CB};
        monge_problem pbb = {.geom = &GB, .tau_a = INFINITY, .tau_b = INFINITY};
        for (int form = 0; form < 2; form++)
            for (int64_t k = 0; k <= 3; k += 3) {
                monge_smooth_params_init(&par);
                par.gamma = 0.5;
                par.k = k;
                par.formulation = form;
                par.max_iter = 15;
                par.nthreads = 1;
                monge_smooth_ot(&pbb, &par, x1, x1 + N, &info);
                par.nthreads = 2;
                monge_smooth_ot(&pbb, &par, x2, x2 + N, &info2);
                CHECK(memcmp(x1, x2, sizeof(double) * (size_t)(N + Mm)) == 0 &&
                          info.value == info2.value && info.n_eval == info2.n_eval &&
                          info.n_iter == 15,
                      "form %d k %lld: 1 and 2 threads differ", form, (long long)k);
            }
        free(CB);
        free(x1);
        free(x2);
    }

    /* gradient of both objectives against central differences (k = 3, random potentials) */
    monge_smooth_params_init(&par);
    par.gamma = 0.05;
    par.k = 3;
    for (int form = 0; form < 2; form++) {
        par.formulation = form;
        double x[40], y[30], ga[40], gb[30], v, vp, vm;
        for (int64_t i = 0; i < n; i++) x[i] = 0.3 * urand();
        for (int64_t j = 0; j < m; j++) y[j] = 0.3 * urand() - 0.2;
        monge_smooth_ot_objective(&pb, &par, x, y, &v, ga, gb);
        double worst = 0;
        const double h = 1e-6;
        for (int64_t i = 0; i < n; i++) {
            const double x0 = x[i];
            x[i] = x0 + h;
            monge_smooth_ot_objective(&pb, &par, x, y, &vp, NULL, NULL);
            x[i] = x0 - h;
            monge_smooth_ot_objective(&pb, &par, x, y, &vm, NULL, NULL);
            x[i] = x0;
            worst = fmax(worst, fabs((vp - vm) / (2 * h) - ga[i]));
        }
        CHECK(worst < 1e-6, "form %d: finite differences vs gradient %g", form, worst);
    }

    /* k = 1, n = m, uniform: the semi-dual optimum is the exact OT cost + gamma/2 |b|^2 */
    const int64_t s = 6;
    double *C6 = random_cost(s, s), f6[6], g6[6];
    monge_geometry G6 = {.n = s, .m = s, .dtype = MONGE_F64, .C = C6};
    monge_problem p6 = {.geom = &G6, .tau_a = INFINITY, .tau_b = INFINITY};
    monge_smooth_params_init(&par);
    par.gamma = 0.1;
    par.k = 1;
    monge_smooth_ot(&p6, &par, f6, g6, &info);
    const double exact = best_assignment(C6, s) + 0.5 * par.gamma * (double)s / (double)(s * s);
    CHECK(fabs(info.value - exact) < 1e-8, "k = 1: value %.12g, exact + gamma/2 |b|^2 %.12g",
          info.value, exact);

    /* ties everywhere (C = 0, k = 1): the solve ends and says how, the plan keeps <= k entries */
    double Z[36] = {0};
    G6.C = Z;
    int st = monge_smooth_ot(&p6, &par, f6, g6, &info);
    CHECK(st != MONGE_EINVAL && st != MONGE_ENOMEM && info.max_col_nnz <= 1,
          "ties: status %d, %lld per column", st, (long long)info.max_col_nnz);
    CHECK(st == MONGE_OK ? info.converged : !info.converged, "ties: status %d converged %d", st,
          info.converged);
    CHECK(fabs(info.value - 0.5 * par.gamma / (double)s) < 1e-9, "ties: value %.12g", info.value);

    /* invalid input */
    par.gamma = 0;
    CHECK(monge_smooth_ot(&p6, &par, f6, g6, &info) == MONGE_EINVAL, "gamma = 0 accepted");
    par.gamma = 1;
    Z[3] = NAN;
    CHECK(monge_smooth_ot(&p6, &par, f6, g6, &info) == MONGE_EINVAL, "NaN cost accepted");
    Z[3] = 0;
    double bad[6] = {1, 0, 0, 0, 0, 0.5};
    p6.a = bad;
    CHECK(monge_smooth_ot(&p6, &par, f6, g6, &info) == MONGE_EINVAL, "unequal masses accepted");
    free(C);
    free(C6);
}

int main(void)
{
    rng_seed(0x5eed5eedull);
    test_lbfgs();
    test_smooth();
    return REPORT();
}
