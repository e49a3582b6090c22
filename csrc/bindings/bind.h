/* Shared declarations of the binding files (csrc/bindings/): the only code that includes
 * Python.h and the NumPy C API.  Each binding file covers one C module and exports a method table;
 * module.c gathers the tables into the monge._core module.
 *
 * Conventions for every binding function: parse arguments, convert arrays to C-contiguous
 * float64/float32 (copying only when needed, so strided and Fortran-ordered inputs work), re-check
 * shapes, release the GIL for the computation, wrap the results.  Friendly validation with messages
 * naming each argument lives in the Python layer (monge/_validate.py); the checks here guarantee
 * that no call can crash the interpreter even when the private module is called directly.
 *
 * Interrupts: the C solvers call a progress callback every iteration.  bind_progress_cb re-takes
 * the GIL at most every 0.1 s (or every iteration when a Python callback is given) on the calling
 * thread, runs PyErr_CheckSignals and the Python callback, and cancels the solve on Ctrl-C or an
 * exception; worker threads of a batched solve only read the shared stop flag. */
#ifndef MONGE_BIND_H
#define MONGE_BIND_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL monge_ARRAY_API
#ifndef MONGE_BIND_MAIN
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include <stdint.h>

#include "../monge.h"

/* Cast a keyword function for a PyMethodDef entry. */
#define BIND_KW(fn) ((PyCFunction)(void (*)(void))(fn))

typedef struct {
    PyObject *callback; /* Python callable(iteration, error) -> truthy to stop, or NULL */
    double last;        /* time of the last visit to Python */
    int stop;           /* set once: every later call returns 1 */
    int user_stop;      /* the Python callback asked to stop (not an error) */
} progress_ctx;

/* Batched geometries: C (B, n, m) or x (B, n, d) and y (B, m, d). */
typedef struct {
    PyArrayObject *C, *x, *y;
    int type;
    int64_t B, n, m, d;
    monge_geometry *geoms;
} batch_geom;

/* Monotonic clock in seconds. */
double bind_now(void);
/* True outside a parallel region, or on OpenMP's primary thread (the caller). */
int bind_on_calling_thread(void);
/* The C solvers' progress callback: vctx is a progress_ctx. */
int bind_progress_cb(void *vctx, int64_t iter, double err);
/* An input array as C-contiguous aligned `type` with `ndim` dimensions; NULL + ValueError else. */
PyArrayObject *bind_as_array(PyObject *obj, int type, int ndim, const char *name);
/* Cost name -> enum; -1 + ValueError for an unknown name. */
int bind_parse_cost(const char *name, monge_cost *out);
/* A non-OK status as a Python exception (always returns NULL). */
PyObject *bind_raise_status(int st, const char *what);
void bind_batch_geom_free(batch_geom *bg);
/* C (B, n, m) or x (B, n, d) and y (B, m, d) (without the leading B when !batched). */
int bind_batch_geom_parse(PyObject *C, PyObject *x, PyObject *y, const char *cost, double p,
                          double lam, int batched, batch_geom *bg);
/* Weights (B, len) float64, or NULL for uniform (None). */
int bind_parse_weights(PyObject *w, int64_t B, int64_t len, int batched, const char *name,
                       PyArrayObject **out);

/* Potentials for a solve: the copies of a warm start (f0, g0), both or neither given, of shapes
 * (B, n), (B, m) when ndim = 2 or (n,), (m,) when ndim = 1 (*warm = 1), or zeros (*warm = 0).
 * -1 + ValueError / TypeError naming `init` else. */
int bind_potentials(PyObject *f0, PyObject *g0, int ndim, int64_t B, int64_t n, int64_t m,
                    PyArrayObject **fa, PyArrayObject **ga, int *warm);

/* The Sinkhorn options as they cross the boundary: each object NULL or None keeps the C default
 * (monge_sinkhorn_params_init); eps_scaling and kernel are names (bind_eps_scaling_names,
 * bind_kernel_names), overrelax 'auto' or a number.  Range checks stay with the C solver. */
typedef struct {
    PyObject *tol, *max_iter, *eps_scaling, *eps_start, *scaling_factor, *stage_tol, *overrelax,
        *kernel, *anderson;
} bind_sk_options;
extern const char *const bind_eps_scaling_names[3]; /* indexed by monge_eps_scaling */
extern const char *const bind_kernel_names[3];      /* indexed by monge_kernel_mode */
/* Fills par (already initialised) from the options; -1 + TypeError/ValueError naming the option. */
int bind_sinkhorn_options(const bind_sk_options *o, monge_sinkhorn_params *par);
/* A name of `names` (count of them) as its index; None keeps *out.  -1 + ValueError else. */
int bind_parse_choice(PyObject *obj, const char *arg, const char *const *names, int count, int *out);

/* Method tables, one per binding file, each ending with a {NULL} sentinel. */
extern PyMethodDef monge_bind_sinkhorn_methods[];
extern PyMethodDef monge_bind_losses_methods[];
extern PyMethodDef monge_bind_emd_methods[];
extern PyMethodDef monge_bind_ctc_methods[];
extern PyMethodDef monge_bind_align_methods[];
extern PyMethodDef monge_bind_spectr_methods[];
extern PyMethodDef monge_bind_smooth_methods[];
extern PyMethodDef monge_bind_barycenter_methods[];
extern PyMethodDef monge_bind_gromov_methods[];
extern PyMethodDef monge_bind_multiscale_methods[];

#endif
