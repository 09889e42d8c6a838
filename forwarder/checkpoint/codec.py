"""The checkpoint's two parts and their encodings: positions (small JSON) and remembered hashes (compact binary).

Positions are all a restart needs to lose nothing: per named position (ledger.py; one per re-read stage
of the CloudWatch schedule) the instant before which everything was read and acknowledged. The
remembered hashes only prevent duplicates after a restart: the acknowledged events of the buckets still
open, 8 bytes each. They are saved apart and less often (policy.py), so each part has its
own encoding:

- positions: ``{"version": 2, "log_group", "stream_prefix", "source", "positions": {name: ms}, "saved_at_ms"}``;
- remembered: ``MAGIC``, a 4-byte big-endian header length, a JSON header (``log_group``, ``stream_prefix``,
  ``bucket_ms`` and per bucket ``[start_ms, hashes, events, bytes]``), then the packed hashes in bucket
  order. Random 64-bit hashes do not compress: none is attempted.

The remembered hashes may be kept in ``HASH_SHARDS`` parts by time (a ConfigMap each, store.py): a bucket
belongs to part ``(start_ms // SHARD_MS) % HASH_SHARDS``, so the buckets of the last two minutes share one part and
a save rewrites only the parts whose buckets changed (at a steady rate, the newest one or two), not every
remembered hash. Each part is an ordinary remembered-hashes encoding of its buckets; ``merge_remembered`` joins
them again. The parts wrap around every ``HASH_SHARDS x SHARD_MS`` (14 minutes, more than the 11 minutes a bucket
stays open with the default lateness window): a part is rewritten over its buckets of the round before, by then
forgotten. A longer window only makes the parts larger.

A version 1 checkpoint (one document of segments, from earlier forwarders) is read for its positions:
every stage resumes from its oldest open segment; its hashes are not carried over, so the events of
that window are sent once more after the upgrade, never lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .ledger import BUCKET_MS, BucketState

FORMAT_VERSION = 2
SOURCE_CLOUDWATCH_POLL = "cloudwatch-poll"
MAGIC = b"FWDHASH2"
HASH_BYTES = 8
HASH_SHARDS = 7
SHARD_MS = 120_000


class CodecError(ValueError):
    """A checkpoint part that cannot be decoded; the message says why."""


@dataclass(frozen=True)
class Positions:
    log_group: str
    stream_prefix: str
    positions: Mapping[str, int]
    source: str = SOURCE_CLOUDWATCH_POLL
    saved_at_ms: int = 0


@dataclass(frozen=True)
class Remembered:
    log_group: str
    stream_prefix: str
    buckets: tuple[BucketState, ...] = ()
    bucket_ms: int = BUCKET_MS

    def hash_count(self) -> int:
        return sum(len(b.hashes) // HASH_BYTES for b in self.buckets)


@dataclass(frozen=True)
class Checkpoint:
    positions: Positions
    remembered: Remembered | None = field(default=None)

    def hash_count(self) -> int:
        return 0 if self.remembered is None else self.remembered.hash_count()


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"{what} must be an integer, got {value!r}")
    return value


# --- positions --------------------------------------------------------------------------------------


def encode_positions(positions: Positions) -> bytes:
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "log_group": positions.log_group,
            "stream_prefix": positions.stream_prefix,
            "source": positions.source,
            "positions": dict(sorted(positions.positions.items())),
            "saved_at_ms": positions.saved_at_ms,
        },
        separators=(",", ":"),
    ).encode()


def decode_positions(data: bytes) -> Positions:
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise CodecError("not a JSON object")
        version = raw.get("version")
        if version == 1:
            return _positions_from_v1(raw)
        if version != FORMAT_VERSION:
            raise CodecError(f"unsupported checkpoint version {version!r} (expected {FORMAT_VERSION})")
        positions = raw["positions"]
        if not isinstance(positions, dict) or not positions:
            raise CodecError("positions must be a non-empty object")
        return Positions(
            log_group=str(raw["log_group"]),
            stream_prefix=str(raw["stream_prefix"]),
            positions={str(k): _int(v, f"position {k}") for k, v in positions.items()},
            source=str(raw.get("source", SOURCE_CLOUDWATCH_POLL)),
            saved_at_ms=_int(raw.get("saved_at_ms", 0), "saved_at_ms"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(str(exc)) from exc


def _positions_from_v1(raw: Mapping[str, Any]) -> Positions:
    starts = [_int(s["start_ms"], "start_ms") for s in raw.get("segments", [])]
    oldest = min(starts) if starts else _int(raw["head_ms"], "head_ms")
    # Every stage resumes from the oldest open segment: re-read, never skipped.
    return Positions(str(raw["log_group"]), str(raw["stream_prefix"]), {"final": oldest})


# --- remembered hashes ----------------------------------------------------------------------------------


def encode_remembered(remembered: Remembered, max_bytes: int | None = None) -> tuple[bytes, Remembered, int]:
    """The encoded hashes, dropping the oldest buckets' until it fits in ``max_bytes``.

    Returns (encoding, what was kept, number of hashes left out). A left-out bucket costs duplicates
    after a restart (its events are sent once more when read again), never a loss.
    """
    buckets = list(remembered.buckets)
    dropped = 0
    while True:
        header = json.dumps(
            {
                "log_group": remembered.log_group,
                "stream_prefix": remembered.stream_prefix,
                "bucket_ms": remembered.bucket_ms,
                "buckets": [[b.start_ms, len(b.hashes) // HASH_BYTES, b.events, b.bytes] for b in buckets],
            },
            separators=(",", ":"),
        ).encode()
        size = len(MAGIC) + 4 + len(header) + sum(len(b.hashes) for b in buckets)
        if max_bytes is None or size <= max_bytes or not buckets:
            break
        # Drop the oldest buckets until the hashes alone fit, then check again with the smaller header.
        excess = size - max_bytes
        while buckets and excess > 0:
            gone = buckets.pop(0)
            excess -= len(gone.hashes) + 24
            dropped += len(gone.hashes) // HASH_BYTES
    kept = Remembered(remembered.log_group, remembered.stream_prefix, tuple(buckets), remembered.bucket_ms)
    data = b"".join((MAGIC, len(header).to_bytes(4, "big"), header, *(b.hashes for b in buckets)))
    return data, kept, dropped


def decode_remembered(data: bytes) -> Remembered:
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise CodecError("not a remembered-hashes checkpoint (bad magic)")
    offset = len(MAGIC)
    length = int.from_bytes(data[offset:offset + 4], "big")
    offset += 4
    try:
        header = json.loads(data[offset:offset + length])
        offset += length
        buckets = []
        for entry in header["buckets"]:
            start, count, events, nbytes = (_int(v, "bucket field") for v in entry)
            end = offset + count * HASH_BYTES
            if end > len(data):
                raise CodecError("remembered hashes are shorter than their header says")
            buckets.append(BucketState(start, data[offset:end], events, nbytes))
            offset = end
        if offset != len(data):
            raise CodecError("remembered hashes are longer than their header says")
        return Remembered(str(header["log_group"]), str(header["stream_prefix"]), tuple(buckets),
                          _int(header["bucket_ms"], "bucket_ms"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(str(exc)) from exc


# --- remembered hashes in parts by time -------------------------------------------------------------


def shard_of(bucket_start_ms: int) -> int:
    """The part (0 to HASH_SHARDS - 1) that keeps the bucket starting at ``bucket_start_ms``."""
    return (bucket_start_ms // SHARD_MS) % HASH_SHARDS


def split_remembered(remembered: Remembered) -> list[Remembered]:
    """``remembered`` in HASH_SHARDS parts by time (shard_of); a part without buckets is empty."""
    parts: list[list[BucketState]] = [[] for _ in range(HASH_SHARDS)]
    for bucket in remembered.buckets:
        parts[shard_of(bucket.start_ms)].append(bucket)
    return [Remembered(remembered.log_group, remembered.stream_prefix, tuple(part), remembered.bucket_ms)
            for part in parts]


def merge_remembered(parts: list[Remembered]) -> Remembered | None:
    """The parts joined again, oldest bucket first (None without any); of a bucket found twice (parts written under
    other settings) the copy with more hashes."""
    if not parts:
        return None
    buckets: dict[int, BucketState] = {}
    for part in parts:
        for bucket in part.buckets:
            known = buckets.get(bucket.start_ms)
            if known is None or len(bucket.hashes) > len(known.hashes):
                buckets[bucket.start_ms] = bucket
    first = parts[0]
    return Remembered(first.log_group, first.stream_prefix, tuple(buckets[s] for s in sorted(buckets)),
                      first.bucket_ms)


def fingerprint(remembered: Remembered) -> frozenset[tuple[int, int]]:
    """What a part holds, as (bucket start, hashes): a bucket's hashes only grow (ledger.py), so a part needs no
    write while every pair of the ledger's is in the stored one's (unchanged, or only buckets forgotten since)."""
    return frozenset((b.start_ms, len(b.hashes) // HASH_BYTES) for b in remembered.buckets)
