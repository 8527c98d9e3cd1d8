/*
 * sa_source: where `serve` finds ServiceAccounts. One small interface, two sources:
 * files (sa_files, --service-accounts-dir) and the Kubernetes API (kube).
 */
#ifndef PIW_SA_SOURCE_H
#define PIW_SA_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "service_account.h"

enum sa_lookup {
	SA_LOOKUP_FOUND,
	SA_LOOKUP_NOT_FOUND, /* it does not exist: admit with a warning */
	SA_LOOKUP_UNAVAILABLE, /* cannot tell (API server unreachable): answer 500 */
	SA_LOOKUP_WOULD_BLOCK, /* lookup_cached only: a network lookup is needed */
};

struct sa_source {
	const char *name; /* "files" or "kubernetes", for metrics and logs */

	/*
	 * Finds namespace/name. On SA_LOOKUP_FOUND *ret_sa is a copy the caller owns
	 * (sa_free). On SA_LOOKUP_UNAVAILABLE d says why. Thread-safe.
	 */
	enum sa_lookup (*lookup)(struct sa_source *s, const char *namespace,
				 const char *name,
				 struct service_account **ret_sa,
				 struct diag *d);

	/*
	 * Like lookup, but never waits on the network: SA_LOOKUP_WOULD_BLOCK when only a
	 * live lookup could answer. Thread-safe.
	 */
	enum sa_lookup (*lookup_cached)(struct sa_source *s,
					const char *namespace, const char *name,
					struct service_account **ret_sa,
					struct diag *d);

	/* Whether lookup() may wait on the network (the server then runs it off its
	 * request threads). */
	bool blocking;

	/* Whether the source has completed its first full load. Thread-safe. */
	bool (*ready)(struct sa_source *s);

	/* How many ServiceAccounts it knows. Thread-safe. */
	size_t (*count)(struct sa_source *s);

	/*
	 * Starts the background work (the Kubernetes list and watch). serve calls it
	 * once the listeners are bound, so a process that cannot serve (its port in
	 * use) has sent the API server nothing. May be NULL.
	 */
	int (*start)(struct sa_source *s, struct diag *d);

	/* Periodic work from the main loop (files: reload on change). May be NULL. */
	void (*poll)(struct sa_source *s);

	/*
	 * The profiles were reloaded: the annotations worth keeping may differ (the
	 * Kubernetes cache relists). May be NULL.
	 */
	void (*profiles_changed)(struct sa_source *s);

	/* Stops threads and frees everything. */
	void (*free)(struct sa_source *s);
};

#endif
