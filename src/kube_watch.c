/*
 * kube_watch: the kube_source module's thread. It lists every ServiceAccount
 * (paginated) into a fresh map, swaps it in, then watches from the list's
 * resourceVersion with bookmarks; 410 Gone relists, a dropped, silent or garbled
 * stream reconnects with full-jitter exponential backoff, and a watch that ends at
 * once, even cleanly, backs off too so that a misbehaving server cannot make it spin.
 */
#include "kube_source_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "kube_event.h"
#include "log.h"
#include "profile_set.h"
#include "sa_map.h"

#define LIST_BODY_MAX	 (64L * 1024 * 1024)
#define EVENT_LINE_MAX	 (4L * 1024 * 1024)
#define BACKOFF_BASE_MS	 200L
#define HEALTHY_WATCH_MS 30000L /* a watch this long resets the backoff */

/* ---- listing ---- */

static int put_item(void *arg, struct service_account *sa)
{
	if (sa_map_put(arg, sa) != 0) {
		sa_free(sa);
		return DIAG_ENOMEM;
	}
	return 0;
}

static int list_path(struct kube_source *k, const char *cont,
		     struct strbuf *path)
{
	int rc = strbuf_addf(path, "/api/v1/serviceaccounts?limit=%ld",
			     k->opt.page_size);

	if (rc == 0 && cont[0]) {
		rc = strbuf_adds(path, "&continue=");
		if (rc == 0)
			rc = kube_query_escape(path, cont);
	}
	return rc;
}

/* Fetches one page into map; cont (in/out) carries the continue token. */
static int list_page(struct kube_source *k, struct sa_map *map,
		     const struct profile_set *set, char rv[KUBE_RV_MAX],
		     char cont[KUBE_CONTINUE_MAX], struct diag *d)
{
	struct strbuf path, body;
	long status = 0;
	int rc;

	strbuf_init(&path, KUBE_CONTINUE_MAX * 3 + 128);
	strbuf_init(&body, LIST_BODY_MAX);
	rc = list_path(k, cont, &path)
		     ? diag_set(d, DIAG_ENOMEM, "out of memory")
		     : 0;
	if (rc == 0)
		rc = kube_get(k->client, path.buf, k->opt.list_timeout_ms,
			      &body, &status, d);
	if (rc == 0 && status != 200)
		rc = kube_http_failure(d, "list", status, &body);
	if (rc == 0)
		rc = kube_list_parse(strbuf_str(&body), body.len,
				     kube_keep_annotation, (void *)set,
				     put_item, map, rv, cont, d);
	strbuf_free(&path);
	strbuf_free(&body);
	return rc;
}

static void log_listed(struct kube_source *k, double started)
{
	char count[24], ms[24];

	snprintf(count, sizeof(count), "%zu", atomic_load(&k->count));
	snprintf(ms, sizeof(ms), "%.0f",
		 (clock_now_seconds() - started) * 1000);
	log_event(LOG_INFO, "service_accounts_listed", "count", count,
		  "duration_ms", ms, "resource_version", k->rv, NULL);
}

static int relist(struct kube_source *k, struct diag *d)
{
	char rv[KUBE_RV_MAX] = "", cont[KUBE_CONTINUE_MAX] = "";
	size_t hint = atomic_load(&k->count);
	struct sa_map *fresh = NULL;
	double started = clock_now_seconds();
	void *handle = NULL;
	const struct profile_set *set =
		profile_live_acquire(k->profiles, &handle);
	int rc =
		sa_map_new(hint > 1024 ? hint : 1024, &fresh) ? DIAG_ENOMEM : 0;

	do {
		if (rc == 0)
			rc = list_page(k, fresh, set, rv, cont, d);
	} while (rc == 0 && cont[0] && !atomic_load(&k->stop));
	profile_live_release(k->profiles, handle);
	atomic_fetch_add(&k->lists[metrics_result_of(rc == 0)], 1);
	if (rc != 0 || atomic_load(&k->stop)) {
		sa_map_free(fresh);
		return rc ? rc : diag_set(d, DIAG_EUNAVAIL, "stopped");
	}
	kube_cache_swap(k, fresh);
	memcpy(k->rv, rv, sizeof(rv));
	atomic_store(&k->ready, true);
	kube_cache_synced(k);
	log_listed(k, started);
	return 0;
}

/* ---- watching ---- */

struct watch {
	struct kube_source *k;
	const struct profile_set *set;
	bool gone, garbage, error;
	int error_code;
	unsigned long events;
	char why[sizeof(((struct diag *)0)->text)];
};

static int on_event_line(void *arg, const char *line, size_t len)
{
	struct watch *w = arg;
	struct kube_event ev;
	struct diag d;

	diag_clear(&d);
	if (kube_event_parse(line, len, kube_keep_annotation, (void *)w->set,
			     &ev, &d) != 0) {
		w->garbage = true;
		snprintf(w->why, sizeof(w->why), "%s", d.text);
		return 1;
	}
	if (ev.type == KUBE_EVENT_ERROR) {
		w->gone = ev.error_code == 410;
		w->error = !w->gone;
		w->error_code = ev.error_code;
		snprintf(w->why, sizeof(w->why), "ERROR event %d %s",
			 ev.error_code, ev.error_reason);
		return 1;
	}
	if (ev.type != KUBE_EVENT_BOOKMARK)
		kube_cache_apply(w->k, &ev);
	if (ev.resource_version[0])
		memcpy(w->k->rv, ev.resource_version,
		       sizeof(ev.resource_version));
	kube_event_clear(&ev);
	w->events++;
	atomic_fetch_add(&w->k->events, 1);
	kube_cache_synced(w->k);
	return 0;
}

static int watch_path(struct kube_source *k, struct strbuf *path)
{
	int rc = strbuf_adds(
		path, "/api/v1/serviceaccounts?watch=1&allowWatchBookmarks=true"
		      "&resourceVersion=");

	if (rc == 0)
		rc = kube_query_escape(path, k->rv);
	if (rc == 0)
		rc = strbuf_addf(path, "&timeoutSeconds=%ld",
				 k->opt.watch_timeout_s + (long)(k->rng % 30));
	return rc;
}

/* Runs one watch; tells whether a relist is needed and fills *restart (-1: normal). */
static bool watch_once(struct kube_source *k, int *restart, struct diag *d)
{
	struct watch w = { .k = k };
	struct strbuf path, error_body;
	void *handle = NULL;
	long status = 0;
	int rc;

	strbuf_init(&path, 512);
	strbuf_init(&error_body, 64 * 1024);
	w.set = profile_live_acquire(k->profiles, &handle);
	rc = watch_path(k, &path) ? diag_set(d, DIAG_ENOMEM, "out of memory")
				  : 0;
	if (rc == 0)
		rc = kube_stream(k->client, path.buf, k->opt.watch_idle_ms,
				 EVENT_LINE_MAX, on_event_line, &w,
				 &k->interrupt, &status, &error_body, d);
	profile_live_release(k->profiles, handle);
	*restart = -1;
	if (w.gone || status == 410)
		*restart = KUBE_RESTART_GONE;
	else if (w.garbage)
		*restart = KUBE_RESTART_GARBAGE;
	else if (w.error || (rc == 0 && status != 200))
		*restart = KUBE_RESTART_ERROR;
	else if (rc != 0 && !atomic_load(&k->interrupt))
		*restart = KUBE_RESTART_DROPPED;
	if (*restart == KUBE_RESTART_ERROR && status != 200 && !w.error)
		kube_http_failure(d, "watch", status, &error_body);
	else if (w.why[0])
		diag_set(d, DIAG_EUNAVAIL, "%s", w.why);
	strbuf_free(&path);
	strbuf_free(&error_body);
	return *restart == KUBE_RESTART_GONE;
}

/* ---- the thread ---- */

static uint64_t next_random(struct kube_source *k)
{
	k->rng ^= k->rng << 13;
	k->rng ^= k->rng >> 7;
	k->rng ^= k->rng << 17;
	return k->rng;
}

/* Sleeps a random time in [0, min(max, base * 2^failures)] ("full jitter"). */
static void back_off(struct kube_source *k, int failures)
{
	long cap = BACKOFF_BASE_MS << (failures < 16 ? failures : 16);
	long ms = (long)(next_random(k) %
			 (uint64_t)((cap < k->opt.backoff_max_ms
					     ? cap
					     : k->opt.backoff_max_ms) +
				    1));
	struct timespec until;

	until = clock_realtime_in(ms);
	pthread_mutex_lock(&k->lock);
	while (!atomic_load(&k->stop) &&
	       pthread_cond_timedwait(&k->changed, &k->lock, &until) == 0)
		;
	pthread_mutex_unlock(&k->lock);
}

static void log_failure(const char *event, int restart, const struct diag *d)
{
	char why[600];

	diag_format(d, why, sizeof(why));
	log_event(LOG_WARN, event, "reason",
		  restart >= 0 ? kube_restart_name(restart) : "error", "error",
		  why, NULL);
}

void *kube_watch_main(void *arg)
{
	struct kube_source *k = arg;
	bool need_list = true;
	int failures = 0;

	while (!atomic_load(&k->stop)) {
		struct diag d;
		int restart;
		double started;

		diag_clear(&d);
		atomic_store(&k->interrupt, false);
		if (need_list || atomic_exchange(&k->relist, false)) {
			if (relist(k, &d) != 0) {
				log_failure("service_accounts_list_failed", -1,
					    &d);
				back_off(k, ++failures);
				continue;
			}
			need_list = false;
		}
		started = clock_now_seconds();
		need_list = watch_once(k, &restart, &d);
		if (restart >= 0) {
			atomic_fetch_add(&k->restarts[restart], 1);
			log_failure("service_accounts_watch_restarted", restart,
				    &d);
		}
		if ((clock_now_seconds() - started) * 1000 > HEALTHY_WATCH_MS)
			failures = 0;
		/* A watch that ends at once, even cleanly, must not spin. */
		if ((restart >= 0 && restart != KUBE_RESTART_GONE) ||
		    (restart < 0 && clock_now_seconds() - started < 1.0))
			back_off(k, ++failures);
	}
	return NULL;
}
