#!/bin/sh
# The whole test suite on a fresh Debian machine: installs what is missing, then
#   1. a release build with -Werror: every test (unit, golden cases, CLI, integration
#      over TLS, Kubernetes source against the fake API server, hostile clients and
#      faults, the Helm chart, the image file set, docs and source checks, the quick
#      benchmark, each cloud's own SDK against a local fake of its token service), plus
#      valgrind runs of the unit tests, `mutate` and the integration tests;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build: the same tests, minus the
#      ones that test packaging or the profiles rather than code;
#   3. the end-to-end tests against a real kube-apiserver (tests/e2e: built once from
#      Debian's source package and cached, ~5 minutes the first time), with the release
#      build; "e2e: SKIPPED: <reason>" only when it cannot be downloaded or built for
#      lack of disk;
#   4. a clang libFuzzer build: each fuzz target for PIW_FUZZ_SECONDS (default 30).
# docs/testing.md describes the layers and how to run each alone.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)
fuzz_seconds=${PIW_FUZZ_SECONDS:-30}

"$top/scripts/install-deps.sh"

cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$jobs"
ctest --test-dir "$top/build" --output-on-failure -j"$jobs"

cmake -S "$top" -B "$top/build-asan" -DCMAKE_BUILD_TYPE=Debug -DPIW_SANITIZE=ON >/dev/null
cmake --build "$top/build-asan" -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --test-dir "$top/build-asan" --output-on-failure -j"$jobs" \
	-LE 'valgrind|source|image|chart|fakeapi|bench|sdk'

"$top/tests/e2e/run.sh" "$top/build/pod-identity-webhook"

cmake -S "$top" -B "$top/build-fuzz" -DCMAKE_C_COMPILER=clang -DPIW_FUZZ=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIW_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build "$top/build-fuzz" -j"$jobs" --target fuzz_admission fuzz_json fuzz_profile \
	fuzz_kube_event fuzz_kubeconfig fuzz_identity_map fuzz_audit
ctest --test-dir "$top/build-fuzz" --output-on-failure -j"$jobs" -L fuzz
echo "test.sh: all tests passed"
