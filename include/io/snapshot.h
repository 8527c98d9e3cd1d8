/*
 * snapshot: a value that a running server replaces while requests use it (the
 * profile set on SIGHUP, the identity map when its file changes). A request
 * acquires the current value and releases it when done; a replaced value is
 * freed, with the destructor given at creation, when its last user releases it.
 */
#ifndef PIW_SNAPSHOT_H
#define PIW_SNAPSHOT_H

struct snapshot_holder;

/*
 * Takes ownership of value (freed with free_value, which accepts what it is
 * given). 0, or DIAG_ENOMEM with value still the caller's.
 */
int snapshot_holder_new(void *value, void (*free_value)(void *),
			struct snapshot_holder **ret);

/* The current value, held until snapshot_release(handle). Thread-safe. */
void *snapshot_acquire(struct snapshot_holder *h, void **handle);
void snapshot_release(struct snapshot_holder *h, void *handle);

/*
 * Makes value (owned) current; the previous one goes when its last user
 * releases it. 0, or DIAG_ENOMEM with value still the caller's.
 */
int snapshot_replace(struct snapshot_holder *h, void *value);

/* Frees the holder and its current value; nothing may still be acquired.
 * Accepts NULL. */
void snapshot_holder_free(struct snapshot_holder *h);

#endif
