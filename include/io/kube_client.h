/*
 * kube_client: GET requests to the Kubernetes API over libcurl (GnuTLS backend):
 * bounded whole-body GETs (list pages, single ServiceAccounts) and streaming GETs
 * (watches). Authentication by bearer token (re-read when its file changes) or client
 * certificate; the server is always verified.
 */
#ifndef PIW_KUBE_CLIENT_H
#define PIW_KUBE_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "kubeconfig.h"
#include "strbuf.h"

struct kube_client;

/*
 * Creates a client from a configuration (copied). Inline CA and client certificate
 * data are exposed to libcurl through memory files, never written to disk. Call
 * curl_global_init() before. 0, or DIAG_ECONFIG/DIAG_ENOMEM with a reason.
 */
int kube_client_new(const struct kube_config *cfg, struct kube_client **ret,
		    struct diag *d);

/* Frees it; no request may be running. Accepts NULL. */
void kube_client_free(struct kube_client *c);

/*
 * GETs path (with its query) into body (which bounds the size). *status gets the HTTP
 * status. Returns 0 when an HTTP answer arrived (any status), DIAG_EUNAVAIL with the
 * reason when none did (connection refused, TLS failure, timeout: DIAG_ETIMEOUT).
 */
int kube_get(struct kube_client *c, const char *path, long timeout_ms,
	     struct strbuf *body, long *status, struct diag *d);

/* Receives each line of a stream; non-zero stops the stream. */
typedef int (*kube_line_fn)(void *arg, const char *line, size_t len);

/*
 * Streams a GET: each newline-terminated line (at most max_line bytes) goes to on_line
 * as it arrives. The stream ends when the server closes it, when no byte arrived for
 * idle_ms, when on_line returns non-zero, or when *stop becomes true. Return values as
 * kube_get; *status is the HTTP status (the body of a non-200 answer goes to
 * error_body, bounded).
 */
int kube_stream(struct kube_client *c, const char *path, long idle_ms,
		size_t max_line, kube_line_fn on_line, void *arg,
		const atomic_bool *stop, long *status,
		struct strbuf *error_body, struct diag *d);

#endif
