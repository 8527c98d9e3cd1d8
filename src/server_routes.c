/*
 * server_routes: what each route answers. Routing and the refusals that need no
 * body (404, 405, 415, 413 on a declared length, 400 for ambiguous framing), the
 * probes, /metrics, and /mutate, whose answer is computed inline on a cache hit
 * or handed to the offload pool (server_offload.c) when it needs network I/O.
 * Every reply goes out through send_reply(), which also counts it.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "server_internal.h"
#include "strutil.h"

/* What a reply carries besides its status and body. */
struct reply_extra {
	const char *allow; /* the Allow header, or NULL */
	bool close;	   /* close the connection after this reply */
};

#define NO_EXTRA ((struct reply_extra){ NULL, false })

static enum MHD_Result send_reply(struct MHD_Connection *conn,
				  struct listener *l, enum server_route route,
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
	/* Every reply, refusals before the body included, leaves in one TLS record:
	 * server_on_completed uncorks it, before libmicrohttpd closes a connection
	 * it will not keep (TlsRecordTests checks both kinds). */
	server_tls_cork(l, conn, len);
	ret = MHD_queue_response(conn, (unsigned int)status, resp);
	MHD_destroy_response(resp);
	metrics_http(l->server->metrics, l->which, route, status);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *conn,
				 struct listener *l, enum server_route route,
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

enum server_route server_find_route(const struct listener *l, const char *url)
{
	if (strcmp(url, server_route_path(ROUTE_HEALTHZ)) == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(url, server_route_path(ROUTE_READYZ)) == 0)
		return ROUTE_READYZ;
	if (l->which == METRICS_LISTENER_HTTPS &&
	    strcmp(url, server_route_path(ROUTE_MUTATE)) == 0)
		return ROUTE_MUTATE;
	if (l->which == METRICS_LISTENER_METRICS &&
	    strcmp(url, server_route_path(ROUTE_METRICS)) == 0)
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

int server_early_status(struct server *s, struct MHD_Connection *conn,
			enum server_route route, const char *method)
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

enum MHD_Result server_send_early(struct MHD_Connection *conn,
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
	server_offload_submit(s, r);
	return MHD_YES;
}

enum MHD_Result server_answer(struct MHD_Connection *conn, struct listener *l,
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

enum MHD_Result server_answer_resumed(struct MHD_Connection *conn,
				      struct listener *l, struct request *r)
{
	/* Called again after the resume, and for every later poll of the
	 * connection until the reply is queued once. */
	if (!atomic_load_explicit(&r->reply_ready, memory_order_acquire) ||
	    r->answered)
		return MHD_YES;
	r->answered = true;
	return send_mutate_reply(conn, l, &r->reply);
}
