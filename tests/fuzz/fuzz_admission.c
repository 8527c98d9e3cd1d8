/*
 * Fuzz target: an AdmissionReview through decode -> mutate -> encode, with the
 * ServiceAccount from the same input (the bytes before the first newline). Beyond "no
 * crash", it checks two properties of the mutator: every patch it produces applies to
 * the pod, and mutating the patched pod again changes nothing (providers-reference
 * rule 3). And the server's pruned decode must agree with the whole one: the same
 * verdict on the body, and the same decision, patch and warnings for the pod, which
 * holds mutate_pod_members to naming everything the mutator reads. Any failure
 * aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "service_account.h"
#include "settings.h"

#include "fuzz.h"
#include "fuzz_shipped.h"

static struct profile_set *profiles;
static struct settings *settings;

static void fuzz_fixture(void)
{
	static const char *const pairs[] = { "role-session-name=true",
					     "region=eu-central-1", NULL };

	fuzz_shipped_profiles(&profiles, &settings, pairs);
}

static struct service_account *read_sa(const char *text, size_t len)
{
	struct service_account *sa = NULL;
	cJSON *root = NULL;

	if (json_parse(text, len, &root, NULL) == 0)
		sa_from_json(root, "default", NULL, NULL, &sa, NULL);
	cJSON_Delete(root);
	return sa;
}

/* Applies the patch, mutates again and insists on an empty second patch. */
static void check_properties(const struct admission_request *req,
			     const struct service_account *sa,
			     struct mutation *m)
{
	struct mutate_input in = { NULL, req->namespace, sa };
	struct mutation again;
	size_t len;
	const char *text = patch_text(&m->patch, &len);
	cJSON *pod = cJSON_Duplicate(req->object, 1);

	if (pod == NULL || text == NULL)
		abort();
	if (patch_apply(pod, text, len, NULL) != 0) {
		fprintf(stderr, "patch does not apply: %.*s\n", (int)len, text);
		abort();
	}
	in.pod = pod;
	mutation_init(&again);
	if (mutate_pod(&in, profiles, settings, &again, NULL) != 0)
		abort();
	if (!again.allowed || again.patch.n_ops != 0) {
		fprintf(stderr, "second pass not empty (%s): %s\n",
			mutate_outcome_name(again.outcome),
			strbuf_str(&again.message));
		abort();
	}
	mutation_free(&again);
	cJSON_Delete(pod);
}

static void encode(const struct admission_request *req, struct mutation *m)
{
	struct admission_response r = { .uid = req->uid,
					.allowed = m->allowed,
					.message = strbuf_str(&m->message),
					.warnings = m->warnings,
					.n_warnings = m->n_warnings };
	struct strbuf out;
	cJSON *check = NULL;

	strbuf_init(&out, 64L * 1024 * 1024);
	r.patch = patch_text(&m->patch, &r.patch_len);
	if (r.patch && admission_encode(req->version, &r, &out) == 0) {
		if (json_parse(out.buf, out.len, &check, NULL) != 0)
			abort(); /* our own output must be valid JSON */
		cJSON_Delete(check);
	}
	strbuf_free(&out);
}

/* mutate_pod()'s code; 0 for a request that is not a Pod CREATE. */
static int mutate_request(const struct admission_request *req,
			  const struct service_account *sa, struct mutation *m)
{
	struct mutate_input in = { req->object, req->namespace, sa };

	if (!admission_is_pod_create(req))
		return 0;
	return mutate_pod(&in, profiles, settings, m, NULL);
}

static bool same_text(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* The decision on the pruned pod must be the decision on the whole one. */
static void check_pruned_agrees(struct mutation *m, int rc, const char *body,
				size_t len, const struct service_account *sa)
{
	struct admission_request req;
	struct mutation pm;
	size_t n, pn;
	bool same;

	if (admission_decode_pruned(body, len, mutate_pod_members, NULL, &req,
				    NULL) != 0) {
		fprintf(stderr, "pruned decode refuses what decode accepts\n");
		abort();
	}
	mutation_init(&pm);
	same = mutate_request(&req, sa, &pm) == rc &&
	       pm.allowed == m->allowed && pm.outcome == m->outcome &&
	       pm.n_warnings == m->n_warnings &&
	       same_text(strbuf_str(&pm.message), strbuf_str(&m->message)) &&
	       same_text(patch_text(&pm.patch, &pn), patch_text(&m->patch, &n));
	for (size_t i = 0; same && i < m->n_warnings; i++)
		same = same_text(pm.warnings[i], m->warnings[i]);
	if (!same) {
		fprintf(stderr, "pruned pod decided differently: %s / %s\n",
			strbuf_str(&pm.message), strbuf_str(&m->message));
		abort();
	}
	mutation_free(&pm);
	admission_request_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *nl = memchr(data, '\n', size);
	size_t sa_len = nl ? (size_t)(nl - text) : 0;
	struct service_account *sa = nl ? read_sa(text, sa_len) : NULL;
	const char *body = nl ? nl + 1 : text;
	size_t body_len = size - (size_t)(body - text);
	struct admission_request req;
	struct mutation m;

	mutation_init(&m);
	if (admission_decode(body, body_len, &req, NULL) == 0) {
		int rc = mutate_request(&req, sa, &m);

		check_pruned_agrees(&m, rc, body, body_len, sa);
		if (rc == 0 && m.allowed && m.outcome == MUTATE_PATCHED)
			check_properties(&req, sa, &m);
		encode(&req, &m);
		admission_request_free(&req);
	} else if (admission_decode_pruned(body, body_len, NULL, NULL, &req,
					   NULL) == 0) {
		fprintf(stderr, "pruned decode accepts what decode refuses\n");
		abort();
	}
	mutation_free(&m);
	sa_free(sa);
	return 0;
}
