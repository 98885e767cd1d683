#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/model/adapter.h"
#include "io/fileutil.h"
#include "io/model/hf_model.h"
#include "io/model/any_format.h"
#include "io/model/safetensors.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/backend.h"

void lt_help_convert(FILE *f) {
    fprintf(f,
            "usage: loratrain convert --model FILE --output_dir DIR [--dtype f32|f16|bf16] [--device D]\n"
            "\n"
            "Writes the model as a Hugging Face model directory: DIR/config.json\n"
            "(LlamaForCausalLM) and DIR/model.safetensors under Hugging Face tensor names, with\n"
            "the q_proj and k_proj rows in the rotate-half RoPE order transformers uses (a tied\n"
            "classifier is not written, as transformers does not). Each file is written\n"
            "atomically; config.json last. transformers' LlamaForCausalLM.from_pretrained(DIR)\n"
            "and loratrain's --model DIR load it.\n"
            "\n"
            "  --model FILE|DIR   a llama2.c checkpoint or a Hugging Face model directory\n"
            "  --output_dir DIR   where to write (created if needed)\n"
            "  --dtype D          f32, f16 or bf16 (rounded to nearest even) [default: f32]\n"
            LT_CLI_DEVICE_HELP);
}

static const struct {
    const char *opt, *torch;
    lt_st_dtype dtype;
} k_dtypes[] = {{"f32", "float32", LT_ST_F32}, {"f16", "float16", LT_ST_F16},
                {"bf16", "bfloat16", LT_ST_BF16}};

/* Rewrites the F32 file src as dst in dtype: lt_model_save_safetensors
 * gives the names and row order, this only changes the storage. */
static lt_status transcode(const char *src, const char *dst, lt_st_dtype dtype, lt_error *err) {
    lt_safetensors *in = NULL;
    lt_status st = lt_st_open(src, &in, err);
    if (st != LT_OK) return st;
    const int n = lt_st_count(in);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += lt_st_at(in, i)->numel;
    float *data = lt_alloc(LT_MEM_WORKSPACE, (total ? total : 1) * sizeof(float));
    lt_st_out *outs = calloc(n > 0 ? (size_t)n : 1, sizeof *outs);
    if (!data || !outs) {
        st = lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", dst);
        goto done;
    }
    uint64_t at = 0;
    for (int i = 0; i < n && st == LT_OK; i++) {
        const lt_st_tensor *t = lt_st_at(in, i);
        st = lt_st_read_f32(in, t, data + at, (size_t)t->numel, err);
        outs[i] = (lt_st_out){.name = t->name, .data = data + at, .ndim = t->ndim};
        memcpy(outs[i].shape, t->shape, sizeof t->shape);
        at += t->numel;
    }
    const char *meta[] = {"format", "pt"};
    if (st == LT_OK) st = lt_st_write(dst, outs, n, dtype, meta, 1, err);
done:
    lt_st_close(in);
    lt_free(data);
    free(outs);
    return st;
}

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

static lt_status convert_or_merge(int argc, char **argv, int merge, lt_error *err) {
    const char *model = NULL, *out_dir = NULL, *adapter = NULL, *device = "auto";
    const char *cmd = merge ? "merge" : "convert";
    int d = 0;
    lt_cli c;
    lt_cli_init(&c, argc, argv);
    lt_status st;
    while (lt_cli_next(&c, err, &st)) {
        if (!strcmp(c.key, "model") || !strcmp(c.key, "output_dir") || !strcmp(c.key, "dtype") ||
            !strcmp(c.key, "device") || (merge && !strcmp(c.key, "adapter"))) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            if (!strcmp(c.key, "model")) {
                model = c.value;
            } else if (!strcmp(c.key, "adapter")) {
                adapter = c.value;
            } else if (!strcmp(c.key, "output_dir")) {
                out_dir = c.value;
            } else if (!strcmp(c.key, "device")) {
                device = c.value;
            } else {
                for (d = 0; d < 3 && strcmp(c.value, k_dtypes[d].opt); d++) {
                }
                if (d == 3)
                    return lt_fail(err, LT_ERR_CONFIG, "--dtype: \"%s\", expected f32, f16 or bf16",
                                   c.value);
            }
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"%s%s\" for %s",
                           *c.key ? "--" : "", *c.key ? c.key : c.value, cmd);
        }
    }
    if (st != LT_OK) return st;
    if (!model) return lt_fail(err, LT_ERR_CONFIG, "--model: missing, expected a checkpoint file");
    if (!out_dir) return lt_fail(err, LT_ERR_CONFIG, "--output_dir: missing, expected a directory");
    if (merge && !adapter)
        return lt_fail(err, LT_ERR_CONFIG, "--adapter: missing, expected a PEFT adapter directory");
    char path[4200], index[4200], tmp_dir[4200], tmp_file[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", out_dir);
    struct stat sb;
    /* The loader prefers an index over model.safetensors, so a stale one
     * would shadow what we write. */
    if (stat(index, &sb) == 0)
        return lt_fail(err, LT_ERR_CONFIG,
                       "--output_dir: %s exists and would shadow the new model.safetensors; "
                       "remove it or choose another directory",
                       index);
    const lt_ops *ops = NULL;
    if ((st = lt_backend_open(device, 0, &ops, err)) != LT_OK) return st;
    lt_model *m = NULL;
    if ((st = lt_model_file_load_quantized(model, NULL, ops, &m, err)) != LT_OK) return st;
    if (adapter && ((st = lt_adapter_load(m, adapter, err)) != LT_OK ||
                    (st = lt_model_merge_lora(m, 0, err)) != LT_OK))
        goto done;
    if ((st = lt_make_dirs(out_dir, err)) != LT_OK) goto done;
    if (k_dtypes[d].dtype == LT_ST_F32) {
        st = lt_model_save_safetensors(m, out_dir, err);
    } else {
        snprintf(tmp_dir, sizeof tmp_dir, "%s/.convert-f32-%ld", out_dir, (long)getpid());
        snprintf(tmp_file, sizeof tmp_file, "%s/model.safetensors", tmp_dir);
        st = lt_model_save_safetensors(m, tmp_dir, err);
        if (st == LT_OK) st = transcode(tmp_file, path, k_dtypes[d].dtype, err);
        unlink(tmp_file);
        rmdir(tmp_dir);
    }
    if (st == LT_OK) st = lt_hf_write_config(out_dir, lt_model_get_config(m), k_dtypes[d].torch, err);
    if (st == LT_OK) {
        uint64_t bytes = 0;
        if ((st = lt_file_size(path, &bytes, err)) == LT_OK)
            printf("%s %s (%s)%s%s to %s: config.json and model.safetensors (%s, %.2f MiB)\n",
                   merge ? "merged" : "converted", model, lt_model_file_format(model),
                   merge ? " + " : "", merge ? adapter : "", out_dir,
                   lt_st_dtype_name(k_dtypes[d].dtype), (double)bytes / (1 << 20));
    }
done:
    lt_model_free(m);
    return st;
}

lt_status lt_cmd_convert(int argc, char **argv, lt_error *err) { return convert_or_merge(argc, argv, 0, err); }

lt_status lt_cmd_merge(int argc, char **argv, lt_error *err) { return convert_or_merge(argc, argv, 1, err); }
