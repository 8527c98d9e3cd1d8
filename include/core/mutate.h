/*
 * mutate: the pure decision. (Pod, namespace, ServiceAccount, profiles,
 * settings) -> allow or deny, a JSON Patch, warnings and the applied profiles.
 * No I/O, no globals, no logging: the rules of ../shared/providers-reference.md
 * and docs/profiles.md.
 */
#ifndef PIW_MUTATE_H
#define PIW_MUTATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "bounds.h"
#include "diag.h"
#include "json.h"
#include "patch.h"
#include "strbuf.h"

struct profile_set;
struct service_account;
struct settings;

/* The annotation that records which profiles were applied to a pod. */
#define MUTATE_PROFILES_ANNOTATION "pod-identity-webhook/profiles"

/*
 * How an admission ended: one list, giving enum mutate_outcome, its stable name
 * (mutate_outcome_name, the log line and the piw_admissions_total label) and
 * whether it counts as a skip (piw_skips_total: admitted untouched).
 */
#define MUTATE_OUTCOMES(X)                                           \
	/* allowed with a non-empty patch */                         \
	X(MUTATE_PATCHED, "patched", 0)                              \
	/* profiles apply but the pod already has everything */      \
	X(MUTATE_UNCHANGED, "unchanged", 0)                          \
	/* no profile's trigger is on the ServiceAccount */          \
	X(MUTATE_NO_MATCH, "no-match", 1)                            \
	/* every matching profile was skipped by label/annotation */ \
	X(MUTATE_SKIPPED, "skipped", 1)                              \
	/* configuration error or reserved-name conflict */          \
	X(MUTATE_DENIED, "denied", 0)                                \
	/* the pod has a shape we cannot read: admitted as is */     \
	X(MUTATE_NOT_UNDERSTOOD, "not-understood", 1)                \
	/* admitted as is, with a warning */                         \
	X(MUTATE_SA_NOT_FOUND, "sa-not-found", 1)                    \
	/* not a Pod CREATE: admitted untouched (set by callers) */  \
	X(MUTATE_NOT_POD_CREATE, "not-pod-create", 1)

#define MUTATE_OUTCOME_ENUM(id, name, skip) id,
enum mutate_outcome { MUTATE_OUTCOMES(MUTATE_OUTCOME_ENUM) MUTATE_N_OUTCOMES };
#undef MUTATE_OUTCOME_ENUM

/*
 * The class of a pod's first denial: one list, giving enum mutate_deny and its
 * stable name (mutate_deny_name, the piw_denials_total label).
 */
#define MUTATE_DENY_REASONS(X)                            \
	X(MUTATE_DENY_INVALID_VALUE, "invalid-value")     \
	X(MUTATE_DENY_VOLUME_CONFLICT, "volume-conflict") \
	X(MUTATE_DENY_MOUNT_CONFLICT, "mount-conflict")

#define MUTATE_DENY_ENUM(id, name) id,
enum mutate_deny {
	MUTATE_DENY_NONE = -1, /* not denied */
	MUTATE_DENY_REASONS(MUTATE_DENY_ENUM) MUTATE_N_DENY
};
#undef MUTATE_DENY_ENUM

struct mutate_input {
	const cJSON *pod;      /* the Pod object (borrowed) */
	const char *namespace; /* the request's namespace; NULL: the pod's */
	const struct service_account
		*sa; /* NULL: the ServiceAccount was not found */
};

struct mutation {
	bool allowed;
	enum mutate_outcome outcome;
	struct strbuf message; /* deny message (or the not-understood reason) */
	enum mutate_deny deny_reason; /* the first denial's class, or NONE */
	char *warnings[BOUND_WARNINGS + 1];
	size_t n_warnings;
	const char *
		applied[BOUND_PROFILES]; /* names, borrowed from the profile set */
	size_t n_applied;
	char skip_reason[160]; /* why profiles were skipped, for the log line */
	struct patch patch;
};

/* Prepares an empty result (allocates nothing). */
void mutation_init(struct mutation *m);

/* Frees what a result holds; it can be initialised again. */
void mutation_free(struct mutation *m);

/* Room for mutation_applied_list(): every profile name and a comma after each. */
#define MUTATION_APPLIED_LIST_SIZE (BOUND_PROFILES * (BOUND_PROFILE_NAME + 1))

/*
 * Writes the names of the profiles applied, comma-separated ("stackit,aws"), into
 * out (size bytes, truncated and NUL-terminated; "" when none): the value of the
 * pod's profiles annotation and of the log line's "profiles". Returns the length.
 */
size_t mutation_applied_list(const struct mutation *m, char *out, size_t size);

/*
 * Decides for one pod. m must be initialised. Returns 0 whenever a decision was
 * made (allowed or denied, see m->allowed and m->outcome); a negative code
 * (DIAG_ENOMEM, DIAG_ELIMIT) only when the decision could not be computed:
 * callers answer 500.
 */
int mutate_pod(const struct mutate_input *in,
	       const struct profile_set *profiles,
	       const struct settings *settings, struct mutation *m,
	       struct diag *d);

/*
 * The ServiceAccount a pod runs as: spec.serviceAccountName, or "default" when
 * it is empty or absent (and when the pod cannot be read).
 */
const char *mutate_service_account_name(const cJSON *pod);

/*
 * The pod's name for messages and logs: metadata.name, else generateName, else
 * "".
 */
const char *mutate_pod_name(const cJSON *pod);

/*
 * Every member of a Pod that mutate_pod() and the two functions above read: a
 * pod parsed with only these (json_parse_with) mutates exactly as the whole
 * one does. Add a member here when the mutator starts reading it.
 */
extern const struct json_keep mutate_pod_members[];

/*
 * Reads the pod as mutate_pod() does when a profile applies, without deciding:
 * 0 when it has the shape of a Pod, DIAG_EPARSE with the reason ("spec is
 * missing or not an object", ...) when mutate_pod() would find it
 * not-understood, DIAG_ENOMEM. For offline tools, which must refuse such
 * input; the server admits it with a warning instead.
 */
int mutate_check_pod(const cJSON *pod, struct diag *d);

/* A stable lower-case name for an outcome ("patched", "denied", ...). */
const char *mutate_outcome_name(enum mutate_outcome outcome);

/* The stable name of a denial class ("invalid-value", ...); NULL for NONE. */
const char *mutate_deny_name(enum mutate_deny reason);

/* Adds a warning (copied, shortened to BOUND_WARNING_BYTES) past BOUND_WARNINGS it
 * counts in a final "... more" line. 0 or DIAG_ENOMEM. */
int mutation_warn(struct mutation *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
