/* The exact steps of the Sinkhorn engine: log-domain half-steps on any geometry (one softmin pass
 * of the geometry per half-step, the marginal error falling out of the same pass), and the
 * relaxed update of the symmetric problem.  Also the work arrays and the one-pass verification
 * of a state the float cache reached. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

void sk_work_free(sk_work *s)
{
    free(s->a);
    free(s->b);
    free(s->la);
    free(s->lb);
    free(s->h);
    free(s->hint);
    free(s->out);
    free(s->fsave);
    free(s->gsave);
    free(s->fbest);
    free(s->gbest);
}

int sk_work_alloc(sk_work *s, const monge_problem *pb)
{
    memset(s, 0, sizeof *s);
    s->n = pb->geom->n;
    s->m = pb->geom->m;
    const int64_t nm = s->n > s->m ? s->n : s->m;
    s->a = malloc(sizeof(double) * (size_t)s->n);
    s->b = malloc(sizeof(double) * (size_t)s->m);
    s->la = malloc(sizeof(double) * (size_t)s->n);
    s->lb = malloc(sizeof(double) * (size_t)s->m);
    s->h = malloc(sizeof(double) * (size_t)nm);
    s->hint = malloc(sizeof(double) * (size_t)nm);
    s->out = malloc(sizeof(double) * (size_t)nm);
    s->fsave = malloc(sizeof(double) * (size_t)s->n);
    s->gsave = malloc(sizeof(double) * (size_t)s->m);
    s->fbest = malloc(sizeof(double) * (size_t)s->n);
    s->gbest = malloc(sizeof(double) * (size_t)s->m);
    if (!s->a || !s->b || !s->la || !s->lb || !s->h || !s->hint || !s->out || !s->fsave ||
        !s->gsave || !s->fbest || !s->gbest) {
        sk_work_free(s);
        return MONGE_ENOMEM;
    }
    s->ma = monge_problem_weights(pb, 0, s->a);
    s->mb = monge_problem_weights(pb, 1, s->b);
    for (int64_t i = 0; i < s->n; i++) s->la[i] = s->a[i] > 0 ? log(s->a[i]) : -INFINITY;
    for (int64_t j = 0; j < s->m; j++) s->lb[j] = s->b[j] > 0 ? log(s->b[j]) : -INFINITY;
    return MONGE_OK;
}

/* One half-step on side `tr` (0: update f from g; 1: update g from f).  pot: the potential
 * updated (len), other: the fixed one (olen).  *err_before: the L1 KKT violation of this side at
 * the potentials on entry; *err_after: after the (over-relaxed) update. */
static int half_step(const sk_ctx *c, int tr, double eps, double tau, double omega, double *pot,
                     const double *other, double *err_before, double *err_after)
{
    sk_work *s = c->s;
    const int64_t len = tr ? s->m : s->n, olen = tr ? s->n : s->m;
    const double *w = tr ? s->b : s->a, *lo = tr ? s->la : s->lb;
    const double lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    for (int64_t j = 0; j < olen; j++) s->h[j] = other[j] + eps * lo[j];
    for (int64_t i = 0; i < len; i++) s->hint[i] = -pot[i] / lam;
    int st = monge_softmin(c->gw, tr, eps, s->h, s->hint, s->out, c->nth);
    if (st) return st;
    double eb = 0, ea = 0;
    int finite = 1;
    for (int64_t i = 0; i < len; i++) {
        const double old = pot[i];
        const double sink = -lam * s->out[i];
        const double upd = old + omega * (sink - old);
        if (!isfinite(upd)) finite = 0;
        pot[i] = upd;
        if (w[i] > 0) sk_kkt_errors(old, upd, (old + s->out[i]) / eps, w[i], eps, tau, &eb, &ea);
    }
    *err_before = eb;
    *err_after = ea;
    return finite ? MONGE_OK : MONGE_ENONFINITE;
}

/* ------------------------------------------------------------------ the log-domain step */
static int log_rows(sk_step *st, double eps, double omega, double *err)
{
    sk_ctx *c = st->self;
    double after;
    memcpy(c->s->fsave, c->f, sizeof(double) * (size_t)c->s->n);
    return half_step(c, 0, eps, c->pb->tau_a, omega, c->f, c->g, err, &after);
}

static int log_cols(sk_step *st, double eps, double omega, int keep, double *err)
{
    sk_ctx *c = st->self;
    double before;
    if (keep) memcpy(c->s->gsave, c->g, sizeof(double) * (size_t)c->s->m);
    return half_step(c, 1, eps, c->pb->tau_b, omega, c->g, c->f, &before, err);
}

/* The column violation after g moved from gsave (where the last g half-step computed s->out) to
 * the extrapolated g, as half_step reports it for its own update. */
static double log_adopt(sk_step *st, double eps)
{
    const sk_ctx *c = st->self;
    const sk_work *s = c->s;
    double eb = 0, ea = 0;
    for (int64_t j = 0; j < s->m; j++)
        if (s->b[j] > 0)
            sk_kkt_errors(s->gsave[j], c->g[j], (s->gsave[j] + s->out[j]) / eps, s->b[j], eps,
                          c->pb->tau_b, &eb, &ea);
    return ea;
}

static int log_restore(sk_step *st, int what, const double *plain, double eps)
{
    (void)eps;
    sk_ctx *c = st->self;
    const size_t n = (size_t)c->s->n, m = (size_t)c->s->m;
    if (what == SK_BEST) {
        memcpy(c->f, c->s->fbest, sizeof(double) * n);
        memcpy(c->g, c->s->gbest, sizeof(double) * m);
        return 0;
    }
    memcpy(c->f, c->s->fsave, sizeof(double) * n); /* the rows as measured */
    if (what == SK_PLAIN) memcpy(c->g, plain, sizeof(double) * m);
    return 0;
}

static int log_note(sk_step *st, double err, int improved)
{
    (void)err;
    sk_ctx *c = st->self;
    if (improved) { /* the measured state (f before this half-step, g) is the best of the stage */
        memcpy(c->s->fbest, c->s->fsave, sizeof(double) * (size_t)c->s->n);
        memcpy(c->s->gbest, c->g, sizeof(double) * (size_t)c->s->m);
    }
    return 0;
}

static int no_after(sk_step *st, double eps, double *shift)
{
    (void)st;
    (void)eps;
    *shift = 0.0;
    return 0;
}

void sk_logdomain_step(sk_step *st, sk_ctx *ctx)
{
    memset(st, 0, sizeof *st);
    st->rows = log_rows;
    st->cols = log_cols;
    st->adopt = log_adopt;
    st->restore = log_restore;
    st->note = log_note;
    st->after = no_after;
    st->xprev = ctx->s->gsave;
    st->xnew = ctx->g;
    st->self = ctx;
}

/* ------------------------------------------------------------------ the symmetric step
 * OT_eps(a, a): f = g = p, and the update p <- (1 - w) p + w T(p) + beta (p - p_prev) with
 * T(p)_i = -lam eps log sum_j a_j exp((p_j - C_ij) / eps), w and beta from sk_sym_update.  rows()
 * measures p (its plan is symmetric: both marginals have the same violation) and cols() applies
 * the update. */
static int sym_rows(sk_step *st, double eps, double omega, double *err)
{
    (void)omega;
    sk_ctx *c = st->self;
    sk_work *s = c->s;
    const double tau = c->pb->tau_a, lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    const double *p = c->f;
    for (int64_t j = 0; j < s->n; j++) {
        s->h[j] = p[j] + eps * s->la[j];
        s->hint[j] = -p[j] / lam;
    }
    int rc = monge_softmin(c->gw, 0, eps, s->h, s->hint, s->out, c->nth);
    if (rc) return rc;
    double e = 0;
    for (int64_t i = 0; i < s->n; i++)
        if (s->a[i] > 0) {
            const double ratio = exp((p[i] + s->out[i]) / eps);
            e += s->a[i] * fabs(ratio - (isinf(tau) ? 1.0 : exp(-p[i] / tau)));
        }
    *err = 2.0 * e;
    return MONGE_OK;
}

static int sym_cols(sk_step *st, double eps, double omega, int keep, double *err)
{
    (void)omega;
    (void)keep;
    sk_ctx *c = st->self;
    const double tau = c->pb->tau_a, lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    double w, beta;
    sk_sym_update(lam, c->stage_it++, &w, &beta);
    double *p = c->f, *prev = c->s->fsave; /* p before the last update */
    int finite = 1;
    for (int64_t i = 0; i < c->s->n; i++) {
        const double old = p[i];
        p[i] = (1.0 - w) * old - w * lam * c->s->out[i] + (beta > 0 ? beta * (old - prev[i]) : 0.0);
        prev[i] = old;
        if (!isfinite(p[i])) finite = 0;
    }
    *err = 0.0; /* measured by the next rows() */
    return finite ? MONGE_OK : MONGE_ENONFINITE;
}

static int sym_stage(sk_step *st, double eps, double tol)
{
    (void)eps, (void)tol;
    ((sk_ctx *)st->self)->stage_it = 0;
    return MONGE_OK;
}

static int sym_restore(sk_step *st, int what, const double *plain, double eps)
{
    (void)st, (void)what, (void)plain, (void)eps; /* rows() does not move p */
    return 0;
}

static int sym_note(sk_step *st, double err, int improved)
{
    (void)st, (void)err, (void)improved;
    return 0;
}

void sk_symmetric_step(sk_step *st, sk_ctx *ctx)
{
    memset(st, 0, sizeof *st);
    st->self_check = 1;
    st->rows = sym_rows;
    st->cols = sym_cols;
    st->restore = sym_restore;
    st->note = sym_note;
    st->after = no_after;
    st->stage = sym_stage;
    st->self = ctx;
}

/* ------------------------------------------------------------------ verification
 * Replaces, after the kernel cache, the column half-step, the row half-step that measures and the
 * final cost pass: one pass instead of three when the state the cache returns meets tol. */
int sk_verify(const sk_ctx *ctx, double eps, double *err, double *mass, double *cost)
{
    const sk_work *s = ctx->s;
    const monge_problem *pb = ctx->pb;
    const double *f = ctx->f, *g = ctx->g;
    const int64_t n = s->n, m = s->m;
    double *rsum = malloc(sizeof(double) * (size_t)n), *rcost = malloc(sizeof(double) * (size_t)n);
    double *csum = malloc(sizeof(double) * (size_t)m);
    int st = rsum && rcost && csum ? MONGE_OK : MONGE_ENOMEM;
    if (!st) {
        for (int64_t i = 0; i < n; i++) s->hint[i] = f[i] + eps * s->la[i];
        for (int64_t j = 0; j < m; j++) s->h[j] = g[j] + eps * s->lb[j];
        st = monge_geom_marginals(ctx->gw, eps, s->hint, s->h, rsum, csum, rcost, ctx->nth);
    }
    if (!st) {
        double er = 0, ec = 0, ms = 0, cs = 0, unused = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!(s->a[i] > 0)) continue;
            sk_kkt_errors(f[i], f[i], log(rsum[i] / s->a[i]), s->a[i], eps, pb->tau_a, &er, &unused);
            ms += rsum[i];
            cs += rcost[i];
        }
        for (int64_t j = 0; j < m; j++)
            if (s->b[j] > 0)
                sk_kkt_errors(g[j], g[j], log(csum[j] / s->b[j]), s->b[j], eps, pb->tau_b, &ec,
                              &unused);
        *err = er + ec;
        *mass = ms;
        *cost = cs;
    }
    free(rsum);
    free(rcost);
    free(csum);
    return st;
}
