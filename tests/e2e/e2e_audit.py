"""`pod-identity-webhook audit` against the real kube-apiserver (issue 14, "Done means"):
pods created before the webhook was registered are `missing`, a pod whose
ServiceAccount's role changed after creation is `stale`, a pod of a misconfigured
ServiceAccount is `denied` with the message, a mutated one is `ok`; the exit status
follows. audit runs as a user that may only list pods and ServiceAccounts (the RBAC
docs/troubleshooting.md gives), so the test also proves it needs nothing more.

Loaded by test_e2e.py into its run (one cluster): `tests/e2e/run.sh BINARY AuditTests`.
"""
import contextlib
import json
import os
import subprocess

import cluster
import test_e2e
from test_e2e import (AWS_ARN, PROFILES_ANNOTATION, E2ETestCase, Env, new_namespace, pod,
                      service_account)

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
HOOK_CONFIG = "pod-identity-webhook"
AUDIT_USER = "piw-audit"


def audit_rbac():
    """Read-only: list pods and ServiceAccounts, nothing else."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": AUDIT_USER},
         "rules": [{"apiGroups": [""], "resources": ["pods", "serviceaccounts"],
                    "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": AUDIT_USER},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": AUDIT_USER},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": AUDIT_USER}]},
    ]


class AuditTests(E2ETestCase):
    """audit over a namespace whose pods were made before, while and after the webhook
    was registered."""

    @classmethod
    def setUpClass(cls):
        c = Env.cluster
        crt, key = c.pki.issue(AUDIT_USER, "/CN=" + AUDIT_USER)
        cls.kubeconfig = cluster.kubeconfig(c.pki.path(AUDIT_USER + ".kubeconfig"),
                                            c.server, c.pki.ca_crt, crt, key)
        for obj in audit_rbac():
            c.apply(obj)

    def audit(self, namespace, *args):
        """(exit status, stdout, stderr) of audit as the read-only user."""
        done = subprocess.run(
            [Env.binary, "audit", "--kubeconfig", self.kubeconfig, "--namespace", namespace,
             "--profiles-dir", os.path.join(test_e2e.TOP, "profiles")] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("PIW_")})
        return done.returncode, done.stdout, done.stderr

    def mutated(self, probe):
        """Whether the API server (with the webhooks it currently calls) mutates probe."""
        p = self.c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                           stdin=json.dumps(probe), check=False)
        return p.returncode == 0 and PROFILES_ANNOTATION in p.stdout

    @contextlib.contextmanager
    def webhook_unregistered(self, probe):
        """Our MutatingWebhookConfiguration deleted for the block, then registered again
        as it was (each waits until the API server's informer has caught up)."""
        saved = self.c.get("mutatingwebhookconfiguration", HOOK_CONFIG)
        for key in ("uid", "resourceVersion", "creationTimestamp", "generation",
                    "managedFields", "annotations"):
            saved["metadata"].pop(key, None)
        self.c.kubectl("delete", "mutatingwebhookconfiguration", HOOK_CONFIG)
        try:
            self.assertTrue(cluster.wait_until(lambda: not self.mutated(probe), 30, 0.25),
                            "the API server kept calling the deleted webhook")
            yield
        finally:
            self.c.apply(saved)
            self.assertTrue(cluster.wait_until(lambda: self.mutated(probe), 30, 0.25),
                            "the webhook never took effect again")

    def test_missing_stale_denied_ok_and_the_exit_status(self):
        ns = new_namespace("audit")
        c = self.c
        c.create(service_account(ns, "early", {ROLE_ANNOTATION: AWS_ARN}))
        c.create(service_account(ns, "broken", {ROLE_ANNOTATION: "not-an-arn"}))
        c.create(service_account(ns, "rotating", {ROLE_ANNOTATION: AWS_ARN + "-v1"}))
        c.create(service_account(ns, "steady", {ROLE_ANNOTATION: AWS_ARN}))
        with self.webhook_unregistered(pod(ns, "probe", "early")):
            c.create(pod(ns, "early-1", "early"))
            c.create(pod(ns, "broken-1", "broken"))
        c.create(pod(ns, "rotating-1", "rotating"))
        c.create(pod(ns, "steady-1", "steady"))
        self.assertIn(PROFILES_ANNOTATION,
                      c.get("pod", "rotating-1", ns)["metadata"]["annotations"])
        c.kubectl("annotate", "--overwrite", "-n", ns, "serviceaccount", "rotating",
                  "%s=%s-v2" % (ROLE_ANNOTATION, AWS_ARN))

        status, out, err = self.audit(ns, "-o", "json")
        self.assertEqual(status, 1, err)
        report = json.loads(out)
        pods = {p["name"]: p for p in report["pods"]}
        self.assertEqual({k: v["status"] for k, v in pods.items()},
                         {"early-1": "missing", "broken-1": "denied",
                          "rotating-1": "stale", "steady-1": "ok"})
        self.assertEqual(pods["early-1"]["profiles"], ["aws"])
        self.assertIn('ServiceAccount "%s/broken" annotation "%s"' % (ns, ROLE_ANNOTATION),
                      pods["broken-1"]["reason"])
        self.assertIn("not-an-arn", pods["broken-1"]["reason"])
        self.assertIn("AWS_ROLE_ARN", pods["rotating-1"]["reason"])
        self.assertIn(AWS_ARN + "-v2", pods["rotating-1"]["reason"])
        self.assertEqual([(s["name"], s["status"]) for s in report["serviceAccounts"]],
                         [("broken", "denied")])

        status, out, err = self.audit(ns)
        self.assertEqual(status, 1, err)
        rows = {line.split()[1]: line.split() for line in out.splitlines()[1:5]}
        self.assertEqual(rows["steady-1"][:5], [ns, "steady-1", "steady", "ok", "aws"])
        self.assertEqual(rows["early-1"][3], "missing")

    def test_exit_zero_when_every_pod_holds_what_it_should(self):
        ns = new_namespace("audit-ok")
        self.c.create(service_account(ns, "app", {ROLE_ANNOTATION: AWS_ARN}))
        self.c.create(service_account(ns, "plain"))
        self.c.create(pod(ns, "web", "app"))
        self.c.create(pod(ns, "tool", "plain"))
        status, out, err = self.audit(ns, "-o", "json")
        self.assertEqual(status, 0, err + out)
        self.assertEqual(sorted((p["name"], p["status"]) for p in json.loads(out)["pods"]),
                         [("tool", "none"), ("web", "ok")])

    def test_a_user_without_list_permission_gets_exit_2(self):
        c = Env.cluster
        crt, key = c.pki.issue("piw-nobody", "/CN=piw-nobody")
        kubeconfig = cluster.kubeconfig(c.pki.path("piw-nobody.kubeconfig"), c.server,
                                        c.pki.ca_crt, crt, key)
        done = subprocess.run([Env.binary, "audit", "--kubeconfig", kubeconfig],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=120)
        self.assertEqual((done.returncode, done.stdout), (2, ""), done.stderr)
        self.assertIn("403", done.stderr)
        self.assertIn("list on serviceaccounts", done.stderr)
