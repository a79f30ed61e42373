"""What a budget is and where its spend is counted: periods, windows and counter keys.

    BudgetSpec     an amount (integer nano-USD, so sums are exact) per Period
    Period         `day`, `week` (ISO: from Monday 00:00 UTC), `month` (calendar) or `rolling`
    Window         one period's counter keys at a given time, and when the spend frees up
    Budget         a spec applied to one scope: a key, a team, an endpoint, a route or global
    BudgetsConfig  what the config file sets (global, teams, endpoints and routes, alerts)

A calendar period is one counter per period (`...|day:2026-12-01|...`); it resets at the next
period's start. A rolling window of W seconds is ROLLING_BUCKETS (24) sub-buckets of W/24
seconds each, summed: spend is counted in the bucket it settled in and leaves the window when
that bucket is 24 buckets old, so the window covered is between 23/24 W and W long (for
`window: 24h`: the last 23 to 24 hours, counted by the hour). Bucket boundaries are multiples of
W/24 since the Unix epoch, the same on every host. Imports nothing but msgspec: the config
model carries these types.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import msgspec

NANO = 1_000_000_000  # nano-USD per USD
ROLLING_BUCKETS = 24
CALENDAR = ("day", "week", "month")
PERIODS = (*CALENDAR, "rolling")
GRACE_SECONDS = 86_400  # counters outlive their window by this much (clocks differ a little)
ADJECTIVES = {"day": "daily", "week": "weekly", "month": "monthly"}


class Period(msgspec.Struct, frozen=True):
    kind: str  # one of PERIODS
    window_seconds: int = 0  # rolling only

    @property
    def tag(self) -> str:
        """Short and stable: part of every counter key, so a changed period gets fresh counters."""
        return f"rolling{self.window_seconds}s" if self.kind == "rolling" else self.kind

    def describe(self) -> str:
        """'daily', 'weekly', 'monthly' or '24h rolling'."""
        return ADJECTIVES.get(self.kind) or f"{duration_text(self.window_seconds)} rolling"

    def as_json(self) -> dict[str, str]:
        if self.kind == "rolling":
            return {"period": "rolling", "window": duration_text(self.window_seconds)}
        return {"period": self.kind}

    def window(self, now: float) -> Window:
        if self.kind == "rolling":
            return _rolling(self.window_seconds, now)
        start, end = calendar_bounds(self.kind, now)
        label = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}[self.kind]
        key = f"{self.kind}:{start.strftime(label)}"
        expires = int(end.timestamp()) + GRACE_SECONDS
        return Window((key,), key, expires, end.timestamp(), None)


class Window:
    """A period's counters at one moment: `keys` are summed for the spend (one for a calendar
    period, ROLLING_BUCKETS for a rolling window, oldest first); settlement adds to `current`."""

    __slots__ = ("bucket_seconds", "current", "expires_at", "keys", "resets_at")

    def __init__(
        self,
        keys: tuple[str, ...],
        current: str,
        expires_at: int,
        resets_at: float,
        bucket_seconds: float | None,
    ) -> None:
        self.keys = keys
        self.current = current
        self.expires_at = expires_at
        self.resets_at = resets_at  # calendar: the next period's start; rolling: the next bucket
        self.bucket_seconds = bucket_seconds  # rolling only

    def frees_at(self, totals: list[int], limit: int) -> float:
        """When the spend will be below `limit` again with nothing more spent: a calendar period
        at its end; a rolling window when enough of its oldest buckets have left it."""
        if self.bucket_seconds is None:
            return self.resets_at
        spent = sum(totals)
        for age, amount in enumerate(totals):
            spent -= amount
            if spent < limit:
                # bucket `age` (0: oldest) leaves the window `age` buckets after the next boundary
                return self.resets_at + age * self.bucket_seconds
        return self.resets_at + len(totals) * self.bucket_seconds


def calendar_bounds(kind: str, now: float) -> tuple[datetime, datetime]:
    """The UTC period holding `now`: [start, end)."""
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return day, day + timedelta(days=1)
    if kind == "week":
        start = day - timedelta(days=day.weekday())  # ISO weeks start on Monday
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _rolling(window_seconds: int, now: float) -> Window:
    size = window_seconds / ROLLING_BUCKETS
    index = math.floor(now / size)
    keys = tuple(f"rolling{window_seconds}s:{i}" for i in range(index - ROLLING_BUCKETS + 1, index + 1))
    expires = math.ceil((index + ROLLING_BUCKETS + 1) * size) + GRACE_SECONDS
    return Window(keys, keys[-1], expires, (index + 1) * size, size)


DURATION_UNITS = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def duration_text(seconds: int) -> str:
    """The largest whole unit: 86400 -> '1d' is written '24h' for the common case of a day."""
    if seconds == 86_400:
        return "24h"
    for unit, size in DURATION_UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class BudgetSpec(msgspec.Struct, frozen=True):
    nano_usd: int  # the amount, in nano-USD
    period: Period

    @property
    def usd(self) -> float:
        return self.nano_usd / NANO

    def as_json(self) -> dict[str, object]:
        """As the admin API and the config write it: {"usd": 50.0, "period": "day"}."""
        return {"usd": self.usd, **self.period.as_json()}


class AlertsConfig(msgspec.Struct, frozen=True):
    webhook: str  # resolved (may be a secret: it is never logged)
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)


class BudgetsConfig(msgspec.Struct, frozen=True):
    """`budgets:` (global, teams), each endpoint's and route's `budget:`, `budget_alerts:`."""

    global_budget: BudgetSpec | None = None
    teams: dict[str, BudgetSpec] = {}  # team -> budget; "*": every team without its own
    scoped: dict[str, BudgetSpec] = {}  # endpoint or traffic route name -> budget
    alerts: AlertsConfig | None = None

    @property
    def configured(self) -> bool:
        """Whether the config sets any budget (keys' and teams' from the database aside)."""
        return bool(self.global_budget or self.teams or self.scoped)


class Budget:
    """One budget that applies to a request: `scope` is key, team, endpoint, route or global;
    `name` identifies it in counter keys (a key's id, a team, an endpoint's name); `display`
    is what messages show (a key's name)."""

    __slots__ = ("display", "name", "scope", "spec")

    def __init__(self, scope: str, name: str, spec: BudgetSpec, display: str | None = None) -> None:
        self.scope = scope
        self.name = name
        self.spec = spec
        self.display = name if display is None else display

    @property
    def label(self) -> str:
        """ "key 'ci-bot' daily budget", "global monthly budget"."""
        who = "global" if self.scope == "global" else f"{self.scope} '{self.display}'"
        return f"{who} {self.spec.period.describe()} budget"

    def counter(self, window_key: str) -> str:
        """The counter of one window: the name goes last, so any character in it is safe."""
        return f"budget|{self.scope}|{window_key}|{self.name}"

    def counters(self, window: Window) -> list[str]:
        return [self.counter(key) for key in window.keys]


def usd_text(nano: int) -> str:
    """$50.00, and more digits when cents would hide the amount ($0.0042)."""
    usd = nano / NANO
    if abs(nano) >= NANO // 100 or nano % (NANO // 100) == 0:
        return f"${usd:,.2f}"
    return f"${usd:.9f}".rstrip("0")


def timestamp_text(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
