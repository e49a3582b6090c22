/* C unit tests of the CTC loss (run under AddressSanitizer + UBSan by `make test`): the loss
 * against a brute-force sum over every frame labelling, the gradient against finite differences,
 * the log-domain fallback against the rescaled path, and argument checks. */
#include "../monge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* Collapse a frame labelling (merge repeats, drop blanks) and compare with the target. */
static int collapses_to(const int *path, int T, const int64_t *lab, int64_t S, int blank)
{
    int64_t k = 0;
    int prev = -1;
    for (int t = 0; t < T; t++) {
        int c = path[t];
        if (c != blank && c != prev) {
            if (k >= S || lab[k] != c) return 0;
            k++;
        }
        prev = c;
    }
    return k == S;
}

/* -log sum over labellings of prod_t exp(lp[t, path_t]), sample n of a T x N x C array. */
static double brute(int T, int N, int C, const double *lp, int n, const int64_t *lab, int64_t S,
                    int Tn, int blank)
{
    int path[8];
    int64_t total = 1;
    for (int t = 0; t < Tn; t++) total *= C;
    double p = 0;
    for (int64_t code = 0; code < total; code++) {
        int64_t v = code;
        double lw = 0;
        for (int t = 0; t < Tn; t++) {
            path[t] = (int)(v % C);
            v /= C;
            lw += lp[((int64_t)t * N + n) * C + path[t]];
        }
        if (collapses_to(path, Tn, lab, S, blank)) p += exp(lw);
    }
    (void)T;
    return -log(p);
}

int main(void)
{
    rng_seed(7);
    enum { T = 6, N = 4, C = 3 };
    double lp[T * N * C];
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double s = 0, z[C];
            for (int c = 0; c < C; c++) s += (z[c] = exp(2 * urand()));
            for (int c = 0; c < C; c++) lp[(t * N + n) * C + c] = log(z[c] / s);
        }
    /* targets: (1 2 1), (2 2), (), (1 1 1 1) (impossible in 6 frames: needs 7) */
    int64_t targets[] = {1, 2, 1, 2, 2, 1, 1, 1, 1};
    int64_t offsets[] = {0, 3, 5, 5}, tl[] = {3, 2, 0, 4}, il[] = {6, 5, 4, 6};
    double loss[N], w[N] = {1, 1, 1, 1}, g[T * N * C];
    int st = monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 0, 0,
                       MONGE_CTC_GRAD_LOGPROBS, w, loss, g, 2);
    CHECK(st == MONGE_OK, "status %d", st);
    for (int n = 0; n < 3; n++) {
        double ref = brute(T, N, C, lp, n, targets + offsets[n], tl[n], (int)il[n], 0);
        CHECK(fabs(loss[n] - ref) < 1e-12 * fabs(ref), "sample %d: %.17g vs brute %.17g", n,
              loss[n], ref);
    }
    CHECK(isinf(loss[3]) && loss[3] > 0, "impossible sample: %g", loss[3]);
    /* gradient vs central differences of the sum of the possible samples' losses */
    double maxerr = 0;
    for (int k = 0; k < T * N * C; k++) {
        int n = (k / C) % N;
        if (n == 3) continue;
        const double h = 1e-6, keep = lp[k];
        double up[N], dn[N];
        lp[k] = keep + h;
        monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 0, 0, MONGE_CTC_GRAD_NONE,
                  NULL, up, NULL, 1);
        lp[k] = keep - h;
        monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 0, 0, MONGE_CTC_GRAD_NONE,
                  NULL, dn, NULL, 1);
        lp[k] = keep;
        double fd = (up[n] - dn[n]) / (2 * h);
        double e = fabs(fd - g[k]);
        maxerr = e > maxerr ? e : maxerr;
    }
    CHECK(maxerr < 1e-7, "gradient vs finite differences: %g", maxerr);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) CHECK(g[(t * N + 3) * C + c] == 0.0, "impossible: zero grad");
    /* zero_infinity */
    st = monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 0, 1, MONGE_CTC_GRAD_NONE,
                   NULL, loss, NULL, 1);
    CHECK(st == MONGE_OK && loss[3] == 0.0, "zero_infinity: %g", loss[3]);
    /* the log-domain fallback: shift one frame's non-blank log-probabilities by -800 */
    double lq[T * N * C], l1[N], l2[N];
    memcpy(lq, lp, sizeof lq);
    for (int n = 0; n < N; n++) lq[(2 * N + n) * C + 2] -= 800.0;
    monge_ctc(T, N, C, MONGE_F64, lq, targets, offsets, il, tl, 0, 0, MONGE_CTC_GRAD_NONE, NULL,
              l1, NULL, 1);
    double ref0 = brute(T, N, C, lq, 0, targets, 3, 6, 0);
    CHECK(fabs(l1[0] - ref0) < 1e-10 * ref0, "fallback sample 0: %.17g vs %.17g", l1[0], ref0);
    (void)l2;
    /* float32 agrees with float64 */
    float lf[T * N * C], gf[T * N * C];
    for (int k = 0; k < T * N * C; k++) lf[k] = (float)lp[k];
    st = monge_ctc(T, N, C, MONGE_F32, lf, targets, offsets, il, tl, 0, 1,
                   MONGE_CTC_GRAD_LOGITS, w, l2, gf, 1);
    CHECK(st == MONGE_OK, "f32 status");
    for (int n = 0; n < 3; n++) {
        double ref = brute(T, N, C, lp, n, targets + offsets[n], tl[n], (int)il[n], 0);
        CHECK(fabs(l2[n] - ref) < 1e-5 * ref, "f32 sample %d: %g vs %g", n, l2[n], ref);
    }
    /* argument checks */
    int64_t bad_il[] = {7, 5, 4, 6}, bad_lab[] = {1, 0, 1, 2, 2, 1, 1, 1, 1};
    CHECK(monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, bad_il, tl, 0, 0,
                    MONGE_CTC_GRAD_NONE, NULL, loss, NULL, 1) == MONGE_EINVAL,
          "input length > T");
    CHECK(monge_ctc(T, N, C, MONGE_F64, lp, bad_lab, offsets, il, tl, 0, 0, MONGE_CTC_GRAD_NONE,
                    NULL, loss, NULL, 1) == MONGE_EINVAL,
          "blank in a target");
    CHECK(monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 3, 0, MONGE_CTC_GRAD_NONE,
                    NULL, loss, NULL, 1) == MONGE_EINVAL,
          "blank out of range");
    CHECK(monge_ctc(T, N, C, MONGE_F64, lp, targets, offsets, il, tl, 0, 0,
                    MONGE_CTC_GRAD_LOGITS, NULL, loss, g, 1) == MONGE_EINVAL,
          "gradient without weights");
    lq[0] = NAN;
    CHECK(monge_ctc(T, N, C, MONGE_F64, lq, targets, offsets, il, tl, 0, 0, MONGE_CTC_GRAD_NONE,
                    NULL, loss, NULL, 1) == MONGE_ENONFINITE,
          "NaN log-prob");
    /* finite but huge log-probs (found by libFuzzer): the loss overflows, an error and not a NaN */
    {
        enum { T2 = 10, C2 = 4 };
        double big[T2 * C2];
        for (int k = 0; k < T2 * C2; k++) big[k] = (k % 3 == 0) ? 1.7e308 : (k % 3 == 1 ? 1e12 : 0.0);
        int64_t lab2[] = {2, 0, 3}, off2[] = {0}, il2[] = {8}, tl2[] = {3};
        double w2[] = {1.0}, loss2[1], g2[T2 * C2];
        for (int mode = 0; mode < 3; mode++)
            for (int zi = 0; zi < 2; zi++)
                CHECK(monge_ctc(T2, 1, C2, MONGE_F64, big, lab2, off2, il2, tl2, 1, zi,
                                (monge_ctc_grad)mode, w2, loss2, g2, 1) == MONGE_ENONFINITE,
                      "overflowing log-probs (mode %d, zero_infinity %d)", mode, zi);
    }
    return REPORT();
}
