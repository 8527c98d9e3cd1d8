/*
 * server_request: libmicrohttpd's request lifecycle. State is created on the first
 * callback (headers complete), where anything that can be refused without the body
 * is refused; body chunks are appended into a bounded buffer; the work is done on
 * the final callback (server_routes.c); the state is freed in the completion
 * callback, which also ends the request's "in flight" count that the drain waits on.
 */
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "server_internal.h"
#include "strutil.h"

static struct request *begin(struct listener *l, struct MHD_Connection *conn,
			     const char *url, const char *method)
{
	struct request *r = mem_calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->route = server_find_route(l, url);
	r->early_status =
		server_early_status(l->server, conn, r->route, method);
	strbuf_init(&r->body, (size_t)l->server->max_body);
	r->started_ms = clock_now_ms();
	r->tracked = server_tracked_of(conn);
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

	if (clock_now_ms() - r->started_ms > s->request_timeout_ms) {
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

enum MHD_Result server_on_request(void *cls, struct MHD_Connection *conn,
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
		return server_send_early(conn, l, r);
	}
	if (*upload_data_size > 0) {
		bool keep = take_chunk(l, r, upload_data, *upload_data_size);

		*upload_data_size = 0;
		return keep ? MHD_YES : MHD_NO;
	}
	if (r->early_status != 0)
		return r->answered ? MHD_YES : server_send_early(conn, l, r);
	if (r->offloaded)
		return server_answer_resumed(conn, l, r);
	return server_answer(conn, l, r);
}

void server_on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode code)
{
	struct listener *l = cls;
	struct request *r = *req_cls;

	(void)code;
	/* The response is all with GnuTLS now: send it as one record. */
	server_tls_uncork(l, conn);
	if (r == NULL)
		return;
	if (r->offloaded && !r->answered)
		mem_free(r->reply.body); /* computed, never sent */
	webhook_call_free(&r->call);
	strbuf_free(&r->body);
	if (r->tracked) {
		atomic_store(&r->tracked->idle_since_ms, clock_now_ms());
		atomic_store(&r->tracked->busy, false);
	}
	mem_free(r);
	*req_cls = NULL;
	atomic_fetch_sub(&l->server->inflight, 1);
	metrics_inflight(l->server->metrics, -1);
}
