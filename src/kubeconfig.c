/*
 * kubeconfig: libyaml loads the document (JSON is YAML, so both forms work) and the
 * code walks the few paths it needs: current-context -> contexts[].context.{cluster,
 * user} -> clusters[] / users[]. Everything else in the file is ignored; what is
 * present but unsupported (exec credentials, say) is refused by name, so the user
 * knows why instead of seeing 401s later.
 */
#include "kubeconfig.h"

#include <stdbool.h>
#include <string.h>
#include <yaml.h>

#include "base64.h"
#include "bounds.h"
#include "mem.h"
#include "strutil.h"

#define KUBECONFIG_MAX_BYTES (1024 * 1024)

struct doc {
	yaml_document_t yaml;
	struct diag *d;
};

static yaml_node_t *node(struct doc *doc, yaml_node_item_t id)
{
	return yaml_document_get_node(&doc->yaml, id);
}

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n && n->type == YAML_SCALAR_NODE &&
	       n->data.scalar.length == len &&
	       memcmp(n->data.scalar.value, s, len) == 0;
}

/* The code of the error already recorded (the caller may pass no diag at all). */
static int failed(const struct doc *doc)
{
	return doc->d && doc->d->code != DIAG_OK ? doc->d->code : DIAG_ECONFIG;
}

/* The value of key in a mapping node, or NULL. */
static yaml_node_t *get(struct doc *doc, const yaml_node_t *map,
			const char *key)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
	     p < map->data.mapping.pairs.top; p++) {
		if (scalar_is(node(doc, p->key), key))
			return node(doc, p->value);
	}
	return NULL;
}

/* A scalar's text as a new string; NULL with a reason when it is not a scalar. */
static char *scalar_copy(struct doc *doc, const yaml_node_t *n,
			 const char *what)
{
	char *s;

	if (n == NULL || n->type != YAML_SCALAR_NODE) {
		diag_set(doc->d, DIAG_ECONFIG, "%s is not a string", what);
		return NULL;
	}
	s = mem_strndup((const char *)n->data.scalar.value,
			n->data.scalar.length);
	if (s == NULL)
		diag_set(doc->d, DIAG_ENOMEM, "out of memory");
	return s;
}

/* The entry of `list` (clusters, users, contexts) whose name is `name`. */
static yaml_node_t *named_entry(struct doc *doc, const char *list,
				const char *name, const char *field)
{
	yaml_node_t *seq = get(doc, node(doc, 1), list);

	if (seq == NULL || seq->type != YAML_SEQUENCE_NODE) {
		diag_set(doc->d, DIAG_ECONFIG, "no %s list", list);
		return NULL;
	}
	for (yaml_node_item_t *i = seq->data.sequence.items.start;
	     i < seq->data.sequence.items.top; i++) {
		yaml_node_t *entry = node(doc, *i);

		if (scalar_is(get(doc, entry, "name"), name)) {
			yaml_node_t *inner = get(doc, entry, field);

			if (inner == NULL || inner->type != YAML_MAPPING_NODE)
				diag_set(doc->d, DIAG_ECONFIG,
					 "%s '%.100s' has no %s", list, name,
					 field);
			return inner;
		}
	}
	diag_set(doc->d, DIAG_ECONFIG, "%s has no entry named '%.100s'", list,
		 name);
	return NULL;
}

/* A path relative to base_dir becomes absolute. */
static char *resolve_path(struct doc *doc, const yaml_node_t *n,
			  const char *base_dir, const char *what)
{
	char *path = scalar_copy(doc, n, what), *joined;
	size_t size;

	if (path == NULL || path[0] == '/' || base_dir == NULL)
		return path;
	size = strlen(base_dir) + strlen(path) + 2;
	joined = mem_alloc(size);
	if (joined)
		snprintf(joined, size, "%s/%s", base_dir, path);
	else
		diag_set(doc->d, DIAG_ENOMEM, "out of memory");
	mem_free(path);
	return joined;
}

/* Decodes a base64 *-data field into a new buffer. */
static int decode_data(struct doc *doc, const yaml_node_t *n, const char *what,
		       char **out, size_t *out_len)
{
	struct strbuf sb;

	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return diag_set(doc->d, DIAG_ECONFIG, "%s is not a string",
				what);
	strbuf_init(&sb, KUBECONFIG_MAX_BYTES);
	if (base64_decode_append(&sb, (const char *)n->data.scalar.value,
				 n->data.scalar.length) != 0 ||
	    sb.len == 0) {
		strbuf_free(&sb);
		return diag_set(doc->d, DIAG_ECONFIG, "%s is not base64", what);
	}
	*out = strbuf_detach(&sb, out_len);
	return *out ? 0 : diag_set(doc->d, DIAG_ENOMEM, "out of memory");
}

static int read_cluster(struct doc *doc, const yaml_node_t *c,
			const char *base_dir, struct kube_config *out)
{
	yaml_node_t *n;
	size_t len;

	if (scalar_is(get(doc, c, "insecure-skip-tls-verify"), "true"))
		return diag_set(
			doc->d, DIAG_ECONFIG,
			"insecure-skip-tls-verify is not supported: the webhook "
			"verifies the API server (give certificate-authority-data)");
	out->server = scalar_copy(doc, get(doc, c, "server"), "cluster.server");
	if (out->server == NULL)
		return failed(doc);
	len = strlen(out->server);
	while (len > 0 && out->server[len - 1] == '/')
		out->server[--len] = '\0';
	if (!str_has_prefix(out->server, "https://") || len <= 8)
		return diag_set(doc->d, DIAG_ECONFIG,
				"cluster.server '%.100s' is not https://",
				out->server);
	if ((n = get(doc, c, "certificate-authority-data")) != NULL)
		return decode_data(doc, n, "certificate-authority-data",
				   &out->ca_data, &out->ca_data_len);
	if ((n = get(doc, c, "certificate-authority")) != NULL) {
		out->ca_file =
			resolve_path(doc, n, base_dir, "certificate-authority");
		return out->ca_file ? 0 : failed(doc);
	}
	return 0; /* the system trust store */
}

static int refuse_unsupported(struct doc *doc, const yaml_node_t *u)
{
	static const char *const unsupported[][2] = {
		{ "exec", "exec credential plugins" },
		{ "auth-provider", "auth providers" },
		{ "username", "basic authentication" },
		{ "password", "basic authentication" },
		{ "as", "impersonation" },
	};

	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]);
	     i++) {
		if (get(doc, u, unsupported[i][0]))
			return diag_set(
				doc->d, DIAG_ECONFIG,
				"the user uses %s (%s), which pod-identity-webhook does "
				"not support: use a token, tokenFile or a client "
				"certificate",
				unsupported[i][1], unsupported[i][0]);
	}
	return 0;
}

static int read_user_cert(struct doc *doc, const yaml_node_t *u,
			  const char *base_dir, struct kube_config *out)
{
	yaml_node_t *n;
	int rc = 0;

	if ((n = get(doc, u, "client-certificate-data")) != NULL)
		rc = decode_data(doc, n, "client-certificate-data",
				 &out->cert_data, &out->cert_data_len);
	else if ((n = get(doc, u, "client-certificate")) != NULL &&
		 (out->cert_file = resolve_path(doc, n, base_dir,
						"client-certificate")) == NULL)
		rc = failed(doc);
	if (rc == 0 && (n = get(doc, u, "client-key-data")) != NULL)
		rc = decode_data(doc, n, "client-key-data", &out->key_data,
				 &out->key_data_len);
	else if (rc == 0 && (n = get(doc, u, "client-key")) != NULL &&
		 (out->key_file =
			  resolve_path(doc, n, base_dir, "client-key")) == NULL)
		rc = failed(doc);
	if (rc == 0 && (out->cert_data || out->cert_file) !=
			       (out->key_data || out->key_file))
		rc = diag_set(
			doc->d, DIAG_ECONFIG,
			"a client certificate needs both the certificate and the key");
	return rc;
}

static int read_user(struct doc *doc, const yaml_node_t *u,
		     const char *base_dir, struct kube_config *out)
{
	yaml_node_t *n;
	int rc = refuse_unsupported(doc, u);

	if (rc == 0 && (n = get(doc, u, "token")) != NULL &&
	    (out->token = scalar_copy(doc, n, "user.token")) == NULL)
		rc = failed(doc);
	if (rc == 0 && (n = get(doc, u, "tokenFile")) != NULL &&
	    (out->token_file =
		     resolve_path(doc, n, base_dir, "user.tokenFile")) == NULL)
		rc = failed(doc);
	if (rc == 0)
		rc = read_user_cert(doc, u, base_dir, out);
	if (rc == 0 && !out->token && !out->token_file && !out->cert_data &&
	    !out->cert_file)
		rc = diag_set(
			doc->d, DIAG_ECONFIG,
			"the user has no credentials (token, tokenFile or client "
			"certificate)");
	return rc;
}

static int read_context(struct doc *doc, const char *base_dir,
			struct kube_config *out)
{
	yaml_node_t *root = node(doc, 1), *ctx, *cluster, *user;
	char name[256], cname[256], uname[256];
	const yaml_node_t *cur = get(doc, root, "current-context");

	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return diag_set(doc->d, DIAG_ECONFIG,
				"not a kubeconfig (no mapping at the top)");
	if (cur == NULL || cur->type != YAML_SCALAR_NODE ||
	    cur->data.scalar.length == 0 ||
	    cur->data.scalar.length >= sizeof(name))
		return diag_set(doc->d, DIAG_ECONFIG, "no current-context");
	snprintf(name, sizeof(name), "%.*s", (int)cur->data.scalar.length,
		 (const char *)cur->data.scalar.value);
	ctx = named_entry(doc, "contexts", name, "context");
	cluster = ctx ? get(doc, ctx, "cluster") : NULL;
	user = ctx ? get(doc, ctx, "user") : NULL;
	if (ctx == NULL || !cluster || !user ||
	    cluster->type != YAML_SCALAR_NODE ||
	    user->type != YAML_SCALAR_NODE ||
	    cluster->data.scalar.length >= sizeof(cname) ||
	    user->data.scalar.length >= sizeof(uname))
		return diag_set(doc->d, DIAG_ECONFIG,
				"context '%s' lacks cluster or user", name);
	snprintf(cname, sizeof(cname), "%.*s", (int)cluster->data.scalar.length,
		 (const char *)cluster->data.scalar.value);
	snprintf(uname, sizeof(uname), "%.*s", (int)user->data.scalar.length,
		 (const char *)user->data.scalar.value);
	cluster = named_entry(doc, "clusters", cname, "cluster");
	if (cluster == NULL || read_cluster(doc, cluster, base_dir, out) != 0)
		return DIAG_ECONFIG;
	user = named_entry(doc, "users", uname, "user");
	if (user == NULL)
		return DIAG_ECONFIG;
	return read_user(doc, user, base_dir, out);
}

int kubeconfig_parse(const char *text, size_t len, const char *base_dir,
		     struct kube_config *out, struct diag *d)
{
	struct doc doc = { .d = d };
	yaml_parser_t parser;
	int rc;

	memset(out, 0, sizeof(*out));
	if (len > KUBECONFIG_MAX_BYTES)
		return diag_set(d, DIAG_ELIMIT, "larger than %d bytes",
				KUBECONFIG_MAX_BYTES);
	if (!yaml_parser_initialize(&parser))
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc.yaml)) {
		rc = diag_set(d, DIAG_ECONFIG, "not valid YAML: %s (line %zu)",
			      parser.problem ? parser.problem : "error",
			      parser.problem_mark.line + 1);
		yaml_parser_delete(&parser);
		return rc;
	}
	rc = read_context(&doc, base_dir, out);
	if (rc != 0 && d && d->code == DIAG_OK)
		rc = diag_set(d, DIAG_ECONFIG, "unusable kubeconfig");
	yaml_document_delete(&doc.yaml);
	yaml_parser_delete(&parser);
	if (rc != 0)
		kube_config_free(out);
	return rc;
}

static char *join(const char *dir, const char *file)
{
	size_t size = strlen(dir) + strlen(file) + 2;
	char *s = mem_alloc(size);

	if (s)
		snprintf(s, size, "%s/%s", dir, file);
	return s;
}

int kube_config_in_cluster(kube_getenv_fn get_env, const char *dir,
			   struct kube_config *out, struct diag *d)
{
	const char *host = get_env("KUBERNETES_SERVICE_HOST");
	const char *port = get_env("KUBERNETES_SERVICE_PORT");
	bool ipv6 = host && strchr(host, ':');
	size_t size;

	memset(out, 0, sizeof(*out));
	if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
		return diag_set(
			d, DIAG_ECONFIG,
			"not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): "
			"give --kubeconfig or --service-accounts-dir");
	size = strlen(host) + strlen(port) + 16;
	out->server = mem_alloc(size);
	out->token_file = join(dir, "token");
	out->ca_file = join(dir, "ca.crt");
	if (out->server == NULL || out->token_file == NULL ||
	    out->ca_file == NULL) {
		kube_config_free(out);
		return diag_set(d, DIAG_ENOMEM, "out of memory");
	}
	snprintf(out->server, size, ipv6 ? "https://[%s]:%s" : "https://%s:%s",
		 host, port);
	return 0;
}

static void free_secret(char *s, size_t len)
{
	if (s == NULL)
		return;
	explicit_bzero(s, len ? len : strlen(s));
	mem_free(s);
}

void kube_config_free(struct kube_config *c)
{
	mem_free(c->server);
	mem_free(c->ca_file);
	mem_free(c->ca_data);
	free_secret(c->token, 0);
	mem_free(c->token_file);
	mem_free(c->cert_file);
	mem_free(c->key_file);
	mem_free(c->cert_data);
	free_secret(c->key_data, c->key_data_len);
	memset(c, 0, sizeof(*c));
}
