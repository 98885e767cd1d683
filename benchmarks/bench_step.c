/* Forward + backward throughput of a LoRA training step on the CPU backend
 * (opened as the commands open theirs, by name; the weights and LoRA
 * parameters are written through host pointers, so no other backend).
 *
 *   bench_step --shape stories15M|stories260K [--model FILE] [--batch 8]
 *              [--seq T] [--threads 1] [--steps 10] [--warmup 2] [--profile]
 *              [--quant nf4|nf4dq|fp4|int8] [--full]
 *
 * stories15M is a randomly initialised model of that shape; stories260K
 * loads the bundled pretrained model when --model is given (random
 * otherwise). LoRA r=8, alpha=16 on q,k,v,o with non-zero B so every
 * gradient is computed; --quant stores the base linears quantized (QLoRA),
 * dequantized layer by layer as training does. One step = forward, loss, backward into the LoRA
 * gradients (the AdamW update over ~100k LoRA parameters is noise next to
 * it). Prints one JSON line; with --profile, a per-op time breakdown on
 * stderr taken through a timing wrapper around the ops table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "io/model/llama2c.h"
#include "model/backend.h"
#include "model/llama.h"
#include "core/clock.h"
#include "core/rng.h"
#include "io/model/llama2c.h"
#include "model/llama.h"

/* ------------------------------------------------------- profiling ops */

enum { P_GEMM, P_GEMM_CLS, P_GEMM_LORA, P_ATTN_F, P_ATTN_B, P_NORM, P_ROPE, P_SWIGLU, P_CE, P_DEQUANT, P_OTHER, P_COUNT };
static const char *k_pnames[P_COUNT] = {"gemm (base)", "gemm (classifier)", "gemm (lora)", "attention_fwd",
                                        "attention_bwd", "rmsnorm", "rope", "swiglu", "cross_entropy",
                                        "dequantize", "other"};
static double g_ptime[P_COUNT], g_pflops[P_COUNT];
static double g_gemm_flops;
static int g_rank, g_vocab;
static uintptr_t g_cls_lo, g_cls_hi; /* the classifier weight's bytes: GEMMs reading it are its */
static const lt_ops *g_base;

#define TIMED(cat, call)                \
    do {                                \
        double t0_ = lt_now_s();           \
        call;                           \
        g_ptime[cat] += lt_now_s() - t0_;  \
    } while (0)

static void p_gemm(const lt_ops *o, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    (void)o;
    const uintptr_t b = (uintptr_t)B;
    const int cls = (b >= g_cls_lo && b < g_cls_hi) || M == g_vocab || N == g_vocab || K == g_vocab;
    int cat = (M == g_rank || N == g_rank || K == g_rank) ? P_GEMM_LORA : cls ? P_GEMM_CLS : P_GEMM;
    g_gemm_flops += 2.0 * M * N * K;
    g_pflops[cat] += 2.0 * M * N * K;
    TIMED(cat, g_base->gemm(g_base, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}
static void p_attn_f(const lt_ops *o, float *out, float *lse, const float *qkv, int B, int T,
                     int nh, int nkv, int hd) {
    (void)o;
    TIMED(P_ATTN_F, g_base->attention_fwd(g_base, out, lse, qkv, B, T, nh, nkv, hd));
}
static void p_attn_b(const lt_ops *o, float *dqkv, const float *dout, const float *out,
                     const float *lse, const float *qkv, int B, int T, int nh, int nkv, int hd) {
    (void)o;
    TIMED(P_ATTN_B, g_base->attention_bwd(g_base, dqkv, dout, out, lse, qkv, B, T, nh, nkv, hd));
}
static void p_norm_f(const lt_ops *o, float *out, float *rstd, const float *x, const float *w, int n,
                     int dim, float eps) {
    (void)o;
    TIMED(P_NORM, g_base->rmsnorm_fwd(g_base, out, rstd, x, w, n, dim, eps));
}
static void p_norm_b(const lt_ops *o, float *dx, float *dw, const float *dout, const float *x,
                     const float *w, const float *rstd, int n, int dim) {
    (void)o;
    TIMED(P_NORM, g_base->rmsnorm_bwd(g_base, dx, dw, dout, x, w, rstd, n, dim));
}
static void p_rope(const lt_ops *o, float *x, int stride, int B, int T, int nh, int hd,
                   const float *c, const float *s, int layout, int inverse) {
    (void)o;
    TIMED(P_ROPE, g_base->rope(g_base, x, stride, B, T, nh, hd, c, s, layout, inverse));
}
static void p_swiglu_f(const lt_ops *o, float *h, const float *gu, int n, int hidden) {
    (void)o;
    TIMED(P_SWIGLU, g_base->swiglu_fwd(g_base, h, gu, n, hidden));
}
static void p_swiglu_b(const lt_ops *o, float *dgu, const float *dh, const float *gu, int n, int hidden) {
    (void)o;
    TIMED(P_SWIGLU, g_base->swiglu_bwd(g_base, dgu, dh, gu, n, hidden));
}
static void p_ce(const lt_ops *o, float *logits, float *losses, const int32_t *t, int n, int V,
                 float scale, int grad) {
    (void)o;
    TIMED(P_CE, g_base->cross_entropy(g_base, logits, losses, t, n, V, scale, grad));
}
static void p_ce_block(const lt_ops *o, float *blk, int ld, int n, int cols, int col0,
                       const int32_t *t, float *st, float *dx, int dim, int grad) {
    (void)o;
    TIMED(P_CE, g_base->ce_block(g_base, blk, ld, n, cols, col0, t, st, dx, dim, grad));
}
static void p_ce_finish(const lt_ops *o, float *losses, const float *st, const int32_t *t, int n,
                        float scale, float *dx, int dim, const float *cls) {
    (void)o;
    TIMED(P_CE, g_base->ce_finish(g_base, losses, st, t, n, scale, dx, dim, cls));
}
static void p_copy(const lt_ops *o, void *dst, const void *src, size_t bytes) {
    (void)o;
    TIMED(P_OTHER, g_base->copy(g_base, dst, src, bytes));
}
static void p_embed(const lt_ops *o, float *out, const int32_t *tok, const float *tab, int n, int dim) {
    (void)o;
    TIMED(P_OTHER, g_base->embedding_fwd(g_base, out, tok, tab, n, dim));
}

static void p_dequant(const lt_ops *o, float *out, const uint8_t *blob, const lt_qtensor *t) {
    (void)o;
    TIMED(P_DEQUANT, g_base->dequantize(g_base, out, blob, t));
}

static lt_ops make_profiling_ops(const lt_ops *base) {
    g_base = base;
    lt_ops p = *base;
    p.name = "cpu+profile";
    p.gemm = p_gemm;
    p.attention_fwd = p_attn_f;
    p.attention_bwd = p_attn_b;
    p.rmsnorm_fwd = p_norm_f;
    p.rmsnorm_bwd = p_norm_b;
    p.rope = p_rope;
    p.swiglu_fwd = p_swiglu_f;
    p.swiglu_bwd = p_swiglu_b;
    p.cross_entropy = p_ce;
    p.ce_block = p_ce_block;
    p.ce_finish = p_ce_finish;
    p.copy = p_copy;
    p.embedding_fwd = p_embed;
    p.dequantize = p_dequant;
    return p;
}

/* ------------------------------------------------------------- FLOPs */

/* Floating-point operations of one step as this implementation performs
 * them (multiply-add = 2): forward linears, attention over the causal
 * half, classifier, LoRA; backward input gradients of every linear except
 * the first layer's q/k/v (not needed while the embedding is frozen),
 * attention backward (twice the forward), LoRA dB, dA, dx. */
static double step_flops(const lt_model_config *c, int B, int T, int r, unsigned targets) {
    const double n = (double)B * T, C = c->dim, H = c->hidden_dim, KV = lt_kv_dim(c);
    const double L = c->n_layers, V = c->vocab_size, nh = c->n_heads, hd = lt_head_dim(c);
    double lin = 2 * n * (C * C + 2 * KV * C + C * C + 3 * H * C);
    double attn = 4 * (double)B * nh * hd * (double)T * (T + 1) / 2;
    double cls = 2 * n * V * C;
    double lora_f = 0;
    for (int m = 0; m < LT_MOD_COUNT; m++) {
        if (!(targets & (1u << m))) continue;
        int out, in;
        lt_module_shape(c, (lt_module)m, &out, &in);
        lora_f += 2 * n * r * (in + out);
    }
    double fwd = L * (lin + attn + lora_f) + cls;
    double qkv_dx = 2 * n * (C * C + 2 * KV * C);
    double bwd = L * lin - qkv_dx + L * 2 * attn + cls + L * 2 * lora_f;
    return fwd + bwd;
}

static double gemm_peak(const lt_ops *o) {
    const int n = 1024;
    float *a = lt_alloc(LT_MEM_WORKSPACE, (size_t)n * n * 4), *b = lt_alloc(LT_MEM_WORKSPACE, (size_t)n * n * 4);
    float *c = lt_alloc(LT_MEM_WORKSPACE, (size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)(i % 13) * 0.01f;
    o->gemm(o, 0, 1, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = lt_now_s();
        int it = 0;
        while (lt_now_s() - t0 < 0.3) {
            o->gemm(o, 0, 1, n, n, n, 1, a, n, b, n, 0, c, n);
            it++;
        }
        double g = 2.0 * n * n * n * it / (lt_now_s() - t0) / 1e9;
        best = g > best ? g : best;
    }
    lt_free(a), lt_free(b), lt_free(c);
    return best;
}

/* One tensor: Uniform(-1/sqrt(cols), 1/sqrt(cols)), or 1 for a norm (one
 * row), handed over as a loader does (so a quantized base is quantized). */
static lt_status init_tensor(lt_model *m, lt_rng *rng, float *w, const char *name, int rows, int cols,
                             lt_error *err) {
    const float s = rows == 1 ? 0.0f : 1.0f / sqrtf((float)cols);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        w[i] = (rows == 1 ? 1.0f : 0.0f) + s * (2 * lt_rng_next_uniform(rng) - 1);
    return lt_model_set_base_tensor(m, name, w, (size_t)rows * cols, err);
}

static lt_status random_init(lt_model *m, lt_rng *rng, lt_error *err) {
    const lt_model_config *c = lt_model_get_config(m);
    const int C = c->dim;
    size_t cap = (size_t)c->vocab_size * C;
    if ((size_t)c->hidden_dim * C > cap) cap = (size_t)c->hidden_dim * C;
    float *w = malloc(cap * sizeof *w);
    if (!w) return lt_fail(err, LT_ERR_NOMEM, "bench_step: out of memory");
    char name[128];
    lt_status st = init_tensor(m, rng, w, "model.embed_tokens.weight", c->vocab_size, C, err);
    for (int l = 0; l < c->n_layers && st == LT_OK; l++) {
        for (int k = 0; k < LT_MOD_COUNT && st == LT_OK; k++) {
            int rows, cols;
            lt_module_shape(c, (lt_module)k, &rows, &cols);
            snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", l,
                     lt_module_block((lt_module)k), lt_module_name((lt_module)k));
            st = init_tensor(m, rng, w, name, rows, cols, err);
        }
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        if (st == LT_OK) st = init_tensor(m, rng, w, name, 1, C, err);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        if (st == LT_OK) st = init_tensor(m, rng, w, name, 1, C, err);
    }
    if (st == LT_OK) st = init_tensor(m, rng, w, "model.norm.weight", 1, C, err);
    free(w);
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const char *shape = "stories15M", *model_path = NULL, *quant = "none";
    int batch = 8, seq = 0, threads = 1, steps = 10, warmup = 2, profile = 0, full = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--profile")) { profile = 1; continue; }
        if (!strcmp(a, "--full")) { full = 1; continue; }
        if (!v) { fprintf(stderr, "bench_step: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--shape")) shape = v;
        else if (!strcmp(a, "--model")) model_path = v;
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--seq")) seq = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--quant")) quant = v;
        else { fprintf(stderr, "bench_step: unknown option %s\n", a); return 2; }
        i++;
    }
    if (batch < 1 || steps < 1 || warmup < 0 || threads < 1) {
        fprintf(stderr, "bench_step: batch, steps and threads must be positive\n");
        return 2;
    }
    lt_model_config cfg = {.norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = LT_ROPE_INTERLEAVED,
                           .shared_classifier = 1};
    if (!strcmp(shape, "stories15M")) {
        cfg.dim = 288, cfg.hidden_dim = 768, cfg.n_layers = 6, cfg.n_heads = 6, cfg.n_kv_heads = 6;
        cfg.vocab_size = 32000, cfg.seq_len = 256;
    } else if (!strcmp(shape, "stories260K")) {
        cfg.dim = 64, cfg.hidden_dim = 172, cfg.n_layers = 5, cfg.n_heads = 8, cfg.n_kv_heads = 4;
        cfg.vocab_size = 512, cfg.seq_len = 512;
    } else {
        fprintf(stderr, "bench_step: unknown shape %s (stories15M or stories260K)\n", shape);
        return 2;
    }
    lt_quant_config qc = lt_quant_defaults(LT_QUANT_NONE);
    if (!strcmp(quant, "nf4") || !strcmp(quant, "nf4dq")) {
        qc = lt_quant_defaults(LT_QUANT_NF4);
        qc.double_quant = !strcmp(quant, "nf4dq");
    } else if (!strcmp(quant, "fp4")) {
        qc = lt_quant_defaults(LT_QUANT_FP4);
    } else if (!strcmp(quant, "int8")) {
        qc = lt_quant_defaults(LT_QUANT_INT8);
    } else if (strcmp(quant, "none")) {
        fprintf(stderr, "bench_step: --quant %s: expected none, nf4, nf4dq, fp4 or int8\n", quant);
        return 2;
    }
    lt_error err;
    const lt_ops *base = NULL;
    if (lt_backend_open("cpu", threads, &base, &err) != LT_OK) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    lt_ops prof = make_profiling_ops(base);
    const lt_ops *ops = profile ? &prof : base;
    lt_model *m = NULL;
    lt_rng rng;
    lt_rng_seed(&rng, 1234, 0);
    if (model_path) {
        if (lt_llama2c_load_quantized(model_path, &qc, ops, &m, &err) != LT_OK) {
            fprintf(stderr, "bench_step: %s\n", err.msg);
            return 1;
        }
        cfg = *lt_model_get_config(m);
    } else {
        if (lt_model_create_quantized(&cfg, &qc, ops, &m, &err) != LT_OK ||
            random_init(m, &rng, &err) != LT_OK) {
            fprintf(stderr, "bench_step: %s\n", err.msg);
            return 1;
        }
    }
    if (seq <= 0) seq = cfg.seq_len;
    g_rank = 8;
    g_vocab = cfg.vocab_size;
    const lt_tensor_desc *cls = lt_table_find(lt_model_base_table(m), "lm_head.weight");
    if (!cls) cls = lt_table_find(lt_model_base_table(m), "model.embed_tokens.weight");
    if (cls) {
        g_cls_lo = (uintptr_t)(lt_model_base(m) + cls->offset);
        g_cls_hi = g_cls_lo + (size_t)cfg.vocab_size * cfg.dim * sizeof(float);
    }
    lt_lora_config lc = {.r = 8, .alpha = 16, .dropout = 0, .use_rslora = 0,
                         .targets = (1u << LT_MOD_Q) | (1u << LT_MOD_K) | (1u << LT_MOD_V) | (1u << LT_MOD_O)};
    if ((full ? lt_model_enable_full_training(m, &err) : lt_model_add_lora(m, &lc, 1, &err)) != LT_OK ||
        lt_model_reserve(m, batch, seq, &err) != LT_OK) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    const lt_param_table *lt = lt_model_lora_table(m);
    float *lp = lt_model_lora_params(m);
    for (int i = 0; !full && i < lt->count; i++)
        if (strstr(lt->t[i].name, "lora_B"))
            for (size_t k = 0; k < lt_tensor_numel(&lt->t[i]); k++)
                lp[lt->t[i].offset + k] = 0.01f * (2 * lt_rng_next_uniform(&rng) - 1);
    const int n = batch * seq;
    int32_t *in = malloc((size_t)n * 4), *tg = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) {
        in[i] = (int32_t)(lt_rng_next_uniform(&rng) * cfg.vocab_size);
        tg[i] = (int32_t)(lt_rng_next_uniform(&rng) * cfg.vocab_size);
    }
    double *times = malloc((size_t)steps * sizeof(double)), loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            memset(g_ptime, 0, sizeof g_ptime);
            memset(g_pflops, 0, sizeof g_pflops);
            g_gemm_flops = 0;
        }
        double sum;
        int64_t cnt;
        double t0 = lt_now_s();
        lt_model_zero_grads(m);
        if (lt_model_forward_backward(m, in, tg, batch, seq, 1.0f / (float)n, &sum, &cnt, &err) != LT_OK) {
            fprintf(stderr, "bench_step: %s\n", err.msg);
            return 1;
        }
        if (s >= warmup) times[s - warmup] = lt_now_s() - t0;
        loss = sum / (double)cnt;
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    double med = times[steps / 2];
    double flops = step_flops(&cfg, batch, seq, lc.r, lc.targets);
    if (full) flops = g_gemm_flops > 0 ? g_gemm_flops / steps : 0; /* measured with --profile */
    double peak = gemm_peak(base);
    double gflops = flops / med / 1e9;
    printf("{\"impl\":\"loratrain\",\"mode\":\"%s\",\"quant\":\"%s\",\"shape\":\"%s\",\"threads\":%d,\"batch\":%d,\"seq\":%d,"
           "\"tokens_per_s\":%.1f,\"step_ms_median\":%.2f,\"step_ms_min\":%.2f,\"gflops\":%.1f,"
           "\"gemm_peak_gflops\":%.1f,\"peak_fraction\":%.3f,\"blas_core\":\"%s\",\"loss\":%.4f}\n",
           full ? "full" : "lora", quant, shape, threads, batch, seq, n / med, med * 1e3, times[0] * 1e3, gflops, peak,
           gflops / peak, lt_backend_gemm_kernels(base), loss);
    if (profile) {
        double total = 0;
        for (int i = 0; i < P_COUNT; i++) total += g_ptime[i];
        fprintf(stderr, "per-step time by op (%d steps), of %.2f ms measured:\n", steps, med * 1e3);
        for (int i = 0; i < P_COUNT; i++) {
            fprintf(stderr, "  %-18s %8.2f ms  %5.1f%%", k_pnames[i], g_ptime[i] / steps * 1e3,
                    100 * g_ptime[i] / total);
            if (g_pflops[i] > 0)
                fprintf(stderr, "  %6.1f GFLOP/s (%.2f GFLOP)", g_pflops[i] / g_ptime[i] / 1e9,
                        g_pflops[i] / steps / 1e9);
            fprintf(stderr, "\n");
        }
        fprintf(stderr, "  all gemms: %.2f GFLOP per step\n", g_gemm_flops / steps / 1e9);
    }
    free(in), free(tg), free(times);
    lt_model_free(m);
    return 0;
}
