/*
 * json_prune: recursive descent over the bytes, with three ways to take a value:
 * skip it (validate only), build it whole, or build an object or array keeping only
 * what the schema names. It accepts exactly what json_parse() (the pre-scan, then
 * cJSON) accepts: cJSON's own leniencies are reproduced on purpose (a number is as
 * much of the run of [0-9+-.eE] as strtod reads; a leading byte-order mark is skipped),
 * and so are the pre-scan's refusals (invalid UTF-8, raw control characters, "\u0000",
 * nesting past BOUND_JSON_DEPTH, trailing data). tests/fuzz/fuzz_json_prune.c holds
 * the two parsers to that, input by input.
 */
#include "json_prune.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "json.h"
#include "mem.h"
#include "strutil.h"

enum take { SKIP, FULL, PRUNE };

/* How to take one value: the mode and, for PRUNE, the schema. */
struct how {
	enum take take;
	const struct json_keep *members;
	bool each;
};

struct parser {
	const unsigned char *p;
	size_t len, pos, depth;
	struct diag *d;
};

static int fail(struct parser *ps, const char *what)
{
	return diag_set(ps->d, DIAG_EPARSE, "%s at byte %zu", what, ps->pos);
}

static int out_of_memory(struct parser *ps)
{
	return diag_set(ps->d, DIAG_ENOMEM, "out of memory");
}

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(struct parser *ps)
{
	while (ps->pos < ps->len && is_space(ps->p[ps->pos]))
		ps->pos++;
}

/* ---- strings ---- */

static int hex4(const unsigned char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A \u escape at i (the backslash): its length (6, or 12 for a surrogate pair) and
 * code point, or 0 when invalid, as cJSON decides it (plus: U+0000 is refused). */
static size_t unicode_escape(const unsigned char *p, size_t i, size_t len,
			     uint32_t *cp)
{
	unsigned hi, lo;

	if (len - i < 6 || hex4(p + i + 2, &hi) != 0 || hi == 0 ||
	    (hi >= 0xdc00 && hi <= 0xdfff))
		return 0;
	if (hi < 0xd800 || hi > 0xdbff) {
		*cp = hi;
		return 6;
	}
	if (len - i < 12 || p[i + 6] != '\\' || p[i + 7] != 'u' ||
	    hex4(p + i + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
		return 0;
	*cp = 0x10000 + (((hi & 0x3ff) << 10) | (lo & 0x3ff));
	return 12;
}

/* The length of the escape at i, 0 when invalid; its decoded code point in *cp. */
static size_t escape(const unsigned char *p, size_t i, size_t len, uint32_t *cp)
{
	static const char from[] = "bfnrt\"\\/", to[] = "\b\f\n\r\t\"\\/";
	const char *hit;

	if (i + 1 >= len)
		return 0;
	if (p[i + 1] == 'u')
		return unicode_escape(p, i, len, cp);
	hit = p[i + 1] ? strchr(from, p[i + 1]) : NULL;
	if (hit == NULL)
		return 0;
	*cp = (unsigned char)to[hit - from];
	return 2;
}

/* Why the escape at i is refused, in json_parse()'s words. */
static const char *escape_error(const unsigned char *p, size_t i, size_t len)
{
	if (i + 1 < len && p[i + 1] == 'u') {
		if (len - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0)
			return "NUL character in a string";
		return "invalid \\u escape";
	}
	return "invalid escape";
}

/* Validates the string whose opening quote is at ps->pos; sets *end (the closing
 * quote) and advances past it. */
static int scan_string(struct parser *ps, size_t *end)
{
	size_t i = ps->pos + 1, n;
	uint32_t cp;

	for (;;) {
		i = json_scan_plain(ps->p, i, ps->len);
		ps->pos = i;
		if (i >= ps->len)
			return fail(ps, "unterminated string");
		if (ps->p[i] == '"')
			break;
		if (ps->p[i] < 0x20)
			return fail(ps, "control character in a string");
		if (ps->p[i] >= 0x80)
			n = str_utf8_sequence(ps->p + i, ps->len - i);
		else if ((n = escape(ps->p, i, ps->len, &cp)) == 0)
			return fail(ps, escape_error(ps->p, i, ps->len));
		if (n == 0)
			return fail(ps, "invalid UTF-8");
		i += n;
	}
	*end = i;
	ps->pos = i + 1;
	return 0;
}

static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the validated bytes (start, end) into a new NUL-terminated string. Escapes
 * never decode longer than they are written, so end - start bytes suffice. */
static char *decode(const unsigned char *p, size_t start, size_t end)
{
	char *out = mem_alloc(end - start + 1);
	size_t i = start, n = 0;

	if (out == NULL)
		return NULL;
	while (i < end) {
		uint32_t cp = 0; /* set by escape(): the string was validated */

		if (p[i] != '\\') {
			out[n++] = (char)p[i++];
			continue;
		}
		i += escape(p, i, end + 1, &cp);
		n += put_utf8(out + n, cp);
	}
	out[n] = '\0';
	return out;
}

/* Reads a string; *out gets it decoded when out is not NULL. */
static int take_string(struct parser *ps, char **out)
{
	size_t start = ps->pos + 1, end = start;
	int rc = scan_string(ps, &end);

	if (rc != 0 || out == NULL)
		return rc;
	*out = decode(ps->p, start, end);
	return *out ? 0 : out_of_memory(ps);
}

/* ---- scalars ---- */

static bool number_byte(unsigned char c)
{
	return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == 'e' ||
	       c == 'E' || c == '.';
}

/*
 * cJSON's rule (since 1.7.17, and in Debian 12's 1.7.15 with its security fixes):
 * the run of [0-9+-eE.], of any length, as far as strtod reads it.
 */
static int take_number(struct parser *ps, cJSON **out)
{
	char small[64], *text = small, *stop = NULL;
	size_t n = 0, used;
	double v;

	while (ps->pos + n < ps->len && number_byte(ps->p[ps->pos + n]))
		n++;
	if (n >= sizeof(small) && (text = mem_alloc(n + 1)) == NULL)
		return out_of_memory(ps);
	memcpy(text, ps->p + ps->pos, n);
	text[n] = '\0';
	v = strtod(text, &stop);
	used = (size_t)(stop - text);
	if (text != small)
		mem_free(text);
	if (used == 0)
		return fail(ps, "not valid JSON");
	ps->pos += used;
	if (out && (*out = cJSON_CreateNumber(v)) == NULL)
		return out_of_memory(ps);
	return 0;
}

static int take_literal(struct parser *ps, cJSON **out)
{
	static const struct {
		const char *text;
		int type;
	} literals[] = { { "null", cJSON_NULL },
			 { "false", cJSON_False },
			 { "true", cJSON_True } };

	for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); i++) {
		size_t n = strlen(literals[i].text);

		if (ps->len - ps->pos < n ||
		    memcmp(ps->p + ps->pos, literals[i].text, n) != 0)
			continue;
		ps->pos += n;
		if (out == NULL)
			return 0;
		*out = cJSON_CreateNull();
		if (*out == NULL)
			return out_of_memory(ps);
		(*out)->type = literals[i].type;
		(*out)->valueint =
			literals[i].type == cJSON_True; /* as cJSON */
		return 0;
	}
	return fail(ps, "not valid JSON");
}

/* ---- values, objects, arrays ---- */

static int take_value(struct parser *ps, struct how how, cJSON **out);

/* The way to take a member of an object taken with `how`. */
static struct how member_how(struct how how, const char *key)
{
	if (how.take != PRUNE)
		return how; /* SKIP and FULL go all the way down */
	for (const struct json_keep *k = how.members; k->key; k++) {
		if (strcmp(k->key, key) == 0)
			return (struct how){ k->members ? PRUNE : FULL,
					     k->members, k->each };
	}
	return (struct how){ SKIP, NULL, false };
}

static int enter(struct parser *ps)
{
	if (++ps->depth > BOUND_JSON_DEPTH)
		return diag_set(ps->d, DIAG_EPARSE,
				"nesting deeper than %d levels at byte %zu",
				BOUND_JSON_DEPTH, ps->pos);
	ps->pos++; /* the bracket */
	skip_space(ps);
	return 0;
}

/* After an element: ',' (true, more follow) or the closing bracket (false). */
static int next_or_close(struct parser *ps, char close, bool *more)
{
	skip_space(ps);
	if (ps->pos < ps->len && ps->p[ps->pos] == ',') {
		ps->pos++;
		*more = true;
		return 0;
	}
	if (ps->pos < ps->len && ps->p[ps->pos] == close) {
		ps->pos++;
		ps->depth--;
		*more = false;
		return 0;
	}
	return fail(ps, "not valid JSON");
}

static int take_member(struct parser *ps, struct how how, cJSON *obj)
{
	char *key = NULL;
	cJSON *child = NULL;
	bool want_key = how.take != SKIP;
	struct how child_how;
	int rc;

	skip_space(ps);
	if (ps->pos >= ps->len || ps->p[ps->pos] != '"')
		return fail(ps, "not valid JSON");
	rc = take_string(ps, want_key ? &key : NULL);
	skip_space(ps);
	if (rc == 0 && (ps->pos >= ps->len || ps->p[ps->pos++] != ':'))
		rc = fail(ps, "not valid JSON");
	child_how = rc == 0 && want_key ? member_how(how, key) : how;
	if (rc == 0)
		rc = take_value(ps, child_how,
				child_how.take == SKIP ? NULL : &child);
	if (rc == 0 && child) {
		child->string = key; /* cJSON frees it with the node */
		key = NULL;
		cJSON_AddItemToArray(obj, child);
	}
	mem_free(key);
	return rc;
}

static int take_object(struct parser *ps, struct how how, cJSON **out)
{
	cJSON *obj = NULL;
	bool more = true;
	int rc = enter(ps);

	if (rc != 0)
		return rc;
	if (how.take == PRUNE && how.each)
		how = (struct how){ FULL, NULL,
				    false }; /* an array was expected */
	if (out && (obj = cJSON_CreateObject()) == NULL)
		return out_of_memory(ps);
	if (ps->pos < ps->len && ps->p[ps->pos] == '}') {
		ps->pos++;
		ps->depth--;
		more = false;
	}
	while (rc == 0 && more) {
		rc = take_member(ps, how, obj);
		if (rc == 0)
			rc = next_or_close(ps, '}', &more);
	}
	if (rc != 0)
		cJSON_Delete(obj);
	else if (out)
		*out = obj;
	return rc;
}

static int take_array(struct parser *ps, struct how how, cJSON **out)
{
	struct how element =
		how.take == PRUNE && how.each
			? (struct how){ PRUNE, how.members, false }
			: (struct how){ how.take == SKIP ? SKIP : FULL, NULL,
					false };
	cJSON *arr = NULL;
	bool more = true;
	int rc = enter(ps);

	if (rc != 0)
		return rc;
	if (out && (arr = cJSON_CreateArray()) == NULL)
		return out_of_memory(ps);
	if (ps->pos < ps->len && ps->p[ps->pos] == ']') {
		ps->pos++;
		ps->depth--;
		more = false;
	}
	while (rc == 0 && more) {
		cJSON *item = NULL;

		rc = take_value(ps, element, arr ? &item : NULL);
		if (rc == 0 && item)
			cJSON_AddItemToArray(arr, item);
		if (rc == 0)
			rc = next_or_close(ps, ']', &more);
	}
	if (rc != 0)
		cJSON_Delete(arr);
	else if (out)
		*out = arr;
	return rc;
}

static int take_string_value(struct parser *ps, cJSON **out)
{
	char *text = NULL;
	int rc = take_string(ps, out ? &text : NULL);

	if (rc != 0 || out == NULL)
		return rc;
	*out = cJSON_CreateNull();
	if (*out == NULL) {
		mem_free(text);
		return out_of_memory(ps);
	}
	(*out)->type = cJSON_String;
	(*out)->valuestring = text; /* cJSON frees it with the node */
	return 0;
}

static int take_value(struct parser *ps, struct how how, cJSON **out)
{
	unsigned char c;

	skip_space(ps);
	if (ps->pos >= ps->len)
		return fail(ps, "unexpected end");
	c = ps->p[ps->pos];
	if (how.take == SKIP)
		out = NULL;
	if (c == '{')
		return take_object(ps, how, out);
	if (c == '[')
		return take_array(ps, how, out);
	if (c == '"')
		return take_string_value(ps, out);
	if (c == '-' || (c >= '0' && c <= '9'))
		return take_number(ps, out);
	if (c < 0x20 && !is_space(c))
		return fail(ps, "control character");
	if (c >= 0x80)
		return str_utf8_sequence(ps->p + ps->pos, ps->len - ps->pos)
			       ? fail(ps, "not valid JSON")
			       : fail(ps, "invalid UTF-8");
	return take_literal(ps, out);
}

/* After the value only whitespace may follow. */
static int check_tail(struct parser *ps)
{
	skip_space(ps);
	if (ps->pos == ps->len)
		return 0;
	if (ps->p[ps->pos] < 0x20)
		return fail(ps, "control character");
	return diag_set(ps->d, DIAG_EPARSE,
			"unexpected data after the JSON value at byte %zu",
			ps->pos);
}

int json_parse_pruned(const char *buf, size_t len,
		      const struct json_keep *members, cJSON **ret_root,
		      struct diag *d)
{
	struct parser ps = { (const unsigned char *)buf, len, 0, 0, d };
	cJSON *root = NULL;
	int rc;

	*ret_root = NULL;
	/* a byte-order mark, skipped as cJSON does: only before 2 or more bytes */
	if (len > 4 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		ps.pos = 3;
	skip_space(&ps);
	if (ps.pos == len)
		return diag_set(d, DIAG_EPARSE, "empty document");
	rc = take_value(&ps, (struct how){ PRUNE, members, false }, &root);
	if (rc == 0)
		rc = check_tail(&ps);
	if (rc != 0) {
		cJSON_Delete(root);
		return rc;
	}
	*ret_root = root;
	return 0;
}

void json_prune_tree(cJSON *root, const struct json_keep *members)
{
	cJSON *child = root && cJSON_IsObject(root) ? root->child : NULL;

	while (child) {
		cJSON *next = child->next;
		struct how how = member_how(
			(struct how){ PRUNE, members, false }, child->string);

		if (how.take == SKIP) {
			cJSON_Delete(cJSON_DetachItemViaPointer(root, child));
		} else if (how.take == PRUNE && !how.each &&
			   cJSON_IsObject(child)) {
			json_prune_tree(child, how.members);
		} else if (how.take == PRUNE && how.each &&
			   cJSON_IsArray(child)) {
			cJSON *item;

			cJSON_ArrayForEach(item, child)
				json_prune_tree(item, how.members);
		}
		child = next;
	}
}
