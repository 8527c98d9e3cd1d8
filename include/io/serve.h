/*
 * serve: the `serve` command. Builds everything the server needs from the
 * configuration, runs the main loop (signals, certificate and ServiceAccount reloads)
 * and shuts down gracefully.
 */
#ifndef PIW_SERVE_H
#define PIW_SERVE_H

#include "config.h"

/*
 * Runs until SIGTERM or SIGINT. Returns the process exit status: 0 after a clean
 * shutdown, 1 when a listener cannot start, 2 for a configuration error (message on
 * stderr).
 */
int serve_run(const struct config *cfg, const char *version);

#endif
