/*
 * mutate: decides what a pod gets, profile by profile, in load order.
 *
 * The pod is read once into a view that has been checked for the shape we rely
 * on, so the rest of the file never meets a wrong JSON type: a pod we cannot
 * read is admitted unmutated with a warning. Each applying profile is first
 * planned (token, location, env values; every configuration error found here
 * denies) and checked against the pod (reserved names), and only then written
 * out as patch operations. Any denial discards the whole patch: a pod is
 * mutated by all its profiles or by none. Containers remember which profiles
 * they were given, so a later profile that shares a variable with an earlier
 * one stays out of that container as a whole (rule 1).
 */
#include "mutate.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "invariant.h"
#include "json.h"
#include "mem.h"
#include "profile.h"
#include "profile_set.h"
#include "service_account.h"
#include "settings.h"
#include "strutil.h"

#define CONTAINER_LIST_SEPARATORS ",;"
#define STS_SESSION_NAME_MAX	  64

/* ---- the pod, read once ---- */

struct container_ref {
	const cJSON *obj;
	const char *name;
	const cJSON *env;    /* array or NULL */
	const cJSON *mounts; /* array or NULL */
	bool init;
	char pointer[48]; /* "/spec/initContainers/12": its ops' path prefix */
	size_t pointer_len;
	bool has_env,
		has_mounts; /* the array exists, in the pod or by an earlier op */
	bool has_env_from; /* a non-empty envFrom: values we cannot see */
	bool selected, has_our_mount; /* for the profile being applied */
	unsigned file_mounts; /* bit i: has the mount of the profile's file i */
	uint32_t applied; /* bit k: the k-th applied profile was given here */
};

struct pod_view {
	const cJSON *metadata, *labels, *annotations, *volumes;
	const char *name, *namespace, *sa_name;
	bool windows;
	bool has_volumes, has_annotations, has_metadata;
	struct container_ref *containers;
	size_t n_containers;
	bool out_of_memory; /* why reading stopped, rather than a problem */
	char problem[200];
};

/* One profile's resolved values. */
struct env_value {
	const struct profile_env *spec;
	const char *value;
	/* {"name":..,"value":..} in ctx.rendered, once it was (json_len > 0) */
	size_t json_at, json_len;
};

/*
 * One profile's resolved values. plan_reset() zeroes what comes before env;
 * what follows is written before it is read, and the text buffers get their
 * first byte cleared: zeroing all of it (8 KB, three times per admission) was
 * a tenth of the patch's time.
 */
struct plan {
	const struct profile *p;
	const char *trigger;
	const char *audience;
	int64_t expiration;
	bool volume_exists;
	bool denied;
	bool file_volume_exists[BOUND_PROFILE_FILES];
	size_t n_owned; /* of owned, below */
	const char *file_content[BOUND_PROFILE_FILES];
	/* the mount's {"name":..,"mountPath":..,"readOnly":true} in
	 * ctx.rendered, for the volume and directory it was rendered for */
	const char *mount_volume, *mount_dir_of;
	size_t mount_at, mount_len;
	struct env_value env[BOUND_PROFILE_ENV];
	size_t n_env;
	/* freed by plan_release; one more for a composed trigger */
	char *owned[BOUND_PROFILE_ENV + BOUND_PROFILE_FILES + 1];
	char expiration_text[STR_I64_SIZE];
	char mount_dir[BOUND_PATH + 1];
	char token_file[BOUND_PATH + 1];
	char token_path[2 * BOUND_PATH + 2];
	char env_mount_dir[BOUND_PATH + 4]; /* Windows form on Windows pods */
	char env_token_path[2 * BOUND_PATH + 4];
	char sanitized[BOUND_PROFILE_ENV][STS_SESSION_NAME_MAX + 1];
};

/* An env var that an applied profile (its index in m->applied) claims. */
struct injected {
	const char *name;
	size_t applied;
};

struct ctx {
	const struct mutate_input *in;
	const struct profile_set *set;
	const struct settings *settings;
	struct mutation *m;
	struct pod_view v;
	struct plan *plan;
	struct strbuf path, value;
	struct strbuf rendered; /* the plan's values as JSON, once for all
				   containers (offsets in struct plan) */
	struct injected *injected;
	size_t n_injected;
	char *mount_dirs[BOUND_PROFILES]; /* where applied profiles mount (owned) */
	size_t n_mount_dirs;
	size_t n_matched, n_skipped;
	bool denied;
};

/* ---- results ---- */

void mutation_init(struct mutation *m)
{
	memset(m, 0, sizeof(*m));
	m->allowed = true;
	m->outcome = MUTATE_NO_MATCH;
	m->deny_reason = MUTATE_DENY_NONE;
	strbuf_init(&m->message, BOUND_MESSAGE_BYTES);
	patch_init(&m->patch);
}

void mutation_free(struct mutation *m)
{
	strbuf_free(&m->message);
	patch_free(&m->patch);
	for (size_t i = 0; i < m->n_warnings; i++)
		mem_free(m->warnings[i]);
	m->n_warnings = 0;
}

int mutation_warn(struct mutation *m, const char *fmt, ...)
{
	char text[BOUND_WARNING_BYTES];
	static const char more[] = "further warnings omitted";
	va_list ap;

	if (m->n_warnings > BOUND_WARNINGS)
		return 0;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	m->warnings[m->n_warnings] =
		mem_strdup(m->n_warnings == BOUND_WARNINGS ? more : text);
	if (m->warnings[m->n_warnings] == NULL)
		return DIAG_ENOMEM;
	m->n_warnings++;
	return 0;
}

const char *mutate_outcome_name(enum mutate_outcome outcome)
{
	static const char *const names[] = {
#define MUTATE_OUTCOME_NAME(id, name, skip) [id] = name,
		MUTATE_OUTCOMES(MUTATE_OUTCOME_NAME)
#undef MUTATE_OUTCOME_NAME
	};

	return names[outcome];
}

const char *mutate_deny_name(enum mutate_deny reason)
{
	static const char *const names[] = {
#define MUTATE_DENY_NAME(id, name) [id] = name,
		MUTATE_DENY_REASONS(MUTATE_DENY_NAME)
#undef MUTATE_DENY_NAME
	};

	return reason == MUTATE_DENY_NONE ? NULL : names[reason];
}

/*
 * Appends a denial sentence; the first ones are kept when the message is full.
 */
static int deny(struct ctx *c, enum mutate_deny reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int deny(struct ctx *c, enum mutate_deny reason, const char *fmt, ...)
{
	char text[600];
	struct strbuf *msg = &c->m->message;
	va_list ap;
	int rc = 0;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->denied = true;
	c->plan->denied = true;
	if (c->m->deny_reason == MUTATE_DENY_NONE)
		c->m->deny_reason = reason;
	/* Two checks of one value (a trigger that an env also reads) say it once. */
	if (msg->len > 0 && strstr(msg->buf, text) != NULL)
		return 0;
	if (msg->len > 0)
		rc = strbuf_adds(msg, "; ");
	if (rc == 0)
		rc = strbuf_adds(msg, text);
	return rc == DIAG_ELIMIT ? 0 : rc;
}

/* ---- reading the pod ---- */

static const struct json_keep env_var_members[] = {
	{ "name", NULL, false },
	{ "value", NULL, false },
	{ "valueFrom", NULL, false },
	{ NULL, NULL, false },
};
static const struct json_keep mount_members[] = {
	{ "name", NULL, false },
	{ "mountPath", NULL, false },
	{ NULL, NULL, false },
};
static const struct json_keep container_members[] = {
	{ "name", NULL, false },
	{ "env", env_var_members, true },
	{ "volumeMounts", mount_members, true },
	{ "envFrom", NULL, false },
	{ NULL, NULL, false },
};
static const struct json_keep volume_members[] = {
	{ "name", NULL, false },
	{ "projected", NULL, false },
	{ "downwardAPI", NULL, false },
	{ NULL, NULL, false },
};
static const struct json_keep spec_members[] = {
	{ "serviceAccountName", NULL, false },
	{ "nodeSelector", NULL, false },
	{ "os", NULL, false },
	{ "volumes", volume_members, true },
	{ "initContainers", container_members, true },
	{ "containers", container_members, true },
	{ NULL, NULL, false },
};
static const struct json_keep metadata_members[] = {
	{ "name", NULL, false },	{ "generateName", NULL, false },
	{ "namespace", NULL, false },	{ "labels", NULL, false },
	{ "annotations", NULL, false }, { NULL, NULL, false },
};
const struct json_keep mutate_pod_members[] = {
	{ "metadata", metadata_members, false },
	{ "spec", spec_members, false },
	{ NULL, NULL, false },
};

static const char *pod_string(const cJSON *obj, const char *key)
{
	const char *s = json_string(obj, key);

	return s ? s : "";
}

const char *mutate_pod_name(const cJSON *pod)
{
	const cJSON *metadata = NULL;
	const char *name;

	if (json_member(pod, "metadata", cJSON_Object, &metadata) != JSON_FOUND)
		return "";
	name = pod_string(metadata, "name");
	return name[0] ? name : pod_string(metadata, "generateName");
}

const char *mutate_service_account_name(const cJSON *pod)
{
	const cJSON *spec = NULL;
	const char *name;

	if (json_member(pod, "spec", cJSON_Object, &spec) != JSON_FOUND)
		return "default";
	name = pod_string(spec, "serviceAccountName");
	return name[0] ? name : "default";
}

static bool set_problem(struct pod_view *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool set_problem(struct pod_view *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->problem, sizeof(v->problem), fmt, ap);
	va_end(ap);
	return false;
}

/* obj[key] must be absent or an object whose values are all strings. */
static bool read_string_map(struct pod_view *v, const cJSON *obj,
			    const char *key, const char *where,
			    const cJSON **out)
{
	const cJSON *item;

	*out = NULL;
	switch (json_member(obj, key, cJSON_Object, out)) {
	case JSON_WRONG_TYPE:
		return set_problem(v, "%s%s is not an object", where, key);
	case JSON_MISSING:
		return true;
	default:
		break;
	}
	cJSON_ArrayForEach(item, *out) {
		if (!cJSON_IsString(item))
			return set_problem(v, "%s%s[%.60s] is not a string",
					   where, key, item->string);
	}
	return true;
}

/*
 * obj[key] must be absent or an array of objects, each with string members
 * `fields`.
 */
static bool read_object_array(struct pod_view *v, const cJSON *obj,
			      const char *key, const char *where,
			      const char *const *fields, const cJSON **out)
{
	const cJSON *item;
	size_t i = 0;

	*out = NULL;
	switch (json_member(obj, key, cJSON_Array, out)) {
	case JSON_WRONG_TYPE:
		return set_problem(v, "%s.%s is not an array", where, key);
	case JSON_MISSING:
		return true;
	default:
		break;
	}
	cJSON_ArrayForEach(item, *out) {
		if (!cJSON_IsObject(item))
			return set_problem(v, "%s.%s[%zu] is not an object",
					   where, key, i);
		for (const char *const *f = fields; *f; f++) {
			if (json_string(item, *f) == NULL)
				return set_problem(
					v,
					"%s.%s[%zu].%s is missing or not a string",
					where, key, i, *f);
		}
		i++;
	}
	return true;
}

/*
 * prefix, index in decimal and suffix, as "spec.containers[" 3 "]": the
 * container's name in problems, and its pointer ("/spec/containers/" 3 "").
 * Composed by hand (snprintf was ~1,000 instructions, for every container of
 * every admission). 48 bytes suffice: a prefix of at most 21 bytes, at most 20
 * digits, a suffix of at most one byte and the NUL. Returns the length.
 */
static size_t container_text(char out[48], const char *prefix, size_t index,
			     const char *suffix)
{
	size_t n = strlen(prefix);

	memcpy(out, prefix, n);
	n += str_from_i64(out + n, (long long)index);
	return n + str_copy(out + n, 48 - n, suffix, strlen(suffix));
}

static bool read_container(struct pod_view *v, const cJSON *obj, bool init,
			   size_t index)
{
	static const char *const name_only[] = { "name", NULL };
	static const char *const mount_fields[] = { "name", "mountPath", NULL };
	struct container_ref *ref = &v->containers[v->n_containers];
	char where[48];

	container_text(where,
		       init ? "spec.initContainers[" : "spec.containers[",
		       index, "]");
	if (!cJSON_IsObject(obj))
		return set_problem(v, "%s is not an object", where);
	ref->obj = obj;
	ref->name = json_string(obj, "name");
	ref->init = init;
	ref->pointer_len = container_text(ref->pointer,
					  init ? "/spec/initContainers/"
					       : "/spec/containers/",
					  index, "");
	if (ref->name == NULL || ref->name[0] == '\0')
		return set_problem(v, "%s.name is missing or not a string",
				   where);
	if (!read_object_array(v, obj, "env", where, name_only, &ref->env) ||
	    !read_object_array(v, obj, "volumeMounts", where, mount_fields,
			       &ref->mounts))
		return false;
	ref->has_env = ref->env != NULL;
	ref->has_mounts = ref->mounts != NULL;
	ref->has_env_from = cJSON_GetArraySize(json_get(obj, "envFrom")) > 0;
	v->n_containers++;
	return true;
}

static bool read_containers(struct pod_view *v, const cJSON *spec)
{
	const cJSON *init = NULL, *main = NULL, *item;
	size_t n, i;

	if (json_member(spec, "initContainers", cJSON_Array, &init) ==
	    JSON_WRONG_TYPE)
		return set_problem(v, "spec.initContainers is not an array");
	if (json_member(spec, "containers", cJSON_Array, &main) != JSON_FOUND)
		return set_problem(
			v, "spec.containers is missing or not an array");
	n = (size_t)cJSON_GetArraySize(main) +
	    (init ? (size_t)cJSON_GetArraySize(init) : 0);
	if (n > BOUND_CONTAINERS)
		return set_problem(v, "more than %d containers",
				   BOUND_CONTAINERS);
	v->containers = mem_calloc(n ? n : 1, sizeof(*v->containers));
	if (v->containers == NULL) {
		v->out_of_memory = true;
		return set_problem(v, "out of memory");
	}
	i = 0;
	cJSON_ArrayForEach(item, init) {
		if (!read_container(v, item, true, i++))
			return false;
	}
	i = 0;
	cJSON_ArrayForEach(item, main) {
		if (!read_container(v, item, false, i++))
			return false;
	}
	return true;
}

/*
 * A Windows pod: spec.os.name (the marker since Kubernetes 1.25) or the
 * nodeSelector the AWS webhook reads.
 */
static bool is_windows(const cJSON *spec, const cJSON *node_selector)
{
	const cJSON *os = NULL;
	const char *name, *label, *beta;

	json_member(spec, "os", cJSON_Object, &os);
	name = json_string(os, "name");
	label = json_string(node_selector, "kubernetes.io/os");
	beta = json_string(node_selector, "beta.kubernetes.io/os");
	return (name && strcmp(name, "windows") == 0) ||
	       (label && strcmp(label, "windows") == 0) ||
	       (beta && strcmp(beta, "windows") == 0);
}

static bool read_pod(struct ctx *c)
{
	static const char *const name_only[] = { "name", NULL };
	struct pod_view *v = &c->v;
	const cJSON *pod = c->in->pod, *spec = NULL, *selector = NULL;

	if (!cJSON_IsObject(pod))
		return set_problem(v, "the object is not a JSON object");
	if (json_member(pod, "metadata", cJSON_Object, &v->metadata) ==
	    JSON_WRONG_TYPE)
		return set_problem(v, "metadata is not an object");
	if (!read_string_map(v, v->metadata, "labels", "metadata.",
			     &v->labels) ||
	    !read_string_map(v, v->metadata, "annotations", "metadata.",
			     &v->annotations))
		return false;
	if (json_member(pod, "spec", cJSON_Object, &spec) != JSON_FOUND)
		return set_problem(v, "spec is missing or not an object");
	if (!read_string_map(v, spec, "nodeSelector", "spec.", &selector) ||
	    !read_object_array(v, spec, "volumes", "spec", name_only,
			       &v->volumes))
		return false;
	v->windows = is_windows(spec, selector);
	v->has_volumes = v->volumes != NULL;
	v->has_annotations = v->annotations != NULL;
	v->has_metadata = v->metadata != NULL;
	return read_containers(v, spec);
}

static void name_pod(struct ctx *c)
{
	const cJSON *metadata = NULL;
	const char *ns = c->in->namespace;

	c->v.name = mutate_pod_name(c->in->pod);
	c->v.sa_name = mutate_service_account_name(c->in->pod);
	if (ns == NULL || ns[0] == '\0') {
		json_member(c->in->pod, "metadata", cJSON_Object, &metadata);
		ns = pod_string(metadata, "namespace");
	}
	if (ns[0] == '\0' && c->in->sa)
		ns = c->in->sa->namespace;
	c->v.namespace = ns[0] ? ns : "default";
}

/* ---- sources of values ---- */

static const char *pod_annotation(const struct ctx *c, const char *key)
{
	return json_string(c->v.annotations, key);
}

static const char *pod_label(const struct ctx *c, const char *key)
{
	return json_string(c->v.labels, key);
}

/*
 * "ServiceAccount "ns/name" annotation "key"" and friends, for denial messages.
 */
static void describe_source(const struct ctx *c, const struct profile_source *s,
			    char *buf, size_t size)
{
	const struct plan *pl = c->plan;

	switch (s->kind) {
	case SOURCE_TRIGGER:
	case SOURCE_SA_ANNOTATION:
		snprintf(buf, size,
			 "ServiceAccount \"%s/%s\" annotation \"%s\"",
			 c->in->sa->namespace, c->in->sa->name,
			 s->kind == SOURCE_TRIGGER ? pl->p->trigger_annotation
						   : s->arg);
		return;
	case SOURCE_POD_ANNOTATION:
		snprintf(buf, size, "Pod \"%s/%s\" annotation \"%s\"",
			 c->v.namespace, c->v.name, s->arg);
		return;
	case SOURCE_SETTING:
		snprintf(buf, size, "setting \"%s\"", s->arg);
		return;
	default:
		snprintf(buf, size, "the %s of Pod \"%s/%s\"",
			 s->kind == SOURCE_POD_NAME ? "name" : "derived value",
			 c->v.namespace, c->v.name);
		return;
	}
}

static const char *source_value(const struct ctx *c,
				const struct profile_source *s)
{
	const struct plan *pl = c->plan;

	switch (s->kind) {
	case SOURCE_TRIGGER:
		return pl->trigger;
	case SOURCE_TOKEN_PATH:
		return pl->env_token_path;
	case SOURCE_MOUNT_PATH:
		return pl->env_mount_dir;
	case SOURCE_AUDIENCE:
		return pl->audience;
	case SOURCE_EXPIRATION:
		return pl->expiration_text;
	case SOURCE_SA_ANNOTATION:
		return sa_annotation(c->in->sa, s->arg);
	case SOURCE_POD_ANNOTATION:
		return pod_annotation(c, s->arg);
	case SOURCE_SETTING:
		return profile_setting_value(pl->p, c->settings, s->arg);
	case SOURCE_POD_NAME:
		return c->v.name;
	case SOURCE_NAMESPACE:
		return c->v.namespace;
	case SOURCE_SA_NAME:
		return c->v.sa_name;
	case SOURCE_ENV:
		for (size_t i = 0; i < pl->n_env; i++) {
			if (strcmp(pl->env[i].spec->name, s->arg) == 0)
				return pl->env[i].value;
		}
		return NULL;
	}
	return NULL;
}

/* The first source of the chain with a non-empty value; *origin names it. */
static const char *chain_value(const struct ctx *c,
			       const struct profile_chain *chain,
			       const struct profile_source **origin)
{
	for (size_t i = 0; i < chain->n; i++) {
		const char *value = source_value(c, &chain->items[i]);

		if (value && value[0] != '\0') {
			*origin = &chain->items[i];
			return value;
		}
	}
	return NULL;
}

/* ---- planning one profile ---- */

static int deny_value(struct ctx *c, const struct profile_source *origin,
		      const char *value, const char *expectation)
{
	char what[400], shown[BOUND_VALUE_SHOWN + 4];

	describe_source(c, origin, what, sizeof(what));
	str_shorten(value, BOUND_VALUE_SHOWN, shown, sizeof(shown));
	return deny(c, MUTATE_DENY_INVALID_VALUE, "%s: \"%s\" is not %s", what,
		    shown, expectation);
}

static int plan_expiration(struct ctx *c)
{
	struct plan *pl = c->plan;
	const struct profile *p = pl->p;
	struct profile_source origin = { SOURCE_POD_ANNOTATION,
					 p->pod_expiration_annotation };
	const char *value =
		p->pod_expiration_annotation
			? pod_annotation(c, p->pod_expiration_annotation)
			: NULL;
	char what[400];
	int64_t n;
	int rc = 0;

	if ((value == NULL || value[0] == '\0') && p->expiration_annotation) {
		origin = (struct profile_source){ SOURCE_SA_ANNOTATION,
						  p->expiration_annotation };
		value = sa_annotation(c->in->sa, p->expiration_annotation);
	}
	pl->expiration = p->expiration;
	if (value && value[0] != '\0') {
		rc = str_to_i64(value, INT64_MIN, INT64_MAX, &n);
		if (rc == DIAG_EPARSE)
			return deny_value(c, &origin, value,
					  "a whole number of seconds");
		pl->expiration =
			rc == DIAG_ELIMIT
				? (value[0] == '-' ? INT64_MIN : INT64_MAX)
				: n;
		describe_source(c, &origin, what, sizeof(what));
		if (pl->expiration < p->expiration_min)
			rc = mutation_warn(
				c->m,
				"%s: token lifetime from %s raised to the minimum "
				"of %lld s",
				p->name, what,
				(long long)(pl->expiration =
						    p->expiration_min));
		else if (pl->expiration > p->expiration_max)
			rc = mutation_warn(
				c->m,
				"%s: token lifetime from %s lowered to the maximum "
				"of %lld s",
				p->name, what,
				(long long)(pl->expiration =
						    p->expiration_max));
		else
			rc = 0;
	}
	str_from_i64(pl->expiration_text, (long long)pl->expiration);
	return rc;
}

/* Copies src to dst with '/' turned into '\' after the drive: C:\var\run\... */
static void windows_form(const char *drive, const char *src, char *dst,
			 size_t size)
{
	size_t n = str_copy(dst, size, drive, SIZE_MAX);

	n += str_copy(dst + n, size - n, src, SIZE_MAX);

	for (size_t i = 2; i < n && i < size; i++) {
		if (dst[i] == '/')
			dst[i] = '\\';
	}
}

static int plan_location(struct ctx *c)
{
	struct plan *pl = c->plan;
	const struct profile *p = pl->p;
	const char *moved =
		p->file_annotation
			? sa_annotation(c->in->sa, p->file_annotation)
			: NULL;

	size_t n;

	str_copy(pl->mount_dir, sizeof(pl->mount_dir), p->mount_path, SIZE_MAX);
	str_copy(pl->token_file, sizeof(pl->token_file), p->token_file,
		 SIZE_MAX);
	if (moved && moved[0] != '\0') {
		const char *slash = strrchr(moved, '/');
		struct profile_source origin = { SOURCE_SA_ANNOTATION,
						 p->file_annotation };

		if (!validate_abs_path(moved) || slash == moved)
			return deny_value(
				c, &origin, moved,
				"an absolute file path below a directory");
		str_copy(pl->mount_dir, sizeof(pl->mount_dir), moved,
			 (size_t)(slash - moved));
		/* The token volume would hide the directory it is mounted on. */
		if (validate_system_dir(pl->mount_dir))
			return deny_value(
				c, &origin, moved,
				"a path outside the system directories "
				"(/proc, /sys, /dev, /etc, /usr, /bin, "
				"/sbin, /lib*, /var/run/secrets/"
				"kubernetes.io)");
		str_copy(pl->token_file, sizeof(pl->token_file), slash + 1,
			 SIZE_MAX);
	}
	n = str_copy(pl->token_path, sizeof(pl->token_path), pl->mount_dir,
		     SIZE_MAX);
	n += str_copy(pl->token_path + n, sizeof(pl->token_path) - n, "/", 1);
	str_copy(pl->token_path + n, sizeof(pl->token_path) - n, pl->token_file,
		 SIZE_MAX);
	if (c->v.windows && p->windows_drive) {
		windows_form(p->windows_drive, pl->mount_dir, pl->env_mount_dir,
			     sizeof(pl->env_mount_dir));
		windows_form(p->windows_drive, pl->token_path,
			     pl->env_token_path, sizeof(pl->env_token_path));
	} else {
		str_copy(pl->env_mount_dir, sizeof(pl->env_mount_dir),
			 pl->mount_dir, SIZE_MAX);
		str_copy(pl->env_token_path, sizeof(pl->env_token_path),
			 pl->token_path, SIZE_MAX);
	}
	return 0;
}

static void sanitize_sts_session_name(const char *in, char *out)
{
	size_t n = 0;

	for (; in[n] != '\0' && n < STS_SESSION_NAME_MAX; n++) {
		char ch = in[n];
		bool ok = str_is_alnum(ch) || strchr("+=,.@_-", ch);

		out[n] = ok ? ch : '-';
	}
	while (n < 2)
		out[n++] = '-';
	out[n] = '\0';
}

/*
 * Evaluates a `when` chain: *on is true when the first value present says true.
 */
static int eval_when(struct ctx *c, const struct profile_env *e, bool *on)
{
	const struct profile_source *origin = NULL;
	const char *value = chain_value(c, &e->when, &origin);

	*on = false;
	if (value == NULL)
		return 0;
	if (str_to_bool(value, on) != 0)
		return deny_value(c, origin, value, "true or false");
	return 0;
}

/* Keeps a value the plan computed (freed by plan_release). */
static const char *plan_own(struct plan *pl, char *value)
{
	if (value == NULL)
		return NULL;
	pl->owned[pl->n_owned++] = value;
	return value;
}

static void plan_release(struct plan *pl)
{
	for (size_t i = 0; i < pl->n_owned; i++)
		mem_free(pl->owned[i]);
	pl->n_owned = 0;
}

/* An empty plan for p (NULL: none yet); pl holds nothing to release. */
static void plan_reset(struct plan *pl, const struct profile *p)
{
	memset(pl, 0, offsetof(struct plan, env));
	pl->p = p;
	pl->n_env = 0;
	pl->expiration_text[0] = pl->mount_dir[0] = pl->token_file[0] = '\0';
	pl->token_path[0] = pl->env_mount_dir[0] = pl->env_token_path[0] = '\0';
}

/*
 * `extract`: the first group of the pattern's first match in value, or NULL
 * (not set) when it does not match. *oom on allocation failure.
 */
static const char *extract_value(struct plan *pl, const struct profile_env *e,
				 const char *value, bool *oom)
{
	size_t start, len;
	char *copy;

	*oom = false;
	if (!validate_pattern_extract(e->extract_re, value, &start, &len) ||
	    len == 0)
		return NULL;
	copy = mem_strndup(value + start, len);
	*oom = copy == NULL;
	return plan_own(pl, copy);
}

static int plan_one_env(struct ctx *c, const struct profile_env *e,
			size_t index)
{
	struct plan *pl = c->plan;
	const struct profile_source *origin = NULL;
	const char *value = e->value;
	bool on = true;
	int rc = e->when.n ? eval_when(c, e, &on) : 0;

	if (rc != 0 || !on)
		return rc;
	if (value == NULL)
		value = chain_value(c, &e->from, &origin);
	if (value && e->extract_re) {
		bool oom;

		value = extract_value(pl, e, value, &oom);
		if (oom)
			return DIAG_ENOMEM;
	}
	if (value == NULL) {
		value = e->default_value;
		origin = NULL;
	}
	if (value == NULL)
		return 0; /* injected only when set */
	if (e->sanitize == SANITIZE_STS_SESSION_NAME) {
		sanitize_sts_session_name(value, pl->sanitized[index]);
		value = pl->sanitized[index];
	}
	if (!validate_value(e->format, value) ||
	    (e->re && !validate_pattern_match(e->re, value))) {
		const char *expectation =
			e->re ? "of the form the profile's pattern requires"
			      : validate_format_expectation(e->format);

		if (origin == NULL)
			return deny(c, MUTATE_DENY_INVALID_VALUE,
				    "%s: the value for %s is not %s",
				    pl->p->name, e->name, expectation);
		return deny_value(c, origin, value, expectation);
	}
	pl->env[pl->n_env++] = (struct env_value){ .spec = e, .value = value };
	return 0;
}

/* ---- generated files ---- */

/*
 * Renders a template into out. A placeholder without a value denies: the
 * profile's required annotations are what make every placeholder of a shipped
 * profile have one.
 */
static int render_template(struct ctx *c, const struct profile_template *t,
			   const char *file, struct strbuf *out)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct profile_template_part *part = &t->parts[i];
		const char *value = part->text;
		int rc;

		if (value == NULL)
			value = source_value(c, &part->source);
		if (value == NULL || value[0] == '\0')
			return deny(c, MUTATE_DENY_INVALID_VALUE,
				    "%s: file %s needs a value for ${%s%s%s}, "
				    "which has none for Pod \"%s/%s\"",
				    c->plan->p->name, file,
				    profile_source_name(part->source.kind),
				    part->source.arg ? ":" : "",
				    part->source.arg ? part->source.arg : "",
				    c->v.namespace, c->v.name);
		rc = strbuf_adds(out, value);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Finds or creates the object that holds the last member of a dotted path. */
static cJSON *json_parent(cJSON *root, const char *path, const char **leaf)
{
	cJSON *obj = root;
	const char *seg = path, *dot;

	while ((dot = strchr(seg, '.')) != NULL) {
		char name[BOUND_PROFILE_LINE + 1];
		cJSON *next;

		snprintf(name, sizeof(name), "%.*s", (int)(dot - seg), seg);
		next = cJSON_GetObjectItemCaseSensitive(obj, name);
		if (next == NULL)
			next = cJSON_AddObjectToObject(obj, name);
		if (next == NULL)
			return NULL;
		obj = next;
		seg = dot + 1;
	}
	*leaf = seg;
	return obj;
}

/* A json file: each member rendered and JSON-escaped by cJSON's printer. */
static int render_json_file(struct ctx *c, const struct profile_file *f,
			    char **ret)
{
	struct strbuf value;
	cJSON *root = cJSON_CreateObject();
	int rc = root ? 0 : DIAG_ENOMEM;

	*ret = NULL;
	strbuf_init(&value, BOUND_FILE_BYTES);
	for (size_t i = 0; rc == 0 && i < f->n_fields && !c->plan->denied;
	     i++) {
		const char *leaf = NULL;
		cJSON *parent;

		strbuf_reset(&value);
		rc = render_template(c, &f->fields[i].value, f->name, &value);
		if (rc != 0 || c->plan->denied)
			break;
		parent = json_parent(root, f->fields[i].path, &leaf);
		if (parent == NULL ||
		    cJSON_AddStringToObject(parent, leaf, strbuf_str(&value)) ==
			    NULL)
			rc = DIAG_ENOMEM;
	}
	if (rc == 0 && !c->plan->denied) {
		*ret = cJSON_PrintUnformatted(root);
		if (*ret == NULL)
			rc = DIAG_ENOMEM;
		else if (strlen(*ret) > BOUND_FILE_BYTES)
			rc = DIAG_ELIMIT;
	}
	strbuf_free(&value);
	cJSON_Delete(root);
	return rc;
}

static int plan_file(struct ctx *c, size_t i)
{
	struct plan *pl = c->plan;
	const struct profile_file *f = &pl->p->files[i];
	char *content = NULL;
	int rc;

	if (f->json) {
		rc = render_json_file(c, f, &content);
	} else {
		struct strbuf text;

		strbuf_init(&text, BOUND_FILE_BYTES);
		rc = render_template(c, &f->text, f->name, &text);
		if (rc == 0 && !pl->denied) {
			content = strbuf_detach(&text, NULL);
			rc = content ? 0 : DIAG_ENOMEM;
		}
		strbuf_free(&text);
	}
	if (rc == DIAG_ELIMIT)
		return deny(c, MUTATE_DENY_INVALID_VALUE,
			    "%s: file %s would be larger than %ld bytes",
			    pl->p->name, f->name, BOUND_FILE_BYTES);
	if (rc != 0 || pl->denied) {
		mem_free(content);
		return rc;
	}
	pl->file_content[i] = plan_own(pl, content);
	return 0;
}

static int plan_profile(struct ctx *c)
{
	struct plan *pl = c->plan;
	const struct profile *p = pl->p;
	const char *audience =
		p->audience_annotation
			? sa_annotation(c->in->sa, p->audience_annotation)
			: NULL;
	int rc;

	pl->audience = audience && audience[0] ? audience : p->audience;
	if (!validate_value(FORMAT_ANY, pl->audience)) {
		struct profile_source origin = { SOURCE_SA_ANNOTATION,
						 p->audience_annotation };

		rc = deny_value(c, &origin, pl->audience, "a valid audience");
		if (rc != 0)
			return rc;
	}
	/* Each value is checked even after another failed: all errors at once. */
	rc = plan_expiration(c);
	if (rc == 0)
		rc = plan_location(c);
	for (size_t i = 0; rc == 0 && i < p->n_env; i++)
		rc = plan_one_env(c, &p->env[i], i);
	for (size_t i = 0; rc == 0 && !pl->denied && i < p->n_files; i++)
		rc = plan_file(c, i);
	return rc;
}

/* ---- checking the pod against the plan ---- */

/* Whether a path equals ours, ignoring one trailing slash. */
static bool same_path(const char *a, const char *ours)
{
	size_t n = strlen(ours);

	return strncmp(a, ours, n) == 0 &&
	       (a[n] == '\0' || (a[n] == '/' && a[n + 1] == '\0'));
}

/* Two profiles may not mount at one path (a file annotation can move a mount onto
 * another profile's): the API server would reject the pod as invalid. */
static int check_mount_dir(struct ctx *c)
{
	const struct plan *pl = c->plan;

	for (size_t i = 0; i < c->n_mount_dirs; i++) {
		if (same_path(c->mount_dirs[i], pl->mount_dir))
			return deny(
				c, MUTATE_DENY_MOUNT_CONFLICT,
				"Pod \"%s/%s\": profiles %s and %s would both mount their "
				"token at \"%s\"",
				c->v.namespace, c->v.name, c->m->applied[i],
				pl->p->name, pl->mount_dir);
	}
	return 0;
}

static bool is_our_volume(const struct plan *pl, const cJSON *volume)
{
	const cJSON *projected = NULL, *sources = NULL, *token = NULL,
		    *exp = NULL;
	const char *audience, *path;

	if (json_member(volume, "projected", cJSON_Object, &projected) !=
		    JSON_FOUND ||
	    json_member(projected, "sources", cJSON_Array, &sources) !=
		    JSON_FOUND ||
	    cJSON_GetArraySize(sources) != 1 ||
	    json_member(cJSON_GetArrayItem(sources, 0), "serviceAccountToken",
			cJSON_Object, &token) != JSON_FOUND)
		return false;
	audience = json_string(token, "audience");
	path = json_string(token, "path");
	if (json_member(token, "expirationSeconds", cJSON_Number, &exp) !=
	    JSON_FOUND)
		return false;
	return audience && strcmp(audience, pl->audience) == 0 && path &&
	       strcmp(path, pl->token_file) == 0 &&
	       exp->valuedouble == (double)pl->expiration;
}

static int check_volume(struct ctx *c)
{
	struct plan *pl = c->plan;
	const cJSON *volume;

	cJSON_ArrayForEach(volume, c->v.volumes) {
		if (strcmp(json_string(volume, "name"), pl->p->volume_name) !=
		    0)
			continue;
		if (!is_our_volume(pl, volume))
			return deny(
				c, MUTATE_DENY_VOLUME_CONFLICT,
				"Pod \"%s/%s\": volume \"%s\" already exists and is not "
				"the token %s projects (serviceAccountToken audience \"%s\", "
				"path \"%s\", expirationSeconds %lld); rename it",
				c->v.namespace, c->v.name, pl->p->volume_name,
				pl->p->name, pl->audience, pl->token_file,
				(long long)pl->expiration);
		pl->volume_exists = true;
	}
	return 0;
}

/* The downwardAPI item of file f: the fieldPath that reads its annotation. */
static void file_field_path(const struct profile_file *f, char *buf,
			    size_t size)
{
	snprintf(buf, size, "metadata.annotations['%s']", f->annotation);
}

static bool is_our_file_volume(const struct profile_file *f,
			       const cJSON *volume)
{
	const cJSON *dapi = NULL, *items = NULL, *item, *ref = NULL;
	const char *path, *field;
	char want[BOUND_DNS_SUBDOMAIN + BOUND_DNS_LABEL + 32];

	if (json_member(volume, "downwardAPI", cJSON_Object, &dapi) !=
		    JSON_FOUND ||
	    json_member(dapi, "items", cJSON_Array, &items) != JSON_FOUND ||
	    cJSON_GetArraySize(items) != 1)
		return false;
	item = cJSON_GetArrayItem(items, 0);
	if (json_member(item, "fieldRef", cJSON_Object, &ref) != JSON_FOUND)
		return false;
	path = json_string(item, "path");
	field = json_string(ref, "fieldPath");
	file_field_path(f, want, sizeof(want));
	return path && strcmp(path, f->name) == 0 && field &&
	       strcmp(field, want) == 0;
}

/* A pod volume with a file's volume name must be exactly that file's. */
static int check_file_volumes(struct ctx *c)
{
	struct plan *pl = c->plan;
	const cJSON *volume;

	for (size_t i = 0; i < pl->p->n_files && !pl->denied; i++) {
		const struct profile_file *f = &pl->p->files[i];

		cJSON_ArrayForEach(volume, c->v.volumes) {
			if (strcmp(json_string(volume, "name"),
				   f->volume_name) != 0)
				continue;
			if (!is_our_file_volume(f, volume))
				return deny(
					c, MUTATE_DENY_VOLUME_CONFLICT,
					"Pod \"%s/%s\": volume \"%s\" already "
					"exists and is not the downwardAPI file "
					"%s of profile %s; rename it",
					c->v.namespace, c->v.name,
					f->volume_name, f->name, pl->p->name);
			pl->file_volume_exists[i] = true;
		}
	}
	return 0;
}

static bool container_selected(const struct ctx *c,
			       const struct container_ref *ref)
{
	const struct profile *p = c->plan->p;
	const char *include =
		p->include_containers_annotation
			? pod_annotation(c, p->include_containers_annotation)
			: NULL;
	const char *skip =
		p->skip_containers_annotation
			? pod_annotation(c, p->skip_containers_annotation)
			: NULL;

	if (include &&
	    !str_list_contains(include, CONTAINER_LIST_SEPARATORS, ref->name))
		return false;
	return !(skip &&
		 str_list_contains(skip, CONTAINER_LIST_SEPARATORS, ref->name));
}

/* Denies a mount of our volume elsewhere or of another volume at our path; tells
 * whether the container already has our mount. */
static int check_mount(struct ctx *c, const struct container_ref *ref,
		       const char *volume, const char *dir, bool *has_ours)
{
	const struct plan *pl = c->plan;
	const cJSON *mount;

	*has_ours = false;
	cJSON_ArrayForEach(mount, ref->mounts) {
		const char *name = json_string(mount, "name");
		const char *path = json_string(mount, "mountPath");
		bool ours = strcmp(name, volume) == 0;

		if (ours && same_path(path, dir)) {
			*has_ours = true;
			continue;
		}
		if (ours || same_path(path, dir))
			return deny(
				c, MUTATE_DENY_MOUNT_CONFLICT,
				"Pod \"%s/%s\": container \"%s\" mounts volume \"%s\" at "
				"\"%s\", but profile %s mounts volume \"%s\" at \"%s\"",
				c->v.namespace, c->v.name, ref->name, name,
				path, pl->p->name, volume, dir);
	}
	return 0;
}

/* The token mount and each file's mount: conflicts deny; ours are noted. */
static int check_mounts(struct ctx *c, struct container_ref *ref)
{
	const struct profile *p = c->plan->p;
	int rc = check_mount(c, ref, p->volume_name, c->plan->mount_dir,
			     &ref->has_our_mount);

	ref->file_mounts = 0;
	for (size_t i = 0; rc == 0 && i < p->n_files && !c->plan->denied; i++) {
		bool has = false;

		rc = check_mount(c, ref, p->files[i].volume_name,
				 p->files[i].mount_path, &has);
		if (has)
			ref->file_mounts |= 1u << i;
	}
	return rc;
}

/* ---- writing the patch ---- */

static int render_volume(struct ctx *c)
{
	const struct plan *pl = c->plan;
	struct strbuf *out = &c->value;
	int rc = strbuf_adds(out, "{\"name\":");

	if (rc == 0)
		rc = json_append_string(out, pl->p->volume_name);
	if (rc == 0)
		rc = strbuf_adds(
			out,
			",\"projected\":{\"sources\":[{\"serviceAccountToken\":"
			"{\"audience\":");
	if (rc == 0)
		rc = json_append_string(out, pl->audience);
	if (rc == 0)
		rc = strbuf_adds(out, ",\"expirationSeconds\":");
	if (rc == 0)
		rc = strbuf_add_i64(out, (long long)pl->expiration);
	if (rc == 0)
		rc = strbuf_adds(out, ",\"path\":");
	if (rc == 0)
		rc = json_append_string(out, pl->token_file);
	if (rc == 0)
		rc = strbuf_adds(out, "}}]");
	if (rc == 0 && pl->p->default_mode >= 0) {
		rc = strbuf_adds(out, ",\"defaultMode\":");
		if (rc == 0)
			rc = strbuf_add_i64(out, pl->p->default_mode);
	}
	if (rc == 0)
		rc = strbuf_adds(out, "}}");
	return rc;
}

static int render_file_volume(struct ctx *c, const struct profile_file *f)
{
	struct strbuf *out = &c->value;
	char field[BOUND_DNS_SUBDOMAIN + BOUND_DNS_LABEL + 32];
	int rc = strbuf_adds(out, "{\"name\":");

	file_field_path(f, field, sizeof(field));
	if (rc == 0)
		rc = json_append_string(out, f->volume_name);
	if (rc == 0)
		rc = strbuf_adds(out,
				 ",\"downwardAPI\":{\"items\":[{\"path\":");
	if (rc == 0)
		rc = json_append_string(out, f->name);
	if (rc == 0)
		rc = strbuf_adds(out, ",\"fieldRef\":{\"apiVersion\":\"v1\","
				      "\"fieldPath\":");
	if (rc == 0)
		rc = json_append_string(out, field);
	if (rc == 0)
		rc = strbuf_adds(out, "}}]");
	if (rc == 0 && f->default_mode >= 0) {
		rc = strbuf_adds(out, ",\"defaultMode\":");
		if (rc == 0)
			rc = strbuf_add_i64(out, f->default_mode);
	}
	if (rc == 0)
		rc = strbuf_adds(out, "}}");
	return rc;
}

#ifndef NDEBUG
/* Whether profile p declares a volume called name (its token's or a file's). */
static bool profile_has_volume(const struct profile *p, const char *name)
{
	if (strcmp(p->volume_name, name) == 0)
		return true;
	for (size_t f = 0; f < p->n_files; f++) {
		if (strcmp(p->files[f].volume_name, name) == 0)
			return true;
	}
	return false;
}

/*
 * A volume the plan adds has a name no other volume of the patched pod has:
 * not one of the pod's (check_volume and check_file_volumes found ours there
 * and skip them), not another of this profile's, not an earlier applied
 * profile's (the profile set refuses shared names).
 */
static bool volume_name_free(const struct ctx *c, int file)
{
	const struct profile *p = c->plan->p, *q;
	const char *name =
		file < 0 ? p->volume_name : p->files[file].volume_name;
	const cJSON *volume;

	cJSON_ArrayForEach(volume, c->v.volumes) {
		if (strcmp(json_string(volume, "name"), name) == 0)
			return false;
	}
	for (int f = -1; f < (int)p->n_files; f++) {
		if (f != file &&
		    strcmp(f < 0 ? p->volume_name : p->files[f].volume_name,
			   name) == 0)
			return false;
	}
	for (size_t i = 0; i < c->m->n_applied; i++) {
		q = profile_set_find(c->set, c->m->applied[i]);
		if (q && profile_has_volume(q, name))
			return false;
	}
	return true;
}
#endif

/* file < 0: the token's projected volume; else that generated file's. */
static int emit_volume(struct ctx *c, int file)
{
	bool create = !c->v.has_volumes;
	int rc;

	if (file < 0 ? c->plan->volume_exists
		     : c->plan->file_volume_exists[file])
		return 0;
	PIW_ASSERT_CHECK(volume_name_free(c, file));
	strbuf_reset(&c->value);
	rc = create ? strbuf_addc(&c->value, '[') : 0;
	if (rc == 0)
		rc = file < 0 ? render_volume(c)
			      : render_file_volume(c, &c->plan->p->files[file]);
	if (rc == 0 && create)
		rc = strbuf_addc(&c->value, ']');
	if (rc == 0)
		rc = patch_add_op(&c->m->patch, "add",
				  create ? "/spec/volumes" : "/spec/volumes/-",
				  c->value.buf);
	c->v.has_volumes = true;
	return rc;
}

/* An "add" of value_json at path: the mutator only ever adds. */
static int add_op(struct ctx *c, const struct strbuf *path,
		  const char *value_json, size_t value_len)
{
	return patch_add_op_len(&c->m->patch, "add", path->buf, path->len,
				value_json, value_len);
}

/* Sets c->path to /spec/<containers|initContainers>/<i>/<field>[/-]. */
static int container_path(struct ctx *c, const struct container_ref *ref,
			  const char *field, bool append)
{
	int rc;

	strbuf_reset(&c->path);
	rc = strbuf_add(&c->path, ref->pointer, ref->pointer_len);
	if (rc == 0)
		rc = patch_pointer_append(&c->path, field);
	if (rc == 0 && append)
		rc = strbuf_adds(&c->path, "/-");
	return rc;
}

/*
 * The mount's JSON object in c->rendered, rendered once for all containers
 * (*at, *len); 0 or an error.
 */
static int render_mount(struct ctx *c, const char *volume, const char *dir,
			size_t *at, size_t *len)
{
	struct plan *pl = c->plan;
	struct strbuf *out = &c->rendered;
	int rc = 0;

	if (pl->mount_len == 0 || pl->mount_volume != volume ||
	    pl->mount_dir_of != dir) {
		pl->mount_at = out->len;
		rc = strbuf_adds(out, "{\"name\":");
		if (rc == 0)
			rc = json_append_string(out, volume);
		if (rc == 0)
			rc = strbuf_adds(out, ",\"mountPath\":");
		if (rc == 0)
			rc = json_append_string(out, dir);
		if (rc == 0)
			rc = strbuf_adds(out, ",\"readOnly\":true}");
		pl->mount_volume = volume;
		pl->mount_dir_of = dir;
		pl->mount_len = rc == 0 ? out->len - pl->mount_at : 0;
	}
	*at = pl->mount_at;
	*len = pl->mount_len;
	return rc;
}

static int emit_mount(struct ctx *c, struct container_ref *ref,
		      const char *volume, const char *dir)
{
	bool create = !ref->has_mounts;
	size_t at = 0, len = 0;
	int rc = render_mount(c, volume, dir, &at, &len);

	if (rc == 0)
		rc = container_path(c, ref, "volumeMounts", !create);
	if (rc == 0 && !create) {
		rc = add_op(c, &c->path, c->rendered.buf + at, len);
	} else if (rc == 0) {
		strbuf_reset(&c->value);
		rc = strbuf_addc(&c->value, '[');
		if (rc == 0)
			rc = strbuf_add(&c->value, c->rendered.buf + at, len);
		if (rc == 0)
			rc = strbuf_addc(&c->value, ']');
		if (rc == 0)
			rc = add_op(c, &c->path, c->value.buf, c->value.len);
	}
	ref->has_mounts = true;
	return rc;
}

/*
 * For each of the profile's variables, the container's own variable of that name (its
 * first), or NULL: one pass over the container's env, rather than one per variable and
 * group member (a pod with many variables made this most of the patch's cost).
 */
static void index_user_env(const struct profile *p,
			   const struct container_ref *ref,
			   const cJSON *mine[BOUND_PROFILE_ENV])
{
	const cJSON *item;

	memset(mine, 0, p->n_env * sizeof(mine[0]));
	cJSON_ArrayForEach(item, ref->env) {
		const char *name = json_string(item, "name");
		unsigned char f = (unsigned char)name[0];

		/* most of a container's own variables start otherwise */
		if ((p->env_firsts[f >> 6] >> (f & 63) & 1) == 0)
			continue;
		for (size_t j = 0; j < p->n_env; j++) {
			if (mine[j] == NULL && name[0] == p->env[j].name[0] &&
			    strcmp(p->env[j].name, name) == 0)
				mine[j] = item;
		}
	}
}

/* Keeps the user's variable; warns when it is not exactly ours. */
static int keep_user_env(struct ctx *c, const struct container_ref *ref,
			 const cJSON *existing, const struct env_value *ev)
{
	const char *value = json_string(existing, "value");

	if (value && strcmp(value, ev->value) == 0 &&
	    json_get(existing, "valueFrom") == NULL)
		return 0;
	return mutation_warn(
		c->m,
		"%s: container \"%s\" sets %s itself; kept (it differs "
		"from the injected value)",
		c->plan->p->name, ref->name, ev->spec->name);
}

/* ev's {"name":..,"value":..} in c->rendered, rendered the first time. */
static int render_env(struct ctx *c, struct env_value *ev)
{
	struct strbuf *out = &c->rendered;
	int rc;

	if (ev->json_len > 0)
		return 0;
	ev->json_at = out->len;
	rc = strbuf_adds(out, "{\"name\":");
	if (rc == 0)
		rc = json_append_string(out, ev->spec->name);
	if (rc == 0)
		rc = strbuf_adds(out, ",\"value\":");
	if (rc == 0)
		rc = json_append_string(out, ev->value);
	if (rc == 0)
		rc = strbuf_addc(out, '}');
	if (rc == 0)
		ev->json_len = out->len - ev->json_at;
	return rc;
}

/*
 * The variable of ev's group that the container sets itself, or NULL: the
 * group goes in whole or not at all, so the user's one keeps the others out.
 */
static const char *group_held(const struct ctx *c,
			      const cJSON *const mine[BOUND_PROFILE_ENV],
			      const struct env_value *ev)
{
	const struct profile *p = c->plan->p;

	if (ev->spec->group == NULL)
		return NULL;
	for (size_t i = 0; i < p->n_env; i++) {
		const struct profile_env *e = &p->env[i];

		if (e->group && mine[i] &&
		    strcmp(e->group, ev->spec->group) == 0)
			return e->name;
	}
	return NULL;
}

/* A container without env gets one "add" of the whole array; otherwise one "add" per
 * variable at the end of its env. */
static int emit_env(struct ctx *c, struct container_ref *ref)
{
	bool create = !ref->has_env;
	size_t added = 0;
	const cJSON *mine[BOUND_PROFILE_ENV];
	int rc = 0;

	index_user_env(c->plan->p, ref, mine);
	strbuf_reset(&c->value);
	for (size_t i = 0; rc == 0 && i < c->plan->n_env; i++) {
		struct env_value *ev = &c->plan->env[i];
		const cJSON *existing = mine[ev->spec - c->plan->p->env];
		const char *held = existing ? NULL : group_held(c, mine, ev);

		if (existing) {
			rc = keep_user_env(c, ref, existing, ev);
			continue;
		}
		if (held) {
			rc = mutation_warn(
				c->m,
				"%s: container \"%s\" sets %s itself; %s, "
				"which goes with it, is not injected",
				c->plan->p->name, ref->name, held,
				ev->spec->name);
			continue;
		}
		rc = render_env(c, ev);
		if (rc == 0 && create) /* one array of them all, below */
			rc = strbuf_addc(&c->value, added ? ',' : '[');
		if (rc == 0 && create)
			rc = strbuf_add(&c->value,
					c->rendered.buf + ev->json_at,
					ev->json_len);
		else if (rc == 0 &&
			 (rc = container_path(c, ref, "env", true)) == 0)
			rc = add_op(c, &c->path, c->rendered.buf + ev->json_at,
				    ev->json_len);
		added++;
	}
	if (rc == 0 && create && added > 0) {
		rc = strbuf_addc(&c->value, ']');
		if (rc == 0)
			rc = container_path(c, ref, "env", false);
		if (rc == 0)
			rc = add_op(c, &c->path, c->value.buf, c->value.len);
		ref->has_env = true;
	}
	if (rc == 0 && added > 0 && ref->has_env_from)
		rc = mutation_warn(
			c->m,
			"%s: container \"%s\" has envFrom; the injected "
			"variables take precedence over any of the same name "
			"its ConfigMaps or Secrets set (rule 2)",
			c->plan->p->name, ref->name);
	return rc;
}

/*
 * Appends an annotations map holding only ours, wrapped for /metadata if
 * needed.
 */
/*
 * Appends an annotations map holding only key, wrapped for /metadata if the
 * pod has no metadata.
 */
static int render_annotations(struct ctx *c, const char *key, const char *value)
{
	bool whole_metadata = !c->v.has_metadata;
	int rc = strbuf_adds(&c->value,
			     whole_metadata ? "{\"annotations\":{" : "{");

	if (rc == 0)
		rc = json_append_string(&c->value, key);
	if (rc == 0)
		rc = strbuf_addc(&c->value, ':');
	if (rc == 0)
		rc = json_append_string(&c->value, value);
	if (rc == 0)
		rc = strbuf_adds(&c->value, whole_metadata ? "}}" : "}");
	return rc;
}

/*
 * Sets a pod annotation unless it already holds value, creating the map (and
 * metadata) the first time. "add" replaces an existing member (RFC 6902).
 */
static int emit_annotation(struct ctx *c, const char *key, const char *value)
{
	const char *existing = pod_annotation(c, key);
	int rc;

	if (existing && strcmp(existing, value) == 0)
		return 0;
	strbuf_reset(&c->path);
	strbuf_reset(&c->value);
	if (c->v.has_annotations) {
		rc = strbuf_adds(&c->path, "/metadata/annotations");
		if (rc == 0)
			rc = patch_pointer_append(&c->path, key);
		if (rc == 0)
			rc = json_append_string(&c->value, value);
	} else {
		rc = strbuf_adds(&c->path, c->v.has_metadata
						   ? "/metadata/annotations"
						   : "/metadata");
		if (rc == 0)
			rc = render_annotations(c, key, value);
	}
	c->v.has_annotations = c->v.has_metadata = true;
	return rc ? rc : add_op(c, &c->path, c->value.buf, c->value.len);
}

size_t mutation_applied_list(const struct mutation *m, char *out, size_t size)
{
	size_t n = str_copy(out, size, "", 0);

	for (size_t i = 0; i < m->n_applied; i++) {
		if (i > 0)
			n += str_copy(out + n, size - n, ",", 1);
		n += str_copy(out + n, size - n, m->applied[i], SIZE_MAX);
	}
	return n;
}

static int emit_profiles_annotation(struct ctx *c)
{
	char names[MUTATION_APPLIED_LIST_SIZE];

	mutation_applied_list(c->m, names, sizeof(names));
	return emit_annotation(c, MUTATE_PROFILES_ANNOTATION, names);
}

/* A generated file's annotation; a different value there is replaced. */
static int emit_file_annotation(struct ctx *c, size_t i)
{
	const struct profile_file *f = &c->plan->p->files[i];
	const char *existing = pod_annotation(c, f->annotation);
	int rc = 0;

	if (existing && strcmp(existing, c->plan->file_content[i]) != 0)
		rc = mutation_warn(c->m,
				   "%s: pod annotation %s is replaced by the "
				   "generated file %s",
				   c->plan->p->name, f->annotation, f->name);
	return rc ? rc
		  : emit_annotation(c, f->annotation, c->plan->file_content[i]);
}

/* ---- one profile, start to end ---- */

/* Why p is skipped for this pod ("" when it is not), into buf. */
static bool skip_reason(const struct ctx *c, const struct profile *p, char *buf,
			size_t size)
{
	const struct profile_list *lists[] = { &p->skip_pod_labels,
					       &p->skip_pod_annotations,
					       &p->skip_sa_annotations };
	static const char *const what[] = { "pod label", "pod annotation",
					    "ServiceAccount annotation" };

	for (size_t l = 0; l < 3; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			const char *key = lists[l]->items[i];
			const char *value =
				l == 0	 ? pod_label(c, key)
				: l == 1 ? pod_annotation(c, key)
					 : sa_annotation(c->in->sa, key);

			enum skip_match match =
				l == 0 ? p->skip_label_match : p->skip_match;

			if (value == NULL || (match == SKIP_MATCH_TRUE &&
					      !str_eq_ci(value, "true")))
				continue;
			snprintf(buf, size, "%s %s", what[l], key);
			return true;
		}
	}
	return false;
}

static void note_skip(struct ctx *c, const char *profile, const char *why)
{
	struct mutation *m = c->m;
	size_t n = strlen(m->skip_reason);

	snprintf(m->skip_reason + n, sizeof(m->skip_reason) - n, "%s%s: %s",
		 n ? "; " : "", profile, why);
	c->n_skipped++;
}

/*
 * Rule 1: a container holds one profile's variables as a unit. The earlier
 * applied profile that already gave this container one of the plan's
 * variables, or NULL.
 */
static const struct injected *unit_conflict(const struct ctx *c,
					    const struct container_ref *ref)
{
	const struct plan *pl = c->plan;

	for (size_t k = 0; k < c->n_injected; k++) {
		const struct injected *in = &c->injected[k];

		if (!(ref->applied & (UINT32_C(1) << in->applied)))
			continue;
		for (size_t i = 0; i < pl->n_env; i++) {
			if (strcmp(pl->env[i].spec->name, in->name) == 0)
				return in;
		}
	}
	return NULL;
}

/* Checks the selected containers' mounts; returns how many are selected. */
static size_t select_containers(struct ctx *c, int *rc)
{
	size_t selected = 0;

	*rc = 0;
	for (size_t i = 0;
	     i < c->v.n_containers && *rc == 0 && !c->plan->denied; i++) {
		struct container_ref *ref = &c->v.containers[i];
		const struct injected *owner;

		ref->selected = container_selected(c, ref);
		ref->has_our_mount = false;
		ref->file_mounts = 0;
		if (!ref->selected)
			continue;
		owner = unit_conflict(c, ref);
		if (owner) {
			ref->selected = false;
			*rc = mutation_warn(
				c->m,
				"%s: not applied to container \"%s\": profile "
				"%s, which comes first, already gives it %s "
				"(a container gets one profile's variables as "
				"a unit)",
				c->plan->p->name, ref->name,
				c->m->applied[owner->applied], owner->name);
			continue;
		}
		selected++;
		*rc = check_mounts(c, ref);
	}
	return selected;
}

#ifndef NDEBUG
/* Whether two applied profiles, both of them in the bit set `applied`, inject a
 * variable of the same name. */
static bool shares_variable(const struct ctx *c, uint32_t applied)
{
	for (size_t a = 0; a < c->n_injected; a++) {
		const struct injected *x = &c->injected[a];

		for (size_t b = a + 1; b < c->n_injected; b++) {
			const struct injected *y = &c->injected[b];

			if (x->applied != y->applied &&
			    (applied >> x->applied & 1) &&
			    (applied >> y->applied & 1) &&
			    strcmp(x->name, y->name) == 0)
				return true;
		}
	}
	return false;
}

/*
 * Rule 1 over the whole mutation: no container holds a variable that two
 * applied profiles inject (select_containers left such a container out).
 */
static bool one_owner_per_variable(const struct ctx *c)
{
	for (size_t i = 0; i < c->v.n_containers; i++) {
		if (shares_variable(c, c->v.containers[i].applied))
			return false;
	}
	return true;
}
#endif

static int record_applied(struct ctx *c)
{
	struct plan *pl = c->plan;
	struct injected *grown;
	size_t index = c->m->n_applied;

	grown = mem_realloc(c->injected,
			    (c->n_injected + pl->n_env + 1) * sizeof(*grown));
	if (grown == NULL)
		return DIAG_ENOMEM;
	c->injected = grown;
	for (size_t i = 0; i < pl->n_env; i++) {
		c->injected[c->n_injected].name = pl->env[i].spec->name;
		c->injected[c->n_injected++].applied = index;
	}
	for (size_t i = 0; i < c->v.n_containers; i++) {
		if (c->v.containers[i].selected)
			c->v.containers[i].applied |= UINT32_C(1) << index;
	}
	c->mount_dirs[c->n_mount_dirs] = mem_strdup(pl->mount_dir);
	if (c->mount_dirs[c->n_mount_dirs] == NULL)
		return DIAG_ENOMEM;
	c->n_mount_dirs++;
	c->m->applied[c->m->n_applied++] = pl->p->name;
	PIW_ASSERT_CHECK(one_owner_per_variable(c));
	return 0;
}

/* Every mount and variable planned for a container goes to a selected one,
 * which no earlier profile gave any of the plan's variables (rule 1). */
static int emit_container(struct ctx *c, struct container_ref *ref)
{
	const struct profile *p = c->plan->p;
	int rc = 0;

	PIW_ASSERT(ref->selected && unit_conflict(c, ref) == NULL);
	if (!ref->has_our_mount)
		rc = emit_mount(c, ref, p->volume_name, c->plan->mount_dir);
	for (size_t f = 0; rc == 0 && f < p->n_files; f++) {
		if (!(ref->file_mounts & (1u << f)))
			rc = emit_mount(c, ref, p->files[f].volume_name,
					p->files[f].mount_path);
	}
	return rc ? rc : emit_env(c, ref);
}

static int emit_profile(struct ctx *c)
{
	const struct profile *p = c->plan->p;
	int rc = emit_volume(c, -1);

	for (size_t f = 0; rc == 0 && f < p->n_files; f++)
		rc = emit_volume(c, (int)f);
	for (size_t i = 0; rc == 0 && i < c->v.n_containers; i++) {
		struct container_ref *ref = &c->v.containers[i];

		if (ref->selected)
			rc = emit_container(c, ref);
	}
	for (size_t f = 0; rc == 0 && f < p->n_files; f++)
		rc = emit_file_annotation(c, f);
	return rc ? rc : record_applied(c);
}

static bool has_value(const char *v)
{
	return v && v[0] != '\0';
}

/*
 * Whether the ServiceAccount is set up for p: its trigger or a required
 * annotation, or, for a label-only profile, an annotation its variables read.
 * Such a pod without the profile's label is "skipped: pod label missing", so
 * the log says why it was not mutated (rule 14).
 */
static bool sa_configured(const struct ctx *c, const struct profile *p)
{
	if (p->trigger_annotation &&
	    has_value(sa_annotation(c->in->sa, p->trigger_annotation)))
		return true;
	for (size_t i = 0; i < p->n_required; i++) {
		if (has_value(sa_annotation(c->in->sa, p->required[i].key)))
			return true;
	}
	for (size_t i = 0; p->trigger_annotation == NULL && i < p->n_env; i++) {
		const struct profile_chain *from = &p->env[i].from;

		for (size_t k = 0; k < from->n; k++) {
			if (from->items[k].kind == SOURCE_SA_ANNOTATION &&
			    has_value(sa_annotation(c->in->sa,
						    from->items[k].arg)))
				return true;
		}
	}
	return false;
}

/*
 * A profile turns on by its trigger annotation or any required annotation
 * (a missing partner is then a configuration error, not silence), or by its
 * pod label alone when it has no trigger annotation; a pod label, when given,
 * must be exactly "true", as a matchLabels objectSelector would require.
 */
static bool profile_matches(const struct ctx *c, const struct profile *p)
{
	const char *opt_in;
	bool on = p->trigger_annotation == NULL;

	if (p->trigger_annotation)
		on = has_value(sa_annotation(c->in->sa, p->trigger_annotation));
	for (size_t i = 0; !on && i < p->n_required; i++)
		on = has_value(sa_annotation(c->in->sa, p->required[i].key));
	if (!on)
		return false;
	if (p->trigger_pod_label == NULL)
		return true;
	opt_in = json_string(c->v.labels, p->trigger_pod_label);
	return opt_in && strcmp(opt_in, "true") == 0;
}

/* Denies a required annotation that is missing or fails its check. */
static int check_annotation(struct ctx *c, const char *key,
			    enum value_format format,
			    const struct validate_pattern *re,
			    const char *pattern)
{
	const struct profile *p = c->plan->p;
	struct profile_source origin = { SOURCE_SA_ANNOTATION, (char *)key };
	/* The trigger is checked as composed (compose_trigger). */
	const char *value =
		p->trigger_annotation && strcmp(key, p->trigger_annotation) == 0
			? c->plan->trigger
			: sa_annotation(c->in->sa, key);
	char expectation[BOUND_PROFILE_LINE + 32];

	if (!has_value(value))
		return deny(c, MUTATE_DENY_INVALID_VALUE,
			    "ServiceAccount \"%s/%s\" annotation \"%s\" is "
			    "missing: profile %s requires it",
			    c->in->sa->namespace, c->in->sa->name, key,
			    p->name);
	if (!validate_value(format, value))
		return deny_value(c, &origin, value,
				  validate_format_expectation(format));
	if (re && !validate_pattern_match(re, value)) {
		snprintf(expectation, sizeof(expectation), "of the form %s",
			 pattern);
		return deny_value(c, &origin, value, expectation);
	}
	return 0;
}

/*
 * `compose`: a short trigger value (one that matches compose-pattern) becomes
 * the template's rendering, as the AWS webhook's --compose-role-arn turns a
 * bare role name into an ARN. A placeholder without a value (the account
 * setting unset) leaves the value as given, for the format check to judge.
 */
static int compose_trigger(struct ctx *c)
{
	struct plan *pl = c->plan;
	const struct profile *p = pl->p;
	struct strbuf out;
	char *composed;
	int rc = 0;

	if (p->trigger_compose.n == 0 || !has_value(pl->trigger) ||
	    !validate_pattern_match(p->trigger_compose_re, pl->trigger))
		return 0;
	strbuf_init(&out, BOUND_SETTING_VALUE * 2);
	for (size_t i = 0; rc == 0 && i < p->trigger_compose.n; i++) {
		const struct profile_template_part *part =
			&p->trigger_compose.parts[i];
		const char *value = part->text ? part->text
					       : source_value(c, &part->source);

		if (!has_value(value)) {
			strbuf_free(&out);
			return 0;
		}
		rc = strbuf_adds(&out, value);
	}
	composed = rc == 0 ? strbuf_detach(&out, NULL) : NULL;
	strbuf_free(&out);
	if (rc == DIAG_ELIMIT)
		return 0; /* too long to be valid: the format check says so */
	if (composed == NULL)
		return DIAG_ENOMEM;
	pl->trigger = plan_own(pl, composed);
	return 0;
}

/*
 * A trigger value that passed the profile's check but fits none of the forms
 * the peer documents is used as given (the peer accepts it), with a warning.
 */
static int advise_trigger(struct ctx *c)
{
	const struct profile *p = c->plan->p;
	const char *value = c->plan->trigger;
	char names[128] = "", shown[BOUND_VALUE_SHOWN + 4];
	size_t n = 0;

	if (p->trigger_expect.n == 0 || !has_value(value))
		return 0;
	for (size_t i = 0; i < p->trigger_expect.n; i++) {
		enum value_format f = p->trigger_expect.items[i];

		if (validate_value(f, value))
			return 0;
		n += (size_t)snprintf(names + n,
				      n < sizeof(names) ? sizeof(names) - n : 0,
				      "%s%s", i ? " or " : "",
				      validate_format_expectation(f));
		if (n >= sizeof(names))
			n = sizeof(names) - 1;
	}
	str_shorten(value, BOUND_VALUE_SHOWN, shown, sizeof(shown));
	return mutation_warn(c->m,
			     "%s: ServiceAccount \"%s/%s\" annotation \"%s\": "
			     "\"%s\" is not of a documented form (%s); used as "
			     "given",
			     p->name, c->in->sa->namespace, c->in->sa->name,
			     p->trigger_annotation, shown, names);
}

/* The trigger annotation and every required one: all errors are reported. */
static int check_identity(struct ctx *c)
{
	const struct profile *p = c->plan->p;
	int rc = 0;

	if (p->trigger_annotation)
		rc = check_annotation(c, p->trigger_annotation,
				      p->trigger_format, p->trigger_re,
				      p->trigger_pattern);
	for (size_t i = 0; rc == 0 && i < p->n_required; i++)
		rc = check_annotation(
			c, p->required[i].key, p->required[i].check.format,
			p->required[i].check.re, p->required[i].check.pattern);
	return rc;
}

static int apply_profile(struct ctx *c, const struct profile *p)
{
	struct plan *pl = c->plan;
	char why[sizeof(c->m->skip_reason)];
	size_t selected;
	int rc;

	if (!profile_matches(c, p)) {
		if (p->trigger_pod_label && sa_configured(c, p)) {
			snprintf(why, sizeof(why),
				 "pod label %s is not \"true\"",
				 p->trigger_pod_label);
			note_skip(c, p->name, why);
		}
		return 0;
	}
	c->n_matched++;
	if (skip_reason(c, p, why, sizeof(why))) {
		note_skip(c, p->name, why);
		return 0;
	}
	plan_release(pl);
	plan_reset(pl, p);
	strbuf_reset(&c->rendered);
	pl->trigger = p->trigger_annotation
			      ? sa_annotation(c->in->sa, p->trigger_annotation)
			      : NULL;
	/* Rule 9: a bad trigger does not stop the checks of the other
	 * annotations, so one message names all of the ServiceAccount's errors. */
	rc = compose_trigger(c);
	if (rc == 0)
		rc = check_identity(c);
	if (rc == 0 && !pl->denied)
		rc = advise_trigger(c);
	if (rc == 0)
		rc = plan_profile(c);
	if (rc == 0 && !pl->denied)
		rc = check_mount_dir(c);
	if (rc == 0 && !pl->denied)
		rc = check_volume(c);
	if (rc == 0 && !pl->denied)
		rc = check_file_volumes(c);
	if (rc != 0 || pl->denied)
		return rc;
	selected = select_containers(c, &rc);
	if (rc != 0 || pl->denied)
		return rc;
	if (selected == 0) {
		note_skip(c, p->name, "no container selected");
		return 0;
	}
	return c->denied ? 0 : emit_profile(c);
}

static void finish(struct ctx *c)
{
	struct mutation *m = c->m;

	if (c->denied) {
		m->allowed = false;
		m->outcome = MUTATE_DENIED;
		m->n_applied = 0;
		patch_free(&m->patch);
		return;
	}
	if (m->patch.n_ops > 0)
		m->outcome = MUTATE_PATCHED;
	else if (m->n_applied > 0)
		m->outcome = MUTATE_UNCHANGED;
	else if (c->n_skipped > 0)
		m->outcome = MUTATE_SKIPPED;
	else
		m->outcome = MUTATE_NO_MATCH;
}

/* A label of the raw pod, read without trusting its shape (or NULL). */
static const char *raw_label(const cJSON *pod, const char *key)
{
	const cJSON *metadata = NULL, *labels = NULL;

	if (json_member(pod, "metadata", cJSON_Object, &metadata) !=
		    JSON_FOUND ||
	    json_member(metadata, "labels", cJSON_Object, &labels) !=
		    JSON_FOUND)
		return NULL;
	return json_string(labels, key);
}

/*
 * Whether any profile might apply, before the pod is read whole: a pod that
 * no profile concerns is admitted without being checked.
 */
static bool any_trigger(const struct ctx *c)
{
	for (size_t i = 0; i < profile_set_count(c->set); i++) {
		const struct profile *p = profile_set_get(c->set, i);

		if (sa_configured(c, p) ||
		    (p->trigger_annotation == NULL &&
		     has_value(raw_label(c->in->pod, p->trigger_pod_label))))
			return true;
	}
	return false;
}

static int not_understood(struct ctx *c)
{
	struct mutation *m = c->m;

	m->outcome = MUTATE_NOT_UNDERSTOOD;
	if (strbuf_adds(&m->message, c->v.problem) == DIAG_ENOMEM)
		return DIAG_ENOMEM;
	return mutation_warn(
		m,
		"pod-identity-webhook could not read this pod (%s); it is "
		"admitted without workload identity",
		c->v.problem);
}

static int apply_all(struct ctx *c)
{
	struct plan
		plan; /* ~14 KB: the stack is cheaper than a malloc per request */
	int rc = 0;

	c->plan = &plan;
	strbuf_init(&c->path, BOUND_PATH * 2);
	strbuf_init(&c->value, BOUND_PATCH_BYTES);
	strbuf_init(&c->rendered, BOUND_PATCH_BYTES);
	plan_reset(&plan, NULL);
	for (size_t i = 0; rc == 0 && i < profile_set_count(c->set); i++)
		rc = apply_profile(c, profile_set_get(c->set, i));
	plan_release(&plan);
	if (rc == 0 && !c->denied && c->m->n_applied > 0)
		rc = emit_profiles_annotation(c);
	if (rc == 0)
		finish(c);
	strbuf_free(&c->path);
	strbuf_free(&c->value);
	strbuf_free(&c->rendered);
	c->plan = NULL;
	return rc;
}

int mutate_pod(const struct mutate_input *in,
	       const struct profile_set *profiles,
	       const struct settings *settings, struct mutation *m,
	       struct diag *d)
{
	struct ctx c = {
		.in = in, .set = profiles, .settings = settings, .m = m
	};
	int rc = 0;

	name_pod(&c);
	if (in->sa == NULL) {
		m->outcome = MUTATE_SA_NOT_FOUND;
		rc = mutation_warn(
			m,
			"ServiceAccount \"%s/%s\" not found: the pod is admitted "
			"without workload identity",
			c.v.namespace, c.v.sa_name);
	} else if (!any_trigger(&c)) {
		m->outcome = MUTATE_NO_MATCH;
	} else if (!read_pod(&c)) {
		rc = c.v.out_of_memory ? DIAG_ENOMEM : not_understood(&c);
	} else {
		rc = apply_all(&c);
	}
	mem_free(c.v.containers);
	mem_free(c.injected);
	for (size_t i = 0; i < c.n_mount_dirs; i++)
		mem_free(c.mount_dirs[i]);
	if (rc != 0)
		return diag_set(d, rc, "%s while deciding on the pod",
				diag_code_name(rc));
	return 0;
}

int mutate_check_pod(const cJSON *pod, struct diag *d)
{
	struct mutate_input in = { .pod = pod };
	struct ctx c = { .in = &in };
	int rc = 0;

	if (!read_pod(&c))
		rc = c.v.out_of_memory
			     ? diag_set(d, DIAG_ENOMEM, "out of memory")
			     : diag_set(d, DIAG_EPARSE,
					"not a Pod we can read: %s",
					c.v.problem);
	mem_free(c.v.containers);
	return rc;
}
