/* Quantized frozen base weights in the formats of bitsandbytes, bit for bit
 * what its CUDA kernels produce (the ones QLoRA runs), so that codes,
 * absmax values and dequantized weights are those a bitsandbytes user has:
 *
 *   NF4 / FP4  the weight flattened row-major, cut into blocks of
 *              `blocksize` (64); per block absmax = max |w| and
 *              code = quantize(w * (1 / absmax)) by bitsandbytes' decision
 *              trees; two codes per byte, element 2j in the high nibble.
 *              Dequantized: w = table[code] * absmax.
 *   double quantization (bnb_4bit_use_double_quant): offset = mean(absmax)
 *              (float64 sum, rounded to float), then absmax - offset is
 *              quantized in blocks of 256 with the signed 8-bit dynamic map
 *              (create_dynamic_map, searched as kQuantizeBlockwise does);
 *              absmax = dynamic[q] * absmax2 + offset, two roundings.
 *   int8       per row: q = round(w * (127 / rowmax)), half to even;
 *              w = q * rowmax * (1/127), as int8_vectorwise_(de)quant.
 *
 * Blocks whose absmax is 0 get what the kernels give them: 0 * (1/0) is
 * NaN, which every decision tree sends to code 0; they dequantize to zero
 * (an int8 row of zeros stores q = 0). No NaN ever reaches the weights.
 *
 * A quantized tensor is a set of byte ranges inside a blob (one blob per
 * decoder layer); lt_qtensor names them. The same struct, by value, is what
 * the CPU and CUDA dequantization kernels take, so its layout is fixed by
 * the static assertions in quant.c. The per-element decode is written once,
 * below, as LT_HOST_DEVICE functions that lt_dequantize_ref, the CPU
 * kernels and the CUDA kernels all call. */
#ifndef LT_MODEL_QUANT_H
#define LT_MODEL_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/hostdev.h"
#include "core/status.h"

LT_EXTERN_C_BEGIN

typedef enum {
    LT_QUANT_NONE = 0,
    LT_QUANT_NF4 = 1,
    LT_QUANT_FP4 = 2,
    LT_QUANT_INT8 = 3
} lt_quant_format;

typedef struct {
    lt_quant_format format;
    int blocksize;    /* 4-bit formats: elements per absmax block */
    int double_quant; /* 4-bit formats: 8-bit absmax in blocks of 256 */
} lt_quant_config;

#define LT_QUANT_BLOCKSIZE_DEFAULT 64 /* bitsandbytes' quantize_4bit default */
#define LT_QUANT_BLOCKSIZE_MAX (1 << 20)
#define LT_QUANT_DQ_BLOCKSIZE 256 /* bitsandbytes' nested (double) quantization */

/* bitsandbytes' value tables: NF4 (sorted), FP4 (index = sign bit 8 plus a
 * 3-bit magnitude code, values divided by 12) and the signed dynamic map. */
extern const float lt_nf4_code[16];
extern const float lt_fp4_code[16];
extern const float lt_dynamic8_code[256];

typedef struct {
    int32_t format; /* lt_quant_format */
    int32_t blocksize; /* int8: cols (one absmax per row) */
    int32_t double_quant;
    int32_t rows, cols;
    int32_t reserved;
    int64_t numel;
    int64_t nblocks;  /* absmax entries */
    int64_t nblocks2; /* double quant: absmax2 entries */
    /* byte offsets from the start of the blob */
    uint64_t begin;
    uint64_t codes;   /* 4-bit: ceil(numel / 2) packed bytes; int8: numel int8 */
    uint64_t absmax;  /* float[nblocks], or uint8[nblocks] with double quant */
    uint64_t absmax2; /* double quant: float[nblocks2] */
    uint64_t offset;  /* double quant: one float */
    uint64_t end;     /* first byte after the tensor */
} lt_qtensor;

const char *lt_quant_format_name(lt_quant_format f);
/* "nf4", "fp4" or "int8" (as bnb_4bit_quant_type names them). */
lt_status lt_quant_format_parse(const char *name, lt_quant_format *f, lt_error *err);

/* Format f with bitsandbytes' defaults: blocks of 64, no double quantization. */
lt_quant_config lt_quant_defaults(lt_quant_format f);

/* The configuration BitsAndBytesConfig's flags ask for: int8 with
 * load_in_8bit, four_bit with load_in_4bit, format NONE with neither;
 * validated, and an error with both. */
lt_status lt_quant_select(int load_in_4bit, int load_in_8bit, const lt_quant_config *four_bit,
                          lt_quant_config *out, lt_error *err);

/* Block size even (so blocks start on a byte), 2..LT_QUANT_BLOCKSIZE_MAX. */
lt_status lt_quant_config_validate(const lt_quant_config *qc, lt_error *err);

/* Places a rows x cols tensor at byte `at` (rounded up to 64) of a blob;
 * t->end is where the next one may start. */
lt_status lt_qtensor_layout(const lt_quant_config *qc, int rows, int cols, uint64_t at,
                            lt_qtensor *t, lt_error *err);

/* Bits of storage per element, everything counted (codes, absmax, the
 * double-quant state, alignment padding). */
double lt_qtensor_bits(const lt_qtensor *t);

/* Quantizes w [rows, cols] into the blob at t's offsets. A non-finite
 * element is an error naming `name`, the row and the column. */
lt_status lt_quantize(const lt_qtensor *t, const float *w, uint8_t *blob, const char *name,
                      lt_error *err);

/* The reference dequantization, one element at a time (the fast kernels
 * are ops->dequantize; tests hold them to this bit for bit). */
void lt_dequantize_ref(const lt_qtensor *t, const uint8_t *blob, float *out);

/* Block b's absmax as dequantization uses it (double quant undone). */
float lt_qtensor_block_absmax(const lt_qtensor *t, const uint8_t *blob, int64_t b);

/* ---- the decode of one element, shared by host and device ----------
 * The tables are parameters (lt_nf4_code and friends on the host, the
 * kernels' copies in shared memory on the GPU). Files that call these are
 * compiled without FMA contraction (-ffp-contract=off, nvcc --fmad=false):
 * lt_dq_absmax's multiply and add are two roundings in bitsandbytes. */

/* The 4-bit code of element i: element 2j is the high nibble of byte j. */
LT_HOST_DEVICE static inline unsigned lt_q4_code(const uint8_t *codes, int64_t i) {
    return i & 1 ? codes[i / 2] & 15u : (unsigned)codes[i / 2] >> 4;
}

/* A 4-bit element: table[code] * its block's absmax. */
LT_HOST_DEVICE static inline float lt_q4_value(const float *table, unsigned code, float absmax) {
    return table[code] * absmax;
}

/* A double-quantized block absmax: dynamic = lt_dynamic8_code[q] of the
 * block's 8-bit code, absmax2 its group of 256's scale, offset the
 * tensor's mean. */
LT_HOST_DEVICE static inline float lt_dq_absmax(float dynamic, float absmax2, float offset) {
    const float v = dynamic * absmax2;
    return v + offset;
}

/* An int8 element: q * rowmax * (1/127), rounded after each multiply as
 * int8_vectorwise_dequant does. */
LT_HOST_DEVICE static inline float lt_int8_value(int8_t q, float rowmax) {
    return ((float)q * rowmax) * 7.874015718698502e-3f;
}

LT_EXTERN_C_END

#endif
