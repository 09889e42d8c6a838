"""forwarder/checkpoint/store.py and codec.py: the two parts, their encodings, the file and ConfigMap stores."""

from __future__ import annotations

import base64
import dataclasses
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fwd_fakes import FakeKubeApi
from support.kube_api import STACK_LABELS, Rbac

from forwarder.checkpoint import store as cp
from forwarder.checkpoint.codec import (
    Checkpoint,
    CodecError,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    encode_remembered,
    shard_of,
    split_remembered,
)
from forwarder.checkpoint.dedup import event_hash, pack
from forwarder.checkpoint.ledger import BucketState
from forwarder.checkpoint.store import (
    CheckpointError,
    ConfigMapCheckpointStore,
    FileCheckpointStore,
    SelfWrites,
)
from forwarder.kube import service_account_username

GROUP, PREFIX = "/aws/eks/lab/cluster", "kube-apiserver-audit"
# A service account token's shape (JWT); only its "sub" is read.
TOKEN = "eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(
    json.dumps({"sub": "system:serviceaccount:forwarder:audit-forwarder"}).encode()).decode().rstrip("=") + ".c2ln"


def _hashes(n: int, salt: str = "") -> bytes:
    return pack(event_hash("kube-apiserver-audit-a", f"{salt}{i}") for i in range(n))


def _positions(head: int = 10_000) -> Positions:
    return Positions(GROUP, PREFIX, {"head": head, "7s": head - 8_000, "final": head - 600_000})


def _remembered(buckets: int = 3, per_bucket: int = 4) -> Remembered:
    return Remembered(GROUP, PREFIX, tuple(
        BucketState(i * 5_000, _hashes(per_bucket, f"b{i}-"), per_bucket, per_bucket * 1500) for i in range(buckets)))


# --- codec ----------------------------------------------------------------------------------------


def test_positions_and_remembered_hashes_round_trip() -> None:
    positions, remembered = _positions(), _remembered()
    from forwarder.checkpoint.codec import encode_positions

    assert decode_positions(encode_positions(positions)) == positions
    data, kept, dropped = encode_remembered(remembered)
    assert (kept, dropped) == (remembered, 0)
    assert decode_remembered(data) == remembered
    # Compact: 8 bytes a hash plus a small header.
    assert len(data) < remembered.hash_count() * 8 + 300


def test_remembered_hashes_over_the_limit_drop_the_oldest_buckets_first() -> None:
    remembered = _remembered(buckets=20, per_bucket=1000)
    data, kept, dropped = encode_remembered(remembered, max_bytes=100_000)
    assert len(data) <= 100_000
    assert dropped == (20 - len(kept.buckets)) * 1000 > 0
    assert kept.buckets == remembered.buckets[-len(kept.buckets):]  # the newest are kept
    assert decode_remembered(data) == kept


def test_a_version_1_checkpoint_resumes_from_its_oldest_open_segment() -> None:
    v1 = {"version": 1, "log_group": GROUP, "stream_prefix": PREFIX, "head_ms": 90_000,
          "segments": [{"start_ms": 30_000, "end_ms": 40_000, "confirmed_ms": None, "dirty": True, "hashes": ""},
                       {"start_ms": 40_001, "end_ms": 89_999, "confirmed_ms": 1, "dirty": False, "hashes": ""}]}
    assert decode_positions(json.dumps(v1).encode()) == Positions(GROUP, PREFIX, {"final": 30_000})


@pytest.mark.parametrize("data", [b"{not json", b"[]", b'{"version": 9}', b'{"version": 2, "positions": {}}',
                                  b'{"version": 2, "log_group": "g", "stream_prefix": "p", "positions": {"x": "1"}}'])
def test_unreadable_positions_are_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode_positions(data)


def test_truncated_remembered_hashes_are_refused() -> None:
    data, _, _ = encode_remembered(_remembered())
    with pytest.raises(CodecError):
        decode_remembered(data[:-3])
    with pytest.raises(CodecError):
        decode_remembered(b"nonsense")


# --- file store ---------------------------------------------------------------------------------


def test_file_store_keeps_the_parts_in_two_files_written_atomically(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    assert store.load() is None
    positions, remembered = _positions(), _remembered()
    assert store.save_positions(positions).bytes_written == (tmp_path / "cp.json").stat().st_size
    assert FileCheckpointStore(tmp_path / "cp.json").load() == Checkpoint(positions, None)
    store.save_remembered(remembered)
    assert FileCheckpointStore(tmp_path / "cp.json").load() == Checkpoint(positions, remembered)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json", "cp.json.hashes"]


def test_file_store_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cp.json"
    store = FileCheckpointStore(path)
    store.save_positions(_positions())
    before = path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(cp.os, "replace", crash)
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        store.save_positions(_positions(head=99_999))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_file_store_errors_name_the_file_and_bad_hashes_only_cost_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=str(path)):
        FileCheckpointStore(path).load()
    with pytest.raises(CheckpointError, match="does not exist"):
        FileCheckpointStore(tmp_path / "missing" / "cp.json").load()
    store = FileCheckpointStore(path)
    store.save_positions(_positions())
    store.hashes_path.write_bytes(b"garbage")
    assert store.load() == Checkpoint(_positions(), None)


def test_file_store_reads_a_version_1_checkpoint_for_its_positions(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"version": 1, "log_group": GROUP, "stream_prefix": PREFIX, "head_ms": 5, "seq": 3,
                                "segments": []}))
    loaded = FileCheckpointStore(path).load()
    assert loaded is not None and loaded.positions.positions == {"final": 5}


# --- ConfigMap store ----------------------------------------------------------------------------

NS, NAME = "forwarder", "audit-checkpoint"
PARTS = cp.hashes_names(NAME)


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, Path]]:
    """The stand-in as the stack leaves it: the component's Roles, and the checkpoint's ConfigMaps, empty."""
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    with FakeKubeApi(TOKEN, rbac=Rbac.forwarder("audit-forwarder-leader", NAME)) as api:
        api.create_like_the_stack(NS, NAME)
        yield api, token


def _store(api: FakeKubeApi, token: Path, **kwargs: Any) -> ConfigMapCheckpointStore:
    return ConfigMapCheckpointStore(NS, NAME, api_url=api.url, token_path=str(token), ca_path=None, **kwargs)


def _parts(api: FakeKubeApi) -> list[Remembered | None]:
    """Each part of the remembered hashes as stored (None: empty)."""
    found: list[Remembered | None] = []
    for name in PARTS:
        raw = (api.objects[name].get("binaryData") or {}).get("hashes.bin")
        found.append(None if raw is None else decode_remembered(base64.b64decode(raw)))
    return found


def _window(minutes: int, per_bucket: int = 10, start_ms: int = 1_700_000_000_000) -> Remembered:
    """``minutes`` of 5-second buckets from ``start_ms``, ``per_bucket`` hashes each."""
    start_ms -= start_ms % 5_000
    return Remembered(GROUP, PREFIX, tuple(
        BucketState(start_ms + i * 5_000, _hashes(per_bucket, f"w{i}-"), per_bucket, per_bucket * 1500)
        for i in range(minutes * 12)))


def test_the_stacks_empty_configmaps_are_no_checkpoint_yet_then_replaced_keeping_the_stacks_labels(kube) -> None:
    api, token = kube
    store = _store(api, token)
    assert store.claim() is None
    assert [m for m, _ in api.requests] == ["GET"] * (1 + len(PARTS))
    store.save_positions(_positions())
    store.save_remembered(_remembered())
    assert {m for m, _ in api.requests[1 + len(PARTS):]} == {"PUT"}, "never a create: the stack made them"
    created = api.objects[NAME]["metadata"]["resourceVersion"]
    store.save_positions(_positions(head=50_000))
    assert api.requests[-1][0] == "PUT" and api.objects[NAME]["metadata"]["resourceVersion"] != created
    assert all(w.field_manager == "falco-eks-forwarder" for w in api.writes)
    # Positions stay readable with kubectl; the hashes are binary in their parts; the stack's labels stay.
    assert json.loads(api.objects[NAME]["data"]["positions.json"])["positions"]["head"] == 50_000
    assert [set(api.objects[n].get("binaryData") or {}) for n in PARTS] == [{"hashes.bin"}] + [set()] * 6
    assert all(api.objects[n]["metadata"]["labels"] == STACK_LABELS for n in (NAME, *PARTS))
    assert _store(api, token).load() == Checkpoint(_positions(head=50_000), _remembered())
    assert api.denied == []


def test_a_save_of_the_remembered_hashes_writes_only_the_parts_that_changed(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    window = _window(13)  # 13 minutes: every part holds some
    first = store.save_remembered(window)
    assert sorted(w.name for w in api.writes) == sorted(PARTS)
    assert first.bytes_written > window.hash_count() * 8 * 4 // 3
    # Five more hashes in the newest bucket: its part alone is written again.
    newest = window.buckets[-1]
    grown = BucketState(newest.start_ms, newest.hashes + _hashes(5, "new-"), newest.events + 5, newest.bytes)
    before = len(api.writes)
    again = store.save_remembered(dataclasses.replace(window, buckets=(*window.buckets[:-1], grown)))
    assert [w.name for w in api.writes[before:]] == [PARTS[shard_of(newest.start_ms)]]
    assert again.bytes_written < first.bytes_written / 4
    # The oldest buckets forgotten: nothing to write (the stored copies of them are older than any read).
    before = len(api.writes)
    forgotten = dataclasses.replace(window, buckets=(*window.buckets[24:-1], grown))
    assert store.save_remembered(forgotten).bytes_written == 0
    assert len(api.writes) == before
    loaded = _store(api, token).load()  # no positions yet: no checkpoint, whatever the parts hold
    assert loaded is None


def test_the_parts_read_back_are_what_was_saved_and_a_new_store_writes_none_until_they_change(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    window = _window(13)
    store.save_positions(_positions())
    store.save_remembered(window)
    again = _store(api, token)
    loaded = again.claim()
    assert loaded is not None and loaded.remembered == window
    before = len(api.writes)
    assert again.save_remembered(window).bytes_written == 0
    assert len(api.writes) == before


def test_a_failed_write_leaves_each_part_old_or_new_and_the_next_save_writes_the_rest(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    old = _window(13)
    store.save_positions(_positions())
    store.save_remembered(old)
    stored_before = _parts(api)
    new = Remembered(GROUP, PREFIX, tuple(BucketState(b.start_ms, b.hashes + _hashes(1, f"n{b.start_ms}-"),
                                                      b.events + 1, b.bytes) for b in old.buckets))
    writes = 0

    def fail_the_third(method: str, resource: str, name: str) -> None:
        nonlocal writes
        writes += 1
        if writes == 3:
            api.conflict_next_put = 99  # every later write conflicts: the save gives up part-way
    api.before_write = fail_the_third
    with pytest.raises(CheckpointError, match="still conflicting"):
        store.save_remembered(new)
    new_parts = split_remembered(new)
    for stored, before, after in zip(_parts(api), stored_before, new_parts, strict=True):
        assert stored in (before, after)
    assert 0 < sum(stored == after for stored, after in zip(_parts(api), new_parts, strict=True)) < len(PARTS)
    api.before_write, api.conflict_next_put = None, 0
    store.save_remembered(new)
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.remembered == new


def test_configmap_conflict_is_resolved_by_refetching_the_version(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    store.save_positions(_positions())
    api.conflict_next_put = 1
    store.save_positions(_positions(head=77_777))
    assert [m for m, _ in api.requests[-3:]] == ["PUT", "GET", "PUT"]
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.positions == _positions(head=77_777)


def test_configmap_that_keeps_conflicting_is_an_error_after_a_few_attempts(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.save_positions(_positions())
    api.conflict_next_put = 10
    with pytest.raises(CheckpointError, match="still conflicting"):
        store.save_positions(_positions(head=1))
    assert sum(1 for m, _ in api.requests if m == "PUT") == 1 + cp.CONFLICT_ATTEMPTS


def test_a_store_that_never_read_the_configmap_reads_it_before_its_first_write(kube) -> None:
    api, token = kube
    _store(api, token).save_positions(_positions(head=1))
    store = _store(api, token)  # never claimed: reads the version first
    store.save_positions(_positions(head=2))
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.positions == _positions(head=2)


def test_a_missing_configmap_the_forwarder_may_not_create_is_one_error_naming_it_and_what_to_do(kube) -> None:
    api, token = kube
    del api.objects[PARTS[3]]  # kubectl delete
    with pytest.raises(CheckpointError) as info:
        _store(api, token).claim()
    assert str(info.value) == (
        f"configmap {NS}/{PARTS[3]} does not exist, and this service account may not create it: the stack creates it "
        f"(deleted by hand? pulumi up --refresh creates it again), or create it empty: kubectl -n {NS} create "
        f"configmap {PARTS[3]}")
    assert api.denied == [("POST", f"/api/v1/namespaces/{NS}/configmaps")]
    # Deleted while running: the next write says the same.
    store = _store(api, token)
    api.create_like_the_stack(NS, NAME)
    store.claim()
    del api.objects[NAME]
    with pytest.raises(CheckpointError, match=f"configmap {NS}/{NAME} does not exist"):
        store.save_positions(_positions())


def test_where_the_forwarder_may_create_them_missing_configmaps_are_created_empty(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with FakeKubeApi(TOKEN) as api:  # kubectl proxy with an admin's rights: nothing created yet
        store = _store(api, token)
        assert store.claim() is None
        assert sorted(api.objects) == sorted((NAME, *PARTS))
        assert all(o["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "falco-eks-forwarder"}
                   for o in api.objects.values())
        store.save_positions(_positions())
        assert _store(api, token).load() == Checkpoint(_positions(), None)


def test_against_an_older_stack_the_refusal_names_the_configmap_and_what_grants_it(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(TOKEN)
    with FakeKubeApi(TOKEN, rbac=Rbac.older_stack("audit-forwarder-leader", NAME)) as api:
        with pytest.raises(CheckpointError) as info:
            _store(api, token).claim()
        assert str(info.value).startswith(f"GET configmap {NS}/{PARTS[0]}: HTTP 403 ")
        assert "the AuditForwarder component of the same version grants them" in str(info.value)


def test_configmap_reads_the_rotated_token_and_explains_rbac_failures(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.load()
    api.token = "token-2"
    token.write_text("token-2")
    store.save_positions(_positions())  # picked up without a restart
    api.token = "something-else"
    with pytest.raises(CheckpointError, match=f"HTTP 401.*{NAME}"):
        store.load()


def test_configmap_hashes_stay_within_the_object_limit(kube) -> None:
    api, token = kube
    store = _store(api, token, max_bytes=60_000)
    big = _window(2, per_bucket=1000)  # two minutes, 24,000 hashes in one or two parts: more than one can hold
    saved = store.save_remembered(big)
    assert saved.hashes_dropped > 0
    for name in PARTS:
        raw = (api.objects[name].get("binaryData") or {}).get("hashes.bin")
        assert raw is None or len(base64.b64decode(raw)) <= 60_000
    # The request carries base64: what the policy's byte budget counts.
    assert saved.bytes_written > 60_000 * 4 // 3


def test_parts_of_another_log_group_are_not_read_and_are_written_over(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    other = dataclasses.replace(_window(1), log_group="/aws/eks/other/cluster")
    store.save_remembered(other)
    store.save_positions(_positions())
    fresh = _store(api, token)
    loaded = fresh.claim()
    assert loaded is not None and loaded.remembered is None
    before = len(api.writes)
    ours = _window(1)  # the same buckets, this log group: written over
    fresh.save_remembered(ours)
    assert len(api.writes) > before
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.remembered == ours


def test_configmap_of_a_version_1_forwarder_is_read_for_its_positions(kube) -> None:
    api, token = kube
    v1 = {"version": 1, "log_group": GROUP, "stream_prefix": PREFIX, "head_ms": 7, "segments": []}
    api.store(NAME, {"metadata": {"name": NAME}, "binaryData": {
        "checkpoint.json.zlib": base64.b64encode(zlib.compress(json.dumps(v1).encode())).decode()}})
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.positions.positions == {"final": 7} and loaded.remembered is None


def test_configmap_store_knows_how_its_own_writes_look_in_the_audit_log(kube) -> None:
    api, token = kube
    assert _store(api, token).self_writes == SelfWrites(
        tuple(("configmaps", NS, n) for n in (NAME, *PARTS)), "system:serviceaccount:forwarder:audit-forwarder")
    assert service_account_username("not a jwt") is None
    assert service_account_username("a.bm90IGpzb24.c") is None


def test_configmap_needs_the_in_cluster_environment() -> None:
    with pytest.raises(CheckpointError, match="KUBERNETES_SERVICE_HOST"):
        ConfigMapCheckpointStore("ns", "name", environ={})
    store = ConfigMapCheckpointStore("ns", "name", environ={"KUBERNETES_SERVICE_HOST": "10.100.0.1",
                                                            "KUBERNETES_SERVICE_PORT": "443"}, ca_path=None)
    assert store.api.url == "https://10.100.0.1:443"
    v6 = ConfigMapCheckpointStore("ns", "name", environ={"KUBERNETES_SERVICE_HOST": "fd00::1"}, ca_path=None)
    assert v6.api.url == "https://[fd00::1]:443"


def test_a_missing_configmap_keeps_the_forwarder_waiting_with_one_line_naming_it_not_a_traceback_loop(
        kube, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import threading

    from fwd_fakes import FakeClock, RecordingClock

    from forwarder import pipeline
    from forwarder.config import CheckpointSpec, RunConfig
    from forwarder.metrics import Health, Metrics

    api, token = kube
    del api.objects[PARTS[2]]  # deleted by hand
    stop = threading.Event()

    def give_up_after_25(seconds: float, stop_event: threading.Event) -> bool:
        if len(clock.waits) >= 25:
            stop.set()
        return stop.is_set()

    clock = RecordingClock(FakeClock(), give_up_after_25)
    config = RunConfig(log_group=GROUP, falco_url="http://127.0.0.1:9/k8s-audit", metrics_port=0,
                       checkpoint=CheckpointSpec("configmap", namespace=NS, name=NAME))
    with caplog.at_level(logging.INFO, logger="forwarder"):
        code = pipeline.run(config, metrics=Metrics(), health=Health(), stop=stop, logs_client=object(),
                            store=_store(api, token), clock=clock)
    assert code == 0  # stopped while waiting for it: nothing was read
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.attempt for r in problems] == [1, 11, 21]  # type: ignore[attr-defined]
    assert all(r.getMessage() == "cannot read the checkpoint; retrying" and r.exc_info is None for r in problems)
    assert all(f"configmap {NS}/{PARTS[2]} does not exist" in r.error for r in problems)  # type: ignore[attr-defined]


def test_a_save_writes_the_newest_parts_first_up_to_a_minutes_budget_and_leaves_the_rest_for_the_next(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.claim()
    window = _window(14, per_bucket=1_000)  # every part 24,000 hashes, 256 KB in base64: 1.8 MB in all
    first = store.save_remembered(window)
    written = [w.name for w in api.writes]
    newest_first = [PARTS[shard_of(b.start_ms)] for b in reversed(window.buckets)]
    assert first.pending and cp.REMEMBERED_BYTES_PER_MINUTE <= first.bytes_written < 1_300_000
    assert written == list(dict.fromkeys(newest_first))[:len(written)]
    second = store.save_remembered(window)
    assert not second.pending and sorted(w.name for w in api.writes) == sorted(PARTS)
    assert store.save_remembered(window).bytes_written == 0
    loaded = _store(api, token).load()
    assert loaded is None  # (no positions saved here)
    assert sum(p.hash_count() for p in _parts(api) if p is not None) == window.hash_count()
