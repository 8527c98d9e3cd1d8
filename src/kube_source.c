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

static int render_metrics(void *arg, struct strbuf *out)
{
	struct kube_source *k = arg;
	int rc = strbuf_adds(
		out, "# HELP piw_sa_watch_restarts_total ServiceAccount watch "
		     "restarts, by reason.\n# TYPE piw_sa_watch_restarts_total "
		     "counter\n");

	for (int i = 0; rc == 0 && i < KUBE_N_RESTART; i++)
		rc = strbuf_addf(
			out,
			"piw_sa_watch_restarts_total{reason=\"%s\"} %llu\n",
			restart_names[i], atomic_load(&k->restarts[i]));
	if (rc == 0)
		rc = strbuf_adds(
			out,
			"# HELP piw_sa_lookups_total ServiceAccount lookups, by "
			"result.\n# TYPE piw_sa_lookups_total counter\n");
	for (int i = 0; rc == 0 && i < KUBE_N_LK; i++)
		rc = strbuf_addf(out,
				 "piw_sa_lookups_total{result=\"%s\"} %llu\n",
				 lookup_names[i], atomic_load(&k->lookups[i]));
	if (rc == 0)
		rc = strbuf_addf(
			out,
			"# HELP piw_sa_lists_total Full ServiceAccount lists.\n"
			"# TYPE piw_sa_lists_total counter\n"
			"piw_sa_lists_total{result=\"success\"} %llu\n"
			"piw_sa_lists_total{result=\"failure\"} %llu\n"
			"# HELP piw_sa_watch_events_total Watch events applied.\n"
			"# TYPE piw_sa_watch_events_total counter\npiw_sa_watch_events_total %llu\n"
			"# HELP piw_sa_last_sync_timestamp_seconds Last list or watch event.\n"
			"# TYPE piw_sa_last_sync_timestamp_seconds gauge\n"
			"piw_sa_last_sync_timestamp_seconds %lld\n"
			"# HELP piw_sa_cache_bytes Memory held by the ServiceAccount cache.\n"
			"# TYPE piw_sa_cache_bytes gauge\npiw_sa_cache_bytes %zu\n",
			atomic_load(&k->lists[1]), atomic_load(&k->lists[0]),
			atomic_load(&k->events), atomic_load(&k->last_sync),
			atomic_load(&k->bytes));
	if (rc == 0)
		rc = strbuf_addf(
			out,
			"# HELP piw_sa_lookup_rate_waits_total Cache misses that "
			"waited for a rate-limiter token.\n"
			"# TYPE piw_sa_lookup_rate_waits_total counter\n"
			"piw_sa_lookup_rate_waits_total %llu\n"
			"# HELP piw_sa_lookup_rate_wait_seconds_total Time cache "
			"misses spent waiting for a rate-limiter token.\n"
			"# TYPE piw_sa_lookup_rate_wait_seconds_total counter\n"
			"piw_sa_lookup_rate_wait_seconds_total %.3f\n",
			atomic_load(&k->token_waits),
			(double)atomic_load(&k->token_wait_us) / 1e6);
	return rc;
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
		metrics_set_extra(k->metrics, NULL, NULL);
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
	if (pthread_create(&k->thread, NULL, kube_watch_main, k) != 0) {
		kube_free(&k->base);
		return diag_set(d, DIAG_ENOMEM,
				"cannot start the watch thread");
	}
	k->thread_started = true;
	if (metrics)
		metrics_set_extra(metrics, render_metrics, k);
	*ret = &k->base;
	return 0;
}
