"""forwarder.delivery.batching: EventList payloads within the size limit, exact sizes, order kept."""

from __future__ import annotations

import json
import random

import pytest

from forwarder.config import EVENT_LIST_OVERHEAD
from forwarder.delivery.batching import Batch, Batcher, payload_size


def body(i: int, pad: int = 0) -> bytes:
    return json.dumps(
        {"kind": "Event", "auditID": f"id-{i}", "stageTimestamp": "2024-05-01T12:00:00Z", "pad": "x" * pad},
        separators=(",", ":"),
    ).encode()


def test_payload_is_an_event_list_of_the_raw_bodies() -> None:
    batch = Batch.of(["a", "b"], [body(1), body(2)])
    document = json.loads(batch.payload())
    assert document["kind"] == "EventList"
    assert document["apiVersion"] == "audit.k8s.io/v1"
    assert [item["auditID"] for item in document["items"]] == ["id-1", "id-2"]
    assert batch.payload() == b'{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[' + body(1) + b"," + body(
        2
    ) + b"]}"


def test_size_bytes_is_the_exact_payload_size() -> None:
    batch = Batch()
    assert batch.size_bytes == len(batch.payload()) == EVENT_LIST_OVERHEAD
    for i in range(5):
        batch.append(i, body(i, pad=i * 7))
        assert batch.size_bytes == len(batch.payload())
    assert payload_size(batch.bodies) == batch.size_bytes


def test_batches_never_exceed_the_limit_and_keep_every_event_in_order() -> None:
    rng = random.Random(7)
    limit = 5_000
    batcher = Batcher(limit)
    batches: list[Batch] = []
    expected: list[int] = []
    for i in range(2_000):
        b = body(i, pad=rng.randrange(0, 1_500))
        expected.append(i)
        batches.extend(batcher.add(i, b))
        assert batcher.pending_bytes <= limit
    last = batcher.flush()
    assert last is not None
    batches.append(last)
    assert batcher.flush() is None
    assert batcher.pending_bytes == 0
    keys = [k for batch in batches for k in batch.keys]
    assert keys == expected
    for batch in batches:
        payload = batch.payload()
        assert len(payload) == batch.size_bytes <= limit
        assert [item["auditID"] for item in json.loads(payload)["items"]] == [f"id-{k}" for k in batch.keys]


def test_a_batch_is_handed_out_only_when_the_next_event_does_not_fit() -> None:
    b = body(0)
    # Room for exactly two bodies and their comma.
    batcher = Batcher(EVENT_LIST_OVERHEAD + 2 * len(b) + 1)
    assert batcher.add(0, b) == []
    assert batcher.add(1, b) == []
    assert batcher.pending_bytes == batcher.max_batch_bytes
    full = batcher.add(2, b)
    assert [batch.keys for batch in full] == [[0, 1]]
    assert full[0].size_bytes == batcher.max_batch_bytes
    assert batcher.pending_count == 1


def test_an_event_as_large_as_the_room_fits_alone() -> None:
    b = body(0, pad=1000)
    batcher = Batcher(EVENT_LIST_OVERHEAD + len(b))
    assert batcher.add("k", b) == []
    full = batcher.add("k2", b)
    assert [batch.keys for batch in full] == [["k"]]
    assert len(full[0].payload()) == batcher.max_batch_bytes


def test_an_event_larger_than_any_batch_is_refused() -> None:
    batcher = Batcher(EVENT_LIST_OVERHEAD + 10)
    with pytest.raises(ValueError, match="cannot fit"):
        batcher.add("k", b"x" * 11)


def test_split_keeps_order_and_exact_sizes() -> None:
    batch = Batch.of(list(range(5)), [body(i) for i in range(5)])
    first, second = batch.split()
    assert first.keys + second.keys == [0, 1, 2, 3, 4]
    assert first.size_bytes == len(first.payload())
    assert second.size_bytes == len(second.payload())
    with pytest.raises(ValueError):
        Batch.of([1], [body(1)]).split()


def test_many_small_events_batch_in_linear_time() -> None:
    # 100,000 events into 12 MiB batches: finishes quickly only if adding is O(1) per event.
    batcher = Batcher(12_582_912)
    b = body(1, pad=1_400)
    count = 0
    for i in range(100_000):
        for batch in batcher.add(i, b):
            count += len(batch)
    rest = batcher.flush()
    assert rest is not None
    assert count + len(rest) == 100_000


@pytest.mark.parametrize("chunk_bytes", [1, 100, 1_000, 1 << 20])
def test_chunks_add_up_to_the_payload(chunk_bytes: int) -> None:
    rng = random.Random(chunk_bytes)
    for count in (0, 1, 2, 7, 50):
        batch = Batch.of(list(range(count)), [body(i, pad=rng.randrange(0, 300)) for i in range(count)])
        parts = list(batch.chunks(chunk_bytes))
        assert b"".join(parts) == batch.payload()
        assert sum(len(p) for p in parts) == batch.size_bytes


def test_chunks_stay_near_the_requested_size() -> None:
    batch = Batch.of(list(range(1_000)), [body(i, pad=100) for i in range(1_000)])
    parts = list(batch.chunks(10_000))
    one = len(body(0, pad=100)) + 1
    assert all(len(p) < 10_000 + one for p in parts)
    assert len(parts) > 10
