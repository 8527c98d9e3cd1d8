/*
 * identity_map: identities without annotations. A map from
 * namespace/serviceaccount ("*" for any namespace or any name) to annotations
 * that apply as if they were on the ServiceAccount; the ServiceAccount's own
 * annotations win. Pure: parsed from text, applied to a ServiceAccount; files
 * and reloading are identity_file's.
 *
 * Two forms, told apart by the first byte that is not white space:
 *
 *   '{'  a peer webhook's ConfigMap JSON (its `config` key, as mounted; see
 *        docs/identity-map.md): {"NAMESPACE/NAME": {"Member": ...}, ...}. No
 *        member name is known here: each member of an entry becomes the
 *        annotation a profile's [identity-map-json] section names for it
 *        (members matched as Go's encoding/json does: the exact name, else in
 *        any case; unknown members ignored, the last of two equal keys wins).
 *        Strings are taken as they are, true/false become "true"/"false",
 *        integers their decimal form; "", 0 and null leave the annotation
 *        unset (the peer's defaults).
 *
 *   else our own: sections of annotations, one per ServiceAccount,
 *        # a comment (or ;)
 *        [NAMESPACE/NAME]
 *        ANNOTATION = VALUE
 *        with NAMESPACE a DNS label or "*", NAME a DNS subdomain or "*",
 *        ANNOTATION a Kubernetes annotation key and VALUE the rest of the
 *        line, trimmed, not empty. A section twice, a key twice in a section,
 *        a key outside any section or a section without keys is an error.
 *
 * For one ServiceAccount the entries apply from the most specific on, each
 * annotation taken from the first that has it: [NAMESPACE/NAME], then NAME
 * with namespace "*", then NAMESPACE with name "*", then "*" for both.
 */
#ifndef PIW_IDENTITY_MAP_H
#define PIW_IDENTITY_MAP_H

#include <stddef.h>

#include "diag.h"

struct identity_map; /* immutable once parsed: share it between threads */
struct profile_set;
struct service_account;

/*
 * Parses len bytes of either form. profiles supplies the JSON form's members
 * (may be NULL: then a JSON entry maps to nothing). On success *ret owns a new
 * map (identity_map_free). Otherwise *ret is NULL and d says "source:line:
 * why" (line 0 for a JSON syntax error, whose text names the byte): the map is
 * refused whole. DIAG_EPARSE, DIAG_ELIMIT or DIAG_ENOMEM.
 */
int identity_map_parse(const char *text, size_t len, const char *source,
		       const struct profile_set *profiles,
		       struct identity_map **ret, struct diag *d);

/* How many entries the map holds. */
size_t identity_map_count(const struct identity_map *map);

/*
 * sa with the map's annotations added (its own win). *ret_sa is a new
 * ServiceAccount (sa_free) when the map adds any annotation, NULL when it adds
 * none (use sa as it is). 0 or DIAG_ENOMEM.
 */
int identity_map_apply(const struct identity_map *map,
		       const struct service_account *sa,
		       struct service_account **ret_sa);

/* Frees the map; accepts NULL. */
void identity_map_free(struct identity_map *map);

#endif
