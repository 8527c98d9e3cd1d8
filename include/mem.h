/*
 * mem: the one allocation wrapper. Every allocation of the project, and cJSON's
 * through its hooks, goes through here so tests can fail the Nth allocation and
 * check that each error path frees what it took.
 */
#ifndef PIW_MEM_H
#define PIW_MEM_H

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

#endif
