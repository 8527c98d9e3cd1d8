/*
 * kube_list: the pages of one list are read one at a time (a page is parsed,
 * its items handed over, then freed), so listing 100,000 pods holds one page
 * in memory, never the collection. Pages follow the server's continue token;
 * a server that ignores limit (allowed: limit is advisory) is read the same
 * way.
 */
#include "kube_list.h"

#include <stdio.h>
#include <string.h>

#include "json.h"
#include "kube_event.h"
#include "kube_source.h"
#include "strbuf.h"

static int page_path(const struct kube_list_request *req, const char *cont,
		     struct strbuf *path)
{
	int rc = strbuf_addf(path, "%s?limit=%ld", req->path, req->page_size);

	if (rc == 0 && cont[0]) {
		rc = strbuf_adds(path, "&continue=");
		if (rc == 0)
			rc = kube_query_escape(path, cont);
	}
	return rc;
}

static int http_failure(const struct kube_list_request *req, long status,
			const struct strbuf *body, struct diag *d)
{
	char what[64], hint[96];
	const char *why = NULL;

	snprintf(what, sizeof(what), "list %s", req->what);
	if (status == 401 || status == 403) {
		snprintf(hint, sizeof(hint), "the caller needs list on %s",
			 req->what);
		why = hint;
	} else if (status == 410) {
		why = "the list took longer than the server keeps its "
		      "snapshot: run again, or narrow it with --namespace";
	}
	return kube_status_failure(d, what, status, strbuf_str(body), body->len,
				   why);
}

/*
 * Fetches and parses one page into body (one buffer for every page of a list,
 * grown once to the largest page); cont carries the continue token in and out.
 */
static int list_page(struct kube_client *c, const struct kube_list_request *req,
		     struct strbuf *body, char cont[KUBE_CONTINUE_MAX],
		     long long *remaining, size_t *ret_items, struct diag *d)
{
	struct strbuf path;
	long status = 0;
	int rc;

	*ret_items = 0;
	strbuf_reset(body);
	strbuf_init(&path, KUBE_CONTINUE_MAX * 3 + 512);
	rc = page_path(req, cont, &path)
		     ? diag_set(d, DIAG_ENOMEM, "out of memory")
		     : 0;
	if (rc == 0)
		rc = kube_get(c, path.buf, req->timeout_ms, body, &status, d);
	if (rc == 0 && status != 200)
		rc = http_failure(req, status, body, d);
	if (rc == 0)
		rc = kube_list_page_parse(strbuf_str(body), body->len, req,
					  cont, KUBE_CONTINUE_MAX, remaining,
					  ret_items, d);
	if (rc == DIAG_EPARSE || rc == DIAG_ELIMIT)
		diag_locate(d, req->path, 0);
	strbuf_free(&path);
	return rc;
}

int kube_list(struct kube_client *c, const struct kube_list_request *req,
	      struct diag *d)
{
	char cont[KUBE_CONTINUE_MAX] = "";
	struct strbuf body;
	size_t total = 0, n;
	long long remaining;
	int rc;

	strbuf_init(&body, req->max_page_bytes);
	do {
		rc = list_page(c, req, &body, cont, &remaining, &n, d);
		total += n;
		if (rc == 0 && req->on_page)
			req->on_page(req->arg, total, remaining);
	} while (rc == 0 && cont[0]);
	strbuf_free(&body);
	return rc;
}
