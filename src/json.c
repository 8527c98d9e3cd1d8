/*
 * json: the one JSON reader. A one-pass parser, strict to RFC 8259, that builds
 * cJSON trees (cJSON stays the tree type and the printer). Each value is taken
 * one of three ways: skipped (validated only, by a loop rather than a call per
 * value), built whole (recursive descent), or, for an object, built keeping
 * only the members a schema (struct json_keep) names. Nodes come from an
 * explicit arena when the caller passes one, from mem_alloc otherwise (then
 * cJSON_Delete frees the tree). Beyond the grammar it refuses what would break
 * a C string or cJSON's recursion: invalid UTF-8, "\u0000", unpaired surrogate
 * escapes and nesting past BOUND_JSON_DEPTH.
 */
#include "json.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
#if defined(__SSE2__)
	/* 16 at a time: a signed compare with 0x20 flags the control characters
	 * and, being signed, every byte >= 0x80 as well */
	const __m128i quote = _mm_set1_epi8('"'),
		      backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);

	while (i + 16 <= len) {
		__m128i v =
			_mm_loadu_si128((const __m128i *)(const void *)(p + i));
		unsigned hits = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
						  _mm_cmpeq_epi8(v, backslash)),
				     _mm_cmplt_epi8(v, space)));

		if (hits)
			return i + (size_t)__builtin_ctz(hits);
		i += 16;
	}
#endif
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

/* PRUNE_EACH: an array whose elements are objects taken PRUNE. */
enum take { SKIP, FULL, PRUNE, PRUNE_EACH };

/*
 * How to take one value: the mode and, for PRUNE and PRUNE_EACH, the schema. It
 * is passed by value down every level, so it is a pointer and one integer: the
 * x86-64 ABI passes that in two registers. Made of more parts, it was put
 * together in memory and read back whole right after its parts were stored,
 * which stalls the CPU (store forwarding): at 24 bytes, half the time of
 * skipping a document went there; with a bool beside the mode, 14 % of the
 * parse's.
 */
struct how {
	const struct json_keep *members;
	enum take take;
};

struct parser {
	const unsigned char *p;
	size_t len, pos, depth;
	struct mem_arena *arena; /* NULL: mem_alloc, freed by cJSON_Delete */
	char *in_place; /* with an arena: p, writable; strings are left in it */
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

static void *alloc(struct parser *ps, size_t size)
{
	return ps->arena ? mem_arena_alloc(ps->arena, size) : mem_alloc(size);
}

/* A tree being abandoned: an arena's nodes go with the arena. */
static void discard(struct parser *ps, cJSON *node)
{
	if (ps->arena == NULL)
		cJSON_Delete(node);
}

static cJSON *new_node(struct parser *ps, int type)
{
	cJSON *node = alloc(ps, sizeof(*node));

	if (node) {
		memset(node, 0, sizeof(*node));
		node->type = type;
	}
	return node;
}

/* Appends item to parent's children in O(1): cJSON keeps the last child in
 * child->prev. */
static void append(cJSON *parent, cJSON *item)
{
	cJSON *first = parent->child;

	if (first == NULL) {
		parent->child = item;
		item->prev = item;
		return;
	}
	first->prev->next = item;
	item->prev = first->prev;
	first->prev = item;
}

static void skip_space(struct parser *ps)
{
	/* compact JSON has none: one test in the common case */
	if (ps->pos < ps->len && ps->p[ps->pos] > ' ')
		return;
	while (ps->pos < ps->len && str_is_space((char)ps->p[ps->pos]))
		ps->pos++;
}

/* ---- strings ---- */

static int hex4(const unsigned char *s, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < 4; i++) {
		int digit = str_hex_value((char)s[i]);

		if (digit < 0)
			return -1;
		v = v << 4 | (unsigned)digit;
	}
	*out = v;
	return 0;
}

/*
 * A \u escape at i (the backslash): its length (6, or 12 for a surrogate pair) and
 * code point, or 0 when invalid. U+0000 would truncate a C string and a lone
 * surrogate is no character: both are refused.
 */
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

/* Why the escape at i is refused. */
static const char *escape_error(const unsigned char *p, size_t i, size_t len)
{
	if (i + 1 < len && p[i + 1] == 'u') {
		if (len - i >= 6 && memcmp(p + i + 2, "0000", 4) == 0)
			return "NUL character in a string";
		return "invalid \\u escape";
	}
	return "invalid escape";
}

/* scan_string() of any string: escapes, UTF-8, the errors. */
static __attribute__((noinline)) int scan_any_string(struct parser *ps,
						     size_t *end, bool *escaped)
{
	size_t i = ps->pos + 1, n;
	uint32_t cp;

	*escaped = false;

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
		else
			*escaped = true;
		if (n == 0)
			return fail(ps, "invalid UTF-8");
		i += n;
	}
	*end = i;
	ps->pos = i + 1;
	return 0;
}

/*
 * Validates the string whose opening quote is at ps->pos; sets *end (the
 * closing quote) and *escaped (whether it holds an escape), and advances past
 * it.
 *
 * In line, the common case: the closing quote within the next 16 bytes, with
 * nothing before it that needs a look (a backslash, a control byte, a byte >=
 * 0x80). Most of a review's 500 strings are keys and short values, and the
 * call, which saves and restores six registers, cost as much as their scan.
 */
static inline int scan_string(struct parser *ps, size_t *end, bool *escaped)
{
#if defined(__SSE2__)
	size_t i = ps->pos + 1;

	if (i + 16 <= ps->len) {
		__m128i v = _mm_loadu_si128(
			(const __m128i *)(const void *)(ps->p + i));
		unsigned quote = (unsigned)_mm_movemask_epi8(
			_mm_cmpeq_epi8(v, _mm_set1_epi8('"')));
		/* signed: below 0x20 is a control byte or one >= 0x80 */
		unsigned look = (unsigned)_mm_movemask_epi8(
			_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\\')),
				     _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));

		/* the first quote, and no byte to look at below it */
		if (quote != 0 && (look & ((quote & -quote) - 1)) == 0) {
			*end = i + (size_t)__builtin_ctz(quote);
			*escaped = false;
			ps->pos = *end + 1;
			return 0;
		}
	}
#endif
	return scan_any_string(ps, end, escaped);
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
static char *decode(struct parser *ps, size_t start, size_t end)
{
	const unsigned char *p = ps->p;
	char *out = ps->in_place ? ps->in_place + start
				 : alloc(ps, end - start + 1);
	size_t i = start, n = 0;

	if (out == NULL)
		return NULL;
	while (i < end) {
		uint32_t cp = 0; /* set by escape(): the string was validated */
		const unsigned char *bs = memchr(p + i, '\\', end - i);
		size_t run = bs ? (size_t)(bs - p) - i : end - i;

		/* the runs between escapes are copied whole (in place, over
		 * the bytes already read: out + n never passes p + i) */
		memmove(out + n, p + i, run);
		n += run;
		i += run;
		if (i == end)
			break;
		i += escape(p, i, end + 1, &cp);
		n += put_utf8(out + n, cp);
	}
	out[n] = '\0';
	return out;
}

/*
 * The validated string (start, end) as a C string: decoded when it holds an
 * escape; otherwise copied whole, or, in place, ended where its closing quote
 * was (the parser has read past it).
 */
static char *text_of(struct parser *ps, size_t start, size_t end, bool escaped)
{
	char *out;

	if (escaped)
		return decode(ps, start, end);
	if (ps->in_place) {
		ps->in_place[end] = '\0';
		return ps->in_place + start;
	}
	out = alloc(ps, end - start + 1);
	if (out) {
		memcpy(out, ps->p + start, end - start);
		out[end - start] = '\0';
	}
	return out;
}

/* Reads a string; *out gets it decoded when out is not NULL. */
static int take_string(struct parser *ps, char **out)
{
	size_t start = ps->pos + 1, end = start;
	bool escaped;
	int rc = scan_string(ps, &end, &escaped);

	if (rc != 0 || out == NULL)
		return rc;
	*out = text_of(ps, start, end, escaped);
	return *out ? 0 : out_of_memory(ps);
}

/* ---- scalars ---- */

static size_t digits(const struct parser *ps, size_t i)
{
	while (i < ps->len && str_is_digit((char)ps->p[i]))
		i++;
	return i;
}

/*
 * RFC 8259's number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. The length
 * of the one at ps->pos, 0 if there is none (leading zeros, "1.", "1e", "+1" and
 * ".5" are not numbers).
 */
static size_t number_length(const struct parser *ps)
{
	size_t i = ps->pos, j;

	if (i < ps->len && ps->p[i] == '-')
		i++;
	if (i < ps->len && ps->p[i] == '0') {
		if (++i < ps->len && str_is_digit((char)ps->p[i]))
			return 0; /* a leading zero */
	} else if ((j = digits(ps, i)) > i)
		i = j;
	else
		return 0;
	if (i < ps->len && ps->p[i] == '.') {
		if ((j = digits(ps, i + 1)) == i + 1)
			return 0;
		i = j;
	}
	if (i < ps->len && (ps->p[i] | 0x20) == 'e') {
		i++;
		if (i < ps->len && (ps->p[i] == '+' || ps->p[i] == '-'))
			i++;
		if ((j = digits(ps, i)) == i)
			return 0;
		i = j;
	}
	return i - ps->pos;
}

/*
 * The value of the number s (n bytes, the grammar checked) when it is an
 * integer of at most 15 digits: exact in a double (10^15 < 2^53), as strtod
 * would make it, without strtod's copy and its big-number arithmetic. Most
 * numbers a pod keeps are such (a mode, a lifetime in seconds).
 */
static bool small_integer(const unsigned char *s, size_t n, double *v)
{
	size_t i = s[0] == '-';
	long long x = 0;

	if (n - i > 15)
		return false;
	for (; i < n; i++) {
		if (!str_is_digit((char)s[i]))
			return false; /* a fraction or an exponent */
		x = x * 10 + (s[i] - '0');
	}
	*v = s[0] == '-' ? -(double)x : (double)x; /* "-0" is -0.0 */
	return true;
}

static int take_number(struct parser *ps, cJSON **out)
{
	char small[64], *text = small;
	size_t n = number_length(ps);
	double v;

	if (n == 0)
		return fail(ps, "invalid number");
	if (out == NULL) {
		ps->pos += n;
		return 0;
	}
	if (!small_integer(ps->p + ps->pos, n, &v)) {
		/* strtod needs a terminated copy; the grammar was checked */
		if (n >= sizeof(small) && (text = mem_alloc(n + 1)) == NULL)
			return out_of_memory(ps);
		memcpy(text, ps->p + ps->pos, n);
		text[n] = '\0';
		v = strtod(text, NULL);
		if (text != small)
			mem_free(text);
	}
	ps->pos += n;
	if ((*out = new_node(ps, cJSON_Number)) == NULL)
		return out_of_memory(ps);
	(*out)->valuedouble = v;
	/* as cJSON_CreateNumber: the int view saturates */
	(*out)->valueint = v >= INT_MAX	  ? INT_MAX
			   : v <= INT_MIN ? INT_MIN
					  : (int)v;
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
		*out = new_node(ps, literals[i].type);
		if (*out == NULL)
			return out_of_memory(ps);
		(*out)->valueint =
			literals[i].type == cJSON_True; /* as cJSON */
		return 0;
	}
	return fail(ps, "not valid JSON");
}

/* ---- values, objects, arrays ---- */

static int take_value(struct parser *ps, struct how how, cJSON **out);

/* The way to take a member of an object taken with `how`. */
/* How a member the schema names (k) is taken. */
static struct how how_of(const struct json_keep *k)
{
	if (k->members == NULL)
		return (struct how){ .take = FULL };
	return (struct how){ .members = k->members,
			     .take = k->each ? PRUNE_EACH : PRUNE };
}

static struct how member_how(struct how how, const char *key)
{
	if (how.take != PRUNE)
		return how; /* SKIP and FULL go all the way down */
	if (how.members == NULL)
		return (struct how){ .take = FULL };
	for (const struct json_keep *k = how.members; k->key; k++) {
		/* the first byte rules out most of the schema without a call */
		if (k->key[0] == key[0] && strcmp(k->key, key) == 0)
			return how_of(k);
	}
	return (struct how){ .take = SKIP };
}

/* member_how() of a key without escapes, as written in the document (key, len). */
static struct how member_how_raw(struct how how, const unsigned char *key,
				 size_t len)
{
	if (how.take != PRUNE)
		return how;
	if (how.members == NULL)
		return (struct how){ .take = FULL };
	for (const struct json_keep *k = how.members; k->key; k++) {
		/* in line, not strncmp: the keys are short, the calls were not
		 * (the loop stops at the schema key's end: key holds no NUL) */
		size_t i = 0;

		while (i < len && k->key[i] == (char)key[i])
			i++;
		if (i == len && k->key[i] == '\0')
			return how_of(k);
	}
	return (struct how){ .take = SKIP };
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

/* A member's key and its colon: the key's bytes are (*start, *end), *escaped
 * says whether they hold an escape. */
static int take_key(struct parser *ps, size_t *start, size_t *end,
		    bool *escaped)
{
	int rc;

	skip_space(ps);
	if (ps->pos >= ps->len || ps->p[ps->pos] != '"')
		return fail(ps, "not valid JSON");
	*start = ps->pos + 1;
	rc = scan_string(ps, end, escaped);
	if (rc != 0)
		return rc;
	skip_space(ps);
	if (ps->pos >= ps->len || ps->p[ps->pos++] != ':')
		return fail(ps, "not valid JSON");
	return 0;
}

/* A member of an object taken FULL or PRUNE (skipped objects: skip_value). */
static int take_member(struct parser *ps, struct how how, cJSON *obj)
{
	char *key = NULL;
	cJSON *child = NULL;
	struct how child_how = how;
	size_t start = 0, end = 0;
	bool escaped = false;
	int rc = take_key(ps, &start, &end, &escaped);

	if (rc == 0) {
		/* A key without escapes is looked up as written: only the keys of
		 * members that are kept get copied. */
		if (!escaped)
			child_how =
				member_how_raw(how, ps->p + start, end - start);
		if (escaped || child_how.take != SKIP) {
			key = text_of(ps, start, end, escaped);
			if (key == NULL)
				rc = out_of_memory(ps);
			else if (escaped)
				child_how = member_how(how, key);
		}
	}
	if (rc == 0)
		rc = take_value(ps, child_how,
				child_how.take == SKIP ? NULL : &child);
	if (rc == 0 && child) {
		child->string = key; /* the node owns it now */
		key = NULL;
		append(obj, child);
	}
	if (ps->arena == NULL)
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
	if (how.take == PRUNE_EACH)
		how = (struct how){ .take = FULL }; /* an array was expected */
	if (out && (obj = new_node(ps, cJSON_Object)) == NULL)
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
		discard(ps, obj);
	else if (out)
		*out = obj;
	return rc;
}

static int take_array(struct parser *ps, struct how how, cJSON **out)
{
	struct how element =
		how.take == PRUNE_EACH
			? (struct how){ .take = PRUNE, .members = how.members }
			: (struct how){ .take = FULL };
	cJSON *arr = NULL;
	bool more = true;
	int rc = enter(ps);

	if (rc != 0)
		return rc;
	if (out && (arr = new_node(ps, cJSON_Array)) == NULL)
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
			append(arr, item);
		if (rc == 0)
			rc = next_or_close(ps, ']', &more);
	}
	if (rc != 0)
		discard(ps, arr);
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
	*out = new_node(ps, cJSON_String);
	if (*out == NULL) {
		if (ps->arena == NULL)
			mem_free(text);
		return out_of_memory(ps);
	}
	(*out)->valuestring = text; /* the node owns it now */
	return 0;
}

/* A value that is not an object or an array, whose first byte is c. */
static int take_scalar(struct parser *ps, unsigned char c, cJSON **out)
{
	if (c == '"')
		return take_string_value(ps, out);
	if (c == '-' || str_is_digit((char)c))
		return take_number(ps, out);
	if (c < 0x20 && !str_is_space((char)c))
		return fail(ps, "control character");
	if (c >= 0x80)
		return str_utf8_sequence(ps->p + ps->pos, ps->len - ps->pos)
			       ? fail(ps, "not valid JSON")
			       : fail(ps, "invalid UTF-8");
	return take_literal(ps, out);
}

/*
 * Validates a value that is not kept: the grammar and the refusals of
 * take_value, at the same bytes (fuzz_json compares a pruned parse with a whole
 * one), in a loop instead of a call per value. Most of an admission request is
 * skipped, and a call per value was most of the time it took. ps->depth counts
 * open brackets as take_object and take_array do, so the bound is shared.
 */
static int skip_value(struct parser *ps)
{
	char close[BOUND_JSON_DEPTH + 1]; /* by depth: '}' or ']' */
	const size_t base = ps->depth;
	size_t start, end;
	bool escaped, more;
	int rc;

	for (;;) {
		unsigned char c;

		skip_space(ps);
		if (ps->pos >= ps->len)
			return fail(ps, "unexpected end");
		c = ps->p[ps->pos];
		if (c != '{' && c != '[') {
			rc = take_scalar(ps, c, NULL);
		} else if ((rc = enter(ps)) == 0) {
			close[ps->depth] = c == '{' ? '}' : ']';
			if (ps->pos >= ps->len ||
			    ps->p[ps->pos] != close[ps->depth]) {
				/* not empty: on to its first value */
				if (c == '{')
					rc = take_key(ps, &start, &end,
						      &escaped);
				if (rc != 0)
					return rc;
				continue;
			}
			ps->pos++;
			ps->depth--;
		}
		if (rc != 0)
			return rc;
		/* a value ended: close what it completes, then the next one */
		more = false;
		while (!more) {
			if (ps->depth == base)
				return 0;
			rc = next_or_close(ps, close[ps->depth], &more);
			if (rc != 0)
				return rc;
		}
		if (close[ps->depth] == '}' &&
		    (rc = take_key(ps, &start, &end, &escaped)) != 0)
			return rc;
	}
}

static int take_value(struct parser *ps, struct how how, cJSON **out)
{
	unsigned char c;

	if (how.take == SKIP)
		return skip_value(ps);
	skip_space(ps);
	if (ps->pos >= ps->len)
		return fail(ps, "unexpected end");
	c = ps->p[ps->pos];
	if (c == '{')
		return take_object(ps, how, out);
	if (c == '[')
		return take_array(ps, how, out);
	return take_scalar(ps, c, out);
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

int json_parse_with(const char *buf, size_t len, const struct json_keep *keep,
		    struct mem_arena *arena, cJSON **ret_root, struct diag *d)
{
	struct parser ps = {
		(const unsigned char *)buf, len, 0, 0, arena, NULL, d
	};
	cJSON *root = NULL;
	int rc;

	*ret_root = NULL;
	/* An arena's tree keeps its strings in a copy of the document, made in
	 * one go, rather than in an allocation and a copy per string; only when
	 * the copy fits in the block being filled: a chunk of its own would
	 * double a large body's memory (and, freed at the top of a thread's
	 * heap, glibc keeps it resident). */
	if (arena && len + 1 <= mem_arena_room(arena) &&
	    (ps.in_place = mem_arena_alloc(arena, len + 1)) == NULL)
		return out_of_memory(&ps);
	if (ps.in_place) {
		memcpy(ps.in_place, buf, len);
		ps.p = (const unsigned char *)ps.in_place;
	}
	/* RFC 8259 lets a parser ignore a byte-order mark (section 8.1) */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		ps.pos = 3;
	skip_space(&ps);
	if (ps.pos == len)
		return diag_set(d, DIAG_EPARSE, "empty document");
	rc = take_value(&ps, (struct how){ .take = PRUNE, .members = keep },
			&root);
	if (rc == 0)
		rc = check_tail(&ps);
	if (rc != 0) {
		discard(&ps, root);
		return rc;
	}
	*ret_root = root;
	return 0;
}

int json_parse(const char *buf, size_t len, cJSON **ret_root, struct diag *d)
{
	return json_parse_with(buf, len, NULL, NULL, ret_root, d);
}

void json_prune_tree(cJSON *root, const struct json_keep *members)
{
	cJSON *child =
		root && cJSON_IsObject(root) && members ? root->child : NULL;

	while (child) {
		cJSON *next = child->next;
		struct how how = member_how(
			(struct how){ .take = PRUNE, .members = members },
			child->string);

		if (how.take == SKIP) {
			cJSON_Delete(cJSON_DetachItemViaPointer(root, child));
		} else if (how.take == PRUNE && cJSON_IsObject(child)) {
			json_prune_tree(child, how.members);
		} else if (how.take == PRUNE_EACH && cJSON_IsArray(child)) {
			cJSON *item;

			cJSON_ArrayForEach(item, child)
				json_prune_tree(item, how.members);
		}
		child = next;
	}
}

/*
 * cJSON_GetObjectItemCaseSensitive's answer, the first member named key, found
 * here so that it inlines: the mutator looks members up some 170 times per
 * admission, and each was a call into the shared library, a strcmp per member
 * passed and calls for the type tests. Keys are short ("name", "env"), so they
 * are compared byte by byte in line: a call to strcmp cost more than the
 * comparison (perf: 3.4 % of the server's time in strcmp).
 */
const cJSON *json_get(const cJSON *obj, const char *key)
{
	if (obj == NULL || (obj->type & 0xff) != cJSON_Object)
		return NULL;
	for (const cJSON *item = obj->child; item; item = item->next) {
		const char *a = item->string, *b = key;

		if (a == NULL)
			continue;
		while (*a != '\0' && *a == *b) {
			a++;
			b++;
		}
		if (*a == *b)
			return item;
	}
	return NULL;
}

enum json_lookup json_member(const cJSON *obj, const char *key, int type_mask,
			     const cJSON **ret)
{
	const cJSON *item = json_get(obj, key);

	if (item == NULL || (item->type & 0xff) == cJSON_NULL)
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

size_t json_unescaped_span(const char *s, size_t len)
{
	size_t i = 0;

#if defined(__SSE2__)
	const __m128i quote = _mm_set1_epi8('"'),
		      backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20), minus1 = _mm_set1_epi8(-1);

	for (; i + 16 <= len; i += 16) {
		__m128i v =
			_mm_loadu_si128((const __m128i *)(const void *)(s + i));
		/* control: below 0x20 as a signed byte, but not >= 0x80 */
		__m128i control = _mm_and_si128(_mm_cmplt_epi8(v, space),
						_mm_cmpgt_epi8(v, minus1));
		int hits = _mm_movemask_epi8(_mm_or_si128(
			control, _mm_or_si128(_mm_cmpeq_epi8(v, quote),
					      _mm_cmpeq_epi8(v, backslash))));

		if (hits)
			return i + (size_t)__builtin_ctz((unsigned)hits);
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 8 <= len; i += 8) {
		uint64_t w, hits;

		memcpy(&w, s + i, 8);
		/* the lowest flagged byte is always a true hit (a borrow only
		 * flags bytes above one) */
		hits = ((w - ONES * 0x20) & ~w & HIGHS) |
		       has_zero_byte(w ^ (ONES * '"')) |
		       has_zero_byte(w ^ (ONES * '\\'));
		if (hits)
			return i + ((size_t)__builtin_ctzll(hits) >> 3);
	}
#endif
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == '"' || c == '\\')
			return i;
	}
	return len;
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
	return json_append_string_len(sb, s, strlen(s));
}

int json_append_string_len(struct strbuf *sb, const char *s, size_t len)
{
	bool clean = json_unescaped_span(s, len) == len;
	int rc;

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
