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
#include "launch/cmd_convert.h"
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

lt_status lt_convert_open(int argc, char **argv, const char *cmd, lt_convert_job *j, lt_error *err) {
    const int merge = !strcmp(cmd, "merge");
    const char *device = "auto";
    *j = (lt_convert_job){.model = NULL};
    lt_cli c;
    lt_cli_init(&c, argc, argv);
    lt_status st;
    while (lt_cli_next(&c, err, &st)) {
        if (!strcmp(c.key, "model") || !strcmp(c.key, "output_dir") || !strcmp(c.key, "dtype") ||
            !strcmp(c.key, "device") || (merge && !strcmp(c.key, "adapter"))) {
            if ((st = lt_cli_need_value(&c, err)) != LT_OK) return st;
            if (!strcmp(c.key, "model")) {
                j->model = c.value;
            } else if (!strcmp(c.key, "adapter")) {
                j->adapter = c.value;
            } else if (!strcmp(c.key, "output_dir")) {
                j->out_dir = c.value;
            } else if (!strcmp(c.key, "device")) {
                device = c.value;
            } else {
                int d = 0;
                for (; d < 3 && strcmp(c.value, k_dtypes[d].opt); d++) {
                }
                if (d == 3)
                    return lt_fail(err, LT_ERR_CONFIG, "--dtype: \"%s\", expected f32, f16 or bf16",
                                   c.value);
                j->dtype = d;
            }
        } else {
            return lt_fail(err, LT_ERR_CONFIG, "unknown option \"%s%s\" for %s",
                           *c.key ? "--" : "", *c.key ? c.key : c.value, cmd);
        }
    }
    if (st != LT_OK) return st;
    if (!j->model) return lt_fail(err, LT_ERR_CONFIG, "--model: missing, expected a checkpoint file");
    if (!j->out_dir) return lt_fail(err, LT_ERR_CONFIG, "--output_dir: missing, expected a directory");
    if (merge && !j->adapter)
        return lt_fail(err, LT_ERR_CONFIG, "--adapter: missing, expected a PEFT adapter directory");
    char index[4200];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", j->out_dir);
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
    return lt_model_file_load_quantized(j->model, NULL, ops, &j->m, err);
}

lt_status lt_convert_write(const lt_convert_job *j, lt_error *err) {
    const int d = j->dtype;
    char path[4200], tmp_dir[4200], tmp_file[4300];
    snprintf(path, sizeof path, "%s/model.safetensors", j->out_dir);
    lt_status st = lt_make_dirs(j->out_dir, err);
    if (st != LT_OK) return st;
    if (k_dtypes[d].dtype == LT_ST_F32) {
        st = lt_model_save_safetensors(j->m, j->out_dir, err);
    } else {
        snprintf(tmp_dir, sizeof tmp_dir, "%s/.convert-f32-%ld", j->out_dir, (long)getpid());
        snprintf(tmp_file, sizeof tmp_file, "%s/model.safetensors", tmp_dir);
        st = lt_model_save_safetensors(j->m, tmp_dir, err);
        if (st == LT_OK) st = transcode(tmp_file, path, k_dtypes[d].dtype, err);
        unlink(tmp_file);
        rmdir(tmp_dir);
    }
    if (st == LT_OK) st = lt_hf_write_config(j->out_dir, lt_model_get_config(j->m), k_dtypes[d].torch, err);
    if (st == LT_OK) {
        uint64_t bytes = 0;
        if ((st = lt_file_size(path, &bytes, err)) == LT_OK)
            printf("%s %s (%s)%s%s to %s: config.json and model.safetensors (%s, %.2f MiB)\n",
                   j->adapter ? "merged" : "converted", j->model, lt_model_file_format(j->model),
                   j->adapter ? " + " : "", j->adapter ? j->adapter : "", j->out_dir,
                   lt_st_dtype_name(k_dtypes[d].dtype), (double)bytes / (1 << 20));
    }
    return st;
}

void lt_convert_close(lt_convert_job *j) {
    lt_model_free(j->m);
    j->m = NULL;
}

lt_status lt_cmd_convert(int argc, char **argv, lt_error *err) {
    lt_convert_job j;
    lt_status st = lt_convert_open(argc, argv, "convert", &j, err);
    if (st != LT_OK) return st;
    st = lt_convert_write(&j, err);
    lt_convert_close(&j);
    return st;
}
