/* The parser: recursive descent with Jinja2's operator precedence, building
 * the tree once, in the template's arena. */
#include <stdio.h>
#include <string.h>

#include "io/text/jinja_internal.h"

typedef struct {
    lt_chat_template *t;
    arena *a;
    token *toks;
    size_t i, n;
    int depth;
    lt_error *err;
} parser;

/* A syntax error at byte pos of the template, in lt_jinja_fail_at's one line. */
#define p_fail(P, pos, ...)                                                               \
    lt_jinja_fail_at((P)->err, LT_ERR_FORMAT, (P)->t->name, (P)->t->src, (P)->t->src_len, \
                     (pos), __VA_ARGS__)

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
    expr *e = lt_jinja_arena_alloc(P->a, sizeof *e);
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
    *args = n ? lt_jinja_arena_alloc(P->a, (size_t)n * sizeof **args) : NULL;
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
        char *s = e ? lt_jinja_arena_alloc(P->a, total + 1) : NULL;
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
            if (!(e->args = lt_jinja_arena_alloc(P->a, (size_t)n * sizeof *e->args))) return p_nomem(P);
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
                e->args = lt_jinja_arena_alloc(P->a, sizeof *e->args);
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
    if (!e || !(e->args = lt_jinja_arena_alloc(P->a, (size_t)(n + 1) * sizeof *e->args)) ||
        !(e->ops = lt_jinja_arena_alloc(P->a, (size_t)n * sizeof *e->ops)))
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
        stmt **nv = lt_jinja_arena_alloc(P->a, (size_t)c * sizeof *nv);
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
    s->conds = lt_jinja_arena_alloc(P->a, (size_t)n * sizeof *s->conds);
    s->bodies = lt_jinja_arena_alloc(P->a, (size_t)n * sizeof *s->bodies);
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
    s->bodies = lt_jinja_arena_alloc(P->a, sizeof *s->bodies);
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
        stmt *s = lt_jinja_arena_alloc(P->a, sizeof *s);
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
                s->bodies = lt_jinja_arena_alloc(P->a, sizeof *s->bodies);
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


lt_status lt_jinja_parse(lt_chat_template *t, token *toks, size_t ntok, lt_error *err) {
    parser P = {t, &t->mem, toks, 0, ntok, 0, err};
    return parse_body(&P, &t->root, NULL, NULL);
}
