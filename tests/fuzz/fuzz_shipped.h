/*
 * fuzz_shipped.h: the fixture of the targets that run the shipped profiles
 * (fuzz_admission, fuzz_audit).
 */
#ifndef PIW_FUZZ_SHIPPED_H
#define PIW_FUZZ_SHIPPED_H

#include <stdlib.h>

#include "settings.h"
#include "shipped_profiles.h"

/*
 * The shipped profiles and settings set from "key=value" pairs (NULL-ended).
 * A fixture, not an input: any failure aborts.
 */
static inline void fuzz_shipped_profiles(struct profile_set **ret_profiles,
					 struct settings **ret_settings,
					 const char *const *pairs)
{
	if (shipped_profile_set(ret_profiles, NULL) != 0 ||
	    settings_new(ret_settings) != 0)
		abort();
	for (; *pairs; pairs++) {
		if (settings_set_pair(*ret_settings, *pairs, NULL) != 0)
			abort();
	}
}

#endif
