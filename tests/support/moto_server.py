"""moto in server mode on a loopback port, reached by the real boto3 client over HTTP.

Two ways to run it:
  - "thread" (default): moto's ThreadedMotoServer inside the test process; cheap to start, and the
    test can look at moto's backends directly.
  - "process": `python -m moto.server` as a child process; it gets its own interpreter (and GIL),
    which the benchmark wants, and it can be killed.

Use from tests:

    from support.moto_server import moto, moto_server  # noqa: F401  (pytest fixtures)

    def test_x(moto):                      # a MotoServer whose state was just reset
        logs = moto.client("logs")
        create_log_group(logs, "/aws/eks/lab/cluster", ["kube-apiserver-audit-0"])
        put_events(logs, "/aws/eks/lab/cluster", "kube-apiserver-audit-0", [(ts_ms, line), ...])
        subprocess.run([...], env=moto.env())

PutLogEvents limits (CloudWatch Logs API reference): events in one call in chronological order,
at most 10,000 events and 1,048,576 bytes per call, where each event counts its UTF-8 message
plus 26 bytes. put_events() splits and orders accordingly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from support.audit_events import make_event, new_stream_name
from support.moto_aws_pages import aws_like_pages

REGION = "us-west-2"
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto accepts any key; this is not a secret

PUT_MAX_EVENTS = 10_000
PUT_MAX_BYTES = 1_048_576
PUT_EVENT_OVERHEAD_BYTES = 26

_START_TIMEOUT_SECONDS = 30.0


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (for servers that cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def aws_env(endpoint_url: str, *, static_keys: bool = True, region: str = REGION) -> dict[str, str]:
    """Environment for a child process that must reach `endpoint_url` and nothing else.

    Starts from a minimal environment (PATH, HOME, LANG) so nothing from the developer's shell
    (profiles, real keys, a web-identity setup) leaks into the child.
    """
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if static_keys:
        env["AWS_ACCESS_KEY_ID"] = FAKE_ACCESS_KEY_ID
        env["AWS_SECRET_ACCESS_KEY"] = FAKE_SECRET_ACCESS_KEY
    return env


@dataclass
class MotoServer:
    """A running moto server; `endpoint_url` is http://127.0.0.1:<port>."""

    endpoint_url: str
    region: str = REGION
    mode: str = "thread"
    _stop: Any = field(default=None, repr=False)

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def client(self, service: str, endpoint_url: str | None = None, config: Config | None = None) -> Any:
        """A real boto3 client for `service` pointed at this server (or at a proxy in front of it)."""
        base = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=4)
        return boto3.client(
            service,
            endpoint_url=endpoint_url or self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=FAKE_ACCESS_KEY_ID,
            aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
            config=base.merge(config) if config is not None else base,
        )

    def reset(self) -> None:
        """Forget every resource in every backend (moto's documented /moto-api/reset)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def env(self, *, static_keys: bool = True, endpoint_url: str | None = None) -> dict[str, str]:
        """Environment for a child process: AWS_ENDPOINT_URL, region, fake keys (unless static_keys=False)."""
        return aws_env(endpoint_url or self.endpoint_url, static_keys=static_keys, region=self.region)

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def _wait_until_serving(endpoint_url: str, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(f"{endpoint_url}/moto-api/data.json", timeout=2) as response:
                response.read()
                return
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"moto server at {endpoint_url} did not answer within {_START_TIMEOUT_SECONDS} s: {last_error}")


def _start_thread() -> MotoServer:
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO even with verbose=False; that drowns test output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    _wait_until_serving(endpoint_url, None)
    return MotoServer(endpoint_url=endpoint_url, mode="thread", _stop=server.stop)


def _start_process(aws_pages: bool) -> MotoServer:
    module = "support.moto_aws_pages" if aws_pages else "moto.server"
    tests_dir = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH", "")) if p)
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_PORT": str(port), "PYTHONPATH": python_path},
        )
        endpoint_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(endpoint_url, proc)
        except RuntimeError:
            # Most likely someone took the port between free_port() and the bind: try another.
            proc.kill()
            proc.wait(timeout=10)
            continue

        def stop(proc: subprocess.Popen[bytes] = proc) -> None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

        return MotoServer(endpoint_url=endpoint_url, mode="process", _stop=stop)
    raise RuntimeError("could not start a moto server process on a free loopback port")


@contextlib.contextmanager
def running_moto(mode: str = "thread", *, aws_pages: bool = False) -> Iterator[MotoServer]:
    """Start moto on 127.0.0.1 on a free port; stop it on exit. ``aws_pages``: FilterLogEvents pages as AWS
    cuts them (support/moto_aws_pages.py; in thread mode, patched in this process while it runs)."""
    if mode not in ("thread", "process"):
        raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
    with contextlib.ExitStack() as stack:
        if aws_pages and mode == "thread":
            stack.enter_context(aws_like_pages())
        server = _start_thread() if mode == "thread" else _start_process(aws_pages)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    """One moto server per test module."""
    with running_moto() as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The module's moto server with every backend reset before the test."""
    moto_server.reset()
    return moto_server


# --- CloudWatch Logs helpers (real boto3 calls) ---------------------------------------------


def create_log_group(logs: Any, group: str, streams: Iterable[str] = ()) -> None:
    """Create `group` (if missing) and each stream in `streams`."""
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    for stream in streams:
        create_log_stream(logs, group, stream)


def create_log_stream(logs: Any, group: str, stream: str) -> None:
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)


def _event_cost(message: str) -> int:
    return len(message.encode("utf-8")) + PUT_EVENT_OVERHEAD_BYTES


def put_calls(events: Sequence[tuple[int, str]]) -> list[list[dict[str, Any]]]:
    """Split events into PutLogEvents batches: each chronological, <= 10,000 events, <= 1 MiB.

    The sort is stable, so events that share a timestamp keep the caller's order.
    """
    ordered = sorted(events, key=lambda item: item[0])
    calls: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_bytes = 0
    for timestamp_ms, message in ordered:
        cost = _event_cost(message)
        if cost > PUT_MAX_BYTES:
            raise ValueError(f"one event of {cost} bytes exceeds the PutLogEvents limit of {PUT_MAX_BYTES}")
        if current and (len(current) >= PUT_MAX_EVENTS or current_bytes + cost > PUT_MAX_BYTES):
            calls.append(current)
            current, current_bytes = [], 0
        current.append({"timestamp": int(timestamp_ms), "message": message})
        current_bytes += cost
    if current:
        calls.append(current)
    return calls


def put_events(logs: Any, group: str, stream: str, events: Sequence[tuple[int, str]]) -> int:
    """PutLogEvents for (timestamp_ms, message) pairs, split within the API's limits.

    Returns the number of calls made. Raises if CloudWatch (moto) rejected any event as too old
    or too new, so a test never silently loses its input.
    """
    calls = put_calls(events)
    for call in calls:
        response = logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=call)
        rejected = response.get("rejectedLogEventsInfo")
        if rejected:
            raise AssertionError(f"PutLogEvents rejected events in {stream}: {rejected}")
    return len(calls)


def now_ms() -> int:
    return int(time.time() * 1000)


def put_batch(moto_: MotoServer, group: str, count: int, start_ms: int) -> set[str]:
    """``count`` audit events of 600 bytes, a millisecond apart from ``start_ms``, in a new stream of ``group``;
    their audit IDs."""
    logs = moto_.client("logs")
    stream = new_stream_name()
    create_log_stream(logs, group, stream)
    events = [make_event(start_ms + i, size=600) for i in range(count)]
    put_events(logs, group, stream, [(start_ms + i, line) for i, (_, line) in enumerate(events)])
    return {audit_id for audit_id, _ in events}


def scrub_env(env: Mapping[str, str], *names: str) -> dict[str, str]:
    """A copy of `env` without `names` (e.g. the static keys for the web-identity test)."""
    return {key: value for key, value in env.items() if key not in names}


# --- Kinesis ------------------------------------------------------------------------------------


def create_subscribed_stream(moto_: MotoServer, group: str, stream: str = "audit", shards: int = 1) -> str:
    """A Kinesis stream of ``shards`` shards and ``group``'s subscription filter into it (moto 5 delivers every
    put_log_events to it, gzip-compressed as CloudWatch does); the stream's ARN."""
    kinesis, logs = moto_.client("kinesis"), moto_.client("logs")
    kinesis.create_stream(StreamName=stream, ShardCount=shards)
    arn = str(kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"])
    create_log_group(logs, group)
    logs.put_subscription_filter(logGroupName=group, filterName="audit-to-kinesis", filterPattern="",
                                 destinationArn=arn, roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis")
    return arn


@contextlib.contextmanager
def aws_like_resharding() -> Iterator[None]:
    """moto (thread mode) resharding as AWS does it. moto 5.2.5 keeps writing to a closed shard (it picks the
    first shard of the hash key, open or not), moves a split parent's records into its children and copies
    merged parents' records into the child; in AWS a closed shard takes no more records and keeps its own
    until they expire. And GetRecords on a closed shard read to its end answers no NextShardIterator (AWS API
    reference: "If set to null, the shard has been closed"), where moto hands out iterators forever.
    Patched for the block."""
    from moto.kinesis import models
    from moto.kinesis.exceptions import InvalidArgumentError
    from moto.kinesis.utils import decompose_shard_iterator

    stream_cls, backend_cls = models.Stream, models.KinesisBackend
    originals = (stream_cls.get_shard_for_key, stream_cls.split_shard, stream_cls.merge_shards)
    original_for_key = originals[0]
    original_get_records = backend_cls.get_records

    def get_records(self: Any, stream_arn: str | None, shard_iterator: str, limit: int | None) -> Any:
        next_iterator, records, millis_behind = original_get_records(self, stream_arn, shard_iterator, limit)
        stream_name, shard_id, last = decompose_shard_iterator(next_iterator)
        shard = self.describe_stream(stream_arn=stream_arn, stream_name=stream_name).get_shard(shard_id)
        if not shard.is_open and int(last) >= shard.get_max_sequence_number():
            next_iterator = None
        return next_iterator, records, millis_behind

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        shard = original_for_key(self, partition_key, explicit_hash_key)
        if shard is None or shard.is_open:
            return shard
        key = int(explicit_hash_key) if explicit_hash_key else int(
            models.md5_hash(partition_key.encode("utf-8")).hexdigest(), 16)
        return next((s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash), None)

    def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
        shard = self.shards[shard_to_split]
        start = int(new_starting_hash_key)
        if not shard.is_open or not shard.starting_hash < start < shard.ending_hash:
            raise InvalidArgumentError(message=f"cannot split {shard_to_split} at {start}")
        last = max(s._shard_id for s in self.shards.values())
        for index, (low, high) in enumerate(((shard.starting_hash, start - 1), (start, shard.ending_hash)), 1):
            child = models.Shard(last + index, low, high, parent=shard.shard_id)
            self.shards[child.shard_id] = child
        shard.is_open = False

    def merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
        first, second = sorted((self.shards[shard_to_merge], self.shards[adjacent_shard_to_merge]),
                               key=lambda s: s.starting_hash)
        if first.ending_hash + 1 != second.starting_hash or not (first.is_open and second.is_open):
            raise InvalidArgumentError(message=f"cannot merge {shard_to_merge} and {adjacent_shard_to_merge}")
        last = max(s._shard_id for s in self.shards.values())
        child = models.Shard(last + 1, first.starting_hash, second.ending_hash, parent=shard_to_merge,
                             adjacent_parent=adjacent_shard_to_merge)
        self.shards[child.shard_id] = child
        first.is_open = second.is_open = False

    patched = (get_shard_for_key, split_shard, merge_shards)
    stream_cls.get_shard_for_key, stream_cls.split_shard, stream_cls.merge_shards = patched  # type: ignore[method-assign]
    backend_cls.get_records = get_records  # type: ignore[method-assign]
    try:
        yield
    finally:
        stream_cls.get_shard_for_key, stream_cls.split_shard, stream_cls.merge_shards = originals  # type: ignore[method-assign]
        backend_cls.get_records = original_get_records  # type: ignore[method-assign]
