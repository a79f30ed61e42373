"""Usage records into the database, in batches, off the request path.

`UsageWriter.record()` is the sink the pipeline calls once per request: it appends the record to
a bounded in-memory buffer and returns. It never blocks and never raises: when the buffer is
full (the database is down or slower than the traffic) the record is dropped and `dropped` goes
up; metrics export it as `gateway_usage_records_dropped_total`.

A background thread empties the buffer: a batch (at most `batch_size` records, one executemany
in one transaction) every `interval` seconds, at once when a full batch is waiting. A database
that fails is logged once per outage (the reason names the backend, never the URL's password),
the batch is kept and retried with a doubling backoff, and the buffer keeps bounding memory
meanwhile. A batch the database refuses for what it holds (not for being down) is dropped and
counted, so one bad record cannot stop every later one. `stop()` (the app's lifespan shutdown)
writes what is left within a deadline.

SQLAlchemy is imported by the thread only: building a writer is cheap.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from gateway.errors import DatabaseUnavailable
from gateway.usage.record import UsageRecord

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

logger = logging.getLogger("gateway.usage")

BUFFER_RECORDS = 10_000  # ~5 MB of records at most, about 10 s of a busy worker's traffic
BATCH_RECORDS = 500
FLUSH_INTERVAL_SECONDS = 1.0
RETRY_MIN_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
STOP_DEADLINE_SECONDS = 3.0
# a record's text columns fit their VARCHARs (PostgreSQL refuses longer values): clipped, not lost
TEXT_LIMITS = {
    "request_id": 128,
    "method": 16,
    "path": 512,
    "route": 32,
    "endpoint": 200,
    "asked": 200,
    "provider": 64,
    "model": 200,
    "consumer": 200,
    "team": 200,
    "error": 64,
    "budget": 200,
}


COLUMNS = (
    "request_id",
    "started_at",
    "method",
    "path",
    "route",
    "endpoint",
    "asked",
    "provider",
    "model",
    "consumer",
    "team",
    "stream",
    "status",
    "error",
    "latency_ms",
    "ttft_ms",
    "overhead_ms",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "estimated",
    "cost_nano_usd",
    "priced",
    "budget",
)
# the record's fields in COLUMNS order, read in one C call (cost is converted below)
FIELDS = attrgetter(*("cost_usd" if column == "cost_nano_usd" else column for column in COLUMNS))
STARTED_AT = COLUMNS.index("started_at")
COST = COLUMNS.index("cost_nano_usd")
STREAM, ESTIMATED, PRICED = (COLUMNS.index(column) for column in ("stream", "estimated", "priced"))
CLIPPED = tuple((COLUMNS.index(column), limit) for column, limit in TEXT_LIMITS.items())


def rows_of(records: list[UsageRecord], sqlite: bool = False) -> list[tuple[Any, ...]]:
    """The `usage_records` rows for `records` (schema.py), in COLUMNS order, as the driver takes
    them: SQLite stores the time as SQLAlchemy's naive UTC text (store/schema.py UTCDateTime) and
    booleans as 0/1 (ints skip the driver's adapter lookup); text is clipped to its column here
    (SQL's substr() on 13 columns cost SQLite 3-4 us more per row than this loop). This runs once
    per record in the usage writer process: each step here is a cost per request."""
    from gateway.store.schema import NANO_USD  # SQLAlchemy is the writer's import

    rows = []
    for record in records:
        row = list(FIELDS(record))
        if sqlite:
            row[STARTED_AT] = _sqlite_time(record.started_at)
            row[STREAM] = int(record.stream)
            row[ESTIMATED] = int(record.estimated)
            row[PRICED] = int(record.priced)
        else:
            row[STARTED_AT] = datetime.fromtimestamp(record.started_at, UTC)
        row[COST] = round(record.cost_usd * NANO_USD)
        for index, limit in CLIPPED:
            value = row[index]
            if value is not None and len(value) > limit:
                row[index] = value[:limit]
        rows.append(tuple(row))  # SQLAlchemy passes on tuples only
    return rows


@lru_cache(maxsize=2)
def insert_statement(sqlite: bool) -> str:
    marks = ", ".join(["?" if sqlite else "%s"] * len(COLUMNS))
    return f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({marks})"


def _sqlite_time(timestamp: float) -> str:
    """`datetime.fromtimestamp(timestamp, UTC)` as SQLAlchemy writes it to SQLite
    ("2026-12-01 10:00:00.123456"), its seconds formatted once per second: a batch of records
    shares a few seconds, and formatting each whole took a third of the writer's time per row."""
    second = math.floor(timestamp)
    micro = round((timestamp - second) * 1e6)
    if micro >= 1_000_000:  # rounded up into the next second, as datetime does
        second += 1
        micro -= 1_000_000
    return f"{_second_text(second)}.{micro:06d}"


@lru_cache(maxsize=8)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_batch(url: str, records: list[UsageRecord]) -> None:
    """One transaction, one executemany of plain tuples straight to the driver: SQLAlchemy's
    per-row parameter processing, run in this thread, held the GIL long enough to cost the event
    loop a quarter of its requests per second (benches/results/2026-12-01-observability.md).
    Raises DatabaseUnavailable when the database cannot be reached; anything else the driver
    raises means the rows themselves were refused."""
    from gateway.store.db import transaction

    with transaction(url, write=True) as connection:
        sqlite = connection.dialect.name == "sqlite"
        connection.exec_driver_sql(insert_statement(sqlite), rows_of(records, sqlite))


class UsageWriter:
    """The usage database sink of one worker. `start()` once the worker runs, `stop()` at its
    shutdown; `record()` from the event loop (the one producer: the buffer's bound is checked
    and appended to without a lock, which is exact for a single producer thread)."""

    def __init__(
        self,
        database_url: str,
        *,
        capacity: int = BUFFER_RECORDS,
        batch_size: int = BATCH_RECORDS,
        interval: float = FLUSH_INTERVAL_SECONDS,
    ) -> None:
        self._url = database_url
        self.capacity = capacity
        self.batch_size = batch_size
        self.interval = interval
        # records lost, counted by the thread that lost them (so no increment races another)
        self._dropped_full = 0  # the event loop: the buffer was full
        self._dropped_late = 0  # the writer thread (or close): refused by the database, left at stop
        self.written = 0
        self._buffer: collections.deque[UsageRecord] = collections.deque()
        self._pending: list[UsageRecord] = []  # the batch being written (kept while it fails)
        self._wake = threading.Event()  # a full batch is waiting, or stop() was called
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._outage_since: float | None = None
        self._dropped_at_outage = 0

    # -- the request path ----------------------------------------------------------------------
    def record(self, record: UsageRecord, ctx: RequestContext | None = None) -> None:
        buffer = self._buffer
        if len(buffer) >= self.capacity:
            self._dropped_full += 1
            return
        buffer.append(record)
        if len(buffer) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    @property
    def dropped(self) -> int:
        """Records that will never be written: `gateway_usage_records_dropped_total`."""
        return self._dropped_full + self._dropped_late

    def __len__(self) -> int:
        """Records not yet written."""
        return len(self._buffer) + len(self._pending)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="usage-writer", daemon=True)
            self._thread.start()

    async def stop(self, deadline: float = STOP_DEADLINE_SECONDS) -> None:
        """Write what is buffered (within `deadline` seconds), then end the thread."""
        await asyncio.to_thread(self.close, deadline)

    def close(self, deadline: float = STOP_DEADLINE_SECONDS) -> None:
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(deadline)
        self.abandon(deadline)

    def abandon(self, deadline: float = STOP_DEADLINE_SECONDS) -> None:
        """At shutdown, once writing has stopped: what is left is counted (and logged) as lost."""
        left = len(self)
        if left:
            # the thread may still be inside a write: what it holds is counted as lost here
            self._dropped_late += left
            logger.warning(
                "usage records: %d not written at shutdown (the database did not take them within %.0f s)",
                left,
                deadline,
            )

    # -- the background thread ----------------------------------------------------------------
    def _run(self) -> None:
        backoff = RETRY_MIN_SECONDS
        while True:
            stopping = self._stopping.is_set()
            if not self.flush():
                if stopping:  # one last attempt failed: close() counts what is left
                    return
                self._stopping.wait(backoff)  # only stop() cuts a backoff short
                backoff = min(backoff * 2, RETRY_MAX_SECONDS)
                continue
            backoff = RETRY_MIN_SECONDS
            if stopping:
                return
            self._wake.wait(self.interval)
            self._wake.clear()

    def flush(self) -> bool:
        """Write every buffered record, batch by batch, in the caller's thread (the writer
        thread, or the writer process's only one). False when the database is down."""
        while True:
            if not self._pending:
                buffer = self._buffer
                take = min(len(buffer), self.batch_size)
                self._pending = [buffer.popleft() for _ in range(take)]
            if not self._pending:
                return True
            try:
                write_batch(self._url, self._pending)
            except DatabaseUnavailable as error:
                self._outage(error.message)
                return False
            except Exception as error:
                # the rows were refused, not the connection: retrying would refuse them forever
                self._dropped_late += len(self._pending)
                logger.warning(
                    "usage records: the database refused a batch of %d (%s); dropped",
                    len(self._pending),
                    type(error).__name__,
                )
            else:
                self.written += len(self._pending)
                self._recovered()
            self._pending = []

    def _outage(self, reason: str) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self._dropped_at_outage = self.dropped
            logger.warning(
                "usage records: cannot write to the database: %s; keeping up to %d in memory and retrying",
                reason,
                self.capacity,
            )

    def _recovered(self) -> None:
        if self._outage_since is None:
            return
        took = time.monotonic() - self._outage_since
        self._outage_since = None
        logger.info(
            "usage records: the database takes writes again after %.0f s; %d records dropped meanwhile",
            took,
            self.dropped - self._dropped_at_outage,
        )
