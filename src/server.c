/*
 * server: the lifecycle of the two libmicrohttpd daemons (HTTPS: /mutate and the
 * probes; plain HTTP: /metrics and the probes): their options, start, drain and
 * stop. The other concerns have files of their own (server_internal.h lists them).
 *
 * Both listeners run a poll() thread pool sized to the CPUs. (Not epoll: libmicrohttpd
 * 0.9.75's epoll mode spins at 100 % of a CPU while a TLS handshake waits on its
 * client; an admission webhook has few connections, where poll costs nothing.)
 *
 * TLS: only TLS 1.2/1.3 with forward-secret AEAD suites (server_tls.c hands GnuTLS
 * the certificate).
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "server.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fileio.h"
#include "log.h"
#include "mem.h"
#include "server_internal.h"

/* X25519 first: OpenSSL and Go clients send an X25519 key share, and preferring
 * another group would cost them a HelloRetryRequest round trip per handshake. */
#define PRIORITY_BASE                                                   \
	"NORMAL:-VERS-ALL:-RSA:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"  \
	"+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:" \
	"+GROUP-SECP384R1:+GROUP-SECP521R1:%SERVER_PRECEDENCE"
/*
 * libmicrohttpd's per-connection pool: the request line and headers must fit in it
 * (beyond: 431 and the connection closes), and it is zeroed after every request.
 * 16 KiB is 16 times what an API server sends, halves the memory a full
 * --max-connections can hold (1,024 x 16 KiB) and the per-request zeroing.
 * The body never stays in it: server_request copies each chunk out.
 */
#define CONNECTION_MEMORY (16 * 1024)

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

/* The CPU quota of the cgroup (cgroup v2 cpu.max "QUOTA PERIOD"), 0 when unlimited. */
static long cgroup_cpus(void)
{
	int64_t max[2]; /* quota, period; "max" for no quota reads as 0 numbers */

	if (file_read_numbers("/sys/fs/cgroup/cpu.max", max, 2) != 2 ||
	    max[0] <= 0 || max[1] <= 0)
		return 0;
	return (long)((max[0] + max[1] - 1) / max[1]);
}

/*
 * Three per CPU, not one: each libmicrohttpd thread polls its own share of the
 * connections and sleeps when none has a request ready, and with one per CPU the
 * CPUs went idle and were woken for every other request (0.44 context switches per
 * admission against nginx's 0.11, a fifth of our time in the kernel's wakeup and
 * scheduling paths). With spare threads one of ours is usually runnable:
 * 64 keep-alive connections on 2 CPUs went from 20,000 to 25,600 admissions/s and
 * from 61 to 54 µs per admission (docs/performance.md); 4 per CPU was no better.
 */
unsigned server_worker_threads(int64_t threads)
{
	cpu_set_t set;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), quota = cgroup_cpus();

	if (threads > 0)
		return (unsigned)threads;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		cpus = CPU_COUNT(&set);
	if (quota > 0 && quota < cpus)
		cpus = quota;
	return SERVER_THREADS_PER_CPU * (cpus > 0 ? (unsigned)cpus : 1);
}

/* Options common to both listeners, for MHD_start_daemon's variable arguments. */
#define COMMON_OPTIONS(l, o, extra, timeout)                                   \
	MHD_OPTION_ARRAY, (extra), MHD_OPTION_CONNECTION_LIMIT,                \
		(unsigned int)(o)->max_connections,                            \
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(timeout),        \
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY, \
		MHD_OPTION_STRICT_FOR_CLIENT, (int)1,                          \
		MHD_OPTION_NOTIFY_COMPLETED, server_on_completed, (l),         \
		MHD_OPTION_NOTIFY_CONNECTION, server_on_connection, (l),       \
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL

static struct MHD_Daemon *start_daemon(struct listener *l,
				       const struct server_options *o,
				       const struct bind_addr *a, bool tls,
				       unsigned flags)
{
	unsigned threads = l->which == METRICS_LISTENER_HTTPS
				   ? server_worker_threads(o->threads)
				   : 1;
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
		return MHD_start_daemon(flags, (uint16_t)a->port, NULL, NULL,
					server_on_request, l,
					COMMON_OPTIONS(l, o, extra, timeout),
					MHD_OPTION_END);
	return MHD_start_daemon(flags | MHD_USE_TLS | MHD_ALLOW_SUSPEND_RESUME,
				(uint16_t)a->port, NULL, NULL,
				server_on_request, l,
				COMMON_OPTIONS(l, o, extra, timeout),
				MHD_OPTION_HTTPS_PRIORITIES, prio,
				MHD_OPTION_HTTPS_CERT_CALLBACK,
				server_tls_certificate, MHD_OPTION_END);
}

static int start_listener(struct listener *l, const struct server_options *o,
			  const char *address, bool tls, struct diag *d)
{
	struct bind_addr a;
	int rc = server_resolve(address, &a, d);

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
	server_tls_serve(tls);
	rc = start_listener(&s->https, opts, opts->listen, true, d);
	if (rc == 0 && strcmp(opts->metrics_listen, "off") != 0)
		rc = start_listener(&s->plain, opts, opts->metrics_listen,
				    false, d);
	if (rc != 0) {
		server_stop(s);
		return rc;
	}
	server_offload_start(s);
	if (pthread_create(&s->reaper, NULL, server_reaper_main, s) != 0) {
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
	int64_t start = clock_now_ms();

	while (atomic_load(&s->inflight) > 0) {
		if (clock_now_ms() - start >= timeout_ms)
			return false;
		clock_sleep_ms(10);
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
	server_offload_stop(s);
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
	server_tls_serve(NULL);
	mem_free(s);
}
