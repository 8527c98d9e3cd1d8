/*
 * config: one table of options. Each row says the flag, its environment
 * variable, the commands that take it, its type and bounds, its default and its
 * help; parsing, `--help` and `config_print_markdown` (docs/configuration.md)
 * all read the same rows, so the three cannot drift apart.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "settings.h"
#include "strutil.h"
#include "validate.h"

enum opt_kind {
	OPT_STRING,   /* stored as const char * */
	OPT_CHOICE,   /* a string from `choices` */
	OPT_SETTING,  /* NAME=VALUE, repeatable, into cfg->settings */
	OPT_DISABLE,  /* a profile name, repeatable, into cfg->settings */
	OPT_INT,      /* int64_t in [min, max] */
	OPT_DURATION, /* int64_t milliseconds in [min, max] */
	OPT_ADDRESS,  /* [HOST]:PORT as const char *; or "off" when `choices` */
};

struct option {
	const char *flag;
	const char *env; /* NULL: no environment variable */
	enum opt_kind kind;
	size_t offset;
	const char *def;
	const char *choices;
	int64_t min, max;
	unsigned commands;
	const char *metavar;
	const char *help;
};

#define ALL (CMD_SERVE | CMD_MUTATE | CMD_CHECK_PROFILES | CMD_AUDIT)
/* Flags for settings are declared by the profiles, not here: no cloud in C. */
#define SETTING_FLAG_HELP                                                \
	"same as --setting NAME=VALUE for the setting a loaded profile " \
	"declares with `flag = FLAG` (and `env = VARIABLE`, read when "  \
	"neither a flag nor PIW_SETTINGS sets it); check-profiles lists them"
#define OFF(field) offsetof(struct config, field)
#define MIB	   (1024 * 1024)
static const struct option options[] = {
	/* every command */
	{ "--profiles-dir", "PIW_PROFILES_DIR", OPT_STRING, OFF(profiles_dir),
	  NULL, NULL, 0, 0, ALL, "DIR",
	  "load every *.ini profile in DIR after the built-in ones" },
	{ "--setting", "PIW_SETTINGS", OPT_SETTING, 0, NULL, NULL, 0, 0, ALL,
	  "NAME=VALUE",
	  "set a deployment-level setting a profile declares (repeatable; the "
	  "variable takes a comma-separated list)" },

	{ "--disable-profile", "PIW_DISABLE_PROFILES", OPT_DISABLE, 0, NULL,
	  NULL, 0, 0, ALL, "NAME",
	  "switch the profile NAME off for this deployment, the built-in one "
	  "included (repeatable; the variable takes a comma-separated list); "
	  "a name no loaded profile has is an error" },

	/* mutate */
	{ "--pod", NULL, OPT_STRING, OFF(pod_file), NULL, NULL, 0, 0,
	  CMD_MUTATE, "FILE",
	  "Pod, AdmissionRequest or AdmissionReview JSON ('-' reads standard "
	  "input)" },
	{ "--service-account", NULL, OPT_STRING, OFF(sa_file), NULL, NULL, 0, 0,
	  CMD_MUTATE, "FILE",
	  "the pod's ServiceAccount JSON (omitted: the ServiceAccount does not "
	  "exist)" },
	{ "--namespace", NULL, OPT_STRING, OFF(namespace), NULL, NULL, 0, 0,
	  CMD_MUTATE, "NS",
	  "namespace of the request (default: the pod's, else the "
	  "ServiceAccount's)" },
	{ "--output", NULL, OPT_CHOICE, OFF(output), "patch",
	  "patch|pod|review", 0, 0, CMD_MUTATE, "WHAT",
	  "print the JSON Patch, the mutated pod or an AdmissionReview response" },
	{ "--identity-map", "PIW_IDENTITY_MAP", OPT_STRING, OFF(identity_map),
	  NULL, NULL, 0, 0, CMD_SERVE | CMD_MUTATE | CMD_AUDIT, "FILE",
	  "annotations for ServiceAccounts by namespace/name, applied as if on "
	  "the ServiceAccount (our format or a peer webhook's ConfigMap JSON; "
	  "serve reloads it on change)" },

	/* audit */
	{ "--namespace", NULL, OPT_STRING, OFF(namespace), NULL, NULL, 0, 0,
	  CMD_AUDIT, "NS",
	  "audit only this namespace (default: every namespace)" },
	{ "--output", NULL, OPT_CHOICE, OFF(output), "table", "table|json", 0,
	  0, CMD_AUDIT, "table|json",
	  "a kubectl-like table or one JSON document (-o is the same)" },
	{ "-o", NULL, OPT_CHOICE, OFF(output), NULL, "table|json", 0, 0,
	  CMD_AUDIT, "table|json", "same as --output" },
	{ "--page-size", NULL, OPT_INT, OFF(page_size), "500", NULL, 10, 5000,
	  CMD_AUDIT, "N", "pods and ServiceAccounts per list page" },

	/* serve */
	{ "--listen", "PIW_LISTEN", OPT_ADDRESS, OFF(listen), ":8443", NULL, 0,
	  0, CMD_SERVE, "[HOST]:PORT",
	  "HTTPS address of /mutate, /healthz, /readyz" },
	{ "--tls-cert", "PIW_TLS_CERT", OPT_STRING, OFF(tls_cert),
	  "/etc/webhook/certs/tls.crt", NULL, 0, 0, CMD_SERVE, "FILE",
	  "serving certificate chain (PEM); reloaded when it changes" },
	{ "--tls-key", "PIW_TLS_KEY", OPT_STRING, OFF(tls_key),
	  "/etc/webhook/certs/tls.key", NULL, 0, 0, CMD_SERVE, "FILE",
	  "private key (PEM, RSA or ECDSA); reloaded when it changes" },
	{ "--tls-min-version", "PIW_TLS_MIN_VERSION", OPT_CHOICE,
	  OFF(tls_min_version), "1.2", "1.2|1.3", 0, 0, CMD_SERVE, "1.2|1.3",
	  "oldest TLS version accepted" },
	{ "--metrics-listen", "PIW_METRICS_LISTEN", OPT_ADDRESS,
	  OFF(metrics_listen), ":9090", "off", 0, 0, CMD_SERVE,
	  "[HOST]:PORT|off",
	  "plain-HTTP address of /metrics, /healthz, /readyz" },
	{ "--service-accounts-dir", "PIW_SERVICE_ACCOUNTS_DIR", OPT_STRING,
	  OFF(sa_dir), NULL, NULL, 0, 0, CMD_SERVE, "DIR",
	  "read ServiceAccounts from JSON files in DIR (reloaded on change) "
	  "instead of the Kubernetes API" },
	{ "--kubeconfig", "PIW_KUBECONFIG", OPT_STRING, OFF(kubeconfig), NULL,
	  NULL, 0, 0, CMD_SERVE | CMD_AUDIT, "FILE",
	  "reach the Kubernetes API with this kubeconfig (default: the in-cluster "
	  "configuration)" },
	{ "--sa-lookup-timeout", "PIW_SA_LOOKUP_TIMEOUT", OPT_DURATION,
	  OFF(sa_lookup_timeout_ms), "1s", NULL, 50, 30000, CMD_SERVE,
	  "DURATION",
	  "how long a cache miss waits for a rate-limiter token, and then for "
	  "its live ServiceAccount GET" },
	{ "--sa-lookup-rate", "PIW_SA_LOOKUP_RATE", OPT_INT,
	  OFF(sa_lookup_rate), "20", NULL, 1, 10000, CMD_SERVE, "N",
	  "at most N live ServiceAccount GETs per second (cache misses) once "
	  "the burst is spent" },
	{ "--sa-lookup-burst", "PIW_SA_LOOKUP_BURST", OPT_INT,
	  OFF(sa_lookup_burst), "100", NULL, 1, 100000, CMD_SERVE, "N",
	  "live ServiceAccount GETs allowed at once; beyond, a cache miss waits "
	  "its turn at --sa-lookup-rate (at most --sa-lookup-timeout) before "
	  "it is refused" },
	{ "--sa-watch-idle-timeout", "PIW_SA_WATCH_IDLE_TIMEOUT", OPT_DURATION,
	  OFF(sa_watch_idle_ms), "2m", NULL, 1000, 3600000, CMD_SERVE,
	  "DURATION",
	  "a ServiceAccount watch silent this long (no event, no bookmark) is "
	  "reconnected" },
	{ "--sa-list-page-size", "PIW_SA_LIST_PAGE_SIZE", OPT_INT,
	  OFF(sa_list_page_size), "500", NULL, 10, 5000, CMD_SERVE, "N",
	  "ServiceAccounts per page when listing" },
	{ "--log-level", "PIW_LOG_LEVEL", OPT_CHOICE, OFF(log_level), "info",
	  "debug|info|warn|error", 0, 0, CMD_SERVE, "LEVEL",
	  "least severe level logged" },
	{ "--log-format", "PIW_LOG_FORMAT", OPT_CHOICE, OFF(log_format), "json",
	  "json|text", 0, 0, CMD_SERVE, "FORMAT",
	  "one JSON object or one key=value line per event, on standard error" },
	{ "--max-body-bytes", "PIW_MAX_BODY_BYTES", OPT_INT,
	  OFF(max_body_bytes), "1048576", NULL, 4096, 16 * MIB, CMD_SERVE, "N",
	  "larger request bodies get 413" },
	{ "--max-connections", "PIW_MAX_CONNECTIONS", OPT_INT,
	  OFF(max_connections), "1024", NULL, 4, 100000, CMD_SERVE, "N",
	  "concurrent connections per listener; more wait in the listen queue" },
	{ "--threads", "PIW_THREADS", OPT_INT, OFF(threads), "0", NULL, 0, 256,
	  CMD_SERVE, "N",
	  "request threads of the HTTPS listener (0: three per CPU the process "
	  "may use); the metrics listener has one" },
	{ "--request-timeout", "PIW_REQUEST_TIMEOUT", OPT_DURATION,
	  OFF(request_timeout_ms), "10s", NULL, 1000, 300000, CMD_SERVE,
	  "DURATION",
	  "an idle connection is closed after this long, and so is one whose "
	  "request is still incomplete this long after it started" },
	{ "--shutdown-delay", "PIW_SHUTDOWN_DELAY", OPT_DURATION,
	  OFF(shutdown_delay_ms), "0s", NULL, 0, 300000, CMD_SERVE, "DURATION",
	  "after SIGTERM, keep serving (reporting not ready) this long before "
	  "draining" },
	{ "--shutdown-timeout", "PIW_SHUTDOWN_TIMEOUT", OPT_DURATION,
	  OFF(shutdown_timeout_ms), "25s", NULL, 0, 300000, CMD_SERVE,
	  "DURATION", "longest wait for in-flight requests after SIGTERM" },
	{ "--reload-interval", "PIW_RELOAD_INTERVAL", OPT_DURATION,
	  OFF(reload_interval_ms), "2s", NULL, 100, 600000, CMD_SERVE,
	  "DURATION",
	  "how often the certificate, ServiceAccount and identity-map files are "
	  "checked for changes" },
};
#undef MIB
#undef OFF

static const struct {
	enum cli_command command;
	const char *name;
	const char *args;
	const char *summary;
} commands[] = {
	{ CMD_SERVE, "serve", "[options]", "run the HTTPS admission webhook" },
	{ CMD_MUTATE, "mutate", "--pod FILE [--service-account FILE] [options]",
	  "show offline what the webhook would do to a pod" },
	{ CMD_CHECK_PROFILES, "check-profiles", "[DIR] [options]",
	  "validate profiles and print a summary of each" },
	{ CMD_AUDIT, "audit",
	  "[--kubeconfig FILE] [--namespace NS] [--profiles-dir DIR] "
	  "[--setting NAME=VALUE]... [--identity-map FILE] [-o table|json]",
	  "judge every running pod as the webhook would now: ok, missing, "
	  "stale, denied, skipped or none" },
};

const char *config_command_name(enum cli_command command)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (commands[i].command == command)
			return commands[i].name;
	}
	return "pod-identity-webhook";
}

static enum cli_command find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].command;
	}
	return CMD_NONE;
}

static const struct option *find_option(const char *flag, size_t len,
					unsigned command)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		if ((options[i].commands & command) &&
		    strlen(options[i].flag) == len &&
		    strncmp(options[i].flag, flag, len) == 0)
			return &options[i];
	}
	return NULL;
}

static int set_settings_list(struct config *cfg, const char *list,
			     const char *origin, struct diag *d)
{
	const char *cursor = list, *item;
	char pair[1200];
	size_t len;

	while (str_list_next(&cursor, ",", &item, &len)) {
		if (len >= sizeof(pair))
			return diag_set_at(d, DIAG_EINVAL, origin, 0,
					   "setting too long");
		memcpy(pair, item, len);
		pair[len] = '\0';
		if (settings_set_pair(cfg->settings, pair, d) != 0) {
			diag_locate(d, origin, 0);
			return DIAG_EINVAL;
		}
	}
	return 0;
}

static int set_int(struct config *cfg, const struct option *o,
		   const char *value, const char *origin, struct diag *d)
{
	int64_t v;
	int rc = o->kind == OPT_DURATION
			 ? config_parse_duration(value, &v)
			 : str_to_i64(value, INT64_MIN, INT64_MAX, &v);

	if (rc != 0 || v < o->min || v > o->max) {
		if (o->kind == OPT_DURATION)
			return diag_set_at(
				d, DIAG_EINVAL, origin, 0,
				"'%.64s' is not a duration between "
				"%lldms and %llds (e.g. 500ms, 10s, 2m)",
				value, (long long)o->min,
				(long long)(o->max / 1000));
		return diag_set_at(
			d, DIAG_EINVAL, origin, 0,
			"'%.64s' is not a whole number in [%lld, %lld]", value,
			(long long)o->min, (long long)o->max);
	}
	*(int64_t *)((char *)cfg + o->offset) = v;
	return 0;
}

static int set_address(struct config *cfg, const struct option *o,
		       const char *value, const char *origin, struct diag *d)
{
	char host[64];
	int port;

	if (!(o->choices && strcmp(value, o->choices) == 0) &&
	    config_split_address(value, host, sizeof(host), &port) != 0)
		return diag_set_at(d, DIAG_EINVAL, origin, 0,
				   "'%.64s' is not [HOST]:PORT (e.g. :8443, "
				   "127.0.0.1:8443, [::1]:8443)%s%s",
				   value, o->choices ? " or " : "",
				   o->choices ? o->choices : "");
	*(const char **)((char *)cfg + o->offset) = value;
	return 0;
}

static int set_setting(struct config *cfg, const char *value,
		       const char *origin, bool from_env, struct diag *d)
{
	int rc;

	if (from_env)
		return set_settings_list(cfg, value, origin, d);
	rc = settings_set_pair(cfg->settings, value, d);
	if (rc != 0) {
		diag_locate(d, origin, 0);
		return DIAG_EINVAL;
	}
	return 0;
}

static int disable_profiles(struct config *cfg, const char *value,
			    const char *origin, bool from_env, struct diag *d)
{
	const char *cursor = value, *item;
	char name[BOUND_PROFILE_NAME + 2];
	size_t len;
	int rc = 0;

	if (!from_env)
		rc = settings_disable_profile(cfg->settings, value, d);
	while (rc == 0 && from_env &&
	       str_list_next(&cursor, ",", &item, &len)) {
		snprintf(name, sizeof(name), "%.*s", (int)len, item);
		rc = len < sizeof(name) - 1
			     ? settings_disable_profile(cfg->settings, name, d)
			     : diag_set(d, DIAG_EINVAL,
					"'%.*s' is not a profile name",
					(int)(len > 64 ? 64 : len), item);
	}
	if (rc != 0)
		diag_locate(d, origin, 0);
	return rc;
}

static int apply_value(struct config *cfg, const struct option *o,
		       const char *value, const char *origin, bool from_env,
		       struct diag *d)
{
	switch (o->kind) {
	case OPT_STRING:
		if (value[0] == '\0')
			return diag_set_at(d, DIAG_EINVAL, origin, 0,
					   "needs a non-empty value");
		break;
	case OPT_CHOICE:
		if (value[0] == '\0' ||
		    !str_list_contains(o->choices, "|", value))
			return diag_set_at(d, DIAG_EINVAL, origin, 0,
					   "'%.64s' is not one of %s", value,
					   o->choices);
		break;
	case OPT_SETTING:
		return set_setting(cfg, value, origin, from_env, d);
	case OPT_DISABLE:
		return disable_profiles(cfg, value, origin, from_env, d);
	case OPT_INT:
	case OPT_DURATION:
		return set_int(cfg, o, value, origin, d);
	case OPT_ADDRESS:
		return set_address(cfg, o, value, origin, d);
	}
	*(const char **)((char *)cfg + o->offset) = value;
	return 0;
}

static int apply_defaults_and_env(struct config *cfg, config_getenv_fn get_env,
				  struct diag *d)
{
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option *o = &options[i];
		const char *value;
		int rc;

		if (!(o->commands & cfg->command))
			continue;
		if (o->def)
			apply_value(cfg, o, o->def, o->flag, false, d);
		value = o->env && get_env ? get_env(o->env) : NULL;
		if (value == NULL)
			continue;
		rc = apply_value(cfg, o, value, o->env, true, d);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Whether the len bytes at s are [a-z0-9-], as a setting's flag must be. */
static bool validate_simple_name_n(const char *s, size_t len)
{
	char name[64];

	if (len >= sizeof(name) || s[0] == '-')
		return false;
	memcpy(name, s, len);
	name[len] = '\0';
	return validate_simple_name(name, 63);
}

/*
 * No fixed option has this name: a profile's [setting] may declare it as its
 * `flag`. Kept until the profiles are loaded (profile_set_resolve_aliases),
 * where a name no profile declares is refused as an unknown option.
 */
static int keep_setting_flag(struct config *cfg, const char *name, size_t len,
			     const char *value, struct diag *d)
{
	char flag[64];

	memcpy(flag, name, len);
	flag[len] = '\0';
	if (settings_add_flag(cfg->settings, flag, value, d) != 0) {
		diag_locate(d, "--", 0);
		return DIAG_EINVAL;
	}
	return 0;
}

/* Handles argv[*i]; advances *i past a separate value. */
static int parse_flag(struct config *cfg, int argc, char *const argv[], int *i,
		      struct diag *d)
{
	const char *arg = argv[*i], *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct option *o = find_option(arg, len, cfg->command);
	const char *value = eq ? eq + 1 : NULL;

	if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
		cfg->help = true;
		return 0;
	}
	if (o == NULL && (cfg->command & ALL) && len > 2 &&
	    (value || *i + 1 < argc) &&
	    validate_simple_name_n(arg + 2, len - 2))
		return keep_setting_flag(cfg, arg + 2, len - 2,
					 value ? value : argv[++*i], d);
	if (o == NULL)
		return diag_set(d, DIAG_EINVAL,
				"unknown option '%.*s' for %s (see %s --help)",
				(int)len, arg,
				config_command_name(cfg->command),
				config_command_name(cfg->command));
	if (value == NULL) {
		if (*i + 1 >= argc)
			return diag_set_at(d, DIAG_EINVAL, o->flag, 0,
					   "needs a value (%s)", o->metavar);
		value = argv[++*i];
	}
	return apply_value(cfg, o, value, o->flag, false, d);
}

static int parse_positional(struct config *cfg, const char *arg, struct diag *d)
{
	if (cfg->command == CMD_CHECK_PROFILES && cfg->profiles_dir == NULL) {
		cfg->profiles_dir = arg;
		return 0;
	}
	return diag_set(d, DIAG_EINVAL, "unexpected argument '%.100s' for %s",
			arg, config_command_name(cfg->command));
}

int config_parse(int argc, char *const argv[], config_getenv_fn get_env,
		 struct config *cfg, struct diag *d)
{
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (argc < 2)
		return diag_set(d, DIAG_EINVAL,
				"no command given (see --help)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		cfg->help = true;
		cfg->help_markdown =
			argc > 2 && strcmp(argv[2], "--markdown") == 0;
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		cfg->version = true;
		return 0;
	}
	cfg->command = find_command(argv[1]);
	if (cfg->command == CMD_NONE)
		return diag_set(d, DIAG_EINVAL,
				"unknown command '%.64s' (see --help)",
				argv[1]);
	if (settings_new(&cfg->settings) != 0)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	settings_set_env_source(cfg->settings, get_env);
	rc = apply_defaults_and_env(cfg, get_env, d);
	for (int i = 2; rc == 0 && i < argc && !cfg->help; i++) {
		if (argv[i][0] == '-' && argv[i][1] != '\0')
			rc = parse_flag(cfg, argc, argv, &i, d);
		else
			rc = parse_positional(cfg, argv[i], d);
	}
	if (rc != 0)
		config_free(cfg);
	return rc;
}

void config_free(struct config *cfg)
{
	settings_free(cfg->settings);
	cfg->settings = NULL;
}

void config_print_usage(FILE *out, enum cli_command command)
{
	fprintf(out, "usage: pod-identity-webhook %s %s\n",
		command ? config_command_name(command) : "COMMAND",
		command ? "" : "[options]");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (command == CMD_NONE || commands[i].command == command)
			fprintf(out, "  %-15s %s\n    %s %s\n",
				commands[i].name, commands[i].summary,
				commands[i].name, commands[i].args);
	}
	fprintf(out, "\noptions%s:\n", command ? "" : " (by command)");
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option *o = &options[i];

		if (command != CMD_NONE && !(o->commands & command))
			continue;
		fprintf(out, "  %s %s\n      %s", o->flag, o->metavar, o->help);
		if (o->def)
			fprintf(out, " (default %s)", o->def);
		if (o->env)
			fprintf(out, " [env %s]", o->env);
		fputc('\n', out);
	}
	if (command == CMD_NONE || (command & ALL))
		fprintf(out, "  --FLAG VALUE\n      %s\n", SETTING_FLAG_HELP);
	if (command == CMD_NONE)
		fprintf(out, "\n  --help, --version\n");
}

static void print_commands_cell(FILE *out, unsigned mask)
{
	const char *sep = "";

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (mask & commands[i].command) {
			fprintf(out, "%s%s", sep, commands[i].name);
			sep = ", ";
		}
	}
}

void config_print_markdown(FILE *out)
{
	fprintf(out, "| flag | environment | commands | default | meaning |\n");
	fprintf(out, "|---|---|---|---|---|\n");
	for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++) {
		const struct option *o = &options[i];

		fprintf(out, "| `%s %s` | %s%s%s | ", o->flag, o->metavar,
			o->env ? "`" : "", o->env ? o->env : "",
			o->env ? "`" : "");
		print_commands_cell(out, o->commands);
		fprintf(out, " | %s%s%s | %s |\n", o->def ? "`" : "",
			o->def ? o->def : "", o->def ? "`" : "", o->help);
	}
	fprintf(out, "| `--FLAG VALUE` | a profile's | ");
	print_commands_cell(out, ALL);
	fprintf(out, " |  | %s |\n", SETTING_FLAG_HELP);
}

int config_split_address(const char *address, char *host, size_t host_size,
			 int *port)
{
	const char *colon = strrchr(address, ':');
	const char *start = address, *end;
	int64_t p;
	size_t n;

	if (colon == NULL || str_to_i64(colon + 1, 1, 65535, &p) != 0)
		return DIAG_EINVAL;
	end = colon;
	if (address[0] == '[') {
		if (colon == address || colon[-1] != ']')
			return DIAG_EINVAL;
		start = address + 1;
		end = colon - 1;
	} else if (memchr(address, ':', (size_t)(colon - address))) {
		return DIAG_EINVAL; /* IPv6 needs brackets */
	}
	n = (size_t)(end - start);
	if (n >= host_size)
		return DIAG_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = start[i];

		if (!str_is_hex(c) && c != '.' && c != ':')
			return DIAG_EINVAL;
	}
	memcpy(host, start, n);
	host[n] = '\0';
	*port = (int)p;
	return 0;
}

int config_parse_duration(const char *text, int64_t *ret_ms)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "", 1000 } };
	char digits[24];
	size_t n = 0;
	int64_t v;

	while (str_is_digit(text[n]))
		n++;
	if (n == 0 || n >= sizeof(digits))
		return DIAG_EPARSE;
	memcpy(digits, text, n);
	digits[n] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(text + n, units[i].suffix) != 0)
			continue;
		if (str_to_i64(digits, 0, 86400000 / units[i].ms, &v) != 0)
			return DIAG_ELIMIT;
		*ret_ms = v * units[i].ms;
		return 0;
	}
	return DIAG_EPARSE;
}
