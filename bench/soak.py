#!/usr/bin/python3
"""Soak of `serve --kubeconfig` (not a test: it measures; see docs/performance.md).

Starts the fake API server (tests/fakeapi/fake_apiserver.py, its own process, TLS on
127.0.0.1) with STABLE ServiceAccounts that carry an AWS role annotation, and the webhook
with its certificate in a kubelet-style Secret directory. Then, for DURATION seconds:

- steady admissions at RATE per second from 4 clients (2 on kept-alive connections, 2 on a
  new TLS connection per request): 90 % for the stable ServiceAccounts (the answer must be
  200, the uid echoed and a patch with that ServiceAccount's role), 10 % for the churned
  ones (200 and the uid: patched or not, depending on where the churn is);
- ServiceAccount churn through the watch, every CHURN_INTERVAL: one ServiceAccount added,
  the one added 10 steps before changed (a new role), the one added 20 steps before
  deleted, so the set stays the same size while every event kind flows;
- a certificate rotation at half time (a new ECDSA pair swapped in like kubelet does);
  the run waits until new connections get the new certificate;
- VmRSS of the webhook every 2 s, its anonymous part split by what holds it (heaps,
  stacks, libraries, other; /proc/PID/smaps) and malloc's bytes in use and free
  (piw_heap_bytes).

Reported: admissions sent, failed (any answer that is not right, any exception), by
outcome; watch events applied and live GETs; the rotation's pick-up time; RSS at the end
of warm-up, at the end and its maximum, and the slope of RSS after WARMUP by least squares
(KiB per minute) with the growth it implies over the window. Exit status: 1 when an
admission failed or (unless --smoke) when RSS grew (the least-squares growth over the
window is more than --max-growth-kib), else 0. With --smoke the numbers are printed but
not judged (only failed admissions count): what the suite runs.

Usage: /usr/bin/python3 bench/soak.py [BINARY] [--duration 600] [--warmup 60]
       [--rate 50] [--churn-interval 1] [--stable 200] [--bare] [--smoke] [--out FILE]

The webhook runs with the Dockerfile's ENV (what the image deploys) unless --bare.
"""
import argparse
import base64
import json
import os
import random
import shutil
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from sa_scale import Fake, TOP, machine, metrics, readyz, rss_kib  # noqa: E402
import harness  # noqa: E402   (sa_scale put tests/integration on the path)
from kubeharness import kubeconfig_text  # noqa: E402

NAMESPACE = "soak"
ARN_ANNOTATION = "eks.amazonaws.com/role-arn"


def arn(name, version=1):
    return "arn:aws:iam::111122223333:role/%s-v%d" % (name, version)


def pod_review(sa):
    return harness.review({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"generateName": "soak-", "namespace": NAMESPACE},
                           "spec": {"serviceAccountName": sa,
                                    "containers": [{"name": "app", "image": "busybox"}]}},
                          namespace=NAMESPACE)


def check(rv, resp, want_arn):
    """None when the answer is right, else what is wrong."""
    if resp.status != 200:
        return "status %d: %r" % (resp.status, resp.body[:200])
    try:
        response = resp.json()["response"]
    except (ValueError, KeyError, TypeError) as e:
        return "not an AdmissionReview (%r)" % e
    if response.get("uid") != rv["request"]["uid"] or response.get("allowed") is not True:
        return "uid or allowed wrong: %r" % response
    if want_arn is not None:
        patch = base64.b64decode(response.get("patch") or "").decode()
        if want_arn not in patch:
            return "patch without %s: %s" % (want_arn, patch[:300])
    return None


def least_squares(pts):
    """The slope of the least-squares line through [(x, y)], or None for < 3 points."""
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(t for t, _ in pts) / n
    my = sum(v for _, v in pts) / n
    sxx = sum((t - mx) ** 2 for t, _ in pts)
    sxy = sum((t - mx) * (v - my) for t, v in pts)
    return sxy / sxx if sxx else 0.0


ANON_PARTS = ("heap", "stacks", "libraries", "other")
HEAP_STATES = ("in_use", "free")
COLUMNS = (["seconds", "vmrss_kib", "rssanon_kib", "rssfile_kib", "sockets"] +
           ["anon_%s_kib" % p for p in ANON_PARTS] + ["heap_%s_kib" % h for h in HEAP_STATES])
HEAP_ALIGN = 64 << 20   # glibc's thread heaps start at multiples of HEAP_MAX_SIZE


def image_env():
    """The environment the image gives the webhook: the Dockerfile's `ENV NAME=VALUE`
    lines (GLIBC_TUNABLES: no per-thread malloc caches), so the soak measures what is
    deployed."""
    env = {}
    with open(os.path.join(TOP, "Dockerfile")) as f:
        for line in f:
            words = line.split()
            if len(words) == 2 and words[0] == "ENV" and "=" in words[1]:
                name, value = words[1].split("=", 1)
                env[name] = value
    return env


def anon_parts(pid):
    """The anonymous resident KiB of /proc/PID/smaps by what holds it: malloc's heaps
    (the main [heap] and the 64 MiB-aligned thread heaps), thread stacks ([stack], and
    a writable mapping just above a no-access guard), libraries (the pages of their
    writable data they changed) and the rest (large blocks malloc mapped on its own,
    anything else). None when the process is gone."""
    parts = dict.fromkeys(ANON_PARTS, 0)
    prev_end, prev_guard = None, False
    kind = None
    try:
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                head = line.split(None, 5)
                if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    perms, path = head[1], head[5].strip() if len(head) > 5 else ""
                    if path == "[heap]" or (not path and lo % HEAP_ALIGN == 0):
                        kind = "heap"
                    elif path == "[stack]" or (not path and prev_guard and prev_end == lo):
                        kind = "stacks"
                    elif path and not path.startswith("["):
                        kind = "libraries"
                    else:
                        kind = "other"
                    prev_end, prev_guard = hi, (not path and perms.startswith("---"))
                elif head[0] == "Anonymous:":
                    parts[kind] += int(head[1])
    except OSError:
        return None
    return parts


class Run:
    def __init__(self, args, binary, workdir):
        self.args, self.binary, self.workdir = args, binary, workdir
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.failures = []
        self.by_kind = {"stable": 0, "churn": 0}
        self.fingerprints = {}   # fingerprint -> admissions answered with it (new conns)
        self.churn_step = 0
        self.churn_ops = {"added": 0, "modified": 0, "deleted": 0}
        # (seconds since start, VmRSS, RssAnon, RssFile KiB, sockets, then the KiB of
        # ANON_PARTS and of HEAP_STATES): see sampler()
        self.rss = []

    # -- the churn ---------------------------------------------------------------------

    def churn_once(self):
        i = self.churn_step
        self.fake.control("POST", "/serviceaccounts", {
            "namespace": NAMESPACE, "name": "churn-%06d" % i,
            "annotations": {ARN_ANNOTATION: arn("churn-%06d" % i)}})
        self.churn_ops["added"] += 1
        if i >= 10:
            name = "churn-%06d" % (i - 10)
            self.fake.control("PUT", "/serviceaccounts/%s/%s" % (NAMESPACE, name), {
                "annotations": {ARN_ANNOTATION: arn(name, 2)}})
            self.churn_ops["modified"] += 1
        if i >= 20:
            self.fake.control("DELETE", "/serviceaccounts/%s/churn-%06d" % (NAMESPACE, i - 20))
            self.churn_ops["deleted"] += 1
        self.churn_step += 1

    def churner(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            try:
                self.churn_once()
            except Exception as e:   # the fake is ours: a failure here is a bench bug
                with self.lock:
                    self.failures.append("churn: %r" % e)
            next_at += self.args.churn_interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    # -- the admissions ----------------------------------------------------------------

    def admitter(self, keepalive, seed):
        rng = random.Random(seed)
        client = harness.Client(self.port, ctx=self.ctx, timeout=60) if keepalive else None
        clients = self.args.keepalive_clients + self.args.fresh_clients
        interval = float(clients) / self.args.rate   # the clients share the rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            if rng.random() < 0.9:
                kind, sa = "stable", "stable-%04d" % rng.randrange(self.args.stable)
                want = arn(sa)
            else:
                top = self.churn_step
                kind, sa = "churn", "churn-%06d" % max(0, top - rng.randrange(25))
                want = None
            rv = pod_review(sa)
            try:
                if client:
                    resp = client.post_review(rv)
                else:
                    resp = self.server_client().post_review(rv)
                problem = check(rv, resp, want)
            except Exception as e:
                problem, resp = "%s: %r" % (kind, e), None
            with self.lock:
                self.sent += 1
                self.by_kind[kind] += 1
                if problem:
                    self.failures.append("%s %s: %s" % (kind, sa, problem))
                elif not keepalive and resp is not None:
                    fp = resp.peer_fingerprint
                    self.fingerprints[fp] = self.fingerprints.get(fp, 0) + 1
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        if client:
            client.close()

    def server_client(self):
        """A one-request client on a new connection (closed after the answer)."""
        return OneShot(self.port, self.ctx)

    # -- RSS ---------------------------------------------------------------------------

    def sockets(self):
        """The server's open sockets (client connections, pooled API connections, the
        listeners): their TLS state is heap in use, so RSS moves with their number."""
        try:
            fds = os.listdir("/proc/%d/fd" % self.proc.pid)
        except OSError:
            return None
        n = 0
        for fd in fds:
            try:
                n += os.readlink("/proc/%d/fd/%s" % (self.proc.pid, fd)).startswith("socket:")
            except OSError:
                pass
        return n

    def heap_kib(self):
        """malloc's bytes in use and held free (piw_heap_bytes), in KiB."""
        try:
            m = metrics(self.mport)
        except (OSError, ValueError):
            return [None] * len(HEAP_STATES)
        return [m.get('piw_heap_bytes{state="%s"}' % h, 0) / 1024 for h in HEAP_STATES]

    def sampler(self):
        """Every 2 s: the resident set and its parts, the open sockets, the heap."""
        while not self.stop.is_set():
            v = rss_kib(self.proc.pid)
            parts = anon_parts(self.proc.pid)
            if v is not None and parts is not None:
                self.rss.append(tuple([time.monotonic() - self.started, v,
                                       rss_kib(self.proc.pid, "RssAnon"),
                                       rss_kib(self.proc.pid, "RssFile"), self.sockets()] +
                                      [parts[p] for p in ANON_PARTS] + self.heap_kib()))
            self.stop.wait(2.0)

    # -- the run -----------------------------------------------------------------------

    def start(self):
        args = self.args
        self.fake = Fake(self.workdir)
        for k in range(args.stable):
            name = "stable-%04d" % k
            self.fake.control("POST", "/serviceaccounts", {
                "namespace": NAMESPACE, "name": name,
                "annotations": {ARN_ANNOTATION: arn(name)}})
        kubeconfig = os.path.join(self.workdir, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(kubeconfig_text(self.fake.api_url, {
                "certificate-authority-data": base64.b64encode(
                    open(self.fake.pki["ca.crt"], "rb").read()).decode()},
                {"tokenFile": self.fake.token_file}))
        factory = harness.certs()
        self.first, self.rotated = factory.pair("rsa"), factory.pair("ecdsa")
        self.certdir = harness.KubeletCertDir(os.path.join(self.workdir, "certs"), self.first)
        self.port, self.mport = harness.free_port(), harness.free_port()
        self.env = {} if self.args.bare else image_env()
        self.cmd = [self.binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
                    "--metrics-listen", "127.0.0.1:%d" % self.mport,
                    "--tls-cert", self.certdir.cert, "--tls-key", self.certdir.key,
                    "--profiles-dir", os.path.join(TOP, "profiles"),
                    "--kubeconfig", kubeconfig, "--log-format", "json",
                    "--reload-interval", "1s", "--sa-lookup-rate", "1000",
                    "--sa-lookup-timeout", "10s"]
        self.log_path = os.path.join(self.workdir, "webhook.log")
        self.ctx = harness.client_context()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, env=harness.clean_env(self.env))
        waited = time.monotonic()
        while readyz(self.port, self.ctx) != 200:
            if self.proc.poll() is not None or time.monotonic() - waited > 300:
                raise SystemExit("soak: the webhook did not become ready:\n"
                                 + open(self.log_path).read()[-3000:])
            time.sleep(0.05)

    def run(self):
        args = self.args
        self.started = time.monotonic()
        threads = [threading.Thread(target=self.sampler, daemon=True)]
        if args.churn_interval > 0:
            threads.append(threading.Thread(target=self.churner, daemon=True))
        ka, fresh = args.keepalive_clients, args.fresh_clients
        threads += [threading.Thread(target=self.admitter, args=(k < ka, k), daemon=True)
                    for k in range(ka + fresh)]
        for t in threads:
            t.start()
        self.rotation_s = None
        half = self.started + args.duration / 2
        while time.monotonic() < half:
            time.sleep(0.2)
        if not args.no_rotation:
            self.certdir.install(self.rotated)
        rotated_at = time.monotonic()
        while not args.no_rotation and time.monotonic() - rotated_at < 120:
            try:
                if self.served_fingerprint() == self.rotated.fingerprint:
                    self.rotation_s = time.monotonic() - rotated_at
                    break
            except OSError:
                pass
            time.sleep(0.1)
        end = self.started + args.duration
        while time.monotonic() < end:
            time.sleep(0.2)
        self.stop.set()
        for t in threads:
            t.join(120)
        self.metrics = metrics(self.mport)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit = "killed after 60 s"
        self.fake.stop()

    def served_fingerprint(self):
        with harness.tls_connect(self.port, ctx=self.ctx, timeout=30) as s:
            return harness.peer_fingerprint(s)

    # -- the report --------------------------------------------------------------------

    def metric_sum(self, prefix, **labels):
        total = 0.0
        for key, value in self.metrics.items():
            name = key.split("{", 1)[0]
            if name != prefix:
                continue
            if all('%s="%s"' % kv in key for kv in labels.items()):
                total += value
        return total

    def slope(self, column=1, since=None):
        """(KiB per minute by least squares over the samples after warm-up (or since
        `since` seconds), samples) of a column of COLUMNS: VmRSS (1), RssAnon (2)..."""
        since = self.args.warmup if since is None else since
        pts = [(r[0] / 60.0, r[column]) for r in self.rss
               if r[0] >= since and r[column] is not None]
        return least_squares(pts), pts

    def slopes_line(self):
        """The slopes of the parts of RSS, and of VmRSS over each half of the window."""
        end = self.rss[-1][0] if self.rss else 0
        mid = (self.args.warmup + end) / 2
        first = least_squares([(r[0] / 60.0, r[1]) for r in self.rss
                               if self.args.warmup <= r[0] < mid])
        second, _ = self.slope(1, mid)
        anon, _ = self.slope(2)
        files, _ = self.slope(3)

        def f(v):
            return "%+.1f" % v if v is not None else "?"
        return ("- RSS parts (KiB/min): anonymous %s, mapped files %s; VmRSS over the first "
                "half of the window %s, over the second half %s"
                % (f(anon), f(files), f(first), f(second)))

    def anon_line(self):
        """Where the anonymous memory is and how each part moved after warm-up, then
        malloc's own account: growth of `in_use` is memory kept, growth of `free` with
        a flat `in_use` is fragmentation."""
        after = [r for r in self.rss if r[0] >= self.args.warmup]
        if not after:
            return "- anonymous memory by part: no samples"
        cells = []
        for name in ["anon_%s_kib" % p for p in ANON_PARTS] + \
                ["heap_%s_kib" % h for h in HEAP_STATES]:
            col = COLUMNS.index(name)
            vals = [r[col] for r in after if r[col] is not None]
            slope, _ = self.slope(col)
            if vals:
                cells.append("%s %.0f → %.0f (%s/min)" % (
                    name[:-4], vals[0], vals[-1],
                    "%+.1f" % slope if slope is not None else "?"))
        return "- anonymous memory by part (KiB, after warm-up → end): " + "; ".join(cells)

    def sockets_line(self):
        """The server's open sockets after warm-up, and the lowest RssAnon of each fifth
        of the window: growth that is held state climbs with its highest socket count,
        growth that is kept climbs regardless."""
        after = [r for r in self.rss if r[0] >= self.args.warmup and r[4] is not None]
        if not after:
            return "- open sockets: no samples"
        counts = sorted(r[4] for r in after)
        fifth = max(1, len(after) // 5)
        parts = [after[i:i + fifth] for i in range(0, len(after), fifth)][:5]
        return ("- open sockets after warm-up: min %d, median %d, max %d; lowest RssAnon "
                "(KiB) and most sockets by fifth of the window: %s"
                % (counts[0], counts[len(counts) // 2], counts[-1],
                   ", ".join("%d/%d" % (min(r[2] for r in p), max(r[4] for r in p))
                             for p in parts)))

    def write_samples(self, path):
        with open(path, "w") as out:
            out.write(",".join(COLUMNS) + "\n")
            for r in self.rss:
                out.write("%.1f," % r[0] + ",".join(
                    "" if v is None else "%.0f" % v for v in r[1:]) + "\n")

    def report(self, command):
        args = self.args
        slope, pts = self.slope()
        window_min = (pts[-1][0] - pts[0][0]) if len(pts) >= 2 else 0.0
        growth = slope * window_min if slope is not None else None
        outcomes = {k.split('outcome="', 1)[1].split('"', 1)[0]: int(v)
                    for k, v in self.metrics.items()
                    if k.startswith("piw_admissions_total{")}
        lines = [
            "# Soak: %d s, %d admissions/s, churn every %.1f s, rotation at %d s"
            % (args.duration, args.rate, args.churn_interval, args.duration // 2),
            "",
            "- command: `%s`" % command,
            "- the webhook's environment: %s" % (
                ", ".join("%s=%s" % kv for kv in sorted(self.env.items())) +
                " (the Dockerfile's ENV)" if self.env else "bare (--bare: no image ENV)"),
            "- machine: %s" % machine(),
            "- admissions sent: %d (stable %d, churned %d), **failed: %d**; by outcome "
            "(server): %s" % (self.sent, self.by_kind["stable"], self.by_kind["churn"],
                              len(self.failures), json.dumps(outcomes, sort_keys=True)),
            "- churn through the watch: %s ServiceAccounts; watch events applied %d; "
            "lookups by result %s (live GETs: misses for deleted or not-yet-seen names)"
            % (json.dumps(self.churn_ops, sort_keys=True),
               self.metric_sum("piw_sa_watch_events_total"),
               json.dumps({k.split('result="', 1)[1].split('"', 1)[0]: int(v)
                           for k, v in self.metrics.items()
                           if k.startswith("piw_sa_lookups_total{")}, sort_keys=True)),
            "- certificate rotation: new certificate served %s after the swap (reload "
            "interval 1 s); certificate reloads %d; new-connection answers by "
            "certificate: %s"
            % ("%.2f s" % self.rotation_s if self.rotation_s is not None else
               "NEVER (120 s)", self.metric_sum("piw_certificate_reloads_total",
                                                result="success"),
               ", ".join("%s… %d" % (fp[:8], n) for fp, n in self.fingerprints.items())),
            "- RSS: %s KiB at the end of warm-up (%d s), %s KiB at the end, max %s KiB; "
            "%d samples after warm-up" % (
                pts[0][1] if pts else "?", args.warmup, pts[-1][1] if pts else "?",
                max(v for _, v in pts) if pts else "?", len(pts)),
            "- RSS slope after warm-up (least squares): %s KiB/min, i.e. %s KiB over the "
            "%.1f min window (limit %d KiB%s)" % (
                "%+.1f" % slope if slope is not None else "?",
                "%+.0f" % growth if growth is not None else "?", window_min,
                args.max_growth_kib, ", not judged: --smoke" if args.smoke else ""),
            self.slopes_line(),
            self.sockets_line(),
            self.anon_line(),
            "- ServiceAccount cache: %d ServiceAccounts, %d bytes at the end"
            % (self.metric_sum("piw_service_accounts"),
               self.metric_sum("piw_sa_cache_bytes")),
            "- exit status after SIGTERM: %s" % self.exit,
        ]
        if self.failures:
            lines.append("- first failures: %s" % "; ".join(self.failures[:5]))
        ok = not self.failures and self.exit == 0 and (self.rotation_s is not None or
                                                       args.no_rotation)
        if not args.smoke:
            ok = ok and growth is not None and growth <= args.max_growth_kib
        lines.append("- result: %s" % ("PASS" if ok else "FAIL"))
        return "\n".join(lines) + "\n", ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?",
                    default=os.path.join(TOP, "build", "pod-identity-webhook"))
    ap.add_argument("--duration", type=int, default=600, help="seconds (default 600)")
    ap.add_argument("--warmup", type=int, default=60,
                    help="seconds before RSS is judged (default 60)")
    ap.add_argument("--rate", type=int, default=50, help="admissions per second")
    ap.add_argument("--churn-interval", type=float, default=1.0,
                    help="seconds between churn steps (add, change, delete); 0: none")
    ap.add_argument("--keepalive-clients", type=int, default=2,
                    help="admission clients on kept-alive connections (default 2)")
    ap.add_argument("--fresh-clients", type=int, default=2,
                    help="admission clients opening a connection per request (default 2)")
    ap.add_argument("--no-rotation", action="store_true",
                    help="no certificate rotation (to tell what memory grows with)")
    ap.add_argument("--stable", type=int, default=200,
                    help="ServiceAccounts that never change")
    ap.add_argument("--max-growth-kib", type=int, default=128,
                    help="the most RSS may grow over the window, by least squares")
    ap.add_argument("--smoke", action="store_true",
                    help="print the numbers, judge only failed admissions")
    ap.add_argument("--bare", action="store_true",
                    help="run the webhook without the Dockerfile's ENV (glibc's defaults)")
    ap.add_argument("--out", help="also write the report to this file")
    ap.add_argument("--samples", help="write the RSS samples (CSV) to this file")
    args = ap.parse_args()
    if args.warmup >= args.duration:
        ap.error("--warmup must be shorter than --duration")
    command = "bench/soak.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    harness.configure(args.binary)
    workdir = tempfile.mkdtemp(prefix="piw-soak-")
    run = Run(args, os.path.abspath(args.binary), workdir)
    try:
        run.start()
        run.run()
    finally:
        if getattr(run, "proc", None) is not None and run.proc.poll() is None:
            run.proc.kill()
        if getattr(run, "fake", None) is not None and run.fake.proc.poll() is None:
            run.fake.stop()
    text, ok = run.report(command)
    if args.samples:
        run.write_samples(args.samples)
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if ok:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        sys.stdout.write("(webhook log kept in %s)\n" % run.log_path)
    return 0 if ok else 1


class OneShot:
    """post_review() on a new TLS connection, closed after the answer."""

    def __init__(self, port, ctx):
        self.port, self.ctx = port, ctx

    def post_review(self, rv):
        client = harness.Client(self.port, ctx=self.ctx, timeout=60)
        try:
            return client.post_review(rv)
        finally:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
