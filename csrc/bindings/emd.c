/* Bindings of emd.c: network simplex (single and batched), 1-D exact OT, sliced Wasserstein (see
 * bind.h for the conventions). */
#include "bind.h"

#include <math.h>
#include <string.h>

static PyArrayObject *new_array(int nd, npy_intp *dims, int type)
{
    return (PyArrayObject *)PyArray_SimpleNew(nd, dims, type);
}

/* emd(C, x, y, a, b, cost, p, lam, max_iter, block_size, init, mass_rtol, nthreads, callback):
 * C (B, n, m) or x (B, n, d), y (B, m, d); a (B, n), b (B, m) or None.  Returns a dict of
 * arrays with a leading batch axis; the triplets are padded to n + m - 1 (nnz gives the count). */
static PyObject *py_emd(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "x", "y", "a", "b", "cost", "p", "lam", "max_iter",
                             "block_size", "init", "mass_rtol", "nthreads", "callback", NULL};
    PyObject *C, *x, *y, *a, *b, *callback = Py_None;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 0.0, mass_rtol = 1e-8;
    long long max_iter = 0, block_size = 0;
    int init = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|sddLLidiO", kwlist, &C, &x, &y, &a, &b,
                                     &cost, &p, &lam, &max_iter, &block_size, &init, &mass_rtol,
                                     &nthreads, &callback))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    if (max_iter < 0 || block_size < 0 || init < 0 || init > 2 || !(mass_rtol >= 0.0)) {
        PyErr_SetString(PyExc_ValueError, "emd: invalid solver parameter");
        return NULL;
    }
    batch_geom bg;
    memset(&bg, 0, sizeof bg);
    PyArrayObject *aa = NULL, *ba = NULL, *Cd = NULL;
    PyArrayObject *rows = NULL, *cols = NULL, *vals = NULL, *fa = NULL, *ga = NULL;
    PyObject *result = NULL;
    monge_emd_info *infos = NULL;
    int *status = NULL;
    if (C != Py_None) { /* the network simplex reads a float64 dense cost */
        Cd = bind_as_array(C, NPY_FLOAT64, 3, "C");
        if (!Cd) return NULL;
        C = (PyObject *)Cd;
    }
    if (bind_batch_geom_parse(C, x, y, cost, p, lam, 1, &bg)) goto out;
    const int64_t B = bg.B, n = bg.n, m = bg.m, cap = n + m - 1;
    if (bind_parse_weights(a, B, n, 1, "a", &aa) || bind_parse_weights(b, B, m, 1, "b", &ba))
        goto out;
    npy_intp td[2] = {(npy_intp)B, (npy_intp)cap}, fd[2] = {(npy_intp)B, (npy_intp)n},
             gd[2] = {(npy_intp)B, (npy_intp)m};
    rows = new_array(2, td, NPY_INT64);
    cols = new_array(2, td, NPY_INT64);
    vals = (PyArrayObject *)PyArray_ZEROS(2, td, NPY_FLOAT64, 0);
    fa = new_array(2, fd, NPY_FLOAT64);
    ga = new_array(2, gd, NPY_FLOAT64);
    infos = (monge_emd_info *)PyMem_Calloc((size_t)B, sizeof *infos);
    status = (int *)PyMem_Calloc((size_t)B, sizeof *status);
    if (!rows || !cols || !vals || !fa || !ga || !infos || !status) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto out;
    }
    monge_emd_params par;
    monge_emd_params_init(&par);
    par.max_iter = max_iter;
    par.block_size = block_size;
    par.init = init;
    par.mass_rtol = mass_rtol;
    par.nthreads = nthreads;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_emd_batch(B, bg.geoms, aa ? (const double *)PyArray_DATA(aa) : NULL,
                         ba ? (const double *)PyArray_DATA(ba) : NULL, &par,
                         (int64_t *)PyArray_DATA(rows), (int64_t *)PyArray_DATA(cols),
                         (double *)PyArray_DATA(vals), (double *)PyArray_DATA(fa),
                         (double *)PyArray_DATA(ga), infos, status);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st == MONGE_EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "emd: invalid problem (weights must be non-negative and finite with "
                        "positive, equal masses up to mass_rtol; costs finite)");
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR) {
        bind_raise_status(st, "emd");
        goto out;
    }
    {
        npy_intp bd[1] = {(npy_intp)B};
        PyArrayObject *cst = new_array(1, bd, NPY_FLOAT64), *dual = new_array(1, bd, NPY_FLOAT64);
        PyArrayObject *nit = new_array(1, bd, NPY_INT64), *nnz = new_array(1, bd, NPY_INT64);
        PyArrayObject *cvg = new_array(1, bd, NPY_BOOL);
        if (cst && dual && nit && nnz && cvg) {
            for (int64_t k = 0; k < B; k++) {
                ((double *)PyArray_DATA(cst))[k] = infos[k].cost;
                ((double *)PyArray_DATA(dual))[k] = infos[k].dual;
                ((int64_t *)PyArray_DATA(nit))[k] = infos[k].n_iter;
                ((int64_t *)PyArray_DATA(nnz))[k] = infos[k].nnz;
                ((npy_bool *)PyArray_DATA(cvg))[k] = (npy_bool)(status[k] == MONGE_OK);
            }
            result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:N,s:N,s:N,s:N,s:N,s:O}", "rows", rows,
                                   "cols", cols, "vals", vals, "f", fa, "g", ga, "cost", cst,
                                   "dual", dual, "n_iter", nit, "nnz", nnz, "converged", cvg,
                                   "stopped", pctx.user_stop ? Py_True : Py_False);
        } else {
            Py_XDECREF(cst);
            Py_XDECREF(dual);
            Py_XDECREF(nit);
            Py_XDECREF(nnz);
            Py_XDECREF(cvg);
        }
    }
out:
    bind_batch_geom_free(&bg);
    Py_XDECREF(Cd);
    Py_XDECREF(aa);
    Py_XDECREF(ba);
    Py_XDECREF(rows);
    Py_XDECREF(cols);
    Py_XDECREF(vals);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    PyMem_Free(infos);
    PyMem_Free(status);
    return result;
}

/* Optional 1-D float64 weights of length len (None: uniform). */
static int weights_1d(PyObject *w, int64_t len, const char *name, PyArrayObject **out)
{
    return bind_parse_weights(w, 1, len, 0, name, out);
}

/* emd_1d(x, y, a, b, p, mass_rtol, plan) -> {"cost", and with plan "rows", "cols", "vals"} */
static PyObject *py_emd_1d(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "p", "mass_rtol", "plan", NULL};
    PyObject *x, *y, *a, *b;
    double p = 2.0, mass_rtol = 1e-8;
    int want_plan = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|ddp", kwlist, &x, &y, &a, &b, &p, &mass_rtol,
                                     &want_plan))
        return NULL;
    PyArrayObject *xa = NULL, *ya = NULL, *aa = NULL, *ba = NULL, *rows = NULL, *cols = NULL,
                  *vals = NULL;
    PyObject *result = NULL;
    if (!(xa = bind_as_array(x, NPY_FLOAT64, 1, "x")) || !(ya = bind_as_array(y, NPY_FLOAT64, 1, "y")))
        goto out;
    const int64_t n = PyArray_DIM(xa, 0), m = PyArray_DIM(ya, 0);
    if (n < 1 || m < 1) {
        PyErr_SetString(PyExc_ValueError, "x, y: empty samples");
        goto out;
    }
    if (weights_1d(a, n, "a", &aa) || weights_1d(b, m, "b", &ba)) goto out;
    int64_t *rp = NULL, *cp = NULL;
    double *vp = NULL;
    if (want_plan) {
        npy_intp td[1] = {(npy_intp)(n + m - 1)};
        rows = new_array(1, td, NPY_INT64);
        cols = new_array(1, td, NPY_INT64);
        vals = new_array(1, td, NPY_FLOAT64);
        if (!rows || !cols || !vals) goto out;
        rp = (int64_t *)PyArray_DATA(rows);
        cp = (int64_t *)PyArray_DATA(cols);
        vp = (double *)PyArray_DATA(vals);
    }
    int64_t nnz = 0;
    double cost = 0.0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_emd_1d(n, m, (const double *)PyArray_DATA(xa), (const double *)PyArray_DATA(ya),
                      aa ? (const double *)PyArray_DATA(aa) : NULL,
                      ba ? (const double *)PyArray_DATA(ba) : NULL, p, mass_rtol, rp, cp, vp,
                      &nnz, &cost);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "emd_1d: invalid problem (p >= 1; weights non-negative and finite with "
                        "positive, equal masses up to mass_rtol)");
        goto out;
    }
    if (st) {
        bind_raise_status(st, "emd_1d");
        goto out;
    }
    if (want_plan)
        result = Py_BuildValue("{s:d,s:O,s:O,s:O,s:L}", "cost", cost, "rows", rows, "cols", cols,
                               "vals", vals, "nnz", (long long)nnz);
    else result = Py_BuildValue("{s:d}", "cost", cost);
out:
    Py_XDECREF(xa);
    Py_XDECREF(ya);
    Py_XDECREF(aa);
    Py_XDECREF(ba);
    Py_XDECREF(rows);
    Py_XDECREF(cols);
    Py_XDECREF(vals);
    return result;
}

/* sliced(x, y, a, b, theta, p, mass_rtol, grad, nthreads) -> {"w": (P,), "grad": (n, d) or None} */
static PyObject *py_sliced(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"x", "y", "a", "b", "theta", "p", "mass_rtol", "grad", "nthreads",
                             NULL};
    PyObject *x, *y, *a, *b, *theta;
    double p = 2.0, mass_rtol = 1e-8;
    int want_grad = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|ddpi", kwlist, &x, &y, &a, &b, &theta, &p,
                                     &mass_rtol, &want_grad, &nthreads))
        return NULL;
    PyArrayObject *xa = NULL, *ya = NULL, *ta = NULL, *aa = NULL, *ba = NULL, *wv = NULL,
                  *ga = NULL;
    PyObject *result = NULL;
    if (!(xa = bind_as_array(x, NPY_FLOAT64, 2, "x")) ||
        !(ya = bind_as_array(y, NPY_FLOAT64, 2, "y")) ||
        !(ta = bind_as_array(theta, NPY_FLOAT64, 2, "theta")))
        goto out;
    const int64_t n = PyArray_DIM(xa, 0), m = PyArray_DIM(ya, 0), d = PyArray_DIM(xa, 1),
                  P = PyArray_DIM(ta, 0);
    if (PyArray_DIM(ya, 1) != d || PyArray_DIM(ta, 1) != d) {
        PyErr_SetString(PyExc_ValueError, "x, y, theta: dimensions do not match");
        goto out;
    }
    if (n < 1 || m < 1 || d < 1 || P < 1) {
        PyErr_SetString(PyExc_ValueError, "x, y, theta: empty input");
        goto out;
    }
    if (weights_1d(a, n, "a", &aa) || weights_1d(b, m, "b", &ba)) goto out;
    npy_intp pd[1] = {(npy_intp)P}, gd[2] = {(npy_intp)n, (npy_intp)d};
    wv = new_array(1, pd, NPY_FLOAT64);
    if (!wv) goto out;
    if (want_grad && !(ga = new_array(2, gd, NPY_FLOAT64))) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_sliced(n, m, d, (const double *)PyArray_DATA(xa), (const double *)PyArray_DATA(ya),
                      aa ? (const double *)PyArray_DATA(aa) : NULL,
                      ba ? (const double *)PyArray_DATA(ba) : NULL, P,
                      (const double *)PyArray_DATA(ta), p, mass_rtol, (double *)PyArray_DATA(wv),
                      ga ? (double *)PyArray_DATA(ga) : NULL, nthreads);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "sliced_wasserstein: invalid problem (p >= 1; finite directions; weights "
                        "non-negative with positive, equal masses up to mass_rtol)");
        goto out;
    }
    if (st) {
        bind_raise_status(st, "sliced_wasserstein");
        goto out;
    }
    result = Py_BuildValue("{s:O,s:O}", "w", wv, "grad", ga ? (PyObject *)ga : Py_None);
out:
    Py_XDECREF(xa);
    Py_XDECREF(ya);
    Py_XDECREF(ta);
    Py_XDECREF(aa);
    Py_XDECREF(ba);
    Py_XDECREF(wv);
    Py_XDECREF(ga);
    return result;
}

PyMethodDef monge_bind_emd_methods[] = {
    {"emd", BIND_KW(py_emd), METH_VARARGS | METH_KEYWORDS,
     "Batched network simplex (private; use monge.emd)."},
    {"emd_1d", BIND_KW(py_emd_1d), METH_VARARGS | METH_KEYWORDS,
     "Exact 1-D OT (private; use monge.emd_1d)."},
    {"sliced", BIND_KW(py_sliced), METH_VARARGS | METH_KEYWORDS,
     "Sliced Wasserstein per direction, with gradient (private)."},
    {NULL, NULL, 0, NULL}};
