/* libFuzzer target: the strict JSON check every JSON text passes before
 * cJSON reads it (io/json.h), on arbitrary bytes as they come (no
 * terminator: a read past the end is ASan's). Beyond not crashing, the
 * check must agree with cJSON and with itself:
 *   - a text it passes, cJSON builds a tree of (lt_json_parse fails only
 *     where cJSON does), and the tree's print passes the check again;
 *   - a text it refuses is named at an offset inside the text (or its
 *     end), with what was found and what was expected.
 * It is fast enough (no files) to explore the grammar itself; fuzz_config
 * covers the readers built on it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lt_json_fault f;
    const lt_status checked = lt_json_check((const char *)data, size, &f);
    if (checked == LT_ERR_FORMAT && (f.offset > size || !f.what[0] || !f.expected[0])) abort();
    cJSON *root = NULL;
    lt_error err;
    lt_error_clear(&err);
    const lt_status parsed = lt_json_parse((const char *)data, size, "fuzz.json", 1, &root, &err);
    if ((checked == LT_OK) != (parsed == LT_OK) || (parsed == LT_OK) != (root != NULL)) abort();
    if (parsed != LT_OK && checked == LT_ERR_FORMAT && !strstr(err.msg, "(expected ")) abort();
    if (root) {
        char *printed = cJSON_PrintUnformatted(root);
        if (printed && lt_json_check(printed, strlen(printed), &f) != LT_OK) abort();
        free(printed);
        cJSON_Delete(root);
    }
    return 0;
}
