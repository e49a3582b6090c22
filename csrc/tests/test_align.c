/* C unit tests of the token alignment (run under AddressSanitizer + UBSan): marginals of the
 * Sinkhorn and IPOT plans on masked pairs, zero mass on padding, plan-fixed gradients against
 * finite differences, and argument checks. */
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
