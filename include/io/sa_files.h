/*
 * sa_files: ServiceAccounts from a directory of JSON manifests (one ServiceAccount per
 * file, or a List of them), reloaded when the directory changes. For local runs and
 * tests: `serve --service-accounts-dir DIR`.
 */
#ifndef PIW_SA_FILES_H
#define PIW_SA_FILES_H

#include "diag.h"
#include "metrics.h"
#include "sa_source.h"

/*
 * Creates the source and loads dir once. A directory that cannot be loaded is an error
 * here (d says which file and why); later failed reloads keep the previous set and log.
 * `metrics` may be NULL.
 */
int sa_files_new(const char *dir, struct metrics *metrics,
		 struct sa_source **ret, struct diag *d);

#endif
