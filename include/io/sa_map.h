/*
 * sa_map: ServiceAccounts by namespace and name, in an open-addressing hash table.
 * Pure and not thread-safe: the sources put it behind their own lock.
 */
#ifndef PIW_SA_MAP_H
#define PIW_SA_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "service_account.h"

struct sa_map;

/* Creates an empty map sized for about `hint` entries. 0 or DIAG_ENOMEM. */
int sa_map_new(size_t hint, struct sa_map **ret);

/*
 * Inserts sa, taking ownership, replacing (and freeing) an entry with the same
 * namespace and name. On DIAG_ENOMEM sa is not taken: the caller still owns it.
 */
int sa_map_put(struct sa_map *m, struct service_account *sa);

/* Removes and frees an entry; whether it was there. */
bool sa_map_remove(struct sa_map *m, const char *namespace, const char *name);

/* The entry, or NULL. Valid until the map changes. */
const struct service_account *
sa_map_get(const struct sa_map *m, const char *namespace, const char *name);

size_t sa_map_count(const struct sa_map *m);

/* Bytes held by the table and its entries (for memory reporting). */
size_t sa_map_bytes(const struct sa_map *m);

/* Frees the map and every entry; accepts NULL. */
void sa_map_free(struct sa_map *m);

#endif
