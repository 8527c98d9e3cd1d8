/*
 * json: a pre-scan before cJSON so that hostile input is refused with a reason
 * before any tree is built: UTF-8 validity, a nesting bound (cJSON recurses per
 * level) and NUL escapes (which would silently truncate cJSON's C strings).
 */
#include "json.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bounds.h"
#include "mem.h"
#include "strutil.h"

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether any byte of w is zero (the classic bit trick). */
static uint64_t has_zero_byte(uint64_t w)
{
	return (w - ONES) & ~w & HIGHS;
}

static bool plain_in_string(unsigned char c)
{
	return c != '"' && c != '\\' && c < 0x80;
}

/*
 * Returns the position of the next byte that matters inside a string ('"', '\\' or a
 * non-ASCII byte) from i, or len. On little-endian machines it tests 8 bytes at a
 * time and jumps to the first hit (the lowest flagged byte of each test is exact);
 * most of a pod's bytes are inside strings.
 */
static size_t skip_plain_string(const unsigned char *p, size_t i, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (i + 8 <= len) {
		uint64_t w, hits;

		memcpy(&w, p + i, 8);
		hits = (w & HIGHS) | has_zero_byte(w ^ (ONES * '"')) |
		       has_zero_byte(w ^ (ONES * '\\'));
		if (hits)
			return i + ((size_t)__builtin_ctzll(hits) >> 3);
		i += 8;
	}
#endif
	while (i < len && plain_in_string(p[i]))
		i++;
	return i;
}

/*
 * One pass over the bytes: ASCII (nearly everything in a pod) takes a few instructions
 * per byte, string contents about one; only bytes >= 0x80 go through the UTF-8
 * decoder.
 */
static int json_prescan(const char *buf, size_t len, struct diag *d)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0, depth = 0;
	bool in_string = false;

	while (i < len) {
		unsigned char c;

		if (in_string) {
			i = skip_plain_string(p, i, len);
			while (i < len && p[i] != '"' && p[i] != '\\' &&
			       p[i] < 0x80)
				i++;
		}
		if (i == len)
			break;
		c = p[i];
		if (c >= 0x80) {
			size_t n = str_utf8_sequence(p + i, len - i);

			if (n == 0)
				return diag_set(d, DIAG_EPARSE,
						"invalid UTF-8 at byte %zu", i);
			i += n;
			continue;
		}
		if (in_string) {
			if (c == '"') {
				in_string = false;
			} else if (c == '\\' && i + 1 < len) {
				if (len - i >= 6 &&
				    memcmp(p + i + 1, "u0000", 5) == 0)
					return diag_set(
						d, DIAG_EPARSE,
						"NUL character in a string at byte %zu",
						i);
				i++; /* the escaped character is consumed below */
				if (p[i] >= 0x80)
					continue; /* checked as UTF-8 next round */
			}
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > BOUND_JSON_DEPTH)
				return diag_set(
					d, DIAG_EPARSE,
					"nesting deeper than %d levels at byte %zu",
					BOUND_JSON_DEPTH, i);
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
		i++;
	}
	return 0;
}

static bool only_whitespace(const char *p, const char *end)
{
	for (; p < end; p++) {
		if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			return false;
	}
	return true;
}

int json_parse(const char *buf, size_t len, cJSON **ret_root, struct diag *d)
{
	const char *end = NULL;
	cJSON *root;
	int rc;

	*ret_root = NULL;
	if (len == 0 || only_whitespace(buf, buf + len))
		return diag_set(d, DIAG_EPARSE, "empty document");
	rc = json_prescan(buf, len, d);
	if (rc != 0)
		return rc;
	root = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	if (root == NULL) {
		if (end == NULL || end < buf || end > buf + len)
			return diag_set(d, DIAG_EPARSE, "not valid JSON");
		return diag_set(d, DIAG_EPARSE, "not valid JSON (at byte %zu)",
				(size_t)(end - buf));
	}
	if (!only_whitespace(end, buf + len)) {
		cJSON_Delete(root);
		return diag_set(
			d, DIAG_EPARSE,
			"unexpected data after the JSON value at byte %zu",
			(size_t)(end - buf));
	}
	*ret_root = root;
	return 0;
}

enum json_lookup json_member(const cJSON *obj, const char *key, int type_mask,
			     const cJSON **ret)
{
	const cJSON *item;

	if (obj == NULL || !cJSON_IsObject(obj))
		return JSON_MISSING;
	item = cJSON_GetObjectItemCaseSensitive(obj, key);
	if (item == NULL || cJSON_IsNull(item))
		return JSON_MISSING;
	if ((item->type & 0xff & type_mask) == 0)
		return JSON_WRONG_TYPE;
	if (ret)
		*ret = item;
	return JSON_FOUND;
}

const char *json_string(const cJSON *obj, const char *key)
{
	const cJSON *item = NULL;

	if (json_member(obj, key, cJSON_String, &item) != JSON_FOUND)
		return NULL;
	return item->valuestring;
}

/* Appends s[0..len) escaped; the slow path, for strings that need escapes. */
static int append_escaped(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			rc = strbuf_add(sb, (char[]){ '\\', (char)c }, 2);
		else if (c < 0x20)
			rc = strbuf_add(sb,
					(char[]){ '\\', 'u', '0', '0',
						  hex[c >> 4], hex[c & 15] },
					6);
		else
			rc = strbuf_addc(sb, (char)c);
	}
	return rc;
}

int json_append_string(struct strbuf *sb, const char *s)
{
	size_t len = 0;
	bool clean = true;
	int rc;

	for (; s[len]; len++) {
		unsigned char c = (unsigned char)s[len];

		if (c < 0x20 || c == '"' || c == '\\')
			clean = false;
	}
	rc = strbuf_reserve(sb, len + 2);
	if (rc != 0)
		return rc;
	if (!clean) {
		rc = strbuf_addc(sb, '"');
		if (rc == 0)
			rc = append_escaped(sb, s, len);
		return rc ? rc : strbuf_addc(sb, '"');
	}
	sb->buf[sb->len] = '"';
	memcpy(sb->buf + sb->len + 1, s, len);
	sb->buf[sb->len + 1 + len] = '"';
	sb->len += len + 2;
	sb->buf[sb->len] = '\0';
	return 0;
}

int json_append_value(struct strbuf *sb, const cJSON *value)
{
	char *text = cJSON_PrintUnformatted(value);
	int rc;

	if (text == NULL)
		return DIAG_ENOMEM;
	rc = strbuf_adds(sb, text);
	mem_free(text);
	return rc;
}
