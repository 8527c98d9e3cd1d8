/*
 * tls_store: the serving certificate and key, loaded from files and reloaded when the
 * files change, handed to GnuTLS per handshake. A new pair replaces the old one only
 * once it has been parsed and the key proven to match the certificate; a bad pair
 * leaves the old one in service.
 */
#ifndef PIW_TLS_STORE_H
#define PIW_TLS_STORE_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

#include "diag.h"

struct tls_store;

/*
 * Creates a store for the two files. Nothing is loaded yet: call tls_store_reload().
 * `grace_seconds` is how long a replaced pair is kept alive for handshakes that
 * started with it. 0 or DIAG_ENOMEM.
 */
int tls_store_new(const char *cert_path, const char *key_path,
		  int grace_seconds, struct tls_store **ret);

enum tls_reload {
	TLS_UNCHANGED, /* the files have not changed since the last attempt */
	TLS_RELOADED,  /* a new pair is in service */
	TLS_FAILED,    /* the files changed but are unusable; d says why */
};

/*
 * Checks the files (device, inode, size, mtime of both) and loads them when they
 * differ from the last attempt. Called from one thread (the main loop).
 */
enum tls_reload tls_store_reload(struct tls_store *s, struct diag *d);

/* Whether a pair is in service, and its certificate's notAfter (seconds). */
bool tls_store_loaded(const struct tls_store *s);
int64_t tls_store_not_after(const struct tls_store *s);

/*
 * The pair in service, for gnutls_certificate_retrieve_function2: the returned
 * pointers stay valid for at least `grace_seconds` after a replacement. 0, or -1 when
 * nothing is loaded. Thread-safe, lock-free.
 */
int tls_store_current(struct tls_store *s, gnutls_pcert_st **pcerts,
		      unsigned *n, gnutls_privkey_t *key);

/* Frees everything (call after the TLS listener has stopped). Accepts NULL. */
void tls_store_free(struct tls_store *s);

#endif
