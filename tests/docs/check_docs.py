#!/usr/bin/python3
"""Keeps docs/ true to the code.

Usage: check_docs.py BINARY TOP

1. docs/configuration.md holds, between its options markers, exactly the table that
   `pod-identity-webhook help --markdown` prints from the option table.
2. The Azure profile in docs/profiles.md is the file profiles/azure.ini
   (without its leading comment lines), and that file passes check-profiles.
3. docs/configuration.md's table of the shipped profiles' setting flags is what
   check-profiles reports.
4. Every token-decoding command in the docs (a `cut -d. -f2 "$VAR" | ...` line)
   decodes real-shaped tokens, whose base64url payload has no padding, for every
   payload length modulo 4.
5. Every shell block preceded by `<!-- check_docs: run -->` runs as written from
   the top of the tree, with the built binary first on PATH, and exits 0.
"""
import base64
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def check_setting_flags(doc, summary):
    """docs/configuration.md's table of the shipped profiles' setting flags is
    what check-profiles reports (profile lines, then "setting NAME = V (--F) [env E]")."""
    rows, profile = [], None
    for line in summary.splitlines():
        m = re.match(r"(\S+)\s", line)
        if m and not line.startswith(" "):
            profile = m.group(1)
        m = re.match(r"\s+setting (\S+) = .*? \(--(\S+)\)(?: \[env (\S+)\])?$", line)
        if m:
            rows.append("| `--%s` | `%s` | %s | `%s` |\n"
                        % (m.group(2), m.group(3), profile, m.group(1)))
    m = re.search(r"<!-- setting-flags:begin -->\n\| flag .*?\n\|---.*?\n(.*?)"
                  r"<!-- setting-flags:end -->", doc, re.S)
    if not m or m.group(1) != "".join(rows):
        return ["docs/configuration.md setting-flags table differs from "
                "check-profiles profiles:\n" + "".join(rows)]
    return []


def doc_files(top):
    return sorted(glob.glob(f"{top}/docs/*.md") + glob.glob(f"{top}/providers/*/README.md")
                  + [f"{top}/README.md"])


def fake_token(payload):
    """A JWT-shaped string: base64url without padding, as the API server writes it."""
    def part(obj):
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return "%s.%s.c2lnbmF0dXJl" % (part({"alg": "RS256", "kid": "k"}), part(payload))


def check_token_decoders(top):
    """Runs each documented decoding pipeline on tokens of every padding length."""
    failures, seen = [], 0
    pipe = re.compile(r'^(cut -d\. -f2 "\$([A-Z_]+)" .*)$', re.M)
    with tempfile.TemporaryDirectory() as tmp:
        for path in doc_files(top):
            for m in pipe.finditer(open(path).read()):
                seen += 1
                command, var = m.group(1), m.group(2)
                for pad in range(4):
                    claims = {"iss": "https://issuer.example", "aud": ["sts"],
                              "sub": "system:serviceaccount:ns:" + "x" * pad}
                    token = fake_token(claims)
                    file = os.path.join(tmp, "token")
                    with open(file, "w") as f:
                        f.write(token)
                    out = subprocess.run(["sh", "-c", command], capture_output=True,
                                         text=True, env={**os.environ, var: file})
                    try:
                        ok = out.returncode == 0 and json.loads(out.stdout) == claims
                    except ValueError:
                        ok = False
                    if not ok:
                        failures.append("%s: %r does not decode a token whose payload is "
                                        "%d mod 4: %s" % (os.path.relpath(path, top), command,
                                                           len(token.split(".")[1]) % 4,
                                                           out.stderr.strip()))
                        break
    if seen == 0:
        failures.append("no token-decoding command found in the docs")
    return failures


def check_run_blocks(binary, top):
    """Runs every ```sh block marked <!-- check_docs: run --> from the top of the tree."""
    failures = []
    block = re.compile(r"<!-- check_docs: run -->\n```sh\n(.*?)```", re.S)
    with tempfile.TemporaryDirectory() as bindir:
        os.symlink(os.path.abspath(binary), os.path.join(bindir, "pod-identity-webhook"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIW_")}
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        for path in doc_files(top):
            for m in block.finditer(open(path).read()):
                out = subprocess.run(["sh", "-ec", m.group(1)], cwd=top, env=env,
                                     capture_output=True, text=True, timeout=120)
                if out.returncode != 0:
                    failures.append("%s: this block exits %d:\n%s%s"
                                    % (os.path.relpath(path, top), out.returncode,
                                       m.group(1), out.stderr[-2000:]))
    return failures


def main():
    binary, top = sys.argv[1], sys.argv[2]
    failures = []
    table = subprocess.run([binary, "help", "--markdown"], check=True,
                           capture_output=True, text=True).stdout
    doc = open(f"{top}/docs/configuration.md").read()
    m = re.search(r"<!-- options:begin -->\n(.*?)<!-- options:end -->", doc, re.S)
    if not m or m.group(1) != table:
        failures.append("docs/configuration.md options table differs from "
                        "`help --markdown`; regenerate it")
    profiles_doc = open(f"{top}/docs/profiles.md").read()
    block = re.search(r"## A worked example: Azure.*?```ini\n(.*?)```", profiles_doc, re.S)
    azure = open(f"{top}/profiles/azure.ini").read()
    azure_body = "".join(l for l in azure.splitlines(True) if not l.startswith(";")).lstrip("\n")
    if not block or block.group(1) != azure_body:
        failures.append("docs/profiles.md Azure example differs from profiles/azure.ini")
    check = subprocess.run([binary, "check-profiles", f"{top}/profiles"],
                           capture_output=True, text=True)
    if check.returncode != 0:
        failures.append("profiles/ fails check-profiles: " + check.stderr.strip())
    failures += check_setting_flags(doc, check.stdout)
    failures += check_token_decoders(top)
    failures += check_run_blocks(binary, top)
    for f in failures:
        print("check_docs:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
