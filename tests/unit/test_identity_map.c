/*
 * The identity map: both forms, their refusals (file:line), the order in which
 * entries apply, the profile section that maps the JSON form, and the decide
 * step of the review pipeline mutating a pod through the map. Profiles inline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "identity_map.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "profile.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"

/* A profile whose JSON form maps RoleARN and Audience. */
#define DEMO_PROFILE                                                    \
	"[profile]\nname = demo\n"                                      \
	"[trigger]\nannotation = demo.io/role\nformat = any\n"          \
	"[token]\naudience = demo\naudience-annotation = demo.io/aud\n" \
	"expiration = 3600\n"                                           \
	"[volume]\nname = demo-token\nmount-path = /var/run/demo\n"     \
	"file = token\n"                                                \
	"[env DEMO_ROLE]\nfrom = trigger\n"                             \
	"[env DEMO_REGIONAL]\nvalue = yes\n"                            \
	"when = service-account-annotation:demo.io/regional\n"          \
	"[identity-map-json]\nRoleARN = demo.io/role\n"                 \
	"Audience = demo.io/aud\nUseRegionalSTS = demo.io/regional\n"   \
	"TokenExpiration = demo.io/expiry\n"

static struct profile_set *demo_set(void)
{
	struct profile_set *set = NULL;
	struct profile *p = NULL;

	assert_int_equal(profile_parse(DEMO_PROFILE, strlen(DEMO_PROFILE),
				       "demo.ini", &p, NULL),
			 0);
	assert_int_equal(profile_set_new(&set), 0);
	assert_int_equal(profile_set_add(set, p, NULL), 0);
	return set;
}

static struct identity_map *parse_ok(const char *text,
				     const struct profile_set *set)
{
	struct identity_map *map = NULL;
	struct diag d;

	diag_clear(&d);
	if (identity_map_parse(text, strlen(text), "map.conf", set, &map, &d) !=
	    0)
		fail_msg("unexpected refusal: %s:%d: %s", d.where, d.line,
			 d.text);
	return map;
}

static void expect_refusal(const char *text, int line, const char *needle)
{
	struct identity_map *map = (struct identity_map *)1;
	struct profile_set *set = demo_set();
	struct diag d;

	diag_clear(&d);
	assert_int_not_equal(identity_map_parse(text, strlen(text), "map.conf",
						set, &map, &d),
			     0);
	assert_null(map);
	if (strstr(d.text, needle) == NULL || d.line != line ||
	    strcmp(d.where, "map.conf") != 0)
		fail_msg("want map.conf:%d: ...%s..., got %s:%d: %s", line,
			 needle, d.where, d.line, d.text);
	profile_set_free(set);
}

/* The value of key on ns/name after the map (NULL: unset). Static storage. */
static const char *mapped(const struct identity_map *map, const char *ns,
			  const char *name, const struct sa_annotation *own,
			  size_t n_own, const char *key)
{
	static char value[256];
	struct service_account *sa = NULL, *out = NULL;
	const char *v;

	assert_int_equal(sa_new(ns, name, own, n_own, &sa), 0);
	assert_int_equal(identity_map_apply(map, sa, &out), 0);
	v = sa_annotation(out ? out : sa, key);
	snprintf(value, sizeof(value), "%s", v ? v : "");
	sa_free(out);
	sa_free(sa);
	return v ? value : NULL;
}

static void test_ours_and_its_order(void **state)
{
	struct identity_map *map = parse_ok(
		"# comment\n; comment\n\n"
		"[team/app]\n  a.io/x = exact  \n"
		"[*/app]\na.io/x = any-namespace\na.io/y = any-namespace\n"
		"[team/*]\na.io/y = any-name\na.io/z = any-name\r\n"
		"[ * / * ]\na.io/w = everyone with = sign\n",
		NULL);
	struct sa_annotation own = { "a.io/x", "own" };

	(void)state;
	assert_int_equal(identity_map_count(map), 4);
	assert_string_equal(mapped(map, "team", "app", NULL, 0, "a.io/x"),
			    "exact");
	assert_string_equal(mapped(map, "team", "app", NULL, 0, "a.io/y"),
			    "any-namespace");
	assert_string_equal(mapped(map, "team", "app", NULL, 0, "a.io/z"),
			    "any-name");
	assert_string_equal(mapped(map, "team", "app", NULL, 0, "a.io/w"),
			    "everyone with = sign");
	assert_string_equal(mapped(map, "other", "app", NULL, 0, "a.io/x"),
			    "any-namespace");
	assert_string_equal(mapped(map, "team", "web", NULL, 0, "a.io/y"),
			    "any-name");
	assert_null(mapped(map, "other", "web", NULL, 0, "a.io/x"));
	/* The ServiceAccount's own annotation wins. */
	assert_string_equal(mapped(map, "team", "app", &own, 1, "a.io/x"),
			    "own");
	identity_map_free(map);
}

static void test_nothing_to_add(void **state)
{
	struct identity_map *map = parse_ok("[team/app]\na.io/x = 1\n", NULL);
	struct sa_annotation own = { "a.io/x", "own" };
	struct service_account *sa = NULL, *out = (struct service_account *)1;

	(void)state;
	assert_int_equal(sa_new("team", "app", &own, 1, &sa), 0);
	assert_int_equal(identity_map_apply(map, sa, &out), 0);
	assert_null(out); /* the map adds nothing: use sa as it is */
	sa_free(sa);
	identity_map_free(map);
	map = parse_ok("", NULL);
	assert_int_equal(identity_map_count(map), 0);
	identity_map_free(map);
}

static void test_ours_refused(void **state)
{
	(void)state;
	expect_refusal("a.io/x = 1\n", 1, "outside of any");
	expect_refusal("[team/app]\na.io/x = 1\n[team]\n", 3,
		       "[namespace/serviceaccount]");
	expect_refusal("[team/app/x]\n", 1, "[namespace/serviceaccount]");
	expect_refusal("[Team/app]\na.io/x = 1\n", 1, "not a namespace");
	expect_refusal("[team/App_1]\na.io/x = 1\n", 1,
		       "not a ServiceAccount name");
	expect_refusal("[team/app\n", 1, "ends with ']'");
	expect_refusal("[team/app]\n\n[team/web]\na.io/x = 1\n", 1,
		       "without annotations");
	expect_refusal("[team/app]\na.io/x = 1\n[team/web]\n", 3,
		       "without annotations");
	expect_refusal("[team/app]\na.io/x = 1\n[team/app]\na.io/y = 1\n", 3,
		       "appears twice (first at line 1)");
	expect_refusal("[team/app]\na.io/x = 1\na.io/x = 2\n", 3,
		       "given twice");
	expect_refusal("[team/app]\nnot a key = 1\n", 2,
		       "not an annotation key");
	expect_refusal("[team/app]\na.io/x =\n", 2, "no value");
	expect_refusal("[team/app]\njust text\n", 2, "annotation = value");
	expect_refusal("[team/app]\na.io/x = \xff\n", 0, "not UTF-8");
}

static void test_aws_configmap_json(void **state)
{
	/* The AWS webhook's README example, as its ConfigMap's config key. */
	static const char *const text =
		"{\"default/myserviceaccount\":{\"RoleARN\":\"arn:aws-test:iam::"
		"123456789012:role/myserviceaccount\",\"Audience\":"
		"\"amazonaws.com\",\"UseRegionalSTS\":true,\"TokenExpiration\":"
		"0},\"myapp/myother\":{\"rolearn\":\"r2\",\"RoleARN\":\"r3\","
		"\"useregionalsts\":false,\"TokenExpiration\":7200,"
		"\"Colour\":\"red\"},\n\"*/shared\":{\"RoleARN\":\"r4\","
		"\"Audience\":\"\",\"TokenExpiration\":null},"
		"\"test-*/myserviceaccount\":{\"RoleARN\":\"r5\"},"
		"\"myapp/myother\":{\"RoleARN\":\"r6\"}}";
	struct profile_set *set = demo_set();
	struct identity_map *map;

	(void)state;
	expect_refusal("{\"a/b\":{\"audience\":[1]}}", 1, "member 'audience'");
	map = parse_ok("{\"a/b\":{\"Other\":[1]}}", NULL); /* no profiles */
	identity_map_free(map);
	map = parse_ok(text, set);
	assert_int_equal(identity_map_count(map), 4); /* the last of two wins */
	assert_string_equal(
		mapped(map, "default", "myserviceaccount", NULL, 0,
		       "demo.io/role"),
		"arn:aws-test:iam::123456789012:role/myserviceaccount");
	assert_string_equal(mapped(map, "default", "myserviceaccount", NULL, 0,
				   "demo.io/aud"),
			    "amazonaws.com");
	assert_string_equal(mapped(map, "default", "myserviceaccount", NULL, 0,
				   "demo.io/regional"),
			    "true");
	assert_null(mapped(map, "default", "myserviceaccount", NULL, 0,
			   "demo.io/expiry")); /* 0: the default */
	assert_string_equal(
		mapped(map, "myapp", "myother", NULL, 0, "demo.io/role"), "r6");
	assert_null(mapped(map, "myapp", "myother", NULL, 0,
			   "demo.io/expiry")); /* the earlier entry is gone */
	assert_string_equal(
		mapped(map, "any", "shared", NULL, 0, "demo.io/role"), "r4");
	assert_null(mapped(map, "any", "shared", NULL, 0, "demo.io/aud"));
	identity_map_free(map);
	profile_set_free(set);
}

static void test_json_member_case(void **state)
{
	struct profile_set *set = demo_set();
	struct identity_map *map = parse_ok(
		"{\"a/b\":{\"rolearn\":\"lower\",\"tokenexpiration\":60,"
		"\"useRegionalSts\":false}}",
		set);

	(void)state;
	assert_string_equal(mapped(map, "a", "b", NULL, 0, "demo.io/role"),
			    "lower");
	assert_string_equal(mapped(map, "a", "b", NULL, 0, "demo.io/expiry"),
			    "60");
	assert_string_equal(mapped(map, "a", "b", NULL, 0, "demo.io/regional"),
			    "false");
	identity_map_free(map);
	profile_set_free(set);
}

static void test_json_refused(void **state)
{
	(void)state;
	expect_refusal("{\"a/b\":{\"RoleARN\":1.5}}", 1, "member 'RoleARN'");
	expect_refusal("{\n\"a/b\":{},\n\"nobody\":{}}", 3,
		       "not namespace/name");
	expect_refusal("{\"a/b/c\":{}}", 1, "not namespace/name");
	expect_refusal("{\"/b\":{}}", 1, "not namespace/name");
	expect_refusal("{\"a/b\":null}", 1, "not an object");
	expect_refusal("{\"a/b\":{\"RoleARN\":\"x\"}", 0, "not valid JSON");
	expect_refusal("  [1]", 1, "[namespace/serviceaccount]");
}

static void test_profile_section_refused(void **state)
{
	static const char *const bad[] = {
		"[identity-map-json]\nRole-ARN = demo.io/role\n",
		"[identity-map-json]\nRoleARN = not an annotation\n",
		"[identity-map-json]\nRoleARN = demo.io/a\nRoleARN = demo.io/b\n",
	};
	static const char *const why[] = { "not a JSON member name",
					   "not an annotation name",
					   "given twice" };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[2048];
		struct profile *p = NULL;
		struct diag d;

		snprintf(
			text, sizeof(text),
			"[profile]\nname = demo\n[trigger]\nannotation = "
			"demo.io/role\nformat = any\n[token]\naudience = demo\nexpiration = "
			"3600\n[volume]\nname = v\nmount-path = /var/run/v\n"
			"file = token\n%s",
			bad[i]);
		diag_clear(&d);
		assert_int_not_equal(
			profile_parse(text, strlen(text), "t.ini", &p, &d), 0);
		assert_null(p);
		if (strstr(d.text, why[i]) == NULL)
			fail_msg("want %s, got %s", why[i], d.text);
	}
}

/* The decide step: a pod whose ServiceAccount has no annotation is mutated
 * through the map; with the annotation on the ServiceAccount, that one wins. */
static void test_decide_through_the_map(void **state)
{
	static const char pod_text[] =
		"{\"metadata\":{\"name\":\"p\",\"namespace\":\"team\"},"
		"\"spec\":{\"serviceAccountName\":\"app\",\"containers\":"
		"[{\"name\":\"c\"}]}}";
	struct profile_set *set = demo_set();
	struct identity_map *map =
		parse_ok("[team/app]\ndemo.io/role = from-map\n", set);
	struct review_policy policy = { .profiles = set };
	struct sa_annotation own = { "demo.io/role", "own" };
	struct service_account *bare = NULL, *annotated = NULL;
	cJSON *pod = NULL;
	struct mutation m;
	size_t len;

	(void)state;
	assert_int_equal(json_parse(pod_text, strlen(pod_text), &pod, NULL), 0);
	assert_int_equal(sa_new("team", "app", NULL, 0, &bare), 0);
	assert_int_equal(sa_new("team", "app", &own, 1, &annotated), 0);

	mutation_init(&m); /* no map: nothing to do */
	assert_int_equal(review_decide_pod(&policy, pod, NULL, bare, &m, NULL),
			 0);
	assert_int_equal(m.outcome, MUTATE_NO_MATCH);
	mutation_free(&m);

	policy.identities = map;
	mutation_init(&m);
	assert_int_equal(review_decide_pod(&policy, pod, NULL, bare, &m, NULL),
			 0);
	assert_int_equal(m.outcome, MUTATE_PATCHED);
	assert_non_null(strstr(patch_text(&m.patch, &len), "from-map"));
	mutation_free(&m);

	mutation_init(&m);
	assert_int_equal(
		review_decide_pod(&policy, pod, NULL, annotated, &m, NULL), 0);
	assert_int_equal(m.outcome, MUTATE_PATCHED);
	assert_null(strstr(patch_text(&m.patch, &len), "from-map"));
	assert_non_null(strstr(patch_text(&m.patch, &len), "\"own\""));
	mutation_free(&m);

	mutation_init(&m); /* no ServiceAccount: the map does not make one */
	assert_int_equal(review_decide_pod(&policy, pod, NULL, NULL, &m, NULL),
			 0);
	assert_int_equal(m.outcome, MUTATE_SA_NOT_FOUND);
	mutation_free(&m);

	cJSON_Delete(pod);
	sa_free(bare);
	sa_free(annotated);
	identity_map_free(map);
	profile_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ours_and_its_order),
		cmocka_unit_test(test_nothing_to_add),
		cmocka_unit_test(test_ours_refused),
		cmocka_unit_test(test_aws_configmap_json),
		cmocka_unit_test(test_json_member_case),
		cmocka_unit_test(test_json_refused),
		cmocka_unit_test(test_profile_section_refused),
		cmocka_unit_test(test_decide_through_the_map),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
