"""Serve the app with Granian: ASGI, uvloop, one process per worker. The only module that
knows about Granian."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols

if TYPE_CHECKING:
    from granian.server.common import AbstractServer as Granian
else:  # MPServer, or MTServer on a free-threaded Python
    from granian import Granian

from gateway.budgets.ledger import budget_table_file
from gateway.control.limits import host_table_file
from gateway.control.snapshot import config_snapshot
from gateway.observe.metrics import metrics_directory, worker_gone
from gateway.server.connections import granian_options
from gateway.server.process import mark_supervisor
from gateway.server.tls import MIN_TLS_VERSION, TlsFiles, granian_files
from gateway.settings import settings
from gateway.usage.writer_process import usage_writer_process

BACKLOG = 2048
# a worker slot that crashes more than CRASH_LIMIT times within CRASH_WINDOW_SECONDS is in a
# crash loop: the gateway then stops (exit 1) instead of respawning it forever
CRASH_LIMIT = 5
CRASH_WINDOW_SECONDS = 60.0

logger = logging.getLogger("gateway.server")


def _display(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_listener(host: str, port: int, backlog: int = BACKLOG) -> socket.socket:
    """The one listening socket every worker accepts on, bound and listening before any worker
    starts. No SO_REUSEPORT, so a port another server (or gateway) listens on is refused with
    EADDRINUSE instead of silently sharing its traffic. SO_REUSEADDR only lets a restart reuse
    a port whose old connections are in TIME_WAIT; Linux still refuses a port with a listener."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Granian sets it
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _listen_error(host: str, port: int, exc: OSError) -> str:
    reason = (exc.strerror or str(exc)).lower()
    return f"Error: cannot listen on {_display(host, port)}: {reason}"


RESEND_STOP_SECONDS = 1.0  # a worker still alive after a stop signal gets it again this often
STOP_POLL_SECONDS = 0.05


class CrashLoop:
    """Counts worker crashes per worker slot in a sliding window."""

    def __init__(self, limit: int = CRASH_LIMIT, window: float = CRASH_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._crashes: dict[int, deque[float]] = {}

    def crashed(self, slot: int, now: float) -> int | None:
        """Record a crash of `slot`; its crash count in the window when that is a loop, else None."""
        times = self._crashes.setdefault(slot, deque())
        times.append(now)
        while now - times[0] > self.window:
            times.popleft()
        return len(times) if len(times) > self.limit else None


class _Server(Granian):  # type: ignore[type-arg]
    """Granian serving on our pre-bound socket. On Linux Granian's own listener has each worker
    bind the address with SO_REUSEPORT, so a second gateway on the same port would start and
    the kernel would split the traffic between two configs.

    Its main loop also tolerates a few crashes: see `_serve_loop`."""

    def __init__(self, listener: socket.socket, **options: Any) -> None:
        super().__init__(**options)
        self._gateway_listener = listener
        self._gateway_crashes = CrashLoop()

    def _serve_loop(self, spawn_target: Any, target_loader: Any) -> None:
        """Granian 2.8's loop (granian/server/common.py `_serve_loop`) with another crash-loop
        rule. Granian stops every worker, and the gateway, when a worker dies within 5.5 s of
        any respawn of its slot: one `kill -9` (or OOM kill) of a worker respawned a moment
        before, after an earlier crash or a SIGHUP, ends a gateway whose other workers are
        serving. Here a slot must crash more than CRASH_LIMIT times in CRASH_WINDOW_SECONDS.

        The event is cleared before the flags are read, so a crash or signal that arrives while
        a respawn runs is handled on the next turn, never lost. Granian's worker lifetime and
        RSS limits are not used by the gateway and not handled here."""
        wake = self.main_loop_interrupt
        while True:
            wake.wait()
            wake.clear()
            if self.interrupt_signal:
                break
            if self.interrupt_children:
                if not self.respawn_failed_workers:
                    break
                crashed = list(self.interrupt_children)
                now = time.monotonic()
                loops = [(slot, self._gateway_crashes.crashed(slot, now)) for slot in crashed]
                looping = [(slot, count) for slot, count in loops if count is not None]
                if looping:
                    slot, count = looping[0]
                    logger.error(
                        "Worker crash loop detected: worker-%d crashed %d times within %.0f s, exiting",
                        slot + 1,
                        count,
                        self._gateway_crashes.window,
                    )
                    break  # interrupt_children stays set: Granian's shutdown exits with 1
                del self.interrupt_children[: len(crashed)]
                self._respawn_workers(crashed, spawn_target, target_loader)
                self._metrics.incr_respawn_err(1)
            if self.reload_signal:
                self._reload(spawn_target, target_loader)  # type: ignore[no-untyped-call]  # clears the event
                if self.interrupt_signal or self.interrupt_children:
                    wake.set()

    def _stop_workers(self) -> None:
        """Granian's, except that a worker still alive is sent SIGTERM again every second: Granian
        2.8 loses a stop signal that reaches a worker between installing its signal handlers and
        serving (a gateway stopped while still starting), and that worker would otherwise be
        killed only at the drain deadline. A serving worker takes the repeats as the one stop."""
        workers = list(self.wrks)
        for worker in workers:
            worker.terminate()
        started = time.monotonic()
        kill_at = started + self.workers_kill_timeout if self.workers_kill_timeout else None
        resend_at = started + RESEND_STOP_SECONDS
        alive = workers
        while alive:
            alive[0].join(STOP_POLL_SECONDS)
            alive = [worker for worker in alive if worker.is_alive()]
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                for worker in alive:
                    logger.warning("Killing worker-%d after it refused to gracefully stop", worker.idx + 1)
                    worker.kill()
                    worker.join()
                break
            if alive and now >= resend_at:
                for worker in alive:
                    worker.terminate()
                resend_at = now + RESEND_STOP_SECONDS
        for worker in workers:
            logger.info("Stopped worker-%d", worker.idx + 1)
        self.wrks.clear()

    def _respawn_workers(self, workers: Any, spawn_target: Any, target_loader: Any, delay: float = 0) -> None:
        """Granian's, then the replaced workers' live metrics (in-flight) stop counting."""
        gone = [self.wrks[slot]._id() for slot in workers]
        super()._respawn_workers(workers, spawn_target, target_loader, delay)
        for pid in gone:
            worker_gone(pid)

    def _init_shared_socket(self) -> None:
        # pre-bound rather than probed: a taken port fails at our own bind(), with no race window
        # (Granian 2.x has no public option to pass a socket or drop SO_REUSEPORT). Workers, forked
        # or spawned, and respawned ones inherit it: MPServer hands `_sso` to each.
        listener = self._gateway_listener
        holder: Any = SocketHolder  # its stub declares no constructor
        if sys.platform.startswith(("linux", "freebsd")):
            self._shd = holder(listener.fileno(), False, self.backlog)
        else:
            self._shd = holder(listener.fileno(), False)
        self._ssp = None
        self._sso = listener  # MPServer closes it at shutdown

    def _drop_shared_socket(self) -> None:
        super()._drop_shared_socket()  # type: ignore[no-untyped-call]
        self._gateway_listener.close()


def _tls_options(tls: TlsFiles | None) -> dict[str, Any]:
    if tls is None:
        return {}
    return {
        "ssl_cert": Path(tls.certfile),
        # never a password: Granian's workers cannot read encrypted keys, so the supervisor has
        # decrypted one already (server/tls.py)
        "ssl_key": Path(tls.keyfile),
        "ssl_protocol_min": SSLProtocols(f"tls{MIN_TLS_VERSION}"),
    }


def serve(
    config_path: str,
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    *,
    config_text: str,
    tls: TlsFiles | None = None,
    database_url: str | None = None,
) -> None:
    """Serve until SIGTERM / SIGINT. `config_text` is the config the caller validated: the last
    good config a worker starts from while the file is invalid (control/snapshot.py). `tls`,
    checked by the caller (server/tls.py), makes every worker terminate TLS (HTTPS)."""
    with contextlib.ExitStack() as stack:
        try:  # an encrypted key, decrypted for Granian (server/tls.py)
            granian_tls = stack.enter_context(granian_files(tls))
        except OSError as exc:
            sys.exit(f"Error: cannot keep the decrypted TLS key: {exc.strerror or exc}")
        _serve(config_path, host, port, workers, log_level, config_text, granian_tls, database_url)


def _serve(
    config_path: str,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    config_text: str,
    tls: TlsFiles | None,
    database_url: str | None,
) -> None:
    os.environ["MLFLOW_GATEWAY_CONFIG"] = config_path
    try:
        listener = bind_listener(host, port)
    except OSError as exc:  # address in use, no such address, privileged port, unknown host
        sys.exit(_listen_error(host, port, exc))
    mark_supervisor()
    server = _Server(
        listener,
        target="gateway.server.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        backlog=BACKLOG,
        log_level=log_level,
        log_access=False,
        respawn_failed_workers=True,
        # what one worker holds open: its connection cap (backpressure) and HTTP/1 limits,
        # fitted to the open-file limit (server/connections.py)
        **granian_options(),
        # how long a stopping worker may finish in-flight requests and streams (Granian reads
        # 0 as "wait for ever": 0 here means at once)
        workers_kill_timeout=max(settings().drain_seconds, 0.001),
        **_tls_options(tls),
    )
    # the rate-limit and budget tables every worker maps and the last good config, all created before the
    # workers are spawned and removed when serving ends
    # and the directory of the workers' metric files (observe/metrics.py); then, with a database,
    # the process the workers send their usage records to (usage/writer_process.py)
    with (
        host_table_file(),
        budget_table_file(),
        config_snapshot(config_text),
        metrics_directory(),
        usage_writer_process(database_url),
    ):
        server.serve()
