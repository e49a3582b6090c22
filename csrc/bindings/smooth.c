/* Bindings of smooth_ot.c (quadratic and k-sparse OT by L-BFGS): solve, objective with gradient,
 * plan from potentials (see bind.h for the conventions).  Dense float64 costs only. */
#include "bind.h"

#include <math.h>
#include <string.h>

/* C (n, m) float64, a (n) / b (m) or None; fills the problem. */
typedef struct {
    PyArrayObject *C, *a, *b;
    monge_geometry geom;
    monge_problem pb;
    int64_t n, m;
} sot_args;

static void sot_args_free(sot_args *s)
{
    Py_XDECREF(s->C);
    Py_XDECREF(s->a);
    Py_XDECREF(s->b);
}

static int sot_args_parse(PyObject *C, PyObject *a, PyObject *b, sot_args *s)
{
    memset(s, 0, sizeof *s);
    if (!(s->C = bind_as_array(C, NPY_FLOAT64, 2, "C"))) return -1;
    s->n = PyArray_DIM(s->C, 0);
    s->m = PyArray_DIM(s->C, 1);
    if (s->n < 1 || s->m < 1) {
        PyErr_SetString(PyExc_ValueError, "C: empty cost matrix");
        return -1;
    }
    if (bind_parse_weights(a, 1, s->n, 0, "a", &s->a) || bind_parse_weights(b, 1, s->m, 0, "b", &s->b))
        return -1;
    s->geom.n = s->n;
    s->geom.m = s->m;
    s->geom.dtype = MONGE_F64;
    s->geom.C = PyArray_DATA(s->C);
    s->pb.geom = &s->geom;
    s->pb.a = s->a ? (const double *)PyArray_DATA(s->a) : NULL;
    s->pb.b = s->b ? (const double *)PyArray_DATA(s->b) : NULL;
    s->pb.tau_a = s->pb.tau_b = INFINITY;
    return 0;
}

static int parse_form(const char *f, int *out)
{
    if (!strcmp(f, "semi_dual")) *out = MONGE_SMOOTH_SEMI_DUAL;
    else if (!strcmp(f, "dual")) *out = MONGE_SMOOTH_DUAL;
    else {
        PyErr_Format(PyExc_ValueError, "formulation: unknown '%s' (expected semi_dual or dual)", f);
        return -1;
    }
    return 0;
}

/* A 1-D float64 potential of length len (copied), or NULL + ValueError. */
static PyArrayObject *potential(PyObject *obj, int64_t len, const char *name)
{
    PyArrayObject *arr = bind_as_array(obj, NPY_FLOAT64, 1, name);
    if (!arr) return NULL;
    if (PyArray_DIM(arr, 0) != len) {
        PyErr_Format(PyExc_ValueError, "%s: expected length %lld", name, (long long)len);
        Py_DECREF(arr);
        return NULL;
    }
    PyArrayObject *cp = (PyArrayObject *)PyArray_NewCopy(arr, NPY_CORDER);
    Py_DECREF(arr);
    return cp;
}

/* The plan as (indptr, indices, data) numpy arrays; NULL + exception on failure. */
static PyObject *plan_tuple(const monge_problem *pb, const monge_smooth_params *par,
                            const double *alpha, const double *beta, int64_t m)
{
    npy_intp pd[1] = {(npy_intp)(m + 1)};
    PyArrayObject *ip = (PyArrayObject *)PyArray_SimpleNew(1, pd, NPY_INT64);
    if (!ip) return NULL;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_smooth_ot_plan(pb, par, alpha, beta, (int64_t *)PyArray_DATA(ip), NULL, NULL);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(ip);
        return bind_raise_status(st, "plan");
    }
    npy_intp nd[1] = {(npy_intp)((int64_t *)PyArray_DATA(ip))[m]};
    PyArrayObject *ix = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_INT64);
    PyArrayObject *dt = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    if (!ix || !dt) {
        Py_DECREF(ip);
        Py_XDECREF(ix);
        Py_XDECREF(dt);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    st = monge_smooth_ot_plan(pb, par, alpha, beta, (int64_t *)PyArray_DATA(ip),
                              (int64_t *)PyArray_DATA(ix), (double *)PyArray_DATA(dt));
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(ip);
        Py_DECREF(ix);
        Py_DECREF(dt);
        return bind_raise_status(st, "plan");
    }
    return Py_BuildValue("(NNN)", ip, ix, dt);
}

static PyObject *py_smooth_ot(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"C", "a", "b", "gamma", "k", "formulation", "tol", "ftol",
                             "max_iter", "memory", "alpha0", "beta0", "nthreads", "callback",
                             NULL};
    PyObject *C, *a, *b, *alpha0 = Py_None, *beta0 = Py_None, *callback = Py_None;
    double gamma, tol = 1e-6, ftol = 1e-14;
    long long k = 0, max_iter = 1000;
    const char *form = "semi_dual";
    int memory = 10, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOd|LsddLiOOiO", kwlist, &C, &a, &b, &gamma, &k,
                                     &form, &tol, &ftol, &max_iter, &memory, &alpha0, &beta0,
                                     &nthreads, &callback))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    sot_args s;
    PyArrayObject *al = NULL, *be = NULL;
    PyObject *result = NULL, *plan = NULL;
    if (sot_args_parse(C, a, b, &s)) goto out;
    monge_smooth_params par;
    monge_smooth_params_init(&par);
    if (parse_form(form, &par.formulation)) goto out;
    par.gamma = gamma;
    par.k = (int64_t)k;
    par.tol = tol;
    par.ftol = ftol;
    par.max_iter = (int64_t)max_iter;
    par.memory = memory;
    par.nthreads = nthreads;
    npy_intp nd[1] = {(npy_intp)s.n}, md[1] = {(npy_intp)s.m};
    if (alpha0 != Py_None) {
        if (!(al = potential(alpha0, s.n, "init alpha"))) goto out;
        if (beta0 != Py_None) {
            if (!(be = potential(beta0, s.m, "init beta"))) goto out;
        } else if (par.formulation == MONGE_SMOOTH_DUAL) {
            PyErr_SetString(PyExc_ValueError, "init: the dual needs both alpha and beta");
            goto out;
        } else if (!(be = (PyArrayObject *)PyArray_ZEROS(1, md, NPY_FLOAT64, 0))) {
            goto out;
        }
        par.warm_start = 1;
    } else {
        al = (PyArrayObject *)PyArray_ZEROS(1, nd, NPY_FLOAT64, 0);
        be = (PyArrayObject *)PyArray_ZEROS(1, md, NPY_FLOAT64, 0);
        if (!al || !be) goto out;
    }
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    monge_smooth_info info;
    memset(&info, 0, sizeof info);
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_smooth_ot(&s.pb, &par, (double *)PyArray_DATA(al), (double *)PyArray_DATA(be), &info);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_ELINESEARCH && st != MONGE_EINTR) {
        bind_raise_status(st, "smooth_ot");
        goto out;
    }
    if (!(plan = plan_tuple(&s.pb, &par, PyArray_DATA(al), PyArray_DATA(be), s.m))) goto out;
    result = Py_BuildValue(
        "{s:O,s:O,s:d,s:d,s:d,s:d,s:d,s:L,s:L,s:L,s:L,s:L,s:O,s:i,s:s,s:i,s:O,s:O}", "alpha", al,
        "beta", be, "value", info.value, "cost", info.cost, "reg", info.reg, "err_a", info.err_a,
        "err_b", info.err_b, "nnz", (long long)info.nnz, "max_col_nnz",
        (long long)info.max_col_nnz, "n_iter", (long long)info.n_iter, "n_eval",
        (long long)info.n_eval, "n_weak", (long long)info.n_weak, "converged",
        info.converged ? Py_True : Py_False, "reason", info.reason, "reason_str",
        monge_lbfgs_reason_str(info.reason), "status", st, "stopped",
        pctx.user_stop ? Py_True : Py_False, "plan", plan);
out:
    sot_args_free(&s);
    Py_XDECREF(al);
    Py_XDECREF(be);
    Py_XDECREF(plan);
    return result;
}

/* Shared parsing of objective() and plan(): potentials at which to evaluate. */
static int eval_args(PyObject *args, PyObject *kw, sot_args *s, monge_smooth_params *par,
                     PyArrayObject **al, PyArrayObject **be)
{
    static char *kwlist[] = {"C", "a", "b", "alpha", "beta", "gamma", "k", "formulation",
                             "nthreads", NULL};
    PyObject *C, *a, *b, *alpha, *beta = Py_None;
    double gamma;
    long long k = 0;
    const char *form = "semi_dual";
    int nthreads = 0;
    *al = *be = NULL;
    memset(s, 0, sizeof *s);
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOOd|Lsi", kwlist, &C, &a, &b, &alpha, &beta,
                                     &gamma, &k, &form, &nthreads))
        return -1;
    if (sot_args_parse(C, a, b, s)) return -1;
    monge_smooth_params_init(par);
    if (parse_form(form, &par->formulation)) return -1;
    par->gamma = gamma;
    par->k = (int64_t)k;
    par->nthreads = nthreads;
    if (!(*al = potential(alpha, s->n, "alpha"))) return -1;
    if (par->formulation == MONGE_SMOOTH_DUAL) {
        if (beta == Py_None) {
            PyErr_SetString(PyExc_ValueError, "beta: required for the dual");
            return -1;
        }
        if (!(*be = potential(beta, s->m, "beta"))) return -1;
    }
    return 0;
}

static PyObject *py_smooth_objective(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    sot_args s;
    monge_smooth_params par;
    PyArrayObject *al = NULL, *be = NULL, *ga = NULL, *gb = NULL;
    PyObject *res = NULL;
    if (eval_args(args, kw, &s, &par, &al, &be)) goto out;
    npy_intp nd[1] = {(npy_intp)s.n}, md[1] = {(npy_intp)s.m};
    ga = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    if (be) gb = (PyArrayObject *)PyArray_SimpleNew(1, md, NPY_FLOAT64);
    if (!ga || (be && !gb)) goto out;
    double value;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_smooth_ot_objective(&s.pb, &par, PyArray_DATA(al), be ? PyArray_DATA(be) : NULL,
                                   &value, PyArray_DATA(ga), gb ? PyArray_DATA(gb) : NULL);
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "objective");
        goto out;
    }
    if (gb) res = Py_BuildValue("(dOO)", value, ga, gb);
    else res = Py_BuildValue("(dOO)", value, ga, Py_None);
out:
    sot_args_free(&s);
    Py_XDECREF(al);
    Py_XDECREF(be);
    Py_XDECREF(ga);
    Py_XDECREF(gb);
    return res;
}

static PyObject *py_smooth_plan(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    sot_args s;
    monge_smooth_params par;
    PyArrayObject *al = NULL, *be = NULL;
    PyObject *res = NULL;
    if (eval_args(args, kw, &s, &par, &al, &be)) goto out;
    res = plan_tuple(&s.pb, &par, PyArray_DATA(al), be ? PyArray_DATA(be) : NULL, s.m);
out:
    sot_args_free(&s);
    Py_XDECREF(al);
    Py_XDECREF(be);
    return res;
}

PyMethodDef monge_bind_smooth_methods[] = {
    {"smooth_ot", BIND_KW(py_smooth_ot), METH_VARARGS | METH_KEYWORDS,
     "Quadratic / k-sparse OT by L-BFGS (private; use monge.quadratic_ot / monge.sparse_ot)."},
    {"smooth_objective", BIND_KW(py_smooth_objective), METH_VARARGS | METH_KEYWORDS,
     "(Semi-)dual objective and gradient at given potentials (private)."},
    {"smooth_plan", BIND_KW(py_smooth_plan), METH_VARARGS | METH_KEYWORDS,
     "CSC plan (indptr, indices, data) from potentials (private)."},
    {NULL, NULL, 0, NULL}};
