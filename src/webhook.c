/*
 * webhook: the admission flow around the pure core. Everything that can fail here
 * maps to a status code the API server understands: a bad review is the caller's
 * fault (400), a ServiceAccount we cannot look up is ours (500, so the webhook
 * configuration's failurePolicy decides), anything else is a 200 AdmissionReview.
 */
#include "webhook.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "admission.h"
#include "bounds.h"
#include "log.h"
#include "mem.h"
#include "mutate.h"

#define ARENA_STACK_BYTES	  (32 * 1024) /* holds the tree of a typical pod */
#define ARENA_BYTES_PER_BODY_BYTE 48 /* cJSON's worst expansion, about 32x */

struct admission_log {
	const struct admission_request *req;
	const char *namespace, *pod, *sa_name;
	const struct mutation *m;
	double seconds;
};

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void reply_text(struct http_reply *out, int status, const char *text)
{
	out->status = status;
	out->content_type = "text/plain; charset=utf-8";
	out->body = mem_strdup(text);
	out->len = out->body ? strlen(out->body) : 0;
}

static void log_admission(const struct admission_log *a)
{
	char profiles[BOUND_PROFILES * (BOUND_PROFILE_NAME + 1)] = "", ms[32],
							     warnings[16];
	const struct mutation *m = a->m;
	const char *reason = m->skip_reason;
	size_t n = 0;

	for (size_t i = 0; i < m->n_applied && n < sizeof(profiles); i++)
		n += (size_t)snprintf(profiles + n, sizeof(profiles) - n,
				      "%s%s", i ? "," : "", m->applied[i]);
	if (!m->allowed || m->outcome == MUTATE_NOT_UNDERSTOOD)
		reason = strbuf_str(&m->message);
	snprintf(ms, sizeof(ms), "%.3f", a->seconds * 1000);
	snprintf(warnings, sizeof(warnings), "%zu", m->n_warnings);
	log_event(LOG_INFO, "admission", "uid", a->req->uid, "namespace",
		  a->namespace, "pod", a->pod, "service_account", a->sa_name,
		  "decision", m->allowed ? "allowed" : "denied", "outcome",
		  mutate_outcome_name(m->outcome), "profiles", profiles,
		  "reason", reason, "warnings", warnings, "dry_run",
		  a->req->dry_run ? "true" : "false", "duration_ms", ms, NULL);
}

int webhook_encode_review(const struct admission_request *req,
			  struct mutation *m, struct strbuf *out)
{
	struct admission_response r = {
		.uid = req->uid,
		.allowed = m->allowed,
		.message = m->allowed ? NULL : strbuf_str(&m->message),
		.warnings = m->warnings,
		.n_warnings = m->n_warnings,
	};

	r.patch = patch_text(&m->patch, &r.patch_len);
	if (r.patch == NULL)
		return DIAG_ENOMEM;
	return admission_encode(req->version, &r, out);
}

static void encode(const struct admission_request *req, struct mutation *m,
		   struct http_reply *out)
{
	struct strbuf sb;

	strbuf_init(&sb, BOUND_PATCH_BYTES * 2);
	if (webhook_encode_review(req, m, &sb) != 0) {
		strbuf_free(&sb);
		reply_text(out, 500,
			   "out of memory while encoding the response\n");
		return;
	}
	out->status = 200;
	out->content_type = "application/json";
	out->body = strbuf_detach(&sb, &out->len);
}

/* Looks up the pod's ServiceAccount; false (with a 500 reply) when unavailable. */
enum found { FOUND, FAILED, NEEDS_IO };

/* Looks up the pod's ServiceAccount (NULL when it does not exist). FAILED comes with
 * a 500 reply; NEEDS_IO when may_block is false and only a live lookup could tell. */
static enum found find_service_account(const struct webhook *w, const char *ns,
				       const char *name, bool may_block,
				       struct service_account **sa,
				       struct http_reply *out)
{
	char text[700], why[sizeof(((struct diag *)0)->text) + 200];
	enum sa_lookup result;
	struct diag d;

	diag_clear(&d);
	result = may_block ? w->sa->lookup(w->sa, ns, name, sa, &d)
			   : w->sa->lookup_cached(w->sa, ns, name, sa, &d);
	if (result == SA_LOOKUP_WOULD_BLOCK)
		return NEEDS_IO;
	if (result != SA_LOOKUP_UNAVAILABLE)
		return FOUND;
	diag_format(&d, why, sizeof(why));
	snprintf(text, sizeof(text),
		 "cannot look up ServiceAccount %s/%s: %s\n", ns, name, why);
	log_event(LOG_ERROR, "service_account_lookup_failed", "namespace", ns,
		  "service_account", name, "error", why, NULL);
	reply_text(out, 500, text);
	return FAILED;
}

/* Decides and replies; false (nothing done) when it would need network I/O and
 * may_block is false. */
static bool decide(const struct webhook *w, const struct admission_request *req,
		   bool may_block, struct http_reply *out, double started)
{
	struct mutate_input in = { .pod = req->object,
				   .namespace = req->namespace };
	struct admission_log a = { .req = req };
	struct service_account *sa = NULL;
	const struct profile_set *set;
	struct mutation m;
	void *handle = NULL;
	struct diag d;

	mutation_init(&m);
	a.m = &m;
	a.pod = mutate_pod_name(req->object);
	a.sa_name = mutate_service_account_name(req->object);
	a.namespace = req->namespace && req->namespace[0] ? req->namespace
							  : "default";
	switch (find_service_account(w, a.namespace, a.sa_name, may_block, &sa,
				     out)) {
	case NEEDS_IO:
		mutation_free(&m);
		return false;
	case FAILED:
		if (w->metrics)
			metrics_admission(w->metrics, "error",
					  now_seconds() - started, NULL, 0,
					  NULL);
		goto out;
	case FOUND:
		break;
	}
	in.sa = sa;
	in.namespace = a.namespace;
	set = profile_live_acquire(w->profiles, &handle);
	diag_clear(&d);
	if (mutate_pod(&in, set, w->settings, &m, &d) != 0)
		reply_text(out, 500,
			   "cannot decide on the pod: out of memory\n");
	else
		encode(req, &m, out);
	a.seconds = now_seconds() - started;
	if (out->status == 200)
		log_admission(&a);
	if (w->metrics)
		metrics_admission(
			w->metrics,
			out->status == 200 ? mutate_outcome_name(m.outcome)
					   : "error",
			a.seconds,
			m.outcome == MUTATE_PATCHED ? m.applied : NULL,
			m.outcome == MUTATE_PATCHED ? m.n_applied : 0,
			m.deny_reason);
	profile_live_release(w->profiles, handle);
out:
	mutation_free(&m);
	sa_free(sa);
	return true;
}

static void pass_through(const struct webhook *w,
			 const struct admission_request *req,
			 struct http_reply *out, double started)
{
	struct mutation m;
	char ms[32];
	double seconds;

	mutation_init(&m);
	m.outcome = MUTATE_NOT_POD_CREATE;
	encode(req, &m, out);
	seconds = now_seconds() - started;
	if (w->metrics)
		metrics_admission(w->metrics,
				  out->status == 200 ? "not-pod-create"
						     : "error",
				  seconds, NULL, 0, NULL);
	snprintf(ms, sizeof(ms), "%.3f", seconds * 1000);
	log_event(LOG_INFO, "admission", "uid", req->uid, "namespace",
		  req->namespace ? req->namespace : "", "pod",
		  req->object ? mutate_pod_name(req->object) : "",
		  "service_account",
		  req->object ? mutate_service_account_name(req->object) : "",
		  "kind", req->kind, "operation", req->operation, "decision",
		  "allowed", "outcome", "not-pod-create", "duration_ms", ms,
		  NULL);
	mutation_free(&m);
}

bool webhook_answer(const struct webhook *w, const char *body, size_t len,
		    bool may_block, struct http_reply *out)
{
	_Alignas(16) char arena_buf[ARENA_STACK_BYTES];
	struct admission_request req;
	double started = now_seconds();
	char text[sizeof(((struct diag *)0)->text) + 64];
	struct mem_arena arena;
	struct diag d;
	bool answered = true;
	int rc;

	memset(out, 0, sizeof(*out));
	diag_clear(&d);
	/* The request's JSON tree lives in an arena: parsed and dropped in one go. */
	mem_arena_init(&arena, arena_buf, sizeof(arena_buf),
		       ARENA_BYTES_PER_BODY_BYTE * len + sizeof(arena_buf));
	mem_arena_enter(&arena);
	rc = admission_decode_pruned(body, len, mutate_pod_members, &req, &d);
	mem_arena_pause(&arena);
	if (rc != 0) {
		if (arena.exhausted)
			reply_text(out, 413,
				   "request body too complex to process\n");
		else {
			snprintf(text, sizeof(text),
				 "invalid AdmissionReview: %s\n", d.text);
			reply_text(out, d.code == DIAG_ENOMEM ? 500 : 400,
				   text);
		}
		log_event(LOG_WARN, "admission_rejected", "error", d.text,
			  NULL);
		mem_arena_leave(&arena);
		return true;
	}
	if (admission_is_pod_create(&req))
		answered = decide(w, &req, may_block, out, started);
	else
		pass_through(w, &req, out, started);
	admission_request_forget(&req); /* the arena holds the tree */
	mem_arena_leave(&arena);
	return answered;
}

void webhook_mutate(const struct webhook *w, const char *body, size_t len,
		    struct http_reply *out)
{
	webhook_answer(w, body, len, true, out);
}
