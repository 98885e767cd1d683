#include "optim/grad_clip.h"

#include <math.h>

double lt_grad_sumsq(const float *g, size_t n) {
    /* Eight independent partial sums: the order is fixed (deterministic),
     * the additions pipeline, and each lane maps onto a vector lane. A
     * float times a float is exact in double, so only the sums round. */
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            double x = (double)g[i + (size_t)k];
            acc[k] += x * x;
        }
    for (int k = 0; i < n; i++, k++) {
        double x = (double)g[i];
        acc[k] += x * x;
    }
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

double lt_grad_norm(const float *g, size_t n) { return sqrt(lt_grad_sumsq(g, n)); }

float lt_clip_grad_norm(float *g, size_t n, float max_norm) {
    return lt_clip_grad_norm_total(g, n, lt_grad_norm(g, n), max_norm);
}

float lt_clip_grad_norm_total(float *g, size_t n, double total, float max_norm) {
    if (!isfinite(total) || !(max_norm > 0.0f)) return (float)total;
    const double coef = (double)max_norm / (total + 1e-6);
    if (coef < 1.0) {
        const float c = (float)coef;
        for (size_t i = 0; i < n; i++) g[i] *= c;
    }
    return (float)total;
}
