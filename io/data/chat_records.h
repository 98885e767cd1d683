/* Conversations as training records: {"messages": [{"role": "user",
 * "content": "..."}, ...]} rendered with a chat template and tokenised
 * as transformers' apply_chat_template(messages, tokenize=True) does: the
 * whole render encoded once, added tokens (<|im_start|>, <|eot_id|>, the
 * BOS/EOS spellings) cut out as special tokens, no BOS or EOS added
 * beyond what the template writes.
 *
 * Assistant turns are located without template markup: for message i
 * with role "assistant", P = render(messages[:i], add_generation_prompt)
 * and F = render(messages[:i + 1]) must each be a prefix of the next and
 * of the whole render R; the turn is R's bytes [len P, len F) (its content
 * and the end-of-turn text the template writes after it). Its tokens are
 * those of encode(R) past the common prefix with encode(P) and inside the
 * common prefix with encode(F), so a token merged across either boundary
 * is not counted as the assistant's (the safe side, as for prompt /
 * completion records). For templates with transformers' {% generation %}
 * blocks around exactly those bytes this is return_assistant_tokens_mask.
 *
 * SentencePiece tokenizers (tokenizer.model, llama2.c .bin) encode as
 * transformers' LlamaTokenizer with legacy=True (its default): the
 * template's bos_token / eos_token spellings become BOS / EOS and each
 * stretch between them is encoded alone, with its dummy prefix. */
#ifndef LT_IO_DATA_CHAT_RECORDS_H
#define LT_IO_DATA_CHAT_RECORDS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/text/chat_template.h"
#include "io/text/tokenizer.h"

typedef struct {
    int32_t *ids;       /* encode(render(messages)) */
    uint8_t *assistant; /* 1 for tokens of assistant turns */
    size_t n;
} lt_chat_tokens;

/* messages: the record's JSON array, each item an object with string
 * "role" and "content" (other keys are passed to the template). Errors say
 * which message and field (messages[2].content) and what was expected; the
 * caller adds the file and line. *out is filled with lt_alloc'd arrays. */
lt_status lt_chat_encode(const lt_chat_template *t, const lt_tokenizer *tok, const cJSON *messages,
                         lt_chat_tokens *out, lt_error *err);
void lt_chat_tokens_free(lt_chat_tokens *ct);

#endif
