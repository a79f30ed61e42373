"""What one worker holds open: how many connections it serves at once and how much it buffers
for one request head. Granian's own defaults would give each worker `backlog // workers`
connections (1024 with two workers) whatever the open-file limit allows, and up to ~408 KiB
of read buffer per connection.

A worker holds one connection in each of its `backpressure` places from accept to close, idle
keep-alive and slow clients included; more connections wait in the kernel's listen backlog.
Idle connections and slow heads are closed by Granian after HEADER_READ_TIMEOUT_MS, slow
bodies by the gateway (server/http.py `read_body`), so a place is held for a bounded time.
"""

from __future__ import annotations

import logging
import resource
from typing import Any

from granian.http import HTTP1Settings

from gateway.settings import settings

logger = logging.getLogger("gateway.server")

HEADER_READ_TIMEOUT_MS = 30_000  # Granian's default: a head (or an idle keep-alive) gets 30 s
MIN_HEADER_BYTES = 8192  # hyper refuses a smaller read buffer
FILES_PER_CONNECTION = 2  # the client's socket and the upstream connection serving it
RESERVED_FILES = 256  # log files, the config, the limits table, pipes, DNS, ...


def granian_options() -> dict[str, Any]:
    """Keyword arguments for Granian(...): the per-worker connection cap and HTTP/1 settings."""
    current = settings()
    return {
        "backpressure": connections_per_worker(current.worker_connections),
        "http1_settings": HTTP1Settings(
            header_read_timeout=HEADER_READ_TIMEOUT_MS,
            keep_alive=True,
            max_buffer_size=max(MIN_HEADER_BYTES, current.max_header_bytes),
        ),
    }


def connections_per_worker(wanted: int) -> int:
    """`wanted`, when the open-file limit fits it, else as many as it fits.

    A worker over its open-file limit cannot accept: Granian retries at once, spinning a core
    and logging each failure. So the soft limit is raised (up to the hard limit, inherited by
    the workers) to fit `wanted` connections, and the cap is lowered when it cannot be."""
    wanted = max(1, wanted)
    needed = FILES_PER_CONNECTION * wanted + RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return wanted
    reserve = min(RESERVED_FILES, soft // 4)
    fits = max(1, min(wanted, (soft - reserve) // FILES_PER_CONNECTION))
    logger.warning(
        "The open-file limit (%d, hard %d) fits %d connections per worker, not %d "
        "(GATEWAY_WORKER_CONNECTIONS): serving %d. Raise `ulimit -n` to serve more.",
        soft,
        hard,
        fits,
        wanted,
        fits,
    )
    return fits
