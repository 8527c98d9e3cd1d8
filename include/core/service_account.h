/*
 * service_account: the part of a ServiceAccount the mutator reads (namespace,
 * name and the annotations the loaded profiles use), packed into one allocation
 * so a cache of 100,000 of them stays small.
 */
#ifndef PIW_SERVICE_ACCOUNT_H
#define PIW_SERVICE_ACCOUNT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

struct sa_annotation {
	const char *key;
	const char *value;
};

struct service_account {
	const char *namespace;
	const char *name;
	size_t n_annotations;
	struct sa_annotation annotations[]; /* strings live in the same block */
};

/*
 * Decides whether an annotation is kept (e.g. only those some profile reads).
 */
typedef bool (*sa_keep_fn)(const char *key, void *arg);

/*
 * Builds a ServiceAccount from its JSON (a v1 ServiceAccount object), keeping
 * the annotations for which keep() is true (all when keep is NULL).
 * `default_namespace` is used when metadata.namespace is absent (may be NULL:
 * then the namespace is required). DIAG_EPARSE with a reason for a wrong shape:
 * not an object, another kind, no metadata.name, an annotation value that is
 * not a string.
 */
int sa_from_json(const cJSON *obj, const char *default_namespace,
		 sa_keep_fn keep, void *arg, struct service_account **ret_sa,
		 struct diag *d);

/* Builds one from parts (strings are copied). 0 or DIAG_ENOMEM. */
int sa_new(const char *namespace, const char *name,
	   const struct sa_annotation *annotations, size_t n,
	   struct service_account **ret_sa);

/* The value of an annotation, or NULL. */
const char *sa_annotation(const struct service_account *sa, const char *key);

/* Bytes held by sa (for cache accounting). */
size_t sa_size(const struct service_account *sa);

/* Frees it; accepts NULL. */
void sa_free(struct service_account *sa);

#endif
