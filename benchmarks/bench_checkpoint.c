/* Checkpoint write and read time and file size against the raw bytes of
 * the state (LoRA parameters + two AdamW moments, fp32): a Llama-2-7B-shaped
 * LoRA (dim 4096, hidden 11008, 32 layers, r 16 on all linears: 40M
 * parameters, 480 MiB of state) by default, or --dim/--hidden/--layers/--r.
 * The base weights are not part of a checkpoint: the model is created as
 * shard 0 of 64 of an NF4 base, so only 1/64 of a base is allocated.
 * Prints one JSON line.
 * Usage: bench_checkpoint DIR [--dim N] [--hidden N] [--layers N] [--r N] [--reps N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/checkpoint/checkpoint.h"
#include "io/fileutil.h"
#include "model/backend.h"
#include "core/clock.h"
#include "io/checkpoint/checkpoint.h"
#include "io/fileutil.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_checkpoint DIR [--dim N] [--hidden N] [--layers N] [--r N] [--reps N]\n");
        return 2;
    }
    int dim = 4096, hidden = 11008, layers = 32, r = 16, reps = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--dim")) dim = v;
        else if (!strcmp(argv[i], "--hidden")) hidden = v;
        else if (!strcmp(argv[i], "--layers")) layers = v;
        else if (!strcmp(argv[i], "--r")) r = v;
        else if (!strcmp(argv[i], "--reps")) reps = v;
    }
    lt_error err;
    lt_model_config mc = {.dim = dim, .hidden_dim = hidden, .n_layers = layers, .n_heads = dim / 128,
                          .n_kv_heads = dim / 128, .vocab_size = 256, .seq_len = 64,
                          .norm_eps = 1e-5f, .rope_theta = 10000.0f, .shared_classifier = 1};
    lt_model *m = NULL;
    const lt_ops *ops = NULL;
    lt_adamw opt, back;
    lt_lora_config lc = {.r = r, .alpha = 2.0f * (float)r, .dropout = 0, .use_rslora = 0, .targets = LT_MOD_MASK_ALL};
    lt_adamw_config ac = lt_adamw_default_config();
    lt_quant_config qc;
    lt_quant_config four = {.format = LT_QUANT_NF4, .blocksize = 64, .double_quant = 1};
    if (lt_backend_open("cpu", 1, &ops, &err) != LT_OK || lt_quant_select(1, 0, &four, &qc, &err) != LT_OK ||
        lt_model_create_sharded(&mc, &qc, 0, 64, ops, &m, &err) != LT_OK ||
        lt_model_add_lora(m, &lc, 1, &err) != LT_OK ||
        lt_adamw_init(&opt, lt_model_lora_table(m)->numel, &ac, &err) != LT_OK ||
        lt_adamw_init(&back, opt.n, &ac, &err) != LT_OK || lt_make_dirs(argv[1], &err) != LT_OK) {
        fprintf(stderr, "bench_checkpoint: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < opt.n; i++) opt.m[i] = 1e-3f * (float)(i % 977), opt.v[i] = 1e-6f * (float)(i % 991);
    opt.step = 100;
    lt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.world_size = 1;
    meta.sched.total_steps = 1000;
    double w = 1e30, rd = 1e30;
    char path[4096];
    lt_status st = LT_OK;
    for (int k = 0; k < reps && st == LT_OK; k++) {
        meta.global_step = 100;
        double t0 = lt_now_s();
        st = lt_checkpoint_save(argv[1], m, &opt, &meta, "{}", 1, path, sizeof path, &err);
        double t1 = lt_now_s();
        lt_ckpt_meta got;
        if (st == LT_OK) st = lt_checkpoint_load(path, m, &back, 0, 0, &got, &err);
        double t2 = lt_now_s();
        if (t1 - t0 < w) w = t1 - t0;
        if (t2 - t1 < rd) rd = t2 - t1;
    }
    if (st != LT_OK || memcmp(opt.v, back.v, opt.n * sizeof(float)) != 0) {
        fprintf(stderr, "bench_checkpoint: %s\n", st != LT_OK ? err.msg : "moments did not round-trip");
        return 1;
    }
    uint64_t size = 0;
    lt_file_size(path, &size, &err);
    const double raw = 3.0 * (double)opt.n * 4.0;
    printf("{\"impl\":\"bench_checkpoint\",\"lora_params\":%zu,\"raw_bytes\":%.0f,\"file_bytes\":%llu,"
           "\"overhead\":%.5f,\"write_s\":%.3f,\"read_verify_s\":%.3f,\"write_mib_s\":%.0f,"
           "\"read_mib_s\":%.0f}\n",
           opt.n, raw, (unsigned long long)size, (double)size / raw - 1.0, w, rd, raw / w / 1048576.0,
           raw / rd / 1048576.0);
    lt_adamw_free(&opt);
    lt_adamw_free(&back);
    lt_model_free(m);
    return 0;
}
