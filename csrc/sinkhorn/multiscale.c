/* Multiscale Sinkhorn on point clouds: a hierarchy of grid cells per cloud, coarse-to-fine
 * resolutions, and half-steps on truncated kernels with a bound of the mass they skip.
 *
 * Each cloud is sorted along a Morton (Z-order) curve of a grid of side s (cluster_scale), so a
 * cell of any level (side s 2^(l-1), l >= 1; level 0 = the points) is a contiguous run of points
 * and of its children.  At resolution r the solve runs on level-r items (cell centroids with the
 * cells' masses, or the points at r = 0) while eps >= alpha (side of level r)^2, then continues on
 * the children, each child starting from its parent's potential (the first half-steps at the finer
 * resolution are the c-transforms that extrapolate it).  The blocks of resolution r are the cells
 * of the first level above r holding MS_BLOCK items each on average.
 *
 * Truncation: a pair (I, J) of blocks holds the plan mass
 *   sum_{i in I, j in J} P_ij <= exp((LU_I + LV_J - Cmin_IJ) / eps) = exp(beta_IJ / eps),
 * with LU_I = eps log sum_{i in I} exp(u_i / eps), u_i = f_i + eps log a_i (LV likewise) and Cmin
 * the least cost between the two cells' bounding boxes.  A dual-tree descent from the top level
 * keeps a block pair when this bound is at least e^-tau of its row block's or its column block's
 * mass (a coarser pair is opened when it could hold such a pair); every pair not opened goes to a
 * skip list.  Half-steps run over the kept pairs only (each row block's kept columns packed once
 * per pass, so every row is one vector loop); each also bounds the mass on the skip list at the
 * current potentials, E: the sum over the list, evaluated exactly at each selection and scaled by
 * the items' growth since then (by its maximum while that is at most 2, else each term by its own
 * blocks'; exactly again when that exceeds the budget below).  The full
 * plan's L1 marginal violation is at most the truncated one plus 2E: that is the error the
 * stopping test sees.  When E exceeds bound_frac x the stage's tolerance, tau grows by 4 and the
 * pairs are re-selected; they are also re-selected at every stage (eps) start.
 * The symmetric problem OT(a, a) (the divergence's self-terms) runs the same step with one
 * potential and the relaxed update of monge_sinkhorn_symmetric (sk_sym_update).
 * Every row is computed by one thread in a fixed order and the reductions are serial, so results
 * do not depend on the thread count. */
#include "engine.h"
#include "../anderson.h"

#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define MS_MAXD 8
#define MS_TILE 256
#define MS_DOT_TILE 1024 /* entries summed in the element type before a double add */
#define MS_PAD 16         /* packed columns padded to a multiple of the widest vector */
#define MS_TOP 16         /* levels are added until both clouds have at most this many cells */
#define MS_BLOCK 6.0      /* blocks: the first level above the items with this many per cell */
#define MS_TAU_STEP 4.0   /* tau grows by this when the bound is too large */
#define MS_TAU_MAX 60.0
#define MS_GRID 16  /* children a side the batched block test takes (grid_test; more: pair_test) */
#define MS_LANES 8  /* its vector loop's width (doubles) */

void monge_ms_params_init(monge_ms_params *mp)
{
    mp->cluster_scale = 0;
    mp->truncation = MONGE_MS_TAU;
    mp->switch_ratio = MONGE_MS_SWITCH;
    mp->bound_frac = 0.1;
    mp->warm_tol = 0.0;
    mp->refine_anderson = MONGE_MS_REFINE_AA;
    mp->refine_stall = MONGE_MS_REFINE_STALL;
    mp->coarse_correction = MONGE_MS_COARSE;
}

/* ------------------------------------------------------------------ the cell hierarchy */
typedef struct {
    int64_t K;
    int64_t *child;  /* K + 1: first child (level - 1 index); level 0: NULL */
    double *lo, *hi; /* K x d boxes of the cells' points */
    void *pts;       /* d x K (transposed) in the dtype: the points or the cells' centroids */
    double *w, *lw;  /* masses and their logs (-inf at zero) */
    double *lu;      /* eps log sum over the cell of exp(u / eps) (work) */
    double *thr;     /* least positive log mass of the block descendants (work, per resolution) */
} ms_level;

typedef struct {
    int nlev;
    ms_level lev[64];
    int64_t *perm; /* sorted position -> input index */
} ms_tree;

/* u_i = pot_i + eps log w_i over a level's items (-inf at zero weight): the log-domain scaling
 * the truncation bounds, the plan passes and the slopes all start from. */
static void weighted_pot(const ms_level *L, const double *pot, double eps, double *out)
{
    for (int64_t i = 0; i < L->K; i++) out[i] = L->w[i] > 0 ? pot[i] + eps * L->lw[i] : -INFINITY;
}

static void tree_free(ms_tree *t)
{
    for (int l = 0; l < t->nlev; l++) {
        ms_level *L = &t->lev[l];
        free(L->child);
        free(L->lo);
        free(L->hi);
        free(L->pts);
        free(L->w);
        free(L->lw);
        free(L->lu);
        free(L->thr);
    }
    free(t->perm);
    memset(t, 0, sizeof *t);
}

typedef struct {
    uint64_t key;
    int64_t idx;
} ms_key;

static int key_cmp(const void *a, const void *b)
{
    const ms_key *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static double get_coord(const void *pts, monge_dtype dt, int64_t i, int64_t d, int64_t k)
{
    return dt == MONGE_F32 ? (double)((const float *)pts)[i * d + k] : ((const double *)pts)[i * d + k];
}

static void set_t(void *arr, monge_dtype dt, int64_t i, double v)
{
    if (dt == MONGE_F32) ((float *)arr)[i] = (float)v;
    else ((double *)arr)[i] = v;
}

static int level_alloc(ms_level *L, int64_t K, int64_t d, monge_dtype dt, int with_child)
{
    const size_t es = dt == MONGE_F32 ? sizeof(float) : sizeof(double);
    L->K = K;
    L->child = with_child ? malloc(sizeof(int64_t) * (size_t)(K + 1)) : NULL;
    L->lo = malloc(sizeof(double) * (size_t)(K * d));
    L->hi = malloc(sizeof(double) * (size_t)(K * d));
    L->pts = malloc(es * (size_t)(K * d));
    L->w = malloc(sizeof(double) * (size_t)K);
    L->lw = malloc(sizeof(double) * (size_t)K);
    L->lu = malloc(sizeof(double) * (size_t)K);
    L->thr = malloc(sizeof(double) * (size_t)K);
    return (with_child && !L->child) || !L->lo || !L->hi || !L->pts || !L->w || !L->lw || !L->lu ||
                   !L->thr
               ? MONGE_ENOMEM
               : MONGE_OK;
}

/* Level 0 of one cloud (points sorted along the Morton curve) and its fine keys. */
static int tree_base(ms_tree *t, const void *x, monge_dtype dt, int64_t n, int64_t d,
                     const double *w, const double *org, double s, int bits, uint64_t **keys)
{
    ms_key *kk = malloc(sizeof(ms_key) * (size_t)n);
    *keys = malloc(sizeof(uint64_t) * (size_t)n);
    t->perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!kk || !*keys || !t->perm) {
        free(kk);
        return MONGE_ENOMEM;
    }
    const uint64_t cmax = ((uint64_t)1 << bits) - 1;
    for (int64_t i = 0; i < n; i++) {
        uint64_t key = 0;
        for (int64_t k = 0; k < d; k++) {
            double c = floor((get_coord(x, dt, i, d, k) - org[k]) / s);
            uint64_t ci = c < 0 ? 0 : (c > (double)cmax ? cmax : (uint64_t)c);
            for (int b = 0; b < bits; b++) key |= ((ci >> b) & 1u) << (b * d + k);
        }
        kk[i].key = key;
        kk[i].idx = i;
    }
    qsort(kk, (size_t)n, sizeof *kk, key_cmp);
    t->nlev = 1;
    int st = level_alloc(&t->lev[0], n, d, dt, 0);
    if (st) {
        free(kk);
        return st;
    }
    ms_level *L = &t->lev[0];
    for (int64_t q = 0; q < n; q++) {
        const int64_t i = kk[q].idx;
        t->perm[q] = i;
        (*keys)[q] = kk[q].key;
        for (int64_t k = 0; k < d; k++) {
            const double c = get_coord(x, dt, i, d, k);
            L->lo[q * d + k] = L->hi[q * d + k] = c;
            set_t(L->pts, dt, k * n + q, c);
        }
        L->w[q] = w[i];
        L->lw[q] = w[i] > 0 ? log(w[i]) : -INFINITY;
    }
    free(kk);
    return MONGE_OK;
}

/* Adds the level above the top one: cells grouped by key >> shift. */
static int tree_up(ms_tree *t, const uint64_t *keys, int64_t d, monge_dtype dt, int shift,
                   uint64_t **ckeys)
{
    const ms_level *B = &t->lev[t->nlev - 1];
    const int64_t Kb = B->K;
    int64_t K = 0;
    for (int64_t q = 0; q < Kb; q++)
        if (q == 0 || (keys[q] >> shift) != (keys[q - 1] >> shift)) K++;
    ms_level *L = &t->lev[t->nlev];
    int st = level_alloc(L, K, d, dt, 1);
    uint64_t *nk = malloc(sizeof(uint64_t) * (size_t)K);
    double *cen = malloc(sizeof(double) * (size_t)d);
    if (st || !nk || !cen) {
        t->nlev++;
        free(nk);
        free(cen);
        return MONGE_ENOMEM;
    }
    int64_t c = -1;
    for (int64_t q = 0; q < Kb; q++)
        if (q == 0 || (keys[q] >> shift) != (keys[q - 1] >> shift)) {
            L->child[++c] = q;
            nk[c] = keys[q];
        }
    L->child[K] = Kb;
    for (int64_t c2 = 0; c2 < K; c2++) {
        double W = 0;
        for (int64_t k = 0; k < d; k++) {
            cen[k] = 0;
            L->lo[c2 * d + k] = INFINITY;
            L->hi[c2 * d + k] = -INFINITY;
        }
        const int64_t q0 = L->child[c2], q1 = L->child[c2 + 1];
        for (int64_t q = q0; q < q1; q++) W += B->w[q];
        for (int64_t q = q0; q < q1; q++) {
            const double wq = W > 0 ? B->w[q] / W : 1.0 / (double)(q1 - q0);
            for (int64_t k = 0; k < d; k++) {
                const double v = dt == MONGE_F32 ? (double)((const float *)B->pts)[k * Kb + q]
                                                 : ((const double *)B->pts)[k * Kb + q];
                cen[k] += wq * v;
                if (B->lo[q * d + k] < L->lo[c2 * d + k]) L->lo[c2 * d + k] = B->lo[q * d + k];
                if (B->hi[q * d + k] > L->hi[c2 * d + k]) L->hi[c2 * d + k] = B->hi[q * d + k];
            }
        }
        for (int64_t k = 0; k < d; k++) set_t(L->pts, dt, k * K + c2, cen[k]);
        L->w[c2] = W;
        L->lw[c2] = W > 0 ? log(W) : -INFINITY;
    }
    free(cen);
    t->nlev++;
    *ckeys = nk;
    return MONGE_OK;
}

/* Both hierarchies, built in lockstep on one grid until both tops have <= MS_TOP cells. */
static int build_trees(const monge_geometry *g, const double *a, const double *b, double s,
                       ms_tree *tx, ms_tree *ty, double *s_used)
{
    const int64_t d = g->d;
    double org[MS_MAXD], ext = 0;
    for (int64_t k = 0; k < d; k++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int64_t i = 0; i < g->n; i++) {
            const double v = get_coord(g->x, g->dtype, i, d, k);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        for (int64_t j = 0; j < g->m; j++) {
            const double v = get_coord(g->y, g->dtype, j, d, k);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        org[k] = lo;
        ext = hi - lo > ext ? hi - lo : ext;
    }
    const int bits = (int)(63 / d) < 21 ? (int)(63 / d) : 21;
    double smin = ext / (double)(((uint64_t)1 << bits) - 1);
    if (!(smin > 0)) smin = 1.0; /* every point at one place */
    uint64_t *kx = NULL, *ky = NULL;
    int st = tree_base(tx, g->x, g->dtype, g->n, d, a, org, smin, bits, &kx);
    if (!st) st = tree_base(ty, g->y, g->dtype, g->m, d, b, org, smin, bits, &ky);
    /* the finest cells: side s when given, else the first grid level holding MONGE_MS_POINTS
       points per cell on average */
    int l0 = 0;
    if (!st && s > 0) {
        while (l0 < bits && smin * ldexp(1.0, l0 + 1) <= s * 1.0000001) l0++;
    } else if (!st) {
        for (l0 = 0; l0 < bits; l0++) {
            const int sh = (int)d * l0;
            int64_t K = 1;
            for (int64_t q = 1; q < g->n; q++) K += (kx[q] >> sh) != (kx[q - 1] >> sh);
            K++;
            for (int64_t q = 1; q < g->m; q++) K += (ky[q] >> sh) != (ky[q - 1] >> sh);
            if ((double)(g->n + g->m) >= MONGE_MS_POINTS * (double)K) break;
        }
    }
    *s_used = smin * ldexp(1.0, l0);
    for (int l = 0; !st; l++) {
        uint64_t *nx = NULL, *ny = NULL;
        const int shift = l == 0 ? (int)d * l0 : (int)d;
        st = tree_up(tx, kx, d, g->dtype, shift, &nx);
        if (!st) st = tree_up(ty, ky, d, g->dtype, shift, &ny);
        free(kx);
        free(ky);
        kx = nx;
        ky = ny;
        if (st) break;
        for (int64_t q = 0; q < tx->lev[tx->nlev - 1].K; q++) kx[q] >>= shift;
        for (int64_t q = 0; q < ty->lev[ty->nlev - 1].K; q++) ky[q] >>= shift;
        const int64_t Kx = tx->lev[tx->nlev - 1].K, Ky = ty->lev[ty->nlev - 1].K;
        if ((Kx <= MS_TOP && Ky <= MS_TOP) || tx->nlev >= bits + 2) break;
    }
    free(kx);
    free(ky);
    return st;
}

static int ms_thread(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ one side of a pass */
/* Leading dimension of a packing buffer for up to maxcols columns, padding included. */
static int64_t ms_pack_cap(int64_t maxcols)
{
    return ((maxcols > 0 ? maxcols : 1) + MS_PAD - 1) / MS_PAD * MS_PAD;
}

typedef struct {
    int64_t nblocks, ncols, d, ldr, ldc;
    int64_t maxcols; /* most kept columns of a row block */
    void **pack;     /* per thread: room for maxcols x (d + 1) elements (softmin) */
    const int64_t *child, *ptr, *rng;
    const void *rpts, *cpts;
    int cost;
    double p;
} ms_pass;

#define T double
#define SFX f64
#define EXP monge_exp
#define EXPS monge_exp_sum
#define SQRT sqrt
#define FABS fabs
#define POW pow
#define SAFE_LO 1e-200
#define SAFE_HI 1e200
#include "multiscale_kernels.inc"
#undef T
#undef SFX
#undef EXP
#undef EXPS
#undef SQRT
#undef FABS
#undef POW
#undef SAFE_LO
#undef SAFE_HI
#define T float
#define SFX f32
#define EXP monge_expf
#define EXPS monge_expf5_sum
#define SQRT sqrtf
#define FABS fabsf
#define POW powf
#define SAFE_LO 1e-20
#define SAFE_HI 1e20
#include "multiscale_kernels.inc"
#undef T
#undef SFX
#undef EXP
#undef EXPS
#undef SQRT
#undef FABS
#undef POW
#undef SAFE_LO
#undef SAFE_HI

/* ------------------------------------------------------------------ selection */
/* A cell pair (lev, I, J) left out of the kept set.  c: the least cost between the boxes rounded
 * down to float (still a lower bound); for a pair the per-item bound dropped, that bound (at
 * most the box's) at E's last exact evaluation rounded up, or inf before one. */
typedef struct {
    uint32_t I, J;
    float c;
    uint8_t lev, per_item; /* per_item: dropped by the per-item bound (1 + its side for the
                              squared euclidean cost) */
} ms_skip;

typedef struct {
    uint32_t I, J;
} ms_pair;

/* One task of the descent: the kept block pairs and skips of its part of the frontier. */
typedef struct {
    ms_pair *pr;
    ms_skip *sk;
    int64_t np, capp, ns, caps;
} ms_part;

#define MS_TASKS 256 /* the descent's frontier is split in this many tasks (not per thread) */

typedef struct {
    const monge_geometry *g;
    ms_tree *tx, *ty;
    int r;          /* resolution: items at level r */
    int blk;        /* blocks at level blk > r */
    int64_t *bsx, *bsy; /* block -> first item (level r) of each cloud, K_blk + 1 */
    double *lcx, *lcy;  /* log of each block's count of items with mass (pair_beta_sq) */
    double tau, frac;
    int64_t n, m;   /* items */
    /* kept pairs as ranges of column items per row block (and transposed) */
    int64_t *rptr, *rrng, *cptr, *crng;
    int64_t rmax, cmax; /* most kept columns of a row block / rows of a column block */
    int64_t kept_blocks, kept_entries;
    ms_part parts[MS_TASKS + 1]; /* the skip list: parts[0] from the frontier, then the tasks' */
    int64_t nskip;
    double bound;   /* E at the last measured state */
    double E0;      /* E at the item lu saved in lu0x, lu0y */
    int e0_exact;   /* E0 is the exact evaluation there (else the blocks' drift bound) */
    double *lu0x, *lu0y;
    double *dx, *dy; /* per block: the most its items' lu grew since then (current_bound) */
    int fresh;       /* the per-item entries' c are at the current lu (select_pairs) */
    int reselect;
    int nsel;
    int nth;
    int mirror; /* the trees are equal and so are lu (the symmetric problem): a pair I < J is
                   tested once and its result also stands for J, I */
} ms_sel;

static ms_sel sel_make(const monge_geometry *g, ms_tree *tx, ms_tree *ty,
                       const monge_ms_params *mp, int nth)
{
    ms_sel S = {.g = g, .tx = tx, .ty = ty, .tau = mp->truncation, .frac = mp->bound_frac,
                .nth = nth};
    return S;
}

static void sel_clear(ms_sel *S)
{
    free(S->rptr);
    free(S->rrng);
    free(S->cptr);
    free(S->crng);
    S->rptr = S->rrng = S->cptr = S->crng = NULL;
    for (int t = 0; t <= MS_TASKS; t++) {
        free(S->parts[t].pr);
        free(S->parts[t].sk);
        memset(&S->parts[t], 0, sizeof S->parts[t]);
    }
    S->nskip = 0;
}

static double box_cmin(const ms_sel *S, int lev, int64_t I, int64_t J)
{
    const int64_t d = S->g->d;
    const double *lo1 = S->tx->lev[lev].lo + I * d, *hi1 = S->tx->lev[lev].hi + I * d;
    const double *lo2 = S->ty->lev[lev].lo + J * d, *hi2 = S->ty->lev[lev].hi + J * d;
    double c = 0;
    for (int64_t k = 0; k < d; k++) {
        double gap = lo2[k] - hi1[k];
        const double g2 = lo1[k] - hi2[k];
        gap = g2 > gap ? g2 : gap;
        if (gap <= 0) continue;
        c += S->g->cost == MONGE_COST_PNORM ? pow(gap, S->g->p) : gap * gap;
    }
    return S->g->cost == MONGE_COST_EUCLIDEAN ? sqrt(c) : c;
}

/* One side of pair_beta: eps log sum_{i in block B} e^((u_i - C(x_i, box of cell c)) / eps) +
 * LV_c (tr: the transposed side); with cnt, the max over the items in place of the sum (see
 * ms_item_box_lse). */
static double beta_side(const ms_sel *S, int tr, int64_t B, int64_t c, double eps, int64_t *cnt)
{
    const int64_t d = S->g->d;
    const ms_tree *t = tr ? S->ty : S->tx, *o = tr ? S->tx : S->ty;
    const int64_t *bs = tr ? S->bsy : S->bsx;
    const ms_level *L = &t->lev[S->r];
    const double *lo = o->lev[S->blk].lo + c * d, *hi = o->lev[S->blk].hi + c * d;
    const double v = S->g->dtype == MONGE_F32
                         ? ms_item_box_lse_f32(L->pts, L->K, d, S->g->cost, S->g->p, L->lu, bs[B],
                                               bs[B + 1], lo, hi, eps, cnt)
                         : ms_item_box_lse_f64(L->pts, L->K, d, S->g->cost, S->g->p, L->lu, bs[B],
                                               bs[B + 1], lo, hi, eps, cnt);
    return v == -INFINITY ? -INFINITY : v + o->lev[S->blk].lu[c];
}

/* One side of the block pair (ms_item_box2: B its block, c the other's; want as there). */
static void beta_side2(const ms_sel *S, int tr, int64_t B, int64_t c, double eps, double *out,
                       int want)
{
    const int64_t d = S->g->d;
    const ms_tree *t = tr ? S->ty : S->tx, *o = tr ? S->tx : S->ty;
    const int64_t *bs = tr ? S->bsy : S->bsx;
    const ms_level *L = &t->lev[S->r];
    const double *lo = o->lev[S->blk].lo + c * d, *hi = o->lev[S->blk].hi + c * d;
    const double *olo = t->lev[S->blk].lo + B * d, *ohi = t->lev[S->blk].hi + B * d;
    if (S->g->dtype == MONGE_F32)
        ms_item_box2_f32(L->pts, L->K, d, L->lu, bs[B], bs[B + 1], lo, hi, olo, ohi, eps, out,
                         want);
    else
        ms_item_box2_f64(L->pts, L->K, d, L->lu, bs[B], bs[B + 1], lo, hi, olo, ohi, eps, out,
                         want);
}

/* One of pair_beta_sq's two bounds exactly: side 0 the rows' costs to the column box with the
 * columns' E terms, side 1 the other way round. */
static double pair_side_sq(const ms_sel *S, int64_t I, int64_t J, double eps, int side)
{
    double A[2], B[2];
    beta_side2(S, side, side ? J : I, side ? I : J, eps, A, 1);
    if (!(A[0] > -INFINITY)) return -INFINITY;
    beta_side2(S, !side, side ? I : J, side ? J : I, eps, B, 2);
    return A[0] + B[1];
}

/* pair_beta_sq from the maxes of both sides (A: the rows', B: the columns', as ms_item_box2's
 * want 0) at a thr the upper end up0 did not decide: the bracket [lo, lo + eps log of both
 * counts] of the smaller product, then the exact sums where it straddles thr. */
/* The bracket [*lo, return value] of the smaller product from both sides' maxes, its side in
 * *side (pair_finish_sq, grid_test). */
static double pair_bracket_sq(const ms_sel *S, int64_t I, int64_t J, double eps, const double *A,
                              const double *B, double *lo, int *side)
{
    const double lo0 = A[0] + B[1], lo1 = B[0] + A[1];
    *side = lo1 < lo0;
    *lo = *side ? lo1 : lo0;
    return *lo + eps * (S->lcx[I] + S->lcy[J]);
}

static double pair_finish_sq(const ms_sel *S, int64_t I, int64_t J, double eps, double thr,
                             const double *A, const double *B, int *side)
{
    double lo;
    const double hi = pair_bracket_sq(S, I, J, eps, A, B, &lo, side);
    if (!(hi > -INFINITY) || hi < thr || lo >= thr) return hi < thr ? hi : lo;
    const double s0 = pair_side_sq(S, I, J, eps, *side);
    if (s0 < thr) return s0;
    const double s1 = pair_side_sq(S, I, J, eps, !*side);
    if (s1 < s0) *side = !*side;
    return s0 < s1 ? s0 : s1;
}

/* The bracket's upper end from the rows' max alone (the column block's whole mass). */
static double pair_up0_sq(const ms_sel *S, int64_t I, int64_t J, double eps, const double *A)
{
    return A[0] + eps * S->lcx[I] + S->ty->lev[S->blk].lu[J];
}

/* pair_beta for the squared euclidean cost: the cost is at least C(x_i, box J) + E_j and at least
 * C(y_j, box I) + E_i (ms_item_box2), so the mass is at most both products of a side's two sums
 * (pair_side_sq); the smaller, its side in *side.  With a finite thr, first from the maxes (each
 * sum lies in [max, max + eps log n], n the block's items with mass: lcx, lcy), the exact sums
 * only where that bracket straddles thr, and the second side only when the first is not below. */
static double pair_beta_sq(const ms_sel *S, int64_t I, int64_t J, double eps, double thr,
                           int *side)
{
    *side = 0;
    if (isfinite(thr)) {
        double A[2], B[2];
        beta_side2(S, 0, I, J, eps, A, 0);
        const double up0 = pair_up0_sq(S, I, J, eps, A);
        if (!(up0 >= thr)) return up0; /* below even with the column block's whole mass */
        beta_side2(S, 1, J, I, eps, B, 0);
        return pair_finish_sq(S, I, J, eps, thr, A, B, side);
    }
    const double s0 = pair_side_sq(S, I, J, eps, 0);
    const double s1 = pair_side_sq(S, I, J, eps, 1);
    *side = s1 < s0;
    return s0 < s1 ? s0 : s1;
}

/* eps log of a bound of the plan mass of block pair (I, J) at the block level, tighter than
 * LU_I + LV_J - Cmin(box I, box J): sum_{i in I, j in J} a_i b_j e^((f_i + g_j - C_ij) / eps) is at
 * most sum_i e^((u_i - C(x_i, box J)) / eps) e^(LV_J / eps), and likewise from J's side; the
 * smaller side.  Needs lu at level r.  With a finite thr only its side of thr is exact: the sums
 * are taken only where the bracket [max, max + eps log count] of a side straddles thr.  The
 * squared euclidean cost has its own, tighter (pair_beta_sq; its side in *sq_side). */
static double pair_beta(const ms_sel *S, int64_t I, int64_t J, double eps, double thr,
                        int *sq_side)
{
    if (S->g->cost == MONGE_COST_SQEUCLIDEAN) return pair_beta_sq(S, I, J, eps, thr, sq_side);
    *sq_side = 0;
    double side[2];
    for (int tr = 0; tr < 2; tr++) {
        const int64_t B = tr ? J : I, c = tr ? I : J;
        int64_t cnt = 0;
        const double mx = isfinite(thr) ? beta_side(S, tr, B, c, eps, &cnt) : NAN;
        const double top = cnt > 0 ? mx + eps * log((double)cnt) : mx;
        if (isfinite(thr) && (mx == -INFINITY || mx >= thr)) side[tr] = mx;
        else if (isfinite(thr) && top < thr) side[tr] = top;
        else side[tr] = beta_side(S, tr, B, c, eps, NULL);
        if (side[tr] < thr) return side[tr]; /* below thr whatever the other side */
    }
    return side[0] < side[1] ? side[0] : side[1];
}

/* lu of every level >= r from the item potentials u (level r), and the selection thresholds. */
static void fill_lu(ms_tree *t, int r, double eps, const double *pot)
{
    ms_level *L = &t->lev[r];
    weighted_pot(L, pot, eps, L->lu);
    for (int l = r + 1; l < t->nlev; l++) {
        ms_level *U = &t->lev[l], *D = &t->lev[l - 1];
        for (int64_t c = 0; c < U->K; c++) {
            double mx = -INFINITY;
            for (int64_t q = U->child[c]; q < U->child[c + 1]; q++) mx = D->lu[q] > mx ? D->lu[q] : mx;
            double s = 0;
            if (mx > -INFINITY)
                for (int64_t q = U->child[c]; q < U->child[c + 1]; q++) s += monge_exp((D->lu[q] - mx) / eps);
            U->lu[c] = mx > -INFINITY ? mx + eps * log(s) : -INFINITY;
        }
    }
}

static void fill_thr(ms_tree *t, int blk)
{
    ms_level *B = &t->lev[blk];
    for (int64_t c = 0; c < B->K; c++) B->thr[c] = B->w[c] > 0 ? B->lw[c] : INFINITY;
    for (int l = blk + 1; l < t->nlev; l++) {
        ms_level *U = &t->lev[l], *D = &t->lev[l - 1];
        for (int64_t c = 0; c < U->K; c++) {
            double mn = INFINITY;
            for (int64_t q = U->child[c]; q < U->child[c + 1]; q++) mn = D->thr[q] < mn ? D->thr[q] : mn;
            U->thr[c] = mn;
        }
    }
}

/* Grows *buf (elements of size es) to hold one more than *n; 0 on failure. */
static int grow(void **buf, int64_t n, int64_t *cap, size_t es)
{
    if (n < *cap) return 1;
    const int64_t c = *cap ? 2 * *cap : 256;
    void *q = realloc(*buf, es * (size_t)c);
    if (!q) return 0;
    *buf = q;
    *cap = c;
    return 1;
}

/* Appends a skip entry to P, with its mirror image when mirror and I != J (the side swaps). */
static int put_skip(ms_part *P, ms_skip k, int mirror)
{
    if (!grow((void **)&P->sk, P->ns, &P->caps, sizeof k)) return MONGE_ENOMEM;
    P->sk[P->ns++] = k;
    if (!mirror || k.I == k.J) return MONGE_OK;
    if (!grow((void **)&P->sk, P->ns, &P->caps, sizeof k)) return MONGE_ENOMEM;
    P->sk[P->ns++] = (ms_skip){k.J, k.I, k.c, k.lev, (uint8_t)(k.per_item ? 3 - k.per_item : 0)};
    return MONGE_OK;
}

/* Appends a kept pair to P, with its mirror image when mirror and I != J. */
static int put_pair(ms_part *P, uint32_t I, uint32_t J, int mirror)
{
    if (!grow((void **)&P->pr, P->np, &P->capp, sizeof(ms_pair))) return MONGE_ENOMEM;
    P->pr[P->np++] = (ms_pair){I, J};
    if (!mirror || I == J) return MONGE_OK;
    if (!grow((void **)&P->pr, P->np, &P->capp, sizeof(ms_pair))) return MONGE_ENOMEM;
    P->pr[P->np++] = (ms_pair){J, I};
    return MONGE_OK;
}

static float floor_float(double c)
{
    float f = (float)c;
    return (double)f > c ? nextafterf(f, -INFINITY) : f;
}

static float ceil_float(double c)
{
    float f = (float)c;
    return (double)f < c ? nextafterf(f, INFINITY) : f;
}

/* The descent's test of the cell pair (lev, I, J): 1 open (a kept pair at the block level, else
 * its children are tested), 0 skipped (into *sk), -1 no mass (dropped). */
static int pair_test(const ms_sel *S, int lev, int64_t I, int64_t J, double eps, ms_skip *sk)
{
    const ms_level *LX = &S->tx->lev[lev], *LY = &S->ty->lev[lev];
    const double cmin = box_cmin(S, lev, I, J);
    const double beta = LX->lu[I] + LY->lu[J] - cmin;
    if (!(beta > -INFINITY)) return -1;
    const double thr = eps * (fmin(LX->thr[I], LY->thr[J]) - S->tau);
    int keep = beta >= thr, per_item = 0;
    if (keep && lev == S->blk) { /* the tighter per-item bound of a block pair */
        int side;
        keep = !(pair_beta(S, I, J, eps, thr, &side) < thr);
        per_item = keep ? 0 : 1 + side;
    }
    if (keep) return 1;
    *sk = (ms_skip){(uint32_t)I, (uint32_t)J, per_item ? INFINITY : floor_float(cmin),
                    (uint8_t)lev, (uint8_t)per_item};
    return 0;
}

/* One side of grid_test: for each child a in [a0, a1) of the own tree (tr as beta_side2) with
 * need[a - a0] set, the maxes of ms_item_box2 (want 0) against every child in [c0, c1) of the
 * other, into m0, m1[(a - a0) * MS_GRID + (c - c0)]; with l0, from those maxes the log-sum-exps
 * (out[0] of want 1, out[1] of want 2) into l0, l1 instead. */
static void grid_side(const ms_sel *S, int tr, int64_t a0, int64_t a1, int64_t c0, int64_t c1,
                      const unsigned char *need, double eps, double *m0, double *m1, double *l0,
                      double *l1)
{
    const int64_t d = S->g->d, q = c1 - c0, qp = (q + MS_LANES - 1) / MS_LANES * MS_LANES;
    const ms_tree *t = tr ? S->ty : S->tx, *o = tr ? S->tx : S->ty;
    const int64_t *bs = tr ? S->bsy : S->bsx;
    const ms_level *L = &t->lev[S->r], *Bt = &t->lev[S->blk], *Bo = &o->lev[S->blk];
    double gb[5 * MS_MAXD * MS_GRID];
    for (int64_t a = a0; a < a1; a++) {
        if (!need[a - a0]) continue;
        for (int64_t b = 0; b < qp; b++) { /* the padding repeats the first box */
            const int64_t c = b < q ? c0 + b : c0;
            double face[MS_MAXD], sg[MS_MAXD], gap2[MS_MAXD];
            ms_box2_axes_f64(d, Bo->lo + c * d, Bo->hi + c * d, Bt->lo + a * d, Bt->hi + a * d,
                             face, sg, gap2);
            for (int64_t k = 0; k < d; k++) {
                double *g = gb + 5 * k * MS_GRID;
                g[b] = Bo->lo[c * d + k];
                g[MS_GRID + b] = Bo->hi[c * d + k];
                g[2 * MS_GRID + b] = face[k];
                g[3 * MS_GRID + b] = sg[k];
                g[4 * MS_GRID + b] = gap2[k];
            }
        }
        const int64_t o = (a - a0) * MS_GRID;
        double *s0 = l0 ? l0 + o : NULL, *s1 = l0 ? l1 + o : NULL;
        if (S->g->dtype == MONGE_F32)
            ms_grid_max_f32(L->pts, L->K, d, L->lu, bs[a], bs[a + 1], qp, gb, m0 + o, m1 + o, eps,
                            s0, s1);
        else
            ms_grid_max_f64(L->pts, L->K, d, L->lu, bs[a], bs[a + 1], qp, gb, m0 + o, m1 + o, eps,
                            s0, s1);
    }
}

/* The children of the opened cell pair (blk + 1, I, J) tested at once for the squared euclidean
 * cost (at most MS_GRID children a side): pair_test's decisions in the descent's order.  The
 * per-item maxes and, where a pair is dropped or its bracket straddles thr, the sums come from one
 * vector loop per item across the other side's children (grid_side); a pair dropped per item
 * keeps that bound in its skip entry (exact_bound takes it from there). */
static int grid_test(const ms_sel *S, int64_t I, int64_t J, double eps, ms_part *P)
{
    const int blk = S->blk, mirror = S->mirror && I != J; /* I = J: all its pairs are tested */
    const ms_level *LX = &S->tx->lev[blk], *LY = &S->ty->lev[blk];
    const int64_t a0 = S->tx->lev[blk + 1].child[I], a1 = S->tx->lev[blk + 1].child[I + 1];
    const int64_t b0 = S->ty->lev[blk + 1].child[J], b1 = S->ty->lev[blk + 1].child[J + 1];
    enum { NONE, SKIP, CAND, DROP, KEEP, SUMS };
    enum { G2 = MS_GRID * MS_GRID };
    unsigned char st[G2], side[G2], na[MS_GRID] = {0}, nb[MS_GRID] = {0};
    unsigned char sa[MS_GRID] = {0}, sb[MS_GRID] = {0};
    float cm[G2];
    double thr[G2], bnd[G2], A0[G2], A1[G2], B0[G2], B1[G2], SA0[G2], SA1[G2], SB0[G2], SB1[G2];
    for (int64_t a = a0; a < a1; a++) /* the box bound first, as pair_test */
        for (int64_t b = b0; b < b1; b++) {
            const int64_t e = (a - a0) * MS_GRID + (b - b0);
            const double cmin = box_cmin(S, blk, a, b), beta = LX->lu[a] + LY->lu[b] - cmin;
            cm[e] = floor_float(cmin);
            side[e] = 0;
            st[e] = NONE;
            if (!(beta > -INFINITY)) continue;
            thr[e] = eps * (fmin(LX->thr[a], LY->thr[b]) - S->tau);
            st[e] = beta >= thr[e] ? CAND : SKIP;
            na[a - a0] |= st[e] == CAND;
        }
    grid_side(S, 0, a0, a1, b0, b1, na, eps, A0, A1, NULL, NULL);
    for (int64_t a = a0; a < a1; a++)
        for (int64_t b = b0; b < b1; b++) {
            const int64_t e = (a - a0) * MS_GRID + (b - b0);
            if (st[e] != CAND) continue;
            const double A[2] = {A0[e], A1[e]};
            if (!(pair_up0_sq(S, a, b, eps, A) >= thr[e])) st[e] = DROP; /* side 0 */
            nb[b - b0] = 1;
        }
    grid_side(S, 1, b0, b1, a0, a1, nb, eps, B0, B1, NULL, NULL);
    for (int64_t a = a0; a < a1; a++) /* the brackets (pair_finish_sq) */
        for (int64_t b = b0; b < b1; b++) {
            const int64_t e = (a - a0) * MS_GRID + (b - b0), f = (b - b0) * MS_GRID + (a - a0);
            if (st[e] == CAND) {
                const double A[2] = {A0[e], A1[e]}, B[2] = {B0[f], B1[f]};
                double lo;
                int sd;
                const double hi = pair_bracket_sq(S, a, b, eps, A, B, &lo, &sd);
                side[e] = (unsigned char)sd;
                st[e] = !(hi > -INFINITY) || hi < thr[e] ? DROP : lo >= thr[e] ? KEEP : SUMS;
            }
            if (st[e] == DROP || st[e] == SUMS) sa[a - a0] = sb[b - b0] = 1;
        }
    grid_side(S, 0, a0, a1, b0, b1, sa, eps, A0, A1, SA0, SA1);
    grid_side(S, 1, b0, b1, a0, a1, sb, eps, B0, B1, SB0, SB1);
    for (int64_t a = a0; a < a1; a++)
        for (int64_t b = b0; b < b1; b++) {
            const int64_t e = (a - a0) * MS_GRID + (b - b0), f = (b - b0) * MS_GRID + (a - a0);
            if (st[e] == DROP || st[e] == SUMS) { /* pair_side_sq's sides from the sums */
                const double v[2] = {SA0[e] + SB1[f], SB0[f] + SA1[e]};
                const double s0 = v[side[e]], s1 = v[!side[e]];
                bnd[e] = s0;
                if (st[e] == SUMS && !(s0 < thr[e])) {
                    if (s1 < s0) side[e] = !side[e];
                    bnd[e] = s0 < s1 ? s0 : s1;
                    st[e] = bnd[e] < thr[e] ? DROP : KEEP;
                }
                if (st[e] == SUMS) st[e] = DROP;
            }
            int rc = MONGE_OK;
            if (st[e] == SKIP || st[e] == DROP)
                rc = put_skip(P,
                              (ms_skip){(uint32_t)a, (uint32_t)b,
                                        st[e] == DROP ? ceil_float(bnd[e]) : cm[e], (uint8_t)blk,
                                        (uint8_t)(st[e] == DROP ? 1 + side[e] : 0)},
                              mirror);
            else if (st[e] == KEEP)
                rc = put_pair(P, (uint32_t)a, (uint32_t)b, mirror);
            if (rc) return rc;
        }
    return MONGE_OK;
}

typedef struct {
    uint32_t I, J;
    int lev;
} ms_cand;

/* Tests candidates cand[0, nc) and their descendants depth first into part P. */
static int descend(const ms_sel *S, const ms_cand *cand, int64_t nc, double eps, ms_part *Pout)
{
    ms_part Q = *Pout, *P = &Q; /* a local copy: the parts share cache lines */
    int64_t ns = 0, cap = 0;
    ms_cand *stack = NULL;
    for (int64_t c = nc - 1; c >= 0; c--) {
        if (!grow((void **)&stack, ns, &cap, sizeof *stack)) goto fail;
        stack[ns++] = cand[c];
    }
    while (ns > 0) {
        const ms_cand e = stack[--ns];
        ms_skip sk;
        const int t = pair_test(S, e.lev, e.I, e.J, eps, &sk);
        if (t == 0) {
            if (put_skip(P, sk, S->mirror)) goto fail;
        } else if (t == 1 && e.lev == S->blk) {
            if (put_pair(P, e.I, e.J, S->mirror)) goto fail;
        } else if (t == 1 && e.lev == S->blk + 1 && S->g->cost == MONGE_COST_SQEUCLIDEAN &&
                   S->tx->lev[e.lev].child[e.I + 1] - S->tx->lev[e.lev].child[e.I] <= MS_GRID &&
                   S->ty->lev[e.lev].child[e.J + 1] - S->ty->lev[e.lev].child[e.J] <= MS_GRID) {
            if (grid_test(S, e.I, e.J, eps, P)) goto fail;
        } else if (t == 1) {
            const ms_level *LX = &S->tx->lev[e.lev], *LY = &S->ty->lev[e.lev];
            const int half = S->mirror && e.I == e.J; /* (j, i) stands for (i, j) */
            for (int64_t i = LX->child[e.I + 1] - 1; i >= LX->child[e.I]; i--)
                for (int64_t j = LY->child[e.J + 1] - 1; j >= (half ? i : LY->child[e.J]); j--) {
                    if (!grow((void **)&stack, ns, &cap, sizeof *stack)) goto fail;
                    stack[ns++] = (ms_cand){(uint32_t)i, (uint32_t)j, e.lev - 1};
                }
        }
    }
    free(stack);
    if (P->ns < P->caps && P->ns > 0) { /* the skip list stays: its slack goes */
        ms_skip *q = realloc(P->sk, sizeof(ms_skip) * (size_t)P->ns);
        if (q) {
            P->sk = q;
            P->caps = P->ns;
        }
    }
    *Pout = Q;
    return MONGE_OK;
fail:
    free(stack);
    *Pout = Q;
    return MONGE_ENOMEM;
}

/* Stable counting sort of pairs by I (by J with byj) into out; the input as parts or an array. */
static int count_sort(const ms_part *parts, int nparts, const ms_pair *in, int64_t np, int64_t K,
                      int byj, ms_pair *out)
{
    int64_t *cnt = calloc((size_t)(K + 1), sizeof(int64_t));
    if (!cnt) return MONGE_ENOMEM;
    for (int t = 0; t < (in ? 1 : nparts); t++) {
        const ms_pair *p = in ? in : parts[t].pr;
        const int64_t c = in ? np : parts[t].np;
        for (int64_t q = 0; q < c; q++) cnt[(byj ? p[q].J : p[q].I) + 1]++;
    }
    for (int64_t k = 0; k < K; k++) cnt[k + 1] += cnt[k];
    for (int t = 0; t < (in ? 1 : nparts); t++) {
        const ms_pair *p = in ? in : parts[t].pr;
        const int64_t c = in ? np : parts[t].np;
        for (int64_t q = 0; q < c; q++) out[cnt[byj ? p[q].J : p[q].I]++] = p[q];
    }
    free(cnt);
    return MONGE_OK;
}

/* Row block -> merged column item ranges, from pairs sorted by (I, J) (by (J, I) with swap). */
static int to_ranges(const ms_pair *pr, int64_t np, int64_t nb, const int64_t *cchild,
                     int64_t **ptr_out, int64_t **rng_out, int swap, int64_t *maxc)
{
    int64_t *ptr = calloc((size_t)(nb + 1), sizeof(int64_t));
    int64_t *rng = malloc(sizeof(int64_t) * 2 * (size_t)(np > 0 ? np : 1));
    if (!ptr || !rng) {
        free(ptr);
        free(rng);
        return MONGE_ENOMEM;
    }
    int64_t nr = 0;
    for (int64_t q = 0; q < np; q++) {
        const int64_t I = swap ? pr[q].J : pr[q].I, J = swap ? pr[q].I : pr[q].J;
        const int64_t j0 = cchild[J], j1 = cchild[J + 1];
        const int64_t Ip = q ? (int64_t)(swap ? pr[q - 1].J : pr[q - 1].I) : -1;
        if (q && Ip == I && rng[2 * nr - 1] == j0) rng[2 * nr - 1] = j1;
        else {
            rng[2 * nr] = j0;
            rng[2 * nr + 1] = j1;
            nr++;
            ptr[I + 1]++;
        }
    }
    for (int64_t B = 0; B < nb; B++) ptr[B + 1] += ptr[B];
    *maxc = 0;
    for (int64_t B = 0; B < nb; B++) {
        int64_t L = 0;
        for (int64_t t = ptr[B]; t < ptr[B + 1]; t++) L += rng[2 * t + 1] - rng[2 * t];
        *maxc = L > *maxc ? L : *maxc;
    }
    int64_t *r2 = realloc(rng, sizeof(int64_t) * 2 * (size_t)(nr > 0 ? nr : 1));
    *ptr_out = ptr;
    *rng_out = r2 ? r2 : rng;
    return MONGE_OK;
}

/* The dual-tree descent at the current lu: kept block pairs and the skip list.  The top levels
 * are tested breadth first until the frontier holds MS_TASKS pairs; its parts then descend in
 * parallel, each into its own part of the skip list (the order: thread-independent). */
static int select_pairs(ms_sel *S, double eps)
{
    sel_clear(S);
    S->nsel++;
    const int top = S->tx->nlev - 1, blk = S->blk;
    const int64_t KX = S->tx->lev[blk].K, KY = S->ty->lev[blk].K;
    if (S->tx->lev[S->r].K > (int64_t)UINT32_MAX || S->ty->lev[S->r].K > (int64_t)UINT32_MAX)
        return MONGE_ENOMEM; /* beyond the 32-bit cell indices */
    int64_t nf = 0, capf = 0;
    ms_cand *fr = NULL;
    int st = MONGE_OK;
    for (int64_t I = 0; I < S->tx->lev[top].K && !st; I++)
        for (int64_t J = S->mirror ? I : 0; J < S->ty->lev[top].K && !st; J++) {
            if (!grow((void **)&fr, nf, &capf, sizeof *fr)) st = MONGE_ENOMEM;
            else fr[nf++] = (ms_cand){(uint32_t)I, (uint32_t)J, top};
        }
    ms_part *P0 = &S->parts[0];
    for (int lev = top; !st && lev > blk && nf < MS_TASKS; lev--) { /* breadth first */
        int64_t n2 = 0, cap2 = 0;
        ms_cand *f2 = NULL;
        for (int64_t c = 0; c < nf && !st; c++) {
            ms_skip sk;
            const int t = pair_test(S, lev, fr[c].I, fr[c].J, eps, &sk);
            if (t == 0) {
                st = put_skip(P0, sk, S->mirror);
            } else if (t == 1) {
                const ms_level *LX = &S->tx->lev[lev], *LY = &S->ty->lev[lev];
                const int half = S->mirror && fr[c].I == fr[c].J;
                for (int64_t i = LX->child[fr[c].I]; i < LX->child[fr[c].I + 1] && !st; i++)
                    for (int64_t j = half ? i : LY->child[fr[c].J]; j < LY->child[fr[c].J + 1] && !st;
                         j++) {
                        if (!grow((void **)&f2, n2, &cap2, sizeof *f2)) st = MONGE_ENOMEM;
                        else f2[n2++] = (ms_cand){(uint32_t)i, (uint32_t)j, lev - 1};
                    }
            }
        }
        free(fr);
        fr = f2;
        nf = n2;
    }
    int fail = 0;
    if (!st) {
        MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(S->nth))
        for (int t = 0; t < MS_TASKS; t++) {
            const int64_t c0 = nf * t / MS_TASKS, c1 = nf * (t + 1) / MS_TASKS;
            if (descend(S, fr + c0, c1 - c0, eps, &S->parts[t + 1])) {
                MONGE_PRAGMA(omp atomic write)
                fail = 1;
            }
        }
    }
    free(fr);
    if (fail) st = MONGE_ENOMEM;
    int64_t np = 0;
    for (int t = 0; t <= MS_TASKS; t++) {
        np += S->parts[t].np;
        S->nskip += S->parts[t].ns;
    }
    /* by (I, J) for the rows, then by (J, I) for the transposed pass: stable counting sorts */
    ms_pair *A = st ? NULL : malloc(sizeof(ms_pair) * (size_t)(np > 0 ? np : 1));
    ms_pair *B = st ? NULL : malloc(sizeof(ms_pair) * (size_t)(np > 0 ? np : 1));
    if (!st && (!A || !B)) st = MONGE_ENOMEM;
    if (!st) st = count_sort(S->parts, MS_TASKS + 1, NULL, np, KY, 1, A);
    for (int t = 0; t <= MS_TASKS; t++) { /* the pairs are in A now */
        free(S->parts[t].pr);
        S->parts[t].pr = NULL;
        S->parts[t].np = S->parts[t].capp = 0;
    }
    if (!st) st = count_sort(NULL, 0, A, np, KX, 0, B);
    if (!st) {
        S->kept_blocks = np;
        int64_t ent = 0;
        const int64_t *xc = S->bsx, *yc = S->bsy;
        for (int64_t q = 0; q < np; q++)
            ent += (xc[B[q].I + 1] - xc[B[q].I]) * (yc[B[q].J + 1] - yc[B[q].J]);
        S->kept_entries = ent;
        st = to_ranges(B, np, KX, yc, &S->rptr, &S->rrng, 0, &S->rmax);
        if (!st) st = count_sort(NULL, 0, B, np, KY, 1, A);
        if (!st) st = to_ranges(A, np, KY, xc, &S->cptr, &S->crng, 1, &S->cmax);
    }
    free(A);
    free(B);
    S->fresh = !st;
    return st;
}

/* E: the bound of the skipped mass at the current lu (the per-item one where it dropped the pair;
 * the pairs the box bound dropped hold e^-tau of a block's mass at most, and stay with it).
 * Exactly (dx NULL): the per-item bounds summed over the items into the entries' c, or taken from
 * there when the selection just left them (fresh).  Else from c and the blocks' growth dx, dy
 * since: each per-item bound is a log-sum-exp of its items' u_i (v_j) plus terms that do not
 * move; the grown bounds are written back to c (current_bound rebases on them).  Each part is
 * summed in order and the parts in order: thread-independent. */
/* A skip entry's term of E at the current lu: from the blocks' lu (box entries), or the
 * per-item bound summed over the items (for the squared euclidean cost, on the side that dropped
 * it). */
static double skip_term(const ms_sel *S, const ms_skip *k, double eps)
{
    int side;
    if (!k->per_item)
        return S->tx->lev[k->lev].lu[k->I] + S->ty->lev[k->lev].lu[k->J] - (double)k->c;
    return S->g->cost == MONGE_COST_SQEUCLIDEAN
               ? pair_side_sq(S, k->I, k->J, eps, k->per_item - 1)
               : pair_beta(S, k->I, k->J, eps, -INFINITY, &side);
}

static double skip_bound(ms_sel *S, double eps, int nth, const double *dx, const double *dy,
                         int fresh)
{
    double part[MS_TASKS + 1], E = 0;
    MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nth))
    for (int t = 0; t <= MS_TASKS; t++) {
        double e = 0;
        ms_part *P = &S->parts[t];
        for (int64_t q = 0; q < P->ns; q++) {
            ms_skip *k = &P->sk[q];
            double beta;
            if (k->per_item && dx) {
                beta = (double)k->c + dx[k->I] + dy[k->J];
                k->c = ceil_float(beta);
            } else if (k->per_item && fresh && k->c < INFINITY)
                beta = (double)k->c;
            else {
                beta = skip_term(S, k, eps);
                if (k->per_item) k->c = ceil_float(beta);
            }
            e += monge_exp(beta / eps);
        }
        part[t] = e;
    }
    for (int t = 0; t <= MS_TASKS; t++) E += part[t];
    return E;
}

static ms_pass make_pass(const ms_sel *S, int tr)
{
    const ms_tree *R = tr ? S->ty : S->tx, *C = tr ? S->tx : S->ty;
    const int r = S->r;
    ms_pass P;
    P.nblocks = R->lev[S->blk].K;
    P.child = tr ? S->bsy : S->bsx;
    P.ptr = tr ? S->cptr : S->rptr;
    P.rng = tr ? S->crng : S->rrng;
    P.rpts = R->lev[r].pts;
    P.cpts = C->lev[r].pts;
    P.ldr = R->lev[r].K;
    P.ldc = C->lev[r].K;
    P.ncols = C->lev[r].K;
    P.d = S->g->d;
    P.cost = S->g->cost;
    P.p = S->g->p;
    P.maxcols = tr ? S->cmax : S->rmax;
    return P;
}

/* ------------------------------------------------------------------ the step */
typedef struct {
    ms_sel sel;
    const monge_problem *pb;
    int nth;
    double *f, *g;           /* item potentials at the resolution */
    const double *a, *b, *la, *lb;
    double *h, *hint, *out, *fsave, *gsave, *fbest, *gbest;
    void *scratch;           /* max(n, m) elements of the dtype */
    void **pack;             /* per thread packing buffers of the softmin, packcap elements */
    int64_t packcap;
    double stage_tol;
    int keep_sel; /* the next stage keeps the selection: the level is split around a correction */
    int64_t *reselections;
    int sym_it; /* the symmetric step: updates made in the current stage */
    int sym; /* the symmetric problem OT_eps(a, a): one potential f = g */
} ms_step;

static double item_coord(const ms_level *L, monge_dtype dt, int64_t i, int64_t k)
{
    return dt == MONGE_F32 ? (double)((const float *)L->pts)[k * L->K + i]
                           : ((const double *)L->pts)[k * L->K + i];
}

/* The cost from the per-axis distances z_k = |x_k - y_k| (sqeuclidean, euclidean, pnorm). */
static double axis_cost(const monge_geometry *g, const double *z)
{
    double c = 0;
    for (int64_t k = 0; k < g->d; k++) c += g->cost == MONGE_COST_PNORM ? pow(z[k], g->p) : z[k] * z[k];
    return g->cost == MONGE_COST_EUCLIDEAN ? sqrt(c) : c;
}

/* Rows of positive weight left without a kept entry (e.g. a far point whose potential is still
 * far from its value): their softmin over every column, so that the potential can move.  Their
 * plan mass then shows in the skip list's bound E, which grows tau and re-selects. */
static void orphan_rows(ms_step *M, int tr, double eps)
{
    const ms_sel *S = &M->sel;
    const ms_level *R = tr ? &S->ty->lev[S->r] : &S->tx->lev[S->r];
    const ms_level *C = tr ? &S->tx->lev[S->r] : &S->ty->lev[S->r];
    const double *w = tr ? M->b : M->a;
    const monge_geometry *g = S->g;
    const int64_t d = g->d;
    for (int64_t i = 0; i < R->K; i++) {
        if (!(w[i] > 0) || isfinite(M->out[i])) continue;
        double mx = -INFINITY, sum = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int64_t j = 0; j < C->K; j++) {
                if (!(M->h[j] > -INFINITY)) continue;
                double z[MS_MAXD];
                for (int64_t k = 0; k < d; k++)
                    z[k] = fabs(item_coord(R, g->dtype, i, k) - item_coord(C, g->dtype, j, k));
                const double t = (M->h[j] - axis_cost(g, z)) / eps;
                if (pass == 0) mx = t > mx ? t : mx;
                else sum += exp(t - mx);
            }
        if (mx > -INFINITY) M->out[i] = eps * (mx + log(sum));
        if (!isfinite(M->out[i])) M->out[i] = -INFINITY;
    }
}

static int softmin(ms_step *M, int tr, double eps)
{
    ms_pass P = make_pass(&M->sel, tr);
    const size_t es = M->sel.g->dtype == MONGE_F32 ? sizeof(float) : sizeof(double);
    const int64_t need = ms_pack_cap(P.maxcols) * (P.d + 1);
    if (!M->pack) {
        M->pack = calloc((size_t)M->nth, sizeof(void *));
        if (!M->pack) return MONGE_ENOMEM;
    }
    if (need > M->packcap) {
        for (int t = 0; t < M->nth; t++) {
            void *q = realloc(M->pack[t], es * (size_t)need);
            if (!q) return MONGE_ENOMEM;
            M->pack[t] = q;
        }
        M->packcap = need;
    }
    P.pack = M->pack;
    const int st = M->sel.g->dtype == MONGE_F32
                       ? ms_softmin_f32(&P, eps, M->h, M->hint, M->out, M->scratch, M->nth)
                       : ms_softmin_f64(&P, eps, M->h, M->hint, M->out, M->scratch, M->nth);
    if (!st) orphan_rows(M, tr, eps);
    return st;
}

static int ms_half(ms_step *M, int tr, double eps, double omega, double *err_before,
                   double *err_after)
{
    const int64_t len = tr ? M->sel.m : M->sel.n, olen = tr ? M->sel.n : M->sel.m;
    const double tau = tr ? M->pb->tau_b : M->pb->tau_a;
    const double lam = isinf(tau) ? 1.0 : tau / (tau + eps);
    const double *w = tr ? M->b : M->a, *lo = tr ? M->la : M->lb;
    double *pot = tr ? M->g : M->f;
    const double *other = tr ? M->f : M->g;
    for (int64_t j = 0; j < olen; j++) M->h[j] = other[j] + eps * lo[j];
    for (int64_t i = 0; i < len; i++) M->hint[i] = -pot[i] / lam;
    int rc = softmin(M, tr, eps);
    if (rc) return rc;
    double eb = 0, ea = 0;
    int finite = 1;
    for (int64_t i = 0; i < len; i++) {
        const double old = pot[i];
        if (!(w[i] > 0)) continue; /* zero weight: its potential stays (no entry of the plan) */
        const double sink = -lam * M->out[i];
        const double upd = isfinite(sink) ? old + omega * (sink - old) : old;
        if (!isfinite(upd)) finite = 0;
        pot[i] = upd;
        if (isfinite(sink)) sk_kkt_errors(old, upd, (old + M->out[i]) / eps, w[i], eps, tau, &eb, &ea);
        else { /* no kept entry: the row's plan mass is (bounded by) the skipped one */
            eb += w[i];
            ea += w[i];
        }
    }
    *err_before = eb;
    *err_after = ea;
    return finite ? MONGE_OK : MONGE_ENONFINITE;
}

/* E exactly, the item lu it was taken at kept. */
static int exact_bound(ms_step *M, double eps)
{
    ms_sel *S = &M->sel;
    const ms_level *BX = &S->tx->lev[S->r], *BY = &S->ty->lev[S->r];
    if (!S->lu0x) {
        S->lu0x = malloc(sizeof(double) * (size_t)BX->K);
        S->lu0y = malloc(sizeof(double) * (size_t)BY->K);
        if (!S->lu0x || !S->lu0y) return MONGE_ENOMEM;
    }
    memcpy(S->lu0x, BX->lu, sizeof(double) * (size_t)BX->K);
    memcpy(S->lu0y, BY->lu, sizeof(double) * (size_t)BY->K);
    S->E0 = skip_bound(S, eps, M->nth, NULL, NULL, S->fresh);
    S->e0_exact = 1;
    S->fresh = 0;
    S->bound = S->E0;
    return MONGE_OK;
}

/* The most the items' lu grew since E's exact evaluation, per block into d (blocks bs of t) and
 * overall (the return value). */
static double lu_growth(const ms_sel *S, const ms_tree *t, const int64_t *bs, const double *lu0,
                        double *d)
{
    const ms_level *L = &t->lev[S->r];
    double all = -INFINITY;
    for (int64_t B = 0; B < t->lev[S->blk].K; B++) {
        double m = -INFINITY;
        for (int64_t i = bs[B]; i < bs[B + 1]; i++) {
            const double g = L->lu[i] == lu0[i] ? 0.0 : L->lu[i] - lu0[i];
            m = g > m ? g : m;
        }
        d[B] = m;
        all = m > all ? m : all;
    }
    return all;
}

/* E at the current lu: every skipped term is a log-sum-exp (or a max) over items of u_i + v_j
 * minus a cost bound, so it grew by at most exp((max du + max dv) / eps) over the items since E0
 * was taken: E0 scaled by that while it is at most 2 and within the budget, else each term from
 * its own blocks' growth (skip_bound), which becomes the new E0 at the current lu (a drift bound,
 * not exact: ms_rows evaluates exactly when it is too large). */
/* Test hook (the C tests set it): every drift bound current_bound takes is compared with the
 * exact per-item bounds at the same lu, each grown entry and each scaled sum; counted below. */
int monge_ms_check_drift = 0;
int64_t monge_ms_drift_checked = 0, monge_ms_drift_below = 0;

static void drift_check(ms_sel *S, double eps, double Eg, int entries)
{
    double E = 0;
    for (int t = 0; t <= MS_TASKS; t++)
        for (int64_t q = 0; q < S->parts[t].ns; q++) {
            const ms_skip *k = &S->parts[t].sk[q];
            const double beta = skip_term(S, k, eps);
            if (k->per_item && entries) {
                monge_ms_drift_checked++;
                monge_ms_drift_below += beta > (double)k->c;
            }
            E += monge_exp(beta / eps);
        }
    monge_ms_drift_checked++;
    monge_ms_drift_below += E > Eg * (1 + 1e-12);
}

static int current_bound(ms_step *M, double eps, double *E)
{
    ms_sel *S = &M->sel;
    if (!S->dx) {
        S->dx = malloc(sizeof(double) * (size_t)S->tx->lev[S->blk].K);
        S->dy = malloc(sizeof(double) * (size_t)S->ty->lev[S->blk].K);
        if (!S->dx || !S->dy) return MONGE_ENOMEM;
    }
    const double gx = lu_growth(S, S->tx, S->bsx, S->lu0x, S->dx);
    const double gy = lu_growth(S, S->ty, S->bsy, S->lu0y, S->dy);
    const double grow = exp((gx + gy) / eps);
    if (S->E0 == 0) {
        const int st = exact_bound(M, eps);
        *E = S->E0;
        return st;
    }
    const double Eg = S->E0 * (grow > 1.0 ? grow : 1.0);
    if (grow <= 2.0 && Eg <= S->frac * M->stage_tol) {
        *E = Eg;
        if (monge_ms_check_drift) drift_check(S, eps, Eg, 0);
        return MONGE_OK;
    }
    *E = skip_bound(S, eps, M->nth, S->dx, S->dy, 0);
    if (monge_ms_check_drift) drift_check(S, eps, *E, 1);
    memcpy(S->lu0x, S->tx->lev[S->r].lu, sizeof(double) * (size_t)S->tx->lev[S->r].K);
    memcpy(S->lu0y, S->ty->lev[S->r].lu, sizeof(double) * (size_t)S->ty->lev[S->r].K);
    S->E0 = *E;
    S->e0_exact = 0;
    return MONGE_OK;
}

static int reselect(ms_step *M, double eps)
{
    fill_lu(M->sel.tx, M->sel.r, eps, M->f);
    fill_lu(M->sel.ty, M->sel.r, eps, M->g);
    int st = select_pairs(&M->sel, eps);
    if (!st) st = exact_bound(M, eps);
    return st;
}

static int ms_stage(sk_step *st, double eps, double tol)
{
    ms_step *M = st->self;
    M->stage_tol = tol;
    M->sym_it = 0;
    if (M->keep_sel) { /* as if the level were not split (ms_rows still checks the bound) */
        M->keep_sel = 0;
        return MONGE_OK;
    }
    return reselect(M, eps);
}

static int ms_rows(sk_step *st, double eps, double omega, double *err)
{
    ms_step *M = st->self;
    fill_lu(M->sel.tx, M->sel.r, eps, M->f);
    fill_lu(M->sel.ty, M->sel.r, eps, M->g);
    double E;
    int rc = current_bound(M, eps, &E);
    if (rc) return rc;
    if (E > M->sel.frac * M->stage_tol && !(E == M->sel.E0 && M->sel.e0_exact)) { /* exactly */
        rc = exact_bound(M, eps);
        if (rc) return rc;
        E = M->sel.E0;
    }
    while (E > M->sel.frac * M->stage_tol && M->sel.tau < MS_TAU_MAX) {
        M->sel.tau += MS_TAU_STEP;
        (*M->reselections)++;
        rc = select_pairs(&M->sel, eps);
        if (!rc) rc = exact_bound(M, eps);
        if (rc) return rc;
        E = M->sel.E0;
    }
    M->sel.bound = E;
    if (M->sym) { /* measure p: both marginals of the symmetric plan have this violation */
        const double tau = M->pb->tau_a, lam = isinf(tau) ? 1.0 : tau / (tau + eps);
        for (int64_t j = 0; j < M->sel.n; j++) {
            M->h[j] = M->f[j] + eps * M->la[j];
            M->hint[j] = -M->f[j] / lam;
        }
        rc = softmin(M, 0, eps);
        if (rc) return rc;
        double e = 0;
        for (int64_t i = 0; i < M->sel.n; i++) {
            if (!(M->a[i] > 0)) continue;
            const double tgt = isinf(tau) ? 1.0 : exp(-M->f[i] / tau);
            e += isfinite(M->out[i]) ? M->a[i] * fabs(exp((M->f[i] + M->out[i]) / eps) - tgt)
                                     : M->a[i];
        }
        *err = 2.0 * e + 2.0 * E;
        return MONGE_OK;
    }
    memcpy(M->fsave, M->f, sizeof(double) * (size_t)M->sel.n);
    double after;
    rc = ms_half(M, 0, eps, omega, err, &after);
    *err += 2.0 * E;
    return rc;
}

static int ms_cols(sk_step *st, double eps, double omega, int keep, double *err)
{
    ms_step *M = st->self;
    if (M->sym) { /* the update of sk_sym_update from the pass rows() made; gsave: p_prev */
        const double tau = M->pb->tau_a, lam = isinf(tau) ? 1.0 : tau / (tau + eps);
        double w, beta;
        sk_sym_update(lam, M->sym_it++, &w, &beta);
        int finite = 1;
        for (int64_t i = 0; i < M->sel.n; i++) {
            const double old = M->f[i];
            if (M->a[i] > 0 && isfinite(M->out[i]))
                M->f[i] = (1.0 - w) * old - w * lam * M->out[i] +
                          (beta > 0 ? beta * (old - M->gsave[i]) : 0.0);
            M->gsave[i] = old;
            if (!isfinite(M->f[i])) finite = 0;
        }
        memcpy(M->g, M->f, sizeof(double) * (size_t)M->sel.n);
        *err = 0.0;
        return finite ? MONGE_OK : MONGE_ENONFINITE;
    }
    double before;
    if (keep) memcpy(M->gsave, M->g, sizeof(double) * (size_t)M->sel.m);
    return ms_half(M, 1, eps, omega, &before, err);
}

static double ms_adopt(sk_step *st, double eps)
{
    ms_step *M = st->self;
    double eb = 0, ea = 0;
    for (int64_t j = 0; j < M->sel.m; j++)
        if (M->b[j] > 0 && isfinite(M->out[j]))
            sk_kkt_errors(M->gsave[j], M->g[j], (M->gsave[j] + M->out[j]) / eps, M->b[j], eps,
                          M->pb->tau_b, &eb, &ea);
    return ea;
}

static int ms_restore(sk_step *st, int what, const double *plain, double eps)
{
    (void)eps;
    ms_step *M = st->self;
    const size_t n = (size_t)M->sel.n, m = (size_t)M->sel.m;
    if (M->sym) return 0; /* rows() does not move p */
    if (what == SK_BEST) {
        memcpy(M->f, M->fbest, sizeof(double) * n);
        memcpy(M->g, M->gbest, sizeof(double) * m);
        return 0;
    }
    memcpy(M->f, M->fsave, sizeof(double) * n);
    if (what == SK_PLAIN) memcpy(M->g, plain, sizeof(double) * m);
    return 0;
}

static int ms_note(sk_step *st, double err, int improved)
{
    (void)err;
    ms_step *M = st->self;
    if (improved && !M->sym) {
        memcpy(M->fbest, M->fsave, sizeof(double) * (size_t)M->sel.n);
        memcpy(M->gbest, M->g, sizeof(double) * (size_t)M->sel.m);
    }
    return 0;
}

static int ms_after(sk_step *st, double eps, double *shift)
{
    (void)st;
    (void)eps;
    *shift = 0.0;
    return 0;
}

static void step_free(ms_step *M)
{
    free(M->f);
    free(M->g);
    free(M->h);
    free(M->hint);
    free(M->out);
    free(M->fsave);
    free(M->gsave);
    free(M->fbest);
    free(M->gbest);
    free(M->scratch);
    free(M->sel.lu0x);
    free(M->sel.lu0y);
    free(M->sel.dx);
    free(M->sel.dy);
    free(M->sel.bsx);
    free(M->sel.bsy);
    free(M->sel.lcx);
    free(M->sel.lcy);
    M->sel.lu0x = M->sel.lu0y = M->sel.dx = M->sel.dy = NULL;
    M->sel.bsx = M->sel.bsy = NULL;
    M->sel.lcx = M->sel.lcy = NULL;
    if (M->pack)
        for (int t = 0; t < M->nth; t++) free(M->pack[t]);
    free(M->pack);
    M->pack = NULL;
    M->packcap = 0;
    M->f = M->g = NULL;
    M->h = M->hint = M->out = M->fsave = M->gsave = M->fbest = M->gbest = NULL;
    M->scratch = NULL;
}

/* log of the count of level-r items with mass in each cell of level l (bs: its block_starts). */
static double *log_counts(const ms_tree *t, int l, int r, const int64_t *bs)
{
    const int64_t K = t->lev[l].K;
    double *out = bs ? malloc(sizeof(double) * (size_t)(K > 0 ? K : 1)) : NULL;
    if (!out) return NULL;
    const double *w = t->lev[r].w;
    for (int64_t c = 0; c < K; c++) {
        int64_t n = 0;
        for (int64_t i = bs[c]; i < bs[c + 1]; i++) n += w[i] > 0;
        out[c] = n > 0 ? log((double)n) : 0.0;
    }
    return out;
}

/* First level-r item of every cell of level l > r (K_l + 1 entries): children composed. */
static int64_t *block_starts(const ms_tree *t, int l, int r)
{
    const int64_t K = t->lev[l].K;
    int64_t *out = malloc(sizeof(int64_t) * (size_t)(K + 1));
    if (!out) return NULL;
    for (int64_t c = 0; c <= K; c++) {
        int64_t q = c;
        for (int k = l; k > r; k--) q = q < t->lev[k].K ? t->lev[k].child[q] : t->lev[k - 1].K;
        out[c] = q;
    }
    return out;
}

/* ------------------------------------------------------------------ the coarse correction */
#define MS_GAL_MAX ((int64_t)sk_tune.ms_gal_max) /* most entries of Q (floats): 2^26 */
#define MS_GAL_ITER 200               /* most iterations of its scaling problem */
#define MS_GAL_BEFORE 2               /* points iterations before it */
#define MS_GAL_TOL 0.1                /* its tolerance, x the level's */
#define MS_GAL_MIN_TOL 1e-4           /* used at this tolerance and looser only */
#define MS_GAL_CHUNKS 16              /* Q^T u summed in this many fixed parts (any thread count) */

/* Q stored per row block (blocks hold whole cells, L <= blk): the rows of its cells over the column-cell
 * runs of its kept ranges (a column cell cut by two ranges has two slots). */
typedef struct {
    const ms_step *M;
    int64_t nb, cap, maxq, maxc;
    const int64_t *off, *cptr, *csy;
    const int32_t *cellx, *celly, *cols;
    float *q;
    const double *u, *v; /* the points' potentials with their log weights (-inf at zero mass) */
    double eps;
} ms_gal;

/* Q at the step's potentials: each row block by one thread.  The squared euclidean cost runs in
 * the element type in dot form (ms_gal_block); the other costs pack the columns in double
 * (coordinates, then v_j) and take the cost and the exp in one vector loop.  The rows of a cell
 * add their entries into one buffer, whose runs of column cells are summed once. */
MONGE_HOT static int gal_build(const ms_gal *G)
{
    const ms_step *M = G->M;
    const ms_sel *S = &M->sel;
    const monge_geometry *geo = S->g;
    const ms_level *PX = &S->tx->lev[0], *PY = &S->ty->lev[0];
    const int64_t d = geo->d, cap = G->cap;
    const double eps = G->eps, ie = 1.0 / eps;
    const int sq = geo->cost == MONGE_COST_SQEUCLIDEAN;
    const size_t es = geo->dtype == MONGE_F32 ? sizeof(float) : sizeof(double);
    const ms_pass P = make_pass(S, 0);
    int fail = 0;
    MONGE_PRAGMA(omp parallel num_threads(M->nth))
    {
        void *pk = malloc((sq ? es : sizeof(double)) * (size_t)(cap * (d + 1)));
        void *cb = malloc((sq ? es : sizeof(double)) * (size_t)cap);
        double *buf = sq ? NULL : malloc(sizeof(double) * (size_t)cap);
        double *acc = malloc(sizeof(double) * (size_t)(G->maxq > 0 ? G->maxq : 1));
        int32_t *re = malloc(sizeof(int32_t) * (size_t)(cap + 1));
        const int ok = pk && cb && (sq || buf) && acc && re;
        if (!ok) {
            MONGE_PRAGMA(omp atomic write)
            fail = 1;
        }
        MONGE_PRAGMA(omp for schedule(dynamic, 1))
        for (int64_t B = 0; B < G->nb; B++) {
            if (!ok) continue;
            const int64_t i0 = S->bsx[B], i1 = S->bsx[B + 1], ncc = G->cptr[B + 1] - G->cptr[B];
            int64_t L = 0, nrun = 0;
            for (int64_t p = S->rptr[B]; p < S->rptr[B + 1]; p++) {
                const int64_t j0 = S->rrng[2 * p], j1 = S->rrng[2 * p + 1];
                for (int64_t t = j0; t < j1;) { /* the ends of the runs of one column cell */
                    const int64_t e = G->csy[G->celly[t] + 1] < j1 ? G->csy[G->celly[t] + 1] : j1;
                    re[nrun++] = (int32_t)(L + e - j0);
                    t = e;
                }
                L += j1 - j0;
            }
            memset(acc, 0, sizeof(double) * (size_t)(G->off[B + 1] - G->off[B]));
            if (sq) {
                if (geo->dtype == MONGE_F32)
                    ms_gal_block_f32(&P, B, eps, G->u, G->v, G->cellx, re, nrun, ncc, acc, pk, cap, cb);
                else
                    ms_gal_block_f64(&P, B, eps, G->u, G->v, G->cellx, re, nrun, ncc, acc, pk, cap, cb);
            } else {
                double *pd = pk, *cd = cb;
                L = 0;
                for (int64_t p = S->rptr[B]; p < S->rptr[B + 1]; p++) {
                    const int64_t j0 = S->rrng[2 * p], j1 = S->rrng[2 * p + 1];
                    for (int64_t j = j0; j < j1; j++) {
                        for (int64_t k = 0; k < d; k++) pd[k * cap + L + j - j0] = item_coord(PY, geo->dtype, j, k);
                        pd[d * cap + L + j - j0] = G->v[j];
                    }
                    L += j1 - j0;
                }
                memset(cd, 0, sizeof(double) * (size_t)L);
                const double *pv = pd + d * cap;
                for (int64_t i = i0; i < i1; i++) {
                    if (G->u[i] > -INFINITY) {
                        double xi[MS_MAXD] = {0};
                        for (int64_t k = 0; k < d; k++) xi[k] = item_coord(PX, geo->dtype, i, k);
                        ms_cost_f64(geo->cost, geo->p, xi, pd, cap, d, L, buf);
                        MONGE_SIMD
                        for (int64_t t = 0; t < L; t++) cd[t] += monge_exp((G->u[i] + pv[t] - buf[t]) * ie);
                    }
                    if (i + 1 == i1 || G->cellx[i + 1] != G->cellx[i])
                        ms_gal_flush_f64(cd, re, nrun, L, acc + (G->cellx[i] - G->cellx[i0]) * ncc);
                }
            }
            float *qb = G->q + G->off[B];
            for (int64_t e = 0; e < G->off[B + 1] - G->off[B]; e++) qb[e] = (float)acc[e];
        }
        free(pk);
        free(cb);
        free(buf);
        free(acc);
        free(re);
    }
    return fail ? MONGE_ENOMEM : MONGE_OK;
}

/* out_I = eps log(A_I / (Q ev)_I) (0 where either is 0) */
MONGE_HOT static void gal_rows(const ms_gal *G, const double *ev, const double *A, double *out,
                               double *loc)
{
    const ms_sel *S = &G->M->sel;
    MONGE_PRAGMA(omp parallel for schedule(dynamic, 16) num_threads(G->M->nth))
    for (int64_t B = 0; B < G->nb; B++) {
        const int64_t i0 = S->bsx[B], i1 = S->bsx[B + 1], ncc = G->cptr[B + 1] - G->cptr[B];
        if (i1 <= i0) continue;
        const int32_t *cl = G->cols + G->cptr[B];
        double *el = loc + (size_t)ms_thread() * (size_t)G->maxc;
        for (int64_t s = 0; s < ncc; s++) el[s] = ev[cl[s]];
        for (int64_t I = G->cellx[i0]; I <= G->cellx[i1 - 1]; I++) {
            const float *row = G->q + G->off[B] + (I - G->cellx[i0]) * ncc;
            double sv = 0;
            MONGE_SIMD_SUM(sv)
            for (int64_t s = 0; s < ncc; s++) sv += (double)row[s] * el[s];
            const double r = A[I] > 0 && sv > 0 ? A[I] / sv : 0.0;
            out[I] = r > 0 ? G->eps * log(r) : 0.0;
        }
    }
}

/* One sweep of Q: u_I = A_I / (Q ev)_I (0 where either is 0) and Q^T u, each row read once
 * while it is in cache; Q^T u summed in MS_GAL_CHUNKS fixed parts of the row blocks (part:
 * MS_GAL_CHUNKS x KY), so the result does not depend on the thread count. */
MONGE_HOT static void gal_sweep(const ms_gal *G, const double *ev, const double *A, double *u,
                                double *part, double *loc, int64_t KY)
{
    const ms_sel *S = &G->M->sel;
    MONGE_PRAGMA(omp parallel for schedule(static, 1) num_threads(G->M->nth))
    for (int c = 0; c < MS_GAL_CHUNKS; c++) {
        double *pt = part + (size_t)c * (size_t)KY;
        memset(pt, 0, sizeof(double) * (size_t)KY);
        double *el = loc + (size_t)c * 2 * (size_t)G->maxc, *ac = el + G->maxc;
        for (int64_t B = G->nb * c / MS_GAL_CHUNKS; B < G->nb * (c + 1) / MS_GAL_CHUNKS; B++) {
            const int64_t i0 = S->bsx[B], i1 = S->bsx[B + 1], ncc = G->cptr[B + 1] - G->cptr[B];
            if (i1 <= i0) continue;
            const int32_t *cl = G->cols + G->cptr[B];
            for (int64_t s = 0; s < ncc; s++) {
                el[s] = ev[cl[s]];
                ac[s] = 0;
            }
            for (int64_t I = G->cellx[i0]; I <= G->cellx[i1 - 1]; I++) {
                const float *row = G->q + G->off[B] + (I - G->cellx[i0]) * ncc;
                double sv = 0;
                MONGE_SIMD_SUM(sv)
                for (int64_t s = 0; s < ncc; s++) sv += (double)row[s] * el[s];
                const double uI = A[I] > 0 && sv > 0 ? A[I] / sv : 0.0;
                u[I] = uI;
                if (uI == 0) continue;
                MONGE_SIMD
                for (int64_t s = 0; s < ncc; s++) ac[s] += (double)row[s] * uI;
            }
            for (int64_t s = 0; s < ncc; s++) pt[cl[s]] += ac[s];
        }
    }
}

/* The best correction of the points' potentials that is constant on the cells of level L: with
 * Q_IJ the kept plan summed over the points of cell I of x and cell J of y, shifts dF_I, dG_J
 * scale Q exactly (P_ij e^((dF_I + dG_J) / eps)), so the scaling problem of Q with the cells'
 * masses as marginals gives the shift that removes every cell-summed marginal error at once: the
 * smooth part of the error that the points' iterations remove slowly.  Solved by
 * Anderson-accelerated fixed-point iterations on lv = dG / eps to ctol.  *applied = 0 when Q would
 * not fit in MS_GAL_MAX entries (or L is above the blocks), or its solve did not improve on the
 * start; *iters: the scaling problem's iterations. */
static int galerkin(ms_step *M, int L, double eps, double ctol, int *applied, int64_t *iters,
                    int *fits)
{
    const ms_sel *S = &M->sel;
    const ms_tree *tx = S->tx, *ty = S->ty;
    const int64_t n = S->n, m = S->m, nb = tx->lev[S->blk].K;
    *applied = 0;
    *iters = 0;
    *fits = 1;
    if (S->r != 0 || L > S->blk || L < 1) return MONGE_OK;
    const int64_t KX = tx->lev[L].K, KY = ty->lev[L].K;
    int st = MONGE_ENOMEM;
    int64_t *csx = block_starts(tx, L, 0), *csy = block_starts(ty, L, 0);
    int32_t *cellx = malloc(sizeof(int32_t) * (size_t)n), *celly = malloc(sizeof(int32_t) * (size_t)m);
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(nb + 1));
    int64_t *cptr = malloc(sizeof(int64_t) * (size_t)(nb + 1));
    int32_t *cols = NULL;
    float *q = NULL;
    double *lv = NULL, *gx = NULL, *ev = NULL, *u = NULL, *part = NULL, *best = NULL, *loc = NULL;
    monge_aa aa;
    memset(&aa, 0, sizeof aa);
    if (!csx || !csy || !cellx || !celly || !off || !cptr) goto out;
    if (KX > INT32_MAX || KY > INT32_MAX) {
        st = MONGE_OK;
        goto out;
    }
    for (int64_t c = 0; c < KX; c++)
        for (int64_t i = csx[c]; i < csx[c + 1]; i++) cellx[i] = (int32_t)c;
    for (int64_t c = 0; c < KY; c++)
        for (int64_t j = csy[c]; j < csy[c + 1]; j++) celly[j] = (int32_t)c;
    ms_gal G = {.M = M, .nb = nb, .off = off, .cptr = cptr, .csy = csy, .cellx = cellx,
                .celly = celly, .eps = eps};
    off[0] = cptr[0] = 0;
    int64_t maxcols = 0;
    for (int64_t B = 0; B < nb; B++) {
        const int64_t i0 = S->bsx[B], i1 = S->bsx[B + 1];
        const int64_t nrc = i1 > i0 ? cellx[i1 - 1] - cellx[i0] + 1 : 0;
        int64_t ncc = 0, cols_b = 0;
        for (int64_t p = S->rptr[B]; p < S->rptr[B + 1]; p++) {
            const int64_t j0 = S->rrng[2 * p], j1 = S->rrng[2 * p + 1];
            if (j1 > j0) ncc += celly[j1 - 1] - celly[j0] + 1;
            cols_b += j1 - j0;
        }
        cptr[B + 1] = cptr[B] + ncc;
        off[B + 1] = off[B] + nrc * ncc;
        maxcols = cols_b > maxcols ? cols_b : maxcols;
        G.maxq = nrc * ncc > G.maxq ? nrc * ncc : G.maxq;
        G.maxc = ncc > G.maxc ? ncc : G.maxc;
    }
    if (off[nb] > MS_GAL_MAX) { /* too large for the memory it would take: no correction */
        *fits = 0;
        st = MONGE_OK;
        goto out;
    }
    G.cap = ms_pack_cap(maxcols);
    G.maxc = G.maxc > 0 ? G.maxc : 1;
    cols = malloc(sizeof(int32_t) * (size_t)(cptr[nb] > 0 ? cptr[nb] : 1));
    q = malloc(sizeof(float) * (size_t)(off[nb] > 0 ? off[nb] : 1));
    lv = calloc((size_t)KY, sizeof(double));
    gx = malloc(sizeof(double) * (size_t)KY);
    best = calloc((size_t)KY, sizeof(double));
    ev = malloc(sizeof(double) * (size_t)KY);
    u = malloc(sizeof(double) * (size_t)KX);
    part = malloc(sizeof(double) * (size_t)KY * MS_GAL_CHUNKS);
    const int nloc = M->nth > MS_GAL_CHUNKS ? M->nth : MS_GAL_CHUNKS;
    loc = malloc(sizeof(double) * (size_t)G.maxc * 2 * (size_t)nloc);
    if (!cols || !q || !lv || !gx || !best || !ev || !u || !part || !loc) goto out;
    G.cols = cols;
    G.q = q;
    for (int64_t B = 0; B < nb; B++) {
        int64_t s = cptr[B];
        for (int64_t p = S->rptr[B]; p < S->rptr[B + 1]; p++) {
            const int64_t j0 = S->rrng[2 * p], j1 = S->rrng[2 * p + 1];
            if (j1 > j0)
                for (int64_t J = celly[j0]; J <= celly[j1 - 1]; J++) cols[s++] = (int32_t)J;
        }
    }
    double *wu = malloc(sizeof(double) * (size_t)n), *wv = malloc(sizeof(double) * (size_t)m);
    if (wu && wv) {
        weighted_pot(&tx->lev[0], M->f, eps, wu);
        weighted_pot(&ty->lev[0], M->g, eps, wv);
        G.u = wu;
        G.v = wv;
        st = gal_build(&G);
    }
    free(wu);
    free(wv);
    if (st) goto out;
    /* the scaling problem: lv = dG / eps; u_I = A_I / (Q e^lv)_I; lv <- log(B / Q^T u) */
    const double *A = tx->lev[L].w, *Bm = ty->lev[L].w;
    st = monge_aa_init(&aa, 8, KY, Bm, 1);
    if (st) goto out;
    double e0 = INFINITY, ebest = INFINITY;
    int64_t it = 0;
    for (;; it++) {
        for (int64_t J = 0; J < KY; J++) ev[J] = exp(lv[J]);
        gal_sweep(&G, ev, A, u, part, loc, KY);
        double err = 0;
        for (int64_t J = 0; J < KY; J++) {
            double qt = 0;
            for (int c = 0; c < MS_GAL_CHUNKS; c++) qt += part[(size_t)c * (size_t)KY + J];
            err += fabs(ev[J] * qt - Bm[J]);
            gx[J] = Bm[J] > 0 && qt > 0 ? log(Bm[J] / qt) : lv[J];
        }
        if (it == 0) e0 = err;
        if (err < ebest) {
            ebest = err;
            memcpy(best, lv, sizeof(double) * (size_t)KY);
        }
        if (!(err > ctol) || it >= MS_GAL_ITER || !isfinite(err)) break;
        memcpy(ev, gx, sizeof(double) * (size_t)KY);
        monge_aa_step(&aa, lv, gx, gx);
        for (int64_t J = 0; J < KY; J++) /* a step out of range: the plain one */
            lv[J] = isfinite(gx[J]) ? gx[J] : ev[J];
    }
    *iters = it;
    if (!(ebest < e0)) {
        st = MONGE_OK;
        goto out;
    }
    /* dG = eps lv at the best iterate, dF = eps log(A / Q e^lv) there */
    for (int64_t J = 0; J < KY; J++) ev[J] = exp(best[J]);
    gal_rows(&G, ev, A, u, loc);
    for (int64_t i = 0; i < n; i++) M->f[i] += u[cellx[i]];
    for (int64_t j = 0; j < m; j++) M->g[j] += eps * best[celly[j]];
    *applied = 1;
    st = MONGE_OK;
out:
    monge_aa_free(&aa);
    free(csx);
    free(csy);
    free(cellx);
    free(celly);
    free(off);
    free(cptr);
    free(cols);
    free(q);
    free(lv);
    free(gx);
    free(best);
    free(ev);
    free(u);
    free(part);
    free(loc);
    return st;
}

/* The correction on the cells of level *L, or else of the first coarser level up to the blocks'
 * whose Q fits in MS_GAL_MAX entries; *L: the level tried last. */
static int galerkin_fit(ms_step *M, int *L, double eps, double ctol, int *applied, int64_t *iters)
{
    int st = MONGE_OK, fits = 0;
    for (; *L <= M->sel.blk; (*L)++) {
        st = galerkin(M, *L, eps, ctol, applied, iters, &fits);
        if (st || fits) break;
    }
    return st;
}

/* Work arrays of resolution r; the potentials are left to the caller. */
static int step_alloc(ms_step *M, int r)
{
    ms_sel *S = &M->sel;
    S->r = r;
    S->n = S->tx->lev[r].K;
    S->m = S->ty->lev[r].K;
    const size_t nm = (size_t)(S->n > S->m ? S->n : S->m);
    M->f = malloc(sizeof(double) * (size_t)S->n);
    M->g = malloc(sizeof(double) * (size_t)S->m);
    M->h = malloc(sizeof(double) * nm);
    M->hint = malloc(sizeof(double) * nm);
    M->out = malloc(sizeof(double) * nm);
    M->fsave = malloc(sizeof(double) * (size_t)S->n);
    M->gsave = malloc(sizeof(double) * (size_t)S->m);
    M->fbest = malloc(sizeof(double) * (size_t)S->n);
    M->gbest = malloc(sizeof(double) * (size_t)S->m);
    M->scratch = malloc((S->g->dtype == MONGE_F32 ? sizeof(float) : sizeof(double)) * nm);
    M->a = S->tx->lev[r].w;
    M->la = S->tx->lev[r].lw;
    M->b = S->ty->lev[r].w;
    M->lb = S->ty->lev[r].lw;
    /* blocks: the first level above r holding MS_BLOCK items per cell on average */
    const int top = S->tx->nlev - 1;
    S->blk = r + 1;
    while (S->blk < top &&
           (double)(S->n + S->m) <
               MS_BLOCK * (double)(S->tx->lev[S->blk].K + S->ty->lev[S->blk].K))
        S->blk++;
    S->bsx = block_starts(S->tx, S->blk, r);
    S->bsy = block_starts(S->ty, S->blk, r);
    S->lcx = log_counts(S->tx, S->blk, r, S->bsx);
    S->lcy = log_counts(S->ty, S->blk, r, S->bsy);
    fill_thr(S->tx, S->blk);
    fill_thr(S->ty, S->blk);
    return M->f && M->g && M->h && M->hint && M->out && M->fsave && M->gsave && M->fbest &&
                   M->gbest && M->scratch && S->bsx && S->bsy && S->lcx && S->lcy
               ? MONGE_OK
               : MONGE_ENOMEM;
}

static void make_step(sk_step *st, ms_step *M)
{
    memset(st, 0, sizeof *st);
    st->rows = ms_rows;
    st->cols = ms_cols;
    st->adopt = ms_adopt;
    st->restore = ms_restore;
    st->note = ms_note;
    st->after = ms_after;
    st->stage = ms_stage;
    st->self_check = M->sym;
    st->xprev = M->gsave;
    st->xnew = M->g;
    st->self = M;
}

/* ------------------------------------------------------------------ entry points */
static int check_ms(const monge_problem *pb, const monge_ms_params *mp)
{
    const monge_geometry *g = pb ? pb->geom : NULL;
    if (!g || g->C || !g->x || !g->y || g->d < 1 || g->d > MS_MAXD) return MONGE_EINVAL;
    if (g->cost != MONGE_COST_SQEUCLIDEAN && g->cost != MONGE_COST_EUCLIDEAN &&
        g->cost != MONGE_COST_PNORM)
        return MONGE_EINVAL;
    if (!(mp->cluster_scale >= 0) || !isfinite(mp->cluster_scale)) return MONGE_EINVAL;
    if (!(mp->truncation > 0) || !(mp->truncation <= MS_TAU_MAX)) return MONGE_EINVAL;
    if (!(mp->switch_ratio > 0) || !isfinite(mp->switch_ratio)) return MONGE_EINVAL;
    if (!(mp->bound_frac > 0) || !(mp->bound_frac < 0.5)) return MONGE_EINVAL;
    if (!(mp->warm_tol >= 0) || !(mp->warm_tol < 1)) return MONGE_EINVAL;
    if (mp->refine_anderson < -1 || mp->refine_anderson > MONGE_SINKHORN_ANDERSON_MAX)
        return MONGE_EINVAL;
    if (mp->refine_stall < 0) return MONGE_EINVAL;
    if (mp->coarse_correction != 0 && mp->coarse_correction != 1) return MONGE_EINVAL;
    return MONGE_OK;
}

/* Prepares the trees and weights of a problem (shared by the solve and the post-solve passes). */
static int ms_open(const monge_problem *pb, const monge_ms_params *mp, ms_tree *tx,
                   ms_tree *ty, double *s_used)
{
    const monge_geometry *g = pb->geom;
    double *a = malloc(sizeof(double) * (size_t)g->n), *b = malloc(sizeof(double) * (size_t)g->m);
    int st = a && b ? MONGE_OK : MONGE_ENOMEM;
    if (!st) {
        monge_problem_weights(pb, 0, a);
        monge_problem_weights(pb, 1, b);
        for (int64_t i = 0; i < g->n * g->d && !st; i++)
            if (!isfinite(get_coord(g->x, g->dtype, 0, 1, i))) st = MONGE_EINVAL;
        for (int64_t j = 0; j < g->m * g->d && !st; j++)
            if (!isfinite(get_coord(g->y, g->dtype, 0, 1, j))) st = MONGE_EINVAL;
    }
    if (!st) st = build_trees(g, a, b, mp->cluster_scale, tx, ty, s_used);
    free(a);
    free(b);
    return st;
}

/* The slopes of the potentials at the items of resolution r >= 1: grad f(x_I) = sum_J pi(J | I)
 * grad_x c(x_I, y_J) over the kept plan (the c-transform's gradient; likewise g).  Children then
 * start from f_I + slope_I . (x_i - x_I): a piecewise-constant start is off by about the
 * displacement times the cell side, which is of the order of eps at the switch. */
static int slopes(ms_step *M, double eps, double *sx, double *sy)
{
    ms_sel *S = &M->sel;
    for (int tr = 0; tr < 2; tr++) {
        const ms_level *R = tr ? &S->ty->lev[S->r] : &S->tx->lev[S->r];
        const ms_level *C = tr ? &S->tx->lev[S->r] : &S->ty->lev[S->r];
        const double *pr = tr ? M->g : M->f, *pc = tr ? M->f : M->g;
        double *u = M->h, *v = M->hint, *rs = M->out, *gr = tr ? sy : sx;
        weighted_pot(R, pr, eps, u);
        weighted_pot(C, pc, eps, v);
        const ms_pass P = make_pass(S, tr);
        const int st = S->g->dtype == MONGE_F32
                           ? ms_apply_f32(&P, eps, u, v, NULL, 0, NULL, rs, NULL, gr, M->scratch, M->nth)
                           : ms_apply_f64(&P, eps, u, v, NULL, 0, NULL, rs, NULL, gr, M->scratch, M->nth);
        if (st) return st;
        const int64_t d = S->g->d;
        for (int64_t i = 0; i < R->K; i++) {
            int ok = rs[i] > 0 && isfinite(rs[i]);
            for (int64_t k = 0; k < d && ok; k++) ok = isfinite(gr[i * d + k] / rs[i]);
            for (int64_t k = 0; k < d; k++) gr[i * d + k] = ok ? gr[i * d + k] / rs[i] : 0.0;
        }
    }
    return MONGE_OK;
}

/* Potentials (and slopes) of level l - 1 from those of level l: linear in each cell. */
static void prolong(const ms_tree *t, int l, monge_dtype dt, int64_t d, const double *pot,
                    const double *slope, double *out, double *slope_out)
{
    const ms_level *U = &t->lev[l], *D = &t->lev[l - 1];
    for (int64_t c = 0; c < U->K; c++)
        for (int64_t i = U->child[c]; i < U->child[c + 1]; i++) {
            double v = pot[c];
            for (int64_t k = 0; k < d; k++) {
                v += slope[c * d + k] * (item_coord(D, dt, i, k) - item_coord(U, dt, c, k));
                if (slope_out) slope_out[i * d + k] = slope[c * d + k];
            }
            out[i] = isfinite(v) ? v : pot[c];
        }
}

static double level_side(double s, int r) { return r == 0 ? 0.0 : s * ldexp(1.0, r - 1); }

static int ms_solve(const monge_problem *pb, const monge_sinkhorn_params *par,
                    const monge_ms_params *mp, double *f, double *g, double *gx, double *gy,
                    monge_sinkhorn_info *info, monge_ms_info *minfo, int sym)
{
    monge_sinkhorn_params dpar;
    monge_ms_params dmp;
    monge_sinkhorn_info tinfo;
    monge_ms_info tminfo;
    if (!par) {
        monge_sinkhorn_params_init(&dpar);
        par = &dpar;
    }
    if (!mp) {
        monge_ms_params_init(&dmp);
        mp = &dmp;
    }
    if (!info) info = &tinfo;
    if (!minfo) minfo = &tminfo;
    memset(info, 0, sizeof *info);
    memset(minfo, 0, sizeof *minfo);
    info->cost = info->mass = info->value = info->error = NAN;
    info->eps_reached = par->eps;
    minfo->bound = NAN;
    int st = sk_check_params(par);
    if (st) return st;
    if (!f || !g || !pb) return MONGE_EINVAL;
    st = check_ms(pb, mp);
    if (st) return st;
    st = monge_problem_check(pb, 1e-6);
    if (st) return st;
    if (par->eps_scaling && !(par->scaling_factor > 0 && par->scaling_factor < 1)) return MONGE_EINVAL;
    const monge_geometry *geo = pb->geom;
    const int nth = monge_resolve_threads(par->nthreads);
    const int balanced = isinf(pb->tau_a) && isinf(pb->tau_b);
    const double q = par->scaling_factor > 0 && par->scaling_factor < 1 ? par->scaling_factor : 0.5;
    ms_tree tx, ty;
    memset(&tx, 0, sizeof tx);
    memset(&ty, 0, sizeof ty);
    ms_step M;
    memset(&M, 0, sizeof M);
    double s;
    st = ms_open(pb, mp, &tx, &ty, &s);
    int64_t resel = 0;
    double *fprev = NULL, *gprev = NULL, *sxp = NULL, *syp = NULL, *gsort = NULL;
    const int64_t dd = geo->d;
    if (st) goto done;
    M.pb = pb;
    M.nth = nth;
    M.sym = sym;
    M.reselections = &resel;
    M.sel = sel_make(geo, &tx, &ty, mp, M.nth);
    M.sel.mirror = sym;
    /* eps at the top: the largest cost (bounding boxes), unless warm started at the target */
    double eps = par->eps;
    int r = 0;
    if (!par->warm_start) {
        const int top = tx.nlev - 1;
        double cmax = 0;
        M.sel.r = top;
        for (int64_t I = 0; I < tx.lev[top].K; I++)
            for (int64_t J = 0; J < ty.lev[top].K; J++) {
                /* the largest cost between the boxes bounds every cost */
                const int64_t d = geo->d;
                double z[MS_MAXD];
                for (int64_t k = 0; k < d; k++) {
                    const double z1 = fabs(tx.lev[top].hi[I * d + k] - ty.lev[top].lo[J * d + k]);
                    const double z2 = fabs(ty.lev[top].hi[J * d + k] - tx.lev[top].lo[I * d + k]);
                    z[k] = z1 > z2 ? z1 : z2;
                }
                const double c = axis_cost(geo, z);
                cmax = c > cmax ? c : cmax;
            }
        eps = par->eps_start > 0 ? par->eps_start : cmax;
        if (!(eps > par->eps) || !isfinite(eps)) eps = par->eps; /* costs that overflow */
        r = tx.nlev - 2; /* blocks at the top */
        while (r > 0 && eps < mp->switch_ratio * level_side(s, r) * level_side(s, r)) r--;
    }
    int prev_at_target = 0; /* the previous (coarser) level ended at the target eps */
    minfo->levels = tx.nlev;
    minfo->cluster_scale = s;
    for (;;) {
        st = step_alloc(&M, r);
        if (st) goto done;
        if (fprev) { /* children start from their parents' potentials, linear in each cell */
            prolong(&tx, r + 1, geo->dtype, dd, fprev, sxp, M.f, NULL);
            prolong(&ty, r + 1, geo->dtype, dd, gprev, syp, M.g, NULL);
            free(fprev);
            free(gprev);
            free(sxp);
            free(syp);
            fprev = gprev = sxp = syp = NULL;
            if (info->n_iter >= par->max_iter) { /* carried down unsolved: the points' plan */
                st = reselect(&M, info->eps_reached);
                if (st) goto done;
                goto finish;
            }
        } else if (par->warm_start) {
            for (int64_t i = 0; i < geo->n; i++) M.f[i] = f[tx.perm[i]];
            for (int64_t j = 0; j < geo->m; j++) M.g[j] = g[ty.perm[j]];
            for (int64_t i = 0; i < geo->n && !st; i++)
                if (!isfinite(M.f[i])) st = MONGE_EINVAL;
            for (int64_t j = 0; j < geo->m && !st; j++)
                if (!isfinite(M.g[j])) st = MONGE_EINVAL;
            if (st) goto done;
        } else {
            memset(M.f, 0, sizeof(double) * (size_t)M.sel.n);
            memset(M.g, 0, sizeof(double) * (size_t)M.sel.m);
        }
        if (sym) /* one potential: the mirrored selection relies on f = g exactly (the slopes of
                    the two sides may differ in the last bits) */
            memcpy(M.g, M.f, sizeof(double) * (size_t)M.sel.m);
        const double side = level_side(s, r);
        double eps_lo = r > 0 ? mp->switch_ratio * side * side : par->eps;
        if (eps_lo < par->eps) eps_lo = par->eps;
        monge_sinkhorn_params rp = *par;
        rp.eps = eps_lo;
        rp.scaling_factor = q;
        if (r > 0) { /* a coarse level at the target eps only warm-starts the next one */
            const double lt = eps > par->eps || mp->warm_tol == 0 ? rp.stage_tol : mp->warm_tol;
            rp.tol = lt > rp.tol ? lt : rp.tol;
        }
        const int refining = prev_at_target;
        if (refining && mp->refine_anderson >= 0) rp.anderson = mp->refine_anderson;
        prev_at_target = eps_lo <= par->eps;
        if (sym) { /* its own update, no acceleration, as monge_sinkhorn_symmetric */
            rp.anderson = 0;
            rp.overrelax = 1.0;
        }
        sk_step step;
        make_step(&step, &M);
        step.aa_stall = refining ? mp->refine_stall : 0;
        if (r == 0 && refining && mp->coarse_correction && balanced && !sym &&
            rp.tol >= MS_GAL_MIN_TOL) {
            /* a few iterations on the points, the cell-constant correction, then plain updates
             * (Anderson's extrapolation from the corrected state only delays it at these
             * tolerances; below MS_GAL_MIN_TOL the plain tail is the slower) */
            monge_sinkhorn_params r1 = rp;
            r1.max_iter = par->max_iter - info->n_iter > MS_GAL_BEFORE ? info->n_iter + MS_GAL_BEFORE
                                                                       : par->max_iter;
            st = sk_engine_run_stages(&step, &r1, eps, M.sel.m, M.b, balanced, info);
            if (st == MONGE_OK && !info->converged && info->n_iter < par->max_iter) {
                int applied = 0;
                int64_t cit = 0;
                int lg = 1; /* the cells of level 1, or the first coarser level whose Q fits */
                st = galerkin_fit(&M, &lg, eps, MS_GAL_TOL * rp.tol, &applied, &cit);
                if (st == MONGE_ENOMEM) st = MONGE_OK; /* an optimisation: without it, as before */
                if (st) goto done;
                minfo->coarse_iterations = applied ? cit : -1;
                if (applied) rp.anderson = 0; /* else the level goes on as without it */
                make_step(&step, &M);
                step.aa_stall = mp->refine_stall;
                M.keep_sel = 1;
                st = sk_engine_run_stages(&step, &rp, eps, M.sel.m, M.b, balanced, info);
                if (st == MONGE_OK && info->converged && applied && info->n_iter < par->max_iter) {
                    /* once more at the end: plain updates leave their error in the smooth modes,
                     * where a small marginal error hides a larger one in the potentials (and the
                     * gradients); the same correction removes it, one iteration measures it */
                    int64_t cit2 = 0;
                    int fits;
                    st = galerkin(&M, lg, eps, MS_GAL_TOL * rp.tol, &applied, &cit2, &fits);
                    if (st == MONGE_ENOMEM) st = MONGE_OK;
                    if (st) goto done;
                    if (applied) minfo->coarse_iterations += cit2;
                    make_step(&step, &M);
                    M.keep_sel = 1;
                    st = sk_engine_run_stages(&step, &rp, eps, M.sel.m, M.b, balanced, info);
                }
            }
        } else {
            st = sk_engine_run_stages(&step, &rp, eps, M.sel.m, M.b, balanced, info);
        }
        if (st == MONGE_EINTR || (st && st != MONGE_ENOCONV)) {
            if (r == 0) goto finish; /* return the state reached */
            goto done;
        }
        if (r == 0) break;
        /* out of iterations above the points: the state reached is carried down to them
         * unsolved (potentials and slopes, level by level) and returned at its eps */
        const int exhausted = info->n_iter >= par->max_iter;
        if (exhausted) info->converged = 0;
        sxp = malloc(sizeof(double) * (size_t)(M.sel.n * dd));
        syp = malloc(sizeof(double) * (size_t)(M.sel.m * dd));
        st = sxp && syp ? slopes(&M, info->eps_reached, sxp, syp) : MONGE_ENOMEM;
        if (st) goto done;
        fprev = M.f;
        gprev = M.g;
        M.f = M.g = NULL;
        step_free(&M);
        sel_clear(&M.sel);
        eps = eps_lo * q > par->eps ? eps_lo * q : par->eps;
        r--;
        while (r > 0 &&
               (exhausted || eps < mp->switch_ratio * level_side(s, r) * level_side(s, r))) {
            /* a level skipped entirely: potentials and slopes passed down once more */
            const int64_t kx = tx.lev[r].K, ky = ty.lev[r].K;
            double *f2 = malloc(sizeof(double) * (size_t)kx);
            double *g2 = malloc(sizeof(double) * (size_t)ky);
            double *sx2 = malloc(sizeof(double) * (size_t)(kx * dd));
            double *sy2 = malloc(sizeof(double) * (size_t)(ky * dd));
            if (!f2 || !g2 || !sx2 || !sy2) {
                free(f2);
                free(g2);
                free(sx2);
                free(sy2);
                st = MONGE_ENOMEM;
                goto done;
            }
            prolong(&tx, r + 1, geo->dtype, dd, fprev, sxp, f2, sx2);
            prolong(&ty, r + 1, geo->dtype, dd, gprev, syp, g2, sy2);
            free(fprev);
            free(gprev);
            free(sxp);
            free(syp);
            fprev = f2;
            gprev = g2;
            sxp = sx2;
            syp = sy2;
            r--;
        }
    }
finish:
    /* r = 0: the potentials of the points, back in input order, and the plan's value */
    {
        const int64_t n = geo->n, m = geo->m;
        if (balanced && !sym && st != MONGE_EINTR) {
            double fa = 0, gb = 0, ma = 0, mb = 0;
            for (int64_t i = 0; i < n; i++) ma += M.a[i];
            for (int64_t j = 0; j < m; j++) mb += M.b[j];
            for (int64_t i = 0; i < n; i++) fa += (M.a[i] / ma) * M.f[i];
            for (int64_t j = 0; j < m; j++) gb += (M.b[j] / mb) * M.g[j];
            const double wa = ma / (ma + mb), c = wa * fa - (1.0 - wa) * gb;
            for (int64_t i = 0; i < n; i++) M.f[i] -= c;
            for (int64_t j = 0; j < m; j++) M.g[j] += c;
        }
        for (int64_t i = 0; i < n; i++) f[tx.perm[i]] = M.f[i];
        for (int64_t j = 0; j < m; j++) g[ty.perm[j]] = M.g[j];
        if (st != MONGE_EINTR && M.sel.lu0x) { /* E at the potentials returned, not the last
                                                   measured (a half-step before them) */
            fill_lu(&tx, 0, info->eps_reached, M.f);
            fill_lu(&ty, 0, info->eps_reached, M.g);
            const int sb = current_bound(&M, info->eps_reached, &M.sel.bound);
            if (sb) {
                st = sb;
                goto done;
            }
        }
        minfo->bound = M.sel.bound;
        minfo->truncation = M.sel.tau;
        minfo->kept_blocks = M.sel.kept_blocks;
        minfo->kept_entries = M.sel.kept_entries;
        minfo->blocks_x = tx.lev[M.sel.blk].K;
        minfo->blocks_y = ty.lev[M.sel.blk].K;
        minfo->reselections = resel;
        if (st == MONGE_EINTR) goto done;
        const double e2 = info->eps_reached;
        double *u = M.h, *v = M.hint;
        weighted_pot(&tx.lev[0], M.f, e2, u);
        weighted_pot(&ty.lev[0], M.g, e2, v);
        double *rs = par->compute_cost ? M.out : NULL, *rc = par->compute_cost ? M.fbest : NULL;
        for (int tr = 0; tr < 2; tr++) { /* the gradients on the final kept plan (grad_x with the
                                            value's row sums and costs, in one pass) */
            double *go = tr ? gy : gx;
            if (!go) continue;
            const ms_pass P = make_pass(&M.sel, tr);
            const ms_tree *R = tr ? &ty : &tx;
            const int64_t nr = tr ? m : n;
            gsort = gsort ? gsort : malloc(sizeof(double) * (size_t)((n > m ? n : m) * dd));
            if (!gsort) {
                st = MONGE_ENOMEM;
                goto done;
            }
            const double *pu = tr ? v : u, *pv = tr ? u : v;
            double *rs1 = tr ? NULL : rs, *rc1 = tr ? NULL : rc;
            st = geo->dtype == MONGE_F32
                     ? ms_apply_f32(&P, e2, pu, pv, NULL, 0, NULL, rs1, rc1, gsort, M.scratch, nth)
                     : ms_apply_f64(&P, e2, pu, pv, NULL, 0, NULL, rs1, rc1, gsort, M.scratch, nth);
            if (st) goto done;
            for (int64_t i = 0; i < nr; i++)
                memcpy(go + R->perm[i] * dd, gsort + i * dd, sizeof(double) * (size_t)dd);
        }
        if (par->compute_cost) {
            const ms_pass P = make_pass(&M.sel, 0);
            if (!gx)
                st = geo->dtype == MONGE_F32
                         ? ms_apply_f32(&P, e2, u, v, NULL, 0, NULL, rs, rc, NULL, M.scratch, nth)
                         : ms_apply_f64(&P, e2, u, v, NULL, 0, NULL, rs, rc, NULL, M.scratch, nth);
            if (st) goto done;
            double mass = 0, cost = 0, ma = 0, mb = 0, dual = 0;
            for (int64_t i = 0; i < n; i++) {
                mass += rs[i];
                cost += rc[i];
                ma += M.a[i];
                if (M.a[i] > 0)
                    dual += M.a[i] * (isinf(pb->tau_a) ? M.f[i]
                                                       : pb->tau_a * (1 - exp(-M.f[i] / pb->tau_a)));
            }
            for (int64_t j = 0; j < m; j++) {
                mb += M.b[j];
                if (M.b[j] > 0)
                    dual += M.b[j] * (isinf(pb->tau_b) ? M.g[j]
                                                       : pb->tau_b * (1 - exp(-M.g[j] / pb->tau_b)));
            }
            info->mass = mass;
            info->cost = cost;
            info->value = dual - e2 * (mass - ma * mb);
            if (!(isfinite(info->value) && isfinite(info->cost))) st = MONGE_ENONFINITE;
        }
        for (int64_t i = 0; i < n && st != MONGE_ENONFINITE; i++)
            if (!isfinite(f[i])) st = MONGE_ENONFINITE;
        for (int64_t j = 0; j < m && st != MONGE_ENONFINITE; j++)
            if (!isfinite(g[j])) st = MONGE_ENONFINITE;
        for (int64_t q = 0; gx && q < n * dd && st != MONGE_ENONFINITE; q++)
            if (!isfinite(gx[q])) st = MONGE_ENONFINITE; /* e.g. a plan beyond double's range */
        for (int64_t q = 0; gy && q < m * dd && st != MONGE_ENONFINITE; q++)
            if (!isfinite(gy[q])) st = MONGE_ENONFINITE;
        if (st == MONGE_OK && !info->converged) st = MONGE_ENOCONV;
    }
done:
    free(fprev);
    free(gprev);
    free(sxp);
    free(syp);
    free(gsort);
    step_free(&M);
    sel_clear(&M.sel);
    tree_free(&tx);
    tree_free(&ty);
    return st;
}

int monge_sinkhorn_multiscale(const monge_problem *pb, const monge_sinkhorn_params *par,
                              const monge_ms_params *mp, double *f, double *g,
                              monge_sinkhorn_info *info, monge_ms_info *minfo)
{
    return ms_solve(pb, par, mp, f, g, NULL, NULL, info, minfo, 0);
}

int monge_sinkhorn_multiscale_grad(const monge_problem *pb, const monge_sinkhorn_params *par,
                                   const monge_ms_params *mp, double *f, double *g,
                                   double *grad_x, double *grad_y, monge_sinkhorn_info *info,
                                   monge_ms_info *minfo)
{
    return ms_solve(pb, par, mp, f, g, grad_x, grad_y, info, minfo, 0);
}

int monge_sinkhorn_multiscale_symmetric(const monge_problem *pb, const monge_sinkhorn_params *par,
                                        const monge_ms_params *mp, double *p,
                                        monge_sinkhorn_info *info, monge_ms_info *minfo)
{
    return monge_sinkhorn_multiscale_symmetric_grad(pb, par, mp, p, NULL, info, minfo);
}

int monge_sinkhorn_multiscale_symmetric_grad(const monge_problem *pb,
                                             const monge_sinkhorn_params *par,
                                             const monge_ms_params *mp, double *p, double *grad,
                                             monge_sinkhorn_info *info, monge_ms_info *minfo)
{
    if (!pb || !pb->geom || !p) return MONGE_EINVAL;
    monge_geometry geo = *pb->geom;
    geo.y = geo.x;
    geo.m = geo.n;
    monge_problem sym = *pb;
    sym.geom = &geo;
    sym.b = pb->a;
    sym.tau_b = pb->tau_a;
    double *q = malloc(sizeof(double) * (size_t)(geo.n > 0 ? geo.n : 1));
    if (!q) return MONGE_ENOMEM;
    if (par && par->warm_start) memcpy(q, p, sizeof(double) * (size_t)geo.n);
    int st = ms_solve(&sym, par, mp, p, q, grad, NULL, info, minfo, 1);
    free(q);
    return st;
}

int monge_ms_apply(const monge_problem *pb, const monge_ms_params *mp, double eps, const double *f,
                   const double *g, int transpose, const double *V, int64_t k, double *out,
                   double *rowsum, double *rowcost, double *grad, double *bound, int nthreads)
{
    monge_ms_params dmp;
    if (!mp) {
        monge_ms_params_init(&dmp);
        mp = &dmp;
    }
    if (!pb || !f || !g || !(eps > 0) || !isfinite(eps) || k < 0 || (k > 0 && (!V || !out)))
        return MONGE_EINVAL;
    int st = check_ms(pb, mp);
    if (!st) st = monge_problem_check(pb, 1e-6);
    if (st) return st;
    const monge_geometry *geo = pb->geom;
    const int nth = monge_resolve_threads(nthreads);
    ms_tree tx, ty;
    memset(&tx, 0, sizeof tx);
    memset(&ty, 0, sizeof ty);
    ms_step M;
    memset(&M, 0, sizeof M);
    double s;
    const int64_t n = geo->n, m = geo->m, d = geo->d;
    const int64_t nr = transpose ? m : n, nc = transpose ? n : m;
    double *Vs = NULL, *os = NULL, *gs = NULL, *rs = NULL, *rc = NULL;
    st = ms_open(pb, mp, &tx, &ty, &s);
    if (st) goto done;
    M.nth = nth;
    M.sel = sel_make(geo, &tx, &ty, mp, M.nth);
    st = step_alloc(&M, 0);
    if (st) goto done;
    for (int64_t i = 0; i < n; i++) M.f[i] = f[tx.perm[i]];
    for (int64_t j = 0; j < m; j++) M.g[j] = g[ty.perm[j]];
    st = reselect(&M, eps);
    if (st) goto done;
    if (bound) *bound = M.sel.bound;
    const ms_tree *R = transpose ? &ty : &tx, *C = transpose ? &tx : &ty;
    double *u = M.h, *v = M.hint;
    const double *pu = transpose ? M.g : M.f, *pv = transpose ? M.f : M.g;
    weighted_pot(&R->lev[0], pu, eps, u);
    weighted_pot(&C->lev[0], pv, eps, v);
    if (k > 0) {
        Vs = malloc(sizeof(double) * (size_t)(nc * k));
        os = malloc(sizeof(double) * (size_t)(nr * k));
        if (!Vs || !os) {
            st = MONGE_ENOMEM;
            goto done;
        }
        for (int64_t j = 0; j < nc; j++) memcpy(Vs + j * k, V + C->perm[j] * k, sizeof(double) * (size_t)k);
    }
    if (grad) gs = malloc(sizeof(double) * (size_t)(nr * d));
    if (rowsum) rs = malloc(sizeof(double) * (size_t)nr);
    if (rowcost) rc = malloc(sizeof(double) * (size_t)nr);
    if ((grad && !gs) || (rowsum && !rs) || (rowcost && !rc)) {
        st = MONGE_ENOMEM;
        goto done;
    }
    const ms_pass P = make_pass(&M.sel, transpose);
    st = geo->dtype == MONGE_F32 ? ms_apply_f32(&P, eps, u, v, Vs, k, os, rs, rc, gs, M.scratch, nth)
                                 : ms_apply_f64(&P, eps, u, v, Vs, k, os, rs, rc, gs, M.scratch, nth);
    if (st) goto done;
    for (int64_t i = 0; i < nr; i++) {
        const int64_t o = R->perm[i];
        if (os) memcpy(out + o * k, os + i * k, sizeof(double) * (size_t)k);
        if (gs) memcpy(grad + o * d, gs + i * d, sizeof(double) * (size_t)d);
        if (rs) rowsum[o] = rs[i];
        if (rc) rowcost[o] = rc[i];
    }
done:
    free(Vs);
    free(os);
    free(gs);
    free(rs);
    free(rc);
    step_free(&M);
    sel_clear(&M.sel);
    tree_free(&tx);
    tree_free(&ty);
    return st;
}

int monge_ms_plan(const monge_problem *pb, const monge_ms_params *mp, double eps, const double *f,
                  const double *g, int64_t *nnz, int64_t *rows, int64_t *cols, double *vals,
                  int nthreads)
{
    monge_ms_params dmp;
    if (!mp) {
        monge_ms_params_init(&dmp);
        mp = &dmp;
    }
    if (!pb || !f || !g || !nnz || !(eps > 0) || !isfinite(eps)) return MONGE_EINVAL;
    int st = check_ms(pb, mp);
    if (!st) st = monge_problem_check(pb, 1e-6);
    if (st) return st;
    (void)nthreads;
    const monge_geometry *geo = pb->geom;
    ms_tree tx, ty;
    memset(&tx, 0, sizeof tx);
    memset(&ty, 0, sizeof ty);
    ms_step M;
    memset(&M, 0, sizeof M);
    double s;
    st = ms_open(pb, mp, &tx, &ty, &s);
    if (st) goto done;
    M.nth = 1;
    M.sel = sel_make(geo, &tx, &ty, mp, M.nth);
    st = step_alloc(&M, 0);
    if (st) goto done;
    for (int64_t i = 0; i < geo->n; i++) M.f[i] = f[tx.perm[i]];
    for (int64_t j = 0; j < geo->m; j++) M.g[j] = g[ty.perm[j]];
    st = reselect(&M, eps);
    if (st) goto done;
    if (!rows) {
        *nnz = M.sel.kept_entries;
        goto done;
    }
    if (*nnz < M.sel.kept_entries) {
        st = MONGE_EINVAL;
        goto done;
    }
    /* entries in row-major order of the sorted rows, computed in double */
    const int64_t d = geo->d;
    const int64_t nb = tx.lev[M.sel.blk].K;
    int64_t q = 0;
    double xi[MS_MAXD];
    for (int64_t I = 0; I < nb; I++)
        for (int64_t i = M.sel.bsx[I]; i < M.sel.bsx[I + 1]; i++) {
            const double ui = M.f[i] + eps * tx.lev[0].lw[i];
            for (int64_t k = 0; k < d; k++) xi[k] = get_coord(tx.lev[0].pts, geo->dtype, 0, 1, k * geo->n + i);
            for (int64_t t = M.sel.rptr[I]; t < M.sel.rptr[I + 1]; t++)
                for (int64_t j = M.sel.rrng[2 * t]; j < M.sel.rrng[2 * t + 1]; j++) {
                    double z[MS_MAXD];
                    for (int64_t k = 0; k < d; k++)
                        z[k] = fabs(xi[k] - get_coord(ty.lev[0].pts, geo->dtype, 0, 1, k * geo->m + j));
                    const double c = axis_cost(geo, z);
                    rows[q] = tx.perm[i];
                    cols[q] = ty.perm[j];
                    vals[q] = exp((ui + M.g[j] + eps * ty.lev[0].lw[j] - c) / eps);
                    q++;
                }
        }
    *nnz = q;
done:
    step_free(&M);
    sel_clear(&M.sel);
    tree_free(&tx);
    tree_free(&ty);
    return st;
}
