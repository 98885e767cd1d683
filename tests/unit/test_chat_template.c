/* Renders every case of a JSON file ([{"template", "messages", "gen"}])
 * with io/text/chat_template and writes one JSON line per case: {"out": ...} or
 * {"error": ...}, for tests/ref/chat_template_ref.py to compare with Jinja2.
 * With "unit" it runs the built-in syntax-error checks instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/text/chat_template.h"
#include "io/fileutil.h"

static int unit(void) {
    static const struct {
        const char *src, *want;
    } bad[] = {
        {"{% if x %}", "never closed"},   {"{{ x | nosuch }}", "no filter named 'nosuch'"},
        {"{{ 'abc }}", "unterminated"},   {"{% frob %}", "unknown or unexpected tag"},
        {"{{ x is weird }}", "no test"},  {"{# open", "comment"},
        {"{{ (((((((( }}", "bracket"}, {"{{ 1 + }}", "expected an expression"},
        {"{% generation %}x", "expected '{% endgeneration %}'"}, {"{% endgeneration %}", "unknown or unexpected tag"},
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lt_chat_template *t = NULL;
        lt_error err = {0};
        if (lt_chat_template_parse(bad[i].src, strlen(bad[i].src), "unit", &t, &err) == LT_OK ||
            !strstr(err.msg, bad[i].want) || !strstr(err.msg, "byte")) {
            printf("FAIL: %s -> %s (want %s)\n", bad[i].src, t ? "parsed" : err.msg, bad[i].want);
            fails++;
        }
        lt_chat_template_free(t);
    }
    char deep[2000];
    memset(deep, '(', sizeof deep);
    memcpy(deep, "{{", 2);
    lt_chat_template *t = NULL;
    lt_error err;
    if (lt_chat_template_parse(deep, sizeof deep, "deep", &t, &err) == LT_OK || !strstr(err.msg, "nested")) {
        printf("FAIL: deep nesting not bounded: %s\n", err.msg);
        fails++;
    }
    lt_chat_template_free(t);
    /* transformers' {% generation %} renders as its body. */
    static const char gen[] = "{% for m in messages %}{% generation %}[{{ m }}]{% endgeneration %}\n{% endfor %}";
    cJSON *msgs = cJSON_Parse("[\"a\", \"b\"]");
    char *out = NULL;
    size_t len = 0;
    if (!msgs || lt_chat_template_parse(gen, sizeof gen - 1, "gen", &t, &err) != LT_OK ||
        lt_chat_template_render(t, msgs, 9, 0, &out, &len, &err) != LT_OK || strcmp(out, "[a][b]") != 0) {
        printf("FAIL: generation block: %s\n", out ? out : err.msg);
        fails++;
    }
    lt_free(out);
    lt_chat_template_free(t);
    cJSON_Delete(msgs);
    printf("chat template unit: %d failures\n", fails);
    return fails != 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "unit")) return unit();
    if (argc != 2) {
        fprintf(stderr, "usage: test_chat_template CASES.json | unit\n");
        return 2;
    }
    char *raw = NULL;
    uint64_t size = 0;
    lt_error err;
    if (lt_read_file(argv[1], 64u << 20, &raw, &size, &err) != LT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cJSON *cases = cJSON_ParseWithLength(raw, (size_t)size);
    free(raw);
    if (!cJSON_IsArray(cases)) {
        fprintf(stderr, "%s: expected a JSON array of cases\n", argv[1]);
        return 1;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const cJSON *src = cJSON_GetObjectItem(c, "template"), *msgs = cJSON_GetObjectItem(c, "messages");
        const cJSON *bos = cJSON_GetObjectItem(c, "bos_token"), *eos = cJSON_GetObjectItem(c, "eos_token");
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "gen"));
        cJSON *res = cJSON_CreateObject();
        lt_chat_template *t = NULL;
        char *out = NULL;
        size_t n = 0;
        lt_status st = lt_chat_template_parse(src->valuestring, strlen(src->valuestring), "case", &t, &err);
        if (st == LT_OK)
            st = lt_chat_template_set_tokens(t, cJSON_IsString(bos) ? bos->valuestring : NULL,
                                             cJSON_IsString(eos) ? eos->valuestring : NULL, &err);
        if (st == LT_OK) st = lt_chat_template_render(t, msgs, (size_t)-1, gen, &out, &n, &err);
        if (st == LT_OK) cJSON_AddStringToObject(res, "out", out);
        else cJSON_AddStringToObject(res, "error", err.msg);
        char *line = cJSON_PrintUnformatted(res);
        printf("%s\n", line);
        free(line);
        cJSON_Delete(res);
        lt_free(out);
        lt_chat_template_free(t);
    }
    cJSON_Delete(cases);
    return 0;
}
