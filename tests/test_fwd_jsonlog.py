"""forwarder.jsonlog: one JSON object per line with ts, level, logger, msg and the extra fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from forwarder.jsonlog import JsonFormatter, setup_logging


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, forwarder_level = root.level, logging.getLogger("forwarder").level
    stream = io.StringIO()
    handler = setup_logging("INFO", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("forwarder").setLevel(forwarder_level)


def entries(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_becomes_one_json_line_with_its_extra_fields(json_log: io.StringIO) -> None:
    logging.getLogger("forwarder.delivery").warning(
        "retrying %s", "now", extra={"stream": "kube-apiserver-audit-0a1b", "event_id": "3779", "status": 503}
    )
    [entry] = entries(json_log)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "forwarder.delivery"
    assert entry["msg"] == "retrying now"
    assert entry["stream"] == "kube-apiserver-audit-0a1b"
    assert entry["event_id"] == "3779"
    assert entry["status"] == 503
    assert isinstance(entry["ts"], str) and entry["ts"].endswith("Z") and "T" in entry["ts"]
    # Nothing of LogRecord's own bookkeeping leaks into the line.
    assert not {"args", "levelno", "pathname", "lineno", "msecs", "thread"} & entry.keys()


def test_exceptions_and_odd_values_stay_on_one_line(json_log: io.StringIO) -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("forwarder.x").exception("failed", extra={"obj": object(), "who": "jörg"})
    lines = json_log.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert "RuntimeError: boom" in str(entry["exc"])
    assert str(entry["obj"]).startswith("<object object")
    assert entry["who"] == "jörg"


def test_levels_below_the_chosen_one_are_dropped_and_libraries_only_warn(json_log: io.StringIO) -> None:
    logging.getLogger("forwarder.x").debug("hidden")
    logging.getLogger("botocore.endpoint").info("hidden too")
    logging.getLogger("botocore.endpoint").warning("shown")
    assert [e["msg"] for e in entries(json_log)] == ["shown"]


def test_setup_twice_keeps_one_handler(json_log: io.StringIO) -> None:
    second = io.StringIO()
    handler = setup_logging("DEBUG", second)
    try:
        logging.getLogger("forwarder.x").debug("once")
        assert json_log.getvalue() == ""
        assert [e["msg"] for e in entries(second)] == ["once"]
        assert sum(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers) == 1
    finally:
        logging.getLogger().removeHandler(handler)


def test_a_lone_surrogate_in_a_field_is_escaped_not_lost(json_log: io.StringIO) -> None:
    # An event's auditID can hold a \ud800 escape that has no UTF-8 form; the log line must survive it.
    logging.getLogger("forwarder.x").warning("skipping", extra={"audit_id": "a\ud800b"})
    line = json_log.getvalue().strip()
    line.encode("utf-8")
    assert json.loads(line)["audit_id"] == "a\ud800b"
