"""Process hygiene for workers."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

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
