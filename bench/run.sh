#!/bin/sh
# The benchmark of pod-identity-webhook: see docs/performance.md.
#
# usage: bench/run.sh [--quick] [--smoke] [--out FILE] [--binary PATH] [bench.py options]
#   (default)      full run: builds build-release, ~10 s per scenario, the keep-alive runs
#                  (ours and nginx alternated) 3 times, 100,000 ServiceAccounts: ~5 minutes
#   --quick        ~2 s per scenario, one keep-alive run, 10,000 ServiceAccounts: < 60 s
#   --smoke        with --quick: 1 s per scenario; only checks that every scenario runs and
#                  produces numbers (exit 0), whatever the numbers; what CTest runs
#   --out FILE     also write the report (machine, command, table) to FILE
#   --binary PATH  measure this binary instead of building build-release
#   --artifacts DIR, --profile, --duration S, --repeat N, --keep, --verbose: see
#                  bench/bench.py --help
# Installs nothing by hand: scripts/install-deps.sh provides wrk, nginx-light, valgrind,
# openssl (it is run first unless --smoke or --binary is given).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)

binary=""
smoke=0
command="bench/run.sh"
prev=""
for a in "$@"; do
	case "$prev" in --binary) binary=$a ;; esac
	case "$a" in --smoke) smoke=1 ;; esac
	command="$command $a"
	prev=$a
done

if [ -z "$binary" ]; then
	if [ "$smoke" -eq 0 ]; then
		"$top/scripts/install-deps.sh"
	fi
	# what is built: the commit, "-dirty" with uncommitted changes, and whether the sources
	# changed while building (someone editing them meanwhile: the result is ambiguous)
	before=$(git -C "$top" describe --always --dirty 2>/dev/null || echo unknown)
	sum_before=$(cd "$top" && cat src/*.c include/*/*.h CMakeLists.txt | cksum)
	echo "bench: building $top/build-release (Release, no tests) from $before" >&2
	cmake -S "$top" -B "$top/build-release" -DCMAKE_BUILD_TYPE=Release -DPIW_TESTS=OFF >/dev/null
	cmake --build "$top/build-release" -j"$(nproc)" >/dev/null
	sum_after=$(cd "$top" && cat src/*.c include/*/*.h CMakeLists.txt | cksum)
	sources="build-release from $before"
	if [ "$sum_before" != "$sum_after" ]; then
		sources="$sources (the sources changed during the build)"
	fi
	set -- --binary "$top/build-release/pod-identity-webhook" --sources "$sources" "$@"
fi

exec /usr/bin/python3 "$top/bench/bench.py" --command "$command" "$@"
