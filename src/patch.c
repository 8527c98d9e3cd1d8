/*
 * patch: building and applying JSON Patch. The mutator writes operations
 * straight into text (no intermediate cJSON tree): the patch is what goes on
 * the wire, base64-encoded, so building it once as text is the cheapest correct
 * form.
 */
#include "patch.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bounds.h"
#include "invariant.h"
#include "json.h"
#include "strutil.h"

/*
 * An open patch: no operation and no text, or "[" and whole operations, each
 * ending in '}' (the closing ']' is only ever past len, see patch_text()).
 */
#define PATCH_VALID(p)                                                     \
	((p)->n_ops == 0 ? (p)->text.len == 0                              \
			 : (p)->text.len > 2 && (p)->text.buf[0] == '[' && \
				   (p)->text.buf[(p)->text.len - 1] == '}')

#ifndef NDEBUG
/*
 * What patch_add_op is given (debug builds check it; the callers build it, so
 * a failure is our bug): an RFC 6902 operation we write, with a value exactly
 * where one is due, and a path that is an RFC 6901 pointer whose '~' only
 * starts "~0" or "~1" (the tokens went through patch_pointer_append).
 */
static bool op_well_formed(const char *op, const char *path, size_t path_len,
			   const char *value_json, size_t value_len)
{
	bool valued = strcmp(op, "add") == 0 || strcmp(op, "replace") == 0 ||
		      strcmp(op, "test") == 0;

	if (valued ? value_json == NULL || value_len == 0
		   : strcmp(op, "remove") != 0 || value_json != NULL)
		return false;
	if (memchr(path, '\0', path_len) || (path_len > 0 && path[0] != '/'))
		return false;
	for (size_t i = 0; i < path_len; i++) {
		if (path[i] == '~' &&
		    (i + 1 == path_len ||
		     (path[i + 1] != '0' && path[i + 1] != '1')))
			return false;
	}
	return true;
}
#endif

void patch_init(struct patch *p)
{
	strbuf_init(&p->text, BOUND_PATCH_BYTES);
	p->n_ops = 0;
}

int patch_add_op(struct patch *p, const char *op, const char *path,
		 const char *value_json)
{
	return patch_add_op_len(p, op, path, strlen(path), value_json,
				value_json ? strlen(value_json) : 0);
}

int patch_add_op_len(struct patch *p, const char *op, const char *path,
		     size_t path_len, const char *value_json, size_t value_len)
{
	size_t mark = p->text.len;
	int rc;

	PIW_ASSERT(PATCH_VALID(p));
	PIW_ASSERT_CHECK(
		op_well_formed(op, path, path_len, value_json, value_len));
	rc = strbuf_adds(&p->text,
			 p->n_ops == 0 ? "[{\"op\":\"" : ",{\"op\":\"");
	if (rc == 0)
		rc = strbuf_adds(&p->text, op);
	if (rc == 0)
		rc = strbuf_adds(&p->text, "\",\"path\":");
	if (rc == 0)
		rc = json_append_string_len(&p->text, path, path_len);
	if (rc == 0 && value_json) {
		rc = strbuf_adds(&p->text, ",\"value\":");
		if (rc == 0)
			rc = strbuf_add(&p->text, value_json, value_len);
	}
	if (rc == 0)
		rc = strbuf_addc(&p->text, '}');
	if (rc != 0) {
		strbuf_truncate(&p->text, mark);
		PIW_ASSERT(PATCH_VALID(p));
		return rc;
	}
	p->n_ops++;
	PIW_ASSERT(PATCH_VALID(p));
	return 0;
}

const char *patch_text(struct patch *p, size_t *ret_len)
{
	static const char empty[] = "[]";

	PIW_ASSERT(PATCH_VALID(p));
	if (p->n_ops == 0) {
		*ret_len = 2;
		return empty;
	}
	/*
	 * Close the array for the reader, then reopen it for further appends.
	 */
	if (strbuf_addc(&p->text, ']') != 0) {
		*ret_len = 0;
		return NULL;
	}
	*ret_len = p->text.len;
	p->text.len--; /* the ']' stays in the buffer for the caller, not in len */
	return p->text.buf;
}

void patch_free(struct patch *p)
{
	strbuf_free(&p->text);
	p->n_ops = 0;
}

int patch_pointer_append(struct strbuf *pointer, const char *token)
{
	size_t plain = strcspn(token, "~/");
	int rc = strbuf_addc(pointer, '/');

	/* most tokens have neither: one copy */
	if (rc == 0)
		rc = strbuf_add(pointer, token, plain);
	for (const char *c = token + plain; rc == 0 && *c; c++) {
		if (*c == '~')
			rc = strbuf_add(pointer, "~0", 2);
		else if (*c == '/')
			rc = strbuf_add(pointer, "~1", 2);
		else
			rc = strbuf_addc(pointer, *c);
	}
	return rc;
}

/* ---- applying ---- */

/* Copies the next unescaped reference token of *pointer into out. */
static int next_token(const char **pointer, char *out, size_t size)
{
	const char *p = *pointer + 1; /* skip '/' */
	size_t n = 0;

	while (*p && *p != '/') {
		char c = *p++;

		if (c == '~') {
			if (*p != '0' && *p != '1')
				return DIAG_EINVAL;
			c = *p++ == '0' ? '~' : '/';
		}
		if (n + 1 >= size)
			return DIAG_ELIMIT;
		out[n++] = c;
	}
	out[n] = '\0';
	*pointer = p;
	return 0;
}

/* An array index token: "0" or digits without a leading zero, below `limit`. */
static bool parse_index(const char *token, size_t limit, size_t *ret)
{
	int64_t v;

	if (token[0] == '0' && token[1] != '\0')
		return false;
	if (str_to_i64(token, 0, INT32_MAX, &v) != 0 || (size_t)v >= limit)
		return false;
	*ret = (size_t)v;
	return true;
}

/* Resolves all but the last token: the container that holds the target. */
static int resolve_parent(cJSON *doc, const char *path, cJSON **ret_parent,
			  char *last, size_t last_size)
{
	const char *p = path;
	cJSON *node = doc;
	size_t index;

	if (path[0] != '/')
		return DIAG_EINVAL;
	for (;;) {
		int rc = next_token(&p, last, last_size);

		if (rc != 0)
			return rc;
		if (*p == '\0') {
			*ret_parent = node;
			return 0;
		}
		if (cJSON_IsObject(node))
			node = cJSON_GetObjectItemCaseSensitive(node, last);
		else if (cJSON_IsArray(node) &&
			 parse_index(last, (size_t)cJSON_GetArraySize(node),
				     &index))
			node = cJSON_GetArrayItem(node, (int)index);
		else
			node = NULL;
		if (node == NULL)
			return DIAG_EINVAL;
	}
}

static int apply_add(cJSON *parent, const char *token, cJSON *value)
{
	size_t index;

	if (cJSON_IsObject(parent)) {
		if (cJSON_GetObjectItemCaseSensitive(parent, token))
			return cJSON_ReplaceItemInObjectCaseSensitive(
				       parent, token, value)
				       ? 0
				       : DIAG_ENOMEM;
		return cJSON_AddItemToObject(parent, token, value)
			       ? 0
			       : DIAG_ENOMEM;
	}
	if (!cJSON_IsArray(parent))
		return DIAG_EINVAL;
	if (strcmp(token, "-") == 0)
		return cJSON_AddItemToArray(parent, value) ? 0 : DIAG_ENOMEM;
	if (!parse_index(token, (size_t)cJSON_GetArraySize(parent) + 1, &index))
		return DIAG_EINVAL;
	if ((int)index == cJSON_GetArraySize(parent))
		return cJSON_AddItemToArray(parent, value) ? 0 : DIAG_ENOMEM;
	return cJSON_InsertItemInArray(parent, (int)index, value) ? 0
								  : DIAG_ENOMEM;
}

static cJSON *detach(cJSON *parent, const char *token)
{
	size_t index;

	if (cJSON_IsObject(parent))
		return cJSON_DetachItemFromObjectCaseSensitive(parent, token);
	if (cJSON_IsArray(parent) &&
	    parse_index(token, (size_t)cJSON_GetArraySize(parent), &index))
		return cJSON_DetachItemFromArray(parent, (int)index);
	return NULL;
}

static const cJSON *lookup(cJSON *parent, const char *token)
{
	size_t index;

	if (cJSON_IsObject(parent))
		return cJSON_GetObjectItemCaseSensitive(parent, token);
	if (cJSON_IsArray(parent) &&
	    parse_index(token, (size_t)cJSON_GetArraySize(parent), &index))
		return cJSON_GetArrayItem(parent, (int)index);
	return NULL;
}

static int apply_one(cJSON *doc, const cJSON *op_obj, size_t i, struct diag *d)
{
	const char *op = json_string(op_obj, "op"),
		   *path = json_string(op_obj, "path");
	const cJSON *value = cJSON_GetObjectItemCaseSensitive(op_obj, "value");
	char token[BOUND_PATH];
	cJSON *parent = NULL, *copy = NULL;
	int rc;

	if (op == NULL || path == NULL)
		return diag_set(d, DIAG_EPARSE,
				"operation %zu lacks op or path", i);
	if (resolve_parent(doc, path, &parent, token, sizeof(token)) != 0)
		return diag_set(d, DIAG_EINVAL,
				"operation %zu: path '%.200s' does not resolve",
				i, path);
	if (strcmp(op, "remove") == 0) {
		cJSON *gone = detach(parent, token);

		if (gone == NULL)
			return diag_set(d, DIAG_EINVAL,
					"operation %zu: nothing at '%.200s'", i,
					path);
		cJSON_Delete(gone);
		return 0;
	}
	if (value == NULL)
		return diag_set(d, DIAG_EPARSE,
				"operation %zu (%s) lacks a value", i, op);
	if (strcmp(op, "test") == 0) {
		const cJSON *current = lookup(parent, token);

		return current && cJSON_Compare(current, value, true)
			       ? 0
			       : diag_set(d, DIAG_EINVAL,
					  "operation %zu: test failed at "
					  "'%.200s'",
					  i, path);
	}
	if (strcmp(op, "replace") == 0 && lookup(parent, token) == NULL)
		return diag_set(d, DIAG_EINVAL,
				"operation %zu: nothing to replace at '%.200s'",
				i, path);
	if (strcmp(op, "add") != 0 && strcmp(op, "replace") != 0)
		return diag_set(d, DIAG_EPARSE,
				"operation %zu: unsupported op '%.20s'", i, op);
	copy = cJSON_Duplicate(value, true);
	if (copy == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	if (strcmp(op, "replace") == 0)
		cJSON_Delete(detach(parent, token));
	rc = apply_add(parent, token, copy);
	if (rc != 0) {
		cJSON_Delete(copy);
		return diag_set(d, rc, "operation %zu: cannot add at '%.200s'",
				i, path);
	}
	return 0;
}

int patch_apply(cJSON *doc, const char *text, size_t len, struct diag *d)
{
	cJSON *ops = NULL;
	const cJSON *op;
	size_t i = 0;
	int rc = json_parse(text, len, &ops, d);

	if (rc != 0)
		return rc;
	if (!cJSON_IsArray(ops)) {
		rc = diag_set(d, DIAG_EPARSE, "a JSON Patch must be an array");
		goto out;
	}
	cJSON_ArrayForEach(op, ops) {
		rc = apply_one(doc, op, i++, d);
		if (rc != 0)
			goto out;
	}
out:
	cJSON_Delete(ops);
	return rc;
}
