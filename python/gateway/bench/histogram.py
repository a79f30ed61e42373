"""A log-linear histogram of durations in microseconds (the HdrHistogram idea, small).

Exact below 256 µs; above, 128 sub-buckets per power of two, so any percentile is within 0.4%
of the true value. Memory is fixed (a few thousand counters) however long a run lasts, and
histograms from several load processes merge by adding counters.
"""

from __future__ import annotations

import math
from typing import Any

EXACT = 256
SUB_BUCKETS = 128
MAX_MICROS = (1 << 36) - 1  # about 19 hours: larger values are clamped
BUCKETS = EXACT + (36 - 8) * SUB_BUCKETS


def bucket_of(micros: int) -> int:
    if micros < EXACT:
        return micros if micros > 0 else 0
    if micros > MAX_MICROS:
        micros = MAX_MICROS
    shift = micros.bit_length() - 8
    return EXACT + (shift - 1) * SUB_BUCKETS + (micros >> shift) - SUB_BUCKETS


def value_of(bucket: int) -> float:
    """The middle of a bucket, in µs."""
    if bucket < EXACT:
        return float(bucket)
    offset = bucket - EXACT
    shift = offset // SUB_BUCKETS + 1
    low = (offset % SUB_BUCKETS + SUB_BUCKETS) << shift
    return low + (1 << shift) / 2.0


class Histogram:
    __slots__ = ("count", "counts", "max", "min", "total")

    def __init__(self) -> None:
        self.counts = [0] * BUCKETS
        self.count = 0
        self.total = 0
        self.max = 0
        self.min = MAX_MICROS

    def record(self, micros: int) -> None:
        self.counts[bucket_of(micros)] += 1
        self.count += 1
        self.total += micros
        if micros > self.max:
            self.max = micros
        if micros < self.min:
            self.min = micros

    def record_seconds(self, seconds: float) -> None:
        self.record(int(seconds * 1e6) if seconds > 0 else 0)

    def percentile(self, pct: float) -> float:
        """µs at or below which `pct` % of the values lie (0 when empty); never above max."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(pct / 100.0 * self.count))
        seen = 0
        for bucket, n in enumerate(self.counts):
            if n:
                seen += n
                if seen >= rank:
                    return min(max(value_of(bucket), float(self.min)), float(self.max))
        return float(self.max)

    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def merge(self, other: Histogram) -> None:
        for bucket, n in enumerate(other.counts):
            if n:
                self.counts[bucket] += n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)

    def to_dict(self) -> dict[str, Any]:
        """Sparse form, for passing between processes."""
        sparse = {i: n for i, n in enumerate(self.counts) if n}
        return {"counts": sparse, "count": self.count, "total": self.total, "max": self.max, "min": self.min}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Histogram:
        hist = cls()
        for bucket, n in data["counts"].items():
            hist.counts[int(bucket)] = n
        hist.count, hist.total, hist.max, hist.min = data["count"], data["total"], data["max"], data["min"]
        return hist

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p99/p99.9/max/mean in milliseconds."""
        figures = {
            "p50": self.percentile(50),
            "p90": self.percentile(90),
            "p99": self.percentile(99),
            "p99.9": self.percentile(99.9),
            "max": float(self.max),
            "mean": self.mean(),
        }
        return {key: round(value / 1000.0, 3) for key, value in figures.items()}
