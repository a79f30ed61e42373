"""Many timers of one length as one event-loop timer.

Every request set two timers on the loop: its upstream deadline and the delayed start of its
disconnect watcher, and nearly always cancelled both; uvloop's `call_at` + `cancel` cost
2-3 us each. Timers of one length fire in the order they were set, so a `TimerGroup` keeps them
in an insertion-ordered dict and arms one loop timer for the oldest: setting or cancelling one
is a dict insert or pop, and under steady traffic the loop timer is re-armed about once per
`seconds`. Each still fires at its own due time.

The lengths come from the config (timeouts) and from constants, so a loop has a few groups.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Hashable
from typing import cast

logger = logging.getLogger("gateway")


CLOCK_SLACK_SECONDS = 0.001
# `handle` while callbacks run: armed already, as far as `set` is concerned
PENDING = cast(asyncio.TimerHandle, object())


class TimerGroup:
    """Timers of `seconds` on one loop, each keyed by its owner (one timer per owner)."""

    __slots__ = ("due", "handle", "loop", "seconds")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self.loop = loop
        self.seconds = seconds
        self.due: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        self.handle: asyncio.TimerHandle | None = None

    def set(self, owner: Hashable, callback: Callable[[], None]) -> None:
        """`callback()` in `seconds`, unless `cancel(owner)` comes first."""
        at = self.loop.time() + self.seconds
        due = self.due
        due.pop(owner, None)  # set again: its place is at the end, with the others as late
        due[owner] = (at, callback)
        if self.handle is None:
            self.handle = self.loop.call_at(at, self._fire)

    def cancel(self, owner: Hashable) -> None:
        # the loop timer stays armed: when it fires it finds nothing due and re-arms (or not)
        self.due.pop(owner, None)

    def _fire(self) -> None:
        # uvloop's clock counts milliseconds: a timer may run a fraction of one before its
        # time, and re-arming it for that fraction would spin until the clock ticks
        now = self.loop.time() + CLOCK_SLACK_SECONDS
        due = self.due
        fired = []
        for owner, (at, callback) in due.items():  # one pass: the oldest first
            if at > now:
                break
            fired.append((owner, callback))
        self.handle = PENDING  # a callback that sets a timer here must not arm a second one
        try:
            for owner, callback in fired:
                if due.pop(owner, None) is None:  # cancelled by an earlier callback
                    continue
                try:
                    callback()
                except Exception:  # one failing callback must not strand the others
                    logger.exception("timer callback failed")
        finally:
            self.handle = None
            if due:
                self.handle = self.loop.call_at(next(iter(due.values()))[0], self._fire)


class _Groups(threading.local):
    """The groups of this thread's loop (a thread runs one loop at a time; tests run many, one
    after the other)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.by_length: dict[float, TimerGroup] = {}


_GROUPS = _Groups()


def timer_group(loop: asyncio.AbstractEventLoop, seconds: float) -> TimerGroup:
    groups = _GROUPS
    if groups.loop is not loop:
        groups.loop = loop
        groups.by_length = {}
    group = groups.by_length.get(seconds)
    if group is None:
        group = groups.by_length[seconds] = TimerGroup(loop, seconds)
    return group
