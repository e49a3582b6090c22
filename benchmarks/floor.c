/* The machine floor for one Sinkhorn half-iteration: a log-sum-exp pass over n x m entries and
 * nothing else (values already in L1, no cost evaluation, no memory traffic), with the same
 * vectorised exp and the same threading as the library.  A full iteration is two such passes.
 *
 *   floor N M [DTYPE] [THREADS]   prints the median seconds of one pass over N*M entries
 */
#include "../csrc/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

MONGE_HOT static double pass_f64(const double *v, int64_t n, int64_t m, double *out, int nth)
{
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(nth))
    for (int64_t i = 0; i < n; i++) {
        const double s = 0.001 * (double)(i % 7);
        double acc = 0;
        MONGE_SIMD_SUM(acc)
        for (int64_t j = 0; j < m; j++) acc += monge_exp((v[j] - s) * 100.0);
        out[i] = s + 0.01 * log(acc);
    }
    return out[n - 1];
}

MONGE_HOT static double pass_f32(const float *v, int64_t n, int64_t m, double *out, int nth)
{
    MONGE_PRAGMA(omp parallel for schedule(static) num_threads(nth))
    for (int64_t i = 0; i < n; i++) {
        const float s = 0.001f * (float)(i % 7);
        float acc = 0;
        MONGE_SIMD_SUM(acc)
        for (int64_t j = 0; j < m; j++) acc += monge_expf((v[j] - s) * 100.0f);
        out[i] = s + 0.01 * log(acc);
    }
    return out[n - 1];
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor N M [f64|f32] [threads]\n");
        return 2;
    }
    int64_t n = atoll(argv[1]), m = atoll(argv[2]);
    int f32 = argc > 3 && argv[3][0] == 'f' && argv[3][1] == '3';
    int nth = argc > 4 ? atoi(argv[4]) : 1;
#ifdef _OPENMP
    if (argc <= 4) nth = omp_get_max_threads();
#endif
    /* the row is m entries, but it is reused from cache: the floor has no memory traffic */
    const int64_t L = m < 512 ? m : 512;
    double *v = malloc(sizeof(double) * (size_t)m), *out = malloc(sizeof(double) * (size_t)n);
    float *vf = malloc(sizeof(float) * (size_t)m);
    for (int64_t j = 0; j < m; j++) {
        v[j] = -0.01 * (double)(j % L) / (double)L;
        vf[j] = (float)v[j];
    }
    double t[15], sink = 0;
    for (int r = 0; r < 15; r++) {
        double t0 = now();
        sink += f32 ? pass_f32(vf, n, m, out, nth) : pass_f64(v, n, m, out, nth);
        t[r] = now() - t0;
    }
    qsort(t, 15, sizeof(double), cmp);
    printf("%.6e %g\n", t[7], sink);
    free(v);
    free(vf);
    free(out);
    return 0;
}
