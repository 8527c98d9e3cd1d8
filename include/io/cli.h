/*
 * cli: the offline commands, `mutate` and `check-profiles`. They run the same
 * code as the server (admission decode, mutate, patch) on files: one code path,
 * two front doors.
 */
#ifndef PIW_CLI_H
#define PIW_CLI_H

#include <stdio.h>

#include "config.h"

/* Exit statuses of the offline commands. */
enum {
	CLI_ADMITTED = 0,
	CLI_DENIED =
		1, /* mutate: the pod is denied; check-profiles: invalid profiles */
	CLI_BAD_INPUT =
		2, /* usage or input error, with a one-line message on err */
};

/* Prints "pod-identity-webhook: where:line: why" on err; returns CLI_BAD_INPUT. */
int cli_report(FILE *err, const struct diag *d);

/*
 * `mutate`: prints the requested output on out, the decision and warnings on
 * err.
 */
int cli_mutate(const struct config *cfg, FILE *out, FILE *err);

/* `check-profiles`: validates the built-in profiles plus cfg->profiles_dir, prints a
 * summary of each on out. */
int cli_check_profiles(const struct config *cfg, FILE *out, FILE *err);

#endif
