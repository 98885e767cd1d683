/* loratrain: fine-tune Llama-architecture models with LoRA and QLoRA. */
#include <stdio.h>
#include <string.h>

#include "core/status.h"
#include "launch/commands.h"

#define LT_VERSION "0.1.0"

static void usage(FILE *f) {
    fprintf(f,
            "usage: loratrain <command> [options]\n"
            "\n"
            "commands:\n"
            "  generate  sample text from a model\n"
            "            --model FILE --tokenizer FILE [--prompt TEXT] [--steps N]\n"
            "            [--temperature T] [--top_p P] [--seed S] [--threads N] [--ids_out FILE]\n"
            "  info      print a model's shape and the parameter counts of a LoRA setup\n"
            "            --model FILE [--r N] [--lora_alpha A] [--lora_dropout P]\n"
            "            [--target_modules q_proj,v_proj|all-linear] [--use_rslora]\n"
            "  version   print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    lt_error err;
    lt_error_clear(&err);
    lt_status st;
    if (!strcmp(cmd, "generate"))
        st = lt_cmd_generate(argc - 2, argv + 2, &err);
    else if (!strcmp(cmd, "info"))
        st = lt_cmd_info(argc - 2, argv + 2, &err);
    else if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("loratrain %s\n", LT_VERSION);
        return 0;
    } else {
        fprintf(stderr, "loratrain: error: unknown command \"%s\" (expected generate, info or version)\n", cmd);
        return 2;
    }
    if (st != LT_OK) {
        fflush(stdout);
        fprintf(stderr, "loratrain %s: error: %s\n", cmd, err.msg);
        return st == LT_ERR_CONFIG ? 2 : 1;
    }
    return 0;
}
