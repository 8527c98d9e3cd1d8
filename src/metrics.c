/*
 * metrics: fixed arrays of atomic counters, indexed by small label sets known in
 * advance (listener, path, code, outcome, reason). Only per-profile counters have
 * open-ended labels: they live in a bounded table filled under a mutex and read
 * without one.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "diag.h"
#include "fileio.h"
#include "mem.h"
#include "strutil.h"

static const char *const paths[] = { "/mutate", "/healthz", "/readyz",
				     "/metrics", "other" };
#define N_PATHS (sizeof(paths) / sizeof(paths[0]))
static const int codes[] = { 200, 400, 404, 405, 408, 413, 415, 500, 503, 0 };
#define N_CODES (sizeof(codes) / sizeof(codes[0]))
static const char *const outcomes[] = {
	"patched",	  "unchanged",	  "no-match",	    "skipped", "denied",
	"not-understood", "sa-not-found", "not-pod-create", "error"
};
#define N_OUTCOMES (sizeof(outcomes) / sizeof(outcomes[0]))
static const char *const deny_reasons[] = { "invalid-value", "volume-conflict",
					    "mount-conflict" };
#define N_DENY (sizeof(deny_reasons) / sizeof(deny_reasons[0]))
/* Skips are the admitted-untouched outcomes. */
static const char *const skip_reasons[] = { "no-match", "skipped",
					    "sa-not-found", "not-understood",
					    "not-pod-create" };
#define N_SKIP (sizeof(skip_reasons) / sizeof(skip_reasons[0]))
static const double buckets[] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
				  0.0025,  0.005,  0.01,    0.025,  0.05,
				  0.1,	   0.25,   0.5,	    1,	    2.5 };
#define N_BUCKETS	   (sizeof(buckets) / sizeof(buckets[0]))
#define MAX_PROFILE_LABELS (BOUND_PROFILES * 2)

struct profile_counter {
	char name[BOUND_PROFILE_NAME + 1];
	atomic_ullong count;
};

struct metrics {
	char version[32];
	double start_time;
	atomic_ullong http[2][N_PATHS][N_CODES];
	atomic_llong inflight;
	atomic_ullong outcomes[N_OUTCOMES];
	atomic_ullong denials[N_DENY];
	atomic_ullong hist[N_BUCKETS + 1];
	atomic_ullong hist_sum_ns;
	pthread_mutex_t lock; /* guards adding profile labels */
	struct profile_counter profiles[MAX_PROFILE_LABELS];
	atomic_size_t n_profiles;
	atomic_int cert_loaded;
	atomic_llong cert_not_after;
	atomic_ullong cert_reloads[2]; /* failure, success */
	atomic_size_t profiles_loaded;
	atomic_ullong profile_reloads[2];
	atomic_int sa_ready;
	atomic_size_t sa_count;
	atomic_ullong sa_reloads[2];
	const char *sa_source; /* a string literal, set before serving */
	metrics_extra_fn extra;
	void *extra_arg;
};

int metrics_new(const char *version, struct metrics **ret)
{
	struct metrics *m = mem_calloc(1, sizeof(*m));
	struct timespec ts;

	*ret = NULL;
	if (m == NULL)
		return DIAG_ENOMEM;
	if (pthread_mutex_init(&m->lock, NULL) != 0) {
		mem_free(m);
		return DIAG_ENOMEM;
	}
	snprintf(m->version, sizeof(m->version), "%s", version);
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	m->sa_source = "none";
	*ret = m;
	return 0;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	pthread_mutex_destroy(&m->lock);
	mem_free(m);
}

static size_t index_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (name && strcmp(names[i], name) == 0)
			return i;
	}
	return n;
}

void metrics_http(struct metrics *m, enum metrics_listener listener,
		  const char *path, int code)
{
	size_t p = index_of(paths, N_PATHS - 1, path), c = 0;

	while (c < N_CODES - 1 && codes[c] != code)
		c++;
	atomic_fetch_add_explicit(&m->http[listener][p][c], 1,
				  memory_order_relaxed);
}

void metrics_inflight(struct metrics *m, int delta)
{
	atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

static struct profile_counter *profile_counter(struct metrics *m,
					       const char *name)
{
	size_t n = atomic_load(&m->n_profiles);
	struct profile_counter *found = NULL;

	for (size_t i = 0; i < n; i++) {
		if (strcmp(m->profiles[i].name, name) == 0)
			return &m->profiles[i];
	}
	pthread_mutex_lock(&m->lock);
	n = atomic_load(&m->n_profiles);
	for (size_t i = 0; i < n && !found; i++) {
		if (strcmp(m->profiles[i].name, name) == 0)
			found = &m->profiles[i];
	}
	if (!found && n < MAX_PROFILE_LABELS) {
		found = &m->profiles[n];
		snprintf(found->name, sizeof(found->name), "%s", name);
		atomic_store(&m->n_profiles, n + 1);
	}
	pthread_mutex_unlock(&m->lock);
	return found;
}

void metrics_admission(struct metrics *m, const char *outcome, double seconds,
		       const char *const *profiles, size_t n_profiles,
		       const char *deny_reason)
{
	size_t o = index_of(outcomes, N_OUTCOMES, outcome), b = 0;

	if (o < N_OUTCOMES)
		atomic_fetch_add_explicit(&m->outcomes[o], 1,
					  memory_order_relaxed);
	while (b < N_BUCKETS && seconds > buckets[b])
		b++;
	atomic_fetch_add_explicit(&m->hist[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->hist_sum_ns,
				  (unsigned long long)(seconds * 1e9),
				  memory_order_relaxed);
	for (size_t i = 0; i < n_profiles; i++) {
		struct profile_counter *pc = profile_counter(m, profiles[i]);

		if (pc)
			atomic_fetch_add_explicit(&pc->count, 1,
						  memory_order_relaxed);
	}
	if (deny_reason) {
		size_t r = index_of(deny_reasons, N_DENY, deny_reason);

		if (r < N_DENY)
			atomic_fetch_add_explicit(&m->denials[r], 1,
						  memory_order_relaxed);
	}
}

void metrics_certificate(struct metrics *m, bool loaded, int64_t not_after)
{
	atomic_store(&m->cert_loaded, loaded);
	atomic_store(&m->cert_not_after, not_after);
}

void metrics_certificate_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->cert_reloads[ok], 1);
}

void metrics_profiles(struct metrics *m, size_t loaded)
{
	atomic_store(&m->profiles_loaded, loaded);
}

void metrics_profile_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->profile_reloads[ok], 1);
}

void metrics_sa_source(struct metrics *m, const char *source, bool ready,
		       size_t count)
{
	m->sa_source = source;
	atomic_store(&m->sa_ready, ready);
	atomic_store(&m->sa_count, count);
}

void metrics_sa_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->sa_reloads[ok], 1);
}

void metrics_set_extra(struct metrics *m, metrics_extra_fn fn, void *arg)
{
	m->extra = fn;
	m->extra_arg = arg;
}

/* ---- rendering ---- */

static int head(struct strbuf *out, const char *name, const char *type,
		const char *help)
{
	return strbuf_addf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
			   name, type);
}

static int render_http(struct metrics *m, struct strbuf *out)
{
	static const char *const listeners[] = { "https", "metrics" };
	int rc = head(out, "piw_http_requests_total", "counter",
		      "HTTP requests answered.");

	for (size_t l = 0; l < 2; l++)
		for (size_t p = 0; p < N_PATHS; p++)
			for (size_t c = 0; rc == 0 && c < N_CODES; c++) {
				unsigned long long v =
					atomic_load(&m->http[l][p][c]);
				char code[8];

				if (v == 0)
					continue;
				snprintf(code, sizeof(code), "%d", codes[c]);
				rc = strbuf_addf(
					out,
					"piw_http_requests_total{listener=\"%s\","
					"path=\"%s\",code=\"%s\"} %llu\n",
					listeners[l], paths[p],
					codes[c] ? code : "other", v);
			}
	return rc;
}

static int render_histogram(struct metrics *m, struct strbuf *out)
{
	unsigned long long cumulative = 0;
	int rc = head(out, "piw_admission_duration_seconds", "histogram",
		      "Time from a complete /mutate body to its answer.");

	for (size_t b = 0; rc == 0 && b <= N_BUCKETS; b++) {
		cumulative += atomic_load(&m->hist[b]);
		if (b < N_BUCKETS)
			rc = strbuf_addf(
				out,
				"piw_admission_duration_seconds_bucket{le=\"%g\"} %llu\n",
				buckets[b], cumulative);
		else
			rc = strbuf_addf(
				out,
				"piw_admission_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
				"piw_admission_duration_seconds_sum %.9f\n"
				"piw_admission_duration_seconds_count %llu\n",
				cumulative, atomic_load(&m->hist_sum_ns) / 1e9,
				cumulative);
	}
	return rc;
}

static int render_labelled(struct strbuf *out, const char *name,
			   const char *label, const char *const *values,
			   atomic_ullong *counts, size_t n)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = strbuf_addf(out, "%s{%s=\"%s\"} %llu\n", name, label,
				 values[i], atomic_load(&counts[i]));
	return rc;
}

static int render_admissions(struct metrics *m, struct strbuf *out)
{
	atomic_ullong skips[N_SKIP];
	size_t n = atomic_load(&m->n_profiles);
	int rc;

	for (size_t i = 0; i < N_SKIP; i++)
		atomic_init(&skips[i],
			    atomic_load(&m->outcomes[index_of(
				    outcomes, N_OUTCOMES, skip_reasons[i])]));
	rc = head(out, "piw_admissions_total", "counter",
		  "Admission decisions by outcome.");
	if (rc == 0)
		rc = render_labelled(out, "piw_admissions_total", "outcome",
				     outcomes, m->outcomes, N_OUTCOMES);
	if (rc == 0)
		rc = head(out, "piw_mutations_total", "counter",
			  "Pods patched, per profile.");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = strbuf_addf(out,
				 "piw_mutations_total{profile=\"%s\"} %llu\n",
				 m->profiles[i].name,
				 atomic_load(&m->profiles[i].count));
	if (rc == 0)
		rc = head(out, "piw_denials_total", "counter",
			  "Denials by reason.");
	if (rc == 0)
		rc = render_labelled(out, "piw_denials_total", "reason",
				     deny_reasons, m->denials, N_DENY);
	if (rc == 0)
		rc = head(out, "piw_skips_total", "counter",
			  "Pods admitted untouched, by reason.");
	if (rc == 0)
		rc = render_labelled(out, "piw_skips_total", "reason",
				     skip_reasons, skips, N_SKIP);
	return rc;
}

static int render_results(struct strbuf *out, const char *name,
			  const char *help, atomic_ullong *results)
{
	int rc = head(out, name, "counter", help);

	if (rc == 0)
		rc = strbuf_addf(
			out,
			"%s{result=\"success\"} %llu\n%s{result=\"failure\"} %llu\n",
			name, atomic_load(&results[1]), name,
			atomic_load(&results[0]));
	return rc;
}

/* Resident pages from /proc/self/statm ("size resident shared ..."). */
static long resident_bytes(void)
{
	int64_t statm[2]; /* size, resident (pages) */

	if (file_read_numbers("/proc/self/statm", statm, 2) != 2)
		return 0;
	return (long)statm[1] * sysconf(_SC_PAGESIZE);
}

static int render_state(struct metrics *m, struct strbuf *out)
{
	int rc = strbuf_addf(
		out,
		"# HELP piw_inflight_requests Requests being processed.\n"
		"# TYPE piw_inflight_requests gauge\npiw_inflight_requests %lld\n"
		"# HELP piw_certificate_loaded 1 once a valid serving certificate is loaded.\n"
		"# TYPE piw_certificate_loaded gauge\npiw_certificate_loaded %d\n"
		"# HELP piw_certificate_expiry_timestamp_seconds notAfter of the serving "
		"certificate.\n# TYPE piw_certificate_expiry_timestamp_seconds gauge\n"
		"piw_certificate_expiry_timestamp_seconds %lld\n"
		"# HELP piw_profiles_loaded Profiles in the running set.\n"
		"# TYPE piw_profiles_loaded gauge\npiw_profiles_loaded %zu\n"
		"# HELP piw_service_account_source_ready 1 once the ServiceAccount source is "
		"synced.\n# TYPE piw_service_account_source_ready gauge\n"
		"piw_service_account_source_ready{source=\"%s\"} %d\n"
		"# HELP piw_service_accounts ServiceAccounts known to the source.\n"
		"# TYPE piw_service_accounts gauge\npiw_service_accounts %zu\n",
		(long long)atomic_load(&m->inflight),
		atomic_load(&m->cert_loaded),
		(long long)atomic_load(&m->cert_not_after),
		atomic_load(&m->profiles_loaded), m->sa_source,
		atomic_load(&m->sa_ready), atomic_load(&m->sa_count));

	if (rc == 0)
		rc = render_results(out, "piw_certificate_reloads_total",
				    "Certificate reloads.", m->cert_reloads);
	if (rc == 0)
		rc = render_results(out, "piw_profile_reloads_total",
				    "Profile reloads (SIGHUP).",
				    m->profile_reloads);
	if (rc == 0)
		rc = render_results(out, "piw_service_account_reloads_total",
				    "Reloads of the ServiceAccount files.",
				    m->sa_reloads);
	return rc;
}

static int render_process(struct metrics *m, struct strbuf *out)
{
	return strbuf_addf(
		out,
		"# HELP piw_build_info Build information.\n"
		"# TYPE piw_build_info gauge\npiw_build_info{version=\"%s\"} 1\n"
		"# HELP process_resident_memory_bytes Resident set size.\n"
		"# TYPE process_resident_memory_bytes gauge\n"
		"process_resident_memory_bytes %ld\n"
		"# HELP process_start_time_seconds Start time since the epoch.\n"
		"# TYPE process_start_time_seconds gauge\n"
		"process_start_time_seconds %.3f\n",
		m->version, resident_bytes(), m->start_time);
}

int metrics_render(struct metrics *m, struct strbuf *out)
{
	int rc = render_http(m, out);

	if (rc == 0)
		rc = render_histogram(m, out);
	if (rc == 0)
		rc = render_admissions(m, out);
	if (rc == 0)
		rc = render_state(m, out);
	if (rc == 0)
		rc = render_process(m, out);
	if (rc == 0 && m->extra)
		rc = m->extra(m->extra_arg, out);
	return rc;
}
