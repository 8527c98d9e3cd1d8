/*
 * strutil: checked conversions and allocation-free list iteration. Every number
 * the webhook reads from a profile, a flag or an annotation goes through
 * str_to_i64.
 */
#include "strutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

int str_to_i64(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	const char *p = s;
	char *end = NULL;
	long long v;

	if (*p == '-')
		p++;
	if (!str_is_digit(*p))
		return DIAG_EPARSE;
	while (str_is_digit(*p))
		p++;
	if (*p != '\0')
		return DIAG_EPARSE;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || v < min || v > max)
		return DIAG_ELIMIT;
	*ret = (int64_t)v;
	return 0;
}

/*
 * The spellings Go's strconv.ParseBool accepts, exactly: the AWS webhook reads
 * its boolean annotations with it, so each must keep working after a migration.
 */
int str_to_bool(const char *s, bool *ret)
{
	static const char *const yes[] = {
		"1", "t", "T", "TRUE", "true", "True"
	};
	static const char *const no[] = { "0",	   "f",	    "F",
					  "FALSE", "false", "False" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return DIAG_EPARSE;
}

int str_to_mode(const char *s, int *ret)
{
	size_t n = strlen(s);
	int mode = 0;

	if (n == 0 || n > 4)
		return DIAG_EPARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return DIAG_EPARSE;
		mode = mode * 8 + (s[i] - '0');
	}
	if (mode > 0777)
		return DIAG_EPARSE;
	*ret = mode;
	return 0;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool str_eq_ci(const char *a, const char *b)
{
	while (*a && *b && lower(*a) == lower(*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

bool str_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_list_next(const char **cursor, const char *seps, const char **item,
		   size_t *item_len)
{
	const char *p = *cursor;

	for (;;) {
		const char *start, *end;

		while (*p && (str_is_blank(*p) || strchr(seps, *p)))
			p++;
		if (*p == '\0') {
			*cursor = p;
			return false;
		}
		start = p;
		while (*p && !strchr(seps, *p))
			p++;
		end = p;
		while (end > start && str_is_blank(end[-1]))
			end--;
		if (end > start) {
			*item = start;
			*item_len = (size_t)(end - start);
			*cursor = p;
			return true;
		}
	}
}

bool str_list_contains(const char *list, const char *seps, const char *name)
{
	const char *cursor = list, *item;
	size_t len, name_len = strlen(name);

	while (str_list_next(&cursor, seps, &item, &len)) {
		if (len == name_len && memcmp(item, name, len) == 0)
			return true;
	}
	return false;
}

size_t str_copy(char *dst, size_t size, const char *src, size_t n)
{
	size_t len;

	if (size == 0)
		return 0;
	/* strnlen and memcpy go a word or a vector at a time: a byte loop
	 * cost ~300 instructions per path on the admission path */
	len = strnlen(src, n < size - 1 ? n : size - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
	return len;
}

size_t str_from_i64(char buf[STR_I64_SIZE], long long v)
{
	char digits[STR_I64_SIZE], *p = digits + sizeof(digits);
	unsigned long long u =
		v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t len;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	len = (size_t)(digits + sizeof(digits) - p);
	memcpy(buf, p, len);
	buf[len] = '\0';
	return len;
}

void str_shorten(const char *value, size_t shown, char *out, size_t out_size)
{
	size_t i, n = 0;

	if (out_size == 0)
		return;
	for (i = 0; value[i] != '\0' && i < shown && n + 1 < out_size; i++) {
		unsigned char c = (unsigned char)value[i];

		out[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	if (value[i] != '\0' && n + 4 <= out_size) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
}

size_t str_utf8_sequence(const unsigned char *p, size_t left)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool str_is_utf8(const char *s, size_t len, size_t *bad_at)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		size_t n = str_utf8_sequence(p + i, len - i);

		if (n == 0) {
			if (bad_at)
				*bad_at = i;
			return false;
		}
		i += n;
	}
	return true;
}
