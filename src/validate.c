/*
 * validate: value formats and Kubernetes name rules. Hand-written scanners
 * rather than regular expressions: each rule is a few lines, allocation-free
 * and easy to fuzz.
 */
#include "validate.h"

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "diag.h"
#include "mem.h"
#include "strutil.h"

static const struct {
	const char *name;
	const char *expectation;
} formats[] = {
	[FORMAT_ANY] = { "any",
			 "a non-empty value without control characters" },
	[FORMAT_EMAIL] = { "email", "an e-mail address" },
	[FORMAT_ARN] = { "arn",
			 "an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)" },
	[FORMAT_UUID] = { "uuid", "a UUID" },
	[FORMAT_HTTPS_URL] = { "https-url", "an https:// URL" },
	[FORMAT_INTEGER] = { "integer", "a whole number" },
	[FORMAT_BOOLEAN] = { "boolean",
			     "a boolean (1, t, T, TRUE, true, True, 0, f, F, FALSE, false or False)" },
	[FORMAT_REGION] = { "region",
			    "a region name ([a-z0-9-], at most 32 characters)" },
};

int validate_format_parse(const char *name, enum value_format *ret)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (strcmp(formats[i].name, name) == 0) {
			*ret = (enum value_format)i;
			return 0;
		}
	}
	return DIAG_EPARSE;
}

const char *validate_format_name(enum value_format format)
{
	return formats[format].name;
}

const char *validate_format_expectation(enum value_format format)
{
	return formats[format].expectation;
}

static bool all_printable(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* A host name: dot-separated labels of [A-Za-z0-9-], alnum at both ends. */
static bool valid_host(const char *s, size_t len, bool need_dot)
{
	size_t label = 0, dots = 0;

	if (len == 0 || len > BOUND_DNS_SUBDOMAIN)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			dots++;
			continue;
		}
		if (!str_is_alnum(c) && c != '-')
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > BOUND_DNS_LABEL)
			return false;
	}
	if (label == 0 || s[len - 1] == '-')
		return false;
	return !need_dot || dots > 0;
}

static bool valid_email(const char *s)
{
	const char *at = strrchr(s, '@');
	size_t local_len;

	if (at == NULL || strlen(s) > 254)
		return false;
	local_len = (size_t)(at - s);
	if (local_len == 0 || local_len > 64 || s[0] == '.' || at[-1] == '.')
		return false;
	for (const char *p = s; p < at; p++) {
		if (!str_is_alnum(*p) && !strchr("._%+-", *p))
			return false;
		if (*p == '.' && p[1] == '.')
			return false;
	}
	return valid_host(at + 1, strlen(at + 1), true);
}

static bool valid_partition(const char *s, size_t len)
{
	if (len < 3 || strncmp(s, "aws", 3) != 0)
		return false;
	if (len == 3)
		return true;
	if (s[3] != '-' || len == 4 || s[len - 1] == '-')
		return false;
	for (size_t i = 4; i < len; i++) {
		if (!(s[i] >= 'a' && s[i] <= 'z') && s[i] != '-')
			return false;
	}
	return true;
}

/* arn:<partition>:iam::<account>:role/<path/><name> */
static bool valid_role_arn(const char *s)
{
	const char *p, *colon, *name;
	size_t n;

	if (!str_has_prefix(s, "arn:"))
		return false;
	p = s + 4;
	colon = strchr(p, ':');
	if (colon == NULL || !valid_partition(p, (size_t)(colon - p)))
		return false;
	p = colon + 1;
	if (!str_has_prefix(p, "iam::"))
		return false;
	p += 5;
	for (n = 0; n < 12; n++) {
		if (!str_is_digit(p[n]))
			return false;
	}
	p += 12;
	if (!str_has_prefix(p, ":role/"))
		return false;
	name = p + 6;
	n = strlen(name);
	if (n == 0 || n > 512 || name[n - 1] == '/')
		return false;
	for (const char *q = name; *q; q++) {
		if (!str_is_alnum(*q) && !strchr("+=,.@_/-", *q))
			return false;
	}
	return true;
}

static bool valid_uuid(const char *s)
{
	static const char layout[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != sizeof(layout) - 1)
		return false;
	for (size_t i = 0; layout[i]; i++) {
		if (layout[i] == '-' ? s[i] != '-' : !str_is_hex(s[i]))
			return false;
	}
	return true;
}

static bool valid_https_url(const char *s)
{
	const char *host, *end;
	size_t host_len;

	if (!str_has_prefix(s, "https://") || strlen(s) > 2048)
		return false;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	host = s + 8;
	end = host + strcspn(host, ":/?#");
	host_len = (size_t)(end - host);
	if (strchr(host, '@') &&
	    strchr(host, '@') < host + strcspn(host, "/?#"))
		return false; /* userinfo: credentials do not belong in an endpoint */
	if (!valid_host(host, host_len, false))
		return false;
	if (*end == ':') {
		int64_t port;
		char digits[8];
		size_t n = strcspn(end + 1, "/?#");

		if (n == 0 || n >= sizeof(digits))
			return false;
		memcpy(digits, end + 1, n);
		digits[n] = '\0';
		if (str_to_i64(digits, 1, 65535, &port) != 0)
			return false;
	}
	return true;
}

static bool valid_region(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!str_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool validate_value(enum value_format format, const char *value)
{
	int64_t i;
	bool b;

	if (value[0] == '\0' || !all_printable(value))
		return false;
	switch (format) {
	case FORMAT_ANY:
		return true;
	case FORMAT_EMAIL:
		return valid_email(value);
	case FORMAT_ARN:
		return valid_role_arn(value);
	case FORMAT_UUID:
		return valid_uuid(value);
	case FORMAT_HTTPS_URL:
		return valid_https_url(value);
	case FORMAT_INTEGER:
		return str_to_i64(value, INT64_MIN, INT64_MAX, &i) == 0;
	case FORMAT_BOOLEAN:
		return str_to_bool(value, &b) == 0;
	case FORMAT_REGION:
		return valid_region(value);
	}
	return false;
}

/*
 * The name part of a qualified name: [A-Za-z0-9][-A-Za-z0-9_.]*, alnum at the
 * end.
 */
static bool valid_qualified_part(const char *s, size_t len)
{
	if (len == 0 || len > BOUND_DNS_LABEL)
		return false;
	if (!str_is_alnum(s[0]) || !str_is_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!str_is_alnum(s[i]) && !strchr("-_.", s[i]))
			return false;
	}
	return true;
}

/*
 * Kubernetes' DNS-1123 subdomain: labels of [a-z0-9-], alphanumeric at both
 * ends, joined by single dots, 1-253 in all. Unlike a host name's, a label may
 * be longer than 63 (the API server accepts such object names).
 */
static bool valid_lower_subdomain(const char *s, size_t len)
{
	if (len == 0 || len > BOUND_DNS_SUBDOMAIN ||
	    !str_is_lower_alnum(s[0]) || !str_is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 1; i + 1 < len; i++) {
		if (s[i] == '.') {
			/* between alphanumerics: no "..", ".-" or "-." */
			if (!str_is_lower_alnum(s[i - 1]) ||
			    !str_is_lower_alnum(s[i + 1]))
				return false;
		} else if (s[i] != '-' && !str_is_lower_alnum(s[i])) {
			return false;
		}
	}
	return true;
}

bool validate_qualified_name(const char *key)
{
	const char *slash = strchr(key, '/');

	if (slash == NULL)
		return valid_qualified_part(key, strlen(key));
	if (strchr(slash + 1, '/'))
		return false;
	return valid_lower_subdomain(key, (size_t)(slash - key)) &&
	       valid_qualified_part(slash + 1, strlen(slash + 1));
}

bool validate_dns_subdomain(const char *s)
{
	return valid_lower_subdomain(s, strlen(s));
}

bool validate_dns_label(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > BOUND_DNS_LABEL)
		return false;
	if (!str_is_lower_alnum(s[0]) || !str_is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!str_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool validate_env_name(const char *s)
{
	if (s[0] == '\0' || str_is_digit(s[0]))
		return false;
	for (const char *p = s; *p; p++) {
		if (!str_is_alnum(*p) && !strchr("-._", *p))
			return false;
	}
	return strlen(s) <= 128;
}

bool validate_rel_path(const char *s)
{
	char segment[256];
	size_t n = strlen(s);

	if (n == 0 || n > BOUND_PATH || s[0] == '/' || s[n - 1] == '/')
		return false;
	for (;;) {
		size_t len = strcspn(s, "/");

		if (len == 0 || len >= sizeof(segment))
			return false;
		memcpy(segment, s, len);
		segment[len] = '\0';
		if (!validate_file_name(segment))
			return false;
		if (s[len] == '\0')
			return true;
		s += len + 1;
	}
}

struct validate_pattern {
	regex_t re;
	bool anchored;
};

/*
 * glibc's regcomp expands an interval by copying its subexpression, so nested
 * intervals ("(a{255}){255}") cost the product of their bounds in memory. A
 * profile's expression is therefore sized before it is compiled: each atom
 * counts once, times the upper bound of its interval (an open one counts as
 * its lower bound plus one), nested groups multiply.
 */
#define PATTERN_MAX_SIZE 4096

static size_t pattern_size(const char **p, int depth);

/* Skips a bracket expression "[...]" (p at '['), classes like [:alpha:]. */
static bool skip_bracket(const char **p)
{
	const char *q = *p + 1;

	if (*q == '^')
		q++;
	if (*q == ']')
		q++;
	while (*q && *q != ']') {
		if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
			char close = q[1];

			q += 2;
			while (*q && !(*q == close && q[1] == ']'))
				q++;
			if (*q == '\0')
				return false;
			q += 2;
			continue;
		}
		q++;
	}
	if (*q != ']')
		return false;
	*p = q + 1;
	return true;
}

/* The multiplier of a quantifier at *p (1 without one), past it. */
static size_t quantifier(const char **p)
{
	size_t lower = 0, upper = 0, *bound = &lower;
	const char *q = *p;

	if (*q == '*' || *q == '+' || *q == '?') {
		*p = q + 1;
		return 2;
	}
	if (*q != '{')
		return 1;
	for (q++; *q && *q != '}'; q++) {
		if (*q == ',') {
			bound = &upper;
			upper = (size_t)-1;
			continue;
		}
		if (!str_is_digit(*q)) {
			*p = q; /* past the '{': the caller's loop ends */
			return PATTERN_MAX_SIZE + 1;
		}
		if (bound == &upper && upper == (size_t)-1)
			upper = 0;
		*bound = *bound * 10 + (size_t)(*q - '0');
		if (*bound > PATTERN_MAX_SIZE) {
			*p = q;
			return PATTERN_MAX_SIZE + 1;
		}
	}
	*p = *q ? q + 1 : q;
	if (bound == &lower)
		return lower ? lower : 1;
	return upper == (size_t)-1 ? lower + 1 : (upper ? upper : 1);
}

static size_t saturating_mul(size_t a, size_t b)
{
	return a > PATTERN_MAX_SIZE || b > PATTERN_MAX_SIZE
		       ? PATTERN_MAX_SIZE + 1
		       : a * b;
}

static size_t pattern_size(const char **p, int depth)
{
	size_t total = 0;

	if (depth > 32)
		return PATTERN_MAX_SIZE + 1;
	while (**p && **p != ')' && total <= PATTERN_MAX_SIZE) {
		size_t atom = 1;
		const char *q = *p;

		if (*q == '(') {
			*p = q + 1;
			atom = pattern_size(p, depth + 1);
			if (**p == ')')
				(*p)++;
		} else if (*q == '[') {
			if (!skip_bracket(p))
				return PATTERN_MAX_SIZE + 1;
		} else if (*q == '\\' && q[1] >= '1' && q[1] <= '9') {
			return PATTERN_MAX_SIZE + 1; /* back-references */
		} else {
			*p = q + (*q == '\\' && q[1] ? 2 : 1);
		}
		while ((**p == '*' || **p == '+' || **p == '?' || **p == '{') &&
		       atom <= PATTERN_MAX_SIZE)
			atom = saturating_mul(atom, quantifier(p));
		total += atom;
	}
	return total;
}

int validate_pattern_compile(const char *ere, bool anchored,
			     struct validate_pattern **ret, char *err,
			     size_t err_size)
{
	struct validate_pattern *vp = NULL;
	char *wrapped = NULL;
	size_t n = strlen(ere) + 5;
	int rc;

	*ret = NULL;
	{
		const char *cursor = ere;
		size_t size = pattern_size(&cursor, 0);

		if (size > PATTERN_MAX_SIZE || *cursor != '\0') {
			snprintf(err, err_size,
				 "too large once its repetitions are expanded "
				 "(at most %d atoms), unbalanced, or with a "
				 "back-reference",
				 PATTERN_MAX_SIZE);
			return DIAG_EPARSE;
		}
	}
	vp = mem_calloc(1, sizeof(*vp));
	wrapped = mem_alloc(n);
	if (vp == NULL || wrapped == NULL) {
		rc = DIAG_ENOMEM;
		goto out;
	}
	/* The group keeps an alternation inside the anchors: ^(a|b)$. */
	snprintf(wrapped, n, anchored ? "^(%s)$" : "%s", ere);
	rc = regcomp(&vp->re, wrapped, REG_EXTENDED);
	if (rc != 0) {
		regerror(rc, &vp->re, err, err_size);
		rc = rc == REG_ESPACE ? DIAG_ENOMEM : DIAG_EPARSE;
		goto out;
	}
	vp->anchored = anchored;
	*ret = vp;
	vp = NULL;
out:
	mem_free(vp);
	mem_free(wrapped);
	return rc;
}

bool validate_pattern_match(const struct validate_pattern *re,
			    const char *value)
{
	return regexec(&re->re, value, 0, NULL, 0) == 0;
}

bool validate_pattern_extract(const struct validate_pattern *re,
			      const char *value, size_t *start, size_t *len)
{
	regmatch_t m[2];

	if (re->re.re_nsub < 1 || regexec(&re->re, value, 2, m, 0) != 0 ||
	    m[1].rm_so < 0 || m[1].rm_eo < m[1].rm_so)
		return false;
	*start = (size_t)m[1].rm_so;
	*len = (size_t)(m[1].rm_eo - m[1].rm_so);
	return true;
}

void validate_pattern_free(struct validate_pattern *re)
{
	if (re == NULL)
		return;
	regfree(&re->re);
	mem_free(re);
}

static bool printable_path_char(char c)
{
	return (unsigned char)c > 0x20 && (unsigned char)c < 0x7f && c != '\\';
}

bool validate_file_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '/' || !printable_path_char(s[i]))
			return false;
	}
	return true;
}

bool validate_abs_path(const char *s)
{
	const char *seg;
	size_t n = strlen(s);

	if (n < 2 || n > BOUND_PATH || s[0] != '/' || s[n - 1] == '/')
		return false;
	seg = s + 1;
	for (;;) {
		size_t len = strcspn(seg, "/");

		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		for (size_t i = 0; i < len; i++) {
			if (!printable_path_char(seg[i]))
				return false;
		}
		if (seg[len] == '\0')
			return true;
		seg += len + 1;
	}
}

/* Whether path is dir or below it. */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 &&
	       (path[n] == '\0' || path[n] == '/');
}

bool validate_system_dir(const char *dir)
{
	static const char *const system[] = { "/proc", "/sys", "/dev", "/etc",
					      "/usr",  "/bin", "/sbin" };
	static const char kube_secrets[] = "/var/run/secrets/kubernetes.io";

	if (dir[0] != '/' || dir[1] == '\0')
		return true;
	for (size_t i = 0; i < sizeof(system) / sizeof(system[0]); i++) {
		if (path_within(dir, system[i]))
			return true;
	}
	/* /lib, /lib32, /lib64, /libx32 and whatever else a distribution adds. */
	if (strncmp(dir, "/lib", 4) == 0)
		return true;
	return path_within(dir, kube_secrets) || path_within(kube_secrets, dir);
}

bool validate_simple_name(const char *s, unsigned max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!str_is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}
