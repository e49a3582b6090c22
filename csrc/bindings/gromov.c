/* Bindings of gromov.c: Gromov–Wasserstein and fused Gromov–Wasserstein between two spaces. */
#include "bind.h"

#include <string.h>

/* The solver's progress: outer iterations go to the Python callback, the inner solves' calls
 * (iter -1) only check for Ctrl-C. */
static int gw_progress(void *vctx, int64_t iter, double err)
{
    progress_ctx *pc = vctx;
    if (iter >= 0) return bind_progress_cb(pc, iter, err);
    PyObject *cb = pc->callback;
    pc->callback = NULL;
    const int r = bind_progress_cb(pc, iter, err);
    pc->callback = cb;
    return r;
}

/* gromov(C1 (n, n), C2 (m, m), p (n,) or None, q (m,) or None, M (n, m) or None, alpha, loss,
 *        solver, eps, tol, tol_abs, max_iter, inner_tol, inner_max_iter, T0 (n, m) or None,
 *        grad, nthreads, callback, damping, eps_scaling, eps_start, scaling_factor,
 *        x (n, dx) or None, y (m, dy) or None)
 * With x and y (C1, C2 then None) the spaces are point clouds with squared Euclidean distances,
 * solved through the distances' low-rank factors (monge_gromov_points).
 * -> {"T", "f", "g", "grad_C1", "grad_C2" (None unless grad; with x, y: dF/dx, dF/dy), "value",
 *     "gw", "linear", "delta",
 *     "error", "fw_gap", "eps", "n_iter", "inner_iter", "converged", "stopped"} */
static PyObject *py_gromov(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C1", "C2", "p", "q", "M", "alpha", "loss", "solver", "eps", "tol",
                             "tol_abs", "max_iter", "inner_tol", "inner_max_iter", "T0", "grad",
                             "nthreads", "callback", "damping", "eps_scaling", "eps_start",
                             "scaling_factor", "x", "y", "semirelaxed", NULL};
    PyObject *C1o, *C2o, *po = Py_None, *qo = Py_None, *Mo = Py_None, *T0 = Py_None,
                         *callback = Py_None, *xo = Py_None, *yo = Py_None;
    const char *loss = "square", *solver = "cg";
    double alpha = 0.5, eps = 0.1, tol = 1e-9, tol_abs = 1e-9, inner_tol = 1e-9, damping = -1.0,
           eps_start = 0.0, scaling_factor = 0.5;
    int eps_scaling = 0;
    long long max_iter = 1000, inner_max_iter = 0;
    int grad = 0, nthreads = 0, semirelaxed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOdssdddLdLOpiOdpddOOp", kwlist, &C1o, &C2o,
                                     &po, &qo, &Mo, &alpha, &loss, &solver, &eps, &tol, &tol_abs,
                                     &max_iter, &inner_tol, &inner_max_iter, &T0, &grad,
                                     &nthreads, &callback, &damping, &eps_scaling, &eps_start,
                                     &scaling_factor, &xo, &yo, &semirelaxed))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    monge_gw_params par;
    monge_gw_params_init(&par);
    par.semirelaxed = semirelaxed;
    if (!strcmp(loss, "square"))
        par.loss = MONGE_GW_SQUARE;
    else if (!strcmp(loss, "kl"))
        par.loss = MONGE_GW_KL;
    else {
        PyErr_SetString(PyExc_ValueError, "loss: expected 'square' or 'kl'");
        return NULL;
    }
    if (!strcmp(solver, "cg"))
        par.solver = MONGE_GW_CG;
    else if (!strcmp(solver, "entropic"))
        par.solver = MONGE_GW_ENTROPIC;
    else {
        PyErr_SetString(PyExc_ValueError, "method: expected 'cg' or 'entropic'");
        return NULL;
    }
    PyArrayObject *C1a = NULL, *C2a = NULL, *pa = NULL, *qa = NULL, *Ma = NULL, *Ta = NULL,
                  *fa = NULL, *ga = NULL, *g1 = NULL, *g2 = NULL, *T0a = NULL, *xa = NULL,
                  *ya = NULL;
    PyObject *result = NULL;
    const int points = xo != Py_None || yo != Py_None;
    int64_t n, m;
    if (points) { /* point clouds: C1o, C2o are ignored (None) */
        if (!(xa = bind_as_array(xo, NPY_FLOAT64, 2, "x")) ||
            !(ya = bind_as_array(yo, NPY_FLOAT64, 2, "y")))
            goto out;
        n = PyArray_DIM(xa, 0);
        m = PyArray_DIM(ya, 0);
        if (n < 1 || m < 1 || PyArray_DIM(xa, 1) < 1 || PyArray_DIM(ya, 1) < 1 ||
            PyArray_DIM(xa, 1) > 16 || PyArray_DIM(ya, 1) > 16) {
            PyErr_SetString(PyExc_ValueError, "x, y: expected non-empty clouds of dimension <= 16");
            goto out;
        }
    } else {
        if (!(C1a = bind_as_array(C1o, NPY_FLOAT64, 2, "C1")) ||
            !(C2a = bind_as_array(C2o, NPY_FLOAT64, 2, "C2")))
            goto out;
        n = PyArray_DIM(C1a, 0);
        m = PyArray_DIM(C2a, 0);
        if (n < 1 || m < 1 || PyArray_DIM(C1a, 1) != n || PyArray_DIM(C2a, 1) != m) {
            PyErr_SetString(PyExc_ValueError, "C1, C2: expected non-empty square matrices");
            goto out;
        }
    }
    if (bind_parse_weights(po, 1, n, 0, "p", &pa) || bind_parse_weights(qo, 1, m, 0, "q", &qa))
        goto out;
    if (Mo != Py_None) {
        if (!(Ma = bind_as_array(Mo, NPY_FLOAT64, 2, "M"))) goto out;
        if (PyArray_DIM(Ma, 0) != n || PyArray_DIM(Ma, 1) != m) {
            PyErr_SetString(PyExc_ValueError, "M: expected shape (n, m) of C1 and C2");
            goto out;
        }
    }
    npy_intp td[2] = {(npy_intp)n, (npy_intp)m}, nd[1] = {(npy_intp)n}, md[1] = {(npy_intp)m},
             n2[2] = {(npy_intp)n, (npy_intp)n}, m2[2] = {(npy_intp)m, (npy_intp)m};
    if (T0 != Py_None) {
        if (!(T0a = bind_as_array(T0, NPY_FLOAT64, 2, "init"))) goto out;
        if (PyArray_DIM(T0a, 0) != n || PyArray_DIM(T0a, 1) != m) {
            PyErr_SetString(PyExc_ValueError, "init: expected shape (n, m) of C1 and C2");
            goto out;
        }
        Ta = (PyArrayObject *)PyArray_NewCopy(T0a, NPY_CORDER);
        par.warm_start = 1;
    } else {
        Ta = (PyArrayObject *)PyArray_SimpleNew(2, td, NPY_FLOAT64);
    }
    fa = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    ga = (PyArrayObject *)PyArray_SimpleNew(1, md, NPY_FLOAT64);
    if (!Ta || !fa || !ga) goto out;
    if (grad) { /* dF/dC1, dF/dC2, or dF/dx, dF/dy for point clouds */
        if (points) {
            npy_intp xd[2] = {(npy_intp)n, PyArray_DIM(xa, 1)}, yd[2] = {(npy_intp)m,
                                                                          PyArray_DIM(ya, 1)};
            g1 = (PyArrayObject *)PyArray_SimpleNew(2, xd, NPY_FLOAT64);
            g2 = (PyArrayObject *)PyArray_SimpleNew(2, yd, NPY_FLOAT64);
        } else {
            g1 = (PyArrayObject *)PyArray_SimpleNew(2, n2, NPY_FLOAT64);
            g2 = (PyArrayObject *)PyArray_SimpleNew(2, m2, NPY_FLOAT64);
        }
        if (!g1 || !g2) goto out;
    }
    par.alpha = alpha;
    par.eps = eps;
    par.tol = tol;
    par.tol_abs = tol_abs;
    par.max_iter = max_iter;
    par.inner_tol = inner_tol;
    par.inner_max_iter = inner_max_iter;
    par.nthreads = nthreads;
    par.damping = damping;
    par.eps_scaling = eps_scaling;
    par.eps_start = eps_start;
    par.scaling_factor = scaling_factor;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = gw_progress;
    par.progress_ctx = &pctx;
    monge_gw_info info;
    memset(&info, 0, sizeof info);
    int st;
    Py_BEGIN_ALLOW_THREADS
    if (points)
        st = monge_gromov_points(n, m, PyArray_DIM(xa, 1), PyArray_DIM(ya, 1),
                                 (const double *)PyArray_DATA(xa), (const double *)PyArray_DATA(ya),
                                 pa ? (const double *)PyArray_DATA(pa) : NULL,
                                 qa ? (const double *)PyArray_DATA(qa) : NULL,
                                 Ma ? (const double *)PyArray_DATA(Ma) : NULL, &par,
                                 (double *)PyArray_DATA(Ta), (double *)PyArray_DATA(fa),
                                 (double *)PyArray_DATA(ga),
                                 g1 ? (double *)PyArray_DATA(g1) : NULL,
                                 g2 ? (double *)PyArray_DATA(g2) : NULL, &info);
    else
        st = monge_gromov(n, m, (const double *)PyArray_DATA(C1a),
                          (const double *)PyArray_DATA(C2a),
                          pa ? (const double *)PyArray_DATA(pa) : NULL,
                          qa ? (const double *)PyArray_DATA(qa) : NULL,
                          Ma ? (const double *)PyArray_DATA(Ma) : NULL, &par,
                          (double *)PyArray_DATA(Ta), (double *)PyArray_DATA(fa),
                          (double *)PyArray_DATA(ga), g1 ? (double *)PyArray_DATA(g1) : NULL,
                          g2 ? (double *)PyArray_DATA(g2) : NULL, &info);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR) {
        bind_raise_status(st, "gromov_wasserstein");
        goto out;
    }
    result = Py_BuildValue(
        "{s:O,s:O,s:O,s:O,s:O,s:d,s:d,s:d,s:d,s:d,s:d,s:d,s:L,s:L,s:O,s:O}", "T", Ta, "f", fa, "g", ga,
        "grad_C1", g1 ? (PyObject *)g1 : Py_None, "grad_C2", g2 ? (PyObject *)g2 : Py_None,
        "value", info.value, "gw", info.gw, "linear", info.linear, "delta", info.delta, "error",
        info.error, "fw_gap", info.fw_gap, "eps", info.eps, "n_iter", (long long)info.n_iter, "inner_iter",
        (long long)info.inner_iter, "converged", info.converged ? Py_True : Py_False, "stopped",
        st == MONGE_EINTR ? Py_True : Py_False);
out:
    Py_XDECREF(C1a);
    Py_XDECREF(C2a);
    Py_XDECREF(xa);
    Py_XDECREF(ya);
    Py_XDECREF(pa);
    Py_XDECREF(qa);
    Py_XDECREF(Ma);
    Py_XDECREF(T0a);
    Py_XDECREF(Ta);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(g1);
    Py_XDECREF(g2);
    return result;
}

PyMethodDef monge_bind_gromov_methods[] = {
    {"gromov", BIND_KW(py_gromov), METH_VARARGS | METH_KEYWORDS,
     "Gromov-Wasserstein and fused Gromov-Wasserstein (private: use monge.gromov_wasserstein)."},
    {NULL, NULL, 0, NULL}};
