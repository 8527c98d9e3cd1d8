"""Helpers for test_kube.py: `serve --kubeconfig` against the in-process fake API server.

Built on harness.py (certificates, the Server process, ServerTestCase) and
tests/fakeapi/fake_apiserver.py (FakeApiServer, make_test_pki). Pieces:

- fake_pki() / other_pki(): the fake's test PKI (server CA, server certificate, client
  CA, client certificate), made once per run; other_pki() is a second, unrelated one
  (a CA the fake's certificate does not chain to).
- kubeconfig_text(): a kubeconfig (YAML) with the given cluster and user fields, plus a
  decoy context/cluster/user that uses everything the webhook refuses, so a test also
  proves that only current-context is read.
- KubeServer: harness.Server without --service-accounts-dir, with --kubeconfig; counts
  the admissions sent to it and the answers they got.
- KubeTestCase: ServerTestCase plus start_fake(), start_kube(), admit() (every admission
  must be answered 200 or 500; the count is checked against the server's own
  piw_http_requests_total before the server gets SIGTERM), metric helpers, pause_watch()
  and bump_resource_version().

Debian's /usr/bin/python3, standard library plus what harness.py/test_server.py use.
"""
import atexit
import base64
import collections
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid

import harness
from harness import (HOST, Config, Server, ServerTestCase, env_of, pod, review, scaled,
                     wait_until, write_atomic)
from test_server import metric_value, parse_metrics, patched_pod


def patient(within):
    """A wait for something that should happen: at least harness.PATIENCE (stretched),
    so a busy machine is never a failure; a passing test never waits for it."""
    return max(within, scaled(harness.PATIENCE))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakeapi"))
from fake_apiserver import (ApiError, FakeApiServer, _fragments,  # noqa: E402
                            _now_iso, make_test_pki)

AWS_ARN = "eks.amazonaws.com/role-arn"
STACKIT_EMAIL = "workload-identity.stackit.cloud/service-account-email"
NAMESPACE = "payments"
TOKEN = "piw-test-token-0001"


def arn(name):
    """A valid IAM role ARN for a ServiceAccount name."""
    return "arn:aws:iam::111122223333:role/%s" % name


# --------------------------------------------------------------------------------------
# PKI

_pki = {}
_pki_lock = threading.Lock()


def _make_pki(which):
    with _pki_lock:
        if which not in _pki:
            d = tempfile.mkdtemp(prefix="piw-kube-pki-%s-" % which)
            atexit.register(shutil.rmtree, d, True)
            _pki[which] = make_test_pki(d)
        return _pki[which]


def fake_pki():
    """{name: path} of the fake API server's PKI (made once per run)."""
    return _make_pki("main")


def other_pki():
    """A second, unrelated PKI (its ca.crt does not sign the fake's certificate)."""
    return _make_pki("other")


def b64_file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


# --------------------------------------------------------------------------------------
# kubeconfig


def _yaml_value(value):
    """A scalar or a flow collection: JSON is valid YAML."""
    return json.dumps(value)


def _yaml_fields(fields, indent):
    pad = " " * indent
    return "".join("%s%s: %s\n" % (pad, k, _yaml_value(v)) for k, v in fields.items())


def kubeconfig_text(server, cluster=None, user=None):
    """A kubeconfig whose current-context uses cluster {server, **cluster} and user
    {**user}; a decoy context (first in each list) uses an exec plugin, an auth provider,
    basic auth and insecure-skip-tls-verify, which must not matter as it is not current."""
    cluster_fields = {"server": server}
    cluster_fields.update(cluster or {})
    return ("apiVersion: v1\nkind: Config\npreferences: {}\ncurrent-context: webhook\n"
            "clusters:\n"
            "- name: decoy\n  cluster:\n    server: http://decoy.invalid\n"
            "    insecure-skip-tls-verify: true\n"
            "- name: fake\n  cluster:\n" + _yaml_fields(cluster_fields, 4) +
            "contexts:\n"
            "- name: decoy\n  context: {cluster: decoy, user: decoy}\n"
            "- name: webhook\n  context:\n    cluster: fake\n    user: webhook\n"
            "    namespace: kube-system\n"
            "users:\n"
            "- name: decoy\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1,"
            " command: /bin/false}\n    auth-provider: {name: oidc}\n"
            "    username: admin\n    password: secret\n"
            "- name: webhook\n  user:\n" + (_yaml_fields(user, 4) if user else "    {}\n"))


def write_kubeconfig(path, server, cluster=None, user=None):
    write_atomic(path, kubeconfig_text(server, cluster, user).encode())
    return path


# --------------------------------------------------------------------------------------
# The server


class KubeServer(Server):
    """`serve --kubeconfig FILE` (no --service-accounts-dir); counts admissions."""

    def __init__(self, workdir, cert, key, kubeconfig, **kw):
        super().__init__(workdir, cert, key, **kw)
        self.kubeconfig = kubeconfig
        self.admissions = collections.Counter()
        self._count_lock = threading.Lock()

    def command(self):
        cmd = super().command()
        i = cmd.index("--service-accounts-dir")
        del cmd[i:i + 2]
        return cmd + ["--kubeconfig", self.kubeconfig]

    def count(self, key):
        with self._count_lock:
            self.admissions[key] += 1

    def scrape(self):
        """The parsed /metrics."""
        resp = self.metrics_request()
        if resp.status != 200:
            raise AssertionError("/metrics answered %d" % resp.status)
        return parse_metrics(resp.body.decode())

    def wait_serving(self, timeout):
        """Waits until /healthz answers (the process set up its listeners and signal
        handlers), for servers started without waiting for readiness."""
        def serving():
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %d:\n%s" % (
                    self.name, self.proc.returncode, self.log_text()))
            try:
                return self.metrics_request("/healthz", timeout=scaled(10)).status == 200
            except (OSError, http.client.HTTPException):
                return False
        if not wait_until(serving, timeout, 0.02):
            raise AssertionError("%s: /healthz not 200 within %.0f s" % (self.name, timeout))
        return self

    def readyz(self):
        """Status of GET /readyz on the HTTPS listener."""
        try:
            return self.request("GET", "/readyz", timeout=scaled(10)).status
        except (OSError, http.client.HTTPException):
            return None


class Admission:
    """One admission's answer: status, the response object (200), the patched pod's
    AWS_ROLE_ARN / env, warnings, the body text (500) and how long it took."""

    def __init__(self, status, body, response, rv, seconds):
        self.status, self.body, self.response, self.seconds = status, body, response, seconds
        self.patched = response is not None and "patch" in response
        self.pod = patched_pod(rv, response) if self.patched else None
        self.env = env_of(self.pod) if self.patched else {}
        self.arn = self.env.get("AWS_ROLE_ARN")
        self.warnings = (response or {}).get("warnings") or []

    @property
    def not_found(self):
        return any("not found" in w for w in self.warnings)

    def __repr__(self):
        return "Admission(%d, arn=%r, warnings=%r, body=%r, %.3fs)" % (
            self.status, self.arn, self.warnings, self.body[:300], self.seconds)


class KubeTestCase(ServerTestCase):
    """ServerTestCase for the Kubernetes source: a fake API server per test, servers that
    read it through a kubeconfig, and admissions that are all answered."""

    def start_fake(self, token=TOKEN, client_ca=False, **kw):
        """Starts a FakeApiServer (stopped after the test's servers). With token, the fake
        requires it (its token file is self.fake_token_file; the webhook's kubeconfig
        gets its own copy, self.token_file). client_ca=True requires the test client
        certificate."""
        pki = fake_pki()
        self.fake_token_file = self.token_file = None
        if token is not None:
            self.fake_token_file = os.path.join(self.tmp, "fake-token")
            self.token_file = os.path.join(self.tmp, "webhook-token")
            write_atomic(self.fake_token_file, (token + "\n").encode())
            write_atomic(self.token_file, (token + "\n").encode())
        kw.setdefault("io_timeout", 60.0)
        api = FakeApiServer(cert=pki["server.crt"], key=pki["server.key"],
                            token_file=self.fake_token_file,
                            client_ca=pki["client-ca.crt"] if client_ca else None, **kw)
        api.start()
        self.addCleanup(api.stop)
        self.addCleanup(self._check_rbac, api)   # after the servers stopped, before stop
        return api

    def _check_rbac(self, api):
        """Every request the webhook made is a get, list or watch of serviceaccounts."""
        for r in api.requests():
            self.assertEqual(r["method"], "GET", r)
            self.assertIn(r["kind"], ("list", "watch", "get"), r)

    def kubeconfig(self, api, cluster=None, user=None, name="kubeconfig"):
        """Writes a kubeconfig for api (default: inline CA data, the token) and returns
        its path."""
        if cluster is None:
            cluster = {"certificate-authority-data": b64_file(fake_pki()["ca.crt"])}
        if user is None:
            user = {"token": TOKEN}
        return write_kubeconfig(os.path.join(self.tmp, name), api.api_url, cluster, user)

    def start_kube(self, api=None, kubeconfig=None, extra=(), wait_ready=True, **kw):
        """Starts `serve --kubeconfig` (default: a kubeconfig for api); at the end of the
        test every admission sent must have been answered and counted by the server, and
        a SIGTERM must end it with status 0."""
        pair = harness.certs().default_rsa
        kw.setdefault("name", "kube%d" % (len(self._servers) + 1))
        extra = list(extra)
        if "--sa-lookup-timeout" not in extra:   # room for a busy machine: 5 s, stretched
            extra += ["--sa-lookup-timeout", "%dms" % min(30000, int(scaled(5.0) * 1000))]
        server = KubeServer(self.tmp, pair.cert_path, pair.key_path,
                            kubeconfig or self.kubeconfig(api), extra=extra, **kw)
        self._servers.append(server)
        self.addCleanup(self._stop_server, server)
        self.addCleanup(self._check_admissions, server)   # runs before the stop
        server.start(wait_ready=wait_ready)
        return server if wait_ready else server.wait_serving(patient(10))

    def _check_admissions(self, server):
        sent = server.admissions["sent"]
        answered = server.admissions[200] + server.admissions[500]
        self.assertEqual(answered, sent, "admissions sent vs answered 200/500: %r"
                         % dict(server.admissions))
        if not server.running:
            return
        served = metric_value(server.scrape(), "piw_http_requests_total",
                              listener="https", path="/mutate")
        self.assertEqual(served, sent, "the server counted %d /mutate answers, the test "
                         "sent %d" % (served, sent))

    # ---- admissions

    def admit(self, server, sa, namespace=NAMESPACE, timeout=None, allow=(200, 500),
              client=None):
        """POSTs a pod of ServiceAccount sa; the answer must be 200 (checked: uid echoed)
        or 500, and among allow. Returns an Admission."""
        rv = review(pod(namespace=namespace, sa=sa), namespace=namespace)
        server.count("sent")
        started = time.monotonic()
        try:
            if client is not None:
                resp = client.post_review(rv)
            else:
                resp = server.post_review(rv, timeout=timeout or scaled(15))
        except Exception:
            server.count("no-answer")
            raise
        seconds = time.monotonic() - started
        server.count(resp.status if resp.status in (200, 500) else "other")
        self.assertIn(resp.status, allow, resp)
        response = self.assertReview(resp, rv) if resp.status == 200 else None
        return Admission(resp.status, resp.body.decode("utf-8", "replace"), response, rv,
                         seconds)

    def assertArn(self, server, sa, expected, namespace=NAMESPACE):
        """A 200 whose patch gives AWS_ROLE_ARN expected (None: no patch)."""
        a = self.admit(server, sa, namespace, allow=(200,))
        self.assertEqual(a.arn, expected, a)
        return a

    def wait_arn(self, server, sa, expected, within, what, namespace=NAMESPACE):
        """Polls admissions until the ARN is expected; fails after within seconds (at
        least patient(): how a change arrived is asserted by the fake's records, never by
        a busy machine's speed). Returns the time it took (from the call)."""
        within = patient(within)
        started = time.monotonic()
        last = [None]

        def check():
            last[0] = self.admit(server, sa, namespace, allow=(200,))
            return last[0].arn == expected
        ok = wait_until(check, within, 0.02)
        self.assertTrue(ok, "%s: ARN not %r within %.1f s (last %r)"
                        % (what, expected, within, last[0]))
        return time.monotonic() - started

    # ---- metrics and the fake's records

    def metric(self, server, name, **labels):
        return metric_value(server.scrape(), name, **labels)

    def lookups(self, server):
        """{result: count} of piw_sa_lookups_total."""
        parsed = server.scrape()
        return {l.get("result"): v for n, l, v in parsed["samples"]
                if n == "piw_sa_lookups_total"}

    def restarts(self, server):
        """{reason: count} of piw_sa_watch_restarts_total."""
        parsed = server.scrape()
        return {l.get("reason"): v for n, l, v in parsed["samples"]
                if n == "piw_sa_watch_restarts_total"}

    def wait_metric(self, server, name, predicate, within, what, **labels):
        """Polls a metric until predicate(value) (for at least patient(within));
        returns the value."""
        within = patient(within)
        last = [None]

        def check():
            last[0] = self.metric(server, name, **labels)
            return predicate(last[0])
        self.assertTrue(wait_until(check, within, 0.05),
                        "%s: %s%r is %r after %.1f s" % (what, name, labels, last[0], within))
        return last[0]

    def wait_count(self, server, count, within, what="ServiceAccounts"):
        """Waits until piw_service_accounts (refreshed every --reload-interval) is count."""
        return self.wait_metric(server, "piw_service_accounts", lambda v: v == count,
                                within, what)

    @staticmethod
    def gets(api, name=None, since=0):
        """The recorded live GETs (of one ServiceAccount name if given)."""
        return [r for r in api.requests(kind="get", since=since)
                if name is None or r["path"].rsplit("/", 1)[-1] == name]

    @staticmethod
    def last_seq(api):
        records = api.requests()
        return records[-1]["seq"] if records else 0

    def wait_requests(self, api, within, what, **counts):
        """Waits until the fake has recorded at least counts ({"list": 2, ...})."""
        within = patient(within)
        self.assertTrue(api.wait(counts=counts, timeout=within),
                        "%s: the fake recorded %r, wanted %r" % (what, api.request_counts(),
                                                                 counts))

    def wait_watch(self, api, within=None, what="the watch"):
        """Waits until the webhook's watch is open."""
        self.assertTrue(api.wait(open_watches=1, timeout=patient(within or 0)),
                        "%s is not open (%r)" % (what, api.state()))

    def pause_watch(self, api):
        """Cuts the open watch and makes the webhook's next watch hang (no headers) until
        clear_faults(): changes made meanwhile reach the webhook only by a live GET.
        Returns once the hung watch request is recorded."""
        self.wait_watch(api)
        api.fault_hang(kinds=["watch"])
        before = api.request_counts()["watch"]
        api.drop_watches()
        self.wait_requests(api, scaled(5), "watch reconnect after the drop",
                           watch=before + 1)
        self.assertEqual(api.requests(kind="watch")[-1].get("fault"), "hang")

    @staticmethod
    def bump_resource_version(api, n):
        """Moves the fake's global resourceVersion by n without a ServiceAccount event, as
        changes to other kinds do in a real cluster (etcd's revision is global); open
        watches learn it only from bookmarks."""
        store = api._store
        with store.cond:
            store.rv += n
            store.cond.notify_all()
        return store.rv

    @staticmethod
    def watch_rvs(api, since=0):
        """The resourceVersion= of each recorded watch request."""
        return [r["params"].get("resourceVersion") for r in api.requests(kind="watch",
                                                                         since=since)]


def hide_sa(api, namespace, name, annotations):
    """Creates a ServiceAccount in the fake without a watch event (as if the event were
    still on its way): only a live GET (or a relist) can find it."""
    store = api._store
    with store.cond:
        store._put((namespace, name), str(uuid.uuid4()), _now_iso(),
                   _fragments(annotations, None, None))


def run_concurrently(fns, timeout):
    """Runs the callables at once (a barrier releases them together); returns their
    results in order (an exception is returned in place of a result)."""
    results = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i):
        try:
            barrier.wait(timeout)
            results[i] = fns[i]()
        except BaseException as e:  # reported to the caller
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


__all__ = ["AWS_ARN", "STACKIT_EMAIL", "NAMESPACE", "TOKEN", "ApiError", "Admission",
           "Config", "FakeApiServer", "HOST", "KubeServer", "KubeTestCase", "arn",
           "b64_file", "fake_pki", "hide_sa", "kubeconfig_text", "other_pki", "run_concurrently",
           "write_kubeconfig"]
