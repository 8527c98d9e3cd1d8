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
};

struct config {
	enum cli_command command;
	bool help, version;

	/* profiles and deployment settings (every command) */
	const char *profiles_dir;
	struct settings *settings; /* owned */

	/* mutate */
	const char *pod_file;
	const char *sa_file;
	const char *namespace;
	const char *output; /* patch | pod | review */
};

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
