/*
 * unit_json.h: the unit tests' JSON fixture reader. Included after <cmocka.h>
 * (a fixture that does not parse fails the test, naming why).
 */
#ifndef PIW_UNIT_JSON_H
#define PIW_UNIT_JSON_H

#include <string.h>

#include "diag.h"
#include "json.h"

/* The tree of a test's JSON text; the caller frees it with cJSON_Delete. */
static inline cJSON *parse(const char *text)
{
	cJSON *root = NULL;
	struct diag d;

	diag_clear(&d);
	if (json_parse(text, strlen(text), &root, &d) != 0)
		fail_msg("bad test JSON: %s", d.text);
	return root;
}

#endif
