/* Value formats and Kubernetes names, and the checked string helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "diag.h"
#include "strbuf.h"
#include "strutil.h"
#include "validate.h"

static void test_formats(void **state)
{
	(void)state;
	assert_true(validate_value(FORMAT_EMAIL, "app@sa.stackit.cloud"));
	assert_true(
		validate_value(FORMAT_EMAIL, "first.last+tag@example.co.uk"));
	assert_false(validate_value(FORMAT_EMAIL, "app@localhost"));
	assert_false(validate_value(FORMAT_EMAIL, "@example.com"));
	assert_false(validate_value(FORMAT_EMAIL, "a..b@example.com"));
	assert_false(validate_value(FORMAT_EMAIL, "a b@example.com"));
	assert_false(validate_value(FORMAT_EMAIL, "a@-x.com"));
	assert_true(validate_value(FORMAT_ARN,
				   "arn:aws:iam::123456789012:role/app"));
	assert_true(validate_value(
		FORMAT_ARN, "arn:aws-cn:iam::123456789012:role/path/to/app"));
	assert_true(validate_value(
		FORMAT_ARN, "arn:aws-us-gov:iam::123456789012:role/a+=,.@_-"));
	assert_false(validate_value(FORMAT_ARN,
				    "arn:aws:iam::12345678901:role/app"));
	assert_false(validate_value(FORMAT_ARN,
				    "arn:aws:s3::123456789012:role/app"));
	assert_false(validate_value(FORMAT_ARN,
				    "arn:aws:iam::123456789012:user/app"));
	assert_false(
		validate_value(FORMAT_ARN, "arn:aws:iam::123456789012:role/"));
	assert_false(validate_value(FORMAT_ARN,
				    "arn:gcp:iam::123456789012:role/app"));
	assert_true(validate_value(FORMAT_UUID,
				   "0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4e"));
	assert_false(validate_value(FORMAT_UUID,
				    "0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4"));
	assert_false(validate_value(FORMAT_UUID,
				    "0bd5b8a4x3e4c-4c1c-8f4f-2f4d1b2c3d4e"));
	assert_true(validate_value(
		FORMAT_HTTPS_URL,
		"https://accounts.stackit.cloud/oauth/v2/token"));
	assert_true(
		validate_value(FORMAT_HTTPS_URL, "https://idp.example:8443"));
	assert_false(validate_value(FORMAT_HTTPS_URL,
				    "http://accounts.stackit.cloud"));
	assert_false(validate_value(FORMAT_HTTPS_URL, "https://"));
	assert_false(validate_value(FORMAT_HTTPS_URL,
				    "https://user:pw@host.example/"));
	assert_false(
		validate_value(FORMAT_HTTPS_URL, "https://host.example:0/"));
	assert_false(validate_value(FORMAT_HTTPS_URL, "https://host example/"));
	assert_true(validate_value(FORMAT_INTEGER, "-42"));
	assert_false(validate_value(FORMAT_INTEGER, "4 2"));
	assert_true(validate_value(FORMAT_BOOLEAN, "TRUE"));
	assert_false(validate_value(FORMAT_BOOLEAN, "yes"));
	assert_false(validate_value(FORMAT_BOOLEAN, "tRUE"));
	assert_false(validate_value(FORMAT_BOOLEAN, ""));
	assert_true(validate_value(FORMAT_REGION, "eu-central-1"));
	assert_false(validate_value(FORMAT_REGION, "EU"));
	assert_false(validate_value(FORMAT_ANY, ""));
	assert_false(validate_value(FORMAT_ANY, "tab\there"));
}

static void test_names(void **state)
{
	(void)state;
	assert_true(validate_qualified_name("eks.amazonaws.com/role-arn"));
	assert_true(validate_qualified_name("app"));
	assert_false(validate_qualified_name("Eks.com/x"));
	assert_false(validate_qualified_name("a/b/c"));
	assert_false(validate_qualified_name("x.io/-bad"));
	assert_false(validate_qualified_name("x.io/"));
	assert_true(validate_dns_label("aws-iam-token"));
	assert_false(validate_dns_label("aws_iam"));
	/* Kubernetes' DNS-1123 subdomain: no per-label limit, unlike a host */
	assert_true(validate_dns_subdomain("a.b-c.d1"));
	assert_true(validate_dns_subdomain(
		"a234567890123456789012345678901234567890123456789012345678901234"
		"567890.x"));
	assert_false(validate_dns_subdomain("a-"));
	assert_false(validate_dns_subdomain("a.-b"));
	assert_false(validate_dns_subdomain("a-.b"));
	assert_false(validate_dns_subdomain("a..b"));
	assert_false(validate_dns_subdomain(".a"));
	assert_false(validate_dns_subdomain("a."));
	assert_false(validate_dns_subdomain("A.b"));
	assert_false(validate_dns_subdomain(""));
	assert_true(validate_abs_path("/var/run/x"));
	assert_false(validate_abs_path("/"));
	assert_false(validate_abs_path("/var//x"));
	assert_false(validate_abs_path("/var/./x"));
	assert_false(validate_abs_path("/var/x/"));
	assert_false(validate_abs_path("var/x"));
	assert_true(validate_env_name("_A1"));
	assert_false(validate_env_name("1A"));
	/* Kubernetes: [-._a-zA-Z][-._a-zA-Z0-9]* */
	assert_true(validate_env_name("my.app-KEY_1"));
	assert_true(validate_env_name("-x"));
	assert_true(validate_env_name(".x"));
	assert_false(validate_env_name(""));
	assert_false(validate_env_name("A B"));
	assert_false(validate_env_name("A=B"));
	assert_true(validate_rel_path("token"));
	assert_true(validate_rel_path("token/azure-identity-token"));
	assert_false(validate_rel_path("/token"));
	assert_false(validate_rel_path("token/"));
	assert_false(validate_rel_path("a//b"));
	assert_false(validate_rel_path("a/../b"));
	assert_false(validate_rel_path("./a"));
	assert_false(validate_rel_path(""));
}

static void test_patterns(void **state)
{
	struct validate_pattern *re = NULL;
	char err[128];
	size_t start = 0, len = 0;

	(void)state;
	assert_int_equal(validate_pattern_compile("projects/.+/providers/.+",
						  true, &re, err, sizeof(err)),
			 0);
	assert_true(validate_pattern_match(re, "projects/1/providers/p"));
	/* Anchored: a match inside the value is not enough. */
	assert_false(validate_pattern_match(re, "x/projects/1/providers/p"));
	assert_false(validate_pattern_match(re, "projects/1/providers/"));
	validate_pattern_free(re);
	/* The wrapping group keeps an alternation anchored on both sides. */
	assert_int_equal(
		validate_pattern_compile("a|b", true, &re, err, sizeof(err)),
		0);
	assert_true(validate_pattern_match(re, "a"));
	assert_false(validate_pattern_match(re, "ab"));
	validate_pattern_free(re);
	assert_int_equal(
		validate_pattern_compile("@(.*).iam.gserviceaccount.com", false,
					 &re, err, sizeof(err)),
		0);
	assert_true(validate_pattern_extract(
		re, "app@proj-1.iam.gserviceaccount.com", &start, &len));
	assert_int_equal(start, 4);
	assert_int_equal(len, 6);
	assert_false(validate_pattern_extract(
		re, "1-compute@developer.gserviceaccount.com", &start, &len));
	validate_pattern_free(re);
	assert_int_equal(
		validate_pattern_compile("(", true, &re, err, sizeof(err)),
		DIAG_EPARSE);
	assert_null(re);
	assert_true(err[0] != '\0');
	validate_pattern_free(NULL);
	/* Sized before regcomp: nested intervals multiply (glibc copies). */
	assert_int_equal(validate_pattern_compile("(a{255}){255}", true, &re,
						  err, sizeof(err)),
			 DIAG_EPARSE);
	assert_non_null(strstr(err, "too large"));
	assert_int_equal(validate_pattern_compile("((a{64}){64}){64}", false,
						  &re, err, sizeof(err)),
			 DIAG_EPARSE);
	assert_int_equal(
		validate_pattern_compile("(a)\\1", true, &re, err, sizeof(err)),
		DIAG_EPARSE);
	assert_int_equal(
		validate_pattern_compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
					 "[0-9a-f]{4}-[0-9a-f]{12}",
					 true, &re, err, sizeof(err)),
		0);
	assert_true(validate_pattern_match(
		re, "0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4e"));
	validate_pattern_free(re);
	assert_int_equal(validate_pattern_compile("[[:alnum:]][]a.-]*(x|y){2,}",
						  true, &re, err, sizeof(err)),
			 0);
	assert_true(validate_pattern_match(re, "Q].axy"));
	validate_pattern_free(re);
	/* A '{' that starts no interval, or one past the bound: refused (the
	 * sizing scan once looped on "${x}"). */
	assert_int_equal(
		validate_pattern_compile("${x}", true, &re, err, sizeof(err)),
		DIAG_EPARSE);
	assert_int_equal(validate_pattern_compile("a{99999}", true, &re, err,
						  sizeof(err)),
			 DIAG_EPARSE);
	assert_int_equal(validate_pattern_compile("a+++++++++++++", true, &re,
						  err, sizeof(err)),
			 DIAG_EPARSE);
}

static void test_numbers_and_lists(void **state)
{
	int64_t v;
	bool b;
	int mode;
	const char *cursor = " a ,, b;c ", *item;
	size_t len, n = 0;

	(void)state;
	assert_int_equal(str_to_i64("600", 1, 1000, &v), 0);
	assert_int_equal(v, 600);
	assert_int_equal(str_to_i64("+6", 1, 1000, &v), DIAG_EPARSE);
	assert_int_equal(str_to_i64(" 6", 1, 1000, &v), DIAG_EPARSE);
	assert_int_equal(str_to_i64("", 1, 1000, &v), DIAG_EPARSE);
	assert_int_equal(str_to_i64("-", 1, 1000, &v), DIAG_EPARSE);
	assert_int_equal(str_to_i64("1001", 1, 1000, &v), DIAG_ELIMIT);
	assert_int_equal(
		str_to_i64("99999999999999999999", INT64_MIN, INT64_MAX, &v),
		DIAG_ELIMIT);
	assert_int_equal(str_to_bool("False", &b), 0);
	assert_false(b);
	/* Every spelling of Go's strconv.ParseBool, and only those. */
	for (size_t i = 0; i < 6; i++) {
		static const char *const yes[] = { "1",	   "t",	   "T",
						   "TRUE", "true", "True" };
		static const char *const no[] = { "0",	   "f",	    "F",
						  "FALSE", "false", "False" };

		b = false;
		assert_int_equal(str_to_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(str_to_bool(no[i], &b), 0);
		assert_false(b);
	}
	assert_int_equal(str_to_bool("tRUE", &b), DIAG_EPARSE);
	assert_int_equal(str_to_bool("2", &b), DIAG_EPARSE);
	assert_int_equal(str_to_mode("0444", &mode), 0);
	assert_int_equal(mode, 292);
	while (str_list_next(&cursor, ",;", &item, &len))
		n++;
	assert_int_equal(n, 3);
	assert_true(str_list_contains("x, app ;y", ",;", "app"));
	assert_false(str_list_contains("application", ",;", "app"));
}

static void test_strbuf_limit(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 8);
	assert_int_equal(strbuf_adds(&sb, "12345678"), 0);
	assert_int_equal(strbuf_addc(&sb, '9'), DIAG_ELIMIT);
	assert_string_equal(strbuf_str(&sb), "12345678");
	assert_int_equal(strbuf_addf(&sb, "%d", 1), DIAG_ELIMIT);
	strbuf_free(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_patterns),
		cmocka_unit_test(test_numbers_and_lists),
		cmocka_unit_test(test_strbuf_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
