/*
 * server_tls: the TLS side of the HTTPS listener. The certificate comes from
 * tls_store through GnuTLS's retrieve callback on every handshake, which is what
 * lets a rotated certificate be served without a restart. That callback has no
 * user argument, hence the one file-scope variable below.
 */
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
