"""Where the forwarder remembers how far delivery got: a local file, or a Kubernetes ConfigMap.

The state (see ranges.py for what it means): the head position, and for every open segment
its bounds, the start time of its latest read whose events were all acknowledged, a ``dirty``
flag (a later read was not fully acknowledged, so the segment is read again right after a
restart) and the hashes of the events Falco acknowledged. Unacknowledged events are never in
it, so after a crash they are read and sent again; acknowledged ones are not.

It is saved after every acknowledged batch, so the file store keeps a snapshot plus an
append-only journal of what changed (new hashes only) and compacts when the journal grows;
the ConfigMap store writes the whole state, compressed, within the 1 MiB object limit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import ssl
import tempfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import urllib3

log = logging.getLogger("forwarder.checkpoint")

FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says where and why."""

    exit_code = 1


@dataclass(frozen=True, slots=True)
class SegmentState:
    start_ms: int
    end_ms: int
    confirmed_ms: int | None
    dirty: bool
    hashes: bytes
    """Packed little-endian uint64 hashes of acknowledged events (dedup.pack)."""


@dataclass(frozen=True)
class CheckpointState:
    log_group: str
    stream_prefix: str
    head_ms: int
    segments: tuple[SegmentState, ...] = field(default_factory=tuple)

    def hash_count(self) -> int:
        return sum(len(s.hashes) // 8 for s in self.segments)


class CheckpointStore(Protocol):
    def load(self) -> CheckpointState | None:
        """The saved state, or None when there is none yet."""
        ...

    def save(self, state: CheckpointState) -> None:
        """Persist ``state`` durably before returning; raises CheckpointError on failure."""
        ...


# --- encoding ---------------------------------------------------------------------------------


def _segment_json(seg: SegmentState, hashes: bytes | None = None) -> dict[str, Any]:
    data = seg.hashes if hashes is None else hashes
    return {
        "start_ms": seg.start_ms,
        "end_ms": seg.end_ms,
        "confirmed_ms": seg.confirmed_ms,
        "dirty": seg.dirty,
        "hashes": base64.b64encode(data).decode("ascii"),
    }


def to_json(state: CheckpointState) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "log_group": state.log_group,
        "stream_prefix": state.stream_prefix,
        "head_ms": state.head_ms,
        "segments": [_segment_json(s) for s in state.segments],
    }


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value


def _segment_from_json(raw: Mapping[str, Any]) -> SegmentState:
    confirmed = raw.get("confirmed_ms")
    hashes = base64.b64decode(raw.get("hashes", ""), validate=True)
    if len(hashes) % 8:
        raise ValueError("segment hashes are not a multiple of 8 bytes")
    return SegmentState(
        start_ms=_int(raw["start_ms"], "start_ms"),
        end_ms=_int(raw["end_ms"], "end_ms"),
        confirmed_ms=None if confirmed is None else _int(confirmed, "confirmed_ms"),
        dirty=bool(raw.get("dirty", True)),
        hashes=hashes,
    )


def from_json(raw: Mapping[str, Any]) -> CheckpointState:
    if raw.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported checkpoint version {raw.get('version')!r} (expected {FORMAT_VERSION})")
    return CheckpointState(
        log_group=str(raw["log_group"]),
        stream_prefix=str(raw["stream_prefix"]),
        head_ms=_int(raw["head_ms"], "head_ms"),
        segments=tuple(_segment_from_json(s) for s in raw.get("segments", [])),
    )


# --- file -------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk (POSIX).
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file: temp file in
    the same directory, fsync, rename, fsync the directory."""
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


class FileCheckpointStore:
    """A snapshot file (``PATH``) and a journal (``PATH.journal``) next to it.

    Each save appends one JSON line with a sequence number and only what changed since the
    previous save (new hashes per segment, bounds, flags, closed segments) and fsyncs it; when
    the journal outgrows ``compact_bytes`` (and the snapshot), a new snapshot is written
    atomically and the journal emptied. Loading replays the journal lines newer than the
    snapshot; a torn last line (crash mid-append) is ignored: it was never reported as saved.
    """

    def __init__(self, path: str | os.PathLike[str], *, compact_bytes: int = 4 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.compact_bytes = compact_bytes
        self._seq = 0
        self._snapshot_bytes = 0
        self._journal_bytes = 0
        # What the files hold per segment start: (end, confirmed, dirty, hashes length).
        self._written: dict[int, tuple[int, int | None, bool, int]] | None = None
        self._written_head: int | None = None

    def load(self) -> CheckpointState | None:
        if not self.path.parent.is_dir():
            raise CheckpointError(f"checkpoint directory {self.path.parent} does not exist")
        try:
            snapshot = self.path.read_bytes()
        except FileNotFoundError:
            snapshot = None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc}") from exc
        if snapshot is None:
            return None
        try:
            raw = json.loads(snapshot)
            state = from_json(raw)
            seq = _int(raw.get("seq", 0), "seq")
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path} is not a valid checkpoint ({exc}); move it away to start afresh"
            ) from exc
        self._snapshot_bytes = len(snapshot)
        state, seq, clean = self._replay(state, seq)
        self._seq = seq
        self._remember(state)
        if not clean:
            # A torn tail would glue itself to the next appended line: start over with a snapshot.
            self._written = None
        return state

    def _replay(self, state: CheckpointState, seq: int) -> tuple[CheckpointState, int, bool]:
        try:
            content = self.journal_path.read_bytes()
        except FileNotFoundError:
            return state, seq, True
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint journal {self.journal_path}: {exc}") from exc
        clean = not content or content.endswith(b"\n")
        lines = content.split(b"\n")
        self._journal_bytes = sum(len(line) + 1 for line in lines if line)
        segments = {s.start_ms: s for s in state.segments}
        head = state.head_ms
        for number, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record_seq = _int(record["seq"], "seq")
                if record_seq <= seq:
                    continue  # already folded into the snapshot
                for raw in record.get("segments", []):
                    delta = _segment_from_json(raw)
                    before = segments.get(delta.start_ms)
                    base = b"" if before is None or raw.get("reset") else before.hashes
                    segments[delta.start_ms] = replace(delta, hashes=base + delta.hashes)
                for start in record.get("removed", []):
                    segments.pop(_int(start, "removed"), None)
                head = _int(record["head_ms"], "head_ms")
                seq = record_seq
            except (ValueError, KeyError, TypeError) as exc:
                if number >= len(lines) - 2:
                    log.warning("ignoring a torn last checkpoint journal line", extra={"path": str(self.journal_path)})
                    clean = False
                    break
                raise CheckpointError(f"checkpoint journal {self.journal_path} line {number + 1}: {exc}") from exc
        ordered = tuple(sorted(segments.values(), key=lambda s: s.start_ms))
        return replace(state, head_ms=head, segments=ordered), seq, clean

    def _remember(self, state: CheckpointState) -> None:
        self._written = {s.start_ms: (s.end_ms, s.confirmed_ms, s.dirty, len(s.hashes)) for s in state.segments}
        self._written_head = state.head_ms

    def save(self, state: CheckpointState) -> None:
        try:
            if self._written is None or self._journal_bytes > max(self.compact_bytes, self._snapshot_bytes):
                self._write_snapshot(state)
            else:
                self._append(state)
        except OSError as exc:
            # Unknown what reached the disk: the next save writes a full snapshot.
            self._written = None
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from exc

    def _write_snapshot(self, state: CheckpointState) -> None:
        self._seq += 1
        doc = to_json(state)
        doc["seq"] = self._seq
        data = json.dumps(doc, separators=(",", ":")).encode()
        atomic_write(self.path, data)
        # Lines up to seq are now in the snapshot and skipped on load even if this truncation is lost.
        with open(self.journal_path, "wb") as handle:
            handle.flush()
            os.fsync(handle.fileno())
        self._snapshot_bytes = len(data)
        self._journal_bytes = 0
        self._remember(state)

    def _append(self, state: CheckpointState) -> None:
        assert self._written is not None
        changed: list[dict[str, Any]] = []
        for seg in state.segments:
            before = self._written.get(seg.start_ms)
            if before is not None and before[3] <= len(seg.hashes) and before[0] == seg.end_ms:
                added = seg.hashes[before[3]:]
                if not added and before[1:3] == (seg.confirmed_ms, seg.dirty):
                    continue
                changed.append(_segment_json(seg, added))
            else:
                entry = _segment_json(seg)
                entry["reset"] = True
                changed.append(entry)
        present = {s.start_ms for s in state.segments}
        removed = [start for start in self._written if start not in present]
        if not changed and not removed and state.head_ms == self._written_head:
            return
        self._seq += 1
        record = {"seq": self._seq, "head_ms": state.head_ms, "segments": changed, "removed": removed}
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._journal_bytes += len(line)
        self._remember(state)


# --- Kubernetes ConfigMap -------------------------------------------------------------------------

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CONFIGMAP_KEY = "checkpoint.json.zlib"
# A ConfigMap (like any object) must stay under 1 MiB in etcd, metadata included.
DEFAULT_CONFIGMAP_MAX_BYTES = 900 * 1024


def _encode_for_configmap(state: CheckpointState) -> str:
    raw = json.dumps(to_json(state), separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def fit_configmap(state: CheckpointState, max_bytes: int) -> tuple[str, int]:
    """The encoded state, dropping the dedup hashes of the oldest segments until it fits.

    What is given up: a segment without hashes is marked dirty, so after a restart it is read
    again at once and ALL its events are sent again: possible duplicates, never loss.
    Returns (encoded, number of segments whose hashes were dropped).
    """
    encoded = _encode_for_configmap(state)
    if len(encoded) <= max_bytes:
        return encoded, 0
    segments = list(state.segments)
    dropped = 0
    # Drop by halves of what is left, so a very large state takes a few encodes, not one per segment.
    while len(encoded) > max_bytes:
        with_hashes = [i for i, s in enumerate(segments) if s.hashes]
        if not with_hashes:
            raise CheckpointError(
                f"checkpoint does not fit in a ConfigMap ({len(encoded)} > {max_bytes} bytes) even without hashes"
            )
        batch = with_hashes[: max(1, len(with_hashes) // 2)] if dropped else with_hashes[:1]
        for i in batch:
            segments[i] = replace(segments[i], hashes=b"", dirty=True)
            dropped += 1
        encoded = _encode_for_configmap(replace(state, segments=tuple(segments)))
    return encoded, dropped


class ConfigMapCheckpointStore:
    """The state in one ConfigMap, through the pod's service account (in-cluster API).

    Needs RBAC ``get``, ``create`` and ``update`` on ``configmaps`` in the namespace (``get``
    and ``update`` can be limited to this name with resourceNames; ``create`` cannot).
    Optimistic concurrency: updates carry the resourceVersion last seen; on 409 Conflict the
    current version is fetched and the write repeated (this forwarder is the only writer).
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        api_url: str | None = None,
        token_path: str = f"{SERVICE_ACCOUNT_DIR}/token",
        ca_path: str | None = f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        environ: Mapping[str, str] | None = None,
        http: urllib3.PoolManager | None = None,
        timeout_seconds: float = 10.0,
        max_bytes: int = DEFAULT_CONFIGMAP_MAX_BYTES,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.max_bytes = max_bytes
        self._token_path = token_path
        if api_url is None:
            env = os.environ if environ is None else environ
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise CheckpointError(
                    f"configmap:{namespace}/{name}: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)"
                )
            api_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        self.api_url = api_url.rstrip("/")
        if http is None:
            kwargs: dict[str, Any] = {"retries": False, "timeout": urllib3.Timeout(total=timeout_seconds)}
            if self.api_url.startswith("https://"):
                kwargs["cert_reqs"] = ssl.CERT_REQUIRED
                if ca_path is not None:
                    kwargs["ca_certs"] = ca_path
            http = urllib3.PoolManager(num_pools=1, maxsize=1, **kwargs)
        self._http = http
        self._resource_version: str | None = None
        self._warned_drop = False
        self.dropped_segments = 0

    @property
    def _collection_url(self) -> str:
        return f"{self.api_url}/api/v1/namespaces/{quote(self.namespace, safe='')}/configmaps"

    @property
    def _object_url(self) -> str:
        return f"{self._collection_url}/{quote(self.name, safe='')}"

    def _headers(self) -> dict[str, str]:
        # Read on every request: projected service account tokens are rotated by the kubelet.
        try:
            token = Path(self._token_path).read_text().strip()
        except OSError as exc:
            raise CheckpointError(f"cannot read the service account token {self._token_path}: {exc}") from exc
        return {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"}

    def _request(self, method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.request(
                method, url, body=None if body is None else json.dumps(body).encode(), headers=self._headers()
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CheckpointError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        try:
            doc = json.loads(response.data) if response.data else {}
        except ValueError:
            doc = {}
        return response.status, doc if isinstance(doc, dict) else {}

    def _fail(self, method: str, status: int, doc: Mapping[str, Any]) -> CheckpointError:
        hint = ""
        if status in (401, 403):
            hint = " (the service account needs get, create and update on configmaps in this namespace)"
        return CheckpointError(
            f"{method} configmap {self.namespace}/{self.name}: HTTP {status} {doc.get('message', '')}{hint}".rstrip()
        )

    def load(self) -> CheckpointState | None:
        status, doc = self._request("GET", self._object_url)
        if status == 404:
            self._resource_version = None
            return None
        if status != 200:
            raise self._fail("GET", status, doc)
        self._resource_version = doc.get("metadata", {}).get("resourceVersion")
        encoded = (doc.get("binaryData") or {}).get(CONFIGMAP_KEY)
        if encoded is None:
            return None
        try:
            return from_json(json.loads(zlib.decompress(base64.b64decode(encoded))))
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            raise CheckpointError(
                f"configmap {self.namespace}/{self.name} key {CONFIGMAP_KEY} is not a valid checkpoint ({exc}); "
                "delete the ConfigMap to start afresh"
            ) from exc

    def _body(self, encoded: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "falco-eks-forwarder"},
        }
        if self._resource_version is not None:
            metadata["resourceVersion"] = self._resource_version
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "binaryData": {CONFIGMAP_KEY: encoded}}

    def save(self, state: CheckpointState) -> None:
        encoded, dropped = fit_configmap(state, self.max_bytes)
        self.dropped_segments = dropped
        if dropped and not self._warned_drop:
            self._warned_drop = True
            log.warning(
                "checkpoint too large for a ConfigMap: dedup hashes of the oldest segments left out; after a restart "
                "their events may be sent again (never lost). Use a file checkpoint for high event rates.",
                extra={"segments": dropped, "max_bytes": self.max_bytes},
            )
        for _attempt in range(4):
            if self._resource_version is None:
                status, doc = self._request("POST", self._collection_url, self._body(encoded))
                if status == 409:  # created meanwhile (or our earlier load saw none): fetch its version
                    self._refresh_version()
                    continue
                method = "POST"
            else:
                status, doc = self._request("PUT", self._object_url, self._body(encoded))
                if status == 409:  # someone else wrote it: take the current version, write ours again
                    self._refresh_version()
                    continue
                if status == 404:  # deleted under us: create it again
                    self._resource_version = None
                    continue
                method = "PUT"
            if status in (200, 201):
                self._resource_version = doc.get("metadata", {}).get("resourceVersion")
                return
            raise self._fail(method, status, doc)
        raise CheckpointError(f"configmap {self.namespace}/{self.name}: still conflicting after several attempts")

    def _refresh_version(self) -> None:
        status, doc = self._request("GET", self._object_url)
        if status == 404:
            self._resource_version = None
            return
        if status != 200:
            raise self._fail("GET", status, doc)
        self._resource_version = doc.get("metadata", {}).get("resourceVersion")


def open_store(kind: str, *, path: str | None = None, namespace: str | None = None, name: str | None = None
               ) -> CheckpointStore:
    """The store for a ``--checkpoint`` spec (``file`` or ``configmap``)."""
    if kind == "file":
        if not path:
            raise CheckpointError("file checkpoint needs a path")
        return FileCheckpointStore(path)
    if kind == "configmap":
        if not namespace or not name:
            raise CheckpointError("configmap checkpoint needs NAMESPACE/NAME")
        return ConfigMapCheckpointStore(namespace, name)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")
