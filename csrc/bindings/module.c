/* monge._core: the one file that touches Python.h and the NumPy C API.
 *
 * Each function parses its arguments, converts arrays to C-contiguous float64/float32 (copying
 * only when needed, so strided and Fortran-ordered inputs work), re-checks shapes, releases the
 * GIL for the computation and wraps the results.  Friendly validation with messages naming each
 * argument lives in the Python layer (monge/_validate.py); the checks here guarantee that no call
 * can crash the interpreter even when the private module is called directly.
 *
 * Interrupts: the C solvers call a progress callback every iteration.  Ours re-takes the GIL at
 * most every 0.1 s (or every iteration when a Python callback is given) on the calling thread,
 * runs PyErr_CheckSignals and the Python callback, and cancels the solve on Ctrl-C or an
 * exception; worker threads of a batched solve only read the shared stop flag. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <math.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../monge.h"

/* ------------------------------------------------------------------ helpers */

static double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The thread that called into the extension: outside any parallel region, or thread 0 of the
 * batch region (OpenMP's primary thread is the caller). */
static int on_calling_thread(void)
{
#ifdef _OPENMP
    return !omp_in_parallel() || omp_get_thread_num() == 0;
#else
    return 1;
#endif
}

typedef struct {
    PyObject *callback; /* Python callable(iteration, error) -> truthy to stop, or NULL */
    double last;        /* time of the last visit to Python */
    int stop;           /* set once: every later call returns 1 */
    int user_stop;      /* the Python callback asked to stop (not an error) */
} progress_ctx;

static int progress_cb(void *vctx, int64_t iter, double err)
{
    progress_ctx *c = (progress_ctx *)vctx;
    int stop;
    __atomic_load(&c->stop, &stop, __ATOMIC_RELAXED);
    if (stop) return 1;
    if (!on_calling_thread()) return 0;
    double t = mono_now();
    if (!c->callback && t - c->last < 0.1) return 0;
    c->last = t;
    PyGILState_STATE gs = PyGILState_Ensure();
    int s = 0;
    if (PyErr_CheckSignals() < 0) {
        s = 1;
    } else if (c->callback) {
        PyObject *r = PyObject_CallFunction(c->callback, "Ld", (long long)iter, err);
        if (!r) {
            s = 1;
        } else {
            int truth = PyObject_IsTrue(r);
            Py_DECREF(r);
            if (truth < 0) s = 1;
            else if (truth) {
                s = 1;
                c->user_stop = 1;
            }
        }
    }
    PyGILState_Release(gs);
    if (s) __atomic_store_n(&c->stop, 1, __ATOMIC_RELAXED);
    return s;
}

/* An input array as C-contiguous aligned `type`, with `ndim` dimensions; NULL + exception else. */
static PyArrayObject *as_array(PyObject *obj, int type, int ndim, const char *name)
{
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROMANY(obj, type, ndim, ndim,
                                                          NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!arr) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-dimensional numeric array", name, ndim);
    }
    return arr;
}

static int parse_cost(const char *name, monge_cost *out)
{
    if (!strcmp(name, "sqeuclidean")) *out = MONGE_COST_SQEUCLIDEAN;
    else if (!strcmp(name, "euclidean")) *out = MONGE_COST_EUCLIDEAN;
    else if (!strcmp(name, "pnorm")) *out = MONGE_COST_PNORM;
    else if (!strcmp(name, "cosine")) *out = MONGE_COST_COSINE;
    else if (!strcmp(name, "elastic")) *out = MONGE_COST_ELASTIC;
    else {
        PyErr_Format(PyExc_ValueError,
                     "cost: unknown cost '%s' (expected sqeuclidean, euclidean, pnorm, cosine or "
                     "elastic)",
                     name);
        return -1;
    }
    return 0;
}

static PyObject *raise_status(int st, const char *what)
{
    if (st == MONGE_ENOMEM) return PyErr_NoMemory();
    if (st == MONGE_EINVAL)
        PyErr_Format(PyExc_ValueError, "%s: invalid argument (rejected by the C core)", what);
    else if (st == MONGE_ENONFINITE)
        PyErr_Format(PyExc_FloatingPointError,
                     "%s: the iterates became non-finite (costs or eps out of range)", what);
    else PyErr_Format(PyExc_RuntimeError, "%s: %s", what, monge_status_str(st));
    return NULL;
}

/* Batched geometries: C (B, n, m) or x (B, n, d) and y (B, m, d). */
typedef struct {
    PyArrayObject *C, *x, *y;
    int type;
    int64_t B, n, m, d;
    monge_geometry *geoms;
} batch_geom;

static void batch_geom_free(batch_geom *bg)
{
    Py_XDECREF(bg->C);
    Py_XDECREF(bg->x);
    Py_XDECREF(bg->y);
    PyMem_Free(bg->geoms);
}

static int batch_geom_parse(PyObject *C, PyObject *x, PyObject *y, const char *cost, double p,
                            double lam, int batched, batch_geom *bg)
{
    memset(bg, 0, sizeof *bg);
    const int nd = batched ? 3 : 2;
    PyObject *probe = C != Py_None ? C : x;
    if (probe == Py_None || (C == Py_None && y == Py_None)) {
        PyErr_SetString(PyExc_ValueError, "give either C or both x and y");
        return -1;
    }
    bg->type = (PyArray_Check(probe) && PyArray_TYPE((PyArrayObject *)probe) == NPY_FLOAT32)
                   ? NPY_FLOAT32
                   : NPY_FLOAT64;
    monge_cost ck = MONGE_COST_SQEUCLIDEAN;
    if (C != Py_None) {
        if (!(bg->C = as_array(C, bg->type, nd, "C"))) return -1;
        npy_intp *sh = PyArray_DIMS(bg->C);
        bg->B = batched ? sh[0] : 1;
        bg->n = sh[nd - 2];
        bg->m = sh[nd - 1];
    } else {
        if (parse_cost(cost, &ck)) return -1;
        if (!(bg->x = as_array(x, bg->type, nd, "x")) || !(bg->y = as_array(y, bg->type, nd, "y")))
            return -1;
        npy_intp *sx = PyArray_DIMS(bg->x), *sy = PyArray_DIMS(bg->y);
        bg->B = batched ? sx[0] : 1;
        bg->n = sx[nd - 2];
        bg->m = sy[nd - 2];
        bg->d = sx[nd - 1];
        if (sy[nd - 1] != bg->d || (batched && sy[0] != bg->B)) {
            PyErr_SetString(PyExc_ValueError, "x, y: shapes do not match");
            return -1;
        }
    }
    if (bg->B < 1 || bg->n < 1 || bg->m < 1 || (C == Py_None && bg->d < 1)) {
        PyErr_SetString(PyExc_ValueError, "empty input: every dimension must be >= 1");
        return -1;
    }
    bg->geoms = (monge_geometry *)PyMem_Calloc((size_t)bg->B, sizeof(monge_geometry));
    if (!bg->geoms) {
        PyErr_NoMemory();
        return -1;
    }
    const size_t es = bg->type == NPY_FLOAT32 ? 4 : 8;
    for (int64_t k = 0; k < bg->B; k++) {
        monge_geometry *g = &bg->geoms[k];
        g->n = bg->n;
        g->m = bg->m;
        g->dtype = bg->type == NPY_FLOAT32 ? MONGE_F32 : MONGE_F64;
        if (bg->C) {
            g->C = (const char *)PyArray_DATA(bg->C) + (size_t)k * (size_t)(bg->n * bg->m) * es;
        } else {
            g->x = (const char *)PyArray_DATA(bg->x) + (size_t)k * (size_t)(bg->n * bg->d) * es;
            g->y = (const char *)PyArray_DATA(bg->y) + (size_t)k * (size_t)(bg->m * bg->d) * es;
            g->d = bg->d;
            g->cost = ck;
            g->p = p;
            g->lam = lam;
        }
    }
    return 0;
}

/* Weights (B, len) float64, or NULL for uniform. */
static int parse_weights(PyObject *w, int64_t B, int64_t len, int batched, const char *name,
                         PyArrayObject **out)
{
    *out = NULL;
    if (w == Py_None) return 0;
    PyArrayObject *arr = as_array(w, NPY_FLOAT64, batched ? 2 : 1, name);
    if (!arr) return -1;
    npy_intp *sh = PyArray_DIMS(arr);
    if ((batched && (sh[0] != B || sh[1] != len)) || (!batched && sh[0] != len)) {
        PyErr_Format(PyExc_ValueError, "%s: shape does not match the problem", name);
        Py_DECREF(arr);
        return -1;
    }
    *out = arr;
    return 0;
}

/* ------------------------------------------------------------------ sinkhorn */

static PyObject *py_sinkhorn(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "x", "y", "a", "b", "cost", "p", "eps", "tau_a", "tau_b", "tol",
                             "max_iter", "eps_scaling", "eps_start", "scaling_factor", "stage_tol",
                             "overrelax", "f0", "g0", "compute_cost", "nthreads", "callback",
                             "lam", NULL};
    PyObject *C, *x, *y, *a, *b, *f0 = Py_None, *g0 = Py_None, *callback = Py_None;
    const char *cost = "sqeuclidean";
    double p = 2.0, eps, tau_a = INFINITY, tau_b = INFINITY, tol = 1e-6, eps_start = 0,
           scaling_factor = 0.1, stage_tol = 1e-4, overrelax = 0, lam = 0.0;
    long long max_iter = 10000;
    int eps_scaling = 0, compute_cost = 1, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|sdddddLiddddOOpiOd", kwlist, &C, &x, &y, &a,
                                     &b, &cost, &p, &eps, &tau_a, &tau_b, &tol, &max_iter,
                                     &eps_scaling, &eps_start, &scaling_factor, &stage_tol,
                                     &overrelax, &f0, &g0, &compute_cost, &nthreads, &callback,
                                     &lam))
        return NULL;
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
    if (batch_geom_parse(C, x, y, cost, p, lam, 1, &bg)) goto out;
    const int64_t B = bg.B, n = bg.n, m = bg.m;
    if (parse_weights(a, B, n, 1, "a", &aa) || parse_weights(b, B, m, 1, "b", &ba)) goto out;
    npy_intp fd[2] = {(npy_intp)B, (npy_intp)n}, gd[2] = {(npy_intp)B, (npy_intp)m};
    monge_sinkhorn_params par;
    monge_sinkhorn_params_init(&par);
    if (f0 != Py_None || g0 != Py_None) {
        if (f0 == Py_None || g0 == Py_None) {
            PyErr_SetString(PyExc_ValueError, "init: give both potentials f and g");
            goto out;
        }
        PyArrayObject *fi = as_array(f0, NPY_FLOAT64, 2, "init f");
        PyArrayObject *gi = fi ? as_array(g0, NPY_FLOAT64, 2, "init g") : NULL;
        if (!gi) {
            Py_XDECREF(fi);
            goto out;
        }
        if (PyArray_DIM(fi, 0) != B || PyArray_DIM(fi, 1) != n || PyArray_DIM(gi, 0) != B ||
            PyArray_DIM(gi, 1) != m) {
            PyErr_SetString(PyExc_ValueError, "init: potentials have the wrong shape");
            Py_DECREF(fi);
            Py_DECREF(gi);
            goto out;
        }
        fa = (PyArrayObject *)PyArray_NewCopy(fi, NPY_CORDER);
        ga = (PyArrayObject *)PyArray_NewCopy(gi, NPY_CORDER);
        Py_DECREF(fi);
        Py_DECREF(gi);
        if (!fa || !ga) goto out;
        par.warm_start = 1;
    } else {
        fa = (PyArrayObject *)PyArray_ZEROS(2, fd, NPY_FLOAT64, 0);
        ga = (PyArrayObject *)PyArray_ZEROS(2, gd, NPY_FLOAT64, 0);
        if (!fa || !ga) goto out;
    }
    par.eps = eps;
    par.tol = tol;
    par.max_iter = max_iter;
    par.eps_scaling = eps_scaling;
    par.eps_start = eps_start;
    par.scaling_factor = scaling_factor;
    par.stage_tol = stage_tol;
    par.overrelax = overrelax;
    par.compute_cost = compute_cost;
    par.nthreads = nthreads;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, mono_now(), 0, 0};
    par.progress = progress_cb;
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
        raise_status(st, "sinkhorn");
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
        if (val && cst && mas && err && nit && cvg) {
            for (int64_t k = 0; k < B; k++) {
                ((double *)PyArray_DATA(val))[k] = infos[k].value;
                ((double *)PyArray_DATA(cst))[k] = infos[k].cost;
                ((double *)PyArray_DATA(mas))[k] = infos[k].mass;
                ((double *)PyArray_DATA(err))[k] = infos[k].error;
                ((int64_t *)PyArray_DATA(nit))[k] = infos[k].n_iter;
                ((npy_bool *)PyArray_DATA(cvg))[k] = (npy_bool)(infos[k].converged != 0);
            }
            result = Py_BuildValue("{s:O,s:O,s:N,s:N,s:N,s:N,s:N,s:N,s:O}", "f", fa, "g", ga,
                                   "value", val, "cost", cst, "mass", mas, "error", err, "n_iter",
                                   nit, "converged", cvg, "stopped",
                                   pctx.user_stop ? Py_True : Py_False);
        } else {
            Py_XDECREF(val);
            Py_XDECREF(cst);
            Py_XDECREF(mas);
            Py_XDECREF(err);
            Py_XDECREF(nit);
            Py_XDECREF(cvg);
        }
    }
out:
    batch_geom_free(&bg);
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
    batch_geom_free(&s->bg);
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
    if (batch_geom_parse(C, x, y, cost, p, lam, 0, &s->bg)) return -1;
    if (parse_weights(a, 1, s->bg.n, 0, "a", &s->a) || parse_weights(b, 1, s->bg.m, 0, "b", &s->b))
        return -1;
    if (!(s->f = as_array(f, NPY_FLOAT64, 1, "f")) || !(s->g = as_array(g, NPY_FLOAT64, 1, "g")))
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
        raise_status(st, "plan");
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
    if (!(Va = as_array(V, NPY_FLOAT64, 2, "v"))) goto out;
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
        raise_status(st, "apply");
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
        raise_status(st, "gradient");
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
    if (batch_geom_parse(Py_None, x, y, cost, p, lam, 0, &bg)) goto out;
    int st = monge_geom_prepare(&bg.geoms[0], nthreads, &w);
    if (st) {
        raise_status(st, "cost_matrix");
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
    batch_geom_free(&bg);
    return res;
}

/* ------------------------------------------------------------------ losses */

static void fill_params(monge_sinkhorn_params *par, double eps, double tol, long long max_iter,
                        int eps_scaling, double scaling_factor, double stage_tol,
                        double overrelax, int nthreads, progress_ctx *pctx)
{
    monge_sinkhorn_params_init(par);
    par->eps = eps;
    par->tol = tol;
    par->max_iter = max_iter;
    par->eps_scaling = eps_scaling;
    par->scaling_factor = scaling_factor;
    par->stage_tol = stage_tol;
    par->overrelax = overrelax;
    par->nthreads = nthreads;
    par->progress = progress_cb;
    par->progress_ctx = pctx;
}

/* a (B, len) float64 array of zeros, or NULL (+ exception) */
static PyArrayObject *zeros2(int64_t B, int64_t len)
{
    npy_intp dims[2] = {(npy_intp)B, (npy_intp)len};
    return (PyArrayObject *)PyArray_ZEROS(2, dims, NPY_FLOAT64, 0);
}

static PyObject *py_sinkhorn_divergence(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "cost", "p", "lam", "eps", "tau_a", "tau_b",
                             "tol", "max_iter", "eps_scaling", "scaling_factor", "stage_tol",
                             "overrelax", "static_b", "dense", "grad_x", "grad_y", "grad_a",
                             "grad_b", "nthreads", NULL};
    PyObject *x, *y, *a, *b;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 0.0, eps, tau_a = INFINITY, tau_b = INFINITY, tol = 1e-6,
           scaling_factor = 0.1, stage_tol = 1e-4, overrelax = 0;
    long long max_iter = 10000;
    int eps_scaling = 0, static_b = 0, dense = 0, gx = 0, gy = 0, ga = 0, gb = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|sddddddLidddppppppi", kwlist, &x, &y, &a, &b,
                                     &cost, &p, &lam, &eps, &tau_a, &tau_b, &tol, &max_iter,
                                     &eps_scaling, &scaling_factor, &stage_tol, &overrelax,
                                     &static_b, &dense, &gx, &gy, &ga, &gb, &nthreads))
        return NULL;
    batch_geom bg;
    PyArrayObject *aa = NULL, *ba = NULL, *Gx = NULL, *Gy = NULL, *Ga = NULL, *Gb = NULL;
    PyObject *result = NULL;
    monge_problem *pbs = NULL;
    monge_divergence_info *infos = NULL;
    int *status = NULL;
    if (batch_geom_parse(Py_None, x, y, cost, p, lam, 1, &bg)) goto out;
    const int64_t B = bg.B, n = bg.n, m = bg.m, d = bg.d;
    if (parse_weights(a, B, n, 1, "a", &aa) || parse_weights(b, B, m, 1, "b", &ba)) goto out;
    if ((gx && !(Gx = zeros2(B, n * d))) || (gy && !(Gy = zeros2(B, m * d))) ||
        (ga && !(Ga = zeros2(B, n))) || (gb && !(Gb = zeros2(B, m))))
        goto out;
    progress_ctx pctx = {NULL, mono_now(), 0, 0};
    monge_divergence_params par;
    monge_divergence_params_init(&par);
    fill_params(&par.sk, eps, tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax,
                nthreads, &pctx);
    par.static_b = static_b;
    par.dense = dense;
    pbs = (monge_problem *)PyMem_Calloc((size_t)B, sizeof *pbs);
    infos = (monge_divergence_info *)PyMem_Calloc((size_t)B, sizeof *infos);
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
    st = monge_sinkhorn_divergence_batch(B, pbs, &par, Gx ? (double *)PyArray_DATA(Gx) : NULL,
                                         Gy ? (double *)PyArray_DATA(Gy) : NULL,
                                         Ga ? (double *)PyArray_DATA(Ga) : NULL,
                                         Gb ? (double *)PyArray_DATA(Gb) : NULL, infos, status);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV) {
        raise_status(st, "sinkhorn_divergence");
        goto out;
    }
    {
        npy_intp bd[1] = {(npy_intp)B};
        PyArrayObject *val = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *ots = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *err = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        PyArrayObject *nit = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_INT64);
        PyArrayObject *cvg = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_BOOL);
        npy_intp td[2] = {(npy_intp)B, 3};
        PyArrayObject *three = (PyArrayObject *)PyArray_SimpleNew(2, td, NPY_FLOAT64);
        if (val && ots && err && nit && cvg && three) {
            for (int64_t k = 0; k < B; k++) {
                ((double *)PyArray_DATA(val))[k] = infos[k].value;
                ((double *)PyArray_DATA(err))[k] = infos[k].error;
                ((int64_t *)PyArray_DATA(nit))[k] = infos[k].n_iter;
                ((npy_bool *)PyArray_DATA(cvg))[k] = (npy_bool)(infos[k].converged != 0);
                double *t = (double *)PyArray_DATA(three) + 3 * k;
                t[0] = infos[k].ot_ab;
                t[1] = infos[k].ot_aa;
                t[2] = infos[k].ot_bb;
            }
            Py_DECREF(ots);
            result = Py_BuildValue("{s:N,s:N,s:N,s:N,s:N,s:O,s:O,s:O,s:O}", "value", val, "ot",
                                   three, "error", err, "n_iter", nit, "converged", cvg, "grad_x",
                                   Gx ? (PyObject *)Gx : Py_None, "grad_y",
                                   Gy ? (PyObject *)Gy : Py_None, "grad_a",
                                   Ga ? (PyObject *)Ga : Py_None, "grad_b",
                                   Gb ? (PyObject *)Gb : Py_None);
        } else {
            Py_XDECREF(val);
            Py_XDECREF(ots);
            Py_XDECREF(err);
            Py_XDECREF(nit);
            Py_XDECREF(cvg);
            Py_XDECREF(three);
        }
    }
out:
    batch_geom_free(&bg);
    Py_XDECREF(aa);
    Py_XDECREF(ba);
    Py_XDECREF(Gx);
    Py_XDECREF(Gy);
    Py_XDECREF(Ga);
    Py_XDECREF(Gb);
    PyMem_Free(pbs);
    PyMem_Free(infos);
    PyMem_Free(status);
    return result;
}

static PyObject *py_monge_gap(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "t", "cost", "p", "lam", "eps", "eps_mode", "tol", "max_iter",
                             "eps_scaling", "scaling_factor", "stage_tol", "overrelax", "grad_t",
                             "grad_x", "nthreads", "dense", NULL};
    PyObject *x, *t;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 0.0, eps, tol = 1e-6, scaling_factor = 0.1, stage_tol = 1e-4,
           overrelax = 0;
    long long max_iter = 10000;
    int eps_mode = 0, eps_scaling = 0, gt = 0, gx = 0, nthreads = 0, dense = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sdddidLidddppip", kwlist, &x, &t, &cost, &p,
                                     &lam, &eps, &eps_mode, &tol, &max_iter, &eps_scaling,
                                     &scaling_factor, &stage_tol, &overrelax, &gt, &gx, &nthreads,
                                     &dense))
        return NULL;
    batch_geom bg;
    PyArrayObject *Gt = NULL, *Gx = NULL;
    PyObject *result = NULL;
    if (batch_geom_parse(Py_None, x, t, cost, p, lam, 0, &bg)) goto out;
    if (bg.n != bg.m) {
        PyErr_SetString(PyExc_ValueError, "x, tx: need the same number of points");
        goto out;
    }
    if ((gt && !(Gt = zeros2(bg.n, bg.d))) || (gx && !(Gx = zeros2(bg.n, bg.d)))) goto out;
    progress_ctx pctx = {NULL, mono_now(), 0, 0};
    monge_gap_params par;
    monge_gap_params_init(&par);
    fill_params(&par.sk, eps, tol, max_iter, eps_scaling, scaling_factor, stage_tol, overrelax,
                nthreads, &pctx);
    par.eps_mode = (monge_eps_mode)eps_mode;
    par.dense = dense;
    monge_gap_info info;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_monge_gap(&bg.geoms[0], &par, Gt ? (double *)PyArray_DATA(Gt) : NULL,
                         Gx ? (double *)PyArray_DATA(Gx) : NULL, &info);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV) {
        raise_status(st, "monge_gap");
        goto out;
    }
    result = Py_BuildValue("{s:d,s:d,s:d,s:d,s:d,s:L,s:O,s:O,s:O}", "value", info.value,
                           "displacement", info.displacement, "ent_reg_cost", info.ent_reg_cost,
                           "eps", info.eps, "error", info.error, "n_iter", (long long)info.n_iter,
                           "converged", info.converged ? Py_True : Py_False, "grad_t",
                           Gt ? (PyObject *)Gt : Py_None, "grad_x", Gx ? (PyObject *)Gx : Py_None);
out:
    batch_geom_free(&bg);
    Py_XDECREF(Gt);
    Py_XDECREF(Gx);
    return result;
}

/* ------------------------------------------------------------------ threads and build info */

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_SetString(PyExc_ValueError, "n: number of threads must be in [1, 4096]");
        return NULL;
    }
    monge_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(monge_get_num_threads());
}

static PyObject *py_build_info(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:s,s:O,s:s}", "version", MONGE_VERSION, "openmp",
                         monge_has_openmp() ? Py_True : Py_False, "simd", monge_simd_level());
}

static PyMethodDef methods[] = {
    {"sinkhorn", (PyCFunction)(void (*)(void))py_sinkhorn, METH_VARARGS | METH_KEYWORDS,
     "Batched log-domain Sinkhorn (private; use monge.sinkhorn)."},
    {"plan", (PyCFunction)(void (*)(void))py_plan, METH_VARARGS | METH_KEYWORDS,
     "Dense entropic plan from potentials (private)."},
    {"apply", (PyCFunction)(void (*)(void))py_apply, METH_VARARGS | METH_KEYWORDS,
     "P @ V or P.T @ V without storing P (private)."},
    {"grad_points", (PyCFunction)(void (*)(void))py_grad_points, METH_VARARGS | METH_KEYWORDS,
     "Gradient of OT_eps with respect to the points (private)."},
    {"cost_matrix", (PyCFunction)(void (*)(void))py_cost_matrix, METH_VARARGS | METH_KEYWORDS,
     "Dense cost matrix between two point clouds (private; use monge.cost_matrix)."},
    {"sinkhorn_divergence", (PyCFunction)(void (*)(void))py_sinkhorn_divergence,
     METH_VARARGS | METH_KEYWORDS, "Batched Sinkhorn divergence with gradients (private)."},
    {"monge_gap", (PyCFunction)(void (*)(void))py_monge_gap, METH_VARARGS | METH_KEYWORDS,
     "Monge gap with gradients (private; use monge.monge_gap)."},
    {"set_num_threads", py_set_num_threads, METH_O, "Set the default number of threads."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Default number of threads."},
    {"build_info", py_build_info, METH_NOARGS, "Version, OpenMP and SIMD level of the build."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_core",
                                    "monge C core (private: use the monge package).", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    return PyModule_Create(&moddef);
}
