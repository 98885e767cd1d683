/* What io/checkpoint/checkpoint.c (LoRA checkpoints, verifying, placing)
 * shares with io/checkpoint/checkpoint_full.c (full fine-tuning
 * checkpoints). Not for other modules: io/checkpoint/checkpoint.h is the
 * interface. */
#ifndef LT_IO_CHECKPOINT_CHECKPOINT_INTERNAL_H
#define LT_IO_CHECKPOINT_CHECKPOINT_INTERNAL_H

#include <hdf5.h>

#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/ckpt_manifest.h"
#include "io/fileutil.h"

/* Silences HDF5's error stack printing (we report one line). */
void lt_ck_quiet(void);
/* File access properties of every checkpoint: the 1.8 format and later,
 * whose metadata carries checksums. -1 on failure. */
hid_t lt_ck_fapl(void);
/* File creation properties (the root group), and a new group: links and
 * attributes kept in checksummed object headers. -1 on failure. */
hid_t lt_ck_fcpl(void);
hid_t lt_ck_group(hid_t loc, const char *name);

/* Row order: the element count of m's largest tensor whose rows
 * lt_ck_reorder moves (0: none), and the move of one tensor x in place
 * between the model's order and the file's (Hugging Face's; to_file 1) or
 * back (scratch: that many floats). */
size_t lt_ck_largest_rotary(const lt_model_config *c, const lt_param_table *t);
void lt_ck_reorder(const lt_model_config *c, const lt_tensor_desc *d, float *x, float *scratch,
                   int to_file);

/* Writing: attributes and tensors that record themselves in mf. */
int lt_ck_put_u64(lt_manifest *mf, hid_t o, const char *n, uint64_t v);
int lt_ck_put_u64s(lt_manifest *mf, hid_t o, const char *n, const uint64_t *v, size_t count);
int lt_ck_put_str(lt_manifest *mf, hid_t o, const char *n, const char *v);
int lt_ck_put_tensor(lt_manifest *mf, hid_t g, const char *name, const float *data, int rows, int cols,
                     int write_data, int *data_ok, hid_t *out);
int lt_ck_put_root_attrs(lt_manifest *mf, hid_t f, const lt_ckpt_meta *meta, const char *config_json,
                         const char *type);
int lt_ck_put_optimizer_attrs(lt_manifest *mf, hid_t f, const lt_adamw *opt);
int lt_ck_put_scheduler(lt_manifest *mf, hid_t f, const lt_ckpt_meta *meta);

/* The written temporary file of af: committed under path, the pointer
 * moved to it, checkpoints beyond keep (0: all kept) removed. */
lt_status lt_ck_place(lt_atomic_file *af, const char *output_dir, const char *path, int64_t step,
                      int keep, char *written, size_t cap, lt_error *err);

/* Reading: an open, verified checkpoint. */
typedef struct {
    const char *path;
    hid_t f;
    lt_error *err;
    lt_manifest *mf;
} lt_ck_reader;

/* Opens r->path (set path and err first): format and version, the
 * manifest, every attribute's value and every dataset's shape against it;
 * data: every dataset's values too. */
lt_status lt_ck_open(lt_ck_reader *r, int data);
void lt_ck_close(lt_ck_reader *r);
lt_status lt_ck_bad(lt_ck_reader *r, const char *what); /* "path: what", LT_ERR_FORMAT */
lt_status lt_ck_get_num(lt_ck_reader *r, hid_t obj, const char *name, lt_mf_kind kind, void *v);
lt_status lt_ck_get_str(lt_ck_reader *r, hid_t obj, const char *name, char **out);
lt_status lt_ck_read_meta(lt_ck_reader *r, lt_ckpt_meta *meta);
lt_status lt_ck_read_type(lt_ck_reader *r, char *type, size_t cap);
/* Dataset /gname/name (rows x cols) into dst, checked against its hash. */
lt_status lt_ck_read_tensor(lt_ck_reader *r, hid_t g, const char *gname, const char *name, int rows,
                            int cols, float *dst);

#endif
