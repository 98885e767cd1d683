/* Chat templates: the Jinja2 subset the chat templates models ship in
 * tokenizer_config.json are written in, rendered as Hugging Face's
 * apply_chat_template renders them (trim_blocks and lstrip_blocks on, one
 * trailing newline of the source dropped, undefined values printing as
 * nothing).
 *
 * Supported: text, {{ expr }}, {% if/elif/else/endif %}, {% for x in y %}
 * (with {% else %}, {% break %}, {% continue %}; loop.index0, index,
 * revindex, revindex0, first, last, length), {% set name = expr %},
 * {% generation %}...{% endgeneration %} (transformers' marker of
 * assistant output; rendered as its body), whitespace control ({%- -%}
 * {{- -}} {#- -#} and +), comments; literals
 * ('...' "..." with Python's escapes, integers, floats, true/false/none,
 * [lists]); + - * / // % ~, == != < > <= >=, in / not in, and / or / not,
 * x if c else y; msg['role'], msg.content, slices [a:b]; filters trim,
 * length/count, upper, lower, string, first, last; tests defined,
 * undefined, none, string, number, integer, mapping, sequence, iterable,
 * true, false; string methods strip/lstrip/rstrip/upper/lower/startswith/
 * endswith, dict .get(k[, default]); raise_exception('...'), range(n).
 * Variables: messages, add_generation_prompt, bos_token, eos_token, and
 * tools / documents (none, as apply_chat_template passes them).
 *
 * Limits: whitespace for trim/strip/-%} is ASCII (plus \x1c-\x1f), and
 * upper/lower change ASCII letters only (Python's cover all of Unicode);
 * macros, namespace(), dict literals and {% raw %} are syntax errors naming
 * the construct. Every error names the template, line, column and byte
 * offset (in the source with \r\n and \r turned into \n, as Jinja2 reads
 * it). Nesting is bounded (LT_CHAT_MAX_DEPTH), and so are render time and
 * output, so no input makes the renderer crash or run away. */
#ifndef LT_IO_CHAT_TEMPLATE_H
#define LT_IO_CHAT_TEMPLATE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/status.h"

#define LT_CHAT_MAX_DEPTH 128

typedef struct lt_chat_template lt_chat_template;

/* Parses src[0, len) once; name (a path, "tokenizer_config.json") names it
 * in messages. */
lt_status lt_chat_template_parse(const char *src, size_t len, const char *name,
                                 lt_chat_template **out, lt_error *err);
void lt_chat_template_free(lt_chat_template *t);

/* The bos_token / eos_token variables (copied; NULL leaves one undefined). */
lt_status lt_chat_template_set_tokens(lt_chat_template *t, const char *bos_token,
                                      const char *eos_token, lt_error *err);
const char *lt_chat_template_bos(const lt_chat_template *t);
const char *lt_chat_template_eos(const lt_chat_template *t);
const char *lt_chat_template_name(const lt_chat_template *t);

/* Renders with messages = the first n_messages items of the JSON array
 * messages (n_messages beyond its size: all). *out is NUL-terminated, from
 * lt_alloc (free with lt_free); *out_len its length. */
lt_status lt_chat_template_render(const lt_chat_template *t, const cJSON *messages,
                                  size_t n_messages, int add_generation_prompt, char **out,
                                  size_t *out_len, lt_error *err);

/* Where the config key chat_template points: "tokenizer" takes
 * tokenizer_config.json's "chat_template" in tokenizer_dir (a string, or a
 * list of {name, template} of which "default" is taken); anything else is
 * the path of a template file (.jinja). bos_token / eos_token come from
 * tokenizer_config.json in tokenizer_dir when it names them (a string or
 * {"content": ...}), else from the arguments (the tokenizer's spellings;
 * NULL: undefined). tokenizer_dir may be NULL (no tokenizer_config.json). */
lt_status lt_chat_template_load(const char *spec, const char *tokenizer_dir,
                                const char *bos_fallback, const char *eos_fallback,
                                lt_chat_template **out, lt_error *err);

#endif
