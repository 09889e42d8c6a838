"""Falco 0.44's "metrics snapshot" lines for a stream of forwarder requests, and the forwarder's side of it.

Written from the project's understanding of how Falco counts (workshop/pipeline.py's docstring, from the
recordings in shared/corpus/real-falco/ and Falco's process_events.cpp / stats_writer.cpp), not from
recorded lines:

- Falco acknowledges a request before it evaluates it, then evaluates the requests in that order, one event
  at a time at `events_per_second`, from when a request arrives or when it is done with the one before. A
  request it drops (a body it cannot parse) is acknowledged and never evaluated.
- Its timer ticks every `interval` after it started; the first event taken up after a tick writes a snapshot
  (its `evt.time` is that moment) whose `falco.num_evts` counts the events evaluated before that one, and
  `falco.num_evts_prev` the previous snapshot's count. After a quiet spell that event is the first of a
  request, so the count stops right before that whole request.
- `falco.evts_rate_sec` is (num_evts - num_evts_prev) / seconds since the previous snapshot, and is absent
  while the previous count is 0: the first snapshots after a start or a reload.
- After a reload (`reloaded=True`) the first event writes a snapshot at once: the collector starts afresh
  while the tick count goes on.

The forwarder's side is its own DeliveryHistory (forwarder/metrics.py), fed request by request as the
delivery feeds it, read through a fake clock.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from forwarder.metrics import DeliveryHistory

RULE = "Falco internal: metrics snapshot"
HOSTNAME = "falco-k8saudit-5d9c7b8f6d-x7k2p"


@dataclass(frozen=True)
class Request:
    """One request the forwarder sent and Falco acknowledged."""

    acknowledged_at: float
    events: int
    dropped: bool = False
    """Falco never evaluated it (acknowledged first, then it could not parse it)."""


def snapshots(
    requests: Iterable[Request],
    started_at: float,
    interval: float = 60.0,
    events_per_second: float = 2000.0,
    reloaded: bool = False,
    source: str = "k8s_audit",
) -> list[dict[str, Any]]:
    """Falco's snapshot messages (as its JSON output writes them) for `requests`, in time order."""
    written: list[dict[str, Any]] = []
    next_tick = started_at if reloaded else started_at + interval
    free_at = started_at
    evaluated = 0
    previous: tuple[float, int] | None = None  # (time, count) of the snapshot before
    for request in sorted(requests, key=lambda r: r.acknowledged_at):
        if request.dropped:
            continue
        start = max(request.acknowledged_at, free_at)
        for index in range(request.events):
            at = start + index / events_per_second
            if at >= next_tick:
                written.append(_message(at, evaluated, previous, started_at, source))
                previous = (at, evaluated)
                next_tick = started_at + (math.floor((at - started_at) / interval) + 1) * interval
            evaluated += 1
        free_at = start + request.events / events_per_second
    return written


def _message(
    at: float, evaluated: int, previous: tuple[float, int] | None, started_at: float, source: str
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "evt.hostname": HOSTNAME,
        "evt.source": source,
        "evt.time": int(at * 1e9),
        "falco.duration_sec": int(at - started_at),
        "falco.host_num_cpus": 2,
        "falco.num_evts": evaluated,
        "falco.num_evts_prev": previous[1] if previous else 0,
        "falco.outputs_queue_num_drops": 0,
        "falco.reload_ts": int(started_at * 1e9),
        "falco.rules.matches_total": evaluated // 3,
        "falco.version": "0.44.1",
        "scap.engine_name": "source_plugin",
    }
    if previous is not None and previous[1] != 0 and at > previous[0]:
        fields["falco.evts_rate_sec"] = round((evaluated - previous[1]) / (at - previous[0]), 1)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(round(at % 1 * 1e9)) % 10**9:09d}Z"
    return {
        "hostname": HOSTNAME,
        "output": "Falco metrics snapshot",
        "output_fields": dict(sorted(fields.items())),
        "priority": "Informational",
        "rule": RULE,
        "source": "internal",
        "time": stamp,
    }


def log_text(messages: Iterable[dict[str, Any]]) -> str:
    """Falco's log as `kubectl logs` shows it: one JSON message a line."""
    return "".join(json.dumps(message, separators=(",", ":")) + "\n" for message in messages)


def deliveries(requests: Iterable[Request], started_at: float, read_at: float) -> dict[str, Any]:
    """The forwarder's /deliveries at `read_at`: its own DeliveryHistory, fed each acknowledgement up to then."""
    clock = [started_at]
    history = DeliveryHistory(clock=lambda: clock[0])
    for request in sorted(requests, key=lambda r: r.acknowledged_at):
        if request.acknowledged_at > read_at:
            break
        clock[0] = request.acknowledged_at
        history.record(request.events)
    clock[0] = read_at
    return history.snapshot()


def delivered_by(requests: Iterable[Request], moment: float) -> int:
    return sum(r.events for r in requests if r.acknowledged_at <= moment)
