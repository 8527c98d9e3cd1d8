/*
 * json: strict parsing of untrusted JSON into cJSON trees, typed member access
 * that tells "missing" from "wrong type", and JSON string output into a strbuf.
 */
#ifndef PIW_JSON_H
#define PIW_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "diag.h"
#include "strbuf.h"

/*
 * Parses exactly len bytes (no NUL needed) into a new tree in *ret_root (free
 * with cJSON_Delete). Refuses, with DIAG_EPARSE and a reason naming the byte
 * offset: invalid UTF-8, nesting deeper than BOUND_JSON_DEPTH, "\u0000" or a
 * \u escape without four hex digits in a string, raw control characters,
 * trailing bytes, and anything cJSON rejects. DIAG_ENOMEM when out of
 * memory.
 */
int json_parse(const char *buf, size_t len, cJSON **ret_root, struct diag *d);

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
 * Appends the compact serialisation of a value. 0, DIAG_ENOMEM or DIAG_ELIMIT.
 */
int json_append_value(struct strbuf *sb, const cJSON *value);

#endif
