/* Fuzz target: the kubeconfig reader (YAML or JSON, through libyaml). */
#include <stdint.h>

#include "kubeconfig.h"
#include "mem.h"

#include "fuzz.h"

static void fuzz_fixture(void)
{
	/* none: each input is read on its own */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config kc;

	if (kubeconfig_parse((const char *)data, size, "/etc/kube", &kc,
			     NULL) == 0)
		kube_config_free(&kc);
	return 0;
}
