/*
 * kube_source: the cache and its watch thread.
 *
 * One mutex guards the map, the in-flight live lookups and the rate limiter; it is
 * never held across network I/O or a wait for a rate-limiter token. The limiter is a
 * token bucket (--sa-lookup-burst tokens, refilled at --sa-lookup-rate) that hands out
 * reservations: a miss that finds it empty is given the instant its token will be
 * there and sleeps until then, unless that is further away than the lookup timeout
 * (then it is refused at once). A burst of new ServiceAccounts is paced, not refused. A relist builds a fresh map while the old one keeps
 * answering, then swaps it in, so lookups never see a half-filled cache. A live GET's
 * answer is inserted only if the watch has not meanwhile delivered the object: the
 * watch is the fresher source.
 */
#include "kube_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "json.h"
#include "kube_event.h"
#include "log.h"
#include "mem.h"
#include "profile_set.h"
#include "sa_map.h"
#include "validate.h"

#define LIST_BODY_MAX	 (64L * 1024 * 1024)
#define EVENT_LINE_MAX	 (4L * 1024 * 1024)
#define GET_BODY_MAX	 (1024L * 1024)
#define BACKOFF_BASE_MS	 200L
#define HEALTHY_WATCH_MS 30000L /* a watch this long resets the backoff */

enum restart {
	RESTART_GONE,
	RESTART_DROPPED,
	RESTART_ERROR,
	RESTART_GARBAGE,
	N_RESTART
};
static const char *const restart_names[] = { "gone", "dropped", "http-error",
					     "garbage" };
enum lookup_result {
	LK_HIT,
	LK_FOUND,
	LK_NOT_FOUND,
	LK_ERROR,
	LK_RATE_LIMITED,
	N_LK
};
static const char *const lookup_names[] = { "cache-hit", "live-found",
					    "live-not-found", "live-error",
					    "rate-limited" };

/* A live lookup in progress; other lookups of the same name wait for its answer. */
struct pending {
	struct pending *next;
	char namespace[BOUND_DNS_SUBDOMAIN + 1], name[BOUND_DNS_SUBDOMAIN + 1];
	bool done;
	enum sa_lookup result;
	struct service_account *sa;
	char why[200];
	int refs;
	struct timespec until; /* CLOCK_REALTIME: when joiners stop waiting */
};

struct kube_source {
	struct sa_source base;
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
	struct pending *pending;
	double tokens;	 /* below 0: reserved ahead of the refill */
	double refilled; /* monotonic seconds of the last refill */
	atomic_bool ready;
	atomic_size_t count, bytes;
	atomic_llong last_sync;
	atomic_ullong restarts[N_RESTART], lookups[N_LK], lists[2], events;
	atomic_ullong token_waits,
		token_wait_us; /* misses that waited, and how long */
	char rv[KUBE_RV_MAX];  /* the watch thread's */
	uint64_t rng;
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

static struct kube_source *from_base(struct sa_source *s)
{
	return (struct kube_source *)s;
}

static double monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- annotation filter: keep what the loaded profiles read ---- */

static bool keep_annotation(const char *key, void *arg)
{
	return profile_set_reads_sa_annotation(arg, key);
}

int kube_query_escape(struct strbuf *out, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;

	for (const char *p = value; rc == 0 && *p; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			rc = strbuf_addc(out, (char)c);
		else
			rc = strbuf_add(
				out, (char[]){ '%', hex[c >> 4], hex[c & 15] },
				3);
	}
	return rc;
}

/* ---- the cache ---- */

static void publish_size(struct kube_source *k)
{
	atomic_store(&k->count, sa_map_count(k->map));
	atomic_store(&k->bytes, sa_map_bytes(k->map));
}

static void synced(struct kube_source *k)
{
	atomic_store(&k->last_sync, (long long)time(NULL));
}

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

static int http_failure(struct diag *d, const char *what, long status,
			struct strbuf *body)
{
	char reason[64];

	kube_status_code(strbuf_str(body), body->len, reason, sizeof(reason));
	if (status == 401 || status == 403)
		return diag_set(
			d, DIAG_EUNAVAIL,
			"%s: HTTP %ld %s (the webhook's ServiceAccount needs get, list "
			"and watch on serviceaccounts)",
			what, status, reason);
	return diag_set(d, DIAG_EUNAVAIL, "%s: HTTP %ld %s", what, status,
			reason);
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
		rc = http_failure(d, "list", status, &body);
	if (rc == 0)
		rc = kube_list_parse(strbuf_str(&body), body.len,
				     keep_annotation, (void *)set, put_item,
				     map, rv, cont, d);
	strbuf_free(&path);
	strbuf_free(&body);
	return rc;
}

static void log_listed(struct kube_source *k, double started)
{
	char count[24], ms[24];

	snprintf(count, sizeof(count), "%zu", atomic_load(&k->count));
	snprintf(ms, sizeof(ms), "%.0f", (monotonic() - started) * 1000);
	log_event(LOG_INFO, "service_accounts_listed", "count", count,
		  "duration_ms", ms, "resource_version", k->rv, NULL);
}

static int relist(struct kube_source *k, struct diag *d)
{
	char rv[KUBE_RV_MAX] = "", cont[KUBE_CONTINUE_MAX] = "";
	size_t hint = atomic_load(&k->count);
	struct sa_map *fresh = NULL, *old;
	double started = monotonic();
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
	atomic_fetch_add(&k->lists[rc == 0], 1);
	if (rc != 0 || atomic_load(&k->stop)) {
		sa_map_free(fresh);
		return rc ? rc : diag_set(d, DIAG_EUNAVAIL, "stopped");
	}
	pthread_mutex_lock(&k->lock);
	old = k->map;
	k->map = fresh;
	publish_size(k);
	pthread_mutex_unlock(&k->lock);
	sa_map_free(old);
	memcpy(k->rv, rv, sizeof(rv));
	atomic_store(&k->ready, true);
	synced(k);
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

static void apply_event(struct kube_source *k, struct kube_event *ev)
{
	pthread_mutex_lock(&k->lock);
	if (ev->type == KUBE_EVENT_DELETED) {
		sa_map_remove(k->map, ev->sa->namespace, ev->sa->name);
	} else if (sa_map_put(k->map, ev->sa) == 0) {
		ev->sa = NULL; /* the map owns it */
	}
	publish_size(k);
	pthread_mutex_unlock(&k->lock);
}

static int on_event_line(void *arg, const char *line, size_t len)
{
	struct watch *w = arg;
	struct kube_event ev;
	struct diag d;

	diag_clear(&d);
	if (kube_event_parse(line, len, keep_annotation, (void *)w->set, &ev,
			     &d) != 0) {
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
		apply_event(w->k, &ev);
	if (ev.resource_version[0])
		memcpy(w->k->rv, ev.resource_version,
		       sizeof(ev.resource_version));
	kube_event_clear(&ev);
	w->events++;
	atomic_fetch_add(&w->k->events, 1);
	synced(w->k);
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
		*restart = RESTART_GONE;
	else if (w.garbage)
		*restart = RESTART_GARBAGE;
	else if (w.error || (rc == 0 && status != 200))
		*restart = RESTART_ERROR;
	else if (rc != 0 && !atomic_load(&k->interrupt))
		*restart = RESTART_DROPPED;
	if (*restart == RESTART_ERROR && status != 200 && !w.error)
		http_failure(d, "watch", status, &error_body);
	else if (w.why[0])
		diag_set(d, DIAG_EUNAVAIL, "%s", w.why);
	strbuf_free(&path);
	strbuf_free(&error_body);
	return *restart == RESTART_GONE;
}

/* ---- the thread ---- */

/* The CLOCK_REALTIME instant ms from now, for pthread_cond_timedwait. */
static struct timespec deadline_in(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

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

	until = deadline_in(ms);
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
		  restart >= 0 ? restart_names[restart] : "error", "error", why,
		  NULL);
}

static void *watch_main(void *arg)
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
		started = monotonic();
		need_list = watch_once(k, &restart, &d);
		if (restart >= 0) {
			atomic_fetch_add(&k->restarts[restart], 1);
			log_failure("service_accounts_watch_restarted", restart,
				    &d);
		}
		if ((monotonic() - started) * 1000 > HEALTHY_WATCH_MS)
			failures = 0;
		/* A watch that ends at once, even cleanly, must not spin. */
		if ((restart >= 0 && restart != RESTART_GONE) ||
		    (restart < 0 && monotonic() - started < 1.0))
			back_off(k, ++failures);
	}
	return NULL;
}

/* ---- lookups ---- */

static void count_lookup(struct kube_source *k, enum lookup_result r)
{
	atomic_fetch_add_explicit(&k->lookups[r], 1, memory_order_relaxed);
}

/*
 * Under the lock: reserves a rate-limiter token. Returns in how many ms it is there
 * (0: now), or -1, reserving nothing, when that is later than max_wait_ms. Tokens
 * below zero are reservations made ahead of the refill, so waiters are served in
 * the order they came and never more than the rate once the burst is spent.
 */
static long reserve_token(struct kube_source *k, long max_wait_ms)
{
	double now = monotonic(), rate = (double)k->opt.lookup_rate;
	double burst = (double)k->opt.lookup_burst, wait;

	k->tokens += (now - k->refilled) * rate;
	if (k->tokens > burst)
		k->tokens = burst;
	k->refilled = now;
	wait = k->tokens >= 1.0 ? 0.0 : (1.0 - k->tokens) / rate;
	if (wait * 1000.0 > (double)max_wait_ms)
		return -1;
	k->tokens -= 1.0;
	return (long)(wait * 1000.0 + 0.999);
}

/* Sleeps ms milliseconds (signals do not cut it short). */
static void sleep_ms(long ms)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	do
		rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until,
				     NULL);
	while (rc == EINTR);
}

/* A copy of a cached entry, under the lock. */
static enum sa_lookup copy_out(const struct service_account *sa,
			       struct service_account **ret, struct diag *d)
{
	if (sa_new(sa->namespace, sa->name, sa->annotations, sa->n_annotations,
		   ret) != 0) {
		diag_set(d, DIAG_ENOMEM, "out of memory");
		return SA_LOOKUP_UNAVAILABLE;
	}
	return SA_LOOKUP_FOUND;
}

static enum sa_lookup live_get(struct kube_source *k, const char *ns,
			       const char *name, struct service_account **ret,
			       struct diag *d)
{
	struct strbuf path, body;
	cJSON *root = NULL;
	void *handle = NULL;
	const struct profile_set *set;
	long status = 0;
	int rc;

	strbuf_init(&path, 1024);
	strbuf_init(&body, GET_BODY_MAX);
	rc = strbuf_addf(&path, "/api/v1/namespaces/%s/serviceaccounts/%s", ns,
			 name);
	if (rc == 0)
		rc = kube_get(k->client, path.buf, k->opt.lookup_timeout_ms,
			      &body, &status, d);
	if (rc == 0 && status == 404) {
		strbuf_free(&path);
		strbuf_free(&body);
		return SA_LOOKUP_NOT_FOUND;
	}
	if (rc == 0 && status != 200)
		rc = http_failure(d, "get", status, &body);
	if (rc == 0)
		rc = json_parse(strbuf_str(&body), body.len, &root, d);
	if (rc == 0) {
		set = profile_live_acquire(k->profiles, &handle);
		rc = sa_from_json(root, NULL, keep_annotation, (void *)set, ret,
				  d);
		profile_live_release(k->profiles, handle);
	}
	cJSON_Delete(root);
	strbuf_free(&path);
	strbuf_free(&body);
	return rc == 0 ? SA_LOOKUP_FOUND : SA_LOOKUP_UNAVAILABLE;
}

/* Inserts a live answer unless the watch delivered the object meanwhile. */
static void remember(struct kube_source *k, const struct service_account *sa)
{
	struct service_account *copy = NULL;

	if (sa_map_get(k->map, sa->namespace, sa->name) != NULL ||
	    sa_new(sa->namespace, sa->name, sa->annotations, sa->n_annotations,
		   &copy) != 0)
		return;
	if (sa_map_put(k->map, copy) != 0)
		sa_free(copy);
	else
		publish_size(k);
}

static void release_pending(struct kube_source *k, struct pending *p)
{
	if (--p->refs > 0)
		return;
	sa_free(p->sa);
	mem_free(p);
	(void)k;
}

static void unlink_pending(struct kube_source *k, struct pending *p)
{
	for (struct pending **link = &k->pending; *link;
	     link = &(*link)->next) {
		if (*link == p) {
			*link = p->next;
			return;
		}
	}
}

/* Performs the live GET for p (the lock is not held) and publishes the result. */
static void resolve(struct kube_source *k, struct pending *p)
{
	struct service_account *sa = NULL;
	enum sa_lookup result;
	struct diag d;

	diag_clear(&d);
	result = live_get(k, p->namespace, p->name, &sa, &d);
	count_lookup(k, result == SA_LOOKUP_FOUND	? LK_FOUND
			: result == SA_LOOKUP_NOT_FOUND ? LK_NOT_FOUND
							: LK_ERROR);
	pthread_mutex_lock(&k->lock);
	p->result = result;
	p->sa = sa;
	diag_format(&d, p->why, sizeof(p->why));
	p->done = true;
	unlink_pending(k, p);
	if (sa)
		remember(k, sa);
	pthread_cond_broadcast(&k->changed);
	pthread_mutex_unlock(&k->lock);
}

static struct pending *find_pending(struct kube_source *k, const char *ns,
				    const char *name)
{
	for (struct pending *p = k->pending; p; p = p->next) {
		if (strcmp(p->namespace, ns) == 0 && strcmp(p->name, name) == 0)
			return p;
	}
	return NULL;
}

/* Waits (lock held) for a lookup another request started, as long as it may take. */
static void wait_for(struct kube_source *k, struct pending *p)
{
	while (!p->done &&
	       pthread_cond_timedwait(&k->changed, &k->lock, &p->until) == 0)
		;
}

static enum sa_lookup answer_pending(struct kube_source *k, struct pending *p,
				     struct service_account **ret,
				     struct diag *d)
{
	enum sa_lookup result = SA_LOOKUP_UNAVAILABLE;

	if (!p->done)
		diag_set(d, DIAG_ETIMEOUT, "the live lookup timed out");
	else if (p->result == SA_LOOKUP_FOUND)
		result = copy_out(p->sa, ret, d);
	else if ((result = p->result) == SA_LOOKUP_UNAVAILABLE)
		diag_set(d, DIAG_EUNAVAIL, "%s", p->why);
	release_pending(k, p);
	return result;
}

/* Under the lock: a cache miss. Joins or starts a live lookup. */
static enum sa_lookup miss(struct kube_source *k, const char *ns,
			   const char *name, struct service_account **ret,
			   struct diag *d)
{
	struct pending *p = find_pending(k, ns, name);
	long wait_ms;

	if (p) {
		p->refs++;
		wait_for(k, p);
		return answer_pending(k, p, ret, d);
	}
	p = mem_calloc(1, sizeof(*p));
	if (p == NULL) {
		diag_set(d, DIAG_ENOMEM, "out of memory");
		return SA_LOOKUP_UNAVAILABLE;
	}
	wait_ms = reserve_token(k, (long)k->opt.lookup_timeout_ms);
	if (wait_ms < 0) {
		mem_free(p);
		count_lookup(k, LK_RATE_LIMITED);
		diag_set(
			d, DIAG_EUNAVAIL,
			"live lookups are rate limited (%lld per second, burst "
			"%lld): no turn within the lookup timeout",
			(long long)k->opt.lookup_rate,
			(long long)k->opt.lookup_burst);
		return SA_LOOKUP_UNAVAILABLE;
	}
	snprintf(p->namespace, sizeof(p->namespace), "%s", ns);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->refs = 1;
	/* Joiners wait for the token, the GET and a margin for the bookkeeping. */
	p->until = deadline_in(wait_ms + (long)k->opt.lookup_timeout_ms + 100);
	p->next = k->pending;
	k->pending = p;
	pthread_mutex_unlock(&k->lock);
	if (wait_ms > 0) {
		atomic_fetch_add(&k->token_waits, 1);
		atomic_fetch_add(&k->token_wait_us,
				 (unsigned long long)wait_ms * 1000);
		sleep_ms(wait_ms);
	}
	resolve(k, p);
	pthread_mutex_lock(&k->lock);
	return answer_pending(k, p, ret, d);
}

/* Names that are not DNS subdomains cannot exist; they never reach the API server
 * (a pod's serviceAccountName is validated only after mutating admission). */
static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BOUND_DNS_SUBDOMAIN || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return strstr(s, "..") == NULL;
}

static enum sa_lookup kube_lookup_cached(struct sa_source *s, const char *ns,
					 const char *name,
					 struct service_account **ret,
					 struct diag *d)
{
	struct kube_source *k = from_base(s);
	const struct service_account *sa;
	enum sa_lookup result = SA_LOOKUP_WOULD_BLOCK;

	*ret = NULL;
	if (!valid_name(ns) || !valid_name(name))
		return SA_LOOKUP_NOT_FOUND;
	pthread_mutex_lock(&k->lock);
	sa = sa_map_get(k->map, ns, name);
	if (sa) {
		result = copy_out(sa, ret, d);
		count_lookup(k, LK_HIT);
	}
	pthread_mutex_unlock(&k->lock);
	return result;
}

static enum sa_lookup kube_lookup(struct sa_source *s, const char *ns,
				  const char *name,
				  struct service_account **ret, struct diag *d)
{
	struct kube_source *k = from_base(s);
	const struct service_account *sa;
	enum sa_lookup result;

	*ret = NULL;
	if (!valid_name(ns) || !valid_name(name))
		return SA_LOOKUP_NOT_FOUND;
	pthread_mutex_lock(&k->lock);
	sa = sa_map_get(k->map, ns, name);
	if (sa) {
		result = copy_out(sa, ret, d);
		count_lookup(k, LK_HIT);
	} else {
		result = miss(k, ns, name, ret, d);
	}
	pthread_mutex_unlock(&k->lock);
	return result;
}

/* ---- the rest of the interface ---- */

static bool kube_ready(struct sa_source *s)
{
	return atomic_load(&from_base(s)->ready);
}

static size_t kube_count(struct sa_source *s)
{
	return atomic_load(&from_base(s)->count);
}

static void kube_profiles_changed(struct sa_source *s)
{
	struct kube_source *k = from_base(s);

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

	for (int i = 0; rc == 0 && i < N_RESTART; i++)
		rc = strbuf_addf(
			out,
			"piw_sa_watch_restarts_total{reason=\"%s\"} %llu\n",
			restart_names[i], atomic_load(&k->restarts[i]));
	if (rc == 0)
		rc = strbuf_adds(
			out,
			"# HELP piw_sa_lookups_total ServiceAccount lookups, by "
			"result.\n# TYPE piw_sa_lookups_total counter\n");
	for (int i = 0; rc == 0 && i < N_LK; i++)
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
	struct kube_source *k = from_base(s);

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
	k->refilled = monotonic();
	k->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^
		 0x9e3779b97f4a7c15ULL;
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->changed, NULL);
	if (pthread_create(&k->thread, NULL, watch_main, k) != 0) {
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
