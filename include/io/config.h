/*
 * config: command-line flags and environment variables, declared once in a
 * table from which parsing, --help and the docs/configuration.md table are all
 * produced.
 */
#ifndef PIW_CONFIG_H
#define PIW_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "diag.h"

struct settings;

enum cli_command {
	CMD_NONE = 0,
	CMD_SERVE = 1 << 0,
	CMD_MUTATE = 1 << 1,
	CMD_CHECK_PROFILES = 1 << 2,
	CMD_AUDIT = 1 << 3,
};

struct config {
	enum cli_command command;
	bool help, version;
	bool help_markdown; /* `help --markdown`: the options as a Markdown table */

	/* profiles and deployment settings (every command) */
	const char *profiles_dir;
	struct settings *settings; /* owned */
	const char *identity_map;  /* --identity-map (serve, mutate, audit) */

	/* mutate */
	const char *pod_file;
	const char *sa_file;
	const char *namespace;
	const char
		*output; /* mutate: patch | pod | review; audit: table | json */

	/* audit */
	int64_t page_size; /* items per list page */

	/* serve */
	const char *listen;	    /* [HOST]:PORT */
	const char *metrics_listen; /* [HOST]:PORT, or "off" */
	const char *tls_cert, *tls_key;
	const char *tls_min_version; /* "1.2" | "1.3" */
	const char *log_level;	     /* debug | info | warn | error */
	const char *log_format;	     /* json | text */
	const char *sa_dir;	     /* --service-accounts-dir */
	const char *kubeconfig;
	int64_t max_body_bytes;
	int64_t max_connections;
	int64_t threads; /* HTTPS request threads; 0: three per CPU */
	int64_t request_timeout_ms;
	int64_t shutdown_delay_ms;
	int64_t shutdown_timeout_ms;
	int64_t reload_interval_ms;
	int64_t sa_lookup_timeout_ms;
	int64_t sa_lookup_rate; /* live lookups per second */
	int64_t sa_lookup_burst; /* live lookups at once before the rate paces them */
	int64_t sa_watch_idle_ms;
	int64_t sa_list_page_size;
};

/*
 * Splits "[HOST]:PORT" (HOST: empty for all interfaces, an IPv4 address, or an IPv6
 * address in brackets) into host (NUL-terminated, without brackets) and port.
 * 0 or DIAG_EINVAL.
 */
int config_split_address(const char *address, char *host, size_t host_size,
			 int *port);

/*
 * Parses a duration: digits followed by "ms", "s" or "m" (a bare number is seconds)
 * into milliseconds. 0, DIAG_EPARSE or DIAG_ELIMIT (negative or past a day).
 */
int config_parse_duration(const char *text, int64_t *ret_ms);

/* Looks up an environment variable (getenv in production, a table in tests). */
typedef const char *(*config_getenv_fn)(const char *name);

/*
 * Parses argv (argv[1] is the command) and the environment into cfg. Flags beat
 * environment variables, which beat defaults. Unknown flags, missing or bad
 * values fail with DIAG_EINVAL and a message naming the flag or variable. cfg
 * strings point into argv or the environment; cfg->settings is allocated
 * (config_free).
 */
int config_parse(int argc, char *const argv[], config_getenv_fn get_env,
		 struct config *cfg, struct diag *d);

/* Frees what config_parse allocated. */
void config_free(struct config *cfg);

/* Prints usage for one command (CMD_NONE: the overview). */
void config_print_usage(FILE *out, enum cli_command command);

/* Prints the Markdown table of every option (for docs/configuration.md). */
void config_print_markdown(FILE *out);

/* The name of a command ("serve", ...). */
const char *config_command_name(enum cli_command command);

#endif
