/*
 * Fuzz target: the strict INI profile loader. A profile that loads must also join a
 * set and pass the settings check without crashing; a refusal must carry a line.
 */
#include <stdint.h>
#include <stdlib.h>

#include "mem.h"
#include "profile.h"
#include "profile_set.h"
#include "settings.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mem_install_json_hooks();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct profile_set *set = NULL;
	struct settings *st = NULL;
	struct profile *p = NULL;
	struct diag d;

	diag_clear(&d);
	if (profile_parse((const char *)data, size, "fuzz.ini", &p, &d) != 0) {
		if (d.code == DIAG_ECONFIG && d.where[0] == '\0')
			abort(); /* every refusal names its source */
		return 0;
	}
	if (profile_set_new_builtin(&set, NULL) != 0 || settings_new(&st) != 0)
		abort();
	if (profile_set_add(set, p, NULL) != 0)
		profile_free(p);
	profile_set_check_settings(set, st, NULL);
	profile_set_reads_sa_annotation(set, "eks.amazonaws.com/role-arn");
	settings_free(st);
	profile_set_free(set);
	return 0;
}
