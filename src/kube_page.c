/*
 * kube_page: a list page is parsed with the json reader's keep-schema, so items
 * cost what the caller reads of them; the continue token is bounded by the
 * caller's buffer and refused, not cut, when longer.
 */
#include "kube_page.h"

#include <stdio.h>
#include <string.h>

static const struct json_keep list_meta_members[] = {
	{ "continue", NULL, false },
	{ "remainingItemCount", NULL, false },
	{ NULL, NULL, false },
};

static int read_list_meta(const cJSON *root, char *cont, size_t cont_size,
			  long long *remaining, struct diag *d)
{
	const cJSON *meta = NULL, *n = NULL;
	const char *token;

	cont[0] = '\0';
	*remaining = -1;
	if (json_member(root, "metadata", cJSON_Object, &meta) ==
	    JSON_WRONG_TYPE)
		return diag_set(d, DIAG_EPARSE, "metadata is not an object");
	token = json_string(meta, "continue");
	if (token && strlen(token) >= cont_size)
		return diag_set(d, DIAG_ELIMIT,
				"the continue token is longer than %zu bytes",
				cont_size - 1);
	if (token)
		snprintf(cont, cont_size, "%s", token);
	if (json_member(meta, "remainingItemCount", cJSON_Number, &n) ==
	    JSON_FOUND)
		*remaining = (long long)n->valuedouble;
	return 0;
}

int kube_list_page_parse(const char *body, size_t len,
			 const struct kube_list_request *req, char *cont,
			 size_t cont_size, long long *remaining,
			 size_t *ret_items, struct diag *d)
{
	const struct json_keep members[] = {
		{ "metadata", list_meta_members, false },
		{ "items", req->item_members, true },
		{ NULL, NULL, false },
	};
	const cJSON *items = NULL, *item;
	cJSON *root = NULL;
	size_t n = 0;
	int rc = json_parse_with(body, len, members, NULL, &root, d);

	*ret_items = 0;
	if (rc == 0 && !cJSON_IsObject(root))
		rc = diag_set(d, DIAG_EPARSE, "a list must be a JSON object");
	if (rc == 0)
		rc = read_list_meta(root, cont, cont_size, remaining, d);
	if (rc == 0 &&
	    json_member(root, "items", cJSON_Array, &items) == JSON_WRONG_TYPE)
		rc = diag_set(d, DIAG_EPARSE, "items is not an array");
	if (rc != 0)
		items = NULL;
	cJSON_ArrayForEach(item, items) {
		if ((rc = req->each(req->arg, item)) != 0)
			break;
		n++;
	}
	cJSON_Delete(root);
	*ret_items = n;
	return rc;
}
