/* Whole-file reads with size bounds, and exact-size reads from an open file,
 * so every loader reports a short or oversized file the same way; a file's
 * quick identity; atomic writes, disk space, and append-only line logs.
 * Shared by every io/ subfolder. */
#ifndef LT_IO_FILEUTIL_H
#define LT_IO_FILEUTIL_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

/* Size of the file at path in bytes. */
lt_status lt_file_size(const char *path, uint64_t *size, lt_error *err);

/* Reads the whole file into a NUL-terminated buffer from malloc (caller
 * frees with free()). Files larger than max_bytes are refused. */
lt_status lt_read_file(const char *path, uint64_t max_bytes, char **data, uint64_t *size,
                       lt_error *err);

/* fread that fails unless exactly n bytes arrive; what names the field. */
lt_status lt_read_exact(FILE *f, void *dst, size_t n, const char *path, const char *what,
                        lt_error *err);

/* A quick identity of a file (a base model's, recorded in training
 * checkpoints): its size and an XXH3-64 of its first and last MiB
 * (hashing a 100 GB base on every start would take minutes). */
lt_status lt_file_fingerprint(const char *path, uint64_t *bytes, uint64_t *fingerprint,
                              lt_error *err);

/* Writing a file so that a crash at any moment leaves either the old file
 * or the complete new one under the final name: write to a temporary name
 * in the same directory, flush and fsync, rename over the target, fsync
 * the directory. */
typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4096 + 32];
} lt_atomic_file;

lt_status lt_atomic_open(lt_atomic_file *af, const char *path, lt_error *err);
/* fwrite that records a failure naming the file. */
lt_status lt_atomic_write(lt_atomic_file *af, const void *data, size_t n, lt_error *err);
lt_status lt_atomic_commit(lt_atomic_file *af, lt_error *err);
/* Drops the temporary file (after a failure). */
void lt_atomic_abort(lt_atomic_file *af);

/* Reserves bytes of disk for the existing file at path without changing
 * its size, so that writes inside that range cannot fail for lack of space
 * later (a writer that cannot stop cleanly halfway, such as collective
 * parallel HDF5, checks this first). Where the file system cannot reserve,
 * the free space is compared instead. */
lt_status lt_reserve_space(const char *path, uint64_t bytes, lt_error *err);

/* Removes the temporaries that lt_atomic_open names (<name>.tmp.<pid>)
 * for each of names (NULL-terminated) in dir: a process killed while
 * writing one leaves it, and the next writer of the same file, which is
 * the only one, takes it away. */
void lt_atomic_remove_stale(const char *dir, const char *const *names);

/* The whole file at once, atomically: text and then a newline. */
lt_status lt_atomic_write_text(const char *path, const char *text, lt_error *err);

/* mkdir -p; existing directories are fine. */
lt_status lt_make_dirs(const char *path, lt_error *err);

/* Free bytes for an unprivileged writer on dir's file system (statvfs:
 * f_bavail x f_frsize; UINT64_MAX where the file system reports no size
 * at all, as some network and FUSE file systems do), after a write probe:
 * a small file is written, fsynced and removed, so a read-only, full or
 * over-quota directory fails here, naming dir, rather than at the run's
 * first output. */
lt_status lt_dir_free_space(const char *dir, uint64_t *free_bytes, lt_error *err);

/* An append-only log written one whole line at a time (metrics.jsonl): the
 * file is created with its first line, each line is one write(2), and a
 * line that does not fit is cut off again, so a full disk leaves the lines
 * before it -- never a partial line, never an empty file -- and an error
 * naming the file. lt_line_log_init first; no file exists before the
 * first line. */
typedef struct {
    int fd; /* -1 until the first line */
    uint64_t size; /* bytes of whole lines written */
    char path[4096];
} lt_line_log;

void lt_line_log_init(lt_line_log *log, const char *path);
/* line: n bytes, its newline included. */
lt_status lt_line_log_append(lt_line_log *log, const char *line, size_t n, lt_error *err);
/* fsyncs and closes (checked); safe on a log that wrote nothing. */
lt_status lt_line_log_close(lt_line_log *log, lt_error *err);

#endif
