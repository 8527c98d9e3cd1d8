#!/usr/bin/python3
"""Integration test of how `pod-identity-webhook serve` holds its memory: every thread
allocates from the one malloc arena (serve.c sets M_ARENA_MAX to 1 before any thread
starts).

Why it matters (docs/performance.md, Soak): glibc gives each thread a heap of its own the
first time it allocates, and a heap keeps its freed memory. The offload threads allocate
only when a lookup misses the cache, so their heaps appeared minutes into a run and
resident memory climbed in steps of 130-250 KiB while the bytes in use stayed flat.

A glibc thread heap is an anonymous mapping of exactly 64 MiB (HEAP_MAX_SIZE on 64-bit),
aligned on 64 MiB, its used part read-write and the rest PROT_NONE: the test counts those
in /proc/PID/maps after every kind of thread has allocated (request workers, the offload
pool through live lookups, the watch through churn). Under AddressSanitizer or valgrind
malloc is not glibc's and there is no such heap: the test holds trivially there.

Usage: /usr/bin/python3 test_memory.py [BINARY] [unittest arguments]
(BINARY and the environment as in test_kube.py.)
"""
import sys
import threading

import harness
from harness import Client, scaled
from kubeharness import AWS_ARN, NAMESPACE, KubeTestCase, arn, hide_sa

HEAP_MAX = 64 * 1024 * 1024


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

    def test_one_heap_for_all_threads(self):
        """Admissions from 8 connections at once (every request worker), 40 misses for
        ServiceAccounts the watch has not delivered (live GETs on the offload pool, found
        and not found) and 200 watch events: no thread has a malloc heap of its own."""
        api = self.start_fake()
        api.create_sa(NAMESPACE, "ledger", annotations={AWS_ARN: arn("ledger")})
        server = self.start_kube(api, extra=["--sa-lookup-rate", "1000"])
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
        self.assertEqual(heaps, [], "malloc heaps of threads (start, read-write bytes)")


if __name__ == "__main__":
    harness.main(__name__, sys.argv)
