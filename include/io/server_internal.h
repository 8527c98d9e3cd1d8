/*
 * server_internal: what the files of the server module share, and nothing any
 * other module may include. server.c holds the lifecycle (the daemons, their
 * options, start, drain, stop); server_request.c libmicrohttpd's request
 * callbacks (state, body, completion); server_routes.c the routes, the early
 * refusals and the replies; server_offload.c the threads that answer admissions
 * needing network I/O; server_reaper.c connection tracking and the reaper;
 * server_tls.c the certificate callback, session tickets and response corking;
 * server_addr.c the listen address parser.
 */
#ifndef PIW_SERVER_INTERNAL_H
#define PIW_SERVER_INTERNAL_H

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "diag.h"
#include "metrics.h"
#include "server.h"
#include "server_route.h"
#include "strbuf.h"
#include "tls_store.h"
#include "webhook.h"

/*
 * A connection as the reaper sees it. libmicrohttpd resets its idle timer on every
 * byte, so a client trickling header bytes would never be cut; the reaper closes any
 * connection that has gone --request-timeout without a complete request.
 */
struct tracked {
	struct tracked *prev, *next;
	int fd;
	atomic_llong idle_since_ms; /* accepted, or the last request completed */
	atomic_bool busy; /* a request (headers complete) is in progress */
	bool cut;
	/* The fields below are the request thread's only (server_tls.c). */
	int sndbuf;	    /* SO_SNDBUF as last read (0: not yet) */
	size_t queued_most; /* the send queue is at most this long */
	bool mhd_corked;    /* libmicrohttpd may have left TCP_CORK on */
};

struct listener {
	struct server *server;
	enum metrics_listener which;
	struct MHD_Daemon *daemon;
	pthread_mutex_t lock; /* guards the tracked list */
	struct tracked *tracked;
};

/*
 * Threads that run admissions needing network I/O, so that a slow or unreachable
 * API server never holds up the libmicrohttpd threads, which serve every other
 * connection (cache hits keep their sub-millisecond answers meanwhile).
 */
#define OFFLOAD_THREADS 4

struct offload {
	pthread_t threads[OFFLOAD_THREADS];
	size_t n_threads;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct request *head, *tail;
	bool stopping;
};

struct server {
	struct listener https, plain;
	gnutls_datum_t
		ticket_key; /* session tickets: resumption without a handshake */
	const struct webhook *webhook;
	struct metrics *metrics;
	struct tls_store *tls;
	int64_t max_body;
	int64_t request_timeout_ms;
	int port;
	atomic_long inflight;
	atomic_bool draining;
	pthread_t reaper;
	bool reaper_started;
	atomic_bool stopping;
	struct offload offload; /* n_threads 0: every answer is computed inline */
};

struct request {
	enum server_route route;
	int early_status; /* non-zero: answered without (all of) the body */
	bool answered;	  /* the early answer is queued */
	size_t discarded; /* body bytes thrown away after a 413 */
	struct tracked *tracked;
	struct strbuf body;
	int64_t started_ms; /* clock_now_ms() at the first callback */
	/* A request whose answer needs network I/O (a live ServiceAccount lookup) is
	 * suspended and answered by the offload pool; these carry it there and back. */
	struct request *next_job;
	struct webhook_call call; /* decoded once, answered on either thread */
	struct MHD_Connection *conn;
	struct listener *listener;
	bool offloaded;
	atomic_bool reply_ready;
	struct http_reply reply;
};

/* ---- server_request.c: the libmicrohttpd callbacks ---- */

enum MHD_Result server_on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls);
void server_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode code);

/* ---- server_routes.c ---- */

/* The route of a URL on a listener (ROUTE_OTHER when it serves none). */
enum server_route server_find_route(const struct listener *l, const char *url);

/* The status to answer before reading any body, or 0 to go on. */
int server_early_status(struct server *s, struct MHD_Connection *conn,
			enum server_route route, const char *method);

/* Queues the answer for r->early_status. */
enum MHD_Result server_send_early(struct MHD_Connection *conn,
				  struct listener *l, const struct request *r);

/*
 * Answers a complete request on its route. A /mutate whose answer needs network
 * I/O is suspended and handed to the offload pool (r->offloaded set) instead.
 */
enum MHD_Result server_answer(struct MHD_Connection *conn, struct listener *l,
			      struct request *r);

/*
 * Called for an offloaded request once its connection is resumed: queues the
 * pool's reply (once), or waits (MHD_YES) while it is not ready.
 */
enum MHD_Result server_answer_resumed(struct MHD_Connection *conn,
				      struct listener *l, struct request *r);

/* ---- server_offload.c ---- */

/* Starts the pool when the ServiceAccount source may block (else none). */
void server_offload_start(struct server *s);

/* Queues a suspended request (no allocation: the request carries its links). */
void server_offload_submit(struct server *s, struct request *r);

/* Finishes the queued work (each request is resumed) and joins the threads. */
void server_offload_stop(struct server *s);

/* ---- server_reaper.c ---- */

/* MHD_OPTION_NOTIFY_CONNECTION (cls: the listener): tracks the connection. */
void server_on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code);

/* The tracking entry of a connection, or NULL when it is not tracked. */
struct tracked *server_tracked_of(struct MHD_Connection *conn);

/* The reaper thread (arg: the server): cuts idle connections until stopping. */
void *server_reaper_main(void *arg);

/* ---- server_tls.c ---- */

/*
 * Makes store the one the certificate callback serves from (NULL: none). One
 * server per process: GnuTLS's callback has no user argument.
 */
void server_tls_serve(struct tls_store *store);

/* MHD_OPTION_HTTPS_CERT_CALLBACK: the current certificate of the store. */
int server_tls_certificate(gnutls_session_t session,
			   const gnutls_datum_t *req_ca_dn, int n_req_ca_dn,
			   const gnutls_pk_algorithm_t *pk_algos,
			   int n_pk_algos, gnutls_pcert_st **pcerts,
			   unsigned int *n_pcerts, gnutls_privkey_t *key);

/* Turns session tickets on for a new HTTPS connection (before its handshake). */
void server_tls_enable_tickets(struct listener *l, struct MHD_Connection *conn);

/*
 * libmicrohttpd 0.9.75 hands GnuTLS the header block and the body of a response
 * in two calls, which made two TLS records (two encryptions, two writes, and a
 * client that decrypts twice). server_tls_cork(), called just before a response
 * is queued, corks the session so that both calls only buffer; the completion
 * callback's server_tls_uncork() sends them as one record (responses up to
 * GnuTLS's 16 KB record size). A response is corked only when the socket's send
 * buffer has room for all of it, so that the flush is taken whole: a client that
 * stopped reading gets the uncorked path, where libmicrohttpd waits for it
 * without holding a thread. Should the flush still not be taken at once, the
 * uncork waits up to --request-timeout, then cuts the connection. The plain
 * listener and sessions not corked are left alone. The common reply costs no
 * system call besides its write: the send queue is looked at only when what was
 * written since the last look could fill it, and the flush is pushed only on a
 * socket libmicrohttpd may have corked.
 */
void server_tls_cork(const struct listener *l, struct MHD_Connection *conn,
		     size_t body_len);
void server_tls_uncork(const struct listener *l, struct MHD_Connection *conn);

/* ---- server_addr.c ---- */

struct bind_addr {
	struct sockaddr_storage ss;
	bool any; /* empty host: every interface, dual stack if available */
	bool ipv6;
	int port;
};

/* Parses [HOST]:PORT (HOST an IP literal or empty). 0 or DIAG_EINVAL with d set. */
int server_resolve(const char *address, struct bind_addr *out, struct diag *d);

#endif
