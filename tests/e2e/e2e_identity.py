"""End-to-end: the identity map (--identity-map) against the real API server. A second
webhook of ours, started with the AWS webhook's ConfigMap JSON as its map and registered
for pods labelled e2e/identity-map=yes only, mutates a pod whose ServiceAccount has no
annotation, and picks up a changed map without a restart. (The shared webhook sees the
same pods and, without a map, leaves them alone.)
"""
import json
import os
import urllib.request

import cluster
from cluster import HOST, Process, free_port, wait_until
from test_e2e import (AWS_ARN, PROFILES_ANNOTATION, TOP, E2ETestCase, Env, env_map,
                      new_namespace, pod, service_account)

LABEL = "e2e/identity-map"
HOOK_NAME = "pod-identity-webhook-identity-map"
ARN_2 = "arn:aws:iam::111122223333:role/e2e-map-changed"


def write_map(path, arn):
    """The `config` key of the AWS webhook's pod-identity-webhook ConfigMap, written
    as a rename (what a reader sees is the old or the new file)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"*/mapped": {"RoleARN": arn, "UseRegionalSTS": True,
                                "TokenExpiration": 0}}, f)
    os.replace(tmp, path)


class IdentityMapTests(E2ETestCase):

    @classmethod
    def setUpClass(cls):
        c = Env.cluster
        cls.map_path = os.path.join(Env.work, "identity-map.json")
        write_map(cls.map_path, AWS_ARN)
        crt, key = c.pki.issue("webhook-map", "/CN=pod-identity-webhook", server=True)
        port, metrics = free_port(), free_port()
        cls.hook = Process("webhook-identity-map", [
            Env.binary, "serve", "--listen", "%s:%d" % (HOST, port),
            "--metrics-listen", "%s:%d" % (HOST, metrics), "--tls-cert", crt,
            "--tls-key", key, "--kubeconfig", c.pki.path("webhook.kubeconfig"),
            "--profiles-dir", os.path.join(TOP, "profiles"), "--identity-map",
            cls.map_path, "--reload-interval", "200ms"], Env.work,
            env={k: v for k, v in os.environ.items() if not k.startswith("PIW_")})

        def ready():
            if not cls.hook.alive():
                raise cluster.StartError("the webhook exited:\n" + cls.hook.tail())
            try:
                with urllib.request.urlopen("http://%s:%d/readyz" % (HOST, metrics),
                                            timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False
        if not wait_until(ready, 30):
            cls.hook.stop()
            raise cluster.StartError("the webhook never became ready:\n" + cls.hook.tail())
        c.apply(cluster.mutating_webhook(
            HOOK_NAME, "https://%s:%d/mutate" % (HOST, port), c.pki.ca_bundle(),
            object_selector={"matchLabels": {LABEL: "yes"}}))
        cls.probe_ns = new_namespace("idmap-probe")
        c.create(service_account(cls.probe_ns, "mapped"))
        if not wait_until(lambda: cls.dry_run_arn(cls.probe_ns) == AWS_ARN, 30, 0.25):
            cls.tearDownClass()
            raise cluster.StartError("the identity-map webhook never took effect")

    @classmethod
    def tearDownClass(cls):
        Env.cluster.kubectl("delete", "mutatingwebhookconfiguration", HOOK_NAME,
                            check=False)
        status = cls.hook.stop()
        if status != 0:
            raise AssertionError("the identity-map webhook exited %d:\n%s"
                                 % (status, cls.hook.tail()))

    @classmethod
    def dry_run_arn(cls, namespace):
        """AWS_ROLE_ARN of a labelled pod of ServiceAccount `mapped`, created with
        --dry-run=server (None when not injected)."""
        p = Env.cluster.kubectl(
            "create", "--dry-run=server", "-o", "json", "-f", "-",
            stdin=json.dumps(pod(namespace, "probe", "mapped", labels={LABEL: "yes"})),
            check=False)
        if p.returncode != 0:
            return None
        return env_map(json.loads(p.stdout)["spec"]["containers"][0]).get("AWS_ROLE_ARN")

    def test_unannotated_service_account_mutated_through_the_map(self):
        ns = new_namespace("idmap")
        self.c.create(service_account(ns, "mapped"))
        self.c.create(pod(ns, "app", "mapped", labels={LABEL: "yes"}))
        stored = self.c.get("pod", "app", ns)
        self.assertEqual(stored["metadata"]["annotations"][PROFILES_ANNOTATION], "aws")
        env = env_map(stored["spec"]["containers"][0])
        self.assertEqual(env["AWS_ROLE_ARN"], AWS_ARN)
        self.assertEqual(env["AWS_STS_REGIONAL_ENDPOINTS"], "regional")
        self.assertEqual(env["APP_MODE"], "e2e")
        sa = self.c.get("serviceaccount", "mapped", ns)
        self.assertNotIn("annotations", sa["metadata"])
        # Not in the map: left alone.
        self.c.create(service_account(ns, "unmapped"))
        self.c.create(pod(ns, "other", "unmapped", labels={LABEL: "yes"}))
        other = self.c.get("pod", "other", ns)
        self.assertNotIn(PROFILES_ANNOTATION, other["metadata"].get("annotations", {}))

    def test_changed_map_picked_up_without_restart(self):
        ns = new_namespace("idmap-change")
        self.c.create(service_account(ns, "mapped"))
        try:
            write_map(self.map_path, ARN_2)
            self.assertTrue(wait_until(lambda: self.dry_run_arn(ns) == ARN_2, 30, 0.25),
                            "the changed map was not used: %r" % self.dry_run_arn(ns))
        finally:
            write_map(self.map_path, AWS_ARN)
            wait_until(lambda: self.dry_run_arn(ns) == AWS_ARN, 30, 0.25)
        self.assertTrue(self.hook.alive())
