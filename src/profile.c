/*
 * profile: strict INI profile loader and the profile set.
 *
 * inih does the tokenising; this file adds what inih does not: line numbers
 * (our reader counts the lines it hands to inih, because Debian's inih is built
 * without INI_HANDLER_LINENO), section-header tracking (to refuse duplicate and
 * empty sections and point at them), refusal of over-long lines, continuation
 * lines and binary data, and a table of the fixed keys with their types. A
 * profile is built in a fresh struct and handed out only once every check has
 * passed: never half-loaded. Patterns are compiled and templates parsed here,
 * at load, so a request only matches and concatenates what was checked.
 */
#include "profile.h"

#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"
#include "settings.h"
#include "strutil.h"

#define EXPIRATION_FLOOR       600 /* the API server refuses shorter tokens */
#define EXPIRATION_CEILING     4294967295LL /* 2^32 - 1, the API server's bound */
#define EXPIRATION_MAX_DEFAULT 86400
#define LIST_SEPARATORS	       ","

/* ---- the fixed sections' keys, declared once ---- */

enum key_type {
	KT_PROFILE_NAME,
	KT_TEXT,
	KT_QNAME,
	KT_FORMAT,
	KT_SECONDS,
	KT_DNS_LABEL,
	KT_ABS_PATH,
	KT_FILE_NAME,
	KT_MODE,
	KT_DRIVE,
	KT_QNAME_LIST,
	KT_SKIP_MATCH,
	KT_REL_PATH,
	KT_FORMAT_LIST,
	KT_TEMPLATE,
};

struct key_spec {
	const char *section;
	const char *key;
	enum key_type type;
	size_t offset;
	bool required;
};

#define F(field) offsetof(struct profile, field)
static const struct key_spec fixed_keys[] = {
	{ "profile", "name", KT_PROFILE_NAME, F(name), true },
	{ "profile", "description", KT_TEXT, F(description), false },
	{ "trigger", "annotation", KT_QNAME, F(trigger_annotation), false },
	{ "trigger", "format", KT_FORMAT, F(trigger_format), false },
	{ "trigger", "pattern", KT_TEXT, F(trigger_pattern), false },
	{ "trigger", "expect", KT_FORMAT_LIST, F(trigger_expect), false },
	{ "trigger", "compose", KT_TEMPLATE, F(trigger_compose), false },
	{ "trigger", "compose-pattern", KT_TEXT, F(trigger_compose_pattern),
	  false },
	{ "trigger", "pod-label", KT_QNAME, F(trigger_pod_label), false },
	{ "token", "audience", KT_TEXT, F(audience), true },
	{ "token", "audience-annotation", KT_QNAME, F(audience_annotation),
	  false },
	{ "token", "expiration", KT_SECONDS, F(expiration), true },
	{ "token", "expiration-min", KT_SECONDS, F(expiration_min), false },
	{ "token", "expiration-max", KT_SECONDS, F(expiration_max), false },
	{ "token", "expiration-annotation", KT_QNAME, F(expiration_annotation),
	  false },
	{ "token", "pod-expiration-annotation", KT_QNAME,
	  F(pod_expiration_annotation), false },
	{ "volume", "name", KT_DNS_LABEL, F(volume_name), true },
	{ "volume", "mount-path", KT_ABS_PATH, F(mount_path), true },
	{ "volume", "file", KT_REL_PATH, F(token_file), true },
	{ "volume", "file-annotation", KT_QNAME, F(file_annotation), false },
	{ "volume", "default-mode", KT_MODE, F(default_mode), false },
	{ "volume", "windows-drive", KT_DRIVE, F(windows_drive), false },
	{ "containers", "skip-annotation", KT_QNAME,
	  F(skip_containers_annotation), false },
	{ "containers", "include-annotation", KT_QNAME,
	  F(include_containers_annotation), false },
	{ "skip", "match", KT_SKIP_MATCH, F(skip_match), false },
	{ "skip", "label-match", KT_SKIP_MATCH, F(skip_label_match), false },
	{ "skip", "pod-labels", KT_QNAME_LIST, F(skip_pod_labels), false },
	{ "skip", "pod-annotations", KT_QNAME_LIST, F(skip_pod_annotations),
	  false },
	{ "skip", "service-account-annotations", KT_QNAME_LIST,
	  F(skip_sa_annotations), false },
};
#undef F
#define N_FIXED_KEYS (sizeof(fixed_keys) / sizeof(fixed_keys[0]))

/*
 * Keys of [env NAME] and [setting NAME], indexes into the per-entry line
 * arrays.
 */
static const char *const env_keys[] = { "value",   "from",    "default",
					"when",	   "format",  "sanitize",
					"pattern", "extract", "group" };
enum {
	ENV_VALUE,
	ENV_FROM,
	ENV_DEFAULT,
	ENV_WHEN,
	ENV_FORMAT,
	ENV_SANITIZE,
	ENV_PATTERN,
	ENV_EXTRACT,
	ENV_GROUP,
	N_ENV_KEYS
};
static const char *const required_keys[] = { "format", "pattern" };
enum { REQ_FORMAT, REQ_PATTERN, N_REQUIRED_KEYS };
static const char *const file_keys[] = { "format",	 "annotation",
					 "volume",	 "mount-path",
					 "default-mode", "template" };
enum {
	FILE_FORMAT,
	FILE_ANNOTATION,
	FILE_VOLUME,
	FILE_MOUNT_PATH,
	FILE_MODE,
	FILE_TEMPLATE,
	N_FILE_KEYS
};
#define FILE_FIELD_PREFIX "json."
static const char *const setting_keys[] = { "format",  "default", "description",
					    "pattern", "flag",	  "env" };
enum {
	SET_FORMAT,
	SET_DEFAULT,
	SET_DESCRIPTION,
	SET_PATTERN,
	SET_FLAG,
	SET_ENV,
	N_SETTING_KEYS
};

/* ---- parse context ---- */

#define MAX_SECTIONS                                                           \
	(BOUND_PROFILE_ENV + BOUND_PROFILE_SETTINGS + BOUND_PROFILE_REQUIRED + \
	 BOUND_PROFILE_FILES + 8)

struct section_rec {
	char name[BOUND_PROFILE_LINE + 1];
	int line;
	int keys;
	int index; /* env or setting index, -1 before its first key */
};

struct parse_ctx {
	const char *text;
	size_t len, pos;
	int line; /* the line most recently handed to inih */
	const char *source;
	struct profile *p;
	struct diag *d;
	bool failed;
	struct section_rec sections[MAX_SECTIONS];
	size_t n_sections;
	int fixed_line[N_FIXED_KEYS];
	int env_line[BOUND_PROFILE_ENV][N_ENV_KEYS];
	int setting_line[BOUND_PROFILE_SETTINGS][N_SETTING_KEYS];
	int required_line[BOUND_PROFILE_REQUIRED][N_REQUIRED_KEYS];
	int file_line[BOUND_PROFILE_FILES][N_FILE_KEYS];
};

static int fail(struct parse_ctx *c, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parse_ctx *c, int line, const char *fmt, ...)
{
	char text[sizeof(c->d->text)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	c->failed = true;
	return diag_set_at(c->d, DIAG_ECONFIG, c->source, line, "%s", text);
}

static int out_of_memory(struct parse_ctx *c)
{
	c->failed = true;
	return diag_set(c->d, DIAG_ENOMEM, "out of memory");
}

/* ---- the line reader handed to inih ---- */

/* Records a "[name]" header seen on the current line. */
static void note_section(struct parse_ctx *c, const char *line, size_t len)
{
	const char *close = memchr(line, ']', len);
	size_t n;

	if (close == NULL)
		return; /* inih reports the missing ']' */
	n = (size_t)(close - line - 1);
	if (n >= sizeof(c->sections[0].name)) {
		fail(c, c->line, "section name longer than %zu characters",
		     sizeof(c->sections[0].name) - 1);
		return;
	}
	for (size_t i = 0; i < c->n_sections; i++) {
		if (strlen(c->sections[i].name) == n &&
		    memcmp(c->sections[i].name, line + 1, n) == 0) {
			fail(c, c->line,
			     "section [%.*s] appears twice (first at line %d)",
			     (int)n, line + 1, c->sections[i].line);
			return;
		}
	}
	if (c->n_sections == MAX_SECTIONS) {
		fail(c, c->line, "more than %d sections", MAX_SECTIONS);
		return;
	}
	memcpy(c->sections[c->n_sections].name, line + 1, n);
	c->sections[c->n_sections].name[n] = '\0';
	c->sections[c->n_sections].line = c->line;
	c->sections[c->n_sections].keys = 0;
	c->sections[c->n_sections].index = -1;
	c->n_sections++;
}

/* Refuses what inih would accept silently; records section headers. */
static void inspect_line(struct parse_ctx *c, const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && str_is_blank(line[i]))
		i++;
	if (i == len || line[i] == ';' || line[i] == '#')
		return;
	if (i > 0) {
		fail(c, c->line,
		     "indented line (continuation lines are not supported)");
		return;
	}
	if (line[0] == '[')
		note_section(c, line, len);
}

static char *read_line(char *out, int size, void *stream)
{
	struct parse_ctx *c = stream;
	const char *start = c->text + c->pos, *nl;
	size_t len, left = c->len - c->pos;

	if (c->failed || left == 0)
		return NULL;
	nl = memchr(start, '\n', left);
	len = nl ? (size_t)(nl - start) : left;
	c->pos += nl ? len + 1 : len;
	c->line++;
	if (len > 0 && start[len - 1] == '\r')
		len--;
	if (len > (size_t)size - 1 || len > BOUND_PROFILE_LINE) {
		fail(c, c->line, "line longer than %d bytes",
		     BOUND_PROFILE_LINE);
		return NULL;
	}
	inspect_line(c, start, len);
	if (c->failed)
		return NULL;
	memcpy(out, start, len);
	out[len] = '\0';
	return out;
}

/* ---- values ---- */

static int copy_value(struct parse_ctx *c, char **field, const char *value)
{
	*field = mem_strdup(value);
	return *field ? 0 : out_of_memory(c);
}

static int parse_list(struct parse_ctx *c, struct profile_list *list,
		      const char *key, const char *value)
{
	const char *cursor = value, *item;
	size_t len;

	list->items = mem_calloc(BOUND_PROFILE_LIST, sizeof(char *));
	if (list->items == NULL)
		return out_of_memory(c);
	while (str_list_next(&cursor, LIST_SEPARATORS, &item, &len)) {
		if (list->n == BOUND_PROFILE_LIST)
			return fail(c, c->line, "'%s' has more than %d items",
				    key, BOUND_PROFILE_LIST);
		list->items[list->n] = mem_strndup(item, len);
		if (list->items[list->n] == NULL)
			return out_of_memory(c);
		if (!validate_qualified_name(list->items[list->n++]))
			return fail(
				c, c->line,
				"'%s': '%.*s' is not a valid label or annotation key",
				key, (int)len, item);
	}
	return 0;
}

/* A comma-separated list of format names, at least one. */
static int parse_formats(struct parse_ctx *c, struct profile_formats *list,
			 const char *key, const char *value)
{
	const char *cursor = value, *item;
	size_t len;
	char name[32];

	while (str_list_next(&cursor, LIST_SEPARATORS, &item, &len)) {
		const size_t max = sizeof(list->items) / sizeof(list->items[0]);

		if (list->n == max)
			return fail(c, c->line, "'%s': at most %zu formats",
				    key, max);
		snprintf(name, sizeof(name), "%.*s", (int)len, item);
		if (len >= sizeof(name) ||
		    validate_format_parse(name, &list->items[list->n]) != 0)
			return fail(c, c->line, "'%s': unknown format '%.*s'",
				    key, (int)len, item);
		list->n++;
	}
	if (list->n == 0)
		return fail(c, c->line, "'%s': empty list", key);
	return 0;
}

static int parse_seconds(struct parse_ctx *c, const char *key,
			 const char *value, int64_t *out)
{
	if (str_to_i64(value, 1, EXPIRATION_CEILING, out) != 0)
		return fail(c, c->line,
			    "'%s' must be a whole number of seconds, 1-%lld",
			    key, EXPIRATION_CEILING);
	return 0;
}

static int parse_template(struct parse_ctx *c, struct profile_template *t,
			  const char *value);

static int parse_fixed_value(struct parse_ctx *c, const struct key_spec *k,
			     const char *value)
{
	void *field = (char *)c->p + k->offset;

	switch (k->type) {
	case KT_PROFILE_NAME:
		if (!validate_simple_name(value, BOUND_PROFILE_NAME))
			return fail(
				c, c->line,
				"profile name must be [a-z0-9-], 1-%d characters",
				BOUND_PROFILE_NAME);
		return copy_value(c, field, value);
	case KT_TEXT:
		return copy_value(c, field, value);
	case KT_QNAME:
		if (!validate_qualified_name(value))
			return fail(
				c, c->line,
				"'%s': '%s' is not a valid label or annotation key",
				k->key, value);
		return copy_value(c, field, value);
	case KT_FORMAT:
		if (validate_format_parse(value, field) != 0)
			return fail(
				c, c->line,
				"'%s': unknown format '%s' (email, arn, uuid, https-url, "
				"integer, boolean, region, any)",
				k->key, value);
		return 0;
	case KT_SECONDS:
		return parse_seconds(c, k->key, value, field);
	case KT_DNS_LABEL:
		if (!validate_dns_label(value))
			return fail(
				c, c->line,
				"'%s': '%s' is not a DNS label ([a-z0-9-], 1-63)",
				k->key, value);
		return copy_value(c, field, value);
	case KT_ABS_PATH:
		if (!validate_abs_path(value))
			return fail(
				c, c->line,
				"'%s': '%s' is not a normalised absolute path",
				k->key, value);
		return copy_value(c, field, value);
	case KT_FILE_NAME:
		if (!validate_file_name(value))
			return fail(c, c->line, "'%s': '%s' is not a file name",
				    k->key, value);
		return copy_value(c, field, value);
	case KT_REL_PATH:
		if (!validate_rel_path(value))
			return fail(c, c->line,
				    "'%s': '%s' is not a relative path of file "
				    "names (such as token or dir/token)",
				    k->key, value);
		return copy_value(c, field, value);
	case KT_MODE:
		if (str_to_mode(value, field) != 0)
			return fail(c, c->line,
				    "'%s': '%s' is not an octal mode 0000-0777",
				    k->key, value);
		return 0;
	case KT_DRIVE:
		if (strlen(value) != 2 || value[1] != ':' ||
		    !((value[0] >= 'A' && value[0] <= 'Z') ||
		      (value[0] >= 'a' && value[0] <= 'z')))
			return fail(c, c->line,
				    "'%s': '%s' is not a drive such as C:",
				    k->key, value);
		return copy_value(c, field, value);
	case KT_QNAME_LIST:
		return parse_list(c, field, k->key, value);
	case KT_FORMAT_LIST:
		return parse_formats(c, field, k->key, value);
	case KT_TEMPLATE:
		return parse_template(c, field, value);
	case KT_SKIP_MATCH:
		if (strcmp(value, "true") == 0)
			*(enum skip_match *)field = SKIP_MATCH_TRUE;
		else if (strcmp(value, "present") == 0)
			*(enum skip_match *)field = SKIP_MATCH_PRESENT;
		else
			return fail(c, c->line,
				    "'%s' must be 'true' or 'present'", k->key);
		return 0;
	}
	return fail(c, c->line, "internal error: unhandled key type");
}

static int handle_fixed_key(struct parse_ctx *c, const struct section_rec *rec,
			    const char *section, const char *key,
			    const char *value)
{
	bool known_section = false;

	for (size_t i = 0; i < N_FIXED_KEYS; i++) {
		const struct key_spec *k = &fixed_keys[i];

		if (strcmp(k->section, section) != 0)
			continue;
		known_section = true;
		if (strcmp(k->key, key) != 0)
			continue;
		if (c->fixed_line[i])
			return fail(
				c, c->line,
				"key '%s' given twice in [%s] (first at line %d)",
				key, section, c->fixed_line[i]);
		c->fixed_line[i] = c->line;
		return parse_fixed_value(c, k, value);
	}
	if (!known_section)
		return fail(c, rec->line, "unknown section [%s]", section);
	return fail(c, c->line, "unknown key '%s' in section [%s]", key,
		    section);
}

/* Keeps the expression as written and its compiled form. */
static int compile_pattern(struct parse_ctx *c, const char *value,
			   bool anchored, char **ret_text,
			   struct validate_pattern **ret_re)
{
	char why[128];
	int rc;

	rc = validate_pattern_compile(value, anchored, ret_re, why,
				      sizeof(why));
	if (rc == DIAG_ENOMEM)
		return out_of_memory(c);
	if (rc != 0)
		return fail(c, c->line,
			    "'%s' is not a POSIX extended regular expression: "
			    "%s",
			    value, why);
	return copy_value(c, ret_text, value);
}

/* ---- source chains ---- */

static const struct {
	const char *name;
	enum source_kind kind;
	bool has_arg;
} source_names[] = {
	{ "trigger", SOURCE_TRIGGER, false },
	{ "token-path", SOURCE_TOKEN_PATH, false },
	{ "mount-path", SOURCE_MOUNT_PATH, false },
	{ "audience", SOURCE_AUDIENCE, false },
	{ "expiration", SOURCE_EXPIRATION, false },
	{ "service-account-annotation", SOURCE_SA_ANNOTATION, true },
	{ "pod-annotation", SOURCE_POD_ANNOTATION, true },
	{ "setting", SOURCE_SETTING, true },
	{ "pod-name", SOURCE_POD_NAME, false },
	{ "namespace", SOURCE_NAMESPACE, false },
	{ "service-account-name", SOURCE_SA_NAME, false },
	{ "env", SOURCE_ENV, true },
};

const char *profile_source_name(enum source_kind kind)
{
	for (size_t i = 0; i < sizeof(source_names) / sizeof(source_names[0]);
	     i++) {
		if (source_names[i].kind == kind)
			return source_names[i].name;
	}
	return "?";
}

static int parse_source(struct parse_ctx *c, const char *item, size_t len,
			struct profile_source *out)
{
	const char *colon = memchr(item, ':', len);
	size_t name_len = colon ? (size_t)(colon - item) : len;

	for (size_t i = 0; i < sizeof(source_names) / sizeof(source_names[0]);
	     i++) {
		if (strlen(source_names[i].name) != name_len ||
		    memcmp(source_names[i].name, item, name_len) != 0)
			continue;
		if (source_names[i].has_arg != (colon != NULL))
			return fail(c, c->line, "source '%.*s' %s", (int)len,
				    item,
				    colon ? "takes no argument"
					  : "needs ':' and an argument");
		out->kind = source_names[i].kind;
		if (!colon)
			return 0;
		out->arg = mem_strndup(colon + 1, len - name_len - 1);
		if (out->arg == NULL)
			return out_of_memory(c);
		if (out->kind == SOURCE_SETTING
			    ? !validate_simple_name(out->arg, 63)
		    : out->kind == SOURCE_ENV
			    ? !validate_env_name(out->arg)
			    : !validate_qualified_name(out->arg))
			return fail(c, c->line, "source '%.*s': bad %s name",
				    (int)len, item,
				    out->kind == SOURCE_SETTING ? "setting"
				    : out->kind == SOURCE_ENV	? "variable"
								: "annotation");
		return 0;
	}
	return fail(c, c->line, "unknown source '%.*s'", (int)len, item);
}

static int parse_chain(struct parse_ctx *c, struct profile_chain *chain,
		       const char *value)
{
	const char *cursor = value, *item;
	size_t len;
	int rc;

	while (str_list_next(&cursor, LIST_SEPARATORS, &item, &len)) {
		if (chain->n == BOUND_SOURCES)
			return fail(c, c->line, "more than %d sources",
				    BOUND_SOURCES);
		rc = parse_source(c, item, len, &chain->items[chain->n++]);
		if (rc != 0)
			return rc;
	}
	if (chain->n == 0)
		return fail(c, c->line, "empty source list");
	return 0;
}

/* ---- [env NAME] and [setting NAME] ---- */

static int key_index(const char *const *keys, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i], key) == 0)
			return (int)i;
	}
	return -1;
}

static int new_env(struct parse_ctx *c, struct section_rec *rec,
		   const char *name)
{
	struct profile *p = c->p;
	struct profile_env *grown;

	if (!validate_env_name(name))
		return fail(c, rec->line,
			    "[env %s]: not a variable name "
			    "([-._a-zA-Z][-._a-zA-Z0-9]*, at most 128)",
			    name);
	if (p->n_env == BOUND_PROFILE_ENV)
		return fail(c, rec->line, "more than %d env sections",
			    BOUND_PROFILE_ENV);
	grown = mem_realloc(p->env, (p->n_env + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	p->env = grown;
	memset(&p->env[p->n_env], 0, sizeof(*grown));
	p->env[p->n_env].line = rec->line;
	rec->index = (int)p->n_env++;
	p->env_firsts[(unsigned char)name[0] >> 6] |=
		1ull << ((unsigned char)name[0] & 63);
	return copy_value(c, &p->env[rec->index].name, name);
}

static int parse_sanitize(struct parse_ctx *c, const char *value,
			  enum sanitize_kind *out)
{
	if (strcmp(value, "none") == 0)
		*out = SANITIZE_NONE;
	else if (strcmp(value, "sts-session-name") == 0)
		*out = SANITIZE_STS_SESSION_NAME;
	else
		return fail(c, c->line,
			    "'sanitize' must be 'none' or 'sts-session-name'");
	return 0;
}

static int handle_env_key(struct parse_ctx *c, struct section_rec *rec,
			  const char *name, const char *key, const char *value)
{
	struct profile_env *e;
	int k = key_index(env_keys, N_ENV_KEYS, key);
	int rc;

	if (k < 0)
		return fail(c, c->line, "unknown key '%s' in section [env %s]",
			    key, name);
	if (rec->index < 0 && (rc = new_env(c, rec, name)) != 0)
		return rc;
	if (c->env_line[rec->index][k])
		return fail(
			c, c->line,
			"key '%s' given twice in [env %s] (first at line %d)",
			key, name, c->env_line[rec->index][k]);
	c->env_line[rec->index][k] = c->line;
	e = &c->p->env[rec->index];
	switch (k) {
	case ENV_VALUE:
		return copy_value(c, &e->value, value);
	case ENV_FROM:
		return parse_chain(c, &e->from, value);
	case ENV_DEFAULT:
		return copy_value(c, &e->default_value, value);
	case ENV_WHEN:
		return parse_chain(c, &e->when, value);
	case ENV_FORMAT:
		if (validate_format_parse(value, &e->format) != 0)
			return fail(c, c->line, "'format': unknown format '%s'",
				    value);
		return 0;
	case ENV_PATTERN:
		return compile_pattern(c, value, true, &e->pattern, &e->re);
	case ENV_EXTRACT:
		return compile_pattern(c, value, false, &e->extract,
				       &e->extract_re);
	case ENV_GROUP:
		if (!validate_simple_name(value, 63))
			return fail(c, c->line,
				    "'group' must be [a-z0-9-], 1-63");
		return copy_value(c, &e->group, value);
	default:
		return parse_sanitize(c, value, &e->sanitize);
	}
}

static int new_setting(struct parse_ctx *c, struct section_rec *rec,
		       const char *name)
{
	struct profile *p = c->p;
	struct profile_setting *grown;

	if (!validate_simple_name(name, 63))
		return fail(c, rec->line,
			    "[setting %s]: name must be [a-z0-9-], 1-63", name);
	if (p->n_settings == BOUND_PROFILE_SETTINGS)
		return fail(c, rec->line, "more than %d settings",
			    BOUND_PROFILE_SETTINGS);
	grown = mem_realloc(p->settings, (p->n_settings + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	p->settings = grown;
	memset(&p->settings[p->n_settings], 0, sizeof(*grown));
	p->settings[p->n_settings].line = rec->line;
	rec->index = (int)p->n_settings++;
	return copy_value(c, &p->settings[rec->index].name, name);
}

static int handle_setting_key(struct parse_ctx *c, struct section_rec *rec,
			      const char *name, const char *key,
			      const char *value)
{
	struct profile_setting *s;
	int k = key_index(setting_keys, N_SETTING_KEYS, key);
	int rc;

	if (k < 0)
		return fail(c, c->line,
			    "unknown key '%s' in section [setting %s]", key,
			    name);
	if (rec->index < 0 && (rc = new_setting(c, rec, name)) != 0)
		return rc;
	if (c->setting_line[rec->index][k])
		return fail(
			c, c->line,
			"key '%s' given twice in [setting %s] (first at line %d)",
			key, name, c->setting_line[rec->index][k]);
	c->setting_line[rec->index][k] = c->line;
	s = &c->p->settings[rec->index];
	if (k == SET_PATTERN)
		return compile_pattern(c, value, true, &s->pattern, &s->re);
	if (k == SET_FORMAT) {
		if (validate_format_parse(value, &s->format) != 0)
			return fail(c, c->line, "'format': unknown format '%s'",
				    value);
		return 0;
	}
	if (k == SET_FLAG) {
		if (value[0] == '-' || !validate_simple_name(value, 63))
			return fail(c, c->line,
				    "'flag': '%s' is not [a-z0-9-], 1-63 (the "
				    "option without its leading --)",
				    value);
		return copy_value(c, &s->flag, value);
	}
	if (k == SET_ENV) {
		if (!validate_env_name(value))
			return fail(c, c->line,
				    "'env': '%s' is not an environment "
				    "variable name",
				    value);
		return copy_value(c, &s->env, value);
	}
	return copy_value(
		c, k == SET_DEFAULT ? &s->default_value : &s->description,
		value);
}

/* ---- [required-annotation KEY] ---- */

static int new_required(struct parse_ctx *c, struct section_rec *rec,
			const char *key)
{
	struct profile *p = c->p;
	struct profile_required *grown;

	if (!validate_qualified_name(key))
		return fail(c, rec->line,
			    "[required-annotation %s]: not a valid annotation "
			    "key",
			    key);
	if (p->n_required == BOUND_PROFILE_REQUIRED)
		return fail(c, rec->line,
			    "more than %d required-annotation sections",
			    BOUND_PROFILE_REQUIRED);
	grown = mem_realloc(p->required, (p->n_required + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	p->required = grown;
	memset(&p->required[p->n_required], 0, sizeof(*grown));
	p->required[p->n_required].line = rec->line;
	rec->index = (int)p->n_required++;
	return copy_value(c, &p->required[rec->index].key, key);
}

static int handle_required_key(struct parse_ctx *c, struct section_rec *rec,
			       const char *name, const char *key,
			       const char *value)
{
	struct profile_required *r;
	int k = key_index(required_keys, N_REQUIRED_KEYS, key);
	int rc;

	if (k < 0)
		return fail(c, c->line,
			    "unknown key '%s' in section [required-annotation "
			    "%s]",
			    key, name);
	if (rec->index < 0 && (rc = new_required(c, rec, name)) != 0)
		return rc;
	if (c->required_line[rec->index][k])
		return fail(c, c->line,
			    "key '%s' given twice in [required-annotation %s] "
			    "(first at line %d)",
			    key, name, c->required_line[rec->index][k]);
	c->required_line[rec->index][k] = c->line;
	r = &c->p->required[rec->index];
	if (k == REQ_PATTERN)
		return compile_pattern(c, value, true, &r->check.pattern,
				       &r->check.re);
	if (validate_format_parse(value, &r->check.format) != 0)
		return fail(c, c->line, "'format': unknown format '%s'", value);
	return 0;
}

/* ---- templates: literal text and ${source} placeholders ---- */

static int template_add(struct parse_ctx *c, struct profile_template *t,
			struct profile_template_part **ret)
{
	struct profile_template_part *grown;

	*ret = NULL;
	if (t->n == BOUND_TEMPLATE_PARTS)
		return fail(c, c->line, "template has more than %d parts",
			    BOUND_TEMPLATE_PARTS);
	grown = mem_realloc(t->parts, (t->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	t->parts = grown;
	*ret = &t->parts[t->n++];
	memset(*ret, 0, sizeof(**ret));
	return 0;
}

/* Appends the literal text[0..len) with "$$" already folded by the caller. */
static int template_literal(struct parse_ctx *c, struct profile_template *t,
			    const char *text, size_t len)
{
	struct profile_template_part *part = NULL;
	int rc;

	if (len == 0)
		return 0;
	rc = template_add(c, t, &part);
	if (rc != 0)
		return rc;
	part->text = mem_strndup(text, len);
	return part->text ? 0 : out_of_memory(c);
}

/*
 * Parses "literal ${source} literal": "$$" is a literal '$'; every other '$'
 * opens a placeholder that must close with '}'. Literal runs are folded into
 * a scratch copy so each part is one allocation.
 */
static int parse_template(struct parse_ctx *c, struct profile_template *t,
			  const char *value)
{
	size_t n = strlen(value), run = 0;
	char *scratch = mem_alloc(n + 1);
	int rc = scratch ? 0 : out_of_memory(c);

	for (size_t i = 0; rc == 0 && i < n; i++) {
		const char *close;
		struct profile_template_part *part = NULL;

		if (value[i] != '$') {
			scratch[run++] = value[i];
			continue;
		}
		if (value[i + 1] == '$') {
			scratch[run++] = '$';
			i++;
			continue;
		}
		close = value[i + 1] == '{' ? strchr(value + i, '}') : NULL;
		if (close == NULL) {
			rc = fail(c, c->line,
				  "template: '$' at column %zu must start "
				  "${source} (write $$ for a '$')",
				  i + 1);
			break;
		}
		rc = template_literal(c, t, scratch, run);
		run = 0;
		if (rc == 0)
			rc = template_add(c, t, &part);
		if (rc == 0)
			rc = parse_source(c, value + i + 2,
					  (size_t)(close - value - i - 2),
					  &part->source);
		i = (size_t)(close - value);
	}
	if (rc == 0)
		rc = template_literal(c, t, scratch, run);
	mem_free(scratch);
	return rc;
}

/* ---- [file NAME] ---- */

static int new_file(struct parse_ctx *c, struct section_rec *rec,
		    const char *name)
{
	struct profile *p = c->p;
	struct profile_file *grown;

	if (!validate_file_name(name))
		return fail(c, rec->line, "[file %s]: not a file name", name);
	if (p->n_files == BOUND_PROFILE_FILES)
		return fail(c, rec->line, "more than %d file sections",
			    BOUND_PROFILE_FILES);
	grown = mem_realloc(p->files, (p->n_files + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	p->files = grown;
	memset(&p->files[p->n_files], 0, sizeof(*grown));
	p->files[p->n_files].line = rec->line;
	p->files[p->n_files].default_mode = -1;
	rec->index = (int)p->n_files++;
	return copy_value(c, &p->files[rec->index].name, name);
}

static int add_field(struct parse_ctx *c, struct profile_file *f,
		     const char *path, const char *value)
{
	struct profile_field *grown;
	const char *seg = path;

	for (;;) {
		size_t len = strcspn(seg, ".");

		if (len == 0)
			return fail(c, c->line,
				    "'json.%s': empty member name in the path",
				    path);
		if (seg[len] == '\0')
			break;
		seg += len + 1;
	}
	for (size_t i = 0; i < f->n_fields; i++) {
		size_t n = strlen(f->fields[i].path), m = strlen(path);
		const char *shorter = n < m ? f->fields[i].path : path;
		const char *longer = n < m ? path : f->fields[i].path;
		size_t k = n < m ? n : m;

		if (strcmp(f->fields[i].path, path) == 0 ||
		    (strncmp(shorter, longer, k) == 0 && longer[k] == '.'))
			return fail(c, c->line,
				    "'json.%s' collides with 'json.%s' (line "
				    "%d): a member is a string or an object",
				    path, f->fields[i].path, f->fields[i].line);
	}
	if (f->n_fields == BOUND_FILE_FIELDS)
		return fail(c, c->line, "more than %d json members",
			    BOUND_FILE_FIELDS);
	grown = mem_realloc(f->fields, (f->n_fields + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	f->fields = grown;
	memset(&f->fields[f->n_fields], 0, sizeof(*grown));
	f->fields[f->n_fields].line = c->line;
	f->n_fields++;
	f->fields[f->n_fields - 1].path = mem_strdup(path);
	if (f->fields[f->n_fields - 1].path == NULL)
		return out_of_memory(c);
	return parse_template(c, &f->fields[f->n_fields - 1].value, value);
}

static int set_file_key(struct parse_ctx *c, struct profile_file *f, int k,
			const char *value)
{
	switch (k) {
	case FILE_FORMAT:
		if (strcmp(value, "json") != 0 && strcmp(value, "text") != 0)
			return fail(c, c->line,
				    "'format' must be 'json' or 'text'");
		f->json = strcmp(value, "json") == 0;
		return 0;
	case FILE_ANNOTATION:
		if (!validate_qualified_name(value))
			return fail(c, c->line,
				    "'annotation': '%s' is not a valid "
				    "annotation key",
				    value);
		return copy_value(c, &f->annotation, value);
	case FILE_VOLUME:
		if (!validate_dns_label(value))
			return fail(c, c->line,
				    "'volume': '%s' is not a DNS label "
				    "([a-z0-9-], 1-63)",
				    value);
		return copy_value(c, &f->volume_name, value);
	case FILE_MOUNT_PATH:
		if (!validate_abs_path(value))
			return fail(c, c->line,
				    "'mount-path': '%s' is not a normalised "
				    "absolute path",
				    value);
		return copy_value(c, &f->mount_path, value);
	case FILE_MODE:
		if (str_to_mode(value, &f->default_mode) != 0)
			return fail(c, c->line,
				    "'default-mode': '%s' is not an octal mode "
				    "0000-0777",
				    value);
		return 0;
	default:
		return parse_template(c, &f->text, value);
	}
}

static int handle_file_key(struct parse_ctx *c, struct section_rec *rec,
			   const char *name, const char *key, const char *value)
{
	int k = key_index(file_keys, N_FILE_KEYS, key);
	int rc;

	if (k < 0 && !str_has_prefix(key, FILE_FIELD_PREFIX))
		return fail(c, c->line, "unknown key '%s' in section [file %s]",
			    key, name);
	if (rec->index < 0 && (rc = new_file(c, rec, name)) != 0)
		return rc;
	if (k < 0)
		return add_field(c, &c->p->files[rec->index],
				 key + strlen(FILE_FIELD_PREFIX), value);
	if (c->file_line[rec->index][k])
		return fail(
			c, c->line,
			"key '%s' given twice in [file %s] (first at line %d)",
			key, name, c->file_line[rec->index][k]);
	c->file_line[rec->index][k] = c->line;
	return set_file_key(c, &c->p->files[rec->index], k, value);
}

static bool is_member_name(const char *s)
{
	size_t n =
		strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789_");

	return n > 0 && n <= 63 && s[n] == '\0';
}

/* [identity-map-json]: FIELD = ANNOTATION (a JSON member name: letters, digits
 * and '_'). */
static int handle_map_key(struct parse_ctx *c, const char *key,
			  const char *value)
{
	struct profile *p = c->p;
	struct profile_map_field *grown, *f;

	if (!is_member_name(key))
		return fail(c, c->line,
			    "'%s' is not a JSON member name ([A-Za-z0-9_])",
			    key);
	if (!validate_qualified_name(value))
		return fail(c, c->line, "'%s' is not an annotation name",
			    value);
	for (size_t i = 0; i < p->n_map_fields; i++) {
		if (strcmp(p->map_fields[i].field, key) == 0)
			return fail(c, c->line,
				    "key '%s' given twice in "
				    "[identity-map-json]",
				    key);
	}
	if (p->n_map_fields == BOUND_MAP_FIELDS)
		return fail(c, c->line,
			    "more than %d keys in [identity-map-json]",
			    BOUND_MAP_FIELDS);
	grown = mem_realloc(p->map_fields,
			    (p->n_map_fields + 1) * sizeof(*grown));
	if (grown == NULL)
		return out_of_memory(c);
	p->map_fields = grown;
	f = &grown[p->n_map_fields];
	f->field = mem_strdup(key);
	f->annotation = mem_strdup(value);
	p->n_map_fields++;
	return f->field && f->annotation ? 0 : out_of_memory(c);
}

/*
 * inih's handler: returns 1 to go on, 0 on error (inih then reports its line).
 */
static int on_key(void *user, const char *section, const char *key,
		  const char *value)
{
	struct parse_ctx *c = user;
	struct section_rec *rec;
	int rc;

	if (c->failed)
		return 0;
	if (c->n_sections == 0 || section[0] == '\0') {
		fail(c, c->line, "key '%s' outside of any [section]", key);
		return 0;
	}
	rec = &c->sections[c->n_sections - 1];
	rec->keys++;
	if (value[0] == '\0') {
		fail(c, c->line, "key '%s' has no value", key);
		return 0;
	}
	/* inih cuts section names at 50 bytes; our record has the whole one. */
	section = rec->name;
	if (str_has_prefix(section, "env "))
		rc = handle_env_key(c, rec, section + 4, key, value);
	else if (str_has_prefix(section, "setting "))
		rc = handle_setting_key(c, rec, section + 8, key, value);
	else if (str_has_prefix(section, "required-annotation "))
		rc = handle_required_key(c, rec, section + 20, key, value);
	else if (str_has_prefix(section, "file "))
		rc = handle_file_key(c, rec, section + 5, key, value);
	else if (strcmp(section, "identity-map-json") == 0)
		rc = handle_map_key(c, key, value);
	else
		rc = handle_fixed_key(c, rec, section, key, value);
	return rc == 0;
}

/* ---- checks once the whole file is read ---- */

static int section_line(const struct parse_ctx *c, const char *name)
{
	for (size_t i = 0; i < c->n_sections; i++) {
		if (strcmp(c->sections[i].name, name) == 0)
			return c->sections[i].line;
	}
	return 0;
}

static int check_required(struct parse_ctx *c)
{
	for (size_t i = 0; i < N_FIXED_KEYS; i++) {
		const struct key_spec *k = &fixed_keys[i];
		int line;

		if (!k->required || c->fixed_line[i])
			continue;
		line = section_line(c, k->section);
		if (line == 0)
			return fail(c, 1,
				    "missing section [%s] (it needs '%s')",
				    k->section, k->key);
		return fail(c, line, "section [%s] lacks the required key '%s'",
			    k->section, k->key);
	}
	for (size_t i = 0; i < c->n_sections; i++) {
		if (c->sections[i].keys == 0)
			return fail(c, c->sections[i].line,
				    "section [%s] is empty",
				    c->sections[i].name);
	}
	return 0;
}

static int fixed_key_line(const struct parse_ctx *c, const char *section,
			  const char *key)
{
	for (size_t i = 0; i < N_FIXED_KEYS; i++) {
		if (strcmp(fixed_keys[i].section, section) == 0 &&
		    strcmp(fixed_keys[i].key, key) == 0)
			return c->fixed_line[i];
	}
	return 0;
}

static int check_expiration(struct parse_ctx *c)
{
	struct profile *p = c->p;
	int line = fixed_key_line(c, "token", "expiration");

	if (!fixed_key_line(c, "token", "expiration-min"))
		p->expiration_min = EXPIRATION_FLOOR;
	if (!fixed_key_line(c, "token", "expiration-max"))
		p->expiration_max = EXPIRATION_MAX_DEFAULT;
	if (p->expiration_min < EXPIRATION_FLOOR)
		return fail(
			c, fixed_key_line(c, "token", "expiration-min"),
			"'expiration-min' must be at least %d (the API server refuses less)",
			EXPIRATION_FLOOR);
	if (p->expiration_max < p->expiration_min)
		return fail(
			c, fixed_key_line(c, "token", "expiration-max"),
			"'expiration-max' (%lld) is below 'expiration-min' (%lld)",
			(long long)p->expiration_max,
			(long long)p->expiration_min);
	if (p->expiration < p->expiration_min ||
	    p->expiration > p->expiration_max)
		return fail(
			c, line, "'expiration' (%lld) is outside [%lld, %lld]",
			(long long)p->expiration, (long long)p->expiration_min,
			(long long)p->expiration_max);
	return 0;
}

static int check_chain_settings(struct parse_ctx *c,
				const struct profile_env *e,
				const struct profile_chain *chain, bool is_when)
{
	for (size_t i = 0; i < chain->n; i++) {
		const struct profile_source *s = &chain->items[i];
		const struct profile_setting *decl;

		if (is_when && s->kind != SOURCE_SA_ANNOTATION &&
		    s->kind != SOURCE_POD_ANNOTATION &&
		    s->kind != SOURCE_SETTING)
			return fail(
				c, e->line,
				"[env %s]: 'when' takes only annotation and "
				"setting sources",
				e->name);
		if (s->kind != SOURCE_SETTING)
			continue;
		decl = profile_find_setting(c->p, s->arg);
		if (decl == NULL)
			return fail(c, e->line,
				    "[env %s]: setting '%s' is not declared "
				    "(add a [setting %s] section)",
				    e->name, s->arg, s->arg);
		if (is_when && decl->format != FORMAT_BOOLEAN)
			return fail(
				c, e->line,
				"[env %s]: 'when' needs setting '%s' to have "
				"format boolean",
				e->name, s->arg);
		if (!is_when && decl->default_value &&
		    e->format != FORMAT_ANY &&
		    !validate_value(e->format, decl->default_value))
			return fail(
				c, e->line,
				"[env %s]: the default of setting '%s' is not %s",
				e->name, s->arg,
				validate_format_expectation(e->format));
	}
	return 0;
}

/* The index of [env name], or -1. */
static int env_index(const struct profile *p, const char *name)
{
	for (size_t i = 0; i < p->n_env; i++) {
		if (strcmp(p->env[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

/*
 * Checks what a source refers to: the trigger annotation exists, a setting is
 * declared, an `env:` names a variable among the first `env_limit` ones.
 */
static int check_source(struct parse_ctx *c, int line, const char *where,
			const struct profile_source *s, size_t env_limit)
{
	int i;

	switch (s->kind) {
	case SOURCE_TRIGGER:
		if (c->p->trigger_annotation == NULL)
			return fail(c, line,
				    "%s: source 'trigger' needs [trigger] "
				    "annotation",
				    where);
		return 0;
	case SOURCE_SETTING:
		if (profile_find_setting(c->p, s->arg) == NULL)
			return fail(c, line,
				    "%s: setting '%s' is not declared (add a "
				    "[setting %s] section)",
				    where, s->arg, s->arg);
		return 0;
	case SOURCE_ENV:
		i = env_index(c->p, s->arg);
		if (i < 0 || (size_t)i >= env_limit)
			return fail(c, line,
				    "%s: 'env:%s' must name an [env] section "
				    "declared before it",
				    where, s->arg);
		return 0;
	default:
		return 0;
	}
}

static int check_template(struct parse_ctx *c, int line, const char *where,
			  const struct profile_template *t)
{
	for (size_t i = 0; i < t->n; i++) {
		if (t->parts[i].text == NULL &&
		    check_source(c, line, where, &t->parts[i].source,
				 c->p->n_env) != 0)
			return DIAG_ECONFIG;
	}
	return 0;
}

static int check_env(struct parse_ctx *c, const struct profile_env *e)
{
	char where[200];
	size_t self = (size_t)(e - c->p->env);

	snprintf(where, sizeof(where), "[env %s]", e->name);
	for (size_t i = 0; i < e->from.n; i++) {
		if (check_source(c, e->line, where, &e->from.items[i], self) !=
		    0)
			return DIAG_ECONFIG;
	}
	if (e->extract && e->from.n == 0)
		return fail(c, e->line, "[env %s]: 'extract' goes with 'from'",
			    e->name);
	if (e->re && e->value && !validate_pattern_match(e->re, e->value))
		return fail(c, e->line,
			    "[env %s]: value does not match its pattern",
			    e->name);
	if (e->re && e->default_value &&
	    !validate_pattern_match(e->re, e->default_value))
		return fail(c, e->line,
			    "[env %s]: default does not match its pattern",
			    e->name);
	if ((e->value != NULL) == (e->from.n > 0))
		return fail(c, e->line,
			    "[env %s] needs exactly one of 'value' and 'from'",
			    e->name);
	if (e->value && (e->default_value || e->sanitize != SANITIZE_NONE))
		return fail(c, e->line,
			    "[env %s]: 'default' and 'sanitize' go with 'from'",
			    e->name);
	if (e->value && !validate_value(e->format, e->value))
		return fail(c, e->line, "[env %s]: value is not %s", e->name,
			    validate_format_expectation(e->format));
	if (e->default_value && !validate_value(e->format, e->default_value))
		return fail(c, e->line, "[env %s]: default is not %s", e->name,
			    validate_format_expectation(e->format));
	for (size_t i = 0; i < c->p->n_env; i++) {
		if (&c->p->env[i] != e &&
		    strcmp(c->p->env[i].name, e->name) == 0)
			return fail(c, e->line, "[env %s] is declared twice",
				    e->name);
	}
	if (check_chain_settings(c, e, &e->from, false) != 0)
		return DIAG_ECONFIG;
	return check_chain_settings(c, e, &e->when, true);
}

static int check_settings_decl(struct parse_ctx *c)
{
	for (size_t i = 0; i < c->p->n_settings; i++) {
		const struct profile_setting *s = &c->p->settings[i];

		if (s->default_value &&
		    !validate_value(s->format, s->default_value))
			return fail(c, s->line,
				    "[setting %s]: default is not %s", s->name,
				    validate_format_expectation(s->format));
		if (s->default_value && s->re &&
		    !validate_pattern_match(s->re, s->default_value))
			return fail(c, s->line,
				    "[setting %s]: default does not match its "
				    "pattern",
				    s->name);
	}
	return 0;
}

/*
 * A profile turns on by a ServiceAccount annotation, a pod label, or both;
 * the required annotations are distinct from the trigger and one another.
 */
/*
 * compose and compose-pattern go together, on an annotation trigger; the
 * template reads only the trigger and settings (it runs before anything else
 * of the profile is known).
 */
static int check_compose(struct parse_ctx *c)
{
	struct profile *p = c->p;
	int line = fixed_key_line(c, "trigger", "compose");
	char why[128];
	int rc;

	if (p->trigger_annotation == NULL || line == 0 ||
	    p->trigger_compose_pattern == NULL)
		return fail(c, line ? line : section_line(c, "trigger"),
			    "[trigger]: 'compose' and 'compose-pattern' go "
			    "together, with 'annotation'");
	for (size_t i = 0; i < p->trigger_compose.n; i++) {
		const struct profile_template_part *part =
			&p->trigger_compose.parts[i];

		if (part->text == NULL && part->source.kind != SOURCE_TRIGGER &&
		    part->source.kind != SOURCE_SETTING)
			return fail(c, line,
				    "'compose': only ${trigger} and "
				    "${setting:NAME} may be used");
		if (part->text == NULL &&
		    check_source(c, line, "'compose'", &part->source, 0) != 0)
			return DIAG_ECONFIG;
	}
	rc = validate_pattern_compile(p->trigger_compose_pattern, true,
				      &p->trigger_compose_re, why, sizeof(why));
	if (rc == DIAG_ENOMEM)
		return out_of_memory(c);
	if (rc != 0)
		return fail(c, fixed_key_line(c, "trigger", "compose-pattern"),
			    "'compose-pattern': not a POSIX extended regular "
			    "expression: %s",
			    why);
	return 0;
}

static int check_trigger(struct parse_ctx *c)
{
	struct profile *p = c->p;
	int line = section_line(c, "trigger");
	char why[128];
	int rc;

	if (p->trigger_annotation == NULL && p->trigger_pod_label == NULL)
		return fail(c, line ? line : 1,
			    "[trigger] needs 'annotation', 'pod-label' or "
			    "both");
	if (p->trigger_annotation == NULL &&
	    (fixed_key_line(c, "trigger", "format") ||
	     fixed_key_line(c, "trigger", "pattern")))
		return fail(c, line,
			    "[trigger]: 'format' and 'pattern' check "
			    "'annotation', which is not given");
	if (p->trigger_compose.n > 0 || p->trigger_compose_pattern) {
		rc = check_compose(c);
		if (rc != 0)
			return rc;
	}
	if (p->trigger_annotation == NULL &&
	    fixed_key_line(c, "trigger", "expect"))
		return fail(c, line,
			    "[trigger]: 'expect' advises on 'annotation', "
			    "which is not given");
	if (p->trigger_pattern) {
		rc = validate_pattern_compile(p->trigger_pattern, true,
					      &p->trigger_re, why, sizeof(why));
		if (rc == DIAG_ENOMEM)
			return out_of_memory(c);
		if (rc != 0)
			return fail(c, fixed_key_line(c, "trigger", "pattern"),
				    "'pattern': not a POSIX extended regular "
				    "expression: %s",
				    why);
	}
	for (size_t i = 0; i < p->n_required; i++) {
		const struct profile_required *r = &p->required[i];

		if (p->trigger_annotation &&
		    strcmp(r->key, p->trigger_annotation) == 0)
			return fail(c, r->line,
				    "[required-annotation %s] is the trigger "
				    "annotation already",
				    r->key);
		for (size_t k = 0; k < i; k++) {
			if (strcmp(p->required[k].key, r->key) == 0)
				return fail(c, r->line,
					    "[required-annotation %s] is "
					    "declared twice",
					    r->key);
		}
	}
	return 0;
}

static int check_file(struct parse_ctx *c, const struct profile_file *f)
{
	const struct profile *p = c->p;
	char where[300];

	snprintf(where, sizeof(where), "[file %s]", f->name);
	if (f->annotation == NULL || f->volume_name == NULL ||
	    f->mount_path == NULL)
		return fail(c, f->line,
			    "%s needs 'annotation', 'volume' and 'mount-path'",
			    where);
	if (f->json ? (f->n_fields == 0 || f->text.n > 0)
		    : (f->n_fields > 0 || f->text.n == 0))
		return fail(c, f->line, "%s: format %s takes %s", where,
			    f->json ? "json" : "text",
			    f->json ? "json.MEMBER keys and no 'template'"
				    : "a 'template' and no json.MEMBER keys");
	if (strcmp(f->volume_name, p->volume_name) == 0)
		return fail(c, f->line, "%s: volume '%s' is the token's volume",
			    where, f->volume_name);
	if (profile_paths_overlap(f->mount_path, p->mount_path))
		return fail(c, f->line,
			    "%s: mount path '%s' overlaps the token's '%s'",
			    where, f->mount_path, p->mount_path);
	for (const struct profile_file *g = p->files; g < f; g++) {
		if (strcmp(g->volume_name, f->volume_name) == 0 ||
		    profile_paths_overlap(g->mount_path, f->mount_path))
			return fail(c, f->line,
				    "%s: volume or mount path also used by "
				    "[file %s]",
				    where, g->name);
	}
	if (check_template(c, f->line, where, &f->text) != 0)
		return DIAG_ECONFIG;
	for (size_t i = 0; i < f->n_fields; i++) {
		if (check_template(c, f->fields[i].line, where,
				   &f->fields[i].value) != 0)
			return DIAG_ECONFIG;
	}
	return 0;
}

static int check_profile(struct parse_ctx *c)
{
	/* Labels follow `match` unless the profile says otherwise. */
	if (!fixed_key_line(c, "skip", "label-match"))
		c->p->skip_label_match = c->p->skip_match;
	if (check_required(c) != 0 || check_trigger(c) != 0 ||
	    check_expiration(c) != 0 || check_settings_decl(c) != 0)
		return DIAG_ECONFIG;
	for (size_t i = 0; i < c->p->n_env; i++) {
		if (check_env(c, &c->p->env[i]) != 0)
			return DIAG_ECONFIG;
	}
	for (size_t i = 0; i < c->p->n_files; i++) {
		if (check_file(c, &c->p->files[i]) != 0)
			return DIAG_ECONFIG;
	}
	return 0;
}

/* ---- entry points ---- */

static int check_text(struct parse_ctx *c)
{
	size_t bad = 0;
	int line = 1;

	if (c->len > BOUND_PROFILE_BYTES)
		return fail(c, 0, "larger than %ld bytes", BOUND_PROFILE_BYTES);
	for (size_t i = 0; i < c->len; i++) {
		unsigned char ch = (unsigned char)c->text[i];

		if (ch == '\n')
			line++;
		else if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f)
			return fail(
				c, line,
				"control or NUL byte 0x%02x: not a text file",
				ch);
	}
	if (!str_is_utf8(c->text, c->len, &bad))
		return fail(c, 0, "not valid UTF-8 (byte %zu)", bad);
	return 0;
}

int profile_parse(const char *text, size_t len, const char *source,
		  struct profile **ret_profile, struct diag *d)
{
	struct parse_ctx *c;
	int rc, err_line;

	*ret_profile = NULL;
	c = mem_calloc(1, sizeof(*c));
	if (c == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	*c = (struct parse_ctx){
		.text = text, .len = len, .source = source, .d = d
	};
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		c->pos = 3; /* a UTF-8 byte-order mark */
	rc = check_text(c);
	if (rc != 0)
		goto out;
	c->p = mem_calloc(1, sizeof(struct profile));
	if (c->p == NULL || copy_value(c, &c->p->source, source) != 0) {
		rc = diag_set(d, DIAG_ENOMEM, "out of memory");
		goto out;
	}
	c->p->default_mode = -1;
	err_line = ini_parse_stream(read_line, c, on_key, c);
	if (!c->failed && err_line != 0)
		fail(c, err_line,
		     "expected 'key = value' or a [section] header");
	if (!c->failed)
		check_profile(c);
	rc = c->failed ? (d && d->code ? d->code : DIAG_ECONFIG) : 0;
	if (rc == 0) {
		*ret_profile = c->p;
		c->p = NULL;
	}
out:
	if (c->p)
		profile_free(c->p);
	mem_free(c);
	return rc;
}

static void free_chain(struct profile_chain *chain)
{
	for (size_t i = 0; i < chain->n; i++)
		mem_free(chain->items[i].arg);
}

static void free_template(struct profile_template *t)
{
	for (size_t i = 0; i < t->n; i++) {
		mem_free(t->parts[i].text);
		mem_free(t->parts[i].source.arg);
	}
	mem_free(t->parts);
}

static void free_file(struct profile_file *f)
{
	mem_free(f->name);
	mem_free(f->annotation);
	mem_free(f->volume_name);
	mem_free(f->mount_path);
	free_template(&f->text);
	for (size_t i = 0; i < f->n_fields; i++) {
		mem_free(f->fields[i].path);
		free_template(&f->fields[i].value);
	}
	mem_free(f->fields);
}

static void free_list(struct profile_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		mem_free(list->items[i]);
	mem_free(list->items);
}

void profile_free(struct profile *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < N_FIXED_KEYS; i++) {
		enum key_type t = fixed_keys[i].type;

		if (t != KT_FORMAT && t != KT_SECONDS && t != KT_MODE &&
		    t != KT_QNAME_LIST && t != KT_SKIP_MATCH &&
		    t != KT_FORMAT_LIST && t != KT_TEMPLATE)
			mem_free(*(char **)((char *)p + fixed_keys[i].offset));
	}
	free_list(&p->skip_pod_labels);
	free_list(&p->skip_pod_annotations);
	free_list(&p->skip_sa_annotations);
	for (size_t i = 0; i < p->n_env; i++) {
		mem_free(p->env[i].name);
		mem_free(p->env[i].value);
		mem_free(p->env[i].default_value);
		free_chain(&p->env[i].from);
		free_chain(&p->env[i].when);
		mem_free(p->env[i].pattern);
		validate_pattern_free(p->env[i].re);
		mem_free(p->env[i].extract);
		validate_pattern_free(p->env[i].extract_re);
		mem_free(p->env[i].group);
	}
	mem_free(p->env);
	for (size_t i = 0; i < p->n_required; i++) {
		mem_free(p->required[i].key);
		mem_free(p->required[i].check.pattern);
		validate_pattern_free(p->required[i].check.re);
	}
	mem_free(p->required);
	for (size_t i = 0; i < p->n_files; i++)
		free_file(&p->files[i]);
	mem_free(p->files);
	for (size_t i = 0; i < p->n_map_fields; i++) {
		mem_free(p->map_fields[i].field);
		mem_free(p->map_fields[i].annotation);
	}
	mem_free(p->map_fields);
	validate_pattern_free(p->trigger_re);
	free_template(&p->trigger_compose);
	validate_pattern_free(p->trigger_compose_re);
	for (size_t i = 0; i < p->n_settings; i++) {
		mem_free(p->settings[i].name);
		mem_free(p->settings[i].default_value);
		mem_free(p->settings[i].description);
		mem_free(p->settings[i].flag);
		mem_free(p->settings[i].env);
		mem_free(p->settings[i].pattern);
		validate_pattern_free(p->settings[i].re);
	}
	mem_free(p->settings);
	mem_free(p->source);
	mem_free(p);
}

bool profile_paths_overlap(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	const char *shorter = n <= m ? a : b, *longer = n <= m ? b : a;
	size_t k = n <= m ? n : m;

	return strncmp(shorter, longer, k) == 0 &&
	       (longer[k] == '\0' || longer[k] == '/');
}

const struct profile_setting *profile_find_setting(const struct profile *p,
						   const char *name)
{
	for (size_t i = 0; i < p->n_settings; i++) {
		if (strcmp(p->settings[i].name, name) == 0)
			return &p->settings[i];
	}
	return NULL;
}

const char *profile_setting_value(const struct profile *p,
				  const struct settings *settings,
				  const char *name)
{
	const struct profile_setting *decl = profile_find_setting(p, name);
	const char *value = settings_get(settings, name);

	if (value && value[0] != '\0')
		return value;
	return decl ? decl->default_value : NULL;
}
