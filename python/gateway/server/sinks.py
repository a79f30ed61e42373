"""The sinks every request's usage record goes to, built once per worker (pipeline/record.py
hands each record to each, in this order). Each sink is cheap on the request path and queues
anything slow (a database write, a webhook) for the background."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from gateway.budgets.sink import BudgetSink
from gateway.observe import observe_sinks
from gateway.usage.spool import SOCKET_ENV, UsageSpool
from gateway.usage.writer import UsageWriter

# sinks with a background side: started with the worker, stopped (flushed) at its shutdown
BACKGROUND_SINKS = (UsageWriter, UsageSpool)

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.pipeline.context import Sink
    from gateway.server.keys import Keys


def build_sinks(config: GatewayConfig, keys: Keys | None) -> tuple[Sink, ...]:
    sinks: list[Sink] = []
    sinks.extend(observe_sinks())  # metrics, access log, trace spans (observe/)
    if config.database_url is not None:  # usage records in the database
        spool = os.environ.get(SOCKET_ENV)
        if spool:  # under `gateway start`: to the host's writer process (usage/spool.py)
            sinks.append(UsageSpool(spool))
        else:  # an app built on its own: a writer thread in this process (usage/writer.py)
            sinks.append(UsageWriter(config.database_url))
    sinks.append(BudgetSink())  # budgets: settle spend, alerts (budgets/sink.py); a reload may add budgets
    return tuple(sinks)
