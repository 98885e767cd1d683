/* Conversational JSONL through the data loader (io/data/dataset.c,
 * io/data/chat_records.c), for tests/e2e/chat_data.sh.
 *
 *   test_chat_data dump TOKENIZER JSONL TEMPLATE all|assistant OUT
 *       writes every row (T = 1024, unpacked) as "inputs: ..." and
 *       "targets: ..." lines, the format of tests/ref/chat_data_ref.py's rows;
 *   test_chat_data errors TOKENIZER SPM_TOKENIZER SCRATCH
 *       feeds broken conversations and configurations and checks that
 *       each is refused with one message naming the file's line, the field
 *       and what was expected. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/data/dataset.h"
#include "io/text/tokenizer.h"

enum { T = 1024, VOCAB = 512 };

static lt_status load(const char *tok_path, const char *jsonl, const char *spec, int assistant_only, int seq_len,
                      lt_tokenizer **tok, lt_dataset **ds, lt_error *err) {
    lt_status st = lt_tokenizer_load(tok_path, VOCAB, tok, err);
    if (st != LT_OK) return st;
    lt_data_config dc = lt_data_config_defaults();
    dc.seq_len = seq_len;
    dc.packing = 0;
    dc.truncate = 0;
    dc.chat_template = spec;
    dc.tokenizer_path = tok_path;
    dc.assistant_only_loss = assistant_only;
    return lt_dataset_load(jsonl, *tok, VOCAB, &dc, ds, NULL, err);
}

static int dump(char **argv) {
    lt_tokenizer *tok = NULL;
    lt_dataset *ds = NULL;
    lt_error err = {0};
    int rc = 1;
    if (load(argv[2], argv[3], argv[4], !strcmp(argv[5], "assistant"), T, &tok, &ds, &err) != LT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    FILE *f = fopen(argv[6], "w");
    if (!f) {
        perror(argv[6]);
        goto done;
    }
    int32_t in[T], tg[T];
    for (size_t r = 0; r < lt_dataset_rows(ds); r++) {
        lt_dataset_row(ds, r, in, tg);
        fputs("inputs:", f);
        for (int j = 0; j < T; j++) fprintf(f, " %d", in[j]);
        fputs("\ntargets:", f);
        for (int j = 0; j < T; j++) fprintf(f, " %d", tg[j]);
        fputc('\n', f);
    }
    rc = fclose(f) != 0;
    printf("%zu rows, %lld targets\n", lt_dataset_rows(ds), (long long)lt_dataset_target_tokens(ds));
done:
    lt_dataset_free(ds);
    lt_tokenizer_free(tok);
    return rc;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static int errors(char **argv) {
    /* spm: a tokenizer with no tokenizer_config.json beside it */
    const char *tok = argv[2], *spm = argv[3], *dir = argv[4];
    static const char ok[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, "
                             "{\"role\": \"assistant\", \"content\": \"hello there\"}]}\n";
    static const char loopy[] = "{% for m in messages %}{{ m.content }}{% if loop.last %}!{% endif %}{% endfor %}"
                                "{% if add_generation_prompt %}>{% endif %}";
    static const char raising[] = "{{ raise_exception('only user and assistant roles') if messages[0].role == "
                                  "'system' }}{% for m in messages %}{{ m.content }}{% endfor %}";
    static const struct {
        const char *what, *data, *tpl /* NULL: the tokenizer's */;
        int assistant_only, seq_len, spm;
        const char *want[3];
    } cases[] = {
        {"messages not an array", "{\"messages\": \"hi\"}\n", NULL, 0, T, 0,
         {"line 1", "messages is a string, expected an array", NULL}},
        {"empty conversation", "\n{\"messages\": []}\n", NULL, 0, T, 0, {"line 2", "messages is empty", NULL}},
        {"message not an object", "{\"messages\": [3]}\n", NULL, 0, T, 0,
         {"line 1", "messages[0] is a number, expected an object", NULL}},
        {"content missing", "{\"messages\": [{\"role\": \"user\"}]}\n", NULL, 0, T, 0,
         {"line 1", "messages[0].content is missing, expected a string", NULL}},
        {"content parts", "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}\n", NULL, 0, T,
         0, {"line 1", "messages[0].content is an array", "content parts are not supported"}},
        {"role not a string", "{\"messages\": [{\"role\": 1, \"content\": \"x\"}]}\n", NULL, 0, T, 0,
         {"line 1", "messages[0].role is a number", NULL}},
        {"both fields", "{\"messages\": [], \"text\": \"x\"}\n", NULL, 0, T, 0,
         {"line 1", "has both field \"messages\" and field \"text\"", NULL}},
        {"no assistant turn", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n", NULL, 1, T, 0,
         {"line 1", "leaves no token to train on", "assistant_only_loss"}},
        {"template file missing", ok, "/nonexistent/chat.jinja", 0, T, 0,
         {"line 1", "/nonexistent/chat.jinja", "needs a chat template"}},
        {"turn not locatable", ok, "loopy", 1, T, 0,
         {"line 1", "messages[1] (assistant)", "cannot be located"}},
        {"template raises", "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}]}\n", "raising", 0, T, 0,
         {"line 1", "only user and assistant roles", NULL}},
        {"too long, no truncation", ok, NULL, 0, 4, 0, {"line 1", "expected at most max_seq_length + 1", NULL}},
        {"no template beside the tokenizer", ok, NULL, 0, T, 1,
         {"line 1", "tokenizer_config.json cannot be read", "chat_template set to a .jinja file"}},
    };
    char tpl_loopy[4200], tpl_raising[4200];
    snprintf(tpl_loopy, sizeof tpl_loopy, "%s/loopy.jinja", dir);
    snprintf(tpl_raising, sizeof tpl_raising, "%s/raising.jinja", dir);
    if (!write_text(tpl_loopy, loopy) || !write_text(tpl_raising, raising)) {
        printf("FAIL: cannot write templates in %s\n", dir);
        return 1;
    }
    int fails = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/case%zu.jsonl", dir, i);
        if (!write_text(path, cases[i].data)) {
            printf("FAIL: cannot write %s\n", path);
            return 1;
        }
        const char *tpl = cases[i].tpl;
        if (tpl && !strcmp(tpl, "loopy")) tpl = tpl_loopy;
        if (tpl && !strcmp(tpl, "raising")) tpl = tpl_raising;
        lt_tokenizer *tk = NULL;
        lt_dataset *ds = NULL;
        lt_error err = {0};
        lt_status st = load(cases[i].spm ? spm : tok, path, tpl, cases[i].assistant_only, cases[i].seq_len, &tk,
                            &ds, &err);
        int good = st != LT_OK && strstr(err.msg, path) && !strchr(err.msg, '\n');
        for (int k = 0; k < 3 && cases[i].want[k]; k++) good = good && strstr(err.msg, cases[i].want[k]);
        printf("%s %s: %s\n", good ? "ok  " : "FAIL", cases[i].what, st == LT_OK ? "loaded" : err.msg);
        fails += !good;
        lt_dataset_free(ds);
        lt_tokenizer_free(tk);
    }
    /* The control: the same good record loads, and a plain text record
     * in the same file needs no template at all. */
    char path[4200];
    snprintf(path, sizeof path, "%s/good.jsonl", dir);
    lt_tokenizer *tk = NULL;
    lt_dataset *ds = NULL;
    lt_error err = {0};
    if (!write_text(path, "{\"text\": \"plain\"}\n") || load(tok, path, "/nonexistent.jinja", 0, T, &tk, &ds, &err) != LT_OK) {
        printf("FAIL: a text record asked for the chat template: %s\n", err.msg);
        fails++;
    }
    lt_dataset_free(ds);
    lt_tokenizer_free(tk);
    ds = NULL;
    tk = NULL;
    if (!write_text(path, ok) || load(tok, path, NULL, 1, T, &tk, &ds, &err) != LT_OK || lt_dataset_rows(ds) != 1) {
        printf("FAIL: the good conversation did not load: %s\n", err.msg);
        fails++;
    }
    lt_dataset_free(ds);
    lt_tokenizer_free(tk);
    printf("chat data errors: %d failures\n", fails);
    return fails != 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "dump")) return dump(argv);
    if (argc == 5 && !strcmp(argv[1], "errors")) return errors(argv);
    fprintf(stderr, "usage: test_chat_data dump TOKENIZER JSONL TEMPLATE all|assistant OUT\n"
                    "       test_chat_data errors TOKENIZER SPM_TOKENIZER SCRATCH\n");
    return 2;
}
