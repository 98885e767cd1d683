/* The lexer: text cut from tags with Jinja2's whitespace rules
 * (trim_blocks, lstrip_blocks, - and + signs), tag contents tokenised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/text/jinja_internal.h"

typedef struct {
    const lt_chat_template *t;
    arena *a;
    const char *src;
    size_t len;
    token *toks;
    size_t ntok, cap;
    lt_error *err;
} lexer;

static lt_status lex_fail(lexer *L, size_t pos, const char *what) {
    return lt_jinja_fail_at(L->err, LT_ERR_FORMAT, L->t->name, L->src, L->len, pos, "%s", what);
}

static lt_status push(lexer *L, token t) {
    if (L->ntok == L->cap) {
        size_t c = L->cap ? 2 * L->cap : 256;
        token *v = lt_alloc(LT_MEM_OTHER, c * sizeof *v);
        if (!v) return lt_fail(L->err, LT_ERR_NOMEM, "chat template %s: out of memory", L->t->name);
        if (L->toks) {
            memcpy(v, L->toks, L->ntok * sizeof *v);
            lt_free(L->toks);
        }
        L->toks = v;
        L->cap = c;
    }
    L->toks[L->ntok++] = t;
    return LT_OK;
}

static void put_utf8(char *o, size_t *n, uint32_t cp) {
    if (cp < 0x80) {
        o[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        o[(*n)++] = (char)(0xC0 | cp >> 6);
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        o[(*n)++] = (char)(0xE0 | cp >> 12);
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*n)++] = (char)(0xF0 | cp >> 18);
        o[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A string literal at src[p] (a quote); Python's unicode-escape rules, as
 * Jinja2 decodes them: unknown escapes keep their backslash. */
static lt_status lex_string(lexer *L, size_t *p, token *t) {
    const char *s = L->src;
    char q = s[*p];
    size_t start = *p, i = *p + 1, end = i;
    while (end < L->len && s[end] != q) end += s[end] == '\\' ? 2 : 1;
    if (end >= L->len) return lex_fail(L, start, "unterminated string literal");
    char *o = lt_jinja_arena_alloc(L->a, end - i + 1);
    if (!o) return lt_fail(L->err, LT_ERR_NOMEM, "chat template %s: out of memory", L->t->name);
    size_t n = 0;
    while (i < end) {
        char c = s[i];
        if (c != '\\') {
            o[n++] = c;
            i++;
            continue;
        }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'a': o[n++] = '\a'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'v': o[n++] = '\v'; break;
        case '\\': o[n++] = '\\'; break;
        case '\'': o[n++] = '\''; break;
        case '"': o[n++] = '"'; break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < digits; k++) {
                int h = i + (size_t)k < end ? hexval(s[i + (size_t)k]) : -1;
                if (h < 0) return lex_fail(L, i - 2, "truncated \\x, \\u or \\U escape in a string literal");
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                return lex_fail(L, i - 2, "escape names no Unicode scalar value");
            i += (size_t)digits;
            /* Four UTF-8 bytes at most from an escape of 4+ source bytes. */
            put_utf8(o, &n, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < end && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[i++] - '0');
                put_utf8(o, &n, cp);
            } else {
                o[n++] = '\\';
                o[n++] = e;
            }
        }
    }
    t->k = T_STRING;
    t->pos = start;
    t->s = o;
    t->n = n;
    *p = end + 1;
    return LT_OK;
}

static const char *const k_ops[] = {"//", "==", "!=", ">=", "<=", "**", "+", "-", "*", "/", "%",
                                    "~",  "[",  "]",  "(",  ")",  "{",  "}", "<", ">", "=", ".",
                                    ":",  "|",  ",",  ";"};

/* The tokens of one tag, from *p up to and including its end. */
static lt_status lex_tag(lexer *L, size_t *p, int block, int *ends_nl) {
    const char *s = L->src;
    size_t i = *p;
    char stack[LT_CHAT_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        while (i < L->len && is_space((unsigned char)s[i])) i++;
        if (i >= L->len) return lex_fail(L, *p, block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
        if (depth == 0) {
            const char *close = block ? "%}" : "}}";
            size_t ci = 0;
            int sign = 0;
            if ((s[i] == '-' || (block && s[i] == '+')) && i + 2 < L->len + 0 && !memcmp(s + i + 1, close, 2)) {
                sign = s[i];
                ci = i + 3;
            } else if (i + 1 < L->len && !memcmp(s + i, close, 2)) {
                ci = i + 2;
            }
            if (ci) {
                token t = {block ? T_BLOCK_END : T_VAR_END, i, NULL, 0, 0, 0};
                lt_status st = push(L, t);
                if (st != LT_OK) return st;
                *ends_nl = 0;
                if (sign == '-') {
                    while (ci < L->len && is_space((unsigned char)s[ci])) *ends_nl = s[ci++] == '\n';
                } else if (!sign && block && ci < L->len && s[ci] == '\n') {
                    ci++; /* trim_blocks */
                    *ends_nl = 1;
                }
                *p = ci;
                return LT_OK;
            }
        }
        token t = {T_EOF, i, NULL, 0, 0, 0};
        unsigned char c = (unsigned char)s[i];
        if (c == '\'' || c == '"') {
            lt_status st = lex_string(L, &i, &t);
            if (st != LT_OK) return st;
        } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t j = i;
            while (j < L->len && (s[j] == '_' || (s[j] >= 'a' && s[j] <= 'z') ||
                                  (s[j] >= 'A' && s[j] <= 'Z') || (s[j] >= '0' && s[j] <= '9')))
                j++;
            t.k = T_NAME;
            t.s = s + i;
            t.n = j - i;
            i = j;
        } else if (c >= '0' && c <= '9') {
            size_t j = i;
            char num[64];
            size_t nn = 0;
            int is_float = 0;
            while (j < L->len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_')) {
                if (s[j] != '_' && nn < sizeof num - 1) num[nn++] = s[j];
                j++;
            }
            if (j + 1 < L->len && s[j] == '.' && s[j + 1] >= '0' && s[j + 1] <= '9') {
                is_float = 1;
                num[nn < sizeof num - 1 ? nn++ : nn] = '.';
                j++;
                while (j < L->len && ((s[j] >= '0' && s[j] <= '9') || s[j] == '_')) {
                    if (s[j] != '_' && nn < sizeof num - 1) num[nn++] = s[j];
                    j++;
                }
            }
            if (j < L->len && (s[j] == 'e' || s[j] == 'E')) {
                size_t k = j + 1;
                if (k < L->len && (s[k] == '+' || s[k] == '-')) k++;
                if (k < L->len && s[k] >= '0' && s[k] <= '9') {
                    is_float = 1;
                    while (j < k && nn < sizeof num - 1) num[nn++] = s[j++];
                    while (j < L->len && s[j] >= '0' && s[j] <= '9') {
                        if (nn < sizeof num - 1) num[nn++] = s[j];
                        j++;
                    }
                }
            }
            num[nn] = '\0';
            if (nn >= sizeof num - 1) return lex_fail(L, i, "number literal too long");
            if (is_float) {
                t.k = T_FLOAT;
                t.f = strtod(num, NULL);
            } else {
                char *end = NULL;
                unsigned long long v = strtoull(num, &end, 10);
                if (v > INT64_MAX || nn > 19) return lex_fail(L, i, "integer literal out of range (64 bits)");
                t.k = T_INT;
                t.i = (int64_t)v;
            }
            i = j;
        } else {
            size_t k;
            for (k = 0; k < sizeof k_ops / sizeof *k_ops; k++) {
                size_t ol = strlen(k_ops[k]);
                if (i + ol <= L->len && !memcmp(s + i, k_ops[k], ol)) break;
            }
            if (k == sizeof k_ops / sizeof *k_ops) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c' (0x%02x) in a tag",
                         c >= 0x20 && c < 0x7f ? c : '?', c);
                return lex_fail(L, i, msg);
            }
            t.k = T_OP;
            t.s = k_ops[k];
            t.n = strlen(k_ops[k]);
            char o = k_ops[k][0];
            if (t.n == 1 && (o == '(' || o == '[' || o == '{')) {
                if (depth == LT_CHAT_MAX_DEPTH) return lex_fail(L, i, "brackets nested too deeply");
                stack[depth++] = o == '(' ? ')' : o == '[' ? ']' : '}';
            } else if (t.n == 1 && (o == ')' || o == ']' || o == '}')) {
                if (depth == 0 || stack[depth - 1] != o) return lex_fail(L, i, "unbalanced bracket");
                depth--;
            }
            i += t.n;
        }
        lt_status st = push(L, t);
        if (st != LT_OK) return st;
    }
}

static lt_status lex(lexer *L) {
    const char *s = L->src;
    size_t pos = 0;
    int line_starting = 1;
    while (pos < L->len) {
        size_t tag = pos;
        int kind = 0; /* '{', '%', '#' */
        while (tag + 1 < L->len) {
            if (s[tag] == '{' && (s[tag + 1] == '{' || s[tag + 1] == '%' || s[tag + 1] == '#')) {
                kind = s[tag + 1];
                break;
            }
            tag++;
        }
        if (!kind) tag = L->len;
        size_t text_end = tag;
        char sign = 0;
        if (kind && tag + 2 < L->len && (s[tag + 2] == '-' || s[tag + 2] == '+')) sign = s[tag + 2];
        if (kind && sign == '-') {
            while (text_end > pos && is_space((unsigned char)s[text_end - 1])) text_end--;
        } else if (kind && sign != '+' && kind != '{') {
            /* lstrip_blocks: only blanks between the line start and the tag. */
            size_t l = text_end;
            while (l > pos && s[l - 1] != '\n') l--;
            if (l > pos || line_starting) {
                size_t k = l;
                while (k < text_end && is_space((unsigned char)s[k])) k++;
                if (k == text_end) text_end = l;
            }
        }
        if (text_end > pos) {
            token t = {T_TEXT, pos, s + pos, text_end - pos, 0, 0};
            lt_status st = push(L, t);
            if (st != LT_OK) return st;
        }
        if (!kind) break;
        size_t p = tag + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t j = p;
            for (; j < L->len; j++) {
                if ((s[j] == '-' || s[j] == '+') && j + 2 < L->len + 0 && s[j + 1] == '#' && s[j + 2] == '}') break;
                if (s[j] == '#' && j + 1 < L->len && s[j + 1] == '}') break;
            }
            if (j >= L->len) return lex_fail(L, tag, "missing end of comment tag '#}'");
            line_starting = 0;
            if (s[j] == '-') {
                j += 3;
                while (j < L->len && is_space((unsigned char)s[j])) line_starting = s[j++] == '\n';
            } else if (s[j] == '+') {
                j += 3;
            } else {
                j += 2;
                if (j < L->len && s[j] == '\n') {
                    j++;
                    line_starting = 1;
                }
            }
            pos = j;
            continue;
        }
        token t = {kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, tag, NULL, 0, 0, 0};
        lt_status st = push(L, t);
        if (st != LT_OK) return st;
        if ((st = lex_tag(L, &p, kind == '%', &line_starting)) != LT_OK) return st;
        pos = p;
    }
    token e = {T_EOF, L->len, NULL, 0, 0, 0};
    return push(L, e);
}

lt_status lt_jinja_lex(lt_chat_template *t, token **toks, size_t *ntok, lt_error *err) {
    lexer L = {t, &t->mem, t->src, t->src_len, NULL, 0, 0, err};
    lt_status st = lex(&L);
    *toks = L.toks;
    *ntok = L.ntok;
    return st;
}
