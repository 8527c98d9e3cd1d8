/*
 * admission: the AdmissionReview wire format. Decoding is strict about the
 * fields we rely on (a wrong type is a 400, not a guess); encoding is written
 * directly as text, with the patch base64-encoded in one pass.
 */
#include "admission.h"

#include <string.h>

#include "base64.h"
#include "json.h"

#define API_V1	    "admission.k8s.io/v1"
#define API_V1BETA1 "admission.k8s.io/v1beta1"

/* Reads an optional string member; a present non-string is an error. */
static int optional_string(const cJSON *obj, const char *key, const char *path,
			   const char **out, struct diag *d)
{
	const cJSON *item = NULL;

	switch (json_member(obj, key, cJSON_String, &item)) {
	case JSON_FOUND:
		*out = item->valuestring;
		return 0;
	case JSON_WRONG_TYPE:
		return diag_set(d, DIAG_EPARSE, "%s%s is not a string", path,
				key);
	default:
		return 0;
	}
}

static int read_kind(const cJSON *request, struct admission_request *r,
		     struct diag *d)
{
	const cJSON *kind = NULL;
	int rc = 0;

	r->kind_group = r->kind_version = r->kind = "";
	switch (json_member(request, "kind", cJSON_Object, &kind)) {
	case JSON_WRONG_TYPE:
		return diag_set(d, DIAG_EPARSE,
				"request.kind is not an object");
	case JSON_MISSING:
		return 0;
	default:
		break;
	}
	rc = optional_string(kind, "group", "request.kind.", &r->kind_group, d);
	if (rc == 0)
		rc = optional_string(kind, "version", "request.kind.",
				     &r->kind_version, d);
	if (rc == 0)
		rc = optional_string(kind, "kind", "request.kind.", &r->kind,
				     d);
	return rc;
}

static int read_request(const cJSON *request, struct admission_request *r,
			struct diag *d)
{
	const cJSON *item = NULL, *resource = NULL;
	int rc;

	if (json_member(request, "uid", cJSON_String, &item) != JSON_FOUND ||
	    item->valuestring[0] == '\0')
		return diag_set(d, DIAG_EPARSE,
				"request.uid is missing or not a string");
	r->uid = item->valuestring;
	r->operation = "";
	r->sub_resource = "";
	rc = optional_string(request, "operation", "request.", &r->operation,
			     d);
	if (rc == 0)
		rc = optional_string(request, "namespace", "request.",
				     &r->namespace, d);
	if (rc == 0)
		rc = optional_string(request, "subResource", "request.",
				     &r->sub_resource, d);
	if (rc == 0)
		rc = read_kind(request, r, d);
	if (rc != 0)
		return rc;
	if (json_member(request, "resource", cJSON_Object, &resource) ==
	    JSON_WRONG_TYPE)
		return diag_set(d, DIAG_EPARSE,
				"request.resource is not an object");
	switch (json_member(request, "dryRun", cJSON_True | cJSON_False,
			    &item)) {
	case JSON_WRONG_TYPE:
		return diag_set(d, DIAG_EPARSE,
				"request.dryRun is not a boolean");
	case JSON_FOUND:
		r->dry_run = cJSON_IsTrue(item);
		break;
	default:
		break;
	}
	if (json_member(request, "object", cJSON_Object, &r->object) ==
	    JSON_WRONG_TYPE)
		return diag_set(d, DIAG_EPARSE,
				"request.object is not an object");
	return 0;
}

static int read_review(const cJSON *root, struct admission_request *r,
		       struct diag *d)
{
	const char *api = json_string(root, "apiVersion");
	const char *kind = json_string(root, "kind");
	const cJSON *request = NULL;

	if (kind == NULL || strcmp(kind, "AdmissionReview") != 0)
		return diag_set(d, DIAG_EPARSE,
				"not an AdmissionReview (kind is %s%.64s%s)",
				kind ? "'" : "", kind ? kind : "missing",
				kind ? "'" : "");
	if (api && strcmp(api, API_V1) == 0)
		r->version = ADMISSION_V1;
	else if (api && strcmp(api, API_V1BETA1) == 0)
		r->version = ADMISSION_V1BETA1;
	else
		return diag_set(
			d, DIAG_EPARSE,
			"unsupported apiVersion '%.64s' (want %s or %s)",
			api ? api : "", API_V1, API_V1BETA1);
	if (json_member(root, "request", cJSON_Object, &request) != JSON_FOUND)
		return diag_set(d, DIAG_EPARSE,
				"request is missing or not an object");
	return read_request(request, r, d);
}

int admission_from_json(cJSON *root, struct admission_request *ret,
			struct diag *d)
{
	struct admission_request r = { 0 };
	int rc;

	if (!cJSON_IsObject(root))
		return diag_set(d, DIAG_EPARSE,
				"not an AdmissionReview (not a JSON object)");
	if (json_string(root, "kind") == NULL &&
	    cJSON_GetObjectItem(root, "uid")) {
		r.version = ADMISSION_V1; /* a bare AdmissionRequest */
		rc = read_request(root, &r, d);
	} else {
		rc = read_review(root, &r, d);
	}
	if (rc != 0)
		return rc;
	r.root = root;
	*ret = r;
	return 0;
}

/* Takes ownership of the parsed root; an arena's tree goes with its arena. */
static int decode_root(cJSON *root, const struct mem_arena *arena,
		       struct admission_request *ret, struct diag *d)
{
	int rc = json_string(root, "kind") == NULL
			 ? diag_set(d, DIAG_EPARSE,
				    "not an AdmissionReview (no kind)")
			 : admission_from_json(root, ret, d);

	if (rc != 0 && arena == NULL)
		cJSON_Delete(root);
	return rc;
}

int admission_decode(const char *body, size_t len,
		     struct admission_request *ret, struct diag *d)
{
	cJSON *root = NULL;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = json_parse(body, len, &root, d);
	return rc != 0 ? rc : decode_root(root, NULL, ret, d);
}

int admission_decode_pruned(const char *body, size_t len,
			    const struct json_keep *object_members,
			    struct mem_arena *arena,
			    struct admission_request *ret, struct diag *d)
{
	static const struct json_keep kind_members[] = {
		{ "group", NULL, false },
		{ "version", NULL, false },
		{ "kind", NULL, false },
		{ NULL, NULL, false },
	};
	/* read_request()'s members, and what read_review() reads */
	const struct json_keep request_members[] = {
		{ "uid", NULL, false },
		{ "operation", NULL, false },
		{ "namespace", NULL, false },
		{ "subResource", NULL, false },
		{ "kind", kind_members, false },
		{ "resource", NULL, false },
		{ "dryRun", NULL, false },
		{ "object", object_members, false },
		{ NULL, NULL, false },
	};
	const struct json_keep review_members[] = {
		{ "apiVersion", NULL, false },
		{ "kind", NULL, false },
		{ "request", request_members, false },
		{ NULL, NULL, false },
	};
	cJSON *root = NULL;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = json_parse_with(body, len, review_members, arena, &root, d);
	return rc != 0 ? rc : decode_root(root, arena, ret, d);
}

int admission_from_pod(cJSON *pod, const char *namespace,
		       struct admission_request *ret, struct diag *d)
{
	if (!cJSON_IsObject(pod))
		return diag_set(d, DIAG_EPARSE, "a Pod must be a JSON object");
	memset(ret, 0, sizeof(*ret));
	ret->root = pod;
	ret->version = ADMISSION_V1;
	ret->uid = "";
	ret->operation = "CREATE";
	ret->namespace = namespace;
	ret->kind_group = "";
	ret->kind_version = "v1";
	ret->kind = "Pod";
	ret->sub_resource = "";
	ret->object = pod;
	return 0;
}

bool admission_is_pod_create(const struct admission_request *r)
{
	return strcmp(r->operation, "CREATE") == 0 &&
	       strcmp(r->kind, "Pod") == 0 && r->kind_group[0] == '\0' &&
	       strcmp(r->kind_version, "v1") == 0 &&
	       r->sub_resource[0] == '\0' && r->object != NULL;
}

void admission_request_free(struct admission_request *r)
{
	cJSON_Delete(r->root);
	r->root = NULL;
}

static int encode_warnings(const struct admission_response *r,
			   struct strbuf *out)
{
	int rc = strbuf_adds(out, ",\"warnings\":[");

	for (size_t i = 0; rc == 0 && i < r->n_warnings; i++) {
		if (i > 0)
			rc = strbuf_addc(out, ',');
		if (rc == 0)
			rc = json_append_string(out, r->warnings[i]);
	}
	if (rc == 0)
		rc = strbuf_addc(out, ']');
	return rc;
}

static int encode_status(const struct admission_response *r, struct strbuf *out)
{
	int rc = strbuf_addf(out, ",\"status\":{\"code\":%d,\"message\":",
			     r->status_code ? r->status_code : 403);

	if (rc == 0)
		rc = json_append_string(out, r->message);
	if (rc == 0)
		rc = strbuf_addc(out, '}');
	return rc;
}

int admission_encode(enum admission_version version,
		     const struct admission_response *r, struct strbuf *out)
{
	bool has_patch = r->patch && r->patch_len > 2;
	/* The answer's size, but for a denial's message and the warnings, is
	 * known: reserved at once, the buffer is not grown and copied five
	 * times on the way to a patch's 5 KB. */
	size_t known = 256 + (r->uid ? strlen(r->uid) : 0) +
		       (has_patch ? (r->patch_len + 2) / 3 * 4 : 0);
	int rc = strbuf_reserve(out, known);

	if (rc == 0)
		rc = strbuf_adds(out, "{\"apiVersion\":\"");

	if (rc == 0)
		rc = strbuf_adds(out, version == ADMISSION_V1 ? API_V1
							      : API_V1BETA1);
	if (rc == 0)
		rc = strbuf_adds(out, "\",\"kind\":\"AdmissionReview\","
				      "\"response\":{\"uid\":");

	if (rc == 0)
		rc = json_append_string(out, r->uid);
	if (rc == 0)
		rc = strbuf_adds(out, r->allowed ? ",\"allowed\":true"
						 : ",\"allowed\":false");
	if (rc == 0 && has_patch) {
		rc = strbuf_adds(out,
				 ",\"patchType\":\"JSONPatch\",\"patch\":\"");
		if (rc == 0)
			rc = base64_append(out, (const unsigned char *)r->patch,
					   r->patch_len);
		if (rc == 0)
			rc = strbuf_addc(out, '"');
	}
	if (rc == 0 && !r->allowed && r->message)
		rc = encode_status(r, out);
	if (rc == 0 && r->n_warnings > 0)
		rc = encode_warnings(r, out);
	if (rc == 0)
		rc = strbuf_adds(out, "}}");
	return rc;
}
