/* Bindings of sinkhorn/ and geometry.c: batched Sinkhorn, plans, plan products, point
 * gradients, cost matrices (see bind.h for the conventions). */
#include "bind.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ sinkhorn */

static PyObject *py_sinkhorn(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "x", "y", "a", "b", "cost", "p", "eps", "tau_a", "tau_b", "tol",
                             "max_iter", "eps_scaling", "eps_start", "scaling_factor", "stage_tol",
                             "overrelax", "f0", "g0", "compute_cost", "nthreads", "callback",
                             "lam", "kernel", "anderson", NULL};
    PyObject *C, *x, *y, *a, *b, *f0 = Py_None, *g0 = Py_None, *callback = Py_None;
    const char *cost = "sqeuclidean";
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par); /* the defaults: options left out or None keep them */
    bind_sk_options o = {0};
    double p = 2.0, eps = par.eps, tau_a = INFINITY, tau_b = INFINITY, lam = 0.0;
    int compute_cost = par.compute_cost, nthreads = par.nthreads;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|sddddOOOOOOOOOpiOdOO", kwlist, &C, &x, &y, &a,
                                     &b, &cost, &p, &eps, &tau_a, &tau_b, &o.tol, &o.max_iter,
                                     &o.eps_scaling, &o.eps_start, &o.scaling_factor, &o.stage_tol,
                                     &o.overrelax, &f0, &g0, &compute_cost, &nthreads, &callback,
                                     &lam, &o.kernel, &o.anderson))
        return NULL;
    if (bind_sinkhorn_options(&o, &par)) return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    batch_geom bg;
    PyArrayObject *aa = NULL, *ba = NULL, *fa = NULL, *ga = NULL;
    PyObject *result = NULL;
    monge_problem *pbs = NULL;
    monge_sinkhorn_info *infos = NULL;
    int *status = NULL;
    if (bind_batch_geom_parse(C, x, y, cost, p, lam, 1, &bg)) goto out;
    const int64_t B = bg.B, n = bg.n, m = bg.m;
    if (bind_parse_weights(a, B, n, 1, "a", &aa) || bind_parse_weights(b, B, m, 1, "b", &ba)) goto out;
    if (bind_potentials(f0, g0, 2, B, n, m, &fa, &ga, &par.warm_start)) goto out;
    par.eps = eps;
    par.compute_cost = compute_cost;
    par.nthreads = nthreads;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;

    pbs = (monge_problem *)PyMem_Calloc((size_t)B, sizeof *pbs);
    infos = (monge_sinkhorn_info *)PyMem_Calloc((size_t)B, sizeof *infos);
    status = (int *)PyMem_Calloc((size_t)B, sizeof *status);
    if (!pbs || !infos || !status) {
        PyErr_NoMemory();
        goto out;
    }
    for (int64_t k = 0; k < B; k++) {
        pbs[k].geom = &bg.geoms[k];
        pbs[k].a = aa ? (const double *)PyArray_DATA(aa) + k * n : NULL;
        pbs[k].b = ba ? (const double *)PyArray_DATA(ba) + k * m : NULL;
        pbs[k].tau_a = tau_a;
        pbs[k].tau_b = tau_b;
    }
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_sinkhorn_batch(B, pbs, &par, (double *)PyArray_DATA(fa), (double *)PyArray_DATA(ga),
                              infos, status);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR) {
        bind_raise_status(st, "sinkhorn");
        goto out;
    }
    {
        npy_intp bd[1] = {(npy_intp)B};
        PyArrayObject *val = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *cst = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *mas = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *err = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *nit = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_INT64);
        PyArrayObject *cvg = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_BOOL);
        PyArrayObject *kit = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_INT64);
        PyArrayObject *ait = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_INT64);
        PyArrayObject *erc = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        if (val && cst && mas && err && nit && cvg && kit && ait && erc) {
            for (int64_t k = 0; k < B; k++) {
                ((double *)PyArray_DATA(val))[k] = infos[k].value;
                ((double *)PyArray_DATA(cst))[k] = infos[k].cost;
                ((double *)PyArray_DATA(mas))[k] = infos[k].mass;
                ((double *)PyArray_DATA(err))[k] = infos[k].error;
                ((int64_t *)PyArray_DATA(nit))[k] = infos[k].n_iter;
                ((npy_bool *)PyArray_DATA(cvg))[k] = (npy_bool)(infos[k].converged != 0);
                ((int64_t *)PyArray_DATA(kit))[k] = infos[k].kernel_iter;
                ((int64_t *)PyArray_DATA(ait))[k] = infos[k].anderson_iter;
                ((double *)PyArray_DATA(erc))[k] = infos[k].eps_reached;
            }
            result = Py_BuildValue("{s:O,s:O,s:N,s:N,s:N,s:N,s:N,s:N,s:O,s:N,s:N,s:N}", "f", fa,
                                   "g", ga, "value", val, "cost", cst, "mass", mas, "error", err,
                                   "n_iter", nit, "converged", cvg, "stopped",
                                   pctx.user_stop ? Py_True : Py_False, "kernel_iter", kit,
                                   "anderson_iter", ait, "eps_reached", erc);
        } else {
            Py_XDECREF(val);
            Py_XDECREF(cst);
            Py_XDECREF(mas);
            Py_XDECREF(err);
            Py_XDECREF(nit);
            Py_XDECREF(cvg);
            Py_XDECREF(kit);
            Py_XDECREF(ait);
            Py_XDECREF(erc);
        }
    }
out:
    bind_batch_geom_free(&bg);
    Py_XDECREF(aa);
    Py_XDECREF(ba);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    PyMem_Free(pbs);
    PyMem_Free(infos);
    PyMem_Free(status);
    return result;
}

/* ------------------------------------------------------------------ plan, apply, cost matrix */

typedef struct {
    batch_geom bg;
    PyArrayObject *a, *b, *f, *g;
    monge_problem pb;
} single_problem;

static void single_free(single_problem *s)
{
    bind_batch_geom_free(&s->bg);
    Py_XDECREF(s->a);
    Py_XDECREF(s->b);
    Py_XDECREF(s->f);
    Py_XDECREF(s->g);
}

static int single_parse(PyObject *C, PyObject *x, PyObject *y, PyObject *a, PyObject *b,
                        const char *cost, double p, double lam, PyObject *f, PyObject *g,
                        single_problem *s)
{
    memset(s, 0, sizeof *s);
    if (bind_batch_geom_parse(C, x, y, cost, p, lam, 0, &s->bg)) return -1;
    if (bind_parse_weights(a, 1, s->bg.n, 0, "a", &s->a) || bind_parse_weights(b, 1, s->bg.m, 0, "b", &s->b))
        return -1;
    if (!(s->f = bind_as_array(f, NPY_FLOAT64, 1, "f")) || !(s->g = bind_as_array(g, NPY_FLOAT64, 1, "g")))
        return -1;
    if (PyArray_DIM(s->f, 0) != s->bg.n || PyArray_DIM(s->g, 0) != s->bg.m) {
        PyErr_SetString(PyExc_ValueError, "f, g: potentials do not match the problem");
        return -1;
    }
    s->pb.geom = &s->bg.geoms[0];
    s->pb.a = s->a ? (const double *)PyArray_DATA(s->a) : NULL;
    s->pb.b = s->b ? (const double *)PyArray_DATA(s->b) : NULL;
    s->pb.tau_a = s->pb.tau_b = INFINITY;
    return 0;
}

static PyObject *py_plan(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "x", "y", "a", "b", "f", "g", "eps", "cost", "p", "lam",
                             "nthreads", NULL};
    PyObject *C, *x, *y, *a, *b, *f, *g;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0, lam = 0.0;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOd|sddi", kwlist, &C, &x, &y, &a, &b, &f,
                                     &g, &eps, &cost, &p, &lam, &nthreads))
        return NULL;
    single_problem s;
    PyObject *res = NULL;
    if (single_parse(C, x, y, a, b, cost, p, lam, f, g, &s)) goto out;
    npy_intp dims[2] = {(npy_intp)s.bg.n, (npy_intp)s.bg.m};
    PyArrayObject *P = (PyArrayObject *)PyArray_SimpleNew(2, dims, s.bg.type);
    if (!P) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_sinkhorn_plan(&s.pb, eps, PyArray_DATA(s.f), PyArray_DATA(s.g), PyArray_DATA(P),
                             nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(P);
        bind_raise_status(st, "plan");
        goto out;
    }
    res = (PyObject *)P;
out:
    single_free(&s);
    return res;
}

static PyObject *py_apply(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "x", "y", "a", "b", "f", "g", "eps", "V", "transpose", "cost",
                             "p", "lam", "nthreads", NULL};
    PyObject *C, *x, *y, *a, *b, *f, *g, *V;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0, lam = 0.0;
    int transpose = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOOdO|psddi", kwlist, &C, &x, &y, &a, &b, &f,
                                     &g, &eps, &V, &transpose, &cost, &p, &lam, &nthreads))
        return NULL;
    single_problem s;
    PyObject *res = NULL;
    PyArrayObject *Va = NULL;
    if (single_parse(C, x, y, a, b, cost, p, lam, f, g, &s)) goto out;
    if (!(Va = bind_as_array(V, NPY_FLOAT64, 2, "v"))) goto out;
    const int64_t rows = transpose ? s.bg.n : s.bg.m, outrows = transpose ? s.bg.m : s.bg.n;
    if (PyArray_DIM(Va, 0) != rows || PyArray_DIM(Va, 1) < 1) {
        PyErr_Format(PyExc_ValueError, "v: expected %lld rows", (long long)rows);
        goto out;
    }
    const int64_t k = PyArray_DIM(Va, 1);
    npy_intp dims[2] = {(npy_intp)outrows, (npy_intp)k};
    PyArrayObject *O = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT64);
    if (!O) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_sinkhorn_apply(&s.pb, eps, PyArray_DATA(s.f), PyArray_DATA(s.g), transpose,
                              PyArray_DATA(Va), k, PyArray_DATA(O), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(O);
        bind_raise_status(st, "apply");
        goto out;
    }
    res = (PyObject *)O;
out:
    Py_XDECREF(Va);
    single_free(&s);
    return res;
}

static PyObject *py_grad_points(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "f", "g", "eps", "transpose", "cost", "p", "lam",
                             "nthreads", NULL};
    PyObject *x, *y, *a, *b, *f, *g;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0, lam = 0.0;
    int transpose = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOOd|psddi", kwlist, &x, &y, &a, &b, &f, &g,
                                     &eps, &transpose, &cost, &p, &lam, &nthreads))
        return NULL;
    single_problem s;
    PyObject *res = NULL;
    if (single_parse(Py_None, x, y, a, b, cost, p, lam, f, g, &s)) goto out;
    npy_intp dims[2] = {(npy_intp)(transpose ? s.bg.m : s.bg.n), (npy_intp)s.bg.d};
    PyArrayObject *O = (PyArrayObject *)PyArray_SimpleNew(2, dims, NPY_FLOAT64);
    if (!O) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_sinkhorn_grad_points(&s.pb, eps, PyArray_DATA(s.f), PyArray_DATA(s.g), transpose,
                                    PyArray_DATA(O), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(O);
        bind_raise_status(st, "gradient");
        goto out;
    }
    res = (PyObject *)O;
out:
    single_free(&s);
    return res;
}

static PyObject *py_cost_matrix(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "cost", "p", "lam", "nthreads", NULL};
    PyObject *x, *y;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 0.0;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sddi", kwlist, &x, &y, &cost, &p, &lam,
                                     &nthreads))
        return NULL;
    batch_geom bg;
    PyObject *res = NULL;
    monge_geom_work *w = NULL;
    if (bind_batch_geom_parse(Py_None, x, y, cost, p, lam, 0, &bg)) goto out;
    int st = monge_geom_prepare(&bg.geoms[0], nthreads, &w);
    if (st) {
        bind_raise_status(st, "cost_matrix");
        goto out;
    }
    npy_intp dims[2] = {(npy_intp)bg.n, (npy_intp)bg.m};
    PyArrayObject *Cm = (PyArrayObject *)PyArray_SimpleNew(2, dims, bg.type);
    if (!Cm) goto out;
    Py_BEGIN_ALLOW_THREADS
    st = monge_geom_cost_matrix(w, PyArray_DATA(Cm), nthreads);
    Py_END_ALLOW_THREADS
    res = (PyObject *)Cm;
out:
    monge_geom_release(w);
    bind_batch_geom_free(&bg);
    return res;
}

/* In place on Z (k x m, float32 or float64, C-contiguous, writable): the entropic map's weights
 * (monge_softmax_rows); returns the row sums. */
static PyObject *py_softmax_rows(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"Z", "shift", "scale", "nthreads", NULL};
    PyObject *zo, *so;
    double scale;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOd|i", kwlist, &zo, &so, &scale, &nthreads))
        return NULL;
    if (!PyArray_Check(zo) || PyArray_NDIM((PyArrayObject *)zo) != 2 ||
        !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)zo) || !PyArray_ISWRITEABLE((PyArrayObject *)zo) ||
        !PyArray_ISALIGNED((PyArrayObject *)zo) ||
        (PyArray_TYPE((PyArrayObject *)zo) != NPY_FLOAT32 &&
         PyArray_TYPE((PyArrayObject *)zo) != NPY_FLOAT64)) {
        PyErr_SetString(PyExc_TypeError,
                        "Z: expected a writable C-contiguous 2-D float32 or float64 ndarray");
        return NULL;
    }
    PyArrayObject *Z = (PyArrayObject *)zo;
    const int type = PyArray_TYPE(Z);
    const npy_intp k = PyArray_DIM(Z, 0), m = PyArray_DIM(Z, 1);
    if (m < 1) {
        PyErr_SetString(PyExc_ValueError, "Z: needs at least one column");
        return NULL;
    }
    PyArrayObject *sh = bind_as_array(so, type, 1, "shift");
    if (!sh) return NULL;
    PyObject *res = NULL;
    if (PyArray_DIM(sh, 0) != m) {
        PyErr_Format(PyExc_ValueError, "shift: expected %zd entries (the columns of Z), got %zd",
                     (Py_ssize_t)m, (Py_ssize_t)PyArray_DIM(sh, 0));
        goto out;
    }
    npy_intp dims[1] = {k};
    PyArrayObject *rs = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    if (!rs) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_softmax_rows(type == NPY_FLOAT32 ? MONGE_F32 : MONGE_F64, (int64_t)k, (int64_t)m,
                            PyArray_DATA(Z), PyArray_DATA(sh), scale, PyArray_DATA(rs), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(rs);
        if (st == MONGE_ENONFINITE)
            PyErr_SetString(PyExc_ValueError, "Z, shift: a row holds NaN or infinity");
        else bind_raise_status(st, "softmax_rows");
        goto out;
    }
    res = (PyObject *)rs;
out:
    Py_DECREF(sh);
    return res;
}

/* ------------------------------------------------------------------ defaults */

/* monge_sinkhorn_params_init and the thresholds of sinkhorn.h, as a dict: the one source of the
 * defaults the Python layer uses and quotes. */
static PyObject *py_sinkhorn_defaults(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    PyObject *omega = par.overrelax == 0 ? PyUnicode_FromString("auto") : PyFloat_FromDouble(par.overrelax);
    if (!omega) return NULL;
    return Py_BuildValue(
        "{s:d,s:d,s:d,s:L,s:s,s:d,s:d,s:d,s:N,s:s,s:i,s:i,s:d,s:L,s:L,s:i,s:O,s:i,s:i,s:i}", "eps",
        par.eps,
        "tol", par.tol, "tol_float32", MONGE_SINKHORN_TOL_F32, "max_iter", (long long)par.max_iter,
        "eps_scaling", bind_eps_scaling_names[par.eps_scaling], "eps_start", par.eps_start,
        "scaling_factor", par.scaling_factor, "stage_tol", par.stage_tol, "overrelax", omega,
        "kernel", bind_kernel_names[par.kernel], "anderson", par.anderson, "anderson_max",
        MONGE_SINKHORN_ANDERSON_MAX, "auto_anneal", MONGE_SINKHORN_AUTO_ANNEAL, "kernel_min",
        (long long)MONGE_SINKHORN_KERNEL_MIN, "kernel_online_max",
        (long long)MONGE_SINKHORN_KERNEL_ONLINE_MAX, "anderson_stall", MONGE_SINKHORN_ANDERSON_STALL,
        "compute_cost", par.compute_cost ? Py_True : Py_False, "ms_refine_anderson",
        MONGE_MS_REFINE_AA, "ms_refine_stall", MONGE_MS_REFINE_STALL, "ms_coarse_correction",
        MONGE_MS_COARSE);
}

/* sinkhorn_tuning() -> {name: value} of the engine's heuristic constants; sinkhorn_tuning(name,
 * value) sets one and returns its previous value (benchmarks/sinkhorn_suite.py). */
static PyObject *py_sinkhorn_tuning(PyObject *self, PyObject *args)
{
    (void)self;
    const char *name = NULL;
    PyObject *value = Py_None;
    if (!PyArg_ParseTuple(args, "|zO:sinkhorn_tuning", &name, &value)) return NULL;
    if (!name) {
        PyObject *out = PyDict_New();
        if (!out) return NULL;
        for (int i = 0; monge_sinkhorn_tuning_name(i); i++) {
            double v = 0;
            monge_sinkhorn_tuning(monge_sinkhorn_tuning_name(i), NULL, &v);
            PyObject *f = PyFloat_FromDouble(v);
            if (!f || PyDict_SetItemString(out, monge_sinkhorn_tuning_name(i), f) < 0) {
                Py_XDECREF(f);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(f);
        }
        return out;
    }
    double prev = 0, v = 0;
    const double *pv = NULL;
    if (value != Py_None) {
        v = PyFloat_AsDouble(value);
        if (v == -1.0 && PyErr_Occurred()) return NULL;
        pv = &v;
    }
    if (monge_sinkhorn_tuning(name, pv, &prev) != MONGE_OK) {
        PyErr_Format(PyExc_ValueError,
                     "sinkhorn_tuning: unknown constant %s or bad value (counts are whole numbers "
                     ">= 1, the rest > 0 and finite)", name);
        return NULL;
    }
    return PyFloat_FromDouble(prev);
}

/* c_transform(x (k, d), y (m, d), b (m,) or None, g (m,), eps, cost, p, lam, nthreads) -> (k,):
 * out_i = -eps log sum_j b_j exp((g_j - c(x_i, y_j)) / eps), stabilised (monge_softmin): the
 * source potential of new points, for the entropic map out of sample. */
static PyObject *py_c_transform(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "b", "g", "eps", "cost", "p", "lam", "nthreads", NULL};
    PyObject *x, *y, *b, *g;
    const char *cost = "sqeuclidean";
    double eps, p = 2.0, lam = 0.0;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOd|sddi", kwlist, &x, &y, &b, &g, &eps, &cost,
                                     &p, &lam, &nthreads))
        return NULL;
    if (!(eps > 0.0) || !isfinite(eps)) {
        PyErr_SetString(PyExc_ValueError, "eps: must be positive and finite");
        return NULL;
    }
    batch_geom bg;
    memset(&bg, 0, sizeof bg);
    PyArrayObject *ba = NULL, *ga = NULL, *O = NULL;
    double *h = NULL;
    monge_geom_work *w = NULL;
    PyObject *res = NULL;
    if (bind_batch_geom_parse(Py_None, x, y, cost, p, lam, 0, &bg)) goto out;
    if (bind_parse_weights(b, 1, bg.m, 0, "b", &ba)) goto out;
    if (!(ga = bind_as_array(g, NPY_FLOAT64, 1, "g"))) goto out;
    if (PyArray_DIM(ga, 0) != bg.m) {
        PyErr_SetString(PyExc_ValueError, "g: expected one potential per point of y");
        goto out;
    }
    npy_intp dims[1] = {(npy_intp)bg.n};
    O = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_FLOAT64);
    h = PyMem_Malloc((size_t)bg.m * sizeof *h);
    if (!O || !h) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto out;
    }
    monge_problem pb = {&bg.geoms[0], NULL, ba ? (const double *)PyArray_DATA(ba) : NULL, INFINITY,
                        INFINITY};
    int st;
    Py_BEGIN_ALLOW_THREADS
    monge_problem_shift(&pb, 1, eps, (const double *)PyArray_DATA(ga), h); /* g_j + eps log b_j */
    st = monge_geom_prepare(&bg.geoms[0], nthreads, &w);
    if (!st) st = monge_softmin(w, 0, eps, h, NULL, (double *)PyArray_DATA(O), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "c_transform");
        goto out;
    }
    double *o = (double *)PyArray_DATA(O);
    for (int64_t i = 0; i < bg.n; i++) o[i] = -o[i];
    res = (PyObject *)O;
    O = NULL;
out:
    monge_geom_release(w);
    PyMem_Free(h);
    Py_XDECREF(O);
    Py_XDECREF(ba);
    Py_XDECREF(ga);
    bind_batch_geom_free(&bg);
    return res;
}

PyMethodDef monge_bind_sinkhorn_methods[] = {
    {"sinkhorn_tuning", py_sinkhorn_tuning, METH_VARARGS,
     "The Sinkhorn engine's heuristic constants (private; benchmarks/sinkhorn_suite.py)."},
    {"sinkhorn_defaults", py_sinkhorn_defaults, METH_NOARGS,
     "The C defaults of the Sinkhorn options and thresholds (monge_sinkhorn_params_init)."},
    {"sinkhorn", BIND_KW(py_sinkhorn), METH_VARARGS | METH_KEYWORDS,
     "Batched log-domain Sinkhorn (private; use monge.sinkhorn)."},
    {"plan", BIND_KW(py_plan), METH_VARARGS | METH_KEYWORDS,
     "Dense entropic plan from potentials (private)."},
    {"apply", BIND_KW(py_apply), METH_VARARGS | METH_KEYWORDS,
     "P @ V or P.T @ V without storing P (private)."},
    {"grad_points", BIND_KW(py_grad_points), METH_VARARGS | METH_KEYWORDS,
     "Gradient of OT_eps with respect to the points (private)."},
    {"cost_matrix", BIND_KW(py_cost_matrix), METH_VARARGS | METH_KEYWORDS,
     "Dense cost matrix between two point clouds (private; use monge.cost_matrix)."},
    {"c_transform", BIND_KW(py_c_transform), METH_VARARGS | METH_KEYWORDS,
     "Source potentials of new points from target potentials (private)."},
    {"softmax_rows", BIND_KW(py_softmax_rows), METH_VARARGS | METH_KEYWORDS,
     "In place: the entropic map's weights per row of Z; returns the row sums (private)."},
    {NULL, NULL, 0, NULL}};
