/* monge: common definitions shared by every layer of the C library.
 *
 * Status codes, element types, the progress callback and the thread-count setting.  Nothing here
 * prints, exits or touches Python. */
#ifndef MONGE_COMMON_H
#define MONGE_COMMON_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MONGE_VERSION "0.1.0"

/* Every public function returns one of these and writes its results through pointers. */
typedef enum {
    MONGE_OK = 0,
    MONGE_EINVAL = 1,    /* an argument is invalid (shape, value, NULL pointer) */
    MONGE_ENOMEM = 2,    /* a work buffer could not be allocated */
    MONGE_ENOCONV = 3,   /* the iteration limit was reached before the tolerance */
    MONGE_EINTR = 4,     /* the progress callback asked to stop */
    MONGE_ENONFINITE = 5, /* a NaN or infinity appeared in the iterates (input out of range) */
    MONGE_ELINESEARCH = 6, /* a line search found no decrease (L-BFGS solvers) */
    MONGE_ESTAGE = 7      /* max_iter ran out during eps-scaling, before the target eps (losses:
                             their terms would belong to different eps) */
} monge_status;

/* Human-readable text for a status code (static storage, never NULL). */
const char *monge_status_str(int status);

/* Element type of the arrays a geometry points to. */
typedef enum { MONGE_F64 = 0, MONGE_F32 = 1 } monge_dtype;

/* Progress callback: called once per iteration with the iteration count and the current
 * error.  A non-zero return cancels the computation, which then returns MONGE_EINTR.  It may be
 * called from any thread (batched solves call it from worker threads), never concurrently with
 * itself for one problem. */
typedef int (*monge_progress_fn)(void *ctx, int64_t iter, double error);

/* Threads used by parallel regions when a call passes nthreads <= 0.  The default is what OpenMP
 * reports at first use (OMP_NUM_THREADS or the number of cores).  Without OpenMP it is always 1. */
void monge_set_num_threads(int n);
int monge_get_num_threads(void);
/* 1 when the library was compiled with OpenMP. */
int monge_has_openmp(void);
/* Name of the instruction set the hot kernels dispatch to on this machine ("avx512", "avx2", "generic"). */
const char *monge_simd_level(void);

#ifdef __cplusplus
}
#endif
#endif
