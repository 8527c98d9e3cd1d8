/*
 * json_prune: a one-pass JSON parser that validates the whole document, as strictly
 * as json_parse(), but builds cJSON nodes only for the members a schema names. The
 * server parses every AdmissionReview this way: a pod's managedFields, resources,
 * probes, ports... are checked and skipped, never allocated.
 */
#ifndef PIW_JSON_PRUNE_H
#define PIW_JSON_PRUNE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

/*
 * What to keep of an object: a list of members ended by an entry with key NULL. For
 * each member: members NULL keeps its whole value; members non-NULL keeps, of an
 * object value, only those members; with `each`, the value is an array and every
 * element is kept that way. A value of another type than the schema expects is kept
 * whole (the reader's type checks then see it as it is).
 */
struct json_keep {
	const char *key;
	const struct json_keep *members;
	bool each;
};

/*
 * Parses len bytes; the root value, if an object, keeps only `members` (anything
 * else is kept whole). Accepts and refuses exactly what json_parse() does, with the
 * same kind of reason; on success *ret_root is the pruned tree (cJSON_Delete).
 */
int json_parse_pruned(const char *buf, size_t len,
		      const struct json_keep *members, cJSON **ret_root,
		      struct diag *d);

/*
 * Removes from a full tree what json_parse_pruned() would not have built (for tests
 * and the differential fuzz target).
 */
void json_prune_tree(cJSON *root, const struct json_keep *members);

#endif
