/*
 * strutil and strbuf: the bounded copies and decimal formatting that replaced
 * snprintf on the admission path must write what snprintf wrote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include <limits.h>
#include <string.h>

#include "strbuf.h"
#include "strutil.h"

static void expect_copy(const char *src, size_t n, size_t size)
{
	char got[40], want[32];
	size_t len;

	memset(got, 'x', sizeof(got));
	len = str_copy(got, size, src, n);
	snprintf(want, size, "%.*s", n > INT_MAX ? INT_MAX : (int)n, src);
	assert_string_equal(got, want);
	assert_int_equal(len, strlen(want));
	assert_int_equal(got[size], 'x'); /* nothing past size */
}

static void test_copy_like_snprintf(void **state)
{
	(void)state;
	expect_copy("/var/run/secrets", SIZE_MAX, 32);
	expect_copy("/var/run/secrets", SIZE_MAX, 5); /* truncated */
	expect_copy("/var/run/secrets", 4, 32);	      /* first n bytes */
	expect_copy("/var/run/secrets", 0, 32);	      /* nothing */
	expect_copy("", SIZE_MAX, 8);
	expect_copy("ab", SIZE_MAX, 1); /* room for the NUL only */
	expect_copy("ab", SIZE_MAX, 3); /* exactly fits */
}

static void test_copy_chains(void **state)
{
	char path[12];
	size_t n;

	(void)state;
	n = str_copy(path, sizeof(path), "/var/run", SIZE_MAX);
	n += str_copy(path + n, sizeof(path) - n, "/", 1);
	n += str_copy(path + n, sizeof(path) - n, "token", SIZE_MAX);
	assert_string_equal(path, "/var/run/to"); /* as "%s/%s" truncates */
	assert_int_equal(n, 11);
	n += str_copy(path + n, sizeof(path) - n, "more", SIZE_MAX);
	assert_int_equal(n, 11);
	assert_int_equal(str_copy(path, 0, "x", 1), 0); /* size 0: untouched */
}

static void expect_decimal(long long v)
{
	char got[STR_I64_SIZE], want[32];
	struct strbuf sb;

	snprintf(want, sizeof(want), "%lld", v);
	assert_int_equal(str_from_i64(got, v), strlen(want));
	assert_string_equal(got, want);
	strbuf_init(&sb, 64);
	assert_int_equal(strbuf_adds(&sb, "n="), 0);
	assert_int_equal(strbuf_add_i64(&sb, v), 0);
	assert_string_equal(strbuf_str(&sb) + 2, want);
	strbuf_free(&sb);
}

static void test_decimal_like_printf(void **state)
{
	(void)state;
	expect_decimal(0);
	expect_decimal(7);
	expect_decimal(-7);
	expect_decimal(600);
	expect_decimal(86400);
	expect_decimal(LLONG_MAX);
	expect_decimal(LLONG_MIN); /* its negation does not fit */
}

static void test_inline_appends_keep_the_limit(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 4);
	assert_int_equal(strbuf_adds(&sb, "abc"), 0);
	assert_int_equal(strbuf_addc(&sb, 'd'), 0);
	assert_int_not_equal(strbuf_addc(&sb, 'e'), 0); /* past the maximum */
	assert_int_not_equal(strbuf_adds(&sb, "e"), 0);
	assert_string_equal(strbuf_str(&sb), "abcd"); /* left as it was */
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_copy_like_snprintf),
		cmocka_unit_test(test_copy_chains),
		cmocka_unit_test(test_decimal_like_printf),
		cmocka_unit_test(test_inline_appends_keep_the_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
