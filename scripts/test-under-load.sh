#!/bin/sh
# The whole suite (scripts/test.sh) with every core kept busy by another process: no test
# may fail because the machine is slow (docs/testing.md, "Under load").
#
# usage: scripts/test-under-load.sh [LOG]
#   Installs Debian's stress-ng if it is missing, starts `stress-ng --cpu N` (N = the
#   number of cores, PIW_LOAD_WORKERS to change it), runs scripts/test.sh with the same
#   environment, stops stress-ng however the suite ends, and prints the wall time and
#   the CTest summary line of each stage. The full output goes to LOG (default
#   test-under-load.log in the current directory). Exit status: scripts/test.sh's.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
log=${1:-test-under-load.log}
workers=${PIW_LOAD_WORKERS:-$(nproc)}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v stress-ng >/dev/null 2>&1; then
	echo "test-under-load: installing stress-ng" >&2
	as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
		stress-ng >/dev/null
fi

stress-ng --cpu "$workers" --quiet &
stress=$!
stop_stress() {
	kill "$stress" 2>/dev/null || true
	wait "$stress" 2>/dev/null || true
}
trap stop_stress EXIT
trap 'exit 130' INT TERM

echo "test-under-load: stress-ng --cpu $workers (pid $stress) on $(nproc) cores;" \
	"scripts/test.sh output in $log" >&2
started=$(date +%s)
status=0
"$top/scripts/test.sh" >"$log" 2>&1 || status=$?
ended=$(date +%s)
stop_stress

elapsed=$((ended - started))
echo "test-under-load: scripts/test.sh exit $status after $((elapsed / 60)) min $((elapsed % 60)) s" \
	"under stress-ng --cpu $workers"
grep -E "tests passed|tests failed out of|^e2e:|test.sh: all tests passed" "$log" || true
if [ "$status" -ne 0 ]; then
	echo "test-under-load: failures:"
	grep -E "\*\*\*Failed|\*\*\*Timeout|^FAIL:|^ERROR:|AssertionError" "$log" | head -40 || true
fi
exit "$status"
