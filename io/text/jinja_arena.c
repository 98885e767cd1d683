/* Arenas for the tree and for render temporaries, and the one line every
 * template error is reported in. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "io/text/jinja_internal.h"

/* ------------------------------------------------------------- arenas */

void *lt_jinja_arena_alloc(arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        if (n > LT_JINJA_MAX_ARENA || a->total + n > LT_JINJA_MAX_ARENA) return NULL;
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

void lt_jinja_arena_free(arena *a) {
    for (chunk *c = a->head; c;) {
        chunk *n = c->next;
        lt_free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

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

lt_status lt_jinja_fail_at(lt_error *err, lt_status code, const char *name, const char *src,
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
