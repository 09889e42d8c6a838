"""Checks one CloudWatch log line against what Falco's k8saudit webhook accepts.

Falco answers 200 before it parses a request and only logs what it cannot use, so every
line is checked here: a JSON object with ``kind: Event``, an ``auditID`` and a
``stageTimestamp`` Go's ``time.Parse(time.RFC3339Nano, ...)`` accepts, no larger than
Falco's ``maxEventSize``. The check parses each line exactly once and, in the usual case
of a compact one-line event, sends the line's own bytes rather than re-serialising it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

_fast_loads: Callable[[str], Any] | None
try:
    # Parses an audit event about 3x faster than the standard library: this is the forwarder's
    # hottest line. Optional, so the module still works where the wheel is missing.
    import orjson

    _fast_loads = orjson.loads
except ImportError:
    _fast_loads = None

NOT_JSON: Final = "not_json"
NOT_OBJECT: Final = "not_object"
NOT_EVENT_KIND: Final = "not_event_kind"
MISSING_AUDIT_ID: Final = "missing_audit_id"
BAD_STAGE_TIMESTAMP: Final = "bad_stage_timestamp"
TRUNCATED: Final = "truncated"
TOO_LARGE: Final = "too_large"
REASONS: Final = (NOT_JSON, NOT_OBJECT, NOT_EVENT_KIND, MISSING_AUDIT_ID, BAD_STAGE_TIMESTAMP, TRUNCATED, TOO_LARGE)

# CloudWatch Logs cuts lines over its event size limit and ends them with this marker.
TRUNCATED_MARKER: Final = "[Truncated...]"


@dataclass(frozen=True, slots=True)
class Validated:
    ok: bool
    reason: str | None
    """One of REASONS when not ok (a metric label value)."""
    body: bytes | None
    """The event's JSON as sent to Falco (UTF-8), when ok."""
    audit_id: str | None
    """The event's auditID when it could be read, also for rejected lines (for logs)."""


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN/Infinity; Go's parsers (and so Falco) do not.
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
FAST_LOADS: Callable[[str], Any] | None = _fast_loads


def parse_json(text: str) -> Any:
    """Parse one JSON text as the standard library would, minus NaN/Infinity; ValueError if invalid."""
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


def _compact(event: dict[str, object]) -> bytes:
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (a \ud800-style escape decoded upstream) has no UTF-8 form: escape it.
        return json.dumps(event, separators=(",", ":")).encode("ascii")


def _invalid(reason: str, audit_id: str | None = None) -> Validated:
    return Validated(False, reason, None, audit_id)


def validate(message: str, max_event_bytes: int) -> Validated:
    """Check one log line; ``body`` of an ok result is what goes into the EventList."""
    text = message.strip()
    if text.endswith(TRUNCATED_MARKER):
        return _invalid(TRUNCATED)
    try:
        event = parse_json(text)
    except (ValueError, RecursionError):
        return _invalid(NOT_JSON)
    if not isinstance(event, dict):
        return _invalid(NOT_OBJECT)
    audit_id = event.get("auditID")
    if not isinstance(audit_id, str) or not audit_id:
        audit_id = None
    if event.get("kind") != "Event":
        return _invalid(NOT_EVENT_KIND, audit_id)
    if audit_id is None:
        return _invalid(MISSING_AUDIT_ID)
    if not is_rfc3339(event.get("stageTimestamp")):
        return _invalid(BAD_STAGE_TIMESTAMP, audit_id)
    # A raw newline cannot occur inside a JSON string, so one here means pretty-printed JSON:
    # send it compact, as Falco measures an event by its compact form.
    if "\n" in text:
        # Re-read with the standard library: orjson turns integers beyond 64 bits into floats.
        body = _compact(_DECODER.decode(text))
    else:
        try:
            body = text.encode("utf-8")
        except UnicodeEncodeError:
            body = _compact(_DECODER.decode(text))
    if len(body) > max_event_bytes:
        return _invalid(TOO_LARGE, audit_id)
    return Validated(True, None, body, audit_id)
