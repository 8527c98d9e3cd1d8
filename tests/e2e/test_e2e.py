#!/usr/bin/python3
"""End-to-end tests: pod-identity-webhook registered with a real kube-apiserver (1.20.2,
built by tests/e2e/get-apiserver.sh) and driven through kubectl. What the golden cases
and the fake API cannot prove: that the API server accepts our AdmissionReview answers
and JSON Patches, that its ServiceAccount admission plugin and our mutation compose, that
--dry-run=server and reinvocation behave, over a real watch and real RBAC.

Usage: /usr/bin/python3 tests/e2e/test_e2e.py BINARY APISERVER_DIR [unittest arguments]
(tests/e2e/run.sh finds or builds APISERVER_DIR). One control plane and one webhook for
the whole run; every test works in namespaces of its own.
"""
import base64
import copy
import glob
import http.server
import importlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import unittest
import urllib.request

import yaml

import cluster
from cluster import HOST, Cluster, Process, free_port, wait_until

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROFILES_ANNOTATION = "pod-identity-webhook/profiles"
HOOK = "pod-identity-webhook.e2e.piw.test"
AWS_ARN = "arn:aws:iam::111122223333:role/e2e"
STACKIT_EMAIL = "e2e-app@sa.stackit.cloud"
VULTR_ROLE = "c2a7e4f1-5b3d-4e8a-9f6c-1d0b2e7a4c95"

# What each provider puts in a container (providers-reference.md), for the cases that
# are not golden cases: env var -> value, and where the token is mounted.
EXPECTED = {
    "aws": ({"AWS_ROLE_ARN": AWS_ARN, "AWS_WEB_IDENTITY_TOKEN_FILE":
             "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"},
            "aws-iam-token", "/var/run/secrets/eks.amazonaws.com/serviceaccount"),
    "stackit": ({"STACKIT_SERVICE_ACCOUNT_EMAIL": STACKIT_EMAIL,
                 "STACKIT_FEDERATED_TOKEN_FILE":
                 "/var/run/secrets/stackit.cloud/serviceaccount/token"},
                "stackit-workload-identity", "/var/run/secrets/stackit.cloud/serviceaccount"),
}
TRIGGERS = {"aws": {"eks.amazonaws.com/role-arn": AWS_ARN},
            "stackit": {"workload-identity.stackit.cloud/service-account-email":
                        STACKIT_EMAIL}}


class Env:
    """The shared control plane, webhook and sidecar webhook (set up once)."""
    binary = apiserver_dir = None
    cluster = webhook = sidecar = proxy = work = None
    counter = 0


# --------------------------------------------------------------------------------------
# A second webhook that adds a sidecar container, to exercise reinvocation.


class SidecarHandler(http.server.BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        containers = request["object"]["spec"]["containers"]
        response = {"uid": request["uid"], "allowed": True}
        if not any(c["name"] == "sidecar" for c in containers):
            patch = [{"op": "add", "path": "/spec/containers/-",
                      "value": {"name": "sidecar", "image": "registry.example/sidecar:1"}}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        SidecarHandler.calls += 1
        body = json.dumps({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                           "response": response}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ForwardingHandler(http.server.BaseHTTPRequestHandler):
    """Forwards each review unchanged to the webhook at the class's `target` (trusting
    `ca`), hands the request and answer bodies to record(), and answers as it did."""
    target = ca = None

    def record(self, body, answer):
        raise NotImplementedError

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ctx = ssl.create_default_context(cafile=type(self).ca)
        req = urllib.request.Request(type(self).target, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            status, answer = r.status, r.read()
        self.record(body, answer)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class RecordingProxy(ForwardingHandler):
    """Records each review's apiVersion and our answer's: proof of which AdmissionReview
    version went through."""
    seen = []

    def record(self, body, answer):
        RecordingProxy.seen.append((json.loads(body)["apiVersion"],
                                    json.loads(answer)["apiVersion"]))


def start_https(handler, cert, key):
    server = http.server.ThreadingHTTPServer((HOST, 0), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --------------------------------------------------------------------------------------
# Set-up


def start_webhook(c):
    pki = c.pki
    crt, key = pki.issue("webhook", "/CN=pod-identity-webhook", server=True)
    client_crt, client_key = pki.issue("webhook-client", "/CN=pod-identity-webhook")
    kubeconfig = cluster.kubeconfig(pki.path("webhook.kubeconfig"), c.server, pki.ca_crt,
                                    client_crt, client_key)
    for obj in cluster.webhook_rbac("pod-identity-webhook"):
        c.apply(obj)
    port, metrics = free_port(), free_port()
    hook = Process("webhook", [
        Env.binary, "serve", "--listen", "%s:%d" % (HOST, port),
        "--metrics-listen", "%s:%d" % (HOST, metrics), "--tls-cert", crt, "--tls-key", key,
        "--kubeconfig", kubeconfig, "--profiles-dir", os.path.join(TOP, "profiles"),
        "--log-level", "debug"], Env.work,
        env={k: v for k, v in os.environ.items() if not k.startswith("PIW_")})
    c.procs.append(hook)

    def ready():
        if not hook.alive():
            raise cluster.StartError("the webhook exited:\n" + hook.tail())
        try:
            with urllib.request.urlopen("http://%s:%d/readyz" % (HOST, metrics),
                                        timeout=1) as r:
                return r.status == 200
        except OSError:
            return False
    if not wait_until(ready, 120):   # a wait, not a bound: a busy machine is slow
        raise cluster.StartError("the webhook never became ready:\n" + hook.tail())
    hook.url = "https://%s:%d/mutate" % (HOST, port)
    return hook


def register_webhooks(c, hook, sidecar_url, proxy_url):
    ca = c.pki.ca_bundle()
    # Pods labelled e2e/review-version=v1beta1 go only to a configuration that accepts
    # v1beta1 AdmissionReviews alone (through RecordingProxy, to our webhook); every
    # other pod to the v1 one.
    version_label = "e2e/review-version"
    c.apply(cluster.mutating_webhook(
        "pod-identity-webhook", hook.url, ca,
        object_selector={"matchExpressions": [{"key": version_label, "operator": "NotIn",
                                               "values": ["v1beta1"]}]}))
    c.apply(cluster.mutating_webhook(
        "pod-identity-webhook-v1beta1", proxy_url, ca, versions=("v1beta1",),
        object_selector={"matchLabels": {version_label: "v1beta1"}}))
    # Configurations are called in name order: this one runs after ours.
    c.apply(cluster.mutating_webhook(
        "zz-e2e-sidecar", sidecar_url, ca, reinvocation="Never",
        object_selector={"matchLabels": {"e2e/sidecar": "yes"}}))


def wait_webhooks_active(c):
    """The API server's webhook informer is eventually consistent: dry-run a pod that
    must be patched until it is (and one through the v1beta1 configuration)."""
    ns = new_namespace("probe")
    c.create(service_account(ns, "probe", TRIGGERS["aws"]))
    for labels in ({}, {"e2e/review-version": "v1beta1"}, {"e2e/sidecar": "yes"}):
        probe = pod(ns, "probe", "probe", labels=labels)

        def patched():
            p = c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                          stdin=json.dumps(probe), check=False)
            return p.returncode == 0 and PROFILES_ANNOTATION in p.stdout and (
                "e2e/sidecar" not in labels or '"sidecar"' in p.stdout)
        if not wait_until(patched, 120, 0.25):
            raise cluster.StartError("the webhooks never took effect for %r" % labels)


def setUpModule():
    Env.work = cluster.make_workdir()
    Env.cluster = c = Cluster(Env.apiserver_dir, Env.work)
    try:
        c.start()
        Env.webhook = start_webhook(c)
        side_crt, side_key = c.pki.issue("helpers", "/CN=e2e helpers", server=True)
        Env.sidecar = start_https(SidecarHandler, side_crt, side_key)
        RecordingProxy.target, RecordingProxy.ca = Env.webhook.url, c.pki.ca_crt
        Env.proxy = start_https(RecordingProxy, side_crt, side_key)
        register_webhooks(c, Env.webhook,
                          "https://%s:%d/" % (HOST, Env.sidecar.server_address[1]),
                          "https://%s:%d/" % (HOST, Env.proxy.server_address[1]))
        wait_webhooks_active(c)
    except BaseException:
        sys.stderr.write(c.logs() + "\n")
        c.stop()
        raise


def tearDownModule():
    c = Env.cluster
    for server in (Env.sidecar, Env.proxy):
        if server:
            server.shutdown()
    status = Env.webhook.stop() if Env.webhook else 0
    c.stop()
    if status != 0:
        sys.stderr.write(c.logs() + "\n")
        raise AssertionError("the webhook exited %d after SIGTERM" % status)
    shutil.rmtree(Env.work, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Objects


def new_namespace(prefix):
    """A fresh namespace with its `default` ServiceAccount (no controller makes it)."""
    Env.counter += 1
    name = "%s-%d" % (prefix, Env.counter)
    Env.cluster.create({"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": name}})
    Env.cluster.create(service_account(name, "default"))
    return name


def service_account(namespace, name, annotations=None):
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def pod(namespace, name, sa, labels=None, init=False):
    spec = {"serviceAccountName": sa,
            "containers": [{"name": "app", "image": "registry.example/app:1",
                            "env": [{"name": "APP_MODE", "value": "e2e"}]}]}
    if init:
        spec["initContainers"] = [{"name": "migrate", "image": "registry.example/migrate:1"}]
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def golden(provider, case="basic"):
    """A provider's golden case: (ServiceAccount, Pod, expected Pod)."""
    d = os.path.join(TOP, "providers", provider, "cases", case)

    def load(name):
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    return load("service-account.json"), load("pod.json"), load("expected-pod.json")


def as_submitted(obj, namespace, name=None):
    """A stored-looking object made submittable: into our namespace, without what the
    API server sets itself."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for key in ("uid", "resourceVersion", "creationTimestamp", "ownerReferences",
                "managedFields", "generateName"):
        meta.pop(key, None)
    meta["namespace"] = namespace
    if name:
        meta["name"] = name
    obj.pop("status", None)
    obj.get("spec", {}).pop("nodeName", None)
    return obj


def env_map(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def mounts(container):
    return {m["name"]: m for m in container.get("volumeMounts", [])}


# --------------------------------------------------------------------------------------
# Tests


class E2ETestCase(unittest.TestCase):

    def setUp(self):
        self.c = Env.cluster

    def assertInjected(self, stored, provider, containers):
        """Each named container has the provider's env and a read-only token mount,
        and the pod has the projected volume."""
        env, volume, path = EXPECTED[provider]
        volumes = {v["name"]: v for v in stored["spec"].get("volumes", [])}
        self.assertIn(volume, volumes)
        self.assertIn("serviceAccountToken", volumes[volume]["projected"]["sources"][0])
        everything = stored["spec"]["containers"] + stored["spec"].get("initContainers", [])
        by_name = {c["name"]: c for c in everything}
        for name in containers:
            c = by_name[name]
            for key, value in env.items():
                self.assertEqual(env_map(c).get(key), value, (name, key))
            self.assertEqual(mounts(c)[volume]["mountPath"], path, name)
            self.assertTrue(mounts(c)[volume].get("readOnly"), name)

    def assertMatchesGolden(self, stored, expected):
        """What the real API server stored equals the golden expected pod in everything
        the webhook decides (the API server adds its defaults around it)."""
        self.assertEqual(stored["metadata"].get("annotations", {}).get(PROFILES_ANNOTATION),
                         expected["metadata"]["annotations"][PROFILES_ANNOTATION])
        for kind in ("initContainers", "containers"):
            got = stored["spec"].get(kind, [])
            want = expected["spec"].get(kind, [])
            self.assertEqual([c["name"] for c in got], [c["name"] for c in want])
            for g, w in zip(got, want):
                self.assertEqual(g.get("env"), w.get("env"), (kind, g["name"]))
                self.assertEqual(g.get("volumeMounts"), w.get("volumeMounts"),
                                 (kind, g["name"]))
        self.assertEqual(stored["spec"].get("volumes"), expected["spec"].get("volumes"))

    def golden_objects(self, provider):
        sa, p, expected = golden(provider)
        ns = new_namespace(provider)
        self.c.create(as_submitted(sa, ns))
        return ns, as_submitted(p, ns), expected

    def check_create(self, provider):
        ns, p, expected = self.golden_objects(provider)
        self.c.create(p)
        stored = self.c.get("pod", p["metadata"]["name"], ns)
        self.assertMatchesGolden(stored, expected)

    def check_dry_run(self, provider):
        ns, p, expected = self.golden_objects(provider)
        out = self.c.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                             stdin=json.dumps(p))
        self.assertMatchesGolden(json.loads(out.stdout), expected)
        gone = self.c.kubectl("get", "pod", p["metadata"]["name"], "-n", ns, check=False)
        self.assertNotEqual(gone.returncode, 0, "a --dry-run=server pod was stored")
        self.assertIn("NotFound", gone.stderr)


class ProviderTests(E2ETestCase):
    """Each provider's golden basic case, through the real API server: created, and with
    --dry-run=server."""

    def test_stackit_create(self):
        self.check_create("stackit")

    def test_stackit_dry_run_server(self):
        self.check_dry_run("stackit")

    def test_aws_create(self):
        self.check_create("aws")

    def test_aws_dry_run_server(self):
        self.check_dry_run("aws")

    def test_vultr_create(self):
        self.check_create("vultr")

    def test_vultr_dry_run_server(self):
        self.check_dry_run("vultr")


class BehaviourTests(E2ETestCase):

    def test_init_containers(self):
        """An init container gets the credentials as the main container does."""
        ns = new_namespace("init")
        self.c.create(service_account(ns, "app", TRIGGERS["aws"]))
        self.c.create(pod(ns, "web", "app", init=True))
        stored = self.c.get("pod", "web", ns)
        self.assertInjected(stored, "aws", ["migrate", "app"])
        self.assertEqual(env_map(stored["spec"]["containers"][0])["APP_MODE"], "e2e")

    def test_two_providers_on_one_service_account(self):
        """stackit and aws annotations on one ServiceAccount: both volumes, both sets of
        env vars, both profiles recorded."""
        ns = new_namespace("two")
        self.c.create(service_account(ns, "app", {**TRIGGERS["aws"], **TRIGGERS["stackit"]}))
        self.c.create(pod(ns, "web", "app"))
        stored = self.c.get("pod", "web", ns)
        self.assertInjected(stored, "aws", ["app"])
        self.assertInjected(stored, "stackit", ["app"])
        self.assertEqual(sorted(stored["metadata"]["annotations"][PROFILES_ANNOTATION]
                                .split(",")), ["aws", "stackit"])

    def test_service_account_created_just_before_its_pod(self):
        """No pause between the ServiceAccount and its pod (5 times): the watch may not
        have delivered it yet, and the live lookup must find it."""
        ns = new_namespace("fresh")
        for i in range(5):
            self.c.create(service_account(ns, "app-%d" % i, TRIGGERS["stackit"]))
            self.c.create(pod(ns, "web-%d" % i, "app-%d" % i))
        for i in range(5):
            self.assertInjected(self.c.get("pod", "web-%d" % i, ns), "stackit", ["app"])

    def test_unannotated_service_account(self):
        """No trigger annotation: admitted as it was (no volume, env or annotation of
        ours)."""
        ns = new_namespace("plain")
        self.c.create(service_account(ns, "app"))
        self.c.create(pod(ns, "web", "app"))
        stored = self.c.get("pod", "web", ns)
        self.assertNotIn(PROFILES_ANNOTATION, stored["metadata"].get("annotations", {}))
        self.assertEqual(env_map(stored["spec"]["containers"][0]), {"APP_MODE": "e2e"})
        names = [v["name"] for v in stored["spec"].get("volumes", [])]
        self.assertEqual([n for n in names if not n.startswith("kube-api-access-")], [])

    def test_bad_annotation_denied_with_our_message(self):
        """A role ARN that is not one: kubectl create fails with the webhook's reason,
        naming the ServiceAccount, the annotation and the bad value; nothing stored."""
        ns = new_namespace("bad")
        self.c.create(service_account(ns, "app", {"eks.amazonaws.com/role-arn": "not-an-arn"}))
        p = self.c.kubectl("create", "-f", "-", stdin=json.dumps(pod(ns, "web", "app")),
                           check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn('admission webhook "%s" denied the request' % HOOK, p.stderr)
        self.assertIn('ServiceAccount "%s/app" annotation "eks.amazonaws.com/role-arn"' % ns,
                      p.stderr)
        self.assertIn("not-an-arn", p.stderr)
        self.assertIn("is not an IAM role ARN", p.stderr)
        self.assertNotEqual(self.c.kubectl("get", "pod", "web", "-n", ns,
                                           check=False).returncode, 0)

    def test_v1beta1_review_only(self):
        """A configuration that accepts only admission.k8s.io/v1beta1: the API server
        sends a v1beta1 review, accepts our v1beta1 answer and applies the patch."""
        ns = new_namespace("v1beta1")
        self.c.create(service_account(ns, "app", TRIGGERS["aws"]))
        before = len(RecordingProxy.seen)
        self.c.create(pod(ns, "web", "app", labels={"e2e/review-version": "v1beta1"}))
        self.assertInjected(self.c.get("pod", "web", ns), "aws", ["app"])
        self.assertEqual(RecordingProxy.seen[before:],
                         [("admission.k8s.io/v1beta1", "admission.k8s.io/v1beta1")])

    def test_reinvocation_after_a_sidecar_is_added(self):
        """A later webhook adds a sidecar; reinvocationPolicy IfNeeded calls ours again,
        and the sidecar ends up with the credentials too (and the app container keeps
        exactly one copy)."""
        ns = new_namespace("sidecar")
        self.c.create(service_account(ns, "app", TRIGGERS["aws"]))
        self.c.create(pod(ns, "web", "app", labels={"e2e/sidecar": "yes"}))
        stored = self.c.get("pod", "web", ns)
        self.assertEqual([c["name"] for c in stored["spec"]["containers"]],
                         ["app", "sidecar"])
        self.assertInjected(stored, "aws", ["app", "sidecar"])
        app_env = [e["name"] for e in stored["spec"]["containers"][0]["env"]]
        self.assertEqual(len(app_env), len(set(app_env)), app_env)
        volumes = [v["name"] for v in stored["spec"]["volumes"]]
        self.assertEqual(volumes.count("aws-iam-token"), 1, volumes)


class ChartTests(E2ETestCase):

    def test_default_chart_accepted_by_the_api_server(self):
        """`helm template` of the default values, applied with --dry-run=server: the real
        API server validates every kind, apiVersion and field (defaulting and admission
        included, our own webhook among them) and stores nothing. The chart needs
        Kubernetes 1.21 for one object, the policy/v1 PodDisruptionBudget, which this
        1.20 API server does not serve: it is rendered for 1.21 and that one document is
        left out (tests/chart checks its schema)."""
        helm = os.path.join(TOP, ".tools", "bin", "helm")
        self.assertTrue(os.access(helm, os.X_OK), "helm missing: run scripts/install-deps.sh")
        ns = new_namespace("chart")
        rendered = subprocess.run(
            [helm, "template", "piw", os.path.join(TOP, "charts", "pod-identity-webhook"),
             # the chart needs an image (there is no public one)
             "--set", "image.repository=registry.e2e.internal/pod-identity-webhook",
             "--namespace", ns, "--kube-version", "1.21.0", "--output-dir",
             os.path.join(Env.work, "chart")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
        # Helm notes that the chart's profiles/ are symbolic links to the shipped ones.
        self.assertEqual([line for line in rendered.stderr.splitlines()
                          if "found symbolic link in path" not in line], [])
        docs, kinds = [], []
        for root, _, files in os.walk(os.path.join(Env.work, "chart")):
            for name in sorted(files):
                with open(os.path.join(root, name)) as f:
                    for doc in yaml.safe_load_all(f):
                        if doc and doc["kind"] != "PodDisruptionBudget":
                            docs.append(doc)
                            kinds.append(doc["kind"])
        self.assertEqual(sorted(set(kinds)), sorted([
            "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "Job",
            "MutatingWebhookConfiguration", "Role", "RoleBinding", "Secret", "Service",
            "ServiceAccount"]))
        out = self.c.kubectl("apply", "--dry-run=server", "-n", ns, "-o", "name", "-f", "-",
                             stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                               "items": docs}))
        self.assertEqual(len(out.stdout.split()), len(docs), out.stdout)
        self.assertEqual(self.c.kubectl("get", "deployment", "-n", ns, "-o", "name")
                         .stdout.strip(), "", "a dry-run object was stored")


def load_area_modules():
    """Adds the TestCase classes of every tests/e2e/e2e_<area>.py to this run. Those
    files `import test_e2e` for the fixtures above; this module is registered under
    that name first, so they share its one cluster (Env) rather than a second copy."""
    sys.modules.setdefault("test_e2e", sys.modules[__name__])
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "e2e_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (isinstance(value, type) and issubclass(value, unittest.TestCase)
                    and value.__module__ == name):
                # unittest runs setUpModule/tearDownModule of a class's __module__:
                # this module's, so that the class runs in the one cluster.
                value.__module__ = __name__
                globals()[attr] = value


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    Env.binary, Env.apiserver_dir = os.path.abspath(argv[1]), os.path.abspath(argv[2])
    load_area_modules()
    unittest.main(module=__name__, argv=[argv[0]] + argv[3:], verbosity=2)


if __name__ == "__main__":
    main(sys.argv)
