/*
 * profile_dir: the directory walk around profile_parse. Names are sorted with
 * strcmp, not the locale, so load order (which decides env conflicts) is the
 * same everywhere.
 */
#include "profile_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bounds.h"
#include "fileio.h"
#include "mem.h"
#include "strbuf.h"

#define MAX_DIR_ENTRIES (BOUND_PROFILES * 2)

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_profile_file(const char *dir, const char *name)
{
	size_t n = strlen(name);
	char path[BOUND_PATH * 2];
	struct stat st;

	if (name[0] == '.' || n <= 4 || strcmp(name + n - 4, ".ini") != 0)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		mem_free(names[i]);
	mem_free(names);
}

/* Lists the profile files of dir, sorted. */
static int list_profiles(const char *dir, char ***ret_names, size_t *ret_n,
			 struct diag *d)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	char **names;
	size_t n = 0;
	int rc = 0;

	if (dh == NULL)
		return diag_set_at(d, DIAG_EIO, dir, 0, "%s", strerror(errno));
	names = mem_calloc(MAX_DIR_ENTRIES, sizeof(char *));
	if (names == NULL) {
		rc = diag_set_at(d, DIAG_ENOMEM, dir, 0, "out of memory");
		goto out;
	}
	while ((e = readdir(dh)) != NULL) {
		if (!is_profile_file(dir, e->d_name))
			continue;
		if (n == MAX_DIR_ENTRIES) {
			rc = diag_set_at(d, DIAG_ECONFIG, dir, 0,
					 "more than %d profile files",
					 MAX_DIR_ENTRIES);
			goto out;
		}
		names[n] = mem_strdup(e->d_name);
		if (names[n] == NULL) {
			rc = diag_set_at(d, DIAG_ENOMEM, dir, 0,
					 "out of memory");
			goto out;
		}
		n++;
	}
	qsort(names, n, sizeof(char *), compare_names);
	*ret_names = names;
	*ret_n = n;
	names = NULL;
out:
	closedir(dh);
	free_names(names, n);
	return rc;
}

static int load_one(struct profile_set *set, const char *dir, const char *name,
		    struct diag *d)
{
	char path[BOUND_PATH * 2];
	struct profile *p = NULL;
	char *text = NULL;
	size_t len = 0, stem = strlen(name) - 4;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rc = file_read(path, BOUND_PROFILE_BYTES, &text, &len, d);
	if (rc == 0)
		rc = profile_parse(text, len, path, &p, d);
	if (rc == 0 &&
	    (strlen(p->name) != stem || strncmp(p->name, name, stem) != 0))
		rc = diag_set_at(
			d, DIAG_ECONFIG, path, 0,
			"profile name '%s' does not match the file name '%.*s.ini'",
			p->name, (int)stem, name);
	if (rc == 0)
		rc = profile_set_add(set, p, d);
	if (rc != 0)
		profile_free(p);
	mem_free(text);
	return rc;
}

int profile_dir_load(const char *dir, struct profile_set **ret_set,
		     struct diag *d)
{
	struct profile_set *set = NULL;
	char **names = NULL;
	size_t n = 0;
	int rc;

	*ret_set = NULL;
	rc = profile_set_new_builtin(&set, d);
	if (rc == 0 && dir != NULL)
		rc = list_profiles(dir, &names, &n, d);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = load_one(set, dir, names[i], d);
	free_names(names, n);
	if (rc != 0) {
		profile_set_free(set);
		return rc;
	}
	*ret_set = set;
	return 0;
}

int profile_dir_load_checked(const char *dir, struct settings *settings,
			     struct profile_set **ret_set, struct diag *d)
{
	int rc = profile_dir_load(dir, ret_set, d);

	if (rc == 0 &&
	    ((rc = profile_set_drop_disabled(*ret_set, settings, d)) != 0 ||
	     (rc = profile_set_resolve_aliases(*ret_set, settings, d)) != 0 ||
	     (rc = profile_set_check_settings(*ret_set, settings, d)) != 0)) {
		profile_set_free(*ret_set);
		*ret_set = NULL;
	}
	return rc;
}
