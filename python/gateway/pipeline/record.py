"""record: what is written about a request once it has ended: one log line per failure, and
one usage record per invocation handed to every sink (metrics, access log, usage database,
budgets, traces)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from gateway.control.limits.requests import estimate_tokens
from gateway.errors import GatewayError
from gateway.types import Scope
from gateway.usage import UsageRecord
from gateway.usage.tokens import CHARS_PER_TOKEN, Tokens, answer_text_length, estimated, tokens_from

if TYPE_CHECKING:
    from gateway.control.table import Target
    from gateway.pipeline.context import RequestContext

logger = logging.getLogger("gateway")
TARGET_KEY = "gateway.target"  # the scope key holding the endpoint a request resolved to


def target_label(target: Target) -> str:
    return f"endpoint '{target.name}' (provider {target.config.provider})"


def record_failure(scope: Scope, exc: GatewayError, started: float | None) -> None:
    """One line per failed request: where, which endpoint and provider, the error's class and
    status, how long it took; the message only for server-side failures (a client error's detail
    can quote the request). Log lines pass the redacting filter like everything else."""
    target = scope.get(TARGET_KEY)
    where = target_label(target) if target is not None else "no endpoint"
    took = f" after {1000 * (time.perf_counter() - started):.1f} ms" if started is not None else " mid-stream"
    line = f"{scope['method']} {scope['path']} {where}: {exc.status} {type(exc).__name__}{took}"
    if exc.status >= 500:
        logger.warning("%s: %s", line, exc.message[:300])
    else:
        logger.info("%s", line)


def record_gone(target: Target) -> None:
    logger.info("%s: the client went away; its request was cancelled", target_label(target))


def record_request(ctx: RequestContext) -> None:
    """Once per invocation, however it ended. Sinks never block; one that fails is logged."""
    sinks = ctx.services.sinks
    if not sinks:
        return
    usage_record = build_record(ctx)
    for sink in sinks:
        try:
            sink.record(usage_record, ctx)
        except Exception:
            logger.exception("usage sink %s failed", type(sink).__name__)


def build_record(ctx: RequestContext) -> UsageRecord:
    now = time.perf_counter()
    target = ctx.target
    tokens = _tokens(ctx)
    cost, priced = 0.0, tokens is None
    if target is not None and tokens is not None:
        price = ctx.table.price_of(target.config)
        if price is not None:
            cost, priced = price.cost(tokens), True
        else:
            priced = False
    tokens = tokens or Tokens()
    error = ctx.error
    return UsageRecord(
        request_id=ctx.request_id,
        started_at=ctx.started_at,
        method=ctx.method,
        path=ctx.path,
        route=ctx.style,
        endpoint=target.name if target is not None else None,
        asked=ctx.asked,
        provider=target.config.provider if target is not None else None,
        model=target.config.model_name if target is not None else None,
        consumer=ctx.consumer.id if ctx.consumer is not None else None,
        team=ctx.consumer.team if ctx.consumer is not None else None,
        stream=ctx.streaming,
        status=ctx.status or (error.status if error is not None else 0),
        error=type(error).__name__ if error is not None else None,
        latency_ms=(now - ctx.started) * 1000,
        ttft_ms=(ctx.first_byte - ctx.started) * 1000 if ctx.first_byte is not None else None,
        overhead_ms=max(0.0, (now - ctx.started - ctx.upstream_seconds) * 1000),
        prompt_tokens=tokens.prompt,
        completion_tokens=tokens.completion,
        cached_tokens=tokens.cached,
        cache_write_tokens=tokens.cache_write,
        reasoning_tokens=tokens.reasoning,
        total_tokens=tokens.total,
        estimated=tokens.estimated,
        cost_usd=cost,
        priced=priced,
        budget=getattr(error, "budget", None),
        attempts=ctx.attempts,
    )


def _tokens(ctx: RequestContext) -> Tokens | None:
    """What the provider reported, else (once it answered) an estimate from the text; None when
    no answer was relayed (refused, or the provider failed: nothing to bill)."""
    reported = ctx.usage if ctx.tally is None else ctx.tally.usage
    tokens = tokens_from(reported)
    if tokens is not None:
        return tokens
    # ctx.status is set when an answer or a stream starts; error answers set first_byte too
    if not ctx.status or ctx.kind is None:
        return None
    prompt, _ = estimate_tokens(ctx.kind, ctx.payload)
    answer_chars = ctx.tally.chars if ctx.tally is not None else answer_text_length(ctx.answer)
    return estimated(prompt * CHARS_PER_TOKEN, answer_chars)
