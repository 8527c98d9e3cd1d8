#!/bin/sh
# The end-to-end tests: pod-identity-webhook against a real kube-apiserver (see
# docs/testing.md). usage: tests/e2e/run.sh BINARY [unittest arguments]
#
# Gets the API server (tests/e2e/get-apiserver.sh: built once, cached). If it cannot be
# obtained for an environmental reason, prints one line "e2e: SKIPPED: <reason>" and
# exits 0; anything else that goes wrong, and any failing case, exits non-zero.
set -u
here=$(cd "$(dirname "$0")" && pwd)
binary=${1:?usage: tests/e2e/run.sh BINARY [unittest arguments]}
shift

apiserver_dir=$("$here/get-apiserver.sh")
rc=$?
if [ "$rc" -eq 77 ]; then
	exit 0 # get-apiserver.sh printed the "e2e: SKIPPED: <reason>" line
elif [ "$rc" -ne 0 ]; then
	echo "e2e: FAILED: could not build kube-apiserver (see above)" >&2
	exit 1
fi
exec /usr/bin/python3 "$here/test_e2e.py" "$binary" "$apiserver_dir" "$@"
