/* The integrity manifest of a training checkpoint
 * (io/checkpoint/checkpoint.c's helper; nothing else needs it).
 *
 * Every attribute and every dataset a checkpoint holds is listed in the
 * dataset /manifest, one line each, with the XXH3-64 of its value:
 *
 *   loratrain-manifest 1
 *   a <object> <attribute> <kind> <count> <hash>     kind: i64 u64 f64 str u64s
 *   t <dataset> <rows> <cols> <hash>                 float32 [rows, cols]
 *   f <dataset> <values> <segments> <hash>,<hash>... float32 [values], one
 *                                                    hash per segment (the
 *                                                    dataset's segment_offsets)
 *
 * The lines after the first are sorted (bytewise), and /manifest carries
 * the attribute xxh3_64: the XXH3-64 of the whole text. A value's hash is
 * over its canonical bytes, whatever HDF5 type stores it: i64/u64/f64 the
 * 8 little-endian bytes of the value as int64/uint64/double, u64s count of
 * those, str the characters (a fixed-length string of any padding, or a
 * variable-length one, reads the same); data the little-endian float32
 * values in row-major order. So h5py or h5dump rewriting a value unchanged
 * keeps the checkpoint valid, and any change of a value, a name, a shape,
 * or an object added or removed is found and named.
 *
 * Verifying walks the file, not the manifest: an attribute or dataset the
 * manifest does not list is refused as surely as one it lists and the
 * file lacks. */
#ifndef LT_IO_CHECKPOINT_CKPT_MANIFEST_H
#define LT_IO_CHECKPOINT_CKPT_MANIFEST_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef enum { LT_MF_I64 = 0, LT_MF_U64, LT_MF_F64, LT_MF_STR, LT_MF_U64S } lt_mf_kind;

typedef struct lt_manifest lt_manifest;

lt_manifest *lt_manifest_new(void); /* NULL: out of memory */
void lt_manifest_free(lt_manifest *m);

/* ----------------------------------------------------------- recording
 * What a writer puts in the file, as it does. obj is the object's path
 * ("/", "/optimizer", "/adapter/<name>"). value points to an int64_t,
 * uint64_t or double, a NUL-terminated string, or count uint64_t (u64s).
 * Each returns 0 when out of memory (the manifest is then unusable). */
int lt_manifest_add_attr(lt_manifest *m, const char *obj, const char *name, lt_mf_kind kind,
                         const void *value, size_t count);
int lt_manifest_add_tensor(lt_manifest *m, const char *path, uint64_t rows, uint64_t cols,
                           uint64_t hash);
int lt_manifest_add_flat(lt_manifest *m, const char *path, uint64_t values, int segments,
                         const uint64_t *hashes);

/* Creates /manifest and its digest in f. Under parallel HDF5 every rank
 * calls it with the same manifest (creation is collective); only the one
 * with write_data writes the text. Returns 0 on failure. */
int lt_manifest_write(const lt_manifest *m, hid_t f, int write_data);

/* ------------------------------------------------------------- reading */

/* /manifest of f, its digest checked and every line parsed. path names
 * the file in messages. */
lt_status lt_manifest_read(hid_t f, const char *path, lt_manifest **out, lt_error *err);

/* f against m: every attribute's value, every dataset's type and shape,
 * the same objects on both sides; with data, every dataset's values too. */
lt_status lt_manifest_verify(const lt_manifest *m, hid_t f, const char *path, int data,
                             lt_error *err);

/* The recorded hash of tensor path, or of segment seg of flat dataset
 * path; 0 when the manifest lists no such thing. */
int lt_manifest_tensor_hash(const lt_manifest *m, const char *path, uint64_t *hash);
int lt_manifest_segment_hash(const lt_manifest *m, const char *path, int seg, uint64_t *hash);

/* ------------------------------------------ values, whatever their type
 * Read an attribute the way the manifest hashes it: a scalar of integer
 * class as int64 or uint64, of float class as double; a string (fixed of
 * any padding, or variable) into *str (malloc, NUL-terminated, at most
 * max_len characters). 0 on a missing attribute or another class. */
int lt_h5_attr_number(hid_t obj, const char *name, lt_mf_kind kind, void *out);
int lt_h5_attr_string(hid_t obj, const char *name, size_t max_len, char **str);

#endif
