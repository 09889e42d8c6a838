"""forwarder/sources/subscription.py: the records a CloudWatch Logs subscription filter writes to Kinesis, decoded.

The envelope is the documented one (CloudWatch Logs user guide, "Subscription filters"; shared/DESIGN.md):
gzip of ``{"messageType", "owner", "logGroup", "logStream", "subscriptionFilters", "logEvents"}``."""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

import pytest
from zlib_ng import zlib_ng

from forwarder.model import LogEvent
from forwarder.sources import subscription
from forwarder.sources.subscription import CONTROL, DATA, MALFORMED, OTHER_LOG_GROUP, OTHER_STREAM, decode

GROUP = "/aws/eks/lab/cluster"
PREFIX = "kube-apiserver-audit-"
STREAM = PREFIX + "0a" * 16
CHOSEN_AT_IMPORT = subscription.INFLATE  # before the fixture below swaps it


@pytest.fixture(autouse=True, params=["zlib-ng", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with the zlib-ng wheel the forwarder pins and with the system zlib it falls back to."""
    monkeypatch.setattr(subscription, "INFLATE", zlib_ng if request.param == "zlib-ng" else zlib)


def envelope(message_type: str = "DATA_MESSAGE", group: str = GROUP, stream: str = STREAM,
             events: Any = None) -> dict[str, Any]:
    if events is None:
        events = [{"id": "3700", "timestamp": 1_700_000_000_000, "message": '{"kind":"Event"}'}]
    return {"messageType": message_type, "owner": "123456789012", "logGroup": group, "logStream": stream,
            "subscriptionFilters": ["audit-to-kinesis"], "logEvents": events}


def record(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode())


def test_a_data_message_yields_its_events_with_cloudwatch_ids_and_the_arrival_time() -> None:
    events = [{"id": "37001", "timestamp": 1_700_000_000_000, "message": "a"},
              {"id": "37002", "timestamp": 1_700_000_000_005, "message": "b"}]
    decoded = decode(record(envelope(events=events)), GROUP, PREFIX, arrival_ms=1_700_000_001_000)
    assert decoded.kind == DATA and decoded.bad_events == 0 and decoded.error is None
    assert decoded.events == [LogEvent("37001", STREAM, 1_700_000_000_000, 1_700_000_001_000, "a"),
                              LogEvent("37002", STREAM, 1_700_000_000_005, 1_700_000_001_000, "b")]


def test_base64_text_of_the_gzip_is_accepted_as_kinesis_carries_it_on_the_wire() -> None:
    decoded = decode(base64.b64encode(record(envelope())), GROUP, PREFIX, 0)
    assert decoded.kind == DATA and [e.event_id for e in decoded.events] == ["3700"]


def test_a_control_message_has_no_events() -> None:
    control = envelope("CONTROL_MESSAGE", group="", stream="", events=[
        {"id": "", "timestamp": 1_700_000_000_000, "message": "CWL CONTROL MESSAGE: Checking health of destination"}])
    decoded = decode(record(control), GROUP, PREFIX, 0)
    assert decoded.kind == CONTROL and decoded.events == []


@pytest.mark.parametrize(("doc", "kind"), [
    (envelope(group="/aws/eks/other/cluster"), OTHER_LOG_GROUP),
    (envelope(stream="kube-scheduler-0a0a"), OTHER_STREAM),
    (envelope(stream="authenticator-" + STREAM), OTHER_STREAM),
])
def test_records_of_other_log_groups_or_streams_are_dropped_without_events(doc: Any, kind: str) -> None:
    decoded = decode(record(doc), GROUP, PREFIX, 0)
    assert decoded.kind == kind and decoded.events == [] and decoded.error is None


@pytest.mark.parametrize(("data", "why"), [
    (b"\x1f\x8b\x08\x00garbage", "bad gzip"),
    (gzip.compress(b"{not json"), ""),
    (gzip.compress(b"[1, 2]"), "not a JSON object"),
    (record({"messageType": "SOMETHING_ELSE"}), "messageType"),
    (record({k: v for k, v in envelope().items() if k != "logEvents"}), "no logEvents"),
    (record({k: v for k, v in envelope().items() if k != "logStream"}), "no logStream"),
    (b"plain text, neither gzip nor base64", "neither gzip nor base64"),
    (base64.b64encode(b"not gzip inside"), "base64 of something other than gzip"),
    (b"", "empty record"),
])
def test_a_corrupt_record_is_reported_malformed_with_a_reason_never_raised(data: bytes, why: str) -> None:
    decoded = decode(data, GROUP, PREFIX, 0)
    assert decoded.kind == MALFORMED and decoded.events == []
    assert decoded.error and why in decoded.error


def test_a_truncated_gzip_record_is_malformed() -> None:
    data = record(envelope())
    decoded = decode(data[: len(data) // 2], GROUP, PREFIX, 0)
    assert decoded.kind == MALFORMED and "truncated" in (decoded.error or "")


@pytest.mark.parametrize(("offset", "why"), [(-8, "incorrect data check"), (-1, "incorrect length check")])
def test_a_record_whose_gzip_crc_or_length_is_wrong_is_malformed(offset: int, why: str) -> None:
    data = bytearray(record(envelope()))
    data[offset] ^= 1  # the trailer: CRC-32 of the inflated text, then its length
    decoded = decode(bytes(data), GROUP, PREFIX, 0)
    assert decoded.kind == MALFORMED and why in (decoded.error or "")


def test_the_forwarder_inflates_with_zlib_ng_when_its_wheel_is_installed() -> None:
    assert CHOSEN_AT_IMPORT is zlib_ng


def test_a_record_that_inflates_past_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscription, "MAX_INFLATED_BYTES", 1024)
    decoded = decode(record(envelope(events=[{"id": "1", "timestamp": 1, "message": "x" * 5000}])), GROUP, PREFIX, 0)
    assert decoded.kind == MALFORMED and "inflates to more than" in (decoded.error or "")


def test_events_without_a_usable_id_or_timestamp_are_counted_and_the_others_kept() -> None:
    events = [{"id": "1", "timestamp": 1_700_000_000_000, "message": "ok"},
              {"id": "", "timestamp": 1_700_000_000_000, "message": "no id"},
              {"id": "3", "timestamp": "1700000000000", "message": "string timestamp"},
              {"id": "4", "timestamp": True, "message": "bool timestamp"},
              {"id": "5", "message": "no timestamp"},
              "not an object",
              {"id": "6", "timestamp": 1_700_000_000_001, "message": "ok too"}]
    decoded = decode(record(envelope(events=events)), GROUP, PREFIX, 0)
    assert decoded.kind == DATA and decoded.bad_events == 5
    assert [e.event_id for e in decoded.events] == ["1", "6"]
