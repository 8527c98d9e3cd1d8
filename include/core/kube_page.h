/*
 * kube_page: one page of a Kubernetes list (GET PATH?limit=N&continue=T), parsed
 * keeping only the members the caller names of each item. Pure: kube_list (at
 * the edge) fetches the pages, this reads them, so that the fuzzers and unit
 * tests exercise the same parser with the core alone.
 */
#ifndef PIW_KUBE_PAGE_H
#define PIW_KUBE_PAGE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "diag.h"
#include "json.h"

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
 * Parses one page: each item to req->each, the continue token into cont (""
 * on the last page) and remainingItemCount into *remaining (-1 when absent).
 * 0; DIAG_EPARSE for a page of the wrong shape; DIAG_ELIMIT for a continue
 * token longer than cont_size - 1; each()'s code when it stopped.
 */
int kube_list_page_parse(const char *body, size_t len,
			 const struct kube_list_request *req, char *cont,
			 size_t cont_size, long long *remaining,
			 size_t *ret_items, struct diag *d);

#endif
