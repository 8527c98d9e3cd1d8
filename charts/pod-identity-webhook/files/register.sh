# Registers the webhook once a replica is ready: waits until the webhook Service's
# Endpoints lists a ready address, then patches the rules into the webhook configuration.
# POSIX sh and curl only. Input (environment): NAMESPACE, SERVICE, CONFIGURATION, WEBHOOK
# (the webhook's name in it), RULES (JSON), TIMEOUT (seconds); PIW_API, PIW_TOKEN_FILE and
# PIW_CA_FILE override the in-cluster API address and credentials.
set -eu
sa=/var/run/secrets/kubernetes.io/serviceaccount
if [ -z "${PIW_API:-}" ]; then
	host=${KUBERNETES_SERVICE_HOST:?not in a pod: set PIW_API}
	case $host in *:*) host="[$host]" ;; esac
	PIW_API="https://$host:${KUBERNETES_SERVICE_PORT:-443}"
fi
token_file=${PIW_TOKEN_FILE:-$sa/token}
ca=${PIW_CA_FILE:-$sa/ca.crt}

api() {
	curl -sS --fail-with-body --max-time 10 --cacert "$ca" \
		-H "Authorization: Bearer $(cat "$token_file")" "$@"
}

endpoints="$PIW_API/api/v1/namespaces/$NAMESPACE/endpoints/$SERVICE"
deadline=$(($(date +%s) + TIMEOUT))
echo "register: waiting up to ${TIMEOUT}s for a ready replica behind Service $NAMESPACE/$SERVICE"
while :; do
	body=$(api "$endpoints" 2>&1) || true
	# ready addresses are under "addresses"; starting pods under "notReadyAddresses"
	case $body in *'"addresses":'*) break ;; esac
	if [ "$(date +%s)" -ge "$deadline" ]; then
		echo "register: no ready replica after ${TIMEOUT}s: the webhook stays unregistered" \
			"(MutatingWebhookConfiguration $CONFIGURATION has no rules, so no pod is sent to it)." \
			"See why: kubectl -n $NAMESPACE get pods; kubectl -n $NAMESPACE logs deployment/$SERVICE." \
			"Last answer for the endpoints: $body" >&2
		exit 1
	fi
	sleep 2
done

# "test" first: the patch applies only to the configuration this release rendered
patch='[{"op":"test","path":"/webhooks/0/name","value":"'"$WEBHOOK"'"},{"op":"replace","path":"/webhooks/0/rules","value":'"$RULES"'}]'
api -X PATCH -H "Content-Type: application/json-patch+json" --data "$patch" \
	"$PIW_API/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/$CONFIGURATION" \
	>/dev/null
echo "register: a replica is ready; MutatingWebhookConfiguration $CONFIGURATION now sends pods to it"
