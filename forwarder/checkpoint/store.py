"""Where the checkpoint lives: two files, or Kubernetes ConfigMaps. What it holds: codec.py; when it is saved:
policy.py.

Two parts, stored apart because they are saved at different cadences: the positions (small, what a
restart needs to lose nothing) and the remembered hashes (up to about a megabyte, only against
duplicates after a restart). Each write replaces one object atomically: a crash leaves the old or the
new version of it, never a mix.

- ``file:PATH``: ``PATH`` (positions, JSON) and ``PATH.hashes``; written to a temporary file, fsynced,
  renamed, directory fsynced.
- ``configmap:NAMESPACE/NAME``: ConfigMap ``NAME`` (key ``positions.json``, readable with kubectl) and the
  remembered hashes in ``NAME-hashes-0`` to ``NAME-hashes-6`` (binary key ``hashes.bin``), one part each by time,
  so that a save rewrites only the parts that changed; any mix of old and new parts after a crash holds only
  events that were delivered. Created by the stack (the forwarder may not create objects), written through the
  pod's service account with optimistic concurrency (resourceVersion), fenced by the Lease when replicas share
  it. On EKS every write is itself an audit event in the log the forwarder reads: ``self_writes`` says what
  those look like, so the policy can tell them apart. A first start after an upgrade from release 0.3 carries that
  forwarder's checkpoint over into them (replicas/upgrade.py).
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

from ..clock import Clock, SystemClock
from ..kube import SERVICE_ACCOUNT_DIR, KubeApi, KubeError
from ..retry import Backoff, Retrier
from .codec import (
    HASH_SHARDS,
    Checkpoint,
    CodecError,
    Positions,
    Remembered,
    decode_positions,
    decode_remembered,
    encode_positions,
    encode_remembered,
    fingerprint,
    merge_remembered,
    split_remembered,
)

log = logging.getLogger("forwarder.checkpoint")


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says where and why."""

    exit_code = 1


@dataclass(frozen=True)
class SelfWrites:
    """How the forwarder's own requests (checkpoint writes, the Lease) appear in the Kubernetes audit log
    (policy.py)."""

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
    pending: bool = False
    """Changes left for the next save (the store writes at most its byte budget at once)."""


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


def _decode_positions(positions: bytes, where: str, hint: str) -> Positions:
    try:
        return decode_positions(positions)
    except CodecError as exc:
        raise CheckpointError(f"{where} is not a valid checkpoint ({exc}); {hint}") from exc


def _decode(positions: bytes, remembered: bytes | None, where: str, hint: str) -> Checkpoint:
    decoded = _decode_positions(positions, where, hint)
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
HASHES_SUFFIX = "-hashes-"
"""Part ``i`` of the remembered hashes is ConfigMap NAME + HASHES_SUFFIX + ``i`` (codec.shard_of)."""
V1_KEY = "checkpoint.json.zlib"
"""The single key of the version 1 checkpoint (read for its positions on upgrade)."""
TERM_ANNOTATION = "falco-eks-forwarder/lease-term"
HOLDER_ANNOTATION = "falco-eks-forwarder/lease-holder"
# Only on a ConfigMap the forwarder creates itself; one the stack created keeps the labels it has.
CREATED_LABELS = {"app.kubernetes.io/managed-by": "falco-eks-forwarder"}
# A ConfigMap's data must stay under 1 MiB (the API server's check on data + binaryData); leave room.
DEFAULT_CONFIGMAP_MAX_BYTES = 900 * 1024
# The remembered hashes are saved so that their requests stay under this many bytes a minute on average.
REMEMBERED_BYTES_PER_MINUTE = 900 * 1024
CONFLICT_RETRY = Backoff(initial_seconds=0.05, max_seconds=1.0)
CONFLICT_ATTEMPTS = 4


def positions_in(doc: Mapping[str, Any] | None, where: str, hint: str) -> Positions | None:
    """The positions a checkpoint ConfigMap holds (key positions.json, or a version 1 checkpoint's); None when it
    holds none (missing, or empty as the stack creates it); CheckpointError naming ``where`` when they are not valid."""
    data, binary = (doc or {}).get("data") or {}, (doc or {}).get("binaryData") or {}
    if POSITIONS_KEY in data:
        raw = str(data[POSITIONS_KEY]).encode()
    elif V1_KEY in binary:
        try:
            raw = zlib.decompress(base64.b64decode(binary[V1_KEY]))
        except (ValueError, binascii.Error, zlib.error) as exc:
            raise CheckpointError(f"{where} is not a valid checkpoint ({exc}); {hint}") from exc
    else:
        return None
    return _decode_positions(raw, where, hint)


def hashes_names(name: str) -> tuple[str, ...]:
    """The ConfigMaps of the remembered hashes of checkpoint ConfigMap ``name``, part 0 first."""
    return tuple(f"{name}{HASHES_SUFFIX}{i}" for i in range(HASH_SHARDS))


def remembered_in(doc: Mapping[str, Any] | None, where: str,
                  what: str = "remembered hashes") -> Remembered | None:
    """The remembered hashes a ConfigMap holds (key hashes.bin); None when it holds none, or when they are unreadable:
    only duplicates depend on them, so a warning naming ``where``, and on without them."""
    raw = ((doc or {}).get("binaryData") or {}).get(HASHES_KEY)
    if raw is None:
        return None
    try:
        return decode_remembered(base64.b64decode(raw))
    except (ValueError, binascii.Error) as exc:
        log.warning(f"the {what} are unreadable; events of their time may be sent again",
                    extra={"where": where, "error": str(exc)})
        return None


def configmap_error(method: str, namespace: str, name: str, status: int, doc: Mapping[str, Any],
                    denied_hint: str) -> CheckpointError:
    """A refused ConfigMap request; ``denied_hint`` (what the service account needs) added on 401 and 403."""
    hint = f" ({denied_hint})" if status in (401, 403) else ""
    return CheckpointError(f"{method} configmap {namespace}/{name}: HTTP {status} {doc.get('message', '')}".rstrip()
                           + hint)


def get_configmap(api: KubeApi, namespace: str, name: str, denied_hint: str) -> dict[str, Any] | None:
    """ConfigMap ``name`` (None: there is none); CheckpointError naming it when it cannot be read."""
    try:
        status, doc = api.request("GET", api.path("api/v1", namespace, "configmaps", name))
    except KubeError as exc:
        raise CheckpointError(f"GET configmap {namespace}/{name}: {exc}") from exc
    if status == 404:
        return None
    if status != 200:
        raise configmap_error("GET", namespace, name, status, doc, denied_hint)
    return doc


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
    """Written meanwhile, or deleted: try again (the current version, or the object itself, is fetched first)."""


Stored = tuple[str, str, frozenset[tuple[int, int]]]
"""What a part of the remembered hashes holds: (log group, stream prefix, codec.fingerprint)."""


class ConfigMapCheckpointStore:
    """The positions in ConfigMap NAME, the remembered hashes in HASH_SHARDS ConfigMaps NAME-hashes-<i> by time
    (codec.py), through the pod's service account (kube.py).

    The stack creates them, empty (an empty ConfigMap is no checkpoint yet), and grants ``get`` and ``update`` on
    these names only: RBAC cannot limit ``create`` by name. Where the service account may create them (an older
    stack, ``kubectl proxy``), a missing one is created empty; where not, the error names it and what to do. Every
    write replaces the object (PUT) with the resourceVersion last seen, keeping its labels and annotations (the
    stack's) and changing only the data and this forwarder's annotations, as field manager ``falco-eks-forwarder``.

    A save of the remembered hashes writes only the parts whose buckets changed since this store last wrote or read
    them: at a steady rate the newest one or two, after a takeover none until something changes; and at most a
    minute's byte budget of them at once, newest first (the rest at the next save).

    Without ``fence`` this forwarder is the only writer: on 409 Conflict the current version is fetched and the
    write repeated. With ``fence`` (a Lease, replicas/lease.py) several replicas share the checkpoint and it is fenced:
    every write carries the writer's term (the Lease's transitions counter when it acquired it) in an annotation,
    a new holder first rewrites the positions in its term (``claim``), and a write that conflicts with the
    positions of another term raises FencedError instead of being repeated. So once the new holder has claimed the
    checkpoint, nothing a deposed holder sends can overwrite the positions, however late it arrives (a pause, a
    partition, a process stopped between its check and its write). A late write of a part of the remembered
    hashes can land (the new holder does not rewrite them when it claims): it holds only events the deposed holder
    delivered, so it costs at most duplicates after a restart, and the new holder writes over it when it saves
    that part.
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
        previous: Callable[[], Checkpoint | None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.hashes_names = hashes_names(name)
        self.previous = previous
        """Reads the checkpoint of the forwarder before an upgrade (replicas/upgrade.py), carried over by a first
        ``claim``."""
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
        self._seen: dict[str, dict[str, Any]] = {}
        """The last version of each ConfigMap read or written: its resourceVersion, and the metadata a write keeps."""
        self._stored: list[Stored | None] = [None] * HASH_SHARDS
        """What each part of the remembered hashes holds in the store, as far as this store knows (None: nothing
        known, written as soon as it has buckets)."""
        objects = tuple(("configmaps", namespace, n) for n in (name, *self.hashes_names))
        self.self_writes: SelfWrites | None = SelfWrites((*objects, *also_own), api.username)

    def _path(self, name: str | None = None) -> str:
        return self.api.path("api/v1", self.namespace, "configmaps", name)

    def _request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        try:
            return self.api.request(method, path, body)
        except KubeError as exc:
            raise CheckpointError(str(exc)) from exc

    @property
    def _denied_hint(self) -> str:
        return (f"the service account needs get and update on it: the AuditForwarder component of the same version "
                f"grants them on {self.name} and {self.name}{HASHES_SUFFIX}0 to {HASH_SHARDS - 1}")

    def _fail(self, method: str, name: str, status: int, doc: Mapping[str, Any]) -> CheckpointError:
        return configmap_error(method, self.namespace, name, status, doc, self._denied_hint)

    # --- the objects ------------------------------------------------------------------------------------

    def _get(self, name: str) -> dict[str, Any] | None:
        doc = get_configmap(self.api, self.namespace, name, self._denied_hint)
        if doc is None:
            self._seen.pop(name, None)
        else:
            self._seen[name] = doc
        return doc

    def _create(self, name: str) -> dict[str, Any]:
        """Create ConfigMap ``name`` empty, as the stack does; a clear error where this service account may not."""
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": name, "namespace": self.namespace, "labels": dict(CREATED_LABELS)}}, separators=(",", ":"))
        status, doc = self._request("POST", self._path(), body.encode())
        if status == 201:
            self._seen[name] = doc
            return doc
        if status == 409 and (found := self._get(name)) is not None:
            return found  # created meanwhile
        if status in (401, 403):
            raise CheckpointError(
                f"configmap {self.namespace}/{name} does not exist, and this service account may not create it: the "
                f"stack creates it (deleted by hand? pulumi up --refresh creates it again), or create it empty: "
                f"kubectl -n {self.namespace} create configmap {name}")
        raise self._fail("POST", name, status, doc)

    def _ensure(self, name: str) -> dict[str, Any]:
        doc = self._get(name)
        return doc if doc is not None else self._create(name)

    # --- reading ------------------------------------------------------------------------------------------

    def _decode(self, doc: Mapping[str, Any] | None, parts: list[dict[str, Any] | None]) -> Checkpoint | None:
        where = f"configmap {self.namespace}/{self.name}"
        hint = "replace its data with nothing to start afresh"
        remembered: list[Remembered] = []
        for i, part in enumerate(parts):
            # An unreadable part counts as empty: rewritten when it has buckets again.
            decoded = remembered_in(part, f"configmap {self.namespace}/{self.hashes_names[i]}")
            self._stored[i] = None if decoded is None else (decoded.log_group, decoded.stream_prefix,
                                                            fingerprint(decoded))
            if decoded is not None:
                remembered.append(decoded)
        positions = positions_in(doc, where, hint)
        if positions is None:
            return None  # missing, or empty as the stack creates it: no checkpoint yet
        ours = (positions.log_group, positions.stream_prefix)
        own = [r for r in remembered if (r.log_group, r.stream_prefix) == ours]
        return Checkpoint(positions, merge_remembered(own))

    def load(self) -> Checkpoint | None:
        """The checkpoint as stored (a missing ConfigMap counts as empty); creates and writes nothing."""
        return self._decode(self._get(self.name), [self._get(n) for n in self.hashes_names])

    def has_checkpoint(self) -> bool:
        """The positions ConfigMap holds a checkpoint: one read, nothing written."""
        where = f"configmap {self.namespace}/{self.name}"
        return positions_in(self._get(self.name), where, "replace its data with nothing to start afresh") is not None

    def claim(self) -> Checkpoint | None:
        """Load the checkpoint, creating a missing ConfigMap where allowed (else an error naming it); with a Lease,
        rewrite the positions, unchanged, in this holder's term: from then on a deposed holder's writes of them
        fail. If one of its writes slips in first, load and claim again. The remembered hashes are read, not
        rewritten (a takeover writes no hashes until they change).

        With ``previous``, a first start (no positions yet) carries over the checkpoint of the forwarder before an
        upgrade when there is one (``_adopt``)."""
        for _ in range(CONFLICT_ATTEMPTS):
            doc = self._ensure(self.name)
            parts: list[dict[str, Any] | None] = [self._ensure(n) for n in self.hashes_names]
            if self.fence is not None:
                try:
                    self._write(self.name, doc.get("data") or {}, doc.get("binaryData") or {}, claiming=True)
                except _ConflictError:
                    continue
            checkpoint = self._decode(doc, parts)
            if checkpoint is None and self.previous is not None and (carried := self.previous()) is not None:
                return self._adopt(carried)
            return checkpoint
        raise CheckpointError(f"configmap {self.namespace}/{self.name}: still conflicting after "
                              f"{CONFLICT_ATTEMPTS} attempts to claim it")

    def _adopt(self, carried: Checkpoint) -> Checkpoint:
        """Make ``carried`` (the previous forwarder's checkpoint) this store's: every part of the remembered hashes that
        has buckets, whatever the byte budget (once), then the positions. The positions go last: until they are
        written this store holds no checkpoint, so a start after a crash in between carries it over again."""
        if carried.remembered is not None:
            for i, part in enumerate(split_remembered(carried.remembered)):
                if part.buckets:
                    self._write_part(i, part, (part.log_group, part.stream_prefix, fingerprint(part)))
        self.save_positions(carried.positions)
        return carried

    # --- writing ------------------------------------------------------------------------------------------

    def _body(self, name: str, data: Mapping[str, str], binary: Mapping[str, str], term: Term | None) -> bytes:
        seen = self._seen[name].get("metadata") or {}
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace}
        for key in ("labels", "annotations"):
            if seen.get(key):
                metadata[key] = dict(seen[key])
        if term is not None:
            metadata["annotations"] = {**metadata.get("annotations", {}), TERM_ANNOTATION: str(term.number),
                                       HOLDER_ANNOTATION: term.holder}
        if seen.get("resourceVersion"):
            metadata["resourceVersion"] = seen["resourceVersion"]
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data:
            doc["data"] = dict(data)
        if binary:
            doc["binaryData"] = dict(binary)
        return json.dumps(doc, separators=(",", ":")).encode()

    def _write(self, name: str, data: Mapping[str, str], binary: Mapping[str, str], claiming: bool = False) -> int:
        """One replace of ConfigMap ``name``: its bytes, or _ConflictError (the current version is then known), or
        FencedError when the checkpoint now belongs to another term."""
        term = self.fence() if self.fence is not None else None
        if name not in self._seen:
            self._ensure(name)
        body = self._body(name, data, binary, term)
        status, doc = self._request("PUT", self._path(name), body)
        if status == 200:
            self._seen[name] = doc
            return len(body)
        if status == 404:  # deleted under us: created again (where allowed) at the next attempt
            self._seen.pop(name, None)
            raise _ConflictError
        if status != 409:
            raise self._fail("PUT", name, status, doc)
        # Written meanwhile: take its version, unless another term owns the checkpoint now. Once a holder has claimed
        # it, only it can write the positions (everyone else's resourceVersion is stale), so positions of another term
        # mean a newer holder claimed them: stop. Not "a higher term": a deleted Lease is created again from term 0.
        # Only a claim overwrites another term's positions (a deposed holder's, late); anyone's late part of the
        # hashes is overwritten by the holder.
        current = self._get(name)
        if term is not None and not claiming:
            positions = current if name == self.name else self._get(self.name)
            owner = term_of(positions)
            if owner is not None and owner != term:
                who = owner.holder or "another replica"
                raise FencedError(f"configmap {self.namespace}/{self.name} was written by {who} in term "
                                  f"{owner.number} of the Lease (this replica's term is {term.number}): it no longer "
                                  "holds the Lease")
        raise _ConflictError

    def _put(self, name: str, data: dict[str, str], binary: dict[str, str]) -> int:
        """Replace ConfigMap ``name``; the bytes of the request that succeeded."""
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
        """Write the parts whose buckets changed, the newest first, until a minute's byte budget is written (at least
        one part); the others are left for the next save (Saved.pending). Saved(0): none changed."""
        changed: list[tuple[int, int, Remembered, Stored]] = []
        for i, part in enumerate(split_remembered(remembered)):
            now = (part.log_group, part.stream_prefix, fingerprint(part))
            stored = self._stored[i]
            if (not part.buckets) if stored is None else (stored[:2] == now[:2] and now[2] <= stored[2]):
                continue  # nothing new in it: unchanged, or only buckets forgotten since
            changed.append((max((b.start_ms for b in part.buckets), default=0), i, part, now))
        changed.sort(reverse=True)
        written = dropped = 0
        for _, i, part, now in changed:
            if written >= REMEMBERED_BYTES_PER_MINUTE:
                return Saved(written, dropped, pending=True)
            size, lost = self._write_part(i, part, now)
            written += size
            dropped += lost
        return Saved(written, dropped)

    def _write_part(self, i: int, part: Remembered, stored: Stored) -> tuple[int, int]:
        """Write part ``i`` of the remembered hashes: (bytes written, hashes left out to fit)."""
        data, _, lost = encode_remembered(part, self.max_bytes)
        written = self._put(self.hashes_names[i], {}, {HASHES_KEY: base64.b64encode(data).decode("ascii")})
        self._stored[i] = stored
        return written, lost


def open_store(kind: str, *, path: str | None = None, namespace: str | None = None, name: str | None = None,
               api: KubeApi | None = None, clock: Clock | None = None, fence: Fence | None = None,
               also_own: tuple[tuple[str, str, str], ...] = (),
               previous: Callable[[], Checkpoint | None] | None = None) -> CheckpointStore:
    """The store for a ``--checkpoint`` spec (``file`` or ``configmap``); ``fence``, ``also_own`` (objects whose reads
    and writes are also this forwarder's own, e.g. its Lease) and ``previous`` (the checkpoint before an upgrade, to
    carry over) only for ConfigMaps."""
    if kind == "file":
        if not path:
            raise CheckpointError("file checkpoint needs a path")
        return FileCheckpointStore(path)
    if kind == "configmap":
        if not namespace or not name:
            raise CheckpointError("configmap checkpoint needs NAMESPACE/NAME")
        return ConfigMapCheckpointStore(namespace, name, api=api, clock=clock, fence=fence, also_own=also_own,
                                        previous=previous)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")
