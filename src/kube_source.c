/*
 * kube_source: ServiceAccounts from the Kubernetes API, as an sa_source. This file
 * holds the object (creation, the sa_source interface, metrics) and the helpers its
 * other files share: kube_cache.c (the map), kube_watch.c (the list + watch thread)
 * and kube_lookup.c (hits, and live GETs on a miss paced by the token bucket). They
 * share one mutex, which guards the map, the in-flight live lookups and the rate
 * limiter; it is never held across network I/O or a wait for a token.
 */
#include "kube_source_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "mem.h"
#include "profile_set.h"
#include "sa_map.h"
#include "strutil.h"

static const char *const restart_names[] = {
#define KUBE_NAME(id, name) name,
	KUBE_RESTARTS(KUBE_NAME)
#undef KUBE_NAME
};
static const char *const lookup_names[] = {
#define KUBE_NAME(id, name) name,
	KUBE_LOOKUP_RESULTS(KUBE_NAME)
#undef KUBE_NAME
};

struct kube_source_options kube_source_defaults(void)
{
	return (struct kube_source_options){
		.lookup_timeout_ms = 1000,
		.lookup_rate = 20,
		.lookup_burst = 100,
		.page_size = 500,
		.watch_timeout_s = 300,
		.watch_idle_ms = 120000,
		.list_timeout_ms = 60000,
		.backoff_max_ms = 30000,
	};
}

const char *kube_restart_name(enum kube_restart r)
{
	return restart_names[r];
}

/* ---- annotation filter: keep what the loaded profiles read ---- */

bool kube_keep_annotation(const char *key, void *arg)
{
	return profile_set_reads_sa_annotation(arg, key);
}

int kube_query_escape(struct strbuf *out, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (const char *p = value; rc == 0 && *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (str_is_alnum((char)c) || strchr("-._~", c))
			rc = strbuf_addc(out, (char)c);
		else
			rc = strbuf_add(
				out, (char[]){ '%', hex[c >> 4], hex[c & 15] },
				3);
	}
	return rc;
}

int kube_http_failure(struct diag *d, const char *what, long status,
		      struct strbuf *body)
{
	bool forbidden = status == 401 || status == 403;

	return kube_status_failure(d, what, status, strbuf_str(body), body->len,
				   forbidden ? "the webhook's ServiceAccount "
					       "needs get, list and watch on "
					       "serviceaccounts"
					     : NULL);
}

/* ---- the rest of the interface ---- */

static bool kube_ready(struct sa_source *s)
{
	return atomic_load(&kube_from_base(s)->ready);
}

static size_t kube_count(struct sa_source *s)
{
	return atomic_load(&kube_from_base(s)->count);
}

static void kube_profiles_changed(struct sa_source *s)
{
	struct kube_source *k = kube_from_base(s);

	atomic_store(&k->relist, true);
	atomic_store(&k->interrupt, true);
}

static double last_sync(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct kube_source *)arg)->last_sync);
}

static double cache_bytes(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct kube_source *)arg)->bytes);
}

static double token_wait_seconds(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(
		       &((struct kube_source *)arg)->token_wait_us) /
	       1e6;
}

/* The watch, the cache and the lookups, labelled from the lists above. */
static int register_metrics(struct kube_source *k, struct metrics *m)
{
	const struct metrics_family families[] = {
		{ "piw_sa_watch_restarts_total",
		  "ServiceAccount watch restarts, by reason.", METRICS_COUNTER,
		  "reason", restart_names, KUBE_N_RESTART, k->restarts,
		  .arg = k },
		{ "piw_sa_lookups_total", "ServiceAccount lookups, by result.",
		  METRICS_COUNTER, "result", lookup_names, KUBE_N_LK,
		  k->lookups, .arg = k },
		{ "piw_sa_lists_total", "Full ServiceAccount lists.",
		  METRICS_COUNTER, "result", metrics_result_names(),
		  METRICS_N_RESULTS, k->lists, .arg = k },
		{ "piw_sa_watch_events_total", "Watch events applied.",
		  METRICS_COUNTER, .n = 1, .counters = &k->events, .arg = k },
		{ "piw_sa_last_sync_timestamp_seconds",
		  "Last list or watch event.", METRICS_GAUGE, .n = 1,
		  .value = last_sync, .arg = k },
		{ "piw_sa_cache_bytes",
		  "Memory held by the ServiceAccount cache.", METRICS_GAUGE,
		  .n = 1, .value = cache_bytes, .arg = k },
		{ "piw_sa_lookup_rate_waits_total",
		  "Cache misses that waited for a rate-limiter token.",
		  METRICS_COUNTER, .n = 1, .counters = &k->token_waits,
		  .arg = k },
		{ "piw_sa_lookup_rate_wait_seconds_total",
		  "Time cache misses spent waiting for a rate-limiter token.",
		  METRICS_COUNTER, .n = 1, .value = token_wait_seconds,
		  .arg = k },
	};
	int rc = 0;

	for (size_t i = 0;
	     rc == 0 && i < sizeof(families) / sizeof(families[0]); i++)
		rc = metrics_register(m, &families[i]);
	if (rc != 0)
		metrics_unregister(m, k);
	return rc;
}

static int kube_start(struct sa_source *s, struct diag *d)
{
	struct kube_source *k = kube_from_base(s);

	if (pthread_create(&k->thread, NULL, kube_watch_main, k) != 0)
		return diag_set(d, DIAG_ENOMEM,
				"cannot start the watch thread");
	k->thread_started = true;
	return 0;
}

static void kube_free(struct sa_source *s)
{
	struct kube_source *k = kube_from_base(s);

	atomic_store(&k->stop, true);
	atomic_store(&k->interrupt, true);
	pthread_mutex_lock(&k->lock);
	pthread_cond_broadcast(&k->changed);
	pthread_mutex_unlock(&k->lock);
	if (k->thread_started)
		pthread_join(k->thread, NULL);
	if (k->metrics)
		metrics_unregister(k->metrics, k);
	kube_client_free(k->client);
	sa_map_free(k->map);
	pthread_cond_destroy(&k->changed);
	pthread_mutex_destroy(&k->lock);
	mem_free(k);
}

int kube_source_new(struct kube_client *client, struct profile_live *profiles,
		    struct metrics *metrics,
		    const struct kube_source_options *opts,
		    struct sa_source **ret, struct diag *d)
{
	struct kube_source *k = mem_calloc(1, sizeof(*k));

	*ret = NULL;
	if (k == NULL || sa_map_new(1024, &k->map) != 0) {
		mem_free(k);
		kube_client_free(client);
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	k->base = (struct sa_source){ .name = "kubernetes",
				      .lookup = kube_lookup,
				      .lookup_cached = kube_lookup_cached,
				      .blocking = true,
				      .ready = kube_ready,
				      .count = kube_count,
				      .start = kube_start,
				      .profiles_changed = kube_profiles_changed,
				      .free = kube_free };
	k->client = client;
	k->profiles = profiles;
	k->metrics = metrics;
	k->opt = *opts;
	k->tokens = (double)opts->lookup_burst;
	k->refilled = clock_now_seconds();
	k->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
		 0x9e3779b97f4a7c15ULL;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->changed, NULL);
	if (metrics && register_metrics(k, metrics) != 0) {
		k->metrics = NULL;
		kube_free(&k->base);
		return diag_set(d, DIAG_ECONFIG,
				"cannot register the ServiceAccount metrics "
				"(registered twice?)");
	}
	*ret = &k->base;
	return 0;
}
