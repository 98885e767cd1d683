/* Values with Python's semantics for the types templates meet (str, int,
 * float, bool, None, list, dict, Undefined): from JSON, truth, str() and
 * repr(), equality and ordering, code points. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/text/jinja_internal.h"

lt_status lt_jinja_render_nomem(render *R) {
    return lt_fail(R->err, LT_ERR_NOMEM, "chat template %s: out of memory while rendering (over %u MiB)",
                   R->t->name, (unsigned)(LT_JINJA_MAX_ARENA >> 20));
}

value lt_jinja_from_json(const cJSON *j) {
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

value lt_jinja_list_at(const value *l, size_t i) {
    if (l->items) return l->items[i];
    return lt_jinja_from_json(cJSON_GetArrayItem(l->json, (int)(l->start + i)));
}

const char *lt_jinja_type_name(const value *v) {
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

int lt_jinja_truthy(const value *v) {
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

void lt_jinja_sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? 2 * b->cap : 64;
        while (c < b->n + n) c *= 2;
        char *q = c <= LT_JINJA_MAX_ARENA ? lt_jinja_arena_alloc(&b->R->a, c) : NULL;
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

static void sb_str(sbuf *b, const char *s) { lt_jinja_sb_put(b, s, strlen(s)); }

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
    lt_jinja_sb_put(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '\\') sb_str(b, "\\\\");
        else if (c == (unsigned char)q) {
            esc[0] = '\\';
            esc[1] = (char)c;
            lt_jinja_sb_put(b, esc, 2);
        } else if (c == '\n') sb_str(b, "\\n");
        else if (c == '\r') sb_str(b, "\\r");
        else if (c == '\t') sb_str(b, "\\t");
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            sb_str(b, esc);
        } else lt_jinja_sb_put(b, (const char *)&c, 1);
    }
    lt_jinja_sb_put(b, &q, 1);
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
        else lt_jinja_sb_put(b, v->s, v->n);
        break;
    case V_LIST:
        sb_str(b, "[");
        for (size_t i = 0; i < v->n && !b->oom; i++) {
            if (i) sb_str(b, ", ");
            value it = lt_jinja_list_at(v, i);
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
            value it = lt_jinja_from_json(c);
            to_str(b, &it, 1, depth + 1);
        }
        sb_str(b, "}");
        break;
    }
    case V_LOOP: sb_str(b, "<LoopContext>"); break;
    default: sb_str(b, "<function>"); break;
    }
}

lt_status lt_jinja_stringify(render *R, const value *v, value *out) {
    if (v->k == V_STR) {
        *out = *v;
        return LT_OK;
    }
    sbuf b = {R, NULL, 0, 0, 0};
    to_str(&b, v, 0, 0);
    if (b.oom) return lt_jinja_render_nomem(R);
    *out = v_str(b.p ? b.p : "", b.n);
    return LT_OK;
}

/* --- equality and ordering, Python's (bool is an int; Undefined equals
 * Undefined only) */

int lt_jinja_num_of(const value *v, double *d) {
    if (v->k == V_INT || v->k == V_BOOL) *d = (double)v->i;
    else if (v->k == V_FLOAT) *d = v->f;
    else return 0;
    return 1;
}

static int list_equal(const value *a, const value *b, int depth) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        value x = lt_jinja_list_at(a, i), y = lt_jinja_list_at(b, i);
        if (!lt_jinja_equal(&x, &y, depth + 1)) return 0;
    }
    return 1;
}

int lt_jinja_equal(const value *a, const value *b, int depth) {
    double x, y;
    if (depth > LT_CHAT_MAX_DEPTH) return 0;
    if ((a->k == V_INT || a->k == V_BOOL) && (b->k == V_INT || b->k == V_BOOL)) return a->i == b->i;
    if (lt_jinja_num_of(a, &x) && lt_jinja_num_of(b, &y)) return x == y;
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
            value x2 = lt_jinja_from_json(c), y2 = lt_jinja_from_json(o);
            if (!lt_jinja_equal(&x2, &y2, depth + 1)) return 0;
        }
        return 1;
    }
    default: return a == b;
    }
}

/* -1, 0, 1, or 2 when the types do not order. */
int lt_jinja_order(const value *a, const value *b) {
    double x, y;
    if ((a->k == V_INT || a->k == V_BOOL) && (b->k == V_INT || b->k == V_BOOL))
        return (a->i > b->i) - (a->i < b->i);
    if (lt_jinja_num_of(a, &x) && lt_jinja_num_of(b, &y)) return (x > y) - (x < y);
    if (a->k == V_STR && b->k == V_STR) {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = memcmp(a->s, b->s, n);
        if (c) return c > 0 ? 1 : -1;
        return (a->n > b->n) - (a->n < b->n);
    }
    return 2;
}

/* --- UTF-8 code points (Python strings index characters, not bytes) */

size_t lt_jinja_cp_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Byte offset of code point k (k <= count). */
size_t lt_jinja_cp_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (i < n && k > 0) {
        i++;
        while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}
