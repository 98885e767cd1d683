#include <stdio.h>
#include <string.h>

#include "io/checkpoint/checkpoint.h"
#include "launch/commands.h"

void lt_help_inspect(FILE *f) {
    fprintf(f,
            "usage: loratrain inspect [--tensors] CHECKPOINT\n"
            "\n"
            "Verifies a checkpoint-N.h5 (format, version, every tensor's checksum) and prints\n"
            "what it holds: step, tokens seen, data cursor, seed, base model identity, LoRA\n"
            "setup, schedule, tensor counts and the run config. Exit status 1 when it does\n"
            "not verify.\n"
            "\n"
            "  --tensors   also every tensor's name and shape (the adapter's; the moments\n"
            "              have the same; a full fine-tuning checkpoint: the model's)\n");
}

lt_status lt_cmd_inspect(int argc, char **argv, lt_error *err) {
    const int tensors = argc > 0 && !strcmp(argv[0], "--tensors");
    if (argc != 1 + tensors || argv[tensors][0] == '-')
        return lt_fail(err, LT_ERR_CONFIG,
                       "inspect: expected [--tensors] and one checkpoint file (loratrain inspect [--tensors] CHECKPOINT)");
    return lt_checkpoint_inspect(argv[tensors], stdout, tensors, err);
}
