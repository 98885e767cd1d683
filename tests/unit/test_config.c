/* The run configuration: defaults, JSON files, command-line overrides,
 * unknown keys with suggestions, type and range errors, and a round trip
 * through the JSON that run_config.json records. */
#include <stdio.h>
#include <string.h>

#include "launch/run_config.h"
#include "tests/lib/check.h"

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

    /* round trip through the recorded JSON, every digit: a seed past 2^53
     * and a learning rate cJSON's own print would cut to 15 digits */
    CHECK_OK(lt_run_config_set(&c, "seed", "18446744073709551615", "--seed", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "learning_rate", "0.30000000000000004", "--learning_rate", &err), &err);
    CHECK_OK(lt_run_config_set(&c, "max_steps", "9000000000000000", "--max_steps", &err), &err);
    const char *rt = write_file("roundtrip.json", "");
    FILE *f = fopen(rt, "w");
    lt_run_config_write_json(&c, f);
    fclose(f);
    lt_run_config d;
    lt_run_config_defaults(&d);
    CHECK_OK(lt_run_config_load_json(&d, rt, &err), &err);
    CHECK(memcmp(&c, &d, sizeof c) == 0, "run_config.json does not reproduce the configuration (seed %llu, lr %.17g)",
          (unsigned long long)d.seed, d.learning_rate);
    const char *big = write_file("bigseed.json", "{\"seed\": 1152921504606846977}");
    CHECK(lt_run_config_load_json(&d, big, &err) == LT_ERR_CONFIG && strstr(err.msg, "past 2^53") &&
              strstr(err.msg, "as a string"),
          "seed past 2^53 as a JSON number: %s", err.msg);
    const char *bigs = write_file("bigseed2.json", "{\"seed\": \"1152921504606846977\"}");
    CHECK(lt_run_config_load_json(&d, bigs, &err) == LT_OK && d.seed == 1152921504606846977ull,
          "seed past 2^53 as a string: %s", err.msg);

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
    CHECK(lt_run_config_load_json(&c, bad_json, &err) == LT_ERR_CONFIG && strstr(err.msg, "bad.json:3:17: ','"),
          "invalid JSON: %s", err.msg);
    /* strict JSON: what Python's json.loads or serde_json refuses, and
     * duplicate keys, whose value would be a guess */
    const struct {
        const char *name, *text, *want;
    } strict[] = {
        {"dup.json", "{\"r\": 8,\n \"lora_alpha\": 16,\n \"r\": 16}", "dup.json:3:2: duplicate key \"r\""},
        {"comma.json", "{\"r\": 8,}", "comma.json:1:8: trailing comma"},
        {"comment.json", "{\"r\": 8 // rank\n}", "comment.json:1:9: comment"},
        {"escape.json", "{\"output_dir\": \"out\\qdir\"}", "escape.json:1:20: invalid escape \"\\q\""},
        {"nan.json", "{\"learning_rate\": NaN}", "nan.json:1:19: NaN"},
        {"quote.json", "{'r': 8}", "quote.json:1:2: single quote"},
        {"zero.json", "{\"r\": 08}", "zero.json:1:7: number with a leading zero"},
    };
    for (size_t i = 0; i < sizeof strict / sizeof strict[0]; i++) {
        lt_run_config_defaults(&c);
        const char *p = write_file(strict[i].name, strict[i].text);
        CHECK(lt_run_config_load_json(&c, p, &err) == LT_ERR_CONFIG && strstr(err.msg, strict[i].want),
              "%s: %s", strict[i].name, err.msg);
    }
    lt_run_config_defaults(&c);
    CHECK(lt_run_config_parse_json(&c, "{\"r\": 4,}", 9, "checkpoint run config", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "checkpoint run config:1:8: trailing comma"),
          "JSON text: %s", err.msg);
    /* a config file that cannot be read is a configuration error (exit 2) */
    CHECK(lt_run_config_load_json(&c, "/nonexistent/run.json", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "/nonexistent/run.json"),
          "missing config: %s %s", lt_status_name(err.code), err.msg);
    /* null: Hugging Face's None; the default only where "unset" is the default */
    const char *nul = write_file("null.json", "{\"r\": null}");
    CHECK(lt_run_config_load_json(&c, nul, &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "null.json: r = null, expected an integer in 1..1048576") &&
              strstr(err.msg, "default, 8"),
          "r null: %s", err.msg);
    const char *nul2 = write_file("null2.json", "{\"output_dir\": null}");
    CHECK(lt_run_config_load_json(&c, nul2, &err) == LT_ERR_CONFIG && strstr(err.msg, "output_dir = null, expected a string"),
          "output_dir null: %s", err.msg);
    const char *nul3 = write_file("null3.json", "{\"use_rslora\": null}");
    CHECK(lt_run_config_load_json(&c, nul3, &err) == LT_ERR_CONFIG && strstr(err.msg, "use_rslora = null, expected true or false"),
          "use_rslora null: %s", err.msg);
    CHECK_OK(lt_run_config_set(&c, "resume_from_checkpoint", "x.h5", "--resume_from_checkpoint", &err), &err);
    const char *nul4 = write_file("null4.json", "{\"resume_from_checkpoint\": null, \"adapter_name_or_path\": null}");
    CHECK(lt_run_config_load_json(&c, nul4, &err) == LT_OK && !c.resume_from_checkpoint[0],
          "an optional path's null is \"not set\": %s", err.msg);
    const char *obj = write_file("obj.json", "{\"r\": {\"value\": 8}}");
    CHECK(lt_run_config_load_json(&c, obj, &err) == LT_ERR_CONFIG && strstr(err.msg, "r is an object, expected an integer in 1..1048576"),
          "object value: %s", err.msg);
    /* what an integer key takes, in its message */
    CHECK(lt_run_config_set(&c, "seed", "-1", "--seed", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "--seed: seed = \"-1\", expected an integer in 0..18446744073709551615"),
          "seed -1: %s", err.msg);
    const char *neg = write_file("seed.json", "{\"seed\": -1}");
    CHECK(lt_run_config_load_json(&c, neg, &err) == LT_ERR_CONFIG && strstr(err.msg, "expected an integer in 0..18446744073709551615"),
          "seed -1 in JSON: %s", err.msg);
    CHECK(lt_run_config_set(&c, "r", "eight", "--r", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "expected an integer in 1..1048576"),
          "r eight: %s", err.msg);
    CHECK(lt_run_config_set(&c, "max_steps", "-2", "--max_steps", &err) == LT_ERR_CONFIG &&
              strstr(err.msg, "max_steps = -2, expected an integer in -1..9000000000000000"),
          "max_steps -2: %s", err.msg);
    /* train's LoRA defaults are the ones info and the other commands use (PEFT's) */
    lt_run_config_defaults(&c);
    lt_lora_config dl = lt_lora_defaults(), cl;
    CHECK_OK(lt_run_config_lora(&c, &cl, &err), &err);
    CHECK(cl.r == dl.r && cl.alpha == dl.alpha && cl.dropout == dl.dropout && cl.targets == dl.targets &&
              cl.use_rslora == dl.use_rslora && dl.alpha == 8.0f && dl.r == 8,
          "train's LoRA defaults r %d alpha %g differ from lt_lora_defaults' r %d alpha %g (PEFT: 8, 8)", cl.r,
          (double)cl.alpha, dl.r, (double)dl.alpha);
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
