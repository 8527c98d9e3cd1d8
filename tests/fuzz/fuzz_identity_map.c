/*
 * Fuzz target: the identity map's two parsers (our sections and the AWS
 * webhook's ConfigMap JSON, chosen by the first byte). A map that parses is
 * applied to a few ServiceAccounts, whose own annotations must still win; a
 * refusal must name its source.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity_map.h"
#include "mem.h"
#include "profile.h"
#include "profile_set.h"
#include "service_account.h"

#include "fuzz.h"

/* A profile that maps the JSON form's members, as profiles/aws.ini does. */
static const char profile_text[] =
	"[profile]\nname = demo\n"
	"[trigger]\nannotation = demo.io/role\nformat = any\n"
	"[token]\naudience = demo\nexpiration = 3600\n"
	"[volume]\nname = demo-token\nmount-path = /var/run/demo\n"
	"file = token\n"
	"[identity-map-json]\nRoleARN = demo.io/role\nAudience = demo.io/aud\n"
	"UseRegionalSTS = demo.io/regional\nTokenExpiration = demo.io/expiry\n";

static struct profile_set *profiles; /* built once: the target's fixture */

static void fuzz_fixture(void)
{
	struct profile *p = NULL;

	if (profile_parse(profile_text, sizeof(profile_text) - 1, "demo.ini",
			  &p, NULL) != 0 ||
	    profile_set_new(&profiles) != 0 ||
	    profile_set_add(profiles, p, NULL) != 0)
		abort();
}

static void apply_one(const struct identity_map *map, const char *ns,
		      const char *name)
{
	struct sa_annotation own = { "demo.io/role", "own" };
	struct service_account *sa = NULL, *out = NULL;
	const char *v;

	if (sa_new(ns, name, &own, 1, &sa) != 0)
		abort();
	if (identity_map_apply(map, sa, &out) != 0)
		abort();
	v = sa_annotation(out ? out : sa, "demo.io/role");
	if (v == NULL || strcmp(v, "own") != 0)
		abort(); /* the ServiceAccount's own annotation wins */
	sa_free(out);
	sa_free(sa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct identity_map *map = NULL;
	struct diag d;

	diag_clear(&d);
	if (identity_map_parse((const char *)data, size, "fuzz.map", profiles,
			       &map, &d) != 0) {
		if (map != NULL || strcmp(d.where, "fuzz.map") != 0)
			abort(); /* refused whole, naming its source */
		return 0;
	}
	apply_one(map, "team", "app");
	apply_one(map, "default", "default");
	apply_one(map, "*", "*");
	identity_map_free(map);
	return 0;
}
