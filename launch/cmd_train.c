#include <stdio.h>
#include <string.h>

#include "launch/cli.h"
#include "launch/commands.h"
#include "launch/run_config.h"
#include "launch/trainer.h"

void lt_help_train(FILE *f) {
    fprintf(f,
            "usage: loratrain train --config FILE [--key value ...]\n"
            "\n"
            "Fine-tunes LoRA adapters on a frozen base model. FILE is a JSON object of the\n"
            "settings below (Hugging Face TrainingArguments / LoraConfig names); --key value\n"
            "on the command line overrides the file. Writes output_dir/metrics.jsonl (one\n"
            "line per step, plus eval_loss lines), output_dir/run_config.json, and the\n"
            "adapter in Hugging Face PEFT layout (adapter_config.json,\n"
            "adapter_model.safetensors) to output_dir; every save_steps, a training\n"
            "checkpoint output_dir/checkpoint-N.h5 that resume_from_checkpoint continues\n"
            "from exactly (`loratrain inspect` shows one).\n"
            "\n"
            "Data parallel: `mpirun -np N loratrain train ...` or `srun --mpi=pmix loratrain\n"
            "train ...` runs N ranks; each takes per_device_train_batch_size sequences of\n"
            "every global micro-batch, only the LoRA gradients are all-reduced, and rank 0\n"
            "writes the outputs. shard_base splits a quantized base across the ranks.\n"
            "\n"
            "example: loratrain train --config launch/configs/stories260K_shakespeare.json \\\n"
            "             --max_steps 100 --output_dir out/shakespeare\n");
    lt_run_config_print_help(f);
}

lt_status lt_cmd_train(int argc, char **argv, lt_comm *world, lt_error *err) {
    lt_run_config c;
    lt_run_config_defaults(&c);
    lt_cli cli;
    lt_status st;
    /* The file first, then the overrides, wherever --config appears. */
    lt_cli_init(&cli, argc, argv);
    while (lt_cli_next(&cli, err, &st)) {
        if (!strcmp(cli.key, "config")) {
            if ((st = lt_cli_need_value(&cli, err)) != LT_OK) return st;
            if ((st = lt_run_config_load_json(&c, cli.value, err)) != LT_OK) return st;
        }
    }
    if (st != LT_OK) return st;
    lt_cli_init(&cli, argc, argv);
    while (lt_cli_next(&cli, err, &st)) {
        if (!strcmp(cli.key, "config")) continue;
        if (!*cli.key)
            return lt_fail(err, LT_ERR_CONFIG, "unexpected argument \"%s\" (settings are --key value)",
                           cli.value);
        char source[80];
        snprintf(source, sizeof source, "--%s", cli.key);
        if ((st = lt_run_config_set(&c, cli.key, cli.value, source, err)) != LT_OK) return st;
    }
    if (st != LT_OK) return st;
    if ((st = lt_run_config_validate(&c, err)) != LT_OK) return st;
    return lt_train(&c, world, err);
}
