/* The run configuration: defaults, JSON files, command-line overrides,
 * unknown keys with suggestions, type and range errors, and a round trip
 * through the JSON that run_config.json records. */
#include <stdio.h>
#include <string.h>

#include "launch/config.h"
#include "tests/check.h"

static const char *g_dir;

static const char *write_file(const char *name, const char *text) {
    static char path[4][1024];
    static int slot;
    char *p = path[slot++ % 4];
    snprintf(p, 1024, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    g_dir = argv[1];
    lt_error err;
    lt_run_config c;
    lt_run_config_defaults(&c);
    CHECK(c.learning_rate == 5e-5 && c.per_device_train_batch_size == 8 && c.max_steps == -1 &&
              c.num_train_epochs == 3.0 && c.adam_beta2 == 0.999f && c.max_grad_norm == 1.0f &&
              c.seed == 42 && c.r == 8 && !strcmp(c.lr_scheduler_type, "linear") && c.packing == -1 &&
              c.truncation == 1 && !strcmp(c.target_modules, "q_proj,v_proj") &&
              !strcmp(c.output_dir, "output"),
          "defaults differ from the documented ones");

    const char *good = write_file("good.json",
                                  "{\"model\": \"m.bin\", \"tokenizer\": \"t.bin\", \"train_file\": \"d.txt\",\n"
                                  " \"learning_rate\": 3e-4, \"max_steps\": 120, \"r\": 4,\n"
                                  " \"target_modules\": [\"q_proj\", \"k_proj\", \"down_proj\"],\n"
                                  " \"use_rslora\": true, \"packing\": false, \"warmup_ratio\": 0.1,\n"
                                  " \"validation_file\": null, \"seed\": 7}\n");
    CHECK_OK(lt_run_config_load_json(&c, good, &err), &err);
    CHECK(c.learning_rate == 3e-4 && c.max_steps == 120 && c.r == 4 && c.use_rslora == 1 &&
              c.packing == 0 && c.warmup_ratio == 0.1 && c.seed == 7 && !c.validation_file[0],
          "values from the JSON file were not applied");
    CHECK(!strcmp(c.target_modules, "q_proj,k_proj,down_proj"), "target list became \"%s\"", c.target_modules);
    CHECK_OK(lt_run_config_validate(&c, &err), &err);
    lt_lora_config lc;
    CHECK_OK(lt_run_config_lora(&c, &lc, &err), &err);
    CHECK(lc.targets == ((1u << LT_MOD_Q) | (1u << LT_MOD_K) | (1u << LT_MOD_DOWN)) && lc.r == 4 &&
              lc.use_rslora,
          "LoRA part not carried over");

    /* the quantized base: BitsAndBytesConfig keys to a quantization config */
    lt_quant_config qc;
    CHECK_OK(lt_run_config_quant(&c, &qc, &err), &err);
    CHECK(qc.format == LT_QUANT_NONE, "no load_in_* key, yet format %d", (int)qc.format);
    const char *q4 = write_file("q4.json", "{\"load_in_4bit\": true, \"bnb_4bit_quant_type\": \"fp4\", "
                                           "\"bnb_4bit_use_double_quant\": true, \"bnb_4bit_blocksize\": 128}");
    lt_run_config cq = c;
    CHECK_OK(lt_run_config_load_json(&cq, q4, &err), &err);
    CHECK_OK(lt_run_config_quant(&cq, &qc, &err), &err);
    CHECK(qc.format == LT_QUANT_FP4 && qc.double_quant == 1 && qc.blocksize == 128,
          "4-bit keys became format %d, double quant %d, blocks %d", (int)qc.format, qc.double_quant,
          qc.blocksize);
    CHECK_OK(lt_run_config_set(&cq, "load_in_4bit", "false", "--load_in_4bit", &err), &err);
    CHECK_OK(lt_run_config_set(&cq, "load_in_8bit", NULL, "--load_in_8bit", &err), &err);
    CHECK(lt_run_config_quant(&cq, &qc, &err) == LT_OK && qc.format == LT_QUANT_INT8,
          "load_in_8bit did not select int8");

    /* overrides */
    CHECK_OK(lt_run_config_set(&c, "learning_rate", "1e-3", "--learning_rate", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "use_rslora", NULL, "--use_rslora", &err), &err);
    CHECK(c.learning_rate == 1e-3 && c.use_rslora == 1, "overrides not applied");

    /* round trip through the recorded JSON */
    const char *rt = write_file("roundtrip.json", "");
    FILE *f = fopen(rt, "w");
    lt_run_config_write_json(&c, f);
    fclose(f);
    lt_run_config d;
    lt_run_config_defaults(&d);
    CHECK_OK(lt_run_config_load_json(&d, rt, &err), &err);
    CHECK(memcmp(&c, &d, sizeof c) == 0, "run_config.json does not reproduce the configuration");

    /* errors: one line naming the file or option, the key and what is expected */
    lt_run_config_defaults(&c);
    const char *typo = write_file("typo.json", "{\"learning_rte\": 1e-4}");
    CHECK(lt_run_config_load_json(&c, typo, &err) == LT_ERR_CONFIG && strstr(err.msg, "typo.json") &&
              strstr(err.msg, "\"learning_rte\"") && strstr(err.msg, "did you mean \"learning_rate\""),
          "unknown key: %s", err.msg);
    CHECK(lt_run_config_set(&c, "lora_alhpa", "16", "--lora_alhpa", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "did you mean \"lora_alpha\""),
          "unknown override: %s", err.msg);
    const char *bad_json = write_file("bad.json", "{\n  \"r\": 8,\n  \"lora_alpha\": ,\n}\n");
    CHECK(lt_run_config_load_json(&c, bad_json, &err) == LT_ERR_CONFIG && strstr(err.msg, "line 3"),
          "invalid JSON: %s", err.msg);
    const char *wrong_type = write_file("type.json", "{\"max_steps\": \"many\"}");
    CHECK(lt_run_config_load_json(&c, wrong_type, &err) == LT_ERR_CONFIG && strstr(err.msg, "max_steps") &&
              strstr(err.msg, "integer"),
          "wrong type: %s", err.msg);
    const char *frac = write_file("frac.json", "{\"per_device_train_batch_size\": 2.5}");
    CHECK(lt_run_config_load_json(&c, frac, &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "per_device_train_batch_size"),
          "fractional integer: %s", err.msg);
    CHECK(lt_run_config_set(&c, "warmup_ratio", "1.5", "--warmup_ratio", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "0..1"),
          "out of range: %s", err.msg);
    CHECK(lt_run_config_set(&c, "packing", "maybe", "--packing", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "auto"),
          "tristate: %s", err.msg);
    const char *not_obj = write_file("list.json", "[1, 2]");
    CHECK(lt_run_config_load_json(&c, not_obj, &err) == LT_ERR_CONFIG, "a JSON list was accepted");
    lt_run_config_defaults(&c);
    CHECK(lt_run_config_validate(&c, &err) == LT_ERR_CONFIG && strstr(err.msg, "model"),
          "missing model not reported: %s", err.msg);
    CHECK_OK(lt_run_config_set(&c, "model", "m", "--model", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "tokenizer", "t", "--tokenizer", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "train_file", "d", "--train_file", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "target_modules", "q_proj,attn", "--target_modules", &err), &err);
    CHECK(lt_run_config_validate(&c, &err) == LT_ERR_CONFIG && strstr(err.msg, "\"attn\""),
          "bad target module not reported: %s", err.msg);
    CHECK_OK(lt_run_config_set(&c, "target_modules", "all-linear", "--target_modules", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "validation_file", "v", "--validation_file", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "validation_split_percentage", "5", "--x", &err), &err);
    CHECK(lt_run_config_validate(&c, &err) == LT_ERR_CONFIG && strstr(err.msg, "validation_file"),
          "two validation sources accepted: %s", err.msg);
    return check_exit_code();
}
