/*
 * builtin_profiles: profile texts compiled into the binary. The C file is
 * generated at build time from the profiles/ INI files by cmake/embed.cmake:
 * the INI file is the only source.
 */
#ifndef PIW_BUILTIN_PROFILES_H
#define PIW_BUILTIN_PROFILES_H

#include <stddef.h>

struct builtin_profile {
	const char *name; /* file name without .ini */
	const char *text;
	size_t len;
};

extern const struct builtin_profile builtin_profiles[];
extern const size_t builtin_profiles_count;

#endif
