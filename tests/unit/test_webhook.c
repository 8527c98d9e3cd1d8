/*
 * The admission flow without a network: body in, HTTP reply out, through a fake
 * ServiceAccount source that can also be "unavailable".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "profile_dir.h"
#include "profile_live.h"
#include "log.h"
#include "webhook.h"

struct fake_source {
	struct sa_source base;
	bool unavailable;
	bool cold; /* lookup_cached: only a live lookup could tell */
	int lookups;
};

static enum sa_lookup fake_lookup(struct sa_source *s, const char *ns,
				  const char *name,
				  struct service_account **ret, struct diag *d)
{
	struct fake_source *f = (struct fake_source *)s;
	struct sa_annotation a = { "eks.amazonaws.com/role-arn",
				   "arn:aws:iam::123456789012:role/app" };

	f->lookups++;
	*ret = NULL;
	if (f->unavailable) {
		diag_set(d, DIAG_EUNAVAIL, "connection refused");
		return SA_LOOKUP_UNAVAILABLE;
	}
	if (strcmp(ns, "team") != 0 || strcmp(name, "app") != 0)
		return SA_LOOKUP_NOT_FOUND;
	assert_int_equal(sa_new(ns, name, &a, 1, ret), 0);
	return SA_LOOKUP_FOUND;
}

static enum sa_lookup fake_lookup_cached(struct sa_source *s, const char *ns,
					 const char *name,
					 struct service_account **ret,
					 struct diag *d)
{
	if (((struct fake_source *)s)->cold) {
		*ret = NULL;
		return SA_LOOKUP_WOULD_BLOCK;
	}
	return fake_lookup(s, ns, name, ret, d);
}

static bool fake_ready(struct sa_source *s)
{
	(void)s;
	return true;
}

static size_t fake_count(struct sa_source *s)
{
	(void)s;
	return 1;
}

struct fixture {
	struct fake_source source;
	struct profile_live *live;
	struct webhook w;
	struct http_reply reply;
};

static int setup(void **state)
{
	struct fixture *f = mem_calloc(1, sizeof(*f));
	struct profile_set *set = NULL;

	if (f == NULL ||
	    profile_dir_load(PIW_SOURCE_DIR "/profiles", &set, NULL) != 0 ||
	    profile_live_new(set, &f->live) != 0)
		return -1;
	f->source.base =
		(struct sa_source){ .name = "fake",
				    .lookup = fake_lookup,
				    .lookup_cached = fake_lookup_cached,
				    .ready = fake_ready,
				    .count = fake_count };
	f->w = (struct webhook){ .profiles = f->live, .sa = &f->source.base };
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mem_free(f->reply.body);
	profile_live_free(f->live);
	mem_free(f);
	return 0;
}

#define REVIEW(api, ns, op, sa)                                                          \
	"{\"apiVersion\":\"" api                                                         \
	"\",\"kind\":\"AdmissionReview\",\"request\":{"                                  \
	"\"uid\":\"u-7\",\"kind\":{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}," \
	"\"operation\":\"" op "\",\"namespace\":\"" ns                                   \
	"\",\"object\":{\"spec\":{"                                                      \
	"\"serviceAccountName\":\"" sa                                                   \
	"\",\"containers\":[{\"name\":\"c\"}]}}}}"

static cJSON *post(struct fixture *f, const char *body)
{
	cJSON *root = NULL;

	mem_free(f->reply.body);
	webhook_mutate(&f->w, body, strlen(body), &f->reply);
	if (f->reply.status != 200)
		return NULL;
	assert_string_equal(f->reply.content_type, "application/json");
	assert_int_equal(json_parse(f->reply.body, f->reply.len, &root, NULL),
			 0);
	return root;
}

static void test_patched_v1beta1(void **state)
{
	struct fixture *f = *state;
	cJSON *root = post(
		f, REVIEW("admission.k8s.io/v1beta1", "team", "CREATE", "app"));
	const cJSON *resp = cJSON_GetObjectItem(root, "response");

	assert_string_equal(json_string(root, "apiVersion"),
			    "admission.k8s.io/v1beta1");
	assert_string_equal(json_string(resp, "uid"), "u-7");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed")));
	assert_string_equal(json_string(resp, "patchType"), "JSONPatch");
	assert_non_null(json_string(resp, "patch"));
	cJSON_Delete(root);
}

static void test_not_found_warns(void **state)
{
	struct fixture *f = *state;
	cJSON *root = post(
		f, REVIEW("admission.k8s.io/v1", "team", "CREATE", "ghost"));
	const cJSON *resp = cJSON_GetObjectItem(root, "response");

	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed")));
	assert_null(cJSON_GetObjectItem(resp, "patch"));
	assert_non_null(strstr(
		cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "warnings"), 0)
			->valuestring,
		"\"team/ghost\" not found"));
	cJSON_Delete(root);
}

static void test_unavailable_is_500(void **state)
{
	struct fixture *f = *state;

	f->source.unavailable = true;
	assert_null(post(
		f, REVIEW("admission.k8s.io/v1", "team", "CREATE", "app")));
	assert_int_equal(f->reply.status, 500);
	assert_non_null(strstr(f->reply.body,
			       "cannot look up ServiceAccount team/app: "
			       "connection refused"));
}

static void test_update_passes_without_lookup(void **state)
{
	struct fixture *f = *state;
	cJSON *root =
		post(f, REVIEW("admission.k8s.io/v1", "team", "UPDATE", "app"));

	assert_int_equal(f->source.lookups, 0);
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "response"),
					"patch"));
	cJSON_Delete(root);
}

static void test_malformed_is_400_with_reason(void **state)
{
	struct fixture *f = *state;

	assert_null(post(
		f,
		"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}"));
	assert_int_equal(f->reply.status, 400);
	assert_string_equal(
		f->reply.body,
		"invalid AdmissionReview: request is missing or not an object\n");
}

/* A pod the mutator cannot read (containers is not a list) is admitted, with a
 * warning that says so; `mutate` refuses the same pod as bad input. */
static void test_wrong_shape_admitted_with_warning(void **state)
{
	struct fixture *f = *state;
	cJSON *root = post(
		f, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":"
		   "\"AdmissionReview\",\"request\":{\"uid\":\"u-8\",\"kind\":"
		   "{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"},"
		   "\"operation\":\"CREATE\",\"namespace\":\"team\",\"object\":"
		   "{\"spec\":{\"serviceAccountName\":\"app\",\"containers\":"
		   "\"nope\"}}}}");
	const cJSON *resp = cJSON_GetObjectItem(root, "response");

	assert_int_equal(f->reply.status, 200);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(resp, "allowed")));
	assert_null(cJSON_GetObjectItem(resp, "patch"));
	assert_non_null(strstr(
		cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "warnings"), 0)
			->valuestring,
		"could not read this pod"));
	cJSON_Delete(root);
}

struct later {
	const struct webhook *w;
	struct webhook_call *call;
	struct http_reply *reply;
	bool answered;
};

static void *answer_later(void *arg)
{
	struct later *l = arg;

	l->answered = webhook_answer(l->w, l->call, true, l->reply);
	return NULL;
}

/* A cache miss: the request is decoded once, on the request thread; the body is
 * gone when another thread (the server's offload pool) answers from the decoded
 * review after the live lookup. */
static void test_cache_miss_answered_from_decoded_review(void **state)
{
	struct fixture *f = *state;
	char *body = mem_strdup(
		REVIEW("admission.k8s.io/v1", "team", "CREATE", "app"));
	struct webhook_call call;
	struct later l = { &f->w, &call, &f->reply, false };
	pthread_t thread;
	cJSON *root = NULL;

	f->source.cold = true;
	assert_true(webhook_begin(&f->w, body, strlen(body), &call, &f->reply));
	memset(body, 'x', strlen(body)); /* the review must not need it */
	mem_free(body);
	assert_false(webhook_answer(&f->w, &call, false, &f->reply));
	assert_int_equal(f->source.lookups, 0);
	assert_int_equal(pthread_create(&thread, NULL, answer_later, &l), 0);
	assert_int_equal(pthread_join(thread, NULL), 0);
	assert_true(l.answered);
	assert_null(call.review); /* answered: the call is over */
	assert_int_equal(f->source.lookups, 1);
	assert_int_equal(f->reply.status, 200);
	assert_int_equal(json_parse(f->reply.body, f->reply.len, &root, NULL),
			 0);
	assert_non_null(
		json_string(cJSON_GetObjectItem(root, "response"), "patch"));
	assert_string_equal(
		json_string(cJSON_GetObjectItem(root, "response"), "uid"),
		"u-7");
	cJSON_Delete(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_patched_v1beta1),
		T(test_not_found_warns),
		T(test_unavailable_is_500),
		T(test_update_passes_without_lookup),
		T(test_malformed_is_400_with_reason),
		T(test_wrong_shape_admitted_with_warning),
		T(test_cache_miss_answered_from_decoded_review),
#undef T
	};

	mem_install_json_hooks();
	log_setup(LOG_ERROR, true);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
