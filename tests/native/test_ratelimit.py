"""Token buckets of the Rust extension (real monotonic clock)."""

from __future__ import annotations

import threading
import time

import pytest

from gateway._native import KeyedTokenBuckets, TokenBucket


def test_admits_exactly_capacity_then_refuses() -> None:
    bucket = TokenBucket(5, 60.0)
    results = [bucket.try_acquire() for _ in range(5)]
    assert [r[:2] for r in results] == [(True, 4), (True, 3), (True, 2), (True, 1), (True, 0)]
    assert all(r[2] == 0.0 for r in results[:4])
    allowed, remaining, retry_after = bucket.try_acquire()
    assert (allowed, remaining) == (False, 0)
    assert 0 < retry_after <= 12.0  # one token per 60s / 5


def test_refused_request_takes_nothing_and_n_above_capacity() -> None:
    bucket = TokenBucket(4, 3600.0)
    assert bucket.try_acquire(3)[0]
    assert bucket.try_acquire(2)[:2] == (False, 1)
    assert bucket.try_acquire(5)[:2] == (False, 1)
    assert bucket.try_acquire(0)[:2] == (True, 1)
    assert bucket.try_acquire(1)[:2] == (True, 0)


def test_refund_is_capped_at_capacity() -> None:
    bucket = TokenBucket(3, 3600.0)
    assert bucket.try_acquire(3)[0]
    bucket.refund(1)
    assert bucket.try_acquire(1)[:2] == (True, 0)
    bucket.refund(100)
    assert bucket.try_acquire(3)[:2] == (True, 0)


def test_refills_over_time() -> None:
    bucket = TokenBucket(10, 2.0)  # one token per 200ms
    assert bucket.try_acquire(10)[0]
    allowed, _, retry_after = bucket.try_acquire()
    assert not allowed and 0 < retry_after <= 0.2
    time.sleep(retry_after + 0.01)
    assert bucket.try_acquire()[0]


def test_properties_and_validation() -> None:
    bucket = TokenBucket(7, 1.5)
    assert (bucket.capacity, bucket.period_seconds) == (7, 1.5)
    assert "capacity=7" in repr(bucket)
    for capacity, period in ((0, 1.0), (-1, 1.0), (1, 0.0), (1, -1.0), (1, float("nan")), (1, float("inf"))):
        with pytest.raises(ValueError):
            TokenBucket(capacity, period)
    with pytest.raises(ValueError):
        bucket.try_acquire(-1)
    with pytest.raises(AttributeError):
        bucket.capacity = 3  # type: ignore[misc]


def test_threads_admit_exactly_capacity() -> None:
    bucket = TokenBucket(1000, 3600.0)
    admitted: list[int] = []

    def worker() -> None:
        admitted.append(sum(bucket.try_acquire()[0] for _ in range(500)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 1000


def test_keyed_buckets_are_independent() -> None:
    buckets = KeyedTokenBuckets(2, 3600.0)
    assert (buckets.capacity, buckets.period_seconds, buckets.max_keys) == (2, 3600.0, 100_000)
    assert len(buckets) == 0
    assert buckets.try_acquire("a", 2)[:2] == (True, 0)
    allowed, remaining, retry_after = buckets.try_acquire("a")
    assert (allowed, remaining) == (False, 0) and retry_after > 0
    assert buckets.try_acquire("b") == (True, 1, 0.0)
    assert len(buckets) == 2
    buckets.refund("a", 1)
    assert buckets.try_acquire(key="a", n=1)[0]


def test_keyed_max_keys_bounds_memory() -> None:
    buckets = KeyedTokenBuckets(1, 3600.0, max_keys=20)
    for i in range(500):
        assert buckets.try_acquire(f"k{i}")[0]
        assert len(buckets) <= 20
    assert not buckets.try_acquire("k499")[0]  # most recent keys kept their state
    with pytest.raises(ValueError):
        KeyedTokenBuckets(1, 1.0, max_keys=0)


def test_keyed_evicts_idle_full_buckets() -> None:
    buckets = KeyedTokenBuckets(1, 0.01, max_keys=2)
    assert buckets.try_acquire("idle")[0]
    time.sleep(0.02)  # "idle" is full again
    assert buckets.try_acquire("x")[0]
    assert buckets.try_acquire("y")[0]
    assert len(buckets) == 2
