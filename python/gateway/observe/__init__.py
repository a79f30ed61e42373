"""Seeing what the gateway does: Prometheus metrics summed across workers (metrics.py), the
access log (access_log.py, payloads.py) and OpenTelemetry traces (tracing.py).

`Observer` is what the server does around each invocation (in-flight gauge, the span's start,
keeping the answer for a payload log); `observe_sinks` are the usage-record sinks that count,
log and end the span once the request has ended.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from gateway.observe.metrics import MetricsSink, tally
from gateway.observe.payloads import keep_answer
from gateway.observe.tracing import tracer
from gateway.settings import settings

if TYPE_CHECKING:
    from gateway.pipeline.context import RequestContext, Sink

__all__ = ["Observer", "observe_sinks"]


class Observer:
    __slots__ = ("logs_answers", "tally", "tracing")

    def __init__(self) -> None:
        self.tally = tally()
        self.tracing = tracer()
        self.logs_answers = bool(settings().access_log)  # answers are kept only for a log

    def begin(self, ctx: RequestContext) -> None:
        self.tally.inflight += 1
        self.tally.touch()
        if self.tracing is not None:
            self.tracing.start(ctx)
        if self.logs_answers and ctx.table.config.log_payloads:
            keep_answer(ctx)

    def end(self) -> None:
        self.tally.inflight -= 1
        self.tally.touch()


def observe_sinks() -> list[Sink]:
    """Metrics; the access log when one is asked for; a human line on a terminal; traces."""
    sinks: list[Sink] = [MetricsSink()]
    destination = settings().access_log
    if destination:
        from gateway.observe.access_log import AccessLog

        sinks.append(AccessLog(destination))
    if sys.stderr is not None and sys.stderr.isatty():
        from gateway.observe.access_log import TerminalLine

        sinks.append(TerminalLine())
    tracing = tracer()
    if tracing is not None:
        sinks.append(tracing)
    return sinks
