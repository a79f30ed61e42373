"""Serve the app with Granian: ASGI, uvloop, one process per worker. The only module that
knows about Granian."""

from __future__ import annotations

import os

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops

from gateway.control.limits import host_table_file
from gateway.server.process import mark_supervisor

# seconds a stopping worker may spend finishing in-flight requests and streams
DRAIN_SECONDS = 30


def serve(config_path: str, host: str, port: int, workers: int, log_level: str = "info") -> None:
    os.environ["MLFLOW_GATEWAY_CONFIG"] = config_path
    mark_supervisor()
    server = Granian(
        "gateway.server.app:create_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        backlog=2048,
        log_level=log_level,  # type: ignore[arg-type]
        log_access=False,
        respawn_failed_workers=True,
        workers_kill_timeout=DRAIN_SECONDS,
    )
    # the rate-limit table every worker maps, created before they are spawned
    with host_table_file():
        server.serve()
