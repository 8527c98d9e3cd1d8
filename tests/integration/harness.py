"""Harness for the integration tests of `pod-identity-webhook serve`.

It starts the real binary on 127.0.0.1 with throwaway certificates and talks to it over
TLS. Pieces:

- configure(): where the binary and the repository are (argv, PIW_TEST_BINARY,
  PIW_TEST_TOP), the optional wrapper (PIW_TEST_WRAPPER, e.g. valgrind) and the time factor
  every timeout is multiplied by (PIW_TEST_TIME_FACTOR; 10 under valgrind).
- CertFactory: a CA and server certificates made with the `openssl` CLI (RSA-2048 or
  ECDSA P-256, SAN 127.0.0.1 and localhost, optionally behind an intermediate CA or with
  the traditional PKCS#1/SEC1 key encoding) and deliberately mismatched pairs.
- Server: one `serve` subprocess (free ports, stderr to a file, wait for /readyz, SIGTERM
  and exit status, log access) with request helpers.
- Raw helpers for slow or partial requests: tls_connect(), read_response().
- ServerTestCase: a unittest base class that gives each test a temp dir, stops every
  server it started (even on failure) and prints their stderr when the test fails.
- Fixtures: Pods, ServiceAccounts and AdmissionReviews.

Everything here uses Debian's /usr/bin/python3 standard library (plus nothing else).
"""
import atexit
import base64
import hashlib
import http.client
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HOST = "127.0.0.1"
DEFAULT_MAX_BODY = 1048576


class Config:
    """Paths and knobs shared by every test (set once by configure())."""
    top = None
    binary = None
    wrapper = []
    factor = 1.0
    profiles_dir = None


def configure(binary=None):
    """Resolves the binary (argument, PIW_TEST_BINARY, else TOP/build/...) and the repo root
    (PIW_TEST_TOP, else two levels above this file)."""
    here = os.path.dirname(os.path.abspath(__file__))
    Config.top = os.path.abspath(os.environ.get("PIW_TEST_TOP")
                                 or os.path.join(here, "..", ".."))
    Config.binary = os.path.abspath(binary or os.environ.get("PIW_TEST_BINARY")
                                    or os.path.join(Config.top, "build", "pod-identity-webhook"))
    Config.wrapper = shlex.split(os.environ.get("PIW_TEST_WRAPPER", ""))
    default_factor = 10.0 if any("valgrind" in w for w in Config.wrapper) else 1.0
    Config.factor = float(os.environ.get("PIW_TEST_TIME_FACTOR") or default_factor)
    Config.profiles_dir = os.path.join(Config.top, "profiles")
    if not os.access(Config.binary, os.X_OK):
        raise SystemExit("pod-identity-webhook binary not found or not executable: %s"
                         % Config.binary)


def scaled(seconds):
    """A timeout, stretched for slow builds (valgrind, ASan) by PIW_TEST_TIME_FACTOR."""
    return seconds * Config.factor


# How late something the server does at a configured time (a cut connection, the end of
# a drain) may come on a slow or busy machine before a test calls it missed. Generous on
# purpose: the margin only bounds how long a failing test waits, a passing one never waits
# for it. No test asserts how fast the server is (bench/ measures that).
SLACK = 20.0


def late(seconds):
    """The latest acceptable moment for an event the server schedules `seconds` in: twice
    that plus SLACK, stretched by the time factor."""
    return scaled(2 * seconds + SLACK)


# The --reload-interval every test server gets (seconds).
RELOAD_INTERVAL = 0.2

# How long to wait for an answer that should come at once: a read timeout, not a bound
# on speed (a passing test never waits for it).
PATIENCE = 30.0


def under_valgrind():
    return any("valgrind" in w for w in Config.wrapper)


def sanitized(binary):
    """True for an AddressSanitizer build (valgrind cannot run it, and its allocator
    is not glibc's)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    if "libasan" in out:
        return True
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def wait_until(predicate, timeout, interval=0.05):
    """Polls predicate() until it returns a true value (returned) or timeout seconds pass
    (returns the last false value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def free_port():
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """Our environment without PIW_* variables (they would configure the server), plus
    extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------
# Certificates


def fingerprint_pem(pem):
    """SHA-256 of the DER of the first certificate in a PEM text."""
    start = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", start) + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem[start:end])).hexdigest()


class Pair:
    """A certificate chain and a private key, as PEM bytes and as files."""

    def __init__(self, cert_path, key_path, kind):
        self.cert_path, self.key_path, self.kind = cert_path, key_path, kind
        with open(cert_path, "rb") as f:
            self.cert_pem = f.read()
        with open(key_path, "rb") as f:
            self.key_pem = f.read()
        self.fingerprint = fingerprint_pem(self.cert_pem.decode())

    def __repr__(self):
        return "Pair(%s, %s)" % (self.kind, self.fingerprint[:12])


class CertFactory:
    """A throwaway PKI in a directory, made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = directory
        self._n = 0
        self._lock = threading.Lock()
        self.ca_key = self._new_key("ca", "rsa")
        self.ca_cert = os.path.join(directory, "ca.crt")
        self._openssl("req", "-x509", "-new", "-key", self.ca_key, "-subj", "/CN=piw test CA",
                      "-days", "3", "-sha256", "-out", self.ca_cert,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def _name(self, prefix):
        with self._lock:
            self._n += 1
            return os.path.join(self.dir, "%s-%d" % (prefix, self._n))

    def _openssl(self, *args):
        p = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()))
        return p.stdout

    def _new_key(self, prefix, kind, traditional=False):
        path = self._name(prefix) + ".key"
        if kind == "rsa":
            self._openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                          "-out", path)
        elif kind == "ecdsa":
            self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                          "ec_paramgen_curve:P-256", "-out", path)
        else:
            raise ValueError(kind)
        if traditional:  # PKCS#1 "RSA PRIVATE KEY" / SEC1 "EC PRIVATE KEY", cert-manager's
            self._openssl("pkey", "-in", path, "-traditional", "-out", path + ".trad")
            os.replace(path + ".trad", path)
        return path

    def _sign(self, csr_key, subject, extensions, issuer_cert, issuer_key):
        base = self._name("crt")
        csr, ext, crt = base + ".csr", base + ".ext", base + ".crt"
        self._openssl("req", "-new", "-key", csr_key, "-subj", subject, "-out", csr)
        with open(ext, "w") as f:
            f.write("\n".join(extensions) + "\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", issuer_cert, "-CAkey", issuer_key,
                      "-set_serial", "0x" + uuid.uuid4().hex, "-days", "2", "-sha256",
                      "-extfile", ext, "-out", crt)
        return crt

    def pair(self, kind="rsa", traditional_key=False, intermediate=False):
        """A new server certificate (SAN IP:127.0.0.1, DNS:localhost) signed by the CA,
        or by a fresh intermediate CA whose certificate then follows the leaf in the
        chain file."""
        issuer_cert, issuer_key = self.ca_cert, self.ca_key
        chain_tail = b""
        if intermediate:
            issuer_key = self._new_key("int", "rsa")
            issuer_cert = self._sign(issuer_key, "/CN=piw test intermediate", [
                "basicConstraints=critical,CA:TRUE,pathlen:0",
                "keyUsage=critical,keyCertSign,cRLSign"], self.ca_cert, self.ca_key)
            with open(issuer_cert, "rb") as f:
                chain_tail = f.read()
        key = self._new_key("server", kind, traditional_key)
        usage = "digitalSignature,keyEncipherment" if kind == "rsa" else "digitalSignature"
        crt = self._sign(key, "/CN=localhost", [
            "basicConstraints=critical,CA:FALSE", "keyUsage=critical," + usage,
            "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            issuer_cert, issuer_key)
        if chain_tail:
            with open(crt, "ab") as f:
                f.write(chain_tail)
        return Pair(crt, key, kind)

    def mismatched(self, kind="rsa"):
        """A certificate with the private key of another certificate."""
        a, b = self.pair(kind), self.pair(kind)
        return Pair(a.cert_path, b.key_path, kind + "-mismatched")

    def not_after(self, pair):
        """The certificate's notAfter, seconds since the epoch."""
        out = self._openssl("x509", "-in", pair.cert_path, "-noout", "-enddate").decode()
        return ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])


_certs = None
_certs_lock = threading.Lock()


def certs():
    """The CertFactory of this test run (made on first use, removed at exit)."""
    global _certs
    with _certs_lock:
        return _certs or _make_certs()


def _make_certs():
    global _certs
    if _certs is None:
        d = tempfile.mkdtemp(prefix="piw-it-certs-")
        atexit.register(shutil.rmtree, d, True)
        _certs = CertFactory(d)
        _certs.default_rsa = _certs.pair("rsa")
    return _certs


def write_atomic(path, data):
    """Writes a file as a temp file plus rename (readers see the old or the new file)."""
    tmp = "%s.tmp-%s" % (path, uuid.uuid4().hex[:8])
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class KubeletCertDir:
    """A certificate directory laid out like a mounted Secret: tls.crt and tls.key are
    symlinks into ..data, itself a symlink to a timestamped directory; an update writes a
    new directory and renames a new ..data symlink over the old one (kubelet's
    AtomicWriter, how cert-manager's renewals reach the pod), so both files change in one
    step."""

    def __init__(self, directory, pair):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, "tls.crt")
        self.key = os.path.join(directory, "tls.key")
        self._version = 0
        self.install(pair)
        os.symlink(os.path.join("..data", "tls.crt"), self.cert)
        os.symlink(os.path.join("..data", "tls.key"), self.key)

    def install(self, pair, cert_pem=None, key_pem=None):
        self._version += 1
        name = "..%d_%s" % (self._version, uuid.uuid4().hex[:6])
        os.mkdir(os.path.join(self.dir, name))
        for fname, data in (("tls.crt", cert_pem or pair.cert_pem),
                            ("tls.key", key_pem or pair.key_pem)):
            with open(os.path.join(self.dir, name, fname), "wb") as f:
                f.write(data)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(name, tmp)
        os.replace(tmp, os.path.join(self.dir, "..data"))

    def install_by_file_renames(self, pair):
        """The other way: each file replaced by its own temp + rename (key first), so for a
        moment the files hold a mismatched pair."""
        write_atomic(self.key, pair.key_pem)
        write_atomic(self.cert, pair.cert_pem)


# --------------------------------------------------------------------------------------
# Clients


def client_context(ca=None, minimum=None, maximum=None, legacy=False):
    """A TLS client context trusting the test CA; legacy=True lowers OpenSSL's security
    level so that TLS 1.0/1.1 can be offered at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca or certs().ca_cert)
    if legacy:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class Response:
    """An HTTP answer: status, reason, headers, body, and the server certificate's
    fingerprint when it came over TLS."""

    def __init__(self, status, reason, headers, body, peer_fingerprint=None):
        self.status, self.reason, self.body = status, reason, body
        self.headers = headers
        self.peer_fingerprint = peer_fingerprint

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:300])


def peer_fingerprint(sock):
    der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
    return hashlib.sha256(der).hexdigest() if der else None


def tls_connect(port, ctx=None, timeout=PATIENCE):
    """A TLS connection to 127.0.0.1:port, handshake done (raises on refusal)."""
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        return (ctx or client_context()).wrap_socket(raw, server_hostname=HOST)
    except BaseException:
        raw.close()
        raise


def read_response(sock, method="POST", timeout=PATIENCE):
    """Reads one HTTP response from a (TLS) socket."""
    sock.settimeout(timeout)
    resp = http.client.HTTPResponse(sock, method=method)
    try:
        resp.begin()
        body = resp.read()
        return Response(resp.status, resp.reason, resp.getheaders(), body,
                        peer_fingerprint(sock))
    finally:
        resp.close()


def request_head(method, path, length=None, content_type="application/json", extra=()):
    """The header block of a raw HTTP/1.1 request."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % HOST]
    if content_type:
        lines.append("Content-Type: " + content_type)
    if length is not None:
        lines.append("Content-Length: %d" % length)
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_raw(port, head, body, chunk=65536):
    """Sends head and body on a new TLS connection (a write error, e.g. the server closing
    early after an error answer, is tolerated) and reads the response; returns (response,
    write error or None)."""
    with tls_connect(port) as s:
        error = None
        try:
            s.sendall(head)
            for i in range(0, len(body), chunk):
                s.sendall(body[i:i + chunk])
        except OSError as e:
            error = e
        return read_response(s, timeout=scaled(PATIENCE)), error


class Client:
    """A keep-alive HTTPS client; counts the TCP connections it had to open."""

    def __init__(self, port, ctx=None, timeout=PATIENCE):
        self.conn = http.client.HTTPSConnection(HOST, port, context=ctx or client_context(),
                                                timeout=timeout)
        self.connections = 0

    def request(self, method, path, body=None, headers=None):
        try:
            if self.conn.sock is None:
                # inside the try: a handshake that fails leaves http.client holding the
                # detached plain socket (fd -1), and the next request on it would fail
                # with EBADF instead of opening a new connection
                self.connections += 1
                self.conn.connect()
            self.conn.request(method, path, body=body, headers=headers or {})
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.conn.close()
            raise
        return Response(resp.status, resp.reason, resp.getheaders(), data,
                        peer_fingerprint(self.conn.sock) if self.conn.sock else None)

    def post_review(self, review, content_type="application/json", path="/mutate"):
        return self.request("POST", path, json.dumps(review).encode(),
                            {"Content-Type": content_type})

    def close(self):
        self.conn.close()


# --------------------------------------------------------------------------------------
# The server process


class StartError(Exception):
    pass


class Server:
    """One `pod-identity-webhook serve` process on 127.0.0.1 with its stderr in a file."""

    def __init__(self, workdir, cert, key, sa_dir=None, profiles_dir=None, extra=(),
                 env=None, metrics=True, name="server"):
        self.workdir, self.cert, self.key = workdir, cert, key
        self.sa_dir = sa_dir or os.path.join(workdir, "service-accounts")
        os.makedirs(self.sa_dir, exist_ok=True)
        self.profiles_dir = profiles_dir or Config.profiles_dir
        self.extra, self.env, self.metrics, self.name = list(extra), env, metrics, name
        self.proc = None
        self.port = self.metrics_port = None
        self.log_path = os.path.join(workdir, "%s-%s.stderr" % (name, uuid.uuid4().hex[:6]))
        self.final_log = None
        self.returncode = None

    def command(self):
        cmd = Config.wrapper + [Config.binary, "serve",
                                "--listen", "%s:%d" % (HOST, self.port),
                                "--metrics-listen", ("%s:%d" % (HOST, self.metrics_port)
                                                     if self.metrics else "off"),
                                "--tls-cert", self.cert, "--tls-key", self.key,
                                "--profiles-dir", self.profiles_dir,
                                "--service-accounts-dir", self.sa_dir,
                                "--log-format", "json", "--reload-interval",
                                "%dms" % (RELOAD_INTERVAL * 1000)]
        return cmd + self.extra

    def start(self, wait_ready=True, attempts=3):
        """Starts the process (new free ports on a bind race) and waits for /readyz 200."""
        for attempt in range(attempts):
            self.port, self.metrics_port = free_port(), free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, env=clean_env(self.env))
            if not wait_ready:
                return self
            try:
                self.wait_ready(scaled(PATIENCE))
                return self
            except StartError:
                if self.proc.poll() is None or attempt == attempts - 1 or \
                        "in use" not in self.log_text().lower():
                    raise
        return self

    def wait_ready(self, timeout):
        def ready():
            if self.proc.poll() is not None:
                raise StartError("%s exited with status %d before /readyz said 200:\n%s"
                                 % (self.name, self.proc.returncode, self.log_text()))
            try:
                # one patient probe at a time: a short timeout abandons handshakes a
                # slow server (valgrind on a busy machine) is still working on, and the
                # next probe queues behind them
                return self.request("GET", "/readyz", timeout=scaled(10)).status == 200
            except (OSError, http.client.HTTPException):
                return False
        if not wait_until(ready, timeout, 0.02):
            raise StartError("%s: /readyz not 200 within %.0f s:\n%s"
                             % (self.name, timeout, self.log_text()))

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """The exit status, or None when the process still runs after timeout seconds."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=None):
        """SIGTERM, then the exit status (None if it did not exit within the timeout; the
        process is then killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait_exit(timeout if timeout is not None else scaled(30))
        if rc is None:
            self.proc.kill()
            self.proc.wait()
        return rc

    def close(self):
        """Kills the process if it still runs and keeps its log in memory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            self.final_log = self.log_text()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- logs

    def log_text(self, since=0):
        if self.final_log is not None and not os.path.exists(self.log_path):
            return self.final_log[since:]
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode("utf-8", "replace")

    def log_offset(self):
        return os.path.getsize(self.log_path)

    def log_records(self, since=0):
        """The JSON objects among the log lines (other lines, e.g. valgrind's, skipped)."""
        records = []
        for line in self.log_text(since).splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
        return records

    def wait_for_log(self, predicate, timeout, since=0):
        """The first JSON log record (from byte offset since) that predicate accepts, or
        None after timeout seconds."""
        def find():
            return next((r for r in self.log_records(since) if predicate(r)), None)
        return wait_until(find, timeout)

    # ---- requests

    def request(self, method, path, body=None, headers=None, ctx=None, timeout=PATIENCE):
        """One request on a new TLS connection."""
        conn = http.client.HTTPSConnection(HOST, self.port, context=ctx or client_context(),
                                           timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.getheaders(), data,
                            peer_fingerprint(conn.sock))
        finally:
            conn.close()

    def post_review(self, review, content_type="application/json", path="/mutate",
                    timeout=PATIENCE):
        body = review if isinstance(review, bytes) else json.dumps(review).encode()
        return self.request("POST", path, body, {"Content-Type": content_type},
                            timeout=timeout)

    def metrics_request(self, path="/metrics", timeout=PATIENCE):
        conn = http.client.HTTPConnection(HOST, self.metrics_port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return Response(resp.status, resp.reason, resp.getheaders(), resp.read())
        finally:
            conn.close()

    def served_fingerprint(self, timeout=5.0):
        """The SHA-256 fingerprint of the certificate a new handshake gets."""
        with tls_connect(self.port, timeout=timeout) as s:
            return peer_fingerprint(s)


# --------------------------------------------------------------------------------------
# unittest base class


class ServerTestCase(unittest.TestCase):
    """Gives each test self.tmp (removed afterwards) and start_server(); servers still
    running at the end get SIGTERM and must exit 0 (even when the test failed), and their
    stderr is printed when the test fails."""

    shared_servers = ()  # class-level servers whose log (since setUp) is printed too

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="piw-it-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self._servers = []
        self._shared_offsets = [(s, s.log_offset()) for s in self.shared_servers]

    def start_server(self, pair=None, sa=None, service_accounts=None, wait_ready=True,
                     cert=None, key=None, **kw):
        """Starts a server with pair (default: the shared RSA pair) or explicit cert/key
        paths, and a ServiceAccounts dir holding service_accounts (one file each) unless
        sa_dir is given."""
        pair = pair or certs().default_rsa
        kw.setdefault("name", "server%d" % (len(self._servers) + 1))
        server = Server(self.tmp, cert or pair.cert_path, key or pair.key_path, **kw)
        for i, obj in enumerate(service_accounts or []):
            write_json(os.path.join(server.sa_dir, "sa-%d.json" % i), obj)
        self._servers.append(server)
        self.addCleanup(self._stop_server, server)
        return server.start(wait_ready=wait_ready)

    def _stop_server(self, server):
        """At the end of a test: SIGTERM a server still running and require exit status
        0 (under ASan or valgrind a leak or memory error makes it non-zero)."""
        try:
            rc = server.stop(scaled(30)) if server.running else None
        finally:
            server.close()
        if rc is not None and rc != 0:
            raise AssertionError("%s: exit status %r after SIGTERM at the end of the test"
                                 % (server.name, rc))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self._print_logs()
        return out

    def _print_logs(self):
        logs = [(s.name, s.final_log if s.final_log is not None else s.log_text())
                for s in getattr(self, "_servers", [])]
        logs += [(s.name + " (shared)", s.log_text(off))
                 for s, off in getattr(self, "_shared_offsets", [])]
        for name, text in logs:
            lines = (text or "").splitlines()
            if len(lines) > 200:
                lines = ["... (%d lines before)" % (len(lines) - 200)] + lines[-200:]
            sys.stderr.write("\n----- %s stderr (%s) -----\n%s\n----- end %s -----\n"
                             % (name, self.id(), "\n".join(lines), name))

    # ---- assertions used everywhere

    def assertReview(self, resp, request_review):
        """200, application/json, and a response that echoes apiVersion, kind and uid;
        returns the `response` object."""
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue((resp.header("Content-Type") or "").startswith("application/json"),
                        resp.headers)
        review = resp.json()
        self.assertEqual(review.get("apiVersion"), request_review["apiVersion"])
        self.assertEqual(review.get("kind"), "AdmissionReview")
        self.assertIsInstance(review.get("response"), dict, review)
        self.assertEqual(review["response"].get("uid"), request_review["request"]["uid"])
        return review["response"]

    def assertNoPatch(self, response):
        self.assertNotIn("patch", response, response)
        self.assertNotIn("patchType", response, response)


# --------------------------------------------------------------------------------------
# Fixtures


def write_json(path, obj):
    write_atomic(path, json.dumps(obj, indent=1).encode())


ROLE_ARN = "arn:aws:iam::111122223333:role/payments-ledger"
IMAGE = "registry.example.com/ledger:5.1.0-secretimage"


def service_account(namespace, name, annotations=None):
    meta = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def aws_sa(namespace="payments", name="ledger", arn=ROLE_ARN):
    return service_account(namespace, name, {"eks.amazonaws.com/role-arn": arn})


def pod(name="ledger-59d8c7f9b4-hx7kt", namespace="payments", sa="ledger",
        generate_name=None, annotations=None):
    meta = {"namespace": namespace, "labels": {"app": "ledger"}}
    if name:
        meta["name"] = name
    if generate_name:
        meta["generateName"] = generate_name
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"serviceAccountName": sa,
                     "containers": [{"name": "ledger", "image": IMAGE,
                                     "env": [{"name": "LEDGER_TABLE", "value": "entries"}]}]}}


POD_KIND = {"group": "", "version": "v1", "kind": "Pod"}
POD_RESOURCE = {"group": "", "version": "v1", "resource": "pods"}


def review(obj, uid=None, namespace="payments", api_version="admission.k8s.io/v1",
           operation="CREATE", kind=POD_KIND, resource=POD_RESOURCE, old=None, dry_run=False):
    """An AdmissionReview request as the API server sends it."""
    req = {"uid": uid or str(uuid.uuid4()), "kind": kind, "resource": resource,
           "requestKind": kind, "requestResource": resource, "namespace": namespace,
           "operation": operation,
           "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                        "groups": ["system:serviceaccounts", "system:authenticated"]},
           "object": obj, "oldObject": old, "dryRun": dry_run,
           "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}
    if obj is not None and (obj.get("metadata") or {}).get("name"):
        req["name"] = obj["metadata"]["name"]
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": req}


def decode_patch(response):
    """The response's JSON Patch as a parsed value (None when there is none)."""
    if "patch" not in response:
        return None
    return json.loads(base64.b64decode(response["patch"], validate=True))


def env_of(pod_obj, container=0):
    """{name: value} of a container's env."""
    c = pod_obj["spec"]["containers"][container]
    return {e["name"]: e.get("value") for e in c.get("env") or []}


def main(module, argv):
    """A test file's entry point: `test_x.py [BINARY] [unittest arguments]`."""
    args = argv[1:]
    binary = None
    if args and not args[0].startswith("-") and (os.path.sep in args[0]
                                                 or os.path.isfile(args[0])):
        binary = args.pop(0)
    configure(binary)
    unittest.main(module=module, argv=[argv[0]] + args, verbosity=2)
