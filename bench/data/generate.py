#!/usr/bin/env python3
# Writes the two benchmark requests (compact JSON, as the API server sends them):
#   admissionreview-deployment.json          a Deployment's pod whose ServiceAccount default/app
#                                            carries the stackit and aws annotations (matches)
#   admissionreview-deployment-nomatch.json  the same pod with ServiceAccount default/worker,
#                                            which has no annotation (the common case)
# 2 containers + 1 init container, 28 env vars, probes, resources, security contexts, a
# projected kube-api-access volume, managedFields: ~7 KB. Run from anywhere; rewrites both files.
import copy
import json
import os

os.chdir(os.path.dirname(os.path.abspath(__file__)))
uid_rs = "5f0c3a3e-2b1d-4c7e-9a55-0d7f5c1e9b21"
def env_app():
    e = [
        {"name": "APP_ENV", "value": "production"},
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "LOG_FORMAT", "value": "json"},
        {"name": "HTTP_PORT", "value": "8080"},
        {"name": "METRICS_PORT", "value": "9102"},
        {"name": "DB_HOST", "value": "postgres.data.svc"},
        {"name": "DB_PORT", "value": "5432"},
        {"name": "DB_NAME", "value": "orders"},
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "password"}}},
        {"name": "REDIS_URL", "value": "redis://redis.data.svc:6379/0"},
        {"name": "KAFKA_BROKERS", "value": "kafka.data.svc:9092"},
        {"name": "FEATURE_FLAGS", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "feature-flags"}}},
        {"name": "CACHE_TTL", "value": "300s"},
        {"name": "HOME", "value": "/tmp"},
        {"name": "REQUEST_TIMEOUT", "value": "15s"},
        {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector:4317"},
        {"name": "OTEL_SERVICE_NAME", "value": "app"},
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
    ]
    return e
def env_sidecar():
    return [
        {"name": "UPSTREAM", "value": "http://127.0.0.1:8080"},
        {"name": "LISTEN", "value": ":9090"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
    ]
sa_mount = {"name": "kube-api-access-x7k2p", "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
csc = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
       "capabilities": {"drop": ["ALL"]}}
common = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}
init = dict(name="migrate", image="registry.example.com/orders/migrate:2.14.0", command=["/migrate"],
            env=[{"name": "DB_HOST", "value": "postgres.data.svc"},
                 {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "orders-db", "key": "password"}}}],
            resources={"limits": {"cpu": "200m", "memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
            volumeMounts=[sa_mount], securityContext=csc, **common)
app = dict(name="app", image="registry.example.com/orders/app:2.14.0",
           ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": 9102, "protocol": "TCP"}],
           env=env_app(),
           resources={"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "250m", "memory": "256Mi"}},
           volumeMounts=[{"name": "config", "readOnly": True, "mountPath": "/etc/app"},
                         {"name": "tmp", "mountPath": "/tmp"}, sa_mount],
           livenessProbe={"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 10,
                          "timeoutSeconds": 2, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
           readinessProbe={"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "timeoutSeconds": 1,
                           "periodSeconds": 5, "successThreshold": 1, "failureThreshold": 3},
           securityContext=csc, **common)
side = dict(name="proxy", image="registry.example.com/platform/proxy:1.9.3",
            args=["--listen=:9090", "--upstream=http://127.0.0.1:8080", "--log-level=warn"],
            env=env_sidecar(),
            resources={"limits": {"cpu": "200m", "memory": "128Mi"}, "requests": {"cpu": "20m", "memory": "32Mi"}},
            volumeMounts=[sa_mount],
            readinessProbe={"tcpSocket": {"port": 9090}, "timeoutSeconds": 1, "periodSeconds": 10,
                            "successThreshold": 1, "failureThreshold": 3},
            securityContext=csc, **common)
mf = {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": "2025-01-01T00:00:00Z",
      "fieldsType": "FieldsV1",
      "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app.kubernetes.io/name": {}, "f:pod-template-hash": {}},
                                  "f:ownerReferences": {".": {}, "k:{\"uid\":\"%s\"}" % uid_rs: {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {}, "f:name": {}},
                                               "k:{\"name\":\"proxy\"}": {".": {}, "f:image": {}, "f:name": {}}}}}}
pod = {"kind": "Pod", "apiVersion": "v1",
       "metadata": {"generateName": "orders-7d4b9c8f6d-", "namespace": "default", "creationTimestamp": None,
                    "labels": {"app.kubernetes.io/name": "orders", "pod-template-hash": "7d4b9c8f6d"},
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z",
                                    "prometheus.io/scrape": "true"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "orders-7d4b9c8f6d",
                                         "uid": uid_rs, "controller": True, "blockOwnerDeletion": True}],
                    "managedFields": [mf]},
       "spec": {"volumes": [
                    {"name": "config", "configMap": {"name": "app-config", "defaultMode": 420}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    {"name": "kube-api-access-x7k2p", "projected": {"sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}],
                        "defaultMode": 420}}],
                "initContainers": [init], "containers": [app, side],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "app", "serviceAccount": "app",
                "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001, "runAsNonRoot": True,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "schedulerName": "default-scheduler",
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                "priority": 0, "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
       "status": {}}
def review(pod, uid):
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
            "request": {"uid": uid,
                        "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "default", "operation": "CREATE",
                        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                                     "uid": "b2c3d4e5-0000-4000-8000-000000000001",
                                     "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
                        "object": pod, "oldObject": None, "dryRun": False,
                        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}
m = review(pod, "0df28fbd-5f5f-11e8-bc74-36e6bb280816")
s = json.dumps(m, separators=(",", ":"))
open("admissionreview-deployment.json", "w").write(s + "\n")
p2 = copy.deepcopy(pod)
p2["spec"]["serviceAccountName"] = "worker"; p2["spec"]["serviceAccount"] = "worker"
n = review(p2, "1e039ac0-5f5f-11e8-bc74-36e6bb280817")
s2 = json.dumps(n, separators=(",", ":"))
open("admissionreview-deployment-nomatch.json", "w").write(s2 + "\n")
print(len(s), len(s2))
