"""The sinks every request's usage record goes to, built once per worker (pipeline/record.py
hands each record to each, in this order). Each sink is cheap on the request path and queues
anything slow (a database write, a webhook) for the background."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.budgets.sink import BudgetSink
from gateway.observe import observe_sinks

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.pipeline.context import Sink
    from gateway.server.keys import Keys


def build_sinks(config: GatewayConfig, keys: Keys | None) -> tuple[Sink, ...]:
    sinks: list[Sink] = []
    sinks.extend(observe_sinks())  # metrics, access log, trace spans (observe/)
    if config.database_url is not None:  # usage records in the database (usage/writer.py)
        from gateway.usage.writer import UsageWriter

        sinks.append(UsageWriter(config.database_url))
    sinks.append(BudgetSink())  # budgets: settle spend, alerts (budgets/sink.py); a reload may add budgets
    return tuple(sinks)
