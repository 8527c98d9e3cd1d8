#!/usr/bin/python3
"""Integration tests of how `pod-identity-webhook serve` holds its memory: the malloc
arenas are bounded (serve.c sets M_ARENA_MAX to one per HTTPS request thread, one for the
metrics listener's thread, plus the main arena and one for the watch, before any thread
starts), and free pages
anywhere in the heaps go back to the kernel (malloc_trim every 10 s on the main thread).

Why it matters (docs/performance.md, Soak): glibc gives each thread a heap of its own the
first time it allocates, and a heap keeps its freed memory. The offload threads allocate
only when a lookup misses the cache, so their heaps appeared minutes into a run and
resident memory climbed in steps of 130-250 KiB while the bytes in use stayed flat. The
bound is not one arena for all: the request threads then queued on its lock.

A glibc thread heap is an anonymous mapping of exactly 64 MiB (HEAP_MAX_SIZE on 64-bit),
aligned on 64 MiB, its used part read-write and the rest PROT_NONE: the test counts those
in /proc/PID/maps after every kind of thread has allocated (request workers, the offload
pool through live lookups, the watch through churn). Under AddressSanitizer or valgrind
malloc is not glibc's and there is no such heap: that test holds trivially there, and the
trim test is skipped.

Usage: /usr/bin/python3 test_memory.py [BINARY] [unittest arguments]
(BINARY and the environment as in test_kube.py.)
"""
import sys
import threading

import harness
from harness import Client, Config, scaled, tls_connect, wait_until
from kubeharness import AWS_ARN, NAMESPACE, KubeTestCase, arn, hide_sa

HEAP_MAX = 64 * 1024 * 1024
MIB = 1024 * 1024


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    raise AssertionError("no RssAnon in /proc/%d/status" % pid)


def glibc_malloc(binary):
    """Whether the server allocates with glibc's malloc (not under valgrind, not an ASan
    build, whose allocators hold freed memory their own way)."""
    with open(binary, "rb") as f:
        return not Config.wrapper and b"__asan_init" not in f.read()


def post_head(length):
    return ("POST /mutate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            "\r\nContent-Length: %d\r\n\r\n" % length).encode()


def status_line(sock):
    sock.settimeout(scaled(30))
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before an answer: %r" % data)
        data += chunk
    return data.split(b"\r\n", 1)[0]


def thread_heaps(pid):
    """The glibc per-thread malloc heaps in the process, as (start, read-write bytes): an
    anonymous read-write mapping that starts on a 64 MiB boundary, followed by contiguous
    anonymous mappings (the PROT_NONE rest) of which one ends exactly 64 MiB after that
    start. (Thread stacks are 8 MiB with a guard page: never that shape.)"""
    anon = []   # (start, end, read-write) of each anonymous mapping, in address order
    with open("/proc/%d/maps" % pid) as maps:
        for line in maps:
            fields = line.split()
            if len(fields) > 5:          # a file or [stack], [heap]...: not anonymous
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            anon.append((start, end, fields[1].startswith("rw")))
    heaps = []
    for i, (start, end, rw) in enumerate(anon):
        if not rw or start % HEAP_MAX:
            continue
        used, j = end - start, i
        while anon[j][1] < start + HEAP_MAX and j + 1 < len(anon) and \
                anon[j + 1][0] == anon[j][1]:
            j += 1
        if anon[j][1] == start + HEAP_MAX:
            heaps.append((hex(start), used))
    return heaps


class MallocArenaTests(KubeTestCase):

    def test_heaps_bounded_by_the_request_threads(self):
        """Admissions from 8 connections at once (every request worker), 40 misses for
        ServiceAccounts the watch has not delivered (live GETs on the offload pool, found
        and not found) and 200 watch events, with 2 HTTPS request threads: at most 2 + 2
        thread heaps (the metrics thread's and the watch's; the main thread's arena is
        not one); the offload pool (4 threads) and the reaper share them."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations={AWS_ARN: arn("ledger")})
        server = self.start_kube(api, extra=["--sa-lookup-rate", "1000", "--threads", "2"])
        self.wait_watch(api)
        for i in range(20):
            hide_sa(api, NAMESPACE, "hidden-%02d" % i, {AWS_ARN: arn("hidden-%02d" % i)})
        errors = []

        def admissions(k):
            client = Client(server.port, timeout=scaled(15))
            try:
                for i in range(5):
                    self.admit(server, "ledger", allow=(200,), client=client)
                    self.admit(server, "hidden-%02d" % ((k * 5 + i) % 20), allow=(200,),
                               client=client)
                    self.admit(server, "absent-%d-%d" % (k, i), allow=(200,), client=client)
            except BaseException as e:   # reported below
                errors.append(e)
            finally:
                client.close()
        threads = [threading.Thread(target=admissions, args=(k,), daemon=True)
                   for k in range(8)]
        for t in threads:
            t.start()
        for i in range(100):
            api.create_sa("churn", "c-%03d" % i, annotations={AWS_ARN: arn("c-%03d" % i)})
            if i >= 10:
                api.delete_sa("churn", "c-%03d" % (i - 10))
        for t in threads:
            t.join(scaled(120))
        self.assertEqual(errors, [])
        self.wait_metric(server, "piw_sa_watch_events_total", lambda v: v >= 190,
                         scaled(10), "the churn applied")
        self.assertGreaterEqual(self.lookups(server)["live-not-found"], 1)
        heaps = thread_heaps(server.proc.pid)
        sys.stderr.write("[%d thread heaps] " % len(heaps))
        self.assertLessEqual(len(heaps), 2 + 2,
                             "malloc heaps of threads (start, read-write bytes): %r" % heaps)


class HeapTrimTests(KubeTestCase):

    def test_freed_pages_below_the_top_are_returned(self):
        """A 2 MiB request body freed below memory that stays in use (the connections
        opened while it was read) is a hole glibc does not return by itself; the main
        thread's malloc_trim (every 10 s) gives it back: RssAnon falls at least 512 KiB below
        its level with half the body read (waited for up to 6 trims). One request
        thread, so the body and the connections share a heap: with several, the body
        could land alone in a thread's heap, and a block freed at a heap's top stays
        resident until that heap's top passes glibc's trim threshold (malloc_trim
        returns holes in the bins, not the top of a thread's heap; seen in 2 of 6 runs
        with 6 request threads, RssAnon staying ~4,130 KiB)."""
        if not glibc_malloc(Config.binary):
            self.skipTest("malloc is not glibc's (valgrind or ASan)")
        api = self.start_fake()
        server = self.start_kube(api, extra=["--max-body-bytes", "%d" % (4 * MIB),
                                             "--threads", "1"])
        self.wait_watch(api)
        pid, n = server.proc.pid, 2 * MIB
        # The first big body is mmapped, and freeing it raises glibc's mmap threshold:
        # the next one comes from the heap.
        with tls_connect(server.port) as first:
            first.sendall(post_head(n) + b" " * n)
            self.assertIn(b" 400 ", status_line(first))
        body = tls_connect(server.port)
        kept = []
        try:
            body.sendall(post_head(n) + b" " * (n // 2))   # its buffer is reserved whole
            for _ in range(4):   # allocated above it, and kept open
                c = tls_connect(server.port)
                kept.append(c)
                c.sendall(post_head(2) + b"{}")
                self.assertIn(b" 400 ", status_line(c))
            # Measured before the body is freed, so a trim at any moment after counts.
            held = rss_anon_kib(pid)
            body.sendall(b" " * (n - n // 2))
            self.assertIn(b" 400 ", status_line(body))
            after = wait_until(lambda: rss_anon_kib(pid) <= held - 512 and
                               rss_anon_kib(pid), scaled(60), interval=0.5)
            sys.stderr.write("[RssAnon %d KiB with half the body read, %d at the end] "
                             % (held, after or rss_anon_kib(pid)))
            self.assertTrue(after, "RssAnon is %d KiB; %d KiB with half the body read"
                            % (rss_anon_kib(pid), held))
        finally:
            body.close()
            for c in kept:
                c.close()
        # The bodies were refused (400), not admissions: stop before the count check.
        self.assertEqual(server.stop(scaled(30)), 0, "exit status after SIGTERM")


if __name__ == "__main__":
    harness.main(__name__, sys.argv)
