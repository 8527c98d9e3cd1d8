/*
 * profile_set: ordered profiles with the cross-profile rules (unique names,
 * volumes and mount paths; one format per setting name) and the deployment
 * settings check.
 */
#include "profile_set.h"

#include <string.h>

#include "builtin_profiles.h"
#include "mem.h"
#include "settings.h"

struct profile_set {
	struct profile *items[BOUND_PROFILES];
	size_t n;
};

int profile_set_new(struct profile_set **ret_set)
{
	*ret_set = mem_calloc(1, sizeof(struct profile_set));
	return *ret_set ? 0 : DIAG_ENOMEM;
}

int profile_set_add_texts(struct profile_set *set,
			  const struct builtin_profile *texts, size_t n,
			  const char *source, struct diag *d)
{
	for (size_t i = 0; i < n; i++) {
		struct profile *p = NULL;
		int rc = profile_parse(texts[i].text, texts[i].len, source, &p,
				       d);

		if (rc == 0 && (rc = profile_set_add(set, p, d)) != 0)
			profile_free(p);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int profile_set_new_builtin(struct profile_set **ret_set, struct diag *d)
{
	struct profile_set *set = NULL;
	int rc;

	*ret_set = NULL;
	if (profile_set_new(&set) != 0)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	rc = profile_set_add_texts(set, builtin_profiles,
				   builtin_profiles_count, "built-in", d);
	if (rc != 0) {
		profile_set_free(set);
		return rc;
	}
	*ret_set = set;
	return 0;
}

/* The i-th volume of p: 0 the token's, then one per generated file. */
static size_t n_volumes(const struct profile *p)
{
	return 1 + p->n_files;
}

static const char *volume_name(const struct profile *p, size_t i)
{
	return i == 0 ? p->volume_name : p->files[i - 1].volume_name;
}

static const char *volume_mount(const struct profile *p, size_t i)
{
	return i == 0 ? p->mount_path : p->files[i - 1].mount_path;
}

/*
 * Two profiles' volumes never share a name, and their mount paths are never
 * equal or nested: the API server refuses a pod with two mounts at one path,
 * and a mount inside another's directory hides or is hidden by it.
 */
static int check_volumes(const struct profile *p, const struct profile *q,
			 struct diag *d)
{
	for (size_t i = 0; i < n_volumes(p); i++) {
		for (size_t k = 0; k < n_volumes(q); k++) {
			if (strcmp(volume_name(p, i), volume_name(q, k)) == 0)
				return diag_set_at(
					d, DIAG_ECONFIG, p->source, 0,
					"volume name '%s' is also used by "
					"profile '%s' (%s)",
					volume_name(p, i), q->name, q->source);
			if (strcmp(volume_mount(p, i), volume_mount(q, k)) == 0)
				return diag_set_at(
					d, DIAG_ECONFIG, p->source, 0,
					"mount path '%s' is also used by "
					"profile '%s' (%s)",
					volume_mount(p, i), q->name, q->source);
			if (profile_paths_overlap(volume_mount(p, i),
						  volume_mount(q, k)))
				return diag_set_at(
					d, DIAG_ECONFIG, p->source, 0,
					"mount path '%s' and profile '%s''s "
					"mount path '%s' (%s) are nested: one "
					"would hide the other",
					volume_mount(p, i), q->name,
					volume_mount(q, k), q->source);
		}
	}
	return 0;
}

static int check_conflicts(const struct profile_set *set,
			   const struct profile *p, struct diag *d)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct profile *q = set->items[i];

		if (strcmp(q->name, p->name) == 0)
			continue; /* p replaces q */
		if (check_volumes(p, q, d) != 0)
			return DIAG_ECONFIG;
		for (size_t k = 0; k < p->n_settings; k++) {
			const struct profile_setting *mine = &p->settings[k];
			const struct profile_setting *theirs =
				profile_find_setting(q, mine->name);

			if (theirs && theirs->format != mine->format)
				return diag_set_at(
					d, DIAG_ECONFIG, p->source, mine->line,
					"setting '%s' has format %s here but %s in "
					"profile '%s' (%s)",
					mine->name,
					validate_format_name(mine->format),
					validate_format_name(theirs->format),
					q->name, q->source);
		}
	}
	return 0;
}

int profile_set_add(struct profile_set *set, struct profile *p, struct diag *d)
{
	int rc = check_conflicts(set, p, d);

	if (rc != 0)
		return rc;
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->items[i]->name, p->name) == 0) {
			profile_free(set->items[i]);
			set->items[i] = p;
			return 0;
		}
	}
	if (set->n == BOUND_PROFILES)
		return diag_set_at(d, DIAG_ECONFIG, p->source, 0,
				   "more than %d profiles", BOUND_PROFILES);
	set->items[set->n++] = p;
	return 0;
}

size_t profile_set_count(const struct profile_set *set)
{
	return set->n;
}

const struct profile *profile_set_get(const struct profile_set *set, size_t i)
{
	return set->items[i];
}

const struct profile *profile_set_find(const struct profile_set *set,
				       const char *name)
{
	for (size_t i = 0; i < set->n; i++) {
		if (strcmp(set->items[i]->name, name) == 0)
			return set->items[i];
	}
	return NULL;
}

void profile_set_free(struct profile_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		profile_free(set->items[i]);
	mem_free(set);
}

int profile_set_drop_disabled(struct profile_set *set,
			      const struct settings *settings, struct diag *d)
{
	size_t kept = 0;

	for (size_t i = 0; i < settings_disabled_count(settings); i++) {
		const char *name = settings_disabled_name(settings, i);

		/* A name that matches nothing is a typo that would leave a
		 * second webhook's cloud switched on: refused. */
		if (profile_set_find(set, name) == NULL)
			return diag_set(d, DIAG_ECONFIG,
					"--disable-profile %s: no profile of "
					"that name is loaded",
					name);
	}
	for (size_t i = 0; i < set->n; i++) {
		if (settings_profile_disabled(settings, set->items[i]->name))
			profile_free(set->items[i]);
		else
			set->items[kept++] = set->items[i];
	}
	set->n = kept;
	return 0;
}

/* Checks one profile's effective setting values against their formats. */
static int check_profile_settings(const struct profile *p,
				  const struct settings *st, struct diag *d)
{
	for (size_t k = 0; k < p->n_settings; k++) {
		const struct profile_setting *decl = &p->settings[k];
		const char *value = profile_setting_value(p, st, decl->name);

		if (value && !validate_value(decl->format, value))
			return diag_set(
				d, DIAG_ECONFIG,
				"setting '%s': '%.80s' is not %s", decl->name,
				value,
				validate_format_expectation(decl->format));
		if (value && decl->re &&
		    !validate_pattern_match(decl->re, value))
			return diag_set(d, DIAG_ECONFIG,
					"setting '%s': '%.80s' does not match "
					"the pattern %s",
					decl->name, value, decl->pattern);
	}
	for (size_t e = 0; e < p->n_env; e++) {
		const struct profile_env *env = &p->env[e];

		for (size_t i = 0; i < env->from.n; i++) {
			const char *value;

			if (env->from.items[i].kind != SOURCE_SETTING)
				continue;
			value = profile_setting_value(p, st,
						      env->from.items[i].arg);
			if (value && (!validate_value(env->format, value) ||
				      (env->re && !validate_pattern_match(
							  env->re, value))))
				return diag_set(
					d, DIAG_ECONFIG,
					"setting '%s': '%.80s' is not %s (as %s needs)",
					env->from.items[i].arg, value,
					validate_format_expectation(
						env->format),
					env->name);
		}
	}
	return 0;
}

static bool setting_declared(const struct profile_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++) {
		if (profile_find_setting(set->items[i], name))
			return true;
	}
	return false;
}

/* The declaration whose `flag` (want_env false) or `env` alias is name. */
static const struct profile_setting *find_alias(const struct profile_set *set,
						const char *name, bool want_env)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct profile *p = set->items[i];

		for (size_t k = 0; k < p->n_settings; k++) {
			const char *alias = want_env ? p->settings[k].env
						     : p->settings[k].flag;

			if (alias && strcmp(alias, name) == 0)
				return &p->settings[k];
		}
	}
	return NULL;
}

/* Two declarations giving one alias to different settings are refused. */
static int check_alias_owners(const struct profile_set *set, struct diag *d)
{
	for (size_t i = 0; i < set->n; i++) {
		const struct profile *p = set->items[i];

		for (size_t k = 0; k < p->n_settings; k++) {
			const struct profile_setting *s = &p->settings[k];
			const char *aliases[2] = { s->flag, s->env };

			for (int a = 0; a < 2; a++) {
				const struct profile_setting *owner =
					aliases[a] ? find_alias(set, aliases[a],
								a == 1)
						   : s;

				if (strcmp(owner->name, s->name) != 0)
					return diag_set(
						d, DIAG_ECONFIG,
						"profile %s: settings '%s' and "
						"'%s' both take the alias '%s'",
						p->name, owner->name, s->name,
						aliases[a]);
			}
		}
	}
	return 0;
}

int profile_set_resolve_aliases(const struct profile_set *set,
				struct settings *settings, struct diag *d)
{
	int rc = check_alias_owners(set, d);

	for (size_t i = 0; rc == 0 && i < settings_flag_count(settings); i++) {
		const char *flag = settings_flag_name(settings, i);
		const struct profile_setting *s = find_alias(set, flag, false);

		if (s == NULL)
			return diag_set(
				d, DIAG_EINVAL,
				"unknown option '--%s': no option of that name, "
				"and no loaded profile declares it as a "
				"setting's flag (see --help and check-profiles)",
				flag);
		rc = settings_set(settings, s->name,
				  settings_flag_value(settings, i), d);
	}
	/* An env alias fills a setting no flag and no PIW_SETTINGS item set. */
	for (size_t i = 0; rc == 0 && i < set->n; i++) {
		const struct profile *p = set->items[i];

		for (size_t k = 0; rc == 0 && k < p->n_settings; k++) {
			const struct profile_setting *s = &p->settings[k];
			const char *v =
				s->env ? settings_env(settings, s->env) : NULL;

			if (v && v[0] &&
			    settings_get(settings, s->name) == NULL)
				rc = settings_set(settings, s->name, v, d);
			if (rc != 0)
				diag_locate(d, s->env, 0);
		}
	}
	return rc;
}

int profile_set_check_settings(const struct profile_set *set,
			       const struct settings *settings, struct diag *d)
{
	for (size_t i = 0; i < settings_count(settings); i++) {
		const char *name = settings_name(settings, i);

		if (!setting_declared(set, name))
			return diag_set(
				d, DIAG_ECONFIG,
				"unknown setting '%s': no loaded profile declares it "
				"(see check-profiles)",
				name);
	}
	for (size_t i = 0; i < set->n; i++) {
		int rc = check_profile_settings(set->items[i], settings, d);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static bool chain_reads(const struct profile_chain *chain, const char *key)
{
	for (size_t i = 0; i < chain->n; i++) {
		if (chain->items[i].kind == SOURCE_SA_ANNOTATION &&
		    strcmp(chain->items[i].arg, key) == 0)
			return true;
	}
	return false;
}

static bool eq(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static bool template_reads(const struct profile_template *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->parts[i].text == NULL &&
		    t->parts[i].source.kind == SOURCE_SA_ANNOTATION &&
		    strcmp(t->parts[i].source.arg, key) == 0)
			return true;
	}
	return false;
}

static bool files_read(const struct profile *p, const char *key)
{
	for (size_t i = 0; i < p->n_files; i++) {
		if (template_reads(&p->files[i].text, key))
			return true;
		for (size_t k = 0; k < p->files[i].n_fields; k++) {
			if (template_reads(&p->files[i].fields[k].value, key))
				return true;
		}
	}
	return false;
}

static bool profile_reads(const struct profile *p, const char *key)
{
	if (eq(p->trigger_annotation, key) || eq(p->audience_annotation, key) ||
	    eq(p->expiration_annotation, key) || eq(p->file_annotation, key) ||
	    files_read(p, key))
		return true;
	for (size_t i = 0; i < p->n_required; i++) {
		if (strcmp(p->required[i].key, key) == 0)
			return true;
	}
	for (size_t i = 0; i < p->skip_sa_annotations.n; i++) {
		if (strcmp(p->skip_sa_annotations.items[i], key) == 0)
			return true;
	}
	for (size_t i = 0; i < p->n_env; i++) {
		if (chain_reads(&p->env[i].from, key) ||
		    chain_reads(&p->env[i].when, key))
			return true;
	}
	return false;
}

bool profile_set_reads_sa_annotation(const struct profile_set *set,
				     const char *key)
{
	for (size_t i = 0; i < set->n; i++) {
		if (profile_reads(set->items[i], key))
			return true;
	}
	return false;
}

/* Appends " NAME" for each variable p and q both declare; returns how many. */
static int shared_names(const struct profile *p, const struct profile *q,
			struct strbuf *out, size_t *n)
{
	int rc = 0;

	*n = 0;
	for (size_t i = 0; rc == 0 && i < p->n_env; i++) {
		for (size_t k = 0; k < q->n_env; k++) {
			if (strcmp(p->env[i].name, q->env[k].name) != 0)
				continue;
			rc = strbuf_addf(out, "%s%s", *n ? ", " : " ",
					 p->env[i].name);
			(*n)++;
			break;
		}
	}
	return rc;
}

int profile_set_describe_shared_env(const struct profile_set *set,
				    struct strbuf *out)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < set->n; i++) {
		for (size_t k = i + 1; rc == 0 && k < set->n; k++) {
			size_t before = out->len, n;

			rc = strbuf_addf(
				out, "shared variables: %s and %s both set",
				set->items[i]->name, set->items[k]->name);
			if (rc == 0)
				rc = shared_names(set->items[i], set->items[k],
						  out, &n);
			if (rc == 0 && n == 0)
				strbuf_truncate(out, before);
			else if (rc == 0)
				rc = strbuf_addf(
					out,
					" (a container gets one of them, %s "
					"first; include-containers splits "
					"them)\n",
					set->items[i]->name);
		}
	}
	return rc;
}
