/* Status codes and error messages shared by every module.
 *
 * Functions that can fail return an lt_status and, on failure, fill an
 * lt_error whose message names the file, field or line and what was
 * expected. Only the command's main() turns an error into an exit. */
#ifndef LT_CORE_STATUS_H
#define LT_CORE_STATUS_H

#include <stddef.h>

#include "core/hostdev.h"

LT_EXTERN_C_BEGIN

typedef enum {
    LT_OK = 0,
    LT_ERR_IO,          /* open/read/write/rename failed */
    LT_ERR_FORMAT,      /* a file's contents are not what its format requires */
    LT_ERR_CONFIG,      /* a configuration value is out of range or unknown */
    LT_ERR_NOMEM,       /* an allocation failed */
    LT_ERR_INVALID,     /* a caller passed arguments that violate the contract */
    LT_ERR_UNSUPPORTED, /* valid request this build cannot serve */
    LT_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    LT_STOPPED          /* not an error: stopped early on request, state saved */
} lt_status;

#define LT_ERROR_MSG_MAX 512

typedef struct {
    lt_status code;
    char msg[LT_ERROR_MSG_MAX];
} lt_error;

/* Records code and a printf-style message in err (if non-NULL) and returns
 * code, so callers write `return lt_fail(err, LT_ERR_FORMAT, "...", ...);`. */
lt_status lt_fail(lt_error *err, lt_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with context ("loading X: <old message>"). */
lt_status lt_fail_context(lt_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

const char *lt_status_name(lt_status s);

void lt_error_clear(lt_error *err);

LT_EXTERN_C_END

#endif
