/* Internals of the Sinkhorn engine (csrc/sinkhorn/), not part of the public API (sinkhorn.h).
 *
 * One stage loop (engine.c) runs the eps schedule, the iterations, the stopping test, the
 * acceleration and the progress/cancel callback.  What an iteration computes is a *step*, chosen
 * per stage and behind one interface (sk_step):
 *   - logdomain.c: log-domain half-steps on a dense or online geometry (the exact step);
 *   - logdomain.c: the relaxed update of the symmetric problem OT_eps(a, a);
 *   - kernel.c:    the cached float kernel (fast, float-accurate: it hands back to the exact step).
 * The accelerator (accel.c: Anderson extrapolation and adaptive over-relaxation) sits behind
 * sk_accel (begin stage / omega / propose / judge).  docs/design/sinkhorn.md explains the
 * heuristics and the measurements behind them. */
#ifndef MONGE_SINKHORN_ENGINE_H
#define MONGE_SINKHORN_ENGINE_H

#include "../anderson.h"
#include "../internal.h"
#include "../sinkhorn.h"

#include <math.h>

/* ------------------------------------------------------------------ heuristic constants
 * One table (tuning.c), read by the stage loop, the accelerator and the kernel step; set only by
 * monge_sinkhorn_tuning (the tuning suite). */
typedef struct {
    double aa_damp_after; /* Anderson extrapolations in a stage before the least squares are damped */
    double aa_damp;       /* their Tikhonov term then, x the trace of the Gram matrix */
    double aa_restart;    /* an extrapolation this much worse than the best clears the history */
    double aa_stall;      /* iterations without a 10% better error before Anderson hands over */
    double aa_stall_near; /* a step's own shorter limit (sk_step.aa_stall) counts only at errors
                             within this factor of the stage's tolerance */
    double relax_first;   /* over-relaxation: iterations of transient before the first window */
    double relax_window;  /* over-relaxation: iterations per window (after windows of 1x, 2x first) */
    double auto_probe;    /* automatic annealing: iterations at the target eps before the first probe */
    double auto_budget;   /* projected iterations above which the solve restarts annealed */
    double auto_late;     /* the last probe is at most this many iterations into the target eps */
    double ker_stall;     /* float-kernel iterations near its floor without progress before handing back */
    double auto_anneal;   /* automatic annealing from the start when eps < this x the max cost */
    double ms_gal_max;    /* multiscale: most entries of the coarse correction's Q (its memory) */
} sk_tuning;
extern sk_tuning sk_tune;

/* ------------------------------------------------------------------ work arrays of one solve */
typedef struct {
    int64_t n, m;
    double *a, *b;         /* weights (uniform filled in) */
    double *la, *lb;       /* log weights (-inf where zero) */
    double *h, *hint, *out;
    double *fsave;         /* f before the current half-step, restored on convergence */
    double *gsave;         /* g before the current half-step (the Anderson iterate) */
    double *fbest, *gbest; /* potentials at the lowest error of the stage */
    double ma, mb;         /* masses */
} sk_work;

int sk_work_alloc(sk_work *s, const monge_problem *pb);
void sk_work_free(sk_work *s);

/* What every step reads: the problem, its prepared geometry, the work arrays, the potentials. */
typedef struct {
    const monge_problem *pb;
    const monge_geom_work *gw;
    sk_work *s;
    double *f, *g; /* the potentials (g unused by the symmetric step) */
    int nth;
    int stage_it; /* the symmetric step: updates made in the current stage */
} sk_ctx;

/* The L1 KKT violations of one marginal entry (weight w > 0) before and after its potential moves
 * from `old` to `upd`, given logratio = log((P 1)_i / w_i) at `old`.  The ratio after the update is
 * taken in one exponent, logratio + (upd - old)/eps: ratio * exp((upd - old)/eps) is 0 * inf = NaN
 * when the ratio underflows at a first half-step. */
static inline void sk_kkt_errors(double old, double upd, double logratio, double w, double eps,
                                 double tau, double *eb, double *ea)
{
    const double tgt = isinf(tau) ? 1.0 : exp(-old / tau);
    const double tgt2 = isinf(tau) ? 1.0 : exp(-upd / tau);
    *eb += w * fabs(exp(logratio) - tgt);
    *ea += w * fabs(exp(logratio + (upd - old) / eps) - tgt2);
}

/* The symmetric problem's update p <- (1 - w) p + w T(p) + beta (p - p_prev), T(p) = -lam eps log
 * sum_j a_j exp((p_j - C_ij) / eps).  Near the fixed point T' = -lam P, P = diag(a)^-1 pi with pi
 * positive semidefinite when the kernel is (squared euclidean, euclidean, p-norms with p <= 2):
 * the residual p - T(p) has the Jacobian I + lam P, eigenvalues in [1, L], L = 1 + lam.  A stage
 * starts from the previous eps's potentials, off mostly by a smooth mode (eigenvalue L), which the
 * first update removes with w = 1 / L (the plain average when balanced), beta = 0; the second has
 * no previous step worth following (beta = 0, w = 2 / (1 + L): rate lam / (2 + lam)); from the
 * third on, the heavy ball of that spectrum, w = 4 / (sqrt L + 1)^2 and beta = ((sqrt L - 1) /
 * (sqrt L + 1))^2: rate sqrt(beta), 0.17 balanced against 1/2 for the plain average.  It still
 * converges for eigenvalues in (0, 2 (1 + beta) / w), so for P's in (-2 / lam, 1]. */
static inline void sk_sym_update(double lam, int it, double *w, double *beta)
{
    const double L = 1.0 + lam, r = sqrt(L);
    *w = it == 0 ? 1.0 / L : it == 1 ? 2.0 / (1.0 + L) : 4.0 / ((r + 1.0) * (r + 1.0));
    *beta = it >= 2 ? (r - 1.0) * (r - 1.0) / ((r + 1.0) * (r + 1.0)) : 0.0;
}

/* ------------------------------------------------------------------ the step interface
 * One iteration of the stage loop is rows() (the f half-step, which measures the state it starts
 * from), the stopping test on that error, then cols() (the g half-step).  A step keeps what it
 * needs to return to the state rows() measured, to the best state of the stage, or to a plain
 * image the accelerator rejected an extrapolation for. */
enum { SK_MEASURED, SK_BEST, SK_PLAIN };
#define SK_YIELD 1000 /* rows(): the step gives way to the exact one (not an error) */

typedef struct sk_step sk_step;
struct sk_step {
    double floor;   /* error floor of the step's arithmetic (0: exact): it stops at max(tol, floor)
                       and the over-relaxation learns only from errors above 100 floor */
    int self_check; /* rows() measures both marginals (no column error needed) */
    int yields;     /* the step hands back to the exact one (at max_iter, on a stall, ...) */
    double *xprev, *xnew; /* column potentials before / after the last cols(keep) (absolute):
                             the iterate and image the accelerator extrapolates */
    /* f half-step with relaxation omega (0: measure only); *err: row violation of the entry state.
       Returns MONGE_OK, SK_YIELD or an error status. */
    int (*rows)(sk_step *st, double eps, double omega, double *err);
    /* g half-step; *err: column violation after it; keep: fill xprev / xnew */
    int (*cols)(sk_step *st, double eps, double omega, int keep, double *err);
    /* after the accelerator rewrote xnew: adopt it and return the column violation there */
    double (*adopt)(sk_step *st, double eps);
    /* back to SK_MEASURED, SK_BEST or SK_PLAIN (rows as measured, columns at plain); returns 1
       when the iteration that led here still counts (the cache's fused pass did all of it) */
    int (*restore)(sk_step *st, int what, const double *plain, double eps);
    /* a measured error that did not blow up; improved: below the best of the stage.  Returns 1
       when the step gives way after this iteration */
    int (*note)(sk_step *st, double err, int improved);
    /* upkeep after a counted iteration; *shift: gauge moved by the step (added to the column
       potentials the accelerator keeps).  Returns 1 when the step gives way */
    int (*after)(sk_step *st, double eps, double *shift);
    /* optional (may be NULL): called at the start of every stage with its eps and tolerance */
    int (*stage)(sk_step *st, double eps, double tol);
    void *self;
    int aa_stall; /* iterations without a 10% better error before Anderson hands the stage to the
                     over-relaxation (sk_engine_run_stages), once the error is within
                     sk_tune.aa_stall_near x the stage's tolerance; 0: the engine's limit
                     (sk_tune.aa_stall) at any error */
};

/* The exact log-domain step on (ctx->f, ctx->g). */
void sk_logdomain_step(sk_step *st, sk_ctx *ctx);
/* The symmetric step on the one potential p = ctx->f (f = g, both marginals a). */
void sk_symmetric_step(sk_step *st, sk_ctx *ctx);
/* L1 KKT error of (f, g) on both marginals, with the mass and <P, C> of the plan at eps, in one
 * pass in double (the verification of a state the cache reached). */
int sk_verify(const sk_ctx *ctx, double eps, double *err, double *mass, double *cost);

/* The cached float kernel (kernel.c). */
typedef struct sk_kernel sk_kernel;
/* Whether the cache is used at all for this problem (params.kernel and the sizes). */
int sk_kernel_wanted(const monge_problem *pb, const monge_sinkhorn_params *par);
/* Error floor of the float cache for this problem. */
double sk_kernel_floor(const sk_ctx *ctx);
/* Builds the cache at eps from (f, g); NULL when it cannot (memory, float range): the exact step
 * goes on. */
sk_kernel *sk_kernel_open(sk_ctx *ctx, double eps, sk_step *st);
/* Absorbs the cache's scalings into (f, g) and frees it. */
void sk_kernel_close(sk_kernel *k, double eps);

/* Runs the stage loop on an exact step of the caller's (the masked Sinkhorn of align.c): one
 * stage at par->eps to par->tol, par->max_iter and par->progress; no cache, no acceleration. */
int sk_engine_run_step(sk_step *exact, const monge_sinkhorn_params *par, int64_t *iter,
                       double *err, int *converged);

/* Runs the stage loop on a step of the caller's with the full machinery: eps annealed from eps0
 * down to par->eps by par->scaling_factor (each stage to stage_tol, the last to tol), Anderson /
 * over-relaxation as par says on column potentials of length m (weights b; balanced: gauge
 * centred), the callback and max_iter.  info->n_iter, error, converged, n_stages and anderson_iter
 * are updated (added to); the multiscale solver runs one of these per resolution. */
int sk_engine_run_stages(sk_step *exact, const monge_sinkhorn_params *par, double eps0, int64_t m,
                         const double *b, int balanced, monge_sinkhorn_info *info);
/* Checks a parameter struct (MONGE_OK or MONGE_EINVAL). */
int sk_check_params(const monge_sinkhorn_params *par);

/* ------------------------------------------------------------------ the accelerator (accel.c)
 * Anderson extrapolation of the map g -> g' (one iteration) and the adaptive over-relaxation
 * f <- f + omega (f_sinkhorn - f), with the safeguards that hand one over to the other. */
typedef struct {
    double omega, best, win_start_err;
    int64_t k, win_k;
    int automatic;
    int settling; /* the window after a change of omega holds its transient: not measured */
    int n_win;    /* windows measured so far */
    double cap;   /* the largest omega allowed: lowered by every blow-up, lifted once the error
                     falls 100x below the best error at that blow-up */
    double cap_err;
} sk_relax;

typedef struct {
    sk_relax rs;
    monge_aa aa;
    double fixed;         /* params.overrelax */
    int use_aa;           /* Anderson configured (params.anderson > 0 with automatic omega) */
    int on;               /* Anderson active in this stage */
    int fails;            /* rejected extrapolations in this stage */
    int64_t mixed;        /* extrapolations in this stage */
    int64_t accepted;     /* of them, accepted (diagnostic) */
    double best;          /* lowest measured error of the stage, and iterations since */
    int64_t since_best;
    int stall;            /* the stall limit (0: sk_tune.aa_stall) */
    double stall_err;     /* ... applied at errors at most this (aa_stall_near x the stage's tol) */
    int last_mixed;       /* the current iterate is an extrapolation */
    double plain_col_err; /* column error of the plain image, where a rejection returns */
} sk_accel;

enum { SK_KEEP, SK_BACK_TO_PLAIN, SK_BACK_TO_BEST };

/* anderson: memory (0: off); overrelax: 0 automatic, else fixed; m, b, center: the column
 * potentials' length, weights and gauge (balanced).  MONGE_OK or MONGE_ENOMEM. */
int sk_accel_init(sk_accel *ac, int anderson, double overrelax, int64_t m, const double *b,
                  int center);
void sk_accel_free(sk_accel *ac);
void sk_accel_begin(sk_accel *ac);
/* After the cache handed back: keep the omega learnt, restart its windows and the history. */
void sk_accel_restart(sk_accel *ac);
double sk_accel_omega(const sk_accel *ac);
/* Anderson on the column potentials: 1 when gx was replaced by an extrapolation (the plain
 * image, with column error plain_err, is kept for a rejection). */
int sk_accel_propose(sk_accel *ac, const double *x, double *gx, double plain_err);
/* The verdict on the measured error of the current iterate (met: it meets the stopping test;
 * learn: the over-relaxation may learn from it).  *improved: below the best of the stage. */
int sk_accel_judge(sk_accel *ac, double err, int met, int learn, int *improved);
const double *sk_accel_plain(const sk_accel *ac);
double sk_accel_plain_err(const sk_accel *ac);
/* The step moved the gauge of the columns by `shift`: the plain image moves with it. */
void sk_accel_shift(sk_accel *ac, double shift);

#endif
