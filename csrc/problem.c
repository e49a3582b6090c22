#include "problem.h"

#include <math.h>

static int check_weights(const double *w, int64_t len, double *mass)
{
    double s = 0;
    if (!w) {
        *mass = 1.0;
        return MONGE_OK;
    }
    for (int64_t i = 0; i < len; i++) {
        if (!(w[i] >= 0) || !isfinite(w[i])) return MONGE_EINVAL;
        s += w[i];
    }
    if (!(s > 0) || !isfinite(s)) return MONGE_EINVAL;
    *mass = s;
    return MONGE_OK;
}

int monge_problem_check(const monge_problem *pb, double mass_rtol)
{
    if (!pb || !pb->geom || pb->geom->n < 1 || pb->geom->m < 1) return MONGE_EINVAL;
    if (!(pb->tau_a > 0) || !(pb->tau_b > 0)) return MONGE_EINVAL; /* also rejects NaN */
    double ma, mb;
    if (check_weights(pb->a, pb->geom->n, &ma) || check_weights(pb->b, pb->geom->m, &mb))
        return MONGE_EINVAL;
    if (isinf(pb->tau_a) && isinf(pb->tau_b)) {
        double big = ma > mb ? ma : mb;
        if (fabs(ma - mb) > mass_rtol * big) return MONGE_EINVAL;
    }
    return MONGE_OK;
}

double monge_problem_weights(const monge_problem *pb, int side, double *out)
{
    const int64_t len = side ? pb->geom->m : pb->geom->n;
    const double *w = side ? pb->b : pb->a;
    double s = 0;
    for (int64_t i = 0; i < len; i++) {
        out[i] = w ? w[i] : 1.0 / (double)len;
        s += out[i];
    }
    return s;
}

void monge_problem_shift(const monge_problem *pb, int side, double eps, const double *pot,
                         double *out)
{
    const int64_t len = side ? pb->geom->m : pb->geom->n;
    const double *w = side ? pb->b : pb->a;
    for (int64_t i = 0; i < len; i++) {
        const double wi = w ? w[i] : 1.0 / (double)len;
        out[i] = pot[i] + eps * (wi > 0 ? log(wi) : -INFINITY);
    }
}
