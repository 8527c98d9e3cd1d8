/*
 * fileio: reading whole files with a size limit, for profiles, pods and
 * ServiceAccount manifests. I/O: not part of the pure core.
 */
#ifndef PIW_FILEIO_H
#define PIW_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "diag.h"

/*
 * Reads all of `path` ("-" is standard input) into a new NUL-terminated buffer
 * (free with mem_free). DIAG_ELIMIT when it is larger than max bytes, DIAG_EIO
 * with the system's reason otherwise; d->where is set to the path.
 */
int file_read(const char *path, size_t max, char **ret_buf, size_t *ret_len,
	      struct diag *d);

/*
 * Reads the leading whitespace-separated decimal numbers of a small one-line file
 * (/proc, /sys) into fields, at most n; returns how many were read (0 when the file
 * is missing; parsing stops at the first field that is not a number, e.g. "max").
 */
size_t file_read_numbers(const char *path, int64_t *fields, size_t n);

/*
 * What stat() says of a file, links followed: it changes when the file is
 * rewritten or replaced (a renamed-over certificate, a rotated token, a
 * mounted ConfigMap whose ..data link Kubernetes swapped). exists is false
 * when stat() fails.
 */
struct file_stamp {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

/* Fills *s for path (all zero, exists false, when it cannot be stat()ed). */
void file_stamp_take(const char *path, struct file_stamp *s);

/* Whether two stamps say the same file, unchanged (two missing files are). */
bool file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b);

#endif
