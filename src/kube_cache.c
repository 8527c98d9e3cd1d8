/*
 * kube_cache: the ServiceAccount map of the kube_source module, and every change to
 * it. The map is guarded by the source's mutex, which is never held across network
 * I/O. A relist builds a fresh map while the old one keeps answering, then swaps it
 * in, so lookups never see a half-filled cache. A live GET's answer is inserted only
 * if the watch has not meanwhile delivered the object: the watch is the fresher
 * source.
 */
#include "kube_source_internal.h"

#include <time.h>

#include "sa_map.h"

static void kube_cache_publish(struct kube_source *k)
{
	atomic_store(&k->count, sa_map_count(k->map));
	atomic_store(&k->bytes, sa_map_bytes(k->map));
}

void kube_cache_synced(struct kube_source *k)
{
	atomic_store(&k->last_sync, (long long)time(NULL));
}

void kube_cache_apply(struct kube_source *k, struct kube_event *ev)
{
	pthread_mutex_lock(&k->lock);
	if (ev->type == KUBE_EVENT_DELETED) {
		sa_map_remove(k->map, ev->sa->namespace, ev->sa->name);
	} else if (sa_map_put(k->map, ev->sa) == 0) {
		ev->sa = NULL; /* the map owns it */
	}
	kube_cache_publish(k);
	pthread_mutex_unlock(&k->lock);
}

/* A copy of a cached entry (lock held). */
enum sa_lookup kube_cache_copy(const struct service_account *sa,
			       struct service_account **ret, struct diag *d)
{
	if (sa_new(sa->namespace, sa->name, sa->annotations, sa->n_annotations,
		   ret) != 0) {
		diag_set(d, DIAG_ENOMEM, "out of memory");
		return SA_LOOKUP_UNAVAILABLE;
	}
	return SA_LOOKUP_FOUND;
}

/* Lock held: inserts a live answer unless the watch delivered it meanwhile. */
void kube_cache_remember(struct kube_source *k,
			 const struct service_account *sa)
{
	struct service_account *copy = NULL;

	if (sa_map_get(k->map, sa->namespace, sa->name) != NULL ||
	    sa_new(sa->namespace, sa->name, sa->annotations, sa->n_annotations,
		   &copy) != 0)
		return;
	if (sa_map_put(k->map, copy) != 0)
		sa_free(copy);
	else
		kube_cache_publish(k);
}

void kube_cache_swap(struct kube_source *k, struct sa_map *fresh)
{
	struct sa_map *old;

	pthread_mutex_lock(&k->lock);
	old = k->map;
	k->map = fresh;
	kube_cache_publish(k);
	pthread_mutex_unlock(&k->lock);
	sa_map_free(old);
}
