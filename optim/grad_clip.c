#include "optim/grad_clip.h"

#include <math.h>

#include "core/optim_math.h"

double lt_grad_sumsq(const float *g, size_t n) { return lt_sumsq(g, n); }

double lt_grad_norm(const float *g, size_t n) { return sqrt(lt_grad_sumsq(g, n)); }

float lt_clip_grad_norm(float *g, size_t n, float max_norm) {
    return lt_clip_grad_norm_total(g, n, lt_grad_norm(g, n), max_norm);
}

int lt_clip_grad_coef(double total, float max_norm, float *coef) {
    if (!isfinite(total) || !(max_norm > 0.0f)) return 0;
    const double c = (double)max_norm / (total + 1e-6);
    if (!(c < 1.0)) return 0;
    *coef = (float)c;
    return 1;
}

float lt_clip_grad_norm_total(float *g, size_t n, double total, float max_norm) {
    float c;
    if (lt_clip_grad_coef(total, max_norm, &c)) lt_scale(g, n, c);
    return (float)total;
}
