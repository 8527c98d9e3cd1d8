#!/usr/bin/python3
"""Scale benchmark of the Kubernetes ServiceAccount source (not a test: it measures).

Starts the fake API server (tests/fakeapi/fake_apiserver.py, its own process, TLS on
127.0.0.1) holding COUNT ServiceAccounts across NAMESPACES namespaces. Every one carries
unrelated annotations the webhook must not keep (a ~200-byte
kubectl.kubernetes.io/last-applied-configuration and a Helm release name); ANNOTATED of
them, evenly spread, also carry the STACKIT trigger
workload-identity.stackit.cloud/service-account-email. Then, RUNS times, it starts
`BINARY serve --kubeconfig ... --sa-lookup-rate 1000` (built-in profiles only, default
flags otherwise; the rate only matters for the empty cluster, where every admission is a
miss) and measures:

- start -> ready: from the process start to the first /readyz 200;
- first list request -> ready: from the fake's record of the first list request to that
  /readyz 200 (wall clock; both processes on this machine), and the list duration the
  webhook logs (service_accounts_listed duration_ms);
- resident memory (VmRSS of /proc/PID/status, sampled every 5 ms): just before the first
  list request, its peak until ready, once ready (after 1 s of settling), and after
  ADMISSIONS admissions (with ServiceAccounts: cache hits for annotated and plain
  ServiceAccounts, then 20 misses that become live GETs; empty cluster: all misses),
  with VmHWM (the peak over the process's life) at the end;
- piw_sa_cache_bytes and piw_service_accounts from /metrics.

The same is measured once with an empty cluster (the baseline). Prints a Markdown table,
the machine and the exact command.

Usage: /usr/bin/python3 bench/sa_scale.py [BINARY] [--count 100000] [--namespaces 100]
       [--annotated 1000] [--runs 3] [--admissions 300]
"""
import argparse
import base64
import http.client
import json
import os
import platform
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
sys.path.insert(0, os.path.join(TOP, "tests", "fakeapi"))

import harness  # noqa: E402
from fake_apiserver import make_test_pki  # noqa: E402
from kubeharness import kubeconfig_text  # noqa: E402

STACKIT_EMAIL = "workload-identity.stackit.cloud/service-account-email"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
TOKEN = "bench-token"


def unrelated(ns, name):
    """~250 bytes of annotations no profile reads (kubectl's last-applied is ~200)."""
    applied = ('{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"annotations":{},'
               '"labels":{"app.kubernetes.io/name":"%s"},"name":"%s","namespace":"%s"}}'
               % (name, name, ns))
    return {LAST_APPLIED: applied, "meta.helm.sh/release-name": ns + "-release"}


# --------------------------------------------------------------------------------------
# The fake API server, as its own process


class Fake:
    def __init__(self, workdir):
        self.pki = make_test_pki(workdir)
        self.token_file = os.path.join(workdir, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(TOP, "tests", "fakeapi", "fake_apiserver.py"),
             "--cert", self.pki["server.crt"], "--key", self.pki["server.key"],
             "--token-file", self.token_file], stdout=subprocess.PIPE, text=True)
        info = json.loads(self.proc.stdout.readline())
        self.api_url, self.control_url = info["api_url"], info["control_url"]
        self.api_port = info["api_port"]

    def control(self, method, path, body=None, timeout=600):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def warm_up(self):
        """One list page, so the fake builds its sorted snapshot before we time anything."""
        ctx = ssl.create_default_context(cafile=self.pki["ca.crt"])
        conn = http.client.HTTPSConnection("127.0.0.1", self.api_port, context=ctx,
                                           timeout=120)
        conn.request("GET", "/api/v1/serviceaccounts?limit=1",
                     headers={"Authorization": "Bearer " + TOKEN})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        assert resp.status == 200, resp.status

    def populate(self, count, namespaces, annotated):
        """count ServiceAccounts with unrelated annotations; `annotated` of them (evenly
        spread) also get the STACKIT trigger. Returns the annotated (ns, name) pairs."""
        self.control("DELETE", "/requests")
        if count == 0:
            return []
        applied = unrelated("{namespace}", "{name}")
        self.control("POST", "/serviceaccounts/bulk", {
            "count": count, "namespaces": namespaces, "annotated_fraction": 1.0,
            "annotations": applied, "labels": {"app.kubernetes.io/part-of": "bench"}})
        picked = []
        step = count / annotated if annotated else 0
        for k in range(annotated):
            i = int(k * step)
            ns, name = "ns-%03d" % (i % namespaces), "sa-%06d" % i
            ann = unrelated(ns, name)
            ann[STACKIT_EMAIL] = "%s@sa.stackit.cloud" % name
            self.control("PUT", "/serviceaccounts/%s/%s" % (ns, name), {"annotations": ann})
            picked.append((ns, name))
        self.warm_up()
        self.control("DELETE", "/requests")
        return picked

    def list_requests(self):
        return self.control("GET", "/requests?kind=list")["requests"]

    def clear_requests(self):
        self.control("DELETE", "/requests")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --------------------------------------------------------------------------------------
# The webhook


def rss_kib(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """(wall time, VmRSS KiB) every 5 ms."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            v = rss_kib(self.pid)
            if v is not None:
                self.samples.append((time.time(), v))
            time.sleep(0.005)

    def before(self, t):
        earlier = [v for ts, v in self.samples if ts <= t]
        return earlier[-1] if earlier else None


def metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def readyz(port, ctx):
    try:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=5)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        return status
    except (OSError, http.client.HTTPException):
        return None


def admission(ns, sa):
    return harness.review({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"generateName": "bench-", "namespace": ns},
                           "spec": {"serviceAccountName": sa,
                                    "containers": [{"name": "app", "image": "busybox"}]}},
                          namespace=ns)


def run_webhook(binary, fake, workdir, count, namespaces, picked, n_admissions, tag):
    kubeconfig = os.path.join(workdir, "kubeconfig-" + tag)
    with open(kubeconfig, "w") as f:
        f.write(kubeconfig_text(fake.api_url, {"certificate-authority-data": base64.b64encode(
            open(fake.pki["ca.crt"], "rb").read()).decode()}, {"tokenFile": fake.token_file}))
    pair = harness.certs().default_rsa
    port, mport = harness.free_port(), harness.free_port()
    cmd = [binary, "serve", "--listen", "127.0.0.1:%d" % port,
           "--metrics-listen", "127.0.0.1:%d" % mport, "--tls-cert", pair.cert_path,
           "--tls-key", pair.key_path, "--kubeconfig", kubeconfig, "--log-format", "json",
           "--sa-lookup-rate", "1000"]
    log_path = os.path.join(workdir, "webhook-%s.log" % tag)
    ctx = harness.client_context()
    fake.clear_requests()
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=harness.clean_env())
    sampler = Sampler(proc.pid)
    sampler.start()
    try:
        while readyz(port, ctx) != 200:
            if proc.poll() is not None or time.monotonic() - started > 600:
                raise SystemExit("webhook did not become ready:\n" + open(log_path).read())
            time.sleep(0.005)
        ready, ready_wall = time.monotonic() - started, time.time()
        lists = fake.list_requests()
        first_list = lists[0]["time"] if lists else None
        time.sleep(1.0)
        rss_ready = rss_kib(proc.pid)
        # admissions: cache hits (annotated and plain), then 20 misses (live GETs)
        client = harness.Client(port, ctx=ctx, timeout=30)
        latencies, patched, codes = [], 0, {}
        hits = max(0, n_admissions - 20)
        for k in range(n_admissions):
            if k < hits and picked and k % 2 == 0:
                ns, sa = picked[(k // 2) % len(picked)]
            elif k < hits and count:
                i = (k * 7919) % count
                ns, sa = "ns-%03d" % (i % namespaces), "sa-%06d" % i
            else:
                ns, sa = "ns-000", "missing-%s-%d" % (tag, k)
            t = time.monotonic()
            resp = client.post_review(admission(ns, sa))
            latencies.append(time.monotonic() - t)
            codes[resp.status] = codes.get(resp.status, 0) + 1
            if resp.status == 200 and "patch" in resp.json()["response"]:
                patched += 1
        client.close()
        time.sleep(2.5)   # the gauges are refreshed every --reload-interval (2 s)
        rss_after = rss_kib(proc.pid)
        hwm = rss_kib(proc.pid, "VmHWM")
        m = metrics(mport)
    finally:
        sampler.stop.set()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    listed = [json.loads(l) for l in open(log_path) if l.startswith("{")]
    listed = [r for r in listed if r.get("event") == "service_accounts_listed"]
    return {
        "ready_s": ready,
        "list_to_ready_s": (ready_wall - first_list) if first_list else None,
        "list_pages": len(lists),
        "listed_ms": float(listed[0]["duration_ms"]) if listed else None,
        "rss_before_kib": sampler.before(first_list) if first_list else None,
        "rss_ready_kib": rss_ready,
        "hwm_kib": hwm,
        "peak_list_kib": max([v for ts, v in sampler.samples if ts <= ready_wall] or [0]),
        "rss_after_kib": rss_after,
        "cache_bytes": m.get("piw_sa_cache_bytes"),
        "service_accounts": m.get("piw_service_accounts"),
        "patched": patched, "codes": codes,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000,
        "exit": rc,
    }


# --------------------------------------------------------------------------------------
# Report


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return "%d CPUs (nproc), %s, %s MiB RAM, Linux %s" % (
        len(os.sched_getaffinity(0)),
        model, mem, platform.release())


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fmt_mib(kib):
    return "—" if kib is None else "%.1f MiB" % (kib / 1024)


def summarize(runs, key, fmt):
    values = [r[key] for r in runs if r[key] is not None]
    if not values:
        return "—"
    if len(set(values)) == 1:
        return fmt(values[0])
    return "%s (%s–%s)" % (fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(TOP, "build",
                                                              "pod-identity-webhook"))
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--annotated", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--admissions", type=int, default=300)
    args = ap.parse_args()
    harness.configure(args.binary)
    load_before = loadavg()
    workdir = tempfile.mkdtemp(prefix="piw-bench-")
    fake = Fake(workdir)
    results = {}
    try:
        picked = fake.populate(0, args.namespaces, 0)
        results["empty"] = [run_webhook(harness.Config.binary, fake, workdir, 0, args.namespaces,
                                        picked, args.admissions, "empty")]
        t = time.monotonic()
        picked = fake.populate(args.count, args.namespaces, args.annotated)
        sys.stderr.write("populated %d ServiceAccounts in %.1f s\n"
                         % (args.count, time.monotonic() - t))
        results["full"] = [run_webhook(harness.Config.binary, fake, workdir, args.count,
                                       args.namespaces, picked, args.admissions,
                                       "full%d" % i) for i in range(args.runs)]
    finally:
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    for name, runs in results.items():
        for r in runs:
            sys.stderr.write("%s: %s\n" % (name, json.dumps(r)))
    empty, full = results["empty"], results["full"]
    rows = [
        ("ServiceAccounts in the cluster (annotated with the STACKIT trigger)",
         "0", "{:,} ({:,})".format(args.count, args.annotated)),
        ("piw_service_accounts after the list", summarize(empty, "service_accounts", "{:,.0f}".format),
         summarize(full, "service_accounts", "{:,.0f}".format)),
        ("list pages (--sa-list-page-size 500)", summarize(empty, "list_pages", str),
         summarize(full, "list_pages", str)),
        ("process start → /readyz 200", summarize(empty, "ready_s", "{:.2f} s".format),
         summarize(full, "ready_s", "{:.2f} s".format)),
        ("first list request → /readyz 200", summarize(empty, "list_to_ready_s", "{:.2f} s".format),
         summarize(full, "list_to_ready_s", "{:.2f} s".format)),
        ("list duration logged by the webhook", summarize(empty, "listed_ms", "{:.0f} ms".format),
         summarize(full, "listed_ms", "{:.0f} ms".format)),
        ("VmRSS before the first list", summarize(empty, "rss_before_kib", fmt_mib),
         summarize(full, "rss_before_kib", fmt_mib)),
        ("VmRSS ready (list done, 1 s later)", summarize(empty, "rss_ready_kib", fmt_mib),
         summarize(full, "rss_ready_kib", fmt_mib)),
        ("peak VmRSS until ready (5 ms samples)", summarize(empty, "peak_list_kib", fmt_mib),
         summarize(full, "peak_list_kib", fmt_mib)),
        ("VmHWM (peak RSS) at the end", summarize(empty, "hwm_kib", fmt_mib),
         summarize(full, "hwm_kib", fmt_mib)),
        ("VmRSS after %d admissions" % args.admissions, summarize(empty, "rss_after_kib", fmt_mib),
         summarize(full, "rss_after_kib", fmt_mib)),
        ("piw_sa_cache_bytes", summarize(empty, "cache_bytes", "{:,.0f}".format),
         summarize(full, "cache_bytes", "{:,.0f}".format)),
        ("admission latency p50 / p99 (keep-alive, sequential)",
         "%s / %s" % (summarize(empty, "p50_ms", "{:.2f} ms".format),
                      summarize(empty, "p99_ms", "{:.2f} ms".format)),
         "%s / %s" % (summarize(full, "p50_ms", "{:.2f} ms".format),
                      summarize(full, "p99_ms", "{:.2f} ms".format))),
    ]
    print("| | empty cluster | %s ServiceAccounts |" % "{:,}".format(args.count))
    print("|---|---|---|")
    for label, a, b in rows:
        print("| %s | %s | %s |" % (label, a, b))
    print()
    print("%d run(s) with ServiceAccounts: median (min–max). Admission answers: empty %r, "
          "full %r; pods patched per run: %r; exit status after SIGTERM: %r."
          % (len(full), empty[0]["codes"], full[0]["codes"], [r["patched"] for r in full],
             [r["exit"] for r in empty + full]))
    print()
    print("Machine: %s; load average before/after: %s / %s." % (machine(), load_before,
                                                                 loadavg()))
    print("Command (from the repository root): `%s`" % " ".join(
        ["/usr/bin/python3", "bench/sa_scale.py"] + [shlex.quote(a) for a in sys.argv[1:]]))


if __name__ == "__main__":
    main()
