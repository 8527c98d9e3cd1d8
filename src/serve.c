/*
 * serve: the daemon's main thread. Signals are blocked in every thread and taken here
 * with sigtimedwait, whose timeout doubles as the reload tick: no signal handler runs
 * arbitrary code, and reloads happen on one thread, so the stores they touch need
 * locking only against the request threads that read them.
 */
#include "serve.h"

#include <curl/curl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounds.h"
#include "cli.h"
#include "clock.h"
#include "fileio.h"
#include "identity_file.h"
#include "kube_client.h"
#include "kube_connect.h"
#include "kube_source.h"
#include "kubeconfig.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "profile_dir.h"
#include "profile_live.h"
#include "sa_files.h"
#include "server.h"
#include "settings.h"
#include "tls_store.h"
#include "webhook.h"

#define TLS_GRACE_MIN_SECONDS 120
#define HEAP_TRIM_SECONDS     10

struct serve {
	const struct config *cfg;
	struct metrics *metrics;
	struct profile_live *profiles;
	struct identity_file *identities; /* NULL without --identity-map */
	struct sa_source *sa;
	struct tls_store *tls;
	struct webhook webhook;
	struct server *server;
	sigset_t signals;
	struct timespec trimmed; /* CLOCK_MONOTONIC of the last malloc_trim */
};

static int fail_config(const struct diag *d)
{
	char line[sizeof(d->where) + sizeof(d->text) + 32];

	cli_report(stderr, d);
	diag_format(d, line, sizeof(line));
	log_event(LOG_ERROR, "startup_failed", "error", line, NULL);
	return 2;
}

static const char *process_getenv(const char *name)
{
	return getenv(name);
}

static int open_kube_source(struct serve *s, struct diag *d)
{
	struct kube_source_options opts = kube_source_defaults();
	struct kube_client *client = NULL;
	struct kube_config kc;
	int rc = kube_config_load(s->cfg->kubeconfig, process_getenv, &kc, d);

	if (rc != 0)
		return rc;
	rc = kube_client_new(&kc, &client, d);
	kube_config_free(&kc);
	if (rc != 0)
		return rc;
	opts.lookup_timeout_ms = s->cfg->sa_lookup_timeout_ms;
	opts.lookup_rate = s->cfg->sa_lookup_rate;
	opts.lookup_burst = s->cfg->sa_lookup_burst;
	opts.watch_idle_ms = (long)s->cfg->sa_watch_idle_ms;
	opts.page_size = (long)s->cfg->sa_list_page_size;
	return kube_source_new(client, s->profiles, s->metrics, &opts, &s->sa,
			       d);
}

static int open_sa_source(struct serve *s, struct diag *d)
{
	if (s->cfg->sa_dir && s->cfg->kubeconfig)
		return diag_set(
			d, DIAG_ECONFIG,
			"give either --service-accounts-dir or --kubeconfig, not both");
	if (s->cfg->sa_dir)
		return sa_files_new(s->cfg->sa_dir, s->metrics, &s->sa, d);
	return open_kube_source(s, d);
}

static void reload_certificate(struct serve *s)
{
	char why[600], when[24];
	struct diag d;

	diag_clear(&d);
	switch (tls_store_reload(s->tls, &d)) {
	case TLS_UNCHANGED:
		return;
	case TLS_RELOADED:
		snprintf(when, sizeof(when), "%lld",
			 (long long)tls_store_not_after(s->tls));
		log_event(LOG_INFO, "certificate_loaded", "cert",
			  s->cfg->tls_cert, "not_after", when, NULL);
		metrics_certificate_reload(s->metrics, true);
		break;
	case TLS_FAILED:
		diag_format(&d, why, sizeof(why));
		log_event(LOG_ERROR, "certificate_reload_failed", "error", why,
			  "kept",
			  tls_store_loaded(s->tls) ? "the previous certificate"
						   : "none (not ready)",
			  NULL);
		metrics_certificate_reload(s->metrics, false);
		break;
	}
	metrics_certificate(s->metrics, tls_store_loaded(s->tls),
			    tls_store_not_after(s->tls));
}

static void reload_profiles(struct serve *s)
{
	struct profile_set *set = NULL;
	char why[600], count[16];
	struct diag d;

	diag_clear(&d);
	if (profile_dir_load_checked(s->cfg->profiles_dir, s->cfg->settings,
				     &set, &d) != 0 ||
	    profile_live_replace(s->profiles, set) != 0) {
		profile_set_free(set);
		diag_format(&d, why, sizeof(why));
		log_event(LOG_ERROR, "profiles_reload_failed", "error", why,
			  "kept", "the running profiles", NULL);
		metrics_profile_reload(s->metrics, false);
		return;
	}
	snprintf(count, sizeof(count), "%zu", profile_set_count(set));
	log_event(LOG_INFO, "profiles_reloaded", "count", count, NULL);
	if (s->sa->profiles_changed)
		s->sa->profiles_changed(s->sa);
	metrics_profile_reload(s->metrics, true);
	metrics_profiles(s->metrics, profile_set_count(set));
}

static void log_identities(struct serve *s)
{
	void *handle = NULL;
	char count[24];

	snprintf(count, sizeof(count), "%zu",
		 identity_map_count(
			 identity_file_acquire(s->identities, &handle)));
	identity_file_release(s->identities, handle);
	log_event(LOG_INFO, "identity_map_loaded", "file",
		  identity_file_path(s->identities), "entries", count, NULL);
}

/* Reads the identity map again when its file changed (always when force: the
 * profiles that map its JSON form may have changed). */
static void reload_identities(struct serve *s, bool force)
{
	const struct profile_set *set;
	enum identity_file_reload result;
	char why[600];
	void *handle = NULL;
	struct diag d;

	if (s->identities == NULL)
		return;
	diag_clear(&d);
	set = profile_live_acquire(s->profiles, &handle);
	result = identity_file_reload(s->identities, set, force, &d);
	profile_live_release(s->profiles, handle);
	if (result == IDENTITY_FILE_FAILED) {
		diag_format(&d, why, sizeof(why));
		log_event(LOG_ERROR, "identity_map_reload_failed", "error", why,
			  "kept", "the previous identity map", NULL);
	} else if (result == IDENTITY_FILE_RELOADED) {
		log_identities(s);
	}
}

/*
 * Every HEAP_TRIM_SECONDS, gives the heap's free pages back to the kernel. glibc
 * returns memory to the kernel only from the top of the heap, and only past 128 KiB: a
 * moment of more allocations than usual (new API and client connections at once) moves
 * the top up, something long-lived then lands near it, and the pages freed below stay
 * resident for good, so resident memory climbed in steps after warm-up while the bytes
 * in use were flat (docs/performance.md, Soak). malloc_trim(0) releases whole free
 * pages anywhere in the heaps; for our few arenas it costs microseconds.
 */
static void trim_heap(struct serve *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - s->trimmed.tv_sec < HEAP_TRIM_SECONDS)
		return;
	s->trimmed = now;
#ifdef M_ARENA_MAX
	malloc_trim(0);
#endif
}

static void tick(struct serve *s)
{
	reload_certificate(s);
	reload_identities(s, false);
	if (s->sa->poll)
		s->sa->poll(s->sa);
	metrics_sa_source(s->metrics, s->sa->name, s->sa->ready(s->sa),
			  s->sa->count(s->sa));
	trim_heap(s);
}

/* Waits for SIGTERM/SIGINT, handling SIGHUP and the reload tick meanwhile. */
static void run_until_stopped(struct serve *s)
{
	for (;;) {
		struct timespec wait = clock_span(s->cfg->reload_interval_ms);
		int sig = sigtimedwait(&s->signals, NULL, &wait);

		if (sig == SIGTERM || sig == SIGINT)
			return;
		if (sig == SIGHUP) {
			reload_profiles(s);
			reload_identities(s, true);
		}
		tick(s);
	}
}

/* Keeps serving (not ready) for --shutdown-delay; a second signal cuts it short. */
static void delay_shutdown(struct serve *s)
{
	int64_t start = clock_now_ms(), left = s->cfg->shutdown_delay_ms;

	while (left > 0) {
		struct timespec wait = clock_span(left);
		int sig = sigtimedwait(&s->signals, NULL, &wait);

		if (sig == SIGTERM || sig == SIGINT)
			return;
		left = s->cfg->shutdown_delay_ms - (clock_now_ms() - start);
	}
}

static void shut_down(struct serve *s)
{
	char left[24];
	bool drained;

	log_event(LOG_INFO, "shutdown_started", NULL);
	server_set_draining(s->server);
	delay_shutdown(s);
	server_quiesce(s->server);
	drained = server_drain(s->server, s->cfg->shutdown_timeout_ms);
	snprintf(left, sizeof(left), "%ld", server_inflight(s->server));
	log_event(drained ? LOG_INFO : LOG_WARN, "shutdown_complete", "drained",
		  drained ? "true" : "false", "requests_cut", left, NULL);
}

static int start(struct serve *s, const char *version, struct diag *d)
{
	const struct config *c = s->cfg;
	struct profile_set *set = NULL;
	int grace = (int)(2 * c->request_timeout_ms / 1000);
	int rc;

	if (metrics_new(version, &s->metrics) != 0)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	rc = profile_dir_load_checked(c->profiles_dir, c->settings, &set, d);
	if (rc == 0 && (rc = profile_live_new(set, &s->profiles)) != 0)
		profile_set_free(set);
	if (rc != 0)
		return rc;
	metrics_profiles(s->metrics, profile_set_count(set));
	if (c->identity_map &&
	    (rc = identity_file_open(c->identity_map, set, &s->identities,
				     d)) != 0)
		return rc;
	if (s->identities)
		log_identities(s);
	rc = open_sa_source(s, d);
	if (rc == 0)
		rc = tls_store_new(c->tls_cert, c->tls_key,
				   grace > TLS_GRACE_MIN_SECONDS
					   ? grace
					   : TLS_GRACE_MIN_SECONDS,
				   &s->tls);
	if (rc != 0)
		return rc;
	s->webhook = (struct webhook){ s->profiles, c->settings, s->sa,
				       s->metrics, s->identities };
	tick(s);
	return 0;
}

static void teardown(struct serve *s)
{
	server_stop(s->server);
	if (s->sa)
		s->sa->free(s->sa);
	tls_store_free(s->tls);
	identity_file_free(s->identities);
	profile_live_free(s->profiles);
	metrics_free(s->metrics);
}

static struct server_options server_options(const struct config *c)
{
	return (struct server_options){ c->listen,
					c->metrics_listen,
					c->tls_min_version,
					c->max_body_bytes,
					c->max_connections,
					c->threads,
					c->request_timeout_ms };
}

/*
 * A bounded number of malloc arenas: one per HTTPS request thread, one for the
 * metrics listener's thread, the main one and one for the Kubernetes watch.
 * glibc gives each thread that allocates a heap of its own, up to 8 per core,
 * and each heap keeps what is freed in it for its next allocations. Our threads
 * that allocate rarely (the offload pool on a lookup miss) made their first
 * allocation minutes apart, each one starting a heap of 130-250 KiB, so
 * resident memory climbed in steps long after warm-up while the bytes in use
 * stayed flat (docs/performance.md, Soak). Past the bound a thread shares an
 * existing heap, which costs the rare threads nothing. The request threads must
 * not all share one: with a single arena they queued on its lock for every
 * block tcache does not hold (0.6 futex calls per admission, several percent of
 * the throughput). Set before any thread starts.
 */
static void bound_malloc_arenas(int64_t threads)
{
#ifdef M_ARENA_MAX
	mallopt(M_ARENA_MAX, (int)server_worker_threads(threads) + 3);
#else
	(void)threads;
#endif
}

int serve_run(const struct config *cfg, const char *version)
{
	struct serve s = { .cfg = cfg };
	struct server_options opts = server_options(cfg);
	struct diag d;
	int status = 0;

	bound_malloc_arenas(cfg->threads);
	log_setup(log_level_parse(cfg->log_level),
		  strcmp(cfg->log_format, "json") == 0);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr,
			"pod-identity-webhook: cannot initialise libcurl\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&s.signals);
	sigaddset(&s.signals, SIGTERM);
	sigaddset(&s.signals, SIGINT);
	sigaddset(&s.signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &s.signals,
			NULL); /* before any thread starts */
	diag_clear(&d);
	if (start(&s, version, &d) != 0) {
		status = fail_config(&d);
	} else if (server_start(&opts, &s.webhook, s.tls, s.metrics, &s.server,
				&d) != 0 ||
		   (s.sa->start && s.sa->start(s.sa, &d) != 0)) {
		fail_config(
			&d); /* the listeners first: no port, no API traffic */
		status = 1;
	} else {
		log_event(LOG_INFO, "serving", "listen", cfg->listen,
			  "metrics_listen", cfg->metrics_listen,
			  "service_accounts", s.sa->name, "version", version,
			  NULL);
		run_until_stopped(&s);
		shut_down(&s);
	}
	teardown(&s);
	curl_global_cleanup();
	return status;
}
