/*
 * snapshot: a reference-counted value behind a mutex. The lock is held only to
 * read or swap the pointer and count its users, so requests never wait on a
 * reload's parsing, and a reload never waits on a request.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdbool.h>

#include "diag.h"
#include "mem.h"

struct snapshot {
	void *value;
	unsigned long refs; /* guarded by the holder's lock */
};

struct snapshot_holder {
	pthread_mutex_t lock;
	struct snapshot *current;
	void (*free_value)(void *);
};

static struct snapshot *snapshot_new(void *value)
{
	struct snapshot *s = mem_alloc(sizeof(*s));

	if (s) {
		s->value = value;
		s->refs = 1; /* the "current" reference */
	}
	return s;
}

int snapshot_holder_new(void *value, void (*free_value)(void *),
			struct snapshot_holder **ret)
{
	struct snapshot_holder *h = mem_calloc(1, sizeof(*h));

	*ret = NULL;
	if (h == NULL || (h->current = snapshot_new(value)) == NULL) {
		mem_free(h);
		return DIAG_ENOMEM;
	}
	h->free_value = free_value;
	pthread_mutex_init(&h->lock, NULL);
	*ret = h;
	return 0;
}

void *snapshot_acquire(struct snapshot_holder *h, void **handle)
{
	struct snapshot *s;

	pthread_mutex_lock(&h->lock);
	s = h->current;
	s->refs++;
	pthread_mutex_unlock(&h->lock);
	*handle = s;
	return s->value;
}

void snapshot_release(struct snapshot_holder *h, void *handle)
{
	struct snapshot *s = handle;
	bool last;

	pthread_mutex_lock(&h->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&h->lock);
	if (last) {
		h->free_value(s->value);
		mem_free(s);
	}
}

int snapshot_replace(struct snapshot_holder *h, void *value)
{
	struct snapshot *fresh = snapshot_new(value), *old;

	if (fresh == NULL)
		return DIAG_ENOMEM;
	pthread_mutex_lock(&h->lock);
	old = h->current;
	h->current = fresh;
	pthread_mutex_unlock(&h->lock);
	snapshot_release(h, old);
	return 0;
}

void snapshot_holder_free(struct snapshot_holder *h)
{
	if (h == NULL)
		return;
	snapshot_release(h, h->current);
	pthread_mutex_destroy(&h->lock);
	mem_free(h);
}
