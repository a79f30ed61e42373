"""Which budgets apply to a request, and the admission check (pipeline/admit.py, before the
limits): one ledger `totals` call for every applicable scope; refused (429 `BudgetExceeded`)
when any scope's settled spend has reached its budget.

Scopes, in this order: the consumer key's own budget, its team's (the admin API's, else the
config's `budgets.teams` entry, else its `"*"`), the served endpoint's, the traffic route's
asked for, and the global one. A request to which none applies costs nothing here: no ledger
call. The ledger unreachable: `limits_failure_mode` decides, as for the limits (open: admit
and warn now and then; closed: 503).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from gateway.budgets.ledger import Ledger, LedgerUnavailable, host_ledger, redis_ledger
from gateway.budgets.policy import Budget, BudgetSpec, Window, timestamp_text, usd_text
from gateway.config.budgets import parse_budget
from gateway.errors import BudgetExceeded, ConfigError, LimitsUnavailable

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.pipeline.context import RequestContext
    from gateway.store import KeyRecord

logger = logging.getLogger("gateway.budgets")
WARN_EVERY_SECONDS = 10.0
MAX_BUDGET_NAME = 200  # the usage record's `budget` column


def applicable(ctx: RequestContext) -> list[Budget]:
    config = ctx.table.config.budgets
    consumer = ctx.consumer
    budgets: list[Budget] = []
    if consumer is not None:
        if consumer.budget is not None:
            budgets.append(Budget("key", consumer.id, consumer.budget, consumer.name))
        team = consumer.team
        if team is not None:
            teams = ctx.keys.team_budgets if ctx.keys is not None else None
            spec = teams.get(team) if teams is not None else None
            spec = spec or config.teams.get(team) or config.teams.get("*")
            if spec is not None:
                budgets.append(Budget("team", team, spec))
    if config.scoped and ctx.target is not None:
        served = ctx.target.name
        router = ctx.target.router
        # a FALLBACK route's destinations are checked as each is tried (pipeline/admit.py)
        spec = config.scoped.get(served) if router is None or router.strategy != "FALLBACK" else None
        if spec is not None:
            budgets.append(Budget("endpoint", served, spec))
        asked = ctx.asked
        if asked is not None and asked != served:
            spec = config.scoped.get(asked)
            if spec is not None:
                budgets.append(Budget("route", asked, spec))
    if config.global_budget is not None:
        budgets.append(Budget("global", "", config.global_budget))
    return budgets


async def check_budgets(ctx: RequestContext, budgets: list[Budget]) -> None:
    """Raises BudgetExceeded when one of `budgets` (applicable(ctx)) is spent."""
    config = ctx.table.config
    now = time.time()
    windows = [budget.spec.period.window(now) for budget in budgets]
    counters = [
        counter
        for budget, window in zip(budgets, windows, strict=True)
        for counter in budget.counters(window)
    ]
    try:
        totals = await ledger_for(config).totals(counters)
    except LedgerUnavailable as exc:
        unavailable(config, str(exc))
        return
    refusal: tuple[Budget, Window, int, float] | None = None
    start = 0
    for budget, window in zip(budgets, windows, strict=True):
        part = totals[start : start + len(window.keys)]
        start += len(window.keys)
        spent = sum(part)
        if spent >= budget.spec.nano_usd:
            frees = window.frees_at(part, budget.spec.nano_usd)
            # several spent: the one that frees up last is the one worth naming
            if refusal is None or frees > refusal[3]:
                refusal = (budget, window, spent, frees)
    if refusal is not None:
        raise exceeded(*refusal, now)


def exceeded(budget: Budget, window: Window, spent: int, frees: float, now: float) -> BudgetExceeded:
    when = timestamp_text(frees)
    reset = (
        f"it resets at {when}"
        if window.bucket_seconds is None
        else f"enough of it leaves the window at {when}"
    )
    message = (
        f"Budget exceeded: {budget.label} of {usd_text(budget.spec.nano_usd)} is spent "
        f"({usd_text(spent)} settled); {reset}"
    )
    return BudgetExceeded(message, budget.label[:MAX_BUDGET_NAME], max(0.0, frees - now))


_ledgers: dict[tuple[str | None, str], Ledger] = {}


def ledger_for(config: GatewayConfig) -> Ledger:
    """The ledger of this process for the config's storage: Redis (`limits_storage`), shared by
    every host, or this host's shared memory; one per process and storage."""
    key = (config.limits_storage, config.limits_failure_mode)
    ledger = _ledgers.get(key)
    if ledger is None:
        uri = config.limits_storage
        ledger = redis_ledger(uri, config.limits_failure_mode) if uri else host_ledger()
        _ledgers[key] = ledger
    return ledger


class OutageLog:
    """One warning per WARN_EVERY_SECONDS while budgets are not enforced, with the count of
    the requests admitted unchecked since the last one."""

    def __init__(self) -> None:
        self.warned_at = -WARN_EVERY_SECONDS
        self.suppressed = 0

    def admitted(self, reason: str) -> None:
        now = time.monotonic()
        if now - self.warned_at < WARN_EVERY_SECONDS:
            self.suppressed += 1
            return
        more = f" ({self.suppressed} more since the last warning)" if self.suppressed else ""
        logger.warning(
            "budgets not enforced: %s; admitting requests (limits_failure_mode: open)%s", reason, more
        )
        self.warned_at, self.suppressed = now, 0


OUTAGE_LOG = OutageLog()


def unavailable(config: GatewayConfig, reason: str) -> None:
    """The ledger cannot answer: 503 with `limits_failure_mode: closed`, else admit and warn."""
    if config.limits_failure_mode == "closed":
        raise LimitsUnavailable(
            f"Budgets cannot be checked ({reason}); the gateway is configured to refuse requests "
            "until they can (limits_failure_mode: closed)."
        )
    OUTAGE_LOG.admitted(reason)


_key_budgets: dict[str, tuple[int, BudgetSpec | None]] = {}


def key_budget(record: KeyRecord) -> BudgetSpec | None:
    """A key's stored budget, parsed once per key revision."""
    known = _key_budgets.get(record.id)
    if known is not None and known[0] == record.revision:
        return known[1]
    try:
        spec = parse_budget(record.budget)
    except ConfigError:  # checked when stored: a bad one never blocks the key's calls
        spec = None
    if len(_key_budgets) > 100_000:
        _key_budgets.clear()
    _key_budgets[record.id] = (record.revision, spec)
    return spec
