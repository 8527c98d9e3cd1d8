/*
 * strbuf: a growable, NUL-terminated byte buffer with a hard maximum (after
 * curl's dynbuf). Appending past the maximum fails with DIAG_ELIMIT and leaves
 * the buffer as it was. Its invariants (len < cap, cap within the maximum) are
 * asserted in debug builds (invariant.h).
 */
#ifndef PIW_STRBUF_H
#define PIW_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *buf;  /* NULL until the first append */
	size_t len; /* bytes used, without the terminating NUL */
	size_t cap; /* bytes allocated */
	size_t max; /* largest len allowed */
};

/* Prepares an empty buffer that may grow to `max` bytes. Allocates nothing. */
void strbuf_init(struct strbuf *sb, size_t max);

/*
 * Appends bytes / a string / one char / printf output. 0, DIAG_ENOMEM or
 * DIAG_ELIMIT.
 */
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addc(struct strbuf *sb, char c);
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
