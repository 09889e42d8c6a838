"""forwarder.delivery.validation against generated EKS-shaped events, the shared corpus when present, and bad lines."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from support.audit_events import GENERATED, generated_lines, shared_corpus_file
from support.falco_receiver import DroppedPayloadError, is_rfc3339_nano, json_levels, read_payload

import forwarder.delivery.validation
from forwarder.delivery.batching import Batch
from forwarder.delivery.jsontext import FASTJSON_MAX_DEPTH, value_levels
from forwarder.delivery.validation import (
    BAD_STAGE_TIMESTAMP,
    EVENT_LIST_LEVELS,
    MAX_EVENT_LEVELS,
    MISSING_AUDIT_ID,
    NOT_EVENT_KIND,
    NOT_JSON,
    NOT_OBJECT,
    TOO_DEEP,
    TOO_LARGE,
    TRUNCATED,
    VALIDATION_ERROR,
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
    fast_loads = orjson.loads if request.param == "orjson" else None
    monkeypatch.setattr(forwarder.delivery.validation, "FAST_LOADS", fast_loads)
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
        ("[" * 100_000, TOO_DEEP),  # depth is checked first, before any parser sees it
        ("\ufeff" + compact(event()), NOT_JSON),  # a BOM is not JSON, and fastjson refuses it too
        (compact(event())[:-1] + ',"x":Infinity}', NOT_JSON),
        (compact(event())[:-1] + ',"x":"raw\x00nul"}', NOT_JSON),  # control characters must be escaped
        (compact(event())[:-1] + ',"x":"\\q"}', NOT_JSON),  # not a JSON escape
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


# --- events Falco's parser cannot take, and odd input ------------------------------------------
#
# Falco parses each request whole with valyala/fastjson (MaxDepth 300, every value a level, the
# top-level value level 1). In the forwarder's EventList an event is level 3, so an event may
# itself be MAX_EVENT_LEVELS = 298 levels deep (the event object being its level 1).


def nested(containers: int, opening: str, closing: str, leaf: str) -> str:
    return opening * containers + leaf + closing * containers


def deep_event(containers: int, opening: str = '{"a":', closing: str = "}", leaf: str = "1", **extra: object) -> str:
    """A compact event whose requestObject is ``containers`` nested containers around ``leaf``."""
    line = compact(event(**extra))
    return line[:-1] + ',"requestObject":' + nested(containers, opening, closing, leaf) + "}"


def test_the_depth_falco_was_seen_to_refuse_is_refused_and_one_less_is_sent() -> None:
    # shared/corpus/real-falco/README.md: on a real Falco 0.44.1, an EventList whose event has a
    # requestObject "nested 297 levels deep" was refused whole, 296 accepted. That holds when N
    # counts the nested objects down to one holding a scalar: requestObject is level 4 of the
    # request, its innermost object level N + 3, the scalar in it level N + 4 > 300 for N = 297.
    assert validate(deep_event(296), MAX).ok
    assert validate(deep_event(297), MAX).reason == TOO_DEEP


@pytest.mark.parametrize(
    ("opening", "closing", "leaf", "levels_per_container"),
    [
        ('{"a":', "}", "1", 1),
        ("[", "]", "1", 1),
        ("[", "]", "[]", 1),  # an empty array is itself the deepest value
        ('{"a":', "}", "{}", 1),
        ('{"a":[', "]}", '"s"', 2),
        ('[{"k":"]]]","v":', "}]", "null", 2),
    ],
)
@pytest.mark.parametrize("event_levels", [MAX_EVENT_LEVELS - 1, MAX_EVENT_LEVELS, MAX_EVENT_LEVELS + 1])
def test_events_are_refused_exactly_when_falco_would_refuse_their_request(
    opening: str, closing: str, leaf: str, levels_per_container: int, event_levels: int
) -> None:
    # The event is level 1, requestObject level 2, the leaf one level below the innermost container.
    containers = (event_levels - 2) // levels_per_container
    line = deep_event(containers, opening, closing, leaf)
    levels = value_levels(line)
    assert levels in (event_levels, event_levels - 1)
    result = validate(line, MAX)
    # What the receiver (which enforces fastjson's limit on the whole request) does with it.
    payload = Batch.of(["k"], [line.encode()]).payload()
    if levels <= MAX_EVENT_LEVELS:
        assert result.ok, result.reason
        assert json_levels(json.loads(payload)) == levels + EVENT_LIST_LEVELS <= FASTJSON_MAX_DEPTH
        assert [item["auditID"] for item, _ in read_payload(payload)] == [event()["auditID"]]
    else:
        assert (result.ok, result.reason, result.audit_id) == (False, TOO_DEEP, event()["auditID"])
        with pytest.raises(DroppedPayloadError, match="too_deep"):
            read_payload(payload)


def test_the_eventlist_puts_each_event_two_levels_down() -> None:
    payload = Batch.of(["k"], [b"0"]).payload()
    assert json_levels(json.loads(payload)) == 1 + EVENT_LIST_LEVELS
    assert MAX_EVENT_LEVELS + EVENT_LIST_LEVELS == FASTJSON_MAX_DEPTH == 300


@pytest.mark.parametrize(
    "value",
    [
        "[" * 10_000,
        "{" * 5_000 + "}" * 5_000,
        '\\"' + "[" * 1_000 + '\\"' + "{" * 1_000,  # escaped quotes do not end the string
        "\\\\" * 500 + "[" * 1_000,
    ],
)
def test_brackets_inside_strings_never_make_an_event_deep(value: str) -> None:
    line = compact(event())[:-1] + ',"note":"' + value + '","k[[[":"]]]"}'
    result = validate(line, MAX)
    assert result.ok, result.reason
    assert result.body == line.encode()


def test_input_deeper_than_any_parser_goes_is_refused_without_recursion() -> None:
    for line in (deep_event(100_000), deep_event(60_000, "[", "]"), "[" * 1_000_000):
        assert validate(line, 10_000_000).reason == TOO_DEEP


def test_a_pretty_printed_number_beyond_a_double_is_sent_as_written_not_as_infinity() -> None:
    # Re-serialising 1e400 would write Infinity, which fastjson refuses: the whole request lost.
    pretty = json.dumps(event(), indent=2)[:-2] + ',\n  "huge": 1e400,\n  "neg": -1E+999\n}'
    result = validate(pretty, MAX)
    assert result.ok and result.body is not None
    assert b'"huge":1e400,"neg":-1E+999}' in result.body
    assert b"Infinity" not in result.body
    read_payload(Batch.of(["k"], [result.body]).payload())


def test_an_integer_of_any_length_is_json_and_is_sent_unchanged() -> None:
    line = compact(event())[:-1] + ',"n":' + "9" * 5_000 + "}"  # past Python's int() digit limit
    assert validate(line, MAX).body == line.encode()


def test_a_lone_surrogate_character_is_sent_as_its_json_escape() -> None:
    # An escaped lone surrogate in CloudWatch's JSON answer reaches us as a real U+D800.
    line = compact(event())[:-1] + ',"odd":"a\ud800b"}'
    result = validate(line, MAX)
    assert result.ok and result.body is not None
    assert b'"odd":"a\\ud800b"' in result.body
    assert json.loads(result.body)["odd"] == "a\ud800b"


@pytest.mark.parametrize(
    "extra",
    [
        '"nul":"\\u0000"',
        '"bom":"\ufeff"',
        '"sep":"\u2028\u2029"',
        '"emoji":"\U0001f600"',
        '"pair":"\\ud83d\\ude00"',
        '"long":"' + "x" * 200_000 + '"',
    ],
)
def test_odd_but_valid_text_is_sent_unchanged(extra: str) -> None:
    line = compact(event())[:-1] + "," + extra + "}"
    result = validate(line, MAX)
    assert result.ok, result.reason
    assert result.body == line.encode("utf-8")


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [("2024-05-01T12:00:00Z", "not a time", None), ("not a time", "2024-05-01T12:00:00Z", BAD_STAGE_TIMESTAMP)],
)
def test_a_repeated_key_is_read_as_falco_reads_it_the_first_one(first: str, last: str, reason: str | None) -> None:
    line = compact(event(stageTimestamp=first))[:-1] + f',"stageTimestamp":"{last}","auditID":"second"}}'
    result = validate(line, MAX)
    assert (result.reason, result.audit_id) == (reason, event()["auditID"])


def test_whitespace_does_not_count_towards_the_size_limit() -> None:
    spaced = json.dumps(event(note="x" * 100), separators=(", ", ": "))
    compact_size = len(compact(event(note="x" * 100)))
    result = validate(spaced, compact_size)
    assert result.ok and result.body == compact(event(note="x" * 100)).encode()
    assert validate(spaced, compact_size - 1).reason == TOO_LARGE


@pytest.mark.parametrize("audit_id", ["a" * 100_000, "x\ud800y", "ü" * 200, "\udfff" * 100])
def test_the_audit_id_given_for_logs_is_short_and_encodable(audit_id: str) -> None:
    parsed = validate(compact(event(auditID=audit_id)), MAX).audit_id
    assert parsed is not None and parsed[:4] == audit_id[:4].encode("utf-8", "backslashreplace").decode()[:4]
    # A line refused before parsing gets the start of the first auditID in its text, when plain.
    sniffed = validate(json.dumps(event(auditID=audit_id), ensure_ascii=False)[:-1] + ',"d":' + "[" * 400 + "}", MAX)
    assert sniffed.reason == TOO_DEEP
    for logged in (parsed, sniffed.audit_id):
        assert logged is not None and len(logged) <= 128
        logged.encode("utf-8")


def test_a_failure_inside_validation_becomes_a_skip_logged_once(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def broken(value: object) -> bool:
        raise TypeError("a bug")

    monkeypatch.setattr(forwarder.delivery.validation, "is_rfc3339", broken)
    with caplog.at_level(logging.ERROR, logger="forwarder.validation"):
        result = validate(compact(event()), MAX)
    assert (result.ok, result.reason) == (False, VALIDATION_ERROR)
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [TypeError]


@pytest.mark.parametrize("error", [RecursionError, MemoryError])
def test_a_parser_that_gives_up_never_stops_validation(monkeypatch: pytest.MonkeyPatch, error: type) -> None:
    def exhausted(text: str) -> object:
        raise error()

    monkeypatch.setattr(forwarder.delivery.validation, "FAST_LOADS", exhausted)
    monkeypatch.setattr(forwarder.delivery.validation, "_DECODER", SimpleNamespace(decode=exhausted))
    result = validate(compact(event()), MAX)
    assert not result.ok and result.reason in (NOT_JSON, VALIDATION_ERROR)


_ODD_PIECES = [
    *("[", "]", "{", "}", '"', "\\", '\\"', "\\\\", ",", ":", " ", "\n"),
    *("\x00", "\ud800", "\ufeff", "\u2028", "é", "\\u0000", "\\ud800"),
    *("1e400", "9" * 60, "NaN", "-Infinity"),
    *("[" * 300, '{"a":' * 150, "]" * 300),
    *('"stageTimestamp":"x",', '"auditID":"y",', "[Truncated...]"),
]


def _mutated(rng: random.Random, text: str) -> str:
    for _ in range(rng.randrange(1, 4)):
        at = rng.randrange(len(text) + 1)
        action = rng.randrange(4)
        if action == 0:
            text = text[:at] + rng.choice(_ODD_PIECES) + text[at:]
        elif action == 1:
            text = text[:at] + text[at + rng.randrange(1, 6) :]
        elif action == 2:
            containers = rng.choice([MAX_EVENT_LEVELS - 3, MAX_EVENT_LEVELS - 2, MAX_EVENT_LEVELS - 1, 400])
            opening, closing = rng.choice([("[", "]"), ('{"k":', "}"), ('[{"k":', "}]")])
            deep = nested(containers, opening, closing, rng.choice(["1", "{}", "[]", '"s"']))
            text = text.replace('"stage":', '"deep":' + deep + ',"stage":', 1)
        else:
            text = text.replace(",", ",\n  ")  # pretty-printed, more or less
    return text


def test_no_line_makes_validation_raise_and_every_accepted_event_is_taken_by_falco_with_its_neighbours() -> None:
    rng = random.Random(20261201)
    bases = [line.text for line in generated_lines()]
    neighbour = compact(event(auditID="neighbour")).encode()
    reasons: Counter[str | None] = Counter()
    for _ in range(2_000):
        result = validate(_mutated(rng, rng.choice(bases)), MAX)
        reasons[result.reason] += 1
        if result.ok:
            assert result.body is not None and len(result.body) <= MAX
            items = read_payload(Batch.of(["a", "b"], [result.body, neighbour]).payload())
            assert len(items) == 2 and all(is_rfc3339_nano(item["stageTimestamp"]) for item, _ in items)
    # The mutations reach every branch that matters here.
    assert reasons[None] > 200 and reasons[TOO_DEEP] > 200 and reasons[NOT_JSON] > 200, reasons
