/* monge CTC loss: rescaled forward-backward with a log-domain fallback (see ctc.h). */
#include "ctc.h"
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    double *e;     /* T x L: emissions exp(lp - m_t) (log-probabilities in the log fallback) */
    double *alpha; /* T x L */
    double *beta;  /* 2 x L: the current and the next frame */
    double *r;     /* L */
    double *sk;    /* L + 2: 1 where the transition s-2 -> s is allowed */
    double *m;     /* T: per-frame shift */
} ctc_work;

static inline double lp_at(const void *lp, int f32, int64_t idx)
{
    return f32 ? (double)((const float *)lp)[idx] : ((const double *)lp)[idx];
}

static inline double lse3(double a, double b, double c)
{
    double m = a > b ? a : b;
    m = c > m ? c : m;
    if (m == -INFINITY) return -INFINITY;
    return m + log(exp(a - m) + exp(b - m) + exp(c - m));
}

/* Range of states s of frame t that lie on a complete alignment: [lo, hi]. */
static inline void state_range(int64_t t, int64_t Tn, int64_t L, int64_t *lo, int64_t *hi)
{
    int64_t l = L - 2 * (Tn - t);
    int64_t h = 2 * t + 1;
    *lo = l > 0 ? l : 0;
    *hi = h < L - 1 ? h : L - 1;
}

/* Writes w * (softmax(lp_t) or 0) into the gradient row g (length C). */
MONGE_HOT static void grad_base_row(const void *lp, int f32, int64_t base, int64_t C, double w,
                                    int logits, void *g)
{
    if (!logits || w == 0.0) {
        if (f32) memset((float *)g + base, 0, sizeof(float) * (size_t)C);
        else memset((double *)g + base, 0, sizeof(double) * (size_t)C);
        return;
    }
    if (f32) {
        const float *x = (const float *)lp + base;
        float *o = (float *)g + base;
        float mx = -INFINITY;
        for (int64_t c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        double s = 0.0;
        MONGE_SIMD_SUM(s)
        for (int64_t c = 0; c < C; c++) s += (double)monge_expf(x[c] - mx);
        const float k = (float)(w / s);
        MONGE_SIMD
        for (int64_t c = 0; c < C; c++) o[c] = k * monge_expf(x[c] - mx);
    } else {
        const double *x = (const double *)lp + base;
        double *o = (double *)g + base;
        double mx = -INFINITY;
        for (int64_t c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
        double s = 0.0;
        MONGE_SIMD_SUM(s)
        for (int64_t c = 0; c < C; c++) s += monge_exp(x[c] - mx);
        const double k = w / s;
        MONGE_SIMD
        for (int64_t c = 0; c < C; c++) o[c] = k * monge_exp(x[c] - mx);
    }
}

static inline void grad_add(void *g, int f32, int64_t idx, double v)
{
    if (f32) ((float *)g)[idx] += (float)v;
    else ((double *)g)[idx] += v;
}

/* One sample.  Returns MONGE_OK, or 1 when the rescaled recursion underflowed (caller falls back
 * to the log domain); *logp receives log p(l | x) (-inf when impossible). */
MONGE_HOT static int sample_scaled(int64_t T, int64_t N, int64_t C, const void *lp, int f32,
                         const int64_t *lab, int64_t S, int64_t blank, int64_t n, int64_t Tn,
                         ctc_work *w, double *logp)
{
    const int64_t L = 2 * S + 1;
    (void)T;
    double *e = w->e, *al = w->alpha, *sk = w->sk, *m = w->m;
    /* emissions, shifted per frame by the largest log-probability among the labels */
    for (int64_t t = 0; t < Tn; t++) {
        const int64_t base = (t * N + n) * C;
        double mt = lp_at(lp, f32, base + blank);
        for (int64_t k = 0; k < S; k++) {
            double v = lp_at(lp, f32, base + lab[k]);
            mt = v > mt ? v : mt;
        }
        if (mt == -INFINITY) { /* every label impossible at frame t */
            *logp = -INFINITY;
            return MONGE_OK;
        }
        m[t] = mt;
        double *et = e + t * L;
        const double xb = lp_at(lp, f32, base + blank);
        for (int64_t s = 0; s < L; s += 2) et[s] = xb;
        for (int64_t k = 0; k < S; k++) et[2 * k + 1] = lp_at(lp, f32, base + lab[k]);
        MONGE_SIMD
        for (int64_t s = 0; s < L; s++) et[s] = monge_exp(et[s] - mt);
    }
    double lp_sum = 0.0;
    /* forward */
    for (int64_t t = 0; t < Tn; t++) {
        double *at = al + t * L;
        const double *et = e + t * L;
        int64_t lo, hi;
        state_range(t, Tn, L, &lo, &hi);
        memset(at, 0, sizeof(double) * (size_t)L);
        double sum = 0.0;
        if (t == 0) {
            for (int64_t s = lo; s <= hi; s++) at[s] = et[s];
        } else {
            const double *ap = at - L;
            int64_t s0 = lo;
            for (; s0 <= hi && s0 < 2; s0++) at[s0] = (ap[s0] + (s0 ? ap[s0 - 1] : 0.0)) * et[s0];
            MONGE_SIMD
            for (int64_t s = s0; s <= hi; s++)
                at[s] = (ap[s] + ap[s - 1] + sk[s] * ap[s - 2]) * et[s];
        }
        MONGE_SIMD_SUM(sum)
        for (int64_t s = lo; s <= hi; s++) sum += at[s];
        if (!(sum > 0.0) || !isfinite(sum)) return 1;
        const double inv = 1.0 / sum;
        MONGE_SIMD
        for (int64_t s = lo; s <= hi; s++) at[s] *= inv;
        lp_sum += log(sum) + m[t];
    }
    /* the last frame's range is {L-2, L-1} (or {0} when S = 0): its normalised mass is 1 */
    *logp = lp_sum;
    return MONGE_OK;
}

/* Backward pass and gradient of the rescaled recursion (after sample_scaled succeeded). */
MONGE_HOT static int backward_scaled(int64_t N, int64_t C, const void *lp, int f32, const int64_t *lab,
                           int64_t S, int64_t blank, int64_t n, int64_t Tn, ctc_work *w,
                           double weight, int logits, void *g)
{
    const int64_t L = 2 * S + 1;
    const double *e = w->e, *al = w->alpha, *sk = w->sk;
    double *bc = w->beta, *bn = w->beta + L, *r = w->r;
    for (int64_t t = Tn - 1; t >= 0; t--) {
        const double *et = e + t * L, *at = al + t * L;
        int64_t lo, hi;
        state_range(t, Tn, L, &lo, &hi);
        double sum = 0.0;
        if (t == Tn - 1) {
            memset(bc, 0, sizeof(double) * (size_t)L);
            for (int64_t s = lo; s <= hi; s++) bc[s] = et[s];
        } else {
            double *tmp = bn; /* the previous current row becomes the next row */
            bn = bc;
            bc = tmp;
            memset(bc, 0, sizeof(double) * (size_t)L);
            const int64_t s1 = hi < L - 3 ? hi : L - 3;
            MONGE_SIMD
            for (int64_t s = lo; s <= s1; s++)
                bc[s] = (bn[s] + bn[s + 1] + sk[s + 2] * bn[s + 2]) * et[s];
            for (int64_t s = (s1 + 1 > lo ? s1 + 1 : lo); s <= hi; s++)
                bc[s] = (bn[s] + (s + 1 < L ? bn[s + 1] : 0.0)) * et[s];
        }
        MONGE_SIMD_SUM(sum)
        for (int64_t s = lo; s <= hi; s++) sum += bc[s];
        if (!(sum > 0.0) || !isfinite(sum)) return 1;
        const double inv = 1.0 / sum;
        MONGE_SIMD
        for (int64_t s = lo; s <= hi; s++) bc[s] *= inv;
        /* occupation: r_s = alpha beta / e, normalised over the frame */
        double z = 0.0;
        MONGE_SIMD_SUM(z)
        for (int64_t s = lo; s <= hi; s++) {
            double v = et[s] > 0.0 ? at[s] * bc[s] / et[s] : 0.0;
            r[s] = v;
            z += v;
        }
        if (!(z > 0.0) || !isfinite(z)) return 1;
        const int64_t base = (t * N + n) * C;
        grad_base_row(lp, f32, base, C, weight, logits, g);
        const double k = -weight / z;
        for (int64_t s = lo; s <= hi; s++) {
            if (r[s] == 0.0) continue;
            const int64_t c = (s & 1) ? lab[(s - 1) / 2] : blank;
            grad_add(g, f32, base + c, k * r[s]);
        }
    }
    return MONGE_OK;
}

/* The log-domain version of both passes (robust to any spread of the log-probabilities). */
static void sample_log(int64_t N, int64_t C, const void *lp, int f32, const int64_t *lab,
                       int64_t S, int64_t blank, int64_t n, int64_t Tn, ctc_work *w,
                       double weight, int want_grad, int logits, void *g, double *logp)
{
    const int64_t L = 2 * S + 1;
    double *x = w->e, *al = w->alpha, *sk = w->sk;
    double *bc = w->beta, *bn = w->beta + L, *r = w->r;
    for (int64_t t = 0; t < Tn; t++) {
        const int64_t base = (t * N + n) * C;
        for (int64_t s = 0; s < L; s++)
            x[t * L + s] = lp_at(lp, f32, base + ((s & 1) ? lab[(s - 1) / 2] : blank));
    }
    for (int64_t t = 0; t < Tn; t++) {
        double *at = al + t * L;
        const double *xt = x + t * L;
        int64_t lo, hi;
        state_range(t, Tn, L, &lo, &hi);
        for (int64_t s = 0; s < L; s++) at[s] = -INFINITY;
        for (int64_t s = lo; s <= hi; s++) {
            if (t == 0) {
                at[s] = xt[s];
                continue;
            }
            const double *ap = at - L;
            double a1 = s >= 1 ? ap[s - 1] : -INFINITY;
            double a2 = (s >= 2 && sk[s] > 0.0) ? ap[s - 2] : -INFINITY;
            at[s] = lse3(ap[s], a1, a2) + xt[s];
        }
    }
    const double *last = al + (Tn - 1) * L;
    double lpv = L >= 2 ? lse3(last[L - 1], last[L - 2], -INFINITY) : last[0];
    *logp = lpv;
    if (!want_grad || lpv == -INFINITY) return;
    for (int64_t t = Tn - 1; t >= 0; t--) {
        const double *xt = x + t * L, *at = al + t * L;
        int64_t lo, hi;
        state_range(t, Tn, L, &lo, &hi);
        if (t < Tn - 1) {
            double *tmp = bn;
            bn = bc;
            bc = tmp;
        }
        for (int64_t s = 0; s < L; s++) bc[s] = -INFINITY;
        for (int64_t s = lo; s <= hi; s++) {
            if (t == Tn - 1) {
                bc[s] = xt[s];
                continue;
            }
            double b1 = s + 1 < L ? bn[s + 1] : -INFINITY;
            double b2 = (s + 2 < L && sk[s + 2] > 0.0) ? bn[s + 2] : -INFINITY;
            bc[s] = lse3(bn[s], b1, b2) + xt[s];
        }
        double mz = -INFINITY;
        for (int64_t s = lo; s <= hi; s++) {
            r[s] = at[s] + bc[s] - xt[s];
            if (xt[s] == -INFINITY) r[s] = -INFINITY;
            mz = r[s] > mz ? r[s] : mz;
        }
        double z = 0.0;
        for (int64_t s = lo; s <= hi; s++) z += r[s] == -INFINITY ? 0.0 : exp(r[s] - mz);
        const int64_t base = (t * N + n) * C;
        grad_base_row(lp, f32, base, C, weight, logits, g);
        for (int64_t s = lo; s <= hi; s++) {
            if (r[s] == -INFINITY) continue;
            const int64_t c = (s & 1) ? lab[(s - 1) / 2] : blank;
            grad_add(g, f32, base + c, -weight * exp(r[s] - mz) / z);
        }
    }
}

static void zero_rows(void *g, int f32, int64_t N, int64_t C, int64_t n, int64_t t0, int64_t T)
{
    for (int64_t t = t0; t < T; t++) {
        const int64_t base = (t * N + n) * C;
        if (f32) memset((float *)g + base, 0, sizeof(float) * (size_t)C);
        else memset((double *)g + base, 0, sizeof(double) * (size_t)C);
    }
}

int monge_ctc(int64_t T, int64_t N, int64_t C, monge_dtype dtype, const void *log_probs,
              const int64_t *targets, const int64_t *offsets, const int64_t *input_lengths,
              const int64_t *target_lengths, int64_t blank, int zero_infinity, monge_ctc_grad mode,
              const double *weight, double *loss, void *grad, int nthreads)
{
    if (T < 1 || N < 1 || C < 1 || !log_probs || !offsets || !input_lengths || !target_lengths ||
        !loss || blank < 0 || blank >= C || (dtype != MONGE_F64 && dtype != MONGE_F32))
        return MONGE_EINVAL;
    const int want_grad = mode != MONGE_CTC_GRAD_NONE;
    if (want_grad && (!grad || !weight)) return MONGE_EINVAL;
    const int f32 = dtype == MONGE_F32;
    int64_t Smax = 0;
    for (int64_t n = 0; n < N; n++) {
        const int64_t Tn = input_lengths[n], S = target_lengths[n];
        if (Tn < 1 || Tn > T || S < 0 || offsets[n] < 0) return MONGE_EINVAL;
        if (S > 0 && !targets) return MONGE_EINVAL;
        for (int64_t k = 0; k < S; k++) {
            const int64_t c = targets[offsets[n] + k];
            if (c < 0 || c >= C || c == blank) return MONGE_EINVAL;
        }
        Smax = S > Smax ? S : Smax;
    }
    /* NaN or +inf in a log-probability is an error; -inf (probability 0) is allowed */
    for (int64_t n = 0; n < N; n++)
        for (int64_t t = 0; t < input_lengths[n]; t++) {
            const int64_t base = (t * N + n) * C;
            for (int64_t c = 0; c < C; c++) {
                double v = lp_at(log_probs, f32, base + c);
                if (v != v || v == INFINITY) return MONGE_ENONFINITE;
            }
        }
    const int64_t Lmax = 2 * Smax + 1;
    const int nt = monge_resolve_threads(nthreads);
    /* per thread: e, alpha (T x Lmax each), beta (2 Lmax), r (Lmax), sk (Lmax + 2), m (T) */
    const size_t per = (size_t)(2 * T * Lmax + 4 * Lmax + 2 + T);
    double *pool = malloc(sizeof(double) * per * (size_t)nt);
    if (!pool) return MONGE_ENOMEM;
    const int logits = mode == MONGE_CTC_GRAD_LOGITS;
    MONGE_PRAGMA(omp parallel num_threads(nt) if (N > 1 && T * Lmax * N > 20000))
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        double *b0 = pool + per * (size_t)tid;
        ctc_work w;
        w.e = b0;
        w.alpha = b0 + T * Lmax;
        w.beta = b0 + 2 * T * Lmax;
        w.r = w.beta + 2 * Lmax;
        w.sk = w.r + Lmax;
        w.m = w.sk + Lmax + 2;
        MONGE_PRAGMA(omp for schedule(dynamic, 1))
        for (int64_t n = 0; n < N; n++) {
            const int64_t Tn = input_lengths[n], S = target_lengths[n], L = 2 * S + 1;
            const int64_t *lab = S > 0 ? targets + offsets[n] : NULL;
            int64_t need = S;
            for (int64_t k = 1; k < S; k++) need += lab[k] == lab[k - 1];
            for (int64_t s = 0; s < L + 2; s++)
                w.sk[s] = (s >= 3 && s < L && (s & 1) && lab[(s - 1) / 2] != lab[(s - 3) / 2])
                              ? 1.0
                              : 0.0;
            const double wn = want_grad ? weight[n] : 0.0;
            double logp = -INFINITY;
            if (Tn >= need) {
                if (sample_scaled(T, N, C, log_probs, f32, lab, S, blank, n, Tn, &w, &logp)) {
                    sample_log(N, C, log_probs, f32, lab, S, blank, n, Tn, &w, wn, want_grad,
                               logits, grad, &logp);
                } else if (want_grad && logp > -INFINITY &&
                           backward_scaled(N, C, log_probs, f32, lab, S, blank, n, Tn, &w, wn,
                                           logits, grad)) {
                    sample_log(N, C, log_probs, f32, lab, S, blank, n, Tn, &w, wn, want_grad,
                               logits, grad, &logp);
                }
            }
            const int impossible = logp == -INFINITY;
            loss[n] = impossible ? (zero_infinity ? 0.0 : INFINITY) : -logp;
            if (want_grad) zero_rows(grad, f32, N, C, n, impossible ? 0 : Tn, T);
        }
    }
    free(pool);
    /* log-probs are finite but so large (a valid one is <= 0) that the sums overflowed */
    for (int64_t n = 0; n < N; n++)
        if (loss[n] != loss[n] || loss[n] == -INFINITY) return MONGE_ENONFINITE;
    return MONGE_OK;
}
