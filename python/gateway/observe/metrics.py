"""Prometheus metrics, summed across the worker processes of one gateway.

prometheus_client's multiprocess mode: every worker writes its counters and histograms to
memory-mapped files in one directory (PROMETHEUS_MULTIPROC_DIR) and `GET /metrics` (any worker)
sums them all. The supervisor creates a private directory before it spawns the workers
(`metrics_directory`), marks a dead worker's files (`worker_gone`) so its in-flight count stops
counting (its counters stay: totals never go down), and removes the directory when serving ends.
An app built outside `gateway start` has no such directory and counts in its own process.

Recording is cheap: a request updates a few plain Python counts (`Tally`), which the worker
writes to its files at most every FLUSH_SECONDS, before a scrape it answers and when it exits;
each locked mmap write costs microseconds and a request would need a dozen. A scrape can so lag
by up to FLUSH_SECONDS, and a worker killed outright (SIGKILL, OOM) loses at most that much.

Labels are bounded: endpoint names come from the config ("" before a request resolved one),
statuses, token kinds and error class names are small fixed sets; no consumer id or team is a
label.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.util
import os
from bisect import bisect_left
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from gateway.errors import UpstreamError
from gateway.server.process import private_directory

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext
    from gateway.usage import UsageRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DIRECTORY_PREFIX = "gateway-metrics-"

# a whole LLM answer: tens of milliseconds (embeddings) to minutes (long generations)
DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
# the gateway's own time: tens of microseconds to a few milliseconds when healthy
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
TOKEN_KINDS = ("prompt", "completion", "cached", "cache_write", "reasoning")
FLUSH_SECONDS = 1.0  # how stale a scrape may be: a worker writes its counts this often
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
# error classes that are a limit refusing a request -> the `limit` label
LIMITS = {
    "RateLimited": "rate",  # calls, tokens or concurrency: the limits' one refusal
    "BudgetExceeded": "budget",
    "LimitsUnavailable": "unavailable",  # limit storage down with limits_failure_mode: closed
}


# -- the supervisor: the directory the workers share ------------------------------------------
@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """In the supervisor, before the workers spawn: a private (0700) directory for their metric
    files, named in PROMETHEUS_MULTIPROC_DIR, removed when serving ends. A directory left by a
    supervisor that was killed outright is removed by the next one (server/process.py)."""
    with private_directory(DIRECTORY_PREFIX) as path:
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = str(path)
        try:
            yield str(path)
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous


def worker_gone(pid: int) -> None:
    """In the supervisor, once a worker has exited (crashed, killed, replaced): its live gauges
    (requests in flight) no longer count. Its counters and histograms stay in the sums."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


# -- a worker: the metrics ----------------------------------------------------------------------
class Metrics:
    """The prometheus_client metrics of this process (made once: a name registers once)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, values

        if os.environ.get(MULTIPROC_ENV) and values.ValueClass is values.MutexValue:
            # prometheus_client chooses its value class when first imported: a worker forked
            # from a process that imported it before the directory was named chooses again
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        pair = ("endpoint", "provider")
        self.requests = Counter("gateway_requests_total", "Invocation requests answered", [*pair, "status"])
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Arrival to last byte sent, every invocation request",
            pair,
            buckets=DURATION_BUCKETS,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "The gateway's own time: the request's duration less the wait for the provider",
            pair,
            buckets=OVERHEAD_BUCKETS,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Arrival to the first event of a successful stream",
            pair,
            buckets=TTFT_BUCKETS,
        )
        self.tokens = Counter(
            "gateway_tokens_total",
            "Tokens (prompt includes cached and cache_write; completion includes reasoning)",
            [*pair, "kind"],
        )
        self.cost = Counter("gateway_cost_usd_total", "Cost of the answered requests in USD", pair)
        self.rejections = Counter(
            "gateway_limit_rejections_total", "Requests refused by a limit or budget", ["endpoint", "limit"]
        )
        self.upstream_errors = Counter(
            "gateway_upstream_errors_total",
            "Provider calls that failed (error status, unreachable, timeout, broken stream)",
            [*pair, "error"],
        )
        self.retries = Counter(
            "gateway_upstream_retries_total",
            "Upstream calls beyond the first (retries and fallbacks), by the endpoint that answered",
            pair,
        )
        self.breakers = Counter(
            "gateway_circuit_breaker_transitions_total",
            "Circuit breakers opening and closing, by destination endpoint and the state entered",
            ["endpoint", "state"],
        )
        self.inflight = Gauge(
            "gateway_inflight_requests", "Invocation requests in progress", multiprocess_mode="livesum"
        )
        self.dropped = Counter(
            "gateway_usage_records_dropped_total",
            "Usage records dropped: the database writer's queue was full",
        )


class _Histogram:
    """Observations of one histogram child since the last flush."""

    __slots__ = ("bounds", "child", "counts", "sum")

    def __init__(self, child: Any) -> None:
        self.child = child
        self.bounds: tuple[float, ...] = tuple(child._upper_bounds)  # ends with +Inf
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket with value <= bound
        self.sum += value

    def flush(self) -> None:
        # prometheus_client keeps a histogram child's buckets non-cumulative, one value each
        buckets = self.child._buckets
        for index, count in enumerate(self.counts):
            if count:
                buckets[index].inc(count)
                self.counts[index] = 0
        if self.sum:
            self.child._sum.inc(self.sum)
            self.sum = 0.0


class _Series:
    """What one (endpoint, provider) pair counted since the last flush, and its children."""

    __slots__ = (
        "cost",
        "duration",
        "errors",
        "overhead",
        "pair",
        "rejections",
        "retries",
        "statuses",
        "tokens",
        "ttft",
    )

    def __init__(self, metrics: Metrics, endpoint: str, provider: str) -> None:
        self.pair = (endpoint, provider)
        self.duration = _Histogram(metrics.duration.labels(endpoint, provider))
        self.overhead = _Histogram(metrics.overhead.labels(endpoint, provider))
        self.ttft = _Histogram(metrics.ttft.labels(endpoint, provider))
        self.tokens = [0] * len(TOKEN_KINDS)
        self.cost = 0.0
        self.retries = 0
        self.statuses: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.rejections: dict[str, int] = {}

    def flush(self, metrics: Metrics) -> None:
        endpoint, provider = self.pair
        for status, count in self.statuses.items():
            if count:
                metrics.requests.labels(endpoint, provider, str(status)).inc(count)
                self.statuses[status] = 0
        for histogram in (self.duration, self.overhead, self.ttft):
            histogram.flush()
        for index, count in enumerate(self.tokens):
            if count:
                metrics.tokens.labels(endpoint, provider, TOKEN_KINDS[index]).inc(count)
                self.tokens[index] = 0
        if self.cost:
            metrics.cost.labels(endpoint, provider).inc(self.cost)
            self.cost = 0.0
        if self.retries:
            metrics.retries.labels(endpoint, provider).inc(self.retries)
            self.retries = 0
        for error, count in self.errors.items():
            if count:
                metrics.upstream_errors.labels(endpoint, provider, error).inc(count)
                self.errors[error] = 0
        for limit, count in self.rejections.items():
            if count:
                metrics.rejections.labels(endpoint, limit).inc(count)
                self.rejections[limit] = 0


class Tally:
    """This worker's counts, in plain Python, written to the shared metric files at most every
    FLUSH_SECONDS (and before a scrape this worker answers, and at exit): a request costs a few
    dict and list updates instead of a dozen locked writes to memory-mapped files."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.series: dict[tuple[str, str], _Series] = {}
        self.inflight = 0
        self._inflight_written = 0
        self._dirty = False
        self._droppers: list[Any] | None = None  # sinks that count dropped records (`.dropped`)
        self._dropped = 0
        # a worker exits through multiprocessing, which runs no atexit hook: flush here
        multiprocessing.util.Finalize(self, self.flush, exitpriority=10)

    def touch(self) -> None:
        """Something changed: a flush within FLUSH_SECONDS."""
        if self._dirty:
            return
        self._dirty = True
        try:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        except RuntimeError:  # no event loop (a tool, a test): at once
            self.flush()

    def flush(self) -> None:
        self._dirty = False
        metrics = self.metrics
        for series in self.series.values():
            series.flush(metrics)
        if self.inflight != self._inflight_written:
            metrics.inflight.set(self.inflight)
            self._inflight_written = self.inflight

    def record(self, record: UsageRecord, ctx: RequestContext) -> None:
        key = (record.endpoint or "", record.provider or "")
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(self.metrics, *key)
        series.statuses[record.status] = series.statuses.get(record.status, 0) + 1
        series.duration.observe(record.latency_ms / 1000)
        if record.overhead_ms is not None:
            series.overhead.observe(record.overhead_ms / 1000)
        if record.stream and record.error is None and record.ttft_ms is not None:
            series.ttft.observe(record.ttft_ms / 1000)
        if record.total_tokens:
            tokens = series.tokens
            tokens[0] += record.prompt_tokens
            tokens[1] += record.completion_tokens
            tokens[2] += record.cached_tokens
            tokens[3] += record.cache_write_tokens
            tokens[4] += record.reasoning_tokens
        series.cost += record.cost_usd
        if record.attempts > 1:
            series.retries += record.attempts - 1
        error = record.error
        if error is not None:
            limit = LIMITS.get(error)
            if limit is not None:
                series.rejections[limit] = series.rejections.get(limit, 0) + 1
            elif isinstance(ctx.error, UpstreamError):
                series.errors[error] = series.errors.get(error, 0) + 1
        self._sync_dropped(ctx)
        self.touch()

    def breaker_changed(self, endpoint: str, state: str) -> None:
        """A breaker opened or closed: rare, so written at once."""
        self.metrics.breakers.labels(endpoint, state).inc()

    def _sync_dropped(self, ctx: RequestContext) -> None:
        """The usage writer (usage/writer.py) counts the records it drops in `.dropped`; the
        counter follows it, request by request."""
        droppers = self._droppers
        if droppers is None:
            droppers = self._droppers = [s for s in ctx.services.sinks if hasattr(type(s), "dropped")]
        if droppers:
            dropped = sum(sink.dropped for sink in droppers)
            if dropped > self._dropped:
                self.metrics.dropped.inc(dropped - self._dropped)
                self._dropped = dropped


@cache
def tally() -> Tally:
    """This process's tally and metrics."""
    return Tally()


class MetricsSink:
    """A sink (pipeline/record.py): counts each request's usage record."""

    def __init__(self) -> None:
        self.record = tally().record


# -- GET /metrics ---------------------------------------------------------------------------
async def scrape() -> tuple[bytes, bytes]:
    """This worker's counts written out first, then every worker's summed (off the loop)."""
    tally().flush()
    return await asyncio.to_thread(render)


def render() -> tuple[bytes, bytes]:
    """(content type, body) of one scrape: every worker's files summed when the gateway runs
    under `gateway start`, else this process's registry. Reads files: run it off the loop."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        return CONTENT_TYPE_LATEST.encode(), generate_latest(registry)
    tally()  # listed (at zero) before the first request
    return CONTENT_TYPE_LATEST.encode(), generate_latest(REGISTRY)
