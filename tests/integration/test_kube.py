#!/usr/bin/python3
"""Integration tests of `pod-identity-webhook serve --kubeconfig`: the ServiceAccount
cache fed by the Kubernetes API (list, watch, live GET), against the fake API server of
tests/fakeapi running in this process over TLS on 127.0.0.1.

Usage: /usr/bin/python3 test_kube.py [BINARY] [unittest arguments, e.g. WatchTests or
       -k rate]

BINARY defaults to $PIW_TEST_BINARY, else TOP/build/pod-identity-webhook; TOP is
$PIW_TEST_TOP, else the repository this file is in. $PIW_TEST_WRAPPER prefixes the server
command (e.g. "valgrind --leak-check=full --error-exitcode=99"); $PIW_TEST_TIME_FACTOR
stretches every timeout (default 10 under valgrind, else 1). Run it with the ASan build
(build-asan/pod-identity-webhook) to make every leak a failure: each server gets SIGTERM
at the end of its test and must exit 0.

Every admission a test sends must be answered, 200 or (where the contract says so) 500,
and the server's own piw_http_requests_total{path="/mutate"} must agree with the count.
Every request the webhook makes must be a GET of serviceaccounts (list, watch, get): the
RBAC it needs is exactly get/list/watch on serviceaccounts.

The contract tested is docs/configuration.md (flags, /readyz, the 500 answer, metrics)
and include/kube_source.h (list + watch + bookmarks, relist on 410, reconnect with
backoff, live GET on a miss: timeout, rate limit, merged; only the annotations the
profiles read are kept).
"""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import harness
from harness import PATIENCE, Client, Config, certs, late, scaled, wait_until, write_atomic
from kubeharness import (AWS_ARN, NAMESPACE, STACKIT_EMAIL, TOKEN, KubeTestCase, arn,
                         b64_file, fake_pki, hide_sa, other_pki, run_concurrently,
                         write_kubeconfig)

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def aws(name):
    return {AWS_ARN: arn(name)}


def slow_cap():
    """Just under the slow GET of LiveLookupTests.blocked_worker."""
    return min(20.0, max(6.0, scaled(1.5))) - 1.0


def projected_audience(pod_obj, volume="aws-iam-token"):
    """The serviceAccountToken audience of the pod's projected volume."""
    for v in pod_obj["spec"].get("volumes") or []:
        if v.get("name") == volume:
            for src in v["projected"]["sources"]:
                if "serviceAccountToken" in src:
                    return src["serviceAccountToken"].get("audience")
    return None


# ======================================================================================
# kubeconfig: credentials and trust


class KubeconfigTests(KubeTestCase):
    """The kubeconfig forms the webhook reads: certificate-authority-data or a
    certificate-authority file, token or tokenFile, a client certificate as data or
    files. Only current-context counts (a decoy context uses every refused feature)."""

    def check_serves(self, api, server, token=TOKEN, client_cn=None):
        """The pod of a ServiceAccount that exists only in the fake API is mutated (aws
        and stackit); every request carried the expected credentials."""
        self.assertArn(server, "ledger", arn("ledger"))
        a = self.admit(server, "mailer", allow=(200,))
        self.assertEqual(a.env.get("STACKIT_SERVICE_ACCOUNT_EMAIL"), "mailer@sa.stackit.cloud",
                         a)
        records = api.requests()
        self.assertTrue(records)
        for r in records:
            self.assertEqual(r["token"], token, r)
            self.assertEqual(r["client_cn"], client_cn, r)
            self.assertEqual(r["status"], 200, r)
        self.assertEqual(self.gets(api), [], "both were cache hits")

    def fake_with_sas(self, **kw):
        api = self.start_fake(**kw)
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        api.create_sa(NAMESPACE, "mailer",
                      annotations={STACKIT_EMAIL: "mailer@sa.stackit.cloud"})
        return api

    def test_ca_data_and_token(self):
        """certificate-authority-data + token: ready after the list, pods mutated from
        the cache, the token on every request, piw_service_accounts 2 and
        piw_service_account_source_ready{source="kubernetes"} 1."""
        api = self.fake_with_sas()
        server = self.start_kube(api)
        self.check_serves(api, server)
        self.wait_count(server, 2, scaled(2))
        self.assertEqual(self.metric(server, "piw_service_account_source_ready",
                                     source="kubernetes"), 1)
        self.assertEqual(self.metric(server, "piw_sa_lists_total", result="success"), 1)
        parsed = server.scrape()
        for name, kind in (("piw_sa_watch_restarts_total", "counter"),
                           ("piw_sa_lookups_total", "counter"),
                           ("piw_sa_lists_total", "counter"),
                           ("piw_sa_watch_events_total", "counter"),
                           ("piw_sa_last_sync_timestamp_seconds", "gauge"),
                           ("piw_sa_cache_bytes", "gauge")):
            self.assertEqual(parsed["types"].get(name), kind, name)
        self.assertAlmostEqual(self.metric(server, "piw_sa_last_sync_timestamp_seconds"),
                               time.time(), delta=scaled(5))
        self.assertGreater(self.metric(server, "piw_sa_cache_bytes"), 0)
        self.assertEqual(self.lookups(server)["cache-hit"], 2)

    def test_ca_file_and_token_file_relative(self):
        """certificate-authority and tokenFile as paths relative to the kubeconfig's
        directory (as kubectl resolves them)."""
        api = self.fake_with_sas()
        kdir = os.path.join(self.tmp, "kube")
        os.makedirs(kdir)
        shutil.copy(fake_pki()["ca.crt"], os.path.join(kdir, "ca.crt"))
        shutil.copy(self.token_file, os.path.join(kdir, "token"))
        path = write_kubeconfig(os.path.join(kdir, "config"), api.api_url,
                                {"certificate-authority": "ca.crt"}, {"tokenFile": "token"})
        server = self.start_kube(api, kubeconfig=path)
        self.check_serves(api, server)

    def test_client_certificate_data(self):
        """client-certificate-data/client-key-data against a fake that requires a client
        certificate (and no token)."""
        api = self.fake_with_sas(token=None, client_ca=True)
        pki = fake_pki()
        path = self.kubeconfig(api, user={"client-certificate-data": b64_file(pki["client.crt"]),
                                          "client-key-data": b64_file(pki["client.key"])})
        server = self.start_kube(api, kubeconfig=path)
        self.check_serves(api, server, token=None, client_cn="pod-identity-webhook")

    def test_client_certificate_files_and_ca_file(self):
        """client-certificate/client-key and certificate-authority as absolute paths."""
        api = self.fake_with_sas(token=None, client_ca=True)
        pki = fake_pki()
        path = self.kubeconfig(api, cluster={"certificate-authority": pki["ca.crt"]},
                               user={"client-certificate": pki["client.crt"],
                                     "client-key": pki["client.key"]})
        server = self.start_kube(api, kubeconfig=path)
        self.check_serves(api, server, token=None, client_cn="pod-identity-webhook")

    def test_untrusted_api_certificate(self):
        """A CA that did not sign the API server's certificate: never ready, the list
        failures counted and logged, admissions answered 500 (the ServiceAccount cannot
        be looked up), and SIGTERM still ends it with 0."""
        api = self.fake_with_sas()
        path = self.kubeconfig(api, cluster={
            "certificate-authority-data": b64_file(other_pki()["ca.crt"])})
        server = self.start_kube(api, kubeconfig=path, wait_ready=False)
        self.wait_metric(server, "piw_sa_lists_total", lambda v: v >= 1, scaled(5),
                         "a failed list", result="failure")
        for _ in range(3):
            self.assertEqual(server.readyz(), 503)
            a = self.admit(server, "ledger", allow=(500,))
            self.assertIn("cannot look up ServiceAccount payments/ledger", a.body)
            time.sleep(0.2)
        self.assertEqual(api.request_counts()["total"], 0, "no request got through TLS")
        failed = [r for r in server.log_records() if r.get("event") ==
                  "service_accounts_list_failed"]
        self.assertTrue(failed, "no service_accounts_list_failed log line")
        self.assertIn("certificate", failed[0]["error"].lower(), failed[0])
        self.assertEqual(self.metric(server, "piw_service_account_source_ready",
                                     source="kubernetes"), 0)

    def test_client_certificate_refused(self):
        """A client certificate the API server does not trust: not ready, 500s, exit 0."""
        api = self.fake_with_sas(token=None, client_ca=True)
        pki = fake_pki()
        path = self.kubeconfig(api, user={"client-certificate": pki["rogue-client.crt"],
                                          "client-key": pki["rogue-client.key"]})
        server = self.start_kube(api, kubeconfig=path, wait_ready=False)
        self.wait_metric(server, "piw_sa_lists_total", lambda v: v >= 1, scaled(5),
                         "a failed list", result="failure")
        self.assertEqual(server.readyz(), 503)
        self.admit(server, "ledger", allow=(500,))
        self.assertEqual(api.request_counts()["total"], 0)


class KubeconfigRefusalTests(unittest.TestCase):
    """What the webhook cannot use is refused at startup: exit status 2 and one line
    saying why (besides the JSON startup_failed log record)."""

    def run_serve(self, kubeconfig=None, extra=(), env=None):
        pair = certs().default_rsa
        args = (Config.wrapper + [Config.binary, "serve",
                                  "--listen", "%s:%d" % (harness.HOST, harness.free_port()),
                                  "--metrics-listen", "off",
                                  "--tls-cert", pair.cert_path, "--tls-key", pair.key_path,
                                  "--profiles-dir", Config.profiles_dir,
                                  "--log-format", "json"]
                + (["--kubeconfig", kubeconfig] if kubeconfig else []) + list(extra))
        try:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=scaled(20), env=harness.clean_env(env))
        except subprocess.TimeoutExpired:
            self.fail("serve did not exit (it started serving?)")
        err = p.stderr.decode("utf-8", "replace")
        lines = [l for l in err.splitlines() if l.strip() and not l.startswith("==")]
        return p.returncode, err, [l for l in lines if not l.startswith("{")]

    def test_refused_kubeconfigs(self):
        """exec plugins, auth providers, basic auth, insecure-skip-tls-verify, an
        http:// server, no credentials, a half client certificate, a missing
        current-context, a missing file: each exit 2 with one line naming the cause."""
        d = tempfile.mkdtemp(prefix="piw-kube-refused-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = {"certificate-authority-data": b64_file(fake_pki()["ca.crt"])}
        url = "https://127.0.0.1:9"
        cases = [
            ("exec", url, ca, {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                        "command": "aws"}}, "exec"),
            ("exec with a token", url, ca, {"token": TOKEN, "exec": {"command": "x"}},
             "exec"),
            ("auth-provider", url, ca, {"auth-provider": {"name": "gcp"}}, "auth-provider"),
            ("basic auth", url, ca, {"username": "admin", "password": "x"},
             "basic authentication"),
            ("insecure-skip-tls-verify", url, dict(ca, **{"insecure-skip-tls-verify": True}),
             {"token": TOKEN}, "insecure-skip-tls-verify"),
            ("insecure without CA", url, {"insecure-skip-tls-verify": True}, {"token": TOKEN},
             "insecure-skip-tls-verify"),
            ("http server", "http://127.0.0.1:9", ca, {"token": TOKEN}, "https://"),
            ("no credentials", url, ca, {}, "no credentials"),
            ("certificate without key", url, ca,
             {"client-certificate": fake_pki()["client.crt"]}, "both"),
            ("bad base64", url, {"certificate-authority-data": "%%%not-base64"},
             {"token": TOKEN}, "base64"),
        ]
        for name, server_url, cluster, user, needle in cases:
            with self.subTest(name):
                path = write_kubeconfig(os.path.join(d, name.replace(" ", "-")), server_url,
                                        cluster, user)
                rc, err, lines = self.run_serve(path)
                self.assertEqual(rc, 2, err)
                self.assertEqual(len(lines), 1, err)
                self.assertIn(needle, lines[0])
        with self.subTest("no current-context"):
            path = os.path.join(d, "no-context")
            write_atomic(path, b"apiVersion: v1\nkind: Config\nclusters: []\n")
            rc, err, lines = self.run_serve(path)
            self.assertEqual(rc, 2, err)
            self.assertEqual(len(lines), 1, err)
            self.assertIn("current-context", lines[0])
        with self.subTest("missing file"):
            missing = os.path.join(d, "does-not-exist")
            rc, err, lines = self.run_serve(missing)
            self.assertEqual(rc, 2, err)
            self.assertEqual(len(lines), 1, err)
            self.assertIn(missing, lines[0])

    def test_source_choice(self):
        """--kubeconfig with --service-accounts-dir is refused; neither outside a
        cluster (no KUBERNETES_SERVICE_HOST) says to give one."""
        d = tempfile.mkdtemp(prefix="piw-kube-choice-")
        self.addCleanup(shutil.rmtree, d, True)
        path = write_kubeconfig(os.path.join(d, "config"), "https://127.0.0.1:9",
                                {"certificate-authority-data": b64_file(fake_pki()["ca.crt"])},
                                {"token": TOKEN})
        rc, err, lines = self.run_serve(path, ["--service-accounts-dir", d])
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("not both", lines[0])
        rc, err, lines = self.run_serve(None, env={"KUBERNETES_SERVICE_HOST": ""})
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(lines), 1, err)
        self.assertIn("--kubeconfig", lines[0])


# ======================================================================================
# Readiness and the first list


class ReadinessTests(KubeTestCase):
    """/readyz is 200 only once the first full list completed; a failing list is
    retried with backoff."""

    def test_ready_only_after_slow_first_list(self):
        """The first list answer is delayed 5 s (room for a busy machine to look
        meanwhile): /readyz is 503 (and the source_ready gauge 0) until it arrives, 200
        right after; an admission meanwhile is answered (a live GET finds the
        ServiceAccount)."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        delay = 5.0
        api.fault_slow(int(delay * 1000), kinds=["list"])
        started = time.monotonic()
        server = self.start_kube(api, wait_ready=False)
        self.wait_requests(api, scaled(5), "the first list", list=1)
        not_ready, gauges = 0, []
        while api.requests(kind="list")[0]["status"] is None:
            status = server.readyz()
            gauge = self.metric(server, "piw_service_account_source_ready",
                                source="kubernetes")
            if api.requests(kind="list")[0]["status"] is not None:
                break   # answered meanwhile: 200 and 1 would be right
            self.assertEqual(status, 503, "ready before the first list was answered")
            gauges.append(gauge)
            not_ready += 1
            time.sleep(0.1)
        self.assertGreaterEqual(not_ready, 1)
        self.assertEqual(set(gauges), {0}, "source_ready before the first list")
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.02),
                        "not ready after the list answer")
        self.assertGreaterEqual(time.monotonic() - started, delay)
        self.wait_metric(server, "piw_service_account_source_ready", lambda v: v == 1,
                         scaled(2), "source_ready gauge", source="kubernetes")
        self.assertArn(server, "ledger", arn("ledger"))

    def test_admission_while_not_ready(self):
        """Before the first list completes, an admission is still answered: 200 via a
        live GET for an existing ServiceAccount, 200 with a warning for a missing one."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        # the list is held far longer than a busy machine needs for what follows
        api.fault_slow(int(scaled(10) * 1000), kinds=["list"])
        server = self.start_kube(api, wait_ready=False)
        self.wait_requests(api, scaled(5), "the first list", list=1)
        self.assertEqual(server.readyz(), 503)
        self.assertArn(server, "ledger", arn("ledger"))
        self.assertTrue(self.admit(server, "ghost", allow=(200,)).not_found)
        self.assertEqual(len(self.gets(api)), 2)
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.05))

    def test_list_5xx_retried_with_backoff_then_ready(self):
        """Every list answered 503 for 3 s: the list is retried with growing, jittered
        pauses (a handful of attempts, not a spin), /readyz stays 503, failures are
        counted and logged; once the API answers, ready and serving from the cache."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        api.fault_error(503, kinds=["list"])
        server = self.start_kube(api, wait_ready=False)
        time.sleep(3.0)
        attempts = api.requests(kind="list")
        self.assertGreaterEqual(len(attempts), 2, attempts)
        self.assertLessEqual(len(attempts), 12, "no backoff: %d lists in 3 s" % len(attempts))
        self.assertTrue(all(r["status"] == 503 for r in attempts))
        gaps = [b["time"] - a["time"] for a, b in zip(attempts, attempts[1:])]
        caps = [0.2 * 2 ** (i + 1) for i in range(len(gaps))]   # full jitter: [0, cap]
        for gap, cap in zip(gaps, caps):
            # a busy machine may retry late, never early: the cap plus a wide margin
            self.assertLessEqual(gap, min(cap, 30) + late(0), (gaps, caps))
        self.assertEqual(server.readyz(), 503)
        failures = self.metric(server, "piw_sa_lists_total", result="failure")
        self.assertIn(len(api.requests(kind="list")) - failures, (0, 1))   # one in flight
        logged = [r for r in server.log_records()
                  if r.get("event") == "service_accounts_list_failed"]
        self.assertTrue(logged and "503" in logged[0].get("error", ""), logged[:1])
        api.clear_faults()
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.05),
                        "not ready within 15 s of the API recovering")
        self.assertEqual(self.metric(server, "piw_sa_lists_total", result="success"), 1)
        self.assertArn(server, "ledger", arn("ledger"))
        self.assertEqual(self.gets(api), [])

    def test_bad_list_answers_retried(self):
        """A first list answered 500, a second with invalid JSON: both count as failures,
        the third makes the webhook ready. Later a relist whose answer is cut in the
        middle fails while the cache it would replace keeps answering, and the retry
        succeeds."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        api.fault_error(500, count=1, kinds=["list"])
        api.fault_garbage("json", count=1, kinds=["list"])
        server = self.start_kube(api, wait_ready=False)
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.05))
        self.assertEqual([r["fault"] for r in api.requests(kind="list")],
                         ["error", "garbage:json", None])
        self.assertEqual(self.metric(server, "piw_sa_lists_total", result="failure"), 2)
        self.assertArn(server, "ledger", arn("ledger"))
        self.wait_watch(api)
        api.fault_garbage("truncate", count=1, kinds=["list"])
        api.gone_watches()
        self.wait_requests(api, scaled(5), "the cut relist", list=4)
        self.assertArn(server, "ledger", arn("ledger"))
        self.assertEqual(server.readyz(), 200)
        self.wait_metric(server, "piw_sa_lists_total", lambda v: v == 2, scaled(10),
                         "the relist retried", result="success")
        self.assertEqual(self.metric(server, "piw_sa_lists_total", result="failure"), 3)
        self.assertEqual(api.requests(kind="list")[3]["fault"], "garbage:truncate")
        self.assertEqual(self.gets(api), [])

    def test_api_refused_at_start(self):
        """The API port refuses connections: not ready, every admission 500 (the
        ServiceAccount cannot be looked up); once it listens again, ready."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        api.fault_refuse()
        server = self.start_kube(api, wait_ready=False)
        self.wait_metric(server, "piw_sa_lists_total", lambda v: v >= 1, scaled(5),
                         "a failed list", result="failure")
        for sa in ("ledger", "ghost"):
            a = self.admit(server, sa, allow=(500,))
            self.assertIn("cannot look up ServiceAccount payments/%s" % sa, a.body)
        self.assertEqual(server.readyz(), 503)
        self.assertGreaterEqual(self.lookups(server)["live-error"], 2)
        api.clear_faults()
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.05))
        self.assertArn(server, "ledger", arn("ledger"))


# ======================================================================================
# The list: pagination, annotation filter, relist on profile change


class StartOrderTests(KubeTestCase):

    def _start_on_taken_port(self, api, taken, which):
        """`serve --kubeconfig` with `which` (--listen or --metrics-listen) on a port
        another socket holds: it must exit 1 naming the address."""
        pair = harness.certs().default_rsa
        # the other listener on a free port (--listen) or off (--metrics-listen)
        ports = {"--listen": "127.0.0.1:%d" % harness.free_port(), "--metrics-listen": "off"}
        ports[which] = "127.0.0.1:%d" % taken
        cmd = harness.Config.wrapper + [
            harness.Config.binary, "serve", "--listen", ports["--listen"],
            "--metrics-listen", ports["--metrics-listen"], "--tls-cert", pair.cert_path,
            "--tls-key", pair.key_path, "--kubeconfig", self.kubeconfig(api)]
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=scaled(60))
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("cannot listen on 127.0.0.1:%d" % taken, err)

    def test_no_api_request_without_a_port(self):
        """Either listener's port held by another process: the webhook exits 1 and the
        API server has received nothing (no list, no watch). Before, the list started
        first and a start that lost its port had already sent a list page."""
        api = self.start_fake()
        api.bulk_create(20, namespaces=2)
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen(1)
            for which in ("--listen", "--metrics-listen"):
                with self.subTest(which=which):
                    self._start_on_taken_port(api, holder.getsockname()[1], which)
        self.assertEqual(api.requests(), [])
        # and a start that gets its ports lists at once
        server = self.start_kube(api)
        self.assertEqual(len(api.requests(kind="list")), 1)
        self.wait_count(server, 20, scaled(2))


class ListTests(KubeTestCase):

    def test_paginated_list_complete(self):
        """100 ServiceAccounts in 5 namespaces, listed with --sa-list-page-size 10 from an
        API that returns at most 7 per page: 15 pages following `continue`, and every
        ServiceAccount is then answered from the cache (100 cache hits, no live GET)."""
        api = self.start_fake(page_size=7)
        api.bulk_create(100, namespaces=5, annotated_fraction=1.0,
                        annotations={AWS_ARN: arn("{namespace}.{name}")})
        server = self.start_kube(api, extra=["--sa-list-page-size", "10"])
        # A start that lost its port to another test (the harness retries on new
        # ports) sent nothing: the listeners are bound before the list (StartOrderTests).
        lists = api.requests(kind="list")
        self.assertEqual(len(lists), 15, [r["query"] for r in lists])
        self.assertEqual(lists[0]["params"], {"limit": "10"})
        for r in lists[1:]:
            self.assertEqual(r["params"].get("limit"), "10")
            self.assertTrue(r["params"].get("continue"), r)
        self.assertEqual(len({r["params"]["continue"] for r in lists[1:]}), 14)
        for i in range(100):
            ns, name = "ns-%03d" % (i % 5), "sa-%06d" % i
            self.assertArn(server, name, arn("%s.%s" % (ns, name)), namespace=ns)
        self.assertEqual(self.gets(api), [])
        lk = self.lookups(server)
        self.assertEqual(lk["cache-hit"], 100, lk)
        self.assertEqual(lk["live-found"] + lk["live-not-found"] + lk["live-error"], 0, lk)
        self.wait_count(server, 100, scaled(2))

    def test_only_profile_annotations_kept(self):
        """1,000 ServiceAccounts each with a 4 KiB last-applied-configuration and other
        unrelated annotations: the cache keeps only what the profiles read
        (piw_sa_cache_bytes far below the 4 MB of unrelated text); annotations the
        profiles do read besides the trigger (eks.amazonaws.com/audience) are kept."""
        api = self.start_fake()
        junk = {LAST_APPLIED: "{" + "x" * 4094 + "}", "example.com/owner": "team-" + "y" * 200,
                "deployment.kubernetes.io/revision": "7"}
        api.bulk_create(1000, namespaces=10, annotated_fraction=1.0, annotations=junk,
                        labels={"app.kubernetes.io/name": "soak"})
        api.create_sa(NAMESPACE, "ledger", annotations=dict(
            junk, **{AWS_ARN: arn("ledger"), "eks.amazonaws.com/audience": "custom-aud"}))
        server = self.start_kube(api)
        self.wait_count(server, 1001, scaled(2))
        cache = self.metric(server, "piw_sa_cache_bytes")
        sys.stderr.write("[piw_sa_cache_bytes %d for 1,001] " % cache)
        self.assertGreater(cache, 0)
        self.assertLess(cache, 1001 * 200 + 64 * 1024,
                        "piw_sa_cache_bytes %d: unrelated annotations kept?" % cache)
        a = self.assertArn(server, "ledger", arn("ledger"))
        self.assertEqual(projected_audience(a.pod), "custom-aud")
        self.assertFalse(self.admit(server, "sa-000000", namespace="ns-000",
                                    allow=(200,)).patched)

    def test_profile_reload_relists(self):
        """Only the built-in stackit profile at first: an aws annotation is not kept (the
        pod is not patched). After aws.ini appears and SIGHUP, the webhook lists again
        and the same ServiceAccount patches the pod, from the cache."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        profiles = os.path.join(self.tmp, "profiles")
        os.makedirs(profiles)
        server = self.start_kube(api, profiles_dir=profiles)
        self.assertArn(server, "ledger", None)
        self.wait_watch(api)
        shutil.copy(os.path.join(Config.profiles_dir, "aws.ini"), profiles)
        server.signal(signal.SIGHUP)
        self.wait_requests(api, scaled(5), "relist after SIGHUP", list=2)
        self.wait_arn(server, "ledger", arn("ledger"), scaled(3), "after the relist")
        self.assertEqual(self.gets(api), [])


# ======================================================================================
# The watch


class WatchTests(KubeTestCase):
    """ADDED/MODIFIED/DELETED reach the cache within a second; bookmarks advance the
    resourceVersion; 410 relists; a dropped, broken or silent watch reconnects from
    where it was."""

    def test_added_modified_deleted_followed(self):
        """ADDED: in the cache within ~1 s (then a cache hit, no GET). MODIFIED: the new
        annotation in the patch within 1 s; a label-only change keeps it. DELETED: gone
        within 1 s, after which the pod is admitted with the not-found warning."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        api.create_sa(NAMESPACE, "newcomer", annotations=aws("newcomer"))
        self.wait_count(server, 2, scaled(1.5), "ADDED")
        self.assertArn(server, "newcomer", arn("newcomer"))
        self.assertEqual(self.gets(api), [], "ADDED came by the watch")
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        took = self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "MODIFIED")
        sys.stderr.write("[MODIFIED reflected in %.0f ms] " % (took * 1000))
        api.update_sa(NAMESPACE, "ledger", labels={"team": "payments"})
        api.update_sa(NAMESPACE, "ledger", annotations={})
        self.wait_arn(server, "ledger", None, scaled(1.0), "annotation removed")
        self.assertEqual(self.gets(api), [])
        api.delete_sa(NAMESPACE, "newcomer")
        started = time.monotonic()
        self.assertTrue(wait_until(lambda: self.admit(server, "newcomer", allow=(200,))
                                   .not_found, scaled(PATIENCE), 0.02),
                        "DELETED not followed")
        sys.stderr.write("[DELETED in %.0f ms] " % ((time.monotonic() - started) * 1000))
        self.assertEqual(len(self.gets(api, "newcomer")), 1, "one live GET (404) after it")
        self.wait_count(server, 1, scaled(1.5), "after DELETED")
        self.assertEqual(self.restarts(server), {"gone": 0, "dropped": 0, "http-error": 0,
                                                 "garbage": 0})

    def test_bookmarks_advance_resource_version(self):
        """The resourceVersion moves on without ServiceAccount events (other kinds
        change); bookmarks carry it. After the event log is compacted up to it, a dropped
        watch reconnects from the bookmark's resourceVersion: no 410, no relist."""
        api = self.start_fake(bookmark_interval=0.2)
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        first_rv = int(self.watch_rvs(api)[0])
        new_rv = self.bump_resource_version(api, 500)
        events = self.metric(server, "piw_sa_watch_events_total")
        self.wait_metric(server, "piw_sa_watch_events_total", lambda v: v >= events + 3,
                         scaled(3), "bookmarks")
        api.compact()
        seq = self.last_seq(api)
        api.drop_watches()
        self.wait_requests(api, scaled(5), "reconnect", watch=2)
        self.wait_watch(api)
        rvs = self.watch_rvs(api, since=seq)
        self.assertEqual(rvs, [str(new_rv)], "watch after the drop (first was %d)" % first_rv)
        time.sleep(0.5)
        self.assertEqual(api.request_counts()["list"], 1, "relisted: bookmark ignored?")
        rs = self.restarts(server)
        self.assertEqual((rs["dropped"], rs["gone"]), (1, 0), rs)
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "after reconnect")

    def test_reconnect_after_drop(self):
        """A watch cut mid-chunk: the webhook reconnects (backoff) from the last
        resourceVersion it saw, without relisting, and the changes made while it was
        away and after arrive."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        api.create_sa(NAMESPACE, "early", annotations=aws("early"))
        self.wait_count(server, 2, scaled(1.5))
        seen_rv = api.resource_version
        seq = self.last_seq(api)
        self.assertEqual(api.drop_watches(), 1)
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))   # while away
        self.wait_requests(api, scaled(5), "reconnect", watch=2)
        self.assertEqual(self.watch_rvs(api, since=seq), [str(seen_rv)])
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "change while away")
        api.create_sa(NAMESPACE, "later", annotations=aws("later"))       # after
        self.wait_count(server, 3, scaled(1.5), "ADDED after the reconnect")
        self.assertArn(server, "later", arn("later"))
        self.assertEqual(self.gets(api), [])
        self.assertEqual(api.request_counts()["list"], 1)
        self.assertEqual(self.restarts(server)["dropped"], 1)
        logged = [r for r in server.log_records()
                  if r.get("event") == "service_accounts_watch_restarted"]
        self.assertTrue(logged and logged[0].get("reason") == "dropped", logged)

    def test_relist_after_gone_event(self):
        """An open watch ended by an ERROR 410 event: the webhook lists again at once and
        watches from the new list; a bulk load that compacts the log (410 again) is then
        fully in the cache without live GETs."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        self.assertEqual(api.gone_watches(), 1)
        self.wait_requests(api, scaled(3), "relist after ERROR 410", list=2, watch=2)
        self.assertEqual(self.restarts(server)["gone"], 1)
        self.wait_watch(api)
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "after the relist")
        api.bulk_create(300, namespaces=3, annotated_fraction=1.0,
                        annotations={AWS_ARN: arn("{name}")})
        self.wait_requests(api, scaled(3), "relist after bulk compaction", list=3)
        self.wait_count(server, 301, scaled(2), "bulk-created")
        for i in (0, 150, 299):
            self.assertArn(server, "sa-%06d" % i, arn("sa-%06d" % i), namespace="ns-%03d" % (i % 3))
        self.assertEqual(self.gets(api), [])
        self.assertEqual(self.restarts(server)["gone"], 2)
        self.assertEqual(self.metric(server, "piw_sa_lists_total", result="success"), 3)

    def relist_after_compaction(self, mode):
        """While the webhook's watch is away, ServiceAccounts change and the log is
        compacted: its reconnect from the old resourceVersion gets 410 (mode "event":
        an ERROR event; "http": HTTP 410), it relists, and the cache has every change."""
        api = self.start_fake(watch_gone=mode)
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        api.create_sa(NAMESPACE, "doomed", annotations=aws("doomed"))
        server = self.start_kube(api)
        self.pause_watch(api)
        seq = self.last_seq(api)
        for name in ("a", "b", "c"):
            api.create_sa(NAMESPACE, name, annotations=aws(name))
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        api.delete_sa(NAMESPACE, "doomed")
        api.compact()
        api.clear_faults()
        self.wait_requests(api, scaled(5), "relist after 410", list=2)
        self.wait_watch(api)
        watches = api.requests(kind="watch", since=seq)
        self.assertEqual(watches[0]["status"], 410 if mode == "http" else 200, watches)
        self.assertGreaterEqual(self.restarts(server)["gone"], 1)
        self.wait_count(server, 4, scaled(2))
        for name in ("a", "b", "c"):
            self.assertArn(server, name, arn(name))
        self.assertArn(server, "ledger", arn("ledger-v2"))
        self.assertEqual(self.gets(api), [])
        self.assertTrue(self.admit(server, "doomed", allow=(200,)).not_found)

    def test_relist_after_compaction_error_event(self):
        """Reconnect from a compacted resourceVersion, ERROR 410 event: relist."""
        self.relist_after_compaction("event")

    def test_relist_after_compaction_http_410(self):
        """Reconnect from a compacted resourceVersion, plain HTTP 410: relist."""
        self.relist_after_compaction("http")

    def restart_after(self, reason, inject, times):
        """Injects a fault for the next watch and cuts the current one: the reconnect
        fails `times` times with restart `reason`, then the webhook watches again (no
        relist, no live GET) and follows a change within a second."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        inject(api)
        api.drop_watches()    # itself a "dropped" restart
        self.wait_metric(server, "piw_sa_watch_restarts_total",
                         lambda v: v >= times + (reason == "dropped"), scaled(10), reason,
                         reason=reason)
        self.wait_watch(api, scaled(15))
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "after " + reason)
        self.assertEqual(api.request_counts()["list"], 1)
        self.assertEqual(self.gets(api), [])
        logged = [r.get("reason") for r in server.log_records()
                  if r.get("event") == "service_accounts_watch_restarted"]
        self.assertIn(reason, logged)
        return server

    def test_garbage_line_on_watch(self):
        """A watch line that is not JSON: restart "garbage", then watching again."""
        self.restart_after("garbage",
                           lambda api: api.fault_garbage("json", count=1, kinds=["watch"]), 1)

    def test_watch_cut_inside_a_chunk(self):
        """A watch cut inside its first chunk: restart "dropped", then watching again."""
        self.restart_after("dropped",
                           lambda api: api.fault_garbage("truncate", count=1, kinds=["watch"]),
                           1)

    def test_watch_http_errors(self):
        """Two watches answered 500: two restarts "http-error", then watching again."""
        self.restart_after("http-error",
                           lambda api: api.fault_error(500, count=2, kinds=["watch"]), 2)

    def test_silent_watch_reconnected(self):
        """--sa-watch-idle-timeout 3s: with bookmarks every 0.3 s the watch stays (2.7 s
        of room for a busy machine); once the API stops sending anything, the webhook
        gives up on the stream by harness.late() of the idle timeout plus the last
        bookmark and the reconnect backoff, and reconnects (restart "dropped"), and still
        follows changes."""
        api = self.start_fake(bookmark_interval=0.3)
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api, extra=["--sa-watch-idle-timeout", "3s"])
        self.wait_watch(api)
        time.sleep(4.0)
        self.assertEqual(api.request_counts()["watch"], 1, "a live watch was abandoned")
        api.configure(bookmark_interval=600)
        silent_from = time.monotonic()
        self.wait_requests(api, late(3.0 + 0.3 + 1.0), "reconnect of the silent watch",
                           watch=2)
        took = time.monotonic() - silent_from
        sys.stderr.write("[silent watch reconnected after %.1f s] " % took)
        self.assertGreaterEqual(self.restarts(server)["dropped"], 1)
        api.configure(bookmark_interval=0.3)
        self.wait_watch(api, scaled(10))
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "after reconnect")
        # by the idle timeout, not by anything slower (the relist is minutes away):
        # harness.late() of 3 s plus the last bookmark and the reconnect backoff
        self.assertLess(took, late(3.0 + 0.3 + 1.0), "a watch silent for 3 s "
                        "(--sa-watch-idle-timeout 3s) was reconnected only after %.1f s"
                        % took)


# ======================================================================================
# Live lookups on a cache miss


class LiveLookupTests(KubeTestCase):
    """A miss becomes a live GET (timeout, rate limit, one GET for concurrent misses of
    one name); the API being slow or down is a 500 for misses only."""

    def test_created_while_watch_paused(self):
        """The ServiceAccount is created and the pod posted at once, while the watch is
        held back: the live GET finds it and the pod is mutated; the answer is cached
        (the next admission makes no GET); when the watch resumes it keeps following."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.pause_watch(api)
        api.create_sa(NAMESPACE, "fresh", annotations=aws("fresh"))
        self.assertArn(server, "fresh", arn("fresh"))
        self.assertEqual(len(self.gets(api, "fresh")), 1)
        self.assertEqual(self.lookups(server)["live-found"], 1)
        self.assertArn(server, "fresh", arn("fresh"))
        self.assertEqual(len(self.gets(api, "fresh")), 1, "the live answer was not cached")
        api.clear_faults()
        self.wait_watch(api, scaled(10))
        api.update_sa(NAMESPACE, "fresh", annotations=aws("fresh-v2"))
        self.wait_arn(server, "fresh", arn("fresh-v2"), scaled(1.0), "after the pause")
        self.assertEqual(len(self.gets(api, "fresh")), 1)

    def test_created_immediately_before_admission(self):
        """30 times: create a ServiceAccount through the API and post its pod at once
        (watch running). Whichever path wins (watch or live GET), every pod is mutated."""
        api = self.start_fake()
        server = self.start_kube(api, extra=["--sa-lookup-rate", "1000"])
        self.wait_watch(api)
        for i in range(30):
            name = "quick-%02d" % i
            api.create_sa(NAMESPACE, name, annotations=aws(name))
            self.assertArn(server, name, arn(name))
        lk = self.lookups(server)
        self.assertEqual(lk["cache-hit"] + lk["live-found"], 30, lk)
        self.assertEqual(lk["live-found"], len(self.gets(api)), lk)
        sys.stderr.write("[%d of 30 by live GET] " % lk["live-found"])

    def test_concurrent_misses_merged(self):
        """12 admissions at once for one ServiceAccount missing from the cache (the GET
        takes 1 s): one live GET, 12 mutated pods. The same for one that does not exist:
        12 answers with the not-found warning and fewer GETs than admissions (one, when
        no two connections share a worker thread: not-found is not cached, and requests
        queued behind a blocked worker make their own GET later)."""
        api = self.start_fake()
        slow = scaled(1.0)
        server = self.start_kube(api, extra=["--threads", "16", "--sa-lookup-timeout",
                                             "%dms" % int((slow + 3) * 1000),
                                             "--request-timeout", "120s"])
        self.pause_watch(api)
        api.create_sa(NAMESPACE, "late", annotations=aws("late"))
        api.fault_slow(int(slow * 1000), kinds=["get"])
        for name, check in (("late", lambda a: a.arn == arn("late")),
                            ("ghost", lambda a: a.not_found and not a.patched)):
            with self.subTest(name):
                clients = [Client(server.port, timeout=scaled(15)) for _ in range(12)]
                for c in clients:
                    c.conn.connect()
                    c.connections += 1
                try:
                    results = run_concurrently(
                        [lambda c=c: self.admit(server, name, allow=(200,), client=c)
                         for c in clients], scaled(20))
                finally:
                    for c in clients:
                        c.close()
                for r in results:
                    if isinstance(r, BaseException):
                        raise r
                    self.assertTrue(check(r), r)
                gets = len(self.gets(api, name))
                sys.stderr.write("[%s: %d GET] " % (name, gets))
                if name == "late":   # found: cached, so any later lookup is a hit
                    self.assertEqual(gets, 1, [g["path"] for g in self.gets(api)])
                else:   # not found is not cached; connections that share a worker
                    # thread are served one after the other (see
                    # test_cache_hit_not_delayed_by_slow_miss), one GET per wave
                    self.assertLess(gets, 12, "no lookup was merged")

    def blocked_worker(self, request_timeout):
        """--threads 1 and GETs answered after a few seconds: one admission waits for its
        live GET while another connection, opened before, posts a pod whose
        ServiceAccount is cached. Returns (the cached one's Admission or the exception
        it got, the miss's Admission, how long the GET took)."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        slow = min(20.0, max(6.0, scaled(1.5)))   # far longer than a busy machine's delay
        server = self.start_kube(api, extra=[
            "--threads", "1", "--sa-lookup-timeout", "%dms" % int((slow + 5) * 1000),
            "--request-timeout", "%dms" % int(request_timeout * 1000)])
        api.fault_slow(int(slow * 1000), kinds=["get"])
        client = Client(server.port, timeout=slow + scaled(10))
        client.conn.connect()
        client.connections += 1
        results = {}

        def slow_miss():
            results["miss"] = self.admit(server, "ghost", allow=(200,))
        t = threading.Thread(target=slow_miss, daemon=True)
        t.start()
        try:
            self.wait_requests(api, scaled(5), "the live GET", get=1)
            try:
                hit = self.admit(server, "ledger", allow=(200,), client=client)
            except (OSError, ValueError, http.client.HTTPException) as e:
                hit = e
            self.miss_done_before_hit = "miss" in results
        finally:
            client.close()
            t.join(slow + scaled(10))
        self.assertTrue(results["miss"].not_found, results)
        return hit, results["miss"], slow

    def test_cache_hit_not_delayed_by_slow_miss(self):
        """While one admission waits for a slow live GET (--threads 1), a pod whose
        ServiceAccount is cached is answered at once on another connection: a slow API
        must not stall the admissions the cache can answer."""
        hit, miss, slow = self.blocked_worker(request_timeout=60)
        self.assertNotIsInstance(hit, BaseException)
        self.assertEqual(hit.arn, arn("ledger"), hit)
        # order, not speed: answered while the slow GET (6 s or more) was still pending
        self.assertFalse(self.miss_done_before_hit, "a cache hit (%.2f s) waited for a "
                         "live GET of %.1f s on another connection" % (hit.seconds, slow))

    def test_queued_admission_answered_while_worker_blocked(self):
        """The same with --request-timeout shorter than the slow GET: the cached pod's
        admission, sent well within the timeout, must still be answered (not cut as an
        idle connection because its worker thread was busy elsewhere)."""
        hit, miss, slow = self.blocked_worker(request_timeout=slow_cap())
        self.assertNotIsInstance(hit, BaseException,
                                 "the cached pod's admission got no answer: %r" % (hit,))
        self.assertEqual(hit.arn, arn("ledger"), hit)

    def test_rate_limit(self):
        """--sa-lookup-rate 1 --sa-lookup-burst 2 and a lookup timeout shorter than the
        1 s the third token takes: of 4 distinct misses at once, 2 get a live GET (200)
        and 2 are answered 500 'rate limited' at once, without reaching the API (their
        turn is further away than the timeout); cache hits are not limited; a second
        later a miss gets its GET again."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        timeout = min(scaled(0.6), 0.9)   # the third token is 1 s away
        server = self.start_kube(api, extra=[
            "--sa-lookup-rate", "1", "--sa-lookup-burst", "2", "--threads", "8",
            "--sa-lookup-timeout", "%dms" % (timeout * 1000)])
        clients = [Client(server.port, timeout=scaled(15)) for _ in range(4)]
        for c in clients:
            c.conn.connect()
            c.connections += 1
        started = time.monotonic()
        try:
            results = run_concurrently(
                [lambda i=i, c=c: self.admit(server, "missing-%d" % i, client=c)
                 for i, c in enumerate(clients)], scaled(20))
        finally:
            for c in clients:
                c.close()
        elapsed = time.monotonic() - started
        for r in results:
            if isinstance(r, BaseException):
                raise r
        ok = [r for r in results if r.status == 200]
        limited = [r for r in results if r.status == 500]
        for r in ok:
            self.assertTrue(r.not_found, r)
        for r in limited:
            self.assertIn("rate limited", r.body)
            self.assertNotIn("timed out", r.body)
        self.assertEqual(len(ok), len(self.gets(api)))
        self.assertEqual(self.lookups(server)["rate-limited"], len(limited))
        self.assertEqual(self.metric(server, "piw_sa_lookup_rate_waits_total"), 0)
        if elapsed < 0.9:
            self.assertEqual((len(ok), len(limited)), (2, 2), results)
        else:
            self.assertLessEqual(len(ok), 2 + int(elapsed) + 1, results)
        for _ in range(10):
            self.assertArn(server, "ledger", arn("ledger"))
        time.sleep(1.1)
        self.assertTrue(self.admit(server, "missing-later", allow=(200,)).not_found)

    def test_miss_waits_for_its_turn(self):
        """--sa-lookup-rate 1 --sa-lookup-burst 1, a lookup timeout of several seconds:
        3 distinct misses at once all get their live GET and a 200 (before the fix, 2
        were refused at once); the ones that found the bucket empty waited for their
        turn (piw_sa_lookup_rate_waits_total, _wait_seconds_total), and the API never
        saw them faster than the rate: GETs at least about 1 s apart."""
        api = self.start_fake()
        timeout = scaled(6.0)
        server = self.start_kube(api, extra=[
            "--sa-lookup-rate", "1", "--sa-lookup-burst", "1", "--threads", "8",
            "--sa-lookup-timeout", "%dms" % (timeout * 1000)])
        clients = [Client(server.port, timeout=timeout * 2 + scaled(10))
                   for _ in range(3)]
        for c in clients:
            c.conn.connect()
            c.connections += 1
        try:
            results = run_concurrently(
                [lambda i=i, c=c: self.admit(server, "turn-%d" % i, client=c)
                 for i, c in enumerate(clients)], timeout * 2 + scaled(20))
        finally:
            for c in clients:
                c.close()
        for r in results:
            if isinstance(r, BaseException):
                raise r
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.not_found, r)
        gets = sorted(g["time"] for g in self.gets(api))
        self.assertEqual(len(gets), 3)
        for earlier, later in zip(gets, gets[1:]):
            self.assertGreater(later - earlier, 0.8, "GETs faster than the rate: %r"
                               % gets)
        self.assertEqual(self.lookups(server)["rate-limited"], 0)
        waits = self.metric(server, "piw_sa_lookup_rate_waits_total")
        self.assertGreaterEqual(waits, 1)
        self.assertLessEqual(waits, 2)
        self.assertGreater(self.metric(server, "piw_sa_lookup_rate_wait_seconds_total"),
                           0.5)

    def test_burst_of_new_service_accounts(self):
        """200 admissions at once, each for a different ServiceAccount the cache has not
        seen yet (in the API, its watch event not delivered), the API answering every
        GET in 50 ms, --sa-lookup-rate 20 --sa-lookup-burst 20: every admission is
        answered 200 with its own ServiceAccount's role, none refused; one GET each.
        Before the fix, every miss past the burst that found no token was refused
        with a 500 at once."""
        api = self.start_fake()
        timeout = 25.0   # a turn may be 180 / 20 = 9 s away
        server = self.start_kube(api, extra=[
            "--sa-lookup-rate", "20", "--sa-lookup-burst", "20",
            "--sa-lookup-timeout", "%dms" % (timeout * 1000), "--request-timeout", "120s"])
        self.wait_watch(api)
        names = ["burst-%03d" % i for i in range(200)]
        for name in names:
            hide_sa(api, NAMESPACE, name, aws(name))
        api.fault_slow(50, kinds=["get"])
        answer_within = timeout * 2 + scaled(30)
        results = run_concurrently(
            [lambda name=name: self.admit(server, name, timeout=answer_within)
             for name in names], answer_within + scaled(10))
        failed = [(name, r) for name, r in zip(names, results)
                  if isinstance(r, BaseException) or r.status != 200 or
                  r.arn != arn(name)]
        lk = self.lookups(server)
        sys.stderr.write("[%d waited %.1f s in all] " % (
            self.metric(server, "piw_sa_lookup_rate_waits_total"),
            self.metric(server, "piw_sa_lookup_rate_wait_seconds_total")))
        self.assertEqual(failed[:5], [], "%d of 200 admissions not answered 200 with "
                         "their role (lookups %r)" % (len(failed), lk))
        self.assertEqual(lk["rate-limited"], 0, lk)
        self.assertEqual(lk["live-found"], 200, lk)
        self.assertEqual(len(self.gets(api)), 200)

    def test_slow_api_beyond_lookup_timeout(self):
        """GETs answered after 2 s with --sa-lookup-timeout 300ms: a miss is a 500 within
        about the timeout, a cached ServiceAccount is still 200 at once; with the API
        fast again, the miss is a 200 with the not-found warning."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        timeout = scaled(0.3)
        server = self.start_kube(api, extra=["--sa-lookup-timeout", "%dms" % (timeout * 1000),
                                             "--threads", "8"])
        self.assertTrue(self.admit(server, "warm-up", allow=(200,)).not_found)  # TLS session
        # the API's answer comes far later than a busy machine's slowness: a 500 before
        # it is the lookup timeout's
        slow_get = max(10.0, timeout * 30)
        api.fault_slow(int(slow_get * 1000), kinds=["get"])
        a = self.admit(server, "ghost", allow=(500,))
        self.assertIn("cannot look up ServiceAccount payments/ghost", a.body)
        self.assertGreaterEqual(a.seconds, timeout * 0.8, a)
        self.assertLess(a.seconds, slow_get - 1, a)
        b = self.assertArn(server, "ledger", arn("ledger"))
        self.assertLess(b.seconds, slow_get - 1, b)
        self.assertEqual(self.lookups(server)["live-error"], 1)
        api.clear_faults()
        self.assertTrue(self.admit(server, "ghost", allow=(200,)).not_found)

    def test_api_refused(self):
        """The API refuses connections (and its open watch is cut): misses are 500,
        cached ServiceAccounts 200, /readyz stays 200; when it listens again the watch
        comes back and delivers what changed meanwhile (the cache recovers)."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api)
        self.wait_watch(api)
        api.fault_refuse()
        api.create_sa(NAMESPACE, "during", annotations=aws("during"))
        api.update_sa(NAMESPACE, "ledger", annotations=aws("ledger-v2"))
        for _ in range(3):
            a = self.admit(server, "during", allow=(500,))
            self.assertIn("cannot look up ServiceAccount payments/during", a.body)
            self.assertArn(server, "ledger", arn("ledger"))
            self.assertEqual(server.readyz(), 200)
            time.sleep(0.3)
        self.assertGreaterEqual(self.restarts(server)["dropped"], 1)
        errors = [r for r in server.log_records()
                  if r.get("event") == "service_account_lookup_failed"]
        self.assertEqual(len(errors), 3, errors)
        api.clear_faults()
        self.wait_watch(api, scaled(15), "the watch after the API came back")
        self.wait_count(server, 2, scaled(2), "ADDED delivered after the outage")
        self.wait_arn(server, "ledger", arn("ledger-v2"), scaled(1.0), "after the outage")
        self.assertArn(server, "during", arn("during"))
        self.assertEqual(self.gets(api), [], "recovered by the watch, not by live GETs")


# ======================================================================================
# Credentials over time


class TokenTests(KubeTestCase):

    def test_token_file_rotation(self):
        """The API server switches to a new token: until the webhook's tokenFile changes,
        a live GET is refused (500 naming HTTP 401); once the file is rewritten (renamed
        over, then rewritten in place), the next requests carry the new token."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        path = self.kubeconfig(api, user={"tokenFile": self.token_file})
        server = self.start_kube(api, kubeconfig=path)
        self.wait_watch(api)
        write_atomic(self.fake_token_file, b"rotated-token-2\n")
        a = self.admit(server, "ghost-1", allow=(500,))
        self.assertIn("401", a.body)
        write_atomic(self.token_file, b"rotated-token-2\n")     # kubelet: rename over
        self.assertTrue(self.admit(server, "ghost-2", allow=(200,)).not_found)
        self.assertEqual(self.gets(api, "ghost-2")[0]["token"], "rotated-token-2")
        seq = self.last_seq(api)
        api.drop_watches()
        self.wait_requests(api, scaled(5), "reconnect", watch=2)
        self.wait_watch(api)
        w = api.requests(kind="watch", since=seq)[0]
        self.assertEqual((w["token"], w["status"]), ("rotated-token-2", 200))
        write_atomic(self.fake_token_file, b"rotated-token-three\n")
        with open(self.token_file, "w") as f:                      # in place, longer
            f.write("rotated-token-three\n")
        self.assertTrue(self.admit(server, "ghost-3", allow=(200,)).not_found)
        self.assertEqual(self.gets(api, "ghost-3")[0]["token"], "rotated-token-three")
        self.assertArn(server, "ledger", arn("ledger"))

    def test_unauthorized_is_a_clear_error(self):
        """A wrong token: not ready, the list failure logged with HTTP 401 and the RBAC
        hint, admissions 500 naming 401; fixing the token file makes it ready without a
        restart."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        write_atomic(self.token_file, b"wrong-token\n")
        path = self.kubeconfig(api, user={"tokenFile": self.token_file})
        server = self.start_kube(api, kubeconfig=path, wait_ready=False)
        record = server.wait_for_log(lambda r: r.get("event") ==
                                     "service_accounts_list_failed", scaled(5))
        self.assertTrue(record, "no service_accounts_list_failed log line")
        self.assertIn("401", record["error"])
        self.assertIn("get, list and watch", record["error"])
        self.assertEqual(server.readyz(), 503)
        a = self.admit(server, "ledger", allow=(500,))
        self.assertIn("401", a.body)
        write_atomic(self.token_file, (TOKEN + "\n").encode())
        self.assertTrue(wait_until(lambda: server.readyz() == 200, scaled(PATIENCE), 0.05))
        self.assertArn(server, "ledger", arn("ledger"))


# ======================================================================================
# Many events, then a clean exit (leak check under ASan / valgrind)


class SoakTests(KubeTestCase):

    def test_thousands_of_watch_events(self):
        """5,000 watch events (2,000 creates, 2,000 updates, 1,000 deletes) and a relist
        in the middle, with admissions running throughout: the cache ends exactly right,
        every admission answered, and SIGTERM ends the process with 0 (no leak under
        ASan/valgrind)."""
        api = self.start_fake(bookmark_interval=0.2)
        api.create_sa(NAMESPACE, "ledger", annotations=aws("ledger"))
        server = self.start_kube(api, extra=["--sa-lookup-rate", "1000"])
        self.wait_watch(api)
        stop, errors = threading.Event(), []

        def admissions():
            client = Client(server.port, timeout=scaled(15))
            try:
                while not stop.is_set():
                    self.assertEqual(self.admit(server, "ledger", allow=(200,),
                                                client=client).arn, arn("ledger"))
            except BaseException as e:
                errors.append(e)
            finally:
                client.close()
        t = threading.Thread(target=admissions, daemon=True)
        t.start()
        try:
            n = 2000
            for i in range(n):
                api.create_sa("soak", "s-%04d" % i, annotations=dict(
                    aws("s-%04d" % i), **{LAST_APPLIED: "z" * 300}))
            self.wait_metric(server, "piw_sa_watch_events_total", lambda v: v >= n,
                             scaled(10), "2,000 ADDED applied")
            for i in range(n // 2):
                api.update_sa("soak", "s-%04d" % i, annotations=aws("s-%04d-v2" % i))
            self.wait_metric(server, "piw_sa_watch_events_total",
                             lambda v: v >= n + n // 2, scaled(10), "1,000 MODIFIED applied")
            api.gone_watches()
            self.wait_requests(api, scaled(5), "relist", list=2, watch=2)
            self.wait_watch(api)
            for i in range(n // 2, n):
                api.update_sa("soak", "s-%04d" % i, annotations=aws("s-%04d-v2" % i))
            for i in range(0, n, 2):
                api.delete_sa("soak", "s-%04d" % i)
            self.wait_metric(server, "piw_sa_watch_events_total",
                             lambda v: v >= 2 * n + n // 2, scaled(10),
                             "5,000 events applied")
            self.wait_count(server, 1 + n // 2, scaled(10), "after 5,000 events")
        finally:
            stop.set()
            t.join(scaled(20))
        self.assertEqual(errors, [])
        events = self.metric(server, "piw_sa_watch_events_total")
        self.assertEqual(self.restarts(server)["gone"], 1)
        sys.stderr.write("[%d watch events applied] " % events)
        for i in (1, 3, 999, 1001, 1999):
            self.assertArn(server, "s-%04d" % i, arn("s-%04d-v2" % i), namespace="soak")
        for i in (0, 2, 1000, 1998):
            self.assertTrue(self.admit(server, "s-%04d" % i, namespace="soak",
                                       allow=(200,)).not_found)
        sys.stderr.write("[%d admissions during the events] " % server.admissions[200])
        self.assertGreater(server.admissions[200], 20)
        self._check_admissions(server)
        self.assertEqual(server.stop(scaled(30)), 0, "exit status after SIGTERM")


if __name__ == "__main__":
    harness.main(__name__, sys.argv)
