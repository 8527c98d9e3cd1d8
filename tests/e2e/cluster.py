"""A real Kubernetes control plane on loopback for the end-to-end tests: etcd (Debian's
etcd-server), kube-apiserver and kubectl 1.20.2 (tests/e2e/get-apiserver.sh).

There is no controller-manager, scheduler or kubelet: pods are stored, never run, and each
namespace's `default` ServiceAccount is created by hand (the ServiceAccount admission
plugin refuses pods whose ServiceAccount does not exist). The webhook is registered with a
`url:` clientConfig (no kube-proxy, so `service:` cannot reach it) and its CA bundle.
Every port is picked free at run time; every file lives in one temp directory.
"""
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

HOST = "127.0.0.1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Pki:
    """A CA, the API server's serving certificate, client certificates and the
    ServiceAccount token signing key, made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        self.ca_key, self.ca_crt = self.path("ca.key"), self.path("ca.crt")
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", self.ca_key)
        self._openssl("req", "-x509", "-new", "-key", self.ca_key, "-subj", "/CN=piw e2e CA",
                      "-days", "2", "-out", self.ca_crt)
        self.sa_key, self.sa_pub = self.path("sa.key"), self.path("sa.pub")
        self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                      "-out", self.sa_key)
        self._openssl("pkey", "-in", self.sa_key, "-pubout", "-out", self.sa_pub)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (" ".join(args), p.stderr.decode()))

    def issue(self, name, subject, server=False):
        """(cert, key) signed by the CA: a serving certificate for 127.0.0.1 and
        localhost, or a client certificate."""
        key, csr, crt, ext = (self.path(name + s) for s in (".key", ".csr", ".crt", ".ext"))
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-out", key)
        self._openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_crt, "-CAkey", self.ca_key,
                      "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)
        return crt, key

    def ca_bundle(self):
        with open(self.ca_crt, "rb") as f:
            return base64.b64encode(f.read()).decode()


def kubeconfig(path, server, ca, cert, key):
    """A kubeconfig (JSON is YAML) with client-certificate authentication."""
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "e2e",
           "clusters": [{"name": "e2e", "cluster": {"server": server,
                                                    "certificate-authority": ca}}],
           "users": [{"name": "e2e", "user": {"client-certificate": cert,
                                              "client-key": key}}],
           "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e"}}]}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    return path


class Process:
    """A child process whose output goes to a log file in the work directory."""

    def __init__(self, name, argv, directory, env=None):
        self.name, self.argv = name, argv
        self.log_path = os.path.join(directory, name + ".log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def tail(self, lines=30):
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL; returns the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class StartError(Exception):
    pass


class Cluster:
    """etcd + kube-apiserver on free loopback ports, and kubectl as an admin."""

    def __init__(self, apiserver_dir, work):
        self.work = work
        self.procs = []
        self.pki = Pki(work)
        self.apiserver_bin = os.path.join(apiserver_dir, "kube-apiserver")
        # kubectl of the API server's release (get-apiserver.sh puts it beside)
        self.kubectl_bin = os.path.join(apiserver_dir, "kubectl")

    def start(self):
        self._start_etcd()
        self._start_apiserver()
        return self

    def _start_etcd(self):
        client, peer = free_port(), free_port()
        self.etcd_url = "http://%s:%d" % (HOST, client)
        peer_url = "http://%s:%d" % (HOST, peer)
        etcd = Process("etcd", [
            shutil.which("etcd") or "/usr/bin/etcd", "--name", "e2e",
            "--data-dir", os.path.join(self.work, "etcd-data"),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", "e2e=" + peer_url, "--unsafe-no-fsync"], self.work)
        self.procs.append(etcd)

        def healthy():
            if not etcd.alive():
                raise StartError("etcd exited:\n" + etcd.tail())
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=1) as r:
                    return b'"true"' in r.read()
            except OSError:
                return False
        if not wait_until(healthy, 120):   # waits, not bounds: a busy machine is slow
            raise StartError("etcd not healthy after 120 s:\n" + etcd.tail())

    def _start_apiserver(self):
        port = free_port()
        self.server = "https://%s:%d" % (HOST, port)
        crt, key = self.pki.issue("apiserver", "/CN=kube-apiserver", server=True)
        admin_crt, admin_key = self.pki.issue("admin", "/O=system:masters/CN=e2e-admin")
        self.admin_kubeconfig = kubeconfig(self.pki.path("admin.kubeconfig"), self.server,
                                           self.pki.ca_crt, admin_crt, admin_key)
        api = Process("kube-apiserver", [
            self.apiserver_bin,
            "--etcd-servers", self.etcd_url,
            "--bind-address", HOST, "--advertise-address", HOST,
            "--secure-port", str(port), "--insecure-port", "0",
            "--tls-cert-file", crt, "--tls-private-key-file", key,
            "--client-ca-file", self.pki.ca_crt,
            "--service-account-key-file", self.pki.sa_pub,
            "--service-account-signing-key-file", self.pki.sa_key,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--authorization-mode", "Node,RBAC",
            "--endpoint-reconciler-type", "none",
            "--feature-gates", "BoundServiceAccountTokenVolume=true",
            "--service-cluster-ip-range", "10.96.0.0/24",
            "--cert-dir", os.path.join(self.work, "apiserver-certs"),
            "--profiling=false"], self.work)
        self.procs.append(api)
        ctx = ssl.create_default_context(cafile=self.pki.ca_crt)
        ctx.load_cert_chain(admin_crt, admin_key)

        def ready():
            if not api.alive():
                raise StartError("kube-apiserver exited:\n" + api.tail())
            try:
                with urllib.request.urlopen(self.server + "/readyz", context=ctx,
                                            timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        if not wait_until(ready, 300, 0.25):
            raise StartError("kube-apiserver not ready after 300 s:\n" + api.tail())
        # The system namespaces are created by the API server itself, shortly after.
        if not wait_until(lambda: self.kubectl("get", "namespace", "default",
                                               check=False).returncode == 0, 120):
            raise StartError("namespace default never appeared")

    def kubectl(self, *args, stdin=None, check=True):
        """kubectl as the admin; a CompletedProcess with text stdout/stderr."""
        p = subprocess.run([self.kubectl_bin, "--kubeconfig", self.admin_kubeconfig,
                            "--request-timeout", "30s"] + list(args),
                           input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("kubectl %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                             p.stderr.strip()))
        return p

    def apply(self, obj):
        return self.kubectl("apply", "-f", "-", stdin=json.dumps(obj))

    def create(self, obj):
        return self.kubectl("create", "-f", "-", stdin=json.dumps(obj))

    def get(self, kind, name, namespace=None):
        args = ["get", kind, name, "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        return json.loads(self.kubectl(*args).stdout)

    def stop(self):
        for p in reversed(self.procs):
            p.stop()

    def logs(self):
        return "\n".join("----- %s -----\n%s" % (p.name, p.tail()) for p in self.procs)


def webhook_rbac(user):
    """What the chart grants the webhook (get/list/watch ServiceAccounts), bound to a
    client-certificate user instead of the chart's ServiceAccount."""
    name = "pod-identity-webhook-e2e"
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["serviceaccounts"],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                       "name": user}]},
    ]


def mutating_webhook(name, url, ca_bundle, versions=("v1",), reinvocation="IfNeeded",
                     object_selector=None, namespace_selector=None):
    hook = {"name": name + ".e2e.piw.test",
            "clientConfig": {"url": url, "caBundle": ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["pods"]}],
            "admissionReviewVersions": list(versions), "sideEffects": "None",
            "failurePolicy": "Fail", "reinvocationPolicy": reinvocation,
            "timeoutSeconds": 10}
    if object_selector:
        hook["objectSelector"] = object_selector
    if namespace_selector:
        hook["namespaceSelector"] = namespace_selector
    return {"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration", "metadata": {"name": name},
            "webhooks": [hook]}


def make_workdir():
    return tempfile.mkdtemp(prefix="piw-e2e-")
