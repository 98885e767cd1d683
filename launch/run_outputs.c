#include "launch/run_outputs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/fileutil.h"

void lt_estimate_outputs(const lt_run_config *c, size_t trainable, size_t config_bytes, int64_t start,
                         int64_t total, int64_t existing_checkpoints, int ranks, int evaluates,
                         lt_output_estimate *e) {
    const uint64_t MiB = 1 << 20, params = (uint64_t)trainable * 4;
    memset(e, 0, sizeof *e);
    e->checkpoint_bytes = 3 * params + MiB + config_bytes;
    int64_t fresh = 0;
    if (start < total) {
        const int64_t every = c->save_steps;
        fresh = every ? total / every - start / every : 0;
        /* A stop signal saves the step it stops at; past the last save
         * step (or with no save_steps) that is one more. */
        if (!every || total % every) fresh++;
    }
    int64_t at_once = existing_checkpoints + fresh;
    if (c->save_total_limit > 0 && at_once > c->save_total_limit + 1) at_once = c->save_total_limit + 1;
    e->checkpoints = at_once > existing_checkpoints ? at_once - existing_checkpoints : 0;
    e->final_bytes = params + MiB;
    const int64_t steps = total - start, evals = (c->eval_steps ? steps / c->eval_steps : 0) + 2;
    e->log_bytes = (uint64_t)steps * 768 + (evaluates ? (uint64_t)evals * 160 : 0) + config_bytes +
                   16 * 1024 + (uint64_t)ranks * 1024;
    e->total = (uint64_t)e->checkpoints * e->checkpoint_bytes + e->final_bytes + e->log_bytes;
}

/* checkpoint-N.h5 files in dir. */
static int64_t count_checkpoints(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long s;
        int used = 0;
        if (sscanf(e->d_name, "checkpoint-%lld.h5%n", &s, &used) == 1 && e->d_name[used] == '\0') n++;
    }
    closedir(d);
    return n;
}

static double to_mib(uint64_t b) { return (double)b / (1 << 20); }

lt_status lt_outputs_check_space(const lt_run_config *c, size_t trainable, int64_t start, int64_t total,
                                 int ranks, int evaluates, lt_error *err) {
    char *config_json = lt_run_config_json(c);
    if (!config_json) return lt_fail(err, LT_ERR_NOMEM, "run config: out of memory");
    const size_t config_bytes = strlen(config_json);
    free(config_json);
    lt_output_estimate e;
    lt_estimate_outputs(c, trainable, config_bytes, start, total, count_checkpoints(c->output_dir), ranks,
                        evaluates, &e);
    uint64_t free_bytes = 0;
    lt_status st = lt_dir_free_space(c->output_dir, &free_bytes, err);
    if (st != LT_OK || free_bytes >= e.total) return st;
    char ckpts[160] = "", limit[32] = "no save_total_limit";
    if (c->save_total_limit) snprintf(limit, sizeof limit, "save_total_limit %d", c->save_total_limit);
    if (e.checkpoints)
        snprintf(ckpts, sizeof ckpts, "%lld checkpoint%s of %.2f MiB at once (save_steps %d, %s), ",
                 (long long)e.checkpoints, e.checkpoints == 1 ? "" : "s", to_mib(e.checkpoint_bytes),
                 c->save_steps, limit);
    return lt_fail(err, LT_ERR_IO,
                   "output_dir %s: %.2f MiB free, and this run writes up to %.2f MiB there: %sthe %s "
                   "%.2f MiB, logs %.2f MiB; free some space%s or choose another output_dir",
                   c->output_dir, to_mib(free_bytes), to_mib(e.total), ckpts,
                   lt_run_config_full(c) ? "model" : "adapter", to_mib(e.final_bytes), to_mib(e.log_bytes),
                   e.checkpoints < 2         ? ""
                   : c->save_total_limit ? ", lower save_total_limit"
                                         : ", set save_total_limit");
}

int lt_outputs_complete(const lt_run_config *c, const char *ck, int evaluates, int64_t total) {
    struct stat cs, fs;
    if (stat(ck, &cs) != 0) return 0;
    static const char *const lora[] = {"memory.json", "adapter_config.json", "adapter_model.safetensors",
                                       NULL};
    static const char *const full[] = {"memory.json", "model.safetensors", NULL};
    for (const char *const *n = lt_run_config_full(c) ? full : lora; *n; n++) {
        char path[LT_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", c->output_dir, *n);
        if (stat(path, &fs) != 0 || !S_ISREG(fs.st_mode) || fs.st_size == 0) return 0;
        if (fs.st_mtim.tv_sec < cs.st_mtim.tv_sec ||
            (fs.st_mtim.tv_sec == cs.st_mtim.tv_sec && fs.st_mtim.tv_nsec < cs.st_mtim.tv_nsec))
            return 0;
    }
    return lt_metrics_logged(c->output_dir, total, "\"loss\":") &&
           (!evaluates || lt_metrics_logged(c->output_dir, total, "\"eval_loss\":"));
}

lt_status lt_outputs_begin(const lt_run_config *c, int64_t resumed_at, lt_metrics *metrics, lt_error *err) {
    /* What a killed run of this output_dir left half-written. */
    static const char *const ours[] = {".loratrain-probe", "run_config.json", "metrics.jsonl",
                                       "memory.json", "adapter_config.json", "adapter_model.safetensors",
                                       "model.safetensors", NULL};
    lt_atomic_remove_stale(c->output_dir, ours);
    char path[LT_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/run_config.json", c->output_dir);
    char *json = lt_run_config_json(c);
    if (!json) return lt_fail(err, LT_ERR_NOMEM, "%s: out of memory", path);
    lt_status st = lt_atomic_write_text(path, json, err);
    free(json);
    if (st != LT_OK) return st;
    return lt_metrics_open(metrics, c->output_dir, resumed_at, err);
}
