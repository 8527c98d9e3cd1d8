#!/usr/bin/python3
"""Integration tests of the identity map (--identity-map, PIW_IDENTITY_MAP): `serve`
mutates a pod whose ServiceAccount has no annotation through the map, reads the AWS
webhook's ConfigMap JSON mounted the way the kubelet mounts a ConfigMap, picks up a
change without a restart, refuses a broken map with file:line while the last good map
keeps serving, and refuses to start on a broken one; `mutate` takes the same flag.

Usage: test_identity.py [BINARY] [unittest arguments]
"""
import json
import os
import signal
import subprocess
import sys

import jsonpatch

import harness
from harness import (Config, ServerTestCase, decode_patch, env_of, pod, review, scaled,
                     service_account, wait_until, write_atomic)

ARN_1 = "arn:aws:iam::111122223333:role/from-map-1"
ARN_2 = "arn:aws:iam::111122223333:role/from-map-2"
OWN_ARN = "arn:aws:iam::111122223333:role/own-annotation"


def ours(arn, namespace="payments", name="ledger"):
    return ("# identities without annotations\n[%s/%s]\neks.amazonaws.com/role-arn = %s\n"
            % (namespace, name, arn)).encode()


def configmap_json(arn, key="payments/ledger"):
    """The `config` key of the AWS webhook's pod-identity-webhook ConfigMap."""
    return json.dumps({key: {"RoleARN": arn, "Audience": "sts.amazonaws.com",
                             "UseRegionalSTS": True, "TokenExpiration": 0}}).encode()


class ConfigMapVolume:
    """A directory laid out as the kubelet lays out a ConfigMap volume: the file is a
    link through ..data, which an update swaps atomically to a new timestamped dir."""

    def __init__(self, root, name):
        self.root, self.name, self.generation = root, name, 0
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, name)

    def write(self, data):
        self.generation += 1
        gen = "..2026_12_04_%06d" % self.generation
        os.mkdir(os.path.join(self.root, gen))
        with open(os.path.join(self.root, gen, self.name), "wb") as f:
            f.write(data)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(gen, tmp)
        os.replace(tmp, os.path.join(self.root, "..data"))
        if not os.path.islink(self.path):
            os.symlink(os.path.join("..data", self.name), self.path)


class IdentityMapTests(ServerTestCase):
    """`serve --identity-map`: mutation through the map, reload on change, refusal."""

    def arn(self, server, namespace="payments", sa="ledger"):
        """AWS_ROLE_ARN the pod gets (None: not patched)."""
        rv = review(pod(namespace=namespace, sa=sa), namespace=namespace)
        resp = self.assertReview(server.post_review(rv), rv)
        self.assertTrue(resp.get("allowed"), resp)
        patched = jsonpatch.apply_patch(rv["request"]["object"], decode_patch(resp) or [])
        return env_of(patched).get("AWS_ROLE_ARN")

    def assertBecomes(self, server, arn, what):
        self.assertTrue(wait_until(lambda: self.arn(server) == arn, scaled(5)),
                        "%s: ARN is %r, not %r" % (what, self.arn(server), arn))

    def wait_error(self, server, offset, needle):
        return server.wait_for_log(lambda r: r.get("level") == "error" and
                                   needle in json.dumps(r), scaled(5), offset)

    def test_unannotated_service_account_mutated_through_the_map(self):
        """The ServiceAccount has no annotation: the map gives it the role; another
        ServiceAccount is left alone; a ServiceAccount's own annotation wins."""
        path = os.path.join(self.tmp, "identities.conf")
        write_atomic(path, ours(ARN_1) + ours(ARN_2, "payments", "billing"))
        server = self.start_server(
            service_accounts=[service_account("payments", "ledger"),
                              service_account("payments", "other"),
                              service_account("payments", "billing", {
                                  "eks.amazonaws.com/role-arn": OWN_ARN})],
            extra=["--identity-map", path])
        self.assertEqual(self.arn(server), ARN_1)
        self.assertIsNone(self.arn(server, sa="other"))
        self.assertEqual(self.arn(server, sa="billing"), OWN_ARN)
        self.assertTrue(server.wait_for_log(
            lambda r: r.get("event") == "identity_map_loaded" and
            r.get("entries") == "2", scaled(2)))

    def test_aws_configmap_mounted_unchanged_and_updated(self):
        """The AWS webhook's ConfigMap JSON in a kubelet-style ConfigMap volume, named by
        PIW_IDENTITY_MAP: used as it is, and an update (the ..data link swapped) is
        picked up without a restart."""
        volume = ConfigMapVolume(os.path.join(self.tmp, "cm"), "config")
        volume.write(configmap_json(ARN_1, key="*/ledger"))
        server = self.start_server(service_accounts=[service_account("payments", "ledger")],
                                   env={"PIW_IDENTITY_MAP": volume.path})
        self.assertEqual(self.arn(server), ARN_1)
        volume.write(configmap_json(ARN_2))
        self.assertBecomes(server, ARN_2, "updated ConfigMap")
        self.assertEqual(server.stop(), 0)

    def test_broken_map_refused_last_good_serves(self):
        """A broken map is refused with file:line in an error line and the last good map
        keeps serving; a fixed one is picked up; SIGHUP reads the file again."""
        path = os.path.join(self.tmp, "identities.conf")
        write_atomic(path, ours(ARN_1))
        server = self.start_server(service_accounts=[service_account("payments", "ledger")],
                                   extra=["--identity-map", path])
        self.assertEqual(self.arn(server), ARN_1)
        offset = server.log_offset()
        write_atomic(path, ours(ARN_2) + b"[payments/ledger]\nnot a key = 1\n")
        self.assertTrue(self.wait_error(server, offset, path + ":5:"),
                        "no error line naming %s:5" % path)
        self.assertEqual(self.arn(server), ARN_1)
        write_atomic(path, ours(ARN_2))
        self.assertBecomes(server, ARN_2, "fixed map")
        with open(path, "wb") as f:  # same size and, on a coarse clock, same mtime
            f.write(ours(ARN_1))
        server.signal(signal.SIGHUP)
        self.assertBecomes(server, ARN_1, "SIGHUP")
        self.assertTrue(server.running)
        self.assertEqual(server.stop(), 0)

    def test_broken_map_at_start(self):
        """A server does not start on a broken map: exit 2, file:line on stderr."""
        path = os.path.join(self.tmp, "identities.json")
        write_atomic(path, b'{"payments/ledger": {"RoleARN": ["x"]}}')
        server = self.start_server(service_accounts=[], extra=["--identity-map", path],
                                   wait_ready=False)
        self.assertEqual(server.wait_exit(scaled(10)), 2)
        self.assertIn(path + ":1:", server.log_text())
        self.assertIn("RoleARN", server.log_text())


class MutateIdentityMapTests(ServerTestCase):
    """`mutate --identity-map` decides as `serve` does."""

    def mutate(self, *args):
        pod_path = os.path.join(self.tmp, "pod.json")
        sa_path = os.path.join(self.tmp, "sa.json")
        with open(pod_path, "w") as f:
            json.dump(pod(), f)
        with open(sa_path, "w") as f:
            json.dump(service_account("payments", "ledger"), f)
        p = subprocess.run([Config.binary, "mutate", "--pod", pod_path,
                            "--service-account", sa_path, "--profiles-dir",
                            Config.profiles_dir, "--output", "pod"] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=scaled(30))
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_mutate_through_the_map(self):
        path = os.path.join(self.tmp, "config")
        write_atomic(path, configmap_json(ARN_1))
        rc, out, err = self.mutate("--identity-map", path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(env_of(json.loads(out)).get("AWS_ROLE_ARN"), ARN_1)
        rc, out, err = self.mutate()
        self.assertEqual(rc, 0, err)
        self.assertIsNone(env_of(json.loads(out)).get("AWS_ROLE_ARN"))

    def test_mutate_refuses_broken_map(self):
        path = os.path.join(self.tmp, "identities.conf")
        write_atomic(path, b"[payments/ledger]\n[payments/other]\na.io/x = 1\n")
        rc, out, err = self.mutate("--identity-map", path)
        self.assertEqual(rc, 2)
        self.assertIn(path + ":1: a section without annotations", err)
        self.assertEqual(out, "")


if __name__ == "__main__":
    harness.main(__name__, sys.argv)
