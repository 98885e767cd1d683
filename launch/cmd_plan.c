/* loratrain plan: per-rank memory of a LoRA, QLoRA or full fine-tuning run,
 * by the tracked allocator's categories, computed from the same sizes the
 * model and the trainer allocate (lt_plan_base_memory, lt_quant_layer_layout,
 * lt_model_activation_bytes), for the shape of a llama2.c checkpoint, a
 * Hugging Face model directory or a preset of a published model; on the CPU
 * (host memory) or per GPU (the device space, where the CUDA backend
 * allocates), in fp32 or with the bf16 compute the GPU path will take. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/model/any_format.h"
#include "launch/cli.h"
#include "launch/commands.h"
#include "model/lora.h"
#include "model/quant.h"

/* Sequences per rank when --batch is not given. */
#define DEFAULT_BATCH 8

/* The fixed device memory of a GPU rank outside the tracked allocator.
 * cuBLAS's documentation (cublasSetWorkspace(): "the recommended size of
 * user-provided workspace ... based on the cuBLAS default workspace pool
 * size which is GPU architecture dependent") gives 32 MiB for Hopper (sm_90)
 * and Blackwell, 4 MiB for the others; the backend uses one handle on one
 * stream, so one pool, and we plan the larger. For the context itself
 * NVIDIA documents no figure (the Lazy Loading section of the CUDA
 * Programming Guide says only that loading modules costs device memory,
 * which lazy loading, the default on Linux since CUDA 12.2, reduces): 512
 * MiB is our stated allowance, to be replaced by what cudaMemGetInfo
 * measures on a GPU. */
#define CUDA_CONTEXT_MIB 512
#define CUBLAS_WORKSPACE_MIB 32

typedef struct {
    const char *name;
    int dim, hidden, layers, heads, kv_heads, vocab, seq;
} preset;

/* Shapes from the models' published config.json files. */
static const preset k_presets[] = {
    {"llama-2-7b", 4096, 11008, 32, 32, 32, 32000, 4096},
    {"llama-2-13b", 5120, 13824, 40, 40, 40, 32000, 4096},
    {"llama-2-70b", 8192, 28672, 80, 64, 8, 32000, 4096},
    {"llama-3-8b", 4096, 14336, 32, 32, 8, 128256, 8192},
    {"mistral-7b", 4096, 14336, 32, 32, 8, 32000, 32768},
};

#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

/* "llama-2-7b, llama-2-13b, ...": for the help and for a name that is
 * neither a preset nor a path. */
static void preset_names(char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = 0;
    for (size_t i = 0; i < N_PRESETS && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", k_presets[i].name);
}

void lt_help_plan(FILE *f) {
    char names[256];
    preset_names(names, sizeof names);
    fprintf(f,
            "usage: loratrain plan --model PRESET|FILE|DIR --mode lora|qlora|full [--ranks N]\n"
            "                      [--shard_base] [--zero1] [--gradient_checkpointing]\n"
            "                      [--seq S] [--batch B] [--r R] [--target_modules LIST]\n"
            "                      [--lora_dropout P] [--device cpu|cuda]\n"
            "                      [--compute_dtype fp32|bf16] [--json]\n"
            "\n"
            "Predicts the per-rank memory of `loratrain train` by the categories its memory\n"
            "report uses, from the sizes the model allocates. The first line of the table\n"
            "states the batch and sequence length assumed. Data buffers (category \"other\")\n"
            "depend on the corpus and are not predicted.\n"
            "\n"
            "  --model PRESET|FILE|DIR  the model's shape: a preset (published shapes,\n"
            "                        untied classifier):\n"
            "                          %s\n"
            "                        or a llama2.c checkpoint file (its header), or a\n"
            "                        Hugging Face model directory (its config.json)\n"
            "  --mode lora           LoRA adapters on an fp32 base [default]\n"
            "  --mode qlora          LoRA on an NF4 base (double quantization, blocks of 64)\n"
            "  --mode full           full fine-tuning (finetuning_type full): fp32 weights,\n"
            "                        gradients and AdamW moments for every parameter\n"
            "  --ranks N             data-parallel ranks [default: 1]\n"
            "  --shard_base          qlora: each rank stores 1/N of the quantized base\n"
            "  --zero1               full: each rank keeps the AdamW moments (and the\n"
            "                        reduce-scattered gradient) of its 1/N of the parameters\n"
            "  --gradient_checkpointing  keep only each layer's input for backward\n"
            "  --seq S               tokens per sequence [default: the model's seq_len]\n"
            "  --batch B             sequences per rank and micro-batch [default: %d]\n"
            "  --r R, --target_modules LIST, --lora_dropout P  the adapters (lora, qlora)\n"
            "                        [default: 8, q_proj,v_proj, 0]\n"
            "  --device cpu          host memory of a rank on the CPU backend [default]\n"
            "  --device cuda         device memory per GPU (one GPU per rank): the same\n"
            "                        categories in the device space, where the CUDA backend\n"
            "                        allocates them (the loading staging stays on the host),\n"
            "                        the backend's scratch in workspace, the shard gather's\n"
            "                        two layers in communication (NCCL gathers on the GPU),\n"
            "                        plus a fixed\n"
            "                        overhead outside the tracked allocator:\n"
            "                          cuda_context      %4d MiB  (our allowance: NVIDIA\n"
            "                            documents no size for a context, only that loaded\n"
            "                            modules take device memory: CUDA Programming Guide,\n"
            "                            Lazy Loading)\n"
            "                          cublas_workspace  %4d MiB  (cuBLAS's default workspace\n"
            "                            pool on Hopper, sm_90; 4 MiB on other architectures:\n"
            "                            cuBLAS documentation, cublasSetWorkspace())\n"
            "  --compute_dtype fp32  fp32 weights and activations in the matmuls [default]\n"
            "  --compute_dtype bf16  a plan for the compute dtype the GPU path will take\n"
            "                        (with --device cuda; training with bf16 is not\n"
            "                        implemented yet): as QLoRA's bnb_4bit_compute_dtype\n"
            "                        bfloat16, each layer's weights dequantized (qlora) or\n"
            "                        converted (lora, full) into a bf16 workspace, activations\n"
            "                        and saved tensors in 2 bytes (token ids stay int32);\n"
            "                        fp32 base storage, LoRA master weights, gradients and\n"
            "                        AdamW moments; fp32 accumulation\n"
            "  --json                one JSON object instead of the table\n",
            names, DEFAULT_BATCH, CUDA_CONTEXT_MIB, CUBLAS_WORKSPACE_MIB);
}

static const char *k_cats[] = {"base_weights", "quantized_base", "lora_params", "gradients",
                               "optimizer_state", "activations", "communication", "workspace"};
#define NCATS (sizeof k_cats / sizeof k_cats[0])
enum { C_BASE, C_QBASE, C_LORA, C_GRAD, C_OPT, C_ACT, C_COMM, C_WS };

/* The CUDA backend's scratch (lt_cuda_scratch, model/cuda/backend.cu): one
 * block that grows to half again the request that does not fit, so at most
 * 1.5 x the largest request of a step: attention backward's row dots
 * (B T heads floats, model/cuda/attention.cu), the gradient's sum of
 * squares (one double a block of 256, at most 1024 blocks, plus the result:
 * model/cuda/optim.cu), and in full fine-tuning the embedding gradient's
 * chains (2 ints a token) and the column sums of the RMSNorm (and bias)
 * weight gradients (a row of partial sums per 64 tokens:
 * model/cuda/elementwise.cu). */
static uint64_t cuda_scratch_bytes(const lt_model_config *c, int full, uint64_t trainable,
                                   uint64_t n) {
    uint64_t req = 4 * n * (uint64_t)c->n_heads;
    uint64_t blocks = (trainable + 255) / 256;
    blocks = blocks < 1024 ? blocks : 1024;
    if (8 * (blocks + 1) > req) req = 8 * (blocks + 1);
    if (full) {
        uint64_t rows = 64;
        if ((n + rows - 1) / rows > 65535) rows = (n + 65534) / 65535;
        const uint64_t chunks = (n + rows - 1) / rows;
        const uint64_t qkv = (uint64_t)c->dim + 2u * (uint64_t)lt_kv_dim(c);
        const uint64_t cols = c->qkv_bias && qkv > (uint64_t)c->dim ? qkv : (uint64_t)c->dim;
        if (8 * n > req) req = 8 * n;
        if (4 * chunks * cols > req) req = 4 * chunks * cols;
    }
    return req + req / 2;
}

lt_status lt_cmd_plan(int argc, char **argv, lt_error *err) {
    const char *model = NULL, *mode = "lora", *targets = "q_proj,v_proj", *device = "cpu";
    const char *dtype = "fp32";
    int ranks = 1, shard = 0, zero1 = 0, ckpt = 0, seq = 0, batch = 0, r = 8, json = 0;
    int lora_opts = 0; /* an adapter option was given */
    float dropout = 0;
    lt_cli cli;
    lt_status st = LT_OK;
    lt_cli_init(&cli, argc, argv);
    while (lt_cli_next(&cli, err, &st)) {
        const char *k = cli.key;
        if (!strcmp(k, "shard_base")) st = lt_cli_bool(&cli, &shard, err);
        else if (!strcmp(k, "zero1")) st = lt_cli_bool(&cli, &zero1, err);
        else if (!strcmp(k, "gradient_checkpointing")) st = lt_cli_bool(&cli, &ckpt, err);
        else if (!strcmp(k, "json")) st = lt_cli_bool(&cli, &json, err);
        else if ((st = lt_cli_need_value(&cli, err)) != LT_OK) return st;
        else if (!strcmp(k, "model")) model = cli.value;
        else if (!strcmp(k, "mode")) mode = cli.value;
        else if (!strcmp(k, "device")) device = cli.value;
        else if (!strcmp(k, "compute_dtype")) dtype = cli.value;
        else if (!strcmp(k, "target_modules")) targets = cli.value, lora_opts = 1;
        else if (!strcmp(k, "ranks")) st = lt_cli_int(&cli, 1, 1 << 20, &ranks, err);
        else if (!strcmp(k, "seq")) st = lt_cli_int(&cli, 1, 1 << 24, &seq, err);
        else if (!strcmp(k, "batch")) st = lt_cli_int(&cli, 1, 1 << 20, &batch, err);
        else if (!strcmp(k, "r")) st = lt_cli_int(&cli, 1, 1 << 16, &r, err), lora_opts = 1;
        else if (!strcmp(k, "lora_dropout"))
            st = lt_cli_float(&cli, 0, 0.999999, &dropout, err), lora_opts = 1;
        else return lt_fail(err, LT_ERR_CONFIG, "plan: unknown option --%s (loratrain plan --help)", k);
        if (st != LT_OK) return st;
    }
    if (st != LT_OK) return st;
    if (!model) return lt_fail(err, LT_ERR_CONFIG, "plan: --model PRESET|FILE|DIR is required");
    const int batch_given = batch != 0;
    if (!batch_given) batch = DEFAULT_BATCH;
    const int qlora = !strcmp(mode, "qlora"), full = !strcmp(mode, "full");
    if (!qlora && !full && strcmp(mode, "lora") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --mode %s: expected lora, qlora or full", mode);
    const int cuda = !strcmp(device, "cuda"), bf16 = !strcmp(dtype, "bf16");
    if (!cuda && strcmp(device, "cpu") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --device %s: expected cpu or cuda", device);
    if (!bf16 && strcmp(dtype, "fp32") != 0)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --compute_dtype %s: expected fp32 or bf16 "
                       "(bnb_4bit_compute_dtype float32 or bfloat16)", dtype);
    if (bf16 && !cuda)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --compute_dtype bf16 plans the GPU path's compute "
                       "dtype and needs --device cuda (the CPU backend computes in fp32)");
    if (shard && full)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --shard_base shards a quantized base, and --mode full "
                       "trains an fp32 one: use --zero1 to shard full fine-tuning's optimizer state");
    if (shard && !qlora) return lt_fail(err, LT_ERR_CONFIG, "plan: --shard_base needs --mode qlora");
    if (zero1 && !full)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --zero1 shards full fine-tuning's optimizer state and "
                       "needs --mode full (LoRA's moments are small and replicated)");
    if (full && lora_opts)
        return lt_fail(err, LT_ERR_CONFIG, "plan: --r, --target_modules and --lora_dropout describe "
                       "adapters, and --mode full trains no adapters: drop them or use --mode lora");
    lt_model_config c;
    memset(&c, 0, sizeof c);
    const preset *p = NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(model, k_presets[i].name)) p = &k_presets[i];
    struct stat sb;
    if (!p && stat(model, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
        /* Most often a misspelled preset: name them all. */
        char names[256];
        preset_names(names, sizeof names);
        return lt_fail(err, LT_ERR_CONFIG,
                       "plan: --model %s: no such preset, file or directory; expected a preset (%s), "
                       "a llama2.c checkpoint file or a Hugging Face model directory", model, names);
    }
    if (p) {
        c.dim = p->dim, c.hidden_dim = p->hidden, c.n_layers = p->layers, c.n_heads = p->heads;
        c.n_kv_heads = p->kv_heads, c.vocab_size = p->vocab, c.seq_len = p->seq;
        c.norm_eps = 1e-5f, c.rope_theta = 10000.0f, c.shared_classifier = 0;
    } else if ((st = lt_model_file_read_config(model, &c, err)) != LT_OK) {
        return st;
    }
    const int T = seq ? seq : c.seq_len;
    lt_lora_config lc = {.r = r, .alpha = 2.0f * (float)r, .dropout = dropout, .use_rslora = 0};
    if (!full) {
        if ((st = lt_lora_parse_targets(targets, &lc.targets, err)) != LT_OK) return st;
        if ((st = lt_lora_config_validate(&lc, &c, err)) != LT_OK) return st;
    }

    const uint64_t C = (uint64_t)c.dim, H = (uint64_t)c.hidden_dim, V = (uint64_t)c.vocab_size;
    const uint64_t L = (uint64_t)c.n_layers;
    uint64_t lora = 0;
    for (int mod = 0; mod < LT_MOD_COUNT && !full; mod++) {
        int out, in;
        lt_module_shape(&c, (lt_module)mod, &out, &in);
        if (lc.targets & (1u << mod)) lora += L * (uint64_t)r * (uint64_t)(out + in);
    }
    lt_quant_config four = {.format = LT_QUANT_NF4, .blocksize = 64, .double_quant = 1}, qc;
    if ((st = lt_quant_select(qlora, 0, &four, &qc, err)) != LT_OK) return st;
    const int shards = shard ? ranks : 1;
    lt_base_memory bm;
    if ((st = lt_plan_base_memory(&c, &qc, shards, &bm, err)) != LT_OK) return st;
    const uint64_t P = bm.fp32_params + bm.quant_params; /* every base parameter */
    uint64_t bytes[NCATS] = {0};
    bytes[C_BASE] = bm.fp32_bytes;
    bytes[C_QBASE] = bm.quant_resident_bytes;
    if (shards > 1) bytes[C_COMM] = 2 * (uint64_t)shards * (bm.quant_resident_bytes / L); /* two whole layers */
    uint64_t qmax = 0; /* the largest tensor's quantized bytes: staged while loading */
    if (qlora) {
        lt_qtensor qt[LT_MOD_COUNT];
        uint64_t blob;
        if ((st = lt_quant_layer_layout(&c, &qc, qt, &blob, err)) != LT_OK) return st;
        for (int mod = 0; mod < LT_MOD_COUNT; mod++)
            if (qt[mod].end - qt[mod].begin > qmax) qmax = qt[mod].end - qt[mod].begin;
    }
    /* ZeRO-1: contiguous shards of S elements (a multiple of 16); rank 0's
     * is the largest. With one rank it is the whole model. */
    const int zsharded = full && zero1 && ranks > 1;
    uint64_t shard_len = P;
    if (zsharded) {
        const uint64_t S = (P + (uint64_t)ranks * 16 - 1) / ((uint64_t)ranks * 16) * 16;
        shard_len = S < P ? S : P;
    }
    uint64_t trainable;
    if (full) {
        /* One flat fp32 gradient in the base table's layout (plus, with
         * ZeRO-1, this rank's reduce-scattered shard of it) and AdamW's two
         * moments for the parameters this rank updates. */
        trainable = P;
        bytes[C_GRAD] = 4 * P + (zsharded ? 4 * shard_len : 0);
        bytes[C_OPT] = 8 * shard_len;
    } else {
        trainable = lora;
        bytes[C_LORA] = bytes[C_GRAD] = 4 * lora;
        bytes[C_OPT] = 8 * lora;
    }
    const uint64_t ws = bm.workspace_bytes;
    uint64_t rope;
    lt_model_activation_bytes(&c, full ? NULL : &lc, batch, T, ckpt, &bytes[C_ACT], &rope);
    /* The workspace peaks either while loading (one fp32 tensor slice and,
     * quantized, its blob) or while training (the RoPE tables). */
    const uint64_t slice = 4 * (V * C > H * C ? V * C : H * C);
    const uint64_t load = ws + slice + qmax, train = ws + rope;
    bytes[C_WS] = load > train ? load : train;
    uint64_t overhead[2] = {0, 0}, host_loading = 0; /* cuda: context, cuBLAS workspace */
    if (cuda) {
        /* On a GPU the loading staging stays on the host; the device holds
         * the weights a layer computes with (the dequantization workspace,
         * or with bf16 each layer's weights converted to it), the RoPE
         * tables (fp32 angles either way) and the backend's scratch. */
        const uint64_t n = (uint64_t)batch * (uint64_t)T;
        uint64_t layer_w = 0;
        for (int mod = 0; mod < LT_MOD_COUNT; mod++) {
            int out, in;
            lt_module_shape(&c, (lt_module)mod, &out, &in);
            layer_w += (uint64_t)out * (uint64_t)in;
        }
        const uint64_t wsd = qlora || bf16 ? layer_w * (bf16 ? 2 : 4) : 0;
        host_loading = slice + qmax;
        bytes[C_WS] = wsd + rope + cuda_scratch_bytes(&c, full, zsharded ? shard_len : trainable, n);
        /* bf16: every activation element in 2 bytes but the token ids and
         * targets (int32: 8 bytes a token). */
        if (bf16) bytes[C_ACT] = bytes[C_ACT] / 2 + 4 * n;
        overhead[0] = (uint64_t)CUDA_CONTEXT_MIB << 20;
        overhead[1] = (uint64_t)CUBLAS_WORKSPACE_MIB << 20;
    }
    uint64_t tracked = 0;
    for (size_t i = 0; i < NCATS; i++) tracked += bytes[i];
    const uint64_t total = tracked + overhead[0] + overhead[1];
    /* Bytes per base parameter: of the base as stored on this rank, and of
     * the whole training state (weights, adapters, gradients, moments). */
    const uint64_t base_rank = bytes[C_BASE] + bytes[C_QBASE];
    const uint64_t state = base_rank + bytes[C_LORA] + bytes[C_GRAD] + bytes[C_OPT];
    const double bpp_base = P ? (double)base_rank / (double)P : 0;
    const double bpp_state = P ? (double)state / (double)P : 0;
    const double MiB = 1048576.0;
    /* bf16 is planned, not trained: say so once, on stderr so that --json
     * stays one object on stdout. */
    if (bf16)
        fprintf(stderr, "plan: note: --compute_dtype bf16 is the plan for the GPU path's compute "
                "dtype; training with bf16 compute is not implemented yet\n");
    if (json) {
        printf("{\"model\":\"%s\",\"mode\":\"%s\",\"device\":\"%s\",\"compute_dtype\":\"%s\","
               "\"ranks\":%d,\"shard_base\":%s,\"zero1\":%s,"
               "\"gradient_checkpointing\":%s,\"seq\":%d,\"batch\":%d,\"r\":%d,\"base_params\":%llu,"
               "\"lora_params\":%llu,\"trainable_params\":%llu,\"optimizer_shard_params\":%llu,"
               "\"base_bytes_per_param\":%.6f,\"state_bytes_per_param\":%.6f,\"bytes\":{",
               model, mode, cuda ? "cuda" : "cpu", bf16 ? "bf16" : "fp32", ranks,
               shard ? "true" : "false", zero1 ? "true" : "false",
               ckpt ? "true" : "false", T, batch, full ? 0 : r, (unsigned long long)P,
               (unsigned long long)lora, (unsigned long long)trainable,
               (unsigned long long)(full ? shard_len : lora), bpp_base, bpp_state);
        for (size_t i = 0; i < NCATS; i++)
            printf("%s\"%s\":%llu", i ? "," : "", k_cats[i], (unsigned long long)bytes[i]);
        printf("}");
        if (cuda)
            printf(",\"tracked_total_bytes\":%llu,\"overhead_bytes\":{\"cuda_context\":%llu,"
                   "\"cublas_workspace\":%llu},\"host_loading_bytes\":%llu",
                   (unsigned long long)tracked, (unsigned long long)overhead[0],
                   (unsigned long long)overhead[1], (unsigned long long)host_loading);
        printf(",\"total_bytes\":%llu}\n", (unsigned long long)total);
        return LT_OK;
    }
    /* The batch and sequence length drive the activations, the largest
     * category: the first line says which were assumed. */
    char shape[160];
    snprintf(shape, sizeof shape, "batch %d x %d tokens per rank (%s; %s)", batch, T,
             batch_given ? "--batch as given" : "--batch not given: the default",
             seq ? "--seq as given" : "--seq not given: the model's seq_len");
    const char *where = !cuda ? ""
                        : bf16 ? "; device cuda, per GPU; compute bf16: a plan for the compute dtype "
                                 "the GPU path will take (training with bf16 is not implemented yet)"
                               : "; device cuda, per GPU; compute fp32";
    if (full)
        printf("%s, full fine-tuning%s on %d rank(s), %s%s, %llu parameters%s\n", model,
               zsharded ? " (ZeRO-1)" : zero1 ? " (ZeRO-1: nothing to shard on one rank)" : "",
               ranks, shape, ckpt ? ", gradient checkpointing" : "", (unsigned long long)P, where);
    else
        printf("%s, %s%s on %d rank(s), %s%s, LoRA r %d on %s (%llu parameters)%s\n", model, mode,
               shard ? " (base sharded)" : "", ranks, shape, ckpt ? ", gradient checkpointing" : "",
               r, targets, (unsigned long long)lora, where);
    printf(cuda ? "device memory per GPU (peak of each category):\n"
                : "per-rank memory (peak of each category):\n");
    for (size_t i = 0; i < NCATS; i++)
        if (bytes[i]) printf("  %-16s %12.2f MiB\n", k_cats[i], (double)bytes[i] / MiB);
    if (cuda) {
        printf("  %-16s %12.2f MiB, the fixed overhead outside the tracked allocator (our allowance; "
               "NVIDIA documents no size for a context)\n", "cuda_context", (double)overhead[0] / MiB);
        printf("  %-16s %12.2f MiB (cuBLAS's default workspace pool on sm_90, as its documentation "
               "gives for cublasSetWorkspace)\n", "cublas_workspace", (double)overhead[1] / MiB);
    }
    printf("  %-16s %12.2f MiB (%.2f GiB), plus the data buffers%s\n", "total", (double)total / MiB,
           (double)total / (MiB * 1024.0), cuda ? " (host memory)" : "");
    if (cuda)
        printf("host: %.2f MiB of loading staging (one fp32 tensor%s) and the data buffers stay in "
               "host memory\n", (double)host_loading / MiB, qlora ? " and its quantized blocks" : "");
    if (full) {
        printf("%.1f bytes per parameter for weights, gradients and AdamW moments (excluding "
               "activations)", bpp_state);
        if (zsharded)
            printf(": 4 weights + 4 gradient + 12/%d for this rank's gradient shard and moments", ranks);
        printf("\n");
    } else if (qlora) {
        const double nf4 = bm.quant_params ? (double)bm.quant_bytes / (double)bm.quant_params : 0;
        printf("base: %.3f bytes per parameter for the NF4 linears (absmax blocks of 64, double "
               "quant), %.3f for the whole base with the fp32 embeddings, norms and classifier\n",
               nf4, (double)(bm.fp32_bytes + bm.quant_bytes) / (double)P);
        if (shards > 1)
            printf("      %.3f per parameter stored on each rank (1/%d of the quantized linears)\n",
                   bpp_base, shards);
        printf("%.3f bytes per base parameter for the base, adapters, their gradients and AdamW "
               "moments (excluding activations)\n", bpp_state);
    } else {
        printf("base: %.1f bytes per parameter (fp32); %.3f bytes per base parameter for the base, "
               "adapters, their gradients and AdamW moments (excluding activations)\n",
               bpp_base, bpp_state);
    }
    return LT_OK;
}
