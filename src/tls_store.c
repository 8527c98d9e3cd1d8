/*
 * tls_store: certificate hot reload.
 *
 * A pair lives in a bundle (imported certificate chain + private key). The bundle in
 * service is published through an atomic pointer, so the per-handshake callback takes
 * no lock. A replaced bundle cannot be freed at once, as a handshake on another thread
 * may be using it: it is retired with a timestamp and freed once older than the grace
 * period (or at exit). Key material read from disk is wiped as soon as it is imported.
 */
#include "tls_store.h"

#include <errno.h>
#include <gnutls/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fileio.h"
#include "mem.h"

#define MAX_CHAIN     8
#define MAX_PEM_BYTES (256 * 1024)

struct bundle {
	gnutls_pcert_st pcerts[MAX_CHAIN];
	unsigned n_pcerts;
	gnutls_privkey_t key;
	int64_t not_after;
	time_t retired_at;
	struct bundle *next_retired;
};

struct tls_store {
	char *cert_path, *key_path;
	int grace_seconds;
	_Atomic(struct bundle *) current;
	struct bundle *retired; /* touched by the reloading thread only */
	struct file_stamp last_cert, last_key;
	bool attempted;
};

static void bundle_free(struct bundle *b)
{
	if (b == NULL)
		return;
	for (unsigned i = 0; i < b->n_pcerts; i++)
		gnutls_pcert_deinit(&b->pcerts[i]);
	if (b->key)
		gnutls_privkey_deinit(b->key);
	mem_free(b);
}

int tls_store_new(const char *cert_path, const char *key_path,
		  int grace_seconds, struct tls_store **ret)
{
	struct tls_store *s = mem_calloc(1, sizeof(*s));

	*ret = NULL;
	if (s == NULL)
		return DIAG_ENOMEM;
	s->cert_path = mem_strdup(cert_path);
	s->key_path = mem_strdup(key_path);
	if (s->cert_path == NULL || s->key_path == NULL) {
		tls_store_free(s);
		return DIAG_ENOMEM;
	}
	s->grace_seconds = grace_seconds;
	atomic_init(&s->current, NULL);
	*ret = s;
	return 0;
}

void tls_store_free(struct tls_store *s)
{
	if (s == NULL)
		return;
	bundle_free(atomic_load(&s->current));
	while (s->retired) {
		struct bundle *next = s->retired->next_retired;

		bundle_free(s->retired);
		s->retired = next;
	}
	mem_free(s->cert_path);
	mem_free(s->key_path);
	mem_free(s);
}

/* ---- loading ---- */

static int tls_error(struct diag *d, const char *path, const char *what,
		     int err)
{
	return diag_set_at(d, DIAG_ECONFIG, path, 0, "%s: %s", what,
			   gnutls_strerror(err));
}

static int import_chain(struct bundle *b, const gnutls_datum_t *pem,
			const char *path, struct diag *d)
{
	gnutls_x509_crt_t crt = NULL;
	int err;

	b->n_pcerts = MAX_CHAIN;
	err = gnutls_pcert_list_import_x509_raw(b->pcerts, &b->n_pcerts, pem,
						GNUTLS_X509_FMT_PEM, 0);
	if (err < 0) {
		b->n_pcerts = 0;
		return tls_error(d, path, "not a PEM certificate chain", err);
	}
	err = gnutls_x509_crt_init(&crt);
	if (err == 0)
		err = gnutls_x509_crt_import(crt, pem, GNUTLS_X509_FMT_PEM);
	if (err == 0)
		b->not_after =
			(int64_t)gnutls_x509_crt_get_expiration_time(crt);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return err < 0 ? tls_error(d, path, "cannot read the certificate", err)
		       : 0;
}

static int import_key(struct bundle *b, const gnutls_datum_t *pem,
		      const char *path, struct diag *d)
{
	int err = gnutls_privkey_init(&b->key);

	if (err == 0)
		err = gnutls_privkey_import_x509_raw(
			b->key, pem, GNUTLS_X509_FMT_PEM, NULL, 0);
	return err < 0 ? tls_error(d, path, "not a PEM private key", err) : 0;
}

/* Exports a public key as DER into *out (free with gnutls_free). */
static int export_pubkey(gnutls_pubkey_t pub, gnutls_datum_t *out)
{
	return gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
}

/* The certificate's public key must be the key's: a mismatched pair fails every
 * handshake, so it must never replace a working one. */
static int check_match(struct bundle *b, const char *path, struct diag *d)
{
	gnutls_pubkey_t from_key = NULL;
	gnutls_datum_t a = { NULL, 0 }, k = { NULL, 0 };
	int err = gnutls_pubkey_init(&from_key), rc = 0;

	if (err == 0)
		err = gnutls_pubkey_import_privkey(from_key, b->key, 0, 0);
	if (err == 0)
		err = export_pubkey(b->pcerts[0].pubkey, &a);
	if (err == 0)
		err = export_pubkey(from_key, &k);
	if (err < 0)
		rc = tls_error(d, path,
			       "cannot compare the key with the certificate",
			       err);
	else if (a.size != k.size || memcmp(a.data, k.data, a.size) != 0)
		rc = diag_set_at(
			d, DIAG_ECONFIG, path, 0,
			"the private key does not match the certificate");
	gnutls_free(a.data);
	gnutls_free(k.data);
	if (from_key)
		gnutls_pubkey_deinit(from_key);
	return rc;
}

static int load_bundle(struct tls_store *s, struct bundle **ret, struct diag *d)
{
	struct bundle *b = mem_calloc(1, sizeof(*b));
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	int rc;

	*ret = NULL;
	if (b == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	rc = file_read(s->cert_path, MAX_PEM_BYTES, &cert, &cert_len, d);
	if (rc == 0)
		rc = file_read(s->key_path, MAX_PEM_BYTES, &key, &key_len, d);
	if (rc == 0)
		rc = import_chain(b,
				  &(gnutls_datum_t){ (unsigned char *)cert,
						     (unsigned)cert_len },
				  s->cert_path, d);
	if (rc == 0)
		rc = import_key(b,
				&(gnutls_datum_t){ (unsigned char *)key,
						   (unsigned)key_len },
				s->key_path, d);
	if (rc == 0)
		rc = check_match(b, s->key_path, d);
	if (key)
		explicit_bzero(key, key_len);
	mem_free(key);
	mem_free(cert);
	if (rc != 0) {
		bundle_free(b);
		return rc;
	}
	*ret = b;
	return 0;
}

/* ---- change detection and replacement ---- */

static void free_expired(struct tls_store *s, time_t now, bool all)
{
	struct bundle **link = &s->retired;

	while (*link) {
		struct bundle *b = *link;

		if (all || now - b->retired_at > s->grace_seconds) {
			*link = b->next_retired;
			bundle_free(b);
		} else {
			link = &b->next_retired;
		}
	}
}

enum tls_reload tls_store_reload(struct tls_store *s, struct diag *d)
{
	struct file_stamp cert, key;
	struct bundle *fresh = NULL, *old;
	time_t now = time(NULL);

	file_stamp_take(s->cert_path, &cert);
	file_stamp_take(s->key_path, &key);
	free_expired(s, now, false);
	if (s->attempted && file_stamp_equal(&cert, &s->last_cert) &&
	    file_stamp_equal(&key, &s->last_key))
		return TLS_UNCHANGED;
	s->attempted = true;
	s->last_cert = cert;
	s->last_key = key;
	if (load_bundle(s, &fresh, d) != 0)
		return TLS_FAILED;
	old = atomic_exchange(&s->current, fresh);
	if (old) {
		old->retired_at = now;
		old->next_retired = s->retired;
		s->retired = old;
	}
	return TLS_RELOADED;
}

bool tls_store_loaded(const struct tls_store *s)
{
	return atomic_load(&((struct tls_store *)s)->current) != NULL;
}

int64_t tls_store_not_after(const struct tls_store *s)
{
	struct bundle *b = atomic_load(&((struct tls_store *)s)->current);

	return b ? b->not_after : 0;
}

int tls_store_current(struct tls_store *s, gnutls_pcert_st **pcerts,
		      unsigned *n, gnutls_privkey_t *key)
{
	struct bundle *b =
		atomic_load_explicit(&s->current, memory_order_acquire);

	if (b == NULL)
		return -1;
	*pcerts = b->pcerts;
	*n = b->n_pcerts;
	*key = b->key;
	return 0;
}
