"""End-to-end cases of the Helm chart on the real API server (issue 15): an install that
cannot lock the cluster, and the opt-in scope.

The control plane has no controller-manager and no kubelet: a Deployment never gets a
replica, a Job never runs. That is the situation these cases are about ("no replica is
ready"). Where a case needs what a running cluster would do, it does it by hand and says
so: the Service's Endpoints are written as the endpoints controller would write them, and
the registration hook's script (taken from the Job Helm created) is run on this host with
a token of the hook's own ServiceAccount, as the Job's pod would run it.

The chart says kubeVersion >= 1.21 (policy/v1 PodDisruptionBudget); the API server here is
1.20.2, so the cases install a copy of the chart whose kubeVersion admits 1.20 and leave the
PodDisruptionBudget out (podDisruptionBudget.enabled=false). Nothing else is changed.
"""
import base64
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.request

import yaml

import test_e2e
from cluster import HOST, wait_until
from test_e2e import (PROFILES_ANNOTATION, TOP, TRIGGERS, E2ETestCase, Env, new_namespace,
                      pod, service_account)

CHART = os.path.join(TOP, "charts", "pod-identity-webhook")
HELM = os.path.join(TOP, ".tools", "bin", "helm")
IMAGE = "registry.e2e.internal/platform/pod-identity-webhook"


def chart_for_this_api_server():
    """A copy of the chart (symlinks resolved) whose kubeVersion admits 1.20."""
    path = os.path.join(Env.work, "chart-1.20", "pod-identity-webhook")
    if not os.path.isdir(path):
        shutil.copytree(CHART, path, symlinks=False)
        meta = os.path.join(path, "Chart.yaml")
        with open(meta) as f:
            text = f.read()
        text, n = re.subn(r'(?m)^kubeVersion: .*$', 'kubeVersion: ">=1.20.0-0"', text)
        assert n == 1, "Chart.yaml has no kubeVersion line"
        with open(meta, "w") as f:
            f.write(text)
    return path


def helm(*args, timeout=120):
    """helm as the cluster admin; a CompletedProcess with text output."""
    env = dict(os.environ)
    for var, sub in (("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"),
                     ("HELM_DATA_HOME", "data")):
        env[var] = os.path.join(Env.work, "helm", sub)
    return subprocess.run([HELM, "--kubeconfig", Env.cluster.admin_kubeconfig] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, env=env)


def set_args(values):
    """--set-json is newer than our Helm: values go through a file."""
    path = os.path.join(Env.work, "values-%d.yaml" % time.monotonic_ns())
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    return ["-f", path]


BASE = {"image": {"repository": IMAGE}, "replicaCount": 1,
        "podDisruptionBudget": {"enabled": False}}


def deep_merge(base, override):
    out = dict(base)
    for k, v in override.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(
            out.get(k), dict) else v
    return out


def admin_request(method, path, body=None):
    """A raw API request as the admin (for what kubectl 1.20 has no command for)."""
    pki = Env.cluster.pki
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.load_cert_chain(pki.path("admin.crt"), pki.path("admin.key"))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(Env.cluster.server + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return json.loads(r.read())


def service_account_token(namespace, name):
    """A token of a ServiceAccount (TokenRequest: no token controller runs here)."""
    answer = admin_request("POST", "/api/v1/namespaces/%s/serviceaccounts/%s/token"
                           % (namespace, name),
                           {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                            "spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]


def configuration(name):
    p = Env.cluster.kubectl("get", "mutatingwebhookconfiguration", name, "-o", "json",
                            check=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


class ChartInstallTests(E2ETestCase):
    """`helm install` of the chart into the real API server."""

    def install(self, release, namespace, values, *extra, timeout=120):
        return helm("install", release, chart_for_this_api_server(), "--namespace",
                    namespace, *set_args(deep_merge(BASE, values)), *extra,
                    timeout=timeout)

    def assertPodsStillCreated(self, *namespaces):
        """A pod is created (and stored unmutated by the chart's webhook) in each."""
        for ns in namespaces:
            name = "still-%d" % time.monotonic_ns()
            self.c.create(pod(ns, name, "default"))
            self.assertEqual(self.c.get("pod", name, ns)["metadata"]["name"], name)

    def test_wrong_setting_refused_before_anything_is_registered(self):
        """A misspelt setting, an extra profile under the wrong key, a TLS Secret that does
        not exist: `helm install` fails, naming the value, and nothing at all is created
        (no release, no Deployment, no webhook configuration); pods are still created."""
        azure = os.path.join(TOP, "profiles", "azure.ini")
        with open(azure) as f:
            azure_text = f.read()
        cases = [
            ({"profiles": {"aws": {"enabled": True}, "settings": {"regoin": "eu-west-1"}}},
             "profiles.settings.regoin: no loaded profile declares [setting regoin]"),
            ({"profiles": {"extra": {"azur": azure_text}}},
             'profiles.extra.azur: the profile\'s [profile] name is "azure", not "azur"'),
            ({"tls": {"secret": {"name": "piw-tls", "caBundle": Env.cluster.pki.ca_bundle()}}},
             "Secret %s/piw-tls does not exist"),
        ]
        for i, (values, message) in enumerate(cases):
            with self.subTest(message=message):
                ns = new_namespace("chart-refused")
                release = "refused%d" % i
                r = self.install(release, ns, values)
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn(message.replace("%s", ns), r.stderr)
                self.assertIsNone(configuration("%s-pod-identity-webhook" % release))
                left = self.c.kubectl("get", "deployments,services,configmaps,secrets,"
                                      "serviceaccounts,jobs", "-n", ns, "-o", "name").stdout
                self.assertEqual(sorted(left.split()), ["serviceaccount/default"], left)
                self.assertNotIn(release, helm("list", "-a", "-n", ns).stdout)
                self.assertPodsStillCreated(ns, new_namespace("chart-other"))

    def test_nothing_registered_while_no_replica_is_ready(self):
        """A valid install whose replica never becomes ready (no kubelet here): the
        configuration exists with no rules, pods in every namespace are created, and
        `helm install` fails when its hook times out. The hook's script, run as its own
        ServiceAccount, keeps waiting while the Service has no ready endpoint (none, or
        only not-ready ones) and registers the rules once one is ready; that account can
        do nothing else."""
        ns = new_namespace("chart-ready")
        release = "ready"
        full = "%s-pod-identity-webhook" % release
        # opt-in on a label of this test's own, so the configuration, once it has its
        # rules, can only ever affect this test's labelled pods
        label = "e2e-chart-ready/use"
        r = self.install(release, ns, {"webhook": {"scope": "optIn",
                                                   "optIn": {"podLabel": label}},
                                       "registration": {"timeoutSeconds": 10}},
                         "--timeout", "15s", timeout=180)
        try:
            self.assertNotEqual(r.returncode, 0, "installed although no replica is ready")
            self.assertIn("post-install", r.stderr)
            self.assertIn("timed out waiting for the condition", r.stderr)

            mwc = configuration(full)
            self.assertIsNotNone(mwc, "Helm creates the configuration")
            # no rules (the API server leaves the empty list out)
            self.assertEqual(mwc["webhooks"][0].get("rules", []), [], "registered before ready")
            self.assertEqual(mwc["webhooks"][0]["failurePolicy"], "Fail")
            # nothing is sent: pods (also labelled ones) are created everywhere
            self.assertPodsStillCreated(ns, new_namespace("chart-other"))
            self.c.create(pod(ns, "labelled", "default", labels={label: "true"}))

            # the hook, as its pod would run it
            job = self.c.get("job", "%s-register" % full, ns)
            spec = job["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            token_file = os.path.join(Env.work, "register.token")
            with open(token_file, "w") as f:
                f.write(service_account_token(ns, spec["serviceAccountName"]))
            env = {e["name"]: e["value"] for e in container["env"]}
            env.update(PATH=os.environ["PATH"], PIW_API=Env.cluster.server,
                       PIW_CA_FILE=Env.cluster.pki.ca_crt, PIW_TOKEN_FILE=token_file,
                       TIMEOUT="3")
            script = container["command"]

            def run_hook():
                return subprocess.run(script, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, timeout=60)

            out = run_hook()  # no Endpoints object at all
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn("no ready replica after 3s: the webhook stays unregistered",
                          out.stderr)
            endpoints = {"apiVersion": "v1", "kind": "Endpoints",
                         "metadata": {"name": full, "namespace": ns},
                         "subsets": [{"notReadyAddresses": [{"ip": "10.0.0.7"}],
                                      "ports": [{"name": "https", "port": 8443}]}]}
            self.c.create(endpoints)  # a replica started, not ready yet
            out = run_hook()
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertEqual(configuration(full)["webhooks"][0].get("rules", []), [])

            # the hook's account: read that one Endpoints, patch that one configuration
            with open(token_file) as f:
                token = f.read()
            made = json.dumps({"apiVersion": mwc["apiVersion"], "kind": mwc["kind"],
                               "metadata": {"name": "hook-made"}, "webhooks": []})
            for args, stdin in (
                    (["get", "endpoints", "kubernetes", "-n", "default"], None),
                    (["get", "secrets", "-n", ns], None),
                    (["patch", "mutatingwebhookconfiguration", "pod-identity-webhook",
                      "--type=json", "-p", "[]"], None),
                    (["get", "mutatingwebhookconfiguration", full], None),
                    (["create", "-f", "-"], made)):
                p = subprocess.run(
                    [Env.cluster.kubectl_bin, "--server", Env.cluster.server,
                     "--certificate-authority", Env.cluster.pki.ca_crt, "--token", token,
                     "--kubeconfig", os.devnull] + args, input=stdin,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
                self.assertNotEqual(p.returncode, 0, "the hook may not: %s" % args)
                self.assertIn("forbidden", p.stderr.lower(), args)

            # the endpoints controller marks the replica ready
            endpoints["subsets"] = [{"addresses": [{"ip": "10.0.0.7"}],
                                     "ports": [{"name": "https", "port": 8443}]}]
            self.c.apply(endpoints)
            out = run_hook()
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertIn("now sends pods to it", out.stdout)
            rules = configuration(full)["webhooks"][0]["rules"]
            self.assertEqual(rules, [{"operations": ["CREATE"], "apiGroups": [""],
                                      "apiVersions": ["v1"], "resources": ["pods"],
                                      "scope": "Namespaced"}])

            # registered: unlabelled pods are still never sent; a labelled one is, and
            # with the Service unreachable here (no kube-proxy), Fail refuses it
            def refused():
                p = self.c.kubectl("create", "--dry-run=server", "-f", "-", check=False,
                                   stdin=json.dumps(pod(ns, "probe", "default",
                                                        labels={label: "true"})))
                return p.returncode != 0 and (
                    'failed calling webhook "%s.%s.svc"' % (full, ns)) in p.stderr
            self.assertTrue(wait_until(refused, 30, 0.25),
                            "the registered configuration never took effect")
            self.assertPodsStillCreated(ns, new_namespace("chart-other"))
        finally:
            u = helm("uninstall", release, "-n", ns)
            self.assertEqual(u.returncode, 0, u.stderr)
        self.assertIsNone(configuration(full), "helm uninstall removes the configuration")


class ChartUpgradeTests(E2ETestCase):

    def test_upgrade_keeps_the_registered_rules(self):
        """Registered (the hook patched the rules in), then `helm upgrade`: the live
        configuration keeps its rules. Rendering `rules: []` again would let Helm's
        three-way merge reset them, and pods created before the hook ran again would get
        no credentials."""
        ns = new_namespace("chart-upgrade")
        release = "upgrade"
        full = "%s-pod-identity-webhook" % release
        values = {"webhook": {"scope": "optIn", "optIn": {"podLabel": "e2e-chart-upgrade/use"}}}
        r = helm("install", release, chart_for_this_api_server(), "--namespace", ns,
                 "--no-hooks", *set_args(deep_merge(BASE, values)))
        try:
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(configuration(full)["webhooks"][0].get("rules", []), [])
            rules = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                      "resources": ["pods"], "scope": "Namespaced"}]
            self.c.kubectl("patch", "mutatingwebhookconfiguration", full, "--type=json",
                           "-p", json.dumps([{"op": "replace", "path": "/webhooks/0/rules",
                                              "value": rules}]))
            u = helm("upgrade", release, chart_for_this_api_server(), "--namespace", ns,
                     "--no-hooks", *set_args(deep_merge(BASE, values)))
            self.assertEqual(u.returncode, 0, u.stderr)
            self.assertEqual(configuration(full)["webhooks"][0].get("rules", []), rules,
                             "the upgrade unregistered a registered webhook")
        finally:
            helm("uninstall", release, "-n", ns)


class RecordingForwarder(test_e2e.ForwardingHandler):
    """Records the pod each forwarded review was about and whether the answer carried
    a patch."""
    seen = []

    def record(self, body, answer):
        review = json.loads(body)["request"]
        response = json.loads(answer)["response"]
        RecordingForwarder.seen.append((review["namespace"],
                                        review["object"]["metadata"].get("name"),
                                        "patch" in response))


class ChartScopeTests(E2ETestCase):
    """The chart's opt-in webhook configuration (rendered by helm template, pointed at the
    webhook this harness runs on the host) on the real API server."""

    def test_opt_in_unlabelled_never_sent_labelled_mutated(self):
        ns = new_namespace("chart-optin")
        label = "e2e-chart-optin/use"
        # the namespaceSelector choice "only namespaces you label", on this namespace
        self.c.kubectl("label", "namespace", ns, "e2e-chart-optin/enabled=true")
        values = deep_merge(BASE, {
            "webhook": {"scope": "optIn", "optIn": {"podLabel": label},
                        "namespaceSelector": {"matchLabels": {"e2e-chart-optin/enabled": "true"}}},
            "registration": {"waitForReady": False}})
        r = helm("template", "optin", CHART, "--namespace", ns, "--kube-version", "1.21.0",
                 "--show-only", "templates/mutatingwebhookconfiguration.yaml",
                 *set_args(values))
        self.assertEqual(r.returncode, 0, r.stderr)
        mwc = [d for d in yaml.safe_load_all(r.stdout)
               if d and d["kind"] == "MutatingWebhookConfiguration"][0]
        hook = mwc["webhooks"][0]
        self.assertEqual(hook["failurePolicy"], "Fail", "opt-in's safe policy")
        self.assertIn({"key": label, "operator": "In", "values": ["true"]},
                      hook["objectSelector"]["matchExpressions"])
        # the API server here cannot reach a Service: the webhook runs on this host
        crt, key = self.c.pki.issue("chart-forwarder", "/CN=chart forwarder", server=True)
        RecordingForwarder.target = Env.webhook.url
        RecordingForwarder.ca = self.c.pki.ca_crt
        RecordingForwarder.seen = []
        server = test_e2e.start_https(RecordingForwarder, crt, key)
        hook["clientConfig"] = {"url": "https://%s:%d/mutate" % (HOST, server.server_address[1]),
                                "caBundle": self.c.pki.ca_bundle()}
        mwc["metadata"] = {"name": "e2e-chart-optin"}
        try:
            self.c.apply(mwc)
            self.c.create(service_account(ns, "app", TRIGGERS["stackit"]))

            def seen_labelled():
                p = self.c.kubectl("create", "--dry-run=server", "-f", "-", check=False,
                                   stdin=json.dumps(pod(ns, "probe", "app",
                                                        labels={label: "true"})))
                return p.returncode == 0 and any(s[1] == "probe"
                                                 for s in RecordingForwarder.seen)
            self.assertTrue(wait_until(seen_labelled, 30, 0.25),
                            "the opt-in configuration never took effect")

            self.c.create(pod(ns, "unlabelled", "app"))
            self.c.create(pod(ns, "other-value", "app", labels={label: "false"}))
            self.c.create(pod(ns, "labelled", "app", labels={label: "true"}))
            other = new_namespace("chart-optin-other")  # not labelled for the selector
            self.c.create(service_account(other, "app", TRIGGERS["stackit"]))
            self.c.create(pod(other, "labelled", "app", labels={label: "true"}))

            names = [(s[0], s[1]) for s in RecordingForwarder.seen]
            self.assertNotIn((ns, "unlabelled"), names)
            self.assertNotIn((ns, "other-value"), names)
            self.assertNotIn((other, "labelled"), names)
            self.assertIn((ns, "labelled", True), RecordingForwarder.seen)
            stored = self.c.get("pod", "labelled", ns)
            self.assertEqual(stored["metadata"]["annotations"][PROFILES_ANNOTATION], "stackit")
        finally:
            self.c.kubectl("delete", "mutatingwebhookconfiguration", "e2e-chart-optin",
                           check=False)
            server.shutdown()
            server.server_close()
