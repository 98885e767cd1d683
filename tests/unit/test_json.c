/* The strict JSON check (io/json.h).
 *   test_json unit              hand-written texts: verdicts, messages and
 *                               positions stated here
 *   test_json verdict IN OUT    for each document of IN (records of a
 *                               little-endian u32 length and the bytes),
 *                               one line in OUT: "1\t" and the tree
 *                               lt_json_parse built, as JSON, or "0\t" and
 *                               its message (tests/ref/json_strict_ref.py
 *                               compares both with Python's json.loads)
 *   test_json speed FILE        the check's time on FILE against cJSON's
 *                               parse (and free) of the same text */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/fileutil.h"
#include "io/json.h"
#include "tests/lib/check.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* text (len bytes) must be refused with a message holding want and want2
 * (NULL: not checked). */
static void refused(const char *text, size_t len, const char *want, const char *want2) {
    cJSON *root = NULL;
    lt_error err;
    lt_error_clear(&err);
    lt_status st = lt_json_parse(text, len, "t.json", 1, &root, &err);
    const int shown = len < 80 ? (int)len : 80; /* the start names the case */
    CHECK(st == LT_ERR_FORMAT && !root, "accepted: %.*s", shown, text);
    CHECK(strstr(err.msg, want) != NULL, "%.*s: message \"%s\" lacks \"%s\"", shown, text, err.msg, want);
    CHECK(!want2 || strstr(err.msg, want2) != NULL, "%.*s: message \"%s\" lacks \"%s\"", shown, text,
          err.msg, want2);
    CHECK(strstr(err.msg, "(expected ") != NULL, "message without what was expected: %s", err.msg);
    cJSON_Delete(root);
}
#define REFUSED(lit, want, want2) refused(lit, sizeof(lit) - 1, want, want2)

static void accepted(const char *text) {
    cJSON *root = NULL;
    lt_error err;
    lt_error_clear(&err);
    lt_status st = lt_json_parse(text, strlen(text), "t.json", 1, &root, &err);
    CHECK(st == LT_OK && root, "refused %s: %s", text, err.msg);
    cJSON_Delete(root);
}

static int unit(void) {
    /* the JSONL record of the report: \uZZZZ at column 15 of line 7 */
    REFUSED("{\"text\": \"bad \\uZZZZ escape and a long tail\"}", "t.json:1:15: invalid escape \"\\uZZZZ\"",
            "expected \\u and 4 hex digits");
    cJSON *root = NULL;
    lt_error err;
    const char rec[] = "{\"text\": \"bad \\uZZZZ escape\"}";
    CHECK(lt_json_parse(rec, sizeof rec - 1, "d.jsonl", 7, &root, &err) == LT_ERR_FORMAT &&
              !strncmp(err.msg, "d.jsonl:7:15: ", 14),
          "line of a record: %s", err.msg);
    REFUSED("{\"a\": \"x\\u12\"}", "t.json:1:9: invalid escape \"\\u12\"", NULL);
    REFUSED("[\"\\q\"]", "1:3: invalid escape \"\\q\"", NULL);
    REFUSED("[\"\\x41\"]", "invalid escape \"\\x\"", NULL);
    REFUSED("[\"\\'\"]", "invalid escape \"\\'\"", NULL);
    REFUSED("[\"a\\u0000b\"]", "1:4: escape \"\\u0000\"", NULL);
    REFUSED("[\"\\ud800\"]", "1:3: unpaired UTF-16 surrogate \"\\uD800\"", "low surrogate");
    REFUSED("[\"\\udc00\\ud800\"]", "1:3: unpaired UTF-16 surrogate \"\\uDC00\"", "high surrogate");
    REFUSED("[\"\\ud800\\u0041\"]", "unpaired UTF-16 surrogate \"\\uD800\"", NULL);
    REFUSED("[\"\\ud800\\uZZ\"]", "1:9: invalid escape \"\\uZZ\"", NULL);
    REFUSED("[\"\\ud800x\"]", "unpaired", NULL);
    accepted("[\"\\ud83d\\ude00\", \"\\u00e9\\/\\b\\f\\n\\r\\t\\\"\\\\\"]");
    REFUSED("[\"a\tb\"]", "1:4: unescaped control character U+0009 in a string", NULL);
    REFUSED("[\"a\nb\"]", "t.json:1:4: unescaped control character U+000A", NULL);
    REFUSED("[\"ab\"]\x00", "1:7: NUL byte", NULL);
    REFUSED("[\"a\x00" "b\"]", "1:4: NUL byte in a string", NULL);
    REFUSED("\x00", "1:1: NUL byte", NULL);
    REFUSED("[\"caf\xc3\xa9 \xff\"]", "1:8: invalid UTF-8 byte 0xFF", NULL); /* columns count characters */
    REFUSED("[\"\xc0\xaf\"]", "invalid UTF-8 byte 0xC0", NULL);              /* overlong '/' */
    REFUSED("[\"\xed\xa0\x80\"]", "invalid UTF-8 byte 0xED", NULL);          /* encoded surrogate */
    REFUSED("[\"\xf4\x90\x80\x80\"]", "invalid UTF-8 byte 0xF4", NULL);      /* above U+10FFFF */
    REFUSED("[\"\xe2\x82\"]", "invalid UTF-8 byte 0xE2", NULL);              /* cut */
    accepted("[\"\xf0\x9f\x98\x80 \xef\xbf\xbf \x7f\"]");
    REFUSED("{\"a\": 1,}", "t.json:1:8: trailing comma before '}'", NULL);
    REFUSED("[1, 2,\n ]", "1:6: trailing comma before ']'", NULL);
    REFUSED("{\"a\": 1 // note\n}", "1:9: comment \"//\"", "expected ',' or '}'");
    REFUSED("/* c */ {}", "1:1: comment \"/*\"", NULL);
    REFUSED("[01]", "1:2: number with a leading zero", NULL);
    REFUSED("[-01]", "1:2: number with a leading zero", NULL);
    REFUSED("[+1]", "1:2: '+' sign", NULL);
    REFUSED("[1.]", "1:4: ']' (expected a digit after '.')", NULL);
    REFUSED("[.5]", "1:2: '.'", NULL);
    REFUSED("[1e]", "expected a digit in the exponent", NULL);
    REFUSED("[1e+]", "expected a digit in the exponent", NULL);
    REFUSED("[-]", "expected a digit after '-'", NULL);
    REFUSED("[0x10]", "1:3: \"x10\" (expected ',' or ']')", NULL);
    accepted("[0, -0, 1.5e-10, 2E+3, -0.0e0, 123456789012345678901234567890]");
    REFUSED("[NaN]", "1:2: NaN", NULL);
    REFUSED("[Infinity]", "Infinity", NULL);
    REFUSED("[-Infinity]", "1:2: -Infinity", NULL);
    REFUSED("{'a': 1}", "1:2: single quote", NULL);
    REFUSED("['a']", "1:2: single quote", NULL);
    REFUSED("[True]", "1:2: \"True\"", "true, false, null");
    REFUSED("[nul]", "\"nul\"", NULL);
    REFUSED("{\"a\": 1} x", "1:10: \"x\" after the JSON value", "expected the end of the text");
    REFUSED("{} {}", "1:4: '{' after the JSON value", NULL);
    REFUSED("", "empty text", NULL);
    REFUSED(" \n ", "2:2: only whitespace", NULL);
    REFUSED("\xef\xbb\xbf{}", "1:1: byte order mark", NULL);
    REFUSED("{\"a\" 1}", "':' after the key", NULL);
    REFUSED("{\"a\": 1 \"b\": 2}", "1:9: '\"' (expected ',' or '}')", NULL);
    REFUSED("{1: 2}", "expected a key in double quotes", NULL);
    REFUSED("[1, 2", "end of text (expected ',' or ']')", NULL);
    REFUSED("[\"abc", "1:6: end of text inside a string", NULL);
    REFUSED("[1]\v", "control character U+000B", NULL);
    /* duplicate keys, also when spelled with escapes; other objects may repeat them */
    REFUSED("{\"r\": 8,\n \"lora_alpha\": 16,\n \"r\": null}", "t.json:3:2: duplicate key \"r\"",
            "the first is at line 1, column 2");
    REFUSED("{\"a\": 1, \"\\u0061\": 2}", "duplicate key \"\\u0061\"", "line 1, column 2");
    REFUSED("{\"\\ud83d\\ude00\": 1, \"\xf0\x9f\x98\x80\": 2}", "duplicate key", NULL);
    accepted("{\"a\": {\"a\": {\"a\": 1}}, \"b\": [{\"a\": 1}, {\"a\": 2}], \"A\": 3, \"a \": 4}");
    /* many keys: the table grows past its first 64 slots */
    {
        char *big = malloc(200000);
        size_t o = 0;
        big[o++] = '{';
        for (int k = 0; k < 5000; k++) o += (size_t)sprintf(big + o, "%s\"k%d\": %d", k ? "," : "", k, k);
        big[o++] = '}';
        big[o] = '\0';
        accepted(big);
        o--;
        o += (size_t)sprintf(big + o, ",\"k4321\": 0}");
        refused(big, o, "duplicate key \"k4321\"", NULL);
        free(big);
    }
    /* one key 2,000,000 times: refused at its second occurrence. The
     * duplicate search sorts each object's key hashes, linear-logarithmic
     * in the keys; comparing every pair took 15.7 s for 200,000 copies and
     * would take hours here, so a quadratic search ends this test at its
     * CTest time limit instead of in a timed comparison (timings belong to
     * benchmarks, not tests, on a shared machine). */
    {
        const size_t copies = 2000000;
        char *rep = malloc(copies * 6 + 2);
        size_t o = 0;
        rep[o++] = '{';
        for (size_t k = 0; k < copies; k++) o += (size_t)sprintf(rep + o, "%s\"a\":1", k ? "," : "");
        rep[o++] = '}';
        lt_json_fault fault;
        lt_status st = lt_json_check(rep, o, &fault);
        CHECK(st == LT_ERR_FORMAT && fault.offset == 7 && fault.first == 1, "repeated key: %s at %zu",
              fault.what, fault.offset);
        free(rep);
    }
    /* nesting: LT_JSON_MAX_DEPTH levels are fine, one more is not */
    {
        char deep[2 * LT_JSON_MAX_DEPTH + 4];
        memset(deep, '[', LT_JSON_MAX_DEPTH);
        memset(deep + LT_JSON_MAX_DEPTH, ']', LT_JSON_MAX_DEPTH);
        deep[2 * LT_JSON_MAX_DEPTH] = '\0';
        accepted(deep);
        char deeper[2 * LT_JSON_MAX_DEPTH + 4];
        memset(deeper, '[', LT_JSON_MAX_DEPTH + 1);
        memset(deeper + LT_JSON_MAX_DEPTH + 1, ']', LT_JSON_MAX_DEPTH + 1);
        refused(deeper, 2 * LT_JSON_MAX_DEPTH + 2, "1:129: nesting deeper than 128 levels", NULL);
    }
    accepted("0");
    accepted(" \"s\" ");
    accepted("null");
    accepted("\r\n\t{ \"a\" : [ true , false , null ] }\r\n");
    /* a binary file's part: the file offset of the fault */
    CHECK(lt_json_parse_part("{\"a\":1,}", 8, "m.safetensors", "header", 8, &root, &err) == LT_ERR_FORMAT &&
              strstr(err.msg, "m.safetensors: header byte 14 (line 1, column 7): trailing comma"),
          "part: %s", err.msg);
    return check_exit_code();
}

/* The tree as JSON, numbers with 17 digits (cJSON's own print rounds to
 * 15 where that is within an epsilon), infinities as null. */
static void print_tree(FILE *f, const cJSON *v) {
    if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
        const int obj = cJSON_IsObject(v);
        fputc(obj ? '{' : '[', f);
        for (const cJSON *c = v->child; c; c = c->next) {
            if (c != v->child) fputc(',', f);
            if (obj) {
                cJSON key = {0};
                key.type = cJSON_String;
                key.valuestring = c->string;
                print_tree(f, &key);
                fputc(':', f);
            }
            print_tree(f, c);
        }
        fputc(obj ? '}' : ']', f);
    } else if (cJSON_IsString(v)) {
        fputc('"', f);
        for (const unsigned char *q = (const unsigned char *)v->valuestring; *q; q++) {
            if (*q == '"' || *q == '\\') fprintf(f, "\\%c", *q);
            else if (*q < 0x20) fprintf(f, "\\u%04x", *q);
            else fputc(*q, f);
        }
        fputc('"', f);
    } else if (cJSON_IsNumber(v)) {
        if (isfinite(v->valuedouble)) fprintf(f, "%.17g", v->valuedouble);
        else fputs("null", f);
    } else {
        fputs(cJSON_IsTrue(v) ? "true" : cJSON_IsFalse(v) ? "false" : "null", f);
    }
}

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int verdict(const char *in, const char *out) {
    char *data = NULL;
    uint64_t size = 0;
    lt_error err;
    CHECK_OK(lt_read_file(in, 1u << 30, &data, &size, &err), &err);
    FILE *f = fopen(out, "w");
    CHECK(f != NULL, "cannot write %s", out);
    if (!f) return check_exit_code();
    size_t docs = 0, ok = 0;
    for (size_t pos = 0; pos + 4 <= size;) {
        const uint32_t len = le32((const unsigned char *)data + pos);
        pos += 4;
        CHECK(pos + len <= size, "document %zu runs past the end of %s", docs, in);
        if (pos + len > size) break;
        /* a private copy, no terminator: nothing may be read past len */
        char *doc = malloc(len ? len : 1);
        memcpy(doc, data + pos, len);
        pos += len;
        cJSON *root = NULL;
        lt_error_clear(&err);
        lt_status st = lt_json_parse(doc, len, "doc", 1, &root, &err);
        CHECK(st == LT_OK || st == LT_ERR_FORMAT, "document %zu: %s", docs, err.msg);
        if (st == LT_OK) {
            char *printed = cJSON_PrintUnformatted(root);
            CHECK(printed != NULL, "document %zu: cJSON cannot print its tree", docs);
            /* what cJSON writes back must pass the check too */
            lt_json_fault fault;
            CHECK(printed && lt_json_check(printed, strlen(printed), &fault) == LT_OK,
                  "document %zu: cJSON's print is refused: %s at byte %zu", docs, fault.what, fault.offset);
            fputs("1\t", f);
            print_tree(f, root);
            fputc('\n', f);
            free(printed);
            ok++;
        } else {
            CHECK(strchr(err.msg, '\n') == NULL, "document %zu: message of more than one line", docs);
            fprintf(f, "0\t%s\n", err.msg);
        }
        cJSON_Delete(root);
        free(doc);
        docs++;
    }
    fclose(f);
    free(data);
    printf("%zu documents: %zu accepted, %zu refused\n", docs, ok, docs - ok);
    return check_exit_code();
}

static int speed(const char *path) {
    char *text = NULL;
    uint64_t size = 0;
    lt_error err;
    CHECK_OK(lt_read_file(path, 1u << 30, &text, &size, &err), &err);
    double best_check = 1e30, best_cjson = 1e30;
    for (int rep = 0; rep < 7; rep++) {
        lt_json_fault fault;
        double t0 = now();
        lt_status st = lt_json_check(text, (size_t)size, &fault);
        double t1 = now();
        cJSON *root = cJSON_ParseWithLength(text, (size_t)size);
        cJSON_Delete(root);
        double t2 = now();
        CHECK(st == LT_OK, "%s refused: %s at byte %zu", path, fault.what, fault.offset);
        CHECK(root != NULL, "cJSON cannot parse %s", path);
        if (t1 - t0 < best_check) best_check = t1 - t0;
        if (t2 - t1 < best_cjson) best_cjson = t2 - t1;
    }
    printf("%s: %.1f MB; check %.1f ms (%.0f MB/s), cJSON's tree (parse and free) %.1f ms\n", path,
           (double)size / 1e6, 1e3 * best_check, (double)size / 1e6 / best_check, 1e3 * best_cjson);
    /* A figure, not a verdict: timings on a shared machine are for
     * benchmarks; a quadratic check would end at the test's time limit. */
    free(text);
    return check_exit_code();
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "unit")) return unit();
    if (argc == 4 && !strcmp(argv[1], "verdict")) return verdict(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "speed")) return speed(argv[2]);
    fprintf(stderr, "usage: %s unit | verdict IN OUT | speed FILE\n", argv[0]);
    return 2;
}
