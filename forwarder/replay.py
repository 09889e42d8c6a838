"""``forwarder replay``: send audit events from JSON-lines files (or stdin) to Falco.

Lines are checked exactly as the pipeline checks CloudWatch messages; bad ones are counted
by reason, logged once with their file and line number, and skipped. Valid events go out in
EventList batches as they are read, so memory holds at most one batch. The result is one
JSON line on stdout; the exit code is 0 when every valid line was acknowledged, 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from .config import ConfigError, ReplayConfig
from .delivery.batching import Batch, Batcher
from .delivery.sender import FalcoClient
from .delivery.validation import NOT_JSON, validate
from .metrics import Metrics

log = logging.getLogger("forwarder.replay")

STDIN = "-"


@dataclass
class ReplaySummary:
    lines: int = 0
    """Non-blank lines read."""
    valid: int = 0
    acknowledged: int = 0
    rejected: int = 0
    """Valid lines Falco refused with a 4xx (isolated and skipped)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Invalid lines by reason."""
    batches: int = 0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.acknowledged == self.valid

    def to_json(self) -> str:
        return json.dumps(
            {
                "lines": self.lines,
                "valid": self.valid,
                "acknowledged": self.acknowledged,
                "rejected": self.rejected,
                "skipped": sum(self.skipped.values()),
                "skipped_by_reason": dict(sorted(self.skipped.items())),
                "batches": self.batches,
                "interrupted": self.interrupted,
                "ok": self.ok,
            },
            separators=(",", ":"),
        )


def check_files(files: list[str]) -> None:
    """Fail fast, before anything is sent, when a file cannot be read."""
    for name in files:
        if name == STDIN:
            continue
        try:
            with open(name, "rb"):
                pass
        except OSError as exc:
            raise ConfigError("FILE", f"cannot read {name!r}: {exc.strerror or exc}") from exc


@contextmanager
def _open(name: str, stdin: BinaryIO) -> Iterator[BinaryIO]:
    if name == STDIN:
        yield stdin
    else:
        with open(name, "rb") as handle:
            yield handle


class _Replayer:
    def __init__(self, client: FalcoClient, max_batch_bytes: int, stop: threading.Event) -> None:
        self.client = client
        self.batcher = Batcher(max_batch_bytes)
        self.stop = stop
        self.summary = ReplaySummary()

    def send(self, batch: Batch) -> None:
        outcome = self.client.deliver(batch, self.stop)
        self.summary.batches += 1
        self.summary.acknowledged += len(outcome.acknowledged)
        self.summary.rejected += len(outcome.rejected)
        if not outcome.completed:
            self.summary.interrupted = True

    def line(self, where: tuple[str, int], raw: bytes, max_event_bytes: int) -> None:
        self.summary.lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._skip(where, NOT_JSON, None)
            return
        result = validate(text, max_event_bytes)
        if not result.ok or result.body is None:
            self._skip(where, result.reason or NOT_JSON, result.audit_id)
            return
        self.summary.valid += 1
        for batch in self.batcher.add(where, result.body):
            self.send(batch)

    def _skip(self, where: tuple[str, int], reason: str, audit_id: str | None) -> None:
        self.summary.skipped[reason] += 1
        self.client.metrics.events_skipped_total.labels(reason=reason).inc()
        log.warning(
            "skipping line", extra={"file": where[0], "line": where[1], "reason": reason, "audit_id": audit_id}
        )


def run(
    config: ReplayConfig,
    stop: threading.Event,
    *,
    client: FalcoClient | None = None,
    stdin: BinaryIO | None = None,
    out: IO[str] | None = None,
) -> int:
    """Replay ``config.files``; prints the summary line to ``out`` (stdout); returns the exit code."""
    check_files(config.files)
    if client is None:
        client = FalcoClient(config.falco_url, Metrics(), timeout_seconds=config.request_timeout_seconds)
    replayer = _Replayer(client, config.max_batch_bytes, stop)
    source = stdin if stdin is not None else sys.stdin.buffer
    for name in config.files:
        with _open(name, source) as handle:
            for number, raw in enumerate(handle, start=1):
                if stop.is_set() or replayer.summary.interrupted:
                    replayer.summary.interrupted = True
                    break
                if raw.strip():
                    replayer.line((name, number), raw, config.max_event_bytes)
        if replayer.summary.interrupted:
            break
    # Send what is pending even when interrupted: a healthy Falco still takes it at once.
    last = replayer.batcher.flush()
    if last is not None:
        replayer.send(last)
    summary = replayer.summary
    print(summary.to_json(), file=out if out is not None else sys.stdout, flush=True)
    log.info("replay finished", extra={"acknowledged": summary.acknowledged, "valid": summary.valid})
    return 0 if summary.ok else 1
