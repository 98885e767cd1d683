/* libFuzzer target: the chat template parser and renderer on arbitrary
 * template bytes. Every input must parse or fail with a message, and a
 * template that parses must render a fixed conversation (both ways of
 * add_generation_prompt, and every prefix of it, as the dataset does)
 * without crashing, reading out of bounds or running away. */
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "io/text/chat_template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cJSON *msgs;
    if (!msgs)
        msgs = cJSON_Parse("[{\"role\":\"system\",\"content\":\" sys \"},{\"role\":\"user\",\"content\":"
                           "\"hi \\u00e9 {{x}}\"},{\"role\":\"assistant\",\"content\":\"ok\",\"n\":3},"
                           "{\"role\":\"user\",\"content\":\"\"}]");
    lt_chat_template *t = NULL;
    lt_error err;
    if (lt_chat_template_parse((const char *)data, size, "fuzz", &t, &err) != LT_OK) return 0;
    if (lt_chat_template_set_tokens(t, "<s>", "</s>", &err) == LT_OK)
        for (size_t n = 0; n <= 4; n++)
            for (int gen = 0; gen < 2; gen++) {
                char *out = NULL;
                size_t len = 0;
                if (lt_chat_template_render(t, msgs, n, gen, &out, &len, &err) == LT_OK && out[len] != '\0')
                    abort();
                lt_free(out);
            }
    lt_chat_template_free(t);
    return 0;
}
