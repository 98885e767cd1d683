#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

lt_status lt_fail(lt_error *err, lt_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

lt_status lt_fail_context(lt_error *err, const char *fmt, ...) {
    if (!err) return LT_ERR_INTERNAL;
    char prefix[LT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[LT_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    /* Truncation keeps the start of both parts, which name what failed. */
    size_t pl = strlen(prefix), ol = strlen(old), cap = sizeof err->msg - 1;
    if (pl > cap - 2) pl = cap - 2;
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, ": ", 2);
    if (ol > cap - pl - 2) ol = cap - pl - 2;
    memcpy(err->msg + pl + 2, old, ol);
    err->msg[pl + 2 + ol] = '\0';
    return err->code;
}

const char *lt_status_name(lt_status s) {
    switch (s) {
    case LT_OK: return "ok";
    case LT_ERR_IO: return "I/O error";
    case LT_ERR_FORMAT: return "format error";
    case LT_ERR_CONFIG: return "configuration error";
    case LT_ERR_NOMEM: return "out of memory";
    case LT_ERR_INVALID: return "invalid argument";
    case LT_ERR_UNSUPPORTED: return "unsupported";
    case LT_ERR_INTERNAL: return "internal error";
    case LT_STOPPED: return "stopped on request";
    }
    return "unknown status";
}

void lt_error_clear(lt_error *err) {
    if (err) {
        err->code = LT_OK;
        err->msg[0] = '\0';
    }
}
