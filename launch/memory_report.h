/* The end-of-run memory report: peak bytes per tracked category, the
 * process's measured peak resident set (VmHWM), and where the frozen base's
 * bytes are, printed and written to output_dir/memory.json. On a GPU
 * backend the device's own categories follow (what the backend allocated
 * on the GPU, by category), beside the GPU's used bytes as its runtime
 * counts them (cudaMemGetInfo: every process's, the CUDA context's and
 * the libraries' workspaces included). */
#ifndef LT_LAUNCH_MEMORY_REPORT_H
#define LT_LAUNCH_MEMORY_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "launch/data_parallel.h"
#include "model/llama.h"

/* VmHWM and VmRSS of this process in bytes (0 where /proc is unreadable). */
void lt_process_memory(uint64_t *hwm, uint64_t *rss);

/* One line describing the base: format, bits per quantized parameter, bytes. */
void lt_describe_base(const lt_model *m, char *buf, size_t cap);

/* ranks: every rank's figures (n of them; NULL for none), listed in the
 * report so a sharded run shows each rank's resident base. The base's own
 * line is the trainer's at the start (lt_describe_base), printed once;
 * memory.json holds it too. */
void lt_memory_report_print(FILE *f, const lt_model *m, const lt_rank_memory *ranks, int n);
lt_status lt_memory_report_write(const char *path, const lt_model *m, const lt_rank_memory *ranks,
                                 int n, lt_error *err);

#endif
