/*
 * identity_file: a map behind a reference-counted snapshot, as profile_live
 * keeps profiles: the lock is held only to swap or take the pointer, so
 * requests never wait on a reload's parsing. A file's identity is what stat()
 * says after following links, which is what changes when Kubernetes swaps a
 * mounted ConfigMap's ..data link.
 */
#include "identity_file.h"

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "bounds.h"
#include "fileio.h"
#include "mem.h"

struct stamp {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct snapshot {
	struct identity_map *map;
	unsigned long refs; /* guarded by the owner's lock */
};

struct identity_file {
	char *path;
	struct stamp seen; /* of the last attempt, good or not */
	pthread_mutex_t lock;
	struct snapshot *current;
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

static void take_stamp(const char *path, struct stamp *s)
{
	struct stat st;

	memset(s, 0, sizeof(*s));
	if (stat(path, &st) != 0)
		return;
	s->exists = true;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->size = st.st_size;
	s->mtime = st.st_mtim;
	s->ctime = st.st_ctim;
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool same_stamp(const struct stamp *a, const struct stamp *b)
{
	if (!a->exists || !b->exists)
		return a->exists == b->exists;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       same_time(a->mtime, b->mtime) && same_time(a->ctime, b->ctime);
}

static struct snapshot *snapshot_new(struct identity_map *map)
{
	struct snapshot *s = mem_alloc(sizeof(*s));

	if (s) {
		s->map = map;
		s->refs = 1; /* the "current" reference */
	}
	return s;
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
	take_stamp(path, &f->seen);
	rc = identity_file_load(path, profiles, &map, d);
	if (rc == 0 && (f->current = snapshot_new(map)) == NULL)
		rc = diag_set(d, DIAG_ENOMEM, "out of memory");
	if (rc != 0) {
		identity_map_free(map);
		mem_free(f->path);
		mem_free(f);
		return rc;
	}
	pthread_mutex_init(&f->lock, NULL);
	*ret = f;
	return 0;
}

enum identity_file_reload
identity_file_reload(struct identity_file *f,
		     const struct profile_set *profiles, bool force,
		     struct diag *d)
{
	struct identity_map *map = NULL;
	struct snapshot *fresh, *old;
	struct stamp now;

	take_stamp(f->path, &now);
	if (!force && same_stamp(&now, &f->seen))
		return IDENTITY_FILE_UNCHANGED;
	f->seen = now; /* a broken file is reported once, not on every tick */
	if (identity_file_load(f->path, profiles, &map, d) != 0)
		return IDENTITY_FILE_FAILED;
	fresh = snapshot_new(map);
	if (fresh == NULL) {
		identity_map_free(map);
		diag_set(d, DIAG_ENOMEM, "out of memory");
		return IDENTITY_FILE_FAILED;
	}
	pthread_mutex_lock(&f->lock);
	old = f->current;
	f->current = fresh;
	pthread_mutex_unlock(&f->lock);
	identity_file_release(f, old);
	return IDENTITY_FILE_RELOADED;
}

const struct identity_map *identity_file_acquire(struct identity_file *f,
						 void **handle)
{
	struct snapshot *s;

	pthread_mutex_lock(&f->lock);
	s = f->current;
	s->refs++;
	pthread_mutex_unlock(&f->lock);
	*handle = s;
	return s->map;
}

void identity_file_release(struct identity_file *f, void *handle)
{
	struct snapshot *s = handle;
	bool last;

	pthread_mutex_lock(&f->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&f->lock);
	if (last) {
		identity_map_free(s->map);
		mem_free(s);
	}
}

const char *identity_file_path(const struct identity_file *f)
{
	return f->path;
}

void identity_file_free(struct identity_file *f)
{
	if (f == NULL)
		return;
	identity_file_release(f, f->current);
	pthread_mutex_destroy(&f->lock);
	mem_free(f->path);
	mem_free(f);
}
