/*
 * service_account: one block per ServiceAccount: the header, the annotation
 * array and every string after it. One malloc, one free, and no pointer chasing
 * on lookup.
 */
#include "service_account.h"

#include <string.h>

#include "json.h"
#include "mem.h"

int sa_new(const char *namespace, const char *name,
	   const struct sa_annotation *annotations, size_t n,
	   struct service_account **ret_sa)
{
	size_t size = sizeof(struct service_account) +
		      n * sizeof(struct sa_annotation);
	struct service_account *sa;
	char *p;

	*ret_sa = NULL;
	size += strlen(namespace) + 1 + strlen(name) + 1;
	for (size_t i = 0; i < n; i++)
		size += strlen(annotations[i].key) + 1 +
			strlen(annotations[i].value) + 1;
	sa = mem_alloc(size);
	if (sa == NULL)
		return DIAG_ENOMEM;
	p = (char *)&sa->annotations[n];
	sa->n_annotations = n;
#define PUT(dst, src)                          \
	do {                                   \
		size_t len_ = strlen(src) + 1; \
		memcpy(p, (src), len_);        \
		(dst) = p;                     \
		p += len_;                     \
	} while (0)
	PUT(sa->namespace, namespace);
	PUT(sa->name, name);
	for (size_t i = 0; i < n; i++) {
		PUT(sa->annotations[i].key, annotations[i].key);
		PUT(sa->annotations[i].value, annotations[i].value);
	}
#undef PUT
	*ret_sa = sa;
	return 0;
}

/*
 * Collects the kept annotations of `annotations` (an object) into a new array.
 */
static int collect_annotations(const cJSON *annotations, sa_keep_fn keep,
			       void *arg, struct sa_annotation **ret,
			       size_t *ret_n, struct diag *d)
{
	const cJSON *item;
	size_t n = 0;

	*ret = NULL;
	*ret_n = 0;
	cJSON_ArrayForEach(item, annotations) {
		if (!cJSON_IsString(item))
			return diag_set(d, DIAG_EPARSE,
					"annotation '%.100s' is not a string",
					item->string);
		if (keep == NULL || keep(item->string, arg))
			n++;
	}
	if (n == 0)
		return 0;
	*ret = mem_calloc(n, sizeof(**ret));
	if (*ret == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	cJSON_ArrayForEach(item, annotations) {
		if (keep == NULL || keep(item->string, arg)) {
			(*ret)[*ret_n].key = item->string;
			(*ret)[(*ret_n)++].value = item->valuestring;
		}
	}
	return 0;
}

int sa_from_json(const cJSON *obj, const char *default_namespace,
		 sa_keep_fn keep, void *arg, struct service_account **ret_sa,
		 struct diag *d)
{
	const cJSON *metadata = NULL, *annotations = NULL;
	struct sa_annotation *kept = NULL;
	const char *kind, *name, *namespace;
	size_t n = 0;
	int rc;

	*ret_sa = NULL;
	if (!cJSON_IsObject(obj))
		return diag_set(d, DIAG_EPARSE,
				"a ServiceAccount must be a JSON object");
	kind = json_string(obj, "kind");
	if (kind && strcmp(kind, "ServiceAccount") != 0)
		return diag_set(d, DIAG_EPARSE,
				"kind is '%.64s', not ServiceAccount", kind);
	if (json_member(obj, "metadata", cJSON_Object, &metadata) != JSON_FOUND)
		return diag_set(d, DIAG_EPARSE,
				"metadata is missing or not an object");
	name = json_string(metadata, "name");
	namespace = json_string(metadata, "namespace");
	if (name == NULL || name[0] == '\0')
		return diag_set(d, DIAG_EPARSE,
				"metadata.name is missing or not a string");
	if (namespace == NULL || namespace[0] == '\0')
	namespace = default_namespace;
	if (namespace == NULL)
		return diag_set(d, DIAG_EPARSE,
				"metadata.namespace is missing");
	switch (json_member(metadata, "annotations", cJSON_Object,
			    &annotations)) {
	case JSON_WRONG_TYPE:
		return diag_set(d, DIAG_EPARSE,
				"metadata.annotations is not an object");
	case JSON_FOUND:
		rc = collect_annotations(annotations, keep, arg, &kept, &n, d);
		if (rc != 0)
			return rc;
		break;
	case JSON_MISSING:
		break;
	}
	rc = sa_new(namespace, name, kept, n, ret_sa);
	mem_free(kept);
	if (rc != 0)
		return diag_set(d, rc, "out of memory");
	return 0;
}

const char *sa_annotation(const struct service_account *sa, const char *key)
{
	for (size_t i = 0; i < sa->n_annotations; i++) {
		/* the first byte rules most keys out without a call (the
		 * mutator asks ~40 times per admission) */
		if (sa->annotations[i].key[0] == key[0] &&
		    strcmp(sa->annotations[i].key, key) == 0)
			return sa->annotations[i].value;
	}
	return NULL;
}

size_t sa_size(const struct service_account *sa)
{
	size_t size =
		sizeof(*sa) + sa->n_annotations * sizeof(sa->annotations[0]);

	size += strlen(sa->namespace) + 1 + strlen(sa->name) + 1;
	for (size_t i = 0; i < sa->n_annotations; i++)
		size += strlen(sa->annotations[i].key) +
			strlen(sa->annotations[i].value) + 2;
	return size;
}

void sa_free(struct service_account *sa)
{
	mem_free(sa);
}
