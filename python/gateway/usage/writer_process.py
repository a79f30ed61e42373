"""The host's usage writer process: the workers' usage records into the database.

`gateway start` with a `database_url` runs one per host (`usage_writer_process`, in the
supervisor): it binds a Unix socket in a private (0700) directory, names it to the workers in
GATEWAY_USAGE_SOCKET, and starts `python -m gateway.usage.writer_process` with the listening
socket. Each worker's `UsageSpool` (usage/spool.py) sends its records there in batches; this
process feeds them to a `UsageWriter` (usage/writer.py: bounded buffer, batched inserts, outage
logging), and writes its batches from its one thread, sharing a GIL with nothing on the request
path.

The supervisor restarts the process if it dies (the listening socket is the supervisor's, so
workers reconnect to the new one). On SIGTERM or SIGINT it keeps reading until every worker has
closed its connection (workers send what they hold when they stop) or the drain deadline
passes, then writes what is left within STOP_DEADLINE_SECONDS and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import msgspec

from gateway.server.process import die_with_parent, private_base_directory, remove_stale_directories
from gateway.settings import settings
from gateway.usage.record import UsageRecord
from gateway.usage.spool import FRAME, MAX_FRAME_BYTES, SOCKET_ENV
from gateway.usage.writer import (
    RETRY_MAX_SECONDS,
    RETRY_MIN_SECONDS,
    STOP_DEADLINE_SECONDS,
    UsageWriter,
)

DIRECTORY_PREFIX = "gateway-usage-"
RESTART_SECONDS = 1.0
BATCH_POLL_SECONDS = 0.1  # how often a full batch is looked for

logger = logging.getLogger("gateway.usage")


# -- the supervisor ------------------------------------------------------------------------------
@contextlib.contextmanager
def usage_writer_process(database_url: str | None) -> Iterator[str | None]:
    """While serving: the writer process and its socket (None without a database)."""
    if database_url is None:
        yield None
        return
    base = private_base_directory()
    remove_stale_directories(base, DIRECTORY_PREFIX)
    directory = base / f"{DIRECTORY_PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
    directory.mkdir(mode=0o700)
    path = str(directory / "usage.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    keeper: _Keeper | None = None
    try:
        listener.bind(path)
        listener.listen(256)
        keeper = _Keeper(listener, database_url)
        keeper.start()
        os.environ[SOCKET_ENV] = path
        yield path
    finally:
        os.environ.pop(SOCKET_ENV, None)
        if keeper is not None:
            keeper.stop()
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


class _Keeper:
    """Runs the writer process, and runs it again when it dies of anything but a stop."""

    def __init__(self, listener: socket.socket, database_url: str) -> None:
        self.listener = listener
        self.database_url = database_url
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._watch, name="usage-writer-keeper", daemon=True)

    def start(self) -> None:
        self._spawn()
        self.thread.start()

    def _spawn(self) -> None:
        fd = self.listener.fileno()
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway.usage.writer_process", str(fd)],
            stdin=subprocess.PIPE,
            pass_fds=(fd,),
        )
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # the URL (it may hold a password) never on a command line
            process.stdin.write(self.database_url.encode())
            process.stdin.close()
        self.process = process

    def _watch(self) -> None:
        while not self.stopping.is_set():
            process = self.process
            assert process is not None
            code = process.wait()
            with self.lock:
                if self.stopping.is_set() or code == 0:
                    return
                logger.warning("usage records: the usage writer process exited (%s); restarting it", code)
                time.sleep(RESTART_SECONDS)
                if not self.stopping.is_set():
                    self._spawn()

    def stop(self) -> None:
        """After the workers have stopped: the process writes what it holds, then exits."""
        with self.lock:
            self.stopping.set()
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_DEADLINE_SECONDS + 2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the writer process --------------------------------------------------------------------------
class _Intake:
    """Reads the workers' frames into the writer; counts its drops into the metrics."""

    def __init__(self, writer: UsageWriter) -> None:
        self.writer = writer
        self.connections = 0
        self.decode = msgspec.msgpack.Decoder(list[UsageRecord]).decode
        self._dropped_counted = 0

    async def handle(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
                    if size > MAX_FRAME_BYTES:
                        logger.warning(
                            "usage records: a worker sent a %d-byte frame; connection closed", size
                        )
                        return
                    records = self.decode(await reader.readexactly(size))
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the worker stopped
                except msgspec.DecodeError as error:
                    logger.warning(
                        "usage records: a worker sent an unreadable frame (%s); connection closed", error
                    )
                    return
                record = self.writer.record
                for each in records:
                    record(each)
        finally:
            self.connections -= 1
            stream.close()

    def count_dropped(self) -> None:
        dropped = self.writer.dropped
        if dropped > self._dropped_counted and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from gateway.observe.metrics import tally

            tally().metrics.dropped.inc(dropped - self._dropped_counted)
        self._dropped_counted = dropped


async def _serve(listener: socket.socket, database_url: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # no writer thread: this process does nothing else, so batches are written from its one
    # thread, between reads (a thread costs a GIL handoff per row, as it did in the workers)
    writer = UsageWriter(database_url)
    intake = _Intake(writer)
    server = await asyncio.start_unix_server(intake.handle, sock=listener)
    flushing = loop.create_task(_write_batches(writer, intake, stop))
    await stop.wait()
    # a signal to the whole process group reaches this process while the workers still drain:
    # keep reading until they have all sent what they hold and closed
    server.close()
    until = time.monotonic() + settings().drain_seconds + STOP_DEADLINE_SECONDS
    while intake.connections and time.monotonic() < until:
        await asyncio.sleep(0.05)
    flushing.cancel()
    deadline = time.monotonic() + STOP_DEADLINE_SECONDS
    while len(writer) and time.monotonic() < deadline and writer.flush() is False:
        await asyncio.sleep(0.5)
    writer.abandon()
    intake.count_dropped()


async def _write_batches(writer: UsageWriter, intake: _Intake, stop: asyncio.Event) -> None:
    """A batch when one is full, else every `writer.interval`; a database that is down is
    retried with a doubling backoff (the writer logs the outage once)."""
    backoff = RETRY_MIN_SECONDS
    last = time.monotonic()
    while True:
        await asyncio.sleep(BATCH_POLL_SECONDS)
        if len(writer) < writer.batch_size and time.monotonic() - last < writer.interval:
            continue
        last = time.monotonic()
        if writer.flush():
            backoff = RETRY_MIN_SECONDS
        else:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_SECONDS)
        intake.count_dropped()


def main() -> None:
    die_with_parent()  # a supervisor killed outright takes its writer with it
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    listener = socket.socket(fileno=int(sys.argv[1]))
    database_url = sys.stdin.read()
    import uvloop

    uvloop.run(_serve(listener, database_url))


if __name__ == "__main__":
    main()
