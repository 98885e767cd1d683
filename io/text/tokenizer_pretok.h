/* Pre-tokenization for byte-level BPE: the two regular expressions Hugging
 * Face tokenizer.json files use (GPT-2's, and Llama 3's, of which Qwen 2's
 * is the 1-digit variant), implemented by hand with the regex engine's
 * leftmost-first semantics. ASCII is classified exactly; other codepoints
 * by a table of the common letter, number and space ranges (Latin, Greek,
 * Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai, Georgian, Hangul,
 * kana, CJK ideographs, fullwidth forms, math alphanumerics) -- an
 * approximation of \p{L} / \p{N} / \s that can split rarer scripts or
 * combining marks differently from the reference. */
#ifndef LT_IO_TEXT_TOKENIZER_PRETOK_H
#define LT_IO_TEXT_TOKENIZER_PRETOK_H

#include <stddef.h>

typedef enum {
    LT_PRETOK_NONE = 0, /* the whole text is one piece */
    LT_PRETOK_GPT2,     /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    LT_PRETOK_LLAMA3,   /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    LT_PRETOK_QWEN2     /* LLAMA3 with \p{N} for \p{N}{1,3} */
} lt_pretok;

/* The pattern a tokenizer.json Split/ByteLevel regex names, or -1 when it is
 * none of the ones above. */
int lt_pretok_identify(const char *regex);

/* Length in bytes (>= 1) of the pre-token starting at s[i], i < n. */
size_t lt_pretok_next(lt_pretok p, const char *s, size_t n, size_t i);

#endif
