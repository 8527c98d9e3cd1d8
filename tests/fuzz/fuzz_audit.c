/*
 * Fuzz target: a list page of pods, as `audit` reads it from the API server
 * (kube_list_page_parse with the mutator's keep-schema), each pod judged
 * against a fixed set of ServiceAccounts (matched by name) with the shipped
 * profiles, every verdict put in a report and the report rendered both ways.
 * Beyond "no crash": the JSON rendering must parse, and the table must have one
 * line per pod plus its header. Any failure aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_report.h"
#include "json.h"
#include "kube_page.h"
#include "mem.h"
#include "mutate.h"
#include "review.h"
#include "service_account.h"
#include "settings.h"
#include "strbuf.h"

#include "fuzz.h"
#include "fuzz_shipped.h"

#define N_SAS 4

static struct profile_set *profiles;
static struct settings *settings;
static struct service_account *sas[N_SAS];
static struct review_policy policy;

static const char *const sa_json[N_SAS] = {
	"{\"metadata\":{\"name\":\"app\",\"namespace\":\"ns\",\"annotations\":"
	"{\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::111122223333:role/app\"}}}",
	"{\"metadata\":{\"name\":\"bad\",\"namespace\":\"ns\",\"annotations\":"
	"{\"eks.amazonaws.com/role-arn\":\"nope\"}}}",
	"{\"metadata\":{\"name\":\"two\",\"namespace\":\"ns\",\"annotations\":"
	"{\"eks.amazonaws.com/role-arn\":\"arn:aws:iam::111122223333:role/two\","
	"\"workload-identity.stackit.cloud/service-account-email\":"
	"\"two@sa.stackit.cloud\"}}}",
	"{\"metadata\":{\"name\":\"plain\",\"namespace\":\"ns\"}}",
};

static void fuzz_fixture(void)
{
	static const char *const pairs[] = { "region=eu-central-1", NULL };

	fuzz_shipped_profiles(&profiles, &settings, pairs);
	policy.profiles = profiles;
	policy.settings = settings;
	for (size_t i = 0; i < N_SAS; i++) {
		cJSON *root = NULL;

		if (json_parse(sa_json[i], strlen(sa_json[i]), &root, NULL) !=
			    0 ||
		    sa_from_json(root, NULL, NULL, NULL, &sas[i], NULL) != 0)
			abort();
		cJSON_Delete(root);
	}
}

static const struct service_account *find_sa(const char *name)
{
	for (size_t i = 0; i < N_SAS; i++) {
		if (strcmp(sas[i]->name, name) == 0)
			return sas[i];
	}
	return NULL;
}

static int judge(void *arg, const cJSON *pod)
{
	const char *sa_name = mutate_service_account_name(pod);
	struct audit_verdict v;
	int rc = audit_judge_pod(pod, find_sa(sa_name), &policy, &v, NULL);

	if (rc == 0)
		rc = audit_report_add_pod(arg, "ns", mutate_pod_name(pod),
					  sa_name, &v);
	return rc;
}

static int collect(void *arg, const char *text, size_t len)
{
	return strbuf_add(arg, text, len);
}

static void check_renderings(const struct audit_report *r, size_t pods)
{
	struct strbuf out;
	cJSON *doc = NULL;
	size_t lines = 0;

	strbuf_init(&out, 64 * 1024 * 1024);
	if (audit_report_render(r, AUDIT_JSON, collect, &out) != 0 ||
	    json_parse(strbuf_str(&out), out.len, &doc, NULL) != 0 ||
	    (size_t)cJSON_GetArraySize(cJSON_GetObjectItem(doc, "pods")) !=
		    pods)
		abort();
	cJSON_Delete(doc);
	strbuf_reset(&out);
	if (audit_report_render(r, AUDIT_TABLE, collect, &out) != 0)
		abort();
	for (size_t i = 0; i < out.len; i++)
		lines += out.buf[i] == '\n';
	if (lines != (pods ? pods + 1 : 1))
		abort();
	strbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_report *report = NULL;
	struct kube_list_request req = { .item_members = mutate_pod_members,
					 .each = judge };
	char cont[256];
	long long remaining;
	size_t n = 0;

	if (audit_report_new(&report) != 0)
		abort();
	req.arg = report;
	if (kube_list_page_parse((const char *)data, size, &req, cont,
				 sizeof(cont), &remaining, &n, NULL) == 0)
		check_renderings(report, n);
	audit_report_free(report);
	return 0;
}
