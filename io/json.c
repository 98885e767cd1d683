#include "io/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"

/* ------------------------------------------------------------ helpers */

static int is_digit(unsigned c) { return c - '0' < 10u; }
static int is_ws(unsigned c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
/* Bytes a string holds as they are: printable ASCII but '"' and '\\'. */
static int is_plain(unsigned c) { return c - 0x20u < 0x60u && c != '"' && c != '\\'; }
static int hex_value(unsigned c) {
    if (is_digit(c)) return (int)(c - '0');
    if (c - 'a' < 6u) return (int)(c - 'a' + 10);
    if (c - 'A' < 6u) return (int)(c - 'A' + 10);
    return -1;
}

/* Length (2..4) of the valid UTF-8 sequence at s[0] (a byte >= 0x80) with
 * n bytes available, its code point in *cp; 0 when invalid (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        *cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        *cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        *cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        *cp = (*cp << 6) | (s[k] & 0x3F);
    }
    return len;
}

/* The 4 hex digits at s[0, 4) (n available) as a number, or -1. */
static long hex4(const unsigned char *s, size_t n) {
    if (n < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(s[k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(uint32_t cp, unsigned char *o) {
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------- duplicate-key table */

/* The keys of the open objects, in text order: an object's keys are the
 * tail of this stack from the index recorded when it opened, and are
 * checked for duplicates when it closes (by their hashes sorted, equal
 * hashes confirmed by decoding both keys), then popped. Sorting a segment
 * touches memory in order; a hash table over a vocabulary of 10^5 keys
 * missed the cache on every probe. */
typedef struct {
    uint64_t hash; /* of the decoded key */
    size_t off;    /* its opening quote */
} key_ent;

enum { SMALL_KEYS = 32, PAIRWISE_MAX = 16 };

typedef struct {
    const unsigned char *s;
    size_t n, i;
    lt_json_fault *f;
    key_ent *keys, *scratch;
    size_t nkeys, kcap, scap;
    key_ent small[SMALL_KEYS];
} parser;

static lt_status fail(parser *p, size_t off, const char *expected, const char *what_fmt, ...)
    __attribute__((format(printf, 4, 5)));

static lt_status fail(parser *p, size_t off, const char *expected, const char *what_fmt, ...) {
    p->f->offset = off;
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(p->f->what, sizeof p->f->what, what_fmt, ap);
    va_end(ap);
    snprintf(p->f->expected, sizeof p->f->expected, "%s", expected);
    return LT_ERR_FORMAT;
}

/* Decodes the validated string with quotes at s[off] and s[end - 1] into
 * o (room for end - off bytes); returns the length. */
static size_t decode_string(const unsigned char *s, size_t off, size_t end, unsigned char *o) {
    size_t k = 0;
    for (size_t i = off + 1; i < end - 1;) {
        if (s[i] != '\\') {
            o[k++] = s[i++];
            continue;
        }
        unsigned e = s[i + 1];
        if (e != 'u') {
            o[k++] = (unsigned char)(e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
                                     : e == 't' ? '\t' : e);
            i += 2;
            continue;
        }
        uint32_t cp = (uint32_t)hex4(s + i + 2, 4);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + ((uint32_t)hex4(s + i + 2, 4) - 0xDC00);
            i += 6;
        }
        k += utf8_put(cp, o + k);
    }
    return k;
}

/* One past the closing quote of the validated string opening at off. */
static size_t string_end(const unsigned char *s, size_t off) {
    size_t i = off + 1;
    while (s[i] != '"') i += s[i] == '\\' ? 2 : 1;
    return i + 1;
}

static int same_key(const parser *p, size_t a, size_t b) {
    const size_t ea = string_end(p->s, a), eb = string_end(p->s, b);
    if (ea - a == eb - b && !memcmp(p->s + a, p->s + b, ea - a)) return 1;
    unsigned char *x = malloc(ea - a), *y = malloc(eb - b);
    int same = 0;
    if (x && y) {
        size_t na = decode_string(p->s, a, ea, x), nb = decode_string(p->s, b, eb, y);
        same = na == nb && !memcmp(x, y, na);
    }
    free(x);
    free(y);
    return same;
}

/* The key at off as written (escapes and all), cut to fit out. */
static void key_text(const parser *p, size_t off, char *out, size_t cap) {
    size_t len = string_end(p->s, off) - off - 2;
    const char *raw = (const char *)p->s + off + 1;
    if (len < cap) {
        memcpy(out, raw, len);
        out[len] = '\0';
        return;
    }
    len = cap - 4;
    while (len && ((unsigned char)raw[len] & 0xC0) == 0x80) len--; /* whole characters */
    memcpy(out, raw, len);
    memcpy(out + len, "...", 4);
}

/* A hash of the bytes b[0, n), eight at a time. */
static uint64_t hash_bytes(const unsigned char *b, size_t n) {
    uint64_t h = 0x243F6A8885A308D3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, b + i, 8);
        h = (h ^ x) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    uint64_t t = 0;
    for (size_t k = 0; i + k < n; k++) t |= (uint64_t)b[i + k] << (8 * k);
    h = (h ^ t) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

static lt_status out_of_memory(parser *p, size_t off, const char *what) {
    p->f->offset = off;
    snprintf(p->f->what, sizeof p->f->what, "out of memory for %s", what);
    snprintf(p->f->expected, sizeof p->f->expected, "a smaller text");
    return LT_ERR_NOMEM;
}

/* Pushes the key with quotes at text[off] and text[end - 1]. */
static lt_status add_key(parser *p, int escaped, size_t off, size_t end) {
    uint64_t h;
    if (!escaped) {
        h = hash_bytes(p->s + off + 1, end - off - 2);
    } else {
        unsigned char small[256], *d = end - off <= sizeof small ? small : malloc(end - off);
        if (!d) return out_of_memory(p, off, "a key");
        h = hash_bytes(d, decode_string(p->s, off, end, d));
        if (d != small) free(d);
    }
    if (p->nkeys == p->kcap) {
        key_ent *k = lt_alloc(LT_MEM_OTHER, 2 * p->kcap * sizeof *k);
        if (!k) return out_of_memory(p, off, "the keys");
        memcpy(k, p->keys, p->nkeys * sizeof *k);
        if (p->keys != p->small) lt_free(p->keys);
        p->keys = k;
        p->kcap *= 2;
    }
    p->keys[p->nkeys++] = (key_ent){h, off};
    return LT_OK;
}

/* Sorts e[0, n) by hash, stably (equal hashes stay in text order): six
 * counting passes of 11 bits. */
static void sort_hashes(key_ent *e, key_ent *tmp, size_t n) {
    size_t count[1 << 11];
    for (int shift = 0; shift < 64; shift += 11) {
        memset(count, 0, sizeof count);
        for (size_t k = 0; k < n; k++) count[(e[k].hash >> shift) & 0x7FF]++;
        size_t sum = 0;
        for (size_t b = 0; b < (1 << 11); b++) {
            const size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t k = 0; k < n; k++) tmp[count[(e[k].hash >> shift) & 0x7FF]++] = e[k];
        memcpy(e, tmp, n * sizeof *e);
    }
}

/* Checks the keys of the object closing now (from start on the stack)
 * and pops them; a duplicate is named at its second occurrence, the
 * earliest such in the text. */
static lt_status close_object(parser *p, size_t start) {
    key_ent *e = p->keys + start;
    const size_t n = p->nkeys - start;
    size_t dup = SIZE_MAX, first = 0;
#define PAIR(x, y)                                                                  \
    do {                                                                            \
        const size_t lo_ = (x).off < (y).off ? (x).off : (y).off;                   \
        const size_t hi_ = (x).off < (y).off ? (y).off : (x).off;                   \
        if (hi_ < dup && same_key(p, lo_, hi_)) dup = hi_, first = lo_;             \
    } while (0)
    if (n <= PAIRWISE_MAX) {
        for (size_t a = 0; a + 1 < n; a++)
            for (size_t b = a + 1; b < n; b++)
                if (e[a].hash == e[b].hash) PAIR(e[a], e[b]);
    } else {
        if (p->scap < n) {
            if (p->scratch) lt_free(p->scratch);
            p->scratch = lt_alloc(LT_MEM_OTHER, n * sizeof *p->scratch);
            p->scap = p->scratch ? n : 0;
            if (!p->scratch) return out_of_memory(p, e[0].off, "the keys");
        }
        sort_hashes(e, p->scratch, n);
        /* A run of equal hashes is in text order: its first key equal to
         * an earlier one is the run's earliest second occurrence, found
         * at once when the run is one key repeated (10^5 copies of a key
         * must not take 10^10 steps). */
        for (size_t a = 0; a < n;) {
            size_t b = a + 1;
            while (b < n && e[b].hash == e[a].hash) b++;
            int found = 0;
            for (size_t y = a + 1; y < b && !found && e[y].off < dup; y++)
                for (size_t x = a; x < y && !found; x++)
                    if (same_key(p, e[x].off, e[y].off)) dup = e[y].off, first = e[x].off, found = 1;
            a = b;
        }
    }
#undef PAIR
    p->nkeys = start;
    if (dup == SIZE_MAX) return LT_OK;
    char name[80];
    key_text(p, dup, name, sizeof name);
    p->f->first = first;
    return fail(p, dup, "each key once in an object", "duplicate key \"%s\"", name);
}

/* ------------------------------------------------------------ grammar */

/* What is at s[off], for messages. */
static void describe(const parser *p, size_t off, char *buf, size_t cap) {
    const unsigned char *s = p->s;
    if (off >= p->n) {
        snprintf(buf, cap, "end of text");
        return;
    }
    unsigned c = s[off];
    if (c == 0) {
        snprintf(buf, cap, "NUL byte");
    } else if (c < 0x20 || c == 0x7F) {
        snprintf(buf, cap, "control character U+%04X", c);
    } else if (c == '/' && off + 1 < p->n && (s[off + 1] == '/' || s[off + 1] == '*')) {
        snprintf(buf, cap, "comment \"%c%c\"", c, s[off + 1]);
    } else if (c == '\'') {
        snprintf(buf, cap, "single quote");
    } else if (c == '+') {
        snprintf(buf, cap, "'+' sign");
    } else if (c >= 0x80) {
        uint32_t cp = 0;
        if (!utf8_seq(s + off, p->n - off, &cp))
            snprintf(buf, cap, "invalid UTF-8 byte 0x%02X", c);
        else
            snprintf(buf, cap, "character U+%04X", (unsigned)cp);
    } else if ((c | 0x20) - 'a' < 26u || c == '_') {
        size_t e = off;
        while (e < p->n && e - off < 32 && (is_digit(s[e]) || (unsigned)((s[e] | 0x20) - 'a') < 26u || s[e] == '_')) e++;
        snprintf(buf, cap, "\"%.*s\"", (int)(e - off), (const char *)s + off);
    } else {
        snprintf(buf, cap, "'%c'", c);
    }
}

/* "<what is at off><suffix> (expected <expected>)", with what JSON lacks
 * said where the text seems to assume it. */
static lt_status unexpected(parser *p, size_t off, const char *expected, const char *suffix) {
    char d[96], want[200];
    describe(p, off, d, sizeof d);
    const unsigned c = off < p->n ? p->s[off] : 0;
    const char *note = c == '/' && off + 1 < p->n && (p->s[off + 1] == '/' || p->s[off + 1] == '*')
                           ? "; JSON has no comments"
                       : c == '\'' ? "; JSON strings take double quotes"
                       : c == '+'  ? "; JSON numbers take no '+'"
                                   : "";
    snprintf(want, sizeof want, "%s%s", expected, note);
    return fail(p, off, want, "%s%s", d, suffix);
}

static void skip_ws(parser *p) {
    while (p->i < p->n && is_ws(p->s[p->i])) p->i++;
}

/* Up to 4 characters after a bad "\\u", as far as they are printable
 * and inside the string. */
static void show_escape(const unsigned char *s, size_t n, char shown[5]) {
    size_t k = 0;
    for (; k < 4 && k < n && s[k] - 0x20u < 0x5Fu && s[k] != '"' && s[k] != '\\'; k++) shown[k] = (char)s[k];
    shown[k] = '\0';
}

/* Offset of the first byte of s[i, n) that is not plain (n if none),
 * eight bytes at a time where the byte order allows: each "has a byte
 * below k" mask is exact up to its lowest flag, so the lowest flag of
 * their union is the first special byte. */
static size_t skip_plain(const unsigned char *s, size_t i, size_t n) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        const uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
        const uint64_t m = (((x - ones * 0x20) | (q - ones) | (b - ones)) & ~x & highs) | (x & highs);
        if (m) return i + (size_t)__builtin_ctzll(m) / 8;
    }
#endif
    while (i < n && is_plain(s[i])) i++;
    return i;
}

/* The string whose opening quote is at s[i]; *escaped says whether it
 * holds an escape (its decoded bytes then differ from the raw ones). */
static lt_status scan_string(parser *p, int *escaped) {
    const unsigned char *s = p->s;
    const size_t n = p->n;
    size_t i = p->i + 1;
    int esc = 0;
    for (;;) {
        i = skip_plain(s, i, n);
        if (i >= n) return fail(p, i, "a '\"' closing the string", "end of text inside a string");
        const unsigned c = s[i];
        if (c == '"') break;
        if (c == 0) return fail(p, i, "text without NUL bytes", "NUL byte in a string");
        if (c < 0x20)
            return fail(p, i, "it escaped, e.g. \\n or \\u00XX",
                        "unescaped control character U+%04X in a string", c);
        if (c >= 0xC2 && c <= 0xDF && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            i += 2; /* the common two-byte case, inline */
            continue;
        }
        if (c >= 0x80) {
            uint32_t cp;
            size_t k = utf8_seq(s + i, n - i, &cp);
            if (!k) return fail(p, i, "UTF-8 text", "invalid UTF-8 byte 0x%02X in a string", c);
            i += k;
            continue;
        }
        /* a backslash */
        esc = 1;
        if (i + 1 >= n) return fail(p, i + 1, "an escape after '\\'", "end of text");
        const unsigned e = s[i + 1];
        if (e && strchr("\"\\/bfnrt", (int)e)) {
            i += 2;
            continue;
        }
        const char *esc_expected = "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX";
        if (e != 'u') {
            if (e - 0x20u < 0x5Fu) return fail(p, i, esc_expected, "invalid escape \"\\%c\"", e);
            return fail(p, i, esc_expected, "invalid escape: '\\' followed by byte 0x%02X", e);
        }
        long cp = hex4(s + i + 2, n - i - 2);
        if (cp < 0) {
            char shown[5];
            show_escape(s + i + 2, n - i - 2, shown);
            return fail(p, i, "\\u and 4 hex digits", "invalid escape \"\\u%s\"", shown);
        }
        if (cp == 0)
            return fail(p, i, "no NUL characters in strings (cJSON's strings end there)",
                        "escape \"\\u0000\" (a NUL character)");
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(p, i, "a high surrogate \\uD800-\\uDBFF before it; a lone surrogate has no UTF-8 form",
                        "unpaired UTF-16 surrogate \"\\u%04lX\"", (unsigned long)cp);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            const int next_u = i + 7 < n && s[i + 6] == '\\' && s[i + 7] == 'u';
            long lo = next_u ? hex4(s + i + 8, n - i - 8) : -1;
            if (next_u && lo < 0) {
                char shown[5];
                show_escape(s + i + 8, n - i - 8, shown);
                return fail(p, i + 6, "\\u and 4 hex digits", "invalid escape \"\\u%s\"", shown);
            }
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(p, i, "a low surrogate \\uDC00-\\uDFFF after it; a lone surrogate has no UTF-8 form",
                            "unpaired UTF-16 surrogate \"\\u%04lX\"", (unsigned long)cp);
            i += 6;
        }
        i += 6;
    }
    p->i = i + 1;
    if (escaped) *escaped = esc;
    return LT_OK;
}

static lt_status scan_number(parser *p) {
    const unsigned char *s = p->s;
    const size_t n = p->n, start = p->i;
    size_t i = start;
    if (s[i] == '-') {
        i++;
        if (i < n && s[i] == 'I' && n - i >= 8 && !memcmp(s + i, "Infinity", 8))
            return fail(p, start, "a number (null or a string can stand for one)",
                        "-Infinity, which JSON does not have");
        if (i >= n || !is_digit(s[i])) return unexpected(p, i, "a digit after '-'", "");
    }
    if (s[i] == '0') {
        i++;
        if (i < n && is_digit(s[i]))
            return fail(p, start, "0, or a number whose first digit is 1-9", "number with a leading zero");
    } else {
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i])) return unexpected(p, i, "a digit after '.'", "");
        while (i < n && is_digit(s[i])) i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= n || !is_digit(s[i])) return unexpected(p, i, "a digit in the exponent", "");
        while (i < n && is_digit(s[i])) i++;
    }
    p->i = i;
    return LT_OK;
}

/* A value that is not a string, number, array or object: true, false,
 * null, or an error saying what it is. */
static lt_status scan_other(parser *p) {
    const unsigned char *s = p->s;
    const size_t i = p->i, left = p->n - i;
    static const char *const words[3] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t m = strlen(words[w]);
        if (left >= m && !memcmp(s + i, words[w], m)) {
            p->i = i + m;
            return LT_OK;
        }
    }
    if ((left >= 3 && !memcmp(s + i, "NaN", 3)) || (left >= 8 && !memcmp(s + i, "Infinity", 8)))
        return fail(p, i, "a number (null or a string can stand for one)", "%s, which JSON does not have",
                    s[i] == 'N' ? "NaN" : "Infinity");
    return unexpected(p, i, "a value: a string in double quotes, a number, true, false, null, [ or {", "");
}

lt_status lt_json_check(const char *text, size_t len, lt_json_fault *fault) {
    lt_json_fault scratch;
    if (!fault) fault = &scratch;
    memset(fault, 0, sizeof *fault);
    fault->first = SIZE_MAX;
    parser P, *p = &P;
    p->s = (const unsigned char *)text;
    p->n = len;
    p->i = 0;
    p->f = fault;
    memset(p->small, 0, sizeof p->small);
    p->keys = p->small;
    p->kcap = SMALL_KEYS;
    p->nkeys = 0;
    p->scratch = NULL;
    p->scap = 0;

    const unsigned char *s = p->s;
    char stack[LT_JSON_MAX_DEPTH];
    size_t objs[LT_JSON_MAX_DEPTH];
    int depth = 0;
    size_t comma = 0;
    lt_status st = LT_OK;
    if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) {
        st = fail(p, 0, "JSON text without one (RFC 8259)", "byte order mark U+FEFF");
        goto done;
    }
    skip_ws(p);
    if (p->i >= len) {
        st = fail(p, p->i, "a JSON value", "%s", len ? "only whitespace" : "empty text");
        goto done;
    }
value:
    skip_ws(p);
    if (p->i >= len) {
        st = fail(p, p->i, "a value", "end of text");
        goto done;
    }
    switch (s[p->i]) {
    case '{':
    case '[':
        if (depth == LT_JSON_MAX_DEPTH) {
            char want[64];
            snprintf(want, sizeof want, "at most %d nested arrays and objects", LT_JSON_MAX_DEPTH);
            st = fail(p, p->i, want, "nesting deeper than %d levels", LT_JSON_MAX_DEPTH);
            goto done;
        }
        stack[depth] = (char)s[p->i];
        objs[depth] = p->nkeys;
        depth++;
        p->i++;
        skip_ws(p);
        if (p->i < len && s[p->i] == (stack[depth - 1] == '{' ? '}' : ']')) {
            p->i++;
            depth--;
            goto after;
        }
        if (stack[depth - 1] == '{') {
            comma = 0;
            goto key;
        }
        goto value;
    case '"':
        if ((st = scan_string(p, NULL)) != LT_OK) goto done;
        goto after;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        if ((st = scan_number(p)) != LT_OK) goto done;
        goto after;
    default:
        if ((st = scan_other(p)) != LT_OK) goto done;
        goto after;
    }
key:
    /* at the first non-space byte after '{' or ',' (comma: its offset + 1) */
    if (p->i < len && s[p->i] == '"') {
        const size_t off = p->i;
        int escaped = 0;
        if ((st = scan_string(p, &escaped)) != LT_OK) goto done;
        if ((st = add_key(p, escaped, off, p->i)) != LT_OK) goto done;
        skip_ws(p);
        if (p->i >= len || s[p->i] != ':') {
            st = unexpected(p, p->i, "':' after the key", "");
            goto done;
        }
        p->i++;
        goto value;
    }
    if (comma && p->i < len && s[p->i] == '}') {
        st = fail(p, comma - 1, "another member after it, or no comma", "trailing comma before '}'");
        goto done;
    }
    st = unexpected(p, p->i, comma ? "a key in double quotes" : "a key in double quotes, or '}'", "");
    goto done;
after:
    skip_ws(p);
    if (depth == 0) {
        if (p->i < len) st = unexpected(p, p->i, "the end of the text", " after the JSON value");
        goto done;
    }
    if (p->i < len && s[p->i] == ',') {
        comma = ++p->i;
        skip_ws(p);
        if (stack[depth - 1] == '{') goto key;
        if (p->i < len && s[p->i] == ']') {
            st = fail(p, comma - 1, "another value after it, or no comma", "trailing comma before ']'");
            goto done;
        }
        goto value;
    }
    if (p->i < len && s[p->i] == (stack[depth - 1] == '{' ? '}' : ']')) {
        if (stack[depth - 1] == '{' && (st = close_object(p, objs[depth - 1])) != LT_OK) goto done;
        p->i++;
        depth--;
        goto after;
    }
    st = unexpected(p, p->i, stack[depth - 1] == '{' ? "',' or '}'" : "',' or ']'", "");
done:
    if (p->keys != p->small) lt_free(p->keys);
    if (p->scratch) lt_free(p->scratch);
    return st;
}

size_t lt_utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        const size_t k = utf8_seq(s + i, n - i, &cp);
        if (!k) return i;
        i += k;
    }
    return n;
}

/* ------------------------------------------------------------- parsing */

void lt_json_position(const char *text, size_t offset, int first_line, size_t *line, size_t *col) {
    size_t l = (size_t)(first_line > 0 ? first_line : 1), start = 0;
    for (const char *q = text, *end = text + offset; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) {
        l++;
        start = (size_t)(q - text) + 1;
    }
    size_t c = 1;
    for (size_t k = start; k < offset; k++) c += ((unsigned char)text[k] & 0xC0) != 0x80;
    *line = l;
    *col = c;
}

static lt_status parse(const char *text, size_t len, const char *file, const char *part, uint64_t offset,
                       int first_line, cJSON **out, lt_error *err) {
    *out = NULL;
    lt_json_fault f;
    lt_status st = lt_json_check(text, len, &f);
    if (st != LT_OK) {
        size_t line, col;
        lt_json_position(text, f.offset, first_line, &line, &col);
        char first[80] = "";
        if (f.first != SIZE_MAX) {
            size_t l1, c1;
            lt_json_position(text, f.first, first_line, &l1, &c1);
            snprintf(first, sizeof first, "; the first is at line %zu, column %zu", l1, c1);
        }
        if (part)
            return lt_fail(err, st, "%s: %s byte %llu (line %zu, column %zu): %s (expected %s%s)", file, part,
                           (unsigned long long)(offset + f.offset), line, col, f.what, f.expected, first);
        return lt_fail(err, st, "%s:%zu:%zu: %s (expected %s%s)", file, line, col, f.what, f.expected, first);
    }
    /* What passed the check is JSON cJSON reads; it fails only without memory. */
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root)
        return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory building the tree of %zu bytes of JSON", file, len);
    *out = root;
    return LT_OK;
}

lt_status lt_json_parse(const char *text, size_t len, const char *file, int first_line, cJSON **out,
                        lt_error *err) {
    return parse(text, len, file, NULL, 0, first_line, out, err);
}

lt_status lt_json_parse_part(const char *text, size_t len, const char *file, const char *part,
                             uint64_t offset, cJSON **out, lt_error *err) {
    return parse(text, len, file, part, offset, 1, out, err);
}

lt_status lt_json_parse_file(const char *path, uint64_t max_bytes, cJSON **out, lt_error *err) {
    *out = NULL;
    char *text = NULL;
    uint64_t size = 0;
    lt_status st = lt_read_file(path, max_bytes, &text, &size, err);
    if (st != LT_OK) return st;
    st = lt_json_parse(text, (size_t)size, path, 1, out, err);
    free(text);
    return st;
}
