/* Byte flips across a whole LoRA checkpoint: every byte outside the
 * tensors' raw data (superblock, object headers with every attribute,
 * link names, the manifest) and a sample of tensor bytes, one flipped bit
 * at a time. Each flipped file is verified as `inspect` and `latest` do
 * and loaded as resume does, in a child process (a crash is a finding,
 * not the end of the test). Every flip must be
 *   - refused by both, each with one line naming the file, or
 *   - accepted with the loaded state (LoRA parameters, both moments, the
 *     optimizer step, every metadata field, the run config) bit for bit
 *     the unflipped file's, which makes the resumed run bitwise the same
 *     (resume is deterministic in that state; checkpoint_fuzz.sh resumes
 *     a sample of accepted flips to show it).
 * A flip that is accepted with any difference, a crash, or a refusal
 * without its one clear line fails the test.
 *
 * argv: MODEL CHECKPOINT WORK_FILE R ALPHA TARGETS STRIDE TENSOR_SAMPLES
 * STRIDE: every STRIDE-th metadata byte (1: all); TENSOR_SAMPLES: bytes
 * per tensor. Prints the offsets of accepted flips on a line starting with
 * "accepted:" (for the resume sample). CKPT_FUZZ_OFFSET=N flips offset N
 * alone, checked in this process (to debug one finding under gdb). */
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/hash.h"
#include "io/checkpoint/checkpoint.h"
#include "io/model/llama2c.h"
#include "model/cpu/cpu.h"
#include "tests/lib/check.h"

typedef struct {
    uint64_t params, m, v, meta;
    int64_t step;
} state_hash;

/* A digest of everything a resume takes from a checkpoint. */
static lt_status load_state(const char *path, lt_model *m, lt_adamw *opt, state_hash *h, lt_error *err) {
    lt_ckpt_meta meta;
    memset(opt->m, 0, opt->n * sizeof(float));
    memset(opt->v, 0, opt->n * sizeof(float));
    opt->step = -1;
    lt_status st = lt_checkpoint_load(path, m, opt, 0, 0, &meta, err);
    if (st != LT_OK) return st;
    char type[32], *cfg = NULL;
    lt_ckpt_meta meta2;
    if ((st = lt_checkpoint_read_header(path, &meta2, type, sizeof type, &cfg, err)) != LT_OK) return st;
    const size_t n = lt_model_lora_table(m)->numel;
    h->params = lt_hash64(lt_model_lora_params(m), n * sizeof(float));
    h->m = lt_hash64(opt->m, n * sizeof(float));
    h->v = lt_hash64(opt->v, n * sizeof(float));
    h->step = opt->step;
    /* Every field of the metadata (no padding in the struct's scalars is
     * read: fields are hashed one by one) and the run config. */
    uint64_t x = lt_hash64(cfg, strlen(cfg));
    x = lt_hash64_seeded(x, type, strlen(type));
    const lt_ckpt_meta *mm[2] = {&meta, &meta2};
    for (int k = 0; k < 2; k++) {
        const lt_ckpt_meta *q = mm[k];
        const uint64_t f[] = {(uint64_t)q->global_step, (uint64_t)q->tokens_seen, q->cursor.epoch,
                              q->cursor.position, q->seed, (uint64_t)q->world_size, q->base_bytes,
                              q->base_fingerprint, (uint64_t)q->sched.kind, (uint64_t)q->sched.warmup_steps,
                              (uint64_t)q->sched.total_steps};
        x = lt_hash64_seeded(x, f, sizeof f);
        x = lt_hash64_seeded(x, &q->sched.lr, sizeof q->sched.lr);
        x = lt_hash64_seeded(x, q->base_path, strlen(q->base_path));
    }
    h->meta = x;
    free(cfg);
    return LT_OK;
}

/* Outcome of one flip, from the child. */
enum { SAME = 0, REFUSED = 1, CHANGED = 2, BADMSG = 3 };

typedef struct {
    int verify, load; /* SAME (accepted) or REFUSED, ...; CHANGED only for load */
    char msg[400];
} outcome;

static int one_line(const char *s) { return s[0] && !strchr(s, '\n'); }

static void child(const char *work, lt_model *m, lt_adamw *opt, const state_hash *want, int fd) {
    outcome o;
    memset(&o, 0, sizeof o);
    lt_error err;
    err.msg[0] = '\0';
    lt_status st = lt_checkpoint_inspect(work, NULL, 0, &err);
    o.verify = st == LT_OK ? SAME : one_line(err.msg) ? REFUSED : BADMSG;
    if (st != LT_OK) snprintf(o.msg, sizeof o.msg, "%s", err.msg);
    state_hash h;
    err.msg[0] = '\0';
    st = load_state(work, m, opt, &h, &err);
    if (st != LT_OK) {
        o.load = one_line(err.msg) ? REFUSED : BADMSG;
        if (!o.msg[0]) snprintf(o.msg, sizeof o.msg, "%s", err.msg);
    } else {
        o.load = memcmp(&h, want, sizeof h) ? CHANGED : SAME;
    }
    if (write(fd, &o, sizeof o) != (ssize_t)sizeof o) _exit(3);
    _exit(0);
}

/* The byte ranges of the tensors' raw data in the file. */
typedef struct {
    uint64_t at, n;
} extent;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *op) {
    (void)info;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
    if (!strcmp(name, "manifest")) return 0; /* its bytes count as metadata: every one flipped */
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    extent **ex = op;
    haddr_t at = H5Dget_offset(d);
    hsize_t n = H5Dget_storage_size(d);
    H5Dclose(d);
    if (at == HADDR_UNDEF) return 0;
    size_t k = 0;
    while ((*ex)[k].n) k++;
    extent *grown = realloc(*ex, (k + 2) * sizeof **ex);
    if (!grown) return -1;
    grown[k] = (extent){at, n};
    grown[k + 1] = (extent){0, 0};
    *ex = grown;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s MODEL CHECKPOINT WORK_FILE R ALPHA TARGETS STRIDE TENSOR_SAMPLES\n", argv[0]);
        return 2;
    }
    const char *ckpt = argv[2], *work = argv[3];
    const long stride = atol(argv[7]), samples = atol(argv[8]);
    lt_error err;
    lt_model *m = NULL;
    CHECK_OK(lt_llama2c_load(argv[1], lt_ops_cpu(1), &m, &err), &err);
    lt_lora_config lc = {.r = atoi(argv[4]), .alpha = (float)atof(argv[5])};
    CHECK_OK(lt_lora_parse_targets(argv[6], &lc.targets, &err), &err);
    CHECK_OK(lt_model_add_lora(m, &lc, 1, &err), &err);
    lt_adamw opt;
    lt_adamw_config ac = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0};
    CHECK_OK(lt_adamw_init(&opt, lt_model_lora_table(m)->numel, &ac, &err), &err);

    /* The unflipped file: its state, and a working copy to flip. */
    state_hash want;
    CHECK_OK(load_state(ckpt, m, &opt, &want, &err), &err);
    CHECK_OK(lt_checkpoint_inspect(ckpt, NULL, 0, &err), &err);
    char *bytes = NULL;
    FILE *f = fopen(ckpt, "rb");
    CHECK(f != NULL, "cannot open %s", ckpt);
    if (!f) return check_exit_code();
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    bytes = malloc((size_t)size);
    CHECK(bytes && fread(bytes, 1, (size_t)size, f) == (size_t)size, "cannot read %s", ckpt);
    fclose(f);
    int wfd = open(work, O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(wfd >= 0 && write(wfd, bytes, (size_t)size) == size, "cannot write %s", work);

    extent *ex = calloc(1, sizeof *ex);
    hid_t h5 = H5Fopen(ckpt, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(h5 >= 0 && H5Lvisit(h5, H5_INDEX_NAME, H5_ITER_INC, collect, &ex) >= 0, "cannot list %s", ckpt);
    if (h5 >= 0) H5Fclose(h5);
    unsigned char *is_data = calloc((size_t)size, 1);
    size_t tensors = 0, data_bytes = 0;
    for (extent *e = ex; e->n; e++, tensors++)
        for (uint64_t i = 0; i < e->n && e->at + i < (uint64_t)size; i++, data_bytes++) is_data[e->at + i] = 1;
    CHECK(tensors > 0 && data_bytes > 0, "found no tensor data in %s", ckpt);

    /* The offsets to flip: metadata every stride bytes, and per tensor its
     * first and last byte and samples - 2 spread between. */
    long *offs = malloc(((size_t)size / (size_t)(stride > 0 ? stride : 1) + tensors * (size_t)samples + 8) * sizeof *offs);
    size_t n = 0, n_meta = 0;
    const char *only = getenv("CKPT_FUZZ_OFFSET");
    if (only) {
        const long o = atol(only);
        const unsigned char flipped = (unsigned char)(bytes[o] ^ (1u << (o % 8)));
        CHECK(o >= 0 && o < size && pwrite(wfd, &flipped, 1, o) == 1, "offset %ld", o);
        int fds[2];
        CHECK(pipe(fds) == 0, "pipe");
        child(work, m, &opt, &want, fds[1]); /* does not return */
    }
    for (long o = 0; o < size; o++)
        if (!is_data[o] && o % stride == 0) offs[n++] = o, n_meta++;
    for (extent *e = ex; e->n; e++)
        for (long k = 0; k < samples; k++)
            offs[n++] = (long)(e->at + (samples > 1 ? (uint64_t)k * (e->n - 1) / (uint64_t)(samples - 1) : 0));

    size_t counts[2][4] = {{0}}, crashed = 0, changed = 0, badmsg = 0;
    printf("accepted:");
    for (size_t i = 0; i < n; i++) {
        const long o = offs[i];
        const unsigned char flipped = (unsigned char)(bytes[o] ^ (1u << (o % 8)));
        if (pwrite(wfd, &flipped, 1, o) != 1) break;
        int fds[2];
        if (pipe(fds) != 0) break;
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(work, m, &opt, &want, fds[1]);
        }
        close(fds[1]);
        outcome oc;
        ssize_t got = read(fds[0], &oc, sizeof oc);
        close(fds[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        if (pwrite(wfd, &bytes[o], 1, o) != 1) break;
        if (got != (ssize_t)sizeof oc || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            crashed++;
            fprintf(stderr, "FAIL offset %ld (%s): the checker %s\n", o, is_data[o] ? "tensor data" : "metadata",
                    WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "died without an answer");
            continue;
        }
        counts[0][oc.verify]++;
        counts[1][oc.load]++;
        if (oc.load == CHANGED) {
            changed++;
            fprintf(stderr, "FAIL offset %ld (%s): accepted by resume with a different state%s\n", o,
                    is_data[o] ? "tensor data" : "metadata", oc.verify == SAME ? " (and by inspect)" : "");
        }
        if (oc.verify == BADMSG || oc.load == BADMSG) {
            badmsg++;
            fprintf(stderr, "FAIL offset %ld: refused without one clear line: \"%s\"\n", o, oc.msg);
        }
        if (oc.verify == SAME && oc.load == SAME) printf(" %ld", o);
    }
    printf("\n");
    close(wfd);
    printf("%s: %ld bytes, %zu tensors (%zu bytes of tensor data); %zu flips (%zu metadata bytes, stride %ld; "
           "%ld per tensor)\n", ckpt, size, tensors, data_bytes, n, n_meta, stride, samples);
    printf("  verify (inspect, latest): %zu refused, %zu accepted\n", counts[0][REFUSED], counts[0][SAME]);
    printf("  load (resume): %zu refused, %zu accepted with the same state, %zu accepted changed\n",
           counts[1][REFUSED], counts[1][SAME], counts[1][CHANGED]);
    CHECK(changed == 0, "%zu flips changed what resume loads without an error", changed);
    CHECK(crashed == 0, "%zu flips crashed the checker", crashed);
    CHECK(badmsg == 0, "%zu flips were refused without one clear line", badmsg);
    CHECK(counts[1][REFUSED] > n / 2, "most flips must be refused (%zu of %zu were)", counts[1][REFUSED], n);
    free(offs);
    free(is_data);
    free(ex);
    free(bytes);
    lt_adamw_free(&opt);
    lt_model_free(m);
    return check_exit_code();
}
