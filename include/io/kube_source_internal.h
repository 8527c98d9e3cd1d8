/*
 * kube_source_internal: what the files of the kube_source module share, and nothing
 * any other module may include. kube_source.c holds the object (creation, the
 * sa_source interface, metrics) and the small helpers below; kube_cache.c the map
 * and every change to it; kube_watch.c the list + watch thread; kube_lookup.c the
 * lookups (hits, and live GETs on a miss paced by the token bucket).
 *
 * One mutex (lock) guards the map, the in-flight live lookups and the token bucket;
 * it is never held across network I/O or a wait for a token. The condition variable
 * (changed) wakes lookups waiting for another one's live GET, and the watch thread's
 * backoff sleep at shutdown.
 */
#ifndef PIW_KUBE_SOURCE_INTERNAL_H
#define PIW_KUBE_SOURCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "kube_event.h"
#include "kube_source.h"
#include "sa_map.h"
#include "service_account.h"
#include "strbuf.h"

/* Why a watch ended early: the metric label of each. */
#define KUBE_RESTARTS(X)                    \
	X(KUBE_RESTART_GONE, "gone")        \
	X(KUBE_RESTART_DROPPED, "dropped")  \
	X(KUBE_RESTART_ERROR, "http-error") \
	X(KUBE_RESTART_GARBAGE, "garbage")

/* How a lookup ended: the metric label of each. */
#define KUBE_LOOKUP_RESULTS(X)                 \
	X(KUBE_LK_HIT, "cache-hit")            \
	X(KUBE_LK_FOUND, "live-found")         \
	X(KUBE_LK_NOT_FOUND, "live-not-found") \
	X(KUBE_LK_ERROR, "live-error")         \
	X(KUBE_LK_RATE_LIMITED, "rate-limited")

#define KUBE_ID(id, name) id,
enum kube_restart { KUBE_RESTARTS(KUBE_ID) KUBE_N_RESTART };
enum kube_lookup_result { KUBE_LOOKUP_RESULTS(KUBE_ID) KUBE_N_LK };
#undef KUBE_ID

struct kube_pending; /* a live lookup in progress (kube_lookup.c) */

struct kube_source {
	struct sa_source base; /* first: the sa_source pointer is this one */
	struct kube_client *client;
	struct profile_live *profiles;
	struct metrics *metrics;
	struct kube_source_options opt;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop; /* shutting down */
	atomic_bool
		interrupt; /* end the current stream (stop, or a relist is due) */
	atomic_bool relist; /* the profiles changed */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct sa_map *map;
	struct kube_pending *pending;
	double tokens;	 /* below 0: reserved ahead of the refill */
	double refilled; /* monotonic seconds of the last refill */
	atomic_bool ready;
	atomic_size_t count, bytes;
	atomic_llong last_sync;
	atomic_ullong restarts[KUBE_N_RESTART], lookups[KUBE_N_LK],
		lists[METRICS_N_RESULTS], events;
	atomic_ullong token_waits,
		token_wait_us; /* misses that waited, and how long */
	char rv[KUBE_RV_MAX];  /* the watch thread's */
	uint64_t rng;
};

static inline struct kube_source *kube_from_base(struct sa_source *s)
{
	return (struct kube_source *)s;
}

/* ---- kube_source.c ---- */

/* The annotation filter (arg: the profile set): keep what the profiles read. */
bool kube_keep_annotation(const char *key, void *arg);

/* kube_status_failure() with the webhook's RBAC hint after a 401 or 403. */
int kube_http_failure(struct diag *d, const char *what, long status,
		      struct strbuf *body);

/* The metric label of a restart reason. */
const char *kube_restart_name(enum kube_restart r);

/* ---- kube_cache.c (the map; "lock held" where said) ---- */

/* Records that the cache was just brought up to date (a list or an event). */
void kube_cache_synced(struct kube_source *k);

/* Replaces the map with fresh (taken over) and frees the old one. */
void kube_cache_swap(struct kube_source *k, struct sa_map *fresh);

/* Applies a watch event; the map takes ev->sa over (ev->sa becomes NULL). */
void kube_cache_apply(struct kube_source *k, struct kube_event *ev);

/* Lock held: inserts a copy of a live GET's answer unless the watch delivered the
 * object meanwhile (the fresher source). Out of memory: not cached, no harm. */
void kube_cache_remember(struct kube_source *k,
			 const struct service_account *sa);

/* A copy of sa into *ret: SA_LOOKUP_FOUND, or SA_LOOKUP_UNAVAILABLE (out of
 * memory, d set). */
enum sa_lookup kube_cache_copy(const struct service_account *sa,
			       struct service_account **ret, struct diag *d);

/* ---- kube_watch.c ---- */

/* The thread (arg: the kube_source): list, watch, relist, until k->stop. */
void *kube_watch_main(void *arg);

/* ---- kube_lookup.c: the sa_source lookup and lookup_cached ---- */

enum sa_lookup kube_lookup(struct sa_source *s, const char *ns,
			   const char *name, struct service_account **ret,
			   struct diag *d);
enum sa_lookup kube_lookup_cached(struct sa_source *s, const char *ns,
				  const char *name,
				  struct service_account **ret, struct diag *d);

#endif
