"""Latency of the real read schedule against a simulated CloudWatch and clock (tests and `make bench`).

The forwarder's polling source is built by its production factory with the default settings
(tests/fwd_fakes.Harness); only the clock and the CloudWatch client are simulated. The simulated
CloudWatch makes each event visible N seconds after its timestamp and pages like FilterLogEvents (1 MB
or 10,000 events). A producer writes `rate` events/s of `size` bytes for `produce_s` seconds; the run
goes on until every event had time to arrive (2N + 15 s after the last timestamp, plus a minute).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from fwd_fakes import Harness

STREAMS = ("kube-apiserver-audit-0a0a", "kube-apiserver-audit-0b0b")


@dataclass
class SimResult:
    delay_s: float
    rate: int
    events: int
    delivered: int
    duplicates: int
    latencies: list[float] = field(repr=False)
    excess: list[float] = field(repr=False)
    """Per delivered event: its latency minus its bound 2N + 15 s (<= 0 when the bound held)."""
    max_calls_per_s: int
    calls_per_s: float
    stages_given_up: tuple[str, ...]

    @property
    def bound_s(self) -> float:
        return 2 * self.delay_s + 15

    @property
    def worst_s(self) -> float:
        return max(self.latencies) if self.latencies else float("nan")

    @property
    def median_s(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


def simulate(delay_s: float | Callable[[int], float], rate: int, *, size: int = 1500, produce_s: int = 60,
             warmup_s: int = 30, **settings: object) -> SimResult:
    """``delay_s``: seconds from timestamp to visibility, for every event or per event index."""
    h = Harness(**settings)  # type: ignore[arg-type]
    t0 = h.clock.now
    body = "x" * size
    delay_of = delay_s if callable(delay_s) else (lambda _i: float(delay_s))  # type: ignore[misc]
    state = {"i": 0, "second": 0}
    ids: list[tuple[str, float]] = []
    # A warm-up of the same load before the measured events (the schedule has learned the data rate).
    total_s = warmup_s + produce_s

    def produce(now: float) -> None:
        while state["second"] < total_s and t0 + state["second"] <= now:
            second = state["second"]
            for k in range(rate):
                ts_ms = int((t0 + second) * 1000) + k * 1000 // max(rate, 1)
                i = state["i"]
                state["i"] += 1
                delay = delay_of(i)
                event_id = h.logs.add(STREAMS[i % 2], ts_ms, body, visible_at=ts_ms / 1000 + delay)
                if second >= warmup_s:
                    ids.append((event_id, delay))
            state["second"] += 1

    longest = max((delay_of(i) for i in range(rate * total_s)), default=0.0)
    end = t0 + total_s + 2 * longest + 15 + 60
    h.run_until(end, on_step=produce)
    calls = [at for at, _ in h.logs.calls]
    window_max = 0
    j = 0
    for i, at in enumerate(calls):
        while calls[j] < at - 1.0 + 1e-9:
            j += 1
        window_max = max(window_max, i - j + 1)
    latencies = [h.latency(i) for i, _ in ids if i in h.delivered_at]
    excess = [h.latency(i) - (2 * delay + 15) for i, delay in ids if i in h.delivered_at]
    return SimResult(
        delay_s=float(delay_s) if not callable(delay_s) else float("nan"),
        rate=rate,
        events=len(ids),
        delivered=sum(1 for i, _ in ids if h.delivered[i] >= 1),
        duplicates=sum(max(0, n - 1) for n in h.delivered.values()),
        latencies=latencies,
        excess=excess,
        max_calls_per_s=window_max,
        calls_per_s=len(calls) / (end - t0),
        stages_given_up=tuple(s.name for s in h.schedule.stages if s not in h.schedule.active),
    )
