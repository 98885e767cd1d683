/* Strict JSON. Every JSON text loratrain reads (run configs, JSONL
 * records, chat records, safetensors headers, tokenizer and model configs,
 * adapter configs) first passes one linear check of RFC 8259's grammar,
 * and only then does cJSON build the tree: cJSON alone takes much that a
 * strict parser refuses (trailing commas, \u escapes without 4 hex digits
 * or NUL bytes, which end its strings early and so silently cut records).
 *
 * Refused, each with the place and what was expected:
 *   - anything outside RFC 8259: comments, single quotes, trailing commas,
 *     leading zeros, '+' signs, NaN / Infinity, bare words, text after the
 *     value, a byte order mark, unescaped control characters (< 0x20) in
 *     strings, invalid escapes, \u without 4 hex digits;
 *   - NUL bytes anywhere and invalid UTF-8 (RFC 3629: no overlong forms,
 *     no encoded surrogates, nothing above U+10FFFF);
 *   - what RFC 8259 allows but cannot be read faithfully here (Python's
 *     json.loads accepts these; serde_json, under Hugging Face tokenizers,
 *     refuses the first three):
 *       duplicate keys in one object (which one counts is ambiguous),
 *       unpaired UTF-16 surrogate escapes (no UTF-8 form),
 *       nesting deeper than LT_JSON_MAX_DEPTH,
 *       the escape \u0000 (cJSON's strings end at a NUL: the rest of the
 *       string would silently vanish).
 * Messages read "FILE:LINE:COL: <what was found> (expected <what>)", the
 * column counted in characters from 1. */
#ifndef LT_IO_JSON_H
#define LT_IO_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* As serde_json's recursion limit; configs and tokenizer files nest < 10. */
#define LT_JSON_MAX_DEPTH 128

typedef struct {
    size_t offset;      /* byte offset of the fault in the text */
    char what[200];     /* what was found there */
    char expected[200]; /* what the grammar wants instead */
    size_t first;       /* a duplicate key's first occurrence; SIZE_MAX for other faults */
} lt_json_fault;

/* Checks text[0, len) as one JSON text. LT_OK when valid; LT_ERR_FORMAT
 * with *fault filled when not; LT_ERR_NOMEM when the duplicate-key table
 * cannot grow (fault->what says so). One pass, no allocation for texts
 * whose open objects hold fewer than 32 keys at once. */
lt_status lt_json_check(const char *text, size_t len, lt_json_fault *fault);

/* Length of the longest prefix of s[0, n) that is valid UTF-8 (RFC 3629,
 * as the check takes it) and ends on a character boundary: n when all of
 * it is. */
size_t lt_utf8_valid_prefix(const char *s, size_t n);

/* Line and column (from first_line and 1; the column in UTF-8 characters)
 * of byte offset in text, whose prefix up to offset is valid UTF-8. */
void lt_json_position(const char *text, size_t offset, int first_line, size_t *line, size_t *col);

/* Checks, then builds the tree (freed with cJSON_Delete). file names the
 * text in messages; first_line is the line text starts on (1 for a whole
 * file, the record's line for a JSONL record). Errors are LT_ERR_FORMAT
 * (or LT_ERR_NOMEM). */
lt_status lt_json_parse(const char *text, size_t len, const char *file, int first_line, cJSON **out,
                        lt_error *err);

/* The same for JSON inside a binary file: part names it and offset is the
 * file offset of text[0] ("F: header byte 57 (line 1, column 50): ..."). */
lt_status lt_json_parse_part(const char *text, size_t len, const char *file, const char *part,
                             uint64_t offset, cJSON **out, lt_error *err);

/* Reads a whole file of at most max_bytes and parses it. */
lt_status lt_json_parse_file(const char *path, uint64_t max_bytes, cJSON **out, lt_error *err);

#endif
