/*
 * fileio: bounded whole-file reads. Reading stops one byte past the limit, so a
 * huge or endless input (a FIFO, /dev/zero) costs at most max + 1 bytes.
 */
#include "fileio.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "mem.h"
#include "strutil.h"
#include "strbuf.h"

static int read_stream(FILE *f, const char *path, size_t max, struct strbuf *sb,
		       struct diag *d)
{
	char chunk[16384];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		int rc = strbuf_add(sb, chunk, n);

		if (rc == DIAG_ELIMIT)
			return diag_set_at(d, rc, path, 0,
					   "larger than %zu bytes", max);
		if (rc != 0)
			return diag_set_at(d, rc, path, 0, "out of memory");
	}
	if (ferror(f))
		return diag_set_at(d, DIAG_EIO, path, 0, "%s", strerror(errno));
	return 0;
}

int file_read(const char *path, size_t max, char **ret_buf, size_t *ret_len,
	      struct diag *d)
{
	bool use_stdin = strcmp(path, "-") == 0;
	struct strbuf sb;
	FILE *f;
	int rc;

	*ret_buf = NULL;
	*ret_len = 0;
	strbuf_init(&sb, max);
	f = use_stdin ? stdin : fopen(path, "rb");
	if (f == NULL)
		return diag_set_at(d, DIAG_EIO, path, 0, "%s", strerror(errno));
	rc = read_stream(f, use_stdin ? "standard input" : path, max, &sb, d);
	if (!use_stdin)
		fclose(f);
	if (rc != 0) {
		strbuf_free(&sb);
		return rc;
	}
	*ret_buf = strbuf_detach(&sb, ret_len);
	if (*ret_buf == NULL)
		return diag_set_at(d, DIAG_ENOMEM, path, 0, "out of memory");
	return 0;
}

size_t file_read_numbers(const char *path, int64_t *fields, size_t n)
{
	const char *cursor, *item;
	char *text = NULL, number[24];
	size_t len = 0, got = 0;

	if (file_read(path, 4096, &text, &len, NULL) != 0)
		return 0;
	cursor = text;
	while (got < n && str_list_next(&cursor, " \t\n", &item, &len)) {
		if (len >= sizeof(number))
			break;
		memcpy(number, item, len);
		number[len] = '\0';
		if (str_to_i64(number, INT64_MIN, INT64_MAX, &fields[got]) != 0)
			break;
		got++;
	}
	mem_free(text);
	return got;
}

void file_stamp_take(const char *path, struct file_stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->exists = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

bool file_stamp_equal(const struct file_stamp *a, const struct file_stamp *b)
{
	if (!a->exists || !b->exists)
		return a->exists == b->exists;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       same_time(a->mtime, b->mtime) && same_time(a->ctime, b->ctime);
}
