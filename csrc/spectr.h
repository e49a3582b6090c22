/* monge SpecTr: draft selection for speculative decoding as optimal transport with a membership
 * cost (Sun et al., "SpecTr: Fast Speculative Decoding via Optimal Transport", NeurIPS 2023).
 *
 * Notation (the paper's): p is the DRAFT distribution (small model), q the TARGET distribution
 * (large model), both over a vocabulary of V tokens.  k drafts X_1..X_k are drawn i.i.d. from p;
 * a draft selection rule outputs Y with Y ~ q exactly, and accepts when Y is one of the drafts.
 *
 * K-SEQ (the paper's Algorithm 2).  For rho >= 1 let
 *     beta(rho) = sum_x min(p(x), q(x) / rho).
 * Draft i (in order) is accepted with probability min(1, q(X_i) / (rho p(X_i))); the first accepted
 * draft is the output.  A single draft is accepted and equal to x with probability
 * min(p(x), q(x)/rho), so the output equals x through an accepted draft with probability
 *     c(rho) min(p(x), q(x)/rho),   c(rho) = sum_{i<k} (1 - beta)^i = (1 - (1 - beta)^k) / beta.
 * When every draft is rejected (probability (1 - beta)^k), Y is drawn from the residual
 *     p_res(x) = [q(x) - c(rho) min(p(x), q(x)/rho)] / (1 - beta)^k,
 * which makes Y ~ q exactly for every rho.  p_res is a distribution (non-negative) iff
 * c(rho) <= rho, i.e. h(rho) = 1 - (1 - beta(rho))^k - rho beta(rho) <= 0.  h is continuous and
 * non-increasing (beta falls, rho beta = sum min(rho p, q) rises), h(1) >= 0 and h(k) <= 0, and the
 * acceptance 1 - (1 - beta(rho))^k falls with rho: the best valid rho is the root rho* of h on
 * [1, k].  At the root the residual is p_res = (q - rho* p)_+ / (1 - beta(rho*))^k, the acceptance
 * is rho* beta(rho*), and for k = 1, rho* = 1: standard speculative sampling (maximal coupling,
 * acceptance sum_x min(p, q), residual (q - p)_+ normalised).
 *
 * Root finding: with ratios t_x = q(x)/p(x) sorted, beta(rho) = A + B/rho on each interval between
 * consecutive ratios (A = p-mass of {t >= rho}, B = q-mass of {t < rho}).  The breakpoints are
 * scanned with prefix sums to find the interval holding the root, then the root is solved in it
 * by safeguarded Newton/bisection to machine precision.  Only ratios in [1, k] can be breakpoints,
 * so the tokens are partitioned in O(V) and only those are sorted: O(V + m log m) per position,
 * m = #{x : 1 <= q(x)/p(x) <= k}.  The
 * returned rho is the upper end of the final bracket, so h(rho) <= 0 as computed and the residual
 * stays a distribution.
 *
 * Optimal acceptance of k i.i.d. drafts (OT with membership cost; the paper's LP value):
 *     alpha*(p, q, k) = min_{A subset of V}  q(A^c) + 1 - (1 - p(A))^k.
 * Exactly, in O(V log V): with g(s) = 1 - (1 - s)^k concave, g(s) = min_t g(t) + g'(t)(s - t),
 * so min_A [g(p(A)) - q(A)] = min_t [g(t) - t g'(t) + min_A sum_{x in A} (g'(t) p(x) - q(x))], and
 * the inner minimum is attained at the level set A = {x : q(x)/p(x) > g'(t)}.  Hence the minimum
 * over all subsets is attained at an upper level set of the ratio q/p, and scanning the V + 1
 * prefixes of the tokens sorted by decreasing ratio is exact.
 *
 * Randomness: a counter-based generator (splitmix64 finaliser as a hash).  Position b of a batch
 * uses the stream key hash(seed, stream + b), and its j-th uniform is hash(key + j): results depend
 * on (seed, stream, b) only, never on the number of threads.
 *
 * All distributions are rows of a B x V array with row stride ld (V, or 0 to share one row across
 * the batch).  Each row must be finite, non-negative and sum to 1 within MONGE_SPECTR_SUM_TOL
 * (the Python layer normalises exactly; the core re-checks and returns MONGE_EINVAL). */
#ifndef MONGE_SPECTR_H
#define MONGE_SPECTR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tolerance on |sum(row) - 1| accepted by the C core. */
#define MONGE_SPECTR_SUM_TOL 1e-6

typedef struct {
    uint64_t seed;   /* key of the random generator.  Default 0. */
    uint64_t stream; /* offset added to the position index when deriving its stream, so
                        successive calls with the same seed can use disjoint streams.  Default 0. */
    int draw_drafts; /* 1: draw the drafts i.i.d. from p inside the call (and write them to
                        `drafts`); 0: read them from `drafts`.  Default 0. */
    int nthreads;    /* threads; <= 0: the library default.  Default 0. */
} monge_spectr_params;

void monge_spectr_params_init(monge_spectr_params *par);

/* beta(rho) = sum_x min(p(x), q(x)/rho) for one row. */
double monge_spectr_beta(const double *p, const double *q, int64_t V, double rho);

/* rho* of K-SEQ for each of B rows with k[b] >= 1 drafts; rho (B) and, when not NULL,
 * accept (B) = 1 - (1 - beta(rho*))^k, the acceptance probability of K-SEQ. */
int monge_spectr_rho(int64_t B, int64_t V, const double *p, const double *q, int64_t ld,
                     const int64_t *k, double *rho, double *accept, int nthreads);

/* The K-SEQ residual distribution of each row (B x V, rows sum to 1, entries >= 0).  When the
 * drafts are never all rejected ((1 - beta)^k = 0, e.g. p = q) the residual is never used and q is
 * returned. */
int monge_spectr_residual(int64_t B, int64_t V, const double *p, const double *q, int64_t ld,
                          const int64_t *k, double *res, int nthreads);

/* K-SEQ draft selection for B positions.  drafts is B x kmax (token ids in [0, V)); row b uses its
 * first nk[b] drafts (1 <= nk[b] <= kmax; nk NULL: all kmax).  With par->draw_drafts the drafts are
 * drawn from p and written to `drafts`.  Outputs: token[b] (distributed as q), index[b] = the
 * accepted draft (0-based) or -1 when the token came from the residual, and rho[b] (may be NULL). */
int monge_spectr_select(const monge_spectr_params *par, int64_t B, int64_t V, const double *p,
                        const double *q, int64_t ld, int64_t kmax, const int64_t *nk,
                        int64_t *drafts, int64_t *token, int64_t *index, double *rho);

/* Exact optimal acceptance alpha*(p, q, k[b]) of OT with membership cost for k i.i.d. drafts. */
int monge_spectr_optimal_acceptance(int64_t B, int64_t V, const double *p, const double *q,
                                    int64_t ld, const int64_t *k, double *out, int nthreads);

#ifdef __cplusplus
}
#endif
#endif
