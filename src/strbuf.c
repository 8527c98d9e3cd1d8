/*
 * strbuf: bounded growable buffer. Growth doubles, so appending n bytes costs
 * O(n) amortised; the maximum protects every caller from unbounded input.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "invariant.h"
#include "mem.h"
#include "strutil.h"

/*
 * What every function here keeps: nothing allocated and nothing held, or fewer
 * bytes held than allocated (room for the NUL) and no more allocated than the
 * maximum allows. The byte at len is not part of it: patch_text() leaves its
 * closing ']' there, past len.
 */
#define STRBUF_VALID(sb)                             \
	((sb)->len <= (sb)->max &&                   \
	 ((sb)->buf == NULL                          \
		  ? (sb)->len == 0 && (sb)->cap == 0 \
		  : (sb)->len < (sb)->cap && (sb)->cap - 1 <= (sb)->max))

void strbuf_init(struct strbuf *sb, size_t max)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
	sb->max = max;
}

int strbuf_reserve(struct strbuf *sb, size_t len)
{
	size_t need, cap;
	char *grown;

	PIW_ASSERT(STRBUF_VALID(sb));
	if (len > sb->max || sb->len > sb->max - len)
		return DIAG_ELIMIT;
	need = sb->len + len + 1;
	if (need <= sb->cap)
		return 0;
	/* 256 first: most buffers of an admission (paths, values, the answer's
	 * head) outgrew 64 bytes, and each doubling is a realloc */
	cap = sb->cap ? sb->cap : 256;
	while (cap < need)
		cap *= 2;
	if (cap > sb->max + 1)
		cap = sb->max + 1;
	grown = mem_realloc(sb->buf, cap);
	if (grown == NULL)
		return DIAG_ENOMEM;
	sb->buf = grown;
	sb->cap = cap;
	return 0;
}

int strbuf_add_growing(struct strbuf *sb, const void *data, size_t len)
{
	int rc = strbuf_reserve(sb, len);

	if (rc != 0)
		return rc;
	if (len > 0)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	PIW_ASSERT(STRBUF_VALID(sb));
	return 0;
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return DIAG_EINVAL;
	rc = strbuf_reserve(sb, (size_t)n);
	if (rc != 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
	PIW_ASSERT(STRBUF_VALID(sb) && sb->buf[sb->len] == '\0');
	return 0;
}

const char *strbuf_str(const struct strbuf *sb)
{
	PIW_ASSERT(STRBUF_VALID(sb));
	return sb->buf ? sb->buf : "";
}

void strbuf_reset(struct strbuf *sb)
{
	PIW_ASSERT(STRBUF_VALID(sb));
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void strbuf_truncate(struct strbuf *sb, size_t len)
{
	PIW_ASSERT(STRBUF_VALID(sb));
	if (len >= sb->len)
		return;
	sb->len = len;
	sb->buf[len] = '\0';
}

void strbuf_free(struct strbuf *sb)
{
	PIW_ASSERT(STRBUF_VALID(sb));
	mem_free(sb->buf);
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
}

char *strbuf_detach(struct strbuf *sb, size_t *ret_len)
{
	char *out = sb->buf;

	PIW_ASSERT(STRBUF_VALID(sb));
	if (ret_len)
		*ret_len = sb->len;
	if (out == NULL)
		out = mem_strdup("");
	sb->buf = NULL;
	sb->len = 0;
	sb->cap = 0;
	return out;
}

int strbuf_add_i64(struct strbuf *sb, long long v)
{
	char digits[STR_I64_SIZE];

	return strbuf_add(sb, digits, str_from_i64(digits, v));
}
