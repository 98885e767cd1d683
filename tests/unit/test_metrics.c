/* The metrics.jsonl writer (launch/metrics.c), which resume, the
 * finished-run check and the tests read back:
 *   - each line is one JSON object whose keys come in their fixed order,
 *     "step" first;
 *   - every number is the text its printf format gives: a loss reads back
 *     bit for bit (cJSON's own printer stops at 15 digits when those are
 *     within its epsilon), a float learning rate too, and an integer past
 *     2^53 is exact;
 *   - a fresh run's open removes the old file; a resumed run's open keeps
 *     the lines of the steps it resumes after and appends after them;
 *     lt_metrics_logged finds a step's line by key.
 * usage: test_metrics SCRATCH_DIR */
#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/fileutil.h"
#include "launch/metrics.h"
#include "tests/lib/check.h"

static const char *const k_step_keys[] = {
    "step", "epoch", "loss", "learning_rate", "grad_norm", "target_tokens", "tokens_seen",
    "tokens_per_s", "mem_mib", "elapsed_s", "ranks", "allreduce_bytes", "allgather_bytes",
    "reduce_bytes", "reduce_scatter_bytes", "comm_wait_s", "grad_wait_s", "grad_overlapped_bytes",
    "grad_started_bytes"};
static const char *const k_eval_keys[] = {"step", "eval_loss", "eval_tokens"};

/* The text of key's value in line ("" when absent). */
static void raw_value(const char *line, const char *key, char *out, size_t cap) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    out[0] = '\0';
    if (!p) return;
    p += strlen(pat);
    size_t n = strcspn(p, ",}");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* line's keys are keys, in that order. */
static int keys_are(const char *line, const char *const *keys, size_t n) {
    cJSON *o = cJSON_Parse(line);
    size_t i = 0;
    int ok = cJSON_IsObject(o);
    for (const cJSON *it = o ? o->child : NULL; ok && it; it = it->next, i++)
        ok = i < n && !strcmp(it->string, keys[i]) && cJSON_IsNumber(it);
    cJSON_Delete(o);
    return ok && i == n;
}

static int same_bits(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

static char *slurp(const char *path) {
    char *text = NULL;
    uint64_t size = 0;
    lt_error e;
    return lt_read_file(path, 1 << 20, &text, &size, &e) == LT_OK ? text : NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_metrics SCRATCH_DIR\n");
        return 2;
    }
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/metrics", argv[1]);
    lt_error err;
    CHECK_OK(lt_make_dirs(dir, &err), &err);
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    CHECK_OK(lt_atomic_write_text(path, "{\"step\":99,\"loss\":1}", &err), &err);

    /* Doubles whose 15-digit spelling is not themselves. */
    const double losses[] = {4.6037630155274716, 0.1, 1.0 / 3.0, 2.7182818284590451, nextafter(1.0, 2.0),
                             5.0631941006714003, DBL_MIN, DBL_MAX};
    const size_t n = sizeof losses / sizeof losses[0];
    const int64_t big = ((int64_t)1 << 53) + 1;
    const float lr = 1.50000007e-4f;
    lt_metrics m;
    lt_metrics_init(&m);
    CHECK_OK(lt_metrics_open(&m, dir, 0, &err), &err);
    CHECK(access(path, F_OK) != 0, "a fresh run's open left the old %s", path);
    for (size_t i = 0; i < n; i++) {
        lt_metrics_step s = {.step = (int64_t)i + 1, .epoch = 0.0062, .tokens_seen = big,
                             .tokens_per_s = 10892.6, .mem_mib = 59.7, .elapsed_s = 0.378, .ranks = 2};
        s.stats = (lt_step_stats){.loss = losses[i], .grad_norm = 3.13850045, .lr = lr, .tokens = 4096,
                                  .grad_wait_s = 0.000043, .grad_overlapped_bytes = 110976,
                                  .grad_started_bytes = 184960};
        s.comm.bytes[LT_COLL_ALLREDUCE] = UINT64_MAX;
        s.comm.bytes[LT_COLL_REDUCE] = 8;
        s.comm.wait_s = 0.000767;
        CHECK_OK(lt_metrics_write_step(&m, &s, &err), &err);
        CHECK_OK(lt_metrics_write_eval(&m, (int64_t)i + 1, losses[i], big, &err), &err);
    }
    CHECK_OK(lt_metrics_close(&m, &err), &err);

    char *text = slurp(path);
    CHECK(text != NULL, "%s: not written", path);
    size_t lines = 0;
    for (char *line = text, *next; line && *line; line = next, lines++) {
        next = strchr(line, '\n');
        CHECK(next != NULL, "line %zu has no newline", lines + 1);
        if (!next) break;
        *next++ = '\0';
        const size_t i = lines / 2;
        const int eval = lines % 2;
        char want[64], v[512];
        snprintf(want, sizeof want, "{\"step\":%zu,\"%s\":", i + 1, eval ? "eval_loss" : "epoch");
        CHECK(!strncmp(line, want, strlen(want)), "line %zu does not start with %s: %s", lines + 1, want, line);
        CHECK(eval ? keys_are(line, k_eval_keys, 3) : keys_are(line, k_step_keys, 19),
              "line %zu: keys not in their order, or a value not a number: %s", lines + 1, line);
        raw_value(line, eval ? "eval_loss" : "loss", v, sizeof v);
        CHECK(same_bits(strtod(v, NULL), losses[i]), "line %zu: loss %s reads back as %.17g, not %.17g",
              lines + 1, v, strtod(v, NULL), losses[i]);
        raw_value(line, eval ? "eval_tokens" : "tokens_seen", v, sizeof v);
        CHECK(!strcmp(v, "9007199254740993"), "line %zu: 2^53 + 1 written as %s", lines + 1, v);
        if (eval) continue;
        raw_value(line, "learning_rate", v, sizeof v);
        CHECK(strtof(v, NULL) == lr, "line %zu: learning_rate %s reads back as %.9g, not %.9g", lines + 1, v,
              (double)strtof(v, NULL), (double)lr);
        raw_value(line, "allreduce_bytes", v, sizeof v);
        CHECK(!strcmp(v, "18446744073709551615"), "line %zu: allreduce_bytes 2^64 - 1 written as %s",
              lines + 1, v);
        /* The fixed formats: %.4f, %.1f, %.3f, %.6f. */
        raw_value(line, "epoch", v, sizeof v);
        CHECK(!strcmp(v, "0.0062"), "line %zu: epoch %s", lines + 1, v);
        raw_value(line, "tokens_per_s", v, sizeof v);
        CHECK(!strcmp(v, "10892.6"), "line %zu: tokens_per_s %s", lines + 1, v);
        raw_value(line, "elapsed_s", v, sizeof v);
        CHECK(!strcmp(v, "0.378"), "line %zu: elapsed_s %s", lines + 1, v);
        raw_value(line, "comm_wait_s", v, sizeof v);
        CHECK(!strcmp(v, "0.000767"), "line %zu: comm_wait_s %s", lines + 1, v);
    }
    CHECK(lines == 2 * n, "%zu lines, expected %zu", lines, 2 * n);
    free(text);

    /* Resumed after step 2: later steps' lines and a line without a step
     * go, the rest stay byte for byte, and new lines follow them. */
    const char *kept = "{\"step\":1,\"loss\":1.5}\n{\"step\":2,\"loss\":1.25}\n{\"step\":2,\"eval_loss\":2.5}\n";
    char before[512];
    snprintf(before, sizeof before, "%s{\"step\":3,\"loss\":1}\nnot a step\n{\"step\":4,\"eval_loss\":2}", kept);
    CHECK_OK(lt_atomic_write_text(path, before, &err), &err); /* and a newline */
    CHECK(lt_metrics_logged(dir, 4, "\"eval_loss\":"), "step 4's eval_loss not found before the resume");
    CHECK_OK(lt_metrics_open(&m, dir, 2, &err), &err);
    text = slurp(path);
    CHECK(text && !strcmp(text, kept), "after resuming at step 2 the file holds:\n%s", text ? text : "(none)");
    free(text);
    CHECK(lt_metrics_logged(dir, 2, "\"eval_loss\":") && lt_metrics_logged(dir, 2, "\"loss\":"),
          "step 2's lines not found");
    CHECK(!lt_metrics_logged(dir, 3, "\"loss\":") && !lt_metrics_logged(dir, 4, "\"eval_loss\":"),
          "a line after step 2 is still there");
    CHECK(!lt_metrics_logged(dir, 1, "\"eval_loss\":"), "step 1 has no eval_loss, but it was found");
    lt_metrics_step s3 = {.step = 3, .stats = {.loss = 0.1}};
    CHECK_OK(lt_metrics_write_step(&m, &s3, &err), &err);
    CHECK_OK(lt_metrics_close(&m, &err), &err);
    text = slurp(path);
    CHECK(text && !strncmp(text, kept, strlen(kept)) && !strncmp(text + strlen(kept), "{\"step\":3,", 10) &&
              strchr(text + strlen(kept), '\n') == text + strlen(text) - 1,
          "after appending step 3: %s", text ? text : "(none)");
    free(text);
    /* A resume before any dropped line leaves the file alone. */
    struct stat a, b;
    CHECK(stat(path, &a) == 0, "%s: %s", path, strerror(errno));
    CHECK_OK(lt_metrics_open(&m, dir, 3, &err), &err);
    CHECK(stat(path, &b) == 0 && a.st_ino == b.st_ino, "resuming at the last step rewrote the file");
    CHECK_OK(lt_metrics_close(&m, &err), &err);
    return check_exit_code();
}
