/*
 * server: the HTTPS listener (/mutate, /healthz, /readyz) and the plain-HTTP metrics
 * listener (/metrics, /healthz, /readyz) on libmicrohttpd with GnuTLS, with request
 * limits, certificate hot reload (through tls_store) and a graceful drain.
 */
#ifndef PIW_SERVER_H
#define PIW_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "metrics.h"
#include "tls_store.h"
#include "webhook.h"

struct server_options {
	const char *listen;	     /* [HOST]:PORT */
	const char *metrics_listen;  /* [HOST]:PORT, or "off" */
	const char *tls_min_version; /* "1.2" or "1.3" */
	int64_t max_body_bytes;
	int64_t max_connections;
	int64_t threads; /* HTTPS request threads; 0: server_worker_threads() */
	int64_t request_timeout_ms;
};

struct server;

/*
 * The HTTPS listener's request threads: `threads` when positive, else
 * SERVER_THREADS_PER_CPU per CPU this process may use (its affinity mask, capped by
 * a cgroup CPU quota). The metrics listener runs one: its answers never block.
 */
#define SERVER_THREADS_PER_CPU 3
unsigned server_worker_threads(int64_t threads);

/*
 * Starts both listeners. The webhook, store and metrics must outlive the server. Only
 * one server may run per process (GnuTLS's certificate callback has no argument, so
 * the store is held in a file-scope variable). DIAG_EIO with the reason when an
 * address cannot be bound.
 */
int server_start(const struct server_options *opts,
		 const struct webhook *webhook, struct tls_store *tls,
		 struct metrics *metrics, struct server **ret, struct diag *d);

/* The port the HTTPS listener is bound to. */
int server_port(const struct server *s);

/*
 * Starts the shutdown: /readyz answers 503 and responses carry Connection: close.
 * The listeners keep accepting until server_quiesce().
 */
void server_set_draining(struct server *s);

/* Stops accepting HTTPS connections (the listening socket is closed). */
void server_quiesce(struct server *s);

/* Waits until no request is in flight, at most timeout_ms; whether it got there. */
bool server_drain(struct server *s, int64_t timeout_ms);

/* Requests being processed now. */
long server_inflight(const struct server *s);

/* Stops both listeners, closes every connection and frees the server. */
void server_stop(struct server *s);

#endif
