"""forwarder/checkpoint/ledger.py and dedup.py: positions confirmed by acknowledgements, dedup by time bucket,
forgetting."""

from __future__ import annotations

import hashlib

from forwarder.checkpoint.dedup import HashSet, event_hash, pack, unpack
from forwarder.checkpoint.ledger import BUCKET_MS, BucketState, Ledger
from forwarder.model import LogEvent

STREAM_A = "kube-apiserver-audit-aaaa"
STREAM_B = "kube-apiserver-audit-bbbb"


def _event(event_id: str, ts: int, stream: str = STREAM_A, size: int = 10) -> LogEvent:
    return LogEvent(event_id, stream, ts, ts + 1000, "x" * size)


def test_an_event_is_handed_out_once_however_often_its_instant_is_read() -> None:
    ledger = Ledger({"head": 0, "final": 0})
    first = ledger.admit(0, 10_000, [_event("1", 5), _event("2", 9_999), _event("1", 5)], now_ms=0)
    assert [k.event_id for k, _ in first] == ["1", "2"]
    assert ledger.admit(0, 10_000, [_event("1", 5), _event("2", 9_999)], now_ms=1) == []
    # Same id in another stream is another event.
    assert [k.stream for k, _ in ledger.admit(0, 10_000, [_event("1", 5, STREAM_B)], now_ms=2)] == [STREAM_B]


def test_events_outside_the_read_range_are_dropped_and_counted() -> None:
    ledger = Ledger({"head": 0})
    assert ledger.admit(100, 200, [_event("early", 99), _event("late", 201), _event("in", 150)], now_ms=0)[0][0] \
        .event_id == "in"
    assert ledger.dropped_outside == 2


def test_a_position_is_confirmed_only_when_every_event_handed_out_before_it_is_acknowledged() -> None:
    ledger = Ledger({"head": 0, "final": 0})
    keys = [k for k, _ in ledger.admit(0, 10_000, [_event(str(i), i * 100) for i in range(5)], now_ms=0)]
    ledger.advance("head", 10_001)
    assert (ledger.read_to("head"), ledger.confirmed("head")) == (10_001, 0)
    ledger.acknowledge(keys[1:])  # not the oldest: still waiting
    assert ledger.confirmed("head") == 0
    assert ledger.oldest_outstanding_ms() == 0
    ledger.acknowledge(keys[:1])
    assert ledger.confirmed("head") == 10_001
    assert ledger.outstanding() == 0 and ledger.oldest_outstanding_ms() is None
    # An advance with nothing outstanding is confirmed at once.
    ledger.advance("final", 5_000)
    assert ledger.confirmed("final") == 5_000


def test_acknowledgements_in_any_order_confirm_exactly_what_is_contiguous() -> None:
    ledger = Ledger({"head": 0})
    keys = []
    for page in range(3):  # four events each, handed out at 0, 10 and 20 ms; read to 1, 2 and 3 s
        events = [_event(f"{page}-{i}", page * 1_000 + i) for i in range(4)]
        keys += [k for k, _ in ledger.admit(0, 99_999, events, now_ms=page * 10)]
        ledger.advance("head", (page + 1) * 1_000)
    ledger.admit(0, 99_999, [], now_ms=30)  # nothing new: no hand-out of its own
    ledger.acknowledge(keys[:3])  # in order, but not the whole first page
    assert (ledger.outstanding(), ledger.oldest_outstanding_ms(), ledger.confirmed("head")) == (9, 0, 0)
    ledger.acknowledge(keys[5:9])  # ahead of the watermark: nothing moves
    assert (ledger.outstanding(), ledger.oldest_outstanding_ms(), ledger.confirmed("head")) == (9, 0, 0)
    ledger.acknowledge(keys[3:5])  # fills the gap: up to the end of the second page
    assert (ledger.outstanding(), ledger.oldest_outstanding_ms(), ledger.confirmed("head")) == (3, 20, 2_000)
    ledger.acknowledge(keys[11:] + keys[9:11])
    assert (ledger.outstanding(), ledger.oldest_outstanding_ms(), ledger.confirmed("head")) == (0, None, 3_000)


def test_the_oldest_wait_is_dated_by_the_events_still_waiting_not_by_earlier_ones_all_acknowledged() -> None:
    # forwarder_oldest_unacknowledged_seconds: after a quiet hour, new events must not look an hour old.
    ledger = Ledger({"head": 0})
    ledger.acknowledge([k for k, _ in ledger.admit(0, 99_999, [_event("a", 1), _event("b", 2)], now_ms=10)])
    assert ledger.oldest_outstanding_ms() is None
    keys = [k for k, _ in ledger.admit(0, 99_999, [_event("c", 3)], now_ms=3_600_000)]
    assert ledger.oldest_outstanding_ms() == 3_600_000
    ledger.admit(0, 99_999, [_event("d", 4)], now_ms=3_600_500)
    ledger.acknowledge(keys)
    assert (ledger.outstanding(), ledger.oldest_outstanding_ms()) == (1, 3_600_500)


def test_events_handed_out_after_an_advance_do_not_hold_it_back() -> None:
    ledger = Ledger({"head": 0})
    ledger.advance("head", 1_000)
    later = ledger.admit(0, 9_999, [_event("late", 500)], now_ms=0)
    assert ledger.confirmed("head") == 1_000
    ledger.advance("head", 2_000)
    assert ledger.confirmed("head") == 1_000
    ledger.acknowledge([k for k, _ in later])
    assert ledger.confirmed("head") == 2_000


def test_buckets_are_forgotten_once_the_retention_positions_confirmed_past_them() -> None:
    ledger = Ledger({"head": 0, "final": 0})
    ledger.retention = ("final",)
    keys = [k for k, _ in ledger.admit(0, 30_000, [_event(str(i), i * 1_000) for i in range(30)], now_ms=0)]
    ledger.acknowledge(keys)
    assert ledger.open_buckets() == 6 and ledger.remembered_hashes() == 30
    ledger.advance("final", 2 * BUCKET_MS + 1)
    assert ledger.open_buckets() == 4
    # A read can no longer return them as new: they are counted, not handed out again.
    assert ledger.admit(0, 30_000, [_event("0", 0)], now_ms=1) == []
    assert ledger.dropped_forgotten == 1


def test_the_snapshot_holds_confirmed_positions_and_only_acknowledged_hashes() -> None:
    ledger = Ledger({"head": 0, "final": 0})
    ledger.retention = ("final",)
    fresh = [k for k, _ in ledger.admit(0, 20_000, [_event(str(i), i * 1_000, size=100) for i in range(12)], 0)]
    ledger.acknowledge(fresh[:8])
    ledger.advance("head", 20_001)  # waits for the 4 unacknowledged
    positions, buckets = ledger.snapshot()
    assert positions == {"head": 0, "final": 0}
    saved = {h for b in buckets for h in unpack(b.hashes)}
    assert saved == {k.hash for k in fresh[:8]}
    assert [b.events for b in buckets] == [5, 5]  # bucket sizes travel, for cost estimates after a restart
    restored = Ledger(positions, buckets)
    # Acknowledged events are known after a restart; the unacknowledged ones are handed out again.
    again = restored.admit(0, 20_000, [_event(str(i), i * 1_000, size=100) for i in range(12)], now_ms=5)
    assert sorted(k.event_id for k, _ in again) == sorted(k.event_id for k in fresh[8:])


def test_material_acknowledgements_exclude_the_forwarders_own_writes() -> None:
    from dataclasses import replace

    ledger = Ledger({"head": 0})
    keys = [k for k, _ in ledger.admit(0, 9_999, [_event("a", 1), _event("own", 2)], now_ms=0)]
    ledger.acknowledge([keys[0], replace(keys[1], material=False)])
    assert (ledger.acks, ledger.material_acks) == (2, 1)


def test_volume_estimates_what_reading_a_range_again_costs() -> None:
    ledger = Ledger({"head": 0})
    ledger.admit(0, 20_000, [_event(str(i), i * 10, size=974) for i in range(1_000)], now_ms=0)  # 0..9.99 s
    assert ledger.volume(0, 9_999) == (1_000, 1_000_000)
    # Half of the second bucket, in proportion.
    assert ledger.volume(5_000, 7_499) == (250, 250_000)
    assert ledger.volume(20_000, 10**13) == (0, 0)


def test_restored_buckets_keep_their_hashes_and_sizes() -> None:
    hashes = pack([event_hash(STREAM_A, "1"), event_hash(STREAM_A, "2")])
    ledger = Ledger({"head": 0}, [BucketState(0, hashes, 2, 3_000)])
    assert ledger.remembered_hashes() == 2 and ledger.volume(0, BUCKET_MS - 1) == (2, 3_000)
    assert ledger.admit(0, 10, [_event("1", 3), _event("3", 4)], now_ms=0)[0][0].event_id == "3"


def test_hashset_membership_survives_merges_and_pack_roundtrip() -> None:
    values = [event_hash(STREAM_A, str(i)) for i in range(5000)]
    s = HashSet()
    for v in values:
        s.add(v)
    assert len(s) == 5000
    assert all(v in s for v in values)
    assert event_hash(STREAM_A, "5001") not in s
    assert list(unpack(pack(values))) == values
    assert event_hash(STREAM_A, "1") != event_hash(STREAM_B, "1")


def test_event_hash_is_blake2b_64_of_stream_nul_id_as_checkpoints_hold_it() -> None:
    # Checkpoints keep these values: the per-stream prefix cache must not change them.
    for stream, event_id in ((STREAM_A, "1"), (STREAM_B, "1"), (STREAM_A, "3757" * 14), ("flux-\u00e9", "\u00e9")):
        for _ in range(2):
            digest = hashlib.blake2b(f"{stream}\x00{event_id}".encode(), digest_size=8).digest()
            assert event_hash(stream, event_id) == int.from_bytes(digest, "little")


def test_hashset_add_if_new_adds_once_across_merges_and_restored_values() -> None:
    s = HashSet([7, 9])
    assert not s.add_if_new(7) and s.add_if_new(8) and not s.add_if_new(8)
    values = [event_hash(STREAM_B, str(i)) for i in range(3000)]  # past the first merges
    assert all(s.add_if_new(v) for v in values)
    assert not any(s.add_if_new(v) for v in [*values, 7, 8, 9])
    assert len(s) == 3003
