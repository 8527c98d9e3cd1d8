/*
 * settings: a small ordered name/value list. Linear search is right here: a
 * deployment has a handful of settings, and they are read a few times per
 * admission.
 */
#include "settings.h"

#include <string.h>

#include "bounds.h"
#include "mem.h"
#include "validate.h"

struct setting_pair {
	char *name;
	char *value;
};

struct settings {
	struct setting_pair items[BOUND_SETTINGS];
	size_t n;
	/* Options no fixed flag knew, kept until the profiles say whose
	 * setting each one is (profile_set_resolve_aliases). */
	struct setting_pair flags[BOUND_SETTINGS];
	size_t n_flags;
	settings_getenv_fn get_env;	/* reads the profiles' env aliases */
	char *disabled[BOUND_PROFILES]; /* profile names switched off */
	size_t n_disabled;
};

int settings_new(struct settings **ret)
{
	*ret = mem_calloc(1, sizeof(struct settings));
	return *ret ? 0 : DIAG_ENOMEM;
}

static void free_pairs(struct setting_pair *pairs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		mem_free(pairs[i].name);
		mem_free(pairs[i].value);
	}
}

void settings_free(struct settings *s)
{
	if (s == NULL)
		return;
	free_pairs(s->items, s->n);
	free_pairs(s->flags, s->n_flags);
	for (size_t i = 0; i < s->n_disabled; i++)
		mem_free(s->disabled[i]);
	mem_free(s);
}

static struct setting_pair *find_pair(const struct settings *s,
				      const char *name)
{
	for (size_t i = 0; s && i < s->n; i++) {
		if (strcmp(s->items[i].name, name) == 0)
			return (struct setting_pair *)&s->items[i];
	}
	return NULL;
}

static int check_pair(const char *name, const char *value, struct diag *d)
{
	if (!validate_simple_name(name, 63))
		return diag_set(
			d, DIAG_EINVAL,
			"setting name '%.64s' is not [a-z0-9-], 1-63 characters",
			name);
	if (strlen(value) > BOUND_SETTING_VALUE)
		return diag_set(d, DIAG_EINVAL,
				"setting '%s' is longer than %d bytes", name,
				BOUND_SETTING_VALUE);
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return diag_set(
				d, DIAG_EINVAL,
				"setting '%s' contains a control character",
				name);
	}
	return 0;
}

int settings_set(struct settings *s, const char *name, const char *value,
		 struct diag *d)
{
	struct setting_pair *pair;
	char *copy;
	int rc = check_pair(name, value, d);

	if (rc != 0)
		return rc;
	copy = mem_strdup(value);
	if (copy == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	pair = find_pair(s, name);
	if (pair) {
		mem_free(pair->value);
		pair->value = copy;
		return 0;
	}
	if (s->n == BOUND_SETTINGS) {
		mem_free(copy);
		return diag_set(d, DIAG_ELIMIT, "more than %d settings",
				BOUND_SETTINGS);
	}
	s->items[s->n].name = mem_strdup(name);
	if (s->items[s->n].name == NULL) {
		mem_free(copy);
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	s->items[s->n++].value = copy;
	return 0;
}

int settings_set_pair(struct settings *s, const char *pair, struct diag *d)
{
	const char *eq = strchr(pair, '=');
	char name[64];
	size_t n;

	if (eq == NULL)
		return diag_set(d, DIAG_EINVAL, "'%.64s' is not NAME=VALUE",
				pair);
	n = (size_t)(eq - pair);
	if (n == 0 || n >= sizeof(name))
		return diag_set(d, DIAG_EINVAL,
				"setting name in '%.64s' is empty or too long",
				pair);
	memcpy(name, pair, n);
	name[n] = '\0';
	return settings_set(s, name, eq + 1, d);
}

const char *settings_get(const struct settings *s, const char *name)
{
	const struct setting_pair *pair = find_pair(s, name);

	return pair ? pair->value : NULL;
}

size_t settings_count(const struct settings *s)
{
	return s ? s->n : 0;
}

const char *settings_name(const struct settings *s, size_t i)
{
	return s->items[i].name;
}

const char *settings_value(const struct settings *s, size_t i)
{
	return s->items[i].value;
}

int settings_add_flag(struct settings *s, const char *flag, const char *value,
		      struct diag *d)
{
	struct setting_pair *pair = &s->flags[s->n_flags];
	int rc = check_pair(flag, value, d);

	if (rc != 0)
		return rc;
	if (s->n_flags == BOUND_SETTINGS)
		return diag_set(d, DIAG_ELIMIT, "more than %d setting flags",
				BOUND_SETTINGS);
	pair->name = mem_strdup(flag);
	pair->value = mem_strdup(value);
	if (pair->name == NULL || pair->value == NULL) {
		mem_free(pair->name);
		mem_free(pair->value);
		pair->name = pair->value = NULL;
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	s->n_flags++;
	return 0;
}

size_t settings_flag_count(const struct settings *s)
{
	return s ? s->n_flags : 0;
}

const char *settings_flag_name(const struct settings *s, size_t i)
{
	return s->flags[i].name;
}

const char *settings_flag_value(const struct settings *s, size_t i)
{
	return s->flags[i].value;
}

void settings_set_env_source(struct settings *s, settings_getenv_fn get_env)
{
	s->get_env = get_env;
}

const char *settings_env(const struct settings *s, const char *name)
{
	return s && s->get_env ? s->get_env(name) : NULL;
}

int settings_disable_profile(struct settings *s, const char *name,
			     struct diag *d)
{
	if (!validate_simple_name(name, BOUND_PROFILE_NAME))
		return diag_set(d, DIAG_EINVAL,
				"'%.64s' is not a profile name ([a-z0-9-], "
				"1-%d characters)",
				name, BOUND_PROFILE_NAME);
	if (settings_profile_disabled(s, name))
		return 0;
	if (s->n_disabled == BOUND_PROFILES)
		return diag_set(d, DIAG_ELIMIT,
				"more than %d disabled profiles",
				BOUND_PROFILES);
	s->disabled[s->n_disabled] = mem_strdup(name);
	if (s->disabled[s->n_disabled] == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	s->n_disabled++;
	return 0;
}

bool settings_profile_disabled(const struct settings *s, const char *name)
{
	for (size_t i = 0; s && i < s->n_disabled; i++) {
		if (strcmp(s->disabled[i], name) == 0)
			return true;
	}
	return false;
}

size_t settings_disabled_count(const struct settings *s)
{
	return s ? s->n_disabled : 0;
}

const char *settings_disabled_name(const struct settings *s, size_t i)
{
	return s->disabled[i];
}
