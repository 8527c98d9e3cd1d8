/*
 * cli: `mutate` and `check-profiles`. Every error names the file and the
 * problem in one line and exits 2; nothing here is trusted more than a request
 * body would be.
 */
#include "cli.h"

#include <string.h>

#include "admission.h"
#include "bounds.h"
#include "fileio.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile_dir.h"
#include "profile_set.h"
#include "service_account.h"
#include "settings.h"
#include "webhook.h"

int cli_report(FILE *err, const struct diag *d)
{
	char line[sizeof(d->where) + sizeof(d->text) + 32];

	diag_format(d, line, sizeof(line));
	fprintf(err, "pod-identity-webhook: %s\n", line);
	return CLI_BAD_INPUT;
}

/* Reads a JSON file into a tree; errors say which file. */
static int read_json_file(const char *path, cJSON **ret, struct diag *d)
{
	char *text = NULL;
	size_t len = 0;
	int rc = file_read(path, BOUND_INPUT_FILE_BYTES, &text, &len, d);

	if (rc == 0) {
		rc = json_parse(text, len, ret, d);
		diag_locate(d, strcmp(path, "-") ? path : "standard input", 0);
	}
	mem_free(text);
	return rc;
}

/* A Pod, an AdmissionRequest or an AdmissionReview, as a request. */
static int read_request(const struct config *cfg, struct admission_request *req,
			struct diag *d)
{
	cJSON *root = NULL;
	const char *kind;
	int rc = read_json_file(cfg->pod_file, &root, d);

	if (rc != 0)
		return rc;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return diag_set_at(
			d, DIAG_EPARSE, cfg->pod_file, 0,
			"expected a JSON object: a Pod, AdmissionRequest or "
			"AdmissionReview");
	}
	kind = json_string(root, "kind");
	if ((kind == NULL || strcmp(kind, "Pod") == 0) &&
	    cJSON_GetObjectItem(root, "uid") == NULL)
		rc = admission_from_pod(root, cfg->namespace, req, d);
	else if (kind && strcmp(kind, "AdmissionReview") != 0)
		rc = diag_set(d, DIAG_EPARSE,
			      "kind is '%.64s', not Pod or AdmissionReview",
			      kind);
	else
		rc = admission_from_json(root, req, d);
	if (rc != 0) {
		cJSON_Delete(root);
		diag_locate(d, cfg->pod_file, 0);
		return rc;
	}
	if (cfg->namespace)
		req->namespace = cfg->namespace;
	return 0;
}

static int read_service_account(const struct config *cfg, const char *namespace,
				struct service_account **ret, struct diag *d)
{
	cJSON *root = NULL;
	int rc;

	*ret = NULL;
	if (cfg->sa_file == NULL)
		return 0;
	rc = read_json_file(cfg->sa_file, &root, d);
	if (rc == 0)
		rc = sa_from_json(root, namespace, NULL, NULL, ret, d);
	diag_locate(d, cfg->sa_file, 0);
	cJSON_Delete(root);
	return rc;
}

static int print_pod(FILE *out, const cJSON *pod, struct patch *patch,
		     struct diag *d)
{
	cJSON *copy = cJSON_Duplicate(pod, true);
	const char *text;
	char *printed = NULL;
	size_t len;
	int rc;

	if (copy == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	text = patch_text(patch, &len);
	rc = text ? patch_apply(copy, text, len, d)
		  : diag_set(d, DIAG_ENOMEM, "out of memory");
	if (rc == 0 && (printed = cJSON_Print(copy)) == NULL)
		rc = diag_set(d, DIAG_ENOMEM, "out of memory");
	if (rc == 0)
		fprintf(out, "%s\n", printed);
	mem_free(printed);
	cJSON_Delete(copy);
	return rc;
}

static int print_review(FILE *out, const struct admission_request *req,
			struct mutation *m, struct diag *d)
{
	struct strbuf sb;
	int rc;

	strbuf_init(&sb, BOUND_PATCH_BYTES * 2);
	rc = webhook_encode_review(req, m, &sb);
	if (rc == 0)
		fprintf(out, "%s\n", sb.buf);
	else
		diag_set(d, rc, "cannot encode the response");
	strbuf_free(&sb);
	return rc;
}

static int print_output(const struct config *cfg, FILE *out,
			const struct admission_request *req, struct mutation *m,
			struct diag *d)
{
	size_t len;
	const char *text;

	if (strcmp(cfg->output, "review") == 0)
		return print_review(out, req, m, d);
	if (strcmp(cfg->output, "pod") == 0)
		return m->allowed ? print_pod(out, req->object, &m->patch, d)
				  : 0;
	text = patch_text(&m->patch, &len);
	if (text == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	fprintf(out, "%.*s\n", (int)len, text);
	return 0;
}

static void print_decision(FILE *err, const struct mutation *m)
{
	for (size_t i = 0; i < m->n_warnings; i++)
		fprintf(err, "warning: %s\n", m->warnings[i]);
	if (!m->allowed) {
		fprintf(err, "decision: denied: %s\n", strbuf_str(&m->message));
		return;
	}
	fprintf(err, "decision: allowed (%s", mutate_outcome_name(m->outcome));
	for (size_t i = 0; i < m->n_applied; i++)
		fprintf(err, "%s%s", i ? "," : "; profiles: ", m->applied[i]);
	if (m->skip_reason[0])
		fprintf(err, "; skipped %s", m->skip_reason);
	fprintf(err, ")\n");
}

/* Notes a ServiceAccount file that is not the one the pod names. */
static void check_sa_identity(FILE *err, const struct service_account *sa,
			      const cJSON *pod, const char *namespace)
{
	const char *want = mutate_service_account_name(pod);

	if (strcmp(sa->name, want) != 0 ||
	    (namespace && strcmp(sa->namespace, namespace)))
		fprintf(err,
			"note: the pod runs as ServiceAccount '%s' but the file is '%s/%s'; "
			"using the file\n",
			want, sa->namespace, sa->name);
}

static int decide(const struct config *cfg, const struct profile_set *set,
		  const struct admission_request *req,
		  const struct service_account *sa, struct mutation *m,
		  FILE *err, struct diag *d)
{
	struct mutate_input in = { .pod = req->object,
				   .namespace = req->namespace,
				   .sa = sa };

	if (!admission_is_pod_create(req)) {
		m->outcome = MUTATE_NOT_POD_CREATE;
		return 0;
	}
	if (sa)
		check_sa_identity(err, sa, req->object, req->namespace);
	return mutate_pod(&in, set, cfg->settings, m, d);
}

int cli_mutate(const struct config *cfg, FILE *out, FILE *err)
{
	struct admission_request req = { 0 };
	struct profile_set *set = NULL;
	struct service_account *sa = NULL;
	struct mutation m;
	struct diag d;
	int status = CLI_BAD_INPUT;

	diag_clear(&d);
	mutation_init(&m);
	if (cfg->pod_file == NULL) {
		fprintf(err,
			"pod-identity-webhook: mutate needs --pod FILE (see mutate --help)\n");
		goto out;
	}
	if (profile_dir_load_checked(cfg->profiles_dir, cfg->settings, &set,
				     &d) != 0 ||
	    read_request(cfg, &req, &d) != 0 ||
	    read_service_account(cfg, req.namespace ? req.namespace : "default",
				 &sa, &d) != 0 ||
	    decide(cfg, set, &req, sa, &m, err, &d) != 0 ||
	    print_output(cfg, out, &req, &m, &d) != 0) {
		cli_report(err, &d);
		goto out;
	}
	print_decision(err, &m);
	status = m.allowed ? CLI_ADMITTED : CLI_DENIED;
out:
	mutation_free(&m);
	sa_free(sa);
	admission_request_free(&req);
	profile_set_free(set);
	return status;
}

/* ---- check-profiles ---- */

static void print_chain(FILE *out, const struct profile_chain *chain)
{
	for (size_t i = 0; i < chain->n; i++)
		fprintf(out, "%s%s%s%s", i ? ", " : "",
			profile_source_name(chain->items[i].kind),
			chain->items[i].arg ? ":" : "",
			chain->items[i].arg ? chain->items[i].arg : "");
}

static void print_env(FILE *out, const struct profile_env *e)
{
	fprintf(out, "    env %-36s ", e->name);
	if (e->value)
		fprintf(out, "= %s", e->value);
	else
		print_chain(out, &e->from);
	if (e->default_value)
		fprintf(out, " (default %s)", e->default_value);
	if (e->when.n) {
		fprintf(out, " when ");
		print_chain(out, &e->when);
	}
	if (e->extract)
		fprintf(out, " extract %s", e->extract);
	if (e->group)
		fprintf(out, " (group %s)", e->group);
	fputc('\n', out);
}

static void print_profile(FILE *out, const struct profile *p,
			  const struct settings *st)
{
	fprintf(out, "%s (%s)%s%s\n", p->name, p->source,
		p->description ? ": " : "",
		p->description ? p->description : "");
	if (p->trigger_annotation)
		fprintf(out,
			"    trigger ServiceAccount annotation %s (%s%s%s)%s%s\n",
			p->trigger_annotation,
			validate_format_name(p->trigger_format),
			p->trigger_pattern ? ", pattern " : "",
			p->trigger_pattern ? p->trigger_pattern : "",
			p->trigger_pod_label ? ", with pod label " : "",
			p->trigger_pod_label ? p->trigger_pod_label : "");
	else
		fprintf(out, "    trigger pod label %s\n",
			p->trigger_pod_label);
	for (size_t i = 0; i < p->n_required; i++)
		fprintf(out,
			"    requires ServiceAccount annotation %s (%s%s%s)\n",
			p->required[i].key,
			validate_format_name(p->required[i].check.format),
			p->required[i].check.pattern ? ", pattern " : "",
			p->required[i].check.pattern
				? p->required[i].check.pattern
				: "");
	fprintf(out, "    token audience %s, %lld s (min %lld, max %lld)\n",
		p->audience, (long long)p->expiration,
		(long long)p->expiration_min, (long long)p->expiration_max);
	fprintf(out, "    volume %s at %s/%s", p->volume_name, p->mount_path,
		p->token_file);
	if (p->default_mode >= 0)
		fprintf(out, ", mode %04o", p->default_mode);
	fputc('\n', out);
	for (size_t i = 0; i < p->n_files; i++)
		fprintf(out,
			"    file %s/%s from pod annotation %s (volume %s)\n",
			p->files[i].mount_path, p->files[i].name,
			p->files[i].annotation, p->files[i].volume_name);
	for (size_t i = 0; i < p->n_env; i++)
		print_env(out, &p->env[i]);
	for (size_t i = 0; i < p->n_settings; i++) {
		const char *v =
			profile_setting_value(p, st, p->settings[i].name);

		fprintf(out, "    setting %s = %s", p->settings[i].name,
			v ? v : "(unset)");
		if (p->settings[i].flag)
			fprintf(out, " (--%s)", p->settings[i].flag);
		if (p->settings[i].env)
			fprintf(out, " [env %s]", p->settings[i].env);
		fputc('\n', out);
	}
}

int cli_check_profiles(const struct config *cfg, FILE *out, FILE *err)
{
	struct profile_set *set = NULL;
	struct strbuf shared;
	struct diag d;

	diag_clear(&d);
	if (profile_dir_load_checked(cfg->profiles_dir, cfg->settings, &set,
				     &d) != 0) {
		cli_report(err, &d);
		return CLI_DENIED;
	}
	for (size_t i = 0; i < profile_set_count(set); i++)
		print_profile(out, profile_set_get(set, i), cfg->settings);
	strbuf_init(&shared, BOUND_MESSAGE_BYTES * 4);
	if (profile_set_describe_shared_env(set, &shared) == 0 && shared.len)
		fputs(shared.buf, out);
	strbuf_free(&shared);
	fprintf(out, "%zu profile(s) OK\n", profile_set_count(set));
	profile_set_free(set);
	return CLI_ADMITTED;
}
