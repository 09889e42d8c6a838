"""forwarder/checkpoint.py: the file store (snapshot + journal) and the ConfigMap store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from forwarder import checkpoint as cp
from forwarder.checkpoint import (
    CheckpointError,
    CheckpointState,
    ConfigMapCheckpointStore,
    FileCheckpointStore,
    SegmentState,
    fit_configmap,
)
from forwarder.dedup import event_hash, pack


def _hashes(n: int, salt: str = "") -> bytes:
    return pack(event_hash("kube-apiserver-audit-a", f"{salt}{i}") for i in range(n))


def _state(head: int = 10_000, segments: tuple[SegmentState, ...] | None = None) -> CheckpointState:
    if segments is None:
        segments = (
            SegmentState(0, 1999, 5_000, False, _hashes(3, "a")),
            SegmentState(2000, 3999, None, True, _hashes(2, "b")),
        )
    return CheckpointState("/aws/eks/lab/cluster", "kube-apiserver-audit", head, segments)


# --- file store ---------------------------------------------------------------------------------


def test_file_store_round_trip(tmp_path: Path) -> None:
    store = FileCheckpointStore(tmp_path / "cp.json")
    assert store.load() is None
    state = _state()
    store.save(state)
    assert FileCheckpointStore(tmp_path / "cp.json").load() == state


def test_file_store_appends_only_changes_and_replays_them(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = FileCheckpointStore(path)
    store.load()
    state = _state()
    store.save(state)  # first save: a snapshot
    snapshot = path.read_bytes()
    grown = replace(
        state,
        head_ms=12_000,
        segments=(
            state.segments[0],
            replace(state.segments[1], hashes=state.segments[1].hashes + _hashes(4, "c"), dirty=False,
                    confirmed_ms=7_000),
            SegmentState(4000, 5999, None, True, _hashes(1, "d")),
        ),
    )
    store.save(grown)
    closed = replace(grown, segments=grown.segments[1:])
    store.save(closed)
    assert path.read_bytes() == snapshot  # the snapshot was not rewritten
    lines = store.journal_path.read_bytes().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    # Only the new hashes of segment 2000 travel, not the ones already saved.
    changed = {s["start_ms"]: s for s in first["segments"]}
    assert set(changed) == {2000, 4000}
    assert len(cp.base64.b64decode(changed[2000]["hashes"])) == 4 * 8
    assert json.loads(lines[1])["removed"] == [0]
    assert FileCheckpointStore(path).load() == closed


def test_file_store_compacts_a_long_journal(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = FileCheckpointStore(path, compact_bytes=2_000)
    store.load()
    state = _state()
    for i in range(40):
        segs = list(state.segments)
        segs[1] = replace(segs[1], hashes=segs[1].hashes + _hashes(1, f"x{i}"))
        state = replace(state, head_ms=state.head_ms + 1, segments=tuple(segs))
        store.save(state)
    assert store.journal_path.stat().st_size <= 2_000 + 1_000
    assert FileCheckpointStore(path).load() == state


def test_file_store_ignores_a_torn_last_journal_line_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    store = FileCheckpointStore(path)
    store.load()
    state = _state()
    store.save(state)
    later = replace(state, head_ms=20_000)
    store.save(later)
    with open(store.journal_path, "ab") as handle:
        handle.write(b'{"seq": 99, "head_ms": 3')  # a crash in the middle of an append
    reloaded = FileCheckpointStore(path)
    assert reloaded.load() == later
    newest = replace(later, head_ms=30_000)
    reloaded.save(newest)  # must not glue itself to the torn line
    assert FileCheckpointStore(path).load() == newest


def test_file_store_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cp.json"
    store = FileCheckpointStore(path)
    store.load()
    store.save(_state())
    before = path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(cp.os, "replace", crash)
    fresh = FileCheckpointStore(path)  # never loaded: its first save writes a snapshot
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        fresh.save(_state(head=99_999))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json", "cp.json.journal"]


def test_file_store_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=str(path)):
        FileCheckpointStore(path).load()
    with pytest.raises(CheckpointError, match="does not exist"):
        FileCheckpointStore(tmp_path / "missing" / "cp.json").load()


# --- ConfigMap store ----------------------------------------------------------------------------


class FakeKubeApi:
    """Just enough of the Kubernetes API for one namespace's ConfigMaps, with bearer-token checks
    and resourceVersion conflicts like the real API server."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.objects: dict[str, dict[str, Any]] = {}
        self.version = 100
        self.requests: list[tuple[str, str]] = []
        self.conflict_next_put = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _reply(self, status: int, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                api.requests.append((self.command, self.path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                if self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._reply(401, {"kind": "Status", "message": "Unauthorized"})
                    return
                prefix = "/api/v1/namespaces/forwarder/configmaps"
                if not self.path.startswith(prefix):
                    self._reply(404, {"kind": "Status", "message": "no such path"})
                    return
                name = self.path[len(prefix) + 1:]
                if self.command == "GET":
                    if name in api.objects:
                        self._reply(200, api.objects[name])
                    else:
                        self._reply(404, {"kind": "Status", "reason": "NotFound", "message": "not found"})
                elif self.command == "POST":
                    assert body is not None
                    new = body["metadata"]["name"]
                    if new in api.objects:
                        self._reply(409, {"kind": "Status", "reason": "AlreadyExists", "message": "exists"})
                        return
                    api.store(new, body)
                    self._reply(201, api.objects[new])
                elif self.command == "PUT":
                    assert body is not None
                    if name not in api.objects:
                        self._reply(404, {"kind": "Status", "reason": "NotFound", "message": "not found"})
                        return
                    if api.conflict_next_put:
                        api.conflict_next_put -= 1
                        api.version += 1  # someone else wrote it meanwhile
                        api.objects[name]["metadata"]["resourceVersion"] = str(api.version)
                    current = api.objects[name]["metadata"]["resourceVersion"]
                    if body["metadata"].get("resourceVersion") != current:
                        self._reply(409, {"kind": "Status", "reason": "Conflict", "message": "modified"})
                        return
                    api.store(name, body)
                    self._reply(200, api.objects[name])

            do_GET = do_POST = do_PUT = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def store(self, name: str, body: dict[str, Any]) -> None:
        self.version += 1
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[name] = body

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKubeApi, Path]]:
    token = tmp_path / "token"
    token.write_text("token-1\n")
    api = FakeKubeApi("token-1")
    try:
        yield api, token
    finally:
        api.close()


def _store(api: FakeKubeApi, token: Path, **kwargs: Any) -> ConfigMapCheckpointStore:
    return ConfigMapCheckpointStore("forwarder", "audit-checkpoint", api_url=api.url, token_path=str(token),
                                    ca_path=None, **kwargs)


def test_configmap_missing_then_created_then_updated_with_resource_version(kube) -> None:
    api, token = kube
    store = _store(api, token)
    assert store.load() is None
    state = _state()
    store.save(state)
    assert [m for m, _ in api.requests] == ["GET", "POST"]
    created_version = api.objects["audit-checkpoint"]["metadata"]["resourceVersion"]
    later = replace(state, head_ms=50_000)
    store.save(later)
    assert api.requests[-1][0] == "PUT"
    assert api.objects["audit-checkpoint"]["metadata"]["resourceVersion"] != created_version
    assert api.objects["audit-checkpoint"]["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert _store(api, token).load() == later


def test_configmap_conflict_is_resolved_by_refetching_the_version(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.load()
    store.save(_state())
    api.conflict_next_put = 1
    newest = _state(head=77_777)
    store.save(newest)
    assert [m for m, _ in api.requests[-3:]] == ["PUT", "GET", "PUT"]
    assert _store(api, token).load() == newest


def test_configmap_existing_object_is_updated_when_created_elsewhere(kube) -> None:
    api, token = kube
    other = _store(api, token)
    other.load()
    other.save(_state(head=1))
    store = _store(api, token)  # never loaded: tries to create, gets AlreadyExists
    store.save(_state(head=2))
    assert _store(api, token).load() == _state(head=2)


def test_configmap_reads_the_rotated_token_and_explains_rbac_failures(kube) -> None:
    api, token = kube
    store = _store(api, token)
    store.load()
    api.token = "token-2"
    token.write_text("token-2")
    store.save(_state())  # picked up without a restart
    api.token = "something-else"
    with pytest.raises(CheckpointError, match="HTTP 401"):
        store.load()


def test_configmap_state_too_large_drops_oldest_hashes_and_marks_them_dirty(kube) -> None:
    api, token = kube
    big = tuple(SegmentState(i * 2000, i * 2000 + 1999, i * 2000 + 700_000, False, _hashes(5_000, f"s{i}"))
                for i in range(20))
    state = _state(segments=big)
    encoded, dropped = fit_configmap(state, 600 * 1024)
    assert len(encoded) <= 600 * 1024 and dropped > 0
    store = _store(api, token, max_bytes=600 * 1024)
    store.load()
    store.save(state)
    loaded = _store(api, token).load()
    assert loaded is not None
    kept = [s for s in loaded.segments if s.hashes]
    lost = [s for s in loaded.segments if not s.hashes]
    # Given up: the oldest segments' dedup hashes (their events may be sent again), never a segment.
    assert len(loaded.segments) == 20 and lost and kept
    assert max(s.start_ms for s in lost) < min(s.start_ms for s in kept)
    assert all(s.dirty for s in lost)
    assert kept == list(big[len(lost):])


def test_configmap_needs_the_in_cluster_environment() -> None:
    with pytest.raises(CheckpointError, match="KUBERNETES_SERVICE_HOST"):
        ConfigMapCheckpointStore("ns", "name", environ={})
    store = ConfigMapCheckpointStore("ns", "name", environ={"KUBERNETES_SERVICE_HOST": "10.100.0.1",
                                                            "KUBERNETES_SERVICE_PORT": "443"}, ca_path=None)
    assert store.api_url == "https://10.100.0.1:443"
    v6 = ConfigMapCheckpointStore("ns", "name", environ={"KUBERNETES_SERVICE_HOST": "fd00::1"}, ca_path=None)
    assert v6.api_url == "https://[fd00::1]:443"
