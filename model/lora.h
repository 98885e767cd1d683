/* LoRA configuration with Hugging Face PEFT semantics and names, so adapters
 * move between loratrain and PEFT without conversion:
 *   y = x W^T + s * dropout(x) A^T B^T,  A [r, in], B [out, r],
 *   s = lora_alpha / r   (use_rslora: lora_alpha / sqrt(r)). */
#ifndef LT_MODEL_LORA_H
#define LT_MODEL_LORA_H

#include "core/status.h"
#include "model/config.h"

typedef enum {
    LT_MOD_Q = 0,
    LT_MOD_K,
    LT_MOD_V,
    LT_MOD_O,
    LT_MOD_GATE,
    LT_MOD_UP,
    LT_MOD_DOWN,
    LT_MOD_COUNT
} lt_module;

#define LT_MOD_MASK_ALL ((1u << LT_MOD_COUNT) - 1u)

typedef struct {
    int r;
    float alpha;
    float dropout;     /* probability of zeroing an adapter input element */
    int use_rslora;
    unsigned targets;  /* bit (1 << lt_module) per targeted module */
} lt_lora_config;

/* PEFT's module name ("q_proj") and its parent block ("self_attn", "mlp"). */
const char *lt_module_name(lt_module m);
const char *lt_module_block(lt_module m);

/* Weight shape [out, in] of module m in a model of config c. */
void lt_module_shape(const lt_model_config *c, lt_module m, int *out, int *in);

/* Parses a comma-separated target_modules list of PEFT names, or
 * "all-linear" (every decoder linear, never the classifier). An unknown
 * name is an error that suggests the closest valid one. */
lt_status lt_lora_parse_targets(const char *list, unsigned *mask, lt_error *err);

/* Formats mask as PEFT names separated by commas. */
void lt_lora_format_targets(unsigned mask, char *buf, int cap);

lt_status lt_lora_config_validate(const lt_lora_config *lc, const lt_model_config *mc,
                                  lt_error *err);

float lt_lora_scale(const lt_lora_config *lc);

/* The defaults PEFT's LoraConfig uses (r 8, alpha 8, dropout 0) on q,v. */
lt_lora_config lt_lora_defaults(void);

#endif
