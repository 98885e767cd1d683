/* Adapters on disk: save and load reproduce the parameters bit for bit and
 * the logits exactly; the file holds Hugging Face RoPE row order for q_proj
 * and k_proj B; PEFT's config fields are written and validated.
 * argv: MODEL SCRATCH_DIR */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/model/adapter.h"
#include "io/model/llama2c.h"
#include "io/model/safetensors.h"
#include "model/cpu/cpu.h"
#include "tests/lib/check.h"

static const char *g_model, *g_dir;

static lt_model *load(void) {
    lt_error err;
    lt_model *m = NULL;
    if (lt_llama2c_load(g_model, lt_ops_cpu(1), &m, &err) != LT_OK) fprintf(stderr, "%s\n", err.msg);
    return m;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL DIR\n", argv[0]);
        return 2;
    }
    g_model = argv[1];
    g_dir = argv[2];
    lt_error err;
    lt_model *a = load(), *b = load();
    CHECK(a && b, "cannot load %s", g_model);
    if (!a || !b) return check_exit_code();
    lt_lora_config lc = {.r = 4, .alpha = 12, .dropout = 0.05f, .use_rslora = 1,
                         .targets = LT_MOD_MASK_ALL & ~(1u << LT_MOD_UP)};
    CHECK_OK(lt_model_add_lora(a, &lc, 5, &err), &err);
    const lt_param_table *t = lt_model_lora_table(a);
    float *p = lt_model_lora_params(a);
    lt_rng rng;
    lt_rng_seed(&rng, 1, 2);
    for (size_t i = 0; i < t->numel; i++) p[i] = 0.1f * (2 * lt_rng_next_uniform(&rng) - 1);

    char dir[1200];
    snprintf(dir, sizeof dir, "%s/adapter", g_dir);
    CHECK_OK(lt_adapter_save(a, dir, "stories260K", &err), &err);
    CHECK_OK(lt_adapter_load(b, dir, &err), &err);
    const lt_lora_config *lb = lt_model_lora_config(b);
    CHECK(lb && lb->r == 4 && lb->alpha == 12.0f && lb->use_rslora && lb->targets == lc.targets &&
              lb->dropout == 0.05f,
          "the loaded config differs from the saved one");
    CHECK(lt_model_lora_table(b)->numel == t->numel &&
              memcmp(lt_model_lora_params(b), p, t->numel * 4) == 0,
          "loaded adapter parameters differ from the saved ones");
    enum { B = 1, T = 24 };
    int32_t tok[B * T];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)(i * 37 % 512);
    float *la = malloc(B * T * 512 * 4), *lb_ = malloc(B * T * 512 * 4);
    CHECK_OK(lt_model_logits(a, tok, B, T, 0, la, &err), &err);
    CHECK_OK(lt_model_logits(b, tok, B, T, 0, lb_, &err), &err);
    CHECK(memcmp(la, lb_, B * T * 512 * 4) == 0, "logits with the loaded adapter differ");

    /* In the file, q_proj B rows are in Hugging Face's rotate-half order. */
    char path[1300];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    lt_safetensors *st = NULL;
    CHECK_OK(lt_st_open(path, &st, &err), &err);
    const lt_tensor_desc *qb = lt_table_find(t, "model.layers.2.self_attn.q_proj.lora_B.weight");
    const lt_tensor_desc *vb = lt_table_find(t, "model.layers.2.self_attn.v_proj.lora_B.weight");
    const lt_st_tensor *fq = lt_st_find(st, "base_model.model.model.layers.2.self_attn.q_proj.lora_B.weight");
    const lt_st_tensor *fv = lt_st_find(st, "base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight");
    CHECK(qb && vb && fq && fv, "PEFT tensor names missing from the file");
    CHECK(!lt_st_find(st, "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight"),
          "an untargeted module was saved");
    CHECK(lt_st_count(st) == t->count, "%d tensors in the file, %d adapters", lt_st_count(st), t->count);
    if (qb && fq && vb && fv) {
        const int hd = 8, half = 4, r = 4;
        float *q = malloc(fq->numel * 4), *v = malloc(fv->numel * 4);
        CHECK_OK(lt_st_read_f32(st, fq, q, fq->numel, &err), &err);
        CHECK_OK(lt_st_read_f32(st, fv, v, fv->numel, &err), &err);
        int perm_ok = 1;
        for (int h = 0; h < 8; h++)
            for (int i = 0; i < half; i++)
                for (int c = 0; c < 2; c++)
                    for (int k = 0; k < r; k++)
                        perm_ok &= q[(h * hd + c * half + i) * r + k] == p[qb->offset + (h * hd + 2 * i + c) * r + k];
        CHECK(perm_ok, "q_proj lora_B rows are not in rotate-half order in the file");
        CHECK(memcmp(v, p + vb->offset, fv->numel * 4) == 0, "v_proj lora_B must be stored unpermuted");
        free(q);
        free(v);
    }
    lt_st_close(st);

    /* adapter_config.json problems are reported, naming the file */
    char cfg[1300];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"peft_type\":\"PREFIX_TUNING\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"]}", "peft_type"},
        {"{\"peft_type\":\"LORA\",\"r\":0,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"]}", "r must be"},
        {"{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"wq\"]}", "did you mean"},
        {"{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"],\"bias\":\"all\"}", "bias"},
        {"{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\"],\"rank_pattern\":{\"q\":2}}",
         "rank_pattern"},
        {"{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8}", "target_modules"},
        {"not json", "adapter_config.json:1:1: \"not\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(cfg, bad[i].json);
        lt_lora_config x;
        lt_status s = lt_adapter_read_config(dir, &x, &err);
        CHECK(s != LT_OK && strstr(err.msg, "adapter_config.json") && strstr(err.msg, bad[i].want),
              "case %zu: %s", i, s == LT_OK ? "accepted" : err.msg);
    }
    /* a config that disagrees with the weights: r = 2 against r = 4 tensors */
    write_text(cfg, "{\"peft_type\":\"LORA\",\"r\":2,\"lora_alpha\":8,\"target_modules\":[\"q_proj\",\"k_proj\","
                    "\"v_proj\",\"o_proj\",\"gate_proj\",\"down_proj\"]}");
    lt_model *c = load();
    lt_status s = lt_adapter_load(c, dir, &err);
    CHECK(s == LT_ERR_FORMAT && strstr(err.msg, "shape"), "rank mismatch: %s", s == LT_OK ? "accepted" : err.msg);
    lt_model_free(c);
    write_text(cfg, "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8,\"target_modules\":\"all-linear\"}");
    c = load();
    s = lt_adapter_load(c, dir, &err);
    CHECK(s == LT_ERR_FORMAT && strstr(err.msg, "missing tensor") && strstr(err.msg, "up_proj"),
          "missing tensor: %s", s == LT_OK ? "accepted" : err.msg);
    lt_model_free(c);
    free(la);
    free(lb_);
    lt_model_free(a);
    lt_model_free(b);
    return check_exit_code();
}
