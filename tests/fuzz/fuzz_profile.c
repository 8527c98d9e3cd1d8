/*
 * Fuzz target: the strict INI profile loader. A profile that loads must also join a
 * set and pass the settings check without crashing; a refusal must carry a line.
 * It is then applied to a pod: every annotation it reads is set on the
 * ServiceAccount to a value that passes its format and, where the format
 * allows, is full of what templates and JSON must survive (quotes,
 * backslashes, '$', braces), so its templates, extractions and generated files
 * are rendered under the sanitizers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "profile.h"
#include "profile_set.h"
#include "service_account.h"
#include "settings.h"

#include "fuzz.h"

#define HOSTILE "a@b.iam.gserviceaccount.com\"\\${x}$$\u00e9}"

/*
 * A value that passes the format (so planning and rendering are reached), with
 * what templates and JSON must survive wherever the format allows it.
 */
static const char *value_for(enum value_format format)
{
	switch (format) {
	case FORMAT_EMAIL:
		return "a.b+c@p-1.iam.gserviceaccount.com";
	case FORMAT_ARN:
		return "arn:aws:iam::123456789012:role/r";
	case FORMAT_UUID:
		return "0bd5b8a4-3e4c-4c1c-8f4f-2f4d1b2c3d4e";
	case FORMAT_HTTPS_URL:
		return "https://h.example/p?q=\"${x}\"";
	case FORMAT_INTEGER:
		return "3600";
	case FORMAT_BOOLEAN:
		return "true";
	case FORMAT_REGION:
		return "eu-1";
	default:
		return HOSTILE;
	}
}

static void add_key(struct sa_annotation *a, size_t *n, const char *key,
		    enum value_format format)
{
	if (key == NULL || *n == 16)
		return;
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(a[i].key, key) == 0)
			return;
	}
	a[*n].key = key;
	a[*n].value = value_for(format);
	(*n)++;
}

/* The trigger, the required annotations and the first template sources. */
static void collect_keys(const struct profile *p, struct sa_annotation *a,
			 size_t *n)
{
	add_key(a, n, p->trigger_annotation, p->trigger_format);
	for (size_t i = 0; i < p->n_required; i++)
		add_key(a, n, p->required[i].key, p->required[i].check.format);
	for (size_t i = 0; i < p->n_env; i++) {
		for (size_t k = 0; k < p->env[i].from.n; k++) {
			if (p->env[i].from.items[k].kind ==
			    SOURCE_SA_ANNOTATION)
				add_key(a, n, p->env[i].from.items[k].arg,
					p->env[i].format);
		}
	}
	for (size_t f = 0; f < p->n_files; f++) {
		for (size_t k = 0; k < p->files[f].n_fields; k++) {
			const struct profile_template *t =
				&p->files[f].fields[k].value;

			for (size_t i = 0; i < t->n; i++) {
				if (t->parts[i].text == NULL &&
				    t->parts[i].source.kind ==
					    SOURCE_SA_ANNOTATION)
					add_key(a, n, t->parts[i].source.arg,
						FORMAT_ANY);
			}
		}
	}
}

static void apply(const struct profile_set *set, const struct profile *p,
		  const struct settings *st)
{
	struct sa_annotation a[16];
	struct service_account *sa = NULL;
	struct mutation m;
	struct diag d;
	cJSON *pod = cJSON_CreateObject(), *md, *labels, *spec, *ctrs, *c;
	size_t n = 0;

	collect_keys(p, a, &n);
	if (pod == NULL || sa_new("ns", "sa", a, n, &sa) != 0)
		goto out;
	md = cJSON_AddObjectToObject(pod, "metadata");
	labels = md ? cJSON_AddObjectToObject(md, "labels") : NULL;
	spec = cJSON_AddObjectToObject(pod, "spec");
	ctrs = spec ? cJSON_AddArrayToObject(spec, "containers") : NULL;
	c = cJSON_CreateObject();
	if (labels == NULL || ctrs == NULL || c == NULL ||
	    !cJSON_AddItemToArray(ctrs, c) ||
	    cJSON_AddStringToObject(c, "name", "app") == NULL)
		goto out;
	if (p->trigger_pod_label)
		cJSON_AddStringToObject(labels, p->trigger_pod_label, "true");
	mutation_init(&m);
	diag_clear(&d);
	mutate_pod(&(struct mutate_input){ .pod = pod,
					   .namespace = "ns",
					   .sa = sa },
		   set, st, &m, &d);
	mutation_free(&m);
out:
	sa_free(sa);
	cJSON_Delete(pod);
}

static void fuzz_fixture(void)
{
	/* none: each input is read on its own */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct profile_set *set = NULL;
	struct settings *st = NULL;
	struct profile *p = NULL;
	struct diag d;

	diag_clear(&d);
	if (profile_parse((const char *)data, size, "fuzz.ini", &p, &d) != 0) {
		if (d.code == DIAG_ECONFIG && d.where[0] == '\0')
			abort(); /* every refusal names its source */
		return 0;
	}
	if (profile_set_new_builtin(&set, NULL) != 0 || settings_new(&st) != 0)
		abort();
	if (profile_set_add(set, p, NULL) != 0)
		profile_free(p);
	else if (profile_set_check_settings(set, st, NULL) == 0)
		apply(set, p, st);
	profile_set_reads_sa_annotation(set, "eks.amazonaws.com/role-arn");
	settings_free(st);
	profile_set_free(set);
	return 0;
}
