#!/usr/bin/python3
"""Run one golden case of a provider through `pod-identity-webhook mutate`.

Usage: run_case.py BINARY PROFILES_DIR CASE_DIR

A case directory (providers/<provider>/cases/<case>/) holds:
  pod.json or request.json  the Pod, or a whole AdmissionReview (v1 or v1beta1)
  service-account.json      the ServiceAccount; absent means "not found"
  expected.json             {"allowed", "profiles", "warnings", "message", "patch"}
  expected-pod.json         the Pod after the patch (allowed cases)
  expected-patch.json       optional: the exact patch text, byte for byte
  expected-files.json       optional: {pod annotation: JSON value}: each generated file
                            (a JSON document carried by that annotation of the mutated
                            Pod) must parse and equal the value, member by member
  args                      optional: one line of extra arguments for `mutate`

The binary runs three times (--output review, patch, pod). The review's patch is applied
to the input Pod with the `jsonpatch` module, an implementation independent of ours.
Exit status: 0 when everything matches, 1 on any mismatch (with a diff), 2 on usage error.
Run it with Debian's /usr/bin/python3, which has python3-jsonpatch.
"""
import base64
import difflib
import json
import os
import shlex
import subprocess
import sys

import jsonpatch

PROFILES_ANNOTATION = "pod-identity-webhook/profiles"


class Mismatch(Exception):
    pass


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def diff(what, expected, actual):
    """A readable unified diff of two JSON values."""
    def lines(v):
        return json.dumps(v, indent=2, sort_keys=True).splitlines(keepends=True)
    text = "".join(difflib.unified_diff(lines(expected), lines(actual),
                                        "expected " + what, "actual " + what))
    return "%s differs:\n%s" % (what, text)


def run(cmd, output):
    """Runs the binary for one --output mode, without PIW_* variables from our
    environment; returns (exit code, stdout bytes, stderr text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
    p = subprocess.run(cmd + ["--output", output], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60, env=env)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def check_rc(output, rc, want, stderr):
    if rc != want:
        raise Mismatch("--output %s: exit code %d, expected %d; stderr:\n%s"
                       % (output, rc, want, stderr))


def check_warnings(expected, warnings):
    if "warnings" not in expected:
        return
    want = expected["warnings"]
    if not want and warnings:
        raise Mismatch("expected no warnings, got: %r" % (warnings,))
    for w in want:
        if not any(w.lower() in got.lower() for got in warnings):
            raise Mismatch("no warning contains %r; warnings: %r" % (w, warnings))


def check_review(expected, request, review):
    """Checks the AdmissionReview; returns the decoded patch text (b"" when none)."""
    resp = review.get("response")
    if not isinstance(resp, dict):
        raise Mismatch("review has no response object: %r" % (review,))
    if request is not None:
        for key in ("apiVersion", "kind"):
            if review.get(key) != request.get(key):
                raise Mismatch("response %s %r, request had %r"
                               % (key, review.get(key), request.get(key)))
        if resp.get("uid") != request["request"].get("uid"):
            raise Mismatch("response uid %r, request uid %r"
                           % (resp.get("uid"), request["request"].get("uid")))
    if resp.get("allowed") is not expected["allowed"]:
        raise Mismatch("response.allowed is %r, expected %r; status: %r"
                       % (resp.get("allowed"), expected["allowed"], resp.get("status")))
    check_warnings(expected, resp.get("warnings") or [])
    if not expected["allowed"]:
        message = (resp.get("status") or {}).get("message", "")
        wants = expected.get("message", [])
        for want in [wants] if isinstance(wants, str) else wants:
            if want not in message:
                raise Mismatch("deny message %r does not contain %r" % (message, want))
    has_patch = "patch" in resp or "patchType" in resp
    if expected["patch"] == "empty":
        if has_patch:
            raise Mismatch("expected no patch, got patchType %r and patch:\n%s"
                           % (resp.get("patchType"), decode(resp.get("patch"))))
        return b""
    if resp.get("patchType") != "JSONPatch" or not resp.get("patch"):
        raise Mismatch("expected a patch with patchType JSONPatch, got patchType %r patch %r"
                       % (resp.get("patchType"), resp.get("patch")))
    text = base64.b64decode(resp["patch"], validate=True)
    if not json.loads(text):
        raise Mismatch("patch is present but empty: %r" % (text,))
    return text


def decode(patch):
    """The base64 patch as text, for messages."""
    try:
        return base64.b64decode(patch or "", validate=True).decode("utf-8", "replace")
    except ValueError:
        return repr(patch)


def check_profiles(expected, pod):
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(PROFILES_ANNOTATION)
    got = value.split(",") if value else []
    if got != expected["profiles"]:
        raise Mismatch("profiles annotation %r, expected %r" % (value, expected["profiles"]))


def check_files(case, pod):
    """Each generated JSON file, as the kubelet would write it from the annotation."""
    path = os.path.join(case, "expected-files.json")
    if not os.path.exists(path):
        return
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key, want in load(path).items():
        if key not in annotations:
            raise Mismatch("the mutated pod has no annotation %r" % key)
        try:
            got = json.loads(annotations[key])
        except ValueError as e:
            raise Mismatch("annotation %r is not JSON (%s): %r" % (key, e, annotations[key]))
        if got != want:
            raise Mismatch(diff("file in annotation " + key, want, got))


def run_case(binary, profiles_dir, case):
    expected = load(os.path.join(case, "expected.json"))
    request = None
    input_path = os.path.join(case, "pod.json")
    if not os.path.exists(input_path):
        input_path = os.path.join(case, "request.json")
        request = load(input_path)
    input_pod = request["request"]["object"] if request else load(input_path)
    cmd = [binary, "mutate", "--pod", input_path]
    sa_path = os.path.join(case, "service-account.json")
    if os.path.exists(sa_path):
        cmd += ["--service-account", sa_path]
    cmd += ["--profiles-dir", profiles_dir]
    args_path = os.path.join(case, "args")
    if os.path.exists(args_path):
        with open(args_path) as f:
            cmd += shlex.split(f.read())
    want_rc = 0 if expected["allowed"] else 1

    rc, out, err = run(cmd, "review")
    check_rc("review", rc, want_rc, err)
    try:
        review = json.loads(out)
    except ValueError as e:
        raise Mismatch("--output review is not JSON (%s): %r" % (e, out[:500]))
    patch_text = check_review(expected, request, review)

    rc, out, err = run(cmd, "patch")
    check_rc("patch", rc, want_rc, err)
    if expected["allowed"]:
        got = out[:-1] if out.endswith(b"\n") else out
        if got != patch_text and not (patch_text == b"" and got in (b"", b"[]")):
            raise Mismatch("--output patch differs from the review's patch:\n  patch:  %r\n"
                           "  review: %r" % (got, patch_text))

    rc, out, err = run(cmd, "pod")
    check_rc("pod", rc, want_rc, err)
    if not expected["allowed"]:
        return

    expected_pod = load(os.path.join(case, "expected-pod.json"))
    ops = json.loads(patch_text) if patch_text else []
    try:
        patched = jsonpatch.apply_patch(input_pod, ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError,
            IndexError, TypeError, ValueError) as e:
        raise Mismatch("the patch does not apply to the input pod: %s\n%s" % (e, patch_text))
    if patched != expected_pod:
        raise Mismatch(diff("pod (input + review patch)", expected_pod, patched))
    try:
        pod_out = json.loads(out)
    except ValueError as e:
        raise Mismatch("--output pod is not JSON (%s): %r" % (e, out[:500]))
    if pod_out != expected_pod:
        raise Mismatch(diff("pod (--output pod)", expected_pod, pod_out))
    check_profiles(expected, patched)
    check_files(case, patched)

    exact = os.path.join(case, "expected-patch.json")
    if os.path.exists(exact):
        with open(exact, "rb") as f:
            want = f.read()
        if want != patch_text:
            raise Mismatch("patch text is not byte-exact:\n"
                           + diff("patch", json.loads(want), ops)
                           + "\n  expected: %s\n  actual:   %s"
                           % (want.decode(), patch_text.decode("utf-8", "replace")))


def main(argv):
    if len(argv) != 4:
        sys.stderr.write("usage: run_case.py BINARY PROFILES_DIR CASE_DIR\n")
        return 2
    binary, profiles_dir, case = argv[1:]
    try:
        run_case(binary, profiles_dir, case)
    except Mismatch as e:
        sys.stdout.write("FAIL %s\n%s\n" % (case, e))
        return 1
    except subprocess.TimeoutExpired:
        sys.stdout.write("FAIL %s\nthe binary did not finish in 60 s\n" % case)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
