#!/bin/sh
# Runs pod-identity-webhook for real on this machine, no cluster needed:
#   installs only what building and running it needs (missing Debian packages), builds it
#   without the test suite into build-local/, creates a throwaway CA and serving certificate
#   (outside the repository, in $PIW_LOCAL_DIR, default
#   ${TMPDIR:-/tmp}/pod-identity-webhook-local), starts `serve` on https://127.0.0.1:8443
#   ($PIW_LOCAL_LISTEN; metrics on $PIW_LOCAL_METRICS, 127.0.0.1:9090) with the built-in
#   stackit profile plus profiles/ and the ServiceAccounts in scripts/local/service-accounts,
#   sends one AdmissionReview with curl and prints the decoded JSON Patch, then keeps
#   serving until Ctrl-C.
# docs/local-development.md explains each step.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${PIW_LOCAL_DIR:-${TMPDIR:-/tmp}/pod-identity-webhook-local}
listen=${PIW_LOCAL_LISTEN:-127.0.0.1:8443}
metrics=${PIW_LOCAL_METRICS:-127.0.0.1:9090}

# A port already taken: one line naming the variable that moves it (checked before the
# build, so the answer comes at once).
port_free() {
	python3 -c 'import socket, sys
host, _, port = sys.argv[1].rpartition(":")
s = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
try:
    s.bind((host.strip("[]") or "0.0.0.0", int(port)))
except OSError:
    sys.exit(1)' "$1"
}
for pair in "PIW_LOCAL_LISTEN=$listen" "PIW_LOCAL_METRICS=$metrics"; do
	var=${pair%%=*}
	addr=${pair#*=}
	if ! port_free "$addr"; then
		echo "run-local: $addr is in use (or cannot be bound): set $var to a free address, e.g. $var=127.0.0.1:$((${addr##*:} + 1000))" >&2
		exit 1
	fi
done

# What building and running needs, and nothing else (scripts/install-deps.sh installs the
# test, benchmark and chart tooling on top).
packages="build-essential cmake pkg-config libmicrohttpd-dev libgnutls28-dev libcjson-dev
libinih-dev libcurl4-gnutls-dev libyaml-dev openssl curl python3"
missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "run-local: installing:$missing" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo=sudo; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
cmake -S "$top" -B "$top/build-local" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPIW_TESTS=OFF >/dev/null
cmake --build "$top/build-local" -j"$(nproc)" >/dev/null

mkdir -p "$dir"
if [ ! -s "$dir/tls.crt" ]; then
	echo "run-local: creating a local CA and a certificate for 127.0.0.1 in $dir" >&2
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=pod-identity-webhook local CA" \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
		-keyout "$dir/tls.key" -out "$dir/tls.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' \
		>"$dir/ext.cnf"
	openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-CAcreateserial -days 30 -extfile "$dir/ext.cnf" -out "$dir/tls.crt" 2>/dev/null
	chmod 600 "$dir/ca.key" "$dir/tls.key"
fi

"$top/build-local/pod-identity-webhook" serve --listen "$listen" --metrics-listen "$metrics" \
	--tls-cert "$dir/tls.crt" --tls-key "$dir/tls.key" \
	--profiles-dir "$top/profiles" \
	--service-accounts-dir "$top/scripts/local/service-accounts" --log-format text &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM

url="https://$listen"
for _ in $(seq 100); do
	curl -sf --cacert "$dir/ca.crt" "$url/readyz" >/dev/null 2>&1 && break
	if ! kill -0 "$server" 2>/dev/null; then
		echo "run-local: the server exited (see above); if an address was taken meanwhile," \
			"set PIW_LOCAL_LISTEN or PIW_LOCAL_METRICS" >&2
		exit 1
	fi
	sleep 0.1
done

echo "run-local: POST $url/mutate with scripts/local/admissionreview.json:" >&2
curl -sS --cacert "$dir/ca.crt" -H 'Content-Type: application/json' \
	--data-binary @"$top/scripts/local/admissionreview.json" "$url/mutate" |
	python3 -c 'import base64, json, sys
review = json.load(sys.stdin)["response"]
print("allowed:", review["allowed"], " warnings:", review.get("warnings", []))
if "patch" in review:
    print(json.dumps(json.loads(base64.b64decode(review["patch"])), indent=2))'

echo "run-local: serving on $url (CA: $dir/ca.crt), metrics on http://$metrics/metrics;" \
	"Ctrl-C stops it" >&2
wait $server
