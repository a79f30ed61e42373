"""record: what is written about a request once it has ended. Today one log line per failed
request; usage records and metrics join here."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.types import Scope

if TYPE_CHECKING:
    from gateway.control.table import Target

logger = logging.getLogger("gateway")
TARGET_KEY = "gateway.target"  # the scope key holding the endpoint a request resolved to


def target_label(target: Target) -> str:
    return f"endpoint '{target.name}' (provider {target.config.provider})"


def record_failure(scope: Scope, exc: GatewayError, started: float | None) -> None:
    """One line per failed request: where, which endpoint and provider, the error's class and
    status, how long it took; the message only for server-side failures (a client error's detail
    can quote the request). Log lines pass the redacting filter like everything else."""
    target = scope.get(TARGET_KEY)
    where = target_label(target) if target is not None else "no endpoint"
    took = f" after {1000 * (time.perf_counter() - started):.1f} ms" if started is not None else " mid-stream"
    line = f"{scope['method']} {scope['path']} {where}: {exc.status} {type(exc).__name__}{took}"
    if exc.status >= 500:
        logger.warning("%s: %s", line, exc.message[:300])
    else:
        logger.info("%s", line)


def record_gone(target: Target) -> None:
    logger.info("%s: the client went away; its request was cancelled", target_label(target))
