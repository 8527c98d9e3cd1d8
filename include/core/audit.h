/*
 * audit: judging pods that already run against what the webhook would do to
 * them now, and the report `pod-identity-webhook audit` prints. Pure: pods and
 * ServiceAccounts come in as parsed objects (the command lists them from the
 * cluster), text goes out through a callback.
 */
#ifndef PIW_AUDIT_H
#define PIW_AUDIT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

struct review_policy;
struct service_account;

/* The statuses, declared once: the enum and audit_status_name() come from it. */
#define AUDIT_STATUSES(X)                                                      \
	X(OK, "ok")	      /* holds all it should */                        \
	X(MISSING, "missing") /* would get an identity now but holds none */   \
	X(STALE, "stale")     /* holds injected values that differ from now */ \
	X(DENIED, "denied") /* its ServiceAccount has a configuration error */ \
	X(SKIPPED, "skipped") /* every matching profile was skipped */         \
	X(NONE, "none")	      /* no profile applies, nothing injected */

enum audit_status {
#define AUDIT_ENUM_ENTRY(name, text) AUDIT_##name,
	AUDIT_STATUSES(AUDIT_ENUM_ENTRY)
#undef AUDIT_ENUM_ENTRY
		AUDIT_N_STATUSES
};

struct audit_verdict {
	enum audit_status status;
	char profiles[256]; /* the profiles that apply now, comma-separated */
	char reason[512];   /* why (empty for ok and none without one) */
};

/* "ok", "missing", ... */
const char *audit_status_name(enum audit_status s);

/*
 * Judges one running pod (a Pod object as listed; borrowed) whose
 * ServiceAccount is sa (NULL: it does not exist) with the decision the webhook
 * takes on a CREATE under policy (profiles, settings, identity map: review.h),
 * then compares what the pod holds with what it would get. 0, or DIAG_ENOMEM /
 * DIAG_ELIMIT when no verdict could be made.
 */
int audit_judge_pod(const cJSON *pod, const struct service_account *sa,
		    const struct review_policy *policy, struct audit_verdict *v,
		    struct diag *d);

/*
 * Judges a ServiceAccount alone: AUDIT_DENIED with the message when a pod of
 * it would be denied for its configuration (judged on a minimal pod with one
 * container), AUDIT_OK when a profile would apply, else AUDIT_NONE. Return
 * values as audit_judge_pod.
 */
int audit_judge_service_account(const struct service_account *sa,
				const struct review_policy *policy,
				struct audit_verdict *v, struct diag *d);

#endif
