/*
 * mem: allocation wrapper with failure injection.
 *
 * The countdown is the single piece of process-wide mutable state outside
 * main.c and the server: it exists for the allocation-failure tests (STYLE.md
 * rule 15) and is an atomic that production code never arms, so the hot path
 * pays one relaxed load.
 */
#include "mem.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_countdown = -1;
static atomic_int failure_fired;

#define ARENA_ALIGN 16

struct mem_arena_chunk {
	struct mem_arena_chunk *next;
	size_t size;
	_Alignas(16) char data[];
};

static int injected_failure(void)
{
	long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);

	if (left < 0)
		return 0;
	left = atomic_fetch_sub(&fail_countdown, 1);
	if (left == 0) {
		atomic_store(&failure_fired, 1);
		return 1;
	}
	if (left < 0)
		atomic_store(&fail_countdown, -1);
	return 0;
}

/* ---- the arena ---- */

static bool arena_grow(struct mem_arena *a, size_t need)
{
	size_t size = a->size * 2 > need ? a->size * 2 : need;
	struct mem_arena_chunk *c;

	if (size < 16384)
		size = 16384;
	if (a->total + size > a->max) {
		a->exhausted = true;
		return false;
	}
	c = malloc(sizeof(*c) + size);
	if (c == NULL)
		return false;
	c->next = a->chunks;
	c->size = size;
	a->chunks = c;
	a->buf = c->data;
	a->size = size;
	a->used = 0;
	a->total += size;
	return true;
}

void *mem_arena_alloc(struct mem_arena *a, size_t size)
{
	size_t need = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	char *block;

	if (injected_failure())
		return NULL;
	if (need == 0)
		need = ARENA_ALIGN;
	if (size > a->max) {
		a->exhausted = true;
		return NULL;
	}
	if (a->used + need > a->size && !arena_grow(a, need))
		return NULL;
	block = a->buf + a->used;
	a->used += need;
	return block;
}

size_t mem_arena_room(const struct mem_arena *a)
{
	return (a->size - a->used) & ~(size_t)(ARENA_ALIGN - 1);
}

void mem_arena_init(struct mem_arena *a, void *buf, size_t size, size_t max)
{
	memset(a, 0, sizeof(*a));
	a->buf = buf;
	a->size = buf ? size : 0;
	a->max = max;
}

void mem_arena_release(struct mem_arena *a)
{
	while (a->chunks) {
		struct mem_arena_chunk *next = a->chunks->next;

		free(a->chunks);
		a->chunks = next;
	}
	a->buf = NULL;
	a->size = a->used = 0;
}

/* ---- the wrapper ---- */

void *mem_alloc(size_t size)
{
	if (injected_failure())
		return NULL;
	return malloc(size == 0 ? 1 : size);
}

void *mem_calloc(size_t nmemb, size_t size)
{
	if (injected_failure())
		return NULL;
	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	return calloc(nmemb, size);
}

void *mem_realloc(void *ptr, size_t size)
{
	if (injected_failure())
		return NULL;
	return realloc(ptr, size == 0 ? 1 : size);
}

void mem_free(void *ptr)
{
	free(ptr);
}

char *mem_strndup(const char *s, size_t n)
{
	char *copy = mem_alloc(n + 1);

	if (copy == NULL)
		return NULL;
	memcpy(copy, s, n);
	copy[n] = '\0';
	return copy;
}

char *mem_strdup(const char *s)
{
	return mem_strndup(s, strlen(s));
}

void mem_install_json_hooks(void)
{
	cJSON_Hooks hooks = { .malloc_fn = mem_alloc, .free_fn = mem_free };

	cJSON_InitHooks(&hooks);
}

void mem_fail_after(long n)
{
	atomic_store(&failure_fired, 0);
	atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

int mem_failure_fired(void)
{
	return atomic_load(&failure_fired);
}
