"""End-to-end cases for the azure and gcp profiles (issue 12, item 6): pods created for
real through the kube-apiserver with kubectl, compared with the golden cases; the stored
GCP pod carries the downwardAPI item and the annotation it reads; a GCP ServiceAccount
without its e-mail is denied with the reason kubectl shows. Loaded into test_e2e.py's run
(one cluster, one webhook started with --profiles-dir profiles/ and no settings)."""
import copy
import json
import os

import test_e2e
from test_e2e import HOOK, E2ETestCase, as_submitted, golden, new_namespace, pod, service_account

GCP_JSON_ANNOTATION = "cloud.google.com/external-credentials-json"


def with_api_defaults(expected):
    """The golden pod as the API server stores it: a projected volume without
    defaultMode gets 420 (0644)."""
    expected = copy.deepcopy(expected)
    for v in expected["spec"].get("volumes", []):
        for kind in ("projected", "downwardAPI"):
            if kind in v:
                v[kind].setdefault("defaultMode", 420)
    return expected


class CloudTests(E2ETestCase):

    def create_golden(self, provider, case):
        sa, p, expected = golden(provider, case)
        ns = new_namespace(provider)
        self.c.create(as_submitted(sa, ns))
        p = as_submitted(p, ns)
        self.c.create(p)
        return self.c.get("pod", p["metadata"]["name"], ns), with_api_defaults(expected)

    def test_azure_label_triggered_pod(self):
        """providers/azure/cases/no-tenant (the e2e webhook has no tenant setting): the
        label turns the profile on; token in token/azure-identity-token under
        /var/run/secrets/azure/wi, as the golden case says."""
        stored, expected = self.create_golden("azure", "no-tenant")
        self.assertMatchesGolden(stored, expected)
        env = test_e2e.env_map(stored["spec"]["containers"][0])
        self.assertEqual(env["AZURE_FEDERATED_TOKEN_FILE"],
                         "/var/run/secrets/azure/wi/token/azure-identity-token")

    def test_azure_without_label_untouched(self):
        """The client-id annotation without the pod label: stored as submitted."""
        ns = new_namespace("azure-nolabel")
        self.c.create(service_account(ns, "app", {
            "azure.workload.identity/client-id": "3f2c8a91-6d4b-4e7a-b1c5-9e0d2f7a6b48"}))
        self.c.create(pod(ns, "web", "app"))
        stored = self.c.get("pod", "web", ns)
        self.assertNotIn("AZURE_FEDERATED_TOKEN_FILE",
                         test_e2e.env_map(stored["spec"]["containers"][0]))

    def test_gcp_pod_carries_the_credential_file(self):
        """providers/gcp/cases/basic through the API server: the stored pod has the
        downwardAPI item reading the annotation, and the annotation is the credential
        configuration of expected-files.json, field by field."""
        stored, expected = self.create_golden("gcp", "basic")
        self.assertMatchesGolden(stored, expected)
        volumes = {v["name"]: v for v in stored["spec"]["volumes"]}
        item = volumes["external-credential-config"]["downwardAPI"]["items"][0]
        self.assertEqual(item["path"], "federation.json")
        self.assertEqual(item["fieldRef"]["fieldPath"],
                         "metadata.annotations['%s']" % GCP_JSON_ANNOTATION)
        with open(os.path.join(test_e2e.TOP, "providers", "gcp", "cases", "basic",
                               "expected-files.json")) as f:
            want = json.load(f)[GCP_JSON_ANNOTATION]
        self.assertEqual(json.loads(stored["metadata"]["annotations"][GCP_JSON_ANNOTATION]),
                         want)

    def test_gcp_dry_run_server(self):
        """The same pod with --dry-run=server: mutated, not stored."""
        sa, p, expected = golden("gcp", "basic")
        ns = new_namespace("gcp-dry")
        self.c.create(as_submitted(sa, ns))
        out = self.c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                             stdin=json.dumps(as_submitted(p, ns)))
        self.assertMatchesGolden(json.loads(out.stdout), with_api_defaults(expected))

    def test_gcp_missing_email_denied(self):
        """The provider annotation without the e-mail: kubectl create fails with the
        webhook's reason naming the missing annotation; nothing is stored."""
        ns = new_namespace("gcp-noemail")
        self.c.create(service_account(ns, "app", {
            "cloud.google.com/workload-identity-provider":
            "projects/428391027364/locations/global/workloadIdentityPools/p/providers/q"}))
        p = self.c.kubectl("create", "-f", "-", stdin=json.dumps(pod(ns, "web", "app")),
                           check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('admission webhook "%s" denied the request' % HOOK, p.stderr)
        self.assertIn('ServiceAccount "%s/app" annotation '
                      '"cloud.google.com/service-account-email" is missing' % ns, p.stderr)
        self.assertNotEqual(self.c.kubectl("get", "pod", "web", "-n", ns,
                                           check=False).returncode, 0)
