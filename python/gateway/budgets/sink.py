"""Settlement: the budgets' sink adds each request's cost (its usage record's `cost_usd`, in
integer nano-USD) to the counter of every budget that applies to it, off the request path: a
task is scheduled, `record()` never awaits. Then it looks for threshold crossings (alerts.py).

How exact: admission reads settled spend only. Requests sent one after another, each after the
previous answer, are admitted exactly up to the budget: the settlement is scheduled as the
answer's last byte goes out and is one ledger add (shared memory: microseconds; Redis: one round
trip), done before the next request can reach admission. Requests in flight together are all
admitted against the same settled spend, so the overshoot is bounded by what is in flight:
at most (requests admitted concurrently) x (their cost). A ledger that cannot be reached at
settlement keeps the addition for a retry (ledger.py); its alerts are not sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from gateway.budgets.admission import applicable, ledger_for
from gateway.budgets.alerts import alert_payload, alert_sender
from gateway.budgets.ledger import LedgerUnavailable
from gateway.budgets.policy import NANO, Budget, Window

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.pipeline.context import RequestContext
    from gateway.usage import UsageRecord

logger = logging.getLogger("gateway.budgets")
WARN_EVERY_SECONDS = 10.0


class BudgetSink:
    def __init__(self) -> None:
        self._pending: set[asyncio.Task[None]] = set()
        self._warned_at = -WARN_EVERY_SECONDS

    def record(self, record: UsageRecord, ctx: RequestContext) -> None:
        amount = round(record.cost_usd * NANO)
        if amount <= 0 or (record.status >= 400 and record.estimated):
            # an error answer no provider reported usage for (a refusal, a failed call) is not
            # spend: providers bill what they report
            return
        budgets = applicable(ctx)
        if not budgets:
            return
        task = asyncio.get_running_loop().create_task(self.settle(ctx.table.config, budgets, amount))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def settle(self, config: GatewayConfig, budgets: list[Budget], amount: int) -> None:
        now = time.time()
        windows = [budget.spec.period.window(now) for budget in budgets]
        items = [
            (budget.counter(window.current), window.expires_at)
            for budget, window in zip(budgets, windows, strict=True)
        ]
        ledger = ledger_for(config)
        try:
            totals = await ledger.add(items, amount)
            alerts = config.budgets.alerts
            if alerts is not None:
                for budget, window, total in zip(budgets, windows, totals, strict=True):
                    await self._crossings(config, budget, window, total, amount, now)
        except LedgerUnavailable as exc:
            if time.monotonic() - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = time.monotonic()
                logger.warning("budget spend not settled yet: %s (the ledger retries it)", exc)
        except Exception:
            logger.exception("budget settlement failed")

    async def _crossings(
        self, config: GatewayConfig, budget: Budget, window: Window, total: int, amount: int, now: float
    ) -> None:
        alerts = config.budgets.alerts
        assert alerts is not None
        limit = budget.spec.nano_usd
        new = total
        ledger = ledger_for(config)
        if window.bucket_seconds is not None:  # rolling: the other buckets count too
            others = [budget.counter(key) for key in window.keys if key != window.current]
            new += sum(await ledger.totals(others))
        old = new - amount
        for threshold in alerts.thresholds:
            mark = math.ceil(threshold * limit)
            if not old < mark <= new:
                continue
            if window.bucket_seconds is not None and not await _claim(ledger, budget, window, threshold, now):
                continue
            resets_at = (
                window.resets_at if window.bucket_seconds is None else now + budget.spec.period.window_seconds
            )
            alert_sender(alerts.webhook).send(alert_payload(budget, new, threshold, resets_at))


async def _claim(ledger: Any, budget: Budget, window: Window, threshold: float, now: float) -> bool:
    """A rolling window's crossing: the first add to this threshold's one-off counter (per
    window-length slot) wins, so concurrent settlements alert once."""
    length = budget.spec.period.window_seconds
    slot = math.floor(now / length)
    key = budget.counter(f"alert:{budget.spec.period.tag}:{threshold}:{slot}")
    (count,) = await ledger.add([(key, (slot + 2) * length)], 1)
    return bool(count == 1)
