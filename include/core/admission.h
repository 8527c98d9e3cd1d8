/*
 * admission: AdmissionReview (admission.k8s.io/v1 and v1beta1) decoding and
 * response encoding. The response echoes the request's apiVersion, kind and
 * uid.
 */
#ifndef PIW_ADMISSION_H
#define PIW_ADMISSION_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "json.h"
#include "strbuf.h"

enum admission_version {
	ADMISSION_V1,
	ADMISSION_V1BETA1,
};

struct admission_request {
	cJSON *root; /* owned: every pointer below points into it */
	enum admission_version version;
	const char *uid;
	const char *operation;	/* "CREATE", ...; "" when absent */
	const char *namespace;	/* NULL when absent */
	const char *kind_group; /* request.kind; "" when absent */
	const char *kind_version;
	const char *kind;
	const char *sub_resource; /* "" when absent */
	const cJSON *object;	  /* the object; NULL when absent */
	bool dry_run;
};

/*
 * Decodes an AdmissionReview from len bytes. On success *ret owns the parsed
 * tree (free with admission_request_free). DIAG_EPARSE with a reason for
 * malformed JSON, another kind or apiVersion, a missing request or uid, or a
 * known field of the wrong type; DIAG_ENOMEM when out of memory.
 */
int admission_decode(const char *body, size_t len,
		     struct admission_request *ret, struct diag *d);

/*
 * Same as admission_decode(), but the tree holds only what the request fields
 * above need and, of request.object, only object_members (NULL: all of it).
 * Everything is still validated: it accepts and refuses the same bodies. With
 * an arena (see json_parse_with()) the tree is allocated from it and goes with
 * it: never call admission_request_free() on such a request.
 */
int admission_decode_pruned(const char *body, size_t len,
			    const struct json_keep *object_members,
			    struct mem_arena *arena,
			    struct admission_request *ret, struct diag *d);

/*
 * Same as admission_decode() from a parsed tree; takes ownership of root on
 * success. Accepts a bare AdmissionRequest (an object with uid) as v1 too.
 */
int admission_from_json(cJSON *root, struct admission_request *ret,
			struct diag *d);

/*
 * Wraps a bare Pod (ownership taken on success) as a v1 Pod CREATE request with
 * an empty uid, for the offline `mutate` command. `namespace` may be NULL.
 */
int admission_from_pod(cJSON *pod, const char *namespace,
		       struct admission_request *ret, struct diag *d);

/* Whether the request is a Pod CREATE (core/v1 pods, no subresource). */
bool admission_is_pod_create(const struct admission_request *r);

/* Frees the tree; accepts a zeroed struct. */
void admission_request_free(struct admission_request *r);

struct admission_response {
	const char *uid;
	bool allowed;
	int status_code; /* with a denial: the HTTP-like code in status (403) */
	const char *message; /* status.message, or NULL */
	const char *patch;   /* JSON Patch text; NULL or "[]" means no patch */
	size_t patch_len;
	char *const *warnings;
	size_t n_warnings;
};

/* Writes the AdmissionReview response JSON. 0, DIAG_ENOMEM or DIAG_ELIMIT. */
int admission_encode(enum admission_version version,
		     const struct admission_response *r, struct strbuf *out);

#endif
