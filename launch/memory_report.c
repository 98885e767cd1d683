#include "launch/memory_report.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/fileutil.h"
#include "model/backend.h"

static double mib(uint64_t b) { return (double)b / (1 << 20); }

void lt_process_memory(uint64_t *hwm, uint64_t *rss) {
    *hwm = *rss = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    unsigned long long kb;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) *hwm = (uint64_t)kb * 1024;
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) *rss = (uint64_t)kb * 1024;
    }
    fclose(f);
}

void lt_describe_base(const lt_model *m, char *buf, size_t cap) {
    lt_base_memory bm;
    lt_model_base_memory(m, &bm);
    const lt_quant_config *qc = lt_model_quant_config(m);
    if (!qc) {
        snprintf(buf, cap, "fp32, %.2f MiB", mib(bm.fp32_bytes));
        return;
    }
    char how[64] = "";
    if (qc->format != LT_QUANT_INT8)
        snprintf(how, sizeof how, ", blocks of %d%s", qc->blocksize,
                 qc->double_quant ? ", double quant" : "");
    snprintf(buf, cap,
             "%s%s: %.3f bits per quantized parameter; %.2f MiB quantized (%llu parameters) + "
             "%.2f MiB fp32 embeddings, norms and classifier + %.2f MiB dequantization workspace",
             lt_quant_format_name(qc->format), how,
             8.0 * (double)bm.quant_bytes / (double)bm.quant_params, mib(bm.quant_bytes),
             (unsigned long long)bm.quant_params, mib(bm.fp32_bytes), mib(bm.workspace_bytes));
}

/* The device space's line, when the model's backend allocated there. */
static void print_device(FILE *f, const lt_model *m, const lt_mem_stats *ms) {
    if (!ms->total_peak[LT_SPACE_DEVICE]) return;
    fprintf(f, "device memory (peak per category, tracked):");
    for (int c = 0; c < LT_MEM_NCATEGORIES; c++)
        if (ms->peak[LT_SPACE_DEVICE][c])
            fprintf(f, " %s %.2f MiB,", lt_mem_category_name((lt_mem_category)c),
                    mib(ms->peak[LT_SPACE_DEVICE][c]));
    fprintf(f, " total peak %.2f MiB", mib(ms->total_peak[LT_SPACE_DEVICE]));
    size_t free_b = 0, total_b = 0;
    if (lt_backend_device_memory(lt_model_get_ops(m), &free_b, &total_b) == 1)
        fprintf(f, "; the GPU now: %.2f MiB used of %.2f MiB", mib(total_b - free_b), mib(total_b));
    fprintf(f, "\n");
}

void lt_memory_report_print(FILE *f, const lt_model *m, const lt_rank_memory *ranks, int n) {
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    uint64_t hwm, rss;
    lt_process_memory(&hwm, &rss);
    fprintf(f, "memory (peak per category, tracked):");
    for (int c = 0; c < LT_MEM_NCATEGORIES; c++)
        if (ms.peak[LT_SPACE_HOST][c])
            fprintf(f, " %s %.2f MiB,", lt_mem_category_name((lt_mem_category)c),
                    mib(ms.peak[LT_SPACE_HOST][c]));
    fprintf(f, " total peak %.2f MiB; process peak (VmHWM) %.2f MiB\n",
            mib(ms.total_peak[LT_SPACE_HOST]), mib(hwm));
    print_device(f, m, &ms);
    for (int r = 0; ranks && n > 1 && r < n; r++)
        fprintf(f, "rank %d: quantized base resident %.2f MiB, tracked peak %.2f MiB, process peak "
                   "%.2f MiB, read %.2f MiB of model tensors\n",
                r, mib(ranks[r].quant_resident_bytes), mib(ranks[r].tracked_total_peak),
                mib(ranks[r].vm_hwm), mib(ranks[r].model_bytes_read));
}

lt_status lt_memory_report_write(const char *path, const lt_model *m, const lt_rank_memory *ranks,
                                 int n, lt_error *err) {
    lt_mem_stats ms;
    lt_mem_get_stats(&ms);
    uint64_t hwm, rss;
    lt_process_memory(&hwm, &rss);
    lt_base_memory bm;
    lt_model_base_memory(m, &bm);
    const lt_quant_config *qc = lt_model_quant_config(m);
    cJSON *root = cJSON_CreateObject(), *cats = cJSON_AddObjectToObject(root, "tracked");
    for (int c = 0; c < LT_MEM_NCATEGORIES; c++) {
        cJSON *o = cJSON_AddObjectToObject(cats, lt_mem_category_name((lt_mem_category)c));
        cJSON_AddNumberToObject(o, "peak_bytes", (double)ms.peak[LT_SPACE_HOST][c]);
        cJSON_AddNumberToObject(o, "current_bytes", (double)ms.current[LT_SPACE_HOST][c]);
    }
    cJSON_AddNumberToObject(root, "tracked_total_peak_bytes", (double)ms.total_peak[LT_SPACE_HOST]);
    if (ms.total_peak[LT_SPACE_DEVICE]) {
        cJSON *dev = cJSON_AddObjectToObject(root, "device");
        cJSON *dc = cJSON_AddObjectToObject(dev, "tracked");
        for (int c = 0; c < LT_MEM_NCATEGORIES; c++) {
            cJSON *o = cJSON_AddObjectToObject(dc, lt_mem_category_name((lt_mem_category)c));
            cJSON_AddNumberToObject(o, "peak_bytes", (double)ms.peak[LT_SPACE_DEVICE][c]);
            cJSON_AddNumberToObject(o, "current_bytes", (double)ms.current[LT_SPACE_DEVICE][c]);
        }
        cJSON_AddNumberToObject(dev, "tracked_total_peak_bytes",
                                (double)ms.total_peak[LT_SPACE_DEVICE]);
        size_t free_b = 0, total_b = 0;
        if (lt_backend_device_memory(lt_model_get_ops(m), &free_b, &total_b) == 1) {
            cJSON_AddNumberToObject(dev, "runtime_used_bytes", (double)(total_b - free_b));
            cJSON_AddNumberToObject(dev, "runtime_total_bytes", (double)total_b);
        }
    }
    cJSON_AddNumberToObject(root, "vm_hwm_bytes", (double)hwm);
    cJSON_AddNumberToObject(root, "vm_rss_bytes", (double)rss);
    cJSON *b = cJSON_AddObjectToObject(root, "base");
    cJSON_AddStringToObject(b, "format", qc ? lt_quant_format_name(qc->format) : "fp32");
    if (qc && qc->format != LT_QUANT_INT8) {
        cJSON_AddNumberToObject(b, "blocksize", qc->blocksize);
        cJSON_AddBoolToObject(b, "double_quant", qc->double_quant);
    }
    cJSON_AddNumberToObject(b, "fp32_params", (double)bm.fp32_params);
    cJSON_AddNumberToObject(b, "fp32_bytes", (double)bm.fp32_bytes);
    cJSON_AddNumberToObject(b, "quant_params", (double)bm.quant_params);
    cJSON_AddNumberToObject(b, "quant_bytes", (double)bm.quant_bytes);
    cJSON_AddNumberToObject(b, "workspace_bytes", (double)bm.workspace_bytes);
    cJSON_AddNumberToObject(b, "quant_resident_bytes", (double)bm.quant_resident_bytes);
    cJSON_AddNumberToObject(b, "shards", bm.shard_count);
    if (bm.quant_params)
        cJSON_AddNumberToObject(b, "quant_bits_per_param",
                                8.0 * (double)bm.quant_bytes / (double)bm.quant_params);
    cJSON *rs = cJSON_AddArrayToObject(root, "ranks");
    for (int r = 0; ranks && r < n; r++) {
        cJSON *o = cJSON_CreateObject();
        cJSON *t = cJSON_AddObjectToObject(o, "tracked_peak_bytes");
        for (int c = 0; c < LT_MEM_NCATEGORIES; c++)
            cJSON_AddNumberToObject(t, lt_mem_category_name((lt_mem_category)c),
                                    (double)ranks[r].tracked_peak[c]);
        cJSON_AddNumberToObject(o, "tracked_total_peak_bytes", (double)ranks[r].tracked_total_peak);
        cJSON_AddNumberToObject(o, "vm_hwm_bytes", (double)ranks[r].vm_hwm);
        cJSON_AddNumberToObject(o, "quant_resident_bytes", (double)ranks[r].quant_resident_bytes);
        cJSON_AddNumberToObject(o, "model_bytes_read", (double)ranks[r].model_bytes_read);
        cJSON_AddItemToArray(rs, o);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return lt_fail(err, LT_ERR_NOMEM, "%s: cannot format the memory report", path);
    lt_status st = lt_atomic_write_text(path, text, err);
    free(text);
    return st;
}
