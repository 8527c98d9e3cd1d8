/*
 * kube_lookup: lookups of the kube_source module. A hit is copied out of the cache
 * under the source's mutex; a miss starts a live GET, or joins one already running
 * for the same name (a pending entry with a reference count, woken by the source's
 * condition variable), and its answer feeds the cache.
 *
 * The GETs are paced by a token bucket (--sa-lookup-burst tokens, refilled at
 * --sa-lookup-rate) that hands out reservations: a miss that finds it empty is given
 * the instant its token will be there and sleeps until then, without the lock,
 * unless that is further away than the lookup timeout (then it is refused at once).
 * A burst of new ServiceAccounts is paced, not refused.
 */
#include "kube_source_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "clock.h"
#include "json.h"
#include "mem.h"
#include "sa_map.h"
#include "validate.h"

#define GET_BODY_MAX (1024L * 1024)

/* A live lookup in progress; other lookups of the same name wait for its answer. */
struct kube_pending {
	struct kube_pending *next;
	char namespace[BOUND_DNS_SUBDOMAIN + 1], name[BOUND_DNS_SUBDOMAIN + 1];
	bool done;
	enum sa_lookup result;
	struct service_account *sa;
	char why[200];
	int refs;
	struct timespec until; /* CLOCK_REALTIME: when joiners stop waiting */
};

static void count_lookup(struct kube_source *k, enum kube_lookup_result r)
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
	double now = clock_now_seconds(), rate = (double)k->opt.lookup_rate;
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
		rc = kube_http_failure(d, "get", status, &body);
	if (rc == 0)
		rc = json_parse(strbuf_str(&body), body.len, &root, d);
	if (rc == 0) {
		set = profile_live_acquire(k->profiles, &handle);
		rc = sa_from_json(root, NULL, kube_keep_annotation, (void *)set,
				  ret, d);
		profile_live_release(k->profiles, handle);
	}
	cJSON_Delete(root);
	strbuf_free(&path);
	strbuf_free(&body);
	return rc == 0 ? SA_LOOKUP_FOUND : SA_LOOKUP_UNAVAILABLE;
}

static void release_pending(struct kube_source *k, struct kube_pending *p)
{
	if (--p->refs > 0)
		return;
	sa_free(p->sa);
	mem_free(p);
	(void)k;
}

static void unlink_pending(struct kube_source *k, struct kube_pending *p)
{
	for (struct kube_pending **link = &k->pending; *link;
	     link = &(*link)->next) {
		if (*link == p) {
			*link = p->next;
			return;
		}
	}
}

/* Performs the live GET for p (the lock is not held) and publishes the result. */
static void resolve(struct kube_source *k, struct kube_pending *p)
{
	struct service_account *sa = NULL;
	enum sa_lookup result;
	struct diag d;

	diag_clear(&d);
	result = live_get(k, p->namespace, p->name, &sa, &d);
	count_lookup(k, result == SA_LOOKUP_FOUND	? KUBE_LK_FOUND
			: result == SA_LOOKUP_NOT_FOUND ? KUBE_LK_NOT_FOUND
							: KUBE_LK_ERROR);
	pthread_mutex_lock(&k->lock);
	p->result = result;
	p->sa = sa;
	diag_format(&d, p->why, sizeof(p->why));
	p->done = true;
	unlink_pending(k, p);
	if (sa)
		kube_cache_remember(k, sa);
	pthread_cond_broadcast(&k->changed);
	pthread_mutex_unlock(&k->lock);
}

static struct kube_pending *find_pending(struct kube_source *k, const char *ns,
					 const char *name)
{
	for (struct kube_pending *p = k->pending; p; p = p->next) {
		if (strcmp(p->namespace, ns) == 0 && strcmp(p->name, name) == 0)
			return p;
	}
	return NULL;
}

/* Waits (lock held) for a lookup another request started, as long as it may take. */
static void wait_for(struct kube_source *k, struct kube_pending *p)
{
	while (!p->done &&
	       pthread_cond_timedwait(&k->changed, &k->lock, &p->until) == 0)
		;
}

static enum sa_lookup answer_pending(struct kube_source *k,
				     struct kube_pending *p,
				     struct service_account **ret,
				     struct diag *d)
{
	enum sa_lookup result = SA_LOOKUP_UNAVAILABLE;

	if (!p->done)
		diag_set(d, DIAG_ETIMEOUT, "the live lookup timed out");
	else if (p->result == SA_LOOKUP_FOUND)
		result = kube_cache_copy(p->sa, ret, d);
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
	struct kube_pending *p = find_pending(k, ns, name);
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
		count_lookup(k, KUBE_LK_RATE_LIMITED);
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
	p->until = clock_realtime_in(wait_ms + (long)k->opt.lookup_timeout_ms +
				     100);
	p->next = k->pending;
	k->pending = p;
	pthread_mutex_unlock(&k->lock);
	if (wait_ms > 0) {
		atomic_fetch_add(&k->token_waits, 1);
		atomic_fetch_add(&k->token_wait_us,
				 (unsigned long long)wait_ms * 1000);
		clock_sleep_ms(wait_ms);
	}
	resolve(k, p);
	pthread_mutex_lock(&k->lock);
	return answer_pending(k, p, ret, d);
}

/*
 * A cache hit is copied out; a miss is fetched live when `fetch` is set, else
 * SA_LOOKUP_WOULD_BLOCK. Names that are not DNS subdomains cannot exist; they
 * never reach the API server (a pod's serviceAccountName is validated only
 * after mutating admission).
 */
static enum sa_lookup lookup(struct sa_source *s, const char *ns,
			     const char *name, bool fetch,
			     struct service_account **ret, struct diag *d)
{
	struct kube_source *k = kube_from_base(s);
	const struct service_account *sa;
	enum sa_lookup result = SA_LOOKUP_WOULD_BLOCK;

	*ret = NULL;
	if (!validate_dns_subdomain(ns) || !validate_dns_subdomain(name))
		return SA_LOOKUP_NOT_FOUND;
	pthread_mutex_lock(&k->lock);
	sa = sa_map_get(k->map, ns, name);
	if (sa) {
		result = kube_cache_copy(sa, ret, d);
		count_lookup(k, KUBE_LK_HIT);
	} else if (fetch) {
		result = miss(k, ns, name, ret, d);
	}
	pthread_mutex_unlock(&k->lock);
	return result;
}

enum sa_lookup kube_lookup_cached(struct sa_source *s, const char *ns,
				  const char *name,
				  struct service_account **ret, struct diag *d)
{
	return lookup(s, ns, name, false, ret, d);
}

enum sa_lookup kube_lookup(struct sa_source *s, const char *ns,
			   const char *name, struct service_account **ret,
			   struct diag *d)
{
	return lookup(s, ns, name, true, ret, d);
}
