/*
 * audit: the verdict for each kind of running pod, and the two renderings. The
 * profile is inline (a rule test must not depend on the shipped profiles); an
 * admitted pod is made the way the webhook makes it: the mutator's patch
 * applied to the bare pod.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "audit_report.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"
#include "settings.h"
#include "strbuf.h"

#include "unit_json.h"

#define ROLE_A "0f8fad5b-d9cb-469f-a165-70867728950e"
#define ROLE_B "7c9e6679-7425-40de-944b-e07fc1f90ae7"

static const char demo_profile[] =
	"[profile]\nname = demo\n"
	"[trigger]\nannotation = demo.example/role\nformat = uuid\n"
	"[token]\naudience = demo\nexpiration = 3600\n"
	"[volume]\nname = demo-token\nmount-path = /var/run/demo\nfile = token\n"
	"[skip]\npod-labels = demo.example/skip\n"
	"[env DEMO_ROLE]\nfrom = trigger\n"
	"[env DEMO_TOKEN_FILE]\nfrom = token-path\n"
	"[env DEMO_ZONE]\nvalue = eu-1\ngroup = zone\n"
	"[env DEMO_DEFAULT_ZONE]\nvalue = eu-1\ngroup = zone\n";

struct fixture {
	struct profile_set *set;
	struct settings *settings;
	struct audit_verdict v;
	struct review_policy policy;
};

static int setup(void **state)
{
	struct fixture *f = mem_calloc(1, sizeof(*f));
	struct profile *p = NULL;
	struct diag d;

	diag_clear(&d);
	if (f == NULL || profile_set_new(&f->set) != 0 ||
	    settings_new(&f->settings) != 0 ||
	    profile_parse(demo_profile, sizeof(demo_profile) - 1, "demo.ini",
			  &p, &d) != 0 ||
	    profile_set_add(f->set, p, &d) != 0) {
		fprintf(stderr, "setup: %s\n", d.text);
		return -1;
	}
	f->policy.profiles = f->set;
	f->policy.settings = f->settings;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	settings_free(f->settings);
	profile_set_free(f->set);
	mem_free(f);
	return 0;
}

/* A ServiceAccount team/app with the given annotations (JSON members). */
static struct service_account *sa_with(const char *annotations)
{
	char text[1024];
	struct service_account *sa = NULL;
	cJSON *root;
	struct diag d;

	snprintf(text, sizeof(text),
		 "{\"metadata\":{\"name\":\"app\",\"namespace\":\"team\","
		 "\"annotations\":{%s}}}",
		 annotations);
	root = parse(text);
	diag_clear(&d);
	assert_int_equal(sa_from_json(root, NULL, NULL, NULL, &sa, &d), 0);
	cJSON_Delete(root);
	return sa;
}

/* A pod of team/app; labels and env are JSON members (may be ""). */
static cJSON *bare_pod(const char *labels, const char *env)
{
	char text[2048];

	snprintf(text, sizeof(text),
		 "{\"metadata\":{\"name\":\"web\",\"namespace\":\"team\","
		 "\"labels\":{%s}},\"spec\":{\"serviceAccountName\":\"app\","
		 "\"containers\":[{\"name\":\"c\",\"env\":[%s]}]}}",
		 labels, env);
	return parse(text);
}

/* The pod as the webhook admits it for sa (the patch applied). */
static cJSON *admitted(struct fixture *f, cJSON *pod,
		       const struct service_account *sa)
{
	struct mutation m;
	const char *text;
	size_t len;
	struct diag d;

	diag_clear(&d);
	mutation_init(&m);
	assert_int_equal(review_decide_pod(&f->policy, pod, NULL, sa, &m, &d),
			 0);
	assert_true(m.allowed);
	text = patch_text(&m.patch, &len);
	assert_non_null(text);
	assert_int_equal(patch_apply(pod, text, len, &d), 0);
	mutation_free(&m);
	return pod;
}

static enum audit_status judge(struct fixture *f, cJSON *pod,
			       struct service_account *sa)
{
	struct diag d;

	diag_clear(&d);
	assert_int_equal(audit_judge_pod(pod, sa, &f->policy, &f->v, &d), 0);
	cJSON_Delete(pod);
	sa_free(sa);
	return f->v.status;
}

static void test_created_before_the_webhook_is_missing(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(judge(f, bare_pod("", ""),
			       sa_with("\"demo.example/role\":\"" ROLE_A "\"")),
			 AUDIT_MISSING);
	assert_string_equal(f->v.profiles, "demo");
	assert_non_null(strstr(f->v.reason, "does not hold it"));
}

static void test_admitted_pod_is_ok(void **state)
{
	struct fixture *f = *state;
	struct service_account *sa =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(f, bare_pod("", ""), sa);

	assert_int_equal(judge(f, pod, sa), AUDIT_OK);
	assert_string_equal(f->v.profiles, "demo");
	assert_string_equal(f->v.reason, "");
}

static void test_changed_role_is_stale(void **state)
{
	struct fixture *f = *state;
	struct service_account *then =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(f, bare_pod("", ""), then);

	sa_free(then);
	assert_int_equal(
		judge(f, pod, sa_with("\"demo.example/role\":\"" ROLE_B "\"")),
		AUDIT_STALE);
	assert_non_null(strstr(f->v.reason, "DEMO_ROLE"));
	assert_non_null(strstr(f->v.reason, ROLE_A));
	assert_non_null(strstr(f->v.reason, ROLE_B));
	assert_non_null(strstr(f->v.reason, "container \"c\""));
}

static void test_removed_trigger_is_stale(void **state)
{
	struct fixture *f = *state;
	struct service_account *then =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(f, bare_pod("", ""), then);

	sa_free(then);
	assert_int_equal(judge(f, pod, sa_with("")), AUDIT_STALE);
	assert_non_null(strstr(f->v.reason, "holds demo"));
}

static void test_removed_profile_is_stale(void **state)
{
	struct fixture *f = *state;
	struct service_account *sa =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(f, bare_pod("", ""), sa);
	struct profile_set *none = NULL;
	struct review_policy empty = { .settings = f->settings };
	struct diag d;

	diag_clear(&d);
	assert_int_equal(profile_set_new(&none), 0);
	empty.profiles = none;
	assert_int_equal(audit_judge_pod(pod, sa, &empty, &f->v, &d), 0);
	assert_int_equal(f->v.status, AUDIT_STALE);
	assert_string_equal(f->v.profiles, "");
	profile_set_free(none);
	cJSON_Delete(pod);
	sa_free(sa);
}

static void test_variables_of_the_pod_itself_do_not_count(void **state)
{
	struct fixture *f = *state;
	struct service_account *sa =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(
		f,
		bare_pod("",
			 "{\"name\":\"DB_USER\",\"valueFrom\":{"
			 "\"secretKeyRef\":{\"name\":\"db\",\"key\":\"u\"}}},"
			 "{\"name\":\"MODE\",\"value\":\"live\"}"),
		sa);

	assert_int_equal(judge(f, pod, sa), AUDIT_OK);
}

/* Everything the profile injects is there, put by another webhook or by the pod
 * itself: no annotation of ours, nothing else to add. Its values still count. */
static cJSON *without_our_annotation(cJSON *pod)
{
	cJSON_DeleteItemFromObject(
		cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "metadata"),
				    "annotations"),
		MUTATE_PROFILES_ANNOTATION);
	return pod;
}

static void test_a_group_the_pod_set_part_of_is_its_own(void **state)
{
	struct fixture *f = *state;
	struct service_account *sa =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod = admitted(
		f, bare_pod("", "{\"name\":\"DEMO_ZONE\",\"value\":\"us-2\"}"),
		sa);
	const cJSON *env = cJSON_GetObjectItem(
		cJSON_GetArrayItem(
			cJSON_GetObjectItem(cJSON_GetObjectItem(pod, "spec"),
					    "containers"),
			0),
		"env");
	bool default_zone = false;
	const cJSON *e;

	/* The webhook kept the group out: DEMO_DEFAULT_ZONE was not added. */
	cJSON_ArrayForEach(e, env)
		default_zone |= strcmp(json_string(e, "name"),
				       "DEMO_DEFAULT_ZONE") == 0;
	assert_false(default_zone);
	assert_int_equal(judge(f, pod, sa), AUDIT_OK);
}

static void test_held_but_not_recorded_is_ok_or_stale(void **state)
{
	struct fixture *f = *state;
	struct service_account *then =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	cJSON *pod =
		without_our_annotation(admitted(f, bare_pod("", ""), then));
	cJSON *copy = cJSON_Duplicate(pod, true);

	assert_int_equal(judge(f, pod, then), AUDIT_OK);
	assert_non_null(strstr(f->v.reason, "not from this webhook"));
	assert_int_equal(
		judge(f, copy, sa_with("\"demo.example/role\":\"" ROLE_B "\"")),
		AUDIT_STALE);
	assert_non_null(strstr(f->v.reason, ROLE_B));
}

static void test_misconfigured_service_account_is_denied(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(judge(f, bare_pod("", ""),
			       sa_with("\"demo.example/role\":\"nope\"")),
			 AUDIT_DENIED);
	assert_non_null(strstr(f->v.reason, "nope"));
	assert_non_null(strstr(f->v.reason, "demo.example/role"));
}

static void test_skip_label_is_skipped_with_what_skipped_it(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(judge(f,
			       bare_pod("\"demo.example/skip\":\"true\"", ""),
			       sa_with("\"demo.example/role\":\"" ROLE_A "\"")),
			 AUDIT_SKIPPED);
	assert_non_null(strstr(f->v.reason, "pod label demo.example/skip"));
}

static void test_no_profile_or_no_service_account_is_none(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(judge(f, bare_pod("", ""), sa_with("")), AUDIT_NONE);
	assert_string_equal(f->v.reason, "");
	assert_int_equal(judge(f, bare_pod("", ""), NULL), AUDIT_NONE);
	assert_non_null(strstr(f->v.reason, "not found"));
}

static void test_service_account_alone(void **state)
{
	struct fixture *f = *state;
	struct service_account *bad = sa_with("\"demo.example/role\":\"nope\"");
	struct service_account *good =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	struct service_account *plain = sa_with("");
	struct diag d;

	diag_clear(&d);
	assert_int_equal(
		audit_judge_service_account(bad, &f->policy, &f->v, &d), 0);
	assert_int_equal(f->v.status, AUDIT_DENIED);
	assert_non_null(strstr(f->v.reason, "nope"));
	assert_int_equal(
		audit_judge_service_account(good, &f->policy, &f->v, &d), 0);
	assert_int_equal(f->v.status, AUDIT_OK);
	assert_int_equal(
		audit_judge_service_account(plain, &f->policy, &f->v, &d), 0);
	assert_int_equal(f->v.status, AUDIT_NONE);
	sa_free(bad);
	sa_free(good);
	sa_free(plain);
}

/* ---- the report ---- */

static int collect(void *arg, const char *text, size_t len)
{
	return strbuf_add(arg, text, len);
}

static struct audit_report *sample_report(void)
{
	struct audit_report *r = NULL;
	struct audit_verdict ok = { AUDIT_OK, "aws,stackit", "" };
	struct audit_verdict stale = { AUDIT_STALE, "aws",
				       "role \"x\"\nchanged" };
	struct audit_verdict denied = { AUDIT_DENIED, "", "bad \"arn\"" };

	assert_int_equal(audit_report_new(&r), 0);
	assert_int_equal(audit_report_add_pod(r, "team", "web", "app", &ok), 0);
	assert_int_equal(
		audit_report_add_pod(r, "team-long-name", "api", "svc", &stale),
		0);
	assert_int_equal(
		audit_report_add_service_account(r, "team", "broken", &denied),
		0);
	return r;
}

static void test_table_columns_align(void **state)
{
	struct audit_report *r = sample_report();
	struct strbuf out;
	const char *text;

	(void)state;
	strbuf_init(&out, 1 << 20);
	assert_int_equal(audit_report_render(r, AUDIT_TABLE, collect, &out), 0);
	text = strbuf_str(&out);
	assert_string_equal(
		text,
		"NAMESPACE        POD   SERVICEACCOUNT   STATUS   PROFILES      REASON\n"
		"team             web   app              ok       aws,stackit\n"
		"team-long-name   api   svc              stale    aws           role \"x\" changed\n"
		"\n"
		"NAMESPACE   SERVICEACCOUNT   STATUS   REASON\n"
		"team        broken           denied   bad \"arn\"\n");
	assert_true(audit_report_failed(r));
	assert_int_equal(audit_report_count(r, AUDIT_STALE), 1);
	strbuf_free(&out);
	audit_report_free(r);
}

static void test_json_shape(void **state)
{
	struct audit_report *r = sample_report();
	struct strbuf out;
	cJSON *doc, *pod;

	(void)state;
	strbuf_init(&out, 1 << 20);
	assert_int_equal(audit_report_render(r, AUDIT_JSON, collect, &out), 0);
	doc = parse(strbuf_str(&out));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "pods")),
			 2);
	pod = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "pods"), 0);
	assert_string_equal(json_string(pod, "namespace"), "team");
	assert_string_equal(json_string(pod, "name"), "web");
	assert_string_equal(json_string(pod, "serviceAccount"), "app");
	assert_string_equal(json_string(pod, "status"), "ok");
	assert_string_equal(json_string(pod, "reason"), "");
	assert_int_equal(
		cJSON_GetArraySize(cJSON_GetObjectItem(pod, "profiles")), 2);
	assert_string_equal(
		cJSON_GetArrayItem(cJSON_GetObjectItem(pod, "profiles"), 1)
			->valuestring,
		"stackit");
	pod = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "pods"), 1);
	assert_string_equal(json_string(pod, "reason"), "role \"x\"\nchanged");
	pod = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "serviceAccounts"),
				 0);
	assert_string_equal(json_string(pod, "name"), "broken");
	assert_string_equal(json_string(pod, "status"), "denied");
	assert_null(cJSON_GetObjectItem(pod, "serviceAccount"));
	cJSON_Delete(doc);
	strbuf_free(&out);
	audit_report_free(r);
}

static void test_empty_report_and_exit(void **state)
{
	struct audit_report *r = NULL;
	struct audit_verdict none = { AUDIT_NONE, "", "" };
	struct audit_verdict skipped = { AUDIT_SKIPPED, "", "label" };
	struct strbuf out;

	(void)state;
	strbuf_init(&out, 1 << 20);
	assert_int_equal(audit_report_new(&r), 0);
	assert_int_equal(audit_report_render(r, AUDIT_TABLE, collect, &out), 0);
	assert_string_equal(strbuf_str(&out), "No pods found.\n");
	strbuf_reset(&out);
	assert_int_equal(audit_report_render(r, AUDIT_JSON, collect, &out), 0);
	assert_string_equal(strbuf_str(&out),
			    "{\"pods\":[\n],\"serviceAccounts\":[\n]}\n");
	assert_int_equal(audit_report_add_pod(r, "a", "b", "c", &none), 0);
	assert_int_equal(audit_report_add_pod(r, "a", "d", "c", &skipped), 0);
	assert_false(audit_report_failed(r));
	strbuf_free(&out);
	audit_report_free(r);
}

/* Every allocation failing in turn: a clean error, never a crash or leak. */
static void test_allocation_failures(void **state)
{
	struct fixture *f = *state;
	struct service_account *then =
		sa_with("\"demo.example/role\":\"" ROLE_A "\"");
	struct service_account *now =
		sa_with("\"demo.example/role\":\"" ROLE_B "\"");
	cJSON *pod = admitted(f, bare_pod("", ""), then);
	bool completed = false;

	for (long n = 0; n < 10000 && !completed; n++) {
		struct diag d;
		int rc, fired;

		diag_clear(&d);
		mem_fail_after(n);
		rc = audit_judge_pod(pod, now, &f->policy, &f->v, &d);
		fired = mem_failure_fired();
		mem_fail_after(-1);
		completed = !fired;
		if (fired && rc != DIAG_ENOMEM)
			fail_msg("allocation %ld: %d %s", n, rc, d.text);
	}
	assert_true(completed);
	assert_int_equal(f->v.status, AUDIT_STALE);
	cJSON_Delete(pod);
	sa_free(then);
	sa_free(now);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_created_before_the_webhook_is_missing),
		cmocka_unit_test(test_admitted_pod_is_ok),
		cmocka_unit_test(test_changed_role_is_stale),
		cmocka_unit_test(test_removed_trigger_is_stale),
		cmocka_unit_test(test_removed_profile_is_stale),
		cmocka_unit_test(test_variables_of_the_pod_itself_do_not_count),
		cmocka_unit_test(test_held_but_not_recorded_is_ok_or_stale),
		cmocka_unit_test(test_a_group_the_pod_set_part_of_is_its_own),
		cmocka_unit_test(test_misconfigured_service_account_is_denied),
		cmocka_unit_test(
			test_skip_label_is_skipped_with_what_skipped_it),
		cmocka_unit_test(test_no_profile_or_no_service_account_is_none),
		cmocka_unit_test(test_service_account_alone),
		cmocka_unit_test(test_table_columns_align),
		cmocka_unit_test(test_json_shape),
		cmocka_unit_test(test_empty_report_and_exit),
		cmocka_unit_test(test_allocation_failures),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, setup, teardown);
}
