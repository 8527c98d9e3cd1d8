/*
 * main: the three commands. Process-wide setup (allocation hooks) happens here
 * and nowhere else; everything below takes its configuration as arguments.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "cli_audit.h"
#include "config.h"
#include "mem.h"
#include "serve.h"

#ifndef PIW_VERSION
#define PIW_VERSION "0.0.0"
#endif

static const char *real_getenv(const char *name)
{
	return getenv(name);
}

static int run(const struct config *cfg)
{
	switch (cfg->command) {
	case CMD_MUTATE:
		return cli_mutate(cfg, stdout, stderr);
	case CMD_CHECK_PROFILES:
		return cli_check_profiles(cfg, stdout, stderr);
	case CMD_AUDIT:
		return cli_audit(cfg, stdout, stderr);
	case CMD_SERVE:
		return serve_run(cfg, PIW_VERSION);
	default:
		fprintf(stderr,
			"pod-identity-webhook: %s is not available in this build\n",
			config_command_name(cfg->command));
		return CLI_BAD_INPUT;
	}
}

int main(int argc, char *argv[])
{
	struct config cfg;
	struct diag d;
	char line[sizeof(d.where) + sizeof(d.text) + 32];
	int status;

	mem_install_json_hooks();
	diag_clear(&d);
	if (config_parse(argc, argv, real_getenv, &cfg, &d) != 0) {
		diag_format(&d, line, sizeof(line));
		fprintf(stderr, "pod-identity-webhook: %s\n", line);
		return CLI_BAD_INPUT;
	}
	if (cfg.version) {
		printf("pod-identity-webhook %s\n", PIW_VERSION);
		return 0;
	}
	if (cfg.help_markdown) {
		config_print_markdown(stdout);
		return 0;
	}
	if (cfg.help) {
		config_print_usage(stdout, cfg.command);
		config_free(&cfg);
		return 0;
	}
	status = run(&cfg);
	config_free(&cfg);
	return status;
}
