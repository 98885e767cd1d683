#include <stdio.h>
#include <string.h>

#include "io/checkpoint.h"
#include "launch/commands.h"

void lt_help_inspect(FILE *f) {
    fprintf(f,
            "usage: loratrain inspect CHECKPOINT\n"
            "\n"
            "Verifies a checkpoint-N.h5 (format, version, every tensor's checksum) and prints\n"
            "what it holds: step, tokens seen, data cursor, seed, base model identity, LoRA\n"
            "setup, schedule, tensor counts and the run config. Exit status 1 when it does\n"
            "not verify.\n");
}

lt_status lt_cmd_inspect(int argc, char **argv, lt_error *err) {
    if (argc != 1 || argv[0][0] == '-')
        return lt_fail(err, LT_ERR_CONFIG, "inspect: expected one checkpoint file (loratrain inspect CHECKPOINT)");
    return lt_checkpoint_inspect(argv[0], stdout, err);
}
