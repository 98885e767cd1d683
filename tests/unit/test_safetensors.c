/* safetensors reading and writing, against an independent Python reader and
 * writer (tests/ref/safetensors_ref.py), and every kind of malformed file.
 *
 *   test_safetensors DIR   reads DIR/ref.safetensors (written by the
 *                          reference) and writes DIR/ours.safetensors for it
 *                          to check; malformed variants go to DIR too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/model/safetensors.h"
#include "tests/lib/check.h"

static const char *g_dir;

static void check_reference(void) {
    char path[1200];
    snprintf(path, sizeof path, "%s/ref.safetensors", g_dir);
    lt_error err;
    lt_safetensors *st = NULL;
    lt_status s = lt_st_open(path, &st, &err);
    CHECK(s == LT_OK, "%s", err.msg);
    if (s != LT_OK) return;
    CHECK(lt_st_count(st) == 8, "%d tensors, expected 8", lt_st_count(st));
    CHECK(lt_st_metadata(st, "note") && !strcmp(lt_st_metadata(st, "note"), "reference"),
          "metadata not read");
    const char *names[] = {"f32", "f16", "bf16", "f64"};
    for (int i = 0; i < 4; i++) {
        char ename[64];
        snprintf(ename, sizeof ename, "%s.expect", names[i]);
        const lt_st_tensor *t = lt_st_find(st, names[i]), *e = lt_st_find(st, ename);
        CHECK(t && e && t->numel == e->numel, "%s missing", names[i]);
        if (!t || !e || t->numel != e->numel) continue;
        float *a = malloc(t->numel * 4), *b = malloc(e->numel * 4);
        CHECK(lt_st_read_f32(st, t, a, t->numel, &err) == LT_OK, "%s", err.msg);
        CHECK(lt_st_read_f32(st, e, b, e->numel, &err) == LT_OK, "%s", err.msg);
        int same = 1;
        for (uint64_t k = 0; k < t->numel; k++)
            same &= (a[k] == b[k]) || (isnan(a[k]) && isnan(b[k]));
        CHECK(same, "%s converts to other values than the reference's", names[i]);
        free(a);
        free(b);
    }
    float small[2];
    CHECK(lt_st_read_f32(st, lt_st_find(st, "f32"), small, 2, &err) == LT_ERR_FORMAT,
          "reading into a buffer of the wrong size must fail");
    lt_st_close(st);
}

static void write_ours(void) {
    float alpha[12], beta[5], gamma[2] = {1e-30f, 3.0e38f};
    for (int i = 0; i < 12; i++) alpha[i] = (float)i * 0.5f;
    for (int i = 0; i < 5; i++) beta[i] = -(float)i / 3.0f;
    lt_st_out t[3] = {{"alpha", alpha, 2, {3, 4}}, {"beta.weight", beta, 1, {5}},
                      {"gamma", gamma, 2, {1, 2}}};
    const char *meta[] = {"format", "pt", "writer", "loratrain"};
    char path[1200];
    snprintf(path, sizeof path, "%s/ours.safetensors", g_dir);
    lt_error err;
    CHECK(lt_st_write_f32(path, t, 3, meta, 2, &err) == LT_OK, "%s", err.msg);
    lt_safetensors *st = NULL;
    CHECK(lt_st_open(path, &st, &err) == LT_OK, "our own file does not read back: %s", err.msg);
    if (st) {
        float back[12];
        CHECK(lt_st_read_f32(st, lt_st_find(st, "alpha"), back, 12, &err) == LT_OK &&
                  !memcmp(back, alpha, sizeof alpha),
              "alpha changed on the way through");
        lt_st_close(st);
    }
}

/* A file with this exact header text and data size. */
static const char *craft(const char *name, const char *header, size_t data_bytes, int64_t len_field) {
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "wb");
    /* len_field: -1 the header's true length, -2 a length near 2^64 */
    uint64_t n = len_field >= 0 ? (uint64_t)len_field : len_field == -2 ? UINT64_MAX - 3 : strlen(header);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(n >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
    return path;
}

static void expect_bad(const char *name, const char *header, size_t data_bytes, int64_t len_field,
                       const char *want) {
    const char *path = craft(name, header, data_bytes, len_field);
    lt_error err;
    lt_safetensors *st = NULL;
    lt_status s = lt_st_open(path, &st, &err);
    CHECK(s != LT_OK && strstr(err.msg, name) && strstr(err.msg, want), "%s: status %d, message: %s",
          name, (int)s, s == LT_OK ? "(none)" : err.msg);
    if (s == LT_OK) lt_st_close(st);
    else printf("  %-14s %s\n", name, err.msg);
}

static void malformed(void) {
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    expect_bad("nohdr.st", "", 0, -1, "header byte 8 (line 1, column 1): empty text");
    {
        char path[1200];
        snprintf(path, sizeof path, "%s/tiny.st", g_dir);
        FILE *f = fopen(path, "wb");
        fwrite("abc", 1, 3, f);
        fclose(f);
        lt_error err;
        lt_safetensors *st = NULL;
        CHECK(lt_st_open(path, &st, &err) == LT_ERR_FORMAT && strstr(err.msg, "too short"), "%s", err.msg);
    }
    expect_bad("hlen.st", ok, 8, 1000000, "header length");
    expect_bad("hlen2.st", ok, 8, -2 /* huge */, "header length");
    expect_bad("json.st", "{\"a\": {\"dtype\": \"F32\", ", 8, -1, "header byte 31 (line 1, column 24): end of text");
    expect_bad("notobj.st", "[1,2,3]", 0, -1, "JSON object");
    expect_bad("dtype.st", "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, -1,
               "not supported");
    expect_bad("size.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1,
               "shape x F32 size");
    expect_bad("beyond.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8, -1,
               "outside");
    expect_bad("backwards.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, -1,
               "outside");
    expect_bad("overlap.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, -1, "overlap");
    expect_bad("dup.st",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, -1, "header byte 62 (line 1, column 55): duplicate key \"a\"");
    expect_bad("shape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, -1,
               "shape[0]");
    expect_bad("negshape.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1,
               "shape[0]");
    expect_bad("offsets.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, -1,
               "[begin, end]");
    expect_bad("meta.st", "{\"__metadata__\":{\"k\":1}}", 0, -1, "not a string");
    expect_bad("huge.st", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}", 4, -1, "overflows");
    /* a valid file with an empty tensor list opens */
    const char *empty = craft("empty.st", "{}", 0, -1);
    lt_error err;
    lt_safetensors *st = NULL;
    CHECK(lt_st_open(empty, &st, &err) == LT_OK && lt_st_count(st) == 0, "an empty header must open: %s",
          err.msg);
    lt_st_close(st);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    check_reference();
    write_ours();
    malformed();
    return check_exit_code();
}
