/* The Sinkhorn engine: parameters, the eps schedule and the one stage loop (iteration, stopping
 * test, acceleration, progress/cancel) that drives a step (engine.h); the entry points of
 * sinkhorn.h on top of it. */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

void monge_sinkhorn_params_init(monge_sinkhorn_params *par)
{
    memset(par, 0, sizeof *par);
    par->eps = 1e-2;
    par->tol = 1e-6;
    par->max_iter = 10000;
    par->eps_scaling = MONGE_EPS_SCALING_OFF;
    par->eps_start = 0;
    par->scaling_factor = 0.1;
    par->stage_tol = 1e-4;
    par->overrelax = 0;
    par->warm_start = 0;
    par->compute_cost = 1;
    par->nthreads = 0;
    par->kernel = MONGE_KERNEL_AUTO;
    par->anderson = 8;
    _Static_assert(MONGE_SINKHORN_ANDERSON_MAX == MONGE_AA_MAX_MEM, "Anderson memory bound");
}

int sk_check_params(const monge_sinkhorn_params *p)
{
    if (!(p->eps > 0) || !isfinite(p->eps)) return MONGE_EINVAL;
    if (!(p->tol >= 0) || p->max_iter < 0) return MONGE_EINVAL;
    if (p->eps_scaling < 0 || p->eps_scaling > 2) return MONGE_EINVAL;
    if (p->anderson < 0 || p->anderson > MONGE_SINKHORN_ANDERSON_MAX) return MONGE_EINVAL;
    if (p->eps_scaling && !(p->scaling_factor > 0 && p->scaling_factor < 1)) return MONGE_EINVAL;
    if (!(p->overrelax == 0 || (p->overrelax > 0 && p->overrelax < 2))) return MONGE_EINVAL;
    if (!(p->stage_tol >= 0)) return MONGE_EINVAL;
    if (p->kernel < 0 || p->kernel > 2) return MONGE_EINVAL;
    return MONGE_OK;
}

/* One solve: its context, accelerator, steps and counters. */
typedef struct {
    const monge_sinkhorn_params *par;
    monge_sinkhorn_info *info;
    sk_ctx c;
    sk_accel ac;
    sk_step exact;  /* log-domain or symmetric */
    sk_step cache;  /* the float kernel, while open */
    sk_step *step;  /* the step of the current iterations */
    sk_kernel *ker; /* the open cache, or NULL */
    int use_kernel;
    int64_t ker_measured; /* measured passes since the cache opened */
    double eps;           /* of the current stage */
    int64_t iter;
    int64_t stages;       /* each costs at least one pass, counted or not: a budget too */
    double err;           /* last measured error */
    int converged;
    int have_cost;        /* the final state's mass and cost were measured by sk_verify */
    double pass_mass, pass_cost;
    int auto_probe;       /* automatic annealing still undecided */
    int64_t probe_origin, probe_at;
    double err_half;
} sk_engine;

/* ------------------------------------------------------------------ the eps schedule
 * Stages anneal eps geometrically from eps_start (default: the max cost) down to eps, each warm
 * started from the last and run to stage_tol (the last to tol).  eps_scaling = 2 decides: it
 * anneals from the start when eps < 1e-4 x max cost, and otherwise probes the convergence rate at
 * the target eps (after 100, 200, 400, ... iterations, up to AUTO_LATE, on the kernel cache's
 * iterations too) and restarts annealed when the projected iterations exceed AUTO_BUDGET (past
 * AUTO_BUDGET / 2 iterations: when the projected remainder exceeds AUTO_BUDGET / 2, the
 * iterations spent being sunk). */
#define AUTO_PROBE ((int64_t)sk_tune.auto_probe)   /* iterations at the target eps before the first probe */
#define AUTO_BUDGET ((int64_t)sk_tune.auto_budget) /* projected iterations above which annealing is used instead */
#define AUTO_LATE ((int64_t)sk_tune.auto_late)     /* the last probe's iteration, at most */

static int sched_first(const monge_sinkhorn_params *par, const monge_geom_work *gw, int nth,
                       double *eps0)
{
    *eps0 = par->eps;
    if (par->eps_scaling == 0 || (par->eps_scaling == 2 && par->warm_start)) return MONGE_OK;
    double cmax = 0;
    int st = monge_geom_max_cost(gw, &cmax, nth);
    if (st) return st;
    if (par->eps_scaling == 2 && !(par->eps < sk_tune.auto_anneal * cmax)) return MONGE_OK;
    const double e0 = par->eps_start > 0 ? par->eps_start : cmax;
    *eps0 = e0 > par->eps && isfinite(e0) ? e0 : par->eps; /* no schedule down from infinity */
    return MONGE_OK;
}

static double sched_next(const monge_sinkhorn_params *par, double eps)
{
    const double next = eps * par->scaling_factor;
    return next < par->eps || !(next < eps) ? par->eps : next; /* always down */
}

static double sched_tol(const monge_sinkhorn_params *par, int last)
{
    return last ? par->tol : (par->stage_tol > par->tol ? par->stage_tol : par->tol);
}

static void probe_reset(sk_engine *e)
{
    e->probe_origin = e->iter;
    e->probe_at = AUTO_PROBE;
    e->err_half = NAN;
}

/* Back to the log-domain step: the cache's scalings folded into the potentials. */
static void drop_cache(sk_engine *e)
{
    if (!e->ker) return;
    sk_kernel_close(e->ker, e->eps);
    e->ker = NULL;
    e->step = &e->exact;
}

/* The automatic-annealing probe after an iteration at the target eps: *restart when the solve
 * starts over annealed (potentials zeroed, eps at the top of the schedule). */
static int sched_probe(sk_engine *e, double tol, int *restart)
{
    const monge_sinkhorn_params *par = e->par;
    const int64_t k = e->iter - e->probe_origin;
    if (k == e->probe_at / 2) e->err_half = e->err;
    if (k != e->probe_at) return MONGE_OK;
    const double err = e->err;
    const double theta = pow(err / e->err_half, 2.0 / (double)e->probe_at);
    const double left = theta < 1.0 ? log(tol / err) / log(theta) : INFINITY;
    e->probe_at *= 2;
    e->err_half = err; /* the next probe's half-way point is this iteration */
    if (e->probe_at > AUTO_LATE) e->auto_probe = 0;
    const double allowed = AUTO_BUDGET - k > AUTO_BUDGET / 2 ? AUTO_BUDGET - k : AUTO_BUDGET / 2;
    if (err <= tol || left <= allowed) return MONGE_OK;
    e->auto_probe = 0;
    double cmax;
    int st = monge_geom_max_cost(e->c.gw, &cmax, e->c.nth);
    if (st || !(cmax > par->eps)) return st;
    drop_cache(e); /* the annealed stages decide afresh whether to use the cache */
    memset(e->c.f, 0, sizeof(double) * (size_t)e->c.s->n);
    memset(e->c.g, 0, sizeof(double) * (size_t)e->c.s->m);
    e->eps = par->eps_start > 0 ? par->eps_start : cmax;
    *restart = 1;
    return MONGE_OK;
}

/* ------------------------------------------------------------------ the stage loop */
static int cancelled(const sk_engine *e, double err)
{
    return e->par->progress && e->par->progress(e->par->progress_ctx, e->iter, err);
}

static void count_iteration(sk_engine *e, const sk_step *sp)
{
    e->iter++;
    if (sp == &e->cache) e->info->kernel_iter++;
}

/* Closes the cache (its scalings absorbed into f, g) and hands back to the exact step.  When the
 * cache met tol, its state is verified in double (both marginals and the cost in one pass) and
 * returned as is if it meets tol; otherwise an exact column update follows, and the exact step
 * makes the stopping test.  The accelerator keeps the omega learnt and drops its history (it
 * holds residuals measured in float). */
static int leave_cache(sk_engine *e, double tol, int last, int *stage_done, double *col_err)
{
    drop_cache(e);
    if (!e->ker_measured) return MONGE_OK;
    int st;
    if (e->err <= tol) {
        double verr, vmass, vcost;
        st = sk_verify(&e->c, e->eps, &verr, &vmass, &vcost);
        if (st) return st;
        if (verr <= tol) {
            e->err = verr;
            if (cancelled(e, verr)) return MONGE_EINTR;
            *stage_done = 1;
            if (last) {
                e->converged = 1;
                e->have_cost = 1;
                e->pass_mass = vmass;
                e->pass_cost = vcost;
            }
            return MONGE_OK;
        }
    }
    st = e->exact.cols(&e->exact, e->eps, 1.0, 0, col_err);
    if (st) return st;
    memcpy(e->c.s->fbest, e->c.f, sizeof(double) * (size_t)e->c.s->n);
    memcpy(e->c.s->gbest, e->c.g, sizeof(double) * (size_t)e->c.s->m);
    sk_accel_restart(&e->ac);
    probe_reset(e);
    return MONGE_OK;
}

/* Runs the stages from e->eps down to par->eps.  An iteration: rows() measures the state it
 * starts from (with the column error of the previous cols()), the accelerator judges it, the
 * callback sees it, the stopping test ends the stage on it; then cols() completes the iteration
 * and the accelerator may extrapolate it. */
static int stage_loop(sk_engine *e)
{
    const monge_sinkhorn_params *par = e->par;
    monge_sinkhorn_info *info = e->info;
    int st = MONGE_OK;
    for (;;) {
        const int last = e->eps <= par->eps;
        const double tol = sched_tol(par, last);
        const int64_t stage_start = e->iter;
        int kernel_tried = 0, stage_done = 0, restart = 0;
        e->probe_origin = e->iter;
        info->n_stages++;
        e->stages++;
        if (e->exact.stage) {
            st = e->exact.stage(&e->exact, e->eps, tol);
            if (st) goto out;
        }
        sk_accel_begin(&e->ac);
        e->ac.stall_err = sk_tune.aa_stall_near * tol;
        int have_col = e->exact.self_check;
        double col_err = have_col ? 0.0 : INFINITY;
        while (!stage_done) {
            sk_step *sp = e->step;
            if (sp->yields && e->iter >= par->max_iter) {
                st = leave_cache(e, tol, last, &stage_done, &col_err);
                if (st) goto out;
                continue;
            }
            double row_err;
            const double om = e->iter >= par->max_iter ? 0.0 : sk_accel_omega(&e->ac);
            st = sp->rows(sp, e->eps, om, &row_err); /* omega 0 at max_iter: measure only */
            if (st == SK_YIELD) {
                st = leave_cache(e, tol, last, &stage_done, &col_err);
                if (st) goto out;
                continue;
            }
            if (st) goto out;
            int leave = 0;
            if (have_col) {
                /* the stopping test: L1 marginal violation of the state rows() started from */
                const double err = row_err + col_err;
                const double stop = tol > sp->floor ? tol : sp->floor;
                const int met = err <= stop;
                int improved;
                e->err = err;
                if (sp == &e->cache) e->ker_measured++;
                const int learn = !(sp->floor > 0) || err > 100.0 * sp->floor;
                const int verdict = sk_accel_judge(&e->ac, err, met, learn, &improved);
                if (verdict == SK_BACK_TO_PLAIN) {
                    /* back to the plain image of the previous iterate (the lost half-step is
                       neither reported nor counted) */
                    sp->restore(sp, SK_PLAIN, sk_accel_plain(&e->ac), e->eps);
                    col_err = sk_accel_plain_err(&e->ac);
                    continue;
                }
                if (cancelled(e, err)) {
                    sp->restore(sp, SK_MEASURED, NULL, e->eps);
                    st = MONGE_EINTR;
                    goto out;
                }
                if (met) {
                    sp->restore(sp, SK_MEASURED, NULL, e->eps); /* return the state measured */
                    if (sp == &e->cache) {
                        st = leave_cache(e, tol, last, &stage_done, &col_err);
                        if (st) goto out;
                        continue;
                    }
                    stage_done = 1;
                    if (last) e->converged = 1;
                    break;
                }
                if (verdict == SK_BACK_TO_BEST) {
                    /* blow-up: back to the best state of the stage, with a smaller omega */
                    if (sp->restore(sp, SK_BEST, NULL, e->eps)) count_iteration(e, sp);
                    have_col = 0;
                    continue;
                }
                leave = sp->note(sp, err, improved);
            }
            if (e->iter >= par->max_iter) {
                stage_done = 1;
                break;
            }
            st = sp->cols(sp, e->eps, sk_accel_omega(&e->ac), e->ac.on, &col_err);
            if (st) goto out;
            if (!leave && have_col && sk_accel_propose(&e->ac, sp->xprev, sp->xnew, col_err)) {
                col_err = sp->adopt(sp, e->eps);
                info->anderson_iter++;
            }
            have_col = 1;
            count_iteration(e, sp);
            if (!leave) {
                double shift;
                leave = sp->after(sp, e->eps, &shift);
                if (shift != 0.0) sk_accel_shift(&e->ac, shift);
            }
            if (leave) {
                st = leave_cache(e, tol, last, &stage_done, &col_err);
                if (st) goto out;
                continue;
            }
            if (e->auto_probe && last) { /* on the kernel cache's iterations too */
                st = sched_probe(e, tol, &restart);
                if (st) goto out;
                if (restart) break;
            }
            if (sp != &e->exact) continue;
            /* the cache, once per stage: after one iteration on a cold start (its columns are
               normalised, so no entry overflows), else after the first measured error, and only
               far above its float floor (a warm start at the solution stays where it is) */
            const int cold = !par->warm_start && info->n_stages == 1;
            if (e->use_kernel && !kernel_tried && e->iter - stage_start >= (cold ? 1 : 2) &&
                e->err > 100.0 * sk_kernel_floor(&e->c)) {
                kernel_tried = 1;
                e->ker = sk_kernel_open(&e->c, e->eps, &e->cache);
                if (e->ker) {
                    e->step = &e->cache;
                    e->ker_measured = 0;
                }
            }
        }
        if (restart) continue;
        if (last || e->iter >= par->max_iter || e->stages >= par->max_iter) break;
        e->eps = sched_next(par, e->eps);
    }
out:
    drop_cache(e);
    return st;
}

/* ------------------------------------------------------------------ entry points */
int sk_engine_run_step(sk_step *exact, const monge_sinkhorn_params *par, int64_t *iter,
                       double *err, int *converged)
{
    monge_sinkhorn_info info;
    memset(&info, 0, sizeof info);
    sk_engine e;
    memset(&e, 0, sizeof e);
    e.par = par;
    e.info = &info;
    e.err = INFINITY;
    e.eps = par->eps;
    e.exact = *exact;
    e.step = &e.exact;
    sk_accel_init(&e.ac, 0, 1.0, 0, NULL, 0); /* plain iterations: nothing to allocate */
    int st = stage_loop(&e);
    *iter = e.iter;
    *err = e.err;
    *converged = e.converged;
    return st;
}

int sk_engine_run_stages(sk_step *exact, const monge_sinkhorn_params *par, double eps0, int64_t m,
                         const double *b, int balanced, monge_sinkhorn_info *info)
{
    sk_engine e;
    memset(&e, 0, sizeof e);
    const int64_t iter0 = info->n_iter;
    monge_sinkhorn_params p = *par;
    p.max_iter = par->max_iter - iter0 > 0 ? par->max_iter - iter0 : 0;
    e.par = &p;
    e.info = info;
    e.err = INFINITY;
    e.eps = eps0 > par->eps && isfinite(eps0) ? eps0 : par->eps;
    e.exact = *exact;
    e.step = &e.exact;
    int st = sk_accel_init(&e.ac, par->anderson, par->overrelax, m, b, balanced);
    e.ac.stall = exact->aa_stall;
    if (st) return st;
    st = stage_loop(&e);
    info->n_iter = iter0 + e.iter;
    info->error = e.err;
    info->converged = e.converged;
    info->eps_reached = e.eps;
    info->overrelax = sk_accel_omega(&e.ac);
    sk_accel_free(&e.ac);
    return st;
}

static int run(const monge_problem *pb, const monge_sinkhorn_params *par, double *f, double *g,
               monge_sinkhorn_info *info)
{
    memset(info, 0, sizeof *info);
    info->cost = info->mass = info->value = info->error = NAN;
    info->eps_reached = par ? par->eps : NAN;
    int st = sk_check_params(par);
    if (st) return st;
    if (!f || !g) return MONGE_EINVAL;
    st = monge_problem_check(pb, 1e-6);
    if (st) return st;
    const int nth = monge_resolve_threads(par->nthreads);
    monge_geom_work *gw = NULL;
    st = monge_geom_prepare(pb->geom, nth, &gw);
    if (st) return st;
    sk_work s;
    st = sk_work_alloc(&s, pb);
    if (st) {
        monge_geom_release(gw);
        return st;
    }
    const int64_t n = s.n, m = s.m;
    const int balanced = isinf(pb->tau_a) && isinf(pb->tau_b);
    sk_engine e;
    memset(&e, 0, sizeof e);
    e.par = par;
    e.info = info;
    e.c = (sk_ctx){.pb = pb, .gw = gw, .s = &s, .f = f, .g = g, .nth = nth};
    e.err = INFINITY;
    e.pass_mass = e.pass_cost = NAN;
    e.use_kernel = sk_kernel_wanted(pb, par);
    sk_logdomain_step(&e.exact, &e.c);
    e.step = &e.exact;
    st = sk_accel_init(&e.ac, par->anderson, par->overrelax, m, s.b, balanced);
    if (st) goto done;
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
    st = sched_first(par, gw, nth, &e.eps);
    if (st) goto done;
    /* probe only when the schedule was left to us and did not start annealed already */
    e.auto_probe = par->eps_scaling == 2 && !par->warm_start && e.eps <= par->eps;
    probe_reset(&e);
    st = stage_loop(&e);
    /* also for a run the callback stopped: the state reached, at the eps its potentials belong
       to (max_iter or a stop may end an annealed run before the target eps) */
    info->n_iter = e.iter;
    info->converged = e.converged;
    info->error = e.err;
    info->eps_reached = e.eps;
    if (st) goto done;
    if (balanced) {
        /* balanced potentials are defined up to (f + c, g - c): return the gauge <a,f> = <b,g>
           (independent of the path), from normalised weights so that the sums cannot overflow */
        double fa = 0, gb = 0;
        for (int64_t i = 0; i < n; i++) fa += (s.a[i] / s.ma) * f[i];
        for (int64_t j = 0; j < m; j++) gb += (s.b[j] / s.mb) * g[j];
        const double wa = s.ma / (s.ma + s.mb), c = wa * fa - (1.0 - wa) * gb;
        for (int64_t i = 0; i < n; i++) f[i] -= c;
        for (int64_t j = 0; j < m; j++) g[j] += c;
    }
    info->overrelax = sk_accel_omega(&e.ac);
    if (par->compute_cost) {
        const double eps = e.eps;
        double mass = e.pass_mass, cost = e.pass_cost;
        if (!e.have_cost) {
            double *u = s.hint, *hh = s.h, *rsum = s.out;
            double *rc = malloc(sizeof(double) * (size_t)n);
            if (!rc) {
                st = MONGE_ENOMEM;
                goto done;
            }
            for (int64_t i = 0; i < n; i++) u[i] = f[i] + eps * s.la[i];
            for (int64_t j = 0; j < m; j++) hh[j] = g[j] + eps * s.lb[j];
            st = monge_geom_apply(gw, 0, eps, u, hh, NULL, 0, NULL, rsum, rc, nth);
            mass = cost = 0;
            for (int64_t i = 0; i < n; i++)
                if (s.a[i] > 0) {
                    mass += rsum[i];
                    cost += rc[i];
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
    if (st == MONGE_OK) {
        /* never report success with values that overflowed on the way out */
        int finite = !par->compute_cost || (isfinite(info->value) && isfinite(info->cost));
        for (int64_t i = 0; i < n && finite; i++) finite = isfinite(f[i]);
        for (int64_t j = 0; j < m && finite; j++) finite = isfinite(g[j]);
        if (!finite) st = MONGE_ENONFINITE;
    }
    if (st == MONGE_OK && !info->converged) st = MONGE_ENOCONV;
done:
    sk_accel_free(&e.ac);
    sk_work_free(&s);
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
    info->eps_reached = par->eps;
    int st = sk_check_params(par);
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
    st = sk_work_alloc(&s, &sym);
    if (st) {
        monge_geom_release(gw);
        return st;
    }
    const int64_t n = s.n;
    if (!par->warm_start) memset(p, 0, sizeof(double) * (size_t)n);
    sk_engine e;
    memset(&e, 0, sizeof e);
    e.par = par;
    e.info = info;
    e.c = (sk_ctx){.pb = &sym, .gw = gw, .s = &s, .f = p, .g = NULL, .nth = nth};
    e.err = INFINITY;
    sk_symmetric_step(&e.exact, &e.c);
    e.step = &e.exact;
    sk_accel_init(&e.ac, 0, 1.0, n, s.a, 0); /* plain averaged updates: no acceleration */
    st = sched_first(par, gw, nth, &e.eps);
    if (!st) st = stage_loop(&e);
    info->n_iter = e.iter;
    info->converged = e.converged;
    info->error = e.err;
    info->overrelax = 1.0;
    info->eps_reached = e.eps;
    if (!st && par->compute_cost) {
        const double eps = e.eps;
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
    if (!st && !e.converged) st = MONGE_ENOCONV;
    sk_accel_free(&e.ac);
    sk_work_free(&s);
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
    int cancel = 0;
    if (B > 1 && nth > 1) {
        monge_sinkhorn_params inner = p;
        inner.nthreads = 1;
        MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nth))
        for (int64_t k = 0; k < B; k++) {
            int c;
            MONGE_PRAGMA(omp atomic read)
            c = cancel;
            if (c) {
                status[k] = MONGE_EINTR;
                memset(&info[k], 0, sizeof info[k]);
                info[k].eps_reached = p.eps; /* potentials untouched */
                continue;
            }
            status[k] = run(&pbs[k], &inner, f + k * n, g + k * m, &info[k]);
            if (status[k] == MONGE_EINTR) {
                MONGE_PRAGMA(omp atomic write)
                cancel = 1;
            }
        }
    } else {
        for (int64_t k = 0; k < B; k++) {
            if (cancel) {
                status[k] = MONGE_EINTR;
                memset(&info[k], 0, sizeof info[k]);
                info[k].eps_reached = p.eps; /* potentials untouched */
                continue;
            }
            status[k] = run(&pbs[k], &p, f + k * n, g + k * m, &info[k]);
            if (status[k] == MONGE_EINTR) cancel = 1;
        }
    }
    return monge_batch_status(B, status);
}
