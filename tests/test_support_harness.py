"""The test harness itself: the receiver enforces the webhook contract, the proxy counts and injects,
the moto helpers respect PutLogEvents' limits. Other tests trust these, so they are tested too."""

from __future__ import annotations

import json
import socket

import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from support.aws_fault_proxy import AwsFaultProxy
from support.falco_receiver import FalcoReceiver, is_rfc3339_nano
from support.moto_server import (  # noqa: F401 - pytest fixtures
    PUT_MAX_BYTES,
    PUT_MAX_EVENTS,
    create_log_group,
    moto,
    moto_server,
    now_ms,
    put_calls,
    put_events,
)

HTTP = urllib3.PoolManager(retries=False, timeout=5)


def _event(audit_id: str, **extra: object) -> dict[str, object]:
    event: dict[str, object] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "stageTimestamp": "2026-11-26T14:00:00.123456Z",
    }
    event.update(extra)
    return event


def _post(receiver: FalcoReceiver, body: bytes, content_type: str = "application/json") -> int:
    return HTTP.request("POST", receiver.url, body=body, headers={"Content-Type": content_type}).status


def test_receiver_accepts_event_eventlist_and_array() -> None:
    with FalcoReceiver(keep_events=True) as receiver:
        assert _post(receiver, json.dumps(_event("a")).encode()) == 200
        event_list = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": [_event("b"), _event("c")]}
        assert _post(receiver, json.dumps(event_list).encode(), "application/json; charset=utf-8") == 200
        assert _post(receiver, json.dumps([_event("d"), event_list]).encode()) == 200
        assert receiver.accepted_ids == ["a", "b", "c", "d", "b", "c"]
        assert receiver.duplicates() == {"b": 2, "c": 2}
        assert receiver.event("a")["stage"] == "ResponseComplete"
        assert receiver.violations == []


def test_receiver_enforces_method_content_type_and_batch_size() -> None:
    with FalcoReceiver(max_batch_bytes=1000) as receiver:
        assert HTTP.request("GET", receiver.url).status == 405
        assert _post(receiver, json.dumps(_event("a")).encode(), "text/plain") == 400
        big = json.dumps({"kind": "EventList", "items": [_event("x", pad="p" * 2000)]}).encode()
        assert _post(receiver, big) == 400
        assert (
            HTTP.request("POST", receiver.url + "x", body=b"{}", headers={"Content-Type": "application/json"}).status
            == 404
        )
        assert [v.kind for v in receiver.violations] == ["method", "content_type", "batch_too_large", "wrong_path"]
        assert receiver.accepted_ids == []


def test_receiver_answers_200_but_records_what_falco_would_drop() -> None:
    with FalcoReceiver(max_event_bytes=600) as receiver:
        assert _post(receiver, b"{not json") == 200
        assert _post(receiver, json.dumps({"kind": "Other"}).encode()) == 200
        items = [
            _event("ok"),
            {k: v for k, v in _event("no-ts").items() if k != "stageTimestamp"},
            _event("bad-ts", stageTimestamp="2026-11-26 14:00:00"),
            _event("huge", pad="p" * 700),
            {k: v for k, v in _event("x").items() if k != "auditID"},
        ]
        assert _post(receiver, json.dumps({"kind": "EventList", "items": items}).encode()) == 200
        kinds = [v.kind for v in receiver.violations]
        assert kinds == [
            "bad_json",
            "not_audit_payload",
            "missing_stage_timestamp",
            "bad_stage_timestamp",
            "event_too_large",
            "missing_audit_id",
        ]
        assert receiver.accepted_ids == ["ok"]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2026-11-26T14:00:00Z", True),
        ("2026-11-26T14:00:00.123456789Z", True),
        ("2026-11-26T14:00:00.1+02:00", True),
        ("2026-11-26T14:00:00.1234567890Z", True),  # Go takes any number of fraction digits
        ("2026-11-26T14:00:00,5Z", True),
        ("2026-11-26T14:00:00.Z", False),
        ("2026-13-26T14:00:00Z", False),
        ("2026-11-26T14:00:00", False),
        ("2017-02-14 10:20:00", False),
        (1487067600, False),
    ],
)
def test_rfc3339_nano_matches_go_layout(value: object, ok: bool) -> None:
    assert is_rfc3339_nano(value) is ok


def test_receiver_fails_on_command_then_recovers() -> None:
    with FalcoReceiver() as receiver:
        body = json.dumps(_event("a")).encode()
        receiver.fail(503, count=2, retry_after=1)
        first = HTTP.request("POST", receiver.url, body=body, headers={"Content-Type": "application/json"})
        assert (first.status, first.headers.get("Retry-After")) == (503, "1")
        assert _post(receiver, body) == 503
        assert _post(receiver, body) == 200
        receiver.fail(500)
        assert [_post(receiver, body) for _ in range(3)] == [500, 500, 500]
        receiver.clear()
        assert _post(receiver, body) == 200
        assert receiver.accepted_ids == ["a", "a"]
        assert [r.injected for r in receiver.requests] == [True, True, False, True, True, True, False]
        assert receiver.violations == []


def test_receiver_goes_down_and_comes_back_on_the_same_port() -> None:
    with FalcoReceiver() as receiver:
        port = receiver.port
        receiver.down()
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        receiver.up()
        assert receiver.port == port
        assert _post(receiver, json.dumps(_event("a")).encode()) == 200
        assert receiver.wait_for_ids({"a"}, timeout=5)


def test_put_calls_respect_putlogevents_limits() -> None:
    events = [(1000 - (i % 7), "m" * 300) for i in range(25_000)]
    calls = put_calls(events)
    assert sum(len(c) for c in calls) == 25_000
    for call in calls:
        assert len(call) <= PUT_MAX_EVENTS
        assert sum(len(e["message"]) + 26 for e in call) <= PUT_MAX_BYTES
        stamps = [e["timestamp"] for e in call]
        assert stamps == sorted(stamps)


def test_proxy_counts_operations_and_injects_throttling(moto) -> None:  # noqa: F811 - fixture
    logs = moto.client("logs")
    create_log_group(logs, "/aws/eks/h/cluster", ["kube-apiserver-audit-1"])
    put_events(logs, "/aws/eks/h/cluster", "kube-apiserver-audit-1", [(now_ms(), "hello")])
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        no_retry = Config(retries={"mode": "standard", "total_max_attempts": 1})
        via = moto.client("logs", endpoint_url=proxy.endpoint_url, config=no_retry)
        assert [e["message"] for e in via.filter_log_events(logGroupName="/aws/eks/h/cluster")["events"]] == ["hello"]
        proxy.throttle(count=1, operations={"FilterLogEvents"})
        with pytest.raises(ClientError) as caught:
            via.filter_log_events(logGroupName="/aws/eks/h/cluster")
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
        via.describe_log_streams(logGroupName="/aws/eks/h/cluster")
        proxy.unavailable(count=None, operations={"DescribeLogStreams"})
        with pytest.raises(ClientError):
            via.describe_log_streams(logGroupName="/aws/eks/h/cluster")
        proxy.clear()
        moto.client("sts", endpoint_url=proxy.endpoint_url).get_caller_identity()
        assert proxy.counts() == {"FilterLogEvents": 2, "DescribeLogStreams": 2, "GetCallerIdentity": 1}
        assert proxy.count("FilterLogEvents", injected=True) == 1
        assert {c.access_key_id for c in proxy.calls()} == {"testing"}


def test_receiver_in_falco_order_answers_first_and_still_records_and_checks() -> None:
    with FalcoReceiver(answer_before_parse=True, record_ack_times=True) as receiver:
        assert _post(receiver, json.dumps([_event("a"), _event("b")]).encode()) == 200
        assert _post(receiver, b"[1") == 200
        assert receiver.wait_for(lambda r: len(r.requests) == 2, timeout=5)
        assert receiver.accepted_ids == ["a", "b"]
        assert set(receiver.ack_times()) == {"a", "b"}
        assert [v.kind for v in receiver.violations] == ["bad_json"]


def test_receiver_with_deferred_checks_keeps_bodies_and_checks_them_later() -> None:
    with FalcoReceiver(defer_checks=True) as receiver:
        assert _post(receiver, json.dumps([_event("a"), _event("b")]).encode()) == 200
        assert _post(receiver, b"{oops") == 200
        # The 200 goes out before the body is filed: wait for both bodies, not for the answers.
        assert receiver.wait_for(lambda r: r.deferred_requests == 2, timeout=5)
        assert receiver.deferred_marks == 2
        assert receiver.accepted_ids == [] and receiver.violations == []
        receiver.check_deferred()
        assert receiver.accepted_ids == ["a", "b"]
        assert [v.kind for v in receiver.violations] == ["bad_json"]
        receiver.defer_checks(False)
        assert _post(receiver, json.dumps(_event("c")).encode()) == 200
        assert receiver.accepted_ids == ["a", "b", "c"]
