/*
 * kube_list: read-only, paginated lists of any Kubernetes collection (pods,
 * ServiceAccounts, ...) over kube_client: GET PATH?limit=N, then &continue=TOKEN
 * until the server says no more. Each item is handed to a callback as a parsed
 * object, keeping only the members the caller names, so that a page of pods
 * costs what the caller reads of them.
 */
#ifndef PIW_KUBE_LIST_H
#define PIW_KUBE_LIST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "diag.h"
#include "json.h"
#include "kube_client.h"

/* Receives one item (borrowed, valid during the call); non-zero stops the list. */
typedef int (*kube_list_item_fn)(void *arg, const cJSON *item);

/* Told after each page: items so far, and the server's estimate of what remains
 * (-1 when it gave none). */
typedef void (*kube_list_page_fn)(void *arg, size_t items, long long remaining);

struct kube_list_request {
	const char *path; /* collection path without a query: /api/v1/pods */
	const char *what; /* for messages: "pods" */
	long page_size;	  /* limit= of each page */
	long timeout_ms;  /* per page */
	size_t max_page_bytes;
	const struct json_keep *item_members; /* kept of each item (NULL: all) */
	kube_list_item_fn each;
	kube_list_page_fn on_page; /* may be NULL */
	void *arg;		   /* for both callbacks */
};

/*
 * Lists every item of a collection, page by page. 0 once the last page was
 * read; DIAG_EUNAVAIL (or DIAG_ETIMEOUT) with the reason when the server could
 * not be reached or answered an error (401/403 name the missing permission,
 * 410 an expired continue token); DIAG_EPARSE for a page of the wrong shape;
 * each()'s code when it stopped the list.
 */
int kube_list(struct kube_client *c, const struct kube_list_request *req,
	      struct diag *d);

/*
 * Parses one page (pure, for tests): each item to req->each, the continue
 * token into cont ("" on the last page) and remainingItemCount into
 * *remaining (-1 when absent). Return values as kube_list.
 */
int kube_list_page_parse(const char *body, size_t len,
			 const struct kube_list_request *req, char *cont,
			 size_t cont_size, long long *remaining,
			 size_t *ret_items, struct diag *d);

#endif
