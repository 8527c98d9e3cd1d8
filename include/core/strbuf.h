/*
 * strbuf: a growable, NUL-terminated byte buffer with a hard maximum (after
 * curl's dynbuf). Appending past the maximum fails with DIAG_ELIMIT and leaves
 * the buffer as it was. Its invariants (len < cap, cap within the maximum) are
 * asserted in debug builds (invariant.h).
 */
#ifndef PIW_STRBUF_H
#define PIW_STRBUF_H

#include <stddef.h>
#include <string.h>

struct strbuf {
	char *buf;  /* NULL until the first append */
	size_t len; /* bytes used, without the terminating NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* largest len allowed */
};

/* Prepares an empty buffer that may grow to `max` bytes. Allocates nothing. */
void strbuf_init(struct strbuf *sb, size_t max);

/* strbuf_add for bytes that may not fit in what is allocated: grows the buffer. */
int strbuf_add_growing(struct strbuf *sb, const void *data, size_t len);

/*
 * Appends bytes / a string / one char / printf output. 0, DIAG_ENOMEM or
 * DIAG_ELIMIT. The first three are inline, a plain copy when the bytes fit (cap
 * never exceeds max + 1, so they are within the maximum too), and a literal's
 * length is a constant: the patch and the answer are built from a few hundred
 * short appends per admission.
 */
static inline int strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	if (len >= sb->cap - sb->len) /* 0 >= 0 for a buffer never grown */
		return strbuf_add_growing(sb, data, len);
	if (len > 0)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
	return 0;
}

static inline int strbuf_adds(struct strbuf *sb, const char *s)
{
	return strbuf_add(sb, s, strlen(s));
}

static inline int strbuf_addc(struct strbuf *sb, char c)
{
	return strbuf_add(sb, &c, 1);
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Appends a decimal integer (no printf on hot paths). */
int strbuf_add_i64(struct strbuf *sb, long long v);

/* Makes room for `len` more bytes without changing the contents. */
int strbuf_reserve(struct strbuf *sb, size_t len);

/* Contents as a C string; "" for a buffer that never grew. */
const char *strbuf_str(const struct strbuf *sb);

/* Empties the buffer, keeping its memory. */
void strbuf_reset(struct strbuf *sb);

/* Shortens the buffer to len bytes (len <= current length). */
void strbuf_truncate(struct strbuf *sb, size_t len);

/* Frees the memory; the buffer is empty and reusable afterwards. */
void strbuf_free(struct strbuf *sb);

/*
 * Hands the contents to the caller (free with mem_free), storing the length in
 * *ret_len when not NULL, and leaves the buffer empty. A buffer that never grew
 * yields a fresh ""; NULL only when that allocation fails.
 */
char *strbuf_detach(struct strbuf *sb, size_t *ret_len);

#endif
