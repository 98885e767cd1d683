/* loratrain: fine-tune Llama-architecture models with LoRA and QLoRA. */
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "dist/comm.h"
#include "launch/commands.h"
#include "launch/stop_signal.h"

#define LT_VERSION "0.1.0"

typedef struct {
    const char *name;
    lt_status (*run)(int argc, char **argv, lt_error *err);
    lt_status (*run_parallel)(int argc, char **argv, lt_comm *world, lt_error *err);
    void (*help)(FILE *f);
    const char *summary;
} command;

static const command k_commands[] = {
    {"train", NULL, lt_cmd_train, lt_help_train, "fine-tune LoRA adapters from a JSON config"},
    {"generate", lt_cmd_generate, NULL, lt_help_generate, "sample text from a model, with or without an adapter"},
    {"tokenize", lt_cmd_tokenize, NULL, lt_help_tokenize, "turn a text corpus into a token file for training"},
    {"info", lt_cmd_info, NULL, lt_help_info, "print a model's shape and a LoRA setup's parameter counts"},
    {"plan", lt_cmd_plan, NULL, lt_help_plan, "predict a run's per-rank memory by category"},
    {"inspect", lt_cmd_inspect, NULL, lt_help_inspect, "verify a training checkpoint and print what it holds"},
    {"convert", lt_cmd_convert, NULL, lt_help_convert, "write a model as a Hugging Face directory (config.json, model.safetensors)"},
    {"export", lt_cmd_export, NULL, lt_help_export, "write a checkpoint's adapter as a Hugging Face PEFT adapter"},
    {"logits", lt_cmd_logits, NULL, lt_help_logits, "write a model's logits for token ids (for comparisons)"},
    {"merge", lt_cmd_merge, NULL, lt_help_merge, "merge a PEFT adapter into its base, as a Hugging Face model"},
    {"import", lt_cmd_import, NULL, lt_help_import, "check, summarise and evaluate a PEFT adapter; make it a checkpoint"},
};
#define NCOMMANDS (sizeof k_commands / sizeof k_commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: loratrain <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-9s %s\n", k_commands[i].name, k_commands[i].summary);
    fprintf(f, "  version   print the version\n\n"
               "`loratrain <command> --help` describes a command's options.\n"
               "Options are --name value or --name=value; errors are one line on stderr and a\n"
               "non-zero exit status (2: bad configuration or usage, 75: training stopped by\n"
               "SIGUSR1/SIGTERM/SIGINT after writing a checkpoint, 1: anything else).\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("loratrain %s\n", LT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const command *c = &k_commands[i];
        if (strcmp(cmd, c->name) != 0) continue;
        for (int a = 2; a < argc; a++)
            if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
                c->help(stdout);
                return 0;
            }
        lt_error err;
        lt_error_clear(&err);
        lt_comm *world = NULL;
        lt_status st = LT_OK;
        if (c->run_parallel) {
            st = lt_comm_init_world(&argc, &argv, &world, &err);
            if (st == LT_OK) st = c->run_parallel(argc - 2, argv + 2, world, &err);
        } else {
            st = c->run(argc - 2, argv + 2, &err);
        }
        /* Stopped by a signal after checkpointing: every rank agreed, so
         * there is nothing to abort; 75 tells a job script to requeue. */
        const int code = st == LT_OK ? 0 : st == LT_STOPPED ? LT_EXIT_STOPPED : st == LT_ERR_CONFIG ? 2 : 1;
        if (st != LT_OK && st != LT_STOPPED) {
            fflush(stdout);
            if (world && lt_comm_size(world) > 1)
                fprintf(stderr, "loratrain %s: rank %d of %d (%s): error: %s\n", cmd,
                        lt_comm_rank(world), lt_comm_size(world), lt_comm_info(world)->host, err.msg);
            else
                fprintf(stderr, "loratrain %s: error: %s\n", cmd, err.msg);
            fflush(stderr);
            /* The other ranks may be waiting in a collective for this one:
             * end them all rather than leave the job hanging. */
            if (world && lt_comm_size(world) > 1) lt_comm_abort(world, code);
        }
        lt_comm_free(world);
        return code;
    }
    fprintf(stderr, "loratrain: error: unknown command \"%s\" (`loratrain --help` lists them)\n",
            cmd);
    return 2;
}
