/* Bindings of align.c: batched masked token alignment (Sinkhorn / IPOT on a cosine cost). */
#include "bind.h"

#include <math.h>
#include <string.h>

/* align(X (B, n, d), Y (B, m, d), mask_x (B, n) or None, mask_y (B, m) or None, method, eps, tol,
 *       max_iter, beta, outer, inner, weight (B,) or None, plan, grad_x, grad_y, nthreads)
 * -> {"dist", "error", "n_iter", "converged", "plan", "grad_x", "grad_y"} */
static PyObject *py_align(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"X", "Y", "mask_x", "mask_y", "method", "eps", "tol", "max_iter",
                             "beta", "outer", "inner", "weight", "plan", "grad_x", "grad_y",
                             "nthreads", NULL};
    PyObject *X, *Y, *mx = Py_None, *my = Py_None, *wt = Py_None;
    int method = 0, want_plan = 1, want_gx = 0, want_gy = 0, nthreads = 0;
    double eps = 0.1, tol = 1e-6, beta = 0.5;
    long long max_iter = 1000, outer = 50, inner = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOiddLdLLOpppi", kwlist, &X, &Y, &mx, &my,
                                     &method, &eps, &tol, &max_iter, &beta, &outer, &inner, &wt,
                                     &want_plan, &want_gx, &want_gy, &nthreads))
        return NULL;
    PyArrayObject *xa = NULL, *ya = NULL, *mxa = NULL, *mya = NULL, *wa = NULL, *Pa = NULL,
                  *da = NULL, *ea = NULL, *ia = NULL, *gxa = NULL, *gya = NULL;
    PyObject *result = NULL;
    if (!(xa = bind_as_array(X, NPY_FLOAT64, 3, "X")) || !(ya = bind_as_array(Y, NPY_FLOAT64, 3, "Y")))
        goto out;
    const int64_t B = PyArray_DIM(xa, 0), n = PyArray_DIM(xa, 1), d = PyArray_DIM(xa, 2),
                  m = PyArray_DIM(ya, 1);
    if (PyArray_DIM(ya, 0) != B || PyArray_DIM(ya, 2) != d || B < 1 || n < 1 || m < 1 || d < 1) {
        PyErr_SetString(PyExc_ValueError, "X, Y: shapes (B, n, d) and (B, m, d) do not match");
        goto out;
    }
    if (mx != Py_None) {
        if (!(mxa = bind_as_array(mx, NPY_UINT8, 2, "mask_x"))) goto out;
        if (PyArray_DIM(mxa, 0) != B || PyArray_DIM(mxa, 1) != n) {
            PyErr_SetString(PyExc_ValueError, "mask_x: expected shape (B, n)");
            goto out;
        }
    }
    if (my != Py_None) {
        if (!(mya = bind_as_array(my, NPY_UINT8, 2, "mask_y"))) goto out;
        if (PyArray_DIM(mya, 0) != B || PyArray_DIM(mya, 1) != m) {
            PyErr_SetString(PyExc_ValueError, "mask_y: expected shape (B, m)");
            goto out;
        }
    }
    if (want_gx || want_gy) {
        if (wt == Py_None) {
            PyErr_SetString(PyExc_ValueError, "weight: required with gradients");
            goto out;
        }
        if (!(wa = bind_as_array(wt, NPY_FLOAT64, 1, "weight"))) goto out;
        if (PyArray_DIM(wa, 0) != B) {
            PyErr_SetString(PyExc_ValueError, "weight: expected B entries");
            goto out;
        }
    }
    npy_intp bd[1] = {(npy_intp)B}, pd[3] = {(npy_intp)B, (npy_intp)n, (npy_intp)m},
             gxd[3] = {(npy_intp)B, (npy_intp)n, (npy_intp)d},
             gyd[3] = {(npy_intp)B, (npy_intp)m, (npy_intp)d};
    da = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
    ea = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
    ia = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_INT64);
    if (!da || !ea || !ia) goto out;
    if (want_plan && !(Pa = (PyArrayObject *)PyArray_SimpleNew(3, pd, NPY_FLOAT64))) goto out;
    if (want_gx && !(gxa = (PyArrayObject *)PyArray_SimpleNew(3, gxd, NPY_FLOAT64))) goto out;
    if (want_gy && !(gya = (PyArrayObject *)PyArray_SimpleNew(3, gyd, NPY_FLOAT64))) goto out;
    monge_align_params par;
    monge_align_params_init(&par);
    par.method = method == 1 ? MONGE_ALIGN_IPOT : MONGE_ALIGN_SINKHORN;
    if (method != 0 && method != 1) {
        PyErr_SetString(PyExc_ValueError, "method: 0 (sinkhorn) or 1 (ipot)");
        goto out;
    }
    par.eps = eps;
    par.tol = tol;
    par.max_iter = max_iter;
    par.beta = beta;
    par.outer = outer;
    par.inner = inner;
    par.nthreads = nthreads;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_align(B, n, m, d, (const double *)PyArray_DATA(xa), (const double *)PyArray_DATA(ya),
                     mxa ? (const uint8_t *)PyArray_DATA(mxa) : NULL,
                     mya ? (const uint8_t *)PyArray_DATA(mya) : NULL, &par,
                     Pa ? (double *)PyArray_DATA(Pa) : NULL, (double *)PyArray_DATA(da),
                     (double *)PyArray_DATA(ea), (int64_t *)PyArray_DATA(ia),
                     wa ? (const double *)PyArray_DATA(wa) : NULL,
                     gxa ? (double *)PyArray_DATA(gxa) : NULL, gya ? (double *)PyArray_DATA(gya) : NULL);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "align: invalid input (each pair needs a valid row and column; valid "
                        "vectors must be non-zero; parameters positive)");
        goto out;
    }
    if (st == MONGE_ENONFINITE) {
        PyErr_SetString(PyExc_ValueError, "X, Y: contain NaN or infinity");
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV) {
        bind_raise_status(st, "align");
        goto out;
    }
    result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "dist", da, "error", ea, "n_iter", ia,
                           "unconverged", st == MONGE_ENOCONV ? Py_True : Py_False, "plan",
                           Pa ? (PyObject *)Pa : Py_None, "grad_x", gxa ? (PyObject *)gxa : Py_None,
                           "grad_y", gya ? (PyObject *)gya : Py_None);
out:
    Py_XDECREF(xa);
    Py_XDECREF(ya);
    Py_XDECREF(mxa);
    Py_XDECREF(mya);
    Py_XDECREF(wa);
    Py_XDECREF(Pa);
    Py_XDECREF(da);
    Py_XDECREF(ea);
    Py_XDECREF(ia);
    Py_XDECREF(gxa);
    Py_XDECREF(gya);
    return result;
}

PyMethodDef monge_bind_align_methods[] = {
    {"align", BIND_KW(py_align), METH_VARARGS | METH_KEYWORDS,
     "Batched masked token alignment (private; use monge.align)."},
    {NULL, NULL, 0, NULL}};
