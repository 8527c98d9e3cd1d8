#!/bin/sh
# Runs the runtime image's file set without a container engine: assembles it with
# image_contents.sh --rootfs (exactly what the Dockerfile's final FROM-scratch stage gets),
# then chroots into it as the image's user 65532 and checks that
#   - the binary starts (--version) and loads the shipped profiles (check-profiles),
#   - `serve`, with the Dockerfile's ENV, comes up from nothing but that tree (no shell, no CA bundle, no /tmp) and
#     answers /readyz over TLS for the Service name, verified against its CA, and /metrics,
#   - SIGTERM stops it with status 0.
# A missing library, loader or file shows up here as it would in the image.
#
# usage: image_rootfs_check.sh BINARY REPO_ROOT     (needs root for chroot, plus certtool, curl)
set -eu

[ $# -eq 2 ] || { echo "usage: $0 BINARY REPO_ROOT" >&2; exit 2; }
binary=$1
top=$2
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "image_rootfs_check.sh: needs root (chroot); skipped" >&2
	exit 77
fi
for tool in certtool curl; do
	command -v "$tool" >/dev/null || { echo "image_rootfs_check.sh: $tool missing" >&2; exit 2; }
done
chroot=$(command -v chroot || echo /usr/sbin/chroot)

work=$(mktemp -d)
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
root="$work/rootfs"
"$here/image_contents.sh" --rootfs "$root" "$binary"

run() { "$chroot" --userspec=65532:65532 "$root" /pod-identity-webhook "$@"; }

run --version
# the shipped profiles, where the chart mounts them
mkdir -p "$root/etc/pod-identity-webhook/profiles"
cp "$top/profiles/aws.ini" "$top/profiles/vultr.ini" "$root/etc/pod-identity-webhook/profiles/"
run check-profiles /etc/pod-identity-webhook/profiles --region eu-west-1 >"$work/profiles.txt"
grep -q '^3 profile(s) OK' "$work/profiles.txt" || { cat "$work/profiles.txt"; exit 1; }

# a CA and a certificate for the Service name, where the chart mounts them (mode 0440,
# group 65532, as with the chart's fsGroup)
name=piw-pod-identity-webhook.piw-system.svc
certs="$root/etc/webhook/certs"
mkdir -p "$certs" "$root/serviceaccounts"
printf 'cn = "rootfs check CA"\nca\ncert_signing_key\nexpiration_days = 2\n' >"$work/ca.tmpl"
printf 'cn = "%s"\ndns_name = "%s"\ntls_www_server\nsigning_key\nexpiration_days = 2\n' \
	"$name" "$name" >"$work/srv.tmpl"
certtool --generate-privkey --key-type ecdsa --outfile "$work/ca.key" 2>/dev/null
certtool --generate-self-signed --load-privkey "$work/ca.key" --template "$work/ca.tmpl" \
	--outfile "$work/ca.crt" 2>/dev/null
certtool --generate-privkey --key-type ecdsa --outfile "$certs/tls.key" 2>/dev/null
certtool --generate-certificate --load-privkey "$certs/tls.key" \
	--load-ca-certificate "$work/ca.crt" --load-ca-privkey "$work/ca.key" \
	--template "$work/srv.tmpl" --outfile "$certs/tls.crt" 2>/dev/null
chgrp 65532 "$certs/tls.key" "$certs/tls.crt"
chmod 0440 "$certs/tls.key" "$certs/tls.crt"

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https_port=$(port)
metrics_port=$(port)
# the image's environment: the Dockerfile's ENV lines (NAME=VALUE, one per line)
image_env=$(sed -n 's/^ENV \([A-Z_][A-Z_0-9]*=[^ ]*\)$/\1/p' "$top/Dockerfile")
[ -n "$image_env" ] || { echo "image_rootfs_check.sh: no ENV in the Dockerfile" >&2; exit 1; }
# shellcheck disable=SC2086 # one NAME=VALUE word each
env $image_env PIW_LISTEN=127.0.0.1:$https_port PIW_METRICS_LISTEN=127.0.0.1:$metrics_port \
	PIW_SERVICE_ACCOUNTS_DIR=/serviceaccounts PIW_PROFILES_DIR=/etc/pod-identity-webhook/profiles \
	PIW_REGION=eu-west-1 PIW_SHUTDOWN_DELAY=0s \
	"$chroot" --userspec=65532:65532 "$root" /pod-identity-webhook serve 2>"$work/serve.log" &
pid=$!

ok=""
for _ in $(seq 100); do
	if curl -fsS --cacert "$work/ca.crt" --resolve "$name:$https_port:127.0.0.1" \
		"https://$name:$https_port/readyz" >/dev/null 2>&1; then
		ok=1
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$ok" ]; then
	echo "image_rootfs_check.sh: serve never became ready:" >&2
	cat "$work/serve.log" >&2
	exit 1
fi
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -q '^piw_build_info'
# env and chroot exec in place, so $pid is serve's
for kv in $image_env; do
	tr '\0' '\n' <"/proc/$pid/environ" | grep -qx "$kv" ||
		{ echo "image_rootfs_check.sh: serve runs without $kv" >&2; exit 1; }
done
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || { echo "serve exited $status" >&2; cat "$work/serve.log" >&2; exit 1; }
echo "image_rootfs_check.sh: the runtime file set starts, serves TLS as 65532 and stops cleanly"
