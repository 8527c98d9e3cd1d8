/*
 * server_reaper: connection tracking and the thread that cuts connections which
 * went --request-timeout without a complete request (libmicrohttpd resets its own
 * idle timer on every byte, so a client trickling header bytes would never be
 * timed out).
 */
#include <sys/socket.h>

#include "clock.h"
#include "mem.h"
#include "server_internal.h"

void server_on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct listener *l = cls;
	struct tracked *t = *socket_context;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		server_tls_enable_tickets(l, conn);
		info = MHD_get_connection_info(
			conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		t = mem_calloc(1, sizeof(*t));
		if (t == NULL || info == NULL) {
			mem_free(t);
			return; /* untracked: still bounded by the idle timeout */
		}
		t->fd = info->connect_fd;
		atomic_store(&t->idle_since_ms, clock_now_ms());
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

struct tracked *server_tracked_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return info ? info->socket_context : NULL;
}

static void reap(struct listener *l, int64_t limit_ms)
{
	int64_t now = clock_now_ms();

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

void *server_reaper_main(void *arg)
{
	struct server *s = arg;

	while (!atomic_load(&s->stopping)) {
		clock_sleep_ms(250);
		reap(&s->https, s->request_timeout_ms);
		reap(&s->plain, s->request_timeout_ms);
	}
	return NULL;
}
