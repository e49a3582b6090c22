/* Bindings of barycenter.c: fixed-support entropic barycenters of histograms on a common support,
 * and free-support barycenters of point clouds. */
#include "bind.h"

#include <string.h>

/* The fixed-support solvers' shared tail: the status as an exception, or the result dict. */
static PyObject *bary_result(int st, const progress_ctx *pctx, PyArrayObject *aa,
                             PyArrayObject *fa, PyArrayObject *ga, PyArrayObject *ca, double err,
                             int64_t it, PyObject *grads)
{
    if (st == MONGE_EINTR && !pctx->user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        return NULL;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR)
        return bind_raise_status(st, "barycenter");
    return Py_BuildValue("{s:O,s:O,s:O,s:O,s:d,s:L,s:O,s:O,s:O}", "a", aa, "f", fa, "g", ga, "logc",
                         ca, "error", err, "n_iter", (long long)it, "unconverged",
                         st == MONGE_ENOCONV ? Py_True : Py_False, "stopped",
                         st == MONGE_EINTR ? Py_True : Py_False, "grads", grads ? grads : Py_None);
}

/* The loss and its gradients at the solution (monge_barycenter_loss or its grid twin), as a dict
 * {"values" (K,), "grad_B" (K, m), "grad_C" (n, m) or None, "grad_x" (n, d) or None, "grad_y"
 * (m, d) summed over the inputs, or None, "sym_unconverged"}; NULL with an exception set. */
static PyObject *bary_grads(int64_t K, int64_t n, int64_t m, int64_t d, const monge_geometry *geoms,
                            const monge_grid *grid, const double *const *bs, const double *w,
                            const monge_geometry *selfg, const monge_geometry *selfy,
                            const monge_barycenter_params *par, PyArrayObject *aa,
                            PyArrayObject *fa, PyArrayObject *ga, PyArrayObject *ca)
{
    npy_intp kd[1] = {(npy_intp)K}, bd[2] = {(npy_intp)K, (npy_intp)m},
             cd[2] = {(npy_intp)n, (npy_intp)m}, xd[2] = {(npy_intp)n, (npy_intp)d},
             yd[2] = {(npy_intp)(K * m), (npy_intp)d};
    const int dense = geoms && geoms[0].C != NULL, pts = geoms && !dense;
    PyArrayObject *va = (PyArrayObject *)PyArray_SimpleNew(1, kd, NPY_FLOAT64);
    PyArrayObject *gb = (PyArrayObject *)PyArray_SimpleNew(2, bd, NPY_FLOAT64);
    PyArrayObject *gc = dense ? (PyArrayObject *)PyArray_SimpleNew(2, cd, NPY_FLOAT64) : NULL;
    PyArrayObject *gx = pts ? (PyArrayObject *)PyArray_SimpleNew(2, xd, NPY_FLOAT64) : NULL;
    PyArrayObject *gy = pts ? (PyArrayObject *)PyArray_SimpleNew(2, yd, NPY_FLOAT64) : NULL;
    PyObject *res = NULL;
    if (!va || !gb || (dense && !gc) || (pts && (!gx || !gy))) goto out;
    int st;
    double *vp = PyArray_DATA(va), *gbp = PyArray_DATA(gb);
    const double *ap = PyArray_DATA(aa), *fp = PyArray_DATA(fa), *gp = PyArray_DATA(ga),
                 *cp = PyArray_DATA(ca);
    Py_BEGIN_ALLOW_THREADS
    if (grid)
        st = monge_barycenter_grid_loss(K, grid, bs, w, par, ap, fp, gp, cp, vp, gbp);
    else
        st = monge_barycenter_loss(K, geoms, bs, w, selfg, selfy, par, ap, fp, gp, cp, vp, gbp,
                                   gc ? (double *)PyArray_DATA(gc) : NULL,
                                   gx ? (double *)PyArray_DATA(gx) : NULL,
                                   gy ? (double *)PyArray_DATA(gy) : NULL);
    Py_END_ALLOW_THREADS
    if (st != MONGE_OK && st != MONGE_ENOCONV) {
        bind_raise_status(st, "barycenter (gradients)");
        goto out;
    }
    PyObject *gys = NULL;
    if (gy) { /* every input lives on y: the inputs' blocks add up */
        double *y0 = PyArray_DATA(gy);
        for (int64_t k = 1; k < K; k++)
            for (int64_t t = 0; t < m * d; t++) y0[t] += y0[k * m * d + t];
        npy_intp yd1[2] = {(npy_intp)m, (npy_intp)d};
        gys = PyArray_SimpleNew(2, yd1, NPY_FLOAT64);
        if (!gys) goto out;
        memcpy(PyArray_DATA((PyArrayObject *)gys), y0, sizeof(double) * (size_t)(m * d));
    }
    res = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O}", "values", va, "grad_B", gb, "grad_C",
                        gc ? (PyObject *)gc : Py_None, "grad_x", gx ? (PyObject *)gx : Py_None,
                        "grad_y", gys ? gys : Py_None, "sym_unconverged",
                        st == MONGE_ENOCONV ? Py_True : Py_False);
    Py_XDECREF(gys);
out:
    Py_XDECREF(va);
    Py_XDECREF(gb);
    Py_XDECREF(gc);
    Py_XDECREF(gx);
    Py_XDECREF(gy);
    return res;
}

/* The barycenter's support with itself, for the debiased variant: x with x, or C itself when it
 * is square (the two supports are then taken to be one); -1 with ValueError for a non-square C. */
static int bary_self_geom(const batch_geom *bg, int debiased, monge_geometry *selfg)
{
    *selfg = bg->geoms[0];
    if (!debiased) return 0;
    if (bg->C) {
        if (bg->n != bg->m) {
            PyErr_SetString(PyExc_ValueError, "C: the debiased barycenter on a cost matrix "
                                              "needs a square C (one support)");
            return -1;
        }
    } else {
        selfg->m = bg->n;
        selfg->y = selfg->x;
    }
    return 0;
}

static void bary_params(monge_barycenter_params *par, double eps, double tol, long long max_iter,
                        int debiased, int nthreads, int anderson)
{
    monge_barycenter_params_init(par);
    par->anderson = anderson;
    par->eps = eps;
    par->tol = tol;
    par->max_iter = max_iter;
    par->debiased = debiased;
    par->nthreads = nthreads;
}

/* barycenter(B (K, m), weights (K,), C (n, m) or None, x (n, d) or None, y (m, d) or None, cost,
 *            p, lam, eps, tol, max_iter, debiased, nthreads, callback)
 * -> {"a", "f" (K, n), "g" (K, m), "logc" (n,), "error", "n_iter", "unconverged", "stopped"}
 * Every input lives on the support of y (or the columns of C); the barycenter on that of x (rows).
 * The debiased variant needs the barycenter's support with itself: x with x, or C itself when
 * it is square (the two supports are then taken to be one). */
static PyObject *py_barycenter(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"B", "weights", "C", "x", "y", "cost", "p", "lam", "eps", "tol",
                             "max_iter", "debiased", "nthreads", "callback", "grad", "anderson",
                             NULL};
    PyObject *Bo, *wo, *C = Py_None, *x = Py_None, *y = Py_None, *callback = Py_None;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 1.0, eps = 0.1, tol = 1e-6;
    long long max_iter = 10000;
    int debiased = 0, nthreads = 0, grad = 0, anderson = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOsddddLpiOpi", kwlist, &Bo, &wo, &C, &x, &y,
                                     &cost, &p, &lam, &eps, &tol, &max_iter, &debiased, &nthreads,
                                     &callback, &grad, &anderson))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    batch_geom bg;
    PyArrayObject *Ba = NULL, *wa = NULL, *aa = NULL, *fa = NULL, *ga = NULL, *ca = NULL;
    monge_geometry *geoms = NULL;
    const double **bs = NULL;
    PyObject *result = NULL;
    if (bind_batch_geom_parse(C, x, y, cost, p, lam, 0, &bg)) goto out;
    if (!(Ba = bind_as_array(Bo, NPY_FLOAT64, 2, "B")) || !(wa = bind_as_array(wo, NPY_FLOAT64, 1, "weights")))
        goto out;
    const int64_t K = PyArray_DIM(Ba, 0), n = bg.n, m = bg.m;
    if (K < 1 || PyArray_DIM(Ba, 1) != m || PyArray_DIM(wa, 0) != K) {
        PyErr_SetString(PyExc_ValueError, "B, weights: expected shapes (K, m) and (K,), K >= 1, m "
                                          "the size of the inputs' support");
        goto out;
    }
    monge_geometry selfg, selfy = bg.geoms[0];
    if (!bg.C) { /* the inputs' support with itself (the debiased loss) */
        selfy.n = m;
        selfy.x = selfy.y;
    }
    if (bary_self_geom(&bg, debiased, &selfg)) goto out;
    geoms = PyMem_Calloc((size_t)K, sizeof *geoms);
    bs = PyMem_Calloc((size_t)K, sizeof *bs);
    if (!geoms || !bs) {
        PyErr_NoMemory();
        goto out;
    }
    for (int64_t k = 0; k < K; k++) {
        geoms[k] = bg.geoms[0];
        bs[k] = (const double *)PyArray_DATA(Ba) + k * m;
    }
    npy_intp nd[1] = {(npy_intp)n}, fd[2] = {(npy_intp)K, (npy_intp)n},
             gd[2] = {(npy_intp)K, (npy_intp)m};
    aa = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    fa = (PyArrayObject *)PyArray_SimpleNew(2, fd, NPY_FLOAT64);
    ga = (PyArrayObject *)PyArray_SimpleNew(2, gd, NPY_FLOAT64);
    ca = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    if (!aa || !fa || !ga || !ca) goto out;
    monge_barycenter_params par;
    bary_params(&par, eps, tol, max_iter, debiased, nthreads, anderson);
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    double err = 0.0;
    int64_t it = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_barycenter(K, geoms, bs, (const double *)PyArray_DATA(wa), debiased ? &selfg : NULL,
                          &par, (double *)PyArray_DATA(aa), (double *)PyArray_DATA(fa),
                          (double *)PyArray_DATA(ga), (double *)PyArray_DATA(ca), &err, &it);
    Py_END_ALLOW_THREADS
    PyObject *grads = NULL;
    if (grad && (st == MONGE_OK || st == MONGE_ENOCONV)) {
        monge_geometry *sy = NULL;
        if (debiased && !(sy = PyMem_Calloc((size_t)K, sizeof *sy))) {
            PyErr_NoMemory();
            goto out;
        }
        for (int64_t k = 0; debiased && k < K; k++) sy[k] = selfy;
        grads = bary_grads(K, n, m, bg.C ? 0 : bg.geoms[0].d, geoms, NULL, bs,
                           (const double *)PyArray_DATA(wa), debiased ? &selfg : NULL, sy, &par,
                           aa, fa, ga, ca);
        PyMem_Free(sy);
        if (!grads) goto out;
    }
    result = bary_result(st, &pctx, aa, fa, ga, ca, err, it, grads);
    Py_XDECREF(grads);
out:
    bind_batch_geom_free(&bg);
    PyMem_Free(geoms);
    PyMem_Free(bs);
    Py_XDECREF(Ba);
    Py_XDECREF(wa);
    Py_XDECREF(aa);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(ca);
    return result;
}


/* barycenter_batch(B (N, K, m), weights (N, K), C, x, y, cost, p, lam, eps, tol, max_iter,
 *                  debiased, nthreads) -> {"a" (N, n), "f" (N, K, n), "g" (N, K, m), "logc" (N, n),
 * "error" (N,), "n_iter" (N,), "unconverged" (N,) bool}: N problems on one support, in parallel. */
static PyObject *py_barycenter_batch(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"B", "weights", "C", "x", "y", "cost", "p", "lam", "eps", "tol",
                             "max_iter", "debiased", "nthreads", "anderson", NULL};
    PyObject *Bo, *wo, *C = Py_None, *x = Py_None, *y = Py_None;
    const char *cost = "sqeuclidean";
    double p = 2.0, lam = 1.0, eps = 0.1, tol = 1e-6;
    long long max_iter = 10000;
    int debiased = 0, nthreads = 0, anderson = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOsddddLpii", kwlist, &Bo, &wo, &C, &x, &y,
                                     &cost, &p, &lam, &eps, &tol, &max_iter, &debiased, &nthreads,
                                     &anderson))
        return NULL;
    batch_geom bg;
    PyArrayObject *Ba = NULL, *wa = NULL, *aa = NULL, *fa = NULL, *ga = NULL, *ca = NULL,
                  *ea = NULL, *ia = NULL, *ua = NULL;
    monge_geometry *geoms = NULL;
    const double **bs = NULL;
    int *stat = NULL;
    PyObject *result = NULL;
    if (bind_batch_geom_parse(C, x, y, cost, p, lam, 0, &bg)) goto out;
    if (!(Ba = bind_as_array(Bo, NPY_FLOAT64, 3, "B")) ||
        !(wa = bind_as_array(wo, NPY_FLOAT64, 2, "weights")))
        goto out;
    const int64_t N = PyArray_DIM(Ba, 0), K = PyArray_DIM(Ba, 1), n = bg.n, m = bg.m;
    if (N < 1 || K < 1 || PyArray_DIM(Ba, 2) != m || PyArray_DIM(wa, 0) != N ||
        PyArray_DIM(wa, 1) != K) {
        PyErr_SetString(PyExc_ValueError, "B, weights: expected shapes (N, K, m) and (N, K), "
                                          "N, K >= 1, m the size of the inputs' support");
        goto out;
    }
    monge_geometry selfg;
    if (bary_self_geom(&bg, debiased, &selfg)) goto out;
    geoms = PyMem_Calloc((size_t)K, sizeof *geoms);
    bs = PyMem_Calloc((size_t)(N * K), sizeof *bs);
    stat = PyMem_Calloc((size_t)N, sizeof *stat);
    if (!geoms || !bs || !stat) {
        PyErr_NoMemory();
        goto out;
    }
    for (int64_t k = 0; k < K; k++) geoms[k] = bg.geoms[0];
    for (int64_t t = 0; t < N * K; t++) bs[t] = (const double *)PyArray_DATA(Ba) + t * m;
    npy_intp nd[2] = {(npy_intp)N, (npy_intp)n}, fd[3] = {(npy_intp)N, (npy_intp)K, (npy_intp)n},
             gd[3] = {(npy_intp)N, (npy_intp)K, (npy_intp)m}, sd[1] = {(npy_intp)N};
    aa = (PyArrayObject *)PyArray_SimpleNew(2, nd, NPY_FLOAT64);
    fa = (PyArrayObject *)PyArray_SimpleNew(3, fd, NPY_FLOAT64);
    ga = (PyArrayObject *)PyArray_SimpleNew(3, gd, NPY_FLOAT64);
    ca = (PyArrayObject *)PyArray_SimpleNew(2, nd, NPY_FLOAT64);
    ea = (PyArrayObject *)PyArray_SimpleNew(1, sd, NPY_FLOAT64);
    ia = (PyArrayObject *)PyArray_SimpleNew(1, sd, NPY_INT64);
    ua = (PyArrayObject *)PyArray_SimpleNew(1, sd, NPY_BOOL);
    if (!aa || !fa || !ga || !ca || !ea || !ia || !ua) goto out;
    monge_barycenter_params par;
    bary_params(&par, eps, tol, max_iter, debiased, nthreads, anderson);
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_barycenter_batch(N, K, geoms, bs, (const double *)PyArray_DATA(wa),
                                debiased ? &selfg : NULL, &par, (double *)PyArray_DATA(aa),
                                (double *)PyArray_DATA(fa), (double *)PyArray_DATA(ga),
                                (double *)PyArray_DATA(ca), (double *)PyArray_DATA(ea),
                                (int64_t *)PyArray_DATA(ia), stat);
    Py_END_ALLOW_THREADS
    if (st != MONGE_OK && st != MONGE_ENOCONV) {
        bind_raise_status(st, "barycenter");
        goto out;
    }
    for (int64_t t = 0; t < N; t++) ((npy_bool *)PyArray_DATA(ua))[t] = stat[t] == MONGE_ENOCONV;
    result = Py_BuildValue("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "a", aa, "f", fa, "g", ga, "logc", ca,
                           "error", ea, "n_iter", ia, "unconverged", ua);
out:
    bind_batch_geom_free(&bg);
    PyMem_Free(geoms);
    PyMem_Free(bs);
    PyMem_Free(stat);
    Py_XDECREF(Ba);
    Py_XDECREF(wa);
    Py_XDECREF(aa);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(ca);
    Py_XDECREF(ea);
    Py_XDECREF(ia);
    Py_XDECREF(ua);
    return result;
}

/* free_barycenter(Y (sum m_k, d), sizes (K,) int64, b (sum m_k,) or None, weights (K,), X0 (n, d),
 *                 a (n,) or None, exact, eps, tol, max_iter, nthreads, callback)
 * -> {"X", "cost", "n_iter", "unconverged", "stopped"}: the inputs are stacked in Y (and b). */
static PyObject *py_free_barycenter(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"Y", "sizes", "b", "weights", "X0", "a", "exact", "eps", "tol",
                             "max_iter", "nthreads", "callback", "grad", NULL};
    PyObject *Yo, *so, *bo, *wo, *Xo, *ao = Py_None, *callback = Py_None;
    int exact = 1, nthreads = 0, grad = 0;
    double eps = 0.01, tol = 1e-9;
    long long max_iter = 100;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO|OpddLiOp", kwlist, &Yo, &so, &bo, &wo, &Xo,
                                     &ao, &exact, &eps, &tol, &max_iter, &nthreads, &callback,
                                     &grad))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    PyArrayObject *Ya = NULL, *sa = NULL, *ba = NULL, *wa = NULL, *X0a = NULL, *Xa = NULL,
                  *aa = NULL, *va = NULL, *gXa = NULL, *gYa = NULL, *gba = NULL;
    const double **Yp = NULL, **bp = NULL;
    PyObject *result = NULL;
    if (!(Ya = bind_as_array(Yo, NPY_FLOAT64, 2, "Y")) ||
        !(sa = bind_as_array(so, NPY_INT64, 1, "sizes")) ||
        !(wa = bind_as_array(wo, NPY_FLOAT64, 1, "weights")) ||
        !(X0a = bind_as_array(Xo, NPY_FLOAT64, 2, "X0")))
        goto out;
    const int64_t K = PyArray_DIM(sa, 0), d = PyArray_DIM(Ya, 1), n = PyArray_DIM(X0a, 0);
    const int64_t *m = (const int64_t *)PyArray_DATA(sa);
    int64_t tot = 0;
    for (int64_t k = 0; k < K; k++) {
        if (m[k] < 1 || m[k] > PyArray_DIM(Ya, 0) - tot) {
            PyErr_SetString(PyExc_ValueError, "sizes: must be >= 1 and add up to the rows of Y");
            goto out;
        }
        tot += m[k];
    }
    if (K < 1 || tot != PyArray_DIM(Ya, 0) || PyArray_DIM(wa, 0) != K ||
        PyArray_DIM(X0a, 1) != d || n < 1) {
        PyErr_SetString(PyExc_ValueError, "Y, sizes, weights, X0: inconsistent shapes");
        goto out;
    }
    if (bind_parse_weights(bo, 1, tot, 0, "b", &ba) || bind_parse_weights(ao, 1, n, 0, "a", &aa))
        goto out;
    Xa = (PyArrayObject *)PyArray_NewCopy(X0a, NPY_CORDER);
    Yp = PyMem_Calloc((size_t)K, sizeof *Yp);
    bp = PyMem_Calloc((size_t)K, sizeof *bp);
    if (!Xa || !Yp || !bp) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto out;
    }
    tot = 0;
    for (int64_t k = 0; k < K; k++) {
        Yp[k] = (const double *)PyArray_DATA(Ya) + tot * d;
        bp[k] = ba ? (const double *)PyArray_DATA(ba) + tot : NULL;
        tot += m[k];
    }
    monge_free_barycenter_params par;
    monge_free_barycenter_params_init(&par);
    par.exact = exact;
    par.eps = eps;
    par.tol = tol;
    par.max_iter = max_iter;
    par.nthreads = nthreads;
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    double cost = NAN;
    int64_t it = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_free_barycenter(K, m, d, Yp, ba ? bp : NULL, (const double *)PyArray_DATA(wa), n,
                               aa ? (const double *)PyArray_DATA(aa) : NULL, &par,
                               (double *)PyArray_DATA(Xa), &cost, &it);
    Py_END_ALLOW_THREADS
    if (st == MONGE_EINTR && !pctx.user_stop) {
        if (!PyErr_Occurred()) PyErr_SetNone(PyExc_KeyboardInterrupt);
        goto out;
    }
    if (st != MONGE_OK && st != MONGE_ENOCONV && st != MONGE_EINTR) {
        bind_raise_status(st, "free_support_barycenter");
        goto out;
    }
    int lst = MONGE_OK;
    if (grad && st != MONGE_EINTR) {
        npy_intp kd[1] = {(npy_intp)K}, xd[2] = {(npy_intp)n, (npy_intp)d},
                 yd[2] = {(npy_intp)tot, (npy_intp)d}, bd[1] = {(npy_intp)tot};
        va = (PyArrayObject *)PyArray_SimpleNew(1, kd, NPY_FLOAT64);
        gXa = (PyArrayObject *)PyArray_SimpleNew(2, xd, NPY_FLOAT64);
        gYa = (PyArrayObject *)PyArray_SimpleNew(2, yd, NPY_FLOAT64);
        gba = (PyArrayObject *)PyArray_SimpleNew(1, bd, NPY_FLOAT64);
        if (!va || !gXa || !gYa || !gba) goto out;
        Py_BEGIN_ALLOW_THREADS
        lst = monge_free_barycenter_loss(K, m, d, Yp, ba ? bp : NULL,
                                         (const double *)PyArray_DATA(wa), n,
                                         aa ? (const double *)PyArray_DATA(aa) : NULL, &par,
                                         (const double *)PyArray_DATA(Xa),
                                         (double *)PyArray_DATA(va), (double *)PyArray_DATA(gXa),
                                         (double *)PyArray_DATA(gYa), (double *)PyArray_DATA(gba));
        Py_END_ALLOW_THREADS
        if (lst != MONGE_OK && lst != MONGE_ENOCONV) {
            bind_raise_status(lst, "free_support_barycenter (gradients)");
            goto out;
        }
    }
    result = Py_BuildValue("{s:O,s:d,s:L,s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "X", Xa, "cost", cost,
                           "n_iter", (long long)it, "unconverged",
                           st == MONGE_ENOCONV ? Py_True : Py_False, "stopped",
                           st == MONGE_EINTR ? Py_True : Py_False, "values",
                           va ? (PyObject *)va : Py_None, "grad_X", gXa ? (PyObject *)gXa : Py_None,
                           "grad_Y", gYa ? (PyObject *)gYa : Py_None, "grad_b",
                           gba ? (PyObject *)gba : Py_None, "grad_unconverged",
                           lst == MONGE_ENOCONV ? Py_True : Py_False);
out:
    Py_XDECREF(va);
    Py_XDECREF(gXa);
    Py_XDECREF(gYa);
    Py_XDECREF(gba);
    PyMem_Free(Yp);
    PyMem_Free(bp);
    Py_XDECREF(Ya);
    Py_XDECREF(sa);
    Py_XDECREF(ba);
    Py_XDECREF(wa);
    Py_XDECREF(X0a);
    Py_XDECREF(Xa);
    Py_XDECREF(aa);
    return result;
}

/* barycenter_grid(B (K, n), weights (K,), coords (sum len,), lens (d,) int64, eps, tol, max_iter,
 *                 debiased, nthreads, callback) -> as barycenter: every histogram and the
 * barycenter on the grid whose axis a has the coordinates coords[sum len[<a] ...]. */
static PyObject *py_barycenter_grid(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"B", "weights", "coords", "lens", "eps", "tol", "max_iter",
                             "debiased", "nthreads", "callback", "grad", "anderson", NULL};
    PyObject *Bo, *wo, *co, *lo, *callback = Py_None;
    double eps = 0.1, tol = 1e-6;
    long long max_iter = 10000;
    int debiased = 0, nthreads = 0, grad = 0, anderson = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOO|ddLpiOpi", kwlist, &Bo, &wo, &co, &lo, &eps,
                                     &tol, &max_iter, &debiased, &nthreads, &callback, &grad,
                                     &anderson))
        return NULL;
    if (callback != Py_None && !PyCallable_Check(callback)) {
        PyErr_SetString(PyExc_TypeError, "callback: must be callable");
        return NULL;
    }
    PyArrayObject *Ba = NULL, *wa = NULL, *ca = NULL, *la = NULL, *aa = NULL, *fa = NULL,
                  *ga = NULL, *lca = NULL;
    const double **bs = NULL;
    PyObject *result = NULL;
    if (!(Ba = bind_as_array(Bo, NPY_FLOAT64, 2, "B")) ||
        !(wa = bind_as_array(wo, NPY_FLOAT64, 1, "weights")) ||
        !(ca = bind_as_array(co, NPY_FLOAT64, 1, "grid")) ||
        !(la = bind_as_array(lo, NPY_INT64, 1, "grid")))
        goto out;
    const int64_t K = PyArray_DIM(Ba, 0), n = PyArray_DIM(Ba, 1), d = PyArray_DIM(la, 0);
    const int64_t *lens = (const int64_t *)PyArray_DATA(la);
    const double *axes[MONGE_GRID_MAX_DIM];
    int64_t tot = 0, prod = 1;
    if (d < 1 || d > MONGE_GRID_MAX_DIM) {
        PyErr_SetString(PyExc_ValueError, "grid: expected 1 to 8 axes");
        goto out;
    }
    for (int64_t a = 0; a < d; a++) {
        if (lens[a] < 1 || lens[a] > PyArray_DIM(ca, 0) - tot || prod > INT64_MAX / lens[a]) {
            PyErr_SetString(PyExc_ValueError, "grid: inconsistent axes");
            goto out;
        }
        axes[a] = (const double *)PyArray_DATA(ca) + tot;
        tot += lens[a];
        prod *= lens[a];
    }
    if (K < 1 || n != prod || PyArray_DIM(wa, 0) != K || tot != PyArray_DIM(ca, 0)) {
        PyErr_SetString(PyExc_ValueError, "B, weights, grid: inconsistent shapes");
        goto out;
    }
    bs = PyMem_Calloc((size_t)K, sizeof *bs);
    npy_intp nd[1] = {(npy_intp)n}, fd[2] = {(npy_intp)K, (npy_intp)n};
    aa = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    fa = (PyArrayObject *)PyArray_SimpleNew(2, fd, NPY_FLOAT64);
    ga = (PyArrayObject *)PyArray_SimpleNew(2, fd, NPY_FLOAT64);
    lca = (PyArrayObject *)PyArray_SimpleNew(1, nd, NPY_FLOAT64);
    if (!bs || !aa || !fa || !ga || !lca) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto out;
    }
    for (int64_t k = 0; k < K; k++) bs[k] = (const double *)PyArray_DATA(Ba) + k * n;
    monge_grid grid = {d, lens, axes};
    monge_barycenter_params par;
    bary_params(&par, eps, tol, max_iter, debiased, nthreads, anderson);
    progress_ctx pctx = {callback != Py_None ? callback : NULL, bind_now(), 0, 0};
    par.progress = bind_progress_cb;
    par.progress_ctx = &pctx;
    double err = 0.0;
    int64_t it = 0;
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = monge_barycenter_grid(K, &grid, bs, (const double *)PyArray_DATA(wa), &par,
                               (double *)PyArray_DATA(aa), (double *)PyArray_DATA(fa),
                               (double *)PyArray_DATA(ga), (double *)PyArray_DATA(lca), &err, &it);
    Py_END_ALLOW_THREADS
    PyObject *grads = NULL;
    if (grad && (st == MONGE_OK || st == MONGE_ENOCONV)) {
        grads = bary_grads(K, n, n, 0, NULL, &grid, bs, (const double *)PyArray_DATA(wa), NULL,
                           NULL, &par, aa, fa, ga, lca);
        if (!grads) goto out;
    }
    result = bary_result(st, &pctx, aa, fa, ga, lca, err, it, grads);
    Py_XDECREF(grads);
out:
    PyMem_Free(bs);
    Py_XDECREF(Ba);
    Py_XDECREF(wa);
    Py_XDECREF(ca);
    Py_XDECREF(la);
    Py_XDECREF(aa);
    Py_XDECREF(fa);
    Py_XDECREF(ga);
    Py_XDECREF(lca);
    return result;
}

PyMethodDef monge_bind_barycenter_methods[] = {
    {"barycenter", BIND_KW(py_barycenter), METH_VARARGS | METH_KEYWORDS,
     "Fixed-support entropic barycenter (private: use monge.barycenter)."},
    {"barycenter_batch", BIND_KW(py_barycenter_batch), METH_VARARGS | METH_KEYWORDS,
     "A batch of fixed-support barycenters (private: use monge.barycenter)."},
    {"barycenter_grid", BIND_KW(py_barycenter_grid), METH_VARARGS | METH_KEYWORDS,
     "Fixed-support barycenter on a regular grid (private: use monge.barycenter)."},
    {"free_barycenter", BIND_KW(py_free_barycenter), METH_VARARGS | METH_KEYWORDS,
     "Free-support barycenter (private: use monge.free_support_barycenter)."},
    {NULL, NULL, 0, NULL}};
