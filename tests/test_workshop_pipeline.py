"""`make pipeline` and the terminal-shell example against a stand-in kubectl, as real subprocesses.

The stand-in is an executable named `kubectl` first on PATH: `port-forward` prints what kubectl
prints and points at a local HTTP server on 127.0.0.1 serving metrics text in the forwarder's and
Falco 0.44.1's formats; `logs` prints Falco output lines; `exec` reports whether it was given a
terminal. Everything ends by itself: servers are shut down and stand-ins are bounded in time.
"""

from __future__ import annotations

import calendar
import dataclasses
import io
import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.loopback_http import LoopbackServer, QuietHandler

from components.audit_forwarder import AuditForwarderArgs
from components.falco import METRICS_PORT, FalcoSettings, chart_fullname
from workshop import pipeline
from workshop.cli import main
from workshop.kubectl import WorkshopError, run_in_pseudo_terminal

STAND_IN = """#!{python}
import json, os, sys, time
argv = sys.argv[1:]
with open(os.environ["FAKE_KUBECTL_CALLS"], "a") as calls:
    calls.write(json.dumps({{"argv": argv, "pid": os.getpid()}}) + "\\n")
command = next(a for a in argv[2:] if not a.startswith("-") and a not in ("falco", "falco-forwarder"))
if command == "port-forward":
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

FORWARDER_UPTIME = 3600.0
FALCO_UPTIME = 3660.0


def forwarder_metrics(delivered: int, last_delivery_age: float) -> str:
    """What prometheus_client writes for the forwarder's counters (forwarder/metrics.py), ages in seconds."""
    now = time.time()
    started, last_delivery = now - FORWARDER_UPTIME, now - last_delivery_age
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


def snapshot_line(evaluated: int, age: float, rate: float | None = 3.0, uptime: float = FALCO_UPTIME) -> str:
    """A "Falco internal: metrics snapshot" as Falco 0.44.1 writes it with json_output (keys sorted),
    taken `age` seconds ago by a Falco (re)started `uptime` seconds ago."""
    at = time.time() - age
    reload_ns = int((time.time() - uptime) * 1e9)
    fields: dict[str, Any] = {
        "evt.hostname": "falco-k8saudit-6c8d9f7b5d-q2x8z",
        "evt.source": "k8s_audit",
        "evt.time": int(at * 1e9),
        "falco.duration_sec": int(at - reload_ns / 1e9),
        "falco.host_boot_ts": 1796100000000000000,
        "falco.host_num_cpus": 2,
        "falco.num_evts": evaluated,
        "falco.num_evts_prev": max(0, evaluated - 180),
        "falco.outputs_queue_num_drops": 0,
        "falco.reload_ts": reload_ns,
        "falco.rules.Full_K8s_Administrative_Access": 43,
        "falco.rules.matches_total": 44,
        "falco.start_ts": reload_ns,
        "falco.version": "0.44.1",
        "scap.engine_name": "source_plugin",
    }
    if rate is not None:
        fields["falco.evts_rate_sec"] = rate
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e9):09d}Z"
    return json.dumps(
        {
            "hostname": "falco-k8saudit-6c8d9f7b5d-q2x8z",
            "output": "Falco metrics snapshot",
            "output_fields": dict(sorted(fields.items())),
            "priority": "Informational",
            "rule": "Falco internal: metrics snapshot",
            "source": "internal",
            "time": stamp,
        },
        separators=(",", ":"),
    )


ALERT_LINE = json.dumps(
    {"hostname": "h", "output": "x", "output_fields": {}, "priority": "Warning",
     "rule": "Pod Created in Kube Namespace", "source": "k8s_audit", "tags": ["k8s"],
     "time": "2026-12-01T14:39:54.324456000Z"}
)  # fmt: skip


class _Metrics:
    """A /metrics endpoint on 127.0.0.1 whose text a test can change (``body``)."""

    def __init__(self, body: str) -> None:
        self.body = body
        page = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                payload = page.body.encode()
                self.send_response(200 if self.path == "/metrics" else 404)  # adds the Date header
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = LoopbackServer(Handler).start()


@dataclasses.dataclass
class Lab:
    root: Path
    forwarder: _Metrics
    falco: _Metrics
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


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    kubectl = bindir / "kubectl"
    kubectl.write_text(STAND_IN.format(python=sys.executable))
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    forwarder, falco = _Metrics(forwarder_metrics(1843, 1)), _Metrics(FALCO_METRICS)
    kubeconfig = tmp_path / "kubeconfig.json"
    kubeconfig.write_text("{}")
    state = Lab(tmp_path, forwarder, falco, kubeconfig, tmp_path / "calls.jsonl", tmp_path / "falco.log")
    state.log_file.write_text("\n".join([ALERT_LINE, snapshot_line(1700, 80), snapshot_line(1800, 20)]) + "\n")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KUBECTL_CALLS", str(state.calls_file))
    monkeypatch.setenv("FAKE_FALCO_LOG", str(state.log_file))
    monkeypatch.setenv(
        "FAKE_PORTS",
        json.dumps(
            {"deploy/audit-forwarder": forwarder.server.port, "deploy/falco-k8saudit": falco.server.port}
        ),
    )
    try:
        yield state
    finally:
        for endpoint in (forwarder, falco):
            endpoint.server.stop()


def _row(out: str, label: str) -> int:
    """The number on the report's row `label`."""
    (line,) = [line for line in out.splitlines() if line.startswith(f"  {label}  ")]
    return int(line[len(label) + 2 :].split()[0].replace(",", ""))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- make pipeline ---------------------------------------------------------------------------------


def test_pipeline_shows_delivered_next_to_evaluated_with_the_difference(lab: Lab) -> None:
    code, out = lab.run("pipeline")
    assert code == 0, out
    assert out.startswith("Audit events, forwarder -> Falco (k8s_audit), read at ")
    assert _row(out, "delivered by the forwarder") == 1843
    # The newest k8s_audit snapshot, not the older one.
    assert _row(out, "evaluated by Falco") == 1800
    assert _row(out, "difference") == 43
    assert _row(out, "arrived after the snapshot") in range(57, 64)  # 3/s x ~20 s
    assert _row(out, "alerts from k8s_audit rules") == 44
    assert _row(out, "alerts Falco dropped") == 0
    assert "nothing lost" in out


def test_pipeline_reaches_both_pods_by_port_forward_and_stops_the_forwards(lab: Lab) -> None:
    assert lab.run("pipeline")[0] == 0
    calls = lab.calls()
    forwards = [c for c in calls if "port-forward" in c["argv"]]
    kubeconfig = ["--kubeconfig", str(lab.kubeconfig)]
    assert [c["argv"] for c in forwards] == [
        [*kubeconfig, "--namespace", "falco-forwarder", "port-forward", "--address", "127.0.0.1",
         "deploy/audit-forwarder", ":9090"],
        [*kubeconfig, "--namespace", "falco", "port-forward", "--address", "127.0.0.1", "deploy/falco-k8saudit",
         ":8765"],
    ]  # fmt: skip
    (logs,) = [c["argv"] for c in calls if "logs" in c["argv"]]
    assert logs == [*kubeconfig, "logs", "--namespace", "falco", "deploy/falco-k8saudit", "-c", "falco", "--since=3m"]
    deadline = time.monotonic() + 5
    while any(_alive(c["pid"]) for c in forwards) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(c["pid"]) for c in forwards), "a kubectl port-forward was left running"


@pytest.mark.parametrize(
    ("delivered", "last_delivery_age", "evaluated", "falco_uptime", "difference", "verdict"),
    [
        # More missing than arrived after the snapshot (3/s x 20 s): Falco dropped events.
        (5000, 1, 1800, FALCO_UPTIME, 3200, "dropped some"),
        # Nothing delivered since the snapshot, and the counts agree.
        (1800, 30, 1800, FALCO_UPTIME, 0, "Falco evaluated every event"),
        # Falco restarted after the forwarder began counting: no comparison.
        (1843, 1, 900, 600, 943, "no measure of loss"),
        # The forwarder restarted after Falco: its count is the smaller one.
        (700, 1, 1800, FALCO_UPTIME, -1100, "the forwarder restarted"),
    ],
)
def test_pipeline_says_what_the_difference_means(
    lab: Lab,
    delivered: int,
    last_delivery_age: float,
    evaluated: int,
    falco_uptime: float,
    difference: int,
    verdict: str,
) -> None:
    lab.forwarder.body = forwarder_metrics(delivered, last_delivery_age)
    lab.log_file.write_text(snapshot_line(evaluated, 20, uptime=falco_uptime) + "\n")
    code, out = lab.run("pipeline")
    assert code == 0
    assert _row(out, "difference") == difference
    assert verdict in out


def test_pipeline_without_a_snapshot_says_what_to_check(lab: Lab, capsys) -> None:
    lab.log_file.write_text(ALERT_LINE + "\n" + snapshot_line(5, 5).replace('"k8s_audit"', '"syscall"') + "\n")
    code, _ = lab.run("pipeline")
    assert code == 1
    err = capsys.readouterr().err
    assert "Falco internal: metrics snapshot" in err and "Is the forwarder delivering" in err


def test_pipeline_names_a_port_forward_that_fails(lab: Lab, capsys) -> None:
    code, _ = lab.run("pipeline", "--forwarder-deployment", "nope")
    assert code == 1
    assert 'kubectl port-forward failed: error: deployments.apps "nope" not found' in capsys.readouterr().err


def test_pipeline_refuses_metrics_that_are_not_falcos(lab: Lab, capsys) -> None:
    lab.falco.body = forwarder_metrics(1, 0)
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


def test_the_workshop_guide_shows_what_make_pipeline_prints() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "workshop.md").read_text(encoding="utf-8")
    shown = guide.split("$ make pipeline\n", 1)[1].split("```", 1)[0]
    read_at = calendar.timegm(time.strptime("2026-12-01T16:03:06", "%Y-%m-%dT%H:%M:%S"))
    forwarder = pipeline.ForwarderReading(1843, read_at - 3600, read_at - 1, read_at)
    falco = pipeline.FalcoReading(pipeline.Snapshot(1800, read_at - 20, read_at - 3660, 3.0), alerts=44, output_drops=0)
    out = io.StringIO()
    pipeline.print_report(forwarder, falco, out)
    assert shown == out.getvalue()
