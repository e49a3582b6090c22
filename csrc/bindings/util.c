/* Helpers shared by the binding files (see bind.h). */
#include "bind.h"

#include <math.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

double bind_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The thread that called into the extension: outside any parallel region, or thread 0 of the
 * batch region (OpenMP's primary thread is the caller). */
int bind_on_calling_thread(void)
{
#ifdef _OPENMP
    return !omp_in_parallel() || omp_get_thread_num() == 0;
#else
    return 1;
#endif
}


int bind_progress_cb(void *vctx, int64_t iter, double err)
{
    progress_ctx *c = (progress_ctx *)vctx;
    int stop;
    __atomic_load(&c->stop, &stop, __ATOMIC_RELAXED);
    if (stop) return 1;
    if (!bind_on_calling_thread()) return 0;
    double t = bind_now();
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
PyArrayObject *bind_as_array(PyObject *obj, int type, int ndim, const char *name)
{
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROMANY(obj, type, ndim, ndim,
                                                          NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!arr) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected a %d-dimensional numeric array", name, ndim);
    }
    return arr;
}

int bind_parse_cost(const char *name, monge_cost *out)
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

const char *const bind_eps_scaling_names[3] = {"off", "on", "auto"};
const char *const bind_kernel_names[3] = {"off", "auto", "always"};

int bind_parse_choice(PyObject *obj, const char *arg, const char *const *names, int count, int *out)
{
    if (!obj || obj == Py_None) return 0;
    if (PyUnicode_Check(obj)) {
        const char *s = PyUnicode_AsUTF8(obj);
        if (!s) return -1;
        for (int k = 0; k < count; k++)
            if (!strcmp(s, names[k])) {
                *out = k;
                return 0;
            }
    }
    PyObject *r = PyObject_Repr(obj);
    const char *rs = r ? PyUnicode_AsUTF8(r) : NULL;
    if (count == 3)
        PyErr_Format(PyExc_ValueError, "%s: expected '%s', '%s' or '%s', got %s", arg, names[0],
                     names[1], names[2], rs ? rs : "?");
    else
        PyErr_Format(PyExc_ValueError, "%s: unexpected value %s", arg, rs ? rs : "?");
    Py_XDECREF(r);
    return -1;
}

static int opt_double(PyObject *obj, const char *arg, double *out)
{
    if (!obj || obj == Py_None) return 0;
    const double v = PyFloat_AsDouble(obj);
    if (v == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected a number", arg);
        return -1;
    }
    *out = v;
    return 0;
}

static int opt_int64(PyObject *obj, const char *arg, int64_t *out)
{
    if (!obj || obj == Py_None) return 0;
    const long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected an integer", arg);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int bind_sinkhorn_options(const bind_sk_options *o, monge_sinkhorn_params *par)
{
    int64_t anderson = par->anderson;
    if (opt_double(o->tol, "tol", &par->tol) || opt_int64(o->max_iter, "max_iter", &par->max_iter) ||
        bind_parse_choice(o->eps_scaling, "eps_scaling", bind_eps_scaling_names, 3, &par->eps_scaling) ||
        opt_double(o->eps_start, "eps_start", &par->eps_start) ||
        opt_double(o->scaling_factor, "scaling_factor", &par->scaling_factor) ||
        opt_double(o->stage_tol, "stage_tol", &par->stage_tol) ||
        bind_parse_choice(o->kernel, "kernel", bind_kernel_names, 3, &par->kernel) ||
        opt_int64(o->anderson, "anderson", &anderson))
        return -1;
    if (anderson < 0 || anderson > MONGE_SINKHORN_ANDERSON_MAX) {
        PyErr_Format(PyExc_ValueError, "anderson: memory in [0, %d], got %lld", MONGE_SINKHORN_ANDERSON_MAX,
                     (long long)anderson);
        return -1;
    }
    par->anderson = (int)anderson;
    if (o->overrelax && o->overrelax != Py_None) {
        if (PyUnicode_Check(o->overrelax)) {
            const char *s = PyUnicode_AsUTF8(o->overrelax);
            if (!s) return -1;
            if (strcmp(s, "auto")) {
                PyErr_Format(PyExc_ValueError, "overrelax: expected 'auto' or a number in (0, 2), got '%s'", s);
                return -1;
            }
            par->overrelax = 0.0;
        } else if (opt_double(o->overrelax, "overrelax", &par->overrelax)) {
            return -1;
        } else if (!(par->overrelax > 0 && par->overrelax < 2)) {
            PyErr_Format(PyExc_ValueError, "overrelax: must be in (0, 2), got %g", par->overrelax);
            return -1;
        }
    }
    return 0;
}

PyObject *bind_raise_status(int st, const char *what)
{
    if (st == MONGE_ENOMEM) return PyErr_NoMemory();
    if (st == MONGE_EINVAL)
        PyErr_Format(PyExc_ValueError, "%s: invalid argument (rejected by the C core)", what);
    else if (st == MONGE_ENONFINITE)
        PyErr_Format(PyExc_FloatingPointError,
                     "%s: the iterates became non-finite (costs or eps out of range)", what);
    else if (st == MONGE_ESTAGE)
        PyErr_Format(PyExc_RuntimeError,
                     "%s: max_iter ran out during eps-scaling, before the target eps, so the "
                     "loss and its gradients at eps cannot be formed; raise max_iter", what);
    else PyErr_Format(PyExc_RuntimeError, "%s: %s", what, monge_status_str(st));
    return NULL;
}


void bind_batch_geom_free(batch_geom *bg)
{
    Py_XDECREF(bg->C);
    Py_XDECREF(bg->x);
    Py_XDECREF(bg->y);
    PyMem_Free(bg->geoms);
}

int bind_batch_geom_parse(PyObject *C, PyObject *x, PyObject *y, const char *cost, double p,
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
        if (!(bg->C = bind_as_array(C, bg->type, nd, "C"))) return -1;
        npy_intp *sh = PyArray_DIMS(bg->C);
        bg->B = batched ? sh[0] : 1;
        bg->n = sh[nd - 2];
        bg->m = sh[nd - 1];
    } else {
        if (bind_parse_cost(cost, &ck)) return -1;
        if (!(bg->x = bind_as_array(x, bg->type, nd, "x")) || !(bg->y = bind_as_array(y, bg->type, nd, "y")))
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
int bind_parse_weights(PyObject *w, int64_t B, int64_t len, int batched, const char *name,
                         PyArrayObject **out)
{
    *out = NULL;
    if (w == Py_None) return 0;
    PyArrayObject *arr = bind_as_array(w, NPY_FLOAT64, batched ? 2 : 1, name);
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

int bind_potentials(PyObject *f0, PyObject *g0, int ndim, int64_t B, int64_t n, int64_t m,
                    PyArrayObject **fa, PyArrayObject **ga, int *warm)
{
    npy_intp fd[2] = {(npy_intp)B, (npy_intp)n}, gd[2] = {(npy_intp)B, (npy_intp)m};
    npy_intp *fdim = ndim == 2 ? fd : fd + 1, *gdim = ndim == 2 ? gd : gd + 1;
    *warm = 0;
    if (f0 == Py_None && g0 == Py_None) {
        *fa = (PyArrayObject *)PyArray_ZEROS(ndim, fdim, NPY_FLOAT64, 0);
        *ga = (PyArrayObject *)PyArray_ZEROS(ndim, gdim, NPY_FLOAT64, 0);
        return *fa && *ga ? 0 : -1;
    }
    if (f0 == Py_None || g0 == Py_None) {
        PyErr_SetString(PyExc_ValueError, "init: give both potentials f and g");
        return -1;
    }
    PyArrayObject *fi = bind_as_array(f0, NPY_FLOAT64, ndim, "init f");
    PyArrayObject *gi = fi ? bind_as_array(g0, NPY_FLOAT64, ndim, "init g") : NULL;
    if (!gi) {
        Py_XDECREF(fi);
        return -1;
    }
    int ok = 1;
    for (int k = 0; k < ndim; k++)
        ok = ok && PyArray_DIM(fi, k) == fdim[k] && PyArray_DIM(gi, k) == gdim[k];
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "init: potentials have the wrong shape");
        Py_DECREF(fi);
        Py_DECREF(gi);
        return -1;
    }
    *fa = (PyArrayObject *)PyArray_NewCopy(fi, NPY_CORDER);
    *ga = (PyArrayObject *)PyArray_NewCopy(gi, NPY_CORDER);
    Py_DECREF(fi);
    Py_DECREF(gi);
    if (!*fa || !*ga) return -1;
    *warm = 1;
    return 0;
}
