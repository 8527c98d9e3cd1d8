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
 * for dearly (fastbin consolidation). While an arena is entered on a thread,
 * mem_alloc and friends take memory from it (the caller's buffer first, then
 * growing chunks up to `max` bytes in all); once detached they use malloc
 * again, and its blocks stay until mem_arena_leave() releases everything. The
 * review pipeline enters one only around a request's parse (review.c).
 */
struct mem_arena_chunk;
struct mem_arena {
	char *buf; /* the block being filled */
	size_t size, used;
	size_t total, max; /* bytes in chunks, and their limit */
	bool allocating;
	bool exhausted; /* an allocation failed for want of room */
	struct mem_arena_chunk *chunks;
	char *first; /* the caller's buffer */
	size_t first_size;
};

/* Prepares an arena that uses buf (may be NULL) before any chunk. */
void mem_arena_init(struct mem_arena *a, void *buf, size_t size, size_t max);

/* Makes a the calling thread's arena, allocating from it. */
void mem_arena_enter(struct mem_arena *a);

/*
 * Stops allocating from a and forgets it on this thread, keeping its blocks:
 * they stay valid, read-only (never freed or reallocated one by one), on any
 * thread, until mem_arena_leave(a), which any thread may call.
 */
void mem_arena_detach(struct mem_arena *a);

/* Forgets a on this thread and frees its chunks: none of its blocks may be used
 * afterwards. */
void mem_arena_leave(struct mem_arena *a);

#endif
