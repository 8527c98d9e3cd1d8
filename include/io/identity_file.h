/*
 * identity_file: the identity map (identity_map.h) read from a file
 * (--identity-map, PIW_IDENTITY_MAP). `mutate` and `audit` load it once;
 * `serve` keeps it live: checked for a change on every reload tick and read
 * again on SIGHUP, replaced whole only when the new text parses (the last good
 * map stays otherwise), while each request keeps the map it started with.
 */
#ifndef PIW_IDENTITY_FILE_H
#define PIW_IDENTITY_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "identity_map.h"

struct profile_set;

/*
 * Reads and parses path once (profiles: those whose [identity-map-json]
 * sections map the JSON form). On success *ret owns the map
 * (identity_map_free). Otherwise *ret is NULL and d says "path:line: why":
 * DIAG_EIO, DIAG_ELIMIT, DIAG_EPARSE or DIAG_ENOMEM.
 */
int identity_file_load(const char *path, const struct profile_set *profiles,
		       struct identity_map **ret, struct diag *d);

struct identity_file;

/*
 * Loads path for a server: fails as identity_file_load() does (a server does
 * not start on a broken map). On success *ret owns the live file.
 */
int identity_file_open(const char *path, const struct profile_set *profiles,
		       struct identity_file **ret, struct diag *d);

enum identity_file_reload {
	IDENTITY_FILE_UNCHANGED, /* the file did not change: nothing done */
	IDENTITY_FILE_RELOADED,	 /* the new map serves from now on */
	IDENTITY_FILE_FAILED, /* d says why; the last good map keeps serving */
};

/*
 * Reads the file again when it changed since the last attempt (its device,
 * inode, size, modification or change time), or always when force. A change
 * that fails is reported once, not on every call. Call from one thread.
 */
enum identity_file_reload
identity_file_reload(struct identity_file *f,
		     const struct profile_set *profiles, bool force,
		     struct diag *d);

/* The current map, held until identity_file_release(handle). Thread-safe. */
const struct identity_map *identity_file_acquire(struct identity_file *f,
						 void **handle);
void identity_file_release(struct identity_file *f, void *handle);

/* The file's path, as given. */
const char *identity_file_path(const struct identity_file *f);

/* Frees it; no map may still be acquired. Accepts NULL. */
void identity_file_free(struct identity_file *f);

#endif
