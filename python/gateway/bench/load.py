"""The load loop of one process: closed loop (N connections, each sending its next request as
soon as the previous answer ends) or open loop (requests scheduled at a fixed rate whatever the
target does; latency counts from the scheduled time, so a target that falls behind shows its
queueing instead of slowing the client down: no coordinated omission).

Callback driven: a finished response sends the next request from `data_received`, with no
task or future per request. Always bounded: warm-up + duration (or a request count within
that time), then in-flight requests drain within the request timeout.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.bench.http1 import IDLE, ClientConnection, ConnectionOwner
from gateway.bench.stats import Recorder

RECONNECT_PAUSE = 0.05  # after a failed connect: do not spin on a refused port
SWEEP_INTERVAL = 0.05
OPEN_LOOP_PREOPEN = 16
TICK = 0.001  # the open-loop scheduler's shortest sleep (event-loop timers have 1 ms resolution)
TIMER_SLACK = 0.002  # how late a tick may fire before the lateness counts as latency


@dataclass(frozen=True)
class LoadPlan:
    """Everything one load process needs (picklable, for worker processes)."""

    host: str
    port: int
    tls: bool
    requests: tuple[bytes, ...]
    connections: int  # closed loop: concurrency; open loop: the most connections to open
    rate: float | None  # requests/s for an open loop; None = closed loop
    warmup: float
    duration: float
    max_requests: int | None
    timeout: float
    insecure: bool = False


class Driver(ConnectionOwner):
    def __init__(self, plan: LoadPlan) -> None:
        self.plan = plan
        self.stats = Recorder()
        self.loop = asyncio.get_running_loop()
        self.ssl: ssl.SSLContext | None = None
        if plan.tls:
            self.ssl = ssl.create_default_context()
            if plan.insecure:
                self.ssl.check_hostname = False
                self.ssl.verify_mode = ssl.CERT_NONE
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.conns: set[ClientConnection] = set()
        self.idle: list[ClientConnection] = []
        # open loop: requests waiting for a connection, as (start time, measured)
        self.pending: deque[tuple[float, bool]] = deque()
        self.connecting = 0
        self.workers = 0  # closed loop: connections still sending
        self.sent = 0  # measured requests sent
        self.stopping = False
        self.t0 = self.measure_from = 0.0
        self.cpu_start = 0.0
        self.last_done = 0.0
        self.seq = 0

    # -- lifecycle

    async def run(self, ready: Callable[[], None] | None = None) -> Recorder:
        plan = self.plan
        first = plan.connections if plan.rate is None else min(plan.connections, OPEN_LOOP_PREOPEN)
        opened = await asyncio.gather(*(self._connect() for _ in range(first)))
        if ready is not None:
            ready()  # other load processes start at the same moment
        self.t0 = time.perf_counter()
        self.measure_from = self.t0 + plan.warmup
        self.last_done = self.measure_from
        self.cpu_start = time.process_time()
        self.loop.call_later(plan.warmup, self._start_measuring)
        self.loop.call_later(plan.warmup + plan.duration, self._stop)
        sweeper = self.loop.create_task(self._sweep())
        ticker = None
        if plan.rate is None:
            for conn in opened:
                self.workers += 1
                if conn is None:
                    self.loop.create_task(self._replace())
                else:
                    self._next(conn)
        else:
            self.idle.extend(conn for conn in opened if conn is not None)
            ticker = self.loop.create_task(self._tick(plan.rate))
        try:
            await self.finished
        finally:
            sweeper.cancel()
            if ticker is not None:
                ticker.cancel()
            for conn in list(self.conns):
                conn.close()
        stats = self.stats
        stats.elapsed = max(self.last_done - self.measure_from, 1e-9)
        stats.cpu_seconds = time.process_time() - self.cpu_start
        stats.bytes_received = sum(conn.bytes_received for conn in self.conns)
        return stats

    def _start_measuring(self) -> None:
        self.cpu_start = time.process_time()

    def _stop(self) -> None:
        self.stopping = True
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if not self.stopping or self.finished.done():
            return
        if self.plan.rate is None:
            if self.workers == 0:
                self.finished.set_result(None)
        elif not self.pending and len(self.idle) == len(self.conns) and self.connecting == 0:
            self.finished.set_result(None)

    def _limit_reached(self) -> bool:
        limit = self.plan.max_requests
        return limit is not None and self.sent >= limit

    async def _connect(self) -> ClientConnection | None:
        self.connecting += 1
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(
                    lambda: ClientConnection(self, self.stats.gaps),
                    self.plan.host,
                    self.plan.port,
                    ssl=self.ssl,
                ),
                self.plan.timeout,
            )
        except (TimeoutError, OSError):
            return None
        finally:
            self.connecting -= 1
        self.stats.connects += 1
        self.conns.add(conn)
        return conn

    def _request(self) -> bytes:
        self.seq += 1
        requests = self.plan.requests
        return requests[self.seq % len(requests)]

    # -- closed loop

    def _next(self, conn: ClientConnection) -> None:
        if self.stopping or self._limit_reached():
            self.workers -= 1
            self._maybe_finished()
            return
        now = time.perf_counter()
        measured = now >= self.measure_from
        if measured:
            self.sent += 1
            if self._limit_reached():
                self.stopping = True
        conn.send(self._request(), now, measured)

    async def _replace(self) -> None:
        """A closed-loop worker lost its connection: open another (each failure is an error)."""
        while not self.stopping:
            started = time.perf_counter()
            conn = await self._connect()
            if conn is not None:
                self._next(conn)
                return
            if started >= self.measure_from:
                self.sent += 1
                self.stats.failure("connect", started, time.perf_counter())
            await asyncio.sleep(RECONNECT_PAUSE)
        self.workers -= 1
        self._maybe_finished()

    # -- open loop

    async def _tick(self, rate: float) -> None:
        """Send every request that is due, then sleep at least TICK: at high rates requests go
        out in small batches instead of the loop spinning on sub-millisecond timers."""
        index = 0
        interval = 1.0 / rate
        while not self.stopping:
            now = time.perf_counter()
            due = int((now - self.t0) * rate) + 1
            if index < due:
                scheduled = self.t0 + index * interval
                if scheduled >= self.measure_from:
                    self.stats.lag.record_seconds(now - scheduled)
                while index < due and not self.stopping:
                    scheduled = self.t0 + index * interval
                    # forgive the timer's granularity, nothing more: a tick later than
                    # TIMER_SLACK counts the excess as latency (coordinated omission stays visible)
                    self._dispatch(scheduled, min(now, scheduled + TIMER_SLACK))
                    index += 1
            await asyncio.sleep(max(TICK, self.t0 + index * interval - time.perf_counter()))

    def _dispatch(self, scheduled: float, started: float) -> None:
        measured = scheduled >= self.measure_from
        if measured:
            self.sent += 1
            if self._limit_reached():
                self.stopping = True
        if self.idle:
            self.idle.pop().send(self._request(), started, measured)
            return
        self.pending.append((started, measured))
        if len(self.conns) + self.connecting < self.plan.connections:
            self.loop.create_task(self._grow())

    async def _grow(self) -> None:
        conn = await self._connect()
        if conn is None:
            if self.pending:  # the oldest waiting request fails; the rest keep waiting
                started, measured = self.pending.popleft()
                if measured:
                    self.stats.failure("connect", started, time.perf_counter())
            await asyncio.sleep(RECONNECT_PAUSE)
            self._maybe_finished()
            return
        self._serve_pending(conn)

    def _serve_pending(self, conn: ClientConnection) -> None:
        if self.pending:
            started, measured = self.pending.popleft()
            conn.send(self._request(), started, measured)
        else:
            self.idle.append(conn)
            self._maybe_finished()

    # -- ConnectionOwner

    def on_response(self, conn: ClientConnection) -> None:
        now = time.perf_counter()
        if conn.measured:
            self.stats.response(conn, now)
            self.last_done = now
        reusable = conn.keep_alive and conn.open
        if not reusable:
            self.conns.discard(conn)
            conn.close()
        if self.plan.rate is None:
            if reusable:
                self._next(conn)
            else:
                self.loop.create_task(self._replace())
        elif reusable:
            self._serve_pending(conn)
        elif self.pending and not self.stopping:
            self.loop.create_task(self._grow())
        else:
            self._maybe_finished()

    def on_closed(self, conn: ClientConnection) -> None:
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
            self._maybe_finished()

    # -- timeouts

    async def _sweep(self) -> None:
        timeout = self.plan.timeout
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.perf_counter()
            for conn in list(self.conns):
                if conn.state != IDLE and now - conn.sent_at > timeout:
                    conn.abort("timeout")
            while self.pending and now - self.pending[0][0] > timeout:
                started, measured = self.pending.popleft()
                if measured:
                    self.stats.failure("timeout", started, now)
            if self.stopping and self.pending and self.plan.rate is not None and not self.conns:
                # nothing left that could serve the queue (the target is gone)
                while self.pending:
                    started, measured = self.pending.popleft()
                    if measured:
                        self.stats.failure("connect", started, now)
            self._maybe_finished()
