#include "model/lora.h"

#include "core/strutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const k_names[LT_MOD_COUNT] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                  "gate_proj", "up_proj", "down_proj"};

const char *lt_module_name(lt_module m) {
    return (unsigned)m < LT_MOD_COUNT ? k_names[m] : "invalid";
}

const char *lt_module_block(lt_module m) { return m <= LT_MOD_O ? "self_attn" : "mlp"; }

void lt_module_shape(const lt_model_config *c, lt_module m, int *out, int *in) {
    int kv = lt_kv_dim(c);
    switch (m) {
    case LT_MOD_Q: *out = c->dim; *in = c->dim; break;
    case LT_MOD_K:
    case LT_MOD_V: *out = kv; *in = c->dim; break;
    case LT_MOD_O: *out = c->dim; *in = c->dim; break;
    case LT_MOD_GATE:
    case LT_MOD_UP: *out = c->hidden_dim; *in = c->dim; break;
    case LT_MOD_DOWN: *out = c->dim; *in = c->hidden_dim; break;
    default: *out = 0; *in = 0; break;
    }
}

/* Names people bring from other codebases, mapped to PEFT's. */
static const struct {
    const char *alias, *peft;
} k_aliases[] = {{"wq", "q_proj"},       {"wk", "k_proj"},        {"wv", "v_proj"},
                 {"wo", "o_proj"},       {"w1", "gate_proj"},     {"w3", "up_proj"},
                 {"w2", "down_proj"},    {"query", "q_proj"},     {"key", "k_proj"},
                 {"value", "v_proj"},    {"dense", "o_proj"},     {"gate", "gate_proj"},
                 {"up", "up_proj"},      {"down", "down_proj"},
                 {"all_linear", "all-linear"}, {"all", "all-linear"}};

static const char *suggest(const char *name) {
    for (size_t i = 0; i < sizeof k_aliases / sizeof k_aliases[0]; i++)
        if (strcmp(name, k_aliases[i].alias) == 0) return k_aliases[i].peft;
    const char *const all[] = {"q_proj",    "k_proj",  "v_proj",    "o_proj",
                               "gate_proj", "up_proj", "down_proj", "all-linear"};
    const char *best = lt_closest(name, all, sizeof all / sizeof all[0]);
    return best ? best : "q_proj";
}

lt_status lt_lora_parse_targets(const char *list, unsigned *mask, lt_error *err) {
    *mask = 0;
    if (!list) return lt_fail(err, LT_ERR_CONFIG, "target_modules: missing, expected a list of module names");
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ') e++;
        char name[64];
        size_t n = (size_t)(e - p);
        if (n >= sizeof name)
            return lt_fail(err, LT_ERR_CONFIG, "target_modules: name \"%.*s...\" is too long",
                           20, p);
        memcpy(name, p, n);
        name[n] = '\0';
        int found = 0;
        if (strcmp(name, "all-linear") == 0) {
            *mask |= LT_MOD_MASK_ALL;
            found = 1;
        }
        for (int m = 0; m < LT_MOD_COUNT && !found; m++)
            if (strcmp(name, k_names[m]) == 0) {
                *mask |= 1u << m;
                found = 1;
            }
        if (!found)
            return lt_fail(err, LT_ERR_CONFIG,
                           "target_modules: unknown module \"%s\" (did you mean \"%s\"?); expected "
                           "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj or all-linear",
                           name, suggest(name));
        p = e;
    }
    if (*mask == 0)
        return lt_fail(err, LT_ERR_CONFIG, "target_modules: empty, expected at least one module name");
    return LT_OK;
}

void lt_lora_format_targets(unsigned mask, char *buf, int cap) {
    int used = 0;
    buf[0] = '\0';
    for (int m = 0; m < LT_MOD_COUNT; m++) {
        if (!(mask & (1u << m))) continue;
        int w = snprintf(buf + used, (size_t)(cap - used), "%s%s", used ? "," : "", k_names[m]);
        if (w < 0 || used + w >= cap) return;
        used += w;
    }
}

lt_status lt_lora_config_validate(const lt_lora_config *lc, const lt_model_config *mc,
                                  lt_error *err) {
    if (lc->r < 1)
        return lt_fail(err, LT_ERR_CONFIG, "r = %d: the LoRA rank must be at least 1", lc->r);
    if (!(lc->alpha > 0.0f) || !isfinite(lc->alpha))
        return lt_fail(err, LT_ERR_CONFIG, "lora_alpha = %g: expected a positive number",
                       (double)lc->alpha);
    if (!(lc->dropout >= 0.0f && lc->dropout < 1.0f))
        return lt_fail(err, LT_ERR_CONFIG, "lora_dropout = %g: expected 0 <= p < 1",
                       (double)lc->dropout);
    if ((lc->targets & LT_MOD_MASK_ALL) == 0 || (lc->targets & ~LT_MOD_MASK_ALL))
        return lt_fail(err, LT_ERR_CONFIG, "target_modules: no valid module selected");
    for (int m = 0; m < LT_MOD_COUNT; m++) {
        if (!(lc->targets & (1u << m))) continue;
        int out, in;
        lt_module_shape(mc, (lt_module)m, &out, &in);
        int lim = out < in ? out : in;
        if (lc->r > lim)
            return lt_fail(err, LT_ERR_CONFIG,
                           "r = %d is larger than min(in, out) = %d of %s [%d x %d]; expected r <= %d",
                           lc->r, lim, k_names[m], out, in, lim);
    }
    return LT_OK;
}

float lt_lora_scale(const lt_lora_config *lc) {
    return lc->use_rslora ? lc->alpha / sqrtf((float)lc->r) : lc->alpha / (float)lc->r;
}

lt_lora_config lt_lora_defaults(void) {
    lt_lora_config c = {8, 8.0f, 0.0f, 0, (1u << LT_MOD_Q) | (1u << LT_MOD_V)};
    return c;
}
