/*
 * kube_event: parsing what the Kubernetes API sends about ServiceAccounts: pages of a
 * list and the lines of a watch stream. Pure (bytes in, ServiceAccounts out), so the
 * parsers can be fuzzed and tested without a server.
 */
#ifndef PIW_KUBE_EVENT_H
#define PIW_KUBE_EVENT_H

#include <stddef.h>

#include "diag.h"
#include "service_account.h"

#define KUBE_RV_MAX	  64   /* resourceVersion, with its NUL */
#define KUBE_CONTINUE_MAX 2048 /* a list's continue token, with its NUL */

enum kube_event_type {
	KUBE_EVENT_ADDED,
	KUBE_EVENT_MODIFIED,
	KUBE_EVENT_DELETED,
	KUBE_EVENT_BOOKMARK,
	KUBE_EVENT_ERROR, /* a Status object; error_code says which (410: Gone) */
};

struct kube_event {
	enum kube_event_type type;
	struct service_account *sa; /* owned; ADDED, MODIFIED and DELETED only */
	char resource_version[KUBE_RV_MAX]; /* "" when absent */
	int error_code;
	char error_reason[64];
};

/*
 * Parses one watch line ({"type":..., "object":...}). Annotations are filtered with
 * keep (NULL keeps all). DIAG_EPARSE with a reason for anything else, including an
 * unknown type or an object that is not a ServiceAccount. On success the caller
 * frees ev->sa (kube_event_clear).
 */
int kube_event_parse(const char *line, size_t len, sa_keep_fn keep,
		     void *keep_arg, struct kube_event *ev, struct diag *d);

/* Frees what an event holds. */
void kube_event_clear(struct kube_event *ev);

/* Receives each ServiceAccount of a list page (ownership passes; 0 to go on). */
typedef int (*kube_item_fn)(void *arg, struct service_account *sa);

/*
 * Parses one page of GET /api/v1/serviceaccounts: each item goes to each(); the
 * list's resourceVersion and continue token are copied out ("" when absent).
 * Stops at the first error (DIAG_EPARSE for a wrong shape, or each()'s code).
 */
int kube_list_parse(const char *body, size_t len, sa_keep_fn keep,
		    void *keep_arg, kube_item_fn each, void *each_arg,
		    char rv[KUBE_RV_MAX], char cont[KUBE_CONTINUE_MAX],
		    struct diag *d);

/*
 * Reads a Status object's code and reason (for an error answer); 0 and "" when the
 * body is not a Status.
 */
int kube_status_code(const char *body, size_t len, char *reason,
		     size_t reason_size);

/*
 * Sets d from a non-2xx answer (body: its Status, if any) and returns
 * DIAG_EUNAVAIL: "<what>: HTTP <status> <reason>", then " (<hint>)" when hint
 * is not NULL (what the operator can do about it).
 */
int kube_status_failure(struct diag *d, const char *what, long status,
			const char *body, size_t len, const char *hint);

#endif
