/*
 * profile: a provider profile (one cloud's workload-identity rules) parsed from
 * INI text, and the ordered set of profiles a webhook serves. Pure: parsing
 * works on memory; reading files is profile_dir's job. docs/profiles.md is the
 * format's specification.
 */
#ifndef PIW_PROFILE_H
#define PIW_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"
#include "diag.h"
#include "validate.h"

struct settings;

/* Where an env value (or a `when` condition) comes from. */
enum source_kind {
	SOURCE_TRIGGER,
	SOURCE_TOKEN_PATH,
	SOURCE_MOUNT_PATH,
	SOURCE_AUDIENCE,
	SOURCE_EXPIRATION,
	SOURCE_SA_ANNOTATION,  /* arg: annotation key */
	SOURCE_POD_ANNOTATION, /* arg: annotation key */
	SOURCE_SETTING,	       /* arg: setting name */
	SOURCE_POD_NAME,
	SOURCE_NAMESPACE,
	SOURCE_SA_NAME,
	SOURCE_ENV, /* arg: an earlier [env NAME] of the same profile */
};

struct profile_source {
	enum source_kind kind;
	char *arg; /* NULL for kinds without an argument */
};

/* An ordered list of sources: the first one with a non-empty value wins. */
struct profile_chain {
	struct profile_source items[BOUND_SOURCES];
	size_t n;
};

/*
 * A value check: a named format and, optionally, an anchored POSIX ERE the
 * whole value must also match.
 */
struct profile_check {
	enum value_format format;
	char *pattern;		     /* as written, or NULL */
	struct validate_pattern *re; /* compiled ^(pattern)$, or NULL */
};

/* A ServiceAccount annotation that must be present once the profile applies. */
struct profile_required {
	char *key;
	struct profile_check check;
	int line;
};

/* A template: literal text and `${source}` placeholders, in order. */
struct profile_template_part {
	char *text; /* literal, or NULL for a placeholder */
	struct profile_source source;
};

struct profile_template {
	struct profile_template_part *parts;
	size_t n;
};

/* One string member of a generated JSON file, at a dotted path. */
struct profile_field {
	char *path; /* "credential_source.format.type" */
	struct profile_template value;
	int line;
};

/*
 * A generated file: rendered into a pod annotation and projected by a
 * downwardAPI volume (no init container, no image).
 */
struct profile_file {
	char *name;	  /* file name inside the mount ([file NAME]) */
	char *annotation; /* the pod annotation that carries the content */
	char *volume_name;
	char *mount_path;
	int default_mode; /* -1 when unset */
	bool json;	  /* format = json: fields; text: template */
	struct profile_template text;
	struct profile_field *fields;
	size_t n_fields;
	int line;
};

/*
 * [identity-map-json]: a member of an entry of an identity map's JSON form
 * (identity_map.h) and the annotation it stands for.
 */
struct profile_map_field {
	char *field; /* matched as Go's encoding/json does: exact, else any case */
	char *annotation;
};

enum sanitize_kind {
	SANITIZE_NONE,
	SANITIZE_STS_SESSION_NAME, /* [A-Za-z0-9+=,.@_-], 2..64 */
};

struct profile_env {
	char *name;
	char *value; /* constant, or NULL when `from` is used */
	struct profile_chain from;
	char *default_value; /* fallback for `from`, or NULL: inject only when set */
	struct profile_chain when; /* n == 0: unconditional */
	enum value_format format;
	char *pattern;		     /* anchored ERE check, or NULL */
	struct validate_pattern *re; /* compiled pattern, or NULL */
	char *extract; /* ERE whose first group is the value, or NULL */
	struct validate_pattern *extract_re;
	char *group; /* variables of one group go into a container together */
	enum sanitize_kind sanitize;
	int line; /* line of the [env NAME] header */
};

struct profile_setting {
	char *name;
	char *default_value; /* NULL: unset unless the deployment sets it */
	enum value_format format;
	char *pattern;		     /* anchored ERE check, or NULL */
	struct validate_pattern *re; /* compiled pattern, or NULL */
	char *description;	     /* may be NULL */
	char *flag; /* command-line alias without "--" ("region"), or NULL */
	char *env;  /* environment-variable alias ("PIW_REGION"), or NULL */
	int line;
};

enum skip_match {
	SKIP_MATCH_TRUE, /* the label/annotation skips when its value is "true" */
	SKIP_MATCH_PRESENT, /* it skips whatever its value */
};

struct profile_list {
	char **items;
	size_t n;
};

struct profile {
	char *source; /* file path, or "built-in" */
	char *name;
	char *description; /* may be NULL */

	char *trigger_annotation; /* may be NULL when trigger_pod_label is set */
	enum value_format trigger_format;
	/* Formats the peer documents for the trigger value: a value that fits
	 * none is used as given, with a warning. n == 0: no such advice. */
	struct profile_formats {
		enum value_format items[8];
		size_t n;
	} trigger_expect;
	/* A short trigger value (matching trigger_compose_re) becomes this
	 * template's rendering when every placeholder has a value: the AWS
	 * webhook's --compose-role-arn. n == 0: never. */
	struct profile_template trigger_compose;
	char *trigger_compose_pattern;
	struct validate_pattern *trigger_compose_re;
	char *trigger_pattern; /* anchored ERE, or NULL */
	struct validate_pattern *trigger_re;
	char *trigger_pod_label;	   /* may be NULL */
	struct profile_required *required; /* [required-annotation KEY] */
	size_t n_required;

	char *audience;
	char *audience_annotation; /* may be NULL */
	int64_t expiration, expiration_min, expiration_max;
	char *expiration_annotation;	 /* ServiceAccount; may be NULL */
	char *pod_expiration_annotation; /* Pod; may be NULL */

	char *volume_name;
	char *mount_path;
	char *token_file;
	char *file_annotation; /* may be NULL */
	int default_mode;      /* -1 when unset */
	char *windows_drive;   /* "C:", or NULL */

	char *skip_containers_annotation;    /* may be NULL */
	char *include_containers_annotation; /* may be NULL */

	enum skip_match skip_match; /* annotations (and labels by default) */
	enum skip_match skip_label_match; /* pod labels */
	struct profile_list skip_pod_labels;
	struct profile_list skip_pod_annotations;
	struct profile_list skip_sa_annotations;

	struct profile_setting *settings;
	size_t n_settings;
	struct profile_env *env;
	size_t n_env;
	uint64_t env_firsts[4]; /* bit c: some env name starts with byte c */
	struct profile_file *files;
	size_t n_files;
	struct profile_map_field *map_fields;
	size_t n_map_fields;
};

/*
 * Parses one profile from len bytes of INI text. `source` names it in messages
 * and in profile->source (a path, or "built-in"). On success *ret_profile owns
 * a new profile (free with profile_free). On failure nothing is allocated,
 * *ret_profile is NULL and d holds "source:line: reason"; the return is
 * DIAG_ECONFIG (or DIAG_ENOMEM).
 */
int profile_parse(const char *text, size_t len, const char *source,
		  struct profile **ret_profile, struct diag *d);

/* Frees a profile; accepts NULL. */
void profile_free(struct profile *p);

/* A source kind's name as profiles write it ("token-path"). */
const char *profile_source_name(enum source_kind kind);

/*
 * Whether two normalised absolute paths are equal or one lies inside the
 * other ("/a/b" and "/a/b/c"; not "/a/b" and "/a/bc").
 */
bool profile_paths_overlap(const char *a, const char *b);

/* The setting `name` declared by p, or NULL. */
const struct profile_setting *profile_find_setting(const struct profile *p,
						   const char *name);

/*
 * The effective value of setting `name` for profile p: the deployment's
 * non-empty value, else the declaration's default, else NULL.
 */
const char *profile_setting_value(const struct profile *p,
				  const struct settings *settings,
				  const char *name);

#endif
