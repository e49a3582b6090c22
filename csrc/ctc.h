/* monge CTC loss: connectionist temporal classification (Graves et al. 2006), forward-backward
 * with a hand-written gradient.
 *
 * For one sample with frames t < T_n, log-probabilities lp[t, c] and target l_1..l_S (no blank),
 * the extended sequence l' = (blank, l_1, blank, ..., l_S, blank) has L = 2S + 1 states and
 *     p(l | x) = sum over alignments pi (paths through l' that may stay, step by one, or skip a
 *                blank between two different labels) of prod_t exp(lp[t, pi_t]),
 *     loss_n = -log p(l | x)   (+inf when no alignment fits in T_n frames).
 * Gradient: with the occupation probabilities gamma_t(c) = sum_{s: l'_s = c} alpha_t(s) beta_t(s)
 * / (exp(lp[t, l'_s]) p(l | x)),
 *     d loss_n / d lp[t, c] = -gamma_t(c)                       (lp as free variables)
 *     d loss_n / d z[t, c]  = softmax(lp[t])_c - gamma_t(c)      (lp = log_softmax(z): logits)
 * The second is what torch.nn.functional.ctc_loss returns as the gradient of its log_probs input.
 *
 * The recursions run in the probability domain with per-frame rescaling (emissions shifted by the
 * frame's largest log-probability among the sample's labels, alpha and beta renormalised every
 * frame), which is exact in double precision and vectorises; a sample whose rescaled recursion
 * underflows (log-probabilities more than ~700 apart within a frame) is redone in the log domain.
 */
#ifndef MONGE_CTC_H
#define MONGE_CTC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MONGE_CTC_GRAD_NONE = 0, MONGE_CTC_GRAD_LOGPROBS = 1, MONGE_CTC_GRAD_LOGITS = 2 } monge_ctc_grad;

/* log_probs: T x N x C (time-major, as torch), float64 or float32 (dtype).
 * targets: the labels of all samples concatenated; sample n's are targets[offsets[n] ..
 *   offsets[n] + target_lengths[n]), each in [0, C) and != blank.
 * input_lengths[n] in [1, T]; target_lengths[n] >= 0.
 * loss (N): -log p(l | x) per sample, +inf when impossible (0 with zero_infinity).
 * grad (T x N x C, same dtype; may be NULL when mode is NONE): weight[n] times the gradient of
 *   loss_n selected by mode, zero for frames t >= input_lengths[n] and for impossible samples.
 * Parallel over the samples; results do not depend on the thread count.  Returns MONGE_OK,
 * MONGE_EINVAL (shapes, lengths, labels), MONGE_ENONFINITE (NaN or +inf in a used log-prob, or
 * finite log-probs so large that the loss overflows: a NaN or -inf loss) or MONGE_ENOMEM. */
int monge_ctc(int64_t T, int64_t N, int64_t C, monge_dtype dtype, const void *log_probs,
              const int64_t *targets, const int64_t *offsets, const int64_t *input_lengths,
              const int64_t *target_lengths, int64_t blank, int zero_infinity, monge_ctc_grad mode,
              const double *weight, double *loss, void *grad, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
