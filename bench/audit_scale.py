#!/usr/bin/python3
"""Scale benchmark of `pod-identity-webhook audit` (not a test: it measures).

Starts the fake API server (tests/fakeapi/fake_apiserver.py, its own process, TLS on
127.0.0.1, bearer token) holding SAS ServiceAccounts across NAMESPACES namespaces, each
with the AWS trigger (eks.amazonaws.com/role-arn, a role named after it), and PODS pods:
the pod of bench/data/admissionreview-deployment.json (a Deployment's pod: 2 containers
+ 1 init container, 28 env vars, probes, resources, managedFields; ~7 KB as listed),
half of them as created before the webhook (bare: `missing`), half as the webhook
admitted them (the template run through `mutate --output pod`: `ok`, the expensive
verdict, as audit decides twice to compare the values). Pod i runs as ServiceAccount i
(mod SAS).

Then, RUNS times, it runs `BINARY audit --kubeconfig ... -o json` (500 items a page) and
measures its wall time (exec to exit, the whole list included: the fake serves the
pages from Python, so part of the time is the fake's), its CPU time, and its peak
resident memory (ru_maxrss of the process, from wait4; this script stays small meanwhile,
as the child's pages before exec count too). The last run's JSON is checked: every pod
present, the statuses as built. Prints a Markdown table, the machine and the
exact command.

With --callgrind N it measures instead what does not move with the machine's load: the
instructions audit executes (valgrind --tool=callgrind, everything included: TLS, parsing,
deciding, output) with N pods, minus those with no pod (same ServiceAccounts), per pod.

Usage: /usr/bin/python3 bench/audit_scale.py [BINARY] [--pods 100000] [--sas 100000]
       [--namespaces 100] [--runs 3] [--callgrind N]
"""
import argparse
import collections
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))

from kubeharness import kubeconfig_text  # noqa: E402
from sa_scale import TOKEN, Fake  # noqa: E402

ARN = "eks.amazonaws.com/role-arn"
REGION = "eu-central-1"
# Stand-ins for the per-pod names in the admitted template (replaced by the fake).
POD_MARK, NS_MARK, SA_MARK = "zzpodzz", "zznszz", "zzsazz"


def template_pod():
    """The benchmark's Deployment pod, with the fake's placeholders."""
    with open(os.path.join(TOP, "bench", "data", "admissionreview-deployment.json")) as f:
        pod = json.load(f)["request"]["object"]
    for key in ("generateName", "creationTimestamp"):
        pod["metadata"].pop(key, None)
    pod["spec"]["serviceAccountName"] = "{sa}"
    return pod


def admitted_template(binary, workdir, bare):
    """The template as the webhook admits it: mutate with stand-in names, which then
    become the fake's placeholders."""
    pod = json.loads(json.dumps(bare).replace("{sa}", SA_MARK))
    pod["metadata"].update(name=POD_MARK, namespace=NS_MARK)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": {"name": SA_MARK, "namespace": NS_MARK,
                       "annotations": {ARN: "arn:aws:iam::111122223333:role/" + SA_MARK}}}
    paths = [os.path.join(workdir, n) for n in ("pod.json", "sa.json")]
    for path, obj in zip(paths, (pod, sa)):
        with open(path, "w") as f:
            json.dump(obj, f)
    out = subprocess.run([binary, "mutate", "--pod", paths[0], "--service-account", paths[1],
                          "--output", "pod", "--setting", "region=" + REGION,
                          "--profiles-dir", os.path.join(TOP, "profiles")],
                         capture_output=True, text=True, check=True).stdout
    out = out.replace(POD_MARK, "{name}").replace(NS_MARK, "{namespace}")
    admitted = json.loads(out.replace(SA_MARK, "{sa}"))
    del admitted["metadata"]["name"], admitted["metadata"]["namespace"]
    return admitted


def populate(fake, binary, workdir, args):
    fake.control("POST", "/serviceaccounts/bulk", {
        "count": args.sas, "namespaces": args.namespaces, "annotated_fraction": 1.0,
        "annotations": {ARN: "arn:aws:iam::111122223333:role/{name}"}})
    bare = template_pod()
    half = args.pods // 2
    fake.control("POST", "/pods/bulk", {"count": args.pods - half,
                                        "namespaces": args.namespaces,
                                        "template": bare, "name_prefix": "bare"})
    fake.control("POST", "/pods/bulk", {"count": half, "namespaces": args.namespaces,
                                        "template": admitted_template(binary, workdir, bare),
                                        "name_prefix": "web"})
    fake.control("DELETE", "/requests")


def run_once(cmd, out_path):
    started = time.monotonic()
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss * 1024 / 1e6, "status": proc.returncode,
            "stderr": err}


def check(out_path, args):
    with open(out_path) as f:
        report = json.load(f)
    counts = collections.Counter(p["status"] for p in report["pods"])
    half = args.pods // 2
    want = {"missing": args.pods - half, "ok": half}
    if len(report["pods"]) != args.pods or dict(counts) != {k: v for k, v in want.items()
                                                             if v}:
        odd = [p for p in report["pods"] if p["status"] not in want][:1]
        sys.exit("audit_scale: unexpected report: %d pods, %r %r" % (
            len(report["pods"]), dict(counts), odd))
    return counts


def instructions(cmd, workdir, name):
    """Instructions executed by cmd under callgrind (its exit status must be 0 or 1)."""
    out = os.path.join(workdir, name + ".callgrind")
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
                          + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1):
        sys.exit("audit_scale: audit under callgrind exited %d: %s" % (done.returncode,
                                                                        done.stderr[-2000:]))
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit("audit_scale: no totals in " + out)


def callgrind(args, binary):
    """Instructions per pod: N pods minus none, the same ServiceAccounts."""
    workdir = tempfile.mkdtemp(prefix="piw-audit-bench-")
    fake = Fake(workdir)
    try:
        args.pods = 0
        populate(fake, binary, workdir, args)
        cmd = audit_command(binary, fake, workdir)
        base = instructions(cmd, workdir, "base")
        args.pods = args.callgrind
        populate(fake, binary, workdir, args)
        total = instructions(cmd, workdir, "pods")
    finally:
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("command: /usr/bin/python3 bench/audit_scale.py %s" % shlex.join(sys.argv[1:]))
    print("| audit, instructions per pod (callgrind; %s pods, half ok, half missing; %s "
          "ServiceAccounts) | %s per pod (%s with the pods, %s without) |"
          % (format(args.callgrind, ","), format(args.sas, ","),
             format((total - base) // args.callgrind, ","), format(total, ","),
             format(base, ",")))


def audit_command(binary, fake, workdir):
    kubeconfig = os.path.join(workdir, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(kubeconfig_text(fake.api_url, {"certificate-authority": fake.pki["ca.crt"]},
                                {"token": TOKEN}))
    return [binary, "audit", "--kubeconfig", kubeconfig, "-o", "json", "--setting",
            "region=" + REGION, "--profiles-dir", os.path.join(TOP, "profiles")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("binary", nargs="?",
                    default=os.path.join(TOP, "build", "pod-identity-webhook"))
    ap.add_argument("--pods", type=int, default=100000)
    ap.add_argument("--sas", type=int, default=100000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--callgrind", type=int, default=0, metavar="N")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    if args.callgrind:
        callgrind(args, binary)
        return
    workdir = tempfile.mkdtemp(prefix="piw-audit-bench-")
    fake = Fake(workdir)
    try:
        populate(fake, binary, workdir, args)
        cmd = audit_command(binary, fake, workdir)
        out_path = os.path.join(workdir, "report.json")
        runs = []
        for _ in range(args.runs):
            r = run_once(cmd, out_path)
            if r["status"] != 1:   # half the pods are missing: exit 1
                sys.exit("audit_scale: audit exited %d: %s" % (r["status"], r["stderr"]))
            runs.append(r)
        # Read only now: ru_maxrss counts the forked child before its exec, so this
        # process must stay small while audit runs.
        counts = check(out_path, args)
        pages = len(fake.list_requests()) // args.runs
    finally:
        fake.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    med = statistics.median(r["seconds"] for r in runs)
    print("machine: %s, %d CPUs, Python %s" % (platform.platform(), os.cpu_count(),
                                               platform.python_version()))
    print("command: /usr/bin/python3 bench/audit_scale.py %s" % shlex.join(sys.argv[1:]))
    print()
    print("| scenario | result |")
    print("|---|---|")
    print("| audit of %s pods (%s ServiceAccounts, %d namespaces; %s ok, %s missing), "
          "%d list pages | %.1f s wall (median of %d: %s), %.1f s CPU, peak RSS %.1f MB "
          "(runs: %s) |"
          % (format(args.pods, ","), format(args.sas, ","), args.namespaces,
             format(counts["ok"], ","), format(counts["missing"], ","), pages, med,
             len(runs), ", ".join("%.1f" % r["seconds"] for r in runs),
             statistics.median(r["cpu"] for r in runs),
             max(r["maxrss_mb"] for r in runs),
             ", ".join("%.1f" % r["maxrss_mb"] for r in runs)))


if __name__ == "__main__":
    main()
