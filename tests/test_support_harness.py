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


# --- Falco's JSON parser (valyala/fastjson): what drops a whole request, what drops one event ---


def _nested_event(audit_id: str, levels: int) -> str:
    """An event whose deepest value sits ``levels`` levels down from the top of an EventList."""
    containers = levels - 4  # EventList 1, items 2, event 3, requestObject 4 ... leaf at `levels`
    request = '{"a":' * containers + "1" + "}" * containers
    return json.dumps(_event(audit_id))[:-1] + ', "requestObject": ' + request + "}"


def _event_list(*events: str) -> bytes:
    text = '{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + ",".join(events) + "]}"
    return text.encode("utf-8", "surrogateescape")  # "\udcff" becomes the invalid byte 0xff


def test_receiver_drops_every_event_of_a_request_with_one_event_past_300_levels() -> None:
    with FalcoReceiver() as receiver:
        good = [json.dumps(_event(name)) for name in ("a", "b")]
        assert _post(receiver, _event_list(good[0], _nested_event("at-limit", 300), good[1])) == 200
        assert receiver.accepted_ids == ["a", "at-limit", "b"] and receiver.violations == []
        assert _post(receiver, _event_list(good[0], _nested_event("too-deep", 301), good[1])) == 200
        assert receiver.accepted_ids == ["a", "at-limit", "b"]
        assert [v.kind for v in receiver.violations] == ["too_deep"]
        assert "301 levels" in receiver.violations[0].detail
        assert [r.status for r in receiver.requests] == [200, 200]


def test_receiver_answers_200_to_nesting_deeper_than_python_can_parse() -> None:
    with FalcoReceiver(answer_before_parse=True) as receiver:
        assert _post(receiver, _event_list(json.dumps(_event("a")), _nested_event("deep", 50_000))) == 200
        assert receiver.wait_for(lambda r: len(r.requests) == 1, timeout=5)
        assert receiver.accepted_ids == []
        assert [v.kind for v in receiver.violations] == ["too_deep"]


def test_receiver_parses_what_fastjson_parses() -> None:
    with FalcoReceiver(keep_events=True) as receiver:
        base = json.dumps(_event("x"))[:-1]
        accepted = {
            "nan": base.replace('"x"', '"nan"') + ', "n": NaN}',  # fastjson reads NaN as a number
            "huge": base.replace('"x"', '"huge"') + ', "n": 1e400, "i": ' + "9" * 5000 + "}",
            "ctrl": base.replace('"x"', '"ctrl"') + ', "raw": "tab\there"}',  # raw control characters pass
            "bytes": base.replace('"x"', '"bytes"') + ', "s": "\udcff"}',  # fastjson never checks UTF-8
        }
        assert _post(receiver, _event_list(*accepted.values())) == 200
        assert receiver.accepted_ids == list(accepted) and receiver.violations == []
        for infinity in ("Infinity", "-Infinity"):
            assert _post(receiver, _event_list(accepted["nan"], base + ', "n": ' + infinity + "}")) == 200
        assert [v.kind for v in receiver.violations] == ["bad_json", "bad_json"]
        assert receiver.accepted_ids == list(accepted)


def test_receiver_drops_a_whole_array_when_one_element_is_not_an_audit_payload() -> None:
    with FalcoReceiver() as receiver:
        assert _post(receiver, json.dumps([_event("a"), {"kind": "Other"}, _event("b")]).encode()) == 200
        assert receiver.accepted_ids == []
        assert [v.kind for v in receiver.violations] == ["not_audit_payload"]


def test_receiver_reads_the_first_of_repeated_keys_as_fastjson_does() -> None:
    with FalcoReceiver() as receiver:
        base = json.dumps(_event("a"))[:-1]
        first_good = base + ', "stageTimestamp": "later, not a time"}'
        first_bad = base.replace("14:00:00.123456Z", "not a time") + ', "stageTimestamp": "2026-11-26T14:00:00Z"}'
        assert _post(receiver, _event_list(first_good, first_bad)) == 200
        assert receiver.accepted_ids == ["a"]
        assert [v.kind for v in receiver.violations] == ["bad_stage_timestamp"]


def test_receiver_measures_an_event_as_written_without_whitespace() -> None:
    # fastjson's MarshalTo keeps strings and escapes as written and drops the space between tokens.
    event = json.dumps(_event("e", note="é" * 50), indent=4)  # each é is the 6-byte escape \u00e9
    size = len(json.dumps(_event("e", note="é" * 50), separators=(",", ":")).encode())
    assert "\\u00e9" in event and len(event) > size
    for limit, accepted in ((size, ["e"]), (size - 1, [])):
        with FalcoReceiver(max_event_bytes=limit) as receiver:
            assert _post(receiver, _event_list(event)) == 200
            assert receiver.accepted_ids == accepted
            assert [v.kind for v in receiver.violations] == ([] if accepted else ["event_too_large"])


@pytest.mark.parametrize(
    "body",
    [
        '{"kind":"EventList","items":[EVENT,]}',
        '{"kind":"EventList","items":[EVENT],}',
        '{"kind":"EventList","items" [EVENT]}',
        '{"kind":"EventList",1:2,"items":[EVENT]}',
        '{"kind":"EventList","items":[EVENT]} x',
        '{"kind":"EventList","items":[EVENT EVENT]}',
        '{"kind":"EventList","items":[EVENT]',
        "[EVENT,,EVENT]",
    ],
)
def test_receiver_reads_the_envelope_as_strictly_as_json(body: str) -> None:
    with FalcoReceiver() as receiver:
        assert _post(receiver, body.replace("EVENT", json.dumps(_event("a"))).encode()) == 200
        assert receiver.accepted_ids == []
        assert [v.kind for v in receiver.violations] == ["bad_json"]
