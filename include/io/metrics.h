/*
 * metrics: a small registry of Prometheus metric families and the webhook's own
 * counters, gauges and admission latency histogram. Counters are atomics updated
 * lock-free from request threads; modules register their families (name, help,
 * type, label values from their own X-macro list, and their counters or a value
 * callback) and metrics_render() writes every family in the Prometheus text format
 * in one code path. The names are listed in docs/configuration.md (a test checks
 * them against /metrics).
 *
 * Registration happens at startup, before the listeners serve, and unregistration
 * after they stopped: the family table is read without a lock while serving.
 */
#ifndef PIW_METRICS_H
#define PIW_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mutate.h"
#include "server_route.h"
#include "strbuf.h"

struct metrics;

/* The result label of reload and list counters, success first (its order). */
#define METRICS_RESULTS(X)            \
	X(METRICS_SUCCESS, "success") \
	X(METRICS_FAILURE, "failure")

#define METRICS_RESULT_ID(id, name) id,
enum metrics_result { METRICS_RESULTS(METRICS_RESULT_ID) METRICS_N_RESULTS };
#undef METRICS_RESULT_ID

static inline enum metrics_result metrics_result_of(bool ok)
{
	return ok ? METRICS_SUCCESS : METRICS_FAILURE;
}

/* The label values of enum metrics_result, METRICS_N_RESULTS of them. */
const char *const *metrics_result_names(void);

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

/*
 * One family. Its samples come from exactly one of counters, value or samples:
 * with a label, one sample per label value (n values); without one (label NULL,
 * values NULL, n 1), one sample without labels.
 */
struct metrics_family {
	const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]* */
	const char *help; /* one line */
	enum metrics_type type;
	const char *label;	   /* the label's name, or NULL */
	const char *const *values; /* the label's values (read at each render) */
	size_t n;
	const atomic_ullong *counters;	      /* n counters, one per value */
	double (*value)(void *arg, size_t i); /* the value of sample i */
	/* Writes the samples itself with metrics_sample(): open label sets, more
	 * than one label, histograms. 0, DIAG_ENOMEM or DIAG_ELIMIT. */
	int (*samples)(void *arg, struct strbuf *out);
	void *arg; /* for value and samples; also the owner (metrics_unregister) */
};

/* Creates the registry with the webhook's own families. 0, DIAG_ENOMEM, or
 * DIAG_EINVAL if its own table were wrong (the unit test would fail first).
 * `version` goes into piw_build_info. */
int metrics_new(const char *version, struct metrics **ret);
void metrics_free(struct metrics *m);

/*
 * Adds a family (copied; the strings, values and counters it points to must outlive
 * the registration), rendered after those registered before it. DIAG_EINVAL when
 * its name is already registered, a name or label is not a valid Prometheus name,
 * a label value repeats, or it has not exactly one source of samples; DIAG_ELIMIT
 * when the table is full.
 */
int metrics_register(struct metrics *m, const struct metrics_family *f);

/* Removes every family registered with arg == owner. */
void metrics_unregister(struct metrics *m, const void *owner);

/*
 * Appends one sample line: name, suffix ("" or e.g. "_bucket"), n_labels pairs
 * (labels[2i] the name, labels[2i+1] the value, escaped here) and the value.
 * 0, DIAG_ENOMEM or DIAG_ELIMIT.
 */
int metrics_sample(struct strbuf *out, const char *name, const char *suffix,
		   const char *const *labels, size_t n_labels, double value);

/* One HTTP answer on a route (its status code, unusual ones count as "other"). */
void metrics_http(struct metrics *m, enum metrics_listener listener,
		  enum server_route route, int code);

/* Requests being processed: +1 when one starts, -1 when it ends. */
void metrics_inflight(struct metrics *m, int delta);

/*
 * One admission decision: its outcome (or, with error, an "error" answer whatever
 * the outcome), its duration, the applied profiles (when patched) and the denial
 * class (MUTATE_DENY_NONE when not denied).
 */
void metrics_admission(struct metrics *m, enum mutate_outcome outcome,
		       bool error, double seconds, const char *const *profiles,
		       size_t n_profiles, enum mutate_deny deny);

void metrics_certificate(struct metrics *m, bool loaded, int64_t not_after);
void metrics_certificate_reload(struct metrics *m, bool ok);
void metrics_profiles(struct metrics *m, size_t loaded);
void metrics_profile_reload(struct metrics *m, bool ok);

/* The ServiceAccount source: its name (a string that outlives m), readiness and
 * how many it knows. */
void metrics_sa_source(struct metrics *m, const char *source, bool ready,
		       size_t count);
void metrics_sa_reload(struct metrics *m, bool ok);

/* Appends every family in the Prometheus text format. 0, DIAG_ENOMEM or
 * DIAG_ELIMIT. */
int metrics_render(struct metrics *m, struct strbuf *out);

#endif
