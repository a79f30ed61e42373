"""The last good configuration, kept so a worker can always start.

A worker (re)spawned while the config file is invalid or deleted cannot load it; without a
fallback it exits at once, and Granian counts that as a crash loop and stops the whole gateway.
So the supervisor (`gateway start`) writes the text it validated into a private snapshot file
(mode 0600 in a 0700 directory, on tmpfs when there is one) and names it in
GATEWAY_CONFIG_SNAPSHOT; a worker that cannot load the live file starts from the snapshot, and
a worker that loads a new valid config (start-up or hot reload) rewrites it, so a respawn starts
from the newest good config. An invalid file never reaches it. The directory goes when the
supervisor exits; one left by a supervisor killed outright is removed by the next start.

The snapshot is the config text only: `$VAR`s and relative key-file paths in it resolve as in
the live file (secrets.py resolves against the process's environment and working directory,
which every worker inherits from the supervisor, not against the file's directory).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

from gateway.server.process import private_base_directory, remove_stale_directories

logger = logging.getLogger("gateway.snapshot")

SNAPSHOT_ENV = "GATEWAY_CONFIG_SNAPSHOT"
DIR_PREFIX = "gateway-config-"
FILE_NAME = "last-good.yaml"


@contextlib.contextmanager
def config_snapshot(text: str) -> Iterator[str | None]:
    """In the supervisor: create the snapshot of the validated `text`, export its path to the
    workers it will spawn, remove it when serving ends. If it cannot be written the gateway
    still serves, with a warning: its workers only lose their fallback."""
    previous = os.environ.pop(SNAPSHOT_ENV, None)  # never a path some other process owns
    directory: str | None = None
    in_use: int | None = None
    path: str | None = None
    try:
        base = private_base_directory()
        remove_stale_directories(base, DIR_PREFIX)
        directory = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-", dir=base)  # mode 0700
        # held while serving (and by forked workers): how a later start tells it is in use
        in_use = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(in_use, fcntl.LOCK_SH)
        path = os.path.join(directory, FILE_NAME)
        write_snapshot(path, text)
        os.environ[SNAPSHOT_ENV] = path
    except OSError as exc:
        logger.warning(
            "cannot keep the last good configuration (%s): a worker restarted while the config "
            "file is invalid will fail",
            exc,
        )
        path = None
    try:
        yield path
    finally:
        os.environ.pop(SNAPSHOT_ENV, None)
        if previous is not None:
            os.environ[SNAPSHOT_ENV] = previous
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        if in_use is not None:
            os.close(in_use)


def snapshot_path() -> str | None:
    return os.environ.get(SNAPSHOT_ENV) or None


def write_snapshot(path: str, text: str) -> None:
    """Atomically: a reader sees the old text or the new, never a torn one. The temporary file
    is created 0600 (mkstemp) next to the snapshot and renamed over it."""
    fd, temporary = tempfile.mkstemp(prefix=".writing-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_snapshot(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def remember(text: str) -> None:
    """In a worker: `text` is a config it loaded and serves; make it the snapshot unless it
    already is. Never fatal: without a snapshot a respawn only loses its fallback."""
    path = snapshot_path()
    if path is None:
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            if read_snapshot(path) == text:
                return
        write_snapshot(path, text)
    except (OSError, ValueError) as exc:
        logger.warning("could not update the last good configuration %s: %s", path, exc)
