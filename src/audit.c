/*
 * audit: a running pod is judged by the webhook's own decision (the decide
 * step of the admission pipeline, review.h), taken as if the pod were created
 * now, and by comparing what it holds with what that decision would give it.
 * What a pod holds is read from the annotation the webhook records
 * (MUTATE_PROFILES_ANNOTATION) and from its containers' variables: to learn
 * what values the pod would get now, the variables of the profiles that apply
 * are taken out of a copy and the decision runs again on the copy (the mutator
 * keeps a variable a container already sets, so the live pod alone cannot
 * tell).
 */
#include "audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "mem.h"
#include "mutate.h"
#include "patch.h"
#include "profile.h"
#include "profile_set.h"
#include "review.h"
#include "service_account.h"
#include "strutil.h"

const char *audit_status_name(enum audit_status s)
{
	static const char *const names[] = {
#define AUDIT_NAME_ENTRY(name, text) [AUDIT_##name] = text,
		AUDIT_STATUSES(AUDIT_NAME_ENTRY)
#undef AUDIT_NAME_ENTRY
	};

	return (unsigned)s < AUDIT_N_STATUSES ? names[s] : "unknown";
}

static void verdict(struct audit_verdict *v, enum audit_status s,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void verdict(struct audit_verdict *v, enum audit_status s,
		    const char *fmt, ...)
{
	va_list ap;

	v->status = s;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static const char *pod_namespace(const cJSON *pod)
{
	const char *ns =
		json_string(cJSON_GetObjectItem(pod, "metadata"), "namespace");

	return ns ? ns : "default";
}

/*
 * The one decision: the decide step of the admission pipeline (review.h), the
 * webhook's answer for a CREATE of this pod now.
 */
static int decide(const cJSON *pod, const struct service_account *sa,
		  const struct review_policy *policy, struct mutation *m,
		  struct diag *d)
{
	return review_decide_pod(policy, pod, pod_namespace(pod), sa, m, d);
}

/* The profiles the webhook recorded on the pod when it mutated it, or "". */
static const char *recorded_profiles(const cJSON *pod)
{
	const cJSON *meta = cJSON_GetObjectItem(pod, "metadata");
	return or_empty(json_string(cJSON_GetObjectItem(meta, "annotations"),
				    MUTATE_PROFILES_ANNOTATION));
}

static void join_applied(const struct mutation *m, struct audit_verdict *v)
{
	size_t n = 0;

	v->profiles[0] = '\0';
	for (size_t i = 0; i < m->n_applied && n < sizeof(v->profiles); i++)
		n += (size_t)snprintf(v->profiles + n, sizeof(v->profiles) - n,
				      "%s%s", i ? "," : "", m->applied[i]);
}

/* The first recorded profile that no longer applies, copied into out. */
static bool recorded_not_applied(const char *recorded, const char *applied,
				 char *out, size_t size)
{
	const char *cursor = recorded, *item;
	size_t len;

	while (str_list_next(&cursor, ",", &item, &len)) {
		snprintf(out, size, "%.*s", (int)len, item);
		if (!str_list_contains(applied, ",", out))
			return true;
	}
	return false;
}

/* The declaration of a variable one of the applied profiles injects, or NULL. */
static const struct profile_env *injected_env(const struct profile_set *set,
					      const struct mutation *m,
					      const char *name)
{
	for (size_t i = 0; i < m->n_applied; i++) {
		const struct profile *p = profile_set_find(set, m->applied[i]);

		for (size_t j = 0; p && j < p->n_env; j++) {
			if (strcmp(p->env[j].name, name) == 0)
				return &p->env[j];
		}
	}
	return NULL;
}

/* True when name is a variable one of the applied profiles injects. */
static bool injected_name(const struct profile_set *set,
			  const struct mutation *m, const char *name)
{
	return injected_env(set, m, name) != NULL;
}

static const char *const container_kinds[] = { "containers", "initContainers" };

/* Removes from one container's env the variables the profiles inject. */
static void strip_container(cJSON *container, const struct profile_set *set,
			    const struct mutation *m)
{
	cJSON *env = cJSON_GetObjectItem(container, "env");
	cJSON *e = env ? env->child : NULL;

	while (e) {
		cJSON *next = e->next;

		if (injected_name(set, m, or_empty(json_string(e, "name"))))
			cJSON_Delete(cJSON_DetachItemViaPointer(env, e));
		e = next;
	}
}

/* Removes, from every container of a copy, the variables the profiles inject. */
static void strip_injected(cJSON *copy, const struct profile_set *set,
			   const struct mutation *m)
{
	const cJSON *spec = cJSON_GetObjectItem(copy, "spec");

	for (size_t k = 0; k < 2; k++) {
		cJSON *c;

		cJSON_ArrayForEach(
			c, cJSON_GetObjectItem(spec, container_kinds[k]))
			strip_container(c, set, m);
	}
}

static const cJSON *env_entry(const cJSON *container, const char *name)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, cJSON_GetObjectItem(container, "env")) {
		const char *n = json_string(e, "name");

		if (n && strcmp(n, name) == 0)
			return e;
	}
	return NULL;
}

/* What values_differ compares: the variables the applied profiles inject. */
struct injected {
	const struct profile_set *set;
	const struct mutation *m;
};

/*
 * Whether the live container holds every variable of a group that it would get.
 * A group goes into a container whole or not at all: a container that holds
 * only part of one set that part itself, and the webhook kept the group out.
 */
static bool holds_group(const cJSON *live, const cJSON *want,
			const struct injected *inj, const char *group)
{
	const cJSON *w;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(want, "env")) {
		const char *name = or_empty(json_string(w, "name"));
		const struct profile_env *e =
			injected_env(inj->set, inj->m, name);

		if (e && e->group && strcmp(e->group, group) == 0 &&
		    env_entry(live, name) == NULL)
			return false;
	}
	return true;
}

/* Whether a variable of the live container is one to compare: injected, held,
 * and not the user's part of a group. */
static bool compared(const cJSON *live, const cJSON *want,
		     const struct injected *inj, const char *name)
{
	const struct profile_env *e = injected_env(inj->set, inj->m, name);

	return e && env_entry(live, name) &&
	       (e->group == NULL || holds_group(live, want, inj, e->group));
}

/* Compares one container's injected variables with what it would get; true if
 * stale. */
static bool container_differs(const cJSON *live, const cJSON *want,
			      const struct injected *inj,
			      struct audit_verdict *v)
{
	const cJSON *w;

	cJSON_ArrayForEach(w, cJSON_GetObjectItem(want, "env")) {
		const char *name = or_empty(json_string(w, "name"));
		const char *now = or_empty(json_string(w, "value"));
		const cJSON *l = env_entry(live, name);
		const char *held = l ? json_string(l, "value") : NULL;

		if (!compared(live, want, inj, name) ||
		    (held && strcmp(held, now) == 0))
			continue;
		verdict(v, AUDIT_STALE,
			"container \"%.64s\": %.64s is \"%.160s\", would be "
			"\"%.160s\"",
			or_empty(json_string(live, "name")), name,
			held ? held : "(from valueFrom)", now);
		return true;
	}
	return false;
}

/* Walks the containers of the live pod and of what it would be, side by side. */
static bool values_differ(const cJSON *live, const cJSON *want,
			  const struct injected *inj, struct audit_verdict *v)
{
	const cJSON *ls = cJSON_GetObjectItem(live, "spec");
	const cJSON *ws = cJSON_GetObjectItem(want, "spec");

	for (size_t k = 0; k < 2; k++) {
		const cJSON *lc = cJSON_GetObjectItem(ls, container_kinds[k]);
		const cJSON *wc = cJSON_GetObjectItem(ws, container_kinds[k]);
		int n = cJSON_GetArraySize(lc);

		for (int i = 0; i < n && i < cJSON_GetArraySize(wc); i++) {
			if (container_differs(cJSON_GetArrayItem(lc, i),
					      cJSON_GetArrayItem(wc, i), inj,
					      v))
				return true;
		}
	}
	return false;
}

/*
 * What the pod would hold now: a copy without the injected variables, decided
 * on again, with the answer's patch applied. *ret_want is NULL (and 0 returned)
 * when the copy cannot be decided on as the pod was.
 */
static int would_be(const cJSON *pod, const struct service_account *sa,
		    const struct review_policy *policy,
		    const struct mutation *m, cJSON **ret_want, struct diag *d)
{
	cJSON *copy = cJSON_Duplicate(pod, true);
	struct mutation again;
	const char *text;
	size_t len;
	int rc;

	*ret_want = NULL;
	if (copy == NULL)
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	mutation_init(&again);
	strip_injected(copy, policy->profiles, m);
	rc = decide(copy, sa, policy, &again, d);
	if (rc == 0 && again.allowed && again.patch.n_ops > 0) {
		text = patch_text(&again.patch, &len);
		/* The patch is the mutator's own, which patch_apply accepts:
		 * applying it fails only when memory runs out. */
		if (text == NULL || patch_apply(copy, text, len, NULL) != 0)
			rc = diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	if (rc == 0 && again.allowed) {
		*ret_want = copy;
		copy = NULL;
	}
	mutation_free(&again);
	cJSON_Delete(copy);
	return rc;
}

/*
 * For a pod without our annotation, which the answer adds in one operation:
 * missing when the answer adds anything else. One that only lacks the
 * annotation holds the variables, volume and mounts already (put there by
 * another webhook, such as a platform's own, or by the pod itself): its values
 * are then compared as if we had recorded them.
 */
static bool lacks_more_than_the_annotation(const struct mutation *m,
					   struct audit_verdict *v)
{
	if (m->patch.n_ops <= 1)
		return false;
	verdict(v, AUDIT_MISSING,
		"would get %s now but does not hold it (created before the "
		"webhook, or while it was down)",
		v->profiles);
	return true;
}

/* A pod some profile applies to: ok, missing or stale. */
static int judge_applied(const cJSON *pod, const struct service_account *sa,
			 const struct review_policy *policy,
			 const struct mutation *m, struct audit_verdict *v,
			 struct diag *d)
{
	const char *recorded = recorded_profiles(pod);
	const struct injected inj = { policy->profiles, m };
	bool unrecorded = false;
	cJSON *want = NULL;
	char name[128];
	int rc;

	if (recorded[0] == '\0') {
		if (lacks_more_than_the_annotation(m, v))
			return 0;
		recorded = v->profiles;
		unrecorded = true;
	}
	if (recorded_not_applied(recorded, v->profiles, name, sizeof(name))) {
		verdict(v, AUDIT_STALE,
			"holds profile %s, which no longer "
			"applies",
			name);
		return 0;
	}
	if (recorded_not_applied(v->profiles, recorded, name, sizeof(name))) {
		verdict(v, AUDIT_STALE, "holds %.200s; would also get %s",
			recorded, name);
		return 0;
	}
	rc = would_be(pod, sa, policy, m, &want, d);
	if (rc == 0 && !(want && values_differ(pod, want, &inj, v)))
		verdict(v, AUDIT_OK, "%s",
			unrecorded ? "holds everything, but not from this "
				     "webhook (another one, or the pod itself)"
				   : "");
	cJSON_Delete(want);
	return rc;
}

/* A pod no profile applies to (now): stale when it holds one, else none/skipped. */
static void judge_unapplied(const cJSON *pod, const struct mutation *m,
			    struct audit_verdict *v)
{
	const char *recorded = recorded_profiles(pod);

	if (recorded[0])
		verdict(v, AUDIT_STALE,
			"holds %.200s, but no profile applies now (%.200s)",
			recorded,
			m->outcome == MUTATE_SKIPPED ? m->skip_reason
			: m->outcome == MUTATE_SA_NOT_FOUND
				? "its ServiceAccount is gone"
				: "no trigger on its ServiceAccount");
	else if (m->outcome == MUTATE_SKIPPED)
		verdict(v, AUDIT_SKIPPED, "%s", m->skip_reason);
	else if (m->outcome == MUTATE_SA_NOT_FOUND)
		verdict(v, AUDIT_NONE, "ServiceAccount not found");
	else if (m->outcome == MUTATE_NOT_UNDERSTOOD)
		verdict(v, AUDIT_NONE, "not understood: %.400s",
			strbuf_str(&m->message));
	else
		verdict(v, AUDIT_NONE, "%s", "");
}

int audit_judge_pod(const cJSON *pod, const struct service_account *sa,
		    const struct review_policy *policy, struct audit_verdict *v,
		    struct diag *d)
{
	struct mutation m;
	int rc;

	memset(v, 0, sizeof(*v));
	mutation_init(&m);
	rc = decide(pod, sa, policy, &m, d);
	if (rc == 0) {
		join_applied(&m, v);
		if (!m.allowed)
			verdict(v, AUDIT_DENIED, "%s", strbuf_str(&m.message));
		else if (m.n_applied > 0)
			rc = judge_applied(pod, sa, policy, &m, v, d);
		else
			judge_unapplied(pod, &m, v);
	}
	mutation_free(&m);
	return rc;
}

int audit_judge_service_account(const struct service_account *sa,
				const struct review_policy *policy,
				struct audit_verdict *v, struct diag *d)
{
	cJSON *pod = NULL, *meta, *spec, *containers, *c;
	int rc = DIAG_ENOMEM;

	memset(v, 0, sizeof(*v));
	if ((pod = cJSON_CreateObject()) == NULL ||
	    (meta = cJSON_AddObjectToObject(pod, "metadata")) == NULL ||
	    !cJSON_AddStringToObject(meta, "name", "audit") ||
	    !cJSON_AddStringToObject(meta, "namespace", sa->namespace) ||
	    (spec = cJSON_AddObjectToObject(pod, "spec")) == NULL ||
	    !cJSON_AddStringToObject(spec, "serviceAccountName", sa->name) ||
	    (containers = cJSON_AddArrayToObject(spec, "containers")) == NULL ||
	    (c = cJSON_CreateObject()) == NULL)
		goto out;
	cJSON_AddItemToArray(containers, c); /* containers owns c */
	if (!cJSON_AddStringToObject(c, "name", "audit"))
		goto out;
	rc = audit_judge_pod(pod, sa, policy, v, d);
	if (rc == 0 && v->status != AUDIT_DENIED)
		verdict(v, v->profiles[0] ? AUDIT_OK : AUDIT_NONE, "%s", "");
out:
	cJSON_Delete(pod);
	return rc == DIAG_ENOMEM ? diag_set(d, rc, "out of memory") : rc;
}
