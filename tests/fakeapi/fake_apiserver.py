#!/usr/bin/python3
"""A fake Kubernetes API server for ServiceAccounts (core/v1, JSON), with faults.

It serves the three calls the webhook's Kubernetes client makes, over TLS on 127.0.0.1:

    GET /api/v1/serviceaccounts?limit=N&continue=TOKEN           paginated list
    GET /api/v1/serviceaccounts?watch=1&resourceVersion=RV&...   chunked watch stream
    GET /api/v1/namespaces/NS/serviceaccounts/NAME               single object

and a plain-HTTP control plane on a second port (JSON in and out) that changes the data,
compacts the event log, injects faults and reports every request it saw. Everything the
control plane does is also a method of FakeApiServer, for in-process use:

    with FakeApiServer(cert="server.crt", key="server.key") as api:
        api.create_sa("default", "app", annotations={"a": "b"})
        ... point the client at api.api_url ...

Run as a program it prints one JSON line with the ports and serves until SIGTERM; see
README.md next to this file for the command line and every control endpoint.
Standard library only (Debian's /usr/bin/python3).
"""
import argparse
import base64
import bisect
import collections
import hmac
import json
import os
import random
import re
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KINDS = ("list", "watch", "get", "other")
LIST_PATH = "/api/v1/serviceaccounts"
POD_LIST_PATH = "/api/v1/pods"
STATUS_REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 409: "AlreadyExists", 410: "Expired", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # DNS-1123 subdomain
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1123 label
DEFAULT_BULK_ANNOTATIONS = {
    "workload-identity.stackit.cloud/service-account-email": "{name}@sa.stackit.cloud"}
CHUNK_MAX = 64 * 1024          # watch lines are coalesced into chunks up to this size
SNAPSHOTS_KEPT = 32            # list snapshots (continue tokens) kept before they expire
REQUESTS_KEPT = 100000         # request records kept (the counts are never trimmed)
CLIENT_POLL = 0.25             # seconds between checks that a watching client is still there
GARBAGE_JSON = (b'{"kind":"ServiceAccountList","apiVersion":"v1","metadata":'
                b'{"resourceVersion":"1"},"items":[{"metadata":{"name":"x",]}\xff\n')
GARBAGE_WATCH_LINE = b'{"type":"ADDED","object":{"kind":"ServiceAccount",<<garbage>>\n'
PARTIAL_EVENT = b'{"type":"MODIFIED","object":{"kind":"ServiceAccount","apiVersion":"v1",'


def _namespaced_list(path):
    """(resource, namespace) of /api/v1/namespaces/NS/{pods,serviceaccounts}, or None."""
    parts = path.split("/")
    if (len(parts) == 6 and parts[1:4] == ["api", "v1", "namespaces"] and parts[4]
            and parts[5] in ("pods", "serviceaccounts")):
        return parts[5], parts[4]
    return None


class ApiError(Exception):
    """A failure answered as a Kubernetes Status (API port) or {"error": ...} (control)."""

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or STATUS_REASONS.get(code, "Unknown")
        self.details = details

    def status_body(self):
        """The Status object as JSON bytes."""
        return status_bytes(self.code, self.message, self.reason, self.details)


def status_bytes(code, message, reason=None, details=None):
    """A metav1.Status failure as the API server encodes it."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": message, "reason": reason or STATUS_REASONS.get(code, "Unknown")}
    if details:
        status["details"] = details
    status["code"] = code
    return _dumps(status)


def _dumps(value):
    """Compact JSON bytes."""
    return json.dumps(value, separators=(",", ":")).encode()


def _now_iso():
    """The current time as a Kubernetes timestamp (RFC 3339, seconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_bool(value):
    """A query-string boolean as Go's strconv.ParseBool reads it (absent is False)."""
    if value is None:
        return False
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False", ""):
        return False
    raise ApiError(400, "invalid boolean value %r" % value)


def _int_param(params, name, default):
    """A non-negative integer query parameter, or 400."""
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, "invalid %s %r: not an integer" % (name, value)) from None
    if number < 0:
        raise ApiError(400, "invalid %s %r: must not be negative" % (name, value))
    return number


def _check_key(namespace, name):
    """Refuses names the real API server would refuse (they also keep our paths simple)."""
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise ApiError(400, "invalid namespace %r" % (namespace,))
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ApiError(400, "invalid name %r" % (name,))


def _check_string_map(what, value):
    """Annotations and labels are maps of string to string (or absent)."""
    if value is None:
        return
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(400, "%s must be an object of strings" % what)


# ---------------------------------------------------------------------------------------
# ServiceAccount encoding. An object is kept as the bytes of its list item (no kind or
# apiVersion: the real server leaves them out of list items); the full object adds them.

def _fragments(annotations, labels, extra):
    """Pre-encoded JSON fragments for labels, annotations and extra top-level fields."""
    lab = b',"labels":' + _dumps(labels) if labels else b""
    ann = b',"annotations":' + _dumps(annotations) if annotations else b""
    ext = b"".join(b"," + _dumps(k) + b":" + _dumps(v) for k, v in (extra or {}).items())
    return lab, ann, ext


def _encode_item(namespace, name, uid, rv, created, fragments):
    """A ServiceAccount list item as JSON bytes (names are validated: no escaping)."""
    lab, ann, ext = fragments
    return (b'{"metadata":{"name":"%s","namespace":"%s","uid":"%s","resourceVersion":"%d",'
            b'"creationTimestamp":"%s"%s%s}%s}'
            % (name.encode(), namespace.encode(), uid.encode(), rv, created.encode(),
               lab, ann, ext))


def _full(item):
    """The full object (with kind and apiVersion) from a list item."""
    return b'{"kind":"ServiceAccount","apiVersion":"v1",' + item[1:]


def _event_line(event_type, item):
    """One watch event line for a list item."""
    return b'{"type":"%s","object":%s}\n' % (event_type.encode(), _full(item))


def _bookmark_line(rv):
    """A BOOKMARK event: the object carries only kind, apiVersion and resourceVersion."""
    return (b'{"type":"BOOKMARK","object":{"kind":"ServiceAccount","apiVersion":"v1",'
            b'"metadata":{"resourceVersion":"%d"}}}\n' % rv)


def _error_line(code, message):
    """An ERROR event carrying a Status."""
    return b'{"type":"ERROR","object":%s}\n' % status_bytes(code, message)


def _decode_item(item):
    """(uid, created, annotations, labels, extra) of a stored item."""
    obj = json.loads(item)
    meta = obj.pop("metadata")
    return (meta["uid"], meta["creationTimestamp"], meta.get("annotations"),
            meta.get("labels"), obj)


def _continue_token(snapshot, pos):
    """A continue token shaped like the real one (base64url of JSON, no padding)."""
    ns, name = snapshot.keys[pos - 1]
    data = {"v": "meta.k8s.io/v1", "rv": snapshot.rv, "start": "%s/%s\x00" % (ns, name),
            "snap": snapshot.id, "pos": pos}
    return base64.urlsafe_b64encode(_dumps(data)).rstrip(b"=").decode()


def _parse_continue(token):
    """(snapshot id, position) from a continue token, or 400 if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["snap"]), int(data["pos"]), int(data["rv"])
    except (ValueError, TypeError, KeyError):
        raise ApiError(400, "continue key is not valid: %r" % token[:64]) from None


_Snapshot = collections.namedtuple("_Snapshot", "id rv keys items")


def _list_bytes(list_kind, snap, start, limit, namespace):
    """A page of a snapshot from position start: every item, or one namespace's (the
    keys are sorted, so a namespace is one run of them)."""
    low, high = 0, len(snap.items)
    if namespace is not None:
        low = bisect.bisect_left(snap.keys, (namespace, ""))
        high = bisect.bisect_left(snap.keys, (namespace + "\x00", ""))
    start = max(start, low)
    end = high if limit == 0 else min(start + limit, high)
    meta = b'"resourceVersion":"%d"' % snap.rv
    if end < high:
        meta += b',"continue":"%s","remainingItemCount":%d' % (
            _continue_token(snap, end).encode(), high - end)
    return b"".join((b'{"kind":"', list_kind, b'","apiVersion":"v1","metadata":{',
                     meta, b'},"items":[', b",".join(snap.items[start:end]), b"]}"))


class _PodStore:
    """Pods, for list-only clients (audit): stored, replaced and listed (paginated,
    each list a consistent snapshot), never watched.

    Items are kept as the bytes of their list item (no kind or apiVersion).
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.rv = 1
        self._objects = {}            # (namespace, name) -> item bytes
        self._snapshots = collections.OrderedDict()
        self._next_snapshot_id = 1

    @staticmethod
    def _item(pod, rv):
        """(key, item bytes) of a pod dict; 400 for a pod without a valid name."""
        if not isinstance(pod, dict) or not isinstance(pod.get("metadata"), dict):
            raise ApiError(400, "a pod must be an object with metadata")
        meta = dict(pod["metadata"])
        _check_key(meta.get("namespace"), meta.get("name"))
        meta["resourceVersion"] = str(rv)
        meta.setdefault("uid", str(uuid.uuid4()))
        item = {k: v for k, v in pod.items() if k not in ("kind", "apiVersion")}
        item["metadata"] = meta
        return (meta["namespace"], meta["name"]), _dumps(item)

    def put(self, pods):
        """Creates or replaces pods (dicts); returns how many pods exist."""
        with self.lock:
            for pod in pods:
                self.rv += 1
                key, item = self._item(pod, self.rv)
                self._objects[key] = item
            return len(self._objects)

    def put_items(self, items):
        """Creates or replaces pods given as (key, item bytes), as bulk creation does."""
        with self.lock:
            self.rv += 1
            self._objects.update(items)
            return len(self._objects)

    def clear(self):
        """Deletes every pod; returns how many there were."""
        with self.lock:
            count = len(self._objects)
            self._objects.clear()
            self.rv += 1
            return count

    def count(self):
        with self.lock:
            return len(self._objects)

    def list_page(self, limit, token, namespace=None):
        """One page of pods as JSON bytes (see _Store.list_page)."""
        with self.lock:
            if token:
                snap_id, start, rv = _parse_continue(token)
                snap = self._snapshots.get(snap_id)
                if snap is None:
                    raise ApiError(410, "The provided continue parameter is too old to "
                                   "display a consistent list result.", "Expired")
                if snap.rv != rv or not 0 < start < len(snap.items):
                    raise ApiError(400, "continue key is not valid: position out of range")
            else:
                keys = sorted(self._objects)
                snap = _Snapshot(self._next_snapshot_id, self.rv, keys,
                                 [self._objects[k] for k in keys])
                self._next_snapshot_id += 1
                self._snapshots[snap.id] = snap
                while len(self._snapshots) > 4:
                    self._snapshots.popitem(last=False)
                start = 0
        return _list_bytes(b"PodList", snap, start, limit, namespace)


def _bulk_pod_items(count, namespaces, template, name_prefix, namespace_prefix, sa_prefix):
    """(key, item bytes) of count pods NAME_PREFIX-NNNNNN in NAMESPACE_PREFIX-(i mod
    namespaces, three digits), running as SA_PREFIX-NNNNNN (bulk_create's names): the template (a pod without metadata.name
    and namespace) serialised once, its "{name}", "{namespace}" and "{sa}" filled in."""
    if not isinstance(count, int) or count < 0:
        raise ApiError(400, "count must be a non-negative integer")
    if not isinstance(namespaces, int) or namespaces < 1:
        raise ApiError(400, "namespaces must be a positive integer")
    if not isinstance(template, dict):
        raise ApiError(400, "template must be a pod object")
    _check_key("%s-%d" % (namespace_prefix, namespaces - 1), "%s-%06d" % (name_prefix, count))
    pod = json.loads(json.dumps(template))
    meta = pod.setdefault("metadata", {})
    meta.update(name="{name}", namespace="{namespace}", resourceVersion="1")
    pod.setdefault("spec", {}).setdefault("serviceAccountName", "{sa}")
    text = _dumps(pod).decode()
    items = []
    for i in range(count):
        name, ns = "%s-%06d" % (name_prefix, i), "%s-%03d" % (namespace_prefix, i % namespaces)
        body = (text.replace("{name}", name).replace("{namespace}", ns)
                .replace("{sa}", "%s-%06d" % (sa_prefix, i)))
        items.append(((ns, name), body.encode()))
    return items


class _Store:
    """ServiceAccounts, the global resourceVersion, the event log and list snapshots.

    One condition variable guards everything; open watches wait on it and are woken on
    every change. Invariant: every resourceVersion bump either appends an event or (a
    bulk creation without events) signals every open watch "gone", and events are only
    dropped once every open watch has delivered them; so an open watch with no pending
    events has seen every change up to the current resourceVersion.
    """

    def __init__(self, initial_rv):
        self.cond = threading.Condition()
        self.rv = initial_rv
        self.compacted_rv = initial_rv
        self._objects = {}            # (namespace, name) -> item bytes
        self._event_rvs = []          # resourceVersion of each logged event, increasing
        self._event_lines = []        # the matching watch lines
        self._snapshot = None         # the snapshot of the current rv, if built
        self._snapshots = collections.OrderedDict()   # id -> _Snapshot (live tokens)
        self._next_snapshot_id = 1
        self._watches = set()

    # -- objects ------------------------------------------------------------------------

    def _put(self, key, uid, created, fragments):
        """Stores an object at a new resourceVersion (lock held)."""
        self.rv += 1
        item = _encode_item(key[0], key[1], uid, self.rv, created, fragments)
        self._objects[key] = item
        return item

    def _log(self, event_type, item):
        """Appends an event at the current resourceVersion and wakes watches (lock held)."""
        self._event_rvs.append(self.rv)
        self._event_lines.append(_event_line(event_type, item))
        self.cond.notify_all()

    def create(self, namespace, name, annotations=None, labels=None, extra=None):
        """Adds an object (ADDED); 409 if it exists. Returns the full object."""
        _check_key(namespace, name)
        _check_string_map("annotations", annotations)
        _check_string_map("labels", labels)
        fragments = _fragments(annotations, labels, extra)
        with self.cond:
            if (namespace, name) in self._objects:
                raise ApiError(409, 'serviceaccounts "%s" already exists' % name)
            item = self._put((namespace, name), str(uuid.uuid4()), _now_iso(), fragments)
            self._log("ADDED", item)
        return json.loads(_full(item))

    def update(self, namespace, name, annotations=None, labels=None):
        """Replaces annotations and/or labels (None keeps them) (MODIFIED); 404 if absent."""
        _check_string_map("annotations", annotations)
        _check_string_map("labels", labels)
        with self.cond:
            old = self._objects.get((namespace, name))
            if old is None:
                raise ApiError(404, 'serviceaccounts "%s" not found' % name)
            uid, created, old_ann, old_lab, extra = _decode_item(old)
            fragments = _fragments(old_ann if annotations is None else annotations,
                                   old_lab if labels is None else labels, extra)
            item = self._put((namespace, name), uid, created, fragments)
            self._log("MODIFIED", item)
        return json.loads(_full(item))

    def delete(self, namespace, name):
        """Removes an object (DELETED, carrying its last state at the deletion's RV)."""
        with self.cond:
            old = self._objects.get((namespace, name))
            if old is None:
                raise ApiError(404, 'serviceaccounts "%s" not found' % name)
            uid, created, ann, lab, extra = _decode_item(old)
            item = self._put((namespace, name), uid, created, _fragments(ann, lab, extra))
            del self._objects[(namespace, name)]
            self._log("DELETED", item)
        return json.loads(_full(item))

    def get(self, namespace, name):
        """The full object as JSON bytes, or None."""
        with self.cond:
            item = self._objects.get((namespace, name))
        return None if item is None else _full(item)

    def count(self):
        """Number of stored objects."""
        with self.cond:
            return len(self._objects)

    def bulk_put(self, specs, events):
        """Stores (key, fragments) pairs, replacing existing ones (see bulk_create)."""
        created = _now_iso()
        with self.cond:
            for key, fragments in specs:
                kind = "MODIFIED" if key in self._objects else "ADDED"
                item = self._put(key, str(uuid.uuid4()), created, fragments)
                if events:
                    self._log(kind, item)
            if not events:
                # Open watches never saw these objects: they must relist, as after a
                # compaction they fell behind.
                self._compact_locked(self.rv)
                self._signal_locked("gone")
            return self.rv

    # -- compaction and snapshots ---------------------------------------------------------

    def compact(self, rv=None):
        """Compacts up to rv (default: now): new watches from older resourceVersions and
        continue tokens of older lists get 410."""
        with self.cond:
            self._compact_locked(self.rv if rv is None else min(int(rv), self.rv))
            return self.compacted_rv

    def _compact_locked(self, rv):
        """Moves the compaction point to rv (lock held).

        Events that open watches have not delivered yet are kept: as with etcd, a
        compaction refuses new watches from older resourceVersions but does not break
        established ones.
        """
        if rv <= self.compacted_rv:
            return
        self.compacted_rv = rv
        floor = min([rv] + [w.last_rv for w in self._watches])
        cut = bisect.bisect_right(self._event_rvs, floor)
        del self._event_rvs[:cut]
        del self._event_lines[:cut]
        for snap_id in [s.id for s in self._snapshots.values() if s.rv < rv]:
            del self._snapshots[snap_id]

    def expire_snapshots(self):
        """Forgets every list snapshot: all outstanding continue tokens get 410."""
        with self.cond:
            expired = len(self._snapshots)
            self._snapshots.clear()
            self._snapshot = None
            return expired

    def _current_snapshot(self):
        """The sorted snapshot of the current resourceVersion (lock held)."""
        snap = self._snapshot
        if snap is None or snap.rv != self.rv:
            keys = sorted(self._objects)
            snap = _Snapshot(self._next_snapshot_id, self.rv, keys,
                             [self._objects[k] for k in keys])
            self._next_snapshot_id += 1
            self._snapshot = snap
            self._snapshots[snap.id] = snap
            while len(self._snapshots) > SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
        return snap

    def _snapshot_for(self, token):
        """(snapshot, position) named by a continue token, or 410/400."""
        snap_id, pos, rv = _parse_continue(token)
        with self.cond:
            snap = self._snapshots.get(snap_id)
        if snap is None:
            raise ApiError(410, "The provided continue parameter is too old to display a "
                           "consistent list result. You can start a new list without the "
                           "continue parameter.", "Expired")
        if snap.rv != rv or not 0 < pos < len(snap.items):
            raise ApiError(400, "continue key is not valid: position out of range")
        return snap, pos

    def list_page(self, limit, token, namespace=None):
        """One page of the cluster-wide list, or of one namespace's, as JSON bytes
        (limit 0: everything)."""
        if token:
            snap, start = self._snapshot_for(token)
        else:
            with self.cond:
                snap = self._current_snapshot()
            start = 0
        return _list_bytes(b"ServiceAccountList", snap, start, limit, namespace)

    # -- watches --------------------------------------------------------------------------

    def watch_begin(self, watch, rv):
        """Opens a watch from rv; returns its initial items (or None).

        rv None means "now, with the current objects first" (an ADDED for each). A
        resourceVersion behind the compaction point raises 410 and opens nothing. The
        watch is registered under the same lock, so no signal can miss it.
        """
        with self.cond:
            if rv is None:
                snap = self._current_snapshot()
                watch.last_rv, initial = snap.rv, snap.items
            elif rv < self.compacted_rv:
                raise ApiError(410, "too old resource version: %d (%d)"
                               % (rv, self.compacted_rv), "Expired")
            else:
                watch.last_rv, initial = rv, None
            self._watches.add(watch)
            return initial

    def unregister(self, watch):
        """Counts a watch as closed."""
        with self.cond:
            self._watches.discard(watch)

    def open_watches(self):
        """The open watch streams."""
        with self.cond:
            return list(self._watches)

    def signal_watches(self, signal_name):
        """Tells every open watch to drop/gone/stop; returns how many were told."""
        with self.cond:
            return self._signal_locked(signal_name)

    def _signal_locked(self, signal_name):
        """signal_watches() with the lock held."""
        told = 0
        for watch in self._watches:
            if watch.signal is None:
                watch.signal = signal_name
                told += 1
        self.cond.notify_all()
        return told

    def next_batch(self, watch, wake_at):
        """Waits until a watch has work, at most until wake_at (monotonic).

        Returns (lines, reason): pending event lines (watch.last_rv advanced past them),
        or no lines and reason "drop", "gone", "stop" or "idle". On "idle" every change up
        to the current resourceVersion has been delivered, so last_rv moves up to it.
        """
        with self.cond:
            while True:
                if watch.signal is not None:
                    if watch.signal == "gone":
                        watch.gone_message = "too old resource version: %d (%d)" % (
                            watch.last_rv, self.rv)
                    return [], watch.signal
                first = bisect.bisect_right(self._event_rvs, watch.last_rv)
                if first < len(self._event_rvs):
                    watch.last_rv = self._event_rvs[-1]
                    return self._event_lines[first:], None
                remaining = wake_at - time.monotonic()
                if remaining <= 0:
                    watch.last_rv = max(watch.last_rv, self.rv)
                    return [], "idle"
                self.cond.wait(remaining)


# ---------------------------------------------------------------------------------------
# Faults

_Plan = collections.namedtuple("_Plan", "hang slow_ms error garbage")


def _check_kinds(kinds):
    """Validates a fault's optional request-kind filter."""
    if kinds is None:
        return None
    if not isinstance(kinds, list) or not kinds or any(k not in KINDS for k in kinds):
        raise ApiError(400, "kinds must be a non-empty list of %s" % ", ".join(KINDS))
    return list(kinds)


def _matches(fault, kind):
    """Whether a fault applies to a request of this kind."""
    return fault is not None and (fault["kinds"] is None or kind in fault["kinds"])


class _Faults:
    """The faults in force, and the per-request decision of which ones apply."""

    def __init__(self, seed):
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._release = threading.Event()
        self.refuse = False
        self.refuse_cuts = False   # refuse with close_existing: no connection lives on
        self._hang = self._slow = self._error = self._garbage = None

    def set_hang(self, before, kinds):
        """Hangs matching requests (before the TLS handshake or before the answer)."""
        if before not in ("response", "handshake"):
            raise ApiError(400, 'before must be "response" or "handshake"')
        with self._lock:
            if self._release.is_set() or self._hang is None:
                self._release = threading.Event()
            self._hang = {"before": before, "kinds": _check_kinds(kinds)}

    def set_slow(self, ms, kinds):
        """Delays every matching answer by ms milliseconds."""
        if not isinstance(ms, (int, float)) or ms < 0:
            raise ApiError(400, "ms must be a non-negative number")
        with self._lock:
            self._slow = {"ms": ms, "kinds": _check_kinds(kinds)}

    def set_error(self, code, percent, count, kinds, retry_after):
        """Answers a percentage of requests, or the next count requests, with a Status."""
        if not isinstance(code, int) or not 400 <= code <= 599:
            raise ApiError(400, "code must be an HTTP error status (400-599)")
        if percent is not None and count is not None:
            raise ApiError(400, "give percent or count, not both")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ApiError(400, "count must be a positive integer")
        if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
            raise ApiError(400, "retry_after must be a non-negative integer (seconds)")
        if percent is None and count is None:
            percent = 100
        if percent is not None and (not isinstance(percent, (int, float))
                                    or not 0 <= percent <= 100):
            raise ApiError(400, "percent must be between 0 and 100")
        with self._lock:
            self._error = {"code": code, "percent": percent, "count": count,
                           "kinds": _check_kinds(kinds), "retry_after": retry_after}

    def set_garbage(self, mode, count, kinds):
        """Makes the next count matching answers invalid JSON or truncated."""
        if mode not in ("json", "truncate"):
            raise ApiError(400, 'mode must be "json" or "truncate"')
        if not isinstance(count, int) or count < 1:
            raise ApiError(400, "count must be a positive integer")
        with self._lock:
            self._garbage = {"mode": mode, "count": count, "kinds": _check_kinds(kinds)}

    def clear(self):
        """Removes every fault and releases hung connections; returns whether refuse was on."""
        with self._lock:
            was_refusing = self.refuse
            self.refuse = self.refuse_cuts = False
            self._hang = self._slow = self._error = self._garbage = None
            self._release.set()
            return was_refusing

    def release_all(self):
        """Releases hung connections (server stop)."""
        self._release.set()

    def handshake_hang(self):
        """The release event if connections must hang before the TLS handshake."""
        with self._lock:
            if self._hang is not None and self._hang["before"] == "handshake":
                return self._release
            return None

    def plan(self, kind):
        """Which faults apply to one request of this kind (consumes counted faults)."""
        with self._lock:
            hang = self._hang if self._hang and self._hang["before"] == "response" else None
            release = self._release if _matches(hang, kind) else None
            slow_ms = self._slow["ms"] if _matches(self._slow, kind) else 0
            error = self._take_error(kind)
            garbage = None if error else self._take_garbage(kind)
            return _Plan(release, slow_ms, error, garbage)

    def _take_error(self, kind):
        """(code, retry_after) if this request fails (lock held)."""
        fault = self._error
        if not _matches(fault, kind):
            return None
        if fault["count"] is not None:
            fault["count"] -= 1
            if fault["count"] == 0:
                self._error = None
        elif self._rng.random() * 100 >= fault["percent"]:
            return None
        return fault["code"], fault["retry_after"]

    def _take_garbage(self, kind):
        """The garbage mode if this answer is spoiled (lock held)."""
        fault = self._garbage
        if not _matches(fault, kind):
            return None
        fault["count"] -= 1
        if fault["count"] == 0:
            self._garbage = None
        return fault["mode"]

    def describe(self):
        """The faults in force, as JSON-able data."""
        with self._lock:
            return {"refuse": self.refuse, "hang": _copy(self._hang),
                    "slow": _copy(self._slow), "error": _copy(self._error),
                    "garbage": _copy(self._garbage)}


def _copy(value):
    """A shallow copy of a dict (or None)."""
    return None if value is None else dict(value)


# ---------------------------------------------------------------------------------------
# Request log and configuration

class _RequestLog:
    """Every API request: method, path, query, token, client certificate, time, status."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records = collections.deque(maxlen=REQUESTS_KEPT)
        self._counts = dict.fromkeys(KINDS, 0)
        self._seq = 0
        self.tls_failures = 0

    def record(self, **fields):
        """Adds a record and returns it (the handler fills in status and fault later)."""
        with self._lock:
            self._seq += 1
            rec = dict(seq=self._seq, time=time.time(), status=None, fault=None, **fields)
            self._records.append(rec)
            self._counts[rec["kind"]] += 1
            return rec

    def tls_failed(self):
        """Counts a connection whose TLS handshake failed."""
        with self._lock:
            self.tls_failures += 1

    def records(self, kind=None, since=0):
        """Copies of the records (optionally of one kind, with seq > since)."""
        with self._lock:
            return [dict(r) for r in self._records
                    if r["seq"] > since and (kind is None or r["kind"] == kind)]

    def counts(self):
        """Requests per kind, plus total."""
        with self._lock:
            counts = dict(self._counts)
        counts["total"] = sum(counts.values())
        return counts

    def clear(self):
        """Forgets records and counts; returns how many records there were."""
        with self._lock:
            cleared = len(self._records)
            self._records.clear()
            self._counts = dict.fromkeys(KINDS, 0)
            self.tls_failures = 0
            return cleared


class _Config:
    """Settings that tests may change while the server runs."""

    def __init__(self, page_size, bookmark_interval, watch_gone, default_watch_timeout):
        self.page_size = 0
        self.bookmark_interval = 1.0
        self.watch_gone = "event"
        self.default_watch_timeout = 1800.0
        self.update(page_size=page_size, bookmark_interval=bookmark_interval,
                    watch_gone=watch_gone, default_watch_timeout=default_watch_timeout)

    def update(self, page_size=None, bookmark_interval=None, watch_gone=None,
               default_watch_timeout=None):
        """Changes the given settings (None keeps one); returns them all."""
        if page_size is not None:
            if not isinstance(page_size, int) or page_size < 0:
                raise ApiError(400, "page_size must be a non-negative integer")
            self.page_size = page_size
        if bookmark_interval is not None:
            if not isinstance(bookmark_interval, (int, float)) or bookmark_interval <= 0:
                raise ApiError(400, "bookmark_interval must be a positive number")
            self.bookmark_interval = float(bookmark_interval)
        if watch_gone is not None:
            if watch_gone not in ("event", "http"):
                raise ApiError(400, 'watch_gone must be "event" or "http"')
            self.watch_gone = watch_gone
        if default_watch_timeout is not None:
            if (not isinstance(default_watch_timeout, (int, float))
                    or default_watch_timeout <= 0):
                raise ApiError(400, "default_watch_timeout must be a positive number")
            self.default_watch_timeout = float(default_watch_timeout)
        return self.as_dict()

    def as_dict(self):
        """The settings as JSON-able data."""
        return {"page_size": self.page_size, "bookmark_interval": self.bookmark_interval,
                "watch_gone": self.watch_gone,
                "default_watch_timeout": self.default_watch_timeout}


# ---------------------------------------------------------------------------------------
# HTTP servers

class _HTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that does not resolve its own name and stays quiet."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, handler, api):
        self.api = api
        super().__init__(address, handler)

    def server_bind(self):
        """Binds without HTTPServer's getfqdn() (a DNS lookup)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        """A traceback for a bug; a lost connection is only mentioned in verbose mode."""
        exc = sys.exc_info()[1]
        if self.api.verbose or not isinstance(exc, (OSError, ValueError)):
            super().handle_error(request, client_address)


class _Watch:
    """One open watch stream: its position and the signal that ends it."""

    def __init__(self, handler):
        self.handler = handler
        self.last_rv = 0            # every event up to here has been delivered
        self.signal = None          # None, "drop", "gone" or "stop"
        self.gone_message = "too old resource version"


class _ApiHandler(BaseHTTPRequestHandler):
    """The TLS API port: list, watch and get of ServiceAccounts."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"
    sys_version = ""
    disable_nagle_algorithm = True

    # -- connection lifecycle -------------------------------------------------------------

    def setup(self):
        """Registers the connection; the TLS handshake happens in handle() (this thread)."""
        self.api = self.server.api
        self.request.settimeout(self.api.io_timeout)
        self.rfile = self.wfile = None
        self._rec = None
        self._garbage = None
        self._hard_closed = False
        self.accepted = time.time()     # when the TCP connection was accepted
        self.handshaken = None          # when its TLS handshake completed
        self.api._connection_opened(self)

    def handle(self):
        """TLS handshake, then HTTP requests until the connection closes."""
        try:
            if self._tls_accept():
                BaseHTTPRequestHandler.handle(self)
        except (OSError, ValueError) as exc:
            self.api._debug("api connection ended: %r" % exc)

    def finish(self):
        """Closes the streams and the socket, and forgets the connection."""
        try:
            if self.wfile is not None:
                socketserver.StreamRequestHandler.finish(self)
        except (OSError, ValueError):
            pass
        self._close_socket()
        self.api._connection_closed(self)

    def _close_socket(self):
        """Closes the socket, with a TLS close_notify unless the end is meant to be abrupt
        (non-blocking, so the peer's answering close_notify is not waited for)."""
        sock = self.request
        if isinstance(sock, ssl.SSLSocket) and not self._hard_closed:
            try:
                sock.setblocking(False)
                sock.unwrap()
            except (OSError, ValueError):
                pass
        try:
            sock.close()
        except OSError:
            pass

    def _tls_accept(self):
        """Hangs if asked to, else completes the TLS handshake; False if none happened."""
        release = self.api._faults.handshake_hang()
        if release is not None:
            self.api._wait_released(release)
            return False
        try:
            tls = self.api._ssl_context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.api._log.tls_failed()
            self.api._debug("TLS handshake failed: %r" % exc)
            return False
        self.request = tls
        self.handshaken = time.time()
        socketserver.StreamRequestHandler.setup(self)
        return True

    def hard_close(self):
        """Shuts the TCP connection down with no TLS close_notify (an abrupt end)."""
        self.close_connection = True
        self._hard_closed = True
        try:
            socket.socket.shutdown(self.request, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        """Access log only in verbose mode."""
        self.api._debug("api: " + format % args)

    # -- requests -------------------------------------------------------------------------

    def do_GET(self):
        """Every method goes through _serve()."""
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _serve(self):
        """Records the request, applies faults and authentication, then routes it."""
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._rec = self._garbage = None    # per request, on a kept-alive connection
        if self.command != "GET":
            self.close_connection = True   # any request body is left unread
        try:
            kind = self._classify(url.path, params)
            self._rec = self._record(url, params, kind)
            if not self._apply_faults(kind):
                return
            self._authenticate()
            self._route(kind, url.path, params)
        except ApiError as err:
            self._send_json(err.code, err.status_body())

    def _classify(self, path, params):
        """list, watch, get or other."""
        if self.command != "GET":
            return "other"
        if path == POD_LIST_PATH or _namespaced_list(path):
            return "list"
        if path == LIST_PATH:
            try:
                return "watch" if parse_bool(params.get("watch")) else "list"
            except ApiError:
                return "list"
        parts = path.split("/")
        if (len(parts) == 7 and parts[1:4] == ["api", "v1", "namespaces"]
                and parts[5] == "serviceaccounts" and parts[4] and parts[6]):
            return "get"
        return "other"

    def _record(self, url, params, kind):
        """Adds this request to the request log."""
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth[:7].lower() == "bearer " else None
        cert = self.request.getpeercert() if hasattr(self.request, "getpeercert") else None
        subject = dict(x[0] for x in cert.get("subject", ())) if cert else {}
        return self.api._log.record(
            method=self.command, path=url.path, query=url.query, params=params, kind=kind,
            token=token, client_cert=bool(cert), client_cn=subject.get("commonName"),
            conn=self.client_address[1], accepted=self.accepted,
            handshaken=self.handshaken, answered=None)

    def _apply_faults(self, kind):
        """Hang, delay, fail or spoil this request; False when it must not be served."""
        if self.api._faults.refuse_cuts:
            # A connection that fault_refuse could not cut: accepted just before the
            # listener closed and registered just after. A restarted API server has
            # no connections left, so it is cut at its first request.
            self._rec["fault"] = "refuse"
            self.hard_close()
            return False
        plan = self.api._faults.plan(kind)
        if plan.hang is not None:
            self._rec["fault"] = "hang"
            self.api._wait_released(plan.hang)
            self.hard_close()
            return False
        if plan.slow_ms:
            self._rec["fault"] = "slow"
            self.api._sleep(plan.slow_ms / 1000.0)
        if plan.error is not None:
            code, retry_after = plan.error
            self._rec["fault"] = "error"
            headers = [("Retry-After", str(retry_after))] if retry_after is not None else []
            self._send_json(code, status_bytes(code, "injected fault: error %d" % code),
                            headers)
            return False
        if plan.garbage is not None:
            self._rec["fault"] = "garbage:" + plan.garbage
            self._garbage = plan.garbage
        return True

    def _authenticate(self):
        """401 unless the bearer token matches the token file (re-read every time)."""
        if self.api.token_file is None:
            return
        try:
            with open(self.api.token_file, encoding="utf-8") as f:
                expected = f.read().strip()
        except OSError:
            expected = ""
        token = self._rec["token"]
        if not expected or token is None or not hmac.compare_digest(
                token.encode(), expected.encode()):
            raise ApiError(401, "Unauthorized")

    def _route(self, kind, path, params):
        """Dispatches an authenticated request."""
        if self.command != "GET":
            raise ApiError(405, "the server does not allow this method on the requested "
                           "resource")
        if kind == "list":
            self._serve_list(path, params)
        elif kind == "watch":
            self._serve_watch(params)
        elif kind == "get":
            self._serve_get(path)
        else:
            raise ApiError(404, "the server could not find the requested resource")

    def _serve_list(self, path, params):
        """One page of a list: ServiceAccounts or pods, cluster-wide or of a namespace."""
        parse_bool(params.get("watch"))     # 400 for watch=bogus, as the real server
        limit = _int_param(params, "limit", 0)
        cap = self.api._config.page_size
        if cap and (limit == 0 or limit > cap):
            limit = cap
        resource, namespace = _namespaced_list(path) or (
            "pods" if path == POD_LIST_PATH else "serviceaccounts", None)
        store = self.api._pods if resource == "pods" else self.api._store
        self._send_json(200, store.list_page(limit, params.get("continue"), namespace))

    def _serve_get(self, path):
        """A single ServiceAccount, or 404."""
        _, _, _, _, namespace, _, name = path.split("/")
        body = self.api._store.get(namespace, name)
        if body is None:
            raise ApiError(404, 'serviceaccounts "%s" not found' % name, "NotFound",
                           {"name": name, "kind": "serviceaccounts"})
        self._send_json(200, body)

    def _serve_watch(self, params):
        """A watch stream (see _WatchStream)."""
        parse_bool(params.get("watch"))
        rv_param = params.get("resourceVersion")
        rv = None if rv_param in (None, "", "0") else _int_param(params, "resourceVersion", 0)
        timeout = (_int_param(params, "timeoutSeconds", 0)
                   or self.api._config.default_watch_timeout)
        bookmarks = parse_bool(params.get("allowWatchBookmarks"))
        watch = _Watch(self)
        try:
            initial = self.api._store.watch_begin(watch, rv)
        except ApiError as err:
            if self.api._config.watch_gone == "http":
                raise
            self._start_stream()
            self._write_chunk(_error_line(err.code, err.message))
            self._end_stream()
            return
        try:
            _WatchStream(self, watch, initial, timeout, bookmarks).run()
        finally:
            self.api._store.unregister(watch)

    # -- writing --------------------------------------------------------------------------

    def _send_json(self, code, body, headers=()):
        """A complete JSON answer (spoiled if a garbage fault applies)."""
        if self._rec is not None:
            self._rec["status"] = code
        if self._garbage == "json":
            body = GARBAGE_JSON
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self._garbage == "truncate":
            self.wfile.write(body[:len(body) // 2])
            self.hard_close()
            return
        self.wfile.write(body)
        if self._rec is not None:
            self._rec["answered"] = time.time()

    def _start_stream(self):
        """Headers of a chunked 200 watch answer."""
        if self._rec is not None:
            self._rec["status"] = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _write_chunk(self, data):
        """One HTTP chunk."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_stream(self):
        """The terminating zero-length chunk; the connection stays usable."""
        self.wfile.write(b"0\r\n\r\n")

    def _abort_mid_chunk(self):
        """Announces a chunk, sends part of it, then cuts the connection."""
        self.wfile.write(b"%x\r\n%s" % (len(PARTIAL_EVENT) * 4, PARTIAL_EVENT))
        self.hard_close()


class _WatchStream:
    """Serves one watch: initial ADDED events, logged events, bookmarks, then the end."""

    def __init__(self, handler, watch, initial, timeout, bookmarks):
        self.handler = handler
        self.api = handler.api
        self.watch = watch
        self.initial = initial
        self.deadline = time.monotonic() + timeout
        self.bookmarks = bookmarks

    def run(self):
        """Streams until timeout, a signal or a write error."""
        if self.api._stopping:
            raise ApiError(503, "the server is shutting down")
        self.handler._start_stream()
        if self._spoil():
            return
        if self.initial:
            self._write_lines(_event_line("ADDED", item) for item in self.initial)
        self._loop(self.api._store)

    def _spoil(self):
        """Applies a garbage fault to the stream; True if it did."""
        mode = self.handler._garbage
        if mode == "json":
            self.handler._write_chunk(GARBAGE_WATCH_LINE)
            self.handler._end_stream()
        elif mode == "truncate":
            self.handler._abort_mid_chunk()
        return mode is not None

    def _loop(self, store):
        """Delivers events and bookmarks until the stream must end."""
        next_bookmark = self._next_bookmark(time.monotonic())
        while True:
            wake_at = min(self.deadline, next_bookmark, time.monotonic() + CLIENT_POLL)
            lines, reason = store.next_batch(self.watch, wake_at)
            if lines:
                self._write_lines(lines)
            elif reason != "idle":
                self._finish(reason)
                return
            elif self._client_gone():
                self.handler.close_connection = True
                return
            now = time.monotonic()
            if now >= self.deadline:
                self.handler._end_stream()
                return
            if now >= next_bookmark:
                self._write_lines([_bookmark_line(self.watch.last_rv)])
                next_bookmark = self._next_bookmark(now)

    def _finish(self, reason):
        """Ends the stream as a signal asks: cut mid-chunk, ERROR 410, or cleanly."""
        if reason == "drop":
            self.handler._abort_mid_chunk()
            return
        if reason == "gone":
            self._write_lines([_error_line(410, self.watch.gone_message)])
        self.handler._end_stream()

    def _client_gone(self):
        """Whether the client hung up: on an open watch it sends nothing, so anything
        readable is its FIN or TLS close_notify."""
        try:
            readable, _, _ = select.select([self.handler.request], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _next_bookmark(self, now):
        """When the next bookmark is due (never without allowWatchBookmarks)."""
        if not self.bookmarks:
            return float("inf")
        return now + self.api._config.bookmark_interval

    def _write_lines(self, lines):
        """Writes event lines, coalesced into chunks of at most CHUNK_MAX bytes."""
        batch, size = [], 0
        for line in lines:
            batch.append(line)
            size += len(line)
            if size >= CHUNK_MAX:
                self.handler._write_chunk(b"".join(batch))
                batch, size = [], 0
        if batch:
            self.handler._write_chunk(b"".join(batch))


# ---------------------------------------------------------------------------------------
# Control plane

def _sa_fields(body):
    """(namespace, name, annotations, labels, extra) from a control request body.

    The body is either {"namespace", "name", "annotations", "labels"} or a whole
    ServiceAccount (other top-level fields such as "secrets" are kept as they are).
    """
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    if "metadata" not in body:
        return (body.get("namespace"), body.get("name"), body.get("annotations"),
                body.get("labels"), None)
    meta = body["metadata"]
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    extra = {k: v for k, v in body.items() if k not in ("kind", "apiVersion", "metadata")}
    return (meta.get("namespace"), meta.get("name"), meta.get("annotations"),
            meta.get("labels"), extra)


def _q_int(query, name):
    """An optional integer from the control query string."""
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, "%s must be an integer" % name) from None


def _ctl_create(api, match, query, body):
    ns, name, ann, lab, extra = _sa_fields(body)
    return 201, api.create_sa(ns, name, annotations=ann, labels=lab, extra=extra)


def _ctl_update(api, match, query, body):
    _, _, ann, lab, _ = _sa_fields(body or {})
    return 200, api.update_sa(match[1], match[2], annotations=ann, labels=lab)


def _ctl_get(api, match, query, body):
    obj = api.get_sa(match[1], match[2])
    if obj is None:
        raise ApiError(404, 'serviceaccounts "%s" not found' % match[2])
    return 200, obj


def _ctl_bulk(api, match, query, body):
    if not isinstance(body, dict) or "count" not in body:
        raise ApiError(400, 'the body must be an object with at least "count"')
    allowed = ("count", "namespaces", "annotated_fraction", "annotations", "labels",
               "name_prefix", "namespace_prefix", "events")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "unknown field(s): %s" % ", ".join(unknown))
    return 200, api.bulk_create(**body)


def _ctl_fault(api, match, query, body):
    params = body or {}
    if not isinstance(params, dict):
        raise ApiError(400, "the body must be a JSON object")
    setter = {"refuse": api.fault_refuse, "hang": api.fault_hang, "slow": api.fault_slow,
              "error": api.fault_error, "garbage": api.fault_garbage,
              "drop_watches": api.drop_watches, "gone_watches": api.gone_watches,
              "clear": api.clear_faults}.get(match[1])
    if setter is None:
        raise ApiError(404, "no fault named %r" % match[1])
    try:
        result = setter(**params)
    except TypeError as exc:
        raise ApiError(400, "bad parameters for %s: %s" % (match[1], exc)) from None
    answer = {"faults": api.faults()}
    if isinstance(result, int) and not isinstance(result, bool):
        answer["affected"] = result
    return 200, answer


def _ctl_wait(api, match, query, body):
    counts = {k: int(query[k]) for k in KINDS + ("total",) if k in query}
    timeout = float(query.get("timeout", "5"))
    ok = api.wait(open_watches=_q_int(query, "open_watches"), counts=counts, timeout=timeout)
    state = {"ok": ok, "open_watches": api.open_watches, "counts": api.request_counts()}
    return (200 if ok else 408), state


CONTROL_ROUTES = [
    ("GET", r"/state", lambda api, m, q, b: (200, api.state())),
    ("GET", r"/serviceaccounts", lambda api, m, q, b: (200, {
        "count": api.sa_count(), "resource_version": api.resource_version})),
    ("POST", r"/serviceaccounts", _ctl_create),
    ("POST", r"/serviceaccounts/bulk", _ctl_bulk),
    ("GET", r"/serviceaccounts/([^/]+)/([^/]+)", _ctl_get),
    ("PUT", r"/serviceaccounts/([^/]+)/([^/]+)", _ctl_update),
    ("DELETE", r"/serviceaccounts/([^/]+)/([^/]+)",
     lambda api, m, q, b: (200, api.delete_sa(m[1], m[2]))),
    ("GET", r"/pods", lambda api, m, q, b: (200, {"count": api._pods.count()})),
    ("POST", r"/pods", lambda api, m, q, b: (200, {
        "count": api.put_pods(b if isinstance(b, list) else [b])})),
    ("POST", r"/pods/bulk", lambda api, m, q, b: (200, api.bulk_pods(**(b or {})))),
    ("DELETE", r"/pods", lambda api, m, q, b: (200, {"deleted": api.clear_pods()})),
    ("POST", r"/compact", lambda api, m, q, b: (200, {
        "compacted_resource_version": api.compact((b or {}).get("resource_version"))})),
    ("POST", r"/expire_continue", lambda api, m, q, b: (200, {
        "expired": api.expire_continue_tokens()})),
    ("GET", r"/faults", lambda api, m, q, b: (200, {"faults": api.faults()})),
    ("POST", r"/faults/([a-z_]+)", _ctl_fault),
    ("GET", r"/config", lambda api, m, q, b: (200, api.config())),
    ("POST", r"/config", lambda api, m, q, b: (200, api.configure(**(b or {})))),
    ("GET", r"/requests", lambda api, m, q, b: (200, {
        "requests": api.requests(kind=q.get("kind"), since=_q_int(q, "since") or 0),
        "counts": api.request_counts()})),
    ("DELETE", r"/requests", lambda api, m, q, b: (200, {"cleared": api.clear_requests()})),
    ("GET", r"/wait", _ctl_wait),
]


class _ControlHandler(BaseHTTPRequestHandler):
    """The plain-HTTP control port: JSON in, JSON out (errors: {"error": message})."""

    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver-control"
    sys_version = ""
    timeout = 30
    MAX_BODY = 10 * 1024 * 1024

    def do_GET(self):
        """Every method goes through _dispatch()."""
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format, *args):  # noqa: A002
        """Access log only in verbose mode."""
        self.server.api._debug("control: " + format % args)

    def _dispatch(self):
        """Finds the route, runs it and answers."""
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            body = self._read_body()
            route, match = self._find_route(url.path)
            code, answer = route(self.server.api, match, query, body)
        except ApiError as err:
            code, answer = err.code, {"error": err.message}
        except (ValueError, TypeError) as exc:
            code, answer = 400, {"error": str(exc)}
        self._answer(code, answer)

    def _read_body(self):
        """The JSON body, or None when there is none."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "body too large")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "invalid JSON body: %s" % exc) from None

    def _find_route(self, path):
        """(handler, match) for this method and path, or 404/405."""
        path_known = False
        for method, pattern, route in CONTROL_ROUTES:
            match = re.fullmatch(pattern, path)
            if match:
                path_known = True
                if method == self.command:
                    return route, match
        if path_known:
            raise ApiError(405, "method %s not allowed on %s" % (self.command, path))
        raise ApiError(404, "no control endpoint %s" % path)

    def _answer(self, code, answer):
        """Writes a JSON answer."""
        body = _dumps(answer) + b"\n"
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# ---------------------------------------------------------------------------------------
# The server object

class FakeApiServer:
    """The fake API server: TLS API port, optional control port, data, faults, records.

    cert/key: PEM server certificate and key. token_file: require "Authorization: Bearer
    <file contents, stripped>", re-read on every request. client_ca: require a client
    certificate signed by this CA. page_size: the most items one list page holds, whatever
    limit the client asks for (0: no cap). control_port: None starts no control server
    (in-process use), 0 picks a free port. watch_gone: "event" answers a watch from a
    compacted resourceVersion with an ERROR event, "http" with HTTP 410.
    """

    def __init__(self, cert, key, token_file=None, client_ca=None, page_size=0,
                 bookmark_interval=1.0, watch_gone="event", default_watch_timeout=1800.0,
                 port=0, control_port=None, io_timeout=30.0, initial_resource_version=1000,
                 seed=None, verbose=False):
        self.token_file = token_file
        self.io_timeout = io_timeout
        self.verbose = verbose
        self._ssl_context = _server_context(cert, key, client_ca)
        self._config = _Config(page_size, bookmark_interval, watch_gone,
                               default_watch_timeout)
        self._store = _Store(initial_resource_version)
        self._pods = _PodStore()
        self._faults = _Faults(seed)
        self._log = _RequestLog()
        self._port = port
        self._control_port = control_port
        self._listener = None
        self._control = None
        self._threads = []
        self._listener_lock = threading.Lock()
        self._conns_lock = threading.Lock()
        self._conns = set()
        self._stop_event = threading.Event()
        self._stopping = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self):
        """Opens the API port (and the control port if asked); returns self."""
        with self._listener_lock:
            self._open_listener()
        if self._control_port is not None:
            self._control = _HTTPServer(("127.0.0.1", self._control_port), _ControlHandler,
                                        self)
            self._control_port = self._control.server_address[1]
            self._serve_in_thread(self._control, "fakeapi-control")
        return self

    def stop(self):
        """Ends every watch and connection, closes both ports and waits for the threads."""
        self._stopping = True
        self._stop_event.set()
        self._faults.release_all()
        self._store.signal_watches("stop")
        with self._listener_lock:
            self._close_listener()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
        self._close_connections()
        deadline = time.monotonic() + 5
        for thread in self._threads + self._connection_threads():
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve_in_thread(self, server, name):
        """Runs serve_forever() of a server in a daemon thread."""
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _open_listener(self):
        """Listens on the API port (the same port again after a refuse fault)."""
        self._listener = _HTTPServer(("127.0.0.1", self._port), _ApiHandler, self)
        self._port = self._listener.server_address[1]
        self._serve_in_thread(self._listener, "fakeapi-api")

    def _close_listener(self):
        """Stops accepting and closes the listening socket."""
        if self._listener is not None:
            self._listener.shutdown()
            self._listener.server_close()
            self._listener = None

    def _connection_opened(self, handler):
        with self._conns_lock:
            handler.thread = threading.current_thread()
            self._conns.add(handler)

    def _connection_closed(self, handler):
        with self._conns_lock:
            self._conns.discard(handler)

    def _connection_threads(self):
        with self._conns_lock:
            return [h.thread for h in self._conns]

    def _close_connections(self):
        """Cuts every open API connection (watches first get the drop signal)."""
        self._store.signal_watches("drop")
        with self._conns_lock:
            handlers = list(self._conns)
        for handler in handlers:
            handler.hard_close()

    def _wait_released(self, release):
        """Blocks a hung connection until the fault is cleared or the server stops."""
        while not release.wait(0.2) and not self._stopping:
            pass

    def _sleep(self, seconds):
        """Sleeps, waking early when the server stops."""
        self._stop_event.wait(seconds)

    def _debug(self, message):
        if self.verbose:
            sys.stderr.write("fake-apiserver: %s\n" % message)

    @property
    def api_port(self):
        """The TLS API port."""
        return self._port

    @property
    def control_port(self):
        """The control port (None if no control server runs)."""
        return self._control_port if self._control is not None else None

    @property
    def api_url(self):
        return "https://127.0.0.1:%d" % self._port

    @property
    def control_url(self):
        port = self.control_port
        return None if port is None else "http://127.0.0.1:%d" % port

    # -- ServiceAccounts ------------------------------------------------------------------

    def create_sa(self, namespace, name, annotations=None, labels=None, extra=None):
        """Creates a ServiceAccount (ADDED event); ApiError 409 if it exists."""
        return self._store.create(namespace, name, annotations, labels, extra)

    def update_sa(self, namespace, name, annotations=None, labels=None):
        """Replaces annotations and/or labels ({} removes them, None keeps them)."""
        return self._store.update(namespace, name, annotations, labels)

    def delete_sa(self, namespace, name):
        """Deletes a ServiceAccount (DELETED event); returns its last state."""
        return self._store.delete(namespace, name)

    def get_sa(self, namespace, name):
        """The stored ServiceAccount as a dict, or None."""
        body = self._store.get(namespace, name)
        return None if body is None else json.loads(body)

    def sa_count(self):
        """How many ServiceAccounts exist."""
        return self._store.count()

    def bulk_create(self, count, namespaces=100, annotated_fraction=0.0, annotations=None,
                    labels=None, name_prefix="sa", namespace_prefix="ns", events=False):
        """Creates count ServiceAccounts NAME_PREFIX-NNNNNN spread over namespaces namespaces.

        SA i lives in NAMESPACE_PREFIX-(i mod namespaces); an evenly spread
        annotated_fraction of them gets annotations, in whose values "{name}" and
        "{namespace}" are replaced. Existing objects with the same names are replaced.
        Without events the event log is compacted to the new resourceVersion instead of
        logging one event per object, so open and older watches get 410 and must relist.
        """
        specs = _bulk_specs(count, namespaces, annotated_fraction,
                            DEFAULT_BULK_ANNOTATIONS if annotations is None else annotations,
                            labels, name_prefix, namespace_prefix)
        started = time.monotonic()
        rv = self._store.bulk_put(specs, bool(events))
        return {"created": count, "resource_version": rv,
                "seconds": round(time.monotonic() - started, 3)}

    # -- pods (listed only) ---------------------------------------------------------------

    def put_pods(self, pods):
        """Creates or replaces pods (dicts with metadata.namespace and name); returns how
        many pods exist."""
        return self._pods.put(pods)

    def bulk_pods(self, count, namespaces=100, template=None, name_prefix="pod",
                  namespace_prefix="ns", sa_prefix="sa"):
        """Creates count pods from a template (see _bulk_pod_items)."""
        started = time.monotonic()
        items = _bulk_pod_items(count, namespaces, template or {"spec": {
            "containers": [{"name": "app", "image": "busybox"}]}}, name_prefix,
            namespace_prefix, sa_prefix)
        total = self._pods.put_items(items)
        return {"created": count, "pods": total,
                "seconds": round(time.monotonic() - started, 3)}

    def clear_pods(self):
        """Deletes every pod; returns how many there were."""
        return self._pods.clear()

    @property
    def resource_version(self):
        """The current global resourceVersion."""
        return self._store.rv

    def compact(self, resource_version=None):
        """Compacts the event log up to resource_version (default: now); returns the point."""
        return self._store.compact(resource_version)

    def expire_continue_tokens(self):
        """Makes every outstanding continue token answer 410; returns how many lists."""
        return self._store.expire_snapshots()

    # -- faults ---------------------------------------------------------------------------

    def fault_refuse(self, close_existing=True):
        """Closes the API listening socket (connections are refused) until clear_faults().

        close_existing also cuts every open connection (watches mid-chunk).
        """
        with self._listener_lock:
            self._faults.refuse = True
            self._faults.refuse_cuts = close_existing
            self._close_listener()
        if close_existing:
            self._close_connections()

    def fault_hang(self, before="response", kinds=None):
        """Accepts connections but never answers, until clear_faults() (which then closes
        them). before="handshake" hangs before the TLS handshake (every connection),
        "response" after reading the request (optionally only requests of the given kinds).
        """
        self._faults.set_hang(before, kinds)

    def fault_slow(self, ms, kinds=None):
        """Delays every answer (for watches: the headers) by ms milliseconds."""
        self._faults.set_slow(ms, kinds)

    def fault_error(self, code=500, percent=None, count=None, kinds=None, retry_after=None):
        """Answers percent% of requests (default 100) or the next count requests with a
        Status of this code (Retry-After header if retry_after is given)."""
        self._faults.set_error(code, percent, count, kinds, retry_after)

    def fault_garbage(self, mode="json", count=1, kinds=None):
        """Spoils the next count answers: "json" sends invalid JSON (a watch gets one
        invalid line, then the stream ends), "truncate" cuts the body (a watch: mid-chunk)."""
        self._faults.set_garbage(mode, count, kinds)

    def drop_watches(self, wait=2.0):
        """Cuts every open watch mid-chunk; returns how many there were."""
        watches = self._store.open_watches()
        told = self._store.signal_watches("drop")
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(
                w in self._store.open_watches() for w in watches):
            time.sleep(0.01)
        for watch in set(watches) & set(self._store.open_watches()):
            watch.handler.hard_close()   # blocked in a write: cut it from here
        return told

    def gone_watches(self):
        """Sends an ERROR 410 Expired event to every open watch, which then ends."""
        return self._store.signal_watches("gone")

    def clear_faults(self):
        """Removes every fault: the port listens again, hung connections are closed."""
        with self._listener_lock:
            if self._faults.clear() and self._listener is None and not self._stopping:
                self._open_listener()

    def faults(self):
        """The faults in force."""
        return self._faults.describe()

    # -- configuration and inspection -----------------------------------------------------

    def configure(self, **settings):
        """Changes page_size, bookmark_interval, watch_gone or default_watch_timeout."""
        return self._config.update(**settings)

    def config(self):
        """The current settings."""
        return self._config.as_dict()

    @property
    def open_watches(self):
        """How many watch streams are open."""
        return len(self._store.open_watches())

    def requests(self, kind=None, since=0):
        """The recorded API requests (optionally one kind, or with seq > since)."""
        return self._log.records(kind, since)

    def request_counts(self):
        """{"list", "watch", "get", "other", "total"} request counts."""
        return self._log.counts()

    def clear_requests(self):
        """Forgets recorded requests and counts."""
        return self._log.clear()

    def wait(self, open_watches=None, counts=None, timeout=5.0):
        """Waits until at least open_watches watches are open and each count in counts
        ({"list": 2, ...}) is reached; True if that happened within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            current = self._log.counts()
            if ((open_watches is None or self.open_watches >= open_watches)
                    and all(current.get(k, 0) >= v for k, v in (counts or {}).items())):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def state(self):
        """A summary: resourceVersions, sizes, open watches, faults, config, counts."""
        return {"resource_version": self._store.rv,
                "compacted_resource_version": self._store.compacted_rv,
                "objects": self._store.count(), "open_watches": self.open_watches,
                "tls_failures": self._log.tls_failures, "api_port": self._port,
                "control_port": self.control_port, "faults": self.faults(),
                "config": self.config(), "counts": self.request_counts()}


def _server_context(cert, key, client_ca):
    """The TLS context of the API port (HTTP/1.1 only; client certificates if client_ca)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=client_ca)
    return ctx


def _bulk_specs(count, namespaces, fraction, annotations, labels, name_prefix, ns_prefix):
    """The (key, fragments) pairs of a bulk creation, validated up front."""
    if not isinstance(count, int) or count < 0:
        raise ApiError(400, "count must be a non-negative integer")
    if not isinstance(namespaces, int) or namespaces < 1:
        raise ApiError(400, "namespaces must be a positive integer")
    if not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ApiError(400, "annotated_fraction must be between 0 and 1")
    _check_string_map("annotations", annotations)
    _check_string_map("labels", labels)
    _check_key("%s-%d" % (ns_prefix, namespaces - 1), "%s-%06d" % (name_prefix, count))
    templated = any("{" in v for v in annotations.values())
    plain = _fragments(annotations, labels, None)
    bare = _fragments(None, labels, None)
    specs = []
    for i in range(count):
        key = ("%s-%03d" % (ns_prefix, i % namespaces), "%s-%06d" % (name_prefix, i))
        if int((i + 1) * fraction) == int(i * fraction):
            specs.append((key, bare))
        elif templated:
            values = {k: v.replace("{name}", key[1]).replace("{namespace}", key[0])
                      for k, v in annotations.items()}
            specs.append((key, _fragments(values, labels, None)))
        else:
            specs.append((key, plain))
    return specs


# ---------------------------------------------------------------------------------------
# Test PKI and command line

def make_test_pki(directory):
    """Writes a test PKI with the openssl CLI; returns {name: path}.

    ca.crt/ca.key (server CA), server.crt/server.key (SAN IP:127.0.0.1, DNS:localhost),
    client-ca.crt/client-ca.key, client.crt/client.key (CN=pod-identity-webhook, signed
    by client-ca) and rogue-client.crt/rogue-client.key (self-signed, for rejections).
    """
    paths = {n: os.path.join(directory, n) for n in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client-ca.crt", "client-ca.key",
        "client.crt", "client.key", "rogue-client.crt", "rogue-client.key")}
    _make_ca(directory, "ca", "fake-apiserver test CA")
    _make_ca(directory, "client-ca", "fake-apiserver client CA")
    _make_leaf(directory, "server", "localhost", "ca",
               "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _make_leaf(directory, "client", "pod-identity-webhook", "client-ca",
               "extendedKeyUsage=clientAuth\n")
    _make_ca(directory, "rogue-client", "rogue client")
    return paths


def _openssl(*args):
    """Runs openssl, raising with its stderr on failure."""
    done = subprocess.run(("openssl",) + args, capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], done.stderr.decode(errors="replace")))


def _make_ca(directory, name, cn):
    """A self-signed P-256 CA certificate and key."""
    base = os.path.join(directory, name)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", base + ".key", "-out", base + ".crt", "-days", "3650",
             "-subj", "/CN=" + cn, "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")


def _make_leaf(directory, name, cn, ca, extensions):
    """A P-256 certificate signed by ca, with the given x509v3 extensions."""
    base, ca_base = os.path.join(directory, name), os.path.join(directory, ca)
    ext_file = base + ".ext"
    with open(ext_file, "w", encoding="ascii") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n" + extensions)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=" + cn)
    _openssl("x509", "-req", "-in", base + ".csr", "-CA", ca_base + ".crt", "-CAkey",
             ca_base + ".key", "-set_serial", "0x" + uuid.uuid4().hex[:16], "-days", "365",
             "-out", base + ".crt", "-extfile", ext_file)
    os.unlink(base + ".csr")
    os.unlink(ext_file)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Fake Kubernetes API server (ServiceAccounts) with fault injection.")
    parser.add_argument("--port", type=int, default=0, help="TLS API port (0: any free)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="plain-HTTP control port (0: any free)")
    parser.add_argument("--cert", help="PEM server certificate")
    parser.add_argument("--key", help="PEM server private key")
    parser.add_argument("--token-file", help="require this bearer token (re-read per request)")
    parser.add_argument("--client-ca", help="require a client certificate signed by this CA")
    parser.add_argument("--page-size", type=int, default=0,
                        help="most items per list page, whatever the limit (0: no cap)")
    parser.add_argument("--bookmark-interval", type=float, default=1.0,
                        help="seconds between watch bookmarks (default 1)")
    parser.add_argument("--watch-gone", choices=("event", "http"), default="event",
                        help="410 for a compacted watch RV as an ERROR event or HTTP 410")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    parser.add_argument("--make-pki", metavar="DIR",
                        help="write a test PKI into DIR, print its paths as JSON, exit")
    args = parser.parse_args(argv)
    if not args.make_pki and not (args.cert and args.key):
        parser.error("--cert and --key are required")
    return args


def main(argv=None):
    """The command line: serve until SIGTERM/SIGINT (or write a test PKI)."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    if args.make_pki:
        os.makedirs(args.make_pki, exist_ok=True)
        print(json.dumps(make_test_pki(args.make_pki)), flush=True)
        return 0
    api = FakeApiServer(cert=args.cert, key=args.key, token_file=args.token_file,
                        client_ca=args.client_ca, page_size=args.page_size,
                        bookmark_interval=args.bookmark_interval, watch_gone=args.watch_gone,
                        port=args.port, control_port=args.control_port, verbose=args.verbose)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    api.start()
    print(json.dumps({"api_port": api.api_port, "control_port": api.control_port,
                      "pid": os.getpid(), "api_url": api.api_url,
                      "control_url": api.control_url}), flush=True)
    while not stop.wait(1.0):
        pass
    api.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
