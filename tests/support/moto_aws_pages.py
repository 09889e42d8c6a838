"""moto's FilterLogEvents paged as AWS pages it: at most 1 MB or 10,000 events, interleaved by timestamp.

moto 5.2.5 fills every page with up to 10,000 events whatever their size, lists each stream's events one
stream after another unless ``interleaved`` is asked for, and rebuilds and scans every event of the group
on each call. AWS stops a page at 1,048,576 bytes or 10,000 events (CloudWatch Logs quotas; the page rule
of support/synthetic_cloudwatch.py: each event counts its UTF-8 message plus 26 bytes) and always
interleaves. For 1.5 KB audit events that is ~680 events a page instead of 10,000: the difference between
polling's rate on stock moto and on AWS, which is what the benchmark compares the Kinesis path with.

Patched here, for the group's FilterLogEvents only: each stream's events are kept sorted by (timestamp,
moto's event id) and a page is cut from the streams' ranges merged by (timestamp, stream name, event id),
so a call costs its page, not the whole group. ``startTime`` and ``endTime`` are inclusive, as in moto and
AWS. The token names the last event returned; the next page starts after it in that order.

Use in a test (moto in thread mode):    with aws_like_pages(): ...
Or as a moto server process:            python -m support.moto_aws_pages -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import heapq
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

PAGE_EVENTS = 10_000
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD = 26
_AFTER_ALL = sys.maxsize


class _SortedStream:
    """One stream's events in (timestamp, event id) order, rebuilt when moto appended to it."""

    __slots__ = ("count", "keys", "events")

    def __init__(self) -> None:
        self.count = -1
        self.keys: list[tuple[int, int]] = []
        self.events: list[Any] = []

    def refresh(self, events: list[Any]) -> None:
        if len(events) == self.count:
            return  # moto's streams only grow (put_log_events appends)
        ordered = sorted(events, key=lambda e: (e.timestamp, e.event_id))
        self.events = ordered
        self.keys = [(e.timestamp, e.event_id) for e in ordered]
        self.count = len(events)


def _encode_token(group: str, last: tuple[int, str, int]) -> str:
    doc = json.dumps([group, *last], separators=(",", ":"))
    return base64.urlsafe_b64encode(doc.encode()).decode()


def _decode_token(group: str, token: str) -> tuple[int, str, int] | None:
    try:
        name, timestamp, stream, event_id = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError):
        return None
    if name != group or not isinstance(stream, str):
        return None
    return int(timestamp), stream, int(event_id)


def _first_after(keys: list[tuple[int, int]], stream: str, last: tuple[int, str, int]) -> int:
    """Index of the first of ``stream``'s keys that comes after ``last`` in (timestamp, stream, id) order."""
    timestamp, last_stream, event_id = last
    if stream < last_stream:
        return bisect.bisect_right(keys, (timestamp, _AFTER_ALL))
    if stream == last_stream:
        return bisect.bisect_right(keys, (timestamp, event_id))
    return bisect.bisect_left(keys, (timestamp, -1))


def _sorted(stream: Any) -> _SortedStream:
    # Kept on moto's stream object, so it goes with the stream (a reset or a deleted group drops it).
    index = stream.__dict__.get("_aws_pages_sorted")
    if index is None:
        index = stream.__dict__["_aws_pages_sorted"] = _SortedStream()
    index.refresh(stream.events)
    return index


def _tagged(events: list[Any], lo: int, hi: int, stream: str) -> Iterator[tuple[int, str, int, Any]]:
    # Lazy, so that a call costs what its page holds, not the whole range.
    for i in range(lo, hi):
        event = events[i]
        yield event.timestamp, stream, event.event_id, event


def page(group: Any, stream_names: list[str] | None,
         start_time: int | None, end_time: int | None, limit: int | None, next_token: str | None,
         matches: Callable[[str], bool]) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
    """One FilterLogEvents page of moto LogGroup ``group`` (the tuple moto's backend returns)."""
    limit = min(limit or PAGE_EVENTS, PAGE_EVENTS)
    streams = [s for name, s in group.streams.items() if not stream_names or name in stream_names]
    searched = [{"logStreamName": s.log_stream_name, "searchedCompletely": True} for s in streams]
    last = None
    if next_token:
        last = _decode_token(group.name, next_token)
        if last is None:
            return [], None, searched  # AWS answers an unknown token with nothing
    low_key = (start_time if start_time else 0, -1)
    high_key = (end_time if end_time else _AFTER_ALL, _AFTER_ALL)
    ranges = []
    for stream in streams:
        name = stream.log_stream_name
        index = _sorted(stream)
        lo = bisect.bisect_left(index.keys, low_key)
        if last is not None:
            lo = max(lo, _first_after(index.keys, name, last))
        hi = bisect.bisect_right(index.keys, high_key)
        if lo < hi:
            ranges.append(_tagged(index.events, lo, hi, name))
    events: list[dict[str, Any]] = []
    size = 0
    more = False
    for timestamp, name, event_id, event in heapq.merge(*ranges, key=lambda item: item[:3]):
        if not matches(event.message):
            continue
        cost = len(event.message.encode("utf-8")) + EVENT_OVERHEAD
        if len(events) >= limit or (events and size + cost > PAGE_BYTES):
            more = True
            break
        item = event.to_filter_dict()
        item["logStreamName"] = name
        events.append(item)
        size += cost
        last = (timestamp, name, event_id)
    token = _encode_token(group.name, last) if more and last is not None else None
    return events, token, searched


def install() -> Callable[[], None]:
    """Patch moto's LogGroup.filter_log_events; returns the function that restores it."""
    from moto.logs import models
    from moto.logs.utils import EventMessageFilter

    original = models.LogGroup.filter_log_events

    def filter_log_events(self: Any, log_group_name: str, log_stream_names: list[str], start_time: int,
                          end_time: int, limit: int | None, next_token: str | None, filter_pattern: str,
                          interleaved: bool) -> tuple[list[dict[str, Any]], str | None, list[dict[str, Any]]]:
        matcher = EventMessageFilter(filter_pattern) if filter_pattern else None
        matches = matcher.matches if matcher is not None else (lambda _message: True)
        return page(self, log_stream_names, start_time, end_time, limit, next_token, matches)

    models.LogGroup.filter_log_events = filter_log_events  # type: ignore[method-assign]

    def restore() -> None:
        models.LogGroup.filter_log_events = original  # type: ignore[method-assign]

    return restore


@contextlib.contextmanager
def aws_like_pages() -> Iterator[None]:
    """AWS's FilterLogEvents paging in this process's moto (thread mode) for the block."""
    restore = install()
    try:
        yield
    finally:
        restore()


def main(argv: list[str] | None = None) -> None:
    """moto's server (same arguments) with AWS's paging."""
    install()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main()
