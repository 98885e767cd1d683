/* Choosing the next token from host logits: greedy, or temperature with
 * nucleus (top-p) sampling driven by the counter-based generator. */
#ifndef LT_MODEL_SAMPLE_H
#define LT_MODEL_SAMPLE_H

#include "core/rng.h"

typedef struct {
    float p;
    int index;
} lt_prob_index;

/* Index of the largest logit (the first one on ties). */
int lt_sample_argmax(const float *logits, int n);

/* temperature 0 means greedy; top_p outside (0, 1) means no nucleus cut.
 * scratch must hold n entries; logits are not modified. */
int lt_sample(const float *logits, int n, float temperature, float top_p, lt_rng *rng,
              lt_prob_index *scratch);

#endif
