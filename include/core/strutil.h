/*
 * strutil: checked conversions and small string helpers. They replace the
 * unchecked C library calls that tests/check_sources.sh refuses (the ato* family,
 * the scanf family, unbounded copies and tokenisers).
 */
#ifndef PIW_STRUTIL_H
#define PIW_STRUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Parses the whole of s as a decimal integer in [min, max]: optional '-',
 * digits only, no spaces or '+'. Returns 0 and sets *ret, DIAG_EPARSE when s is
 * not a number, DIAG_ELIMIT when it is out of range.
 */
int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *ret);

/* Parses a boolean as Go's strconv.ParseBool does (1 t T TRUE true True, 0 f F
 * FALSE false False). 0 or DIAG_EPARSE. */
int str_to_bool(const char *s, bool *ret);

/*
 * Parses an octal file mode "0000".."0777" (leading 0 optional). 0 or
 * DIAG_EPARSE.
 */
int str_to_mode(const char *s, int *ret);

/*
 * ASCII character classes, the one copy every parser uses. Unlike <ctype.h>
 * they ignore the locale and take any char (a negative one is no UB).
 */
/* ' ' or tab: the blanks around an INI value or a list item. */
static inline bool str_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* RFC 8259 whitespace (also what base64 skips): space, tab, LF, CR. */
static inline bool str_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline bool str_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* [a-z0-9] */
static inline bool str_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || str_is_digit(c);
}

/* [A-Za-z0-9] */
static inline bool str_is_alnum(char c)
{
	return str_is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* The value of a hex digit (either case), or -1 when c is none. */
static inline int str_hex_value(char c)
{
	if (str_is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline bool str_is_hex(char c)
{
	return str_hex_value(c) >= 0;
}

/* FNV-1a (64 bits): the offset basis to start from. */
#define STR_FNV1A_BASIS 1469598103934665603ULL

/*
 * FNV-1a (64 bits) of s continued from h (STR_FNV1A_BASIS for a fresh hash),
 * so several strings hash as their concatenation.
 */
static inline uint64_t str_fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* ASCII case-insensitive equality. */
bool str_eq_ci(const char *a, const char *b);

/* Whether s starts with prefix. */
bool str_has_prefix(const char *s, const char *prefix);

/*
 * Iterates a list separated by any character of `seps`, trimming blanks and
 * skipping empty items. *cursor starts at the list; each call sets *item and
 * *item_len and returns true, or returns false at the end. Allocates nothing.
 */
bool str_list_next(const char **cursor, const char *seps, const char **item,
		   size_t *item_len);

/* Whether the list (separators `seps`) has an item equal to name. */
bool str_list_contains(const char *list, const char *seps, const char *name);

/*
 * Length of the well-formed UTF-8 sequence at p (reading at most `left` bytes),
 * or 0 when it is invalid (overlong forms, surrogates and code points past
 * U+10FFFF too).
 */
size_t str_utf8_sequence(const unsigned char *p, size_t left);

/*
 * Whether len bytes are well-formed UTF-8; on failure *bad_at gets the byte
 * offset.
 */
bool str_is_utf8(const char *s, size_t len, size_t *bad_at);

/*
 * Copies up to n bytes of src (stopping at its NUL) to dst, truncated to size - 1
 * bytes and NUL-terminated (size > 0): snprintf(dst, size, "%.*s", n, src) without
 * the formatting, which cost ~650 instructions a call on the admission path.
 * Returns the bytes written, so that copies chain: n += str_copy(dst + n, size - n,
 * ...). SIZE_MAX for n copies the whole string.
 */
size_t str_copy(char *dst, size_t size, const char *src, size_t n);

/* Room for any long long in decimal, with its sign and NUL. */
#define STR_I64_SIZE 21

/* Writes v in decimal to buf, NUL-terminated; returns its length. */
size_t str_from_i64(char buf[STR_I64_SIZE], long long v);

/*
 * Writes a printable, shortened copy of an untrusted value for messages:
 * control and non-ASCII bytes become '?', and values longer than `shown` bytes
 * end in "...". out must have room for shown + 4 bytes.
 */
void str_shorten(const char *value, size_t shown, char *out, size_t out_size);

#endif
