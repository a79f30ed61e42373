"""A worker's usage records, sent in batches to the host's usage writer process.

Under `gateway start` with a database the workers do not write usage records themselves: a
writer thread in a worker shares its GIL, and the database drivers release and retake the GIL
around every row, each retake waiting on the event loop (about 30% of a worker's req/s on one
core, benches/results/2026-12-02-profile.md). `UsageSpool` is the sink the pipeline calls instead:
it appends the record to a bounded list and, at most every SEND_INTERVAL_SECONDS, sends what
has gathered as one msgpack frame over a Unix socket to the writer process
(usage/writer_process.py), which batches them into the database as `UsageWriter` does.

Nothing here blocks the event loop: the socket is an asyncio transport. While the writer process
is unreachable or slower than the traffic, records wait in the list up to `capacity`; beyond it
they are dropped and counted in `dropped` (`gateway_usage_records_dropped_total`). A lost
connection is retried every RECONNECT_SECONDS and logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import TYPE_CHECKING

import msgspec

from gateway.usage.record import UsageRecord

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext

logger = logging.getLogger("gateway.usage")

SOCKET_ENV = "GATEWAY_USAGE_SOCKET"  # the writer process's socket, named by the supervisor
FRAME = struct.Struct("!I")  # each frame: its length, then a msgpack array of records
MAX_FRAME_BYTES = 16 * 1024 * 1024  # what the writer process accepts in one frame
BUFFER_RECORDS = 10_000
FRAME_RECORDS = 1_000  # at most this many records per frame (~0.5 MB)
SEND_INTERVAL_SECONDS = 0.05  # how long a record may wait in the worker before it is sent
RECONNECT_SECONDS = 1.0
MAX_UNSENT_BYTES = 4 * 1024 * 1024  # the transport's own buffer: beyond it, records wait in ours
STOP_DEADLINE_SECONDS = 3.0


class UsageSpool:
    """The usage database sink of a worker under `gateway start`. `start()` once its event loop
    runs, `stop()` at its shutdown; `record()` from the event loop."""

    def __init__(self, path: str, *, capacity: int = BUFFER_RECORDS) -> None:
        self.path = path
        self.capacity = capacity
        self._buffer: list[UsageRecord] = []
        self._dropped = 0
        self._transport: asyncio.WriteTransport | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._outage_since: float | None = None
        self._last_attempt = -RECONNECT_SECONDS  # monotonic time of the last connection attempt
        self._stopped = False
        self._encode = msgspec.msgpack.Encoder().encode

    # -- the request path ----------------------------------------------------------------------
    def record(self, record: UsageRecord, ctx: RequestContext | None = None) -> None:
        buffer = self._buffer
        if len(buffer) >= self.capacity:
            self._dropped += 1
            return
        buffer.append(record)
        if self._timer is None and not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(SEND_INTERVAL_SECONDS, self._send)

    @property
    def dropped(self) -> int:
        """Records that will never be written: `gateway_usage_records_dropped_total`."""
        return self._dropped

    def __len__(self) -> int:
        """Records not yet handed to the socket."""
        return len(self._buffer)

    # -- sending -------------------------------------------------------------------------------
    def start(self) -> None:
        self._connect_soon(0.0)

    def _send(self) -> None:
        self._timer = None
        transport = self._transport
        if transport is None or transport.is_closing():
            self._connect_soon(0.0)  # at most one attempt per RECONNECT_SECONDS; sends on success
            return
        if transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
            self._retry_later()  # the writer process is behind: records wait (bounded) here
            return
        batch, self._buffer = self._buffer, []
        for first in range(0, len(batch), FRAME_RECORDS):
            payload = self._encode(batch[first : first + FRAME_RECORDS])
            transport.write(FRAME.pack(len(payload)) + payload)

    def _retry_later(self) -> None:
        if self._timer is None and not self._stopped:
            self._timer = asyncio.get_running_loop().call_later(RECONNECT_SECONDS, self._send)

    def _connect_soon(self, delay: float) -> None:
        """One connection attempt, unless one is under way; never more than one a second."""
        if self._connecting is not None and not self._connecting.done():
            return
        delay = max(delay, self._last_attempt + RECONNECT_SECONDS - time.monotonic())
        self._connecting = asyncio.get_running_loop().create_task(self._connect(delay))

    async def _connect(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_attempt = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_unix_connection(lambda: _Link(self), self.path)
        except OSError as error:
            self._lost(error)
            if not self._stopped:  # the next attempt, once this task has ended
                loop.call_soon(self._connect_soon, RECONNECT_SECONDS)
            return
        self._transport = transport
        if self._outage_since is not None:
            logger.info(
                "usage records: the usage writer process is reachable again after %.0f s",
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None
        if self._buffer:
            self._send()

    def _lost(self, error: BaseException | None) -> None:
        self._transport = None
        if self._outage_since is None and not self._stopped:
            self._outage_since = time.monotonic()
            reason = (error.strerror if isinstance(error, OSError) else None) or "connection closed"
            logger.warning(
                "usage records: cannot reach the usage writer process (%s); keeping up to %d in memory and retrying",
                reason,
                self.capacity,
            )

    # -- lifecycle -----------------------------------------------------------------------------
    async def stop(self, deadline: float = STOP_DEADLINE_SECONDS) -> None:
        """Hand what is buffered to the writer process (within `deadline` seconds), then close."""
        until = time.monotonic() + deadline
        self._stopped = True  # no more timers or reconnections: this loop sends the rest
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._buffer and time.monotonic() < until:
            transport = self._transport
            if transport is None or transport.is_closing():
                self._connect_soon(0.0)
                await asyncio.sleep(0.05)
            elif transport.get_write_buffer_size() > MAX_UNSENT_BYTES:
                await asyncio.sleep(0.01)
            else:
                self._send()
        transport = self._transport
        while transport is not None and transport.get_write_buffer_size() and time.monotonic() < until:
            await asyncio.sleep(0.01)
        if self._connecting is not None:
            self._connecting.cancel()
        if transport is not None:
            transport.close()
        if self._buffer:
            self._dropped += len(self._buffer)
            logger.warning(
                "usage records: %d not written at shutdown (the usage writer process did not take them within %.0f s)",
                len(self._buffer),
                deadline,
            )
            self._buffer = []


class _Link(asyncio.Protocol):
    """The connection to the writer process: it never answers; a close is a lost connection."""

    def __init__(self, spool: UsageSpool) -> None:
        self.spool = spool

    def connection_lost(self, exc: Exception | None) -> None:
        spool = self.spool
        spool._lost(exc)
        if not spool._stopped:
            spool._connect_soon(RECONNECT_SECONDS)
