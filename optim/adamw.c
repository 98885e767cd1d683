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

static void *host_alloc(const void *ctx, lt_mem_category cat, size_t bytes) {
    (void)ctx;
    return lt_alloc(cat, bytes);
}

static void host_free(const void *ctx, void *p) {
    (void)ctx;
    lt_free(p);
}

lt_status lt_adamw_init(lt_adamw *opt, size_t n, const lt_adamw_config *cfg, lt_error *err) {
    return lt_adamw_init_in(opt, n, cfg, NULL, err);
}

lt_status lt_adamw_init_in(lt_adamw *opt, size_t n, const lt_adamw_config *cfg,
                           const lt_adamw_memory *mem, lt_error *err) {
    if (!opt) return lt_fail(err, LT_ERR_INVALID, "AdamW: optimizer is NULL");
    memset(opt, 0, sizeof *opt);
    opt->mem = mem && mem->alloc ? *mem : (lt_adamw_memory){host_alloc, host_free, NULL};
    lt_adamw_config c = cfg ? *cfg : lt_adamw_default_config();
    lt_status st = lt_adamw_config_validate(&c, err);
    if (st != LT_OK) return st;
    if (n == 0)
        return lt_fail(err, LT_ERR_INVALID, "AdamW: n = 0 parameters, expected at least 1");
    if (n > SIZE_MAX / sizeof(float))
        return lt_fail(err, LT_ERR_INVALID, "AdamW: n = %zu parameters overflows the moment size",
                       n);
    opt->m = opt->mem.alloc(opt->mem.ctx, LT_MEM_OPTIM_STATE, n * sizeof(float));
    opt->v = opt->mem.alloc(opt->mem.ctx, LT_MEM_OPTIM_STATE, n * sizeof(float));
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
    if (opt->mem.free) {
        if (opt->m) opt->mem.free(opt->mem.ctx, opt->m);
        if (opt->v) opt->mem.free(opt->mem.ctx, opt->v);
    }
    memset(opt, 0, sizeof *opt);
}

lt_adamw_scalars lt_adamw_scalars_at(const lt_adamw_config *c, int64_t step, float lr) {
    /* The scalars are formed the way torch forms them: Python doubles from
     * the float hyperparameters, rounded to float where they meet a float
     * tensor. pow on a double step is what `beta ** step.item()` calls. */
    const double t = (double)step;
    const double bc1 = 1.0 - pow((double)c->beta1, t);
    const double bc2 = 1.0 - pow((double)c->beta2, t);
    lt_adamw_scalars s = {
        .beta1 = c->beta1,
        .beta2 = c->beta2,
        .one_minus_beta1 = (float)(1.0 - (double)c->beta1),
        .one_minus_beta2 = (float)(1.0 - (double)c->beta2),
        .eps = c->eps,
        .decay = (float)(1.0 - (double)lr * (double)c->weight_decay),
        .neg_step = (float)(-(double)lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
    };
    return s;
}

lt_adamw_scalars lt_adamw_next(lt_adamw *opt, float lr) {
    opt->step += 1;
    return lt_adamw_scalars_at(&opt->cfg, opt->step, lr);
}

void lt_adamw_step(lt_adamw *opt, float *params, const float *grads, float lr) {
    const lt_adamw_scalars s = lt_adamw_next(opt, lr);
    lt_adamw_apply(params, grads, opt->m, opt->v, opt->n, &s);
}
