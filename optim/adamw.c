#include "optim/adamw.h"

#include <math.h>
#include <string.h>

#include "core/alloc.h"

lt_adamw_config lt_adamw_default_config(void) {
    lt_adamw_config c = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    return c;
}

lt_status lt_adamw_config_validate(const lt_adamw_config *cfg, lt_error *err) {
    if (!cfg) return lt_fail(err, LT_ERR_INVALID, "AdamW: config is NULL");
    /* `!(x >= 0)` rather than `x < 0` so NaN is rejected too. */
    if (!(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f))
        return lt_fail(err, LT_ERR_CONFIG, "AdamW: adam_beta1 = %g, expected 0 <= adam_beta1 < 1",
                       (double)cfg->beta1);
    if (!(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f))
        return lt_fail(err, LT_ERR_CONFIG, "AdamW: adam_beta2 = %g, expected 0 <= adam_beta2 < 1",
                       (double)cfg->beta2);
    if (!(cfg->eps > 0.0f) || !isfinite(cfg->eps))
        return lt_fail(err, LT_ERR_CONFIG,
                       "AdamW: adam_epsilon = %g, expected a finite number > 0", (double)cfg->eps);
    if (!(cfg->weight_decay >= 0.0f) || !isfinite(cfg->weight_decay))
        return lt_fail(err, LT_ERR_CONFIG,
                       "AdamW: weight_decay = %g, expected a finite number >= 0",
                       (double)cfg->weight_decay);
    return LT_OK;
}

lt_status lt_adamw_init(lt_adamw *opt, size_t n, const lt_adamw_config *cfg, lt_error *err) {
    if (!opt) return lt_fail(err, LT_ERR_INVALID, "AdamW: optimizer is NULL");
    memset(opt, 0, sizeof *opt);
    lt_adamw_config c = cfg ? *cfg : lt_adamw_default_config();
    lt_status st = lt_adamw_config_validate(&c, err);
    if (st != LT_OK) return st;
    if (n == 0)
        return lt_fail(err, LT_ERR_INVALID, "AdamW: n = 0 parameters, expected at least 1");
    if (n > SIZE_MAX / sizeof(float))
        return lt_fail(err, LT_ERR_INVALID, "AdamW: n = %zu parameters overflows the moment size",
                       n);
    opt->m = lt_alloc(LT_MEM_OPTIM_STATE, n * sizeof(float));
    opt->v = lt_alloc(LT_MEM_OPTIM_STATE, n * sizeof(float));
    if (!opt->m || !opt->v) {
        lt_adamw_free(opt);
        return lt_fail(err, LT_ERR_NOMEM, "AdamW: cannot allocate 2 x %zu bytes of moments",
                       n * sizeof(float));
    }
    opt->n = n;
    opt->cfg = c;
    return LT_OK;
}

void lt_adamw_free(lt_adamw *opt) {
    if (!opt) return;
    lt_free(opt->m);
    lt_free(opt->v);
    memset(opt, 0, sizeof *opt);
}

void lt_adamw_step(lt_adamw *opt, float *params, const float *grads, float lr) {
    opt->step += 1;
    const lt_adamw_config *c = &opt->cfg;
    /* The scalars are formed the way torch forms them: Python doubles from
     * the float hyperparameters, rounded to float where they meet a float
     * tensor. pow on a double step is what `beta ** step.item()` calls. */
    const double t = (double)opt->step;
    const double bc1 = 1.0 - pow((double)c->beta1, t);
    const double bc2 = 1.0 - pow((double)c->beta2, t);
    const float decay = (float)(1.0 - (double)lr * (double)c->weight_decay);
    const float b1 = c->beta1, b2 = c->beta2, eps = c->eps;
    const float omb1 = (float)(1.0 - (double)c->beta1);
    const float omb2 = (float)(1.0 - (double)c->beta2);
    const float neg_step = (float)(-(double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);

    float *restrict p = params;
    const float *restrict g = grads;
    float *restrict m = opt->m;
    float *restrict v = opt->v;
    const size_t n = opt->n;
    /* Operands in torch's order (mul_, add_(alpha), addcmul_, sqrt / bc2,
     * + eps, addcdiv_) so the rounding differs only where FMA contraction
     * fuses a pair. */
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = m[i] * b1 + omb1 * gi;
        const float vi = v[i] * b2 + omb2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] * decay + neg_step * mi / denom;
    }
}
