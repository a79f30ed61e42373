"""The host's usage writer process: the workers' usage records into the database.

`gateway start` with a `database_url` runs one per host (`usage_writer_process`, in the
supervisor): it binds a Unix socket in a private (0700) directory, names it to the workers in
GATEWAY_USAGE_SOCKET, and starts `python -m gateway.usage.writer_process` with the listening
socket. Each worker's `UsageSpool` (usage/spool.py) sends its records there in batches; this
process feeds them to a `UsageWriter` (usage/writer.py: bounded buffer, batched inserts, outage
logging), and writes its batches from its one thread, sharing a GIL with nothing on the request
path.

The supervisor restarts the process whenever it ends early (the listening socket is the
supervisor's, so workers reconnect to the new one; the records the old one held are lost, and
logged as such). Only the supervisor stops it, by closing its stdin once the workers have
stopped (signals to the process group are ignored here: the workers may still be draining);
it then writes what is left within STOP_DEADLINE_SECONDS and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import msgspec

from gateway.server.process import die_with_parent, private_directory
from gateway.usage.record import UsageRecord
from gateway.usage.spool import FRAME, MAX_FRAME_BYTES, SOCKET_ENV
from gateway.usage.writer import (
    RETRY_MAX_SECONDS,
    RETRY_MIN_SECONDS,
    STOP_DEADLINE_SECONDS,
    UsageWriter,
)

DIRECTORY_PREFIX = "gateway-usage-"
RESTART_SECONDS = 1.0  # first restart delay of a writer process that ended, doubling
RESTART_MAX_SECONDS = 30.0
# how long the supervisor waits for the writer at shutdown: its last writes are bounded by
# STOP_DEADLINE_SECONDS, plus one attempt against a database that does not answer
STOP_WAIT_SECONDS = STOP_DEADLINE_SECONDS + 15.0
BATCH_POLL_SECONDS = 0.1  # how often a full batch is looked for

logger = logging.getLogger("gateway.usage")


# -- the supervisor ------------------------------------------------------------------------------
@contextlib.contextmanager
def usage_writer_process(database_url: str | None) -> Iterator[str | None]:
    """While serving: the writer process and its socket (None without a database)."""
    if database_url is None:
        yield None
        return
    with private_directory(DIRECTORY_PREFIX) as directory:
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


class _Keeper:
    """Runs the writer process, and runs it again whenever it ends before `stop()`.

    Only the supervisor stops it: the process ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C or a
    `kill` of the whole process group reaches it while the workers still drain) and stops when
    its stdin closes, which `stop()` does once the workers are gone, or the supervisor's death
    does."""

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
            # -P: the current directory never shadows the installed package
            [sys.executable, "-P", "-m", "gateway.usage.writer_process", str(fd)],
            stdin=subprocess.PIPE,
            pass_fds=(fd,),
        )
        assert process.stdin is not None
        with contextlib.suppress(OSError):  # the URL (it may hold a password) never on a command line
            process.stdin.write(self.database_url.encode() + b"\n")
            process.stdin.flush()
        self.process = process

    def _watch(self) -> None:
        backoff = RESTART_SECONDS
        while True:
            process = self.process
            assert process is not None
            code = process.wait()
            if self.stopping.wait(backoff):
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                logger.warning(
                    "usage records: the usage writer process exited (%s), losing the records it held; restarting it",
                    code,
                )
                try:
                    self._spawn()
                except OSError as error:
                    logger.error("usage records: cannot restart the usage writer process: %s", error)
            backoff = min(backoff * 2, RESTART_MAX_SECONDS)

    def stop(self) -> None:
        """After the workers have stopped: the process writes what it holds, then exits."""
        with self.lock:
            self.stopping.set()
            process = self.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the signal to stop
        try:
            process.wait(STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning(
                "usage records: the usage writer process did not stop within %.0f s; killed (the records it held are lost)",
                STOP_WAIT_SECONDS,
            )
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
    # only the supervisor stops this process: it closes our stdin (see _Keeper)
    threading.Thread(target=_wait_for_eof, args=(loop, stop), name="stdin", daemon=True).start()
    # no writer thread: this process does nothing else, so batches are written from its one
    # thread, between reads (a thread costs a GIL handoff per row, as it did in the workers)
    writer = UsageWriter(database_url)
    intake = _Intake(writer)
    server = await asyncio.start_unix_server(intake.handle, sock=listener)
    flushing = loop.create_task(_write_batches(writer, intake, stop))
    await stop.wait()
    # the workers have stopped (they send what they hold first): read what a connection still
    # open has to send, then write the rest
    server.close()
    until = time.monotonic() + STOP_DEADLINE_SECONDS
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
        try:
            written = writer.flush()
            intake.count_dropped()
        except Exception:  # never end quietly: records would pile up unwritten
            logger.exception("usage records: the writer failed; retrying")
            written = False
        if written:
            backoff = RETRY_MIN_SECONDS
        else:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_MAX_SECONDS)


def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    loop.call_soon_threadsafe(stop.set)


def main() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    die_with_parent()  # a supervisor killed outright takes its writer with it
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    listener = socket.socket(fileno=int(sys.argv[1]))
    database_url = sys.stdin.buffer.readline().decode().rstrip("\n")
    import uvloop

    uvloop.run(_serve(listener, database_url))


if __name__ == "__main__":
    main()
