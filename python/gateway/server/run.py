"""Serve the app with Granian: ASGI, uvloop, one process per worker. The only module that
knows about Granian."""

from __future__ import annotations

import os
import socket
import sys
from typing import TYPE_CHECKING, Any

from granian._granian import SocketHolder
from granian.constants import HTTPModes, Interfaces, Loops

if TYPE_CHECKING:
    from granian.server.common import AbstractServer as Granian
else:  # MPServer, or MTServer on a free-threaded Python
    from granian import Granian

from gateway.control.limits import host_table_file
from gateway.server.process import mark_supervisor

# seconds a stopping worker may spend finishing in-flight requests and streams
DRAIN_SECONDS = 30
BACKLOG = 2048


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


class _Server(Granian):  # type: ignore[type-arg]
    """Granian serving on our pre-bound socket. On Linux Granian's own listener has each worker
    bind the address with SO_REUSEPORT, so a second gateway on the same port would start and
    the kernel would split the traffic between two configs."""

    def __init__(self, listener: socket.socket, **options: Any) -> None:
        super().__init__(**options)
        self._gateway_listener = listener

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


def serve(config_path: str, host: str, port: int, workers: int, log_level: str = "info") -> None:
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
        workers_kill_timeout=DRAIN_SECONDS,
    )
    # the rate-limit table every worker maps, created before they are spawned
    with host_table_file():
        server.serve()
