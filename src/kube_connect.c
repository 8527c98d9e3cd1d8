/*
 * kube_connect: reads the kubeconfig file (the only file read to reach the API
 * server) and wipes its text afterwards: it may hold a token or a key.
 */
#include "kube_connect.h"

#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "fileio.h"
#include "mem.h"

#define KUBECONFIG_MAX_BYTES (1024 * 1024)

int kube_config_load(const char *path, kube_getenv_fn get_env,
		     struct kube_config *kc, struct diag *d)
{
	char *text = NULL, dir[BOUND_PATH * 2];
	size_t len = 0;
	int rc;

	if (path == NULL)
		return kube_config_in_cluster(get_env, KUBE_IN_CLUSTER_DIR, kc,
					      d);
	snprintf(dir, sizeof(dir), "%s", path);
	rc = file_read(path, KUBECONFIG_MAX_BYTES, &text, &len, d);
	if (rc == 0)
		rc = kubeconfig_parse(text, len, dirname(dir), kc, d);
	diag_locate(d, path, 0);
	if (text)
		explicit_bzero(text, len);
	mem_free(text);
	return rc;
}
