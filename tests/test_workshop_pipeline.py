"""`make pipeline` and the terminal-shell example against a stand-in kubectl, as real subprocesses.

The stand-in is an executable named `kubectl` first on PATH: `get lease` names the forwarder replica holding
the Lease, `port-forward` prints what kubectl prints and points at a local HTTP server on 127.0.0.1 serving
metrics text in the forwarder's and Falco 0.44.1's formats (and the forwarder's /deliveries); `logs` prints
Falco output lines; `exec` reports whether it was given a terminal. Everything ends by itself: servers are
shut down and stand-ins are bounded in time.

The verdict is checked on Falco snapshots that tests/support/falco_snapshots.py generates from request streams
(quiet spells, steady flows, dropped requests, starts and reloads), and on the real Falco 0.44.1 snapshots of
../shared/corpus/real-falco/ when they are there.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import random
import stat
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.audit_events import make_event, shared_corpus_file
from support.falco_receiver import FalcoReceiver
from support.falco_snapshots import Request, delivered_by, deliveries, log_text, snapshots
from support.loopback_http import LoopbackServer, QuietHandler

from components.falco import METRICS_PORT, FalcoSettings, chart_fullname
from components.forwarding.audit_forwarder import LEASE_SUFFIX, AuditForwarderArgs
from forwarder.delivery.batching import Batch
from forwarder.delivery.sender import FalcoClient
from forwarder.metrics import DeliveryHistory, Health, Metrics, serve
from workshop import pipeline
from workshop.cli import main
from workshop.kubectl import WorkshopError, run_in_pseudo_terminal

STAND_IN = """#!{python}
import json, os, sys, time
argv = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_CALLS"], "a") as calls:
    calls.write(json.dumps({{"argv": argv, "pid": os.getpid()}}) + "\\n")
command = next(a for a in argv[2:] if not a.startswith("-") and a not in ("falco", "falco-forwarder"))
if command == "get":
    holder = os.environ.get("FAKE_LEASE_HOLDER")
    if not holder:
        sys.stderr.write('Error from server (NotFound): leases.coordination.k8s.io "%s" not found\\n' % argv[4])
        sys.exit(1)
    sys.stdout.write(holder)
elif command == "port-forward":
    target, remote = argv[-2], argv[-1]
    ports = json.loads(os.environ.get("FAKE_PORTS", "{{}}"))
    if target not in ports:
        sys.stderr.write('error: deployments.apps "%s" not found\\n' % target.split("/")[-1])
        sys.exit(1)
    print("Forwarding from 127.0.0.1:%d -> %s" % (ports[target], remote.lstrip(":")), flush=True)
    time.sleep(60)
elif command == "logs":
    sys.stdout.write(open(os.environ["FAKE_FALCO_LOG"]).read())
elif command == "exec":
    print("stdin=%s stdout=%s stderr=%s" % (os.isatty(0), os.isatty(1), os.isatty(2)), flush=True)
    time.sleep(float(os.environ.get("FAKE_EXEC_SLEEP", "0")))
    sys.exit(int(os.environ.get("FAKE_EXEC_CODE", "0")))
"""


def forwarder_metrics(delivered: int, last_delivery: float, started: float, active: int = 1, addresses: int = 1) -> str:
    """What prometheus_client writes for the forwarder's metrics the pipeline reads (forwarder/metrics.py)."""
    return f"""# HELP forwarder_events_read_total Log events read from CloudWatch Logs
# TYPE forwarder_events_read_total counter
forwarder_events_read_total {float(delivered)}
# HELP forwarder_events_read_created Log events read from CloudWatch Logs
# TYPE forwarder_events_read_created gauge
forwarder_events_read_created {started!r}
# HELP forwarder_events_delivered_total Audit events Falco acknowledged
# TYPE forwarder_events_delivered_total counter
forwarder_events_delivered_total {float(delivered)}
# HELP forwarder_events_delivered_created Audit events Falco acknowledged
# TYPE forwarder_events_delivered_created gauge
forwarder_events_delivered_created {started!r}
# HELP forwarder_events_skipped_total Events not delivered, by reason
# TYPE forwarder_events_skipped_total counter
forwarder_events_skipped_total{{reason="bad_stage_timestamp"}} 0.0
# HELP forwarder_last_delivery_timestamp_seconds Unix time of the last request Falco acknowledged
# TYPE forwarder_last_delivery_timestamp_seconds gauge
forwarder_last_delivery_timestamp_seconds {last_delivery!r}
# HELP forwarder_active 1 while this replica reads and delivers (the only replica, or the Lease's holder), 0 on standby
# TYPE forwarder_active gauge
forwarder_active {float(active)}
# HELP forwarder_falco_addresses Addresses the webhook's host resolved to last time
# TYPE forwarder_falco_addresses gauge
forwarder_falco_addresses {float(addresses)}
"""


def _falco_sample(name: str, kind: str, value: str, labels: str = "") -> str:
    # libs' prometheus_exposition_text: HELP and TYPE before every sample, labels sorted.
    return (
        f"# HELP {name} https://falco.org/docs/metrics/\n# TYPE {name} {kind}\n"
        f"{name}{'{' + labels + '} ' if labels else ' '}{value}\n"
    )


FALCO_METRICS = "".join(
    [
        _falco_sample("falcosecurity_falco_version_info", "gauge", "1", 'version="0.44.1"'),
        _falco_sample(
            "falcosecurity_falco_sha256_rules_files_info", "gauge", "1",
            'file_name="k8s_audit_rules.yaml",sha256="6f0078862a26528cb50a860f9ebebbfbe3162e5009187089c73cb0cdf91d0b06"',
        ),
        _falco_sample(
            "falcosecurity_falco_rules_matches_total", "counter", "43",
            'priority="4",rule_name="Full K8s Administrative Access",source="k8s_audit",tag_k8s="true"',
        ),
        _falco_sample(
            "falcosecurity_falco_rules_matches_total", "counter", "1",
            'priority="4",rule_name="Pod Created in Kube Namespace",source="k8s_audit",tag_k8s="true"',
        ),
        _falco_sample(
            "falcosecurity_scap_engine_name_info", "gauge", "1", 'engine_name="source_plugin",evt_source="k8s_audit"'
        ),
        _falco_sample("falcosecurity_falco_outputs_queue_num_drops_total", "counter", "0"),
        _falco_sample("falcosecurity_falco_reload_timestamp_nanoseconds", "gauge", "1796135970000000000"),
    ]
)  # fmt: skip


ALERT_LINE = json.dumps(
    {"hostname": "h", "output": "x", "output_fields": {}, "priority": "Warning",
     "rule": "Pod Created in Kube Namespace", "source": "k8s_audit", "tags": ["k8s"],
     "time": "2026-12-01T14:39:54.324456000Z"}
)  # fmt: skip


@dataclasses.dataclass
class Flow:
    """A stream of the forwarder's requests and what Falco made of them, read `read_after` s after `start`."""

    requests: list[Request]
    start: float
    reloaded: bool = False

    def falco_log(self, until: float) -> str:
        return log_text(m for m in snapshots(self.requests, self.start, reloaded=self.reloaded)
                        if m["output_fields"]["evt.time"] / 1e9 <= until)  # fmt: skip

    def snapshots(self) -> list[pipeline.Snapshot]:
        found = [pipeline.newest_snapshot(log_text([m])) for m in snapshots(self.requests, self.start,
                                                                            reloaded=self.reloaded)]
        return [s for s in found if s is not None]

    def forwarder(self, read_at: float) -> pipeline.ForwarderReading:
        served = deliveries(self.requests, self.start, read_at)
        last = max((r.acknowledged_at for r in self.requests if r.acknowledged_at <= read_at), default=None)
        return pipeline.ForwarderReading(
            delivered_by(self.requests, read_at), self.start, last, read_at,
            pipeline.parse_deliveries(json.dumps(served)),
        )  # fmt: skip

    def compare(self, snapshot: pipeline.Snapshot, read_at: float) -> pipeline.Comparison:
        return pipeline.compare(self.forwarder(read_at), pipeline.FalcoReading(snapshot, alerts=0, output_drops=0))


def quiet_then_one_request(start: float, dropped_burst: bool = False) -> Flow:
    """A burst just after Falco's start, a quiet spell past the minute tick, then one request of 12 events."""
    return Flow([Request(start + 10 + i * 0.01, 100, dropped=dropped_burst and i == 1) for i in range(3)]
                + [Request(start + 75, 12)], start)  # fmt: skip


BUSY = ((20, 400), (0.2, 1.0))
"""Requests every 0.2-1 s (two connections at work), 20-400 events each: some 350 events/s."""
QUIET = ((1, 60), (0.5, 3.0))
"""A lab cluster at rest: a request every 0.5-3 s of 1-60 events (the forwarder polls every 2 s)."""


def steady(
    start: float,
    seconds: float,
    seed: int,
    dropped: tuple[int, ...] = (),
    reloaded: bool = False,
    shape: tuple[tuple[int, int], tuple[float, float]] = BUSY,
) -> Flow:
    """A steady stream of requests of the given `shape`; the requests numbered in `dropped` Falco never evaluates."""
    rng = random.Random(seed)
    (fewest, most), (shortest, longest) = shape
    requests, at, index = [], start + 1.0, 0
    while at < start + seconds:
        requests.append(Request(round(at, 3), rng.randint(fewest, most), dropped=index in dropped))
        at += rng.uniform(shortest, longest)
        index += 1
    return Flow(requests, start, reloaded)


class _Endpoint:
    """An HTTP endpoint on 127.0.0.1 whose answers a test can change (``pages``: path -> body)."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        endpoint = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = endpoint.pages.get(self.path)
                payload = (body if body is not None else "not found\n").encode()
                self.send_response(200 if body is not None else 404)  # adds the Date header
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = LoopbackServer(Handler).start()


@dataclasses.dataclass
class Lab:
    root: Path
    forwarder: _Endpoint
    falco: _Endpoint
    kubeconfig: Path
    calls_file: Path
    log_file: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.calls_file.exists():
            return []
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def run(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        return main(["--kubeconfig", str(self.kubeconfig), *args], out=out), out.getvalue()

    def serve(self, flow: Flow, read_at: float, **metrics: int) -> None:
        """The forwarder and Falco's log as `flow` leaves them at `read_at`."""
        reading = flow.forwarder(read_at)
        self.forwarder.pages["/metrics"] = forwarder_metrics(
            reading.delivered, reading.last_delivery or 0.0, flow.start, **metrics
        )
        self.forwarder.pages["/deliveries"] = json.dumps(deliveries(flow.requests, flow.start, read_at))
        self.log_file.write_text(ALERT_LINE + "\n" + flow.falco_log(read_at))


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    kubectl.write_text(STAND_IN.format(python=sys.executable))
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    forwarder, falco = _Endpoint({}), _Endpoint({"/metrics": FALCO_METRICS})
    kubeconfig = tmp_path / "kubeconfig.json"
    kubeconfig.write_text("{}")
    state = Lab(tmp_path, forwarder, falco, kubeconfig, tmp_path / "calls.jsonl", tmp_path / "falco.log")
    # The readings are taken now, as the real command takes them: the stream ends a few seconds ago.
    now = time.time()
    state.serve(quiet_then_one_request(now - 80), now - 0.5)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_CALLS", str(state.calls_file))
    monkeypatch.setenv("FAKE_FALCO_LOG", str(state.log_file))
    monkeypatch.setenv(
        "FAKE_PORTS",
        json.dumps(
            {
                "deploy/audit-forwarder": forwarder.server.port,
                "pod/audit-forwarder-7f9c-abcde": forwarder.server.port,
                "deploy/falco-k8saudit": falco.server.port,
            }
        ),
    )
    try:
        yield state
    finally:
        for endpoint in (forwarder, falco):
            endpoint.server.stop()


def _row(out: str, label: str) -> str:
    """The value on the report's row `label`."""
    (line,) = [line for line in out.splitlines() if line.startswith(f"  {label}  ")]
    return line[len(label) + 2 :].split()[0]


def _number(out: str, label: str) -> int:
    return int(_row(out, label).replace(",", ""))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- make pipeline, end to end ------------------------------------------------------------------------


def test_pipeline_shows_delivered_next_to_evaluated_and_the_request_the_snapshot_left_out(lab: Lab) -> None:
    code, out = lab.run("pipeline")
    assert code == 0, out
    assert out.startswith("Audit events, forwarder -> Falco (k8s_audit), read at ")
    assert _number(out, "delivered by the forwarder") == 312
    assert _number(out, "evaluated by Falco") == 300
    assert _number(out, "difference") == 12  # after a quiet spell: never 0
    assert _row(out, "expected at the snapshot") == "300-312"
    assert _number(out, "the snapshot's request") == 12
    assert _number(out, "alerts from k8s_audit rules") == 44
    assert _number(out, "alerts Falco dropped") == 0
    assert out.splitlines()[-1].startswith("Nothing lost: Falco counted every event the forwarder delivered before")


def test_pipeline_reaches_the_forwarder_holding_the_lease_and_both_pods_by_port_forward(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_LEASE_HOLDER", "audit-forwarder-7f9c-abcde")
    assert lab.run("pipeline")[0] == 0
    calls = lab.calls()
    kubeconfig = ["--kubeconfig", str(lab.kubeconfig)]
    (lease,) = [c["argv"] for c in calls if "lease" in c["argv"]]
    assert lease == [*kubeconfig, "get", "lease", f"audit-forwarder{LEASE_SUFFIX}", "--namespace", "falco-forwarder",
                     "-o", "jsonpath={.spec.holderIdentity}"]  # fmt: skip
    forwards = [c for c in calls if "port-forward" in c["argv"]]
    assert [c["argv"] for c in forwards] == [
        [*kubeconfig, "--namespace", "falco-forwarder", "port-forward", "--address", "127.0.0.1",
         "pod/audit-forwarder-7f9c-abcde", ":9090"],
        [*kubeconfig, "--namespace", "falco", "port-forward", "--address", "127.0.0.1", "deploy/falco-k8saudit",
         ":8765"],
    ]  # fmt: skip
    (logs,) = [c["argv"] for c in calls if "logs" in c["argv"]]
    assert logs == [*kubeconfig, "logs", "--namespace", "falco", "deploy/falco-k8saudit", "-c", "falco", "--since=3m"]
    deadline = time.monotonic() + 5
    while any(_alive(c["pid"]) for c in forwards) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(c["pid"]) for c in forwards), "a kubectl port-forward was left running"


def test_pipeline_without_a_lease_reaches_the_deployment(lab: Lab) -> None:
    assert lab.run("pipeline")[0] == 0  # the stand-in has no Lease: one replica, or --no-lease
    forwards = [c["argv"] for c in lab.calls() if "port-forward" in c["argv"]]
    assert "deploy/audit-forwarder" in forwards[0]


def test_pipeline_says_dropped_when_falco_never_evaluated_a_request(lab: Lab) -> None:
    now = time.time()
    lab.serve(quiet_then_one_request(now - 80, dropped_burst=True), now - 0.5)
    code, out = lab.run("pipeline")
    assert code == 0, out
    assert _number(out, "evaluated by Falco") == 200
    assert "Falco dropped at least 100 events" in out and "kubectl -n falco logs deploy/falco-k8saudit -c falco" in out


def test_pipeline_of_an_older_forwarder_without_deliveries_gives_no_verdict(lab: Lab) -> None:
    del lab.forwarder.pages["/deliveries"]
    code, out = lab.run("pipeline")
    assert code == 0, out
    assert _number(out, "difference") == 12
    verdict = out.splitlines()[-1]
    assert "no /deliveries" in verdict and "no measure of loss" in verdict and "dropped" not in verdict


def test_pipeline_over_several_falco_pods_gives_no_verdict(lab: Lab) -> None:
    now = time.time()
    lab.serve(quiet_then_one_request(now - 80), now - 0.5, addresses=3)
    code, out = lab.run("pipeline")
    assert code == 0, out
    assert "over 3 Falco audit pods" in out and "no measure of loss" in out


def test_pipeline_refuses_to_read_a_standby_replica(lab: Lab, capsys) -> None:
    now = time.time()
    lab.serve(quiet_then_one_request(now - 80), now - 0.5, active=0)
    assert lab.run("pipeline")[0] == 1
    assert "on standby" in capsys.readouterr().err


def test_pipeline_without_a_snapshot_says_what_to_check(lab: Lab, capsys) -> None:
    lab.log_file.write_text(ALERT_LINE + "\n" + lab.log_file.read_text().replace('"k8s_audit"', '"syscall"'))
    code, _ = lab.run("pipeline")
    assert code == 1
    err = capsys.readouterr().err
    assert "Falco internal: metrics snapshot" in err and "Is the forwarder delivering" in err


def test_pipeline_names_a_port_forward_that_fails(lab: Lab, capsys) -> None:
    code, _ = lab.run("pipeline", "--forwarder-deployment", "nope")
    assert code == 1
    assert 'kubectl port-forward failed: error: deployments.apps "nope" not found' in capsys.readouterr().err


def test_pipeline_refuses_metrics_that_are_not_falcos(lab: Lab, capsys) -> None:
    lab.falco.pages["/metrics"] = lab.forwarder.pages["/metrics"]
    assert lab.run("pipeline")[0] == 1
    assert "falcosecurity_falco_version_info" in capsys.readouterr().err


def test_prometheus_text_parser_reads_labels_escapes_and_exponents() -> None:
    samples = pipeline.parse_prometheus(
        '# HELP x y\nx_total{a="b",c="q\\"uote\\\\"} 1.5e+03\nplain 7 1700000000000\n\n'
    )
    assert samples == [("x_total", {"a": "b", "c": 'q"uote\\'}, 1500.0), ("plain", {}, 7.0)]
    with pytest.raises(WorkshopError, match="line 1"):
        pipeline.parse_prometheus("not a metric line at all")


def test_pipeline_defaults_are_the_components_defaults() -> None:
    falco_defaults = {f.name: f.default for f in dataclasses.fields(FalcoSettings)}
    forwarder_defaults = {f.name: f.default for f in dataclasses.fields(AuditForwarderArgs)}
    targets = pipeline.Targets()
    assert targets.falco_namespace == falco_defaults["namespace"]
    assert targets.audit_deployment == chart_fullname(falco_defaults["audit_release_name"])
    assert pipeline.Targets(audit_release="audit").audit_deployment == chart_fullname("audit")
    assert targets.forwarder_namespace == forwarder_defaults["namespace"]
    assert targets.forwarder_deployment == forwarder_defaults["deployment_name"]
    assert pipeline.FORWARDER_METRICS_PORT == forwarder_defaults["metrics_port"]
    assert pipeline.FALCO_METRICS_PORT == METRICS_PORT
    assert pipeline.LEASE_SUFFIX == LEASE_SUFFIX


# --- the forwarder's /deliveries ----------------------------------------------------------------------------


def test_the_forwarder_serves_each_acknowledged_request_with_the_total_after_it() -> None:
    metrics = Metrics()
    server = serve(0, metrics, Health(), host="127.0.0.1")
    try:
        with FalcoReceiver() as receiver:
            client = FalcoClient(receiver.url, metrics)
            for size in (3, 1, 5):
                events = [make_event(1_796_000_000_000 + i) for i in range(size)]
                outcome = client.deliver(Batch.of([e[0] for e in events], [e[1].encode() for e in events]),
                                         threading.Event())  # fmt: skip
                assert len(outcome.acknowledged) == size
            client.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/deliveries", timeout=10) as answer:
            served = pipeline.parse_deliveries(answer.read().decode())
    finally:
        server.shutdown()
    assert served is not None
    assert [total for _, total in served.acknowledged] == [3, 4, 9]
    assert [(before, events) for _, before, events in served.requests()] == [(0, 3), (3, 1), (4, 5)]
    assert metrics.registry.get_sample_value("forwarder_events_delivered_total") == 9
    times = [at for at, _ in served.acknowledged]
    assert times == sorted(times) and served.since <= times[0] <= time.time()


def test_the_forwarders_record_forgets_old_requests_and_says_from_when_it_is_complete() -> None:
    clock = [1000.0]
    history = DeliveryHistory(keep_seconds=60, max_requests=3, clock=lambda: clock[0])
    for events in (10, 20, 30, 40):
        clock[0] += 1
        history.record(events)
    kept = history.snapshot()
    assert kept["acknowledged"] == [[1002.0, 30], [1003.0, 60], [1004.0, 100]]  # at most 3
    assert (kept["since"], kept["delivered_at_since"]) == (1001.0, 10)
    clock[0] = 1063.5
    kept = history.snapshot()  # older than a minute: forgotten, the count kept
    assert kept["acknowledged"] == [[1004.0, 100]] and (kept["since"], kept["delivered_at_since"]) == (1003.0, 60)
    read = pipeline.parse_deliveries(json.dumps(kept))
    assert read is not None and read.count_at(1002.9) is None and read.count_at(1003.5) == 60


# --- the verdict on generated snapshots -------------------------------------------------------------------

START = 1_796_000_000.0


def test_after_a_quiet_spell_the_snapshot_leaves_out_the_request_that_triggered_it_and_carries_no_rate() -> None:
    flow = quiet_then_one_request(START)
    (first,) = flow.snapshots()  # the minute tick passed in silence: written when the 12 events arrived
    assert first.time == START + 75 and first.evaluated == 300
    assert first.rate_per_second is None  # the count before was 0: Falco gives no rate
    result = flow.compare(first, read_at=START + 90)
    assert result.difference == 12 and result.lost == 0
    assert result.triggered_by == (START + 75, 12)
    assert result.verdict.startswith("Nothing lost")


def test_a_request_falco_never_evaluated_shows_as_dropped_with_its_size() -> None:
    flow = quiet_then_one_request(START, dropped_burst=True)
    (first,) = flow.snapshots()
    result = flow.compare(first, read_at=START + 90)
    assert result.lost == 100
    assert result.verdict.startswith("Falco dropped at least 100 events")


@pytest.mark.parametrize("shape", [BUSY, QUIET], ids=["busy", "quiet"])
@pytest.mark.parametrize("reloaded", [False, True], ids=["started", "reloaded"])
def test_a_steady_flow_loses_nothing_at_any_snapshot_read_at_any_moment(reloaded: bool, shape) -> None:
    flow = steady(START, 400, seed=7, reloaded=reloaded, shape=shape)
    found = flow.snapshots()
    assert len(found) >= 6
    if reloaded:  # the first event after a reload writes one at once, counting nothing yet
        assert found[0].evaluated == 0 and found[0].time == flow.requests[0].acknowledged_at
        found = found[1:]
    # No rate while the count before was 0, then one.
    assert found[0].rate_per_second is None and found[1].rate_per_second is not None
    exact = 0
    for snapshot in found:
        for delay in (0.2, 7.0, 45.0):
            result = flow.compare(snapshot, read_at=snapshot.time + delay)
            assert result.lost == 0, (snapshot, delay, result.verdict)
            assert result.difference > 0  # the snapshot's own request at least
            assert result.verdict.startswith(("Nothing lost", "No loss shows")), result.verdict
        exact += flow.compare(snapshot, snapshot.time + 1).triggered_by is not None
    assert exact >= len(found) // 2  # mostly Falco is between two requests when its minute ticks


def test_in_a_quiet_flow_a_dropped_request_shows_with_its_size_in_every_later_snapshot() -> None:
    flow = steady(START, 400, seed=11, dropped=(60,), shape=QUIET)
    lost = flow.requests[60]
    found = flow.snapshots()
    later = [s for s in found if s.time > lost.acknowledged_at + 1]
    assert later and len(later) < len(found)
    for snapshot in found:
        result = flow.compare(snapshot, read_at=snapshot.time + 3)
        if snapshot in later:
            assert result.lost is not None and 0 < result.lost <= lost.events, result.verdict
            assert result.verdict.startswith(f"Falco dropped at least {result.lost:,} events")
        else:
            assert result.lost == 0
    assert any(flow.compare(s, s.time + 3).lost == lost.events for s in later)


def test_in_a_busy_flow_a_drop_larger_than_what_falco_was_in_the_middle_of_shows() -> None:
    flow = steady(START, 300, seed=13, dropped=(200,))
    flow.requests[200] = dataclasses.replace(flow.requests[200], events=3000)
    lost = flow.requests[200]
    for snapshot in [s for s in flow.snapshots() if s.time > lost.acknowledged_at + 1]:
        result = flow.compare(snapshot, read_at=snapshot.time + 3)
        assert result.lost is not None and 0 < result.lost <= 3000 and "dropped" in result.verdict


def test_falco_counting_more_than_this_forwarder_delivered_is_no_measure() -> None:
    """The replica reached took the Lease 30 s before the snapshot: Falco counted its predecessor's too."""
    flow = steady(START, 150, seed=3)
    snapshot = flow.snapshots()[-1]
    takeover = snapshot.time - 30
    successor = Flow([r for r in flow.requests if r.acknowledged_at > takeover], takeover)
    result = successor.compare(snapshot, read_at=snapshot.time + 5)
    assert result.lost is None and "another replica" in result.verdict


def test_a_snapshot_older_than_the_forwarders_record_is_no_measure() -> None:
    flow = steady(START, 120, seed=5)
    snapshot = flow.snapshots()[0]
    reading = dataclasses.replace(
        flow.forwarder(snapshot.time + 5),
        deliveries=pipeline.Deliveries(snapshot.time + 1, 0, ()),  # the forwarder restarted after the snapshot
    )
    result = pipeline.compare(reading, pipeline.FalcoReading(snapshot, alerts=0, output_drops=0))
    assert result.lost is None and "run it again after Falco's next snapshot" in result.verdict


def test_falco_restarted_after_the_forwarder_began_counting_is_no_measure() -> None:
    flow = steady(START, 150, seed=3)
    snapshot = dataclasses.replace(flow.snapshots()[-1], counting_since=START + 60)
    result = flow.compare(snapshot, read_at=snapshot.time + 5)
    assert result.lost is None and "no measure of loss" in result.verdict


# --- the verdict on the real Falco 0.44.1 snapshots --------------------------------------------------------

REAL_SNAPSHOTS = "real-falco/falco-0.44.1-metrics-snapshots.jsonl"


def _real_snapshots() -> list[pipeline.Snapshot]:
    lines = shared_corpus_file(REAL_SNAPSHOTS).read_text(encoding="utf-8").splitlines()
    found = [pipeline.newest_snapshot(line) for line in lines if line.strip()]
    return [s for s in found if s is not None]


def _requests_behind(real: list[pipeline.Snapshot], trigger_events: int = 736) -> list[Request]:
    """Forwarder requests that lead to exactly these counts, as Falco counts: each snapshot's request is
    acknowledged 2 ms before the snapshot and left out of it; the requests between two snapshots (the earlier
    one's included) add up to the difference of their counts, sent in a burst after a quiet spell, or spread
    evenly when the next snapshot came right at its tick (a busy flow)."""
    requests: list[Request] = []
    for earlier, later in zip(real, real[1:], strict=False):
        between = later.evaluated - earlier.evaluated
        trigger = min(trigger_events, between)
        requests.append(Request(earlier.time - 0.002, trigger))
        rest, span = between - trigger, later.time - earlier.time
        pieces = max(1, int(span / 0.5)) if (later.time - (later.counting_since or 0)) % 60 < 1 else 4
        start, step = (earlier.time + 0.5, (span - 1.0) / pieces) if pieces > 4 else (earlier.time + 1.0, 0.1)
        for index in range(pieces):
            requests.append(Request(start + index * step, rest // pieces + (1 if index < rest % pieces else 0)))
    requests.append(Request(real[-1].time - 0.002, trigger_events))
    return requests


def test_the_real_snapshots_show_both_behaviours() -> None:
    real = _real_snapshots()
    assert [s.evaluated for s in real] == [0, 1159, 22874, 74767]
    # No rate while the count before was 0 (the start), then (count - count before) / seconds between.
    assert [s.rate_per_second for s in real[:2]] == [None, None]
    assert real[2].rate_per_second == pytest.approx((22874 - 1159) / (real[2].time - real[1].time), abs=0.05)
    assert real[3].rate_per_second == pytest.approx((74767 - 22874) / (real[3].time - real[2].time), abs=0.05)


def test_the_real_snapshots_without_a_rate_after_a_quiet_spell_give_nothing_lost() -> None:
    real = _real_snapshots()
    requests = _requests_behind(real)
    flow = Flow(requests, real[0].counting_since or real[0].time - 5)
    for snapshot in real:
        result = flow.compare(snapshot, read_at=snapshot.time + 10)
        # The earlier verdict: no rate, a positive difference, "Falco dropped events".
        assert result.difference > 0
        assert result.lost == 0, result.verdict
        assert result.verdict.startswith("Nothing lost")
    assert flow.compare(real[1], read_at=real[1].time + 10).triggered_by == (round(real[1].time - 0.002, 3), 736)


def test_the_real_snapshots_with_a_request_falco_did_not_count_give_dropped() -> None:
    real = _real_snapshots()
    requests = _requests_behind(real) + [Request(real[2].time - 20, 40)]  # 40 events Falco never counted
    flow = Flow(requests, real[0].counting_since or real[0].time - 5)
    assert flow.compare(real[1], read_at=real[1].time + 10).lost == 0  # before it: nothing lost
    result = flow.compare(real[2], read_at=real[2].time + 10)
    assert result.lost == 40 and result.verdict.startswith("Falco dropped at least 40 events")


def test_the_generated_snapshots_are_shaped_like_the_real_ones() -> None:
    real = json.loads(shared_corpus_file(REAL_SNAPSHOTS).read_text(encoding="utf-8").splitlines()[2])
    generated = snapshots(steady(START, 200, seed=1).requests, START)[2]
    assert set(generated) == set(real)
    assert {k: v for k, v in generated.items() if k not in ("output_fields", "time", "hostname")} == {
        k: v for k, v in real.items() if k not in ("output_fields", "time", "hostname")
    }
    read = {"evt.source", "evt.time", "falco.num_evts", "falco.num_evts_prev", "falco.reload_ts", "falco.evts_rate_sec"}
    assert read <= set(generated["output_fields"]) and read <= set(real["output_fields"])


# --- what the documentation shows ---------------------------------------------------------------------------

EXAMPLE_READ_AT = 1_796_659_386.0  # 2026-12-07T16:03:06Z


def example_report() -> str:
    """`make pipeline` on a lab cluster at rest, 20 s after Falco's snapshot: the workshop guide's example."""
    flow = steady(EXAMPLE_READ_AT - 280, 276, seed=2026, shape=QUIET)
    snapshot = [s for s in flow.snapshots() if s.time <= EXAMPLE_READ_AT - 20][-1]
    falco = pipeline.FalcoReading(dataclasses.replace(snapshot, counting_since=flow.start - 60), 44, 0)
    out = io.StringIO()
    pipeline.print_report(flow.forwarder(EXAMPLE_READ_AT), falco, out)
    return out.getvalue()


def test_the_workshop_guide_shows_what_make_pipeline_prints() -> None:
    guide = Path(__file__).resolve().parents[1] / "docs" / "workshop.md"
    shown = guide.read_text(encoding="utf-8").split("$ make pipeline\n", 1)[1].split("```", 1)[0]
    assert shown == example_report()


# --- terminal-shell under a pseudo-terminal ---------------------------------------------------------


def test_terminal_shell_gives_kubectl_a_terminal_without_one_of_its_own(lab: Lab) -> None:
    assert not sys.stdin.isatty()  # pytest's stdin: what make, CI or an IDE give too
    code, out = lab.run("trigger", "terminal-shell")
    assert code == 0, out
    assert "    stdin=True stdout=True stderr=True" in out
    (exec_call,) = [c["argv"] for c in lab.calls() if "exec" in c["argv"]]
    assert exec_call[2:9] == ["exec", "-it", "--namespace", "falco-workshop", "falco-workshop-shell", "--", "sh"]
    assert lab.calls()[-1]["argv"][2:5] == ["delete", "namespace", "falco-workshop"]


def test_the_terminal_works_when_the_process_already_holds_a_thousand_descriptors(lab: Lab) -> None:
    """select() cannot watch descriptor 1024 or above; a long-lived process (or a test run) gets there."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"the open-files limit ({soft}) is too low to reach descriptor 1024")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        code, out = lab.run("trigger", "terminal-shell")
    finally:
        for fd in held:
            os.close(fd)
    assert code == 0, out
    assert "    stdin=True stdout=True stderr=True" in out


def test_terminal_shell_passes_on_the_exec_exit_code(lab: Lab, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FAKE_EXEC_CODE", "3")
    assert lab.run("trigger", "terminal-shell")[0] == 1
    assert "kubectl exec exited with 3" in capsys.readouterr().err


def test_a_command_that_never_ends_under_the_terminal_is_killed_in_time(lab: Lab, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EXEC_SLEEP", "30")
    started = time.monotonic()
    with pytest.raises(WorkshopError, match="did not finish within 1s"):
        run_in_pseudo_terminal(["kubectl", "--kubeconfig", str(lab.kubeconfig), "exec"], timeout_seconds=1)
    assert time.monotonic() - started < 10
    (call,) = lab.calls()
    assert not _alive(call["pid"])

