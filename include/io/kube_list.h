/*
 * kube_list: read-only, paginated lists of any Kubernetes collection (pods,
 * ServiceAccounts, ...) over kube_client: GET PATH?limit=N, then &continue=TOKEN
 * until the server says no more. Each item is handed to a callback as a parsed
 * object, keeping only the members the caller names, so that a page of pods
 * costs what the caller reads of them.
 */
#ifndef PIW_KUBE_LIST_H
#define PIW_KUBE_LIST_H

#include "diag.h"
#include "json.h"
#include "kube_client.h"
#include "kube_page.h"

/*
 * Lists every item of a collection, page by page. 0 once the last page was
 * read; DIAG_EUNAVAIL (or DIAG_ETIMEOUT) with the reason when the server could
 * not be reached or answered an error (401/403 name the missing permission,
 * 410 an expired continue token); DIAG_EPARSE for a page of the wrong shape;
 * each()'s code when it stopped the list.
 */
int kube_list(struct kube_client *c, const struct kube_list_request *req,
	      struct diag *d);

#endif
