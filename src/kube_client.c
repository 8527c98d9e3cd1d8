/*
 * kube_client: one libcurl easy handle per request, all attached to a share handle
 * that pools connections, TLS sessions and DNS answers between threads (its locks
 * below). Inline PEM data from a kubeconfig becomes a memfd whose /proc/self/fd path
 * libcurl can open: GnuTLS builds of libcurl do not take certificate blobs.
 */
#define _GNU_SOURCE /* memfd_create */
#include "kube_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "mem.h"

#define TOKEN_MAX_BYTES	   (64 * 1024)
#define USER_AGENT	   "pod-identity-webhook"
#define CONNECT_TIMEOUT_MS 3000L

struct kube_client {
	struct kube_config cfg; /* owned copy */
	char ca_path[64], cert_path[64], key_path[64];
	int memfds[3];
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t token_lock; /* guards the cached token */
	char *token;
	struct file_stamp token_stamp;
};

/* ---- memory files for inline PEM ---- */

static int memfile(struct kube_client *c, int slot, const char *data,
		   size_t len, char *path, size_t size, struct diag *d)
{
	int fd = memfd_create("pod-identity-webhook", MFD_CLOEXEC);

	if (fd < 0)
		return diag_set(d, DIAG_ECONFIG, "memfd_create failed");
	c->memfds[slot] = fd;
	for (size_t done = 0; done < len;) {
		ssize_t n = write(fd, data + done, len - done);

		if (n <= 0)
			return diag_set(d, DIAG_ECONFIG,
					"cannot write a memory file");
		done += (size_t)n;
	}
	snprintf(path, size, "/proc/self/fd/%d", fd);
	return 0;
}

static int prepare_files(struct kube_client *c, struct diag *d)
{
	const struct kube_config *k = &c->cfg;
	int rc = 0;

	if (k->ca_data)
		rc = memfile(c, 0, k->ca_data, k->ca_data_len, c->ca_path,
			     sizeof(c->ca_path), d);
	else if (k->ca_file)
		snprintf(c->ca_path, sizeof(c->ca_path), "%s", "");
	if (rc == 0 && k->cert_data)
		rc = memfile(c, 1, k->cert_data, k->cert_data_len, c->cert_path,
			     sizeof(c->cert_path), d);
	if (rc == 0 && k->key_data)
		rc = memfile(c, 2, k->key_data, k->key_data_len, c->key_path,
			     sizeof(c->key_path), d);
	return rc;
}

/* ---- the share handle's locks ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access,
		       void *arg)
{
	struct kube_client *c = arg;

	(void)h;
	(void)access;
	pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct kube_client *c = arg;

	(void)h;
	pthread_mutex_unlock(&c->share_locks[data]);
}

static int make_share(struct kube_client *c, struct diag *d)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_locks[i], NULL);
	c->share = curl_share_init();
	if (c->share == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	return 0;
}

/* ---- configuration copy ---- */

static char *dup_or_null(const char *s)
{
	return s ? mem_strdup(s) : NULL;
}

static char *dup_bytes(const char *s, size_t len)
{
	return s ? mem_strndup(s, len) : NULL;
}

static int copy_config(struct kube_config *to, const struct kube_config *from)
{
	*to = (struct kube_config){
		.server = dup_or_null(from->server),
		.ca_file = dup_or_null(from->ca_file),
		.ca_data = dup_bytes(from->ca_data, from->ca_data_len),
		.ca_data_len = from->ca_data_len,
		.token = dup_or_null(from->token),
		.token_file = dup_or_null(from->token_file),
		.cert_file = dup_or_null(from->cert_file),
		.key_file = dup_or_null(from->key_file),
		.cert_data = dup_bytes(from->cert_data, from->cert_data_len),
		.cert_data_len = from->cert_data_len,
		.key_data = dup_bytes(from->key_data, from->key_data_len),
		.key_data_len = from->key_data_len,
	};
	if (!to->server || (from->ca_file && !to->ca_file) ||
	    (from->ca_data && !to->ca_data) || (from->token && !to->token) ||
	    (from->token_file && !to->token_file) ||
	    (from->cert_file && !to->cert_file) ||
	    (from->key_file && !to->key_file) ||
	    (from->cert_data && !to->cert_data) ||
	    (from->key_data && !to->key_data))
		return DIAG_ENOMEM;
	return 0;
}

int kube_client_new(const struct kube_config *cfg, struct kube_client **ret,
		    struct diag *d)
{
	struct kube_client *c = mem_calloc(1, sizeof(*c));
	int rc;

	*ret = NULL;
	if (c == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	c->memfds[0] = c->memfds[1] = c->memfds[2] = -1;
	pthread_mutex_init(&c->token_lock, NULL);
	rc = copy_config(&c->cfg, cfg)
		     ? diag_set(d, DIAG_ENOMEM, "out of memory")
		     : 0;
	if (rc == 0)
		rc = prepare_files(c, d);
	if (rc == 0)
		rc = make_share(c, d);
	if (rc != 0) {
		kube_client_free(c);
		return rc;
	}
	*ret = c;
	return 0;
}

void kube_client_free(struct kube_client *c)
{
	if (c == NULL)
		return;
	if (c->share) {
		curl_share_cleanup(c->share);
		for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
			pthread_mutex_destroy(&c->share_locks[i]);
	}
	for (int i = 0; i < 3; i++) {
		if (c->memfds[i] >= 0)
			close(c->memfds[i]);
	}
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	mem_free(c->token);
	pthread_mutex_destroy(&c->token_lock);
	kube_config_free(&c->cfg);
	mem_free(c);
}

/* ---- the bearer token ---- */

/* Re-reads the token file when it changed (kubelet rotates projected tokens). */
static int refresh_token(struct kube_client *c, struct diag *d)
{
	struct file_stamp st;
	char *text = NULL;
	size_t len = 0;
	int rc;

	file_stamp_take(c->cfg.token_file, &st);
	if (!st.exists)
		return c->token ? 0
				: diag_set(d, DIAG_EUNAVAIL,
					   "cannot read the token file %s",
					   c->cfg.token_file);
	if (c->token && file_stamp_equal(&st, &c->token_stamp))
		return 0;
	rc = file_read(c->cfg.token_file, TOKEN_MAX_BYTES, &text, &len, d);
	if (rc != 0)
		return c->token ? 0 : DIAG_EUNAVAIL;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
			   text[len - 1] == ' '))
		text[--len] = '\0';
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	mem_free(c->token);
	c->token = text;
	c->token_stamp = st;
	return 0;
}

/* Builds the header list: Accept, and Authorization when a token is configured. */
static struct curl_slist *headers(struct kube_client *c, struct diag *d)
{
	struct curl_slist *list =
		curl_slist_append(NULL, "Accept: application/json");
	const char *token = c->cfg.token;
	struct strbuf auth;
	int rc = 0;

	if (list == NULL || (!c->cfg.token && !c->cfg.token_file))
		return list;
	strbuf_init(&auth, TOKEN_MAX_BYTES + 64);
	pthread_mutex_lock(&c->token_lock);
	if (c->cfg.token_file && (rc = refresh_token(c, d)) == 0)
		token = c->token;
	if (rc == 0 && token)
		rc = strbuf_addf(&auth, "Authorization: Bearer %s", token);
	pthread_mutex_unlock(&c->token_lock);
	if (rc == 0 && auth.buf) {
		struct curl_slist *more = curl_slist_append(list, auth.buf);

		list = more ? more : list;
		explicit_bzero(auth.buf, auth.len);
	}
	strbuf_free(&auth);
	if (rc != 0) {
		curl_slist_free_all(list);
		return NULL;
	}
	return list;
}

/* ---- requests ---- */

struct transfer {
	struct strbuf *body; /* whole-body mode */
	struct strbuf line;  /* streaming mode: the line being assembled */
	kube_line_fn on_line;
	void *arg;
	const atomic_bool *stop;
	struct strbuf *error_body;
	CURL *easy;
	bool overflow, stopped;
	long idle_ms; /* streaming: longest silence allowed, 0: none */
	long long last_byte_ms; /* when data last arrived */
	bool idle;		/* the stream went silent for idle_ms */
};

static long http_status(CURL *easy)
{
	long status = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

static size_t stream_bytes(struct transfer *t, const char *data, size_t n)
{
	if (http_status(t->easy) != 200) {
		if (t->error_body)
			strbuf_add(t->error_body, data,
				   n); /* bounded: excess dropped */
		return n;
	}
	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (strbuf_addc(&t->line, data[i]) != 0) {
				t->overflow = true;
				return 0;
			}
			continue;
		}
		if (t->line.len > 0 &&
		    t->on_line(t->arg, t->line.buf, t->line.len) != 0) {
			t->stopped = true;
			return 0;
		}
		strbuf_reset(&t->line);
	}
	return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t n = size * nmemb;

	t->last_byte_ms = clock_now_ms();
	if (t->on_line)
		return stream_bytes(t, data, n);
	if (strbuf_add(t->body, data, n) != 0) {
		t->overflow = true;
		return 0;
	}
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	struct transfer *t = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	if (t->idle_ms > 0 && clock_now_ms() - t->last_byte_ms > t->idle_ms) {
		t->idle = true;
		return 1;
	}
	return t->stop && atomic_load(t->stop) ? 1 : 0;
}

static void set_tls(CURL *easy, const struct kube_client *c)
{
	const struct kube_config *k = &c->cfg;

	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_SSLVERSION,
			 (long)CURL_SSLVERSION_TLSv1_2);
	/* Only the configured CA: Debian's libcurl would also load every certificate in
	 * /etc/ssl/certs (megabytes, and trust the cluster never asked for). */
	curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
	if (c->ca_path[0])
		curl_easy_setopt(easy, CURLOPT_CAINFO, c->ca_path);
	else if (k->ca_file)
		curl_easy_setopt(easy, CURLOPT_CAINFO, k->ca_file);
	if (c->cert_path[0] || k->cert_file) {
		curl_easy_setopt(easy, CURLOPT_SSLCERT,
				 c->cert_path[0] ? c->cert_path : k->cert_file);
		curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(easy, CURLOPT_SSLKEY,
				 c->key_path[0] ? c->key_path : k->key_file);
		curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

static CURL *make_easy(struct kube_client *c, const char *path,
		       struct curl_slist *hdrs, struct transfer *t,
		       char *errbuf)
{
	CURL *easy = curl_easy_init();
	struct strbuf url;

	if (easy == NULL)
		return NULL;
	strbuf_init(&url, 8192);
	if (strbuf_addf(&url, "%s%s", c->cfg.server, path) != 0) {
		strbuf_free(&url);
		curl_easy_cleanup(easy);
		return NULL;
	}
	curl_easy_setopt(easy, CURLOPT_URL, url.buf); /* libcurl copies it */
	strbuf_free(&url);
	curl_easy_setopt(easy, CURLOPT_SHARE, c->share);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(easy, CURLOPT_XFERINFODATA, t);
	set_tls(easy, c);
	t->easy = easy;
	return easy;
}

static int perform(CURL *easy, struct transfer *t, const char *errbuf,
		   long *status, struct diag *d)
{
	CURLcode res = curl_easy_perform(easy);

	*status = http_status(easy);
	if (res == CURLE_OK || (t->stopped && *status == 200))
		return 0;
	if (t->overflow)
		return diag_set(d, DIAG_ELIMIT,
				"the answer is larger than allowed");
	if (res == CURLE_ABORTED_BY_CALLBACK && t->idle)
		return diag_set(d, DIAG_ETIMEOUT, "no data for %ld ms",
				t->idle_ms);
	if (res == CURLE_ABORTED_BY_CALLBACK)
		return diag_set(d, DIAG_EUNAVAIL, "stopped");
	if (res == CURLE_OPERATION_TIMEDOUT)
		return diag_set(d, DIAG_ETIMEOUT, "timed out: %s",
				errbuf[0] ? errbuf : curl_easy_strerror(res));
	return diag_set(d, DIAG_EUNAVAIL, "%s",
			errbuf[0] ? errbuf : curl_easy_strerror(res));
}

/* Headers and an easy handle for t; NULL (with d set) when either cannot be made. */
static CURL *begin_transfer(struct kube_client *c, const char *path,
			    struct transfer *t, struct curl_slist **hdrs,
			    char *errbuf, struct diag *d)
{
	CURL *easy;

	*hdrs = headers(c, d);
	if (*hdrs == NULL) {
		if (d == NULL || d->code == DIAG_OK)
			diag_set(d, DIAG_ENOMEM, "out of memory");
		return NULL;
	}
	easy = make_easy(c, path, *hdrs, t, errbuf);
	if (easy == NULL) {
		curl_slist_free_all(*hdrs);
		*hdrs = NULL;
		diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	return easy;
}

static int failure_code(const struct diag *d)
{
	return d && d->code != DIAG_OK ? d->code : DIAG_ENOMEM;
}

int kube_get(struct kube_client *c, const char *path, long timeout_ms,
	     struct strbuf *body, long *status, struct diag *d)
{
	struct transfer t = { .body = body };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURL *easy;
	int rc;

	*status = 0;
	easy = begin_transfer(c, path, &t, &hdrs, errbuf, d);
	if (easy == NULL)
		return failure_code(d);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (timeout_ms < CONNECT_TIMEOUT_MS)
		curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
	rc = perform(easy, &t, errbuf, status, d);
	curl_easy_cleanup(easy);
	curl_slist_free_all(hdrs);
	return rc;
}

int kube_stream(struct kube_client *c, const char *path, long idle_ms,
		size_t max_line, kube_line_fn on_line, void *arg,
		const atomic_bool *stop, long *status,
		struct strbuf *error_body, struct diag *d)
{
	struct transfer t = { .on_line = on_line,
			      .arg = arg,
			      .stop = stop,
			      .error_body = error_body };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURL *easy;
	int rc;

	*status = 0;
	strbuf_init(&t.line, max_line);
	easy = begin_transfer(c, path, &t, &hdrs, errbuf, d);
	if (easy == NULL)
		return failure_code(d);
	/* A stream silent for idle_ms is presumed dead (checked in on_progress). */
	t.idle_ms = idle_ms;
	t.last_byte_ms = clock_now_ms();
	rc = perform(easy, &t, errbuf, status, d);
	curl_easy_cleanup(easy);
	curl_slist_free_all(hdrs);
	strbuf_free(&t.line);
	return rc;
}
