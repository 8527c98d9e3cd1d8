/*
 * Allocation failure, everywhere: each operation runs with its 1st, 2nd, 3rd...
 * allocation failing, until a run where no injected failure fires. Every run must end
 * in success or a clean error code (never a crash), and the valgrind and ASan runs of
 * this test check that each error path frees what it took.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "admission.h"
#include "fileio.h"
#include "identity_map.h"
#include "json.h"
#include "kube_event.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile_dir.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"
#include "settings.h"

#define MAX_STEPS 100000

/* Runs op with the n-th allocation failing, for n = 0, 1, 2...; returns how many
 * allocations a full run makes. op returns 0 or a negative code. */
static int sweep(const char *name, int (*op)(void *), void *arg)
{
	for (long n = 0; n < MAX_STEPS; n++) {
		int rc;

		mem_fail_after(n);
		rc = op(arg);
		if (!mem_failure_fired()) {
			mem_fail_after(-1);
			if (rc != 0)
				fail_msg(
					"%s: fails without an injected failure (%d)",
					name, rc);
			print_message(
				"%s: %ld allocations, each failed in turn\n",
				name, n);
			return (int)n;
		}
		if (rc == 0)
			continue; /* the failure was absorbed: fine, as long as nothing leaked */
		if (rc != DIAG_ENOMEM && rc != DIAG_ECONFIG &&
		    rc != DIAG_EPARSE)
			fail_msg("%s: allocation %ld failing gave code %d",
				 name, n, rc);
	}
	fail_msg("%s: more than %d allocations", name, MAX_STEPS);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	char *text = NULL;

	assert_int_equal(file_read(path, 1 << 22, &text, len, NULL), 0);
	return text;
}

static int op_profile_dir(void *arg)
{
	struct profile_set *set = NULL;
	int rc = profile_dir_load(arg, &set, NULL);

	profile_set_free(set);
	return rc;
}

struct mutate_case {
	const char *review;
	size_t review_len;
	const char *sa;
	size_t sa_len;
	struct profile_set *set;
	struct settings *settings;
	struct identity_map *identities; /* may be NULL */
};

/* The parser alone, on the heap (no arena), so that valgrind sees each of its
 * error paths free what it took. */
static int op_decode(void *arg)
{
	struct mutate_case *mc = arg;
	struct admission_request req;
	int rc = admission_decode_pruned(mc->review, mc->review_len,
					 mutate_pod_members, NULL, &req, NULL);

	if (rc == 0)
		admission_request_free(&req);
	return rc;
}

/* The server's flow, through the one pipeline: decode (into the review's arena),
 * decide, encode; and the patch applied once more. */
static int op_admission(void *arg)
{
	struct mutate_case *mc = arg;
	struct review_policy policy = { .profiles = mc->set,
					.settings = mc->settings,
					.identities = mc->identities };
	struct review *r = NULL;
	struct service_account *sa = NULL;
	cJSON *sa_json = NULL;
	struct strbuf out;
	int rc;

	strbuf_init(&out, 1 << 22);
	rc = review_decode(mc->review, mc->review_len, &r, NULL);
	if (rc == 0)
		rc = json_parse(mc->sa, mc->sa_len, &sa_json, NULL);
	if (rc == 0)
		rc = sa_from_json(sa_json, NULL, NULL, NULL, &sa, NULL);
	if (rc == 0)
		rc = review_decide(r, &policy, sa, NULL);
	if (rc == 0)
		rc = review_encode(r, &out);
	if (rc == 0 && r->m.patch.n_ops > 0) {
		cJSON *copy = cJSON_Duplicate(r->req.object, true);
		size_t len;
		const char *text = patch_text(&r->m.patch, &len);

		rc = copy && text ? patch_apply(copy, text, len, NULL)
				  : DIAG_ENOMEM;
		cJSON_Delete(copy);
	}
	strbuf_free(&out);
	sa_free(sa);
	cJSON_Delete(sa_json);
	review_free(r);
	return rc;
}

struct map_case {
	const char *text;
	const struct profile_set *set;
};

static int op_identity_map(void *arg)
{
	const struct map_case *mc = arg;
	struct identity_map *map = NULL;
	int rc = identity_map_parse(mc->text, strlen(mc->text), "map", mc->set,
				    &map, NULL);

	identity_map_free(map);
	return rc;
}

static int op_watch_event(void *arg)
{
	struct kube_event ev;
	int rc = kube_event_parse(arg, strlen(arg), NULL, NULL, &ev, NULL);

	if (rc == 0)
		kube_event_clear(&ev);
	return rc;
}

static void test_profile_loader(void **state)
{
	(void)state;
	assert_true(sweep("profile_dir_load", op_profile_dir,
			  PIW_SOURCE_DIR "/profiles") > 20);
}

static void admission_flow(const char *sa_file)
{
	struct mutate_case mc = { 0 };
	size_t len;
	char *review, *sa;

	review = slurp(PIW_SOURCE_DIR "/bench/data/admissionreview-pod.json",
		       &len);
	mc.review = review;
	mc.review_len = len;
	sa = slurp(sa_file, &len);
	mc.sa = sa;
	mc.sa_len = len;
	assert_int_equal(
		profile_dir_load(PIW_SOURCE_DIR "/profiles", &mc.set, NULL), 0);
	assert_int_equal(settings_new(&mc.settings), 0);
	assert_int_equal(
		settings_set_pair(mc.settings, "role-session-name=true", NULL),
		0);
	assert_true(sweep("admission decode", op_decode, &mc) > 50);
	assert_true(sweep("admission flow", op_admission, &mc) > 100);
	assert_int_equal(identity_map_parse("[*/*]\nexample.com/x = y\n", 24,
					    "map", mc.set, &mc.identities,
					    NULL),
			 0);
	assert_true(sweep("admission flow with an identity map", op_admission,
			  &mc) > 100);
	identity_map_free(mc.identities);
	settings_free(mc.settings);
	profile_set_free(mc.set);
	mem_free(review);
	mem_free(sa);
}

static void test_admission_flow(void **state)
{
	(void)state;
	admission_flow(PIW_SOURCE_DIR "/tests/data/sa-app-stackit-aws.json");
}

/* GCP: required annotations, extract, and the generated JSON file (cJSON). */
static void test_admission_flow_generated_file(void **state)
{
	(void)state;
	admission_flow(PIW_SOURCE_DIR "/tests/data/sa-app-gcp.json");
}

static void test_identity_map(void **state)
{
	struct map_case text = { "# ours\n[team/app]\na.io/x = 1\nb.io/y = 2\n"
				 "[*/app]\na.io/x = 3\n",
				 NULL };
	struct map_case json = { "{\"team/app\":{\"RoleARN\":\"arn:aws:iam::"
				 "123456789012:role/a\",\"UseRegionalSTS\":"
				 "true,\"TokenExpiration\":3600},"
				 "\"*/b\":{\"audience\":\"x\"}}",
				 NULL };
	struct profile_set *set = NULL;

	(void)state;
	assert_int_equal(
		profile_dir_load(PIW_SOURCE_DIR "/profiles", &set, NULL), 0);
	json.set = set;
	assert_true(sweep("identity map (ours)", op_identity_map, &text) > 5);
	assert_true(sweep("identity map (JSON)", op_identity_map, &json) > 5);
	profile_set_free(set);
}

static void test_watch_event(void **state)
{
	static char line[] =
		"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"ServiceAccount\",\"metadata\":{"
		"\"name\":\"app\",\"namespace\":\"team\",\"resourceVersion\":\"12\","
		"\"annotations\":{\"a\":\"1\",\"b\":\"2\"}}}}";

	(void)state;
	assert_true(sweep("kube_event_parse", op_watch_event, line) > 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_profile_loader),
		cmocka_unit_test(test_admission_flow),
		cmocka_unit_test(test_admission_flow_generated_file),
		cmocka_unit_test(test_identity_map),
		cmocka_unit_test(test_watch_event),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
