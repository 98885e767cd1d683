/* libFuzzer target: the JSON readers of untrusted configs -- the run
 * config (files and the copy a checkpoint carries) -- on arbitrary bytes:
 * a clean error or a valid config, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "launch/config.h"

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
    return 0;
}
