/*
 * json: the one strict parser of untrusted JSON into cJSON trees, typed member access
 * that tells "missing" from "wrong type", and JSON string output into a strbuf.
 */
#ifndef PIW_JSON_H
#define PIW_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "strbuf.h"

struct mem_arena;

/*
 * What to keep of an object: a list of members ended by an entry with key NULL. For
 * each member: members NULL keeps its whole value; members non-NULL keeps, of an
 * object value, only those members; with `each`, the value is an array and every
 * element is kept that way. A value of another type than the schema expects is kept
 * whole (the reader's type checks then see it as it is).
 */
struct json_keep {
	const char *key;
	const struct json_keep *members;
	bool each;
};

/*
 * The one JSON reader. Parses exactly len bytes (no NUL needed), strictly as RFC
 * 8259 says (no leading zeros, no "1.", no trailing commas, nothing after the
 * value; a leading byte-order mark is ignored), and also refuses invalid UTF-8,
 * "\u0000", unpaired surrogate escapes and nesting deeper than BOUND_JSON_DEPTH:
 * DIAG_EPARSE with a reason naming the byte offset. Every byte is validated, but
 * when `keep` is not NULL and the root is an object, only the members it names are
 * built. With an arena, the nodes are allocated from it and are freed with it,
 * never with cJSON_Delete (on an error nothing needs freeing), and when the
 * document fits in the arena's current block the strings point into a copy of
 * it made there; without one, they
 * come from mem_alloc and *ret_root is freed with cJSON_Delete. Out of memory (or
 * an arena full) is DIAG_ENOMEM.
 */
int json_parse_with(const char *buf, size_t len, const struct json_keep *keep,
		    struct mem_arena *arena, cJSON **ret_root, struct diag *d);

/* The whole document on the heap: json_parse_with(buf, len, NULL, NULL, ...). */
int json_parse(const char *buf, size_t len, cJSON **ret_root, struct diag *d);

/*
 * Removes from a whole heap tree what json_parse_with() would not have built with
 * `members` (for the tests that check the schema).
 */
void json_prune_tree(cJSON *root, const struct json_keep *members);

/*
 * From i, the position of the next byte that matters inside a JSON string ('"',
 * '\\', a control character or a non-ASCII byte), or len.
 */
size_t json_scan_plain(const unsigned char *p, size_t i, size_t len);

enum json_lookup {
	JSON_MISSING = 0, /* absent or null: Kubernetes treats both as unset */
	JSON_FOUND = 1,	  /* present with the requested type */
	JSON_WRONG_TYPE = -1 /* present with another type */
};

/*
 * The first member of obj named key (case-sensitive), as
 * cJSON_GetObjectItemCaseSensitive; NULL when there is none or obj is not an
 * object (or is NULL).
 */
const cJSON *json_get(const cJSON *obj, const char *key);

/*
 * Looks up obj[key] (case-sensitive) expecting a cJSON type mask (cJSON_String,
 * cJSON_Object, cJSON_Array, cJSON_Number, cJSON_True|cJSON_False). *ret is set
 * only when JSON_FOUND. obj may be NULL (then JSON_MISSING).
 */
enum json_lookup json_member(const cJSON *obj, const char *key, int type_mask,
			     const cJSON **ret);

/* obj[key] as a string, or NULL when absent or not a string. */
const char *json_string(const cJSON *obj, const char *key);

/* Appends s as a quoted, escaped JSON string. 0, DIAG_ENOMEM or DIAG_ELIMIT. */
int json_append_string(struct strbuf *sb, const char *s);

/*
 * How many bytes s[0..len) starts with that a JSON string may hold as they
 * are: all but '"', '\\' and control characters (bytes >= 0x80 pass: the
 * output is UTF-8). len when none needs an escape.
 */
size_t json_unescaped_span(const char *s, size_t len);

/* json_append_string() of s[0..len), which holds no NUL. */
int json_append_string_len(struct strbuf *sb, const char *s, size_t len);

/*
 * Appends the compact serialisation of a value. 0, DIAG_ENOMEM or DIAG_ELIMIT.
 */
int json_append_value(struct strbuf *sb, const cJSON *value);

#endif
