/* The accelerator of the Sinkhorn stage loop: Anderson extrapolation of the column potentials
 * (anderson.h) and the adaptive over-relaxation, with the safeguards that hand the stage from
 * one to the other.  Why each constant: docs/design/sinkhorn.md. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ over-relaxation
 * Sinkhorn converges linearly near the solution with some rate theta; over-relaxed with omega its
 * rate lambda obeys the SOR relation of 2-cyclic iterations, (lambda + omega - 1)^2 =
 * lambda omega^2 theta, minimised by omega* = 2 / (1 + sqrt(1 - theta)) (Young; for Sinkhorn
 * Thibault et al. 2021).  Every window lambda is measured (geometric mean of the error decrease),
 * theta inferred and omega moved to omega*(theta).  A blow-up (error 100x above the best, or
 * non-finite) returns to the best state and halves omega - 1. */
#define RELAX_WINDOW ((int)sk_tune.relax_window) /* iterations per window, after two shorter ones */
#define RELAX_FIRST ((int)sk_tune.relax_first)   /* iterations of initial transient before measuring */
#define RELAX_MAX 1.99

static void relax_reset(sk_relax *r, double fixed)
{
    memset(r, 0, sizeof *r);
    r->automatic = fixed == 0;
    r->omega = fixed > 0 ? fixed : 1.0;
    r->best = INFINITY;
    r->win_start_err = NAN;
    r->cap = RELAX_MAX;
    r->cap_err = 0.0;
}

/* Returns 1 on a blow-up: the caller returns to the best state. */
static int relax_update(sk_relax *r, double err)
{
    r->k++;
    if (!(err <= 100.0 * r->best) && r->omega > 1.0 && r->k > 1) {
        r->omega = 1.0 + 0.5 * (r->omega - 1.0);
        /* an omega that blew up is not reached again until the error falls well below: far from
           the solution the SOR estimate does not hold, and windows would raise it back */
        r->cap = r->omega;
        r->cap_err = r->best;
        r->win_k = 0;
        r->win_start_err = NAN;
        return 1;
    }
    if (err < r->best) r->best = err;
    if (err < 1e-2 * r->cap_err) r->cap = RELAX_MAX; /* a new regime: the cap is lifted */
    if (!r->automatic) return 0;
    if (r->k < RELAX_FIRST) return 0; /* let the initial transient pass */
    if (isnan(r->win_start_err)) {
        r->win_start_err = err;
        r->win_k = 0;
        return 0;
    }
    /* windows of 5, 10, then 20 iterations: the early estimates err towards a small omega and
       let omega leave 1 sooner */
    const int window = r->n_win >= 2 ? RELAX_WINDOW : (RELAX_FIRST << r->n_win);
    if (++r->win_k < window) return 0;
    r->n_win++;
    const double lam = pow(err / r->win_start_err, 1.0 / window);
    r->win_start_err = err;
    r->win_k = 0;
    if (r->settling) {
        r->settling = 0;
        return 0;
    }
    const double w = r->omega;
    double next;
    if (!(lam < 1.0)) {
        next = w > 1.0 ? 1.0 + 0.5 * (w - 1.0) : 1.0;
    } else {
        double theta = (lam + w - 1.0) * (lam + w - 1.0) / (lam * w * w);
        if (theta > 0.99999) theta = 0.99999;
        if (theta < 0.0) theta = 0.0;
        const double om = 2.0 / (1.0 + sqrt(1.0 - theta));
        next = om > RELAX_MAX ? RELAX_MAX : (om < 1.0 ? 1.0 : om);
    }
    if (next > r->cap) next = r->cap;
    if (fabs(next - w) > 1e-3) {
        r->omega = next;
        r->settling = 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ Anderson
 * Of the map g -> g' of one iteration, on the absolute column potentials (absorptions and the
 * kernel cache do not disturb its history).  Extrapolations are not judged by their error (early
 * ones overshoot and the next ones recover): only a non-finite error is rejected (back to the
 * plain image, history kept).  Safeguards: AA_MAX_FAILS rejections, or AA_STALL iterations
 * without a 10% better error, hand the stage to the over-relaxation; an extrapolation AA_RESTART
 * x worse than the best is kept but clears the history; after AA_DAMP_AFTER extrapolations the
 * least squares are damped (Tikhonov AA_DAMP x trace), shrinking steps towards the plain one. */
#define AA_MAX_FAILS 3
/* the tunable constants (tuning.c; defaults 200, 1e3, 40, 3e-4) */
#define AA_STALL ((int)sk_tune.aa_stall)
#define AA_RESTART sk_tune.aa_restart
#define AA_DAMP_AFTER ((int)sk_tune.aa_damp_after)
#define AA_DAMP sk_tune.aa_damp

int sk_accel_init(sk_accel *ac, int anderson, double overrelax, int64_t m, const double *b,
                  int center)
{
    memset(ac, 0, sizeof *ac);
    ac->fixed = overrelax;
    ac->use_aa = anderson > 0 && overrelax == 0;
    if (ac->use_aa) return monge_aa_init(&ac->aa, anderson, m, b, center);
    return MONGE_OK;
}

void sk_accel_free(sk_accel *ac)
{
    monge_aa_free(&ac->aa);
}

void sk_accel_begin(sk_accel *ac)
{
    ac->on = ac->use_aa;
    ac->fails = 0;
    ac->mixed = 0;
    ac->accepted = 0;
    ac->last_mixed = 0;
    ac->best = INFINITY;
    ac->since_best = 0;
    ac->aa.reg = 0.0;
    if (ac->on) monge_aa_reset(&ac->aa);
    relax_reset(&ac->rs, ac->on ? 1.0 : ac->fixed);
}

void sk_accel_restart(sk_accel *ac)
{
    const double om = ac->rs.omega;
    relax_reset(&ac->rs, ac->on ? 1.0 : ac->fixed);
    if (ac->rs.automatic) ac->rs.omega = om;
    if (ac->on) monge_aa_reset(&ac->aa);
    ac->last_mixed = 0;
}

double sk_accel_omega(const sk_accel *ac)
{
    return ac->rs.omega;
}

int sk_accel_propose(sk_accel *ac, const double *x, double *gx, double plain_err)
{
    if (!ac->on || !monge_aa_step(&ac->aa, x, gx, gx)) return 0;
    if (++ac->mixed == AA_DAMP_AFTER) ac->aa.reg = AA_DAMP;
    ac->last_mixed = 1;
    ac->plain_col_err = plain_err;
    return 1;
}

/* The Anderson half of the verdict: 1 when the current iterate is a rejected extrapolation. */
static int aa_reject(sk_accel *ac, double err)
{
    if (!ac->on) return 0;
    if (err < 0.9 * ac->best) {
        ac->best = err;
        ac->since_best = 0;
    } else if (++ac->since_best >
               (ac->stall > 0 && err <= ac->stall_err ? ac->stall : AA_STALL)) {
        ac->on = 0; /* stagnating: the over-relaxation takes the rest of the stage */
        ac->last_mixed = 0;
        ac->rs.automatic = ac->fixed == 0;
        return 0;
    }
    if (!ac->last_mixed) return 0;
    ac->last_mixed = 0;
    if (err > AA_RESTART * ac->best) monge_aa_reset(&ac->aa); /* the iterate is kept */
    if (isfinite(err)) {
        ac->accepted++;
        return 0;
    }
    if (++ac->fails > AA_MAX_FAILS) {
        ac->on = 0; /* the rest of the stage: over-relaxation, its windows starting now */
        ac->rs.automatic = ac->fixed == 0;
    }
    return 1;
}

int sk_accel_judge(sk_accel *ac, double err, int met, int learn, int *improved)
{
    *improved = 0;
    if (met) return SK_KEEP;
    if (aa_reject(ac, err)) return SK_BACK_TO_PLAIN;
    if (!learn) return SK_KEEP;
    const double prev_best = ac->rs.best;
    if (relax_update(&ac->rs, err)) return SK_BACK_TO_BEST;
    *improved = err < prev_best;
    return SK_KEEP;
}

const double *sk_accel_plain(const sk_accel *ac)
{
    return ac->aa.Gprev;
}

double sk_accel_plain_err(const sk_accel *ac)
{
    return ac->plain_col_err;
}

void sk_accel_shift(sk_accel *ac, double shift)
{
    if (ac->on && ac->aa.have_prev)
        for (int64_t j = 0; j < ac->aa.len; j++) ac->aa.Gprev[j] += shift;
}
