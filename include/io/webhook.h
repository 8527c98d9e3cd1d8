/*
 * webhook: one admission, from request body to HTTP reply, around the one
 * review pipeline (review.h): the ServiceAccount lookup, timing, the log line
 * and metrics. Independent of the HTTP server, so it can be exercised without a
 * network.
 */
#ifndef PIW_WEBHOOK_H
#define PIW_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "identity_file.h"
#include "metrics.h"
#include "profile_live.h"
#include "sa_source.h"
#include "review.h"
#include "settings.h"

struct webhook {
	struct profile_live *profiles;
	const struct settings *settings;
	struct sa_source *sa;
	struct metrics *metrics;	  /* may be NULL */
	struct identity_file *identities; /* may be NULL: no identity map */
};

struct http_reply {
	int status;
	const char *content_type;
	char *body; /* owned (mem_free) */
	size_t len;
};

/*
 * One admission in flight: its decoded review (review.h) and when it began.
 * The review is decoded once, even when the answer has to wait for a
 * ServiceAccount lookup on another thread.
 */
struct webhook_call {
	struct review *review; /* owned; NULL once answered */
	double started;	       /* monotonic seconds, for the duration */
};

/*
 * Decodes a POST /mutate body into call. False when it is no AdmissionReview:
 * out then holds the reply (400 with the reason, 413 for a body too complex,
 * 500 when out of memory) and call holds nothing.
 */
bool webhook_begin(const struct webhook *w, const char *body, size_t len,
		   struct webhook_call *call, struct http_reply *out);

/*
 * Answers a begun call: looks up the pod's ServiceAccount, decides and encodes
 * (200 with an AdmissionReview response; 500 when the ServiceAccount cannot be
 * looked up or memory runs out), logs and counts it, and ends the call. With
 * may_block false it never waits on the network: when only a live lookup could
 * decide, it returns false and leaves call and out untouched (the caller
 * answers it again on a thread that may block). True: out is filled. A reply
 * without a body only when out of memory. Thread-safe.
 */
bool webhook_answer(const struct webhook *w, struct webhook_call *call,
		    bool may_block, struct http_reply *out);

/* Ends a call that will not be answered. Accepts an ended one. */
void webhook_call_free(struct webhook_call *call);

/* webhook_begin() and a blocking webhook_answer(): body in, reply out. */
void webhook_mutate(const struct webhook *w, const char *body, size_t len,
		    struct http_reply *out);

#endif
