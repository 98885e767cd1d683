/* The Jinja2-subset renderer behind chat templates (io/chat_template.h).
 *
 * Three stages, each a mirror of Jinja2's own so the output agrees byte for
 * byte: a lexer that cuts text from tags with Jinja2's whitespace rules
 * (trim_blocks, lstrip_blocks, - and + signs) and tokenises tag contents; a
 * recursive-descent parser with Jinja2's operator precedence, building a
 * tree once; an evaluator over that tree with Python's value semantics for
 * the types templates meet (str, int, float, bool, None, list, dict,
 * Undefined). Tree and render temporaries live in arenas, so an error at
 * any depth unwinds by freeing one arena. */
#include "io/chat_template.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "io/json.h"

/* A template of a few KB renders a conversation in well under a million
 * steps; these bounds only stop inputs built to run away (the fuzzer's). */
#define MAX_STEPS 20000000L
#define MAX_OUTPUT (64u << 20)
#define MAX_ARENA (512u << 20)
#define MAX_RANGE 100000
#define TEMPLATE_FILE_MAX (16u << 20)

/* ------------------------------------------------------------- arenas */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
} chunk;

typedef struct {
    chunk *head;
    size_t total;
} arena;

static void *arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        if (n > MAX_ARENA || a->total + n > MAX_ARENA) return NULL;
        size_t cap = n > (64u << 10) ? n : (64u << 10);
        chunk *c = lt_alloc(LT_MEM_OTHER, sizeof(chunk) + 16 + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        a->total += cap;
    }
    char *base = (char *)a->head + ((sizeof(chunk) + 15) & ~(size_t)15);
    void *p = base + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(arena *a) {
    for (chunk *c = a->head; c;) {
        chunk *n = c->next;
        lt_free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

/* ---------------------------------------------------------- the tree */

typedef enum {
    E_STR, E_INT, E_FLOAT, E_BOOL, E_NONE, E_LIST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL,
    E_FILTER, E_TEST, E_BIN, E_CMP, E_NOT, E_NEG, E_POS, E_AND, E_OR, E_COND
} expr_kind;

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_CONCAT } bin_op;
typedef enum { C_EQ, C_NE, C_LT, C_GT, C_LE, C_GE, C_IN, C_NOTIN } cmp_op;

typedef struct expr expr;
struct expr {
    expr_kind k;
    size_t pos;
    const char *s; /* E_STR value, E_NAME/E_ATTR/E_FILTER/E_TEST name */
    size_t n;      /* its length */
    int64_t i;
    double f;
    int op, negated;
    expr *a, *b, *c;
    expr **args; /* E_CALL/E_FILTER/E_LIST arguments; E_CMP operands */
    int *ops;    /* E_CMP operators */
    int nargs;
};

typedef enum { S_TEXT, S_OUT, S_IF, S_FOR, S_SET, S_BREAK, S_CONTINUE, S_GENERATION } stmt_kind;

typedef struct stmt stmt;
typedef struct {
    stmt **v;
    int n;
} body;

struct stmt {
    stmt_kind k;
    size_t pos;
    const char *text;
    size_t len;
    expr *e;               /* S_OUT, S_SET value, S_FOR iterable */
    const char *name;      /* S_SET / S_FOR target */
    size_t name_len;
    expr **conds;          /* S_IF: branch conditions */
    body *bodies;          /* S_IF: one per condition; S_FOR, S_GENERATION: bodies[0] */
    int nbranches;
    body else_body;        /* S_IF else, S_FOR else */
    int has_else;
};

struct lt_chat_template {
    arena mem;
    char *src; /* normalised source */
    size_t src_len;
    char *name;
    char *bos, *eos;
    body root;
};

/* ---------------------------------------------------------- errors */

static void line_col(const char *src, size_t len, size_t pos, size_t *line, size_t *col) {
    size_t l = 1, start = 0;
    if (pos > len) pos = len;
    for (size_t i = 0; i < pos; i++)
        if (src[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = pos - start + 1;
}

static lt_status fail_at(lt_error *err, lt_status code, const char *name, const char *src,
                         size_t len, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static lt_status fail_at(lt_error *err, lt_status code, const char *name, const char *src,
                         size_t len, size_t pos, const char *fmt, ...) {
    char msg[LT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t line, col;
    line_col(src, len, pos, &line, &col);
    return lt_fail(err, code, "chat template %s line %zu column %zu (byte %zu): %s", name, line,
                   col, pos, msg);
}

/* ---------------------------------------------------------- lexer */

typedef enum {
    T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END, T_NAME, T_STRING, T_INT,
    T_FLOAT, T_OP, T_EOF
} tok_kind;

typedef struct {
    tok_kind k;
    size_t pos;
    const char *s; /* T_TEXT / T_NAME / T_OP / T_STRING (decoded) */
    size_t n;
    int64_t i;
    double f;
} token;

typedef struct {
    const lt_chat_template *t;
    arena *a;
    const char *src;
    size_t len;
    token *toks;
    size_t ntok, cap;
    lt_error *err;
} lexer;

static int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           (c >= 0x1c && c <= 0x1f);
}

static lt_status lex_fail(lexer *L, size_t pos, const char *what) {
    return fail_at(L->err, LT_ERR_FORMAT, L->t->name, L->src, L->len, pos, "%s", what);
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
    char *o = arena_alloc(L->a, end - i + 1);
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

/* ---------------------------------------------------------- parser */

typedef struct {
    lt_chat_template *t;
    arena *a;
    token *toks;
    size_t i, n;
    int depth;
    lt_error *err;
} parser;

static lt_status p_fail(parser *P, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lt_status p_fail(parser *P, size_t pos, const char *fmt, ...) {
    char msg[LT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(P->err, LT_ERR_FORMAT, P->t->name, P->t->src, P->t->src_len, pos, "%s", msg);
}

static lt_status p_nomem(parser *P) {
    return lt_fail(P->err, LT_ERR_NOMEM, "chat template %s: out of memory", P->t->name);
}

static token *cur(parser *P) { return &P->toks[P->i]; }

static int is_op(const token *t, const char *op) {
    return t->k == T_OP && t->n == strlen(op) && !memcmp(t->s, op, t->n);
}

static int is_name(const token *t, const char *name) {
    return t->k == T_NAME && t->n == strlen(name) && !memcmp(t->s, name, t->n);
}

static const char *tok_desc(const token *t, char *buf, size_t cap) {
    switch (t->k) {
    case T_TEXT: return "template text";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_EOF: return "end of template";
    case T_STRING: return "a string";
    case T_INT:
    case T_FLOAT: return "a number";
    default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->s); return buf;
    }
}

static lt_status expect_op(parser *P, const char *op) {
    if (is_op(cur(P), op)) {
        P->i++;
        return LT_OK;
    }
    char b[64];
    return p_fail(P, cur(P)->pos, "expected '%s', got %s", op, tok_desc(cur(P), b, sizeof b));
}

static expr *node(parser *P, expr_kind k, size_t pos) {
    expr *e = arena_alloc(P->a, sizeof *e);
    if (e) {
        e->k = k;
        e->pos = pos;
    }
    return e;
}

static lt_status parse_expr(parser *P, expr **out);
static lt_status parse_or(parser *P, expr **out);
static lt_status parse_unary(parser *P, expr **out, int with_filter);

/* Arguments after '(' up to ')'; keyword arguments are not supported. */
static lt_status parse_args(parser *P, expr ***args, int *nargs) {
    expr *tmp[16];
    int n = 0;
    P->i++; /* ( */
    while (!is_op(cur(P), ")")) {
        if (n == 16) return p_fail(P, cur(P)->pos, "more than 16 arguments in a call");
        if (cur(P)->k == T_NAME && is_op(&P->toks[P->i + 1], "="))
            return p_fail(P, cur(P)->pos, "keyword arguments are not supported");
        lt_status st = parse_expr(P, &tmp[n]);
        if (st != LT_OK) return st;
        n++;
        if (is_op(cur(P), ",")) P->i++;
        else if (!is_op(cur(P), ")")) return expect_op(P, ")");
    }
    P->i++;
    *args = n ? arena_alloc(P->a, (size_t)n * sizeof **args) : NULL;
    if (n && !*args) return p_nomem(P);
    if (n) memcpy(*args, tmp, (size_t)n * sizeof *tmp);
    *nargs = n;
    return LT_OK;
}

static lt_status parse_primary(parser *P, expr **out) {
    token *t = cur(P);
    expr *e = NULL;
    char b[64];
    if (t->k == T_STRING) {
        /* Adjacent literals concatenate, as in Python. */
        size_t total = 0, j = P->i;
        while (P->toks[j].k == T_STRING) total += P->toks[j++].n;
        e = node(P, E_STR, t->pos);
        char *s = e ? arena_alloc(P->a, total + 1) : NULL;
        if (!s) return p_nomem(P);
        size_t at = 0;
        while (cur(P)->k == T_STRING) {
            memcpy(s + at, cur(P)->s, cur(P)->n);
            at += cur(P)->n;
            P->i++;
        }
        e->s = s;
        e->n = total;
    } else if (t->k == T_INT) {
        if (!(e = node(P, E_INT, t->pos))) return p_nomem(P);
        e->i = t->i;
        P->i++;
    } else if (t->k == T_FLOAT) {
        if (!(e = node(P, E_FLOAT, t->pos))) return p_nomem(P);
        e->f = t->f;
        P->i++;
    } else if (t->k == T_NAME) {
        if (is_name(t, "true") || is_name(t, "True") || is_name(t, "false") || is_name(t, "False")) {
            if (!(e = node(P, E_BOOL, t->pos))) return p_nomem(P);
            e->i = t->s[0] == 't' || t->s[0] == 'T';
        } else if (is_name(t, "none") || is_name(t, "None")) {
            if (!(e = node(P, E_NONE, t->pos))) return p_nomem(P);
        } else {
            if (!(e = node(P, E_NAME, t->pos))) return p_nomem(P);
            e->s = t->s;
            e->n = t->n;
        }
        P->i++;
    } else if (is_op(t, "(")) {
        P->i++;
        lt_status st = parse_expr(P, &e);
        if (st != LT_OK) return st;
        if (is_op(cur(P), ",")) return p_fail(P, cur(P)->pos, "tuples are not supported");
        if ((st = expect_op(P, ")")) != LT_OK) return st;
    } else if (is_op(t, "[")) {
        expr *tmp[256];
        int n = 0;
        if (!(e = node(P, E_LIST, t->pos))) return p_nomem(P);
        P->i++;
        while (!is_op(cur(P), "]")) {
            if (n == 256) return p_fail(P, cur(P)->pos, "more than 256 items in a list literal");
            lt_status st = parse_expr(P, &tmp[n++]);
            if (st != LT_OK) return st;
            if (is_op(cur(P), ",")) P->i++;
            else if (!is_op(cur(P), "]")) return expect_op(P, "]");
        }
        P->i++;
        e->nargs = n;
        if (n) {
            if (!(e->args = arena_alloc(P->a, (size_t)n * sizeof *e->args))) return p_nomem(P);
            memcpy(e->args, tmp, (size_t)n * sizeof *tmp);
        }
    } else if (is_op(t, "{")) {
        return p_fail(P, t->pos, "dict literals are not supported");
    } else {
        return p_fail(P, t->pos, "expected an expression, got %s", tok_desc(t, b, sizeof b));
    }
    *out = e;
    return LT_OK;
}

static lt_status parse_postfix(parser *P, expr **io) {
    for (;;) {
        token *t = cur(P);
        if (is_op(t, ".")) {
            token *name = &P->toks[P->i + 1];
            if (name->k != T_NAME && name->k != T_INT) {
                char b[64];
                return p_fail(P, name->pos, "expected an attribute name after '.', got %s",
                              tok_desc(name, b, sizeof b));
            }
            expr *e = node(P, name->k == T_NAME ? E_ATTR : E_ITEM, t->pos);
            if (!e) return p_nomem(P);
            e->a = *io;
            if (name->k == T_NAME) {
                e->s = name->s;
                e->n = name->n;
            } else {
                if (!(e->b = node(P, E_INT, name->pos))) return p_nomem(P);
                e->b->i = name->i;
            }
            P->i += 2;
            *io = e;
        } else if (is_op(t, "[")) {
            P->i++;
            expr *parts[3] = {NULL, NULL, NULL};
            int colons = 0;
            lt_status st;
            for (;;) {
                if (is_op(cur(P), ":")) {
                    if (++colons > 2) return p_fail(P, cur(P)->pos, "too many ':' in a subscript");
                    P->i++;
                    continue;
                }
                if (is_op(cur(P), "]")) break;
                if (parts[colons]) return expect_op(P, "]");
                if ((st = parse_expr(P, &parts[colons])) != LT_OK) return st;
            }
            P->i++;
            expr *e = node(P, colons ? E_SLICE : E_ITEM, t->pos);
            if (!e) return p_nomem(P);
            if (!colons && !parts[0]) return p_fail(P, t->pos, "empty subscript");
            e->a = *io;
            e->b = parts[0];
            if (colons) {
                e->c = parts[1];
                e->args = arena_alloc(P->a, sizeof *e->args);
                if (!e->args) return p_nomem(P);
                e->args[0] = parts[2];
            }
            *io = e;
        } else if (is_op(t, "(")) {
            expr *e = node(P, E_CALL, t->pos);
            if (!e) return p_nomem(P);
            e->a = *io;
            lt_status st = parse_args(P, &e->args, &e->nargs);
            if (st != LT_OK) return st;
            *io = e;
        } else {
            return LT_OK;
        }
    }
}

static const char *const k_filters[] = {"trim", "length", "count", "upper", "lower", "string",
                                        "first", "last"};
static const char *const k_tests[] = {"defined", "undefined", "none", "string", "number",
                                      "integer", "mapping", "sequence", "iterable", "true",
                                      "false", "boolean", "float"};

static int known(const char *const *list, size_t n, const token *t) {
    for (size_t k = 0; k < n; k++)
        if (is_name(t, list[k])) return 1;
    return 0;
}

static lt_status parse_filters(parser *P, expr **io) {
    for (;;) {
        token *t = cur(P);
        if (is_op(t, "|")) {
            token *name = &P->toks[P->i + 1];
            if (name->k != T_NAME) return p_fail(P, name->pos, "expected a filter name after '|'");
            if (!known(k_filters, sizeof k_filters / sizeof *k_filters, name))
                return p_fail(P, name->pos,
                              "no filter named '%.*s' (supported: trim, length, count, upper, "
                              "lower, string, first, last)",
                              (int)(name->n > 40 ? 40 : name->n), name->s);
            expr *e = node(P, E_FILTER, name->pos);
            if (!e) return p_nomem(P);
            e->a = *io;
            e->s = name->s;
            e->n = name->n;
            P->i += 2;
            if (is_op(cur(P), "(")) {
                lt_status st = parse_args(P, &e->args, &e->nargs);
                if (st != LT_OK) return st;
                if (e->nargs) return p_fail(P, name->pos, "filter '%.*s' takes no arguments", (int)name->n, name->s);
            }
            *io = e;
        } else if (is_name(t, "is")) {
            P->i++;
            int neg = 0;
            if (is_name(cur(P), "not")) {
                neg = 1;
                P->i++;
            }
            token *name = cur(P);
            if (name->k != T_NAME) return p_fail(P, name->pos, "expected a test name after 'is'");
            /* Jinja2 reads `is none` etc.: the literal names are tests too. */
            if (!known(k_tests, sizeof k_tests / sizeof *k_tests, name))
                return p_fail(P, name->pos,
                              "no test named '%.*s' (supported: defined, undefined, none, string, "
                              "number, integer, float, boolean, mapping, sequence, iterable, "
                              "true, false)",
                              (int)(name->n > 40 ? 40 : name->n), name->s);
            expr *e = node(P, E_TEST, name->pos);
            if (!e) return p_nomem(P);
            e->a = *io;
            e->s = name->s;
            e->n = name->n;
            e->negated = neg;
            P->i++;
            *io = e;
        } else if (is_op(t, "(")) {
            expr *e = node(P, E_CALL, t->pos);
            if (!e) return p_nomem(P);
            e->a = *io;
            lt_status st = parse_args(P, &e->args, &e->nargs);
            if (st != LT_OK) return st;
            *io = e;
        } else {
            return LT_OK;
        }
    }
}

static lt_status enter(parser *P) {
    if (++P->depth > LT_CHAT_MAX_DEPTH)
        return p_fail(P, cur(P)->pos, "nested more than %d levels deep", LT_CHAT_MAX_DEPTH);
    return LT_OK;
}

static lt_status parse_unary(parser *P, expr **out, int with_filter) {
    lt_status st = enter(P);
    if (st != LT_OK) return st;
    token *t = cur(P);
    if (is_op(t, "-") || is_op(t, "+")) {
        P->i++;
        expr *e = node(P, is_op(t, "-") ? E_NEG : E_POS, t->pos);
        if (!e) return p_nomem(P);
        if ((st = parse_unary(P, &e->a, 0)) != LT_OK) return st;
        *out = e;
    } else {
        if ((st = parse_primary(P, out)) != LT_OK) return st;
    }
    if ((st = parse_postfix(P, out)) != LT_OK) return st;
    if (with_filter && (st = parse_filters(P, out)) != LT_OK) return st;
    P->depth--;
    return LT_OK;
}

static lt_status bin(parser *P, int op, size_t pos, expr *l, expr *r, expr **out) {
    expr *e = node(P, E_BIN, pos);
    if (!e) return p_nomem(P);
    e->op = op;
    e->a = l;
    e->b = r;
    *out = e;
    return LT_OK;
}

static lt_status parse_math2(parser *P, expr **out) {
    lt_status st = parse_unary(P, out, 1);
    while (st == LT_OK) {
        token *t = cur(P);
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV
                 : is_op(t, "%") ? OP_MOD : -1;
        if (is_op(t, "**")) return p_fail(P, t->pos, "'**' is not supported");
        if (op < 0) break;
        P->i++;
        expr *r;
        if ((st = parse_unary(P, &r, 1)) != LT_OK) return st;
        st = bin(P, op, t->pos, *out, r, out);
    }
    return st;
}

static lt_status parse_concat(parser *P, expr **out) {
    lt_status st = parse_math2(P, out);
    while (st == LT_OK && is_op(cur(P), "~")) {
        size_t pos = cur(P)->pos;
        P->i++;
        expr *r;
        if ((st = parse_math2(P, &r)) != LT_OK) return st;
        st = bin(P, OP_CONCAT, pos, *out, r, out);
    }
    return st;
}

static lt_status parse_math1(parser *P, expr **out) {
    lt_status st = parse_concat(P, out);
    while (st == LT_OK && (is_op(cur(P), "+") || is_op(cur(P), "-"))) {
        token *t = cur(P);
        int op = is_op(t, "+") ? OP_ADD : OP_SUB;
        P->i++;
        expr *r;
        if ((st = parse_concat(P, &r)) != LT_OK) return st;
        st = bin(P, op, t->pos, *out, r, out);
    }
    return st;
}

static lt_status parse_compare(parser *P, expr **out) {
    expr *first;
    lt_status st = parse_math1(P, &first);
    if (st != LT_OK) return st;
    expr *operands[32];
    int ops[32], n = 0;
    operands[0] = first;
    size_t pos = cur(P)->pos;
    for (;;) {
        token *t = cur(P);
        int op = is_op(t, "==") ? C_EQ : is_op(t, "!=") ? C_NE : is_op(t, "<") ? C_LT
                 : is_op(t, ">") ? C_GT : is_op(t, "<=") ? C_LE : is_op(t, ">=") ? C_GE
                 : is_name(t, "in") ? C_IN : -1;
        if (op < 0 && is_name(t, "not") && is_name(&P->toks[P->i + 1], "in")) {
            op = C_NOTIN;
            P->i++;
        }
        if (op < 0) break;
        if (n == 31) return p_fail(P, t->pos, "more than 31 chained comparisons");
        P->i++;
        ops[n] = op;
        if ((st = parse_math1(P, &operands[n + 1])) != LT_OK) return st;
        n++;
    }
    if (!n) {
        *out = first;
        return LT_OK;
    }
    expr *e = node(P, E_CMP, pos);
    if (!e || !(e->args = arena_alloc(P->a, (size_t)(n + 1) * sizeof *e->args)) ||
        !(e->ops = arena_alloc(P->a, (size_t)n * sizeof *e->ops)))
        return p_nomem(P);
    memcpy(e->args, operands, (size_t)(n + 1) * sizeof *operands);
    memcpy(e->ops, ops, (size_t)n * sizeof *ops);
    e->nargs = n;
    *out = e;
    return LT_OK;
}

static lt_status parse_not(parser *P, expr **out) {
    if (is_name(cur(P), "not")) {
        lt_status st = enter(P);
        if (st != LT_OK) return st;
        expr *e = node(P, E_NOT, cur(P)->pos);
        if (!e) return p_nomem(P);
        P->i++;
        if ((st = parse_not(P, &e->a)) != LT_OK) return st;
        P->depth--;
        *out = e;
        return LT_OK;
    }
    return parse_compare(P, out);
}

static lt_status parse_and(parser *P, expr **out) {
    lt_status st = parse_not(P, out);
    while (st == LT_OK && is_name(cur(P), "and")) {
        expr *e = node(P, E_AND, cur(P)->pos);
        if (!e) return p_nomem(P);
        P->i++;
        e->a = *out;
        if ((st = parse_not(P, &e->b)) != LT_OK) return st;
        *out = e;
    }
    return st;
}

static lt_status parse_or(parser *P, expr **out) {
    lt_status st = parse_and(P, out);
    while (st == LT_OK && is_name(cur(P), "or")) {
        expr *e = node(P, E_OR, cur(P)->pos);
        if (!e) return p_nomem(P);
        P->i++;
        e->a = *out;
        if ((st = parse_and(P, &e->b)) != LT_OK) return st;
        *out = e;
    }
    return st;
}

/* expr [if cond [else expr]] */
static lt_status parse_expr(parser *P, expr **out) {
    lt_status st = enter(P);
    if (st != LT_OK) return st;
    if ((st = parse_or(P, out)) != LT_OK) return st;
    while (is_name(cur(P), "if")) {
        expr *e = node(P, E_COND, cur(P)->pos);
        if (!e) return p_nomem(P);
        P->i++;
        e->b = *out;
        if ((st = parse_or(P, &e->a)) != LT_OK) return st;
        if (is_name(cur(P), "else")) {
            P->i++;
            if ((st = parse_expr(P, &e->c)) != LT_OK) return st;
        }
        *out = e;
    }
    P->depth--;
    return LT_OK;
}

static lt_status expect_block_end(parser *P) {
    if (cur(P)->k == T_BLOCK_END) {
        P->i++;
        return LT_OK;
    }
    char b[64];
    return p_fail(P, cur(P)->pos, "expected '%%}', got %s", tok_desc(cur(P), b, sizeof b));
}

/* Statements until a block tag whose name is one of stops (left unread:
 * P->i at its name), or the end when stops is NULL. */
static lt_status parse_body(parser *P, body *out, const char *const *stops, size_t *open_pos);

static lt_status append(parser *P, stmt ***v, int *n, int *cap, stmt *s) {
    if (*n == *cap) {
        int c = *cap ? 2 * *cap : 8;
        stmt **nv = arena_alloc(P->a, (size_t)c * sizeof *nv);
        if (!nv) return p_nomem(P);
        if (*v) memcpy(nv, *v, (size_t)*n * sizeof *nv);
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = s;
    return LT_OK;
}

static int is_stop(const token *t, const char *const *stops) {
    for (; stops && *stops; stops++)
        if (is_name(t, *stops)) return 1;
    return 0;
}

static lt_status parse_if(parser *P, stmt *s) {
    static const char *const stops[] = {"elif", "else", "endif", NULL};
    expr *conds[64];
    body bodies[64];
    int n = 0;
    lt_status st;
    for (;;) {
        if (n == 64) return p_fail(P, cur(P)->pos, "more than 64 elif branches");
        if ((st = parse_expr(P, &conds[n])) != LT_OK) return st;
        if ((st = expect_block_end(P)) != LT_OK) return st;
        if ((st = parse_body(P, &bodies[n], stops, &s->pos)) != LT_OK) return st;
        n++;
        token *t = cur(P);
        P->i++;
        if (is_name(t, "elif")) continue;
        if (is_name(t, "else")) {
            if ((st = expect_block_end(P)) != LT_OK) return st;
            static const char *const end[] = {"endif", NULL};
            if ((st = parse_body(P, &s->else_body, end, &s->pos)) != LT_OK) return st;
            s->has_else = 1;
            P->i++;
        }
        break;
    }
    s->nbranches = n;
    s->conds = arena_alloc(P->a, (size_t)n * sizeof *s->conds);
    s->bodies = arena_alloc(P->a, (size_t)n * sizeof *s->bodies);
    if (!s->conds || !s->bodies) return p_nomem(P);
    memcpy(s->conds, conds, (size_t)n * sizeof *conds);
    memcpy(s->bodies, bodies, (size_t)n * sizeof *bodies);
    return expect_block_end(P);
}

static int reserved(const token *t) {
    static const char *const words[] = {"true", "false", "none", "True", "False", "None",
                                        "and", "or", "not", "in", "is", "if", "else", "loop"};
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        if (is_name(t, words[k])) return 1;
    return 0;
}

static lt_status parse_for(parser *P, stmt *s) {
    token *v = cur(P);
    if (v->k != T_NAME || reserved(v))
        return p_fail(P, v->pos, "expected a loop variable name after 'for'");
    if (is_op(&P->toks[P->i + 1], ","))
        return p_fail(P, v->pos, "unpacking several loop variables is not supported");
    s->name = v->s;
    s->name_len = v->n;
    P->i++;
    if (!is_name(cur(P), "in")) return p_fail(P, cur(P)->pos, "expected 'in' after the loop variable");
    P->i++;
    lt_status st = parse_or(P, &s->e);
    if (st != LT_OK) return st;
    if (is_name(cur(P), "if")) return p_fail(P, cur(P)->pos, "loop filters ('for x in y if c') are not supported");
    if (is_name(cur(P), "recursive")) return p_fail(P, cur(P)->pos, "recursive loops are not supported");
    if ((st = expect_block_end(P)) != LT_OK) return st;
    static const char *const stops[] = {"else", "endfor", NULL};
    s->bodies = arena_alloc(P->a, sizeof *s->bodies);
    if (!s->bodies) return p_nomem(P);
    s->nbranches = 1;
    if ((st = parse_body(P, &s->bodies[0], stops, &s->pos)) != LT_OK) return st;
    if (is_name(cur(P), "else")) {
        P->i++;
        if ((st = expect_block_end(P)) != LT_OK) return st;
        static const char *const end[] = {"endfor", NULL};
        if ((st = parse_body(P, &s->else_body, end, &s->pos)) != LT_OK) return st;
        s->has_else = 1;
    }
    P->i++;
    return expect_block_end(P);
}

static lt_status parse_body(parser *P, body *out, const char *const *stops, size_t *open_pos) {
    lt_status st = enter(P);
    if (st != LT_OK) return st;
    stmt **v = NULL;
    int n = 0, cap = 0;
    for (;;) {
        token *t = cur(P);
        if (t->k == T_EOF) {
            if (stops)
                return p_fail(P, *open_pos, "this block is never closed (expected '{%% %s %%}' before the end)",
                              !strcmp(stops[0], "elif") ? "endif" : !strcmp(stops[0], "else") ? "endfor" : stops[0]);
            break;
        }
        stmt *s = arena_alloc(P->a, sizeof *s);
        if (!s) return p_nomem(P);
        s->pos = t->pos;
        if (t->k == T_TEXT) {
            s->k = S_TEXT;
            s->text = t->s;
            s->len = t->n;
            P->i++;
        } else if (t->k == T_VAR_BEGIN) {
            P->i++;
            s->k = S_OUT;
            if ((st = parse_expr(P, &s->e)) != LT_OK) return st;
            if (cur(P)->k != T_VAR_END) {
                char b[64];
                return p_fail(P, cur(P)->pos, "expected '}}', got %s", tok_desc(cur(P), b, sizeof b));
            }
            P->i++;
        } else if (t->k == T_BLOCK_BEGIN) {
            token *name = &P->toks[P->i + 1];
            if (is_stop(name, stops)) {
                P->i++;
                break;
            }
            P->i += 2;
            if (is_name(name, "if")) {
                s->k = S_IF;
                st = parse_if(P, s);
            } else if (is_name(name, "for")) {
                s->k = S_FOR;
                st = parse_for(P, s);
            } else if (is_name(name, "set")) {
                s->k = S_SET;
                token *v2 = cur(P);
                if (v2->k != T_NAME || reserved(v2))
                    return p_fail(P, v2->pos, "expected a variable name after 'set'");
                if (is_op(&P->toks[P->i + 1], "."))
                    return p_fail(P, v2->pos, "assigning to an attribute (namespace) is not supported");
                s->name = v2->s;
                s->name_len = v2->n;
                P->i++;
                if (!is_op(cur(P), "="))
                    return p_fail(P, cur(P)->pos, "expected '=' after 'set %.*s' (block set is not supported)",
                                  (int)(v2->n > 40 ? 40 : v2->n), v2->s);
                P->i++;
                if ((st = parse_expr(P, &s->e)) == LT_OK) st = expect_block_end(P);
            } else if (is_name(name, "generation")) {
                /* transformers' extension marking assistant output for
                 * return_assistant_tokens_mask: rendered as its body. */
                static const char *const end[] = {"endgeneration", NULL};
                s->k = S_GENERATION;
                s->nbranches = 1;
                s->bodies = arena_alloc(P->a, sizeof *s->bodies);
                if (!s->bodies) return p_nomem(P);
                if ((st = expect_block_end(P)) == LT_OK && (st = parse_body(P, &s->bodies[0], end, &s->pos)) == LT_OK) {
                    P->i++;
                    st = expect_block_end(P);
                }
            } else if (is_name(name, "break") || is_name(name, "continue")) {
                s->k = is_name(name, "break") ? S_BREAK : S_CONTINUE;
                st = expect_block_end(P);
            } else {
                char b[64];
                return p_fail(P, name->pos,
                              "unknown or unexpected tag %s (supported: if, elif, else, endif, for, "
                              "endfor, set, break, continue, generation)",
                              tok_desc(name, b, sizeof b));
            }
            if (st != LT_OK) return st;
        } else {
            char b[64];
            return p_fail(P, t->pos, "unexpected %s", tok_desc(t, b, sizeof b));
        }
        if ((st = append(P, &v, &n, &cap, s)) != LT_OK) return st;
    }
    out->v = v;
    out->n = n;
    P->depth--;
    return LT_OK;
}

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = lt_alloc(LT_MEM_OTHER, n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

void lt_chat_template_free(lt_chat_template *t) {
    if (!t) return;
    arena_free(&t->mem);
    lt_free(t->src);
    lt_free(t->name);
    lt_free(t->bos);
    lt_free(t->eos);
    lt_free(t);
}

lt_status lt_chat_template_parse(const char *src, size_t len, const char *name,
                                 lt_chat_template **out, lt_error *err) {
    if (!out) return lt_fail(err, LT_ERR_INVALID, "chat template parse: NULL output");
    *out = NULL;
    if (!src && len) return lt_fail(err, LT_ERR_INVALID, "chat template parse: NULL source");
    if (!name) name = "(string)";
    lt_chat_template *t = lt_alloc(LT_MEM_OTHER, sizeof *t);
    if (!t) return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", name);
    t->name = dup_str(name);
    t->src = lt_alloc(LT_MEM_OTHER, len + 1);
    if (!t->name || !t->src) {
        lt_chat_template_free(t);
        return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", name);
    }
    /* Jinja2 reads \r\n and \r as \n and drops one trailing newline. */
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            t->src[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            t->src[n++] = src[i];
        }
    }
    if (n && t->src[n - 1] == '\n') n--;
    t->src[n] = '\0';
    t->src_len = n;
    if (memchr(t->src, '\0', n)) {
        size_t at = (size_t)((char *)memchr(t->src, '\0', n) - t->src);
        lt_status st = fail_at(err, LT_ERR_FORMAT, t->name, t->src, n, at, "NUL byte in the template");
        lt_chat_template_free(t);
        return st;
    }
    lexer L = {t, &t->mem, t->src, n, NULL, 0, 0, err};
    lt_status st = lex(&L);
    if (st == LT_OK) {
        parser P = {t, &t->mem, L.toks, 0, L.ntok, 0, err};
        st = parse_body(&P, &t->root, NULL, NULL);
    }
    lt_free(L.toks);
    if (st != LT_OK) {
        lt_chat_template_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}

lt_status lt_chat_template_set_tokens(lt_chat_template *t, const char *bos_token,
                                      const char *eos_token, lt_error *err) {
    if (!t) return lt_fail(err, LT_ERR_INVALID, "chat template: NULL template");
    lt_free(t->bos);
    lt_free(t->eos);
    t->bos = dup_str(bos_token);
    t->eos = dup_str(eos_token);
    if ((bos_token && !t->bos) || (eos_token && !t->eos))
        return lt_fail(err, LT_ERR_NOMEM, "chat template %s: out of memory", t->name);
    return LT_OK;
}

const char *lt_chat_template_bos(const lt_chat_template *t) { return t ? t->bos : NULL; }
const char *lt_chat_template_eos(const lt_chat_template *t) { return t ? t->eos : NULL; }
const char *lt_chat_template_name(const lt_chat_template *t) { return t ? t->name : ""; }

/* ---------------------------------------------------------- values */

typedef enum { V_UNDEF, V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_LIST, V_DICT, V_LOOP, V_FUNC } vkind;

typedef struct loop_state loop_state;
typedef struct value value;
struct value {
    vkind k;
    int64_t i; /* bool, int */
    double f;
    const char *s; /* str bytes; V_UNDEF: what is undefined; V_FUNC: its name */
    size_t n;      /* str length; list length */
    const cJSON *json; /* list: the array (items NULL) or dict: the object */
    const value *items; /* list of values (literals, range, slices of them) */
    size_t start;       /* list over json: first index */
    const loop_state *loop;
    const value *self; /* V_FUNC: the bound object of a method */
};

struct loop_state {
    int64_t index0, length;
};

typedef struct var {
    const char *name;
    size_t n;
    value v;
} var;

typedef struct frame {
    struct frame *up;
    var *v;
    int n, cap;
} frame;

typedef struct {
    const lt_chat_template *t;
    arena a;
    char *out;
    size_t out_len, out_cap;
    long steps;
    int depth;
    lt_error *err;
    value messages, add_gen, bos, eos;
} render;

typedef enum { FLOW_NONE, FLOW_BREAK, FLOW_CONTINUE } flow;

static lt_status r_fail(render *R, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static lt_status r_fail(render *R, size_t pos, const char *fmt, ...) {
    char msg[LT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fail_at(R->err, LT_ERR_FORMAT, R->t->name, R->t->src, R->t->src_len, pos, "%s", msg);
}

static lt_status r_nomem(render *R) {
    return lt_fail(R->err, LT_ERR_NOMEM, "chat template %s: out of memory while rendering (over %u MiB)",
                   R->t->name, (unsigned)(MAX_ARENA >> 20));
}

static value v_undef(const char *what) {
    value v = {0};
    v.k = V_UNDEF;
    v.s = what;
    return v;
}

static value v_str(const char *s, size_t n) {
    value v = {0};
    v.k = V_STR;
    v.s = s;
    v.n = n;
    return v;
}

static value v_int(int64_t i) {
    value v = {0};
    v.k = V_INT;
    v.i = i;
    return v;
}

static value v_bool(int b) {
    value v = {0};
    v.k = V_BOOL;
    v.i = b != 0;
    return v;
}

static value from_json(const cJSON *j) {
    value v = {0};
    if (!j) return v_undef("item");
    if (cJSON_IsString(j)) return v_str(j->valuestring, strlen(j->valuestring));
    if (cJSON_IsBool(j)) return v_bool(cJSON_IsTrue(j));
    if (cJSON_IsNull(j)) {
        v.k = V_NONE;
        return v;
    }
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.0e15) return v_int((int64_t)d);
        v.k = V_FLOAT;
        v.f = d;
        return v;
    }
    if (cJSON_IsArray(j)) {
        v.k = V_LIST;
        v.json = j;
        v.n = (size_t)cJSON_GetArraySize(j);
        return v;
    }
    if (cJSON_IsObject(j)) {
        v.k = V_DICT;
        v.json = j;
        return v;
    }
    return v_undef("item");
}

static value list_at(const value *l, size_t i) {
    if (l->items) return l->items[i];
    return from_json(cJSON_GetArrayItem(l->json, (int)(l->start + i)));
}

static const char *type_name(const value *v) {
    switch (v->k) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return "str";
    case V_LIST: return "list";
    case V_DICT: return "dict";
    case V_LOOP: return "LoopContext";
    default: return "function";
    }
}

static int truthy(const value *v) {
    switch (v->k) {
    case V_UNDEF:
    case V_NONE: return 0;
    case V_BOOL:
    case V_INT: return v->i != 0;
    case V_FLOAT: return v->f != 0.0;
    case V_STR:
    case V_LIST: return v->n != 0;
    case V_DICT: return v->json->child != NULL;
    default: return 1;
    }
}

/* --- a growable byte buffer in the render arena, for str(value) */

typedef struct {
    render *R;
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 64;
        while (c < b->n + n) c *= 2;
        char *q = c <= MAX_ARENA ? arena_alloc(&b->R->a, c) : NULL;
        if (!q) {
            b->oom = 1;
            return;
        }
        if (b->n) memcpy(q, b->p, b->n);
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* Python's repr of a float: the shortest digits that read back, fixed
 * notation for exponents -4..15, else d.ddde+XX. */
static void fmt_float(double d, char *out, size_t cap) {
    if (isnan(d)) {
        snprintf(out, cap, "nan");
        return;
    }
    if (isinf(d)) {
        snprintf(out, cap, d < 0 ? "-inf" : "inf");
        return;
    }
    char e[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
    }
    char *ep = strchr(e, 'e');
    int exp = atoi(ep + 1);
    *ep = '\0';
    char digits[32];
    size_t nd = 0;
    int neg = e[0] == '-';
    for (char *c = e + neg; *c; c++)
        if (*c >= '0' && *c <= '9') digits[nd++] = *c;
    digits[nd] = '\0';
    if (exp >= -5 + 1 && exp < 16) {
        char buf[64];
        size_t o = 0;
        if (neg) buf[o++] = '-';
        if (exp < 0) {
            buf[o++] = '0';
            buf[o++] = '.';
            for (int k = 0; k < -exp - 1; k++) buf[o++] = '0';
            for (size_t k = 0; k < nd; k++) buf[o++] = digits[k];
        } else {
            for (int k = 0; k <= exp; k++) buf[o++] = (size_t)k < nd ? digits[k] : '0';
            buf[o++] = '.';
            if ((size_t)exp + 1 < nd)
                for (size_t k = (size_t)exp + 1; k < nd; k++) buf[o++] = digits[k];
            else
                buf[o++] = '0';
        }
        buf[o] = '\0';
        snprintf(out, cap, "%s", buf);
    } else {
        snprintf(out, cap, "%s%c%s%se%c%02d", neg ? "-" : "", digits[0], nd > 1 ? "." : "",
                 digits + 1, exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void repr_str(sbuf *b, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    sb_put(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\\') sb_str(b, "\\\\");
        else if (c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c == '\n') sb_str(b, "\\n");
        else if (c == '\r') sb_str(b, "\\r");
        else if (c == '\t') sb_str(b, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            sb_str(b, esc);
        } else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, &q, 1);
}

static void to_str(sbuf *b, const value *v, int repr, int depth);

static void repr_json_key(sbuf *b, const cJSON *j) {
    repr_str(b, j->string ? j->string : "", j->string ? strlen(j->string) : 0);
}

static void to_str(sbuf *b, const value *v, int repr, int depth) {
    char num[64];
    if (depth > LT_CHAT_MAX_DEPTH) {
        sb_str(b, "[...]");
        return;
    }
    switch (v->k) {
    case V_UNDEF: break;
    case V_NONE: sb_str(b, "None"); break;
    case V_BOOL: sb_str(b, v->i ? "True" : "False"); break;
    case V_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->i);
        sb_str(b, num);
        break;
    case V_FLOAT:
        fmt_float(v->f, num, sizeof num);
        sb_str(b, num);
        break;
    case V_STR:
        if (repr) repr_str(b, v->s, v->n);
        else sb_put(b, v->s, v->n);
        break;
    case V_LIST:
        sb_str(b, "[");
        for (size_t i = 0; i < v->n && !b->oom; i++) {
            if (i) sb_str(b, ", ");
            value it = list_at(v, i);
            to_str(b, &it, 1, depth + 1);
        }
        sb_str(b, "]");
        break;
    case V_DICT: {
        sb_str(b, "{");
        int first = 1;
        for (const cJSON *c = v->json->child; c && !b->oom; c = c->next) {
            if (!first) sb_str(b, ", ");
            first = 0;
            repr_json_key(b, c);
            sb_str(b, ": ");
            value it = from_json(c);
            to_str(b, &it, 1, depth + 1);
        }
        sb_str(b, "}");
        break;
    }
    case V_LOOP: sb_str(b, "<LoopContext>"); break;
    default: sb_str(b, "<function>"); break;
    }
}

static lt_status stringify(render *R, const value *v, value *out) {
    if (v->k == V_STR) {
        *out = *v;
        return LT_OK;
    }
    sbuf b = {R, NULL, 0, 0, 0};
    to_str(&b, v, 0, 0);
    if (b.oom) return r_nomem(R);
    *out = v_str(b.p ? b.p : "", b.n);
    return LT_OK;
}

static lt_status emit(render *R, const char *s, size_t n) {
    if (R->out_len + n > MAX_OUTPUT)
        return lt_fail(R->err, LT_ERR_FORMAT, "chat template %s: the output exceeds %u MiB",
                       R->t->name, (unsigned)(MAX_OUTPUT >> 20));
    if (R->out_len + n + 1 > R->out_cap) {
        size_t c = R->out_cap ? R->out_cap : 4096;
        while (c < R->out_len + n + 1) c *= 2;
        char *q = lt_alloc(LT_MEM_OTHER, c);
        if (!q) return r_nomem(R);
        if (R->out_len) memcpy(q, R->out, R->out_len);
        lt_free(R->out);
        R->out = q;
        R->out_cap = c;
    }
    memcpy(R->out + R->out_len, s, n);
    R->out_len += n;
    R->out[R->out_len] = '\0';
    return LT_OK;
}

/* --- equality and ordering, Python's (bool is an int; Undefined equals
 * Undefined only) */

static int num_of(const value *v, double *d) {
    if (v->k == V_INT || v->k == V_BOOL) *d = (double)v->i;
    else if (v->k == V_FLOAT) *d = v->f;
    else return 0;
    return 1;
}

static int equal(const value *a, const value *b, int depth);

static int list_equal(const value *a, const value *b, int depth) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        value x = list_at(a, i), y = list_at(b, i);
        if (!equal(&x, &y, depth + 1)) return 0;
    }
    return 1;
}

static int equal(const value *a, const value *b, int depth) {
    double x, y;
    if (depth > LT_CHAT_MAX_DEPTH) return 0;
    if ((a->k == V_INT || a->k == V_BOOL) && (b->k == V_INT || b->k == V_BOOL)) return a->i == b->i;
    if (num_of(a, &x) && num_of(b, &y)) return x == y;
    if (a->k != b->k) return 0;
    switch (a->k) {
    case V_UNDEF:
    case V_NONE: return 1;
    case V_STR: return a->n == b->n && !memcmp(a->s, b->s, a->n);
    case V_LIST: return list_equal(a, b, depth);
    case V_DICT: {
        if (a->json == b->json) return 1;
        int na = cJSON_GetArraySize(a->json), nb = cJSON_GetArraySize(b->json);
        if (na != nb) return 0;
        for (const cJSON *c = a->json->child; c; c = c->next) {
            const cJSON *o = c->string ? cJSON_GetObjectItemCaseSensitive(b->json, c->string) : NULL;
            if (!o) return 0;
            value x2 = from_json(c), y2 = from_json(o);
            if (!equal(&x2, &y2, depth + 1)) return 0;
        }
        return 1;
    }
    default: return a == b;
    }
}

/* -1, 0, 1, or 2 when the types do not order. */
static int order(const value *a, const value *b) {
    double x, y;
    if ((a->k == V_INT || a->k == V_BOOL) && (b->k == V_INT || b->k == V_BOOL))
        return (a->i > b->i) - (a->i < b->i);
    if (num_of(a, &x) && num_of(b, &y)) return (x > y) - (x < y);
    if (a->k == V_STR && b->k == V_STR) {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = memcmp(a->s, b->s, n);
        if (c) return c > 0 ? 1 : -1;
        return (a->n > b->n) - (a->n < b->n);
    }
    return 2;
}

/* --- UTF-8 code points (Python strings index characters, not bytes) */

static size_t cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Byte offset of code point k (k <= count). */
static size_t cp_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (i < n && k > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

/* ---------------------------------------------------------- evaluation */

static lt_status eval(render *R, frame *F, const expr *e, value *out);

static lt_status step(render *R, size_t pos) {
    if (++R->steps > MAX_STEPS)
        return r_fail(R, pos, "rendering takes more than %ld steps (a runaway loop?)", MAX_STEPS);
    return LT_OK;
}

static int lookup(render *R, frame *F, const char *name, size_t n, value *out) {
    for (frame *f = F; f; f = f->up)
        for (int k = f->n - 1; k >= 0; k--)
            if (f->v[k].n == n && !memcmp(f->v[k].name, name, n)) {
                *out = f->v[k].v;
                return 1;
            }
#define IS(lit) (n == sizeof lit - 1 && !memcmp(name, lit, n))
    if (IS("messages")) *out = R->messages;
    else if (IS("add_generation_prompt")) *out = R->add_gen;
    else if (IS("bos_token")) *out = R->bos;
    else if (IS("eos_token")) *out = R->eos;
    else if (IS("tools") || IS("documents")) {
        value v = {0};
        v.k = V_NONE;
        *out = v;
    } else if (IS("raise_exception") || IS("range")) {
        value v = {0};
        v.k = V_FUNC;
        v.s = IS("range") ? "range" : "raise_exception";
        *out = v;
    } else return 0;
#undef IS
    return 1;
}

static lt_status set_var(render *R, frame *F, const char *name, size_t n, value v) {
    for (int k = 0; k < F->n; k++)
        if (F->v[k].n == n && !memcmp(F->v[k].name, name, n)) {
            F->v[k].v = v;
            return LT_OK;
        }
    if (F->n == F->cap) {
        int c = F->cap ? 2 * F->cap : 8;
        var *nv = arena_alloc(&R->a, (size_t)c * sizeof *nv);
        if (!nv) return r_nomem(R);
        if (F->v) memcpy(nv, F->v, (size_t)F->n * sizeof *nv);
        F->v = nv;
        F->cap = c;
    }
    F->v[F->n++] = (var){name, n, v};
    return LT_OK;
}

/* "<a><b><c>" in the render arena, for an Undefined's later error. */
static char *undef_msg(render *R, const char *a, const char *b, size_t bn, const char *c) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s%.*s%s", a, (int)(bn > 60 ? 60 : bn), b, c);
    size_t n = strlen(tmp);
    char *s = arena_alloc(&R->a, n + 1);
    if (s) memcpy(s, tmp, n + 1);
    return s ? s : "a value is undefined";
}

static lt_status undefined_use(render *R, size_t pos, const value *v) {
    return r_fail(R, pos, "%s", v->s ? v->s : "a value is undefined");
}

/* obj[key] for a string key or obj.attr: dicts give their item; anything
 * else has no attribute (Undefined, as Jinja2 gives). */
static lt_status get_attr(render *R, size_t pos, const value *obj, const char *name, size_t n,
                          value *out) {
    if (obj->k == V_UNDEF) return undefined_use(R, pos, obj);
    if (obj->k == V_DICT) {
        for (const cJSON *c = obj->json->child; c; c = c->next)
            if (c->string && strlen(c->string) == n && !memcmp(c->string, name, n)) {
                *out = from_json(c);
                return LT_OK;
            }
    }
    if (obj->k == V_LOOP) {
        const loop_state *L = obj->loop;
        int64_t v = -1;
#define IS(lit) (n == sizeof lit - 1 && !memcmp(name, lit, n))
        if (IS("index0")) v = L->index0;
        else if (IS("index")) v = L->index0 + 1;
        else if (IS("revindex")) v = L->length - L->index0;
        else if (IS("revindex0")) v = L->length - L->index0 - 1;
        else if (IS("length")) v = L->length;
        else if (IS("first")) {
            *out = v_bool(L->index0 == 0);
            return LT_OK;
        } else if (IS("last")) {
            *out = v_bool(L->index0 == L->length - 1);
            return LT_OK;
        }
#undef IS
        if (v >= 0) {
            *out = v_int(v);
            return LT_OK;
        }
    }
    static const char *const str_methods[] = {"strip", "lstrip", "rstrip", "upper", "lower",
                                              "startswith", "endswith", "split", "title"};
    const char *const *methods = obj->k == V_STR ? str_methods : NULL;
    size_t nm = obj->k == V_STR ? sizeof str_methods / sizeof *str_methods : 0;
    static const char *const dict_methods[] = {"get"};
    if (obj->k == V_DICT) {
        methods = dict_methods;
        nm = 1;
    }
    for (size_t k = 0; k < nm; k++)
        if (strlen(methods[k]) == n && !memcmp(methods[k], name, n)) {
            value f = {0};
            f.k = V_FUNC;
            f.s = methods[k];
            value *self = arena_alloc(&R->a, sizeof *self);
            if (!self) return r_nomem(R);
            *self = *obj;
            f.self = self;
            *out = f;
            return LT_OK;
        }
    char pre[64];
    snprintf(pre, sizeof pre, "'%s object' has no attribute '", type_name(obj));
    *out = v_undef(undef_msg(R, pre, name, n, "'"));
    return LT_OK;
}

static lt_status get_item(render *R, size_t pos, const value *obj, const value *key, value *out) {
    if (obj->k == V_UNDEF) return undefined_use(R, pos, obj);
    if (key->k == V_STR) return get_attr(R, pos, obj, key->s, key->n, out);
    if ((key->k == V_INT || key->k == V_BOOL) && (obj->k == V_LIST || obj->k == V_STR)) {
        int64_t i = key->i;
        size_t len = obj->k == V_LIST ? obj->n : cp_count(obj->s, obj->n);
        if (i < 0) i += (int64_t)len;
        if (i < 0 || (uint64_t)i >= len) {
            *out = v_undef(obj->k == V_LIST ? "list index out of range" : "string index out of range");
            return LT_OK;
        }
        if (obj->k == V_LIST) {
            *out = list_at(obj, (size_t)i);
        } else {
            size_t a = cp_offset(obj->s, obj->n, (size_t)i);
            size_t b = cp_offset(obj->s, obj->n, (size_t)i + 1);
            *out = v_str(obj->s + a, b - a);
        }
        return LT_OK;
    }
    char pre[64];
    snprintf(pre, sizeof pre, "'%s object' has no item of type ", type_name(obj));
    *out = v_undef(undef_msg(R, pre, type_name(key), strlen(type_name(key)), ""));
    return LT_OK;
}

/* Python's slice bounds for length len and step 1 or -1 style steps. */
static lt_status slice(render *R, const expr *e, const value *obj, const value *a, const value *b,
                       const value *c, value *out) {
    if (obj->k == V_UNDEF) return undefined_use(R, e->pos, obj);
    if (obj->k != V_LIST && obj->k != V_STR)
        return r_fail(R, e->pos, "cannot slice a %s, expected a list or string", type_name(obj));
    const value *bounds[3] = {a, b, c};
    int64_t v[3] = {0, 0, 1};
    int given[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (!bounds[k] || bounds[k]->k == V_NONE) continue;
        if (bounds[k]->k != V_INT && bounds[k]->k != V_BOOL)
            return r_fail(R, e->pos, "slice indices must be integers or none, got %s", type_name(bounds[k]));
        v[k] = bounds[k]->i;
        given[k] = 1;
    }
    if (v[2] == 0) return r_fail(R, e->pos, "slice step cannot be zero");
    const int64_t len = obj->k == V_LIST ? (int64_t)obj->n : (int64_t)cp_count(obj->s, obj->n);
    const int64_t st = v[2];
    int64_t lo, hi;
    if (st > 0) {
        lo = given[0] ? (v[0] < 0 ? (v[0] + len < 0 ? 0 : v[0] + len) : (v[0] > len ? len : v[0])) : 0;
        hi = given[1] ? (v[1] < 0 ? (v[1] + len < 0 ? 0 : v[1] + len) : (v[1] > len ? len : v[1])) : len;
    } else {
        lo = given[0] ? (v[0] < 0 ? (v[0] + len < 0 ? -1 : v[0] + len) : (v[0] >= len ? len - 1 : v[0])) : len - 1;
        hi = given[1] ? (v[1] < 0 ? (v[1] + len < 0 ? -1 : v[1] + len) : (v[1] >= len ? len - 1 : v[1])) : -1;
    }
    size_t count = 0;
    if (st > 0 && hi > lo) count = (size_t)((hi - lo + st - 1) / st);
    if (st < 0 && lo > hi) count = (size_t)((lo - hi + (-st) - 1) / (-st));
    if (obj->k == V_LIST && st == 1 && !obj->items) {
        *out = *obj;
        out->start = obj->start + (size_t)lo;
        out->n = count;
        return LT_OK;
    }
    if (obj->k == V_LIST) {
        value *items = count ? arena_alloc(&R->a, count * sizeof *items) : NULL;
        if (count && !items) return r_nomem(R);
        for (size_t k = 0; k < count; k++) items[k] = list_at(obj, (size_t)(lo + (int64_t)k * st));
        value l = {0};
        l.k = V_LIST;
        l.items = items;
        l.n = count;
        static const value none = {0};
        if (!count) l.items = &none;
        *out = l;
        return LT_OK;
    }
    sbuf sb = {R, NULL, 0, 0, 0};
    for (size_t k = 0; k < count; k++) {
        size_t i = (size_t)(lo + (int64_t)k * st);
        size_t x = cp_offset(obj->s, obj->n, i), y = cp_offset(obj->s, obj->n, i + 1);
        sb_put(&sb, obj->s + x, y - x);
    }
    if (sb.oom) return r_nomem(R);
    *out = v_str(sb.p ? sb.p : "", sb.n);
    return LT_OK;
}

static void ascii_case(char *s, size_t n, int upper) {
    for (size_t i = 0; i < n; i++) {
        if (upper && s[i] >= 'a' && s[i] <= 'z') s[i] = (char)(s[i] - 32);
        if (!upper && s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] + 32);
    }
}

static lt_status copy_str(render *R, const char *s, size_t n, value *out, char **w) {
    char *p = arena_alloc(&R->a, n + 1);
    if (!p) return r_nomem(R);
    memcpy(p, s, n);
    *out = v_str(p, n);
    *w = p;
    return LT_OK;
}

static lt_status strip(render *R, const value *v, int left, int right, const value *chars,
                       value *out) {
    const char *s = v->s;
    size_t a = 0, b = v->n;
#define DROP(c) (chars ? memchr(chars->s, (c), chars->n) != NULL : is_space((unsigned char)(c)))
    if (left)
        while (a < b && DROP(s[a])) a++;
    if (right)
        while (b > a && DROP(s[b - 1])) b--;
#undef DROP
    (void)R;
    *out = v_str(s + a, b - a);
    return LT_OK;
}

static lt_status call(render *R, frame *F, const expr *e, value *out) {
    value fn;
    lt_status st = eval(R, F, e->a, &fn);
    if (st != LT_OK) return st;
    value args[16];
    for (int k = 0; k < e->nargs; k++)
        if ((st = eval(R, F, e->args[k], &args[k])) != LT_OK) return st;
    if (fn.k == V_UNDEF) return undefined_use(R, e->pos, &fn);
    if (fn.k != V_FUNC) return r_fail(R, e->pos, "a %s is not callable", type_name(&fn));
    const char *name = fn.s;
    if (!strcmp(name, "raise_exception")) {
        value m = {0};
        if (e->nargs >= 1 && (st = stringify(R, &args[0], &m)) != LT_OK) return st;
        return r_fail(R, e->pos, "raise_exception: %.*s", (int)(m.n > 400 ? 400 : m.n), m.s ? m.s : "");
    }
    if (!strcmp(name, "range")) {
        int64_t lo = 0, hi = 0, sp = 1;
        for (int k = 0; k < e->nargs; k++)
            if (args[k].k != V_INT && args[k].k != V_BOOL)
                return r_fail(R, e->pos, "range() takes integers, got %s", type_name(&args[k]));
        if (e->nargs == 1) hi = args[0].i;
        else if (e->nargs >= 2) {
            lo = args[0].i;
            hi = args[1].i;
            if (e->nargs == 3) sp = args[2].i;
        }
        if (e->nargs < 1 || e->nargs > 3 || sp == 0)
            return r_fail(R, e->pos, "range() takes 1 to 3 integer arguments, the step not 0");
        int64_t cnt = sp > 0 ? (hi > lo ? (hi - lo + sp - 1) / sp : 0) : (lo > hi ? (lo - hi - sp - 1) / -sp : 0);
        if (cnt > MAX_RANGE) return r_fail(R, e->pos, "range() of more than %d items", MAX_RANGE);
        value *items = arena_alloc(&R->a, (size_t)(cnt ? cnt : 1) * sizeof *items);
        if (!items) return r_nomem(R);
        for (int64_t k = 0; k < cnt; k++) items[k] = v_int(lo + k * sp);
        value l = {0};
        l.k = V_LIST;
        l.items = items;
        l.n = (size_t)cnt;
        *out = l;
        return LT_OK;
    }
    const value *self = fn.self;
    if (!strcmp(name, "get")) {
        if (e->nargs < 1 || e->nargs > 2) return r_fail(R, e->pos, "get() takes 1 or 2 arguments");
        if (args[0].k != V_STR) {
            value none = {0};
            none.k = V_NONE;
            *out = e->nargs == 2 ? args[1] : none;
            return LT_OK;
        }
        for (const cJSON *c = self->json->child; c; c = c->next)
            if (c->string && strlen(c->string) == args[0].n && !memcmp(c->string, args[0].s, args[0].n)) {
                *out = from_json(c);
                return LT_OK;
            }
        value none = {0};
        none.k = V_NONE;
        *out = e->nargs == 2 ? args[1] : none;
        return LT_OK;
    }
    /* string methods */
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        if (e->nargs > 1) return r_fail(R, e->pos, "%s() takes at most 1 argument", name);
        const value *chars = NULL;
        if (e->nargs == 1 && args[0].k != V_NONE) {
            if (args[0].k != V_STR) return r_fail(R, e->pos, "%s() argument must be a string or none", name);
            chars = &args[0];
        }
        return strip(R, self, name[0] != 'r', name[0] != 'l', chars, out);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower")) {
        if (e->nargs) return r_fail(R, e->pos, "%s() takes no arguments", name);
        char *w;
        if ((st = copy_str(R, self->s, self->n, out, &w)) != LT_OK) return st;
        ascii_case(w, out->n, name[0] == 'u');
        return LT_OK;
    }
    if (!strcmp(name, "title")) {
        if (e->nargs) return r_fail(R, e->pos, "title() takes no arguments");
        char *s;
        if ((st = copy_str(R, self->s, self->n, out, &s)) != LT_OK) return st;
        int prev_letter = 0;
        for (size_t i = 0; i < out->n; i++) {
            int letter = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z');
            if (letter) ascii_case(s + i, 1, !prev_letter);
            prev_letter = letter || ((unsigned char)s[i] >= 0x80);
        }
        return LT_OK;
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (e->nargs != 1 || args[0].k != V_STR)
            return r_fail(R, e->pos, "%s() takes one string argument", name);
        const value *p = &args[0];
        int r = p->n <= self->n &&
                !memcmp(name[0] == 's' ? self->s : self->s + self->n - p->n, p->s, p->n);
        *out = v_bool(r);
        return LT_OK;
    }
    if (!strcmp(name, "split")) {
        if (e->nargs > 1 || (e->nargs == 1 && args[0].k != V_STR && args[0].k != V_NONE))
            return r_fail(R, e->pos, "split() takes at most one string argument (maxsplit is not supported)");
        const value *sep = e->nargs == 1 && args[0].k == V_STR ? &args[0] : NULL;
        if (sep && sep->n == 0) return r_fail(R, e->pos, "split(): empty separator");
        size_t cap = self->n + 2, cnt = 0;
        value *items = arena_alloc(&R->a, cap * sizeof *items);
        if (!items) return r_nomem(R);
        const char *s = self->s;
        size_t n = self->n, i = 0;
        if (sep) {
            size_t start = 0;
            while (i + sep->n <= n) {
                if (!memcmp(s + i, sep->s, sep->n)) {
                    items[cnt++] = v_str(s + start, i - start);
                    i += sep->n;
                    start = i;
                } else {
                    i++;
                }
            }
            items[cnt++] = v_str(s + start, n - start);
        } else {
            while (i < n) {
                while (i < n && is_space((unsigned char)s[i])) i++;
                if (i >= n) break;
                size_t start = i;
                while (i < n && !is_space((unsigned char)s[i])) i++;
                items[cnt++] = v_str(s + start, i - start);
            }
        }
        value l = {0};
        l.k = V_LIST;
        l.items = items;
        l.n = cnt;
        *out = l;
        return LT_OK;
    }
    return r_fail(R, e->pos, "'%s' cannot be called here", name);
}

static lt_status filter(render *R, const expr *e, const value *v, value *out) {
#define IS(lit) (e->n == sizeof lit - 1 && !memcmp(e->s, lit, e->n))
    lt_status st;
    if (IS("length") || IS("count")) {
        if (v->k == V_STR) *out = v_int((int64_t)cp_count(v->s, v->n));
        else if (v->k == V_LIST) *out = v_int((int64_t)v->n);
        else if (v->k == V_DICT) *out = v_int(cp_count("", 0) + (int64_t)cJSON_GetArraySize(v->json));
        else if (v->k == V_UNDEF) *out = v_int(0);
        else return r_fail(R, e->pos, "object of type '%s' has no length", type_name(v));
        return LT_OK;
    }
    if (IS("string")) return stringify(R, v, out);
    if (IS("first") || IS("last")) {
        if (v->k == V_LIST) {
            *out = v->n ? list_at(v, IS("first") ? 0 : v->n - 1) : v_undef("no first item, the list is empty");
            return LT_OK;
        }
        if (v->k == V_STR) {
            value one = v_int(IS("first") ? 0 : -1);
            if (!v->n) {
                *out = v_undef("no first item, the string is empty");
                return LT_OK;
            }
            return get_item(R, e->pos, v, &one, out);
        }
        if (v->k == V_UNDEF) return undefined_use(R, e->pos, v);
        return r_fail(R, e->pos, "filter '%.*s' needs a list or string, got %s", (int)e->n, e->s, type_name(v));
    }
    /* trim, upper, lower work on str(value), as Jinja2's do */
    value s;
    if (v->k == V_UNDEF && !IS("trim")) {
        *out = v_str("", 0);
        return LT_OK;
    }
    if ((st = stringify(R, v, &s)) != LT_OK) return st;
    if (IS("trim")) return strip(R, &s, 1, 1, NULL, out);
    char *w = NULL;
    if ((st = copy_str(R, s.s, s.n, out, &w)) != LT_OK) return st;
    ascii_case(w, out->n, IS("upper"));
    return LT_OK;
#undef IS
}

static int test(const expr *e, const value *v) {
#define IS(lit) (e->n == sizeof lit - 1 && !memcmp(e->s, lit, e->n))
    int r = 0;
    if (IS("defined")) r = v->k != V_UNDEF;
    else if (IS("undefined")) r = v->k == V_UNDEF;
    else if (IS("none")) r = v->k == V_NONE;
    else if (IS("string")) r = v->k == V_STR;
    else if (IS("number")) r = v->k == V_INT || v->k == V_FLOAT || v->k == V_BOOL;
    else if (IS("integer")) r = v->k == V_INT;
    else if (IS("float")) r = v->k == V_FLOAT;
    else if (IS("boolean")) r = v->k == V_BOOL;
    else if (IS("mapping")) r = v->k == V_DICT;
    else if (IS("sequence")) r = v->k == V_LIST || v->k == V_STR || v->k == V_DICT;
    else if (IS("iterable")) r = v->k == V_LIST || v->k == V_STR || v->k == V_DICT;
    else if (IS("true")) r = v->k == V_BOOL && v->i;
    else if (IS("false")) r = v->k == V_BOOL && !v->i;
#undef IS
    return e->negated ? !r : r;
}

static lt_status contains(render *R, const expr *e, const value *item, const value *in, int *r) {
    if (in->k == V_STR) {
        if (item->k != V_STR)
            return r_fail(R, e->pos, "'in <string>' requires a string on the left, got %s", type_name(item));
        *r = 0;
        if (item->n == 0) *r = 1;
        for (size_t i = 0; !*r && i + item->n <= in->n; i++)
            if (!memcmp(in->s + i, item->s, item->n)) *r = 1;
        return LT_OK;
    }
    if (in->k == V_LIST) {
        *r = 0;
        for (size_t i = 0; i < in->n && !*r; i++) {
            value x = list_at(in, i);
            *r = equal(item, &x, 0);
        }
        return LT_OK;
    }
    if (in->k == V_DICT) {
        *r = 0;
        if (item->k == V_STR)
            for (const cJSON *c = in->json->child; c && !*r; c = c->next)
                *r = c->string && strlen(c->string) == item->n && !memcmp(c->string, item->s, item->n);
        return LT_OK;
    }
    if (in->k == V_UNDEF) return undefined_use(R, e->pos, in);
    return r_fail(R, e->pos, "argument of type '%s' is not iterable", type_name(in));
}

static lt_status arith(render *R, const expr *e, const value *a, const value *b, value *out) {
    if (e->op == OP_CONCAT) {
        value x, y;
        lt_status st;
        if ((st = stringify(R, a, &x)) != LT_OK || (st = stringify(R, b, &y)) != LT_OK) return st;
        char *p = arena_alloc(&R->a, x.n + y.n + 1);
        if (!p) return r_nomem(R);
        memcpy(p, x.s, x.n);
        memcpy(p + x.n, y.s, y.n);
        *out = v_str(p, x.n + y.n);
        return LT_OK;
    }
    if (a->k == V_UNDEF) return undefined_use(R, e->pos, a);
    if (b->k == V_UNDEF) return undefined_use(R, e->pos, b);
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "~"};
    if (e->op == OP_ADD && a->k == V_STR && b->k == V_STR) {
        char *p = arena_alloc(&R->a, a->n + b->n + 1);
        if (!p) return r_nomem(R);
        memcpy(p, a->s, a->n);
        memcpy(p + a->n, b->s, b->n);
        *out = v_str(p, a->n + b->n);
        return LT_OK;
    }
    if (e->op == OP_ADD && a->k == V_LIST && b->k == V_LIST) {
        size_t n = a->n + b->n;
        value *items = arena_alloc(&R->a, (n ? n : 1) * sizeof *items);
        if (!items) return r_nomem(R);
        for (size_t k = 0; k < a->n; k++) items[k] = list_at(a, k);
        for (size_t k = 0; k < b->n; k++) items[a->n + k] = list_at(b, k);
        value l = {0};
        l.k = V_LIST;
        l.items = items;
        l.n = n;
        *out = l;
        return LT_OK;
    }
    if (e->op == OP_MUL && ((a->k == V_STR && b->k == V_INT) || (a->k == V_INT && b->k == V_STR))) {
        const value *s = a->k == V_STR ? a : b;
        int64_t times = a->k == V_INT ? a->i : b->i;
        if (times <= 0) {
            *out = v_str("", 0);
            return LT_OK;
        }
        if (s->n && (uint64_t)times > MAX_OUTPUT / s->n)
            return r_fail(R, e->pos, "string repetition longer than %u MiB", (unsigned)(MAX_OUTPUT >> 20));
        size_t n = s->n * (size_t)times;
        char *p = arena_alloc(&R->a, n + 1);
        if (!p) return r_nomem(R);
        for (int64_t k = 0; k < times; k++) memcpy(p + (size_t)k * s->n, s->s, s->n);
        *out = v_str(p, n);
        return LT_OK;
    }
    double x, y;
    if (!num_of(a, &x) || !num_of(b, &y))
        return r_fail(R, e->pos, "unsupported operand types for %s: '%s' and '%s'", names[e->op],
                      type_name(a), type_name(b));
    const int ints = a->k != V_FLOAT && b->k != V_FLOAT;
    if (e->op == OP_DIV) {
        if (y == 0) return r_fail(R, e->pos, "division by zero");
        value v = {0};
        v.k = V_FLOAT;
        v.f = x / y;
        *out = v;
        return LT_OK;
    }
    if (ints) {
        int64_t p = a->i, q = b->i, r = 0;
        int ovf = 0;
        switch (e->op) {
        case OP_ADD: ovf = __builtin_add_overflow(p, q, &r); break;
        case OP_SUB: ovf = __builtin_sub_overflow(p, q, &r); break;
        case OP_MUL: ovf = __builtin_mul_overflow(p, q, &r); break;
        case OP_FLOORDIV:
        case OP_MOD:
            if (q == 0) return r_fail(R, e->pos, "integer division or modulo by zero");
            if (p == INT64_MIN && q == -1) {
                ovf = 1;
                break;
            }
            r = e->op == OP_FLOORDIV ? p / q : p % q;
            /* Python rounds toward minus infinity. */
            if ((p % q != 0) && ((p < 0) != (q < 0))) r = e->op == OP_FLOORDIV ? r - 1 : r + q;
            break;
        default: break;
        }
        if (ovf) return r_fail(R, e->pos, "integer overflow (64 bits)");
        *out = v_int(r);
        return LT_OK;
    }
    value v = {0};
    v.k = V_FLOAT;
    switch (e->op) {
    case OP_ADD: v.f = x + y; break;
    case OP_SUB: v.f = x - y; break;
    case OP_MUL: v.f = x * y; break;
    case OP_FLOORDIV:
    case OP_MOD:
        if (y == 0) return r_fail(R, e->pos, "float division or modulo by zero");
        v.f = e->op == OP_FLOORDIV ? floor(x / y) : x - y * floor(x / y);
        break;
    default: break;
    }
    *out = v;
    return LT_OK;
}

static lt_status eval(render *R, frame *F, const expr *e, value *out) {
    lt_status st = step(R, e->pos);
    if (st != LT_OK) return st;
    value a, b, c;
    switch (e->k) {
    case E_STR: *out = v_str(e->s, e->n); return LT_OK;
    case E_INT: *out = v_int(e->i); return LT_OK;
    case E_FLOAT:
        *out = v_int(0);
        out->k = V_FLOAT;
        out->f = e->f;
        return LT_OK;
    case E_BOOL: *out = v_bool((int)e->i); return LT_OK;
    case E_NONE:
        *out = v_int(0);
        out->k = V_NONE;
        return LT_OK;
    case E_LIST: {
        value *items = arena_alloc(&R->a, (size_t)(e->nargs ? e->nargs : 1) * sizeof *items);
        if (!items) return r_nomem(R);
        for (int k = 0; k < e->nargs; k++)
            if ((st = eval(R, F, e->args[k], &items[k])) != LT_OK) return st;
        value l = {0};
        l.k = V_LIST;
        l.items = items;
        l.n = (size_t)e->nargs;
        *out = l;
        return LT_OK;
    }
    case E_NAME:
        if (!lookup(R, F, e->s, e->n, out))
            *out = v_undef(undef_msg(R, "'", e->s, e->n, "' is undefined"));
        return LT_OK;
    case E_ATTR:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        return get_attr(R, e->pos, &a, e->s, e->n, out);
    case E_ITEM:
        if ((st = eval(R, F, e->a, &a)) != LT_OK || (st = eval(R, F, e->b, &b)) != LT_OK) return st;
        return get_item(R, e->pos, &a, &b, out);
    case E_SLICE: {
        value s3;
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (e->b && (st = eval(R, F, e->b, &b)) != LT_OK) return st;
        if (e->c && (st = eval(R, F, e->c, &c)) != LT_OK) return st;
        if (e->args[0] && (st = eval(R, F, e->args[0], &s3)) != LT_OK) return st;
        return slice(R, e, &a, e->b ? &b : NULL, e->c ? &c : NULL, e->args[0] ? &s3 : NULL, out);
    }
    case E_CALL: return call(R, F, e, out);
    case E_FILTER:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        return filter(R, e, &a, out);
    case E_TEST:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        *out = v_bool(test(e, &a));
        return LT_OK;
    case E_BIN:
        if ((st = eval(R, F, e->a, &a)) != LT_OK || (st = eval(R, F, e->b, &b)) != LT_OK) return st;
        return arith(R, e, &a, &b, out);
    case E_CMP: {
        if ((st = eval(R, F, e->args[0], &a)) != LT_OK) return st;
        int r = 1;
        for (int k = 0; k < e->nargs && r; k++) {
            if ((st = eval(R, F, e->args[k + 1], &b)) != LT_OK) return st;
            int op = e->ops[k];
            if (op == C_EQ || op == C_NE) {
                r = equal(&a, &b, 0) == (op == C_EQ);
            } else if (op == C_IN || op == C_NOTIN) {
                if ((st = contains(R, e, &a, &b, &r)) != LT_OK) return st;
                if (op == C_NOTIN) r = !r;
            } else {
                if (a.k == V_UNDEF) return undefined_use(R, e->pos, &a);
                if (b.k == V_UNDEF) return undefined_use(R, e->pos, &b);
                int o = order(&a, &b);
                if (o == 2)
                    return r_fail(R, e->pos, "'%s' not supported between '%s' and '%s'",
                                  op == C_LT ? "<" : op == C_GT ? ">" : op == C_LE ? "<=" : ">=",
                                  type_name(&a), type_name(&b));
                r = op == C_LT ? o < 0 : op == C_GT ? o > 0 : op == C_LE ? o <= 0 : o >= 0;
            }
            a = b;
        }
        *out = v_bool(r);
        return LT_OK;
    }
    case E_NOT:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        *out = v_bool(!truthy(&a));
        return LT_OK;
    case E_NEG:
    case E_POS:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (a.k == V_INT || a.k == V_BOOL) {
            if (e->k == E_NEG && a.i == INT64_MIN) return r_fail(R, e->pos, "integer overflow (64 bits)");
            *out = v_int(e->k == E_NEG ? -a.i : a.i);
        } else if (a.k == V_FLOAT) {
            *out = a;
            if (e->k == E_NEG) out->f = -a.f;
        } else if (a.k == V_UNDEF) {
            return undefined_use(R, e->pos, &a);
        } else {
            return r_fail(R, e->pos, "bad operand type for unary %s: '%s'", e->k == E_NEG ? "-" : "+",
                          type_name(&a));
        }
        return LT_OK;
    case E_AND:
    case E_OR:
        /* Python's: the deciding operand itself, not a bool. */
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (truthy(&a) == (e->k == E_OR)) {
            *out = a;
            return LT_OK;
        }
        return eval(R, F, e->b, out);
    case E_COND:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (truthy(&a)) return eval(R, F, e->b, out);
        if (e->c) return eval(R, F, e->c, out);
        *out = v_undef("the 'else' of a conditional expression that has none");
        return LT_OK;
    }
    return r_fail(R, e->pos, "internal error: unknown expression");
}

static lt_status exec_body(render *R, frame *F, const body *b, flow *fl);

static lt_status exec_for(render *R, frame *F, const stmt *s, flow *fl) {
    value it;
    lt_status st = eval(R, F, s->e, &it);
    if (st != LT_OK) return st;
    size_t n = 0;
    value keys = {0}; /* dict: its keys as a list */
    if (it.k == V_LIST || it.k == V_UNDEF) {
        n = it.k == V_LIST ? it.n : 0;
    } else if (it.k == V_STR) {
        n = cp_count(it.s, it.n);
    } else if (it.k == V_DICT) {
        n = (size_t)cJSON_GetArraySize(it.json);
        value *items = arena_alloc(&R->a, (n ? n : 1) * sizeof *items);
        if (!items) return r_nomem(R);
        size_t k = 0;
        for (const cJSON *c = it.json->child; c && k < n; c = c->next)
            items[k++] = c->string ? v_str(c->string, strlen(c->string)) : v_str("", 0);
        keys.k = V_LIST;
        keys.items = items;
        keys.n = n;
    } else {
        return r_fail(R, s->pos, "'%s' object is not iterable", type_name(&it));
    }
    loop_state L = {0, (int64_t)n};
    frame inner = {F, NULL, 0, 0};
    const cJSON *jcur = it.k == V_LIST && !it.items ? cJSON_GetArrayItem(it.json, (int)it.start) : NULL;
    size_t byte = 0;
    for (size_t i = 0; i < n; i++) {
        value x;
        if (it.k == V_LIST) {
            if (it.items) x = it.items[i];
            else {
                x = from_json(jcur);
                jcur = jcur ? jcur->next : NULL;
            }
        } else if (it.k == V_STR) {
            size_t e = cp_offset(it.s + byte, it.n - byte, 1);
            x = v_str(it.s + byte, e);
            byte += e;
        } else {
            x = keys.items[i];
        }
        L.index0 = (int64_t)i;
        /* Each pass has its own scope: a set inside does not outlive it. */
        inner.n = 0;
        value lv = {0};
        lv.k = V_LOOP;
        lv.loop = &L;
        if ((st = set_var(R, &inner, "loop", 4, lv)) != LT_OK) return st;
        if ((st = set_var(R, &inner, s->name, s->name_len, x)) != LT_OK) return st;
        flow f = FLOW_NONE;
        if ((st = exec_body(R, &inner, &s->bodies[0], &f)) != LT_OK) return st;
        if (f == FLOW_BREAK) break;
    }
    *fl = FLOW_NONE;
    if (n == 0 && s->has_else) return exec_body(R, F, &s->else_body, fl);
    return LT_OK;
}

static lt_status exec_body(render *R, frame *F, const body *b, flow *fl) {
    lt_status st;
    if (++R->depth > LT_CHAT_MAX_DEPTH + 8)
        return lt_fail(R->err, LT_ERR_FORMAT, "chat template %s: nested too deeply", R->t->name);
    for (int k = 0; k < b->n; k++) {
        const stmt *s = b->v[k];
        if ((st = step(R, s->pos)) != LT_OK) return st;
        switch (s->k) {
        case S_TEXT:
            if ((st = emit(R, s->text, s->len)) != LT_OK) return st;
            break;
        case S_OUT: {
            value v, sv;
            if ((st = eval(R, F, s->e, &v)) != LT_OK) return st;
            if ((st = stringify(R, &v, &sv)) != LT_OK) return st;
            if ((st = emit(R, sv.s, sv.n)) != LT_OK) return st;
            break;
        }
        case S_IF: {
            int done = 0;
            for (int j = 0; j < s->nbranches && !done; j++) {
                value c;
                if ((st = eval(R, F, s->conds[j], &c)) != LT_OK) return st;
                if (truthy(&c)) {
                    done = 1;
                    if ((st = exec_body(R, F, &s->bodies[j], fl)) != LT_OK) return st;
                }
            }
            if (!done && s->has_else && (st = exec_body(R, F, &s->else_body, fl)) != LT_OK) return st;
            break;
        }
        case S_FOR:
            if ((st = exec_for(R, F, s, fl)) != LT_OK) return st;
            break;
        case S_GENERATION:
            if ((st = exec_body(R, F, &s->bodies[0], fl)) != LT_OK) return st;
            break;
        case S_SET: {
            value v;
            if ((st = eval(R, F, s->e, &v)) != LT_OK) return st;
            if (!F) return lt_fail(R->err, LT_ERR_INTERNAL, "chat template: no scope");
            if ((st = set_var(R, F, s->name, s->name_len, v)) != LT_OK) return st;
            break;
        }
        case S_BREAK:
        case S_CONTINUE:
            *fl = s->k == S_BREAK ? FLOW_BREAK : FLOW_CONTINUE;
            break;
        }
        if (*fl != FLOW_NONE) break;
    }
    R->depth--;
    return LT_OK;
}

lt_status lt_chat_template_render(const lt_chat_template *t, const cJSON *messages,
                                  size_t n_messages, int add_generation_prompt, char **out,
                                  size_t *out_len, lt_error *err) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || !out || !out_len)
        return lt_fail(err, LT_ERR_INVALID, "chat template render: NULL template or output");
    if (messages && !cJSON_IsArray(messages))
        return lt_fail(err, LT_ERR_INVALID, "chat template %s: messages must be a JSON array", t->name);
    render R;
    memset(&R, 0, sizeof R);
    R.t = t;
    R.err = err;
    value m = {0};
    m.k = V_LIST;
    m.json = messages;
    size_t total = messages ? (size_t)cJSON_GetArraySize(messages) : 0;
    m.n = n_messages < total ? n_messages : total;
    if (!messages) {
        static const value none = {0};
        m.items = &none;
        m.n = 0;
    }
    R.messages = m;
    R.add_gen = v_bool(add_generation_prompt);
    R.bos = t->bos ? v_str(t->bos, strlen(t->bos)) : v_undef("'bos_token' is undefined");
    R.eos = t->eos ? v_str(t->eos, strlen(t->eos)) : v_undef("'eos_token' is undefined");
    frame top = {NULL, NULL, 0, 0};
    flow fl = FLOW_NONE;
    lt_status st = emit(&R, "", 0);
    if (st == LT_OK) st = exec_body(&R, &top, &t->root, &fl);
    arena_free(&R.a);
    if (st != LT_OK) {
        lt_free(R.out);
        return st;
    }
    *out = R.out;
    *out_len = R.out_len;
    return LT_OK;
}

/* ---------------------------------------------------------- loading */

static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

lt_status lt_chat_template_load(const char *spec, const char *tokenizer_dir,
                                const char *bos_fallback, const char *eos_fallback,
                                lt_chat_template **out, lt_error *err) {
    if (!out || !spec) return lt_fail(err, LT_ERR_INVALID, "chat template load: NULL spec or output");
    *out = NULL;
    char cfg_path[4200];
    cJSON *cfg = NULL;
    char *raw = NULL;
    uint64_t size = 0;
    lt_status st = LT_OK;
    const int from_tok = !strcmp(spec, "tokenizer");
    if (tokenizer_dir) {
        snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", tokenizer_dir);
        lt_error e2;
        if (lt_read_file(cfg_path, TEMPLATE_FILE_MAX, &raw, &size, &e2) == LT_OK) {
            st = lt_json_parse(raw, (size_t)size, cfg_path, 1, &cfg, err);
            free(raw);
            raw = NULL;
            if (st != LT_OK) return st;
        } else if (from_tok) {
            return lt_fail(err, LT_ERR_CONFIG,
                           "chat_template = \"tokenizer\", but %s cannot be read (%s); expected a "
                           "tokenizer_config.json with \"chat_template\" next to the tokenizer, or "
                           "chat_template set to a .jinja file",
                           cfg_path, e2.msg);
        }
    } else if (from_tok) {
        return lt_fail(err, LT_ERR_CONFIG,
                       "chat_template = \"tokenizer\", but there is no tokenizer directory to read "
                       "tokenizer_config.json from; set chat_template to a .jinja file");
    }
    const char *src = NULL, *name = spec;
    if (from_tok) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) {
            src = ct->valuestring;
        } else if (cJSON_IsArray(ct)) {
            const cJSON *e;
            cJSON_ArrayForEach(e, ct) {
                const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *tp = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (cJSON_IsString(n) && !strcmp(n->valuestring, "default") && cJSON_IsString(tp))
                    src = tp->valuestring;
            }
            if (!src)
                st = lt_fail(err, LT_ERR_FORMAT,
                             "%s: chat_template is a list without an entry {\"name\": \"default\", "
                             "\"template\": \"...\"}, expected one",
                             cfg_path);
        } else {
            st = lt_fail(err, LT_ERR_FORMAT,
                         "%s: no \"chat_template\" string, expected one (or set chat_template to "
                         "a .jinja file)",
                         cfg_path);
        }
        name = cfg_path;
    } else {
        st = lt_read_file(spec, TEMPLATE_FILE_MAX, &raw, &size, err);
        if (st == LT_OK) src = raw;
        else lt_fail_context(err, "chat_template");
    }
    lt_chat_template *t = NULL;
    if (st == LT_OK)
        st = lt_chat_template_parse(src, raw ? (size_t)size : strlen(src), name, &t, err);
    if (st == LT_OK) {
        const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
        st = lt_chat_template_set_tokens(t, bos ? bos : bos_fallback, eos ? eos : eos_fallback, err);
    }
    free(raw);
    cJSON_Delete(cfg);
    if (st != LT_OK) {
        lt_chat_template_free(t);
        return st;
    }
    *out = t;
    return LT_OK;
}
