/* monge L-BFGS: unconstrained minimisation of a smooth (or piecewise smooth) function.
 *
 * Limited-memory BFGS (Nocedal 1980; Liu & Nocedal 1989) with the two-loop recursion, the initial
 * Hessian scaled by s'y / y'y of the newest pair, and a line search satisfying the strong Wolfe
 * conditions
 *     f(x + t d) <= f(x) + c1 t g'd,      |g(x + t d)'d| <= c2 |g'd|
 * (bracketing then zoom with safeguarded cubic interpolation, Nocedal & Wright 2006, Alg. 3.5/3.6).
 *
 * Non-smooth points.  The objectives of monge's k-sparse OT are piecewise quadratic: where two
 * entries of a column tie for the k-th place the gradient jumps and the curvature condition may be
 * unreachable.  The line search then accepts the best point it found with sufficient decrease
 * (a "weak" step, counted in info->n_weak); a pair with s'y <= 0 is not stored.  When no decrease
 * is found along the L-BFGS direction the memory is dropped and the steepest-descent direction is
 * tried once; if that also fails the solve stops with MONGE_ELINESEARCH (never silently).
 *
 * Stopping rules, tested every iteration:
 *   gradient    ||g|| <= gtol (norm chosen by gnorm: max-abs or L1), or
 *               ||g||_2 <= gtol_rel * max(1, ||x||_2)                       -> MONGE_OK
 *   stall       f_{k-past} - f_k <= ftol * max(|f_k|, |f_{k-past}|, 1) while the smallest
 *               gradient norm seen fell by less than 10 % over those `past` iterations  -> MONGE_OK
 *               (a minimum at a kink, or the limit of float64; on a smooth function the gradient
 *               keeps falling after f has stopped changing visibly, so this does not fire early)
 *   limit       max_iter iterations                                         -> MONGE_ENOCONV
 * On return x holds the point with the lowest f seen (the last accepted iterate). */
#ifndef MONGE_LBFGS_H
#define MONGE_LBFGS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The objective: writes f(x) to *f and its gradient to g (n); returns MONGE_OK or an error status
 * that aborts the minimisation (returned as is). */
typedef int (*monge_lbfgs_eval_fn)(void *ctx, int64_t n, const double *x, double *f, double *g);

typedef enum { MONGE_NORM_INF = 0, MONGE_NORM_L1 = 1 } monge_norm;

/* Line searches: strong Wolfe with cubic-interpolation zoom (smooth objectives), or weak Wolfe by
 * bisection (Lewis & Overton 2013: better on non-smooth objectives, where the strong curvature
 * condition can be unreachable at a kink). */
typedef enum { MONGE_LS_STRONG_WOLFE = 0, MONGE_LS_WEAK_WOLFE = 1 } monge_linesearch;

/* Why the minimisation stopped (info->reason). */
typedef enum {
    MONGE_LBFGS_GTOL = 0,       /* gradient norm below gtol (or gtol_rel) */
    MONGE_LBFGS_FTOL = 1,       /* relative decrease over `past` iterations below ftol */
    MONGE_LBFGS_MAXITER = 2,    /* max_iter reached */
    MONGE_LBFGS_LINESEARCH = 3, /* no decrease along the L-BFGS nor the steepest-descent direction */
    MONGE_LBFGS_NONFINITE = 4,  /* f or g not finite at the starting point */
    MONGE_LBFGS_INTERRUPTED = 5,/* the progress callback asked to stop */
    MONGE_LBFGS_EVAL_ERROR = 6  /* the objective returned an error status */
} monge_lbfgs_reason;

typedef struct {
    int memory;             /* number of (s, y) pairs kept, >= 1.  Default 10. */
    int64_t max_iter;       /* iterations (accepted steps), >= 0.  Default 1000. */
    double gtol;            /* stop when ||g|| <= gtol, the norm chosen by gnorm; >= 0.
                               Default 1e-9. */
    int gnorm;              /* MONGE_NORM_INF (max |g_i|) or MONGE_NORM_L1 (sum |g_i|).
                               Default MONGE_NORM_INF. */
    double gtol_rel;        /* stop when ||g||_2 <= gtol_rel * max(1, ||x||_2); 0 = off.
                               Default 0. */
    double ftol;            /* stop when f decreased by at most ftol * max(|f|, |f_old|, 1) over the
                               last `past` iterations and the gradient norm stalled; 0 = off.
                               Default 1e-12. */
    int past;               /* window of the decrease test, >= 1.  Default 5. */
    int max_linesearch;     /* function evaluations per line search, >= 2.  Default 40. */
    int linesearch;         /* MONGE_LS_STRONG_WOLFE or MONGE_LS_WEAK_WOLFE.
                               Default MONGE_LS_STRONG_WOLFE. */
    double c1;              /* sufficient decrease (Armijo) constant, in (0, c2).  Default 1e-4. */
    double c2;              /* curvature constant, in (c1, 1).  Default 0.9. */
    double max_step;        /* largest step length tried.  Default 1e20. */
    monge_progress_fn progress; /* called every iteration with (iteration, ||g||) (may be NULL).
                                   Default NULL. */
    void *progress_ctx;     /* passed to progress.  Default NULL. */
} monge_lbfgs_params;

void monge_lbfgs_params_init(monge_lbfgs_params *par);

typedef struct {
    double f;        /* objective at the returned x */
    double gnorm;    /* ||g|| (norm chosen by gnorm) at the returned x */
    int64_t n_iter;  /* iterations (accepted steps) */
    int64_t n_eval;  /* objective evaluations, the starting point included */
    int64_t n_weak;  /* steps accepted without the curvature condition (non-smooth points) */
    int64_t n_reset; /* times the memory was dropped after a failed line search */
    int reason;      /* a monge_lbfgs_reason */
} monge_lbfgs_info;

/* Minimises eval over R^n from x (the warm start), overwritten with the result.  Returns MONGE_OK
 * (gradient or decrease test met), MONGE_ENOCONV (max_iter), MONGE_ELINESEARCH, MONGE_ENONFINITE
 * (non-finite f or g at the start), MONGE_EINTR, MONGE_EINVAL, MONGE_ENOMEM, or the error status
 * of eval.  info (may be NULL) is filled on every path except MONGE_EINVAL/MONGE_ENOMEM. */
int monge_lbfgs(int64_t n, double *x, monge_lbfgs_eval_fn eval, void *ctx,
                const monge_lbfgs_params *par, monge_lbfgs_info *info);

/* Text for a monge_lbfgs_reason (static storage). */
const char *monge_lbfgs_reason_str(int reason);

#ifdef __cplusplus
}
#endif
#endif
