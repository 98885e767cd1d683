/* AdamW steps on the bundled model against PyTorch (tests/ref/train_torch_ref.py:
 * torch.optim.AdamW, LambdaLR with Hugging Face's cosine-with-warmup
 * formula, clip_grad_norm_, gradient accumulation with token-level
 * normalisation), through loratrain's own lt_train_step.
 *
 *   test_train_parity gen MODEL DATA CASE.ltt [full]
 *   test_train_parity check MODEL CASE.ltt REF64.ltt REF32.ltt
 *
 * Two cases. The case file says which (mode.full), and check reads its
 * hyperparameters from it.
 *
 * LoRA (gen without "full"): ten steps of the r = 4 adapters on every
 * linear. Bounds: every step's loss within 1e-5 relative of float64
 * PyTorch; the learning rate exactly PyTorch's (to float); the pre-clip
 * gradient norm within 1e-5 relative; every final LoRA tensor within 1e-5
 * of float64 PyTorch in relative L2 norm (||ours - ref|| / ||ref||).
 * The element-wise maximum is printed, not asserted: Adam divides each
 * gradient by its own running RMS, so entries with near-zero gradients move
 * by full-size steps whose sign is set by rounding noise. PyTorch float32
 * itself lands 1.5e-5 from float64 by that measure, and two builds of this
 * code (release, ASan at -O2) land 2.5e-5 and 5.1e-5: it measures the
 * noise, not the implementation. A wrong step (weight decay, schedule,
 * normalisation) moves the L2 error far above 1e-5: weight decay 10% off
 * gives 1e-4 (weight_decay is 0.1 here so that decay matters).
 *
 * Full fine-tuning (gen ... full): lt_model_enable_full_training, every
 * weight of the fp32 base trained (the embedding tied to the classifier, as
 * stories260K.bin stores it: one tensor, gradients from both uses); the
 * reference trains every parameter of its model the same way, in one AdamW
 * group (decay on every weight, as one flat buffer here). Four steps, GA 2,
 * cosine with one warmup step, weight_decay 0.1, max_grad_norm 9 between
 * the steps' norms (11.5, 10.2, 8.4, 5.2) so that steps 1-2 clip and 3-4 do
 * not (asserted: some clip, some not). Bounds, from the float32-vs-float64
 * PyTorch spread:
 *  - loss and pre-clip gradient norm within FULL_STEP_TOL = 2e-6 relative
 *    every step: PyTorch float32 lands at most 1.8e-7 / 2.9e-7 from float64
 *    (1, 2 and 4 torch threads), this code 7.7e-8 / 2e-7 (the ASan build
 *    8.7e-8 / 4.3e-7). Weight decay 10% off moves them by 1.8e-5 / 1.1e-4.
 *    The lr exactly PyTorch's.
 *  - every one of the 47 tensors compared by the error of its update,
 *    ||ours - ref|| / ||ref - w0|| with w0 the weights before training (the
 *    weights themselves barely move in four steps: ||ours - ref|| / ||ref||
 *    is 1.4e-7 and would hide an update wrong by a percent). That error is
 *    float32 rounding of weights that move by a small fraction of their
 *    size (~2e-3 per element): for every tensor, PyTorch float32's and
 *    ours are both 2-7x the error of rounding the float64 result to float
 *    once (printed), from 4e-6 (v_proj) to 7e-5 (the 64-element norm
 *    weights, |w| ~ 1). So the bound is relative to PyTorch float32's
 *    error on the same tensor: ours <= FULL_UPDATE_RATIO = 3x it. Measured
 *    ratio 0.84-1.51 over the 47 tensors (torch threads 1, 2, 4; the ASan
 *    build at most 1.68, the o_proj weights the highest in both). Weight
 *    decay 10% off gives ratios 156-286 on every tensor, no weight decay
 *    1800-5300; the classifier's gradient missing from the tied embedding
 *    fails every step's gradient norm by 0.8% and more.
 * The element-wise maximum is printed, not asserted, as for LoRA.
 * Then the same case once more with gradient checkpointing on: losses,
 * gradient norms and every final weight must be bitwise those of the run
 * without it (the recomputed forward is the same arithmetic), with fewer
 * activation bytes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "io/data/dataset.h"
#include "io/data/loader.h"
#include "io/model/llama2c.h"
#include "io/text/tokenizer.h"
#include "launch/trainer.h"
#include "model/cpu/cpu.h"
#include "tests/lib/backend_env.h"
#include "tests/lib/check.h"
#include "tests/lib/tensorfile.h"

enum { GA = 2, B = 2, T = 48 };

typedef struct {
    int full;  /* mode.full */
    int steps; /* S */
    double lr, beta1, beta2, eps, wd, max_norm;
    int kind, warmup, total;
} run_cfg;

/* The LoRA case as it has always been; the full fine-tuning case. */
static const run_cfg LORA_CASE = {0, 10, 2e-3, 0.9, 0.95, 1e-8, 0.1, 0.5, 3 /* cosine */, 3, 10};
static const run_cfg FULL_CASE = {1, 4, 1e-3, 0.9, 0.95, 1e-8, 0.1, 9.0, 3, 1, 4};
/* Full fine-tuning bounds (the comment at the top says why). */
static const double FULL_STEP_TOL = 2e-6;   /* loss and gradient norm, relative, every step */
static const double FULL_UPDATE_RATIO = 3.0; /* update error / PyTorch float32's, every tensor */

static const lt_lora_config LORA_CFG = {.r = 4, .alpha = 8, .dropout = 0, .use_rslora = 0,
                                        .targets = LT_MOD_MASK_ALL};

/* The reference's name of a trained tensor: LoRA "model.layers.0.self_attn.
 * q_proj.lora_A.weight" -> "layers.0.self_attn.q_proj.lora_A"; full
 * "model.layers.0.mlp.up_proj.weight" -> "layers.0.mlp.up_proj.weight",
 * "lm_head.weight" stays. */
static void ref_name(const char *table_name, int full, char *out, size_t cap) {
    const char *n = strncmp(table_name, "model.", 6) ? table_name : table_name + 6;
    if (full)
        snprintf(out, cap, "%s", n);
    else
        snprintf(out, cap, "%.*s", (int)(strlen(n) - strlen(".weight")), n);
}

static int gen(const char *model_path, const char *data_path, const char *out, const run_cfg *rc) {
    lt_error err;
    lt_model *m = NULL;
    CHECK_OK(lt_llama2c_load(model_path, lt_ops_cpu(1), &m, &err), &err);
    if (!rc->full) CHECK_OK(lt_model_add_lora(m, &LORA_CFG, 1, &err), &err);
    /* Real text through the real loader, with some targets masked so the
     * token-level normalisation across micro-batches matters. */
    char tok_path[4096];
    snprintf(tok_path, sizeof tok_path, "%.4000s", model_path);
    char *slash = strrchr(tok_path, '/');
    snprintf(slash ? slash + 1 : tok_path, 64, "tok512.bin");
    lt_tokenizer *tok = NULL;
    CHECK_OK(lt_tokenizer_load_llama2c(tok_path, 512, &tok, &err), &err);
    lt_data_config dc = lt_data_config_defaults();
    dc.seq_len = T;
    lt_dataset *ds = NULL;
    CHECK_OK(lt_dataset_load(data_path, tok, 512, &dc, &ds, NULL, &err), &err);
    lt_loader *ld = NULL;
    CHECK_OK(lt_loader_create(ds, B, 7, 1, &ld, &err), &err);
    const int S = rc->steps;
    const size_t n_tok = (size_t)S * GA * B * T;
    int32_t *tokens = malloc(n_tok * sizeof *tokens), *targets = malloc(n_tok * sizeof *targets);
    CHECK(tokens && targets, "out of memory");
    if (!tokens || !targets) return check_exit_code();
    for (int i = 0; i < S * GA; i++) lt_loader_next(ld, tokens + i * B * T, targets + i * B * T);
    for (size_t i = 0; i < n_tok; i += 7) targets[i] = LT_IGNORE_INDEX;
    tf_archive a;
    tf_init(&a);
    int64_t one = 1, dims[4] = {S, GA, B, T};
    int32_t kind = rc->kind, warm = rc->warmup, total = rc->total;
    if (rc->full) {
        /* The reference reads the base weights from the same model file. */
        int32_t full = 1;
        tf_add(&a, "mode.full", TF_I32, 1, &one, &full);
    } else {
        int32_t r = LORA_CFG.r, rs = 0;
        double alpha = LORA_CFG.alpha;
        tf_add(&a, "lora.r", TF_I32, 1, &one, &r);
        tf_add(&a, "lora.alpha", TF_F64, 1, &one, &alpha);
        tf_add(&a, "lora.use_rslora", TF_I32, 1, &one, &rs);
    }
    tf_add(&a, "tokens", TF_I32, 4, dims, tokens);
    tf_add(&a, "targets", TF_I32, 4, dims, targets);
    tf_add(&a, "opt.lr", TF_F64, 1, &one, &rc->lr);
    tf_add(&a, "opt.beta1", TF_F64, 1, &one, &rc->beta1);
    tf_add(&a, "opt.beta2", TF_F64, 1, &one, &rc->beta2);
    tf_add(&a, "opt.eps", TF_F64, 1, &one, &rc->eps);
    tf_add(&a, "opt.weight_decay", TF_F64, 1, &one, &rc->wd);
    tf_add(&a, "opt.max_grad_norm", TF_F64, 1, &one, &rc->max_norm);
    tf_add(&a, "sched.kind", TF_I32, 1, &one, &kind);
    tf_add(&a, "sched.warmup_steps", TF_I32, 1, &one, &warm);
    tf_add(&a, "sched.total_steps", TF_I32, 1, &one, &total);
    if (!rc->full) {
        const lt_param_table *tab = lt_model_lora_table(m);
        for (int i = 0; i < tab->count; i++) {
            char name[160];
            ref_name(tab->t[i].name, 0, name, sizeof name);
            int64_t d2[2] = {tab->t[i].rows, tab->t[i].cols};
            tf_add(&a, name, TF_F32, 2, d2, lt_model_lora_params(m) + tab->t[i].offset);
        }
    }
    CHECK(tf_write(&a, out) == 0, "cannot write %s", out);
    tf_free(&a);
    free(tokens);
    free(targets);
    lt_loader_free(ld);
    lt_dataset_free(ds);
    lt_tokenizer_free(tok);
    lt_model_free(m);
    return check_exit_code();
}

/* A scalar of the case; 0 and a failure when absent. */
static double case_scalar(const tf_archive *c, const char *name) {
    const tf_tensor *t = tf_get(c, name);
    CHECK(t && t->numel == 1, "case lacks %s", name);
    if (!t || t->numel != 1) return 0;
    if (t->dtype == TF_I32) return *(const int32_t *)t->data;
    if (t->dtype == TF_F64) return *(const double *)t->data;
    return *(const float *)t->data;
}

typedef struct {
    double loss, norm;
    float lr;
} step_out;

/* Loads the model, sets it up as the case says (LoRA from the case's
 * tensors, or full fine-tuning), and runs the case's steps. */
static lt_model *train(const char *model_path, const tf_archive *c, const run_cfg *rc, int checkpointing,
                       step_out *outs) {
    lt_error err;
    lt_model *m = NULL;
    const lt_ops *ops = test_backend(1);
    CHECK(ops != NULL, "no backend");
    if (!ops) return NULL;
    if (lt_llama2c_load(model_path, ops, &m, &err) != LT_OK) {
        CHECK(0, "%s", err.msg);
        return NULL;
    }
    lt_status st =
        rc->full ? lt_model_enable_full_training(m, &err) : lt_model_add_lora(m, &LORA_CFG, 0, &err);
    CHECK(st == LT_OK, "%s: %s", rc->full ? "lt_model_enable_full_training" : "lt_model_add_lora", err.msg);
    if (st != LT_OK) return lt_model_free(m), NULL;
    CHECK(lt_model_is_full_training(m) == rc->full, "lt_model_is_full_training is %d",
          lt_model_is_full_training(m));
    lt_model_set_gradient_checkpointing(m, checkpointing);
    const lt_param_table *tab = lt_model_train_table(m);
    if (!rc->full) {
        float *p = test_download(ops, lt_model_train_params(m), tab->numel);
        for (int i = 0; i < tab->count; i++) {
            char name[160];
            ref_name(tab->t[i].name, 0, name, sizeof name);
            const tf_tensor *t = tf_get(c, name);
            CHECK(t && t->numel == (int64_t)lt_tensor_numel(&tab->t[i]), "case lacks %s", name);
            if (t) memcpy(p + tab->t[i].offset, t->data, (size_t)t->numel * sizeof(float));
        }
        test_upload(ops, lt_model_train_params(m), p, tab->numel);
        free(p);
    }
    lt_adamw opt;
    lt_adamw_config ac = {.beta1 = (float)rc->beta1, .beta2 = (float)rc->beta2, .eps = (float)rc->eps,
                          .weight_decay = (float)rc->wd};
    if (lt_adamw_init(&opt, tab->numel, &ac, &err) != LT_OK) {
        CHECK(0, "lt_adamw_init: %s", err.msg);
        return lt_model_free(m), NULL;
    }
    lt_lr_schedule sched = {.kind = (lt_sched_kind)rc->kind, .lr = rc->lr, .warmup_steps = rc->warmup,
                            .total_steps = rc->total};
    const int32_t *tokens = tf_get(c, "tokens")->data, *targets = tf_get(c, "targets")->data;
    for (int s = 0; s < rc->steps; s++) {
        lt_step_stats stt;
        st = lt_train_step(m, &opt, &sched, s, (float)rc->max_norm, tokens + (size_t)s * GA * B * T,
                           targets + (size_t)s * GA * B * T, GA, B, T, 0, NULL, &stt, &err);
        CHECK(st == LT_OK, "step %d: %s", s + 1, err.msg);
        if (st != LT_OK) {
            lt_adamw_free(&opt);
            return lt_model_free(m), NULL;
        }
        outs[s] = (step_out){stt.loss, stt.grad_norm, stt.lr};
    }
    lt_adamw_free(&opt);
    return m;
}

static int check(const char *model_path, const char *case_path, const char *r64_path,
                 const char *r32_path) {
    lt_error err;
    tf_archive c, r64, r32;
    CHECK(tf_read(&c, case_path) == 0 && tf_read(&r64, r64_path) == 0 && tf_read(&r32, r32_path) == 0,
          "cannot read the case or the references");
    if (check_failures_) return check_exit_code();
    const tf_tensor *tt = tf_get(&c, "tokens");
    const tf_tensor *tg = tf_get(&c, "targets");
    CHECK(tt && tg && tt->ndim == 4 && tt->dims[1] == GA && tt->dims[2] == B && tt->dims[3] == T &&
              tg->numel == tt->numel,
          "case tokens/targets: expected [S, %d, %d, %d]", GA, B, T);
    if (check_failures_) return check_exit_code();
    run_cfg rc = {
        .full = tf_get(&c, "mode.full") ? (int)case_scalar(&c, "mode.full") : 0,
        .steps = (int)tt->dims[0],
        .lr = case_scalar(&c, "opt.lr"),
        .beta1 = case_scalar(&c, "opt.beta1"),
        .beta2 = case_scalar(&c, "opt.beta2"),
        .eps = case_scalar(&c, "opt.eps"),
        .wd = case_scalar(&c, "opt.weight_decay"),
        .max_norm = case_scalar(&c, "opt.max_grad_norm"),
        .kind = (int)case_scalar(&c, "sched.kind"),
        .warmup = (int)case_scalar(&c, "sched.warmup_steps"),
        .total = (int)case_scalar(&c, "sched.total_steps"),
    };
    const int S = rc.steps;
    const tf_tensor *rl_t = tf_get(&r64, "loss"), *rn_t = tf_get(&r64, "grad_norm");
    const tf_tensor *rlr_t = tf_get(&r64, "lr");
    const tf_tensor *ql_t = tf_get(&r32, "loss"), *qn_t = tf_get(&r32, "grad_norm");
    CHECK(rl_t && rn_t && rlr_t && ql_t && qn_t && rl_t->numel == S && rn_t->numel == S &&
              rlr_t->numel == S && ql_t->numel == S && qn_t->numel == S,
          "references lack loss / grad_norm / lr for %d steps", S);
    if (check_failures_) return check_exit_code();
    const double *rl = rl_t->data, *rn = rn_t->data, *rlr = rlr_t->data, *ql = ql_t->data, *qn = qn_t->data;

    /* Full fine-tuning: the weights before training, the model file's. */
    float *w0 = NULL;
    size_t w0_numel = 0;
    int w0_count = 0;
    if (rc.full) {
        lt_model *m0 = NULL;
        CHECK_OK(lt_llama2c_load(model_path, lt_ops_cpu(1), &m0, &err), &err);
        const lt_param_table *tab0 = lt_model_base_table(m0);
        w0_numel = tab0->numel;
        w0_count = tab0->count;
        w0 = malloc(w0_numel * sizeof *w0);
        CHECK(w0 != NULL, "out of memory");
        if (w0) memcpy(w0, lt_model_base(m0), w0_numel * sizeof *w0);
        lt_model_free(m0);
        if (!w0) return check_exit_code();
    }
    step_out *outs = calloc((size_t)S, sizeof *outs);

    lt_model *m = train(model_path, &c, &rc, 0, outs);
    if (!m) return check_exit_code();
    const lt_param_table *tab = lt_model_train_table(m);
    CHECK(!rc.full || (tab->numel == w0_numel && tab->count == w0_count),
          "full fine-tuning trains %d tensors (%zu values) of the base's %d (%zu)", tab->count, tab->numel,
          w0_count, w0_numel);
    if (check_failures_) return check_exit_code();
    printf("%s: %d steps, GA %d, B %d, T %d\n", rc.full ? "full fine-tuning" : "LoRA", S, GA, B, T);
    const double step_tol = rc.full ? FULL_STEP_TOL : 1e-5;
    double worst_loss = 0, worst_norm = 0, gap_loss = 0, gap_norm = 0;
    int clipped = 0;
    for (int s = 0; s < S; s++) {
        const step_out *st = &outs[s];
        double el = fabs(st->loss - rl[s]) / fabs(rl[s]), en = fabs(st->norm - rn[s]) / fabs(rn[s]);
        CHECK(el <= step_tol, "step %d: loss %.9g vs PyTorch %.9g (relative %.3g, bound %g)", s + 1, st->loss,
              rl[s], el, step_tol);
        CHECK(en <= step_tol, "step %d: gradient norm %.9g vs PyTorch %.9g (relative %.3g, bound %g)", s + 1,
              st->norm, rn[s], en, step_tol);
        CHECK(st->lr == (float)rlr[s], "step %d: lr %.9g vs PyTorch %.9g", s + 1, (double)st->lr, rlr[s]);
        worst_loss = fmax(worst_loss, el);
        worst_norm = fmax(worst_norm, en);
        gap_loss = fmax(gap_loss, fabs(ql[s] - rl[s]) / fabs(rl[s]));
        gap_norm = fmax(gap_norm, fabs(qn[s] - rn[s]) / fabs(rn[s]));
        clipped += rn[s] > rc.max_norm;
        printf("step %2d  loss %.7f (torch %.7f)  grad_norm %.6f (torch %.6f)%s  lr %.3e\n", s + 1, st->loss,
               rl[s], st->norm, rn[s], rn[s] > rc.max_norm ? " clipped" : "", (double)st->lr);
    }
    const lt_ops *ops = lt_model_get_ops(m);
    /* the activations' space: device memory on a GPU backend */
    const lt_mem_space space = strcmp(ops->name, "cpu") ? LT_SPACE_DEVICE : LT_SPACE_HOST;
    float *p = test_download(ops, lt_model_train_params(m), tab->numel);
    double worst = 0, torch_gap = 0, worst_l2 = 0, gap_l2 = 0;
    double worst_up = 0, gap_up = 0, worst_ratio = 0, ratio_floor = 0, ratio_floor32 = 0;
    const char *worst_name = "", *worst_up_name = "", *worst_ratio_name = "";
    for (int i = 0; i < tab->count; i++) {
        char name[160];
        ref_name(tab->t[i].name, rc.full, name, sizeof name);
        const tf_tensor *a64 = tf_get(&r64, name), *a32 = tf_get(&r32, name);
        size_t k = lt_tensor_numel(&tab->t[i]);
        CHECK(a64 && a32 && a64->numel == (int64_t)k && a32->numel == (int64_t)k, "references lack %s", name);
        if (!a64 || !a32) continue;
        const double *x64 = a64->data, *x32 = a32->data;
        const float *init = w0 ? w0 + tab->t[i].offset : NULL;
        double d = 0, g = 0, mx = 0, d2 = 0, g2 = 0, r2 = 0, u2 = 0, f2 = 0;
        for (size_t j = 0; j < k; j++) {
            double dj = (double)p[tab->t[i].offset + j] - x64[j], gj = x32[j] - x64[j];
            d = fmax(d, fabs(dj));
            g = fmax(g, fabs(gj));
            mx = fmax(mx, fabs(x64[j]));
            d2 += dj * dj, g2 += gj * gj, r2 += x64[j] * x64[j];
            if (init) u2 += (x64[j] - init[j]) * (x64[j] - init[j]);
            double fj = (double)(float)x64[j] - x64[j]; /* rounding the exact result to float */
            f2 += fj * fj;
        }
        if (d / mx > worst) worst_name = tab->t[i].name;
        worst = fmax(worst, d / mx);
        torch_gap = fmax(torch_gap, g / mx);
        worst_l2 = fmax(worst_l2, sqrt(d2 / r2));
        gap_l2 = fmax(gap_l2, sqrt(g2 / r2));
        if (init) {
            /* the update's error, ||ours - ref|| / ||ref - w0||, against
             * PyTorch float32's own, and both against rounding the float64
             * result to float once */
            CHECK(u2 > 0 && g2 > 0,
                  "%s: the reference did not move it, or float32 PyTorch matched it exactly", name);
            if (!(u2 > 0 && g2 > 0)) continue;
            double eu = sqrt(d2 / u2), gu = sqrt(g2 / u2), fu = sqrt(f2 / u2);
            CHECK(eu <= FULL_UPDATE_RATIO * gu,
                  "%s: its update differs from PyTorch's by %.3g relative (L2), %.2fx PyTorch float32's %.3g "
                  "(bound %gx; rounding the float64 result to float alone: %.3g)",
                  name, eu, eu / gu, gu, FULL_UPDATE_RATIO, fu);
            if (getenv("LT_DIAG"))
                printf("  %-45s %6zu  update error %.3g  PyTorch float32 %.3g  ratio %.2f  "
                       "one rounding %.3g\n", name, k, eu, gu, eu / gu, fu);
            if (eu > worst_up) worst_up_name = tab->t[i].name;
            if (eu / gu > worst_ratio) worst_ratio_name = tab->t[i].name;
            worst_up = fmax(worst_up, eu);
            gap_up = fmax(gap_up, gu);
            worst_ratio = fmax(worst_ratio, eu / gu);
            ratio_floor = fmax(ratio_floor, eu / fu);
            ratio_floor32 = fmax(ratio_floor32, gu / fu);
        }
    }
    printf("losses within %.2g (PyTorch float32: %.2g), gradient norms within %.2g (PyTorch float32: %.2g) "
           "(relative)\n", worst_loss, gap_loss, worst_norm, gap_norm);
    printf("final %s: relative L2 error %.3g (PyTorch float32: %.3g%s), element-wise max |diff| / max "
           "|ref| %.3g (PyTorch float32: %.3g; worst tensor %s)\n",
           rc.full ? "weights" : "adapters", worst_l2, gap_l2, rc.full ? "" : "; bound 1e-5", worst,
           torch_gap, worst_name);
    if (rc.full) {
        int n_ref = 0;
        for (int i = 0; i < r64.n; i++)
            n_ref += strcmp(r64.t[i].name, "loss") && strcmp(r64.t[i].name, "grad_norm") &&
                     strcmp(r64.t[i].name, "lr");
        CHECK(n_ref == tab->count, "the reference trained %d tensors, this model %d", n_ref, tab->count);
        printf("updates (w - w0) of all %d tensors: worst relative L2 error %.3g (%s; PyTorch float32 worst "
               "%.3g); worst ratio to PyTorch float32's error on the same tensor %.2f (bound %g; %s); "
               "at most %.2fx (PyTorch float32: %.2fx) the error of rounding the float64 result to float "
               "once\n",
               tab->count, worst_up, worst_up_name, gap_up, worst_ratio, FULL_UPDATE_RATIO, worst_ratio_name,
               ratio_floor, ratio_floor32);
        CHECK(clipped > 0 && clipped < S,
              "clipping acted in %d of %d steps: the case should clip some, not all", clipped, S);
        CHECK(rc.wd > 0, "the case has no weight decay");
    } else {
        CHECK(worst_l2 <= 1e-5, "final LoRA parameters: relative L2 error %g exceeds 1e-5", worst_l2);
    }
    CHECK(rl[S - 1] < rl[0], "the reference loss did not fall: the case trains nothing");

    if (rc.full) {
        /* Gradient checkpointing changes what is stored, not what is computed. */
        lt_mem_stats ms;
        lt_mem_get_stats(&ms);
        const uint64_t act_plain = ms.current[space][LT_MEM_ACTIVATIONS];
        step_out *gc = calloc((size_t)S, sizeof *gc);
        lt_model *mg = train(model_path, &c, &rc, 1, gc);
        if (mg) {
            CHECK(lt_model_gradient_checkpointing(mg) == 1, "gradient checkpointing did not switch on");
            lt_mem_get_stats(&ms);
            const uint64_t act_gc = ms.current[space][LT_MEM_ACTIVATIONS] - act_plain;
            CHECK(act_gc < act_plain, "activations with gradient checkpointing %llu bytes, without %llu",
                  (unsigned long long)act_gc, (unsigned long long)act_plain);
            for (int s = 0; s < S; s++) {
                CHECK(memcmp(&gc[s].loss, &outs[s].loss, sizeof(double)) == 0,
                      "step %d: loss with gradient checkpointing %.17g, without %.17g", s + 1, gc[s].loss,
                      outs[s].loss);
                CHECK(memcmp(&gc[s].norm, &outs[s].norm, sizeof(double)) == 0,
                      "step %d: gradient norm with gradient checkpointing %.17g, without %.17g", s + 1,
                      gc[s].norm, outs[s].norm);
                CHECK(gc[s].lr == outs[s].lr, "step %d: lr differs with gradient checkpointing", s + 1);
            }
            float *pg = test_download(ops, lt_model_train_params(mg), tab->numel);
            size_t differ = 0;
            for (size_t j = 0; j < tab->numel; j++) differ += memcmp(&pg[j], &p[j], sizeof(float)) != 0;
            CHECK(lt_model_train_table(mg)->numel == tab->numel && differ == 0,
                  "gradient checkpointing: %zu of %zu final weights differ from the run without it", differ,
                  tab->numel);
            printf("gradient checkpointing (activations %llu bytes instead of %llu): losses, gradient "
                   "norms of %d steps and %zu of %zu final weights bitwise identical to the run without it\n",
                   (unsigned long long)act_gc, (unsigned long long)act_plain, S, tab->numel - differ,
                   tab->numel);
            free(pg);
            lt_model_free(mg);
        }
        free(gc);
    }
    free(p);
    free(outs);
    free(w0);
    tf_free(&c);
    tf_free(&r64);
    tf_free(&r32);
    lt_model_free(m);
    return check_exit_code();
}

int main(int argc, char **argv) {
    if ((argc == 5 || (argc == 6 && !strcmp(argv[5], "full"))) && !strcmp(argv[1], "gen"))
        return gen(argv[2], argv[3], argv[4], argc == 6 ? &FULL_CASE : &LORA_CASE);
    if (argc == 6 && !strcmp(argv[1], "check")) return check(argv[2], argv[3], argv[4], argv[5]);
    fprintf(stderr, "usage: %s gen MODEL DATA CASE [full] | check MODEL CASE REF64 REF32\n", argv[0]);
    return 2;
}
