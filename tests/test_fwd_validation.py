"""forwarder.validation against generated EKS-shaped events, the shared corpus when present, and bad lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from support.audit_events import GENERATED, generated_lines, shared_corpus_file

import forwarder.validation
from forwarder.validation import (
    BAD_STAGE_TIMESTAMP,
    MISSING_AUDIT_ID,
    NOT_EVENT_KIND,
    NOT_JSON,
    NOT_OBJECT,
    TOO_LARGE,
    TRUNCATED,
    is_rfc3339,
    validate,
)

MAX = 262_144

VALID_FILES = {
    "falco_k8s_audit_trace_files.jsonl": 51,
    "sysdig_aks_audit_log_samples.jsonl": 24,
    "sysdig_stackdriver_bridge_gke_converted_v1beta1.jsonl": 25,
    "openshift_docs_audit_log_examples.jsonl": 4,
}
INVALID_FILES = {
    "panther_k8s_audit_rule_tests.jsonl": 31,
    "audit2rbac_demo_log_2017_full_v1beta1.jsonl": 757,
}


@pytest.fixture(autouse=True, params=["orjson", "stdlib"])
def json_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test runs with the fast parser (as deployed) and with the standard library alone."""
    monkeypatch.setattr(forwarder.validation, "FAST_LOADS", orjson.loads if request.param == "orjson" else None)
    yield request.param


def corpus_lines(name: str) -> list[str]:
    """Lines of a shared corpus file; the test skips when shared/ is not beside the repository."""
    path: Path = shared_corpus_file(name)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_valid_generated_event_validates_and_is_sent_unchanged() -> None:
    lines = [line for line in generated_lines() if line.valid]
    assert len(lines) > 100
    for line in lines:
        result = validate(line.text, MAX)
        assert result.ok, (result.reason, line.text[:120])
        assert result.audit_id == line.audit_id
        assert result.body is not None and json.loads(result.body) == json.loads(line.text)


def test_every_invalid_generated_line_is_refused_with_its_reason() -> None:
    invalid = [line for line in generated_lines() if not line.valid]
    reasons = [validate(line.text, MAX).reason for line in invalid]
    assert reasons == [
        NOT_JSON, NOT_JSON, NOT_OBJECT, NOT_EVENT_KIND, MISSING_AUDIT_ID, BAD_STAGE_TIMESTAMP,
        BAD_STAGE_TIMESTAMP, TRUNCATED,
    ]
    assert all(line.file == GENERATED for line in invalid)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": "4f1c8a6e-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/kube-system/pods",
        "verb": "create",
        "user": {"username": "kubernetes-admin"},
        "requestReceivedTimestamp": "2024-05-01T12:00:00.123456Z",
        "stageTimestamp": "2024-05-01T12:00:00.234567Z",
    }
    base.update(overrides)
    return base


def compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


@pytest.mark.parametrize(("name", "count"), sorted(VALID_FILES.items()))
def test_every_line_of_the_valid_corpus_files_validates(name: str, count: int) -> None:
    lines = corpus_lines(name)
    assert len(lines) == count
    for line in lines:
        result = validate(line, MAX)
        assert result.ok, (name, result.reason, line[:120])
        assert result.reason is None
        original = json.loads(line)
        assert result.audit_id == original["auditID"]
        assert result.body is not None
        assert json.loads(result.body) == original


@pytest.mark.parametrize(("name", "count"), sorted(INVALID_FILES.items()))
def test_corpus_files_without_rfc3339_stage_timestamps_are_rejected(name: str, count: int) -> None:
    lines = corpus_lines(name)
    assert len(lines) == count
    for line in lines:
        result = validate(line, MAX)
        assert not result.ok
        assert result.reason == BAD_STAGE_TIMESTAMP
        assert result.body is None
        # The id is still known, for the log line that reports the skip.
        assert result.audit_id == json.loads(line)["auditID"]


def test_compact_line_is_sent_as_its_own_bytes() -> None:
    compact_lines = [line.text for line in generated_lines() if line.valid and "\n" not in line.text]
    for line in compact_lines:
        assert validate(line, MAX).body == line.encode("utf-8")


def test_surrounding_whitespace_is_dropped() -> None:
    line = compact(event())
    assert validate(f"  {line}\r\n", MAX).body == line.encode()


def test_pretty_printed_event_is_sent_compact() -> None:
    pretty = json.dumps(event(), indent=2)
    result = validate(pretty, MAX)
    assert result.ok
    assert result.body == compact(event()).encode()


def test_non_ascii_text_is_kept_as_utf8() -> None:
    line = json.dumps(event(user={"username": "jörg"}), ensure_ascii=False, separators=(",", ":"))
    result = validate(line, MAX)
    assert result.ok and result.body == line.encode("utf-8")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", NOT_JSON),
        ("not json at all", NOT_JSON),
        ('{"kind":"Event"', NOT_JSON),
        (compact(event())[:-1] + ',"x":NaN}', NOT_JSON),
        ("[1,2,3]", NOT_OBJECT),
        ('"Event"', NOT_OBJECT),
        ("null", NOT_OBJECT),
        (compact(event(kind="EventList")), NOT_EVENT_KIND),
        (compact({k: v for k, v in event().items() if k != "kind"}), NOT_EVENT_KIND),
        (compact({k: v for k, v in event().items() if k != "auditID"}), MISSING_AUDIT_ID),
        (compact(event(auditID="")), MISSING_AUDIT_ID),
        (compact(event(auditID=42)), MISSING_AUDIT_ID),
        (compact({k: v for k, v in event().items() if k != "stageTimestamp"}), BAD_STAGE_TIMESTAMP),
        (compact(event(stageTimestamp="2024-05-01 12:00:00.234")), BAD_STAGE_TIMESTAMP),
        (compact(event(stageTimestamp=1714564800)), BAD_STAGE_TIMESTAMP),
        (compact(event(stageTimestamp="2024-05-01T12:00:00")), BAD_STAGE_TIMESTAMP),
        (compact(event())[:5000] + "[Truncated...]", TRUNCATED),
        ('{"kind":"Event","auditID":"a","requestObject":{"data":"xxxxxxxx[Truncated...]', TRUNCATED),
        ("[" * 100_000, NOT_JSON),
    ],
)
def test_bad_lines_are_rejected_with_their_reason(line: str, reason: str) -> None:
    result = validate(line, MAX)
    assert (result.ok, result.reason, result.body) == (False, reason, None)


@pytest.mark.parametrize(
    "extra",
    [
        '"big":123456789012345678901234567890',  # beyond 64 bits: orjson would make it a float
        '"huge":1e400',  # beyond a double: orjson refuses it, JSON (and Go's fastjson) allow it
        '"odd":"\\ud800"',  # an escaped lone surrogate
    ],
)
def test_json_that_a_fast_parser_refuses_is_still_accepted_and_sent_unchanged(extra: str) -> None:
    line = compact(event())[:-1] + "," + extra + "}"
    result = validate(line, MAX)
    assert result.ok, result.reason
    assert result.body == line.encode()


def test_pretty_printed_event_keeps_big_integers_exact() -> None:
    pretty = json.dumps(event(big=123456789012345678901234567890), indent=2)
    result = validate(pretty, MAX)
    assert result.ok and result.body is not None
    assert b'"big":123456789012345678901234567890' in result.body


def test_events_over_the_size_limit_are_too_large() -> None:
    line = compact(event(requestObject={"data": "x" * 300_000}))
    result = validate(line, MAX)
    assert (result.ok, result.reason, result.audit_id) == (False, TOO_LARGE, event()["auditID"])


def test_size_limit_is_inclusive_and_counts_utf8_bytes() -> None:
    line = json.dumps(event(note="ü" * 10), separators=(",", ":"), ensure_ascii=False)
    size = len(line.encode("utf-8"))
    assert size > len(line)
    assert validate(line, size).ok
    assert validate(line, size - 1).reason == TOO_LARGE


def test_pretty_printed_event_is_measured_in_its_compact_form() -> None:
    pretty = json.dumps(event(), indent=4)
    size = len(compact(event()))
    assert len(pretty) > size
    assert validate(pretty, size).ok


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.1Z",
        "2024-05-01T12:00:00.123456789Z",
        "2024-05-01T12:00:00.123456+02:00",
        "2024-05-01T12:00:00-05:30",
        "2024-02-29T23:59:59Z",
        "2000-02-29T00:00:00Z",
        "2024-01-31T00:00:00Z",
        "2024-12-31T23:59:59.999999Z",
    ],
)
def test_rfc3339_nano_accepted(value: str) -> None:
    assert is_rfc3339(value)


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01 12:00:00Z",
        "2024-05-01t12:00:00Z",
        "2024-05-01T12:00:00z",
        "2024-05-01T12:00:00",
        "2024-05-01T12:00:00+0200",
        "2024-13-01T12:00:00Z",
        "2024-04-31T12:00:00Z",
        "2023-02-29T12:00:00Z",
        "1900-02-29T12:00:00Z",
        "2024-02-30T12:00:00Z",
        "2024-05-00T12:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:60Z",
        "2024-05-01T12:00:00.Z",
        "2024-05-01T12:00:00+24:00",
        "",
        None,
        1714564800,
    ],
)
def test_rfc3339_nano_rejected(value: object) -> None:
    assert not is_rfc3339(value)
