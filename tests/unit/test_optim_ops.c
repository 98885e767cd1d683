/* The optimizer's ops of the backends (model/ops.h: sumsq, scale, adamw)
 * against optim/'s host functions, and the trainer's buffers reached only
 * through the backend's ops.
 *
 *   test_optim_ops MODEL WORKDIR     (one process, or several under mpirun)
 *
 * - The CPU backend's adamw op gives lt_adamw_step's bits (p, m, v) step
 *   after step, over configurations (decay, betas 0), sizes (every vector
 *   tail) and learning rates including 0.
 * - The step's scalars and the element update give the bits of torch's
 *   order with every operation rounded on its own (volatile temporaries,
 *   which no FMA can fuse): the -ffp-contract=off builds of optim/adamw.c
 *   and core/optim_math.c.
 * - sumsq is lt_grad_sumsq bit for bit (every tail of the 8 lanes; inf,
 *   NaN); lt_clip_grad_coef + scale is lt_clip_grad_norm(_total) bit for
 *   bit above, at and below max_norm, with max_norm <= 0, non-finite.
 * - Moments: lt_adamw_init_in allocates through the given allocator (its
 *   category and sizes, zeroed), frees through it, and cleans up after a
 *   refused allocation; lt_train_optimizer_init allocates through the ops.
 * - lt_train_step (norm, clipping and AdamW as ops) gives the bits of the
 *   same step through lt_clip_grad_norm and lt_adamw_step on a second copy
 *   of the bundled model: LoRA with dropout, and full fine-tuning, with
 *   the clip active.
 * - Checkpoints through the ops: a backend whose memory holds every float
 *   byte-reversed (a device the host cannot read directly) saves LoRA and
 *   full checkpoints (ZeRO-1 shards when run on several ranks, one shard
 *   boundary inside a rotary tensor on 3) that load on the CPU backend
 *   with exactly the uploaded values, and back into itself. */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/optim_math.h"
#include "core/rng.h"
#include "dist/comm.h"
#include "io/checkpoint/checkpoint.h"
#include "io/fileutil.h"
#include "io/model/llama2c.h"
#include "launch/data_parallel.h"
#include "launch/trainer.h"
#include "model/cpu/cpu.h"
#include "optim/adamw.h"
#include "optim/grad_clip.h"
#include "optim/lr_schedule.h"
#include "tests/lib/check.h"

static int g_rank, g_size;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_optim_ops: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float urand(lt_rng *r) { return 2.0f * lt_rng_next_uniform(r) - 1.0f; }

static int same_bits(const float *a, const float *b, size_t n) {
    return n == 0 || memcmp(a, b, n * sizeof(float)) == 0;
}

static size_t first_diff(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) return i;
    return n;
}

/* --------------------------------------------------------- AdamW op */

static const lt_adamw_config k_cfgs[] = {
    {0.9f, 0.999f, 1e-8f, 0.0f},  /* Hugging Face's defaults */
    {0.9f, 0.99f, 1e-6f, 0.05f},  /* decay */
    {0.0f, 0.0f, 1e-3f, 0.1f},    /* betas 0: the moments are the last gradient */
    {0.85f, 0.9999f, 1e-8f, 0.01f},
};

static void test_adamw_op(const lt_ops *ops) {
    const size_t sizes[] = {1, 7, 15, 16, 17, 1000, 4099};
    lt_rng rng;
    lt_rng_seed(&rng, 21, 0);
    int compared = 0;
    for (size_t ci = 0; ci < sizeof k_cfgs / sizeof k_cfgs[0]; ci++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            const size_t n = sizes[k];
            float *p = xmalloc(n * sizeof(float)), *q = xmalloc(n * sizeof(float));
            float *g = xmalloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) p[i] = q[i] = urand(&rng);
            lt_error err;
            lt_adamw host, dev;
            lt_status st = lt_adamw_init(&host, n, &k_cfgs[ci], &err);
            CHECK(st == LT_OK, "lt_adamw_init: %s", err.msg);
            lt_status st2 = lt_train_optimizer_init(&dev, ops, n, &k_cfgs[ci], &err);
            CHECK(st2 == LT_OK, "lt_train_optimizer_init: %s", err.msg);
            if (st != LT_OK || st2 != LT_OK) exit(1);
            for (int s = 0; s < 40; s++) {
                for (size_t i = 0; i < n; i++)
                    g[i] = (i % 11 == 4) ? 0.0f : (i % 5 == 2 ? 1e-5f : 1.0f) * urand(&rng);
                const float lr = s == 0 ? 0.0f : 1e-3f * (float)(1 + s % 7);
                lt_adamw_step(&host, p, g, lr);
                const lt_adamw_scalars sc = lt_adamw_next(&dev, lr);
                ops->adamw(ops, q, g, dev.m, dev.v, n, &sc);
                const size_t dp = first_diff(p, q, n), dm = first_diff(host.m, dev.m, n),
                             dv = first_diff(host.v, dev.v, n);
                if (dp < n || dm < n || dv < n) {
                    CHECK(0, "config %zu, n %zu, step %d: the adamw op differs from lt_adamw_step "
                          "(first difference of p at %zu, m at %zu, v at %zu; n means none)",
                          ci, n, s + 1, dp, dm, dv);
                    break;
                }
                compared++;
            }
            CHECK(host.step == 40 && dev.step == 40, "steps counted %lld and %lld, expected 40",
                  (long long)host.step, (long long)dev.step);
            lt_adamw_free(&host);
            lt_adamw_free(&dev);
            free(p);
            free(q);
            free(g);
        }
    printf("adamw op: %d steps bitwise lt_adamw_step's (4 configs, 7 sizes)\n", compared);
}

/* torch's AdamW step with every operation rounded on its own: each
 * intermediate goes through a volatile, which no compiler may fuse with
 * the next operation. */
static void ref_step(const lt_adamw_config *c, int64_t t, float lr, float *p, float *m, float *v,
                     const float *g, size_t n) {
    volatile double dt = (double)t, b1t = pow((double)c->beta1, dt), b2t = pow((double)c->beta2, dt);
    volatile double bc1 = 1.0 - b1t, bc2 = 1.0 - b2t;
    volatile double lrwd = (double)lr * (double)c->weight_decay;
    volatile float decay = (float)(1.0 - lrwd);
    volatile float omb1 = (float)(1.0 - (double)c->beta1), omb2 = (float)(1.0 - (double)c->beta2);
    volatile float neg_step = (float)(-(double)lr / bc1);
    volatile float bc2_sqrt = (float)sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        volatile float a = m[i] * c->beta1, b = omb1 * g[i];
        volatile float mi = a + b;
        volatile float cc = omb2 * g[i];
        volatile float d = cc * g[i], e = v[i] * c->beta2;
        volatile float vi = e + d;
        volatile float r = sqrtf(vi);
        volatile float q = r / bc2_sqrt;
        volatile float den = q + c->eps;
        volatile float pd = p[i] * decay, num = neg_step * mi;
        volatile float upd = num / den;
        m[i] = mi;
        v[i] = vi;
        p[i] = pd + upd;
    }
}

static void test_adamw_roundings(void) {
    const size_t n = 4099;
    lt_rng rng;
    lt_rng_seed(&rng, 22, 0);
    float *p = xmalloc(n * sizeof(float)), *q = xmalloc(n * sizeof(float));
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float)), *g = xmalloc(n * sizeof(float));
    if (!m || !v) exit(1);
    int steps = 0;
    for (size_t ci = 0; ci < sizeof k_cfgs / sizeof k_cfgs[0]; ci++) {
        for (size_t i = 0; i < n; i++) p[i] = q[i] = urand(&rng), m[i] = v[i] = 0.0f;
        lt_adamw opt;
        lt_error err;
        if (lt_adamw_init(&opt, n, &k_cfgs[ci], &err) != LT_OK) {
            CHECK(0, "lt_adamw_init: %s", err.msg);
            break;
        }
        for (int s = 1; s <= 25; s++) {
            for (size_t i = 0; i < n; i++) g[i] = (i % 7 == 1 ? 1e-4f : 1.0f) * urand(&rng);
            const float lr = 3e-3f / (float)s;
            lt_adamw_step(&opt, p, g, lr);
            ref_step(&k_cfgs[ci], s, lr, q, m, v, g, n);
            if (!same_bits(p, q, n) || !same_bits(opt.m, m, n) || !same_bits(opt.v, v, n)) {
                size_t i = first_diff(p, q, n);
                CHECK(0, "config %zu step %d: lt_adamw_step differs from torch's order with every "
                      "operation rounded (FMA contraction?); first at %zu: %.9g vs %.9g",
                      ci, s, i, i < n ? (double)p[i] : 0.0, i < n ? (double)q[i] : 0.0);
                break;
            }
            steps++;
        }
        lt_adamw_free(&opt);
    }
    printf("adamw roundings: %d steps of 4099 elements bitwise torch's order, no fused operation\n", steps);
    free(p);
    free(q);
    free(m);
    free(v);
    free(g);
}

/* ------------------------------------------------ sumsq and clipping */

static void test_sumsq_scale(const lt_ops *ops) {
    const size_t sizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 23, 1000, 100003};
    lt_rng rng;
    lt_rng_seed(&rng, 23, 0);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const size_t n = sizes[k];
        float *g = xmalloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) g[i] = (i % 3 ? 1.0f : 1e-3f) * urand(&rng);
        const double a = lt_grad_sumsq(g, n), b = ops->sumsq(ops, g, n);
        CHECK(memcmp(&a, &b, sizeof a) == 0, "n %zu: sumsq op %.17g, lt_grad_sumsq %.17g", n, b, a);
        if (n > 9) {
            g[n / 2] = INFINITY;
            CHECK(isinf(ops->sumsq(ops, g, n)), "n %zu: an inf gradient gives %g", n, ops->sumsq(ops, g, n));
            g[n / 2] = NAN;
            CHECK(isnan(ops->sumsq(ops, g, n)), "n %zu: a NaN gradient gives %g", n, ops->sumsq(ops, g, n));
        }
        free(g);
    }

    /* clipping: coef + the scale op against lt_clip_grad_norm */
    const size_t n = 1001;
    float *g0 = xmalloc(n * sizeof(float)), *a = xmalloc(n * sizeof(float)), *b = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) g0[i] = urand(&rng);
    const double total = sqrt(lt_grad_sumsq(g0, n));
    const float max_norms[] = {(float)(total / 7.3), (float)total, (float)(2 * total), 0.0f, -1.0f};
    int clipped = 0;
    for (size_t k = 0; k < sizeof max_norms / sizeof max_norms[0]; k++) {
        memcpy(a, g0, n * sizeof(float));
        memcpy(b, g0, n * sizeof(float));
        const float ra = lt_clip_grad_norm(a, n, max_norms[k]);
        const double tb = sqrt(ops->sumsq(ops, b, n));
        float coef;
        if (lt_clip_grad_coef(tb, max_norms[k], &coef)) {
            ops->scale(ops, b, n, coef);
            clipped++;
        }
        CHECK(ra == (float)tb && same_bits(a, b, n),
              "max_norm %g: the ops' clip differs from lt_clip_grad_norm (norm %.9g vs %.9g)",
              (double)max_norms[k], (double)(float)tb, (double)ra);
    }
    /* a shard clipped by the global norm, as ZeRO-1 does */
    memcpy(a, g0, n * sizeof(float));
    memcpy(b, g0, n * sizeof(float));
    lt_clip_grad_norm_total(a + 100, 300, 3.0 * total, (float)(total / 2));
    float coef = 0;
    CHECK(lt_clip_grad_coef(3.0 * total, (float)(total / 2), &coef), "a norm 6x max_norm must clip");
    ops->scale(ops, b + 100, 300, coef);
    CHECK(same_bits(a, b, n), "a shard scaled by the op differs from lt_clip_grad_norm_total");
    CHECK(!lt_clip_grad_coef(INFINITY, 1.0f, &coef) && !lt_clip_grad_coef(NAN, 1.0f, &coef),
          "a non-finite norm must not clip");
    CHECK(clipped == 2, "clipped %d of 5 cases, expected 2 (below and at max_norm)", clipped);
    printf("sumsq op: bitwise lt_grad_sumsq for 12 sizes; clip via scale op bitwise lt_clip_grad_norm\n");
    free(g0);
    free(a);
    free(b);
}

/* ------------------------------------------------- moments' memory */

typedef struct {
    int allocs, frees, refuse_after;
    size_t bytes;
    lt_mem_category cat;
} counting_mem;

static void *count_alloc(const void *ctx, lt_mem_category cat, size_t bytes) {
    counting_mem *c = (counting_mem *)(uintptr_t)ctx;
    if (c->refuse_after >= 0 && c->allocs >= c->refuse_after) return NULL;
    c->allocs++;
    c->bytes += bytes;
    c->cat = cat;
    return calloc(1, bytes);
}

static void count_free(const void *ctx, void *p) {
    counting_mem *c = (counting_mem *)(uintptr_t)ctx;
    c->frees++;
    free(p);
}

static void test_moment_memory(const lt_ops *ops) {
    counting_mem c = {0, 0, -1, 0, LT_MEM_OTHER};
    const lt_adamw_memory mem = {count_alloc, count_free, &c};
    lt_adamw opt;
    lt_error err;
    lt_status st = lt_adamw_init_in(&opt, 333, NULL, &mem, &err);
    CHECK(st == LT_OK, "lt_adamw_init_in: %s", err.msg);
    CHECK(c.allocs == 2 && c.bytes == 2 * 333 * sizeof(float) && c.cat == LT_MEM_OPTIM_STATE,
          "moments: %d allocations of %zu bytes in category %d, expected 2 of %zu in optimizer state",
          c.allocs, c.bytes, (int)c.cat, 2 * 333 * sizeof(float));
    lt_adamw_free(&opt);
    CHECK(c.frees == 2, "lt_adamw_free gave back %d buffers to the allocator, expected 2", c.frees);

    counting_mem r = {0, 0, 1, 0, LT_MEM_OTHER};
    const lt_adamw_memory refusing = {count_alloc, count_free, &r};
    st = lt_adamw_init_in(&opt, 333, NULL, &refusing, &err);
    CHECK(st == LT_ERR_NOMEM && strstr(err.msg, "moments") && r.frees == r.allocs && opt.m == NULL,
          "refused second moment: %s \"%s\", %d allocated, %d freed", lt_status_name(st), err.msg,
          r.allocs, r.frees);
    lt_adamw_free(&opt);

    lt_mem_stats before, during;
    lt_mem_get_stats(&before);
    st = lt_train_optimizer_init(&opt, ops, 1000, NULL, &err);
    CHECK(st == LT_OK, "lt_train_optimizer_init: %s", err.msg);
    if (st != LT_OK) return;
    lt_mem_get_stats(&during);
    const uint64_t grew = during.current[LT_SPACE_HOST][LT_MEM_OPTIM_STATE] -
                          before.current[LT_SPACE_HOST][LT_MEM_OPTIM_STATE];
    CHECK(grew == 2 * 1000 * sizeof(float), "the CPU backend's moments: optimizer state grew by %llu bytes",
          (unsigned long long)grew);
    int zero = 1;
    for (size_t i = 0; i < 1000; i++) zero &= opt.m[i] == 0.0f && opt.v[i] == 0.0f;
    CHECK(zero, "moments from the backend's alloc are not zeroed");
    lt_adamw_free(&opt);
}

/* ------------------------------------ lt_train_step vs optim's host path */

enum { B = 2, T = 16, GA = 2, STEPS = 4 };

static lt_model *load_model(const char *path, const lt_ops *ops, int full, float dropout) {
    lt_error err;
    lt_model *m = NULL;
    if (lt_llama2c_load(path, ops, &m, &err) != LT_OK) {
        CHECK(0, "%s", err.msg);
        return NULL;
    }
    const lt_lora_config lc = {.r = 4, .alpha = 8, .dropout = dropout, .use_rslora = 0,
                               .targets = LT_MOD_MASK_ALL};
    lt_status st = full ? lt_model_enable_full_training(m, &err) : lt_model_add_lora(m, &lc, 5, &err);
    if (st == LT_OK) st = lt_model_reserve(m, B, T, &err);
    if (st != LT_OK) {
        CHECK(0, "model: %s", err.msg);
        lt_model_free(m);
        return NULL;
    }
    return m;
}

static void test_train_step(const char *model_path, int full) {
    const lt_ops *cpu = lt_ops_cpu(1);
    const float dropout = full ? 0.0f : 0.1f;
    lt_model *a = load_model(model_path, cpu, full, dropout), *b = load_model(model_path, cpu, full, dropout);
    if (!a || !b) {
        lt_model_free(a);
        lt_model_free(b);
        return;
    }
    const int V = lt_model_get_config(a)->vocab_size;
    const size_t per = (size_t)B * T, all = per * GA * STEPS;
    int32_t *in = xmalloc(all * sizeof *in), *tg = xmalloc(all * sizeof *tg);
    lt_rng rng;
    lt_rng_seed(&rng, 24, (uint64_t)full);
    for (size_t i = 0; i < all; i++) {
        in[i] = (int32_t)lt_rng_next_below(&rng, (uint64_t)V);
        tg[i] = i % 9 == 0 ? -100 : (int32_t)lt_rng_next_below(&rng, (uint64_t)V);
    }
    const lt_param_table *tab = lt_model_train_table(a);
    const size_t n = tab->numel;
    const lt_adamw_config ac = {0.9f, 0.999f, 1e-8f, 0.1f};
    const lt_lr_schedule sched = {LT_SCHED_COSINE, 5e-3, 1, STEPS};
    const float max_norm = full ? 2.0f : 0.05f; /* clips */
    lt_adamw oa, ob;
    lt_error err;
    if (lt_train_optimizer_init(&oa, cpu, n, &ac, &err) != LT_OK || lt_adamw_init(&ob, n, &ac, &err) != LT_OK) {
        CHECK(0, "optimizers: %s", err.msg);
        exit(1);
    }
    int clipped = 0, same = 1, steps = 0;
    for (int s = 0; s < STEPS && same; s++) {
        const int32_t *si = in + (size_t)s * GA * per, *st_ = tg + (size_t)s * GA * per;
        lt_step_stats out;
        lt_status st = lt_train_step(a, &oa, &sched, s, max_norm, si, st_, GA, B, T, 9, NULL, &out, &err);
        CHECK(st == LT_OK, "lt_train_step %d: %s", s + 1, err.msg);
        if (st != LT_OK) break;
        /* the same step through optim's host functions */
        const int64_t total = lt_count_targets(st_, (int64_t)per * GA);
        lt_model_zero_grads(b);
        double loss = 0;
        for (int g = 0; g < GA && st == LT_OK; g++) {
            double ls = 0;
            int64_t cnt = 0;
            lt_model_set_dropout_state(b, 9, (uint64_t)s * GA + (uint64_t)g, 0);
            st = lt_model_forward_backward(b, si + g * per, st_ + g * per, B, T, (float)(1.0 / (double)total),
                                           &ls, &cnt, &err);
            loss += ls;
        }
        CHECK(st == LT_OK, "forward_backward: %s", err.msg);
        if (st != LT_OK) break;
        const float norm = lt_clip_grad_norm(lt_model_train_grads(b), n, max_norm);
        lt_adamw_step(&ob, lt_model_train_params(b), lt_model_train_grads(b), lt_lr_at(&sched, s));
        clipped += norm > max_norm;
        same = out.grad_norm == norm && out.loss == loss / (double)total &&
               same_bits(lt_model_train_params(a), lt_model_train_params(b), n) &&
               same_bits(oa.m, ob.m, n) && same_bits(oa.v, ob.v, n);
        CHECK(same, "%s step %d: lt_train_step (norm %.9g, loss %.17g) differs from lt_clip_grad_norm + "
              "lt_adamw_step (norm %.9g, loss %.17g); first difference of p at %zu, m at %zu, v at %zu "
              "(%zu: none)", full ? "full" : "LoRA", s + 1, out.grad_norm, out.loss, (double)norm,
              loss / (double)total, first_diff(lt_model_train_params(a), lt_model_train_params(b), n),
              first_diff(oa.m, ob.m, n), first_diff(oa.v, ob.v, n), n);
        steps += same;
    }
    CHECK(clipped >= STEPS - 1, "%s: only %d of %d steps clipped; the case must exercise the scale op",
          full ? "full" : "LoRA", clipped, STEPS);
    CHECK(steps == STEPS, "%s: %d of %d steps compared", full ? "full" : "LoRA", steps, STEPS);
    printf("lt_train_step (%s, %zu parameters): %d steps bitwise the host path, %d clipped\n",
           full ? "full" : "LoRA", n, steps, clipped);
    lt_adamw_free(&oa);
    lt_adamw_free(&ob);
    lt_model_free(a);
    lt_model_free(b);
    free(in);
    free(tg);
}

/* ------------------------------------- checkpoints through the ops */

/* A "device" whose memory holds every 4-byte word byte-reversed: only the
 * backend's upload and download turn it back into floats, so code that
 * reads or writes the trainer's buffers directly gets reversed bytes.
 * Zero is zero either way (alloc's zero fill and zero hold). No compute:
 * the test only loads, saves and reads back. */
static lt_ops g_rev;
static int g_odd_copies;

static void reverse_words(void *dst, const void *src, size_t bytes) {
    if (bytes % 4) g_odd_copies++;
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
        const unsigned char w[4] = {s[i], s[i + 1], s[i + 2], s[i + 3]};
        d[i] = w[3], d[i + 1] = w[2], d[i + 2] = w[1], d[i + 3] = w[0];
    }
}
static void rev_upload(const lt_ops *o, void *dst, const void *host, size_t bytes) {
    (void)o;
    reverse_words(dst, host, bytes);
}
static void rev_download(const lt_ops *o, void *host, const void *src, size_t bytes) {
    (void)o;
    reverse_words(host, src, bytes);
}

static const lt_ops *reversed_ops(void) {
    g_rev = *lt_ops_cpu(1);
    g_rev.name = "reversed";
    g_rev.upload = rev_upload;
    g_rev.download = rev_download;
    return &g_rev;
}

static float *download_all(const lt_ops *o, const float *x, size_t n) {
    float *h = xmalloc(n * sizeof(float));
    o->download(o, h, x, n * sizeof(float));
    return h;
}

static void fill(lt_rng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * urand(r);
}

static lt_ckpt_meta meta_at(int64_t step, const char *model) {
    lt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.global_step = step;
    meta.world_size = g_size;
    meta.sched = (lt_lr_schedule){LT_SCHED_CONSTANT, 1e-3, 0, 10};
    snprintf(meta.base_path, sizeof meta.base_path, "%s", model);
    return meta;
}

/* One checkpoint round trip: the state on the reversed backend (dev), a
 * CPU model to load it into (cpu) and a second reversed one (back), with
 * the values the state holds, in host memory: x (the trainable
 * parameters), m and v (n of each; this rank's part of m and v from lo
 * on, len long). */
typedef struct {
    lt_model *dev, *cpu, *back;
    lt_adamw odev, ocpu, oback;
    float *x, *m, *v;
    size_t n, lo, len;
} ck_case;

/* full: the models train every weight; else LoRA. The moments of dev and
 * back cover [lo, lo + len), cpu's all n. */
static void ck_open(ck_case *k, const char *model, int full, size_t lo, size_t len, size_t n) {
    const lt_ops *rev = reversed_ops(), *cpu = lt_ops_cpu(1);
    lt_error err;
    memset(k, 0, sizeof *k);
    k->dev = load_model(model, rev, full, 0.0f);
    k->cpu = load_model(model, cpu, full, 0.0f);
    k->back = load_model(model, rev, full, 0.0f);
    if (!k->dev || !k->cpu || !k->back || lt_train_optimizer_init(&k->odev, rev, len, NULL, &err) != LT_OK ||
        lt_adamw_init(&k->ocpu, n, NULL, &err) != LT_OK ||
        lt_train_optimizer_init(&k->oback, rev, len, NULL, &err) != LT_OK) {
        CHECK(0, "checkpoint case set-up failed");
        exit(1);
    }
    k->n = n, k->lo = lo, k->len = len;
    k->x = xmalloc(n * sizeof(float));
    k->m = xmalloc(n * sizeof(float));
    k->v = xmalloc(n * sizeof(float));
    lt_rng rng;
    lt_rng_seed(&rng, 25, (uint64_t)full);
    fill(&rng, k->x, n, 0.1f);
    fill(&rng, k->m, n, 1e-3f);
    for (size_t i = 0; i < n; i++) k->v[i] = 1e-6f * (1.0f + urand(&rng));
    float *xdev = full ? lt_model_base(k->dev) : lt_model_lora_params(k->dev);
    rev->upload(rev, xdev, k->x, n * sizeof(float));
    rev->upload(rev, k->odev.m, k->m + lo, len * sizeof(float));
    rev->upload(rev, k->odev.v, k->v + lo, len * sizeof(float));
}

/* After the loads: cpu holds all the values, back this rank's. */
static void ck_compare(ck_case *k, const char *what, lt_status cpu_st, lt_status back_st, int64_t step) {
    const int full = lt_model_is_full_training(k->cpu);
    const float *xc = full ? lt_model_base(k->cpu) : lt_model_lora_params(k->cpu);
    CHECK(cpu_st != LT_OK || (same_bits(xc, k->x, k->n) && same_bits(k->ocpu.m, k->m, k->n) &&
                              same_bits(k->ocpu.v, k->v, k->n) && k->ocpu.step == step),
          "%s: the CPU read back other values than the reversed backend held (parameters %d, m %d, v %d, "
          "step %lld)", what, same_bits(xc, k->x, k->n), same_bits(k->ocpu.m, k->m, k->n),
          same_bits(k->ocpu.v, k->v, k->n), (long long)k->ocpu.step);
    const lt_ops *rev = lt_model_get_ops(k->back);
    float *xb = download_all(rev, full ? lt_model_base(k->back) : lt_model_lora_params(k->back), k->n);
    float *mb = download_all(rev, k->oback.m, k->len), *vb = download_all(rev, k->oback.v, k->len);
    CHECK(back_st != LT_OK || (same_bits(xb, k->x, k->n) && same_bits(mb, k->m + k->lo, k->len) &&
                               same_bits(vb, k->v + k->lo, k->len) && k->oback.step == step),
          "%s, rank %d: loaded into the reversed backend, the state reads back changed (parameters %d, "
          "m %d, v %d)", what, g_rank, same_bits(xb, k->x, k->n), same_bits(mb, k->m + k->lo, k->len),
          same_bits(vb, k->v + k->lo, k->len));
    free(xb);
    free(mb);
    free(vb);
}

static void ck_close(ck_case *k) {
    lt_adamw_free(&k->odev);
    lt_adamw_free(&k->ocpu);
    lt_adamw_free(&k->oback);
    lt_model_free(k->dev);
    lt_model_free(k->cpu);
    lt_model_free(k->back);
    free(k->x);
    free(k->m);
    free(k->v);
}

static void test_lora_checkpoint(const char *model, const char *dir) {
    lt_model *probe = load_model(model, lt_ops_cpu(1), 0, 0.0f);
    if (!probe) return;
    const size_t n = lt_model_lora_table(probe)->numel;
    lt_model_free(probe);
    ck_case k;
    ck_open(&k, model, 0, 0, n, n);
    k.odev.step = 7;
    const lt_ckpt_meta meta = meta_at(7, model);
    char written[4096];
    lt_error err;
    lt_status st = lt_checkpoint_save(dir, k.dev, &k.odev, &meta, "{}", 0, written, sizeof written, &err);
    CHECK(st == LT_OK, "LoRA save from the reversed backend: %s", err.msg);
    if (st == LT_OK) {
        lt_ckpt_meta back;
        lt_status sc = lt_checkpoint_load(written, k.cpu, &k.ocpu, 0, 0, &back, &err);
        CHECK(sc == LT_OK, "LoRA load on the CPU: %s", err.msg);
        lt_status sb = lt_checkpoint_load(written, k.back, &k.oback, 0, 0, &back, &err);
        CHECK(sb == LT_OK, "LoRA load into the reversed backend: %s", err.msg);
        ck_compare(&k, "LoRA", sc, sb, 7);
    }
    printf("LoRA checkpoint (%zu parameters): saved from a backend the host cannot read, loaded on the "
           "CPU and back\n", n);
    ck_close(&k);
}

/* Every rank: the same whole state from one seed; this rank holds
 * [lo, lo + len) of the moments (ZeRO-1 on several ranks). */
static void test_full_checkpoint(const char *model, const char *dir, lt_comm *comm) {
    lt_model *probe = load_model(model, lt_ops_cpu(1), 1, 0.0f);
    if (!probe) exit(1);
    const size_t numel = lt_model_base_table(probe)->numel;
    lt_model_free(probe);
    size_t *begin = xmalloc(((size_t)g_size + 1) * sizeof *begin);
    lt_zero1_shards(numel, g_size, begin);
    const int sharded = g_size > 1;
    const size_t lo = sharded ? begin[g_rank] : 0, len = sharded ? begin[g_rank + 1] - lo : numel;
    ck_case k;
    ck_open(&k, model, 1, lo, len, numel);
    k.odev.step = 5;
    const lt_ckpt_meta meta = meta_at(5, model);
    lt_error err;
    lt_status st = lt_checkpoint_save_full(dir, k.dev, &k.odev, comm, sharded ? begin : NULL, &meta, "{}", 0,
                                           NULL, 0, &err);
    CHECK(st == LT_OK, "full save from the reversed backend (%d ranks): %s", g_size, err.msg);
    int64_t ok = st == LT_OK; /* rank 0 renames the file into place: wait for it */
    if (lt_comm_allreduce(comm, &ok, 1, LT_DT_I64, LT_RED_MIN, &err) != LT_OK || !ok) {
        CHECK(0, "full checkpoint not written on every rank");
        exit(1);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoint-5.h5", dir);
    lt_ckpt_meta back;
    /* all the moments on the CPU backend (any split may resume), this
     * rank's shard into the reversed backend */
    lt_status sc = lt_checkpoint_load_full(path, k.cpu, &k.ocpu, 0, 0, 0, &back, &err);
    CHECK(sc == LT_OK, "full load on the CPU: %s", err.msg);
    lt_status sb = lt_checkpoint_load_full(path, k.back, &k.oback, lo, 0, 0, &back, &err);
    CHECK(sb == LT_OK, "full load into the reversed backend: %s", err.msg);
    ck_compare(&k, "full", sc, sb, 5);
    if (g_rank == 0)
        printf("full checkpoint (%zu parameters, %s): saved from a backend the host cannot read, loaded on "
               "the CPU and back\n", numel, sharded ? "ZeRO-1 shards" : "one writer");
    ck_close(&k);
    free(begin);
}

int main(int argc, char **argv) {
    lt_comm *comm = NULL;
    lt_error err;
    if (lt_comm_init_world(&argc, &argv, &comm, &err) != LT_OK) {
        fprintf(stderr, "test_optim_ops: %s\n", err.msg);
        return 1;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL WORKDIR\n", argv[0]);
        lt_comm_free(comm);
        return 2;
    }
    g_rank = lt_comm_rank(comm);
    g_size = lt_comm_size(comm);
    const lt_ops *cpu = lt_ops_cpu(1);
    char lora_dir[4096], full_dir[4096];
    snprintf(lora_dir, sizeof lora_dir, "%s/lora-rank%d", argv[2], g_rank);
    snprintf(full_dir, sizeof full_dir, "%s/full-np%d", argv[2], g_size);
    if (lt_make_dirs(lora_dir, &err) != LT_OK || lt_make_dirs(full_dir, &err) != LT_OK) {
        fprintf(stderr, "test_optim_ops: %s\n", err.msg);
        lt_comm_free(comm);
        return 1;
    }
    if (g_size == 1) {
        test_adamw_op(cpu);
        test_adamw_roundings();
        test_sumsq_scale(cpu);
        test_moment_memory(cpu);
        test_train_step(argv[1], 0);
        test_train_step(argv[1], 1);
        test_lora_checkpoint(argv[1], lora_dir);
    }
    test_full_checkpoint(argv[1], full_dir, comm);
    CHECK(g_odd_copies == 0, "%d copies to or from the reversed backend were not whole floats", g_odd_copies);
    /* every rank's verdict, so that mpirun fails when any rank does */
    int64_t failures = check_failures_;
    if (lt_comm_allreduce(comm, &failures, 1, LT_DT_I64, LT_RED_SUM, &err) != LT_OK) failures = 1;
    const int code = failures && !check_failures_ ? (fprintf(stderr, "another rank failed\n"), 1)
                                                  : check_exit_code();
    lt_comm_free(comm);
    return code;
}
