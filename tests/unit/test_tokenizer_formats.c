/* The tokenizer front and the tokenizer.json / tokenizer.model parsers on
 * small hand-written files: exact ids for known merges, added tokens,
 * ignore_merges, BOS from the post-processor, EOS from tokenizer_config.json,
 * format choice by name and directory, the pre-tokenizer regexes on corner
 * cases, and malformed files (each one clear error, never a crash; every
 * truncation of a valid protobuf is tried).
 *
 * usage: test_tokenizer_formats [TMPDIR]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/text/tokenizer.h"
#include "io/text/tokenizer_pretok.h"
#include "tests/lib/check.h"

static char g_dir[4096];

/* CHECK_OK returns from main-style functions; these return nothing. */
#define OK(expr)                                                                                \
    do {                                                                                        \
        lt_status ok_st_ = (expr);                                                              \
        CHECK(ok_st_ == LT_OK, "%s: %s", #expr, err.msg);                                       \
    } while (0)

static const char *tmp_path(const char *name) {
    static char p[8][4200];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static const char *write_text(const char *name, const char *text) {
    const char *p = tmp_path(name);
    CHECK(write_file(p, text, strlen(text)), "write %s", p);
    return p;
}

static void expect_ids(const lt_tokenizer *t, const char *text, int bos, const int32_t *want,
                       size_t nwant) {
    int32_t ids[64];
    size_t n = 0;
    lt_error err;
    lt_status st = lt_tokenizer_encode(t, text, strlen(text), bos, 0, ids, 64, &n, &err);
    int same = st == LT_OK && n == nwant && (n == 0 || memcmp(ids, want, n * sizeof *ids) == 0);
    CHECK(same, "encode(\"%s\"): %s; got %zu ids:", text, st == LT_OK ? "ok" : err.msg, n);
    if (!same) {
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", (int)ids[i]);
        fprintf(stderr, "  expected");
        for (size_t i = 0; i < nwant; i++) fprintf(stderr, " %d", (int)want[i]);
        fprintf(stderr, "\n");
    }
}

static void expect_decode(const lt_tokenizer *t, const int32_t *ids, size_t n, const char *want) {
    char out[256];
    size_t len = 0;
    lt_error err;
    lt_status st = lt_tokenizer_decode(t, ids, n, out, sizeof out, &len, &err);
    CHECK(st == LT_OK && len == strlen(want) && memcmp(out, want, len) == 0,
          "decode gives \"%.*s\", expected \"%s\" (%s)", (int)len, out, want,
          st == LT_OK ? "ok" : err.msg);
}

static void expect_fail(const char *label, const char *path, lt_status want, const char *needle) {
    lt_tokenizer *t = NULL;
    lt_error err;
    lt_error_clear(&err);
    lt_status st = lt_tokenizer_load(path, 0, &t, &err);
    CHECK(st == want && t == NULL, "%s: status %s, expected %s (%s)", label, lt_status_name(st),
          lt_status_name(want), err.msg);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", label, err.msg);
    CHECK(!needle || strstr(err.msg, needle), "%s: message lacks \"%s\": %s", label,
          needle ? needle : "", err.msg);
    if (st == want) printf("  %s -> %s\n", label, err.msg);
    lt_tokenizer_free(t);
}

/* ------------------------------------------------------ tokenizer.json */

/* "Ġ" is GPT-2's byte-level spelling of ' '. */
#define VOCAB_JSON                                                                              \
    "{\"h\":0,\"e\":1,\"l\":2,\"o\":3,\"\\u0120\":4,\"w\":5,\"r\":6,\"d\":7,\"he\":8,\"ll\":9," \
    "\"hell\":10,\"hello\":11,\"\\u0120w\":12,\"<|endoftext|>\":13,\"!\":14,\"lo\":15,"          \
    "\"\\u010a\":16,\"'\":17,\"s\":18}"

static const char *bpe_json(const char *name, const char *merges, const char *extra_model,
                            const char *pre, const char *post) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":13,\"content\":\"<|endoftext|>\","
             "\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,"
             "\"special\":true}],\"normalizer\":null,\"pre_tokenizer\":%s,\"post_processor\":%s,"
             "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"dropout\":null,"
             "\"unk_token\":null%s,\"vocab\":" VOCAB_JSON ",\"merges\":%s}}",
             pre, post, extra_model, merges);
    return write_text(name, buf);
}

static const char *GPT2_PRE = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}";

static void test_json(void) {
    lt_error err;
    lt_tokenizer *t = NULL;
    /* Both merge spellings, mixed. */
    const char *p = bpe_json("gpt2.json", "[\"h e\",\"l l\",[\"he\",\"ll\"],[\"hell\",\"o\"],\"\\u0120 w\"]",
                             "", GPT2_PRE, "null");
    OK(lt_tokenizer_load(p, 0, &t, &err));
    if (!t) return;
    CHECK(lt_tokenizer_vocab_size(t) == 19, "vocab %d", lt_tokenizer_vocab_size(t));
    CHECK(lt_tokenizer_bos(t) == -1, "GPT-2 style has no BOS, got %d", (int)lt_tokenizer_bos(t));
    CHECK(lt_tokenizer_eos(t) == 13, "EOS <|endoftext|> is 13, got %d", (int)lt_tokenizer_eos(t));
    expect_ids(t, "hello world!", 0, (const int32_t[]){11, 12, 3, 6, 2, 7, 14}, 7);
    /* No BOS to add: the flag is a no-op. */
    expect_ids(t, "hello", 1, (const int32_t[]){11}, 1);
    /* The added token is cut out before pre-tokenization and decodes to nothing. */
    expect_ids(t, "hello<|endoftext|>hello", 0, (const int32_t[]){11, 13, 11}, 3);
    expect_decode(t, (const int32_t[]){11, 13, 11}, 3, "hellohello");
    /* Bytes without a token (no unk_token) are dropped, as the library does. */
    expect_ids(t, "z", 0, NULL, 0);
    /* "lo" is in the vocabulary but no merge makes it. */
    expect_ids(t, "lo", 0, (const int32_t[]){2, 3}, 2);
    /* GPT-2 regex: contractions, and "\n" kept apart from the next word. */
    expect_ids(t, "he's\nhe", 0, (const int32_t[]){8, 17, 18, 16, 8}, 5);
    expect_decode(t, (const int32_t[]){8, 17, 18, 16, 8}, 5, "he's\nhe");
    lt_tokenizer_free(t);

    /* ignore_merges: a word in the vocabulary is one token. */
    p = bpe_json("ignore.json", "[\"h e\"]", ",\"ignore_merges\":true", GPT2_PRE, "null");
    OK(lt_tokenizer_load(p, 0, &t, &err));
    if (t) expect_ids(t, "lo", 0, (const int32_t[]){15}, 1);
    lt_tokenizer_free(t);

    /* add_prefix_space, and BOS from a TemplateProcessing post-processor. */
    p = bpe_json("prefix.json", "[\"\\u0120 w\"]", "",
                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true}",
                 "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":"
                 "\"<|endoftext|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}]}");
    OK(lt_tokenizer_load(p, 0, &t, &err));
    if (t) {
        CHECK(lt_tokenizer_bos(t) == 13, "BOS from the template is 13, got %d", (int)lt_tokenizer_bos(t));
        expect_ids(t, "w", 1, (const int32_t[]){13, 12}, 2);
        expect_ids(t, " w", 0, (const int32_t[]){12}, 1);
    }
    lt_tokenizer_free(t);

    /* A model directory: tokenizer.json inside, EOS from tokenizer_config.json. */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/hf_model", g_dir);
    CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    char file[4300];
    snprintf(file, sizeof file, "%s/tokenizer.json", dir);
    const char *src = bpe_json("tmp.json", "[\"h e\"]", "", GPT2_PRE, "null");
    CHECK(rename(src, file) == 0, "rename to %s", file);
    snprintf(file, sizeof file, "%s/tokenizer_config.json", dir);
    CHECK(write_file(file, "{\"eos_token\":{\"content\":\"!\"}}", 29), "write %s", file);
    /* "!" is not an added token, so the fallback spelling stands. */
    OK(lt_tokenizer_load(dir, 0, &t, &err));
    if (t) {
        CHECK(strcmp(lt_tokenizer_kind(t), "byte-level-bpe") == 0, "kind %s", lt_tokenizer_kind(t));
        CHECK(lt_tokenizer_eos(t) == 13, "EOS %d", (int)lt_tokenizer_eos(t));
    }
    lt_tokenizer_free(t);
    snprintf(dir, sizeof dir, "%s/empty_model", g_dir);
    CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    expect_fail("directory without a tokenizer", dir, LT_ERR_IO, "neither tokenizer.json");
    CHECK(lt_tokenizer_load(g_dir, 18, &t, &err) != LT_OK, "a directory of junk loads");

    /* Too many ids for the model. */
    lt_status st = lt_tokenizer_load(tmp_path("gpt2.json"), 10, &t, &err);
    CHECK(st == LT_ERR_FORMAT && strstr(err.msg, "vocab_size 10"), "vocab_size 10: %s", err.msg);

    /* ---- malformed ---- */
    expect_fail("not JSON", write_text("bad1.json", "{\n\"model\": {\n  \"vocab\": [1,\n"),
                LT_ERR_FORMAT, "bad1.json:4:1: end of text (expected a value)");
    expect_fail("no model", write_text("bad2.json", "{\"version\":\"1.0\"}"), LT_ERR_FORMAT,
                "\"model\"");
    expect_fail("model without vocab",
                write_text("bad3.json", "{\"model\":{\"type\":\"BPE\",\"merges\":[]},"
                                        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"),
                LT_ERR_FORMAT, "model.vocab");
    expect_fail("model without merges",
                write_text("bad4.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},"
                                        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"),
                LT_ERR_FORMAT, "model.merges");
    expect_fail("merge of unknown tokens", bpe_json("bad5.json", "[\"h e\",\"x y\"]", "", GPT2_PRE, "null"),
                LT_ERR_FORMAT, "model.merges[1]");
    expect_fail("merge result not in vocab", bpe_json("bad6.json", "[\"e h\"]", "", GPT2_PRE, "null"),
                LT_ERR_FORMAT, "merges[0]");
    expect_fail("merge that is not a pair", bpe_json("bad7.json", "[\"hel\"]", "", GPT2_PRE, "null"),
                LT_ERR_FORMAT, "merges[0]");
    expect_fail("WordPiece",
                write_text("bad8.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}"),
                LT_ERR_UNSUPPORTED, "WordPiece");
    expect_fail("unknown regex",
                bpe_json("bad9.json", "[]", "",
                         "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
                         "{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\",\"invert\":false},"
                         "{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
                         "null"),
                LT_ERR_UNSUPPORTED, "regex");
    expect_fail("vocab id not a number",
                write_text("bad10.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},"
                                         "\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"),
                LT_ERR_FORMAT, "model.vocab");
    expect_fail("duplicate id",
                write_text("bad11.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},"
                                         "\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}"),
                LT_ERR_FORMAT, "id 0");
    expect_fail("missing file", tmp_path("missing.json"), LT_ERR_IO, NULL);
}

/* ------------------------------------------------- pre-tokenizer regexes */

static void expect_split(lt_pretok p, const char *text, const char *const *want, size_t nwant) {
    size_t n = strlen(text), k = 0;
    int ok = 1;
    for (size_t i = 0; i < n; k++) {
        size_t l = lt_pretok_next(p, text, n, i);
        if (k >= nwant || strlen(want[k]) != l || memcmp(want[k], text + i, l) != 0) {
            fprintf(stderr, "  piece %zu: \"%.*s\"\n", k, (int)l, text + i);
            ok = 0;
        }
        i += l;
    }
    CHECK(ok && k == nwant, "pre-tokenizer %d on \"%s\": %zu pieces, expected %zu", (int)p, text, k,
          nwant);
}

static void test_pretok(void) {
    expect_split(LT_PRETOK_GPT2, "I'm  here\n\n 123abc!! ",
                 (const char *const[]){"I", "'m", " ", " here", "\n\n", " 123", "abc", "!!", " "}, 9);
    expect_split(LT_PRETOK_GPT2, "HE'S", (const char *const[]){"HE", "'", "S"}, 3);
    expect_split(LT_PRETOK_LLAMA3, "HE'S 12345 ,hi\r\n\n  x",
                 (const char *const[]){"HE", "'S", " ", "123", "45", " ,", "hi", "\r\n\n", " ", " x"}, 10);
    expect_split(LT_PRETOK_LLAMA3, "a.\n\nb", (const char *const[]){"a", ".\n\n", "b"}, 3);
    expect_split(LT_PRETOK_QWEN2, "x 123", (const char *const[]){"x", " ", "1", "2", "3"}, 5);
    expect_split(LT_PRETOK_LLAMA3, "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac",
                 (const char *const[]){"caf\xc3\xa9", " \xe6\x97\xa5\xe6\x9c\xac"}, 2);
}

/* ------------------------------------------------------ tokenizer.model */

typedef struct {
    unsigned char b[4096];
    size_t n;
} pbuf;

static void put_varint(pbuf *p, uint64_t v) {
    do {
        unsigned char c = v & 0x7F;
        v >>= 7;
        p->b[p->n++] = (unsigned char)(c | (v ? 0x80 : 0));
    } while (v);
}

static void put_bytes(pbuf *p, uint32_t field, const void *d, size_t n) {
    put_varint(p, field << 3 | 2);
    put_varint(p, n);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void put_piece(pbuf *p, const char *text, float score, int type) {
    pbuf s = {{0}, 0};
    put_bytes(&s, 1, text, strlen(text));
    put_varint(&s, 2 << 3 | 5);
    memcpy(s.b + s.n, &score, 4);
    s.n += 4;
    if (type != 1) {
        put_varint(&s, 3 << 3);
        put_varint(&s, (uint64_t)type);
    }
    put_bytes(p, 1, s.b, s.n);
}

/* <unk> <s> </s> ▁ a b ▁a ▁ab, BPE, identity normalizer, no byte fallback. */
static size_t build_model(pbuf *p, int model_type) {
    p->n = 0;
    put_piece(p, "<unk>", 0, 2);
    put_piece(p, "<s>", 0, 3);
    put_piece(p, "</s>", 0, 3);
    put_piece(p, "\xe2\x96\x81", -3, 1);
    put_piece(p, "a", -4, 1);
    put_piece(p, "b", -5, 1);
    put_piece(p, "\xe2\x96\x81" "a", -1, 1);
    put_piece(p, "\xe2\x96\x81" "ab", -0.5f, 1);
    pbuf tr = {{0}, 0};
    put_varint(&tr, 3 << 3);
    put_varint(&tr, (uint64_t)model_type);
    put_bytes(p, 2, tr.b, tr.n);
    pbuf nm = {{0}, 0};
    put_bytes(&nm, 1, "identity", 8);
    put_varint(&nm, 3 << 3);
    put_varint(&nm, 1);
    put_varint(&nm, 4 << 3);
    put_varint(&nm, 0);
    put_bytes(p, 3, nm.b, nm.n);
    return p->n;
}

static void test_model(void) {
    lt_error err;
    lt_tokenizer *t = NULL;
    pbuf p;
    build_model(&p, 2);
    const char *path = tmp_path("tiny.model");
    CHECK(write_file(path, p.b, p.n), "write %s", path);
    OK(lt_tokenizer_load(path, 0, &t, &err));
    if (t) {
        CHECK(lt_tokenizer_vocab_size(t) == 8 && lt_tokenizer_bos(t) == 1 && lt_tokenizer_eos(t) == 2,
              "vocab %d bos %d eos %d", lt_tokenizer_vocab_size(t), (int)lt_tokenizer_bos(t),
              (int)lt_tokenizer_eos(t));
        expect_ids(t, "ab", 1, (const int32_t[]){1, 7}, 2);
        expect_ids(t, "ab a", 0, (const int32_t[]){7, 6}, 2);
        /* No byte fallback: an unknown character is <unk>, which decodes to nothing. */
        expect_ids(t, "acb", 0, (const int32_t[]){6, 0, 5}, 3);
        expect_decode(t, (const int32_t[]){1, 7, 6}, 3, "ab a");
    }
    lt_tokenizer_free(t);
    /* The vocabulary must fit the model's. */
    CHECK(lt_tokenizer_load(path, 4, &t, &err) == LT_ERR_FORMAT && strstr(err.msg, "vocab_size 4"),
          "vocab_size 4: %s", err.msg);
    /* A Unigram model of the same pieces: Viterbi picks ▁ab. */
    build_model(&p, 1);
    path = tmp_path("tiny_unigram.model");
    CHECK(write_file(path, p.b, p.n), "write %s", path);
    OK(lt_tokenizer_load(path, 0, &t, &err));
    if (t) {
        CHECK(strcmp(lt_tokenizer_kind(t), "sentencepiece-unigram") == 0, "kind %s", lt_tokenizer_kind(t));
        expect_ids(t, "ab ab", 0, (const int32_t[]){7, 7}, 2);
    }
    lt_tokenizer_free(t);

    /* Every truncation of a valid file: an error naming it, or (at a field
     * boundary) a loadable prefix -- never a crash or a read past the end. */
    size_t full = build_model(&p, 2), refused = 0;
    path = tmp_path("trunc.model");
    for (size_t n = 0; n < full; n++) {
        CHECK(write_file(path, p.b, n), "write %s", path);
        lt_error_clear(&err);
        lt_status st = lt_tokenizer_load(path, 0, &t, &err);
        if (st != LT_OK) {
            refused++;
            CHECK(strstr(err.msg, path) != NULL, "truncated at %zu: message lacks the path: %s", n, err.msg);
        }
        lt_tokenizer_free(t);
        t = NULL;
    }
    CHECK(refused > full / 2, "only %zu of %zu truncations refused", refused, full);
    printf("  %zu of %zu truncations refused, none crashed\n", refused, full);

    unsigned char bad[64];
    memset(bad, 0xFF, 12);
    bad[12] = 0x01;
    CHECK(write_file(path = tmp_path("varint.model"), bad, 13), "write");
    expect_fail("11-byte varint", path, LT_ERR_FORMAT, "varint");
    unsigned char past[] = {0x0A, 0x7F, 0x0A, 0x01, 'a'};
    CHECK(write_file(path = tmp_path("past.model"), past, sizeof past), "write");
    expect_fail("piece length past the end", path, LT_ERR_FORMAT, "127 bytes long");
    unsigned char wt[] = {0x0B};
    CHECK(write_file(path = tmp_path("group.model"), wt, sizeof wt), "write");
    expect_fail("wire type 3", path, LT_ERR_FORMAT, "wire type 3");
    unsigned char score_wt[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x10, 0x01};
    CHECK(write_file(path = tmp_path("score.model"), score_wt, sizeof score_wt), "write");
    expect_fail("score as a varint", path, LT_ERR_FORMAT, "score");
    build_model(&p, 3);
    CHECK(write_file(path = tmp_path("word.model"), p.b, p.n), "write");
    expect_fail("WORD model", path, LT_ERR_UNSUPPORTED, "WORD");
    CHECK(write_file(path = tmp_path("empty.model"), "", 0), "write");
    expect_fail("empty file", path, LT_ERR_FORMAT, "no pieces");
}

int main(int argc, char **argv) {
    int made = 0;
    if (argc > 1) {
        snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
        CHECK(mkdir(g_dir, 0700) == 0 || errno == EEXIST, "mkdir %s", g_dir);
    } else {
        snprintf(g_dir, sizeof g_dir, "/tmp/lt_test_tokenizer_formats_XXXXXX");
        made = mkdtemp(g_dir) != NULL;
        CHECK(made, "mkdtemp: %s", strerror(errno));
        if (!made) return check_exit_code();
    }
    test_pretok();
    test_json();
    test_model();
    return check_exit_code();
}
