"""The records a CloudWatch Logs subscription filter writes to Kinesis, decoded into log events.

Each record's data is gzip of one JSON document (CloudWatch Logs user guide, "Subscription filters"):
``{"messageType": "DATA_MESSAGE" | "CONTROL_MESSAGE", "owner", "logGroup", "logStream",
"subscriptionFilters", "logEvents": [{"id", "timestamp", "message"}, ...]}``. On the wire Kinesis carries it
base64-encoded; boto3 decodes that, so the data is normally the gzip bytes themselves (base64 text is
accepted too). A CONTROL_MESSAGE is CloudWatch checking that it can write to the stream: no events.

The ``id`` is CloudWatch's event id, the same one FilterLogEvents returns, so both sources deduplicate on
the same identity. Decoding never raises for bad input: a record it cannot read is reported as malformed.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final

from ..model import LogEvent

_loads: Callable[[bytes], Any]
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - the wheel is pinned; json is the fallback
    _loads = json.loads

INFLATE: ModuleType = zlib
"""The zlib-compatible module records are inflated with: zlib-ng when installed. It inflates and checks a
record about four times faster than the system zlib (every event passes through here), with the same
results and errors; optional, like orjson."""
try:
    from zlib_ng import zlib_ng

    INFLATE = zlib_ng
except ImportError:  # pragma: no cover - the wheel is pinned; zlib is the fallback
    pass

DATA: Final = "data"
CONTROL: Final = "control"
OTHER_LOG_GROUP: Final = "other_log_group"
OTHER_STREAM: Final = "other_stream"
MALFORMED: Final = "malformed"
KINDS: Final = (DATA, CONTROL, OTHER_LOG_GROUP, OTHER_STREAM, MALFORMED)

GZIP_MAGIC: Final = b"\x1f\x8b"
# A Kinesis record holds at most 1 MiB; audit events compress about tenfold. A record that inflates past
# this is not a subscription record (or a decompression bomb): refused as malformed.
MAX_INFLATED_BYTES: Final = 64 * 1024 * 1024


@dataclass
class Decoded:
    """What one record holds for the forwarder."""

    kind: str
    """One of KINDS."""
    events: list[LogEvent] = field(default_factory=list)
    """The audit events (DATA only)."""
    bad_events: int = 0
    """Events of a DATA record without a usable id or timestamp (skipped)."""
    error: str | None = None
    """Why a MALFORMED record could not be read."""


def inflate(data: bytes) -> bytes:
    """The JSON text of a record's data (gzip, or base64 of gzip); ValueError if it is neither."""
    if not data:
        raise ValueError("empty record")
    if not data.startswith(GZIP_MAGIC):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("neither gzip nor base64 of gzip") from exc
        if not data.startswith(GZIP_MAGIC):
            raise ValueError("base64 of something other than gzip")
    inflater = INFLATE.decompressobj(16 + INFLATE.MAX_WBITS)
    try:
        text = inflater.decompress(data, MAX_INFLATED_BYTES)
    except INFLATE.error as exc:
        raise ValueError(f"bad gzip data: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ValueError(f"inflates to more than {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        # zlib returns what it could inflate from a cut-off stream without complaint.
        raise ValueError("bad gzip data: truncated (no end of stream)")
    return text


def decode(data: bytes, log_group: str, stream_prefix: str, arrival_ms: int) -> Decoded:
    """The audit events of one record, if it is a DATA_MESSAGE of ``log_group`` from a stream starting with
    ``stream_prefix``; ``arrival_ms`` (when Kinesis took the record) stands in for the ingestion time."""
    try:
        doc = _loads(inflate(data))
    except ValueError as exc:  # orjson.JSONDecodeError and json's are ValueErrors
        return Decoded(MALFORMED, error=str(exc)[:300])
    if not isinstance(doc, dict):
        return Decoded(MALFORMED, error="not a JSON object")
    message_type = doc.get("messageType")
    if message_type == "CONTROL_MESSAGE":
        return Decoded(CONTROL)
    if message_type != "DATA_MESSAGE":
        return Decoded(MALFORMED, error=f"messageType {str(message_type)[:50]!r}")
    if doc.get("logGroup") != log_group:
        return Decoded(OTHER_LOG_GROUP)
    stream = doc.get("logStream")
    if not isinstance(stream, str):
        return Decoded(MALFORMED, error="no logStream")
    if not stream.startswith(stream_prefix):
        return Decoded(OTHER_STREAM)
    raw_events = doc.get("logEvents")
    if not isinstance(raw_events, list):
        return Decoded(MALFORMED, error="no logEvents")
    decoded = Decoded(DATA)
    append = decoded.events.append
    for raw in raw_events:
        try:
            event_id, timestamp, message = raw["id"], raw["timestamp"], raw["message"]
            # JSON parsers give exact ints, and bools for true/false (a subclass of int, refused here).
            if type(timestamp) is not int or event_id in (None, ""):
                raise ValueError("id or timestamp")
            append(LogEvent(str(event_id), stream, timestamp, arrival_ms, str(message)))
        except (KeyError, TypeError, ValueError):
            decoded.bad_events += 1
    return decoded
