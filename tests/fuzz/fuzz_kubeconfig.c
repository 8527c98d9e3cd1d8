/* Fuzz target: the kubeconfig reader (YAML or JSON, through libyaml). */
#include <stdint.h>

#include "kubeconfig.h"
#include "mem.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	mem_install_json_hooks();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_config kc;

	if (kubeconfig_parse((const char *)data, size, "/etc/kube", &kc,
			     NULL) == 0)
		kube_config_free(&kc);
	return 0;
}
