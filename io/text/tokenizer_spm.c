/* SentencePiece: the tokenizer.model protobuf (ModelProto), parsed by hand
 * with every length checked against the buffer, and the BPE encoder
 * SentencePiece runs (also used for the llama2.c .bin, which is the same
 * model exported flat). Pieces are stored with U+2581 "▁" turned back into
 * ' ' (as llama2.c's export does), so text is matched as given. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/text/tokenizer_backend.h"
#include "io/text/tokenizer_pieces.h"

/* Llama 2's tokenizer.model is 500 KB; a 256k-piece model a few MB. */
#define SPM_FILE_MAX_BYTES (256u << 20)
#define SPM_MAX_PIECES (1 << 22)

/* ModelProto.SentencePiece.Type */
enum { SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6 };
/* TrainerSpec.ModelType */
enum { SP_MODEL_UNIGRAM = 1, SP_MODEL_BPE = 2, SP_MODEL_WORD = 3, SP_MODEL_CHAR = 4 };

typedef struct {
    int add_dummy_prefix;
    int remove_extra_whitespaces;
    float unk_score; /* Unigram: the lowest normal score minus SentencePiece's kUnkPenalty */
} spm_impl;

#define SPM_UNK_PENALTY 10.0f

/* ------------------------------------------------------------ encoding */

/* Merges only normal pieces; the priority is the merged piece's score.
 * Byte-fallback symbols never merge: SentencePiece falls back to bytes only
 * after merging. */
static int32_t spm_pair(const lt_tokenizer *t, int32_t a, int32_t b, float *prio) {
    if (t->kind[a] != LT_PIECE_NORMAL || t->kind[b] != LT_PIECE_NORMAL) return -1;
    if ((size_t)t->length[a] + t->length[b] > t->max_piece_len) return -1;
    const char *pb = t->blob + t->offset[b];
    uint32_t h = lt_tok_fnv(t->hash[a], (const unsigned char *)pb, t->length[b]);
    int32_t m = lt_tok_find_hashed(t, h, t->blob + t->offset[a], t->length[a], pb, t->length[b]);
    if (m >= 0) *prio = t->score[m];
    return m;
}

/* remove_extra_whitespaces under the identity normalizer: only ' ' is
 * whitespace; leading and trailing runs go, inner runs become one. */
static size_t collapse_spaces(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && (o == 0 || out[o - 1] == ' ')) continue;
        out[o++] = s[i];
    }
    while (o > 0 && out[o - 1] == ' ') o--;
    return o;
}

/* The text the model sees, written to b (len + 2 bytes): remove_extra_
 * whitespaces applied, the dummy prefix ' ' put in front. Returns its
 * length. */
static size_t normalize(const spm_impl *im, const char *text, size_t len, char *b, int *has_dummy) {
    int dummy = im ? im->add_dummy_prefix : 1;
    size_t n;
    if (im && im->remove_extra_whitespaces) {
        n = collapse_spaces(text, len, b + 1);
    } else {
        if (len) memcpy(b + 1, text, len);
        n = len;
    }
    /* SentencePiece adds no prefix to empty text. */
    *has_dummy = n > 0 && dummy;
    if (*has_dummy) {
        b[0] = ' ';
        n++;
    } else if (n > 0) {
        memmove(b, b + 1, n);
    }
    return n;
}

/* Byte length of the character at s[i]: a byte plus the continuation
 * bytes after it, at most 4 (run.c's grouping), so malformed UTF-8 still
 * encodes (via byte fallback) and round-trips. The dummy prefix is a
 * character of its own, whatever follows it. */
static size_t char_len(const char *s, size_t n, size_t i, int dummy) {
    if (i == 0 && dummy) return 1;
    size_t g = 1;
    while (i + g < n && g < 4 && ((unsigned char)s[i + g] & 0xC0) == 0x80) g++;
    return g;
}

/* Unknown text: its bytes' pieces with byte fallback, else one <unk>. */
static int32_t put_unknown(const lt_tokenizer *t, const char *s, size_t g, int32_t *sym) {
    int32_t n = 0;
    if (t->byte_id[(unsigned char)s[0]] >= 0) {
        for (size_t k = 0; k < g; k++) {
            int32_t b = t->byte_id[(unsigned char)s[k]];
            sym[n++] = b >= 0 ? b : t->unk;
        }
    } else if (t->unk >= 0) {
        sym[n++] = t->unk;
    }
    return n;
}

static lt_status finish(int32_t *sym, size_t n, int32_t *ids, size_t cap, size_t *n_out,
                        lt_error *err) {
    if (n > cap)
        return lt_fail(err, LT_ERR_INVALID,
                       "tokenizer encode: ids buffer holds %zu ids, the text needs %zu", cap, n);
    if (n) memcpy(ids, sym, n * sizeof *ids);
    *n_out = n;
    return LT_OK;
}

/* The dummy prefix (when asked) and then each character's piece, or its
 * byte pieces. */
static int32_t initial_symbols(const lt_tokenizer *t, int dummy, const char *s, size_t len,
                               int32_t *sym) {
    int32_t n = 0;
    if (dummy) {
        int32_t space = lt_tok_find(t, " ", 1, "", 0);
        if (space < 0) space = t->byte_id[' '] >= 0 ? t->byte_id[' '] : t->unk;
        if (space >= 0) sym[n++] = space;
    }
    for (size_t i = 0; i < len;) {
        size_t g = char_len(s, len, i, 0);
        int32_t id = lt_tok_find(t, s + i, g, "", 0);
        if (id >= 0) sym[n++] = id;
        else n += put_unknown(t, s + i, g, sym + n);
        i += g;
    }
    return n;
}

static lt_status spm_encode(const lt_tokenizer *t, const char *text, size_t len, int32_t *ids,
                            size_t cap, size_t *n_out, lt_error *err) {
    const spm_impl *im = t->impl;
    *n_out = 0;
    if (len == 0) return LT_OK;
    /* One block for the symbols and the merge heap (and the space-collapsed
     * text where the model asks for it): 28 bytes per input byte. */
    int collapse = im && im->remove_extra_whitespaces;
    size_t nmax = len + 1, text_bytes = collapse ? (len + 7) & ~(size_t)7 : 0;
    char *work = lt_alloc(LT_MEM_OTHER, text_bytes + nmax * sizeof(int32_t) + LT_TOK_MERGE_WORK(nmax));
    if (!work)
        return lt_fail(err, LT_ERR_NOMEM, "tokenizer encode: cannot allocate work space for %zu bytes of text",
                       len);
    if (collapse) {
        len = collapse_spaces(text, len, work);
        text = work;
    }
    int32_t *sym = (int32_t *)(work + text_bytes);
    int dummy = len > 0 && (im ? im->add_dummy_prefix : 1);
    int32_t n = initial_symbols(t, dummy, text, len, sym);
    size_t m = lt_tok_merge(t, spm_pair, sym, n, sym, sym + nmax);
    lt_status st = finish(sym, m, ids, cap, n_out, err);
    lt_free(work);
    return st;
}

/* Unigram: the Viterbi path of highest total score over all segmentations
 * into normal pieces, as SentencePiece's EncodeOptimized computes it (each
 * candidate summed and compared in double, stored as float -- its user-
 * defined bonus makes the sum a double -- so near-ties fall as they do
 * there; a later candidate wins only when strictly better; a character that
 * starts no one-character piece gets an <unk> node scored unk_score). */
static lt_status spm_unigram_encode(const lt_tokenizer *t, const char *text, size_t len,
                                    int32_t *ids, size_t cap, size_t *n_out, lt_error *err) {
    const spm_impl *im = t->impl;
    *n_out = 0;
    /* One block: the normalized text, then per end position the best
     * score, the piece (-2: unknown) and its start, and the output. */
    size_t nmax = len + 2, text_bytes = (len + 2 + 7) & ~(size_t)7;
    size_t per = sizeof(float) + 3 * sizeof(int32_t);
    char *work = lt_alloc(LT_MEM_OTHER, text_bytes + nmax * per);
    if (!work)
        return lt_fail(err, LT_ERR_NOMEM, "tokenizer encode: cannot allocate for %zu bytes", len);
    char *buf = work;
    int dummy = 0;
    len = normalize(im, text, len, buf, &dummy);
    lt_status st = LT_OK;
    if (len == 0) {
        lt_free(work);
        return LT_OK;
    }
    float *best = (float *)(work + text_bytes);
    int32_t *piece = (int32_t *)(best + len + 1), *from = piece + len + 1, *sym = from + len + 1;
    for (size_t i = 0; i <= len; i++) from[i] = -1;
    from[0] = 0;
    best[0] = 0.0f;
    for (size_t i = 0; i < len;) {
        size_t g = char_len(buf, len, i, dummy);
        if (from[i] < 0) {
            i += g;
            continue;
        }
        int single = 0;
        uint32_t h = LT_FNV_OFFSET;
        size_t end = i;
        /* Pieces end on character boundaries; try each, shortest first. */
        while (end < len && end - i < t->max_piece_len) {
            size_t cl = char_len(buf, len, end, dummy);
            h = lt_tok_fnv(h, (const unsigned char *)buf + end, cl);
            end += cl;
            int32_t id = lt_tok_find_hashed(t, h, buf + i, end - i, "", 0);
            if (id < 0) continue;
            if (end - i == g) single = 1;
            double c = (double)best[i] + t->score[id];
            if (from[end] < 0 || c > best[end]) {
                best[end] = (float)c;
                piece[end] = id;
                from[end] = (int32_t)i;
            }
        }
        if (!single) {
            double c = (double)best[i] + im->unk_score;
            if (from[i + g] < 0 || c > best[i + g]) {
                best[i + g] = (float)c;
                piece[i + g] = -2;
                from[i + g] = (int32_t)i;
            }
        }
        i += g;
    }
    /* Walk back, writing pieces right to left into sym's tail. */
    size_t k = len;
    for (size_t e = len; e > 0;) {
        size_t b = (size_t)from[e];
        if (piece[e] >= 0) {
            sym[--k] = piece[e];
        } else {
            int32_t tmp[4];
            int32_t m = put_unknown(t, buf + b, e - b, tmp);
            while (m > 0) sym[--k] = tmp[--m];
        }
        e = b;
    }
    st = finish(sym + k, len - k, ids, cap, n_out, err);
    lt_free(work);
    return st;
}

static void spm_destroy(void *impl) { free(impl); }

const lt_tokenizer_backend lt_tok_spm_backend = {"sentencepiece-bpe", spm_encode, spm_destroy};
static const lt_tokenizer_backend spm_unigram_backend = {"sentencepiece-unigram",
                                                         spm_unigram_encode, spm_destroy};

/* ------------------------------------------------------------ protobuf */

typedef struct {
    const unsigned char *p, *end, *base;
    const char *path;
    const char *what; /* the message being read, for errors */
} pb_reader;

static lt_status pb_varint(pb_reader *r, uint64_t *v, lt_error *err) {
    uint64_t x = 0;
    for (int s = 0; s < 64; s += 7) {
        if (r->p >= r->end)
            return lt_fail(err, LT_ERR_FORMAT, "%s: %s: varint runs past the end at byte %ld",
                           r->path, r->what, (long)(r->p - r->base));
        unsigned c = *r->p++;
        x |= (uint64_t)(c & 0x7F) << s;
        if (c < 0x80) {
            *v = x;
            return LT_OK;
        }
    }
    return lt_fail(err, LT_ERR_FORMAT, "%s: %s: varint longer than 10 bytes at byte %ld", r->path,
                   r->what, (long)(r->p - r->base));
}

/* One field: its number and wire type; for wire type 2 its payload, for 0
 * its value, for 5 its 4 bytes. Groups (3, 4) do not occur in ModelProto. */
typedef struct {
    uint32_t num, wt;
    uint64_t v;
    const unsigned char *data;
    size_t len;
} pb_field;

static lt_status pb_next(pb_reader *r, pb_field *f, lt_error *err) {
    uint64_t key = 0;
    long at = (long)(r->p - r->base);
    lt_status st = pb_varint(r, &key, err);
    if (st != LT_OK) return st;
    f->num = (uint32_t)(key >> 3);
    f->wt = (uint32_t)(key & 7);
    if (f->num == 0 || key >> 32)
        return lt_fail(err, LT_ERR_FORMAT, "%s: %s: field number %llu at byte %ld, expected 1..2^29",
                       r->path, r->what, (unsigned long long)(key >> 3), at);
    size_t left;
    switch (f->wt) {
    case 0: return pb_varint(r, &f->v, err);
    case 1:
    case 5:
        left = (size_t)(r->end - r->p);
        f->len = f->wt == 1 ? 8 : 4;
        if (left < f->len)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: %s: field %u needs %zu bytes at byte %ld, only %zu remain", r->path,
                           r->what, f->num, f->len, (long)(r->p - r->base), left);
        f->data = r->p;
        r->p += f->len;
        return LT_OK;
    case 2:
        if ((st = pb_varint(r, &f->v, err)) != LT_OK) return st;
        left = (size_t)(r->end - r->p);
        if (f->v > left)
            return lt_fail(err, LT_ERR_FORMAT,
                           "%s: %s: field %u is %llu bytes long at byte %ld, only %zu remain",
                           r->path, r->what, f->num, (unsigned long long)f->v,
                           (long)(r->p - r->base), left);
        f->data = r->p;
        f->len = (size_t)f->v;
        r->p += f->len;
        return LT_OK;
    default:
        return lt_fail(err, LT_ERR_FORMAT, "%s: %s: field %u has wire type %u at byte %ld, expected 0, 1, 2 or 5",
                       r->path, r->what, f->num, f->wt, at);
    }
}

static pb_reader pb_sub(const pb_reader *r, const pb_field *f, const char *what) {
    return (pb_reader){f->data, f->data + f->len, r->base, r->path, what};
}

typedef struct {
    const unsigned char *text;
    uint32_t len;
    float score;
    int type;
} raw_piece;

typedef struct {
    raw_piece *v;
    int n, cap;
    int model_type;
    int byte_fallback;
    int64_t unk_id, bos_id, eos_id;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    const unsigned char *norm_name;
    size_t norm_name_len, charsmap_len;
} spm_proto;

static lt_status expect_wt(const pb_reader *r, const pb_field *f, uint32_t wt, const char *field,
                           lt_error *err) {
    if (f->wt == wt) return LT_OK;
    return lt_fail(err, LT_ERR_FORMAT, "%s: %s.%s has wire type %u, expected %u", r->path, r->what,
                   field, f->wt, wt);
}

static lt_status parse_piece(pb_reader *r, raw_piece *out, lt_error *err) {
    *out = (raw_piece){NULL, 0, 0.0f, SP_NORMAL};
    int have_text = 0;
    while (r->p < r->end) {
        pb_field f;
        lt_status st = pb_next(r, &f, err);
        if (st != LT_OK) return st;
        if (f.num == 1) {
            if ((st = expect_wt(r, &f, 2, "piece", err)) != LT_OK) return st;
            if (f.len > 65536 || memchr(f.data, '\0', f.len))
                return lt_fail(err, LT_ERR_FORMAT, "%s: %s: piece of %zu bytes, expected at most 65536 without NUL",
                               r->path, r->what, f.len);
            out->text = f.data;
            out->len = (uint32_t)f.len;
            have_text = 1;
        } else if (f.num == 2) {
            if ((st = expect_wt(r, &f, 5, "score", err)) != LT_OK) return st;
            memcpy(&out->score, f.data, 4);
            if (!isfinite(out->score))
                return lt_fail(err, LT_ERR_FORMAT, "%s: %s: score %g, expected a finite value",
                               r->path, r->what, (double)out->score);
        } else if (f.num == 3) {
            if ((st = expect_wt(r, &f, 0, "type", err)) != LT_OK) return st;
            if (f.v < SP_NORMAL || f.v > SP_BYTE)
                return lt_fail(err, LT_ERR_FORMAT, "%s: %s: type %llu, expected 1..6", r->path,
                               r->what, (unsigned long long)f.v);
            out->type = (int)f.v;
        }
    }
    if (!have_text)
        return lt_fail(err, LT_ERR_FORMAT, "%s: %s has no piece (field 1)", r->path, r->what);
    return LT_OK;
}

static lt_status parse_trainer(pb_reader *r, spm_proto *m, lt_error *err) {
    while (r->p < r->end) {
        pb_field f;
        lt_status st = pb_next(r, &f, err);
        if (st != LT_OK) return st;
        if (f.num != 3 && f.num != 35 && (f.num < 40 || f.num > 42)) continue;
        if ((st = expect_wt(r, &f, 0, "varint field", err)) != LT_OK) return st;
        /* int32 fields: negative values arrive sign-extended to 64 bits. */
        int64_t v = (int64_t)f.v;
        if (f.num == 3) m->model_type = (int)(v > 100 || v < 0 ? -1 : v);
        else if (f.num == 35) m->byte_fallback = v != 0;
        else if (f.num == 40) m->unk_id = v;
        else if (f.num == 41) m->bos_id = v;
        else m->eos_id = v;
    }
    return LT_OK;
}

static lt_status parse_normalizer(pb_reader *r, spm_proto *m, lt_error *err) {
    while (r->p < r->end) {
        pb_field f;
        lt_status st = pb_next(r, &f, err);
        if (st != LT_OK) return st;
        if (f.num == 1 && f.wt == 2) {
            m->norm_name = f.data;
            m->norm_name_len = f.len;
        } else if (f.num == 2 && f.wt == 2) {
            m->charsmap_len = f.len;
        } else if (f.num >= 3 && f.num <= 5) {
            if ((st = expect_wt(r, &f, 0, "bool field", err)) != LT_OK) return st;
            if (f.num == 3) m->add_dummy_prefix = f.v != 0;
            else if (f.num == 4) m->remove_extra_ws = f.v != 0;
            else m->escape_ws = f.v != 0;
        }
    }
    return LT_OK;
}

static lt_status parse_model(const char *path, const unsigned char *data, size_t size, spm_proto *m,
                             lt_error *err) {
    pb_reader r = {data, data + size, data, path, "ModelProto"};
    char what[64];
    while (r.p < r.end) {
        pb_field f;
        lt_status st = pb_next(&r, &f, err);
        if (st != LT_OK) return st;
        if (f.num == 1) {
            if ((st = expect_wt(&r, &f, 2, "pieces", err)) != LT_OK) return st;
            if (m->n == SPM_MAX_PIECES)
                return lt_fail(err, LT_ERR_FORMAT, "%s: more than %d pieces", path, SPM_MAX_PIECES);
            if (m->n == m->cap) {
                int c = m->cap ? 2 * m->cap : 1024;
                raw_piece *p = realloc(m->v, (size_t)c * sizeof *p);
                if (!p) return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %d pieces", path, c);
                m->v = p;
                m->cap = c;
            }
            snprintf(what, sizeof what, "pieces[%d]", m->n);
            pb_reader sub = pb_sub(&r, &f, what);
            if ((st = parse_piece(&sub, &m->v[m->n], err)) != LT_OK) return st;
            m->n++;
        } else if (f.num == 2) {
            if ((st = expect_wt(&r, &f, 2, "trainer_spec", err)) != LT_OK) return st;
            pb_reader sub = pb_sub(&r, &f, "trainer_spec");
            if ((st = parse_trainer(&sub, m, err)) != LT_OK) return st;
        } else if (f.num == 3) {
            if ((st = expect_wt(&r, &f, 2, "normalizer_spec", err)) != LT_OK) return st;
            pb_reader sub = pb_sub(&r, &f, "normalizer_spec");
            if ((st = parse_normalizer(&sub, m, err)) != LT_OK) return st;
        }
    }
    return LT_OK;
}

/* "<0xNN>" -> NN, or -1. */
static int byte_piece_value(const unsigned char *p, uint32_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        int c = p[k], d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Copies a piece with every "▁" (E2 96 81) turned into ' '. */
static uint32_t unescape_piece(const unsigned char *p, uint32_t n, char *out) {
    uint32_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i + 2 < n && p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81) {
            out[o++] = ' ';
            i += 2;
        } else {
            out[o++] = (char)p[i];
        }
    }
    return o;
}

static lt_status build(const char *path, spm_proto *m, int vocab_size, lt_tokenizer *t,
                       lt_error *err) {
    if (m->n == 0) return lt_fail(err, LT_ERR_FORMAT, "%s: ModelProto has no pieces (field 1)", path);
    if (m->model_type != SP_MODEL_BPE && m->model_type != SP_MODEL_UNIGRAM) {
        const char *name = m->model_type == SP_MODEL_UNIGRAM ? "UNIGRAM"
                           : m->model_type == SP_MODEL_WORD  ? "WORD"
                           : m->model_type == SP_MODEL_CHAR  ? "CHAR"
                                                             : "unknown";
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: trainer_spec.model_type is %d (%s), expected 2 (BPE) or 1 (UNIGRAM)",
                       path, m->model_type, name);
    }
    /* Text is matched as given: a normalizer with a character map (nmt_nfkc
     * and friends) would rewrite it first, which this encoder does not do. */
    if (m->charsmap_len > 0)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: normalizer_spec \"%.*s\" has a %zu-byte precompiled_charsmap, expected "
                       "the identity normalizer (as Llama 2's tokenizer.model has)",
                       path, (int)(m->norm_name_len > 40 ? 40 : m->norm_name_len),
                       m->norm_name ? (const char *)m->norm_name : "", m->charsmap_len);
    if (!m->escape_ws)
        return lt_fail(err, LT_ERR_UNSUPPORTED,
                       "%s: normalizer_spec.escape_whitespaces is false, expected true", path);
    if (vocab_size > 0 && m->n > vocab_size)
        return lt_fail(err, LT_ERR_FORMAT, "%s: %d pieces, expected at most the model's vocab_size %d",
                       path, m->n, vocab_size);
    size_t blob = 0;
    for (int i = 0; i < m->n; i++) blob += m->v[i].len + 1;
    lt_status st = lt_tok_alloc(t, m->n, blob, path, err);
    if (st != LT_OK) return st;
    uint32_t at = 0;
    t->unk = t->bos = t->eos = -1;
    for (int i = 0; i < m->n; i++) {
        const raw_piece *p = &m->v[i];
        int kind = LT_PIECE_NORMAL;
        if (p->type == SP_BYTE) {
            int b = byte_piece_value(p->text, p->len);
            if (b < 0)
                return lt_fail(err, LT_ERR_FORMAT, "%s: pieces[%d] has type BYTE, expected the spelling <0xNN>, got \"%.*s\"",
                               path, i, (int)(p->len > 16 ? 16 : p->len), (const char *)p->text);
            if (t->byte_id[b] < 0) t->byte_id[b] = i;
            kind = LT_PIECE_BYTE;
        } else if (p->type == SP_UNKNOWN) {
            kind = LT_PIECE_UNK;
            if (t->unk < 0) t->unk = i;
        } else if (p->type == SP_CONTROL) {
            kind = LT_PIECE_CONTROL;
        } else if (p->type == SP_UNUSED) {
            kind = LT_PIECE_UNUSED;
        }
        /* USER_DEFINED pieces join the normal ones: SentencePiece matches them
         * atomically, here they only merge like any piece (a limitation). */
        char buf[65536];
        uint32_t n = unescape_piece(p->text, p->len, buf);
        lt_tok_set_piece(t, i, buf, n, p->score, kind, &at);
    }
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0)
                return lt_fail(err, LT_ERR_FORMAT,
                               "%s: trainer_spec.byte_fallback is set but piece <0x%02X> is missing",
                               path, b);
    } else {
        /* Without byte fallback, byte pieces are never produced. */
        for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    }
    if (m->unk_id >= 0 && m->unk_id < m->n && t->kind[m->unk_id] == LT_PIECE_UNK) t->unk = (int32_t)m->unk_id;
    if (m->bos_id >= 0 && m->bos_id < m->n && t->kind[m->bos_id] == LT_PIECE_CONTROL) t->bos = (int32_t)m->bos_id;
    if (m->eos_id >= 0 && m->eos_id < m->n && t->kind[m->eos_id] == LT_PIECE_CONTROL) t->eos = (int32_t)m->eos_id;
    if (t->unk < 0)
        return lt_fail(err, LT_ERR_FORMAT, "%s: no piece of type UNKNOWN, expected one (trainer_spec.unk_id %lld)",
                       path, (long long)m->unk_id);
    t->strip_prefix_space = m->add_dummy_prefix;
    spm_impl *im = malloc(sizeof *im);
    if (!im) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    im->add_dummy_prefix = m->add_dummy_prefix;
    im->remove_extra_whitespaces = m->remove_extra_ws;
    float lo = 0.0f;
    int any = 0;
    for (int i = 0; i < t->vocab_size; i++)
        if (t->kind[i] == LT_PIECE_NORMAL && (!any || t->score[i] < lo)) lo = t->score[i], any = 1;
    im->unk_score = lo - SPM_UNK_PENALTY;
    t->impl = im;
    t->be = m->model_type == SP_MODEL_UNIGRAM ? &spm_unigram_backend : &lt_tok_spm_backend;
    return lt_tok_index(t, path, err);
}

lt_status lt_tokenizer_load_spm(const char *path, int vocab_size, lt_tokenizer **out,
                                lt_error *err) {
    *out = NULL;
    char *raw = NULL;
    uint64_t size = 0;
    lt_status st = lt_read_file(path, SPM_FILE_MAX_BYTES, &raw, &size, err);
    if (st != LT_OK) return st;
    spm_proto m = {0};
    m.model_type = SP_MODEL_UNIGRAM; /* the proto's default */
    m.unk_id = 0, m.bos_id = 1, m.eos_id = 2;
    m.add_dummy_prefix = m.remove_extra_ws = m.escape_ws = 1;
    st = parse_model(path, (const unsigned char *)raw, (size_t)size, &m, err);
    lt_tokenizer *t = NULL;
    if (st == LT_OK) {
        t = calloc(1, sizeof *t);
        if (!t) st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    }
    if (st == LT_OK) st = build(path, &m, vocab_size, t, err);
    free(m.v);
    free(raw);
    if (st != LT_OK) {
        lt_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}
