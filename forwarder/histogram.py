"""A Prometheus histogram that takes a whole page or batch of observations at once.

prometheus_client's Histogram takes two locks and walks its buckets for every observation; the forwarder
observes two delays per event, tens of thousands a second, and that was a tenth of its CPU. This one sorts
the values of a call and counts each bucket by bisection, under one lock. It is exported through an
unregistered prometheus_client Histogram used as a template (public ``collect()`` only), so /metrics shows
the same samples, labels and ``_created`` policy as a Histogram would, with these counts.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import Metric


class BulkHistogram:
    """A histogram without labels (a prometheus_client Collector); ``observe_many`` is the fast path."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry,
                 *, floor: float | None = None) -> None:
        self.floor = floor
        """Values below it are observed as it (a delay measured across two clocks can come out negative)."""
        self._template = Histogram(name, documentation, buckets=buckets, registry=None)
        # The bucket bounds as the template exports them (a +Inf bucket added when missing).
        self._bounds = [float(b) for b in buckets if float(b) != math.inf] + [math.inf]
        self._cumulative = [0] * len(self._bounds)
        """Observations <= each bound."""
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float) -> None:
        self.observe_many((value,))

    def observe_many(self, values: Iterable[float]) -> None:
        """Observe each value (raised to ``floor``), as Histogram.observe would one by one (a NaN adds to the sum
        only)."""
        ordered = sorted(values)
        if not ordered:
            return
        total = sum(ordered)
        if math.isnan(total):
            # NaN falls in no bucket (and may have left the others unordered): count without it.
            ordered = sorted(v for v in ordered if not math.isnan(v))
        floor = self.floor
        if floor is not None and ordered and ordered[0] < floor:
            below = bisect_left(ordered, floor)  # sorted: the values to raise are the first ones
            total += floor * below - sum(ordered[:below])
            ordered[:below] = [floor] * below
        counts = [bisect_right(ordered, bound) for bound in self._bounds]
        with self._lock:
            self._sum += total
            cumulative = self._cumulative
            for i, count in enumerate(counts):
                cumulative[i] += count

    def describe(self) -> Iterable[Metric]:
        return self._template.describe()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            cumulative, total = list(self._cumulative), self._sum
        for family in self._template.collect():
            buckets = iter(cumulative)
            samples = []
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    sample = sample._replace(value=float(next(buckets)))
                elif sample.name.endswith("_count"):
                    sample = sample._replace(value=float(cumulative[-1]))
                elif sample.name.endswith("_sum"):
                    sample = sample._replace(value=total)
                samples.append(sample)
            family.samples = samples
            yield family
