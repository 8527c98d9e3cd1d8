/*
 * Fuzz target: the pruning parser against json_parse(), input by input. Both must
 * accept or both refuse; when both accept, the pruned tree must be the whole tree cut
 * down by the same schema, node for node and in order (duplicate keys included). Two
 * schemas: the server's (a review around mutate_pod_members) and a small recursive
 * one whose short keys the fuzzer finds quickly. Any disagreement aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json_prune.h"
#include "mem.h"
#include "mutate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct json_keep nested[] = {
	{ "k", NULL, false },
	{ "a", nested, true },
	{ "o", nested, false },
	{ NULL, NULL, false },
};
static const struct json_keep request[] = {
	{ "uid", NULL, false },
	{ "object", mutate_pod_members, false },
	{ NULL, NULL, false },
};
static const struct json_keep review[] = {
	{ "kind", NULL, false },
	{ "request", request, false },
	{ "o", nested, false },
	{ NULL, NULL, false },
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mem_install_json_hooks();
	return 0;
}

static bool same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Exact, ordered equality (cJSON_Compare matches duplicate keys by name). */
static bool same_tree(const cJSON *a, const cJSON *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if ((a->type & 0xff) != (b->type & 0xff) ||
	    !same_string(a->string, b->string) ||
	    !same_string(a->valuestring, b->valuestring) ||
	    (cJSON_IsNumber(a) &&
	     memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) != 0))
		return false;
	for (a = a->child, b = b->child; a && b; a = a->next, b = b->next) {
		if (!same_tree(a, b))
			return false;
	}
	return a == NULL && b == NULL;
}

static void check(const char *text, size_t len, const cJSON *whole,
		  const struct json_keep *schema)
{
	cJSON *pruned = NULL, *expected = NULL;
	struct diag d;
	int rc = json_parse_pruned(text, len, schema, &pruned, &d);

	if ((rc == 0) != (whole != NULL)) {
		fprintf(stderr, "json_parse %s, json_parse_pruned %s (%s)\n",
			whole ? "accepts" : "refuses",
			rc == 0 ? "accepts" : "refuses", d.text);
		abort();
	}
	if (whole == NULL)
		return;
	expected = cJSON_Duplicate(whole, true);
	if (expected == NULL)
		abort();
	json_prune_tree(expected, schema);
	if (!same_tree(pruned, expected)) {
		fprintf(stderr, "the pruned tree differs\n");
		abort();
	}
	cJSON_Delete(expected);
	cJSON_Delete(pruned);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	cJSON *whole = NULL;

	json_parse(text, size, &whole, NULL);
	check(text, size, whole, review);
	check(text, size, whole, nested);
	cJSON_Delete(whole);
	return 0;
}
