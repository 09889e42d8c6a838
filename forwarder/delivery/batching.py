"""Groups validated event bodies into EventList requests within Falco's batch size limit.

A batch only keeps references to the bodies and a running size; the request body is built
once, by one join, when it is sent. ``size_bytes`` is always the exact size of that body,
envelope and commas included, so it can be compared with the webhook's limit directly.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field

from ..config import EVENT_LIST_OVERHEAD, EVENT_LIST_PREFIX, EVENT_LIST_SUFFIX


def payload_size(bodies: Sequence[bytes]) -> int:
    """Exact size of the EventList that carries ``bodies``."""
    return EVENT_LIST_OVERHEAD + sum(len(b) for b in bodies) + max(len(bodies) - 1, 0)


@dataclass
class Batch:
    """Events to send in one request; ``keys[i]`` identifies ``bodies[i]`` to the caller."""

    keys: list[Hashable] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    size_bytes: int = EVENT_LIST_OVERHEAD
    """Size of payload(): the envelope plus every body plus the commas between them."""

    @classmethod
    def of(cls, keys: Sequence[Hashable], bodies: Sequence[bytes]) -> Batch:
        if len(keys) != len(bodies):
            raise ValueError(f"{len(keys)} keys for {len(bodies)} bodies")
        return cls(list(keys), list(bodies), payload_size(bodies))

    def __len__(self) -> int:
        return len(self.bodies)

    def append(self, key: Hashable, body: bytes) -> None:
        self.size_bytes += len(body) + (1 if self.bodies else 0)
        self.keys.append(key)
        self.bodies.append(body)

    def payload(self) -> bytes:
        """The request body: ``{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[...]}``."""
        return b"".join((EVENT_LIST_PREFIX, b",".join(self.bodies), EVENT_LIST_SUFFIX))

    def chunks(self, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
        """payload() in pieces of about ``chunk_bytes``, for sending without a second full copy
        of the batch in memory; their lengths add up to ``size_bytes``."""
        yield EVENT_LIST_PREFIX
        bodies = self.bodies
        start, size = 0, 0
        for i, body in enumerate(bodies):
            size += len(body) + 1
            if size >= chunk_bytes:
                yield b",".join(([b""] if start else []) + bodies[start : i + 1])
                start, size = i + 1, 0
        if start < len(bodies):
            yield b",".join(([b""] if start else []) + bodies[start:])
        yield EVENT_LIST_SUFFIX

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, in order (for isolating an event a receiver refuses)."""
        if len(self.bodies) < 2:
            raise ValueError("cannot split a batch of fewer than 2 events")
        mid = len(self.bodies) // 2
        return Batch.of(self.keys[:mid], self.bodies[:mid]), Batch.of(self.keys[mid:], self.bodies[mid:])


class Batcher:
    """Accumulates bodies; hands out a batch as soon as the next body would not fit."""

    def __init__(self, max_batch_bytes: int) -> None:
        if max_batch_bytes <= EVENT_LIST_OVERHEAD:
            raise ValueError(f"max_batch_bytes must be > {EVENT_LIST_OVERHEAD}, got {max_batch_bytes}")
        self.max_batch_bytes = max_batch_bytes
        self._current = Batch()

    @property
    def max_body_bytes(self) -> int:
        """The largest body that fits in a batch on its own."""
        return self.max_batch_bytes - EVENT_LIST_OVERHEAD

    @property
    def pending_bytes(self) -> int:
        """Bytes held in the batch not yet handed out (0 when empty)."""
        return self._current.size_bytes if self._current.bodies else 0

    @property
    def pending_count(self) -> int:
        return len(self._current.bodies)

    def add(self, key: Hashable, body: bytes) -> list[Batch]:
        """Add one body; returns the batches that became full (usually none, at most one)."""
        if len(body) > self.max_body_bytes:
            # Validation rejects such events first (max_event_bytes <= max_batch_bytes - envelope).
            raise ValueError(f"event of {len(body)} bytes cannot fit in a batch of {self.max_batch_bytes} bytes")
        full: list[Batch] = []
        current = self._current
        if current.bodies and current.size_bytes + 1 + len(body) > self.max_batch_bytes:
            full.append(current)
            current = self._current = Batch()
        current.append(key, body)
        return full

    def flush(self) -> Batch | None:
        """Hand out what is pending, if anything."""
        if not self._current.bodies:
            return None
        batch, self._current = self._current, Batch()
        return batch
