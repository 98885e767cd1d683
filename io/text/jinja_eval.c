/* The evaluator: expressions and statements over the tree, in a render arena
 * freed at the end, with bounded steps, depth and output; and its public
 * entry point, lt_chat_template_render. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/text/jinja_internal.h"

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

typedef enum { FLOW_NONE, FLOW_BREAK, FLOW_CONTINUE } flow;

/* A rendering error at byte pos of the template, in lt_jinja_fail_at's one line. */
#define r_fail(R, pos, ...)                                                               \
    lt_jinja_fail_at((R)->err, LT_ERR_FORMAT, (R)->t->name, (R)->t->src, (R)->t->src_len, \
                     (pos), __VA_ARGS__)

static lt_status emit(render *R, const char *s, size_t n) {
    if (R->out_len + n > LT_JINJA_MAX_OUTPUT)
        return lt_fail(R->err, LT_ERR_FORMAT, "chat template %s: the output exceeds %u MiB",
                       R->t->name, (unsigned)(LT_JINJA_MAX_OUTPUT >> 20));
    if (R->out_len + n + 1 > R->out_cap) {
        size_t c = R->out_cap ? R->out_cap : 4096;
        while (c < R->out_len + n + 1) c *= 2;
        char *q = lt_alloc(LT_MEM_OTHER, c);
        if (!q) return lt_jinja_render_nomem(R);
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

static lt_status eval(render *R, frame *F, const expr *e, value *out);

static lt_status step(render *R, size_t pos) {
    if (++R->steps > LT_JINJA_MAX_STEPS)
        return r_fail(R, pos, "rendering takes more than %ld steps (a runaway loop?)", LT_JINJA_MAX_STEPS);
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
        var *nv = lt_jinja_arena_alloc(&R->a, (size_t)c * sizeof *nv);
        if (!nv) return lt_jinja_render_nomem(R);
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
    char *s = lt_jinja_arena_alloc(&R->a, n + 1);
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
                *out = lt_jinja_from_json(c);
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
            value *self = lt_jinja_arena_alloc(&R->a, sizeof *self);
            if (!self) return lt_jinja_render_nomem(R);
            *self = *obj;
            f.self = self;
            *out = f;
            return LT_OK;
        }
    char pre[64];
    snprintf(pre, sizeof pre, "'%s object' has no attribute '", lt_jinja_type_name(obj));
    *out = v_undef(undef_msg(R, pre, name, n, "'"));
    return LT_OK;
}

static lt_status get_item(render *R, size_t pos, const value *obj, const value *key, value *out) {
    if (obj->k == V_UNDEF) return undefined_use(R, pos, obj);
    if (key->k == V_STR) return get_attr(R, pos, obj, key->s, key->n, out);
    if ((key->k == V_INT || key->k == V_BOOL) && (obj->k == V_LIST || obj->k == V_STR)) {
        int64_t i = key->i;
        size_t len = obj->k == V_LIST ? obj->n : lt_jinja_cp_count(obj->s, obj->n);
        if (i < 0) i += (int64_t)len;
        if (i < 0 || (uint64_t)i >= len) {
            *out = v_undef(obj->k == V_LIST ? "list index out of range" : "string index out of range");
            return LT_OK;
        }
        if (obj->k == V_LIST) {
            *out = lt_jinja_list_at(obj, (size_t)i);
        } else {
            size_t a = lt_jinja_cp_offset(obj->s, obj->n, (size_t)i);
            size_t b = lt_jinja_cp_offset(obj->s, obj->n, (size_t)i + 1);
            *out = v_str(obj->s + a, b - a);
        }
        return LT_OK;
    }
    char pre[64];
    snprintf(pre, sizeof pre, "'%s object' has no item of type ", lt_jinja_type_name(obj));
    *out = v_undef(undef_msg(R, pre, lt_jinja_type_name(key), strlen(lt_jinja_type_name(key)), ""));
    return LT_OK;
}

/* Python's slice bounds for length len and step 1 or -1 style steps. */
static lt_status slice(render *R, const expr *e, const value *obj, const value *a, const value *b,
                       const value *c, value *out) {
    if (obj->k == V_UNDEF) return undefined_use(R, e->pos, obj);
    if (obj->k != V_LIST && obj->k != V_STR)
        return r_fail(R, e->pos, "cannot slice a %s, expected a list or string", lt_jinja_type_name(obj));
    const value *bounds[3] = {a, b, c};
    int64_t v[3] = {0, 0, 1};
    int given[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (!bounds[k] || bounds[k]->k == V_NONE) continue;
        if (bounds[k]->k != V_INT && bounds[k]->k != V_BOOL)
            return r_fail(R, e->pos, "slice indices must be integers or none, got %s", lt_jinja_type_name(bounds[k]));
        v[k] = bounds[k]->i;
        given[k] = 1;
    }
    if (v[2] == 0) return r_fail(R, e->pos, "slice step cannot be zero");
    const int64_t len = obj->k == V_LIST ? (int64_t)obj->n : (int64_t)lt_jinja_cp_count(obj->s, obj->n);
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
        value *items = count ? lt_jinja_arena_alloc(&R->a, count * sizeof *items) : NULL;
        if (count && !items) return lt_jinja_render_nomem(R);
        for (size_t k = 0; k < count; k++) items[k] = lt_jinja_list_at(obj, (size_t)(lo + (int64_t)k * st));
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
        size_t x = lt_jinja_cp_offset(obj->s, obj->n, i), y = lt_jinja_cp_offset(obj->s, obj->n, i + 1);
        lt_jinja_sb_put(&sb, obj->s + x, y - x);
    }
    if (sb.oom) return lt_jinja_render_nomem(R);
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
    char *p = lt_jinja_arena_alloc(&R->a, n + 1);
    if (!p) return lt_jinja_render_nomem(R);
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
    if (fn.k != V_FUNC) return r_fail(R, e->pos, "a %s is not callable", lt_jinja_type_name(&fn));
    const char *name = fn.s;
    if (!strcmp(name, "raise_exception")) {
        value m = {0};
        if (e->nargs >= 1 && (st = lt_jinja_stringify(R, &args[0], &m)) != LT_OK) return st;
        return r_fail(R, e->pos, "raise_exception: %.*s", (int)(m.n > 400 ? 400 : m.n), m.s ? m.s : "");
    }
    if (!strcmp(name, "range")) {
        int64_t lo = 0, hi = 0, sp = 1;
        for (int k = 0; k < e->nargs; k++)
            if (args[k].k != V_INT && args[k].k != V_BOOL)
                return r_fail(R, e->pos, "range() takes integers, got %s", lt_jinja_type_name(&args[k]));
        if (e->nargs == 1) hi = args[0].i;
        else if (e->nargs >= 2) {
            lo = args[0].i;
            hi = args[1].i;
            if (e->nargs == 3) sp = args[2].i;
        }
        if (e->nargs < 1 || e->nargs > 3 || sp == 0)
            return r_fail(R, e->pos, "range() takes 1 to 3 integer arguments, the step not 0");
        int64_t cnt = sp > 0 ? (hi > lo ? (hi - lo + sp - 1) / sp : 0) : (lo > hi ? (lo - hi - sp - 1) / -sp : 0);
        if (cnt > LT_JINJA_MAX_RANGE) return r_fail(R, e->pos, "range() of more than %d items", LT_JINJA_MAX_RANGE);
        value *items = lt_jinja_arena_alloc(&R->a, (size_t)(cnt ? cnt : 1) * sizeof *items);
        if (!items) return lt_jinja_render_nomem(R);
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
                *out = lt_jinja_from_json(c);
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
        char *w = NULL;
        if ((st = copy_str(R, self->s, self->n, out, &w)) != LT_OK) return st;
        ascii_case(w, out->n, name[0] == 'u');
        return LT_OK;
    }
    if (!strcmp(name, "title")) {
        if (e->nargs) return r_fail(R, e->pos, "title() takes no arguments");
        char *s = NULL;
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
        value *items = lt_jinja_arena_alloc(&R->a, cap * sizeof *items);
        if (!items) return lt_jinja_render_nomem(R);
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
        if (v->k == V_STR) *out = v_int((int64_t)lt_jinja_cp_count(v->s, v->n));
        else if (v->k == V_LIST) *out = v_int((int64_t)v->n);
        else if (v->k == V_DICT) *out = v_int(lt_jinja_cp_count("", 0) + (int64_t)cJSON_GetArraySize(v->json));
        else if (v->k == V_UNDEF) *out = v_int(0);
        else return r_fail(R, e->pos, "object of type '%s' has no length", lt_jinja_type_name(v));
        return LT_OK;
    }
    if (IS("string")) return lt_jinja_stringify(R, v, out);
    if (IS("first") || IS("last")) {
        if (v->k == V_LIST) {
            *out = v->n ? lt_jinja_list_at(v, IS("first") ? 0 : v->n - 1) : v_undef("no first item, the list is empty");
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
        return r_fail(R, e->pos, "filter '%.*s' needs a list or string, got %s", (int)e->n, e->s, lt_jinja_type_name(v));
    }
    /* trim, upper, lower work on str(value), as Jinja2's do */
    value s;
    if (v->k == V_UNDEF && !IS("trim")) {
        *out = v_str("", 0);
        return LT_OK;
    }
    if ((st = lt_jinja_stringify(R, v, &s)) != LT_OK) return st;
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
            return r_fail(R, e->pos, "'in <string>' requires a string on the left, got %s", lt_jinja_type_name(item));
        *r = 0;
        if (item->n == 0) *r = 1;
        for (size_t i = 0; !*r && i + item->n <= in->n; i++)
            if (!memcmp(in->s + i, item->s, item->n)) *r = 1;
        return LT_OK;
    }
    if (in->k == V_LIST) {
        *r = 0;
        for (size_t i = 0; i < in->n && !*r; i++) {
            value x = lt_jinja_list_at(in, i);
            *r = lt_jinja_equal(item, &x, 0);
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
    return r_fail(R, e->pos, "argument of type '%s' is not iterable", lt_jinja_type_name(in));
}

static lt_status arith(render *R, const expr *e, const value *a, const value *b, value *out) {
    if (e->op == OP_CONCAT) {
        value x, y;
        lt_status st;
        if ((st = lt_jinja_stringify(R, a, &x)) != LT_OK || (st = lt_jinja_stringify(R, b, &y)) != LT_OK) return st;
        char *p = lt_jinja_arena_alloc(&R->a, x.n + y.n + 1);
        if (!p) return lt_jinja_render_nomem(R);
        memcpy(p, x.s, x.n);
        memcpy(p + x.n, y.s, y.n);
        *out = v_str(p, x.n + y.n);
        return LT_OK;
    }
    if (a->k == V_UNDEF) return undefined_use(R, e->pos, a);
    if (b->k == V_UNDEF) return undefined_use(R, e->pos, b);
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "~"};
    if (e->op == OP_ADD && a->k == V_STR && b->k == V_STR) {
        char *p = lt_jinja_arena_alloc(&R->a, a->n + b->n + 1);
        if (!p) return lt_jinja_render_nomem(R);
        memcpy(p, a->s, a->n);
        memcpy(p + a->n, b->s, b->n);
        *out = v_str(p, a->n + b->n);
        return LT_OK;
    }
    if (e->op == OP_ADD && a->k == V_LIST && b->k == V_LIST) {
        size_t n = a->n + b->n;
        value *items = lt_jinja_arena_alloc(&R->a, (n ? n : 1) * sizeof *items);
        if (!items) return lt_jinja_render_nomem(R);
        for (size_t k = 0; k < a->n; k++) items[k] = lt_jinja_list_at(a, k);
        for (size_t k = 0; k < b->n; k++) items[a->n + k] = lt_jinja_list_at(b, k);
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
        if (s->n && (uint64_t)times > LT_JINJA_MAX_OUTPUT / s->n)
            return r_fail(R, e->pos, "string repetition longer than %u MiB", (unsigned)(LT_JINJA_MAX_OUTPUT >> 20));
        size_t n = s->n * (size_t)times;
        char *p = lt_jinja_arena_alloc(&R->a, n + 1);
        if (!p) return lt_jinja_render_nomem(R);
        for (int64_t k = 0; k < times; k++) memcpy(p + (size_t)k * s->n, s->s, s->n);
        *out = v_str(p, n);
        return LT_OK;
    }
    double x, y;
    if (!lt_jinja_num_of(a, &x) || !lt_jinja_num_of(b, &y))
        return r_fail(R, e->pos, "unsupported operand types for %s: '%s' and '%s'", names[e->op],
                      lt_jinja_type_name(a), lt_jinja_type_name(b));
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
        value *items = lt_jinja_arena_alloc(&R->a, (size_t)(e->nargs ? e->nargs : 1) * sizeof *items);
        if (!items) return lt_jinja_render_nomem(R);
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
                r = lt_jinja_equal(&a, &b, 0) == (op == C_EQ);
            } else if (op == C_IN || op == C_NOTIN) {
                if ((st = contains(R, e, &a, &b, &r)) != LT_OK) return st;
                if (op == C_NOTIN) r = !r;
            } else {
                if (a.k == V_UNDEF) return undefined_use(R, e->pos, &a);
                if (b.k == V_UNDEF) return undefined_use(R, e->pos, &b);
                int o = lt_jinja_order(&a, &b);
                if (o == 2)
                    return r_fail(R, e->pos, "'%s' not supported between '%s' and '%s'",
                                  op == C_LT ? "<" : op == C_GT ? ">" : op == C_LE ? "<=" : ">=",
                                  lt_jinja_type_name(&a), lt_jinja_type_name(&b));
                r = op == C_LT ? o < 0 : op == C_GT ? o > 0 : op == C_LE ? o <= 0 : o >= 0;
            }
            a = b;
        }
        *out = v_bool(r);
        return LT_OK;
    }
    case E_NOT:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        *out = v_bool(!lt_jinja_truthy(&a));
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
                          lt_jinja_type_name(&a));
        }
        return LT_OK;
    case E_AND:
    case E_OR:
        /* Python's: the deciding operand itself, not a bool. */
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (lt_jinja_truthy(&a) == (e->k == E_OR)) {
            *out = a;
            return LT_OK;
        }
        return eval(R, F, e->b, out);
    case E_COND:
        if ((st = eval(R, F, e->a, &a)) != LT_OK) return st;
        if (lt_jinja_truthy(&a)) return eval(R, F, e->b, out);
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
        n = lt_jinja_cp_count(it.s, it.n);
    } else if (it.k == V_DICT) {
        n = (size_t)cJSON_GetArraySize(it.json);
        value *items = lt_jinja_arena_alloc(&R->a, (n ? n : 1) * sizeof *items);
        if (!items) return lt_jinja_render_nomem(R);
        size_t k = 0;
        for (const cJSON *c = it.json->child; c && k < n; c = c->next)
            items[k++] = c->string ? v_str(c->string, strlen(c->string)) : v_str("", 0);
        keys.k = V_LIST;
        keys.items = items;
        keys.n = n;
    } else {
        return r_fail(R, s->pos, "'%s' object is not iterable", lt_jinja_type_name(&it));
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
                x = lt_jinja_from_json(jcur);
                jcur = jcur ? jcur->next : NULL;
            }
        } else if (it.k == V_STR) {
            size_t e = lt_jinja_cp_offset(it.s + byte, it.n - byte, 1);
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
            if ((st = lt_jinja_stringify(R, &v, &sv)) != LT_OK) return st;
            if ((st = emit(R, sv.s, sv.n)) != LT_OK) return st;
            break;
        }
        case S_IF: {
            int done = 0;
            for (int j = 0; j < s->nbranches && !done; j++) {
                value c;
                if ((st = eval(R, F, s->conds[j], &c)) != LT_OK) return st;
                if (lt_jinja_truthy(&c)) {
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
    lt_jinja_arena_free(&R.a);
    if (st != LT_OK) {
        lt_free(R.out);
        return st;
    }
    *out = R.out;
    *out_len = R.out_len;
    return LT_OK;
}
