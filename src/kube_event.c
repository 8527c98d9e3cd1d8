/*
 * kube_event: the API server's JSON for ServiceAccount lists and watch events. Every
 * field is type-checked before use: a hostile or broken stream yields DIAG_EPARSE and
 * a reason (the watch is then restarted), never a crash.
 */
#include "kube_event.h"

#include <stdio.h>
#include <string.h>

#include "json.h"

static const char *const type_names[] = { "ADDED", "MODIFIED", "DELETED",
					  "BOOKMARK", "ERROR" };

static int copy_rv(const cJSON *obj, char rv[KUBE_RV_MAX], struct diag *d)
{
	const cJSON *metadata = NULL;
	const char *value;

	rv[0] = '\0';
	if (json_member(obj, "metadata", cJSON_Object, &metadata) ==
	    JSON_WRONG_TYPE)
		return diag_set(d, DIAG_EPARSE, "metadata is not an object");
	value = json_string(metadata, "resourceVersion");
	if (value == NULL)
		return 0;
	if (strlen(value) >= KUBE_RV_MAX)
		return diag_set(d, DIAG_EPARSE,
				"resourceVersion longer than %d bytes",
				KUBE_RV_MAX - 1);
	memcpy(rv, value, strlen(value) + 1);
	return 0;
}

static void read_status(const cJSON *obj, struct kube_event *ev)
{
	const cJSON *code = NULL;
	const char *reason = json_string(obj, "reason");

	if (json_member(obj, "code", cJSON_Number, &code) == JSON_FOUND)
		ev->error_code = code->valueint;
	snprintf(ev->error_reason, sizeof(ev->error_reason), "%s",
		 reason ? reason : "");
}

static int parse_type(const char *type, enum kube_event_type *out)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]);
	     i++) {
		if (strcmp(type_names[i], type) == 0) {
			*out = (enum kube_event_type)i;
			return 0;
		}
	}
	return DIAG_EPARSE;
}

int kube_event_parse(const char *line, size_t len, sa_keep_fn keep,
		     void *keep_arg, struct kube_event *ev, struct diag *d)
{
	const cJSON *object = NULL;
	const char *type;
	cJSON *root = NULL;
	int rc;

	memset(ev, 0, sizeof(*ev));
	rc = json_parse(line, len, &root, d);
	if (rc != 0)
		return rc;
	type = json_string(root, "type");
	if (type == NULL || parse_type(type, &ev->type) != 0)
		rc = diag_set(d, DIAG_EPARSE,
			      "unknown watch event type '%.32s'",
			      type ? type : "");
	else if (json_member(root, "object", cJSON_Object, &object) !=
		 JSON_FOUND)
		rc = diag_set(d, DIAG_EPARSE, "watch event without an object");
	else if (ev->type == KUBE_EVENT_ERROR)
		read_status(object, ev);
	else
		rc = copy_rv(object, ev->resource_version, d);
	if (rc == 0 && ev->type <= KUBE_EVENT_DELETED)
		rc = sa_from_json(object, NULL, keep, keep_arg, &ev->sa, d);
	cJSON_Delete(root);
	if (rc != 0)
		kube_event_clear(ev);
	return rc;
}

void kube_event_clear(struct kube_event *ev)
{
	sa_free(ev->sa);
	ev->sa = NULL;
}

static int copy_continue(const cJSON *metadata, char cont[KUBE_CONTINUE_MAX],
			 struct diag *d)
{
	const char *value = json_string(metadata, "continue");

	cont[0] = '\0';
	if (value == NULL)
		return 0;
	if (strlen(value) >= KUBE_CONTINUE_MAX)
		return diag_set(d, DIAG_EPARSE,
				"continue token longer than %d bytes",
				KUBE_CONTINUE_MAX - 1);
	memcpy(cont, value, strlen(value) + 1);
	return 0;
}

static int each_item(const cJSON *items, sa_keep_fn keep, void *keep_arg,
		     kube_item_fn each, void *each_arg, struct diag *d)
{
	const cJSON *item;

	cJSON_ArrayForEach(item, items) {
		struct service_account *sa = NULL;
		int rc = sa_from_json(item, NULL, keep, keep_arg, &sa, d);

		if (rc == 0)
			rc = each(each_arg, sa);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int kube_list_parse(const char *body, size_t len, sa_keep_fn keep,
		    void *keep_arg, kube_item_fn each, void *each_arg,
		    char rv[KUBE_RV_MAX], char cont[KUBE_CONTINUE_MAX],
		    struct diag *d)
{
	const cJSON *items = NULL, *metadata = NULL;
	const char *kind;
	cJSON *root = NULL;
	int rc = json_parse(body, len, &root, d);

	rv[0] = cont[0] = '\0';
	if (rc != 0)
		return rc;
	kind = json_string(root, "kind");
	if (kind == NULL || strcmp(kind, "ServiceAccountList") != 0)
		rc = diag_set(d, DIAG_EPARSE,
			      "kind is '%.40s', not ServiceAccountList",
			      kind ? kind : "");
	else if (json_member(root, "items", cJSON_Array, &items) ==
		 JSON_WRONG_TYPE)
		rc = diag_set(d, DIAG_EPARSE, "items is not an array");
	else
		rc = copy_rv(root, rv, d);
	if (rc == 0) {
		json_member(root, "metadata", cJSON_Object, &metadata);
		rc = copy_continue(metadata, cont, d);
	}
	if (rc == 0)
		rc = each_item(items, keep, keep_arg, each, each_arg, d);
	cJSON_Delete(root);
	return rc;
}

int kube_status_code(const char *body, size_t len, char *reason,
		     size_t reason_size)
{
	struct kube_event ev;
	cJSON *root = NULL;
	const char *kind;

	reason[0] = '\0';
	if (json_parse(body, len, &root, NULL) != 0)
		return 0;
	memset(&ev, 0, sizeof(ev));
	kind = json_string(root, "kind");
	if (kind && strcmp(kind, "Status") == 0) {
		read_status(root, &ev);
		snprintf(reason, reason_size, "%s", ev.error_reason);
	}
	cJSON_Delete(root);
	return ev.error_code;
}

int kube_status_failure(struct diag *d, const char *what, long status,
			const char *body, size_t len, const char *hint)
{
	char reason[64];

	kube_status_code(body, len, reason, sizeof(reason));
	return diag_set(d, DIAG_EUNAVAIL, "%s: HTTP %ld %s%s%s%s", what, status,
			reason, hint ? " (" : "", hint ? hint : "",
			hint ? ")" : "");
}
