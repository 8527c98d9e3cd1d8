/*
 * cli: `mutate` and `check-profiles`. Every error names the file and the
 * problem in one line and exits 2; nothing here is trusted more than a request
 * body would be.
 */
#include "cli.h"

#include <string.h>

#include "bounds.h"
#include "fileio.h"
#include "identity_file.h"
#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile_dir.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"
#include "settings.h"

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

/* A Pod, an AdmissionRequest or an AdmissionReview, as a review. */
static int read_review(const struct config *cfg, struct review **ret,
		       struct diag *d)
{
	cJSON *root = NULL;
	int rc = read_json_file(cfg->pod_file, &root, d);

	if (rc != 0)
		return rc;
	rc = review_from_document(root, cfg->namespace, ret, d);
	if (rc != 0) {
		cJSON_Delete(root);
		diag_locate(d, cfg->pod_file, 0);
	}
	return rc;
}

/* A Pod of the wrong shape is bad input here (the server admits it with a
 * warning, as not-understood): the file and the reason, exit 2. */
static int check_shape(const struct config *cfg, const struct review *r,
		       struct diag *d)
{
	int rc = r->pod_create ? mutate_check_pod(r->req.object, d) : 0;

	if (rc != 0)
		diag_locate(d, cfg->pod_file, 0);
	return rc;
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

static int print_review(FILE *out, struct review *r, struct diag *d)
{
	struct strbuf sb;
	int rc;

	strbuf_init(&sb, BOUND_PATCH_BYTES * 2);
	rc = review_encode(r, &sb);
	if (rc == 0)
		fprintf(out, "%s\n", sb.buf);
	else
		diag_set(d, rc, "cannot encode the response");
	strbuf_free(&sb);
	return rc;
}

static int print_output(const struct config *cfg, FILE *out, struct review *r,
			struct diag *d)
{
	struct mutation *m = &r->m;
	size_t len;
	const char *text;

	if (strcmp(cfg->output, "review") == 0)
		return print_review(out, r, d);
	if (strcmp(cfg->output, "pod") == 0)
		return m->allowed ? print_pod(out, r->req.object, &m->patch, d)
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
		  const struct identity_map *map, struct review *r,
		  const struct service_account *sa, FILE *err, struct diag *d)
{
	struct review_policy policy = { .profiles = set,
					.settings = cfg->settings,
					.identities = map };

	if (r->pod_create && sa)
		check_sa_identity(err, sa, r->req.object, r->req.namespace);
	return review_decide(r, &policy, sa, d);
}

int cli_mutate(const struct config *cfg, FILE *out, FILE *err)
{
	struct review *r = NULL;
	struct profile_set *set = NULL;
	struct identity_map *map = NULL;
	struct service_account *sa = NULL;
	struct diag d;
	int status = CLI_BAD_INPUT;

	diag_clear(&d);
	if (cfg->pod_file == NULL) {
		fprintf(err,
			"pod-identity-webhook: mutate needs --pod FILE (see mutate --help)\n");
		goto out;
	}
	if (profile_dir_load_checked(cfg->profiles_dir, cfg->settings, &set,
				     &d) != 0 ||
	    (cfg->identity_map &&
	     identity_file_load(cfg->identity_map, set, &map, &d) != 0) ||
	    read_review(cfg, &r, &d) != 0 || check_shape(cfg, r, &d) != 0 ||
	    read_service_account(cfg, r->namespace, &sa, &d) != 0 ||
	    decide(cfg, set, map, r, sa, err, &d) != 0 ||
	    print_output(cfg, out, r, &d) != 0) {
		cli_report(err, &d);
		goto out;
	}
	print_decision(err, &r->m);
	status = r->m.allowed ? CLI_ADMITTED : CLI_DENIED;
out:
	sa_free(sa);
	review_free(r);
	identity_map_free(map);
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
