/*
 * review: the admission pipeline that `serve`, `mutate`, `audit` and the
 * allocation-failure sweep share. Decoding a request body puts its tree in an
 * arena owned by the review (hundreds of small blocks that die together),
 * passed to the parser: nothing after decoding depends on the thread that
 * decoded, so a review can wait for a ServiceAccount lookup on
 * another thread without being parsed again.
 */
#include "review.h"

#include <string.h>

#include "identity_map.h"
#include "json.h"
#include "service_account.h"

#define ARENA_FIRST_BYTES	  (32 * 1024) /* holds the tree of a typical pod */
#define ARENA_BYTES_PER_BODY_BYTE 48 /* cJSON's worst expansion, about 32x */

/* A decoded review and the first block of its arena, in one allocation. */
struct review_block {
	struct review r; /* first: review_free() frees the block through it */
	_Alignas(16) char first[ARENA_FIRST_BYTES];
};

/* The request's namespace, else the pod's, else "default". */
static const char *lookup_namespace(const struct admission_request *req)
{
	const cJSON *metadata = NULL;
	const char *ns = req->namespace;

	if ((ns == NULL || ns[0] == '\0') && req->object &&
	    json_member(req->object, "metadata", cJSON_Object, &metadata) ==
		    JSON_FOUND)
		ns = json_string(metadata, "namespace");
	return ns && ns[0] ? ns : "default";
}

/* Fills what the lookup step reads from the decoded request. */
static void describe(struct review *r)
{
	r->pod_create = admission_is_pod_create(&r->req);
	r->namespace = lookup_namespace(&r->req);
	r->sa_name =
		r->req.object ? mutate_service_account_name(r->req.object) : "";
	r->pod_name = r->req.object ? mutate_pod_name(r->req.object) : "";
}

int review_decode(const char *body, size_t len, struct review **ret,
		  struct diag *d)
{
	struct review_block *b = mem_alloc(sizeof(*b));
	struct review *r;
	int rc;

	*ret = NULL;
	if (b == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	r = &b->r;
	memset(r, 0, sizeof(*r));
	mutation_init(&r->m);
	mem_arena_init(&r->arena, b->first, sizeof(b->first),
		       ARENA_BYTES_PER_BODY_BYTE * len + sizeof(b->first));
	r->tree_in_arena = true;
	rc = admission_decode_pruned(body, len, mutate_pod_members, &r->arena,
				     &r->req, d);
	if (rc != 0 && r->arena.exhausted) {
		diag_clear(d);
		rc = diag_set(d, DIAG_ELIMIT,
			      "the request body is too complex to process");
	}
	if (rc != 0) {
		review_free(r);
		return rc;
	}
	describe(r);
	*ret = r;
	return 0;
}

/* A Pod, an AdmissionRequest or an AdmissionReview, as a request. */
static int document_request(cJSON *root, struct admission_request *req,
			    struct diag *d)
{
	const char *kind;

	if (!cJSON_IsObject(root))
		return diag_set(
			d, DIAG_EPARSE,
			"expected a JSON object: a Pod, AdmissionRequest or "
			"AdmissionReview");
	kind = json_string(root, "kind");
	if ((kind == NULL || strcmp(kind, "Pod") == 0) &&
	    cJSON_GetObjectItem(root, "uid") == NULL)
		return admission_from_pod(root, NULL, req, d);
	if (kind && strcmp(kind, "AdmissionReview") != 0)
		return diag_set(d, DIAG_EPARSE,
				"kind is '%.64s', not Pod or AdmissionReview",
				kind);
	return admission_from_json(root, req, d);
}

int review_from_document(cJSON *root, const char *namespace,
			 struct review **ret, struct diag *d)
{
	struct review *r = mem_calloc(1, sizeof(*r));
	int rc;

	*ret = NULL;
	if (r == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	mutation_init(&r->m);
	rc = document_request(root, &r->req, d);
	if (rc != 0) {
		r->req.root = NULL; /* still the caller's */
		review_free(r);
		return rc;
	}
	if (namespace)
		r->req.namespace = namespace;
	describe(r);
	*ret = r;
	return 0;
}

int review_decide_pod(const struct review_policy *policy, const cJSON *pod,
		      const char *namespace, const struct service_account *sa,
		      struct mutation *m, struct diag *d)
{
	struct mutate_input in = { .pod = pod, .namespace = namespace };
	struct service_account *mapped = NULL;
	int rc = 0;

	if (sa && policy->identities)
		rc = identity_map_apply(policy->identities, sa, &mapped);
	if (rc != 0)
		return diag_set(d, rc, "%s while applying the identity map",
				diag_code_name(rc));
	in.sa = mapped ? mapped : sa;
	rc = mutate_pod(&in, policy->profiles, policy->settings, m, d);
	sa_free(mapped);
	return rc;
}

int review_decide(struct review *r, const struct review_policy *policy,
		  const struct service_account *sa, struct diag *d)
{
	int rc = 0;

	if (r->decided)
		return 0;
	if (r->pod_create)
		rc = review_decide_pod(policy, r->req.object, r->req.namespace,
				       sa, &r->m, d);
	else
		r->m.outcome = MUTATE_NOT_POD_CREATE;
	r->decided = rc == 0;
	return rc;
}

int review_encode(struct review *r, struct strbuf *out)
{
	struct mutation *m = &r->m;
	struct admission_response resp = {
		.uid = r->req.uid,
		.allowed = m->allowed,
		.message = m->allowed ? NULL : strbuf_str(&m->message),
		.warnings = m->warnings,
		.n_warnings = m->n_warnings,
	};

	if (!r->decided)
		return DIAG_EINVAL;
	resp.patch = patch_text(&m->patch, &resp.patch_len);
	if (resp.patch == NULL)
		return DIAG_ENOMEM;
	return admission_encode(r->req.version, &resp, out);
}

void review_free(struct review *r)
{
	if (r == NULL)
		return;
	mutation_free(&r->m);
	if (r->tree_in_arena) {
		/* The tree's blocks go with the arena, from whichever thread. */
		mem_arena_release(&r->arena);
	} else {
		admission_request_free(&r->req);
	}
	mem_free(r);
}
