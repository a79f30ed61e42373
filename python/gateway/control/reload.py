"""Hot reload inside each worker: poll the config file, validate, swap the table atomically.

In-flight requests and streams hold the table (and provider objects) they started with, so a
reload never interrupts them; an invalid file is logged and the old table keeps serving.

A worker's first config comes from `initial_config`: the live file, else the last good config
(control/snapshot.py), so a worker respawned while the file is invalid or deleted still starts.
Every config a worker loads and serves becomes the last good one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from gateway.config import GatewayConfig, load_config, parse_config
from gateway.control.snapshot import read_snapshot, remember, snapshot_path
from gateway.control.table import EndpointTable
from gateway.errors import ConfigError
from gateway.settings import settings

if TYPE_CHECKING:
    from gateway.server.app import GatewayApp

logger = logging.getLogger("gateway.reload")

# (mtime_ns, size) of the config file, None when it cannot be stat'ed
Signature = tuple[int, int] | None


def file_signature(path: str) -> Signature:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def initial_config(path: str) -> tuple[GatewayConfig, Signature]:
    """A worker's first config and the signature of the file it read, taken before reading (an
    edit that lands while it reads is picked up by the first poll).

    The live file when it loads; otherwise the last good config, with one warning saying so and
    why. Hot reload moves on once the file is valid. The caller, once it serves the config,
    makes it the last good one (`snapshot.remember`)."""
    signature = file_signature(path)
    try:
        config = load_config(path)
    except Exception as exc:
        snapshot = snapshot_path()
        if snapshot is None:
            raise
        reason = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        try:
            config = parse_config(read_snapshot(snapshot), path)
        except Exception as fallback:
            logger.error(
                "cannot load %s (%s) nor the last good configuration %s (%s)",
                path,
                reason,
                snapshot,
                fallback,
            )
            raise exc from None
        logger.warning(
            "cannot load %s (%s); starting from the last good configuration (%d endpoints), "
            "until the file is valid again",
            path,
            reason,
            len(config.endpoints),
        )
    return config, signature


class ConfigWatcher:
    def __init__(self, path: str, app: GatewayApp) -> None:
        self.path = path
        self.app = app
        self.interval = settings().reload_interval_seconds
        self._signature = self._stat()
        self._task: asyncio.Task[None] | None = None

    def set_baseline(self, signature: Signature) -> None:
        """The signature of the file the app's current config came from (see initial_config)."""
        self._signature = signature

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _stat(self) -> Signature:
        return file_signature(self.path)

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
        await asyncio.to_thread(remember, config.text)  # a respawn now starts from this config
        for warning in set(config.warnings) - set(current.config.warnings):
            logger.warning("%s", warning)
        logger.info("configuration reloaded from %s: %d endpoints", self.path, len(config.endpoints))
        return True
