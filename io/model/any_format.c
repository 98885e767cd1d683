#include "io/model/any_format.h"

#include <sys/stat.h>

#include "io/fileutil.h"
#include "io/model/hf_model.h"
#include "io/model/llama2c.h"

const char *lt_model_file_format(const char *path) {
    return lt_hf_is_model_dir(path) ? "Hugging Face directory" : "llama2.c format";
}

/* A directory that is no model directory: say what was expected rather
 * than the llama2.c reader's "not a regular file". */
static lt_status not_a_model_dir(const char *path, lt_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return lt_fail(err, LT_ERR_IO,
                       "%s: a directory without config.json; expected a Hugging Face model "
                       "directory or a llama2.c checkpoint file", path);
    return LT_OK;
}

lt_status lt_model_file_read_config(const char *path, lt_model_config *cfg, lt_error *err) {
    if (lt_hf_is_model_dir(path)) return lt_hf_read_config(path, cfg, err);
    lt_status st = not_a_model_dir(path, err);
    if (st != LT_OK) return st;
    return lt_llama2c_read_config(path, cfg, NULL, err);
}

lt_status lt_model_file_load_sharded(const char *path, const lt_quant_config *qc, int shard_rank,
                                     int shard_count, const lt_ops *ops, lt_model **out,
                                     uint64_t *bytes_read, lt_error *err) {
    if (lt_hf_is_model_dir(path))
        return lt_hf_load_sharded(path, qc, shard_rank, shard_count, ops, out, bytes_read, err);
    lt_status st = not_a_model_dir(path, err);
    if (st != LT_OK) return st;
    return lt_llama2c_load_sharded(path, qc, shard_rank, shard_count, ops, out, bytes_read, err);
}

lt_status lt_model_file_load_quantized(const char *path, const lt_quant_config *qc,
                                       const lt_ops *ops, lt_model **out, lt_error *err) {
    return lt_model_file_load_sharded(path, qc, 0, 1, ops, out, NULL, err);
}

lt_status lt_model_file_fingerprint(const char *path, uint64_t *bytes, uint64_t *fingerprint,
                                    lt_error *err) {
    if (lt_hf_is_model_dir(path)) return lt_hf_fingerprint(path, bytes, fingerprint, err);
    lt_status st = not_a_model_dir(path, err);
    if (st != LT_OK) return st;
    return lt_file_fingerprint(path, bytes, fingerprint, err);
}
