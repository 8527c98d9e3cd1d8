/*
 * identity_map: the two parsers (our sections, a peer webhook's ConfigMap
 * JSON) build the same sorted array of entries; a lookup is four binary
 * searches. A parse either yields a whole map or nothing, so a caller that
 * keeps its last good map never serves half of a broken file.
 */
#include "identity_map.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "json.h"
#include "mem.h"
#include "profile.h"
#include "profile_set.h"
#include "service_account.h"
#include "strutil.h"
#include "validate.h"

#define ANY "*"

struct entry {
	char *namespace;		   /* ANY for every namespace */
	char *name;			   /* ANY for every name */
	struct sa_annotation *annotations; /* key and value strings owned */
	size_t n;
	int line;   /* where the entry starts, for messages */
	size_t seq; /* order of appearance: the later of equal keys wins */
};

struct identity_map {
	struct entry *entries; /* sorted by namespace, then name */
	size_t n, cap;
};

/* ---- building ---- */

static void entry_clear(struct entry *e)
{
	for (size_t i = 0; i < e->n; i++) {
		mem_free((char *)e->annotations[i].key);
		mem_free((char *)e->annotations[i].value);
	}
	mem_free(e->annotations);
	mem_free(e->namespace);
	mem_free(e->name);
	memset(e, 0, sizeof(*e));
}

void identity_map_free(struct identity_map *map)
{
	if (map == NULL)
		return;
	for (size_t i = 0; i < map->n; i++)
		entry_clear(&map->entries[i]);
	mem_free(map->entries);
	mem_free(map);
}

size_t identity_map_count(const struct identity_map *map)
{
	return map ? map->n : 0;
}

/* Appends an entry for ns/name (len bytes each); its address in *ret. */
static int add_entry(struct identity_map *map, const char *ns, size_t ns_len,
		     const char *name, size_t name_len, int line,
		     struct entry **ret)
{
	struct entry *e;

	if (map->n == BOUND_MAP_ENTRIES)
		return DIAG_ELIMIT;
	if (map->n == map->cap) {
		size_t cap = map->cap ? map->cap * 2 : 16;
		struct entry *grown =
			mem_realloc(map->entries, cap * sizeof(*grown));

		if (grown == NULL)
			return DIAG_ENOMEM;
		map->entries = grown;
		map->cap = cap;
	}
	e = &map->entries[map->n++];
	memset(e, 0, sizeof(*e));
	e->line = line;
	e->seq = map->n - 1;
	e->namespace = mem_strndup(ns, ns_len);
	e->name = mem_strndup(name, name_len);
	*ret = e;
	return e->namespace && e->name ? 0 : DIAG_ENOMEM;
}

/* Sets key to value (len bytes) in e: replaced when there, else appended. */
static int set_annotation(struct entry *e, const char *key, const char *value,
			  size_t len)
{
	struct sa_annotation *grown;
	char *copy = mem_strndup(value, len);
	char *key_copy;

	if (copy == NULL)
		return DIAG_ENOMEM;
	for (size_t i = 0; i < e->n; i++) {
		if (strcmp(e->annotations[i].key, key) == 0) {
			mem_free((char *)e->annotations[i].value);
			e->annotations[i].value = copy;
			return 0;
		}
	}
	if (e->n == BOUND_MAP_ANNOTATIONS) {
		mem_free(copy);
		return DIAG_ELIMIT;
	}
	grown = mem_realloc(e->annotations, (e->n + 1) * sizeof(*grown));
	if (grown)
		e->annotations = grown;
	key_copy = grown ? mem_strdup(key) : NULL;
	if (key_copy == NULL) {
		mem_free(copy);
		return DIAG_ENOMEM;
	}
	e->annotations[e->n++] = (struct sa_annotation){ key_copy, copy };
	return 0;
}

static int compare_keys(const char *ns_a, const char *name_a, const char *ns_b,
			const char *name_b)
{
	int c = strcmp(ns_a, ns_b);

	return c ? c : strcmp(name_a, name_b);
}

/* Orders by key, then by position in the text (line, then array order). */
static int compare_entries(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = compare_keys(x->namespace, x->name, y->namespace, y->name);

	if (c)
		return c;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* ---- our form ---- */

struct text_ctx {
	struct identity_map *map;
	struct entry *current; /* the section being filled */
	const char *source;
	int line;
	struct diag *d;
};

static int text_fail(struct text_ctx *c, int code, const char *why,
		     const char *arg, size_t len)
{
	if (code == DIAG_ENOMEM)
		return diag_set(c->d, code, "out of memory");
	return diag_set_at(c->d, code, c->source, c->line, "%s%s%.*s%s", why,
			   arg ? " '" : "", (int)(arg ? len : 0),
			   arg ? arg : "", arg ? "'" : "");
}

static void trim(const char **s, size_t *len)
{
	while (*len && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

static bool valid_part(const char *s, size_t len, bool (*valid)(const char *))
{
	char buf[BOUND_DNS_SUBDOMAIN + 1];

	if (len == 1 && s[0] == '*')
		return true;
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return valid(buf);
}

/* "[namespace/name]" */
static int text_section(struct text_ctx *c, const char *s, size_t len)
{
	const char *slash, *ns, *name;
	size_t ns_len, name_len;
	int rc;

	if (c->current && c->current->n == 0) {
		c->line = c->current->line;
		return text_fail(c, DIAG_EPARSE,
				 "a section without annotations", NULL, 0);
	}
	if (s[len - 1] != ']')
		return text_fail(c, DIAG_EPARSE, "a section ends with ']'",
				 NULL, 0);
	s++;
	len -= 2;
	slash = memchr(s, '/', len);
	if (slash == NULL ||
	    memchr(slash + 1, '/', len - (size_t)(slash - s) - 1))
		return text_fail(c, DIAG_EPARSE,
				 "a section is [namespace/serviceaccount], not",
				 s, len);
	ns = s;
	ns_len = (size_t)(slash - s);
	name = slash + 1;
	name_len = len - ns_len - 1;
	trim(&ns, &ns_len);
	trim(&name, &name_len);
	if (!valid_part(ns, ns_len, validate_dns_label))
		return text_fail(c, DIAG_EPARSE,
				 "not a namespace (a DNS label) or '*':", ns,
				 ns_len);
	if (!valid_part(name, name_len, validate_dns_subdomain))
		return text_fail(c, DIAG_EPARSE,
				 "not a ServiceAccount name (a DNS subdomain) "
				 "or '*':",
				 name, name_len);
	rc = add_entry(c->map, ns, ns_len, name, name_len, c->line,
		       &c->current);
	if (rc == DIAG_ELIMIT)
		return text_fail(c, rc, "more entries than the limit", NULL, 0);
	return rc ? text_fail(c, rc, "", NULL, 0) : 0;
}

/* "annotation = value" */
static int text_pair(struct text_ctx *c, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len), *value;
	char key[BOUND_DNS_SUBDOMAIN + BOUND_DNS_LABEL + 2];
	size_t key_len, value_len;
	int rc;

	if (eq == NULL)
		return text_fail(c, DIAG_EPARSE,
				 "expected [namespace/serviceaccount] or "
				 "annotation = value, not",
				 s, len);
	if (c->current == NULL)
		return text_fail(c, DIAG_EPARSE,
				 "an annotation outside of any "
				 "[namespace/serviceaccount] section:",
				 s, len);
	key_len = (size_t)(eq - s);
	value = eq + 1;
	value_len = len - key_len - 1;
	trim(&s, &key_len);
	trim(&value, &value_len);
	if (key_len >= sizeof(key))
		key_len = sizeof(key) - 1; /* too long: refused below */
	memcpy(key, s, key_len);
	key[key_len] = '\0';
	if (!validate_qualified_name(key))
		return text_fail(c, DIAG_EPARSE, "not an annotation key:", s,
				 key_len);
	if (value_len == 0)
		return text_fail(c, DIAG_EPARSE, "no value for", s, key_len);
	for (size_t i = 0; i < c->current->n; i++) {
		if (strcmp(c->current->annotations[i].key, key) == 0)
			return text_fail(c, DIAG_EPARSE,
					 "an annotation given twice in its "
					 "section:",
					 s, key_len);
	}
	rc = set_annotation(c->current, key, value, value_len);
	if (rc == DIAG_ELIMIT)
		return text_fail(c, rc,
				 "more annotations in a section than "
				 "the limit",
				 NULL, 0);
	return rc ? text_fail(c, rc, "", NULL, 0) : 0;
}

static int text_line(struct text_ctx *c, const char *s, size_t len)
{
	if (len > 0 && s[len - 1] == '\r')
		len--;
	if (len > BOUND_MAP_LINE)
		return text_fail(c, DIAG_ELIMIT, "line longer than the limit",
				 NULL, 0);
	trim(&s, &len);
	if (len == 0 || s[0] == '#' || s[0] == ';')
		return 0;
	if (s[0] == '[')
		return text_section(c, s, len);
	return text_pair(c, s, len);
}

static int parse_text(const char *text, size_t len, const char *source,
		      struct identity_map *map, struct diag *d)
{
	struct text_ctx c = { .map = map, .source = source, .d = d };
	const char *p = text, *end = text + len;
	size_t bad;
	int rc = 0;

	if (!str_is_utf8(text, len, &bad) || memchr(text, '\0', len))
		return diag_set_at(d, DIAG_EPARSE, source, 0, "not UTF-8 text");
	while (rc == 0 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);

		c.line++;
		rc = text_line(&c, p, n);
		p += n + 1;
	}
	if (rc == 0 && c.current && c.current->n == 0) {
		c.line = c.current->line;
		rc = text_fail(&c, DIAG_EPARSE, "a section without annotations",
			       NULL, 0);
	}
	return rc;
}

/* ---- the JSON form (a peer webhook's ConfigMap) ---- */

struct json_ctx {
	struct identity_map *map;
	const struct profile_set *profiles;
	const char *text;
	size_t len;
	const char *source;
	struct diag *d;
};

/* The line of the first `"key"` in the text (1 when not found verbatim). */
static int key_line(const struct json_ctx *c, const char *key)
{
	size_t klen = strlen(key);
	int line = 1;

	for (size_t i = 0; i + klen + 2 <= c->len; i++) {
		if (c->text[i] == '\n')
			line++;
		else if (c->text[i] == '"' &&
			 memcmp(c->text + i + 1, key, klen) == 0 &&
			 c->text[i + 1 + klen] == '"')
			return line;
	}
	return 1;
}

/* Refuses the entry `key` for why. */
static int json_fail(const struct json_ctx *c, const char *key, const char *why,
		     const char *member)
{
	return diag_set_at(c->d, DIAG_EPARSE, c->source, key_line(c, key),
			   "entry '%.200s'%s%.64s%s: %s", key,
			   member ? ", member '" : "", member ? member : "",
			   member ? "'" : "", why);
}

/* A member's value as annotation text in buf; "" for unset; NULL when its
 * type cannot stand for an annotation. */
static const char *member_text(const cJSON *v, char *buf, size_t size)
{
	if (cJSON_IsNull(v))
		return "";
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "true" : "false";
	if (cJSON_IsNumber(v) && v->valuedouble > -9.2e18 &&
	    v->valuedouble < 9.2e18 &&
	    (double)(int64_t)v->valuedouble == v->valuedouble) {
		if (v->valuedouble == 0)
			return "";
		snprintf(buf, size, "%" PRId64, (int64_t)v->valuedouble);
		return buf;
	}
	return NULL;
}

/* Whether the profiles' field matches member (exact, else in any case). */
static bool field_matches(const char *field, const char *member, bool exact)
{
	return exact ? strcmp(field, member) == 0 : str_eq_ci(field, member);
}

/*
 * Sets every annotation the profiles map member m to: the fields named exactly
 * so, else those named so in another case (as Go's encoding/json matches). A
 * member no profile declares is ignored, whatever its type, as Go does.
 */
static int json_member_set(const struct json_ctx *c, struct entry *e,
			   const char *key, const cJSON *m)
{
	char number[32];
	const char *v = NULL;

	if (c->profiles == NULL)
		return 0;
	for (int exact = 1; exact >= 0; exact--) {
		bool found = false;

		for (size_t i = 0; i < profile_set_count(c->profiles); i++) {
			const struct profile *p =
				profile_set_get(c->profiles, i);

			for (size_t j = 0; j < p->n_map_fields; j++) {
				int rc;

				if (!field_matches(p->map_fields[j].field,
						   m->string, exact))
					continue;
				found = true;
				if (v == NULL &&
				    (v = member_text(m, number,
						     sizeof(number))) == NULL)
					return json_fail(c, key,
							 "not a string, "
							 "boolean, integer or "
							 "null",
							 m->string);
				if (v[0] == '\0')
					continue;
				rc = set_annotation(e,
						    p->map_fields[j].annotation,
						    v, strlen(v));
				if (rc != 0)
					return rc;
			}
		}
		if (found)
			return 0;
	}
	return 0;
}

static int json_entry(struct json_ctx *c, const cJSON *item)
{
	const char *key = item->string, *slash = strchr(key, '/');
	struct entry *e = NULL;
	int rc;

	if (slash == NULL || slash == key || slash[1] == '\0' ||
	    strchr(slash + 1, '/'))
		return json_fail(c, key, "the key is not namespace/name", NULL);
	if (!cJSON_IsObject(item))
		return json_fail(c, key, "not an object", NULL);
	rc = add_entry(c->map, key, (size_t)(slash - key), slash + 1,
		       strlen(slash + 1), key_line(c, key), &e);
	for (const cJSON *m = item->child; rc == 0 && m; m = m->next)
		rc = json_member_set(c, e, key, m);
	if (rc == DIAG_EPARSE)
		return rc;
	if (rc == DIAG_ELIMIT)
		return diag_set_at(c->d, rc, c->source, key_line(c, key),
				   "too many entries or annotations");
	return rc ? diag_set(c->d, rc, "out of memory") : 0;
}

static int parse_json(struct json_ctx *c)
{
	cJSON *root = NULL;
	int rc = json_parse(c->text, c->len, &root, c->d);

	if (rc != 0) {
		diag_locate(c->d, c->source, 0);
		return rc;
	}
	if (!cJSON_IsObject(root))
		rc = diag_set_at(c->d, DIAG_EPARSE, c->source, 1,
				 "the JSON form is an object of "
				 "\"namespace/name\": {...} entries");
	for (const cJSON *item = root->child; rc == 0 && item;
	     item = item->next)
		rc = json_entry(c, item);
	cJSON_Delete(root);
	return rc;
}

/* Drops all but the last of equal keys (the JSON form: as Go's map). */
static void keep_last(struct identity_map *map)
{
	size_t out = 0;

	for (size_t i = 0; i < map->n; i++) {
		struct entry *e = &map->entries[i];

		if (i + 1 < map->n &&
		    compare_keys(e->namespace, e->name, e[1].namespace,
				 e[1].name) == 0) {
			entry_clear(e);
			continue;
		}
		map->entries[out++] = *e;
	}
	map->n = out;
}

/* Refuses equal keys (our form), naming both lines. */
static int refuse_twice(const struct identity_map *map, const char *source,
			struct diag *d)
{
	for (size_t i = 1; i < map->n; i++) {
		const struct entry *a = &map->entries[i - 1],
				   *b = &map->entries[i];

		if (compare_keys(a->namespace, a->name, b->namespace,
				 b->name) == 0)
			return diag_set_at(
				d, DIAG_EPARSE, source, b->line,
				"[%.63s/%.253s] appears twice (first at line %d)",
				b->namespace, b->name, a->line);
	}
	return 0;
}

static bool is_json(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' &&
		    text[i] != '\r')
			return text[i] == '{';
	}
	return false;
}

int identity_map_parse(const char *text, size_t len, const char *source,
		       const struct profile_set *profiles,
		       struct identity_map **ret, struct diag *d)
{
	struct identity_map *map = mem_calloc(1, sizeof(*map));
	bool json = is_json(text, len);
	int rc;

	*ret = NULL;
	if (map == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	if (json) {
		struct json_ctx c = { map, profiles, text, len, source, d };

		rc = parse_json(&c);
	} else {
		rc = parse_text(text, len, source, map, d);
	}
	if (rc == 0 && map->n > 1) {
		qsort(map->entries, map->n, sizeof(*map->entries),
		      compare_entries);
		if (json)
			keep_last(map);
		else
			rc = refuse_twice(map, source, d);
	}
	if (rc != 0) {
		identity_map_free(map);
		return rc;
	}
	*ret = map;
	return 0;
}

/* ---- applying ---- */

static const struct entry *find(const struct identity_map *map, const char *ns,
				const char *name)
{
	size_t lo = 0, hi = map->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct entry *e = &map->entries[mid];
		int c = compare_keys(ns, name, e->namespace, e->name);

		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool has_key(const struct sa_annotation *list, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(list[i].key, key) == 0)
			return true;
	}
	return false;
}

int identity_map_apply(const struct identity_map *map,
		       const struct service_account *sa,
		       struct service_account **ret_sa)
{
	const struct entry *found[4] = {
		find(map, sa->namespace, sa->name),
		find(map, ANY, sa->name),
		find(map, sa->namespace, ANY),
		find(map, ANY, ANY),
	};
	struct sa_annotation *list;
	size_t n = sa->n_annotations, max = n;
	int rc = 0;

	*ret_sa = NULL;
	for (size_t i = 0; i < 4; i++)
		max += found[i] ? found[i]->n : 0;
	if (max == n)
		return 0;
	list = mem_alloc(max * sizeof(*list));
	if (list == NULL)
		return DIAG_ENOMEM;
	memcpy(list, sa->annotations, n * sizeof(*list));
	for (size_t i = 0; i < 4; i++) {
		for (size_t j = 0; found[i] && j < found[i]->n; j++) {
			if (!has_key(list, n, found[i]->annotations[j].key))
				list[n++] = found[i]->annotations[j];
		}
	}
	if (n > sa->n_annotations)
		rc = sa_new(sa->namespace, sa->name, list, n, ret_sa);
	mem_free(list);
	return rc;
}
