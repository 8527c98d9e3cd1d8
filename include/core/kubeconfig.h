/*
 * kubeconfig: how to reach the Kubernetes API server: from a kubeconfig file's text
 * (YAML or JSON, read with libyaml) or from the in-cluster environment. Pure: the
 * caller reads files; this module only parses and resolves relative paths.
 */
#ifndef PIW_KUBECONFIG_H
#define PIW_KUBECONFIG_H

#include <stddef.h>

#include "diag.h"

#define KUBE_IN_CLUSTER_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct kube_config {
	char *server; /* https://host[:port][/prefix], without a trailing '/' */
	char *ca_file; /* PEM path, or NULL */
	char *ca_data; /* PEM bytes (decoded), or NULL */
	size_t ca_data_len;
	char *token;	  /* bearer token, or NULL */
	char *token_file; /* bearer token re-read when the file changes, or NULL */
	char *cert_file, *key_file; /* client certificate, or NULL */
	char *cert_data, *key_data; /* decoded PEM, or NULL */
	size_t cert_data_len, key_data_len;
};

/*
 * Reads the current context of a kubeconfig. `base_dir` resolves relative file paths
 * (the kubeconfig's directory). Refused with a reason: no current context, missing
 * cluster or user, a non-https server, insecure-skip-tls-verify, and the
 * authentication methods this client does not implement (exec plugins, auth
 * providers, basic auth). On success *out owns strings (kube_config_free).
 */
int kubeconfig_parse(const char *text, size_t len, const char *base_dir,
		     struct kube_config *out, struct diag *d);

/* Looks up an environment variable (getenv, or a table in tests). */
typedef const char *(*kube_getenv_fn)(const char *name);

/*
 * The in-cluster configuration: KUBERNETES_SERVICE_HOST and _PORT, and the token and
 * CA mounted in `dir` (KUBE_IN_CLUSTER_DIR in production). DIAG_ECONFIG when the
 * variables are not set (not in a cluster).
 */
int kube_config_in_cluster(kube_getenv_fn get_env, const char *dir,
			   struct kube_config *out, struct diag *d);

/* Frees the strings (wiping token and key material) and zeroes *c. */
void kube_config_free(struct kube_config *c);

#endif
