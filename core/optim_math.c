/* The optimizer's host loops (core/optim_math.h). Built with
 * -ffp-contract=off (torch's roundings, no fused multiply-add) and
 * -fno-math-errno (an errno-free sqrtf lets the AdamW loop vectorise);
 * CMakeLists.txt sets both for this file. */
#include "core/optim_math.h"

void lt_adamw_apply(float *params, const float *grads, float *m, float *v, size_t n,
                    const lt_adamw_scalars *s) {
    const lt_adamw_scalars sc = *s; /* a local copy: no store below can alias it */
    float *restrict p = params;
    const float *restrict g = grads;
    float *restrict mm = m;
    float *restrict vv = v;
    for (size_t i = 0; i < n; i++) lt_adamw_update(&sc, g[i], &p[i], &mm[i], &vv[i]);
}

double lt_sumsq(const float *x, size_t n) {
    /* Eight independent partial sums: the order is fixed (deterministic),
     * the additions pipeline, and each lane maps onto a vector lane. A
     * float times a float is exact in double, so only the sums round. */
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            double y = (double)x[i + (size_t)k];
            acc[k] += y * y;
        }
    for (int k = 0; i < n; i++, k++) {
        double y = (double)x[i];
        acc[k] += y * y;
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void lt_scale(float *x, size_t n, float c) {
    for (size_t i = 0; i < n; i++) x[i] *= c;
}
