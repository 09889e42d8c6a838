"""forwarder.histogram: bulk observations export exactly what prometheus_client's Histogram would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from forwarder.histogram import BulkHistogram
from forwarder.metrics import DELAY_BUCKETS, Metrics

# Multiples of 1/8 add up exactly in any order, so even the _sum lines must match to the last digit.
# They include each bound itself (le is inclusive), 0, values past the last bound and a negative one.
VALUES = [0.0, 0.125, 0.5, 0.625, 1.0, 2.0, 4.875, 5.0, 59.5, 60.0, 1800.0, 1800.125, 7200.0, -0.5, 3.25] * 3


def exposition(registry: CollectorRegistry) -> tuple[list[str], list[str]]:
    """/metrics text lines, and the _created lines apart (their values are creation times)."""
    lines = generate_latest(registry).decode().splitlines()
    created = [line for line in lines if not line.startswith("#") and "_created " in line]
    return [line for line in lines if line not in created], [line.rsplit(" ", 1)[0] for line in created]


def one_by_one(values: list[float], buckets: tuple[float, ...] = DELAY_BUCKETS) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    histogram = Histogram("h_seconds", "A delay", buckets=buckets, registry=registry)
    for value in values:
        histogram.observe(value)
    return registry


def in_bulk(*calls: list[float], buckets: tuple[float, ...] = DELAY_BUCKETS) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    histogram = BulkHistogram("h_seconds", "A delay", buckets, registry)
    for values in calls:
        histogram.observe_many(values)
    return registry


def test_bulk_observations_give_the_same_metrics_text_as_observing_one_by_one() -> None:
    expected = exposition(one_by_one(VALUES))
    assert exposition(in_bulk(VALUES[:7], [], VALUES[7:])) == expected
    assert exposition(in_bulk(list(reversed(VALUES)))) == expected
    assert any('le="+Inf"' in line for line in expected[0]) and expected[1] == ["h_seconds_created"]


def test_single_observations_and_an_explicit_inf_bucket_match_too() -> None:
    buckets = (1.0, 2.5, math.inf)
    registry = CollectorRegistry(auto_describe=True)
    histogram = BulkHistogram("h_seconds", "A delay", buckets, registry)
    for value in VALUES:
        histogram.observe(value)
    assert exposition(registry) == exposition(one_by_one(VALUES, buckets))


def test_a_nan_falls_in_no_bucket_and_makes_the_sum_nan_as_prometheus_does() -> None:
    values = [3.0, math.nan, 0.25, 700.0]
    assert exposition(in_bulk(values)) == exposition(one_by_one(values))


def test_values_below_the_floor_are_observed_as_the_floor_in_buckets_and_sum() -> None:
    # Delays taken across two clocks (CloudWatch's, this host's) can be negative: the forwarder's are floored at 0.
    values = [-2.5, 0.3, -0.001, 12.0, 0.0, -7.0]
    registry = CollectorRegistry(auto_describe=True)
    histogram = BulkHistogram("h_seconds", "A delay", DELAY_BUCKETS, registry, floor=0.0)
    histogram.observe_many(values[:3])
    histogram.observe_many(values[3:])
    assert exposition(registry) == exposition(one_by_one([max(0.0, v) for v in values]))
    metrics = Metrics()
    metrics.arrival_delay_seconds.observe_many([-1.0])
    metrics.end_to_end_latency_seconds.observe(-1.0)
    for name in ("forwarder_arrival_delay_seconds", "forwarder_end_to_end_latency_seconds"):
        assert metrics.registry.get_sample_value(f"{name}_sum") == 0.0


def test_the_forwarders_delay_histograms_are_registered_once_under_their_names() -> None:
    metrics = Metrics()
    metrics.arrival_delay_seconds.observe_many([0.3, 12.0])
    metrics.end_to_end_latency_seconds.observe_many([2.0])
    sample = metrics.registry.get_sample_value
    assert sample("forwarder_arrival_delay_seconds_count") == 2.0
    assert sample("forwarder_arrival_delay_seconds_bucket", {"le": "15.0"}) == 2.0
    assert sample("forwarder_arrival_delay_seconds_bucket", {"le": "0.5"}) == 1.0
    assert sample("forwarder_arrival_delay_seconds_sum") == pytest.approx(12.3)
    assert sample("forwarder_end_to_end_latency_seconds_count") == 1.0
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        BulkHistogram("forwarder_arrival_delay_seconds", "again", DELAY_BUCKETS, metrics.registry)
