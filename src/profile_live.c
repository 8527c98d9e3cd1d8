/*
 * profile_live: the typed face of a snapshot holder (snapshot.c) for the
 * profile set, so callers cannot hand it another kind of value.
 */
#include "profile_live.h"

#include "diag.h"
#include "mem.h"
#include "snapshot.h"

struct profile_live {
	struct snapshot_holder *holder;
};

static void free_set(void *set)
{
	profile_set_free(set);
}

int profile_live_new(struct profile_set *set, struct profile_live **ret)
{
	struct profile_live *l = mem_calloc(1, sizeof(*l));

	*ret = NULL;
	if (l == NULL || snapshot_holder_new(set, free_set, &l->holder) != 0) {
		mem_free(l);
		return DIAG_ENOMEM;
	}
	*ret = l;
	return 0;
}

const struct profile_set *profile_live_acquire(struct profile_live *l,
					       void **handle)
{
	return snapshot_acquire(l->holder, handle);
}

void profile_live_release(struct profile_live *l, void *handle)
{
	snapshot_release(l->holder, handle);
}

int profile_live_replace(struct profile_live *l, struct profile_set *set)
{
	return snapshot_replace(l->holder, set);
}

void profile_live_free(struct profile_live *l)
{
	if (l == NULL)
		return;
	snapshot_holder_free(l->holder);
	mem_free(l);
}
