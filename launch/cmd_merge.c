/* `loratrain merge`: a PEFT adapter folded into its base, written as
 * `convert` writes a model (launch/cmd_convert.h). */
#include <stdio.h>

#include "io/model/adapter.h"
#include "launch/cli.h"
#include "launch/cmd_convert.h"
#include "launch/commands.h"

void lt_help_merge(FILE *f) {
    fprintf(f,
            "usage: loratrain merge --model FILE|DIR --adapter DIR --output_dir DIR [--dtype f32|f16|bf16]\n"
            "                       [--device D]\n"
            "\n"
            "Merges a PEFT LoRA adapter into its base (W + scale B A, as PEFT's\n"
            "merge_and_unload) and writes the result as a Hugging Face model directory, as\n"
            "`loratrain convert` does: the merged model's logits are the base + adapter's.\n"
            "The base is read in fp32 (for a QLoRA adapter: the original weights, not their\n"
            "NF4 rounding).\n"
            "\n"
            "  --model FILE|DIR   the adapter's base: a llama2.c checkpoint or a Hugging Face directory\n"
            "  --adapter DIR      a PEFT adapter directory (e.g. a training output_dir or an export)\n"
            "  --output_dir DIR   where to write (created if needed)\n"
            "  --dtype D          f32, f16 or bf16 (rounded to nearest even) [default: f32]\n"
            LT_CLI_DEVICE_HELP);
}

lt_status lt_cmd_merge(int argc, char **argv, lt_error *err) {
    lt_convert_job j;
    lt_status st = lt_convert_open(argc, argv, "merge", &j, err);
    if (st != LT_OK) return st;
    if ((st = lt_adapter_load(j.m, j.adapter, err)) == LT_OK &&
        (st = lt_model_merge_lora(j.m, 0, err)) == LT_OK)
        st = lt_convert_write(&j, err);
    lt_convert_close(&j);
    return st;
}
