/*
 * cli_audit: the ServiceAccounts are listed first (into a map, keeping only the
 * annotations the profiles read, as the webhook's cache does), then the pods,
 * a page at a time, each judged as it arrives: memory holds one page of pods,
 * every ServiceAccount and one report row per pod.
 */
#include "cli_audit.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "audit_report.h"
#include "cli.h"
#include "identity_file.h"
#include "json.h"
#include "kube_connect.h"
#include "kube_event.h"
#include "kube_list.h"
#include "kube_source.h"
#include "mutate.h"
#include "profile_dir.h"
#include "profile_set.h"
#include "review.h"
#include "sa_map.h"
#include "service_account.h"
#include "strbuf.h"

#define PAGE_TIMEOUT_MS 60000L
#define PAGE_MAX_BYTES	(256L * 1024 * 1024)
#define PROGRESS_EVERY	10000

struct audit_run {
	const struct config *cfg;
	struct review_policy policy; /* what every pod is judged under */
	struct sa_map *sas;
	struct audit_report *report;
	FILE *err;
	bool tty;	      /* progress overwrites one line */
	size_t next_progress; /* items at which the next line is printed */
	const char *what;     /* "serviceaccounts" or "pods" */
	struct diag *d;
};

static const char *process_getenv(const char *name)
{
	return getenv(name);
}

static bool keep_annotation(const char *key, void *arg)
{
	return profile_set_reads_sa_annotation(arg, key);
}

static void progress(void *arg, size_t items, long long remaining)
{
	struct audit_run *a = arg;

	if (!a->tty && items < a->next_progress)
		return;
	a->next_progress = items + PROGRESS_EVERY;
	fprintf(a->err, "%saudit: %zu %s", a->tty ? "\r" : "", items, a->what);
	if (remaining > 0)
		fprintf(a->err, ", about %lld more", remaining);
	fprintf(a->err, "%s", a->tty ? "\033[K" : "\n");
	fflush(a->err);
}

static int on_service_account(void *arg, const cJSON *item)
{
	struct audit_run *a = arg;
	struct service_account *sa = NULL;
	struct audit_verdict v;
	int rc = sa_from_json(item, NULL, keep_annotation,
			      (void *)a->policy.profiles, &sa, a->d);

	if (rc == 0)
		rc = audit_judge_service_account(sa, &a->policy, &v, a->d);
	if (rc == 0 && v.status == AUDIT_DENIED &&
	    audit_report_add_service_account(a->report, sa->namespace, sa->name,
					     &v) != 0)
		rc = diag_set(a->d, DIAG_ENOMEM, "out of memory");
	if (rc == 0 && sa_map_put(a->sas, sa) != 0)
		rc = diag_set(a->d, DIAG_ENOMEM, "out of memory");
	else if (rc == 0)
		sa = NULL; /* the map owns it */
	sa_free(sa);
	return rc;
}

static int on_pod(void *arg, const cJSON *pod)
{
	struct audit_run *a = arg;
	const cJSON *meta = cJSON_GetObjectItem(pod, "metadata");
	const char *ns = json_string(meta, "namespace");
	const char *sa_name = mutate_service_account_name(pod);
	struct audit_verdict v;
	int rc;

	if (ns == NULL || ns[0] == '\0')
		return diag_set(a->d, DIAG_EPARSE,
				"a listed pod has no metadata.namespace");
	rc = audit_judge_pod(pod, sa_map_get(a->sas, ns, sa_name), &a->policy,
			     &v, a->d);
	if (rc == 0 && audit_report_add_pod(a->report, ns, mutate_pod_name(pod),
					    sa_name, &v) != 0)
		rc = diag_set(a->d, DIAG_ENOMEM, "out of memory");
	return rc;
}

static int list_collection(struct audit_run *a, struct kube_client *client,
			   const char *resource, kube_list_item_fn each,
			   const struct json_keep *members)
{
	struct strbuf path;
	struct kube_list_request req = {
		.what = resource,
		.page_size = (long)a->cfg->page_size,
		.timeout_ms = PAGE_TIMEOUT_MS,
		.max_page_bytes = PAGE_MAX_BYTES,
		.item_members = members,
		.each = each,
		.on_page = progress,
		.arg = a,
	};
	int rc = 0;

	strbuf_init(&path, 512);
	if (a->cfg->namespace)
		rc = strbuf_adds(&path, "/api/v1/namespaces/") ||
		     kube_query_escape(&path, a->cfg->namespace) ||
		     strbuf_addf(&path, "/%s", resource);
	else
		rc = strbuf_addf(&path, "/api/v1/%s", resource);
	a->what = resource;
	a->next_progress = PROGRESS_EVERY;
	req.path = path.buf;
	rc = rc ? diag_set(a->d, DIAG_ENOMEM, "out of memory")
		: kube_list(client, &req, a->d);
	if (a->tty)
		fputc('\n', a->err);
	strbuf_free(&path);
	return rc;
}

static int write_out(void *arg, const char *text, size_t len)
{
	return fwrite(text, 1, len, arg) == len ? 0 : DIAG_EIO;
}

static int connect_api(const struct config *cfg, struct kube_client **ret,
		       struct diag *d)
{
	struct kube_config kc;
	int rc = kube_config_load(cfg->kubeconfig, process_getenv, &kc, d);

	if (rc != 0)
		return rc;
	rc = kube_client_new(&kc, ret, d);
	kube_config_free(&kc);
	return rc;
}

static int run(struct audit_run *a, FILE *out)
{
	struct kube_client *client = NULL;
	int rc = connect_api(a->cfg, &client, a->d);

	if (rc == 0)
		rc = list_collection(a, client, "serviceaccounts",
				     on_service_account, NULL);
	if (rc == 0)
		rc = list_collection(a, client, "pods", on_pod,
				     mutate_pod_members);
	kube_client_free(client);
	if (rc == 0)
		rc = audit_report_render(a->report,
					 strcmp(a->cfg->output, "json") == 0
						 ? AUDIT_JSON
						 : AUDIT_TABLE,
					 write_out, out);
	if (rc == DIAG_EIO)
		diag_set(a->d, rc, "cannot write the report");
	return rc;
}

int cli_audit(const struct config *cfg, FILE *out, FILE *err)
{
	struct profile_set *set = NULL;
	struct identity_map *map = NULL;
	struct diag d;
	struct audit_run a = { .cfg = cfg, .err = err, .d = &d };
	int status = CLI_BAD_INPUT;

	diag_clear(&d);
	a.tty = isatty(fileno(err));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(err,
			"pod-identity-webhook: cannot initialise libcurl\n");
		return CLI_BAD_INPUT;
	}
	if (profile_dir_load_checked(cfg->profiles_dir, cfg->settings, &set,
				     &d) != 0 ||
	    (cfg->identity_map &&
	     identity_file_load(cfg->identity_map, set, &map, &d) != 0))
		goto fail;
	a.policy.profiles = set;
	a.policy.settings = cfg->settings;
	a.policy.identities = map;
	if (sa_map_new(1024, &a.sas) != 0 || audit_report_new(&a.report) != 0) {
		diag_set(&d, DIAG_ENOMEM, "out of memory");
		goto fail;
	}
	if (run(&a, out) != 0)
		goto fail;
	status = audit_report_failed(a.report) ? CLI_DENIED : CLI_ADMITTED;
	goto out;
fail:
	cli_report(err, &d);
out:
	audit_report_free(a.report);
	sa_map_free(a.sas);
	identity_map_free(map);
	profile_set_free(set);
	curl_global_cleanup();
	return status;
}
