/* The GPT-2 / Llama 3 / Qwen 2 pre-tokenizer regexes, by hand (see
 * io/text/tokenizer_pretok.h for the limits of the Unicode classes). */
#include "io/text/tokenizer_pretok.h"

#include <stdint.h>
#include <string.h>

static const char *const GPT2_RE =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const LLAMA3_RE =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const QWEN2_RE =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

int lt_pretok_identify(const char *re) {
    if (!strcmp(re, GPT2_RE)) return LT_PRETOK_GPT2;
    if (!strcmp(re, LLAMA3_RE)) return LT_PRETOK_LLAMA3;
    if (!strcmp(re, QWEN2_RE)) return LT_PRETOK_QWEN2;
    return -1;
}

enum { C_LETTER, C_NUMBER, C_SPACE, C_OTHER };

typedef struct {
    uint32_t lo, hi;
} range;

static int in_ranges(uint32_t c, const range *r, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (c >= r[k].lo && c <= r[k].hi) return 1;
    return 0;
}

static const range SPACES[] = {{0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
                               {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F},
                               {0x205F, 0x205F}, {0x3000, 0x3000}};
static const range NUMBERS[] = {
    {0xB2, 0xB3},     {0xB9, 0xB9},     {0xBC, 0xBE},     {0x660, 0x669},   {0x6F0, 0x6F9},
    {0x966, 0x96F},   {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2189},
    {0x2460, 0x249B}, {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x3007, 0x3007}, {0x3021, 0x3029},
    {0xFF10, 0xFF19}, {0x1D7CE, 0x1D7FF}};
static const range LETTERS[] = {
    {0xAA, 0xAA},       {0xB5, 0xB5},     {0xBA, 0xBA},     {0xC0, 0xD6},     {0xD8, 0xF6},
    {0xF8, 0x2C1},      {0x2C6, 0x2D1},   {0x2E0, 0x2E4},   {0x370, 0x373},   {0x376, 0x377},
    {0x37B, 0x37D},     {0x386, 0x386},   {0x388, 0x3F5},   {0x3F7, 0x481},   {0x48A, 0x52F},
    {0x531, 0x556},     {0x561, 0x587},   {0x5D0, 0x5EA},   {0x620, 0x64A},   {0x671, 0x6D3},
    {0x904, 0x939},     {0xE01, 0xE30},   {0x10A0, 0x10FF}, {0x1100, 0x11FF}, {0x1E00, 0x1FBC},
    {0x3041, 0x3096},   {0x30A1, 0x30FA}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
    {0xF900, 0xFAFF},   {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFF9D}, {0x1D400, 0x1D7CB},
    {0x20000, 0x2FA1F}};

static int classify(uint32_t c) {
    if (c < 0x80) {
        if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return C_LETTER;
        if (c >= '0' && c <= '9') return C_NUMBER;
        if (c == ' ' || (c >= 9 && c <= 13)) return C_SPACE;
        return C_OTHER;
    }
    if (in_ranges(c, SPACES, sizeof SPACES / sizeof *SPACES)) return C_SPACE;
    if (in_ranges(c, NUMBERS, sizeof NUMBERS / sizeof *NUMBERS)) return C_NUMBER;
    if (in_ranges(c, LETTERS, sizeof LETTERS / sizeof *LETTERS)) return C_LETTER;
    return C_OTHER;
}

/* One UTF-8 character at s[i]: its codepoint and byte length. A malformed
 * sequence is one byte of class "other" (tokenizer.json text is UTF-8). */
static uint32_t decode(const char *s, size_t n, size_t i, size_t *len) {
    const unsigned char *u = (const unsigned char *)s + i;
    size_t left = n - i;
    unsigned c = u[0];
    size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need == 0 || need > left) {
        *len = 1;
        return 0xFFFD;
    }
    uint32_t cp = need == 1 ? c : need == 2 ? (c & 0x1F) : need == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < need; k++) {
        if ((u[k] & 0xC0) != 0x80) {
            *len = 1;
            return 0xFFFD;
        }
        cp = (cp << 6) | (u[k] & 0x3F);
    }
    *len = need;
    return cp;
}

typedef struct {
    const char *s;
    size_t n;
} text;

static int cls_at(text t, size_t i, size_t *len) {
    if (i >= t.n) {
        *len = 0;
        return -1;
    }
    return classify(decode(t.s, t.n, i, len));
}

/* End of the run of characters of class c starting at i (at most max chars). */
static size_t run(text t, size_t i, int c, size_t max) {
    size_t l, k = 0;
    while (k < max && cls_at(t, i, &l) == c) {
        i += l;
        k++;
    }
    return i;
}

static int is_crlf(text t, size_t i) { return i < t.n && (t.s[i] == '\r' || t.s[i] == '\n'); }

static size_t contraction(text t, size_t i, int fold) {
    static const char *const forms[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    if (t.s[i] != '\'') return 0;
    for (size_t k = 0; k < sizeof forms / sizeof *forms; k++) {
        size_t m = strlen(forms[k]);
        if (i + 1 + m > t.n) continue;
        size_t j = 0;
        for (; j < m; j++) {
            char c = t.s[i + 1 + j];
            if (fold && c >= 'A' && c <= 'Z') c = (char)(c + 32);
            if (c != forms[k][j]) break;
        }
        if (j == m) return 1 + m;
    }
    return 0;
}

/* \s+(?!\S) then \s+: a run of spaces gives back its last one when a
 * non-space follows, so that one joins the next word. */
static size_t spaces(text t, size_t i) {
    size_t e = run(t, i, C_SPACE, SIZE_MAX), l, chars = 0;
    for (size_t j = i; j < e; j += l, chars++) decode(t.s, t.n, j, &l);
    if (e == t.n || chars == 1) return e - i;
    size_t last = i, j = i;
    while (j < e) {
        last = j;
        decode(t.s, t.n, j, &l);
        j += l;
    }
    return last - i;
}

static size_t gpt2(text t, size_t i) {
    size_t m = contraction(t, i, 0), l;
    if (m) return m;
    size_t j = i;
    if (t.s[i] == ' ') {
        int c = cls_at(t, i + 1, &l);
        if (c == C_LETTER || c == C_NUMBER || c == C_OTHER) j = i + 1;
    }
    int c = cls_at(t, j, &l);
    if (c != C_SPACE) return run(t, j, c, SIZE_MAX) - i;
    return spaces(t, i);
}

static size_t llama3(text t, size_t i, size_t max_digits) {
    size_t m = contraction(t, i, 1), l, l2;
    if (m) return m;
    int c = cls_at(t, i, &l);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c != C_LETTER && c != C_NUMBER && !is_crlf(t, i) && cls_at(t, i + l, &l2) == C_LETTER)
        return run(t, i + l, C_LETTER, SIZE_MAX) - i;
    if (c == C_LETTER) return run(t, i, C_LETTER, SIZE_MAX) - i;
    if (c == C_NUMBER) return run(t, i, C_NUMBER, max_digits) - i;
    /* ` ?[^\s\p{L}\p{N}]+[\r\n]*` */
    size_t j = i;
    if (t.s[i] == ' ' && cls_at(t, i + 1, &l2) == C_OTHER) j = i + 1;
    if (cls_at(t, j, &l2) == C_OTHER) {
        size_t e = run(t, j, C_OTHER, SIZE_MAX);
        while (is_crlf(t, e)) e++;
        return e - i;
    }
    /* \s*[\r\n]+: up to and including the run's last CR/LF. */
    size_t e = run(t, i, C_SPACE, SIZE_MAX), last = SIZE_MAX;
    for (size_t k = i; k < e; k++)
        if (is_crlf(t, k)) last = k;
    if (last != SIZE_MAX) return last + 1 - i;
    return spaces(t, i);
}

size_t lt_pretok_next(lt_pretok p, const char *s, size_t n, size_t i) {
    text t = {s, n};
    size_t r = p == LT_PRETOK_GPT2     ? gpt2(t, i)
               : p == LT_PRETOK_LLAMA3 ? llama3(t, i, 3)
               : p == LT_PRETOK_QWEN2  ? llama3(t, i, 1)
                                       : n - i;
    return r > 0 ? r : 1;
}
