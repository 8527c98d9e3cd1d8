#!/bin/sh
# Provides a real kube-apiserver for the end-to-end tests, built once and cached.
#
# usage: tests/e2e/get-apiserver.sh
#   prints the directory holding `kube-apiserver` and `kubectl` on standard output, exit 0;
#   exit 77 with one line "e2e: SKIPPED: <reason>" on standard error when it cannot be
#   obtained for an environmental reason (a download failed, not enough disk);
#   exit 1 when the build itself fails (that is a failure, never a skip).
#
# What it does, the first time (about 5 minutes on 2 cores; ~2.3 GB of disk while
# building, ~120 MB kept):
#   - a private apt configuration under the cache (its own sources list, lists and
#     archives; APT_CONFIG), so the system's apt setup is untouched;
#   - fetches Debian bookworm's source package `kubernetes` (1.20.5+really1.20.2: the
#     complete upstream v1.20.2 tree with vendor/) and Debian bullseye's Go 1.15
#     (golang-1.15-go, golang-1.15-src), the toolchain upstream used: built with
#     Go >= 1.18 the API server crashes on the first webhook response carrying a
#     JSONPatch (its vendored modern-go/reflect2 1.0.1);
#   - and Debian's kubectl of the same release (kubernetes-client, unpacked: installing it
#     would collide with other kubectl packages);
#   - unpacks them (no package is installed), runs upstream's `make generated_files`
#     (the generated OpenAPI file is not in the tarball) and
#     `make WHAT=cmd/kube-apiserver`, keeps the binary and deletes the tree.
#
# The cache is $PIW_E2E_CACHE, else $XDG_CACHE_HOME/pod-identity-webhook, else
# ~/.cache/pod-identity-webhook. Needs make and rsync (scripts/install-deps.sh).
set -eu

cache=${PIW_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pod-identity-webhook}
upstream=1.20.2
out=$cache/kube-apiserver-$upstream
need_kb=3500000 # the tree, Go's build cache and the toolchain, with a margin

skip() {
	echo "e2e: SKIPPED: $*" >&2
	exit 77
}

if [ -x "$out/kube-apiserver" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache" || skip "cannot create the cache directory $cache"
# One build at a time (two test runs may start together).
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$out/kube-apiserver" ]; then
	echo "$out"
	exit 0
fi

free_kb=$(df -Pk "$cache" | awk 'NR == 2 { print $4 }')
if [ "$free_kb" -lt "$need_kb" ]; then
	skip "$((free_kb / 1024)) MB free under $cache, $((need_kb / 1024)) MB needed to build kube-apiserver"
fi

apt_dir=$cache/apt
work=$cache/build
rm -rf "$work"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/cache" \
	"$apt_dir/sources.list.d" "$work/debs" "$work/go"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat >"$apt_dir/sources.list" <<EOF
deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bullseye main
EOF
cat >"$apt_dir/apt.conf" <<EOF
Dir::State::Lists "$apt_dir/lists";
Dir::Cache "$apt_dir/cache";
Dir::Cache::Archives "$apt_dir/archives";
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "$apt_dir/sources.list.d";
EOF
export APT_CONFIG="$apt_dir/apt.conf"

log=$work/apt.log
echo "get-apiserver: fetching the kubernetes source package and Go 1.15 (log: $log)" >&2
apt-get update -q >"$log" 2>&1 ||
	skip "apt-get update of the private apt configuration failed: $(tail -n 1 "$log")"
(cd "$work" && apt-get source --download-only -q kubernetes) >>"$log" 2>&1 ||
	skip "downloading Debian's kubernetes source package failed: $(tail -n 1 "$log")"
(cd "$work/debs" && apt-get download -q golang-1.15-go golang-1.15-src) >>"$log" 2>&1 ||
	skip "downloading Debian bullseye's Go 1.15 failed: $(tail -n 1 "$log")"
# kubectl of the same release, unpacked beside the API server: installing Debian's
# kubernetes-client would collide with other kubectl packages (Google Cloud SDK's).
(cd "$work" && apt-get download -q kubernetes-client) >>"$log" 2>&1 ||
	skip "downloading Debian's kubernetes-client failed: $(tail -n 1 "$log")"

orig=$(ls "$work"/kubernetes_*.orig.tar.gz)
case "$orig" in
*really$upstream.orig.tar.gz) ;;
*) echo "get-apiserver: expected upstream $upstream, Debian has $orig" >&2 ;;
esac
for deb in "$work"/debs/*.deb; do
	dpkg-deb -x "$deb" "$work/go"
done
dpkg-deb -x "$work"/kubernetes-client_*.deb "$work/client"
tar -xzf "$orig" -C "$work"
tree=$work/kubernetes-$upstream

echo "get-apiserver: building kube-apiserver $upstream with Go 1.15 (log: $work/make.log)" >&2
export GOROOT="$work/go/usr/lib/go-1.15"
export PATH="$GOROOT/bin:$PATH"
export GOCACHE="$work/gocache" GOPATH="$work/gopath"
export KUBE_GIT_VERSION="v$upstream" KUBE_GIT_TREE_STATE=clean
if ! (cd "$tree" && make generated_files && make WHAT=cmd/kube-apiserver) \
	>"$work/make.log" 2>&1; then
	tail -n 30 "$work/make.log" >&2
	echo "get-apiserver: building kube-apiserver failed (log: $work/make.log)" >&2
	exit 1
fi

mkdir -p "$out.tmp"
cp "$tree/_output/bin/kube-apiserver" "$work/client/usr/bin/kubectl" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
rm -rf "$work"
echo "$out"
