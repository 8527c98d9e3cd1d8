/*
 * cli_audit: `pod-identity-webhook audit`: lists the ServiceAccounts and pods of
 * the live cluster (read-only: list only) and judges every pod with the same
 * decision and profiles as the webhook; prints a table or JSON.
 */
#ifndef PIW_CLI_AUDIT_H
#define PIW_CLI_AUDIT_H

#include <stdio.h>

#include "config.h"

/*
 * Runs the audit: the report on out, progress and errors on err. Returns 0 when
 * no pod is missing, stale or denied, 1 when one is, 2 (CLI_BAD_INPUT) on a
 * usage, configuration or API error.
 */
int cli_audit(const struct config *cfg, FILE *out, FILE *err);

#endif
