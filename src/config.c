/*
 * config: one table of options. Each row says the flag, its environment
 * variable, the commands that take it, its type and bounds, its default and its
 * help; parsing, `--help` and `config_print_markdown` (docs/configuration.md)
 * all read the same rows, so the three cannot drift apart.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "settings.h"
#include "strutil.h"

enum opt_kind {
	OPT_STRING,  /* stored as const char * */
	OPT_CHOICE,  /* a string from `choices` */
	OPT_SETTING, /* NAME=VALUE, repeatable, into cfg->settings */
};

struct option {
	const char *flag;
	const char *env; /* NULL: no environment variable */
	enum opt_kind kind;
	size_t offset;
	const char *def;
	const char *choices;
	unsigned commands;
	const char *metavar;
	const char *help;
};

#define ALL	   (CMD_SERVE | CMD_MUTATE | CMD_CHECK_PROFILES)
#define OFF(field) offsetof(struct config, field)
static const struct option options[] = {
	{ "--profiles-dir", "PIW_PROFILES_DIR", OPT_STRING, OFF(profiles_dir),
	  NULL, NULL, ALL, "DIR",
	  "load every *.ini profile in DIR after the built-in ones" },
	{ "--setting", "PIW_SETTINGS", OPT_SETTING, 0, NULL, NULL, ALL,
	  "NAME=VALUE",
	  "set a deployment-level setting a profile declares (repeatable; the variable "
	  "takes a comma-separated list)" },
	{ "--pod", NULL, OPT_STRING, OFF(pod_file), NULL, NULL, CMD_MUTATE,
	  "FILE",
	  "Pod, AdmissionRequest or AdmissionReview JSON ('-' reads standard input)" },
	{ "--service-account", NULL, OPT_STRING, OFF(sa_file), NULL, NULL,
	  CMD_MUTATE, "FILE",
	  "the pod's ServiceAccount JSON (omitted: the ServiceAccount does not exist)" },
	{ "--namespace", NULL, OPT_STRING, OFF(namespace), NULL, NULL,
	  CMD_MUTATE, "NS",
	  "namespace of the request (default: the pod's, else the ServiceAccount's)" },
	{ "--output", NULL, OPT_CHOICE, OFF(output), "patch",
	  "patch|pod|review", CMD_MUTATE, "WHAT",
	  "print the JSON Patch, the mutated pod or an AdmissionReview response" },
};
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
		if (!str_list_contains(o->choices, "|", value) ||
		    value[0] == '\0')
			return diag_set_at(d, DIAG_EINVAL, origin, 0,
					   "'%.64s' is not one of %s", value,
					   o->choices);
		break;
	case OPT_SETTING:
		if (from_env)
			return set_settings_list(cfg, value, origin, d);
		if (settings_set_pair(cfg->settings, value, d) != 0) {
			diag_locate(d, origin, 0);
			return DIAG_EINVAL;
		}
		return 0;
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
	rc = apply_defaults_and_env(cfg, get_env, d);
	for (int i = 2; rc == 0 && i < argc && !cfg->help; i++) {
		if (strncmp(argv[i], "--", 2) == 0 ||
		    strcmp(argv[i], "-h") == 0)
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
}
