/*
 * server: libmicrohttpd daemons and the request lifecycle.
 *
 * Both listeners run a poll() thread pool sized to the CPUs. (Not epoll: libmicrohttpd
 * 0.9.75's epoll mode spins at 100 % of a CPU while a TLS handshake waits on its
 * client; an admission webhook has few connections, where poll costs nothing.)
 * Requests follow
 * libmicrohttpd's pattern: state is created on the first callback (headers complete),
 * where anything that can be refused without the body is refused (404, 405, 415, 413
 * on a declared length); body chunks are appended into a bounded buffer; the work is
 * done on the final callback; the state is freed in the completion callback, which
 * also ends the request's "in flight" count that the drain waits on.
 *
 * TLS: only TLS 1.2/1.3 with forward-secret AEAD suites. The certificate comes from
 * tls_store through GnuTLS's retrieve callback on every handshake, which is what lets
 * a rotated certificate be served without a restart. That callback has no user
 * argument, hence the one file-scope variable below.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "fileio.h"
#include "log.h"
#include "mem.h"
#include "strbuf.h"
#include "strutil.h"

/* X25519 first: OpenSSL and Go clients send an X25519 key share, and preferring
 * another group would cost them a HelloRetryRequest round trip per handshake. */
#define PRIORITY_BASE                                                   \
	"NORMAL:-VERS-ALL:-RSA:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"  \
	"+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:" \
	"+GROUP-SECP384R1:+GROUP-SECP521R1:%SERVER_PRECEDENCE"
#define CONNECTION_MEMORY (32 * 1024) /* header bytes a connection may buffer */

static struct tls_store *served_store; /* read by the GnuTLS callback */

enum route {
	ROUTE_MUTATE,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_OTHER
};
static const char *const route_paths[] = { "/mutate", "/healthz", "/readyz",
					   "/metrics", "other" };

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
	enum route route;
	int early_status; /* non-zero: answered without (all of) the body */
	bool answered;	  /* the early answer is queued */
	size_t discarded; /* body bytes thrown away after a 413 */
	struct tracked *tracked;
	struct strbuf body;
	struct timespec started;
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

/* ---- TLS ---- */

static int retrieve_certificate(gnutls_session_t session,
				const gnutls_datum_t *req_ca_dn,
				int n_req_ca_dn,
				const gnutls_pk_algorithm_t *pk_algos,
				int n_pk_algos, gnutls_pcert_st **pcerts,
				unsigned int *n_pcerts, gnutls_privkey_t *key)
{
	(void)session;
	(void)req_ca_dn;
	(void)n_req_ca_dn;
	(void)pk_algos;
	(void)n_pk_algos;
	return tls_store_current(served_store, pcerts, n_pcerts, key);
}

/* ---- replies ---- */

/* What a reply carries besides its status and body. */
struct reply_extra {
	const char *allow; /* the Allow header, or NULL */
	bool close;	   /* close the connection after this reply */
};

#define NO_EXTRA ((struct reply_extra){ NULL, false })

static enum MHD_Result send_reply(struct MHD_Connection *conn,
				  struct listener *l, enum route route,
				  int status, const char *type, char *body,
				  size_t len, struct reply_extra extra)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = body ? MHD_create_response_from_buffer_with_free_callback(
			      len, body, mem_free)
		    : MHD_create_response_from_buffer(0, (void *)"",
						      MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		mem_free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (extra.allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
					extra.allow);
	if (extra.close || atomic_load(&l->server->draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	metrics_http(l->server->metrics, l->which, route_paths[route], status);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn,
				 struct listener *l, enum route route,
				 int status, const char *text,
				 struct reply_extra extra)
{
	char *copy = mem_strdup(text);

	if (copy == NULL)
		return MHD_NO;
	return send_reply(conn, l, route, status, "text/plain; charset=utf-8",
			  copy, strlen(copy), extra);
}

/* ---- routing and early checks ---- */

static enum route find_route(const struct listener *l, const char *url)
{
	if (strcmp(url, "/healthz") == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(url, "/readyz") == 0)
		return ROUTE_READYZ;
	if (l->which == METRICS_LISTENER_HTTPS && strcmp(url, "/mutate") == 0)
		return ROUTE_MUTATE;
	if (l->which == METRICS_LISTENER_METRICS &&
	    strcmp(url, "/metrics") == 0)
		return ROUTE_METRICS;
	return ROUTE_OTHER;
}

static bool is_json_type(const char *type)
{
	size_t n = strcspn(type, "; \t");

	return n == strlen("application/json") &&
	       strncasecmp(type, "application/json", n) == 0;
}

struct framing {
	unsigned content_lengths;
	bool transfer_encoding;
};

static enum MHD_Result count_framing_header(void *cls, enum MHD_ValueKind kind,
					    const char *key, const char *value)
{
	struct framing *f = cls;

	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_lengths++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		f->transfer_encoding = true;
	return MHD_YES;
}

/*
 * Two Content-Length headers, or one with Transfer-Encoding, leave the body's end
 * open to interpretation: the stuff of request smuggling (RFC 9112, 6.1 and 6.3).
 * libmicrohttpd 0.9.75 picks one reading and keeps the connection; we refuse the
 * request and close it.
 */
static bool ambiguous_framing(struct MHD_Connection *conn)
{
	struct framing f = { 0, false };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing_header,
				  &f);
	return f.content_lengths > 1 ||
	       (f.content_lengths == 1 && f.transfer_encoding);
}

/* The status to answer before reading any body, or 0 to go on. */
static int early_status(struct server *s, struct MHD_Connection *conn,
			enum route route, const char *method)
{
	const char *type, *length;
	int64_t declared;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	if (ambiguous_framing(conn))
		return 400;
	if (route == ROUTE_OTHER)
		return 404;
	if (route != ROUTE_MUTATE)
		return get ? 0 : 405;
	if (strcmp(method, "POST") != 0)
		return 405;
	type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_CONTENT_TYPE);
	if (type == NULL || !is_json_type(type))
		return 415;
	length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (length && (str_to_i64(length, 0, s->max_body, &declared) != 0))
		return 413;
	return 0;
}

static enum MHD_Result send_early(struct MHD_Connection *conn,
				  struct listener *l, const struct request *r)
{
	const char *allow = r->route == ROUTE_MUTATE ? "POST" : "GET, HEAD";

	switch (r->early_status) {
	case 404:
		return send_text(conn, l, r->route, 404, "not found\n",
				 NO_EXTRA);
	case 405:
		return send_text(conn, l, r->route, 405, "method not allowed\n",
				 (struct reply_extra){ allow, false });
	case 415:
		return send_text(
			conn, l, r->route, 415,
			"unsupported media type: send application/json\n",
			NO_EXTRA);
	case 400:
		return send_text(conn, l, r->route, 400,
				 "bad request: ambiguous body length (more "
				 "than one Content-Length, or Content-Length "
				 "with Transfer-Encoding)\n",
				 (struct reply_extra){ NULL, true });
	default:
		return send_text(conn, l, r->route, 413,
				 "request body too large\n", NO_EXTRA);
	}
}

/* ---- the routes ---- */

static bool ready(const struct server *s, const char **why)
{
	if (atomic_load(&((struct server *)s)->draining))
		*why = "shutting down";
	else if (!tls_store_loaded(s->tls))
		*why = "no valid serving certificate loaded";
	else if (!s->webhook->sa->ready(s->webhook->sa))
		*why = "ServiceAccounts not synced yet";
	else
		return true;
	return false;
}

static enum MHD_Result answer_readyz(struct MHD_Connection *conn,
				     struct listener *l)
{
	const char *why = NULL;
	char text[128];

	if (ready(l->server, &why))
		return send_text(conn, l, ROUTE_READYZ, 200, "ready\n",
				 NO_EXTRA);
	snprintf(text, sizeof(text), "not ready: %s\n", why);
	return send_text(conn, l, ROUTE_READYZ, 503, text, NO_EXTRA);
}

static enum MHD_Result answer_metrics(struct MHD_Connection *conn,
				      struct listener *l)
{
	struct strbuf sb;
	size_t len;
	char *body;

	strbuf_init(&sb, 4 * 1024 * 1024);
	if (metrics_render(l->server->metrics, &sb) != 0) {
		strbuf_free(&sb);
		return send_text(conn, l, ROUTE_METRICS, 500,
				 "cannot render metrics\n", NO_EXTRA);
	}
	body = strbuf_detach(&sb, &len);
	if (body == NULL)
		return MHD_NO;
	return send_reply(conn, l, ROUTE_METRICS, 200,
			  "text/plain; version=0.0.4", body, len, NO_EXTRA);
}

/* ---- the offload pool ---- */

static void *offload_main(void *arg)
{
	struct server *s = arg;
	struct offload *o = &s->offload;

	for (;;) {
		struct request *r;

		pthread_mutex_lock(&o->lock);
		while (o->head == NULL && !o->stopping)
			pthread_cond_wait(&o->wake, &o->lock);
		r = o->head;
		if (r) {
			o->head = r->next_job;
			if (o->head == NULL)
				o->tail = NULL;
		}
		pthread_mutex_unlock(&o->lock);
		if (r == NULL)
			return NULL; /* stopping, and the queue is empty */
		webhook_answer(s->webhook, &r->call, true, &r->reply);
		atomic_store_explicit(&r->reply_ready, true,
				      memory_order_release);
		MHD_resume_connection(r->conn);
	}
}

/* Queues a suspended request (no allocation: the request carries its links). */
static void offload_submit(struct server *s, struct request *r)
{
	struct offload *o = &s->offload;

	pthread_mutex_lock(&o->lock);
	r->next_job = NULL;
	if (o->tail)
		o->tail->next_job = r;
	else
		o->head = r;
	o->tail = r;
	pthread_cond_signal(&o->wake);
	pthread_mutex_unlock(&o->lock);
}

static void offload_start(struct server *s)
{
	struct offload *o = &s->offload;

	if (!s->webhook->sa->blocking)
		return;
	while (o->n_threads < OFFLOAD_THREADS &&
	       pthread_create(&o->threads[o->n_threads], NULL, offload_main,
			      s) == 0)
		o->n_threads++;
}

/* Finishes the queued work (each request is resumed) and joins the threads. */
static void offload_stop(struct server *s)
{
	struct offload *o = &s->offload;

	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_broadcast(&o->wake);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < o->n_threads; i++)
		pthread_join(o->threads[i], NULL);
	o->n_threads = 0;
}

static enum MHD_Result send_mutate_reply(struct MHD_Connection *conn,
					 struct listener *l,
					 struct http_reply *reply)
{
	if (reply->body == NULL)
		return MHD_NO;
	return send_reply(conn, l, ROUTE_MUTATE, reply->status,
			  reply->content_type, reply->body, reply->len,
			  NO_EXTRA);
}

static enum MHD_Result answer_mutate(struct MHD_Connection *conn,
				     struct listener *l, struct request *r)
{
	struct server *s = l->server;
	struct http_reply reply;
	bool decoded = webhook_begin(s->webhook, r->body.buf ? r->body.buf : "",
				     r->body.len, &r->call, &reply);

	strbuf_free(&r->body); /* the review holds what it needs */
	if (!decoded || webhook_answer(s->webhook, &r->call,
				       s->offload.n_threads == 0, &reply))
		return send_mutate_reply(conn, l, &reply);
	/* A cache miss: the decoded review waits for the pool, which does the
	 * live lookup. Suspend before queueing: the pool may resume it at once. */
	r->offloaded = true;
	r->conn = conn;
	r->listener = l;
	MHD_suspend_connection(conn);
	offload_submit(s, r);
	return MHD_YES;
}

static enum MHD_Result answer(struct MHD_Connection *conn, struct listener *l,
			      struct request *r)
{
	switch (r->route) {
	case ROUTE_HEALTHZ:
		return send_text(conn, l, r->route, 200, "ok\n", NO_EXTRA);
	case ROUTE_READYZ:
		return answer_readyz(conn, l);
	case ROUTE_METRICS:
		return answer_metrics(conn, l);
	default:
		return answer_mutate(conn, l, r);
	}
}

/* ---- connection tracking and the reaper ---- */

static int64_t now_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/*
 * libmicrohttpd creates each GnuTLS session without session tickets, so every
 * reconnecting client paid a full handshake. Its "connection started" notice comes
 * after the session exists and before the handshake, which is where tickets can still
 * be turned on (one key per process; GnuTLS rotates the keys it derives from it).
 */
static void enable_tickets(struct listener *l, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	if (l->which != METRICS_LISTENER_HTTPS ||
	    l->server->ticket_key.data == NULL)
		return;
	info = MHD_get_connection_info(conn,
				       MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (info && info->tls_session)
		gnutls_session_ticket_enable_server(info->tls_session,
						    &l->server->ticket_key);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct listener *l = cls;
	struct tracked *t = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		enable_tickets(l, conn);
		info = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		t = mem_calloc(1, sizeof(*t));
		if (t == NULL || info == NULL) {
			mem_free(t);
			return; /* untracked: still bounded by the idle timeout */
		}
		t->fd = info->connect_fd;
		atomic_store(&t->idle_since_ms, now_ms());
		pthread_mutex_lock(&l->lock);
		t->next = l->tracked;
		if (l->tracked)
			l->tracked->prev = t;
		l->tracked = t;
		pthread_mutex_unlock(&l->lock);
		*socket_context = t;
		return;
	}
	if (t == NULL)
		return;
	/* libmicrohttpd reports the close before it closes the socket, so while an entry
	 * is listed its fd is still this connection's. */
	pthread_mutex_lock(&l->lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		l->tracked = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&l->lock);
	mem_free(t);
	*socket_context = NULL;
}

static struct tracked *tracked_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

static void reap(struct listener *l, int64_t limit_ms)
{
	int64_t now = now_ms();

	if (l->daemon == NULL)
		return;
	pthread_mutex_lock(&l->lock);
	for (struct tracked *t = l->tracked; t; t = t->next) {
		if (t->cut || atomic_load(&t->busy) ||
		    now - atomic_load(&t->idle_since_ms) <= limit_ms)
			continue;
		shutdown(
			t->fd,
			SHUT_RDWR); /* libmicrohttpd sees the error and closes */
		t->cut = true;
	}
	pthread_mutex_unlock(&l->lock);
}

static void *reaper_main(void *arg)
{
	struct server *s = arg;
	struct timespec tick = { 0, 250 * 1000 * 1000 };

	while (!atomic_load(&s->stopping)) {
		nanosleep(&tick, NULL);
		reap(&s->https, s->request_timeout_ms);
		reap(&s->plain, s->request_timeout_ms);
	}
	return NULL;
}

/* ---- the libmicrohttpd callbacks ---- */

static int64_t elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000 +
	       (now.tv_nsec - since->tv_nsec) / 1000000;
}

static struct request *begin(struct listener *l, struct MHD_Connection *conn,
			     const char *url, const char *method)
{
	struct request *r = mem_calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->route = find_route(l, url);
	r->early_status = early_status(l->server, conn, r->route, method);
	strbuf_init(&r->body, (size_t)l->server->max_body);
	clock_gettime(CLOCK_MONOTONIC, &r->started);
	r->tracked = tracked_of(conn);
	if (r->tracked)
		atomic_store(&r->tracked->busy, true);
	atomic_fetch_add(&l->server->inflight, 1);
	metrics_inflight(l->server->metrics, 1);
	return r;
}

/* Reserves the whole declared body at once: one allocation instead of a doubling
 * series (the size was checked against the limit in early_status). */
static void reserve_body(struct MHD_Connection *conn, struct request *r)
{
	const char *length = MHD_lookup_connection_value(
		conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t n;

	if (length && str_to_i64(length, 1, (int64_t)r->body.max, &n) == 0)
		strbuf_reserve(&r->body, (size_t)n);
}

/*
 * Takes a body chunk. libmicrohttpd accepts a response only right after the headers
 * or once the body is complete, so a body that grows past the limit is discarded and
 * answered with 413 when it ends; false means "close the connection now": the body
 * went past twice the limit, or the request outlived --request-timeout.
 */
static bool take_chunk(struct listener *l, struct request *r, const char *data,
		       size_t n)
{
	struct server *s = l->server;

	if (elapsed_ms(&r->started) > s->request_timeout_ms) {
		log_event(LOG_DEBUG, "request_cut", "reason", "request timeout",
			  NULL);
		return false;
	}
	if (r->early_status != 0) {
		r->discarded += n;
		return r->discarded <= (size_t)s->max_body;
	}
	if (strbuf_add(&r->body, data, n) != 0) {
		r->early_status = 413;
		r->discarded = r->body.len + n;
		strbuf_free(&r->body);
	}
	return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct listener *l = cls;
	struct request *r = *req_cls;

	(void)version;
	if (r == NULL) {
		*req_cls = r = begin(l, conn, url, method);
		if (r == NULL)
			return MHD_NO;
		if (r->early_status == 0) {
			if (r->route == ROUTE_MUTATE)
				reserve_body(conn, r);
			return MHD_YES;
		}
		/* Refuse at once what needs no body: the client need not send it. */
		r->answered = true;
		return send_early(conn, l, r);
	}
	if (*upload_data_size > 0) {
		bool keep = take_chunk(l, r, upload_data, *upload_data_size);

		*upload_data_size = 0;
		return keep ? MHD_YES : MHD_NO;
	}
	if (r->early_status != 0)
		return r->answered ? MHD_YES : send_early(conn, l, r);
	if (r->offloaded) { /* resumed: the pool's answer is ready */
		if (!atomic_load_explicit(&r->reply_ready,
					  memory_order_acquire) ||
		    r->answered)
			return MHD_YES;
		r->answered = true;
		return send_mutate_reply(conn, l, &r->reply);
	}
	return answer(conn, l, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode code)
{
	struct listener *l = cls;
	struct request *r = *req_cls;

	(void)conn;
	(void)code;
	if (r == NULL)
		return;
	if (r->offloaded && !r->answered)
		mem_free(r->reply.body); /* computed, never sent */
	webhook_call_free(&r->call);
	strbuf_free(&r->body);
	if (r->tracked) {
		atomic_store(&r->tracked->idle_since_ms, now_ms());
		atomic_store(&r->tracked->busy, false);
	}
	mem_free(r);
	*req_cls = NULL;
	atomic_fetch_sub(&l->server->inflight, 1);
	metrics_inflight(l->server->metrics, -1);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char text[300];
	size_t n;

	(void)cls;
	if (!log_enabled(LOG_DEBUG))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
		text[--n] = '\0';
	log_event(LOG_DEBUG, "http_error", "detail", text, NULL);
}

/* ---- starting and stopping ---- */

struct bind_addr {
	struct sockaddr_storage ss;
	bool any; /* empty host: every interface, dual stack if available */
	bool ipv6;
	int port;
};

static int resolve(const char *address, struct bind_addr *out, struct diag *d)
{
	char host[64];
	struct sockaddr_in *in4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;

	memset(out, 0, sizeof(*out));
	if (config_split_address(address, host, sizeof(host), &out->port) != 0)
		return diag_set(d, DIAG_EINVAL, "bad address '%s'", address);
	out->any = host[0] == '\0';
	if (out->any)
		return 0;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)out->port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)out->port);
		out->ipv6 = true;
		return 0;
	}
	return diag_set(d, DIAG_EINVAL, "'%s' is not an IP address", host);
}

/* The CPU quota of the cgroup (cgroup v2 cpu.max "QUOTA PERIOD"), 0 when unlimited. */
static long cgroup_cpus(void)
{
	int64_t max[2]; /* quota, period; "max" for no quota reads as 0 numbers */

	if (file_read_numbers("/sys/fs/cgroup/cpu.max", max, 2) != 2 ||
	    max[0] <= 0 || max[1] <= 0)
		return 0;
	return (long)((max[0] + max[1] - 1) / max[1]);
}

/* Worker threads: as asked, else one per CPU this process may use (its affinity
 * mask, capped by a cgroup CPU quota, as a container limit sets). */
static unsigned pool_size(int64_t threads)
{
	cpu_set_t set;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), quota = cgroup_cpus();

	if (threads > 0)
		return (unsigned)threads;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	if (quota > 0 && quota < cpus)
		cpus = quota;
	return cpus > 0 ? (unsigned)cpus : 1;
}

/* Options common to both listeners, for MHD_start_daemon's variable arguments. */
#define COMMON_OPTIONS(l, o, extra, timeout)                                   \
	MHD_OPTION_ARRAY, (extra), MHD_OPTION_CONNECTION_LIMIT,                \
		(unsigned int)(o)->max_connections,                            \
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(timeout),        \
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, \
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,                          \
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, (l),                \
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, (l),              \
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL

static struct MHD_Daemon *start_daemon(struct listener *l,
				       const struct server_options *o,
				       const struct bind_addr *a, bool tls,
				       unsigned flags)
{
	unsigned threads = pool_size(o->threads);
	unsigned timeout = (unsigned)((o->request_timeout_ms + 999) / 1000);
	const char *prio = strcmp(o->tls_min_version, "1.3") == 0
				   ? PRIORITY_BASE ":+VERS-TLS1.3"
				   : PRIORITY_BASE ":+VERS-TLS1.3:+VERS-TLS1.2";
	struct MHD_OptionItem extra[3];
	size_t n = 0;

	if (!a->any)
		extra[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0,
						      (void *)&a->ss };
	if (threads > 1)
		extra[n++] =
			(struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE,
						 threads, NULL };
	extra[n] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
		 MHD_USE_ERROR_LOG | (a->ipv6 ? MHD_USE_IPv6 : 0);
	if (!tls)
		return MHD_start_daemon(
			flags, (uint16_t)a->port, NULL, NULL, on_request, l,
			COMMON_OPTIONS(l, o, extra, timeout), MHD_OPTION_END);
	return MHD_start_daemon(flags | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME,
				(uint16_t)a->port, NULL, NULL, on_request, l,
				COMMON_OPTIONS(l, o, extra, timeout),
				MHD_OPTION_HTTPS_PRIORITIES, prio,
				MHD_OPTION_HTTPS_CERT_CALLBACK,
				retrieve_certificate, MHD_OPTION_END);
}

static int start_listener(struct listener *l, const struct server_options *o,
			  const char *address, bool tls, struct diag *d)
{
	struct bind_addr a;
	int rc = resolve(address, &a, d);

	if (rc != 0)
		return rc;
	l->daemon =
		a.any ? start_daemon(l, o, &a, tls, MHD_USE_DUAL_STACK) : NULL;
	if (l->daemon == NULL)
		l->daemon = start_daemon(l, o, &a, tls, 0);
	if (l->daemon == NULL)
		return diag_set(d, DIAG_EIO,
				"cannot listen on %s (address in use, or not "
				"allowed?)",
				address);
	return 0;
}

int server_start(const struct server_options *opts,
		 const struct webhook *webhook, struct tls_store *tls,
		 struct metrics *metrics, struct server **ret, struct diag *d)
{
	struct server *s = mem_calloc(1, sizeof(*s));
	const union MHD_DaemonInfo *info;
	int rc;

	*ret = NULL;
	if (s == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	*s = (struct server){ .webhook = webhook,
			      .metrics = metrics,
			      .tls = tls,
			      .max_body = opts->max_body_bytes,
			      .request_timeout_ms = opts->request_timeout_ms };
	s->https = (struct listener){ .server = s,
				      .which = METRICS_LISTENER_HTTPS };
	s->plain = (struct listener){ .server = s,
				      .which = METRICS_LISTENER_METRICS };
	pthread_mutex_init(&s->https.lock, NULL);
	pthread_mutex_init(&s->plain.lock, NULL);
	pthread_mutex_init(&s->offload.lock, NULL);
	pthread_cond_init(&s->offload.wake, NULL);
	if (gnutls_session_ticket_key_generate(&s->ticket_key) != 0)
		s->ticket_key =
			(gnutls_datum_t){ NULL, 0 }; /* full handshakes only */
	served_store = tls;
	rc = start_listener(&s->https, opts, opts->listen, true, d);
	if (rc == 0 && strcmp(opts->metrics_listen, "off") != 0)
		rc = start_listener(&s->plain, opts, opts->metrics_listen,
				    false, d);
	if (rc != 0) {
		server_stop(s);
		return rc;
	}
	offload_start(s);
	if (pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
		server_stop(s);
		return diag_set(d, DIAG_ENOMEM,
				"cannot start the connection reaper");
	}
	s->reaper_started = true;
	info = MHD_get_daemon_info(s->https.daemon, MHD_DAEMON_INFO_BIND_PORT);
	s->port = info ? info->port : 0;
	*ret = s;
	return 0;
}

int server_port(const struct server *s)
{
	return s->port;
}

void server_set_draining(struct server *s)
{
	atomic_store(&s->draining, true);
}

void server_quiesce(struct server *s)
{
	MHD_socket fd = MHD_quiesce_daemon(s->https.daemon);

	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

long server_inflight(const struct server *s)
{
	return atomic_load(&((struct server *)s)->inflight);
}

bool server_drain(struct server *s, int64_t timeout_ms)
{
	struct timespec start, pause = { 0, 10 * 1000 * 1000 };

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (atomic_load(&s->inflight) > 0) {
		if (elapsed_ms(&start) >= timeout_ms)
			return false;
		nanosleep(&pause, NULL);
	}
	return true;
}

void server_stop(struct server *s)
{
	if (s == NULL)
		return;
	atomic_store(&s->stopping, true);
	if (s->reaper_started)
		pthread_join(s->reaper, NULL);
	/* Every suspended request is resumed before the daemons go. */
	offload_stop(s);
	if (s->https.daemon)
		MHD_stop_daemon(s->https.daemon);
	if (s->plain.daemon)
		MHD_stop_daemon(s->plain.daemon);
	pthread_mutex_destroy(&s->https.lock);
	pthread_mutex_destroy(&s->plain.lock);
	pthread_cond_destroy(&s->offload.wake);
	pthread_mutex_destroy(&s->offload.lock);
	if (s->ticket_key.data) {
		gnutls_memset(s->ticket_key.data, 0, s->ticket_key.size);
		gnutls_free(s->ticket_key.data);
	}
	served_store = NULL;
	mem_free(s);
}
