/*
 * profile_live: a reference-counted snapshot behind a mutex. The lock is held only to
 * read the pointer and bump its count, so requests never wait on a reload's parsing.
 */
#include "profile_live.h"

#include <pthread.h>
#include <stdbool.h>

#include "diag.h"
#include "mem.h"

struct snapshot {
	struct profile_set *set;
	unsigned long refs; /* guarded by the owner's lock */
};

struct profile_live {
	pthread_mutex_t lock;
	struct snapshot *current;
};

static struct snapshot *snapshot_new(struct profile_set *set)
{
	struct snapshot *s = mem_alloc(sizeof(*s));

	if (s) {
		s->set = set;
		s->refs = 1; /* the "current" reference */
	}
	return s;
}

int profile_live_new(struct profile_set *set, struct profile_live **ret)
{
	struct profile_live *l = mem_calloc(1, sizeof(*l));

	*ret = NULL;
	if (l == NULL || (l->current = snapshot_new(set)) == NULL) {
		mem_free(l);
		return DIAG_ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	*ret = l;
	return 0;
}

const struct profile_set *profile_live_acquire(struct profile_live *l,
					       void **handle)
{
	struct snapshot *s;

	pthread_mutex_lock(&l->lock);
	s = l->current;
	s->refs++;
	pthread_mutex_unlock(&l->lock);
	*handle = s;
	return s->set;
}

void profile_live_release(struct profile_live *l, void *handle)
{
	struct snapshot *s = handle;
	bool last;

	pthread_mutex_lock(&l->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&l->lock);
	if (last) {
		profile_set_free(s->set);
		mem_free(s);
	}
}

int profile_live_replace(struct profile_live *l, struct profile_set *set)
{
	struct snapshot *fresh = snapshot_new(set), *old;

	if (fresh == NULL)
		return DIAG_ENOMEM;
	pthread_mutex_lock(&l->lock);
	old = l->current;
	l->current = fresh;
	pthread_mutex_unlock(&l->lock);
	profile_live_release(l, old);
	return 0;
}

void profile_live_free(struct profile_live *l)
{
	if (l == NULL)
		return;
	profile_live_release(l, l->current);
	pthread_mutex_destroy(&l->lock);
	mem_free(l);
}
