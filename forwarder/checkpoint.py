"""Where the checkpoint lives: two files, or two Kubernetes ConfigMaps. What it holds: checkpoint_codec.py;
when it is saved: checkpoint_policy.py.

Two parts, stored apart because they are saved at different cadences: the positions (small, what a
restart needs to lose nothing) and the remembered hashes (up to about a megabyte, only against
duplicates after a restart). Each save replaces one part atomically: a crash leaves the old or the
new version of it, never a mix.

- ``file:PATH``: ``PATH`` (positions, JSON) and ``PATH.hashes``; written to a temporary file, fsynced,
  renamed, directory fsynced.
- ``configmap:NAMESPACE/NAME``: ConfigMap ``NAME`` (key ``positions.json``, readable with kubectl) and
  ``NAME-hashes`` (binary key ``hashes.bin``), through the pod's service account, with optimistic
  concurrency (resourceVersion), fenced by the Lease when replicas share it. On EKS every write is itself
  an audit event in the log the forwarder reads: ``self_writes`` says what those look like, so the policy
  can tell them apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .checkpoint_codec import (
    Checkpoint,
    CodecError,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    encode_positions,
    encode_remembered,
)
from .clock import Clock, SystemClock
from .kube import SERVICE_ACCOUNT_DIR, KubeApi, KubeError
from .retry import Backoff, Retrier

log = logging.getLogger("forwarder.checkpoint")


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says where and why."""

    exit_code = 1


@dataclass(frozen=True)
class SelfWrites:
    """How the forwarder's own requests (checkpoint writes, the Lease) appear in the Kubernetes audit log
    (checkpoint_policy.py)."""

    objects: tuple[tuple[str, str, str], ...]
    """(resource, namespace, name), e.g. ("configmaps", "falco-forwarder", "audit-forwarder-checkpoint")."""
    username: str | None
    """``system:serviceaccount:<ns>:<sa>`` when known (from the service account token), else any user."""


@dataclass(frozen=True)
class Saved:
    bytes_written: int
    """What went to the store (request body or file size)."""
    hashes_dropped: int = 0
    """Remembered hashes left out so the part fits (oldest first)."""


class CheckpointStore(Protocol):
    self_writes: SelfWrites | None
    remembered_bytes_per_minute: int | None
    """At most this many bytes a minute for the remembered hashes (the policy spaces their saves), or None."""

    def load(self) -> Checkpoint | None:
        """The saved checkpoint, or None when there is none yet."""
        ...

    def claim(self) -> Checkpoint | None:
        """``load``, and for a store fenced by a Lease, make the checkpoint this holder's (see ConfigMaps)."""
        ...

    def save_positions(self, positions: Positions) -> Saved: ...

    def save_remembered(self, remembered: Remembered) -> Saved: ...


def _decode(positions: bytes, remembered: bytes | None, where: str, hint: str) -> Checkpoint:
    try:
        decoded = decode_positions(positions)
    except CodecError as exc:
        raise CheckpointError(f"{where} is not a valid checkpoint ({exc}); {hint}") from exc
    hashes: Remembered | None = None
    if remembered:
        try:
            hashes = decode_remembered(remembered)
        except CodecError as exc:
            # Only duplicates depend on it: say so and go on without.
            log.warning("remembered hashes unreadable; events of the open window may be sent again",
                        extra={"where": where, "error": str(exc)})
        if hashes is not None and (hashes.log_group, hashes.stream_prefix) != (decoded.log_group,
                                                                                 decoded.stream_prefix):
            hashes = None
    return Checkpoint(decoded, hashes)


# --- files -------------------------------------------------------------------------------------------------


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
    """``PATH`` holds the positions, ``PATH.hashes`` the remembered hashes."""

    self_writes: SelfWrites | None = None
    remembered_bytes_per_minute: int | None = None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.hashes_path = self.path.with_name(self.path.name + ".hashes")

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc

    def load(self) -> Checkpoint | None:
        if not self.path.parent.is_dir():
            raise CheckpointError(f"checkpoint directory {self.path.parent} does not exist")
        positions = self._read(self.path)
        if positions is None:
            return None
        return _decode(positions, self._read(self.hashes_path), f"checkpoint {self.path}",
                       "move it away to start afresh")

    def claim(self) -> Checkpoint | None:
        return self.load()

    def _write(self, path: Path, data: bytes) -> Saved:
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
        return Saved(len(data))

    def save_positions(self, positions: Positions) -> Saved:
        return self._write(self.path, encode_positions(positions))

    def save_remembered(self, remembered: Remembered) -> Saved:
        data, _, _ = encode_remembered(remembered)
        return self._write(self.hashes_path, data)


# --- Kubernetes ConfigMaps ------------------------------------------------------------------------------

POSITIONS_KEY = "positions.json"
HASHES_KEY = "hashes.bin"
HASHES_SUFFIX = "-hashes"
V1_KEY = "checkpoint.json.zlib"
"""The single key of the version 1 checkpoint (read for its positions on upgrade)."""
TERM_ANNOTATION = "falco-eks-forwarder/lease-term"
HOLDER_ANNOTATION = "falco-eks-forwarder/lease-holder"
# A ConfigMap's data must stay under 1 MiB (the API server's check on data + binaryData); leave room.
DEFAULT_CONFIGMAP_MAX_BYTES = 900 * 1024
# The remembered hashes are saved so that their requests stay under this many bytes a minute on average.
REMEMBERED_BYTES_PER_MINUTE = 900 * 1024
CONFLICT_RETRY = Backoff(initial_seconds=0.05, max_seconds=1.0)
CONFLICT_ATTEMPTS = 4


class FencedError(CheckpointError):
    """The checkpoint belongs to a newer holder of the Lease (or this replica no longer holds it): stop."""


@dataclass(frozen=True)
class Term:
    """A tenure of the Lease: its transitions counter when this replica acquired it, and this replica's name."""

    number: int
    holder: str


Fence = Callable[[], Term]
"""Called before every write: the current term, or FencedError when this replica may not write."""


def term_of(doc: Mapping[str, Any] | None) -> Term | None:
    """The lease term a checkpoint ConfigMap was last written in (None: written without a lease)."""
    annotations = ((doc or {}).get("metadata") or {}).get("annotations") or {}
    try:
        return Term(int(annotations[TERM_ANNOTATION]), str(annotations.get(HOLDER_ANNOTATION, "")))
    except (KeyError, TypeError, ValueError):
        return None


class _ConflictError(Exception):
    pass


class ConfigMapCheckpointStore:
    """The two parts in two ConfigMaps, through the pod's service account (kube.py).

    Needs RBAC ``get`` and ``update`` on ``configmaps`` named NAME and NAME-hashes, and ``create`` on
    ``configmaps`` in the namespace (RBAC cannot limit ``create`` by name). Updates carry the
    resourceVersion last seen.

    Without ``fence`` this forwarder is the only writer: on 409 Conflict the current version is fetched
    and the write repeated. With ``fence`` (a Lease, lease.py) several replicas share the checkpoint and it
    is fenced: every write carries the writer's term (the Lease's transitions counter when it acquired it)
    in an annotation, a new holder first rewrites both ConfigMaps in its term (``claim``), and a write that
    conflicts with one of a newer term raises FencedError instead of being repeated. So once the new
    holder has claimed the checkpoint, nothing a deposed holder sends can overwrite it, however late it
    arrives (a pause, a partition, a process stopped between its check and its write).
    """

    remembered_bytes_per_minute: int | None = REMEMBERED_BYTES_PER_MINUTE

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        api: KubeApi | None = None,
        api_url: str | None = None,
        token_path: str = f"{SERVICE_ACCOUNT_DIR}/token",
        ca_path: str | None = f"{SERVICE_ACCOUNT_DIR}/ca.crt",
        environ: Mapping[str, str] | None = None,
        timeout_seconds: float = 10.0,
        max_bytes: int = DEFAULT_CONFIGMAP_MAX_BYTES,
        clock: Clock | None = None,
        fence: Fence | None = None,
        also_own: tuple[tuple[str, str, str], ...] = (),
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.hashes_name = name + HASHES_SUFFIX
        self.max_bytes = max_bytes
        self._clock = clock if clock is not None else SystemClock()
        self.fence = fence
        if api is None:
            try:
                api = KubeApi(api_url, token_path=token_path, ca_path=ca_path, environ=environ,
                              timeout_seconds=timeout_seconds)
            except KubeError as exc:
                raise CheckpointError(f"configmap:{namespace}/{name}: {exc}") from exc
        self.api = api
        self._versions: dict[str, str | None] = {}
        objects = (("configmaps", namespace, name), ("configmaps", namespace, self.hashes_name), *also_own)
        self.self_writes: SelfWrites | None = SelfWrites(objects, api.username)

    def _path(self, name: str | None = None) -> str:
        return self.api.path("api/v1", self.namespace, "configmaps", name)

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        try:
            return self.api.request(method, path, body)
        except KubeError as exc:
            raise CheckpointError(str(exc)) from exc

    def _fail(self, method: str, name: str, status: int, doc: Mapping[str, Any]) -> CheckpointError:
        hint = ""
        if status in (401, 403):
            hint = (f" (the service account needs get and update on configmaps {self.name} and {self.hashes_name}, "
                    "and create on configmaps, in this namespace)")
        return CheckpointError(
            f"{method} configmap {self.namespace}/{name}: HTTP {status} {doc.get('message', '')}{hint}".rstrip()
        )

    def _get(self, name: str) -> dict[str, Any] | None:
        status, doc = self._request("GET", self._path(name))
        if status == 404:
            self._versions[name] = None
            return None
        if status != 200:
            raise self._fail("GET", name, status, doc)
        self._versions[name] = doc.get("metadata", {}).get("resourceVersion")
        return doc

    def _decode(self, doc: Mapping[str, Any] | None, hashes_doc: Mapping[str, Any] | None) -> Checkpoint | None:
        if doc is None:
            return None
        data, binary = doc.get("data") or {}, doc.get("binaryData") or {}
        where = f"configmap {self.namespace}/{self.name}"
        hint = "delete the ConfigMap to start afresh"
        if POSITIONS_KEY in data:
            positions = str(data[POSITIONS_KEY]).encode()
        elif V1_KEY in binary:
            try:
                positions = zlib.decompress(base64.b64decode(binary[V1_KEY]))
            except (ValueError, binascii.Error, zlib.error) as exc:
                raise CheckpointError(f"{where} is not a valid checkpoint ({exc}); {hint}") from exc
        else:
            return None
        hashes = None
        if hashes_doc is not None and HASHES_KEY in (hashes_doc.get("binaryData") or {}):
            try:
                hashes = base64.b64decode(hashes_doc["binaryData"][HASHES_KEY])
            except (ValueError, binascii.Error):
                hashes = None
        return _decode(positions, hashes, where, hint)

    def load(self) -> Checkpoint | None:
        doc = self._get(self.name)
        return None if doc is None else self._decode(doc, self._get(self.hashes_name))

    def claim(self) -> Checkpoint | None:
        """Load the checkpoint and rewrite both ConfigMaps, unchanged, in this holder's term: from then on a
        deposed holder's writes fail. If one of its writes slips in first, load and claim again."""
        if self.fence is None:
            return self.load()
        for _ in range(CONFLICT_ATTEMPTS):
            docs = {name: self._get(name) for name in (self.name, self.hashes_name)}
            try:
                for name, doc in docs.items():
                    if doc is not None:
                        self._write(name, doc.get("data") or {}, doc.get("binaryData") or {}, claiming=True)
            except _ConflictError:
                continue
            return self._decode(docs[self.name], docs[self.hashes_name])
        raise CheckpointError(f"configmap {self.namespace}/{self.name}: still conflicting after "
                              f"{CONFLICT_ATTEMPTS} attempts to claim it")

    def _body(self, name: str, data: Mapping[str, str], binary: Mapping[str, str], term: Term | None) -> bytes:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "falco-eks-forwarder"},
        }
        if term is not None:
            metadata["annotations"] = {TERM_ANNOTATION: str(term.number), HOLDER_ANNOTATION: term.holder}
        version = self._versions.get(name)
        if version is not None:
            metadata["resourceVersion"] = version
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data:
            doc["data"] = dict(data)
        if binary:
            doc["binaryData"] = dict(binary)
        return json.dumps(doc, separators=(",", ":")).encode()

    def _write(self, name: str, data: Mapping[str, str], binary: Mapping[str, str], claiming: bool = False) -> int:
        """One create or replace of ConfigMap ``name``: its bytes, or _ConflictError (the current version is then
        known), or FencedError when the ConfigMap now belongs to another term."""
        term = self.fence() if self.fence is not None else None
        body = self._body(name, data, binary, term)
        exists = self._versions.get(name) is not None
        method = "PUT" if exists else "POST"
        status, doc = self._request(method, self._path(name) if exists else self._path(), body)
        if status in (200, 201):
            self._versions[name] = doc.get("metadata", {}).get("resourceVersion")
            return len(body)
        if status == 404 and exists:  # deleted under us: create it again
            self._versions[name] = None
            raise _ConflictError
        if status != 409:
            raise self._fail(method, name, status, doc)
        # Written meanwhile (or created before our first load): take its version, unless another term wrote it.
        # Once a holder has claimed the checkpoint only it can write (everyone else's resourceVersion is stale), so
        # a write of another term means a newer holder claimed it: stop. Not "a higher term": a deleted Lease is
        # created again from term 0. Only a claim overwrites another term's write (a deposed holder's, late).
        current = self._get(name)
        stored = term_of(current)
        if term is not None and not claiming and stored is not None and stored != term:
            raise FencedError(f"configmap {self.namespace}/{name} was written by {stored.holder or 'another replica'} "
                              f"in term {stored.number} of the Lease (this replica's term is {term.number}): it no "
                              "longer holds the Lease")
        raise _ConflictError

    def _put(self, name: str, data: dict[str, str], binary: dict[str, str]) -> int:
        """Create or replace ConfigMap ``name``; the bytes of the request that succeeded."""
        retrier = Retrier(CONFLICT_RETRY, self._clock, log, max_attempts=CONFLICT_ATTEMPTS)
        while True:
            try:
                return self._write(name, data, binary)
            except _ConflictError:
                pass
            # Conflict retries are short and bounded: not interrupted by a stop.
            if not retrier.failed(threading.Event(), "checkpoint ConfigMap changed under us; writing again",
                                  {"name": name}, level=logging.INFO):
                raise CheckpointError(f"configmap {self.namespace}/{name}: still conflicting after "
                                      f"{CONFLICT_ATTEMPTS} attempts")

    def save_positions(self, positions: Positions) -> Saved:
        return Saved(self._put(self.name, {POSITIONS_KEY: encode_positions(positions).decode()}, {}))

    def save_remembered(self, remembered: Remembered) -> Saved:
        data, _, dropped = encode_remembered(remembered, self.max_bytes)
        written = self._put(self.hashes_name, {}, {HASHES_KEY: base64.b64encode(data).decode("ascii")})
        return Saved(written, dropped)


def open_store(kind: str, *, path: str | None = None, namespace: str | None = None, name: str | None = None,
               api: KubeApi | None = None, clock: Clock | None = None, fence: Fence | None = None,
               also_own: tuple[tuple[str, str, str], ...] = ()) -> CheckpointStore:
    """The store for a ``--checkpoint`` spec (``file`` or ``configmap``); ``fence`` and ``also_own`` (objects
    whose reads and writes are also this forwarder's own, e.g. its Lease) only for ConfigMaps."""
    if kind == "file":
        if not path:
            raise CheckpointError("file checkpoint needs a path")
        return FileCheckpointStore(path)
    if kind == "configmap":
        if not namespace or not name:
            raise CheckpointError("configmap checkpoint needs NAMESPACE/NAME")
        return ConfigMapCheckpointStore(namespace, name, api=api, clock=clock, fence=fence, also_own=also_own)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")
