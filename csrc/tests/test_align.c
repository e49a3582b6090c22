/* C unit tests of the token alignment (run under AddressSanitizer + UBSan): marginals of the
 * Sinkhorn and IPOT plans on masked pairs, zero mass on padding, the plans against references
 * written here (a dense log-domain Sinkhorn and the IPOT recursion of Xie et al. on the valid
 * block), plan-fixed gradients against finite differences, and argument checks. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { B = 3, N = 6, M = 4, D = 3 };

static double dist_fixed_plan(const double *P, const double *x, const double *y,
                              const uint8_t *mx, const uint8_t *my)
{
    double s = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            if (!mx[i] || !my[j]) continue;
            double xy = 0, xx = 0, yy = 0;
            for (int k = 0; k < D; k++) {
                xy += x[i * D + k] * y[j * D + k];
                xx += x[i * D + k] * x[i * D + k];
                yy += y[j * D + k] * y[j * D + k];
            }
            s += P[i * M + j] * (1 - xy / sqrt(xx * yy));
        }
    return s;
}

/* The cosine cost of pair b on its valid block (nv x mv, valid indices in ri, cj). */
static void valid_cost(const double *x, const double *y, const uint8_t *mx, const uint8_t *my,
                       double *C, int *ri, int *cj, int *nv, int *mv)
{
    *nv = *mv = 0;
    for (int i = 0; i < N; i++)
        if (mx[i]) ri[(*nv)++] = i;
    for (int j = 0; j < M; j++)
        if (my[j]) cj[(*mv)++] = j;
    for (int r = 0; r < *nv; r++)
        for (int c = 0; c < *mv; c++) {
            const double *u = x + ri[r] * D, *v = y + cj[c] * D;
            double uv = 0, uu = 0, vv = 0;
            for (int k = 0; k < D; k++) {
                uv += u[k] * v[k];
                uu += u[k] * u[k];
                vv += v[k] * v[k];
            }
            C[r * M + c] = 1 - uv / sqrt(uu * vv);
        }
}

static double lse(const double *v, int len)
{
    double mx = -INFINITY, s = 0;
    for (int t = 0; t < len; t++) mx = v[t] > mx ? v[t] : mx;
    for (int t = 0; t < len; t++) s += exp(v[t] - mx);
    return mx + log(s);
}

/* Reference entropic plan (N x M, zero on padding) of min <P, C> + eps KL(P | a b^T), uniform a, b
 * on the valid block: plain alternating log-domain updates of the potentials, to a row marginal
 * L1 error below 1e-15 (columns are exact after each update). */
static void ref_sinkhorn(const double *x, const double *y, const uint8_t *mx, const uint8_t *my,
                         double eps, double *P)
{
    double C[N * M], f[N] = {0}, g[M] = {0}, tmp[N > M ? N : M];
    int ri[N], cj[M], nv, mv;
    valid_cost(x, y, mx, my, C, ri, cj, &nv, &mv);
    const double la = -log(nv), lb = -log(mv);
    for (int it = 0; it < 100000; it++) {
        for (int r = 0; r < nv; r++) {
            for (int c = 0; c < mv; c++) tmp[c] = lb + (g[c] - C[r * M + c]) / eps;
            f[r] = -eps * lse(tmp, mv);
        }
        for (int c = 0; c < mv; c++) {
            for (int r = 0; r < nv; r++) tmp[r] = la + (f[r] - C[r * M + c]) / eps;
            g[c] = -eps * lse(tmp, nv);
        }
        double err = 0;
        for (int r = 0; r < nv; r++) {
            double s = 0;
            for (int c = 0; c < mv; c++) s += exp(la + lb + (f[r] + g[c] - C[r * M + c]) / eps);
            err += fabs(s - exp(la));
        }
        if (err < 1e-15) break;
    }
    memset(P, 0, sizeof(double) * N * M);
    for (int r = 0; r < nv; r++)
        for (int c = 0; c < mv; c++)
            P[ri[r] * M + cj[c]] = exp(la + lb + (f[r] + g[c] - C[r * M + c]) / eps);
}

/* Reference IPOT plan (Xie et al. 2019, Algorithm 1, on the valid block): G = exp(-C / beta),
 * Gamma = 1 1^T, b = 1/m; `outer` times: Q = G .* Gamma, `inner` times a = mu / (Q b),
 * b = nu / (Q^T a); Gamma = diag(a) Q diag(b). */
static void ref_ipot(const double *x, const double *y, const uint8_t *mx, const uint8_t *my,
                     double beta, int outer, int inner, double *P)
{
    double C[N * M], Gam[N * M], Q[N * M], av[N], bv[M];
    int ri[N], cj[M], nv, mv;
    valid_cost(x, y, mx, my, C, ri, cj, &nv, &mv);
    for (int t = 0; t < N * M; t++) Gam[t] = 1.0;
    for (int c = 0; c < mv; c++) bv[c] = 1.0 / mv;
    for (int o = 0; o < outer; o++) {
        for (int r = 0; r < nv; r++)
            for (int c = 0; c < mv; c++) Q[r * M + c] = exp(-C[r * M + c] / beta) * Gam[r * M + c];
        for (int l = 0; l < inner; l++) {
            for (int r = 0; r < nv; r++) {
                double s = 0;
                for (int c = 0; c < mv; c++) s += Q[r * M + c] * bv[c];
                av[r] = (1.0 / nv) / s;
            }
            for (int c = 0; c < mv; c++) {
                double s = 0;
                for (int r = 0; r < nv; r++) s += Q[r * M + c] * av[r];
                bv[c] = (1.0 / mv) / s;
            }
        }
        for (int r = 0; r < nv; r++)
            for (int c = 0; c < mv; c++) Gam[r * M + c] = av[r] * Q[r * M + c] * bv[c];
    }
    memset(P, 0, sizeof(double) * N * M);
    for (int r = 0; r < nv; r++)
        for (int c = 0; c < mv; c++) P[ri[r] * M + cj[c]] = Gam[r * M + c];
}

int main(void)
{
    rng_seed(3);
    double X[B * N * D], Y[B * M * D];
    for (int t = 0; t < B * N * D; t++) X[t] = urand() - 0.5;
    for (int t = 0; t < B * M * D; t++) Y[t] = urand() - 0.5;
    uint8_t mx[B * N], my[B * M];
    memset(mx, 1, sizeof mx);
    memset(my, 1, sizeof my);
    mx[1 * N + 5] = mx[1 * N + 4] = 0;
    my[2 * M + 0] = 0;
    for (int k = 0; k < D; k++) X[(1 * N + 5) * D + k] = 0.0; /* padding may be a zero vector */
    double P[B * N * M], dist[B], err[B], w[B] = {1, 2, 0.5}, GX[B * N * D], GY[B * M * D];
    int64_t it[B];
    for (int method = 0; method < 2; method++) {
        monge_align_params par;
        monge_align_params_init(&par);
        par.method = method ? MONGE_ALIGN_IPOT : MONGE_ALIGN_SINKHORN;
        par.tol = 1e-12;
        par.max_iter = 100000;
        par.nthreads = 2;
        int st = monge_align(B, N, M, D, X, Y, mx, my, &par, P, dist, err, it, w, GX, GY);
        CHECK(st == MONGE_OK, "method %d status %d", method, st);
        for (int b = 0; b < B; b++) {
            int nv = 0, mv = 0;
            for (int i = 0; i < N; i++) nv += mx[b * N + i];
            for (int j = 0; j < M; j++) mv += my[b * M + j];
            for (int j = 0; j < M; j++) {
                double s = 0;
                for (int i = 0; i < N; i++) s += P[(b * N + i) * M + j];
                CHECK(fabs(s - (my[b * M + j] ? 1.0 / mv : 0.0)) < 1e-12, "column marginal");
            }
            for (int i = 0; i < N; i++) {
                double s = 0;
                for (int j = 0; j < M; j++) s += P[(b * N + i) * M + j];
                if (!mx[b * N + i]) CHECK(s == 0.0, "padding row has mass");
                else if (method == 0) CHECK(fabs(s - 1.0 / nv) < 1e-11, "row marginal %g", s);
            }
            /* the plan itself, against the reference of its method (marginals and gradients
             * would also hold for the product plan a b^T, which is off by ~1e-2 here) */
            double R[N * M], maxd = 0, maxprod = 0;
            if (method == 0)
                ref_sinkhorn(X + b * N * D, Y + b * M * D, mx + b * N, my + b * M, par.eps, R);
            else
                ref_ipot(X + b * N * D, Y + b * M * D, mx + b * N, my + b * M, par.beta,
                         (int)par.outer, (int)par.inner, R);
            for (int t = 0; t < N * M; t++) {
                double e = fabs(P[b * N * M + t] - R[t]);
                maxd = e > maxd ? e : maxd;
                double prod = mx[b * N + t / M] && my[b * M + t % M] ? 1.0 / (nv * mv) : 0.0;
                maxprod = fabs(R[t] - prod) > maxprod ? fabs(R[t] - prod) : maxprod;
            }
            /* Sinkhorn's plan is fixed only to its marginal error (tol 1e-12, L1): allow 10x that;
             * IPOT runs the same finite recursion, so only rounding separates the two */
            CHECK(maxd < (method == 0 ? 1e-11 : 1e-13), "method %d pair %d: plan differs from the "
                  "reference by %g", method, b, maxd);
            CHECK(maxprod > 1e-3, "method %d pair %d: the reference is too close to a b^T (%g) to "
                  "tell them apart", method, b, maxprod);
            /* gradient of the distance with the plan fixed */
            double maxe = 0;
            for (int t = 0; t < N * D; t++) {
                if (!mx[b * N + t / D]) continue;
                double *x = X + b * N * D, keep = x[t], h = 1e-6;
                x[t] = keep + h;
                double up = dist_fixed_plan(P + b * N * M, x, Y + b * M * D, mx + b * N, my + b * M);
                x[t] = keep - h;
                double dn = dist_fixed_plan(P + b * N * M, x, Y + b * M * D, mx + b * N, my + b * M);
                x[t] = keep;
                double e = fabs(w[b] * (up - dn) / (2 * h) - GX[b * N * D + t]);
                maxe = e > maxe ? e : maxe;
            }
            CHECK(maxe < 1e-8, "method %d pair %d grad x error %g", method, b, maxe);
        }
    }
    uint8_t empty[B * M];
    memset(empty, 1, sizeof empty);
    memset(empty, 0, M);
    CHECK(monge_align(B, N, M, D, X, Y, mx, empty, NULL, P, dist, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL,
          "empty mask");
    CHECK(monge_align(B, N, M, D, X, Y, NULL, my, NULL, P, dist, NULL, NULL, NULL, NULL, NULL) ==
              MONGE_EINVAL,
          "zero vector that is not padding");
    CHECK(monge_align(B, N, M, D, X, Y, mx, my, NULL, P, dist, NULL, NULL, NULL, GX, NULL) ==
              MONGE_EINVAL,
          "gradient without weights");
    return REPORT();
}
