/* Small string helpers shared by the parsers. */
#ifndef LT_CORE_STRUTIL_H
#define LT_CORE_STRUTIL_H

#include <stddef.h>

/* Levenshtein distance, case-insensitive; strings longer than 64 bytes
 * compare as far apart (used for "did you mean" suggestions only). */
int lt_edit_distance(const char *a, const char *b);

/* The candidate closest to name, or NULL when none is within a third of
 * the name's length (plus one): a suggestion that helps, not a random one. */
const char *lt_closest(const char *name, const char *const *candidates, size_t n);

#endif
