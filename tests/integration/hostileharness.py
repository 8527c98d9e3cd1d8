"""Helpers for test_hostile.py and test_faults.py: legitimate background load, raw TLS
clients for broken and hostile requests, a strict HTTP response parser, and the summary
table the two files print at the end.

Built on harness.py (certificates, the Server process, ServerTestCase). Pieces:

- LegitLoad: background "legitimate clients" (keep-alive and new-connection threads)
  posting valid AdmissionReviews and recording every result with its latency; a
  pluggable check decides what a correct answer is.
- percentile(), latency_line(): latency statistics.
- raw_tls(), RawResult, read_until_close(): one connection that sends arbitrary bytes
  after the TLS handshake (or none at all) and reads until the server closes.
- parse_responses(): a strict HTTP/1.x response parser (status line, headers,
  Content-Length framing, nothing after the last response) used to decide whether an
  answer is well-formed.
- client_hello(): the bytes of a real TLS ClientHello (from an ssl.SSLObject on memory
  BIOs), to send truncated or followed by garbage.
- Summary: rows of (class, faults/inputs tried, requests sent, failures) printed as a
  Markdown table when the test run ends (docs/security.md copies it).

Debian's /usr/bin/python3, standard library plus what harness.py/test_server.py use.
"""
import atexit
import collections
import http.client
import json
import math
import os
import random
import socket
import ssl
import sys
import threading
import time

import harness
from harness import HOST, PATIENCE, Client, client_context, env_of, pod, review, scaled

# --------------------------------------------------------------------------------------
# Statistics


def percentile(values, q):
    """The q-quantile (0..1) of values by the nearest-rank method (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_line(latencies):
    """"n=…, p50=… ms, p99=… ms, max=… ms" for a list of seconds."""
    return "n=%d p50=%.0fms p99=%.0fms max=%.0fms" % (
        len(latencies), percentile(latencies, 0.5) * 1000,
        percentile(latencies, 0.99) * 1000, max(latencies or [0]) * 1000)


# --------------------------------------------------------------------------------------
# Legitimate background load


Result = collections.namedtuple("Result", "mode started seconds ok detail")


def check_patched_review(rv, resp):
    """The default check: 200, application/json, the uid echoed and a JSON Patch that
    sets AWS_ROLE_ARN to the ServiceAccount's role (the harness's aws_sa()). Returns
    None when correct, else what is wrong."""
    if resp.status != 200:
        return "status %d: %r" % (resp.status, resp.body[:200])
    try:
        answer = resp.json()
        response = answer["response"]
    except (ValueError, KeyError, TypeError) as e:
        return "not an AdmissionReview (%r): %r" % (e, resp.body[:200])
    if response.get("uid") != rv["request"]["uid"]:
        return "uid not echoed: %r" % response.get("uid")
    if response.get("allowed") is not True or response.get("patchType") != "JSONPatch":
        return "not admitted with a patch: %r" % (response,)
    from test_server import patched_pod   # jsonpatch: an independent implementation
    try:
        env = env_of(patched_pod(rv, response))
    except Exception as e:  # a patch that does not apply is a wrong answer
        return "patch does not apply: %r" % e
    if env.get("AWS_ROLE_ARN") != harness.ROLE_ARN:
        return "wrong AWS_ROLE_ARN %r" % env.get("AWS_ROLE_ARN")
    return None


class LegitThreads:
    """Legitimate clients in background threads until stop(): `keepalive` threads each
    reuse one connection (reconnecting only if the server closed it between requests),
    `fresh` threads open a new TLS connection per request. Every request is recorded as
    a Result(mode, started (monotonic), seconds, ok, detail).

    A request counts as failed when it raises (timeout, reset, ...) or the check
    (default check_patched_review) says the answer is wrong. A keep-alive connection the
    server closed while idle is not a failure if the retry on a new connection succeeds
    (http.client's RemoteDisconnected before any byte of the answer: the request was
    never read, as with any HTTP client's stale keep-alive connection), but it is
    counted in `stale_retries`."""

    def __init__(self, port, keepalive=1, fresh=1, interval=0.01, timeout=None,
                 make_review=None, check=None, ctx=None, name="legit"):
        # make_review and check must be module-level functions (LegitLoad pickles them)
        self.port = port
        self.interval = interval
        self.timeout = timeout if timeout is not None else scaled(PATIENCE)
        self.make_review = make_review or (lambda: review(pod()))
        self.check = check or check_patched_review
        self.ctx = ctx
        self.name = name
        self.results = []
        self.stale_retries = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = ([threading.Thread(target=self._keepalive, daemon=True,
                                           name="%s-ka%d" % (name, i))
                          for i in range(keepalive)] +
                         [threading.Thread(target=self._fresh, daemon=True,
                                           name="%s-new%d" % (name, i))
                          for i in range(fresh)])

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        """Stops the clients (each finishes its request in flight); returns self."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + scaled(10))
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _record(self, mode, started, ok, detail):
        with self._lock:
            self.results.append(Result(mode, started, time.monotonic() - started, ok,
                                       detail))

    def _one(self, mode, send):
        rv = self.make_review()
        started = time.monotonic()
        try:
            resp = send(rv)
        except Exception as e:
            self._record(mode, started, False, "%s: %r" % (time.strftime("%T"), e))
            return
        problem = self.check(rv, resp)
        self._record(mode, started, problem is None, problem)

    def _keepalive(self):
        client = Client(self.port, ctx=self.ctx, timeout=self.timeout)

        def send(rv):
            body = json.dumps(rv).encode()
            try:
                return client.request("POST", "/mutate", body,
                                      {"Content-Type": "application/json"})
            except http.client.RemoteDisconnected:
                # closed by the server while idle (e.g. at SIGTERM, or a reaped idle
                # connection): not read, so resend once on a new connection
                with self._lock:
                    self.stale_retries += 1
                return client.request("POST", "/mutate", body,
                                      {"Content-Type": "application/json"})
        try:
            while not self._stop.is_set():
                self._one("keepalive", send)
                self._stop.wait(self.interval)
        finally:
            client.close()

    def _fresh(self):
        def send(rv):
            conn = http.client.HTTPSConnection(HOST, self.port,
                                               context=self.ctx or client_context(),
                                               timeout=self.timeout)
            try:
                conn.request("POST", "/mutate", json.dumps(rv).encode(),
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                return harness.Response(resp.status, resp.reason, resp.getheaders(),
                                        resp.read())
            finally:
                conn.close()
        while not self._stop.is_set():
            self._one("fresh", send)
            self._stop.wait(self.interval)

    # ---- reading the results

    def snapshot(self, since=None, until=None):
        """The results whose request started in [since, until) (monotonic times)."""
        with self._lock:
            return [r for r in self.results
                    if (since is None or r.started >= since)
                    and (until is None or r.started < until)]

    def failures(self, since=None, until=None):
        return [r for r in self.snapshot(since, until) if not r.ok]

    def latencies(self, since=None, until=None):
        return [r.seconds for r in self.snapshot(since, until) if r.ok]

    def describe(self, since=None, until=None):
        rs = self.snapshot(since, until)
        by_mode = collections.Counter(r.mode for r in rs)
        slowest = sorted(rs, key=lambda r: -r.seconds)[:3]
        return "%s: %d requests (%s), %d failed, %s; slowest: %s" % (
            self.name, len(rs), ", ".join("%s %d" % kv for kv in sorted(by_mode.items())),
            sum(1 for r in rs if not r.ok), latency_line(self.latencies(since, until)),
            ", ".join("%s %.0fms at %s" % (r.mode, r.seconds * 1000,
                                           time.strftime("%T", time.localtime(
                                               time.time() - time.monotonic() + r.started)))
                      for r in slowest))


def _legit_child(conn, port, ca, kw, stop_event):
    """Runs LegitThreads in a child process until stop_event, then sends back the
    results."""
    kw = dict(kw)
    kw["ctx"] = client_context(ca)
    load = LegitThreads(port, **kw).start()
    conn.send("started")
    stop_event.wait()
    load.stop()
    conn.send((load.results, load.stale_retries))
    conn.close()


class LegitLoad(LegitThreads):
    """LegitThreads run in a child process (multiprocessing, spawn), so that the
    attacking threads of the test process (and its GIL) cannot slow the legitimate
    clients down: their latencies are the server's. The results are available after
    stop() (monotonic times are system-wide on Linux, so they compare with the test's).
    isolated=False runs the threads in this process (results live)."""

    def __init__(self, port, isolated=True, **kw):
        super().__init__(port, **kw)
        self.isolated = isolated
        self._kw = {k: v for k, v in kw.items() if k != "ctx"}
        self._kw.setdefault("timeout", self.timeout)
        self._proc = None
        self._stopped = False

    def start(self):
        if not self.isolated:
            return super().start()
        import multiprocessing
        mp = multiprocessing.get_context("spawn")
        self._conn, child = mp.Pipe()
        self._stop_event = mp.Event()
        self._proc = mp.Process(target=_legit_child, daemon=True, args=(
            child, self.port, harness.certs().ca_cert, self._kw, self._stop_event))
        self._proc.start()
        if not self._conn.poll(scaled(30)) or self._conn.recv() != "started":
            raise RuntimeError("the legitimate-load process did not start")
        return self

    def stop(self):
        if not self.isolated:
            return super().stop()
        if self._proc is None or self._stopped:
            return self
        self._stopped = True
        self._stop_event.set()
        if self._conn.poll(self.timeout + scaled(20)):
            self.results, self.stale_retries = self._conn.recv()
        else:
            self.results = [Result("lost", time.monotonic(), 0.0, False,
                                   "the legitimate-load process sent no results")]
        self._proc.join(scaled(10))
        if self._proc.is_alive():
            self._proc.kill()
        return self


# --------------------------------------------------------------------------------------
# Raw connections


class RawResult:
    """What came back on a raw connection: the bytes, how the connection ended
    ("eof": clean close, "reset", "tls-error": the TLS layer failed or was cut,
    "timeout": still open when we stopped waiting, "refused"), and when."""

    def __init__(self, data, end, seconds, error=None):
        self.data, self.end, self.seconds, self.error = data, end, seconds, error

    @property
    def closed(self):
        return self.end in ("eof", "reset", "tls-error")

    def __repr__(self):
        return "RawResult(%d bytes %r..., end=%s after %.2fs, %r)" % (
            len(self.data), self.data[:120], self.end, self.seconds, self.error)


def read_until_close(sock, timeout, started=None, limit=1 << 22):
    """Reads until the peer closes or timeout seconds pass (from started)."""
    started = started if started is not None else time.monotonic()
    data, end, error = b"", None, None
    while end is None:
        remaining = started + timeout - time.monotonic()
        if remaining <= 0:
            end = "timeout"
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            end = "timeout"
            break
        except ssl.SSLError as e:
            end, error = "tls-error", e
            break
        except (ConnectionResetError, BrokenPipeError) as e:
            end, error = "reset", e
            break
        except OSError as e:
            end, error = "reset", e
            break
        if not chunk:
            end = "eof"
        data += chunk
        if len(data) > limit:
            end = "too-much"
    return RawResult(data, end, time.monotonic() - started, error)


def poll_read(sock):
    """A non-blocking read on a socket select() says is readable: None when nothing
    arrived for the application (e.g. only a TLS 1.3 session ticket), b"" when the peer
    closed (EOF, reset, TLS failure), else the bytes."""
    sock.setblocking(False)
    try:
        return sock.recv(65536)
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
        return None
    except (OSError, ssl.SSLError):
        return b""
    finally:
        try:
            sock.setblocking(True)
        except OSError:
            pass


def raw_tls(port, payload=b"", ctx=None, timeout=5.0, server_hostname=HOST,
            chunks=None, pause=0.0):
    """A new TLS connection that sends payload (or each of chunks, pause seconds apart),
    ignores write errors (the server may close early) and reads until it closes."""
    started = time.monotonic()
    try:
        raw = socket.create_connection((HOST, port), timeout=timeout)
    except ConnectionRefusedError as e:
        return RawResult(b"", "refused", time.monotonic() - started, e)
    try:
        try:
            sock = (ctx or client_context()).wrap_socket(raw, server_hostname=server_hostname)
        except (ssl.SSLError, OSError) as e:
            raw.close()
            return RawResult(b"", "tls-error", time.monotonic() - started, e)
        with sock:
            try:
                for i, piece in enumerate(chunks if chunks is not None else [payload]):
                    if i and pause:
                        time.sleep(pause)
                    sock.sendall(piece)
            except (OSError, ssl.SSLError):
                pass
            return read_until_close(sock, timeout, started)
    finally:
        raw.close()


def raw_tcp(port, payload, timeout=5.0):
    """A plain TCP connection to the TLS port that sends payload and reads until close."""
    started = time.monotonic()
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        try:
            s.sendall(payload)
        except OSError:
            pass
        return read_until_close(s, timeout, started)


def client_hello(ctx=None, maximum=None):
    """The bytes of a real ClientHello (TLS records) a Python client would send."""
    ctx = ctx or client_context(maximum=maximum)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=HOST)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# --------------------------------------------------------------------------------------
# Strict HTTP response parsing


class HttpResponse:
    def __init__(self, version, status, reason, headers, body):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body = headers, body

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<HTTP %d %s %r>" % (self.status, self.reason, self.body[:200])


class Malformed(Exception):
    pass


def parse_one(data, method="POST"):
    """One response at the start of data: (HttpResponse, rest). Raises Malformed for
    anything but a status line, well-formed headers and a Content-Length-framed (or
    chunked) body; raises IncompleteResponse when data ends early."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise IncompleteResponse("no end of headers in %r" % data[:200])
    head, rest = data[:end].decode("latin-1"), data[end + 4:]
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in ("HTTP/1.1", "HTTP/1.0") or \
            not (len(parts[1]) == 3 and parts[1].isdigit()):
        raise Malformed("bad status line %r" % lines[0])
    status = int(parts[1])
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise Malformed("bad header line %r" % line)
        headers.append((name, value.strip()))
    lengths = [v for k, v in headers if k.lower() == "content-length"]
    chunked = any(k.lower() == "transfer-encoding" and "chunked" in v.lower()
                  for k, v in headers)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        body, rest = _dechunk(rest)
    elif lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise Malformed("bad Content-Length %r" % lengths)
        n = int(lengths[0])
        if len(rest) < n:
            raise IncompleteResponse("body: %d of %d bytes" % (len(rest), n))
        body, rest = rest[:n], rest[n:]
    else:
        body, rest = rest, b""   # delimited by the close
    return HttpResponse(parts[0], status, parts[2] if len(parts) > 2 else "", headers,
                        body), rest


class IncompleteResponse(Malformed):
    pass


def _dechunk(data):
    body = b""
    while True:
        line_end = data.find(b"\r\n")
        if line_end < 0:
            raise IncompleteResponse("chunk size line")
        size_text = data[:line_end].split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise Malformed("bad chunk size %r" % size_text)
        data = data[line_end + 2:]
        if size == 0:
            trailer_end = data.find(b"\r\n")
            if trailer_end < 0:
                raise IncompleteResponse("chunked trailer")
            return body, data[trailer_end + 2:]
        if len(data) < size + 2:
            raise IncompleteResponse("chunk data")
        body, data = body + data[:size], data[size + 2:]


def parse_responses(data, method="POST"):
    """All responses in data: (responses, trailing bytes that are not a response).
    Raises Malformed when a response is broken or cut."""
    responses = []
    while data:
        resp, data = parse_one(data, method)
        responses.append(resp)
        if (resp.header("Connection") or "").lower() == "close":
            break
    return responses, data


# --------------------------------------------------------------------------------------
# The summary table


class Summary:
    """Rows (class, faults/inputs tried, requests sent, failures, note), printed as a
    Markdown table at exit (and written to $PIW_TEST_SUMMARY if set)."""

    def __init__(self, title):
        self.title = title
        self.rows = collections.OrderedDict()
        self._lock = threading.Lock()
        atexit.register(self.print)

    def add(self, cls, tried=0, requests=0, failures=0, note=""):
        with self._lock:
            row = self.rows.setdefault(cls, [0, 0, 0, []])
            row[0] += tried
            row[1] += requests
            row[2] += failures
            if note:
                row[3].append(note)

    def table(self):
        lines = ["| class | faults/inputs tried | requests sent | failures | notes |",
                 "|---|---:|---:|---:|---|"]
        for cls, (tried, requests, failures, notes) in self.rows.items():
            lines.append("| %s | %d | %d | %d | %s |" % (cls, tried, requests, failures,
                                                        "; ".join(notes)))
        return "\n".join(lines)

    def print(self):
        if not self.rows:
            return
        text = "\n%s (binary %s, time factor %g)\n\n%s\n" % (
            self.title, os.path.relpath(harness.Config.binary or "?",
                                        harness.Config.top or "."),
            harness.Config.factor, self.table())
        sys.stderr.write(text)
        path = os.environ.get("PIW_TEST_SUMMARY")
        if path:
            with open(path, "a") as f:
                f.write(text)


def parallel(calls, workers=32, timeout=None):
    """Runs the callables on a thread pool; returns their results in order (an
    exception is returned in place of its result)."""
    import concurrent.futures
    results = [None] * len(calls)
    with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, len(calls)))) as pool:
        futures = {pool.submit(c): i for i, c in enumerate(calls)}
        for f in concurrent.futures.as_completed(futures, timeout=timeout):
            try:
                results[futures[f]] = f.result()
            except BaseException as e:   # reported by the caller
                results[futures[f]] = e
    return results


def seeded_random(default_seed):
    """A random.Random seeded from $PIW_TEST_SEED (else default_seed); returns
    (rng, seed)."""
    seed = int(os.environ.get("PIW_TEST_SEED") or default_seed)
    return random.Random(seed), seed
