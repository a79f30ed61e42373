"""When to try an endpoint again, how long to wait first, and the retry budget that keeps
retries from amplifying an outage.

* Back-off: `backoff_seconds * 2**(retry - 1)`, capped at `max_backoff_seconds`, "equal jitter"
  (half fixed, half random) so the retries of many clients do not arrive together. A provider's
  own wait wins when longer: `Retry-After` (seconds or an HTTP date), `retry-after-ms`, and the
  reset headers of OpenAI (`x-ratelimit-reset-requests: 6m0s`) and Anthropic
  (`anthropic-ratelimit-requests-reset: <RFC 3339 time>`).
* Budget: a token bucket per endpoint, shared by the workers of the host (the limits table):
  each first attempt earns `budget_ratio` of a retry, each retry spends one; it starts with (and
  holds at most) RESERVE_RETRIES. During a total outage an endpoint therefore sends at most
  about `(1 + budget_ratio)` times the requests it is asked for.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from datetime import datetime

from gateway._native import SharedBucket, SharedLimits
from gateway.config.resilience import RetryConfig

RESERVE_RETRIES = 10
UNITS = 1000  # a retry in budget units (a ratio of 0.2 earns 200 per first attempt)
NEVER_REFILLS = 1e8  # seconds: the bucket refills from first attempts only, not with time
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class RetryBudget:
    """Retries this endpoint may still spend, host-wide."""

    __slots__ = ("_bucket", "_earn")

    def __init__(self, table: SharedLimits, owner: str, ratio: float) -> None:
        # the ratio is in the name: a reload that changes it starts a new budget
        self._bucket: SharedBucket = table.bucket(
            f"retry-budget|{owner}|{ratio:g}", RESERVE_RETRIES * UNITS, NEVER_REFILLS
        )
        self._earn = round(ratio * UNITS)

    def earn(self) -> None:
        """A first attempt was made."""
        if self._earn:
            self._bucket.refund(self._earn)

    def spend(self) -> bool:
        """Whether one more retry may be made (and if so, it is paid for)."""
        return self._bucket.try_acquire(UNITS)[0]


class RetryPolicy:
    """One endpoint's `retries:` block, decided once per config load."""

    __slots__ = (
        "after_headers",
        "attempts",
        "backoff",
        "budget",
        "classes",
        "max_backoff",
        "statuses",
        "total",
    )

    def __init__(self, config: RetryConfig, budget: RetryBudget | None) -> None:
        self.attempts = config.attempts
        self.backoff = config.backoff_seconds
        self.max_backoff = config.max_backoff_seconds
        self.total = config.total_seconds
        self.after_headers = config.after_headers
        self.classes = frozenset(name for name in config.on if not name.isdigit())
        self.statuses = frozenset(int(name) for name in config.on if name.isdigit())
        self.budget = budget

    def retries_on(self, failure: str, status: int) -> bool:
        """`failure`: "429", "5xx", "connect", "timeout", "after_headers" or "4xx"."""
        if failure == "after_headers":
            return self.after_headers
        return failure in self.classes or status in self.statuses

    def delay(self, retry: int, asked: float | None) -> float:
        """The wait before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (retry - 1))
        wait = ceiling / 2 + random.random() * ceiling / 2
        return max(wait, asked) if asked is not None else wait


NO_RETRY = RetryPolicy(RetryConfig(attempts=1), None)  # an endpoint without `retries:`


def asked_wait(headers: list[tuple[bytes, bytes]], now: float | None = None) -> float | None:
    """The wait (seconds) a provider asked for in its answer's headers, if any: Retry-After
    first; else the reset time of an exhausted rate-limit window (its `remaining` is 0)."""
    values = {name.decode("latin-1").lower(): value.decode("latin-1").strip() for name, value in headers}
    if "retry-after-ms" in values:
        return _number(values["retry-after-ms"], 0.001)
    if "retry-after" in values:
        value = values["retry-after"]
        wait = _number(value, 1.0)
        return wait if wait is not None else _http_date(value, now)
    found: float | None = None
    for name, value in values.items():
        # x-ratelimit-reset-requests <-> x-ratelimit-remaining-requests (OpenAI);
        # anthropic-ratelimit-tokens-reset <-> anthropic-ratelimit-tokens-remaining (Anthropic)
        if "reset" not in name:
            continue
        if values.get(name.replace("reset", "remaining")) != "0":
            continue
        wait = _reset(value, now)
        if wait is not None:
            found = wait if found is None else max(found, wait)
    return found


def _number(value: str, scale: float) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number * scale if number >= 0 else None


def _http_date(value: str, now: float | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _reset(value: str, now: float | None) -> float | None:
    """OpenAI's "1s", "6m0s", "250ms"; Anthropic's RFC 3339 time; a bare number of seconds."""
    number = _number(value, 1.0)
    if number is not None:
        return number
    parts = DURATION.findall(value)
    if parts and "".join(a + b for a, b in parts) == value:
        return sum(float(amount) * UNIT_SECONDS[unit] for amount, unit in parts)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
