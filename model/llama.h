/* The Llama decoder with LoRA adapters: forward and backward written once,
 * straight-line per layer, against the ops interface (model/ops.h), which
 * a backend implements (model/cpu/; model/cuda/ to come; model/backend.h
 * picks one from the `device` key). The model does not know which.
 *
 * Base weights live in one flat buffer described by a named-offset table
 * (Hugging Face tensor names, layer-major order with q/k/v and gate/up rows
 * adjacent so each pair is one GEMM) -- or, with a quantized base, the
 * seven linears in one blob per layer and the rest in that buffer. LoRA
 * parameters and their gradients are two more flat buffers with their own
 * table, so one all-reduce, one optimizer loop and one checkpoint dataset
 * cover each.
 *
 * One training step on rank r of N (launch/trainer.c drives it):
 *   1. io/data's loader yields this rank's rows of the global micro-batch
 *      (deterministic from seed, epoch and rank; a resumable cursor).
 *   2. Forward, layer by layer. Before layer l runs, the acquire_layer
 *      hook makes its base weights present: with a sharded base, dist's
 *      shard gather all-gathers layer l's quantized blocks (l + 1's gather
 *      already started); the layer is dequantized into one reusable
 *      workspace; the matmuls go through the ops table.
 *   3. The loss: the classifier and cross-entropy fused in vocabulary
 *      blocks, optionally on response tokens only.
 *   4. Backward in reverse layer order. When layer l's LoRA gradients are
 *      final, the grads_ready hook fires and dist/grad_sync starts that
 *      bucket's all-reduce (non-blocking), so communication overlaps the
 *      rest of backward. On a GPU the hook fires when the layer's kernels
 *      are enqueued, not finished: the communicator's stream waits on an
 *      event recorded on the compute stream.
 *   5. The trainer waits for the buckets, clips by the global norm and
 *      steps AdamW (optim/) on the flat LoRA buffers; every rank applies
 *      the same update, so nothing is broadcast.
 *   6. Every save_steps, io/checkpoint writes the state to HDF5, atomically.
 * The model reads no files and knows no communicator: the trainer hands it
 * the two hooks (lt_model_hooks below) and dist/ knows no model. */
#ifndef LT_MODEL_LLAMA_H
#define LT_MODEL_LLAMA_H

#include <stdint.h>

#include "core/status.h"
#include "model/config.h"
#include "model/lora.h"
#include "model/ops.h"
#include "model/params.h"
#include "model/quant.h"

#define LT_IGNORE_INDEX (-100) /* a target that contributes no loss (PyTorch's) */

typedef struct lt_model lt_model;

/* Where one layer's base weights are (device pointers). With a quantized
 * base the linears point into the dequantization workspace. */
typedef struct {
    const float *attn_norm; /* [dim] */
    const float *wqkv;      /* [dim + 2 kv_dim, dim]: q rows, then k, then v */
    const float *bqkv;      /* [dim + 2 kv_dim] q, k, v biases; NULL without */
    const float *wo;        /* [dim, dim] */
    const float *ffn_norm;  /* [dim] */
    const float *w13;       /* [2 hidden, dim]: gate rows, then up */
    const float *w2;        /* [dim, hidden] */
} lt_layer_weights;

typedef struct {
    /* A sharded quantized base: make layer's whole quantized blob present
     * (the all-gather of every rank's shard) and point *blob at it (device
     * memory, valid until the next call). next is the layer the model will
     * ask for after this one (-1: none known), so its gather can start
     * while this layer computes. Called before a layer runs forward and
     * again before it runs backward, except when the dequantization
     * workspace still holds the layer (the last layer of forward is the
     * first of backward; backward ends on layer 0, where the next forward
     * starts). Not called for a resident base. */
    lt_status (*acquire_layer)(void *user, int layer, int next, const uint8_t **blob,
                               lt_error *err);
    /* Layer l's trainable gradients are final (its all-reduce bucket may
     * start). In full fine-tuning also layer n_layers (the final norm and
     * an untied classifier: right after the loss) and layer -1 (the
     * embedding, with a tied classifier: last). */
    lt_status (*grads_ready)(void *user, int layer, lt_error *err);
    void *user;
} lt_model_hooks;

lt_status lt_model_create(const lt_model_config *cfg, const lt_ops *ops, lt_model **out,
                          lt_error *err);
/* With qc (non-NULL, format not NONE) the seven decoder linears of every
 * layer are stored quantized, one blob per layer, and dequantized into one
 * reusable fp32 workspace before the layer runs; embeddings, norms and the
 * classifier stay fp32, as QLoRA keeps them. */
lt_status lt_model_create_quantized(const lt_model_config *cfg, const lt_quant_config *qc,
                                    const lt_ops *ops, lt_model **out, lt_error *err);
/* The same with every layer's quantized blob split into shard_count equal
 * shards of lt_model_shard_bytes (the blob padded to a multiple of
 * 64 * shard_count bytes): this model stores only shard shard_rank of each
 * layer, and the acquire_layer hook supplies whole blobs. shard_count 1 is
 * lt_model_create_quantized. Needs a quantized base. */
lt_status lt_model_create_sharded(const lt_model_config *cfg, const lt_quant_config *qc,
                                  int shard_rank, int shard_count, const lt_ops *ops,
                                  lt_model **out, lt_error *err);
void lt_model_free(lt_model *m);

/* Bytes of one layer's shard this model stores (the whole blob unsharded;
 * 0 for an fp32 base) and the number of shards. */
uint64_t lt_model_shard_bytes(const lt_model *m);
int lt_model_shard_count(const lt_model *m);

/* The quantized layout of one decoder layer: module m's tensor at qt[m]
 * (its own absmax blocks and double-quant state, as bitsandbytes quantizes
 * each Linear), all in one blob of *blob_bytes (a multiple of 64). */
lt_status lt_quant_layer_layout(const lt_model_config *cfg, const lt_quant_config *qc,
                                lt_qtensor qt[LT_MOD_COUNT], uint64_t *blob_bytes, lt_error *err);

/* Sets base tensor `name` (Hugging Face name, e.g.
 * "model.layers.0.self_attn.q_proj.weight") from count fp32 values in host
 * memory: copied into the fp32 base, or quantized into its layer's blob.
 * Loaders call it one tensor at a time, so the fp32 model never exists
 * whole when the base is quantized. */
lt_status lt_model_set_base_tensor(lt_model *m, const char *name, const float *host, size_t count,
                                   lt_error *err);
/* 0 when this model's shard holds no byte of tensor `name` (a loader may
 * skip reading it); 1 otherwise, including names it does not know (so
 * lt_model_set_base_tensor can report them). */
int lt_model_base_tensor_needed(const lt_model *m, const char *name);

/* NULL when the base is fp32. */
const lt_quant_config *lt_model_quant_config(const lt_model *m);

/* Where the frozen base's bytes are. */
typedef struct {
    uint64_t fp32_params, fp32_bytes;   /* resident fp32 tensors */
    uint64_t quant_params, quant_bytes; /* quantized linears, every byte of their blobs */
    uint64_t quant_resident_bytes;      /* of those, what this model stores (its shards) */
    int shard_count;
    uint64_t workspace_bytes;           /* the fp32 dequantization workspace */
} lt_base_memory;
void lt_model_base_memory(const lt_model *m, lt_base_memory *out);

/* The same figures for a model of cfg, qc (NULL: fp32) split in
 * shard_count shards, without creating it (the planner's). */
lt_status lt_plan_base_memory(const lt_model_config *cfg, const lt_quant_config *qc, int shard_count,
                              lt_base_memory *out, lt_error *err);

/* Layer l's quantized tensor for module mod and its blob (device memory;
 * with a sharded base, this model's shard of it); NULL when the base is
 * fp32. For tests, exporters and the shard gather. */
const lt_qtensor *lt_model_qtensor(const lt_model *m, int mod);
const uint8_t *lt_model_layer_blob(const lt_model *m, int layer);

const lt_model_config *lt_model_get_config(const lt_model *m);
const lt_ops *lt_model_get_ops(const lt_model *m);
const lt_param_table *lt_model_base_table(const lt_model *m);
float *lt_model_base(lt_model *m);
void lt_model_set_hooks(lt_model *m, const lt_model_hooks *hooks);

/* ---- LoRA ---- */

/* Adds adapters to the targeted modules of every layer: A kaiming-uniform
 * (a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in))) from seed, B = 0, as PEFT
 * initialises them, and a zeroed gradient buffer. Base weights stay frozen. */
lt_status lt_model_add_lora(lt_model *m, const lt_lora_config *lc, uint64_t seed, lt_error *err);
const lt_lora_config *lt_model_lora_config(const lt_model *m); /* NULL without LoRA */
float lt_model_lora_scale(const lt_model *m);
const lt_param_table *lt_model_lora_table(const lt_model *m);
float *lt_model_lora_params(lt_model *m);
float *lt_model_lora_grads(lt_model *m);
void lt_model_zero_grads(lt_model *m);

/* W += s B A for every adapted module (unmerge: W -= s B A). While merged
 * the adapters are not applied again and training is refused. */
lt_status lt_model_merge_lora(lt_model *m, int unmerge, lt_error *err);
int lt_model_lora_is_merged(const lt_model *m);

/* ---- full fine-tuning ---- */

/* Makes every base weight trainable (an fp32 base without adapters):
 * allocates its gradient, laid out as the base table. Rejects a quantized
 * base, whose weights cannot be trained, with the reason. */
lt_status lt_model_enable_full_training(lt_model *m, lt_error *err);
int lt_model_is_full_training(const lt_model *m);

/* What the optimizer trains: the LoRA table, parameters and gradients, or
 * in full fine-tuning the base's. */
const lt_param_table *lt_model_train_table(const lt_model *m);
float *lt_model_train_params(lt_model *m);
float *lt_model_train_grads(lt_model *m);

/* Gradient checkpointing (Hugging Face's gradient_checkpointing): keep only
 * each layer's input and recompute the layer's other activations in
 * backward, one layer at a time -- one extra forward pass for activations
 * of about one layer instead of all. Results are bitwise the same. */
void lt_model_set_gradient_checkpointing(lt_model *m, int on);
int lt_model_gradient_checkpointing(const lt_model *m);

/* Dropout masks come from (seed, step, layer, module) and the token's
 * index in the global micro-batch, where this rank's tokens start at
 * first_token (0 in one process); the trainer moves step forward once per
 * micro-batch. Dropout acts only in lt_model_forward_backward, never in
 * evaluation. */
void lt_model_set_dropout_state(lt_model *m, uint64_t seed, uint64_t step, uint64_t first_token);

/* ---- compute ---- */

/* The bytes lt_model_reserve allocates for B x T with adapters lc (NULL:
 * none), with or without gradient checkpointing: activations, and the
 * RoPE tables (workspace). For the planner. */
void lt_model_activation_bytes(const lt_model_config *cfg, const lt_lora_config *lc, int B, int T,
                               int checkpointing, uint64_t *activations, uint64_t *rope_bytes);

/* Sizes activations for batches of up to B sequences of up to T tokens
 * (done implicitly by the calls below when a batch does not fit). */
lt_status lt_model_reserve(lt_model *m, int B, int T, lt_error *err);

/* Logits for tokens [B, T] into host memory: [B, T, V], or [B, V] for the
 * last position of each sequence when last_only. No dropout. */
lt_status lt_model_logits(lt_model *m, const int32_t *tokens, int B, int T, int last_only,
                          float *logits, lt_error *err);

/* Cross-entropy of targets [B, T] given inputs [B, T]: sum over the
 * non-ignored targets and their count. No gradients, no dropout. */
lt_status lt_model_loss(lt_model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                        double *loss_sum, int64_t *n_targets, lt_error *err);

/* Forward and backward: accumulates grad_scale * d(sum of losses)/d(the
 * trainable parameters) into their gradient buffer (pass 1/n_targets for
 * the mean loss). */
lt_status lt_model_forward_backward(lt_model *m, const int32_t *inputs, const int32_t *targets,
                                    int B, int T, float grad_scale, double *loss_sum,
                                    int64_t *n_targets, lt_error *err);

/* Counts targets that are not LT_IGNORE_INDEX. */
int64_t lt_count_targets(const int32_t *targets, int64_t n);

#endif
