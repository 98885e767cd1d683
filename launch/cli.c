#include "launch/cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void lt_cli_init(lt_cli *c, int argc, char **argv) {
    memset(c, 0, sizeof *c);
    c->argc = argc;
    c->argv = argv;
}

int lt_cli_next(lt_cli *c, lt_error *err, lt_status *st) {
    *st = LT_OK;
    if (c->i >= c->argc) return 0;
    const char *a = c->argv[c->i++];
    if (strncmp(a, "--", 2) != 0) {
        c->key = "";
        c->value = a;
        return 1;
    }
    a += 2;
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (len == 0 || len >= sizeof c->keybuf) {
        *st = lt_fail(err, LT_ERR_CONFIG, "option \"%s\": expected --name or --name=value", a - 2);
        return 0;
    }
    memcpy(c->keybuf, a, len);
    c->keybuf[len] = '\0';
    c->key = c->keybuf;
    if (eq)
        c->value = eq + 1;
    else if (c->i < c->argc && strncmp(c->argv[c->i], "--", 2) != 0)
        c->value = c->argv[c->i++];
    else
        c->value = NULL;
    return 1;
}

lt_status lt_cli_need_value(const lt_cli *c, lt_error *err) {
    if (!c->value || !*c->value)
        return lt_fail(err, LT_ERR_CONFIG, "--%s: missing value", c->key);
    return LT_OK;
}

lt_status lt_cli_int(const lt_cli *c, long lo, long hi, int *out, lt_error *err) {
    lt_status st = lt_cli_need_value(c, err);
    if (st != LT_OK) return st;
    char *end = NULL;
    errno = 0;
    long v = strtol(c->value, &end, 10);
    if (errno || *end || end == c->value || v < lo || v > hi)
        return lt_fail(err, LT_ERR_CONFIG, "--%s %s: expected an integer in %ld..%ld", c->key,
                       c->value, lo, hi);
    *out = (int)v;
    return LT_OK;
}

lt_status lt_cli_u64(const lt_cli *c, unsigned long long *out, lt_error *err) {
    lt_status st = lt_cli_need_value(c, err);
    if (st != LT_OK) return st;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(c->value, &end, 10);
    if (errno || *end || end == c->value || c->value[0] == '-')
        return lt_fail(err, LT_ERR_CONFIG, "--%s %s: expected an integer in 0..%llu", c->key,
                       c->value, (unsigned long long)ULLONG_MAX);
    *out = v;
    return LT_OK;
}

lt_status lt_cli_float(const lt_cli *c, double lo, double hi, float *out, lt_error *err) {
    lt_status st = lt_cli_need_value(c, err);
    if (st != LT_OK) return st;
    char *end = NULL;
    errno = 0;
    double v = strtod(c->value, &end);
    if (errno || *end || end == c->value || !isfinite(v) || v < lo || v > hi)
        return lt_fail(err, LT_ERR_CONFIG, "--%s %s: expected a number in %g..%g", c->key,
                       c->value, lo, hi);
    *out = (float)v;
    return LT_OK;
}

lt_status lt_cli_bool(const lt_cli *c, int *out, lt_error *err) {
    if (!c->value || !strcmp(c->value, "true") || !strcmp(c->value, "1")) {
        *out = 1;
        return LT_OK;
    }
    if (!strcmp(c->value, "false") || !strcmp(c->value, "0")) {
        *out = 0;
        return LT_OK;
    }
    return lt_fail(err, LT_ERR_CONFIG, "--%s %s: expected true or false", c->key, c->value);
}

lt_status lt_cli_lora_option(const lt_cli *c, lt_lora_config *lc, int *handled, lt_error *err) {
    *handled = 1;
    /* Ranges are wide on purpose: model-dependent limits (r <= min(in,
     * out)) are checked by lt_lora_config_validate with the model known. */
    if (!strcmp(c->key, "r")) return lt_cli_int(c, -1000000, 1000000, &lc->r, err);
    if (!strcmp(c->key, "lora_alpha")) return lt_cli_float(c, -1e30, 1e30, &lc->alpha, err);
    if (!strcmp(c->key, "lora_dropout")) return lt_cli_float(c, -1e30, 1e30, &lc->dropout, err);
    if (!strcmp(c->key, "use_rslora")) return lt_cli_bool(c, &lc->use_rslora, err);
    if (!strcmp(c->key, "target_modules")) {
        lt_status st = lt_cli_need_value(c, err);
        return st != LT_OK ? st : lt_lora_parse_targets(c->value, &lc->targets, err);
    }
    *handled = 0;
    return LT_OK;
}

void lt_cli_quant_init(lt_cli_quant *q) {
    q->in4 = q->in8 = 0;
    q->qc = lt_quant_defaults(LT_QUANT_NF4);
}

lt_status lt_cli_quant_option(const lt_cli *c, lt_cli_quant *q, int *handled, lt_error *err) {
    *handled = 1;
    if (!strcmp(c->key, "load_in_4bit")) return lt_cli_bool(c, &q->in4, err);
    if (!strcmp(c->key, "load_in_8bit")) return lt_cli_bool(c, &q->in8, err);
    if (!strcmp(c->key, "bnb_4bit_use_double_quant")) return lt_cli_bool(c, &q->qc.double_quant, err);
    /* Any integer: lt_quant_config_validate says what a block size must be. */
    if (!strcmp(c->key, "bnb_4bit_blocksize"))
        return lt_cli_int(c, -(1L << 30), 1L << 30, &q->qc.blocksize, err);
    if (!strcmp(c->key, "bnb_4bit_quant_type")) {
        lt_status st = lt_cli_need_value(c, err);
        if (st == LT_OK) st = lt_quant_format_parse(c->value, &q->qc.format, err);
        if (st == LT_OK && q->qc.format == LT_QUANT_INT8)
            st = lt_fail(err, LT_ERR_CONFIG, "--bnb_4bit_quant_type int8: expected nf4 or fp4");
        return st;
    }
    *handled = 0;
    return LT_OK;
}

lt_status lt_cli_quant_resolve(const lt_cli_quant *q, lt_quant_config *qc, lt_error *err) {
    return lt_quant_select(q->in4, q->in8, &q->qc, qc, err);
}
