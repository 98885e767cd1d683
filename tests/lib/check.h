/* Minimal test harness: CHECK records a failure with file:line and keeps
 * going; a test's main returns check_exit_code() so CTest sees any failure. */
#ifndef LT_TESTS_CHECK_H
#define LT_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures_ = 0;
static int check_count_ = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        check_count_++;                                                      \
        if (!(cond)) {                                                       \
            check_failures_++;                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, "\n");                                           \
        }                                                                    \
    } while (0)

/* Fails the test (and returns from the enclosing function) on a bad status. */
#define CHECK_OK(expr, err)                                                       \
    do {                                                                          \
        check_count_++;                                                           \
        lt_status st_ = (expr);                                                   \
        if (st_ != LT_OK) {                                                       \
            check_failures_++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s -> %s: %s\n", __FILE__, __LINE__,     \
                    #expr, lt_status_name(st_), (err)->msg);                      \
            return check_exit_code();                                             \
        }                                                                         \
    } while (0)

static inline int check_exit_code(void) {
    if (check_count_ == 0) {
        fprintf(stderr, "FAIL: no checks were run\n");
        return 1;
    }
    if (check_failures_) {
        fprintf(stderr, "%d of %d checks failed\n", check_failures_, check_count_);
        return 1;
    }
    printf("all %d checks passed\n", check_count_);
    return 0;
}

#endif
