/*
 * sa_map: linear probing over a power-of-two table of pointers, with tombstones for
 * removals; grows at 70% load (tombstones included). The hash covers namespace and
 * name, so two namespaces with the same ServiceAccount name do not collide by design.
 */
#include "sa_map.h"

#include <stdint.h>
#include <string.h>

#include "diag.h"
#include "mem.h"
#include "strutil.h"

#define TOMBSTONE ((struct service_account *)(uintptr_t)1)

struct sa_map {
	struct service_account **slots;
	size_t cap;   /* a power of two */
	size_t count; /* live entries */
	size_t used;  /* live entries + tombstones */
	size_t bytes; /* sum of sa_size() */
};

static uint64_t hash_key(const char *namespace, const char *name)
{
	uint64_t h = str_fnv1a(STR_FNV1A_BASIS, namespace);

	h = str_fnv1a(str_fnv1a(h, "/"), name);
	return h ^ (h >> 29);
}

static bool is_entry(const struct service_account *sa)
{
	return sa != NULL && sa != TOMBSTONE;
}

static bool matches(const struct service_account *sa, const char *ns,
		    const char *name)
{
	return is_entry(sa) && strcmp(sa->name, name) == 0 &&
	       strcmp(sa->namespace, ns) == 0;
}

int sa_map_new(size_t hint, struct sa_map **ret)
{
	struct sa_map *m = mem_calloc(1, sizeof(*m));
	size_t cap = 16;

	*ret = NULL;
	while (cap < hint + hint / 2)
		cap *= 2;
	if (m == NULL ||
	    (m->slots = mem_calloc(cap, sizeof(*m->slots))) == NULL) {
		mem_free(m);
		return DIAG_ENOMEM;
	}
	m->cap = cap;
	*ret = m;
	return 0;
}

/* The slot holding (ns, name), or the first free slot on its probe path. */
static size_t find_slot(const struct sa_map *m, const char *ns,
			const char *name, bool *found)
{
	size_t mask = m->cap - 1, i = hash_key(ns, name) & mask,
	       free_slot = SIZE_MAX;

	for (;;) {
		struct service_account *sa = m->slots[i];

		if (sa == NULL) {
			*found = false;
			return free_slot != SIZE_MAX ? free_slot : i;
		}
		if (sa == TOMBSTONE && free_slot == SIZE_MAX)
			free_slot = i;
		else if (matches(sa, ns, name)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int grow(struct sa_map *m)
{
	struct service_account **old = m->slots;
	size_t old_cap = m->cap,
	       cap = m->count * 2 >= m->cap ? m->cap * 2 : m->cap;
	bool found;

	m->slots = mem_calloc(cap, sizeof(*m->slots));
	if (m->slots == NULL) {
		m->slots = old;
		return DIAG_ENOMEM;
	}
	m->cap = cap;
	m->used = m->count;
	for (size_t i = 0; i < old_cap; i++) {
		if (is_entry(old[i]))
			m->slots[find_slot(m, old[i]->namespace, old[i]->name,
					   &found)] = old[i];
	}
	mem_free(old);
	return 0;
}

int sa_map_put(struct sa_map *m, struct service_account *sa)
{
	bool found;
	size_t i;

	if ((m->used + 1) * 10 > m->cap * 7 && grow(m) != 0)
		return DIAG_ENOMEM;
	i = find_slot(m, sa->namespace, sa->name, &found);
	if (found) {
		m->bytes -= sa_size(m->slots[i]);
		sa_free(m->slots[i]);
	} else {
		if (m->slots[i] == NULL)
			m->used++;
		m->count++;
	}
	m->slots[i] = sa;
	m->bytes += sa_size(sa);
	return 0;
}

bool sa_map_remove(struct sa_map *m, const char *namespace, const char *name)
{
	bool found;
	size_t i = find_slot(m, namespace, name, &found);

	if (!found)
		return false;
	m->bytes -= sa_size(m->slots[i]);
	sa_free(m->slots[i]);
	m->slots[i] = TOMBSTONE;
	m->count--;
	return true;
}

const struct service_account *
sa_map_get(const struct sa_map *m, const char *namespace, const char *name)
{
	bool found;
	size_t i = find_slot(m, namespace, name, &found);

	return found ? m->slots[i] : NULL;
}

size_t sa_map_count(const struct sa_map *m)
{
	return m->count;
}

size_t sa_map_bytes(const struct sa_map *m)
{
	return sizeof(*m) + m->cap * sizeof(*m->slots) + m->bytes;
}

void sa_map_free(struct sa_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (is_entry(m->slots[i]))
			sa_free(m->slots[i]);
	}
	mem_free(m->slots);
	mem_free(m);
}
