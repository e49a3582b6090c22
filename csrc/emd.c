/* monge exact OT: network simplex on implicit arcs, 1-D and sliced Wasserstein (see emd.h). */
#include "emd.h"
#include "internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define RC_TOL 1e-12          /* entering threshold on the scaled reduced cost (|C| < 1) */
#define PROGRESS_EVERY 64     /* pivots between progress callbacks (the binding's callback looks at
                                  the clock and visits Python about every 0.1 s) */
#define PRICE_CHECK (1 << 20) /* arcs priced between progress callbacks inside one long scan */

void monge_emd_params_init(monge_emd_params *par)
{
    memset(par, 0, sizeof *par);
    par->max_iter = 0;
    par->block_size = 0;
    par->init = 0;
    par->mass_rtol = 1e-8;
    par->nthreads = 0;
    par->progress = NULL;
    par->progress_ctx = NULL;
    par->basis = NULL;
}

struct monge_emd_basis {
    int64_t n0, m0;               /* the problem's sizes */
    int32_t n, m, root, cap;      /* active sizes; capacity of the node arrays */
    int32_t *parent, *thread, *rthread, *depth;
    double *wa, *wb;              /* the unit-mass weights it was solved with (n0, m0) */
    int valid;
};

int monge_emd_basis_new(monge_emd_basis **out)
{
    if (!out) return MONGE_EINVAL;
    *out = calloc(1, sizeof **out);
    return *out ? MONGE_OK : MONGE_ENOMEM;
}

void monge_emd_basis_free(monge_emd_basis *b)
{
    if (!b) return;
    free(b->parent);
    free(b->thread);
    free(b->rthread);
    free(b->depth);
    free(b->wa);
    free(b->wb);
    free(b);
}

/* ------------------------------------------------------------------ sorting */

/* Stable LSD radix sort of (key, index) by key: idx receives the order.  Doubles map to unsigned
 * integers that sort in the same order (flip all bits of negatives, the sign bit of others); -0.0
 * is mapped to +0.0 first so that equal values tie.  Byte passes whose digit is constant are
 * skipped.  tmp_u, tmp_i: work space of n elements each. */
static inline uint64_t sort_key(double v)
{
    if (v == 0.0) v = 0.0;
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

static void argsort(int64_t n, const double *key, int64_t *idx, uint64_t *ku, uint64_t *tmp_u,
                    int64_t *tmp_i)
{
    for (int64_t i = 0; i < n; i++) {
        ku[i] = sort_key(key[i]);
        idx[i] = i;
    }
    if (n < 48) { /* insertion sort (stable) */
        for (int64_t i = 1; i < n; i++) {
            uint64_t k = ku[i];
            int64_t v = idx[i], j = i - 1;
            while (j >= 0 && ku[j] > k) {
                ku[j + 1] = ku[j];
                idx[j + 1] = idx[j];
                j--;
            }
            ku[j + 1] = k;
            idx[j + 1] = v;
        }
        return;
    }
    uint64_t *su = ku, *du = tmp_u;
    int64_t *si = idx, *di = tmp_i;
    for (int shift = 0; shift < 64; shift += 8) {
        int64_t cnt[256] = {0};
        for (int64_t i = 0; i < n; i++) cnt[(su[i] >> shift) & 255u]++;
        if (cnt[(su[0] >> shift) & 255u] == n) continue; /* constant digit */
        int64_t s = 0;
        for (int k = 0; k < 256; k++) {
            int64_t c = cnt[k];
            cnt[k] = s;
            s += c;
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t pos = cnt[(su[i] >> shift) & 255u]++;
            du[pos] = su[i];
            di[pos] = si[i];
        }
        uint64_t *tu = su;
        su = du;
        du = tu;
        int64_t *ti = si;
        si = di;
        di = ti;
    }
    if (si != idx) memcpy(idx, si, sizeof(int64_t) * (size_t)n);
}

/* Sort triplets by (row, col): keys are row * m + col, distinct. */
static int sort_triplets(int64_t nnz, int64_t m, int64_t *rows, int64_t *cols, double *vals)
{
    if (nnz < 2) return MONGE_OK;
    double *key = calloc((size_t)nnz, sizeof(double));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)nnz);
    int64_t *ti = malloc(sizeof(int64_t) * (size_t)nnz);
    uint64_t *ku = malloc(sizeof(uint64_t) * (size_t)nnz);
    uint64_t *tu = malloc(sizeof(uint64_t) * (size_t)nnz);
    double *tv = malloc(sizeof(double) * (size_t)nnz);
    int st = MONGE_OK;
    if (!key || !idx || !ti || !ku || !tu || !tv) {
        st = MONGE_ENOMEM;
        goto out;
    }
    /* row * m + col < 2^53 for any problem that fits in memory: exact as a double key */
    for (int64_t k = 0; k < nnz; k++) key[k] = (double)rows[k] * (double)m + (double)cols[k];
    argsort(nnz, key, idx, ku, tu, ti);
    for (int64_t k = 0; k < nnz; k++) ti[k] = rows[idx[k]];
    memcpy(rows, ti, sizeof(int64_t) * (size_t)nnz);
    for (int64_t k = 0; k < nnz; k++) ti[k] = cols[idx[k]];
    memcpy(cols, ti, sizeof(int64_t) * (size_t)nnz);
    for (int64_t k = 0; k < nnz; k++) tv[k] = vals[idx[k]];
    memcpy(vals, tv, sizeof(double) * (size_t)nnz);
out:
    free(key);
    free(idx);
    free(ti);
    free(ku);
    free(tu);
    free(tv);
    return st;
}

/* ------------------------------------------------------------------ weights */

/* Weights of one side (uniform when w is NULL) checked and summed. */
static int side_weights(int64_t n, const double *w, double *out, double *mass)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = w ? w[i] : 1.0 / (double)n;
        if (!(v >= 0.0) || !isfinite(v)) return MONGE_EINVAL;
        out[i] = v;
        s += v;
    }
    if (!(s > 0.0) || !isfinite(s)) return MONGE_EINVAL;
    *mass = s;
    return MONGE_OK;
}

/* Checks the masses and scales b to the mass of a. */
static int reconcile(int64_t m, double ma, double *b, double mb, double rtol)
{
    double d = fabs(ma - mb);
    if (d > rtol * (ma > mb ? ma : mb)) return MONGE_EINVAL;
    if (d > 0.0) {
        double s = ma / mb;
        for (int64_t j = 0; j < m; j++) b[j] *= s;
    }
    return MONGE_OK;
}

/* ------------------------------------------------------------------ the network simplex */

typedef struct {
    int32_t n, m, N;              /* active rows and columns (positive weight), N = n + m */
    int32_t root;                 /* root of the tree (the first row of the starting order) */
    /* raw costs from the geometry layer, scaled here by `scale` (a power of two) */
    monge_geom_work *geo;         /* the active problem (float64): rows 0..n-1, columns 0..m-1 */
    double *Cown;                 /* dense: compacted copy when weights are zero */
    double *xown, *yown;          /* online: active points as float64 rows, when copied */
    int64_t d;                    /* online: dimension */
    double scale;
    /* the tree: nodes 0..n-1 are rows, n..N-1 columns; the root is the first row of the starting order */
    int32_t *parent, *thread, *rthread, *depth;
    double *flow;                 /* flow on the arc between a node and its parent */
    double *pi;                   /* potentials: reduced cost of (i, j) = C_ij - pi_i + pi_{n+j} */
    double *sup;                  /* supplies: a_i for rows, b_j for columns */
    int32_t *pv, *lastv;          /* pivot work: the re-hung path and the last nodes of blocks */
    int32_t *prevv, *nextl;
    double *seg;                  /* costs of a row segment computed online (m) */
    double *net;                  /* flow recomputation (N) */
} nws;

static void nws_free(nws *w)
{
    monge_geom_release(w->geo);
    free(w->Cown);
    free(w->xown);
    free(w->yown);
    free(w->parent);
    free(w->thread);
    free(w->rthread);
    free(w->depth);
    free(w->flow);
    free(w->pi);
    free(w->sup);
    free(w->pv);
    free(w->lastv);
    free(w->prevv);
    free(w->nextl);
    free(w->seg);
    free(w->net);
}

/* Scaled cost of arc (i, j) (active indices). */
static inline double arc_cost(const nws *w, int32_t i, int32_t j)
{
    double c;
    return *monge_geom_cost_row(w->geo, 0, i, j, 1, &c) * w->scale;
}

/* min over t < len of the scaled cost c_t * s plus the column potential pc_t */
MONGE_HOT static double segment_min(const double *c, const double *pc, double s, int64_t len)
{
    double mn = INFINITY;
    MONGE_PRAGMA(omp simd reduction(min : mn))
    for (int64_t t = 0; t < len; t++) {
        double v = c[t] * s + pc[t];
        mn = v < mn ? v : mn;
    }
    return mn;
}

/* the offset of the minimum found by segment_min (c_t * s is exact: s is a power of two) */
static int64_t locate_min(const double *c, const double *pc, double s, int64_t len, double minval)
{
    for (int64_t t = 0; t < len; t++)
        if (c[t] * s + pc[t] == minval) return t;
    return 0;
}

/* Block search: scans arcs cyclically from *pos; returns 1 with the most negative reduced cost of
 * the first block holding one below -RC_TOL, 0 when a whole cycle finds none (optimal), -1 when
 * the progress callback (asked every PRICE_CHECK arcs of a long scan) cancelled. */
static int price(nws *w, int64_t B, int64_t *pos, int32_t *bi, int32_t *bj, double *brc,
                 const monge_emd_params *par, int64_t it)
{
    const int64_t n = w->n, m = w->m, total = n * m;
    int64_t i = *pos / m, j = *pos % m, scanned = 0, inblock = 0, next_check = PRICE_CHECK;
    double best = -RC_TOL;
    int found = 0;
    while (scanned < total) {
        if (scanned >= next_check) {
            next_check += PRICE_CHECK;
            if (par->progress && par->progress(par->progress_ctx, it, 0.0)) return -1;
        }
        int64_t len = m - j;
        if (len > B - inblock) len = B - inblock;
        if (len > total - scanned) len = total - scanned;
        const double *c = monge_geom_cost_row(w->geo, 0, i, j, len, w->seg);
        const double *pc = w->pi + n + j;
        const double mn = segment_min(c, pc, w->scale, len);
        const double rc = mn - w->pi[i];
        if (rc < best) {
            best = rc;
            *bi = (int32_t)i;
            *bj = (int32_t)(j + locate_min(c, pc, w->scale, len, mn));
            found = 1;
        }
        j += len;
        scanned += len;
        inblock += len;
        if (j == m) {
            j = 0;
            if (++i == n) i = 0;
        }
        if (inblock == B) {
            if (found) break;
            inblock = 0;
        }
    }
    *pos = i * m + j;
    *brc = best;
    return found;
}

/* Potentials from the tree, in preorder: exact up to the rounding of one path sum. */
static void compute_potentials(nws *w)
{
    const int32_t n = w->n, root = w->root;
    w->pi[root] = 0.0;
    for (int32_t u = w->thread[root]; u != root; u = w->thread[u]) {
        int32_t p = w->parent[u];
        if (u < n) w->pi[u] = arc_cost(w, u, p - n) + w->pi[p];
        else w->pi[u] = w->pi[p] - arc_cost(w, p, u - n);
    }
}

/* Flows from the tree and the supplies, leaves first (reverse preorder). */
static void compute_flows(nws *w)
{
    const int32_t n = w->n, N = w->N, root = w->root;
    for (int32_t u = 0; u < N; u++) w->net[u] = u < n ? w->sup[u] : -w->sup[u];
    for (int32_t u = w->rthread[root]; u != root; u = w->rthread[u]) {
        double v = u < n ? w->net[u] : -w->net[u];
        w->flow[u] = v > 0.0 ? v : 0.0;
        w->net[w->parent[u]] += w->net[u];
    }
}

/* The starting basis: north-west corner along row order ro and column order co (active
 * indices).  Each new arc attaches one new node (the next row or column) below the current
 * column or row, so the order of attachment is a preorder; ties advance the row, so zero-flow
 * arcs have a row as child and point to the root (strong feasibility). */
static void initial_tree(nws *w, const int64_t *ro, const int64_t *co)
{
    const int32_t n = w->n, m = w->m;
    int32_t r = (int32_t)ro[0], c = n + (int32_t)co[0];
    int32_t prev = r;
    w->root = r;
    w->parent[r] = -1;
    w->depth[r] = 0;
    w->parent[c] = r;
    w->depth[c] = 1;
    w->thread[prev] = c;
    w->rthread[c] = prev;
    prev = c;
    int32_t child = c; /* the node whose parent arc is the current arc */
    int64_t i = 0, j = 0;
    double ra = w->sup[r], rb = w->sup[c];
    for (;;) {
        if (i == n - 1 && j == m - 1) {
            const double x = ra < rb ? ra : rb;
            w->flow[child] = x > 0.0 ? x : 0.0;
            break;
        }
        /* the last column takes every remaining row and the last row every remaining column,
         * whatever the rounding of the residual masses says: every node joins the tree */
        const int adv_row = i == n - 1 ? 0 : (j == m - 1 ? 1 : ra <= rb);
        if (adv_row) {
            const double x = ra < rb ? ra : rb;
            w->flow[child] = x > 0.0 ? x : 0.0;
            rb -= ra;
            r = (int32_t)ro[++i];
            ra = w->sup[r];
            w->parent[r] = c;
            w->depth[r] = w->depth[c] + 1;
            child = r;
        } else {
            const double x = ra < rb ? ra : rb;
            w->flow[child] = x > 0.0 ? x : 0.0;
            ra -= x;
            c = n + (int32_t)co[++j];
            rb = w->sup[c];
            w->parent[c] = r;
            w->depth[c] = w->depth[r] + 1;
            child = c;
        }
        w->thread[prev] = child;
        w->rthread[child] = prev;
        prev = child;
    }
    w->thread[prev] = w->root;
    w->rthread[w->root] = prev;
}

/* One pivot on entering arc (i, j) with reduced cost rc < 0.  Returns MONGE_OK, or
 * MONGE_ENONFINITE if no blocking arc was found (only possible when flows stopped being finite
 * numbers: a defence, the unit-mass solve keeps them in [0, 1]). */
static int pivot(nws *w, int32_t i, int32_t j, double rc)
{
    const int32_t n = w->n;
    int32_t *parent = w->parent, *thread = w->thread, *rthread = w->rthread, *depth = w->depth;
    double *flow = w->flow;
    const int32_t s = i, t = n + j;

    /* apex of the cycle */
    int32_t u = s, v = t;
    while (depth[u] > depth[v]) u = parent[u];
    while (depth[v] > depth[u]) v = parent[v];
    while (u != v) {
        u = parent[u];
        v = parent[v];
    }
    const int32_t apex = u;

    /* leaving arc: the last blocking arc from the apex along the cycle's orientation
     * (apex -> s, s -> t, t -> apex).  Decreasing arcs: rows on the s side, columns on the t
     * side.  Scanning upwards, the s side keeps the first minimum, the t side the last. */
    double delta = INFINITY;
    int32_t out = -1;
    int on_s = 0;
    for (u = s; u != apex; u = parent[u])
        if (u < n && flow[u] < delta) {
            delta = flow[u];
            out = u;
            on_s = 1;
        }
    for (u = t; u != apex; u = parent[u])
        if (u >= n && flow[u] <= delta) {
            delta = flow[u];
            out = u;
            on_s = 0;
        }

    if (out < 0) return MONGE_ENONFINITE;

    /* augment */
    if (delta > 0.0) {
        for (u = s; u != apex; u = parent[u]) flow[u] += u < n ? -delta : delta;
        for (u = t; u != apex; u = parent[u]) flow[u] += u < n ? delta : -delta;
    }

    /* the subtree below the leaving arc is re-hung from the entering arc */
    const int32_t u_in = on_s ? s : t, v_in = on_s ? t : s;
    const double sigma = on_s ? rc : -rc;
    int32_t *pv = w->pv, *lastv = w->lastv, *prevv = w->prevv, *nextl = w->nextl;
    int32_t k = 0;
    for (u = u_in;; u = parent[u]) {
        pv[k] = u;
        if (u == out) break;
        k++;
    }
    /* last node of each path node's block, walking the old thread once */
    int32_t x = pv[0];
    for (int32_t q = 0; q <= k; q++) {
        const int32_t dq = depth[pv[q]];
        while (depth[thread[x]] > dq) x = thread[x];
        lastv[q] = x;
    }
    for (int32_t q = 0; q <= k; q++) {
        prevv[q] = rthread[pv[q]];
        nextl[q] = thread[lastv[q]];
    }
    /* cut the old block [out .. last(out)] out of the thread */
    const int32_t before = prevv[k], after = nextl[k];
    thread[before] = after;
    rthread[after] = before;
    /* new order: block(v0), then for each q: [v_{q+1} .. prev(v_q)], [next(last v_q) .. last v_{q+1}] */
    int32_t tail = lastv[0];
    for (int32_t q = 0; q < k; q++) {
        thread[tail] = pv[q + 1];
        rthread[pv[q + 1]] = tail;
        tail = prevv[q];
        if (lastv[q] != lastv[q + 1]) {
            thread[tail] = nextl[q];
            rthread[nextl[q]] = tail;
            tail = lastv[q + 1];
        }
    }
    /* flows and parents along the reversed path */
    for (int32_t q = k; q > 0; q--) {
        flow[pv[q]] = flow[pv[q - 1]];
        parent[pv[q]] = pv[q - 1];
    }
    flow[pv[0]] = delta;
    parent[pv[0]] = v_in;
    /* insert the block right after v_in */
    const int32_t nx = thread[v_in];
    thread[v_in] = pv[0];
    rthread[pv[0]] = v_in;
    thread[tail] = nx;
    rthread[nx] = tail;
    /* depths and potentials of the moved subtree */
    depth[pv[0]] = depth[v_in] + 1;
    w->pi[pv[0]] += sigma;
    for (x = thread[pv[0]]; x != nx; x = thread[x]) {
        depth[x] = depth[parent[x]] + 1;
        w->pi[x] += sigma;
    }
    return MONGE_OK;
}

#ifdef MONGE_EMD_DEBUG
#include <stdio.h>
/* Tree invariants: parents and depths agree, the thread is a preorder visiting every node once. */
static void check_tree(const nws *w, int64_t it)
{
    const int32_t N = w->N;
    int32_t cnt = 0, u = w->root;
    do {
        if (u != w->root && w->depth[u] != w->depth[w->parent[u]] + 1) {
            fprintf(stderr, "pivot %lld: depth of %d is %d, parent %d has %d\n", (long long)it, u,
                    w->depth[u], w->parent[u], w->depth[w->parent[u]]);
            abort();
        }
        if (w->rthread[w->thread[u]] != u) {
            fprintf(stderr, "pivot %lld: rthread broken at %d\n", (long long)it, u);
            abort();
        }
        u = w->thread[u];
        cnt++;
    } while (u != w->root && cnt <= N);
    if (cnt != N) {
        fprintf(stderr, "pivot %lld: thread visits %d of %d nodes\n", (long long)it, cnt, N);
        abort();
    }
}
#endif

/* Direction of largest spread of the two clouds xs (n x d) and ys (m x d) (power iteration on
 * the joint covariance). */
static void principal_axis(const nws *w, const double *xs, const double *ys, double *dir,
                           double *mean, double *tmp)
{
    const int64_t d = w->d, n = w->n, m = w->m;
    for (int64_t k = 0; k < d; k++) mean[k] = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++) mean[k] += xs[i * d + k];
    for (int64_t k = 0; k < d; k++) {
        for (int64_t j = 0; j < m; j++) mean[k] += ys[j * d + k];
        mean[k] /= (double)(n + m);
    }
    for (int64_t k = 0; k < d; k++) dir[k] = 1.0 + 0.1 * (double)k / (double)d;
    for (int it = 0; it < 30; it++) {
        for (int64_t k = 0; k < d; k++) tmp[k] = 0.0;
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t k = 0; k < d; k++) s += (xs[i * d + k] - mean[k]) * dir[k];
            for (int64_t k = 0; k < d; k++) tmp[k] += s * (xs[i * d + k] - mean[k]);
        }
        for (int64_t j = 0; j < m; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < d; k++) s += (ys[j * d + k] - mean[k]) * dir[k];
            for (int64_t k = 0; k < d; k++) tmp[k] += s * (ys[j * d + k] - mean[k]);
        }
        double nrm = 0.0;
        for (int64_t k = 0; k < d; k++) nrm += tmp[k] * tmp[k];
        nrm = sqrt(nrm);
        if (!(nrm > 0.0)) break; /* all points equal: any direction */
        for (int64_t k = 0; k < d; k++) dir[k] = tmp[k] / nrm;
    }
}

/* Solve on the active problem; writes the tree solution into w. */
static int simplex(nws *w, const monge_emd_params *par, int use_projection, int warm,
                   int64_t *n_iter)
{
    const int64_t n = w->n, m = w->m;
    int st = MONGE_OK;
    int64_t len = n > m ? n : m;
    int64_t *ro = malloc(sizeof(int64_t) * (size_t)n), *co = malloc(sizeof(int64_t) * (size_t)m);
    double *key = calloc((size_t)len, sizeof(double));
    uint64_t *ku = malloc(sizeof(uint64_t) * (size_t)len), *tu = malloc(sizeof(uint64_t) * (size_t)len);
    int64_t *ti = malloc(sizeof(int64_t) * (size_t)len);
    if (!ro || !co || !key || !ku || !tu || !ti) {
        st = MONGE_ENOMEM;
        goto out;
    }
    if (warm) {
        /* the kept basis: same weights, so the same flows, still strongly feasible */
        const monge_emd_basis *kb = par->basis;
        const size_t N = (size_t)w->N * sizeof(int32_t);
        w->root = kb->root;
        memcpy(w->parent, kb->parent, N);
        memcpy(w->thread, kb->thread, N);
        memcpy(w->rthread, kb->rthread, N);
        memcpy(w->depth, kb->depth, N);
        compute_flows(w);
    } else if (use_projection) {
        /* the points the costs are computed from (normalised for the cosine cost) */
        const int64_t d = w->d;
        const double *xs = monge_geom_points(w->geo, 0), *ys = monge_geom_points(w->geo, 1);
        double *dir = malloc(sizeof(double) * (size_t)(3 * d));
        if (!dir) {
            st = MONGE_ENOMEM;
            goto out;
        }
        principal_axis(w, xs, ys, dir, dir + d, dir + 2 * d);
        for (int64_t i = 0; i < n; i++) {
            double s = 0.0;
            for (int64_t k = 0; k < d; k++) s += xs[i * d + k] * dir[k];
            key[i] = s;
        }
        argsort(n, key, ro, ku, tu, ti);
        for (int64_t j = 0; j < m; j++) {
            double s = 0.0;
            for (int64_t k = 0; k < d; k++) s += ys[j * d + k] * dir[k];
            key[j] = s;
        }
        argsort(m, key, co, ku, tu, ti);
        free(dir);
    } else {
        for (int64_t i = 0; i < n; i++) ro[i] = i;
        for (int64_t j = 0; j < m; j++) co[j] = j;
    }
    if (!warm) initial_tree(w, ro, co);
#ifdef MONGE_EMD_DEBUG
    check_tree(w, -1);
#endif

    /* a quarter of LEMON's sqrt(#arcs): measured fastest on 2-D clouds of 1000 to 10000 points
     * (benchmarks/emd.py --block) */
    int64_t B = par->block_size > 0 ? par->block_size
                                    : (int64_t)ceil(0.25 * sqrt((double)n * (double)m));
    if (par->block_size <= 0 && B < 64) B = 64;
    if (B > n * m) B = n * m;

    compute_potentials(w);
    int64_t it = 0, pos = 0, since_recompute = 0;
    int verified = 0;
    for (;;) {
        int32_t bi = 0, bj = 0;
        double rc = 0.0;
        const int pr = price(w, B, &pos, &bi, &bj, &rc, par, it);
        if (pr < 0) {
            st = MONGE_EINTR;
            break;
        }
        if (!pr) {
            if (verified) break;
            compute_potentials(w); /* drop the drift of the incremental updates, then re-price */
            verified = 1;
            since_recompute = 0;
            continue;
        }
        verified = 0;
        if (par->max_iter > 0 && it >= par->max_iter) {
            st = MONGE_ENOCONV;
            break;
        }
        if ((st = pivot(w, bi, bj, rc))) break;
#ifdef MONGE_EMD_DEBUG
        check_tree(w, it);
#endif
        it++;
        if (++since_recompute >= w->N) {
            compute_potentials(w);
            since_recompute = 0;
        }
        if (par->progress && it % PROGRESS_EVERY == 0 &&
            par->progress(par->progress_ctx, it, rc / w->scale)) {
            st = MONGE_EINTR;
            break;
        }
    }
    *n_iter = it;
out:
    free(ro);
    free(co);
    free(key);
    free(ku);
    free(tu);
    free(ti);
    return st;
}

/* Points idx[0..cnt) (all of the first cnt when idx is NULL) of a cloud of d-vectors in dtype dt,
 * as float64 rows. */
static void gather_points(const void *p, monge_dtype dt, int64_t d, const int32_t *idx,
                          int64_t cnt, double *out)
{
    for (int64_t r = 0; r < cnt; r++) {
        const int64_t src = (idx ? idx[r] : r) * d;
        for (int64_t k = 0; k < d; k++)
            out[r * d + k] = dt == MONGE_F32 ? (double)((const float *)p)[src + k]
                                             : ((const double *)p)[src + k];
    }
}

static int points_finite(const void *p, monge_dtype dt, int64_t cnt)
{
    int ok = 1;
    if (dt == MONGE_F32)
        for (int64_t t = 0; t < cnt; t++) ok &= isfinite(((const float *)p)[t]) != 0;
    else
        for (int64_t t = 0; t < cnt; t++) ok &= isfinite(((const double *)p)[t]) != 0;
    return ok;
}

/* Potentials of the zero-weight rows, then of the zero-weight columns, as c-transforms over the
 * original geometry (costs in float64 whatever its dtype): f_i = min_j C_ij - g_j over the active
 * columns ac[0..m), then g_j = min_i C_ij - f_i over every row. */
static int zero_weight_potentials(const monge_geometry *geom, const char *rowmask,
                                  const char *colmask, int32_t m, const int32_t *ac, double *f,
                                  double *g)
{
    const int64_t n0 = geom->n, m0 = geom->m, d = geom->d;
    monge_geometry fg = *geom;
    monge_geom_work *gw = NULL;
    double *xd = NULL, *yd = NULL;
    double *buf = malloc(sizeof(double) * (size_t)(n0 > m0 ? n0 : m0));
    int st = buf ? MONGE_OK : MONGE_ENOMEM;
    if (!st && !geom->C && geom->dtype != MONGE_F64) {
        xd = malloc(sizeof(double) * (size_t)(n0 * d));
        yd = malloc(sizeof(double) * (size_t)(m0 * d));
        if (!xd || !yd) {
            st = MONGE_ENOMEM;
        } else {
            gather_points(geom->x, geom->dtype, d, NULL, n0, xd);
            gather_points(geom->y, geom->dtype, d, NULL, m0, yd);
            fg.x = xd;
            fg.y = yd;
            fg.dtype = MONGE_F64;
        }
    }
    if (!st) st = monge_geom_prepare(&fg, 1, &gw);
    if (st) goto out;
    for (int64_t i = 0; i < n0; i++) {
        if (rowmask[i]) continue;
        const double *c = monge_geom_cost_row(gw, 0, i, 0, m0, buf);
        double best = INFINITY;
        for (int32_t j = 0; j < m; j++) {
            double v = c[ac[j]] - g[ac[j]];
            best = v < best ? v : best;
        }
        f[i] = best;
    }
    for (int64_t j = 0; j < m0; j++) {
        if (colmask[j]) continue;
        const double *c = monge_geom_cost_row(gw, 1, j, 0, n0, buf);
        double best = INFINITY;
        for (int64_t i = 0; i < n0; i++) {
            double v = c[i] - f[i];
            best = v < best ? v : best;
        }
        g[j] = best;
    }
out:
    monge_geom_release(gw);
    free(xd);
    free(yd);
    free(buf);
    return st;
}

static int check_geometry(const monge_geometry *g)
{
    if (!g || g->n < 1 || g->m < 1) return MONGE_EINVAL;
    if (g->n + g->m >= INT32_MAX) return MONGE_EINVAL;
    if (g->C) {
        if (g->dtype != MONGE_F64) return MONGE_EINVAL;
    } else {
        if (!g->x || !g->y || g->d < 1) return MONGE_EINVAL;
        if (g->cost == MONGE_COST_PNORM && !(g->p >= 1.0)) return MONGE_EINVAL;
        if (g->cost == MONGE_COST_ELASTIC && !(g->lam >= 0.0)) return MONGE_EINVAL;
        if ((int)g->cost < 0 || (int)g->cost > MONGE_COST_ELASTIC) return MONGE_EINVAL;
    }
    return MONGE_OK;
}

/* Stores the final tree of w (on a cancelled or unfinished solve too: it is a feasible basis). */
static int keep_basis(monge_emd_basis *kb, const nws *w, int64_t n0, int64_t m0, const double *wa,
                      const double *wb)
{
    kb->valid = 0;
    if (kb->n0 != n0 || kb->m0 != m0 || !kb->wa) {
        free(kb->wa);
        free(kb->wb);
        kb->wa = malloc(sizeof(double) * (size_t)n0);
        kb->wb = malloc(sizeof(double) * (size_t)m0);
        if (!kb->wa || !kb->wb) return MONGE_ENOMEM;
        kb->n0 = n0;
        kb->m0 = m0;
    }
    if (kb->cap < w->N) {
        int32_t **arrs[4] = {&kb->parent, &kb->thread, &kb->rthread, &kb->depth};
        for (int k = 0; k < 4; k++) {
            free(*arrs[k]);
            *arrs[k] = malloc(sizeof(int32_t) * (size_t)w->N);
            if (!*arrs[k]) {
                kb->cap = 0;
                return MONGE_ENOMEM;
            }
        }
        kb->cap = w->N;
    }
    const size_t N = (size_t)w->N * sizeof(int32_t);
    memcpy(kb->parent, w->parent, N);
    memcpy(kb->thread, w->thread, N);
    memcpy(kb->rthread, w->rthread, N);
    memcpy(kb->depth, w->depth, N);
    memcpy(kb->wa, wa, sizeof(double) * (size_t)n0);
    memcpy(kb->wb, wb, sizeof(double) * (size_t)m0);
    kb->n = w->n;
    kb->m = w->m;
    kb->root = w->root;
    kb->valid = 1;
    return MONGE_OK;
}

int monge_emd(const monge_geometry *geom, const double *a, const double *b,
              const monge_emd_params *par_in, int64_t *rows, int64_t *cols, double *vals,
              double *f, double *g, monge_emd_info *info)
{
    monge_emd_params defaults;
    if (!par_in) {
        monge_emd_params_init(&defaults);
        par_in = &defaults;
    }
    const monge_emd_params *par = par_in;
    int st = check_geometry(geom);
    if (st) return st;
    if (!rows || !cols || !vals || !info) return MONGE_EINVAL;
    if (par->max_iter < 0 || !(par->mass_rtol >= 0.0)) return MONGE_EINVAL;
    const int64_t n0 = geom->n, m0 = geom->m;
    nws w;
    memset(&w, 0, sizeof w);
    double *wa = malloc(sizeof(double) * (size_t)n0), *wb = malloc(sizeof(double) * (size_t)m0);
    int32_t *ar = malloc(sizeof(int32_t) * (size_t)n0), *ac = malloc(sizeof(int32_t) * (size_t)m0);
    char *rowmask = calloc((size_t)n0, 1), *colmask = calloc((size_t)m0, 1);
    double *gfull = NULL, *ffull = NULL;
    if (!wa || !wb || !ar || !ac || !rowmask || !colmask) {
        st = MONGE_ENOMEM;
        goto out;
    }
    double ma, mb;
    if ((st = side_weights(n0, a, wa, &ma)) || (st = side_weights(m0, b, wb, &mb))) goto out;
    if ((st = reconcile(m0, ma, wb, mb, par->mass_rtol))) goto out;
    /* solve with unit mass: flows stay in [0, 1] whatever the weights' scale (masses near the
     * double range would otherwise overflow inside the pivots); plan, cost and dual value are
     * scaled back at the end, the potentials do not depend on the mass */
    for (int64_t i = 0; i < n0; i++) wa[i] /= ma;
    for (int64_t j = 0; j < m0; j++) wb[j] /= ma;
    int32_t n = 0, m = 0;
    for (int64_t i = 0; i < n0; i++)
        if (wa[i] > 0.0) {
            ar[n++] = (int32_t)i;
            rowmask[i] = 1;
        }
    for (int64_t j = 0; j < m0; j++)
        if (wb[j] > 0.0) {
            ac[m++] = (int32_t)j;
            colmask[j] = 1;
        }
    w.n = n;
    w.m = m;
    w.N = n + m;
    const int32_t N = w.N;

    /* the costs of the active problem (in float64 whatever the input dtype: reduced costs are
     * compared to 1e-12), and a bound on them for their scale */
    double cmax = 0.0;
    monge_geometry ag;
    memset(&ag, 0, sizeof ag);
    ag.n = n;
    ag.m = m;
    ag.dtype = MONGE_F64;
    if (geom->C) {
        const double *C = (const double *)geom->C;
        if (n == n0 && m == m0) {
            ag.C = C;
        } else {
            w.Cown = malloc(sizeof(double) * (size_t)n * (size_t)m);
            if (!w.Cown) {
                st = MONGE_ENOMEM;
                goto out;
            }
            for (int32_t i = 0; i < n; i++)
                for (int32_t j = 0; j < m; j++)
                    w.Cown[(int64_t)i * m + j] = C[(int64_t)ar[i] * m0 + ac[j]];
            ag.C = w.Cown;
        }
        for (int32_t i = 0; i < n; i++) {
            const double *row = (const double *)ag.C + (int64_t)i * m;
            double mx = 0.0;
            int bad = 0;
            MONGE_SIMD_MAX(mx)
            for (int32_t j = 0; j < m; j++) {
                double v = fabs(row[j]);
                mx = v > mx ? v : mx;
            }
            for (int32_t j = 0; j < m; j++) bad |= !isfinite(row[j]);
            if (bad) {
                st = MONGE_ENONFINITE;
                goto out;
            }
            if (mx > cmax) cmax = mx;
        }
    } else {
        const int64_t d = geom->d;
        if (!points_finite(geom->x, geom->dtype, n0 * d) ||
            !points_finite(geom->y, geom->dtype, m0 * d)) {
            st = MONGE_ENONFINITE;
            goto out;
        }
        w.d = d;
        ag.d = d;
        ag.cost = geom->cost;
        ag.p = geom->p;
        ag.lam = geom->lam;
        if (n == n0 && m == m0 && geom->dtype == MONGE_F64) {
            ag.x = geom->x;
            ag.y = geom->y;
        } else {
            w.xown = malloc(sizeof(double) * (size_t)n * (size_t)d);
            w.yown = malloc(sizeof(double) * (size_t)m * (size_t)d);
            if (!w.xown || !w.yown) {
                st = MONGE_ENOMEM;
                goto out;
            }
            gather_points(geom->x, geom->dtype, d, ar, n, w.xown);
            gather_points(geom->y, geom->dtype, d, ac, m, w.yown);
            ag.x = w.xown;
            ag.y = w.yown;
        }
    }
    /* (MONGE_EINVAL here: a zero vector under the cosine cost) */
    if ((st = monge_geom_prepare(&ag, 1, &w.geo))) goto out;
    if (!geom->C) {
        /* a bound from the bounding boxes of both clouds */
        if ((st = monge_geom_max_cost(w.geo, &cmax, 1))) goto out;
        if (!isfinite(cmax)) {
            st = MONGE_ENONFINITE;
            goto out;
        }
    }
    w.seg = malloc(sizeof(double) * (size_t)m);
    if (!w.seg) {
        st = MONGE_ENOMEM;
        goto out;
    }
    int ex = 0;
    frexp(cmax > 0.0 ? cmax : 1.0, &ex);
    /* max |C| * scale in [0.5, 1), with the scale itself kept a normal number (subnormal costs
     * such as 5e-324 would otherwise ask for 2^1074, which overflows) */
    ex = ex < -1000 ? -1000 : (ex > 1000 ? 1000 : ex);
    w.scale = ldexp(1.0, -ex);

    /* the tree */
    w.parent = malloc(sizeof(int32_t) * (size_t)N);
    w.thread = malloc(sizeof(int32_t) * (size_t)N);
    w.rthread = malloc(sizeof(int32_t) * (size_t)N);
    w.depth = malloc(sizeof(int32_t) * (size_t)N);
    w.pv = malloc(sizeof(int32_t) * (size_t)N);
    w.lastv = malloc(sizeof(int32_t) * (size_t)N);
    w.prevv = malloc(sizeof(int32_t) * (size_t)N);
    w.nextl = malloc(sizeof(int32_t) * (size_t)N);
    w.flow = calloc((size_t)N, sizeof(double));
    w.pi = calloc((size_t)N, sizeof(double));
    w.sup = malloc(sizeof(double) * (size_t)N);
    w.net = malloc(sizeof(double) * (size_t)N);
    if (!w.parent || !w.thread || !w.rthread || !w.depth || !w.pv || !w.lastv || !w.prevv ||
        !w.nextl || !w.flow || !w.pi || !w.sup || !w.net) {
        st = MONGE_ENOMEM;
        goto out;
    }
    for (int32_t i = 0; i < n; i++) w.sup[i] = wa[ar[i]];
    for (int32_t j = 0; j < m; j++) w.sup[n + j] = wb[ac[j]];

    int use_proj = !geom->C && par->init != 1;
    if (par->init == 2 && geom->C) {
        st = MONGE_EINVAL;
        goto out;
    }
    monge_emd_basis *kb = par->basis;
    const int warm = kb && kb->valid && kb->n0 == n0 && kb->m0 == m0 && kb->n == n && kb->m == m &&
                     !memcmp(kb->wa, wa, sizeof(double) * (size_t)n0) &&
                     !memcmp(kb->wb, wb, sizeof(double) * (size_t)m0);
    int64_t it = 0;
    int sst = simplex(&w, par, use_proj, warm, &it);
    if (sst == MONGE_ENOMEM || sst == MONGE_EINVAL || sst == MONGE_ENONFINITE) {
        st = sst;
        goto out;
    }
    compute_flows(&w);
    compute_potentials(&w);
    if (kb && (st = keep_basis(kb, &w, n0, m0, wa, wb))) goto out;

    /* outputs: the plan, the cost, the potentials */
    int64_t nnz = 0;
    double cost = 0.0, comp = 0.0;
    for (int32_t u = 0; u < N; u++) {
        int32_t p = w.parent[u];
        if (p < 0 || !(w.flow[u] > 0.0)) continue;
        int32_t i = u < n ? u : p, j = u < n ? p - n : u - n;
        rows[nnz] = ar[i];
        cols[nnz] = ac[j];
        vals[nnz] = w.flow[u] * ma;
        double term = w.flow[u] * (arc_cost(&w, i, j) / w.scale) - comp; /* Kahan */
        double tsum = cost + term;
        comp = (tsum - cost) - term;
        cost = tsum;
        nnz++;
    }
    if ((st = sort_triplets(nnz, m0, rows, cols, vals))) goto out;

    ffull = malloc(sizeof(double) * (size_t)n0);
    gfull = malloc(sizeof(double) * (size_t)m0);
    if (!ffull || !gfull) {
        st = MONGE_ENOMEM;
        goto out;
    }
    double sf = 0.0, sg = 0.0;
    for (int32_t i = 0; i < n; i++) {
        ffull[ar[i]] = w.pi[i] / w.scale;
        sf += wa[ar[i]] * ffull[ar[i]];
    }
    for (int32_t j = 0; j < m; j++) {
        gfull[ac[j]] = -w.pi[n + j] / w.scale;
        sg += wb[ac[j]] * gfull[ac[j]];
    }
    /* gauge <a, f> = <b, g> */
    const double shift = (sf - sg) / 2.0; /* unit mass */
    for (int32_t i = 0; i < n; i++) ffull[ar[i]] -= shift;
    for (int32_t j = 0; j < m; j++) gfull[ac[j]] += shift;
    if ((n < n0 || m < m0) &&
        (st = zero_weight_potentials(geom, rowmask, colmask, m, ac, ffull, gfull)))
        goto out;
    double dual = 0.0;
    for (int64_t i = 0; i < n0; i++) dual += wa[i] * ffull[i];
    for (int64_t j = 0; j < m0; j++) dual += wb[j] * gfull[j];
    dual *= ma;
    cost *= ma;
    if (f) memcpy(f, ffull, sizeof(double) * (size_t)n0);
    if (g) memcpy(g, gfull, sizeof(double) * (size_t)m0);
    if (!isfinite(cost) || !isfinite(dual)) { /* finite costs whose total overflows */
        st = MONGE_ENONFINITE;
        goto out;
    }
    info->cost = cost;
    info->dual = dual;
    info->n_iter = it;
    info->nnz = nnz;
    info->mass = ma;
    st = sst;
out:
    nws_free(&w);
    free(wa);
    free(wb);
    free(ar);
    free(ac);
    free(rowmask);
    free(colmask);
    free(ffull);
    free(gfull);
    return st;
}

int monge_emd_batch(int64_t B, const monge_geometry *geoms, const double *a, const double *b,
                    const monge_emd_params *par, int64_t *rows, int64_t *cols, double *vals,
                    double *f, double *g, monge_emd_info *info, int *status)
{
    if (B < 1 || !geoms || !rows || !cols || !vals || !info || !status) return MONGE_EINVAL;
    monge_emd_params local;
    if (par)
        local = *par;
    else
        monge_emd_params_init(&local);
    local.basis = NULL; /* one basis cannot serve parallel solves */
    par = &local;
    const int64_t n = geoms[0].n, m = geoms[0].m, cap = n + m - 1;
    for (int64_t k = 0; k < B; k++)
        if (geoms[k].n != n || geoms[k].m != m) return MONGE_EINVAL;
    const int nt = monge_resolve_threads(par->nthreads);
    (void)nt;
    MONGE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(nt) if (B > 1))
    for (int64_t k = 0; k < B; k++) {
        status[k] = monge_emd(&geoms[k], a ? a + k * n : NULL, b ? b + k * m : NULL, par,
                              rows + k * cap, cols + k * cap, vals + k * cap, f ? f + k * n : NULL,
                              g ? g + k * m : NULL, &info[k]);
    }
    return monge_batch_status(B, status);
}

/* ------------------------------------------------------------------ 1-D */

static inline double pow_abs(double z, double p)
{
    z = fabs(z);
    if (p == 1.0) return z;
    if (p == 2.0) return z * z;
    return pow(z, p);
}

/* derivative of |z|^p (0 at z = 0) */
static inline double dpow_abs(double z, double p)
{
    if (z == 0.0) return 0.0;
    double s = z > 0.0 ? 1.0 : -1.0;
    if (p == 1.0) return s;
    if (p == 2.0) return 2.0 * z;
    return s * p * pow(fabs(z), p - 1.0);
}

/* Walk of the two sorted samples: calls emit(i, j, mass) for each piece of the monotone plan. */
typedef struct {
    int64_t *rows, *cols;
    double *vals;
    int64_t nnz;
    double cost, p;
    const double *x, *y;
    double *gx; /* per point of x: sum_j P_ij d|x_i - y_j|^p / dx_i, or NULL */
} walk_out;

static void walk(int64_t n, int64_t m, const int64_t *ix, const int64_t *iy, const double *wa,
                 const double *wb, walk_out *o)
{
    int64_t i = 0, j = 0;
    while (i < n && wa[ix[i]] <= 0.0) i++;
    while (j < m && wb[iy[j]] <= 0.0) j++;
    if (i == n || j == m) return;
    double ra = wa[ix[i]], rb = wb[iy[j]];
    double cost = 0.0, comp = 0.0;
    for (;;) {
        const int64_t r = ix[i], c = iy[j];
        const double mass = ra <= rb ? ra : rb;
        if (mass > 0.0) {
            const double z = o->x[r] - o->y[c];
            double term = mass * pow_abs(z, o->p) - comp;
            double t = cost + term;
            comp = (t - cost) - term;
            cost = t;
            if (o->gx) o->gx[r] += mass * dpow_abs(z, o->p);
            if (o->rows) {
                o->rows[o->nnz] = r;
                o->cols[o->nnz] = c;
                o->vals[o->nnz] = mass;
            }
            o->nnz++;
        }
        if (ra <= rb) {
            rb -= ra;
            do i++;
            while (i < n && wa[ix[i]] <= 0.0);
            if (i == n) break;
            ra = wa[ix[i]];
        } else {
            ra -= rb;
            do j++;
            while (j < m && wb[iy[j]] <= 0.0);
            if (j == m) break;
            rb = wb[iy[j]];
        }
    }
    o->cost = cost;
}

int monge_emd_1d(int64_t n, int64_t m, const double *x, const double *y, const double *a,
                 const double *b, double p, double mass_rtol, int64_t *rows, int64_t *cols,
                 double *vals, int64_t *nnz, double *cost)
{
    if (n < 1 || m < 1 || !x || !y || !(p >= 1.0) || !isfinite(p) || !(mass_rtol >= 0.0) ||
        !cost || ((rows || cols || vals) && !(rows && cols && vals && nnz)))
        return MONGE_EINVAL;
    const int64_t len = n > m ? n : m;
    double *wa = malloc(sizeof(double) * (size_t)n), *wb = malloc(sizeof(double) * (size_t)m);
    int64_t *ix = malloc(sizeof(int64_t) * (size_t)n), *iy = malloc(sizeof(int64_t) * (size_t)m);
    int64_t *ti = malloc(sizeof(int64_t) * (size_t)len);
    uint64_t *ku = malloc(sizeof(uint64_t) * (size_t)len), *tu = malloc(sizeof(uint64_t) * (size_t)len);
    int st = MONGE_OK;
    if (!wa || !wb || !ix || !iy || !ti || !ku || !tu) {
        st = MONGE_ENOMEM;
        goto out;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i])) st = MONGE_ENONFINITE;
    for (int64_t j = 0; j < m; j++)
        if (!isfinite(y[j])) st = MONGE_ENONFINITE;
    if (st) goto out;
    double ma, mb;
    if ((st = side_weights(n, a, wa, &ma)) || (st = side_weights(m, b, wb, &mb))) goto out;
    if ((st = reconcile(m, ma, wb, mb, mass_rtol))) goto out;
    argsort(n, x, ix, ku, tu, ti);
    argsort(m, y, iy, ku, tu, ti);
    walk_out o = {rows, cols, vals, 0, 0.0, p, x, y, NULL};
    walk(n, m, ix, iy, wa, wb, &o);
    if (!isfinite(o.cost)) { /* finite inputs whose |x - y|^p overflows the double range */
        st = MONGE_ENONFINITE;
        goto out;
    }
    if (rows && (st = sort_triplets(o.nnz, m, rows, cols, vals))) goto out;
    if (nnz) *nnz = o.nnz;
    *cost = o.cost;
out:
    free(wa);
    free(wb);
    free(ix);
    free(iy);
    free(ti);
    free(ku);
    free(tu);
    return st;
}

/* ------------------------------------------------------------------ sliced */

#define SLICED_CHUNK 64 /* directions per thread whose gradients are buffered before reduction */

int monge_sliced(int64_t n, int64_t m, int64_t d, const double *x, const double *y,
                 const double *a, const double *b, int64_t P, const double *theta, double p,
                 double mass_rtol, double *w, double *grad, int nthreads)
{
    if (n < 1 || m < 1 || d < 1 || P < 1 || !x || !y || !theta || !w || !(p >= 1.0) ||
        !isfinite(p) || !(mass_rtol >= 0.0))
        return MONGE_EINVAL;
    const int nt = monge_resolve_threads(nthreads);
    const int64_t len = n > m ? n : m;
    const int64_t chunk = (int64_t)SLICED_CHUNK * nt;
    double *wa = malloc(sizeof(double) * (size_t)n), *wb = malloc(sizeof(double) * (size_t)m);
    /* per thread: projections (n + m), orders (n + m), sort work (3 len) */
    const size_t per = (size_t)(n + m) * (sizeof(double) + sizeof(int64_t)) +
                       (size_t)len * (2 * sizeof(uint64_t) + sizeof(int64_t));
    char *tw = malloc(per * (size_t)nt);
    double *gbuf = grad ? malloc(sizeof(double) * (size_t)(chunk < P ? chunk : P) * (size_t)n) : NULL;
    int st = MONGE_OK;
    if (!wa || !wb || !tw || (grad && !gbuf)) {
        st = MONGE_ENOMEM;
        goto out;
    }
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(x[i])) st = MONGE_ENONFINITE;
    for (int64_t i = 0; i < m * d; i++)
        if (!isfinite(y[i])) st = MONGE_ENONFINITE;
    for (int64_t i = 0; i < P * d; i++)
        if (!isfinite(theta[i])) st = MONGE_EINVAL;
    if (st) goto out;
    double ma, mb;
    if ((st = side_weights(n, a, wa, &ma)) || (st = side_weights(m, b, wb, &mb))) goto out;
    if ((st = reconcile(m, ma, wb, mb, mass_rtol))) goto out;
    if (grad) memset(grad, 0, sizeof(double) * (size_t)(n * d));
    int overflow = 0; /* a projected cost overflowed (finite but huge points or directions) */
    for (int64_t l0 = 0; l0 < P; l0 += chunk) {
        const int64_t l1 = l0 + chunk < P ? l0 + chunk : P;
        MONGE_PRAGMA(omp parallel num_threads(nt) if (l1 - l0 > 1))
        {
#ifdef _OPENMP
            const int tid = omp_get_thread_num();
#else
            const int tid = 0;
#endif
            char *base = tw + per * (size_t)tid;
            double *px = (double *)base, *py = px + n;
            int64_t *ix = (int64_t *)(py + m), *iy = ix + n;
            uint64_t *ku = (uint64_t *)(iy + m), *tu = ku + len;
            int64_t *ti = (int64_t *)(tu + len);
            MONGE_PRAGMA(omp for schedule(static))
            for (int64_t l = l0; l < l1; l++) {
                const double *th = theta + l * d;
                for (int64_t i = 0; i < n; i++) {
                    double s = 0.0;
                    for (int64_t k = 0; k < d; k++) s += x[i * d + k] * th[k];
                    px[i] = s;
                }
                for (int64_t j = 0; j < m; j++) {
                    double s = 0.0;
                    for (int64_t k = 0; k < d; k++) s += y[j * d + k] * th[k];
                    py[j] = s;
                }
                argsort(n, px, ix, ku, tu, ti);
                argsort(m, py, iy, ku, tu, ti);
                double *gx = grad ? gbuf + (l - l0) * n : NULL;
                if (gx) memset(gx, 0, sizeof(double) * (size_t)n);
                walk_out o = {NULL, NULL, NULL, 0, 0.0, p, px, py, gx};
                walk(n, m, ix, iy, wa, wb, &o);
                w[l] = o.cost;
                if (!isfinite(o.cost)) overflow = 1;
            }
        }
        if (overflow) {
            st = MONGE_ENONFINITE;
            goto out;
        }
        if (grad) {
            const double inv = 1.0 / (double)P;
            MONGE_PRAGMA(omp parallel for schedule(static) num_threads(nt) if (n * d * (l1 - l0) > 65536))
            for (int64_t i = 0; i < n; i++)
                for (int64_t l = l0; l < l1; l++) {
                    const double c = gbuf[(l - l0) * n + i] * inv;
                    if (c == 0.0) continue;
                    for (int64_t k = 0; k < d; k++) grad[i * d + k] += c * theta[l * d + k];
                }
        }
    }
out:
    free(wa);
    free(wb);
    free(tw);
    free(gbuf);
    return st;
}
