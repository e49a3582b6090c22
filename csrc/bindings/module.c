/* monge._core: module initialisation.  The functions live in one binding file per C module
 * (sinkhorn.c, losses.c, ...); each exports a method table that is gathered here.  bind.h states
 * the conventions every binding follows. */
#define MONGE_BIND_MAIN
#include "bind.h"

/* ------------------------------------------------------------------ threads and build info */

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) return NULL;
    if (n < 1 || n > 4096) {
        PyErr_SetString(PyExc_ValueError, "n: number of threads must be in [1, 4096]");
        return NULL;
    }
    monge_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromLong(monge_get_num_threads());
}

static PyObject *py_build_info(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("{s:s,s:O,s:s}", "version", MONGE_VERSION, "openmp",
                         monge_has_openmp() ? Py_True : Py_False, "simd", monge_simd_level());
}

static PyMethodDef core_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O, "Set the default number of threads."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "Default number of threads."},
    {"build_info", py_build_info, METH_NOARGS, "Version, OpenMP and SIMD level of the build."},
    {NULL, NULL, 0, NULL}};

/* Every binding file's table; add a new module's table here (and its extern in bind.h). */
static PyMethodDef *const tables[] = {core_methods, monge_bind_sinkhorn_methods,
                                      monge_bind_losses_methods, monge_bind_emd_methods,
                                      monge_bind_ctc_methods, monge_bind_spectr_methods,
                                      monge_bind_align_methods, monge_bind_smooth_methods,
                                      monge_bind_barycenter_methods, monge_bind_gromov_methods,
                                      monge_bind_multiscale_methods};

#define MAX_METHODS 256
static PyMethodDef methods[MAX_METHODS + 1];

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_core",
                                    "monge C core (private: use the monge package).", -1, methods};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    int k = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const PyMethodDef *e = tables[t]; e->ml_name; e++) {
            if (k == MAX_METHODS) {
                PyErr_SetString(PyExc_SystemError, "monge._core: too many methods");
                return NULL;
            }
            methods[k++] = *e;
        }
    return PyModule_Create(&moddef);
}
