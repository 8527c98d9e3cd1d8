/*
 * Fuzz target: the one JSON reader (json_parse_with). For every input: the
 * whole heap tree, once printed by cJSON and read again, is the same tree (what
 * we accept we can also read back); a keep-schema parse into an arena gives the
 * same verdict (a refusal with the same message at the same byte, though it
 * skips what the whole parse builds), and the whole tree cut down by the same
 * schema, node for node and in order (duplicate keys included), or DIAG_ENOMEM
 * with the arena exhausted. Two schemas: the server's (a review around
 * mutate_pod_members) and a small recursive one whose short keys the fuzzer
 * finds quickly. Any disagreement aborts; ASan checks that abandoned heap trees
 * are freed and arena trees never are.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "mutate.h"

#include "fuzz.h"

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

static void fuzz_fixture(void)
{
	/* none: each input is read on its own */
}

static bool same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* cJSON prints 15 significant digits when they read back as "equal" to it
 * (within an epsilon of its own), so a printed number may move that little. */
static bool close_enough(double a, double b)
{
	double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);

	return fabs(a - b) <= scale * 1e-14;
}

/*
 * Exact, ordered equality (cJSON_Compare matches duplicate keys by name); with
 * printed, numbers compare as nearly equal values (cJSON prints -0 as 0).
 */
static bool same_tree(const cJSON *a, const cJSON *b, bool printed)
{
	if (a == NULL || b == NULL)
		return a == b;
	if ((a->type & 0xff) != (b->type & 0xff) ||
	    !same_string(a->string, b->string) ||
	    !same_string(a->valuestring, b->valuestring) ||
	    (cJSON_IsNumber(a) && !printed &&
	     memcmp(&a->valuedouble, &b->valuedouble, sizeof(double)) != 0) ||
	    (cJSON_IsNumber(a) && printed &&
	     !close_enough(a->valuedouble, b->valuedouble)))
		return false;
	for (a = a->child, b = b->child; a && b; a = a->next, b = b->next) {
		if (!same_tree(a, b, printed))
			return false;
	}
	return a == NULL && b == NULL;
}

/* Whether every number in the tree is finite (cJSON prints the others as null). */
static bool finite_numbers(const cJSON *node)
{
	if (cJSON_IsNumber(node) && !isfinite(node->valuedouble))
		return false;
	for (node = node->child; node; node = node->next) {
		if (!finite_numbers(node))
			return false;
	}
	return true;
}

static void check_round_trip(const cJSON *whole)
{
	char *text = cJSON_PrintUnformatted(whole);
	cJSON *again = NULL;
	struct diag d;

	if (text == NULL)
		abort();
	diag_clear(&d);
	if (json_parse(text, strlen(text), &again, &d) != 0) {
		fprintf(stderr, "cJSON's print refused: %s\n%s\n", d.text,
			text);
		abort();
	}
	/* the printer prints non-finite numbers as null */
	if (finite_numbers(whole) && !same_tree(whole, again, true)) {
		fprintf(stderr, "the round trip differs: %s\n", text);
		abort();
	}
	cJSON_Delete(again);
	free(text);
}

static void check(const char *text, size_t len, int whole_rc,
		  const char *whole_error, const cJSON *whole,
		  const struct json_keep *schema, size_t arena_max)
{
	_Alignas(16) char first[256];
	struct mem_arena arena;
	cJSON *pruned = NULL, *expected = NULL;
	struct diag d;
	int rc;

	diag_clear(&d);
	mem_arena_init(&arena, first, sizeof(first), arena_max);
	rc = json_parse_with(text, len, schema, &arena, &pruned, &d);
	if (rc == DIAG_ENOMEM && arena.exhausted)
		goto out;
	if (rc != whole_rc) {
		fprintf(stderr, "whole %d, kept %d (%s)\n", whole_rc, rc,
			d.text);
		abort();
	}
	if (rc != 0 && strcmp(d.text, whole_error) != 0) {
		fprintf(stderr, "whole: %s; kept: %s\n", whole_error, d.text);
		abort();
	}
	if (whole == NULL)
		goto out;
	expected = cJSON_Duplicate(whole, true);
	if (expected == NULL)
		abort();
	json_prune_tree(expected, schema);
	if (!same_tree(pruned, expected, false)) {
		fprintf(stderr, "the kept tree differs\n");
		abort();
	}
	cJSON_Delete(expected);
out:
	mem_arena_release(&arena); /* the arena's tree goes with it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	cJSON *whole = NULL;
	struct diag d;
	int rc;

	diag_clear(&d);
	rc = json_parse(text, size, &whole, &d);
	if (rc != 0 && rc != DIAG_EPARSE)
		abort();
	if (whole)
		check_round_trip(whole);
	check(text, size, rc, d.text, whole, review, 1 << 20);
	check(text, size, rc, d.text, whole, nested, 64 * size + 4096);
	check(text, size, rc, d.text, whole, nested, 512); /* exhausted early */
	cJSON_Delete(whole);
	return 0;
}
