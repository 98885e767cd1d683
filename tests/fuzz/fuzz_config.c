/* libFuzzer target: the JSON readers of untrusted configs -- the run
 * config (files and the copy a checkpoint carries) and a Hugging Face
 * model directory's config.json -- on the same arbitrary bytes: a clean
 * error or a valid config, never a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/model/hf_model.h"
#include "launch/run_config.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
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
