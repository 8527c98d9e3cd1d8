/*
 * profile_live: the profile set a running server uses, replaceable while requests are
 * in flight (SIGHUP). A request acquires the current set and releases it when done; a
 * replaced set is freed when its last request releases it.
 */
#ifndef PIW_PROFILE_LIVE_H
#define PIW_PROFILE_LIVE_H

#include "profile_set.h"

struct profile_live;

/* Takes ownership of set. 0 or DIAG_ENOMEM (set is then still the caller's). */
int profile_live_new(struct profile_set *set, struct profile_live **ret);

/* The current set, held until profile_live_release(handle). Thread-safe. */
const struct profile_set *profile_live_acquire(struct profile_live *l,
					       void **handle);
void profile_live_release(struct profile_live *l, void *handle);

/* Makes set (owned) current; the previous one goes when its last user releases it. */
int profile_live_replace(struct profile_live *l, struct profile_set *set);

/* Frees it; no set may still be acquired. Accepts NULL. */
void profile_live_free(struct profile_live *l);

#endif
