/*
 * sa_files: the whole directory is read into a fresh map and swapped in only when
 * every file parsed, so a half-written or broken file never removes ServiceAccounts
 * that were there. Change detection stats the files on each poll: cheap for the
 * handful of manifests a local run has.
 */
#include "sa_files.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bounds.h"
#include "fileio.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include "sa_map.h"
#include "strutil.h"

#define MAX_FILES 4096

struct sa_files {
	struct sa_source base;
	char *dir;
	struct metrics *metrics;
	pthread_mutex_t lock; /* guards map */
	struct sa_map *map;
	uint64_t signature;
	atomic_size_t count;
};

static bool is_manifest(const char *dir, const char *name, struct stat *st)
{
	size_t n = strlen(name);
	char path[BOUND_PATH * 2];

	if (name[0] == '.' || n <= 5 || strcmp(name + n - 5, ".json") != 0)
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, st) == 0 && S_ISREG(st->st_mode);
}

/* A hash of every manifest's name, inode, size and mtime: changes when any does. */
static int dir_signature(const char *dir, uint64_t *ret, struct diag *d)
{
	DIR *dh = opendir(dir);
	struct dirent *e;
	uint64_t sig = 0;
	struct stat st;

	if (dh == NULL)
		return diag_set_at(d, DIAG_EIO, dir, 0, "%s", strerror(errno));
	while ((e = readdir(dh)) != NULL) {
		uint64_t h;

		if (!is_manifest(dir, e->d_name, &st))
			continue;
		h = str_fnv1a(STR_FNV1A_BASIS, e->d_name);
		h ^= (uint64_t)st.st_ino * 31 + (uint64_t)st.st_size * 131 +
		     (uint64_t)st.st_mtim.tv_sec * 1000003 +
		     (uint64_t)st.st_mtim.tv_nsec;
		sig += h * 2654435761ULL; /* order-independent */
	}
	closedir(dh);
	*ret = sig;
	return 0;
}

static int add_object(struct sa_map *map, const cJSON *obj, struct diag *d)
{
	struct service_account *sa = NULL;
	int rc = sa_from_json(obj, "default", NULL, NULL, &sa, d);

	if (rc == 0 && (rc = sa_map_put(map, sa)) != 0) {
		sa_free(sa);
		return diag_set(d, rc, "out of memory");
	}
	return rc;
}

static int add_manifest(struct sa_map *map, const cJSON *root, struct diag *d)
{
	const char *kind = json_string(root, "kind");
	const cJSON *items = NULL, *item;

	if (kind == NULL || (strcmp(kind, "List") != 0 &&
			     strcmp(kind, "ServiceAccountList") != 0))
		return add_object(map, root, d);
	if (json_member(root, "items", cJSON_Array, &items) == JSON_WRONG_TYPE)
		return diag_set(d, DIAG_EPARSE, "items is not an array");
	cJSON_ArrayForEach(item, items) {
		int rc = add_object(map, item, d);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static int load_file(struct sa_map *map, const char *path, struct diag *d)
{
	char *text = NULL;
	size_t len = 0;
	cJSON *root = NULL;
	int rc = file_read(path, BOUND_INPUT_FILE_BYTES, &text, &len, d);

	if (rc == 0)
		rc = json_parse(text, len, &root, d);
	if (rc == 0)
		rc = add_manifest(map, root, d);
	diag_locate(d, path, 0);
	cJSON_Delete(root);
	mem_free(text);
	return rc;
}

static int load_dir(const char *dir, struct sa_map **ret, struct diag *d)
{
	DIR *dh = opendir(dir);
	struct sa_map *map = NULL;
	struct dirent *e;
	struct stat st;
	char path[BOUND_PATH * 2];
	size_t files = 0;
	int rc;

	*ret = NULL;
	if (dh == NULL)
		return diag_set_at(d, DIAG_EIO, dir, 0, "%s", strerror(errno));
	rc = sa_map_new(64, &map) ? diag_set(d, DIAG_ENOMEM, "out of memory")
				  : 0;
	while (rc == 0 && (e = readdir(dh)) != NULL) {
		if (!is_manifest(dir, e->d_name, &st))
			continue;
		if (++files > MAX_FILES) {
			rc = diag_set_at(d, DIAG_ELIMIT, dir, 0,
					 "more than %d files", MAX_FILES);
			break;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		rc = load_file(map, path, d);
	}
	closedir(dh);
	if (rc != 0) {
		sa_map_free(map);
		return rc;
	}
	*ret = map;
	return 0;
}

static struct sa_files *from_base(struct sa_source *s)
{
	return (struct sa_files *)s;
}

static enum sa_lookup files_lookup(struct sa_source *s, const char *namespace,
				   const char *name,
				   struct service_account **ret_sa,
				   struct diag *d)
{
	struct sa_files *f = from_base(s);
	const struct service_account *sa;
	enum sa_lookup result = SA_LOOKUP_NOT_FOUND;

	*ret_sa = NULL;
	pthread_mutex_lock(&f->lock);
	sa = sa_map_get(f->map, namespace, name);
	if (sa && sa_new(sa->namespace, sa->name, sa->annotations,
			 sa->n_annotations, ret_sa) != 0) {
		diag_set(d, DIAG_ENOMEM, "out of memory");
		result = SA_LOOKUP_UNAVAILABLE;
	} else if (sa) {
		result = SA_LOOKUP_FOUND;
	}
	pthread_mutex_unlock(&f->lock);
	return result;
}

static bool files_ready(struct sa_source *s)
{
	(void)s;
	return true; /* loaded before the source was handed out */
}

static size_t files_count(struct sa_source *s)
{
	return atomic_load(&from_base(s)->count);
}

static void swap_in(struct sa_files *f, struct sa_map *map, uint64_t sig)
{
	struct sa_map *old;

	pthread_mutex_lock(&f->lock);
	old = f->map;
	f->map = map;
	pthread_mutex_unlock(&f->lock);
	f->signature = sig;
	atomic_store(&f->count, sa_map_count(map));
	sa_map_free(old);
}

static void files_poll(struct sa_source *s)
{
	struct sa_files *f = from_base(s);
	struct sa_map *map = NULL;
	uint64_t sig = 0;
	char why[600], count[24];
	struct diag d;

	diag_clear(&d);
	if (dir_signature(f->dir, &sig, &d) == 0 && sig == f->signature)
		return;
	f->signature = sig; /* report a broken state once, not on every poll */
	if (d.code != DIAG_OK || load_dir(f->dir, &map, &d) != 0) {
		diag_format(&d, why, sizeof(why));
		log_event(LOG_ERROR, "service_accounts_reload_failed", "dir",
			  f->dir, "error", why, "kept",
			  "previous ServiceAccounts", NULL);
		if (f->metrics)
			metrics_sa_reload(f->metrics, false);
		return;
	}
	swap_in(f, map, sig);
	snprintf(count, sizeof(count), "%zu", sa_map_count(map));
	log_event(LOG_INFO, "service_accounts_reloaded", "dir", f->dir, "count",
		  count, NULL);
	if (f->metrics) {
		metrics_sa_reload(f->metrics, true);
		metrics_sa_source(f->metrics, f->base.name, true,
				  sa_map_count(map));
	}
}

static void files_free(struct sa_source *s)
{
	struct sa_files *f = from_base(s);

	sa_map_free(f->map);
	pthread_mutex_destroy(&f->lock);
	mem_free(f->dir);
	mem_free(f);
}

int sa_files_new(const char *dir, struct metrics *metrics,
		 struct sa_source **ret, struct diag *d)
{
	struct sa_files *f = mem_calloc(1, sizeof(*f));
	int rc;

	*ret = NULL;
	if (f == NULL || (f->dir = mem_strdup(dir)) == NULL) {
		mem_free(f);
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	f->base = (struct sa_source){ .name = "files",
				      .lookup = files_lookup,
				      .lookup_cached = files_lookup,
				      .ready = files_ready,
				      .count = files_count,
				      .poll = files_poll,
				      .free = files_free };
	f->metrics = metrics;
	pthread_mutex_init(&f->lock, NULL);
	rc = dir_signature(dir, &f->signature, d);
	if (rc == 0)
		rc = load_dir(dir, &f->map, d);
	if (rc != 0) {
		files_free(&f->base);
		return rc;
	}
	atomic_store(&f->count, sa_map_count(f->map));
	if (metrics)
		metrics_sa_source(metrics, f->base.name, true,
				  sa_map_count(f->map));
	*ret = &f->base;
	return 0;
}
