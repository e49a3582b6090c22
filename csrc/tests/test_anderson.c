/* C unit tests of the Anderson acceleration (csrc/anderson.c) on linear fixed-point maps, where
 * the answer is known: run under AddressSanitizer + UBSan by `make test`. */
#include "../anderson.h"
#include "../common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

enum { L = 40 };

/* M = Q diag(lam) Q^T with Q a product of Householder reflections: symmetric, spectrum lam */
static void spectral_matrix(double *Mx, const double *lam)
{
    double Q[L * L];
    memset(Q, 0, sizeof Q);
    for (int i = 0; i < L; i++) Q[i * L + i] = 1.0;
    for (int r = 0; r < 3; r++) {
        double v[L], nv = 0;
        for (int i = 0; i < L; i++) {
            v[i] = urand() - 0.5;
            nv += v[i] * v[i];
        }
        for (int i = 0; i < L; i++) v[i] /= sqrt(nv);
        for (int i = 0; i < L; i++) { /* Q <- Q (I - 2 v v^T) */
            double qv = 0;
            for (int k = 0; k < L; k++) qv += Q[i * L + k] * v[k];
            for (int k = 0; k < L; k++) Q[i * L + k] -= 2.0 * qv * v[k];
        }
    }
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            double s = 0;
            for (int k = 0; k < L; k++) s += Q[i * L + k] * lam[k] * Q[j * L + k];
            Mx[i * L + j] = s;
        }
}

static void apply(const double *Mx, const double *c, const double *x, double *out)
{
    for (int i = 0; i < L; i++) {
        double s = c[i];
        for (int j = 0; j < L; j++) s += Mx[i * L + j] * x[j];
        out[i] = s;
    }
}

static double dist(const double *u, const double *v)
{
    double s = 0;
    for (int i = 0; i < L; i++) s += (u[i] - v[i]) * (u[i] - v[i]);
    return sqrt(s);
}

/* x <- M x + c with spectrum in [0, 0.95] (a fresh random M and c), and its fixed point xs by many
 * plain iterations (0.95^2000 ~ 1e-45) */
static void contraction(double *Mx, double *c, double *xs)
{
    double lam[L], tmp[L];
    for (int k = 0; k < L; k++) lam[k] = 0.95 * k / (L - 1);
    spectral_matrix(Mx, lam);
    for (int i = 0; i < L; i++) c[i] = urand() - 0.5;
    memset(xs, 0, sizeof(double) * L);
    for (int it = 0; it < 2000; it++) {
        apply(Mx, c, xs, tmp);
        memcpy(xs, tmp, sizeof tmp);
    }
}

/* `steps` steps of Anderson (aa) and of the plain iteration from 0: their distances to xs through
 * *ea and *ep, the start's through *e0; returns the number of extrapolated steps */
static int race(monge_aa *aa, const double *Mx, const double *c, const double *xs, int steps,
                double *e0, double *ea, double *ep)
{
    double x[L], xp[L], gx[L], tmp[L];
    memset(x, 0, sizeof x);
    memset(xp, 0, sizeof xp);
    *e0 = dist(x, xs);
    int mixed = 0;
    for (int it = 0; it < steps; it++) {
        apply(Mx, c, x, gx);
        mixed += monge_aa_step(aa, x, gx, x);
        apply(Mx, c, xp, tmp);
        memcpy(xp, tmp, sizeof xp);
    }
    *ea = dist(x, xs);
    *ep = dist(xp, xs);
    return mixed;
}

/* x <- M x + c with spectrum in [0, 0.95]: Anderson(5) against the plain iteration (measured: 3e-5
 * of the starting error after 30 steps, against 0.045 for the plain iteration) */
static void test_linear_contraction(void)
{
    double Mx[L * L], c[L], xs[L], x[L], gx[L];
    contraction(Mx, c, xs);
    monge_aa aa;
    CHECK(monge_aa_init(&aa, 5, L, NULL, 0) == MONGE_OK, "init");
    double e0, ea, ep;
    const int mixed = race(&aa, Mx, c, xs, 30, &e0, &ea, &ep);
    CHECK(ea < 1e-3 * e0 && ep > 0.02 * e0, "30 steps: Anderson error %g, plain %g (start %g)", ea,
          ep, e0);
    CHECK(mixed == 29 && aa.n_mixed == 29, "extrapolated steps %d (first step plain)", mixed);
    /* with memory >= the dimension it is GMRES on the linear map: exact after L + 1 steps */
    monge_aa full;
    CHECK(monge_aa_init(&full, MONGE_AA_MAX_MEM + 10, L, NULL, 0) == MONGE_OK, "init full");
    CHECK(full.mem == MONGE_AA_MAX_MEM, "memory clamped to %d: %d", MONGE_AA_MAX_MEM, full.mem);
    monge_aa_free(&full);
    monge_aa_reset(&aa);
    memset(x, 0, sizeof x);
    apply(Mx, c, x, gx);
    CHECK(monge_aa_step(&aa, x, gx, x) == 0, "after a reset the first step is the plain one");
    CHECK(dist(x, gx) == 0, "plain step: out = G(x)");
    monge_aa_free(&aa);
}

/* a map with a gauge: M has the constant vector as eigenvector of eigenvalue 1 and G adds a drift
 * s 1 every step, so the iterates never converge, but their residual modulo constants does; with
 * `center` Anderson must converge modulo constants (weighted by w) */
static void test_centred(void)
{
    double Mx[L * L], lam[L], c[L], x[L], gx[L], w[L];
    for (int k = 0; k < L; k++) lam[k] = 0.9 * k / (L - 1);
    spectral_matrix(Mx, lam);
    /* M <- P M P + (1/L) 1 1^T with P the projector orthogonal to 1: eigenvalue 1 on constants */
    double P[L * L], T[L * L];
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) P[i * L + j] = (i == j) - 1.0 / L;
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            double s = 0;
            for (int k = 0; k < L; k++) s += P[i * L + k] * Mx[k * L + j];
            T[i * L + j] = s;
        }
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++) {
            double s = 0;
            for (int k = 0; k < L; k++) s += T[i * L + k] * P[k * L + j];
            Mx[i * L + j] = s + 1.0 / L;
        }
    for (int i = 0; i < L; i++) {
        c[i] = urand() - 0.5 + 0.3; /* + a drift along the constants */
        w[i] = 0.5 + urand();
    }
    monge_aa aa;
    CHECK(monge_aa_init(&aa, 8, L, w, 1) == MONGE_OK, "init centred");
    memset(x, 0, sizeof x);
    double r0 = -1, r = 0;
    for (int it = 0; it < 40; it++) {
        apply(Mx, c, x, gx);
        /* the residual modulo constants (w-weighted mean removed) */
        double mean = 0, ws = 0;
        for (int i = 0; i < L; i++) {
            mean += w[i] * (gx[i] - x[i]);
            ws += w[i];
        }
        mean /= ws;
        r = 0;
        for (int i = 0; i < L; i++) r = fmax(r, fabs(gx[i] - x[i] - mean));
        if (r0 < 0) r0 = r;
        monge_aa_step(&aa, x, gx, x);
    }
    int finite = 1;
    for (int i = 0; i < L; i++) finite &= isfinite(x[i]);
    CHECK(finite && r < 1e-8 * r0, "centred: residual modulo constants %g (start %g)", r, r0);
    monge_aa_free(&aa);
}

/* a converged iterate (G(x) = x) gives a zero least-squares problem: no NaN, the plain step */
static void test_degenerate(void)
{
    double x[L], out[L];
    for (int i = 0; i < L; i++) x[i] = i;
    monge_aa aa;
    CHECK(monge_aa_init(&aa, 4, L, NULL, 1) == MONGE_OK, "init");
    int any = 0;
    for (int it = 0; it < 5; it++) any |= monge_aa_step(&aa, x, x, out);
    int same = 1;
    for (int i = 0; i < L; i++) same &= out[i] == x[i];
    CHECK(!any && same, "fixed point: extrapolated %d, out == x %d", any, same);
    monge_aa_free(&aa);
}

/* the damping (aa.reg, a Tikhonov factor x the trace of the Gram matrix): a huge one shrinks every
 * extrapolation to the plain step; the one the Sinkhorn loop uses after 40 extrapolations (3e-4)
 * still accelerates the linear contraction of test_linear_contraction; a reset keeps it */
static void test_damping(void)
{
    double Mx[L * L], c[L], xs[L], x[L], gx[L], tmp[L];
    contraction(Mx, c, xs);
    monge_aa aa;
    CHECK(monge_aa_init(&aa, 5, L, NULL, 0) == MONGE_OK, "init");
    aa.reg = 1e12;
    memset(x, 0, sizeof x);
    double worst = 0;
    for (int it = 0; it < 10; it++) {
        apply(Mx, c, x, gx);
        const double step = dist(gx, x);
        memcpy(tmp, gx, sizeof tmp);
        monge_aa_step(&aa, x, gx, x);
        const double off = dist(x, tmp) / step;
        worst = off > worst ? off : worst;
    }
    CHECK(worst < 1e-6, "reg 1e12: the step is %g of a plain step away from it", worst);
    monge_aa_reset(&aa);
    CHECK(aa.reg == 1e12, "a reset changed reg to %g", aa.reg);
    aa.reg = 3e-4;
    double e0, ea, ep;
    race(&aa, Mx, c, xs, 30, &e0, &ea, &ep);
    CHECK(ea < 1e-2 * ep, "reg 3e-4, 30 steps: Anderson error %g, plain %g (start %g)", ea, ep, e0);
    printf("damped (reg 3e-4): error %.2e of the start after 30 steps, plain %.2e\n", ea / e0, ep / e0);
    monge_aa_free(&aa);
}

int main(void)
{
    rng_seed(0x5DEECE66Dull);
    test_linear_contraction();
    test_centred();
    test_degenerate();
    test_damping();
    return REPORT();
}
