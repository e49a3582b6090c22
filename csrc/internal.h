/* Internal helpers of the monge C library: not part of the public API.
 *
 * - MONGE_HOT marks the hot kernels: with GCC on x86-64 Linux they are compiled three times
 *   (AVX-512, AVX2+FMA, baseline x86-64) and the loader picks the best one for the running CPU
 *   (target_clones / ifunc), so the default build stays portable.  `MONGE_NATIVE` (the opt-in
 *   -march=native build) and `MONGE_NO_CLONES` turn the dispatch off.
 * - monge_exp / monge_expf: exp written so that `#pragma omp simd` vectorises it without libmvec
 *   or -ffast-math (which would let the compiler drop NaN checks elsewhere).  Cody–Waite range
 *   reduction x = k ln2 + r, |r| <= ln2/2, then a Taylor polynomial of exp(r) evaluated with Estrin's
 *   scheme (degree 12: relative error below 2e-16 on the reduced range; degree 7 for float, below
 *   6e-9), and 2^k assembled in the exponent bits.  Arguments below the underflow threshold give
 *   exactly 0; above the overflow threshold the result saturates at exp(709) (exp(88) in float),
 *   which callers detect through their range checks; NaN propagates.
 */
#ifndef MONGE_INTERNAL_H
#define MONGE_INTERNAL_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(MONGE_NATIVE) && !defined(MONGE_NO_CLONES)
#define MONGE_HAVE_CLONES 1
#define MONGE_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MONGE_HAVE_CLONES 0
#define MONGE_HOT
#endif

#define MONGE_INLINE static inline __attribute__((always_inline))

#ifdef _OPENMP
#define MONGE_PRAGMA(x) _Pragma(#x)
#else
#define MONGE_PRAGMA(x)
#endif
#define MONGE_SIMD MONGE_PRAGMA(omp simd)
#define MONGE_SIMD_SUM(v) MONGE_PRAGMA(omp simd reduction(+ : v))
#define MONGE_SIMD_MAX(v) MONGE_PRAGMA(omp simd reduction(max : v))

/* Number of threads to use for a call that asked for `requested` (<= 0: the library default). */
int monge_resolve_threads(int requested);
/* The status of a batch from its problems' statuses: the first hard error (anything but OK and
 * ENOCONV, whose outputs are still valid), else ENOCONV if any problem stopped at max_iter, else OK.
 * A batch must never report ENOCONV while another problem wrote nothing. */
int monge_batch_status(int64_t B, const int *status);

/* Raw costs of a prepared float64 geometry (geometry.c), for solvers that price arcs one segment at
 * a time (the network simplex) instead of through the entropic kernels:
 * - monge_geom_cost_row: C_{i, j} for j in [j0, j0 + len) (row i of C^T when transpose), a pointer
 *   into the dense matrix or into buf (len doubles).  Online, the formula is that of every kernel.
 * - monge_geom_points: side 0 (x) or 1 (y) as n x d / m x d rows the costs are computed from
 *   (normalised copies for the cosine cost); NULL for a dense geometry. */
struct monge_geom_work;
const double *monge_geom_cost_row(const struct monge_geom_work *w, int transpose, int64_t i,
                                  int64_t j0, int64_t len, double *buf);
const double *monge_geom_points(const struct monge_geom_work *w, int side);

/* exp for sums of many terms: monge_exp / monge_expf without the final select, so arguments below
 * the underflow threshold give exp(lo) (about 3e-308 / 2e-38) instead of 0; a sum that small is
 * caught by the caller's range check anyway. */
#define MONGE_EXP_LO (-708.0) /* below: monge_exp gives 0, the _sum variants exp(lo) */
#define MONGE_EXPF_LO (-87.0f)

MONGE_INLINE double monge_exp_sum(double x)
{
    const double xc = x < MONGE_EXP_LO ? MONGE_EXP_LO : x;
    const double shifter = 0x1.8p52;
    const double xh = xc > 709.0 ? 709.0 : xc;
    double t = xh * 0x1.71547652b82fep0 + shifter; /* k = round(x / ln2) in the low mantissa bits */
    double k = t - shifter;
    double r = xh - k * 0x1.62e42fefa3800p-1; /* ln2, high part (exact product for |k| < 2^11) */
    r = r - k * 0x1.ef35793c76730p-45;        /* ln2, low part */
    double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    double p01 = 1.0 + r;
    double p23 = 0.5 + r * (1.0 / 6.0);
    double p45 = 1.0 / 24.0 + r * (1.0 / 120.0);
    double p67 = 1.0 / 720.0 + r * (1.0 / 5040.0);
    double p89 = 1.0 / 40320.0 + r * (1.0 / 362880.0);
    double pab = 1.0 / 3628800.0 + r * (1.0 / 39916800.0);
    double pc = 1.0 / 479001600.0;
    double p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67) + r8 * ((p89 + r2 * pab) + r4 * pc);
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023u) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* The float exp's argument reduction of xh in [MONGE_EXPF_LO, 88]: xh = k ln2 + r with
 * |r| <= ln2/2; returns r and 2^k in *scale. */
MONGE_INLINE float monge_expf_reduce_in(float xh, float *scale)
{
    const float shifter = 0x1.8p23f;
    float t = xh * 0x1.715476p0f + shifter;
    float k = t - shifter;
    float r = xh - k * 0x1.62e400p-1f;
    r = r - k * 0x1.7f7d1cp-20f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits + 127u) << 23;
    memcpy(scale, &bits, sizeof *scale);
    return r;
}

/* ... of x clamped to the range first (NaN stays NaN). */
MONGE_INLINE float monge_expf_reduce(float x, float *scale)
{
    const float xc = x < MONGE_EXPF_LO ? MONGE_EXPF_LO : x;
    return monge_expf_reduce_in(xc > 88.0f ? 88.0f : xc, scale);
}

/* The same clamp with its upper end on the bits, for the hottest loop (monge_expf5_sum): one
 * integer minimum where the float compare costs a compare and a blend.  Positive floats order as
 * signed integers and every negative one is below them, so it equals the float clamp for every
 * x but a NaN with the sign bit clear, which it maps to 88: the NaNs that invalid operations make
 * on x86 have the sign bit set and stay NaN; NaN inputs must be refused beforehand. */
MONGE_INLINE float monge_expf_reduce_fast(float x, float *scale)
{
    const float xc = x < MONGE_EXPF_LO ? MONGE_EXPF_LO : x;
    int32_t sb;
    memcpy(&sb, &xc, sizeof sb);
    const int32_t hib = 0x42B00000; /* the bits of 88.0f */
    sb = sb < hib ? sb : hib;
    float xh;
    memcpy(&xh, &sb, sizeof xh);
    return monge_expf_reduce_in(xh, scale);
}

MONGE_INLINE float monge_expf_sum(float x)
{
    float scale;
    const float r = monge_expf_reduce(x, &scale);
    float r2 = r * r, r4 = r2 * r2;
    float p01 = 1.0f + r;
    float p23 = 0.5f + r * (1.0f / 6.0f);
    float p45 = 1.0f / 24.0f + r * (1.0f / 120.0f);
    float p67 = 1.0f / 720.0f + r * (1.0f / 5040.0f);
    float p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67);
    return p * scale;
}

/* monge_expf_sum with a degree-5 polynomial fitted for the least relative error on
 * [-ln2/2, ln2/2] (2e-7 in float, about 2 ulp, against monge_expf's 1 ulp): for long float sums,
 * whose own rounding is larger, at three fewer operations per term.  x must not be a positive NaN
 * (see monge_expf_reduce_fast). */
MONGE_INLINE float monge_expf5_sum(float x)
{
    float scale;
    const float r = monge_expf_reduce_fast(x, &scale);
    const float r2 = r * r;
    const float q = (0x1.fffdfcp-2f + r * 0x1.5557aep-3f) + r2 * (0x1.5729f0p-5f + r * 0x1.106284p-7f);
    const float p = (1.0f + r) + r2 * q;
    return p * scale;
}

MONGE_INLINE double monge_exp(double x) { return x < MONGE_EXP_LO ? 0.0 : monge_exp_sum(x); }

MONGE_INLINE float monge_expf(float x) { return x < MONGE_EXPF_LO ? 0.0f : monge_expf_sum(x); }

/* The multiscale solver's test hook (sinkhorn/multiscale.c, drift_check): set by the C tests. */
extern int monge_ms_check_drift;
extern int64_t monge_ms_drift_checked, monge_ms_drift_below;

#endif
