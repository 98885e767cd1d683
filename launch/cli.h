/* Command-line parsing shared by the subcommands: "--key value" and
 * "--key=value", numbers checked against their range, one error line
 * naming the option on bad input. */
#ifndef LT_LAUNCH_CLI_H
#define LT_LAUNCH_CLI_H

#include "core/status.h"
#include "model/lora.h"
#include "model/quant.h"

typedef struct {
    int argc;
    char **argv;
    int i;
    const char *key;   /* current option name without the leading dashes */
    const char *value; /* its value, or NULL for a flag given without one */
    char keybuf[64];
} lt_cli;

void lt_cli_init(lt_cli *c, int argc, char **argv);
/* Advances to the next option; returns 0 at the end. A bare argument (no
 * leading "--") is returned with key "" and value set. */
int lt_cli_next(lt_cli *c, lt_error *err, lt_status *st);
lt_status lt_cli_need_value(const lt_cli *c, lt_error *err);
lt_status lt_cli_int(const lt_cli *c, long lo, long hi, int *out, lt_error *err);
lt_status lt_cli_u64(const lt_cli *c, unsigned long long *out, lt_error *err);
lt_status lt_cli_float(const lt_cli *c, double lo, double hi, float *out, lt_error *err);
lt_status lt_cli_bool(const lt_cli *c, int *out, lt_error *err);

/* Handles the LoRA options (r, lora_alpha, lora_dropout, target_modules,
 * use_rslora); *handled is 0 when the key is not one of them. */
lt_status lt_cli_lora_option(const lt_cli *c, lt_lora_config *lc, int *handled, lt_error *err);

/* The quantized-base options (load_in_4bit, load_in_8bit,
 * bnb_4bit_quant_type, bnb_4bit_use_double_quant, bnb_4bit_blocksize). */
typedef struct {
    int in4, in8;
    lt_quant_config qc; /* the 4-bit settings */
} lt_cli_quant;

void lt_cli_quant_init(lt_cli_quant *q);
lt_status lt_cli_quant_option(const lt_cli *c, lt_cli_quant *q, int *handled, lt_error *err);
/* The configuration asked for (format NONE without either flag), validated. */
lt_status lt_cli_quant_resolve(const lt_cli_quant *q, lt_quant_config *qc, lt_error *err);

/* Help lines for those options. */
#define LT_CLI_QUANT_HELP                                                                     \
    "  --load_in_4bit        quantize the decoder linears to 4 bits (QLoRA)\n"                \
    "  --bnb_4bit_quant_type T  nf4 or fp4 [default: nf4]\n"                                  \
    "  --bnb_4bit_use_double_quant  8-bit absmax in blocks of 256\n"                          \
    "  --bnb_4bit_blocksize N  elements per absmax block [default: 64]\n"                     \
    "  --load_in_8bit        quantize the decoder linears to int8 (one absmax per row)\n"

/* The help line of --device, which every command that builds a model takes
 * (model/backend.h opens what it names). */
#define LT_CLI_DEVICE_HELP                                                                    \
    "  --device D            cpu, cuda or auto (cuda when built and a GPU is present,\n"    \
    "                        else cpu) [default: auto]\n"

#endif
