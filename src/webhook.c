/*
 * webhook: the admission flow around the pure core. Everything that can fail here
 * maps to a status code the API server understands: a bad review is the caller's
 * fault (400), a ServiceAccount we cannot look up is ours (500, so the webhook
 * configuration's failurePolicy decides), anything else is a 200 AdmissionReview.
 */
#include "webhook.h"

#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "mutate.h"
#include "strutil.h"

static void reply_text(struct http_reply *out, int status, const char *text)
{
	out->status = status;
	out->content_type = "text/plain; charset=utf-8";
	out->body = mem_strdup(text);
	out->len = out->body ? strlen(out->body) : 0;
}

/*
 * Writes seconds as milliseconds with three decimals ("0.214"), as "%.3f" would for
 * the durations we log (under 10^12 ms), without printf's floating-point path.
 */
static void format_ms(char out[STR_I64_SIZE + 4], double seconds)
{
	long long us = (long long)(seconds * 1e6 + 0.5);
	size_t n = str_from_i64(out, us / 1000);

	out[n++] = '.';
	out[n++] = (char)('0' + us / 100 % 10);
	out[n++] = (char)('0' + us / 10 % 10);
	out[n++] = (char)('0' + us % 10);
	out[n] = '\0';
}

/* The log line of a decided Pod CREATE. */
static void log_pod_create(const struct review *r, double seconds)
{
	char profiles[MUTATION_APPLIED_LIST_SIZE], ms[STR_I64_SIZE + 4],
		warnings[STR_I64_SIZE];
	const struct mutation *m = &r->m;
	const char *reason = m->skip_reason;

	mutation_applied_list(m, profiles, sizeof(profiles));
	if (!m->allowed || m->outcome == MUTATE_NOT_UNDERSTOOD)
		reason = strbuf_str(&m->message);
	format_ms(ms, seconds);
	str_from_i64(warnings, (long long)m->n_warnings);
	log_event(LOG_INFO, "admission", "uid", r->req.uid, "namespace",
		  r->namespace, "pod", r->pod_name, "service_account",
		  r->sa_name, "decision", m->allowed ? "allowed" : "denied",
		  "outcome", mutate_outcome_name(m->outcome), "profiles",
		  profiles, "reason", reason, "warnings", warnings, "dry_run",
		  r->req.dry_run ? "true" : "false", "duration_ms", ms, NULL);
}

/* The log line of anything else (admitted untouched). */
static void log_pass_through(const struct review *r, double seconds)
{
	char ms[STR_I64_SIZE + 4];

	format_ms(ms, seconds);
	log_event(LOG_INFO, "admission", "uid", r->req.uid, "namespace",
		  r->req.namespace ? r->req.namespace : "", "pod", r->pod_name,
		  "service_account", r->req.object ? r->sa_name : "", "kind",
		  r->req.kind, "operation", r->req.operation, "decision",
		  "allowed", "outcome",
		  mutate_outcome_name(MUTATE_NOT_POD_CREATE), "duration_ms", ms,
		  NULL);
}

static void encode(struct review *r, struct http_reply *out)
{
	struct strbuf sb;

	strbuf_init(&sb, BOUND_PATCH_BYTES * 2);
	if (review_encode(r, &sb) != 0) {
		strbuf_free(&sb);
		reply_text(out, 500,
			   "out of memory while encoding the response\n");
		return;
	}
	out->status = 200;
	out->content_type = "application/json";
	out->body = strbuf_detach(&sb, &out->len);
}

enum found { FOUND, FAILED, NEEDS_IO };

/* Looks up the pod's ServiceAccount (NULL when it does not exist). FAILED comes with
 * a 500 reply; NEEDS_IO when may_block is false and only a live lookup could tell. */
static enum found find_service_account(const struct webhook *w,
				       const struct review *r, bool may_block,
				       struct service_account **sa,
				       struct http_reply *out)
{
	char text[700], why[sizeof(((struct diag *)0)->text) + 200];
	enum sa_lookup result;
	struct diag d;

	diag_clear(&d);
	result = may_block ? w->sa->lookup(w->sa, r->namespace, r->sa_name, sa,
					   &d)
			   : w->sa->lookup_cached(w->sa, r->namespace,
						  r->sa_name, sa, &d);
	if (result == SA_LOOKUP_WOULD_BLOCK)
		return NEEDS_IO;
	if (result != SA_LOOKUP_UNAVAILABLE)
		return FOUND;
	diag_format(&d, why, sizeof(why));
	snprintf(text, sizeof(text),
		 "cannot look up ServiceAccount %s/%s: %s\n", r->namespace,
		 r->sa_name, why);
	log_event(LOG_ERROR, "service_account_lookup_failed", "namespace",
		  r->namespace, "service_account", r->sa_name, "error", why,
		  NULL);
	reply_text(out, 500, text);
	return FAILED;
}

/*
 * The profiles and identity map a request is decided with, held from the
 * decision until its log line and metrics are done: the mutation borrows the
 * applied profiles' names from the set, and a reload (SIGHUP) may replace the
 * set meanwhile.
 */
struct held_policy {
	struct review_policy policy;
	void *profiles_handle, *map_handle;
};

static void hold_policy(const struct webhook *w, struct held_policy *h)
{
	memset(h, 0, sizeof(*h));
	h->policy.settings = w->settings;
	h->policy.profiles =
		profile_live_acquire(w->profiles, &h->profiles_handle);
	if (w->identities)
		h->policy.identities =
			identity_file_acquire(w->identities, &h->map_handle);
}

static void release_policy(const struct webhook *w, struct held_policy *h)
{
	if (w->identities)
		identity_file_release(w->identities, h->map_handle);
	profile_live_release(w->profiles, h->profiles_handle);
}

/* Decides with the held profiles and encodes the answer. */
static void decide(const struct review_policy *policy, struct review *r,
		   const struct service_account *sa, struct http_reply *out)
{
	struct diag d;

	diag_clear(&d);
	if (review_decide(r, policy, sa, &d) != 0)
		reply_text(out, 500,
			   "cannot decide on the pod: out of memory\n");
	else
		encode(r, out);
}

static void count(const struct webhook *w, const struct review *r,
		  const struct http_reply *out, double seconds)
{
	const struct mutation *m = &r->m;
	bool patched = m->outcome == MUTATE_PATCHED;

	if (w->metrics == NULL)
		return;
	metrics_admission(w->metrics, m->outcome, out->status != 200, seconds,
			  patched ? m->applied : NULL,
			  patched ? m->n_applied : 0, m->deny_reason);
}

bool webhook_begin(const struct webhook *w, const char *body, size_t len,
		   struct webhook_call *call, struct http_reply *out)
{
	char text[sizeof(((struct diag *)0)->text) + 64];
	struct diag d;

	(void)w;
	memset(out, 0, sizeof(*out));
	call->started = clock_now_seconds();
	diag_clear(&d);
	if (review_decode(body, len, &call->review, &d) == 0)
		return true;
	if (d.code == DIAG_ELIMIT) {
		reply_text(out, 413, "request body too complex to process\n");
	} else {
		snprintf(text, sizeof(text), "invalid AdmissionReview: %s\n",
			 d.text);
		reply_text(out, d.code == DIAG_ENOMEM ? 500 : 400, text);
	}
	log_event(LOG_WARN, "admission_rejected", "error", d.text, NULL);
	return false;
}

bool webhook_answer(const struct webhook *w, struct webhook_call *call,
		    bool may_block, struct http_reply *out)
{
	struct review *r = call->review;
	struct service_account *sa = NULL;
	struct held_policy held;
	double seconds;

	memset(out, 0, sizeof(*out));
	if (r->pod_create) {
		switch (find_service_account(w, r, may_block, &sa, out)) {
		case NEEDS_IO:
			return false;
		case FAILED:
			count(w, r, out, clock_now_seconds() - call->started);
			webhook_call_free(call);
			return true;
		case FOUND:
			break;
		}
	}
	hold_policy(w, &held);
	decide(&held.policy, r, sa, out);
	seconds = clock_now_seconds() - call->started;
	if (out->status == 200 && r->pod_create)
		log_pod_create(r, seconds);
	else if (out->status == 200)
		log_pass_through(r, seconds);
	count(w, r, out, seconds);
	release_policy(w, &held);
	sa_free(sa);
	webhook_call_free(call);
	return true;
}

void webhook_call_free(struct webhook_call *call)
{
	review_free(call->review);
	call->review = NULL;
}

void webhook_mutate(const struct webhook *w, const char *body, size_t len,
		    struct http_reply *out)
{
	struct webhook_call call;

	if (webhook_begin(w, body, len, &call, out))
		webhook_answer(w, &call, true, out);
}
