/* Bindings of the multiscale Sinkhorn (sinkhorn/multiscale.c): the solve, plan products with the
 * row sums and point gradients, and the kept entries as coordinates (see bind.h). */
#include "bind.h"

#include <math.h>
#include <string.h>

typedef struct {
    batch_geom bg;
    PyArrayObject *a, *b;
    monge_problem pb;
} ms_problem;

static void msp_free(ms_problem *s)
{
    bind_batch_geom_free(&s->bg);
    Py_XDECREF(s->a);
    Py_XDECREF(s->b);
}

static int msp_parse(PyObject *x, PyObject *y, PyObject *a, PyObject *b, const char *cost, double p,
                     double tau_a, double tau_b, ms_problem *s)
{
    memset(s, 0, sizeof *s);
    if (bind_batch_geom_parse(Py_None, x, y, cost, p, 0.0, 0, &s->bg)) return -1;
    if (bind_parse_weights(a, 1, s->bg.n, 0, "a", &s->a) ||
        bind_parse_weights(b, 1, s->bg.m, 0, "b", &s->b))
        return -1;
    s->pb.geom = &s->bg.geoms[0];
    s->pb.a = s->a ? (const double *)PyArray_DATA(s->a) : NULL;
    s->pb.b = s->b ? (const double *)PyArray_DATA(s->b) : NULL;
    s->pb.tau_a = tau_a;
    s->pb.tau_b = tau_b;
    return 0;
}

static PyObject *py_sinkhorn_multiscale(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "cost", "p", "eps", "tau_a", "tau_b", "tol",
                             "max_iter", "scaling_factor", "stage_tol", "overrelax", "anderson",
                             "f0", "g0", "compute_cost", "nthreads", "callback", "cluster_scale",
                             "truncation", "switch_ratio", "bound_frac", "symmetric", "warm_tol",
                             "refine_anderson", "grad_x", "grad_y", "refine_stall",
                             "coarse_correction", NULL};
    PyObject *x, *y, *a, *b, *f0 = Py_None, *g0 = Py_None, *callback = Py_None;
    const char *cost = "sqeuclidean";
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    par.scaling_factor = 0.5; /* the multiscale default; stage_tol stays the engine's 1e-4, which
                                 benchmarks/multiscale.py --tune-anneal chose with MONGE_MS_SWITCH */
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    bind_sk_options o = {0};
    double p = 2.0, eps = par.eps, tau_a = INFINITY, tau_b = INFINITY;
    int compute_cost = 1, nthreads = 0, symmetric = 0, want_gx = 0, want_gy = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|sddddOOOOOOOOpiOddddpdippii", kwlist, &x, &y, &a,
                                     &b, &cost, &p, &eps, &tau_a, &tau_b, &o.tol, &o.max_iter,
                                     &o.scaling_factor, &o.stage_tol, &o.overrelax, &o.anderson,
                                     &f0, &g0, &compute_cost, &nthreads, &callback,
                                     &mp.cluster_scale, &mp.truncation, &mp.switch_ratio,
                                     &mp.bound_frac, &symmetric, &mp.warm_tol,
                                     &mp.refine_anderson, &want_gx, &want_gy, &mp.refine_stall,
                                     &mp.coarse_correction))
        return NULL;
    if (bind_sinkhorn_options(&o, &par)) return NULL;
    if (symmetric) { /* OT_eps(a, a) on x: y and b are x and a */
        y = x;
        b = a;
        tau_b = tau_a;
        if (want_gy) {
            PyErr_SetString(PyExc_ValueError, "grad_y: the symmetric problem has grad_x only");
            return NULL;
        }
    }
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    ms_problem s;
    PyArrayObject *fa = NULL, *ga = NULL, *gx = NULL, *gy = NULL;
    PyObject *result = NULL;
    if (msp_parse(x, y, a, b, cost, p, tau_a, tau_b, &s)) goto out;
    npy_intp dx[2] = {s.bg.n, s.bg.d}, dy[2] = {s.bg.m, s.bg.d};
    if (want_gx && !(gx = (PyArrayObject *)PyArray_ZEROS(2, dx, NPY_FLOAT64, 0))) goto out;
    if (want_gy && !(gy = (PyArrayObject *)PyArray_ZEROS(2, dy, NPY_FLOAT64, 0))) goto out;
    double *pgx = gx ? (double *)PyArray_DATA(gx) : NULL, *pgy = gy ? (double *)PyArray_DATA(gy) : NULL;
    if (bind_potentials(f0, g0, 1, 1, s.bg.n, s.bg.m, &fa, &ga, &par.warm_start)) goto out;
    par.eps = eps;
    par.compute_cost = compute_cost;
    par.nthreads = nthreads;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    monge_sinkhorn_info info;
    monge_ms_info mi;
    int st;
    Py_BEGIN_ALLOW_THREADS
    if (symmetric) {
        st = monge_sinkhorn_multiscale_symmetric_grad(&s.pb, &par, &mp, PyArray_DATA(fa), pgx,
                                                      &info, &mi);
        if (st == MONGE_OK || st == MONGE_ENOCONV || st == MONGE_EINTR)
            memcpy(PyArray_DATA(ga), PyArray_DATA(fa), sizeof(double) * (size_t)s.bg.n);
    } else {
        st = monge_sinkhorn_multiscale_grad(&s.pb, &par, &mp, PyArray_DATA(fa), PyArray_DATA(ga),
                                            pgx, pgy, &info, &mi);
    }
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR) {
        bind_raise_status(st, "sinkhorn (multiscale)");
        goto out;
    }
    result = Py_BuildValue(
        "{s:O,s:O,s:d,s:d,s:d,s:d,s:L,s:O,s:O,s:L,s:d,s:d,s:d,s:d,s:L,s:L,s:L,s:L,s:L,s:i,s:L}", "f", fa,
        "g", ga, "value", info.value, "cost", info.cost, "mass", info.mass, "error", info.error,
        "n_iter", (long long)info.n_iter, "converged", info.converged ? Py_True : Py_False,
        "stopped", pctx.user_stop ? Py_True : Py_False, "anderson_iter",
        (long long)info.anderson_iter, "eps_reached", info.eps_reached, "bound", mi.bound,
        "truncation", mi.truncation, "cluster_scale", mi.cluster_scale, "kept_blocks",
        (long long)mi.kept_blocks, "kept_entries", (long long)mi.kept_entries, "blocks_x",
        (long long)mi.blocks_x, "blocks_y", (long long)mi.blocks_y, "reselections",
        (long long)mi.reselections, "levels", mi.levels, "coarse_iterations",
        (long long)mi.coarse_iterations);
    if (result && (PyDict_SetItemString(result, "grad_x", gx ? (PyObject *)gx : Py_None) ||
                   PyDict_SetItemString(result, "grad_y", gy ? (PyObject *)gy : Py_None)))
        Py_CLEAR(result);
out:
    msp_free(&s);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(gx);
    Py_XDECREF(gy);
    return result;
}

static int parse_pot(PyObject *f, PyObject *g, const ms_problem *s, PyArrayObject **fa,
                     PyArrayObject **ga)
{
    if (!(*fa = bind_as_array(f, NPY_FLOAT64, 1, "f")) || !(*ga = bind_as_array(g, NPY_FLOAT64, 1, "g")))
        return -1;
    if (PyArray_DIM(*fa, 0) != s->bg.n || PyArray_DIM(*ga, 0) != s->bg.m) {
        PyErr_SetString(PyExc_ValueError, "f, g: potentials do not match the problem");
        return -1;
    }
    return 0;
}

static PyObject *py_ms_apply(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "f", "g", "eps", "V", "transpose", "rowsum",
                             "grad", "cost", "p", "cluster_scale", "truncation", "nthreads", NULL};
    PyObject *x, *y, *a, *b, *f, *g, *V = Py_None;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0;
    int transpose = 0, want_rs = 0, want_grad = 0, nthreads = 0;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOd|Opppsdddi", kwlist, &x, &y, &a, &b, &f, &g,
                                     &eps, &V, &transpose, &want_rs, &want_grad, &cost, &p,
                                     &mp.cluster_scale, &mp.truncation, &nthreads))
        return NULL;
    ms_problem s;
    PyArrayObject *fa = NULL, *ga = NULL, *Va = NULL, *O = NULL, *R = NULL, *G = NULL;
    PyObject *res = NULL;
    if (msp_parse(x, y, a, b, cost, p, INFINITY, INFINITY, &s) || parse_pot(f, g, &s, &fa, &ga))
        goto out;
    const int64_t nr = transpose ? s.bg.m : s.bg.n, nc = transpose ? s.bg.n : s.bg.m;
    int64_t k = 0;
    if (V != Py_None) {
        if (!(Va = bind_as_array(V, NPY_FLOAT64, 2, "v"))) goto out;
        if (PyArray_DIM(Va, 0) != nc || PyArray_DIM(Va, 1) < 1) {
            PyErr_Format(PyExc_ValueError, "v: expected %lld rows", (long long)nc);
            goto out;
        }
        k = PyArray_DIM(Va, 1);
        npy_intp od[2] = {(npy_intp)nr, (npy_intp)k};
        if (!(O = (PyArrayObject *)PyArray_SimpleNew(2, od, NPY_FLOAT64))) goto out;
    }
    npy_intp rd[1] = {(npy_intp)nr}, gdim[2] = {(npy_intp)nr, (npy_intp)s.bg.d};
    if (want_rs && !(R = (PyArrayObject *)PyArray_SimpleNew(1, rd, NPY_FLOAT64))) goto out;
    if (want_grad && !(G = (PyArrayObject *)PyArray_SimpleNew(2, gdim, NPY_FLOAT64))) goto out;
    double bound = NAN;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_ms_apply(&s.pb, &mp, eps, PyArray_DATA(fa), PyArray_DATA(ga), transpose,
                        Va ? PyArray_DATA(Va) : NULL, k, O ? PyArray_DATA(O) : NULL,
                        R ? PyArray_DATA(R) : NULL, NULL, G ? PyArray_DATA(G) : NULL, &bound,
                        nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "multiscale plan");
        goto out;
    }
    res = Py_BuildValue("{s:O,s:O,s:O,s:d}", "out", O ? (PyObject *)O : Py_None, "rowsum",
                        R ? (PyObject *)R : Py_None, "grad", G ? (PyObject *)G : Py_None, "bound",
                        bound);
out:
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(Va);
    Py_XDECREF(O);
    Py_XDECREF(R);
    Py_XDECREF(G);
    msp_free(&s);
    return res;
}

static PyObject *py_ms_plan(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "f", "g", "eps", "cost", "p", "cluster_scale",
                             "truncation", NULL};
    PyObject *x, *y, *a, *b, *f, *g;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0;
    monge_ms_params mp;
    monge_ms_params_init(&mp);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOd|sddd", kwlist, &x, &y, &a, &b, &f, &g, &eps,
                                     &cost, &p, &mp.cluster_scale, &mp.truncation))
        return NULL;
    ms_problem s;
    PyArrayObject *fa = NULL, *ga = NULL, *Ro = NULL, *Co = NULL, *Vo = NULL;
    PyObject *res = NULL;
    if (msp_parse(x, y, a, b, cost, p, INFINITY, INFINITY, &s) || parse_pot(f, g, &s, &fa, &ga))
        goto out;
    int64_t nnz = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_ms_plan(&s.pb, &mp, eps, PyArray_DATA(fa), PyArray_DATA(ga), &nnz, NULL, NULL, NULL, 0);
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "multiscale plan");
        goto out;
    }
    npy_intp dz[1] = {(npy_intp)nnz};
    Ro = (PyArrayObject *)PyArray_SimpleNew(1, dz, NPY_INT64);
    Co = (PyArrayObject *)PyArray_SimpleNew(1, dz, NPY_INT64);
    Vo = (PyArrayObject *)PyArray_SimpleNew(1, dz, NPY_FLOAT64);
    if (!Ro || !Co || !Vo) goto out;
    Py_BEGIN_ALLOW_THREADS
    st = monge_ms_plan(&s.pb, &mp, eps, PyArray_DATA(fa), PyArray_DATA(ga), &nnz, PyArray_DATA(Ro),
                       PyArray_DATA(Co), PyArray_DATA(Vo), 0);
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "multiscale plan");
        goto out;
    }
    res = Py_BuildValue("(OOO)", Ro, Co, Vo);
out:
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(Ro);
    Py_XDECREF(Co);
    Py_XDECREF(Vo);
    msp_free(&s);
    return res;
}

PyMethodDef monge_bind_multiscale_methods[] = {
    {"sinkhorn_multiscale", BIND_KW(py_sinkhorn_multiscale), METH_VARARGS | METH_KEYWORDS,
     "Multiscale Sinkhorn on two point clouds."},
    {"ms_apply", BIND_KW(py_ms_apply), METH_VARARGS | METH_KEYWORDS,
     "Products, row sums and point gradients of a truncated plan."},
    {"ms_plan", BIND_KW(py_ms_plan), METH_VARARGS | METH_KEYWORDS,
     "The kept entries of a truncated plan as (rows, cols, values)."},
    {NULL, NULL, 0, NULL}};
