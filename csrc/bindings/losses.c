/* Bindings of losses.c: Sinkhorn divergence and Monge gap with gradients (see bind.h). */
#include "bind.h"

#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------ losses */

static int fill_params(monge_sinkhorn_params *par, double eps, const bind_sk_options *o,
                       int nthreads, progress_ctx *pctx)
{
    par->eps = eps;
    par->nthreads = nthreads;
    par->progress = bind_progress_cb;
    par->progress_ctx = pctx;
    return bind_sinkhorn_options(o, par);
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
                             "grad_b", "nthreads", "anderson", NULL};
    PyObject *x, *y, *a, *b;
    const char *cost = "sqeuclidean";
    bind_sk_options o = {0};
    double p = 2.0, lam = 0.0, eps = 0.0, tau_a = INFINITY, tau_b = INFINITY;
    int static_b = 0, dense = 0, gx = 0, gy = 0, ga = 0, gb = 0, nthreads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|sdddddOOOOOOppppppiO", kwlist, &x, &y, &a, &b,
                                     &cost, &p, &lam, &eps, &tau_a, &tau_b, &o.tol, &o.max_iter,
                                     &o.eps_scaling, &o.scaling_factor, &o.stage_tol, &o.overrelax,
                                     &static_b, &dense, &gx, &gy, &ga, &gb, &nthreads, &o.anderson))
        return NULL;
    batch_geom bg;
    PyArrayObject *aa = NULL, *ba = NULL, *Gx = NULL, *Gy = NULL, *Ga = NULL, *Gb = NULL;
    PyObject *result = NULL;
    monge_problem *pbs = NULL;
    monge_divergence_info *infos = NULL;
    int *status = NULL;
    if (bind_batch_geom_parse(Py_None, x, y, cost, p, lam, 1, &bg)) goto out;
    const int64_t B = bg.B, n = bg.n, m = bg.m, d = bg.d;
    if (bind_parse_weights(a, B, n, 1, "a", &aa) || bind_parse_weights(b, B, m, 1, "b", &ba)) goto out;
    if ((gx && !(Gx = zeros2(B, n * d))) || (gy && !(Gy = zeros2(B, m * d))) ||
        (ga && !(Ga = zeros2(B, n))) || (gb && !(Gb = zeros2(B, m))))
        goto out;
    progress_ctx pctx = {NULL, bind_now(), 0, 0};
    monge_divergence_params par;
    monge_divergence_params_init(&par);
    if (fill_params(&par.sk, eps, &o, nthreads, &pctx)) goto out;
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
        bind_raise_status(st, "sinkhorn_divergence");
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
    bind_batch_geom_free(&bg);
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
                             "grad_x", "nthreads", "dense", "anderson", "debiased", NULL};
    PyObject *x, *t, *eps_mode = Py_None;
    const char *cost = "sqeuclidean";
    bind_sk_options o = {0};
    double p = 2.0, lam = 0.0, eps = 0.0;
    int gt = 0, gx = 0, nthreads = 0, dense = 0, debiased = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|sdddOOOOOOOppipOp", kwlist, &x, &t, &cost, &p,
                                     &lam, &eps, &eps_mode, &o.tol, &o.max_iter, &o.eps_scaling,
                                     &o.scaling_factor, &o.stage_tol, &o.overrelax, &gt, &gx,
                                     &nthreads, &dense, &o.anderson, &debiased))
        return NULL;
    batch_geom bg;
    PyArrayObject *Gt = NULL, *Gx = NULL;
    PyObject *result = NULL;
    if (bind_batch_geom_parse(Py_None, x, t, cost, p, lam, 0, &bg)) goto out;
    if (bg.n != bg.m) {
        PyErr_SetString(PyExc_ValueError, "x, tx: need the same number of points");
        goto out;
    }
    if ((gt && !(Gt = zeros2(bg.n, bg.d))) || (gx && !(Gx = zeros2(bg.n, bg.d)))) goto out;
    progress_ctx pctx = {NULL, bind_now(), 0, 0};
    monge_gap_params par;
    monge_gap_params_init(&par);
    static const char *const eps_modes[3] = {"absolute", "mean", "std"}; /* monge_eps_mode */
    int mode = (int)par.eps_mode;
    if (fill_params(&par.sk, eps, &o, nthreads, &pctx) ||
        bind_parse_choice(eps_mode, "eps_mode", eps_modes, 3, &mode))
        goto out;
    par.eps_mode = (monge_eps_mode)mode;
    par.dense = dense;
    par.debiased = debiased;
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
        bind_raise_status(st, "monge_gap");
        goto out;
    }
    result = Py_BuildValue("{s:d,s:d,s:d,s:d,s:d,s:L,s:O,s:O,s:O}", "value", info.value,
                           "displacement", info.displacement, "ent_reg_cost", info.ent_reg_cost,
                           "eps", info.eps, "error", info.error, "n_iter", (long long)info.n_iter,
                           "converged", info.converged ? Py_True : Py_False, "grad_t",
                           Gt ? (PyObject *)Gt : Py_None, "grad_x", Gx ? (PyObject *)Gx : Py_None);
out:
    bind_batch_geom_free(&bg);
    Py_XDECREF(Gt);
    Py_XDECREF(Gx);
    return result;
}

PyMethodDef monge_bind_losses_methods[] = {
    {"sinkhorn_divergence", BIND_KW(py_sinkhorn_divergence),
     METH_VARARGS | METH_KEYWORDS, "Batched Sinkhorn divergence with gradients (private)."},
    {"monge_gap", BIND_KW(py_monge_gap), METH_VARARGS | METH_KEYWORDS,
     "Monge gap with gradients (private; use monge.monge_gap)."},
    {NULL, NULL, 0, NULL}};
