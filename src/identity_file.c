/*
 * identity_file: the identity map a running server uses, in a snapshot holder
 * (snapshot.c) so requests never wait on a reload's parsing, and reloaded when
 * the file's stamp (fileio.h) changes, which is also what happens when
 * Kubernetes swaps a mounted ConfigMap's ..data link.
 */
#include "identity_file.h"

#include "bounds.h"
#include "fileio.h"
#include "mem.h"
#include "snapshot.h"

struct identity_file {
	char *path;
	struct file_stamp seen; /* of the last attempt, good or not */
	struct snapshot_holder *holder;
};

int identity_file_load(const char *path, const struct profile_set *profiles,
		       struct identity_map **ret, struct diag *d)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*ret = NULL;
	rc = file_read(path, BOUND_MAP_FILE_BYTES, &text, &len, d);
	if (rc == 0)
		rc = identity_map_parse(text, len, path, profiles, ret, d);
	diag_locate(d, path, 0);
	mem_free(text);
	return rc;
}

static void free_map(void *map)
{
	identity_map_free(map);
}

int identity_file_open(const char *path, const struct profile_set *profiles,
		       struct identity_file **ret, struct diag *d)
{
	struct identity_file *f = mem_calloc(1, sizeof(*f));
	struct identity_map *map = NULL;
	int rc;

	*ret = NULL;
	if (f == NULL || (f->path = mem_strdup(path)) == NULL) {
		mem_free(f);
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	file_stamp_take(path, &f->seen);
	rc = identity_file_load(path, profiles, &map, d);
	if (rc == 0 && snapshot_holder_new(map, free_map, &f->holder) != 0)
		rc = diag_set(d, DIAG_ENOMEM, "out of memory");
	if (rc != 0) {
		identity_map_free(map);
		mem_free(f->path);
		mem_free(f);
		return rc;
	}
	*ret = f;
	return 0;
}

enum identity_file_reload
identity_file_reload(struct identity_file *f,
		     const struct profile_set *profiles, bool force,
		     struct diag *d)
{
	struct identity_map *map = NULL;
	struct file_stamp now;

	file_stamp_take(f->path, &now);
	if (!force && file_stamp_equal(&now, &f->seen))
		return IDENTITY_FILE_UNCHANGED;
	f->seen = now; /* a broken file is reported once, not on every tick */
	if (identity_file_load(f->path, profiles, &map, d) != 0)
		return IDENTITY_FILE_FAILED;
	if (snapshot_replace(f->holder, map) != 0) {
		identity_map_free(map);
		diag_set(d, DIAG_ENOMEM, "out of memory");
		return IDENTITY_FILE_FAILED;
	}
	return IDENTITY_FILE_RELOADED;
}

const struct identity_map *identity_file_acquire(struct identity_file *f,
						 void **handle)
{
	return snapshot_acquire(f->holder, handle);
}

void identity_file_release(struct identity_file *f, void *handle)
{
	snapshot_release(f->holder, handle);
}

const char *identity_file_path(const struct identity_file *f)
{
	return f->path;
}

void identity_file_free(struct identity_file *f)
{
	if (f == NULL)
		return;
	snapshot_holder_free(f->holder);
	mem_free(f->path);
	mem_free(f);
}
