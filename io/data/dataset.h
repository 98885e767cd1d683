/* Training data: datasets of fixed-length rows, read from text, JSONL and
 * token files (the loader that batches them is io/data/loader.h).
 *
 * A dataset is an immutable set of rows; row i is T input ids and T target
 * ids, a target being LT_IGNORE_INDEX where no loss is taken (BOS, masked
 * prompt tokens, padding). Rows are produced on demand from one compact
 * token stream (int32 ids, a byte per token saying whether it may be a
 * target, record offsets), never stored T-padded.
 *
 * Formats, chosen by content first:
 *   - a token file (io/data/token_file.h), recognised by its magic;
 *   - JSON lines when the name ends in .jsonl or .json: one object per line
 *     (blank lines skipped), either {text_field: "..."} or {prompt_field:
 *     "...", completion_field: "..."} or a conversation {messages_field:
 *     [{"role": ..., "content": ...}, ...]}; other keys are ignored;
 *   - anything else: UTF-8 text, the whole file one document.
 *
 * Tokens: a text file is BOS + encode(text); a JSONL record is BOS +
 * encode(text) + EOS, with encode(prompt + completion) for prompt/completion
 * records; a conversation is encode(chat template's render), no BOS or EOS
 * added (the template writes its own), its first token never a target.
 * Prompt/completion records take no loss on the prompt: the targets whose
 * token lies in the longest common prefix of encode(prompt + completion) and
 * encode(prompt) (both after BOS) are ignored, so a token merged across the
 * boundary counts as prompt (TRL's rule; the safe side). response_template
 * splits text records the same way, just after its first occurrence. BOS is
 * never a target, packed or not, so packing a JSONL set does not change
 * which of its tokens are trained on (only which rows they land in).
 *
 * Text is tokenised in pieces cut before a '\n' when the vocabulary has no
 * "\n" piece (then the byte piece <0x0A> never merges and the ids equal one
 * call over the whole text), which bounds the tokenizer's working memory.
 *
 * Packed (packing = 1): the stream is cut into windows, window k being
 * tokens [k*T, k*T + T + 1): inputs [0, T), targets [1, T + 1); there are
 * (N - 1) / T of them and the tail that does not fill one is dropped.
 * Unpacked (packing = 0, JSONL only): one row per record, inputs ids[0, n-1),
 * targets ids[1, n), right-padded with input 0 and ignored targets.
 *
 * Every record must leave at least one target to train on besides its final
 * EOS (a non-empty text, completion or response); one that does not is an
 * error naming its line rather than a row that silently trains on nothing.
 */
#ifndef LT_IO_DATA_DATASET_H
#define LT_IO_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/text/tokenizer.h"

typedef struct lt_dataset lt_dataset;

typedef struct {
    int seq_len;  /* T: max_seq_length, 1 .. LT_DATA_MAX_SEQ_LEN */
    int packing;  /* -1 auto: 1 for plain text and token files, 0 for JSONL;
                     1: concatenate and cut windows; 0: one row per record,
                     right-padded (JSONL only: a plain text file is one
                     document and always packed) */
    int truncate; /* unpacked records longer than T + 1 tokens: 1 keeps the
                     first T + 1 (the EOS is lost), 0 rejects the file with
                     an error naming the line */
    const char *text_field, *prompt_field, *completion_field; /* NULL: the defaults */
    /* Optional (TRL's DataCollatorForCompletionOnlyLM): text records take no
     * loss up to and including the first occurrence of this string; a record
     * without it is an error naming the line. NULL or "": none. JSONL only;
     * prompt/completion records are already split and ignore it. */
    const char *response_template;
    /* 0 .. 0.5: the last ceil(fraction * rows) windows (packed) or records
     * (unpacked) become the held-out set (ceil, as Hugging Face datasets'
     * train_test_split, but without its floating-point noise: 0.1 of 30
     * rows is 3), so held-out text is never a training target. */
    double holdout_fraction;
    /* Conversations (io/data/chat_records.h): a JSONL record whose
     * messages_field is present is a chat, rendered with chat_template: a
     * .jinja file, or NULL / "" / "tokenizer" for the "chat_template" of
     * tokenizer_config.json beside tokenizer_path (the tokenizer file or
     * directory; NULL: none). Loaded at the first conversation, so a
     * template is never needed, nor checked, for other records. */
    const char *messages_field;
    const char *chat_template;
    const char *tokenizer_path;
    /* 1: conversations take loss on assistant turns only (TRL's
     * assistant_only_loss); 0: on every token but the first. */
    int assistant_only_loss;
} lt_data_config;

#define LT_DATA_MAX_SEQ_LEN (1 << 24)

/* seq_len 1024 (TRL's max_length), packing auto, truncate on, fields
 * "text", "prompt", "completion", "messages", no response template, no
 * holdout, the tokenizer's chat template, loss on whole conversations. */
lt_data_config lt_data_config_defaults(void);

/* Loads path into *train and, when holdout_fraction > 0, the held-out rows
 * into *heldout (pass NULL to drop them: train is the same either way).
 * *heldout is NULL when there is no holdout. Token ids must be below
 * vocab_size (the model's); tok may be NULL only for token files. Errors
 * name the file, the line (and byte column for UTF-8 and JSON) or token
 * position, the field and what was expected. */
lt_status lt_dataset_load(const char *path, const lt_tokenizer *tok, int vocab_size,
                          const lt_data_config *cfg, lt_dataset **train, lt_dataset **heldout,
                          lt_error *err);

size_t lt_dataset_rows(const lt_dataset *ds);
int lt_dataset_seq_len(const lt_dataset *ds);
/* Targets that are not LT_IGNORE_INDEX, over all rows. */
int64_t lt_dataset_target_tokens(const lt_dataset *ds);
/* Fills T inputs and T targets of row i. A row past the end (a caller's
 * bug; this call has no error channel) comes back as padding only. */
void lt_dataset_row(const lt_dataset *ds, size_t i, int32_t *inputs, int32_t *targets);
/* The number of targets lt_dataset_row gives row i, without copying it
 * (0 for a row past the end). */
int64_t lt_dataset_row_targets(const lt_dataset *ds, size_t i);
void lt_dataset_free(lt_dataset *ds);

/* The token stream a file trains on, for writing a token file: a text file
 * gives BOS + its tokens; a JSONL file its records concatenated, each BOS +
 * tokens + EOS (default field names; prompt and completion as one string);
 * a token file its tokens. *ids is from lt_alloc, freed with lt_free. */
lt_status lt_dataset_tokenize_stream(const char *path, const lt_tokenizer *tok, int32_t **ids,
                                     size_t *n, lt_error *err);

#endif
