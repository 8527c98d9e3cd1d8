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
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/*
 * On little-endian machines 8 bytes are tested at a time, jumping to the first hit
 * (the lowest flagged byte of each test is exact): most of a pod's bytes are inside
 * strings.
 */
size_t json_scan_plain(const unsigned char *p, size_t i, size_t len)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (i + 8 <= len) {
		uint64_t w, hits;

		memcpy(&w, p + i, 8);
		hits = (w & HIGHS) | ((w - ONES * 0x20) & ~w & HIGHS) |
		       has_zero_byte(w ^ (ONES * '"')) |
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

static bool json_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') ||
	       ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/*
 * A \\u escape at i: cJSON reads a bad hex digit as 0, so "\\uZZZZ" would become a
 * NUL that silently truncates the string, as "\\u0000" would. Both are refused.
 */
static size_t scan_unicode_escape(const unsigned char *p, size_t i, size_t len,
				  struct diag *d)
{
	if (len - i < 6 || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) ||
	    !is_hex(p[i + 4]) || !is_hex(p[i + 5])) {
		diag_set(d, DIAG_EPARSE, "invalid \\u escape at byte %zu", i);
		return 0;
	}
	if (memcmp(p + i + 2, "0000", 4) == 0) {
		diag_set(d, DIAG_EPARSE,
			 "NUL character in a string at byte %zu", i);
		return 0;
	}
	return 6;
}

/* One byte that matters inside a string; returns bytes consumed, 0 on an error. */
static size_t scan_string_byte(const unsigned char *p, size_t i, size_t len,
			       bool *in_string, struct diag *d)
{
	unsigned char c = p[i];

	if (c == '"') {
		*in_string = false;
		return 1;
	}
	if (c < 0x20) {
		diag_set(d, DIAG_EPARSE,
			 "control character in a string at byte %zu", i);
		return 0;
	}
	if (c == '\\' && i + 1 < len && p[i + 1] == 'u')
		return scan_unicode_escape(p, i, len, d);
	/* a backslash and the escaped byte (a non-ASCII one is checked next round) */
	return c == '\\' && i + 1 < len && p[i + 1] < 0x80 ? 2 : 1;
}

/* One byte outside strings; returns false on an error. */
static bool scan_structure_byte(unsigned char c, size_t i, size_t *depth,
				bool *in_string, struct diag *d)
{
	if (c == '"') {
		*in_string = true;
	} else if (c == '[' || c == '{') {
		if (++*depth > BOUND_JSON_DEPTH) {
			diag_set(d, DIAG_EPARSE,
				 "nesting deeper than %d levels at byte %zu",
				 BOUND_JSON_DEPTH, i);
			return false;
		}
	} else if (c == ']' || c == '}') {
		if (*depth > 0)
			--*depth;
	} else if (c < 0x20 && !json_space(c)) {
		diag_set(d, DIAG_EPARSE, "control character at byte %zu", i);
		return false;
	}
	return true;
}

/*
 * One pass over the bytes: UTF-8 validity, nesting depth, no NUL escape, no raw
 * control characters (which cJSON would accept). ASCII takes a few instructions per
 * byte, string contents about one.
 */
static int json_prescan(const char *buf, size_t len, struct diag *d)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t i = 0, depth = 0;
	bool in_string = false;

	while (i < len) {
		size_t n;

		if (in_string && (i = json_scan_plain(p, i, len)) == len)
			break;
		if (p[i] >= 0x80) {
			n = str_utf8_sequence(p + i, len - i);
			if (n == 0)
				return diag_set(d, DIAG_EPARSE,
						"invalid UTF-8 at byte %zu", i);
		} else if (in_string) {
			n = scan_string_byte(p, i, len, &in_string, d);
			if (n == 0)
				return DIAG_EPARSE;
		} else {
			if (!scan_structure_byte(p[i], i, &depth, &in_string,
						 d))
				return DIAG_EPARSE;
			n = 1;
		}
		i += n;
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
