/* Bindings of ctc.c: the CTC loss per sample, with its gradient (see bind.h). */
#include "bind.h"

#include <math.h>
#include <string.h>

/* ctc(log_probs (T, N, C) float32/64, targets (K,) int64 concatenated, offsets (N,),
 *     input_lengths (N,), target_lengths (N,), blank, zero_infinity, mode (0 none, 1 log_probs,
 *     2 logits), weight (N,) float64 or None, nthreads) -> {"loss": (N,), "grad": (T, N, C) or None} */
static PyObject *py_ctc(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"log_probs", "targets", "offsets", "input_lengths", "target_lengths",
                             "blank", "zero_infinity", "mode", "weight", "nthreads", NULL};
    PyObject *lp, *tg, *off, *il, *tl, *wt = Py_None;
    long long blank = 0;
    int zero_inf = 0, mode = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|LpiOi", kwlist, &lp, &tg, &off, &il, &tl,
                                     &blank, &zero_inf, &mode, &wt, &nthreads))
        return NULL;
    if (mode < 0 || mode > 2) {
        PyErr_SetString(PyExc_ValueError, "mode: must be 0, 1 or 2");
        return NULL;
    }
    PyArrayObject *lpa = NULL, *tga = NULL, *offa = NULL, *ila = NULL, *tla = NULL, *wa = NULL,
                  *loss = NULL, *grad = NULL;
    PyObject *result = NULL;
    int type = (PyArray_Check(lp) && PyArray_TYPE((PyArrayObject *)lp) == NPY_FLOAT32)
                   ? NPY_FLOAT32
                   : NPY_FLOAT64;
    if (!(lpa = bind_as_array(lp, type, 3, "log_probs")) ||
        !(tga = bind_as_array(tg, NPY_INT64, 1, "targets")) ||
        !(offa = bind_as_array(off, NPY_INT64, 1, "offsets")) ||
        !(ila = bind_as_array(il, NPY_INT64, 1, "input_lengths")) ||
        !(tla = bind_as_array(tl, NPY_INT64, 1, "target_lengths")))
        goto out;
    const int64_t T = PyArray_DIM(lpa, 0), N = PyArray_DIM(lpa, 1), C = PyArray_DIM(lpa, 2);
    if (PyArray_DIM(offa, 0) != N || PyArray_DIM(ila, 0) != N || PyArray_DIM(tla, 0) != N) {
        PyErr_SetString(PyExc_ValueError, "offsets, input_lengths, target_lengths: need N entries");
        goto out;
    }
    const int64_t K = PyArray_DIM(tga, 0);
    const int64_t *offs = (const int64_t *)PyArray_DATA(offa), *tls = (const int64_t *)PyArray_DATA(tla);
    for (int64_t n = 0; n < N; n++)
        if (offs[n] < 0 || tls[n] < 0 || offs[n] + tls[n] > K) {
            PyErr_SetString(PyExc_ValueError, "targets: offsets and lengths run past the labels");
            goto out;
        }
    if (mode) {
        if (wt == Py_None) {
            PyErr_SetString(PyExc_ValueError, "weight: required with a gradient");
            goto out;
        }
        if (!(wa = bind_as_array(wt, NPY_FLOAT64, 1, "weight"))) goto out;
        if (PyArray_DIM(wa, 0) != N) {
            PyErr_SetString(PyExc_ValueError, "weight: need N entries");
            goto out;
        }
        npy_intp gd[3] = {(npy_intp)T, (npy_intp)N, (npy_intp)C};
        if (!(grad = (PyArrayObject *)PyArray_SimpleNew(3, gd, type))) goto out;
    }
    npy_intp nd[1] = {(npy_intp)N};
    if (!(loss = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64))) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_ctc(T, N, C, type == NPY_FLOAT32 ? MONGE_F32 : MONGE_F64, PyArray_DATA(lpa),
                   (const int64_t *)PyArray_DATA(tga), offs, (const int64_t *)PyArray_DATA(ila),
                   tls, blank, zero_inf, (monge_ctc_grad)mode,
                   wa ? (const double *)PyArray_DATA(wa) : NULL, (double *)PyArray_DATA(loss),
                   grad ? PyArray_DATA(grad) : NULL, nthreads);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINVAL) {
        PyErr_SetString(PyExc_ValueError,
                        "ctc_loss: invalid input (lengths in range, labels in [0, C) and not blank)");
        goto out;
    }
    if (st == MONGE_ENONFINITE) {
        PyErr_SetString(PyExc_ValueError, "log_probs: contains NaN or +inf, or values so large that "
                                         "the loss overflows (log-probabilities are <= 0)");
        goto out;
    }
    if (st) {
        bind_raise_status(st, "ctc_loss");
        goto out;
    }
    result = Py_BuildValue("{s:O,s:O}", "loss", loss, "grad", grad ? (PyObject *)grad : Py_None);
out:
    Py_XDECREF(lpa);
    Py_XDECREF(tga);
    Py_XDECREF(offa);
    Py_XDECREF(ila);
    Py_XDECREF(tla);
    Py_XDECREF(wa);
    Py_XDECREF(loss);
    Py_XDECREF(grad);
    return result;
}

PyMethodDef monge_bind_ctc_methods[] = {
    {"ctc", BIND_KW(py_ctc), METH_VARARGS | METH_KEYWORDS,
     "CTC negative log-likelihood per sample, with gradient (private; use monge.ctc_loss)."},
    {NULL, NULL, 0, NULL}};
