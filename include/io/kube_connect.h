/*
 * kube_connect: where the API server is and how to authenticate, for every
 * command that talks to it (serve, audit): the kubeconfig file given, else the
 * in-cluster configuration.
 */
#ifndef PIW_KUBE_CONNECT_H
#define PIW_KUBE_CONNECT_H

#include "diag.h"
#include "kubeconfig.h"

/*
 * Reads the kubeconfig at path (its current context), or the in-cluster
 * configuration when path is NULL. On success *kc owns strings
 * (kube_config_free); errors name the file.
 */
int kube_config_load(const char *path, kube_getenv_fn get_env,
		     struct kube_config *kc, struct diag *d);

#endif
