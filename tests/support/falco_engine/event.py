"""One audit event as Falco holds it once the k8saudit webhook has taken it from an EventList.

The plugin (plugins/k8saudit/pkg/k8saudit/source.go at v0.16.1, ``parseSingleAuditEventJSON``) reads
the item's ``stageTimestamp`` with Go's ``time.Parse(time.RFC3339Nano, ...)`` - that is the event's
time (``evt.time``, the alert's ``time``, ``jevt.rawtime``) - and stores the item re-marshalled by
fastjson (compact; strings as written, the timestamp as read). An item without a usable timestamp,
or whose stored form is larger than ``maxEventSize`` (262144 bytes unless configured), is dropped;
so is a request nested deeper than fastjson's 300 levels (an item sits 2 levels down). The item's
``kind`` is not checked. Fields are then extracted from the stored form, each plugin parsing its own
copy (see jsonvalue).
"""

from __future__ import annotations

import calendar
import re
from typing import Final

from forwarder.delivery.jsontext import FASTJSON_MAX_DEPTH, deeper_than

from . import jsonvalue as jv
from .errors import EventRejectedError, UnsupportedError

DEFAULT_MAX_EVENT_SIZE: Final = 262_144
"""The k8saudit plugin's ``maxEventSize`` default (config.go), also the lab's setting."""
EVENT_LIST_LEVELS: Final = 2
"""An event's levels above it in the EventList the forwarder sends (the object and its ``items``)."""

# Go's time.Parse with layout RFC3339Nano: fraction optional, '.' or ',' (Go 1.17+), digits beyond
# the ninth ignored; offsets as Z or +hh:mm.
_RFC3339_NANO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))"
)


def parse_stage_timestamp(text: str) -> int:
    """Nanoseconds since the epoch, as Go's UnixNano of ``time.Parse(time.RFC3339Nano, text)``."""
    m = _RFC3339_NANO.fullmatch(text)
    if m is None:
        raise EventRejectedError(f"stageTimestamp {text!r} is not RFC3339Nano")
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if year < 1970:
        raise UnsupportedError(f"stageTimestamp {text!r} is before 1970 (Falco's timestamps are unsigned)")
    if not (1 <= month <= 12 and hour < 24 and minute < 60 and second < 60):
        raise EventRejectedError(f"stageTimestamp {text!r} is out of range")
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise EventRejectedError(f"stageTimestamp {text!r}: day out of range")
    fraction = (m[7] or "")[:9].ljust(9, "0")
    offset = 0
    if m[8] is None:
        hours, minutes = int(m[10]), int(m[11])
        if hours > 23 or minutes > 59:
            raise EventRejectedError(f"stageTimestamp {text!r}: time zone offset out of range")
        offset = (hours * 3600 + minutes * 60) * (1 if m[9] == "+" else -1)
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    if seconds < 0:
        raise UnsupportedError(f"stageTimestamp {text!r} is before 1970 (Falco's timestamps are unsigned)")
    return seconds * 1_000_000_000 + int(fraction)


class AuditEvent:
    """An audit event Falco would evaluate; EventRejectedError if the plugin would drop it."""

    def __init__(self, text: str | bytes, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UnsupportedError(f"event is not UTF-8: {e}") from None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise UnsupportedError(f"event text holds a lone surrogate, which has no UTF-8 form: {e}") from None
        if deeper_than(text, FASTJSON_MAX_DEPTH - EVENT_LIST_LEVELS):
            raise EventRejectedError("event nests deeper than fastjson parses inside an EventList (300 levels)")
        jv.check_json(text)
        tree = jv.Tree()
        root = jv.parse(text, tree)
        stamp = jv.get(root, "stageTimestamp")
        if stamp is None:
            raise EventRejectedError("can't read stageTimestamp")
        # GetStringBytes: the string's text, or nothing for any other type.
        stamp_text = jv.as_string(stamp) if jv.type_of(stamp) == jv.STRING else ""
        self.ts = parse_stage_timestamp(stamp_text)
        """Event time in nanoseconds since the epoch (UTC)."""
        self.data = jv.marshal(root)
        """The event as stored and handed to the extractors."""
        if len(self.data.encode("utf-8")) > max_event_size:
            raise EventRejectedError(f"event larger than maxEventSize: size={len(self.data.encode('utf-8'))}")
        self._k8saudit: tuple[jv.Tree, jv.Value] | None = None
        self._json: tuple[jv.Tree, jv.Value] | None = None
        self.cache: dict[str, tuple[int, object]] = {}
        """Field values by field (as output_fields names it), with the version of the copy read."""

    def k8saudit(self) -> tuple[jv.Tree, jv.Value]:
        """The k8saudit plugin's parsed copy (its ``jdata``), kept for every field of this event."""
        if self._k8saudit is None:
            tree = jv.Tree()
            self._k8saudit = (tree, jv.parse(self.data, tree))
        return self._k8saudit

    def json(self) -> tuple[jv.Tree, jv.Value]:
        """The json plugin's own parsed copy."""
        if self._json is None:
            tree = jv.Tree()
            self._json = (tree, jv.parse(self.data, tree))
        return self._json
