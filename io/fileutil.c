/* fallocate and FALLOC_FL_KEEP_SIZE are Linux's. */
#define _GNU_SOURCE
#include "io/fileutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/hash.h"

lt_status lt_file_size(const char *path, uint64_t *size, lt_error *err) {
    struct stat st;
    if (stat(path, &st) != 0)
        return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return lt_fail(err, LT_ERR_IO, "%s: not a regular file", path);
    *size = (uint64_t)st.st_size;
    return LT_OK;
}

lt_status lt_read_file(const char *path, uint64_t max_bytes, char **data, uint64_t *size,
                       lt_error *err) {
    *data = NULL;
    *size = 0;
    uint64_t n = 0;
    lt_status st = lt_file_size(path, &n, err);
    if (st != LT_OK) return st;
    if (n > max_bytes)
        return lt_fail(err, LT_ERR_FORMAT, "%s: file is %llu bytes, expected at most %llu", path,
                       (unsigned long long)n, (unsigned long long)max_bytes);
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        return lt_fail(err, LT_ERR_NOMEM, "%s: cannot allocate %llu bytes", path,
                       (unsigned long long)n + 1);
    }
    st = lt_read_exact(f, buf, (size_t)n, path, "contents", err);
    fclose(f);
    if (st != LT_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return LT_OK;
}

lt_status lt_read_exact(FILE *f, void *dst, size_t n, const char *path, const char *what,
                        lt_error *err) {
    if (n == 0) return LT_OK;
    size_t got = fread(dst, 1, n, f);
    if (got != n) {
        if (ferror(f))
            return lt_fail(err, LT_ERR_IO, "%s: read error in %s: %s", path, what, strerror(errno));
        return lt_fail(err, LT_ERR_FORMAT, "%s: truncated in %s: expected %zu bytes, got %zu",
                       path, what, n, got);
    }
    return LT_OK;
}

lt_status lt_file_fingerprint(const char *path, uint64_t *bytes, uint64_t *fingerprint,
                              lt_error *err) {
    lt_status st = lt_file_size(path, bytes, err);
    if (st != LT_OK) return st;
    FILE *f = fopen(path, "rb");
    if (!f) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    const size_t MiB = 1u << 20;
    unsigned char *buf = malloc(MiB);
    uint64_t h = lt_hash64(bytes, sizeof *bytes);
    for (int part = 0; part < 2 && buf && st == LT_OK; part++) {
        uint64_t at = part == 0 ? 0 : (*bytes > MiB ? *bytes - MiB : 0);
        size_t n = *bytes - at < MiB ? (size_t)(*bytes - at) : MiB;
        if (fseek(f, (long)at, SEEK_SET) != 0) st = lt_fail(err, LT_ERR_IO, "%s: seek failed", path);
        if (st == LT_OK) st = lt_read_exact(f, buf, n, path, "fingerprint", err);
        if (st == LT_OK) h = lt_hash64_seeded(h, buf, n);
    }
    if (!buf) st = lt_fail(err, LT_ERR_NOMEM, "%s: fingerprint: out of memory", path);
    free(buf);
    fclose(f);
    *fingerprint = h;
    return st;
}

lt_status lt_atomic_open(lt_atomic_file *af, const char *path, lt_error *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return lt_fail(err, LT_ERR_IO, "%.64s...: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return lt_fail(err, LT_ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
    return LT_OK;
}

lt_status lt_atomic_write(lt_atomic_file *af, const void *data, size_t n, lt_error *err) {
    if (n && fwrite(data, 1, n, af->f) != n)
        return lt_fail(err, LT_ERR_IO, "%s: write failed: %s", af->tmp, strerror(errno));
    return LT_OK;
}

static void fsync_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    int fd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

lt_status lt_atomic_commit(lt_atomic_file *af, lt_error *err) {
    FILE *f = af->f;
    af->f = NULL;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int e = errno;
        fclose(f);
        unlink(af->tmp);
        return lt_fail(err, LT_ERR_IO, "%s: cannot flush to disk: %s", af->tmp, strerror(e));
    }
    if (fclose(f) != 0) {
        int e = errno;
        unlink(af->tmp);
        return lt_fail(err, LT_ERR_IO, "%s: close failed: %s", af->tmp, strerror(e));
    }
    if (rename(af->tmp, af->path) != 0) {
        int e = errno;
        unlink(af->tmp);
        return lt_fail(err, LT_ERR_IO, "%s: cannot rename into place: %s", af->path, strerror(e));
    }
    fsync_parent(af->path);
    return LT_OK;
}

lt_status lt_atomic_write_text(const char *path, const char *text, lt_error *err) {
    lt_atomic_file af;
    lt_status st = lt_atomic_open(&af, path, err);
    if (st != LT_OK) return st;
    if ((st = lt_atomic_write(&af, text, strlen(text), err)) == LT_OK &&
        (st = lt_atomic_write(&af, "\n", 1, err)) == LT_OK)
        return lt_atomic_commit(&af, err);
    lt_atomic_abort(&af);
    return st;
}

void lt_atomic_remove_stale(const char *dir, const char *const *names) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        for (const char *const *n = names; *n; n++) {
            const size_t len = strlen(*n);
            const char *rest = e->d_name + len;
            if (strncmp(e->d_name, *n, len) != 0 || strncmp(rest, ".tmp.", 5) != 0) continue;
            rest += 5;
            if (!*rest || strspn(rest, "0123456789") != strlen(rest)) continue;
            char full[4096 + 300];
            snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
            unlink(full);
        }
    }
    closedir(d);
}

void lt_atomic_abort(lt_atomic_file *af) {
    if (af->f) fclose(af->f);
    af->f = NULL;
    if (af->tmp[0]) unlink(af->tmp);
}

lt_status lt_make_dirs(const char *path, lt_error *err) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) return lt_fail(err, LT_ERR_IO, "%.64s...: path too long", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return lt_fail(err, LT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return lt_fail(err, LT_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return lt_fail(err, LT_ERR_IO, "%s: exists and is not a directory", buf);
    return LT_OK;
}

lt_status lt_reserve_space(const char *path, uint64_t bytes, lt_error *err) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return lt_fail(err, LT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int rc = bytes ? fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) : 0, e = rc ? errno : 0;
    if (rc && (e == EOPNOTSUPP || e == ENOSYS)) {
        struct statvfs v;
        rc = fstatvfs(fd, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < bytes;
        e = ENOSPC;
    }
    close(fd);
    if (rc)
        return lt_fail(err, LT_ERR_IO, "%s: cannot reserve %llu bytes: %s", path, (unsigned long long)bytes,
                       strerror(e));
    return LT_OK;
}

lt_status lt_dir_free_space(const char *dir, uint64_t *free_bytes, lt_error *err) {
    char probe[4096 + 64];
    snprintf(probe, sizeof probe, "%s/.loratrain-probe.tmp.%ld", dir, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s", dir, strerror(errno));
    /* One page's worth: enough to need a block of its own. */
    static const char zeros[4096];
    ssize_t w = write(fd, zeros, sizeof zeros);
    int e = w == (ssize_t)sizeof zeros ? 0 : w < 0 ? errno : ENOSPC;
    if (!e && fsync(fd) != 0) e = errno;
    if (close(fd) != 0 && !e) e = errno;
    unlink(probe);
    if (e) return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s", dir, strerror(e));
    struct statvfs v;
    if (statvfs(dir, &v) != 0)
        return lt_fail(err, LT_ERR_IO, "%s: cannot read the free space: %s", dir, strerror(errno));
    *free_bytes = v.f_blocks ? (uint64_t)v.f_bavail * (uint64_t)v.f_frsize : UINT64_MAX;
    return LT_OK;
}

void lt_line_log_init(lt_line_log *log, const char *path) {
    memset(log, 0, sizeof *log);
    log->fd = -1;
    snprintf(log->path, sizeof log->path, "%s", path);
}

/* After a failed line: back to the whole lines, and no file at all when
 * there are none. */
static void line_log_cut(lt_line_log *log) {
    if (log->size == 0) {
        close(log->fd);
        log->fd = -1;
        unlink(log->path);
    } else if (ftruncate(log->fd, (off_t)log->size) != 0) {
        /* Shrinking needs no space; nothing more to do if even that fails. */
    }
}

lt_status lt_line_log_append(lt_line_log *log, const char *line, size_t n, lt_error *err) {
    if (log->fd < 0) {
        log->fd = open(log->path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log->fd < 0) return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s", log->path, strerror(errno));
        struct stat st;
        if (fstat(log->fd, &st) != 0) {
            int e = errno;
            close(log->fd);
            log->fd = -1;
            return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s", log->path, strerror(e));
        }
        log->size = (uint64_t)st.st_size;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(log->fd, line + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            line_log_cut(log);
            return lt_fail(err, LT_ERR_IO, "%s: cannot write: %s", log->path, strerror(e));
        }
        done += (size_t)w;
    }
    log->size += n;
    return LT_OK;
}

lt_status lt_line_log_close(lt_line_log *log, lt_error *err) {
    if (log->fd < 0) return LT_OK;
    int e = fsync(log->fd) != 0 && errno != EINVAL ? errno : 0;
    if (close(log->fd) != 0 && !e) e = errno;
    log->fd = -1;
    if (e) return lt_fail(err, LT_ERR_IO, "%s: cannot flush to disk: %s", log->path, strerror(e));
    return LT_OK;
}
