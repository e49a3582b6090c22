/* Bindings of spectr.c: K-SEQ rho, residuals, draft selection and the optimal acceptance (see
 * bind.h for the conventions).  p and q arrive as 2-D float64 arrays of R rows (R = 1: one row
 * shared by the whole batch, or R = B) and k as a 1-D int64 array of B counts; monge/spectr.py
 * validates and broadcasts, the checks here only keep the interpreter safe. */
#include "bind.h"

#include <string.h>

typedef struct {
    PyArrayObject *p, *q, *k;
    int64_t B, V, ld;
} pq_args;

static void pq_free(pq_args *a)
{
    Py_XDECREF(a->p);
    Py_XDECREF(a->q);
    Py_XDECREF(a->k);
}

/* k may be NULL (select without counts: B from the rows of drafts, given as B_hint) */
static int pq_parse(PyObject *p, PyObject *q, PyObject *k, int64_t B_hint, pq_args *a)
{
    memset(a, 0, sizeof *a);
    if (!(a->p = bind_as_array(p, NPY_FLOAT64, 2, "p")) || !(a->q = bind_as_array(q, NPY_FLOAT64, 2, "q")))
        return -1;
    const int64_t R = PyArray_DIM(a->p, 0);
    a->V = PyArray_DIM(a->p, 1);
    if (PyArray_DIM(a->q, 0) != R || PyArray_DIM(a->q, 1) != a->V || R < 1 || a->V < 1) {
        PyErr_SetString(PyExc_ValueError, "p, q: shapes differ or are empty");
        return -1;
    }
    if (k != Py_None) {
        a->k = (PyArrayObject *)PyArray_FROMANY(k, NPY_INT64, 1, 1, NPY_ARRAY_IN_ARRAY);
        if (!a->k) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "k: expected a 1-dimensional integer array");
            return -1;
        }
        a->B = PyArray_DIM(a->k, 0);
    } else {
        a->B = B_hint;
    }
    if (R != 1 && R != a->B) {
        PyErr_SetString(PyExc_ValueError, "p, q: expected 1 row or one row per position");
        return -1;
    }
    a->ld = (R == 1 && a->B != 1) ? 0 : a->V;
    return 0;
}

static const int64_t *pq_k(const pq_args *a) { return a->k ? (const int64_t *)PyArray_DATA(a->k) : NULL; }

static PyObject *py_spectr_rho(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"p", "q", "k", "nthreads", NULL};
    PyObject *p, *q, *k, *res = NULL;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|i", kwlist, &p, &q, &k, &nthreads)) return NULL;
    pq_args a;
    if (pq_parse(p, q, k, 0, &a)) goto out;
    npy_intp d[1] = {(npy_intp)a.B};
    PyArrayObject *rho = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_FLOAT64);
    PyArrayObject *acc = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_FLOAT64);
    if (!rho || !acc) {
        Py_XDECREF(rho);
        Py_XDECREF(acc);
        goto out;
    }
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_spectr_rho(a.B, a.V, PyArray_DATA(a.p), PyArray_DATA(a.q), a.ld, pq_k(&a),
                          PyArray_DATA(rho), PyArray_DATA(acc), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(rho);
        Py_DECREF(acc);
        bind_raise_status(st, "kseq_rho");
        goto out;
    }
    res = Py_BuildValue("NN", rho, acc);
out:
    pq_free(&a);
    return res;
}

static PyObject *py_spectr_residual(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"p", "q", "k", "nthreads", NULL};
    PyObject *p, *q, *k, *res = NULL;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|i", kwlist, &p, &q, &k, &nthreads)) return NULL;
    pq_args a;
    if (pq_parse(p, q, k, 0, &a)) goto out;
    npy_intp d[2] = {(npy_intp)a.B, (npy_intp)a.V};
    PyArrayObject *r = (PyArrayObject *)PyArray_SimpleNew(2, d, NPY_FLOAT64);
    if (!r) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_spectr_residual(a.B, a.V, PyArray_DATA(a.p), PyArray_DATA(a.q), a.ld, pq_k(&a),
                               PyArray_DATA(r), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(r);
        bind_raise_status(st, "residual_distribution");
        goto out;
    }
    res = (PyObject *)r;
out:
    pq_free(&a);
    return res;
}

static PyObject *py_spectr_optimal(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"p", "q", "k", "nthreads", NULL};
    PyObject *p, *q, *k, *res = NULL;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|i", kwlist, &p, &q, &k, &nthreads)) return NULL;
    pq_args a;
    if (pq_parse(p, q, k, 0, &a)) goto out;
    npy_intp d[1] = {(npy_intp)a.B};
    PyArrayObject *o = (PyArrayObject *)PyArray_SimpleNew(1, d, NPY_FLOAT64);
    if (!o) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_spectr_optimal_acceptance(a.B, a.V, PyArray_DATA(a.p), PyArray_DATA(a.q), a.ld,
                                         pq_k(&a), PyArray_DATA(o), nthreads);
    Py_END_ALLOW_THREADS
    if (st) {
        Py_DECREF(o);
        bind_raise_status(st, "optimal_acceptance");
        goto out;
    }
    res = (PyObject *)o;
out:
    pq_free(&a);
    return res;
}

/* select(p, q, drafts, nk=None, B=0, kmax=0, seed=0, stream=0, nthreads=0): drafts (B, kmax) int64,
 * or None to draw B x kmax drafts from p. */
static PyObject *py_spectr_select(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"p", "q", "drafts", "nk", "B", "kmax", "seed", "stream", "nthreads",
                             NULL};
    PyObject *p, *q, *drafts, *nk = Py_None, *res = NULL;
    long long Bdraw = 0, kdraw = 0;
    unsigned long long seed = 0, stream = 0;
    int nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|OLLKKi", kwlist, &p, &q, &drafts, &nk, &Bdraw,
                                     &kdraw, &seed, &stream, &nthreads))
        return NULL;
    pq_args a;
    memset(&a, 0, sizeof a);
    PyArrayObject *dr = NULL, *tok = NULL, *idx = NULL, *rho = NULL;
    monge_spectr_params par;
    monge_spectr_params_init(&par);
    par.seed = (uint64_t)seed;
    par.stream = (uint64_t)stream;
    par.nthreads = nthreads;
    int64_t B, kmax;
    if (drafts == Py_None) {
        if (Bdraw < 1 || kdraw < 1) {
            PyErr_SetString(PyExc_ValueError, "B, kmax: must be >= 1 when drafts are drawn");
            goto out;
        }
        B = Bdraw;
        kmax = kdraw;
        npy_intp d[2] = {(npy_intp)B, (npy_intp)kmax};
        if (!(dr = (PyArrayObject *)PyArray_ZEROS(2, d, NPY_INT64, 0))) goto out;
        par.draw_drafts = 1;
    } else {
        PyArrayObject *in = (PyArrayObject *)PyArray_FROMANY(drafts, NPY_INT64, 2, 2, NPY_ARRAY_IN_ARRAY);
        if (!in) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "drafts: expected a 2-dimensional integer array");
            goto out;
        }
        dr = (PyArrayObject *)PyArray_NewCopy(in, NPY_CORDER);
        Py_DECREF(in);
        if (!dr) goto out;
        B = PyArray_DIM(dr, 0);
        kmax = PyArray_DIM(dr, 1);
        if (B < 1 || kmax < 1) {
            PyErr_SetString(PyExc_ValueError, "drafts: empty array");
            goto out;
        }
    }
    if (pq_parse(p, q, nk, B, &a)) goto out;
    if (a.B != B) {
        PyErr_SetString(PyExc_ValueError, "nk: expected one count per position");
        goto out;
    }
    npy_intp d1[1] = {(npy_intp)B};
    tok = (PyArrayObject *)PyArray_SimpleNew(1, d1, NPY_INT64);
    idx = (PyArrayObject *)PyArray_SimpleNew(1, d1, NPY_INT64);
    rho = (PyArrayObject *)PyArray_SimpleNew(1, d1, NPY_FLOAT64);
    if (!tok || !idx || !rho) goto out;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_spectr_select(&par, B, a.V, PyArray_DATA(a.p), PyArray_DATA(a.q), a.ld, kmax,
                             pq_k(&a), PyArray_DATA(dr), PyArray_DATA(tok), PyArray_DATA(idx),
                             PyArray_DATA(rho));
    Py_END_ALLOW_THREADS
    if (st) {
        bind_raise_status(st, "kseq_select");
        goto out;
    }
    res = Py_BuildValue("{s:O,s:O,s:O,s:O}", "token", tok, "index", idx, "rho", rho, "drafts", dr);
out:
    Py_XDECREF(dr);
    Py_XDECREF(tok);
    Py_XDECREF(idx);
    Py_XDECREF(rho);
    pq_free(&a);
    return res;
}

PyMethodDef monge_bind_spectr_methods[] = {
    {"spectr_rho", BIND_KW(py_spectr_rho), METH_VARARGS | METH_KEYWORDS,
     "K-SEQ rho* and acceptance (private; use monge.spectr.kseq_rho)."},
    {"spectr_residual", BIND_KW(py_spectr_residual), METH_VARARGS | METH_KEYWORDS,
     "K-SEQ residual distributions (private)."},
    {"spectr_optimal", BIND_KW(py_spectr_optimal), METH_VARARGS | METH_KEYWORDS,
     "Exact optimal acceptance with k i.i.d. drafts (private)."},
    {"spectr_select", BIND_KW(py_spectr_select), METH_VARARGS | METH_KEYWORDS,
     "K-SEQ draft selection (private; use monge.spectr.kseq_select)."},
    {NULL, NULL, 0, NULL}};
