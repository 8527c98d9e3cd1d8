#!/usr/bin/python3
"""The benchmark of pod-identity-webhook (bench/run.sh builds the binary, then runs this).

Starts `serve` on 127.0.0.1 with throwaway certificates and a ServiceAccounts directory,
drives it with wrk (Lua script bench/lua/post.lua) and measures, each scenario bounded in
time:

- TLS + HTTP ceiling: Debian's nginx returning a constant body, same wrk command, same body;
- keep-alive, 64 connections, the Deployment pod whose ServiceAccount matches (patched):
  requests/s, p50/p99/p99.9, server CPU per admission (/proc/PID/stat), resident memory;
- the same with the pod whose ServiceAccount matches no profile; 1 connection;
- a fixed rate of 2,000 requests/s on 16 connections: latency percentiles;
- a new TLS connection per request (ECDSA P-256 and RSA-2048 certificates): handshakes/s;
- the server's CPU while one TLS client holds its Finished (a handshake in flight);
- instructions per admission under callgrind (--threads 1, a fixed number of requests,
  minus a baseline run with fewer requests);
- the 100,000-ServiceAccount cache via bench/sa_scale.py; the binary and image size.

Prints the machine and a Markdown table (scenario, result, goal, met?), also written to
--out. Exit status: 0 when every scenario produced its numbers (goals met or not), 1 when a
scenario failed, 2 on a usage error.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BENCH = os.path.join(TOP, "bench")
LUA = os.path.join(BENCH, "lua", "post.lua")
BODY_MATCH = os.path.join(BENCH, "data", "admissionreview-deployment.json")
BODY_NOMATCH = os.path.join(BENCH, "data", "admissionreview-deployment-nomatch.json")
SA_DIR = os.path.join(BENCH, "data", "service-accounts")
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1e6

sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
import harness  # noqa: E402   (sanitized(): one test of a build for the suite and here)

# A constant AdmissionReview-like answer for nginx (the size of our no-match answer).
NGINX_BODY = ('{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":'
              '{"uid":"0df28fbd-5f5f-11e8-bc74-36e6bb280816","allowed":true}}')


def log(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


class ScenarioError(Exception):
    pass


STARTED = []  # every server and nginx started, stopped at exit even after an error


def stop_all():
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


# --------------------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu(pid):
    """(utime, stime) of the whole process in seconds, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_status(pid, field):
    """A /proc/PID/status field in bytes (VmRSS, VmHWM), None if gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_by_mapping(pid):
    """{mapped file or [heap]/[stack]/anon: Rss bytes} from /proc/PID/smaps."""
    out, name = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                name = parts[5] if len(parts) > 5 else "[anonymous]"
            elif parts and parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1]) * 1024
    return out


def lib_label(path):
    """A short name for a mapped file: libgnutls.so.30.34.3 -> libgnutls, the loader -> ld.so."""
    base = os.path.basename(path)
    if base.startswith("ld-linux"):
        return "ld.so"
    return re.sub(r"\.so(\.[0-9.]+)?$", "", base)


def rss_breakdown(pid):
    """[(label, Rss bytes)] by library (all mappings of one file together), [heap],
    thread stacks (an anonymous mapping right after a 4 KiB guard page, plus [stack]) and
    the other anonymous memory (malloc arenas of the other threads, libraries' own mmaps),
    largest first."""
    out = {}
    prev = None  # (end address, perms, size) of the previous mapping
    name = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) ", line)
            if m:
                start, end = int(m.group(1), 16), int(m.group(2), 16)
                path = parts[5] if len(parts) > 5 else ""
                if path == "[heap]":
                    name = "heap"
                elif path == "[stack]":
                    name = "stacks"
                elif path.startswith("/"):
                    name = lib_label(path)
                elif path:
                    name = path  # [vdso], [vvar]
                elif (prev and prev[0] == start and prev[1].startswith("---")
                      and prev[2] == 4096 and m.group(3).startswith("rw")):
                    name = "stacks"
                else:
                    name = "other anonymous"
                prev = (end, m.group(3), end - start)
            elif parts and parts[0] == "Rss:":
                out[name] = out.get(name, 0) + int(parts[1]) * 1024
    return sorted(out.items(), key=lambda kv: -kv[1])


def only_needed_by(binary, lib_prefix):
    """The shared libraries (labels) that the binary loads only because of the direct
    dependency whose name starts with lib_prefix (that one included), from readelf -d and
    ldd."""
    def deps(path):
        out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        return {lib_label(m.group(1)) for m in re.finditer(r"=> (/\S+)", out)}

    needed = re.findall(r"\[(\S+)\]", subprocess.run(
        ["readelf", "-d", binary], capture_output=True, text=True).stdout)
    paths = {}
    for m in re.finditer(r"^\s*(\S+) => (/\S+)", subprocess.run(
            ["ldd", binary], capture_output=True, text=True).stdout, re.M):
        paths[m.group(1)] = m.group(2)
    target = [n for n in needed if n.startswith(lib_prefix)]
    if not target or target[0] not in paths:
        return set()
    mine = deps(paths[target[0]]) | {lib_label(paths[target[0]])}
    others = set()
    for n in needed:
        if n != target[0] and n in paths:
            others |= deps(paths[n]) | {lib_label(paths[n])}
    return mine - others


def memory_text(pid):
    """'anonymous X MB, files Y MB (libcrypto.so.3 2.9 MB, ...)'"""
    anon, files = proc_status(pid, "RssAnon") or 0, proc_status(pid, "RssFile") or 0
    maps = rss_by_mapping(pid)
    top = sorted(((v, k) for k, v in maps.items() if k.startswith("/")), reverse=True)[:3]
    return "anonymous %.1f MB, mapped files %.1f MB (%s)" % (
        anon / MB, files / MB, ", ".join("%s %.1f" % (os.path.basename(k), v / MB)
                                          for v, k in top))


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def machine_cpu():
    """(busy, total) CPU seconds of the whole machine, from /proc/stat. Busy is user, nice,
    system and steal time: irq and softirq time (the loopback network's packet processing,
    part of every scenario but not charged to the processes) is left out."""
    with open("/proc/stat") as f:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(x) for x in f.readline().split()[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (user + nice + system + steal) / CLK_TCK, total / CLK_TCK


def foreign_share(before, after, ours_s):
    """The share of the machine's CPU time used by processes other than ours_s seconds."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return max(0.0, (busy - ours_s) / total) if total > 0 else 0.0


def wait_quiet(max_wait, threshold=0.10):
    """Waits (up to max_wait s) until the machine is < threshold busy over 3 s; returns the
    busy share last seen."""
    deadline = time.monotonic() + max_wait
    while True:
        a = machine_cpu()
        time.sleep(3)
        b = machine_cpu()
        share = foreign_share(a, b, 0)
        if share < threshold or time.monotonic() > deadline:
            return share
        log("machine busy (%.0f %% of the CPUs used by other processes), waiting" % (share * 100))
        time.sleep(10)


class CpuMeter:
    """CPU seconds of a set of processes (a server, or nginx's master + workers)."""

    def __init__(self, pids_fn):
        self.pids_fn = pids_fn

    def read(self):
        u = s = 0.0
        for pid in self.pids_fn():
            try:
                a, b = proc_cpu(pid)
            except OSError:
                continue
            u, s = u + a, s + b
        return u, s


class RssSampler(threading.Thread):
    """Peak VmRSS of a process, sampled every 50 ms while running."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_event = pid, 0, threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            v = proc_status(self.pid, "VmRSS")
            if v:
                self.peak = max(self.peak, v)
            time.sleep(0.05)

    def stop(self):
        self.stop_event.set()
        self.join()
        return self.peak


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def https_request(port, ctx, method, path, body=None, timeout=10):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        cipher = conn.sock.cipher() if conn.sock else None
        version = conn.sock.version() if conn.sock else None
        return resp.status, data, (version, cipher[0] if cipher else None)
    finally:
        conn.close()


class Server:
    """One `pod-identity-webhook serve` process (optionally under a wrapper: valgrind)."""

    def __init__(self, binary, workdir, cert, key, ca, tag, wrapper=(), extra=(),
                 ready_timeout=30):
        self.port, self.mport = free_port(), free_port()
        self.ca = ca
        self.ctx = tls_context(ca)
        self.log_path = os.path.join(workdir, "serve-%s.log" % tag)
        self.cmd = list(wrapper) + [
            binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
            "--metrics-listen", "127.0.0.1:%d" % self.mport,
            "--tls-cert", cert, "--tls-key", key,
            "--profiles-dir", os.path.join(TOP, "profiles"), "--region", "eu-central-1",
            "--service-accounts-dir", SA_DIR] + list(extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
        # The per-admission info log line is part of the work; it goes to a file only
        # under valgrind (few requests), to /dev/null otherwise (millions of lines).
        self.log_file = open(self.log_path if wrapper else os.devnull, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=self.log_file, env=env)
        STARTED.append(self.proc)
        self.pid = self.proc.pid
        self.ready_s = self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout):
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScenarioError("serve exited with status %d: %s"
                                    % (self.proc.returncode, shlex.join(self.cmd)))
            try:
                status, _, _ = https_request(self.port, self.ctx, "GET", "/readyz", timeout=2)
                if status == 200:
                    return time.monotonic() - self.started
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.002)
        raise ScenarioError("serve not ready after %d s" % timeout)

    @property
    def url(self):
        return "https://127.0.0.1:%d/mutate" % self.port

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        return self.proc.returncode


def nginx_answer(body):
    """The nginx configuration that answers `body` (bytes) exactly, as application/json:
    (http-level map blocks, the `return` argument). A configuration token holds at most
    4,096 bytes (NGX_CONF_BUFFER), so a longer body is split into map values that
    `return` joins; nginx expands `$` in map values and in `return`, so a body with one
    cannot be served this way."""
    text = body.decode("utf-8")
    if "$" in text or "\n" in text:
        raise ScenarioError("the answer holds '$' or a newline: nginx cannot return it as is")
    parts = [text[i:i + 2000] for i in range(0, len(text), 2000)] or [""]
    maps = []
    for i, part in enumerate(parts):
        quoted = part.replace("\\", "\\\\").replace("'", "\\'")
        maps.append("    map $server_port $piw_answer_%d { default '%s'; }" % (i, quoted))
    ret = '"%s"' % "".join("${piw_answer_%d}" % i for i in range(len(parts)))
    return "\n".join(maps), ret


class Nginx:
    """Debian's nginx as an unprivileged configuration in a temp dir: TLS 1.3, keep-alive,
    `return 200` with a constant body (by default the 134-byte answer of the no-match pod;
    `body`: those exact bytes, e.g. our answer to the matching pod), 2 workers."""

    def __init__(self, workdir, cert, key, workers=2, body=None):
        maps, ret = nginx_answer(body) if body is not None else ("", "'%s'" % NGINX_BODY)
        self.body = body if body is not None else NGINX_BODY.encode()
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write("""worker_processes %d;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server_tokens off;
%s
    server {
        listen 127.0.0.1:%d ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.3;
        location / {
            default_type application/json;
            return 200 %s;
        }
    }
}
""" % (workers, d, d, d, d, d, d, d, maps, self.port, cert, key, ret))
        self.log = open(os.path.join(d, "stderr.log"), "wb")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"),
                                      "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        STARTED.append(self.proc)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ScenarioError("nginx exited: %s" % open(os.path.join(d, "stderr.log")).read()
                                    + open(os.path.join(d, "error.log")).read())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    if len(children(self.pid)) >= workers:
                        break
            except OSError:
                pass
            time.sleep(0.02)
        else:
            raise ScenarioError("nginx did not start")

    @property
    def url(self):
        return "https://127.0.0.1:%d/mutate" % self.port

    def pids(self):
        return [self.pid] + children(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------------------
# wrk


def wrk(url, body, threads, conns, duration, extra_args=(), headers=(), count=None,
        timeout_s="2s"):
    """Runs wrk with post.lua; returns the BENCH summary dict (+ wall time)."""
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration, "--latency",
           "--timeout", timeout_s]
    for h in headers:
        cmd += ["-H", h]
    cmd += ["-s", LUA, url, "--", body] + list(extra_args)
    if count is not None:
        cmd.append("count=%d" % count)
    env = dict(os.environ, BENCH_WRK_THREADS=str(threads))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    if count is not None:
        # post.lua stops the (single) thread after `count` responses, but wrk's main thread
        # sleeps for the whole -d: once only the main thread is left, interrupt it.
        while proc.poll() is None:
            try:
                tasks = os.listdir("/proc/%d/task" % proc.pid)
            except OSError:
                break
            if len(tasks) == 1 and time.monotonic() - t0 > 0.2:
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
    out, err = proc.communicate(timeout=duration + 60)
    wall = time.monotonic() - t0
    m = re.search(r"^BENCH (\{.*\})$", out, re.M)
    if proc.returncode != 0 or not m:
        raise ScenarioError("wrk failed (%s): %s %s" % (proc.returncode, shlex.join(cmd),
                                                         (err or out).strip()[-400:]))
    r = json.loads(m.group(1))
    r["wall_s"] = wall
    r["cmd"] = shlex.join(cmd)
    r["errors"] = (r["errors_connect"] + r["errors_read"] + r["errors_write"]
                   + r["errors_status"] + r["errors_timeout"])
    if r["requests"] == 0:
        raise ScenarioError("wrk completed no request: %s" % r["cmd"])
    if r["errors_status"]:
        raise ScenarioError("%d answers with a status >= 400: %s" % (r["errors_status"], r["cmd"]))
    return r


def measured_wrk(target_pids, rss_pid, *args, **kw):
    """wrk plus the server-side CPU (all processes in target_pids()) and peak RSS."""
    meter = CpuMeter(target_pids)
    sampler = RssSampler(rss_pid) if rss_pid else None
    if sampler:
        sampler.start()
    u0, s0 = meter.read()
    m0, c0 = machine_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = wrk(*args, **kw)
    u1, s1 = meter.read()
    m1, c1 = machine_cpu(), resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_s = c1.ru_utime - c0.ru_utime + c1.ru_stime - c0.ru_stime
    r["wrk_cpu_s"] = wrk_s
    r["wrk_us"] = wrk_s / max(r["requests"], 1) * 1e6
    r["foreign"] = foreign_share(m0, m1, wrk_s + (u1 - u0) + (s1 - s0))
    if sampler:
        r["rss_peak"] = sampler.stop()
    n = max(r["requests"], 1)
    r["cpu_user_us"] = (u1 - u0) / n * 1e6
    r["cpu_sys_us"] = (s1 - s0) / n * 1e6
    r["cpu_us"] = r["cpu_user_us"] + r["cpu_sys_us"]
    r["cpu_util"] = (u1 - u0 + s1 - s0) / (r["duration_us"] / 1e6)
    return r


# --------------------------------------------------------------------------------------
# certificates


def make_certs(d):
    """A CA (ECDSA P-256) and two server certificates for 127.0.0.1: ECDSA P-256, RSA-2048."""
    def run(*cmd):
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    ca_key, ca = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2", "-subj", "/CN=piw bench CA", "-keyout", ca_key, "-out", ca)
    ext = os.path.join(d, "ext.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    out = {"ca": ca}
    for kind, newkey in (("ecdsa", ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                         ("rsa", ["-newkey", "rsa:2048"])):
        key, csr, crt = (os.path.join(d, "%s.%s" % (kind, x)) for x in ("key", "csr", "crt"))
        run("openssl", "req", *newkey, "-nodes", "-subj", "/CN=localhost", "-keyout", key,
            "-out", csr)
        run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)
        os.chmod(key, 0o644)  # nginx workers (user nobody when started as root) read it
        out[kind] = (crt, key)
    return out


# --------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.binary = os.path.abspath(args.binary)
        self.quick = args.quick
        self.dur = args.duration or (1 if args.smoke else 2 if args.quick else 10)
        self.repeat = args.repeat or (1 if args.quick else 3)
        self.workdir = tempfile.mkdtemp(prefix="piw-bench-")
        self.rows = []       # (scenario, result, goal, met)
        self.notes = []
        self.failures = []
        self.raw = {}
        self.artifacts = args.artifacts
        if self.artifacts:
            os.makedirs(self.artifacts, exist_ok=True)

    # -- table helpers
    def row(self, scenario, result, goal="—", met=None):
        m = "—" if met is None else ("yes" if met else "**no**")
        self.rows.append((scenario, result, goal, m))

    def fail(self, scenario, exc):
        msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        self.failures.append((scenario, msg))
        self.rows.append((scenario, "failed: " + msg, "", "—"))
        log("%s failed: %s" % (scenario, msg))
        if self.args.verbose:
            traceback.print_exc()

    def scenario(self, name, fn):
        log("%s ..." % name)
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every scenario must run, and say why not
            self.fail(name, e)

    # -- machine
    def machine(self):
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = next(int(l.split()[1]) for l in f if l.startswith("MemTotal:"))
        rev = self.args.sources
        if not rev:
            tree = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip() or "?"
            rev = "%s (working tree: %s)" % (self.binary, tree)
        with open(self.binary, "rb") as f:
            rev += ", binary sha256 %s" % hashlib.sha256(f.read()).hexdigest()[:12]
        wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
        wrk_v = (wrk_v.stdout or wrk_v.stderr).split("[")[0].strip()
        nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)),
            "cpu": model,
            "mem_mib": mem // 1024,
            "kernel": platform.release(),
            "load": os.getloadavg(),
            "git": rev,
            "tools": "%s, %s, valgrind %s" % (
                wrk_v, nginx_v.replace("nginx version: ", ""),
                subprocess.run(["valgrind", "--version"], capture_output=True,
                               text=True).stdout.strip().replace("valgrind-", "")),
        }

    # -- scenarios
    def run(self):
        args = self.args
        self.info = self.machine()
        self.info["busy_before"] = wait_quiet(args.wait_quiet or 0)
        self.info["load"] = os.getloadavg()
        load1 = self.info["load"][0]
        log("machine: %d CPUs, %s, Linux %s, load %.2f %.2f %.2f"
            % (self.info["nproc"], self.info["cpu"], self.info["kernel"], *self.info["load"]))
        if self.info["busy_before"] >= 0.10:
            self.notes.append("Other processes used %.0f %% of the CPUs just before the run "
                              "(load average %.2f): the throughput figures are lower than on a "
                              "quiet machine, and the rows say how busy it was during each "
                              "scenario." % (self.info["busy_before"] * 100, load1))
        self.certs = make_certs(self.workdir)
        ecdsa, rsa = self.certs["ecdsa"], self.certs["rsa"]
        ca = self.certs["ca"]
        if args.only == "callgrind":
            # the instruction counts alone: independent of other processes, so valid on a
            # busy machine (each server runs under callgrind, which counts, not times)
            self.scenario("callgrind", self.callgrind)
            self.info["load_end"] = os.getloadavg()
            return

        # startup, idle memory, correctness of the two bodies
        srv = None
        try:
            srv = Server(self.binary, self.workdir, ecdsa[0], ecdsa[1], ca, "ecdsa")
        except Exception as e:  # noqa: BLE001
            self.fail("serve start", e)
        if srv:
            try:
                self.run_with_server(srv)
            finally:
                rc = srv.stop()
                if rc != 0:
                    self.fail("serve exit after SIGTERM", ScenarioError("status %s" % rc))
        self.scenario("new connection per request, RSA-2048", lambda: self.handshakes_rsa(rsa, ca))
        self.scenario("callgrind", self.callgrind)
        self.scenario("100,000 ServiceAccounts", self.sa_scale)
        self.scenario("image size", self.image_size)
        self.info["load_end"] = os.getloadavg()

    def run_with_server(self, srv):
        ecdsa = self.certs["ecdsa"]
        self.row("start → first answer (/readyz 200 over TLS, files source)",
                 "%.0f ms" % (srv.ready_s * 1000), "— (AWS: 71 ms)")
        time.sleep(0.5)
        rss_idle = proc_status(srv.pid, "VmRSS")
        self.raw["rss_idle"] = rss_idle
        idle_detail = memory_text(srv.pid)
        if self.artifacts:
            with open(os.path.join(self.artifacts, "rss-idle-by-mapping.txt"), "w") as f:
                for k, v in sorted(rss_by_mapping(srv.pid).items(), key=lambda kv: -kv[1]):
                    f.write("%8d kB  %s\n" % (v // 1024, k))
        breakdown = rss_breakdown(srv.pid)
        curl_only = only_needed_by(self.binary, "libcurl")
        self.scenario("check answers", lambda: self.check_answers(srv))
        self.row("resident memory idle (VmRSS after start, files source)",
                 "%.1f MB: %s" % (rss_idle / MB, idle_detail), "≤ 8 MB", rss_idle <= 8 * MB)
        self.row("… idle, by library (smaps Rss)", self.breakdown_text(breakdown, curl_only),
                 "—")
        if self.artifacts:
            with open(os.path.join(self.artifacts, "rss-idle-by-library.txt"), "w") as f:
                for k, v in breakdown:
                    f.write("%8d kB  %s%s\n" % (v // 1024, k,
                                                 "  (only for libcurl)" if k in curl_only
                                                 else ""))

        nginx = None
        try:
            # the fair ceiling: nginx answers our exact answer to the matching pod, so
            # that wrk reads and decrypts as many bytes from both
            nginx = Nginx(self.workdir, ecdsa[0], ecdsa[1],
                          body=self.raw.get("answer_match"))
            status, out, _ = https_request(nginx.port, srv.ctx, "POST", "/mutate",
                                           open(BODY_MATCH, "rb").read())
            if status != 200 or out != nginx.body:
                raise ScenarioError("nginx answered %s, %d bytes, not the %d bytes asked"
                                    % (status, len(out), len(nginx.body)))
            self.raw["nginx_answer_bytes"] = len(out)
        except Exception as e:  # noqa: BLE001
            self.fail("nginx start", e)
            if nginx:
                nginx.stop()
                nginx = None

        ours, ceiling = [], []

        def keepalive_pair():
            # ours and the ceiling, alternated, so that both see the same machine
            for i in range(self.repeat):
                ours.append(measured_wrk(lambda: [srv.pid], srv.pid, srv.url, BODY_MATCH, 2,
                                         64, self.dur))
                if nginx:
                    ceiling.append(measured_wrk(nginx.pids, None, nginx.url, BODY_MATCH, 2,
                                                64, self.dur))
        self.scenario("keep-alive, 64 connections", keepalive_pair)
        if ceiling:
            self.report_ceiling(ceiling)
        if ours:
            self.report_keepalive(ours, ceiling, srv)
        self.raw["keepalive"] = ours
        self.raw["nginx"] = ceiling

        def nomatch():
            runs = [measured_wrk(lambda: [srv.pid], None, srv.url, BODY_NOMATCH, 2, 64, self.dur)
                    for _ in range(self.repeat)]
            self.raw["nomatch"] = runs
            r = median_run(runs)
            self.row("keep-alive, 64 connections, pod matching no profile (not patched)",
                     "%s/s; p50 %s, p99 %s, p99.9 %s; %.1f µs CPU/admission%s"
                     % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
                        r["cpu_us"], errs(r) + spread(runs)), "—")
        self.scenario("keep-alive, no match", nomatch)

        def one_conn():
            r = measured_wrk(lambda: [srv.pid], None, srv.url, BODY_MATCH, 1, 1, self.dur)
            self.raw["one_conn"] = r
            self.row("keep-alive, 1 connection, matching pod",
                     "%s/s; p50 %s, p99 %s, p99.9 %s%s"
                     % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
                        errs(r)), "— (AWS: 3,000/s, p50 0.30 ms)")
        self.scenario("keep-alive, 1 connection", one_conn)

        def paced():
            r = measured_wrk(lambda: [srv.pid], None, srv.url, BODY_MATCH, 2, 16,
                             max(self.dur, 2), extra_args=["rate=2000"])
            self.raw["paced"] = r
            self.row("fixed rate 2,000/s, 16 connections, matching pod",
                     "%s/s achieved; p50 %s, p99 %s, p99.9 %s, max %s; %.1f µs CPU/admission%s"
                     % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
                        ms(r["max_us"]), r["cpu_us"], errs(r)),
                     "p99 ≤ 2 ms", r["p99_us"] <= 2000 and r["errors"] == 0)
        self.scenario("fixed rate 2,000/s", paced)

        def handshakes():
            r = measured_wrk(lambda: [srv.pid], None, srv.url, BODY_MATCH, 2, 16, self.dur,
                             headers=["Connection: close"])
            self.raw["close_ecdsa"] = r
            goal_ok = r["rps"] >= 1500 and r["errors"] == 0
            text = ("%s handshakes/s (one admission each); p50 %s, p99 %s; %.0f µs server "
                    "CPU/connection%s" % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]),
                                         r["cpu_us"], errs(r)))
            if nginx:
                n = measured_wrk(nginx.pids, None, nginx.url, BODY_MATCH, 2, 16, self.dur,
                                 headers=["Connection: close"])
                self.raw["close_nginx"] = n
                text += "; nginx: %s/s (%.0f µs CPU/connection)" % (fmt_int(n["rps"]),
                                                                  n["cpu_us"])
            self.row("new TLS connection per request, ECDSA P-256, 16 connections", text,
                     "≥ 1,500/s", goal_ok)
        self.scenario("new connection per request, ECDSA", handshakes)
        self.scenario("stalled handshake", lambda: self.stalled_handshake(srv))
        if nginx:
            nginx.stop()
        if self.args.profile:
            self.scenario("perf profile", lambda: self.perf_profile(srv))

    def stalled_handshake(self, srv):
        """Server CPU while one TLS 1.3 client has its handshake in flight: the client reads
        the server's whole flight, then holds its Finished for a while (what a network round
        trip, or a slow or hostile client, looks like to the server). A server waiting in
        epoll uses no CPU meanwhile."""
        hold = 1.0 if self.quick else 2.0
        ctx = ssl.create_default_context(cafile=srv.ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            while True:
                try:
                    tls.do_handshake()
                    break  # done on the client's side: its Finished waits in `out`
                except ssl.SSLWantReadError:
                    pending = out.read()
                    if pending:
                        sock.sendall(pending)
                    data = sock.recv(65536)
                    if not data:
                        raise ScenarioError("the server closed the connection mid-handshake")
                    inc.write(data)
            held = out.read()
            u0, s0 = proc_cpu(srv.pid)
            time.sleep(hold)
            u1, s1 = proc_cpu(srv.pid)
            sock.sendall(held)
        busy = (u1 - u0 + s1 - s0) / hold
        self.raw["stalled_handshake"] = busy
        self.row("one TLS 1.3 client holding its Finished for %.0f s (after the server's "
                 "whole flight)" % hold, "server CPU %.0f %% of one CPU meanwhile" % (busy * 100),
                 "— (waiting needs ~0 %)")

    def breakdown_text(self, breakdown, curl_only):
        """libc, libgnutls, libcurl (with what only it loads), libmicrohttpd, ld.so, heap,
        stacks, then the rest grouped; and what the process is without libcurl's share."""
        d = dict(breakdown)
        kb = lambda v: "%s kB" % fmt_int(v // 1024)  # noqa: E731
        total = sum(d.values())
        curl = sum(v for k, v in d.items() if k in curl_only)
        named = ["libc", "libgnutls", "libmicrohttpd", "ld.so", "heap", "stacks",
                 "other anonymous", os.path.basename(self.binary)]
        parts = ["%s %s" % (k, kb(d[k])) for k in named if k in d]
        parts.insert(2, "libcurl-gnutls %s + the %d libraries only it loads %s (libcrypto %s)"
                     % (kb(d.get("libcurl-gnutls", 0)), len(curl_only) - 1,
                        kb(curl - d.get("libcurl-gnutls", 0)), kb(d.get("libcrypto", 0))))
        rest = {k: v for k, v in d.items() if k not in named and k not in curl_only}
        top = sorted(rest.items(), key=lambda kv: -kv[1])[:5]
        parts.append("other libraries %s (%s)" % (kb(sum(rest.values())), ", ".join(
            "%s %s" % (k, kb(v)) for k, v in top)))
        return "%s; total %s; without libcurl's share %s" % (
            "; ".join(parts), kb(total), kb(total - curl))

    def check_answers(self, srv):
        for body, want_patch in ((BODY_MATCH, True), (BODY_NOMATCH, False)):
            with open(body, "rb") as f:
                data = f.read()
            status, out, tls = https_request(srv.port, srv.ctx, "POST", "/mutate", data)
            resp = json.loads(out)["response"]
            if status != 200 or not resp.get("allowed") or ("patch" in resp) != want_patch:
                raise ScenarioError("unexpected answer to %s: %s %s"
                                    % (os.path.basename(body), status, out[:300]))
            if want_patch:
                self.raw["response_bytes_match"] = len(out)
                self.raw["answer_match"] = out  # what the fair ceiling answers
            else:
                self.raw["response_bytes_nomatch"] = len(out)
            self.raw["tls"] = tls

    def report_ceiling(self, runs):
        r = median_run(runs)
        self.row("TLS + HTTP ceiling: nginx `return 200` with our exact answer (%s bytes of "
                 "application/json), keep-alive, 64 connections, same request"
                 % fmt_int(self.raw.get("nginx_answer_bytes", 0)),
                 "%s/s; p50 %s, p99 %s, p99.9 %s; CPU per request: nginx %.1f µs, wrk %.1f µs%s"
                 % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
                    r["cpu_us"], r["wrk_us"], errs(r) + spread(runs)), "— (the physical limit)")

    def report_keepalive(self, runs, ceiling, srv):
        r = median_run(runs)
        self.row("keep-alive, 64 connections, matching pod (patched)",
                 "%s admissions/s; p50 %s, p99 %s, p99.9 %s%s"
                 % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), ms(r["p999_us"]),
                    errs(r) + spread(runs)), "≥ 25,000/s",
                 r["rps"] >= 25000 and r["errors"] == 0)
        if ceiling:
            # the share is taken pairwise (each run of ours with the nginx run next to it)
            shares = [o["rps"] / c["rps"] for o, c in zip(runs, ceiling) if c["rps"] > 0]
            share = statistics.median(shares)
            self.row("… as a share of the nginx ceiling measured in the same run",
                     "%.0f %%%s" % (share * 100, (" (runs: %s)" % ", ".join(
                         "%.0f %%" % (s * 100) for s in shares)) if len(shares) > 1 else ""),
                     "≥ 70 %", share >= 0.70)
        self.row("server CPU per admission (keep-alive, matching; /proc/PID/stat)",
                 "%.1f µs (user %.1f, system %.1f); server at %.0f %% of one CPU; wrk %.1f µs "
                 "per request" % (r["cpu_us"], r["cpu_user_us"], r["cpu_sys_us"],
                                  r["cpu_util"] * 100, r["wrk_us"]),
                 "≤ 60 µs", r["cpu_us"] <= 60)
        peak = max(x.get("rss_peak", 0) for x in runs)
        hwm = proc_status(srv.pid, "VmHWM")
        after = proc_status(srv.pid, "VmRSS")
        self.raw.update(rss_peak=peak, rss_hwm=hwm, rss_after=after)
        worst = max(peak, hwm or 0)
        self.row("resident memory under the keep-alive load (peak VmRSS; VmHWM)",
                 "%.1f MB (VmHWM %.1f MB); after the load %.1f MB: %s"
                 % (peak / MB, (hwm or 0) / MB, (after or 0) / MB, memory_text(srv.pid)),
                 "≤ 32 MB", worst <= 32 * MB)

    def handshakes_rsa(self, rsa, ca):
        srv = Server(self.binary, self.workdir, rsa[0], rsa[1], ca, "rsa")
        try:
            r = measured_wrk(lambda: [srv.pid], None, srv.url, BODY_MATCH, 2, 16, self.dur,
                             headers=["Connection: close"])
        finally:
            srv.stop()
        self.raw["close_rsa"] = r
        self.row("new TLS connection per request, RSA-2048, 16 connections",
                 "%s handshakes/s; p50 %s, p99 %s; %.0f µs server CPU/connection%s"
                 % (fmt_int(r["rps"]), ms(r["p50_us"]), ms(r["p99_us"]), r["cpu_us"], errs(r)),
                 "—")

    def perf_profile(self, srv):
        """perf record -g on the server during an extra keep-alive run and an extra
        new-connection run (--profile); reports in the artifacts dir (or the temp dir)."""
        out_dir = self.artifacts or self.workdir
        for tag, headers in (("keepalive", ()), ("handshake", ["Connection: close"])):
            data = os.path.join(out_dir, "perf-%s.data" % tag)
            perf = subprocess.Popen(["perf", "record", "-F", "2000", "-g", "-p", str(srv.pid),
                                     "-o", data, "--", "sleep", str(self.dur + 1)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            wrk(srv.url, BODY_MATCH, 2, 64 if not headers else 16, self.dur, headers=headers)
            perf.wait()
            for name, opts in (("self", ["--no-children", "-g", "none"]),
                               ("children", ["--children", "-g", "none"]),
                               ("dso", ["--sort", "dso", "-g", "none"]),
                               ("callers", ["--no-children", "-g", "caller,0.5,callee,function",
                                            "--percent-limit", "2"])):
                with open(os.path.join(out_dir, "perf-%s-%s.txt" % (tag, name)), "w") as f:
                    subprocess.run(["perf", "report", "-i", data, "--stdio",
                                    "--percent-limit", "0.3"] + opts, stdout=f,
                                   stderr=subprocess.DEVNULL)
        self.notes.append("perf profiles (perf record -F 2000 -g -p PID, an extra run each): "
                          "%s/perf-{keepalive,handshake}-{self,children,dso,callers}.txt"
                          % out_dir)

    def callgrind(self):
        """Instructions per admission: two servers under callgrind (--threads 1), each
        answering one wrk connection (-t1 -c1) that stops after a fixed count; the baseline
        answers `warm` requests, the measured one warm + n. (I_measured - I_baseline) / n is
        the cost of n admissions: startup, the TLS handshake, the first requests' allocations
        and the idle timers cancel out."""
        if harness.sanitized(self.binary):
            self.row("CPU cost per admission (callgrind)", "skipped: the binary is built with "
                     "AddressSanitizer, which valgrind cannot run", "—")
            return
        warm = 20
        n = 100 if self.args.smoke else 300 if self.quick else 2000
        ecdsa, ca = self.certs["ecdsa"], self.certs["ca"]
        out_dir = self.artifacts or self.workdir
        results = {}
        errors = []

        def one(tag, count, body):
            out = os.path.join(out_dir, "callgrind.out.%s" % tag)
            try:
                srv = Server(self.binary, self.workdir, ecdsa[0], ecdsa[1], ca, "cg-" + tag,
                             wrapper=["valgrind", "--tool=callgrind",
                                      "--callgrind-out-file=" + out],
                             extra=["--threads", "1"], ready_timeout=120)
                try:
                    r = wrk(srv.url, body, 1, 1, 600, count=count, timeout_s="30s")
                finally:
                    rc = srv.stop(timeout=120)
                if rc != 0:
                    raise ScenarioError("serve under callgrind exited with %s" % rc)
                if r["requests"] != count or r["errors"]:
                    raise ScenarioError("callgrind %s: %d requests, %d errors (wanted %d)"
                                        % (tag, r["requests"], r["errors"], count))
                results[tag] = callgrind_total(out)
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        jobs = [("base", warm, BODY_MATCH), ("match", warm + n, BODY_MATCH)]
        if not self.args.smoke:
            jobs += [("nomatch", warm + n, BODY_NOMATCH)]
        threads = [threading.Thread(target=one, args=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        per = (results["match"] - results["base"]) / n
        self.raw["instructions"] = per
        text = "%s instructions/admission (matching)" % fmt_int(per)
        if "nomatch" in results:
            # the baseline's `warm` requests were matching ones, this run's are no-match:
            # I_nomatch - I_base = (warm + n) * per_nm - warm * per, solved for per_nm
            per_nm = (results["nomatch"] - results["base"] + warm * per) / (warm + n)
            self.raw["instructions_nomatch"] = per_nm
            text += ", %s (no match)" % fmt_int(per_nm)
        text += "; %d requests, minus a %d-request baseline" % (n, warm)
        self.row("CPU cost per admission (callgrind, --threads 1, 1 keep-alive connection)",
                 text, "—")
        if self.artifacts:
            diff = callgrind_diff(os.path.join(out_dir, "callgrind.out.match"),
                                  os.path.join(out_dir, "callgrind.out.base"), n)
            with open(os.path.join(self.artifacts, "callgrind-per-admission.txt"), "w") as f:
                f.write("instructions per admission by function (self cost; matching pod;\n"
                        "callgrind.out.match minus callgrind.out.base, divided by %d)\n\n" % n)
                f.write(diff)
            with open(os.path.join(self.artifacts, "callgrind-match.txt"), "w") as f:
                subprocess.run(["callgrind_annotate", "--inclusive=no",
                                os.path.join(out_dir, "callgrind.out.match")], stdout=f,
                               stderr=subprocess.DEVNULL)
            with open(os.path.join(self.artifacts, "callgrind-match-inclusive.txt"), "w") as f:
                subprocess.run(["callgrind_annotate", "--inclusive=yes",
                                os.path.join(out_dir, "callgrind.out.match")], stdout=f,
                               stderr=subprocess.DEVNULL)

    def sa_scale(self):
        script = os.path.join(BENCH, "sa_scale.py")
        if not os.path.exists(script):
            self.row("100,000 ServiceAccounts in the cache", "skipped: bench/sa_scale.py is "
                     "missing", "≤ 12 MB more; ready ≤ 2 s after the list")
            return
        count, annotated, admissions = ((2000, 20, 20) if self.args.smoke else
                                        (10000, 100, 50) if self.quick else (100000, 1000, 300))
        cmd = ["/usr/bin/python3", script, self.binary, "--count", str(count), "--annotated",
               str(annotated), "--runs", "1", "--admissions", str(admissions)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        self.raw["sa_scale_output"] = p.stdout
        self.raw["sa_scale_cmd"] = shlex.join(cmd)
        if p.returncode != 0:
            raise ScenarioError("sa_scale.py exited %d: %s" % (p.returncode,
                                                               p.stderr.strip()[-300:]))
        table = parse_md_table(p.stdout)

        def cells(prefix):
            for label, vals in table.items():
                if label.startswith(prefix):
                    return vals
            raise ScenarioError("sa_scale.py: no row '%s'" % prefix)

        ready_empty, ready_full = (parse_mib(v) for v in cells("VmRSS ready"))
        hwm_empty, hwm_full = (parse_mib(v) for v in cells("VmHWM"))
        before_empty, _ = (parse_mib(v) for v in cells("VmRSS before"))
        _, list_to_ready = (parse_seconds(v) for v in cells("first list request"))
        _, listed = (parse_seconds(v) for v in cells("list duration"))
        label = "{:,} ServiceAccounts ({:,} annotated)".format(count, annotated)
        delta = ready_full - ready_empty
        self.raw["sa_scale"] = dict(ready_empty=ready_empty, ready_full=ready_full,
                                    hwm_empty=hwm_empty, hwm_full=hwm_full,
                                    list_to_ready=list_to_ready, listed=listed)
        self.row("resident memory idle, Kubernetes API source (sa_scale.py: empty cluster, "
                 "listed and watching, no request yet)",
                 "%.1f MB (%.1f MB before the first list request)"
                 % (ready_empty / MB, before_empty / MB), "≤ 8 MB", ready_empty <= 8 * MB)
        self.row("resident memory with %s in the cache (sa_scale.py)" % label,
                 "%.1f MB ready (+%.1f MB over an empty cluster); VmHWM %.1f MB (+%.1f MB)"
                 % (ready_full / MB, delta / MB, hwm_full / MB, (hwm_full - hwm_empty) / MB),
                 "≤ 12 MB more", delta <= 12 * MB and hwm_full - hwm_empty <= 12 * MB)
        # first list request -> ready includes the list itself, so it bounds "after the list
        # returns" from above; past 2 s, the list's own duration (as logged) is taken off
        after_list = list_to_ready if listed is None else min(list_to_ready,
                                                              max(0.0, list_to_ready - listed))
        self.row("time to ready with %s (sa_scale.py)" % label,
                 "%.2f s from the first list request to /readyz 200, the list included (the "
                 "webhook logs the list as %.2f s)" % (list_to_ready, listed or 0),
                 "ready ≤ 2 s after the list returns", after_list <= 2.0)
        if self.quick:
            self.notes.append("--quick: the ServiceAccount scale check used %s, not "
                              "100,000." % label)

    def image_size(self):
        binary_size = os.path.getsize(self.binary)
        p = subprocess.run([os.path.join(TOP, "tests", "chart", "image_contents.sh"),
                            self.binary], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            raise ScenarioError("image_contents.sh: %s" % p.stderr.strip()[-300:])
        stripped = total = gz = files = None
        for line in p.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1] == "/pod-identity-webhook":
                stripped = int(parts[0])
            elif len(parts) >= 2 and parts[1] == "total":
                total = int(parts[0])
                files = re.search(r"\((\d+) files\)", line).group(1)
            elif "tar.gz" in line:
                gz = int(parts[0])
        self.raw["image"] = p.stdout
        self.row("binary (Release, stripped as in the image)",
                 "%s bytes (%s unstripped)" % (fmt_int(stripped), fmt_int(binary_size)),
                 "— (AWS: 48 MB)")
        self.row("image contents: binary + shared libraries + loader (image_contents.sh)",
                 "%.1f MB (%s files); %.1f MB as tar.gz" % (total / MB, files, gz / MB),
                 "≤ 20 MB", total <= 20 * MB)

    # -- output
    def report(self):
        i = self.info
        lines = []
        lines.append("Machine: %d CPUs (nproc; %d usable), %s, %d MiB RAM, Linux %s; load "
                     "average %.2f / %.2f / %.2f at the start (other processes: %.0f %% of "
                     "the CPUs over the 3 s before), %.2f at the end."
                     % (i["nproc"], i["affinity"], i["cpu"], i["mem_mib"], i["kernel"],
                        *i["load"], i["busy_before"] * 100,
                        i.get("load_end", (float("nan"),))[0]))
        tls = self.raw.get("tls")
        lines.append("Date: %s. Sources: %s. Tools: %s%s." % (
            i["date"], i["git"], i["tools"],
            ("; client ↔ server: %s %s" % tls) if tls and tls[0] else ""))
        lines.append("Command: `%s` (%s s per scenario%s)."
                     % (self.args.command, self.dur,
                        ", ours and nginx alternated %d times, median" % self.repeat
                        if self.repeat > 1 else ""))
        lines.append("")
        lines.append("| scenario | result | goal | met? |")
        lines.append("|---|---|---|---|")
        for r in self.rows:
            lines.append("| %s | %s | %s | %s |" % tuple(c.replace("|", "\\|") for c in r))
        lines.append("")
        body = self.raw.get("response_bytes_match")
        lines.append("Requests: bench/data/admissionreview-deployment.json (%d bytes; answer %s "
                     "bytes with the JSON Patch for the stackit and aws profiles) and "
                     "admissionreview-deployment-nomatch.json (answer %s bytes). wrk with "
                     "`-t2` (`-t1` for 1 connection), `--latency`, bench/lua/post.lua; latency "
                     "is measured by wrk from sending the request to the whole answer."
                     % (os.path.getsize(BODY_MATCH), body or "?",
                        self.raw.get("response_bytes_nomatch", "?")))
        for n in self.notes:
            lines.append("")
            lines.append("Note: " + n)
        if self.raw.get("sa_scale_output") and not self.quick:
            lines.append("")
            lines.append("bench/sa_scale.py (`%s`):" % self.raw["sa_scale_cmd"])
            lines.append("")
            lines.append(self.raw["sa_scale_output"].strip())
        if self.failures:
            lines.append("")
            lines.append("FAILED: " + "; ".join("%s: %s" % f for f in self.failures))
        return "\n".join(lines) + "\n"

    def cleanup(self):
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log("kept %s" % self.workdir)


# --------------------------------------------------------------------------------------
# formatting and parsing


def median_run(runs):
    """The run with the median requests/s (its own percentiles go with it)."""
    s = sorted(runs, key=lambda r: r["rps"])
    return s[(len(s) - 1) // 2]


def spread(runs):
    if len(runs) < 2:
        return ""
    return " (runs: %s/s)" % ", ".join(fmt_int(r["rps"]) for r in runs)


def errs(r):
    return busy(r) + _errs(r)


def busy(r):
    f = r.get("foreign", 0)
    return "" if f < 0.05 else "; other processes used %.0f %% of the CPUs" % (f * 100)


def _errs(r):
    return "" if not r["errors"] else "; **%d errors** (status %d, timeout %d, connect %d, " \
        "read %d, write %d)" % (r["errors"], r["errors_status"], r["errors_timeout"],
                                r["errors_connect"], r["errors_read"], r["errors_write"])


def fmt_int(v):
    return "?" if v is None else "{:,.0f}".format(v)


def ms(us):
    return "%.2f ms" % (us / 1000) if us < 10000 else "%.1f ms" % (us / 1000)


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise ScenarioError("no totals in %s" % path)


def annotate_self(path, inclusive=False):
    """{function: self (or inclusive) Ir} from callgrind_annotate (no threshold)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=%s" % ("yes" if inclusive else "no"),
                          "--threshold=100", path], capture_output=True, text=True).stdout
    costs = {}
    for line in out.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+\([\s\d.]+%\)\s+(.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            raw = m.group(2).strip()
            if inclusive and re.search(r"'\d+ ", raw):
                continue  # a recursion cycle's inner entry: counted in its outer one
            name = re.sub(r"'\d+ ", " ", raw)  # cycle suffixes
            name = re.sub(r"^\./[^:]*:|^\?\?\?:", "", name)  # glibc source paths, ???:
            if inclusive:
                costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
            else:
                costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def callgrind_diff(measured, baseline, n, top=40):
    """Instructions per request by function, self and inclusive: (measured - baseline) / n."""
    out = []
    for inclusive in (False, True):
        a, b = annotate_self(measured, inclusive), annotate_self(baseline, inclusive)
        diff = {k: (a.get(k, 0) - b.get(k, 0)) / n for k in set(a) | set(b)}
        total = sum(diff.values()) if not inclusive else max(diff.values())
        out.append("%s cost\n%10s  %5s  %s" % ("inclusive" if inclusive else "self",
                                              "Ir/adm.", "%", "function [object]"))
        for k, v in sorted(diff.items(), key=lambda kv: -kv[1])[:top]:
            out.append("%10.0f  %5.1f  %s" % (v, 100 * v / total if total else 0, k))
        if not inclusive:
            out.append("%10.0f  100.0  total" % total)
        out.append("")
    return "\n".join(out)


def parse_md_table(text):
    rows = {}
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 3:
                rows[cells[0]] = cells[1:]
    return rows


def parse_mib(cell):
    m = re.match(r"([\d.]+) MiB", cell)
    if not m:
        raise ScenarioError("sa_scale.py: not a MiB figure: %r" % cell)
    return float(m.group(1)) * 1048576


def parse_seconds(cell):
    m = re.match(r"([\d.]+) (s|ms)\b", cell)
    if not m:
        return None
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--quick", action="store_true", help="~2 s per scenario (< 60 s in all)")
    ap.add_argument("--smoke", action="store_true",
                    help="check that every scenario runs and produces numbers (implies --quick)")
    ap.add_argument("--out", help="also write the report to FILE")
    ap.add_argument("--duration", type=int, help="seconds per scenario")
    ap.add_argument("--repeat", type=int, help="alternated keep-alive runs of ours and nginx")
    ap.add_argument("--artifacts", help="keep callgrind outputs and annotations (and the perf "
                    "profile with --profile) in DIR")
    ap.add_argument("--profile", action="store_true",
                    help="perf record -g the server during an extra keep-alive run")
    ap.add_argument("--wait-quiet", type=int, metavar="SECONDS",
                    help="first wait (at most SECONDS) for the machine to be < 10 %% busy")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--only", choices=["callgrind"],
                    help="run only this scenario (callgrind: the instruction counts per "
                    "admission, which do not depend on the machine's load)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--command", default="bench/run.sh")
    ap.add_argument("--sources", help="what the binary was built from (set by run.sh)")
    args = ap.parse_args()
    if args.smoke:
        args.quick = True
    for tool in ("wrk", "nginx", "valgrind", "openssl", "callgrind_annotate"):
        if not shutil.which(tool):
            sys.stderr.write("bench: %s not found: run scripts/install-deps.sh\n" % tool)
            return 2
    b = Bench(args)
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        b.run()
    finally:
        stop_all()
        b.cleanup()
    text = b.report()
    text += "\nTotal time: %.0f s.\n" % (time.monotonic() - t0)
    sys.stdout.write("\n" + text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
