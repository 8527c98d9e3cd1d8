/*
 * The Kubernetes-side parsers: kubeconfig (current context, credentials, refusals)
 * and the list pages and watch events of ServiceAccounts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "kube_event.h"
#include "kubeconfig.h"
#include "mem.h"

#define KUBECONFIG(cluster, user)                                      \
	"apiVersion: v1\nkind: Config\ncurrent-context: dev\n"         \
	"contexts:\n- name: other\n  context: {cluster: x, user: x}\n" \
	"- name: dev\n  context:\n    cluster: c1\n    user: u1\n"     \
	"clusters:\n- name: c1\n  cluster:\n" cluster                  \
	"users:\n- name: u1\n  user:\n" user

static int parse(const char *text, struct kube_config *kc, struct diag *d)
{
	diag_clear(d);
	return kubeconfig_parse(text, strlen(text), "/etc/kube", kc, d);
}

static void test_token_and_ca_data(void **state)
{
	struct kube_config kc;
	struct diag d;

	(void)state;
	assert_int_equal(
		parse(KUBECONFIG(
			      "    server: https://10.0.0.1:6443/\n"
			      "    certificate-authority-data: LS0tLS1CRUdJTg==\n",
			      "    token: abc.def\n"),
		      &kc, &d),
		0);
	assert_string_equal(kc.server, "https://10.0.0.1:6443");
	assert_int_equal(kc.ca_data_len, 10);
	assert_memory_equal(kc.ca_data, "-----BEGIN", 10);
	assert_string_equal(kc.token, "abc.def");
	assert_null(kc.token_file);
	kube_config_free(&kc);
}

static void test_files_resolve_relative_paths(void **state)
{
	struct kube_config kc;
	struct diag d;

	(void)state;
	assert_int_equal(
		parse(KUBECONFIG("    server: https://api.example:443\n"
				 "    certificate-authority: ca.pem\n",
				 "    tokenFile: /var/run/token\n"
				 "    client-certificate: certs/me.crt\n"
				 "    client-key: /abs/me.key\n"),
		      &kc, &d),
		0);
	assert_string_equal(kc.ca_file, "/etc/kube/ca.pem");
	assert_string_equal(kc.token_file, "/var/run/token");
	assert_string_equal(kc.cert_file, "/etc/kube/certs/me.crt");
	assert_string_equal(kc.key_file, "/abs/me.key");
	kube_config_free(&kc);
}

static void test_json_kubeconfig(void **state)
{
	static const char json[] =
		"{\"current-context\":\"a\",\"contexts\":[{\"name\":\"a\",\"context\":"
		"{\"cluster\":\"c\",\"user\":\"u\"}}],\"clusters\":[{\"name\":\"c\",\"cluster\":"
		"{\"server\":\"https://h\"}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"t\"}}]}";
	struct kube_config kc;
	struct diag d;

	(void)state;
	assert_int_equal(parse(json, &kc, &d), 0);
	assert_string_equal(kc.server, "https://h");
	kube_config_free(&kc);
}

static void expect_refused(const char *text, const char *needle)
{
	struct kube_config kc;
	struct diag d;

	assert_int_not_equal(parse(text, &kc, &d), 0);
	if (strstr(d.text, needle) == NULL)
		fail_msg("want '%s' in '%s'", needle, d.text);
	assert_null(kc.server);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refused(KUBECONFIG("    server: https://h\n",
				  "    exec:\n      command: aws\n"),
		       "exec credential plugins");
	expect_refused(KUBECONFIG("    server: https://h\n",
				  "    auth-provider:\n      name: gcp\n"),
		       "auth providers");
	expect_refused(KUBECONFIG("    server: https://h\n",
				  "    username: a\n    password: b\n"),
		       "basic authentication");
	expect_refused(
		KUBECONFIG(
			"    server: https://h\n    insecure-skip-tls-verify: true\n",
			"    token: t\n"),
		"insecure-skip-tls-verify is not supported");
	expect_refused(KUBECONFIG("    server: http://h\n", "    token: t\n"),
		       "is not https://");
	expect_refused(
		KUBECONFIG("    server: https://h\n", "    client-key: k\n"),
		"needs both the certificate and the key");
	expect_refused(KUBECONFIG("    server: https://h\n", "    {}\n"),
		       "no credentials");
	expect_refused(KUBECONFIG("    server: https://h\n"
				  "    certificate-authority-data: '%%%'\n",
				  "    token: t\n"),
		       "is not base64");
	expect_refused("current-context: nope\ncontexts: []\n",
		       "no entry named 'nope'");
	expect_refused("kind: Config\n", "no current-context");
	expect_refused("a: [unclosed\n", "not valid YAML");
	expect_refused("- just\n- a list\n", "not a kubeconfig");
}

static const char *env_host;

static const char *fake_env(const char *name)
{
	if (strcmp(name, "KUBERNETES_SERVICE_HOST") == 0)
		return env_host;
	if (strcmp(name, "KUBERNETES_SERVICE_PORT") == 0)
		return env_host ? "443" : NULL;
	return NULL;
}

static void test_in_cluster(void **state)
{
	struct kube_config kc;
	struct diag d;

	(void)state;
	diag_clear(&d);
	env_host = NULL;
	assert_int_equal(kube_config_in_cluster(fake_env, "/sa", &kc, &d),
			 DIAG_ECONFIG);
	assert_non_null(strstr(d.text, "not running in a cluster"));
	env_host = "fd00::1";
	assert_int_equal(kube_config_in_cluster(fake_env, "/sa", &kc, &d), 0);
	assert_string_equal(kc.server, "https://[fd00::1]:443");
	assert_string_equal(kc.token_file, "/sa/token");
	assert_string_equal(kc.ca_file, "/sa/ca.crt");
	kube_config_free(&kc);
}

static bool keep_role(const char *key, void *arg)
{
	(void)arg;
	return strcmp(key, "eks.amazonaws.com/role-arn") == 0;
}

static int collect(void *arg, struct service_account *sa)
{
	int *n = arg;

	assert_true(sa->n_annotations <= 1);
	(*n)++;
	sa_free(sa);
	return 0;
}

static void test_list_page(void **state)
{
	static const char page[] =
		"{\"kind\":\"ServiceAccountList\",\"apiVersion\":\"v1\",\"metadata\":"
		"{\"resourceVersion\":\"4711\",\"continue\":\"eyJ2IjoxfQ==\"},\"items\":["
		"{\"metadata\":{\"name\":\"a\",\"namespace\":\"n\",\"annotations\":"
		"{\"eks.amazonaws.com/role-arn\":\"arn\",\"kubectl.kubernetes.io/last-applied-"
		"configuration\":\"{...}\"}}},{\"metadata\":{\"name\":\"b\",\"namespace\":\"n\"}}]}";
	char rv[KUBE_RV_MAX], cont[KUBE_CONTINUE_MAX];
	struct diag d;
	int n = 0;

	(void)state;
	diag_clear(&d);
	assert_int_equal(kube_list_parse(page, strlen(page), keep_role, NULL,
					 collect, &n, rv, cont, &d),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(rv, "4711");
	assert_string_equal(cont, "eyJ2IjoxfQ==");
	assert_int_equal(kube_list_parse("{\"kind\":\"PodList\",\"items\":[]}",
					 29, NULL, NULL, collect, &n, rv, cont,
					 &d),
			 DIAG_EPARSE);
}

static void test_watch_events(void **state)
{
	static const char added[] =
		"{\"type\":\"ADDED\",\"object\":{\"kind\":\"ServiceAccount\",\"metadata\":{"
		"\"name\":\"app\",\"namespace\":\"team\",\"resourceVersion\":\"12\","
		"\"annotations\":{\"eks.amazonaws.com/role-arn\":\"arn\",\"x\":\"y\"}}}}";
	static const char bookmark[] =
		"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ServiceAccount\",\"metadata\":"
		"{\"resourceVersion\":\"99\"}}}";
	static const char gone[] =
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"reason\":"
		"\"Expired\"}}";
	struct kube_event ev;
	struct diag d;

	(void)state;
	diag_clear(&d);
	assert_int_equal(kube_event_parse(added, strlen(added), keep_role, NULL,
					  &ev, &d),
			 0);
	assert_int_equal(ev.type, KUBE_EVENT_ADDED);
	assert_string_equal(ev.resource_version, "12");
	assert_string_equal(ev.sa->name, "app");
	assert_int_equal(ev.sa->n_annotations, 1);
	kube_event_clear(&ev);
	assert_int_equal(kube_event_parse(bookmark, strlen(bookmark), NULL,
					  NULL, &ev, &d),
			 0);
	assert_int_equal(ev.type, KUBE_EVENT_BOOKMARK);
	assert_string_equal(ev.resource_version, "99");
	assert_null(ev.sa);
	assert_int_equal(
		kube_event_parse(gone, strlen(gone), NULL, NULL, &ev, &d), 0);
	assert_int_equal(ev.type, KUBE_EVENT_ERROR);
	assert_int_equal(ev.error_code, 410);
	assert_string_equal(ev.error_reason, "Expired");
	assert_int_equal(kube_event_parse("{\"type\":\"SYNC\",\"object\":{}}",
					  28, NULL, NULL, &ev, &d),
			 DIAG_EPARSE);
	assert_int_equal(
		kube_event_parse(
			"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}", 41,
			NULL, NULL, &ev, &d),
		DIAG_EPARSE);
	assert_int_equal(
		kube_event_parse("{\"type\":\"ADD", 12, NULL, NULL, &ev, &d),
		DIAG_EPARSE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_and_ca_data),
		cmocka_unit_test(test_files_resolve_relative_paths),
		cmocka_unit_test(test_json_kubeconfig),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_in_cluster),
		cmocka_unit_test(test_list_page),
		cmocka_unit_test(test_watch_events),
	};

	mem_install_json_hooks();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
