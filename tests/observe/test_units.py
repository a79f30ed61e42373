"""The batched histogram writes exactly what prometheus_client's own `observe` would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.observe.metrics import OVERHEAD_BUCKETS, _Histogram


def test_batched_observations_equal_prometheus_observe():
    registry = CollectorRegistry()
    batched = Histogram("batched_seconds", "x", ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=registry)
    direct = Histogram("direct_seconds", "x", ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=registry)
    tally = _Histogram(batched.labels("chat"))
    # bounds themselves, between bounds, below the first, above the last
    values = [*OVERHEAD_BUCKETS, 0.0, 0.00003, 0.0007, 0.02, 0.3, 7.5, 120.0, 0.001, 0.001]
    for round_ in range(2):  # a second flush adds to the first
        for value in values:
            tally.observe(value)
            direct.labels("chat").observe(value)
        tally.flush()
        assert tally.sum == 0 and not any(tally.counts)
        text = generate_latest(registry).decode()
        mine, theirs = samples(text, "batched"), samples(text, "direct")
        assert mine.pop("sum") == pytest.approx(theirs.pop("sum"), rel=1e-12)  # added in another order
        assert mine == theirs, round_


def samples(text: str, name: str) -> dict[str, float]:
    """Buckets, count and sum (not the creation time)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(f"{name}_seconds") and not sample.name.endswith("_created"):
                kind = sample.name.removeprefix(f"{name}_seconds_")
                found[kind + sample.labels.get("le", "")] = sample.value
    assert len(found) == len(OVERHEAD_BUCKETS) + 3  # the buckets, +Inf, count, sum
    return found
