/* A tokenizer.json / tokenizer.model against the reference library that
 * trained it (ids and decodes written by tests/ref/tokenizer_hf_ref.py): every
 * record of the bundled corpora must encode to the reference's ids and
 * decode to the reference's text.
 *
 * usage: test_tokenizer_ref TOKENIZER DIR NAME [--lenient-unicode]
 *        test_tokenizer_ref TOKENIZER --refuse SUBSTRING
 * DIR holds records.txt, NAME.ids, NAME.decoded and NAME.bos. With
 * --lenient-unicode, records with non-ASCII text may differ (the
 * pre-tokenizer's Unicode classes are approximate) and are only counted;
 * ASCII records must match in any case. --refuse checks that loading fails
 * with a message containing SUBSTRING. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "io/fileutil.h"
#include "io/text/tokenizer.h"
#include "tests/lib/check.h"

#define MAX_REPORTS 6

static size_t unescape(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            s[o++] = s[i] == 'n' ? '\n' : s[i] == 'r' ? '\r' : s[i];
        } else {
            s[o++] = s[i];
        }
    }
    return o;
}

typedef struct {
    char *data;
    uint64_t size;
    char *at;
} lines;

static int open_lines(lines *l, const char *dir, const char *name, const char *ext) {
    char path[4096];
    lt_error err;
    snprintf(path, sizeof path, "%s/%s%s", dir, name, ext);
    if (lt_read_file(path, 1u << 30, &l->data, &l->size, &err) != LT_OK) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    l->at = l->data;
    return 1;
}

/* The next line (without its newline) or NULL at the end. */
static char *next_line(lines *l, size_t *len) {
    if (l->at >= l->data + l->size) return NULL;
    char *s = l->at, *e = memchr(s, '\n', (size_t)(l->data + l->size - s));
    if (!e) e = l->data + l->size;
    *len = (size_t)(e - s);
    l->at = e + 1;
    return s;
}

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static size_t parse_ids(const char *s, size_t n, int32_t *out, size_t cap) {
    size_t k = 0;
    const char *end = s + n;
    while (s < end && k < cap) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s) break;
        out[k++] = (int32_t)v;
        s = e;
    }
    return k;
}

static int refuse(const char *path, const char *want) {
    lt_tokenizer *t = NULL;
    lt_error err;
    lt_error_clear(&err);
    lt_status st = lt_tokenizer_load(path, 0, &t, &err);
    CHECK(st != LT_OK && t == NULL, "%s loaded, expected a refusal", path);
    CHECK(strstr(err.msg, want) != NULL, "refusal lacks \"%s\": %s", want, err.msg);
    printf("refused as expected: %s\n", err.msg);
    lt_tokenizer_free(t);
    return check_exit_code();
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[2], "--refuse")) return refuse(argv[1], argv[3]);
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s TOKENIZER DIR NAME [--lenient-unicode]\n", argv[0]);
        return 2;
    }
    const char *dir = argv[2], *name = argv[3];
    int lenient = argc == 5 && !strcmp(argv[4], "--lenient-unicode");
    lt_error err;
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load(argv[1], 0, &tok, &err), &err);
    lines rec, ids, dec, bos;
    if (!open_lines(&rec, dir, "records", ".txt") || !open_lines(&ids, dir, name, ".ids") ||
        !open_lines(&dec, dir, name, ".decoded") || !open_lines(&bos, dir, name, ".bos"))
        return check_exit_code();
    long want_bos = strtol(bos.data, NULL, 10);
    CHECK(lt_tokenizer_bos(tok) == want_bos, "%s: BOS is %d, the reference adds %ld", name,
          (int)lt_tokenizer_bos(tok), want_bos);

    size_t cap = 1 << 16, nrec = 0, nascii = 0, bad_ascii = 0, bad_other = 0, bad_dec = 0,
           bad_dec_other = 0, bad_bos = 0, total = 0;
    int32_t *got = malloc(cap * sizeof *got), *want = malloc(cap * sizeof *want);
    char *out = malloc(cap);
    double t_enc = 0;
    size_t rl, il, dl;
    char *r, *il_s, *d;
    while ((r = next_line(&rec, &rl)) != NULL) {
        il_s = next_line(&ids, &il);
        d = next_line(&dec, &dl);
        if (!il_s || !d) {
            CHECK(0, "%s: fewer id/decoded lines than records (%zu)", name, nrec);
            break;
        }
        rl = unescape(r, rl);
        dl = unescape(d, dl);
        if (rl + 8 > cap || dl + 8 > cap || il > 8 * cap) {
            size_t c = 2 * (rl > dl ? rl : dl) + il + 16;
            got = realloc(got, c * sizeof *got);
            want = realloc(want, c * sizeof *want);
            out = realloc(out, c);
            cap = c;
            if (!got || !want || !out) return 3;
        }
        size_t nw = parse_ids(il_s, il, want, cap), n = 0;
        double t0 = lt_now_s();
        lt_status st = lt_tokenizer_encode(tok, r, rl, 0, 0, got, cap, &n, &err);
        t_enc += lt_now_s() - t0;
        CHECK(st == LT_OK, "%s record %zu: %s", name, nrec, err.msg);
        total += n;
        int ascii = is_ascii(r, rl);
        nascii += (size_t)ascii;
        size_t k = 0;
        while (k < n && k < nw && got[k] == want[k]) k++;
        if (k != n || n != nw) {
            size_t *ctr = ascii ? &bad_ascii : &bad_other;
            if ((*ctr)++ < MAX_REPORTS) {
                fprintf(stderr, "  %s %s record %zu \"%.50s\": %zu ids vs %zu, first difference at %zu:",
                        name, ascii ? "ASCII" : "non-ASCII", nrec, r, n, nw, k);
                for (size_t j = k; j < k + 4; j++)
                    fprintf(stderr, " %d/%d", j < n ? (int)got[j] : -1, j < nw ? (int)want[j] : -1);
                fprintf(stderr, "\n");
            }
        }
        size_t ol = 0;
        st = lt_tokenizer_decode(tok, got, n, out, cap, &ol, &err);
        if (st != LT_OK || ol != dl || memcmp(out, d, dl) != 0) {
            size_t *ctr = ascii ? &bad_dec : &bad_dec_other;
            if ((*ctr)++ < MAX_REPORTS)
                fprintf(stderr, "  %s record %zu \"%.50s\": decode gives %zu bytes \"%.50s\", the reference %zu\n",
                        name, nrec, r, ol, st == LT_OK ? out : err.msg, dl);
        }
        if (want_bos >= 0) {
            st = lt_tokenizer_encode(tok, r, rl, 1, 0, got, cap, &n, &err);
            if (st != LT_OK || n != nw + 1 || got[0] != want_bos) bad_bos++;
        }
        nrec++;
    }
    CHECK(nrec > 1000, "%s: only %zu records", name, nrec);
    CHECK(bad_ascii == 0, "%s: %zu of %zu ASCII records encode differently from the reference", name,
          bad_ascii, nascii);
    CHECK(bad_dec == 0, "%s: %zu ASCII records decode differently from the reference", name, bad_dec);
    CHECK(lenient || bad_other == 0, "%s: %zu of %zu non-ASCII records encode differently", name,
          bad_other, nrec - nascii);
    CHECK(lenient || bad_dec_other == 0, "%s: %zu non-ASCII records decode differently", name,
          bad_dec_other);
    CHECK(bad_bos == 0, "%s: %zu records: encode with BOS is not BOS + ids", name, bad_bos);
    printf("%s (%s): %zu records (%zu ASCII), %zu ids in %.2f s; mismatches: ASCII %zu, non-ASCII "
           "%zu of %zu; decode mismatches: ASCII %zu, non-ASCII %zu\n",
           name, lt_tokenizer_kind(tok), nrec, nascii, total, t_enc, bad_ascii, bad_other,
           nrec - nascii, bad_dec, bad_dec_other);
    free(got);
    free(want);
    free(out);
    free(rec.data);
    free(ids.data);
    free(dec.data);
    free(bos.data);
    lt_tokenizer_free(tok);
    return check_exit_code();
}
