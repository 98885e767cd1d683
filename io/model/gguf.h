/* GGUF (version 3, little-endian), the file format of llama.cpp / ggml, as
 * far as a LoRA adapter needs it: scalar metadata (uint32, float32,
 * string) and 2-D F32 or F16 tensors.
 *
 * Layout: "GGUF", version, tensor count, metadata count; the metadata
 * (key, type, value); one info record per tensor (name, dims in ggml order
 * -- ne0 is the fastest-varying, so a row-major [rows, cols] matrix is
 * written as ne0 = cols, ne1 = rows --, type, offset into the data); zero
 * padding to the alignment; the tensor data, each tensor starting at a
 * multiple of the alignment and padded to one, the last included, since
 * ggml's reader expects the data section to be a whole number of padded
 * tensors. The alignment is always 32, and the caller's metadata must
 * say so in general.alignment, so that no reader has to assume the
 * default.
 *
 * Written atomically (temporary file, fsync, rename): a failure leaves no
 * file and no temporary under the final name's directory. */
#ifndef LT_IO_MODEL_GGUF_H
#define LT_IO_MODEL_GGUF_H

#include <stdint.h>

#include "core/status.h"
#include "model/llama.h"

#define LT_GGUF_ALIGNMENT 32

/* Values are ggml's type ids, as the tensor info stores them. */
typedef enum { LT_GGUF_F32 = 0, LT_GGUF_F16 = 1 } lt_gguf_dtype;

typedef enum { LT_GGUF_KV_U32, LT_GGUF_KV_F32, LT_GGUF_KV_STRING } lt_gguf_kv_type;

typedef struct {
    const char *key;
    lt_gguf_kv_type type;
    uint32_t u32;
    float f32;
    const char *str;
} lt_gguf_kv;

typedef struct {
    const char *name;
    const float *data; /* row-major [rows, cols], fp32 whatever the dtype written */
    int64_t rows, cols;
} lt_gguf_tensor;

/* "f32" or "f16" (convert_lora_to_gguf.py's --outtype names). */
lt_status lt_gguf_parse_outtype(const char *s, lt_gguf_dtype *out, lt_error *err);
const char *lt_gguf_dtype_name(lt_gguf_dtype d);

/* Writes the metadata in the order given (which must hold
 * general.alignment = LT_GGUF_ALIGNMENT as uint32) and the tensors stored
 * as dtype (F16 rounded to nearest even, as numpy and torch convert).
 * Keys and tensor names must be unique, names shorter than 64 bytes
 * (ggml's GGML_MAX_NAME). */
lt_status lt_gguf_write(const char *path, const lt_gguf_kv *kv, int n_kv, const lt_gguf_tensor *t,
                        int n_t, lt_gguf_dtype dtype, lt_error *err);

/* The model's LoRA adapters as llama.cpp's LoRA adapter file, what
 * convert_lora_to_gguf.py makes of the same adapter in PEFT layout:
 * general.architecture "llama", general.type "adapter", adapter.type
 * "lora", adapter.lora.alpha, general.name = name; tensors
 * blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight
 * .lora_a ([r, in]) and .lora_b ([out, r]). q and k lora_b rows are in the
 * interleaved RoPE order llama.cpp computes in (whatever the base's
 * layout). llama.cpp scales by alpha / r, so for use_rslora the alpha
 * written is lora_alpha * sqrt(r), which gives lora_alpha / sqrt(r). */
lt_status lt_adapter_save_gguf(lt_model *m, const char *path, const char *name,
                               lt_gguf_dtype dtype, lt_error *err);

#endif
