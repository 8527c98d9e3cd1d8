/*
 * webhook: one admission, from request body to HTTP reply: decode, find the
 * ServiceAccount, mutate, encode; plus its log line and metrics. Independent of the
 * HTTP server, so it can be exercised without a network.
 */
#ifndef PIW_WEBHOOK_H
#define PIW_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "profile_live.h"
#include "sa_source.h"
#include "settings.h"
#include "strbuf.h"

struct webhook {
	struct profile_live *profiles;
	const struct settings *settings;
	struct sa_source *sa;
	struct metrics *metrics; /* may be NULL */
};

struct http_reply {
	int status;
	const char *content_type;
	char *body; /* owned (mem_free) */
	size_t len;
};

/*
 * Answers a POST /mutate body: 200 with an AdmissionReview response, 400 with the
 * reason for a malformed review, 500 when the ServiceAccount cannot be looked up or
 * memory runs out. Never fails to fill out (a reply without a body only when out of
 * memory). Thread-safe.
 */
void webhook_mutate(const struct webhook *w, const char *body, size_t len,
		    struct http_reply *out);

/*
 * Like webhook_mutate, but with may_block false it never waits on the network: when
 * only a live ServiceAccount lookup could decide, it returns false and leaves out
 * untouched (the caller runs webhook_mutate on another thread). True: out is filled.
 */
bool webhook_answer(const struct webhook *w, const char *body, size_t len,
		    bool may_block, struct http_reply *out);

struct admission_request;
struct mutation;

/*
 * Writes the AdmissionReview response for a decision (the version, uid and patch of
 * the request; warnings; the message of a denial). 0, DIAG_ENOMEM or DIAG_ELIMIT. The
 * server's and the `mutate` command's answers both come from here.
 */
int webhook_encode_review(const struct admission_request *req,
			  struct mutation *m, struct strbuf *out);

#endif
