"""Hot reload inside each worker: poll the config file, validate, swap the table atomically.

In-flight requests and streams hold the table (and provider objects) they started with, so a
reload never interrupts them; an invalid file is logged and the old table keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from gateway.config import load_config
from gateway.control.table import EndpointTable
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.server.app import GatewayApp

logger = logging.getLogger("gateway.reload")


class ConfigWatcher:
    def __init__(self, path: str, app: GatewayApp) -> None:
        self.path = path
        self.app = app
        self.interval = float(os.environ.get("GATEWAY_RELOAD_INTERVAL_SECONDS", "1.0"))
        self._signature = self._stat()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            signature = self._stat()
            if signature == self._signature:
                continue
            self._signature = signature
            if signature is None:
                logger.warning("%s deleted; keeping the current configuration", self.path)
                continue
            await self.reload()

    async def reload(self) -> bool:
        try:
            config = await asyncio.to_thread(load_config, self.path)
        except ConfigError as exc:
            logger.warning("Invalid configuration: %s (still serving the previous one)", exc)
            return False
        except Exception:
            logger.exception("reloading %s failed (still serving the previous configuration)", self.path)
            return False
        current = self.app.table
        if config.text == current.config.text:
            return False
        try:
            table = EndpointTable(config, self.app.client, previous=current)
        except Exception:
            logger.exception(
                "building the endpoints of %s failed (still serving the previous one)", self.path
            )
            return False
        self.app.table = table
        for warning in set(config.warnings) - set(current.config.warnings):
            logger.warning("%s", warning)
        logger.info("configuration reloaded from %s: %d endpoints", self.path, len(config.endpoints))
        return True
