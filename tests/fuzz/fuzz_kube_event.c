/*
 * Fuzz target: what the Kubernetes API sends: the input is tried as a watch event
 * line and as a ServiceAccount list page, with the annotation filter the cache uses.
 */
#include <stdint.h>
#include <string.h>

#include "kube_event.h"
#include "mem.h"

#include "fuzz.h"

static void fuzz_fixture(void)
{
	/* none: each input is read on its own */
}

static bool keep(const char *key, void *arg)
{
	(void)arg;
	return strncmp(key, "eks.amazonaws.com/", 18) == 0;
}

static int count(void *arg, struct service_account *sa)
{
	(*(size_t *)arg)++;
	sa_free(sa);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char rv[KUBE_RV_MAX], cont[KUBE_CONTINUE_MAX], reason[64];
	struct kube_event ev;
	size_t n = 0;

	if (kube_event_parse((const char *)data, size, keep, NULL, &ev, NULL) ==
	    0)
		kube_event_clear(&ev);
	kube_list_parse((const char *)data, size, keep, NULL, count, &n, rv,
			cont, NULL);
	kube_status_code((const char *)data, size, reason, sizeof(reason));
	return 0;
}
