#!/usr/bin/python3
"""Bad input to `pod-identity-webhook mutate`: each must fail cleanly.

Usage: test_bad_inputs.py BINARY

Every case expects exit code 2 (usage or input error) and exactly one line on stderr that
names the offending file (or flag). Exit status 0 when all pass, 1 with the reasons.
"""
import json
import os
import subprocess
import sys
import tempfile

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "app", "namespace": "default"},
       "spec": {"serviceAccountName": "app",
                "containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}}
SA = {"apiVersion": "v1", "kind": "ServiceAccount",
      "metadata": {"name": "app", "namespace": "default", "annotations": {
          "workload-identity.stackit.cloud/service-account-email": "app-1a2b3c4@sa.stackit.cloud"}}}

# The unknown key is on line 8 of this profile.
BROKEN_INI = """; a profile with a typo
[profile]
name = acme

[trigger]
annotation = acme.example.com/role
format = any
audiance = acme
"""


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def cases(tmp):
    """Yields (name, extra argv, substring the stderr line must contain)."""
    sa = write(os.path.join(tmp, "sa.json"), json.dumps(SA).encode())
    base = ["mutate", "--service-account", sa, "--output", "review"]

    p = write(os.path.join(tmp, "empty-pod.json"), b"")
    yield "empty pod file", base + ["--pod", p], "empty-pod.json"

    p = write(os.path.join(tmp, "garbage-pod.json"),
              bytes(range(256)) * 16 + b"\x00\xff\xfe{\"kind\":")
    yield "binary garbage", base + ["--pod", p], "garbage-pod.json"

    p = write(os.path.join(tmp, "array-pod.json"), json.dumps([POD]).encode())
    yield "JSON of the wrong shape", base + ["--pod", p], "array-pod.json"

    # A Pod whose spec is not an object: the server admits it as not-understood (with a
    # warning); an offline tool says its input is wrong, naming the file and the reason.
    p = write(os.path.join(tmp, "spec-pod.json"), b'{"kind":"Pod","spec":"nope"}')
    yield "Pod of the wrong shape", base + ["--pod", p], "spec-pod.json: not a Pod we " \
        "can read: spec is missing or not an object"
    p = write(os.path.join(tmp, "containers-pod.json"), json.dumps(
        dict(POD, spec=dict(POD["spec"], containers={"name": "app"}))).encode())
    yield "Pod with containers not a list", base[:1] + ["--pod", p], \
        "containers-pod.json: not a Pod we can read"

    big = dict(POD, metadata=dict(POD["metadata"], annotations={"filler": "x" * (10 << 20)}))
    p = write(os.path.join(tmp, "huge-pod.json"), json.dumps(big).encode())
    yield "10 MB pod file", base + ["--pod", p], "huge-pod.json"

    p = write(os.path.join(tmp, "deep-pod.json"), b"[" * 100000)
    yield "100000 levels of [", base + ["--pod", p], "deep-pod.json"

    p = os.path.join(tmp, "no-such-pod.json")
    yield "missing file", base + ["--pod", p], "no-such-pod.json"

    p = write(os.path.join(tmp, "pod.json"), json.dumps(POD).encode())
    yield "unknown flag", base + ["--pod", p, "--frobnicate"], "--frobnicate"

    d = os.path.join(tmp, "profiles")
    os.mkdir(d)
    write(os.path.join(d, "acme.ini"), BROKEN_INI.encode())
    yield "profile with an unknown key", base + ["--pod", p, "--profiles-dir", d], "acme.ini:8"


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: test_bad_inputs.py BINARY\n")
        return 2
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, needle in cases(tmp):
            try:
                p = subprocess.run([argv[1]] + args, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=60)
            except subprocess.TimeoutExpired:
                failures.append("%s: no answer in 60 s" % name)
                continue
            err = p.stderr.decode("utf-8", "replace")
            lines = err.strip("\n").split("\n") if err.strip() else []
            if p.returncode != 2:
                failures.append("%s: exit code %d, expected 2; stderr: %r"
                                % (name, p.returncode, err[:300]))
            elif len(lines) != 1:
                failures.append("%s: expected one line on stderr, got %d: %r"
                                % (name, len(lines), err[:300]))
            elif needle not in lines[0]:
                failures.append("%s: stderr does not name %r: %r" % (name, needle, lines[0]))
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
