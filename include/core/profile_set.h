/*
 * profile_set: the ordered set of profiles a webhook serves, in load order (the
 * built-in stackit first, then files by name). Pure; profile_dir fills it from
 * disk.
 */
#ifndef PIW_PROFILE_SET_H
#define PIW_PROFILE_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "profile.h"
#include "strbuf.h"

struct settings;
struct profile_set;
struct builtin_profile;

/* Creates an empty set. 0 or DIAG_ENOMEM. */
int profile_set_new(struct profile_set **ret_set);

/*
 * Creates a set holding the profiles compiled into the binary (stackit).
 * DIAG_ECONFIG would mean a broken build: profiles/stackit.ini is checked by
 * the test suite.
 */
int profile_set_new_builtin(struct profile_set **ret_set, struct diag *d);

/*
 * Adds p at the end, or in place of the profile with the same name. Takes
 * ownership of p on success only. Refuses (DIAG_ECONFIG) a set past
 * BOUND_PROFILES, and a volume name, a mount path or a setting declared with
 * another format that another profile of the set already has.
 */
int profile_set_add(struct profile_set *set, struct profile *p, struct diag *d);

/*
 * Parses each text (a table like builtin_profiles) and adds it as
 * profile_set_add does; `source` names them in messages. 0 or the first
 * profile's error.
 */
int profile_set_add_texts(struct profile_set *set,
			  const struct builtin_profile *texts, size_t n,
			  const char *source, struct diag *d);

/*
 * Number of profiles, the i-th in load order, and lookup by name (NULL if
 * absent).
 */
size_t profile_set_count(const struct profile_set *set);
const struct profile *profile_set_get(const struct profile_set *set, size_t i);
const struct profile *profile_set_find(const struct profile_set *set,
				       const char *name);

/* Frees the set and its profiles; accepts NULL. */
void profile_set_free(struct profile_set *set);

/*
 * Removes (and frees) every profile the deployment switched off
 * (settings_disable_profile), the built-in one included; the others keep their
 * order. A switched-off name that no loaded profile has is DIAG_ECONFIG, and
 * the set is then unchanged.
 */
int profile_set_drop_disabled(struct profile_set *set,
			      const struct settings *settings, struct diag *d);

/*
 * Applies the aliases the set's [setting] sections declare: each flag kept by
 * settings_add_flag becomes the setting that declares it as `flag` (an
 * undeclared one is DIAG_EINVAL, an unknown option), and each declared `env`
 * variable that is set fills its setting when nothing else did. Two settings
 * with one alias are DIAG_ECONFIG. Run before profile_set_check_settings.
 */
int profile_set_resolve_aliases(const struct profile_set *set,
				struct settings *settings, struct diag *d);

/*
 * Checks deployment settings against the set: each must be declared by some
 * profile, and each effective value (given, or a declaration's default) must
 * satisfy the declaration's format and that of every env var reading it.
 * DIAG_ECONFIG otherwise.
 */
int profile_set_check_settings(const struct profile_set *set,
			       const struct settings *settings, struct diag *d);

/*
 * Appends to out one line per pair of profiles that declare variables of the
 * same name ("shared variables: aws and vultr both set AWS_ROLE_ARN, ..."):
 * such profiles never share a container (rule 1). 0, DIAG_ENOMEM or
 * DIAG_ELIMIT (out is full).
 */
int profile_set_describe_shared_env(const struct profile_set *set,
				    struct strbuf *out);

/* Whether any profile of the set reads this ServiceAccount annotation. */
bool profile_set_reads_sa_annotation(const struct profile_set *set,
				     const char *key);

#endif
