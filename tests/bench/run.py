"""`make bench`: the forwarder's throughput, latency, idle API use and memory, against moto and a
local receiver that enforces the webhook contract. Not a test: it prints figures, ending with one
JSON line:

  {"events_per_s", "read_ceiling_events_per_s", "baseline_events_per_s", "p50_latency_s",
   "p99_latency_s", "idle_api_calls_per_s", "peak_rss_mib"}

Phases (moto runs in its own process; every CloudWatch call goes through the counting proxy):
  1. backlog: --events events of ~--event-size bytes in --streams streams, loaded before anything
     reads them. While the drain is timed the receiver only answers and keeps the bodies; it checks
     them against the contract once the clock has stopped (Falco parses on another machine; on
     this 2-core one the checking would take CPU from the forwarder).
     read ceiling = a bare boto3 FilterLogEvents loop (nextToken to the end) over them;
     events_per_s = the forwarder (default settings) draining them, from its first CloudWatch call
     to the receiver's acknowledgement of the last event; peak RSS (VmHWM) while it drains.
  2. baseline: ekscloudwatch's design reproduced in a few lines (read, then one sequential POST
     per event, one event per request) over the first --baseline-events of the same events.
  3. latency: a fresh forwarder (default settings: 2 s poll) while a producer writes --rate
     events/s for --latency-seconds; latency = acknowledgement at the receiver minus the moment
     PutLogEvents returned (the event is visible in CloudWatch from then on).
  4. idle: CloudWatch calls per second counted by the proxy over --idle-seconds with no new events.

Targets (issue 3): events_per_s >= 0.8 x read ceiling and >= 10 x baseline; p99 <= poll interval
+ 1 s; idle <= 1 call/s; peak RSS <= 200 MiB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import urllib3  # noqa: E402
from botocore.config import Config  # noqa: E402
from support.audit_events import make_event, new_stream_name  # noqa: E402
from support.aws_fault_proxy import AwsFaultProxy  # noqa: E402
from support.falco_receiver import FalcoReceiver  # noqa: E402
from support.forwarder_process import ForwarderProcess, forwarder_env  # noqa: E402
from support.moto_server import MotoServer, create_log_group, create_log_stream, put_events, running_moto  # noqa: E402

DEFAULT_POLL_INTERVAL_S = 2.0  # the forwarder's default, which this benchmark leaves alone


def say(message: str) -> None:
    print(message, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]


def load_backlog(logs: Any, group: str, streams: list[str], total: int, size: int) -> list[str]:
    """Put `total` events spread over `streams`, timestamps over the last few minutes; their auditIDs."""
    ids: list[str] = []
    start = int(time.time() * 1000) - 5 * 60 * 1000
    per_stream = -(-total // len(streams))
    chunk = 2_000
    for k, stream in enumerate(streams):
        create_log_stream(logs, group, stream)
        count = min(per_stream, total - k * per_stream)
        for offset in range(0, count, chunk):
            batch = []
            for i in range(offset, min(count, offset + chunk)):
                # Spread over 4 minutes, with several events per millisecond as the API server does.
                timestamp = start + (i * 240_000) // max(count, 1)
                audit_id, line = make_event(timestamp, size=size)
                ids.append(audit_id)
                batch.append((timestamp, line))
            put_events(logs, group, stream, batch)
    return ids


def read_all(logs: Any, group: str, prefix: str) -> list[dict[str, Any]]:
    """A bare FilterLogEvents loop to the end of the group's events."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": prefix}
    while True:
        page = logs.filter_log_events(**kwargs)
        events.extend(page.get("events", []))
        token = page.get("nextToken")
        if not token:
            return events
        kwargs["nextToken"] = token


def baseline(logs: Any, group: str, prefix: str, url: str, limit: int) -> tuple[int, float]:
    """ekscloudwatch's design: read, then POST each event on its own, one after the other."""
    http = urllib3.PoolManager(retries=False)
    started = time.monotonic()
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": prefix}
    sent = 0
    while sent < limit:
        # ekscloudwatch asks for full pages; asking for no more than the events posted here keeps
        # the baseline from paying for reads it does not use.
        page = logs.filter_log_events(**kwargs, limit=min(10_000, limit - sent))
        for event in page.get("events", []):
            if sent >= limit:
                break
            http.request("POST", url, body=event["message"].encode(), headers={"Content-Type": "application/json"})
            sent += 1
        token = page.get("nextToken")
        if not token:
            break
        kwargs["nextToken"] = token
    elapsed = time.monotonic() - started
    return sent, elapsed


def start_forwarder(
    group: str, receiver: FalcoReceiver, proxy: AwsFaultProxy, moto: MotoServer, log: Path, *extra: str
) -> ForwarderProcess:
    env = forwarder_env(moto.env(endpoint_url=proxy.endpoint_url))
    args = ["run", "--log-group", group, "--falco-url", receiver.url, *extra]
    return ForwarderProcess(args, env, log).start()


class RssWatcher:
    """Samples the forwarder's VmHWM until stopped (the kernel keeps the peak; sampling only reads it)."""

    def __init__(self, fwd: ForwarderProcess) -> None:
        self.fwd = fwd
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.sample()

    def sample(self) -> None:
        value = self.fwd.peak_rss_mib()
        if value is not None:
            self.peak = max(self.peak, value)

    def __enter__(self) -> RssWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()
        self._stop.set()
        self._thread.join(timeout=5)


def phase_backlog(
    args: argparse.Namespace, moto: MotoServer, proxy: AwsFaultProxy, receiver: FalcoReceiver, workdir: Path
) -> dict[str, float]:
    group = "/aws/eks/bench-backlog/cluster"
    logs = moto.client("logs", config=Config(read_timeout=300))
    create_log_group(logs, group)
    streams = [new_stream_name() for _ in range(args.streams)]
    say(f"[backlog] loading {args.events} events of ~{args.event_size} B into {args.streams} streams ...")
    started = time.monotonic()
    ids = load_backlog(logs, group, streams, args.events, args.event_size)
    say(f"[backlog] loaded in {time.monotonic() - started:.1f} s")

    reader = moto.client("logs", endpoint_url=proxy.endpoint_url, config=Config(read_timeout=300))
    ceiling = 0.0
    for attempt in range(args.ceiling_passes):  # the best pass: a ceiling is what the machine can do
        started = time.monotonic()
        read = read_all(reader, group, "kube-apiserver-audit")
        ceiling_s = time.monotonic() - started
        if len(read) != len(ids):
            raise SystemExit(f"read ceiling loop saw {len(read)} events, expected {len(ids)}")
        del read
        ceiling = max(ceiling, len(ids) / ceiling_s)
        say(
            f"[ceiling] pass {attempt + 1}: bare FilterLogEvents loop read {len(ids)} events in {ceiling_s:.2f} s "
            f"= {len(ids) / ceiling_s:,.0f} events/s"
        )

    proxy.reset_counts()
    receiver.reset_records()
    wanted = set(ids)
    # The receiver keeps bodies and checks them once the clock has stopped: Falco parses on
    # another machine, here it would take CPU from the forwarder on this one.
    receiver.defer_checks(True)
    fwd = start_forwarder(group, receiver, proxy, moto, workdir / "backlog.log", "--start-at", "1h")
    try:
        with RssWatcher(fwd) as rss:
            ok = receiver.wait_for(lambda r: r.deferred_marks >= len(wanted) or not fwd.alive(), args.timeout)
            done = time.monotonic()
        receiver.defer_checks(False)
        receiver.check_deferred()
        if not ok or receiver.unique_ids != wanted:
            raise SystemExit(
                f"forwarder delivered {len(receiver.unique_ids)} of {len(wanted)} backlog events\n{fwd.tail()}"
            )
        calls = proxy.calls()
        first_call = min(c.at for c in calls)
        drain_s = done - first_call
        rate = len(wanted) / drain_s
        duplicates = len(receiver.accepted_ids) - len(wanted)
        receiver_busy = sum(r.busy_s for r in receiver.requests)
        receiver_check = sum(r.check_s for r in receiver.requests)
        say(
            f"[forwarder] drained {len(wanted)} events in {drain_s:.2f} s = {rate:,.0f} events/s "
            f"({len(calls)} CloudWatch calls, {len(receiver.requests)} POSTs, {duplicates} duplicates, "
            f"peak RSS {rss.peak:.1f} MiB, contract violations {len(receiver.violations)}; "
            f"the receiver spent {receiver_busy - receiver_check:.1f} s receiving requests while timed and "
            f"{receiver_check:.1f} s checking them afterwards)"
        )
    finally:
        fwd.terminate(timeout=15)
        fwd.kill()

    say(f"[baseline] one sequential POST per event over the first {args.baseline_events} events ...")
    receiver.reset_records()
    sent, elapsed = baseline(reader, group, "kube-apiserver-audit", receiver.url, args.baseline_events)
    base_rate = sent / elapsed
    say(f"[baseline] {sent} events in {elapsed:.2f} s = {base_rate:,.0f} events/s")
    return {
        "events_per_s": rate,
        "read_ceiling_events_per_s": ceiling,
        "baseline_events_per_s": base_rate,
        "backlog_peak_rss_mib": rss.peak,
    }


def phase_latency_and_idle(
    args: argparse.Namespace, moto: MotoServer, proxy: AwsFaultProxy, receiver: FalcoReceiver, workdir: Path
) -> dict[str, float]:
    group = "/aws/eks/bench-live/cluster"
    logs = moto.client("logs")
    create_log_group(logs, group)
    streams = [new_stream_name() for _ in range(2)]
    for stream in streams:
        create_log_stream(logs, group, stream)
    receiver.reset_records()
    # The group is new: "1m" only makes sure events stamped before the start (--ingestion-delay) count.
    fwd = start_forwarder(group, receiver, proxy, moto, workdir / "live.log", "--start-at", "1m")
    try:
        with RssWatcher(fwd) as rss:
            # Ready once the metrics endpoint answers; then the producer starts.
            deadline = time.monotonic() + 60
            while fwd.health("/readyz") != 200 and time.monotonic() < deadline and fwd.alive():
                time.sleep(0.1)
            visible: dict[str, float] = {}
            tick = 0.1
            per_tick = max(1, int(args.rate * tick))
            say(f"[latency] producing {args.rate} events/s for {args.latency_seconds} s ...")
            next_at = time.monotonic()
            end_at = next_at + args.latency_seconds
            behind = 0
            ticks = 0
            while time.monotonic() < end_at:
                # --ingestion-delay stamps events that much before they become visible, as
                # CloudWatch's own ingestion delay does (seconds, in practice).
                now_ms = int((time.time() - args.ingestion_delay) * 1000)
                batch = [make_event(now_ms, size=args.event_size) for _ in range(per_tick)]
                stream = streams[ticks % len(streams)]  # alternate streams, as EKS writes several
                ticks += 1
                put_events(logs, group, stream, [(now_ms, line) for _, line in batch])
                seen = time.time()
                for audit_id, _ in batch:
                    visible[audit_id] = seen
                next_at += tick
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                else:
                    behind += 1
            wanted = set(visible)
            ok = receiver.wait_for(lambda r: wanted <= r.unique_ids or not fwd.alive(), args.timeout)
            if not ok:
                raise SystemExit(f"live events not all delivered\n{fwd.tail()}")
            acks = receiver.ack_times()
            latencies = [acks[a] - visible[a] for a in wanted]
            p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
            say(
                f"[latency] {len(wanted)} events: p50 {p50:.3f} s, p99 {p99:.3f} s, max {max(latencies):.3f} s, "
                f"mean {statistics.fmean(latencies):.3f} s (producer fell behind on {behind} ticks)"
            )

            say(f"[idle] counting CloudWatch calls for {args.idle_seconds} s with nothing new ...")
            time.sleep(DEFAULT_POLL_INTERVAL_S)  # let the last poll of the burst finish
            start = time.monotonic()
            time.sleep(args.idle_seconds)
            end = time.monotonic()
            idle_calls = proxy.calls_between(start, end)
            by_op = {}
            for call in proxy.calls():
                if start <= call.at < end:
                    by_op[call.operation] = by_op.get(call.operation, 0) + 1
            idle_rate = idle_calls / (end - start)
            say(f"[idle] {idle_calls} calls in {end - start:.1f} s = {idle_rate:.2f}/s {by_op}")
    finally:
        fwd.terminate(timeout=15)
        fwd.kill()
    say(f"[live] forwarder peak RSS {rss.peak:.1f} MiB; contract violations {len(receiver.violations)}")
    return {
        "p50_latency_s": p50,
        "p99_latency_s": p99,
        "idle_api_calls_per_s": idle_rate,
        "live_peak_rss_mib": rss.peak,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="backlog size (default 200000)")
    parser.add_argument("--event-size", type=int, default=1500, help="bytes per event (default 1500)")
    parser.add_argument("--streams", type=int, default=4, help="streams the backlog is spread over (default 4)")
    parser.add_argument("--ceiling-passes", type=int, default=2, help="read-ceiling passes, best kept (default 2)")
    parser.add_argument("--baseline-events", type=int, default=5_000, help="events for the baseline (default 5000)")
    parser.add_argument("--rate", type=int, default=1_000, help="events/s in the latency phase (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency phase (default 20)")
    parser.add_argument(
        "--ingestion-delay", type=float, default=0.0, help="latency phase: events stamped this long before visible"
    )
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="length of the idle count (default 10)")
    parser.add_argument("--timeout", type=float, default=240.0, help="longest wait for a delivery (default 240)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="forwarder-bench-") as tmp, running_moto("process") as moto:
        workdir = Path(tmp)
        with (
            AwsFaultProxy(moto.endpoint_url) as proxy,
            FalcoReceiver(record_ack_times=True, answer_before_parse=True) as receiver,
        ):
            figures = phase_backlog(args, moto, proxy, receiver, workdir)
            figures.update(phase_latency_and_idle(args, moto, proxy, receiver, workdir))
            violations = receiver.violations
    if violations:
        say(f"contract violations seen by the receiver: {violations[:5]}")
    result = {
        "events_per_s": round(figures["events_per_s"], 1),
        "read_ceiling_events_per_s": round(figures["read_ceiling_events_per_s"], 1),
        "baseline_events_per_s": round(figures["baseline_events_per_s"], 1),
        "p50_latency_s": round(figures["p50_latency_s"], 3),
        "p99_latency_s": round(figures["p99_latency_s"], 3),
        "idle_api_calls_per_s": round(figures["idle_api_calls_per_s"], 3),
        "peak_rss_mib": round(max(figures["backlog_peak_rss_mib"], figures["live_peak_rss_mib"]), 1),
    }
    targets = [
        ("events_per_s >= 0.8 x read ceiling", result["events_per_s"] >= 0.8 * result["read_ceiling_events_per_s"]),
        ("events_per_s >= 10 x baseline", result["events_per_s"] >= 10 * result["baseline_events_per_s"]),
        ("p99 latency <= poll interval + 1 s", result["p99_latency_s"] <= DEFAULT_POLL_INTERVAL_S + 1),
        ("idle API calls <= 1/s", result["idle_api_calls_per_s"] <= 1.0),
        ("peak RSS <= 200 MiB", result["peak_rss_mib"] <= 200),
    ]
    for name, met in targets:
        say(f"  {'met ' if met else 'MISSED'}  {name}")
    say(f"total {time.monotonic() - started:.0f} s")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
