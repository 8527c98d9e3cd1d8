/*
 * mem: the one allocation wrapper. Every allocation of the project, and cJSON's
 * through its hooks, goes through here so tests can fail the Nth allocation and
 * check that each error path frees what it took.
 */
#ifndef PIW_MEM_H
#define PIW_MEM_H

#include <stdbool.h>
#include <stddef.h>

/* malloc/calloc/realloc/free with failure injection; mem_free accepts NULL. */
void *mem_alloc(size_t size);
void *mem_calloc(size_t nmemb, size_t size);
void *mem_realloc(void *ptr, size_t size);
void mem_free(void *ptr);

/*
 * Returns a copy of s (or of its first n bytes, NUL-terminated), NULL when out
 * of memory.
 */
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);

/*
 * Routes cJSON's allocations through this module. Call once, before any thread
 * starts.
 */
void mem_install_json_hooks(void);

/*
 * Test hook: the allocation `n` calls from now fails (0 = the next one), and
 * every one after it succeeds again. A negative n disarms. Thread-safe.
 */
void mem_fail_after(long n);

/*
 * Test hook: whether the injected failure has fired since the last
 * mem_fail_after().
 */
int mem_failure_fired(void);

/*
 * A bump allocator for one request's short-lived JSON tree: parsing a pod makes
 * hundreds of small allocations that all die together, which glibc's malloc pays
 * for dearly (fastbin consolidation). It is passed explicitly to whoever allocates
 * from it (json_parse_with()), as cmark passes cmark_mem: mem_alloc and friends
 * never use it. Blocks come from the caller's buffer first, then from growing
 * chunks up to `max` bytes in all; they are never freed one by one, stay valid on
 * any thread, and all go with mem_arena_release().
 */
struct mem_arena_chunk;
struct mem_arena {
	char *buf; /* the block being filled */
	size_t size, used;
	size_t total, max; /* bytes in chunks, and their limit */
	bool exhausted;	   /* an allocation failed for want of room */
	struct mem_arena_chunk *chunks;
};

/* Prepares an arena that uses buf (may be NULL) before any chunk. */
void mem_arena_init(struct mem_arena *a, void *buf, size_t size, size_t max);

/*
 * size bytes (16-byte aligned) from a, NULL when out of memory or past `max`
 * (then a->exhausted is set). Subject to mem_fail_after() like mem_alloc.
 */
void *mem_arena_alloc(struct mem_arena *a, size_t size);

/* The largest size mem_arena_alloc(a, size) can give from the block being
 * filled, without a new chunk. */
size_t mem_arena_room(const struct mem_arena *a);

/* Frees a's chunks: none of its blocks may be used afterwards. Any thread. */
void mem_arena_release(struct mem_arena *a);

#endif
