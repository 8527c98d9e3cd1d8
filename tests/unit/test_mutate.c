/*
 * Mutator rules, one by one, with small inline pods: the golden cases cover the
 * shipped profiles end to end; these pin the rules themselves
 * (providers-reference "Our rules").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile_set.h"
#include "service_account.h"
#include "settings.h"
#include "shipped_profiles.h"

#include "unit_json.h"

struct fixture {
	struct profile_set *set;
	struct settings *settings;
	cJSON *pod;
	struct service_account *sa;
	struct mutation m;
};

static int setup(void **state)
{
	struct fixture *f = mem_calloc(1, sizeof(*f));
	struct diag d;

	diag_clear(&d);
	if (f == NULL || shipped_profile_set(&f->set, &d) != 0 ||
	    settings_new(&f->settings) != 0)
		return -1;
	mutation_init(&f->m);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mutation_free(&f->m);
	cJSON_Delete(f->pod);
	sa_free(f->sa);
	settings_free(f->settings);
	profile_set_free(f->set);
	mem_free(f);
	return 0;
}

static void use_sa(struct fixture *f, const char *annotations)
{
	char text[2048];
	cJSON *root;
	struct diag d;

	snprintf(
		text, sizeof(text),
		"{\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"app\",\"namespace\":\"team\","
		"\"annotations\":{%s}}}",
		annotations);
	root = parse(text);
	diag_clear(&d);
	assert_int_equal(sa_from_json(root, NULL, NULL, NULL, &f->sa, &d), 0);
	cJSON_Delete(root);
}

static void run(struct fixture *f, const char *pod)
{
	struct mutate_input in;
	struct diag d;

	f->pod = parse(pod);
	in = (struct mutate_input){ .pod = f->pod,
				    .namespace = "team",
				    .sa = f->sa };
	diag_clear(&d);
	assert_int_equal(mutate_pod(&in, f->set, f->settings, &f->m, &d), 0);
}

/* The pod after the patch, as compact JSON (caller frees). */
static char *mutated(struct fixture *f)
{
	cJSON *copy = cJSON_Duplicate(f->pod, true);
	size_t len;
	const char *text = patch_text(&f->m.patch, &len);
	struct diag d;
	char *out;

	diag_clear(&d);
	assert_int_equal(patch_apply(copy, text, len, &d), 0);
	out = cJSON_PrintUnformatted(copy);
	cJSON_Delete(copy);
	return out;
}

static bool has_warning(const struct mutation *m, const char *needle)
{
	for (size_t i = 0; i < m->n_warnings; i++) {
		if (strstr(m->warnings[i], needle))
			return true;
	}
	return false;
}

#define POD_ONE_CONTAINER \
	"{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":\"app\"}]}}"
#define STACKIT_SA \
	"\"workload-identity.stackit.cloud/service-account-email\":\"a@b.example\""
#define AWS_SA \
	"\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::123456789012:role/r\""
#define VULTR_SA \
	"\"api.vultr.com/role\":\"0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4e\""

static void test_service_account_not_found_admits_with_warning(void **state)
{
	struct fixture *f = *state;

	run(f, POD_ONE_CONTAINER);
	assert_true(f->m.allowed);
	assert_int_equal(f->m.outcome, MUTATE_SA_NOT_FOUND);
	assert_int_equal(f->m.patch.n_ops, 0);
	assert_true(has_warning(&f->m,
				"ServiceAccount \"team/default\" not found"));
}

static void test_no_trigger_no_change_no_warning(void **state)
{
	struct fixture *f = *state;

	use_sa(f, "\"unrelated.io/x\":\"y\"");
	run(f, "{\"spec\":\"garbage is fine when no profile applies\"}");
	assert_true(f->m.allowed);
	assert_int_equal(f->m.outcome, MUTATE_NO_MATCH);
	assert_int_equal(f->m.n_warnings, 0);
	assert_int_equal(f->m.patch.n_ops, 0);
}

static void test_missing_arrays_are_created(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, STACKIT_SA);
	run(f,
	    "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":\"app\"}]}}");
	assert_int_equal(f->m.outcome, MUTATE_PATCHED);
	out = mutated(f);
	assert_non_null(strstr(
		out, "\"volumes\":[{\"name\":\"stackit-workload-identity\""));
	assert_non_null(strstr(
		out,
		"\"volumeMounts\":[{\"name\":\"stackit-workload-identity\","
		"\"mountPath\":\"/var/run/secrets/stackit.cloud/serviceaccount\","
		"\"readOnly\":true}]"));
	assert_non_null(strstr(
		out,
		"\"env\":[{\"name\":\"STACKIT_SERVICE_ACCOUNT_EMAIL\","
		"\"value\":\"a@b.example\"},{\"name\":\"STACKIT_FEDERATED_TOKEN_FILE\""));
	assert_non_null(strstr(
		out,
		"\"annotations\":{\"pod-identity-webhook/profiles\":\"stackit\"}"));
	mem_free(out);
}

static void test_annotation_pointer_is_escaped(void **state)
{
	struct fixture *f = *state;
	size_t len;

	use_sa(f, STACKIT_SA);
	run(f,
	    "{\"metadata\":{\"annotations\":{\"a~b/c\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	assert_non_null(strstr(
		patch_text(&f->m.patch, &len),
		"\"path\":\"/metadata/annotations/pod-identity-webhook~1profiles\""));
}

static void test_second_pass_is_empty(void **state)
{
	struct fixture *f = *state;
	struct mutation again;
	struct mutate_input in;
	cJSON *pod2;
	char *out;
	struct diag d;

	use_sa(f, STACKIT_SA "," AWS_SA);
	run(f,
	    "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"initContainers\":[{\"name\":\"i\","
	    "\"restartPolicy\":\"Always\"}],\"containers\":[{\"name\":\"a\",\"env\":[]},{\"name\":\"b\"}]}}");
	assert_int_equal(f->m.n_applied, 2);
	out = mutated(f);
	pod2 = parse(out);
	mutation_init(&again);
	in = (struct mutate_input){ .pod = pod2,
				    .namespace = "team",
				    .sa = f->sa };
	diag_clear(&d);
	assert_int_equal(mutate_pod(&in, f->set, f->settings, &again, &d), 0);
	assert_int_equal(again.outcome, MUTATE_UNCHANGED);
	assert_int_equal(again.patch.n_ops, 0);
	assert_int_equal(again.n_warnings, 0);
	mutation_free(&again);
	cJSON_Delete(pod2);
	mem_free(out);
}

static void test_user_env_kept_with_warning_only_when_different(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"AWS_ROLE_ARN\",\"value\":\"mine\"}]},"
	    "{\"name\":\"b\",\"env\":[{\"name\":\"AWS_ROLE_ARN\",\"value\":\"arn:aws:iam::123456789012:role/r\"}]}]}}");
	assert_true(
		has_warning(&f->m, "container \"a\" sets AWS_ROLE_ARN itself"));
	assert_false(has_warning(
		&f->m, "container \"b\" sets AWS_ROLE_ARN itself; kept"));
	/* AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE are one group. */
	assert_true(has_warning(
		&f->m, "AWS_WEB_IDENTITY_TOKEN_FILE, which goes with it"));
	out = mutated(f);
	assert_null(strstr(out, "AWS_WEB_IDENTITY_TOKEN_FILE"));
	assert_null(
		strstr(out, "\"value\":\"mine\"},{\"name\":\"AWS_ROLE_ARN\""));
	mem_free(out);
}

static void test_two_profiles_first_wins_on_env(void **state)
{
	struct fixture *f = *state;
	char *out;

	/* Rule 1: vultr shares AWS_ROLE_ARN with aws, so it does not go into
	 * the container aws already gave its set, not even its own endpoint. */
	use_sa(f, AWS_SA "," VULTR_SA);
	run(f, POD_ONE_CONTAINER);
	assert_int_equal(f->m.n_applied, 1);
	assert_string_equal(f->m.applied[0], "aws");
	assert_true(has_warning(&f->m, "vultr: not applied to container"));
	assert_true(has_warning(&f->m, "profile aws, which comes first"));
	out = mutated(f);
	assert_null(strstr(out, "\"AWS_ENDPOINT_URL_STS\""));
	assert_null(strstr(out, "vultr-irsa-token"));
	assert_null(strstr(
		out, "\"value\":\"0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4e\""));
	assert_non_null(
		strstr(out, "\"pod-identity-webhook/profiles\":\"aws\""));
	mem_free(out);
}

static void test_bad_trigger_denies_naming_everything(void **state)
{
	struct fixture *f = *state;

	use_sa(f,
	       "\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::12:role/r\"," STACKIT_SA);
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_int_equal(f->m.outcome, MUTATE_DENIED);
	assert_int_equal(f->m.patch.n_ops,
			 0); /* stackit was fine, but all or nothing */
	assert_non_null(strstr(
		strbuf_str(&f->m.message),
		"ServiceAccount \"team/app\" annotation \"eks.amazonaws.com/role-arn\": "
		"\"arn:aws:iam::12:role/r\" is not an IAM role ARN"));
}

static void test_foreign_volume_with_our_name_denies(void **state)
{
	struct fixture *f = *state;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"volumes\":[{\"name\":\"aws-iam-token\",\"emptyDir\":{}}],"
	    "\"containers\":[{\"name\":\"a\"}]}}");
	assert_false(f->m.allowed);
	assert_non_null(strstr(strbuf_str(&f->m.message),
			       "volume \"aws-iam-token\" already exists"));
}

static void test_mount_conflicts_deny(void **state)
{
	struct fixture *f = *state;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"containers\":[{\"name\":\"a\",\"volumeMounts\":"
	    "[{\"name\":\"other\",\"mountPath\":\"/var/run/secrets/eks.amazonaws.com/serviceaccount/\"}]}]}}");
	assert_false(f->m.allowed);
	assert_non_null(strstr(strbuf_str(&f->m.message),
			       "container \"a\" mounts volume \"other\""));
}

static void test_unreadable_pod_is_admitted_with_warning(void **state)
{
	struct fixture *f = *state;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":{\"not\":\"an array\"}}]}}");
	assert_true(f->m.allowed);
	assert_int_equal(f->m.outcome, MUTATE_NOT_UNDERSTOOD);
	assert_int_equal(f->m.patch.n_ops, 0);
	assert_true(
		has_warning(&f->m, "spec.containers[0].env is not an array"));
}

/* The problem names the container by its list and a multi-digit index. */
static void test_unreadable_init_container_named_by_index(void **state)
{
	struct fixture *f = *state;
	struct strbuf pod;

	strbuf_init(&pod, 1024);
	assert_int_equal(strbuf_adds(&pod,
				     "{\"spec\":{\"containers\":[{\"name\":"
				     "\"a\"}],\"initContainers\":["),
			 0);
	for (int i = 0; i < 12; i++)
		assert_int_equal(strbuf_adds(&pod, "{\"name\":\"i\"},"), 0);
	assert_int_equal(strbuf_adds(&pod, "{\"name\":\"i\",\"env\":1}]}}"), 0);
	use_sa(f, AWS_SA);
	run(f, strbuf_str(&pod));
	strbuf_free(&pod);
	assert_int_equal(f->m.outcome, MUTATE_NOT_UNDERSTOOD);
	assert_true(has_warning(&f->m,
				"spec.initContainers[12].env is not an array"));
}

static void test_lifetime_clamped_and_pod_beats_sa(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, AWS_SA ",\"eks.amazonaws.com/token-expiration\":\"3600\"");
	run(f,
	    "{\"metadata\":{\"annotations\":{\"eks.amazonaws.com/token-expiration\":\"60\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	assert_true(has_warning(&f->m, "raised to the minimum of 600 s"));
	out = mutated(f);
	assert_non_null(strstr(out, "\"expirationSeconds\":600,"));
	mem_free(out);
}

static void test_lifetime_not_a_number_denies(void **state)
{
	struct fixture *f = *state;

	use_sa(f, AWS_SA ",\"eks.amazonaws.com/token-expiration\":\"1h\"");
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_non_null(strstr(
		strbuf_str(&f->m.message),
		"annotation \"eks.amazonaws.com/token-expiration\": \"1h\" is not a whole number"));
}

static void test_windows_token_path(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"spec\":{\"nodeSelector\":{\"kubernetes.io/os\":\"windows\"},\"containers\":[{\"name\":\"a\"}]}}");
	out = mutated(f);
	assert_non_null(strstr(
		out,
		"\"value\":\"C:\\\\var\\\\run\\\\secrets\\\\eks.amazonaws.com\\\\serviceaccount\\\\token\""));
	assert_non_null(strstr(
		out,
		"\"mountPath\":\"/var/run/secrets/eks.amazonaws.com/serviceaccount\""));
	mem_free(out);
}

static void test_session_name_sanitised(void **state)
{
	struct fixture *f = *state;
	struct diag d;
	char *out;

	diag_clear(&d);
	assert_int_equal(
		settings_set_pair(f->settings, "role-session-name=true", &d),
		0);
	use_sa(f, AWS_SA);
	run(f,
	    "{\"metadata\":{\"generateName\":\"web:1/x-\"},\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	out = mutated(f);
	assert_non_null(strstr(
		out,
		"{\"name\":\"AWS_ROLE_SESSION_NAME\",\"value\":\"web-1-x-\"}"));
	mem_free(out);
}

static void test_bad_boolean_annotation_denies(void **state)
{
	struct fixture *f = *state;

	use_sa(f,
	       AWS_SA ",\"eks.amazonaws.com/sts-regional-endpoints\":\"yes\"");
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_non_null(strstr(strbuf_str(&f->m.message),
			       "\"yes\" is not true or false"));
}

static void test_include_and_skip_containers(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, AWS_SA);
	run(f,
	    "{\"metadata\":{\"annotations\":{\"eks.amazonaws.com/include-containers\":\"a; b\","
	    "\"eks.amazonaws.com/skip-containers\":\" b \"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}]}}");
	out = mutated(f);
	assert_non_null(strstr(out, "{\"name\":\"a\",\"volumeMounts\""));
	assert_non_null(strstr(out, "{\"name\":\"b\"}"));
	assert_non_null(strstr(out, "{\"name\":\"c\"}"));
	mem_free(out);
}

static void test_skip_label_present_vs_true(void **state)
{
	struct fixture *f = *state;

	use_sa(f, AWS_SA "," STACKIT_SA);
	run(f,
	    "{\"metadata\":{\"labels\":{\"eks.amazonaws.com/skip-pod-identity-webhook\":\"false\"},"
	    "\"annotations\":{\"workload-identity.stackit.cloud/skip-pod-identity-webhook\":\"false\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	/* aws's label matches on presence, stackit's annotation only on "true". */
	assert_int_equal(f->m.n_applied, 1);
	assert_string_equal(f->m.applied[0], "stackit");
	assert_non_null(strstr(
		f->m.skip_reason,
		"aws: pod label eks.amazonaws.com/skip-pod-identity-webhook"));
}

/* STACKIT's chart skips a pod carrying its label at all, whatever the value. */
static void test_stackit_skip_label_by_presence(void **state)
{
	struct fixture *f = *state;

	use_sa(f, STACKIT_SA);
	run(f,
	    "{\"metadata\":{\"labels\":{\"workload-identity.stackit.cloud/skip-pod-identity-webhook\":\"no\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	assert_int_equal(f->m.n_applied, 0);
	assert_non_null(strstr(
		f->m.skip_reason,
		"stackit: pod label workload-identity.stackit.cloud/skip-pod-identity-webhook"));
}

static void test_two_profiles_one_mount_path_denies(void **state)
{
	struct fixture *f = *state;

	use_sa(f, STACKIT_SA
	       ",\"workload-identity.stackit.cloud/federated-token-file\":"
	       "\"/var/run/secrets/eks.amazonaws.com/serviceaccount/stackit\"," AWS_SA);
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_string_equal(mutate_deny_name(f->m.deny_reason),
			    "mount-conflict");
	assert_non_null(strstr(
		strbuf_str(&f->m.message),
		"profiles stackit and aws would both mount their token at "
		"\"/var/run/secrets/eks.amazonaws.com/serviceaccount\""));
}

#define GCP_PROVIDER \
	"projects/1/locations/global/workloadIdentityPools/p/providers/q"
#define GCP_SA                                                            \
	"\"cloud.google.com/workload-identity-provider\":\"" GCP_PROVIDER \
	"\","                                                             \
	"\"cloud.google.com/service-account-email\":\"a@proj-1.iam.gserviceaccount.com\""
#define AZURE_POD                                                                \
	"{\"metadata\":{\"name\":\"web\",\"labels\":{\"azure.workload.identity/" \
	"use\":\"true\"}},\"spec\":{\"containers\":[{\"name\":\"app\"}]}}"

/* The JSON file carried by annotation `ann` of a pod, parsed (caller frees). */
static cJSON *generated_file(const char *pod_json, const char *ann)
{
	cJSON *pod = parse(pod_json), *file;
	const cJSON *metadata = cJSON_GetObjectItem(pod, "metadata");
	const cJSON *annotations = cJSON_GetObjectItem(metadata, "annotations");
	const char *text =
		cJSON_GetStringValue(cJSON_GetObjectItem(annotations, ann));

	assert_non_null(text);
	file = parse(text);
	cJSON_Delete(pod);
	return file;
}

static void test_label_only_trigger(void **state)
{
	struct fixture *f = *state;
	char *out;

	/* No annotation at all: the pod label alone turns azure on, and
	 * AZURE_CLIENT_ID is left out. */
	use_sa(f, "\"unrelated.io/x\":\"y\"");
	run(f, AZURE_POD);
	assert_int_equal(f->m.n_applied, 1);
	assert_string_equal(f->m.applied[0], "azure");
	out = mutated(f);
	assert_null(strstr(out, "AZURE_CLIENT_ID"));
	assert_non_null(strstr(
		out,
		"\"/var/run/secrets/azure/wi/token/azure-identity-token\""));
	assert_non_null(strstr(out, "\"path\":\"token/azure-identity-token\""));
	mem_free(out);
}

static void test_label_must_be_exactly_true(void **state)
{
	struct fixture *f = *state;

	/* The ServiceAccount is set up for azure, the pod's label is not
	 * exactly "true": not mutated, and the reason says so (rule 14). */
	use_sa(f, "\"azure.workload.identity/client-id\":"
		  "\"3f2c8a91-6d4b-4e7a-b1c5-9e0d2f7a6b48\"");
	run(f, "{\"metadata\":{\"labels\":{\"azure.workload.identity/use\":"
	       "\"TRUE\"}},\"spec\":{\"containers\":[{\"name\":\"a\"}]}}");
	assert_int_equal(f->m.outcome, MUTATE_SKIPPED);
	assert_int_equal(f->m.patch.n_ops, 0);
	assert_string_equal(
		f->m.skip_reason,
		"azure: pod label azure.workload.identity/use is not "
		"\"true\"");
}

static void test_required_annotation_missing_is_named(void **state)
{
	struct fixture *f = *state;

	use_sa(f, "\"cloud.google.com/service-account-email\":\"a@b.example\"");
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_non_null(strstr(
		f->m.message.buf,
		"annotation \"cloud.google.com/workload-identity-provider\" is "
		"missing: profile gcp requires it"));
}

static void test_pattern_check_denies_with_the_form(void **state)
{
	struct fixture *f = *state;

	use_sa(f, "\"cloud.google.com/workload-identity-provider\":\"pools/x\","
		  "\"cloud.google.com/service-account-email\":\"nope\"");
	run(f, POD_ONE_CONTAINER);
	assert_false(f->m.allowed);
	assert_non_null(strstr(f->m.message.buf,
			       "\"pools/x\" is not of the form "
			       "projects/.+/locations/"));
	/* All of the ServiceAccount's errors, in one message. */
	assert_non_null(strstr(f->m.message.buf, "\"nope\" is not an e-mail"));
}

static void test_generated_file_is_json_escaped(void **state)
{
	struct fixture *f = *state;
	cJSON *file;
	char *out;

	/* The reference's provider pattern lets '"' and '\' through: the
	 * file must stay JSON and carry them as they are. */
	use_sa(f, "\"cloud.google.com/workload-identity-provider\":"
		  "\"projects/1\\\"x\\\\/locations/l/workloadIdentityPools/p/"
		  "providers/q\","
		  "\"cloud.google.com/service-account-email\":"
		  "\"a@proj-1.iam.gserviceaccount.com\"");
	run(f, POD_ONE_CONTAINER);
	assert_true(f->m.allowed);
	out = mutated(f);
	file = generated_file(out,
			      "cloud.google.com/external-credentials-json");
	assert_string_equal(
		cJSON_GetStringValue(cJSON_GetObjectItem(file, "audience")),
		"//iam.googleapis.com/projects/1\"x\\/locations/l/"
		"workloadIdentityPools/p/providers/q");
	assert_string_equal(
		cJSON_GetStringValue(cJSON_GetObjectItem(
			cJSON_GetObjectItem(
				cJSON_GetObjectItem(file, "credential_source"),
				"format"),
			"type")),
		"text");
	cJSON_Delete(file);
	/* The downwardAPI item reads that annotation; the mount is read-only. */
	assert_non_null(strstr(
		out, "\"fieldPath\":\"metadata.annotations['cloud.google.com/"
		     "external-credentials-json']\""));
	assert_non_null(strstr(out, "{\"name\":\"external-credential-config\","
				    "\"mountPath\":\"/var/run/secrets/"
				    "workload-identity\",\"readOnly\":true}"));
	/* extract: the project from the e-mail's domain, and env: reuses it. */
	assert_non_null(strstr(
		out,
		"{\"name\":\"CLOUDSDK_CORE_PROJECT\",\"value\":\"proj-1\"}"));
	assert_non_null(strstr(
		out,
		"{\"name\":\"GOOGLE_CLOUD_PROJECT\",\"value\":\"proj-1\"}"));
	mem_free(out);
}

static void test_generated_file_second_pass_and_foreign_volume(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, GCP_SA);
	run(f, POD_ONE_CONTAINER);
	out = mutated(f);
	mutation_free(&f->m);
	mutation_init(&f->m);
	cJSON_Delete(f->pod);
	run(f, out);
	mem_free(out);
	assert_true(f->m.allowed);
	assert_int_equal(f->m.outcome, MUTATE_UNCHANGED);
	assert_int_equal(f->m.patch.n_ops, 0);
	mutation_free(&f->m);
	mutation_init(&f->m);
	cJSON_Delete(f->pod);
	run(f,
	    "{\"spec\":{\"volumes\":[{\"name\":\"external-credential-config\","
	    "\"emptyDir\":{}}],\"containers\":[{\"name\":\"a\"}]}}");
	assert_false(f->m.allowed);
	assert_non_null(strstr(f->m.message.buf,
			       "volume \"external-credential-config\" already "
			       "exists and is not the downwardAPI file"));
}

static void test_rule1_split_by_include_containers(void **state)
{
	struct fixture *f = *state;
	char *out;

	use_sa(f, AWS_SA "," VULTR_SA);
	run(f,
	    "{\"metadata\":{\"annotations\":{"
	    "\"eks.amazonaws.com/include-containers\":\"a\","
	    "\"api.vultr.com/include-containers\":\"b\"}},"
	    "\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}");
	assert_int_equal(f->m.n_applied, 2);
	assert_int_equal(f->m.n_warnings, 0);
	out = mutated(f);
	/* b, which only vultr selects, gets vultr's whole set. */
	assert_non_null(strstr(
		out, "{\"name\":\"b\",\"volumeMounts\":[{\"name\":\"vultr-irsa-"
		     "token\",\"mountPath\":\"/var/run/secrets/vultr.com/"
		     "serviceaccount\",\"readOnly\":true}],\"env\":[{\"name\":"
		     "\"AWS_ROLE_ARN\",\"value\":\"0bd5b8a4-3e4c-4c1c-8f4f-"
		     "2f4d1b2c3d4e\"}"));
	assert_null(strstr(out, "{\"name\":\"a\",\"volumeMounts\":[{\"name\":"
				"\"aws-iam-token\"},{\"name\":\"vultr"));
	mem_free(out);
}

static void test_group_kept_whole(void **state)
{
	struct fixture *f = *state;
	char *out;

	assert_int_equal(
		settings_set_pair(f->settings, "region=eu-central-1", NULL), 0);
	use_sa(f, AWS_SA);
	run(f, "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
	       "\"AWS_REGION\",\"value\":\"us-west-2\"}]},{\"name\":\"b\"}]}}");
	assert_true(has_warning(&f->m,
				"container \"a\" sets AWS_REGION itself; "
				"AWS_DEFAULT_REGION, which goes with it, "
				"is not injected"));
	out = mutated(f);
	/* a keeps its one region; b, which sets none, gets both. */
	assert_null(strstr(out, "\"value\":\"us-west-2\"},{\"name\":\"AWS_"
				"DEFAULT_REGION\""));
	assert_non_null(strstr(
		out,
		"{\"name\":\"AWS_REGION\",\"value\":\"eu-central-1\"},"
		"{\"name\":\"AWS_DEFAULT_REGION\",\"value\":\"eu-central-1\"}"));
	mem_free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_service_account_not_found_admits_with_warning),
		T(test_no_trigger_no_change_no_warning),
		T(test_missing_arrays_are_created),
		T(test_annotation_pointer_is_escaped),
		T(test_second_pass_is_empty),
		T(test_user_env_kept_with_warning_only_when_different),
		T(test_two_profiles_first_wins_on_env),
		T(test_bad_trigger_denies_naming_everything),
		T(test_foreign_volume_with_our_name_denies),
		T(test_mount_conflicts_deny),
		T(test_unreadable_pod_is_admitted_with_warning),
		T(test_unreadable_init_container_named_by_index),
		T(test_lifetime_clamped_and_pod_beats_sa),
		T(test_lifetime_not_a_number_denies),
		T(test_windows_token_path),
		T(test_session_name_sanitised),
		T(test_bad_boolean_annotation_denies),
		T(test_include_and_skip_containers),
		T(test_skip_label_present_vs_true),
		T(test_stackit_skip_label_by_presence),
		T(test_two_profiles_one_mount_path_denies),
		T(test_label_only_trigger),
		T(test_label_must_be_exactly_true),
		T(test_required_annotation_missing_is_named),
		T(test_pattern_check_denies_with_the_form),
		T(test_generated_file_is_json_escaped),
		T(test_generated_file_second_pass_and_foreign_volume),
		T(test_rule1_split_by_include_containers),
		T(test_group_kept_whole),
#undef T
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
