/* The strict JSON front end: the pre-scan's verdicts at the edges of its fast paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "json.h"
#include "mem.h"

static int parse(const char *text, size_t len, struct diag *d)
{
	cJSON *root = NULL;
	int rc;

	diag_clear(d);
	rc = json_parse(text, len, &root, d);
	cJSON_Delete(root);
	return rc;
}

static void expect_ok(const char *text)
{
	struct diag d;

	if (parse(text, strlen(text), &d) != 0)
		fail_msg("refused %s: %s", text, d.text);
}

static void expect_bad(const char *text, size_t len, const char *needle)
{
	struct diag d;

	assert_int_equal(parse(text, len, &d), DIAG_EPARSE);
	if (strstr(d.text, needle) == NULL)
		fail_msg("want '%s' in '%s'", needle, d.text);
}

static void test_strings_across_word_boundaries(void **state)
{
	(void)state;
	for (int pad = 0; pad < 17; pad++) {
		char text[128], bad[128];

		/* a quote, an escape and a UTF-8 sequence at every alignment */
		snprintf(text, sizeof(text),
			 "{\"k\":\"%.*s\\\"x\\\\\xc3\xa9\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_ok(text);
		snprintf(bad, sizeof(bad), "{\"k\":\"%.*s\xff\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_bad(bad, strlen(bad), "invalid UTF-8");
		snprintf(bad, sizeof(bad), "{\"k\":\"%.*s\xc3\"}", pad,
			 "aaaaaaaaaaaaaaaaaaaa");
		expect_bad(bad, strlen(bad), "invalid UTF-8");
	}
	expect_bad("{\"k\":\"aaaaaaaa\xed\xa0\x80\"}", 17,
		   "invalid UTF-8"); /* surrogate */
	expect_bad("{\"k\":\"aaaaaaaa\xc0\xaf\"}", 16,
		   "invalid UTF-8"); /* overlong */
}

static void test_structure_inside_strings_is_text(void **state)
{
	char text[512];

	(void)state;
	memset(text, '[', sizeof(text));
	memcpy(text, "{\"k\":\"", 6);
	memcpy(text + sizeof(text) - 3, "\"}", 3);
	expect_ok(text); /* 500 brackets inside a string: not nesting */
	expect_ok("{\"k\":\"a\\\\\",\"l\":[1]}");
}

static void test_nul_escape_refused(void **state)
{
	(void)state;
	expect_bad("{\"k\":\"aaaaaaaaaaaa\\u0000\"}", 25, "NUL character");
}

static void test_depth_limit_exact(void **state)
{
	char text[2 * BOUND_JSON_DEPTH + 8];
	size_t n = 0;

	(void)state;
	for (int i = 0; i < BOUND_JSON_DEPTH; i++)
		text[n++] = '[';
	for (int i = 0; i < BOUND_JSON_DEPTH; i++)
		text[n++] = ']';
	text[n] = '\0';
	expect_ok(text);
	memmove(text + 1, text, n + 1);
	text[0] = '[';
	text[n + 1] = ']';
	text[n + 2] = '\0';
	expect_bad(text, n + 2, "nesting deeper than");
}

static void test_embedded_nul_byte_and_trailing_data(void **state)
{
	(void)state;
	expect_bad("{\"k\":1}\0", 8, "unexpected data");
	expect_bad("{\"k\":1} {}", 10, "unexpected data");
	expect_bad("   \n", 4, "empty document");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings_across_word_boundaries),
		cmocka_unit_test(test_structure_inside_strings_is_text),
		cmocka_unit_test(test_nul_escape_refused),
		cmocka_unit_test(test_depth_limit_exact),
		cmocka_unit_test(test_embedded_nul_byte_and_trailing_data),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
