/* The bundled model, greedy from BOS for 256 tokens, must reproduce the
 * independent oracle ids shipped with it (models/stories260K/SOURCE.md),
 * on the backend LT_TEST_DEVICE names (tests/lib/backend_env.h).
 *
 * "one-pass" checks the same thing in one forward: the oracle's ids after
 * BOS as the prompt, every position's argmax against the next oracle id
 * (a causal model's logits at t see only ids 0..t, so this equals greedy
 * decoding teacher-forced on the oracle, as the step loop does). The
 * emulated CUDA takes it: 256 growing prefixes cost it minutes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model/llama2c.h"
#include "model/sample.h"
#include "tests/lib/backend_env.h"
#include "tests/lib/check.h"

int main(int argc, char **argv) {
    const int one_pass = argc == 4 && !strcmp(argv[3], "one-pass");
    if (argc != 3 && !one_pass) {
        fprintf(stderr, "usage: %s MODEL EXPECTED_IDS [one-pass]\n", argv[0]);
        return 2;
    }
    lt_error err;
    lt_model *m = NULL;
    const lt_ops *ops = test_backend(1);
    CHECK(ops != NULL, "no backend");
    if (!ops) return check_exit_code();
    CHECK_OK(lt_llama2c_load(argv[1], ops, &m, &err), &err);
    FILE *f = fopen(argv[2], "r");
    CHECK(f != NULL, "cannot open %s", argv[2]);
    if (!f) return check_exit_code();
    int expected[1024], n_expected = 0;
    while (n_expected < 1024 && fscanf(f, "%d", &expected[n_expected]) == 1) n_expected++;
    fclose(f);
    CHECK(n_expected == 256, "oracle holds %d ids, expected 256", n_expected);

    const lt_model_config *cfg = lt_model_get_config(m);
    int32_t ids[1024];
    float *logits = malloc((size_t)cfg->vocab_size * sizeof *logits);
    int n = 0, mismatches = 0, first_bad = -1;
    ids[n++] = 1; /* BOS */
    CHECK_OK(lt_model_reserve(m, 1, n_expected + 1, &err), &err);
    if (one_pass) {
        for (int i = 0; i + 1 < n_expected; i++) ids[n++] = expected[i];
        float *all = malloc((size_t)n * (size_t)cfg->vocab_size * sizeof *all);
        CHECK(all != NULL, "out of memory");
        if (!all) return check_exit_code();
        CHECK_OK(lt_model_logits(m, ids, 1, n, 0, all, &err), &err);
        for (int t = 0; t < n; t++)
            if (lt_sample_argmax(all + (size_t)t * cfg->vocab_size, cfg->vocab_size) !=
                expected[t]) {
                if (first_bad < 0) first_bad = t;
                mismatches++;
            }
        free(all);
    }
    for (int step = 0; step < n_expected && !one_pass; step++) {
        CHECK_OK(lt_model_logits(m, ids, 1, n, 1, logits, &err), &err);
        int next = lt_sample_argmax(logits, cfg->vocab_size);
        if (next != expected[step]) {
            if (first_bad < 0) first_bad = step;
            mismatches++;
            next = expected[step]; /* teacher-force to count every divergence */
        }
        ids[n++] = next;
    }
    CHECK(mismatches == 0, "%d of %d greedy tokens differ from the oracle, first at step %d",
          mismatches, n_expected, first_bad);
    free(logits);
    lt_model_free(m);
    return check_exit_code();
}
