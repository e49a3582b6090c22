/* Plans of the Sinkhorn engine from given potentials: the dense plan, plan products and the
 * gradient with respect to the points, none of which stores P unless asked to. */
#include "engine.h"

#include <stdlib.h>

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
