"""The workshop examples' real audit events, replayed through the forwarder into the webhook receiver.

../shared/corpus/real-falco/kube-apiserver-1.36-workshop-audit.jsonl is a real kube-apiserver's audit
log while `python -m workshop trigger` ran each audit example (its README gives the windows). The
forwarder must deliver every event of each window unchanged, including what the example's rule
reads; skipped when ../shared is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.audit_events import shared_corpus_file
from support.falco_receiver import FalcoReceiver

from workshop.examples import EXAMPLE_ACCESS_KEY_ID, IMAGE, WORKSHOP_NAMESPACE

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "arn:aws:sts::111122223333:assumed-role/WorkshopAdmin/session-1"
# Windows (UTC, 2026-12-01) from the recording's README, as stageTimestamp prefixes compare.
WINDOWS = {
    "pod-in-kube-system": ("2026-12-01T14:39:54.06", "2026-12-01T14:39:54.72"),
    "configmap-aws-credentials": ("2026-12-01T14:39:56.72", "2026-12-01T14:39:58.39"),
    "admin-access": ("2026-12-01T14:40:00.40", "2026-12-01T14:40:02.23"),
}


@pytest.fixture(scope="module")
def replayed() -> tuple[list[dict[str, Any]], FalcoReceiver]:
    path = shared_corpus_file("real-falco/kube-apiserver-1.36-workshop-audit.jsonl")
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORWARDER_")} | {"PYTHONPATH": str(ROOT)}
    with FalcoReceiver(keep_events=True) as receiver:
        done = subprocess.run(
            [sys.executable, "-m", "forwarder", "replay", str(path), "--falco-url", receiver.url],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert receiver.violations == []
    summary = json.loads(done.stdout)
    assert summary["lines"] == summary["valid"] == summary["acknowledged"] == len(events) == 736
    return events, receiver


def _window(events: list[dict[str, Any]], example: str) -> list[dict[str, Any]]:
    start, end = WINDOWS[example]
    return [e for e in events if e["user"]["username"] == ADMIN and start <= e["stageTimestamp"][:22] <= end]


def test_every_event_of_every_example_arrives_as_often_as_the_api_server_wrote_it(replayed) -> None:
    events, receiver = replayed
    received = Counter(receiver.accepted_ids)
    for example in WINDOWS:
        window = _window(events, example)
        assert window, example
        for audit_id, count in Counter(e["auditID"] for e in window).items():
            assert received[audit_id] == count, (example, audit_id)


def _complete(window: list[dict[str, Any]], verb: str, resource: str, namespace: str) -> list[dict[str, Any]]:
    return [
        e
        for e in window
        if e["stage"] == "ResponseComplete"
        and e["verb"] == verb
        and e.get("objectRef", {}).get("resource") == resource
        and e.get("objectRef", {}).get("namespace") == namespace
    ]


def test_the_pod_example_arrives_with_the_image_its_rule_reads(replayed) -> None:
    events, receiver = replayed
    (create,) = _complete(_window(events, "pod-in-kube-system"), "create", "pods", "kube-system")
    delivered = receiver.event(create["auditID"])
    assert delivered == create
    assert [c["image"] for c in delivered["requestObject"]["spec"]["containers"]] == [IMAGE]


def test_the_configmap_example_arrives_with_the_key_its_rule_reads(replayed) -> None:
    events, receiver = replayed
    window = _window(events, "configmap-aws-credentials")
    # The workshop's own ConfigMap is logged without its data (Metadata level), as on EKS...
    (create,) = _complete(window, "create", "configmaps", WORKSHOP_NAMESPACE)
    assert "requestObject" not in receiver.event(create["auditID"])
    # ...the dry-run write to aws-auth carries it.
    (dry_run,) = _complete(window, "update", "configmaps", "kube-system")
    delivered = receiver.event(dry_run["auditID"])
    assert delivered == dry_run
    assert delivered["requestObject"]["data"]["aws_access_key_id"] == EXAMPLE_ACCESS_KEY_ID
    assert "dryRun=All" in delivered["requestURI"]


def test_the_admin_example_arrives_as_the_admin_identity(replayed) -> None:
    events, receiver = replayed
    window = _window(events, "admin-access")
    verbs = {(e["verb"], e.get("objectRef", {}).get("resource")) for e in window if e["stage"] == "ResponseComplete"}
    assert {("create", "namespaces"), ("delete", "namespaces")} <= verbs
    for event in window:
        assert receiver.event(event["auditID"])["user"]["username"] == ADMIN
