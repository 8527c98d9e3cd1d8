/*
 * validate: the value formats a profile can demand (of a trigger annotation, an
 * env value or a setting) and the Kubernetes name rules the profile loader
 * enforces.
 */
#ifndef PIW_VALIDATE_H
#define PIW_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

enum value_format {
	FORMAT_ANY,   /* non-empty, no control characters */
	FORMAT_EMAIL, /* local@domain.tld */
	FORMAT_ARN,   /* arn:<partition>:iam::<12 digits>:role/<path/name> */
	FORMAT_UUID,  /* 8-4-4-4-12 hex digits */
	FORMAT_HTTPS_URL, /* https://host[:port][/path...] */
	FORMAT_INTEGER,	  /* decimal, fits in int64 */
	FORMAT_BOOLEAN,	  /* Go strconv.ParseBool spellings */
	FORMAT_REGION,	  /* [a-z0-9-], 1-32 characters */
};

/* Maps a profile's format name to the enum. 0 or DIAG_EPARSE. */
int validate_format_parse(const char *name, enum value_format *ret);

/*
 * The format's profile name ("email") and what a valid value is, for messages.
 */
const char *validate_format_name(enum value_format format);
const char *validate_format_expectation(enum value_format format);

/* Whether value satisfies format. */
bool validate_value(enum value_format format, const char *value);

/*
 * A Kubernetes label or annotation key: [DNS-subdomain "/"] name (63, alnum
 * ends).
 */
bool validate_qualified_name(const char *key);

/* A DNS label (RFC 1123): [a-z0-9-], 1-63, alphanumeric at both ends. */
bool validate_dns_label(const char *s);

/* A DNS subdomain (RFC 1123) as Kubernetes names objects: lower case, 1-253. */
bool validate_dns_subdomain(const char *s);

/*
 * An environment variable name as Kubernetes accepts it (C_IDENTIFIER relaxed
 * in 1.30): [-._a-zA-Z][-._a-zA-Z0-9]*, at most 128 bytes here.
 */
bool validate_env_name(const char *s);

/*
 * A relative path inside a mount: one or more segments that each pass
 * validate_file_name, joined by single '/' (no leading or trailing '/').
 */
bool validate_rel_path(const char *s);

/*
 * A compiled POSIX extended regular expression (regcomp from libc), for the
 * `pattern` checks and `extract` derivations of profiles.
 */
struct validate_pattern;

/*
 * Compiles ere. anchored: the whole value must match (the expression is
 * wrapped as ^(ere)$), else a match anywhere counts and the first
 * parenthesised group can be extracted. On success *ret owns the pattern (free
 * with validate_pattern_free). DIAG_EPARSE with the reason in err (libc's
 * regerror text) for a bad expression; DIAG_ENOMEM.
 */
int validate_pattern_compile(const char *ere, bool anchored,
			     struct validate_pattern **ret, char *err,
			     size_t err_size);

/* Whether value matches (wholly, for an anchored pattern). */
bool validate_pattern_match(const struct validate_pattern *re,
			    const char *value);

/*
 * The first parenthesised group of the first match of an unanchored pattern:
 * *start and *len locate it in value. false when nothing matched or the group
 * took no part in the match.
 */
bool validate_pattern_extract(const struct validate_pattern *re,
			      const char *value, size_t *start, size_t *len);

/* Frees a pattern; accepts NULL. */
void validate_pattern_free(struct validate_pattern *re);

/* A normalised absolute path: starts with '/', no empty, "." or ".." segment, no
 * trailing '/', printable ASCII, at most BOUND_PATH bytes. "/" alone is
 * refused. */
bool validate_abs_path(const char *s);

/*
 * Whether a volume mounted at the normalised absolute directory dir would hide
 * a directory the container's system needs: "/", /proc, /sys, /dev, /etc,
 * /usr, /bin, /sbin, /lib* or anything below them, and the kubelet's
 * /var/run/secrets/kubernetes.io, what is below it and what holds it.
 */
bool validate_system_dir(const char *dir);

/* One path segment: no '/', not "." or "..", printable ASCII, 1-255 bytes. */
bool validate_file_name(const char *s);

/* A profile or setting name: [a-z0-9-], 1..max characters. */
bool validate_simple_name(const char *s, unsigned max);

#endif
