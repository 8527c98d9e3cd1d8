/*
 * JSON Patch building (RFC 6901 escaping, op text) and applying (RFC 6902
 * semantics).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "patch.h"

static cJSON *parse(const char *text)
{
	cJSON *root = NULL;

	assert_int_equal(json_parse(text, strlen(text), &root, NULL), 0);
	return root;
}

static void expect_applied(const char *doc, const char *ops, const char *want)
{
	cJSON *root = parse(doc);
	struct diag d;
	char *out;

	diag_clear(&d);
	if (patch_apply(root, ops, strlen(ops), &d) != 0)
		fail_msg("apply failed: %s", d.text);
	out = cJSON_PrintUnformatted(root);
	assert_string_equal(out, want);
	mem_free(out);
	cJSON_Delete(root);
}

static void expect_refused(const char *doc, const char *ops, const char *needle)
{
	cJSON *root = parse(doc);
	struct diag d;

	diag_clear(&d);
	assert_true(patch_apply(root, ops, strlen(ops), &d) < 0);
	if (strstr(d.text, needle) == NULL)
		fail_msg("want '%s' in '%s'", needle, d.text);
	cJSON_Delete(root);
}

static void test_pointer_escaping(void **state)
{
	struct strbuf sb;

	(void)state;
	strbuf_init(&sb, 100);
	assert_int_equal(patch_pointer_append(&sb, "metadata"), 0);
	assert_int_equal(patch_pointer_append(&sb, "a/b~c"), 0);
	assert_int_equal(patch_pointer_append(&sb, ""), 0);
	assert_int_equal(patch_pointer_append_index(&sb, 12), 0);
	assert_string_equal(strbuf_str(&sb), "/metadata/a~1b~0c//12");
	strbuf_free(&sb);
}

static void test_builder_text(void **state)
{
	struct patch p;
	size_t len;
	const char *text;

	(void)state;
	patch_init(&p);
	text = patch_text(&p, &len);
	assert_string_equal(text, "[]");
	assert_int_equal(
		patch_add_op(&p, "add", "/spec/volumes", "[{\"name\":\"v\"}]"),
		0);
	assert_int_equal(patch_add_op(&p, "add", "/metadata/annotations/x~1\"y",
				      "\"q\""),
			 0);
	text = patch_text(&p, &len);
	assert_int_equal(len, strlen(text));
	assert_string_equal(
		text,
		"[{\"op\":\"add\",\"path\":\"/spec/volumes\",\"value\":[{\"name\":\"v\"}]},"
		"{\"op\":\"add\",\"path\":\"/metadata/annotations/x~1\\\"y\",\"value\":\"q\"}]");
	/* The patch stays open for more operations after being read. */
	assert_int_equal(patch_add_op(&p, "remove", "/a", NULL), 0);
	text = patch_text(&p, &len);
	assert_non_null(strstr(text, "},{\"op\":\"remove\",\"path\":\"/a\"}]"));
	assert_int_equal(p.n_ops, 3);
	patch_free(&p);
}

static void test_apply_semantics(void **state)
{
	(void)state;
	expect_applied("{\"a\":[1,2]}",
		       "[{\"op\":\"add\",\"path\":\"/a/-\",\"value\":3}]",
		       "{\"a\":[1,2,3]}");
	expect_applied("{\"a\":[1,2]}",
		       "[{\"op\":\"add\",\"path\":\"/a/0\",\"value\":0}]",
		       "{\"a\":[0,1,2]}");
	expect_applied("{\"a\":[1,2]}",
		       "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":3}]",
		       "{\"a\":[1,2,3]}");
	expect_applied(
		"{}",
		"[{\"op\":\"add\",\"path\":\"/x~1y\",\"value\":{\"z\":1}}]",
		"{\"x/y\":{\"z\":1}}");
	expect_applied("{\"k\":1}",
		       "[{\"op\":\"add\",\"path\":\"/k\",\"value\":2}]",
		       "{\"k\":2}");
	expect_applied("{\"k\":1,\"j\":2}",
		       "[{\"op\":\"remove\",\"path\":\"/k\"}]", "{\"j\":2}");
	expect_applied("{\"a\":[1,2]}",
		       "[{\"op\":\"replace\",\"path\":\"/a/1\",\"value\":5}]",
		       "{\"a\":[1,5]}");
	expect_applied("{\"a\":1}",
		       "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]",
		       "{\"a\":1}");
	expect_applied("{\"a~b\":1}",
		       "[{\"op\":\"remove\",\"path\":\"/a~0b\"}]", "{}");
}

static void test_apply_refusals(void **state)
{
	(void)state;
	expect_refused("{}", "[{\"op\":\"add\",\"path\":\"/a/b\",\"value\":1}]",
		       "does not resolve");
	expect_refused("{\"a\":[]}",
		       "[{\"op\":\"add\",\"path\":\"/a/1\",\"value\":1}]",
		       "cannot add");
	expect_refused("{\"a\":[]}",
		       "[{\"op\":\"add\",\"path\":\"/a/01\",\"value\":1}]",
		       "cannot add");
	expect_refused("{}",
		       "[{\"op\":\"replace\",\"path\":\"/a\",\"value\":1}]",
		       "nothing to replace");
	expect_refused("{}", "[{\"op\":\"remove\",\"path\":\"/a\"}]",
		       "nothing at");
	expect_refused("{\"a\":1}",
		       "[{\"op\":\"test\",\"path\":\"/a\",\"value\":2}]",
		       "test failed");
	expect_refused(
		"{}",
		"[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/b\",\"value\":1}]",
		"unsupported op");
	expect_refused("{}", "[{\"path\":\"/a\"}]", "lacks op or path");
	expect_refused("{}", "{}", "must be an array");
	expect_refused("{}", "[{\"op\":\"add\",\"path\":\"/a~2\",\"value\":1}]",
		       "does not resolve");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pointer_escaping),
		cmocka_unit_test(test_builder_text),
		cmocka_unit_test(test_apply_semantics),
		cmocka_unit_test(test_apply_refusals),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
