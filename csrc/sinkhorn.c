/* monge entropic OT: the log-domain Sinkhorn loop (see sinkhorn.h for the mathematics). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* madvise(MADV_HUGEPAGE) for the kernel cache */
#endif
#include "sinkhorn.h"
#include "anderson.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif


void monge_sinkhorn_params_init(monge_sinkhorn_params *par)
{
    memset(par, 0, sizeof *par);
    par->eps = 1e-2;
    par->tol = 1e-6;
    par->max_iter = 10000;
    par->eps_scaling = 0;
    par->eps_start = 0;
    par->scaling_factor = 0.1;
    par->stage_tol = 1e-4;
    par->overrelax = 0;
    par->warm_start = 0;
    par->compute_cost = 1;
    par->nthreads = 0;
    par->kernel = 1;
    par->anderson = 8;
}

static int check_params(const monge_sinkhorn_params *p)
{
    if (!(p->eps > 0) || !isfinite(p->eps)) return MONGE_EINVAL;
    if (!(p->tol >= 0) || p->max_iter < 0) return MONGE_EINVAL;
    if (p->eps_scaling < 0 || p->eps_scaling > 2) return MONGE_EINVAL;
    if (p->anderson < 0 || p->anderson > MONGE_AA_MAX_MEM) return MONGE_EINVAL;
    if (p->eps_scaling && !(p->scaling_factor > 0 && p->scaling_factor < 1)) return MONGE_EINVAL;
    if (!(p->overrelax == 0 || (p->overrelax > 0 && p->overrelax < 2))) return MONGE_EINVAL;
    if (!(p->stage_tol >= 0)) return MONGE_EINVAL;
    if (p->kernel < 0 || p->kernel > 2) return MONGE_EINVAL;
    return MONGE_OK;
}

/* Work arrays of one solve, allocated once. */
typedef struct {
    int64_t n, m;
    double *a, *b;       /* weights (uniform filled in) */
    double *la, *lb;     /* log weights (-inf where zero) */
    double *h, *hint, *out;
    double *fsave;       /* f before the current half-step, restored on convergence */
    double *gsave;       /* g before the current half-step (the Anderson iterate) */
    double *fbest, *gbest; /* potentials at the lowest error of the stage */
    double ma, mb;       /* masses */
} sk_work;

static void sk_free(sk_work *s)
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

static int sk_alloc(sk_work *s, const monge_problem *pb)
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
    if (!s->a || !s->b || !s->la || !s->lb || !s->h || !s->hint || !s->out || !s->fsave || !s->gsave ||
        !s->fbest || !s->gbest) {
        sk_free(s);
        return MONGE_ENOMEM;
    }
    s->ma = monge_problem_weights(pb, 0, s->a);
    s->mb = monge_problem_weights(pb, 1, s->b);
    for (int64_t i = 0; i < s->n; i++) s->la[i] = s->a[i] > 0 ? log(s->a[i]) : -INFINITY;
    for (int64_t j = 0; j < s->m; j++) s->lb[j] = s->b[j] > 0 ? log(s->b[j]) : -INFINITY;
    return MONGE_OK;
}

/* The L1 KKT violations of one marginal entry (weight w > 0) before and after its potential moves
 * from `old` to `upd`, given logratio = log((P 1)_i / w_i) at `old`.  The ratio after the update is
 * taken in one exponent, logratio + (upd - old)/eps: ratio * exp((upd - old)/eps) is 0 * inf = NaN
 * when the ratio underflows at a first half-step (that reached callbacks as a NaN error).  Shared by
 * the log-domain half-step and the kernel cache's. */
static inline void kkt_errors(double old, double upd, double logratio, double w, double eps,
                              double tau, double *eb, double *ea)
{
    const double tgt = isinf(tau) ? 1.0 : exp(-old / tau);
    const double tgt2 = isinf(tau) ? 1.0 : exp(-upd / tau);
    *eb += w * fabs(exp(logratio) - tgt);
    *ea += w * fabs(exp(logratio + (upd - old) / eps) - tgt2);
}

/* One half-step on side `tr` (0: update f from g; 1: update g from f).
 * pot: the potential being updated (len), other: the fixed one (olen), w/lw: weights of the
 * updated side and log-weights of the fixed side.  Returns through *err_before the L1 KKT
 * violation of this side at the potentials on entry, and through *err_after the violation of
 * this side after the (over-relaxed) update. */
static int half_step(const monge_geom_work *gw, sk_work *s, int tr, double eps, double tau,
                     double omega, double *pot, const double *other, int nth,
                     double *err_before, double *err_after)
{
    const int64_t len = tr ? s->m : s->n, olen = tr ? s->n : s->m;
    const double *w = tr ? s->b : s->a, *lo = tr ? s->la : s->lb;
    const double lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    for (int64_t j = 0; j < olen; j++) s->h[j] = other[j] + eps * lo[j];
    for (int64_t i = 0; i < len; i++) s->hint[i] = -pot[i] / lam;
    int st = monge_softmin(gw, tr, eps, s->h, s->hint, s->out, nth);
    if (st) return st;
    double eb = 0, ea = 0;
    int finite = 1;
    for (int64_t i = 0; i < len; i++) {
        const double old = pot[i];
        const double sink = -lam * s->out[i];
        const double upd = old + omega * (sink - old);
        if (!isfinite(upd)) finite = 0;
        pot[i] = upd;
        if (w[i] > 0) kkt_errors(old, upd, (old + s->out[i]) / eps, w[i], eps, tau, &eb, &ea);
    }
    *err_before = eb;
    *err_after = ea;
    return finite ? MONGE_OK : MONGE_ENONFINITE;
}

/* Automatic over-relaxation, per stage.  Sinkhorn converges linearly near the solution with some
 * rate theta; over-relaxed with omega its rate lambda obeys the SOR relation for 2-cyclic
 * iterations, (lambda + omega - 1)^2 = lambda omega^2 theta, minimised by
 * omega* = 2 / (1 + sqrt(1 - theta)) (Young; for Sinkhorn: Thibault et al. 2021).  Every WINDOW
 * iterations we measure lambda (geometric mean of the error decrease, robust to the oscillations of
 * over-relaxation), infer theta from the relation and move omega to omega*(theta).  A blow-up
 * (error 100x above the best seen, or non-finite) restores the best potentials and halves
 * omega - 1. */
#define RELAX_WINDOW 20
#define RELAX_FIRST 5
#define AUTO_PROBE 100   /* iterations at the target eps before deciding on annealing */
#define AUTO_BUDGET 2000 /* projected iterations above which annealing is used instead */
#define RELAX_MAX 1.99
typedef struct {
    double omega, best, win_start_err;
    int64_t k, win_k;
    int automatic;
    int settling; /* the window after a change of omega holds its transient: not measured */
    int n_win;    /* windows measured so far */
    double cap;   /* the largest omega allowed: lowered by every blow-up, lifted once the error
                     falls 100x below the best error at that blow-up */
    double cap_err;
} relax_state;

static void relax_reset(relax_state *r, double fixed)
{
    memset(r, 0, sizeof *r);
    r->automatic = fixed == 0;
    r->omega = fixed > 0 ? fixed : 1.0;
    r->best = INFINITY;
    r->win_start_err = NAN;
    r->cap = RELAX_MAX;
    r->cap_err = 0.0;
}

/* Returns 1 when the caller should restore the best potentials. */
static int relax_update(relax_state *r, double err)
{
    r->k++;
    if (!(err <= 100.0 * r->best) && r->omega > 1.0 && r->k > 1) {
        r->omega = 1.0 + 0.5 * (r->omega - 1.0);
        /* far from the solution the SOR estimate does not hold: an omega that blew up once is
           never reached again in this stage (without this cap the windows raised omega back
           and a stage could cycle between blow-ups for ever: found at eps = 3e-4 x max cost) */
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
    /* windows of 5, 10, then 20 iterations: the first estimates come from the faster early
       decay and so err on the side of a small omega, and they let omega leave 1 after ~10
       iterations instead of ~30 */
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

/* Anderson acceleration (anderson.h) of the map g -> g' of one Sinkhorn iteration (an f half-step,
 * then a g half-step), on the absolute column potentials: absorptions and the kernel cache do not
 * disturb its history.  Extrapolations are not judged by their error: early ones often overshoot
 * (errors 10x to 3000x up for one or two steps) and the next ones, with the overshoot in their
 * history, recover.  Measured on 15 problems of 256 to 4000 points (tol 1e-4) and 12 hard 70 x 53
 * ones (eps = 1e-3, tol 1e-10): rejecting extrapolations 1000x worse than their origin (returning
 * to the plain image) cost 3368 against 2236 iterations and 13078 against 11283; a 2x threshold
 * lost the whole gain; delaying Anderson until the error is below 0.3 x the mass cost 2865.  So
 * only a non-finite error is rejected (the solve returns to the plain image G(x_k), the history
 * kept; after AA_MAX_FAILS of them the stage goes on with the adaptive over-relaxation).  Two
 * softer safeguards: an extrapolation AA_RESTART x worse than the stage's best error is kept but
 * clears the history, and AA_STALL iterations without a 10% better error hand the stage over to
 * the over-relaxation.  With both (against neither, stall at 200): 2154 vs 2207 iterations on the
 * 15 problems, 8889 vs 10654 on the 12 hard ones, 3434 vs 3351 on 24 translations, 2535 vs 2556
 * on 6 Monge gaps of linear maps (where the over-relaxation alone takes 1496: at eps = 0.01 std
 * Anderson cycled between 2e-6 and 2e-4, with a period of ~30 iterations, on one of them).
 * Damping: after AA_DAMP_AFTER extrapolations in a stage the least squares get a Tikhonov term of
 * AA_DAMP x the trace of their Gram matrix (1e-10 before), which shrinks the extrapolation towards
 * the plain step once the history holds many near-collinear differences.  Fast solves (both
 * benchmark cases: 25-28 iterations) are untouched.  Measured against no damping: 15 problems 1995
 * vs 2154 iterations, hard 6079 vs 8889, translations 2284 vs 3434, Monge gaps 1056 vs 2535 (each
 * of the six now at or below the over-relaxation alone; the cycling one 733 vs 786), and 20
 * problems made up afterwards as a check (3-D Gaussians, unbalanced, a circle at eps = 0.002,
 * cosine, clustered euclidean) 1233 vs 1550.  The Monge-gap total is chaotic in the threshold
 * (910 to 2353 for thresholds 25 to 31); the others hold within 10% for 25 to 60.  Damping from the
 * first extrapolation cost 20% more iterations on the benchmark cases (30 vs 25). */
#define AA_MAX_FAILS 3
#define AA_STALL 100   /* iterations without a 10% better error before handing over */
#define AA_RESTART 1e3 /* an extrapolation this much worse than the stage's best error clears the
                          history (the iterate is kept) */
#define AA_DAMP_AFTER 40 /* extrapolations in a stage before the least squares are damped */
#define AA_DAMP 3e-4     /* their Tikhonov term then, x the trace of the Gram matrix */
typedef struct {
    monge_aa aa;
    int on;               /* active in this stage */
    int fails;            /* rejected extrapolations in this stage */
    int64_t mixed;        /* extrapolations in this stage */
    int64_t accepted;     /* of them, accepted (diagnostic) */
    double best;          /* lowest measured error of the stage, and iterations since */
    int64_t since_best;
    int last_mixed;       /* the current iterate is an extrapolation */
    double plain_col_err; /* column error of the plain image, where a rejection returns */
    double *x, *gx;       /* absolute potentials (m) for the kernel cache */
} accel_state;

static void accel_stage(accel_state *acc, int on)
{
    acc->on = on;
    acc->fails = 0;
    acc->mixed = 0;
    acc->accepted = 0;
    acc->last_mixed = 0;
    acc->best = INFINITY;
    acc->since_best = 0;
    acc->aa.reg = 0.0;
    if (on) monge_aa_reset(&acc->aa);
}

/* Records an extrapolation, whose plain image had column error col_plain. */
static void accel_mixed(accel_state *acc, double col_plain)
{
    if (++acc->mixed == AA_DAMP_AFTER) acc->aa.reg = AA_DAMP;
    acc->last_mixed = 1;
    acc->plain_col_err = col_plain;
}

/* Called with the measured error of the current iterate: 1 when it is a rejected extrapolation
 * (the caller returns to the plain image acc->aa.Gprev; the history is kept). */
static int accel_reject(accel_state *acc, relax_state *rs, double err, double overrelax)
{
    if (!acc->on) return 0;
    if (err < 0.9 * acc->best) {
        acc->best = err;
        acc->since_best = 0;
    } else if (++acc->since_best > AA_STALL) {
        /* stagnating (found: a Monge gap at eps = 0.01 std stuck at 2.5e-6 for 10 000 iterations,
           where the over-relaxation converges in 781): hand over */
        acc->on = 0;
        acc->last_mixed = 0;
        rs->automatic = overrelax == 0;
        return 0;
    }
    if (!acc->last_mixed) return 0;
    acc->last_mixed = 0;
    if (err > AA_RESTART * acc->best) monge_aa_reset(&acc->aa); /* the iterate is kept */
    if (isfinite(err)) {
        acc->accepted++;
        return 0;
    }
    if (++acc->fails > AA_MAX_FAILS) {
        /* the rest of the stage: adaptive over-relaxation, its windows starting now */
        acc->on = 0;
        rs->automatic = overrelax == 0;
    }
    return 1;
}

/* The L1 violation of the column marginals after the column potentials moved from `old` (where a
 * g half-step computed s->out) to `upd`, as half_step reports it for its own update. */
static double col_err_at(const sk_work *s, const double *old, const double *upd, double eps,
                         double tau)
{
    double eb = 0, ea = 0;
    for (int64_t j = 0; j < s->m; j++)
        if (s->b[j] > 0) kkt_errors(old[j], upd[j], (old[j] + s->out[j]) / eps, s->b[j], eps, tau, &eb, &ea);
    return ea;
}

/* First eps of the schedule: eps itself unless annealing is on (or automatic and useful). */
static int first_eps(const monge_sinkhorn_params *par, const monge_geom_work *gw, int nth,
                     double *eps0)
{
    *eps0 = par->eps;
    if (par->eps_scaling == 0 || (par->eps_scaling == 2 && par->warm_start)) return MONGE_OK;
    double cmax = 0;
    int st = monge_geom_max_cost(gw, &cmax, nth);
    if (st) return st;
    /* measured (benchmarks/sinkhorn.py --schedule): with adaptive over-relaxation, annealing only
       pays below ~1e-4 x the max cost, where it turns a stalled solve into a converged one */
    if (par->eps_scaling == 2 && !(par->eps < 1e-4 * cmax)) return MONGE_OK;
    const double e0 = par->eps_start > 0 ? par->eps_start : cmax;
    *eps0 = e0 > par->eps ? e0 : par->eps;
    return MONGE_OK;
}

/* ------------------------------------------------------------------ kernel-domain fast path
 *
 * At an eps where exp(-C/eps) does not underflow where it matters, a Sinkhorn iteration can read a
 * cached kernel instead of recomputing one exp per entry.  The cache is stabilised (Schmitzer
 * 2019): K_ij = a_i b_j exp((F_i + G_j - C_ij)/eps), the plan at absorbed potentials (F, G), so
 * every entry is at most the row mass after the first half-step and nothing overflows; the
 * iteration moves log-scalings lu, lv with P = diag(e^lu) K diag(e^lv) and absorbs them into
 * (F, G) with one rebuild when they exceed KER_ABSORB (then the entries that float flushed to zero,
 * below e^-87 of the row mass, stay below e^-27 of it).
 *
 * K is stored in float whatever the problem's dtype: the iteration is bound by memory bandwidth,
 * and one fused pass per iteration (a row's sum gives its new scaling, and the same row, still in
 * cache, is added into the column sums) reads K once instead of twice.  Sums are in double.  The
 * float kernel perturbs the problem by ~1e-7 relative, so the fast path stops at
 * max(tol, KER_FLOOR x mass) measured on it, and the caller verifies (and finishes) in the log
 * domain in double: the returned potentials meet tol in exact arithmetic, as without the cache.
 * Column sums are reduced over KER_BLOCKS fixed row blocks in a fixed order: results do not depend
 * on the thread count.  It gives way to the log domain (returning the potentials it reached) when
 * absorptions come too often (eps too small for it), when the error stalls at the float floor, on
 * a blow-up, or when the cache cannot be allocated. */
#define KER_BLOCKS 32
#define KER_ABSORB 30.0
#define KER_FLOOR 1e-6
#define KER_STALL 40
#define KER_SMALL ((int64_t)1 << 21)
#define KER_LANES 16  /* float partial sums per row (one AVX-512 register) */
#define KER_CHUNK 256 /* row entries per float partial sum: 16 products a lane */
#define KER_FLUSH 16  /* rows per float column partial */
#define KER_MIN 4096 /* below 64 x 64 the cache saves nothing measurable (12 x 9: 99 vs 100 us) */

typedef struct {
    int64_t n, m;
    float *K;
    double *lu, *lv, *ev, *eu, *colpart, *lub, *lvb, *lup, *lvp;
    float *evf, *colf;
    double blk_eb[KER_BLOCKS], blk_ea[KER_BLOCKS];
} ker_work;

/* The cache: 2 MiB-aligned and, on Linux, backed by transparent huge pages where the system allows
 * them (madvise mode): a fresh 64 MiB cache otherwise takes 16384 page faults on its first write,
 * measured at about half of the build time at 4000 x 4000.  Freed with free(). */
static float *ker_alloc(size_t count)
{
    const size_t bytes = sizeof(float) * count, align = (size_t)1 << 21;
    if (bytes < ((size_t)4 << 20)) return malloc(bytes);
    void *p = NULL;
    if (posix_memalign(&p, align, (bytes + align - 1) / align * align)) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, (bytes + align - 1) / align * align, MADV_HUGEPAGE); /* advice only */
#endif
    return p;
}

static void ker_free(ker_work *k)
{
    free(k->K);
    free(k->lu);
    free(k->lv);
    free(k->ev);
    free(k->eu);
    free(k->colpart);
    free(k->lub);
    free(k->lvb);
    free(k->lup);
    free(k->lvp);
    free(k->evf);
    free(k->colf);
}

/* Rebuild K at potentials (f, g): K_ij = a_i b_j exp((f_i + g_j - C_ij)/eps). */
static int ker_build(const monge_geom_work *gw, sk_work *s, ker_work *k, double eps, const double *f,
                     const double *g, int nth)
{
    for (int64_t i = 0; i < k->n; i++) s->hint[i] = f[i] + eps * s->la[i];
    for (int64_t j = 0; j < k->m; j++) s->h[j] = g[j] + eps * s->lb[j];
    double mx;
    int st = monge_geom_kernel_f32(gw, eps, s->hint, s->h, k->K, &mx, nth);
    if (st) return st;
    return mx < 1e30 ? MONGE_OK : MONGE_ENONFINITE; /* not balanced enough for float: give way */
}

/* One half-step on the scalings of one side from its sums S (row sums of diag(e^lu) K diag(e^lv)
 * without the e^lu factor).  pot: the absorbed potentials of the side; w: its weights.
 * Updates lu in place and writes e^lu into eu (0 for zero weights); returns the errors before and
 * after as in half_step. */
static int ker_update(const double *S, const double *w, const double *pot, double *lu, double *eu,
                      int64_t len, double eps, double tau, double omega, double *err_before,
                      double *err_after)
{
    const double lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    double eb = 0, ea = 0;
    for (int64_t i = 0; i < len; i++) {
        if (!(w[i] > 0)) {
            eu[i] = 0.0;
            continue;
        }
        const double old = pot[i] + eps * lu[i];          /* the potential f_i */
        const double ratio = exp(lu[i]) * S[i] / w[i];     /* (P 1)_i / w_i */
        if (!(ratio > 0) || !isfinite(ratio)) return MONGE_ENONFINITE;
        const double logratio = log(ratio);
        const double sink = lam * (old - eps * logratio);
        const double upd = old + omega * (sink - old);
        kkt_errors(old, upd, logratio, w[i], eps, tau, &eb, &ea);
        lu[i] = (upd - pot[i]) / eps;
        eu[i] = exp(lu[i]);
    }
    *err_before = eb;
    *err_after = ea;
    return MONGE_OK;
}

/* The fused pass: S_i = sum_j K_ij ev_j for every row, the row update from it, and the column sums
 * T_j = sum_i K_ij eu_i with the new eu, accumulated per fixed row block. */
MONGE_HOT static int ker_pass(ker_work *k, sk_work *s, const double *f, double eps, double tau,
                              double omega, double *S, double *T, int nth)
{
    const int64_t n = k->n, m = k->m;
    const int64_t bs = (n + KER_BLOCKS - 1) / KER_BLOCKS;
    float *evf = k->evf;
    for (int64_t j = 0; j < m; j++) evf[j] = (float)k->ev[j];
    int bad = 0;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(nth) reduction(| : bad))
    for (int b = 0; b < KER_BLOCKS; b++) {
        const int64_t r0 = b * bs, r1 = r0 + bs < n ? r0 + bs : n;
        double *cp = k->colpart + (int64_t)b * m;
        float *cf = k->colf + (int64_t)b * m;
        for (int64_t j = 0; j < m; j++) cp[j] = 0.0;
        for (int64_t j = 0; j < m; j++) cf[j] = 0.0f;
        double eb = 0, ea = 0;
        int pending = 0;
        for (int64_t i = r0; i < r1; i++) {
            const float *Ki = k->K + i * m;
            /* float products and vector lanes (twice the throughput of double: the pass is
               compute-bound in double), flushed into a double sum every KER_CHUNK entries */
            double accd[KER_LANES] = {0};
            const int64_t mv = m - m % KER_LANES;
            for (int64_t j0 = 0; j0 < mv; j0 += KER_CHUNK) {
                const int64_t j1 = j0 + KER_CHUNK < mv ? j0 + KER_CHUNK : mv;
                float part[KER_LANES] = {0};
                for (int64_t j = j0; j < j1; j += KER_LANES) {
                    MONGE_SIMD
                    for (int l = 0; l < KER_LANES; l++) part[l] += Ki[j + l] * evf[j + l];
                }
                MONGE_SIMD
                for (int l = 0; l < KER_LANES; l++) accd[l] += (double)part[l];
            }
            double acc = 0.0;
            for (int64_t j = mv; j < m; j++) acc += (double)Ki[j] * (double)evf[j];
            for (int l = 0; l < KER_LANES; l++) acc += accd[l];
            S[i] = acc;
            double e1, e2;
            if (ker_update(S + i, s->a + i, f + i, k->lu + i, k->eu + i, 1, eps, tau, omega, &e1, &e2)) {
                bad = 1;
                continue;
            }
            eb += e1;
            ea += e2;
            const float ui = (float)k->eu[i];
            if (ui == 0.0f) continue;
            MONGE_SIMD
            for (int64_t j = 0; j < m; j++) cf[j] += Ki[j] * ui;
            if (++pending == KER_FLUSH) { /* float column partials over at most KER_FLUSH rows */
                pending = 0;
                MONGE_SIMD
                for (int64_t j = 0; j < m; j++) {
                    cp[j] += (double)cf[j];
                    cf[j] = 0.0f;
                }
            }
        }
        if (pending) {
            MONGE_SIMD
            for (int64_t j = 0; j < m; j++) cp[j] += (double)cf[j];
        }
        k->blk_eb[b] = eb;
        k->blk_ea[b] = ea;
    }
    if (bad) return MONGE_ENONFINITE;
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(nth))
    for (int64_t j = 0; j < m; j++) {
        double t = 0.0;
        for (int b = 0; b < KER_BLOCKS; b++) t += k->colpart[(int64_t)b * m + j];
        T[j] = t;
    }
    return MONGE_OK;
}

/* Runs kernel-domain iterations from (f, g) (whose rows were just normalised by a log-domain
 * half-step) until the float-measured error is below max(tol, floor), max_iter, or it gives way.
 * On return f, g hold the potentials reached (always usable), *iter is advanced and *ran says
 * whether any iteration ran.  Only MONGE_EINTR is returned as an error. */
static int kernel_phase(const monge_geom_work *gw, sk_work *s, const monge_problem *pb,
                        const monge_sinkhorn_params *par, double eps, double tol, relax_state *rs,
                        accel_state *acc, double col_err_in, double *f, double *g, int64_t *iter,
                        int nth, int *ran, int64_t *n_mixed, double *last_err)
{
    *ran = 0;
    *last_err = INFINITY;
    ker_work k;
    memset(&k, 0, sizeof k);
    k.n = s->n;
    k.m = s->m;
    const int64_t n = k.n, m = k.m;
    k.K = ker_alloc((size_t)n * (size_t)m);
    k.lu = calloc((size_t)n, sizeof(double));
    k.lv = calloc((size_t)m, sizeof(double));
    k.ev = malloc(sizeof(double) * (size_t)m);
    k.eu = malloc(sizeof(double) * (size_t)(n > m ? n : m));
    k.colpart = malloc(sizeof(double) * (size_t)KER_BLOCKS * (size_t)m);
    k.lub = calloc((size_t)n, sizeof(double));
    k.lvb = calloc((size_t)m, sizeof(double));
    k.lup = malloc(sizeof(double) * (size_t)n);
    k.lvp = malloc(sizeof(double) * (size_t)m);
    k.evf = malloc(sizeof(float) * (size_t)m);
    k.colf = malloc(sizeof(float) * (size_t)KER_BLOCKS * (size_t)m);
    double *S = s->out, *T = malloc(sizeof(double) * (size_t)m);
    /* a cached pass costs ~0.3 ns an entry: below 2^20 entries one thread beats waking a team
       (and a barrier on a busy machine); results do not depend on it (fixed blocks) */
    if (n * m < ((int64_t)1 << 20)) nth = 1;
    int st = MONGE_OK;
    if (!k.K || !k.lu || !k.lv || !k.ev || !k.eu || !k.colpart || !k.lub || !k.lvb || !k.lup || !k.lvp || !k.evf || !k.colf || !T)
        goto out;
    if (ker_build(gw, s, &k, eps, f, g, nth)) goto out;
    const double floor_err = KER_FLOOR * (s->ma > s->mb ? s->ma : s->mb);
    const int balanced = isinf(pb->tau_a) && isinf(pb->tau_b);
    const double exit_err = tol > floor_err ? tol : floor_err;
    int64_t k_iter = 0, rebuilds = 0, since_best = 0;
    double col_err = col_err_in, best = INFINITY;
    for (int64_t j = 0; j < m; j++) k.ev[j] = s->b[j] > 0 ? 1.0 : 0.0;
    while (*iter < par->max_iter) {
        /* the state this pass measures: returned as is when it meets the exit error (an
           over-relaxed step can leave a worse one), or when the pass fails */
        memcpy(k.lup, k.lu, sizeof(double) * (size_t)n);
        memcpy(k.lvp, k.lv, sizeof(double) * (size_t)m);
        double cb, ca;
        if (ker_pass(&k, s, f, eps, pb->tau_a, rs->omega, S, T, nth) ||
            ker_update(T, s->b, g, k.lv, k.ev, m, eps, pb->tau_b, rs->omega, &cb, &ca)) {
            memcpy(k.lu, k.lup, sizeof(double) * (size_t)n); /* a row or column lost all its */
            memcpy(k.lv, k.lvp, sizeof(double) * (size_t)m); /* mass in float: give way */
            break;
        }
        double row_err = 0;
        for (int b = 0; b < KER_BLOCKS; b++) row_err += k.blk_eb[b];
        for (int64_t j = 0; j < m; j++)
            if (!(s->b[j] > 0)) k.ev[j] = 0.0;
        if (isinf(col_err)) { /* just restored after a blow-up: no measured state yet */
            (*iter)++;
            k_iter++;
            col_err = ca;
            goto rescale;
        }
        /* the error of the state after *iter iterations (lu before this pass, lv), as the
           log-domain loop measures and reports it */
        const double err = row_err + col_err;
        *ran = 1;
        *last_err = err;
        if (!(err <= exit_err) && accel_reject(acc, rs, err, par->overrelax)) {
            /* back to the plain image of the previous iterate: rows as they were, columns at
               G(x_k) (the lost pass is not an iteration: it is neither reported nor counted) */
            memcpy(k.lu, k.lup, sizeof(double) * (size_t)n);
            for (int64_t j = 0; j < m; j++) {
                k.lv[j] = (acc->aa.Gprev[j] - g[j]) / eps;
                k.ev[j] = s->b[j] > 0 ? exp(k.lv[j]) : 0.0;
            }
            col_err = acc->plain_col_err;
            continue;
        }
        if (par->progress && par->progress(par->progress_ctx, *iter, err)) {
            memcpy(k.lu, k.lup, sizeof(double) * (size_t)n);
            memcpy(k.lv, k.lvp, sizeof(double) * (size_t)m);
            st = MONGE_EINTR;
            break;
        }
        if (err <= exit_err) {
            memcpy(k.lu, k.lup, sizeof(double) * (size_t)n);
            memcpy(k.lv, k.lvp, sizeof(double) * (size_t)m);
            break;
        }
        (*iter)++;
        k_iter++;
        /* near the float floor the error is mostly rounding noise: a stall there would read as
           a slow rate and push omega to its cap, so omega only learns from errors well above it */
        if (err > 100.0 * floor_err && relax_update(rs, err)) {
            memcpy(k.lu, k.lub, sizeof(double) * (size_t)n); /* blow-up: back to the best */
            memcpy(k.lv, k.lvb, sizeof(double) * (size_t)m);
            for (int64_t j = 0; j < m; j++) k.ev[j] = s->b[j] > 0 ? exp(k.lv[j]) : 0.0;
            col_err = INFINITY;
            continue;
        }
        {
            if (err < 0.9 * best) {
                best = err;
                since_best = 0;
                memcpy(k.lub, k.lup, sizeof(double) * (size_t)n);
                memcpy(k.lvb, k.lvp, sizeof(double) * (size_t)m);
            } else if (++since_best > KER_STALL && err < 1e3 * floor_err) {
                /* stalled near the float floor: the log domain finishes.  (Above it the cached
                   iteration is the log-domain one up to rounding: a plateau there is the
                   algorithm's, not the cache's, and it goes on.) */
                break;
            }
        }
        if (acc->on) {
            /* Anderson on the absolute column potentials g + eps lv */
            for (int64_t j = 0; j < m; j++) {
                acc->x[j] = g[j] + eps * k.lvp[j];
                acc->gx[j] = g[j] + eps * k.lv[j];
            }
            if (monge_aa_step(&acc->aa, acc->x, acc->gx, acc->gx)) {
                (*n_mixed)++;
                accel_mixed(acc, ca);
                double eb = 0, ea = 0;
                for (int64_t j = 0; j < m; j++) {
                    if (!(s->b[j] > 0)) continue;
                    const double lv = (acc->gx[j] - g[j]) / eps;
                    /* log of the column ratio at the iterate (lvp), given the sums T there */
                    const double logratio = k.lvp[j] + log(T[j] / s->b[j]);
                    kkt_errors(acc->x[j], acc->gx[j], logratio, s->b[j], eps, pb->tau_b, &eb, &ea);
                    k.lv[j] = lv;
                    k.ev[j] = exp(lv);
                }
                ca = ea;
            }
        }
        for (int64_t j = 0; j < m; j++)
            if (!(s->b[j] > 0)) k.ev[j] = 0.0;
        col_err = ca;
    rescale:
        if (balanced) {
            /* (lu + c, lv - c) is the same plan: centre the two ranges, so that a drift of the
               gauge (over-relaxation moves it) does not force absorptions */
            double ulo = INFINITY, uhi = -INFINITY, vlo = INFINITY, vhi = -INFINITY;
            for (int64_t i = 0; i < n; i++)
                if (s->a[i] > 0) {
                    ulo = fmin(ulo, k.lu[i]);
                    uhi = fmax(uhi, k.lu[i]);
                }
            for (int64_t j = 0; j < m; j++)
                if (s->b[j] > 0) {
                    vlo = fmin(vlo, k.lv[j]);
                    vhi = fmax(vhi, k.lv[j]);
                }
            const double c = 0.25 * ((ulo + uhi) - (vlo + vhi));
            if (isfinite(c) && fabs(c) > 1.0) {
                const double ec = exp(c);
                for (int64_t i = 0; i < n; i++) k.lu[i] -= c;
                for (int64_t j = 0; j < m; j++) {
                    k.lv[j] += c;
                    k.ev[j] *= ec;
                }
                /* the plain image a rejection returns to moves with the gauge */
                if (acc->on && acc->aa.have_prev)
                    for (int64_t j = 0; j < m; j++) acc->aa.Gprev[j] += eps * c;
            }
        }
        /* absorb large scalings into the potentials, rebuilding the cache */
        double big = 0;
        for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(k.lu[i]));
        for (int64_t j = 0; j < m; j++) big = fmax(big, fabs(k.lv[j]));
        if (!(big <= KER_ABSORB)) {
            /* a rebuild costs about one log-domain half-step, a cached iteration a fraction of one:
               the cache pays while rebuilds come less often than every other iteration */
            if (++rebuilds * 2 > k_iter + 8) break; /* eps too small for the cache: give way */
            for (int64_t i = 0; i < n; i++) f[i] += eps * k.lu[i];
            for (int64_t j = 0; j < m; j++) g[j] += eps * k.lv[j];
            memset(k.lu, 0, sizeof(double) * (size_t)n);
            memset(k.lv, 0, sizeof(double) * (size_t)m);
            /* the best state kept for a blow-up is now this one (the error scale is unchanged:
               the same plan, so `best` stays, and so does the stall count) */
            memset(k.lub, 0, sizeof(double) * (size_t)n);
            memset(k.lvb, 0, sizeof(double) * (size_t)m);
            for (int64_t j = 0; j < m; j++) k.ev[j] = s->b[j] > 0 ? 1.0 : 0.0;
            if (ker_build(gw, s, &k, eps, f, g, nth)) {
                memset(k.lu, 0, sizeof(double) * (size_t)n);
                memset(k.lv, 0, sizeof(double) * (size_t)m);
                break;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) f[i] += eps * k.lu[i];
    for (int64_t j = 0; j < m; j++) g[j] += eps * k.lv[j];
out:
    free(T);
    ker_free(&k);
    return st;
}

/* The L1 KKT error of (f, g) on both marginals, measured in one pass over the costs (in double
 * potentials: see monge_geom_marginals), with the mass and transport cost <P, C> of the plan at
 * eps from the same pass.  It replaces, after the kernel cache, the column half-step, the row
 * half-step that measures and the final cost pass: one pass instead of three when the state the
 * cache returns already meets tol. */
static int verify_state(const monge_geom_work *gw, const sk_work *s, const monge_problem *pb,
                        double eps, const double *f, const double *g, int nth, double *err,
                        double *mass, double *cost)
{
    const int64_t n = s->n, m = s->m;
    double *rsum = malloc(sizeof(double) * (size_t)n), *rcost = malloc(sizeof(double) * (size_t)n);
    double *csum = malloc(sizeof(double) * (size_t)m);
    int st = rsum && rcost && csum ? MONGE_OK : MONGE_ENOMEM;
    if (!st) {
        for (int64_t i = 0; i < n; i++) s->hint[i] = f[i] + eps * s->la[i];
        for (int64_t j = 0; j < m; j++) s->h[j] = g[j] + eps * s->lb[j];
        st = monge_geom_marginals(gw, eps, s->hint, s->h, rsum, csum, rcost, nth);
    }
    if (!st) {
        double er = 0, ec = 0, ms = 0, cs = 0, unused = 0;
        for (int64_t i = 0; i < n; i++) {
            if (!(s->a[i] > 0)) continue;
            kkt_errors(f[i], f[i], log(rsum[i] / s->a[i]), s->a[i], eps, pb->tau_a, &er, &unused);
            ms += rsum[i];
            cs += rcost[i];
        }
        for (int64_t j = 0; j < m; j++)
            if (s->b[j] > 0)
                kkt_errors(g[j], g[j], log(csum[j] / s->b[j]), s->b[j], eps, pb->tau_b, &ec, &unused);
        *err = er + ec;
        *mass = ms;
        *cost = cs;
    }
    free(rsum);
    free(rcost);
    free(csum);
    return st;
}

static int run(const monge_problem *pb, const monge_sinkhorn_params *par, double *f, double *g,
               monge_sinkhorn_info *info)
{
    memset(info, 0, sizeof *info);
    info->cost = info->mass = info->value = info->error = NAN;
    int st = check_params(par);
    if (st) return st;
    if (!f || !g) return MONGE_EINVAL;
    st = monge_problem_check(pb, 1e-6);
    if (st) return st;
    const int nth = monge_resolve_threads(par->nthreads);
    monge_geom_work *gw = NULL;
    st = monge_geom_prepare(pb->geom, nth, &gw);
    if (st) return st;
    sk_work s;
    st = sk_alloc(&s, pb);
    if (st) {
        monge_geom_release(gw);
        return st;
    }
    const int64_t n = s.n, m = s.m;
    accel_state acc;
    memset(&acc, 0, sizeof acc);
    if (!par->warm_start) {
        memset(f, 0, sizeof(double) * (size_t)n);
        memset(g, 0, sizeof(double) * (size_t)m);
    } else {
        for (int64_t i = 0; i < n; i++)
            if (!isfinite(f[i])) st = MONGE_EINVAL;
        for (int64_t j = 0; j < m; j++)
            if (!isfinite(g[j])) st = MONGE_EINVAL;
        if (st) goto done;
    }

    /* the epsilon schedule */
    double eps_cur;
    st = first_eps(par, gw, nth, &eps_cur);
    if (st) goto done;
    int64_t iter = 0;
    int converged = 0;
    double err = INFINITY, err_half = NAN;
    /* probe only when the schedule was left to us and did not start annealed already */
    int auto_probe = par->eps_scaling == 2 && !par->warm_start && eps_cur <= par->eps;
    int64_t probe_at = AUTO_PROBE; /* probes at 100, 200, 400, 800 iterations: a sublinear decay
                                      that looked fine early is caught by a later probe */
    int restarted = 0;
    /* automatic: dense costs (O(nm) memory already), or a cache small enough to stay in the
       CPU caches (<= KER_SMALL entries, 8 MiB: minibatch solves), so that the online path keeps
       its O(n + m) memory for the problems where memory matters */
    const int use_kernel = par->kernel == 2 || (par->kernel == 1 && n * m >= KER_MIN &&
                                                (pb->geom->C != NULL || n * m <= KER_SMALL));
    int kernel_tried = 0;
    int have_cost = 0; /* the final state's mass and cost were measured in its verification */
    double pass_mass = NAN, pass_cost = NAN;
    relax_state rs;
    const int use_aa = par->anderson > 0 && par->overrelax == 0;
    if (use_aa) {
        st = monge_aa_init(&acc.aa, par->anderson, m, s.b, isinf(pb->tau_a) && isinf(pb->tau_b));
        acc.x = malloc(sizeof(double) * (size_t)m);
        acc.gx = malloc(sizeof(double) * (size_t)m);
        if (!st && (!acc.x || !acc.gx)) st = MONGE_ENOMEM;
        if (st) goto done;
    }
    for (;;) {
        const int last = eps_cur <= par->eps;
        const double tol = last ? par->tol : (par->stage_tol > par->tol ? par->stage_tol : par->tol);
        const int64_t stage_start = iter;
        int64_t probe_origin = iter; /* the automatic-annealing probes count from here */
        kernel_tried = 0;            /* every stage may use the cache (rebuilt at its eps) */
        info->n_stages++;
        accel_stage(&acc, use_aa);
        relax_reset(&rs, acc.on ? 1.0 : par->overrelax);
        int have_col = 0;
        double col_err = INFINITY;
        int stage_done = 0;
        while (!stage_done) {
            double row_err, row_after;
            /* f half-step; the error of the current (f, g) falls out of it */
            double f_om = rs.omega;
            if (iter >= par->max_iter) {
                /* measure without updating: one half pass with omega = 0 */
                f_om = 0.0;
            }
            memcpy(s.fsave, f, sizeof(double) * (size_t)n);
            st = half_step(gw, &s, 0, eps_cur, pb->tau_a, f_om, f, g, nth, &row_err, &row_after);
            if (st) goto done;
            if (have_col) {
                err = row_err + col_err;
                if (!(err <= tol) && accel_reject(&acc, &rs, err, par->overrelax)) {
                    /* back to (f_k, G(x_k)), the plain image of the previous iterate (the lost
                       f half-step is not an iteration: it is neither reported nor counted) */
                    memcpy(f, s.fsave, sizeof(double) * (size_t)n);
                    memcpy(g, acc.aa.Gprev, sizeof(double) * (size_t)m);
                    col_err = acc.plain_col_err;
                    continue;
                }
                if (par->progress && par->progress(par->progress_ctx, iter, err)) {
                    st = MONGE_EINTR;
                    goto done;
                }
                if (err <= tol) {
                    /* the measured state is (f before this half-step, g): return exactly it */
                    memcpy(f, s.fsave, sizeof(double) * (size_t)n);
                    stage_done = 1;
                    if (last) converged = 1;
                    break;
                }
                const double prev_best = rs.best;
                if (relax_update(&rs, err)) {
                    /* blow-up: back to the best state of this stage, with a smaller omega */
                    memcpy(f, s.fbest, sizeof(double) * (size_t)n);
                    memcpy(g, s.gbest, sizeof(double) * (size_t)m);
                    have_col = 0;
                    continue;
                }
                if (err < prev_best) {
                    memcpy(s.fbest, s.fsave, sizeof(double) * (size_t)n);
                    memcpy(s.gbest, g, sizeof(double) * (size_t)m);
                }
            }
            if (iter >= par->max_iter) {
                stage_done = 1;
                break;
            }
            double gb, ga;
            if (acc.on) memcpy(s.gsave, g, sizeof(double) * (size_t)m);
            st = half_step(gw, &s, 1, eps_cur, pb->tau_b, rs.omega, g, f, nth, &gb, &ga);
            if (st) goto done;
            col_err = ga;
            if (acc.on && have_col && monge_aa_step(&acc.aa, s.gsave, g, g)) {
                accel_mixed(&acc, ga);
                col_err = col_err_at(&s, s.gsave, g, eps_cur, pb->tau_b);
                info->anderson_iter++;
            }
            have_col = 1;
            iter++;
            /* the cache, once per stage, after the first measured error, and only far above
               its float floor (near it, it would undo precision the potentials already have:
               a warm start at the solution stays exactly where it is) */
            /* (a cold start enters after one iteration: its columns are normalised, so no entry
               of the cache overflows, and the first error is not needed to know it is far) */
            const int cold = !par->warm_start && info->n_stages == 1;
            if (use_kernel && !kernel_tried && iter - stage_start >= (cold ? 1 : 2) &&
                err > 100.0 * KER_FLOOR * (s.ma > s.mb ? s.ma : s.mb)) {
                kernel_tried = 1;
                int ran;
                double kerr;
                const int64_t it0 = iter;
                st = kernel_phase(gw, &s, pb, par, eps_cur, tol, &rs, &acc, col_err, f, g, &iter,
                                  nth, &ran, &info->anderson_iter, &kerr);
                info->kernel_iter += iter - it0;
                if (st) goto done;
                if (ran && kerr <= tol) {
                    /* the cache met tol (in float): measure that state in double, both marginals
                       and the cost in one pass, and return it as is when it meets tol */
                    double verr, vmass, vcost;
                    st = verify_state(gw, &s, pb, eps_cur, f, g, nth, &verr, &vmass, &vcost);
                    if (st) goto done;
                    if (verr <= tol) {
                        err = verr;
                        if (par->progress && par->progress(par->progress_ctx, iter, err)) {
                            st = MONGE_EINTR;
                            goto done;
                        }
                        stage_done = 1;
                        if (last) {
                            converged = 1;
                            have_cost = 1;
                            pass_mass = vmass;
                            pass_cost = vcost;
                        }
                        break;
                    }
                }
                if (ran) {
                    /* an exact (double) column update, then the loop below measures the rows:
                       the stopping test is always made in the log domain */
                    st = half_step(gw, &s, 1, eps_cur, pb->tau_b, 1.0, g, f, nth, &gb, &ga);
                    if (st) goto done;
                    col_err = ga;
                    memcpy(s.fbest, f, sizeof(double) * (size_t)n);
                    memcpy(s.gbest, g, sizeof(double) * (size_t)m);
                    const double om = rs.omega; /* keep the omega learnt, restart its windows */
                    relax_reset(&rs, acc.on ? 1.0 : par->overrelax);
                    if (rs.automatic) rs.omega = om;
                    /* the history holds residuals measured on the float cache: start afresh */
                    if (acc.on) monge_aa_reset(&acc.aa);
                    acc.last_mixed = 0;
                    probe_origin = iter;
                    probe_at = AUTO_PROBE;
                    err_half = NAN;
                }
            }
            /* automatic annealing, decided on the evidence: after AUTO_PROBE iterations at the
               target eps, project the iterations still needed from the measured rate; when the
               solve would take more than AUTO_BUDGET (or is not decreasing), restart it with
               epsilon-scaling, which resolves the coarse structure first. */
            if (auto_probe && last) {
                const int64_t k = iter - probe_origin;
                if (k == probe_at / 2) err_half = err;
                if (k == probe_at) {
                    const double theta = pow(err / err_half, 2.0 / (double)probe_at);
                    const double left = theta < 1.0 ? log(tol / err) / log(theta) : INFINITY;
                    probe_at *= 2;
                    err_half = err; /* the next probe's half-way point is this iteration */
                    if (probe_at > AUTO_BUDGET / 2) auto_probe = 0;
                    if (!(err <= tol) && !((double)k + left <= AUTO_BUDGET)) {
                        double cmax;
                        auto_probe = 0;
                        st = monge_geom_max_cost(gw, &cmax, nth);
                        if (st) goto done;
                        if (cmax > par->eps) {
                            memset(f, 0, sizeof(double) * (size_t)n);
                            memset(g, 0, sizeof(double) * (size_t)m);
                            eps_cur = par->eps_start > 0 ? par->eps_start : cmax;
                            restarted = 1;
                            break;
                        }
                    }
                }
            }
        }
        if (restarted) {
            restarted = 0;
            continue;
        }
        if (last || iter >= par->max_iter) break;
        eps_cur *= par->scaling_factor;
        if (eps_cur < par->eps) eps_cur = par->eps;
    }
    if (isinf(pb->tau_a) && isinf(pb->tau_b)) {
        /* balanced potentials are defined up to (f + c, g - c): return the gauge <a,f> = <b,g>,
           so that results do not depend on the path (schedule, geometry, warm start) */
        /* with normalised weights, so that potentials near the double range do not overflow
           the sums (found by libFuzzer: costs of 1.7e308) */
        double fa = 0, gb = 0;
        for (int64_t i = 0; i < n; i++) fa += (s.a[i] / s.ma) * f[i];
        for (int64_t j = 0; j < m; j++) gb += (s.b[j] / s.mb) * g[j];
        const double wa = s.ma / (s.ma + s.mb), c = wa * fa - (1.0 - wa) * gb;
        for (int64_t i = 0; i < n; i++) f[i] -= c;
        for (int64_t j = 0; j < m; j++) g[j] += c;
    }
    info->n_iter = iter;
    info->converged = converged;
    info->overrelax = rs.omega;
    info->error = err;
    st = MONGE_OK;
done:
    if (st == MONGE_OK && par->compute_cost) {
        const double eps = par->eps;
        double *u = s.hint, *hh = s.h, *rsum = s.out;
        double *rc = have_cost ? NULL : malloc(sizeof(double) * (size_t)n);
        if (!have_cost && !rc) st = MONGE_ENOMEM;
        else {
            double mass = pass_mass, cost = pass_cost;
            if (!have_cost) {
                for (int64_t i = 0; i < n; i++) u[i] = f[i] + eps * s.la[i];
                for (int64_t j = 0; j < m; j++) hh[j] = g[j] + eps * s.lb[j];
                st = monge_geom_apply(gw, 0, eps, u, hh, NULL, 0, NULL, rsum, rc, nth);
                mass = cost = 0;
                for (int64_t i = 0; i < n; i++) {
                    if (s.a[i] > 0) {
                        mass += rsum[i];
                        cost += rc[i];
                    }
                }
                free(rc);
            }
            double dual = -eps * (mass - s.ma * s.mb);
            for (int64_t i = 0; i < n; i++)
                if (s.a[i] > 0)
                    dual += s.a[i] * (isinf(pb->tau_a) ? f[i] : pb->tau_a * (1 - exp(-f[i] / pb->tau_a)));
            for (int64_t j = 0; j < m; j++)
                if (s.b[j] > 0)
                    dual += s.b[j] * (isinf(pb->tau_b) ? g[j] : pb->tau_b * (1 - exp(-g[j] / pb->tau_b)));
            info->mass = mass;
            info->cost = cost;
            info->value = dual;
        }
    }
    if (st == MONGE_OK) {
        /* never report success with values that overflowed on the way out */
        int finite = !par->compute_cost || (isfinite(info->value) && isfinite(info->cost));
        for (int64_t i = 0; i < n && finite; i++) finite = isfinite(f[i]);
        for (int64_t j = 0; j < m && finite; j++) finite = isfinite(g[j]);
        if (!finite) st = MONGE_ENONFINITE;
    }
    if (st == MONGE_OK && !info->converged) st = MONGE_ENOCONV;
    monge_aa_free(&acc.aa);
    free(acc.x);
    free(acc.gx);
    sk_free(&s);
    monge_geom_release(gw);
    return st;
}

int monge_sinkhorn(const monge_problem *pb, const monge_sinkhorn_params *par, double *f, double *g,
                   monge_sinkhorn_info *info)
{
    monge_sinkhorn_params def;
    monge_sinkhorn_info tmp;
    if (!par) {
        monge_sinkhorn_params_init(&def);
        par = &def;
    }
    return run(pb, par, f, g, info ? info : &tmp);
}

int monge_sinkhorn_symmetric(const monge_problem *pb, const monge_sinkhorn_params *par, double *p,
                             monge_sinkhorn_info *info)
{
    monge_sinkhorn_params def;
    monge_sinkhorn_info tmp;
    if (!par) {
        monge_sinkhorn_params_init(&def);
        par = &def;
    }
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    info->cost = info->mass = info->value = info->error = NAN;
    int st = check_params(par);
    if (st) return st;
    if (!p || !pb || !pb->geom || pb->geom->n != pb->geom->m) return MONGE_EINVAL;
    monge_problem sym = *pb;
    sym.b = pb->a;
    sym.tau_b = pb->tau_a;
    st = monge_problem_check(&sym, 1e-6);
    if (st) return st;
    const double tau = pb->tau_a;
    const int nth = monge_resolve_threads(par->nthreads);
    monge_geom_work *gw = NULL;
    st = monge_geom_prepare(pb->geom, nth, &gw);
    if (st) return st;
    sk_work s;
    st = sk_alloc(&s, &sym);
    if (st) {
        monge_geom_release(gw);
        return st;
    }
    const int64_t n = s.n;
    if (!par->warm_start) memset(p, 0, sizeof(double) * (size_t)n);
    double eps_cur;
    st = first_eps(par, gw, nth, &eps_cur);
    int64_t iter = 0;
    double err = INFINITY;
    int converged = 0;
    while (!st) {
        const int last = eps_cur <= par->eps;
        const double tol = last ? par->tol : (par->stage_tol > par->tol ? par->stage_tol : par->tol);
        const double lam = isinf(tau) ? 1.0 : tau / (tau + eps_cur);
        info->n_stages++;
        for (;;) {
            for (int64_t j = 0; j < n; j++) {
                s.h[j] = p[j] + eps_cur * s.la[j];
                s.hint[j] = -p[j] / lam;
            }
            st = monge_softmin(gw, 0, eps_cur, s.h, s.hint, s.out, nth);
            if (st) break;
            /* the plan of the current p is symmetric: both marginals have the same violation */
            double e = 0;
            for (int64_t i = 0; i < n; i++)
                if (s.a[i] > 0) {
                    const double ratio = exp((p[i] + s.out[i]) / eps_cur);
                    e += s.a[i] * fabs(ratio - (isinf(tau) ? 1.0 : exp(-p[i] / tau)));
                }
            err = 2.0 * e;
            if (par->progress && par->progress(par->progress_ctx, iter, err)) {
                st = MONGE_EINTR;
                break;
            }
            if (err <= tol) {
                if (last) converged = 1;
                break;
            }
            if (iter >= par->max_iter) break;
            int finite = 1;
            for (int64_t i = 0; i < n; i++) {
                p[i] = 0.5 * (p[i] - lam * s.out[i]);
                if (!isfinite(p[i])) finite = 0;
            }
            if (!finite) st = MONGE_ENONFINITE;
            iter++;
        }
        if (st || last || iter >= par->max_iter) break;
        eps_cur *= par->scaling_factor;
        if (eps_cur < par->eps) eps_cur = par->eps;
    }
    info->n_iter = iter;
    info->converged = converged;
    info->error = err;
    info->overrelax = 1.0;
    if (!st && par->compute_cost) {
        const double eps = par->eps;
        double *rc = malloc(sizeof(double) * (size_t)n);
        if (!rc) st = MONGE_ENOMEM;
        else {
            for (int64_t i = 0; i < n; i++) s.hint[i] = s.h[i] = p[i] + eps * s.la[i];
            st = monge_geom_apply(gw, 0, eps, s.hint, s.h, NULL, 0, NULL, s.out, rc, nth);
            double mass = 0, cost = 0, dual = 0;
            for (int64_t i = 0; i < n; i++)
                if (s.a[i] > 0) {
                    mass += s.out[i];
                    cost += rc[i];
                    dual += 2.0 * s.a[i] * (isinf(tau) ? p[i] : tau * (1 - exp(-p[i] / tau)));
                }
            free(rc);
            info->mass = mass;
            info->cost = cost;
            info->value = dual - eps * (mass - s.ma * s.ma);
            if (!st && !(isfinite(info->value) && isfinite(info->cost))) st = MONGE_ENONFINITE;
        }
    }
    if (!st && !converged) st = MONGE_ENOCONV;
    sk_free(&s);
    monge_geom_release(gw);
    return st;
}

int monge_sinkhorn_batch(int64_t B, const monge_problem *pbs, const monge_sinkhorn_params *par,
                         double *f, double *g, monge_sinkhorn_info *info, int *status)
{
    if (B < 0 || (B > 0 && (!pbs || !f || !g || !info || !status))) return MONGE_EINVAL;
    monge_sinkhorn_params p;
    if (par) p = *par;
    else monge_sinkhorn_params_init(&p);
    const int nth = monge_resolve_threads(p.nthreads);
    for (int64_t k = 0; k < B; k++)
        if (!pbs[k].geom || pbs[k].geom->n != pbs[0].geom->n || pbs[k].geom->m != pbs[0].geom->m)
            return MONGE_EINVAL;
    const int64_t n = B ? pbs[0].geom->n : 0, m = B ? pbs[0].geom->m : 0;
    int cancelled = 0;
    if (B > 1 && nth > 1) {
        monge_sinkhorn_params inner = p;
        inner.nthreads = 1;
        MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nth))
        for (int64_t k = 0; k < B; k++) {
            int c;
            MONGE_PRAGMA(omp atomic read)
            c = cancelled;
            if (c) {
                status[k] = MONGE_EINTR;
                memset(&info[k], 0, sizeof info[k]);
                continue;
            }
            status[k] = run(&pbs[k], &inner, f + k * n, g + k * m, &info[k]);
            if (status[k] == MONGE_EINTR) {
                MONGE_PRAGMA(omp atomic write)
                cancelled = 1;
            }
        }
    } else {
        for (int64_t k = 0; k < B; k++) {
            if (cancelled) {
                status[k] = MONGE_EINTR;
                memset(&info[k], 0, sizeof info[k]);
                continue;
            }
            status[k] = run(&pbs[k], &p, f + k * n, g + k * m, &info[k]);
            if (status[k] == MONGE_EINTR) cancelled = 1;
        }
    }
    for (int64_t k = 0; k < B; k++)
        if (status[k] != MONGE_OK) return status[k];
    return MONGE_OK;
}

static void plan_teardown(monge_geom_work *gw, double *u, double *h)
{
    monge_geom_release(gw);
    free(u);
    free(h);
}

/* Set-up shared by the plan helpers: checked problem, prepared geometry, and the shifted
 * potentials u = f + eps log a, h = g + eps log b.  On success the caller frees all three. */
static int plan_setup(const monge_problem *pb, double eps, const double *f, const double *g,
                      int nthreads, monge_geom_work **gw, double **u, double **h)
{
    *gw = NULL;
    *u = *h = NULL;
    if (!pb || !pb->geom || !f || !g || !(eps > 0)) return MONGE_EINVAL;
    int st = monge_problem_check(pb, INFINITY);
    if (st) return st;
    st = monge_geom_prepare(pb->geom, nthreads, gw);
    if (st) return st;
    *u = malloc(sizeof(double) * (size_t)pb->geom->n);
    *h = malloc(sizeof(double) * (size_t)pb->geom->m);
    if (!*u || !*h) {
        plan_teardown(*gw, *u, *h);
        return MONGE_ENOMEM;
    }
    monge_problem_shift(pb, 0, eps, f, *u);
    monge_problem_shift(pb, 1, eps, g, *h);
    return MONGE_OK;
}

int monge_sinkhorn_plan(const monge_problem *pb, double eps, const double *f, const double *g,
                        void *P, int nthreads)
{
    if (!P) return MONGE_EINVAL;
    monge_geom_work *gw;
    double *u, *h;
    int st = plan_setup(pb, eps, f, g, nthreads, &gw, &u, &h);
    if (st) return st;
    st = monge_geom_dense_plan(gw, eps, u, h, P, nthreads);
    plan_teardown(gw, u, h);
    return st;
}

int monge_sinkhorn_apply(const monge_problem *pb, double eps, const double *f, const double *g,
                         int transpose, const double *V, int64_t k, double *out, int nthreads)
{
    if (!V || !out || k < 1) return MONGE_EINVAL;
    monge_geom_work *gw;
    double *u, *h;
    int st = plan_setup(pb, eps, f, g, nthreads, &gw, &u, &h);
    if (st) return st;
    st = transpose ? monge_geom_apply(gw, 1, eps, h, u, V, k, out, NULL, NULL, nthreads)
                   : monge_geom_apply(gw, 0, eps, u, h, V, k, out, NULL, NULL, nthreads);
    plan_teardown(gw, u, h);
    return st;
}

int monge_sinkhorn_grad_points(const monge_problem *pb, double eps, const double *f,
                               const double *g, int transpose, double *out, int nthreads)
{
    if (!out || !pb || !pb->geom || pb->geom->C) return MONGE_EINVAL;
    monge_geom_work *gw;
    double *u, *h;
    int st = plan_setup(pb, eps, f, g, nthreads, &gw, &u, &h);
    if (st) return st;
    st = transpose ? monge_geom_grad(gw, 1, eps, h, u, out, nthreads)
                   : monge_geom_grad(gw, 0, eps, u, h, out, nthreads);
    plan_teardown(gw, u, h);
    return st;
}
