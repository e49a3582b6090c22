/* The engine's heuristic constants, readable and settable at run time so that
 * benchmarks/sinkhorn_suite.py can re-judge each on generated problems without a rebuild.  Not a
 * user option: changing one while a solve runs is a data race.  Why each default:
 * docs/design/sinkhorn.md (and the suite's held-out results in docs/performance.md). */
#include "engine.h"

#include <stddef.h>
#include <string.h>

sk_tuning sk_tune = {
    .aa_damp_after = 40,
    .aa_damp = 3e-4,
    .aa_restart = 1e3,
    .aa_stall = MONGE_SINKHORN_ANDERSON_STALL,
    .aa_stall_near = 10,
    .relax_first = 5,
    .relax_window = 20,
    .auto_probe = 100,
    .auto_budget = 2000,
    .auto_late = 800,
    .ker_stall = 40,
    .auto_anneal = MONGE_SINKHORN_AUTO_ANNEAL,
    .ms_gal_max = 67108864, /* 2^26 floats: 256 MiB */
};

static const struct {
    const char *name;
    size_t offset;
    int integer; /* a count of iterations: a whole number >= 1 */
} fields[] = {
    {"aa_damp_after", offsetof(sk_tuning, aa_damp_after), 1},
    {"aa_damp", offsetof(sk_tuning, aa_damp), 0},
    {"aa_restart", offsetof(sk_tuning, aa_restart), 0},
    {"aa_stall", offsetof(sk_tuning, aa_stall), 1},
    {"aa_stall_near", offsetof(sk_tuning, aa_stall_near), 0},
    {"relax_first", offsetof(sk_tuning, relax_first), 1},
    {"relax_window", offsetof(sk_tuning, relax_window), 1},
    {"auto_probe", offsetof(sk_tuning, auto_probe), 1},
    {"auto_budget", offsetof(sk_tuning, auto_budget), 1},
    {"auto_late", offsetof(sk_tuning, auto_late), 1},
    {"ker_stall", offsetof(sk_tuning, ker_stall), 1},
    {"auto_anneal", offsetof(sk_tuning, auto_anneal), 0},
    {"ms_gal_max", offsetof(sk_tuning, ms_gal_max), 1},
};

const char *monge_sinkhorn_tuning_name(int i)
{
    return i >= 0 && i < (int)(sizeof fields / sizeof fields[0]) ? fields[i].name : NULL;
}

int monge_sinkhorn_tuning(const char *name, const double *value, double *previous)
{
    if (!name) return MONGE_EINVAL;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(name, fields[i].name) != 0) continue;
        double *p = (double *)((char *)&sk_tune + fields[i].offset);
        if (previous) *previous = *p;
        if (!value) return MONGE_OK;
        const double v = *value;
        if (!(v > 0) || !isfinite(v)) return MONGE_EINVAL;
        if (fields[i].integer && (v != floor(v) || v > 1e9)) return MONGE_EINVAL;
        *p = v;
        return MONGE_OK;
    }
    return MONGE_EINVAL;
}
