#include "model/sample.h"

#include <math.h>
#include <stdlib.h>

int lt_sample_argmax(const float *logits, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b) {
    const lt_prob_index *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->index - y->index;
}

int lt_sample(const float *logits, int n, float temperature, float top_p, lt_rng *rng,
              lt_prob_index *s) {
    if (temperature <= 0.0f) return lt_sample_argmax(logits, n);
    float mx = logits[lt_sample_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        s[i].p = expf((logits[i] - mx) / temperature);
        s[i].index = i;
        sum += s[i].p;
    }
    int keep = n;
    double mass = sum;
    if (top_p > 0.0f && top_p < 1.0f) {
        /* Nucleus: the smallest set of most likely tokens whose mass reaches top_p. */
        qsort(s, (size_t)n, sizeof *s, by_prob_desc);
        mass = 0.0;
        keep = 0;
        while (keep < n) {
            mass += s[keep++].p;
            if (mass >= top_p * sum) break;
        }
    }
    double target = lt_rng_next_uniform(rng) * mass, cdf = 0.0;
    for (int k = 0; k < keep; k++) {
        cdf += s[k].p;
        if (target < cdf) return s[k].index;
    }
    return s[keep - 1].index;
}
