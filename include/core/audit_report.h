/*
 * audit_report: the rows of `pod-identity-webhook audit` (every pod, and every
 * ServiceAccount with a configuration error) and their rendering as a
 * kubectl-like table or as JSON. Pure: text leaves through a callback.
 */
#ifndef PIW_AUDIT_REPORT_H
#define PIW_AUDIT_REPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "audit.h"

/* Every pod and every ServiceAccount with a configuration error, in order. */
struct audit_report;

enum audit_format { AUDIT_TABLE, AUDIT_JSON };

/* An empty report (free with audit_report_free). 0 or DIAG_ENOMEM. */
int audit_report_new(struct audit_report **ret);

/* Frees it; accepts NULL. */
void audit_report_free(struct audit_report *r);

/* Adds a pod's row (strings copied). 0 or DIAG_ENOMEM. */
int audit_report_add_pod(struct audit_report *r, const char *namespace,
			 const char *name, const char *service_account,
			 const struct audit_verdict *v);

/* Adds a ServiceAccount's row (strings copied). 0 or DIAG_ENOMEM. */
int audit_report_add_service_account(struct audit_report *r,
				     const char *namespace, const char *name,
				     const struct audit_verdict *v);

/* How many pods have status s. */
size_t audit_report_count(const struct audit_report *r, enum audit_status s);

/* True when a pod is missing, stale or denied (the command then exits 1). */
bool audit_report_failed(const struct audit_report *r);

/* Receives rendered text; non-zero stops rendering and is returned. */
typedef int (*audit_write_fn)(void *arg, const char *text, size_t len);

/*
 * Renders the report: a kubectl-like table (pods, then the ServiceAccounts with
 * errors), or the JSON document {"pods":[...],"serviceAccounts":[...]}. Text
 * goes to out() a line at a time. 0, DIAG_ENOMEM, or out()'s code.
 */
int audit_report_render(const struct audit_report *r, enum audit_format fmt,
			audit_write_fn out, void *arg);

#endif
