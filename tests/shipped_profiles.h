/*
 * shipped_profiles.h: the profiles/ directory, compiled into the tests that run
 * the shipped profiles (cmake/embed.cmake, as the binary embeds stackit.ini), so
 * that those tests and fuzz targets link the pure core alone and read no file.
 */
#ifndef PIW_SHIPPED_PROFILES_H
#define PIW_SHIPPED_PROFILES_H

#include "builtin_profiles.h"
#include "profile_set.h"

extern const struct builtin_profile shipped_profiles[];
extern const size_t shipped_profiles_count;

/*
 * The set `serve --profiles-dir profiles` loads: the built-in profile, then each
 * shipped one (profiles/stackit.ini replaces the built-in copy of itself).
 */
static inline int shipped_profile_set(struct profile_set **ret_set,
				      struct diag *d)
{
	int rc = profile_set_new_builtin(ret_set, d);

	if (rc == 0)
		rc = profile_set_add_texts(*ret_set, shipped_profiles,
					   shipped_profiles_count, "shipped",
					   d);
	if (rc != 0) {
		profile_set_free(*ret_set);
		*ret_set = NULL;
	}
	return rc;
}

#endif
