"""What a forwarder of release 0.3.0 (commit 80c1367) left in the cluster, written the way it wrote it, for the tests
of an upgrade from it (forwarder/replicas/upgrade.py).

A 0.3 forwarder created its objects itself, in its namespace: ConfigMap NAME (key ``positions.json``: the
positions), ConfigMap NAME-hashes (binary key ``hashes.bin``: every remembered hash in one part) and the Lease its
replicas took turns on, ``<deployment>-leader``. Both ConfigMaps carried the label
``app.kubernetes.io/managed-by: falco-eks-forwarder`` and, written by a Lease holder, its term and identity as
annotations. The encodings below follow 80c1367's forwarder/checkpoint_codec.py, written out here so that the
fixture does not depend on today's codec; ``checkout`` gets 0.3's own code from the project's history, with which
tests/test_fwd_upgrade.py checks that this fixture writes byte for byte what 0.3 wrote, and runs the real 0.3
forwarder.
"""

from __future__ import annotations

import base64
import io
import json
import math
import subprocess
import tarfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.kube_api import FakeKubeApi

from forwarder.checkpoint.codec import Checkpoint, Positions, Remembered
from forwarder.checkpoint.store import Saved

COMMIT = "80c13676c41ffc8e840727994fa38698a53a5480"
"""Release 0.3.0."""
NOT_AT_HAND = f"the project's history (commit {COMMIT[:7]}, release 0.3.0) is not at hand"
"""Why a test that needs 0.3's own code is skipped."""
REPO_ROOT = Path(__file__).resolve().parents[2]

# The names 0.3's AuditForwarder component gave them by default (its namespace, checkpointConfigmapName, and its
# deploymentName plus "-leader").
NAMESPACE = "falco-forwarder"
CHECKPOINT = "audit-forwarder-checkpoint"
HASHES = CHECKPOINT + "-hashes"
LEASE = "audit-forwarder-leader"
SELF_CREATED = (("ConfigMap", "{checkpoint}"), ("ConfigMap", "{checkpoint}-hashes"), ("Lease", "{deployment}-leader"))
"""(kind, name) of every object a 0.3 forwarder created itself, from its component's checkpointConfigmapName and
deploymentName."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "falco-eks-forwarder"}
TERM_ANNOTATION = "falco-eks-forwarder/lease-term"
HOLDER_ANNOTATION = "falco-eks-forwarder/lease-holder"
HASHES_MAGIC = b"FWDHASH2"
MAX_BYTES = 900 * 1024
"""0.3 cut its one part of remembered hashes to this size, dropping the oldest buckets."""


# --- 0.3's encodings (80c1367: forwarder/checkpoint_codec.py) -------------------------------------------------


def encode_positions(positions: Positions) -> bytes:
    return json.dumps({
        "version": 2,
        "log_group": positions.log_group,
        "stream_prefix": positions.stream_prefix,
        "source": positions.source,
        "positions": dict(sorted(positions.positions.items())),
        "saved_at_ms": positions.saved_at_ms,
    }, separators=(",", ":")).encode()


def encode_hashes(remembered: Remembered) -> bytes:
    """All the remembered hashes in one part: magic, header length (4 bytes, big-endian), JSON header, hashes."""
    buckets = list(remembered.buckets)
    while True:
        header = json.dumps({
            "log_group": remembered.log_group,
            "stream_prefix": remembered.stream_prefix,
            "bucket_ms": remembered.bucket_ms,
            "buckets": [[b.start_ms, len(b.hashes) // 8, b.events, b.bytes] for b in buckets],
        }, separators=(",", ":")).encode()
        size = len(HASHES_MAGIC) + 4 + len(header) + sum(len(b.hashes) for b in buckets)
        if size <= MAX_BYTES or not buckets:
            break
        excess = size - MAX_BYTES
        while buckets and excess > 0:  # the oldest go first, as 0.3 dropped them
            excess -= len(buckets.pop(0).hashes) + 24
    return b"".join((HASHES_MAGIC, len(header).to_bytes(4, "big"), header, *(b.hashes for b in buckets)))


def configmap(name: str, *, data: Mapping[str, str] | None = None, binary: Mapping[str, str] | None = None,
              term: tuple[int, str] | None = None, namespace: str = NAMESPACE) -> dict[str, Any]:
    """A ConfigMap as 0.3's store wrote it (its request body; the API server adds the resourceVersion)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)}
    if term is not None:
        metadata["annotations"] = {TERM_ANNOTATION: str(term[0]), HOLDER_ANNOTATION: term[1]}
    doc: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data:
        doc["data"] = dict(data)
    if binary:
        doc["binaryData"] = dict(binary)
    return doc


def write_checkpoint(api: FakeKubeApi, checkpoint: Checkpoint, *, term: tuple[int, str] | None = (0, "fwd-03"),
                     name: str = CHECKPOINT) -> None:
    """Put ``checkpoint`` into the stand-in as a 0.3 holder left it: NAME and, with hashes, NAME-hashes."""
    api.store(name, configmap(name, data={"positions.json": encode_positions(checkpoint.positions).decode()},
                              term=term))
    if checkpoint.remembered is not None:
        raw = base64.b64encode(encode_hashes(checkpoint.remembered)).decode("ascii")
        api.store(name + "-hashes", configmap(name + "-hashes", binary={"hashes.bin": raw}, term=term))


class Store03:
    """A checkpoint store that saves as a 0.3 forwarder did, into the stand-in (the production Checkpointer drives it
    in tests/fwd_fakes.Harness): the positions into NAME, every remembered hash into NAME-hashes."""

    self_writes = None
    remembered_bytes_per_minute = MAX_BYTES

    def __init__(self, api: FakeKubeApi, term: tuple[int, str] | None = (0, "fwd-03")) -> None:
        self.api = api
        self.term = term

    def load(self) -> Checkpoint | None:
        return None  # the tests start 0.3 without a checkpoint

    def claim(self) -> Checkpoint | None:
        return None

    def save_positions(self, positions: Positions) -> Saved:
        body = configmap(CHECKPOINT, data={"positions.json": encode_positions(positions).decode()}, term=self.term)
        self.api.store(CHECKPOINT, body)
        return Saved(len(json.dumps(body)))

    def save_remembered(self, remembered: Remembered) -> Saved:
        raw = base64.b64encode(encode_hashes(remembered)).decode("ascii")
        body = configmap(HASHES, binary={"hashes.bin": raw}, term=self.term)
        self.api.store(HASHES, body)
        return Saved(len(json.dumps(body)))


# --- 0.3's Lease holder (80c1367: forwarder/lease.py) ----------------------------------------------------------


def micro_time(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Holder03:
    """A 0.3 replica's hold on its Lease, as 0.3 wrote it: acquire (the first term is 0), renew, release (no holder).
    Each write replaces the Lease in the stand-in, which gives it a new resourceVersion."""

    def __init__(self, api: FakeKubeApi, identity: str = "fwd-03", *, duration_seconds: float = 15.0,
                 name: str = LEASE, now: Any = time.time) -> None:
        self.api, self.identity, self.duration, self.name, self.now = api, identity, duration_seconds, name, now
        self.acquired_at = ""

    def _write(self, holder: str | None) -> None:
        with self.api.lock:
            current = (self.api.leases.get(self.name) or {}).get("spec") or {}
            transitions = int(current.get("leaseTransitions", -1))
            if holder is not None and current.get("holderIdentity") != holder:
                transitions += 1  # a new term
                self.acquired_at = micro_time(self.now())
            stamp = micro_time(self.now())
            spec: dict[str, Any] = {"leaseDurationSeconds": math.ceil(self.duration),
                                    "acquireTime": self.acquired_at or stamp, "renewTime": stamp,
                                    "leaseTransitions": max(transitions, 0)}
            if holder is not None:
                spec["holderIdentity"] = holder
            self.api.put(self.api.leases, self.name, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": NAMESPACE}, "spec": spec})

    def acquire(self) -> None:
        self._write(self.identity)

    def renew(self) -> None:
        self._write(self.identity)

    def release(self) -> None:
        self._write(None)


# --- 0.3's own code, from the project's history --------------------------------------------------------------


def source(path: str) -> str | None:
    """A file of release 0.3 from the project's history; None where the history is not at hand."""
    try:
        return subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{COMMIT}:{path}"], capture_output=True,
                              check=True, timeout=60, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def checkout(dest: Path, package: str = "forwarder") -> Path | None:
    """0.3's forwarder package extracted from the project's history into ``dest/<package>``; None where the history
    is not at hand (a source archive, a shallow clone)."""
    try:
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", COMMIT, "forwarder"],
                                 capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    target = dest / package
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith("forwarder/"):
                continue
            path = target / member.name.removeprefix("forwarder/")
            path.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            path.write_bytes(extracted.read())
    return target


def source_or_skip(path: str) -> str:
    """``source``; skips the calling test where the history is not at hand."""
    text = source(path)
    if text is None:
        pytest.skip(NOT_AT_HAND)
    return text


def checkout_or_skip(dest: Path, package: str = "forwarder") -> Path:
    """``checkout``; skips the calling test where the history is not at hand."""
    target = checkout(dest, package)
    if target is None:
        pytest.skip(f"{NOT_AT_HAND}: a source archive or a shallow clone")
    return target
