/*
 * profile_dir: builds the profile set a process serves: the built-in profiles,
 * then every *.ini of a directory in name order. I/O at the edge of the pure
 * profile code.
 */
#ifndef PIW_PROFILE_DIR_H
#define PIW_PROFILE_DIR_H

#include "diag.h"
#include "profile_set.h"

/*
 * Loads the built-in profiles and, when dir is not NULL, every "*.ini" regular
 * file in it (hidden files skipped; symlinks followed, as in a mounted
 * ConfigMap), sorted by name. A file's profile name must equal its file name
 * without ".ini"; a file named like a built-in profile replaces it. All or
 * nothing: on error *ret_set is NULL and d says "file:line: reason".
 */
int profile_dir_load(const char *dir, struct profile_set **ret_set,
		     struct diag *d);

struct settings;

/*
 * profile_dir_load() followed by the settings' aliases
 * (profile_set_resolve_aliases) and the check of the deployment settings
 * against the set (profile_set_check_settings): what every command needs
 * before using profiles.
 */
int profile_dir_load_checked(const char *dir, struct settings *settings,
			     struct profile_set **ret_set, struct diag *d);

#endif
