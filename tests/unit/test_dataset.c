/* The data pipeline: token files, datasets (packing, masks, truncation,
 * holdout) and the loader (determinism, epochs, resume), on small files
 * written here and on the shipped corpora, plus every kind of bad input.
 *
 * usage: test_dataset TOK512_BIN DATA_DIR SCRATCH_DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "io/data/dataset.h"
#include "io/data/loader.h"
#include "io/data/token_file.h"
#include "io/fileutil.h"
#include "io/text/tokenizer.h"
#include "model/llama.h"
#include "tests/lib/check.h"

#define VOCAB 512

static const lt_tokenizer *g_tok;
static const char *g_data, *g_scratch;

/* ------------------------------------------------------------- helpers */

typedef struct {
    int32_t *v;
    size_t n;
} ids_t;

/* One tokenizer call over the whole text: what the dataset must reproduce. */
static ids_t enc(const char *s, size_t len, int bos, int eos) {
    ids_t r = {malloc((len + 3) * sizeof(int32_t)), 0};
    lt_error err;
    if (!r.v || lt_tokenizer_encode(g_tok, s, len, bos, eos, r.v, len + 3, &r.n, &err) != LT_OK) {
        fprintf(stderr, "encode failed\n");
        exit(1);
    }
    return r;
}

static ids_t encs(const char *s, int bos, int eos) { return enc(s, strlen(s), bos, eos); }

static char *spath(const char *name) {
    size_t n = strlen(g_scratch) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_scratch, name);
    return p;
}

static char *dpath(const char *rel) {
    size_t n = strlen(g_data) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_data, rel);
    return p;
}

static char *write_bytes(const char *name, const void *data, size_t len) {
    char *p = spath(name);
    FILE *f = fopen(p, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    return p;
}

static char *write_text(const char *name, const char *text) {
    return write_bytes(name, text, strlen(text));
}

static lt_data_config cfg_t(int T) {
    lt_data_config c = lt_data_config_defaults();
    c.seq_len = T;
    return c;
}

/* Expects a failure with code whose message contains every given piece. */
static void expect_fail(lt_status st, const lt_error *err, lt_status code, const char *what,
                        const char *a, const char *b) {
    CHECK(st == code, "%s: status %s, expected %s (message: %s)", what, lt_status_name(st),
          lt_status_name(code), st == LT_OK ? "none" : err->msg);
    if (st == LT_OK) return;
    CHECK(!a || strstr(err->msg, a), "%s: message \"%s\" should contain \"%s\"", what, err->msg, a);
    CHECK(!b || strstr(err->msg, b), "%s: message \"%s\" should contain \"%s\"", what, err->msg, b);
    CHECK(strchr(err->msg, '\n') == NULL, "%s: message is more than one line: %s", what, err->msg);
    printf("  %-34s -> %s\n", what, err->msg);
}

static lt_status load(const char *path, const lt_data_config *c, lt_dataset **tr, lt_dataset **ho,
                      lt_error *err) {
    return lt_dataset_load(path, g_tok, VOCAB, c, tr, ho, err);
}

/* Row i of ds into freshly allocated arrays. */
static void get_row(const lt_dataset *ds, size_t i, int32_t **in, int32_t **tg) {
    size_t T = (size_t)lt_dataset_seq_len(ds);
    *in = malloc(T * sizeof(int32_t));
    *tg = malloc(T * sizeof(int32_t));
    lt_dataset_row(ds, i, *in, *tg);
}

static int rows_equal(const lt_dataset *a, size_t i, const lt_dataset *b, size_t j) {
    int32_t *ia, *ta, *ib, *tb;
    get_row(a, i, &ia, &ta);
    get_row(b, j, &ib, &tb);
    size_t T = (size_t)lt_dataset_seq_len(a);
    int eq = lt_dataset_seq_len(b) == (int)T && !memcmp(ia, ib, T * 4) && !memcmp(ta, tb, T * 4);
    free(ia), free(ta), free(ib), free(tb);
    return eq;
}

/* Packed rows against a token stream and its loss mask (NULL: all). */
static int check_windows(const lt_dataset *ds, const int32_t *s, const uint8_t *mask, size_t n) {
    const size_t T = (size_t)lt_dataset_seq_len(ds);
    int bad = 0;
    int32_t *in = malloc(T * 4), *tg = malloc(T * 4);
    for (size_t k = 0; k < lt_dataset_rows(ds) && !bad; k++) {
        lt_dataset_row(ds, k, in, tg);
        for (size_t j = 0; j < T; j++) {
            size_t p = k * T + j;
            int32_t want_t = !mask || mask[p + 1] ? s[p + 1] : LT_IGNORE_INDEX;
            if (p + 1 >= n || in[j] != s[p] || tg[j] != want_t) {
                fprintf(stderr, "  window %zu position %zu: input %d target %d, expected %d %d\n",
                        k, j, in[j], tg[j], s[p], want_t);
                bad = 1;
                break;
            }
        }
    }
    free(in), free(tg);
    return !bad;
}

/* ------------------------------------------------------------- packing */

static int test_text_packing(void) {
    lt_error err;
    const char *text = "The quick brown fox jumps over the lazy dog.\nOnce upon a time there was a "
                       "little girl named Lily.\nShe liked to play outside in the sun.\n";
    char *p = write_text("small.txt", text);
    ids_t want = encs(text, 1, 0);
    for (int T = 1; T <= 40; T += 13) {
        lt_data_config c = cfg_t(T);
        lt_dataset *ds = NULL;
        CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
        CHECK(lt_dataset_rows(ds) == (want.n - 1) / (size_t)T, "T=%d: %zu windows, expected %zu", T,
              lt_dataset_rows(ds), (want.n - 1) / (size_t)T);
        CHECK(lt_dataset_seq_len(ds) == T, "seq_len");
        CHECK(lt_dataset_target_tokens(ds) == (int64_t)(lt_dataset_rows(ds) * (size_t)T),
              "T=%d: every packed text target counts", T);
        CHECK(want.v[0] == LT_TOKEN_BOS, "text starts with BOS");
        CHECK(check_windows(ds, want.v, NULL, want.n), "T=%d: windows are the shifted stream", T);
        lt_dataset_free(ds);
    }

    /* The real corpus, encoded by the dataset in pieces, equals one call. */
    char *shake = dpath("tinyshakespeare/input.txt");
    char *buf = NULL;
    uint64_t len = 0;
    CHECK_OK(lt_read_file(shake, 1u << 26, &buf, &len, &err), &err);
    double t0 = lt_now_s();
    ids_t all = enc(buf, (size_t)len, 1, 0);
    double t_one = lt_now_s() - t0;
    lt_data_config c = cfg_t(256);
    lt_dataset *ds = NULL;
    t0 = lt_now_s();
    CHECK_OK(load(shake, &c, &ds, NULL, &err), &err);
    double t_load = lt_now_s() - t0;
    CHECK(lt_dataset_rows(ds) == (all.n - 1) / 256, "tinyshakespeare: %zu windows, expected %zu",
          lt_dataset_rows(ds), (all.n - 1) / 256);
    CHECK(check_windows(ds, all.v, NULL, all.n), "tinyshakespeare windows equal one encode call");
    printf("tinyshakespeare: %llu bytes, %zu tokens (BOS included), %zu windows at T=256, "
           "%lld target tokens; one encode call %.3f s, dataset load %.3f s\n",
           (unsigned long long)len, all.n, lt_dataset_rows(ds),
           (long long)lt_dataset_target_tokens(ds), t_one, t_load);
    lt_dataset_free(ds);
    free(buf), free(all.v), free(shake), free(want.v), free(p);
    return 0;
}

/* Builds the expected record stream of a JSONL set: BOS + enc + EOS per
 * record with the prompt's common prefix masked. */
typedef struct {
    int32_t *ids;
    uint8_t *mask;
    size_t n, cap;
    size_t off[64];
    size_t nrec;
} expect_t;

static void expect_add(expect_t *e, const char *prompt, const char *completion) {
    size_t lp = strlen(prompt), lc = completion ? strlen(completion) : 0;
    char *full = malloc(lp + lc + 1);
    memcpy(full, prompt, lp);
    if (completion) memcpy(full + lp, completion, lc);
    full[lp + lc] = 0;
    ids_t f = enc(full, lp + lc, 1, 1);
    size_t L = 1;
    if (completion) {
        ids_t pr = enc(prompt, lp, 1, 0);
        L = 0;
        while (L < pr.n && L < f.n && pr.v[L] == f.v[L]) L++;
        free(pr.v);
    }
    if (e->n + f.n > e->cap) {
        e->cap = 2 * (e->n + f.n);
        e->ids = realloc(e->ids, e->cap * 4);
        e->mask = realloc(e->mask, e->cap);
    }
    e->off[e->nrec++] = e->n;
    for (size_t i = 0; i < f.n; i++) {
        e->ids[e->n + i] = f.v[i];
        e->mask[e->n + i] = i >= L;
    }
    e->n += f.n;
    e->off[e->nrec] = e->n;
    free(f.v), free(full);
}

static int64_t expect_targets(const expect_t *e) {
    int64_t t = 0;
    for (size_t r = 0; r < e->nrec; r++)
        for (size_t i = e->off[r] + 1; i < e->off[r + 1]; i++) t += e->mask[i];
    return t;
}

/* Unpacked row r against the expected record r. */
static int check_record_row(const lt_dataset *ds, size_t r, const expect_t *e, size_t rec) {
    const size_t T = (size_t)lt_dataset_seq_len(ds);
    int32_t *in, *tg;
    get_row(ds, r, &in, &tg);
    const size_t s = e->off[rec], n = e->off[rec + 1] - s;
    const size_t keep = n < T + 1 ? n : T + 1;
    int ok = 1;
    for (size_t j = 0; j < T && ok; j++) {
        int32_t wi = j + 1 < keep ? e->ids[s + j] : 0;
        int32_t wt = j + 1 < keep && e->mask[s + j + 1] ? e->ids[s + j + 1] : LT_IGNORE_INDEX;
        if (in[j] != wi || tg[j] != wt) {
            fprintf(stderr, "  row %zu position %zu: input %d target %d, expected %d %d\n", r, j,
                    in[j], tg[j], wi, wt);
            ok = 0;
        }
    }
    free(in), free(tg);
    return ok;
}

static int test_jsonl_text(void) {
    lt_error err;
    char *p = write_text("text.jsonl", "{\"text\": \"Once upon a time\"}\n"
                                       "\n"
                                       "   \n"
                                       "{\"id\": 7, \"text\": \"The cat sat.\"}\r\n"
                                       "{\"text\": \"A caf\\u00e9 \\ud83d\\ude00 ok\"}");
    expect_t e = {0};
    expect_add(&e, "Once upon a time", NULL);
    expect_add(&e, "The cat sat.", NULL);
    expect_add(&e, "A caf\xc3\xa9 \xf0\x9f\x98\x80 ok", NULL);
    lt_data_config c = cfg_t(24);
    lt_dataset *ds = NULL;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == 3, "3 records (blank lines skipped), got %zu",
          lt_dataset_rows(ds));
    for (size_t r = 0; r < 3 && r < lt_dataset_rows(ds); r++)
        CHECK(check_record_row(ds, r, &e, r), "record %zu: BOS ... EOS, right-padded", r);
    CHECK(lt_dataset_target_tokens(ds) == expect_targets(&e), "targets %lld, expected %lld",
          (long long)lt_dataset_target_tokens(ds), (long long)expect_targets(&e));
    /* Spelled out once: the first row starts with BOS and ends with EOS, then padding. */
    int32_t *in, *tg;
    get_row(ds, 0, &in, &tg);
    size_t n0 = e.off[1] - e.off[0];
    CHECK(in[0] == LT_TOKEN_BOS && tg[n0 - 2] == LT_TOKEN_EOS && in[n0 - 1] == 0 &&
              tg[n0 - 1] == LT_IGNORE_INDEX && tg[23] == LT_IGNORE_INDEX && in[23] == 0,
          "row 0 layout: BOS first, EOS last target, then input 0 / ignored");
    free(in), free(tg);
    lt_dataset_free(ds);

    /* Packed: the same records back to back, windows cut across them. */
    c.packing = 1;
    c.seq_len = 5;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == (e.n - 1) / 5, "packed JSONL: %zu windows, expected %zu",
          lt_dataset_rows(ds), (e.n - 1) / 5);
    CHECK(check_windows(ds, e.ids, e.mask, e.n), "packed JSONL windows carry the masks");
    lt_dataset_free(ds);
    free(e.ids), free(e.mask), free(p);
    return 0;
}

static int test_prompt_completion(void) {
    lt_error err;
    /* Record 2's boundary falls inside a word, so the prompt's last token
     * and the full text's differ: only the common prefix is masked. */
    const char *P[3] = {"Q: what is the sky?\nA:", "Once upon a ti", ""};
    const char *C[3] = {" The sky is blue.", "me there was a dog", "Just a completion."};
    char *p = write_text(
        "pc.jsonl",
        "{\"prompt\": \"Q: what is the sky?\\nA:\", \"completion\": \" The sky is blue.\"}\n"
        "{\"completion\": \"me there was a dog\", \"prompt\": \"Once upon a ti\"}\n"
        "{\"prompt\": \"\", \"completion\": \"Just a completion.\", \"x\": [1]}\n");
    expect_t e = {0};
    for (int i = 0; i < 3; i++) expect_add(&e, P[i], C[i]);
    lt_data_config c = cfg_t(40);
    lt_dataset *ds = NULL;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == 3, "3 rows, got %zu", lt_dataset_rows(ds));
    for (size_t r = 0; r < 3 && r < lt_dataset_rows(ds); r++)
        CHECK(check_record_row(ds, r, &e, r), "record %zu: prompt masked", r);
    CHECK(lt_dataset_target_tokens(ds) == expect_targets(&e), "targets %lld, expected %lld",
          (long long)lt_dataset_target_tokens(ds), (long long)expect_targets(&e));

    /* Record 0 spelled out: the prompt tokens are exactly a prefix here. */
    ids_t pr = encs(P[0], 1, 0);
    int32_t *in, *tg;
    get_row(ds, 0, &in, &tg);
    int prefix = 1;
    for (size_t j = 0; j < pr.n; j++) prefix &= in[j] == pr.v[j];
    CHECK(prefix, "record 0: the row's inputs start with BOS + encode(prompt)");
    int masked = 1;
    for (size_t j = 0; j + 1 < pr.n; j++) masked &= tg[j] == LT_IGNORE_INDEX;
    CHECK(masked, "record 0: every target inside the prompt is ignored");
    ids_t full = encs("Q: what is the sky?\nA: The sky is blue.", 1, 1);
    CHECK(tg[pr.n - 1] == full.v[pr.n] && tg[pr.n - 1] != LT_IGNORE_INDEX,
          "record 0: the first completion token is predicted from the last prompt token");
    CHECK(tg[full.n - 2] == LT_TOKEN_EOS && tg[full.n - 1] == LT_IGNORE_INDEX &&
              in[full.n - 1] == 0,
          "record 0: EOS is the last target, then padding");
    size_t nt = 0;
    for (size_t j = 0; j < 40; j++) nt += tg[j] != LT_IGNORE_INDEX;
    CHECK(nt == full.n - pr.n, "record 0: %zu targets, expected completion + EOS = %zu", nt,
          full.n - pr.n);
    free(in), free(tg), free(pr.v), free(full.v);

    /* Record 1: the merged boundary token is masked (the common prefix is shorter). */
    ids_t p1 = encs(P[1], 1, 0);
    size_t L1 = 0;
    while (L1 < p1.n && e.ids[e.off[1] + L1] == p1.v[L1]) L1++;
    CHECK(L1 < p1.n, "record 1 is meant to merge across the boundary (common prefix %zu of %zu)",
          L1, p1.n);
    printf("prompt/completion: a boundary inside a word masks %zu of the prompt's %zu tokens\n", L1,
           p1.n);
    free(p1.v);
    lt_dataset_free(ds);

    /* Packed, same masks. */
    c.packing = 1;
    c.seq_len = 7;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    CHECK(check_windows(ds, e.ids, e.mask, e.n), "packed prompt/completion windows");
    lt_dataset_free(ds);
    free(e.ids), free(e.mask), free(p);
    return 0;
}

static int test_response_template(void) {
    lt_error err;
    char *pt = write_text("tpl.jsonl", "{\"text\": \"### Q: hi there\\n### A: hello friend\"}\n"
                                       "{\"text\": \"x ### A: one ### A: two\"}\n");
    char *pp =
        write_text("tpl_pc.jsonl",
                   "{\"prompt\": \"### Q: hi there\\n### A:\", \"completion\": \" hello friend\"}\n"
                   "{\"prompt\": \"x ### A:\", \"completion\": \" one ### A: two\"}\n");
    lt_data_config c = cfg_t(32);
    c.response_template = "### A:";
    lt_dataset *a = NULL, *b = NULL;
    CHECK_OK(load(pt, &c, &a, NULL, &err), &err);
    CHECK_OK(load(pp, &c, &b, NULL, &err), &err);
    CHECK(lt_dataset_rows(a) == 2 && lt_dataset_rows(b) == 2, "2 rows each");
    for (size_t r = 0; r < 2; r++)
        CHECK(rows_equal(a, r, b, r), "row %zu: template split == prompt/completion split", r);
    CHECK(lt_dataset_target_tokens(a) == lt_dataset_target_tokens(b), "same target count");
    lt_dataset_free(a), lt_dataset_free(b);

    char *bad =
        write_text("tpl_bad.jsonl", "{\"text\": \"### A: fine\"}\n{\"text\": \"no marker\"}\n");
    lt_status st = load(bad, &c, &a, NULL, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "template missing on line 2", "tpl_bad.jsonl", "line 2:");
    char *empty = write_text("tpl_empty.jsonl", "{\"text\": \"q ### A:\"}\n");
    st = load(empty, &c, &a, NULL, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "nothing after the template", "tpl_empty.jsonl",
                "line 1:");
    char *txt = write_text("tpl.txt", "plain text ### A: here\n");
    st = load(txt, &c, &a, NULL, &err);
    expect_fail(st, &err, LT_ERR_CONFIG, "template on plain text", "tpl.txt", "response_template");
    free(pt), free(pp), free(bad), free(empty), free(txt);
    return 0;
}

static int test_truncation(void) {
    lt_error err;
    const char *longtext = "One day a little boy named Tim went to the park with his mom and dad.";
    char *p = write_text("long.jsonl", "{\"text\": \"short\"}\n{\"text\": \"One day a little boy "
                                       "named Tim went to the park with his mom and dad.\"}\n");
    ids_t full = encs(longtext, 1, 1);
    const int T = 8;
    CHECK(full.n > (size_t)T + 1, "the long record (%zu tokens) exceeds T+1", full.n);
    lt_data_config c = cfg_t(T);
    lt_dataset *ds = NULL;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    int32_t *in, *tg;
    get_row(ds, 1, &in, &tg);
    int ok = 1;
    for (int j = 0; j < T; j++) ok &= in[j] == full.v[j] && tg[j] == full.v[j + 1];
    CHECK(ok, "truncated row: the first T+1 tokens, no EOS");
    CHECK(tg[T - 1] != LT_TOKEN_EOS, "the EOS is cut off");
    free(in), free(tg);
    ids_t shortr = encs("short", 1, 1);
    CHECK(lt_dataset_target_tokens(ds) == (int64_t)(shortr.n - 1 + T), "targets %lld, expected %zu",
          (long long)lt_dataset_target_tokens(ds), shortr.n - 1 + T);
    lt_dataset_free(ds);

    c.truncate = 0;
    lt_status st = load(p, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "too long without truncation", "long.jsonl", "line 2:");
    c.seq_len = (int)full.n - 1;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == 2, "a record of exactly T+1 tokens fits");
    lt_dataset_free(ds);

    /* A prompt that fills all T+1 tokens leaves nothing after truncation. */
    char *q = write_text("longprompt.jsonl",
                         "{\"prompt\": \"One day a little boy named Tim went to the park\", "
                         "\"completion\": \" and played.\"}\n");
    c = cfg_t(T);
    st = load(q, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "prompt longer than T+1", "longprompt.jsonl", "line 1:");
    free(p), free(q), free(full.v), free(shortr.v);
    return 0;
}

static int test_holdout(void) {
    lt_error err;
    char *shake = dpath("tinyshakespeare/input.txt");
    lt_data_config c = cfg_t(128);
    lt_dataset *all = NULL, *tr = NULL, *ho = NULL, *tr2 = NULL;
    CHECK_OK(load(shake, &c, &all, NULL, &err), &err);
    c.holdout_fraction = 0.1;
    CHECK_OK(load(shake, &c, &tr, &ho, &err), &err);
    const size_t R = lt_dataset_rows(all), nh = lt_dataset_rows(ho), nt = lt_dataset_rows(tr);
    CHECK(nt + nh == R, "holdout complete: %zu + %zu == %zu", nt, nh, R);
    CHECK(nh == (size_t)((R + 9) / 10), "held-out windows %zu, expected ceil(0.1 * %zu)", nh, R);
    int ok = 1;
    for (size_t i = 0; i < nt; i++) ok &= rows_equal(tr, i, all, i);
    for (size_t i = 0; i < nh; i++) ok &= rows_equal(ho, i, all, nt + i);
    CHECK(ok, "train is the first windows, held-out the last");
    CHECK(lt_dataset_target_tokens(tr) + lt_dataset_target_tokens(ho) ==
              lt_dataset_target_tokens(all),
          "targets split without overlap");
    /* Dropping the held-out set gives the same training rows. */
    CHECK_OK(load(shake, &c, &tr2, NULL, &err), &err);
    CHECK(lt_dataset_rows(tr2) == nt, "heldout=NULL still holds the rows out");
    printf("holdout 0.1 of tinyshakespeare at T=128: %zu training windows, %zu held out\n", nt, nh);
    /* The last training target is the held-out set's first input: no target twice. */
    int32_t *in, *tg, *hin, *htg;
    get_row(tr, nt - 1, &in, &tg);
    get_row(ho, 0, &hin, &htg);
    CHECK(tg[127] == hin[0],
          "the sets meet at one token (a target on the left, an input on the right)");
    free(in), free(tg), free(hin), free(htg);
    lt_dataset_free(all), lt_dataset_free(tr), lt_dataset_free(ho), lt_dataset_free(tr2);

    /* Unpacked: by records. */
    char *p =
        write_text("five.jsonl", "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n"
                                 "{\"text\": \"four\"}\n{\"text\": \"five\"}\n");
    c = cfg_t(16);
    CHECK_OK(load(p, &c, &all, NULL, &err), &err);
    c.holdout_fraction = 0.3;
    CHECK_OK(load(p, &c, &tr, &ho, &err), &err);
    CHECK(lt_dataset_rows(tr) == 3 && lt_dataset_rows(ho) == 2,
          "5 records, 0.3: 3 + 2, got %zu + %zu", lt_dataset_rows(tr), lt_dataset_rows(ho));
    ok = 1;
    for (size_t i = 0; i < 3; i++) ok &= rows_equal(tr, i, all, i);
    for (size_t i = 0; i < 2; i++) ok &= rows_equal(ho, i, all, 3 + i);
    CHECK(ok, "records split in order");
    lt_dataset_free(all), lt_dataset_free(tr), lt_dataset_free(ho);

    /* 0.1 of 30 records is 3, although 0.1 * 30 is 3.0000000000000004. */
    char buf30[1024] = "";
    for (int i = 0; i < 30; i++) strcat(buf30, "{\"text\": \"some record\"}\n");
    char *p30 = write_text("thirty.jsonl", buf30);
    c.holdout_fraction = 0.1;
    CHECK_OK(load(p30, &c, &tr, &ho, &err), &err);
    CHECK(lt_dataset_rows(tr) == 27 && lt_dataset_rows(ho) == 3,
          "30 records, 0.1: 27 + 3, got %zu + %zu", lt_dataset_rows(tr), lt_dataset_rows(ho));
    lt_dataset_free(tr), lt_dataset_free(ho);
    free(p30);

    char *one = write_text("one.jsonl", "{\"text\": \"only one record\"}\n");
    c.holdout_fraction = 0.5;
    lt_status st = load(one, &c, &tr, &ho, &err);
    expect_fail(st, &err, LT_ERR_CONFIG, "holdout leaves train empty", "one.jsonl",
                "at least one row");
    c.holdout_fraction = 0.6;
    st = load(p, &c, &tr, &ho, &err);
    expect_fail(st, &err, LT_ERR_CONFIG, "holdout_fraction 0.6", "holdout_fraction", "0..0.5");
    free(shake), free(p), free(one);
    return 0;
}

/* ---------------------------------------------------------------- loader */

/* A dataset of R distinct rows and a way to tell which row a batch row is. */
typedef struct {
    lt_dataset *ds;
    size_t R, T;
    int32_t *rows; /* R x T inputs */
} rowtab;

static int row_index(const rowtab *t, const int32_t *in) {
    for (size_t r = 0; r < t->R; r++)
        if (!memcmp(t->rows + r * t->T, in, t->T * 4)) return (int)r;
    return -1;
}

static size_t draw(lt_loader *ld, const rowtab *t, int B, size_t nbatches, int *out) {
    int32_t *in = malloc((size_t)B * t->T * 4), *tg = malloc((size_t)B * t->T * 4);
    size_t k = 0;
    for (size_t b = 0; b < nbatches; b++) {
        lt_loader_next(ld, in, tg);
        for (int i = 0; i < B; i++) out[k++] = row_index(t, in + (size_t)i * t->T);
    }
    free(in), free(tg);
    return k;
}

static int is_perm(const int *v, size_t R) {
    int seen[64] = {0};
    for (size_t i = 0; i < R; i++) {
        if (v[i] < 0 || (size_t)v[i] >= R || seen[v[i]]) return 0;
        seen[v[i]] = 1;
    }
    return 1;
}

static int test_loader(void) {
    lt_error err;
    char buf[4096] = "";
    const size_t R = 10;
    for (size_t i = 0; i < R; i++) {
        char line[64];
        snprintf(line, sizeof line, "{\"text\": \"record number %zu\"}\n", i);
        strcat(buf, line);
    }
    char *p = write_text("ten.jsonl", buf);
    lt_data_config c = cfg_t(32);
    rowtab t = {0};
    CHECK_OK(load(p, &c, &t.ds, NULL, &err), &err);
    t.R = lt_dataset_rows(t.ds);
    t.T = 32;
    CHECK(t.R == R, "10 rows");
    t.rows = malloc(R * t.T * 4);
    int32_t tg[32];
    for (size_t r = 0; r < R; r++) lt_dataset_row(t.ds, r, t.rows + r * t.T, tg);
    for (size_t r = 0; r < R; r++)
        CHECK(row_index(&t, t.rows + r * t.T) == (int)r, "rows are distinct");

    const int B = 3;
    enum { NB = 20 }; /* 60 rows: 6 epochs */
    int a[NB * 3], b[NB * 3], d[NB * 3];
    lt_loader *la = NULL, *lb = NULL, *ld = NULL;
    CHECK_OK(lt_loader_create(t.ds, B, 1234, 1, &la, &err), &err);
    CHECK_OK(lt_loader_create(t.ds, B, 1234, 1, &lb, &err), &err);
    CHECK_OK(lt_loader_create(t.ds, B, 99, 1, &ld, &err), &err);
    CHECK(lt_loader_rows_per_epoch(la) == R, "rows per epoch");
    draw(la, &t, B, NB, a);
    draw(lb, &t, B, NB, b);
    draw(ld, &t, B, NB, d);
    CHECK(!memcmp(a, b, sizeof a), "same seed, same batches");
    CHECK(memcmp(a, d, sizeof a) != 0, "another seed, another order");
    int perms = 1, differ = 0;
    for (size_t e = 0; e < 6; e++) {
        perms &= is_perm(a + e * R, R);
        if (e && memcmp(a + e * R, a + (e - 1) * R, R * sizeof(int))) differ = 1;
    }
    CHECK(perms, "every epoch visits every row once");
    CHECK(differ, "epochs are shuffled differently");
    lt_data_cursor cur = lt_loader_cursor(la);
    CHECK(cur.epoch == 5 && cur.position == 10,
          "after 60 rows the cursor is (5, 10), got (%llu, %llu)", (unsigned long long)cur.epoch,
          (unsigned long long)cur.position);
    printf("loader: seed 1234, epoch 0 order:");
    for (size_t i = 0; i < R; i++) printf(" %d", a[i]);
    printf("\n");

    /* Resume: stop after 7 batches (mid-epoch, mid-wrap), seek a fresh loader there. */
    lt_loader *lr = NULL, *lc = NULL;
    CHECK_OK(lt_loader_create(t.ds, B, 1234, 1, &lr, &err), &err);
    int first[7 * 3], rest[13 * 3];
    draw(lr, &t, B, 7, first);
    lt_data_cursor saved = lt_loader_cursor(lr);
    CHECK(saved.epoch == 2 && saved.position == 1,
          "cursor after 21 rows is (2, 1), got (%llu, %llu)", (unsigned long long)saved.epoch,
          (unsigned long long)saved.position);
    CHECK_OK(lt_loader_create(t.ds, B, 1234, 1, &lc, &err), &err);
    CHECK_OK(lt_loader_seek(lc, saved, &err), &err);
    draw(lc, &t, B, 13, rest);
    CHECK(!memcmp(first, a, sizeof first), "the interrupted run's first batches");
    CHECK(!memcmp(rest, a + 21, sizeof rest), "seek/resume equals the uninterrupted run");
    /* A cursor at the end of an epoch resumes with the next one. */
    lt_data_cursor end = {3, R};
    CHECK_OK(lt_loader_seek(lc, end, &err), &err);
    int e4[3];
    draw(lc, &t, B, 1, e4);
    CHECK(!memcmp(e4, a + 40, sizeof e4), "(3, R) continues with epoch 4");
    lt_data_cursor badc = {0, R + 1};
    lt_status st = lt_loader_seek(lc, badc, &err);
    expect_fail(st, &err, LT_ERR_INVALID, "seek past the epoch", "position 11", NULL);

    /* No shuffle: identity order, wrapping mid-batch. */
    lt_loader *li = NULL;
    CHECK_OK(lt_loader_create(t.ds, 4, 1234, 0, &li, &err), &err);
    int id[4 * 6];
    draw(li, &t, 4, 6, id);
    int ident = 1;
    for (int i = 0; i < 24; i++) ident &= id[i] == i % 10;
    CHECK(ident, "shuffle=0 gives 0..R-1 repeated");
    /* A batch larger than an epoch spans epochs. */
    lt_loader *lbig = NULL;
    CHECK_OK(lt_loader_create(t.ds, 25, 7, 1, &lbig, &err), &err);
    int big[25];
    draw(lbig, &t, 25, 1, big);
    CHECK(is_perm(big, 10) && is_perm(big + 10, 10),
          "batch of 25 over 10 rows: two whole epochs first");
    cur = lt_loader_cursor(lbig);
    CHECK(cur.epoch == 2 && cur.position == 5, "then (2, 5)");
    lt_loader *lzero = NULL;
    st = lt_loader_create(t.ds, 0, 1, 1, &lzero, &err);
    CHECK(st == LT_ERR_CONFIG && lzero == NULL, "batch_size 0 is refused");

    lt_loader_free(la), lt_loader_free(lb), lt_loader_free(ld), lt_loader_free(lr);
    lt_loader_free(lc), lt_loader_free(li), lt_loader_free(lbig);
    lt_dataset_free(t.ds);
    free(t.rows), free(p);
    return 0;
}

/* The distributed sampler: rank r of N taking rows [r b, (r + 1) b) of
 * each global batch of N b gets exactly those rows of what one loader of
 * N b takes, and every rank sees the whole batch's target count. Prompt /
 * completion records of varying length, so rows differ in their targets. */
static int test_distributed_sampler(void) {
    lt_error err;
    char buf[8192] = "";
    for (int i = 0; i < 13; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"prompt\": \"Q%d: %.*s\", \"completion\": \" answer %.*s\"}\n", i,
                 1 + i % 5, "abcdefgh", 1 + (i * 3) % 7, "xyzxyzxyz");
        strcat(buf, line);
    }
    char *p = write_text("dist.jsonl", buf);
    lt_data_config c = cfg_t(24);
    lt_dataset *ds = NULL;
    CHECK_OK(load(p, &c, &ds, NULL, &err), &err);
    const int T = 24, b = 2;
    for (int N = 2; N <= 3; N++) {
        const int G = N * b;
        lt_loader *whole = NULL, *part[3] = {NULL, NULL, NULL};
        CHECK_OK(lt_loader_create(ds, G, 5, 1, &whole, &err), &err);
        for (int r = 0; r < N; r++) CHECK_OK(lt_loader_create(ds, G, 5, 1, &part[r], &err), &err);
        int32_t *wi = malloc((size_t)G * T * 4), *wt = malloc((size_t)G * T * 4);
        int32_t *pi = malloc((size_t)b * T * 4), *pt = malloc((size_t)b * T * 4);
        int same = 1, counts = 1;
        for (int step = 0; step < 9; step++) { /* 9 x G rows: several epochs, batches across ends */
            lt_loader_next(whole, wi, wt);
            const int64_t want = lt_count_targets(wt, (int64_t)G * T);
            for (int r = 0; r < N; r++) {
                int64_t got = -1;
                lt_loader_next_part(part[r], r * b, b, pi, pt, &got);
                same &= !memcmp(pi, wi + (size_t)r * b * T, (size_t)b * T * 4) &&
                        !memcmp(pt, wt + (size_t)r * b * T, (size_t)b * T * 4);
                counts &= got == want;
            }
        }
        CHECK(same, "%d ranks: a rank's part differs from its rows of the global batch", N);
        CHECK(counts, "%d ranks: a rank's count of the global batch's targets is wrong", N);
        lt_data_cursor a = lt_loader_cursor(whole), z = lt_loader_cursor(part[N - 1]);
        CHECK(a.epoch == z.epoch && a.position == z.position, "%d ranks: cursors part ways", N);
        lt_loader_free(whole);
        for (int r = 0; r < N; r++) lt_loader_free(part[r]);
        free(wi), free(wt), free(pi), free(pt);
    }
    lt_dataset_free(ds);
    free(p);
    return 0;
}

/* ----------------------------------------------------------- token files */

static char *mutate(const char *src, const char *name, long at, const void *bytes, size_t n,
                    long new_size) {
    char *data = NULL;
    uint64_t len = 0;
    lt_error err;
    if (lt_read_file(src, 1u << 26, &data, &len, &err) != LT_OK) exit(1);
    size_t size = new_size >= 0 ? (size_t)new_size : (size_t)len;
    char *out = calloc(size + 1, 1);
    memcpy(out, data, size < len ? size : (size_t)len);
    if (at >= 0) memcpy(out + at, bytes, n);
    char *p = write_bytes(name, out, size);
    free(data), free(out);
    return p;
}

static int test_token_files(void) {
    lt_error err;
    int32_t ids[300];
    for (int i = 0; i < 300; i++) ids[i] = (i * 37) % VOCAB;
    ids[0] = 0;
    ids[1] = VOCAB - 1;
    char *p16 = spath("t16.lttk");
    CHECK_OK(lt_token_file_write(p16, ids, 300, VOCAB, &err), &err);
    uint64_t size = 0;
    CHECK_OK(lt_file_size(p16, &size, &err), &err);
    CHECK(size == 24 + 2 * 300, "uint16 file is %llu bytes, expected %d", (unsigned long long)size,
          24 + 600);
    char tmpname[4200];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", p16, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0, "no temporary file is left behind");
    int32_t *back = NULL;
    size_t n = 0;
    CHECK_OK(lt_token_file_read(p16, VOCAB, &back, &n, &err), &err);
    CHECK(n == 300 && !memcmp(back, ids, sizeof ids), "uint16 round trip");
    lt_free(back);
    CHECK_OK(lt_token_file_read(p16, 1000, &back, &n, &err), &err); /* a larger model is fine */
    lt_free(back);

    /* uint32 for vocabularies past 65536. */
    int32_t big[5] = {0, 65535, 65536, 99999, 12345};
    char *p32 = spath("t32.lttk");
    CHECK_OK(lt_token_file_write(p32, big, 5, 100000, &err), &err);
    CHECK_OK(lt_file_size(p32, &size, &err), &err);
    CHECK(size == 24 + 4 * 5, "uint32 file is %llu bytes", (unsigned long long)size);
    CHECK_OK(lt_token_file_read(p32, 100000, &back, &n, &err), &err);
    CHECK(n == 5 && !memcmp(back, big, sizeof big), "uint32 round trip");
    lt_free(back);
    char *data = NULL;
    uint64_t len = 0;
    CHECK_OK(lt_read_file(p32, 1024, &data, &len, &err), &err);
    const unsigned char *h = (const unsigned char *)data;
    CHECK(!memcmp(h, "LTTK", 4) && h[4] == 1 && h[8] == 4 && h[12] == 0xA0 && h[13] == 0x86 &&
              h[14] == 1 && h[16] == 5 && h[28] == 0xFF && h[29] == 0xFF && h[30] == 0 &&
              h[32] == 0 && h[34] == 1,
          "header and ids little-endian as documented");
    free(data);
    lt_status st = lt_token_file_read(p32, 65536, &back, &n, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "header vocab > model vocab", "t32.lttk", "vocab_size");

    /* Writing an id out of range fails and leaves nothing. */
    char *pbad = spath("never.lttk");
    ids[5] = VOCAB;
    st = lt_token_file_write(pbad, ids, 300, VOCAB, &err);
    expect_fail(st, &err, LT_ERR_INVALID, "write: id out of range", "token 5", NULL);
    CHECK(access(pbad, F_OK) != 0, "no file after a refused write");
    ids[5] = 3;

    /* Corrupt variants of the uint16 file. */
    const uint8_t two[4] = {2, 0, 0, 0}, three[4] = {3, 0, 0, 0}, v1024[4] = {0, 4, 0, 0};
    const uint8_t tok600[2] = {0x58, 0x02};
    struct {
        const char *name, *what, *needle;
        long at;
        const void *bytes;
        size_t n;
        long size;
    } bad[] = {
        {"bad_magic.lttk", "bad magic", "magic", 0, "LTTX", 4, -1},
        {"bad_version.lttk", "wrong version", "version is 2", 4, two, 4, -1},
        {"bad_dtype.lttk", "dtype 3", "dtype is 3", 8, three, 4, -1},
        {"bad_vocab.lttk", "header vocab 1024 > 512", "vocab_size is 1024", 12, v1024, 4, -1},
        {"truncated.lttk", "truncated body", "token count is 300", -1, NULL, 0, 24 + 599},
        {"extra.lttk", "extra bytes", "token count is 300", -1, NULL, 0, 24 + 601},
        {"short_header.lttk", "shorter than the header", "header", -1, NULL, 0, 10},
        {"range.lttk", "token out of range", "token 7 (byte 38) is 600", 24 + 14, tok600, 2, -1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *q = mutate(p16, bad[i].name, bad[i].at, bad[i].bytes, bad[i].n, bad[i].size);
        back = NULL;
        st = lt_token_file_read(q, VOCAB, &back, &n, &err);
        expect_fail(st, &err, LT_ERR_FORMAT, bad[i].what, bad[i].name, bad[i].needle);
        CHECK(back == NULL && n == 0, "%s: no ids returned", bad[i].what);
        /* The dataset loader recognises the magic and reports the same. */
        if (bad[i].at != 0) {
            lt_dataset *ds = NULL;
            lt_data_config c = cfg_t(8);
            st = load(q, &c, &ds, NULL, &err);
            CHECK(st == LT_ERR_FORMAT && strstr(err.msg, bad[i].name), "%s via dataset: %s",
                  bad[i].what, err.msg);
        }
        free(q);
    }

    /* A text corpus through a token file trains on exactly the same rows. */
    char *shake = dpath("tinyshakespeare/input.txt");
    int32_t *stream = NULL;
    CHECK_OK(lt_dataset_tokenize_stream(shake, g_tok, &stream, &n, &err), &err);
    char *ptk = spath("shakespeare.lttk");
    CHECK_OK(lt_token_file_write(ptk, stream, n, VOCAB, &err), &err);
    lt_free(stream);
    lt_data_config c = cfg_t(256);
    lt_dataset *a = NULL, *b = NULL;
    CHECK_OK(load(shake, &c, &a, NULL, &err), &err);
    CHECK_OK(lt_dataset_load(ptk, NULL, VOCAB, &c, &b, NULL, &err), &err);
    CHECK(lt_dataset_rows(a) == lt_dataset_rows(b), "token file rows %zu vs text %zu",
          lt_dataset_rows(b), lt_dataset_rows(a));
    int ok = 1;
    for (size_t i = 0; i < lt_dataset_rows(a) && ok; i++) ok &= rows_equal(a, i, b, i);
    CHECK(ok, "token file rows == text rows");
    CHECK_OK(lt_file_size(ptk, &size, &err), &err);
    printf("tinyshakespeare token file: %llu bytes (uint16) for %zu tokens\n",
           (unsigned long long)size, n);
    lt_dataset_free(a), lt_dataset_free(b);
    c.packing = 0;
    st = lt_dataset_load(ptk, NULL, VOCAB, &c, &a, NULL, &err);
    expect_fail(st, &err, LT_ERR_CONFIG, "token file with packing=0", "shakespeare.lttk",
                "packing");

    /* JSONL through tokenize: records back to back. */
    char *pj =
        write_text("two.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\", \"completion\": \"d\"}\n");
    CHECK_OK(lt_dataset_tokenize_stream(pj, g_tok, &stream, &n, &err), &err);
    ids_t r1 = encs("ab", 1, 1), r2 = encs("cd", 1, 1);
    CHECK(n == r1.n + r2.n && !memcmp(stream, r1.v, r1.n * 4) &&
              !memcmp(stream + r1.n, r2.v, r2.n * 4),
          "tokenize JSONL: BOS ... EOS per record");
    lt_free(stream), free(r1.v), free(r2.v);
    free(p16), free(p32), free(pbad), free(shake), free(ptk), free(pj);
    return 0;
}

/* ------------------------------------------------------------ bad input */

static int test_bad_input(void) {
    lt_error err;
    lt_dataset *ds = NULL;
    lt_data_config c = cfg_t(8);
    lt_status st;
    struct {
        const char *name, *content, *what, *a, *b;
        lt_status code;
        int packing;
    } cases[] = {
        {"empty.txt", "", "empty text file", "empty.txt", "empty", LT_ERR_FORMAT, -1},
        {"empty.jsonl", "", "empty JSONL file", "empty.jsonl", "empty", LT_ERR_FORMAT, -1},
        {"blank.jsonl", "\n  \n\n", "only blank lines", "blank.jsonl", "no records", LT_ERR_FORMAT,
         -1},
        {"utf8.txt", "line one\nline two\nbad \xff here\n", "invalid UTF-8 in text", "utf8.txt",
         "line 3 column 5", LT_ERR_FORMAT, -1},
        {"utf8_overlong.txt", "ok\n\xc0\xaf\n", "overlong UTF-8", "utf8_overlong.txt",
         "line 2 column 1", LT_ERR_FORMAT, -1},
        {"utf8_surrogate.txt", "ok \xed\xa0\x80\n", "UTF-8 surrogate", "utf8_surrogate.txt",
         "line 1 column 4", LT_ERR_FORMAT, -1},
        {"utf8_cut.txt", "end \xe2\x82", "UTF-8 cut at the end", "utf8_cut.txt", "line 1 column 5",
         LT_ERR_FORMAT, -1},
        {"utf8.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"bad \xfe\"}\n", "invalid UTF-8 in JSONL",
         "utf8.jsonl:2:15: invalid UTF-8 byte 0xFE", "(expected UTF-8 text)", LT_ERR_FORMAT, -1},
        {"json.jsonl", "{\"text\": \"a\"}\n\n{\"text\": \"b\"}\n{\"text\": \"c\",}\n",
         "invalid JSON on line 4", "json.jsonl:4:13: trailing comma", "(expected", LT_ERR_FORMAT, -1},
        {"trailing.jsonl", "{\"text\": \"a\"} {\"text\": \"b\"}\n", "two objects on a line",
         "trailing.jsonl:1:15: '{' after the JSON value", "(expected the end of the text)", LT_ERR_FORMAT, -1},
        {"array.jsonl", "[\n{\"text\": \"a\"}\n]\n", "a JSON array file", "array.jsonl:1:2: end of text", NULL,
         LT_ERR_FORMAT, -1},
        {"notobj.jsonl", "{\"text\": \"a\"}\n\"just a string\"\n", "a line that is not an object",
         "notobj.jsonl", "line 2: the line is a string, expected a JSON object", LT_ERR_FORMAT, -1},
        /* the report's record: cJSON turned \uZZZZ into a NUL and cut the text there */
        {"escape.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"bad \\uZZZZ escape and a long tail\"}\n",
         "invalid \\u escape", "escape.jsonl:2:15: invalid escape \"\\uZZZZ\"", "(expected \\u and 4 hex digits)",
         LT_ERR_FORMAT, -1},
        {"escape2.jsonl", "{\"text\": \"a\\qb\"}\n", "invalid escape", "escape2.jsonl:1:12: invalid escape", NULL,
         LT_ERR_FORMAT, -1},
        {"ctrl.jsonl", "{\"text\": \"a\tb\"}\n", "raw tab in a string", "ctrl.jsonl:1:12: unescaped control character U+0009",
         NULL, LT_ERR_FORMAT, -1},
        {"dupkey.jsonl", "{\"text\": \"a\", \"text\": \"b\"}\n", "duplicate key", "dupkey.jsonl:1:15: duplicate key \"text\"",
         "the first is at line 1, column 2", LT_ERR_FORMAT, -1},
        {"surrogate.jsonl", "{\"text\": \"\\ud800 lone\"}\n", "lone surrogate escape",
         "surrogate.jsonl:1:11: unpaired UTF-16 surrogate", NULL, LT_ERR_FORMAT, -1},
        {"comment.jsonl", "{\"text\": \"a\"} // note\n", "comment after a record", "comment.jsonl:1:15: comment \"//\" after the JSON value",
         "(expected the end of the text; JSON has no comments)",
         LT_ERR_FORMAT, -1},
        /* one kind of record per file, named with the first record's line */
        {"mixed.jsonl", "{\"text\": \"a\"}\n{\"prompt\": \"b\", \"completion\": \" c\"}\n", "text, then prompt/completion",
         "mixed.jsonl line 2: a {\"prompt\", \"completion\"} record, but line 1 (the first record) is a {\"text\"} record",
         "one kind", LT_ERR_FORMAT, -1},
        {"mixed2.jsonl", "\n{\"prompt\": \"b\", \"completion\": \" c\"}\n\n{\"prompt\": \"d\", \"completion\": \" e\"}\n{\"text\": \"a\"}\n",
         "prompt/completion, then text", "mixed2.jsonl line 5: a {\"text\"} record, but line 2 (the first record) is a "
         "{\"prompt\", \"completion\"} record", NULL, LT_ERR_FORMAT, -1},
        {"mixed3.jsonl", "{\"text\": \"a\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n",
         "text, then a conversation", "mixed3.jsonl line 2: a {\"messages\"} record, but line 1", NULL, LT_ERR_FORMAT, -1},
        {"missing.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}\n", "missing field on line 2",
         "missing.jsonl", "line 2: field \"text\" is missing", LT_ERR_FORMAT, -1},
        {"missing_c.jsonl", "{\"prompt\": \"a\"}\n", "prompt without completion", "missing_c.jsonl",
         "field \"completion\" is missing", LT_ERR_FORMAT, -1},
        {"case.jsonl", "{\"Text\": \"a\"}\n", "field names are case-sensitive", "case.jsonl",
         "line 1: field \"text\" is missing", LT_ERR_FORMAT, -1},
        {"both.jsonl", "{\"text\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}\n",
         "text and prompt together", "both.jsonl", "line 1: has both", LT_ERR_FORMAT, -1},
        {"nonstring.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": 42}\n",
         "non-string field on line 3", "nonstring.jsonl", "line 3: field \"text\" is a number",
         LT_ERR_FORMAT, -1},
        {"nullc.jsonl", "{\"prompt\": \"a\", \"completion\": null}\n", "null completion",
         "nullc.jsonl", "field \"completion\" is null", LT_ERR_FORMAT, -1},
        {"nocompl.jsonl",
         "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"question\", \"completion\": "
         "\"\"}\n",
         "no completion tokens on line 2", "nocompl.jsonl", "line 2: the completion adds no tokens",
         LT_ERR_FORMAT, -1},
        {"emptytext.jsonl", "{\"text\": \"\"}\n", "empty text record", "emptytext.jsonl",
         "line 1: the text is empty", LT_ERR_FORMAT, -1},
        {"tiny.txt", "Hi", "text shorter than one window", "tiny.txt",
         "tokens, expected at least max_seq_length + 1 = 9", LT_ERR_FORMAT, -1},
        {"tiny2.jsonl", "{\"text\": \"Hi\"}\n", "packed JSONL shorter than one window",
         "tiny2.jsonl", "tokens, expected at least max_seq_length + 1 = 9", LT_ERR_FORMAT, 1},
        {"nopack.txt", "Some plain text that is long enough for a window or two.",
         "packing=0 on text", "nopack.txt", "packing is off", LT_ERR_CONFIG, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_text(cases[i].name, cases[i].content);
        c.packing = cases[i].packing;
        ds = NULL;
        st = load(p, &c, &ds, NULL, &err);
        expect_fail(st, &err, cases[i].code, cases[i].what, cases[i].a, cases[i].b);
        CHECK(ds == NULL, "%s: no dataset on failure", cases[i].what);
        lt_dataset_free(ds);
        free(p);
    }
    c.packing = -1;
    st = load("/nonexistent/dir/file.txt", &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_IO, "missing file", "/nonexistent/dir/file.txt", NULL);
    char *ok = write_text("ok.txt", "Some plain text that is long enough for a window or two.");
    c.seq_len = 0;
    st = load(ok, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_CONFIG, "seq_len 0", "max_seq_length is 0", NULL);
    c = cfg_t(8);
    st = lt_dataset_load(ok, NULL, VOCAB, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_INVALID, "text without a tokenizer", "ok.txt", "tokenizer");
    st = lt_dataset_load(ok, g_tok, 256, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_INVALID, "tokenizer larger than the model", "ok.txt",
                "vocab_size 256");
    /* NUL bytes: in a string, between tokens, after the record */
    static const struct {
        const char *name, *bytes, *want;
        size_t len;
    } nul[] = {
        {"nul1.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"a\0b\"}\n", "nul1.jsonl:2:12: NUL byte in a string", 33},
        {"nul2.jsonl", "{\"text\":\0 \"a\"}\n", "nul2.jsonl:1:9: NUL byte", 15},
        {"nul3.jsonl", "{\"text\": \"a\"}\0\n", "nul3.jsonl:1:14: NUL byte after the JSON value", 15},
    };
    for (size_t i = 0; i < sizeof nul / sizeof nul[0]; i++) {
        char *p = write_bytes(nul[i].name, nul[i].bytes, nul[i].len);
        ds = NULL;
        st = load(p, &c, &ds, NULL, &err);
        expect_fail(st, &err, LT_ERR_FORMAT, nul[i].name, nul[i].want, "(expected");
        lt_dataset_free(ds);
        free(p);
    }
    /* The other field names come from the config. */
    char *cf = write_text("fields.jsonl", "{\"q\": \"What?\", \"a\": \" This.\"}\n{\"q\": \"Who?\", \"a\": \" Them.\"}\n");
    char *cf2 = write_text("fields2.jsonl", "{\"body\": \"b\"}\n");
    c.prompt_field = "q";
    c.completion_field = "a";
    c.text_field = "body";
    c.seq_len = 16;
    CHECK_OK(load(cf, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == 2, "configured field names");
    lt_dataset_free(ds);
    CHECK_OK(load(cf2, &c, &ds, NULL, &err), &err);
    CHECK(lt_dataset_rows(ds) == 1, "configured text field");
    lt_dataset_free(ds);
    ds = NULL;
    char *cf3 = write_text("fields3.jsonl", "{\"q\": \"What?\", \"a\": \" This.\"}\n{\"body\": \"b\"}\n");
    st = load(cf3, &c, &ds, NULL, &err);
    expect_fail(st, &err, LT_ERR_FORMAT, "kinds under configured names",
                "fields3.jsonl line 2: a {\"body\"} record, but line 1 (the first record) is a {\"q\", \"a\"} record", NULL);
    free(ok), free(cf), free(cf2), free(cf3);
    return 0;
}

/* ------------------------------------------------------ realistic numbers */

static int test_wikisql(void) {
    lt_error err;
    const char *splits[3] = {"train", "valid", "test"};
    for (int s = 0; s < 3; s++) {
        char name[64];
        snprintf(name, sizeof name, "wikisql/%s.jsonl", splits[s]);
        char *text = dpath(name);
        snprintf(name, sizeof name, "wikisql/%s_pc.jsonl", splits[s]);
        char *pc = dpath(name);
        /* Long enough that nothing is cut: the row length is the record's. */
        lt_data_config c = cfg_t(1024);
        c.truncate = 0;
        lt_dataset *dt = NULL, *dp = NULL, *dtpl = NULL, *dpk = NULL;
        CHECK_OK(load(text, &c, &dt, NULL, &err), &err);
        CHECK_OK(load(pc, &c, &dp, NULL, &err), &err);
        c.response_template = "\nA:";
        CHECK_OK(load(text, &c, &dtpl, NULL, &err), &err);
        const size_t R = lt_dataset_rows(dp);
        CHECK(lt_dataset_rows(dt) == R && lt_dataset_rows(dtpl) == R, "%s: same record count",
              splits[s]);
        int same = 1;
        size_t maxlen = 0, maxprompt = 0, tokens = 0;
        int32_t *in = malloc(1024 * 4), *tg = malloc(1024 * 4);
        for (size_t r = 0; r < R; r++) {
            same &= rows_equal(dp, r, dtpl, r);
            lt_dataset_row(dp, r, in, tg);
            size_t n = 1, first = 0;
            while (n < 1024 && tg[n - 1] != LT_TOKEN_EOS) n++;
            n++; /* tokens = inputs used + the EOS target */
            while (tg[first] == LT_IGNORE_INDEX) first++;
            tokens += n;
            if (n > maxlen) maxlen = n;
            if (first + 1 > maxprompt) maxprompt = first + 1;
        }
        free(in), free(tg);
        CHECK(same, "%s: response_template \"\\nA:\" on the text gives the prompt/completion rows",
              splits[s]);
        CHECK(lt_dataset_target_tokens(dp) < lt_dataset_target_tokens(dt),
              "%s: masking the prompt removes targets", splits[s]);
        c.response_template = NULL;
        c.packing = 1;
        c.seq_len = 256;
        CHECK_OK(load(pc, &c, &dpk, NULL, &err), &err);
        printf("wikisql %-5s: %zu records, %zu tokens (max record %zu, max prompt %zu); target "
               "tokens: text %lld, completion only %lld; packed at T=256: %zu windows, %lld "
               "completion targets\n",
               splits[s], R, tokens, maxlen, maxprompt, (long long)lt_dataset_target_tokens(dt),
               (long long)lt_dataset_target_tokens(dp), lt_dataset_rows(dpk),
               (long long)lt_dataset_target_tokens(dpk));
        if (s == 0) {
            /* Unpacked as a run would use it: at T=256 one prompt (309
             * tokens) does not fit, so truncation would leave that record
             * nothing to train on; T=512 holds every prompt. */
            lt_dataset *d = NULL, *ho = NULL;
            c = cfg_t(256);
            lt_status st = load(pc, &c, &d, NULL, &err);
            expect_fail(st, &err, LT_ERR_FORMAT, "wikisql at T=256",
                        "train_pc.jsonl line 708:", "the prompt is 309 tokens");
            c = cfg_t(512);
            c.holdout_fraction = 0.1;
            CHECK_OK(load(pc, &c, &d, &ho, &err), &err);
            CHECK(lt_dataset_rows(d) == 900 && lt_dataset_rows(ho) == 100, "wikisql 900 + 100");
            printf("wikisql train_pc at T=512, holdout 0.1: %zu + %zu rows, %lld + %lld target "
                   "tokens\n",
                   lt_dataset_rows(d), lt_dataset_rows(ho), (long long)lt_dataset_target_tokens(d),
                   (long long)lt_dataset_target_tokens(ho));
            lt_dataset_free(d), lt_dataset_free(ho);
        }
        lt_dataset_free(dt), lt_dataset_free(dp), lt_dataset_free(dtpl), lt_dataset_free(dpk);
        free(text), free(pc);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s TOK512_BIN DATA_DIR SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep the report in order with FAIL lines */
    g_data = argv[2];
    g_scratch = argv[3];
    lt_error err;
    CHECK_OK(lt_make_dirs(g_scratch, &err), &err);
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load_llama2c(argv[1], VOCAB, &tok, &err), &err);
    g_tok = tok;

    test_text_packing();
    test_jsonl_text();
    test_prompt_completion();
    test_response_template();
    test_truncation();
    test_holdout();
    test_loader();
    test_distributed_sampler();
    test_token_files();
    test_bad_input();
    test_wikisql();

    lt_tokenizer_free(tok);
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    CHECK(ms.total_current[LT_SPACE_HOST] == 0,
          "every tracked allocation was freed (%llu bytes left)",
          (unsigned long long)ms.total_current[LT_SPACE_HOST]);
    return check_exit_code();
}
