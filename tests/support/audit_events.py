"""Audit events for the tests and the benchmark: a generated corpus, the shared one, and single events.

The generated corpus (`generated_lines`) is built here, deterministically: EKS-shaped events in
the shapes a real API server writes (IAM and node identities, request bodies, microsecond and
nanosecond timestamps, offsets, non-ASCII text) and lines Falco cannot use. The core tests use it,
so a fresh clone tests validation, batching and the whole flow on its own.

The shared corpus (real events from public repositories) lives beside the repository in
`<repo>/../shared/corpus` and is never copied into it: tests that read it call
`shared_corpus_lines()`, which skips the test, saying why, when the folder is absent.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS_DIR = (REPO_ROOT / ".." / "shared" / "corpus").resolve()
SHARED_MISSING = f"shared audit corpus not found at {SHARED_CORPUS_DIR} (it stays outside the repository)"

# As Go's time.Parse(time.RFC3339Nano, ...) reads it (see support.falco_receiver).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}([.,]\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class CorpusLine:
    file: str
    number: int
    text: str
    valid: bool  # what Falco accepts: kind Event, auditID, RFC3339 stageTimestamp
    audit_id: str | None


def valid_for_falco(text: str) -> tuple[bool, str | None]:
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    if not isinstance(value, dict):
        return False, None
    audit_id = value.get("auditID") if isinstance(value.get("auditID"), str) else None
    ok = (
        value.get("kind") == "Event"
        and bool(audit_id)
        and isinstance(value.get("stageTimestamp"), str)
        and _RFC3339.match(value["stageTimestamp"]) is not None
        and _real_date(value["stageTimestamp"])
    )
    return ok, audit_id


def _real_date(stamp: str) -> bool:
    try:
        datetime.strptime(stamp[:10], "%Y-%m-%d")
    except ValueError:
        return False
    return True


def shared_corpus_available() -> bool:
    return SHARED_CORPUS_DIR.is_dir() and any(SHARED_CORPUS_DIR.glob("*.jsonl"))


def shared_corpus_file(name: str) -> Path:
    """A file of the shared corpus; skips the calling test when the corpus is not beside the repository."""
    path = SHARED_CORPUS_DIR / name
    if not path.is_file():
        pytest.skip(SHARED_MISSING if not SHARED_CORPUS_DIR.is_dir() else f"{path} not found")
    return path


def shared_corpus_lines() -> list[CorpusLine]:
    """Every non-blank line of every shared corpus file; skips the calling test when it is absent."""
    if not shared_corpus_available():
        pytest.skip(SHARED_MISSING)
    lines: list[CorpusLine] = []
    for path in sorted(SHARED_CORPUS_DIR.glob("*.jsonl")):
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip():
                ok, audit_id = valid_for_falco(text)
                lines.append(CorpusLine(path.name, number, text, ok, audit_id))
    return lines


GENERATED = "generated"
"""The CorpusLine.file of generated lines."""


def generated_lines(count: int = 120, seed: int = 1) -> list[CorpusLine]:
    """A deterministic corpus of `count` EKS-shaped valid events followed by invalid lines of every kind.

    Valid events vary what real ones vary: identities (IAM roles, node and service account users,
    EKS's own ``eks:*`` users), verbs, resources, request bodies, timestamp precision and offsets,
    non-ASCII text, and one event written twice (two stages, one auditID) as API servers do.
    """
    rng = random.Random(seed)
    texts = [_generated_event(rng, i) for i in range(count)]
    # One request at two stages: the same auditID twice (Falco accepts both).
    twin = json.loads(texts[0])
    twin["stage"] = "ResponseStarted"
    texts.append(json.dumps(twin, separators=(",", ":")))
    # Pretty-printed: valid JSON over several lines; the forwarder sends it compact.
    texts.append(json.dumps(json.loads(_generated_event(rng, count + 1)), indent=2))
    lines = [CorpusLine(GENERATED, n, t, *valid_for_falco(t)) for n, t in enumerate(texts, start=1)]
    for text in _invalid_texts(rng):
        ok, audit_id = valid_for_falco(text)
        lines.append(CorpusLine(GENERATED, len(lines) + 1, text, ok, audit_id))
    return lines


_USERS = (
    ("arn:aws:sts::111122223333:assumed-role/WorkshopAdmin/session-1", ["system:authenticated"]),
    ("arn:aws:iam::111122223333:user/alice", ["system:authenticated"]),
    ("system:node:ip-10-0-12-34.us-west-2.compute.internal", ["system:nodes", "system:authenticated"]),
    ("system:serviceaccount:kube-system:coredns", ["system:serviceaccounts", "system:authenticated"]),
    ("eks:certificate-controller", ["system:authenticated"]),
    ("kubernetes-admin", ["system:masters", "system:authenticated"]),
    ("jörg@example.com", ["system:authenticated"]),
)
_REQUESTS = (
    ("create", "pods", "kube-system", True),
    ("get", "pods", "default", False),
    ("list", "configmaps", "kube-system", False),
    ("update", "configmaps", "kube-system", True),
    ("patch", "deployments", "falco", True),
    ("delete", "secrets", "default", False),
    ("watch", "endpoints", "kube-system", False),
    ("create", "pods/exec", "default", False),
)


def _timestamp(rng: random.Random, base_ms: int) -> str:
    moment = datetime.fromtimestamp(base_ms / 1000, tz=UTC)
    style = rng.randrange(4)
    if style == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # what kube-apiserver writes
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"{rng.randrange(1000):03d}Z"  # nanoseconds
    if style == 2:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # no fraction
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+02:00"  # an offset instead of Z


def _generated_event(rng: random.Random, index: int) -> str:
    user, groups = _USERS[index % len(_USERS)]
    verb, resource, namespace, with_body = _REQUESTS[index % len(_REQUESTS)]
    base_ms = 1_796_135_976_000 + index * 37
    name = f"demo-{index}"
    subresource = None
    if "/" in resource:
        resource, subresource = resource.split("/")
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse" if with_body else "Metadata",
        "auditID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/{namespace}/{resource}/{name}",
        "verb": verb,
        "user": {
            "username": user,
            "uid": f"aws-iam-authenticator:111122223333:AROA{index:016d}",
            "groups": groups,
            "extra": {"accessKeyId": ["ASIAEXAMPLE"], "sessionName": [f"session-{index}"]},
        },
        "sourceIPs": [f"10.0.{index % 256}.{(index * 7) % 256}"],
        "userAgent": "kubectl/v1.34.0 (linux/amd64) kubernetes/abcdef",
        "objectRef": {"resource": resource, "namespace": namespace, "name": name, "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200 if verb != "create" else 201},
        "requestReceivedTimestamp": _timestamp(rng, base_ms),
        "stageTimestamp": _timestamp(rng, base_ms + 3),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    if subresource:
        event["objectRef"]["subresource"] = subresource
    if with_body:
        event["requestObject"] = {
            "kind": "ConfigMap" if resource == "configmaps" else "Pod",
            "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": "démo", "tier": "教程"}},
            "data": {"password": "not-a-secret", "replicas": rng.randrange(1 << 40), "ratio": 0.25},
        }
    return json.dumps(event, ensure_ascii=bool(index % 2), separators=(",", ":"))


def _invalid_texts(rng: random.Random) -> list[str]:
    good = json.loads(_generated_event(rng, 3))
    missing_id = dict(good)
    del missing_id["auditID"]
    v1beta1 = dict(good, apiVersion="audit.k8s.io/v1beta1", stageTimestamp="2017-10-06 16:21:42")
    event_list = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [good]}
    whole = json.dumps(dict(good, auditID=str(uuid.UUID(int=rng.getrandbits(128), version=4))))
    return [
        "not json at all",
        whole[: len(whole) // 2],  # cut off mid-object
        json.dumps([good]),  # an array, not an event
        json.dumps(event_list),
        json.dumps(missing_id),
        json.dumps(v1beta1),
        json.dumps(dict(good, stageTimestamp="2024-02-30T10:00:00Z")),  # no such day
        whole[:200] + "[Truncated...]",  # as CloudWatch marks a line it cut
    ]


def rfc3339_micro(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_event(timestamp_ms: int, size: int = 1500, audit_id: str | None = None, **extra: Any) -> tuple[str, str]:
    """(auditID, JSON line) of a plausible EKS audit event of about `size` bytes."""
    audit_id = audit_id or str(uuid.uuid4())
    stamp = rfc3339_micro(timestamp_ms)
    event: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Request",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/configmaps/aws-auth",
        "verb": "get",
        "user": {
            "username": "arn:aws:sts::123456789012:assumed-role/falco-lab-admin/session",
            "uid": "aws-iam-authenticator:123456789012:AROAEXAMPLE",
            "groups": ["system:authenticated"],
            "extra": {"accessKeyId": ["ASIAEXAMPLE"], "sessionName": ["session"]},
        },
        "sourceIPs": ["10.0.12.34"],
        "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
        "objectRef": {"resource": "configmaps", "namespace": "kube-system", "name": "aws-auth", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    event.update(extra)
    line = json.dumps(event, separators=(",", ":"))
    if len(line) < size:
        event["annotations"]["lab.example/padding"] = "x" * (size - len(line) - 26)
        line = json.dumps(event, separators=(",", ":"))
    return audit_id, line


def new_stream_name() -> str:
    """An EKS-shaped audit stream name: kube-apiserver-audit-<32 hex>."""
    return f"kube-apiserver-audit-{uuid.uuid4().hex}"
