/*
 * server_tls: the TLS side of the HTTPS listener. The certificate comes from
 * tls_store through GnuTLS's retrieve callback on every handshake, which is what
 * lets a rotated certificate be served without a restart. That callback has no
 * user argument, hence the one file-scope variable below.
 */
#include <limits.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "clock.h"
#include "invariant.h"
#include "log.h"
#include "server_internal.h"

static struct tls_store *served_store; /* read by the GnuTLS callback */

void server_tls_serve(struct tls_store *store)
{
	served_store = store;
}

int server_tls_certificate(gnutls_session_t session,
			   const gnutls_datum_t *req_ca_dn, int n_req_ca_dn,
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

/*
 * libmicrohttpd creates each GnuTLS session without session tickets, so every
 * reconnecting client paid a full handshake. Its "connection started" notice comes
 * after the session exists and before the handshake, which is where tickets can still
 * be turned on (one key per process; GnuTLS rotates the keys it derives from it).
 */
void server_tls_enable_tickets(struct listener *l, struct MHD_Connection *conn)
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

/* ---- one TLS record per response ---- */

/*
 * Bytes a response may add to its body: the status line and headers
 * libmicrohttpd writes (under 300 bytes today) and the record's own overhead.
 */
#define HEAD_ALLOWANCE 1024

static gnutls_session_t session_of(const struct listener *l,
				   struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	if (l->which != METRICS_LISTENER_HTTPS)
		return NULL;
	info = MHD_get_connection_info(conn,
				       MHD_CONNECTION_INFO_GNUTLS_SESSION);
	return info ? info->tls_session : NULL;
}

static int fd_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_CONNECTION_FD);

	return info ? info->connect_fd : -1;
}

/*
 * Whether the socket's send buffer takes n more bytes at once: what it holds
 * (sent and not acknowledged, or not sent) plus n within half its size, the
 * other half left for the kernel's own accounting of those bytes.
 *
 * The queue only grows by what this thread writes, so it holds at most what
 * SIOCOUTQ read last time plus every reply counted since (t->queued_most, each
 * with HEAD_ALLOWANCE, which also covers a "100 Continue" or a TLS alert). Only
 * when that bound could cross the half is the queue read again. The size is
 * read once per connection and again only when it looks short: Linux grows it
 * (autotuning), and should memory pressure shrink it, the uncork's wait below
 * is the way out.
 */
static bool socket_takes(struct tracked *t, size_t n)
{
	int queued = 0, size = 0;
	socklen_t len = sizeof(size);

	if (t->sndbuf > 0 && t->queued_most + n <= (size_t)t->sndbuf / 2)
		return true;
	if (ioctl(t->fd, SIOCOUTQ, &queued) != 0 || queued < 0)
		return false;
	t->queued_most = (size_t)queued;
	if ((size_t)queued + n <= (size_t)t->sndbuf / 2)
		return true;
	if (getsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &size, &len) != 0 ||
	    size <= 0)
		return false;
	t->sndbuf = size;
	return (size_t)queued + n <= (size_t)size / 2;
}

/*
 * libmicrohttpd (0.9.75 to 1.0.1, MHD_send_hdr_and_body_) corks the socket
 * before the header block of a reply shorter than 1400 bytes, headers
 * included, and after it pushes with TCP_NODELAY, leaving TCP_CORK on for good.
 * A body that short is the only sign of it the request thread gets.
 */
#define MHD_CORKS_BELOW 1400

void server_tls_cork(const struct listener *l, struct MHD_Connection *conn,
		     size_t body_len)
{
	gnutls_session_t session = session_of(l, conn);
	struct tracked *t = server_tracked_of(conn);
	size_t n = body_len + HEAD_ALLOWANCE;

	if (session == NULL || t == NULL || t->fd < 0)
		return;
	if (body_len < MHD_CORKS_BELOW)
		t->mhd_corked = true;
	if (socket_takes(t, n))
		gnutls_record_cork(session);
	t->queued_most += n; /* corked or not, the reply is on its way */
}

/*
 * Sends what the kernel holds back. libmicrohttpd pushes a response by setting
 * TCP_NODELAY after its last write (which Linux takes as "push now" even when
 * already set); on a corked socket that push came before the flush above, so
 * it is done again here, the same way, so that libmicrohttpd's idea of the
 * socket options stays true. On a socket it never corked the flush leaves at
 * once (TCP_NODELAY is on), and the debug build checks that it was not corked.
 */
#ifndef NDEBUG
static bool socket_corked(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return getsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, &len) == 0 && on;
}
#endif

static void push(const struct tracked *t, int fd)
{
	int one = 1;

	if (fd < 0)
		return;
	if (t && !t->mhd_corked) {
		PIW_ASSERT_CHECK(!socket_corked(fd));
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Waits until fd can take more bytes, at most until deadline_ms. */
static bool wait_writable(int fd, int64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int64_t left = deadline_ms - clock_now_ms();

	if (fd < 0 || left <= 0)
		return false;
	return poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left) == 1 &&
	       (p.revents & POLLOUT) != 0;
}

void server_tls_uncork(const struct listener *l, struct MHD_Connection *conn)
{
	gnutls_session_t session = session_of(l, conn);
	int64_t deadline;
	ssize_t rc;
	int fd;

	if (session == NULL)
		return;
	rc = gnutls_record_uncork(session, 0); /* not corked: returns 0 */
	if (rc > 0)
		push(server_tracked_of(conn), fd_of(conn));
	if (rc != GNUTLS_E_AGAIN && rc != GNUTLS_E_INTERRUPTED)
		return; /* sent, or the connection is gone (MHD sees it) */
	/* The buffer was checked to have room, so only memory pressure gets here:
	 * the response is owed, and libmicrohttpd believes it sent. */
	fd = fd_of(conn);
	deadline = clock_now_ms() + l->server->request_timeout_ms;
	while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		if (!wait_writable(fd, deadline)) {
			log_event(LOG_DEBUG, "request_cut", "reason",
				  "response not taken in time", NULL);
			shutdown(fd, SHUT_RDWR); /* not a truncated answer */
			return;
		}
		rc = gnutls_record_uncork(session, 0);
	}
	push(server_tracked_of(conn), fd);
}
