/* ServiceAccount map: insert, replace, remove with tombstones, growth, lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "sa_map.h"

static struct service_account *make(const char *ns, const char *name,
				    const char *value)
{
	struct sa_annotation a = { "x.io/role", value };
	struct service_account *sa = NULL;

	assert_int_equal(
		sa_new(ns, name, value ? &a : NULL, value ? 1 : 0, &sa), 0);
	return sa;
}

static void test_put_get_replace_remove(void **state)
{
	struct sa_map *m = NULL;

	(void)state;
	assert_int_equal(sa_map_new(0, &m), 0);
	assert_int_equal(sa_map_put(m, make("a", "x", "1")), 0);
	assert_int_equal(sa_map_put(m, make("b", "x", NULL)), 0);
	assert_int_equal(sa_map_count(m), 2);
	assert_string_equal(sa_annotation(sa_map_get(m, "a", "x"), "x.io/role"),
			    "1");
	assert_int_equal(sa_map_get(m, "b", "x")->n_annotations, 0);
	assert_null(sa_map_get(m, "a", "y"));
	assert_null(sa_map_get(m, "ax", ""));
	assert_int_equal(sa_map_put(m, make("a", "x", "2")), 0);
	assert_int_equal(sa_map_count(m), 2);
	assert_string_equal(sa_annotation(sa_map_get(m, "a", "x"), "x.io/role"),
			    "2");
	assert_true(sa_map_remove(m, "a", "x"));
	assert_false(sa_map_remove(m, "a", "x"));
	assert_null(sa_map_get(m, "a", "x"));
	assert_non_null(sa_map_get(m, "b", "x"));
	assert_int_equal(sa_map_count(m), 1);
	sa_map_free(m);
}

static void test_growth_and_churn(void **state)
{
	struct sa_map *m = NULL;
	char ns[16], name[16];

	(void)state;
	assert_int_equal(sa_map_new(4, &m), 0);
	for (int i = 0; i < 20000; i++) {
		snprintf(ns, sizeof(ns), "ns%d", i % 97);
		snprintf(name, sizeof(name), "sa%d", i);
		assert_int_equal(
			sa_map_put(m, make(ns, name, i % 10 ? NULL : "r")), 0);
	}
	assert_int_equal(sa_map_count(m), 20000);
	/* Remove and re-add many times: tombstones must not fill the table. */
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 20000; i += 2) {
			snprintf(ns, sizeof(ns), "ns%d", i % 97);
			snprintf(name, sizeof(name), "sa%d", i);
			assert_true(sa_map_remove(m, ns, name));
			assert_int_equal(sa_map_put(m, make(ns, name, "r")), 0);
		}
	for (int i = 0; i < 20000; i++) {
		snprintf(ns, sizeof(ns), "ns%d", i % 97);
		snprintf(name, sizeof(name), "sa%d", i);
		assert_non_null(sa_map_get(m, ns, name));
	}
	assert_true(sa_map_bytes(m) > 20000 * sizeof(struct service_account));
	sa_map_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_replace_remove),
		cmocka_unit_test(test_growth_and_churn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
