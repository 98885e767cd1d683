/* `loratrain train`, top to bottom. lt_train runs these steps, each a
 * function below, in this order:
 *   run_init         who this rank is and what it computes with
 *   open_run         the model, the data, the schedule and AdamW, wired to
 *                    the other ranks; nothing written yet
 *   resume_or_start  step 0, or a checkpoint's step, sampler cursor and
 *                    moments; a finished run resumed ends here
 *   begin_outputs    room on disk checked, run_config.json written,
 *                    metrics.jsonl opened
 *   print_banner     what trains, on what, with which data
 *   run_steps        the evaluation at the start, the optimizer steps
 *                    (each logged; evaluating and saving on schedule; the
 *                    stop signal polled), the final evaluation
 *   save_at_stop     a stopped run's steps since its last checkpoint saved
 *   finish           the memory report, then the adapter or the model and
 *                    the summary, or the line that says how to resume
 * train_step.c holds the optimizer step and the evaluation, metrics.c the
 * log, run_outputs.c the checks on output_dir, train_report.c the progress
 * lines and the communication summary. */
#include "launch/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "io/checkpoint/checkpoint.h"
#include "io/data/loader.h"
#include "io/fileutil.h"
#include "io/model/adapter.h"
#include "io/model/any_format.h"
#include "io/model/hf_model.h"
#include "io/model/llama2c.h"
#include "io/text/tokenizer.h"
#include "launch/memory_report.h"
#include "launch/metrics.h"
#include "launch/run_outputs.h"
#include "launch/stop_signal.h"
#include "launch/train_report.h"
#include "launch/trainer_internal.h"
#include "model/backend.h"

typedef struct {
    lt_comm *world;
    int rank, N;
    int lead;    /* rank 0: prints and writes the outputs */
    int threads; /* this rank's compute threads (0: all cores) */
    const lt_ops *ops;
    /* open_run */
    lt_model *model;
    lt_tokenizer *tok;
    lt_dataset *train, *eval;
    lt_loader *loader;
    lt_adamw opt;
    int opt_ready;
    int32_t *inputs, *targets; /* one step's GA micro-batches of B x T, this rank's rows */
    lt_dp dp;
    int full; /* full fine-tuning, else LoRA */
    lt_lora_config lc;
    int T, B, GA;
    uint64_t rows; /* training rows in an epoch */
    int64_t total; /* the run's optimizer steps */
    lt_lr_schedule sched;
    uint64_t model_bytes_read;
    /* resume_or_start */
    uint64_t base_bytes, base_fingerprint;
    int64_t start; /* steps taken before this process */
    int64_t tokens_seen;
    int finished;  /* resumed at its last step with its outputs there: nothing to do */
    /* begin_outputs and run_steps */
    lt_metrics metrics; /* rank 0 */
    int64_t last_saved; /* the step of the newest checkpoint on disk */
    /* Where the run stopped: the stop signal every rank agreed on (0:
     * none), at which step, and in which phase (NULL after a step, else
     * "loading" or "evaluation"). */
    int stop_sig;
    int64_t stopped_at;
    const char *stopped_in;
    lt_progress progress;
    lt_comm_totals comm; /* the steps' communication, for the summary */
} run_state;

/* failed: on several ranks the collectives in flight are abandoned, not
 * completed: the other ranks may never join them, and main is about to
 * end the whole job. */
static void run_free(run_state *r, int failed) {
    lt_metrics_close(&r->metrics, NULL);
    free(r->inputs);
    free(r->targets);
    if (r->opt_ready) lt_adamw_free(&r->opt);
    if (!(failed && r->dp.size > 1)) lt_dp_free(&r->dp);
    lt_loader_free(r->loader);
    lt_dataset_free(r->train);
    lt_dataset_free(r->eval);
    lt_tokenizer_free(r->tok);
    lt_model_free(r->model);
}

/* Every rank agreed on a stop signal. */
static int stopped(const run_state *r) { return r->stop_sig != 0; }

/* Rank 0 decides from the files, every rank learns it. */
static lt_status lead_decides(run_state *r, int *v, lt_error *err) {
    int64_t x = *v;
    if (r->dp.size > 1) {
        lt_status st = lt_comm_broadcast(r->dp.comm, &x, sizeof x, 0, err);
        if (st != LT_OK) return st;
    }
    *v = (int)x;
    return LT_OK;
}

/* Who this rank is and how many threads it computes with; nothing is
 * opened. */
static void run_init(run_state *r, const lt_run_config *c, lt_comm *world) {
    memset(r, 0, sizeof *r);
    lt_metrics_init(&r->metrics);
    r->world = world;
    r->rank = lt_comm_rank(world);
    r->N = lt_comm_size(world);
    /* threads 0 means all cores; ranks sharing a node split them, as
     * torchrun's one thread per process avoids N pools fighting. */
    int threads = c->threads;
    const int per_node = lt_comm_info(world)->local_size;
    if (threads == 0 && per_node > 1) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus / per_node > 1 ? (int)(cpus / per_node) : 1;
    }
    r->threads = threads;
    r->lead = r->rank == 0;
}

/* ------------------------------------------------------------ open */

/* adapter_name_or_path: PEFT's from_pretrained(is_trainable=True) for a
 * run whose LoRA setup is the adapter's (so that its checkpoints, which
 * record the run's setup, describe what trains); dropout is the run's. */
static lt_status start_from_adapter(const lt_run_config *c, run_state *r, const lt_lora_config *lc,
                                    lt_error *err) {
    lt_lora_config a;
    lt_status st = lt_adapter_read_config(c->adapter_name_or_path, &a, err);
    if (st != LT_OK) return st;
    if (a.r != lc->r || a.alpha != lc->alpha || a.use_rslora != lc->use_rslora || a.targets != lc->targets) {
        char have[256], want[256];
        lt_lora_format_targets(a.targets, have, (int)sizeof have);
        lt_lora_format_targets(lc->targets, want, (int)sizeof want);
        return lt_fail(err, LT_ERR_CONFIG,
                       "adapter_name_or_path %s: the adapter has r %d, lora_alpha %g, use_rslora %d on %s; "
                       "this run has r %d, lora_alpha %g, use_rslora %d on %s (set them to the adapter's)",
                       c->adapter_name_or_path, a.r, (double)a.alpha, a.use_rslora, have, lc->r,
                       (double)lc->alpha, lc->use_rslora, want);
    }
    if ((st = lt_adapter_load_weights(r->model, c->adapter_name_or_path, err)) != LT_OK) return st;
    if (r->lead) printf("starting from the PEFT adapter in %s\n", c->adapter_name_or_path);
    return LT_OK;
}

/* The model as it trains: loaded (this rank's shard of a sharded base),
 * LoRA added or every weight made trainable, an adapter to start from
 * read, and its hooks wired to the other ranks. */
static lt_status open_model(const lt_run_config *c, run_state *r, lt_error *err) {
    lt_quant_config qc;
    lt_status st = lt_run_config_quant(c, &qc, err);
    if (st != LT_OK) return st;
    /* The same answer on any number of ranks (one rank has nothing to
     * split, but the setting would be refused on two). */
    if (c->shard_base && qc.format == LT_QUANT_NONE)
        return lt_fail(err, LT_ERR_CONFIG,
                       "shard_base needs a quantized base (load_in_4bit or load_in_8bit); "
                       "an fp32 base is kept whole on every rank");
    const int shards = c->shard_base ? r->N : 1;
    if ((st = lt_model_file_load_sharded(c->model, &qc, shards > 1 ? r->rank : 0, shards, r->ops, &r->model,
                                         &r->model_bytes_read, err)) != LT_OK)
        return st;
    const lt_model_config *mc = lt_model_get_config(r->model);
    if (c->tokenizer[0] &&
        (st = lt_tokenizer_load(c->tokenizer, mc->vocab_size, &r->tok, err)) != LT_OK)
        return st;
    r->full = lt_run_config_full(c);
    if ((st = lt_run_config_lora(c, &r->lc, err)) != LT_OK) return st;
    if (r->full)
        st = lt_model_enable_full_training(r->model, err);
    else
        st = lt_model_add_lora(r->model, &r->lc, c->seed, err);
    if (st == LT_OK && !r->full && c->adapter_name_or_path[0]) st = start_from_adapter(c, r, &r->lc, err);
    if (st != LT_OK) return st;
    lt_model_set_gradient_checkpointing(r->model, c->gradient_checkpointing);
    return lt_dp_setup(&r->dp, r->world, r->model, c->ddp_bucket_cap_mb, c->zero1, err);
}

/* The training set, and the held-out one: validation_split_percentage of
 * train_file, or validation_file. */
static lt_status load_data(const lt_run_config *c, run_state *r, int T, lt_error *err) {
    lt_data_config dc = lt_run_config_data(c, T);
    const int V = lt_model_get_config(r->model)->vocab_size;
    dc.holdout_fraction = c->validation_split_percentage / 100.0;
    lt_status st = lt_dataset_load(c->train_file, r->tok, V, &dc, &r->train,
                                   dc.holdout_fraction > 0 ? &r->eval : NULL, err);
    if (st != LT_OK || !c->validation_file[0]) return st;
    dc.holdout_fraction = 0;
    return lt_dataset_load(c->validation_file, r->tok, V, &dc, &r->eval, NULL, err);
}

/* The data: sequences of T tokens, the held-out set if there is one, the
 * loader that deals each rank its rows, and the run's length in steps. */
static lt_status open_data(const lt_run_config *c, run_state *r, lt_error *err) {
    const lt_model_config *mc = lt_model_get_config(r->model);
    r->T = c->max_seq_length ? c->max_seq_length : mc->seq_len;
    if (r->T > mc->seq_len)
        return lt_fail(err, LT_ERR_CONFIG, "max_seq_length = %d exceeds the model's seq_len %d", r->T,
                       mc->seq_len);
    lt_status st = load_data(c, r, r->T, err);
    if (st != LT_OK) return st;
    r->B = c->per_device_train_batch_size;
    r->GA = c->gradient_accumulation_steps;
    /* The global micro-batch is N x B rows; this rank takes its B. */
    if ((st = lt_loader_create(r->train, r->B * r->N, c->seed, 1, &r->loader, err)) != LT_OK) return st;
    r->rows = lt_loader_rows_per_epoch(r->loader);
    r->total = c->max_steps > 0
                   ? c->max_steps
                   : (int64_t)ceil(c->num_train_epochs * (double)r->rows /
                                   ((double)r->B * r->N * r->GA));
    if (r->total < 1)
        return lt_fail(err, LT_ERR_CONFIG, "num_train_epochs = %g gives no optimizer step",
                       c->num_train_epochs);
    return LT_OK;
}

/* The learning-rate schedule, AdamW's moments (ZeRO-1: this rank's shard
 * only), and room for a step: the model's buffers and the batch. */
static lt_status open_optimizer(const lt_run_config *c, run_state *r, lt_error *err) {
    r->sched = (lt_lr_schedule){.lr = c->learning_rate, .total_steps = r->total,
                                .warmup_steps = c->warmup_steps > 0
                                                    ? c->warmup_steps
                                                    : lt_warmup_steps_from_ratio(c->warmup_ratio, r->total)};
    lt_status st = lt_lr_schedule_parse(c->lr_scheduler_type, &r->sched.kind, err);
    if (st != LT_OK || (st = lt_lr_schedule_validate(&r->sched, err)) != LT_OK) return st;
    lt_adamw_config ac = {.beta1 = c->adam_beta1, .beta2 = c->adam_beta2, .eps = c->adam_epsilon,
                          .weight_decay = c->weight_decay};
    const size_t params = r->dp.zero1 ? r->dp.shard_len : lt_model_train_table(r->model)->numel;
    if ((st = lt_train_optimizer_init(&r->opt, lt_model_get_ops(r->model), params, &ac, err)) != LT_OK)
        return st;
    r->opt_ready = 1;
    if ((st = lt_model_reserve(r->model, r->B, r->T, err)) != LT_OK) return st;
    r->inputs = malloc((size_t)r->GA * r->B * r->T * sizeof *r->inputs);
    r->targets = malloc((size_t)r->GA * r->B * r->T * sizeof *r->targets);
    if (!r->inputs || !r->targets) return lt_fail(err, LT_ERR_NOMEM, "batch buffers: out of memory");
    return LT_OK;
}

/* Every rank opens the same run on its device's backend; output_dir
 * exists after it (rank 0 makes it), and nothing is written there yet. */
static lt_status open_run(const lt_run_config *c, run_state *r, lt_error *err) {
    lt_status st = lt_backend_open(c->device, r->threads, &r->ops, err);
    if (st != LT_OK) return st;
    /* Gradients, shards and moments live in the backend's memory, which
     * the collectives are handed directly. */
    if (r->N > 1 && strcmp(r->ops->name, "cpu") != 0 && !lt_comm_device_buffers(r->world))
        return lt_fail(err, LT_ERR_CONFIG,
                       "device = %s on %d ranks: the %s communicator here moves host memory "
                       "only (not CUDA-aware) and the NCCL communicator is not written yet; "
                       "run one rank per job, or device = cpu",
                       r->ops->name, r->N, lt_comm_backend_name(r->world));
    if (r->lead && (st = lt_make_dirs(c->output_dir, err)) != LT_OK) return st;
    if ((st = open_model(c, r, err)) != LT_OK || (st = open_data(c, r, err)) != LT_OK) return st;
    return open_optimizer(c, r, err);
}

/* ------------------------------------------------------------ resume */

/* Continues from checkpoint ck: every rank reads it (the LoRA state is
 * replicated) and takes its step, sampler cursor, moments and trainable
 * weights. A run whose last step ck is, with its outputs all there, sets
 * r->finished. */
static lt_status resume_from(const lt_run_config *c, run_state *r, const char *ck, lt_error *err) {
    lt_ckpt_meta meta;
    lt_status st = r->full ? lt_checkpoint_load_full(ck, r->model, &r->opt, r->dp.zero1 ? r->dp.shard_lo : 0,
                                                     r->base_bytes, r->base_fingerprint, &meta, err)
                           : lt_checkpoint_load(ck, r->model, &r->opt, r->base_bytes, r->base_fingerprint,
                                                &meta, err);
    if (st != LT_OK || (st = lt_loader_seek(r->loader, meta.cursor, err)) != LT_OK) return st;
    /* At exactly the last step the run was stopped after its final
     * checkpoint but before its final evaluation and outputs (killed,
     * or preempted): resuming runs no step and writes those. */
    if (meta.global_step > r->total)
        return lt_fail(err, LT_ERR_CONFIG, "%s is at step %lld, beyond this run's %lld steps", ck,
                       (long long)meta.global_step, (long long)r->total);
    r->start = meta.global_step;
    r->tokens_seen = meta.tokens_seen;
    /* ...unless those are there already: a finished run resumed (a job
     * script that always passes `latest`) leaves its outputs alone. */
    int finished = r->start == r->total && r->lead && lt_outputs_complete(c, ck, r->eval != NULL, r->total);
    if ((st = lead_decides(r, &finished, err)) != LT_OK) return st;
    r->finished = finished;
    if (!r->lead) return LT_OK;
    if (finished) {
        printf("%s is the last step (%lld) of this run, and its outputs in %s are complete: "
               "nothing to do, nothing rewritten\n", ck, (long long)r->total, c->output_dir);
        fflush(stdout);
        return LT_OK;
    }
    const lt_lr_schedule *s = &r->sched, *m = &meta.sched;
    printf("resuming from %s at step %lld (written by %d rank(s), now %d)\n", ck, (long long)r->start,
           meta.world_size, r->N);
    if (m->kind != s->kind || m->lr != s->lr || m->total_steps != s->total_steps ||
        m->warmup_steps != s->warmup_steps)
        printf("note: the checkpoint's schedule (%s, lr %g, warmup %lld of %lld steps) differs from "
               "this run's (%s, lr %g, warmup %lld of %lld): the learning rate follows this run's\n",
               lt_lr_schedule_name(m->kind), m->lr, (long long)m->warmup_steps, (long long)m->total_steps,
               lt_lr_schedule_name(s->kind), s->lr, (long long)s->warmup_steps, (long long)s->total_steps);
    return LT_OK;
}

/* Where the run starts: step 0, or the checkpoint resume_from_checkpoint
 * names (`latest`: the newest in output_dir; none there yet: step 0). The
 * base's fingerprint is taken either way: every checkpoint records it. */
static lt_status resume_or_start(const lt_run_config *c, run_state *r, lt_error *err) {
    lt_status st = lt_model_file_fingerprint(c->model, &r->base_bytes, &r->base_fingerprint, err);
    if (st != LT_OK) return st;
    char ck[4096] = "";
    if (c->resume_from_checkpoint[0] &&
        (st = lt_checkpoint_resolve(c->resume_from_checkpoint, c->output_dir, r->lead ? stderr : NULL, ck,
                                    sizeof ck, err)) != LT_OK)
        return st;
    if (c->resume_from_checkpoint[0] && !ck[0]) {
        if (r->lead)
            printf("resume_from_checkpoint %s: no checkpoint in %s yet; starting at step 0\n",
                   c->resume_from_checkpoint, c->output_dir);
    } else if (c->resume_from_checkpoint[0]) {
        if ((st = resume_from(c, r, ck, err)) != LT_OK) return st;
    }
    r->last_saved = r->start;
    return LT_OK;
}

/* ------------------------------------------------------------ start */

/* Rank 0, before the run writes anything: output_dir has room for what
 * the run writes (else an error, before step 1); then the run's start
 * files. The other ranks write nothing. */
static lt_status begin_outputs(const lt_run_config *c, run_state *r, lt_error *err) {
    if (!r->lead) return LT_OK;
    lt_status st = lt_outputs_check_space(c, lt_model_train_table(r->model)->numel, r->start, r->total,
                                          r->dp.size, r->eval != NULL, err);
    if (st != LT_OK) return st;
    return lt_outputs_begin(c, r->start, &r->metrics, err);
}

/* Rank 0: what trains (the model, LoRA or full), the base's storage, the
 * compute kernels, the ranks, the data and the schedule. */
static void print_banner(const lt_run_config *c, const run_state *r) {
    if (!r->lead) return;
    const lt_model_config *mc = lt_model_get_config(r->model);
    const lt_param_table *tab = lt_model_train_table(r->model);
    const int N = r->N, B = r->B, GA = r->GA;
    if (r->full)
        printf("training %s: %d layers, dim %d; full fine-tuning: all %zu parameters train in "
               "fp32%s%s\n", c->model, mc->n_layers, mc->dim, tab->numel,
               r->dp.zero1 ? "; AdamW moments sharded across the ranks (ZeRO-1)" : "",
               c->gradient_checkpointing ? "; gradient checkpointing" : "");
    else
        printf("training %s: %d layers, dim %d; LoRA r %d on %s: %zu trainable parameters%s\n",
               c->model, mc->n_layers, mc->dim, r->lc.r, c->target_modules, tab->numel,
               c->gradient_checkpointing ? "; gradient checkpointing" : "");
    char base[320];
    lt_describe_base(r->model, base, sizeof base);
    printf("base: %s\n", base);
    char compute[320];
    lt_backend_describe(c->device, r->ops, compute, sizeof compute);
    printf("compute: %s\n", compute);
    if (N > 1) {
        const lt_rank_info *ri = lt_comm_info(r->world);
        char th[32] = "all cores";
        if (r->threads) snprintf(th, sizeof th, "%d thread%s", r->threads, r->threads == 1 ? "" : "s");
        printf("data parallel: %d ranks (%s, %s backend), %d per node, %s each; global batch "
               "%d x %d x %d sequences; %d gradient buckets%s\n",
               N, ri->launcher, lt_comm_backend_name(r->world), ri->local_size, th, N, GA, B,
               lt_grad_sync_buckets(r->dp.sync),
               r->dp.gather ? "; base sharded: each rank stores 1/N of every layer" : "");
    }
    printf("data: %zu training sequences of %d tokens (%lld target tokens)%s; %lld steps of %d x %d "
           "sequences, %s schedule, warmup %lld\n",
           lt_dataset_rows(r->train), r->T, (long long)lt_dataset_target_tokens(r->train),
           r->eval ? ", held-out set for eval_loss" : "", (long long)r->total, GA, B * N,
           lt_lr_schedule_name(r->sched.kind), (long long)r->sched.warmup_steps);
    fflush(stdout);
}

/* ------------------------------------------------------------ steps */

/* The evaluation at step, logged by rank 0 (tty: after ending the
 * progress bar's line). A stop signal agreed on during it ends it early,
 * nothing logged, and stops the run there. */
static lt_status evaluate_at(const lt_run_config *c, run_state *r, int64_t step, int tty, lt_error *err) {
    if (!r->eval) return LT_OK;
    double loss;
    int64_t tokens;
    int sig = 0;
    lt_status st = lt_train_evaluate(r->model, r->eval, c->per_device_eval_batch_size,
                                     (size_t)c->max_eval_samples, &r->dp, step, &sig, &loss, &tokens, err);
    if (st != LT_OK) return st;
    if (sig) {
        r->stop_sig = sig;
        r->stopped_at = step;
        r->stopped_in = "evaluation";
        return LT_OK;
    }
    if (!r->lead) return LT_OK;
    if ((st = lt_metrics_write_eval(&r->metrics, step, loss, tokens, err)) != LT_OK) return st;
    if (tty) printf("\n");
    printf("eval at step %lld: eval_loss %.4f (perplexity %.2f) over %lld tokens\n", (long long)step,
           loss, exp(loss), (long long)tokens);
    fflush(stdout);
    return LT_OK;
}

/* The checkpoint of steps_done steps, complete on disk when this returns;
 * r->last_saved is then steps_done. Rank 0 writes a LoRA one (the other
 * ranks only take note); every rank takes part in a full fine-tuning one
 * (with ZeRO-1 each writes its moments through parallel HDF5). */
static lt_status save_checkpoint(const lt_run_config *c, run_state *r, int64_t steps_done, lt_error *err) {
    if (!r->lead && !r->full) {
        r->last_saved = steps_done;
        return LT_OK;
    }
    lt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.global_step = steps_done;
    meta.tokens_seen = r->tokens_seen;
    meta.cursor = lt_loader_cursor(r->loader);
    meta.seed = c->seed;
    meta.world_size = r->dp.size;
    snprintf(meta.base_path, sizeof meta.base_path, "%s", c->model);
    meta.base_bytes = r->base_bytes;
    meta.base_fingerprint = r->base_fingerprint;
    meta.sched = r->sched;
    char *json = lt_run_config_json(c);
    if (!json) return lt_fail(err, LT_ERR_NOMEM, "checkpoint: out of memory");
    char written[4096];
    lt_status st = r->full ? lt_checkpoint_save_full(c->output_dir, r->model, &r->opt, r->dp.comm,
                                                     r->dp.zero1 ? r->dp.shard_begin : NULL, &meta, json,
                                                     c->save_total_limit, written, sizeof written, err)
                           : lt_checkpoint_save(c->output_dir, r->model, &r->opt, &meta, json,
                                                c->save_total_limit, written, sizeof written, err);
    free(json);
    if (st != LT_OK) return st;
    if (r->lead) {
        printf("checkpoint: step %lld saved to %s\n", (long long)steps_done, written);
        fflush(stdout);
    }
    r->last_saved = steps_done;
    return LT_OK;
}

/* Optimizer step step + 1: every rank takes its rows of the step's
 * micro-batches and steps; rank 0 logs the step's line and shows
 * progress. */
static lt_status train_one_step(const lt_run_config *c, run_state *r, int64_t step, lt_error *err) {
    const int B = r->B, T = r->T, GA = r->GA;
    r->dp.global_targets = 0;
    r->dp.first_row = (uint64_t)r->rank * (uint64_t)B;
    for (int g = 0; g < GA; g++) {
        int64_t bt = 0;
        lt_loader_next_part(r->loader, r->rank * B, B, r->inputs + (size_t)g * B * T,
                            r->targets + (size_t)g * B * T, &bt);
        r->dp.global_targets += bt;
    }
    lt_comm_counters before, after, d;
    lt_comm_get_counters(r->world, &before);
    double t0 = lt_now_s();
    lt_step_stats s;
    lt_status st = lt_train_step(r->model, &r->opt, &r->sched, step, c->max_grad_norm, r->inputs, r->targets,
                                 GA, B, T, c->seed, &r->dp, &s, err);
    if (st != LT_OK) return st;
    double dt = lt_now_s() - t0;
    lt_comm_get_counters(r->world, &after);
    lt_comm_step(&after, &before, &d);
    lt_comm_totals_add(&r->comm, &d, &s, dt);
    if (c->ddp_check_replicas && r->N > 1 &&
        (st = lt_dp_check_replicas(&r->dp, lt_model_train_params(r->model), &r->opt, step, err)) != LT_OK)
        return st;
    const double global_tokens = (double)GA * B * T * r->N;
    r->tokens_seen += (int64_t)global_tokens;
    if (!r->lead) return LT_OK;
    const lt_data_cursor cur = lt_loader_cursor(r->loader);
    const lt_metrics_step line = {.step = step + 1,
                                  .epoch = (double)cur.epoch + (double)cur.position / (double)r->rows,
                                  .stats = s,
                                  .tokens_seen = r->tokens_seen,
                                  .tokens_per_s = global_tokens / dt,
                                  .mem_mib = lt_tracked_mib(),
                                  .elapsed_s = lt_now_s() - r->progress.t0,
                                  .ranks = r->N,
                                  .comm = d};
    if ((st = lt_metrics_write_step(&r->metrics, &line, err)) != LT_OK) return st;
    lt_progress_show(&r->progress, step + 1, &s, global_tokens / dt);
    return LT_OK;
}

/* From r->start to r->total: the evaluation of the step the run starts
 * at, the optimizer steps (each evaluating every eval_steps and saving
 * every save_steps), and the final evaluation. Every rank polls the stop
 * signal once loaded, during each evaluation and after each step, and all
 * stop at the same point: r->stop_sig, r->stopped_at and r->stopped_in
 * say where. */
static lt_status run_steps(const lt_run_config *c, run_state *r, lt_error *err) {
    /* The bar is for a single process on a terminal. A launcher's ranks
     * (mpirun's, srun's, even one of them) write to a pseudo-terminal when
     * the job's output is a file: they log lines. */
    const int tty = r->lead && r->N == 1 && !strcmp(lt_comm_info(r->world)->launcher, "single") &&
                    isatty(STDOUT_FILENO) && !c->disable_tqdm;
    const int64_t start = r->start, total = r->total;
    r->stopped_at = start;
    lt_status st = lt_train_agree_on_stop(&r->dp, &r->stop_sig, err);
    if (st != LT_OK) return st;
    if (stopped(r)) r->stopped_in = "loading";
    if (!stopped(r)) {
        /* The evaluation of the step the run starts at: step 0's, or that
         * of a resumed step whose eval_loss line is missing (a run stopped
         * during it). The final step's is the one after the loop. */
        const int at_eval_step = c->eval_steps && start % c->eval_steps == 0 && start < total;
        int eval_first = r->eval && (start == 0 || (at_eval_step && r->lead &&
                                     !lt_metrics_logged(c->output_dir, start, "\"eval_loss\":")));
        if ((st = lead_decides(r, &eval_first, err)) != LT_OK) return st;
        if (eval_first && (st = evaluate_at(c, r, start, 0, err)) != LT_OK) return st;
    }
    r->progress = (lt_progress){.tty = tty, .every = c->logging_steps, .total = total, .t0 = lt_now_s()};
    for (int64_t step = start; !stopped(r) && step < total; step++) {
        if ((st = train_one_step(c, r, step, err)) != LT_OK) return st;
        lt_train_fault_slow("step", step + 1);
        if (c->eval_steps && (step + 1) % c->eval_steps == 0 && step + 1 < total &&
            (st = evaluate_at(c, r, step + 1, tty, err)) != LT_OK)
            return st;
        if (c->save_steps && (step + 1) % c->save_steps == 0 &&
            (st = save_checkpoint(c, r, step + 1, err)) != LT_OK)
            return st;
        if (!stopped(r) && step + 1 < total) {
            if ((st = lt_train_agree_on_stop(&r->dp, &r->stop_sig, err)) != LT_OK) return st;
            if (stopped(r)) r->stopped_at = step + 1;
        }
        if (stopped(r) && tty) printf("\n");
    }
    return stopped(r) ? LT_OK : evaluate_at(c, r, total, 0, err);
}

/* A run stopped with steps since its last checkpoint saves them, so that
 * resuming loses none. */
static lt_status save_at_stop(const lt_run_config *c, run_state *r, lt_error *err) {
    if (!stopped(r) || r->stopped_at == r->last_saved) return LT_OK;
    return save_checkpoint(c, r, r->stopped_at, err);
}

/* ------------------------------------------------------------ finish */

/* Every rank's memory figures to rank 0, which writes memory.json and
 * prints the report. It covers training: it comes before the final save
 * stages the weights. */
static lt_status report_memory(const lt_run_config *c, run_state *r, lt_error *err) {
    lt_rank_memory *mem = calloc((size_t)r->N, sizeof *mem);
    if (!mem) return lt_fail(err, LT_ERR_NOMEM, "memory report: out of memory");
    lt_status st = lt_dp_gather_memory(&r->dp, r->model_bytes_read, mem, err);
    if (st == LT_OK && r->lead) {
        char path[LT_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/memory.json", c->output_dir);
        st = lt_memory_report_write(path, r->model, mem, r->N, err);
        if (st == LT_OK) lt_memory_report_print(stdout, r->model, mem, r->N);
    }
    free(mem);
    return st;
}

/* Rank 0: the line a stopped run ends with: where it stopped, what is
 * saved, and how to continue. */
static void say_stopped(const lt_run_config *c, const run_state *r) {
    const long long start = r->start, total = r->total, at = r->stopped_at;
    if (at == start) {
        printf("stopped by %s %s step %lld of %lld: %s; run again with --resume_from_checkpoint latest "
               "to continue (exit status %d)\n",
               lt_stop_signal_name(r->stop_sig),
               !strcmp(r->stopped_in, "loading") ? "while loading, before" : "during the evaluation at",
               start, total,
               start ? "the checkpoint it started from is complete" : "no step taken, nothing to save",
               LT_EXIT_STOPPED);
    } else {
        char where[96];
        snprintf(where, sizeof where, "%s step %lld of %lld",
                 !r->stopped_in ? "after" : "during the evaluation at", at, total);
        printf("stopped by %s %s: the checkpoint of step %lld in %s is complete; run again with "
               "--resume_from_checkpoint latest to continue (exit status %d)\n",
               lt_stop_signal_name(r->stop_sig), where, at, c->output_dir, LT_EXIT_STOPPED);
    }
    fflush(stdout);
}

/* The end, on every rank: metrics.jsonl closed; a run stopped before its
 * first step says so at once (no report of training); else the memory
 * report, then for a stopped run the line that says how to resume, for a
 * finished one the adapter (or model) and the summary. LT_STOPPED for a
 * stopped run. */
static lt_status finish(const lt_run_config *c, run_state *r, lt_error *err) {
    lt_status st;
    if (r->lead && (st = lt_metrics_close(&r->metrics, err)) != LT_OK) return st;
    if (stopped(r) && r->stopped_at == r->start) {
        if (r->lead) say_stopped(c, r);
        return LT_STOPPED;
    }
    if ((st = report_memory(c, r, err)) != LT_OK) return st;
    if (stopped(r)) {
        if (r->lead) say_stopped(c, r);
        return LT_STOPPED;
    }
    if (!r->lead) return LT_OK;
    st = r->full ? lt_model_save_safetensors(r->model, c->output_dir, err)
                 : lt_adapter_save(r->model, c->output_dir, c->model, err);
    if (st != LT_OK) return st;
    printf("done: %lld steps in %.1f s; %s written to %s/%s\n", (long long)r->total,
           lt_now_s() - r->progress.t0, r->full ? "model" : "adapter", c->output_dir,
           r->full ? "model.safetensors" : "adapter_model.safetensors");
    if (r->N > 1 && r->total > r->start)
        lt_comm_summary_print(&r->comm, &r->dp, r->model);
    return LT_OK;
}

/* ------------------------------------------------------------ lt_train */

lt_status lt_train(const lt_run_config *c, lt_comm *world, lt_error *err) {
    run_state r;
    run_init(&r, c, world);
    /* Until the run has loaded, a stop signal ends the process at once:
     * there is nothing to save yet, and loading a large model can outlast
     * the time a scheduler gives between its signal and SIGKILL. */
    lt_stop_install(r.lead);
    lt_status st = open_run(c, &r, err);
    if (st == LT_OK) st = resume_or_start(c, &r, err);
    if (st != LT_OK || r.finished) goto done;
    lt_train_fault_slow("load", r.start);
    /* Loaded: from here a stop signal is honoured at the next point where
     * every rank can agree on it (an evaluation batch, the end of a step). */
    lt_stop_defer();
    if ((st = begin_outputs(c, &r, err)) != LT_OK) goto done;
    print_banner(c, &r);
    if ((st = run_steps(c, &r, err)) != LT_OK) goto done;
    if ((st = save_at_stop(c, &r, err)) != LT_OK) goto done;
    st = finish(c, &r, err);
done:
    lt_stop_restore();
    run_free(&r, st != LT_OK && st != LT_STOPPED);
    return st;
}
