/*
 * metrics: the webhook's counters, gauges and the admission latency histogram, updated
 * lock-free from request threads and rendered in the Prometheus text format. The
 * names are listed in docs/configuration.md (a test checks them against /metrics).
 */
#ifndef PIW_METRICS_H
#define PIW_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "strbuf.h"

struct metrics;

enum metrics_listener { METRICS_LISTENER_HTTPS, METRICS_LISTENER_METRICS };

/* Creates the registry. 0 or DIAG_ENOMEM. `version` goes into piw_build_info. */
int metrics_new(const char *version, struct metrics **ret);
void metrics_free(struct metrics *m);

/* One HTTP answer: path is the request path (unknown paths count as "other"). */
void metrics_http(struct metrics *m, enum metrics_listener listener,
		  const char *path, int code);

/* Requests being processed: +1 when one starts, -1 when it ends. */
void metrics_inflight(struct metrics *m, int delta);

/*
 * One admission decision: outcome name (mutate_outcome_name), its duration, the
 * applied profiles (when patched) and the denial class (when denied).
 */
void metrics_admission(struct metrics *m, const char *outcome, double seconds,
		       const char *const *profiles, size_t n_profiles,
		       const char *deny_reason);

void metrics_certificate(struct metrics *m, bool loaded, int64_t not_after);
void metrics_certificate_reload(struct metrics *m, bool ok);
void metrics_profiles(struct metrics *m, size_t loaded);
void metrics_profile_reload(struct metrics *m, bool ok);

/* The ServiceAccount source: its name, readiness and how many it knows. */
void metrics_sa_source(struct metrics *m, const char *source, bool ready,
		       size_t count);
void metrics_sa_reload(struct metrics *m, bool ok);

/*
 * Registers a function that appends source-specific metrics (e.g. the Kubernetes
 * watch) when rendering. One at a time; NULL removes it.
 */
typedef int (*metrics_extra_fn)(void *arg, struct strbuf *out);
void metrics_set_extra(struct metrics *m, metrics_extra_fn fn, void *arg);

/* Appends every metric in the Prometheus text format. 0, DIAG_ENOMEM or DIAG_ELIMIT. */
int metrics_render(struct metrics *m, struct strbuf *out);

#endif
