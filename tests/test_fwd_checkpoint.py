"""forwarder/checkpoint.py and checkpoint_codec.py: the two parts, their encodings, the file and ConfigMap stores."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fwd_fakes import FakeKubeApi

from forwarder import checkpoint as cp
from forwarder.checkpoint import (
    CheckpointError,
    ConfigMapCheckpointStore,
    FileCheckpointStore,
    SelfWrites,
)
from forwarder.checkpoint_codec import (
    Checkpoint,
    CodecError,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    encode_remembered,
)
from forwarder.dedup import event_hash, pack
from forwarder.kube import service_account_username
from forwarder.ledger import BucketState

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
    from forwarder.checkpoint_codec import encode_positions

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


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, Path]]:
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    api = FakeKubeApi(TOKEN)
    try:
        yield api, token
    finally:
        api.close()


def _store(api: FakeKubeApi, token: Path, **kwargs: Any) -> ConfigMapCheckpointStore:
    return ConfigMapCheckpointStore("forwarder", "audit-checkpoint", api_url=api.url, token_path=str(token),
                                    ca_path=None, **kwargs)


def test_configmaps_are_created_then_updated_with_their_resource_version(kube) -> None:
    api, token = kube
    store = _store(api, token)
    assert store.load() is None
    store.save_positions(_positions())
    store.save_remembered(_remembered())
    assert [m for m, _ in api.requests] == ["GET", "POST", "POST"]
    created = {n: o["metadata"]["resourceVersion"] for n, o in api.objects.items()}
    store.save_positions(_positions(head=50_000))
    assert api.requests[-1][0] == "PUT"
    assert api.objects["audit-checkpoint"]["metadata"]["resourceVersion"] != created["audit-checkpoint"]
    # Positions stay readable with kubectl; the hashes are binary in their own object.
    assert json.loads(api.objects["audit-checkpoint"]["data"]["positions.json"])["positions"]["head"] == 50_000
    assert set(api.objects["audit-checkpoint-hashes"]["binaryData"]) == {"hashes.bin"}
    assert api.objects["audit-checkpoint"]["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert _store(api, token).load() == Checkpoint(_positions(head=50_000), _remembered())


def test_configmap_conflict_is_resolved_by_refetching_the_version(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.load()
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
    assert sum(1 for m, _ in api.requests if m == "PUT") == cp.CONFLICT_ATTEMPTS


def test_configmap_existing_object_is_updated_when_created_elsewhere(kube) -> None:
    api, token = kube
    _store(api, token).save_positions(_positions(head=1))
    store = _store(api, token)  # never loaded: tries to create, gets AlreadyExists
    store.save_positions(_positions(head=2))
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.positions == _positions(head=2)


def test_configmap_reads_the_rotated_token_and_explains_rbac_failures(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.load()
    api.token = "token-2"
    token.write_text("token-2")
    store.save_positions(_positions())  # picked up without a restart
    api.token = "something-else"
    with pytest.raises(CheckpointError, match="HTTP 401.*audit-checkpoint-hashes"):
        store.load()


def test_configmap_hashes_stay_within_the_object_limit(kube) -> None:
    api, token = kube
    store = _store(api, token, max_bytes=60_000)
    saved = store.save_remembered(_remembered(buckets=20, per_bucket=1000))
    assert saved.hashes_dropped > 0
    stored = base64.b64decode(api.objects["audit-checkpoint-hashes"]["binaryData"]["hashes.bin"])
    assert len(stored) <= 60_000
    # The request carries base64: what the policy's byte budget counts.
    assert saved.bytes_written > len(stored) * 4 // 3


def test_configmap_of_a_version_1_forwarder_is_read_for_its_positions(kube) -> None:
    api, token = kube
    v1 = {"version": 1, "log_group": GROUP, "stream_prefix": PREFIX, "head_ms": 7, "segments": []}
    api.store("audit-checkpoint", {"metadata": {"name": "audit-checkpoint"}, "binaryData": {
        "checkpoint.json.zlib": base64.b64encode(zlib.compress(json.dumps(v1).encode())).decode()}})
    loaded = _store(api, token).load()
    assert loaded is not None and loaded.positions.positions == {"final": 7} and loaded.remembered is None


def test_configmap_store_knows_how_its_own_writes_look_in_the_audit_log(kube) -> None:
    api, token = kube
    assert _store(api, token).self_writes == SelfWrites(
        (("configmaps", "forwarder", "audit-checkpoint"), ("configmaps", "forwarder", "audit-checkpoint-hashes")),
        "system:serviceaccount:forwarder:audit-forwarder")
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
