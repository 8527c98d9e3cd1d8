/*
 * settings: deployment-level values (region, STS endpoint...) given on the
 * command line as NAME=VALUE. Profiles declare which names exist and their
 * formats; the set checks them (profile_set_check_settings) before anything is
 * served.
 */
#ifndef PIW_SETTINGS_H
#define PIW_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

struct settings;

/* Creates an empty collection. 0 or DIAG_ENOMEM. */
int settings_new(struct settings **ret);

/* Frees it; accepts NULL. */
void settings_free(struct settings *s);

/*
 * Sets name to value (copied), replacing an earlier value. DIAG_EINVAL for a
 * name that is not [a-z0-9-] or a value longer than BOUND_SETTING_VALUE or with
 * control bytes; DIAG_ELIMIT past BOUND_SETTINGS names.
 */
int settings_set(struct settings *s, const char *name, const char *value,
		 struct diag *d);

/* Parses "NAME=VALUE" and sets it. DIAG_EINVAL without '='. */
int settings_set_pair(struct settings *s, const char *pair, struct diag *d);

/* The value of name, or NULL. s may be NULL. */
const char *settings_get(const struct settings *s, const char *name);

/* Iteration in insertion order: count and the i-th name/value. */
size_t settings_count(const struct settings *s);
const char *settings_name(const struct settings *s, size_t i);
const char *settings_value(const struct settings *s, size_t i);

/* Looks up an environment variable (getenv, or a table in tests). */
typedef const char *(*settings_getenv_fn)(const char *name);

/*
 * Keeps "--flag VALUE" for an option no fixed flag matched (flag without its
 * dashes); a profile's [setting] may declare it as its alias, which
 * profile_set_resolve_aliases checks. 0, DIAG_EINVAL, DIAG_ELIMIT, DIAG_ENOMEM.
 */
int settings_add_flag(struct settings *s, const char *flag, const char *value,
		      struct diag *d);

/* The kept flags, in command-line order. */
size_t settings_flag_count(const struct settings *s);
const char *settings_flag_name(const struct settings *s, size_t i);
const char *settings_flag_value(const struct settings *s, size_t i);

/* Where the profiles' env aliases are read from (NULL: nowhere). */
void settings_set_env_source(struct settings *s, settings_getenv_fn get_env);

/* The environment variable name through that source, or NULL. */
const char *settings_env(const struct settings *s, const char *name);

/*
 * Switches the profile `name` off for this deployment (--disable-profile), the
 * built-in one included. 0, DIAG_EINVAL (not a profile name), DIAG_ELIMIT or
 * DIAG_ENOMEM.
 */
int settings_disable_profile(struct settings *s, const char *name,
			     struct diag *d);

/* Whether `name` was switched off. s may be NULL. */
bool settings_profile_disabled(const struct settings *s, const char *name);

/* The switched-off names, in the order given. */
size_t settings_disabled_count(const struct settings *s);
const char *settings_disabled_name(const struct settings *s, size_t i);

#endif
