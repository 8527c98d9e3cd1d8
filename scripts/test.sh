#!/bin/sh
# The whole test suite on a fresh Debian machine: installs what is missing, builds with
# -Werror twice (a release build, then an AddressSanitizer + UndefinedBehaviorSanitizer
# build) and runs every test in both (the valgrind tests only in the first).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

"$top/scripts/install-deps.sh"

cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$jobs"
ctest --test-dir "$top/build" --output-on-failure -j"$jobs"

cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DPIW_SANITIZE=ON >/dev/null
cmake --build "$top/build-asan" -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --test-dir "$top/build-asan" --output-on-failure -j"$jobs" -LE 'valgrind|source|image|chart|fakeapi'
echo "test.sh: all tests passed"
