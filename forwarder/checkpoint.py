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
  concurrency (resourceVersion). On EKS every write is itself an audit event in the log the
  forwarder reads: ``self_writes`` says what those look like, so the policy can tell them apart.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import ssl
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import urllib3

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
from .retry import Backoff, Retrier

log = logging.getLogger("forwarder.checkpoint")


class CheckpointError(Exception):
    """A checkpoint could not be read or written; the message says where and why."""

    exit_code = 1


@dataclass(frozen=True)
class SelfWrites:
    """How the store's own writes appear in the Kubernetes audit log (checkpoint_policy.py)."""

    namespace: str
    names: tuple[str, ...]
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

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POSITIONS_KEY = "positions.json"
HASHES_KEY = "hashes.bin"
HASHES_SUFFIX = "-hashes"
V1_KEY = "checkpoint.json.zlib"
"""The single key of the version 1 checkpoint (read for its positions on upgrade)."""
# A ConfigMap's data must stay under 1 MiB (the API server's check on data + binaryData); leave room.
DEFAULT_CONFIGMAP_MAX_BYTES = 900 * 1024
# The remembered hashes are saved so that their requests stay under this many bytes a minute on average.
REMEMBERED_BYTES_PER_MINUTE = 900 * 1024
CONFLICT_RETRY = Backoff(initial_seconds=0.05, max_seconds=1.0)
CONFLICT_ATTEMPTS = 4


def service_account_username(token: str) -> str | None:
    """``sub`` of a service account token (a JWT): ``system:serviceaccount:<ns>:<sa>``; None if unreadable.
    Only read, never trusted for anything but recognising our own writes in the audit log."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    sub = payload.get("sub") if isinstance(payload, dict) else None
    return sub if isinstance(sub, str) and sub.startswith("system:serviceaccount:") else None


class ConfigMapCheckpointStore:
    """The two parts in two ConfigMaps, through the pod's service account (in-cluster API).

    Needs RBAC ``get`` and ``update`` on ``configmaps`` named NAME and NAME-hashes, and ``create`` on
    ``configmaps`` in the namespace (RBAC cannot limit ``create`` by name). Updates carry the
    resourceVersion last seen; on 409 Conflict the current version is fetched and the write repeated:
    this forwarder is the only writer. ``fence``, when given, is called before every write and may raise
    CheckpointError to refuse it (the seam for a lease that keeps a deposed replica from writing).
    """

    remembered_bytes_per_minute: int | None = REMEMBERED_BYTES_PER_MINUTE

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
        clock: Clock | None = None,
        fence: Callable[[], None] | None = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.hashes_name = name + HASHES_SUFFIX
        self.max_bytes = max_bytes
        self._token_path = token_path
        self._clock = clock if clock is not None else SystemClock()
        self._fence = fence
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
            http = urllib3.PoolManager(num_pools=1, maxsize=2, **kwargs)
        self._http = http
        self._versions: dict[str, str | None] = {}
        try:
            username = service_account_username(Path(token_path).read_text())
        except OSError:
            username = None
        self.self_writes: SelfWrites | None = SelfWrites(namespace, (name, self.hashes_name), username)

    def _url(self, name: str | None = None) -> str:
        collection = f"{self.api_url}/api/v1/namespaces/{quote(self.namespace, safe='')}/configmaps"
        return collection if name is None else f"{collection}/{quote(name, safe='')}"

    def _headers(self) -> dict[str, str]:
        # Read on every request: projected service account tokens are rotated by the kubelet.
        try:
            token = Path(self._token_path).read_text().strip()
        except OSError as exc:
            raise CheckpointError(f"cannot read the service account token {self._token_path}: {exc}") from exc
        return {"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"}

    def _request(self, method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        try:
            response = self._http.request(method, url, body=body, headers=self._headers())
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CheckpointError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        try:
            doc = json.loads(response.data) if response.data else {}
        except ValueError:
            doc = {}
        return response.status, doc if isinstance(doc, dict) else {}

    def _fail(self, method: str, name: str, status: int, doc: Mapping[str, Any]) -> CheckpointError:
        hint = ""
        if status in (401, 403):
            hint = (f" (the service account needs get and update on configmaps {self.name} and {self.hashes_name}, "
                    "and create on configmaps, in this namespace)")
        return CheckpointError(
            f"{method} configmap {self.namespace}/{name}: HTTP {status} {doc.get('message', '')}{hint}".rstrip()
        )

    def _get(self, name: str) -> dict[str, Any] | None:
        status, doc = self._request("GET", self._url(name))
        if status == 404:
            self._versions[name] = None
            return None
        if status != 200:
            raise self._fail("GET", name, status, doc)
        self._versions[name] = doc.get("metadata", {}).get("resourceVersion")
        return doc

    def load(self) -> Checkpoint | None:
        doc = self._get(self.name)
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
        hashes_doc = self._get(self.hashes_name)
        hashes = None
        if hashes_doc is not None and HASHES_KEY in (hashes_doc.get("binaryData") or {}):
            try:
                hashes = base64.b64decode(hashes_doc["binaryData"][HASHES_KEY])
            except (ValueError, binascii.Error):
                hashes = None
        return _decode(positions, hashes, where, hint)

    def _body(self, name: str, data: dict[str, str], binary: dict[str, str]) -> bytes:
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "labels": {"app.kubernetes.io/managed-by": "falco-eks-forwarder"},
        }
        version = self._versions.get(name)
        if version is not None:
            metadata["resourceVersion"] = version
        doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data:
            doc["data"] = data
        if binary:
            doc["binaryData"] = binary
        return json.dumps(doc, separators=(",", ":")).encode()

    def _put(self, name: str, data: dict[str, str], binary: dict[str, str]) -> int:
        """Create or replace ConfigMap ``name``; the bytes of the request that succeeded."""
        retrier = Retrier(CONFLICT_RETRY, self._clock, log, max_attempts=CONFLICT_ATTEMPTS)
        while True:
            if self._fence is not None:
                self._fence()
            body = self._body(name, data, binary)
            exists = self._versions.get(name) is not None
            method = "PUT" if exists else "POST"
            status, doc = self._request(method, self._url(name) if exists else self._url(), body)
            if status in (200, 201):
                self._versions[name] = doc.get("metadata", {}).get("resourceVersion")
                return len(body)
            if status == 404 and exists:  # deleted under us: create it again
                self._versions[name] = None
            elif status == 409:  # written meanwhile (or created before our first load): take its version
                self._get(name)
            else:
                raise self._fail(method, name, status, doc)
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
               timeout_seconds: float = 10.0, clock: Clock | None = None) -> CheckpointStore:
    """The store for a ``--checkpoint`` spec (``file`` or ``configmap``)."""
    if kind == "file":
        if not path:
            raise CheckpointError("file checkpoint needs a path")
        return FileCheckpointStore(path)
    if kind == "configmap":
        if not namespace or not name:
            raise CheckpointError("configmap checkpoint needs NAMESPACE/NAME")
        return ConfigMapCheckpointStore(namespace, name, timeout_seconds=timeout_seconds, clock=clock)
    raise CheckpointError(f"unknown checkpoint kind {kind!r}")
