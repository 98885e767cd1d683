/* What the files of the Jinja2-subset renderer behind chat templates
 * (io/text/chat_template.h) share: the arenas, the tree, the tokens, the
 * values, and error reporting. Not for other modules: chat_template.h is the
 * interface.
 *
 * Three stages, each a mirror of Jinja2's own so the output agrees byte for
 * byte: a lexer (jinja_lexer.c) that cuts text from tags with Jinja2's
 * whitespace rules (trim_blocks, lstrip_blocks, - and + signs) and tokenises
 * tag contents; a recursive-descent parser (jinja_parser.c) with Jinja2's
 * operator precedence, building a tree once; an evaluator (jinja_eval.c)
 * over that tree with Python's value semantics (jinja_value.c) for the types
 * templates meet (str, int, float, bool, None, list, dict, Undefined). Tree
 * and render temporaries live in arenas (jinja_arena.c), so an error at any
 * depth unwinds by freeing one arena. chat_template.c parses, loads and
 * frees templates. */
#ifndef LT_IO_TEXT_JINJA_INTERNAL_H
#define LT_IO_TEXT_JINJA_INTERNAL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/text/chat_template.h"

/* A template of a few KB renders a conversation in well under a million
 * steps; these bounds only stop inputs built to run away (the fuzzer's). */
#define LT_JINJA_MAX_STEPS 20000000L
#define LT_JINJA_MAX_OUTPUT (64u << 20)
#define LT_JINJA_MAX_ARENA (512u << 20)
#define LT_JINJA_MAX_RANGE 100000

/* ------------------------------------------------------------- arenas */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
} chunk;

typedef struct {
    chunk *head;
    size_t total;
} arena;

/* n zeroed bytes, 16-aligned; NULL past LT_JINJA_MAX_ARENA or out of
 * memory. */
void *lt_jinja_arena_alloc(arena *a, size_t n);
void lt_jinja_arena_free(arena *a);

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

/* "chat template NAME line L column C (byte POS): MSG", the position in
 * src[0, len). */
lt_status lt_jinja_fail_at(lt_error *err, lt_status code, const char *name, const char *src,
                           size_t len, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* ---------------------------------------------------------- tokens */

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

/* Whitespace for -%} and trim/strip: ASCII, plus \x1c-\x1f as Python has. */
static inline int is_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
           (c >= 0x1c && c <= 0x1f);
}

/* The tokens of t->src, ending with T_EOF; string tokens decoded into
 * t->mem. *toks is from lt_alloc, set on failure too (free it either way). */
lt_status lt_jinja_lex(lt_chat_template *t, token **toks, size_t *ntok, lt_error *err);

/* ---------------------------------------------------------- parser */

/* The tree of toks[0, ntok) into t->root, its nodes in t->mem. */
lt_status lt_jinja_parse(lt_chat_template *t, token *toks, size_t ntok, lt_error *err);

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

/* One render: its arena of temporaries, the output so far, the step and
 * depth counts that bound it, and the template's variables. */
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

static inline value v_undef(const char *what) {
    value v = {0};
    v.k = V_UNDEF;
    v.s = what;
    return v;
}

static inline value v_str(const char *s, size_t n) {
    value v = {0};
    v.k = V_STR;
    v.s = s;
    v.n = n;
    return v;
}

static inline value v_int(int64_t i) {
    value v = {0};
    v.k = V_INT;
    v.i = i;
    return v;
}

static inline value v_bool(int b) {
    value v = {0};
    v.k = V_BOOL;
    v.i = b != 0;
    return v;
}

/* "out of memory while rendering", LT_ERR_NOMEM. */
lt_status lt_jinja_render_nomem(render *R);
value lt_jinja_from_json(const cJSON *j);
value lt_jinja_list_at(const value *l, size_t i);
const char *lt_jinja_type_name(const value *v);
int lt_jinja_truthy(const value *v);

/* A growable byte buffer in the render arena, for str(value). */
typedef struct {
    render *R;
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

void lt_jinja_sb_put(sbuf *b, const char *s, size_t n);
/* str(v), in the render arena (a str is itself). */
lt_status lt_jinja_stringify(render *R, const value *v, value *out);

/* Equality and ordering, Python's (bool is an int; Undefined equals
 * Undefined only). */
int lt_jinja_num_of(const value *v, double *d);
int lt_jinja_equal(const value *a, const value *b, int depth);
/* -1, 0, 1, or 2 when the types do not order. */
int lt_jinja_order(const value *a, const value *b);

/* UTF-8 code points (Python strings index characters, not bytes): the
 * count, and the byte offset of code point k (k <= count). */
size_t lt_jinja_cp_count(const char *s, size_t n);
size_t lt_jinja_cp_offset(const char *s, size_t n, size_t k);

#endif
