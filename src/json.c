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

struct scan {
	const unsigned char *p;
	size_t len;
	size_t depth;
	bool in_string;
};

/* Checks one byte position; returns bytes consumed or 0 with a reason in d. */
static size_t scan_step(struct scan *s, size_t i, struct diag *d)
{
	unsigned char c = s->p[i];
	size_t n = str_utf8_sequence(s->p + i, s->len - i);

	if (n == 0) {
		diag_set(d, DIAG_EPARSE, "invalid UTF-8 at byte %zu", i);
		return 0;
	}
	if (s->in_string) {
		if (c == '"')
			s->in_string = false;
		else if (c == '\\' && i + 1 < s->len) {
			if (s->len - i >= 6 &&
			    memcmp(s->p + i + 1, "u0000", 5) == 0) {
				diag_set(
					d, DIAG_EPARSE,
					"NUL character in a string at byte %zu",
					i);
				return 0;
			}
			return 2;
		}
		return n;
	}
	if (c == '"')
		s->in_string = true;
	else if (c == '[' || c == '{') {
		if (++s->depth > BOUND_JSON_DEPTH) {
			diag_set(d, DIAG_EPARSE,
				 "nesting deeper than %d levels at byte %zu",
				 BOUND_JSON_DEPTH, i);
			return 0;
		}
	} else if ((c == ']' || c == '}') && s->depth > 0)
		s->depth--;
	return n;
}

static int json_prescan(const char *buf, size_t len, struct diag *d)
{
	struct scan s = { (const unsigned char *)buf, len, 0, false };
	size_t i = 0;

	while (i < len) {
		size_t n = scan_step(&s, i, d);

		if (n == 0)
			return DIAG_EPARSE;
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

int json_append_string(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const char *run = s;
	int rc = strbuf_addc(sb, '"');

	for (const char *p = s; rc == 0 && *p; p++) {
		unsigned char c = (unsigned char)*p;
		char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = strbuf_add(sb, run, (size_t)(p - run));
		if (rc == 0 && (c == '"' || c == '\\'))
			rc = strbuf_add(sb, (char[]){ '\\', (char)c }, 2);
		else if (rc == 0)
			rc = strbuf_add(sb, esc, sizeof(esc));
		run = p + 1;
	}
	if (rc == 0)
		rc = strbuf_adds(sb, run);
	if (rc == 0)
		rc = strbuf_addc(sb, '"');
	return rc;
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
