"""A Kubernetes API stand-in on 127.0.0.1: ConfigMaps and coordination.k8s.io/v1 Leases, as the forwarder's
checkpoint store and LeaseElector use them, with the API server's rules that matter to them:

- every object has a resourceVersion, changed by every write; an update (PUT) carrying a stale one is
  refused with 409 Conflict, one without any is unconditional (as on the real server); a create (POST) of
  an existing name is 409 AlreadyExists, with a resourceVersion it is refused; a missing object is 404;
- each compare-and-swap is atomic (several forwarder processes race on it);
- optionally a bearer token (401 without it) and RBAC (403 for any verb on any object not granted), from Role
  rules as Kubernetes writes them: ``Rbac.from_rules``; ``Rbac.forwarder(...)`` is what the AuditForwarder
  component's Roles grant (get and update by name, no create: tests/test_audit_forwarder.py checks that the
  rendered Roles are exactly these rules), so a create is refused as the real server refuses it; the objects
  then come from the stack: ``create_like_the_stack``;
- the ``fieldManager`` query parameter of a write is recorded (KubeWrite.field_manager), as the API server keeps
  it in managedFields.

Every write is recorded (KubeWrite) with the lease term/holder it carries, so tests can check the order in
which terms wrote. Point a real forwarder at it with ``--kube-api-url URL``: without a service account
token file the forwarder sends no Authorization header (as behind ``kubectl proxy``).
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from support.loopback_http import LoopbackServer, QuietHandler

from forwarder.checkpoint.store import hashes_names
from forwarder.kube import KubeApi

TERM_ANNOTATION = "falco-eks-forwarder/lease-term"
STACK_LABELS = {"app.kubernetes.io/name": "audit-forwarder", "app.kubernetes.io/part-of": "falco-eks-lab"}
"""Labels the stack puts on the objects it creates (a few of the component's)."""
HOLDER_ANNOTATION = "falco-eks-forwarder/lease-holder"


@dataclass(frozen=True)
class KubeWrite:
    """One write the Kubernetes API stand-in answered."""

    at: float
    """time.monotonic() when it was answered."""
    method: str
    resource: str
    name: str
    status: int
    term: int | None
    """The checkpoint's lease-term annotation in the request (ConfigMaps), or the Lease's leaseTransitions."""
    holder: str | None
    """The checkpoint's holder annotation, or the Lease's holderIdentity, in the request."""
    version: str | None = None
    """The resourceVersion the request carried (None: an unconditional update, or a create)."""
    wall: float = 0.0
    """time.time() when it was answered (to order it against other servers' records)."""
    field_manager: str | None = None
    """The request's fieldManager query parameter."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


_API_GROUPS = {"configmaps": "", "leases": "coordination.k8s.io"}


def forwarder_role_rules(lease: str, checkpoint: str, *, previous_checkpoint: str | None = None,
                         previous_lease: str | None = None) -> list[dict[str, Any]]:
    """The rules of the AuditForwarder component's two Roles, as Kubernetes writes them: get and update on the
    checkpoint's ConfigMaps and on the Lease, by name; with ``previous_*``, also on what a 0.3 forwarder created itself
    (its checkpoint NAME and NAME-hashes, its Lease), which today's forwarder reads and the 0.3 replicas write until
    the rolling update stops them. No create: RBAC cannot limit it by name, and the stack creates the objects."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [checkpoint, *hashes_names(checkpoint)],
         "verbs": ["get", "update"]},
    ]
    if previous_checkpoint is not None:
        rules.append({"apiGroups": [""], "resources": ["configmaps"],
                      "resourceNames": [previous_checkpoint, previous_checkpoint + "-hashes"],
                      "verbs": ["get", "update"]})
    rules.append({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [lease],
                  "verbs": ["get", "update"]})
    if previous_lease is not None:
        rules.append({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [previous_lease],
                      "verbs": ["get", "update"]})
    return rules


@dataclass(frozen=True)
class Rbac:
    """Granted (verb, resource, names) rules in the one namespace; names None: any name. Verbs as RBAC's: get,
    list (GET of a collection), create (POST), update (PUT), patch, delete. A create names no object when it is
    authorized, so a rule with names never allows it (as in Kubernetes)."""

    rules: tuple[tuple[str, str, tuple[str, ...] | None], ...]

    def allows(self, verb: str, resource: str, name: str | None) -> bool:
        return any(verb == v and resource == r and (names is None or name in names) for v, r, names in self.rules)

    @classmethod
    def from_rules(cls, rules: Iterable[Mapping[str, Any]]) -> Rbac:
        """From Role rules (apiGroups, resources, resourceNames, verbs), for the resources the stand-in serves."""
        granted: list[tuple[str, str, tuple[str, ...] | None]] = []
        for rule in rules:
            names = tuple(rule["resourceNames"]) if rule.get("resourceNames") else None
            for resource in rule["resources"]:
                if _API_GROUPS.get(resource) in rule["apiGroups"]:
                    granted += [(verb, resource, names) for verb in rule["verbs"]]
        return cls(tuple(granted))

    @classmethod
    def forwarder(cls, lease: str, checkpoint: str, *, previous_checkpoint: str | None = None,
                  previous_lease: str | None = None) -> Rbac:
        """What the AuditForwarder component's Roles grant (forwarder_role_rules)."""
        return cls.from_rules(forwarder_role_rules(lease, checkpoint, previous_checkpoint=previous_checkpoint,
                                                   previous_lease=previous_lease))

    @classmethod
    def older_stack(cls, lease: str, checkpoint: str) -> Rbac:
        """What the component granted before the stack created the objects (release 0.3): get/update on the Lease and
        on the ConfigMaps NAME and NAME-hashes, and create on leases and configmaps of any name."""
        configmaps = (checkpoint, checkpoint + "-hashes")
        return cls((("get", "leases", (lease,)), ("update", "leases", (lease,)), ("create", "leases", None),
                    ("get", "configmaps", configmaps), ("update", "configmaps", configmaps),
                    ("create", "configmaps", None)))


_KUBE_PATHS = re.compile(
    r"^/(?:api/v1|apis/coordination\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/(?P<resource>configmaps|leases)"
    r"(?:/(?P<name>[^/?]+))?$")
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
                  "code": code}


class FakeKubeApi:
    """The stand-in (module docstring). With ``token``, requests must carry it (401 otherwise); without, any request
    is taken (as behind ``kubectl proxy``). With ``rbac``, requests it does not grant get 403 (and are counted in
    ``denied``)."""

    def __init__(self, token: str | None, on_write: Callable[[str, str], None] | None = None,
                 rbac: Rbac | None = None, tls: ssl.SSLContext | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.token = token
        self.now = now
        """The clock of ``body_times`` (a simulation's)."""
        self.rbac = rbac
        self.objects: dict[str, dict[str, Any]] = {}
        """ConfigMaps by name."""
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 100
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.denied: list[tuple[str, str]] = []
        """(method, path) of every request RBAC refused."""
        self.bodies: list[tuple[str, str, int]] = []
        """(method, object name, request body bytes) of every write."""
        self.body_times: list[float] = []
        """When each of ``bodies`` came (``now``)."""
        self.writes: list[KubeWrite] = []
        self.conflict_next_put = 0
        self.before_write: Callable[[str, str, str], None] | None = None
        """Called (method, resource, name) before a write is decided, under the lock: tests slip a rival write in."""
        self.on_write = on_write
        """Called with (verb, name) after every successful ConfigMap write: where EKS would write its audit event."""
        api = self

        class Handler(QuietHandler):
            # One request per connection: close() then ends every client's access at once, like an API server gone.
            protocol_version = "HTTP/1.0"

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path, _, query = self.path.partition("?")
                manager = (parse_qs(query).get("fieldManager") or [None])[0]
                with api.lock:
                    api.requests.append((self.command, path))
                    if body is not None:
                        api.bodies.append((self.command, body["metadata"]["name"], len(raw)))
                        api.body_times.append(api.now())
                    status, doc = api.handle(self.command, path, self.headers.get("Authorization"), body)
                    if body is not None:
                        api.record(self.command, path, body, status, manager)
                self._reply(status, doc)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        self._server = LoopbackServer(Handler, tls=tls).start()

    def handle(self, method: str, path: str, auth: str | None, body: dict[str, Any] | None
               ) -> tuple[int, dict[str, Any]]:
        """One request, under the lock."""
        if self.token is not None and auth != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        match = _KUBE_PATHS.match(path)
        if match is None:
            return _status(404, "NotFound", "no such path")
        resource, name = match["resource"], match["name"]
        verb = "list" if method == "GET" and name is None else _VERBS.get(method, method.lower())
        if self.rbac is not None and not self.rbac.allows(verb, resource, name):
            self.denied.append((method, path))
            return _status(403, "Forbidden", f'cannot {verb} resource "{resource}" in namespace "{match["ns"]}"')
        objects = self.objects if resource == "configmaps" else self.leases
        if method == "GET" and name is not None:
            if name in objects:
                return 200, objects[name]
            return _status(404, "NotFound", f'{resource} "{name}" not found')
        if method not in ("POST", "PUT") or body is None:
            return _status(405, "MethodNotAllowed", "not supported by the stand-in")
        if self.before_write is not None:
            self.before_write(method, resource, body["metadata"]["name"])
        if method == "POST":
            if name is not None:
                return _status(405, "MethodNotAllowed", "create goes to the collection")
            new = body["metadata"]["name"]
            if body["metadata"].get("resourceVersion"):
                return _status(500, "InternalError", "resourceVersion should not be set on objects to be created")
            if new in objects:
                return _status(409, "AlreadyExists", f'{resource} "{new}" already exists')
            self.put(objects, new, body)
            if resource == "configmaps":
                self.written("create", new)  # before answering: the caller sees its audit event at once
            return 201, objects[new]
        if name not in objects:
            return _status(404, "NotFound", f'{resource} "{name}" not found')
        if body["metadata"].get("name") != name:
            return _status(400, "BadRequest", "the name of the object does not match the name on the URL")
        if resource == "configmaps" and self.conflict_next_put:
            self.conflict_next_put -= 1
            self.version += 1  # someone else wrote it meanwhile
            objects[name]["metadata"]["resourceVersion"] = str(self.version)
        sent = body["metadata"].get("resourceVersion")
        if sent and sent != objects[name]["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the object has '
                                            "been modified; please apply your changes to the latest version and try "
                                            "again")
        self.put(objects, name, body)
        if resource == "configmaps":
            self.written("update", name)
        return 200, objects[name]

    def record(self, method: str, path: str, body: dict[str, Any], status: int, manager: str | None = None) -> None:
        match = _KUBE_PATHS.match(path)
        resource = match["resource"] if match else "?"
        if resource == "leases":
            spec = body.get("spec") or {}
            term, holder = spec.get("leaseTransitions"), spec.get("holderIdentity")
        else:
            annotations = body["metadata"].get("annotations") or {}
            raw_term = annotations.get(TERM_ANNOTATION)
            term, holder = (None if raw_term is None else int(raw_term)), annotations.get(HOLDER_ANNOTATION)
        self.writes.append(KubeWrite(time.monotonic(), method, resource, body["metadata"]["name"], status, term,
                                     holder, body["metadata"].get("resourceVersion"), time.time(), manager))

    def written(self, verb: str, name: str) -> None:
        if self.on_write is not None:
            self.on_write(verb, name)

    def put(self, objects: dict[str, dict[str, Any]], name: str, body: dict[str, Any]) -> None:
        self.version += 1
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = str(self.version)
        objects[name] = body

    def store(self, name: str, body: dict[str, Any]) -> None:
        """Put ConfigMap ``name`` in place, as if written by someone else."""
        self.put(self.objects, name, body)

    def create_like_the_stack(self, namespace: str, checkpoint: str, lease: str | None = None,
                              labels: Mapping[str, str] | None = None) -> None:
        """Create what the AuditForwarder component creates, as Pulumi would: the checkpoint's ConfigMaps without
        data and, given its name, the Lease without a spec, each with the stack's labels."""
        labels = dict(labels if labels is not None else STACK_LABELS)
        with self.lock:
            for name in (checkpoint, *hashes_names(checkpoint)):
                self.put(self.objects, name, {"apiVersion": "v1", "kind": "ConfigMap",
                                              "metadata": {"name": name, "namespace": namespace, "labels": labels}})
            if lease is not None:
                self.put(self.leases, lease, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                              "metadata": {"name": lease, "namespace": namespace, "labels": labels}})

    def lease(self, name: str) -> dict[str, Any]:
        """The spec of Lease ``name`` as stored now ({} when there is none)."""
        with self.lock:
            return json.loads(json.dumps((self.leases.get(name) or {}).get("spec") or {}))

    def successful_writes(self, resource: str | None = None) -> list[KubeWrite]:
        with self.lock:
            return [w for w in self.writes if w.ok and (resource is None or w.resource == resource)]

    @property
    def url(self) -> str:
        return self._server.url()

    def client(self, token_path: str = "/nonexistent/token") -> KubeApi:
        """The forwarder's client of the stand-in, reading its token from ``token_path`` (by default none: it sends no
        Authorization header, as behind ``kubectl proxy``)."""
        return KubeApi(self.url, token_path=token_path, ca_path=None)

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> FakeKubeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
