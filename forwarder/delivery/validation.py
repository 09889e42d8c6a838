"""Checks one CloudWatch log line against what Falco's k8saudit webhook accepts.

Falco answers 200 before it parses a request and only logs what it cannot use, so every
line is checked here: a JSON object with ``kind: Event``, an ``auditID`` and a
``stageTimestamp`` Go's ``time.Parse(time.RFC3339Nano, ...)`` accepts, no larger than
Falco's ``maxEventSize``, and nested no deeper than Falco's JSON parser goes once the event
sits inside the forwarder's EventList. A line that is too deep would make Falco drop every
event of its request, so it is refused before it can be batched.

The check parses each line exactly once (the usual case) and sends the line's own text,
compacted when it is pretty-printed: it never re-serialises a parsed value, so numbers,
escapes and key order reach Falco as the API server wrote them. No input makes it raise: a
line it cannot handle is refused with a reason, like any other bad line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .jsontext import FASTJSON_MAX_DEPTH, compact, deeper_than

_fast_loads: Callable[[str], Any] | None
try:
    # Parses an audit event about 3x faster than the standard library: this is the forwarder's
    # hottest line. Optional, so the module still works where the wheel is missing.
    import orjson

    _fast_loads = orjson.loads
except ImportError:
    _fast_loads = None

log = logging.getLogger("forwarder.validation")

NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
NOT_EVENT_KIND: Final = "not_event_kind"
MISSING_AUDIT_ID: Final = "missing_audit_id"
BAD_STAGE_TIMESTAMP: Final = "bad_stage_timestamp"
TRUNCATED: Final = "truncated"
TOO_LARGE: Final = "too_large"
TOO_DEEP: Final = "too_deep"
VALIDATION_ERROR: Final = "validation_error"
"""The check itself failed on this line (a bug here): the line is skipped, the flow goes on."""
REASONS: Final = (
    NOT_JSON, NOT_OBJECT, NOT_EVENT_KIND, MISSING_AUDIT_ID, BAD_STAGE_TIMESTAMP, TRUNCATED, TOO_LARGE,
    TOO_DEEP, VALIDATION_ERROR,
)

# CloudWatch Logs cuts lines over its event size limit and ends them with this marker.
TRUNCATED_MARKER: Final = "[Truncated...]"

EVENT_LIST_LEVELS: Final = 2
"""Levels above each event in the request the forwarder sends: the EventList object and its
``items`` array (batching.Batch.payload), so an event is level 3 of Falco's parse."""
MAX_EVENT_LEVELS: Final = FASTJSON_MAX_DEPTH - EVENT_LIST_LEVELS
"""The deepest an event may go, counted from the event itself as level 1 (jsontext.value_levels)."""

_LOGGED_ID_CHARS: Final = 128


# Not frozen: a frozen dataclass's __init__ costs 4x, and one is made per event. Never changed once made.
@dataclass(slots=True, unsafe_hash=True)
class Validated:
    ok: bool
    reason: str | None
    """One of REASONS when not ok (a metric label value)."""
    body: bytes | None
    """The event's JSON as sent to Falco (UTF-8), when ok."""
    audit_id: str | None
    """The event's auditID when it could be read, also for rejected lines (for logs: at most
    128 characters, always encodable as UTF-8)."""


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN/Infinity; they are not JSON and Falco's parser refuses Infinity.
    raise ValueError(f"non-standard JSON constant {name}")


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # fastjson's Object.Get returns the first of duplicate keys; Python's json keeps the last.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        obj.setdefault(key, value)
    return obj


# Numbers are read as floats: only the event's strings are used, and int() refuses more than
# 4300 digits where JSON and fastjson have no limit.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_int=float)
_FIRST_WINS_DECODER: Final = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=float, object_pairs_hook=_first_wins
)
FAST_LOADS: Callable[[str], Any] | None = _fast_loads


def parse_json(text: str) -> Any:
    """Parse one JSON text (RFC 8259: no NaN/Infinity, no raw control characters in strings);
    ValueError if invalid. Numbers may come back as floats."""
    if FAST_LOADS is not None:
        try:
            return FAST_LOADS(text)
        except ValueError:
            # orjson refuses a few texts JSON allows (escaped lone surrogates, numbers beyond a
            # double): let the standard library decide those.
            pass
    return _DECODER.decode(text)


# Layout of Go's time.RFC3339Nano as time.Parse reads it: upper-case T and Z, any number of
# fraction digits, numeric offsets with a colon; fields within their ranges (second 60 is refused).
_STAGE_TIMESTAMP: Final = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)"
)
_DAYS_IN_MONTH: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# For the log line of a line refused before it is parsed: the start of the first auditID in it.
_AUDIT_ID_IN_TEXT: Final = re.compile(r'"auditID"[ \t\n\r]*:[ \t\n\r]*"([^"\\]{1,128})')


def is_rfc3339(value: object) -> bool:
    """True when ``value`` is a string Go's time.Parse(time.RFC3339Nano, ...) accepts."""
    if not isinstance(value, str):
        return False
    m = _STAGE_TIMESTAMP.fullmatch(value)
    if m is None:
        return False
    day = m[3]
    if day < "29":  # every month has 28 days: the common case needs no arithmetic
        return True
    month = int(m[2])
    if int(day) > _DAYS_IN_MONTH[month]:
        return False
    if month == 2 and day == "29":
        year = int(m[1])
        return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return True


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a \ud800-style escape decoded upstream) has no UTF-8 form. In a
        # line that parsed it can only sit inside a string, where \\udXXX is its JSON escape.
        return text.encode("utf-8", "backslashreplace")


def _loggable(audit_id: str) -> str:
    if len(audit_id) <= _LOGGED_ID_CHARS and audit_id.isascii():
        return audit_id
    # Lone surrogates (no UTF-8 form) become \udXXX text; then cut again to the bound.
    return audit_id[:_LOGGED_ID_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")[:_LOGGED_ID_CHARS]


def _sniffed_audit_id(text: str) -> str | None:
    m = _AUDIT_ID_IN_TEXT.search(text)
    return None if m is None else _loggable(m[1])


def _invalid(reason: str, audit_id: str | None = None) -> Validated:
    return Validated(False, reason, None, audit_id)


def validate(message: str, max_event_bytes: int) -> Validated:
    """Check one log line; ``body`` of an ok result is what goes into the EventList. Never raises."""
    try:
        return _validate(message, max_event_bytes)
    except Exception:  # noqa: BLE001 - one line must never stop the flow (a crash loop on restart)
        log.error("validation failed on a log line; skipping it", exc_info=True)
        return _invalid(VALIDATION_ERROR)


def _validate(message: str, max_event_bytes: int) -> Validated:
    text = message.strip()
    if text.endswith(TRUNCATED_MARKER):
        return _invalid(TRUNCATED, _sniffed_audit_id(text))
    # Before parsing: it costs a few microseconds and keeps deep input away from the parsers.
    if deeper_than(text, MAX_EVENT_LEVELS):
        return _invalid(TOO_DEEP, _sniffed_audit_id(text))
    try:
        event = parse_json(text)
        if not isinstance(event, dict):
            return _invalid(NOT_OBJECT)
        if text.count('"stageTimestamp"') > 1:
            # Maybe a repeated key: Falco reads the first stageTimestamp (and auditID).
            event = _FIRST_WINS_DECODER.decode(text)
    except (ValueError, RecursionError):
        return _invalid(NOT_JSON)
    audit_id = event.get("auditID")
    audit_id = _loggable(audit_id) if isinstance(audit_id, str) and audit_id else None
    if event.get("kind") != "Event":
        return _invalid(NOT_EVENT_KIND, audit_id)
    if audit_id is None:
        return _invalid(MISSING_AUDIT_ID)
    if not is_rfc3339(event.get("stageTimestamp")):
        return _invalid(BAD_STAGE_TIMESTAMP, audit_id)
    # A raw newline cannot occur inside a JSON string, so one here means pretty-printed JSON:
    # send it compact, as Falco measures an event by its compact form.
    if "\n" in text:
        text = compact(text)
    body = _utf8(text)
    if len(body) > max_event_bytes:
        # Falco measures the compact form: whitespace between tokens does not count.
        body = _utf8(compact(text))
        if len(body) > max_event_bytes:
            return _invalid(TOO_LARGE, audit_id)
    return Validated(True, None, body, audit_id)
