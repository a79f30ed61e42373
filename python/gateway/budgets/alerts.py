"""Budget alerts: a JSON POST to `budget_alerts.webhook` when a budget's spend crosses one of
the thresholds (0.5, 0.8, 1.0 by default), sent in the background, never on a request's path.

Exactly once per crossing: a crossing is seen by the one settlement whose atomic ledger add
took the spend from below `threshold x budget` to at or above it (old < mark <= new), and
adds are atomic across workers and hosts, so one worker of one host sees it. A rolling window
sums buckets that a concurrent add may change under it, so there the crossing is confirmed by
claiming a one-off ledger counter (the first add to it wins), per threshold and window length.

Delivery: a bounded queue per process (full: the alert is dropped and logged), one httpx
client built once, up to 5 attempts with exponential back-off (0.5 s, 1 s, 2 s, 4 s) on a
connection error, 408, 429 or 5xx. The payload names the budget and its numbers, never a key
secret; log lines never show the webhook URL (it may carry a token).

    {"budget": "team 'research' weekly budget", "scope": "team", "name": "research",
     "id": "research", "period": "week", "window": null, "usd": 200.0, "spent_usd": 160.02,
     "threshold": 0.8, "resets_at": "2026-12-07T00:00:00Z", "at": "2026-12-03T10:15:00Z"}
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from gateway.budgets.policy import NANO, Budget, timestamp_text

if TYPE_CHECKING:
    import httpx  # imported when a webhook is configured: +7 MB in every worker otherwise

logger = logging.getLogger("gateway.budgets")
QUEUE_SIZE = 1000
ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
RETRIED = frozenset((408, 425, 429))


def alert_payload(budget: Budget, spent: int, threshold: float, resets_at: float) -> dict[str, Any]:
    period = budget.spec.period
    window = period.as_json().get("window")
    return {
        "budget": budget.label,
        "scope": budget.scope,
        "name": budget.display if budget.scope != "global" else None,
        "id": budget.name if budget.scope != "global" else None,
        "period": period.kind,
        "window": window,
        "usd": budget.spec.usd,
        "spent_usd": spent / NANO,
        "threshold": threshold,
        "resets_at": timestamp_text(resets_at),
        "at": timestamp_text(time.time()),
    }


class HideWebhooks(logging.Filter):
    """httpx logs each request's URL at INFO: a webhook's is shown as <budget webhook>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(str(arg) in self.urls for arg in record.args):
            record.args = tuple("<budget webhook>" if str(arg) in self.urls else arg for arg in record.args)
        return True


HIDE_WEBHOOKS = HideWebhooks()
logging.getLogger("httpx").addFilter(HIDE_WEBHOOKS)


class AlertSender:
    """One per process and webhook: a queue drained by one background task."""

    def __init__(self, webhook: str, backoff: float = FIRST_BACKOFF_SECONDS) -> None:
        import httpx

        self._webhook = webhook
        HIDE_WEBHOOKS.urls.update((webhook, str(httpx.URL(webhook))))
        self._backoff = backoff
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never the URL: it may hold a token
        return "AlertSender(<webhook>)"

    def send(self, payload: dict[str, Any]) -> None:
        """Queue one alert (never blocks); started on first use, on the running loop."""
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            logger.warning(
                "budget alert dropped (%s at %s): the alert queue is full",
                payload["budget"],
                payload["threshold"],
            )
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        while not self._queue.empty():
            payload = self._queue.get_nowait()
            await self._deliver(payload)

    async def _deliver(self, payload: dict[str, Any]) -> None:
        import httpx

        assert self._client is not None
        what = f"{payload['budget']} at {payload['threshold']:.0%}"
        reason = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.post(self._webhook, json=payload)
            except httpx.HTTPError as exc:
                reason = type(exc).__name__
                continue
            if response.status_code < 300:
                logger.info("budget alert sent: %s", what)
                return
            reason = f"HTTP {response.status_code}"
            if response.status_code < 500 and response.status_code not in RETRIED:
                break  # the receiver refuses this alert: retrying will not change its mind
        logger.warning("budget alert not delivered: %s (%s)", what, reason)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._client is not None:
            await self._client.aclose()


_senders: dict[str, AlertSender] = {}


def alert_sender(webhook: str) -> AlertSender:
    sender = _senders.get(webhook)
    if sender is None:
        sender = _senders[webhook] = AlertSender(webhook)
    return sender
