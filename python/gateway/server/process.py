"""Process hygiene for workers."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1
SUPERVISOR_ENV = "GATEWAY_SUPERVISOR_PID"


def mark_supervisor() -> None:
    """Called in the supervisor before workers spawn, so they can tell it has gone."""
    os.environ[SUPERVISOR_ENV] = str(os.getpid())


def die_with_parent() -> None:
    """A worker ends when its supervisor dies, even by SIGKILL: no orphans serving.

    SIGKILL, not SIGTERM: an ordinary stop goes through the supervisor, which drains its workers
    before it exits, so this only fires when the supervisor was killed outright. A SIGTERM here
    could be lost (a forked worker inherits the supervisor's flag-setting handler until Granian
    installs its own) or stall in Granian's worker shutdown while it is still booting.
    """
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    # the supervisor may have died before prctl took effect
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor and supervisor.isdigit() and os.getppid() != int(supervisor):
        os._exit(0)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def private_base_directory(*preferred: str | None) -> Path:
    """Where a supervisor keeps private runtime files: tmpfs first (the pages never reach a
    disk), then the user's runtime dir, then the temp dir."""
    for candidate in (*preferred, "/dev/shm", os.environ.get("XDG_RUNTIME_DIR")):
        if candidate and os.path.isdir(candidate) and os.access(candidate, os.W_OK | os.X_OK):
            return Path(candidate)
    return Path(tempfile.gettempdir())


def remove_stale_directories(base: Path, prefix: str) -> None:
    """Directories `{prefix}{pid}-...` left by supervisors that were killed outright: ours, their
    pid gone and no process holding their lock (a pid alone could be another namespace's)."""
    for stale in base.glob(f"{prefix}*-*"):
        pid = stale.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or process_alive(int(pid)):
            continue
        try:
            info = stale.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                continue
            fd = os.open(stale, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while in use
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextlib.contextmanager
def private_directory(prefix: str) -> Iterator[Path]:
    """In the supervisor, while serving: a private (0700) directory `{prefix}{pid}-{random}`,
    locked (shared) so another supervisor tells it is in use, removed at the end. One left by a
    supervisor killed outright is removed by the next one (`remove_stale_directories`)."""
    base = private_base_directory()
    remove_stale_directories(base, prefix)
    path = base / f"{prefix}{os.getpid()}-{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(lock, fcntl.LOCK_SH)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)
