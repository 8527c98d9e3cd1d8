/*
 * kube_source: ServiceAccounts from the Kubernetes API. A thread lists every
 * ServiceAccount (paginated), then watches from the list's resourceVersion with
 * bookmarks, relisting on 410 Gone and reconnecting with backoff and jitter. Lookups
 * are served from that cache; a miss becomes a live GET (short timeout, rate limited
 * by a token bucket a miss waits on for at most the timeout, concurrent lookups of one
 * ServiceAccount merged into one request) whose result feeds the cache. Only the
 * annotations the loaded profiles read are kept.
 */
#ifndef PIW_KUBE_SOURCE_H
#define PIW_KUBE_SOURCE_H

#include <stdint.h>

#include "diag.h"
#include "kube_client.h"
#include "metrics.h"
#include "profile_live.h"
#include "sa_source.h"

struct kube_source_options {
	int64_t lookup_timeout_ms; /* token wait, then live GET, on a miss */
	int64_t lookup_rate; /* live GETs per second, once the burst is spent */
	int64_t lookup_burst; /* live GETs at once (the token bucket's size) */
	long page_size;	      /* items per list page */
	long watch_timeout_s; /* asked of the server; it then ends the watch */
	long watch_idle_ms;   /* a silent stream longer than this is dead */
	long list_timeout_ms; /* per list page */
	long backoff_max_ms;  /* reconnect backoff ceiling */
};

/* The options used in production (tests shorten the timings). */
struct kube_source_options kube_source_defaults(void);

/*
 * Makes the source: takes ownership of client, reads profiles (to filter
 * annotations) and reports to metrics (may be NULL). Nothing is sent until its
 * start(): the first list then runs in the background, and ready() turns true
 * once it completed (lookups before that are live). 0 or DIAG_ENOMEM.
 */
int kube_source_new(struct kube_client *client, struct profile_live *profiles,
		    struct metrics *metrics,
		    const struct kube_source_options *opts,
		    struct sa_source **ret, struct diag *d);

/* Percent-encodes a query value (RFC 3986 unreserved characters stay). */
int kube_query_escape(struct strbuf *out, const char *value);

#endif
