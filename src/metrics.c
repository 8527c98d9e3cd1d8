/*
 * metrics: the registry (a bounded table of families, rendered in registration
 * order by one writer that owns the HELP/TYPE lines and label escaping) and the
 * webhook's own families: fixed arrays of atomic counters indexed by the label
 * sets known in advance (listener, route, code, outcome, reason), all named by
 * their owners' X-macro lists. Only per-profile counters have open-ended labels:
 * they live in a bounded table filled under a mutex and read without one.
 */
#include "metrics.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "diag.h"
#include "fileio.h"
#include "mem.h"

/* HTTP status codes with their own label; the last one (0) is "other". */
static const int codes[] = { 200, 400, 404, 405, 408, 413, 415, 500, 503, 0 };
#define N_CODES (sizeof(codes) / sizeof(codes[0]))

/* piw_admissions_total: every mutate outcome, then "error" (not answered 200). */
#define OUTCOME_ERROR MUTATE_N_OUTCOMES
#define N_OUTCOMES    (MUTATE_N_OUTCOMES + 1)

static const double buckets[] = { 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
				  0.0025,  0.005,  0.01,    0.025,  0.05,
				  0.1,	   0.25,   0.5,	    1,	    2.5 };
#define N_BUCKETS	   (sizeof(buckets) / sizeof(buckets[0]))
#define MAX_PROFILE_LABELS (BOUND_PROFILES * 2)
#define MAX_FAMILIES	   48

struct profile_counter {
	char name[BOUND_PROFILE_NAME + 1];
	atomic_ullong count;
};

struct metrics {
	struct metrics_family families[MAX_FAMILIES];
	size_t n_families;
	char version[32];
	const char *version_label[1]; /* version, as a label value list */
	double start_time;
	atomic_ullong http[SERVER_N_LISTENERS][SERVER_N_ROUTES][N_CODES];
	atomic_llong inflight;
	const char *outcome_names[N_OUTCOMES];
	atomic_ullong outcomes[N_OUTCOMES];
	const char *deny_names[MUTATE_N_DENY];
	atomic_ullong denials[MUTATE_N_DENY];
	/* the skip outcomes, in outcome order: names and indexes in outcomes[] */
	const char *skip_names[MUTATE_N_OUTCOMES];
	size_t skip_outcome[MUTATE_N_OUTCOMES], n_skips;
	atomic_ullong hist[N_BUCKETS + 1];
	atomic_ullong hist_sum_ns;
	pthread_mutex_t lock; /* guards adding profile labels */
	struct profile_counter profiles[MAX_PROFILE_LABELS];
	atomic_size_t n_profiles;
	atomic_int cert_loaded;
	atomic_llong cert_not_after;
	atomic_ullong cert_reloads[METRICS_N_RESULTS];
	atomic_size_t profiles_loaded;
	atomic_ullong profile_reloads[METRICS_N_RESULTS];
	atomic_int sa_ready;
	atomic_size_t sa_count;
	atomic_ullong sa_reloads[METRICS_N_RESULTS];
	const char *sa_source[1]; /* a string literal, set before serving */
};

const char *const *metrics_result_names(void)
{
	static const char *const names[] = {
#define METRICS_RESULT_NAME(id, name) [id] = name,
		METRICS_RESULTS(METRICS_RESULT_NAME)
#undef METRICS_RESULT_NAME
	};

	return names;
}

/* ---- the registry ---- */

static bool valid_name(const char *s)
{
	if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
			return false;
	}
	return true;
}

static bool valid_values(const struct metrics_family *f)
{
	if (f->label == NULL)
		return f->values == NULL && f->n == 1;
	if (!valid_name(f->label) || f->values == NULL || f->n == 0)
		return false;
	for (size_t i = 0; i < f->n; i++) {
		if (f->values[i] == NULL)
			return false;
		for (size_t j = 0; j < i; j++)
			if (strcmp(f->values[i], f->values[j]) == 0)
				return false;
	}
	return true;
}

int metrics_register(struct metrics *m, const struct metrics_family *f)
{
	int sources = (f->counters != NULL) + (f->value != NULL) +
		      (f->samples != NULL);

	if (!valid_name(f->name) || f->help == NULL || sources != 1 ||
	    (f->samples == NULL && !valid_values(f)))
		return DIAG_EINVAL;
	for (size_t i = 0; i < m->n_families; i++)
		if (strcmp(m->families[i].name, f->name) == 0)
			return DIAG_EINVAL;
	if (m->n_families == MAX_FAMILIES)
		return DIAG_ELIMIT;
	m->families[m->n_families++] = *f;
	return 0;
}

void metrics_unregister(struct metrics *m, const void *owner)
{
	size_t kept = 0;

	for (size_t i = 0; i < m->n_families; i++)
		if (m->families[i].arg != owner)
			m->families[kept++] = m->families[i];
	m->n_families = kept;
}

/* Appends s with the characters the text format escapes (quote only in labels). */
static int add_escaped(struct strbuf *out, const char *s, bool label)
{
	int rc = 0;

	for (; rc == 0 && *s; s++) {
		if (*s == '\\')
			rc = strbuf_adds(out, "\\\\");
		else if (*s == '\n')
			rc = strbuf_adds(out, "\\n");
		else if (*s == '"' && label)
			rc = strbuf_adds(out, "\\\"");
		else
			rc = strbuf_addc(out, *s);
	}
	return rc;
}

static int sample_line(struct strbuf *out, const char *name, const char *suffix,
		       const char *const *labels, size_t n_labels,
		       const char *value)
{
	int rc = strbuf_addf(out, "%s%s", name, suffix);

	for (size_t i = 0; rc == 0 && i < n_labels; i++) {
		rc = strbuf_addf(out, "%s%s=\"", i ? "," : "{", labels[2 * i]);
		if (rc == 0)
			rc = add_escaped(out, labels[2 * i + 1], true);
		if (rc == 0)
			rc = strbuf_adds(out, i + 1 < n_labels ? "\"" : "\"}");
	}
	if (rc == 0)
		rc = strbuf_addf(out, " %s\n", value);
	return rc;
}

int metrics_sample(struct strbuf *out, const char *name, const char *suffix,
		   const char *const *labels, size_t n_labels, double value)
{
	char text[40];

	if (isnan(value))
		snprintf(text, sizeof(text), "NaN");
	else if (isinf(value))
		snprintf(text, sizeof(text), "%sInf", value > 0 ? "+" : "-");
	else
		snprintf(text, sizeof(text), "%.15g", value);
	return sample_line(out, name, suffix, labels, n_labels, text);
}

static int render_family(const struct metrics_family *f, struct strbuf *out)
{
	static const char *const types[] = { [METRICS_COUNTER] = "counter",
					     [METRICS_GAUGE] = "gauge",
					     [METRICS_HISTOGRAM] =
						     "histogram" };
	int rc = strbuf_addf(out, "# HELP %s ", f->name);

	if (rc == 0)
		rc = add_escaped(out, f->help, false);
	if (rc == 0)
		rc = strbuf_addf(out, "\n# TYPE %s %s\n", f->name,
				 types[f->type]);
	if (rc == 0 && f->samples)
		return f->samples(f->arg, out);
	for (size_t i = 0; rc == 0 && i < f->n; i++) {
		const char *label[2] = { f->label,
					 f->label ? f->values[i] : "" };
		size_t n_labels = f->label ? 1 : 0;
		char text[24];

		if (f->value) {
			rc = metrics_sample(out, f->name, "", label, n_labels,
					    f->value(f->arg, i));
			continue;
		}
		snprintf(text, sizeof(text), "%llu",
			 atomic_load(&f->counters[i]));
		rc = sample_line(out, f->name, "", label, n_labels, text);
	}
	return rc;
}

int metrics_render(struct metrics *m, struct strbuf *out)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < m->n_families; i++)
		rc = render_family(&m->families[i], out);
	return rc;
}

/* ---- updates ---- */

void metrics_http(struct metrics *m, enum metrics_listener listener,
		  enum server_route route, int code)
{
	size_t c = 0;

	while (c < N_CODES - 1 && codes[c] != code)
		c++;
	atomic_fetch_add_explicit(&m->http[listener][route][c], 1,
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

void metrics_admission(struct metrics *m, enum mutate_outcome outcome,
		       bool error, double seconds, const char *const *profiles,
		       size_t n_profiles, enum mutate_deny deny)
{
	size_t b = 0;

	atomic_fetch_add_explicit(&m->outcomes[error ? OUTCOME_ERROR : outcome],
				  1, memory_order_relaxed);
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
	if (!error && deny != MUTATE_DENY_NONE)
		atomic_fetch_add_explicit(&m->denials[deny], 1,
					  memory_order_relaxed);
}

void metrics_certificate(struct metrics *m, bool loaded, int64_t not_after)
{
	atomic_store(&m->cert_loaded, loaded);
	atomic_store(&m->cert_not_after, not_after);
}

void metrics_certificate_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->cert_reloads[metrics_result_of(ok)], 1);
}

void metrics_profiles(struct metrics *m, size_t loaded)
{
	atomic_store(&m->profiles_loaded, loaded);
}

void metrics_profile_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->profile_reloads[metrics_result_of(ok)], 1);
}

void metrics_sa_source(struct metrics *m, const char *source, bool ready,
		       size_t count)
{
	m->sa_source[0] = source;
	atomic_store(&m->sa_ready, ready);
	atomic_store(&m->sa_count, count);
}

void metrics_sa_reload(struct metrics *m, bool ok)
{
	atomic_fetch_add(&m->sa_reloads[metrics_result_of(ok)], 1);
}

/* ---- the webhook's own families ---- */

static int render_http(void *arg, struct strbuf *out)
{
	struct metrics *m = arg;
	int rc = 0;

	for (size_t l = 0; l < SERVER_N_LISTENERS; l++)
		for (size_t p = 0; p < SERVER_N_ROUTES; p++)
			for (size_t c = 0; rc == 0 && c < N_CODES; c++) {
				unsigned long long v =
					atomic_load(&m->http[l][p][c]);
				char code[8];
				const char *labels[] = {
					"listener", server_listener_name(l),
					"path",	    server_route_path(p),
					"code",	    code
				};

				if (v == 0)
					continue;
				snprintf(code, sizeof(code), "%d", codes[c]);
				if (codes[c] == 0)
					snprintf(code, sizeof(code), "other");
				rc = metrics_sample(out,
						    "piw_http_requests_total",
						    "", labels, 3, (double)v);
			}
	return rc;
}

static int render_histogram(void *arg, struct strbuf *out)
{
	static const char name[] = "piw_admission_duration_seconds";
	struct metrics *m = arg;
	unsigned long long cumulative = 0;
	int rc = 0;

	for (size_t b = 0; rc == 0 && b <= N_BUCKETS; b++) {
		char le[24];
		const char *labels[] = { "le", le };

		cumulative += atomic_load(&m->hist[b]);
		if (b < N_BUCKETS)
			snprintf(le, sizeof(le), "%g", buckets[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		rc = metrics_sample(out, name, "_bucket", labels, 1,
				    (double)cumulative);
	}
	if (rc == 0)
		rc = metrics_sample(out, name, "_sum", NULL, 0,
				    atomic_load(&m->hist_sum_ns) / 1e9);
	if (rc == 0)
		rc = metrics_sample(out, name, "_count", NULL, 0,
				    (double)cumulative);
	return rc;
}

static int render_mutations(void *arg, struct strbuf *out)
{
	struct metrics *m = arg;
	size_t n = atomic_load(&m->n_profiles);
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *labels[] = { "profile", m->profiles[i].name };

		rc = metrics_sample(out, "piw_mutations_total", "", labels, 1,
				    (double)atomic_load(&m->profiles[i].count));
	}
	return rc;
}

static double skips(void *arg, size_t i)
{
	struct metrics *m = arg;

	return (double)atomic_load(&m->outcomes[m->skip_outcome[i]]);
}

static double inflight(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct metrics *)arg)->inflight);
}

static double cert_loaded(void *arg, size_t i)
{
	(void)i;
	return atomic_load(&((struct metrics *)arg)->cert_loaded);
}

static double cert_not_after(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct metrics *)arg)->cert_not_after);
}

static double profiles_loaded(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct metrics *)arg)->profiles_loaded);
}

static double sa_ready(void *arg, size_t i)
{
	(void)i;
	return atomic_load(&((struct metrics *)arg)->sa_ready);
}

static double sa_count(void *arg, size_t i)
{
	(void)i;
	return (double)atomic_load(&((struct metrics *)arg)->sa_count);
}

static double one(void *arg, size_t i)
{
	(void)arg;
	(void)i;
	return 1;
}

static double resident(void *arg, size_t i)
{
	int64_t statm[2]; /* size, resident (pages), from /proc/self/statm */

	(void)arg;
	(void)i;
	if (file_read_numbers("/proc/self/statm", statm, 2) != 2)
		return 0;
	return (double)statm[1] * (double)sysconf(_SC_PAGESIZE);
}

/*
 * The allocator's view of the heap: bytes handed out (in_use, large blocks
 * included) and bytes it holds free. Beside the resident set it tells a heap that
 * grows from one that is only fragmented (docs/performance.md, Soak). mallinfo2
 * walks each arena's bins under its lock: microseconds, once per scrape and label.
 */
static const char *const heap_states[] = { "in_use", "free" };

static double heap_bytes(void *arg, size_t i)
{
	(void)arg;
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
	struct mallinfo2 mi = mallinfo2();

	if (mi.arena == 0 && mi.hblkhd == 0)
		return NAN; /* another allocator (valgrind, ASan) has the heap */
	return i == 0 ? (double)(mi.uordblks + mi.hblkhd) : (double)mi.fordblks;
#else
	(void)i;
	return NAN; /* this libc does not say */
#endif
}

static double start_time(void *arg, size_t i)
{
	(void)i;
	return ((struct metrics *)arg)->start_time;
}

/* Fills the label value lists from the owners' X-macro lists. */
static void name_lists(struct metrics *m)
{
	static const bool skip[] = {
#define METRICS_SKIP_FLAG(id, name, is_skip) [id] = is_skip,
		MUTATE_OUTCOMES(METRICS_SKIP_FLAG)
#undef METRICS_SKIP_FLAG
	};

	for (size_t o = 0; o < MUTATE_N_OUTCOMES; o++) {
		m->outcome_names[o] = mutate_outcome_name(o);
		if (skip[o]) {
			m->skip_names[m->n_skips] = m->outcome_names[o];
			m->skip_outcome[m->n_skips++] = o;
		}
	}
	m->outcome_names[OUTCOME_ERROR] = "error";
	for (size_t r = 0; r < MUTATE_N_DENY; r++)
		m->deny_names[r] = mutate_deny_name(r);
	m->version_label[0] = m->version;
	m->sa_source[0] = "none";
}

/* The webhook's own families, in the order /metrics has always listed them. */
static int register_own(struct metrics *m)
{
	const char *const *results = metrics_result_names();
	const struct metrics_family own[] = {
		{ "piw_http_requests_total", "HTTP requests answered.",
		  METRICS_COUNTER, .samples = render_http, .arg = m },
		{ "piw_admission_duration_seconds",
		  "Time from a complete /mutate body to its answer.",
		  METRICS_HISTOGRAM, .samples = render_histogram, .arg = m },
		{ "piw_admissions_total", "Admission decisions by outcome.",
		  METRICS_COUNTER, "outcome", m->outcome_names, N_OUTCOMES,
		  m->outcomes, .arg = m },
		{ "piw_mutations_total", "Pods patched, per profile.",
		  METRICS_COUNTER, .samples = render_mutations, .arg = m },
		{ "piw_denials_total", "Denials by reason.", METRICS_COUNTER,
		  "reason", m->deny_names, MUTATE_N_DENY, m->denials,
		  .arg = m },
		{ "piw_skips_total", "Pods admitted untouched, by reason.",
		  METRICS_COUNTER, "reason", m->skip_names, m->n_skips,
		  .value = skips, .arg = m },
		{ "piw_inflight_requests", "Requests being processed.",
		  METRICS_GAUGE, .n = 1, .value = inflight, .arg = m },
		{ "piw_certificate_loaded",
		  "1 once a valid serving certificate is loaded.",
		  METRICS_GAUGE, .n = 1, .value = cert_loaded, .arg = m },
		{ "piw_certificate_expiry_timestamp_seconds",
		  "notAfter of the serving certificate.", METRICS_GAUGE, .n = 1,
		  .value = cert_not_after, .arg = m },
		{ "piw_profiles_loaded", "Profiles in the running set.",
		  METRICS_GAUGE, .n = 1, .value = profiles_loaded, .arg = m },
		{ "piw_service_account_source_ready",
		  "1 once the ServiceAccount source is synced.", METRICS_GAUGE,
		  "source", m->sa_source, 1, .value = sa_ready, .arg = m },
		{ "piw_service_accounts",
		  "ServiceAccounts known to the source.", METRICS_GAUGE, .n = 1,
		  .value = sa_count, .arg = m },
		{ "piw_certificate_reloads_total", "Certificate reloads.",
		  METRICS_COUNTER, "result", results, METRICS_N_RESULTS,
		  m->cert_reloads, .arg = m },
		{ "piw_profile_reloads_total", "Profile reloads (SIGHUP).",
		  METRICS_COUNTER, "result", results, METRICS_N_RESULTS,
		  m->profile_reloads, .arg = m },
		{ "piw_service_account_reloads_total",
		  "Reloads of the ServiceAccount files.", METRICS_COUNTER,
		  "result", results, METRICS_N_RESULTS, m->sa_reloads,
		  .arg = m },
		{ "piw_build_info", "Build information.", METRICS_GAUGE,
		  "version", m->version_label, 1, .value = one, .arg = m },
		{ "process_resident_memory_bytes", "Resident set size.",
		  METRICS_GAUGE, .n = 1, .value = resident, .arg = m },
		{ "piw_heap_bytes",
		  "malloc's heap: bytes in use and held free.", METRICS_GAUGE,
		  "state", heap_states, 2, .value = heap_bytes, .arg = m },
		{ "process_start_time_seconds", "Start time since the epoch.",
		  METRICS_GAUGE, .n = 1, .value = start_time, .arg = m },
	};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(own) / sizeof(own[0]); i++)
		rc = metrics_register(m, &own[i]);
	return rc;
}

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
	name_lists(m);
	if (register_own(m) != 0) {
		/* Only a mistake in the table above: the unit test registers it. */
		metrics_free(m);
		return DIAG_EINVAL;
	}
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
