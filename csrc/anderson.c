/* Anderson acceleration of a fixed-point iteration (see anderson.h). */
#include "anderson.h"
#include "common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define AA_TIKHONOV 1e-10
#define AA_GAMMA_MAX 1e6 /* |gamma| beyond this: the least-squares problem is numerically singular */

int monge_aa_init(monge_aa *aa, int mem, int64_t len, const double *w, int center)
{
    memset(aa, 0, sizeof *aa);
    if (mem < 1) mem = 1;
    if (mem > MONGE_AA_MAX_MEM) mem = MONGE_AA_MAX_MEM;
    aa->mem = mem;
    aa->len = len;
    aa->w = w;
    aa->center = center;
    double ws = 0;
    for (int64_t j = 0; j < len; j++) ws += w ? w[j] : 1.0;
    aa->wsum = ws;
    const size_t L = (size_t)(len > 0 ? len : 1);
    aa->dG = malloc(sizeof(double) * (size_t)mem * L);
    aa->dR = malloc(sizeof(double) * (size_t)mem * L);
    aa->Gprev = malloc(sizeof(double) * L);
    aa->Rprev = malloc(sizeof(double) * L);
    if (!aa->dG || !aa->dR || !aa->Gprev || !aa->Rprev) {
        monge_aa_free(aa);
        return MONGE_ENOMEM;
    }
    return MONGE_OK;
}

void monge_aa_free(monge_aa *aa)
{
    free(aa->dG);
    free(aa->dR);
    free(aa->Gprev);
    free(aa->Rprev);
    aa->dG = aa->dR = aa->Gprev = aa->Rprev = NULL;
}

void monge_aa_reset(monge_aa *aa)
{
    aa->count = 0;
    aa->next = 0;
    aa->have_prev = 0;
}

static double wdot(const monge_aa *aa, const double *u, const double *v)
{
    double s = 0;
    if (aa->w)
        for (int64_t j = 0; j < aa->len; j++) s += aa->w[j] * u[j] * v[j];
    else
        for (int64_t j = 0; j < aa->len; j++) s += u[j] * v[j];
    return s;
}

/* Solves (A + delta I) x = r for the SPD p x p matrix A (row-major) by Cholesky; 0 on success. */
static int spd_solve(const double *A, int p, double delta, const double *r, double *x)
{
    double L[MONGE_AA_MAX_MEM * MONGE_AA_MAX_MEM];
    for (int i = 0; i < p; i++)
        for (int j = 0; j <= i; j++) {
            double s = A[i * p + j] + (i == j ? delta : 0.0);
            for (int k = 0; k < j; k++) s -= L[i * p + k] * L[j * p + k];
            if (i == j) {
                if (!(s > 0)) return 1;
                L[i * p + i] = sqrt(s);
            } else {
                L[i * p + j] = s / L[j * p + j];
            }
        }
    for (int i = 0; i < p; i++) { /* L y = r */
        double s = r[i];
        for (int k = 0; k < i; k++) s -= L[i * p + k] * x[k];
        x[i] = s / L[i * p + i];
    }
    for (int i = p - 1; i >= 0; i--) { /* L^T x = y */
        double s = x[i];
        for (int k = i + 1; k < p; k++) s -= L[k * p + i] * x[k];
        x[i] = s / L[i * p + i];
    }
    return 0;
}

int monge_aa_step(monge_aa *aa, const double *x, const double *gx, double *out)
{
    const int64_t len = aa->len;
    const int mem = aa->mem;
    /* the residual r = gx - x (modulo constants when centred), written where it will be kept */
    double *r = aa->dR + (size_t)aa->next * (size_t)len; /* scratch: becomes dR of slot next */
    double mean = 0;
    for (int64_t j = 0; j < len; j++) {
        r[j] = gx[j] - x[j];
        mean += (aa->w ? aa->w[j] : 1.0) * r[j];
    }
    if (aa->center && aa->wsum > 0) {
        mean /= aa->wsum;
        for (int64_t j = 0; j < len; j++) r[j] -= mean;
    }
    if (aa->have_prev) {
        /* slot `next` receives dR = r - Rprev and dG = gx - Gprev; Rprev, Gprev become r, gx */
        double *dg = aa->dG + (size_t)aa->next * (size_t)len;
        for (int64_t j = 0; j < len; j++) {
            const double rj = r[j];
            r[j] = rj - aa->Rprev[j];
            aa->Rprev[j] = rj;
            dg[j] = gx[j] - aa->Gprev[j];
            aa->Gprev[j] = gx[j];
        }
        const int s = aa->next;
        if (aa->count < mem) aa->count++;
        for (int t = 0; t < aa->count; t++) {
            const double v = wdot(aa, r, aa->dR + (size_t)t * (size_t)len);
            aa->gram[s * MONGE_AA_MAX_MEM + t] = v;
            aa->gram[t * MONGE_AA_MAX_MEM + s] = v;
        }
        aa->next = (s + 1) % mem;
    } else {
        memcpy(aa->Rprev, r, sizeof(double) * (size_t)len);
        memcpy(aa->Gprev, gx, sizeof(double) * (size_t)len);
        aa->have_prev = 1;
    }
    const int p = aa->count;
    if (p == 0) {
        if (out != gx) memcpy(out, gx, sizeof(double) * (size_t)len);
        return 0;
    }
    double A[MONGE_AA_MAX_MEM * MONGE_AA_MAX_MEM], rhs[MONGE_AA_MAX_MEM], gam[MONGE_AA_MAX_MEM];
    double trace = 0;
    for (int i = 0; i < p; i++) {
        for (int j = 0; j < p; j++) A[i * p + j] = aa->gram[i * MONGE_AA_MAX_MEM + j];
        trace += A[i * p + i];
        rhs[i] = wdot(aa, aa->dR + (size_t)i * (size_t)len, aa->Rprev);
    }
    const double reg = aa->reg > 0 ? aa->reg : AA_TIKHONOV;
    int ok = trace > 0 && isfinite(trace) && !spd_solve(A, p, reg * trace, rhs, gam);
    for (int i = 0; i < p && ok; i++) ok = fabs(gam[i]) <= AA_GAMMA_MAX;
    if (!ok) {
        /* keep the current point as the origin of a fresh history */
        if (out != gx) memcpy(out, gx, sizeof(double) * (size_t)len);
        aa->count = 0;
        aa->next = 0;
        return 0;
    }
    for (int64_t j = 0; j < len; j++) {
        double v = gx[j];
        for (int i = 0; i < p; i++) v -= gam[i] * aa->dG[(size_t)i * (size_t)len + (size_t)j];
        out[j] = v;
    }
    aa->n_mixed++;
    return 1;
}
