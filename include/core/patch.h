/*
 * patch: RFC 6902 JSON Patch documents, written as text while the mutator
 * decides, with RFC 6901 pointers; and an applier (for `mutate --output pod`
 * and the tests).
 */
#ifndef PIW_PATCH_H
#define PIW_PATCH_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "diag.h"
#include "strbuf.h"

struct patch {
	struct strbuf
		text; /* "[op,op" while open; "]" is added by patch_text() */
	size_t n_ops;
};

/* Prepares an empty patch (allocates nothing). */
void patch_init(struct patch *p);

/*
 * Appends {"op":op,"path":path,"value":value_json}; value_json is serialised
 * JSON (NULL for "remove"). 0, DIAG_ENOMEM or DIAG_ELIMIT (past
 * BOUND_PATCH_BYTES).
 */
int patch_add_op(struct patch *p, const char *op, const char *path,
		 const char *value_json);

/*
 * patch_add_op() with the lengths known: path[0..path_len) and
 * value_json[0..value_len) (value_json NULL for "remove"), neither holding a
 * NUL. The mutator's form: it knows its lengths, and the copies are the cost.
 */
int patch_add_op_len(struct patch *p, const char *op, const char *path,
		     size_t path_len, const char *value_json, size_t value_len);

/*
 * The finished document ("[]" when empty) and its length. The patch stays
 * valid.
 */
const char *patch_text(struct patch *p, size_t *ret_len);

/* Frees the text; the patch is empty and reusable. */
void patch_free(struct patch *p);

/* Appends "/" and token escaped per RFC 6901 ('~' -> "~0", '/' -> "~1"). */
int patch_pointer_append(struct strbuf *pointer, const char *token);

/*
 * Applies a JSON Patch document (add, remove, replace, test) to doc in place.
 * On error (DIAG_EPARSE for a malformed patch, DIAG_EINVAL for a path that does
 * not resolve or a failed test) doc may be partly changed; the caller discards
 * it.
 */
int patch_apply(cJSON *doc, const char *text, size_t len, struct diag *d);

#endif
