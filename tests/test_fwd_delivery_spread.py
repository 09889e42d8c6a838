"""``--falco-connections N``: batches spread over every address the webhook's host resolves to (a headless
Service: one per audit Falco pod). Here each "pod" is a receiver on its own loopback port, and the resolver
is injected; the pipeline runs in this process against moto in server mode."""

# ruff: noqa: F811 - pytest fixtures imported from support.moto_server are parameters here by design

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fwd_fakes import FakeClock
from support.audit_events import make_event
from support.falco_receiver import FalcoReceiver
from support.moto_server import MotoServer, create_log_group, moto, moto_server, now_ms, put_events  # noqa: F401

from components.detection import CONNECTIONS_PER_AUDIT_REPLICA
from components.falco import MAX_AUDIT_REPLICAS
from components.forwarding.audit_forwarder import MAX_FALCO_CONNECTIONS as COMPONENT_MAX
from forwarder import pipeline
from forwarder.config import MAX_FALCO_CONNECTIONS, ConfigError, RunConfig, StartAt, parse
from forwarder.delivery.batching import Batch
from forwarder.delivery.sender import RESOLVE_AFTER_FAILURE_SECONDS, RESOLVE_EVERY_SECONDS, Addresses, FalcoClient
from forwarder.metrics import Health, Metrics
from forwarder.sources.cloudwatch import build_logs_client

GROUP = "/aws/eks/spread/cluster"
STREAM = "kube-apiserver-audit-0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c"
URL = "http://falco-k8saudit-webhook.falco.svc:9765/k8s-audit"  # never resolved: the resolver is injected
WAIT_S = 60.0


@pytest.fixture
def falcos() -> Iterator[list[FalcoReceiver]]:
    receivers = [FalcoReceiver().start() for _ in range(3)]
    try:
        yield receivers
    finally:
        for receiver in receivers:
            receiver.stop()


class Forwarding:
    """pipeline.run in a thread, delivering over ``connections`` connections to whatever ``resolver`` says."""

    def __init__(self, moto: MotoServer, falcos: list[FalcoReceiver], connections: int) -> None:
        self.config = RunConfig(log_group=GROUP, falco_url=URL, region="us-west-2", start_at=StartAt("ago", 300.0),
                                poll_interval_seconds=0.2, max_lateness_seconds=6.0, max_requests_per_second=50.0,
                                request_timeout_seconds=5.0, shutdown_grace_seconds=3.0,
                                max_batch_bytes=8 * 1024, max_inflight_bytes=256 * 1024,
                                falco_connections=connections)
        self.metrics, self.stop = Metrics(), threading.Event()
        self.resolved: list[tuple[str, int]] = []
        self.falco = FalcoClient(URL, self.metrics, timeout_seconds=5.0, connections=connections,
                                 resolver=self._resolve)
        self.falcos = falcos
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
        try:
            client = build_logs_client("us-west-2", 5.0)
        finally:
            del os.environ["AWS_ENDPOINT_URL"]
        self.result: dict[str, int] = {}
        self.thread = threading.Thread(target=self._run, args=(client,), daemon=True)

    def _resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        assert (host, port) == ("falco-k8saudit-webhook.falco.svc", 9765)
        self.resolved = [("127.0.0.1", f.port) for f in self.falcos]
        return self.resolved

    def _run(self, client: Any) -> None:
        self.result["rc"] = pipeline.run(self.config, metrics=self.metrics, health=Health(), stop=self.stop,
                                         logs_client=client, falco=self.falco)

    def __enter__(self) -> Forwarding:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(30)
        self.falco.close()
        assert not self.thread.is_alive(), "the pipeline did not stop"

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def _put(moto: MotoServer, count: int) -> set[str]:
    logs = moto.client("logs")
    create_log_group(logs, GROUP, [STREAM])
    start = now_ms() - 2_000
    events = [make_event(start + i, size=600) for i in range(count)]
    put_events(logs, GROUP, STREAM, [(start + i, line) for i, (_, line) in enumerate(events)])
    return {audit_id for audit_id, _ in events}


def _delivered(falcos: list[FalcoReceiver]) -> Counter[str]:
    return Counter(audit_id for falco in falcos for audit_id in falco.accepted_ids)


def _wait_all(falcos: list[FalcoReceiver], ids: set[str]) -> bool:
    done = threading.Event()
    for _ in range(int(WAIT_S / 0.05)):
        if ids <= set(_delivered(falcos)):
            return True
        done.wait(0.05)
    return False


def test_batches_spread_over_every_falco_address_and_each_event_arrives_once(
        moto: MotoServer, falcos: list[FalcoReceiver]) -> None:
    for falco in falcos:
        falco.slow(0.05)  # each answer takes a moment, as Falco's would: the connections overlap
    with Forwarding(moto, falcos, connections=3) as fwd:
        ids = _put(moto, 600)
        assert _wait_all(falcos, ids)
    delivered = _delivered(falcos)
    assert set(delivered) == ids and set(delivered.values()) == {1}, "every event exactly once"
    assert all(falco.accepted_count > 0 for falco in falcos), [f.accepted_count for f in falcos]
    assert all(falco.violations == [] for falco in falcos)
    assert fwd.sample("forwarder_falco_addresses") == 3
    for host, port in fwd.resolved:
        assert fwd.sample("forwarder_batches_by_address_total", address=f"{host}:{port}") > 0


def test_a_falco_that_goes_away_gets_no_more_batches_and_nothing_is_lost(
        moto: MotoServer, falcos: list[FalcoReceiver]) -> None:
    with Forwarding(moto, falcos, connections=3) as fwd:
        warm = _put(moto, 60)
        assert _wait_all(falcos, warm)
        falcos[2].down()  # that pod is gone; its address is still in the Service's records
        gone_had = falcos[2].accepted_count
        ids = _put(moto, 600)
        assert _wait_all(falcos, ids)
    delivered = _delivered(falcos)
    assert warm | ids == set(delivered) and set(delivered.values()) == {1}
    assert falcos[2].accepted_count == gone_had
    assert falcos[0].accepted_count > 0 and falcos[1].accepted_count > 0
    assert fwd.sample("forwarder_delivery_retries_total") >= 1


def test_addresses_are_resolved_again_periodically_and_soon_after_a_failure() -> None:
    clock = FakeClock()
    answers = [[("10.0.0.1", 9765)], [("10.0.0.1", 9765), ("10.0.0.2", 9765)], OSError("no such host"),
               [("10.0.0.2", 9765)]]
    calls: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[tuple[str, int]]:
        calls.append((host, port))
        answer = answers[len(calls) - 1]
        if isinstance(answer, OSError):
            raise answer
        return answer

    metrics = Metrics()
    addresses = Addresses("falco.svc", 9765, resolver, clock, metrics)
    assert addresses.current() == [("10.0.0.1", 9765)]
    clock.now += RESOLVE_EVERY_SECONDS - 1
    assert addresses.current() == [("10.0.0.1", 9765)] and len(calls) == 1  # cached
    clock.now += 1
    assert addresses.current() == [("10.0.0.1", 9765), ("10.0.0.2", 9765)]  # a new Falco pod
    assert metrics.registry.get_sample_value("forwarder_falco_addresses") == 2
    addresses.failed()
    clock.now += RESOLVE_AFTER_FAILURE_SECONDS
    assert addresses.current() == [("10.0.0.1", 9765), ("10.0.0.2", 9765)]  # the name did not resolve: kept
    clock.now += RESOLVE_EVERY_SECONDS
    assert addresses.current() == [("10.0.0.2", 9765)] and len(calls) == 4


def test_connections_spread_again_when_a_falco_pod_is_replaced(falcos: list[FalcoReceiver]) -> None:
    clock = FakeClock()  # re-resolution and retry waits on a simulated clock
    answer = [("127.0.0.1", falco.port) for falco in falcos]
    client = FalcoClient(URL, Metrics(), timeout_seconds=2.0, clock=clock, connections=3,
                         resolver=lambda host, port: list(answer))

    def send(connection: int) -> None:
        audit_id, line = make_event(now_ms())
        outcome = client.sender(connection).deliver(Batch.of([audit_id], [line.encode()]), threading.Event())
        assert outcome.acknowledged == [audit_id]

    try:
        falcos[2].down()
        send(2)  # its own Falco is gone: on to the next address
        assert [f.accepted_count for f in falcos] == [1, 0, 0]
        with FalcoReceiver() as replacement:  # the new pod, at another address
            answer[2] = ("127.0.0.1", replacement.port)
            clock.now += RESOLVE_EVERY_SECONDS
            for connection in range(3):
                send(connection)
            assert [f.accepted_count for f in (*falcos[:2], replacement)] == [2, 1, 1]
    finally:
        client.close()


def test_a_host_that_never_resolves_is_left_to_the_http_client() -> None:
    def resolver(host: str, port: int) -> list[tuple[str, int]]:
        raise OSError("no such host")

    addresses = Addresses("falco.svc", 9765, resolver, FakeClock(), Metrics())
    assert addresses.current() == [("falco.svc", 9765)]


BASE = ["run", "--log-group", "/aws/eks/lab/cluster", "--falco-url", URL]


@pytest.mark.parametrize(("extra", "flag"), [
    (["--falco-connections", "0"], "--falco-connections"),
    (["--falco-connections", "257"], "--falco-connections"),
    (["--falco-connections", "two"], "--falco-connections"),
])
def test_bad_falco_connections_stop_with_a_message_naming_the_flag(extra: list[str], flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse([*BASE, *extra], {})
    assert str(info.value).startswith(f"{flag}: ")


def test_falco_connections_default_to_one_and_come_from_the_environment_too() -> None:
    assert isinstance(config := parse(BASE, {}), RunConfig) and config.falco_connections == 1
    config = parse(BASE, {"FORWARDER_FALCO_CONNECTIONS": "4"})
    assert isinstance(config, RunConfig) and config.falco_connections == 4


def test_the_forwarder_takes_as_many_connections_as_the_components_may_ask_for() -> None:
    assert CONNECTIONS_PER_AUDIT_REPLICA * MAX_AUDIT_REPLICAS <= COMPONENT_MAX == MAX_FALCO_CONNECTIONS
    config = parse([*BASE, "--falco-connections", str(COMPONENT_MAX)], {})
    assert isinstance(config, RunConfig) and config.falco_connections == COMPONENT_MAX
