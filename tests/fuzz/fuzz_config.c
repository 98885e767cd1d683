/* libFuzzer target: the JSON readers of untrusted configs -- the strict
 * check every JSON text passes (io/json.h), the run config (files and the
 * copy a checkpoint carries) and a Hugging Face model directory's
 * config.json -- on the same arbitrary bytes: a clean error or a valid
 * config, never a crash. The check must also agree with itself: a text
 * it passes builds a tree whose cJSON print it passes again, and a text it
 * refuses is named at an offset inside it with what was expected. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/hf_model.h"
#include "io/json.h"
#include "launch/config.h"

static char dir[64], path[96];

/* libFuzzer ends a -max_total_time run through exit(): the folder goes
 * with it instead of piling up in /tmp run after run. */
static void remove_dir(void) {
    unlink(path);
    rmdir(dir);
}

/* config.json in a private folder (the reader takes the directory). */
static void hf_config(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/lt_fuzz_hf.%ld", (long)getpid());
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (mkdir(dir, 0700) == 0) atexit(remove_dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    fclose(f);
    if (w != size) return;
    lt_model_config cfg;
    lt_error err;
    lt_hf_read_config(dir, &cfg, &err);
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as they come, unterminated: a read past the end is ASan's. */
static void strict_check(const uint8_t *data, size_t size) {
    lt_json_fault f;
    const lt_status checked = lt_json_check((const char *)data, size, &f);
    cJSON *root = NULL;
    lt_error err;
    lt_error_clear(&err);
    const lt_status parsed = lt_json_parse((const char *)data, size, "fuzz.json", 1, &root, &err);
    if ((checked == LT_OK) != (parsed == LT_OK) || (parsed == LT_OK) != (root != NULL)) abort();
    if (parsed == LT_OK) {
        char *printed = cJSON_PrintUnformatted(root);
        if (printed && lt_json_check(printed, strlen(printed), &f) != LT_OK) abort();
        free(printed);
        cJSON_Delete(root);
    } else if (checked == LT_ERR_FORMAT && (f.offset > size || !f.what[0] || !f.expected[0] ||
                                            !strstr(err.msg, "(expected "))) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    strict_check(data, size);
    /* cJSON reads at most size bytes, but error positions are computed
     * from the text: give it a terminated copy as lt_read_file does. */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    lt_run_config c;
    lt_run_config_defaults(&c);
    lt_error err;
    if (lt_run_config_parse_json(&c, text, size, "fuzz.json", &err) == LT_OK) {
        lt_run_config_validate(&c, &err);
        lt_lora_config lc;
        lt_run_config_lora(&c, &lc, &err);
    }
    free(text);
    hf_config(data, size);
    return 0;
}
