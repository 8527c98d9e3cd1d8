"""`pod-identity-webhook audit` against the fake API server (tests/fakeapi).

The pods the fake serves are made the way a cluster makes them: a pod admitted while
the webhook ran is the output of `mutate --output pod` for the ServiceAccount as it was
then; a pod created before is the bare pod. Each test then changes the ServiceAccounts
the way the status under test needs and reads audit's JSON (or table) and exit status.

Run: test_audit.py [BINARY] [unittest arguments] (as the other integration files). With
PIW_TEST_WRAPPER (valgrind, exit 99 on a memory error or leak) every audit runs under it.
"""
import json
import os
import subprocess
import sys

import harness
from harness import Config, write_json
from kubeharness import AWS_ARN, TOKEN, KubeTestCase, arn

NS = "payments"
REGION = "eu-central-1"
AUDIT_TIMEOUT = 600   # only stops a hung audit (valgrind: PIW_TEST_WRAPPER)


def bare_pod(name, sa, namespace=NS, labels=None):
    """A pod as a user writes it (never seen by the webhook)."""
    meta = {"namespace": namespace, "name": name, "labels": labels or {"app": name}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"serviceAccountName": sa,
                     "containers": [{"name": "app", "image": "registry.example/app:1",
                                     "env": [{"name": "MODE", "value": "live"}]}]}}


class AuditTestCase(KubeTestCase):
    """A fake API server with a token, a kubeconfig for it, and helpers to run audit."""

    def setUp(self):
        super().setUp()
        self.api = self.start_fake()
        self.kc = self.kubeconfig(self.api)

    def _check_rbac(self, api):
        """audit only lists: every request is a GET of kind list."""
        for r in api.requests():
            self.assertEqual((r["method"], r["kind"]), ("GET", "list"), r)

    def admitted(self, pod, sa, extra=()):
        """The pod as the webhook would have admitted it for ServiceAccount sa now."""
        pod_file = os.path.join(self.tmp, "pod.json")
        sa_file = os.path.join(self.tmp, "sa.json")
        write_json(pod_file, pod)
        write_json(sa_file, self.api.get_sa(pod["metadata"]["namespace"], sa))
        done = subprocess.run(
            [Config.binary, "mutate", "--pod", pod_file, "--service-account", sa_file,
             "--output", "pod", "--profiles-dir", Config.profiles_dir,
             "--setting", "region=" + REGION] + list(extra),
            capture_output=True, text=True, timeout=AUDIT_TIMEOUT)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def audit(self, *args, kubeconfig=None, expect=None):
        """Runs audit; returns (exit status, stdout, stderr)."""
        done = subprocess.run(
            Config.wrapper + [Config.binary, "audit", "--kubeconfig", kubeconfig or self.kc,
             "--profiles-dir", Config.profiles_dir, "--setting", "region=" + REGION]
            + list(args), capture_output=True, text=True, timeout=AUDIT_TIMEOUT)
        if expect is not None:
            self.assertEqual(done.returncode, expect, done.stderr + done.stdout[:2000])
        return done.returncode, done.stdout, done.stderr

    def audit_json(self, *args, expect=None):
        status, out, err = self.audit("-o", "json", *args, expect=expect)
        report = json.loads(out)
        return status, report, err

    @staticmethod
    def by_name(report):
        return {p["name"]: p for p in report["pods"]}


class AuditTests(AuditTestCase):
    """Each status, the ServiceAccounts with errors, both outputs and the exit status."""

    def populate(self):
        api = self.api
        api.create_sa(NS, "ledger", {AWS_ARN: arn("ledger")})
        api.create_sa(NS, "reports", {AWS_ARN: arn("reports-v1")})
        api.create_sa(NS, "broken", {AWS_ARN: "not-an-arn"})
        api.create_sa(NS, "plain")
        api.create_sa(NS, "batch", {AWS_ARN: arn("batch")})
        api.create_sa(NS, "retired", {AWS_ARN: arn("retired")})
        pods = [bare_pod("ledger-old", "ledger"),
                self.admitted(bare_pod("ledger-new", "ledger"), "ledger"),
                self.admitted(bare_pod("reports-1", "reports"), "reports"),
                bare_pod("broken-1", "broken"),
                bare_pod("plain-1", "plain"),
                bare_pod("batch-1", "batch",
                         labels={"eks.amazonaws.com/skip-pod-identity-webhook": "true"}),
                self.admitted(bare_pod("retired-1", "retired"), "retired"),
                bare_pod("orphan-1", "nobody")]
        api.put_pods(pods)
        # After creation: a role changed, a trigger removed.
        api.update_sa(NS, "reports", annotations={AWS_ARN: arn("reports-v2")})
        api.update_sa(NS, "retired", annotations={})

    def test_every_status_and_its_reason(self):
        self.populate()
        status, report, _ = self.audit_json(expect=1)
        pods = self.by_name(report)
        want = {"ledger-old": "missing", "ledger-new": "ok", "reports-1": "stale",
                "broken-1": "denied", "plain-1": "none", "batch-1": "skipped",
                "retired-1": "stale", "orphan-1": "none"}
        self.assertEqual({k: v["status"] for k, v in pods.items()}, want)
        self.assertEqual(pods["ledger-new"]["profiles"], ["aws"])
        self.assertEqual(pods["ledger-old"]["profiles"], ["aws"])
        self.assertEqual(pods["plain-1"]["profiles"], [])
        self.assertEqual(pods["ledger-new"]["serviceAccount"], "ledger")
        self.assertEqual(pods["ledger-new"]["namespace"], NS)
        self.assertIn("AWS_ROLE_ARN", pods["reports-1"]["reason"])
        self.assertIn(arn("reports-v2"), pods["reports-1"]["reason"])
        self.assertIn("not-an-arn", pods["broken-1"]["reason"])
        self.assertIn("eks.amazonaws.com/skip-pod-identity-webhook",
                      pods["batch-1"]["reason"])
        self.assertIn("no profile applies now", pods["retired-1"]["reason"])
        self.assertIn("not found", pods["orphan-1"]["reason"])
        self.assertEqual(report["serviceAccounts"], [{
            "namespace": NS, "name": "broken", "status": "denied",
            "reason": pods["broken-1"]["reason"]}])

    def test_table_is_one_line_a_pod(self):
        self.populate()
        status, out, _ = self.audit(expect=1)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAMESPACE", "POD", "SERVICEACCOUNT", "STATUS",
                                            "PROFILES", "REASON"])
        rows = {line.split()[1]: line.split() for line in lines[1:9]}
        self.assertEqual(rows["ledger-new"][:5], [NS, "ledger-new", "ledger", "ok", "aws"])
        self.assertEqual(rows["plain-1"][:5], [NS, "plain-1", "plain", "none", "<none>"])
        self.assertEqual(lines[9], "")
        self.assertEqual(lines[10].split(), ["NAMESPACE", "SERVICEACCOUNT", "STATUS",
                                             "REASON"])
        self.assertEqual(lines[11].split()[:3], [NS, "broken", "denied"])
        column = lines[0].index("STATUS")
        self.assertTrue(all(line[column - 1] == " " for line in lines[1:9]), out)

    def test_exit_zero_when_nothing_is_missing_stale_or_denied(self):
        self.api.create_sa(NS, "ledger", {AWS_ARN: arn("ledger")})
        self.api.create_sa(NS, "plain")
        self.api.put_pods([self.admitted(bare_pod("ledger-1", "ledger"), "ledger"),
                           bare_pod("plain-1", "plain")])
        status, report, _ = self.audit_json(expect=0)
        self.assertEqual([p["status"] for p in report["pods"]], ["ok", "none"])
        self.assertEqual(report["serviceAccounts"], [])
        # The same cluster once the ServiceAccount is misconfigured: exit 1.
        self.api.update_sa(NS, "ledger", annotations={AWS_ARN: "arn:aws:iam::1:role/x"})
        status, report, _ = self.audit_json(expect=1)
        self.assertEqual(report["pods"][0]["status"], "denied")

    def test_an_empty_cluster(self):
        status, out, _ = self.audit(expect=0)
        self.assertEqual(out, "No pods found.\n")
        status, report, _ = self.audit_json(expect=0)
        self.assertEqual(report, {"pods": [], "serviceAccounts": []})


class AuditIdentityMapTests(AuditTestCase):
    """--identity-map: ServiceAccounts without annotations judged as the webhook that
    reads the same map judges them."""

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_mapped_service_accounts(self):
        ours = self.write("map.ini", "[%s/mapped]\n%s = %s\n" % (NS, AWS_ARN, arn("mapped")))
        aws = self.write("config.json", json.dumps({"%s/from-aws" % NS: {
            "RoleARN": arn("from-aws")}}))
        self.api.create_sa(NS, "mapped")
        self.api.create_sa(NS, "from-aws")
        self.api.put_pods([
            bare_pod("mapped-old", "mapped"),
            self.admitted(bare_pod("mapped-new", "mapped"), "mapped",
                          ["--identity-map", ours]),
            bare_pod("aws-old", "from-aws")])
        status, report, _ = self.audit_json("--identity-map", ours, expect=1)
        pods = self.by_name(report)
        self.assertEqual(pods["mapped-old"]["status"], "missing")
        self.assertEqual(pods["mapped-old"]["profiles"], ["aws"])
        self.assertEqual(pods["mapped-new"]["status"], "ok")
        self.assertEqual(pods["aws-old"]["status"], "none")
        # Without the map nothing applies to them; the admitted pod holds a profile
        # that no longer applies.
        status, report, _ = self.audit_json(expect=1)
        pods = self.by_name(report)
        self.assertEqual(pods["mapped-old"]["status"], "none")
        self.assertEqual(pods["mapped-new"]["status"], "stale")
        # The AWS webhook's ConfigMap JSON, as mounted.
        status, report, _ = self.audit_json("--identity-map", aws, expect=1)
        self.assertEqual(self.by_name(report)["aws-old"]["status"], "missing")

    def test_a_broken_map_is_refused_with_its_line(self):
        bad = self.write("bad.ini", "[%s/mapped]\nnot an annotation line\n" % NS)
        status, out, err = self.audit("--identity-map", bad)
        self.assertEqual((status, out), (2, ""), err)
        self.assertIn("bad.ini:2", err)
        self.assertEqual(self.api.requests(), [])


class AuditListTests(AuditTestCase):
    """Pagination, one namespace, progress, and what audit does when the API fails."""

    def test_follows_continue_across_pages(self):
        self.api.bulk_create(95, namespaces=5, annotated_fraction=1.0,
                             annotations={AWS_ARN: "arn:aws:iam::111122223333:role/{name}"})
        self.api.bulk_pods(95, namespaces=5)
        status, report, _ = self.audit_json("--page-size", "10", expect=1)
        self.assertEqual(len(report["pods"]), 95)
        self.assertEqual({p["status"] for p in report["pods"]}, {"missing"})
        names = [(p["namespace"], p["name"]) for p in report["pods"]]
        self.assertEqual(len(set(names)), 95)
        lists = self.api.requests(kind="list")
        pod_pages = [r for r in lists if r["path"] == "/api/v1/pods"]
        self.assertEqual(len(pod_pages), 10)
        self.assertTrue(all(r["params"]["limit"] == "10" for r in pod_pages))
        self.assertEqual(sum("continue" in r["params"] for r in pod_pages), 9)
        sa_pages = [r for r in lists if r["path"] == "/api/v1/serviceaccounts"]
        self.assertEqual(len(sa_pages), 10)

    def test_pages_shorter_than_the_limit(self):
        self.api.configure(page_size=7)   # the server caps every page at 7 items
        self.api.bulk_pods(30, namespaces=3)
        status, report, _ = self.audit_json("--page-size", "500", expect=0)
        self.assertEqual(len(report["pods"]), 30)
        self.assertEqual({p["status"] for p in report["pods"]}, {"none"})

    def test_one_namespace(self):
        self.api.bulk_create(20, namespaces=4)
        self.api.bulk_pods(20, namespaces=4)
        status, report, _ = self.audit_json("--namespace", "ns-002", "--page-size", "10",
                                            expect=0)
        self.assertEqual({p["namespace"] for p in report["pods"]}, {"ns-002"})
        self.assertEqual(len(report["pods"]), 5)
        paths = {r["path"] for r in self.api.requests(kind="list")}
        self.assertEqual(paths, {"/api/v1/namespaces/ns-002/pods",
                                 "/api/v1/namespaces/ns-002/serviceaccounts"})

    def test_progress_on_standard_error(self):
        self.api.bulk_pods(10500, namespaces=10)
        status, out, err = self.audit("-o", "json", "--page-size", "500", expect=0)
        self.assertEqual(len(json.loads(out)["pods"]), 10500)
        self.assertIn("audit: 10000 pods, about 500 more", err)

    def test_forbidden_names_the_permission(self):
        self.api.fault_error(code=403, kinds=["list"])
        status, out, err = self.audit()
        self.assertEqual(status, 2, err)
        self.assertEqual(out, "")
        self.assertIn("HTTP 403", err)
        self.assertIn("list on serviceaccounts", err)

    def test_wrong_token_and_unreachable_server_exit_2(self):
        bad = self.kubeconfig(self.api, user={"token": TOKEN + "-wrong"}, name="bad")
        status, out, err = self.audit(kubeconfig=bad)
        self.assertEqual((status, out), (2, ""), err)
        self.assertIn("401", err)
        self.api.stop()
        status, out, err = self.audit()
        self.assertEqual((status, out), (2, ""), err)

    def test_expired_continue_token(self):
        self.api.bulk_pods(30, namespaces=3)
        self.api.fault_error(code=410, count=1, kinds=["list"])
        status, out, err = self.audit("--page-size", "10")
        self.assertEqual(status, 2, err)
        self.assertIn("410", err)

    def test_usage_errors_exit_2(self):
        for args in (["-o", "yaml"], ["--page-size", "1"], ["--no-such-flag"],
                     ["extra-argument"]):
            done = subprocess.run(Config.wrapper + [Config.binary, "audit"] + args,
                                  capture_output=True, text=True, timeout=AUDIT_TIMEOUT)
            self.assertEqual(done.returncode, 2, (args, done.stderr))
            self.assertEqual(done.stdout, "")


if __name__ == "__main__":
    harness.main(sys.modules[__name__], sys.argv)
