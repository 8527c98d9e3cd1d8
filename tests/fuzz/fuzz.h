/*
 * fuzz.h: the prologue every libFuzzer target shares. A target includes it
 * once, after its own headers, and defines `static void fuzz_fixture(void)`:
 * what it builds once before the first input (an empty body when it needs
 * nothing). This header defines LLVMFuzzerInitialize: cJSON allocates through
 * mem.c (as in the daemon), then the fixture is built.
 */
#ifndef PIW_FUZZ_H
#define PIW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* libFuzzer's entry points (declared: -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fixture(void);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mem_install_json_hooks();
	fuzz_fixture();
	return 0;
}

#endif
