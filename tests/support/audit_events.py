"""Audit events for the end-to-end tests and the benchmark: the real corpus, and generated events.

The corpus lives beside the repository (`<repo>/../shared/corpus`), in development and in CI.
A missing corpus is an error with a clear message, never a silent skip.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO_ROOT / ".." / "shared" / "corpus"

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
    )
    return ok, audit_id


def corpus_lines() -> list[CorpusLine]:
    """Every non-blank line of every corpus file, with whether Falco would accept it."""
    directory = CORPUS_DIR.resolve()
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not files:
        raise RuntimeError(
            f"audit corpus not found at {directory}: the tests expect a copy of shared/ beside the repository"
        )
    lines: list[CorpusLine] = []
    for path in files:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip():
                ok, audit_id = valid_for_falco(text)
                lines.append(CorpusLine(path.name, number, text, ok, audit_id))
    return lines


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
