/*
 * fileio: reading whole files with a size limit, for profiles, pods and
 * ServiceAccount manifests. I/O: not part of the pure core.
 */
#ifndef PIW_FILEIO_H
#define PIW_FILEIO_H

#include <stddef.h>
#include <stdint.h>

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

#endif
