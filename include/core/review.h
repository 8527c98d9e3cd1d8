/*
 * review: the one admission pipeline, pure: decode -> decide -> encode.
 *
 * Every front door goes through it: `serve` (webhook.c adds only the
 * ServiceAccount lookup, timing, the log line and metrics), `mutate` (cli.c
 * adds only files and printing), `audit`, and the allocation-failure sweep.
 * No I/O, no logging, no globals.
 *
 *   decode   review_decode()        an AdmissionReview body (the server)
 *            review_from_document() a parsed Pod, AdmissionRequest or
 *                                   AdmissionReview (the `mutate` command)
 *   lookup   the caller finds r->sa_name in r->namespace when
 *            r->pod_create (or passes NULL: "not found")
 *   decide   review_decide()        fills r->m (allow/deny, patch, warnings)
 *   encode   review_encode()        the AdmissionReview response JSON
 *
 * Deciding for a pod and a ServiceAccount without any HTTP (what `audit`
 * does for a listed pod) is the decide step alone, on a borrowed Pod object:
 *
 *	struct review_policy policy = { .profiles = set, .settings = st,
 *					.identities = map }; // map may be NULL
 *	struct mutation m;
 *
 *	mutation_init(&m);
 *	rc = review_decide_pod(&policy, pod, namespace, sa, &m, &d);
 *	// rc 0: m.allowed, m.outcome, m.applied, m.patch, m.warnings are the
 *	// webhook's answer for a CREATE of this pod now; rc < 0: no decision
 *	mutation_free(&m);
 *
 * review_decide() calls exactly that for a Pod CREATE, so the two cannot
 * differ. The identity map (identity_map.h; a file: identity_file_load() in
 * identity_file.h) is applied inside the decide step: a caller that passes the
 * same policy gets the same answer as the webhook.
 */
#ifndef PIW_REVIEW_H
#define PIW_REVIEW_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "admission.h"
#include "diag.h"
#include "mem.h"
#include "mutate.h"
#include "strbuf.h"

struct identity_map;
struct profile_set;
struct service_account;
struct settings;

/* What a decision depends on besides the pod and its ServiceAccount (all
 * borrowed; they must outlive the call). */
struct review_policy {
	const struct profile_set *profiles;
	const struct settings *settings;       /* NULL: no settings */
	const struct identity_map *identities; /* NULL: no identity map */
};

/*
 * One admission under review. Created by review_decode() or
 * review_from_document(), freed by review_free(). The fields are read-only for
 * callers.
 */
struct review {
	struct admission_request req; /* the request; its tree is the review's */
	bool pod_create; /* a Pod CREATE: decide needs its ServiceAccount */
	const char *namespace; /* where to look up the ServiceAccount: the
				  request's, else the pod's, else "default" */
	const char *sa_name;   /* the pod's ServiceAccount ("default") */
	const char *pod_name;  /* for messages and logs; may be "" */
	struct mutation m;     /* the decision, once review_decide() ran */
	bool decided;
	/* private: where the tree lives */
	bool tree_in_arena;
	struct mem_arena arena;
};

/*
 * Decodes an AdmissionReview body (v1 or v1beta1), keeping of the object only
 * what the mutator reads. The tree lives in an arena of the review's own that
 * review_free() drops in one go; the review may be handed to another thread
 * (decide and encode do not depend on the decoding thread). 0 with *ret owned
 * by the caller; otherwise *ret is NULL and d says why: DIAG_EPARSE (a
 * malformed review: the client's fault), DIAG_ELIMIT (the body is too complex
 * for its size), DIAG_ENOMEM.
 */
int review_decode(const char *body, size_t len, struct review **ret,
		  struct diag *d);

/*
 * Makes a review of a parsed document: a bare Pod (taken as a v1 Pod CREATE
 * with an empty uid), an AdmissionRequest or an AdmissionReview. namespace,
 * when not NULL, overrides the request's. Takes ownership of root on success
 * only. DIAG_EPARSE with the reason for anything else, DIAG_ENOMEM.
 */
int review_from_document(cJSON *root, const char *namespace,
			 struct review **ret, struct diag *d);

/*
 * The decide step on a borrowed Pod: applies policy->identities to sa (NULL:
 * the ServiceAccount does not exist, and no map applies; its own annotations
 * win over the map's), then runs the mutator. namespace is the pod's (NULL:
 * the pod's metadata.namespace, else the ServiceAccount's). m must be
 * initialised (mutation_init). 0 when a decision was made, allowed or not;
 * DIAG_ENOMEM or
 * DIAG_ELIMIT when none could be.
 */
int review_decide_pod(const struct review_policy *policy, const cJSON *pod,
		      const char *namespace, const struct service_account *sa,
		      struct mutation *m, struct diag *d);

/*
 * Decides r (once): for a Pod CREATE, review_decide_pod() on its object with
 * sa (the ServiceAccount named by r->namespace and r->sa_name, NULL when it
 * does not exist); anything else is admitted untouched (MUTATE_NOT_POD_CREATE)
 * and sa is ignored. Return values as review_decide_pod(); on success r->m
 * holds the decision.
 */
int review_decide(struct review *r, const struct review_policy *policy,
		  const struct service_account *sa, struct diag *d);

/*
 * Appends the AdmissionReview response for r's decision to out: the request's
 * apiVersion and uid, the patch, the warnings, the message of a denial. r must
 * be decided. 0, DIAG_ENOMEM or DIAG_ELIMIT (out's maximum).
 */
int review_encode(struct review *r, struct strbuf *out);

/* Frees r, its tree and its decision. Accepts NULL. */
void review_free(struct review *r);

#endif
