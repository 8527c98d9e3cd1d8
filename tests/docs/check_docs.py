#!/usr/bin/python3
"""Keeps docs/ true to the code.

Usage: check_docs.py BINARY TOP

1. docs/configuration.md holds, between its options markers, exactly the table that
   `pod-identity-webhook help --markdown` prints from the option table.
2. The Azure profile in docs/profiles.md is the file profiles/azure.ini
   (without its leading comment lines), and that file passes check-profiles.
"""
import re
import subprocess
import sys


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
    for f in failures:
        print("check_docs:", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
