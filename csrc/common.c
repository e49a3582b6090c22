#include "common.h"
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const char *monge_status_str(int status)
{
    switch (status) {
    case MONGE_OK: return "success";
    case MONGE_EINVAL: return "invalid argument";
    case MONGE_ENOMEM: return "out of memory";
    case MONGE_ENOCONV: return "did not converge within the iteration limit";
    case MONGE_EINTR: return "interrupted";
    case MONGE_ENONFINITE: return "non-finite value in the iterates";
    case MONGE_ELINESEARCH: return "the line search found no decrease";
    case MONGE_ESTAGE: return "max_iter ran out during eps-scaling, before the target eps";
    default: return "unknown status";
    }
}

int monge_batch_status(int64_t B, const int *status)
{
    int st = MONGE_OK;
    for (int64_t k = 0; k < B; k++) {
        if (status[k] != MONGE_OK && status[k] != MONGE_ENOCONV) return status[k];
        if (status[k] == MONGE_ENOCONV) st = MONGE_ENOCONV;
    }
    return st;
}

static int g_num_threads = 0; /* 0: not yet initialised */

void monge_set_num_threads(int n)
{
#ifdef _OPENMP
    g_num_threads = n > 0 ? n : omp_get_max_threads();
#else
    (void)n;
    g_num_threads = 1;
#endif
}

int monge_get_num_threads(void)
{
    if (g_num_threads <= 0) monge_set_num_threads(0);
    return g_num_threads;
}

int monge_resolve_threads(int requested)
{
    return requested > 0 ? requested : monge_get_num_threads();
}

int monge_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

const char *monge_simd_level(void)
{
#if MONGE_HAVE_CLONES
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
    return "generic";
}
